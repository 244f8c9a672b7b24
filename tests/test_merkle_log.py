"""The stored RFC 9162 Merkle log: appends, idempotency, reopen, proofs, read bounds, errors.

Expected roots and proofs come from ``tests/merkle_reference.py``, RFC 9162
section 2.1 written out recursively over the whole leaf list, and proofs are
checked with the production verifier ``proof.merkle`` as well.
"""

import hashlib
import math
import random
import tempfile

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from proof.errors import ProofError
from proof.merkle import verify_consistency, verify_inclusion
from storage import keys
from storage.db import Store
from storage.errors import LogError, StoreError
from storage.merkle_log import APPEND_ROOTS_MAX, MerkleLog
from tests import merkle_reference as ref

EMPTY_TREE_ROOT = bytes.fromhex("e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")


def audit_root(n: int) -> bytes:
    """A distinct 32-byte audit root per integer, reproducible across runs."""
    return hashlib.sha256(b"audit root %d" % n).digest()


def roots(first: int, count: int) -> list[bytes]:
    return [audit_root(n) for n in range(first, first + count)]


class CountingStore(Store):
    """Counts point reads, so that tests can bound the records a proof touches."""

    reads = 0

    def get(self, key: bytes) -> bytes | None:
        self.reads += 1
        return super().get(key)


@pytest.fixture
def store(tmp_path):
    with CountingStore(tmp_path / "db") as opened:
        yield opened


@pytest.fixture
def log(store):
    return MerkleLog(store)


def reads_during(store: CountingStore, action) -> int:
    before = store.reads
    action()
    return store.reads - before


# ---- appends ------------------------------------------------------------


def test_empty_log_has_size_zero_and_the_rfc_empty_root(log):
    assert log.size == 0
    assert log.root() == EMPTY_TREE_ROOT


def test_append_gives_consecutive_indices_and_sizes(log):
    first = log.append(roots(0, 3))
    second = log.append(roots(3, 2))
    assert list(first.indices) == [0, 1, 2]
    assert (first.old_size, first.new_size) == (0, 3)
    assert list(second.indices) == [3, 4]
    assert (second.old_size, second.new_size) == (3, 5)
    assert log.size == 5


def test_append_result_root_is_the_rfc_root_of_the_new_size(log):
    result = log.append(roots(0, 7))
    assert result.root == ref.mth(roots(0, 7)) == log.root()


def test_concatenated_bytes_and_a_sequence_append_the_same_log(tmp_path):
    with Store(tmp_path / "a") as a, Store(tmp_path / "b") as b:
        from_bytes = MerkleLog(a).append(b"".join(roots(0, 9)))
        from_list = MerkleLog(b).append(roots(0, 9))
        assert from_bytes.root == from_list.root
        assert list(from_bytes.indices) == list(from_list.indices)


def test_appending_a_known_root_keeps_its_index_and_the_size(log):
    log.append(roots(0, 4))
    result = log.append([audit_root(2)])
    assert list(result.indices) == [2]
    assert result.new_size == result.old_size == 4
    assert log.root() == ref.mth(roots(0, 4))


def test_a_root_repeated_inside_one_batch_is_appended_once(log):
    batch = [audit_root(0), audit_root(1), audit_root(0), audit_root(1), audit_root(2)]
    result = log.append(batch)
    assert list(result.indices) == [0, 1, 0, 1, 2]
    assert log.size == 3
    assert log.root() == ref.mth(roots(0, 3))


def test_a_mixed_batch_appends_only_the_new_roots_in_input_order(log):
    log.append(roots(0, 3))
    result = log.append([audit_root(10), audit_root(1), audit_root(11)])
    assert list(result.indices) == [3, 1, 4]
    assert log.root() == ref.mth(roots(0, 3) + [audit_root(10), audit_root(11)])


def test_an_empty_append_changes_nothing(log):
    log.append(roots(0, 2))
    result = log.append(b"")
    assert len(result.indices) == 0
    assert result.new_size == result.old_size == 2


