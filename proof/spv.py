"""Bitcoin SPV checking for the anchor part of a proof bundle: transaction -> block header.

Pure (stdlib + proof.hashing): an auditor can read every rule here without knowing
python-bitcoinlib or having a node.

Theory of operation. An anchor is a Bitcoin transaction with an OP_RETURN output that
carries a Pantheon block hash. The SPV material is the raw transaction, the merkle
branch from its txid to the block's merkle root (sibling hashes, lowest level first),
the transaction's position ``index`` in the block, and the 80-byte block header.
``verify_spv`` recomputes the txid from the raw bytes, folds the branch up to a root,
compares it with the header's merkle root, and checks the header's proof of work
against the target encoded in its own ``bits`` and the network's proof-of-work limit.
``check_header_chain`` checks headers built on top of it (confirmations).

Byte order. Every hash in this module is ``bytes`` in Bitcoin's internal order (the
order inside serialized transactions and headers). Bitcoin's RPC and explorers print
hashes byte-reversed; ``hash_to_hex`` / ``hex_to_hash`` convert.

What a branch can NOT be made to prove (Bitcoin's merkle tree has two known
ambiguities; both are closed here, and each rule refuses no proof of a valid block):

1. Duplicated last node (CVE-2012-2459). A level with an odd number of nodes pairs
   its last node with itself. So the branch of the last node of such a level carries
   the node itself as its right sibling, and the same tree can also be read as
   having a phantom copy at the next position. Bitcoin Core refuses a block in which
   two real siblings are equal ("mutated" merkle tree, ``ComputeMerkleRoot``), so in
   a valid block equal siblings arise only from this duplication. Hence:
   a. a node whose LEFT sibling equals itself is a phantom copy: refused (it would
      "prove" a position that does not exist in the block);
   b. a node whose RIGHT sibling equals itself is the last node of its level, so its
      ancestors are the last nodes of theirs: wherever one of them is a left child,
      its sibling must equal it too. A branch that shows duplication and then a
      distinct right sibling further up describes no tree and is refused.
   Equal siblings at every level where the path runs on the right edge (rule b) is
   accepted: that is the genuine proof of the last transaction of a block with an
   odd count at those levels.
2. 64-byte transactions (the "leaf-node weakness", Lerner 2017; BIP 54 makes them
   invalid). An inner node is the double SHA-256 of 64 bytes (left || right), a
   transaction's txid the double SHA-256 of its bytes, so a 64-byte transaction and
   an inner node can stand in for each other:
   a. a transaction whose txid serialization (witness stripped) is exactly 64 bytes
      is refused, so an inner node can never be passed off as the anchor;
   b. every 64-byte preimage (left || right) computed on the way up is parsed as a
      transaction; if it parses, the branch is refused, so a real 64-byte
      transaction in the block can never be passed off as an inner node with a
      forged subtree below it. Honest inner nodes are pairs of hash outputs; one
      that also parses as a complete transaction (a version, one input with a
      consistent script length, one output, a lock time, no byte left over) is
      not expected to occur by chance (below 2**-40 per node).
   Peter Todd's alternative, comparing the branch length with the tree depth, needs
   the block's transaction count, which the header does not commit to.
3. A branch longer than needed: ``index`` must be < 2**len(branch); extra high bits
   would let one position be written several ways.

What the header check does NOT establish: that the header is in the best chain, or
that its bits are the difficulty the network required at that height. Anyone can
mine a header at the network's minimum difficulty, so for ``main`` a bundle's headers
must also meet a work floor (:data:`MAIN_WORK_FLOORS`), and the test networks
(:data:`TEST_NETWORKS`) are said to prove nothing about time. ``check_header_chain``
counts each header's work; an auditor with a node of their own compares with it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from proof.checks import enforced
from proof.errors import DecodeError, ProofError
from proof.hashing import HASH_SIZE, sha256d

HEADER_SIZE = 80
# Largest serialized transaction a block can hold (4,000,000 weight units).
TX_SIZE_MAX = 4_000_000
# The stripped (txid) size that makes a transaction ambiguous with an inner node.
TX_SIZE_INNER_NODE = 2 * HASH_SIZE
# A 4 MWU block holds fewer than 2**17 transactions; 24 levels leaves a wide margin.
BRANCH_LENGTH_MAX = 24
# Confirmations an auditor may check in one call (about 70 days of blocks).
HEADER_CHAIN_MAX = 10_000
# Consensus cap on an output's value (21 million BTC in satoshi).
MONEY_MAX_SAT = 21_000_000 * 100_000_000
# ReadCompactSize in Bitcoin Core refuses sizes above this.
COMPACT_SIZE_MAX = 0x02000000

# Minimum inputs/outputs sizes, used to bound counts before looping.
_TX_INPUT_SIZE_MIN = 32 + 4 + 1 + 4
_TX_OUTPUT_SIZE_MIN = 8 + 1
_OP_RETURN = 0x6A

MAIN = "main"
"""The one network whose proof of work stands for time: Bitcoin's mainnet (bitcoind's chain name)."""

# Proof-of-work limits by bitcoind's chain name (``getblockchaininfo``["chain"]).
POW_LIMITS: dict[str, int] = {
    MAIN: 0x00000000FFFF << 208,
    "test": 0x00000000FFFF << 208,
    "testnet4": 0x00000000FFFF << 208,
    "signet": 0x00000377AE << 216,
    "regtest": (1 << 255) - 1,
}
TEST_NETWORKS = frozenset(POW_LIMITS) - {MAIN}
"""Networks whose headers cost nothing to make: regtest takes one or two hashes; signet blocks
are authorised by a signature (BIP 325) that a bare header does not carry, so its bits can be
met on a laptop; testnet3 and testnet4 allow minimum-difficulty blocks after 20 minutes."""

DIFFICULTY_1_TARGET = 0x00000000FFFF << 208
"""The target of difficulty 1 (bits 0x1d00ffff): difficulty D means target DIFFICULTY_1_TARGET // D."""


