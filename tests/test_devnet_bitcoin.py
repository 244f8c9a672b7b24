"""`pantheon devnet up --detach / load / status / down` with Bitcoin, as a developer runs them."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from devnet import cluster, regtest
from anchor.tx import PARASITE_LOCK_TIME
from devnet.bitcoind import ANCHOR_TIP_HEIGHT_MIN, BitcoindInstallError, find_or_install

# Anti-fee-sniping puts a wallet's lock time at most this far below the tip (Bitcoin Core's wallet).
BUMP_LOCK_TIME_BELOW_TIP_MAX = 99

pytestmark = [pytest.mark.timeout(300), pytest.mark.bitcoind]


def pantheon(*args: str, timeout_s: float = 180) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "node.cli", *args], capture_output=True, text=True, timeout=timeout_s,
        env={"COLUMNS": "250", "PATH": "/usr/bin:/bin"},
    )


def devnet_pids(directory: Path) -> list[int]:
    state = cluster.DevnetState.load(directory)
    pids = [entry.pid for entry in state.nodes]
    assert state.bitcoin is not None
    return [pid for pid in [*pids, state.bitcoin["pid"], state.bitcoin["miner_pid"]] if pid is not None]


def alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


@pytest.fixture(scope="module", autouse=True)
def bitcoind_available() -> None:
    try:
        find_or_install()
    except BitcoindInstallError as exc:
        pytest.skip(f"no bitcoind on this machine and it could not be installed: {exc}")


def test_up_load_status_down_with_bitcoin_anchors_roots_and_leaves_no_process(tmp_path):
    directory = tmp_path / "devnet"
    up = pantheon("devnet", "up", "-n", "4", "--detach", "--mine-every-s", "1", "--dir", str(directory))
    assert up.returncode == 0, up.stdout + up.stderr
    pids = devnet_pids(directory)
    try:
        assert len(pids) == 6 and all(alive(pid) for pid in pids)
        load = pantheon("devnet", "load", "--rate", "100", "--seconds", "3", "--wait", "90", "--dir", str(directory))
        assert load.returncode == 0, load.stdout + load.stderr
        counts = dict(re.findall(r"^(acknowledged|certified|anchored)\s+(\d+)", load.stdout, re.M))
        assert counts == {"acknowledged": "300", "certified": "300", "anchored": "300"}, load.stdout
        status = pantheon("devnet", "status", "--dir", str(directory))
        assert status.returncode == 0, status.stdout + status.stderr
        assert status.stdout.count("healthy") == 4 and "regtest bitcoind pid" in status.stdout
    finally:
        down = pantheon("devnet", "down", "--dir", str(directory))
    assert down.returncode == 0 and "the miner and bitcoind" in down.stdout, down.stdout + down.stderr
    assert [pid for pid in pids if alive(pid)] == []
    state = cluster.DevnetState.load(directory)
    assert state.bitcoin is not None and state.bitcoin["pid"] is None and state.bitcoin["miner_pid"] is None


def test_up_on_an_existing_bitcoin_devnet_resumes_its_chain_and_wallets(tmp_path):
    directory = tmp_path / "devnet"
    first = pantheon("devnet", "up", "--detach", "--mine-every-s", "1", "--dir", str(directory))
    try:
        assert first.returncode == 0, first.stdout + first.stderr
    finally:
        pantheon("devnet", "down", "--dir", str(directory))
    again = pantheon("devnet", "up", "--detach", "--dir", str(directory))
    pids = devnet_pids(directory)
    try:
        assert again.returncode == 0 and "resuming" in again.stdout, again.stdout + again.stderr
        assert len(pids) == 6
        state = cluster.DevnetState.load(directory)
        assert state.bitcoin is not None
        wallets = regtest.rpc(state.bitcoin).call("listwallets")
        assert sorted(wallets) == sorted([*state.bitcoin["wallets"], regtest.MINER_WALLET])
        balance = regtest.rpc(state.bitcoin, state.bitcoin["wallets"][0]).call("getbalance")
        assert balance > 0
    finally:
        down = pantheon("devnet", "down", "--dir", str(directory))
    assert down.returncode == 0
    assert [pid for pid in pids if alive(pid)] == []


def test_a_fresh_devnet_chain_starts_past_every_tip_where_a_fee_bump_could_get_the_lock_time_knots_refuses(tmp_path):
    info = regtest.new_info(tmp_path, find_or_install(), 4, mine_every_s=1.0)
    regtest.start_bitcoind(info)
    try:
        regtest.create_and_fund_wallets(info)
        tip = regtest.rpc(info).call("getblockcount")
        assert tip >= ANCHOR_TIP_HEIGHT_MIN
        assert tip - BUMP_LOCK_TIME_BELOW_TIP_MAX > PARASITE_LOCK_TIME
    finally:
        regtest.stop_bitcoind(info)
