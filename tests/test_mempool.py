"""The durable mempool: acknowledged roots survive a restart; finalized ones leave."""

import os

import pytest

from node.mempool import Mempool, MempoolFull, split_roots
from storage import keys
from storage.db import Store
from storage.merkle_log import MerkleLog


def roots(*seeds: int) -> bytes:
    return b"".join(seed.to_bytes(32, "big") for seed in seeds)


@pytest.fixture
def store(tmp_path):
    with Store(tmp_path / "db") as s:
        yield s


def test_new_roots_are_admitted_and_counted(store):
    pool = Mempool(store, MerkleLog(store), roots_max=100)
    admission = pool.admit(roots(1, 2, 3), received_at_ms=10)
    assert admission.states == ("new", "new", "new")
    assert len(pool) == 3


def test_a_root_submitted_twice_is_pending_not_new(store):
    pool = Mempool(store, MerkleLog(store), roots_max=100)
    pool.admit(roots(1), received_at_ms=10)
    assert pool.admit(roots(1, 1, 2), received_at_ms=11).states == ("pending", "pending", "new")
    assert len(pool) == 2


def test_a_root_already_in_the_log_reports_its_index(store):
    log = MerkleLog(store)
    log.append(roots(7, 8))
    pool = Mempool(store, log, roots_max=100)
    admission = pool.admit(roots(8), received_at_ms=10)
    assert admission.states == ("logged",) and admission.indices == (1,)
    assert len(pool) == 0


def test_admitted_roots_survive_reopening_the_store(tmp_path):
    with Store(tmp_path / "db") as store:
        Mempool(store, MerkleLog(store), roots_max=100).admit(roots(4, 5), received_at_ms=10)
    with Store(tmp_path / "db") as store:
        pool = Mempool(store, MerkleLog(store), roots_max=100)
        assert pool.take(10) == roots(4, 5)


def test_take_returns_oldest_first_and_skips_roots_in_flight(store):
    pool = Mempool(store, MerkleLog(store), roots_max=100)
    pool.admit(roots(1, 2, 3, 4), received_at_ms=10)
    assert pool.take(2) == roots(1, 2)
    assert pool.take(2, exclude=[{roots(1)}, {roots(2)}]) == roots(3, 4)


def test_removed_roots_are_gone_after_restart(tmp_path):
    with Store(tmp_path / "db") as store:
        pool = Mempool(store, MerkleLog(store), roots_max=100)
        pool.admit(roots(1, 2), received_at_ms=10)
        with store.batch() as batch:
            pool.remove(roots(1), batch)
        pool.forget(roots(1))
        assert pool.take(10) == roots(2)
    with Store(tmp_path / "db") as store:
        assert Mempool(store, MerkleLog(store), roots_max=100).take(10) == roots(2)


def test_a_full_mempool_refuses_and_stores_nothing(store):
    pool = Mempool(store, MerkleLog(store), roots_max=2)
    pool.admit(roots(1), received_at_ms=10)
    with pytest.raises(MempoolFull, match="1 of 2"):
        pool.admit(roots(2, 3), received_at_ms=11)
    assert len(pool) == 1
    assert len(Mempool(store, MerkleLog(store), roots_max=2)) == 1


def test_roots_not_a_multiple_of_32_bytes_are_refused(store):
    pool = Mempool(store, MerkleLog(store), roots_max=10)
    with pytest.raises(ValueError, match="multiple of 32"):
        pool.admit(os.urandom(33), received_at_ms=1)


def test_roots_that_reached_the_log_are_dropped_from_the_mempool_at_start(tmp_path):
    """A stored mempool entry for a logged root (e.g. a group commit racing a finalization) is cleaned up."""
    with Store(tmp_path / "db") as store:
        log = MerkleLog(store)
        Mempool(store, log, roots_max=100).admit(roots(1, 2), received_at_ms=10)
        log.append(roots(1))
    with Store(tmp_path / "db") as store:
        pool = Mempool(store, MerkleLog(store), roots_max=100)
        assert pool.take(10) == roots(2)
    with Store(tmp_path / "db") as store:
        assert len(Mempool(store, MerkleLog(store), roots_max=100)) == 1


def _stored(store: Store) -> int:
    return sum(1 for _ in store.iterate(keys.MEMPOOL))


def test_gossiped_roots_are_held_in_memory_only_and_are_gone_after_a_restart(tmp_path):
    with Store(tmp_path / "db") as store:
        pool = Mempool(store, MerkleLog(store), roots_max=100)
        assert pool.admit(roots(1, 2), received_at_ms=10, owner="peer:1", durable=False).states == ("new", "new")
        assert len(pool) == 2 and not pool.is_durable(roots(1))
        assert _stored(store) == 0
    with Store(tmp_path / "db") as store:
        assert len(Mempool(store, MerkleLog(store), roots_max=100)) == 0


def test_submitting_a_root_that_waits_as_gossip_makes_it_durable(tmp_path):
    with Store(tmp_path / "db") as store:
        pool = Mempool(store, MerkleLog(store), roots_max=100)
        pool.admit(roots(1), received_at_ms=10, owner="peer:1", durable=False)
        admission = pool.admit(roots(1, 2), received_at_ms=11, owner="producer")
        assert admission.states == ("pending", "new")
        assert sorted(split_roots(admission.to_persist)) == sorted(split_roots(roots(1, 2)))
        assert pool.is_durable(roots(1)) and pool.is_durable(roots(2))
    with Store(tmp_path / "db") as store:
        assert Mempool(store, MerkleLog(store), roots_max=100).take(10) in (roots(1, 2), roots(2, 1))


def test_finalizing_deletes_the_records_of_durable_roots_only(store):
    pool = Mempool(store, MerkleLog(store), roots_max=100)
    pool.admit(roots(1), received_at_ms=10, owner="producer")
    pool.admit(roots(2), received_at_ms=10, owner="peer:1", durable=False)
    deleted = []

    class Recorder:
        def put(self, key: bytes, value: bytes) -> None:
            raise AssertionError("finalizing writes no mempool record")

        def delete(self, key: bytes) -> None:
            deleted.append(key)

    pool.remove(roots(1, 2, 3), Recorder())
    assert deleted == [keys.MEMPOOL + roots(1)]


def test_an_admission_left_unwritten_is_durable_only_once_its_records_are_staged(store):
    pool = Mempool(store, MerkleLog(store), roots_max=100)
    admission = pool.admit(roots(1, 2), received_at_ms=10, owner="producer", write=False)
    assert _stored(store) == 0
    with store.batch() as batch:
        pool.stage(admission, batch)
    assert _stored(store) == 2


def test_an_abandoned_admission_leaves_its_roots_waiting_but_not_durable(store):
    pool = Mempool(store, MerkleLog(store), roots_max=100)
    admission = pool.admit(roots(1, 2), received_at_ms=10, owner="producer", write=False)
    pool.abandon(admission)
    assert len(pool) == 2 and not pool.is_durable(roots(1)) and not pool.is_durable(roots(2))
    assert pool.admit(roots(1), received_at_ms=11, owner="producer").to_persist == roots(1)


def test_roots_received_at_time_zero_are_forgotten_like_any_other(tmp_path):
    """A root's packed value is 0 when it arrived at 0 ms, by owner 0, as gossip: still counted."""
    with Store(tmp_path / "db") as store:
        pool = Mempool(store, MerkleLog(store), roots_max=10)
        pool.admit(roots(1, 2), 0, durable=False)
        assert pool.held_by("") == 2
        pool.forget(roots(1, 2))
        assert pool.held_by("") == 0 and len(pool) == 0
