"""The node as the HTTP API sees it: reads over storage, writes through the runtime."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from node import bundles
from node.api import Receipt
from proof.chain import BlockHeader
from proof.spv import hash_to_hex
from storage.anchor_store import RECORDS_LISTED_MAX, checkpoint_json

if TYPE_CHECKING:
    from node.runtime import Node


def header_json(header: BlockHeader) -> dict[str, Any]:
    return {
        "hash": header.hash.hex(),
        "height": header.height,
        "view": header.view,
        "parent": header.parent.hex(),
        "timestamp_ms": header.timestamp_ms,
        "proposer": header.proposer,
        "log_size": header.log_size,
        "log_root": header.log_root.hex(),
        "validator_set": header.validator_set.hex(),
        "body_hash": header.body_hash.hex(),
        "anchors": [
            {
                "txid": hash_to_hex(a.txid),
                "vout": a.vout,
                "anchored_block_hash": a.anchored_block_hash.hex(),
                "btc_block_hash": hash_to_hex(a.btc_block_hash),
                "btc_height": a.btc_height,
            }
            for a in header.anchors
        ],
    }


class NodeAPIService:
    def __init__(self, node: Node) -> None:
        self.node = node
        self.node_name = node.name
        self.tokens = node.tokens

    async def submit(self, roots: bytes, submitter: str) -> list[Receipt]:
        return await self.node.submit(roots, submitter)

    def root_status(self, root: bytes) -> dict[str, Any] | None:
        node = self.node
        if root in node.mempool:
            return {"root": root.hex(), "state": "pending"}
        index = node.log.index_of(root)
        if index is None:
            return None
        height = node.chain.height_of_log_index(index)
        status: dict[str, Any] = {"root": root.hex(), "state": "certified", "index": index, "height": height}
        checkpoint = node.anchor_store.checkpoint_covering(height) if height is not None else None
        if checkpoint is not None:
            status["state"] = "anchored"
            status["anchor"] = checkpoint_json(checkpoint, node.anchor_store.confirmations(checkpoint))
        return status

    def proof_bundle(self, root: bytes) -> bytes | None:
        return bundles.proof_bundle(self.node, root)

    def checkpoint(self) -> dict[str, Any]:
        status = self.node.status()
        tip = self.node.chain.tip_header
        return {
            "chain_id": status["chain_id"],
            "height": status["height"],
            "log_size": status["log_size"],
            "log_root": status["log_root"],
            "block": header_json(tip) if tip else None,
        }

    def block(self, height: int) -> dict[str, Any] | None:
        header = self.node.chain.header_at(height) if height >= 1 else None
        if header is None:
            return None
        start, end = self.node.chain.log_range(height) or (0, 0)
        return {**header_json(header), "roots": end - start, "first_index": start}

    def anchors(self) -> list[dict[str, Any]]:
        """Every anchored height this node knows, lowest first: what the chain recorded
        (and whether its Bitcoin block is on the best chain now: "anchored" or "pending"),
        and this validator's own anchor transaction for it, with its lifecycle state and alerts."""
        node = self.node
        own = node.anchorer.own_json() if node.anchorer is not None else {}
        entries: dict[int, dict[str, Any]] = {}
        for recorded in node.anchor_store.recorded_from(0, RECORDS_LISTED_MAX):
            ref = recorded.ref
            checkpoint = node.anchor_store.checkpoint_at(recorded.height)
            entries[recorded.height] = {
                "height": recorded.height,
                "block_hash": ref.anchored_block_hash.hex(),
                "state": "anchored" if checkpoint is not None else "pending",
                "txid": hash_to_hex(ref.txid),
                "vout": ref.vout,
                "btc_block_hash": hash_to_hex(ref.btc_block_hash),
                "btc_height": ref.btc_height,
                "confirmations": node.anchor_store.confirmations(checkpoint) if checkpoint is not None else 0,
                "recorded_at": recorded.recorded_at,
                "alerts": [],
            }
        for height, record in own.items():
            entry = entries.setdefault(
                height,
                {"height": height, "state": "pending", "txid": record["txid"], "recorded_at": None, "alerts": []},
            )
            entry["own"] = record
            entry["alerts"] = record["alerts"]
        return [entries[height] for height in sorted(entries)]

    def evidence(self) -> list[dict[str, Any]]:
        return [{"cbor": record.hex()} for record in self.node.chain.evidence()]

    def health(self) -> tuple[bool, dict[str, Any]]:
        """Healthy while consensus runs: a bitcoind problem shows in "anchoring" (bitcoind_ok,
        wallet_empty, last_error) without failing the health check, since the chain keeps
        finalizing without it."""
        return True, self.node.status()

    def metrics(self) -> bytes:
        self.node.sync_metrics()
        return self.node.metrics.render()
