"""PeerManager behaviour over in-memory links under a mock clock: queues, stalls, faults, backoff."""

from __future__ import annotations

import logging

import pytest
import trio
import trio.testing

from p2p.errors import P2PConfigError
from p2p.faults import FaultyStream, MemoryNetwork
from p2p.frames import Channel
from p2p.handshake import LocalIdentity
from p2p.peers import PeerAddress, PeerManager, PeerStatus, Received, TransportSettings
from proof.mldsa import SigningKey

CHAIN = bytes(range(32))
KEYS = [SigningKey(bytes([i + 1]) * 32) for i in range(2)]
DIRECTORY = {i: KEYS[i].public_key for i in range(2)}
SETTINGS = TransportSettings(keepalive_interval_ms=1_000, idle_timeout_ms=5_000, send_timeout_ms=2_000,
                             reconnect_initial_ms=100, reconnect_max_ms=1_600, send_queue_frames_max=8)
DEADLINE_S = 60.0


def status(manager: PeerManager, index: int) -> PeerStatus:
    (row,) = [row for row in manager.peer_table() if row.index == index]
    return row


async def start(nursery: trio.Nursery, net: MemoryNetwork, index: int, *, dials: bool,
                settings: TransportSettings = SETTINGS) -> PeerManager:
    """Validator ``index`` on the memory network; only validator 0 dials, so each pair has one link."""
    peers = {1 - index: net.address(1 - index)} if dials else {}
    manager = PeerManager(LocalIdentity(CHAIN, index, KEYS[index]), DIRECTORY, peers, settings, listen=None,
                          connector=net.connector(index))
    await nursery.start(manager.run)
    net.managers[index] = manager
    return manager


async def wait_linked(a: PeerManager, b: PeerManager) -> None:
    """Both ends adopted the link (the dialer adopts one message earlier than the listener)."""
    with trio.fail_after(DEADLINE_S):
        await a.wait_connected([b.identity.index])
        await b.wait_connected([a.identity.index])


def dialer_end(net: MemoryNetwork) -> FaultyStream:
    return net.links[-1].dialer_end


async def wait_until(predicate: object, timeout_s: float = DEADLINE_S) -> None:
    with trio.fail_after(timeout_s):
        while not predicate():  # type: ignore[operator]
            await trio.sleep(0.01)


async def test_a_frame_sent_before_the_peer_is_up_is_delivered_once_it_connects(
        autojump_clock: trio.testing.MockClock) -> None:
    net = MemoryNetwork()
    async with trio.open_nursery() as nursery:
        a = await start(nursery, net, 0, dials=True)
        a.send(1, Channel.CONSENSUS, b"early vote")
        b = await start(nursery, net, 1, dials=False)
        with trio.fail_after(DEADLINE_S):
            assert await b.inbound.receive() == Received(0, Channel.CONSENSUS, b"early vote")
        nursery.cancel_scope.cancel()


async def test_a_stalled_peer_never_blocks_the_sender_and_its_queue_stays_bounded(
        autojump_clock: trio.testing.MockClock) -> None:
    net = MemoryNetwork()
    async with trio.open_nursery() as nursery:
        a = await start(nursery, net, 0, dials=True)
        b = await start(nursery, net, 1, dials=False)
        await wait_linked(a, b)
        dialer_end(net).stall()
        dropped = sum(a.send(1, Channel.CONSENSUS, bytes([i])) for i in range(100))
        row = status(a, 1)
        assert dropped == row.frames_dropped == 100 - SETTINGS.send_queue_frames_max
        assert row.queued_frames == SETTINGS.send_queue_frames_max
        nursery.cancel_scope.cancel()


async def test_a_peer_that_stops_reading_is_dropped_after_the_send_timeout(
        autojump_clock: trio.testing.MockClock) -> None:
    net = MemoryNetwork()
    async with trio.open_nursery() as nursery:
        a = await start(nursery, net, 0, dials=True)
        b = await start(nursery, net, 1, dials=False)
        await wait_linked(a, b)
        net.refused.add(1)
        dialer_end(net).stall()
        a.send(1, Channel.CONSENSUS, b"vote")
        stalled_at = trio.current_time()
        await wait_until(lambda: not status(a, 1).connected)
        assert trio.current_time() - stalled_at == pytest.approx(SETTINGS.send_timeout_ms / 1000, abs=0.05)
        assert "stalled" in (status(a, 1).last_error or "")
        nursery.cancel_scope.cancel()


