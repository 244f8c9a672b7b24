"""The invariant checker flags hand-made violating histories, and passes a good one.

Each test fabricates the smallest history that breaks one invariant, with real blocks
and certificates signed by simulator keys, so the checker is proven to catch what a
run could produce.
"""

from __future__ import annotations

from dataclasses import replace

import pytest

from consensus.block import Block, build_block
from consensus.crypto import sim_validators
from consensus.sim.invariants import InvariantChecker, check_logs
from proof.chain import Certificate, FinalizationProof, Genesis, VoteKind, verify_finalization, vote_message
from proof.compact import CompactRange

N = 4
QUORUM = 3


@pytest.fixture(scope="module")
def world():
    signers, verifier, keys = sim_validators(N, salt=b"invariant-tests")
    genesis = Genesis(
        chain_name="pantheon-sim-test",
        validators=keys,
        created_at_ms=0,
        anchor_every_blocks=100,
        anchor_every_ms=600_000,
        anchor_final_depth=6,
    )
    index_of = {key: i for i, key in enumerate(keys)}

    def verify_sig(public_key: bytes, message: bytes, signature: bytes) -> bool:
        return verifier.verify(index_of[public_key], message, signature)

    def verify(block, certificate, descendants):
        proof = FinalizationProof(headers=tuple(descendants), certificate=certificate)
        verify_finalization(genesis, block.header, proof, verify_sig=verify_sig)

    return genesis, signers, verify


def _root(tag: int) -> bytes:
    return bytes([tag]) * 32


def _block(genesis, parent: Block | None, view: int, roots: bytes, log: CompactRange) -> Block:
    return build_block(
        genesis=genesis,
        view=view,
        parent=None if parent is None else parent.header,
        log=log,
        roots=roots,
        timestamp_ms=view + 1,
    )


def _finalize(signers, genesis, block: Block, signer_indices=(0, 1, 2)) -> Certificate:
    message = vote_message(genesis.hash, VoteKind.FINALIZE, block.header.view, block.hash)
    signatures = tuple((i, signers[i].sign(message)) for i in sorted(signer_indices))
    return Certificate(kind=VoteKind.FINALIZE, view=block.header.view, block_hash=block.hash, signatures=signatures)


def _chain(genesis, signers, roots_per_block: list[bytes]) -> list[tuple[Block, Certificate]]:
    entries = []
    log = CompactRange()
    parent = None
    for view, roots in enumerate(roots_per_block):
        block = _block(genesis, parent, view, roots, log)
        log.extend_roots(roots)
        entries.append((block, _finalize(signers, genesis, block)))
        parent = block
    return entries


def test_consistent_histories_pass(world):
    genesis, signers, verify = world
    chain = _chain(genesis, signers, [_root(1), _root(2) + _root(3), b""])
    assert check_logs({0: chain, 1: chain[:2], 2: chain[:1]}, verify_certificate=verify) == []


def test_two_blocks_at_one_height_break_agreement(world):
    genesis, signers, verify = world
    first = _chain(genesis, signers, [_root(1)])
    second = _chain(genesis, signers, [_root(2)])
    violations = check_logs({0: first, 1: second}, verify_certificate=verify)
    assert [v.invariant for v in violations] == ["agreement"]
    assert violations[0].node == 1


def test_certificate_below_quorum_is_flagged(world):
    genesis, signers, verify = world
    (block, _), = _chain(genesis, signers, [_root(1)])
    weak = _finalize(signers, genesis, block, signer_indices=(0, 3))
    violations = check_logs({0: [(block, weak)]}, verify_certificate=verify)
    assert [v.invariant for v in violations] == ["certificate"]
    assert "quorum" in violations[0].details


def test_forged_signature_is_flagged(world):
    genesis, signers, verify = world
    (block, cert), = _chain(genesis, signers, [_root(1)])
    index, signature = cert.signatures[1]
    forged = replace(cert, signatures=(cert.signatures[0], (index, bytes(32)), cert.signatures[2]))
    violations = check_logs({0: [(block, forged)]}, verify_certificate=verify)
    assert [v.invariant for v in violations] == ["certificate"]


def test_certificate_for_another_block_is_flagged(world):
    genesis, signers, verify = world
    (block, _), (other, other_cert) = _chain(genesis, signers, [_root(1), _root(2)])
    violations = check_logs({0: [(block, other_cert)]}, verify_certificate=verify)
    assert [v.invariant for v in violations] == ["certificate"]


