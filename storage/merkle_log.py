"""The append-only RFC 9162 Merkle log of audit roots, stored in LevelDB.

Theory of operation. A tree of ``size`` leaves is a sequence of *perfect*
subtrees (``2**level`` leaves each) whose sizes are the binary digits of
``size``, largest on the left. Once a perfect subtree of at least
:data:`TILE_ROOTS` leaves is complete its hash never changes, so it is written
exactly once, under ``keys.log_node(level, index)`` (level >= :data:`TILE_LEVEL`).
The entries are stored :data:`TILE_ROOTS` to a record, ``keys.log_tile(tile)``
(the last tile rewritten as it fills), and a smaller subtree lies inside one tile:
its hash is computed from it on read. Besides these, only the size and the format
are stored in LevelDB; the root -> index map is storage.root_index, sorted runs in files
of its own, derived from the entries. (Format 1 kept a record per entry and per node, and
format 2 a LevelDB record per root for the map: LevelDB then spent more CPU per root on
writes and compaction than the rest of an append: docs/storage.md.)

Every RFC 9162 proof sibling is the hash of a subtree D[a:b]. In the recursion of
RFC 9162 sections 2.1.3.1 (PATH) and 2.1.4.1 (PROOF), all of them are perfect
(one read) except the right-hand sibling at the point where the path first turns
left: that one is the right edge of a smaller tree, the fold of at most
log2(size) perfect subtrees. A proof therefore reads at most about
2 * log2(size) records, whatever the size, and a past root (any size up to the
current one) is the fold of popcount(size) perfect subtrees. Against the current
size that right edge is a suffix of the in-memory edge (below) whenever it starts
at one of the edge's subtree boundaries, and is then taken from there: such a
proof reads one record per remaining sibling, about log2(size).

The right edge of the current tree (a ``proof.compact.CompactRange``) is kept in
memory and rebuilt at open from popcount(size) reads. An append extends a copy of it
(``CompactRange.extend_roots``, keeping the subtrees of TILE_ROOTS leaves or more that
each carry completes) unless the caller hands those subtrees in (a node's block check
computed them), and stores one node record per such subtree, about one per
TILE_ROOTS / 2 appended roots.
The append is staged first (computed, nothing written), its records go into a
LevelDB batch that may also carry other records (a block and its certificate),
and the in-memory state moves only after that batch was written (``commit``).
Only the latest stage, made at the current size, may be written or committed,
and the stored size is checked at stage and commit time: a stale, superseded,
unwritten or doubly committed stage is refused rather than allowed to overwrite
acknowledged entries.
"""

from __future__ import annotations

import hashlib
import itertools
from array import array
from collections.abc import Container, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from proof.compact import CompactRange
from storage import keys
from storage.db import BatchWriter, Store
from storage.errors import LogError, StoreError
from storage.root_index import DIRECTORY as ROOT_INDEX_DIRECTORY
from storage.root_index import RootIndex

HASH_SIZE = 32
# Roots per append: bounds the memory a single batch and its staged records take
# (a few hundred bytes a root) and the time the LevelDB write holds the writer.
APPEND_ROOTS_MAX = 100_000
# Roots returned by one ``audit_roots`` read: one append's worth, so one block's roots fit.
READ_ROOTS_MAX = APPEND_ROOTS_MAX
TILE_LEVEL = 4
TILE_ROOTS = 1 << TILE_LEVEL
"""Entries per tile record; subtrees smaller than a tile have no node record."""
_TILE_MASK = TILE_ROOTS - 1
_TILE_BYTES = TILE_ROOTS * 32
FORMAT = b"\x03"
"""The log's storage format (keys.LOG_FORMAT); a store without it that holds entries is format 1.
Format 2 kept the root -> index map as LevelDB records: opened, it is upgraded in place (the map
is rebuilt from the entries into storage.root_index and the records are deleted)."""
_FORMAT_2 = b"\x02"
_UPGRADE_BATCH_KEYS = 100_000

