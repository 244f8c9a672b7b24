"""Nuller: in every view it finalizes, it also votes to nullify, and the reverse.

A FINALIZE and a NULLIFY vote for one view are what honest validators never both
sign: Simplex's safety rests on 2f+1 of each never coexisting. A Byzantine validator
signing both must not be able to tip either quorum on its own. The contract's
evidence covers two votes of one kind only, so honest nodes report nothing here; the
safety invariants are what this behaviour tests.
"""

from __future__ import annotations

from consensus.messages import Message, Vote
from consensus.sim.byzantine.base import Behaviour
from proof.chain import ZERO_HASH, VoteKind


class Nuller(Behaviour):
    name = "nuller"

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self._notarized: dict[int, bytes] = {}

    def broadcast(self, message: Message, now_ms: int) -> None:
        node = self.node
        if type(message) is not Vote or message.signer != node.index:
            super().broadcast(message, now_ms)
            return
        if message.kind == VoteKind.NOTARIZE:
            self._notarized = {message.view: message.block_hash}
        rival: Vote | None = None
        if message.kind == VoteKind.FINALIZE:
            rival = node.sign_vote(VoteKind.NULLIFY, message.view, ZERO_HASH)
        elif message.kind == VoteKind.NULLIFY and message.view in self._notarized:
            rival = node.sign_vote(VoteKind.FINALIZE, message.view, self._notarized[message.view])
        data = message.encode()
        for peer in node.peers:
            node.transmit(peer, data)
            if rival is not None:
                node.transmit(peer, rival.encode())
        if rival is not None:
            self.committed += 1
