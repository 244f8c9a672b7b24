"""Serving the HTTP API: hypercorn's HTTP/1.1 connection handler behind a guarded listener.

Why not ``hypercorn.trio.serve``: it writes every response inside a shielded cancel
scope with no deadline, so a client that never reads holds its connection (and its file
descriptor) forever and keeps shutdown from finishing; and it caps nothing, so about
1,000 such clients exhaust a 1,024-descriptor limit, after which neither the API nor the
p2p listener can accept. This module runs hypercorn's own per-connection handler
(``TCPServer``, HTTP/1.1 only) over listeners that

- refuse a connection past ``api.connections_max`` in total or past
  ``api.connections_per_source_max`` from one IP address: closed at once with a reset,
  before any byte is read (so one source can never take every slot);
- give every 64 KiB of a response ``api.write_timeout_ms`` to be taken by the client,
  then drop the connection with a reset (the shielded write ends, the descriptor is freed);
- stop within a bound whatever clients do: at shutdown, requests in flight get
  ``api.shutdown_timeout_ms``, and every write still pending is cut at that deadline.

Idle keep-alive connections close after ``api.keep_alive_timeout_ms`` (this also bounds a
client that never finishes its request headers); a request whose body stalls is dropped
after ``api.read_timeout_ms`` without a byte. TLS (``api.tls_cert_file`` and
``api.tls_key_file``) wraps the guarded socket, so the same limits hold for HTTPS.

At start the process's descriptor limit is raised (soft up to hard) to cover the
connection cap plus :data:`DESCRIPTORS_RESERVED` for LevelDB, p2p and logs; a hard limit
below that is an error naming ``LimitNOFILE``, so the API can never starve p2p or storage.
"""

from __future__ import annotations

import ipaddress
import logging
import math
import resource
import socket
import ssl
import struct
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import trio
from hypercorn.config import Config as HypercornConfig
from hypercorn.trio.tcp_server import TCPServer
from hypercorn.trio.worker_context import WorkerContext
from hypercorn.typing import ASGIFramework, ConnectionState
from hypercorn.utils import wrap_app

from node.config import Config
from node.keyfiles import KeyFileError, read_secret_file
from node.logs import event
from node.metrics import NodeMetrics
from proof.errors import PantheonError

log = logging.getLogger("pantheon.http")

WRITE_CHUNK_BYTES = 64 * 1024
"""A write must make this much progress per write timeout: a slow reader is served, a
reader that stops is dropped."""
LEVELDB_FILES_MAX = 1000
"""LevelDB's default ``max_open_files`` (plyvel passes it through unchanged)."""
DESCRIPTORS_RESERVED = LEVELDB_FILES_MAX + 256
"""Descriptors kept out of the API's reach: LevelDB, p2p links and handshakes, logs, bitcoind."""
ABUSE_LOG_INTERVAL_S = 60.0
"""Refused connections and reset slow readers are logged at most this often each (an attack
must not flood the log); the line carries the count so far."""
TLS_HANDSHAKE_TIMEOUT_S = 10.0


class HTTPServerError(PantheonError):
    """The API cannot be served as configured (address, TLS files, descriptor limit)."""


@dataclass(frozen=True)
class HTTPSettings:
    """The API server's limits, from the ``[api]`` section (times in seconds here)."""

    host: str
    port: int
    connections_max: int
    connections_per_source_max: int
    write_timeout_s: float
    read_timeout_s: float
    keep_alive_timeout_s: float
    shutdown_timeout_s: float
    tls_cert_file: Path | None = None
    tls_key_file: Path | None = None

    @property
    def tls(self) -> bool:
        return self.tls_cert_file is not None

    @classmethod
    def from_config(cls, config: Config) -> HTTPSettings:
        api = config.api
        host, port = parse_listen(api.listen)
        return cls(
            host=host,
            port=port,
            connections_max=api.connections_max,
            connections_per_source_max=api.connections_per_source_max,
            write_timeout_s=api.write_timeout_ms / 1000,
            read_timeout_s=api.read_timeout_ms / 1000,
            keep_alive_timeout_s=api.keep_alive_timeout_ms / 1000,
            shutdown_timeout_s=api.shutdown_timeout_ms / 1000,
            tls_cert_file=config.resolve(api.tls_cert_file) if api.tls_cert_file else None,
            tls_key_file=config.resolve(api.tls_key_file) if api.tls_key_file else None,
        )


