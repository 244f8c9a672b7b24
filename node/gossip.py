"""Roots gossiped by peers: admitted within a budget per peer, a chunk at a time.

Why a budget. A gossip frame is up to 4 MiB (131,040 roots), each costing a LevelDB
lookup (gossiped roots are held in memory only: node.mempool), and gossip needs no
token: before this, a validator could fill every other validator's mempool (and,
through their blocks, the permanent log) and keep each event loop busy for the length
of one frame. Now each peer has

- a **rate**: a bucket of ``burst_roots`` refilled at ``roots_per_s``, charged for every
  root of a frame it lets through (a root already waiting costs a lookup too);
- a **share** of the mempool: the peer is the owner ``peer:<index>`` of the roots it
  gossiped first, under the same share as a submitter token (node.mempool);

and all peers together hold at most ``gossip_roots_max`` roots (``mempool.gossip_share_percent``),
so that honest peers relaying a flood to every validator (each within its share) never fill
the mempool: submissions to this node, the ones it gives receipts for, always find room.

Past any of these, the rest of the frame is dropped and counted
(``pantheon_gossip_roots_dropped_total{reason=rate|share|gossip_full|full}``). Dropping gossip loses
nothing: the peer that acknowledged a root holds it durably and proposes it when it
leads, and a block is checked without its roots being in our mempool.

Why chunks. A frame is admitted :data:`GOSSIP_CHUNK_ROOTS` roots at a time, with a trio
checkpoint between chunks, so consensus, the API and the other peers run while a large
frame is processed.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass

import trio

from node.logs import event
from node.mempool import ROOT_SIZE, Mempool
from node.metrics import NodeMetrics

log = logging.getLogger("pantheon.gossip")

GOSSIP_CHUNK_ROOTS = 1024
"""Roots admitted between two checkpoints: a few ms of lookups (a full frame in one go held
the event loop for about 180 ms)."""
DROP_LOG_INTERVAL_S = 60.0
"""Dropped gossip is logged at most this often per peer (a peer at its budget must not flood the log)."""


def peer_owner(peer: int) -> str:
    """The mempool owner of roots ``peer`` gossiped (token names cannot contain ``:``)."""
    return f"peer:{peer}"


@dataclass(frozen=True)
class GossipOutcome:
    """Of one frame's roots: how many were new here, how many were dropped, and what stopped
    the frame (the mempool's bounds before the peer's rate, when both did)."""

    new_roots: int
    dropped_roots: int
    reason: str | None


class GossipAdmission:
    """Admits gossiped roots into the mempool, per peer within ``roots_per_s`` (bursts of
    ``burst_roots``) and within the mempool's share, all peers within ``gossip_roots_max``
    (None: the whole mempool); ``roots_per_s == 0`` meters no rate."""

    def __init__(
        self,
        mempool: Mempool,
        metrics: NodeMetrics,
        *,
        roots_per_s: int,
        burst_roots: int,
        gossip_roots_max: int | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.mempool = mempool
        self.metrics = metrics
        self.roots_per_s = roots_per_s
        self.burst_roots = burst_roots
        self.gossip_roots_max = mempool.roots_max if gossip_roots_max is None else gossip_roots_max
        self._peers: set[int] = set()
        """Peers that gossiped here: authenticated validators, so bounded by the genesis."""
        self._clock = clock
        self._buckets: dict[int, tuple[float, float]] = {}
        """peer -> (roots left, when); one entry per authenticated validator, so bounded by the genesis."""
        self._logged_at: dict[int, float] = {}

    async def admit(self, peer: int, payload: bytes, received_at_ms: int, *, gossip_batch: int = 0) -> GossipOutcome:
        """Admit what the budgets allow of one frame, yielding between chunks; new roots are
        tagged as having come in batch number ``gossip_batch`` (node.batch_pool)."""
        if not payload or len(payload) % ROOT_SIZE:
            self.metrics.messages_rejected.labels(reason="gossip_malformed").inc()
            return GossipOutcome(0, 0, "malformed")
        owner = peer_owner(peer)
        self._peers.add(peer)
        total = len(payload) // ROOT_SIZE
        allowed = self._take(peer, total)
        new = 0
        done = 0
        stopped_by = None
        while done < allowed:
            room = self.mempool.room_for(owner)
            gossip_room = self.gossip_roots_max - self.gossip_held()
            if room <= 0 or gossip_room <= 0:
                if len(self.mempool) >= self.mempool.roots_max:
                    stopped_by = "full"
                else:
                    stopped_by = "share" if room <= 0 else "gossip_full"
                break
            count = min(GOSSIP_CHUNK_ROOTS, allowed - done, room, gossip_room)
            chunk = payload[done * ROOT_SIZE : (done + count) * ROOT_SIZE]
            admission = self.mempool.admit(chunk, received_at_ms, owner=owner, durable=False, classify=False,
                                           gossip_batch=gossip_batch)
            new += len(admission.new_roots) // ROOT_SIZE
            done += count
            await trio.lowlevel.checkpoint()
        if total > allowed:
            self.metrics.gossip_roots_dropped.labels(reason="rate").inc(total - allowed)
        if stopped_by is not None:
            self.metrics.gossip_roots_dropped.labels(reason=stopped_by).inc(allowed - done)
        dropped = total - done
        reason = stopped_by or ("rate" if dropped else None)
        if reason is not None:
            self._log_now_and_then(peer, reason, dropped, total)
        return GossipOutcome(new, dropped, reason)

    def gossip_held(self) -> int:
        """Roots waiting here that peers gossiped (each counted for the peer that sent it first)."""
        return sum(self.mempool.held_by(peer_owner(peer)) for peer in self._peers)

    def _take(self, peer: int, count: int) -> int:
        """Roots of ``count`` the peer's bucket allows now (they are charged)."""
        if self.roots_per_s == 0:
            return count
        now = self._clock()
        level, at = self._buckets.get(peer, (float(self.burst_roots), now))
        level = min(float(self.burst_roots), level + (now - at) * self.roots_per_s)
        allowed = min(count, math.floor(level))
        self._buckets[peer] = (level - allowed, now)
        return allowed

    def _log_now_and_then(self, peer: int, reason: str, dropped: int, total: int) -> None:
        now = self._clock()
        if now - self._logged_at.get(peer, -math.inf) >= DROP_LOG_INTERVAL_S:
            self._logged_at[peer] = now
            event(log, logging.WARNING, "gossip dropped past the peer's budget", peer=peer, reason=reason,
                  dropped=dropped, of=total, roots_per_s=self.roots_per_s, share=self.mempool.share_roots_max)
