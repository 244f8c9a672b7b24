"""Issue 14, finding 4: one submitter token cannot take the whole node.

Each token has a bucket of roots per node (``api.token_roots_per_s``, ``api.token_burst_roots``);
past it the token gets 429 with the ``Retry-After`` at which its request fits, while other
tokens are served as before. Each token also holds at most its share of the mempool
(``mempool.submitter_share_percent``): past it, 429 again, and blocks take roots from every
token (node.mempool), so a backlog never queues another producer's root behind it. Shown
on the app with a fake clock, and on a real validator: one producer floods, the other's root
still certifies at once.
"""

import os
import threading
import time
import tomllib
from pathlib import Path

import httpx
import pytest

from devnet import cluster
from node.api import SubmitterQuota, build_app
from node.keyfiles import write_secret_file
from node.mempool import MempoolFull, ShareExceeded
from node.config import render_config
from node.tokens import TokenTable, add_token, load_tokens, token_hash
from tests.network_harness import Network, wait_until
from tests.test_api import StandIn
from tests.test_http_limits import RunningNode, running, start_node  # noqa: F401  (running is a fixture)


class Clock:
    def __init__(self):
        self.now = 100.0

    def __call__(self):
        return self.now


@pytest.fixture
def two_producers(tmp_path: Path):
    path = tmp_path / "tokens.toml"
    flood, quiet = add_token(path, "flood"), add_token(path, "quiet")
    service = StandIn(load_tokens(path))
    clock = Clock()
    service.quota = SubmitterQuota(roots_per_s=4, burst_roots=8, clock=clock)
    app = build_app(service, roots_per_request_max=4, body_bytes_max=10_000)
    client = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://node")
    return client, service, clock, flood, quiet


def post(client, token, count=4):
    return client.post("/v1/roots", content=os.urandom(32 * count),
                       headers={"Authorization": f"Bearer {token}", "Content-Type": "application/octet-stream"})


async def test_a_flooding_token_gets_429_with_retry_after_and_another_token_is_still_served(two_producers):
    client, service, clock, flood, quiet = two_producers
    assert [(await post(client, flood)).status_code for _ in range(2)] == [202, 202]
    refused = await post(client, flood)
    assert refused.status_code == 429 and refused.headers["Retry-After"] == "1"
    assert "'flood' is past its quota of 4 roots/s" in refused.json()["error"]
    assert (await post(client, quiet)).status_code == 202
    clock.now += 1.0
    assert (await post(client, flood)).status_code == 202
    assert [submitter for _roots, submitter in service.submitted].count("flood") == 3


async def test_retry_after_says_when_the_request_fits(two_producers):
    client, _service, clock, flood, _quiet = two_producers
    await post(client, flood)
    await post(client, flood)
    clock.now += 0.25  # one root back
    refused = await post(client, flood)
    assert refused.status_code == 429 and refused.headers["Retry-After"] == "1"  # 3 roots at 4/s: 0.75 s


async def test_roots_the_node_refused_are_given_back_to_the_quota(two_producers):
    client, service, _clock, flood, _quiet = two_producers
    service.fail_with = MempoolFull("full")
    assert [(await post(client, flood)).status_code for _ in range(3)] == [503, 503, 503]
    service.fail_with = None
    assert [(await post(client, flood)).status_code for _ in range(2)] == [202, 202]


async def test_a_token_holding_its_share_of_the_mempool_gets_429_with_retry_after_and_its_quota_back(two_producers):
    client, service, _clock, flood, quiet = two_producers
    service.fail_with = ShareExceeded("'flood' holds 10 roots waiting here, its share of 10 (of 40)", "flood")
    refused = await post(client, flood)
    assert refused.status_code == 429 and refused.headers["Retry-After"] == "5"
    assert refused.json()["error"].startswith("submitter 'flood' holds 10 roots waiting here, its share")
    service.fail_with = None
    assert [(await post(client, flood)).status_code for _ in range(2)] == [202, 202]  # the 4 roots were refunded
    assert (await post(client, quiet)).status_code == 202


def test_an_unmetered_quota_admits_everything():
    quota = SubmitterQuota(0, 0)
    assert all(quota.take("a", 1000) == 0.0 for _ in range(100))


