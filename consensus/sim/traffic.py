"""What a run cost the validators: messages and bytes sent, signatures verified.

These are the figures that grow with n (all-to-all voting is O(n^2) messages per
block), so they are counted where they happen and nowhere else: messages and bytes
at the simulator's transmit, verifications in a wrapper around each node's verifier.
Nothing here changes what a node does; it only watches.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from consensus.crypto import Verifier
from consensus.messages import CatchUpRequest, CatchUpResponse, CertificateMessage, Message, Proposal, Vote


class CountingVerifier:
    """One node's verifier, counting every check and every check of a triple it already checked.

    A *repeat* is a second verification by the same node of the same (signer, message,
    signature): work a cache of verified signatures would save. Signatures are keyed by
    their Python hash so that holding them costs no more than the messages.
    """

    def __init__(self, inner: Verifier) -> None:
        self._inner = inner
        self._seen: set[tuple[int, bytes, int]] = set()
        self.verifies = 0
        self.repeats = 0

    def verify(self, index: int, message: bytes, signature: bytes) -> bool:
        self.verifies += 1
        key = (index, message, hash(signature))
        if key in self._seen:
            self.repeats += 1
        else:
            self._seen.add(key)
        return self._inner.verify(index, message, signature)


def message_kind(message: Message) -> str:
    """A short name for what a message is, for the per-kind breakdown of traffic."""
    kind = type(message)
    if kind is Vote:
        return f"vote_{message.kind.name.lower()}"
    if kind is Proposal:
        return "proposal"
    if kind is CertificateMessage:
        with_block = "_with_block" if message.block is not None else ""
        return f"cert_{message.certificate.kind.name.lower()}{with_block}"
    if kind is CatchUpRequest:
        return "catchup_request"
    if kind is CatchUpResponse:
        return "catchup_response"
    return "other"


@dataclass
class Traffic:
    """Messages and bytes handed to the network, per sender and (for honest senders) per kind."""

    n: int
    msgs: list[int] = field(init=False)
    bytes_sent: list[int] = field(init=False)
    kind_msgs: dict[str, int] = field(default_factory=dict)
    kind_bytes: dict[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.msgs = [0] * self.n
        self.bytes_sent = [0] * self.n

    def sent(self, src: int, size_bytes: int, kind: str | None) -> None:
        """``src`` sent one message of ``size_bytes``; ``kind`` is None when not broken down."""
        self.msgs[src] += 1
        self.bytes_sent[src] += size_bytes
        if kind is not None:
            self.kind_msgs[kind] = self.kind_msgs.get(kind, 0) + 1
            self.kind_bytes[kind] = self.kind_bytes.get(kind, 0) + size_bytes


@dataclass(frozen=True)
class Cost:
    """A run's totals over its honest validators (the Byzantine ones' own work is not counted)."""

    honest: int
    msgs: int
    bytes_sent: int
    verifies: int
    repeat_verifies: int
    kind_msgs: dict[str, int]
    kind_bytes: dict[str, int]

    @classmethod
    def of(cls, honest: tuple[int, ...], traffic: Traffic, verifiers: list[CountingVerifier]) -> Cost:
        return cls(
            honest=len(honest),
            msgs=sum(traffic.msgs[i] for i in honest),
            bytes_sent=sum(traffic.bytes_sent[i] for i in honest),
            verifies=sum(verifiers[i].verifies for i in honest),
            repeat_verifies=sum(verifiers[i].repeats for i in honest),
            kind_msgs=dict(traffic.kind_msgs),
            kind_bytes=dict(traffic.kind_bytes),
        )
