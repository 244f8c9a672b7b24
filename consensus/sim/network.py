"""Seeded links between validators: delay, drop, duplication, reordering, partitions.

The network carries *encoded bytes*, never message objects: the sender encodes, the
receiver decodes with the strict decoder. That keeps a Byzantine sender honest about
what it can do (it can send any bytes, it cannot hand a receiver a Python object the
codec could never produce) and exercises the codecs on every delivery.

Each directed link has its own generator and its own parameters, drawn once per run.
Before GST a link may stall, drop, duplicate and reorder; from GST on it only
delays, by at most :data:`LINK_DELAY_MS_MAX`, so the post-GST network is synchronous
with a known bound.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

from consensus.sim.faults import FaultMix, FaultPlan
from consensus.sim.rng import derive_rng

# One-way delay of a healthy link: base + jitter, both drawn per link.
LINK_BASE_MS_MIN = 20
LINK_BASE_MS_MAX = 60
LINK_SLOW_BASE_MS_MAX = 120
JITTER_MS_MAX = 20
LINK_DELAY_MS_MAX = LINK_SLOW_BASE_MS_MAX + JITTER_MS_MAX
# Pre-GST faults.
DROP_PROBABILITY_MAX = 0.15
DUP_PROBABILITY_MAX = 0.10
STALL_PROBABILITY = 0.03
STALL_MS_MAX = 1_500
REORDER_PROBABILITY = 0.10
REORDER_EXTRA_MS_MAX = 200
# Anything larger than this on the wire is refused by the link, like a p2p frame limit.
FRAME_BYTES_MAX = 4 * 1024 * 1024


@dataclass
class LinkStats:
    """What the links did to the traffic; tests use these to see a fault act."""

    sent: int = 0
    delivered: int = 0
    dropped: int = 0
    duplicated: int = 0
    partitioned: int = 0
    stalled: int = 0
    reordered: int = 0
    oversize: int = 0
    to_down_node: int = 0


@dataclass
class _Link:
    rng: random.Random
    base_ms: int
    jitter_ms: int
    drop_probability: float
    dup_probability: float
    last_delivery_ms: int = 0


@dataclass
class Network:
    """All n*(n-1) directed links of one run."""

    seed: int
    n: int
    mix: FaultMix
    plan: FaultPlan
    gst_ms: int
    stats: LinkStats = field(default_factory=LinkStats)

    def __post_init__(self) -> None:
        self._links: dict[tuple[int, int], _Link] = {}
        for src in range(self.n):
            for dst in range(self.n):
                if src != dst:
                    self._links[(src, dst)] = self._make_link(src, dst)

    def _make_link(self, src: int, dst: int) -> _Link:
        rng = derive_rng(self.seed, "link", src, dst)
        base_max = LINK_SLOW_BASE_MS_MAX if self.mix.delay else LINK_BASE_MS_MAX
        return _Link(
            rng=rng,
            base_ms=rng.randint(LINK_BASE_MS_MIN, base_max),
            jitter_ms=rng.randint(1, JITTER_MS_MAX),
            drop_probability=rng.uniform(0.0, DROP_PROBABILITY_MAX) if self.mix.drop else 0.0,
            dup_probability=rng.uniform(0.0, DUP_PROBABILITY_MAX) if self.mix.dup else 0.0,
        )

    def mean_healthy_delay_ms(self) -> float:
        """Mean one-way delay of a link without faults: the unit "hops" are counted in."""
        links = self._links.values()
        return sum(link.base_ms + link.jitter_ms / 2 for link in links) / len(links) if links else 0.0

    def transmit(self, src: int, dst: int, size_bytes: int, now_ms: int) -> list[int]:
        """Delivery times (0, 1 or 2 of them) of one message sent now from src to dst."""
        stats = self.stats
        stats.sent += 1
        if size_bytes > FRAME_BYTES_MAX:
            stats.oversize += 1
            return []
        if self.plan.cut(src, dst, now_ms):
            stats.partitioned += 1
            return []
        link = self._links[(src, dst)]
        rng = link.rng
        before_gst = now_ms < self.gst_ms
        if before_gst and link.drop_probability and rng.random() < link.drop_probability:
            stats.dropped += 1
            return []
        times = [self._arrival_ms(link, now_ms, before_gst)]
        if before_gst and link.dup_probability and rng.random() < link.dup_probability:
            stats.duplicated += 1
            times.append(self._arrival_ms(link, now_ms, before_gst))
        return times

    def _arrival_ms(self, link: _Link, now_ms: int, before_gst: bool) -> int:
        rng = link.rng
        delay_ms = link.base_ms + rng.randint(0, link.jitter_ms)
        if before_gst and self.mix.delay and rng.random() < STALL_PROBABILITY:
            self.stats.stalled += 1
            delay_ms += rng.randint(1, STALL_MS_MAX)
        if self.mix.reorder:
            if before_gst and rng.random() < REORDER_PROBABILITY:
                self.stats.reordered += 1
                delay_ms += rng.randint(1, REORDER_EXTRA_MS_MAX)
            return now_ms + delay_ms
        # Without the reorder fault a link is FIFO, like one TCP stream: a message
        # never overtakes one sent before it on the same link.
        arrival_ms = max(now_ms + delay_ms, link.last_delivery_ms)
        link.last_delivery_ms = arrival_ms
        return arrival_ms

    def cut_at_delivery(self, src: int, dst: int, time_ms: int) -> bool:
        """A message still in flight when a partition starts is lost with the link."""
        if self.plan.cut(src, dst, time_ms):
            self.stats.partitioned += 1
            return True
        return False