@dataclass(frozen=True)
class WorkFloor:
    """The least difficulty a ``main`` header must carry, from ``since_ms`` on.

    Why a floor: a header at main's proof-of-work limit costs about 2**32 hashes, seconds on
    one GPU, and nothing in a bare header says it is not on the real chain. Mainnet's
    difficulty has never gone back below any floor in :data:`MAIN_WORK_FLOORS` after the
    floor's date, so a real anchor meets it and a fake one costs at least
    ``difficulty * 2**32`` hashes per header (above 4 * 10**21 at 10**12).
    """

    since_ms: int
    difficulty: int

    @property
    def target_max(self) -> int:
        return DIFFICULTY_1_TARGET // self.difficulty


MAIN_WORK_FLOORS: tuple[WorkFloor, ...] = (
    WorkFloor(since_ms=0, difficulty=10**12),
    WorkFloor(since_ms=1_577_836_800_000, difficulty=5 * 10**12),
    WorkFloor(since_ms=1_640_995_200_000, difficulty=10**13),
    WorkFloor(since_ms=1_704_067_200_000, difficulty=25 * 10**12),
)
"""Mainnet's difficulty floors, keyed to a time the forger cannot choose (docs/proof-format.md
section 6, step 5.5). Public history (difficulty of the first block of the year, and the
lowest after it): 2018 1.9e12 (lowest after: 1.9e12), 2020 1.4e13 (1.37e13, July 2021),
2022 2.4e13 (2.4e13), 2024 7.2e13 (7.2e13). Each floor is at most 0.52 of the lowest
difficulty seen after its date, so an honest anchor still verifies after the hash rate
halves; before 2018 no Pantheon chain existed, so the 10**12 floor holds for every earlier
time too. A later verifier adds rows; it never lowers one."""


def main_work_floor(at_ms: int) -> WorkFloor:
    """The floor in force at ``at_ms`` (milliseconds since 1970): the last one that began by then."""
    return [floor for floor in MAIN_WORK_FLOORS if floor.since_ms <= at_ms][-1]


