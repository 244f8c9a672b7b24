"""`pantheon verify`, `proof get|upgrade|consistency`: exit status and what they print.

`verify` runs on the shipped vectors. `--bitcoind` is checked against a stand-in
JSON-RPC server that answers like bitcoind (getblockchaininfo, getblockheader). The
fetching commands talk to the real API app over a real-storage node on loopback.
"""

import base64
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from proof.bundle import Bundle
from tests.cli_helpers import run
from tests.bundle_fixtures import serve, stored_node
from tests.vectors import generate_bundles as gen

VECTORS = Path(__file__).parent / "vectors" / "bundles"
ANCHORED = VECTORS / "valid" / "anchored-v4-size1029.cbor"
GENESIS4 = VECTORS / "genesis-v4.cbor"
CLAIM = json.loads(ANCHORED.with_suffix(".json").read_text())["claim"]


def test_a_valid_regtest_anchor_says_it_is_a_test_network_and_what_was_proved(capsys):
    code, out = run(["verify", ANCHORED, "--genesis", GENESIS4], capsys)
    assert code == 0
    assert out.startswith("VALID (test network: the Bitcoin part proves nothing about time)\n")
    assert "VALID anchored bundle" not in out
    assert "1028 of a log of size 1029" in out
    assert "validators 0, 1, 3 (3 of 4, quorum 3)" in out
    assert CLAIM["bitcoin"]["txid"] in out and "6 confirmations by headers" in out
    assert "security      none: regtest is a test network" in out


def test_the_text_states_bits_and_chain_work_of_every_header_and_the_final_depth(capsys):
    code, out = run(["verify", ANCHORED, "--genesis", GENESIS4], capsys)
    assert code == 0
    assert "header +0     bits 1f00ffff, work 2^16.00, chain work 2^16.00 (the anchor's block" in out
    assert "header +5     bits 1f00ffff, work 2^16.00, chain work 2^18.58 (confirmation 6" in out
    assert "final depth   6 (genesis anchor_depth): reached with 6 confirmations" in out


def test_a_signet_anchor_is_a_test_network_too(capsys):
    code, out = run(["verify", VECTORS / "valid" / "anchored-v4-signet.cbor", "--genesis", GENESIS4, "--json"], capsys)
    doc = json.loads(out)
    assert code == 0 and doc["verdict"].startswith("VALID (test network")
    assert doc["claim"]["bitcoin_security"] == "none" and doc["claim"]["bitcoin"]["network"] == "signet"


def test_require_network_main_refuses_a_regtest_anchor_with_exit_1(capsys):
    code, out = run(["verify", ANCHORED, "--genesis", GENESIS4, "--require-network", "main"], capsys)
    assert code == 1
    assert out.startswith("INVALID") and "policy: the anchor is on 'regtest', the policy requires 'main'" in out


def test_require_network_defaults_min_confirmations_to_the_final_depth(capsys):
    three = VECTORS / "valid" / "anchored-v4-size3.cbor"
    code, out = run(["verify", three, "--genesis", GENESIS4, "--require-network", "regtest", "--json"], capsys)
    assert code == 1 and "the policy requires 6" in json.loads(out)["error"]
    code, _ = run(["verify", three, "--genesis", GENESIS4, "--require-network", "regtest",
                   "--min-confirmations", "3"], capsys)
    assert code == 0


def test_min_confirmations_above_what_the_bundle_shows_fails(capsys):
    code, out = run(["verify", ANCHORED, "--genesis", GENESIS4, "--min-confirmations", "7"], capsys)
    assert code == 1 and "shows 6 confirmations by headers, the policy requires 7" in out


def test_a_policy_refuses_a_pending_bundle(capsys):
    pending = VECTORS / "valid" / "pending-v4-size3.cbor"
    code, out = run(["verify", pending, "--genesis", GENESIS4, "--require-network", "main"], capsys)
    assert code == 1 and "policy: the bundle is pending" in out