def test_reopen_restores_size_root_and_edge(tmp_path):
    with Store(tmp_path / "db") as store:
        MerkleLog(store).append(roots(0, 13))
    with Store(tmp_path / "db") as store:
        reopened = MerkleLog(store)
        assert reopened.size == 13
        assert reopened.root() == ref.mth(roots(0, 13))
        assert reopened.compact_range().root() == ref.mth(roots(0, 13))
        reopened.append(roots(13, 6))
        assert reopened.root() == ref.mth(roots(0, 19))
        assert reopened.index_of(audit_root(5)) == 5


def test_reopen_reads_one_record_per_perfect_subtree(tmp_path):
    with Store(tmp_path / "db") as store:
        MerkleLog(store).append(roots(0, 0b1011011))
    with CountingStore(tmp_path / "db") as store:
        MerkleLog(store)
        assert store.reads == 2 + bin(0b1011011).count("1")  # the size and the format, then the edge


def test_compact_range_is_a_copy_the_caller_may_extend(log):
    log.append(roots(0, 5))
    edge = log.compact_range()
    edge.extend_roots(b"".join(roots(5, 3)))
    assert edge.root() == ref.mth(roots(0, 8))
    assert log.root() == ref.mth(roots(0, 5))


# ---- reads --------------------------------------------------------------


def test_root_at_every_past_size_is_the_rfc_root(log):
    entries = roots(0, 40)
    for start in range(0, 40, 9):
        log.append(entries[start : start + 9])
    assert log.root(0) == EMPTY_TREE_ROOT
    for size in range(1, 41):
        assert log.root(size) == ref.mth(entries[:size])


def test_index_of_finds_logged_roots_and_not_others(log):
    log.append(roots(0, 6))
    assert [log.index_of(r) for r in roots(0, 6)] == list(range(6))
    assert log.index_of(audit_root(99)) is None


def test_audit_root_and_leaf_hash_at_an_index(log):
    log.append(roots(0, 6))
    assert log.audit_root_at(4) == audit_root(4)
    assert log.leaf_hash_at(4) == ref.leaf(audit_root(4))


def test_audit_roots_reads_a_range_of_entries_in_order(log):
    log.append(roots(0, 20))
    assert log.audit_roots(5, 12) == b"".join(roots(5, 7))
    assert log.audit_roots(0, 20) == b"".join(roots(0, 20))
    assert log.audit_roots(7, 7) == b""


def test_inclusion_proofs_equal_rfc_path_for_every_index_and_size(log):
    entries = roots(0, 33)
    log.append(entries)
    for size in range(1, 34):
        for index in range(size):
            assert log.inclusion_proof(index, size) == ref.path(index, entries[:size])


def test_consistency_proofs_equal_rfc_proof_for_every_pair_of_sizes(log):
    entries = roots(0, 33)
    log.append(entries)
    for size2 in range(1, 34):
        for size1 in range(1, size2 + 1):
            assert log.consistency_proof(size1, size2) == ref.proof(size1, entries[:size2])


def test_proofs_default_to_the_current_size(log):
    entries = roots(0, 11)
    log.append(entries)
    assert log.inclusion_proof(3) == ref.path(3, entries)
    assert log.consistency_proof(5) == ref.proof(5, entries)


@pytest.mark.parametrize("size", [1, 2, 3, 5, 8, 13, 64, 100, 255, 256, 257, 1000, 1023, 1025, 4097])
def test_proofs_and_roots_read_at_most_two_records_per_level(tmp_path, size):
    with CountingStore(tmp_path / "db") as store:
        log = MerkleLog(store)
        for start in range(0, size, 1000):
            log.append(roots(start, min(1000, size - start)))
        bound = 2 * math.ceil(math.log2(size)) + 2
        rng = random.Random(size)
        indices = range(size) if size <= 64 else rng.sample(range(size), 64)
        for index in indices:
            assert reads_during(store, lambda: log.inclusion_proof(index, size)) <= bound
        for size1 in (range(1, size + 1) if size <= 64 else rng.sample(range(1, size + 1), 64)):
            assert reads_during(store, lambda: log.consistency_proof(size1, size)) <= bound
            assert reads_during(store, lambda: log.root(size1)) <= bin(size1).count("1")


