"""Roots accepted by this node but not yet finalized: durable before acknowledged.

A submitted root is written to LevelDB with a synced batch *before* the HTTP
receipt goes out, so an acknowledged root survives kill -9 and power loss. The
in-memory index is rebuilt from the store at start. A root is always in the log, or
in the mempool, or both for a moment: a submission's record is deleted once every
root it holds is logged, in the next finalization batch after that (or at start).

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

Durable or not. A root a producer submitted here is *durable*: the record of its
submission is written (synced) before its receipt goes out. A root a peer gossiped is
held in memory only: the peer that acknowledged it holds it synced, so writing it
again here would double every validator's writes for nothing. A submission of a root
that is waiting here as gossip makes it durable: the root moves to the submission.
After a restart only the durable roots are back.

The unit is the *arrival*: the roots one admission added (a producer's submission or
one gossip frame). Each root maps to its arrival, owners queue arrivals, and a
durable arrival is one LevelDB record (``keys.MEMPOOL_ARRIVAL``), not one per root:
finalizing a block costs one dict pop per root and a few steps per arrival, and
writing a submission one record. Roots travel as one ``bytes`` of n*32 concatenated
digests.
"""

from __future__ import annotations

import collections
import itertools
import operator
import struct
from collections.abc import Collection, Container, Iterable, Iterator, Sequence
from dataclasses import dataclass, field

from proof.errors import PantheonError
from storage import keys
from storage.db import BatchWriter, Store
from storage.errors import StoreError
from storage.logged_filter import LoggedRoots
from storage.merkle_log import MerkleLog

