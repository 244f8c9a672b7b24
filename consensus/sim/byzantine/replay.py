"""Replayer: sends honest validators certificates from far below their current view.

Every certificate it has seen is kept (bounded), and with each message it sends it
also sends one of the oldest again. They carry valid quorum signatures, so only
their age distinguishes them. A core that re-verifies each (about 2f+1 signature
checks) spends its time on history; it must drop them unverified.
"""

from __future__ import annotations

from consensus.messages import CertificateMessage, Message
from consensus.sim.byzantine.base import Behaviour
from proof.chain import Certificate

KEPT_MAX = 1_024


class Replay(Behaviour):
    name = "replay"

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self._seen: dict[tuple[int, int], Certificate] = {}
        self._cursor = 0

    def send(self, to: int, message: Message, now_ms: int) -> None:
        super().send(to, message, now_ms)
        self._keep_and_replay(message, (to,))

    def broadcast(self, message: Message, now_ms: int) -> None:
        super().broadcast(message, now_ms)
        self._keep_and_replay(message, self.node.peers)

    def _keep_and_replay(self, message: Message, peers: tuple[int, ...]) -> None:
        if type(message) is CertificateMessage:
            cert = message.certificate
            if len(self._seen) < KEPT_MAX:
                self._seen.setdefault((int(cert.kind), cert.view), cert)
        if not self._seen:
            return
        oldest = sorted(self._seen)[: max(1, len(self._seen) // 4)]
        key = oldest[self._cursor % len(oldest)]
        self._cursor += 1
        data = CertificateMessage(certificate=self._seen[key]).encode()
        for peer in peers:
            self.node.transmit(peer, data)
        self.committed += 1
