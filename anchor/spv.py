"""Extract the SPV material of a confirmed anchor from bitcoind.

``gettxoutproof`` returns a BIP 37 merkle block: the 80-byte header, the block's
transaction count, and a partial merkle tree (hashes plus flag bits, walked depth
first). python-bitcoinlib 0.12.2 has no parser for it, so it is parsed here and
turned into what an auditor checks: the plain branch (sibling hashes, lowest level
first) and the position of the one transaction. The result is checked with
proof.spv before it is returned, so a bundle never carries material that fails.
"""

from __future__ import annotations

from dataclasses import dataclass

from anchor.replies import BLOCK_TX_COUNT_MAX
from anchor.rpc import BitcoindRPC
from proof.errors import DecodeError, PantheonError, ProofError
from proof.hashing import HASH_SIZE, sha256d
from proof.spv import HEADER_SIZE, ByteReader, hash_to_hex, hex_to_hash, parse_header, verify_spv


class SpvMaterialError(PantheonError):
    """bitcoind's proof material for a transaction is missing or does not hold together."""


@dataclass(frozen=True)
class SpvMaterial:
    """Everything proof.spv.verify_spv needs; hashes in internal byte order."""

    raw_tx: bytes
    txid: bytes
    branch: tuple[bytes, ...]
    index: int
    header: bytes


@dataclass(frozen=True)
class MerkleBlock:
    """A parsed BIP 37 merkle block, reduced to one matched transaction."""

    header: bytes
    tx_count: int
    txid: bytes
    index: int
    branch: tuple[bytes, ...]


def _tree_width(tx_count: int, height: int) -> int:
    return (tx_count + (1 << height) - 1) >> height


def parse_merkle_block(data: bytes) -> MerkleBlock:
    """Parse ``gettxoutproof`` output that matches exactly one transaction.

    Walks the partial merkle tree as Bitcoin Core's CPartialMerkleTree does
    (TraverseAndExtract), refusing the same malformed trees: unused hashes or flag
    bits, more hashes than leaves, a computed root other than the header's. Every
    node hash met on the walk is kept, so the matched leaf's siblings can be read off.
    """
    r = ByteReader(data, "merkle block")
    header = r.take(HEADER_SIZE, "header")
    tx_count = r.uint(4, "transaction count")
    if not 0 < tx_count <= BLOCK_TX_COUNT_MAX:
        raise DecodeError(f"merkle block: transaction count {tx_count} is outside 1..{BLOCK_TX_COUNT_MAX}")
    hashes = [r.take(HASH_SIZE, f"hash {i}") for i in range(r.count("hash count", HASH_SIZE))]
    flag_bytes = r.take(r.count("flag byte count", 1), "flags")
    if r.remaining():
        raise DecodeError(f"merkle block: {r.remaining()} trailing bytes")
    if len(hashes) > tx_count:
        raise DecodeError(f"merkle block has {len(hashes)} hashes for {tx_count} transactions")
    flags = [(flag_bytes[i // 8] >> (i % 8)) & 1 for i in range(len(flag_bytes) * 8)]
    height = 0
    while _tree_width(tx_count, height) > 1:
        height += 1

    nodes: dict[tuple[int, int], bytes] = {}
    matches: list[int] = []
    cursor = _TreeCursor(hashes, flags)

    def walk(level: int, position: int) -> bytes:
        parent_of_match = cursor.next_flag()
        if level == 0 or not parent_of_match:
            node = cursor.next_hash()
            if level == 0 and parent_of_match:
                matches.append(position)
        else:
            left = walk(level - 1, position * 2)
            if position * 2 + 1 < _tree_width(tx_count, level - 1):
                right = walk(level - 1, position * 2 + 1)
                if right == left:
                    raise DecodeError("merkle block: two equal sibling hashes (CVE-2012-2459 mutation)")
            else:
                right = left
            node = sha256d(left + right)
        nodes[(level, position)] = node
        return node

    root = walk(height, 0)
    if cursor.hashes_used != len(hashes) or (cursor.flags_used + 7) // 8 != len(flag_bytes):
        raise DecodeError("merkle block: not every hash or flag byte was used")
    if root != parse_header(header).merkle_root:
        raise DecodeError("merkle block: the partial tree's root is not the header's merkle root")
    if len(matches) != 1:
        raise DecodeError(f"merkle block matches {len(matches)} transactions, expected exactly 1")
    index = matches[0]
    branch = []
    for level in range(height):
        position = index >> level
        sibling = position ^ 1
        if sibling >= _tree_width(tx_count, level):
            sibling = position
        branch.append(nodes[(level, sibling)])
    return MerkleBlock(header=header, tx_count=tx_count, txid=nodes[(0, index)], index=index, branch=tuple(branch))


class _TreeCursor:
    """Hands out the partial tree's hashes and flag bits in order; running out is a DecodeError."""

    def __init__(self, hashes: list[bytes], flags: list[int]) -> None:
        self.hashes = hashes
        self.flags = flags
        self.hashes_used = 0
        self.flags_used = 0

    def next_hash(self) -> bytes:
        if self.hashes_used >= len(self.hashes):
            raise DecodeError("merkle block: ran out of hashes")
        self.hashes_used += 1
        return self.hashes[self.hashes_used - 1]

    def next_flag(self) -> int:
        if self.flags_used >= len(self.flags):
            raise DecodeError("merkle block: ran out of flag bits")
        self.flags_used += 1
        return self.flags[self.flags_used - 1]


def extract_spv_material(rpc: BitcoindRPC, txid_hex: str, block_hash_hex: str, *, network: str) -> SpvMaterial:
    """SPV material of transaction ``txid_hex`` in block ``block_hash_hex`` (RPC hex forms).

    The block hash is always passed: without -txindex bitcoind cannot find a
    confirmed transaction (or prove it, once its outputs are spent) otherwise.
    """
    txid = hex_to_hash(txid_hex)
    block_hash = hex_to_hash(block_hash_hex)
    raw_tx = rpc.raw_transaction(txid, block_hash)
    try:
        merkle_block = parse_merkle_block(rpc.merkle_block(txid, block_hash))
    except DecodeError as exc:
        raise SpvMaterialError(f"gettxoutproof for {txid_hex} in block {block_hash_hex} does not parse: {exc}") from exc
    if merkle_block.txid != txid:
        raise SpvMaterialError(f"gettxoutproof for {txid_hex} matched {hash_to_hex(merkle_block.txid)} instead")
    material = SpvMaterial(
        raw_tx=raw_tx, txid=txid, branch=merkle_block.branch, index=merkle_block.index, header=merkle_block.header
    )
    try:
        claim = verify_spv(raw_tx, material.branch, material.index, material.header, network=network)
    except (DecodeError, ProofError) as exc:
        raise SpvMaterialError(f"SPV material of {txid_hex} in block {block_hash_hex} does not verify: {exc}") from exc
    if claim.block_hash != block_hash or claim.txid != txid:
        raise SpvMaterialError(
            f"SPV material of {txid_hex} proves {hash_to_hex(claim.txid)} in {hash_to_hex(claim.block_hash)}"
        )
    return material
