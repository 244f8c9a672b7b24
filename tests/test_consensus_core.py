"""The core's rules, one behaviour per test, on a single core fed signed messages."""

from __future__ import annotations

import dataclasses

import pytest

from proof.chain import ZERO_HASH, VoteKind, verify_finalization, vote_message

from consensus.actions import (
    Broadcast,
    CheckBlock,
    Evidence,
    Finalized,
    Persist,
    RequestProposal,
    Send,
    SetTimer,
)
from consensus.block import STORED_SUBTREE_LEVEL, Block, body_hash
from proof.compact import CompactRange
from consensus.catchup_client import CATCHUP_RETRY_MS
from consensus.core import FUTURE_VIEWS_MAX, VIEW_MAX, CoreConfig, CoreConfigError, FinalizedTip
from consensus.events import BlockChecked, ProposalReady, Start, TimerFired
from consensus.messages import CatchUpRequest, CatchUpResponse, CertificateMessage, Vote
from consensus.safety import SafetyState
from tests.test_consensus_harness import Cast, covered, fresh_roots, of_type, received, sim_check, votes_in

NOTARIZE, NULLIFY, FINALIZE = VoteKind.NOTARIZE, VoteKind.NULLIFY, VoteKind.FINALIZE


def nullify_view(core, cast: Cast, view: int, signers=(0, 1, 2)) -> list:
    actions = []
    for signer in signers:
        actions += core.handle(received(signer, cast.vote(signer, NULLIFY, view)), 0)
    return actions


# ---------------------------------------------------------------- quorum counting


def test_f_plus_one_votes_do_not_make_a_certificate() -> None:
    cast = Cast()
    core = cast.core()
    nullify_view(core, cast, 0, signers=(0, 1))
    assert core.view == 0


def test_exactly_two_f_plus_one_votes_make_a_certificate_and_advance_the_view() -> None:
    cast = Cast()
    core = cast.core()
    actions = nullify_view(core, cast, 0, signers=(0, 1, 2))
    assert core.view == 1
    certificates = [a.message.certificate for a in of_type(actions, Broadcast) if isinstance(a.message, CertificateMessage)]
    assert [(c.kind, c.view, c.signers) for c in certificates] == [(NULLIFY, 0, (0, 1, 2))]


def test_a_duplicate_vote_is_not_counted_twice() -> None:
    cast = Cast()
    core = cast.core()
    vote = cast.vote(0, NULLIFY, 0)
    core.handle(received(0, vote), 0)
    core.handle(received(1, vote), 0)
    core.handle(received(1, cast.vote(1, NULLIFY, 0)), 0)
    assert core.view == 0
    assert core.counters["dropped_duplicate"] == 1


def test_a_quorum_override_forms_a_certificate_from_that_many_votes() -> None:
    cast = Cast()
    core = cast.core(config=CoreConfig(quorum_override=2))
    nullify_view(core, cast, 0, signers=(0, 1))
    assert core.view == 1


def test_a_quorum_override_accepts_a_certificate_with_that_many_signatures() -> None:
    cast = Cast()
    core = cast.core(config=CoreConfig(quorum_override=2))
    core.handle(received(0, CertificateMessage(cast.certificate(NULLIFY, 0, signers=(0, 1)))), 0)
    assert core.view == 1
    assert core.counters["dropped_bad_certificate"] == 0


def test_a_quorum_override_below_one_is_refused() -> None:
    with pytest.raises(CoreConfigError, match="quorum_override"):
        CoreConfig(quorum_override=0)


def test_a_quorum_override_above_the_validator_count_is_refused() -> None:
    cast = Cast()
    with pytest.raises(CoreConfigError, match="quorum_override 5"):
        cast.core(config=CoreConfig(quorum_override=5))


# ---------------------------------------------------------------- rejections


def test_a_vote_from_a_non_validator_index_is_dropped() -> None:
    cast = Cast(n=7)
    outsider_vote = cast.vote(5, NULLIFY, 0)
    four = Cast()
    core = four.core()
    assert core.handle(received(0, outsider_vote), 0) == []
    assert core.counters["dropped_unknown_signer"] == 1


def test_a_message_from_a_non_validator_peer_is_dropped() -> None:
    cast = Cast()
    core = cast.core()
    assert core.handle(received(9, cast.vote(0, NULLIFY, 0)), 0) == []
    assert core.counters["dropped_unknown_sender"] == 1


def test_a_vote_with_a_bad_signature_is_dropped_and_not_counted() -> None:
    cast = Cast()
    core = cast.core()
    forged = dataclasses.replace(cast.vote(0, NULLIFY, 0), signer=1)
    core.handle(received(1, forged), 0)
    nullify_view(core, cast, 0, signers=(0, 2))
    assert core.counters["dropped_bad_signature"] == 1
    assert core.view == 0


