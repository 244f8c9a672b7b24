"""The core verifies each signature once: a certificate's signatures it holds as votes, and
votes whose signature it holds in a certificate, are not checked again; anything else is."""

from __future__ import annotations

import dataclasses

from proof.chain import VoteKind

from consensus.core import Core
from consensus.messages import CertificateMessage
from consensus.sim.traffic import CountingVerifier
from tests.test_consensus_harness import Cast, received

NULLIFY = VoteKind.NULLIFY


def _core(cast: Cast):
    verifier = CountingVerifier(cast.verifier)
    core = Core(genesis=cast.genesis, signer=cast.signers[3], verifier=verifier)
    return core, verifier


def test_a_certificate_checks_only_the_signatures_not_already_held_as_votes() -> None:
    cast = Cast()
    core, verifier = _core(cast)
    core.handle(received(0, cast.vote(0, NULLIFY, 0)), 0)
    core.handle(received(1, cast.vote(1, NULLIFY, 0)), 0)
    core.handle(received(2, CertificateMessage(cast.certificate(NULLIFY, 0, signers=(0, 1, 2)))), 0)
    assert (core.view, verifier.verifies, verifier.repeats) == (1, 3, 0)


def test_a_vote_arriving_after_its_certificate_is_recorded_without_a_second_check() -> None:
    cast = Cast()
    core, verifier = _core(cast)
    core.handle(received(2, CertificateMessage(cast.certificate(NULLIFY, 0, signers=(0, 1, 2)))), 0)
    core.handle(received(0, cast.vote(0, NULLIFY, 0)), 0)
    assert (verifier.verifies, verifier.repeats, core.footprint().votes) == (3, 0, 1)


def test_a_certificate_with_a_signature_other_than_the_held_vote_is_still_checked_and_refused() -> None:
    cast = Cast()
    core, _ = _core(cast)
    core.handle(received(0, cast.vote(0, NULLIFY, 0)), 0)
    cert = cast.certificate(NULLIFY, 0, signers=(0, 1, 2))
    forged = dataclasses.replace(cert, signatures=((0, bytes(len(cert.signatures[0][1]))), *cert.signatures[1:]))
    core.handle(received(2, CertificateMessage(forged)), 0)
    assert (core.view, core.counters["dropped_bad_certificate"]) == (0, 1)


def test_a_vote_with_a_signature_other_than_the_certificates_is_still_checked_and_dropped() -> None:
    cast = Cast()
    core, _ = _core(cast)
    core.handle(received(2, CertificateMessage(cast.certificate(NULLIFY, 0, signers=(0, 1, 2)))), 0)
    vote = cast.vote(0, NULLIFY, 0)
    core.handle(received(0, dataclasses.replace(vote, signature=bytes(len(vote.signature)))), 0)
    assert core.counters["dropped_bad_signature"] == 1
