"""The soak's end checks, over the nodes' public HTTP API and the devnet's bitcoind.

Each check returns the lines it prints and the violations it found; a violation is one
sentence naming what differs (node, height, root), so a failing soak says where to look.
The checks run after the chaos has stopped and every link is healed:

- convergence: every node reports the same height, block hash, log size and log root,
  with an empty mempool (within a deadline; a node that never gets there is a violation);
- roots: every acknowledged root is in the log (GET /v1/roots/{root}, certified or
  anchored), and the log holds exactly the acknowledged roots plus those unanswered
  requests that did get stored;
- blocks: at each height every node finalized the same block, and each block's parent is
  the block below it;
- anchors: every anchor is confirmed (its Bitcoin block on the best chain) or pending
  with a reason (its validator's own record state or an alert).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
import trio

POLL_S = 1.0
LOOKUP_TASKS = 4
"""Concurrent root look-ups on the checking node (keep-alive connections)."""
ANCHOR_PAGE_LIMIT = 100
MISSING_LISTED_MAX = 20
IN_LOG = ("certified", "anchored")
AGREEING_KEYS = ("height", "block_hash", "log_size", "log_root")


@dataclass
class CheckResult:
    lines: list[str] = field(default_factory=list)
    violations: list[str] = field(default_factory=list)


async def health(client: httpx.AsyncClient, url: str) -> dict[str, Any] | None:
    try:
        response = await client.get(f"{url}/healthz")
        return response.json() if response.status_code == 200 else None
    except (httpx.HTTPError, ValueError):
        return None


def disagreement(statuses: list[dict[str, Any] | None]) -> str | None:
    """Why these /healthz answers are not one converged state; None if they are."""
    if any(s is None for s in statuses):
        return "nodes not answering /healthz: " + str([i for i, s in enumerate(statuses) if s is None])
    for key in AGREEING_KEYS:
        values = [s.get(key) for s in statuses]
        if len(set(values)) > 1:
            return f"{key} differs: {values}"
    busy = [s.get("mempool_roots") for s in statuses]
    if any(busy):
        return f"mempools not empty: {busy}"
    return None


async def converge(client: httpx.AsyncClient, urls: list[str], deadline_s: float) -> tuple[list[dict], CheckResult]:
    """Wait until all nodes agree (see ``disagreement``); the last answers, and a violation at the deadline."""
    result = CheckResult()
    started = trio.current_time()
    while True:
        statuses = [await health(client, url) for url in urls]
        why = disagreement(statuses)
        waited_s = trio.current_time() - started
        if why is None:
            result.lines.append(f"converged after {waited_s:.1f} s: height {statuses[0]['height']}, "
                                f"log size {statuses[0]['log_size']}, log root {statuses[0]['log_root'][:16]}…")
            return statuses, result
        if waited_s > deadline_s:
            result.violations.append(f"no convergence within {deadline_s:.0f} s: {why}")
            return statuses, result
        await trio.sleep(POLL_S)


async def states_of(client: httpx.AsyncClient, url: str, roots: list[bytes]) -> list[str | None]:
    """Each root's state on one node (None: unknown there), looked up by a few tasks."""
    states: list[str | None] = [None] * len(roots)

    async def worker(start: int) -> None:
        for position in range(start, len(roots), LOOKUP_TASKS):
            response = await client.get(f"{url}/v1/roots/{roots[position].hex()}")
            if response.status_code == 200:
                states[position] = response.json().get("state")

    async with trio.open_nursery() as nursery:
        for start in range(LOOKUP_TASKS):
            nursery.start_soon(worker, start)
    return states


async def check_roots(
    client: httpx.AsyncClient, url: str, acknowledged: list[bytes], unanswered: list[bytes], statuses: list[dict]
) -> CheckResult:
    result = CheckResult()
    acked_states = await states_of(client, url, acknowledged)
    missing = [root for root, state in zip(acknowledged, acked_states) if state not in IN_LOG]
    stored_unanswered = sum(state in IN_LOG for state in await states_of(client, url, unanswered))
    expected = len(acknowledged) + stored_unanswered
    sizes = [s["log_size"] for s in statuses]
    result.lines.append(
        f"acknowledged roots in the log: {len(acknowledged) - len(missing)}/{len(acknowledged)}; "
        f"unanswered roots stored: {stored_unanswered}/{len(unanswered)}; "
        f"expected log size {expected}, log sizes {sizes}"
    )
    if missing:
        shown = ", ".join(root.hex() for root in missing[:MISSING_LISTED_MAX])
        result.violations.append(f"{len(missing)} acknowledged root(s) not in the log: {shown}")
    if any(size != expected for size in sizes):
        result.violations.append(f"log sizes {sizes} differ from the {expected} roots acknowledged or stored")
    roots_of_log = {s["log_root"] for s in statuses}
    result.lines.append(f"log roots: {len(roots_of_log)} distinct ({', '.join(r[:16] for r in sorted(roots_of_log))})")
    if len(roots_of_log) != 1:
        result.violations.append(f"nodes disagree on the log root: {sorted(roots_of_log)}")
    return result


