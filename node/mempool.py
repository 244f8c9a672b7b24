"""Roots accepted by this node but not yet finalized: durable before acknowledged.

A submitted root is written to LevelDB with a synced batch *before* the HTTP
receipt goes out, so an acknowledged root survives kill -9 and power loss. The
in-memory index is rebuilt from the store at start. Roots leave the mempool in the
same atomic batch that appends their finalized block to the log, so a root is always
in exactly one of the two.

Every root has an *owner*: the submitter (token name) that posted it here, or
``peer:<index>`` for a root a validator gossiped (token names cannot contain ``:``).
Two rules keep one owner from crowding out the others (issue 14, finding 4):

- **Share.** No owner holds more than ``share_roots_max`` waiting roots; past it a
  submission is refused with :class:`ShareExceeded` (the API answers 429), while the
  others are admitted as long as the whole mempool has room.
- **Fair blocks.** :meth:`Mempool.take` splits a block evenly between the owners that
  have roots waiting, oldest first within each, and gives room one owner cannot use to
  the others. A backlog of N roots from one token therefore delays nobody else's root
  by N / block_roots_max blocks: it only shares each block.

Durable or not. A root a producer submitted here is *durable*: its entry is written
(synced) before its receipt goes out, and deleted in its finalization batch. A root a
peer gossiped is held in memory only: the peer that acknowledged it holds it synced,
so writing it again here (and deleting it again at finalization) would double every
validator's writes for nothing. A submission of a root that is waiting here as gossip
makes it durable. After a restart only the durable roots are back.

Roots travel as one ``bytes`` of n*32 concatenated digests. In memory each root costs
one dict entry (its value packs the arrival time, the number of the gossip batch it came
in (node.batch_pool), the durable bit and the owner's number; one value object is shared
by all the roots of an admission) and one slot in its owner's queue.
"""

from __future__ import annotations

import collections
import itertools
import struct
from collections.abc import Container, Iterator, Sequence
from dataclasses import dataclass

from proof.errors import PantheonError
from storage import keys
from storage.db import BatchWriter, Store
from storage.logged_filter import LoggedRoots
from storage.merkle_log import MerkleLog

ROOT_SIZE = 32
_STAMP = struct.Struct(">Q")
"""A stored entry: the arrival time in ms, then the owner's name in UTF-8 (empty in entries
written before owners were kept: they count as one owner, ``""``)."""
OWNER_BITS = 32
_OWNER_MASK = (1 << OWNER_BITS) - 1
_DURABLE = 1 << OWNER_BITS
BATCH_BITS = 48
_BATCH_SHIFT = OWNER_BITS + 1
_BATCH_MASK = (1 << BATCH_BITS) - 1
_STAMP_SHIFT = _BATCH_SHIFT + BATCH_BITS
QUEUE_SLACK_ROOTS = 1024
"""An owner's queue is rebuilt when it holds this many more finalized (stale) roots than
twice its waiting ones: its memory stays within about twice what the owner holds."""


class MempoolFull(PantheonError):
    """The mempool holds its configured maximum; the submitter should retry later."""


class ShareExceeded(PantheonError):
    """One owner already holds its share of the mempool; it should retry once its roots are in blocks."""

    def __init__(self, message: str, owner: str) -> None:
        super().__init__(message)
        self.owner = owner


@dataclass(frozen=True)
class Admission:
    """What happened to each root of one submission, positionally.

    ``new``: stored now; ``pending``: already waiting here; ``logged``: already in
    the log (its index in ``indices``; -1 for the others). ``to_persist``: the roots this
    admission makes durable (the new ones, and those that waited here as gossip), and
    ``entry`` the value their records hold.
    """

    states: tuple[str, ...]
    indices: tuple[int, ...]
    new_roots: bytes
    to_persist: bytes = b""
    entry: bytes = b""


