"""The devnet's miner starts whatever the caller's working directory holds."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from devnet import cluster, regtest
from devnet.bitcoind import BitcoindPaths
from devnet.ports import free_ports

pytestmark = pytest.mark.timeout(60)


def test_the_miner_runs_when_the_callers_directory_shadows_the_standard_library(tmp_path, monkeypatch):
    caller = tmp_path / "caller"
    caller.mkdir()
    (caller / "inspect.py").write_text("raise SystemExit('the stray inspect.py in the caller directory was imported')\n")
    monkeypatch.chdir(caller)
    directory = tmp_path / "devnet"
    [port] = free_ports(1)
    paths = BitcoindPaths(bitcoind=Path("/nonexistent/bitcoind"), bitcoin_cli=Path("/nonexistent/bitcoin-cli"))
    info = regtest.new_info(directory, paths, 1, mine_every_s=0.5)
    info["rpc_port"] = port
    cluster.create(directory, 1, bitcoin=info)
    try:
        regtest.start_miner(info, directory)
        time.sleep(1.5)
        log = (directory / "miner.log").read_text(errors="replace")
        assert regtest.miner_running(info, directory), f"the miner died at start:\n{log[-2000:]}"
        assert "stray inspect.py" not in log
    finally:
        regtest.stop_miner(info, directory)
    assert not regtest.miner_running(info, directory)
