"""The node as the HTTP API sees it: reads over storage, writes through the runtime.

Everything here is served to the public, so it says what the chain and the node's
duties are, never how the node is wired: bitcoind's address, RPC user, cookie path,
wallet name and error text stay in the node's log (anchoring logs each change of its
error), not in ``/healthz``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from node import bundles
from node.anchoring import ALERT_LOST
from node.interface import Page, Receipt, SubmitterQuota
from proof.chain import BlockHeader
from proof.spv import hash_to_hex
from storage.anchor_store import checkpoint_json

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
        api = node.config.api
        self.quota = SubmitterQuota(
            api.token_roots_per_s, api.token_burst_roots,
            backlog=lambda: len(node.mempool), backlog_roots=api.token_backlog_roots,
        )

    async def submit(self, roots: bytes, submitter: str) -> Sequence[Receipt]:
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

    def proof_source(self) -> bundles.NodeProofs:
        """The CBOR proof routes' material (certified blocks, consistency, anchors, the note)."""
        return bundles.NodeProofs(self.node)

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

    def anchors(self, from_height: int, limit: int) -> Page:
        """Anchored heights >= ``from_height`` this node knows, lowest first, at most ``limit``:
        what the chain recorded (and whether its Bitcoin block is on the best chain now:
        "anchored" or "pending"), and this validator's own anchor transaction for it, with
        its lifecycle state and alerts. ``next`` is the first height of the following page."""
        node = self.node
        own = node.anchorer.own_json() if node.anchorer is not None else {}
        lost = node.anchorer.lost_heights if node.anchorer is not None else frozenset()
        own = {height: record for height, record in own.items() if height >= from_height}
        # limit + 1 recorded anchors suffice: the union's first limit + 1 heights are then exact.
        recorded_page = node.anchor_store.recorded_from(from_height, limit + 1)
        heights = sorted({recorded.height for recorded in recorded_page} | set(own))
        kept = set(heights[:limit])
        entries: dict[int, dict[str, Any]] = {}
        for recorded in recorded_page:
            if recorded.height not in kept:
                continue
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
                "alerts": [ALERT_LOST] if checkpoint is None and recorded.height in lost else [],
            }
        for height, record in own.items():
            if height not in kept:
                continue
            entry = entries.setdefault(
                height,
                {"height": height, "state": "pending", "txid": record["txid"], "recorded_at": None, "alerts": []},
            )
            entry["own"] = {key: record[key] for key in PUBLIC_OWN_RECORD_KEYS if key in record}
            entry["alerts"] = sorted({*entry["alerts"], *record["alerts"]})
        return Page([entries[height] for height in sorted(entries)], heights[limit] if len(heights) > limit else None)

    def evidence(self, start: int, limit: int) -> Page:
        """Equivocation records ``start, start+1, ...`` (at most ``limit``), read one page
        from storage: there can be 10,000 of about 7 KB each."""
        records = self.node.chain.evidence_page(start, limit + 1)
        items = [{"index": start + offset, "cbor": record.hex()} for offset, record in enumerate(records[:limit])]
        return Page(items, start + limit if len(records) > limit else None)

    def health(self) -> tuple[bool, dict[str, Any]]:
        """Healthy while consensus runs: a bitcoind problem shows in "anchoring" as
        ``"bitcoind": "unavailable"`` without failing the health check, since the chain keeps
        finalizing without it. The error itself is in the node's log."""
        status = dict(self.node.status())
        anchoring = status.get("anchoring")
        status["anchoring"] = public_anchoring(anchoring if isinstance(anchoring, Mapping) else None)
        return True, status

    def metrics(self) -> bytes:
        self.node.sync_metrics()
        self.node.metrics.sync_handshake_failures(self.node.peers.handshake_failures)
        return self.node.metrics.render()


PUBLIC_OWN_RECORD_KEYS = (
    "state", "txid", "replaced_txids", "fee_rate_sat_vb", "btc_block_hash", "btc_height", "confirmations",
    "alerts", "reorgs",
)
"""Of this validator's own anchor record, what is on Bitcoin or a fixed word; not ``last_error``
(bitcoind's error text, which can name its address and wallet)."""
PUBLIC_ANCHORING_COUNTS = ("anchors_pending", "anchors_confirmed", "anchors_recorded", "last_anchored_height", "btc_height")
PUBLIC_NETWORKS = ("main", "test", "testnet4", "signet", "regtest")
"""bitcoind's chain names, the one vocabulary of the config, bundles and `verify --require-network`."""
_ALERT_CODE = re.compile(r"[a-z][a-z0-9_]{0,31}")
_TXID = re.compile(r"[0-9a-f]{64}")


def public_anchoring(status: Mapping[str, Any] | None) -> dict[str, Any]:
    """The anchoring status as the public may see it, from the anchorer's status dict.

    Read by key, each value checked, everything else dropped: the dict grows keys for
    bitcoind trouble whose text names internal addresses, users, paths and wallets, and
    anything not listed here must stay out of ``/healthz`` by default. What is kept is
    public anyway (counts, heights, the network, txids that are on Bitcoin) or a fixed word.
    """
    if status is None:
        return {"bitcoind": "disabled"}
    reachable = status.get("bitcoind_ok") is True
    if not reachable:
        wallet = "unknown"
    else:
        wallet = "empty" if status.get("wallet_empty") is True else "ok"
    public: dict[str, Any] = {"bitcoind": "ok" if reachable else "unavailable", "wallet": wallet}
    if status.get("network") in PUBLIC_NETWORKS:
        public["network"] = status["network"]
    for key in PUBLIC_ANCHORING_COUNTS:
        value = status.get(key)
        if isinstance(value, int) and not isinstance(value, bool):
            public[key] = value
    txid = status.get("last_txid")
    if isinstance(txid, str) and _TXID.fullmatch(txid):
        public["last_txid"] = txid
    alerts = status.get("alerts")
    if isinstance(alerts, (list, tuple)):
        public["alerts"] = [a for a in alerts if isinstance(a, str) and _ALERT_CODE.fullmatch(a)]
    return public
