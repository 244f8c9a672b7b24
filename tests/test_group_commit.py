"""Group commit: submissions that arrive together share one synced batch, and each is
answered only once the batch holding its records is written."""

from __future__ import annotations

import os
from contextlib import contextmanager

import pytest
import trio

from node.group_commit import GroupCommit
from node.mempool import Mempool, stored_arrivals
from storage.db import Store
from storage.errors import StoreWriteError
from storage.merkle_log import MerkleLog


class CountingStore(Store):
    """A Store that counts synced batches and can be told to fail them (a full disk)."""

    synced = 0
    fail = False

    @contextmanager
    def batch(self, *, sync: bool = True):
        if self.fail:
            raise StoreWriteError("cannot write to store: No space left on device")
        with super().batch(sync=sync) as batch:
            yield batch
        self.synced += sync


@pytest.fixture
def store(tmp_path):
    with CountingStore(tmp_path / "db") as s:
        yield s


def stored(store: Store) -> int:
    """Roots held in the store's mempool records."""
    return sum(len(data) // 32 for _key, _at, _owner, data in stored_arrivals(store))


async def test_submissions_that_arrive_together_are_made_durable_by_one_synced_batch(store):
    pool = Mempool(store, MerkleLog(store), roots_max=10_000)
    commit = GroupCommit(store, pool)
    answered = []

    async def submit(number: int) -> None:
        admission = pool.admit(os.urandom(32 * 10), 10, owner="producer", write=False)
        await commit.wait(commit.add(admission))
        answered.append((number, stored(store)))

    async with trio.open_nursery() as nursery:
        nursery.start_soon(commit.run)
        async with trio.open_nursery() as submitters:
            for number in range(20):
                submitters.start_soon(submit, number)
        nursery.cancel_scope.cancel()
    assert store.synced == 1
    assert sorted(number for number, _ in answered) == list(range(20))
    assert all(count == 200 for _, count in answered), "a receipt went out before its records were written"


async def test_a_submission_of_roots_another_is_still_writing_waits_for_that_batch(store):
    pool = Mempool(store, MerkleLog(store), roots_max=10_000)
    commit = GroupCommit(store, pool)
    roots = os.urandom(32 * 5)
    first = pool.admit(roots, 10, owner="producer-a", write=False)
    flush = commit.add(first)
    again = pool.admit(roots, 11, owner="producer-b", write=False)
    assert again.states == ("pending",) * 5 and not again.to_persist
    assert commit.add(again) is flush
    async with trio.open_nursery() as nursery:
        nursery.start_soon(commit.run)
        await commit.wait(commit.add(again))
        assert stored(store) == 5
        nursery.cancel_scope.cancel()


async def test_a_submission_with_nothing_unsynced_anywhere_needs_no_wait(store):
    pool = Mempool(store, MerkleLog(store), roots_max=10_000)
    commit = GroupCommit(store, pool)
    roots = os.urandom(32)
    pool.admit(roots, 10, owner="producer")
    assert commit.add(pool.admit(roots, 11, owner="producer", write=False)) is None


async def test_a_batch_that_cannot_be_written_fails_each_of_its_submissions_and_keeps_their_roots_only_in_memory(store):
    pool = Mempool(store, MerkleLog(store), roots_max=10_000)
    commit = GroupCommit(store, pool)
    roots = os.urandom(32 * 3)
    store.fail = True
    errors = []

    async def submit(data: bytes) -> None:
        try:
            await commit.wait(commit.add(pool.admit(data, 10, owner="producer", write=False)))
        except StoreWriteError as exc:
            errors.append(str(exc))

    async with trio.open_nursery() as nursery:
        nursery.start_soon(commit.run)
        async with trio.open_nursery() as submitters:
            submitters.start_soon(submit, roots)
            submitters.start_soon(submit, os.urandom(32))
        nursery.cancel_scope.cancel()
    assert len(errors) == 2 and all("No space left" in e for e in errors)
    assert stored(store) == 0
    assert roots[:32] in pool and not pool.is_durable(roots[:32])
    store.fail = False
    assert pool.admit(roots, 12, owner="producer").to_persist == roots, "a retry makes them durable"
