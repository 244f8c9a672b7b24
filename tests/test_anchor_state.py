"""The anchor lifecycle as a pure state machine: every transition, without bitcoind."""

import os
from dataclasses import replace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from bitcoin.core import CMutableTransaction, CMutableTxIn, CMutableTxOut, COutPoint, CScript

from anchor.payload import encode_script
from anchor.state import (
    ALERT_BROADCAST_FAILED,
    ALERT_CONFLICT,
    ALERT_DOUBLE_SPENT,
    ALERT_EVICTED,
    ALERT_FEE_CAPPED,
    ALERT_REORG,
    BUMPS_MAX,
    TRANSITIONS,
    Alert,
    AnchorEventError,
    AnchorPolicy,
    AnchorRecord,
    AnchorState,
    AnchorStateError,
    Broadcast,
    BroadcastFailed,
    Broadcasted,
    BumpFee,
    Bumped,
    Conflict,
    IllegalTransition,
    Observed,
    built,
    decode_record,
    encode_record,
    next_fee_rate_sat_kvb,
    step,
)
from proof import cbor
from proof.errors import DecodeError
from proof.hashing import sha256d

PANTHEON_HASH = bytes.fromhex("a1" * 32)
OTHER_HASH = bytes.fromhex("b2" * 32)
FEE = 2_000
FEE_MAX = 10_000
BUMP_AFTER_MS = 10_000
INTERVAL_MS = 5_000
FINAL_DEPTH = 3
POLICY = AnchorPolicy(
    fee_rate_sat_kvb=FEE,
    fee_rate_max_sat_kvb=FEE_MAX,
    bump_after_ms=BUMP_AFTER_MS,
    final_depth=FINAL_DEPTH,
    bump_factor_percent=150,
    attempt_interval_ms=INTERVAL_MS,
)
T0 = 1_000_000
BLOCK_A = bytes.fromhex("0a" * 32)
BLOCK_B = bytes.fromhex("0b" * 32)


def anchor_tx(block_hash: bytes = PANTHEON_HASH, *, seed: bytes | None = None) -> bytes:
    """A wallet-shaped anchor: one input, a change output and the OP_RETURN (no witness).
    Distinct seeds give distinct transactions; no seed, a random one."""
    entropy = sha256d(seed) if seed is not None else os.urandom(32)
    tx = CMutableTransaction(
        [CMutableTxIn(COutPoint(entropy, 0), nSequence=0xFFFFFFFD)],
        [
            CMutableTxOut(10_000, CScript(b"\x00\x14" + entropy[:20])),
            CMutableTxOut(0, CScript(encode_script(block_hash))),
        ],
        nVersion=2,
    )
    return tx.serialize()


def fresh() -> AnchorRecord:
    record, _ = built(PANTHEON_HASH, anchor_tx(), fee_rate_sat_kvb=FEE, fee_sat=300, now_ms=T0)
    return record


def broadcast() -> AnchorRecord:
    record = fresh()
    record, _ = step(record, Broadcasted(record.txid, T0), POLICY)
    return record


def in_block(record: AnchorRecord, confirmations: int, now_ms: int, *, block=BLOCK_A, txid: bytes | None = None):
    return step(
        record,
        Observed(
            now_ms,
            in_mempool=False,
            confirmed_txid=record.txid if txid is None else txid,
            block_hash=block,
            block_height=200,
            confirmations=confirmations,
        ),
        POLICY,
    )


def confirmed(confirmations: int = 1) -> AnchorRecord:
    record, _ = in_block(broadcast(), confirmations, T0 + 1_000)
    return record


def pending(record: AnchorRecord, now_ms: int, *, in_mempool: bool = True, policy: AnchorPolicy = POLICY):
    return step(record, Observed(now_ms, in_mempool=in_mempool), policy)


def of_type(actions, kind):
    return [action for action in actions if isinstance(action, kind)]


# ----------------------------------------------------------------- built and broadcast


