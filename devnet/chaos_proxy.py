"""A loopback TCP proxy with switches, to break the links between real processes.

p2p/faults.py breaks links inside one process; the soak runs validators as separate
``pantheon node run`` processes, so their faults have to happen on the wire. One
:class:`ChaosProxy` stands for one directed link (validator i dialing validator j, or a
validator dialing its bitcoind): the dialer's config names the proxy's port, and the
proxy forwards to the real port. While it runs, the owner can at any moment

- ``cut()``: close every connection through it and refuse new ones (a partition);
- ``degrade(delay_ms, drop_per_chunk)``: deliver each chunk ``delay_ms`` late, as a WAN
  does, and close the connection in place of a chunk with probability ``drop_per_chunk``
  (bytes cannot be lost inside an encrypted stream without breaking it; a reset is what
  loss turns into for the peer's reconnect logic);
- ``respond(responder)``: close every connection and answer new ones itself, without
  the target (a hostile bitcoind, see devnet.hostile_rpc);
- ``heal()``: forward everything again, at once.

Only new behaviour needs the switch: a cut or a new responder closes the connections
open at that moment, so nothing sent afterwards goes the old way. Counters say what
happened, so a soak can show that each fault really took place.
"""

from __future__ import annotations

import math
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import trio

HOST = "127.0.0.1"
CHUNK_BYTES_MAX = 65_536
CHUNKS_IN_FLIGHT_MAX = 256
"""Per direction; a full queue stops reading, so back-pressure reaches the sender."""
DELAY_MS_MAX = 10_000
RESPOND_S_MAX = 60.0
"""A responder (even one that never answers) holds a connection at most this long."""

Responder = Callable[[trio.SocketStream], Awaitable[None]]


@dataclass
class ProxyCounts:
    connections: int = 0
    refused: int = 0
    cut: int = 0
    dropped: int = 0
    responded: int = 0


class ChaosProxy:
    """Forwards ``HOST:port`` (chosen by ``serve``) to ``target_port`` on loopback."""

    def __init__(self, target_port: int, *, rng: random.Random) -> None:
        self.target_port = target_port
        self.rng = rng
        self.port: int | None = None
        self.counts = ProxyCounts()
        self._refusing = False
        self._delay_ms = 0
        self._drop_per_chunk = 0.0
        self._responder: Responder | None = None
        self._open: set[trio.CancelScope] = set()

    def cut(self) -> None:
        self._refusing = True
        self.counts.cut += len(self._open)
        self._close_all()

    def degrade(self, *, delay_ms: int, drop_per_chunk: float) -> None:
        if not 0 <= delay_ms <= DELAY_MS_MAX or not 0.0 <= drop_per_chunk <= 1.0:
            raise ValueError(f"delay_ms must be in 0..{DELAY_MS_MAX} and drop_per_chunk in [0, 1]")
        self._delay_ms = delay_ms
        self._drop_per_chunk = drop_per_chunk

    def respond(self, responder: Responder) -> None:
        self._responder = responder
        self._close_all()

    def heal(self) -> None:
        self._refusing = False
        self._delay_ms = 0
        self._drop_per_chunk = 0.0
        if self._responder is not None:
            self._responder = None
            self._close_all()

    def _close_all(self) -> None:
        for scope in list(self._open):
            scope.cancel()

    async def serve(self, *, task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED) -> None:
        """Listen on a free loopback port until cancelled; report the port when listening."""
        listeners = await trio.open_tcp_listeners(0, host=HOST)
        self.port = listeners[0].socket.getsockname()[1]
        task_status.started(self.port)
        await trio.serve_listeners(self._handle, listeners)

    async def _handle(self, client: trio.SocketStream) -> None:
        with trio.CancelScope() as scope:
            self._open.add(scope)
            try:
                async with client:
                    if self._refusing:
                        self.counts.refused += 1
                        return
                    responder = self._responder
                    if responder is not None:
                        self.counts.responded += 1
                        with trio.move_on_after(RESPOND_S_MAX):
                            await responder(client)
                        return
                    await self._forward(client, scope)
            except (trio.BrokenResourceError, trio.ClosedResourceError, OSError):
                pass  # either end went away: the connection is over, as it would be on a real wire
            finally:
                self._open.discard(scope)

    async def _forward(self, client: trio.SocketStream, scope: trio.CancelScope) -> None:
        try:
            target = await trio.open_tcp_stream(HOST, self.target_port)
        except OSError:
            self.counts.refused += 1  # the target is down: the dialer sees a refused connection
            return
        self.counts.connections += 1
        async with target, trio.open_nursery() as nursery:
            nursery.start_soon(self._pump, client, target, scope)
            nursery.start_soon(self._pump, target, client, scope)

    async def _pump(self, source: trio.SocketStream, sink: trio.SocketStream, scope: trio.CancelScope) -> None:
        """One direction: read, stamp with its due time, write when due (a delay, not a throttle)."""
        send_due, receive_due = trio.open_memory_channel[tuple[float, bytes]](CHUNKS_IN_FLIGHT_MAX)

        async def write() -> None:
            async for due, chunk in receive_due:
                await trio.sleep_until(due)
                await sink.send_all(chunk)
            scope.cancel()  # the source closed: close both ends, as a half-close is not modelled

        async with trio.open_nursery() as nursery:
            nursery.start_soon(write)
            async with send_due:
                while chunk := await source.receive_some(CHUNK_BYTES_MAX):
                    if self._drop_per_chunk and self.rng.random() < self._drop_per_chunk:
                        self.counts.dropped += 1
                        scope.cancel()
                        return
                    await send_due.send((trio.current_time() + self._delay_ms / 1000, chunk))


def delay_ms_for(rng: random.Random, low_ms: int, high_ms: int) -> int:
    """A WAN-like delay: log-uniform between the bounds, so short delays are common."""
    return int(math.exp(rng.uniform(math.log(low_ms), math.log(high_ms))))
