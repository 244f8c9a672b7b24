"""A validator that was down while the chain grew by over a hundred full blocks rejoins through catch-up.

Real `pantheon node run` processes on loopback. The history it misses is several
frames' worth (more than one 4 MiB answer can carry), so it has to be fetched in
pieces that each prove themselves; no node may log an oversize frame while it does.
The figures are printed (run with ``-s``) for the issue note: they are not asserted.
"""

from __future__ import annotations

import re
import time
from pathlib import Path

import pytest

from devnet import cluster
from proof.wire import MESSAGE_BYTES_MAX
from tests.network_harness import Network, random_roots, running, wait_until

pytestmark = pytest.mark.timeout(900)

BLOCK_ROOTS_MAX = 4_000
BLOCKS_MISSED_MIN = 100
BATCH = 1_000
ROOTS_MISSED = BLOCKS_MISSED_MIN * BLOCK_ROOTS_MAX
OVERSIZE = re.compile(r"exceeds MAX_FRAME_BYTES|OversizeFrame|send failed")


def _with_block_roots_max(config: str, roots_max: int) -> None:
    path = Path(config)
    text = path.read_text()
    assert "[consensus]\n" in text
    path.write_text(text.replace("[consensus]\n", f"[consensus]\nblock_roots_max = {roots_max}\n", 1))


def _submit_until_accepted(network: Network, index: int, batch: list[bytes]) -> None:
    """Submit, honouring back-pressure (429/503 with Retry-After) as a producer should."""
    deadline = time.monotonic() + 120
    while True:
        response = network.submit(index, batch)
        if response.status_code == 202:
            return
        assert response.status_code in (429, 503) and time.monotonic() < deadline, response.text
        time.sleep(min(float(response.headers.get("Retry-After", "1")), 2.0))


@pytest.fixture
def network(tmp_path):
    state = cluster.create(tmp_path / "devnet", 4)
    for entry in state.nodes:
        _with_block_roots_max(entry.config, BLOCK_ROOTS_MAX)
    with running(state) as net:
        yield net


def test_a_validator_down_for_a_hundred_full_blocks_rejoins_with_the_same_log_and_no_oversize_frame(network):
    network.kill9(3)
    roots = random_roots(ROOTS_MISSED)
    for start in range(0, ROOTS_MISSED, BATCH):
        _submit_until_accepted(network, (start // BATCH) % 3, roots[start : start + BATCH])
    wait_until(lambda: network.log_sizes([0, 1, 2]) == [ROOTS_MISSED] * 3, deadline_s=600,
               what=f"the three live validators to log {ROOTS_MISSED} roots")
    live = network.status(0)
    assert live["height"] >= BLOCKS_MISSED_MIN
    missed_bytes = ROOTS_MISSED * 32
    assert missed_bytes > 2 * MESSAGE_BYTES_MAX, "the missed history must need several catch-up answers"

    started = time.monotonic()
    cluster.start(network.state)
    wait_until(lambda: network.status(3)["ok"], deadline_s=60, what="the restarted validator to answer /healthz")
    ready = time.monotonic()
    wait_until(lambda: network.status(3)["log_size"] == ROOTS_MISSED, deadline_s=300, poll_s=0.05,
               what="the restarted validator to catch up")
    caught_up = time.monotonic()
    assert network.status(3)["log_root"] == network.status(0)["log_root"]
    for index in range(4):
        log_text = Path(network.state.nodes[index].log).read_text(encoding="utf-8", errors="replace")
        assert not OVERSIZE.search(log_text), f"node {index} logged: {OVERSIZE.search(log_text).group(0)}"

    catch_up_s = max(caught_up - ready, 1e-3)
    print(
        f"\ncatch-up: {live['height']} blocks, {ROOTS_MISSED} roots ({missed_bytes / 2**20:.1f} MiB) missed; "
        f"restart to /healthz {ready - started:.2f} s, then caught up in {catch_up_s:.2f} s "
        f"({live['height'] / catch_up_s:.0f} blocks/s, {ROOTS_MISSED / catch_up_s:,.0f} roots/s); "
        f"time to rejoin {caught_up - started:.2f} s"
    )
