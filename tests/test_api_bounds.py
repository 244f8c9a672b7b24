"""Issue 14, findings 5-7: every malformed request is a 400 (never a 500, never a traceback at
ERROR), every list endpoint is paginated with a bounded page, and /healthz tells the public
nothing about the node's internals (bitcoind address, RPC user, cookie path, wallet state)."""

import json
import logging
import os
from pathlib import Path
from types import SimpleNamespace

import httpx
import pytest

from node.api import Page, build_app
from node.service import NodeAPIService
from node.tokens import add_token, load_tokens
from tests.test_api import StandIn


@pytest.fixture
def token(tmp_path: Path) -> tuple[str, StandIn]:
    path = tmp_path / "tokens.toml"
    secret = add_token(path, "producer-a")
    return secret, StandIn(load_tokens(path))


def client(service, *, body_bytes_max: int = 1_000_000, proofs=None) -> httpx.AsyncClient:
    app = build_app(service, roots_per_request_max=4, body_bytes_max=body_bytes_max, proofs=proofs)
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    return httpx.AsyncClient(transport=transport, base_url="http://node")


class Proofs:
    """A proof source that, like the real one, packs heights and sizes as u64."""

    def certified_block(self, height):
        return height.to_bytes(8, "big") and None

    def consistency(self, size1, size2):
        size1.to_bytes(8, "big")
        return None if size2 is None else size2.to_bytes(8, "big") and None

    def anchor_record(self, height):
        height.to_bytes(8, "big")
        return None

    def checkpoint_note(self):
        return None


U64_OVERFLOW = str(2**64)  # 20 digits


def fake_node(**parts):
    """What NodeAPIService reads from a node, plus ``parts``."""
    config = SimpleNamespace(api=SimpleNamespace(token_roots_per_s=0, token_burst_roots=0, token_backlog_roots=0))
    return SimpleNamespace(name="v0", tokens=None, config=config, **parts)


@pytest.mark.parametrize(
    "path",
    [
        "/v1/blocks/²",
        "/v1/blocks/١٢",  # Arabic-Indic digits: isdigit() and int() accept them
        f"/v1/blocks/{U64_OVERFLOW}",
        "/v1/blocks/1?format=cbor&format=%00",
        "/v1/anchored/²",
        f"/v1/anchored/{U64_OVERFLOW}",
        f"/v1/anchored/{'9' * 20}",
        "/v1/anchored/-1",
        f"/v1/consistency?size1={U64_OVERFLOW}",
        "/v1/consistency?size1=1&size2=²",
        "/v1/consistency?size1=%EF%BC%91",  # fullwidth digit one
        "/v1/roots/" + "²" * 64,
        "/v1/roots/" + "%20" * 62 + "00",  # bytes.fromhex skips spaces: a 1-byte "root"
        "/v1/proofs/" + "00%20" * 21 + "0",
        "/v1/proofs/" + "0" * 63 + "g",
        "/v1/checkpoints/latest?format=xml",
        "/v1/evidence?limit=-1",
        "/v1/evidence?limit=²",
        f"/v1/evidence?from={U64_OVERFLOW}",
        "/v1/evidence?limit=100000",
        "/v1/anchors?limit=0",
        f"/v1/anchors?from_height={U64_OVERFLOW}",
    ],
)
async def test_malformed_paths_and_queries_are_400_not_500(token, path, caplog):
    _secret, service = token
    async with client(service, proofs=Proofs()) as http:
        with caplog.at_level(logging.DEBUG):
            response = await http.get(path)
    assert response.status_code == 400, (path, response.status_code, response.text[:200])
    assert "error" in response.json()
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


@pytest.mark.parametrize(
    "body",
    [
        b'{"roots": ' + b"[" * 100_000 + b"]" * 100_000 + b"}",
        b'{"roots": [' + b"1" * 5000 + b"]}",  # int() refuses more than 4300 digits
        b'{"roots": ["' + "²".encode() * 64 + b'"]}',
        b'{"roots": [{"a": ' * 2000 + b"1" + b"}]" * 2000 + b"}",
        b'\xef\xbb\xbf{"roots": []}',
        b"[" * 500_000,
    ],
)
async def test_malformed_json_bodies_are_400_not_500(token, body, caplog):
    secret, service = token
    headers = {"Authorization": f"Bearer {secret}", "Content-Type": "application/json"}
    async with client(service) as http:
        with caplog.at_level(logging.DEBUG):
            response = await http.post("/v1/roots", content=body, headers=headers)
    assert response.status_code == 400, (response.status_code, response.text[:200])
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert service.submitted == []


