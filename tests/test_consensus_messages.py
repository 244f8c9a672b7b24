"""Wire messages and the safety state: round trips, and strict rejection of every mutation."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from proof.chain import GENESIS_PARENT, AnchorRef, BlockHeader, Certificate, VoteKind
from proof.errors import DecodeError

from consensus.block import Block, body_hash
from consensus.messages import (
    CATCHUP_BLOCKS_MAX,
    BatchRef,
    CatchUpRequest,
    CatchUpResponse,
    CertificateMessage,
    CompactProposal,
    EquivocationEvidence,
    MessageError,
    Proposal,
    SegmentsRequest,
    SegmentsResponse,
    Vote,
    decode_message,
)
from consensus.safety import SafetyState

uint64 = st.integers(min_value=0, max_value=2**64 - 1)
hash32 = st.binary(min_size=32, max_size=32).filter(lambda h: h != bytes(32))
signature = st.binary(min_size=1, max_size=48)
kinds = st.sampled_from(list(VoteKind))


@st.composite
def votes(draw: st.DrawFn) -> Vote:
    kind = draw(kinds)
    return Vote(
        kind=kind,
        view=draw(uint64),
        block_hash=bytes(32) if kind == VoteKind.NULLIFY else draw(hash32),
        signer=draw(st.integers(min_value=0, max_value=99)),
        signature=draw(signature),
    )


@st.composite
def certificates(draw: st.DrawFn, kind: VoteKind | None = None) -> Certificate:
    kind = draw(kinds) if kind is None else kind
    signers = sorted(draw(st.sets(st.integers(min_value=0, max_value=99), min_size=1, max_size=5)))
    return Certificate(
        kind=kind,
        view=draw(uint64),
        block_hash=bytes(32) if kind == VoteKind.NULLIFY else draw(hash32),
        signatures=tuple((index, draw(signature)) for index in signers),
    )


@st.composite
def blocks(draw: st.DrawFn) -> Block:
    roots = b"".join(draw(st.lists(hash32, max_size=3)))
    height = draw(st.integers(min_value=1, max_value=2**64 - 1))
    anchors = tuple(
        AnchorRef(txid=draw(hash32), vout=draw(uint64), anchored_block_hash=draw(hash32), btc_block_hash=draw(hash32), btc_height=draw(uint64))
        for _ in range(draw(st.integers(min_value=0, max_value=2)))
    )
    header = BlockHeader(
        chain_id=draw(hash32),
        height=height,
        view=draw(uint64),
        parent=GENESIS_PARENT if height == 1 else draw(hash32),
        timestamp_ms=draw(uint64),
        proposer=draw(st.integers(min_value=0, max_value=99)),
        log_size=draw(uint64),
        log_root=draw(hash32),
        validator_set=draw(hash32),
        anchors=anchors,
        body_hash=body_hash(roots),
    )
    return Block(header=header, roots=roots)


@st.composite
def proposals(draw: st.DrawFn) -> Proposal:
    return Proposal(block=draw(blocks()), vote=draw(votes()))


@st.composite
def certificate_messages(draw: st.DrawFn) -> CertificateMessage:
    cert = draw(certificates())
    if cert.kind != VoteKind.NULLIFY and draw(st.booleans()):
        block = draw(blocks())
        cert = Certificate(kind=cert.kind, view=cert.view, block_hash=block.hash, signatures=cert.signatures)
        return CertificateMessage(certificate=cert, block=block)
    return CertificateMessage(certificate=cert)


catch_up_requests = st.builds(
    CatchUpRequest,
    request_id=st.integers(min_value=0, max_value=2**64 - 1),
    from_height=st.integers(min_value=1, max_value=2**64 - 1),
    max_blocks=st.integers(min_value=1, max_value=CATCHUP_BLOCKS_MAX),
)


@st.composite
def catch_up_responses(draw: st.DrawFn) -> CatchUpResponse:
    count = draw(st.integers(min_value=0, max_value=2))
    entries = tuple((draw(blocks()), draw(certificates(VoteKind.FINALIZE))) for _ in range(count))
    tail = tuple(draw(blocks()).header for _ in range(draw(st.integers(min_value=0, max_value=2)))) if count else ()
    return CatchUpResponse(request_id=draw(st.integers(min_value=0, max_value=2**64 - 1)), blocks=entries, tail=tail)


batch_refs = st.builds(
    BatchRef, digest=hash32, start=st.integers(min_value=0, max_value=131_000),
    count=st.integers(min_value=1, max_value=65_536),
)
inline_roots = st.lists(hash32, min_size=1, max_size=3).map(b"".join)


@st.composite
def compact_proposals(draw: st.DrawFn) -> CompactProposal:
    segments: list = [draw(batch_refs)]
    for _ in range(draw(st.integers(min_value=0, max_value=3))):
        segments.insert(draw(st.integers(min_value=0, max_value=len(segments))), draw(batch_refs))
    for position in sorted(draw(st.sets(st.integers(min_value=0, max_value=len(segments)), max_size=3)), reverse=True):
        segments.insert(position, draw(inline_roots))
    merged: list = []
    for segment in segments:
        if merged and isinstance(segment, bytes) and isinstance(merged[-1], bytes):
            merged[-1] += segment
        else:
            merged.append(segment)
    if sum(s.count if isinstance(s, BatchRef) else len(s) // 32 for s in merged) > 65_536:
        merged = [merged[0] if isinstance(merged[0], BatchRef) else merged[1]]
    return CompactProposal(header=draw(blocks()).header, vote=draw(votes()), segments=tuple(merged))


segment_indices = st.sets(st.integers(min_value=0, max_value=65_535), min_size=1, max_size=4).map(
    lambda indices: tuple(sorted(indices))
)
segments_requests = st.builds(SegmentsRequest, block_hash=hash32, indices=segment_indices)


@st.composite
def segments_responses(draw: st.DrawFn) -> SegmentsResponse:
    indices = draw(segment_indices)
    return SegmentsResponse(block_hash=draw(hash32), indices=indices,
                            roots=tuple(draw(inline_roots) for _ in indices))


messages = st.one_of(
    votes(), proposals(), certificate_messages(), catch_up_requests, catch_up_responses(), compact_proposals(),
    segments_requests, segments_responses(),
)


@settings(max_examples=200, deadline=None)
@given(messages)
def test_every_message_round_trips_through_its_encoding(message) -> None:
    assert decode_message(message.encode()) == message


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(messages, st.data())
def test_a_mutated_encoding_is_rejected_or_is_the_canonical_encoding_of_another_message(message, data) -> None:
    encoded = message.encode()
    how = data.draw(st.sampled_from(["flip", "truncate", "append", "insert"]))
    position = data.draw(st.integers(min_value=0, max_value=len(encoded) - 1))
    if how == "flip":
        mutated = bytearray(encoded)
        mutated[position] ^= data.draw(st.integers(min_value=1, max_value=255))
        mutated = bytes(mutated)
    elif how == "truncate":
        mutated = encoded[:position]
    elif how == "append":
        mutated = encoded + data.draw(st.binary(min_size=1, max_size=4))
    else:
        mutated = encoded[:position] + data.draw(st.binary(min_size=1, max_size=2)) + encoded[position:]
    try:
        decoded = decode_message(mutated)
    except DecodeError:
        return
    assert decoded != message
    assert decoded.encode() == mutated


@st.composite
def safety_states(draw: st.DrawFn) -> SafetyState:
    view = draw(st.integers(min_value=0, max_value=2**40))
    start = draw(st.integers(min_value=0, max_value=view))
    finalize_votes = tuple(sorted(draw(st.sets(st.integers(min_value=start, max_value=max(start, view - 1)), max_size=5))))
    return SafetyState(
        view=view,
        notarize=draw(st.one_of(st.none(), hash32)),
        nullify=draw(st.booleans()),
        finalize_votes=tuple(v for v in finalize_votes if v < view),
        finalize_votes_from=start,
        entry=draw(st.one_of(st.none(), certificates())),
        lock=draw(st.one_of(st.none(), certificates(VoteKind.NOTARIZE))),
    )


@settings(max_examples=100, deadline=None)
@given(safety_states())
def test_the_safety_state_round_trips_through_its_encoding(state) -> None:
    assert SafetyState.decode(state.encode()) == state


def test_a_validator_may_nullify_late_only_views_it_did_not_finalize_and_still_remembers() -> None:
    state = SafetyState(view=10, finalize_votes=(6, 8), finalize_votes_from=5)
    assert [view for view in range(12) if state.may_nullify(view)] == [5, 7, 9, 10]


def test_forgetting_old_finalize_votes_only_forbids_more() -> None:
    state = SafetyState(view=10, finalize_votes=(6, 8), finalize_votes_from=5).forget_below(7)
    assert [view for view in range(12) if state.may_nullify(view)] == [7, 9, 10]


def test_a_safety_state_listing_a_finalize_vote_at_or_above_its_view_does_not_decode() -> None:
    from proof import cbor

    with pytest.raises(DecodeError):
        SafetyState.decode(cbor.encode({"view": 3, "nullify": False, "fin": [3], "fin_from": 0}))


@settings(max_examples=50, deadline=None)
@given(votes(), hash32)
def test_equivocation_evidence_round_trips_through_its_encoding(vote, other_hash) -> None:
    if vote.kind == VoteKind.NULLIFY or other_hash == vote.block_hash:
        return
    twin = Vote(kind=vote.kind, view=vote.view, block_hash=other_hash, signer=vote.signer, signature=vote.signature)
    record = EquivocationEvidence(first=vote, second=twin)
    assert EquivocationEvidence.decode(record.encode()) == record


def test_a_message_with_an_unknown_type_does_not_decode() -> None:
    from proof import cbor

    with pytest.raises(DecodeError):
        decode_message(cbor.encode({"t": 9, "from": 1, "max": 1}))


def test_a_nullify_vote_for_a_block_cannot_exist() -> None:
    with pytest.raises(MessageError):
        Vote(kind=VoteKind.NULLIFY, view=1, block_hash=b"\1" * 32, signer=0, signature=b"s")


def test_a_catch_up_request_for_too_many_blocks_cannot_exist() -> None:
    with pytest.raises(MessageError):
        CatchUpRequest(request_id=1, from_height=1, max_blocks=CATCHUP_BLOCKS_MAX + 1)


def test_a_certificate_message_whose_block_is_not_the_certified_one_cannot_exist() -> None:
    block = Block(
        header=BlockHeader(
            chain_id=b"\1" * 32, height=1, view=0, parent=GENESIS_PARENT, timestamp_ms=0, proposer=0, log_size=0,
            log_root=b"\2" * 32, validator_set=b"\3" * 32, anchors=(), body_hash=body_hash(b""),
        ),
        roots=b"",
    )
    cert = Certificate(kind=VoteKind.FINALIZE, view=0, block_hash=b"\4" * 32, signatures=((0, b"s"),))
    with pytest.raises(MessageError):
        CertificateMessage(certificate=cert, block=block)


def _header_and_vote() -> tuple[BlockHeader, Vote]:
    roots = bytes(range(32))
    header = BlockHeader(
        chain_id=b"c" * 32, height=1, view=1, parent=GENESIS_PARENT, timestamp_ms=1, proposer=1, log_size=1,
        log_root=b"r" * 32, validator_set=b"v" * 32, anchors=(), body_hash=body_hash(roots),
    )
    return header, Vote(kind=VoteKind.NOTARIZE, view=1, block_hash=header.hash, signer=1, signature=b"s")


def test_a_compact_proposal_without_a_batch_reference_cannot_exist() -> None:
    header, vote = _header_and_vote()
    with pytest.raises(MessageError, match="plain proposal"):
        CompactProposal(header=header, vote=vote, segments=(b"x" * 32,))


def test_adjacent_inline_segments_cannot_exist_they_have_one_encoding() -> None:
    header, vote = _header_and_vote()
    ref = BatchRef(digest=b"d" * 32, start=0, count=1)
    with pytest.raises(MessageError, match="adjacent"):
        CompactProposal(header=header, vote=vote, segments=(ref, b"x" * 32, b"y" * 32))


def test_a_compact_proposal_of_more_roots_than_a_block_holds_cannot_exist() -> None:
    header, vote = _header_and_vote()
    ref = BatchRef(digest=b"d" * 32, start=0, count=65_536)
    with pytest.raises(MessageError, match="more than"):
        CompactProposal(header=header, vote=vote, segments=(ref, b"x" * 32))


def test_segment_indices_must_increase() -> None:
    with pytest.raises(MessageError, match="increase"):
        SegmentsRequest(block_hash=b"h" * 32, indices=(3, 3))
    with pytest.raises(MessageError, match="one run of roots per segment"):
        SegmentsResponse(block_hash=b"h" * 32, indices=(1, 2), roots=(b"x" * 32,))
