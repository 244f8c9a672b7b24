"""Prometheus metrics of one node, in a registry of its own.

A private registry (not the process-global default) keeps two nodes in one test
process from mixing their numbers, and exposes only what the node sets.
"""

from __future__ import annotations

from collections.abc import Mapping

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

FINALIZE_LATENCY_BUCKETS_S = (0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0)


class NodeMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.height = Gauge("pantheon_height", "Height of the latest finalized block", registry=r)
        self.view = Gauge("pantheon_view", "Current consensus view", registry=r)
        self.voting = Gauge(
            "pantheon_voting",
            "1 while this validator signs votes; 0 while a node started with --restored waits to learn the safe views",
            registry=r,
        )
        self.log_size = Gauge("pantheon_log_size", "Entries in the Merkle log", registry=r)
        self.mempool_roots = Gauge("pantheon_mempool_roots", "Roots accepted, not yet finalized", registry=r)
        self.peers_connected = Gauge("pantheon_peers_connected", "Validators connected to this node", registry=r)
        self.anchors_pending = Gauge("pantheon_anchors_pending", "Anchor transactions not yet final", registry=r)
        self.anchors_confirmed = Gauge("pantheon_anchors_confirmed", "Anchor transactions confirmed", registry=r)
        self.anchor_fee_capped = Gauge(
            "pantheon_anchor_fee_capped", "1 while an anchor waits at the maximum fee rate", registry=r
        )
        self.roots_submitted = Counter("pantheon_roots_submitted", "Roots accepted over the API", registry=r)
        self.roots_finalized = Counter("pantheon_roots_finalized", "Roots appended to the log", registry=r)
        self.blocks_finalized = Counter("pantheon_blocks_finalized", "Blocks finalized", registry=r)
        self.messages_rejected = Counter(
            "pantheon_messages_rejected", "Consensus messages dropped, by reason", ["reason"], registry=r
        )
        self.catchup_served_bytes = Counter(
            "pantheon_catchup_served_bytes", "Catch-up answer bytes sent to peers", registry=r
        )
        self.catchup_refused = Counter(
            "pantheon_catchup_refused", "Catch-up requests left unanswered: the peer's byte budget was spent", registry=r
        )
        self.bitcoind_healthy = Gauge(
            "pantheon_bitcoind_healthy",
            "1 while bitcoind answers the anchoring task validly and on the configured network",
            registry=r,
        )
        self.bitcoind_errors = Counter(
            "pantheon_bitcoind_errors", "Failed anchoring ticks and anchor checks, by kind", ["kind"], registry=r
        )
        self._bitcoind_errors_seen: dict[str, int] = {}
        self.gossip_roots_dropped = Counter(
            "pantheon_gossip_roots_dropped",
            "Gossiped roots not admitted: past the peer's rate, its mempool share, or a full mempool",
            ["reason"], registry=r,
        )
        self.api_connections_refused = Counter(
            "pantheon_api_connections_refused",
            "API connections reset on arrival, by cap (total: api.connections_max, source: "
            "api.connections_per_source_max)",
            ["cap"], registry=r,
        )
        self.api_connections_reset = Counter(
            "pantheon_api_connections_reset",
            "API connections reset because the client did not take its response within api.write_timeout_ms",
            registry=r,
        )
        self.handshake_failures = Counter(
            "pantheon_p2p_handshake_failures", "p2p handshakes refused, by reason (docs/p2p.md)", ["reason"], registry=r
        )
        self._handshake_failures_seen: dict[str, int] = {}
        self.submit_flushes = Counter(
            "pantheon_submit_flushes", "Synced batches that made submissions durable (node.group_commit)", registry=r
        )
        self.submit_flush_requests = Counter(
            "pantheon_submit_flush_requests", "Submissions made durable by those batches", registry=r
        )
        self.compact_proposals = Counter(
            "pantheon_compact_proposals",
            "Proposals by reference to gossip batches (node.proposal_relay): sent; received and rebuilt from the "
            "batches held here (rebuilt) or after fetching segments (fetched); dropped (mismatch: the roots did "
            "not match the header; abandoned: segments never came)",
            ["outcome"], registry=r,
        )
        self.view_timeouts = Counter(
            "pantheon_view_timeouts",
            "Views this validator timed out in (and voted to nullify), by how far the view had got here "
            "(consensus.core.Core.view_stage): no_proposal, checking, invalid, voted, waiting_for_parent",
            ["stage"], registry=r,
        )
        self.p2p_sent_bytes = Counter(
            "pantheon_p2p_sent_bytes", "Payload bytes queued for peers, by message kind (roots: gossip)", ["message"],
            registry=r,
        )
        self.finalize_latency = Histogram(
            "pantheon_finalize_latency_seconds",
            "From a root's acceptance to its block's finalization",
            buckets=FINALIZE_LATENCY_BUCKETS_S,
            registry=r,
        )

    def sync_bitcoind(self, healthy: bool, errors_total: Mapping[str, int]) -> None:
        """Mirror the anchoring status (node.anchoring.AnchoringStatus), whose worker thread
        owns the error counts: each kind's counter grows by what was added since the last sync."""
        self.bitcoind_healthy.set(1 if healthy else 0)
        _follow(self.bitcoind_errors, "kind", errors_total, self._bitcoind_errors_seen)

    def sync_handshake_failures(self, failures_total: Mapping[str, int]) -> None:
        """Mirror p2p.peers.PeerManager.handshake_failures (refusal reason -> count), which the
        transport owns: each reason's counter grows by what was added since the last sync."""
        _follow(self.handshake_failures, "reason", failures_total, self._handshake_failures_seen)

    def render(self) -> bytes:
        return generate_latest(self.registry)


def _follow(counter: Counter, label: str, totals: Mapping[str, int], seen: dict[str, int]) -> None:
    """Grow ``counter``'s series by what each total gained since ``seen`` (updated)."""
    for value, total in totals.items():
        added = total - seen.get(value, 0)
        if added > 0:
            counter.labels(**{label: value}).inc(added)
            seen[value] = total