async def test_a_peer_that_goes_silent_is_dropped_after_the_idle_timeout(
        autojump_clock: trio.testing.MockClock) -> None:
    patient = TransportSettings(keepalive_interval_ms=1_000, idle_timeout_ms=3_000, send_timeout_ms=60_000)
    net = MemoryNetwork()
    async with trio.open_nursery() as nursery:
        a = await start(nursery, net, 0, dials=True, settings=patient)
        b = await start(nursery, net, 1, dials=False, settings=patient)
        await wait_linked(a, b)
        net.refused.add(1)
        dialer_end(net).stall()
        silent_since = trio.current_time()
        await wait_until(lambda: not status(b, 0).connected)
        assert trio.current_time() - silent_since == pytest.approx(patient.idle_timeout_ms / 1000, abs=0.05)
        assert "nothing received" in (status(b, 0).last_error or "")
        nursery.cancel_scope.cancel()


async def test_a_bit_flipped_on_a_live_link_drops_it_and_the_dialer_reconnects(
        autojump_clock: trio.testing.MockClock, caplog: pytest.LogCaptureFixture) -> None:
    net = MemoryNetwork()
    async with trio.open_nursery() as nursery:
        a = await start(nursery, net, 0, dials=True)
        b = await start(nursery, net, 1, dials=False)
        await wait_linked(a, b)
        end = dialer_end(net)
        end.corrupt(end.bytes_sent + 7)
        a.send(1, Channel.CONSENSUS, b"vote")
        await wait_until(lambda: status(b, 0).links_established == 2 and status(b, 0).connected)
        assert "bad frame" in (status(b, 0).last_error or "")
        assert any("sent a bad frame" in r.getMessage() and "memory:0" in r.getMessage() for r in caplog.records)
        a.send(1, Channel.CONSENSUS, b"after reconnect")
        with trio.fail_after(DEADLINE_S):
            assert (await b.inbound.receive()).payload == b"after reconnect"
        nursery.cancel_scope.cancel()


async def test_an_oversize_frame_header_drops_the_link_with_a_clear_log_line(
        autojump_clock: trio.testing.MockClock, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="pantheon.p2p")
    net = MemoryNetwork()
    async with trio.open_nursery() as nursery:
        a = await start(nursery, net, 0, dials=True)
        b = await start(nursery, net, 1, dials=False)
        await wait_linked(a, b)
        net.refused.add(1)
        await dialer_end(net).inner.send_all(b"\xff\xff\xff\xff")
        await wait_until(lambda: not status(b, 0).connected)
        assert "oversize frame" in (status(b, 0).last_error or "")
        assert any("oversize frame" in r.getMessage() for r in caplog.records if r.levelno == logging.WARNING)
        nursery.cancel_scope.cancel()


async def test_redials_back_off_exponentially_with_jitter_up_to_the_cap(
        autojump_clock: trio.testing.MockClock) -> None:
    net = MemoryNetwork()
    attempts: list[float] = []
    refusing = net.connector(0)

    async def counting(peer_index: int, address: PeerAddress) -> trio.abc.Stream:
        attempts.append(trio.current_time())
        return await refusing(peer_index, address)

    manager = PeerManager(LocalIdentity(CHAIN, 0, KEYS[0]), DIRECTORY, {1: net.address(1)}, SETTINGS,
                          listen=None, connector=counting)
    async with trio.open_nursery() as nursery:
        await nursery.start(manager.run)
        await wait_until(lambda: len(attempts) >= 9)
        nursery.cancel_scope.cancel()
    for k, (earlier, later) in enumerate(zip(attempts, attempts[1:])):
        backoff_s = min(SETTINGS.reconnect_initial_ms * 2**k, SETTINGS.reconnect_max_ms) / 1000
        assert backoff_s / 2 <= later - earlier <= backoff_s + 0.02, f"gap {k}"
    assert "not listening" in (status(manager, 1).last_error or "")


async def start_both_dialing(nursery: trio.Nursery, net: MemoryNetwork, connect_delay_s: dict[int, float]
                             ) -> list[PeerManager]:
    """Validators 0 and 1 dialing each other, each connect attempt delayed by the given seconds."""
    settings = TransportSettings(dial_yield_ms=1, reconnect_initial_ms=100, reconnect_max_ms=1_600)
    managers = []
    for index in (0, 1):
        inner = net.connector(index)

        async def delayed(peer_index: int, address: PeerAddress, inner=inner, index=index) -> trio.abc.Stream:
            await trio.sleep(connect_delay_s[index])
            return await inner(peer_index, address)

        manager = PeerManager(LocalIdentity(CHAIN, index, KEYS[index]), DIRECTORY, {1 - index: net.address(1 - index)},
                              settings, listen=None, connector=delayed)
        await nursery.start(manager.run)
        net.managers[index] = manager
        managers.append(manager)
    return managers


