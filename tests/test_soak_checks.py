"""devnet.soak_checks' verdicts on hand-made node answers: what counts as converged, as a reason."""

from __future__ import annotations

from devnet.soak_checks import check_anchors, disagreement, pending_reason

STATUS = {"height": 9, "block_hash": "ab", "log_size": 100, "log_root": "cd", "mempool_roots": 0}
ANCHORED = {"height": 5, "state": "anchored", "txid": "t5", "btc_block_hash": "b1", "alerts": []}


def test_identical_answers_with_empty_mempools_are_converged() -> None:
    assert disagreement([dict(STATUS) for _ in range(4)]) is None


def test_a_differing_log_root_or_a_busy_mempool_or_a_silent_node_is_not_converged() -> None:
    assert "log_root" in disagreement([STATUS, STATUS, STATUS, {**STATUS, "log_root": "ef"}])
    assert "mempool" in disagreement([STATUS, {**STATUS, "mempool_roots": 3}])
    assert "not answering" in disagreement([STATUS, None])


def test_an_own_tx_in_flight_or_an_alert_is_a_reason_and_final_is_not() -> None:
    assert pending_reason({"own": {"state": "broadcast"}, "alerts": []}) == "own tx broadcast"
    assert pending_reason({"alerts": ["fee_capped"]}) == "fee_capped"
    assert pending_reason({"own": {"state": "final"}, "alerts": []}) is None


def test_an_anchored_entry_off_the_best_chain_is_a_violation() -> None:
    result = check_anchors([[ANCHORED]], lambda block: False)
    assert len(result.violations) == 1 and "not on the best chain" in result.violations[0]


def test_a_pending_entry_without_a_reason_names_its_block_when_bitcoin_has_it() -> None:
    pending = {"height": 6, "state": "pending", "txid": "t6", "btc_block_hash": "b2", "btc_height": 122, "alerts": []}
    result = check_anchors([[ANCHORED, pending]], lambda block: True)
    assert result.violations == [
        "node 0: anchor of height 6 (tx t6) pending without a reason; its Bitcoin block b2 (height 122) IS on the best chain"
    ]


def test_pending_with_a_reason_passes_but_no_confirmed_anchor_at_all_does_not() -> None:
    pending = {"height": 6, "state": "pending", "txid": "t6", "alerts": [], "own": {"state": "broadcast"}}
    assert check_anchors([[ANCHORED, pending]], lambda block: True).violations == []
    assert check_anchors([[pending]], lambda block: True).violations == ["no anchor confirmed on any node"]