# ---- staged appends (composition with other records) --------------------


def test_staged_append_writes_with_other_records_in_one_batch(store, log):
    log.append(roots(0, 3))
    staged = log.stage_append(roots(3, 2))
    with store.batch(sync=True) as batch:
        batch.put(keys.BLOCK_BY_HEIGHT + keys.u64(1), b"block")
        staged.write_to(batch)
    result = log.commit(staged)
    assert store.get(keys.BLOCK_BY_HEIGHT + keys.u64(1)) == b"block"
    assert list(result.indices) == [3, 4]
    assert log.size == 5
    assert log.root() == ref.mth(roots(0, 5))


def test_staging_changes_neither_the_store_nor_the_log(store, log):
    log.append(roots(0, 3))
    root_before = log.root()
    staged = log.stage_append(roots(3, 2))
    assert staged.root == ref.mth(roots(0, 5))
    assert log.size == 3
    assert log.root() == root_before
    assert log.index_of(audit_root(3)) is None
    assert MerkleLog(store).size == 3


def test_a_batch_that_fails_leaves_the_log_as_it_was(store, log):
    class Abort(Exception):
        pass

    log.append(roots(0, 3))
    staged = log.stage_append(roots(3, 2))
    with pytest.raises(Abort):
        with store.batch() as batch:
            staged.write_to(batch)
            raise Abort
    with pytest.raises(LogError, match="not in store"):
        log.commit(staged)
    assert log.size == 3
    assert log.append(roots(3, 2)).root == ref.mth(roots(0, 5))


def test_committing_a_stale_stage_is_refused(store, log):
    staged = log.stage_append(roots(0, 2))
    log.append(roots(10, 1))
    with pytest.raises(LogError, match="stale staged append"):
        log.commit(staged)


def test_committing_a_stage_twice_is_refused(store, log):
    staged = log.stage_append(roots(0, 2))
    with store.batch() as batch:
        staged.write_to(batch)
    log.commit(staged)
    with pytest.raises(LogError, match="stale staged append"):
        log.commit(staged)


def test_writing_a_stage_after_the_log_moved_is_refused(store, log):
    staged = log.stage_append(roots(0, 2))
    log.append(roots(10, 1))
    with pytest.raises(LogError, match="stale staged append"):
        with store.batch() as batch:
            staged.write_to(batch)
    assert log.audit_roots(0, 1) == audit_root(10)


def test_writing_a_superseded_stage_is_refused(store, log):
    older = log.stage_append(roots(0, 2))
    newer = log.stage_append(roots(5, 3))
    with pytest.raises(LogError, match="superseded"):
        with store.batch() as batch:
            older.write_to(batch)
    with store.batch() as batch:
        newer.write_to(batch)
    assert log.commit(newer).root == ref.mth(roots(5, 3))


def test_staging_after_a_written_but_uncommitted_stage_is_refused(store, log):
    staged = log.stage_append(roots(0, 2))
    with store.batch() as batch:
        staged.write_to(batch)
    with pytest.raises(LogError, match="never committed; reopen"):
        log.stage_append(roots(2, 1))
    assert MerkleLog(store).root() == ref.mth(roots(0, 2))


def test_committing_another_logs_stage_is_refused(tmp_path):
    with Store(tmp_path / "a") as a, Store(tmp_path / "b") as b:
        staged = MerkleLog(a).stage_append(roots(0, 1))
        with pytest.raises(LogError, match="different MerkleLog"):
            MerkleLog(b).commit(staged)


# ---- invalid requests ---------------------------------------------------