def test_a_built_record_asks_for_its_first_broadcast_of_the_raw_transaction():
    raw = anchor_tx()
    record, actions = built(PANTHEON_HASH, raw, fee_rate_sat_kvb=FEE, fee_sat=300, now_ms=T0)
    assert record.state is AnchorState.BUILT
    assert record.txid == sha256d(raw)
    assert actions == (Broadcast(record.txid, raw),)


def test_a_record_can_only_hold_an_anchor_of_its_own_block_hash():
    with pytest.raises(AnchorStateError, match="anchors"):
        built(PANTHEON_HASH, anchor_tx(OTHER_HASH), fee_rate_sat_kvb=FEE, fee_sat=300, now_ms=T0)


def test_broadcasted_moves_built_to_broadcast_and_starts_the_bump_clock():
    record = fresh()
    record, actions = step(record, Broadcasted(record.txid, T0 + 7), POLICY)
    assert record.state is AnchorState.BROADCAST
    assert record.broadcast_at_ms == T0 + 7
    assert actions == ()


def test_broadcasted_for_another_txid_is_refused():
    with pytest.raises(AnchorEventError, match="current txid"):
        step(fresh(), Broadcasted(bytes(32), T0), POLICY)


def test_a_failed_first_broadcast_stays_built_keeps_the_reason_and_alerts():
    record, actions = step(fresh(), BroadcastFailed("min relay fee not met", T0), POLICY)
    assert record.state is AnchorState.BUILT
    assert record.last_error == "min relay fee not met"
    assert ALERT_BROADCAST_FAILED in record.alerts
    assert actions == (Alert(ALERT_BROADCAST_FAILED, "min relay fee not met"),)


def test_a_built_anchor_seen_nowhere_is_broadcast_again_only_after_the_attempt_interval():
    record = fresh()
    record, early = pending(record, T0 + INTERVAL_MS - 1, in_mempool=False)
    record, due = pending(record, T0 + INTERVAL_MS, in_mempool=False)
    assert early == ()
    assert due == (Broadcast(record.txid, record.raw_tx),)
    assert record.state is AnchorState.BUILT


def test_a_built_anchor_found_in_the_mempool_was_sent_before_a_crash_and_counts_as_broadcast():
    record, actions = pending(fresh(), T0 + 50, in_mempool=True)
    assert record.state is AnchorState.BROADCAST
    assert record.broadcast_at_ms == T0 + 50
    assert actions == ()


def test_a_built_anchor_found_in_a_block_is_confirmed_at_once():
    record, _ = in_block(fresh(), 1, T0 + 50)
    assert record.state is AnchorState.CONFIRMED
    assert record.broadcast_at_ms == T0 + 50


def test_a_built_anchor_found_deep_enough_is_final_at_once():
    record, _ = in_block(fresh(), FINAL_DEPTH, T0 + 50)
    assert record.state is AnchorState.FINAL


# ----------------------------------------------------------------- confirmation and finality


def test_an_anchor_in_a_best_chain_block_is_confirmed_with_its_depth():
    record, actions = in_block(broadcast(), 1, T0 + 1_000)
    assert (record.state, record.confirmations) == (AnchorState.CONFIRMED, 1)
    assert (record.confirmed_txid, record.block_hash, record.block_height) == (record.txid, BLOCK_A, 200)
    assert actions == ()


def test_confirmations_grow_and_the_anchor_is_final_exactly_at_the_configured_depth():
    record = confirmed(1)
    record, _ = in_block(record, FINAL_DEPTH - 1, T0 + 2_000)
    assert (record.state, record.confirmations) == (AnchorState.CONFIRMED, FINAL_DEPTH - 1)
    record, _ = in_block(record, FINAL_DEPTH, T0 + 3_000)
    assert (record.state, record.confirmations) == (AnchorState.FINAL, FINAL_DEPTH)


