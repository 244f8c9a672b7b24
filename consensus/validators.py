"""The validator set: who votes, who leads which view, how many make a quorum.

Fixed by the genesis in this version. Everything in the core that depends on
membership goes through this one type, so a later epoch change replaces it (one set
per epoch) without touching the rules.
"""

from __future__ import annotations

from proof.chain import Certificate, Genesis, verify_certificate_with
from proof.errors import ProofError

from consensus.block import leader
from consensus.crypto import Verifier
from consensus.messages import Vote


class ValidatorSet:
    def __init__(self, genesis: Genesis, *, quorum: int | None = None) -> None:
        """``quorum``: TEST ONLY, replaces 2f+1 (see CoreConfig.quorum_override)."""
        self.chain_id = genesis.hash
        self.keys = genesis.validators
        self.hash = genesis.validator_set_hash
        self.n = genesis.n
        self.f = genesis.f
        self.quorum = genesis.quorum if quorum is None else quorum

    def leader(self, view: int) -> int:
        """Round robin: view v is led by validator v mod n."""
        return leader(view, self.n)

    def is_member(self, index: int) -> bool:
        return 0 <= index < self.n

    def key(self, index: int) -> bytes:
        return self.keys[index]

    def vote_is_valid(self, vote: Vote, verifier: Verifier) -> bool:
        """A member signed exactly this vote on this chain."""
        return self.is_member(vote.signer) and verifier.verify(vote.signer, vote.message(self.chain_id), vote.signature)

    def verify_certificate(self, cert: Certificate, verifier: Verifier) -> None:
        """Raise ProofError unless a quorum of distinct members signed ``cert``."""
        verify_certificate_with(
            cert, chain_id=self.chain_id, validator_count=self.n, quorum=self.quorum, check=verifier.verify
        )

    def certificate_is_valid(self, cert: Certificate, verifier: Verifier) -> bool:
        try:
            self.verify_certificate(cert, verifier)
        except ProofError:
            return False
        return True
