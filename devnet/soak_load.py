"""The soak's load: batches of random roots to random live validators, each outcome recorded.

A root counts as *acknowledged* only on a 202: the node promises never to lose it, and
the soak checks that promise at the end. A request that got no answer (the node was
killed or stopped mid-request, a timeout, a reset) is *unanswered*: its roots may or may
not have been stored, so the end checks look them up instead of expecting them. A 429
or 503 is honoured: that node gets nothing more until its Retry-After has passed.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

import httpx
import trio

BATCH_ROOTS = 25
INTERVAL_S = 0.25
HTTP_TIMEOUT_S = 5.0
RETRY_AFTER_S_DEFAULT = 1
RETRY_AFTER_S_MAX = 30
ROOT_BYTES = 32


@dataclass
class LoadLedger:
    acknowledged: list[bytes] = field(default_factory=list)
    unanswered: list[bytes] = field(default_factory=list)
    refused_by_status: Counter[int] = field(default_factory=Counter)
    """Roots refused, by HTTP status (never stored: not checked further)."""
    backoffs: int = 0
    undelivered: int = 0
    """Roots of requests that found no node listening (it was restarting): never sent."""

    def lines(self, elapsed_s: float) -> list[str]:
        refused = ", ".join(f"{n} with {status}" for status, n in sorted(self.refused_by_status.items())) or "none"
        return [
            f"roots acknowledged (202)  {len(self.acknowledged)} in {elapsed_s:.0f} s",
            f"roots unanswered          {len(self.unanswered)} (node killed/stopped mid-request or timed out)",
            f"roots refused             {refused}; Retry-After honoured {self.backoffs} times; "
            f"{self.undelivered} not delivered (no node listening)",
        ]


def retry_after_s(response: httpx.Response) -> int:
    text = response.headers.get("retry-after", "")
    seconds = int(text) if text.isdigit() else RETRY_AFTER_S_DEFAULT
    return min(max(seconds, 1), RETRY_AFTER_S_MAX)


async def run_load(
    client: httpx.AsyncClient,
    urls: list[str],
    token: str,
    rng: random.Random,
    available: Callable[[], set[int]],
    ledger: LoadLedger,
    *,
    until: float,
) -> None:
    """Submit a batch every INTERVAL_S to one random node of ``available()`` until trio time ``until``."""
    headers = {"Authorization": f"Bearer {token}"}
    backoff_until = [0.0] * len(urls)
    while trio.current_time() < until:
        now = trio.current_time()
        nodes = sorted(i for i in available() if backoff_until[i] <= now)
        if nodes:
            node = rng.choice(nodes)
            roots = [rng.randbytes(ROOT_BYTES) for _ in range(BATCH_ROOTS)]
            try:
                response = await client.post(
                    f"{urls[node]}/v1/roots", json={"roots": [r.hex() for r in roots]}, headers=headers
                )
            except httpx.ConnectError:
                ledger.undelivered += len(roots)
            except httpx.HTTPError:
                ledger.unanswered.extend(roots)
            else:
                if response.status_code == 202:
                    ledger.acknowledged.extend(roots)
                else:
                    ledger.refused_by_status[response.status_code] += len(roots)
                    if response.status_code in (429, 503):
                        ledger.backoffs += 1
                        backoff_until[node] = trio.current_time() + retry_after_s(response)
        await trio.sleep(INTERVAL_S)


def new_client() -> httpx.AsyncClient:
    """One keep-alive client for the load and the end checks."""
    return httpx.AsyncClient(timeout=HTTP_TIMEOUT_S, limits=httpx.Limits(max_keepalive_connections=16))
