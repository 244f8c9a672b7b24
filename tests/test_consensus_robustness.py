"""Peer input never crashes or stalls a core: the failures an adversarial review found, as specifications.

Each test here reproduced a crash or a stall on the code before its fix (the issue
note names which); they now pin the behaviour that replaced it.
"""

from __future__ import annotations

import dataclasses

from proof.chain import FinalizationProof, VoteKind

from consensus.actions import CheckBlock, Evidence, Persist, Send
from consensus.catchup import build_response
from consensus.catchup_client import CATCHUP_TIMEOUT_MS
from consensus.core import VIEWS_RETAINED_MAX, CoreConfig
from consensus.events import BlockChecked, Start, TimerFired
from consensus.messages import CatchUpRequest, CertificateMessage, InvalidBlockEvidence
from consensus.safety import FINALIZE_VOTES_KEPT_MAX, SafetyState
from tests.test_consensus_harness import Cast, fresh_roots, of_type, received, votes_in

NOTARIZE, NULLIFY, FINALIZE = VoteKind.NOTARIZE, VoteKind.NULLIFY, VoteKind.FINALIZE


def finalize_first_block(cast: Cast, core):
    """Finalize a block at height 1 (view 0) on ``core``; return that block."""
    block = cast.block(0)
    core.handle(received(0, CertificateMessage(cast.certificate(FINALIZE, 0, block.hash), block=block)), 0)
    assert core.finalized_height == 1
    return block


# ---------------------------------------------------------------- stale and rival proposals


def test_a_proposal_rivalling_the_finalized_block_is_dropped_and_entering_its_view_does_not_crash() -> None:
    cast = Cast()
    core = cast.core()
    finalize_first_block(cast, core)
    rival = cast.block(2, roots=fresh_roots(b"rival"))  # height 1 again, parent: the genesis
    core.handle(received(2, cast.proposal(rival)), 0)
    actions = core.handle(received(0, CertificateMessage(cast.certificate(NULLIFY, 1))), 0)
    assert core.view == 2
    assert votes_in(actions) == []
    assert core.counters["dropped_stale_proposal"] == 1


def test_a_proposal_below_the_finalized_height_is_dropped() -> None:
    cast = Cast()
    core = cast.core()
    first = cast.block(0)
    second = cast.block(1, first)
    cert = cast.certificate(FINALIZE, 1, second.hash)
    core.handle(received(0, CertificateMessage(cast.certificate(NOTARIZE, 0, first.hash), block=first)), 0)
    core.handle(received(0, CertificateMessage(cert, block=second)), 0)
    assert core.finalized_height == 2
    stale = cast.block(3, first, roots=fresh_roots(b"stale"))  # height 2 on an ancestor
    core.handle(received(3, cast.proposal(stale)), 0)
    core.handle(received(0, CertificateMessage(cast.certificate(NULLIFY, 2))), 0)
    assert core.view == 3
    assert core.counters["dropped_stale_proposal"] == 1


def test_a_stored_proposal_whose_block_is_pruned_by_a_finalization_is_forgotten() -> None:
    cast = Cast()
    core = cast.core()
    first = cast.block(0)
    rival = cast.block(2, roots=fresh_roots(b"rival-first"))  # height 1, stored while still above the tip
    core.handle(received(2, cast.proposal(rival)), 0)
    core.handle(received(0, CertificateMessage(cast.certificate(FINALIZE, 0, first.hash), block=first)), 0)
    core.handle(received(0, CertificateMessage(cast.certificate(NULLIFY, 1))), 0)
    assert core.view == 2
    assert core.finalized_height == 1


# ---------------------------------------------------------------- finalize starvation


