"""Is this root already in the log? Mostly answered from memory, without a lookup.

Every root a validator admits or checks in a block is first asked "already logged?",
and nearly always the answer is no. The log's root index (storage.root_index) answers
with a binary search per run, tens of microseconds at 10M roots (LevelDB records, before
storage format 3, cost 2 to 7 us per root under load: the largest single cost a root had in
a node's profile). :class:`LoggedRoots` puts one in-memory Bloom filter of the whole log in
front: "certainly not logged" costs a bit test, and only roots that hit the filter (the
logged ones, and about 1 % of the others) are looked up. The filter only ever answers
"maybe" or "certainly not", so a wrong answer can only cost a lookup, never admit a logged
root.

The bit positions come from keyed multiply-shift hashes of the root's index key (its first
keys.INDEX_KEY_BYTES bytes, storage.root_index.key_of), with random multipliers drawn per
process: nobody outside can choose roots that collide in this filter (and one who did would
only cost the node lookups, never a wrong answer). The hashes and bit tests run over a whole
batch of roots at once in numpy: a root costs about 0.02 us to test and 0.05 us to add,
against 0.5 and 0.8 us for the same work per root in Python (session 5). The keying means
the filter cannot be saved: a node builds it at start, in a worker thread, from the root
index's keys, and looks every root up until it is built. When the log outgrows the filter's
capacity, a filter twice the size is built the same way while the old one keeps answering.
"""

from __future__ import annotations

import secrets
import threading

import numpy as np

from storage.merkle_log import MerkleLog
from storage.root_index import key_of, keys_of

BITS_PER_ROOT = 16
"""With two probes, a false positive rate of about 1.4 % at capacity."""
PROBES = 2
CAPACITY_MIN = 1 << 22
"""Roots a new filter is sized for at least (4M roots: 8 MiB)."""
ROOT_SIZE = 32
_U64_MASK = (1 << 64) - 1
_ONE, _SIX, _LOW6 = np.uint64(1), np.uint64(6), np.uint64(63)
BUILD_CHUNK_KEYS = 1 << 16
"""Index keys added per step (and per hold of the lock) while a filter is built."""


class BloomFilter:
    """Two probes into ``2**bits_log2`` bits, each position a keyed multiply-shift hash of the
    index key: ``((key ^ x) * m mod 2**64) >> (64 - bits_log2)`` with a random odd ``m``
    (Dietzfelbinger's universal family), one ``(x, m)`` per probe."""

    def __init__(self, capacity: int) -> None:
        bits_log2 = max(64, capacity * BITS_PER_ROOT - 1).bit_length()
        self.capacity = (1 << bits_log2) // BITS_PER_ROOT
        self._down = 64 - bits_log2
        self._seeds = [(secrets.randbits(64), secrets.randbits(64) | 1) for _ in range(PROBES)]
        self._np_seeds = [(np.uint64(x), np.uint64(m)) for x, m in self._seeds]
        self._np_down = np.uint64(self._down)
        self._words = np.zeros(1 << (bits_log2 - 6), dtype=np.uint64)
        self.count = 0

    def add_roots(self, data: bytes | list[bytes]) -> None:
        """Add ``n * 32`` bytes of roots, or a list of roots."""
        self.add_keys(_keys_of(data))

    def add_keys(self, index_keys: np.ndarray) -> None:
        """Add index keys (storage.root_index.keys_of)."""
        words = self._words
        for position in self._positions(index_keys):
            word, bit = position >> _SIX, _ONE << (position & _LOW6)
            words[word] |= bit
            # Two keys setting bits in one word: fancy assignment keeps only one of them, so
            # the (rare) lost bits are set again one by one.
            lost = (words[word] & bit) != bit
            if lost.any():
                np.bitwise_or.at(words, word[lost], bit[lost])
        self.count += len(index_keys)

    def maybe(self, roots: list[bytes]) -> list[bytes]:
        """Those of ``roots`` the filter cannot rule out."""
        if not roots:
            return []
        hit = self._hits(_keys_of(roots))
        return [roots[i] for i in np.flatnonzero(hit).tolist()]

    def may_contain(self, root: bytes) -> bool:
        key = key_of(root)
        words = self._words
        for x, m in self._seeds:
            position = ((key ^ x) * m & _U64_MASK) >> self._down
            if not int(words[position >> 6]) >> (position & 63) & 1:
                return False
        return True

    def _positions(self, index_keys: np.ndarray) -> list[np.ndarray]:
        down = self._np_down
        return [((index_keys ^ x) * m) >> down for x, m in self._np_seeds]

    def _hits(self, index_keys: np.ndarray) -> np.ndarray:
        words = self._words
        hit = np.ones(len(index_keys), dtype=bool)
        for position in self._positions(index_keys):
            hit &= ((words[position >> _SIX] >> (position & _LOW6)) & _ONE).astype(bool)
        return hit


