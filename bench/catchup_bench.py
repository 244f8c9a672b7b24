"""How fast a validator that was down rejoins, against the live finalized rate (not a test).

Starts a fresh 4-validator devnet (real node processes, no Bitcoin), kills validator
3, then saturates the other three with ``--roots`` random roots: loader threads POST
batches of 1,000 round robin over validators 0-2, honouring 429/503 Retry-After (the
submitter token is unmetered, so the mempool and consensus set the pace). The
log growth at validator 0 while the loaders still have roots to send is the live
finalized rate under saturation: the same-run reference. Then validator 3 restarts
and catches up from its peers; its roots/s while doing so, over the live rate, is
``catchup_ratio_vs_live``. The caught-up log root must equal the others'.

``--profile DIR`` attaches py-spy (raw folded stacks) to the catching-up validator and
to validator 0 (a server) for the catch-up, into ``DIR/catchup_client.txt`` and
``DIR/catchup_server.txt``.

Run: ``.venv/bin/python -m bench.catchup_bench [--roots 1000000] [--block-roots-max N]``
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from bench.network_bench import BATCH_ROOTS, Client
from devnet import cluster
from tests.network_harness import Network, running, wait_until

LIVE = (0, 1, 2)
DOWN = 3
LOADERS = 4
POLL_S = 0.05
PY_SPY = Path(sys.executable).with_name("py-spy")


class Loader:
    """Threads that submit ``roots`` random roots in batches until every batch is accepted."""

    def __init__(self, state: cluster.DevnetState, roots: int, threads: int) -> None:
        self._state = state
        self._batches = roots // BATCH_ROOTS
        self._next = 0
        self._lock = threading.Lock()
        self._threads = [threading.Thread(target=self._run, args=(offset,), daemon=True) for offset in range(threads)]

    def _claim(self) -> int | None:
        with self._lock:
            if self._next >= self._batches:
                return None
            self._next += 1
            return self._next - 1

    def _run(self, offset: int) -> None:
        clients = [Client(self._state.nodes[index].api_url, self._state.token) for index in LIVE]
        turn = offset
        while (batch := self._claim()) is not None:
            roots = os.urandom(32 * BATCH_ROOTS)
            while True:
                status, retry_after_s = clients[turn % len(clients)].submit(roots)
                turn += 1
                if status == 202:
                    break
                if status not in (429, 503):
                    raise RuntimeError(f"submission of batch {batch} answered {status}")
                time.sleep(max(retry_after_s, POLL_S))

    def start(self) -> None:
        for thread in self._threads:
            thread.start()

    def join(self) -> None:
        for thread in self._threads:
            thread.join()


def _configure(config: str, block_roots_max: int | None) -> None:
    """Unmeter the submitter token, so that the load saturates consensus and not the token's quota."""
    path = Path(config)
    text = path.read_text().replace("[api]\n", "[api]\ntoken_roots_per_s = 0\ntoken_backlog_roots = 0\n", 1)
    if block_roots_max is not None:
        text = text.replace("[consensus]\n", f"[consensus]\nblock_roots_max = {block_roots_max}\n", 1)
    path.write_text(text)


def _metric(network: Network, index: int, name: str) -> float:
    """A counter from a validator's /metrics (0 if it has not been touched)."""
    text = network.http.get(f"{network.url(index)}/metrics").text
    return sum(float(line.split()[-1]) for line in text.splitlines() if line.startswith(name + " "))


def _served(network: Network) -> tuple[float, float]:
    """Catch-up requests refused and answer bytes sent, summed over the live validators."""
    return (sum(_metric(network, index, "pantheon_catchup_refused_total") for index in LIVE),
            sum(_metric(network, index, "pantheon_catchup_served_bytes_total") for index in LIVE))