@pytest.mark.parametrize(
    "request_, message",
    [
        (lambda log: log.inclusion_proof(5, 5), "index 5 is outside a tree of size 5"),
        (lambda log: log.inclusion_proof(-1, 5), "index -1"),
        (lambda log: log.inclusion_proof(0, 6), "size 6 is outside the log"),
        (lambda log: log.inclusion_proof(0, 0), "index 0 is outside a tree of size 0"),
        (lambda log: log.consistency_proof(3, 2), "size1 3 must satisfy 0 < size1 <= size2 = 2"),
        (lambda log: log.consistency_proof(0, 2), "size1 0 must satisfy"),
        (lambda log: log.consistency_proof(1, 6), "size2 6 is outside the log"),
        (lambda log: log.root(6), "size 6 is outside the log"),
        (lambda log: log.root(-1), "size -1 is outside the log"),
        (lambda log: log.leaf_hash_at(5), "index 5 is outside"),
        (lambda log: log.audit_root_at(5), "index 5 is outside"),
        (lambda log: log.audit_roots(0, 6), "end 6 is outside the log"),
        (lambda log: log.audit_roots(3, 2), "start 3 must satisfy 0 <= start <= end = 2"),
        (lambda log: log.index_of(b"short"), "an audit root is 32 bytes, got 5 bytes"),
        (lambda log: log.append(b"\x00" * 33), "33 bytes, not a multiple of 32"),
        (lambda log: log.append([b"\x00" * 31]), "an audit root is 32 bytes, got 31 bytes"),
        (lambda log: log.append(b"\x00" * 32 * (APPEND_ROOTS_MAX + 1)), "at most"),
    ],
)
def test_invalid_requests_raise_log_error_saying_what_is_wrong(log, request_, message):
    log.append(roots(0, 5))
    with pytest.raises(LogError, match=message):
        request_(log)


def test_a_missing_tile_in_a_range_read_is_reported_as_corruption(store, log):
    log.append(roots(0, 40))
    with store.batch() as batch:
        batch.delete(keys.log_tile(1))
    with pytest.raises(StoreError, match=r"entries 10\.\.34 are incomplete.*corrupt"):
        log.audit_roots(10, 35)


def test_a_tile_cut_short_is_reported_as_corruption_on_every_read(store, log):
    log.append(roots(0, 20))
    with store.batch() as batch:
        batch.put(keys.log_tile(1), audit_root(99))
    with pytest.raises(StoreError, match=r"log tile 1 .* is 32 bytes, where 4 entries are needed.*corrupt"):
        log.audit_root_at(19)
    with pytest.raises(StoreError, match="corrupt"):
        log.audit_roots(0, 20)


def test_a_log_in_the_old_format_is_refused_with_what_to_do(store, log):
    log.append(roots(0, 3))
    with store.batch() as batch:
        batch.delete(keys.LOG_FORMAT)
    with pytest.raises(StoreError, match="storage format 1.*empty one: catch-up"):
        MerkleLog(store)




def test_a_missing_node_record_is_reported_as_corruption(store, log):
    log.append(roots(0, 64))
    with store.batch() as batch:
        batch.delete(keys.log_node(4, 1))
    with pytest.raises(StoreError, match=r"log node \(level 4, index 1\) is missing.*corrupt"):
        log.inclusion_proof(0, 64)


# ---- property: any sequence of appends ----------------------------------


