"""``pantheon soak``: a bounded chaos run of 4 real validators and a regtest bitcoind.

The promise under test (issue 12): under faults, load and hostile input the chain keeps
working, never forks and never loses an acknowledged root. The soak builds a devnet in
``--dir`` (the same layout as ``pantheon devnet up``, so its logs read the same and
``pantheon devnet down --dir D`` cleans up after a soak that was itself killed), puts a
ChaosProxy on every directed validator link and one in front of a seeded choice of
validator's bitcoind RPC, then for ``--seconds`` runs the load (devnet.soak_load) and,
at seeded random intervals, one fault episode at a time:

======================  ==============================================================
kill9                   SIGKILL a validator, restart it a few seconds later
sigstop                 SIGSTOP a validator, SIGCONT it a few seconds later
cut_links               cut one link pair, or every link of one validator, then heal
wan                     delay and drop-by-closing on every link for a while
bitcoind_kill           SIGKILL bitcoind, restart it (wallets loaded again)
reorg                   invalidateblock near the tip and mine a longer branch
hostile_bitcoind        the proxied validator's bitcoind answers garbage for a while
======================  ==============================================================

Episodes never overlap, so at most one validator (f = 1) is down, stopped or cut off at
any moment; they are drawn from a shuffled deck holding each kind once, so every kind
happens in every seven episodes. A watchdog restarts a validator that exits by itself and
records that as a violation. Then everything is healed and devnet.soak_checks runs.
The exit status is 1 on any violation, and every process started is stopped in
``finally`` (and checked gone).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import tempfile
import time
import tomllib
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import httpx
import trio

from anchor.rpc import BitcoindAuthError, BitcoindRPCError, BitcoindUnavailable
from devnet import cluster, regtest, soak_checks
from devnet.soak_bitcoin import best_chain_membership, flush_chainstate, mine_competing_branch, restart_bitcoind
from devnet.bitcoind import BitcoindInstallError, find_or_install
from devnet.chaos_proxy import ChaosProxy, delay_ms_for
from devnet.hostile_rpc import hostile_responder
from devnet.soak_load import LoadLedger, new_client, run_load
from node.config import render_config

VALIDATORS = 4
SECONDS_DEFAULT = 600.0
SECONDS_MAX = 86_400.0
MINE_EVERY_S = 1.0
FAULT_KINDS = ("kill9", "sigstop", "cut_links", "wan", "bitcoind_kill", "reorg", "hostile_bitcoind")
GAP_S = (1.0, 4.0)
"""Quiet time between two episodes."""
HOLD_S = (2.0, 7.0)
"""How long a validator stays killed, stopped or cut off, and bitcoind stays down."""
WAN_HOLD_S = (5.0, 12.0)
WAN_DELAY_MS = (10, 300)
WAN_DROP_PER_CHUNK = (0.0005, 0.005)
HOSTILE_HOLD_S = (8.0, 16.0)
REORG_DEPTH_MAX = 8
"""Deeper than node.anchoring.FOLLOW_DEPTH_MIN (6), where anchors were once no longer followed."""
READY_DEADLINE_S = 90.0
CONVERGE_DEADLINE_S = 180.0
ANCHOR_SETTLE_DEADLINE_S = 120.0
PROCESS_GONE_DEADLINE_S = 10.0
WATCHDOG_S = 1.0
LOG_TAIL_LINES = 15
SUMMARY_FILE = "soak-summary.json"


class SoakError(cluster.DevnetError):
    """The soak could not be set up (no bitcoind, a used directory, a node that never started)."""


@dataclass
class SoakReport:
    seed: int
    seconds: float
    faults: Counter[str] = field(default_factory=Counter)
    hostile_replies: Counter[str] = field(default_factory=Counter)
    proxy_counts: dict[str, int] = field(default_factory=dict)
    lines: list[str] = field(default_factory=list)
    violations: list[str] = field(default_factory=list)

    def to_json(self) -> dict:
        return {
            "seed": self.seed, "seconds": self.seconds, "faults": dict(self.faults),
            "hostile_replies": dict(self.hostile_replies), "proxy_counts": self.proxy_counts,
            "lines": self.lines, "violations": self.violations,
        }


def say(text: str) -> None:
    print(text, flush=True)


def log_tail(path: str) -> str:
    try:
        lines = Path(path).read_text(errors="replace").splitlines()
    except FileNotFoundError:
        return "(no log)"
    return "\n    ".join(lines[-LOG_TAIL_LINES:])


async def wait_gone(pid: int, alive: Callable[[], bool]) -> None:
    """Reap our child ``pid`` and wait until it is gone."""
    with trio.move_on_after(PROCESS_GONE_DEADLINE_S):
        while True:
            try:
                os.waitpid(pid, os.WNOHANG)
            except ChildProcessError:
                pass
            if not alive():
                return
            await trio.sleep(0.05)
    raise SoakError(f"process {pid} still there {PROCESS_GONE_DEADLINE_S:g} s after SIGKILL")


class Soak:
    """One soak run over a created devnet ``state``; the trio side of ``run``."""

    def __init__(self, state: cluster.DevnetState, seed: int, seconds: float) -> None:
        self.state = state
        self.info = state.bitcoin
        self.rng = random.Random(seed)
        self.wire_rng = random.Random(seed + 2)
        """For drops and hostile replies, which follow traffic: kept apart so the schedule replays."""
        self.report = SoakReport(seed=seed, seconds=seconds)
        self.seconds = seconds
        self.links: dict[tuple[int, int], ChaosProxy] = {}
        self.hostile_node = self.rng.randrange(VALIDATORS)
        self.rpc_proxy = ChaosProxy(self.info["rpc_port"], rng=self.wire_rng)
        self.down: set[int] = set()
        """Validators a fault episode has killed or stopped: no load goes there, the watchdog leaves them."""
        self.bitcoind_down = False
        self.started = 0.0

    def note(self, text: str) -> None:
        say(f"[{trio.current_time() - self.started:7.1f} s] {text}")

    # -- setup -----------------------------------------------------------------------

    async def start_proxies(self, nursery: trio.Nursery) -> None:
        ports = [int(entry.p2p_addr.rsplit(":", 1)[1]) for entry in self.state.nodes]
        for i in range(VALIDATORS):
            for j in range(VALIDATORS):
                if i != j:
                    proxy = ChaosProxy(ports[j], rng=self.wire_rng)
                    await nursery.start(proxy.serve)
                    self.links[i, j] = proxy
        await nursery.start(self.rpc_proxy.serve)

    def route_through_proxies(self) -> None:
        """Point each node's peers at its proxies, and the hostile node's bitcoind at the RPC proxy."""
        for entry in self.state.nodes:
            path = Path(entry.config)
            values = tomllib.loads(path.read_text())
            values["p2p"]["peers"] = {
                str(j): f"127.0.0.1:{self.links[entry.index, j].port}" for j in range(VALIDATORS) if j != entry.index
            }
            if entry.index == self.hostile_node:
                values["bitcoin"]["rpc_url"] = f"http://127.0.0.1:{self.rpc_proxy.port}"
            path.write_text(render_config(values))

    async def wait_mesh(self, client: httpx.AsyncClient) -> None:
        with trio.move_on_after(READY_DEADLINE_S):
            while True:
                statuses = [await soak_checks.health(client, e.api_url) for e in self.state.nodes]
                if all(s is not None and s.get("peers") == VALIDATORS - 1 for s in statuses):
                    return
                for entry in self.state.nodes:
                    if not cluster.pid_alive(entry.pid):
                        raise SoakError(f"node {entry.index} exited during start:\n    {log_tail(entry.log)}")
                await trio.sleep(0.5)
        raise SoakError(f"the 4 validators did not form a full mesh within {READY_DEADLINE_S:g} s")

    # -- fault episodes ------------------------------------------------------------------

    def available(self) -> set[int]:
        return set(range(VALIDATORS)) - self.down

    async def hold(self, bounds: tuple[float, float]) -> None:
        await trio.sleep(self.rng.uniform(*bounds))

    async def kill9(self) -> None:
        entry = self.state.nodes[self.rng.randrange(VALIDATORS)]
        self.down.add(entry.index)
        try:
            pid = entry.pid
            assert pid is not None
            os.kill(pid, signal.SIGKILL)
            await wait_gone(pid, lambda: cluster.pid_alive(pid))
            entry.pid = None
            self.note(f"kill9: node {entry.index} (pid {pid}) killed")
            await self.hold(HOLD_S)
            cluster.start_node(entry)
            self.state.save()
            self.note(f"kill9: node {entry.index} restarted (pid {entry.pid})")
        finally:
            self.down.discard(entry.index)

    async def sigstop(self) -> None:
        entry = self.state.nodes[self.rng.randrange(VALIDATORS)]
        assert entry.pid is not None
        self.down.add(entry.index)
        os.kill(entry.pid, signal.SIGSTOP)
        try:
            self.note(f"sigstop: node {entry.index} stopped")
            await self.hold(HOLD_S)
        finally:
            os.kill(entry.pid, signal.SIGCONT)
            self.down.discard(entry.index)
        self.note(f"sigstop: node {entry.index} continued")

    async def cut_links(self) -> None:
        if self.rng.random() < 0.5:
            node = self.rng.randrange(VALIDATORS)
            pairs = [pair for pair in self.links if node in pair]
            what = f"every link of node {node}"
        else:
            i, j = self.rng.sample(range(VALIDATORS), 2)
            pairs = [(i, j), (j, i)]
            what = f"the links between nodes {i} and {j}"
        for pair in pairs:
            self.links[pair].cut()
        self.note(f"cut_links: {what} cut")
        await self.hold(HOLD_S)
        for pair in pairs:
            self.links[pair].heal()
        self.note(f"cut_links: {what} healed")

    async def wan(self) -> None:
        delay_ms = delay_ms_for(self.rng, *WAN_DELAY_MS)
        drop = self.rng.uniform(*WAN_DROP_PER_CHUNK)
        for proxy in self.links.values():
            proxy.degrade(delay_ms=delay_ms, drop_per_chunk=drop)
        self.note(f"wan: every link delayed {delay_ms} ms, a connection dropped per chunk with p={drop:.4f}")
        await self.hold(WAN_HOLD_S)
        for proxy in self.links.values():
            proxy.heal()
        self.note("wan: links healed")

    async def bitcoind_kill(self) -> None:
        pid = self.info["pid"]
        self.bitcoind_down = True
        try:
            # A young regtest chain lives in bitcoind's cache: SIGKILL would take every block
            # since start with it (and the wallets' coins). gettxoutsetinfo flushes the chain
            # state first, so the kill costs at most the blocks of the next moment.
            await trio.to_thread.run_sync(flush_chainstate, self.info)
            os.kill(pid, signal.SIGKILL)
            await wait_gone(pid, lambda: regtest.bitcoind_running(self.info))
            self.info["pid"] = None
            self.note(f"bitcoind_kill: bitcoind (pid {pid}) killed")
            await self.hold(HOLD_S)
            await trio.to_thread.run_sync(restart_bitcoind, self.info)
            self.state.save()
            self.note(f"bitcoind_kill: bitcoind restarted (pid {self.info['pid']})")
        finally:
            self.bitcoind_down = False

    async def reorg(self) -> None:
        depth = self.rng.randint(1, REORG_DEPTH_MAX)
        try:
            old_tip, new_tip = await trio.to_thread.run_sync(mine_competing_branch, self.info, depth)
        except (BitcoindUnavailable, BitcoindAuthError, BitcoindRPCError) as exc:
            self.report.violations.append(f"reorg: bitcoind refused the competing branch: {exc}")
            return
        self.note(f"reorg: {depth} block(s) replaced, tip {old_tip} -> {new_tip}")

    async def hostile_bitcoind(self) -> None:
        self.rpc_proxy.respond(hostile_responder(self.wire_rng, self.report.hostile_replies))
        self.note(f"hostile_bitcoind: node {self.hostile_node}'s bitcoind answers garbage")
        await self.hold(HOSTILE_HOLD_S)
        self.rpc_proxy.heal()
        self.note(f"hostile_bitcoind: node {self.hostile_node}'s bitcoind healthy again")

    async def chaos(self, until: float) -> None:
        deck: list[str] = []
        while trio.current_time() < until:
            await self.hold(GAP_S)
            if trio.current_time() >= until:
                return
            if not deck:
                deck = list(FAULT_KINDS)
                self.rng.shuffle(deck)
            kind = deck.pop()
            await getattr(self, kind)()
            self.report.faults[kind] += 1

    async def watchdog(self) -> None:
        """A validator that exits without a kill9 is a violation; restart it so the run goes on."""
        while True:
            await trio.sleep(WATCHDOG_S)
            for entry in self.state.nodes:
                if entry.index not in self.down and not cluster.pid_alive(entry.pid):
                    self.report.violations.append(
                        f"node {entry.index} (pid {entry.pid}) exited by itself; its log ends:\n    {log_tail(entry.log)}"
                    )
                    self.note(f"WATCHDOG: node {entry.index} exited by itself; restarting it")
                    entry.pid = None
                    cluster.start_node(entry)
                    self.state.save()
            if not self.bitcoind_down and not regtest.bitcoind_running(self.info):
                self.report.violations.append("bitcoind exited by itself")
                self.note("WATCHDOG: bitcoind exited by itself; restarting it")
                self.bitcoind_down = True
                try:
                    await trio.to_thread.run_sync(restart_bitcoind, self.info)
                finally:
                    self.bitcoind_down = False

    def heal_all(self) -> None:
        for proxy in [*self.links.values(), self.rpc_proxy]:
            proxy.heal()

    # -- the run ---------------------------------------------------------------------------

    async def run(self) -> SoakReport:
        client = new_client()
        ledger = LoadLedger()
        async with client, trio.open_nursery() as nursery:
            await self.start_proxies(nursery)
            self.route_through_proxies()
            await trio.to_thread.run_sync(cluster.start_bitcoin, self.state)
            cluster.start(self.state)
            await self.wait_mesh(client)
            self.started = trio.current_time()
            until = self.started + self.seconds
            self.note(f"4 validators meshed through {len(self.links)} link proxies; node {self.hostile_node}'s "
                      f"bitcoind RPC goes through a proxy; chaos and load for {self.seconds:g} s")
            nursery.start_soon(self.watchdog)
            urls = [entry.api_url for entry in self.state.nodes]
            async with trio.open_nursery() as chaos:
                chaos.start_soon(self.chaos, until)
                load = partial(run_load, client, urls, self.state.token, random.Random(self.report.seed + 1),
                               self.available, ledger, until=until)
                chaos.start_soon(load)
            self.heal_all()
            self.note("chaos over, every link healed; waiting for convergence")
            self.report.lines += ledger.lines(trio.current_time() - self.started)
            await self.final_checks(client, urls, ledger)
            self.report.proxy_counts = proxy_totals([*self.links.values(), self.rpc_proxy])
            nursery.cancel_scope.cancel()
        return self.report

    async def final_checks(self, client: httpx.AsyncClient, urls: list[str], ledger: LoadLedger) -> None:
        results = []
        statuses, converged = await soak_checks.converge(client, urls, CONVERGE_DEADLINE_S)
        results.append(converged)
        if not converged.violations:
            self.note(f"converged; looking up {len(ledger.acknowledged) + len(ledger.unanswered)} roots on node 0")
            results.append(await soak_checks.check_roots(client, urls[0], ledger.acknowledged, ledger.unanswered,
                                                         statuses))
        self.note(f"waiting (at most {ANCHOR_SETTLE_DEADLINE_S:g} s) for every anchor to confirm")
        lists = await soak_checks.settle_anchors(client, urls, ANCHOR_SETTLE_DEADLINE_S)
        hashes = {e["btc_block_hash"] for entries in lists for e in entries if e.get("btc_block_hash")}
        best = await trio.to_thread.run_sync(best_chain_membership, self.info, hashes)
        results.append(soak_checks.check_anchors(lists, best.__getitem__))
        statuses, converged = await soak_checks.converge(client, urls, CONVERGE_DEADLINE_S)
        results.append(converged)
        heights = [s["height"] for s in statuses if s is not None]
        if heights:
            self.note(f"comparing blocks 1..{min(heights)} on every node")
            results.append(await soak_checks.check_blocks(client, urls, min(heights)))
        for result in results:
            self.report.lines += result.lines
            self.report.violations += result.violations


def proxy_totals(proxies: list[ChaosProxy]) -> dict[str, int]:
    totals: Counter[str] = Counter()
    for proxy in proxies:
        for name, value in vars(proxy.counts).items():
            totals[name] += value
    return dict(totals)


def print_report(report: SoakReport, directory: Path) -> None:
    say("")
    say(f"soak summary (seed {report.seed}, {report.seconds:g} s of chaos, data in {directory})")
    say("  fault              count")
    for kind in FAULT_KINDS:
        say(f"  {kind:<18} {report.faults[kind]:>5}")
    replies = ", ".join(f"{k} {v}" for k, v in sorted(report.hostile_replies.items())) or "none"
    say(f"  hostile replies: {replies}")
    say("  link proxies: " + ", ".join(f"{k} {v}" for k, v in report.proxy_counts.items()))
    for line in report.lines:
        say(f"  {line}")
    if report.violations:
        say(f"VIOLATIONS ({len(report.violations)}):")
        for violation in report.violations:
            say(f"  - {violation}")
    else:
        say("all checks passed")


def stop_everything(state: cluster.DevnetState) -> list[str]:
    """SIGCONT (a stopped node cannot exit), stop nodes, miner and bitcoind; what is still running."""
    for entry in state.nodes:
        if cluster.is_running(entry):
            os.kill(entry.pid, signal.SIGCONT)
    cluster.stop(state)
    left = [f"node {e.index} pid {e.pid}" for e in state.nodes if cluster.is_running(e)]
    info = state.bitcoin
    if regtest.bitcoind_running(info):
        left.append(f"bitcoind pid {info['pid']}")
    if regtest.miner_running(info, Path(state.directory)):
        left.append(f"miner pid {info['miner_pid']}")
    return left


def run(seconds: float, seed: int, directory: Path) -> SoakReport:
    try:
        paths = find_or_install()
    except BitcoindInstallError as exc:
        raise SoakError(f"the soak needs a regtest bitcoind: {exc}") from exc
    info = regtest.new_info(directory, paths, VALIDATORS, mine_every_s=MINE_EVERY_S)
    state = cluster.create(directory, VALIDATORS, bitcoin=info)
    report: SoakReport | None = None
    try:
        report = trio.run(Soak(state, seed, seconds).run)
        return report
    finally:
        left = stop_everything(state)
        if left and report is not None:
            report.violations.append(f"still running after the soak: {', '.join(left)}")


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def cmd_soak(args: argparse.Namespace) -> int:
    # A `kill` (SIGTERM) or a closed terminal (SIGHUP) stops the soak like Ctrl-C, through
    # the `finally` that stops its nodes, miner and bitcoind (they run in their own sessions).
    signal.signal(signal.SIGTERM, _interrupt)
    signal.signal(signal.SIGHUP, _interrupt)
    if not 0 < args.seconds <= SECONDS_MAX:
        raise SoakError(f"--seconds must be in (0, {SECONDS_MAX:g}], got {args.seconds:g}")
    seed = args.seed if args.seed is not None else int.from_bytes(os.urandom(4), "big")
    directory = args.dir if args.dir is not None else Path(tempfile.mkdtemp(prefix="pantheon-soak-"))
    say(f"pantheon soak: seed {seed}, {args.seconds:g} s, directory {directory}")
    started = time.monotonic()
    report = run(args.seconds, seed, directory)
    print_report(report, directory)
    say(f"soak took {time.monotonic() - started:.0f} s in all")
    (directory / SUMMARY_FILE).write_text(json.dumps(report.to_json(), indent=2) + "\n")
    return 1 if report.violations else 0


def register(subparsers: argparse._SubParsersAction) -> None:
    soak = subparsers.add_parser(
        "soak", help="chaos soak: 4 validators + regtest bitcoind under load and faults, then safety checks"
    )
    soak.add_argument("--seconds", type=float, default=SECONDS_DEFAULT,
                      help=f"seconds of chaos and load (default: {SECONDS_DEFAULT:g})")
    soak.add_argument("--seed", type=int, default=None, help="seed of the fault schedule and the load (default: random)")
    soak.add_argument("--dir", type=Path, default=None, help="new directory for the devnet (default: a fresh temp dir)")
    soak.set_defaults(handler=cmd_soak)
