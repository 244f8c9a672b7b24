"""proof.spv on hand-built data: transactions, merkle branches, headers, header chains.

References independent of proof.spv: Bitcoin's genesis block (header, coinbase,
hash), Bitcoin Core's SetCompact test vectors, and python-bitcoinlib for txids and
merkle trees (a separate implementation of the same consensus rules).
"""

import hashlib
import os

import pytest
from bitcoin.core import CBlock, CMutableTransaction, CMutableTxIn, CMutableTxOut, COutPoint, CTxInWitness
from bitcoin.core import CTransaction, CTxWitness
from bitcoin.core.script import CScript, CScriptWitness
from hypothesis import given, settings
from hypothesis import strategies as st

from proof.errors import DecodeError, ProofError
from proof.spv import (
    BRANCH_LENGTH_MAX,
    MAIN_WORK_FLOORS,
    POW_LIMITS,
    TEST_NETWORKS,
    check_header_chain,
    check_proof_of_work,
    fold_branch,
    hash_to_hex,
    hex_to_hash,
    main_work_floor,
    parse_header,
    parse_transaction,
    target_from_bits,
    verify_spv,
    work_of,
)

# Bitcoin's genesis block, as published (block 0 of mainnet).
GENESIS_HEADER = bytes.fromhex(
    "01000000" + "00" * 32
    + "3ba3edfd7a7b12b27ac72c3e67768f617fc81bc3888a51323a9fb8aa4b1e5e4a"
    + "29ab5f49" + "ffff001d" + "1dac2b7c"
)  # fmt: skip
GENESIS_HASH_HEX = "000000000019d6689c085ae165831e934ff763ae46a2a6c172b3f1b60a8ce26f"
GENESIS_COINBASE = bytes.fromhex(
    "01000000010000000000000000000000000000000000000000000000000000000000000000ffffffff"
    "4d04ffff001d0104455468652054696d65732030332f4a616e2f32303039204368616e63656c6c6f72"
    "206f6e206272696e6b206f66207365636f6e64206261696c6f757420666f722062616e6b73ffffffff"
    "0100f2052a01000000434104678afdb0fe5548271967f1a67130b7105cd6a828e03909a67962e0ea1f"
    "61deb649f6bc3f4cef38c4f35504e51ec112de5c384df7ba0b8d578a4c702b6bf11d5fac00000000"
)
GENESIS_MERKLE_ROOT_HEX = "4a5e1e4baab89f3a32518a88c31bc87f618f76673e2cc77ab2127b7afdeda33b"

REGTEST_BITS = 0x207FFFFF
MAINNET_DIFFICULTY_1_BITS = 0x1D00FFFF


def sha256d(data: bytes) -> bytes:
    return hashlib.sha256(hashlib.sha256(data).digest()).digest()


def make_tx(lock_time: int = 0, *, witness: bool = False, script: bytes = b"\x6a\x04test") -> bytes:
    tx = CMutableTransaction(
        [CMutableTxIn(COutPoint(os.urandom(32), 1), nSequence=0xFFFFFFFD)],
        [CMutableTxOut(1000, CScript(script))],
        nLockTime=lock_time,
        nVersion=2,
    )
    if witness:
        tx.wit = CTxWitness([CTxInWitness(CScriptWitness([b"\x01" * 71, b"\x02" * 33]))])
    return tx.serialize()


def tree_branches(txids: list[bytes]) -> tuple[bytes, list[list[bytes]]]:
    """Root and every leaf's branch, read off python-bitcoinlib's flat merkle tree."""
    tree = CBlock.build_merkle_tree_from_txids(txids)
    branches = []
    for index in range(len(txids)):
        branch, offset, size, position = [], 0, len(txids), index
        while size > 1:
            sibling = position ^ 1 if position ^ 1 < size else position
            branch.append(tree[offset + sibling])
            offset += size
            size = (size + 1) // 2
            position //= 2
        branches.append(branch)
    return tree[-1], branches


def mine_header(merkle_root: bytes, *, prev_hash: bytes = b"\x00" * 32, bits: int = REGTEST_BITS) -> bytes:
    target = target_from_bits(bits)
    for nonce in range(1 << 16):
        header = (
            (0x20000000).to_bytes(4, "little") + prev_hash + merkle_root
            + (1_700_000_000).to_bytes(4, "little") + bits.to_bytes(4, "little") + nonce.to_bytes(4, "little")
        )  # fmt: skip
        if int.from_bytes(sha256d(header), "little") <= target:
            return header
    raise AssertionError("no nonce found in 65536 tries")


