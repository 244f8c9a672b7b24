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
    logged = LoggedRoots(log)
    assert not logged.ready
    assert logged.index_of(log.audit_root_at(3)) == 3
    assert logged.to_look_up([os.urandom(32)]) is None


def test_the_built_filter_finds_the_logged_roots_and_rules_out_the_others(store):
    log = MerkleLog(store)
    roots = os.urandom(32 * 5_000)
    log.append(roots)
    logged = LoggedRoots(log, capacity_min=1_000)
    logged.start()
    assert logged.wait_ready(30)
    assert [logged.index_of(root) for root in split(roots)[:100]] == list(range(100))
    absent = split(os.urandom(32 * 1_000))
    assert all(logged.index_of(root) is None for root in absent)
    assert len(logged.to_look_up(absent)) < 50


def test_roots_appended_after_the_start_are_found(store):
    log = MerkleLog(store)
    logged = LoggedRoots(log, capacity_min=1_000)
    logged.start()
    later = os.urandom(32 * 300)
    log.append(later)
    logged.added(later)
    assert logged.wait_ready(30)
    assert logged.to_look_up(split(later)) == frozenset(split(later))
    assert logged.index_of(later[32:64]) == 1


def test_a_log_that_outgrows_the_filter_gets_a_larger_one_and_loses_no_root(store):
    log = MerkleLog(store)
    logged = LoggedRoots(log, capacity_min=64)
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
    assert logged.to_look_up(split(everything)) == frozenset(split(everything))


def test_an_append_looks_up_only_the_roots_the_built_filter_cannot_rule_out(store):
    log = MerkleLog(store)
    logged_root = os.urandom(32)
    log.append(logged_root)
    logged = LoggedRoots(log, capacity_min=1_000)
    fresh = [os.urandom(32) for _ in range(1000)]
    assert logged.to_look_up(fresh) is None  # before the filter is built: every root
    logged.start()
    assert logged.wait_ready(30)
    assert logged_root in logged.to_look_up([logged_root, *fresh])
    assert len(logged.to_look_up(fresh)) < 50


def test_a_root_sharing_a_logged_roots_index_key_is_always_looked_up(store):
    """Ruled out means no logged root shares the index record, which an append then writes
    unread: a new root with a logged root's first 8 bytes must be read first."""
    log = MerkleLog(store)
    logged_root = os.urandom(32)
    log.append(logged_root)
    logged = LoggedRoots(log, capacity_min=1_000)
    logged.start()
    assert logged.wait_ready(30)
    twins = [logged_root[:8] + os.urandom(24) for _ in range(100)]
    assert logged.to_look_up(twins) == frozenset(twins)
    assert all(logged.index_of(twin) is None for twin in twins)


def test_closing_stops_a_build_under_way(store):
    log = MerkleLog(store)
    log.append(os.urandom(32 * 50_000))
    logged = LoggedRoots(log)
    logged.start()
    logged.close()
    assert logged._thread is not None and not logged._thread.is_alive()


def test_roots_added_in_one_batch_whose_bits_share_a_word_are_all_kept():
    """The vectorized add sets a word once per batch: keys landing in one word must all count."""
    bloom = BloomFilter(64)  # 1,024 bits in 16 words: a batch of 500 keys shares words everywhere
    roots = split(os.urandom(32 * 500))
    bloom.add_roots(roots)
    assert bloom.maybe(roots) == roots
    assert all(bloom.may_contain(root) for root in roots)


def test_the_batch_and_the_single_root_tests_agree():
    bloom = BloomFilter(2_000)
    bloom.add_roots(os.urandom(32 * 2_000))
    others = split(os.urandom(32 * 5_000))
    assert bloom.maybe(others) == [root for root in others if bloom.may_contain(root)]


def test_two_filters_place_the_same_root_differently():
    """The hash is keyed per filter (random multipliers): roots that collide in one do not in another."""
    first, second = BloomFilter(1_000), BloomFilter(1_000)
    roots = split(os.urandom(32 * 1_000))
    first.add_roots(roots)
    second.add_roots(roots)
    assert not (first._words == second._words).all()