@dataclass(frozen=True)
class TxOutput:
    value_sat: int
    script: bytes


@dataclass(frozen=True)
class Transaction:
    """The parts of a transaction an anchor check needs."""

    txid: bytes
    wtxid: bytes
    version: int
    input_count: int
    outputs: tuple[TxOutput, ...]
    lock_time: int
    has_witness: bool
    stripped_size: int

    def op_return_outputs(self) -> tuple[tuple[int, bytes], ...]:
        """(output index, script) of every output whose script starts with OP_RETURN."""
        return tuple(
            (vout, out.script)
            for vout, out in enumerate(self.outputs)
            if out.script[:1] == bytes([_OP_RETURN])
        )


@dataclass(frozen=True)
class BlockHeader:
    version: int
    prev_hash: bytes
    merkle_root: bytes
    time: int
    bits: int
    nonce: int
    hash: bytes


@dataclass(frozen=True)
class SpvClaim:
    """What a verified SPV proof establishes: this transaction is in this header,
    and the header carries the work its bits demand. The block height is not in the
    header and so is not part of the claim."""

    txid: bytes
    block_hash: bytes
    time: int
    bits: int
    merkle_root: bytes
    transaction: Transaction


@dataclass(frozen=True)
class HeaderWork:
    """One checked header: its hash, its ``bits`` and the work they stand for (expected hashes)."""

    hash: bytes
    bits: int
    work: int


@dataclass(frozen=True)
class HeaderChain:
    """Headers that build on each other, each meeting its own target: the anchor's block first."""

    headers: tuple[HeaderWork, ...]

    @property
    def hashes(self) -> tuple[bytes, ...]:
        return tuple(header.hash for header in self.headers)

    @property
    def work(self) -> int:
        """Total work, as Bitcoin Core counts chainwork: the sum of 2**256 // (target + 1)."""
        return sum(header.work for header in self.headers)


def hash_to_hex(h: bytes) -> str:
    """Internal byte order -> the reversed hex that bitcoind and explorers print."""
    return h[::-1].hex()


def hex_to_hash(text: str) -> bytes:
    """Reversed hex (as bitcoind prints a txid or block hash) -> internal byte order."""
    try:
        raw = bytes.fromhex(text)
    except ValueError as exc:
        raise DecodeError(f"hash {text!r} is not hex: {exc}") from exc
    if len(raw) != HASH_SIZE:
        raise DecodeError(f"hash {text!r} is {len(raw)} bytes, expected {HASH_SIZE}")
    return raw[::-1]


class ByteReader:
    """Bounds-checked little-endian reads; every short read is a DecodeError naming the field."""

    def __init__(self, data: bytes, what: str) -> None:
        self.data = data
        self.offset = 0
        self.what = what

    def remaining(self) -> int:
        return len(self.data) - self.offset

    def take(self, size: int, field: str) -> bytes:
        if size > self.remaining():
            raise DecodeError(
                f"{self.what}: {field} needs {size} bytes at offset {self.offset}, "
                f"only {self.remaining()} left"
            )
        chunk = self.data[self.offset : self.offset + size]
        self.offset += size
        return chunk

    def uint(self, size: int, field: str) -> int:
        return int.from_bytes(self.take(size, field), "little")

    def compact_size(self, field: str) -> int:
        start = self.offset
        first = self.uint(1, field)
        if first < 0xFD:
            return first
        width, minimum = {0xFD: (2, 0xFD), 0xFE: (4, 0x10000), 0xFF: (8, 0x100000000)}[first]
        value = self.uint(width, field)
        if value < minimum and enforced("bitcoin.tx-compact-size"):
            raise DecodeError(f"{self.what}: {field} at offset {start} is a non-canonical compact size")
        if value > COMPACT_SIZE_MAX:
            raise DecodeError(f"{self.what}: {field} at offset {start} is {value}, above {COMPACT_SIZE_MAX}")
        return value

    def count(self, field: str, item_size_min: int) -> int:
        """A list length, refused when the bytes left cannot hold that many items."""
        start = self.offset
        value = self.compact_size(field)
        if value * item_size_min > self.remaining():
            raise DecodeError(
                f"{self.what}: {field} at offset {start} is {value}, more than the "
                f"{self.remaining()} bytes left can hold"
            )
        return value


