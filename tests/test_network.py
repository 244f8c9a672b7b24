"""Four real validator processes on loopback: certify, survive kill -9, refuse strangers.

These start `pantheon node run` processes through devnet.cluster, the same path
`pantheon devnet up --no-bitcoin` takes, and talk to them only over HTTP.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from devnet import cluster
from tests.network_harness import random_roots, running, wait_until

pytestmark = pytest.mark.timeout(600)

ROOTS_TOTAL = 10_000
BATCH = 1_000


@pytest.fixture
def network(tmp_path):
    with running(cluster.create(tmp_path / "devnet", 4)) as net:
        yield net


def test_ten_thousand_roots_are_certified_with_identical_logs_everywhere(network):
    roots = random_roots(ROOTS_TOTAL)
    for start in range(0, ROOTS_TOTAL, BATCH):
        response = network.submit((start // BATCH) % 4, roots[start : start + BATCH])
        assert response.status_code == 202, response.text
    wait_until(lambda: network.log_sizes() == [ROOTS_TOTAL] * 4, deadline_s=300,
               what=f"every node to log {ROOTS_TOTAL} roots")
    log_roots = {network.status(i)["log_root"] for i in range(4)}
    assert len(log_roots) == 1
    for root in roots[::997]:
        assert network.root_state(1, root) == "certified"
    # A submission mixing a logged root with a new one given twice: a receipt per root, in order.
    again = random_roots(1)[0]
    response = network.submit(1, [roots[5], again, again])
    assert response.status_code == 202, response.text
    receipts = response.json()["receipts"]
    assert [(r["root"], r["state"]) for r in receipts] == [
        (roots[5].hex(), "certified"), (again.hex(), "pending"), (again.hex(), "pending")
    ]
    assert isinstance(receipts[0]["index"], int) and "index" not in receipts[1]


def test_a_killed_validator_misses_nothing_and_the_rest_keep_finalizing(network):
    first = random_roots(2 * BATCH)
    network.submit(0, first[:BATCH])
    network.kill9(3)
    network.submit(1, first[BATCH:])
    wait_until(lambda: network.log_sizes([0, 1, 2]) == [2 * BATCH] * 3, deadline_s=120,
               what="the three live validators to finalize without the killed one")
    cluster.start(network.state)
    wait_until(lambda: network.all_ready() and network.log_sizes() == [2 * BATCH] * 4, deadline_s=120,
               what="the restarted validator to catch up")
    assert len({network.status(i)["log_root"] for i in range(4)}) == 1


def test_every_acknowledged_root_survives_kill9_of_every_node(network):
    acknowledged = []
    for batch_number in range(6):
        roots = random_roots(BATCH)
        response = network.submit(batch_number % 4, roots)
        if response.status_code == 202:
            acknowledged += roots
    for index in range(4):
        network.kill9(index)
    cluster.start(network.state)
    wait_until(network.all_ready, deadline_s=60, what="all nodes to restart")
    wait_until(lambda: network.log_sizes() == [len(acknowledged)] * 4, deadline_s=300,
               what="every acknowledged root to be certified after the restart")
    for root in acknowledged[::499]:
        assert network.root_state(2, root) == "certified"


def _log_text(network, index):
    return open(network.state.nodes[index].log, encoding="utf-8", errors="replace").read()


def test_a_peer_whose_key_is_not_in_the_genesis_is_refused(network):
    """An outsider claiming validator 3's seat with its own key is refused by a real node."""
    import trio

    from node.commands import read_genesis
    from p2p.errors import P2PError
    from p2p.handshake import LocalIdentity
    from p2p.link import establish
    from proof.mldsa import SigningKey

    genesis = read_genesis(Path(network.state.directory) / "genesis.cbor")
    outsider = SigningKey.generate()
    forged = {**dict(enumerate(genesis.validators)), 3: outsider.public_key}
    host, port = network.state.nodes[0].p2p_addr.split(":")

    async def attempt() -> None:
        stream = await trio.open_tcp_stream(host, int(port))
        identity = LocalIdentity(chain_id=genesis.hash, index=3, signing_key=outsider)
        with pytest.raises(P2PError):
            await establish(stream, identity, forged, peer_index=0, timeout_s=10)

    trio.run(attempt)
    wait_until(lambda: "key_mismatch" in _log_text(network, 0), deadline_s=10,
               what="node 0 to log the refused outsider")
    assert network.status(0)["ok"] and network.status(0)["peers"] == 3


def test_a_node_with_another_genesis_never_connects(network):
    """Validator 3's own key under a different genesis: every handshake fails on the chain id."""
    from node.commands import read_genesis

    node3 = network.state.nodes[3]
    cluster.stop_node(node3)
    directory = Path(network.state.directory)
    genesis = read_genesis(directory / "genesis.cbor")
    other = dataclasses.replace(genesis, chain_name="another-chain")
    (directory / "node3" / "other-genesis.cbor").write_bytes(other.encode())
    config = Path(node3.config)
    config.write_text(config.read_text().replace('genesis_file = "../genesis.cbor"', 'genesis_file = "other-genesis.cbor"'))
    cluster.start_node(node3)
    wait_until(lambda: network.status(3)["ok"], deadline_s=30, what="the other-genesis node to start")
    wait_until(lambda: "chain_id_mismatch" in _log_text(network, 0), deadline_s=30,
               what="node 0 to refuse the other chain's handshake")
    assert network.status(3)["peers"] == 0
    assert network.status(3)["chain_id"] == other.hash.hex()
    assert all(network.status(i)["peers"] == 2 for i in range(3))