_sha256 = hashlib.sha256
_pack_u64 = keys.U64.pack
_unpack_u64 = keys.U64.unpack
_LEAF_PREFIX = b"\x00"
_NODE_PREFIX = b"\x01"
# Key prefixes of the node records per level, built once (the append loop's hot path).
_NODE_LEVEL_PREFIX = tuple(keys.LOG_NODE + bytes((level,)) for level in range(keys.LEVEL_MAX + 1))


@dataclass(frozen=True)
class AppendResult:
    """Where every input root ended up: ``indices[i]`` is the log index of input root i."""

    indices: array  # array('Q'), one entry per input root, in input order
    old_size: int
    new_size: int
    root: bytes  # the log root at new_size


@dataclass(frozen=True, eq=False)
class StagedAppend:
    """An append computed against the log at ``old_size``, not yet written.

    ``write_to`` puts its records into a caller's batch; after that batch is
    written, ``MerkleLog.commit`` moves the log to ``new_size``.
    """

    log: MerkleLog = field(repr=False)
    serial: int
    old_size: int
    new_size: int
    root: bytes
    indices: array
    _keys: list[bytes] = field(repr=False)
    _values: list[bytes] = field(repr=False)
    _edge: CompactRange = field(repr=False)
    _appended: bytes = field(repr=False)

    @property
    def record_count(self) -> int:
        return len(self._keys)

    def write_to(self, batch: BatchWriter) -> None:
        """Put the records into ``batch``; refused unless this is still the log's next append."""
        self.log._check_writable(self)
        put = batch.put
        for key, value in zip(self._keys, self._values):
            put(key, value)


