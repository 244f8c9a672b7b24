"""The node as the HTTP API sees it: reads over storage, writes through the runtime."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from node import bundles
from node.api import Receipt
from proof.chain import BlockHeader

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
            {"txid": a.txid.hex(), "vout": a.vout, "anchored_block_hash": a.anchored_block_hash.hex()}
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
        return {"root": root.hex(), "state": "certified", "index": index, "height": height}

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
        return []

    def evidence(self) -> list[dict[str, Any]]:
        return [{"cbor": record.hex()} for record in self.node.chain.evidence()]

    def health(self) -> tuple[bool, dict[str, Any]]:
        return True, self.node.status()

    def metrics(self) -> bytes:
        self.node.sync_metrics()
        return self.node.metrics.render()
