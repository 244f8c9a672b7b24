"""End to end against a real validator process: a one-validator chain (devnet.cluster, no bitcoind).

init, actions, submit (real POST /v1/roots with the devnet token), upgrade once the head is
certified, export, and verify the package offline: the journal as a producer uses it.
Bitcoin anchoring needs bitcoind and is covered by tests/test_journal_submit.py against
the real API app with a stored confirmed anchor.
"""

from __future__ import annotations

import pytest

from devnet import cluster
from journal.entry import digest
from journal.writer import Journal
from tests.network_harness import Network, wait_until
from tests.test_journal_submit import run

pytestmark = pytest.mark.timeout(120)


@pytest.fixture(scope="module")
def node(tmp_path_factory):
    state = cluster.create(tmp_path_factory.mktemp("devnet") / "net", 1)
    cluster.start(state)
    net = Network(state)
    try:
        wait_until(net.all_ready, deadline_s=60, what="the validator to answer /healthz")
        yield net
    finally:
        net.close()
        cluster.stop(state)


def test_a_journal_head_submitted_to_a_validator_comes_back_as_a_verified_audit_package(node, tmp_path, capsys):
    directory = tmp_path / "journal"
    with Journal.create(directory) as journal:
        for round_ in range(3):
            with journal.action("aggregate", {"updates": digest(b"u%d" % round_)}, meta={"round": round_}) as act:
                act.outcome({"model": digest(b"m%d" % round_)})
    url, token = node.url(0), node.state.token
    code, out = run(["journal", "submit", directory, "--node", url, "--token", token], capsys)
    assert code == 0 and "submitted head" in out, out
    code, again = run(["journal", "submit", directory, "--node", url, "--token", token], capsys)
    assert code == 0 and again.split(":")[0] == out.split(":")[0]
    genesis = node.state.directory + "/genesis.cbor"

    def certified() -> bool:
        code, out = run(["journal", "upgrade", directory, "--node", url, "--genesis", genesis], capsys)
        return code == 0 and "certified" in out

    wait_until(certified, deadline_s=60, what="the head to be certified")
    code, out = run(["journal", "verify", directory], capsys)
    assert code == 0 and "certified     entries 0..6" in out, out
    package = tmp_path / "round-2.cbor"
    code, out = run(["journal", "export", directory, "--entries", "5-6", "-o", package], capsys)
    assert code == 0 and "withheld" in out, out
    code, out = run(["journal", "verify", package, "--chain", node.state.chain_id], capsys)
    assert code == 0 and "VALID audit package: 3 disclosed and 4 withheld" in out and "PENDING" in out, out