def test_entering_a_view_with_a_full_finalize_record_forgets_the_oldest_vote() -> None:
    state = SafetyState(view=FINALIZE_VOTES_KEPT_MAX, finalize_votes=tuple(range(FINALIZE_VOTES_KEPT_MAX)))
    entered = state.enter(FINALIZE_VOTES_KEPT_MAX + 1, finalized_vote=True)
    assert len(entered.finalize_votes) == FINALIZE_VOTES_KEPT_MAX
    assert entered.finalize_votes[-1] == FINALIZE_VOTES_KEPT_MAX
    assert entered.finalize_votes_from == 1
    assert not entered.may_nullify(0)  # forgetting a vote only ever forbids more


def test_three_hundred_notarized_views_without_a_finalization_neither_crash_nor_stop_a_restart() -> None:
    cast = Cast()
    core = cast.core()
    core.handle(Start(), 0)
    views = FINALIZE_VOTES_KEPT_MAX + 44
    persisted = None
    for view in range(views):
        actions = core.handle(received(0, CertificateMessage(cast.certificate(NOTARIZE, view, bytes([1]) * 32))), 0)
        persisted = of_type(actions, Persist)[0].state
        assert [vote.kind for vote in votes_in(actions)] == [FINALIZE]
    assert core.view == views
    restored = SafetyState.decode(persisted.encode())
    assert len(restored.finalize_votes) == FINALIZE_VOTES_KEPT_MAX
    restarted = cast.core(safety=restored)
    restarted.handle(Start(), 0)
    actions = restarted.handle(received(0, CertificateMessage(cast.certificate(NOTARIZE, views, bytes([2]) * 32))), 0)
    assert [vote.kind for vote in votes_in(actions)] == [FINALIZE]
    assert restarted.view == views + 1
    assert VIEWS_RETAINED_MAX <= views


# ---------------------------------------------------------------- catch-up that always completes


def finalized_chain(cast: Cast, length: int):
    """``length`` blocks, all finalized by one certificate for the last: (blocks, server storage)."""
    blocks = []
    for view in range(length):
        blocks.append(cast.block(view, blocks[-1] if blocks else None))
    last = blocks[-1]
    cert = cast.certificate(FINALIZE, last.header.view, last.hash)
    headers = [block.header for block in blocks]
    stored = {
        block.header.height: (block, FinalizationProof(headers=tuple(headers[i + 1 :]), certificate=cert))
        for i, block in enumerate(blocks)
    }
    return blocks, stored


def catch_up_requests(actions) -> list[Send]:
    return [a for a in of_type(actions, Send) if isinstance(a.message, CatchUpRequest)]


def test_a_stale_answer_neither_uses_up_the_request_in_flight_nor_stands_in_for_it() -> None:
    cast = Cast()
    blocks, stored = finalized_chain(cast, 3)
    core = cast.core()
    last = blocks[-1]
    [ask] = catch_up_requests(core.handle(received(1, CertificateMessage(cast.certificate(FINALIZE, 2, last.hash))), 0))
    request = ask.message
    stale = build_response(dataclasses.replace(request, request_id=request.request_id + 7), stored.get)
    core.handle(received(ask.to, stale), 10)
    assert core.finalized_height == 0 and core.counters["dropped_unsolicited_catchup"] == 1
    core.handle(received(ask.to, build_response(request, stored.get)), 20)
    assert core.finalized_height == 3


def test_an_answer_from_a_peer_that_was_not_asked_is_dropped() -> None:
    cast = Cast()
    blocks, stored = finalized_chain(cast, 2)
    core = cast.core()
    [ask] = catch_up_requests(core.handle(received(1, CertificateMessage(cast.certificate(FINALIZE, 1, blocks[-1].hash))), 0))
    other = next(peer for peer in (0, 1, 2) if peer != ask.to)
    core.handle(received(other, build_response(ask.message, stored.get)), 10)
    assert core.finalized_height == 0 and core.counters["dropped_unsolicited_catchup"] == 1