def parse_transaction(raw: bytes, *, allow_witness: bool = True) -> Transaction:
    """Strictly parse a serialized transaction (BIP 144 witness form accepted).

    Refuses what Bitcoin Core's deserializer refuses (non-canonical sizes, a witness
    flag other than 1, an all-empty witness, trailing bytes) plus what no block can
    contain (no inputs, no outputs, values above 21 million BTC).
    """
    if len(raw) > TX_SIZE_MAX:
        raise DecodeError(f"transaction is {len(raw)} bytes, above the {TX_SIZE_MAX} byte maximum")
    r = ByteReader(raw, "transaction")
    version = r.uint(4, "version")
    has_witness = allow_witness and r.remaining() >= 2 and raw[4] == 0x00 and raw[5] != 0x00
    if has_witness:
        if raw[5] != 0x01:
            raise DecodeError(f"transaction: unknown witness flag {raw[5]:#04x} at offset 5")
        r.take(2, "witness marker and flag")
    body_start = r.offset
    input_count = r.count("input count", _TX_INPUT_SIZE_MIN)
    if input_count == 0 and enforced("bitcoin.tx-no-inputs"):
        raise DecodeError("transaction has no inputs")
    for i in range(input_count):
        r.take(HASH_SIZE + 4, f"input {i} outpoint")
        r.take(r.count(f"input {i} script length", 1), f"input {i} script")
        r.take(4, f"input {i} sequence")
    output_count = r.count("output count", _TX_OUTPUT_SIZE_MIN)
    if output_count == 0 and enforced("bitcoin.tx-no-outputs"):
        raise DecodeError("transaction has no outputs")
    outputs = []
    for i in range(output_count):
        value_sat = r.uint(8, f"output {i} value")
        if value_sat > MONEY_MAX_SAT and enforced("bitcoin.tx-value"):
            raise DecodeError(f"transaction: output {i} value {value_sat} sat is above 21 million BTC")
        script = r.take(r.count(f"output {i} script length", 1), f"output {i} script")
        outputs.append(TxOutput(value_sat, script))
    body_end = r.offset
    if has_witness:
        witness_items = 0
        for i in range(input_count):
            stack_size = r.count(f"input {i} witness item count", 1)
            witness_items += stack_size
            for j in range(stack_size):
                r.take(r.count(f"input {i} witness item {j} length", 1), f"input {i} witness item {j}")
        if witness_items == 0:
            raise DecodeError("transaction: witness flag set but every witness is empty")
    lock_time = r.uint(4, "lock time")
    if r.remaining() and enforced("bitcoin.tx-trailing"):
        raise DecodeError(f"transaction: {r.remaining()} trailing bytes after the lock time")
    stripped = raw[:4] + raw[body_start:body_end] + raw[-4:]
    return Transaction(
        txid=sha256d(stripped),
        wtxid=sha256d(raw),
        version=version,
        input_count=input_count,
        outputs=tuple(outputs),
        lock_time=lock_time,
        has_witness=has_witness,
        stripped_size=len(stripped),
    )


def _parses_as_transaction(preimage: bytes) -> bool:
    try:
        parse_transaction(preimage, allow_witness=False)
    except DecodeError:
        return False
    return True


def parse_header(header: bytes) -> BlockHeader:
    if len(header) != HEADER_SIZE:
        raise DecodeError(f"block header is {len(header)} bytes, expected {HEADER_SIZE}")
    return BlockHeader(
        version=int.from_bytes(header[0:4], "little"),
        prev_hash=header[4:36],
        merkle_root=header[36:68],
        time=int.from_bytes(header[68:72], "little"),
        bits=int.from_bytes(header[72:76], "little"),
        nonce=int.from_bytes(header[76:80], "little"),
        hash=sha256d(header),
    )


