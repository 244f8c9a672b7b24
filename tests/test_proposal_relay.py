"""Proposals by reference to gossip batches: the leader names runs of batches, a receiver
rebuilds the very same proposal, fetches what it lacks, and drops what does not match."""

from __future__ import annotations

import os

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from consensus.block import Block, body_hash
from consensus.messages import BatchRef, CompactProposal, Proposal, SegmentsRequest, SegmentsResponse, Vote
from node.batch_pool import BatchPool, batch_digest
from node.mempool import Mempool
from node.metrics import NodeMetrics
from node.proposal_relay import REF_ROOTS_MIN, WAITING_PER_PEER, ProposalRelay, compact_segments
from proof.chain import GENESIS_PARENT, BlockHeader, VoteKind
from storage.db import Store
from storage.merkle_log import MerkleLog

POOL_BYTES = 1 << 24


def random_roots(count: int) -> bytes:
    return os.urandom(32 * count)


def proposal_of(roots: bytes, view: int = 1) -> Proposal:
    header = BlockHeader(
        chain_id=b"c" * 32, height=1, view=view, parent=GENESIS_PARENT, timestamp_ms=1, proposer=1,
        log_size=len(roots) // 32, log_root=b"r" * 32, validator_set=b"v" * 32, anchors=(),
        body_hash=body_hash(roots),
    )
    vote = Vote(kind=VoteKind.NOTARIZE, view=view, block_hash=header.hash, signer=1, signature=b"s")
    return Proposal(block=Block(header=header, roots=roots), vote=vote)


class Validator:
    """The relay's world on one validator: a real mempool that tags roots with their batch."""

    def __init__(self, store: Store, pool_bytes: int = POOL_BYTES) -> None:
        self.mempool = Mempool(store, MerkleLog(store), roots_max=1_000_000)
        self.pool = BatchPool(pool_bytes)
        self.metrics = NodeMetrics()
        self.relay = ProposalRelay(self.pool, self.mempool.batch_of, self.metrics)

    def gossiped(self, payload: bytes) -> None:
        number = self.pool.reserve()
        self.mempool.admit(payload, 1, owner="peer:2", durable=False, classify=False, gossip_batch=number)
        self.pool.put(number, payload)

    def count(self, outcome: str) -> float:
        return self.metrics.compact_proposals.labels(outcome=outcome)._value.get()


def lacked_by_receiver(leader: Validator, receiver: Validator) -> tuple[bytes, Proposal, SegmentsRequest]:
    """A batch only the leader holds, its proposal, and the request the receiver answers it with."""
    batch = random_roots(100)
    leader.gossiped(batch)
    proposal = proposal_of(batch)
    request = receiver.relay.incoming(0, leader.relay.outgoing(proposal))
    assert isinstance(request, SegmentsRequest)
    return batch, proposal, request


@pytest.fixture
def stores(tmp_path):
    with Store(tmp_path / "leader") as leader, Store(tmp_path / "receiver") as receiver:
        yield leader, receiver


@pytest.fixture
def pair(stores):
    return Validator(stores[0]), Validator(stores[1])


def test_a_block_of_whole_batches_is_sent_as_one_reference_each_and_rebuilt_exactly(pair):
    leader, receiver = pair
    batches = [random_roots(1000) for _ in range(3)]
    for batch in batches:
        leader.gossiped(batch)
        receiver.gossiped(batch)
    proposal = proposal_of(b"".join(batches))
    compact = leader.relay.outgoing(proposal)
    assert isinstance(compact, CompactProposal)
    assert compact.segments == tuple(BatchRef(batch_digest(batch), 0, 1000) for batch in batches)
    assert len(compact.encode()) < len(proposal.encode()) // 50
    assert receiver.relay.incoming(2, compact) == proposal
    assert receiver.count("rebuilt") == 1


def test_runs_that_start_and_end_inside_batches_and_roots_from_no_batch_are_encoded_exactly(pair):
    leader, _ = pair
    first, second = random_roots(100), random_roots(100)
    leader.gossiped(first)
    leader.gossiped(second)
    stray = random_roots(3)
    leader.mempool.admit(stray, 1, owner="producer")
    roots = first[32 * 40 :] + stray + second[: 32 * 70]
    segments = compact_segments(roots, leader.mempool.batch_of, leader.pool)
    assert segments == (
        BatchRef(batch_digest(first), 40, 60), stray, BatchRef(batch_digest(second), 0, 70),
    )


def test_a_run_shorter_than_the_minimum_goes_inline(pair):
    leader, _ = pair
    batch = random_roots(50)
    leader.gossiped(batch)
    short = batch[32 * 10 : 32 * (10 + REF_ROOTS_MIN - 1)]
    plain = random_roots(2)
    leader.mempool.admit(plain, 1, owner="producer")
    assert compact_segments(plain + short, leader.mempool.batch_of, leader.pool) == (plain + short,)


