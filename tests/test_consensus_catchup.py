"""Catch-up: finalized history from a peer is believed only once checked against the genesis."""

from __future__ import annotations

import dataclasses

import pytest

from proof.chain import FinalizationProof, VoteKind, verify_finalization
from proof.compact import CompactRange

from consensus.actions import Finalized, Send
from consensus.block import Block
from consensus.catchup import CatchUpError, ServeLimiter, build_response, verify_response
from consensus.catchup_client import APPLY_ALLOWANCE_MS_PER_1000_ROOTS, CATCHUP_TIMEOUT_MS
from consensus.core import CoreConfig
from consensus.events import TimerFired
from consensus.messages import MESSAGE_SIZE_MAX, CatchUpRequest, CatchUpResponse, CertificateMessage
from tests.test_consensus_harness import Cast, Net, fresh_roots, of_type, received, sim_check

FINALIZE = VoteKind.FINALIZE


def chain_of(cast: Cast, length: int) -> list[Block]:
    blocks: list[Block] = []
    for view in range(length):
        blocks.append(cast.block(view, blocks[-1] if blocks else None))
    return blocks


def response_certified_at(cast: Cast, blocks: list[Block], certified: int) -> CatchUpResponse:
    """Every entry carries the finalization of block ``certified`` (Simplex's implicit ancestors)."""
    target = blocks[certified]
    cert = cast.certificate(FINALIZE, target.header.view, target.hash)
    return CatchUpResponse(request_id=1, blocks=tuple((block, cert) for block in blocks))


def verify(cast: Cast, response: CatchUpResponse, **kwargs):
    return verify_response(
        genesis=cast.genesis, verifier=cast.verifier, tip=None, tip_log=CompactRange(), response=response, **kwargs
    )


def test_a_chain_finalized_by_a_network_is_accepted_from_the_genesis() -> None:
    net = Net()
    net.start()
    net.run_until(lambda: min(net.heights()) >= 6)
    finalized = net.nodes[0].finalized[:6]
    response = CatchUpResponse(request_id=1, blocks=tuple((item.block, item.certificate) for item in finalized))
    proven = verify_response(
        genesis=net.genesis, verifier=net.verifier, tip=None, tip_log=CompactRange(), response=response
    )
    assert [item.block for item in proven] == [item.block for item in finalized]
    assert proven[-1].log.root() == finalized[-1].block.header.log_root


def test_ancestors_are_proven_by_a_later_certificate_with_the_linking_headers() -> None:
    cast = Cast()
    blocks = chain_of(cast, 4)
    proven = verify(cast, response_certified_at(cast, blocks, 3))
    assert [item.block for item in proven] == blocks
    assert proven[0].descendants == tuple(block.header for block in blocks[1:])
    check = sim_check(cast.genesis, cast.verifier)
    for item in proven:
        proof = FinalizationProof(headers=item.descendants, certificate=item.certificate)
        verify_finalization(cast.genesis, item.block.header, proof, verify_sig=check)


def test_blocks_after_the_last_certified_one_are_not_returned() -> None:
    cast = Cast()
    blocks = chain_of(cast, 4)
    beyond = cast.certificate(FINALIZE, 9, b"\1" * 32)
    certified = cast.certificate(FINALIZE, blocks[1].header.view, blocks[1].hash)
    response = CatchUpResponse(request_id=1, blocks=((blocks[0], certified), (blocks[1], certified), (blocks[2], beyond), (blocks[3], beyond)))
    assert [item.block for item in verify(cast, response)] == blocks[:2]


def test_a_catch_up_continues_from_a_tip() -> None:
    cast = Cast()
    blocks = chain_of(cast, 4)
    rest = response_certified_at(cast, blocks, 3)
    response = CatchUpResponse(request_id=1, blocks=rest.blocks[2:])
    proven = verify_response(
        genesis=cast.genesis, verifier=cast.verifier, tip=blocks[1].header, tip_log=cast.log_after(blocks[1]), response=response
    )
    assert [item.block for item in proven] == blocks[2:]


def test_an_empty_response_proves_nothing_and_is_not_an_error() -> None:
    assert verify(Cast(), CatchUpResponse(request_id=1, blocks=())) == []


