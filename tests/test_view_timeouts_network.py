"""Four real validators count the views they time out in, by how far each view got: on an idle
chain no leader proposes, so every timeout is one without a proposal."""

from __future__ import annotations

import pytest

from devnet import cluster
from tests.network_harness import running, wait_until
from tests.test_compact_proposals_network import counters

pytestmark = pytest.mark.timeout(300)


def test_an_idle_chain_times_out_its_views_without_a_proposal_and_says_so(tmp_path):
    with running(cluster.create(tmp_path / "devnet", 4)) as net:
        wait_until(
            lambda: all(counters(net, i).get(("pantheon_view_timeouts_total", "no_proposal"), 0) >= 1 for i in range(4)),
            deadline_s=120, what="every validator to count a view timed out without a proposal",
        )
        for index in range(4):
            stages = {labels for (name, labels), value in counters(net, index).items()
                      if name == "pantheon_view_timeouts_total" and value}
            assert stages == {"no_proposal"}, (index, stages)