def _keys_of(data: bytes | list[bytes]) -> np.ndarray:
    """The index keys of ``n * 32`` bytes of roots (or a list of roots)."""
    return keys_of(b"".join(data) if isinstance(data, list) else bytes(data))


class LoggedRoots:
    """``index_of`` over a MerkleLog, with the filter in front of its root index once it is built.

    The owner calls :meth:`added` with the roots of every append once it is committed,
    before anything else can ask about them.
    """

    def __init__(self, log: MerkleLog, *, capacity_min: int = CAPACITY_MIN) -> None:
        self._log = log
        self._capacity_min = capacity_min
        self._lock = threading.Lock()
        self._ready: BloomFilter | None = None
        self._building: BloomFilter | None = None
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()
        self.builds = 0

    def start(self) -> None:
        """Build the filter in a worker thread; until then every question is looked up."""
        self._start_build(max(self._capacity_min, 2 * self._log.size))

    def close(self) -> None:
        """Stop a build under way and wait for it: call before the store is closed."""
        self._stopping.set()
        thread = self._thread
        if thread is not None:
            thread.join()

    def wait_ready(self, timeout_s: float | None = None) -> bool:
        thread = self._thread
        if thread is not None:
            thread.join(timeout_s)
        return self._ready is not None

    @property
    def ready(self) -> bool:
        return self._ready is not None

    def index_of(self, root: bytes) -> int | None:
        ready = self._ready
        if ready is not None and len(root) == ROOT_SIZE and not ready.may_contain(root):
            return None
        return self._log.index_of(root)

    def maybe_logged(self, roots: list[bytes]) -> list[bytes]:
        """Those of ``roots`` that may be logged: all of them until the filter is built."""
        ready = self._ready
        return roots if ready is None else ready.maybe(roots)

    def to_look_up(self, roots: list[bytes]) -> frozenset[bytes] | None:
        """Those of ``roots`` an append must look up (MerkleLog.stage_append's ``lookup``):
        the ones the filter cannot rule out. None until the filter is built: every root."""
        ready = self._ready
        return None if ready is None else frozenset(ready.maybe(roots))

    def added(self, roots: bytes | list[bytes]) -> None:
        """Roots just committed to the log (every append, before any other question)."""
        with self._lock:
            for bloom in (self._ready, self._building):
                if bloom is not None:
                    bloom.add_roots(roots)
            ready = self._ready
            if ready is not None and ready.count > ready.capacity and self._building is None:
                self._start_build(2 * ready.count)

    def _start_build(self, capacity: int) -> None:
        """Call with the lock held (or before any other thread runs)."""
        self._building = BloomFilter(capacity)
        # Appends from now on go into the new filter too (added), and the snapshot the
        # build iterates is taken after this: every root is in one or the other.
        self._thread = threading.Thread(target=self._build, args=(self._building,), name="logged-filter",
                                        daemon=True)
        self._thread.start()

    def _build(self, bloom: BloomFilter) -> None:
        for run_keys in self._log.index_keys():
            for start in range(0, len(run_keys), BUILD_CHUNK_KEYS):
                if self._stopping.is_set():
                    return
                # Under the lock: ``added`` writes to the same words from the node's thread, and
                # two read-modify-writes of one word at once would lose a bit.
                with self._lock:
                    bloom.add_keys(np.asarray(run_keys[start : start + BUILD_CHUNK_KEYS]))
        with self._lock:
            if self._building is bloom:
                self._ready, self._building = bloom, None
                self.builds += 1