async def check_blocks(client: httpx.AsyncClient, urls: list[str], height: int) -> CheckResult:
    """Blocks 1..height on every node: one hash per height, and a parent chain."""
    result = CheckResult()
    previous_hash: str | None = None
    for h in range(1, height + 1):
        hashes = []
        for url in urls:
            response = await client.get(f"{url}/v1/blocks/{h}")
            hashes.append(response.json() if response.status_code == 200 else None)
        known = {block["hash"] for block in hashes if block is not None}
        if len(known) > 1:
            result.violations.append(f"height {h}: different blocks finalized: {sorted(known)}")
        if any(block is None for block in hashes):
            result.violations.append(f"height {h}: no finalized block on node(s) "
                                     f"{[i for i, b in enumerate(hashes) if b is None]}")
        first = next((block for block in hashes if block is not None), None)
        if first is not None and previous_hash is not None and first["parent"] != previous_hash:
            result.violations.append(f"height {h}: parent {first['parent'][:16]}… is not block {h - 1}")
        previous_hash = first["hash"] if first is not None else None
    result.lines.append(f"blocks 1..{height} compared on {len(urls)} nodes: "
                        f"{'one block per height' if not result.violations else 'DIFFERENCES'}")
    return result


async def anchors_of(client: httpx.AsyncClient, url: str) -> list[dict[str, Any]]:
    """Every anchor entry a node lists, page by page."""
    entries: list[dict[str, Any]] = []
    start: int | None = 0
    while start is not None:
        response = await client.get(f"{url}/v1/anchors", params={"from_height": start, "limit": ANCHOR_PAGE_LIMIT})
        page = response.json()
        entries.extend(page["anchors"])
        start = page["next"]
    return entries


OWN_STATES_IN_PROGRESS = ("built", "broadcast", "confirmed", "double_spent")
"""A validator's own anchor record in one of these states explains a pending anchor; "final" does not."""


def pending_reason(entry: dict[str, Any]) -> str | None:
    parts = list(entry.get("alerts") or [])
    own_state = (entry.get("own") or {}).get("state")
    if own_state in OWN_STATES_IN_PROGRESS:
        parts.insert(0, f"own tx {own_state}")
    return ", ".join(parts) or None


async def settle_anchors(client: httpx.AsyncClient, urls: list[str], deadline_s: float) -> list[list[dict]]:
    """Wait (until the deadline) for every listed anchor on every node to be anchored; the last lists."""
    started = trio.current_time()
    while True:
        lists = [await anchors_of(client, url) for url in urls]
        settled = all(entry["state"] == "anchored" for entries in lists for entry in entries)
        if settled or trio.current_time() - started > deadline_s:
            return lists
        await trio.sleep(POLL_S)


def check_anchors(lists: list[list[dict]], on_best_chain: Callable[[str], bool]) -> CheckResult:
    """Anchored entries must sit in a block of bitcoind's best chain; pending ones need a reason.

    ``on_best_chain`` answers for every ``btc_block_hash`` listed, pending entries' too: a
    pending anchor whose block is on the best chain is named as such, since that is a
    node failing to see a confirmation rather than Bitcoin not having one."""
    result = CheckResult()
    for node, entries in enumerate(lists):
        anchored = [e for e in entries if e["state"] == "anchored"]
        pending = [e for e in entries if e["state"] != "anchored"]
        result.lines.append(f"node {node}: {len(anchored)} anchors confirmed, {len(pending)} pending"
                            + "".join(f"; height {e['height']}: {pending_reason(e) or 'NO REASON'}" for e in pending))
        for entry in anchored:
            if not on_best_chain(entry["btc_block_hash"]):
                result.violations.append(f"node {node}: anchor of height {entry['height']} (tx {entry['txid']}) "
                                         f"is 'anchored' in block {entry['btc_block_hash']}, not on the best chain")
        for entry in pending:
            if pending_reason(entry) is not None:
                continue
            block = entry.get("btc_block_hash")
            where = (f"; its Bitcoin block {block} (height {entry.get('btc_height')}) IS on the best chain"
                     if block and on_best_chain(block) else "")
            result.violations.append(f"node {node}: anchor of height {entry['height']} (tx {entry['txid']}) "
                                     f"pending without a reason{where}")
    if not any(e["state"] == "anchored" for entries in lists for e in entries):
        result.violations.append("no anchor confirmed on any node")
    return result