def test_notarization_is_not_a_finalization(world):
    genesis, signers, verify = world
    (block, cert), = _chain(genesis, signers, [_root(1)])
    message = vote_message(genesis.hash, VoteKind.NOTARIZE, block.header.view, block.hash)
    notarization = replace(
        cert, kind=VoteKind.NOTARIZE, signatures=tuple((i, signers[i].sign(message)) for i in (0, 1, 2))
    )
    violations = check_logs({0: [(block, notarization)]}, verify_certificate=verify)
    assert [v.invariant for v in violations] == ["certificate"]


def test_ancestor_finalized_through_descendant_certificate_passes(world):
    genesis, signers, verify = world
    (first, _), (second, second_cert) = _chain(genesis, signers, [_root(1), _root(2)])
    history = [(first, second_cert, (second.header,)), (second, second_cert, ())]
    assert check_logs({0: history}, verify_certificate=verify) == []


def test_skipped_height_breaks_prefix(world):
    genesis, signers, verify = world
    chain = _chain(genesis, signers, [_root(1), _root(2)])
    violations = check_logs({0: chain[1:]}, verify_certificate=verify)
    assert [v.invariant for v in violations] == ["prefix"]


def test_wrong_parent_breaks_prefix(world):
    genesis, signers, verify = world
    chain_a = _chain(genesis, signers, [_root(1), _root(2)])
    chain_b = _chain(genesis, signers, [_root(3), _root(4)])
    # Height 2 of chain b on top of height 1 of chain a: heights line up, parents do not.
    violations = check_logs({0: [chain_a[0], chain_b[1]]}, verify_certificate=verify, enabled=["prefix"])
    assert [v.invariant for v in violations] == ["prefix"]
    assert "parent" in violations[0].details


def test_log_root_not_matching_roots_breaks_prefix(world):
    genesis, signers, verify = world
    (block, _), = _chain(genesis, signers, [_root(1)])
    lying = Block(replace(block.header, log_root=_root(9)), block.roots)
    violations = check_logs(
        {0: [(lying, _finalize(signers, genesis, lying))]}, verify_certificate=verify
    )
    assert [v.invariant for v in violations] == ["prefix"]
    assert "log" in violations[0].details


def test_root_finalized_twice_is_flagged(world):
    genesis, signers, verify = world
    chain = _chain(genesis, signers, [_root(1), _root(2) + _root(1)])
    violations = check_logs({0: chain}, verify_certificate=verify)
    assert [v.invariant for v in violations] == ["unique-roots"]


def _checker(verify, *, gst_ms: int = 0, bound_ms: int = 1_000) -> InvariantChecker:
    return InvariantChecker(honest={0, 1, 2}, verify_certificate=verify, gst_ms=gst_ms, progress_bound_ms=bound_ms)


def test_stall_after_gst_breaks_progress(world):
    _, _, verify = world
    checker = _checker(verify, gst_ms=500, bound_ms=1_000)
    checker.at_step(1, 1_400)
    checker.tick()
    assert checker.drain() == []
    checker.at_step(2, 1_501)
    checker.tick()
    assert [v.invariant for v in checker.drain()] == ["progress"]


def test_stall_before_gst_is_allowed(world):
    _, _, verify = world
    checker = _checker(verify, gst_ms=10_000, bound_ms=1_000)
    checker.at_step(1, 9_999)
    checker.tick()
    assert checker.drain() == []


def test_finalization_resets_the_progress_clock(world):
    genesis, signers, verify = world
    (block, cert), = _chain(genesis, signers, [_root(1)])
    checker = _checker(verify, gst_ms=0, bound_ms=1_000)
    checker.at_step(1, 900)
    checker.finalized(0, block, cert)
    checker.at_step(2, 1_800)
    checker.tick()
    assert checker.drain() == []


def test_honest_vote_for_invalid_block_is_flagged(world):
    _, _, verify = world
    checker = _checker(verify)
    checker.mark_invalid(_root(7))
    checker.vote_sent(3, "NOTARIZE", 4, _root(7))  # node 3 is not honest here
    assert checker.drain() == []
    checker.vote_sent(1, "NOTARIZE", 4, _root(7))
    assert [v.invariant for v in checker.drain()] == ["honest-votes"]


def test_evidence_against_honest_validator_is_flagged(world):
    _, _, verify = world
    checker = _checker(verify)
    checker.evidence(0, 3, "NOTARIZE votes in view 2")
    assert checker.drain() == []
    checker.evidence(0, 2, "NOTARIZE votes in view 2")
    assert [v.invariant for v in checker.drain()] == ["honest-evidence"]


def test_unknown_invariant_name_is_refused(world):
    _, _, verify = world
    with pytest.raises(ValueError, match="unknown invariant"):
        InvariantChecker(
            honest={0}, verify_certificate=verify, gst_ms=0, progress_bound_ms=1, enabled=["agreemnt"]
        )