def rejected(cast: Cast, response: CatchUpResponse, reason: str, **kwargs) -> None:
    with pytest.raises(CatchUpError) as caught:
        verify(cast, response, **kwargs)
    assert caught.value.reason == reason


def test_a_response_not_starting_at_our_tip_is_rejected() -> None:
    cast = Cast()
    blocks = chain_of(cast, 3)
    response = response_certified_at(cast, blocks, 2)
    rejected(cast, CatchUpResponse(request_id=1, blocks=response.blocks[1:]), "invalid_block_parent")


def test_a_response_with_a_gap_is_rejected() -> None:
    cast = Cast()
    blocks = chain_of(cast, 3)
    entries = response_certified_at(cast, blocks, 2).blocks
    rejected(cast, CatchUpResponse(request_id=1, blocks=(entries[0], entries[2])), "invalid_block_parent")


def test_a_response_with_tampered_roots_is_rejected() -> None:
    cast = Cast()
    blocks = chain_of(cast, 2)
    entries = list(response_certified_at(cast, blocks, 1).blocks)
    entries[0] = (Block(blocks[0].header, fresh_roots(b"tampered")), entries[0][1])
    rejected(cast, CatchUpResponse(request_id=1, blocks=tuple(entries)), "invalid_block_body_hash")


def test_a_response_whose_log_root_was_not_computed_from_the_previous_log_is_rejected() -> None:
    cast = Cast()
    first = cast.block(0)
    second = cast.block(1, first, log=CompactRange())  # log restarted: size and root are wrong
    cert = cast.certificate(FINALIZE, 1, second.hash)
    rejected(cast, CatchUpResponse(request_id=1, blocks=((first, cert), (second, cert))), "invalid_block_log_size")


def test_a_response_with_a_forged_certificate_signature_is_rejected() -> None:
    cast = Cast()
    blocks = chain_of(cast, 2)
    cert = cast.certificate(FINALIZE, 1, blocks[1].hash)
    forged = dataclasses.replace(cert, signatures=cert.signatures[:2] + ((2, cert.signatures[0][1]),))
    rejected(cast, CatchUpResponse(request_id=1, blocks=((blocks[0], forged), (blocks[1], forged))), "bad_certificate")


def test_a_response_certified_by_too_few_validators_is_rejected() -> None:
    cast = Cast()
    blocks = chain_of(cast, 1)
    cert = cast.certificate(FINALIZE, 0, blocks[0].hash, signers=(0, 1))
    rejected(cast, CatchUpResponse(request_id=1, blocks=((blocks[0], cert),)), "bad_certificate")


def test_a_response_proven_only_by_notarizations_is_rejected() -> None:
    cast = Cast()
    blocks = chain_of(cast, 1)
    cert = cast.certificate(VoteKind.NOTARIZE, 0, blocks[0].hash)
    rejected(cast, CatchUpResponse(request_id=1, blocks=((blocks[0], cert),)), "not_finalization")


def test_a_response_whose_certificates_finalize_none_of_its_blocks_is_rejected() -> None:
    cast = Cast()
    blocks = chain_of(cast, 2)
    elsewhere = cast.certificate(FINALIZE, 7, b"\2" * 32)
    rejected(cast, CatchUpResponse(request_id=1, blocks=tuple((block, elsewhere) for block in blocks)), "unproven")


def test_a_certificate_claiming_a_block_of_another_view_is_rejected() -> None:
    cast = Cast()
    blocks = chain_of(cast, 1)
    cert = cast.certificate(FINALIZE, 5, blocks[0].hash)
    rejected(cast, CatchUpResponse(request_id=1, blocks=((blocks[0], cert),)), "certificate_view")


def test_a_response_longer_than_asked_is_rejected() -> None:
    cast = Cast()
    blocks = chain_of(cast, 3)
    rejected(cast, response_certified_at(cast, blocks, 2), "too_many_blocks", max_blocks=2)


def test_a_response_for_another_chain_is_rejected() -> None:
    cast, other = Cast(), Cast(salt=b"other")
    blocks = chain_of(other, 1)
    rejected(cast, response_certified_at(other, blocks, 0), "invalid_block_chain_id")