def header_missing_target(merkle_root: bytes, bits: int) -> bytes:
    """A header whose hash does NOT meet the target of ``bits``."""
    target = target_from_bits(bits)
    for nonce in range(1 << 16):
        header = (
            (0x20000000).to_bytes(4, "little") + b"\x00" * 32 + merkle_root
            + (1_700_000_000).to_bytes(4, "little") + bits.to_bytes(4, "little") + nonce.to_bytes(4, "little")
        )  # fmt: skip
        if int.from_bytes(sha256d(header), "little") > target:
            return header
    raise AssertionError("every nonce met the target")


def block_of(raw_txs_and_hashes: list[bytes], tx_position: int, raw_tx: bytes):
    """Leaves = the given txids, with ``raw_tx``'s txid placed at ``tx_position``."""
    txids = list(raw_txs_and_hashes)
    txids[tx_position] = CTransaction.deserialize(raw_tx).GetTxid()
    root, branches = tree_branches(txids)
    return mine_header(root), branches[tx_position]


# Transactions


def test_genesis_coinbase_txid_is_the_published_merkle_root():
    tx = parse_transaction(GENESIS_COINBASE)
    assert hash_to_hex(tx.txid) == GENESIS_MERKLE_ROOT_HEX
    assert tx.outputs[0].value_sat == 50 * 100_000_000


def test_segwit_txid_excludes_the_witness_and_wtxid_includes_it():
    raw = make_tx(witness=True)
    reference = CTransaction.deserialize(raw)
    tx = parse_transaction(raw)
    assert tx.has_witness
    assert tx.txid == reference.GetTxid()
    assert tx.wtxid == sha256d(raw) != tx.txid


def test_segwit_txid_equals_the_txid_of_the_same_transaction_without_witness():
    raw = make_tx(witness=True)
    stripped = CTransaction.deserialize(raw)
    without_witness = CMutableTransaction.from_tx(stripped)
    without_witness.wit = CTxWitness()
    assert parse_transaction(raw).txid == parse_transaction(without_witness.serialize()).txid


def test_legacy_txid_matches_python_bitcoinlib():
    raw = make_tx(lock_time=7)
    assert parse_transaction(raw).txid == CTransaction.deserialize(raw).GetTxid()


def test_op_return_outputs_are_listed_with_their_index():
    raw = make_tx(script=b"\x6a\x03abc")
    assert parse_transaction(raw).op_return_outputs() == ((0, b"\x6a\x03abc"),)


@pytest.mark.parametrize(
    "mutation, message",
    [
        (lambda raw: raw + b"\x00", "trailing"),
        (lambda raw: raw[:-1], "lock time"),
        (lambda raw: raw[:4] + b"\x00\x02" + raw[6:], "witness flag"),
        (lambda raw: raw[:4] + b"\xfd\x01\x00" + raw[5:], "non-canonical"),
    ],
    ids=["trailing-byte", "truncated", "unknown-witness-flag", "non-canonical-size"],
)
def test_malformed_transactions_are_refused(mutation, message):
    with pytest.raises(DecodeError, match=message):
        parse_transaction(mutation(make_tx(witness=True) if "witness" in message else make_tx()))


def test_transaction_with_a_witness_flag_but_empty_witnesses_is_refused():
    raw = make_tx()
    # marker + flag, then one empty witness stack before the lock time
    with_empty_witness = raw[:4] + b"\x00\x01" + raw[4:-4] + b"\x00" + raw[-4:]
    with pytest.raises(DecodeError, match="every witness is empty"):
        parse_transaction(with_empty_witness)


def test_a_count_larger_than_the_bytes_left_is_refused_before_looping():
    raw = make_tx()
    with pytest.raises(DecodeError, match="input count"):
        parse_transaction(raw[:4] + b"\xfe\xff\xff\xff\x01" + raw[5:])


# Compact targets: vectors from Bitcoin Core's arith_uint256 tests (bignum_SetCompact).


@pytest.mark.parametrize(
    "bits, target",
    [
        (0x01123456, 0x12),
        (0x02123456, 0x1234),
        (0x03123456, 0x123456),
        (0x04123456, 0x12345600),
        (0x05009234, 0x92340000),
        (0x20123456, 0x123456 << (8 * 29)),
        (0x1D00FFFF, 0xFFFF << 208),
    ],
)
def test_compact_target_decodes_like_bitcoin_core(bits, target):
    assert target_from_bits(bits) == target


@pytest.mark.parametrize(
    "bits, message",
    [
        (0x01FEDCBA, "negative"),
        (0x04923456, "negative"),
        (0xFF123456, "above 2\\*\\*256"),
        (0x22000100, "above 2\\*\\*256"),
        (0x00123456, "zero"),
        (0x01003456, "zero"),
        (0x04000000, "zero"),
    ],
)
def test_negative_overflowing_and_zero_targets_are_refused(bits, message):
    with pytest.raises(ProofError, match=message):
        target_from_bits(bits)


