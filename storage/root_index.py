"""The log's root -> index map: sorted runs of (key, index) pairs, kept out of LevelDB.

Why. Storage format 2 kept the map as one LevelDB record per root. Their keys are random,
so every table LevelDB writes overlaps every older one, and compaction rewrites each
record about seven times: in a validator's pipeline at 2M roots those records cost 3 of
the 7.6 us of CPU per root (session 5, measured by leaving them out). The map needs none
of what LevelDB gives: it only grows, and it can be rebuilt from the log's entries.

Theory of operation. A root's *key* is its first keys.INDEX_KEY_BYTES bytes read as a
little-endian u64; two roots may share one (2**32 work to find a pair), so a lookup
returns candidate indices and the log confirms each against its entry. Every append adds
a *run*: the keys of its entries, sorted, with their indices. Runs cover consecutive
ranges of the log, oldest first, and the newest two merge while the older is at most twice
the newer and the two hold at most RUN_ENTRIES_MAX (a binary counter): a log of n entries
has about n / RUN_ENTRIES_MAX full runs and log2(RUN_ENTRIES_MAX) smaller ones, and each
entry is merged about log2(RUN_ENTRIES_MAX / block) times, in numpy. A lookup
binary-searches every run.

Runs of PERSIST_ENTRIES_MIN entries or more live in files under ``root-index/`` in the
store's directory (written whole, fsynced, then renamed into place, and checked against
their SHA-256 when opened), memory-mapped for lookups: a lookup touches a few pages. A
worker thread merges and writes them, so an append never waits for it. Smaller runs are in
memory only: at open, whatever the files do not cover (a crash, or a store of format 2) is
rebuilt from the log's entries. A file that is damaged, or claims more than the log holds,
is set aside the same way: the map is derived data, and the log stays the truth.
"""

from __future__ import annotations

import hashlib
import logging
import os
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from storage.errors import StoreError

log = logging.getLogger("pantheon.storage")

KEY_DTYPE = np.dtype("<u8")
ROOT_SIZE = 32
PERSIST_ENTRIES_MIN = 1 << 18
"""A merged run this large (4 MiB) is written to a file; smaller ones stay in memory."""
RUN_ENTRIES_MAX = 1 << 20
"""Runs stop merging at this size (16 MiB): a merge holds at most twice that in memory."""
DIRECTORY = "root-index"
_MAGIC = b"PNTHIDX1"
_HEADER_BYTES = len(_MAGIC) + 16 + 32
_DIGEST_BYTES = 32


