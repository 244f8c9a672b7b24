"""The root index: sorted runs of (key, index), merged in a worker, written to files, and
rebuilt from the log's entries wherever the files fall short. It may return candidates that
are not the root (a shared key), never miss one that is."""

from __future__ import annotations

import hashlib
import os

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from storage import keys, root_index
from storage.db import Store
from storage.merkle_log import FORMAT, MerkleLog
from storage.root_index import RootIndex, key_of

ENTRIES = 32


@pytest.fixture
def small_runs(monkeypatch):
    """Runs written from 64 entries and merged up to 512, so that a few thousand entries
    exercise files, merges and the worker."""
    monkeypatch.setattr(root_index, "PERSIST_ENTRIES_MIN", 64)
    monkeypatch.setattr(root_index, "RUN_ENTRIES_MAX", 512)


class Entries:
    """A log's entries in memory: what RootIndex rebuilds from."""

    def __init__(self) -> None:
        self.data = bytearray()

    def append(self, count: int) -> tuple[int, bytes]:
        start = len(self.data) // ENTRIES
        new = os.urandom(ENTRIES * count)
        self.data += new
        return start, new

    def read(self, start: int, end: int) -> bytes:
        return bytes(self.data[start * ENTRIES : end * ENTRIES])

    def root(self, index: int) -> bytes:
        return self.read(index, index + 1)

    def root_at(self, size: int) -> bytes:
        """Stands in for the log root at ``size``: any digest of the entries does."""
        return hashlib.sha256(self.read(0, size)).digest()

    def open(self, directory) -> RootIndex:
        return RootIndex(directory, self.size, self.read, self.root_at)

    def add_to(self, index: RootIndex, count: int) -> None:
        start, new = self.append(count)
        index.add(start, new, self.root_at(self.size))

    @property
    def size(self) -> int:
        return len(self.data) // ENTRIES


def grown(directory, entries: Entries, batches: list[int]) -> RootIndex:
    index = entries.open(directory)
    for count in batches:
        entries.add_to(index, count)
    return index


def written(directory, entries: Entries, batches: list[int]) -> None:
    """An index grown by ``batches``, its merges done and written, then closed."""
    index = grown(directory, entries, batches)
    assert index.wait_idle(30)
    index.close()


def assert_finds_every_entry(index: RootIndex, entries: Entries) -> None:
    assert index.size == entries.size
    for position in range(entries.size):
        assert position in index.candidates(entries.root(position))
    roots = [entries.root(position) for position in range(entries.size)]
    assert all(position in found for position, found in enumerate(index.candidates_of(roots)))


def test_every_added_entry_is_found_across_runs_and_merges(tmp_path, small_runs):
    entries = Entries()
    index = grown(tmp_path / "index", entries, [1, 7, 50, 3, 200, 90, 64, 1, 400, 17] * 3)
    assert index.wait_idle(30)
    assert_finds_every_entry(index, entries)
    assert index.persisted_entries > 0
    assert index.run_count < 20
    index.close()


def test_a_root_never_added_has_no_candidates(tmp_path, small_runs):
    entries = Entries()
    index = grown(tmp_path / "index", entries, [300, 300])
    assert index.candidates(os.urandom(32)) == []
    assert index.candidates_of([os.urandom(32), entries.root(5)])[0] == []
    index.close()


def test_roots_sharing_a_key_are_all_candidates(tmp_path):
    entries = Entries()
    index = entries.open(tmp_path / "index")
    twin = b"\x07" * 8
    entries.data += twin + b"a" * 24 + os.urandom(32) + twin + b"b" * 24
    index.add(0, entries.read(0, 3), entries.root_at(3))
    assert index.candidates(twin + b"c" * 24) == [0, 2]
    index.close()


def test_a_reopened_index_maps_its_files_and_rebuilds_the_rest_from_the_entries(tmp_path, small_runs):
    entries = Entries()
    index = grown(tmp_path / "index", entries, [100] * 13 + [10])  # the last 10 stay in memory
    assert index.wait_idle(30)
    persisted = index.persisted_entries
    index.close()
    assert 0 < persisted < entries.size
    reopened = entries.open(tmp_path / "index")
    assert reopened.persisted_entries == persisted
    assert reopened.set_aside == []
    assert_finds_every_entry(reopened, entries)
    reopened.close()


def test_a_damaged_run_file_is_set_aside_and_its_entries_rebuilt(tmp_path, small_runs):
    entries = Entries()
    written(tmp_path / "index", entries, [100] * 13)
    victim = sorted((tmp_path / "index").glob("run-*.idx"))[0]
    data = bytearray(victim.read_bytes())
    data[40] ^= 1
    victim.write_bytes(bytes(data))
    reopened = entries.open(tmp_path / "index")
    assert any("checksum" in reason for reason in reopened.set_aside), reopened.set_aside
    assert_finds_every_entry(reopened, entries)
    reopened.close()


def test_run_files_past_the_logs_size_are_set_aside(tmp_path, small_runs):
    """A log restored from an older copy than its index directory: the log is the truth."""
    entries = Entries()
    written(tmp_path / "index", entries, [100] * 13)
    shorter = Entries()
    shorter.data = entries.data[: 150 * ENTRIES]
    reopened = shorter.open(tmp_path / "index")
    assert any("but the log holds 150" in reason for reason in reopened.set_aside), reopened.set_aside
    assert_finds_every_entry(reopened, shorter)
    assert reopened.candidates(entries.root(1200)) == []
    reopened.close()