def _classify(split: list[bytes], fresh: Container[bytes], logged: dict[bytes, int]) -> tuple[tuple[str, ...], tuple[int, ...]]:
    """Each root's state in submission order: the first copy of a fresh root is ``new``, a
    later copy (or a root already waiting) ``pending``, a logged one ``logged`` with its index."""
    states: list[str] = []
    indices: list[int] = []
    seen: set[bytes] = set()
    for root in split:
        index = logged.get(root)
        if index is not None:
            states.append("logged")
            indices.append(index)
        elif root in fresh and root not in seen:
            seen.add(root)
            states.append("new")
            indices.append(-1)
        else:
            states.append("pending")
            indices.append(-1)
    return tuple(states), tuple(indices)


def split_roots(data: bytes | list[bytes]) -> list[bytes]:
    """``n * 32`` bytes as a list of roots (a list is taken as already split: a node splits a
    finalized run once, so that each root's bytes object, and the hash Python caches in it,
    serves every lookup that follows)."""
    if isinstance(data, list):
        return data
    if len(data) % ROOT_SIZE:
        raise ValueError(f"roots must be a multiple of {ROOT_SIZE} bytes, got {len(data)}")
    return [data[i : i + ROOT_SIZE] for i in range(0, len(data), ROOT_SIZE)]


