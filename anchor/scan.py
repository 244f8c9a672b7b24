"""The Pantheon anchors a Bitcoin block carries, whoever broadcast them.

Every validator scans each new best-chain block once (``getblock`` at verbosity 0, the
raw block) while a checkpoint is due, so that an anchor one validator broadcast is seen
by all of them: any of them can then offer it to a proposal (every voter checks it with
its own bitcoind), and none falls back to a second anchor of a checkpoint that is
already anchored on Bitcoin. The block's bytes are split into transactions here and
each is parsed with the auditor's strict parser (proof.spv.parse_transaction).
"""

from __future__ import annotations

from dataclasses import dataclass

from anchor.payload import decode_payload
from anchor.replies import BLOCK_TX_COUNT_MAX, RAW_BLOCK_SIZE_MAX
from proof.errors import DecodeError
from proof.hashing import HASH_SIZE, sha256d
from proof.spv import HEADER_SIZE, ByteReader, parse_transaction

_TX_INPUT_SIZE_MIN = HASH_SIZE + 4 + 1 + 4


@dataclass(frozen=True)
class FoundAnchor:
    """One Pantheon anchor output in a block; hashes in internal byte order."""

    txid: bytes
    vout: int
    anchored_block_hash: bytes


def anchors_in_block(raw_block: bytes, block_hash: bytes) -> list[FoundAnchor]:
    """Every transaction of ``raw_block`` with exactly one Pantheon anchor output.

    Raises DecodeError unless the bytes are a whole block whose header hashes to
    ``block_hash``: a block that does not parse is bitcoind's fault, not a reason to
    skip it silently."""
    if len(raw_block) > RAW_BLOCK_SIZE_MAX:
        raise DecodeError(f"block is {len(raw_block)} bytes, above {RAW_BLOCK_SIZE_MAX}")
    if sha256d(raw_block[:HEADER_SIZE]) != block_hash:
        raise DecodeError("block's header does not hash to the block asked for")
    reader = ByteReader(raw_block, "block")
    reader.take(HEADER_SIZE, "header")
    count = reader.count("transaction count", 60)
    if not 1 <= count <= BLOCK_TX_COUNT_MAX:
        raise DecodeError(f"block has {count} transactions, expected 1..{BLOCK_TX_COUNT_MAX}")
    found = []
    for index in range(count):
        start = reader.offset
        _skip_transaction(reader, index)
        tx = parse_transaction(raw_block[start : reader.offset])
        anchors = []
        for vout, script in tx.op_return_outputs():
            try:
                anchors.append((vout, decode_payload(script)))
            except DecodeError:
                continue
        if len(anchors) == 1:
            found.append(FoundAnchor(tx.txid, anchors[0][0], anchors[0][1]))
    if reader.remaining():
        raise DecodeError(f"block: {reader.remaining()} trailing bytes after its last transaction")
    return found


def _skip_transaction(reader: ByteReader, index: int) -> None:
    """Move past one serialized transaction (BIP 144 witness form included); the bytes
    are then parsed strictly by parse_transaction."""
    reader.take(4, f"tx {index} version")
    data, at = reader.data, reader.offset
    has_witness = at + 1 < len(data) and data[at] == 0 and data[at + 1] != 0
    if has_witness:
        reader.take(2, f"tx {index} witness marker")
    inputs = reader.count(f"tx {index} input count", _TX_INPUT_SIZE_MIN)
    for i in range(inputs):
        reader.take(HASH_SIZE + 4, f"tx {index} input {i} outpoint")
        reader.take(reader.count(f"tx {index} input {i} script length", 1), f"tx {index} input {i} script")
        reader.take(4, f"tx {index} input {i} sequence")
    for i in range(reader.count(f"tx {index} output count", 9)):
        reader.take(8, f"tx {index} output {i} value")
        reader.take(reader.count(f"tx {index} output {i} script length", 1), f"tx {index} output {i} script")
    if has_witness:
        for i in range(inputs):
            for j in range(reader.count(f"tx {index} input {i} witness items", 1)):
                reader.take(reader.count(f"tx {index} witness {i}.{j} length", 1), f"tx {index} witness {i}.{j}")
    reader.take(4, f"tx {index} lock time")
