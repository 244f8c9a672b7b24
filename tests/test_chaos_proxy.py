"""devnet.chaos_proxy: the soak's wire-level faults, each shown on a real loopback socket."""

from __future__ import annotations

import random

import pytest
import trio

from devnet.chaos_proxy import HOST, ChaosProxy
from devnet.hostile_rpc import REPLY_KINDS, hostile_responder, read_request_id, reply_bytes

pytestmark = pytest.mark.timeout(30)


async def echo_server(nursery: trio.Nursery) -> int:
    async def echo(stream: trio.SocketStream) -> None:
        async with stream:
            try:
                while data := await stream.receive_some(65_536):
                    await stream.send_all(data)
            except trio.BrokenResourceError:
                pass

    listeners = await nursery.start(trio.serve_tcp, echo, 0)
    return listeners[0].socket.getsockname()[1]


async def start_proxy(nursery: trio.Nursery, target_port: int) -> ChaosProxy:
    proxy = ChaosProxy(target_port, rng=random.Random(1))
    await nursery.start(proxy.serve)
    return proxy


async def round_trip(stream: trio.SocketStream, data: bytes) -> bytes:
    await stream.send_all(data)
    got = b""
    while len(got) < len(data):
        chunk = await stream.receive_some(65_536)
        if not chunk:
            break
        got += chunk
    return got


async def closed_by_peer(stream: trio.SocketStream) -> bool:
    """True if the proxy closed this connection (EOF or reset) within a second."""
    with trio.move_on_after(1.0):
        try:
            await stream.send_all(b"x")
            while await stream.receive_some(65_536):
                pass
        except (trio.BrokenResourceError, OSError):
            pass
        return True
    return False


async def test_forwards_both_ways() -> None:
    async with trio.open_nursery() as nursery:
        proxy = await start_proxy(nursery, await echo_server(nursery))
        stream = await trio.open_tcp_stream(HOST, proxy.port)
        assert await round_trip(stream, b"hello" * 10_000) == b"hello" * 10_000
        assert proxy.counts.connections == 1
        await stream.aclose()
        nursery.cancel_scope.cancel()


async def test_cut_closes_open_connections_and_refuses_new_ones_until_healed() -> None:
    async with trio.open_nursery() as nursery:
        proxy = await start_proxy(nursery, await echo_server(nursery))
        stream = await trio.open_tcp_stream(HOST, proxy.port)
        assert await round_trip(stream, b"a") == b"a"
        proxy.cut()
        assert await closed_by_peer(stream)
        refused = await trio.open_tcp_stream(HOST, proxy.port)
        assert await closed_by_peer(refused)
        assert proxy.counts.refused == 1 and proxy.counts.cut == 1
        proxy.heal()
        healed = await trio.open_tcp_stream(HOST, proxy.port)
        assert await round_trip(healed, b"again") == b"again"
        nursery.cancel_scope.cancel()


async def test_delay_holds_each_chunk_back() -> None:
    async with trio.open_nursery() as nursery:
        proxy = await start_proxy(nursery, await echo_server(nursery))
        proxy.degrade(delay_ms=150, drop_per_chunk=0.0)
        stream = await trio.open_tcp_stream(HOST, proxy.port)
        started = trio.current_time()
        assert await round_trip(stream, b"slow") == b"slow"
        assert trio.current_time() - started >= 0.3  # there and back
        nursery.cancel_scope.cancel()


async def test_drop_closes_the_connection_instead_of_delivering() -> None:
    async with trio.open_nursery() as nursery:
        proxy = await start_proxy(nursery, await echo_server(nursery))
        proxy.degrade(delay_ms=0, drop_per_chunk=1.0)
        stream = await trio.open_tcp_stream(HOST, proxy.port)
        assert await closed_by_peer(stream)
        assert proxy.counts.dropped == 1
        nursery.cancel_scope.cancel()


async def test_a_target_that_is_down_is_a_refused_connection() -> None:
    async with trio.open_nursery() as nursery:
        listeners = await trio.open_tcp_listeners(0, host=HOST)
        port = listeners[0].socket.getsockname()[1]
        await listeners[0].aclose()
        proxy = await start_proxy(nursery, port)
        stream = await trio.open_tcp_stream(HOST, proxy.port)
        assert await closed_by_peer(stream)
        assert proxy.counts.refused == 1
        nursery.cancel_scope.cancel()


async def test_respond_answers_in_place_of_the_target_then_heal_forwards_again() -> None:
    async with trio.open_nursery() as nursery:
        proxy = await start_proxy(nursery, await echo_server(nursery))
        counts: dict[str, int] = {}
        proxy.respond(hostile_responder(random.Random(3), counts))
        stream = await trio.open_tcp_stream(HOST, proxy.port)
        body = b'{"id": 7, "method": "getblockchaininfo"}'
        await stream.send_all(b"POST / HTTP/1.1\r\nContent-Length: %d\r\n\r\n" % len(body) + body)
        with trio.move_on_after(0.5):
            await stream.receive_some(65_536)
        assert proxy.counts.responded == 1 and sum(counts.values()) == 1
        proxy.heal()
        healed = await trio.open_tcp_stream(HOST, proxy.port)
        assert await round_trip(healed, b"real") == b"real"
        nursery.cancel_scope.cancel()


@pytest.mark.parametrize("kind", [k for k in REPLY_KINDS if k != "silent"])
def test_every_hostile_reply_is_an_http_response(kind: str) -> None:
    answer = reply_bytes(kind, 7)
    assert answer is not None and answer.startswith(b"HTTP/1.1 ") and b"\r\n\r\n" in answer


async def test_the_request_id_is_read_from_the_body() -> None:
    left, right = await _socket_pair()
    body = b'{"id": "abc", "method": "x"}'
    async with trio.open_nursery() as nursery:
        nursery.start_soon(left.send_all, b"POST / HTTP/1.1\r\nContent-Length: %d\r\n\r\n" % len(body) + body)
        assert await read_request_id(right) == "abc"


async def _socket_pair() -> tuple[trio.SocketStream, trio.SocketStream]:
    a, b = trio.socket.socketpair()
    return trio.SocketStream(a), trio.SocketStream(b)
