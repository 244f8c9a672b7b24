"""Which faults a run injects, and the seeded schedule of partitions and crashes.

Every disruptive fault happens before GST (global stabilisation time): partitions
heal and crashed validators restart before it, and the links stop dropping,
duplicating and stalling messages at it. After GST the network is synchronous with a
known delay bound, which is what makes the progress invariant checkable.
"""

from __future__ import annotations

from dataclasses import dataclass

from consensus.sim.rng import derive_rng
from proof.errors import PantheonError

FAULT_KINDS: tuple[str, ...] = ("delay", "drop", "dup", "reorder", "partition", "crash", "byzantine")

# Bounds on the schedule, so that a run's cost stays predictable.
PARTITIONS_PER_RUN_MAX = 3
CRASHES_PER_RUN_MAX = 4
PARTITION_DURATION_MS_MIN = 200
PARTITION_DURATION_MS_MAX = 3_000
CRASH_DOWNTIME_MS_MIN = 50
CRASH_DOWNTIME_MS_MAX = 2_000


class FaultMixError(PantheonError, ValueError):
    """A ``--faults`` list naming an unknown fault kind."""


@dataclass(frozen=True)
class FaultMix:
    """The fault kinds enabled for a run."""

    delay: bool = True
    drop: bool = True
    dup: bool = True
    reorder: bool = True
    partition: bool = True
    crash: bool = True
    byzantine: bool = True

    @classmethod
    def none(cls) -> FaultMix:
        return cls(**{kind: False for kind in FAULT_KINDS})

    def names(self) -> tuple[str, ...]:
        return tuple(kind for kind in FAULT_KINDS if getattr(self, kind))

    def spec(self) -> str:
        """The ``--faults`` argument that reproduces this mix."""
        names = self.names()
        if names == FAULT_KINDS:
            return "all"
        return ",".join(names) if names else "none"


def parse_fault_mix(text: str) -> FaultMix:
    """Parse ``delay,drop,...``; ``all`` enables every kind, ``none`` a clean network."""
    words = [word.strip().lower() for word in text.split(",") if word.strip()]
    if words == ["all"]:
        return FaultMix()
    if words == ["none"]:
        return FaultMix.none()
    unknown = sorted(set(words) - set(FAULT_KINDS))
    if unknown or not words:
        raise FaultMixError(
            f"unknown fault kind(s) {unknown or [text]}: choose from {', '.join(FAULT_KINDS)}, "
            "or 'all', or 'none'"
        )
    return FaultMix(**{kind: kind in words for kind in FAULT_KINDS})


@dataclass(frozen=True)
class Partition:
    """Between ``start_ms`` and ``end_ms`` only validators on the same side talk."""

    start_ms: int
    end_ms: int
    side: tuple[int, ...]  # side[i] = group number of validator i

    def active(self, time_ms: int) -> bool:
        return self.start_ms <= time_ms < self.end_ms

    def separates(self, a: int, b: int) -> bool:
        return self.side[a] != self.side[b]


@dataclass(frozen=True)
class Crash:
    """Validator ``node`` loses power at ``at_ms`` and boots again at ``restart_ms``."""

    node: int
    at_ms: int
    restart_ms: int


@dataclass(frozen=True)
class FaultPlan:
    """The partitions and crashes of one run, fixed by its seed before it starts."""

    partitions: tuple[Partition, ...]
    crashes: tuple[Crash, ...]

    def cut(self, a: int, b: int, time_ms: int) -> bool:
        """True when a partition separates ``a`` from ``b`` at ``time_ms``."""
        return any(p.active(time_ms) and p.separates(a, b) for p in self.partitions)


def plan_faults(
    seed: int, *, mix: FaultMix, n: int, f: int, honest: tuple[int, ...], gst_ms: int
) -> FaultPlan:
    """Draw the partition and crash schedule of a run, all of it before ``gst_ms``."""
    partitions: list[Partition] = []
    if mix.partition and n > 1:
        rng = derive_rng(seed, "faults", "partition")
        for _ in range(rng.randint(1, PARTITIONS_PER_RUN_MAX)):
            duration_ms = rng.randint(PARTITION_DURATION_MS_MIN, PARTITION_DURATION_MS_MAX)
            if duration_ms >= gst_ms:
                continue
            start_ms = rng.randint(0, gst_ms - duration_ms)
            sides = rng.randint(2, min(3, n))
            side = [rng.randrange(sides) for _ in range(n)]
            # Make sure the cut really separates somebody from validator 0.
            side[rng.randrange(1, n)] = (side[0] + 1) % sides
            partitions.append(Partition(start_ms, start_ms + duration_ms, tuple(side)))
    crashes: list[Crash] = []
    if mix.crash and honest:
        rng = derive_rng(seed, "faults", "crash")
        down_at_once_max = max(1, f)
        for _ in range(rng.randint(1, CRASHES_PER_RUN_MAX)):
            downtime_ms = rng.randint(CRASH_DOWNTIME_MS_MIN, CRASH_DOWNTIME_MS_MAX)
            if downtime_ms >= gst_ms:
                continue
            node = rng.choice(honest)
            at_ms = rng.randint(0, gst_ms - downtime_ms)
            crash = Crash(node, at_ms, at_ms + downtime_ms)
            overlapping = [c for c in crashes if c.at_ms < crash.restart_ms and crash.at_ms < c.restart_ms]
            if any(c.node == node for c in overlapping) or len(overlapping) >= down_at_once_max:
                continue
            crashes.append(crash)
    crashes.sort(key=lambda c: (c.at_ms, c.node))
    return FaultPlan(tuple(partitions), tuple(crashes))


def with_laggard(plan: FaultPlan, seed: int, honest: tuple[int, ...], downtime_ms: int, gst_ms: int) -> FaultPlan:
    """``plan`` with one honest validator down for ``downtime_ms`` right before GST instead of its crashes.

    It comes back far behind, so that rejoining means fetching many blocks (the other
    crashes of that validator are dropped so that its downtimes never overlap).
    """
    if downtime_ms >= gst_ms:
        return plan
    node = derive_rng(seed, "faults", "laggard").choice(honest)
    at_ms = gst_ms - downtime_ms - 1
    others = [
        crash for crash in plan.crashes if crash.node != node and (crash.restart_ms <= at_ms or crash.at_ms >= gst_ms)
    ]
    crashes = sorted([*others, Crash(node, at_ms, at_ms + downtime_ms)], key=lambda c: (c.at_ms, c.node))
    return FaultPlan(plan.partitions, tuple(crashes))