class MerkleLog:
    """The log in ``store``: one per Store (a second writer is caught by the stored-size checks)."""

    def __init__(self, store: Store) -> None:
        self._store = store
        self._size = self._stored_size()
        stored_format = store.get(keys.LOG_FORMAT)
        if self._size and stored_format not in (FORMAT, _FORMAT_2):
            raise StoreError(
                f"store {store.path} holds a log of {self._size} entries in storage format 1 (a record per "
                "entry); this Pantheon reads formats 2 and 3 (entries 16 to a record: docs/storage.md). Move "
                "the data directory aside and start the validator with an empty one: catch-up brings the "
                "finalized chain back from its peers"
            )
        self._stage_serial = 0
        self._edge = CompactRange.from_hashes(self._size, self._subtree_hashes(0, self._size))
        self._index = RootIndex(Path(store.path) / ROOT_INDEX_DIRECTORY, self._size, self.audit_roots, self.root)
        if self._size and stored_format == _FORMAT_2:
            self._drop_format_2_index()

    def close(self) -> None:
        """Stop the root index's worker (storage.root_index); call before the store is closed."""
        self._index.close()

    def wait_index_idle(self, timeout_s: float | None = None) -> bool:
        """Wait until the root index has no merge due or under way (benches, tests)."""
        return self._index.wait_idle(timeout_s)

    def index_keys(self) -> Iterator[np.ndarray]:
        """The key of every logged root (storage.root_index.keys_of), an array at a time."""
        return self._index.keys()

    def _drop_format_2_index(self) -> None:
        """Delete format 2's root -> index records, then mark the store format 3: the map now
        lives in storage.root_index. A crash before the mark repeats this at the next open."""
        while True:
            stale = [key for key, _ in itertools.islice(self._store.iterate(keys.LOG_INDEX), _UPGRADE_BATCH_KEYS)]
            with self._store.batch(sync=not stale) as batch:
                for key in stale:
                    batch.delete(key)
                if not stale:
                    batch.put(keys.LOG_FORMAT, FORMAT)
            if not stale:
                return

    @property
    def size(self) -> int:
        return self._size

    def compact_range(self) -> CompactRange:
        """A copy of the right edge at the current size, to compute roots of blocks not yet stored."""
        return self._edge.copy()

    # ---- reads -------------------------------------------------------------

    def root(self, size: int | None = None) -> bytes:
        """The RFC 9162 root at ``size`` (default: now); the empty-tree root for size 0."""
        if size is None or size == self._size:
            return self._edge.root()
        self._check_size(size, "size")
        if size == 0:
            return CompactRange().root()
        return self._range_hash(0, size)

    def index_of(self, audit_root: bytes) -> int | None:
        """The root's index, or None if it is not logged (an append whose batch is written
        but not yet committed is not logged yet: the root index learns of it at commit)."""
        _check_root(audit_root)
        return self._match(self._index.candidates(audit_root), audit_root)

    def audit_root_at(self, index: int) -> bytes:
        self._check_index(index, self._size)
        return self._read_entry(index)

    def audit_roots(self, start: int, end: int) -> bytes:
        """Entries [start, end) concatenated (32 bytes each), read in one range scan."""
        self._check_size(end, "end")
        if not isinstance(start, int) or not 0 <= start <= end:
            raise LogError(f"start {start!r} must satisfy 0 <= start <= end = {end}")
        if end - start > READ_ROOTS_MAX:
            raise LogError(f"{end - start} roots in one read; at most {READ_ROOTS_MAX}: read in parts")
        if start == end:
            return b""
        first, last = start >> TILE_LEVEL, (end - 1) >> TILE_LEVEL
        values = [value for _, value in self._store.scan(keys.log_tile(first), keys.log_tile(last + 1))]
        offset = (start & _TILE_MASK) * HASH_SIZE
        data = b"".join(values)[offset : offset + (end - start) * HASH_SIZE]
        if (len(values) != last - first + 1 or any(len(value) != _TILE_BYTES for value in values[:-1])
                or len(data) != (end - start) * HASH_SIZE):
            raise StoreError(
                f"store {self._store.path}: log entries {start}..{end - 1} are incomplete or malformed "
                f"({len(values)} tile records, {len(data)} bytes): the store is corrupt"
            )
        return data

    def leaf_hash_at(self, index: int) -> bytes:
        self._check_index(index, self._size)
        return _sha256(_LEAF_PREFIX + self._read_entry(index)).digest()

    def inclusion_proof(self, index: int, size: int | None = None) -> list[bytes]:
        """RFC 9162 2.1.3.1 PATH(index, D[0:size]): sibling hashes, lowest first."""
        size = self._size if size is None else size
        self._check_size(size, "size")
        self._check_index(index, size)
        top_down: list[bytes] = []
        start, n, m = 0, size, index
        while n > 1:
            k = _split(n)
            if m < k:
                top_down.append(self._range_hash(start + k, start + n))
                n = k
            else:
                top_down.append(self._range_hash(start, start + k))
                start, n, m = start + k, n - k, m - k
        top_down.reverse()
        return top_down

    def consistency_proof(self, size1: int, size2: int | None = None) -> list[bytes]:
        """RFC 9162 2.1.4.1 PROOF(size1, D[0:size2]); requires 0 < size1 <= size2 <= size."""
        size2 = self._size if size2 is None else size2
        self._check_size(size2, "size2")
        if not isinstance(size1, int) or not 0 < size1 <= size2:
            raise LogError(
                f"size1 {size1!r} must satisfy 0 < size1 <= size2 = {size2} "
                "(a consistency proof from the empty tree proves nothing)"
            )
        top_down: list[bytes] = []
        start, m, n, whole = 0, size1, size2, True
        while m != n:
            k = _split(n)
            if m <= k:
                top_down.append(self._range_hash(start + k, start + n))
                n = k
            else:
                top_down.append(self._range_hash(start, start + k))
                start, m, n, whole = start + k, m - k, n - k, False
        if not whole:
            top_down.append(self._range_hash(start, start + n))
        top_down.reverse()
        return top_down

    # ---- appends -----------------------------------------------------------

    def append(self, roots: bytes | Sequence[bytes]) -> AppendResult:
        """Append new roots in one synced batch; a root already logged keeps its index."""
        staged = self.stage_append(roots)
        if staged.new_size != staged.old_size:
            with self._store.batch(sync=True) as batch:
                staged.write_to(batch)
        return self.commit(staged)

    def stage_append(
        self, roots: bytes | Sequence[bytes], *, lookup: Container[bytes] | None = None,
        subtrees: Sequence[bytes] | None = None,
    ) -> StagedAppend:
        """Compute an append's records and indices without writing or changing anything.

        ``lookup`` (None: every root) holds the roots that may already be logged: the caller
        knows that the others are not (the node's filter of the log rules them out), so they
        are not looked up. A root left out that is logged would be logged twice.

        ``subtrees``: the hashes of the perfect subtrees of at least TILE_ROOTS leaves that
        these roots complete, in order, as ``CompactRange.extend_roots(roots,
        keep_level=TILE_LEVEL)`` returned them at this size (a node's block check computed
        them). They are used only if every root is new and their count is right; then the
        append hashes no more than the last tile's leaves. Otherwise it computes them.
        """
        split = _split_roots(roots)
        stored = self._stored_size()
        if stored != self._size:
            raise LogError(
                f"store {self._store.path} holds a log of size {stored} but this MerkleLog is at "
                f"{self._size}: a staged append was written and never committed; reopen the log"
            )
        count = len(split)
        if self._size + count > keys.U64_MAX:
            raise LogError(f"appending {count} roots would take the log past 2**64 - 1 entries")
        record_keys: list[bytes] = []
        record_values: list[bytes] = []
        put_key = record_keys.append
        put_value = record_values.append
        if lookup is not None and self._all_new(split, lookup):
            new_roots, size = split, self._size + count
            indices = array("Q", range(self._size, size))
        else:
            new_roots, indices, size = self._resolve(split, lookup)
        appended = b"".join(new_roots)
        if subtrees is None or len(new_roots) != count or len(subtrees) != _completed_count(self._size, size):
            subtrees = self._edge.copy().extend_roots(appended, keep_level=TILE_LEVEL)
        edge = self._stage_nodes(new_roots, subtrees, put_key, put_value)
        if size != self._size:
            self._stage_tiles(appended, put_key, put_value)
            put_key(keys.LOG_SIZE)
            put_value(_pack_u64(size))
            if not self._size:
                put_key(keys.LOG_FORMAT)
                put_value(FORMAT)
        new_edge = CompactRange.from_hashes(size, edge)
        self._stage_serial += 1
        return StagedAppend(
            log=self,
            serial=self._stage_serial,
            old_size=self._size,
            new_size=size,
            root=new_edge.root(),
            indices=indices,
            _keys=record_keys,
            _values=record_values,
            _edge=new_edge,
            _appended=appended,
        )

    def _all_new(self, split: list[bytes], lookup: Container[bytes]) -> bool:
        """Whether every root is distinct and none of those in ``lookup`` is logged (a finalized
        run of blocks, nearly always): then the append needs no per-root bookkeeping."""
        if len(dict.fromkeys(split)) != len(split):
            return False
        maybe = [root for root in split if root in lookup]
        return all(self._match(found, root) is None for root, found in zip(maybe, self._index.candidates_of(maybe)))

    def _resolve(self, split: list[bytes], lookup: Container[bytes] | None) -> tuple[list[bytes], array, int]:
        """Any append, a root at a time: (the new roots in index order, every input root's
        index, the size after). A logged root and a repeated one keep their first index."""
        asked = split if lookup is None else [root for root in split if root in lookup]
        known = dict(zip(asked, self._index.candidates_of(asked)))
        fresh: dict[bytes, int] = {}
        indices = array("Q", bytes(8 * len(split)))
        size = self._size
        for position, root in enumerate(split):
            index = fresh.get(root)
            if index is None:
                found = known.get(root)
                index = self._match(found, root) if found else None
                if index is None:
                    index = fresh[root] = size
                    size += 1
            indices[position] = index
        return list(fresh), indices, size

    def _stage_nodes(
        self, new_roots: list[bytes], subtrees: Sequence[bytes], put_key: Any, put_value: Any
    ) -> list[bytes]:
        """A node record per subtree of a tile or more that ``new_roots`` complete, their hashes
        given in completion order; the edge after them (of its subtrees, only those smaller
        than a tile are hashed here, from the entries)."""
        old, new = self._size, self._size + len(new_roots)
        node_prefix = _NODE_LEVEL_PREFIX
        latest: dict[int, bytes] = {}
        """level -> the hash of the last subtree completed at that level."""
        given = iter(subtrees)
        for end in range((old | _TILE_MASK) + 1, new + 1, TILE_ROOTS):
            for level in range(TILE_LEVEL, (end & -end).bit_length()):
                node = next(given)
                if type(node) is not bytes or len(node) != HASH_SIZE:
                    raise LogError(f"a given subtree hash is {_describe(node)}, not {HASH_SIZE} bytes")
                put_key(node_prefix[level] + _pack_u64((end >> level) - 1))
                put_value(node)
                latest[level] = node
        before = dict(zip(_set_bits_high_first(old), self._edge.hashes))
        edge = []
        for level in _set_bits_high_first(new):
            if level < TILE_LEVEL:
                break
            edge.append(latest[level] if (new >> level) << level > old else before[level])
        tail_start = new & ~_TILE_MASK
        if tail_start < new:
            kept = max(0, old - tail_start)
            tail = (self._read_tile(tail_start >> TILE_LEVEL, kept)[: kept * HASH_SIZE] if kept else b"") + b"".join(
                new_roots[max(0, tail_start - old) :]
            )
            for level, first in _perfect_subtrees(tail_start, new):
                offset = (first - tail_start) * HASH_SIZE
                edge.append(_tile_subtree_hash(tail[offset : offset + (HASH_SIZE << level)]))
        return edge

    def commit(self, staged: StagedAppend) -> AppendResult:
        """Move the in-memory log to ``staged.new_size`` once its batch has been written."""
        self._check_writable(staged)
        stored = self._stored_size()
        if stored != staged.new_size:
            raise LogError(
                f"staged append to size {staged.new_size} is not in store {self._store.path} "
                f"(stored size {stored}): write it into a batch and write the batch before commit"
            )
        self._size = staged.new_size
        self._edge = staged._edge
        self._index.add(staged.old_size, staged._appended, staged.root)
        return AppendResult(
            indices=staged.indices, old_size=staged.old_size, new_size=staged.new_size, root=staged.root
        )

    # ---- internals ---------------------------------------------------------

    def _check_writable(self, staged: StagedAppend) -> None:
        """Only the latest stage, made at the current size, may be written and committed.

        Two stages made at one size would both claim the same indices: writing the
        older one after the newer (or after anything else moved the log) would
        overwrite entries that are already acknowledged.
        """
        if staged.log is not self:
            raise LogError("this staged append was made by a different MerkleLog")
        if staged.old_size != self._size:
            raise LogError(
                f"stale staged append: it extends size {staged.old_size} but the log is at "
                f"{self._size}; stage it again"
            )
        if staged.serial != self._stage_serial:
            raise LogError("staged append superseded by a later stage_append; use the latest one")

    def _stage_tiles(self, appended: bytes, put_key: Any, put_value: Any) -> None:
        """The tile records holding ``appended``, the new entries from the current size on (in
        index order); the last tile of the log so far is rewritten with its entries kept."""
        first = self._size >> TILE_LEVEL
        kept = self._size & _TILE_MASK
        data = self._read_tile(first, kept)[: kept * HASH_SIZE] + appended if kept else appended
        for number, offset in enumerate(range(0, len(data), _TILE_BYTES)):
            put_key(keys.log_tile(first + number))
            put_value(data[offset : offset + _TILE_BYTES])

    def _stored_size(self) -> int:
        value = self._store.get(keys.LOG_SIZE)
        return 0 if value is None else self._decode_u64(value, "log size")

    def _range_hash(self, start: int, end: int) -> bytes:
        """MTH(D[start:end]) for a range the RFC recursion produces (start aligned)."""
        if end == self._size:
            edge = self._edge_suffix(start)
            if edge is not None:
                return _fold(edge)
        return _fold(self._subtree_hashes(start, end))

    def _edge_suffix(self, start: int) -> list[bytes] | None:
        """The hashes of D[start:size] from the in-memory right edge, when it holds them.

        That is when ``start`` is a boundary between two of the edge's perfect
        subtrees: D[start:size] is then exactly the edge's last few. It is the one
        non-perfect sibling of a proof against the current size (the first point
        where the path turns left), which would otherwise cost popcount reads.
        """
        hashes = self._edge.hashes
        boundary = self._size
        for count in range(1, len(hashes) + 1):
            boundary &= boundary - 1  # clear the lowest set bit: where the count-th last subtree starts
            if boundary == start:
                return list(hashes[-count:])
            if boundary < start:
                return None
        return None

    def _subtree_hashes(self, start: int, end: int) -> list[bytes]:
        """The stored hashes of the perfect subtrees making up D[start:end], left to right."""
        return [self._perfect_hash(level, first >> level) for level, first in _perfect_subtrees(start, end)]

    def _perfect_hash(self, level: int, index: int) -> bytes:
        if level < TILE_LEVEL:
            first = index << level
            count = 1 << level
            offset = (first & _TILE_MASK) * HASH_SIZE
            roots = self._read_tile(first >> TILE_LEVEL, (first & _TILE_MASK) + count)
            return _tile_subtree_hash(roots[offset : offset + count * HASH_SIZE])
        value = self._store.get(_NODE_LEVEL_PREFIX[level] + _pack_u64(index))
        if value is None or len(value) != HASH_SIZE:
            state = "missing" if value is None else f"{len(value)} bytes, not {HASH_SIZE}"
            raise StoreError(
                f"store {self._store.path}: log node (level {level}, index {index}) is {state} "
                f"in a log of size {self._size}: the store is corrupt"
            )
        return value

    def _read_entry(self, index: int) -> bytes:
        offset = (index & _TILE_MASK) * HASH_SIZE
        return self._read_tile(index >> TILE_LEVEL, (index & _TILE_MASK) + 1)[offset : offset + HASH_SIZE]

    def _read_tile(self, tile: int, entries: int) -> bytes:
        """Tile record ``tile``, which must hold at least ``entries`` entries."""
        value = self._store.get(keys.log_tile(tile))
        if value is None or len(value) % HASH_SIZE or not entries * HASH_SIZE <= len(value) <= _TILE_BYTES:
            state = "missing" if value is None else f"{len(value)} bytes"
            raise StoreError(
                f"store {self._store.path}: log tile {tile} (entries {tile * TILE_ROOTS}..) is {state}, "
                f"where {entries} entries are needed, in a log of size {self._size}: the store is corrupt"
            )
        return value

    def _match(self, candidates: list[int], audit_root: bytes) -> int | None:
        """The index among ``candidates`` (indices of roots sharing its key) whose entry is
        ``audit_root``, or None."""
        for index in candidates:
            if self._read_entry(self._stored_index(index, audit_root)) == audit_root:
                return index
        return None

    def _stored_index(self, index: int, audit_root: bytes) -> int:
        if index >= self._size:
            raise StoreError(
                f"store {self._store.path} maps root {audit_root.hex()} to index {index}, "
                f"beyond the log size {self._size}: the store is corrupt"
            )
        return index

    def _decode_u64(self, value: bytes, what: str) -> int:
        if len(value) != keys.U64.size:
            raise StoreError(
                f"store {self._store.path}: {what} is {len(value)} bytes, not {keys.U64.size}: "
                "the store is corrupt"
            )
        return _unpack_u64(value)[0]

    def _check_size(self, size: int, name: str) -> None:
        if not isinstance(size, int) or isinstance(size, bool) or not 0 <= size <= self._size:
            raise LogError(f"{name} {size!r} is outside the log: it must be in 0..{self._size}")

    @staticmethod
    def _check_index(index: int, size: int) -> None:
        if not isinstance(index, int) or isinstance(index, bool) or not 0 <= index < size:
            raise LogError(
                f"index {index!r} is outside a tree of size {size}: it must be in 0..{size - 1}"
            )