def test_a_main_header_below_the_work_floor_is_refused(capsys):
    code, out = run(["verify", VECTORS / "invalid" / "main-below-work-floor.cbor", "--genesis", GENESIS4], capsys)
    assert code == 1 and "bitcoin anchor: " in out and "below the main work floor" in out


def test_a_valid_pending_bundle_says_it_is_not_yet_anchored(capsys):
    code, out = run(["verify", VECTORS / "valid" / "pending-v4-size3.cbor", "--genesis", GENESIS4], capsys)
    assert code == 0 and "not yet anchored" in out


@pytest.mark.parametrize(
    "name, check",
    [("wrong-root", "inclusion proof: root mismatch"),
     ("signer-not-in-genesis", "block certificate: certificate signer 4"),
     ("op-return-other-hash", "bitcoin anchor: the Bitcoin transaction"),
     ("trailing-bytes", "trailing")],
)
def test_an_invalid_bundle_exits_1_naming_the_failed_check(capsys, name, check):
    code, out = run(["verify", VECTORS / "invalid" / f"{name}.cbor", "--genesis", GENESIS4], capsys)
    assert code == 1 and out.startswith("INVALID") and check in out


def test_json_output_carries_the_claim_and_the_verdict(capsys):
    code, out = run(["verify", ANCHORED, "--genesis", GENESIS4, "--json"], capsys)
    assert code == 0 and json.loads(out) == {
        "valid": True,
        "verdict": "VALID (test network: the Bitcoin part proves nothing about time)",
        "file": str(ANCHORED),
        "claim": CLAIM,
    }
    assert CLAIM["bitcoin_security"] == "none"


def test_json_output_of_an_invalid_bundle_carries_the_error(capsys):
    code, out = run(["verify", VECTORS / "invalid" / "unknown-version.cbor", "--genesis", GENESIS4, "--json"], capsys)
    doc = json.loads(out)
    assert code == 1 and doc["valid"] is False and "version 2" in doc["error"]


def test_a_chain_id_other_than_the_genesis_fails(capsys):
    code, out = run(["verify", ANCHORED, "--genesis", GENESIS4, "--chain", "00" * 32], capsys)
    assert code == 1 and "chain id" in out


def test_the_chain_id_of_the_genesis_passes(capsys):
    assert run(["verify", ANCHORED, "--genesis", GENESIS4, "--chain", CLAIM["chain_id"]], capsys)[0] == 0


class FakeBitcoind:
    """Answers getblockchaininfo and getblockheader like bitcoind, with Basic auth."""

    def __init__(self, chain="regtest", blocks=None, secret="user:pw"):
        self.chain, self.blocks, self.secret = chain, blocks or {}, secret
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                expected = "Basic " + base64.b64encode(fake.secret.encode()).decode()
                if self.headers.get("Authorization") != expected:
                    self.send_response(401)
                    self.end_headers()
                    return
                call = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                if call["method"] == "getblockchaininfo":
                    info = {"chain": fake.chain, "blocks": 900, "bestblockhash": "ab" * 32}
                    reply = {"result": info, "error": None, "id": call["id"]}
                elif call["params"][0] in fake.blocks:
                    block_hash = call["params"][0]
                    header = {"hash": block_hash, "previousblockhash": "cd" * 32, **fake.blocks[block_hash]}
                    reply = {"result": header, "error": None, "id": call["id"]}
                else:
                    reply = {"result": None, "error": {"code": -5, "message": "Block not found"}, "id": call["id"]}
                body = json.dumps(reply).encode()
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def bitcoind():
    fakes = []

    def make(**kwargs):
        fakes.append(FakeBitcoind(**kwargs))
        return fakes[-1]

    yield make
    for fake in fakes:
        fake.close()


