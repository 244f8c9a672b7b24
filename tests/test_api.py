"""HTTP API contract, against a stand-in service (the real node is tested end to end elsewhere)."""

import json
import os
from pathlib import Path

import httpx
import pytest

from node.api import Overloaded, Page, Receipt, build_app
from node.mempool import MempoolFull
from node.tokens import add_token, load_tokens


class StandIn:
    node_name = "v0"

    def __init__(self, tokens):
        self.tokens = tokens
        self.submitted: list[tuple[bytes, str]] = []
        self.fail_with: Exception | None = None

    async def submit(self, roots, submitter):
        if self.fail_with:
            raise self.fail_with
        self.submitted.append((roots, submitter))
        return [Receipt(roots[i : i + 32], "pending", 1234) for i in range(0, len(roots), 32)]

    def root_status(self, root):
        return {"state": "pending"} if self.submitted and root in self.submitted[0][0] else None

    def proof_bundle(self, root):
        return b"\xa0" if self.root_status(root) else None

    def checkpoint(self):
        return {"height": 0}

    def block(self, height):
        return {"height": height} if height == 1 else None

    def anchors(self, from_height, limit):
        return Page([], None)

    def evidence(self, start, limit):
        return Page([], None)

    def health(self):
        return True, {"height": 0}

    def metrics(self):
        return b"pantheon_height 0\n"


@pytest.fixture
def token_and_service(tmp_path: Path):
    path = tmp_path / "tokens.toml"
    token = add_token(path, "producer-a")
    return token, StandIn(load_tokens(path))


@pytest.fixture
def client_for(token_and_service):
    _token, service = token_and_service
    app = build_app(service, roots_per_request_max=4, body_bytes_max=2000)
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://node")


def auth(token):
    return {"Authorization": f"Bearer {token}"}


def hex_roots(n):
    return [os.urandom(32).hex() for _ in range(n)]


async def test_submission_with_a_valid_token_gets_receipts(client_for, token_and_service):
    token, service = token_and_service
    roots = hex_roots(3)
    response = await client_for.post("/v1/roots", json={"roots": roots}, headers=auth(token))
    assert response.status_code == 202
    assert [r["root"] for r in response.json()["receipts"]] == roots
    assert service.submitted[0] == (bytes.fromhex("".join(roots)), "producer-a")


async def test_octet_stream_submission_is_accepted(client_for, token_and_service):
    token, service = token_and_service
    body = os.urandom(64)
    headers = {**auth(token), "Content-Type": "application/octet-stream"}
    response = await client_for.post("/v1/roots", content=body, headers=headers)
    assert response.status_code == 202
    assert service.submitted[0][0] == body


async def test_submission_without_a_token_is_401(client_for):
    response = await client_for.post("/v1/roots", json={"roots": hex_roots(1)})
    assert response.status_code == 401
    assert "Bearer" in response.json()["error"]


async def test_submission_with_an_unknown_token_is_403(client_for):
    response = await client_for.post("/v1/roots", json={"roots": hex_roots(1)}, headers=auth("pnt_wrong"))
    assert response.status_code == 403


@pytest.mark.parametrize(
    "body, message",
    [
        (b"not json", "not JSON"),
        (b'{"roots": "abc"}', "roots"),
        (b'{"roots": [], "extra": 1}', "roots"),
        (b'{"roots": []}', "no roots"),
        (b'{"roots": ["zz"]}', "64 hex"),
        (json.dumps({"roots": ["g" * 64]}).encode(), "hex"),
        (b'{"roots": [5]}', "hex string"),
    ],
)
async def test_malformed_submissions_are_400_with_the_reason(client_for, token_and_service, body, message):
    token, service = token_and_service
    headers = {**auth(token), "Content-Type": "application/json"}
    response = await client_for.post("/v1/roots", content=body, headers=headers)
    assert response.status_code == 400
    assert message in response.json()["error"]
    assert service.submitted == []


async def test_too_many_roots_is_413(client_for, token_and_service):
    token, _service = token_and_service
    response = await client_for.post("/v1/roots", json={"roots": hex_roots(5)}, headers=auth(token))
    assert response.status_code == 413
    assert "maximum is 4" in response.json()["error"]


