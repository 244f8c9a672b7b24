"""The per-peer send queue (bounded, drop-oldest, priority by channel, never blocks the caller) and the
inbound queue (bounded in frames and bytes per peer, waits instead of dropping)."""

from __future__ import annotations

import pytest
import trio
import trio.testing

from p2p.frames import Channel
from p2p.queue import InboundQueue, Received, SendQueue


def drain(queue: SendQueue) -> list[tuple[Channel, bytes]]:
    items = []
    while (item := queue.get_nowait()) is not None:
        items.append(item)
    return items


def test_over_the_frame_bound_the_oldest_frame_is_dropped_and_counted() -> None:
    queue = SendQueue(frames_max=3, bytes_max=1000)
    dropped = [queue.put(Channel.CONSENSUS, bytes([i])) for i in range(5)]
    assert dropped == [0, 0, 0, 1, 1]
    assert queue.dropped_frames == 2
    assert [payload for _, payload in drain(queue)] == [b"\x02", b"\x03", b"\x04"]


def test_over_the_byte_bound_old_frames_are_dropped_until_the_new_one_fits() -> None:
    queue = SendQueue(frames_max=100, bytes_max=10)
    queue.put(Channel.GOSSIP, b"aaaa")
    queue.put(Channel.GOSSIP, b"bbbb")
    assert queue.put(Channel.GOSSIP, b"cccccc") == 1
    assert queue.bytes == 10
    assert [payload for _, payload in drain(queue)] == [b"bbbb", b"cccccc"]


def test_frames_leave_in_channel_priority_order() -> None:
    queue = SendQueue(frames_max=10, bytes_max=1000)
    queue.put(Channel.CATCHUP, b"block")
    queue.put(Channel.GOSSIP, b"batch")
    queue.put(Channel.CONSENSUS, b"vote")
    assert [channel for channel, _ in drain(queue)] == [Channel.CONSENSUS, Channel.GOSSIP, Channel.CATCHUP]


def test_the_lowest_priority_traffic_is_shed_first() -> None:
    queue = SendQueue(frames_max=2, bytes_max=1000)
    queue.put(Channel.CONSENSUS, b"old vote")
    queue.put(Channel.CATCHUP, b"block")
    queue.put(Channel.CONSENSUS, b"new vote")
    assert drain(queue) == [(Channel.CONSENSUS, b"old vote"), (Channel.CONSENSUS, b"new vote")]


def test_a_payload_larger_than_the_whole_queue_is_refused() -> None:
    with pytest.raises(ValueError):
        SendQueue(frames_max=10, bytes_max=4).put(Channel.GOSSIP, b"12345")


async def test_get_waits_for_a_frame_and_returns_it() -> None:
    queue = SendQueue(frames_max=10, bytes_max=1000)
    got: list[tuple[Channel, bytes]] = []

    async def consumer() -> None:
        got.append(await queue.get())

    async with trio.open_nursery() as nursery:
        nursery.start_soon(consumer)
        await trio.testing.wait_all_tasks_blocked()
        assert got == []
        queue.put(Channel.CONSENSUS, b"vote")
    assert got == [(Channel.CONSENSUS, b"vote")]


def frame(peer: int, size: int) -> Received:
    return Received(peer, Channel.GOSSIP, bytes(size))


async def put_blocks(queue: InboundQueue, item: Received) -> bool:
    """True when ``put(item)`` cannot complete until something is received."""
    with trio.move_on_after(1) as scope:
        await queue.put(item)
    return scope.cancelled_caught


async def test_a_peer_over_its_byte_budget_waits_until_the_node_takes_its_frames(
        autojump_clock: trio.testing.MockClock) -> None:
    queue = InboundQueue(frames_per_peer_max=100, bytes_per_peer_max=10)
    await queue.put(frame(1, 6))
    assert await put_blocks(queue, frame(1, 6))
    assert queue.queued(1) == (1, 6)
    assert (await queue.receive()).payload == bytes(6)
    assert not await put_blocks(queue, frame(1, 6))


async def test_a_peer_over_its_frame_budget_waits(autojump_clock: trio.testing.MockClock) -> None:
    queue = InboundQueue(frames_per_peer_max=2, bytes_per_peer_max=1000)
    await queue.put(frame(1, 1))
    await queue.put(frame(1, 1))
    assert await put_blocks(queue, frame(1, 1))


async def test_one_peer_at_its_budget_does_not_hold_up_another(autojump_clock: trio.testing.MockClock) -> None:
    queue = InboundQueue(frames_per_peer_max=100, bytes_per_peer_max=10)
    await queue.put(frame(1, 10))
    assert await put_blocks(queue, frame(1, 1))
    assert not await put_blocks(queue, frame(2, 10))
    assert [(await queue.receive()).peer_index for _ in range(2)] == [1, 2]


async def test_a_frame_into_an_empty_budget_always_fits() -> None:
    queue = InboundQueue(frames_per_peer_max=1, bytes_per_peer_max=4)
    await queue.put(frame(1, 100))
    assert queue.queued(1) == (1, 100)


async def test_after_close_put_fails_and_receivers_drain_then_see_the_end() -> None:
    queue = InboundQueue(frames_per_peer_max=10, bytes_per_peer_max=100)
    await queue.put(frame(1, 1))
    queue.close()
    with pytest.raises(trio.BrokenResourceError):
        await queue.put(frame(1, 1))
    assert [item.peer_index async for item in queue] == [1]
    with pytest.raises(trio.EndOfChannel):
        await queue.receive()


async def test_closing_wakes_a_waiting_put() -> None:
    queue = InboundQueue(frames_per_peer_max=1, bytes_per_peer_max=100)
    await queue.put(frame(1, 1))
    failures: list[Exception] = []

    async def waiting_put() -> None:
        try:
            await queue.put(frame(1, 1))
        except trio.BrokenResourceError as exc:
            failures.append(exc)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(waiting_put)
        await trio.testing.wait_all_tasks_blocked()
        queue.close()
    assert len(failures) == 1