def inclusion_probes(index, size, path, root, leaf):
    """Corruptions in the manner of transparency-dev/merkle's verify tests; none may verify."""
    other = hashlib.sha256(b"some other hash").digest()
    probes = [
        (leaf, index ^ 1, size, path, root),
        (leaf, index, size * 2, path, root),
        (leaf, index, size // 2, path, root),
        (other, index, size, path, root),
        (leaf, index, size, path, other),
        (leaf, index, size, path + [root], root),
        (leaf, index, size, [root] + path, root),
    ]
    if path:
        probes.append((leaf, index, size, path[:-1], root))
    for position in range(len(path)):
        flipped = list(path)
        flipped[position] = bytes([flipped[position][0] ^ 8]) + flipped[position][1:]
        probes.append((leaf, index, size, flipped, root))
    return probes


def consistency_probes(size1, size2, path, root1, root2):
    other = hashlib.sha256(b"some other hash").digest()
    probes = [
        (size1, size2 * 2, path, root1, root2),
        (size1, size2, path, other, root2),
        (size1, size2, path, root1, other),
        (size1, size2, path, root2, root1),
        (size1, size2, [], root1, root2),
        (size1, size2, path + [root2], root1, root2),
        (size1, size2, [root1] + path, root1, root2),
        (size1, size2, path[:-1], root1, root2),
    ]
    for position in range(len(path)):
        flipped = list(path)
        flipped[position] = bytes([flipped[position][0] ^ 16]) + flipped[position][1:]
        probes.append((size1, size2, flipped, root1, root2))
    return probes


batches_strategy = st.lists(
    st.lists(st.integers(0, 300), max_size=80),  # small integers repeat: repeated roots
    min_size=1,
    max_size=8,
)


@settings(max_examples=60, deadline=None)
@given(batches=batches_strategy, seed=st.integers(0, 2**32 - 1))
def test_any_sequence_of_appends_gives_rfc_roots_and_proofs_that_verify(batches, seed):
    rng = random.Random(seed)
    expected_index: dict[bytes, int] = {}
    entries: list[bytes] = []
    with tempfile.TemporaryDirectory() as directory, Store(directory) as store:
        log = MerkleLog(store)
        sizes = []
        for batch in batches:
            batch_roots = [audit_root(n) for n in batch]
            result = log.append(batch_roots)
            for root in batch_roots:
                if root not in expected_index:
                    expected_index[root] = len(entries)
                    entries.append(root)
            assert list(result.indices) == [expected_index[r] for r in batch_roots]
            assert result.new_size == len(entries)
            sizes.append(len(entries))
        assert log.size == len(entries)
        for size in set(sizes) | {0}:
            assert log.root(size) == ref.mth(entries[:size])
        if not entries:
            return
        for _ in range(6):
            size = rng.randint(1, len(entries))
            index = rng.randrange(size)
            root = log.root(size)
            leaf = log.leaf_hash_at(index)
            path = log.inclusion_proof(index, size)
            verify_inclusion(leaf, index, size, path, root)
            assert ref.rfc_verify_inclusion(index, size, leaf, path, root)
            for probe in inclusion_probes(index, size, path, root, leaf):
                with pytest.raises(ProofError):
                    verify_inclusion(*probe)

            size1 = rng.randint(1, size)
            root1 = log.root(size1)
            path = log.consistency_proof(size1, size)
            verify_consistency(size1, size, path, root1, root)
            if size1 == size:
                continue
            assert ref.rfc_verify_consistency(size1, size, root1, root, path)
            for probe in consistency_probes(size1, size, path, root1, root):
                with pytest.raises(ProofError):
                    verify_consistency(*probe)


def test_roots_left_out_of_lookup_skip_the_read_and_those_in_it_stay_idempotent(tmp_path):
    from storage.db import Store
    from storage.merkle_log import MerkleLog

    first, second, third = (bytes([i]) * 32 for i in (1, 2, 3))
    with Store(tmp_path / "db") as store:
        log = MerkleLog(store)
        log.append(first)
        asked = []
        candidates_of = log._index.candidates_of
        log._index.candidates_of = lambda roots: asked.extend(roots) or candidates_of(roots)
        staged = log.stage_append(first + second + third, lookup={first})
        assert list(staged.indices) == [0, 1, 2]
        assert staged.new_size == 3
        assert asked == [first, first]  # once to see whether all are new, once to place them


# ---- roots that share an index key (the first 8 bytes) -----------------------------


def twins(count: int, prefix: bytes = b"\x5a" * 8) -> list[bytes]:
    return [prefix + bytes([i]) * 24 for i in range(count)]


def test_roots_sharing_their_first_8_bytes_in_one_append_each_keep_their_index(store, log):
    shared = twins(3)
    result = log.append([audit_root(1), *shared, audit_root(2)])
    assert list(result.indices) == [0, 1, 2, 3, 4]
    assert [log.index_of(root) for root in shared] == [1, 2, 3]
    assert log.index_of(b"\x5a" * 8 + b"\xff" * 24) is None


def test_a_root_sharing_a_logged_roots_first_8_bytes_is_appended_without_losing_the_other(store, log):
    first, second = twins(2)
    log.append([audit_root(1), first])
    result = log.append([second, first])
    assert list(result.indices) == [2, 1]
    assert log.index_of(first) == 1 and log.index_of(second) == 2
    reopened = MerkleLog(store)
    assert reopened.index_of(first) == 1 and reopened.index_of(second) == 2


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.tuples(st.lists(st.integers(min_value=0, max_value=40), min_size=1, max_size=12), st.booleans()),
                min_size=1, max_size=6), st.sampled_from([4, 64]))
