"""A real `pantheon node run` validator whose bitcoind is hostile, in a 4-validator network.

Validators 0-2 use the devnet's regtest bitcoind; validator 3's rpc_url points at the
hostile server (tests/hostile_bitcoind.py), which first answers every call with
``{"result": null}`` (the reply that used to kill a validator at start), then with a
run of other hostile replies. The validator must stay alive, the chain must keep
finalizing with it, and its /healthz and metrics must show the trouble; then the server
proxies the real bitcoind and the validator must recover by itself and anchor.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from devnet import cluster, regtest
from devnet.bitcoind import BitcoindInstallError, find_or_install
from node.keyfiles import write_secret_file
from tests.hostile_bitcoind import HOSTILE_REPLIES, HostileBitcoind, Reply
from tests.network_harness import Network, random_roots, wait_until

pytestmark = [pytest.mark.timeout(180), pytest.mark.bitcoind]

HOSTILE = 3
MINE_EVERY_S = 1.0
FALLBACK_MS = 4_000
# Replies the hostile validator's bitcoind gives in turn while the chain finalizes.
HOSTILE_RUN = ("deeply_nested", "truncated", "wrong_network", "non_json", "int_result", "http_500_text", "short_hash")


@pytest.fixture
def hostile_network(tmp_path: Path) -> Iterator[tuple[cluster.DevnetState, Network, HostileBitcoind]]:
    try:
        paths = find_or_install()
    except BitcoindInstallError as exc:
        pytest.skip(f"no bitcoind on this machine and it could not be installed: {exc}")
    directory = tmp_path / "devnet"
    with HostileBitcoind() as hostile:
        hostile.set(HOSTILE_REPLIES["null_result"])
        password_file = tmp_path / "hostile-rpc-password"
        write_secret_file(password_file, hostile.password.encode())
        info = regtest.new_info(directory, paths, 4, mine_every_s=MINE_EVERY_S)
        for section in info["nodes"]:
            section.update(fallback_ms=FALLBACK_MS, rpc_timeout_ms=1_000, check_timeout_ms=1_000)
        info["nodes"][HOSTILE].update(
            rpc_url=hostile.url, rpc_cookie_file="", rpc_user=hostile.user, rpc_password_file=str(password_file)
        )
        state = cluster.create(directory, 4, bitcoin=info)
        network = Network(state)
        try:
            cluster.start_bitcoin(state)
            cluster.start(state)
            yield state, network, hostile
        finally:
            network.close()
            cluster.stop(state)


def metric(network: Network, node: int, name: str) -> float:
    """The sum of a metric's samples on ``node``: over all its labels, or the one named in ``name``."""
    text = network.http.get(f"{network.url(node)}/metrics").text
    values = [float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
              if line.startswith(name) and re.match(r"[{ ]", line[len(name):len(name) + 1])]
    return sum(values)


def certified_everywhere(network: Network, roots: list[bytes]) -> bool:
    return all(network.root_state(i, roots[-1]) in ("certified", "anchored") for i in range(4))


def test_a_validator_with_a_hostile_bitcoind_stays_up_keeps_finalizing_reports_it_and_recovers(hostile_network):
    state, network, hostile = hostile_network
    wait_until(network.all_ready, deadline_s=60, what="4 validators ready, the hostile one included")
    entry = state.nodes[HOSTILE]
    assert network.status(HOSTILE)["anchoring"]["bitcoind"] == "unavailable"

    heights = [network.status(HOSTILE)["height"]]
    for name in ("null_result", *HOSTILE_RUN):
        seen = metric(network, HOSTILE, "pantheon_bitcoind_errors_total")
        hostile.set(HOSTILE_REPLIES[name])
        wait_until(lambda: metric(network, HOSTILE, "pantheon_bitcoind_errors_total") > seen + 1, deadline_s=15,
                   what=f"validator {HOSTILE} to count bitcoind errors while it answers {name}")
        roots = random_roots(5)
        assert network.submit(HOSTILE, roots).status_code == 202
        wait_until(lambda: certified_everywhere(network, roots), deadline_s=30,
                   what=f"roots certified on all 4 while validator {HOSTILE}'s bitcoind answers {name}")
        assert cluster.is_running(entry), f"validator {HOSTILE} died on {name}"
        assert network.status(HOSTILE)["anchoring"]["bitcoind"] == "unavailable"
        heights.append(network.status(HOSTILE)["height"])
    assert heights == sorted(heights) and heights[-1] >= heights[0] + len(HOSTILE_RUN)
    assert metric(network, HOSTILE, "pantheon_bitcoind_healthy") == 0
    errors = metric(network, HOSTILE, "pantheon_bitcoind_errors_total")
    assert metric(network, HOSTILE, 'pantheon_bitcoind_errors_total{kind="wrong_network"}') >= 1
    assert metric(network, HOSTILE, 'pantheon_bitcoind_errors_total{kind="reply_invalid"}') >= len(HOSTILE_RUN)

    hostile.set(Reply(silent=True))
    time.sleep(2.5)
    assert cluster.is_running(entry) and network.status(HOSTILE)["ok"]

    hostile.proxy_to(state.bitcoin["rpc_port"], regtest.cookie_path(state.bitcoin))
    wait_until(lambda: network.status(HOSTILE)["anchoring"]["bitcoind"] == "ok", deadline_s=30,
               what=f"validator {HOSTILE} to see a healthy bitcoind again")
    assert metric(network, HOSTILE, "pantheon_bitcoind_healthy") == 1
    roots = random_roots(5)
    assert network.submit(0, roots).status_code == 202
    wait_until(lambda: network.root_state(HOSTILE, roots[-1]) == "anchored", deadline_s=60,
               what=f"a root anchored as seen by validator {HOSTILE}, through its now healthy bitcoind")

    log = Path(entry.log).read_text()
    assert "Traceback" not in log
    warnings = log.count("anchoring paused")
    assert 1 <= warnings <= len(HOSTILE_RUN) + 4, f"{warnings} 'anchoring paused' lines for {errors:.0f} errors"
    assert hostile.password not in log
