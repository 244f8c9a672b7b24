"""A local network of validator processes: create, start, resume, inspect, stop.

Everything lives in one directory (default ``./devnet-data``)::

    devnet.json          what `status`, `load` and `down` read: nodes, URLs, token, pids
    genesis.cbor         shared by every node
    node<i>/node.toml    the node's config
    node<i>/validator.key, validator.pub, tokens.toml, data/, node.log

`up` on an existing directory resumes it with the same keys and data. Each node is a
real ``pantheon node run`` process in its own session (Ctrl-C in the terminal reaches
only the devnet command, which then stops the nodes in order). `down` sends SIGTERM,
waits for each process to exit, and SIGKILLs after a deadline; it checks that a pid
still belongs to that node's command line before signalling it, so a recycled pid
is never hit.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from devnet import regtest
from devnet.ports import free_ports
from node.commands import write_public_key
from node.config import render_config
from node.keyfiles import write_key_file, write_secret_file
from node.tokens import TokenTable, new_token, token_hash
from proof.chain import Genesis
from proof.errors import PantheonError
from proof.mldsa import SigningKey

STATE_FILE = "devnet.json"
STATE_VERSION = 1
SUBMITTER = "devnet"
STOP_DEADLINE_S = 15.0
NODE_COUNT_MAX = 31


class DevnetError(PantheonError):
    """A devnet directory or process that cannot be used as asked."""


@dataclass
class NodeEntry:
    index: int
    api_url: str
    p2p_addr: str
    config: str
    log: str
    pid: int | None = None


@dataclass
class DevnetState:
    directory: str
    chain_id: str
    token: str
    nodes: list[NodeEntry]
    bitcoin: dict | None = None
    version: int = STATE_VERSION

    def save(self) -> None:
        path = Path(self.directory) / STATE_FILE
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(asdict(self), indent=2) + "\n")
        os.chmod(tmp, 0o600)
        tmp.replace(path)

    @classmethod
    def load(cls, directory: Path) -> DevnetState:
        path = directory / STATE_FILE
        try:
            doc = json.loads(path.read_text())
        except FileNotFoundError:
            raise DevnetError(f"no devnet in {directory} (no {STATE_FILE}); run `pantheon devnet up` first") from None
        except json.JSONDecodeError as exc:
            raise DevnetError(f"{path} is damaged: {exc}") from None
        if doc.get("version") != STATE_VERSION:
            raise DevnetError(f"{path} has version {doc.get('version')!r}; this pantheon reads {STATE_VERSION}")
        doc["nodes"] = [NodeEntry(**node) for node in doc["nodes"]]
        return cls(**doc)


def create(directory: Path, n: int, *, chain_name: str = "pantheon-devnet", bitcoin: dict | None = None) -> DevnetState:
    """Write keys, genesis, tokens and configs for ``n`` validators into a new directory."""
    if not 1 <= n <= NODE_COUNT_MAX or (n - 1) % 3:
        raise DevnetError(f"-n must be 3f+1 (1, 4, 7, ...) and at most {NODE_COUNT_MAX}, got {n}")
    if (directory / STATE_FILE).exists():
        raise DevnetError(f"{directory} already holds a devnet; `up` resumes it, `down` stops it")
    directory.mkdir(parents=True, exist_ok=True)
    keys = [SigningKey.generate() for _ in range(n)]
    genesis = Genesis(
        chain_name=chain_name,
        validators=tuple(key.public_key for key in keys),
        created_at_ms=int(time.time() * 1000),
        anchor_every_blocks=5,
        anchor_every_ms=5_000,
        anchor_final_depth=3,
    )
    (directory / "genesis.cbor").write_bytes(genesis.encode())
    token = new_token()
    tokens_file = TokenTable({token_hash(token): SUBMITTER}).render()
    ports = free_ports(2 * n)
    p2p_ports, api_ports = ports[:n], ports[n:]
    nodes = []
    for i, key in enumerate(keys):
        node_dir = directory / f"node{i}"
        node_dir.mkdir()
        write_key_file(node_dir / "validator.key", key)
        write_public_key(node_dir / "validator.pub", key.public_key)
        write_secret_file(node_dir / "tokens.toml", tokens_file)
        peers = {str(j): f"127.0.0.1:{p2p_ports[j]}" for j in range(n) if j != i}
        values = {
            "node": {"data_dir": "data", "key_file": "validator.key", "genesis_file": "../genesis.cbor"},
            "p2p": {"listen": f"127.0.0.1:{p2p_ports[i]}", "peers": peers},
            "api": {"listen": f"127.0.0.1:{api_ports[i]}", "tokens_file": "tokens.toml"},
            "consensus": {"timeout_base_ms": 2000},
        }
        if bitcoin is not None:
            values["bitcoin"] = bitcoin["nodes"][i]
        (node_dir / "node.toml").write_text(render_config(values))
        nodes.append(
            NodeEntry(
                index=i,
                api_url=f"http://127.0.0.1:{api_ports[i]}",
                p2p_addr=f"127.0.0.1:{p2p_ports[i]}",
                config=str((node_dir / "node.toml").resolve()),
                log=str((node_dir / "node.log").resolve()),
            )
        )
    state = DevnetState(
        directory=str(directory.resolve()), chain_id=genesis.hash.hex(), token=token, nodes=nodes, bitcoin=bitcoin
    )
    state.save()
    return state


def node_command(entry: NodeEntry) -> list[str]:
    return [sys.executable, "-m", "node.cli", "node", "run", "--config", entry.config]


def pid_alive(pid: int | None) -> bool:
    """True if ``pid`` exists and has not exited (a zombie counts as exited)."""
    if pid is None:
        return False
    try:
        status = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return False
    return status.rsplit(")", 1)[1].split()[0] != "Z"


def is_running(entry: NodeEntry) -> bool:
    """True if the recorded pid is alive AND runs this node's command (not a recycled pid).

    Only for pids recorded by an earlier command: right after Popen, a child that has
    not yet exec'd still shows its parent's command line.
    """
    if not pid_alive(entry.pid):
        return False
    try:
        cmdline = Path(f"/proc/{entry.pid}/cmdline").read_bytes().split(b"\x00")
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return False
    return entry.config.encode() in cmdline


def start_node(entry: NodeEntry) -> None:
    if is_running(entry):
        return
    log = open(entry.log, "ab")
    try:
        process = subprocess.Popen(
            node_command(entry),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            cwd=str(Path(entry.config).parent),
        )
    finally:
        log.close()
    entry.pid = process.pid


def start(state: DevnetState) -> None:
    for entry in state.nodes:
        start_node(entry)
    state.save()


def stop_node(entry: NodeEntry, *, deadline_s: float = STOP_DEADLINE_S) -> bool:
    """SIGTERM, wait, SIGKILL if needed. True if the process had to be killed."""
    if not is_running(entry):
        entry.pid = None
        return False
    assert entry.pid is not None
    os.kill(entry.pid, signal.SIGTERM)
    killed = not _wait_gone(entry, deadline_s)
    if killed:
        os.kill(entry.pid, signal.SIGKILL)
        _wait_gone(entry, 5.0)
    entry.pid = None
    return killed


def _wait_gone(entry: NodeEntry, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        _reap(entry.pid)
        if not is_running(entry):
            return True
        time.sleep(0.05)
    return False


def _reap(pid: int | None) -> None:
    """Collect our own exited child so that it does not linger as a zombie."""
    if pid is None:
        return
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass


def stop(state: DevnetState) -> list[int]:
    """Stop every node, then the miner and bitcoind (nodes first: they are bitcoind's
    clients); return the indices of nodes that had to be SIGKILLed."""
    killed = [entry.index for entry in state.nodes if stop_node(entry)]
    state.save()
    if state.bitcoin is not None:
        regtest.stop_miner(state.bitcoin, Path(state.directory))
        state.save()
        regtest.stop_bitcoind(state.bitcoin)
        state.save()
    return killed


def start_bitcoin(state: DevnetState) -> None:
    """Start (or resume) the devnet's bitcoind with its wallets, then its miner."""
    if state.bitcoin is None:
        return
    info = state.bitcoin
    resumed = Path(info["datadir"], "regtest").exists()
    regtest.start_bitcoind(info)
    state.save()
    if resumed:
        regtest.load_wallets(info)
    else:
        regtest.create_and_fund_wallets(info)
    regtest.start_miner(info, Path(state.directory))
    state.save()