def test_appends_of_roots_from_a_few_index_keys_stay_idempotent_and_findable(tmp_path_factory, batches, key_count):
    """Roots drawn from a few index keys, so that nearly every append meets a shared record;
    half the appends name every root in ``lookup`` (the node's way, which first tries the
    path for all-new roots), the others leave ``lookup`` out (every root read)."""
    def root_of(n: int) -> bytes:
        return (n % key_count).to_bytes(8, "big") + n.to_bytes(24, "big")

    with Store(tmp_path_factory.mktemp("twins") / "db") as store:
        log = MerkleLog(store)
        seen: dict[bytes, int] = {}
        for batch, named in batches:
            roots_ = [root_of(n) for n in batch]
            staged = log.stage_append(roots_, lookup=set(roots_) if named else None)
            with store.batch(sync=True) as write:
                staged.write_to(write)
            result = log.commit(staged)
            for root, index in zip(roots_, result.indices):
                assert seen.setdefault(root, index) == index
        assert log.size == len(seen)
        assert all(log.index_of(root) == index for root, index in seen.items())
        assert all(log.audit_root_at(index) == root for root, index in seen.items())


# ---- an append handed the subtree hashes a block check computed --------------------


def _extend_kept(log, new_roots: list[bytes]) -> list[bytes]:
    from storage.merkle_log import TILE_LEVEL

    return log.compact_range().extend_roots(b"".join(new_roots), keep_level=TILE_LEVEL)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.integers(0, 80), min_size=1, max_size=5))
def test_an_append_given_the_checked_subtrees_stores_exactly_what_hashing_stores(tmp_path_factory, counts):
    from storage.db import Store
    from storage.merkle_log import MerkleLog

    base = tmp_path_factory.mktemp("given")
    with Store(base / "hashed") as hashed_store, Store(base / "given") as given_store:
        hashed, given = MerkleLog(hashed_store), MerkleLog(given_store)
        first = 0
        for count in counts:
            batch = roots(first, count)
            first += count
            hashed.append(batch)
            staged = given.stage_append(batch, subtrees=_extend_kept(given, batch))
            with given_store.batch(sync=True) as write:
                staged.write_to(write)
            given.commit(staged)
            assert given.root() == hashed.root()
        assert list(given_store.iterate(b"")) == list(hashed_store.iterate(b""))
        reopened = MerkleLog(given_store)
        assert reopened.root() == hashed.root()


def test_given_subtrees_are_set_aside_when_a_root_is_already_logged(log):
    log.append(roots(0, 20))
    batch = [*roots(20, 30), audit_root(3)]  # one already logged: the others' positions differ
    kept = _extend_kept(log, batch)
    result = log.stage_append(batch, subtrees=kept)
    assert list(result.indices) == [*range(20, 50), 3]
    assert result.new_size == 50
    assert result.root == ref.mth(roots(0, 50))


def test_given_subtrees_of_the_wrong_count_are_set_aside(log):
    log.append(roots(0, 5))
    batch = roots(5, 40)
    kept = _extend_kept(log, batch)
    result = log.stage_append(batch, subtrees=kept[:-1])
    assert result.root == ref.mth(roots(0, 45))


def test_the_log_stores_subtrees_from_the_level_block_checks_keep():
    from consensus.block import STORED_SUBTREE_LEVEL
    from storage.merkle_log import TILE_LEVEL

    assert STORED_SUBTREE_LEVEL == TILE_LEVEL