def test_the_run_files_of_another_log_are_set_aside(tmp_path, small_runs):
    """An index directory moved beside another log of the same length: its roots differ."""
    entries = Entries()
    written(tmp_path / "index", entries, [100] * 13)
    other = Entries()
    other.append(entries.size)
    reopened = other.open(tmp_path / "index")
    assert any("indexes another log" in reason for reason in reopened.set_aside), reopened.set_aside
    assert_finds_every_entry(reopened, other)
    assert reopened.candidates(entries.root(7)) == []
    reopened.close()


def test_the_inputs_of_a_merge_left_by_a_crash_are_removed_at_open(tmp_path, small_runs):
    entries = Entries()
    written(tmp_path / "index", entries, [100] * 13)
    files = sorted((tmp_path / "index").glob("run-*.idx"))
    first = files[0].name.split("-")
    start, end = int(first[1]), int(first[2].removesuffix(".idx"))
    # A merge's inputs, as a crash between the rename of the merged file and their removal leaves them.
    halves = RootIndex.__new__(RootIndex)
    halves._directory = tmp_path / "index"
    middle = (start + end) // 2
    for low, high in ((start, middle), (middle, end)):
        keys_ = root_index.keys_of(entries.read(low, high))
        order = keys_.argsort(kind="stable")
        halves._persist(root_index._Run(low, high, entries.root_at(high), keys_[order],
                                        root_index.np.arange(low, high, dtype="<u8")[order]))
    (tmp_path / "index" / "run-x.tmp").write_bytes(b"half written")
    reopened = entries.open(tmp_path / "index")
    assert sorted(p.name for p in (tmp_path / "index").iterdir()) == [p.name for p in files]
    assert_finds_every_entry(reopened, entries)
    reopened.close()


def test_entries_must_follow_the_ones_indexed(tmp_path):
    entries = Entries()
    index = entries.open(tmp_path / "index")
    entries.add_to(index, 3)
    with pytest.raises(Exception, match="entries from 5 cannot follow"):
        index.add(5, os.urandom(32), os.urandom(32))
    index.close()


def test_a_key_is_the_first_eight_bytes_little_endian():
    assert key_of(bytes(range(32))) == int.from_bytes(bytes(range(8)), "little")
    assert root_index.keys_of(bytes(range(32)) * 2).tolist() == [key_of(bytes(range(32)))] * 2


def test_a_format_2_store_is_upgraded_in_place(tmp_path):
    """Format 2 kept the map as LevelDB records: they go, the map is rebuilt, nothing else moves."""
    roots = [os.urandom(32) for _ in range(300)]
    with Store(tmp_path / "db") as store:
        log = MerkleLog(store)
        log.append(roots)
        root = log.root()
        log.close()
        with store.batch(sync=True) as batch:
            for index, value in enumerate(roots):
                batch.put(keys.log_index(value), keys.u64(index))
            batch.put(keys.LOG_FORMAT, b"\x02")
    for path in (tmp_path / "db" / "root-index").iterdir():
        path.unlink()
    with Store(tmp_path / "db") as store:
        log = MerkleLog(store)
        assert store.get(keys.LOG_FORMAT) == FORMAT
        assert list(store.iterate(keys.LOG_INDEX)) == []
        assert log.root() == root
        assert [log.index_of(value) for value in roots] == list(range(300))
        log.close()


def test_the_index_key_is_as_long_as_the_logs_index_key_bytes():
    assert root_index.KEY_DTYPE.itemsize == keys.INDEX_KEY_BYTES


def test_a_run_file_listing_indices_outside_its_range_is_set_aside(tmp_path):
    entries = Entries()
    entries.append(100)
    writer = RootIndex.__new__(RootIndex)
    writer._directory = tmp_path / "index"
    writer._directory.mkdir()
    keys_ = root_index.keys_of(entries.read(0, 100))
    order = keys_.argsort(kind="stable")
    wrong = root_index.np.arange(0, 100, dtype="<u8")[order] + 1  # one past: index 100 does not exist
    writer._persist(root_index._Run(0, 100, entries.root_at(100), keys_[order], wrong))
    reopened = entries.open(tmp_path / "index")
    assert any("indices outside 0..99" in reason for reason in reopened.set_aside), reopened.set_aside
    assert_finds_every_entry(reopened, entries)
    reopened.close()


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(0, 9), max_size=40), st.lists(st.integers(0, 9), min_size=1, max_size=40))
def test_a_merge_of_two_runs_is_their_stable_sort(older_keys, newer_keys):
    """Keys drawn from ten values, so that most keys repeat within and across the runs."""
    np = root_index.np

    def run(start: int, keys_: list[int]) -> root_index._Run:
        values = np.array(keys_, dtype="<u8")
        order = values.argsort(kind="stable")
        return root_index._Run(start, start + len(keys_), b"r" * 32, values[order],
                               np.arange(start, start + len(keys_), dtype="<u8")[order])

    merged = root_index._merged(run(0, older_keys), run(len(older_keys), newer_keys))
    everything = np.array(older_keys + newer_keys, dtype="<u8")
    order = everything.argsort(kind="stable")
    assert merged.keys.tolist() == everything[order].tolist()
    assert merged.indices.tolist() == order.tolist()
    assert (merged.start, merged.end) == (0, len(everything))
