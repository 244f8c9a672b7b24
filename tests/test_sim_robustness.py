"""The review's attacks as simulator behaviours: each is committed, and no honest validator crashes, stalls or lags.

One behaviour per test, one Byzantine validator at n = 4. The run itself checks every
invariant (a crash of the code under test is the ``exception`` violation; a validator
that never catches up is ``rejoin``); the test adds what shows the attack was really
made and really refused. The issue note records how each run failed on the code before
the fix.
"""

from __future__ import annotations

import dataclasses

from consensus.safety import FINALIZE_VOTES_KEPT_MAX
from consensus.sim.faults import FaultMix, FaultPlan, Partition, parse_fault_mix
from consensus.sim.network import Network
from consensus.sim.node import SimNode
from consensus.sim.invariants import INVARIANTS
from consensus.sim.runner import RunResult, SimConfig, Simulation, run_seed

SEEDS = range(4)


def _runs(behaviour: str, faults: str = "all", seeds=SEEDS) -> list[RunResult]:
    config = SimConfig(byzantine=1, faults=parse_fault_mix(faults), behaviours=(behaviour,), sizes="small")
    results = [run_seed(config, seed) for seed in seeds]
    for result in results:
        assert result.violation is None, f"seed {result.seed}: {result.violation.describe()}"
    return results


def _committed(results: list[RunResult], stat: str = "committed") -> int:
    return sum(stats.get(stat, 0) for result in results for stats in result.behaviour_stats.values())


def test_stale_and_rival_proposals_are_dropped_and_crash_nobody() -> None:
    results = _runs("stale")
    assert _committed(results) > 0
    assert sum(r.core_counters.get("dropped_stale_proposal", 0) for r in results) > 0


def test_fat_proposals_are_dropped_before_they_are_stored() -> None:
    results = _runs("fat")
    assert _committed(results) > 0
    assert sum(r.core_counters.get("dropped_oversize_block", 0) for r in results) > 0


def test_a_catch_up_trapper_keeps_no_laggard_behind() -> None:
    results = _runs("trap", faults="delay,drop,crash,byzantine", seeds=range(6))
    assert _committed(results, "withheld") > 0
    assert sum(r.catchup_blocks for r in results) > 0


def test_certificates_replayed_from_far_below_the_view_are_dropped() -> None:
    results = _runs("replay")
    assert _committed(results) > 0
    assert sum(r.core_counters.get("dropped_old_view", 0) for r in results) > 0


def test_finalize_starvation_with_an_honest_validator_cut_off_neither_crashes_nor_stalls_anyone() -> None:
    """The review's case: f validators never finalize while one honest validator is cut off
    until GST. The other honest validators notarize hundreds of views with nothing finalized
    (more than their finalize-vote record holds and more than the view window keeps); after
    GST the whole chain is finalized at once and the cut-off validator catches up."""
    gst_ms = 300_000
    mix = FaultMix(delay=True, drop=False, dup=False, reorder=False, partition=True, crash=False, byzantine=True)
    config = SimConfig(byzantine=1, faults=mix, behaviours=("starve",), gst_ms=gst_ms, sizes="small")
    sim = Simulation(config, 0)
    victim = sim.honest[0]
    sim.plan = FaultPlan(partitions=(Partition(0, gst_ms - 1, tuple(int(i == victim) for i in range(4))),), crashes=())
    sim.network = Network(seed=0, n=4, mix=mix, plan=sim.plan, gst_ms=gst_ms)
    result = sim.run()
    assert result.violation is None, result.violation.describe()
    assert result.views_max > FINALIZE_VOTES_KEPT_MAX + 100
    assert result.height_min == result.height_max > FINALIZE_VOTES_KEPT_MAX
    assert _committed([result]) > 0


def test_full_size_blocks_and_signatures_fit_the_frame_and_a_long_laggard_rejoins() -> None:
    config = SimConfig(byzantine=1, sizes="real")
    result = run_seed(config, 1)
    assert result.violation is None, result.violation.describe()
    assert result.real_sizes and result.catchup_blocks > 0


def _run_with_a_restore_from_backup(seed: int, restored: bool, *, horizon_ms: int | None = None) -> RunResult:
    """Every restart boots from an older persisted safety state (40 persists back), as a
    restore from a backup does; ``restored`` tells the core so (``pantheon node run --restored``).
    With ``horizon_ms`` the run lasts that long and the progress invariant is off (the others hold)."""
    history: dict[int, list] = {}
    original_persist, original_boot = SimNode.persist, SimNode.boot

    def persist(self, action) -> None:
        original_persist(self, action)
        history.setdefault(self.index, []).append((self.disk.safety, self.disk.safety_state))

    def boot(self, now_ms, restored_flag=False) -> None:
        states = history.get(self.index, [])
        if self.counters.restarts and len(states) > 4:
            self.disk.safety, self.disk.safety_state = states[max(0, len(states) - 40)]
            return original_boot(self, now_ms, restored=restored)
        return original_boot(self, now_ms)

    SimNode.persist, SimNode.boot = persist, boot
    try:
        config = SimConfig(byzantine=0, faults=parse_fault_mix("delay,crash"), sizes="small")
        if horizon_ms is not None:
            config = dataclasses.replace(config, horizon_ms=horizon_ms,
                                         invariants=tuple(name for name in INVARIANTS if name != "progress"))
        return Simulation(config, seed).run()
    finally:
        SimNode.persist, SimNode.boot = original_persist, original_boot


SEEDS_WITH_ONE_RESTORE = (2, 7, 42)
"""Seeds whose run restores one validator at a time from a backup old enough to equivocate
(found by running seeds 0-89). Seeds 4, 17, 33, 38 and 71 restore two or three of the four
with overlapping waits, which the operator guide rules out: see the test below."""


def test_two_of_four_validators_restored_at_once_stall_the_chain_for_good_even_once_both_vote_again() -> None:
    """Why docs/operator.md says "restore one validator at a time, and only while the others
    are up". Seed 4 restores validator 0, then validator 3 while 0 still waits. The two
    others cannot form a certificate alone, so they stay in their view V; each restored one
    resumes a few views above the highest certificate it heard, above V, and never votes
    below (it may have voted there before the restore). The views from V up are then never
    nullified, so no block after them can be justified: the stall outlasts both resumes. Safe,
    never live again; with one restore at a time the other 2f+1 carry the views it skips."""
    early = _run_with_a_restore_from_backup(4, restored=True, horizon_ms=30_000)
    late = _run_with_a_restore_from_backup(4, restored=True, horizon_ms=120_000)
    assert early.violation is None and late.violation is None
    assert late.core_counters.get("restored_resumed", 0) == 2, "both restored validators vote again"
    assert late.height_max == early.height_max, "no block was finalized between 30 s and 120 s"


def test_a_validator_restored_from_an_old_backup_equivocates_unless_it_is_told() -> None:
    caught = [_run_with_a_restore_from_backup(seed, restored=False).violation for seed in SEEDS_WITH_ONE_RESTORE]
    assert all(violation is not None and violation.invariant == "honest-evidence" for violation in caught), caught


def test_a_validator_restored_with_restored_set_never_equivocates_and_votes_again() -> None:
    for seed in SEEDS_WITH_ONE_RESTORE:
        result = _run_with_a_restore_from_backup(seed, restored=True)
        assert result.violation is None, f"seed {seed}: {result.violation.describe()}"
        assert result.core_counters.get("restored_resumed", 0) == 1