async def test_oversized_body_is_413(client_for, token_and_service):
    token, _service = token_and_service
    headers = {**auth(token), "Content-Type": "application/octet-stream"}
    response = await client_for.post("/v1/roots", content=b"\x00" * 4096, headers=headers)
    assert response.status_code == 413


async def test_full_mempool_is_503_with_retry_after(client_for, token_and_service):
    token, service = token_and_service
    service.fail_with = MempoolFull("full")
    response = await client_for.post("/v1/roots", json={"roots": hex_roots(1)}, headers=auth(token))
    assert response.status_code == 503
    assert int(response.headers["Retry-After"]) > 0


async def test_busy_node_is_429_with_retry_after(client_for, token_and_service):
    token, service = token_and_service
    service.fail_with = Overloaded("busy")
    response = await client_for.post("/v1/roots", json={"roots": hex_roots(1)}, headers=auth(token))
    assert response.status_code == 429
    assert int(response.headers["Retry-After"]) > 0


async def test_unknown_root_is_404_and_bad_hex_is_400(client_for):
    assert (await client_for.get("/v1/roots/" + "00" * 32)).status_code == 404
    assert (await client_for.get("/v1/roots/xyz")).status_code == 400


async def test_known_root_status_and_proof_are_served(client_for, token_and_service):
    token, _service = token_and_service
    root = hex_roots(1)[0]
    await client_for.post("/v1/roots", json={"roots": [root]}, headers=auth(token))
    assert (await client_for.get(f"/v1/roots/{root}")).json() == {"state": "pending"}
    proof = await client_for.get(f"/v1/proofs/{root}")
    assert proof.status_code == 200 and proof.headers["content-type"] == "application/cbor"


async def test_reads_need_no_token(client_for):
    for path in ("/v1/checkpoints/latest", "/v1/blocks/1", "/v1/anchors", "/v1/evidence", "/healthz"):
        assert (await client_for.get(path)).status_code == 200, path


async def test_block_height_must_be_a_number(client_for):
    assert (await client_for.get("/v1/blocks/-1")).status_code == 400
    assert (await client_for.get("/v1/blocks/2")).status_code == 404


async def test_metrics_are_prometheus_text(client_for):
    response = await client_for.get("/metrics")
    assert response.status_code == 200
    assert response.text.startswith("pantheon_height")


async def test_unknown_endpoint_is_json_404(client_for):
    response = await client_for.get("/v2/nothing")
    assert response.status_code == 404
    assert "no such endpoint" in response.json()["error"]


def test_receipts_are_written_exactly_as_their_json_form():
    from node.api import receipts_json
    from node.interface import Receipt

    receipts = [Receipt(bytes([i]) * 32, "pending", 1_700_000_000_000 + i) for i in range(3)]
    receipts.append(Receipt(b"\xff" * 32, "certified", 5, 41))
    name = 'validator-1 "quoted" \\ é'
    assert json.loads(receipts_json(receipts, name)) == {"receipts": [r.to_json(name) for r in receipts]}


def test_receipts_of_one_shape_are_written_exactly_as_their_json_form():
    """A submission of new roots (the path that writes the roots' hex between the shape's halves)."""
    from node.api import receipts_json
    from node.interface import UniformReceipts

    name = 'validator-1 "quoted" \\ é'
    for count in (0, 1, 3, 1000):
        receipts = UniformReceipts(os.urandom(32 * count), "pending", 1_700_000_000_000)
        assert json.loads(receipts_json(receipts, name)) == {"receipts": [r.to_json(name) for r in receipts]}


def test_uniform_receipts_are_a_sequence_of_receipts():
    from node.interface import Receipt, UniformReceipts

    roots = bytes(range(96))
    receipts = UniformReceipts(roots, "pending", 7)
    assert list(receipts) == [Receipt(roots[i : i + 32], "pending", 7) for i in (0, 32, 64)]
    assert receipts[-1] == receipts[2] and receipts[1:] == list(receipts)[1:]
    with pytest.raises(IndexError):
        receipts[3]
