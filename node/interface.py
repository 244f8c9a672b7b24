"""What the HTTP layer and the node's service agree on: the values a service returns and the
submitter quota it owns.

Why a module of its own: the API (node/api.py) depends on the node's service interface,
never the other way round. The service (node/service.py) and the runtime build these
values; the API only reads them. Keeping them here lets the service side import them
without importing the HTTP layer.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple, overload

from proof.errors import PantheonError


class Overloaded(PantheonError):
    """The node cannot take more work right now (a bounded queue is full)."""


@dataclass(frozen=True)
class Page:
    """One page of a list endpoint: its items and the cursor of the next page (None: last)."""

    items: list[dict[str, Any]]
    next: int | None


class Receipt(NamedTuple):
    """What the node says of one submitted root. A named tuple, not a frozen dataclass: a
    submission of 1,000 roots builds 1,000 of these, and a named tuple is one tuple build
    where a frozen dataclass sets each field through object.__setattr__ (0.18 against 0.78 us
    each, measured)."""

    root: bytes
    state: str
    received_at_ms: int
    index: int | None = None

    def to_json(self, node: str) -> dict[str, Any]:
        body: dict[str, Any] = {
            "root": self.root.hex(),
            "state": self.state,
            "received_at_ms": self.received_at_ms,
            "node": node,
        }
        if self.index is not None:
            body["index"] = self.index
        return body


@dataclass(frozen=True)
class UniformReceipts(Sequence[Receipt]):
    """The receipts of a submission whose roots share one state and arrival time (every root
    new: nearly every submission), kept as the roots' bytes instead of a tuple per root."""

    roots: bytes
    state: str
    received_at_ms: int

    def __len__(self) -> int:
        return len(self.roots) // 32

    @overload
    def __getitem__(self, item: int) -> Receipt: ...

    @overload
    def __getitem__(self, item: slice) -> Sequence[Receipt]: ...

    def __getitem__(self, item: int | slice) -> Receipt | Sequence[Receipt]:
        if isinstance(item, slice):
            return [self[i] for i in range(*item.indices(len(self)))]
        count = len(self)
        if not -count <= item < count:
            raise IndexError(f"receipt {item} of {count}")
        start = (item % count) * 32
        return Receipt(self.roots[start : start + 32], self.state, self.received_at_ms)


class SubmitterQuota:
    """Roots each submitter (token) may submit to this node: a bucket of ``burst_roots``
    refilled at ``roots_per_s``; ``roots_per_s == 0`` meters nothing.

    Why: without it one token could fill the mempool and the permanent log, and every other
    producer's roots waited behind its backlog (issue 14). Past its quota a token gets 429
    with the ``Retry-After`` at which its request would fit. Buckets are per node and there
    is one per token in the tokens file, so the table is bounded by the operator.

    The refill slows as this node's ``backlog()`` (roots waiting in its mempool) nears
    ``backlog_roots``, and stops there: a token that keeps its bucket empty then waits while
    the backlog drains, so admission follows what the chain finalizes, while a producer
    that submits now and then still finds its burst and is not held behind the flood.
    ``backlog_roots == 0`` keeps the refill steady.
    """

    def __init__(
        self,
        roots_per_s: int,
        burst_roots: int,
        clock: Callable[[], float] = time.monotonic,
        *,
        backlog: Callable[[], int] = lambda: 0,
        backlog_roots: int = 0,
    ) -> None:
        self.roots_per_s = roots_per_s
        self.burst_roots = burst_roots
        self.backlog_roots = backlog_roots
        self._clock = clock
        self._backlog = backlog
        self._buckets: dict[str, tuple[float, float]] = {}

    def refill_per_s(self) -> float:
        """The refill rate now: ``roots_per_s``, less in proportion to the backlog."""
        if not self.backlog_roots:
            return float(self.roots_per_s)
        return self.roots_per_s * max(0.0, 1.0 - self._backlog() / self.backlog_roots)

    def take(self, submitter: str, count: int) -> float:
        """0.0 when ``count`` roots fit now (they are taken), else the seconds until they would
        at today's refill rate (infinite while the backlog is at its bound)."""
        if self.roots_per_s == 0:
            return 0.0
        now = self._clock()
        rate = self.refill_per_s()
        level = self._level(submitter, now, rate)
        if level >= count:
            self._buckets[submitter] = (level - count, now)
            return 0.0
        self._buckets[submitter] = (level, now)
        return (count - level) / rate if rate > 0 else math.inf

    def refund(self, submitter: str, count: int) -> None:
        """Give back roots the node did not take (mempool full, node busy)."""
        if self.roots_per_s == 0:
            return
        now = self._clock()
        level = self._level(submitter, now, self.refill_per_s())
        self._buckets[submitter] = (min(self.burst_roots, level + count), now)

    def _level(self, submitter: str, now: float, rate: float) -> float:
        level, at = self._buckets.get(submitter, (float(self.burst_roots), now))
        return min(float(self.burst_roots), level + (now - at) * rate)
