"""RFC 9162 Merkle tree hashing and proof verification.

Leaf hash = SHA-256(0x00 || data); interior node = SHA-256(0x01 || left || right),
exactly as RFC 9162 section 2.1.1, so that any RFC 6962/9162 verifier accepts
Pantheon's proofs and Pantheon accepts theirs.
"""

from __future__ import annotations

import hashlib

LEAF_PREFIX = b"\x00"
NODE_PREFIX = b"\x01"


def leaf_hash(data: bytes) -> bytes:
    """RFC 9162 hash of one log entry (for Pantheon: one 32-byte audit root)."""
    return hashlib.sha256(LEAF_PREFIX + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """RFC 9162 hash of an interior node from its two children's hashes."""
    return hashlib.sha256(NODE_PREFIX + left + right).digest()
