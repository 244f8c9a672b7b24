"""Catch-up trapper: never answers a catch-up request, and keeps laggards asking it.

It withholds every catch-up answer, and every ``REPLAY_EVERY_MS`` of its own activity
it sends each peer one finalization certificate from its finalized history, a
different one each time: to a validator that has fallen behind, each is news that it
is behind. A core that aims its catch-up at whoever told it so, or that waits only
for the peer it asked, is held behind for as long as the trapper likes. What must
hold is that every honest validator still rejoins (the ``rejoin`` invariant).
"""

from __future__ import annotations

from consensus.messages import CatchUpRequest, CertificateMessage, Message
from consensus.sim.byzantine.base import Behaviour

REPLAY_EVERY_MS = 1_000


class Trap(Behaviour):
    name = "trap"

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self._next_replay_ms = 0
        self._replayed = 0
        self.withheld = 0

    def serve_catch_up(self, to: int, request: CatchUpRequest, now_ms: int) -> None:
        self.withheld += 1

    def send(self, to: int, message: Message, now_ms: int) -> None:
        super().send(to, message, now_ms)
        self._replay(now_ms)

    def broadcast(self, message: Message, now_ms: int) -> None:
        super().broadcast(message, now_ms)
        self._replay(now_ms)

    def _replay(self, now_ms: int) -> None:
        finalized = self.node.disk.blocks
        if now_ms < self._next_replay_ms or not finalized:
            return
        self._next_replay_ms = now_ms + REPLAY_EVERY_MS
        block, certificate = finalized[self._replayed % len(finalized)]
        self._replayed += 1
        data = CertificateMessage(certificate=certificate).encode()
        for peer in self.node.peers:
            self.node.transmit(peer, data)
        self.committed += 1

    def stats(self) -> dict[str, int]:
        return {**super().stats(), "withheld": self.withheld}
