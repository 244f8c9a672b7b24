"""Withholder: proposes when it leads but never lets its vote out.

It sends no vote, and no certificate its own core formed with its signature in it
(forwarding those would hand out the very vote it withholds). Honest nodes cannot
prove silence, so there is no evidence to report; what must hold is that the other
2f+1 finalize without it: its signature is in no finalization they commit.
"""

from __future__ import annotations

from consensus.messages import CertificateMessage, Message, Vote
from consensus.sim.byzantine.base import Behaviour


class Withhold(Behaviour):
    name = "withhold"

    def send(self, to: int, message: Message, now_ms: int) -> None:
        kind = type(message)
        if kind is Vote or (kind is CertificateMessage and self.node.index in message.certificate.signers):
            self.committed += 1
            return
        super().send(to, message, now_ms)
