"""Fault-injecting links for tests: a stream wrapper with switches, and an in-memory network.

:class:`FaultyStream` wraps any trio stream and lets a test, at any moment,

- ``stall()`` / ``resume()`` the sending side, as a peer that stopped reading does
  (its TCP window fills and ``send_all`` blocks);
- ``trickle(n)`` deliver outgoing data in pieces of at most ``n`` bytes, one scheduling
  point apart, so frames arrive split at arbitrary offsets;
- ``corrupt(offset, mask)`` XOR ``mask`` into the outgoing byte at absolute ``offset``
  (counted from the first byte ever sent), as a flipped bit on the wire;
- ``cut()`` break the connection abruptly: every later operation on either end fails;
- ``record`` every byte sent, so a test can replay or reorder what went over the wire.

:class:`MemoryNetwork` connects :class:`p2p.peers.PeerManager` instances through
``trio.testing.memory_stream_pair`` instead of sockets (so ``MockClock`` can drive them),
wrapping both ends of each link in a FaultyStream the test can reach via ``links``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import trio
import trio.testing

from p2p.errors import P2PError
from p2p.peers import Connector, PeerAddress, PeerManager


def _close_abruptly(stream: trio.abc.Stream) -> None:
    """Close without a checkpoint, so the cut happens at the exact moment the test asks."""
    if isinstance(stream, trio.StapledStream):
        for half in (stream.send_stream, stream.receive_stream):
            close = getattr(half, "close", None)
            if close is not None:
                close()
    elif isinstance(stream, trio.SocketStream):
        stream.socket.close()
    else:
        raise TypeError(f"cannot cut a {type(stream).__name__} abruptly")


class FaultyStream(trio.abc.Stream):
    def __init__(self, inner: trio.abc.Stream, *, record: bool = False) -> None:
        self.inner = inner
        self.sent = bytearray() if record else None
        self.bytes_sent = 0
        self._resumed = trio.Event()
        self._resumed.set()
        self._trickle_bytes: int | None = None
        self._corruptions: dict[int, int] = {}
        self._cut = False

    def stall(self) -> None:
        self._resumed = trio.Event()

    def resume(self) -> None:
        self._resumed.set()

    def trickle(self, chunk_bytes: int | None) -> None:
        if chunk_bytes is not None and chunk_bytes < 1:
            raise ValueError("trickle chunk must be at least one byte")
        self._trickle_bytes = chunk_bytes

    def corrupt(self, offset: int, mask: int = 0x01) -> None:
        if not 0 < mask < 256 or offset < self.bytes_sent:
            raise ValueError("corrupt a byte not yet sent, with a non-zero one-byte mask")
        self._corruptions[offset] = mask

    @property
    def is_cut(self) -> bool:
        return self._cut

    def cut(self) -> None:
        self._cut = True
        self._resumed.set()
        _close_abruptly(self.inner)

    def _check_cut(self) -> None:
        if self._cut:
            raise trio.BrokenResourceError("link cut by the test")

    def _apply_faults(self, data: bytes) -> bytes:
        start, end = self.bytes_sent, self.bytes_sent + len(data)
        hits = [offset for offset in self._corruptions if start <= offset < end]
        if hits:
            mutable = bytearray(data)
            for offset in hits:
                mutable[offset - start] ^= self._corruptions.pop(offset)
            data = bytes(mutable)
        self.bytes_sent = end
        if self.sent is not None:
            self.sent += data
        return data

    async def send_all(self, data: bytes | bytearray | memoryview) -> None:
        self._check_cut()
        await self._resumed.wait()
        self._check_cut()
        data = self._apply_faults(bytes(data))
        step = self._trickle_bytes or len(data) or 1
        for start in range(0, max(len(data), 1), step):
            self._check_cut()
            await self.inner.send_all(data[start : start + step])

    async def wait_send_all_might_not_block(self) -> None:
        await self._resumed.wait()
        await self.inner.wait_send_all_might_not_block()

    async def receive_some(self, max_bytes: int | None = None) -> bytes | bytearray:
        self._check_cut()
        return await self.inner.receive_some(max_bytes)

    async def aclose(self) -> None:
        self._resumed.set()
        await self.inner.aclose()


@dataclass
class MemoryLink:
    dialer: int
    target: int
    dialer_end: FaultyStream
    target_end: FaultyStream


@dataclass
class MemoryNetwork:
    """Registry of running managers; ``connector(i)`` is validator i's dialer."""

    managers: dict[int, PeerManager] = field(default_factory=dict)
    links: list[MemoryLink] = field(default_factory=list)
    refused: set[int] = field(default_factory=set)

    def connector(self, dialer: int) -> Connector:
        async def connect(peer_index: int, address: PeerAddress) -> trio.abc.Stream:
            await trio.lowlevel.checkpoint()
            target = self.managers.get(peer_index)
            if target is None or peer_index in self.refused:
                raise ConnectionRefusedError(f"validator {peer_index} is not listening")
            a, b = trio.testing.memory_stream_pair()
            link = MemoryLink(dialer, peer_index, FaultyStream(a), FaultyStream(b))
            self.links.append(link)
            try:
                target.accept(link.target_end, f"memory:{dialer}")
            except P2PError:
                raise ConnectionRefusedError(f"validator {peer_index} is not running") from None
            return link.dialer_end

        return connect

    @staticmethod
    def address(index: int) -> PeerAddress:
        return PeerAddress("memory", 10_000 + index)