def test_a_real_validator_keeps_serving_the_quiet_producer_while_another_floods(tmp_path, running):  # noqa: F811
    node = start_node(tmp_path / "devnet", {"token_roots_per_s": 2_000, "token_burst_roots": 4_000})
    running.append(node)
    tokens_file = Path(node.entry.config).parent / "tokens.toml"
    quiet = add_token(tokens_file, "quiet")
    cluster.stop(node.state)
    cluster.start(node.state)
    wait_until(lambda: node.log_text().count(" ready ") >= 2, deadline_s=60, what="the node to restart")
    url = f"http://127.0.0.1:{node.port}"
    stop = threading.Event()
    counts = {202: 0, 429: 0, "other": 0}

    def flood() -> None:
        with httpx.Client(timeout=10) as client:
            while not stop.is_set():
                response = client.post(f"{url}/v1/roots", content=os.urandom(32 * 1000), headers={
                    "Authorization": f"Bearer {node.state.token}", "Content-Type": "application/octet-stream"})
                key = response.status_code if response.status_code in counts else "other"
                counts[key] += 1
                if response.status_code == 429:
                    assert int(response.headers["Retry-After"]) >= 1

    threads = [threading.Thread(target=flood) for _ in range(3)]
    started = time.monotonic()
    for thread in threads:
        thread.start()
    latencies = []
    try:
        with httpx.Client(timeout=10) as client:
            for _ in range(5):
                root = os.urandom(32)
                sent = time.monotonic()
                response = client.post(f"{url}/v1/roots", json={"roots": [root.hex()]},
                                       headers={"Authorization": f"Bearer {quiet}"})
                assert response.status_code == 202, response.text
                wait_until(lambda: client.get(f"{url}/v1/roots/{root.hex()}").json().get("state") == "certified",
                           deadline_s=20, what="the quiet producer's root to be certified", poll_s=0.05)
                latencies.append(time.monotonic() - sent)
                time.sleep(0.5)
    finally:
        stop.set()
        for thread in threads:
            thread.join()
    elapsed = time.monotonic() - started
    flood_rate = counts[202] * 1000 / elapsed
    print(f"flood: {counts[202]} batches acknowledged ({flood_rate:,.0f} roots/s), {counts[429]} refused with 429; "
          f"quiet producer: certified in {', '.join(f'{t:.2f}' for t in latencies)} s")
    assert counts[429] > 0 and counts["other"] == 0
    assert flood_rate <= 2_000 + 4_000 / elapsed + 500
    assert max(latencies) < 5.0


def test_while_the_backlog_is_at_its_bound_a_token_that_keeps_submitting_waits_and_a_quiet_one_does_not():
    clock, backlog = Clock(), [0]
    quota = SubmitterQuota(roots_per_s=1000, burst_roots=2000, clock=clock, backlog=lambda: backlog[0],
                           backlog_roots=10_000)
    assert quota.take("flood", 2000) == 0.0
    backlog[0] = 10_000  # the node's mempool at the bound: no token's bucket refills
    clock.now += 60.0
    assert quota.take("flood", 1000) == float("inf")
    assert quota.take("quiet", 1) == 0.0
    backlog[0] = 5_000  # half way: refill at half rate
    clock.now += 1.0
    assert quota.take("flood", 500) == 0.0
    assert quota.take("flood", 500) > 0.0


async def test_retry_after_is_bounded_while_the_backlog_drains(tmp_path):
    path = tmp_path / "tokens.toml"
    flood = add_token(path, "flood")
    service = StandIn(load_tokens(path))
    service.quota = SubmitterQuota(roots_per_s=4, burst_roots=4, clock=Clock(), backlog=lambda: 100, backlog_roots=100)
    app = build_app(service, roots_per_request_max=4, body_bytes_max=10_000)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://node") as client:
        assert (await post(client, flood)).status_code == 202
        refused = await post(client, flood)
    assert refused.status_code == 429 and 1 <= int(refused.headers["Retry-After"]) <= 5
    assert "backlog" in refused.json()["error"]


LATENCY_BOUND_S = {"default": 5.0, "off": 15.0}
"""With the rate quota off the flood keeps every mempool at its shares (750,000 roots each) and
the two cores saturated, and a quiet root relayed by gossip shares its relaying peer's turn in
other leaders' blocks: it gets a turn of its own when the validator it was sent to leads, about
n views later. Measured: 0.2 to 7.8 s (78 s before shares and fair blocks)."""


@pytest.mark.slow
@pytest.mark.parametrize("rate_quota", ["default", "off"])
def test_on_four_validators_a_flood_does_not_delay_the_quiet_producer(tmp_path, rate_quota):
    """Issue 14's demonstration: six threads flood all four validators with one token; the other
    producer's root is certified in about normal time (it took 78 s). With the default quota,
    and with the rate quota off (``api.token_roots_per_s = 0``), where only the mempool share,
    the gossip bounds and fair blocks stand between the flood and the quiet producer."""
    state = cluster.create(tmp_path / "devnet", 4)
    quiet = None
    for entry in state.nodes:
        if rate_quota == "off":
            config_path = Path(entry.config)
            values = tomllib.loads(config_path.read_text())
            values["api"]["token_roots_per_s"] = 0
            config_path.write_text(render_config(values))
        tokens_file = Path(entry.config).parent / "tokens.toml"
        table = load_tokens(tokens_file)
        if quiet is None:
            quiet = add_token(tokens_file, "quiet")
        else:
            tokens_file.unlink()
            write_secret_file(tokens_file, TokenTable({**table.by_hash, token_hash(quiet): "quiet"}).render())
    cluster.start(state)
    network = Network(state)
    try:
        wait_until(network.all_ready, deadline_s=60, what="all nodes ready")
        stop = threading.Event()
        acknowledged = [0]

        def flood(first: int) -> None:
            with httpx.Client(timeout=30) as client:
                turn = first
                while not stop.is_set():
                    response = client.post(f"{network.url(turn % 4)}/v1/roots", content=os.urandom(32 * 1000), headers={
                        "Authorization": f"Bearer {state.token}", "Content-Type": "application/octet-stream"})
                    turn += 1
                    if response.status_code == 202:
                        acknowledged[0] += 1000
                    else:
                        time.sleep(0.2)

        threads = [threading.Thread(target=flood, args=(i,)) for i in range(6)]
        started = time.monotonic()
        for thread in threads:
            thread.start()
        latencies = []
        try:
            for turn in range(8):
                root = os.urandom(32)
                sent = time.monotonic()
                response = network.http.post(f"{network.url(turn % 4)}/v1/roots", json={"roots": [root.hex()]},
                                             headers={"Authorization": f"Bearer {quiet}"})
                assert response.status_code == 202, response.text
                wait_until(lambda: network.root_state(0, root) == "certified", deadline_s=60,
                           what="the quiet producer's root to be certified", poll_s=0.1)
                latencies.append(time.monotonic() - sent)
                time.sleep(max(0.0, 2.0 - latencies[-1]))
        finally:
            stop.set()
            for thread in threads:
                thread.join()
        rate = acknowledged[0] / (time.monotonic() - started)
        print(f"rate quota {rate_quota}: flood acknowledged {rate:,.0f} roots/s; quiet producer certified in "
              f"{', '.join(f'{t:.2f}' for t in latencies)} s")
        assert max(latencies) < LATENCY_BOUND_S[rate_quota]
    finally:
        network.close()
        cluster.stop(state)


