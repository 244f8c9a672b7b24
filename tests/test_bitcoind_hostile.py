"""A validator's anchoring against a hostile bitcoind (tests/hostile_bitcoind.py), in process.

Each hostile answer must leave the anchoring tick standing (it reports the trouble in its
status and never raises), make the anchor check before a vote fail with an error the
runtime catches (so the vote is withheld), and never put the RPC password in a message.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import pytest

from anchor.rpc import BitcoindError
from node.anchoring import ERROR_LOG_INTERVAL_MS, Anchorer
from node.config import BitcoinSection
from node.metrics import NodeMetrics
from proof.chain import AnchorRef
from storage.anchor_store import AnchorStore
from storage.chain_store import ChainStore
from storage.db import Store
from tests.chain_fixtures import make_chain
from tests.hostile_bitcoind import HOSTILE_REPLIES, PASSWORD, TIP_HEIGHT, HostileBitcoind, Reply

RPC_TIMEOUT_MS = 400
REF = AnchorRef(txid=b"\1" * 32, vout=1, anchored_block_hash=b"\3" * 32, btc_block_hash=b"\2" * 32, btc_height=7)


@pytest.fixture(scope="module")
def hostile() -> Iterator[HostileBitcoind]:
    with HostileBitcoind() as server:
        yield server


@pytest.fixture
def anchorer(tmp_path: Path, hostile: HostileBitcoind) -> Iterator[Anchorer]:
    config = BitcoinSection(
        enabled=True,
        network="regtest",
        rpc_url=hostile.url,
        rpc_user=hostile.user,
        rpc_password=hostile.password,
        wallet="w",
        rpc_timeout_ms=RPC_TIMEOUT_MS,
        check_timeout_ms=RPC_TIMEOUT_MS,
    )
    with Store(tmp_path / "db") as store:
        yield Anchorer(
            genesis=make_chain().genesis,
            index=0,
            config=config,
            resolve=Path,
            anchors=AnchorStore(store),
            chain=ChainStore(store),
        )


SLOW_REPLIES = {
    "silent": Reply(silent=True),
    "trickle": Reply(result={"chain": "regtest"}, trickle_s=0.05),
}
ALL_REPLIES = {**HOSTILE_REPLIES, **SLOW_REPLIES}
# The error kind each hostile reply must be reported as; every other one is "reply_invalid".
KINDS = {"http_401": "auth", "silent": "unavailable", "trickle": "unavailable", "wrong_network": "wrong_network"}


@pytest.mark.parametrize("name", sorted(ALL_REPLIES))
def test_a_hostile_reply_pauses_anchoring_and_the_tick_survives(anchorer, hostile, name):
    hostile.set(ALL_REPLIES[name])
    anchorer.tick(now_ms=1_000)
    status = anchorer.status.as_json()
    kind = KINDS.get(name, "reply_invalid")
    assert (status["bitcoind_ok"], status["bitcoind_error_kind"], status["bitcoind_errors"]) == (False, kind, {kind: 1})
    if kind == "reply_invalid":
        assert "answered getblockchaininfo with an invalid reply" in status["last_error"]
    assert PASSWORD not in status["last_error"]


@pytest.mark.parametrize("name", sorted(ALL_REPLIES))
def test_a_hostile_reply_to_an_anchor_check_is_an_error_the_vote_path_catches(anchorer, hostile, name):
    hostile.set(ALL_REPLIES[name])
    with pytest.raises(BitcoindError) as raised:
        anchorer.check_refs((REF,))
    assert raised.value.kind == KINDS.get(name, "reply_invalid")
    assert PASSWORD not in str(raised.value)
    assert anchorer.status.errors_total == {raised.value.kind: 1}


def anchoring_warnings(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.getMessage().startswith("anchoring paused")]


def test_a_bitcoind_failing_every_tick_is_logged_once_per_kind_then_once_a_minute(anchorer, hostile, caplog):
    caplog.set_level(logging.WARNING, logger="pantheon.anchoring")
    for i in range(30):
        hostile.set(Reply(result={"chain": "regtest", "blocks": f"garbage {i}"}))
        anchorer.tick(now_ms=1_000 + 100 * i)
    assert len(anchoring_warnings(caplog)) == 1
    hostile.set(HOSTILE_REPLIES["wrong_network"])
    anchorer.tick(now_ms=5_000)
    assert len(anchoring_warnings(caplog)) == 2
    hostile.set(HOSTILE_REPLIES["null_result"])
    anchorer.tick(now_ms=6_000)
    anchorer.tick(now_ms=6_000 + ERROR_LOG_INTERVAL_MS)
    assert len(anchoring_warnings(caplog)) == 4
    assert anchorer.status.errors_total == {"reply_invalid": 32, "wrong_network": 1}


def test_anchoring_recovers_by_itself_once_bitcoind_answers_well_again(anchorer, hostile):
    hostile.set(HOSTILE_REPLIES["deeply_nested"])
    anchorer.tick(now_ms=1_000)
    assert not anchorer.status.bitcoind_ok
    hostile.heal()
    anchorer.tick(now_ms=2_000)
    status = anchorer.status.as_json()
    assert (status["bitcoind_ok"], status["bitcoind_error_kind"], status["last_error"]) == (True, "", "")
    assert status["btc_height"] == TIP_HEIGHT
    assert status["bitcoind_errors"] == {"reply_invalid": 1}


def test_metrics_show_bitcoind_health_and_count_errors_by_kind(anchorer, hostile):
    metrics = NodeMetrics()
    for reply in ("null_result", "int_result", "wrong_network"):
        hostile.set(HOSTILE_REPLIES[reply])
        anchorer.tick(now_ms=1_000)
        metrics.sync_bitcoind(anchorer.status.bitcoind_ok, anchorer.status.errors_total)
    metrics.sync_bitcoind(anchorer.status.bitcoind_ok, anchorer.status.errors_total)
    text = metrics.render().decode()
    assert 'pantheon_bitcoind_errors_total{kind="reply_invalid"} 2.0' in text
    assert 'pantheon_bitcoind_errors_total{kind="wrong_network"} 1.0' in text
    assert "pantheon_bitcoind_healthy 0.0" in text
    hostile.heal()
    anchorer.tick(now_ms=2_000)
    metrics.sync_bitcoind(anchorer.status.bitcoind_ok, anchorer.status.errors_total)
    assert "pantheon_bitcoind_healthy 1.0" in metrics.render().decode()