def test_a_vote_signed_for_another_chain_is_dropped() -> None:
    cast = Cast()
    core = cast.core()
    other_chain_id = dataclasses.replace(cast.genesis, chain_name="another-chain").hash
    signature = cast.signers[0].sign(vote_message(other_chain_id, NULLIFY, 0, ZERO_HASH))
    core.handle(received(0, Vote(kind=NULLIFY, view=0, block_hash=ZERO_HASH, signer=0, signature=signature)), 0)
    assert core.counters["dropped_bad_signature"] == 1


def test_a_proposal_for_another_chain_is_dropped() -> None:
    cast = Cast()
    core = cast.core()
    block = cast.block(0)
    foreign = Block(dataclasses.replace(block.header, chain_id=bytes(31) + b"\1"), block.roots)
    actions = core.handle(received(0, cast.proposal(foreign)), 0)
    assert actions == []
    assert core.counters["dropped_wrong_chain"] == 1


def test_a_certificate_with_a_forged_signature_is_dropped() -> None:
    cast = Cast()
    core = cast.core()
    cert = cast.certificate(NULLIFY, 0)
    bad = dataclasses.replace(cert, signatures=cert.signatures[:2] + ((2, cert.signatures[0][1]),))
    assert core.handle(received(0, CertificateMessage(bad)), 0) == []
    assert core.counters["dropped_bad_certificate"] == 1
    assert core.view == 0


def test_a_certificate_below_quorum_is_dropped() -> None:
    cast = Cast()
    core = cast.core()
    cert = cast.certificate(NULLIFY, 0, signers=(0, 1))
    assert core.handle(received(0, CertificateMessage(cert)), 0) == []
    assert core.counters["dropped_bad_certificate"] == 1


def test_a_vote_for_a_finalized_view_is_dropped() -> None:
    cast = Cast()
    block = cast.block(0)
    core = cast.core(finalized_tip=FinalizedTip(block.header, cast.log_after(block)))
    assert core.handle(received(0, cast.vote(0, FINALIZE, 0, block.hash)), 0) == []
    assert core.counters["dropped_old_view"] == 1


def test_a_vote_beyond_the_future_view_bound_is_dropped_but_one_at_the_bound_is_kept() -> None:
    cast = Cast()
    core = cast.core()
    core.handle(received(0, cast.vote(0, NULLIFY, FUTURE_VIEWS_MAX + 1)), 0)
    assert core.counters["dropped_future_view"] == 1
    nullify_view(core, cast, FUTURE_VIEWS_MAX)
    assert core.view == FUTURE_VIEWS_MAX + 1


def test_rejected_messages_change_no_state() -> None:
    cast = Cast()
    core = cast.core()
    before = (core.view, core.safety, core.finalized_height)
    core.handle(received(0, cast.vote(0, NULLIFY, FUTURE_VIEWS_MAX + 5)), 0)
    core.handle(received(0, dataclasses.replace(cast.vote(0, NULLIFY, 0), signature=b"x")), 0)
    nullify_view(core, cast, 0, signers=(0, 1))
    assert (core.view, core.safety, core.finalized_height) == before


# ---------------------------------------------------------------- leaders and proposals


def test_the_leader_of_a_view_is_the_view_number_modulo_n() -> None:
    cast = Cast()
    core = cast.core()
    assert [core.validators.leader(view) for view in range(9)] == [0, 1, 2, 3, 0, 1, 2, 3, 0]


def test_only_the_leader_of_the_entered_view_asks_for_a_proposal() -> None:
    cast = Cast()
    cores = [cast.core(index) for index in range(4)]
    asked = []
    for index, core in enumerate(cores):
        core.handle(Start(), 0)
        actions = core.handle(received(0, CertificateMessage(cast.certificate(NULLIFY, 0))), 0)
        if of_type(actions, RequestProposal):
            asked.append(index)
    assert asked == [1]


def test_a_proposal_signed_by_a_non_leader_is_dropped() -> None:
    cast = Cast()
    core = cast.core()
    block = cast.block(0)
    wrong = Block(dataclasses.replace(block.header, proposer=1), block.roots)
    actions = core.handle(received(1, cast.proposal(wrong, signer=1)), 0)
    assert of_type(actions, CheckBlock) == [] and votes_in(actions) == []
    assert core.counters["dropped_not_leader"] == 1


def test_a_valid_proposal_is_checked_externally_before_the_notarize_vote() -> None:
    cast = Cast()
    core = cast.core()
    block = cast.block(0)
    actions = core.handle(received(0, cast.proposal(block)), 0)
    assert of_type(actions, CheckBlock) == [CheckBlock(block=block, pending=())]
    assert votes_in(actions) == []
    actions = core.handle(BlockChecked(block.hash, True), 0)
    assert [(v.kind, v.view, v.block_hash) for v in votes_in(actions)] == [(NOTARIZE, 0, block.hash)]


def test_the_block_check_hands_on_the_roots_it_split() -> None:
    cast = Cast()
    core = cast.core()
    block = cast.block(0)
    [check] = of_type(core.handle(received(0, cast.proposal(block)), 0), CheckBlock)
    assert check.split == [block.roots[i : i + 32] for i in range(0, len(block.roots), 32)]


