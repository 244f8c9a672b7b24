"""Proof material served by a node: bundles, consistency proofs, checkpoints in other formats."""

from __future__ import annotations

from typing import TYPE_CHECKING

from proof.bundle import Bundle

if TYPE_CHECKING:
    from node.runtime import Node


def proof_bundle(node: Node, root: bytes) -> bytes | None:
    """Inclusion at the latest finalized block, with that block's finalization proof (pending form)."""
    index = node.log.index_of(root)
    tip = node.chain.tip_header
    if index is None or tip is None:
        return None
    finality = node.chain.finalization_at(tip.height)
    if finality is None:
        return None
    path = tuple(node.log.inclusion_proof(index, tip.log_size))
    return Bundle(root=root, index=index, path=path, header=tip, finality=finality).encode()
