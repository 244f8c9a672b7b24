"""``pantheon devnet up|status|down|load``: a local validator network for developers."""

from __future__ import annotations

import argparse
import signal
import time
from pathlib import Path

from rich.console import Console
from rich.live import Live
from rich.table import Table

from devnet import cluster, regtest
from devnet.bitcoind import BitcoindInstallError, find_or_install
from devnet.load import run_load
from devnet.status import NodeStatus, bitcoin_summary, node_status

DEFAULT_DIR = Path("devnet-data")
READY_DEADLINE_S = 60.0
STATUS_REFRESH_S = 1.0
STATUS_PRINT_INTERVAL_S = 5.0


def _status_table(state: cluster.DevnetState, statuses: list[NodeStatus], rates: dict[int, float]) -> Table:
    table = Table(title=f"Pantheon devnet {state.chain_id[:16]}… ({state.directory})")
    columns = ["node", "state", "height", "view", "log size", "roots/s", "mempool", "peers"]
    if state.bitcoin is not None:
        columns += ["anchors pending", "anchored", "bitcoind", "last anchor txid"]
    for column in [*columns, "api"]:
        table.add_column(column)
    for s in statuses:
        d = s.detail
        state_text = "healthy" if s.healthy else ("starting" if s.running and not s.error else (s.error or "stopped"))
        row = [
            str(s.index),
            state_text,
            str(d.get("height", "-")),
            str(d.get("view", "-")),
            str(d.get("log_size", "-")),
            f"{rates.get(s.index, 0.0):.0f}",
            str(d.get("mempool_roots", "-")),
            str(d.get("peers", "-")),
        ]
        if state.bitcoin is not None:
            a = d.get("anchoring") or {}
            bitcoind = {"ok": "ok", "unavailable": "DOWN"}.get(a.get("bitcoind"), "-")
            if a.get("wallet") == "empty":
                bitcoind = "wallet empty"
            if a.get("alerts"):
                bitcoind += " " + ",".join(a["alerts"])
            row += [
                str(a.get("anchors_pending", "-")),
                str(a.get("anchors_confirmed", "-")),
                bitcoind,
                (a.get("last_txid") or "-")[:16],
            ]
        table.add_row(*row, s.api_url)
    if state.bitcoin is not None:
        table.caption = bitcoin_summary(state)
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


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def cmd_up(args: argparse.Namespace) -> int:
    if not args.detach:
        # A closed terminal (SIGHUP) or a `kill` (SIGTERM) stops the devnet like Ctrl-C,
        # instead of leaving its nodes, miner and bitcoind running unowned.
        signal.signal(signal.SIGTERM, _interrupt)
        signal.signal(signal.SIGHUP, _interrupt)
    console = Console()
    directory: Path = args.dir
    if (directory / cluster.STATE_FILE).exists():
        state = cluster.DevnetState.load(directory)
        console.print(f"resuming the devnet in {directory} ({len(state.nodes)} validators)")
    else:
        bitcoin = None
        if not args.no_bitcoin:
            try:
                paths = find_or_install()
            except BitcoindInstallError as exc:
                raise cluster.DevnetError(f"{exc}; or run `pantheon devnet up --no-bitcoin`") from exc
            console.print(f"bitcoind: {paths.bitcoind}")
            bitcoin = regtest.new_info(directory, paths, args.n, mine_every_s=args.mine_every_s)
        state = cluster.create(directory, args.n, bitcoin=bitcoin)
        console.print(f"created a {args.n}-validator devnet in {directory}")
    try:
        if state.bitcoin is not None:
            cluster.start_bitcoin(state)
            console.print(
                f"regtest bitcoind pid {state.bitcoin['pid']} on 127.0.0.1:{state.bitcoin['rpc_port']}, "
                f"wallets {', '.join(state.bitcoin['wallets'])} funded, "
                f"a block every {state.bitcoin['mine_every_s']:g} s (miner pid {state.bitcoin['miner_pid']})"
            )
        cluster.start(state)
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
    """Redraw the status table in place on a terminal; print it every few seconds into a pipe or file."""
    console = Console()
    previous: dict[int, tuple[float, int]] = {}

    def table() -> Table:
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
        return _status_table(state, statuses, rates)

    if not console.is_terminal:
        while True:
            console.print(table())
            time.sleep(STATUS_PRINT_INTERVAL_S)
    with Live(console=console, refresh_per_second=2) as live:
        while True:
            live.update(table())
            time.sleep(STATUS_REFRESH_S)


def cmd_status(args: argparse.Namespace) -> int:
    state = cluster.DevnetState.load(args.dir)
    statuses = node_status(state)
    Console().print(_status_table(state, statuses, {}))
    return 0 if all(s.healthy for s in statuses) else 1


def cmd_down(args: argparse.Namespace) -> int:
    state = cluster.DevnetState.load(args.dir)
    killed = cluster.stop(state)
    extra = ", the miner and bitcoind" if state.bitcoin is not None else ""
    print(f"stopped {len(state.nodes)} node(s){extra}" + (f"; SIGKILLed: {killed}" if killed else ""))
    return 0


def cmd_load(args: argparse.Namespace) -> int:
    state = cluster.DevnetState.load(args.dir)
    print(f"submitting {args.rate} roots/s for {args.seconds:g} s to {len(state.nodes)} validators")
    report = run_load(state, rate=args.rate, seconds=args.seconds, wait_s=args.wait)
    for line in report.lines():
        print(line)
    if state.bitcoin is None:
        print("(no bitcoind in this devnet: roots are certified, never anchored)")
    return 0 if report.acknowledged and report.certified == report.acknowledged else 1


def cmd_miner(args: argparse.Namespace) -> int:
    """The devnet's block miner (started by `up`; stops on SIGTERM or SIGINT)."""
    import signal

    state = cluster.DevnetState.load(args.dir)
    if state.bitcoin is None:
        raise cluster.DevnetError(f"the devnet in {args.dir} has no bitcoind")
    stop = []
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.append(True))
    regtest.mine_forever(state.bitcoin, lambda: bool(stop))
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
    up.add_argument(
        "--mine-every-s", type=float, default=regtest.MINE_EVERY_S_DEFAULT,
        help=f"seconds between regtest blocks (default: {regtest.MINE_EVERY_S_DEFAULT:g})",
    )
    add_dir(up)
    up.set_defaults(handler=cmd_up)

    status = sub.add_parser("status", help="show each node's state (exit 1 if any is unhealthy)")
    add_dir(status)
    status.set_defaults(handler=cmd_status)

    down = sub.add_parser("down", help="stop every node of the devnet, its miner and bitcoind")
    add_dir(down)
    down.set_defaults(handler=cmd_down)

    load = sub.add_parser("load", help="submit random roots at a rate; report acknowledged/certified/anchored")
    load.add_argument("--rate", type=int, default=100, help="roots per second (default: 100)")
    load.add_argument("--seconds", type=float, default=10.0, help="how long to submit (default: 10)")
    load.add_argument("--wait", type=float, default=120.0, help="deadline for certified and anchored, s (default: 120)")
    add_dir(load)
    load.set_defaults(handler=cmd_load)

    miner = sub.add_parser("miner", help=argparse.SUPPRESS)
    add_dir(miner)
    miner.set_defaults(handler=cmd_miner)