def _profile(pid: int, seconds: float, out: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [str(PY_SPY), "record", "--pid", str(pid), "--duration", str(max(1, int(seconds))), "--format", "raw",
         "--rate", "50", "-o", str(out)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )


def measure(roots: int, block_roots_max: int | None, profile_dir: Path | None, profile_s: float,
            workdir: Path | None) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as directory:
        state = cluster.create(workdir or Path(directory) / "devnet", 4)
        for entry in state.nodes:
            _configure(entry.config, block_roots_max)
        with running(state) as network:
            network.kill9(DOWN)
            live_started = time.monotonic()
            size_started = network.status(0)["log_size"]
            loader = Loader(state, roots, LOADERS)
            loader.start()
            loader.join()
            live_elapsed = time.monotonic() - live_started
            size_loaded = network.status(0)["log_size"]
            target = roots // BATCH_ROOTS * BATCH_ROOTS
            wait_until(lambda: network.log_sizes(list(LIVE)) == [target] * len(LIVE), deadline_s=900, poll_s=POLL_S,
                       what=f"the live validators to log {target} roots")
            drained_s = time.monotonic() - live_started
            live = network.status(0)
            figures = _catch_up(network, state, live, profile_dir, profile_s)
    live_rate = (size_loaded - size_started) / live_elapsed
    return {
        "roots_missed": target,
        "blocks_missed": live["height"],
        "live_load_s": live_elapsed,
        "live_finalized_roots_per_s": live_rate,
        "live_all_finalized_roots_per_s": target / drained_s,
        **figures,
        "catchup_ratio_vs_live": figures["catchup_roots_per_s"] / live_rate,
    }


def _catch_up(network: Network, state: cluster.DevnetState, live: dict, profile_dir: Path | None,
              profile_s: float) -> dict[str, float]:
    refused_before, served_before = _served(network)
    started = time.monotonic()
    cluster.start(state)
    profilers = []
    if profile_dir is not None:
        profile_dir.mkdir(parents=True, exist_ok=True)
        profilers.append(_profile(state.nodes[DOWN].pid, profile_s, profile_dir / "catchup_client.txt"))
        profilers.append(_profile(state.nodes[0].pid, profile_s, profile_dir / "catchup_server.txt"))
    wait_until(lambda: network.status(DOWN)["ok"], deadline_s=60, poll_s=POLL_S, what="the restarted validator")
    ready = time.monotonic()
    behind = network.status(DOWN)
    wait_until(lambda: network.status(DOWN)["log_size"] == live["log_size"], deadline_s=900, poll_s=POLL_S,
               what="the restarted validator to catch up")
    caught_up = time.monotonic()
    for profiler in profilers:
        profiler.wait()
    caught = network.status(DOWN)
    if caught["log_root"] != live["log_root"] or network.status(0)["log_root"] != live["log_root"]:
        raise RuntimeError(f"caught-up log root {caught['log_root']} differs from the live {live['log_root']}")
    catch_up_s = max(caught_up - ready, 1e-3)
    refused, served = _served(network)
    return {
        "catchup_requests_refused": refused - refused_before,
        "catchup_served_mib": (served - served_before) / 2**20,
        "restart_to_healthz_s": ready - started,
        "catchup_s": catch_up_s,
        "catchup_roots_per_s": (live["log_size"] - behind["log_size"]) / catch_up_s,
        "catchup_blocks_per_s": (live["height"] - behind["height"]) / catch_up_s,
        "log_root_match": 1,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--roots", type=int, default=1_000_000)
    parser.add_argument("--block-roots-max", type=int, default=None)
    parser.add_argument("--profile", type=Path, default=None, help="directory for py-spy profiles of the catch-up")
    parser.add_argument("--profile-seconds", type=float, default=10.0)
    parser.add_argument("--workdir", type=Path, default=None, help="keep the devnet (logs, data) in this new directory")
    args = parser.parse_args()
    if args.roots < BATCH_ROOTS:
        parser.error(f"--roots must be at least one batch ({BATCH_ROOTS})")
    figures = measure(args.roots, args.block_roots_max, args.profile, args.profile_seconds, args.workdir)
    print(f"# 4 validator processes on {os.cpu_count()} cores, loopback, no Bitcoin; validator {DOWN} down while "
          f"{LOADERS} loader threads send batches of {BATCH_ROOTS} to validators 0-2")
    print(f"# block_roots_max={args.block_roots_max or 'default'}")
    for name, value in figures.items():
        print(f"{name}={value:.3f}" if isinstance(value, float) else f"{name}={value}")


if __name__ == "__main__":
    main()