def parse_listen(listen: str) -> tuple[str, int]:
    """``host:port`` or ``[v6]:port`` as (host, port)."""
    host, sep, port_text = listen.rpartition(":")
    host = host.strip("[]")
    if not sep or not host or not port_text.isascii() or not port_text.isdigit() or int(port_text) > 65535:
        raise HTTPServerError(f"api.listen {listen!r} must look like 127.0.0.1:8700 or [::1]:8700")
    return host, int(port_text)


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class ConnectionGuard:
    """Counts open connections per source address and in total; knows every write in
    progress, so shutdown can cut them all at one deadline. Refusals and resets go to
    ``metrics`` as they happen (the log shows them only now and then)."""

    def __init__(self, settings: HTTPSettings, metrics: NodeMetrics | None = None) -> None:
        self.settings = settings
        self.metrics = metrics
        self.total = 0
        self.by_source: dict[str, int] = {}
        self.refused = 0
        self.write_timeouts = 0
        self.abort_at = math.inf
        self.writes: set[trio.CancelScope] = set()
        self._logged_at: dict[str, float] = {}

    def try_acquire(self, source: str) -> bool:
        held = self.by_source.get(source, 0)
        if self.total >= self.settings.connections_max or held >= self.settings.connections_per_source_max:
            self.refused += 1
            if self.metrics is not None:
                cap = "total" if self.total >= self.settings.connections_max else "source"
                self.metrics.api_connections_refused.labels(cap=cap).inc()
            self._log_now_and_then("API connections refused at the cap", source=source, held=held,
                                   total=self.total, refused_so_far=self.refused,
                                   caps=f"{self.settings.connections_per_source_max}/source, "
                                        f"{self.settings.connections_max} total")
            return False
        self.total += 1
        self.by_source[source] = held + 1
        return True

    def release(self, source: str) -> None:
        self.total -= 1
        left = self.by_source[source] - 1
        if left:
            self.by_source[source] = left
        else:
            del self.by_source[source]

    def note_write_timeout(self, source: str) -> None:
        self.write_timeouts += 1
        if self.metrics is not None:
            self.metrics.api_connections_reset.inc()
        self._log_now_and_then("API client reset: it did not take its response within the write timeout",
                               source=source, resets_so_far=self.write_timeouts)

    def _log_now_and_then(self, message: str, **fields: object) -> None:
        now = trio.current_time()
        if now - self._logged_at.get(message, -math.inf) >= ABUSE_LOG_INTERVAL_S:
            self._logged_at[message] = now
            event(log, logging.WARNING, message, **fields)

    def write_deadline(self) -> float:
        return min(trio.current_time() + self.settings.write_timeout_s, self.abort_at)

    def cut_writes_at(self, deadline: float) -> None:
        """No write, pending or later, outlasts ``deadline`` (shutdown)."""
        self.abort_at = deadline
        for scope in self.writes:
            scope.deadline = min(scope.deadline, deadline)


def _reset_on_close(sock: trio.socket.SocketType) -> None:
    """SO_LINGER 0: close sends a reset and frees the kernel's buffers at once, instead of
    keeping unsent data for a client that does not read."""
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    except OSError:
        pass  # already closed by the peer: nothing is buffered


class GuardedStream(trio.abc.HalfCloseableStream):
    """A socket stream whose writes have a deadline and whose close releases its slot."""

    def __init__(self, inner: trio.SocketStream, guard: ConnectionGuard, source: str) -> None:
        self._inner = inner
        self._guard = guard
        self._source = source
        self._released = False

    @property
    def socket(self) -> trio.socket.SocketType:
        """hypercorn reads the peer and local address from here."""
        return self._inner.socket

    async def send_all(self, data: bytes | bytearray | memoryview) -> None:
        view = memoryview(data)
        for start in range(0, len(view), WRITE_CHUNK_BYTES):
            scope = trio.CancelScope(deadline=self._guard.write_deadline())
            self._guard.writes.add(scope)
            try:
                with scope:
                    await self._inner.send_all(view[start : start + WRITE_CHUNK_BYTES])
            finally:
                self._guard.writes.discard(scope)
            if scope.cancelled_caught:
                self._guard.note_write_timeout(self._source)
                _reset_on_close(self._inner.socket)
                self._release()
                self._inner.socket.close()
                raise trio.BrokenResourceError("the client did not take the response within the write timeout")

    async def wait_send_all_might_not_block(self) -> None:
        await self._inner.wait_send_all_might_not_block()

    async def receive_some(self, max_bytes: int | None = None) -> bytes | bytearray:
        return await self._inner.receive_some(max_bytes)

    async def send_eof(self) -> None:
        await self._inner.send_eof()

    async def aclose(self) -> None:
        self._release()
        await self._inner.aclose()

    def _release(self) -> None:
        if not self._released:
            self._released = True
            self._guard.release(self._source)


class GuardedListener(trio.abc.Listener[trio.abc.Stream]):
    """Accepts only what the guard allows; wraps TLS around the guarded socket when configured."""

    def __init__(self, inner: trio.SocketListener, guard: ConnectionGuard, tls: ssl.SSLContext | None) -> None:
        self._inner = inner
        self._guard = guard
        self._tls = tls

    @property
    def socket(self) -> trio.socket.SocketType:
        return self._inner.socket

    async def accept(self) -> trio.abc.Stream:
        while True:
            stream = await self._inner.accept()
            try:
                source = stream.socket.getpeername()[0]
            except OSError:  # reset before we looked: nothing to serve
                await stream.aclose()
                continue
            if not self._guard.try_acquire(source):
                _reset_on_close(stream.socket)
                await stream.aclose()
                continue
            guarded = GuardedStream(stream, self._guard, source)
            if self._tls is None:
                return guarded
            return trio.SSLStream(guarded, self._tls, server_side=True, https_compatible=True)

    async def aclose(self) -> None:
        await self._inner.aclose()