# ---------------------------------------------------------------------------- pagination


class Listing(StandIn):
    """A stand-in with many evidence records and anchors, paginated as the service is."""

    def __init__(self, tokens, count):
        super().__init__(tokens)
        self.count = count

    def evidence(self, start, limit):
        items = [{"index": i, "cbor": "00"} for i in range(start, min(start + limit, self.count))]
        return Page(items, start + limit if start + limit < self.count else None)

    def anchors(self, from_height, limit):
        heights = [h for h in range(from_height, self.count) if h % 10 == 0][:limit]
        more = [h for h in range(from_height, self.count) if h % 10 == 0][limit:]
        return Page([{"height": h} for h in heights], more[0] if more else None)


async def test_evidence_is_paginated_with_a_bounded_default_and_a_cursor(tmp_path):
    path = tmp_path / "tokens.toml"
    add_token(path, "p")
    service = Listing(load_tokens(path), 250)
    async with client(service) as http:
        first = (await http.get("/v1/evidence")).json()
        assert len(first["evidence"]) == 50 and first["next"] == 50
        seen = [e["index"] for e in first["evidence"]]
        cursor = first["next"]
        while cursor is not None:
            page = (await http.get(f"/v1/evidence?from={cursor}&limit=100")).json()
            assert len(page["evidence"]) <= 100
            seen += [e["index"] for e in page["evidence"]]
            cursor = page["next"]
    assert seen == list(range(250))


async def test_anchors_are_paginated_by_height(tmp_path):
    path = tmp_path / "tokens.toml"
    add_token(path, "p")
    service = Listing(load_tokens(path), 1000)
    async with client(service) as http:
        page = (await http.get("/v1/anchors?limit=3")).json()
        assert [a["height"] for a in page["anchors"]] == [0, 10, 20] and page["next"] == 30
        page = (await http.get("/v1/anchors?from_height=990")).json()
        assert [a["height"] for a in page["anchors"]] == [990] and page["next"] is None


class FakeChain:
    def __init__(self, records):
        self.records = records
        self.asked = []

    def evidence_page(self, start, count_max):
        self.asked.append((start, count_max))
        return self.records[start : start + count_max]


def test_service_reads_one_bounded_page_of_evidence_from_storage():
    records = [os.urandom(8) for _ in range(120)]
    node = fake_node(chain=FakeChain(records))
    service = NodeAPIService(node)
    page = service.evidence(100, 50)
    assert [bytes.fromhex(i["cbor"]) for i in page.items] == records[100:]
    assert [i["index"] for i in page.items] == list(range(100, 120)) and page.next is None
    page = service.evidence(0, 50)
    assert len(page.items) == 50 and page.next == 50
    assert node.chain.asked == [(100, 51), (0, 51)]


def test_chain_store_reads_evidence_from_an_index_without_reading_the_rest(tmp_path):
    from storage.chain_store import ChainStore
    from storage.db import Store

    store = Store(tmp_path / "db")
    chain = ChainStore(store)
    for i in range(7):
        chain.add_evidence(bytes([i]))
    assert chain.evidence_page(5, 10) == [b"\x05", b"\x06"]
    assert chain.evidence_page(0, 2) == [b"\x00", b"\x01"]
    assert chain.evidence_page(2**64 - 1, 2) == []
    store.close()


# ---------------------------------------------------------------------------- healthz

SECRET_DETAIL = "bitcoind at 10.1.2.3:8332 (user rpc-alice, cookie /home/alice/.bitcoin/.cookie) not reachable"


def node_with_anchoring(anchoring):
    status = {"validator": 0, "chain_id": "ab" * 32, "height": 7, "view": 9, "log_size": 3,
              "log_root": "cd" * 32, "block_hash": "ef" * 32, "mempool_roots": 0, "peers": 3,
              "anchoring": anchoring}
    return fake_node(status=lambda: status)


