"""Equivocator: as leader, proposes two different valid blocks for one view.

Each peer gets one of the two proposals, or both (in either order), so that some
honest validator holds two notarize votes of the leader for one view: the
equivocation evidence honest nodes must report.
"""

from __future__ import annotations

from consensus.messages import Message, Proposal
from consensus.sim.byzantine.base import Behaviour

ROOT_SIZE = 32
RIVAL_ROOTS_MAX = 4


class Equivocate(Behaviour):
    name = "equivocate"

    def broadcast(self, message: Message, now_ms: int) -> None:
        node = self.node
        if type(message) is not Proposal or message.vote.signer != node.index:
            super().broadcast(message, now_ms)
            return
        request = self.request_for(message.vote.view)
        if request is None:
            super().broadcast(message, now_ms)
            return
        rng = self.rng
        roots = rng.randbytes(ROOT_SIZE * rng.randint(1, RIVAL_ROOTS_MAX))
        rival = node.signed_proposal(node.rival_block(request, roots, now_ms))
        first, second = message.encode(), rival.encode()
        peers = list(node.peers)
        rng.shuffle(peers)
        for position, peer in enumerate(peers):
            # At least one peer of each proposal, one peer with both, the rest at random.
            choice = position if position < 3 else rng.randrange(3)
            if choice == 0:
                node.transmit(peer, first)
            elif choice == 1:
                node.transmit(peer, second)
            else:
                pair = [first, second]
                rng.shuffle(pair)
                for data in pair:
                    node.transmit(peer, data)
        self.committed += 1
