"""Four real validators: proposals name gossip batches instead of carrying their roots again,
and a validator that missed the gossip fetches what it lacks and still follows."""

from __future__ import annotations

from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from devnet import cluster
from tests.network_harness import Network, random_roots, running, wait_until

pytestmark = pytest.mark.timeout(600)

BATCH = 1_000


@pytest.fixture
def network(tmp_path):
    with running(cluster.create(tmp_path / "devnet", 4)) as net:
        yield net


def counters(net: Network, index: int) -> dict[tuple[str, str], float]:
    """``(sample name, label values)`` -> value of node ``index``'s counters."""
    text = net.http.get(f"{net.url(index)}/metrics").text
    values = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            values[(sample.name, ",".join(sample.labels.values()))] = sample.value
    return values


def total(net: Network, name: str, label: str) -> float:
    return sum(counters(net, i).get((name, label), 0.0) for i in range(len(net.state.nodes)))


def submit_all(net: Network, roots: list[bytes]) -> None:
    for start in range(0, len(roots), BATCH):
        response = net.submit((start // BATCH) % len(net.state.nodes), roots[start : start + BATCH])
        assert response.status_code == 202, response.text


def test_proposals_cross_as_references_and_every_log_is_the_same(network):
    roots = random_roots(20 * BATCH)
    submit_all(network, roots)
    wait_until(lambda: network.log_sizes() == [len(roots)] * 4, deadline_s=300, what="every node to log the roots")
    assert len({network.status(i)["log_root"] for i in range(4)}) == 1
    sent = total(network, "pantheon_compact_proposals_total", "sent")
    received = (total(network, "pantheon_compact_proposals_total", "rebuilt")
                + total(network, "pantheon_compact_proposals_total", "fetched"))
    assert sent >= 1
    assert received >= 1
    assert total(network, "pantheon_compact_proposals_total", "mismatch") == 0
    root_bytes = 32 * len(roots)
    assert total(network, "pantheon_p2p_sent_bytes_total", "roots") == 3 * root_bytes
    # As full proposals, the roots would have crossed to each of 3 peers once more: 3 * root_bytes.
    proposal_bytes = (total(network, "pantheon_p2p_sent_bytes_total", "compact_proposal")
                      + total(network, "pantheon_p2p_sent_bytes_total", "proposal"))
    assert proposal_bytes < root_bytes / 4


@pytest.fixture
def network_with_a_forgetful_validator(tmp_path):
    """Validator 3 holds no gossip batch: its pool (a mempool's worth of roots) is smaller than one."""
    state = cluster.create(tmp_path / "devnet", 4)
    path = Path(state.nodes[3].config)
    path.write_text(path.read_text().replace("[mempool]\n", f"[mempool]\nroots_max = {BATCH // 2}\n", 1))
    with running(state) as net:
        yield net


def test_a_validator_that_lacks_the_batches_fetches_the_segments_and_follows(network_with_a_forgetful_validator):
    network = network_with_a_forgetful_validator
    roots = random_roots(12 * BATCH)
    for start in range(0, len(roots), BATCH):
        assert network.submit(start // BATCH % 3, roots[start : start + BATCH]).status_code == 202
    wait_until(lambda: network.log_sizes() == [len(roots)] * 4, deadline_s=300, what="every node to log the roots")
    assert len({network.status(i)["log_root"] for i in range(4)}) == 1
    forgetful = counters(network, 3)
    assert forgetful.get(("pantheon_compact_proposals_total", "fetched"), 0) >= 1
    assert forgetful.get(("pantheon_compact_proposals_total", "rebuilt"), 0) == 0
    assert total(network, "pantheon_compact_proposals_total", "mismatch") == 0
