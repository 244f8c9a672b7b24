"""A validator restored from an old backup under load, started with ``--restored``: it never equivocates.

Real `pantheon node run` processes. Validator 3's data directory is copied (the
backup), the chain then goes on for many views with validator 3 voting, validator 3
is killed and its data directory replaced by the backup: its safety state is now
older than the votes it sent. Started with ``--restored`` it must sign nothing that
conflicts with those votes (no node records evidence against it), vote again, and
reach the same log as the others.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from devnet import cluster
from tests.network_harness import Network, random_roots, wait_until
from tests.test_network import network  # noqa: F401  (the fixture: four nodes on loopback)

pytestmark = pytest.mark.timeout(600)

BATCH = 1_000


def _data_dir(network: Network, index: int) -> Path:
    return Path(network.state.nodes[index].config).parent / "data"


def _start_restored(entry: cluster.NodeEntry) -> None:
    """What cluster.start_node does, with ``--restored``."""
    with open(entry.log, "ab") as log:
        process = subprocess.Popen(
            [*cluster.node_command(entry), "--restored"], stdin=subprocess.DEVNULL, stdout=log,
            stderr=subprocess.STDOUT, start_new_session=True, cwd=str(Path(entry.config).parent),
        )
    entry.pid = process.pid


def _submit(network: Network, batches: int, targets: tuple[int, ...] = (0, 1, 2, 3)) -> list[bytes]:
    roots = random_roots(batches * BATCH)
    for number in range(batches):
        response = network.submit(targets[number % len(targets)], roots[number * BATCH : (number + 1) * BATCH])
        assert response.status_code == 202, response.text
    return roots


def _evidence(network: Network, index: int) -> list:
    return network.http.get(f"{network.url(index)}/v1/evidence").json()["evidence"]


def test_a_validator_restored_from_an_old_backup_under_load_votes_again_without_equivocating(network, tmp_path):  # noqa: F811
    first = _submit(network, 5)
    wait_until(lambda: network.log_sizes() == [len(first)] * 4, deadline_s=120, what="the first roots everywhere")
    cluster.stop_node(network.state.nodes[3])
    backup = tmp_path / "backup"
    shutil.copytree(_data_dir(network, 3), backup)
    cluster.start_node(network.state.nodes[3])
    wait_until(lambda: network.status(3)["ok"] and network.status(3)["peers"] == 3, deadline_s=60,
               what="validator 3 back with its peers")
    view_at_backup = network.status(0)["view"]
    second = _submit(network, 10)
    total = len(first) + len(second)
    wait_until(lambda: network.log_sizes() == [total] * 4 and network.status(3)["view"] > view_at_backup + 5,
               deadline_s=180, what="validator 3 to vote through more views after the backup")

    network.kill9(3)
    shutil.rmtree(_data_dir(network, 3))
    shutil.copytree(backup, _data_dir(network, 3))
    _start_restored(network.state.nodes[3])
    # It waits two maximal timeouts (60 s) after hearing 2f+1 peers: time enough to see it wait.
    wait_until(lambda: network.status(3)["ok"], deadline_s=60, what="the restored validator's API")
    assert network.status(3)["voting"] is False
    third = _submit(network, 10, targets=(0, 1, 2))
    total += len(third)
    wait_until(lambda: network.log_sizes() == [total] * 4, deadline_s=240,
               what="the restored validator to catch up and the chain to certify the load")
    log_text = Path(network.state.nodes[3].log).read_text(encoding="utf-8", errors="replace")
    wait_until(lambda: "voting again" in Path(network.state.nodes[3].log).read_text(errors="replace"),
               deadline_s=120, what="the restored validator to resume voting")
    assert network.status(3)["voting"] is True
    assert "not voting until 2f+1 peers" in log_text
    assert all(_evidence(network, index) == [] for index in range(4)), "a node recorded equivocation evidence"
    assert len({network.status(index)["log_root"] for index in range(4)}) == 1
