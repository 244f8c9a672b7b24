"""Roots accepted by this node but not yet finalized: durable before acknowledged.

A submitted root is written to LevelDB with a synced batch *before* the HTTP
receipt goes out, so an acknowledged root survives kill -9 and power loss. The
in-memory index (insertion-ordered: oldest first into blocks) is rebuilt from the
store at start. Roots leave the mempool in the same atomic batch that appends
their finalized block to the log, so a root is always in exactly one of the two.

Roots travel as one ``bytes`` of n*32 concatenated digests: no per-root objects
beyond one dict entry.
"""

from __future__ import annotations

import struct
from collections.abc import Container
from dataclasses import dataclass

from proof.errors import PantheonError
from storage import keys
from storage.db import BatchWriter, Store
from storage.merkle_log import MerkleLog

ROOT_SIZE = 32
_ENTRY = struct.Struct(">Q")


class MempoolFull(PantheonError):
    """The mempool holds its configured maximum; the submitter should retry later."""


@dataclass(frozen=True)
class Admission:
    """What happened to each root of one submission, positionally.

    ``new``: stored now; ``pending``: already waiting here; ``logged``: already in
    the log (its index in ``indices``; -1 for the others).
    """

    states: tuple[str, ...]
    indices: tuple[int, ...]
    new_roots: bytes


def split_roots(data: bytes) -> list[bytes]:
    if len(data) % ROOT_SIZE:
        raise ValueError(f"roots must be a multiple of {ROOT_SIZE} bytes, got {len(data)}")
    return [data[i : i + ROOT_SIZE] for i in range(0, len(data), ROOT_SIZE)]


class Mempool:
    def __init__(self, store: Store, log: MerkleLog, *, roots_max: int) -> None:
        self._store = store
        self._log = log
        self.roots_max = roots_max
        self._pending: dict[bytes, int] = {}
        logged = []
        for key, value in store.iterate(keys.MEMPOOL):
            root = key[len(keys.MEMPOOL) :]
            if log.index_of(root) is None:
                self._pending[root] = _ENTRY.unpack(value)[0]
            else:
                logged.append(key)
        if logged:
            with store.batch(sync=True) as batch:
                for key in logged:
                    batch.delete(key)

    def __len__(self) -> int:
        return len(self._pending)

    def __contains__(self, root: bytes) -> bool:
        return root in self._pending

    def admit(self, roots: bytes, received_at_ms: int, *, sync: bool = True) -> Admission:
        """Store every root that is new; classify the rest.

        Durable when this returns with ``sync`` (what a receipt promises). Roots gossiped
        by a peer are admitted without: the peer that acknowledged them holds them synced.
        """
        states: list[str] = []
        indices: list[int] = []
        fresh: dict[bytes, None] = {}
        for root in split_roots(roots):
            if root in self._pending or root in fresh:
                states.append("pending")
                indices.append(-1)
                continue
            index = self._log.index_of(root)
            if index is not None:
                states.append("logged")
                indices.append(index)
                continue
            fresh[root] = None
            states.append("new")
            indices.append(-1)
        if len(self._pending) + len(fresh) > self.roots_max:
            raise MempoolFull(
                f"mempool holds {len(self._pending)} of {self.roots_max} roots; "
                f"{len(fresh)} more do not fit"
            )
        if fresh:
            stamp = _ENTRY.pack(received_at_ms)
            with self._store.batch(sync=sync) as batch:
                for root in fresh:
                    batch.put(keys.MEMPOOL + root, stamp)
            for root in fresh:
                self._pending[root] = received_at_ms
        return Admission(tuple(states), tuple(indices), b"".join(fresh))

    def take(self, roots_max: int, exclude: Container[bytes] = frozenset()) -> bytes:
        """Up to ``roots_max`` oldest roots not in ``exclude`` (roots already in flight)."""
        chosen = []
        for root in self._pending:
            if len(chosen) >= roots_max:
                break
            if root not in exclude:
                chosen.append(root)
        return b"".join(chosen)

    def remove(self, roots: bytes, batch: BatchWriter) -> None:
        """Delete finalized roots inside the caller's finalization batch."""
        for root in split_roots(roots):
            batch.delete(keys.MEMPOOL + root)

    def forget(self, roots: bytes) -> None:
        """Drop finalized roots from memory after their batch was written."""
        for root in split_roots(roots):
            self._pending.pop(root, None)

    def oldest_received_at_ms(self) -> int | None:
        return next(iter(self._pending.values()), None)
