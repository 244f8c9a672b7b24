"""Stale proposer: as leader, also proposes blocks that can never be voted on.

For its next leader view (so honest validators store the proposal before they enter
that view) it signs a proposal whose block sits at or below the finalized height: a
rival of the finalized tip (same parent, other roots) or a rival of the very first
block. Honest leaders never build such a block. An honest core must refuse it before
storing it: one that stored it and pruned the block at the next finalization would
later look for it on entering the view (the review's crash of every honest validator).
"""

from __future__ import annotations

from consensus.block import build_block
from consensus.messages import Message, Proposal
from consensus.sim.byzantine.base import Behaviour
from proof.compact import CompactRange

ROOT_SIZE = 32


class Stale(Behaviour):
    name = "stale"

    def broadcast(self, message: Message, now_ms: int) -> None:
        super().broadcast(message, now_ms)
        node = self.node
        if type(message) is not Proposal or message.vote.signer != node.index or node.core is None:
            return
        finalized = node.disk.blocks
        if not finalized:
            return
        view = message.vote.view + node.genesis.n  # our next leader view
        tip_rival = self.rng.random() < 0.5 and len(finalized) >= 2
        parent = finalized[-2][0].header if tip_rival else None
        log = CompactRange()
        if tip_rival:
            for block, _ in finalized[:-1]:
                log.extend_roots(block.roots)
        block = build_block(
            genesis=node.genesis,
            view=view,
            parent=parent,
            log=log,
            roots=self.rng.randbytes(ROOT_SIZE),
            timestamp_ms=now_ms,
        )
        node.mark_invalid(block)
        self.broadcast_raw(node.signed_proposal(block))
        self.committed += 1

    def broadcast_raw(self, message: Message) -> None:
        data = message.encode()
        for peer in self.node.peers:
            self.node.transmit(peer, data)