# Headers


def test_genesis_header_hash_and_proof_of_work():
    header = parse_header(GENESIS_HEADER)
    assert hash_to_hex(header.hash) == GENESIS_HASH_HEX
    claim = verify_spv(GENESIS_COINBASE, [], 0, GENESIS_HEADER, network="main")
    assert hash_to_hex(claim.block_hash) == GENESIS_HASH_HEX
    assert claim.time == 1231006505 and claim.bits == MAINNET_DIFFICULTY_1_BITS


def test_header_whose_hash_misses_its_target_is_refused():
    raw = make_tx()
    header = header_missing_target(CTransaction.deserialize(raw).GetTxid(), MAINNET_DIFFICULTY_1_BITS)
    with pytest.raises(ProofError, match="insufficient proof of work"):
        verify_spv(raw, [], 0, header, network="regtest")


def test_regtest_difficulty_is_refused_on_mainnet():
    raw = make_tx()
    header = mine_header(CTransaction.deserialize(raw).GetTxid())
    with pytest.raises(ProofError, match="less work than main allows"):
        verify_spv(raw, [], 0, header, network="main")


def test_unknown_network_is_refused_by_name():
    raw = make_tx()
    header = mine_header(CTransaction.deserialize(raw).GetTxid())
    with pytest.raises(ProofError, match="unknown Bitcoin network 'mainnet'"):
        verify_spv(raw, [], 0, header, network="mainnet")


def test_header_of_wrong_size_is_refused():
    with pytest.raises(DecodeError, match="81 bytes"):
        parse_header(GENESIS_HEADER + b"\x00")


# Branches


@settings(max_examples=30, deadline=None)
@given(tx_count=st.integers(min_value=1, max_value=40), data=st.data())
def test_every_position_of_every_block_size_verifies(tx_count, data):
    position = data.draw(st.integers(min_value=0, max_value=tx_count - 1))
    raw = make_tx(lock_time=position)
    header, branch = block_of([os.urandom(32) for _ in range(tx_count)], position, raw)
    claim = verify_spv(raw, branch, position, header, network="regtest")
    assert claim.txid == CTransaction.deserialize(raw).GetTxid()
    assert claim.block_hash == sha256d(header)


def test_flipped_transaction_byte_is_refused():
    raw = make_tx()
    header, branch = block_of([os.urandom(32) for _ in range(5)], 2, raw)
    tampered = bytearray(raw)
    tampered[10] ^= 0x01
    with pytest.raises(ProofError, match="not to the header's merkle root"):
        verify_spv(bytes(tampered), branch, 2, header, network="regtest")