def test_bitcoind_confirms_the_block_is_on_its_best_chain(capsys, bitcoind):
    fake = bitcoind(blocks={CLAIM["bitcoin"]["block_hash"]: {"height": 812, "confirmations": 40}})
    code, out = run(["verify", ANCHORED, "--genesis", GENESIS4, "--bitcoind", f"http://user:pw@127.0.0.1:{fake.port}"], capsys)
    assert code == 0 and "height 812 on its best chain, 40 confirmations" in out


def test_bitcoind_with_a_cookie_file(capsys, bitcoind, tmp_path):
    fake = bitcoind(blocks={CLAIM["bitcoin"]["block_hash"]: {"height": 3, "confirmations": 1}}, secret="__cookie__:abc")
    (tmp_path / ".cookie").write_text("__cookie__:abc")
    code, out = run(["verify", ANCHORED, "--genesis", GENESIS4, "--bitcoind", f"127.0.0.1:{fake.port}",
                     "--bitcoind-cookie", tmp_path / ".cookie", "--json"], capsys)
    assert code == 0 and json.loads(out)["bitcoind"]["confirmations"] == 1


def test_a_block_off_the_best_chain_fails(capsys, bitcoind):
    fake = bitcoind(blocks={CLAIM["bitcoin"]["block_hash"]: {"height": 812, "confirmations": -1}})
    code, out = run(["verify", ANCHORED, "--genesis", GENESIS4, "--bitcoind", f"http://user:pw@127.0.0.1:{fake.port}"], capsys)
    assert code == 1 and "not on the best chain" in out


def test_a_block_unknown_to_bitcoind_fails(capsys, bitcoind):
    fake = bitcoind()
    code, out = run(["verify", ANCHORED, "--genesis", GENESIS4, "--bitcoind", f"http://user:pw@127.0.0.1:{fake.port}"], capsys)
    assert code == 1 and "does not know" in out


def test_a_bitcoind_on_another_network_fails(capsys, bitcoind):
    fake = bitcoind(chain="main")
    code, out = run(["verify", ANCHORED, "--genesis", GENESIS4, "--bitcoind", f"http://user:pw@127.0.0.1:{fake.port}"], capsys)
    assert code == 1 and "follows 'main'" in out


@pytest.fixture
def served(tmp_path):
    node = stored_node(tmp_path)
    with serve(node) as url:
        yield node, url
    node.close()


def test_proof_get_writes_the_bundle_of_a_root(capsys, served, tmp_path):
    node, url = served
    out_file = tmp_path / "p.cbor"
    code, out = run(["proof", "get", node.roots[3].hex(), "--node", url, "-o", out_file], capsys)
    assert code == 0 and "wrote pending bundle" in out
    assert Bundle.decode(out_file.read_bytes()).root == node.roots[3]


def test_proof_get_of_an_unknown_root_fails(capsys, served, tmp_path):
    _node, url = served
    code, out = run(["proof", "get", "ab" * 32, "--node", url, "-o", tmp_path / "x.cbor"], capsys)
    assert code == 1 and "no proof" in out and not (tmp_path / "x.cbor").exists()


def test_proof_upgrade_of_a_pending_bundle_says_still_pending_and_changes_nothing(capsys, served, tmp_path):
    node, url = served
    path = tmp_path / "p.cbor"
    run(["proof", "get", node.roots[0].hex(), "--node", url, "-o", path], capsys)
    before = path.read_bytes()
    code, out = run(["proof", "upgrade", path, "--node", url], capsys)
    assert code == 0 and "still pending" in out
    assert path.read_bytes() == before and not (tmp_path / "p.cbor.bak").exists()


def test_proof_upgrade_replaces_a_pending_bundle_by_the_anchored_one_keeping_a_backup(capsys, served, tmp_path):
    node, url = served
    path = tmp_path / "p.cbor"
    run(["proof", "get", node.roots[0].hex(), "--node", url, "-o", path], capsys)
    before = path.read_bytes()
    node.anchor(1)
    code, out = run(["proof", "upgrade", path, "--node", url, "--genesis", _genesis_file(node, tmp_path)], capsys)
    assert code == 0 and "upgraded to an anchored bundle" in out
    assert Bundle.decode(path.read_bytes()).anchored
    assert (tmp_path / "p.cbor.bak").read_bytes() == before


