"""The per-peer send queue: bounded, drop-oldest, priority by channel, never blocks the caller."""

from __future__ import annotations

import pytest
import trio
import trio.testing

from p2p.frames import Channel
from p2p.queue import SendQueue


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