def test_with_no_rate_limit_the_mempool_share_and_fair_blocks_keep_the_quiet_producer_served(tmp_path, running):  # noqa: F811
    """The share alone, rate quota off: three threads flood with one token, which fills its
    quarter of an 8,000-root mempool and gets 429; the quiet producer is admitted, and fewer than
    half the flood roots waiting when it was sent are logged before it (oldest-first blocks
    logged all of them first: up to 2,000 roots, 40 blocks of 50)."""
    state = cluster.create(tmp_path / "devnet", 1)
    entry = state.nodes[0]
    config_path = Path(entry.config)
    values = tomllib.loads(config_path.read_text())
    values["api"].update({"token_roots_per_s": 0})
    values["mempool"] = {"roots_max": 8_000, "submitter_share_percent": 25}
    values["consensus"] = {**values.get("consensus", {}), "block_roots_max": 50}
    config_path.write_text(render_config(values))
    quiet = add_token(config_path.parent / "tokens.toml", "quiet")
    port = int(values["api"]["listen"].rsplit(":", 1)[1])
    cluster.start(state)
    running.append(RunningNode(state, entry, port))
    wait_until(lambda: "ready" in running[-1].log_text(), deadline_s=60, what="the node to be ready")
    url = f"http://127.0.0.1:{port}"
    stop = threading.Event()
    counts: dict[object, int] = {202: 0, 429: 0, "other": 0}
    share_refusals: list[str] = []

    def flood() -> None:
        with httpx.Client(timeout=10) as client:
            while not stop.is_set():
                response = client.post(f"{url}/v1/roots", content=os.urandom(32 * 500), headers={
                    "Authorization": f"Bearer {state.token}", "Content-Type": "application/octet-stream"})
                counts[response.status_code if response.status_code in counts else "other"] += 1
                if response.status_code == 429:
                    assert response.headers["Retry-After"] == "5"
                    share_refusals[:1] = [response.json()["error"]]

    threads = [threading.Thread(target=flood) for _ in range(3)]
    for thread in threads:
        thread.start()
    latencies, ahead, waiting = [], [], []
    try:
        with httpx.Client(timeout=10) as client:
            wait_until(lambda: counts[429] > 0, deadline_s=20, what="the flood to reach its share")
            for _ in range(5):
                health = client.get(f"{url}/healthz").json()
                waiting.append(health["mempool_roots"])
                root = os.urandom(32)
                sent = time.monotonic()
                response = client.post(f"{url}/v1/roots", json={"roots": [root.hex()]},
                                       headers={"Authorization": f"Bearer {quiet}"})
                assert response.status_code == 202, response.text
                wait_until(lambda: client.get(f"{url}/v1/roots/{root.hex()}").json().get("state") == "certified",
                           deadline_s=20, what="the quiet producer's root to be certified", poll_s=0.01)
                latencies.append(time.monotonic() - sent)
                ahead.append(client.get(f"{url}/v1/roots/{root.hex()}").json()["index"] - health["log_size"])
                time.sleep(0.2)
    finally:
        stop.set()
        for thread in threads:
            thread.join()
    print(f"flood: {counts[202]} batches of 500 acknowledged, {counts[429]} refused with 429 ({share_refusals[0]}); "
          f"quiet producer certified in {', '.join(f'{t:.2f}' for t in latencies)} s, "
          f"{', '.join(map(str, ahead))} roots logged before it of {', '.join(map(str, waiting))} waiting when it was sent")
    assert counts["other"] == 0 and "its share of 2000" in share_refusals[0]
    assert all(before < queued / 2 for before, queued in zip(ahead, waiting)) and max(latencies) < 3.0
