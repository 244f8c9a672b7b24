"""`pantheon devnet load`: submit random roots at a steady rate, then follow them to Bitcoin.

Roots go out in small batches every TICK_S, round robin over the validators, so the
rate is steady rather than one burst. Afterwards every acknowledged root is followed
over the API until it is certified and then anchored, or the deadline passes; the
report counts each stage. Anchoring follows block height, so the newest roots are
checked first: while they are not there yet, the older ones are not asked about again
in that round (it keeps the polling to a few requests per second).
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass

import httpx

from devnet.cluster import DevnetState

TICK_S = 0.1
ROOTS_PER_REQUEST_MAX = 1000
RATE_MAX = 100_000
SECONDS_MAX = 3600
POLL_S = 1.0
HTTP_TIMEOUT_S = 10.0


@dataclass
class LoadReport:
    submitted: int
    acknowledged: int
    rejected: int
    certified: int
    anchored: int
    elapsed_s: float
    wait_s: float

    def lines(self) -> list[str]:
        return [
            f"submitted     {self.submitted} roots in {self.elapsed_s:.1f} s "
            f"({self.submitted / max(self.elapsed_s, 1e-9):.0f}/s)",
            f"acknowledged  {self.acknowledged}" + (f" (refused: {self.rejected})" if self.rejected else ""),
            f"certified     {self.certified}",
            f"anchored      {self.anchored}  (waited {self.wait_s:.1f} s)",
        ]


def submit_at_rate(state: DevnetState, client: httpx.Client, rate: int, seconds: float) -> tuple[list[bytes], int, float]:
    """Submit ``rate`` roots/s for ``seconds``; the acknowledged roots, the refused count, elapsed s."""
    if not 0 < rate <= RATE_MAX or not 0 < seconds <= SECONDS_MAX:
        raise ValueError(f"--rate must be in 1..{RATE_MAX} and --seconds in (0, {SECONDS_MAX}]")
    headers = {"Authorization": f"Bearer {state.token}"}
    total = int(rate * seconds)
    acknowledged: list[bytes] = []
    refused = 0
    started = time.monotonic()
    sent = 0
    node = 0
    while sent < total:
        due = min(total, int((time.monotonic() - started) * rate) + 1)
        while sent < due:
            count = min(due - sent, ROOTS_PER_REQUEST_MAX)
            roots = [os.urandom(32) for _ in range(count)]
            url = f"{state.nodes[node % len(state.nodes)].api_url}/v1/roots"
            node += 1
            try:
                response = client.post(url, json={"roots": [r.hex() for r in roots]}, headers=headers)
            except httpx.HTTPError:
                refused += count
            else:
                if response.status_code in (200, 202):
                    acknowledged.extend(roots)
                else:
                    refused += count
            sent += count
        time.sleep(TICK_S)
    return acknowledged, refused, time.monotonic() - started


def root_state(state: DevnetState, client: httpx.Client, root: bytes, node: int) -> str | None:
    try:
        response = client.get(f"{state.nodes[node % len(state.nodes)].api_url}/v1/roots/{root.hex()}")
    except httpx.HTTPError:
        return None
    return response.json().get("state") if response.status_code == 200 else None


def follow(state: DevnetState, client: httpx.Client, roots: list[bytes], deadline_s: float) -> tuple[int, int]:
    """Wait (until the deadline) for the roots to be certified, then anchored; the counts reached.

    A devnet without bitcoind never anchors, so there it waits for certification only.
    """
    reached: dict[str, set[int]] = {"certified": set(), "anchored": set()}
    wanted = {"certified": {"certified", "anchored"}, "anchored": {"anchored"}}
    stages = ("certified", "anchored") if state.bitcoin is not None else ("certified",)
    deadline = time.monotonic() + deadline_s
    for stage in stages:
        remaining = list(range(len(roots)))
        while remaining and time.monotonic() < deadline:
            still = []
            blocked = False
            for position in reversed(remaining):
                if not blocked and root_state(state, client, roots[position], position) in wanted[stage]:
                    reached[stage].add(position)
                    continue
                blocked = True
                still.append(position)
            remaining = sorted(still)
            if remaining:
                time.sleep(POLL_S)
    for stage in stages:
        for position in range(len(roots)):
            if position not in reached[stage] and root_state(state, client, roots[position], position) in wanted[stage]:
                reached[stage].add(position)
    return len(reached["certified"]), len(reached["anchored"])


def run_load(state: DevnetState, *, rate: int, seconds: float, wait_s: float) -> LoadReport:
    with httpx.Client(timeout=HTTP_TIMEOUT_S) as client:
        acknowledged, refused, elapsed = submit_at_rate(state, client, rate, seconds)
        started = time.monotonic()
        certified, anchored = follow(state, client, acknowledged, wait_s)
        return LoadReport(
            submitted=int(rate * seconds),
            acknowledged=len(acknowledged),
            rejected=refused,
            certified=certified,
            anchored=anchored,
            elapsed_s=elapsed,
            wait_s=time.monotonic() - started,
        )