def test_roots_in_another_order_than_their_batch_still_round_trip(pair):
    leader, receiver = pair
    batch = random_roots(64)
    leader.gossiped(batch)
    receiver.gossiped(batch)
    roots = b"".join(batch[i : i + 32 * 8] for i in reversed(range(0, len(batch), 32 * 8)))
    compact = leader.relay.outgoing(proposal_of(roots))
    assert isinstance(compact, CompactProposal)
    assert receiver.relay.incoming(2, compact) == proposal_of(roots)


def test_a_block_whose_batches_are_gone_is_sent_whole(stores):
    leader = Validator(stores[0], pool_bytes=32 * 150)
    old, new = random_roots(100), random_roots(100)
    leader.gossiped(old)
    leader.gossiped(new)
    assert leader.pool.by_digest(batch_digest(old)) is None
    proposal = proposal_of(old)
    assert leader.relay.outgoing(proposal) is proposal


def test_a_receiver_lacking_a_batch_asks_the_leader_and_rebuilds_from_its_answer(pair):
    leader, receiver = pair
    held, lacked = random_roots(200), random_roots(200)
    for batch in (held, lacked):
        leader.gossiped(batch)
    receiver.gossiped(held)
    proposal = proposal_of(held + lacked)
    request = receiver.relay.incoming(0, leader.relay.outgoing(proposal))
    assert request == SegmentsRequest(block_hash=proposal.block.hash, indices=(1,))
    answer = leader.relay.answer(3, request)
    assert answer is not None and answer.roots == (lacked,)
    assert receiver.relay.on_response(0, answer) == proposal
    assert receiver.count("fetched") == 1
    assert receiver.relay.waiting() == 0


def test_gossip_that_arrives_after_the_proposal_completes_it(pair):
    leader, receiver = pair
    batch, proposal, _ = lacked_by_receiver(leader, receiver)
    receiver.gossiped(batch)
    assert receiver.relay.on_batch() == [(0, proposal)]
    assert receiver.relay.waiting() == 0


def test_an_answer_from_another_peer_than_the_sender_is_ignored(pair):
    leader, receiver = pair
    batch, proposal, request = lacked_by_receiver(leader, receiver)
    assert receiver.relay.on_response(3, SegmentsResponse(proposal.block.hash, request.indices, (batch,))) is None
    assert receiver.relay.waiting() == 1


def test_an_answer_of_the_wrong_length_drops_the_proposal(pair):
    leader, receiver = pair
    batch, proposal, request = lacked_by_receiver(leader, receiver)
    short = SegmentsResponse(proposal.block.hash, request.indices, (batch[:-32],))
    assert receiver.relay.on_response(0, short) is None
    assert receiver.relay.waiting() == 0
    assert receiver.count("abandoned") == 1


def test_roots_that_do_not_hash_to_the_header_are_dropped_not_handed_to_consensus(pair):
    leader, receiver = pair
    batch, proposal, request = lacked_by_receiver(leader, receiver)
    forged = SegmentsResponse(proposal.block.hash, request.indices, (random_roots(100),))
    assert receiver.relay.on_response(0, forged) is None
    assert receiver.count("mismatch") == 1


def test_a_reference_past_the_end_of_a_held_batch_is_fetched_not_trusted(pair):
    _, receiver = pair
    batch = random_roots(10)
    receiver.gossiped(batch)
    proposal = proposal_of(batch)
    overreach = CompactProposal(header=proposal.block.header, vote=proposal.vote,
                                segments=(BatchRef(batch_digest(batch), 5, 10),))
    assert receiver.relay.incoming(0, overreach) == SegmentsRequest(proposal.block.hash, (0,))


def test_a_sender_whose_proposals_cannot_be_rebuilt_crowds_out_only_its_own(pair):
    leader, receiver = pair
    honest = proposal_of(random_roots(10), view=1)
    leader.gossiped(honest.block.roots)
    assert isinstance(receiver.relay.incoming(0, leader.relay.outgoing(honest)), SegmentsRequest)
    spam = []
    for view in range(2, WAITING_PER_PEER + 4):
        batch = random_roots(10)
        leader.gossiped(batch)
        proposal = proposal_of(batch, view=view)
        spam.append(proposal)
        assert isinstance(receiver.relay.incoming(3, leader.relay.outgoing(proposal)), SegmentsRequest)
    assert receiver.relay.waiting() == 1 + WAITING_PER_PEER
    assert receiver.count("abandoned") == len(spam) - WAITING_PER_PEER
    first = spam[0]
    assert receiver.relay.on_response(3, SegmentsResponse(first.block.hash, (0,), (first.block.roots,))) is None
    answer = SegmentsResponse(honest.block.hash, (0,), (honest.block.roots,))
    assert receiver.relay.on_response(0, answer) == honest


def test_the_same_block_from_a_second_sender_waits_apart_and_either_completes_it(pair):
    leader, receiver = pair
    batch = random_roots(10)
    leader.gossiped(batch)
    proposal = proposal_of(batch)
    compact = leader.relay.outgoing(proposal)
    assert isinstance(receiver.relay.incoming(3, compact), SegmentsRequest)
    assert isinstance(receiver.relay.incoming(0, compact), SegmentsRequest)
    assert receiver.relay.on_response(0, SegmentsResponse(proposal.block.hash, (0,), (batch,))) == proposal
    assert receiver.relay.waiting() == 0


