"""The proof routes of the HTTP API, on the real app over a real-storage node."""

import httpx
import pytest

from node.api import build_app
from proof import note
from proof.bundle import AnchorRecord, CertifiedBlock, ConsistencyRecord
from tests.bundle_fixtures import Service, stored_node


@pytest.fixture
def node(tmp_path):
    n = stored_node(tmp_path)
    yield n
    n.close()


@pytest.fixture
def client(node):
    app = build_app(Service(node), roots_per_request_max=10, body_bytes_max=10_000)
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://node")


async def test_a_block_is_served_as_cbor_with_its_finalization_proof(client, node):
    response = await client.get("/v1/blocks/2?format=cbor")
    assert response.status_code == 200 and response.headers["content-type"] == "application/cbor"
    CertifiedBlock.decode(response.content).verify(node.genesis)


async def test_an_unknown_format_is_a_client_error(client):
    response = await client.get("/v1/blocks/2?format=xml")
    assert response.status_code == 400 and "format" in response.json()["error"]


async def test_a_missing_block_is_not_found_in_cbor_too(client):
    assert (await client.get("/v1/blocks/9?format=cbor")).status_code == 404


async def test_consistency_between_two_block_sizes_is_served_and_verifies(client, node):
    response = await client.get("/v1/consistency?size1=5&size2=12")
    assert response.status_code == 200
    ConsistencyRecord.decode(response.content).verify(node.genesis)


async def test_consistency_to_the_tip_when_size2_is_omitted(client, node):
    record = ConsistencyRecord.decode((await client.get("/v1/consistency?size1=8")).content)
    assert record.new.header.log_size == 12


@pytest.mark.parametrize("query", ["size1=x&size2=5", "size2=5", "size1=-1&size2=5"])
async def test_malformed_consistency_sizes_are_refused(client, query):
    assert (await client.get(f"/v1/consistency?{query}")).status_code == 400


async def test_consistency_from_a_size_that_is_not_a_block_boundary_is_not_found(client):
    response = await client.get("/v1/consistency?size1=6&size2=12")
    assert response.status_code == 404 and "finalized blocks" in response.json()["error"]


async def test_the_checkpoint_note_states_the_tip_and_is_signed_by_the_serving_validator(client, node):
    response = await client.get("/v1/checkpoints/latest?format=note")
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/plain")
    name = note.origin(node.genesis.hash)
    checkpoint = note.verify_checkpoint(response.text, {"validator 0": (name, node.genesis.validators[0])})
    tip = node.chain.tip_header
    assert (checkpoint.size, checkpoint.root, checkpoint.signed_by) == (tip.log_size, tip.log_root, ("validator 0",))


async def test_the_json_checkpoint_is_unchanged(client):
    response = await client.get("/v1/checkpoints/latest")
    assert response.json() == {"height": 3, "log_size": 12}


async def test_an_anchor_record_is_served_for_the_covering_anchor(client, node):
    node.anchor(2)
    response = await client.get("/v1/anchored/1")
    assert response.status_code == 200
    assert AnchorRecord.decode(response.content).height == 2
    assert (await client.get("/v1/anchored/3")).status_code == 404


async def test_the_proof_routes_are_absent_on_a_service_without_a_node():
    class Bare:
        node_name = "bare"
        tokens = None

        def checkpoint(self):
            return {"height": 0}

    app = build_app(Bare(), roots_per_request_max=1, body_bytes_max=100)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://n") as bare:
        assert (await bare.get("/v1/checkpoints/latest?format=note")).status_code == 404
        assert (await bare.get("/v1/consistency?size1=1&size2=2")).status_code == 404
        assert (await bare.get("/v1/checkpoints/latest")).status_code == 200
