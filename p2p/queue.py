"""The bounded per-peer send queue and the inbound queue bounded in bytes per peer.

Policy: **drop-oldest**, never block the caller. Consensus messages are re-derivable and
newer ones supersede older ones, so when a peer cannot keep up the right thing to lose is
the oldest frame, not the caller's time. Frames wait in one FIFO per channel and leave in
channel priority order (consensus before gossip before catch-up); when the queue is over
its frame or byte bound, the oldest frame of the *lowest-priority* non-empty channel is
dropped first, so bulk catch-up traffic is shed before votes. Every drop is counted.

Inbound (:class:`InboundQueue`): one FIFO of frames from every peer, in arrival order, but
each peer within its own frame *and byte* budget. A peer over its budget waits (its link
reader stops reading, so TCP flow control slows that peer alone), and nothing is dropped:
frames from authenticated peers are not the transport's to lose. Counting bytes matters
because frames are up to ``MAX_FRAME_BYTES``: a frame-count bound alone would let one
Byzantine validator pin ``frames_max x 4 MiB``; a budget per peer, not a shared one, keeps
it from holding up the honest peers' frames while it is at its limit.
"""

from __future__ import annotations

import collections
from dataclasses import dataclass

import trio

from p2p.frames import Channel


@dataclass(frozen=True)
class Received:
    """One frame from an authenticated peer, as delivered to the node."""

    peer_index: int
    channel: Channel
    payload: bytes


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


class InboundQueue:
    """Frames for the node, in arrival order, each peer within ``frames_per_peer_max`` and ``bytes_per_peer_max``.

    ``put`` waits while the frame would take its peer over either budget (a frame into an
    empty budget always fits, so the byte budget must only be at least one largest frame);
    ``receive`` / ``async for`` take frames out. After :meth:`close`, ``put`` raises
    ``trio.BrokenResourceError`` and readers get what is left, then the end of the stream.
    """

    def __init__(self, frames_per_peer_max: int, bytes_per_peer_max: int) -> None:
        if frames_per_peer_max < 1 or bytes_per_peer_max < 1:
            raise ValueError("inbound queue bounds must be positive")
        self.frames_per_peer_max = frames_per_peer_max
        self.bytes_per_peer_max = bytes_per_peer_max
        self._items: collections.deque[Received] = collections.deque()
        self._frames: collections.Counter[int] = collections.Counter()
        self._bytes: collections.Counter[int] = collections.Counter()
        self._space: dict[int, trio.lowlevel.ParkingLot] = collections.defaultdict(trio.lowlevel.ParkingLot)
        self._data = trio.lowlevel.ParkingLot()
        self._closed = False

    def queued(self, peer_index: int) -> tuple[int, int]:
        """(frames, payload bytes) of ``peer_index`` waiting for the node."""
        return self._frames[peer_index], self._bytes[peer_index]

    def _fits(self, peer_index: int, size: int) -> bool:
        frames = self._frames[peer_index]
        return frames == 0 or (frames < self.frames_per_peer_max
                               and self._bytes[peer_index] + size <= self.bytes_per_peer_max)

    async def put(self, item: Received) -> None:
        """Queue ``item``, first waiting until its peer has room in its budget."""
        await trio.lowlevel.checkpoint_if_cancelled()
        peer, size = item.peer_index, len(item.payload)
        while not self._closed and not self._fits(peer, size):
            await self._space[peer].park()
        if self._closed:
            raise trio.BrokenResourceError("the node stopped taking inbound frames")
        self._items.append(item)
        self._frames[peer] += 1
        self._bytes[peer] += size
        self._data.unpark()
        await trio.lowlevel.cancel_shielded_checkpoint()

    async def receive(self) -> Received:
        """The oldest queued frame, waiting for one; ``trio.EndOfChannel`` once closed and empty."""
        await trio.lowlevel.checkpoint_if_cancelled()
        while not self._items:
            if self._closed:
                raise trio.EndOfChannel
            await self._data.park()
        item = self._items.popleft()
        peer = item.peer_index
        self._frames[peer] -= 1
        self._bytes[peer] -= len(item.payload)
        self._space[peer].unpark_all()
        await trio.lowlevel.cancel_shielded_checkpoint()
        return item

    def __aiter__(self) -> "InboundQueue":
        return self

    async def __anext__(self) -> Received:
        try:
            return await self.receive()
        except trio.EndOfChannel:
            raise StopAsyncIteration from None

    def close(self) -> None:
        self._closed = True
        self._data.unpark_all()
        for lot in self._space.values():
            lot.unpark_all()
