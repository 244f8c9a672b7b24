"""``pantheon bench``: throughput and latency of a 4-validator network of real processes.

Not a test: it prints figures, one ``name=value`` line each, for scripts to read.

The run, on this machine:

1. **Reference.** One process doing the least work a root costs a validator: the leaf
   hash, the tree nodes and the index entry (``MerkleLog.append``), one synced LevelDB
   batch per 1,000 roots, and one 4-signer ML-DSA-65 certificate signed and verified per
   batch. Four validators that each spent exactly this much per root would reach
   ``cores / 4`` of it (0.5 on two cores: ``even_share_ratio``). They can pass it: a block
   carries about 7,000 roots under one certificate, and a node's writes run beside its
   event loop.
2. **Saturation.** A fresh devnet (real ``pantheon node run`` processes, real P2P and
   LevelDB; regtest anchoring with ``--bitcoin``; the per-token quota lifted, so that the
   validators and not a producer's quota set the pace), driven for ``--seconds`` by loader
   threads that POST batches of 1,000 roots through the HTTP batch API as fast as the
   nodes accept them (round robin, honouring 429/503 Retry-After) while a node has fewer
   than 40,000 roots waiting (a deeper queue only adds latency). Probes submit one root
   every 200 ms and poll it until it is certified (and anchored, with ``--bitcoin``).
3. **Half load.** For half as long, the loaders are paced at half the finalized rate of
   step 2, and the probes measure latency again.

``--profile DIR`` samples node 0 with py-spy during saturation and prints its top
functions (a ``# `` comment block) and writes the raw samples to DIR.

Run: ``pantheon bench [--seconds 60] [--bitcoin] [--profile DIR]`` or ``make bench``.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from prometheus_client.parser import text_string_to_metric_families

from devnet import cluster

BATCH_ROOTS = 1_000
PROBE_INTERVAL_S = 0.2
PROBE_POLL_S = 0.01
BACKLOG_ROOTS = 40_000
"""Roots waiting at one node past which the loaders leave it alone (four 10,000-root blocks)."""
BACKLOG_POLL_S = 0.1
REFERENCE_ROOTS = 200_000
CERTIFICATE_SIGNERS = 4
WARMUP_S = 5.0
PROFILE_TOP = 25
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


class BenchError(Exception):
    """The bench could not run as asked (the network did not come up, a tool is missing)."""


# ---- the same-run reference ------------------------------------------------------


def reference_roots_per_s(roots_total: int = REFERENCE_ROOTS) -> float:
    """Roots/s of one process doing a validator's least work per root (see the module docstring)."""
    from proof.mldsa import SigningKey, verify
    from storage.db import Store
    from storage.merkle_log import MerkleLog

    keys = [SigningKey.generate() for _ in range(CERTIFICATE_SIGNERS)]
    batches = [os.urandom(32 * BATCH_ROOTS) for _ in range(roots_total // BATCH_ROOTS)]
    with tempfile.TemporaryDirectory() as directory, Store(Path(directory) / "db") as store:
        log = MerkleLog(store)
        started = time.perf_counter()
        for batch in batches:
            log.append(batch)
            message = log.root()
            for key in keys:
                if not verify(key.public_key, message, key.sign(message)):
                    raise BenchError("the reference certificate does not verify")
        rate = len(batches) * BATCH_ROOTS / (time.perf_counter() - started)
        log.close()
        return rate


# ---- talking to the nodes --------------------------------------------------------


class Client:
    """Keep-alive HTTP client that reconnects once when the server closed an idle connection."""

    def __init__(self, url: str, token: str) -> None:
        parsed = urlparse(url)
        self.address = (parsed.hostname or "127.0.0.1", parsed.port or 80)
        self.connection = http.client.HTTPConnection(*self.address, timeout=30)
        self.headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/octet-stream"}

    def _request(self, method: str, path: str, body: bytes | None = None) -> tuple[int, bytes, str | None]:
        for attempt in range(2):
            try:
                self.connection.request(method, path, body=body, headers=self.headers)
                response = self.connection.getresponse()
                return response.status, response.read(), response.getheader("Retry-After")
            except (http.client.HTTPException, ConnectionError):
                self.connection.close()
                self.connection = http.client.HTTPConnection(*self.address, timeout=30)
                if attempt:
                    raise
        raise AssertionError("unreachable")

    def submit(self, roots: bytes) -> tuple[int, float]:
        status, _body, retry_after = self._request("POST", "/v1/roots", roots)
        return status, float(retry_after or 0)

    def state(self, root: bytes) -> str | None:
        status, body, _ = self._request("GET", f"/v1/roots/{root.hex()}")
        return json.loads(body)["state"] if status == 200 else None

    def health(self) -> dict[str, Any]:
        return json.loads(self._request("GET", "/healthz")[1])

    def counters(self) -> dict[tuple[str, str], float]:
        """``(sample name, label values joined by ",")`` -> value, from /metrics."""
        text = self._request("GET", "/metrics")[1].decode()
        return {
            (sample.name, ",".join(sample.labels.values())): sample.value
            for family in text_string_to_metric_families(text)
            for sample in family.samples
        }

    def close(self) -> None:
        self.connection.close()


@contextmanager
def node_clients(state: cluster.DevnetState) -> Iterator[list[Client]]:
    """One keep-alive client per node, in node order, closed at the end."""
    clients = [Client(node.api_url, state.token) for node in state.nodes]
    try:
        yield clients
    finally:
        for client in clients:
            client.close()


def wait_for(predicate: Callable[[], bool], *, deadline_s: float, what: str) -> None:
    deadline = time.monotonic() + deadline_s
    while time.monotonic() < deadline:
        try:
            if predicate():
                return
        except (OSError, http.client.HTTPException, ValueError, KeyError):
            pass
        time.sleep(0.2)
    raise BenchError(f"timed out after {deadline_s:.0f} s waiting for {what}")


# ---- load and probes -------------------------------------------------------------


@dataclass
class Load:
    """Shared by the loader threads: the pace (None: as fast as the backlog allows) and the counts.

    At saturation a node's backlog is kept near ``BACKLOG_ROOTS``: past it the loaders skip
    that node until it drains. Without this a flood fills every mempool (1M roots each),
    and the nodes spend their CPU taking in roots that wait a minute to be finalized: the
    figure would measure ingest, and the latency the depth of the queue.
    """

    stop: threading.Event = field(default_factory=threading.Event)
    roots_per_s: float | None = None
    accepted: int = 0
    refused: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)
    backlog: dict[int, int] = field(default_factory=dict)


def loader(state: cluster.DevnetState, offset: int, loaders: int, load: Load) -> None:
    with node_clients(state) as clients:
        turn = offset
        next_at = time.monotonic()
        while not load.stop.is_set():
            index = turn % len(clients)
            if load.backlog.get(index, 0) > BACKLOG_ROOTS:
                turn += 1
                time.sleep(BACKLOG_POLL_S / len(clients))
                continue
            if load.roots_per_s is not None:
                next_at += BATCH_ROOTS * loaders / load.roots_per_s
                delay = next_at - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
                else:
                    next_at = time.monotonic()
            status, retry_after_s = clients[index].submit(os.urandom(32 * BATCH_ROOTS))
            turn += 1
            with load.lock:
                if status == 202:
                    load.accepted += BATCH_ROOTS
                else:
                    load.refused += BATCH_ROOTS
            if status != 202:
                time.sleep(min(max(retry_after_s, 0.05), 1.0))


def backlog_watcher(state: cluster.DevnetState, load: Load) -> None:
    with node_clients(state) as clients:
        while not load.stop.is_set():
            for index, client in enumerate(clients):
                load.backlog[index] = client.health()["mempool_roots"]
            time.sleep(BACKLOG_POLL_S)


@dataclass
class Probes:
    stop: threading.Event = field(default_factory=threading.Event)
    certified_ms: list[float] = field(default_factory=list)
    anchored_ms: list[float] = field(default_factory=list)
    pending_anchor: list[tuple[bytes, float, int]] = field(default_factory=list)


def prober(state: cluster.DevnetState, probes: Probes, anchors: bool) -> None:
    """Submit a root every PROBE_INTERVAL_S to the nodes in turn; time it to certified on the
    node it went to (and, with ``anchors``, follow it to anchored)."""
    with node_clients(state) as clients:
        turn = 0
        while not probes.stop.is_set():
            client = clients[turn % len(clients)]
            turn += 1
            root = os.urandom(32)
            started = time.monotonic()
            status, _ = client.submit(root)
            if status != 202:
                time.sleep(PROBE_INTERVAL_S)
                continue
            while not probes.stop.is_set() and client.state(root) not in ("certified", "anchored"):
                time.sleep(PROBE_POLL_S)
            if probes.stop.is_set():
                break
            probes.certified_ms.append((time.monotonic() - started) * 1000)
            if anchors and len(probes.pending_anchor) < 64:
                probes.pending_anchor.append((root, started, turn % len(clients)))
            time.sleep(max(0.0, PROBE_INTERVAL_S - (time.monotonic() - started)))


def anchor_watcher(state: cluster.DevnetState, probes: Probes, stop: threading.Event) -> None:
    """Poll the certified probes until each is anchored (a Bitcoin checkpoint covers it)."""
    with node_clients(state) as clients:
        while not stop.is_set():
            for entry in list(probes.pending_anchor):
                root, started, index = entry
                if clients[index].state(root) == "anchored":
                    probes.anchored_ms.append((time.monotonic() - started) * 1000)
                    probes.pending_anchor.remove(entry)
            time.sleep(0.25)


# ---- process figures -------------------------------------------------------------


def cpu_seconds(pid: int) -> float:
    """User + system CPU of a process (all its threads), from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def rss_high_water_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise BenchError(f"/proc/{pid}/status has no VmHWM")


def directory_bytes(path: Path) -> int:
    return sum(child.stat().st_size for child in path.rglob("*") if child.is_file())


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


# ---- profile ---------------------------------------------------------------------


@contextmanager
def profiled(pid: int, directory: Path | None, seconds: float) -> Iterator[list[str]]:
    """Sample ``pid`` with py-spy for ``seconds`` while the body runs; yields the lines of
    its top functions, filled in at exit."""
    lines: list[str] = []
    if directory is None:
        yield lines
        return
    py_spy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    if not Path(py_spy).exists():
        raise BenchError("--profile needs py-spy (pip install -e '.[bench]')")
    directory.mkdir(parents=True, exist_ok=True)
    raw = directory / f"node-{pid}.txt"
    process = subprocess.Popen(
        [py_spy, "record", "--pid", str(pid), "--duration", str(int(seconds)), "--rate", "200",
         "--format", "raw", "--output", str(raw), "--nonblocking"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )
    try:
        yield lines
    finally:
        _out, err = process.communicate(timeout=seconds + 60)
        if process.returncode != 0 or not raw.exists():
            raise BenchError(f"py-spy failed: {err.decode(errors='replace')[-400:]}")
        lines.extend(top_functions(raw.read_text()))


def top_functions(collapsed: str, top: int = PROFILE_TOP) -> list[str]:
    """The functions holding the most samples, by own time and by total time, from py-spy's
    collapsed-stack output (``frame;frame;... count`` per line)."""
    own: Counter[str] = Counter()
    total: Counter[str] = Counter()
    samples = 0
    for line in collapsed.splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = [_short(frame) for frame in stack.split(";")]
        samples += count
        own[frames[-1]] += count
        for frame in set(frames):
            total[frame] += count
    if not samples:
        return ["no samples"]
    out = [f"{samples} samples; own time:"]
    out += [f"  {100 * n / samples:5.1f}%  {frame}" for frame, n in own.most_common(top)]
    out.append("total time (with callees):")
    out += [f"  {100 * n / samples:5.1f}%  {frame}" for frame, n in total.most_common(top)]
    return out


def _short(frame: str) -> str:
    """``function (path/to/module.py:LINE)`` -> ``function (module.py)``; lines vary, functions do not."""
    name, _, where = frame.partition(" (")
    path = where.rstrip(")").rsplit(":", 1)[0]
    parts = Path(path).parts
    return f"{name} ({'/'.join(parts[-2:])})" if parts else name


# ---- the run ---------------------------------------------------------------------


@dataclass
class Phase:
    """What one load phase measured."""

    seconds: float
    finalized_roots_per_s: float
    accepted_roots_per_s: float
    certified_ms: list[float]
    anchored_ms: list[float]
    cpu_s: float
    finalized_roots: int
    backlog_roots: int
    """Roots waiting in the mempools at the end: a backlog shows the nodes, not the loaders, set the pace."""
    refused_roots: int
    view_timeouts: dict[str, float] = field(default_factory=dict)
    """Views timed out during the measured window, summed over the validators, by stage
    (consensus.core.Core.view_stage): each costs a probe that waits through it a whole timeout."""


def run_phase(state: cluster.DevnetState, seconds: float, *, pace: float | None, loaders: int,
              anchors: bool, warmup_s: float = WARMUP_S, profile_dir: Path | None = None) -> tuple[Phase, list[str]]:
    size_client = Client(state.nodes[0].api_url, state.token)
    pids = [node.pid for node in state.nodes if node.pid is not None]
    load = Load(roots_per_s=pace)
    probes = Probes()
    watcher_stop = threading.Event()
    threads = [threading.Thread(target=loader, args=(state, i, loaders, load), daemon=True) for i in range(loaders)]
    threads.append(threading.Thread(target=prober, args=(state, probes, anchors), daemon=True))
    threads.append(threading.Thread(target=backlog_watcher, args=(state, load), daemon=True))
    if anchors:
        threads.append(threading.Thread(target=anchor_watcher, args=(state, probes, watcher_stop), daemon=True))
    for thread in threads:
        thread.start()
    time.sleep(warmup_s)
    probes.certified_ms.clear()
    size_before = size_client.health()["log_size"]
    cpu_before = sum(cpu_seconds(pid) for pid in pids)
    accepted_before = load.accepted
    timeouts_before = view_timeouts(state)
    started = time.monotonic()
    with profiled(state.nodes[0].pid or 0, profile_dir, min(seconds, 30.0)) as profile:
        time.sleep(seconds)
    elapsed = time.monotonic() - started
    timeouts = {stage: count - timeouts_before.get(stage, 0.0) for stage, count in view_timeouts(state).items()}
    size_after = size_client.health()["log_size"]
    cpu_after = sum(cpu_seconds(pid) for pid in pids)
    with node_clients(state) as clients:
        backlog = sum(client.health()["mempool_roots"] for client in clients)
    accepted = load.accepted - accepted_before
    load.stop.set()
    probes.stop.set()
    if anchors:
        wait_for(lambda: not probes.pending_anchor, deadline_s=120, what="probes to be anchored")
    watcher_stop.set()
    for thread in threads:
        thread.join(timeout=60)
    size_client.close()
    finalized = size_after - size_before
    refused = load.refused
    return Phase(
        seconds=elapsed,
        finalized_roots_per_s=finalized / elapsed,
        accepted_roots_per_s=accepted / elapsed,
        certified_ms=list(probes.certified_ms),
        anchored_ms=list(probes.anchored_ms),
        cpu_s=cpu_after - cpu_before,
        finalized_roots=finalized,
        backlog_roots=backlog,
        refused_roots=refused,
        view_timeouts={stage: count for stage, count in timeouts.items() if count},
    ), profile


def view_timeouts(state: cluster.DevnetState) -> dict[str, float]:
    """Views timed out so far, summed over the validators, by stage."""
    out: Counter[str] = Counter()
    with node_clients(state) as clients:
        for client in clients:
            for (name, stage), value in client.counters().items():
                if name == "pantheon_view_timeouts_total":
                    out[stage] += value
    return dict(out)


def drain(state: cluster.DevnetState, deadline_s: float = 120) -> None:
    """Wait until every node's mempool is empty, so the next phase starts from no backlog."""
    with node_clients(state) as clients:
        wait_for(lambda: all(c.health()["mempool_roots"] == 0 for c in clients), deadline_s=deadline_s,
                 what="the mempools to drain")


@contextmanager
def kept_or_temporary(keep: Path | None) -> Iterator[str]:
    """``keep`` (created, left in place: the nodes' logs and stores stay for reading), or a
    temporary directory removed afterwards."""
    if keep is not None:
        keep.mkdir(parents=True, exist_ok=False)
        yield str(keep)
        return
    with tempfile.TemporaryDirectory(prefix="pantheon-bench-") as directory:
        yield directory


def start_network(directory: Path, *, bitcoin: bool, validators: int, log_level: str | None = None) -> cluster.DevnetState:
    info = None
    if bitcoin:
        from devnet import regtest
        from devnet.bitcoind import find_or_install

        info = regtest.new_info(directory, find_or_install(), validators, mine_every_s=1.0)
    state = cluster.create(directory, validators, bitcoin=info)
    for node in state.nodes:
        unmetered(Path(node.config))
        if log_level is not None:
            set_log_level(Path(node.config), log_level)
    if info is not None:
        cluster.start_bitcoin(state)
    cluster.start(state)
    with node_clients(state) as clients:
        wait_for(lambda: all(c.health()["ok"] for c in clients), deadline_s=90, what="the nodes to answer /healthz")
        wait_for(lambda: all(c.health()["peers"] == validators - 1 for c in clients), deadline_s=90,
                 what="every node to connect to every other")
    return state


def unmetered(config: Path) -> None:
    """Lift the per-token quota (node.api's 429s): the bench measures what the validators can
    finalize, not the rate an operator grants one producer (5,000 roots/s per node by default)."""
    text = config.read_text()
    if "[api]\n" not in text:
        raise BenchError(f"{config} has no [api] table to lift the token quota in")
    config.write_text(text.replace("[api]\n", "[api]\ntoken_roots_per_s = 0\ntoken_backlog_roots = 0\n", 1))


def set_log_level(config: Path, level: str) -> None:
    text = config.read_text()
    if "[node]\n" not in text:
        raise BenchError(f"{config} has no [node] table to set the log level in")
    config.write_text(text.replace("[node]\n", f'[node]\nlog_level = "{level}"\n', 1))


def figures(args: argparse.Namespace) -> list[tuple[str, float | int | str]]:
    reference = reference_roots_per_s(args.reference_roots)
    out: list[tuple[str, float | int | str]] = [("nproc", os.cpu_count() or 0), ("validators", args.validators)]
    with kept_or_temporary(args.keep) as directory:
        state = start_network(Path(directory) / "devnet", bitcoin=args.bitcoin, validators=args.validators,
                              log_level=args.log_level)
        try:
            full, profile = run_phase(state, args.seconds, pace=None, loaders=args.loaders, anchors=args.bitcoin,
                                      warmup_s=args.warmup_seconds, profile_dir=args.profile)
            drain(state)
            half, _ = run_phase(state, max(args.seconds / 2, 1.0), pace=max(full.finalized_roots_per_s / 2, BATCH_ROOTS),
                                loaders=args.loaders, anchors=False, warmup_s=args.warmup_seconds)
            rss = [rss_high_water_mb(node.pid) for node in state.nodes if node.pid is not None]
            with node_clients(state) as clients:
                log_size = clients[0].health()["log_size"]
                counters = [client.counters() for client in clients]
            disk = directory_bytes(Path(state.directory) / "node0" / "data")
        finally:
            cluster.stop(state)
        stalls = leveldb_write_stalls(Path(state.directory))
    out += [
        ("seconds", round(full.seconds, 1)),
        ("finalized_roots_per_s", round(full.finalized_roots_per_s)),
        ("accepted_roots_per_s", round(full.accepted_roots_per_s)),
        ("reference_roots_per_s", round(reference)),
        ("ratio", round(full.finalized_roots_per_s / reference, 3)),
        ("backlog_roots", full.backlog_roots),
        ("refused_roots", full.refused_roots),
        ("cpu_cores_used", round(full.cpu_s / full.seconds, 2)),
        ("even_share_ratio", round((os.cpu_count() or 1) / args.validators, 3)),
    ]
    out += latency_figures("certify", full.certified_ms)
    out += timeout_figures("view_timeouts", full.view_timeouts)
    out += latency_figures("certify_half", half.certified_ms)
    out += timeout_figures("view_timeouts_half", half.view_timeouts)
    out.append(("half_finalized_roots_per_s", round(half.finalized_roots_per_s)))
    if args.bitcoin:
        out += [("anchor_p50_ms", round(statistics.median(full.anchored_ms)) if full.anchored_ms else "none"),
                ("anchor_probes", len(full.anchored_ms))]
    out += [
        ("cpu_s_per_1000_roots", round(1000 * full.cpu_s / max(full.finalized_roots, 1), 4)),
        ("rss_mb_max", round(max(rss), 1)),
        *[(f"node{i}_rss_mb_max", round(value, 1)) for i, value in enumerate(rss)],
        ("log_size", log_size),
        ("disk_bytes_per_root", round(disk / max(log_size, 1), 1)),
        *traffic_figures(counters, log_size),
        ("leveldb_write_stalls", stalls),
    ]
    if profile:
        print("# profile of node 0 under saturation (py-spy):")
        for line in profile:
            print(f"#   {line}")
    return out


TRAFFIC_KINDS = {
    "p2p_gossip_bytes_per_root": ("roots",),
    "p2p_proposal_bytes_per_root": ("proposal", "compact_proposal", "segments_request", "segments_response"),
    "p2p_vote_and_certificate_bytes_per_root": ("vote", "certificate"),
}


def traffic_figures(counters: list[dict[tuple[str, str], float]], log_size: int) -> list[tuple[str, float | int | str]]:
    """Bytes all validators sent per logged root, by what they carried, and how proposals by
    reference fared (node.proposal_relay); "none" from a node that counts neither."""
    def summed(name: str, *labels: str) -> float:
        return sum(values.get((name, label), 0.0) for values in counters for label in labels)

    if not any(name == "pantheon_p2p_sent_bytes_total" for values in counters for name, _ in values):
        return [(figure, "none") for figure in (*TRAFFIC_KINDS, "compact_proposals_sent")]
    out: list[tuple[str, float | int | str]] = [
        (figure, round(summed("pantheon_p2p_sent_bytes_total", *kinds) / max(log_size, 1), 1))
        for figure, kinds in TRAFFIC_KINDS.items()
    ]
    out += [(f"compact_proposals_{outcome}", round(summed("pantheon_compact_proposals_total", outcome)))
            for outcome in ("sent", "rebuilt", "fetched", "mismatch", "abandoned")]
    return out


def leveldb_write_stalls(devnet: Path) -> int:
    """Times any validator's LevelDB stopped writes until a compaction or a memtable flush
    caught up (its LOG says "...; waiting..."): a synced write, and the vote or receipt behind
    it, waits that long. For reading a latency outlier, not a target."""
    return sum(
        log.read_text(errors="replace").count("waiting...")
        for log in devnet.glob("node*/data/LOG*")
    )


def timeout_figures(name: str, timeouts: dict[str, float]) -> list[tuple[str, float | int | str]]:
    """The count, and by stage: ``view_timeouts=3``, ``view_timeouts_stages=checking:1,no_proposal:2``."""
    stages = ",".join(f"{stage}:{round(count)}" for stage, count in sorted(timeouts.items())) or "none"
    return [(name, round(sum(timeouts.values()))), (f"{name}_stages", stages)]


def latency_figures(name: str, values: list[float]) -> list[tuple[str, float | int | str]]:
    if not values:
        return [(f"{name}_p50_ms", "none"), (f"{name}_p99_ms", "none"), (f"{name}_max_ms", "none"),
                (f"{name}_probes", 0)]
    return [(f"{name}_p50_ms", round(statistics.median(values))), (f"{name}_p99_ms", round(percentile(values, 0.99))),
            (f"{name}_max_ms", round(max(values))), (f"{name}_probes", len(values))]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--seconds", type=float, default=60.0,
                        help="length of the saturation phase (the half-load phase runs half as long; default 60)")
    parser.add_argument("--loaders", type=int, default=12, help="loader threads posting batches of 1,000 roots (12)")
    parser.add_argument("--validators", type=int, default=4, help="validators, 3f+1 (4)")
    parser.add_argument("--warmup-seconds", type=float, default=WARMUP_S,
                        help="load before each phase's measurement starts (5)")
    parser.add_argument("--reference-roots", type=int, default=REFERENCE_ROOTS,
                        help="roots the same-run reference appends (200,000)")
    parser.add_argument("--bitcoin", action="store_true", help="anchor on regtest and report anchor_p50_ms")
    parser.add_argument("--keep", type=Path, metavar="DIR",
                        help="run the devnet in DIR (new) and leave it there, the nodes' logs (node*/node.log) included")
    parser.add_argument("--log-level", choices=("debug", "info", "warning", "error"),
                        help="the validators' log level (default: the devnet's, info); debug logs each view timeout")
    parser.add_argument("--profile", type=Path, metavar="DIR",
                        help="sample node 0 with py-spy during saturation; print its top functions")


def run(args: argparse.Namespace) -> int:
    for name, value in figures(args):
        print(f"{name}={value}", flush=True)
    return 0


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "bench", help="throughput and latency of a local 4-validator network (prints name=value lines)",
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_arguments(parser)
    parser.set_defaults(handler=run)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_arguments(parser)
    raise SystemExit(run(parser.parse_args()))


if __name__ == "__main__":
    main()
