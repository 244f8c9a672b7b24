"""Exception types of the audit kernel.

Every error a verifier can raise names what was wrong, so that an auditor (or an
operator reading a log line) can act on it without reading the code.
"""

from __future__ import annotations


class PantheonError(Exception):
    """Base class of every error Pantheon raises on purpose."""


class DecodeError(PantheonError, ValueError):
    """Bytes that are not a valid canonical encoding of the expected value."""


class EncodeError(PantheonError, ValueError):
    """A value that has no canonical encoding (unsupported type, out of range)."""


class ProofError(PantheonError):
    """A proof that does not hold. The message says which check failed."""


class SignatureError(PantheonError):
    """A signature that does not verify, or a key or signature of the wrong size."""
