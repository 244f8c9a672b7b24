"""No input from a peer, a stranger or the driver makes ``Core.handle`` raise, and memory stays bounded.

Hypothesis drives one core with arbitrary sequences of events: well-signed votes,
proposals and certificates from validators (valid, stale, rival, oversize, for blocks
that exist or not, in any view), forged and structurally odd messages from the generic
message strategies, messages from strangers, catch-up answers of every shape, timers,
driver answers for unknown blocks, and a clock that only moves forward. After every
event the core's footprint must respect the bounds documented on
``consensus.core.Footprint``.
"""

from __future__ import annotations

import os

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from proof.chain import ZERO_HASH, VoteKind

from consensus.core import EVIDENCE_KEPT_MAX, FUTURE_VIEWS_MAX, VIEWS_RETAINED_MAX, CoreConfig
from consensus.events import BlockChecked, MessageReceived, ProposalReady, Start, TimerFired
from consensus.messages import CatchUpRequest, CatchUpResponse, CertificateMessage, Proposal
from tests.test_consensus_harness import Cast, fresh_roots
from tests.test_consensus_messages import messages as arbitrary_messages

N = 4
WINDOW_VIEWS = VIEWS_RETAINED_MAX + FUTURE_VIEWS_MAX + 1
BLOCK_ROOTS_MAX = 4
CAST = Cast(n=N, salt=b"fuzz")
CHAIN = []
for _view in range(12):
    CHAIN.append(CAST.block(_view, CHAIN[-1] if CHAIN else None, roots=fresh_roots(b"fuzz-%d" % _view, 2)))
RIVALS = [CAST.block(view, None, roots=fresh_roots(b"rival-%d" % view, 1)) for view in range(14)]
RIVALS += [CAST.block(view, CHAIN[0], roots=fresh_roots(b"rival-2-%d" % view, 1)) for view in range(1, 14)]
FAT = CAST.block(1, CHAIN[0], roots=fresh_roots(b"fat", BLOCK_ROOTS_MAX * 8))
BLOCKS = CHAIN + RIVALS + [FAT]
HASHES = [block.hash for block in BLOCKS] + [b"\7" * 32]

near = st.integers(min_value=0, max_value=14)
views = st.one_of(near, near, near, st.integers(min_value=0, max_value=400), st.integers(min_value=0, max_value=2**48 + 5))
signers = st.integers(min_value=0, max_value=N - 1)
senders = st.one_of(signers, st.just(9))
kinds = st.sampled_from(list(VoteKind))


@st.composite
def signed_votes(draw: st.DrawFn):
    kind = draw(kinds)
    block_hash = ZERO_HASH if kind == VoteKind.NULLIFY else draw(st.sampled_from(HASHES))
    return CAST.vote(draw(signers), kind, draw(views), block_hash)


@st.composite
def signed_proposals(draw: st.DrawFn):
    block = draw(st.sampled_from(BLOCKS))
    leader = block.header.view % N
    signer = draw(st.one_of(st.just(leader), signers))
    return Proposal(block=block, vote=CAST.vote(signer, VoteKind.NOTARIZE, block.header.view, block.hash))


@st.composite
def signed_certificates(draw: st.DrawFn):
    kind = draw(kinds)
    quorum = draw(st.one_of(st.just({0, 1, 2}), st.just({1, 2, 3}), st.sets(signers, min_size=2, max_size=N)))
    if kind == VoteKind.NULLIFY:
        return CertificateMessage(CAST.certificate(kind, draw(views), signers=sorted(quorum)))
    block = draw(st.sampled_from(BLOCKS))
    view = draw(st.one_of(st.just(block.header.view), views))
    cert = CAST.certificate(kind, view, block.hash, signers=sorted(quorum))
    return CertificateMessage(cert, block=block if draw(st.booleans()) else None)


@st.composite
def catch_up_answers(draw: st.DrawFn):
    start = draw(st.integers(min_value=0, max_value=len(CHAIN) - 1))
    end = draw(st.integers(min_value=start, max_value=len(CHAIN)))
    target = CHAIN[draw(st.integers(min_value=0, max_value=len(CHAIN) - 1))]
    cert = CAST.certificate(VoteKind.FINALIZE, target.header.view, target.hash)
    entries = tuple((block, cert) for block in CHAIN[start:end])
    tail = tuple(block.header for block in CHAIN[end : draw(st.integers(min_value=end, max_value=len(CHAIN)))])
    return CatchUpResponse(request_id=draw(st.integers(min_value=0, max_value=8)), blocks=entries, tail=tail if entries else ())


messages = st.one_of(
    signed_votes(), signed_proposals(), signed_proposals(), signed_certificates(), signed_certificates(),
    catch_up_answers(), arbitrary_messages,
    st.builds(CatchUpRequest, request_id=st.just(1), from_height=st.just(1), max_blocks=st.just(4)),
)
events = st.one_of(
    st.builds(MessageReceived, senders, messages),
    st.builds(TimerFired, views),
    st.builds(BlockChecked, st.sampled_from(HASHES), st.booleans()),
    st.builds(ProposalReady, views, st.sampled_from(BLOCKS)),
)
steps = st.lists(st.tuples(events, st.integers(min_value=0, max_value=3_000)), max_size=120)


@settings(max_examples=int(os.environ.get("PANTHEON_FUZZ_EXAMPLES", "300")), deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    finalized=st.integers(min_value=0, max_value=len(CHAIN)),
    steps=steps,
    index=st.integers(min_value=0, max_value=N - 1),
    restored=st.booleans(),
)
def test_no_event_sequence_makes_the_core_raise_or_outgrow_its_bounds(finalized, steps, index, restored) -> None:
    """``finalized``: how much of CHAIN a quorum has finalized (and announced) before the rest."""
    core = CAST.core(index=index, config=CoreConfig(block_roots_max=BLOCK_ROOTS_MAX), restored=restored)
    now_ms = 0
    core.handle(Start(), now_ms)
    announced = [
        MessageReceived(0, CertificateMessage(CAST.certificate(VoteKind.NOTARIZE, block.header.view, block.hash), block))
        for block in CHAIN[:finalized]
    ]
    if finalized:
        last = CHAIN[finalized - 1]
        announced.append(MessageReceived(1, CertificateMessage(CAST.certificate(VoteKind.FINALIZE, last.header.view, last.hash))))
    for event, advance_ms in [(event, 0) for event in announced] + steps:
        now_ms += advance_ms
        core.handle(event, now_ms)
        footprint = core.footprint()
        assert footprint.views <= WINDOW_VIEWS
        assert footprint.votes <= 3 * N * WINDOW_VIEWS
        assert footprint.certificates <= 3 * WINDOW_VIEWS
        assert footprint.proposals <= WINDOW_VIEWS
        assert footprint.window_blocks <= 3 * WINDOW_VIEWS
        assert footprint.chain_blocks <= max(0, core.view - core.finalized_view)
        assert footprint.block_bytes <= (footprint.window_blocks + footprint.chain_blocks) * BLOCK_ROOTS_MAX * 32
        assert footprint.evidence <= EVIDENCE_KEPT_MAX
