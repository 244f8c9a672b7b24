"""End to end with Bitcoin: four validators anchor into a real regtest bitcoind; the bundle upgrades and verifies.

The devnet (devnet.cluster + devnet.regtest) runs bitcoind with a miner and the
validators' anchoring; nothing here builds Bitcoin material by hand. Skipped, saying
why, when no bitcoind can be found or installed on this machine.
"""

from __future__ import annotations

import json

import pytest

from devnet import cluster, regtest
from devnet.bitcoind import BitcoindInstallError, find_or_install
from tests.cli_helpers import run
from tests.network_harness import Network, random_roots, wait_until

pytestmark = [pytest.mark.timeout(300), pytest.mark.bitcoind]


@pytest.fixture(scope="module")
def anchored_network(tmp_path_factory):
    try:
        paths = find_or_install()
    except BitcoindInstallError as exc:
        pytest.skip(f"no bitcoind on this machine and it could not be installed: {exc}")
    directory = tmp_path_factory.mktemp("devnet") / "net"
    directory.mkdir()
    state = cluster.create(directory, 4, bitcoin=regtest.new_info(directory, paths, 4, mine_every_s=0.5))
    try:
        cluster.start_bitcoin(state)
        cluster.start(state)
        net = Network(state)
        try:
            wait_until(net.all_ready, deadline_s=60, what="4 nodes to answer /healthz")
            roots = random_roots(50)
            assert net.submit(0, roots).status_code == 202
            wait_until(lambda: net.root_state(1, roots[7]) == "anchored", deadline_s=180,
                       what="the roots to be anchored in regtest")
            yield net, roots
        finally:
            net.close()
    finally:
        cluster.stop(state)


def test_an_anchored_bundle_verifies_offline_and_against_the_bitcoind(anchored_network, capsys, tmp_path):
    net, roots = anchored_network
    genesis = net.state.directory + "/genesis.cbor"
    path = tmp_path / "bundle.cbor"
    assert run(["proof", "get", roots[7].hex(), "--node", net.url(1), "-o", path], capsys)[0] == 0
    info = net.state.bitcoin
    code, out = run(["verify", path, "--genesis", genesis, "--json", "--bitcoind", f"127.0.0.1:{info['rpc_port']}",
                     "--bitcoind-cookie", regtest.cookie_path(info)], capsys)
    doc = json.loads(out)
    assert code == 0, out
    assert doc["claim"]["state"] == "anchored" and doc["claim"]["bitcoin"]["network"] == "regtest"
    assert doc["bitcoind"]["confirmations"] >= doc["claim"]["bitcoin"]["confirmations"] >= 1


def test_the_audit_checks_the_anchors_the_node_serves(anchored_network, capsys):
    net, roots = anchored_network
    wait_until(lambda: net.root_state(2, roots[7]) == "anchored", deadline_s=60,
               what="node 2 to follow the anchor too (each validator polls its own bitcoind)")
    code, out = run(["audit", "--node", net.url(2), "--genesis", net.state.directory + "/genesis.cbor"], capsys)
    assert code == 0, out
    assert "AUDIT OK" in out and "0 served with SPV material" not in out