class Mempool:
    def __init__(self, store: Store, log: MerkleLog | LoggedRoots, *, roots_max: int, share_roots_max: int | None = None) -> None:
        """``share_roots_max``: most roots one owner may hold (None: ``roots_max``, no share)."""
        self._store = store
        self._log = log if isinstance(log, LoggedRoots) else LoggedRoots(log)
        """The log's index, with the node's filter in front (a bare MerkleLog: every lookup a read)."""
        self.roots_max = roots_max
        self.share_roots_max = roots_max if share_roots_max is None else share_roots_max
        self._pending: dict[bytes, int] = {}
        """root -> arrival ms << (OWNER_BITS + 1) | durable bit << OWNER_BITS | owner number;
        insertion order is arrival order."""
        self._owner_names: list[str] = []
        self._owner_numbers: dict[str, int] = {}
        self._held: collections.Counter[int] = collections.Counter()
        self._queues: dict[int, collections.deque[bytes]] = {}
        """owner number -> its roots in arrival order, finalized ones dropped lazily."""
        stored: list[tuple[int, bytes, str]] = []
        logged = []
        for key, value in store.iterate(keys.MEMPOOL):
            root = key[len(keys.MEMPOOL) :]
            if log.index_of(root) is None:
                stored.append((_STAMP.unpack_from(value)[0], root, value[_STAMP.size :].decode("utf-8", "replace")))
            else:
                logged.append(key)
        for received_at_ms, root, owner in sorted(stored):
            self._add_stored(root, received_at_ms, self._number_of(owner))
        if logged:
            with store.batch(sync=True) as batch:
                for key in logged:
                    batch.delete(key)

    def __len__(self) -> int:
        return len(self._pending)

    def __contains__(self, root: bytes) -> bool:
        return root in self._pending

    def held_by(self, owner: str) -> int:
        """Roots ``owner`` has waiting here."""
        number = self._owner_numbers.get(owner)
        return 0 if number is None else self._held[number]

    def room_for(self, owner: str) -> int:
        """New roots ``owner`` could add now: within its share and within the whole bound."""
        return max(0, min(self.share_roots_max - self.held_by(owner), self.roots_max - len(self._pending)))

    def admit(
        self, roots: bytes, received_at_ms: int, *, owner: str = "", durable: bool = True, write: bool = True,
        classify: bool = True, gossip_batch: int = 0,
    ) -> Admission:
        """Take every root that is new, as ``owner``'s; classify the rest. All or nothing:
        :class:`MempoolFull` or :class:`ShareExceeded` leave the mempool as it was.

        ``durable`` (a producer's submission): with ``write``, durable when this returns
        (what a receipt promises); without, the caller writes ``to_persist`` with
        :meth:`stage` in a synced batch of its own (one for many submissions: a group
        commit) and gives the receipt only after that batch, or calls :meth:`abandon`.
        Not ``durable`` (roots a peer gossiped): held in memory only. Without ``classify``
        (gossip, which sends no receipts) ``states`` and ``indices`` are left empty. ``gossip_batch``:
        the number of the gossip batch the new roots came in (0: none), for :meth:`batch_of`.

        Per root this is a few C-level set and dict operations; only roots the log's filter
        cannot rule out cost a LevelDB read (storage.logged_filter).
        """
        split = split_roots(roots)
        pending = self._pending
        fresh = dict.fromkeys(itertools.filterfalse(pending.__contains__, split))
        logged: dict[bytes, int] = {}
        for root in self._log.maybe_logged(list(fresh)):
            index = self._log.index_of(root)
            if index is not None:
                logged[root] = index
                del fresh[root]
        if len(pending) + len(fresh) > self.roots_max:
            raise MempoolFull(
                f"mempool holds {len(pending)} of {self.roots_max} roots; "
                f"{len(fresh)} more do not fit"
            )
        held = self.held_by(owner)
        if fresh and held + len(fresh) > self.share_roots_max:
            raise ShareExceeded(
                f"{owner!r} holds {held} roots waiting here, its share of {self.share_roots_max} "
                f"(of {self.roots_max}); {len(fresh)} more do not fit until some are in blocks",
                owner,
            )
        states: tuple[str, ...] = ()
        indices: tuple[int, ...] = ()
        # Every root new here, none repeated (nearly every submission): nothing to sort out per root.
        all_new = len(fresh) == len(split)
        if classify:
            states, indices = (("new",) * len(split), (-1,) * len(split)) if all_new else _classify(split, fresh, logged)
        volatile = [] if all_new or not durable else [
            root for root in split if not pending.get(root, _DURABLE) & _DURABLE
        ]
        new_roots = b"".join(fresh)
        admission = Admission(states, indices, new_roots)
        if durable and (fresh or volatile):
            admission = Admission(states, indices, new_roots, new_roots + b"".join(dict.fromkeys(volatile)),
                                  _STAMP.pack(received_at_ms) + owner.encode("utf-8"))
            if write:
                with self._store.batch(sync=True) as batch:
                    self.stage(admission, batch)
        if fresh:
            number = self._number_of(owner)
            value = (received_at_ms << _STAMP_SHIFT | (gossip_batch & _BATCH_MASK) << _BATCH_SHIFT
                     | (_DURABLE if durable else 0) | number)
            pending.update(dict.fromkeys(fresh, value))
            self._held[number] += len(fresh)
            self._queues[number].extend(fresh)
        for root in volatile:
            pending[root] |= _DURABLE
        return admission

    def stage(self, admission: Admission, batch: BatchWriter) -> None:
        """Put the records that make ``admission``'s roots durable into ``batch``."""
        data, entry = admission.to_persist, admission.entry
        for offset in range(0, len(data), ROOT_SIZE):
            batch.put(keys.MEMPOOL + data[offset : offset + ROOT_SIZE], entry)

    def abandon(self, admission: Admission) -> None:
        """The batch holding ``admission``'s records failed: its roots stay waiting, as gossip
        does (nothing durable was promised for them)."""
        pending = self._pending
        for root in split_roots(admission.to_persist):
            value = pending.get(root)
            if value is not None:
                pending[root] = value & ~_DURABLE

    def not_waiting(self, roots: frozenset[bytes]) -> set[bytes]:
        """Those of ``roots`` that do not wait here (one C-level set operation, not a loop)."""
        return roots.difference(self._pending)

    def batch_of(self, root: bytes) -> int:
        """The number of the gossip batch ``root`` first came in here (0: none, or not waiting)."""
        return self._pending.get(root, 0) >> _BATCH_SHIFT & _BATCH_MASK

    def is_durable(self, root: bytes) -> bool:
        """Whether ``root`` waits here with its record written (or being written)."""
        return bool(self._pending.get(root, 0) & _DURABLE)

    def take(self, roots_max: int, exclude: Sequence[Container[bytes]] = ()) -> bytes:
        """Up to ``roots_max`` roots in none of ``exclude`` (the roots of blocks in flight),
        split evenly between the owners with roots waiting, oldest first within each; what one
        owner cannot fill goes to the others. Owners take turns in order of their oldest root."""
        cursors: dict[int, Iterator[bytes]] = {
            number: self._waiting_in(queue, exclude)
            for number, queue in sorted(self._queues.items(), key=lambda item: self._head_stamp(item[1]))
            if self._held[number]
        }
        chosen: list[bytes] = []
        while cursors and len(chosen) < roots_max:
            turn = max(1, (roots_max - len(chosen)) // len(cursors))
            for number, cursor in list(cursors.items()):
                want = min(turn, roots_max - len(chosen))
                got = [root for _, root in zip(range(want), cursor)]
                chosen.extend(got)
                if len(got) < want:
                    del cursors[number]
                if len(chosen) >= roots_max:
                    break
        return b"".join(chosen)

    def _waiting_in(self, queue: collections.deque[bytes], exclude: Sequence[Container[bytes]]) -> Iterator[bytes]:
        """The roots of ``queue`` still waiting and in none of ``exclude``: a chain of filters
        that calls each container's ``__contains__`` from C, not a Python test per root."""
        cursor: Iterator[bytes] = filter(self._pending.__contains__, queue)
        for held in exclude:
            cursor = itertools.filterfalse(held.__contains__, cursor)
        return cursor

    def remove(self, roots: bytes | list[bytes], batch: BatchWriter) -> None:
        """Delete the records of finalized roots inside the caller's finalization batch (only
        durable roots have one)."""
        split = split_roots(roots)
        values = map(self._pending.get, split, itertools.repeat(0, len(split)))
        for root in itertools.compress(split, map(_DURABLE.__and__, values)):
            batch.delete(keys.MEMPOOL + root)

    def forget(self, roots: bytes | list[bytes]) -> None:
        """Drop finalized roots from memory after their batch was written."""
        split = split_roots(roots)
        # Values are never negative: -1 marks the roots that were not waiting (filtered from C).
        values = filter((-1).__ne__, map(self._pending.pop, split, itertools.repeat(-1, len(split))))
        owners = collections.Counter(map(_OWNER_MASK.__and__, values))
        for number, count in owners.items():
            self._held[number] -= count
            self._tidy(number)

    def oldest_received_at_ms(self) -> int | None:
        value = next(iter(self._pending.values()), None)
        return None if value is None else value >> _STAMP_SHIFT

    def _number_of(self, owner: str) -> int:
        """The owner's number: bounded by the tokens file and the validator set, plus the owners
        of entries found at start."""
        number = self._owner_numbers.get(owner)
        if number is None:
            number = self._owner_numbers[owner] = len(self._owner_names)
            self._owner_names.append(owner)
            self._queues[number] = collections.deque()
        return number

    def _add_stored(self, root: bytes, received_at_ms: int, number: int) -> None:
        """A root found in the store at start: durable by definition."""
        self._pending[root] = received_at_ms << _STAMP_SHIFT | _DURABLE | number
        self._held[number] += 1
        self._queues[number].append(root)

    def _head_stamp(self, queue: collections.deque[bytes]) -> int:
        return self._pending.get(queue[0], 0) if queue else 0

    def _tidy(self, number: int) -> None:
        """Drop finalized roots from the head of an owner's queue; rebuild it when finalized
        roots elsewhere in it (blocks need not take an owner's roots in its order) pile up."""
        queue = self._queues[number]
        # How many finalized roots lead the queue, counted in C; then dropped.
        finalized = next(itertools.compress(itertools.count(), map(self._pending.__contains__, queue)), len(queue))
        popleft = queue.popleft
        for _ in itertools.repeat(None, finalized):
            popleft()
        if len(queue) > 2 * self._held[number] + QUEUE_SLACK_ROOTS:
            self._queues[number] = collections.deque(root for root in queue if root in self._pending)
