"""The validator mesh: listen, dial every peer, keep one authenticated link per peer, reconnect.

Shape (one :class:`PeerManager` per node, run inside the node's nursery):

- a listener accepts TCP connections and runs the responder side of the handshake within
  the pre-authentication budget of :mod:`p2p.admission` (at most
  ``pending_handshakes_per_source_max`` pending per source address and
  ``pending_handshakes_max`` in all, the most represented source giving way when full; a
  connection silent for ``preauth_idle_timeout_ms`` is closed);
- one dial loop per configured peer address: while no link to that peer exists, dial,
  handshake as initiator, and on failure wait an exponentially growing, jittered delay
  (``reconnect_initial_ms`` doubling up to ``reconnect_max_ms``);
- each link runs a writer (drains the peer's :class:`SendQueue`, sends a keepalive when
  idle for ``keepalive_interval_ms``, drops the link if a write stalls for
  ``send_timeout_ms``) and a reader (drops the link when nothing, not even a keepalive,
  arrives for ``idle_timeout_ms``; delivers frames to ``inbound``, an
  :class:`InboundQueue` bounded in frames and bytes per peer, whose back-pressure slows
  that peer's TCP stream rather than growing memory or holding up the other peers).

At most one link per peer. Both sides dial, so two links can be authenticated at once;
the rule both sides apply independently is: a link dialed by the lower validator index
beats one dialed by the higher; between two links of the same kind the newer wins (the
older one is presumed dead: that peer restarted or redialed). Frames in flight on a link
that loses the tie-break are lost, so the higher index *yields*: before each dial to a
lower-indexed peer it waits ``dial_yield_ms`` for that peer to dial it first, which makes
duplicate links (and that loss) rare while still reconnecting when only it can dial.

Send queues belong to the peer, not the link: frames queued while a peer is down wait
(bounded, drop-oldest) and go out on the next link.
"""

from __future__ import annotations

import logging
import math
import random
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass

import trio

from p2p.admission import AdmissionTable, ProofBudget, Ticket, source_of
from p2p.errors import (FrameError, HandshakeError, HandshakeFailure, LinkClosed, OversizeFrameError,
                        P2PConfigError, P2PError)
from p2p.frames import FRAME_OVERHEAD_BYTES, MAX_FRAME_BYTES, Channel
from p2p.handshake import Handshake, LocalIdentity
from p2p.link import Link, establish, run_handshake
from p2p.queue import InboundQueue, Received, SendQueue

__all__ = ["Connector", "PeerAddress", "PeerManager", "PeerStatus", "Received", "TransportSettings", "tcp_connector"]

log = logging.getLogger("pantheon.p2p")

REFUSAL_LOG_INTERVAL_S = 1.0
"""At most one WARNING line per inbound refusal reason per second; ``handshake_failures`` counts them all."""


