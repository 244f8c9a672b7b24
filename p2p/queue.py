"""The bounded per-peer send queue.

Policy: **drop-oldest**, never block the caller. Consensus messages are re-derivable and
newer ones supersede older ones, so when a peer cannot keep up the right thing to lose is
the oldest frame, not the caller's time. Frames wait in one FIFO per channel and leave in
channel priority order (consensus before gossip before catch-up); when the queue is over
its frame or byte bound, the oldest frame of the *lowest-priority* non-empty channel is
dropped first, so bulk catch-up traffic is shed before votes. Every drop is counted.
"""

from __future__ import annotations

import collections

import trio

from p2p.frames import Channel


class SendQueue:
    def __init__(self, frames_max: int, bytes_max: int) -> None:
        if frames_max < 1 or bytes_max < 1:
            raise ValueError("send queue bounds must be positive")
        self.frames_max = frames_max
        self.bytes_max = bytes_max
        self._fifos: dict[Channel, collections.deque[bytes]] = {c: collections.deque() for c in sorted(Channel)}
        self._frames = 0
        self._bytes = 0
        self.dropped_frames = 0
        self._lot = trio.lowlevel.ParkingLot()

    @property
    def frames(self) -> int:
        return self._frames

    @property
    def bytes(self) -> int:
        return self._bytes

    def put(self, channel: Channel, payload: bytes) -> int:
        """Queue one frame; returns how many older frames were dropped to make room."""
        if len(payload) > self.bytes_max:
            raise ValueError(f"payload of {len(payload)} bytes can never fit a {self.bytes_max}-byte send queue")
        self._fifos[channel].append(payload)
        self._frames += 1
        self._bytes += len(payload)
        dropped = 0
        while self._frames > self.frames_max or self._bytes > self.bytes_max:
            self._drop_one()
            dropped += 1
        self.dropped_frames += dropped
        self._lot.unpark_all()
        return dropped

    def _drop_one(self) -> None:
        for channel in reversed(self._fifos):
            fifo = self._fifos[channel]
            if fifo:
                payload = fifo.popleft()
                self._frames -= 1
                self._bytes -= len(payload)
                return
        raise AssertionError("queue over its bound while empty")

    def get_nowait(self) -> tuple[Channel, bytes] | None:
        for channel, fifo in self._fifos.items():
            if fifo:
                payload = fifo.popleft()
                self._frames -= 1
                self._bytes -= len(payload)
                return channel, payload
        return None

    async def get(self) -> tuple[Channel, bytes]:
        """The next frame by priority, waiting for one if the queue is empty."""
        while True:
            item = self.get_nowait()
            if item is not None:
                await trio.lowlevel.cancel_shielded_checkpoint()
                return item
            await self._lot.park()
