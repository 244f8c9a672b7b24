"""One link over in-memory streams: the trio handshake driver and framed IO, faults injected."""

from __future__ import annotations

import struct

import pytest
import trio
import trio.testing

from p2p.errors import FrameError, HandshakeError, HandshakeFailure, LinkClosed, OversizeFrameError
from p2p.faults import FaultyStream
from p2p.frames import Channel, Frame
from p2p.handshake import HANDSHAKE_RECORD_BYTES_MAX, LocalIdentity
from p2p.link import Link, establish
from proof.mldsa import SigningKey

CHAIN = bytes(range(32))
KEYS = [SigningKey(bytes([i + 1]) * 32) for i in range(2)]
DIRECTORY = {i: KEYS[i].public_key for i in range(2)}
TIMEOUT_S = 5.0


def identity(index: int) -> LocalIdentity:
    return LocalIdentity(CHAIN, index, KEYS[index])


async def linked_pair(*, record: bool = False) -> tuple[Link, Link, FaultyStream, FaultyStream]:
    a, b = trio.testing.memory_stream_pair()
    dialer_end, listener_end = FaultyStream(a, record=record), FaultyStream(b, record=record)
    links: dict[str, Link] = {}

    async def dial() -> None:
        links["dialer"] = await establish(dialer_end, identity(0), DIRECTORY, peer_index=1, timeout_s=TIMEOUT_S)

    async def listen() -> None:
        links["listener"] = await establish(listener_end, identity(1), DIRECTORY, peer_index=None,
                                            timeout_s=TIMEOUT_S)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(dial)
        nursery.start_soon(listen)
    return links["dialer"], links["listener"], dialer_end, listener_end


async def test_frames_flow_both_ways_after_the_handshake() -> None:
    dialer, listener, _, _ = await linked_pair()
    await dialer.send(Channel.CONSENSUS, b"to listener")
    await listener.send(Channel.GOSSIP, b"to dialer")
    assert await listener.receive() == Frame(Channel.CONSENSUS, b"to listener")
    assert await dialer.receive() == Frame(Channel.GOSSIP, b"to dialer")
    assert (dialer.peer_index, listener.peer_index) == (1, 0)


async def test_a_silent_peer_times_the_handshake_out(autojump_clock: trio.testing.MockClock) -> None:
    a, _silent = trio.testing.memory_stream_pair()
    with pytest.raises(HandshakeError) as excinfo:
        await establish(a, identity(0), DIRECTORY, peer_index=1, timeout_s=TIMEOUT_S)
    assert excinfo.value.reason is HandshakeFailure.TIMEOUT
    assert trio.current_time() == pytest.approx(TIMEOUT_S)


async def test_with_an_idle_timeout_a_silent_peer_is_refused_as_idle_long_before_the_handshake_timeout(
        autojump_clock: trio.testing.MockClock) -> None:
    a, _silent = trio.testing.memory_stream_pair()
    with pytest.raises(HandshakeError) as excinfo:
        await establish(a, identity(1), DIRECTORY, peer_index=None, timeout_s=TIMEOUT_S, idle_timeout_s=1.0)
    assert excinfo.value.reason is HandshakeFailure.IDLE
    assert trio.current_time() == pytest.approx(1.0)


async def test_a_trickling_peer_cannot_stretch_the_handshake_past_its_timeout(
        autojump_clock: trio.testing.MockClock) -> None:
    a, b = trio.testing.memory_stream_pair()

    async def one_byte_per_second() -> None:
        await b.send_all(struct.pack(">I", HANDSHAKE_RECORD_BYTES_MAX))
        for _ in range(100):
            await b.send_all(b"\x00")
            await trio.sleep(1)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(one_byte_per_second)
        with pytest.raises(HandshakeError) as excinfo:
            await establish(a, identity(1), DIRECTORY, peer_index=None, timeout_s=TIMEOUT_S)
        nursery.cancel_scope.cancel()
    assert excinfo.value.reason is HandshakeFailure.TIMEOUT


async def test_a_peer_closing_mid_handshake_is_reported_as_closed() -> None:
    a, b = trio.testing.memory_stream_pair()
    await b.aclose()
    with pytest.raises(HandshakeError) as excinfo:
        await establish(a, identity(1), DIRECTORY, peer_index=None, timeout_s=TIMEOUT_S)
    assert excinfo.value.reason is HandshakeFailure.CLOSED


async def test_frames_trickled_one_byte_at_a_time_arrive_intact() -> None:
    dialer, listener, dialer_end, _ = await linked_pair()
    dialer_end.trickle(1)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(dialer.send, Channel.CONSENSUS, b"slowly")
        assert await listener.receive() == Frame(Channel.CONSENSUS, b"slowly")


async def test_a_bit_flipped_on_the_wire_fails_the_link() -> None:
    dialer, listener, dialer_end, _ = await linked_pair()
    dialer_end.corrupt(dialer_end.bytes_sent + 10)
    await dialer.send(Channel.CONSENSUS, b"a vote of some length")
    with pytest.raises(FrameError):
        await listener.receive()


async def test_a_frame_replayed_on_the_wire_fails_the_link() -> None:
    dialer, listener, dialer_end, _ = await linked_pair(record=True)
    assert dialer_end.sent is not None
    start = len(dialer_end.sent)
    await dialer.send(Channel.CONSENSUS, b"vote")
    frame_bytes = bytes(dialer_end.sent[start:])
    assert await listener.receive() == Frame(Channel.CONSENSUS, b"vote")
    await dialer_end.inner.send_all(frame_bytes)
    with pytest.raises(FrameError):
        await listener.receive()


async def test_frames_reordered_on_the_wire_fail_the_link() -> None:
    dialer, listener, dialer_end, _ = await linked_pair()
    wire, capture = dialer_end.inner, trio.testing.MemorySendStream()
    dialer_end.inner = capture
    await dialer.send(Channel.CONSENSUS, b"first")
    first = capture.get_data_nowait()
    await dialer.send(Channel.CONSENSUS, b"second")
    second = capture.get_data_nowait()
    await wire.send_all(second + first)
    with pytest.raises(FrameError):
        await listener.receive()


async def test_an_oversize_length_on_the_wire_fails_the_link_before_the_body_is_sent() -> None:
    dialer, listener, dialer_end, _ = await linked_pair()
    await dialer_end.inner.send_all(b"\x7f\xff\xff\xff")
    with pytest.raises(OversizeFrameError):
        await listener.receive()


async def test_a_cut_link_reports_closed_on_both_ends() -> None:
    dialer, listener, dialer_end, _ = await linked_pair()
    dialer_end.cut()
    with pytest.raises(LinkClosed):
        await listener.receive()
    with pytest.raises(LinkClosed):
        await dialer.send(Channel.CONSENSUS, b"into the void")