@pytest.mark.parametrize(
    "anchoring, bitcoind, wallet",
    [
        ({"network": "regtest", "bitcoind_ok": False, "wallet_empty": False, "last_error": SECRET_DETAIL,
          "btc_height": None, "last_txid": None, "alerts": [], "anchors_pending": 1}, "unavailable", "unknown"),
        ({"network": "regtest", "bitcoind_ok": True, "wallet_empty": True,
          "last_error": f"wallet 'alice-hot' at {SECRET_DETAIL}: insufficient funds",
          "btc_height": 812, "alerts": ["fee_capped"]}, "ok", "empty"),
        ({"bitcoind_ok": True, "last_error": "", "rpc_address": "10.1.2.3:8332", "bitcoind_trouble": SECRET_DETAIL},
         "ok", "ok"),
        ({"bitcoind_ok": "yes", "wallet_empty": "no", "last_error": SECRET_DETAIL}, "unavailable", "unknown"),
    ],
)
def test_healthz_says_unavailable_and_never_repeats_bitcoind_error_text(anchoring, bitcoind, wallet):
    healthy, detail = NodeAPIService(node_with_anchoring(anchoring)).health()
    text = json.dumps(detail)
    for leaked in ("10.1.2.3", "rpc-alice", ".cookie", "alice-hot", "insufficient funds", "last_error"):
        assert leaked not in text
    assert healthy is True and detail["height"] == 7 and detail["log_size"] == 3
    assert detail["anchoring"]["bitcoind"] == bitcoind
    assert detail["anchoring"]["wallet"] == wallet


def test_healthz_without_anchoring_says_disabled():
    _healthy, detail = NodeAPIService(node_with_anchoring(None)).health()
    assert detail["anchoring"] == {"bitcoind": "disabled"}


class FakeAnchorStore:
    def __init__(self, heights):
        self.heights = heights
        self.asked = []

    def recorded_from(self, height, count_max):
        self.asked.append((height, count_max))
        ref = SimpleNamespace(anchored_block_hash=b"\x01" * 32, txid=b"\x02" * 32, vout=1,
                              btc_block_hash=b"\x03" * 32, btc_height=5)
        chosen = [h for h in self.heights if h >= height][:count_max]
        return [SimpleNamespace(height=h, ref=ref, recorded_at=1) for h in chosen]

    def checkpoint_at(self, height):
        return None


class FakeAnchorer:
    lost_heights = frozenset()

    def __init__(self, heights):
        self.heights = heights

    def own_json(self):
        return {h: {"state": "broadcast", "txid": "aa" * 32, "alerts": [], "last_error": SECRET_DETAIL}
                for h in self.heights}


def test_service_anchors_merge_recorded_and_own_into_exact_pages_without_error_text():
    node = fake_node(anchor_store=FakeAnchorStore([10, 20, 30, 40]), anchorer=FakeAnchorer([15, 40, 50]))
    service = NodeAPIService(node)
    seen, cursor = [], 0
    while cursor is not None:
        page = service.anchors(cursor, 2)
        assert len(page.items) <= 2
        seen += [entry["height"] for entry in page.items]
        assert SECRET_DETAIL not in json.dumps(page.items)
        cursor = page.next
    assert seen == [10, 15, 20, 30, 40, 50]
    assert all(count_max == 3 for _height, count_max in node.anchor_store.asked)


def test_a_recorded_anchor_lost_on_bitcoin_is_listed_pending_with_the_reason(tmp_path):
    """Found by the soak: a reorg dropped the block of an old recorded anchor and bitcoind,
    killed meanwhile, had lost the transaction; later anchors covered its block, and the
    listing said 'pending' without saying why."""
    from proof.chain import AnchorRef
    from storage.anchor_store import AnchorStore
    from storage.db import Store

    with Store(tmp_path / "db") as store:
        anchors = AnchorStore(store)
        refs = [(height, AnchorRef(txid=bytes([height]) * 32, vout=0, anchored_block_hash=bytes([height + 1]) * 32,
                                   btc_block_hash=bytes([height + 2]) * 32, btc_height=100 + height))
                for height in (2, 7)]
        with store.batch(sync=True) as batch:
            anchors.stage_recorded(batch, refs, recorded_at=1)
        anchorer = SimpleNamespace(own_json=lambda: {}, lost_heights=frozenset({2}))
        page = NodeAPIService(fake_node(anchorer=anchorer, anchor_store=anchors)).anchors(0, 10)
    assert [(entry["height"], entry["state"], entry["alerts"]) for entry in page.items] == [
        (2, "pending", ["lost"]), (7, "pending", [])
    ]
