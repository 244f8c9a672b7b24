"""Issue 14 (suspected on review, now bounded): a validator cannot fill another's mempool by
gossip, and a 4 MiB gossip frame does not hold the event loop.

Before node.gossip, runtime._on_gossip admitted a whole frame (up to 131,040 roots, one
LevelDB lookup each) in one synchronous call, with no limit per peer but the mempool's size.
"""

import os

import pytest
import trio

from node.gossip import GOSSIP_CHUNK_ROOTS, GossipAdmission, peer_owner
from node.mempool import Mempool
from node.metrics import NodeMetrics
from p2p.frames import MAX_FRAME_BYTES
from storage.db import Store
from storage.merkle_log import MerkleLog

FULL_FRAME_ROOTS = (MAX_FRAME_BYTES - 1024) // 32


class Clock:
    def __init__(self):
        self.now = 100.0

    def __call__(self):
        return self.now


@pytest.fixture
def store(tmp_path):
    with Store(tmp_path / "db") as s:
        yield s


def admission(store, *, roots_max=1_000_000, share=None, roots_per_s=0, burst=0, clock=None):
    pool = Mempool(store, MerkleLog(store), roots_max=roots_max, share_roots_max=share)
    metrics = NodeMetrics()
    gossip = GossipAdmission(pool, metrics, roots_per_s=roots_per_s, burst_roots=burst, clock=clock or Clock())
    return pool, metrics, gossip


def dropped(metrics, reason):
    return metrics.gossip_roots_dropped.labels(reason=reason)._value.get()


async def test_a_full_frame_is_admitted_in_chunks_and_other_tasks_run_meanwhile(store):
    pool, _metrics, gossip = admission(store)
    payload = os.urandom(32 * FULL_FRAME_ROOTS)
    ticks = 0
    done = trio.Event()

    async def other_task():
        nonlocal ticks
        while not done.is_set():
            ticks += 1
            await trio.lowlevel.checkpoint()

    async with trio.open_nursery() as nursery:
        nursery.start_soon(other_task)
        await trio.lowlevel.checkpoint()
        outcome = await gossip.admit(1, payload, 10)
        done.set()
    assert outcome.new_roots == FULL_FRAME_ROOTS and len(pool) == FULL_FRAME_ROOTS
    assert ticks >= FULL_FRAME_ROOTS // GOSSIP_CHUNK_ROOTS


async def test_a_peer_past_its_rate_has_the_rest_of_its_frame_dropped_and_counted(store):
    clock = Clock()
    pool, metrics, gossip = admission(store, roots_per_s=1000, burst=2000, clock=clock)
    outcome = await gossip.admit(1, os.urandom(32 * 5000), 10)
    assert (outcome.new_roots, outcome.dropped_roots, outcome.reason) == (2000, 3000, "rate")
    assert dropped(metrics, "rate") == 3000
    assert (await gossip.admit(1, os.urandom(32 * 10), 11)).new_roots == 0
    assert (await gossip.admit(2, os.urandom(32 * 10), 11)).new_roots == 10  # another peer has its own budget
    clock.now += 0.5
    assert (await gossip.admit(1, os.urandom(32 * 1000), 12)).new_roots == 500
    assert len(pool) == 2510


async def test_a_validator_cannot_fill_the_mempool_by_gossip(store):
    """One peer stops at its share; tokens and the other peers are still admitted."""
    pool, metrics, gossip = admission(store, roots_max=10_000, share=2_500)
    outcome = await gossip.admit(1, os.urandom(32 * 10_000), 10)
    assert (outcome.new_roots, outcome.reason) == (2_500, "share")
    assert pool.held_by(peer_owner(1)) == 2_500 and dropped(metrics, "share") == 7_500
    assert (await gossip.admit(2, os.urandom(32 * 100), 11)).new_roots == 100
    assert pool.admit(os.urandom(32 * 100), 12, owner="producer").states.count("new") == 100


async def test_gossip_into_a_full_mempool_is_dropped_as_full(store):
    pool, metrics, gossip = admission(store, roots_max=100)
    pool.admit(os.urandom(32 * 100), 10, owner="producer")
    outcome = await gossip.admit(1, os.urandom(32 * 10), 11)
    assert (outcome.new_roots, outcome.reason) == (0, "full") and dropped(metrics, "full") == 10


async def test_roots_already_waiting_are_not_stored_twice(store):
    pool, _metrics, gossip = admission(store)
    payload = os.urandom(32 * 10)
    pool.admit(payload, 10, owner="producer")
    outcome = await gossip.admit(1, payload, 11)
    assert (outcome.new_roots, outcome.dropped_roots) == (0, 0)
    assert pool.held_by("producer") == 10 and pool.held_by(peer_owner(1)) == 0


@pytest.mark.parametrize("payload", [b"", b"x" * 33])
async def test_malformed_gossip_is_counted_and_admits_nothing(store, payload):
    pool, metrics, gossip = admission(store)
    assert (await gossip.admit(1, payload, 10)).reason == "malformed"
    assert metrics.messages_rejected.labels(reason="gossip_malformed")._value.get() == 1 and len(pool) == 0


async def test_dropped_gossip_shows_in_metrics(store):
    _pool, metrics, gossip = admission(store, roots_per_s=10, burst=10)
    await gossip.admit(1, os.urandom(32 * 30), 10)
    assert 'pantheon_gossip_roots_dropped_total{reason="rate"} 20.0' in metrics.render().decode()


async def test_all_peers_together_never_fill_the_mempool_so_submissions_find_room(store):
    """Honest peers relaying one flood each stay within their share, but three shares of 25%
    and the flooding token's own would fill the mempool; gossip stops at its total instead."""
    pool = Mempool(store, MerkleLog(store), roots_max=1_000, share_roots_max=250)
    metrics = NodeMetrics()
    gossip = GossipAdmission(pool, metrics, roots_per_s=0, burst_roots=0, gossip_roots_max=500, clock=Clock())
    outcomes = [await gossip.admit(peer, os.urandom(32 * 250), 10) for peer in (1, 2, 3)]
    assert [o.new_roots for o in outcomes] == [250, 250, 0] and outcomes[2].reason == "gossip_full"
    assert gossip.gossip_held() == 500 and dropped(metrics, "gossip_full") == 250
    pool.admit(os.urandom(32 * 250), 11, owner="flood")
    assert pool.admit(os.urandom(32), 12, owner="quiet").states == ("new",)


async def test_roots_past_the_rate_and_past_the_share_are_counted_under_each_reason(store):
    _pool, metrics, gossip = admission(store, share=100, roots_per_s=1000, burst=300)
    outcome = await gossip.admit(1, os.urandom(32 * 500), 10)
    assert (outcome.new_roots, outcome.dropped_roots, outcome.reason) == (100, 400, "share")
    assert (dropped(metrics, "rate"), dropped(metrics, "share")) == (200, 200)
