"""The transport end to end on real loopback sockets: mesh, restart, refusal, clean shutdown."""

from __future__ import annotations

import logging
import os
from collections.abc import Callable

import pytest
import trio

from p2p.frames import Channel
from p2p.handshake import LocalIdentity
from p2p.peers import PeerAddress, PeerManager, Received, TransportSettings
from proof.mldsa import SigningKey

CHAIN = bytes(range(32))
OTHER_CHAIN = bytes(range(1, 33))
KEYS = [SigningKey(bytes([i + 1]) * 32) for i in range(4)]
DIRECTORY = {i: KEYS[i].public_key for i in range(4)}
SETTINGS = TransportSettings(keepalive_interval_ms=500, idle_timeout_ms=5_000, reconnect_initial_ms=20,
                             reconnect_max_ms=200)
LOOPBACK = "127.0.0.1"
DEADLINE_S = 20.0


async def wait_until(predicate: Callable[[], bool], timeout_s: float = DEADLINE_S) -> None:
    with trio.fail_after(timeout_s):
        while not predicate():
            await trio.sleep(0.01)


class Node:
    """One PeerManager in its own cancel scope, so a test can kill and restart it."""

    def __init__(self, index: int, listeners: list[trio.SocketListener], ports: dict[int, int],
                 chain: bytes = CHAIN) -> None:
        peers = {j: PeerAddress(LOOPBACK, port) for j, port in ports.items() if j != index}
        self.manager = PeerManager(LocalIdentity(chain, index, KEYS[index]), DIRECTORY, peers, SETTINGS,
                                   listeners=listeners)
        self.stopped = trio.Event()

    async def run(self, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        try:
            await self.manager.run(task_status=task_status)
        finally:
            self.stopped.set()


async def listen() -> tuple[list[trio.SocketListener], int]:
    listeners = await trio.open_tcp_listeners(0, host=LOOPBACK)
    return listeners, listeners[0].socket.getsockname()[1]


async def start_mesh(nursery: trio.Nursery, count: int) -> list[Node]:
    opened = [await listen() for _ in range(count)]
    ports = {i: port for i, (_, port) in enumerate(opened)}
    nodes = [Node(i, listeners, ports) for i, (listeners, _) in enumerate(opened)]
    for node in nodes:
        await nursery.start(node.run)
    return nodes


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


async def test_four_validators_form_a_full_mesh_and_exchange_messages() -> None:
    async with trio.open_nursery() as nursery:
        nodes = await start_mesh(nursery, 4)
        with trio.fail_after(DEADLINE_S):
            for node in nodes:
                await node.manager.wait_connected(set(range(4)) - {node.manager.identity.index})
        for node in nodes:
            node.manager.broadcast(Channel.CONSENSUS, b"vote from %d" % node.manager.identity.index)
        for node in nodes:
            me = node.manager.identity.index
            with trio.fail_after(DEADLINE_S):
                got = {await node.manager.inbound.receive() for _ in range(3)}
            assert got == {Received(j, Channel.CONSENSUS, b"vote from %d" % j) for j in range(4) if j != me}
        nursery.cancel_scope.cancel()


async def test_each_pair_keeps_exactly_one_link_when_both_sides_dial() -> None:
    async with trio.open_nursery() as nursery:
        nodes = await start_mesh(nursery, 4)

        def one_link_per_pair() -> bool:
            tables = [{row.index: row for row in node.manager.peer_table()} for node in nodes]
            return all(
                tables[i][j].connected and tables[j][i].connected
                and {tables[i][j].direction, tables[j][i].direction} == {"inbound", "outbound"}
                for i in range(4) for j in range(4) if i != j)

        await wait_until(one_link_per_pair)
        nursery.cancel_scope.cancel()


async def test_a_killed_validator_is_reconnected_after_restart_and_messages_flow_again() -> None:
    async with trio.open_nursery() as nursery:
        nodes = await start_mesh(nursery, 2)
        survivor, victim = nodes[0].manager, nodes[1]
        with trio.fail_after(DEADLINE_S):
            await survivor.wait_connected([1])
        port = victim.manager.listen_port
        assert port is not None
        victim.manager.shutdown()
        with trio.fail_after(DEADLINE_S):
            await victim.stopped.wait()
        await wait_until(lambda: 1 not in survivor.connected_peers())

        restarted = Node(1, await trio.open_tcp_listeners(port, host=LOOPBACK),
                         {0: nodes[0].manager.listen_port or 0, 1: port})
        await nursery.start(restarted.run)
        with trio.fail_after(DEADLINE_S):
            await survivor.wait_connected([1])
        survivor.send(1, Channel.CONSENSUS, b"welcome back")
        restarted.manager.send(0, Channel.CONSENSUS, b"thanks")
        with trio.fail_after(DEADLINE_S):
            assert await restarted.manager.inbound.receive() == Received(0, Channel.CONSENSUS, b"welcome back")
            assert await survivor.inbound.receive() == Received(1, Channel.CONSENSUS, b"thanks")
        assert [row.links_established for row in survivor.peer_table() if row.index == 1] == [2]
        nursery.cancel_scope.cancel()


async def test_a_validator_of_another_chain_is_refused_and_the_refusal_names_its_address(
        caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="pantheon.p2p")
    async with trio.open_nursery() as nursery:
        listeners, port = await listen()
        home = Node(0, listeners, {0: port})
        await nursery.start(home.run)
        foreign_listeners, foreign_port = await listen()
        foreigner = Node(1, foreign_listeners, {0: port, 1: foreign_port}, chain=OTHER_CHAIN)
        await nursery.start(foreigner.run)
        await wait_until(lambda: home.manager.handshake_failures["chain_id_mismatch"] >= 1)
        assert home.manager.connected_peers() == frozenset()
        assert foreigner.manager.connected_peers() == frozenset()
        inbound_refusals = [r.getMessage() for r in caplog.records if "inbound handshake from" in r.getMessage()]
        assert any(f"{LOOPBACK}:" in m and "chain_id_mismatch" in m for m in inbound_refusals)
        nursery.cancel_scope.cancel()


async def test_shutdown_closes_every_socket_and_ends_every_task() -> None:
    fds_before = open_fds()
    tasks_before = trio.lowlevel.current_statistics().tasks_living
    async with trio.open_nursery() as nursery:
        nodes = await start_mesh(nursery, 3)
        with trio.fail_after(DEADLINE_S):
            for node in nodes:
                await node.manager.wait_connected(set(range(3)) - {node.manager.identity.index})
        assert open_fds() > fds_before
        for node in nodes:
            node.manager.shutdown()
        with trio.fail_after(DEADLINE_S):
            for node in nodes:
                await node.stopped.wait()
    assert open_fds() == fds_before
    assert trio.lowlevel.current_statistics().tasks_living == tasks_before