@dataclass(frozen=True)
class PeerAddress:
    host: str
    port: int

    @classmethod
    def parse(cls, text: str) -> "PeerAddress":
        """``host:port`` (``[v6]:port`` for IPv6 literals)."""
        host, sep, port = text.rpartition(":")
        if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise P2PConfigError(f"peer address {text!r} is not host:port")
        return cls(host.strip("[]"), int(port))

    def __str__(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"


@dataclass(frozen=True)
class TransportSettings:
    """Every timeout and bound of the transport, with units in the names."""

    handshake_timeout_ms: int = 5_000
    connect_timeout_ms: int = 5_000
    keepalive_interval_ms: int = 2_000
    idle_timeout_ms: int = 10_000
    send_timeout_ms: int = 10_000
    reconnect_initial_ms: int = 100
    dial_yield_ms: int = 1_000
    reconnect_max_ms: int = 30_000
    send_queue_frames_max: int = 1024
    send_queue_bytes_max: int = 64 * 1024 * 1024
    inbound_frames_per_peer_max: int = 1024
    inbound_bytes_per_peer_max: int = 16 * 1024 * 1024
    pending_handshakes_max: int = 64
    pending_handshakes_per_source_max: int = 8
    preauth_idle_timeout_ms: int = 1_000
    preauth_proofs_per_source_burst: int = 16
    preauth_proof_interval_ms: int = 250

    def __post_init__(self) -> None:
        for name, value in vars(self).items():
            if value <= 0:
                raise P2PConfigError(f"transport setting {name} must be positive, got {value}")
        if self.idle_timeout_ms <= self.keepalive_interval_ms:
            raise P2PConfigError("idle_timeout_ms must exceed keepalive_interval_ms, or idle links drop themselves")
        if self.reconnect_max_ms < self.reconnect_initial_ms:
            raise P2PConfigError("reconnect_max_ms must be at least reconnect_initial_ms")
        if self.send_queue_bytes_max < MAX_FRAME_BYTES:
            raise P2PConfigError(f"send_queue_bytes_max must hold one largest frame ({MAX_FRAME_BYTES} bytes)")
        if self.inbound_bytes_per_peer_max < MAX_FRAME_BYTES:
            raise P2PConfigError(f"inbound_bytes_per_peer_max must hold one largest frame ({MAX_FRAME_BYTES} bytes)")
        if self.pending_handshakes_per_source_max >= self.pending_handshakes_max:
            raise P2PConfigError("pending_handshakes_per_source_max must be below pending_handshakes_max, "
                                 "or one source address can take every handshake slot")
        if self.preauth_idle_timeout_ms > self.handshake_timeout_ms:
            raise P2PConfigError("preauth_idle_timeout_ms must not exceed handshake_timeout_ms")


@dataclass(frozen=True)
class PeerStatus:
    """One row of the peer table (a snapshot; counters are cumulative over all links)."""

    index: int
    address: str | None
    connected: bool
    direction: str | None
    connected_since: float | None
    links_established: int
    frames_in: int
    frames_out: int
    bytes_in: int
    bytes_out: int
    frames_dropped: int
    queued_frames: int
    queued_bytes: int
    inbound_frames: int
    inbound_bytes: int
    last_error: str | None


Connector = Callable[[int, PeerAddress], Awaitable[trio.abc.Stream]]
"""How to open a stream to a peer: (validator index, address) -> stream. Raises OSError on failure."""


async def tcp_connector(peer_index: int, address: PeerAddress) -> trio.abc.Stream:
    return await trio.open_tcp_stream(address.host, address.port)


class _Connection:
    """A link adopted (or about to be) as a peer's current link."""

    def __init__(self, link: Link, remote: str, initiator_index: int) -> None:
        self.link = link
        self.remote = remote
        self.initiator_index = initiator_index
        self.scope = trio.CancelScope()
        self.closed = trio.Event()
        self.since = time.time()
        self.error: str | None = None

    def fail(self, reason: str) -> None:
        if self.error is None:
            self.error = reason
        self.scope.cancel()


class _Peer:
    def __init__(self, index: int, address: PeerAddress | None, settings: TransportSettings) -> None:
        self.index = index
        self.address = address
        self.queue = SendQueue(settings.send_queue_frames_max, settings.send_queue_bytes_max)
        self.connection: _Connection | None = None
        self.links_established = 0
        self.frames_in = self.frames_out = self.bytes_in = self.bytes_out = 0
        self.last_error: str | None = None


class PeerManager:
    """The node's whole p2p side. Start with ``await nursery.start(manager.run)``."""

    def __init__(self, identity: LocalIdentity, directory: Mapping[int, bytes], peers: Mapping[int, PeerAddress],
                 settings: TransportSettings = TransportSettings(), *,
                 listen: PeerAddress | None = PeerAddress("127.0.0.1", 0),
                 listeners: list[trio.SocketListener] | None = None,
                 connector: Connector = tcp_connector) -> None:
        identity.check_against(directory)
        for index in peers:
            if index == identity.index:
                raise P2PConfigError(f"peer list names our own index {index}")
            if index not in directory:
                raise P2PConfigError(f"peer list names validator {index}, which the genesis does not list")
        self.identity = identity
        self.directory = dict(directory)
        self.settings = settings
        self._listen = listen
        self._listeners = listeners
        self._connector = connector
        self._peers = {index: _Peer(index, peers.get(index), settings)
                       for index in sorted(directory) if index != identity.index}
        self.inbound = InboundQueue(settings.inbound_frames_per_peer_max, settings.inbound_bytes_per_peer_max)
        self._nursery: trio.Nursery | None = None
        self._scope = trio.CancelScope()
        self._changed = trio.Event()
        self._admission = AdmissionTable(settings.pending_handshakes_max, settings.pending_handshakes_per_source_max)
        self._pending: dict[Ticket, trio.CancelScope] = {}
        self._proof_budget = ProofBudget(settings.preauth_proofs_per_source_burst,
                                         settings.preauth_proof_interval_ms / 1000)
        self._refusal_log_next_s: dict[HandshakeFailure, float] = {}
        self._refusals_unlogged: Counter[HandshakeFailure] = Counter()
        self._random = random.Random()
        self.handshake_failures: Counter[str] = Counter()
        self.listen_port: int | None = None

    # ---- lifecycle ----------------------------------------------------------------

    async def run(self, *, task_status: trio.TaskStatus[int | None] = trio.TASK_STATUS_IGNORED) -> None:
        """Run until cancelled or :meth:`shutdown`; ``task_status.started`` gets the listening port."""
        try:
            with self._scope:
                async with trio.open_nursery() as nursery:
                    self._nursery = nursery
                    listeners = self._listeners
                    if listeners is None and self._listen is not None:
                        listeners = await trio.open_tcp_listeners(self._listen.port, host=self._listen.host)
                    if listeners:
                        self.listen_port = listeners[0].socket.getsockname()[1]
                        nursery.start_soon(self._serve, listeners)
                    for peer in self._peers.values():
                        if peer.address is not None:
                            nursery.start_soon(self._dial_loop, peer)
                    task_status.started(self.listen_port)
                    await trio.sleep_forever()
        finally:
            self._nursery = None
            self.inbound.close()

    def shutdown(self) -> None:
        """Close every link and the listener; :meth:`run` returns once all sockets are closed."""
        self._scope.cancel()

    async def _serve(self, listeners: list[trio.SocketListener]) -> None:
        try:
            await trio.serve_listeners(self._accept_socket, listeners)
        finally:
            for listener in listeners:
                await trio.aclose_forcefully(listener)

    async def _accept_socket(self, stream: trio.SocketStream) -> None:
        try:
            host, port = stream.socket.getpeername()[:2]
        except OSError:
            await trio.aclose_forcefully(stream)
            return
        await self._accept(stream, str(PeerAddress(host, port)), source_of(host))

    def accept(self, stream: trio.abc.Stream, remote: str) -> None:
        """Serve an inbound stream that did not come from our listener (memory links in tests).

        ``remote`` names the stream in logs and is its source address for the pre-auth budget.
        """
        if self._nursery is None:
            raise P2PError("peer manager is not running")
        self._nursery.start_soon(self._accept, stream, remote, remote)

    # ---- node-facing API ------------------------------------------------------------

    def send(self, peer_index: int, channel: Channel, payload: bytes) -> int:
        """Queue ``payload`` for one peer without waiting; returns how many older frames were dropped for room."""
        if channel is Channel.KEEPALIVE:
            raise P2PError("the keepalive channel is reserved for the transport")
        if len(payload) > MAX_FRAME_BYTES:
            raise OversizeFrameError(f"payload of {len(payload)} bytes exceeds MAX_FRAME_BYTES={MAX_FRAME_BYTES}")
        peer = self._peers.get(peer_index)
        if peer is None:
            raise P2PError(f"validator {peer_index} is not a peer of validator {self.identity.index}")
        return peer.queue.put(channel, payload)

    def broadcast(self, channel: Channel, payload: bytes) -> int:
        """Queue ``payload`` for every other validator; returns the total of older frames dropped."""
        return sum(self.send(index, channel, payload) for index in self._peers)

    def connected_peers(self) -> frozenset[int]:
        return frozenset(i for i, peer in self._peers.items() if peer.connection is not None)

    async def wait_connected(self, peer_indices: Iterable[int]) -> None:
        """Wait until a link to each of ``peer_indices`` is up (bound it with a cancel scope)."""
        wanted = frozenset(peer_indices)
        while not wanted <= self.connected_peers():
            await self._changed.wait()

    def peer_table(self) -> list[PeerStatus]:
        rows = []
        for peer in self._peers.values():
            connection = peer.connection
            rows.append(PeerStatus(
                index=peer.index,
                address=str(peer.address) if peer.address else None,
                connected=connection is not None,
                direction=None if connection is None else ("outbound" if connection.link.initiator else "inbound"),
                connected_since=None if connection is None else connection.since,
                links_established=peer.links_established,
                frames_in=peer.frames_in, frames_out=peer.frames_out,
                bytes_in=peer.bytes_in, bytes_out=peer.bytes_out,
                frames_dropped=peer.queue.dropped_frames,
                queued_frames=peer.queue.frames, queued_bytes=peer.queue.bytes,
                inbound_frames=self.inbound.queued(peer.index)[0], inbound_bytes=self.inbound.queued(peer.index)[1],
                last_error=peer.last_error,
            ))
        return rows

    # ---- connection setup -------------------------------------------------------------

    def _notify(self) -> None:
        self._changed.set()
        self._changed = trio.Event()

    def _backoff_delay_s(self, backoff_ms: int) -> float:
        """Jittered over the upper half of the backoff, so restarted peers do not redial in lockstep."""
        return backoff_ms * self._random.uniform(0.5, 1.0) / 1000

    async def _dial_loop(self, peer: _Peer) -> None:
        assert peer.address is not None
        backoff_ms = self.settings.reconnect_initial_ms
        while True:
            while peer.connection is not None:
                await peer.connection.closed.wait()
            if peer.index < self.identity.index:
                with trio.move_on_after(self.settings.dial_yield_ms / 1000):
                    await self.wait_connected([peer.index])
                if peer.connection is not None:
                    continue
            stream = None
            with trio.move_on_after(self.settings.connect_timeout_ms / 1000) as scope:
                try:
                    stream = await self._connector(peer.index, peer.address)
                except OSError as exc:
                    peer.last_error = f"connect to {peer.address} failed: {exc}"
                    log.debug("validator %d: %s", peer.index, peer.last_error)
            if scope.cancelled_caught:
                peer.last_error = f"connect to {peer.address} timed out after {self.settings.connect_timeout_ms} ms"
                log.debug("validator %d: %s", peer.index, peer.last_error)
            if stream is not None and await self._run_outbound(peer, stream):
                backoff_ms = self.settings.reconnect_initial_ms
            await trio.sleep(self._backoff_delay_s(backoff_ms))
            backoff_ms = min(2 * backoff_ms, self.settings.reconnect_max_ms)

    async def _run_outbound(self, peer: _Peer, stream: trio.abc.Stream) -> bool:
        """Handshake and serve a dialed stream; True when the peer was authenticated."""
        remote = str(peer.address)
        try:
            link = await establish(stream, self.identity, self.directory, peer_index=peer.index,
                                   timeout_s=self.settings.handshake_timeout_ms / 1000)
        except HandshakeError as exc:
            await trio.aclose_forcefully(stream)
            self.handshake_failures[exc.reason.value] += 1
            peer.last_error = f"handshake refused: {exc}"
            log.warning("outbound handshake with validator %d at %s refused: %s", peer.index, remote, exc)
            return False
        await self._serve_link(link, remote)
        return True

    async def _accept(self, stream: trio.abc.Stream, remote: str, source: str) -> None:
        """Run the responder side within the pre-auth budget, then serve the link."""
        handshake = Handshake.responder(self.identity, self.directory,
                                        admit_proof=lambda: self._proof_budget.take(source, trio.current_time()))
        admitted = self._admission.admit(source, lambda: handshake.peer_proven)
        if isinstance(admitted, HandshakeFailure):
            self._refused_inbound(remote, admitted, f"{self._admission.pending_from(source)} handshakes pending "
                                  f"from {source}, {self._admission.pending} in all")
            await trio.aclose_forcefully(stream)
            return
        if admitted.evicted is not None:
            self._pending[admitted.evicted].cancel()
        scope = self._pending[admitted.ticket] = trio.CancelScope()
        try:
            with scope:
                link = await run_handshake(stream, handshake, self.settings.handshake_timeout_ms / 1000,
                                           self.settings.preauth_idle_timeout_ms / 1000)
        except HandshakeError as exc:
            await trio.aclose_forcefully(stream)
            self._refused_inbound(remote, exc.reason, exc.detail)
            return
        finally:
            self._admission.release(admitted.ticket)
            del self._pending[admitted.ticket]
        if scope.cancelled_caught:
            await trio.aclose_forcefully(stream)
            self._refused_inbound(remote, HandshakeFailure.EVICTED,
                                  "unauthenticated handshake closed to give its slot to a less represented source")
            return
        await self._serve_link(link, remote)

    def _refused_inbound(self, remote: str, reason: HandshakeFailure, detail: str) -> None:
        """Count every refusal; log at most one line per reason per interval, so a flood cannot flood the log."""
        self.handshake_failures[reason.value] += 1
        now_s = trio.current_time()
        if now_s < self._refusal_log_next_s.get(reason, -math.inf):
            self._refusals_unlogged[reason] += 1
            return
        unlogged = self._refusals_unlogged.pop(reason, 0)
        self._refusal_log_next_s[reason] = now_s + REFUSAL_LOG_INTERVAL_S
        also = f" (and {unlogged} more {reason.value} refusals not logged since the last line)" if unlogged else ""
        log.warning("inbound handshake from %s refused: %s: %s%s", remote, reason.value, detail, also)

    # ---- link lifetime -----------------------------------------------------------------

    def _adopt(self, peer: _Peer, connection: _Connection) -> bool:
        """Make ``connection`` the peer's link unless the current one wins the tie-break."""
        current = peer.connection
        if current is not None:
            preferred = min(self.identity.index, peer.index)
            if current.initiator_index == preferred and connection.initiator_index != preferred:
                log.debug("validator %d: duplicate link from %s closed, keeping the one dialed by %d",
                          peer.index, connection.remote, preferred)
                return False
            current.fail("replaced by a newer link")
        peer.connection = connection
        peer.links_established += 1
        self._notify()
        return True

    async def _serve_link(self, link: Link, remote: str) -> None:
        peer = self._peers[link.peer_index]
        initiator_index = self.identity.index if link.initiator else peer.index
        connection = _Connection(link, remote, initiator_index)
        try:
            if not self._adopt(peer, connection):
                return
            log.info("validator %d connected (%s, %s)", peer.index,
                     "outbound" if link.initiator else "inbound", remote)
            with connection.scope:
                async with trio.open_nursery() as nursery:
                    nursery.start_soon(self._reader, peer, connection)
                    nursery.start_soon(self._writer, peer, connection)
        finally:
            await link.aclose()
            connection.closed.set()
            if peer.connection is connection:
                peer.connection = None
                self._notify()
            if connection.error is not None:
                peer.last_error = connection.error
                log.info("link to validator %d (%s) closed: %s", peer.index, remote, connection.error)

    async def _reader(self, peer: _Peer, connection: _Connection) -> None:
        """One cancel scope for the whole loop (its deadline moved per frame): scopes per frame cost throughput."""
        idle_s = self.settings.idle_timeout_ms / 1000
        try:
            with trio.CancelScope(deadline=trio.current_time() + idle_s) as idle:
                while True:
                    frame = await connection.link.receive()
                    peer.frames_in += 1
                    peer.bytes_in += len(frame.payload) + FRAME_OVERHEAD_BYTES
                    if frame.channel is not Channel.KEEPALIVE:
                        idle.deadline = math.inf
                        await self.inbound.put(Received(peer.index, frame.channel, frame.payload))
                    idle.deadline = trio.current_time() + idle_s
            connection.fail(f"nothing received for {self.settings.idle_timeout_ms} ms")
        except OversizeFrameError as exc:
            log.warning("validator %d (%s) sent an oversize frame, dropping the link: %s", peer.index,
                        connection.remote, exc)
            connection.fail(f"oversize frame: {exc}")
        except FrameError as exc:
            log.warning("validator %d (%s) sent a bad frame, dropping the link: %s", peer.index,
                        connection.remote, exc)
            connection.fail(f"bad frame: {exc}")
        except LinkClosed as exc:
            connection.fail(str(exc))
        except trio.BrokenResourceError:
            connection.fail("the node stopped taking inbound frames")

    async def _writer(self, peer: _Peer, connection: _Connection) -> None:
        """Sends queued frames, or a keepalive after an idle interval; a write stalled too long drops the link."""
        keepalive_s = self.settings.keepalive_interval_ms / 1000
        send_s = self.settings.send_timeout_ms / 1000
        try:
            with trio.CancelScope() as stall:
                while True:
                    item = peer.queue.get_nowait()
                    if item is None:
                        stall.deadline = math.inf
                        item = (Channel.KEEPALIVE, b"")
                        with trio.move_on_after(keepalive_s):
                            item = await peer.queue.get()
                    stall.deadline = trio.current_time() + send_s
                    wire_bytes = await connection.link.send(*item)
                    peer.frames_out += 1
                    peer.bytes_out += wire_bytes
            log.warning("validator %d (%s) stalled: a frame could not be written within %d ms, dropping the link",
                        peer.index, connection.remote, self.settings.send_timeout_ms)
            connection.fail(f"peer stalled: write blocked for {self.settings.send_timeout_ms} ms")
        except LinkClosed as exc:
            connection.fail(str(exc))
