"""`pantheon devnet up/status/down` as a developer runs them, in subprocesses."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from devnet import cluster
from tests.network_harness import Network, random_roots, wait_until

pytestmark = pytest.mark.timeout(300)


def pantheon(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "node.cli", *args], capture_output=True, text=True, timeout=120)


def running_pids(directory) -> list[int]:
    state = cluster.DevnetState.load(directory)
    return [entry.pid for entry in state.nodes if cluster.is_running(entry)]


def test_up_status_down_leaves_no_process_and_resume_keeps_the_chain(tmp_path):
    directory = tmp_path / "devnet"
    up = pantheon("devnet", "up", "-n", "4", "--no-bitcoin", "--detach", "--dir", str(directory))
    assert up.returncode == 0, up.stdout + up.stderr
    state = cluster.DevnetState.load(directory)
    pids = [entry.pid for entry in state.nodes]
    try:
        assert len(running_pids(directory)) == 4
        network = Network(state)
        roots = random_roots(50)
        assert network.submit(0, roots).status_code == 202
        wait_until(lambda: network.log_sizes() == [50] * 4, deadline_s=60, what="50 roots on every node")
        status = pantheon("devnet", "status", "--dir", str(directory))
        assert status.returncode == 0, status.stdout + status.stderr
        assert "healthy" in status.stdout
    finally:
        down = pantheon("devnet", "down", "--dir", str(directory))
    assert down.returncode == 0 and "stopped 4 node(s)" in down.stdout
    assert running_pids(directory) == []
    for pid in pids:
        assert not _alive(pid)
    assert json.loads((directory / "devnet.json").read_text())["nodes"][0]["pid"] is None

    again = pantheon("devnet", "up", "--no-bitcoin", "--detach", "--dir", str(directory))
    try:
        assert again.returncode == 0 and "resuming" in again.stdout
        network = Network(cluster.DevnetState.load(directory))
        wait_until(lambda: network.log_sizes() == [50] * 4, deadline_s=60, what="the resumed chain's 50 roots")
        assert network.root_state(3, roots[7]) == "certified"
    finally:
        pantheon("devnet", "down", "--dir", str(directory))
    assert running_pids(directory) == []


def test_status_of_a_missing_devnet_is_a_clear_error(tmp_path):
    result = pantheon("devnet", "status", "--dir", str(tmp_path / "nothing"))
    assert result.returncode == 1
    assert "no devnet" in result.stderr


def test_wrong_validator_count_is_refused(tmp_path):
    result = pantheon("devnet", "up", "-n", "3", "--no-bitcoin", "--detach", "--dir", str(tmp_path / "d"))
    assert result.returncode == 1
    assert "3f+1" in result.stderr


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def test_sigterm_to_a_foreground_devnet_stops_every_node(tmp_path):
    import signal

    directory = tmp_path / "devnet"
    process = subprocess.Popen(
        [sys.executable, "-m", "node.cli", "devnet", "up", "-n", "4", "--no-bitcoin", "--dir", str(directory)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    try:
        wait_until(lambda: (directory / "devnet.json").exists() and len(running_pids(directory)) == 4,
                   deadline_s=60, what="4 nodes running in the foreground devnet")
        network = Network(cluster.DevnetState.load(directory))
        wait_until(network.all_ready, deadline_s=60, what="the nodes to answer")
        network.close()
        process.send_signal(signal.SIGTERM)
        output, _ = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 0, output
    assert "devnet stopped" in output
    assert running_pids(directory) == []
