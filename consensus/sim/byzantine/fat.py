"""Fat proposer: as leader, proposes blocks far over the roots bound for every view it will lead.

The blocks are well-formed and signed, only too large for ``block_roots_max``, and
sent for each of its leader views in the core's future window at once. An honest
core must measure a block before it keeps it: stored first and checked later, these
would hold tens of megabytes per Byzantine leader while finality stalls.
"""

from __future__ import annotations

from consensus.block import BLOCK_ROOTS_MAX, build_block
from consensus.core import FUTURE_VIEWS_MAX
from consensus.messages import Message, Proposal
from consensus.sim.byzantine.base import Behaviour

ROOT_SIZE = 32
FAT_FACTOR = 64
"""How many times over the core's roots bound each fat block is (up to the wire bound)."""
FAT_BYTES_PER_PROPOSAL_MAX = 4 * 1024 * 1024
"""Fat bytes sent per own proposal, which bounds what the simulation spends building them."""


class Fat(Behaviour):
    name = "fat"

    def broadcast(self, message: Message, now_ms: int) -> None:
        super().broadcast(message, now_ms)
        node = self.node
        if type(message) is not Proposal or message.vote.signer != node.index:
            return
        request = self.request_for(message.vote.view)
        if request is None:
            return
        n = node.genesis.n
        roots_count = min(node.config.block_roots_max * FAT_FACTOR, BLOCK_ROOTS_MAX)
        if roots_count <= node.config.block_roots_max:
            return
        views = range(message.vote.view + n, message.vote.view + FUTURE_VIEWS_MAX, n)
        for view in views[: max(1, FAT_BYTES_PER_PROPOSAL_MAX // (roots_count * ROOT_SIZE))]:
            block = build_block(
                genesis=node.genesis,
                view=view,
                parent=request.parent,
                log=request.log,
                roots=self.rng.randbytes(ROOT_SIZE * roots_count),
                timestamp_ms=now_ms,
            )
            node.mark_invalid(block)
            data = node.signed_proposal(block).encode()
            for peer in node.peers:
                node.transmit(peer, data)
            self.committed += 1