def test_every_flipped_branch_bit_sample_is_refused():
    raw = make_tx()
    header, branch = block_of([os.urandom(32) for _ in range(9)], 5, raw)
    for level in range(len(branch)):
        for bit in (0, 77, 255):
            node = bytearray(branch[level])
            node[bit // 8] ^= 1 << (bit % 8)
            tampered = list(branch)
            tampered[level] = bytes(node)
            with pytest.raises(ProofError):
                verify_spv(raw, tampered, 5, header, network="regtest")


@pytest.mark.parametrize("wrong_index", [4, 6, 1, 13])
def test_wrong_index_is_refused(wrong_index):
    raw = make_tx()
    header, branch = block_of([os.urandom(32) for _ in range(9)], 5, raw)
    with pytest.raises(ProofError):
        verify_spv(raw, branch, wrong_index, header, network="regtest")


def test_index_beyond_the_branch_length_is_refused():
    raw = make_tx()
    header, branch = block_of([os.urandom(32) for _ in range(4)], 1, raw)
    with pytest.raises(ProofError, match="does not fit a merkle branch of 2 nodes"):
        verify_spv(raw, branch, 1 + 4, header, network="regtest")


def test_branch_node_of_wrong_size_and_over_long_branch_are_refused():
    leaf = os.urandom(32)
    with pytest.raises(ProofError, match="31 bytes"):
        fold_branch(leaf, [os.urandom(31)], 0)
    with pytest.raises(ProofError, match="above the maximum"):
        fold_branch(leaf, [os.urandom(32)] * (BRANCH_LENGTH_MAX + 1), 0)


# Duplicate leaves (CVE-2012-2459)


def test_last_transaction_of_an_odd_block_verifies_with_itself_as_sibling():
    raw = make_tx()
    header, branch = block_of([os.urandom(32) for _ in range(3)], 2, raw)
    txid = CTransaction.deserialize(raw).GetTxid()
    assert branch[0] == txid
    assert verify_spv(raw, branch, 2, header, network="regtest").txid == txid


def test_phantom_copy_of_the_last_transaction_is_refused():
    """[a, b, c] and [a, b, c, c] share a root; position 3 exists only in the second."""
    raw = make_tx()
    header, branch = block_of([os.urandom(32) for _ in range(3)], 2, raw)
    with pytest.raises(ProofError, match="does not exist in the block"):
        verify_spv(raw, branch, 3, header, network="regtest")


def test_phantom_copy_of_a_duplicated_subtree_is_refused():
    """[1..6] and [1..6, 5, 6] share a root (Bitcoin Core's merkle.cpp example)."""
    raw = make_tx()
    header, branch = block_of([os.urandom(32) for _ in range(6)], 4, raw)
    assert verify_spv(raw, branch, 4, header, network="regtest")
    with pytest.raises(ProofError, match="does not exist in the block"):
        verify_spv(raw, branch, 6, header, network="regtest")


def test_duplicated_node_with_a_distinct_right_sibling_above_it_is_refused():
    """Mutated block [1, 2, c, c, 5, 6, 7, 8]: c looks like the last node of its level,
    yet its parent has a real right sibling. Bitcoin Core refuses such a block."""
    raw = make_tx()
    txid = CTransaction.deserialize(raw).GetTxid()
    leaves = [os.urandom(32), os.urandom(32), txid, txid] + [os.urandom(32) for _ in range(4)]
    root, branches = tree_branches(leaves)
    header = mine_header(root)
    assert branches[2][0] == txid
    with pytest.raises(ProofError, match="no tree has that shape"):
        verify_spv(raw, branches[2], 2, header, network="regtest")
    # the other leaves of the same mutated block still verify: only the ambiguous path is refused
    other = make_tx(lock_time=9)
    leaves[5] = CTransaction.deserialize(other).GetTxid()
    root, branches = tree_branches(leaves)
    assert verify_spv(other, branches[5], 5, mine_header(root), network="regtest")


# 64-byte transactions


def sixty_four_byte_tx(lock_time: int = 0) -> bytes:
    """A well-formed transaction of exactly 64 bytes: one input with an empty script,
    one output with a 4-byte script."""
    raw = make_tx(lock_time=lock_time, script=b"\x6a\x02ab")
    assert len(raw) == 64, len(raw)
    return raw


def test_sixty_four_byte_transaction_is_refused():
    raw = sixty_four_byte_tx()
    assert CTransaction.deserialize(raw).GetTxid()  # it is a transaction to python-bitcoinlib too
    header, branch = block_of([os.urandom(32) for _ in range(4)], 1, raw)
    with pytest.raises(ProofError, match="indistinguishable from a merkle inner node"):
        verify_spv(raw, branch, 1, header, network="regtest")


def test_inner_node_that_parses_as_a_transaction_is_refused():
    """A branch whose (node || sibling) is a complete 64-byte transaction could be a real
    64-byte transaction passed off as an inner node. The sibling can be chosen to make
    that happen whenever byte 4 of the txid is 0x01 (one input)."""
    for lock_time in range(100_000):
        raw = make_tx(lock_time=lock_time)
        txid = parse_transaction(raw).txid
        if txid[4] == 0x01:
            break
    else:
        raise AssertionError("no txid with byte 4 == 1 in 100000 tries")
    template = sixty_four_byte_tx()
    sibling = template[32:]
    preimage = txid + sibling
    assert parse_transaction(preimage, allow_witness=False)  # the shape really is a transaction
    header = mine_header(sha256d(preimage))
    with pytest.raises(ProofError, match="parses as a transaction"):
        verify_spv(raw, [sibling], 0, header, network="regtest")


# Header chains


def make_chain(length: int) -> list[bytes]:
    headers = [mine_header(os.urandom(32))]
    for _ in range(length - 1):
        headers.append(mine_header(os.urandom(32), prev_hash=sha256d(headers[-1])))
    return headers


def test_linked_headers_form_a_chain_with_summed_work():
    headers = make_chain(4)
    chain = check_header_chain(headers, network="regtest")
    assert chain.hashes == tuple(sha256d(h) for h in headers)
    # regtest target 0x7fffff << 232 is just under 2**255: each header is worth 2 hashes
    assert chain.work == 4 * 2


def test_header_that_does_not_link_to_the_previous_is_refused():
    headers = make_chain(3)
    headers[2] = mine_header(os.urandom(32), prev_hash=os.urandom(32))
    with pytest.raises(ProofError, match="header 2 .* builds on"):
        check_header_chain(headers, network="regtest")


def test_header_chain_with_insufficient_work_is_refused():
    headers = make_chain(2)
    weak = header_missing_target(os.urandom(32), MAINNET_DIFFICULTY_1_BITS)
    weak = weak[:4] + sha256d(headers[-1]) + weak[36:]
    if int.from_bytes(sha256d(weak), "little") <= target_from_bits(MAINNET_DIFFICULTY_1_BITS):
        pytest.fail("relinking made the header meet difficulty 1 by chance")
    with pytest.raises(ProofError, match="insufficient proof of work"):
        check_header_chain(headers + [weak], network="regtest")


def test_empty_header_chain_is_refused():
    with pytest.raises(ProofError, match="empty"):
        check_header_chain([], network="regtest")


def test_hash_hex_round_trip_uses_bitcoins_reversed_order():
    assert hex_to_hash(GENESIS_HASH_HEX) == sha256d(GENESIS_HEADER)
    with pytest.raises(DecodeError, match="31 bytes"):
        hex_to_hash("00" * 31)


# The work floor of main


def bits_for_target(target: int) -> int:
    """The compact bits of the largest target not above ``target`` (Bitcoin Core's GetCompact, truncating)."""
    size = (target.bit_length() + 7) // 8
    word = target >> (8 * (size - 3)) if size >= 3 else target << (8 * (3 - size))
    if word & 0x00800000:
        word >>= 8
        size += 1
    return (size << 24) | word


def test_bitcoins_own_genesis_header_is_below_the_main_work_floor():
    """A real mainnet header at difficulty 1: valid for bitcoind in 2009, far too cheap to stand for time now."""
    header = parse_header(GENESIS_HEADER)
    assert check_proof_of_work(header, network="main") == target_from_bits(MAINNET_DIFFICULTY_1_BITS)
    with pytest.raises(ProofError, match="below the main work floor: difficulty 1, the floor is 1e"):
        check_proof_of_work(header, network="main", floor=main_work_floor(0))


def test_a_header_exactly_at_the_floor_passes_the_floor_and_is_then_judged_by_its_hash():
    floor = main_work_floor(0)
    bits = bits_for_target(floor.target_max)
    assert target_from_bits(bits) <= floor.target_max
    header = parse_header(header_missing_target(os.urandom(32), bits))
    with pytest.raises(ProofError, match="insufficient proof of work"):
        check_proof_of_work(header, network="main", floor=floor)


def test_the_floor_never_falls_and_starts_at_ten_to_the_twelve():
    floors = MAIN_WORK_FLOORS
    assert floors[0].since_ms == 0 and floors[0].difficulty == 10**12
    assert all(a.since_ms < b.since_ms and a.difficulty < b.difficulty for a, b in zip(floors, floors[1:]))
    # one header at the lowest floor is worth more than 4 * 10**21 expected hashes
    assert work_of(floors[0].target_max) > 4 * 10**21


def test_the_floor_in_force_is_the_last_one_begun():
    assert main_work_floor(1_577_836_800_000 - 1).difficulty == 10**12
    assert main_work_floor(1_577_836_800_000).difficulty == 5 * 10**12
    assert main_work_floor(2_000_000_000_000).difficulty == 25 * 10**12


def test_header_chain_reports_bits_and_work_of_every_header():
    headers = make_chain(3)
    chain = check_header_chain(headers, network="regtest")
    assert [h.bits for h in chain.headers] == [REGTEST_BITS] * 3
    assert [h.work for h in chain.headers] == [2, 2, 2]


def test_every_test_network_is_named_and_main_is_not_one():
    assert TEST_NETWORKS == {"test", "testnet4", "signet", "regtest"}
    assert set(POW_LIMITS) == TEST_NETWORKS | {"main"}


def test_the_spec_pins_the_same_floors_as_the_verifier():
    """docs/proof-format.md step 5.5 and MAIN_WORK_FLOORS are one table: an auditor reads the spec."""
    import re
    from pathlib import Path

    spec = (Path(__file__).parent.parent / "docs" / "proof-format.md").read_text()
    rows = re.findall(r"^\s*\| [^|]+ \| (\d+) \| ([0-9.]+ \* )?10\^(\d+) \|", spec, re.MULTILINE)
    pinned = [(int(since), round(float(mantissa[:-3]) * 10 ** int(exponent)) if mantissa else 10 ** int(exponent))
              for since, mantissa, exponent in rows]
    assert pinned == [(floor.since_ms, floor.difficulty) for floor in MAIN_WORK_FLOORS]
