"""The anchor's OP_RETURN payload: b"PNTH" || version 0x01 || 32-byte Pantheon block hash.

37 bytes, so the whole output script (OP_RETURN, one push opcode, payload) is 39
bytes: under every relay limit in use (Knots has used 42, Core and Knots 29 allow
83), so an anchor with a change output is relayed with default settings anywhere.
Decoding is strict: one exact form only, so one block hash has one anchor script.

It lives in ``proof/`` because the proof-bundle verifier reads it: an auditor checks
that the Bitcoin transaction in a bundle carries exactly this payload for exactly the
certified block. ``anchor.payload`` re-exports it for the node side.
"""

from __future__ import annotations

from proof.checks import enforced
from proof.errors import DecodeError, EncodeError, ProofError
from proof.spv import Transaction

MAGIC = b"PNTH"
VERSION = 0x01
BLOCK_HASH_SIZE = 32
PAYLOAD_SIZE = len(MAGIC) + 1 + BLOCK_HASH_SIZE
OP_RETURN = 0x6A
# A direct push of 1..75 bytes is its own length as opcode.
_PUSH_PAYLOAD = PAYLOAD_SIZE
SCRIPT_SIZE = 2 + PAYLOAD_SIZE


def encode_payload(block_hash: bytes) -> bytes:
    if not isinstance(block_hash, bytes) or len(block_hash) != BLOCK_HASH_SIZE:
        raise EncodeError(f"anchored block hash must be {BLOCK_HASH_SIZE} bytes, got {block_hash!r:.80}")
    return MAGIC + bytes([VERSION]) + block_hash


def encode_script(block_hash: bytes) -> bytes:
    """The full output script: OP_RETURN, a 37-byte push, the payload."""
    return bytes([OP_RETURN, _PUSH_PAYLOAD]) + encode_payload(block_hash)


def decode_payload(script_or_payload: bytes) -> bytes:
    """The Pantheon block hash in an anchor output script or in its bare payload.

    Accepts exactly ``encode_script(h)`` or ``encode_payload(h)``; anything else
    (other magic, other version, other push form, extra bytes) is a DecodeError.
    """
    data = script_or_payload
    if len(data) == SCRIPT_SIZE and data[0] == OP_RETURN:
        if data[1] != _PUSH_PAYLOAD:
            raise DecodeError(
                f"anchor script pushes with opcode {data[1]:#04x}, expected a direct "
                f"{PAYLOAD_SIZE}-byte push ({_PUSH_PAYLOAD:#04x})"
            )
        data = data[2:]
    elif data[:1] == bytes([OP_RETURN]):
        raise DecodeError(f"anchor script is {len(data)} bytes, expected {SCRIPT_SIZE}")
    if len(data) != PAYLOAD_SIZE:
        raise DecodeError(f"anchor payload is {len(data)} bytes, expected {PAYLOAD_SIZE}")
    if data[: len(MAGIC)] != MAGIC:
        raise DecodeError(f"anchor payload starts with {data[:len(MAGIC)]!r}, expected {MAGIC!r}")
    if data[len(MAGIC)] != VERSION:
        raise DecodeError(f"anchor payload version is {data[len(MAGIC)]}, this software reads {VERSION}")
    return data[len(MAGIC) + 1 :]


def anchored_block_hash(tx: Transaction) -> bytes:
    """The Pantheon block hash a transaction anchors.

    An anchor transaction has exactly one OP_RETURN output, and it is an anchor
    script; a transaction with none, several, or a foreign one anchors nothing, so
    that one transaction can never be read as committing to two different blocks.
    """
    scripts = [script for _vout, script in tx.op_return_outputs()]
    if len(scripts) != 1 and (not scripts or enforced("bitcoin.op-return-count")):
        raise ProofError(f"the Bitcoin transaction has {len(scripts)} OP_RETURN outputs; an anchor has exactly 1")
    try:
        return decode_payload(scripts[0])
    except DecodeError as exc:
        if enforced("bitcoin.anchor-script"):
            raise ProofError(f"the Bitcoin transaction's OP_RETURN output is not a Pantheon anchor: {exc}") from None
        return scripts[0][-BLOCK_HASH_SIZE:]
