"""The gossip batches a validator sent or received, by digest: what compact proposals refer to.

A *batch* is the payload of one gossip frame, the roots of one submission (or of one
frame's share of it). Every validator holds the batches it gossiped or was gossiped, so
that a leader's proposal can name a run of roots as ``(digest, start, count)`` instead of
carrying them again (node.proposal_relay). The mempool notes, per root, the *number* of
the batch it first came in; numbers are this process's own, digests are what crosses
the wire.

Bounded by bytes, oldest batch out first: a batch outlives its roots' time in the
mempool, or is gone, in which case a leader sends those roots inline and a receiver
fetches them. Dropping a batch loses nothing but bandwidth.
"""

from __future__ import annotations

import collections

from proof.hashing import TAG_GOSSIP_BATCH, tagged_hash


def batch_digest(payload: bytes) -> bytes:
    """The name of a batch on the wire."""
    return tagged_hash(TAG_GOSSIP_BATCH, payload)


class BatchPool:
    """Batches by number and by digest, at most ``bytes_max`` of them."""

    def __init__(self, bytes_max: int) -> None:
        self.bytes_max = bytes_max
        self.bytes_held = 0
        self._next = 1
        self._by_number: collections.OrderedDict[int, tuple[bytes, bytes]] = collections.OrderedDict()
        """number -> (digest, payload), oldest first."""
        self._by_digest: dict[bytes, int] = {}

    def __len__(self) -> int:
        return len(self._by_number)

    def reserve(self) -> int:
        """A fresh batch number (never 0: the mempool's "no batch"), to tag roots with before
        the batch itself is :meth:`put` (or never is, when gossip was cut short)."""
        number = self._next
        self._next += 1
        return number

    def put(self, number: int, payload: bytes) -> bytes:
        """Hold ``payload`` as batch ``number``; returns its digest. The same bytes gossiped again
        (by another validator) are held under both numbers; the digest names the newer."""
        digest = batch_digest(payload)
        if len(payload) > self.bytes_max:
            return digest
        self._by_number[number] = (digest, payload)
        self._by_digest[digest] = number
        self.bytes_held += len(payload)
        while self.bytes_held > self.bytes_max:
            old_number, (old_digest, old_payload) = self._by_number.popitem(last=False)
            self.bytes_held -= len(old_payload)
            if self._by_digest.get(old_digest) == old_number:
                del self._by_digest[old_digest]
        return digest

    def by_number(self, number: int) -> tuple[bytes, bytes] | None:
        """``(digest, payload)`` of batch ``number``, or None (never held, or dropped)."""
        return self._by_number.get(number)

    def by_digest(self, digest: bytes) -> bytes | None:
        """The payload of the batch named ``digest``, or None."""
        number = self._by_digest.get(digest)
        if number is None:
            return None
        entry = self._by_number.get(number)
        return None if entry is None else entry[1]