def test_a_proposal_that_fails_the_external_check_gets_no_vote() -> None:
    cast = Cast()
    core = cast.core()
    block = cast.block(0)
    core.handle(received(0, cast.proposal(block)), 0)
    assert votes_in(core.handle(BlockChecked(block.hash, False), 0)) == []


def test_a_leader_that_saw_the_notarization_before_its_block_proposes_once_the_block_arrives() -> None:
    """Proposals travel by reference (node.proposal_relay): a validator may hold a block's
    notarization before it has rebuilt the block. Its view needs that block as its parent;
    when the block comes, the leader must propose then, not time its view out."""
    cast = Cast()
    core = cast.core(index=1)  # the leader of view 1
    block = cast.block(0)
    entered = core.handle(received(0, CertificateMessage(cast.certificate(NOTARIZE, 0, block.hash, signers=(0, 2, 3)))), 0)
    assert core.view == 1
    assert of_type(entered, RequestProposal) == []  # its parent is not here yet
    actions = core.handle(received(0, cast.proposal(block)), 0)
    requests = of_type(actions, RequestProposal)
    assert [(r.view, r.parent.hash) for r in requests] == [(1, block.hash)]


def test_a_proposal_waiting_for_its_parent_is_voted_on_once_the_parent_arrives() -> None:
    cast = Cast()
    core = cast.core(index=3)
    parent = cast.block(0)
    child = cast.block(1, parent)
    core.handle(received(0, CertificateMessage(cast.certificate(NOTARIZE, 0, parent.hash, signers=(0, 1, 2)))), 0)
    assert core.view == 1
    assert votes_in(core.handle(received(1, cast.proposal(child)), 0)) == []  # waiting for its parent
    actions = core.handle(received(0, cast.proposal(parent)), 0)
    checks = of_type(actions, CheckBlock)
    assert [check.block.hash for check in checks] == [child.hash]


def test_the_stage_of_a_view_follows_its_proposal_from_arrival_to_notarization() -> None:
    cast = Cast()
    core = cast.core()
    block = cast.block(0)
    assert core.view_stage(0) == "no_proposal"
    core.handle(received(0, cast.proposal(block)), 0)
    assert core.view_stage(0) == "checking"
    core.handle(BlockChecked(block.hash, True), 0)
    assert core.view_stage(0) == "voted"
    core.handle(received(0, CertificateMessage(cast.certificate(NOTARIZE, 0, block.hash))), 0)
    assert core.view_stage(0) == "notarized"


def test_the_stage_of_a_view_whose_proposal_failed_its_check_is_invalid() -> None:
    cast = Cast()
    core = cast.core()
    block = cast.block(0)
    core.handle(received(0, cast.proposal(block)), 0)
    core.handle(BlockChecked(block.hash, False), 0)
    assert core.view_stage(0) == "invalid"


def test_the_notarize_vote_is_cast_once_per_view() -> None:
    cast = Cast()
    core = cast.core()
    block = cast.block(0)
    core.handle(received(0, cast.proposal(block)), 0)
    core.handle(BlockChecked(block.hash, True), 0)
    again = core.handle(received(1, cast.proposal(block)), 0) + core.handle(BlockChecked(block.hash, True), 0)
    assert votes_in(again) == []


class ChildOfTip:
    """A core (validator 0) whose finalized tip is a block of view 0; view 1 is led by validator 1."""

    def __init__(self, config: CoreConfig = CoreConfig()) -> None:
        self.cast = Cast()
        self.parent = self.cast.block(0)
        self.core = self.cast.core(
            index=0,
            finalized_tip=FinalizedTip(self.parent.header, self.cast.log_after(self.parent)), config=config
        )
        self.log = self.cast.log_after(self.parent)

    def good(self, **kwargs) -> Block:
        return self.cast.block(1, self.parent, log=self.log, **kwargs)

    def offer(self, block: Block, now_ms: int = 1_000) -> list:
        actions = self.core.handle(received(1, self.cast.proposal(block)), now_ms)
        return actions

    def offer_header(self, **changes) -> list:
        block = self.good()
        return self.offer(Block(dataclasses.replace(block.header, **changes), block.roots))


def assert_rejected(fixture: ChildOfTip, actions: list, counter: str) -> None:
    assert of_type(actions, CheckBlock) == [] and votes_in(actions) == []
    assert fixture.core.counters[counter] == 1


def test_a_well_formed_child_of_the_tip_is_accepted() -> None:
    fixture = ChildOfTip()
    assert len(of_type(fixture.offer(fixture.good()), CheckBlock)) == 1


def test_a_proposal_on_an_unknown_parent_gets_no_vote() -> None:
    fixture = ChildOfTip()
    actions = fixture.offer_header(parent=b"\7" * 32)
    assert_rejected(fixture, actions, "waiting_for_parent")