def _tile_subtree_hash(roots: bytes) -> bytes:
    """MTH of a perfect subtree inside one tile, from its entries (a power of two of them)."""
    row = [_sha256(_LEAF_PREFIX + roots[i : i + HASH_SIZE]).digest() for i in range(0, len(roots), HASH_SIZE)]
    while len(row) > 1:
        row = [_sha256(_NODE_PREFIX + row[i] + row[i + 1]).digest() for i in range(0, len(row), 2)]
    return row[0]


def _completed_count(old: int, new: int) -> int:
    """Perfect subtrees of at least TILE_ROOTS leaves completed when a log grows from old to new."""
    return sum((new >> level) - (old >> level) for level in range(TILE_LEVEL, new.bit_length()))


def _set_bits_high_first(size: int) -> list[int]:
    """The levels of the perfect subtrees of a tree of ``size`` leaves, largest first."""
    return [level for level in range(size.bit_length() - 1, -1, -1) if size >> level & 1]


def _split(n: int) -> int:
    """RFC 9162's k: the largest power of two smaller than n (n > 1)."""
    return 1 << ((n - 1).bit_length() - 1)


def _perfect_subtrees(start: int, end: int) -> list[tuple[int, int]]:
    """(level, first leaf) of the perfect subtrees making up D[start:end], left to right.

    Requires ``start`` to be a multiple of the largest of them, which holds for the
    whole tree (start 0) and for every range the RFC 9162 recursion asks for.
    """
    pieces = []
    length = end - start
    for level in range(length.bit_length() - 1, -1, -1):
        if length >> level & 1:
            pieces.append((level, start))
            start += 1 << level
    return pieces