async def test_a_link_dialed_by_the_lower_index_replaces_one_dialed_by_the_higher(
        autojump_clock: trio.testing.MockClock) -> None:
    net = MemoryNetwork()
    async with trio.open_nursery() as nursery:
        a, b = await start_both_dialing(nursery, net, {0: 0.010, 1: 0.0})
        await wait_until(lambda: len(net.links) == 2 and status(a, 1).links_established == 2
                         and status(b, 0).links_established == 2)
        await trio.sleep(1)
        assert (status(a, 1).direction, status(b, 0).direction) == ("outbound", "inbound")
        assert [(link.dialer, link.target) for link in net.links] == [(1, 0), (0, 1)]
        nursery.cancel_scope.cancel()


async def test_a_link_dialed_by_the_higher_index_is_refused_while_the_lower_ones_stands(
        autojump_clock: trio.testing.MockClock) -> None:
    net = MemoryNetwork()
    async with trio.open_nursery() as nursery:
        a, b = await start_both_dialing(nursery, net, {0: 0.005, 1: 0.010})
        await wait_until(lambda: len(net.links) == 2)
        await trio.sleep(1)
        assert (status(a, 1).links_established, status(b, 0).links_established) == (1, 1)
        assert (status(a, 1).direction, status(b, 0).direction) == ("outbound", "inbound")
        nursery.cancel_scope.cancel()


async def silent_connection(manager: PeerManager, source: str) -> trio.testing.MemoryReceiveStream:
    """An inbound memory connection from ``source`` that never sends a byte; returns the far end."""
    local, remote = trio.testing.memory_stream_pair()
    manager.accept(local, source)
    await trio.testing.wait_all_tasks_blocked()
    return remote


async def closed_at_once(remote: trio.abc.Stream) -> bool:
    with trio.move_on_after(0.1):
        return await remote.receive_some() == b""
    return False


async def test_inbound_connections_beyond_a_sources_share_are_closed_at_once(
        autojump_clock: trio.testing.MockClock) -> None:
    settings = TransportSettings(pending_handshakes_max=4, pending_handshakes_per_source_max=2)
    manager = PeerManager(LocalIdentity(CHAIN, 0, KEYS[0]), DIRECTORY, {}, settings, listen=None)
    async with trio.open_nursery() as nursery:
        await nursery.start(manager.run)
        first = [await silent_connection(manager, "memory:a") for _ in range(2)]
        assert await closed_at_once(await silent_connection(manager, "memory:a"))
        assert not any([await closed_at_once(remote) for remote in first])
        assert manager.handshake_failures["source_busy"] == 1
        nursery.cancel_scope.cancel()


async def test_when_every_slot_is_taken_a_new_source_evicts_the_oldest_of_the_busiest_source(
        autojump_clock: trio.testing.MockClock) -> None:
    settings = TransportSettings(pending_handshakes_max=4, pending_handshakes_per_source_max=2)
    manager = PeerManager(LocalIdentity(CHAIN, 0, KEYS[0]), DIRECTORY, {}, settings, listen=None)
    async with trio.open_nursery() as nursery:
        await nursery.start(manager.run)
        held = [await silent_connection(manager, source) for source in ("memory:a", "memory:a", "memory:b",
                                                                        "memory:b")]
        newcomer = await silent_connection(manager, "memory:c")
        assert [await closed_at_once(remote) for remote in [*held, newcomer]] == [True, False, False, False, False]
        assert manager.handshake_failures["evicted"] == 1
        nursery.cancel_scope.cancel()


@pytest.mark.parametrize(("text", "expected"), [("10.0.0.2:7700", PeerAddress("10.0.0.2", 7700)),
                                                ("[::1]:7700", PeerAddress("::1", 7700)),
                                                ("node-3.example:1", PeerAddress("node-3.example", 1))])
def test_peer_addresses_parse_from_host_port(text: str, expected: PeerAddress) -> None:
    assert PeerAddress.parse(text) == expected


@pytest.mark.parametrize("text", ["10.0.0.2", ":7700", "host:0", "host:65536", "host:port"])
def test_malformed_peer_addresses_are_refused(text: str) -> None:
    with pytest.raises(P2PConfigError):
        PeerAddress.parse(text)


def test_an_idle_timeout_not_above_the_keepalive_interval_is_refused() -> None:
    with pytest.raises(P2PConfigError):
        TransportSettings(keepalive_interval_ms=2_000, idle_timeout_ms=2_000)
