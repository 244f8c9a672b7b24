"""The durable mempool: acknowledged roots survive a restart; finalized ones leave."""

import os

import pytest

from node.mempool import Mempool, MempoolFull, split_roots, stored_arrivals
from storage import keys
from storage.db import Store
from storage.errors import StoreError
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


def _finalize(store: Store, log: MerkleLog, pool: Mempool, data: bytes) -> None:
    """What the node does with a finalized block: the log append and the deletion of finished
    records in one batch, then forget."""
    staged = log.stage_append(data)
    with store.batch() as batch:
        staged.write_to(batch)
        pool.delete_finished(batch)
    log.commit(staged)
    pool.forget(data)


def test_finalized_roots_are_gone_after_restart(tmp_path):
    with Store(tmp_path / "db") as store:
        log = MerkleLog(store)
        pool = Mempool(store, log, roots_max=100)
        pool.admit(roots(1, 2), received_at_ms=10)
        _finalize(store, log, pool, roots(1))
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
    """Roots held in the store's mempool records."""
    return sum(len(data) // 32 for _key, _at, _owner, data in stored_arrivals(store))


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


class Recorder:
    """A batch that records deletions and refuses writes."""

    def __init__(self) -> None:
        self.deleted: list[bytes] = []

    def put(self, key: bytes, value: bytes) -> None:
        raise AssertionError("finalizing writes no mempool record")

    def delete(self, key: bytes) -> None:
        self.deleted.append(key)


def test_a_submission_is_one_record_whatever_its_size(store):
    pool = Mempool(store, MerkleLog(store), roots_max=2000)
    pool.admit(os.urandom(32 * 1000), received_at_ms=10, owner="producer")
    assert sum(1 for _ in store.iterate(keys.MEMPOOL_ARRIVAL)) == 1 and _stored(store) == 1000


def test_a_record_is_deleted_once_all_its_roots_are_finalized_and_never_before(store):
    pool = Mempool(store, MerkleLog(store), roots_max=100)
    pool.admit(roots(1, 2), received_at_ms=10, owner="producer")
    pool.admit(roots(3), received_at_ms=10, owner="peer:1", durable=False)
    [(record, *_)] = stored_arrivals(store)
    pool.forget(roots(1, 3))
    batch = Recorder()
    pool.delete_finished(batch)
    assert batch.deleted == [], "root 2 still waits in that record"
    pool.forget(roots(2))
    pool.delete_finished(batch)
    assert batch.deleted == [record]
    pool.delete_finished(batch)
    assert batch.deleted == [record], "deleted once"


def test_a_record_whose_roots_were_all_logged_before_a_crash_is_deleted_at_start(tmp_path):
    """The crash came between the finalization batch and the next one, which deletes the record."""
    with Store(tmp_path / "db") as store:
        log = MerkleLog(store)
        pool = Mempool(store, log, roots_max=100)
        pool.admit(roots(1, 2), received_at_ms=10, owner="producer")
        _finalize(store, log, pool, roots(1, 2))
        assert _stored(store) == 2
    with Store(tmp_path / "db") as store:
        assert len(Mempool(store, MerkleLog(store), roots_max=100)) == 0
        assert _stored(store) == 0


def test_per_root_records_of_format_3_are_rewritten_as_one_arrival_and_keep_their_owner(tmp_path):
    with Store(tmp_path / "db") as store:
        with store.batch() as batch:
            for seed in (1, 2):
                batch.put(keys.MEMPOOL + roots(seed), (10).to_bytes(8, "big") + b"producer")
            batch.put(keys.MEMPOOL + roots(3), (20).to_bytes(8, "big"))
    with Store(tmp_path / "db") as store:
        pool = Mempool(store, MerkleLog(store), roots_max=100)
        assert pool.held_by("producer") == 2 and pool.held_by("") == 1
        assert pool.take(10) in (roots(1, 2, 3), roots(3, 1, 2))
        assert not any(True for _ in store.iterate(keys.MEMPOOL))
        assert sum(1 for _ in store.iterate(keys.MEMPOOL_ARRIVAL)) == 2
    with Store(tmp_path / "db") as store:
        assert Mempool(store, MerkleLog(store), roots_max=100).held_by("producer") == 2


def test_a_malformed_mempool_record_stops_the_start_with_a_clear_error(tmp_path):
    with Store(tmp_path / "db") as store:
        with store.batch() as batch:
            batch.put(keys.MEMPOOL_ARRIVAL + keys.u64(0), (10).to_bytes(8, "big") + b"\x05ab")
    with Store(tmp_path / "db") as store, pytest.raises(StoreError, match="mempool arrival .* is malformed"):
        Mempool(store, MerkleLog(store), roots_max=100)


def test_records_numbered_after_a_restart_do_not_overwrite_earlier_ones(tmp_path):
    with Store(tmp_path / "db") as store:
        Mempool(store, MerkleLog(store), roots_max=100).admit(roots(1), received_at_ms=10, owner="a")
    with Store(tmp_path / "db") as store:
        Mempool(store, MerkleLog(store), roots_max=100).admit(roots(2), received_at_ms=11, owner="a")
    with Store(tmp_path / "db") as store:
        assert Mempool(store, MerkleLog(store), roots_max=100).take(10) == roots(1, 2)


def test_an_admission_left_unwritten_is_durable_only_once_its_record_is_staged(store):
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