def test_a_proposal_with_a_wrong_height_is_invalid() -> None:
    fixture = ChildOfTip()
    assert_rejected(fixture, fixture.offer_header(height=3), "invalid_block_height")


def test_a_proposal_with_a_wrong_log_root_is_invalid() -> None:
    fixture = ChildOfTip()
    assert_rejected(fixture, fixture.offer_header(log_root=b"\1" * 32), "invalid_block_log_root")


def test_a_proposal_with_a_wrong_log_size_is_invalid() -> None:
    fixture = ChildOfTip()
    block = fixture.good()
    actions = fixture.offer_header(log_size=block.header.log_size + 1)
    assert_rejected(fixture, actions, "invalid_block_log_size")


def test_a_proposal_whose_body_does_not_match_its_hash_is_invalid() -> None:
    fixture = ChildOfTip()
    block = fixture.good()
    swapped = Block(block.header, fresh_roots(b"other", block.root_count))
    assert_rejected(fixture, fixture.offer(swapped), "invalid_block_body_hash")


def test_a_proposal_with_a_timestamp_not_after_its_parent_is_invalid() -> None:
    fixture = ChildOfTip()
    actions = fixture.offer_header(timestamp_ms=fixture.parent.header.timestamp_ms)
    assert_rejected(fixture, actions, "invalid_block_timestamp")


def test_a_proposal_with_a_timestamp_too_far_ahead_of_the_clock_is_invalid() -> None:
    fixture = ChildOfTip()
    block = fixture.good(timestamp_ms=100_000)
    actions = fixture.offer(block, now_ms=100_000 - fixture.core.config.clock_skew_ms - 1)
    assert_rejected(fixture, actions, "invalid_block_timestamp_ahead")


def test_a_proposal_with_more_roots_than_allowed_is_dropped_before_it_is_stored() -> None:
    fixture = ChildOfTip(CoreConfig(block_roots_max=4))
    block = fixture.good(roots=fresh_roots(b"many", 5))
    assert_rejected(fixture, fixture.offer(block), "dropped_oversize_block")
    assert block.hash not in fixture.core._blocks


def test_a_proposal_repeating_a_root_is_invalid() -> None:
    fixture = ChildOfTip()
    root = fresh_roots(b"one", 1)
    assert_rejected(fixture, fixture.offer(fixture.good(roots=root + root)), "invalid_block_duplicate_root")


def test_a_proposal_for_another_validator_set_is_invalid() -> None:
    fixture = ChildOfTip()
    assert_rejected(fixture, fixture.offer_header(validator_set=b"\2" * 32), "invalid_block_validator_set")


def test_a_proposal_on_the_tip_after_nullified_views_is_accepted() -> None:
    fixture = ChildOfTip()
    for view in (1, 2):
        fixture.core.handle(received(1, CertificateMessage(fixture.cast.certificate(NULLIFY, view))), 0)
    block = fixture.cast.block(3, fixture.parent, log=fixture.log)
    actions = fixture.core.handle(received(3, fixture.cast.proposal(block)), 1_000)
    assert len(of_type(actions, CheckBlock)) == 1


def test_a_proposal_skipping_a_view_that_is_not_nullified_gets_no_vote() -> None:
    fixture = ChildOfTip()
    fixture.core.handle(received(1, CertificateMessage(fixture.cast.certificate(NOTARIZE, 1, b"\4" * 32))), 0)
    fixture.core.handle(received(1, CertificateMessage(fixture.cast.certificate(NULLIFY, 2))), 0)
    block = fixture.cast.block(3, fixture.parent, log=fixture.log)
    actions = fixture.core.handle(received(3, fixture.cast.proposal(block)), 1_000)
    assert_rejected(fixture, actions, "waiting_for_parent")


def _own_proposal(cast: Cast, core, roots: bytes):
    request = of_type(core.handle(Start(), 0), RequestProposal)[0]
    from consensus.block import build_proposal

    return request, build_proposal(genesis=cast.genesis, view=0, parent=None, log=request.log, roots=roots, timestamp_ms=0)


def _proposed(actions) -> list:
    from consensus.messages import Proposal

    return [a.message.block for a in of_type(actions, Broadcast) if isinstance(a.message, Proposal)]


def test_the_leader_does_not_hash_its_own_proposals_roots_again(monkeypatch) -> None:
    cast = Cast()
    core = cast.core(index=0)
    _request, built = _own_proposal(cast, core, fresh_roots(b"own", 64))
    calls = []
    original = CompactRange.extend_roots
    monkeypatch.setattr(CompactRange, "extend_roots", lambda self, *a, **k: calls.append(1) or original(self, *a, **k))
    actions = core.handle(ProposalReady(0, built.block, built), 0)
    assert _proposed(actions) == [built.block]
    assert calls == []


