"""Finalize starver: votes and forwards everything except finalization.

It never sends a FINALIZE vote, nor a finalization certificate, nor a catch-up answer
(which would carry the finalizations its own core forms). With 2f+1 = n - f,
every honest validator must then vote FINALIZE in a view for it to be finalized, so
a single honest validator cut off before GST keeps the others notarizing view after
view with nothing finalized: each honest validator's record of its finalize votes
grows without a finalization to clear it. The record is bounded (consensus.safety);
what must hold is that reaching the bound neither crashes a validator nor leaves it a
persisted state it cannot restart from.
"""

from __future__ import annotations

from consensus.messages import CatchUpRequest, CertificateMessage, Message, Vote
from consensus.sim.byzantine.base import Behaviour
from proof.chain import VoteKind


class Starve(Behaviour):
    name = "starve"

    def send(self, to: int, message: Message, now_ms: int) -> None:
        kind = type(message)
        if (kind is Vote and message.kind == VoteKind.FINALIZE) or (
            kind is CertificateMessage and message.certificate.kind == VoteKind.FINALIZE
        ):
            self.committed += 1
            return
        super().send(to, message, now_ms)

    def serve_catch_up(self, to: int, request: CatchUpRequest, now_ms: int) -> None:
        self.committed += 1
