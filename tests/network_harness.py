"""Helpers for tests that run real validator processes on loopback (through devnet.cluster)."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import httpx

from devnet import cluster


def wait_until(predicate: Callable[[], Any], *, deadline_s: float, what: str, poll_s: float = 0.2) -> Any:
    """Poll ``predicate`` until it returns a truthy value; fail naming ``what`` at the deadline."""
    deadline = time.monotonic() + deadline_s
    last_error: Exception | None = None
    while time.monotonic() < deadline:
        try:
            value = predicate()
            if value:
                return value
        except (httpx.HTTPError, OSError) as exc:
            last_error = exc
        time.sleep(poll_s)
    raise AssertionError(f"timed out after {deadline_s}s waiting for {what} (last error: {last_error})")


class Network:
    def __init__(self, state: cluster.DevnetState) -> None:
        self.state = state
        self.http = httpx.Client(timeout=10.0)

    def url(self, index: int) -> str:
        return self.state.nodes[index].api_url

    def status(self, index: int) -> dict[str, Any]:
        return self.http.get(f"{self.url(index)}/healthz").json()

    def submit(self, index: int, roots: list[bytes]) -> httpx.Response:
        return self.http.post(
            f"{self.url(index)}/v1/roots",
            json={"roots": [r.hex() for r in roots]},
            headers={"Authorization": f"Bearer {self.state.token}"},
        )

    def root_state(self, index: int, root: bytes) -> str | None:
        response = self.http.get(f"{self.url(index)}/v1/roots/{root.hex()}")
        return response.json()["state"] if response.status_code == 200 else None

    def log_sizes(self, indices: list[int] | None = None) -> list[int]:
        return [self.status(i)["log_size"] for i in (indices if indices is not None else range(len(self.state.nodes)))]

    def all_ready(self) -> bool:
        try:
            return all(self.status(i)["ok"] for i in range(len(self.state.nodes)))
        except (httpx.HTTPError, OSError, KeyError):
            return False

    def kill9(self, index: int) -> None:
        entry = self.state.nodes[index]
        assert entry.pid is not None and cluster.is_running(entry)
        os.kill(entry.pid, 9)
        wait_until(lambda: not cluster.is_running(entry) or _reaped(entry), deadline_s=10, what=f"node {index} to die")
        entry.pid = None

    def close(self) -> None:
        self.http.close()


@contextmanager
def running(state: cluster.DevnetState) -> Iterator[Network]:
    """Start every node of ``state``, wait for a full mesh, and stop them all afterwards."""
    cluster.start(state)
    net = Network(state)
    try:
        wait_until(net.all_ready, deadline_s=60, what=f"{len(state.nodes)} nodes to answer /healthz")
        mesh = len(state.nodes) - 1
        wait_until(lambda: all(net.status(i)["peers"] == mesh for i in range(len(state.nodes))), deadline_s=60,
                   what="a full mesh of peers")
        yield net
    finally:
        net.close()
        cluster.stop(state)


def _reaped(entry: cluster.NodeEntry) -> bool:
    try:
        os.waitpid(entry.pid, os.WNOHANG)
    except ChildProcessError:
        return True
    return not cluster.is_running(entry)


def random_roots(count: int) -> list[bytes]:
    return [os.urandom(32) for _ in range(count)]