def test_an_anchor_seen_deep_enough_for_the_first_time_goes_straight_to_final():
    record, _ = in_block(broadcast(), FINAL_DEPTH + 5, T0 + 1_000)
    assert record.state is AnchorState.FINAL


def test_final_is_sticky_and_accepts_no_event_at_all():
    record = confirmed(FINAL_DEPTH)
    for event in (
        Observed(T0, in_mempool=True),
        Observed(T0, in_mempool=False),
        Broadcasted(record.txid, T0),
        Bumped(anchor_tx(), FEE * 2, 600, T0),
        BroadcastFailed("x", T0),
    ):
        with pytest.raises(IllegalTransition, match="final"):
            step(record, event, POLICY)


@pytest.mark.parametrize(
    "event",
    [Broadcasted(bytes(32), T0), Bumped(anchor_tx(), FEE * 2, 600, T0), BroadcastFailed("late", T0)],
    ids=["Broadcasted", "Bumped", "BroadcastFailed"],
)
def test_a_confirmed_anchor_accepts_only_observations(event):
    with pytest.raises(IllegalTransition, match="accepts: Observed"):
        step(confirmed(), event, POLICY)


def test_a_built_anchor_cannot_be_bumped():
    with pytest.raises(IllegalTransition):
        step(fresh(), Bumped(anchor_tx(), FEE * 2, 600, T0), POLICY)


def test_the_transition_table_covers_every_state_and_final_accepts_nothing():
    assert set(TRANSITIONS) == set(AnchorState)
    assert TRANSITIONS[AnchorState.FINAL] == {}


# ----------------------------------------------------------------- fee bumps


def test_an_unconfirmed_anchor_before_its_deadline_needs_nothing():
    record = broadcast()
    after, actions = pending(record, T0 + BUMP_AFTER_MS - 1)
    assert actions == ()
    assert after == record


