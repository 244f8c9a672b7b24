"""The pre-auth attack against four real `pantheon node run` processes: a killed validator rejoins.

Same attacker as ``test_p2p_preauth_attack`` (its own process; idle connections and
replayed HELLOs from ten loopback sources against every validator's p2p port). Its HELLOs
are built from the genesis alone: a HELLO holds nothing secret, which is why anyone can
replay one. While it runs, validator 3 is killed with SIGKILL and started again; every
validator must report a full mesh within ``REJOIN_DEADLINE_S`` of the restart. The time
it took is printed (``-s``).
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.mlkem import MLKEM768PrivateKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from devnet import cluster
from node.commands import read_genesis
from p2p.handshake import Hello, record
from tests.network_harness import running, wait_until
from tests.test_p2p_preauth_attack import start_attacker, stop_attacker, wait_for_line

pytestmark = pytest.mark.timeout(600)

ATTACKER_READY_S = 30.0
ATTACK_WARMUP_S = 3.0
REJOIN_DEADLINE_S = 30.0


@pytest.fixture
def network(tmp_path):
    with running(cluster.create(tmp_path / "devnet", 4)) as net:
        yield net


def public_hello(chain_id: bytes, index: int, identity_key: bytes) -> bytes:
    """A well-formed HELLO claiming validator ``index``, made from public facts only."""
    return record(Hello(chain_id, index, identity_key, X25519PrivateKey.generate().public_key().public_bytes_raw(),
                        MLKEM768PrivateKey.generate().public_key().public_bytes_raw()).encode())


def test_a_killed_validator_rejoins_the_mesh_while_an_attacker_floods_every_p2p_port(network):
    genesis = read_genesis(Path(network.state.directory) / "genesis.cbor")
    targets = []
    for i, node in enumerate(network.state.nodes):
        claimed = (i + 1) % 4
        targets.append((int(node.p2p_addr.rsplit(":", 1)[1]),
                        public_hello(genesis.hash, claimed, genesis.validators[claimed])))
    attacker = start_attacker(targets, proof_bytes=3316)
    try:
        wait_for_line(attacker, "ready", ATTACKER_READY_S)
        time.sleep(ATTACK_WARMUP_S)
        network.kill9(3)
        wait_until(lambda: all(network.status(i)["peers"] == 2 for i in range(3)), deadline_s=30,
                   what="the others to see validator 3 gone")
        cluster.start_node(network.state.nodes[3])
        wait_until(lambda: network.status(3)["ok"], deadline_s=60, what="validator 3 to answer /healthz again")
        restarted_at = time.monotonic()
        rejoined = True
        try:
            wait_until(lambda: all(network.status(i)["peers"] == 3 for i in range(4)), deadline_s=REJOIN_DEADLINE_S,
                       what="every validator to report a full mesh again, under attack", poll_s=0.05)
        except AssertionError:
            rejoined = False
        took_s = time.monotonic() - restarted_at
    finally:
        report = stop_attacker(attacker)
    print(f"\nattacker: {report['summary']}")
    print(f"peers per validator: {[network.status(i)['peers'] for i in range(4)]}")
    assert rejoined, f"no full mesh {REJOIN_DEADLINE_S} s after validator 3 restarted, under attack"
    print(f"validator 3 back in a full mesh {took_s:.3f} s after it answered /healthz, under attack")
    assert report["signed_answers"] == 0, "validators signed for the attacker's replayed HELLOs"