def test_a_peer_that_never_answers_is_passed_over_and_another_peer_is_asked() -> None:
    cast = Cast()
    blocks, stored = finalized_chain(cast, 2)
    core = cast.core()
    [first] = catch_up_requests(core.handle(received(1, CertificateMessage(cast.certificate(FINALIZE, 1, blocks[-1].hash))), 0))
    nothing = core.handle(TimerFired(core.view), CATCHUP_TIMEOUT_MS - 1)
    assert catch_up_requests(nothing) == []
    [second] = catch_up_requests(core.handle(TimerFired(core.view), CATCHUP_TIMEOUT_MS))
    assert second.to != first.to
    assert core.counters["catchup_timeouts"] == 1


def test_after_an_answer_that_delivered_the_same_peer_is_asked_again_at_once() -> None:
    cast = Cast()
    blocks, stored = finalized_chain(cast, 4)
    core = cast.core(config=CoreConfig(catchup_blocks_max=2))
    [ask] = catch_up_requests(core.handle(received(1, CertificateMessage(cast.certificate(FINALIZE, 3, blocks[-1].hash))), 0))
    [again] = catch_up_requests(core.handle(received(ask.to, build_response(ask.message, stored.get)), 10))
    assert core.finalized_height == 2
    assert (again.to, again.message.from_height) == (ask.to, 3)
    core.handle(received(again.to, build_response(again.message, stored.get)), 20)
    assert core.finalized_height == 4


def test_a_certificate_replayed_from_far_below_the_current_view_is_dropped_unverified() -> None:
    cast = Cast()
    core = cast.core()
    old = cast.certificate(FINALIZE, 3, b"\5" * 32)
    for view in range(VIEWS_RETAINED_MAX + 10):
        core.handle(received(0, CertificateMessage(cast.certificate(NULLIFY, view))), 0)
    core.handle(received(1, CertificateMessage(old)), 0)
    assert core.counters["dropped_old_view"] == 1
    assert core.counters["dropped_bad_certificate"] == 0


