"""The audit kernel: everything an auditor needs to check a Pantheon proof offline.

Pure functions only: no network, no trio, no plyvel. Depends on ``cbor2`` and
``cryptography`` alone, so an auditor can install and read just this package.
"""

from proof.bundle import Claim, Policy, verify_bundle
from proof.errors import DecodeError, EncodeError, PantheonError, ProofError, SignatureError
from proof.merkle import leaf_hash, verify_consistency, verify_inclusion

__all__ = [
    "Claim",
    "DecodeError",
    "EncodeError",
    "PantheonError",
    "Policy",
    "ProofError",
    "SignatureError",
    "leaf_hash",
    "verify_bundle",
    "verify_consistency",
    "verify_inclusion",
]
