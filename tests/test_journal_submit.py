"""Submitting heads and fetching their bundles: the retry policy against a small local HTTP server,
and the anchored path against the real API app serving a stored chain with a confirmed Bitcoin anchor
(tests.bundle_fixtures: real LevelDB, real node.bundles, real hypercorn; no validator process)."""

from __future__ import annotations

import argparse
import json
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from consensus.block import build_block
from journal import cli
from journal.anchoring import submit_head
from journal.anchors import Receipt, Sidecar, check_sidecar
from journal.client import NodeClient
from journal.entry import Kind, digest
from journal.errors import PantheonError, SubmitError
from journal.writer import Journal, load
from proof.chain import FinalizationProof
from tests.bundle_fixtures import serve, stored_node
from tests.test_journal_fixtures import clock

TOKEN = "pnt_test-token"


@contextmanager
def stub_node(answers: list[tuple[int, dict]]) -> Iterator[tuple[str, list[dict]]]:
    """A node that answers POST /v1/roots from ``answers`` in turn (the last one repeats)."""
    seen: list[dict] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            seen.append({"auth": self.headers.get("Authorization"), "body": body})
            status, doc = answers[min(len(seen), len(answers)) - 1]
            if status == 202:
                doc = {"receipts": [{"root": body["roots"][0], "state": "pending", "received_at_ms": 7,
                                     "node": "stub", "index": 41}]}
            payload = json.dumps(doc).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            if status in (429, 503):
                self.send_header("Retry-After", "1")
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", seen
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def journal_dir(tmp_path):
    directory = tmp_path / "journal"
    with Journal.create(directory, clock_ms=clock()) as journal:
        with journal.action("aggregate", {"update": digest(b"u")}) as act:
            act.outcome({"model": digest(b"m")})
    return directory


def client(url: str, sleeps: list[float], attempts: int = 5) -> NodeClient:
    return NodeClient(url, token=TOKEN, attempts=attempts, sleep=sleeps.append)


def test_submit_sends_the_head_with_the_bearer_token_and_keeps_the_receipt(journal_dir):
    walker = load(journal_dir).walker
    with stub_node([(202, {})]) as (url, seen):
        receipt = submit_head(walker, Sidecar(journal_dir), client(url, []))
    assert seen == [{"auth": f"Bearer {TOKEN}", "body": {"roots": [walker.head.hex()]}}]
    assert (receipt.seq, receipt.head, receipt.index) == (2, walker.head, 41)
    assert Sidecar(journal_dir).receipts() == [receipt]


def test_submit_retries_an_overloaded_node_honouring_retry_after(journal_dir):
    sleeps: list[float] = []
    with stub_node([(503, {"error": "mempool full"}), (429, {"error": "busy"}), (202, {})]) as (url, seen):
        submit_head(load(journal_dir).walker, Sidecar(journal_dir), client(url, sleeps))
    assert len(seen) == 3 and sleeps == [1.0, 1.0]


def test_submit_does_not_retry_a_refused_token(journal_dir):
    with stub_node([(403, {"error": "token not recognised"})]) as (url, seen):
        with pytest.raises(SubmitError, match="HTTP 403 token not recognised"):
            submit_head(load(journal_dir).walker, Sidecar(journal_dir), client(url, []))
    assert len(seen) == 1 and Sidecar(journal_dir).receipts() == []


def test_submit_gives_up_on_an_unreachable_node_after_its_attempts(journal_dir):
    sleeps: list[float] = []
    with stub_node([]) as (url, _seen):
        pass  # the port is closed again: connection refused
    with pytest.raises(SubmitError, match="gave up after 3 attempts"):
        submit_head(load(journal_dir).walker, Sidecar(journal_dir), client(url, sleeps, attempts=3))
    assert sleeps == [0.5, 1.0]


def test_submitting_the_same_head_twice_is_idempotent(journal_dir):
    walker = load(journal_dir).walker
    with stub_node([(202, {})]) as (url, seen):
        first = submit_head(walker, Sidecar(journal_dir), client(url, []))
        second = submit_head(walker, Sidecar(journal_dir), client(url, []))
    assert first == second and len(Sidecar(journal_dir).receipts()) == 1 and len(seen) == 2


def test_submit_needs_a_token(journal_dir):
    with pytest.raises(SubmitError, match="bearer token"):
        NodeClient("http://127.0.0.1:1").submit(bytes(32))


# ---------------------------------------------------------------------------- anchored, against the API app


def run(argv: list[str], capsys) -> tuple[int, str]:
    parser = argparse.ArgumentParser(prog="pantheon")
    cli.register(parser.add_subparsers(dest="command"))
    args = parser.parse_args([str(a) for a in argv])
    try:
        code = args.handler(args)
    except PantheonError as exc:
        print(f"error: {exc}")
        code = 1
    return code, capsys.readouterr().out


def log_roots(node, roots: list[bytes]) -> None:
    """One more finalized block on the stored node, logging exactly ``roots``."""
    chain = node.test_chain
    parent = chain.blocks[-1].header if chain.blocks else None
    view = parent.view + 1 if parent else 0
    block = build_block(genesis=chain.genesis, view=view, parent=parent, log=chain.log, roots=b"".join(roots),
                        timestamp_ms=1_000 + view)
    chain.log.extend_roots(block.roots)
    chain.blocks.append(block)
    chain.proofs.append(FinalizationProof(headers=(), certificate=chain.certify(block)))
    staged = node.log.stage_append(block.roots)
    with node.store.batch(sync=False) as batch:
        staged.write_to(batch)
        node.chain.stage_finalized(batch, block.header, chain.proofs[-1])
    node.log.commit(staged)
    node.chain.commit_tip(block.header)


def test_upgrade_stores_an_anchored_bundle_records_an_anchor_entry_and_export_carries_it(journal_dir, tmp_path, capsys):
    (tmp_path / "node").mkdir()
    node = stored_node(tmp_path / "node", validators=1, blocks=(3,))
    try:
        walker = load(journal_dir).walker
        Sidecar(journal_dir).put_receipt(Receipt(seq=2, head=walker.head, node="stored", state="pending",
                                                 received_at_ms=1, index=3))
        log_roots(node, [os.urandom(32), walker.head])
        genesis = tmp_path / "genesis.cbor"
        genesis.write_bytes(node.genesis.encode())
        with serve(node) as url:
            code, out = run(["journal", "upgrade", journal_dir, "--node", url, "--genesis", genesis], capsys)
            assert code == 0 and "certified, block 2" in out, out
            node.anchor(2)
            code, out = run(["journal", "upgrade", journal_dir, "--node", url], capsys)
            assert code == 0 and "anchored, block 2, Bitcoin tx" in out and "recorded as anchor entry 3" in out, out
            code, out = run(["journal", "upgrade", journal_dir, "--node", url], capsys)
            assert "already covered by an anchored bundle" in out, out
    finally:
        node.close()
    loaded = load(journal_dir)
    anchor = loaded.entries[3]
    assert anchor.kind == Kind.ANCHOR and anchor.inputs["head"] == walker.head and anchor.meta["seq"] == 2
    status = check_sidecar(Sidecar(journal_dir), loaded.walker)
    assert status.anchored is not None and status.anchored.seq == 2 and loaded.walker.length == 4
    package = tmp_path / "audit.cbor"
    code, out = run(["journal", "export", journal_dir, "--entries", "1-2", "-o", package, "--require-anchored"], capsys)
    assert code == 0 and "anchored bundle" in out, out
    code, out = run(["journal", "verify", package], capsys)
    assert code == 0 and "state         anchored" in out and "regtest" in out, out