def test_an_overdue_anchor_is_bumped_by_the_factor():
    record = broadcast()
    record, actions = pending(record, T0 + BUMP_AFTER_MS)
    assert actions == (BumpFee(record.txid, FEE * 150 // 100),)
    assert record.attempt_at_ms == T0 + BUMP_AFTER_MS


def test_a_bump_adds_at_least_one_sat_per_vbyte():
    policy = replace(POLICY, bump_factor_percent=101)
    assert next_fee_rate_sat_kvb(FEE, 0, policy) == FEE + 1_000


def test_a_bump_is_capped_at_the_maximum_fee_rate():
    assert next_fee_rate_sat_kvb(8_000, 0, POLICY) == FEE_MAX


def test_no_bump_is_offered_at_the_cap_or_after_the_maximum_number_of_bumps():
    assert next_fee_rate_sat_kvb(FEE_MAX, 0, POLICY) is None
    assert next_fee_rate_sat_kvb(FEE, BUMPS_MAX, POLICY) is None


def test_bumped_makes_the_replacement_current_keeps_the_old_txid_and_restarts_the_clock():
    record = broadcast()
    old_txid = record.txid
    raw = anchor_tx()
    record, actions = step(record, Bumped(raw, 3_000, 450, T0 + BUMP_AFTER_MS + 5), POLICY)
    assert record.txid == sha256d(raw)
    assert record.replaced_txids == (old_txid,)
    assert (record.fee_rate_sat_kvb, record.fee_sat) == (3_000, 450)
    assert record.broadcast_at_ms == T0 + BUMP_AFTER_MS + 5
    assert actions == ()


def test_a_replacement_that_does_not_pay_more_is_refused():
    with pytest.raises(AnchorEventError, match="not more"):
        step(broadcast(), Bumped(anchor_tx(), FEE, 300, T0), POLICY)


def test_a_replacement_anchoring_another_block_is_refused():
    with pytest.raises(AnchorEventError, match="anchors"):
        step(broadcast(), Bumped(anchor_tx(OTHER_HASH), FEE * 2, 600, T0), POLICY)


def test_at_the_cap_many_polls_give_one_alert_and_never_a_bump():
    record = replace(broadcast(), fee_rate_sat_kvb=FEE_MAX)
    all_actions = []
    for now_ms in range(T0 + BUMP_AFTER_MS, T0 + BUMP_AFTER_MS + 20 * INTERVAL_MS, 100):
        record, actions = pending(record, now_ms)
        all_actions.extend(actions)
    assert of_type(all_actions, BumpFee) == []
    [alert] = all_actions
    assert alert.kind == ALERT_FEE_CAPPED and "cap" in alert.detail
    assert record.fee_capped and ALERT_FEE_CAPPED in record.alerts
    assert record.state is AnchorState.BROADCAST


def test_a_failed_bump_is_not_retried_within_the_attempt_interval():
    record = broadcast()
    record, first = pending(record, T0 + BUMP_AFTER_MS)
    record, _ = step(record, BroadcastFailed("insufficient fee", T0 + BUMP_AFTER_MS), POLICY)
    retries = []
    for now_ms in range(T0 + BUMP_AFTER_MS, T0 + BUMP_AFTER_MS + INTERVAL_MS, 50):
        record, actions = pending(record, now_ms)
        retries.extend(actions)
    record, again = pending(record, T0 + BUMP_AFTER_MS + INTERVAL_MS)
    assert of_type(first, BumpFee) and retries == []
    assert again == first


def test_raising_the_cap_resumes_bumping_and_clears_the_alert():
    record = replace(broadcast(), fee_rate_sat_kvb=FEE_MAX)
    record, _ = pending(record, T0 + BUMP_AFTER_MS)
    assert record.fee_capped
    raised = replace(POLICY, fee_rate_max_sat_kvb=FEE_MAX * 2)
    record, actions = step(record, Observed(T0 + BUMP_AFTER_MS + 1, in_mempool=True), raised)
    assert actions == (BumpFee(record.txid, FEE_MAX * 150 // 100),)
    assert not record.fee_capped


# ----------------------------------------------------------------- eviction


def test_an_evicted_anchor_is_rebroadcast_with_an_alert():
    record = broadcast()
    record, actions = pending(record, T0 + INTERVAL_MS, in_mempool=False)
    assert [type(a) for a in actions] == [Alert, Broadcast]
    assert actions[0].kind == ALERT_EVICTED
    assert actions[1] == Broadcast(record.txid, record.raw_tx)


def test_rebroadcasts_of_an_evicted_anchor_are_rate_limited():
    never_bump = replace(POLICY, bump_after_ms=100 * INTERVAL_MS)
    record = broadcast()
    record, _ = pending(record, T0 + INTERVAL_MS, in_mempool=False, policy=never_bump)
    record, too_soon = pending(record, T0 + 2 * INTERVAL_MS - 1, in_mempool=False, policy=never_bump)
    record, due = pending(record, T0 + 2 * INTERVAL_MS, in_mempool=False, policy=never_bump)
    assert too_soon == ()
    assert of_type(due, Broadcast)


def test_a_successful_rebroadcast_is_counted_and_clears_the_error_but_not_the_bump_clock():
    record, _ = step(broadcast(), BroadcastFailed("bitcoind said no", T0 + 1), POLICY)
    record, _ = step(record, Broadcasted(record.txid, T0 + 2), POLICY)
    assert record.rebroadcasts == 1
    assert record.last_error == "" and record.alerts == ()
    assert record.broadcast_at_ms == T0


def test_an_overdue_evicted_anchor_is_bumped_rather_than_rebroadcast():
    record, actions = pending(broadcast(), T0 + BUMP_AFTER_MS, in_mempool=False)
    assert [type(a) for a in actions] == [BumpFee]


def test_an_evicted_anchor_at_the_cap_is_still_rebroadcast():
    record = replace(broadcast(), fee_rate_sat_kvb=FEE_MAX)
    record, actions = pending(record, T0 + BUMP_AFTER_MS, in_mempool=False)
    assert [a.kind for a in of_type(actions, Alert)] == [ALERT_FEE_CAPPED, ALERT_EVICTED]
    assert of_type(actions, Broadcast) == [Broadcast(record.txid, record.raw_tx)]


# ----------------------------------------------------------------- reorgs


def test_a_reorg_with_the_anchor_back_in_the_mempool_returns_to_broadcast_and_alerts():
    record = confirmed(2)
    record, actions = pending(record, T0 + 50_000, in_mempool=True)
    assert record.state is AnchorState.BROADCAST
    assert (record.block_hash, record.confirmed_txid, record.confirmations) == (None, None, 0)
    assert record.reorgs == 1
    assert [a.kind for a in actions] == [ALERT_REORG]
    assert record.broadcast_at_ms == T0 + 50_000, "the bump deadline counts from the reorg"


def test_a_reorg_that_lost_the_anchor_entirely_rebroadcasts_it_at_once():
    record = confirmed(1)
    record, actions = pending(record, T0 + 50_000, in_mempool=False)
    assert record.state is AnchorState.BROADCAST
    assert [a.kind for a in of_type(actions, Alert)] == [ALERT_REORG, ALERT_EVICTED]
    assert of_type(actions, Broadcast) == [Broadcast(record.txid, record.raw_tx)]


def test_a_reorged_anchor_confirms_again_in_another_block():
    record = confirmed(1)
    record, _ = pending(record, T0 + 50_000)
    record, _ = in_block(record, 1, T0 + 60_000, block=BLOCK_B)
    assert (record.state, record.block_hash) == (AnchorState.CONFIRMED, BLOCK_B)


def test_a_move_to_another_block_between_two_polls_is_a_reorg():
    record, actions = in_block(confirmed(1), 1, T0 + 60_000, block=BLOCK_B)
    assert record.block_hash == BLOCK_B and record.reorgs == 1
    assert [a.kind for a in actions] == [ALERT_REORG]


def test_a_mined_version_that_a_bump_replaced_still_confirms_the_anchor():
    record = broadcast()
    old_txid = record.txid
    record, _ = step(record, Bumped(anchor_tx(), 3_000, 450, T0 + 1), POLICY)
    record, _ = in_block(record, 1, T0 + 2, txid=old_txid)
    assert record.state is AnchorState.CONFIRMED
    assert record.confirmed_txid == old_txid != record.txid


def test_a_confirmed_txid_that_is_no_version_of_the_anchor_is_refused():
    with pytest.raises(AnchorEventError, match="not a version"):
        in_block(broadcast(), 1, T0, txid=bytes(32))


# ----------------------------------------------------------------- events and policy


def test_an_observation_of_a_stale_block_cannot_be_made():
    with pytest.raises(AnchorStateError, match="at least 1 confirmation"):
        Observed(T0, in_mempool=False, confirmed_txid=bytes(32), block_hash=BLOCK_A, block_height=5, confirmations=0)


def test_an_observation_without_a_txid_carries_no_block():
    with pytest.raises(AnchorStateError, match="no block"):
        Observed(T0, in_mempool=False, block_hash=BLOCK_A)


def test_a_policy_whose_fee_rate_is_above_its_cap_is_refused():
    with pytest.raises(AnchorStateError, match="fee cap"):
        replace(POLICY, fee_rate_sat_kvb=FEE_MAX + 1)


def test_a_policy_with_final_depth_zero_is_refused():
    with pytest.raises(AnchorStateError, match="final_depth"):
        replace(POLICY, final_depth=0)


def test_an_alert_of_an_unknown_kind_cannot_be_made():
    with pytest.raises(AnchorStateError, match="unknown alert kind"):
        Alert("oops", "")


# ----------------------------------------------------------------- persistence


def records_in_every_state() -> list[AnchorRecord]:
    bumped, _ = step(broadcast(), Bumped(anchor_tx(), 3_000, 450, T0 + 1), POLICY)
    failed, _ = step(bumped, BroadcastFailed("ünïcode reason", T0 + 2), POLICY)
    capped, _ = pending(replace(broadcast(), fee_rate_sat_kvb=FEE_MAX), T0 + BUMP_AFTER_MS)
    return [fresh(), broadcast(), failed, capped, confirmed(1), confirmed(FINAL_DEPTH)]


@pytest.mark.parametrize("index", range(6))
def test_a_record_survives_an_encode_decode_round_trip(index):
    record = records_in_every_state()[index]
    encoded = encode_record(record)
    assert decode_record(encoded) == record
    assert encode_record(decode_record(encoded)) == encoded


def reencoded(record: AnchorRecord, **changes) -> bytes:
    fields = cbor.decode(encode_record(record))
    fields.update(changes)
    return cbor.encode({k: v for k, v in fields.items() if v is not ...})


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"extra": 1}, "unknown field"),
        ({"err": ...}, "missing field"),
        ({"v": 2}, "version 2"),
        ({"st": "mined"}, "'mined' is not one of"),
        ({"st": "confirmed"}, "inconsistent"),
        ({"blk": OTHER_HASH}, "inconsistent.*anchors"),
        ({"fee": -1}, "fee rate"),
        ({"old": [b"\x00" * 31]}, "replaced txid"),
        ({"old": [bytes(32)] * (BUMPS_MAX + 1)}, "replaced txids"),
        ({"cap": 1}, "fee_capped"),
        ({"raw": b"\x02\x00"}, "not an anchor transaction"),
    ],
    ids=lambda value: value if isinstance(value, str) else None,
)
def test_decode_refuses_records_that_are_not_exactly_a_valid_anchor_record(changes, message):
    with pytest.raises(DecodeError, match=message):
        decode_record(reencoded(broadcast(), **changes))


