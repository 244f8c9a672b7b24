"""Conflicter: every notarize or finalize vote it casts is doubled by one for another block.

Both votes are validly signed and sent to every peer, in random order; honest nodes
must keep the pair as equivocation evidence and count neither twice.
"""

from __future__ import annotations

from consensus.messages import Message, Vote
from consensus.sim.byzantine.base import Behaviour
from proof.chain import VoteKind

HASH_SIZE = 32


class Conflict(Behaviour):
    name = "conflict"

    def broadcast(self, message: Message, now_ms: int) -> None:
        node = self.node
        if type(message) is not Vote or message.signer != node.index or message.kind == VoteKind.NULLIFY:
            super().broadcast(message, now_ms)
            return
        rival = node.sign_vote(message.kind, message.view, self.rng.randbytes(HASH_SIZE))
        pair = [message.encode(), rival.encode()]
        for peer in node.peers:
            self.rng.shuffle(pair)
            for data in pair:
                node.transmit(peer, data)
        self.committed += 1
