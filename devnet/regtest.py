"""The devnet's own regtest bitcoind and block miner, as processes that outlive `up --detach`.

devnet.bitcoind.RegtestNode is tied to the Python object that started it (tests use
it); a devnet needs a bitcoind that `up` starts, `down` (another process, later)
stops, and `up` on an existing directory resumes with the same datadir, ports and
wallets. Everything needed for that is in devnet.json's "bitcoin" entry::

    datadir, rpc_port, p2p_port, bitcoind, pid, miner_pid, wallets, mine_every_s, nodes

``nodes`` holds each validator's [bitcoin] config section. The miner is a small
``pantheon devnet miner`` process that mines one block every few seconds to a wallet
of its own, so that anchors confirm while the devnet runs, detached or not.

Both processes are recognised by their command line (which names the datadir or the
devnet directory) before any signal is sent, so a recycled pid is never hit.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from anchor.rpc import BitcoindAuthError, BitcoindRPC, BitcoindRPCError, BitcoindUnavailable
from devnet import bitcoind
from devnet.bitcoind import BitcoindPaths
from devnet.ports import free_ports
from proof.errors import PantheonError

MINER_WALLET = "miner"
# Coinbase outputs mature after 100 blocks. Each validator wallet gets a few coinbases
# (many anchors can be in flight on unconfirmed change, but a few coins spread them),
# then 100 more blocks to the miner make them spendable.
COINBASES_PER_WALLET = 5
MATURITY_BLOCKS = 100
MINE_EVERY_S_DEFAULT = 2.0
READY_DEADLINE_S = 60.0
STOP_DEADLINE_S = 30.0
KILL_DEADLINE_S = 10.0
POLL_S = 0.05
RPC_TIMEOUT_S = 10.0
# What the miner prints once its imports are done and it starts mining (start_miner waits for it).
MINER_READY = "miner: running"
MINER_START_DEADLINE_S = 30.0
RPC_WALLET_ALREADY_LOADED = -35
RPC_WALLET_NOT_FOUND = -18


class RegtestError(PantheonError):
    """The devnet's bitcoind or miner could not be started, reached or stopped."""


def wallet_name(index: int) -> str:
    return f"validator-{index}"


def cookie_path(info: dict[str, Any]) -> Path:
    return Path(info["datadir"]) / "regtest" / ".cookie"


def rpc(info: dict[str, Any], wallet: str | None = None) -> BitcoindRPC:
    return BitcoindRPC(info["rpc_port"], cookie_path=cookie_path(info), wallet=wallet, timeout_s=RPC_TIMEOUT_S)


def new_info(directory: Path, paths: BitcoindPaths, n: int, *, mine_every_s: float) -> dict[str, Any]:
    """The "bitcoin" entry of a new devnet: fresh datadir, free ports, one wallet per validator."""
    rpc_port, p2p_port = free_ports(2)
    datadir = (directory / "bitcoind").resolve()
    info: dict[str, Any] = {
        "datadir": str(datadir),
        "rpc_port": rpc_port,
        "p2p_port": p2p_port,
        "bitcoind": str(paths.bitcoind),
        "bitcoin_cli": str(paths.bitcoin_cli),
        "pid": None,
        "miner_pid": None,
        "wallets": [wallet_name(i) for i in range(n)],
        "mine_every_s": mine_every_s,
    }
    info["nodes"] = [node_section(info, i) for i in range(n)]
    return info


def node_section(info: dict[str, Any], index: int) -> dict[str, Any]:
    """Validator ``index``'s [bitcoin] config: its own wallet on the devnet's bitcoind."""
    return {
        "enabled": True,
        "network": "regtest",
        "rpc_url": f"http://127.0.0.1:{info['rpc_port']}",
        "rpc_cookie_file": str(cookie_path(info)),
        "wallet": wallet_name(index),
        "fee_rate_sat_vb": 2,
        "fee_rate_max_sat_vb": 50,
        "bump_after_ms": 30_000,
        "fallback_ms": 20_000,
        "poll_interval_ms": 1_000,
    }


def bitcoind_argv(info: dict[str, Any]) -> list[str]:
    return [
        info["bitcoind"],
        "-regtest",
        f"-datadir={info['datadir']}",
        "-server=1",
        f"-rpcport={info['rpc_port']}",
        "-rpcbind=127.0.0.1",
        "-rpcallowip=127.0.0.1",
        f"-port={info['p2p_port']}",
        f"-bind=127.0.0.1:{info['p2p_port']}",
        "-listenonion=0",
        "-dnsseed=0",
        "-fixedseeds=0",
        "-discover=0",
        "-fallbackfee=0.0002",
        "-addresstype=bech32",
        "-printtoconsole=0",
    ]


def _cmdline(pid: int | None) -> list[bytes]:
    if pid is None:
        return []
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        if stat.rsplit(")", 1)[1].split()[0] == "Z":
            return []
        return Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\x00")
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return []


def bitcoind_running(info: dict[str, Any]) -> bool:
    return f"-datadir={info['datadir']}".encode() in _cmdline(info.get("pid"))


def miner_running(info: dict[str, Any], directory: Path) -> bool:
    cmdline = _cmdline(info.get("miner_pid"))
    return b"miner" in cmdline and str(directory.resolve()).encode() in cmdline


def start_bitcoind(info: dict[str, Any]) -> None:
    """Start (or find running) the devnet's bitcoind and wait until its RPC answers."""
    if bitcoind_running(info):
        return
    datadir = Path(info["datadir"])
    datadir.mkdir(parents=True, exist_ok=True)
    with open(datadir / "stderr.log", "ab") as stderr:
        process = subprocess.Popen(
            bitcoind_argv(info),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=stderr,
            start_new_session=True,
        )
    info["pid"] = process.pid
    wait_rpc_ready(info, process)


