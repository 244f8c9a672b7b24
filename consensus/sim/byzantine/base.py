"""What every Byzantine behaviour can do, and the node that runs one.

A Byzantine validator runs the real Core with its real key, so it always knows the
current view, the leader and the chain, and deviates only where its behaviour says.
It holds its own signing key (and nobody else's): it can sign anything as itself and
send any bytes, but cannot forge an honest validator's vote. Its outgoing traffic
goes through its behaviour; it never crashes and its disk is not checked.
"""

from __future__ import annotations

import random
from typing import Any

from consensus.actions import RequestProposal
from consensus.block import Block, build_block
from consensus.messages import CatchUpRequest, Message, Proposal, Vote
from consensus.sim.node import SimNode
from proof.chain import VoteKind, vote_message

# How many recent RequestProposal contexts a behaviour keeps (it only needs the current one).
REQUESTS_KEPT_MAX = 4


class Behaviour:
    """Honest by default: subclasses override the hooks where they misbehave."""

    name = "honest"

    def __init__(self, node: ByzantineNode, rng: random.Random) -> None:
        self.node = node
        self.rng = rng
        self.committed = 0
        self._requests: dict[int, RequestProposal] = {}

    def requested(self, action: RequestProposal) -> None:
        """Our core leads ``action.view``: remember parent and log to build rival blocks."""
        self._requests[action.view] = action
        while len(self._requests) > REQUESTS_KEPT_MAX:
            del self._requests[min(self._requests)]

    def request_for(self, view: int) -> RequestProposal | None:
        return self._requests.get(view)

    def broadcast(self, message: Message, now_ms: int) -> None:
        for peer in self.node.peers:
            self.send(peer, message, now_ms)

    def send(self, to: int, message: Message, now_ms: int) -> None:
        self.node.transmit(to, message.encode())

    def serve_catch_up(self, to: int, request: CatchUpRequest, now_ms: int) -> None:
        """A peer asked us for finalized blocks: answer as an honest driver does."""
        SimNode.serve_catch_up(self.node, to, request, now_ms)

    def stats(self) -> dict[str, int]:
        return {"committed": self.committed}


class ByzantineNode(SimNode):
    """A validator whose outgoing messages pass through a :class:`Behaviour`."""

    def __init__(self, *, behaviour: type[Behaviour], rng: random.Random, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.behaviour = behaviour(self, rng)

    def broadcast(self, message: Message, now_ms: int) -> None:
        self.behaviour.broadcast(message, now_ms)

    def send(self, to: int, message: Message, now_ms: int) -> None:
        self.behaviour.send(to, message, now_ms)

    def serve_catch_up(self, to: int, request: CatchUpRequest, now_ms: int) -> None:
        self.behaviour.serve_catch_up(to, request, now_ms)

    def propose(self, action: RequestProposal, now_ms: int) -> None:
        self.behaviour.requested(action)
        super().propose(action, now_ms)

    # -- tools for behaviours -------------------------------------------------------------

    def transmit(self, to: int, data: bytes) -> None:
        self.host.transmit(self.index, to, data)

    def sign_vote(self, kind: VoteKind, view: int, block_hash: bytes) -> Vote:
        signature = self.signer.sign(vote_message(self.genesis.hash, kind, view, block_hash))
        return Vote(kind=kind, view=view, block_hash=block_hash, signer=self.index, signature=signature)

    def rival_block(self, request: RequestProposal, roots: bytes, now_ms: int) -> Block:
        """A second valid block for the same view and parent (different roots)."""
        return build_block(
            genesis=self.genesis,
            view=request.view,
            parent=request.parent,
            log=request.log,
            roots=roots,
            timestamp_ms=now_ms,
        )

    def signed_proposal(self, block: Block) -> Proposal:
        return Proposal(block=block, vote=self.sign_vote(VoteKind.NOTARIZE, block.header.view, block.hash))

    def mark_invalid(self, block: Block) -> None:
        self.host.mark_invalid(block.hash)
