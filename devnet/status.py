"""Reading a running devnet: each node's health and checkpoint over its HTTP API."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from typing import Any

from anchor.rpc import BitcoindAuthError, BitcoindRPCError, BitcoindUnavailable
from devnet import regtest
from devnet.cluster import DevnetState, pid_alive

HTTP_TIMEOUT_S = 2.0


@dataclass
class NodeStatus:
    index: int
    running: bool
    api_url: str
    healthy: bool = False
    detail: dict[str, Any] = field(default_factory=dict)
    error: str | None = None


def get_json(url: str, *, timeout_s: float = HTTP_TIMEOUT_S) -> Any:
    with urllib.request.urlopen(url, timeout=timeout_s) as response:
        return json.loads(response.read())


def node_status(state: DevnetState) -> list[NodeStatus]:
    statuses = []
    for entry in state.nodes:
        status = NodeStatus(index=entry.index, running=pid_alive(entry.pid), api_url=entry.api_url)
        if status.running:
            try:
                health = get_json(f"{entry.api_url}/healthz")
                status.healthy = bool(health.get("ok"))
                status.detail = health
            except urllib.error.HTTPError as exc:
                status.error = f"HTTP {exc.code}"
            except (urllib.error.URLError, OSError, ValueError) as exc:
                status.error = f"no answer ({getattr(exc, 'reason', exc)})"
        statuses.append(status)
    return statuses


def bitcoin_summary(state: DevnetState) -> str:
    """One line about the devnet's bitcoind and miner, for the status table."""
    info = state.bitcoin
    if info is None:
        return "no bitcoind"
    miner = f"miner pid {info.get('miner_pid')}" if info.get("miner_pid") else "miner stopped"
    try:
        blocks = regtest.rpc(info).call("getblockcount", timeout_s=HTTP_TIMEOUT_S)
    except (BitcoindUnavailable, BitcoindAuthError, BitcoindRPCError) as exc:
        return f"regtest bitcoind: {str(exc)[:120]}; {miner}"
    return f"regtest bitcoind pid {info.get('pid')} 127.0.0.1:{info['rpc_port']}, height {blocks}; {miner}"