def test_the_build_of_another_block_is_not_taken_for_the_proposal() -> None:
    """Same root count, other roots: taking its edge would make the honest block look invalid."""
    cast = Cast()
    core = cast.core(index=0)
    _request, built = _own_proposal(cast, core, fresh_roots(b"own", 64))
    _, other = _own_proposal(cast, cast.core(index=0), fresh_roots(b"other", 64))
    actions = core.handle(ProposalReady(0, built.block, other), 0)
    assert _proposed(actions) == [built.block]
    assert core.counters["invalid_own_proposal"] == 0


def test_an_own_proposal_whose_header_disagrees_with_its_build_is_not_proposed() -> None:
    cast = Cast()
    core = cast.core(index=0)
    _request, built = _own_proposal(cast, core, fresh_roots(b"own", 64))
    lying = dataclasses.replace(built.block, header=dataclasses.replace(built.block.header, log_root=b"\x07" * 32))
    actions = core.handle(ProposalReady(0, lying, dataclasses.replace(built, block=lying)), 0)
    assert _proposed(actions) == []
    assert core.counters["invalid_own_proposal"] == 1


# ---------------------------------------------------------------- timeouts


def test_entering_a_view_arms_its_timer_with_the_base_timeout() -> None:
    cast = Cast()
    core = cast.core(config=CoreConfig(base_timeout_ms=500))
    assert of_type(core.handle(Start(), 0), SetTimer) == [SetTimer(0, 500)]


def test_a_timeout_votes_nullify_after_persisting_it() -> None:
    cast = Cast()
    core = cast.core()
    core.handle(Start(), 0)
    actions = core.handle(TimerFired(0), 1_000)
    persist = actions.index(Persist(SafetyState(view=0, nullify=True)))
    vote_at = next(i for i, a in enumerate(actions) if isinstance(a, Broadcast) and isinstance(a.message, Vote))
    assert persist < vote_at
    assert (actions[vote_at].message.kind, actions[vote_at].message.view) == (NULLIFY, 0)


def test_a_timer_of_a_view_already_left_does_nothing() -> None:
    cast = Cast()
    core = cast.core()
    nullify_view(core, cast, 0)
    assert core.handle(TimerFired(0), 1_000) == []


def test_consecutive_nullified_views_back_off_exponentially_up_to_the_cap() -> None:
    cast = Cast()
    core = cast.core(config=CoreConfig(base_timeout_ms=100, timeout_backoff=2, max_timeout_ms=500))
    delays = []
    for view in range(5):
        actions = nullify_view(core, cast, view)
        delays += [a.delay_ms for a in of_type(actions, SetTimer)]
    assert delays == [200, 400, 500, 500, 500]


def test_progress_resets_the_timeout_to_the_base() -> None:
    cast = Cast()
    core = cast.core(config=CoreConfig(base_timeout_ms=100))
    nullify_view(core, cast, 0)
    nullify_view(core, cast, 1)
    actions = core.handle(received(0, CertificateMessage(cast.certificate(NOTARIZE, 2, b"\5" * 32))), 0)
    assert of_type(actions, SetTimer) == [SetTimer(3, 100)]


def test_a_validator_that_notarized_still_nullifies_on_timeout_but_then_never_finalizes_that_view() -> None:
    cast = Cast()
    core = cast.core()
    block = cast.block(0)
    core.handle(received(0, cast.proposal(block)), 0)
    core.handle(BlockChecked(block.hash, True), 0)
    timeout = core.handle(TimerFired(0), 1_000)
    assert [v.kind for v in votes_in(timeout)] == [NULLIFY]
    actions = core.handle(received(0, CertificateMessage(cast.certificate(NOTARIZE, 0, block.hash))), 1_000)
    assert core.view == 1
    assert [v.kind for v in votes_in(actions)] == []


def test_a_notarization_in_the_current_view_brings_a_finalize_vote() -> None:
    cast = Cast()
    core = cast.core()
    block = cast.block(0)
    actions = core.handle(received(0, CertificateMessage(cast.certificate(NOTARIZE, 0, block.hash))), 0)
    assert [(v.kind, v.view, v.block_hash) for v in votes_in(actions)] == [(FINALIZE, 0, block.hash)]


# ---------------------------------------------------------------- finalization


def notarized_chain(cast: Cast, core, length: int) -> list[Block]:
    blocks: list[Block] = []
    for view in range(length):
        block = cast.block(view, blocks[-1] if blocks else None)
        core.handle(received(view % 4, cast.proposal(block)), 10_000)
        core.handle(BlockChecked(block.hash, True), 10_000)
        core.handle(received(0, CertificateMessage(cast.certificate(NOTARIZE, view, block.hash))), 10_000)
        blocks.append(block)
    return blocks


def test_finalizing_a_block_finalizes_its_ancestors_in_height_order() -> None:
    cast = Cast()
    core = cast.core()
    blocks = notarized_chain(cast, core, 3)
    actions = core.handle(received(0, CertificateMessage(cast.certificate(FINALIZE, 2, blocks[2].hash))), 10_000)
    finalized = of_type(actions, Finalized)
    assert [f.block for f in finalized] == blocks
    assert core.finalized_height == 3 and core.finalized_hash == blocks[2].hash