def test_a_peer_that_never_answers_and_keeps_triggering_catch_up_cannot_keep_a_laggard_behind() -> None:
    """The review's trap: the first peer asked never answers, and each second replays another
    real finalization the laggard cannot link, so that every retry used to be aimed at it."""
    cast = Cast()
    blocks, _ = finalized_chain(cast, 30)
    certs = [cast.certificate(FINALIZE, block.header.view, block.hash) for block in blocks]
    stored = {b.header.height: (b, FinalizationProof(headers=(), certificate=certs[i])) for i, b in enumerate(blocks)}
    core = cast.core()
    trapper, honest = 0, (1, 2)
    pending: list[tuple[int, int, object]] = []
    for now_ms in range(0, 20_000, 50):
        actions = []
        if now_ms % 1_000 == 0 and now_ms // 1_000 < len(certs):
            actions += core.handle(received(trapper, CertificateMessage(certs[now_ms // 1_000])), now_ms)
        for item in [p for p in pending if p[0] <= now_ms]:
            pending.remove(item)
            actions += core.handle(received(item[1], item[2]), now_ms)
        actions += core.handle(TimerFired(core.view), now_ms) if now_ms % 1_000 == 500 else []
        for ask in catch_up_requests(actions):
            if ask.to in honest:
                pending.append((now_ms + 20, ask.to, build_response(ask.message, stored.get)))
        if core.finalized_height == len(blocks):
            break
    assert core.finalized_height == len(blocks), f"still at height {core.finalized_height} after {now_ms} ms"
    assert now_ms <= 2 * CATCHUP_TIMEOUT_MS


# ---------------------------------------------------------------- a validator restored from an old backup


def test_a_restored_core_signs_nothing_until_two_f_plus_one_peers_have_shown_a_certificate() -> None:
    cast = Cast()
    core = cast.core(index=3, restored=True)
    actions = core.handle(Start(), 0)
    block = cast.block(0)
    actions += core.handle(received(0, cast.proposal(block)), 0)
    actions += core.handle(TimerFired(0), 1_000)
    for sender, view in ((0, 0), (1, 1)):
        actions += core.handle(received(sender, CertificateMessage(cast.certificate(NULLIFY, view))), 1_000)
    assert votes_in(actions) == [] and core.recovering
    actions = core.handle(received(2, CertificateMessage(cast.certificate(NULLIFY, 2))), 1_000)
    listen_ms = 2 * core.config.max_timeout_ms
    actions += core.handle(TimerFired(core.view), 1_000 + listen_ms - 1)
    assert votes_in(actions) == [] and core.recovering  # still listening for later certificates
    actions = core.handle(TimerFired(core.view), 1_000 + listen_ms)
    assert not core.recovering
    assert core.view == 2 + 3
    assert core.safety.finalize_votes_from == core.view  # no late nullify vote below the resumed view


def test_a_restored_core_never_votes_again_in_a_view_it_voted_in_before_the_backup() -> None:
    """The validator voted up to view 5, then its disk was restored to its state at view 1."""
    cast = Cast()
    before = cast.core(index=3)
    before.handle(Start(), 0)
    backup = None
    for view in range(6):
        actions = before.handle(received(0, CertificateMessage(cast.certificate(NOTARIZE, view, bytes([view + 1]) * 32))), 0)
        if view == 1:
            backup = of_type(actions, Persist)[0].state
    voted_views = {vote.view for vote in votes_in(actions)} | set(before.safety.finalize_votes)
    restored = cast.core(index=3, safety=backup, restored=True)
    restored.handle(Start(), 0)
    after = []
    for sender in (0, 1, 2):  # each peer shows the certificate it entered its current view with
        after += restored.handle(received(sender, CertificateMessage(cast.certificate(NULLIFY, 4))), 0)
    after += restored.handle(TimerFired(restored.view), 2 * restored.config.max_timeout_ms)
    after += restored.handle(TimerFired(restored.view), 3 * restored.config.max_timeout_ms)
    assert votes_in(after), "the restored core votes again once it has resumed"
    assert min(vote.view for vote in votes_in(after)) > max(voted_views)


def test_a_restored_core_does_not_count_its_own_certificates_or_one_peer_twice() -> None:
    cast = Cast()
    core = cast.core(index=3, restored=True)
    core.handle(Start(), 0)
    for view in range(3):
        core.handle(received(3, CertificateMessage(cast.certificate(NULLIFY, view))), 0)
        core.handle(received(0, CertificateMessage(cast.certificate(NULLIFY, view + 3))), 0)
    assert core.recovering


# ---------------------------------------------------------------- a leader's invalid block is kept as evidence


def test_a_block_the_driver_refuses_for_a_reason_keeps_the_leaders_signed_proposal_as_evidence() -> None:
    """A leader that proposes an anchor record the validator's bitcoind contradicts (node.runtime)."""
    cast = Cast()
    core = cast.core()
    block = cast.block(0)
    actions = core.handle(received(0, cast.proposal(block)), 0)
    assert of_type(actions, CheckBlock)
    actions = core.handle(BlockChecked(block.hash, False, "anchor record refused: tx not in block"), 0)
    [evidence] = [action.record for action in of_type(actions, Evidence)]
    assert isinstance(evidence, InvalidBlockEvidence)
    assert (evidence.signer, evidence.view, evidence.vote.block_hash) == (0, 0, block.hash)
    assert cast.verifier.verify(0, evidence.vote.message(cast.genesis.hash), evidence.vote.signature)
    assert InvalidBlockEvidence.decode(evidence.encode()) == evidence
    assert votes_in(actions) == []


def test_a_block_that_could_not_be_checked_now_is_no_evidence_against_its_leader() -> None:
    cast = Cast()
    core = cast.core()
    block = cast.block(0)
    core.handle(received(0, cast.proposal(block)), 0)
    actions = core.handle(BlockChecked(block.hash, False), 0)  # e.g. bitcoind unavailable
    assert of_type(actions, Evidence) == []