def test_proof_consistency_checks_two_certified_log_states(capsys, served, tmp_path):
    node, url = served
    code, out = run(["proof", "consistency", "5", "12", "--node", url, "--genesis", _genesis_file(node, tmp_path)], capsys)
    assert code == 0 and "CONSISTENT: the log of size 5" in out and "certified by validators" in out


def test_proof_consistency_without_genesis_says_certificates_were_not_checked(capsys, served):
    _node, url = served
    code, out = run(["proof", "consistency", "5", "8", "--node", url], capsys)
    assert code == 0 and "NOT checked" in out


def test_proof_consistency_between_sizes_the_node_did_not_certify_fails(capsys, served):
    _node, url = served
    code, out = run(["proof", "consistency", "6", "12", "--node", url], capsys)
    assert code == 1 and "finalized blocks" in out


def _genesis_file(node, tmp_path):
    path = tmp_path / "genesis.cbor"
    path.write_bytes(node.genesis.encode())
    return path


def test_proof_upgrade_adds_the_confirming_headers_the_node_has_since_cached(capsys, served, tmp_path):
    node, url = served
    checkpoint = node.anchor(1, confirmations=2)
    path = tmp_path / "p.cbor"
    run(["proof", "get", node.roots[0].hex(), "--node", url, "-o", path], capsys)
    assert len(Bundle.decode(path.read_bytes()).bitcoin.more) == 1
    more = gen.confirming_headers(checkpoint.header, 5, gen.BITS_REGTEST, f"node/{checkpoint.height}")
    node.anchor_store.put_headers({checkpoint.btc_height + 1 + i: h for i, h in enumerate(more)})
    code, out = run(["proof", "upgrade", path, "--node", url], capsys)
    assert code == 0 and "added confirming Bitcoin headers" in out
    assert len(Bundle.decode(path.read_bytes()).bitcoin.more) == node.genesis.anchor_final_depth - 1


def test_proof_upgrade_of_an_anchored_bundle_with_nothing_newer_leaves_it(capsys, served, tmp_path):
    node, url = served
    node.anchor(1)
    path = tmp_path / "p.cbor"
    run(["proof", "get", node.roots[0].hex(), "--node", url, "-o", path], capsys)
    code, out = run(["proof", "upgrade", path, "--node", url], capsys)
    assert code == 0 and "nothing newer" in out and not (tmp_path / "p.cbor.bak").exists()


def test_a_main_claim_reads_as_anchored_with_its_work_and_floor():
    """No main vector can be mined here, so the rendering of a main claim is checked on a claim built from one."""
    from dataclasses import replace

    from proof.bundle import verify_bundle
    from proof.chain import Genesis
    from proof.spv import main_work_floor
    from proof.verify_cli import describe_claim

    genesis = Genesis.decode(GENESIS4.read_bytes())
    claim = replace(verify_bundle(ANCHORED.read_bytes(), genesis=genesis), bitcoin_network="main",
                    work_floor=main_work_floor(0))
    lines = describe_claim(claim, genesis)
    assert lines[0] == "VALID anchored bundle"
    assert claim.to_json()["bitcoin_security"] == "proof-of-work"
    assert any("security      proof of work: 2^18.58 expected hashes in all" in line and "difficulty 1e+12" in line
               for line in lines)
    assert "test network" not in claim.summary()


def test_a_minimum_of_zero_confirmations_is_an_error_not_a_verdict(capsys):
    code, out = run(["verify", ANCHORED, "--genesis", GENESIS4, "--min-confirmations", "0"], capsys)
    assert code == 1 and out.startswith("error: the minimum of confirmations must be at least 1")
