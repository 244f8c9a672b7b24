"""A byte budget for work queued between tasks: bounds memory by size, not by count.

A channel bounded at N items still lets a peer pin N of the largest messages. The
runtime charges each decoded peer message to this budget before queueing it for the
consensus loop and refunds it once handled, so what waits there never exceeds
``bytes_max`` (one item larger than the budget still passes alone, so nothing is
refused for size here: the frame bound already caps it).
"""

from __future__ import annotations

import trio


class ByteBudget:
    def __init__(self, bytes_max: int) -> None:
        if bytes_max <= 0:
            raise ValueError("bytes_max must be positive")
        self.bytes_max = bytes_max
        self.outstanding = 0
        self._changed = trio.Condition()

    async def acquire(self, size: int) -> None:
        """Wait until ``size`` bytes fit (or nothing else is outstanding), then take them."""
        async with self._changed:
            while self.outstanding and self.outstanding + size > self.bytes_max:
                await self._changed.wait()
            self.outstanding += size

    async def release(self, size: int) -> None:
        async with self._changed:
            self.outstanding -= size
            self._changed.notify_all()
