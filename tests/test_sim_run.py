"""Whole simulator runs: determinism, every fault kind acting, crash-restart safety.

Runs use short virtual horizons where the property does not need the full post-GST
window, to keep the set fast.
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from consensus.actions import Persist
from consensus.events import BlockChecked, ProposalReady
from consensus.safety import SafetyState
from consensus.sim import node as node_module
from consensus.sim.node import Disk, SimNode
from consensus.sim.faults import FaultMix, parse_fault_mix
from proof.chain import VoteKind
from consensus.sim.runner import SimConfig, Simulation, run_seed
from tests.test_consensus_harness import Cast

SHORT_MS = 6_000


def _config(faults: str, *, byzantine: int = 0, horizon_ms: int | None = SHORT_MS, **kwargs) -> SimConfig:
    mix = parse_fault_mix(faults)
    gst_ms = min(5_000, horizon_ms) if horizon_ms is not None else 5_000
    return SimConfig(byzantine=byzantine, faults=mix, horizon_ms=horizon_ms, gst_ms=gst_ms, **kwargs)


def test_same_seed_gives_the_same_trace_and_result():
    config = _config("all", byzantine=1)
    first, second = run_seed(config, 7), run_seed(config, 7)
    assert first.trace_hash == second.trace_hash
    assert first == second


def test_different_seeds_give_different_traces():
    config = _config("all", byzantine=1)
    assert run_seed(config, 1).trace_hash != run_seed(config, 2).trace_hash


def test_trace_does_not_depend_on_python_hash_seed():
    """Set and dict iteration over bytes must never steer a run: replay works across processes."""
    code = (
        "from consensus.sim.runner import SimConfig, run_seed;"
        "from consensus.sim.faults import parse_fault_mix;"
        f"print(run_seed(SimConfig(faults=parse_fault_mix('all'), horizon_ms={SHORT_MS}), 11).trace_hash)"
    )
    hashes = set()
    for hash_seed in ("1", "987654"):
        env = {**os.environ, "PYTHONHASHSEED": hash_seed}
        done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
        hashes.add(done.stdout.strip())
    assert len(hashes) == 1


def test_clean_network_all_honest_finalizes_in_about_three_hops():
    result = run_seed(_config("none"), 3)
    assert result.violation is None
    assert result.height_min > 10
    median_ms = sorted(result.finality_ms)[len(result.finality_ms) // 2]
    # Simplex: proposal, notarize votes, finalize votes = 3 one-way hops (plus jitter).
    assert 2 * result.mean_link_delay_ms <= median_ms <= 4.5 * result.mean_link_delay_ms


def test_all_honest_nodes_report_no_faults_under_network_faults():
    for seed in range(3):
        result = run_seed(_config("delay,drop,dup,reorder,partition,crash", horizon_ms=None), seed)
        assert result.violation is None, result.violation
        assert result.evidence_against == {}
        assert result.honest_counters["decode_rejected"] == 0
        assert not any(name.startswith("invalid_block") for name in result.core_counters)


def test_clean_network_injects_nothing():
    result = run_seed(_config("none"), 5)
    links = result.links
    assert (links.dropped, links.duplicated, links.partitioned, links.stalled, links.reordered) == (0, 0, 0, 0, 0)
    assert result.crashes == 0 and result.partitions == 0 and result.byzantine == {}


@pytest.mark.parametrize(
    ("fault", "observed"),
    [
        ("drop", lambda r: r.links.dropped),
        ("dup", lambda r: r.links.duplicated and r.core_counters.get("dropped_duplicate", 0)),
        ("delay", lambda r: r.links.stalled),
        ("reorder", lambda r: r.links.reordered),
        ("partition", lambda r: r.links.partitioned),
        ("crash", lambda r: r.honest_counters["restarts"]),
        ("byzantine", lambda r: len(r.byzantine)),
    ],
)
def test_each_fault_kind_acts_and_safety_holds(fault, observed):
    result = run_seed(_config(fault, byzantine=1), 4)
    assert observed(result) > 0
    assert result.violation is None, result.violation
    assert result.height_max > 0


def test_crash_restart_keeps_safety_over_many_crashes():
    restarts = 0
    for seed in range(6):
        result = run_seed(_config("crash,drop", horizon_ms=None), seed)
        assert result.violation is None, result.violation
        restarts += result.honest_counters["restarts"]
    assert restarts >= 6


def test_restarted_node_resumes_from_its_disk_only():
    simulation = Simulation(_config("crash"), 2)
    result = simulation.run()
    assert result.violation is None
    crashed = {crash.node for crash in simulation.plan.crashes}
    assert crashed
    for index in crashed:
        node = simulation.nodes[index]
        assert node.incarnation > 0
        persisted = SafetyState.decode(node.disk.safety)
        assert persisted.view <= node.core.view
        # The restarted core's finalized tip is the disk's tip.
        assert node.core.finalized_height == len(node.disk.blocks)


def test_real_crypto_run_finalizes_consistently():
    result = run_seed(_config("none", real_crypto=True, horizon_ms=2_500), 1)
    assert result.violation is None
    assert result.height_min > 0


def test_config_refuses_more_byzantine_than_f():
    with pytest.raises(ValueError, match="byzantine"):
        SimConfig(validators=4, byzantine=2)


def test_config_refuses_n_not_3f_plus_1():
    with pytest.raises(ValueError, match="3f\\+1"):
        SimConfig(validators=5, byzantine=0)


def test_byzantine_count_is_zero_without_the_byzantine_fault():
    assert SimConfig(byzantine=1, faults=FaultMix.none()).byzantine_count == 0


def test_driver_that_persists_after_sending_is_caught(monkeypatch):
    """A driver running Persist after the sends that follow it breaks crash safety: flagged."""
    original = SimNode.execute

    def persist_last(self, actions, now_ms):
        original(self, [a for a in actions if type(a) is not Persist] + [a for a in actions if type(a) is Persist],
                 now_ms)

    monkeypatch.setattr(SimNode, "execute", persist_last)
    result = run_seed(_config("none"), 1)
    assert result.violation is not None
    assert result.violation.invariant == "persisted-votes"


def test_step_guard_stops_a_run_without_a_false_stall():
    result = run_seed(_config("none", horizon_ms=None, steps_max=500), 1)
    assert result.steps == 500
    assert result.violation is None
    assert result.time_ms < 5_000


# Seeds (n=4 f=1, all faults) in which every honest voter of a notarized block crashes
# and restarts before the block is final, found by the simulator. Unless their drivers
# kept the block on disk, no honest node holds it and the chain stalls for good. Seed 437
# showed it first (a Byzantine leader equivocated in view 2); since timeouts also ask for
# catch-up, the runs differ and seed 880 is the one that shows it without kept blocks.
SEED_ALL_VOTERS_OF_A_BLOCK_RESTART = 437
SEED_STALLS_WITHOUT_KEPT_BLOCKS = 89


def test_a_notarized_block_survives_the_restart_of_every_honest_voter():
    for seed in (SEED_ALL_VOTERS_OF_A_BLOCK_RESTART, SEED_STALLS_WITHOUT_KEPT_BLOCKS):
        result = run_seed(_config("all", byzantine=1, horizon_ms=None), seed)
        assert result.violation is None, (seed, result.violation)
        assert result.crashes > 0


def test_driver_that_does_not_keep_voted_blocks_is_caught_stalling(monkeypatch):
    monkeypatch.setattr(Disk, "keep", lambda self, block: None)
    result = run_seed(_config("all", byzantine=1, horizon_ms=None), SEED_STALLS_WITHOUT_KEPT_BLOCKS)
    assert result.violation is not None
    assert result.violation.invariant == "progress"


def test_honest_driver_keeps_each_block_before_answering_for_it(monkeypatch):
    answers: list[bool] = []
    original = Simulation.local

    def spy(self, node, incarnation, event, delay_ms):
        kept = self.nodes[node].disk.unfinalized
        if type(event) is BlockChecked and event.valid:
            answers.append(event.block_hash in kept)
        elif type(event) is ProposalReady:
            answers.append(event.block.hash in kept)
        original(self, node, incarnation, event, delay_ms)

    monkeypatch.setattr(Simulation, "local", spy)
    result = run_seed(_config("none", horizon_ms=2_000), 1)
    assert result.violation is None
    assert len(answers) > 10 and all(answers)


def test_disk_returns_kept_blocks_lowest_first_and_drops_them_once_finalized():
    cast = Cast()
    first = cast.block(0)
    second = cast.block(1, first)
    rival = cast.block(2, first)
    disk = Disk()
    for block in (second, rival, first):
        disk.keep(block)
    assert disk.kept() == [first, second, rival]
    disk.commit(first, cast.certificate(VoteKind.FINALIZE, 0, first.hash))
    assert disk.kept() == [second, rival]
    disk.commit(second, cast.certificate(VoteKind.FINALIZE, 1, second.hash))
    assert disk.kept() == []


def test_disk_does_not_keep_a_block_at_or_below_the_finalized_height():
    cast = Cast()
    first = cast.block(0)
    disk = Disk()
    disk.commit(first, cast.certificate(VoteKind.FINALIZE, 0, first.hash))
    disk.keep(cast.block(1))
    assert disk.kept() == []


def test_a_restarted_node_hands_its_kept_blocks_to_the_new_core(monkeypatch):
    handed: list[tuple[tuple[int, ...], int]] = []
    real_core = node_module.Core

    def core_spy(**kwargs):
        heights = tuple(block.header.height for block in kwargs["blocks"])
        tip = kwargs["finalized_tip"].header
        handed.append((heights, 0 if tip is None else tip.height))
        return real_core(**kwargs)

    monkeypatch.setattr(node_module, "Core", core_spy)
    for seed in range(4):
        assert run_seed(_config("crash"), seed).violation is None
    restarts_with_blocks = [(heights, tip) for heights, tip in handed if heights]
    assert restarts_with_blocks
    for heights, tip in restarts_with_blocks:
        assert list(heights) == sorted(heights) and min(heights) > tip