def test_an_implicitly_finalized_ancestor_carries_the_descendant_certificate_and_the_linking_headers() -> None:
    cast = Cast()
    core = cast.core()
    blocks = notarized_chain(cast, core, 3)
    actions = core.handle(received(0, CertificateMessage(cast.certificate(FINALIZE, 2, blocks[2].hash))), 10_000)
    first = of_type(actions, Finalized)[0]
    assert first.descendants == (blocks[1].header, blocks[2].header)
    assert first.certificate.block_hash == blocks[2].hash
    verify_finalization(cast.genesis, first.block.header, first.proof, verify_sig=sim_check(cast.genesis, cast.verifier))


def test_a_finalized_block_carries_the_subtree_hashes_its_check_computed_for_the_append() -> None:
    cast = Cast()
    core = cast.core()
    blocks = []
    for view in range(3):
        block = cast.block(view, blocks[-1] if blocks else None, roots=fresh_roots(b"sub-%d" % view, 37))
        core.handle(received(view % 4, cast.proposal(block)), 10_000)
        core.handle(BlockChecked(block.hash, True), 10_000)
        core.handle(received(0, CertificateMessage(cast.certificate(NOTARIZE, view, block.hash))), 10_000)
        blocks.append(block)
    actions = core.handle(received(0, CertificateMessage(cast.certificate(FINALIZE, 2, blocks[2].hash))), 10_000)
    log = CompactRange()
    for action in of_type(actions, Finalized):
        assert action.subtrees == tuple(log.extend_roots(action.block.roots, keep_level=STORED_SUBTREE_LEVEL))
    assert log.size == 111 and sum(len(action.subtrees) for action in of_type(actions, Finalized)) == 6 + 3 + 1 + 0


def test_each_block_is_finalized_exactly_once() -> None:
    cast = Cast()
    core = cast.core()
    blocks = notarized_chain(cast, core, 3)
    core.handle(received(0, CertificateMessage(cast.certificate(FINALIZE, 1, blocks[1].hash))), 10_000)
    later = core.handle(received(0, CertificateMessage(cast.certificate(FINALIZE, 2, blocks[2].hash))), 10_000)
    again = core.handle(received(1, CertificateMessage(cast.certificate(FINALIZE, 1, blocks[1].hash))), 10_000)
    assert [f.block for f in of_type(later, Finalized)] == [blocks[2]]
    assert of_type(again, Finalized) == []


def test_finalize_votes_from_a_quorum_finalize_the_block() -> None:
    cast = Cast()
    core = cast.core()
    blocks = notarized_chain(cast, core, 1)
    actions = []
    for signer in (0, 1):
        actions += core.handle(received(signer, cast.vote(signer, FINALIZE, 0, blocks[0].hash)), 10_000)
    assert [f.block for f in of_type(actions, Finalized)] == blocks


def test_a_finalization_for_an_unknown_block_asks_a_peer_for_catch_up() -> None:
    cast = Cast()
    core = cast.core()
    cert = cast.certificate(FINALIZE, 5, b"\3" * 32)
    actions = core.handle(received(2, CertificateMessage(cert)), 0)
    requests = [a.message for a in of_type(actions, Send) if isinstance(a.message, CatchUpRequest)]
    assert [(r.from_height, r.max_blocks) for r in requests] == [(1, core.config.catchup_blocks_max)]
    assert core.view == 6


# ---------------------------------------------------------------- safety state


def test_every_vote_is_preceded_by_a_persist_that_covers_it() -> None:
    cast = Cast()
    core = cast.core(index=0)
    actions = core.handle(Start(), 0)
    request = of_type(actions, RequestProposal)[0]
    from consensus.block import build_block

    block = build_block(genesis=cast.genesis, view=0, parent=None, log=request.log, roots=fresh_roots(b"p"), timestamp_ms=0)
    actions += core.handle(ProposalReady(0, block), 0)
    for signer in (1, 2):
        actions += core.handle(received(signer, cast.vote(signer, NOTARIZE, 0, block.hash)), 0)
    actions += core.handle(TimerFired(1), 1_000)
    persisted = None
    checked = 0
    for action in actions:
        if isinstance(action, Persist):
            persisted = action.state
        for vote in votes_in([action]):
            assert persisted is not None
            assert covered(persisted, vote), (vote, persisted)
            checked += 1
    assert checked == 3  # notarize (in the proposal), finalize, nullify


def test_a_restarted_validator_does_not_notarize_a_second_block_in_the_same_view() -> None:
    cast = Cast()
    core = cast.core()
    first, second = cast.block(0), cast.block(0, roots=fresh_roots(b"second"))
    core.handle(received(0, cast.proposal(first)), 0)
    actions = core.handle(BlockChecked(first.hash, True), 0)
    state = of_type(actions, Persist)[-1].state
    restarted = cast.core(safety=state)
    replay = restarted.handle(Start(), 0)
    replay += restarted.handle(received(0, cast.proposal(second)), 0)
    replay += restarted.handle(BlockChecked(second.hash, True), 0)
    assert votes_in(replay) == []


