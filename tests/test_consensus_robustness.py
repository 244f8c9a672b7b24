"""Peer input never crashes or stalls a core: the failures an adversarial review found, as specifications.

Each test here reproduced a crash or a stall on the code before its fix (the issue
note names which); they now pin the behaviour that replaced it.
"""

from __future__ import annotations

from proof.chain import VoteKind

from consensus.actions import Persist
from consensus.core import VIEWS_RETAINED_MAX
from consensus.events import Start
from consensus.messages import CertificateMessage
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