def test_decode_refuses_trailing_bytes():
    with pytest.raises(DecodeError, match="trailing"):
        decode_record(encode_record(broadcast()) + b"\x00")


def test_decode_refuses_a_confirmed_record_whose_txid_is_no_version():
    with pytest.raises(DecodeError, match="confirmed_txid"):
        decode_record(reencoded(confirmed(1), ctx=bytes(32)))


# ----------------------------------------------------------------- whole lifecycles


NOT_IN_A_BLOCK = st.tuples(st.just("mempool"), st.booleans())
# Mostly waiting: a lifecycle should see bumps and rebroadcasts before it ends FINAL.
OBSERVATIONS = st.one_of(
    NOT_IN_A_BLOCK,
    NOT_IN_A_BLOCK,
    NOT_IN_A_BLOCK,
    NOT_IN_A_BLOCK,
    st.tuples(st.sampled_from([BLOCK_A, BLOCK_B]), st.integers(min_value=1, max_value=FINAL_DEPTH + 1)),
)


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.tuples(st.integers(min_value=0, max_value=3 * INTERVAL_MS), OBSERVATIONS, st.booleans(), st.integers(0, 7)),
        min_size=10,
        max_size=60,
    ),
    st.integers(min_value=FEE + 1, max_value=FEE_MAX),
)
def test_any_lifecycle_keeps_attempts_apart_stays_under_the_cap_and_round_trips(script, fee_max):
    """Random observations and random answers to every action: whatever happens, two
    attempts (Broadcast or BumpFee) are never closer than the attempt interval, no
    bump exceeds the cap, FINAL is never left, and every record survives persistence."""
    policy = replace(POLICY, fee_rate_max_sat_kvb=fee_max)
    record, actions = built(PANTHEON_HASH, anchor_tx(seed=b"start"), fee_rate_sat_kvb=FEE, fee_sat=300, now_ms=T0)
    now_ms = T0
    attempt_times: list[int] = []
    answers = 0

    def answer(actions, succeed):
        nonlocal record, answers
        for action in actions:
            answers += 1
            if isinstance(action, Alert):
                continue
            attempt_times.append(now_ms)
            if not succeed:
                event = BroadcastFailed("refused", now_ms)
            elif isinstance(action, Broadcast):
                event = Broadcasted(action.txid, now_ms)
            else:
                assert record.fee_rate_sat_kvb < action.fee_rate_sat_kvb <= fee_max
                raw = anchor_tx(seed=answers.to_bytes(4, "big"))
                event = Bumped(raw, action.fee_rate_sat_kvb, 300, now_ms)
            record, more = step(record, event, policy)
            assert all(isinstance(a, Alert) for a in more)

    answer(actions, True)
    for dt_ms, observation, succeed, version in script:
        now_ms += dt_ms
        if observation[0] == "mempool":
            event = Observed(now_ms, in_mempool=observation[1])
        else:
            block, confirmations = observation
            txid = record.txids[version % len(record.txids)]
            event = Observed(now_ms, False, txid, block, 100, confirmations)
        if record.state is AnchorState.FINAL:
            with pytest.raises(IllegalTransition):
                step(record, event, policy)
            break
        record, actions = step(record, event, policy)
        answer(actions, succeed)
        assert decode_record(encode_record(record)) == record
    assert all(b - a >= INTERVAL_MS for a, b in zip(attempt_times, attempt_times[1:]))


