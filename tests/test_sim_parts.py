"""The simulator's parts on their own: seeds, virtual clock, fault mix and plan, links."""

from __future__ import annotations

import pytest

from consensus.sim.faults import FAULT_KINDS, FaultMix, FaultMixError, parse_fault_mix, plan_faults
from consensus.sim.network import LINK_DELAY_MS_MAX, Network
from consensus.sim.rng import derive_rng
from consensus.sim.scheduler import Scheduler, SchedulerError

GST_MS = 5_000


def test_derived_generators_depend_on_seed_and_purpose_only():
    assert derive_rng(1, "link", 0, 1).random() == derive_rng(1, "link", 0, 1).random()
    assert derive_rng(1, "link", 0, 1).random() != derive_rng(1, "link", 1, 0).random()
    assert derive_rng(1, "mempool", 0).random() != derive_rng(2, "mempool", 0).random()


def test_drawing_from_one_purpose_does_not_shift_another():
    untouched = derive_rng(9, "faults", "crash").random()
    busy = derive_rng(9, "faults", "partition")
    for _ in range(1_000):
        busy.random()
    assert derive_rng(9, "faults", "crash").random() == untouched


def test_scheduler_pops_by_time_then_by_insertion():
    scheduler: Scheduler[str] = Scheduler()
    scheduler.at(20, "late")
    scheduler.at(10, "first")
    scheduler.at(10, "second")
    assert [scheduler.pop() for _ in range(3)] == ["first", "second", "late"]
    assert scheduler.now_ms == 20


def test_scheduler_refuses_the_past_and_overflow():
    scheduler: Scheduler[str] = Scheduler(queue_items_max=2)
    scheduler.at(10, "a")
    scheduler.pop()
    with pytest.raises(SchedulerError, match="cannot schedule"):
        scheduler.at(5, "b")
    scheduler.after(1, "c")
    scheduler.after(1, "d")
    with pytest.raises(SchedulerError, match="runaway"):
        scheduler.after(1, "e")


def test_fault_mix_parses_lists_all_and_none():
    assert parse_fault_mix("all") == FaultMix()
    assert parse_fault_mix("none").names() == ()
    mix = parse_fault_mix("drop, crash")
    assert mix.names() == ("drop", "crash")
    assert parse_fault_mix(mix.spec()) == mix
    assert parse_fault_mix(FaultMix().spec()).names() == FAULT_KINDS


def test_fault_mix_refuses_unknown_kinds():
    with pytest.raises(FaultMixError, match="partiton"):
        parse_fault_mix("drop,partiton")


def test_fault_plan_heals_and_restarts_everything_before_gst():
    for seed in range(50):
        plan = plan_faults(seed, mix=FaultMix(), n=4, f=1, honest=(0, 1, 3), gst_ms=GST_MS)
        assert all(p.end_ms <= GST_MS for p in plan.partitions)
        assert all(c.restart_ms <= GST_MS for c in plan.crashes)
        assert all(c.node in (0, 1, 3) for c in plan.crashes)
        assert all(len(set(p.side)) > 1 for p in plan.partitions)


def test_fault_plan_is_empty_without_partition_and_crash():
    plan = plan_faults(3, mix=parse_fault_mix("drop,dup"), n=4, f=1, honest=(0, 1, 2, 3), gst_ms=GST_MS)
    assert plan.partitions == () and plan.crashes == ()


def _network(faults: str, seed: int = 1) -> Network:
    mix = parse_fault_mix(faults)
    plan = plan_faults(seed, mix=mix, n=4, f=1, honest=(0, 1, 2, 3), gst_ms=GST_MS)
    return Network(seed=seed, n=4, mix=mix, plan=plan, gst_ms=GST_MS)


def _send_many(network: Network, now_ms: int, count: int = 2_000) -> list[list[int]]:
    return [network.transmit(0, 1, 100, now_ms) for _ in range(count)]


def test_drops_happen_before_gst_and_never_after():
    network = _network("drop")
    _send_many(network, now_ms=100)
    assert network.stats.dropped > 0
    dropped = network.stats.dropped
    assert all(len(times) == 1 for times in _send_many(network, now_ms=GST_MS))
    assert network.stats.dropped == dropped


def test_duplicates_arrive_twice():
    network = _network("dup")
    deliveries = _send_many(network, now_ms=100)
    assert network.stats.duplicated == sum(1 for times in deliveries if len(times) == 2) > 0


def test_delay_after_gst_is_bounded():
    network = _network("delay,reorder,dup,drop")
    for times in _send_many(network, now_ms=GST_MS):
        assert all(GST_MS < t <= GST_MS + LINK_DELAY_MS_MAX for t in times)


def test_stalls_exceed_the_post_gst_bound():
    network = _network("delay")
    deliveries = _send_many(network, now_ms=0)
    assert network.stats.stalled > 0
    assert max(t for times in deliveries for t in times) > LINK_DELAY_MS_MAX


def test_links_without_reorder_are_fifo_and_with_reorder_are_not():
    fifo = _network("delay")
    arrivals = [fifo.transmit(0, 1, 100, now)[0] for now in range(0, 2_000, 2)]
    assert arrivals == sorted(arrivals)
    shuffled = _network("reorder")
    arrivals = [shuffled.transmit(0, 1, 100, now)[0] for now in range(0, 2_000, 2)]
    assert arrivals != sorted(arrivals)
    assert shuffled.stats.reordered > 0


def test_partition_cuts_only_across_sides_and_only_while_active():
    for seed in range(20):
        network = _network("partition", seed)
        if network.plan.partitions:
            break
    partition = network.plan.partitions[0]
    a = 0
    other = next(b for b in range(4) if partition.side[b] != partition.side[a])
    assert network.transmit(a, other, 10, partition.start_ms) == []
    assert network.stats.partitioned == 1
    assert network.cut_at_delivery(a, other, partition.start_ms)
    assert not network.plan.cut(a, other, GST_MS)
