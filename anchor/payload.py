"""The anchor's OP_RETURN payload, for the node side: the codec itself is :mod:`proof.anchor_payload`.

Kept as a re-export so that the anchoring code and its tests import it from here as before.
"""

from proof.anchor_payload import (
    BLOCK_HASH_SIZE,
    MAGIC,
    OP_RETURN,
    PAYLOAD_SIZE,
    SCRIPT_SIZE,
    VERSION,
    anchored_block_hash,
    decode_payload,
    encode_payload,
    encode_script,
)

__all__ = [
    "BLOCK_HASH_SIZE",
    "MAGIC",
    "OP_RETURN",
    "PAYLOAD_SIZE",
    "SCRIPT_SIZE",
    "VERSION",
    "anchored_block_hash",
    "decode_payload",
    "encode_payload",
    "encode_script",
]