# ----------------------------------------------------------------- conflicts


@pytest.mark.parametrize("record", [fresh(), broadcast(), confirmed()], ids=["built", "broadcast", "confirmed"])
def test_a_conflict_in_a_block_makes_the_anchor_double_spent_and_nothing_is_sent_again(record):
    spent, actions = step(record, Observed(T0 + 50_000, in_mempool=False, conflict=Conflict.BLOCK), POLICY)
    assert spent.state is AnchorState.DOUBLE_SPENT
    assert not of_type(actions, Broadcast) and not of_type(actions, BumpFee)
    assert ALERT_DOUBLE_SPENT in [a.kind for a in of_type(actions, Alert)]
    assert ALERT_DOUBLE_SPENT in spent.alerts
    assert decode_record(encode_record(spent)) == spent
    with pytest.raises(IllegalTransition):
        step(spent, Observed(T0 + 60_000, in_mempool=True), POLICY)


def test_a_conflict_waiting_in_the_mempool_is_neither_bumped_nor_rebroadcast_and_alerts_once():
    record = broadcast()
    overdue = T0 + BUMP_AFTER_MS + INTERVAL_MS
    waiting, actions = step(record, Observed(overdue, in_mempool=False, conflict=Conflict.MEMPOOL), POLICY)
    assert waiting.state is AnchorState.BROADCAST and waiting.last_error
    assert [type(a) for a in actions] == [Alert] and actions[0].kind == ALERT_CONFLICT
    again, actions = step(waiting, Observed(overdue + INTERVAL_MS, in_mempool=False, conflict=Conflict.MEMPOOL), POLICY)
    assert again == waiting and actions == ()


def test_an_observation_with_a_conflict_cannot_also_have_the_anchor_in_the_mempool():
    with pytest.raises(AnchorStateError, match="conflict"):
        Observed(T0, in_mempool=True, conflict=Conflict.MEMPOOL)


@settings(max_examples=300, deadline=None)
@given(start=st.integers(1, 60_000), cap=st.integers(1, 200_000), factor=st.integers(101, 1000))
def test_bumps_step_at_least_1_sat_vb_and_end_exactly_on_the_cap_when_it_is_reachable(start, cap, factor):
    if start > cap:
        return
    policy = replace(POLICY, fee_rate_sat_kvb=start, fee_rate_max_sat_kvb=cap, bump_factor_percent=factor)
    rate, bumps = start, 0
    while (new := next_fee_rate_sat_kvb(rate, bumps, policy)) is not None:
        assert new - rate >= 1000 and new <= cap
        rate, bumps = new, bumps + 1
    assert rate == cap or cap - start < 1000 or bumps == BUMPS_MAX
