"""Several cores back to back: agreement under real signatures, crashes, drops and a silent leader."""

from __future__ import annotations

import random

from proof.chain import verify_finalization
from proof.mldsa import SigningKey

from consensus.actions import Persist
from consensus.core import CoreConfig
from tests.test_consensus_harness import Net, covered, votes_in


def assert_agreement(net: Net) -> None:
    """No two nodes finalized different blocks at one height."""
    by_height: dict[int, bytes] = {}
    for node in net.nodes:
        for item in node.finalized:
            assert by_height.setdefault(item.block.header.height, item.block.hash) == item.block.hash


def assert_votes_covered_by_persists(net: Net) -> None:
    """In every node's action history, each vote it sent is covered by the last Persist before it."""
    for node in net.nodes:
        persisted = None
        for action in node.actions:
            if isinstance(action, Persist):
                persisted = action.state
            for vote in votes_in([action]):
                assert persisted is not None and covered(persisted, vote), (vote, persisted)


def test_four_validators_with_real_ml_dsa_signatures_finalize_identical_blocks() -> None:
    keys = [SigningKey(bytes([0xA0 + index]) * 32) for index in range(4)]
    net = Net(signing_keys=keys)
    net.start()
    net.run_until(lambda: min(net.heights()) >= 3)
    assert_agreement(net)
    for node in net.nodes:
        for item in node.finalized:
            verify_finalization(net.genesis, item.block.header, item.proof)


def test_a_silent_leader_costs_one_timeout_and_the_others_keep_finalizing() -> None:
    net = Net(config=CoreConfig(base_timeout_ms=1_000))
    net.nodes[1].up = False
    net.start()
    net.run_until(lambda: min(net.heights()[i] for i in (0, 2, 3)) >= 6)
    assert_agreement(net)
    leaders = {item.block.header.proposer for item in net.nodes[0].finalized}
    assert 1 not in leaders
    assert net.now_ms > 0


def test_random_drops_and_restarts_never_break_agreement_or_the_persist_before_vote_rule() -> None:
    for seed in range(10):
        rng = random.Random(seed)
        net = Net(config=CoreConfig(base_timeout_ms=200, max_timeout_ms=1_600))
        net.drop = lambda sender, to, message: net.now_ms < 4_000 and rng.random() < 0.3  # noqa: B023
        net.start()
        for _ in range(3):
            for _ in range(400):
                if not net.step():
                    break
            victim = rng.randrange(4)
            net.restart(victim)
        goal = max(net.heights()) + 5
        net.run_until(lambda: min(net.heights()) >= goal, steps_max=60_000)
        assert_agreement(net)
        assert_votes_covered_by_persists(net)
        assert all(not node.evidence for node in net.nodes), f"seed {seed}"