def stored_chain(cast: Cast, blocks: list[Block]) -> dict[int, tuple[Block, FinalizationProof]]:
    """A server's storage: every block finalized by one certificate for the last, with the linking headers."""
    last = blocks[-1]
    cert = cast.certificate(FINALIZE, last.header.view, last.hash)
    headers = [block.header for block in blocks]
    return {
        block.header.height: (block, FinalizationProof(headers=tuple(headers[i + 1 :]), certificate=cert))
        for i, block in enumerate(blocks)
    }


def test_the_server_answers_from_the_requested_height_up_to_its_tip() -> None:
    cast = Cast()
    blocks = chain_of(cast, 5)
    stored = stored_chain(cast, blocks)
    response = build_response(CatchUpRequest(request_id=1, from_height=2, max_blocks=10), stored.get)
    assert [block.header.height for block, _ in response.blocks] == [2, 3, 4, 5]


def test_the_server_stops_at_the_requested_count() -> None:
    cast = Cast()
    blocks = chain_of(cast, 5)
    response = build_response(CatchUpRequest(request_id=1, from_height=1, max_blocks=2), stored_chain(cast, blocks).get)
    assert len(response.blocks) == 2


def test_the_server_repeats_the_request_id() -> None:
    cast = Cast()
    stored = stored_chain(cast, chain_of(cast, 2))
    assert build_response(CatchUpRequest(request_id=77, from_height=1, max_blocks=2), stored.get).request_id == 77


def test_an_answer_cut_before_the_certified_block_proves_itself_through_its_tail() -> None:
    cast = Cast()
    blocks = chain_of(cast, 6)
    stored = stored_chain(cast, blocks)
    one_block_bytes = len(blocks[0].encode()) + len(stored[1][1].certificate.encode()) + 1
    tail_bytes = sum(len(block.header.encode()) for block in blocks[1:])
    response = build_response(
        CatchUpRequest(request_id=1, from_height=1, max_blocks=6), stored.get,
        response_bytes_max=2 * one_block_bytes + tail_bytes,
    )
    assert [block.header.height for block, _ in response.blocks] == [1, 2]
    assert response.tail == tuple(block.header for block in blocks[2:])
    proven = verify(cast, response)
    assert [item.block for item in proven] == blocks[:2]
    check = sim_check(cast.genesis, cast.verifier)
    for item in proven:
        verify_finalization(
            cast.genesis, item.block.header, FinalizationProof(item.descendants, item.certificate), verify_sig=check
        )


def test_a_response_with_a_tail_header_that_does_not_link_is_rejected() -> None:
    cast = Cast()
    blocks = chain_of(cast, 4)
    stored = stored_chain(cast, blocks)
    response = build_response(CatchUpRequest(request_id=1, from_height=1, max_blocks=1), stored.get)
    broken = CatchUpResponse(request_id=1, blocks=response.blocks, tail=(response.tail[0], response.tail[2]))
    rejected(cast, broken, "invalid_tail_parent")


def test_twenty_full_blocks_are_served_in_answers_that_each_fit_one_frame() -> None:
    """The review's case: 20 blocks of 10,000 roots are 6.4 MB, more than one 4 MiB frame."""
    cast = Cast()
    blocks: list[Block] = []
    for view in range(20):
        roots = fresh_roots(b"full-%d" % view, 10_000)
        blocks.append(cast.block(view, blocks[-1] if blocks else None, roots=roots))
    stored = stored_chain(cast, blocks)
    tip, tip_log, height = None, CompactRange(), 1
    sizes = []
    while height <= len(blocks):
        response = build_response(CatchUpRequest(request_id=height, from_height=height, max_blocks=256), stored.get)
        sizes.append(len(response.encode()))
        proven = verify_response(genesis=cast.genesis, verifier=cast.verifier, tip=tip, tip_log=tip_log, response=response)
        assert proven, f"an answer from height {height} proved nothing"
        tip, tip_log, height = proven[-1].block.header, proven[-1].log, height + len(proven)
    assert tip == blocks[-1].header
    assert len(sizes) >= 2 and max(sizes) <= MESSAGE_SIZE_MAX


def test_a_server_that_cannot_fit_one_block_and_its_tail_answers_empty() -> None:
    cast = Cast()
    stored = stored_chain(cast, chain_of(cast, 3))
    response = build_response(CatchUpRequest(request_id=1, from_height=1, max_blocks=3), stored.get, response_bytes_max=10)
    assert response.blocks == () and response.tail == ()


