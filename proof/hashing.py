"""Domain-separated SHA-256.

Every hash Pantheon signs or links by is a *tagged* hash in the style of BIP-340:
``SHA-256(SHA-256(tag) || SHA-256(tag) || message)``. Two values of different kinds
(a block header and a vote, say) can then never hash to the same digest, even if
their encodings happened to coincide. The tag prefix is one 64-byte block, so its
compression is done once per tag and reused (``hashlib`` object copy).

The Merkle log is the one exception: it uses RFC 9162 leaf/node hashing
(``0x00``/``0x01`` prefixes, see :mod:`proof.merkle`) so that any RFC 9162 verifier
accepts Pantheon's proofs.
"""

from __future__ import annotations

import hashlib
from functools import lru_cache

HASH_SIZE = 32

# Tags in use. Versioned so that a future format change gets new digests.
TAG_GENESIS = "pantheon/genesis/v1"
TAG_BLOCK_HEADER = "pantheon/block-header/v1"
TAG_BLOCK_BODY = "pantheon/block-body/v1"
TAG_VOTE = "pantheon/vote/v1"
TAG_VALIDATOR_SET = "pantheon/validator-set/v1"
TAG_HANDSHAKE = "pantheon/p2p-handshake/v1"
TAG_CHECKPOINT = "pantheon/checkpoint/v1"
TAG_GOSSIP_BATCH = "pantheon/gossip-batch/v1"
"""Names a gossip batch between validators (node.batch_pool); it is in no proof."""


@lru_cache(maxsize=64)
def _tag_prefix(tag: str) -> "hashlib._Hash":
    tag_digest = hashlib.sha256(tag.encode("utf-8")).digest()
    return hashlib.sha256(tag_digest + tag_digest)


def tagged_hash(tag: str, *parts: bytes) -> bytes:
    """SHA-256 of ``parts`` (concatenated) under the domain ``tag``."""
    h = _tag_prefix(tag).copy()
    for part in parts:
        h.update(part)
    return h.digest()


def sha256(data: bytes) -> bytes:
    """Plain SHA-256, for the places a standard fixes it (RFC 9162, Bitcoin)."""
    return hashlib.sha256(data).digest()


def sha256d(data: bytes) -> bytes:
    """Bitcoin's double SHA-256."""
    return hashlib.sha256(hashlib.sha256(data).digest()).digest()
