"""``pantheon devnet up|status|down|load``: a local validator network for developers."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from rich.console import Console
from rich.live import Live
from rich.table import Table

from devnet import cluster
from devnet.status import NodeStatus, node_status

DEFAULT_DIR = Path("devnet-data")
READY_DEADLINE_S = 60.0
STATUS_REFRESH_S = 1.0


def _status_table(state: cluster.DevnetState, statuses: list[NodeStatus], rates: dict[int, float]) -> Table:
    table = Table(title=f"Pantheon devnet {state.chain_id[:16]}… ({state.directory})")
    for column in ("node", "state", "height", "view", "log size", "roots/s", "mempool", "peers", "api"):
        table.add_column(column)
    for s in statuses:
        d = s.detail
        state_text = "healthy" if s.healthy else ("starting" if s.running and not s.error else (s.error or "stopped"))
        table.add_row(
            str(s.index),
            state_text,
            str(d.get("height", "-")),
            str(d.get("view", "-")),
            str(d.get("log_size", "-")),
            f"{rates.get(s.index, 0.0):.0f}",
            str(d.get("mempool_roots", "-")),
            str(d.get("peers", "-")),
            s.api_url,
        )
    return table


def wait_ready(state: cluster.DevnetState, deadline_s: float = READY_DEADLINE_S) -> list[NodeStatus]:
    """Wait until every node answers /healthz (or a node died, or the deadline passed)."""
    deadline = time.monotonic() + deadline_s
    while True:
        statuses = node_status(state)
        dead = [entry.index for entry in state.nodes if not cluster.pid_alive(entry.pid)]
        if dead:
            logs = ", ".join(state.nodes[i].log for i in dead)
            raise cluster.DevnetError(f"node(s) {dead} exited during start; see {logs}")
        if all(s.error is None and s.detail for s in statuses) or time.monotonic() > deadline:
            return statuses
        time.sleep(0.2)


def cmd_up(args: argparse.Namespace) -> int:
    console = Console()
    directory: Path = args.dir
    if (directory / cluster.STATE_FILE).exists():
        state = cluster.DevnetState.load(directory)
        console.print(f"resuming the devnet in {directory} ({len(state.nodes)} validators)")
    else:
        state = cluster.create(directory, args.n)
        console.print(f"created a {args.n}-validator devnet in {directory}")
    cluster.start(state)
    try:
        wait_ready(state)
        console.print(f"submit token: {state.token}")
        console.print(f"node 0 API:   {state.nodes[0].api_url}")
        if args.detach:
            console.print("running in the background: `pantheon devnet status`, `pantheon devnet down`")
            return 0
        console.print("live status; Ctrl-C stops the devnet")
        _live(state)
    except KeyboardInterrupt:
        pass
    except BaseException:
        cluster.stop(state)
        raise
    if not args.detach:
        killed = cluster.stop(state)
        console.print("devnet stopped" + (f" (SIGKILLed: {killed})" if killed else ""))
    return 0


def _live(state: cluster.DevnetState) -> None:
    previous: dict[int, tuple[float, int]] = {}
    with Live(console=Console(), refresh_per_second=2) as live:
        while True:
            statuses = node_status(state)
            now = time.monotonic()
            rates = {}
            for s in statuses:
                size = s.detail.get("log_size")
                if isinstance(size, int):
                    if s.index in previous:
                        then, old = previous[s.index]
                        rates[s.index] = (size - old) / max(now - then, 1e-6)
                    previous[s.index] = (now, size)
            live.update(_status_table(state, statuses, rates))
            time.sleep(STATUS_REFRESH_S)


def cmd_status(args: argparse.Namespace) -> int:
    state = cluster.DevnetState.load(args.dir)
    statuses = node_status(state)
    Console().print(_status_table(state, statuses, {}))
    return 0 if all(s.healthy for s in statuses) else 1


def cmd_down(args: argparse.Namespace) -> int:
    state = cluster.DevnetState.load(args.dir)
    killed = cluster.stop(state)
    print(f"stopped {len(state.nodes)} node(s)" + (f"; SIGKILLed: {killed}" if killed else ""))
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    devnet = subparsers.add_parser("devnet", help="run a local validator network")
    sub = devnet.add_subparsers(dest="devnet_command", metavar="ACTION", required=True)

    def add_dir(p: argparse.ArgumentParser) -> None:
        p.add_argument("--dir", type=Path, default=DEFAULT_DIR, help=f"devnet directory (default: {DEFAULT_DIR})")

    up = sub.add_parser("up", help="create (or resume) and start a devnet, then show live status")
    up.add_argument("-n", type=int, default=4, help="validators, 3f+1 (default: 4)")
    up.add_argument("--no-bitcoin", action="store_true", help="run without a bitcoind (no anchoring)")
    up.add_argument("--detach", action="store_true", help="start in the background and return")
    add_dir(up)
    up.set_defaults(handler=cmd_up)

    status = sub.add_parser("status", help="show each node's state (exit 1 if any is unhealthy)")
    add_dir(status)
    status.set_defaults(handler=cmd_status)

    down = sub.add_parser("down", help="stop every node of the devnet")
    add_dir(down)
    down.set_defaults(handler=cmd_down)
