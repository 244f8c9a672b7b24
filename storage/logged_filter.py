"""Is this root already in the log? Mostly answered from memory, without a LevelDB read.

Every root a validator admits or checks in a block is first asked "already logged?",
and nearly always the answer is no. LevelDB answers a miss with a bloom filter per
table file, but through every level, which cost 2 to 7 us per root under load: the
largest single cost a root had in a node's profile. :class:`LoggedRoots` puts one
in-memory Bloom filter of the whole log in front: "certainly not logged" costs one
bit test, and only roots that hit the filter (the logged ones, and about 1 % of the
others) are read from LevelDB. The filter only ever answers "maybe" or "certainly
not", so a wrong answer can only cost a read, never admit a logged root.

The bit positions come from Python's ``hash`` of the root's index key (its first
keys.INDEX_KEY_BYTES bytes, which key its record in the log's index), keyed with a
random seed per process (SipHash): nobody outside can choose roots that collide in
this filter. Keyed by the index key, "certainly not" means more than "this root is not
logged": no logged root shares its index record, so an append may write that record
without reading it (MerkleLog.stage_append's ``unlogged``). The same keying means the
filter cannot be saved: a node builds it at start, in a worker thread, from the log's
index, and asks LevelDB until it is built. When the log outgrows the filter's capacity,
a filter twice the size is built the same way while the old one keeps answering.
"""

from __future__ import annotations

import threading

from storage import keys
from storage.db import Store
from storage.merkle_log import MerkleLog

BITS_PER_ROOT = 16
"""With two probes, a false positive rate of about 1.4 % at capacity."""
CAPACITY_MIN = 1 << 22
"""Roots a new filter is sized for at least (4M roots: 8 MiB)."""
ROOT_SIZE = 32
_KEY = keys.INDEX_KEY_BYTES


class BloomFilter:
    """Two probes into ``2**bits_log2`` bits, positions from the root's keyed hash."""

    def __init__(self, capacity: int) -> None:
        bits_log2 = max(64, capacity * BITS_PER_ROOT - 1).bit_length()
        self.capacity = (1 << bits_log2) // BITS_PER_ROOT
        self._shift = bits_log2
        self._mask = (1 << bits_log2) - 1
        self._bits = bytearray(1 << (bits_log2 - 3))
        self.count = 0

    def add(self, root: bytes) -> None:
        """Add a root, or an index key (the first INDEX_KEY_BYTES bytes of a root)."""
        h = hash(root[:_KEY])
        mask, bits = self._mask, self._bits
        a = h & mask
        b = (h >> self._shift) & mask
        bits[a >> 3] |= 1 << (a & 7)
        bits[b >> 3] |= 1 << (b & 7)
        self.count += 1

    def add_roots(self, data: bytes | list[bytes]) -> None:
        """Add ``n * 32`` bytes of roots, or a list of roots (whose cached hashes are reused)."""
        mask, bits, shift = self._mask, self._bits, self._shift
        roots = data if isinstance(data, list) else [data[i : i + ROOT_SIZE] for i in range(0, len(data), ROOT_SIZE)]
        for h in map(hash, [root[:_KEY] for root in roots]):
            a = h & mask
            b = (h >> shift) & mask
            bits[a >> 3] |= 1 << (a & 7)
            bits[b >> 3] |= 1 << (b & 7)
        self.count += len(roots)

    def maybe(self, roots: list[bytes]) -> list[bytes]:
        """Those of ``roots`` the filter cannot rule out."""
        mask, bits, shift = self._mask, self._bits, self._shift
        out = []
        for root in roots:
            h = hash(root[:_KEY])
            a = h & mask
            if bits[a >> 3] >> (a & 7) & 1:
                b = (h >> shift) & mask
                if bits[b >> 3] >> (b & 7) & 1:
                    out.append(root)
        return out

    def may_contain(self, root: bytes) -> bool:
        h = hash(root[:_KEY])
        mask, bits = self._mask, self._bits
        a = h & mask
        if not bits[a >> 3] >> (a & 7) & 1:
            return False
        b = (h >> self._shift) & mask
        return bool(bits[b >> 3] >> (b & 7) & 1)


class LoggedRoots:
    """``index_of`` over a MerkleLog, with the filter in front of LevelDB once it is built.

    The owner calls :meth:`added` with the roots of every append once it is committed,
    before anything else can ask about them.
    """

    def __init__(self, log: MerkleLog, store: Store, *, capacity_min: int = CAPACITY_MIN) -> None:
        self._log = log
        self._capacity_min = capacity_min
        self._store = store
        self._lock = threading.Lock()
        self._ready: BloomFilter | None = None
        self._building: BloomFilter | None = None
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()
        self.builds = 0

    def start(self) -> None:
        """Build the filter in a worker thread; until then every question goes to LevelDB."""
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

    def ruled_out(self, roots: list[bytes]) -> frozenset[bytes]:
        """Those of ``roots`` whose index key no logged root shares, because the filter rules
        it out (MerkleLog.stage_append's ``unlogged``); none until the filter is built. Roots
        waiting in the mempool are not logged, but do not qualify by that alone: a logged
        root may share their index key."""
        ready = self._ready
        if ready is None:
            return frozenset()
        return frozenset(roots).difference(ready.maybe(roots))

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
        prefix_length = len(keys.LOG_INDEX)
        add = bloom.add
        stopping = self._stopping
        for done, (key, _value) in enumerate(self._store.iterate(keys.LOG_INDEX)):
            add(key[prefix_length:])
            if not done & 0xFFF and stopping.is_set():
                return
        with self._lock:
            if self._building is bloom:
                self._ready, self._building = bloom, None
                self.builds += 1
