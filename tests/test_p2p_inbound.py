"""Inbound frames are bounded in bytes per peer: a Byzantine validator cannot pin the node's memory.

A peer that sends faster than the node reads fills only its own inbound budget; its reader
then waits (TCP flow control pushes back on the sender), and the other peers' frames
still get in. The node reads nothing in these tests.
"""

from __future__ import annotations

import trio
import trio.testing

from p2p.faults import MemoryNetwork
from p2p.frames import MAX_FRAME_BYTES, Channel
from p2p.handshake import LocalIdentity
from p2p.peers import PeerManager, PeerStatus, TransportSettings
from proof.mldsa import SigningKey

CHAIN = bytes(range(32))
KEYS = [SigningKey(bytes([i + 1]) * 32) for i in range(3)]
DIRECTORY = {i: KEYS[i].public_key for i in range(3)}
FLOOD_FRAME_BYTES = 1024 * 1024
FLOOD_FRAMES = 48
INBOUND_BYTES_BOUND = 16 * 1024 * 1024
DEADLINE_S = 60.0


def status(manager: PeerManager, index: int) -> PeerStatus:
    (row,) = [row for row in manager.peer_table() if row.index == index]
    return row


async def start(nursery: trio.Nursery, net: MemoryNetwork, index: int, dials: list[int]) -> PeerManager:
    manager = PeerManager(LocalIdentity(CHAIN, index, KEYS[index]), DIRECTORY,
                          {j: net.address(j) for j in dials}, TransportSettings(), listen=None,
                          connector=net.connector(index))
    await nursery.start(manager.run)
    net.managers[index] = manager
    return manager


async def test_a_flooding_peer_pins_at_most_its_inbound_byte_budget(autojump_clock: trio.testing.MockClock) -> None:
    net = MemoryNetwork()
    async with trio.open_nursery() as nursery:
        node = await start(nursery, net, 0, [])
        flooder = await start(nursery, net, 1, [0])
        with trio.fail_after(DEADLINE_S):
            await node.wait_connected([1])
        for n in range(FLOOD_FRAMES):
            flooder.send(0, Channel.GOSSIP, bytes([n]) * FLOOD_FRAME_BYTES)
        await trio.testing.wait_all_tasks_blocked()
        taken_bytes = status(node, 1).bytes_in
        print(f"\nflooder sent {FLOOD_FRAMES} x {FLOOD_FRAME_BYTES} B; the node's reader took {taken_bytes} B "
              f"({status(node, 1).frames_in} frames) with nobody reading")
        assert taken_bytes <= INBOUND_BYTES_BOUND + MAX_FRAME_BYTES
        nursery.cancel_scope.cancel()


async def test_a_flooding_peer_does_not_hold_up_another_peers_frames(
        autojump_clock: trio.testing.MockClock) -> None:
    net = MemoryNetwork()
    async with trio.open_nursery() as nursery:
        node = await start(nursery, net, 0, [])
        flooder = await start(nursery, net, 1, [0])
        honest = await start(nursery, net, 2, [0])
        with trio.fail_after(DEADLINE_S):
            await node.wait_connected([1, 2])
        for n in range(FLOOD_FRAMES):
            flooder.send(0, Channel.GOSSIP, bytes([n]) * FLOOD_FRAME_BYTES)
        await trio.testing.wait_all_tasks_blocked()
        honest.send(0, Channel.CONSENSUS, b"vote")
        await trio.testing.wait_all_tasks_blocked()
        assert status(node, 2).frames_in >= 1
        got = []
        with trio.fail_after(DEADLINE_S):
            while not any(r.peer_index == 2 for r in got):
                got.append(await node.inbound.receive())
        assert [r.payload for r in got if r.peer_index == 2 and r.channel is Channel.CONSENSUS] == [b"vote"]
        nursery.cancel_scope.cancel()