def keys_of(data: bytes) -> np.ndarray:
    """The keys of ``n * 32`` bytes of roots."""
    if len(data) % ROOT_SIZE:
        raise ValueError(f"roots must be a multiple of {ROOT_SIZE} bytes, got {len(data)}")
    return np.frombuffer(data, dtype=KEY_DTYPE)[:: ROOT_SIZE // KEY_DTYPE.itemsize]


def key_of(root: bytes) -> int:
    return int.from_bytes(root[: KEY_DTYPE.itemsize], "little")


@dataclass(frozen=True, eq=False)
class _Run:
    """Entries [start, end): their keys sorted, and each key's index beside it."""

    start: int
    end: int
    root: bytes
    """The log root at ``end``: binds a run file to the log it indexes."""
    keys: np.ndarray
    indices: np.ndarray
    path: Path | None = None

    @property
    def count(self) -> int:
        return self.end - self.start


class RootIndex:
    """Key -> candidate indices for a log of ``size`` entries read by ``read_entries(start, end)``,
    whose root at any size is ``root_at(size)``."""

    def __init__(self, directory: Path, size: int, read_entries: Callable[[int, int], bytes],
                 root_at: Callable[[int], bytes], *, read_chunk: int = 100_000) -> None:
        self._directory = directory
        self._lock = threading.Lock()
        self._wake = threading.Condition(self._lock)
        self._runs: tuple[_Run, ...] = ()
        self._merging: tuple[_Run, _Run] | None = None
        """The pair the worker is merging (its runs stay in place until the merged one replaces them)."""
        self._closed = False
        self._worker: threading.Thread | None = None
        self.set_aside: list[str] = []
        """Why each run file found at open was not used (it is rebuilt from the entries)."""
        directory.mkdir(exist_ok=True)
        runs = self._load(size, root_at)
        self._runs = tuple(runs)
        covered = runs[-1].end if runs else 0
        for start in range(covered, size, read_chunk):
            end = min(size, start + read_chunk)
            self.add(start, read_entries(start, end), root_at(end))

    @property
    def size(self) -> int:
        runs = self._runs
        return runs[-1].end if runs else 0

    @property
    def run_count(self) -> int:
        return len(self._runs)

    @property
    def persisted_entries(self) -> int:
        return sum(run.count for run in self._runs if run.path is not None)

    def candidates(self, root: bytes) -> list[int]:
        """Indices whose entry may be ``root`` (they share its key), oldest first."""
        key = np.uint64(key_of(root))
        out: list[int] = []
        for run in self._runs:
            low = int(np.searchsorted(run.keys, key, "left"))
            if low < run.count and run.keys[low] == key:
                high = int(np.searchsorted(run.keys, key, "right"))
                out.extend(run.indices[low:high].tolist())
        return out

    def candidates_of(self, roots: list[bytes]) -> list[list[int]]:
        """``candidates`` of each root, one binary search per run for all of them."""
        if not roots:
            return []
        wanted = keys_of(b"".join(roots))
        out: list[list[int]] = [[] for _ in roots]
        for run in self._runs:
            low = np.searchsorted(run.keys, wanted, "left")
            high = np.searchsorted(run.keys, wanted, "right")
            for position in np.flatnonzero(high > low).tolist():
                out[position].extend(run.indices[low[position] : high[position]].tolist())
        return out

    def keys(self) -> Iterator[np.ndarray]:
        """Every key, a run at a time (the log's filter is built from them)."""
        for run in self._runs:
            yield run.keys

    def add(self, start: int, data: bytes, root: bytes) -> None:
        """Entries [start, start + n) of ``n * 32`` bytes, just committed to the log, whose root
        is now ``root``."""
        if start != self.size:
            raise StoreError(f"root index covers {self.size} entries; entries from {start} cannot follow")
        if not data:
            return
        keys = keys_of(data)
        order = np.argsort(keys, kind="stable")
        run = _Run(start, start + len(keys), root, keys[order],
                   np.arange(start, start + len(keys), dtype=KEY_DTYPE)[order])
        with self._lock:
            self._runs = (*self._runs, run)
            self._merge_small()
            if self._next_merge(persisted=True) is not None:
                self._start_worker()
                self._wake.notify()

    def wait_idle(self, timeout_s: float | None = None) -> bool:
        """Wait until no merge is due or under way (for tests and benches)."""
        with self._wake:
            return self._wake.wait_for(lambda: self._merging is None and self._next_merge() is None, timeout_s)

    def close(self) -> None:
        """Stop the worker after the merge under way; runs not yet written are rebuilt at the next open."""
        with self._wake:
            self._closed = True
            self._wake.notify_all()
        worker = self._worker
        if worker is not None:
            worker.join()

    # ---- merging -------------------------------------------------------------------

    def _next_merge(self, *, persisted: bool | None = None) -> int | None:
        """Where the newest pair of adjacent runs due to merge starts (the older's position), or
        None; ``persisted``: only pairs whose merge is (True) or is not (False) written to a
        file. Due: the older is at most twice the newer and the two fit in RUN_ENTRIES_MAX. A
        pair with a run under merge in the worker is not due. Call with the lock held."""
        runs = self._runs
        busy = self._merging or ()
        for position in range(len(runs) - 2, -1, -1):
            older, newer = runs[position], runs[position + 1]
            total = older.count + newer.count
            if older in busy or newer in busy or older.count > 2 * newer.count or total > RUN_ENTRIES_MAX:
                continue
            if persisted is None or persisted == (total >= PERSIST_ENTRIES_MIN):
                return position
        return None

    def _merge_small(self) -> None:
        """Merge the due pairs whose merge stays in memory (lock held; a few ms at most)."""
        while (position := self._next_merge(persisted=False)) is not None:
            runs = self._runs
            self._runs = (*runs[:position], _merged(runs[position], runs[position + 1]), *runs[position + 2 :])

    def _start_worker(self) -> None:
        if self._worker is None and not self._closed:
            self._worker = threading.Thread(target=self._work, name="root-index", daemon=True)
            self._worker.start()

    def _work(self) -> None:
        while True:
            with self._wake:
                self._wake.wait_for(lambda: self._closed or self._next_merge(persisted=True) is not None)
                if self._closed:
                    return
                position = self._next_merge(persisted=True)
                assert position is not None
                self._merging = (self._runs[position], self._runs[position + 1])
            self._merge_and_write(self._merging)

    def _merge_and_write(self, pair: tuple[_Run, _Run]) -> None:
        """One merge of the worker's (a function of its own, so that the merged arrays and the
        inputs are freed when it returns, not held until the next merge)."""
        merged = _merged(*pair)
        try:
            run = self._persist(merged)
        except (OSError, ValueError) as exc:
            log.warning("root index: cannot write a merged run, keeping it in memory: %s", exc)
            run = merged
        for old in pair:  # the merged file is in place: a crash from here on finds it
            if old.path is not None and run.path is not None:
                old.path.unlink(missing_ok=True)
        with self._wake:
            runs = self._runs
            position = runs.index(pair[0])
            self._runs = (*runs[:position], run, *runs[position + 2 :])
            self._merging = None
            self._merge_small()
            self._wake.notify_all()

    # ---- files ---------------------------------------------------------------------

    def _persist(self, run: _Run) -> _Run:
        """Write ``run`` to its file and map it back; the write is whole or absent after a crash."""
        path = self._directory / f"run-{run.start:020d}-{run.end:020d}.idx"
        header = _MAGIC + run.start.to_bytes(8, "little") + run.end.to_bytes(8, "little") + run.root
        digest = hashlib.sha256(header)
        temporary = path.with_suffix(".tmp")
        with open(temporary, "wb") as file:
            file.write(header)
            for values in (run.keys, run.indices):  # written and hashed in place, not copied
                view = memoryview(np.ascontiguousarray(values, dtype=KEY_DTYPE)).cast("B")
                file.write(view)
                digest.update(view)
            file.write(digest.digest())
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
        _fsync_directory(self._directory)
        return _mapped(path, run.start, run.end, run.root)

    def _load(self, size: int, root_at: Callable[[int], bytes]) -> list[_Run]:
        """The run files that chain from entry 0 within the log; every other file is removed."""
        found: list[tuple[int, int, Path]] = []
        for path in sorted(self._directory.iterdir()):
            parsed = _parse_name(path.name)
            if parsed is None:
                if path.suffix == ".tmp":
                    path.unlink(missing_ok=True)
                continue
            found.append((*parsed, path))
        found.sort(key=lambda item: (item[0], -item[1]))
        runs: list[_Run] = []
        covered = 0
        for start, end, path in found:
            reason = None
            if start != covered:
                reason = "covered by another run" if start < covered else f"does not follow entry {covered}"
            elif end > size:
                reason = f"claims entries up to {end}, but the log holds {size}"
            else:
                root = root_at(end)
                reason = _check_file(path, start, end, root)
            if reason is None:
                runs.append(_mapped(path, start, end, root))
                covered = end
                continue
            self.set_aside.append(f"{path.name}: {reason}")
            if reason != "covered by another run":  # else a merge's inputs, left by a crash before their removal
                log.warning("root index: %s: %s; rebuilding its entries from the log", path.name, reason)
            path.unlink(missing_ok=True)
        return runs


def _merged(older: _Run, newer: _Run) -> _Run:
    """The two sorted runs as one, in one pass: each of the newer's entries goes after the
    older's entries with a key up to its own (so a key's candidates stay oldest first).
    Beside the result it holds one position per newer entry and a byte per entry: a
    worker's merge of 2**20 entries peaks near 21 MiB."""
    total = older.count + newer.count
    at = np.searchsorted(older.keys, newer.keys, side="right")
    at += np.arange(newer.count, dtype=at.dtype)
    from_older = np.ones(total, dtype=bool)
    from_older[at] = False
    keys = np.empty(total, dtype=KEY_DTYPE)
    indices = np.empty(total, dtype=KEY_DTYPE)
    keys[at], keys[from_older] = newer.keys, older.keys
    indices[at], indices[from_older] = newer.indices, older.indices
    return _Run(older.start, newer.end, newer.root, keys, indices)


def _mapped(path: Path, start: int, end: int, root: bytes) -> _Run:
    count = end - start
    values = np.memmap(path, dtype=KEY_DTYPE, mode="r", offset=_HEADER_BYTES, shape=(2 * count,))
    return _Run(start, end, root, values[:count], values[count:], path)


def _parse_name(name: str) -> tuple[int, int] | None:
    parts = name.removesuffix(".idx").split("-")
    if not name.endswith(".idx") or len(parts) != 3 or parts[0] != "run" or not all(p.isdigit() for p in parts[1:]):
        return None
    start, end = int(parts[1]), int(parts[2])
    return (start, end) if start < end else None


def _check_file(path: Path, start: int, end: int, root: bytes) -> str | None:
    """Why the file cannot be the run [start, end) of the log whose root at ``end`` is ``root``, or None."""
    want = _HEADER_BYTES + 16 * (end - start) + _DIGEST_BYTES
    try:
        data = path.read_bytes()
    except OSError as exc:
        return f"unreadable ({exc})"
    if len(data) != want:
        return f"{len(data)} bytes where {want} are due"
    if data[: len(_MAGIC)] != _MAGIC or data[len(_MAGIC) : _HEADER_BYTES - 32] != start.to_bytes(8, "little") + end.to_bytes(8, "little"):
        return "its header does not match its name"
    if hashlib.sha256(data[:-_DIGEST_BYTES]).digest() != data[-_DIGEST_BYTES:]:
        return "its checksum does not match (damaged)"
    if data[_HEADER_BYTES - 32 : _HEADER_BYTES] != root:
        return f"it indexes another log (its root at {end} is not this log's)"
    keys = np.frombuffer(data, dtype=KEY_DTYPE, count=end - start, offset=_HEADER_BYTES)
    if len(keys) > 1 and bool((keys[1:] < keys[:-1]).any()):
        return "its keys are not sorted"
    indices = np.frombuffer(data, dtype=KEY_DTYPE, count=end - start, offset=_HEADER_BYTES + 8 * (end - start))
    if int(indices.min()) < start or int(indices.max()) >= end:
        return f"it lists indices outside {start}..{end - 1}"
    return None


def _fsync_directory(directory: Path) -> None:
    descriptor = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)
