"""Virtual time: a heap of ``(time_ms, seq, item)``.

``seq`` is a global insertion counter, so two items due at the same millisecond come
out in the order they were scheduled: ties never fall back to comparing the items
themselves, and the order never depends on anything but the seed.
"""

from __future__ import annotations

import heapq
from typing import Generic, TypeVar

from proof.errors import PantheonError

Item = TypeVar("Item")

# A run that piles up more pending events than this is a runaway (a message storm
# or a timer loop); stop it rather than exhaust memory.
QUEUE_ITEMS_MAX = 2_000_000


class SchedulerError(PantheonError):
    """The event queue was used outside its bounds (past time, overflow)."""


class Scheduler(Generic[Item]):
    """The simulator's clock and event queue."""

    def __init__(self, *, queue_items_max: int = QUEUE_ITEMS_MAX) -> None:
        self._heap: list[tuple[int, int, Item]] = []
        self._seq = 0
        self._queue_items_max = queue_items_max
        self.now_ms = 0

    def __len__(self) -> int:
        return len(self._heap)

    def at(self, time_ms: int, item: Item) -> None:
        """Schedule ``item`` at absolute virtual time ``time_ms`` (not in the past)."""
        if time_ms < self.now_ms:
            raise SchedulerError(f"cannot schedule at {time_ms} ms, clock is at {self.now_ms} ms")
        if len(self._heap) >= self._queue_items_max:
            raise SchedulerError(
                f"event queue holds {len(self._heap)} items (max {self._queue_items_max}): runaway run"
            )
        heapq.heappush(self._heap, (time_ms, self._seq, item))
        self._seq += 1

    def after(self, delay_ms: int, item: Item) -> None:
        """Schedule ``item`` ``delay_ms`` after the current virtual time."""
        if delay_ms < 0:
            raise SchedulerError(f"negative delay {delay_ms} ms")
        self.at(self.now_ms + delay_ms, item)

    def next_time_ms(self) -> int | None:
        """When the next item is due, or None when the queue is empty."""
        return self._heap[0][0] if self._heap else None

    def pop(self) -> Item:
        """Remove the next item and advance the clock to its time."""
        if not self._heap:
            raise SchedulerError("pop from an empty event queue")
        time_ms, _, item = heapq.heappop(self._heap)
        self.now_ms = time_ms
        return item