def ensure_descriptors(connections_max: int) -> int:
    """Raise the soft descriptor limit to cover the connection cap plus the reserve; return
    the limit now in force. A hard limit below that is an error the operator can fix."""
    needed = connections_max + DESCRIPTORS_RESERVED
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < needed:
        if hard != resource.RLIM_INFINITY and hard < needed:
            raise HTTPServerError(
                f"the descriptor limit is {hard} (hard), below the {needed} this node may need "
                f"(api.connections_max {connections_max} + {DESCRIPTORS_RESERVED} for LevelDB, p2p and logs); "
                "set LimitNOFILE=65536 in the systemd unit (docs/operator.md) or lower api.connections_max"
            )
        resource.setrlimit(resource.RLIMIT_NOFILE, (needed, hard))
        soft = needed
    return soft


def hypercorn_config(settings: HTTPSettings) -> HypercornConfig:
    """The hypercorn settings its connection handler reads (HTTP/1.1 only: its limits are
    the ones this module is written against)."""
    config = HypercornConfig()
    config.accesslog = None
    config.errorlog = log
    config.alpn_protocols = ["http/1.1"]
    config.keep_alive_timeout = settings.keep_alive_timeout_s
    config.read_timeout = settings.read_timeout_s  # type: ignore[assignment]
    config.ssl_handshake_timeout = TLS_HANDSHAKE_TIMEOUT_S
    config.graceful_timeout = settings.shutdown_timeout_s
    return config


def tls_context(settings: HTTPSettings) -> ssl.SSLContext | None:
    """The server's TLS context; the key file must be a secret file (0600, owned, no symlink)."""
    if not settings.tls:
        return None
    assert settings.tls_key_file is not None
    try:
        read_secret_file(settings.tls_key_file)
    except KeyFileError as exc:
        raise HTTPServerError(f"api.tls_key_file: {exc}") from None
    config = hypercorn_config(settings)
    config.certfile, config.keyfile = str(settings.tls_cert_file), str(settings.tls_key_file)
    try:
        return config.create_ssl_context()
    except (OSError, ssl.SSLError) as exc:
        raise HTTPServerError(
            f"api.tls_cert_file {settings.tls_cert_file} / api.tls_key_file {settings.tls_key_file} "
            f"cannot be loaded: {exc}"
        ) from None


async def serve_api(
    app: ASGIFramework,
    settings: HTTPSettings,
    *,
    shutdown_trigger: Callable[[], Awaitable[object]],
    metrics: NodeMetrics | None = None,
    task_status: trio.TaskStatus[list[str]] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve ``app`` until ``shutdown_trigger`` returns, then stop within
    ``shutdown_timeout_s`` whatever clients do. Reports the bound URLs to ``task_status``;
    counts refused and reset connections in ``metrics``.
    The app declares no lifespan (``build_app`` makes none), so none is run."""
    descriptors = ensure_descriptors(settings.connections_max)
    tls = tls_context(settings)
    if tls is None and not is_loopback(settings.host):
        event(log, logging.WARNING,
              "API serves writes over plaintext on a non-loopback address: bearer tokens travel in clear; "
              "set api.tls_cert_file and api.tls_key_file, or put a TLS reverse proxy in front (docs/operator.md)",
              listen=f"{settings.host}:{settings.port}")
    try:
        raw = await trio.open_tcp_listeners(settings.port, host=settings.host)
    except OSError as exc:
        raise HTTPServerError(f"api.listen {settings.host}:{settings.port} cannot be bound: {exc.strerror}") from None
    guard = ConnectionGuard(settings, metrics)
    listeners = [GuardedListener(listener, guard, tls) for listener in raw]
    scheme = "https" if tls is not None else "http"
    binds = [_url(scheme, listener.socket.getsockname()) for listener in listeners]
    config = hypercorn_config(settings)
    context = WorkerContext(None)
    handler = partial(TCPServer, wrap_app(app, config.wsgi_max_body_size, "asgi"), config, context, ConnectionState({}))
    event(log, logging.INFO, "API listening", urls=" ".join(binds), connections_max=settings.connections_max,
          per_source_max=settings.connections_per_source_max, descriptors=descriptors)
    async with trio.open_nursery() as connections:
        try:
            async with trio.open_nursery() as accepting:
                accepting.start_soon(partial(trio.serve_listeners, handler, listeners, handler_nursery=connections))
                task_status.started(binds)
                await shutdown_trigger()
                accepting.cancel_scope.cancel()  # serve_listeners closes the listeners
        finally:
            # Also when the node's nursery is cancelled: shielded writes must not outlive it.
            deadline = trio.current_time() + settings.shutdown_timeout_s
            guard.cut_writes_at(deadline)
            connections.cancel_scope.deadline = deadline
            await context.terminated.set()  # idle keep-alive connections close now (no checkpoint)


def _url(scheme: str, address: tuple[object, ...]) -> str:
    host, port = str(address[0]), address[1]
    return f"{scheme}://[{host}]:{port}" if ":" in host else f"{scheme}://{host}:{port}"
