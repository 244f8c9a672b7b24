"""A node's proof-serving state on real storage, without the node process: for bundle, CLI and audit tests.

``StoredNode`` holds what node/bundles.py reads from a Node (``log``, ``chain``,
``genesis``, ``anchor_store``, ``config``) on a real LevelDB store: finalized blocks of
a real ML-DSA chain (tests.chain_fixtures), their log appends, and confirmed anchors in
the real AnchorStore with Bitcoin material built by the vector generator.
``serve`` runs the real API app under hypercorn in a thread, for the CLI commands.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import trio
from hypercorn.config import Config as HypercornConfig
from hypercorn.trio import serve as hypercorn_serve

from node.api import build_app
from node.keyfiles import write_key_file
from consensus.block import build_block
from proof.chain import AnchorRef, BlockHeader, FinalizationProof
from storage.anchor_store import AnchoredCheckpoint, AnchorStore
from storage.chain_store import ChainStore
from storage.db import Store
from storage.merkle_log import MerkleLog
from tests.chain_fixtures import TestChain, make_chain
from tests.vectors import generate_bundles as gen

BTC_HEIGHT_BASE = 500


@dataclass
class KeyConfig:
    """The two config lookups NodeProofs makes (node.key_file, resolve)."""

    key_path: Path

    @property
    def node(self) -> Any:
        return type("NodeSection", (), {"key_file": str(self.key_path)})()

    def resolve(self, relative: str) -> Path:
        return Path(relative)


@dataclass
class StoredNode:
    store: Store
    log: MerkleLog
    chain: ChainStore
    anchor_store: AnchorStore
    test_chain: TestChain
    config: KeyConfig
    roots: list[bytes] = field(default_factory=list)

    @property
    def genesis(self) -> Any:
        return self.test_chain.genesis

    def add_block(self, count: int, anchors: tuple[AnchorRef, ...] = ()) -> BlockHeader:
        roots = [os.urandom(32) for _ in range(count)]
        chain = self.test_chain
        parent = chain.blocks[-1].header if chain.blocks else None
        view = parent.view + 1 if parent else 0
        block = build_block(genesis=chain.genesis, view=view, parent=parent, log=chain.log,
                            roots=b"".join(roots), timestamp_ms=1_000 + view, anchors=anchors)
        chain.log.extend_roots(block.roots)
        chain.blocks.append(block)
        chain.proofs.append(FinalizationProof(headers=(), certificate=chain.certify(block)))
        staged = self.log.stage_append(block.roots)
        with self.store.batch(sync=False) as batch:
            staged.write_to(batch)
            self.chain.stage_finalized(batch, block.header, self.test_chain.proofs[-1])
        self.log.commit(staged)
        self.chain.commit_tip(block.header)
        self.roots += roots
        return block.header

    def ref(self, checkpoint: AnchoredCheckpoint) -> AnchorRef:
        """The AnchorRef a later block records for ``checkpoint``."""
        return AnchorRef(
            txid=gen.txid(checkpoint.raw_tx), vout=0, anchored_block_hash=checkpoint.block_hash,
            btc_block_hash=gen.sha256d(checkpoint.header), btc_height=checkpoint.btc_height,
        )

    def anchor(self, height: int, *, confirmations: int = 6, witness: bool = True) -> AnchoredCheckpoint:
        """A confirmed anchor of block ``height``, its Bitcoin block and ``confirmations - 1`` headers cached."""
        header = self.chain.header_at(height)
        assert header is not None
        tx = gen.anchor_tx(header.hash, f"node/{height}", witness=witness)
        block = gen.block_with(tx, 3, 5, f"node/{height}", gen.BITS_REGTEST)
        checkpoint = AnchoredCheckpoint(
            height=height, block_hash=header.hash, network="regtest", raw_tx=tx, tx_index=3,
            branch=tuple(block.branch), header=block.header, btc_height=BTC_HEIGHT_BASE + height,
        )
        self.anchor_store.put_checkpoint(checkpoint)
        more = gen.confirming_headers(block.header, confirmations - 1, gen.BITS_REGTEST, f"node/{height}")
        self.anchor_store.put_headers(
            {checkpoint.btc_height: block.header, **{checkpoint.btc_height + 1 + i: h for i, h in enumerate(more)}}
        )
        return checkpoint

    def close(self) -> None:
        self.store.close()


def stored_node(directory: Path, *, validators: int = 4, blocks: tuple[int, ...] = (5, 3, 4)) -> StoredNode:
    test_chain = make_chain(validators)
    store = Store(directory / "data")
    key_path = directory / "validator.key"
    write_key_file(key_path, test_chain.keys[0])
    node = StoredNode(
        store=store, log=MerkleLog(store), chain=ChainStore(store), anchor_store=AnchorStore(store),
        test_chain=test_chain, config=KeyConfig(key_path),
    )
    for count in blocks:
        node.add_block(count)
    return node


class Service:
    """The NodeService part the proof routes need, offering NodeProofs over ``node`` as a real service does."""

    node_name = "stored"
    tokens = None

    def __init__(self, node: StoredNode) -> None:
        self.node = node

    def proof_bundle(self, root: bytes) -> bytes | None:
        from node.bundles import proof_bundle

        return proof_bundle(self.node, root)  # type: ignore[arg-type]

    def proof_source(self) -> object:
        from node.bundles import NodeProofs

        return NodeProofs(self.node)  # type: ignore[arg-type]

    def checkpoint(self) -> dict[str, Any]:
        tip = self.node.chain.tip_header
        return {"height": self.node.chain.tip_height, "log_size": tip.log_size if tip else 0}


@contextmanager
def serve(node: StoredNode) -> Iterator[str]:
    """The real API app for ``node`` on a loopback port, in a thread; yields its URL."""
    app = build_app(Service(node), roots_per_request_max=10, body_bytes_max=10_000)  # type: ignore[arg-type]
    config = HypercornConfig()
    config.bind = ["127.0.0.1:0"]
    config.accesslog = None
    config.graceful_timeout = 1.0
    started = threading.Event()
    bound: list[str] = []
    stop: list[trio.Event] = []
    token: list[trio.lowlevel.TrioToken] = []

    async def main() -> None:
        stop.append(trio.Event())
        token.append(trio.lowlevel.current_trio_token())
        async with trio.open_nursery() as nursery:
            binds = await nursery.start(
                lambda task_status: hypercorn_serve(app, config, shutdown_trigger=stop[0].wait, task_status=task_status)
            )
            bound.extend(binds)
            started.set()

    thread = threading.Thread(target=trio.run, args=(main,), daemon=True)
    thread.start()
    if not started.wait(timeout=20):
        raise AssertionError("the API server did not start within 20 s")
    try:
        yield bound[0]
    finally:
        trio.from_thread.run_sync(stop[0].set, trio_token=token[0])
        thread.join(timeout=10)