def test_the_leader_answers_each_receiver_once_per_proposal(pair):
    leader, _ = pair
    batch = random_roots(100)
    leader.gossiped(batch)
    proposal = proposal_of(batch)
    leader.relay.outgoing(proposal)
    request = SegmentsRequest(proposal.block.hash, (0,))
    assert leader.relay.answer(1, request) is not None
    assert leader.relay.answer(1, request) is None
    assert leader.relay.answer(2, request) is not None


def test_the_leader_answers_only_for_its_own_proposals_and_only_for_references(pair):
    leader, _ = pair
    batch = random_roots(100)
    leader.gossiped(batch)
    plain = random_roots(1)
    leader.mempool.admit(plain, 1, owner="producer")
    proposal = proposal_of(plain + batch)
    compact = leader.relay.outgoing(proposal)
    assert compact.segments[0] == plain
    assert leader.relay.answer(1, SegmentsRequest(b"x" * 32, (1,))) is None
    assert leader.relay.answer(1, SegmentsRequest(proposal.block.hash, (0,))) is None
    assert leader.relay.answer(1, SegmentsRequest(proposal.block.hash, (2,))) is None
    assert leader.relay.answer(1, SegmentsRequest(proposal.block.hash, (1,))).roots == (batch,)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.data())
def test_no_sequence_of_peer_input_makes_the_relay_raise_outgrow_its_bounds_or_deliver_a_forgery(stores, data):
    """A receiver fed any mix of compact proposals (true, forged, or naming batches it lacks),
    answers from any peer (right, short, forged) and gossip hands to the core only proposals
    whose roots are the ones their header commits to, and keeps at most its bound waiting."""
    leader = Validator(stores[0])
    receiver = Validator(stores[1], pool_bytes=32 * 2_000)
    batches = [random_roots(data.draw(st.integers(min_value=1, max_value=300))) for _ in range(6)]
    for batch in batches:
        leader.gossiped(batch)
    delivered: list[Proposal] = []
    for step in range(data.draw(st.integers(min_value=1, max_value=25))):
        peer = data.draw(st.integers(min_value=0, max_value=3))
        action = data.draw(st.sampled_from(["proposal", "forged", "answer", "gossip"]))
        if action in ("proposal", "forged"):
            picked = data.draw(st.lists(st.sampled_from(batches), min_size=1, max_size=3, unique_by=id))
            proposal = proposal_of(b"".join(picked), view=step + 1)
            compact = leader.relay.outgoing(proposal)
            if action == "forged" and isinstance(compact, CompactProposal):
                other = proposal_of(random_roots(5), view=step + 1)
                compact = CompactProposal(header=other.block.header, vote=other.vote, segments=compact.segments)
            if isinstance(compact, CompactProposal):
                outcome = receiver.relay.incoming(peer, compact)
                if isinstance(outcome, Proposal):
                    delivered.append(outcome)
        elif action == "answer" and receiver.relay._waiting:
            (asker, block_hash), waiting = data.draw(st.sampled_from(list(receiver.relay._waiting.items())))
            indices = tuple(sorted(waiting.missing))
            honest = leader.relay.answer(asker + 10 * step + 100, SegmentsRequest(block_hash, indices))
            runs = honest.roots if honest is not None and data.draw(st.booleans()) else tuple(
                random_roots(data.draw(st.integers(min_value=1, max_value=3))) for _ in indices)
            outcome = receiver.relay.on_response(data.draw(st.sampled_from([asker, (asker + 1) % 4])),
                                                 SegmentsResponse(block_hash, indices, runs))
            if outcome is not None:
                delivered.append(outcome)
        elif action == "gossip":
            receiver.gossiped(data.draw(st.sampled_from(batches)))
            delivered.extend(proposal for _, proposal in receiver.relay.on_batch())
        senders = [key[0] for key in receiver.relay._waiting]
        assert all(senders.count(sender) <= WAITING_PER_PEER for sender in senders)
    event("some proposal delivered" if delivered else "nothing delivered")
    event("some proposal abandoned" if receiver.count("abandoned") else "nothing abandoned")
    for proposal in delivered:
        assert body_hash(proposal.block.roots) == proposal.block.header.body_hash
        assert proposal.vote.block_hash == proposal.block.hash


def test_a_compact_proposal_of_more_roots_than_a_block_may_hold_is_dropped_before_anything_is_held(stores):
    receiver = Validator(stores[1])
    receiver.relay.roots_max = 100
    proposal = proposal_of(random_roots(101))
    compact = CompactProposal(header=proposal.block.header, vote=proposal.vote,
                              segments=(BatchRef(b"d" * 32, 0, 101),))
    assert receiver.relay.incoming(0, compact) is None
    assert receiver.relay.waiting() == 0
    assert receiver.count("mismatch") == 1
