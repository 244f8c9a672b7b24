"""Throughput and latency of a 4-validator network on this machine (not a test).

Starts a fresh devnet (real node processes, no Bitcoin), then for ``--seconds``:
- loader threads POST batches of 1,000 random roots as fast as the nodes accept them
  (round robin over the nodes, honouring 429/503 Retry-After);
- a probe thread submits one root every 200 ms and polls it until it is certified,
  which gives submit -> certified latency under that load.
Prints finalized roots/s (log growth at node 0), acknowledged roots/s, latency
p50/p99, and as a same-run reference the single-process Merkle log append rate
(what one validator's storage alone can do), with the ratio between them.

Run: ``.venv/bin/python -m bench.network_bench [--seconds 20] [--loaders 2]``
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import statistics
import tempfile
import threading
import time
from pathlib import Path
from urllib.parse import urlparse

from devnet import cluster
from storage.db import Store
from storage.merkle_log import MerkleLog
from tests.network_harness import Network, wait_until

BATCH_ROOTS = 1_000
PROBE_INTERVAL_S = 0.2
PROBE_POLL_S = 0.01


class Client:
    """Keep-alive HTTP client that reconnects once when the server closed an idle connection."""

    def __init__(self, url: str, token: str) -> None:
        parsed = urlparse(url)
        self.address = (parsed.hostname, parsed.port)
        self.connection = http.client.HTTPConnection(*self.address, timeout=30)
        self.headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/octet-stream"}

    def _request(self, method: str, path: str, body: bytes | None = None) -> tuple[int, bytes, str | None]:
        for attempt in range(2):
            try:
                self.connection.request(method, path, body=body, headers=self.headers)
                response = self.connection.getresponse()
                return response.status, response.read(), response.getheader("Retry-After")
            except (http.client.RemoteDisconnected, ConnectionError):
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

    def log_size(self) -> int:
        return json.loads(self._request("GET", "/healthz")[1])["log_size"]


def loader(state: cluster.DevnetState, offset: int, stop: threading.Event, counts: list[int]) -> None:
    clients = [Client(node.api_url, state.token) for node in state.nodes]
    turn = offset
    while not stop.is_set():
        status, retry_after_s = clients[turn % len(clients)].submit(os.urandom(32 * BATCH_ROOTS))
        turn += 1
        if status == 202:
            counts[offset] += BATCH_ROOTS
        else:
            time.sleep(max(retry_after_s, 0.05))


def prober(state: cluster.DevnetState, stop: threading.Event, latencies_ms: list[float]) -> None:
    submit = Client(state.nodes[0].api_url, state.token)
    poll = Client(state.nodes[1].api_url, state.token)
    while not stop.is_set():
        root = os.urandom(32)
        started = time.monotonic()
        status, _ = submit.submit(root)
        if status != 202:
            time.sleep(PROBE_INTERVAL_S)
            continue
        while not stop.is_set() and poll.state(root) != "certified":
            time.sleep(PROBE_POLL_S)
        if not stop.is_set():
            latencies_ms.append((time.monotonic() - started) * 1000)
        time.sleep(max(0.0, PROBE_INTERVAL_S - (time.monotonic() - started)))


def reference_append_rate(roots_total: int = 200_000) -> float:
    with tempfile.TemporaryDirectory() as directory, Store(Path(directory) / "db") as store:
        log = MerkleLog(store)
        batches = [os.urandom(32 * BATCH_ROOTS) for _ in range(roots_total // BATCH_ROOTS)]
        started = time.perf_counter()
        for batch in batches:
            log.append(batch)
        return roots_total / (time.perf_counter() - started)


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--loaders", type=int, default=2)
    args = parser.parse_args()

    reference = reference_append_rate()
    with tempfile.TemporaryDirectory() as directory:
        state = cluster.create(Path(directory) / "devnet", 4)
        cluster.start(state)
        network = Network(state)
        try:
            wait_until(network.all_ready, deadline_s=60, what="nodes ready")
            wait_until(lambda: all(network.status(i)["peers"] == 3 for i in range(4)), deadline_s=60, what="mesh")
            size_client = Client(state.nodes[0].api_url, state.token)
            stop = threading.Event()
            counts = [0] * args.loaders
            latencies_ms: list[float] = []
            threads = [threading.Thread(target=loader, args=(state, i, stop, counts)) for i in range(args.loaders)]
            threads.append(threading.Thread(target=prober, args=(state, stop, latencies_ms)))
            size_before = size_client.log_size()
            started = time.monotonic()
            for thread in threads:
                thread.start()
            time.sleep(args.seconds)
            size_after = size_client.log_size()
            elapsed = time.monotonic() - started
            stop.set()
            for thread in threads:
                thread.join()
        finally:
            network.close()
            cluster.stop(state)

    finalized_rate = (size_after - size_before) / elapsed
    print(f"{'measure':<34} value")
    print(f"{'-' * 34} {'-' * 40}")
    print(f"{'validators':<34} 4 processes on {os.cpu_count()} cores, loopback, no Bitcoin")
    print(f"{'duration':<34} {elapsed:.1f} s, {args.loaders} loader threads, batches of {BATCH_ROOTS}")
    print(f"{'acknowledged roots/s':<34} {sum(counts) / elapsed:,.0f}")
    print(f"{'finalized roots/s (node 0 log)':<34} {finalized_rate:,.0f}")
    if latencies_ms:
        print(f"{'submit -> certified p50':<34} {statistics.median(latencies_ms):.0f} ms ({len(latencies_ms)} probes)")
        print(f"{'submit -> certified p99':<34} {percentile(latencies_ms, 0.99):.0f} ms")
    print(f"{'ref: one-process log append':<34} {reference:,.0f} roots/s")
    print(f"{'  finalized / reference':<34} {finalized_rate / reference:.2f}")


if __name__ == "__main__":
    main()