def target_from_bits(bits: int) -> int:
    """Decode the compact target exactly as Bitcoin Core's ``arith_uint256::SetCompact``
    and refuse what its CheckProofOfWork refuses: a negative, overflowing or zero target."""
    exponent = bits >> 24
    word = bits & 0x007FFFFF
    if exponent <= 3:
        word >>= 8 * (3 - exponent)
        target = word
    else:
        target = word << (8 * (exponent - 3))
    if word and bits & 0x00800000 and enforced("bitcoin.bits-negative"):
        raise ProofError(f"header bits {bits:#010x} encode a negative target")
    overflows = exponent > 34 or (word > 0xFF and exponent > 33) or (word > 0xFFFF and exponent > 32)
    if word and overflows and enforced("bitcoin.bits-overflow"):
        raise ProofError(f"header bits {bits:#010x} encode a target above 2**256")
    if target == 0 and enforced("bitcoin.bits-zero"):
        raise ProofError(f"header bits {bits:#010x} encode a zero target")
    return target


def pow_limit(network: str) -> int:
    if network not in POW_LIMITS and enforced("bitcoin.network"):
        raise ProofError(f"unknown Bitcoin network {network!r}; known: {', '.join(POW_LIMITS)}")
    return POW_LIMITS.get(network, 1 << 256)


def work_of(target: int) -> int:
    """Expected hashes to meet ``target``, exactly as Bitcoin Core's GetBlockProof counts it."""
    return (1 << 256) // (target + 1)


def check_proof_of_work(header: BlockHeader, *, network: str, floor: WorkFloor | None = None) -> int:
    """Raise unless the header hash meets its own target, within the network's limit and
    (for ``main`` in a bundle) the work floor; return the target.

    The bits are judged before the hash, so a header below the floor is refused as such
    whether or not someone ground it to its easy target.
    """
    target = target_from_bits(header.bits)
    limit = pow_limit(network)
    if target > limit and enforced("bitcoin.pow-limit"):
        raise ProofError(
            f"header {hash_to_hex(header.hash)} bits {header.bits:#010x} demand less work "
            f"than {network} allows"
        )
    if floor is not None and target > floor.target_max and enforced("bitcoin.work-floor"):
        raise ProofError(
            f"header {hash_to_hex(header.hash)} bits {header.bits:#010x} are below the {network} work floor: "
            f"difficulty {DIFFICULTY_1_TARGET / target:.3g}, the floor is {floor.difficulty:.3g} "
            "(mainnet has never been easier since then; a header this easy is cheap to forge)"
        )
    if int.from_bytes(header.hash, "little") > target and enforced("bitcoin.pow"):
        raise ProofError(
            f"header {hash_to_hex(header.hash)} does not meet the target of its bits "
            f"{header.bits:#010x}: insufficient proof of work"
        )
    return target


def fold_branch(leaf: bytes, branch: Sequence[bytes], index: int) -> bytes:
    """The root a merkle branch leads to, refusing the ambiguous shapes listed in the
    module docstring (rules 1a, 1b, 2b, 3)."""
    if len(leaf) != HASH_SIZE:
        raise ProofError(f"merkle leaf is {len(leaf)} bytes, expected {HASH_SIZE}")
    if len(branch) > BRANCH_LENGTH_MAX:
        raise ProofError(f"merkle branch has {len(branch)} nodes, above the maximum {BRANCH_LENGTH_MAX}")
    if (index < 0 or index >= 1 << len(branch)) and enforced("bitcoin.branch-index"):
        raise ProofError(
            f"position {index} does not fit a merkle branch of {len(branch)} nodes "
            f"(it must be below {1 << len(branch)})"
        )
    node = leaf
    duplicated_at = None
    for level, sibling in enumerate(branch):
        if len(sibling) != HASH_SIZE:
            raise ProofError(f"merkle branch node {level} is {len(sibling)} bytes, expected {HASH_SIZE}")
        is_right_child = (index >> level) & 1
        if is_right_child:
            if sibling == node and enforced("bitcoin.branch-left-duplicate"):
                raise ProofError(
                    f"merkle branch level {level}: the node equals its left sibling, so it is "
                    "the duplicate of an odd level's last node and position "
                    f"{index} does not exist in the block (CVE-2012-2459)"
                )
            preimage = sibling + node
        else:
            if sibling == node:
                if duplicated_at is None:
                    duplicated_at = level
            elif duplicated_at is not None and enforced("bitcoin.branch-right-duplicate"):
                raise ProofError(
                    f"merkle branch level {level}: the node was duplicated at level "
                    f"{duplicated_at} (last of its level) but here has a distinct right "
                    "sibling: no tree has that shape (CVE-2012-2459)"
                )
            preimage = node + sibling
        if _parses_as_transaction(preimage) and enforced("bitcoin.branch-inner-tx"):
            raise ProofError(
                f"merkle branch level {level}: the 64-byte inner node parses as a "
                "transaction, so the branch may pass a transaction off as an inner node"
            )
        node = sha256d(preimage)
    return node


