"""Storage at scale: the Merkle log at 10M roots, and the same work done by pymerkle 7.

Run: ``.venv/bin/python -m bench.storage_scale [--roots 10000000] [--batch 1000]
[--proofs 2000] [--pymerkle-roots 1000000]``. Prints ``name=value`` lines, every
value a number.

Each measurement runs in a child process of its own, one after the other, so that
each peak RSS (``VmHWM`` from /proc/self/status) belongs to one store alone and no
two of them share the two cores:

1. ours at ``--roots``: random roots appended to a fresh ``MerkleLog`` in a temp dir,
   one synced LevelDB batch per ``--batch`` roots (one finalized block each). The
   append rate is reported per tenth of the run, so one sees whether it degrades
   with size, with the CPU each root cost in the appending thread and in the
   whole process (the difference is LevelDB's compaction thread). Then the
   compaction backlog is let drain (``settle_s``), and at the final size
   ``--proofs`` inclusion proofs (random indices) and consistency proofs (random
   old sizes) are timed one by one, in wall-clock time and in this thread's CPU
   time (``*_cpu_*``: what the proof cost, without the time another process held
   the core), each verified with ``proof.merkle`` outside the timed part; records
   read per proof are counted in a second, untimed call. RSS: the kernel's peak
   (VmHWM) and, sampled, its anonymous and file-backed parts. Disk: ``du`` of the
   LevelDB directory after a close without compaction, then after a full one.
2. ours again at ``--pymerkle-roots``, the same appends and the same proofs, so
   the comparison with pymerkle is made at equal size.
3. pymerkle's ``SqliteTree`` (persistent, like ours) and
4. pymerkle's ``InmemoryTree`` at ``--pymerkle-roots``: the same roots in the same
   batches (``append_entries`` per batch; for SQLite one committed, fsynced
   transaction per batch), the same proof indices and old sizes. pymerkle is
   checked against ours: its root must equal our log's root at that size
   (``root_matches_ours``); its inclusion proofs, less the leaf hash pymerkle puts
   first, are RFC 9162 PATH and must verify with ``proof.merkle`` against our root.
   Its consistency proofs have a layout of their own (not RFC 9162 PROOF), so
   pymerkle's verifier checks them, against our root.

Roots are derived from ``--seed`` (SHAKE-256 of the seed and the batch number), so
the roots of any batch can be regenerated to verify a proof without keeping
``--roots * 32`` bytes in memory (320 MB at 10M, which would swamp the RSS figure).

Ratios named ``*_ratio_vs_pymerkle`` are ours / theirs at ``--pymerkle-roots``
(``*_vs_pymerkle_mem`` against the in-memory tree): above 1 is better for a rate,
below 1 is better for a latency, CPU, RSS or disk figure. Wall-clock figures of
runs that were not made at the same moment compare the machine's load as much as
the code when other processes share it; the CPU figures (``append_cpu``) do not.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import random
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable

from proof.merkle import leaf_hash, verify_consistency, verify_inclusion
from storage.db import Store
from storage.logged_filter import LoggedRoots
from storage.merkle_log import APPEND_ROOTS_MAX, MerkleLog

HASH_SIZE = 32
TENTHS = 10
# Why 1M for pymerkle by default: SqliteTree keeps only the leaves, so a cold proof
# rehashes whole subtrees from them (half the tree for the top sibling, ~0.5 s at 1M)
# before its 1 GiB subroot cache warms up; InmemoryTree holds a Python object graph of
# about 430 B per leaf. At 1M both runs end in about a minute together and stay under
# 0.5 GB; at 10M the in-memory tree alone would need about 4.3 GB.
PYMERKLE_ROOTS_DEFAULT = 1_000_000


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--roots", type=int, default=10_000_000)
    parser.add_argument("--batch", type=int, default=1_000)
    parser.add_argument("--proofs", type=int, default=2_000)
    parser.add_argument("--pymerkle-roots", type=int, default=PYMERKLE_ROOTS_DEFAULT)
    parser.add_argument("--seed", type=int, default=1)
    # Internal: run one measurement in this process (the parent starts one child per worker).
    parser.add_argument("--worker", choices=("ours", "pymerkle-sqlite", "pymerkle-memory"), help=argparse.SUPPRESS)
    parser.add_argument("--dir", help=argparse.SUPPRESS)
    parser.add_argument("--expect-root", help=argparse.SUPPRESS)
    parser.add_argument("--no-compact", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if not 0 < args.batch <= APPEND_ROOTS_MAX:
        parser.error(f"--batch must be in 1..{APPEND_ROOTS_MAX}")
    if args.roots < 1 or args.pymerkle_roots < 1 or args.proofs < 1:
        parser.error("--roots, --pymerkle-roots and --proofs must be positive")
    if args.worker == "ours":
        _worker_ours(args)
    elif args.worker == "pymerkle-sqlite":
        _worker_pymerkle(args, sqlite=True)
    elif args.worker == "pymerkle-memory":
        _worker_pymerkle(args, sqlite=False)
    else:
        _run_all(args)


# ---- the parent: one child per measurement, then the ratios -----------------


def _run_all(args: argparse.Namespace) -> None:
    workdir = tempfile.mkdtemp(prefix="pantheon-storage-scale-")
    try:
        print(f"nproc={len(os.sched_getaffinity(0))}", flush=True)
        print(f"batch={args.batch}", flush=True)
        print(f"proofs={args.proofs}", flush=True)
        ours = _child(args, "ours", args.roots, os.path.join(workdir, "ours"))
        _emit("", ours, skip=("root_hex",))
        small = _child(args, "ours", args.pymerkle_roots, os.path.join(workdir, "ours-small"), no_compact=True)
        _emit("ours_at_pymerkle_size_", small, skip=("root_hex", "roots"))
        expect = small["root_hex"]
        sqlite = _child(args, "pymerkle-sqlite", args.pymerkle_roots, os.path.join(workdir, "sqlite"), expect)
        _emit("pymerkle_", sqlite)
        memory = _child(args, "pymerkle-memory", args.pymerkle_roots, os.path.join(workdir, "memory"), expect)
        _emit("pymerkle_mem_", memory, skip=("roots",))
        for suffix, theirs in (("", sqlite), ("_mem", memory)):
            ratios = {
                "append": "append_roots_per_s",
                "append_cpu": "append_process_cpu_us_per_root",
                "inclusion_p50": "inclusion_p50_ms",
                "inclusion_p99": "inclusion_p99_ms",
                "consistency_p50": "consistency_p50_ms",
                "consistency_p99": "consistency_p99_ms",
                "inclusion_cpu_p99": "inclusion_cpu_p99_ms",
                "consistency_cpu_p99": "consistency_cpu_p99_ms",
                "rss": "rss_mb_max",
                "rss_anon": "rss_anon_mb_max",
                "disk": "disk_bytes_per_root",
            }
            for name, key in ratios.items():
                if key in theirs and float(theirs[key]) > 0:
                    print(f"{name}_ratio_vs_pymerkle{suffix}={float(small[key]) / float(theirs[key]):.3f}")
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def _child(
    args: argparse.Namespace,
    worker: str,
    roots: int,
    path: str,
    expect: str | None = None,
    *,
    no_compact: bool = False,
) -> dict[str, str]:
    command = [
        sys.executable, "-m", "bench.storage_scale", "--worker", worker, "--dir", path,
        "--roots", str(roots), "--batch", str(args.batch), "--proofs", str(args.proofs), "--seed", str(args.seed),
    ]  # fmt: skip
    if expect is not None:
        command += ["--expect-root", expect]
    if no_compact:
        command.append("--no-compact")
    print(f"# {worker}: {roots:,} roots", file=sys.stderr, flush=True)
    out = subprocess.run(command, stdout=subprocess.PIPE, text=True, check=True).stdout
    values = {}
    for line in out.splitlines():
        name, _, value = line.partition("=")
        values[name] = value
    return values


def _emit(prefix: str, values: dict[str, str], *, skip: tuple[str, ...] = ()) -> None:
    for name, value in values.items():
        if name not in skip:
            print(f"{prefix}{name}={value}", flush=True)


# ---- worker: our MerkleLog ---------------------------------------------------


def _time_proofs(
    name: str, items: list[int], prove: Callable[[int], list[bytes]], verify: Callable[[int, list[bytes]], object],
    counted: _ReadCounter, memory: _MemorySampler, reference: _ReferenceTask | None,
) -> None:
    """Time ``prove`` on each item (wall and this thread's CPU), count its reads, check each
    proof with ``verify`` outside the timed part; report as ``name_*`` figures."""
    times, cpu, reads, lengths = [], [], [], []
    usage = _ThreadUsage()
    for number, item in enumerate(items):
        usage.start()
        t0, w0 = time.thread_time(), time.perf_counter()
        path_nodes = prove(item)
        w1, t1 = time.perf_counter(), time.thread_time()
        usage.stop(w1 - w0)
        times.append(w1 - w0)
        cpu.append(t1 - t0)
        reads.append(counted.reads_during(lambda: prove(item)))
        lengths.append(len(path_nodes))
        verify(item, path_nodes)
        if reference is not None:
            reference.run()
        if number % 64 == 0:
            memory.sample()
    _report_latency(name, times, cpu, reads)
    usage.report(name)
    _print(f"{name}_path_len_mean", statistics.fmean(lengths), 1)


def _worker_ours(args: argparse.Namespace) -> None:
    rss_start = _vm_kib("VmHWM")
    os.makedirs(args.dir, exist_ok=True)
    path = os.path.join(args.dir, "log")
    store = Store(path)
    log = MerkleLog(store)
    logged = LoggedRoots(log)
    logged.start()
    logged.wait_ready()

    def append(data: bytes) -> None:
        """A validator's append: the log's in-memory filter (storage.logged_filter) rules out
        the index lookups of new roots, as node.runtime does."""
        roots = [data[i : i + 32] for i in range(0, len(data), 32)]
        staged = log.stage_append(roots, lookup=logged.to_look_up(roots))
        with store.batch(sync=True) as batch:
            staged.write_to(batch)
        log.commit(staged)
        logged.added(data)

    memory = _MemorySampler()
    _print("load_avg_start", os.getloadavg()[0], 2)
    appends = _append_all(args, append, "ours", memory)
    assert log.size == args.roots, f"{log.size} != {args.roots}: a generated root repeated"
    size = log.size
    root = log.root()
    _report_appends(args.roots, appends)
    _print("rss_mb_after_appends", _vm_kib("VmHWM") / 1024, 1)
    _print("settle_s", _settle(), 1)
    # Everything LevelDB wrote into table files since the open (memtable flushes and
    # compactions), against what the tables hold now: the write amplification.
    table_writes_mb = _leveldb_table_writes_mb(store)
    _print("leveldb_table_writes_mb", table_writes_mb, 0)
    _print("leveldb_write_amplification", table_writes_mb * 1e6 / max(1, _file_bytes(path)["table"]), 1)

    rng = random.Random(args.seed)
    indices = [rng.randrange(size) for _ in range(args.proofs)]
    old_sizes = [rng.randrange(1, size + 1) for _ in range(args.proofs)]
    counted = _ReadCounter(store)
    reference = _ReferenceTask()

    _time_proofs(
        "inclusion", indices, lambda index: log.inclusion_proof(index, size),
        lambda index, path_nodes: verify_inclusion(
            leaf_hash(_root_at(args.seed, args.batch, index)), index, size, path_nodes, root
        ),
        counted, memory, reference,
    )
    reference.report()
    _time_proofs(
        "consistency", old_sizes, lambda size1: log.consistency_proof(size1, size),
        lambda size1, path_nodes: verify_consistency(size1, size, path_nodes, log.root(size1), root),
        counted, memory, None,
    )

    memory.report(rss_start)
    _print("load_avg_end", os.getloadavg()[0], 2)
    log.wait_index_idle()
    log.close()
    logged.close()
    store.close()  # no compaction: what a node leaves on disk when it stops
    files = _file_bytes(path)
    disk = _du_bytes(path)
    _print("disk_bytes", disk)
    _print("disk_bytes_per_root", disk / size, 1)
    _print("disk_table_bytes", files["table"])
    _print("disk_wal_bytes", files["wal"])
    _print("disk_other_bytes", files["other"])
    _print("table_files", files["tables"])
    if not args.no_compact:
        started = time.perf_counter()
        with Store(path) as reopened:
            reopened.compact()
        _print("compact_s", time.perf_counter() - started, 1)
        _print("disk_bytes_per_root_compacted", _du_bytes(path) / size, 1)
    print(f"root_hex={root.hex()}")


def _settle(quiet_cpu_s: float = 0.005, interval_s: float = 0.25, limit_s: float = 300.0) -> float:
    """Wait until LevelDB's background thread is idle (its compaction backlog is done).

    The appends above run far faster than any chain would finalize roots, so they
    leave a compaction backlog that would otherwise compete with the proofs for the
    two cores. Idle: the process spent less than ``quiet_cpu_s`` of CPU outside this
    thread in ``interval_s``. Returns the seconds waited.
    """
    started = time.perf_counter()
    while time.perf_counter() - started < limit_s:
        other0 = _process_cpu() - time.thread_time()
        time.sleep(interval_s)
        if _process_cpu() - time.thread_time() - other0 < quiet_cpu_s:
            break
    return time.perf_counter() - started


class _ThreadUsage:
    """Per timed call: was this thread preempted (an involuntary context switch), did it wait for a disk read?

    From getrusage(RUSAGE_THREAD). A call that was switched out waited for a core
    (another process's, or LevelDB's own background thread's); a major fault
    waited for the disk. Neither is work of the log, and the two counts say how
    much of the wall-clock tail they explain.
    """

    def __init__(self) -> None:
        self.preempted = 0
        self.major_faults = 0
        self.unpreempted: list[float] = []
        self._before = resource.getrusage(resource.RUSAGE_THREAD)

    def start(self) -> None:
        self._before = resource.getrusage(resource.RUSAGE_THREAD)

    def stop(self, wall: float) -> None:
        after = resource.getrusage(resource.RUSAGE_THREAD)
        self.major_faults += after.ru_majflt - self._before.ru_majflt
        if after.ru_nivcsw > self._before.ru_nivcsw:
            self.preempted += 1
        else:
            self.unpreempted.append(wall)

    def report(self, what: str) -> None:
        _print(f"{what}_preempted_calls", self.preempted)
        _print(f"{what}_major_faults", self.major_faults)
        if self.unpreempted:
            millis = sorted(t * 1e3 for t in self.unpreempted)
            _print(f"{what}_p99_ms_not_preempted", _p99(millis), 3)


class _ReferenceTask:
    """A fixed pure-CPU task (about 0.1 ms of SHA-256), timed once after every inclusion proof.

    It reads nothing and allocates almost nothing, so its tail latency is the
    machine's: the time the thread waited for a core that another process held.
    An inclusion p99 close to this task's p99 is scheduling, not the log.
    """

    ITERATIONS = 400

    def __init__(self) -> None:
        self.times: list[float] = []
        self.cpu: list[float] = []

    def run(self) -> None:
        sha256 = hashlib.sha256
        value = bytes(64)
        t0, w0 = time.thread_time(), time.perf_counter()
        for _ in range(self.ITERATIONS):
            value = sha256(value).digest() * 2
        w1, t1 = time.perf_counter(), time.thread_time()
        self.times.append(w1 - w0)
        self.cpu.append(t1 - t0)

    def report(self) -> None:
        _report_latency("reference_task", self.times, self.cpu, None)


class _ReadCounter:
    """Counts the point reads of one call by wrapping ``store.get`` for that call only.

    The timed calls go through the plain ``Store.get``, so the count costs them nothing.
    """

    def __init__(self, store: Store) -> None:
        self._store = store

    def reads_during(self, action) -> int:
        plain = self._store.get
        count = 0

        def counting(key: bytes) -> bytes | None:
            nonlocal count
            count += 1
            return plain(key)

        self._store.get = counting  # type: ignore[method-assign]
        try:
            action()
        finally:
            del self._store.get
        return count


# ---- worker: pymerkle --------------------------------------------------------


def _worker_pymerkle(args: argparse.Namespace, *, sqlite: bool) -> None:
    import pymerkle

    rss_start = _vm_kib("VmHWM")
    os.makedirs(args.dir, exist_ok=True)
    leaves_read = [0]
    if sqlite:

        class CountingSqliteTree(pymerkle.SqliteTree):
            def _get_leaves(self, offset, width):
                rows = super()._get_leaves(offset, width)
                leaves_read[0] += len(rows)
                return rows

        db_path = os.path.join(args.dir, "merkle.db")
        tree = CountingSqliteTree(db_path)
    else:
        tree = pymerkle.InmemoryTree()

    # The entries list is built outside the timed part: pymerkle takes a list of
    # bytes objects where our log takes the concatenated bytes.
    entries: list[bytes] = []

    def append(_data: bytes) -> None:
        tree.append_entries(entries)

    def prepare(data: bytes) -> None:
        entries[:] = [data[i : i + HASH_SIZE] for i in range(0, len(data), HASH_SIZE)]

    memory = _MemorySampler()
    appends = _append_all(args, append, "pymerkle-sqlite" if sqlite else "pymerkle-memory", memory, prepare)
    size = tree.get_size()
    assert size == args.roots
    root = tree.get_root()
    if args.expect_root is not None:
        _print("root_matches_ours", int(root.hex() == args.expect_root))
        expect = bytes.fromhex(args.expect_root)
    else:
        expect = root
    _report_appends(args.roots, appends)

    rng = random.Random(args.seed)
    indices = [rng.randrange(size) for _ in range(args.proofs)]
    old_sizes = [rng.randrange(1, size + 1) for _ in range(args.proofs)]
    reference = _ReferenceTask()
    verified = 0

    times, cpu, reads, lengths = [], [], [], []
    for number, index in enumerate(indices):
        before = leaves_read[0]
        t0, w0 = time.thread_time(), time.perf_counter()
        proof = tree.prove_inclusion(index + 1)  # pymerkle counts leaves from one
        w1, t1 = time.perf_counter(), time.thread_time()
        times.append(w1 - w0)
        cpu.append(t1 - t0)
        reads.append(leaves_read[0] - before)
        leaf = leaf_hash(_root_at(args.seed, args.batch, index))
        # pymerkle's path starts with the leaf hash itself; RFC 9162 PATH is the rest.
        assert proof.path[0] == leaf
        lengths.append(len(proof.path) - 1)
        verify_inclusion(leaf, index, size, proof.path[1:], expect)
        verified += 1
        reference.run()
        if number % 64 == 0:
            memory.sample()
    _report_latency("inclusion", times, cpu, reads if sqlite else None, "leaves_read")
    reference.report()
    _print("inclusion_path_len_mean", statistics.fmean(lengths), 1)

    _print("inclusion_verified_by_ours", verified)

    # pymerkle's consistency proofs are not RFC 9162 PROOF(m, D[n]): the path goes
    # down to single leaves and carries the old tree's perfect subtrees explicitly
    # (flagged by ``subset``), so an RFC 9162 verifier cannot check them. They are
    # checked with pymerkle's own verifier, against our root at the final size.
    times, cpu, reads, lengths = [], [], [], []
    verified = 0
    for number, size1 in enumerate(old_sizes):
        before = leaves_read[0]
        t0, w0 = time.thread_time(), time.perf_counter()
        proof = tree.prove_consistency(size1)
        w1, t1 = time.perf_counter(), time.thread_time()
        times.append(w1 - w0)
        cpu.append(t1 - t0)
        reads.append(leaves_read[0] - before)
        lengths.append(len(proof.path))
        pymerkle.verify_consistency(tree.get_root(size1), expect, proof, prior_size=size1, later_size=size)
        verified += 1
        if number % 64 == 0:
            memory.sample()
    _report_latency("consistency", times, cpu, reads if sqlite else None, "leaves_read")
    _print("consistency_path_len_mean", statistics.fmean(lengths), 1)
    _print("consistency_verified_by_pymerkle", verified)

    memory.report(rss_start)
    if sqlite:
        tree.close()
        disk = _du_bytes(args.dir)
        _print("disk_bytes", disk)
        _print("disk_bytes_per_root", disk / size, 1)


# ---- shared ------------------------------------------------------------------


def _batch_roots(seed: int, batch_number: int, count: int) -> bytes:
    """The roots of one batch: SHAKE-256 output, reproducible from the seed and batch number."""
    return hashlib.shake_256(b"storage-scale %d %d" % (seed, batch_number)).digest(count * HASH_SIZE)


def _root_at(seed: int, batch: int, index: int) -> bytes:
    number, offset = divmod(index, batch)
    return _batch_roots(seed, number, offset + 1)[offset * HASH_SIZE :]


class _Appends:
    """Per batch: wall seconds, main-thread CPU seconds and process CPU seconds (all threads).

    Process CPU minus main-thread CPU is what LevelDB's background thread spent
    (memtable flushes and compactions); wall above process CPU means waiting: for
    fsync, for a write stall, or for a core another process holds.
    """

    def __init__(self) -> None:
        self.wall: list[float] = []
        self.thread_cpu: list[float] = []
        self.process_cpu: list[float] = []
        self.sizes: list[int] = []


def _process_cpu() -> float:
    """CPU seconds of every thread of this process (CLOCK_PROCESS_CPUTIME_ID)."""
    return time.process_time()


def _append_all(args: argparse.Namespace, append, label: str, memory: _MemorySampler, prepare=None) -> _Appends:
    """Append ``args.roots`` roots in batches, timing each batch's append call alone."""
    record = _Appends()
    started = time.perf_counter()
    next_tenth = 1
    for number, first in enumerate(range(0, args.roots, args.batch)):
        data = _batch_roots(args.seed, number, min(args.batch, args.roots - first))
        if prepare is not None:
            prepare(data)
        c0, t0, w0 = _process_cpu(), time.thread_time(), time.perf_counter()
        append(data)
        w1, t1, c1 = time.perf_counter(), time.thread_time(), _process_cpu()
        record.wall.append(w1 - w0)
        record.thread_cpu.append(t1 - t0)
        record.process_cpu.append(c1 - c0)
        record.sizes.append(len(data) // HASH_SIZE)
        if number % 16 == 0:
            memory.sample()
        done = first + len(data) // HASH_SIZE
        if done * TENTHS >= next_tenth * args.roots:
            print(
                f"#   {label}: {done:,} roots, {done / sum(record.wall):,.0f} roots/s so far, "
                f"{time.perf_counter() - started:.0f} s, VmRSS {_vm_kib('VmRSS') / 1024:.0f} MB "
                f"(anon {_vm_kib('RssAnon') / 1024:.0f}), load {os.getloadavg()[0]:.1f}",
                file=sys.stderr, flush=True,
            )  # fmt: skip
            while done * TENTHS >= next_tenth * args.roots:
                next_tenth += 1
    memory.sample()
    return record


def _report_appends(roots: int, record: _Appends) -> None:
    total = sum(record.wall)
    _print("roots", roots)
    _print("append_s", total, 2)
    _print("append_roots_per_s", roots / total, 0)
    _print("append_main_thread_cpu_us_per_root", sum(record.thread_cpu) / roots * 1e6, 2)
    _print("append_process_cpu_us_per_root", sum(record.process_cpu) / roots * 1e6, 2)
    # Each tenth: the batches whose first root falls in it (batch granularity).
    tenths = [[0, 0.0, 0.0, 0.0] for _ in range(TENTHS)]
    first = 0
    rows = zip(record.wall, record.thread_cpu, record.process_cpu, record.sizes)
    for wall, thread_cpu, process_cpu, count in rows:
        tenth = tenths[min(TENTHS - 1, first * TENTHS // roots)]
        tenth[0] += count
        tenth[1] += wall
        tenth[2] += thread_cpu
        tenth[3] += process_cpu
        first += count
    # A tenth holds no batch only when there are fewer than ten batches: left out.
    kept = [(number, tenth) for number, tenth in enumerate(tenths, 1) if tenth[0]]
    for number, (count, wall, _, _) in kept:
        _print(f"append_roots_per_s_tenth_{number}", count / wall, 0)
    for number, (count, _, thread_cpu, process_cpu) in kept:
        _print(f"append_main_thread_cpu_us_per_root_tenth_{number}", thread_cpu / count * 1e6, 2)
        _print(f"append_process_cpu_us_per_root_tenth_{number}", process_cpu / count * 1e6, 2)
    (_, (first_count, first_wall, _, first_cpu)), (_, (last_count, last_wall, _, last_cpu)) = kept[0], kept[-1]
    _print("append_roots_per_s_last_tenth", last_count / last_wall, 0)
    _print("append_last_tenth_over_first", (last_count / last_wall) / (first_count / first_wall), 3)
    # The same comparison in process CPU per root: unlike the wall-clock rate, it does
    # not move with whatever else the machine runs meanwhile.
    if first_cpu > 0:
        _print("append_cpu_last_tenth_over_first", (last_cpu / last_count) / (first_cpu / first_count), 3)
    millis = sorted(s * 1e3 for s in record.wall)
    _print("append_batch_p50_ms", statistics.median(millis), 2)
    _print("append_batch_p99_ms", _p99(millis), 2)
    _print("append_batch_max_ms", millis[-1], 2)


class _MemorySampler:
    """Peaks of the anonymous and the file-backed resident set, sampled outside timed parts.

    VmHWM (the kernel's own peak) counts both. LevelDB maps its table files
    (mmap, up to 1000 of them), so every page of a table it has read stays in the
    process's RSS as a file-backed page, a page of the page cache that the kernel
    can drop at any time and that other processes share; RssAnon is the memory the
    process itself allocated (Python objects, memtable, block cache, LevelDB's
    table metadata).
    """

    def __init__(self) -> None:
        self.anon_kib = 0
        self.file_kib = 0

    def sample(self) -> None:
        fields = _status_kib(("RssAnon", "RssFile"))
        self.anon_kib = max(self.anon_kib, fields["RssAnon"])
        self.file_kib = max(self.file_kib, fields["RssFile"])

    def report(self, rss_start_kib: int) -> None:
        self.sample()
        _print("rss_mb_max", _vm_kib("VmHWM") / 1024, 1)
        _print("rss_anon_mb_max", self.anon_kib / 1024, 1)
        _print("rss_file_mb_max", self.file_kib / 1024, 1)
        _print("rss_mb_start", rss_start_kib / 1024, 1)


def _report_latency(
    what: str, times: list[float], cpu: list[float], reads: list[int] | None, unit: str = "reads"
) -> None:
    """Wall-clock latency, and the same calls' CPU time in this thread (no preemption in it)."""
    millis = sorted(t * 1e3 for t in times)
    _print(f"{what}_p50_ms", statistics.median(millis), 3)
    _print(f"{what}_p99_ms", _p99(millis), 3)
    _print(f"{what}_mean_ms", statistics.fmean(millis), 3)
    _print(f"{what}_max_ms", millis[-1], 3)
    cpu_millis = sorted(t * 1e3 for t in cpu)
    _print(f"{what}_cpu_p50_ms", statistics.median(cpu_millis), 3)
    _print(f"{what}_cpu_p99_ms", _p99(cpu_millis), 3)
    if reads is not None:
        _print(f"{what}_{unit}_per_proof_mean", statistics.fmean(reads), 1)
        _print(f"{what}_{unit}_per_proof_max", max(reads))


def _p99(sorted_values: list[float]) -> float:
    return sorted_values[min(len(sorted_values) - 1, int(len(sorted_values) * 0.99))]


def _print(name: str, value: float, digits: int | None = None) -> None:
    text = str(value) if digits is None else f"{value:.{digits}f}"
    print(f"{name}={text}", flush=True)


def _vm_kib(field: str) -> int:
    """A ``Vm*`` or ``Rss*`` line of /proc/self/status in KiB (VmHWM: the peak resident set)."""
    return _status_kib((field,))[field]


def _status_kib(names: tuple[str, ...]) -> dict[str, int]:
    found = {}
    with open("/proc/self/status") as status:
        for line in status:
            name, _, rest = line.partition(":")
            if name in names:
                found[name] = int(rest.split()[0])
    missing = set(names) - set(found)
    if missing:
        raise RuntimeError(f"{sorted(missing)} not in /proc/self/status")
    return found


def _leveldb_table_writes_mb(store: Store) -> float:
    """Sum of the Write(MB) column of ``leveldb.stats`` (one row per level)."""
    total = 0.0
    for line in (store.property("leveldb.stats") or "").splitlines():
        fields = line.split()
        if len(fields) == 6 and fields[0].isdigit():
            total += float(fields[5])
    return total


def _du_bytes(path: str) -> int:
    out = subprocess.run(["du", "-s", "--block-size=1", path], capture_output=True, text=True, check=True)
    return int(out.stdout.split()[0])


def _file_bytes(path: str) -> dict[str, int]:
    """Apparent sizes by LevelDB file kind: tables (*.ldb), write-ahead log (*.log), the rest."""
    sizes = {"table": 0, "wal": 0, "other": 0, "tables": 0}
    for name in os.listdir(path):
        size = os.path.getsize(os.path.join(path, name))
        if name.endswith((".ldb", ".sst")):
            sizes["table"] += size
            sizes["tables"] += 1
        elif name.endswith(".log"):
            sizes["wal"] += size
        else:
            sizes["other"] += size
    return sizes


if __name__ == "__main__":
    main()