def wait_rpc_ready(info: dict[str, Any], process: subprocess.Popen[bytes] | None = None) -> None:
    try:
        bitcoind.wait_rpc_ready(rpc(info), process, Path(info["datadir"]) / "stderr.log", timeout_s=READY_DEADLINE_S)
    except bitcoind.BitcoindStartError as exc:
        raise RegtestError(str(exc)) from exc


def create_and_fund_wallets(info: dict[str, Any]) -> None:
    """A wallet per validator with COINBASES_PER_WALLET mature coinbases, and the miner's wallet;
    the tip ends at least at ANCHOR_TIP_HEIGHT_MIN."""
    node = rpc(info)
    for name in [*info["wallets"], MINER_WALLET]:
        node.call("createwallet", name)
    for name in info["wallets"]:
        wallet = rpc(info, name)
        wallet.call("generatetoaddress", COINBASES_PER_WALLET, wallet.call("getnewaddress"))
    miner = rpc(info, MINER_WALLET)
    tip = node.call("getblockcount")
    blocks = max(MATURITY_BLOCKS, bitcoind.ANCHOR_TIP_HEIGHT_MIN - tip)
    miner.call("generatetoaddress", blocks, miner.call("getnewaddress"))


def load_wallets(info: dict[str, Any]) -> None:
    """After a restart bitcoind loads no wallet by itself: load every devnet wallet."""
    node = rpc(info)
    for name in [*info["wallets"], MINER_WALLET]:
        try:
            node.call("loadwallet", name)
        except BitcoindRPCError as exc:
            if exc.code != RPC_WALLET_ALREADY_LOADED:
                raise


def miner_command(directory: Path) -> list[str]:
    """``-P``: the working directory is not put on sys.path, so no file there (a stray
    inspect.py, say) can shadow the standard library or Pantheon's own modules."""
    return [sys.executable, "-P", "-m", "node.cli", "devnet", "miner", "--dir", str(directory.resolve())]


def start_miner(info: dict[str, Any], directory: Path) -> None:
    """Start the miner from the devnet's own directory and wait until it says it runs
    (MINER_READY in miner.log); one that exits first is a RegtestError quoting its log."""
    if miner_running(info, directory):
        return
    log_path = directory / "miner.log"
    with open(log_path, "ab") as log:
        log_start = log.tell()
        process = subprocess.Popen(
            miner_command(directory),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            cwd=directory.resolve(),
        )
    info["miner_pid"] = process.pid
    deadline = time.monotonic() + MINER_START_DEADLINE_S
    while time.monotonic() < deadline:
        written = log_path.read_bytes()[log_start:]
        if MINER_READY.encode() in written:
            return
        if process.poll() is not None:
            info["miner_pid"] = None
            tail = written[-1000:].decode("utf-8", "replace")
            raise RegtestError(f"the devnet miner exited at start (code {process.returncode}): {tail}")
        time.sleep(POLL_S)
    raise RegtestError(f"the devnet miner did not start within {MINER_START_DEADLINE_S} s (see {log_path})")


def mine_forever(info: dict[str, Any], stop_requested: Any) -> None:
    """The miner process's loop: one block every ``mine_every_s`` to a fresh miner address
    (a fresh address each time, so that after an invalidateblock the next block differs).
    An unreachable bitcoind is waited for, not fatal: the devnet may restart it."""
    miner = rpc(info, MINER_WALLET)
    interval_s = float(info.get("mine_every_s", MINE_EVERY_S_DEFAULT))
    print(f"{MINER_READY}, a block every {interval_s:g} s", flush=True)
    while not stop_requested():
        try:
            miner.call("generatetoaddress", 1, miner.call("getnewaddress"))
        except (BitcoindUnavailable, BitcoindAuthError) as exc:
            print(f"miner: bitcoind not reachable, retrying: {exc}", flush=True)
        except BitcoindRPCError as exc:
            print(f"miner: {exc}", flush=True)
            if exc.code == RPC_WALLET_NOT_FOUND:  # bitcoind restarted: load the wallets again
                try:
                    load_wallets(info)
                except (BitcoindUnavailable, BitcoindAuthError, BitcoindRPCError) as load_exc:
                    print(f"miner: cannot load wallets yet: {load_exc}", flush=True)
        deadline = time.monotonic() + interval_s
        while not stop_requested() and time.monotonic() < deadline:
            time.sleep(min(0.1, interval_s))


def _wait_gone(check: Any, pid: int, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            pass
        if not check():
            return True
        time.sleep(POLL_S)
    return False


def stop_miner(info: dict[str, Any], directory: Path) -> None:
    pid = info.get("miner_pid")
    if pid is not None and miner_running(info, directory):
        os.kill(pid, signal.SIGTERM)
        if not _wait_gone(lambda: miner_running(info, directory), pid, STOP_DEADLINE_S):
            os.kill(pid, signal.SIGKILL)
            _wait_gone(lambda: miner_running(info, directory), pid, KILL_DEADLINE_S)
    info["miner_pid"] = None


def stop_bitcoind(info: dict[str, Any]) -> None:
    """``stop`` over RPC (bitcoind flushes its wallets and chain), SIGTERM, then SIGKILL."""
    pid = info.get("pid")
    if pid is not None and bitcoind_running(info):
        try:
            rpc(info).call("stop", timeout_s=5.0)
        except (BitcoindUnavailable, BitcoindAuthError, BitcoindRPCError):
            os.kill(pid, signal.SIGTERM)
        if not _wait_gone(lambda: bitcoind_running(info), pid, STOP_DEADLINE_S):
            os.kill(pid, signal.SIGKILL)
            _wait_gone(lambda: bitcoind_running(info), pid, KILL_DEADLINE_S)
    info["pid"] = None