def verify_spv(
    raw_tx: bytes, branch: Sequence[bytes], index: int, header: bytes, *, network: str,
    floor: WorkFloor | None = None,
) -> SpvClaim:
    """Check that ``raw_tx`` is at ``index`` in the block whose header is ``header``.

    ``network`` is bitcoind's chain name ("main", "test", "testnet4", "signet",
    "regtest"): it fixes the easiest target a header may claim. ``floor`` raises that
    minimum for ``main`` in a bundle; a node reading from its own bitcoind passes none.
    """
    tx = parse_transaction(raw_tx)
    if tx.stripped_size == TX_SIZE_INNER_NODE and enforced("bitcoin.tx-64-bytes"):
        raise ProofError(
            f"transaction {hash_to_hex(tx.txid)} is {TX_SIZE_INNER_NODE} bytes without its "
            "witness, which makes it indistinguishable from a merkle inner node"
        )
    parsed_header = parse_header(header)
    root = fold_branch(tx.txid, branch, index)
    if root != parsed_header.merkle_root and enforced("bitcoin.merkle-root"):
        raise ProofError(
            f"merkle branch of transaction {hash_to_hex(tx.txid)} at position {index} leads "
            f"to {hash_to_hex(root)}, not to the header's merkle root "
            f"{hash_to_hex(parsed_header.merkle_root)}"
        )
    check_proof_of_work(parsed_header, network=network, floor=floor)
    return SpvClaim(
        txid=tx.txid,
        block_hash=parsed_header.hash,
        time=parsed_header.time,
        bits=parsed_header.bits,
        merkle_root=parsed_header.merkle_root,
        transaction=tx,
    )


def check_header_chain(
    headers: Sequence[bytes], *, network: str, floor: WorkFloor | None = None
) -> HeaderChain:
    """Check that each header builds on the one before it and meets its own target (and ``floor``).

    Returns each header's hash, bits and work (expected hashes, as Bitcoin Core counts
    chainwork). The first header is the anchor's block; the rest are its confirmations.
    Retargeting is not checked: the work, and for ``main`` the floor, is what to judge.
    """
    if not headers:
        raise ProofError("header chain is empty")
    if len(headers) > HEADER_CHAIN_MAX:
        raise ProofError(f"header chain has {len(headers)} headers, above the maximum {HEADER_CHAIN_MAX}")
    checked: list[HeaderWork] = []
    for position, raw in enumerate(headers):
        header = parse_header(raw)
        if checked and header.prev_hash != checked[-1].hash and enforced("bitcoin.header-link"):
            raise ProofError(
                f"header {position} ({hash_to_hex(header.hash)}) builds on "
                f"{hash_to_hex(header.prev_hash)}, not on header {position - 1} "
                f"({hash_to_hex(checked[-1].hash)})"
            )
        target = check_proof_of_work(header, network=network, floor=floor)
        checked.append(HeaderWork(hash=header.hash, bits=header.bits, work=work_of(target)))
    return HeaderChain(headers=tuple(checked))