ROOT_SIZE = 32
_STAMP = struct.Struct(">Q")
_RECORD_HEAD = struct.Struct(">QB")
"""An arrival's record: the arrival time in ms and the owner's name length, then the
owner's name in UTF-8, then its roots."""
OWNER_BYTES_MAX = 255
ARRIVAL_SLACK = 64
"""An owner's queue is rebuilt when it holds this many more finished arrivals (every
root finalized or moved on) than twice its live ones."""


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
    admission makes durable (the new ones, and those that waited here as gossip);
    ``record`` and ``record_head`` the key and the start of the value of their record.
    """

    states: tuple[str, ...]
    indices: tuple[int, ...]
    new_roots: bytes
    to_persist: bytes = b""
    record: bytes = b""
    record_head: bytes = b""
    arrival: _Arrival | None = field(default=None, compare=False, repr=False)
    """Where the roots wait (for :meth:`Mempool.abandon`)."""


class _Arrival:
    """The roots one admission added, while any of them waits. Compared and hashed by
    identity: a Counter of the arrivals of finalized roots runs in C."""

    __slots__ = ("owner", "received_at_ms", "gossip_batch", "record", "roots", "waiting")

    def __init__(self, owner: int, received_at_ms: int, gossip_batch: int, record: bytes) -> None:
        self.owner = owner
        self.received_at_ms = received_at_ms
        self.gossip_batch = gossip_batch
        self.record = record
        """Its LevelDB key (b"": none, a gossip arrival or an abandoned submission)."""
        self.roots: list[bytes] = []
        """In arrival order; a root finalized or moved to a later arrival stays listed (see Mempool._own_roots)."""
        self.waiting = 0

    @property
    def durable(self) -> bool:
        """Its roots have a record (written, or in a batch being written)."""
        return bool(self.record)


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


def stored_arrivals(store: Store) -> Iterator[tuple[bytes, int, str, bytes]]:
    """Every durable arrival recorded in ``store``: (key, received at ms, owner, roots).

    Records of the per-root layout (``keys.MEMPOOL``, storage format 3 and before) come
    first, each as an arrival of one root; :class:`Mempool` rewrites them at start.
    """
    for key, value in store.iterate(keys.MEMPOOL):
        root = key[len(keys.MEMPOOL) :]
        if len(root) != ROOT_SIZE or len(value) < _STAMP.size:
            raise _corrupt(store, key, "a per-root mempool record")
        yield key, _STAMP.unpack_from(value)[0], value[_STAMP.size :].decode("utf-8", "replace"), root
    for key, value in store.iterate(keys.MEMPOOL_ARRIVAL):
        if len(key) != len(keys.MEMPOOL_ARRIVAL) + keys.U64.size or len(value) < _RECORD_HEAD.size:
            raise _corrupt(store, key, "a mempool arrival")
        received_at_ms, owner_length = _RECORD_HEAD.unpack_from(value)
        start = _RECORD_HEAD.size + owner_length
        if len(value) < start or (len(value) - start) % ROOT_SIZE:
            raise _corrupt(store, key, "a mempool arrival")
        yield key, received_at_ms, value[_RECORD_HEAD.size : start].decode("utf-8", "replace"), value[start:]


def _record_head(received_at_ms: int, owner: str) -> bytes:
    name = owner.encode("utf-8")
    if len(name) > OWNER_BYTES_MAX:
        raise ValueError(f"owner name {owner[:40]!r}... is longer than {OWNER_BYTES_MAX} bytes")
    return _RECORD_HEAD.pack(received_at_ms, len(name)) + name


def _corrupt(store: Store, key: bytes, what: str) -> StoreError:
    return StoreError(
        f"store {store.path}: {what} under key {key.hex()} is malformed; the roots it held may be "
        "lost to this node (their producers hold their receipts). Restore the store from a backup, "
        "or delete the record with a LevelDB tool to start without it"
    )


class Mempool:
    def __init__(self, store: Store, log: MerkleLog | LoggedRoots, *, roots_max: int, share_roots_max: int | None = None) -> None:
        """``share_roots_max``: most roots one owner may hold (None: ``roots_max``, no share)."""
        self._store = store
        self._log = log if isinstance(log, LoggedRoots) else LoggedRoots(log)
        """The log's index, with the node's filter in front (a bare MerkleLog: every lookup a read)."""
        self.roots_max = roots_max
        self.share_roots_max = roots_max if share_roots_max is None else share_roots_max
        self._pending: dict[bytes, _Arrival] = {}
        """root -> its arrival; insertion order is arrival order."""
        self._owner_names: list[str] = []
        self._owner_numbers: dict[str, int] = {}
        self._held: collections.Counter[int] = collections.Counter()
        self._live_arrivals: collections.Counter[int] = collections.Counter()
        """owner number -> its arrivals with roots waiting."""
        self._queues: dict[int, collections.deque[_Arrival]] = {}
        """owner number -> its arrivals, oldest first; finished ones dropped lazily (_tidy)."""
        self._finished_records: list[bytes] = []
        """Records of arrivals whose roots are all logged: deleted by the next :meth:`delete_finished`."""
        self._next_record = 0
        self._load(store)

    def _load(self, store: Store) -> None:
        """Rebuild the waiting roots from the records; delete those whose roots are all
        logged, and rewrite per-root records (format 3 and before) as one arrival per
        arrival time and owner."""
        obsolete: list[bytes] = []
        found: list[tuple[int, str, list[bytes], bytes]] = []
        per_root: dict[tuple[int, str], list[bytes]] = {}
        last = b""
        for key, received_at_ms, owner, data in stored_arrivals(store):
            waiting = [root for root in split_roots(data) if self._log.index_of(root) is None]
            if not key.startswith(keys.MEMPOOL_ARRIVAL):
                obsolete.append(key)
                per_root.setdefault((received_at_ms, owner), []).extend(waiting)
                continue
            last = key
            if waiting:
                found.append((received_at_ms, owner, waiting, key))
            else:
                obsolete.append(key)
        self._next_record = keys.U64.unpack_from(last, len(keys.MEMPOOL_ARRIVAL))[0] + 1 if last else 0
        found.extend((received_at_ms, owner, waiting, b"") for (received_at_ms, owner), waiting in per_root.items() if waiting)
        converted: list[tuple[bytes, bytes]] = []
        for received_at_ms, owner, waiting, record in sorted(found, key=operator.itemgetter(0)):
            fresh = [root for root in dict.fromkeys(waiting) if root not in self._pending]
            if not fresh:
                if record:
                    obsolete.append(record)
                continue
            if not record:
                record = self._new_record()
                converted.append((record, _record_head(received_at_ms, owner) + b"".join(fresh)))
            self._join(fresh, _Arrival(self._number_of(owner), received_at_ms, 0, record))
        if obsolete or converted:
            with store.batch(sync=True) as batch:
                for key in obsolete:
                    batch.delete(key)
                for key, value in converted:
                    batch.put(key, value)

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
        (what a receipt promises); without, the caller writes the record with
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
        volatile = [] if all_new or not durable else list(dict.fromkeys(
            root for root in split if root in pending and not pending[root].durable
        ))
        new_roots = b"".join(fresh)
        if not (durable and (fresh or volatile)):
            if fresh:
                self._join(fresh, _Arrival(self._number_of(owner), received_at_ms, gossip_batch, b""))
            return Admission(states, indices, new_roots)
        head = _record_head(received_at_ms, owner)
        record = self._new_record()
        arrival = _Arrival(self._number_of(owner), received_at_ms, gossip_batch, record)
        admission = Admission(states, indices, new_roots, new_roots + b"".join(volatile), record, head, arrival)
        if write:
            with self._store.batch(sync=True) as batch:
                self.stage(admission, batch)
        self._join(fresh, arrival)
        self._move(volatile, arrival)
        return admission

    def stage(self, admission: Admission, batch: BatchWriter) -> None:
        """Put the record that makes ``admission``'s roots durable into ``batch``."""
        if admission.to_persist:
            batch.put(admission.record, admission.record_head + admission.to_persist)

    def abandon(self, admission: Admission) -> None:
        """The batch holding ``admission``'s record failed: its roots stay waiting, as gossip
        does (nothing durable was promised for them)."""
        arrival = admission.arrival
        if arrival is not None:
            arrival.record = b""

    def not_waiting(self, roots: frozenset[bytes]) -> set[bytes]:
        """Those of ``roots`` that do not wait here (one C-level set operation, not a loop)."""
        return roots.difference(self._pending)

    def batch_of(self, root: bytes) -> int:
        """The number of the gossip batch ``root`` first came in here (0: none, or not waiting)."""
        arrival = self._pending.get(root)
        return 0 if arrival is None else arrival.gossip_batch

    def is_durable(self, root: bytes) -> bool:
        """Whether ``root`` waits here with its record written (or being written)."""
        arrival = self._pending.get(root)
        return arrival is not None and arrival.durable

    def take(self, roots_max: int, exclude: Sequence[Container[bytes]] = ()) -> bytes:
        """Up to ``roots_max`` roots in none of ``exclude`` (the roots of blocks in flight),
        split evenly between the owners with roots waiting, oldest first within each; what one
        owner cannot fill goes to the others. Owners take turns in order of their oldest root."""
        return b"".join(self.take_split(roots_max, exclude))

    def take_split(self, roots_max: int, exclude: Sequence[Container[bytes]] = ()) -> list[bytes]:
        """:meth:`take`, as the mempool's own bytes objects (their hashes computed)."""
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
                got = list(itertools.islice(cursor, want))
                chosen.extend(got)
                if len(got) < want:
                    del cursors[number]
                if len(chosen) >= roots_max:
                    break
        return chosen

    def _waiting_in(self, queue: Iterable[_Arrival], exclude: Sequence[Container[bytes]]) -> Iterator[bytes]:
        """The roots of ``queue``'s arrivals still waiting in them and in none of ``exclude``:
        a chain of filters that runs from C, not a Python test per root."""
        cursor: Iterator[bytes] = itertools.chain.from_iterable(map(self._own_roots, queue))
        for held in exclude:
            cursor = itertools.filterfalse(held.__contains__, cursor)
        return cursor

    def _own_roots(self, arrival: _Arrival) -> Iterator[bytes]:
        """``arrival``'s roots that still wait as its own (not finalized, not moved on)."""
        if not arrival.waiting:
            return iter(())
        roots = arrival.roots
        return itertools.compress(roots, map(operator.is_, map(self._pending.get, roots), itertools.repeat(arrival)))

    def delete_finished(self, batch: BatchWriter) -> None:
        """Delete, inside the caller's finalization batch, the records of arrivals whose roots
        were all logged by earlier finalizations. This batch's roots stay waiting until
        :meth:`forget`: a submission of one of them during the write is seen as pending."""
        finished, self._finished_records = self._finished_records, []
        for record in finished:
            batch.delete(record)

    def forget(self, roots: bytes | list[bytes]) -> None:
        """Drop finalized roots after their batch was written: one pop per root, then a few
        steps per arrival (the roots of one block come from a few arrivals)."""
        split = split_roots(roots)
        arrivals = collections.Counter(map(self._pending.pop, split, itertools.repeat(None, len(split))))
        arrivals.pop(None, None)
        owners = set()
        for arrival, count in arrivals.items():
            self._drop(arrival, count)
            owners.add(arrival.owner)
        for number in owners:
            self._tidy(number)

    def oldest_received_at_ms(self) -> int | None:
        arrival = next(iter(self._pending.values()), None)
        return None if arrival is None else arrival.received_at_ms

    def _join(self, roots: Collection[bytes], arrival: _Arrival) -> None:
        """``roots`` wait as ``arrival``'s (and count in its owner's share) from now on; any
        earlier arrival of theirs was let go by the caller."""
        if not roots:
            return
        if not arrival.waiting:
            self._live_arrivals[arrival.owner] += 1
            self._queues[arrival.owner].append(arrival)
        arrival.roots.extend(roots)
        arrival.waiting += len(roots)
        self._held[arrival.owner] += len(roots)
        self._pending.update(dict.fromkeys(roots, arrival))

    def _move(self, roots: list[bytes], arrival: _Arrival) -> None:
        """Roots that waited as gossip join a submission's durable ``arrival``."""
        before = set()
        for root in roots:
            earlier = self._pending[root]
            self._drop(earlier, 1)
            before.add(earlier.owner)
        for number in before:
            self._tidy(number)
        self._join(roots, arrival)

    def _drop(self, arrival: _Arrival, count: int) -> None:
        """``count`` of ``arrival``'s roots no longer wait as its own."""
        arrival.waiting -= count
        self._held[arrival.owner] -= count
        if not arrival.waiting:
            self._live_arrivals[arrival.owner] -= 1
            if arrival.record:
                self._finished_records.append(arrival.record)
                arrival.record = b""

    def _new_record(self) -> bytes:
        record = keys.MEMPOOL_ARRIVAL + keys.u64(self._next_record)
        self._next_record += 1
        return record

    def _number_of(self, owner: str) -> int:
        """The owner's number: bounded by the tokens file and the validator set, plus the owners
        of records found at start."""
        number = self._owner_numbers.get(owner)
        if number is None:
            number = self._owner_numbers[owner] = len(self._owner_names)
            self._owner_names.append(owner)
            self._queues[number] = collections.deque()
        return number

    def _head_stamp(self, queue: collections.deque[_Arrival]) -> int:
        return next((arrival.received_at_ms for arrival in queue if arrival.waiting), 0)

    def _tidy(self, number: int) -> None:
        """Drop finished arrivals from the head of an owner's queue; rebuild it when finished
        ones elsewhere in it (blocks need not take an owner's roots in its order) pile up."""
        queue = self._queues[number]
        while queue and not queue[0].waiting:
            queue.popleft()
        if len(queue) > 2 * self._live_arrivals[number] + ARRIVAL_SLACK:
            self._queues[number] = collections.deque(arrival for arrival in queue if arrival.waiting)
