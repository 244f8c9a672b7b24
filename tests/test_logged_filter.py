"""The in-memory filter in front of "already logged?": it may send a question to LevelDB for
nothing, but it never calls a logged root unlogged."""

from __future__ import annotations

import os

import pytest

from storage.db import Store
from storage.logged_filter import BloomFilter, LoggedRoots
from storage.merkle_log import MerkleLog


@pytest.fixture
def store(tmp_path):
    with Store(tmp_path / "db") as s:
        yield s


def split(data: bytes) -> list[bytes]:
    return [data[i : i + 32] for i in range(0, len(data), 32)]


def test_a_bloom_filter_holds_every_root_added_and_rules_out_nearly_all_others():
    bloom = BloomFilter(50_000)
    added = os.urandom(32 * 50_000)
    bloom.add_roots(added)
    assert all(bloom.may_contain(root) for root in split(added))
    others = split(os.urandom(32 * 50_000))
    false_positives = sum(bloom.may_contain(root) for root in others)
    assert false_positives < 0.03 * len(others), false_positives


def test_before_the_filter_is_built_every_question_goes_to_the_log(store):
    log = MerkleLog(store)
    log.append(os.urandom(32 * 10))
    logged = LoggedRoots(log, store)
    assert not logged.ready
    assert logged.index_of(log.audit_root_at(3)) == 3
    assert logged.ruled_out([os.urandom(32)]) == frozenset()


def test_the_built_filter_finds_the_logged_roots_and_rules_out_the_others(store):
    log = MerkleLog(store)
    roots = os.urandom(32 * 5_000)
    log.append(roots)
    logged = LoggedRoots(log, store, capacity_min=1_000)
    logged.start()
    assert logged.wait_ready(30)
    assert [logged.index_of(root) for root in split(roots)[:100]] == list(range(100))
    absent = split(os.urandom(32 * 1_000))
    assert all(logged.index_of(root) is None for root in absent)
    assert len(logged.ruled_out(absent)) > 950


def test_roots_appended_after_the_start_are_found(store):
    log = MerkleLog(store)
    logged = LoggedRoots(log, store, capacity_min=1_000)
    logged.start()
    later = os.urandom(32 * 300)
    log.append(later)
    logged.added(later)
    assert logged.wait_ready(30)
    assert logged.ruled_out(split(later)) == frozenset()
    assert logged.index_of(later[32:64]) == 1


def test_a_log_that_outgrows_the_filter_gets_a_larger_one_and_loses_no_root(store):
    log = MerkleLog(store)
    logged = LoggedRoots(log, store, capacity_min=64)
    logged.start()
    assert logged.wait_ready(30)
    everything = b""
    for _ in range(20):
        batch = os.urandom(32 * 100)
        log.append(batch)
        logged.added(batch)
        everything += batch
    assert logged.wait_ready(30)
    assert logged.builds >= 2
    assert logged.ruled_out(split(everything)) == frozenset()


def test_the_roots_ruled_out_are_those_the_filter_rules_out_once_it_is_built(store):
    log = MerkleLog(store)
    logged_root = os.urandom(32)
    log.append(logged_root)
    logged = LoggedRoots(log, store, capacity_min=1_000)
    fresh = [os.urandom(32) for _ in range(1000)]
    assert logged.ruled_out(fresh) == frozenset()  # nothing is vouched for before the filter is built
    logged.start()
    assert logged.wait_ready(30)
    assert logged_root not in logged.ruled_out([logged_root, *fresh])
    assert len(logged.ruled_out(fresh)) > 950


def test_a_root_sharing_a_logged_roots_index_key_is_never_ruled_out(store):
    """Ruled out means no logged root shares the index record, which an append then writes
    unread: a new root with a logged root's first 8 bytes must be read first."""
    log = MerkleLog(store)
    logged_root = os.urandom(32)
    log.append(logged_root)
    logged = LoggedRoots(log, store, capacity_min=1_000)
    logged.start()
    assert logged.wait_ready(30)
    twins = [logged_root[:8] + os.urandom(24) for _ in range(100)]
    assert logged.ruled_out(twins) == frozenset()
    assert all(logged.index_of(twin) is None for twin in twins)


def test_closing_stops_a_build_under_way(store):
    log = MerkleLog(store)
    log.append(os.urandom(32 * 50_000))
    logged = LoggedRoots(log, store)
    logged.start()
    logged.close()
    assert logged._thread is not None and not logged._thread.is_alive()
