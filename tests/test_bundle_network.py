"""End to end on four real validator processes: fetch a bundle, verify it, follow the log, audit the chain.

The nodes run as `pantheon node run` processes (devnet.cluster, no bitcoind), and
the commands talk to them over HTTP exactly as an auditor or monitor would.
"""

from __future__ import annotations

import json

import httpx
import pytest

from devnet import cluster
from proof import note
from proof.chain import Genesis
from tests.cli_helpers import run
from tests.network_harness import Network, random_roots, wait_until

pytestmark = pytest.mark.timeout(300)
ROOTS = 300


@pytest.fixture(scope="module")
def network(tmp_path_factory):
    state = cluster.create(tmp_path_factory.mktemp("devnet") / "net", 4)
    cluster.start(state)
    net = Network(state)
    try:
        wait_until(net.all_ready, deadline_s=60, what="4 nodes to answer /healthz")
        roots = random_roots(ROOTS)
        for start in range(0, ROOTS, 100):
            assert net.submit(start // 100 % 4, roots[start : start + 100]).status_code == 202
        wait_until(lambda: net.log_sizes() == [ROOTS] * 4, deadline_s=120, what=f"{ROOTS} roots certified everywhere")
        yield net, roots
    finally:
        net.close()
        cluster.stop(state)


def test_a_bundle_fetched_from_a_node_verifies_offline_against_the_genesis(network, capsys, tmp_path):
    net, roots = network
    genesis = net.state.directory + "/genesis.cbor"
    path = tmp_path / "bundle.cbor"
    assert run(["proof", "get", roots[123].hex(), "--node", net.url(2), "-o", path], capsys)[0] == 0
    code, out = run(["verify", path, "--genesis", genesis, "--chain", net.state.chain_id, "--json"], capsys)
    claim = json.loads(out)["claim"]
    assert code == 0 and claim["root"] == roots[123].hex() and claim["log_size"] == ROOTS


def test_the_checkpoint_note_of_each_validator_is_signed_by_its_own_key(network):
    net, _roots = network
    genesis = Genesis.decode(open(net.state.directory + "/genesis.cbor", "rb").read())
    name = note.origin(genesis.hash)
    for index in range(4):
        text = httpx.get(f"{net.url(index)}/v1/checkpoints/latest?format=note").text
        checkpoint = note.verify_checkpoint(text, {f"validator {index}": (name, genesis.validators[index])})
        assert checkpoint.size == ROOTS and checkpoint.signed_by == (f"validator {index}",)


def test_a_monitor_checks_consistency_between_two_certified_log_states(network, capsys):
    net, _roots = network
    first = httpx.get(f"{net.url(0)}/v1/blocks/1").json()["log_size"]
    code, out = run(["proof", "consistency", first, ROOTS, "--node", net.url(1),
                     "--genesis", net.state.directory + "/genesis.cbor"], capsys)
    assert code == 0 and "CONSISTENT" in out


def test_the_audit_of_the_whole_chain_passes(network, capsys):
    net, _roots = network
    code, out = run(["audit", "--node", net.url(3), "--genesis", net.state.directory + "/genesis.cbor"], capsys)
    assert code == 0, out
    assert "AUDIT OK" in out and f"log          size {ROOTS}" in out
