"""Each Byzantine behaviour is committed, caught, and reported by the honest nodes.

The network is otherwise clean so that what honest nodes report can only come from
the behaviour under test; safety and the honest-vote invariants are checked by the
run itself (a violation fails the test).
"""

from __future__ import annotations

import pytest

from consensus.sim.byzantine import invalid_block
from consensus.sim.faults import parse_fault_mix
from consensus.sim.runner import RunResult, SimConfig, run_seed

HORIZON_MS = 5_000


def _run(behaviour: str, seed: int = 1, *, validators: int = 4, byzantine: int = 1) -> RunResult:
    config = SimConfig(
        validators=validators,
        byzantine=byzantine,
        faults=parse_fault_mix("byzantine"),
        behaviours=(behaviour,),
        horizon_ms=HORIZON_MS,
        gst_ms=0,
    )
    result = run_seed(config, seed)
    assert result.violation is None, result.violation.describe()
    return result


def _the_byzantine(result: RunResult) -> int:
    (index,) = result.byzantine
    return index


def test_equivocator_is_reported_by_honest_nodes():
    result = _run("equivocate")
    byzantine = _the_byzantine(result)
    assert result.behaviour_stats[byzantine]["committed"] > 0
    assert set(result.evidence_against) == {byzantine}
    assert result.height_min > 0


def test_conflicting_voter_is_reported_by_honest_nodes():
    result = _run("conflict")
    byzantine = _the_byzantine(result)
    assert result.behaviour_stats[byzantine]["committed"] > 0
    assert set(result.evidence_against) == {byzantine}
    assert result.core_counters["equivocation"] > 0


def test_two_byzantine_equivocators_of_seven_are_both_reported():
    result = _run("equivocate", seed=3, validators=7, byzantine=2)
    assert set(result.evidence_against) == set(result.byzantine)


def test_withholder_signs_no_certificate_and_the_rest_finalize():
    result = _run("withhold")
    byzantine = _the_byzantine(result)
    assert result.behaviour_stats[byzantine]["committed"] > 0
    assert result.height_min > 5
    assert byzantine not in result.signers_seen
    assert result.evidence_against == {}


def test_garbage_is_rejected_by_the_strict_decoder():
    result = _run("garbage")
    byzantine = _the_byzantine(result)
    stats = result.behaviour_stats[byzantine]
    assert stats["committed"] > 0
    assert result.honest_counters["decode_rejected"] > 0
    assert result.height_min > 5
    assert result.evidence_against == {}


def test_invalid_proposals_are_never_voted_for():
    result = _run("invalid")
    byzantine = _the_byzantine(result)
    assert result.invalid_blocks > 0
    assert result.behaviour_stats[byzantine]["committed"] == result.invalid_blocks
    assert result.height_min > 0


# The honest-core counter each invalid variant must raise (consensus.core counts every drop).
EXPECTED_REJECTION = {
    "log_root": "invalid_block_log_root",
    "log_size": "invalid_block_log_size",
    "parent": "waiting_for_parent",
    "height": "invalid_block_height",
    "too_many_roots": "dropped_oversize_block",
    "body_hash": "invalid_block_body_hash",
    "duplicate_root": "invalid_block_duplicate_root",
    "proposer": "dropped_not_leader",
    "chain_id": "dropped_wrong_chain",
    "validator_set": "invalid_block_validator_set",
    "future_timestamp": "invalid_block_timestamp_ahead",
    "replayed_root": "invalid_block_external",
}


def test_every_invalid_variant_has_an_expected_rejection():
    assert set(EXPECTED_REJECTION) == set(invalid_block.VARIANTS)


@pytest.mark.parametrize("variant", sorted(EXPECTED_REJECTION))
def test_each_invalid_block_variant_is_caught_for_its_reason(variant, monkeypatch):
    monkeypatch.setattr(invalid_block, "VARIANTS", (variant,))
    result = _run("invalid", seed=2)
    byzantine = _the_byzantine(result)
    stats = result.behaviour_stats[byzantine]
    assert stats.get(f"variant_{variant}", 0) > 0, stats
    assert result.core_counters.get(EXPECTED_REJECTION[variant], 0) > 0, result.core_counters


def test_nuller_signing_finalize_and_nullify_cannot_break_safety():
    result = _run("nuller")
    byzantine = _the_byzantine(result)
    assert result.behaviour_stats[byzantine]["committed"] > 0
    assert result.height_min > 5