def _fold(hashes: Sequence[bytes]) -> bytes:
    """MTH of consecutive perfect subtrees, largest first: the right edge folds from the right."""
    node = hashes[-1]
    for left in reversed(hashes[:-1]):
        node = _sha256(_NODE_PREFIX + left + node).digest()
    return node


def _check_root(audit_root: bytes) -> None:
    if not isinstance(audit_root, bytes) or len(audit_root) != HASH_SIZE:
        raise LogError(f"an audit root is {HASH_SIZE} bytes, got {_describe(audit_root)}")


def _split_roots(roots: bytes | Sequence[bytes]) -> list[bytes]:
    """The roots of an append, one ``bytes`` each (a list of them is used as it is, so that a
    caller's objects, and the hashes Python caches in them, serve its own lookups too)."""
    if isinstance(roots, (bytes, bytearray, memoryview)):
        data = bytes(roots)
        if len(data) % HASH_SIZE:
            raise LogError(f"concatenated roots are {len(data)} bytes, not a multiple of {HASH_SIZE}")
        count = len(data) // HASH_SIZE
    else:
        count = len(roots)
    if count > APPEND_ROOTS_MAX:
        raise LogError(f"{count} roots in one append; at most {APPEND_ROOTS_MAX}: split the batch")
    if isinstance(roots, (bytes, bytearray, memoryview)):
        return [data[i : i + HASH_SIZE] for i in range(0, len(data), HASH_SIZE)]
    if set(map(type, roots)) <= {bytes} and set(map(len, roots)) <= {HASH_SIZE}:
        return roots if isinstance(roots, list) else list(roots)
    for root in roots:
        _check_root(root)
    return [bytes(root) for root in roots]


def _describe(value: object) -> str:
    if isinstance(value, (bytes, bytearray)):
        return f"{len(value)} bytes"
    return type(value).__name__