def test_the_serve_limiter_refuses_a_peer_past_its_byte_budget_and_refills_with_time() -> None:
    limiter = ServeLimiter(bytes_per_s=1_000_000, burst_bytes=2_000_000, request_cost_bytes=1_000)
    assert limiter.allow(1, 0)
    limiter.charge(1, 2_000_000)
    assert not limiter.allow(1, 0)
    assert limiter.allow(2, 0)  # budgets are per peer
    assert not limiter.allow(1, 0)
    assert limiter.allow(1, 2)  # 2 ms at 1 MB/s refill 2,000 bytes


def test_a_restarted_validator_that_missed_blocks_catches_up_and_rejoins() -> None:
    net = Net()
    net.nodes[1].up = False
    net.start()
    net.run_until(lambda: min(net.heights()[i] for i in (0, 2, 3)) >= 6)
    net.restart(1)
    net.nodes[1].up = True
    net.run_until(lambda: net.heights()[1] >= 9)
    assert net.nodes[1].core.counters["catchup_blocks"] >= 6
    hashes = [item.block.hash for item in net.nodes[1].finalized]
    assert hashes == [item.block.hash for item in net.nodes[0].finalized][: len(hashes)]


def test_an_unsolicited_catch_up_response_is_ignored() -> None:
    cast = Cast()
    core = cast.core()
    blocks = chain_of(cast, 1)
    assert core.handle(received(0, response_certified_at(cast, blocks, 0)), 0) == []
    assert core.counters["dropped_unsolicited_catchup"] == 1
    assert core.finalized_height == 0


def _ask_for_a_chain(cast: Cast, length: int, core) -> tuple[list[Block], dict, Send]:
    """A chain of ``length`` blocks of 1,000 roots finalized by one certificate for the last, and the core's
    first request for it."""
    blocks: list[Block] = []
    for view in range(length):
        blocks.append(cast.block(view, blocks[-1] if blocks else None, roots=fresh_roots(b"pipelined-%d" % view, 1_000)))
    last = blocks[-1]
    cert = cast.certificate(FINALIZE, last.header.view, last.hash)
    headers = [block.header for block in blocks]
    stored = {
        block.header.height: (block, FinalizationProof(headers=tuple(headers[i + 1 :]), certificate=cert))
        for i, block in enumerate(blocks)
    }
    [ask] = catch_up_requests(core.handle(received(1, CertificateMessage(cert)), 0))
    return blocks, stored, ask


def catch_up_requests(actions) -> list[Send]:
    return [a for a in of_type(actions, Send) if isinstance(a.message, CatchUpRequest)]


def test_the_next_request_leaves_before_the_blocks_just_delivered_are_applied() -> None:
    cast = Cast()
    core = cast.core(config=CoreConfig(catchup_blocks_max=2))
    _, stored, ask = _ask_for_a_chain(cast, 4, core)
    actions = core.handle(received(ask.to, build_response(ask.message, stored.get)), 10)
    [again] = catch_up_requests(actions)
    finalized = [position for position, action in enumerate(actions) if isinstance(action, Finalized)]
    assert len(finalized) == 2
    assert actions.index(again) < finalized[0]
    assert (again.to, again.message.from_height) == (ask.to, 3)


def test_a_pipelined_request_times_out_only_after_the_allowance_for_the_blocks_being_applied() -> None:
    cast = Cast()
    core = cast.core(config=CoreConfig(catchup_blocks_max=2))
    blocks, stored, ask = _ask_for_a_chain(cast, 4, core)
    core.handle(received(ask.to, build_response(ask.message, stored.get)), 10)
    allowance_ms = sum(block.root_count for block in blocks[:2]) * APPLY_ALLOWANCE_MS_PER_1000_ROOTS // 1000
    assert allowance_ms > 0
    assert catch_up_requests(core.handle(TimerFired(core.view), 10 + CATCHUP_TIMEOUT_MS + allowance_ms - 1)) == []
    assert core.counters["catchup_timeouts"] == 0
    core.handle(TimerFired(core.view), 10 + CATCHUP_TIMEOUT_MS + allowance_ms)
    assert core.counters["catchup_timeouts"] == 1