def test_a_restarted_validator_that_nullified_does_not_finalize_that_view() -> None:
    cast = Cast()
    core = cast.core()
    core.handle(Start(), 0)
    state = of_type(core.handle(TimerFired(0), 1_000), Persist)[-1].state
    restarted = cast.core(safety=state)
    restarted.handle(Start(), 1_000)
    block = cast.block(0)
    actions = restarted.handle(received(0, CertificateMessage(cast.certificate(NOTARIZE, 0, block.hash))), 1_000)
    assert [v.kind for v in votes_in(actions)] == []
    assert restarted.view == 1


def test_a_restarted_validator_never_votes_in_a_view_it_already_left() -> None:
    cast = Cast()
    core = cast.core()
    block = cast.block(0)
    actions = core.handle(received(0, CertificateMessage(cast.certificate(NOTARIZE, 0, block.hash))), 0)
    restarted = cast.core(safety=of_type(actions, Persist)[-1].state)
    replay = restarted.handle(Start(), 0) + restarted.handle(received(0, cast.proposal(block)), 0)
    replay += restarted.handle(BlockChecked(block.hash, True), 0) + restarted.handle(TimerFired(0), 5_000)
    assert votes_in(replay) == []


# ---------------------------------------------------------------- equivocation


def test_two_different_votes_of_one_kind_and_view_are_recorded_as_evidence_once() -> None:
    cast = Cast()
    core = cast.core()
    a = cast.vote(2, FINALIZE, 0, b"\1" * 32)
    b = cast.vote(2, FINALIZE, 0, b"\2" * 32)
    c = cast.vote(2, FINALIZE, 0, b"\3" * 32)
    actions = core.handle(received(2, a), 0) + core.handle(received(2, b), 0) + core.handle(received(2, c), 0)
    assert [e.record for e in of_type(actions, Evidence)] == core.evidence
    assert len(core.evidence) == 1
    assert (core.evidence[0].first, core.evidence[0].second) == (a, b)


def test_two_different_proposals_from_the_leader_are_recorded_as_evidence() -> None:
    cast = Cast()
    core = cast.core()
    core.handle(received(0, cast.proposal(cast.block(0))), 0)
    actions = core.handle(received(0, cast.proposal(cast.block(0, roots=fresh_roots(b"twin")))), 0)
    assert len(of_type(actions, Evidence)) == 1
    assert core.evidence[0].signer == 0 and core.evidence[0].view == 0


def test_a_notarize_and_a_nullify_vote_in_one_view_are_not_equivocation() -> None:
    cast = Cast()
    core = cast.core()
    core.handle(received(2, cast.vote(2, NOTARIZE, 0, b"\1" * 32)), 0)
    core.handle(received(2, cast.vote(2, NULLIFY, 0)), 0)
    assert core.evidence == []


def test_body_hash_binds_the_roots() -> None:
    roots = fresh_roots(b"x")
    assert body_hash(roots) != body_hash(roots[32:] + roots[:32])


def test_a_certificate_carrying_a_vote_that_conflicts_with_a_held_vote_is_evidence() -> None:
    cast = Cast()
    core = cast.core()
    core.handle(received(0, cast.proposal(cast.block(0))), 0)
    twin = cast.block(0, roots=fresh_roots(b"twin"))
    actions = core.handle(received(1, CertificateMessage(cast.certificate(NOTARIZE, 0, twin.hash, signers=(0, 1, 2)))), 0)
    assert [(e.record.signer, e.record.second.block_hash) for e in of_type(actions, Evidence)] == [(0, twin.hash)]


# ---------------------------------------------------------------- lost certificates


def test_a_skipped_view_without_any_certificate_gets_a_late_nullify_vote_on_timeout() -> None:
    cast = Cast()
    core = cast.core()
    for view in (0, 1):
        core.handle(received(0, CertificateMessage(cast.certificate(NULLIFY, view))), 0)
    core.handle(received(0, CertificateMessage(cast.certificate(NULLIFY, 3))), 0)
    assert core.view == 4
    actions = core.handle(TimerFired(4), 5_000)
    assert sorted(v.view for v in votes_in(actions) if v.kind == NULLIFY) == [2, 4]


def test_a_late_nullify_vote_fills_the_gap_once_a_quorum_casts_it() -> None:
    cast = Cast()
    core = cast.core()
    core.handle(received(0, CertificateMessage(cast.certificate(NULLIFY, 1))), 0)
    assert core.view == 2
    core.handle(TimerFired(2), 5_000)
    actions = []
    for signer in (0, 1):
        actions += core.handle(received(signer, cast.vote(signer, NULLIFY, 0)), 5_000)
    formed = [a.message.certificate for a in of_type(actions, Broadcast) if isinstance(a.message, CertificateMessage)]
    assert [(c.kind, c.view) for c in formed] == [(NULLIFY, 0)]


