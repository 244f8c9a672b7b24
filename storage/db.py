"""A thin LevelDB store: one directory, point reads, prefix scans, atomic batches.

Everything a node persists goes through one :class:`Store` so that records of
different kinds (a block, its certificate, the log append it carries) can be
written in ONE LevelDB WriteBatch: either all of them survive a crash or none.
Writes that anything outside the process relies on (an acknowledged submission, a
vote, a finalized block) are written with ``sync=True``: LevelDB then fsyncs its
write-ahead log before returning, so the write survives power loss, not only a
killed process.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from types import TracebackType
from typing import Protocol

import plyvel

from storage.errors import StoreError, StoreWriteError

# Bits per key of LevelDB's bloom filter: one disk read at most for a key that is
# absent, which is the common case when checking whether a submitted root is new.
BLOOM_FILTER_BITS = 10
# LevelDB's block cache; the Merkle log's upper nodes and recent entries stay hot.
BLOCK_CACHE_BYTES = 32 * 1024 * 1024
# Table files open at once. LevelDB memory-maps each open table, and every page a read
# touches counts in the process's RSS: with the default of 1000 a 10M-root log showed
# 924 MB of file-backed RSS. New roots are ruled out by the node's in-memory filter
# (storage.logged_filter) before LevelDB is asked, so a smaller table cache costs little:
# measured at 3M roots, 128 tables halved the file-backed RSS (355 -> 167 MB) for 4 %
# fewer appends/s without the filter and none with it.
MAX_OPEN_FILES = 128
# No block compression: nearly every stored byte is a hash or a signature, which
# Snappy cannot shrink, and trying costs CPU on every write and compaction
# (measured: 1M-root log append went from about 80k to about 120k roots/s without it).
COMPRESSION = None


class BatchWriter(Protocol):
    """What a record writer needs from a batch (plyvel's WriteBatch has exactly this)."""

    def put(self, key: bytes, value: bytes) -> None: ...

    def delete(self, key: bytes) -> None: ...


class Store:
    """An open LevelDB directory, locked against every other process while open."""

    def __init__(self, path: str | os.PathLike[str], *, create_if_missing: bool = True) -> None:
        self.path = os.fspath(path)
        try:
            self._db = plyvel.DB(
                self.path,
                create_if_missing=create_if_missing,
                bloom_filter_bits=BLOOM_FILTER_BITS,
                lru_cache_size=BLOCK_CACHE_BYTES,
                max_open_files=MAX_OPEN_FILES,
                compression=COMPRESSION,
            )
        except plyvel.IOError as exc:
            detail = _message(exc)
            if "lock" in detail.lower():
                raise StoreError(
                    f"store {self.path} is locked: another process (or another Store in this "
                    f"one) has it open; stop it or use a different data directory ({detail})"
                ) from exc
            raise StoreError(f"cannot open store {self.path}: {detail}") from exc
        except plyvel.CorruptionError as exc:
            raise StoreError(
                f"store {self.path} is corrupt and was not opened; restore it from a backup "
                f"or resynchronize the node into a fresh directory ({_message(exc)})"
            ) from exc
        except plyvel.Error as exc:
            raise StoreError(f"cannot open store {self.path}: {_message(exc)}") from exc

    def close(self) -> None:
        self._db.close()

    @property
    def closed(self) -> bool:
        return bool(self._db.closed)

    def __enter__(self) -> Store:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def get(self, key: bytes) -> bytes | None:
        return self._db.get(key)

    def iterate(self, prefix: bytes) -> Iterator[tuple[bytes, bytes]]:
        """Every (key, value) whose key starts with ``prefix``, in key order, prefix included."""
        with self._db.iterator(prefix=prefix) as it:
            yield from it

    def scan(self, start: bytes, stop: bytes) -> Iterator[tuple[bytes, bytes]]:
        """Every (key, value) with ``start <= key < stop``, in key order."""
        with self._db.iterator(start=start, stop=stop) as it:
            yield from it

    @contextmanager
    def batch(self, *, sync: bool = True) -> Iterator[BatchWriter]:
        """One atomic LevelDB WriteBatch, written when the block ends without an exception.

        If the block raises, nothing is written. ``sync=False`` is for data that can
        be rebuilt or refetched; anything acknowledged to another party uses the default.
        A write that fails (a full disk) raises StoreWriteError, and nothing of it is stored.
        """
        try:
            with self._db.write_batch(transaction=True, sync=sync) as batch:
                yield batch
        except plyvel.IOError as exc:
            raise StoreWriteError(
                f"cannot write to store {self.path}: {_message(exc)}; nothing of this write was stored. "
                "Free space (or repair the disk) and restart the node: it resumes from its last complete write"
            ) from None

    def property(self, name: str) -> str | None:
        """A LevelDB property such as ``leveldb.stats``, for benchmarks and diagnostics; None if unknown."""
        value = self._db.get_property(name.encode("ascii"))
        return None if value is None else value.decode("ascii", "replace")

    def compact(self) -> None:
        """Compact the whole key range (reclaims space; used by benchmarks and maintenance).

        plyvel's ``compact_range()`` without arguments passes two empty keys, not
        "no bound", so LevelDB compacts the empty range ["", ""] and only flushes the
        memtable. The range is therefore given explicitly: from the first key to just
        past the last one.
        """
        with self._db.iterator(reverse=True, include_value=False) as it:
            last = next(it, None)
        if last is None:
            return
        self._db.compact_range(start=b"", stop=last + b"\x00")


def _message(exc: BaseException) -> str:
    arg = exc.args[0] if exc.args else exc
    return arg.decode("utf-8", "replace") if isinstance(arg, bytes) else str(arg)
