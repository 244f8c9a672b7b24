"""The audit kernel: everything an auditor needs to check a Pantheon proof offline.

Pure functions only: no network, no trio, no plyvel. Depends on ``cbor2`` and
``cryptography`` alone, so an auditor can install and read just this package.
"""

from proof.errors import DecodeError, EncodeError, PantheonError, ProofError, SignatureError

__all__ = [
    "DecodeError",
    "EncodeError",
    "PantheonError",
    "ProofError",
    "SignatureError",
]