def test_a_view_this_validator_voted_to_finalize_never_gets_a_late_nullify_vote() -> None:
    cast = Cast()
    core = cast.core()
    core.handle(received(0, CertificateMessage(cast.certificate(NOTARIZE, 0, b"\5" * 32))), 0)
    core.handle(received(0, CertificateMessage(cast.certificate(NULLIFY, 1))), 0)
    restarted = cast.core(safety=core.safety)
    restarted.handle(Start(), 0)
    actions = restarted.handle(TimerFired(2), 5_000)
    assert [v.view for v in votes_in(actions) if v.kind == NULLIFY] == [2]


def test_a_restarted_validator_rebroadcasts_the_certificate_that_brought_it_into_its_view() -> None:
    cast = Cast()
    core = cast.core()
    entry = cast.certificate(NOTARIZE, 0, b"\5" * 32)
    state = of_type(core.handle(received(0, CertificateMessage(entry)), 0), Persist)[-1].state
    restarted = cast.core(safety=SafetyState.decode(state.encode()))
    restarted.handle(Start(), 0)
    actions = restarted.handle(TimerFired(1), 5_000)
    sent = [a.message.certificate for a in of_type(actions, Broadcast) if isinstance(a.message, CertificateMessage)]
    assert entry in sent


def test_a_timeout_asks_a_peer_for_catch_up_when_the_proposal_cannot_be_linked() -> None:
    cast = Cast()
    core = cast.core()
    orphan_parent = cast.block(0)
    core.handle(received(0, CertificateMessage(cast.certificate(NOTARIZE, 0, orphan_parent.hash))), 0)
    core.handle(received(1, cast.proposal(cast.block(1, orphan_parent))), 0)
    actions = core.handle(TimerFired(1), 5_000)
    assert any(isinstance(a, Send) and isinstance(a.message, CatchUpRequest) for a in actions)


def test_a_notarization_carrying_its_block_lets_a_validator_that_missed_the_proposal_vote_on_the_child() -> None:
    cast = Cast()
    core = cast.core()
    parent = cast.block(0)
    core.handle(received(0, CertificateMessage(cast.certificate(NOTARIZE, 0, parent.hash))), 0)
    child = cast.block(1, parent)
    assert of_type(core.handle(received(1, cast.proposal(child)), 1_000), CheckBlock) == []
    actions = core.handle(received(1, CertificateMessage(cast.certificate(NOTARIZE, 0, parent.hash), block=parent)), 1_000)
    assert [a.block for a in of_type(actions, CheckBlock)] == [child]


def test_a_restarted_leader_proposes_on_a_notarized_block_the_driver_kept() -> None:
    cast = Cast()
    core = cast.core(index=1)
    parent = cast.block(0)
    core.handle(received(0, cast.proposal(parent)), 0)
    core.handle(BlockChecked(parent.hash, True), 0)
    core.handle(received(0, CertificateMessage(cast.certificate(NOTARIZE, 0, parent.hash))), 0)
    forgetful = cast.core(index=1, safety=core.safety)
    assert of_type(forgetful.handle(Start(), 0), RequestProposal) == []
    restored = cast.core(index=1, safety=core.safety, blocks=[parent])
    requests = of_type(restored.handle(Start(), 0), RequestProposal)
    assert [(r.view, r.parent) for r in requests] == [(1, parent.header)]


def test_a_certificate_beyond_the_highest_view_is_dropped_without_crashing() -> None:
    cast = Cast()
    core = cast.core()
    actions = core.handle(received(0, CertificateMessage(cast.certificate(NULLIFY, 2**64 - 1))), 0)
    assert actions == [] and core.view == 0
    nullify_view(core, cast, 0)
    core.handle(received(0, CertificateMessage(cast.certificate(NULLIFY, VIEW_MAX))), 0)
    assert core.view == VIEW_MAX + 1


def test_each_timeout_asks_the_next_peer_for_blocks_past_the_finalized_tip() -> None:
    """On an idle chain every view is nullified and no finalization shows a lagging node that
    it is behind; its own timeouts are what make it ask (peers in rotation, rate-limited)."""
    cast = Cast()
    core = cast.core()
    core.handle(Start(), 0)
    first = [a for a in core.handle(TimerFired(0), 1_000) if isinstance(a, Send)]
    requests = [a for a in first if isinstance(a.message, CatchUpRequest)]
    assert [(a.to, a.message.from_height) for a in requests] == [(0, 1)]
    nothing_newer = CatchUpResponse(request_id=requests[0].message.request_id, blocks=())
    core.handle(received(0, nothing_newer), 1_010)
    again = core.handle(TimerFired(0), 1_000 + CATCHUP_RETRY_MS // 2)
    assert not [a for a in again if isinstance(a, Send) and isinstance(a.message, CatchUpRequest)]
    later = core.handle(TimerFired(0), 1_000 + CATCHUP_RETRY_MS)
    assert [a.to for a in later if isinstance(a, Send) and isinstance(a.message, CatchUpRequest)] == [1]
