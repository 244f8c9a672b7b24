"""The runtime's byte budget holds queued peer messages to a size, whatever their count."""

from __future__ import annotations

import trio
import trio.testing

from node.byte_budget import ByteBudget


async def test_a_charge_past_the_budget_waits_until_bytes_are_released() -> None:
    budget = ByteBudget(100)
    await budget.acquire(60)
    taken = []

    async def second() -> None:
        await budget.acquire(60)
        taken.append(budget.outstanding)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(second)
        await trio.testing.wait_all_tasks_blocked()
        assert taken == [] and budget.outstanding == 60
        await budget.release(60)
    assert taken == [60]


async def test_one_item_larger_than_the_budget_passes_alone() -> None:
    budget = ByteBudget(100)
    await budget.acquire(500)
    assert budget.outstanding == 500
