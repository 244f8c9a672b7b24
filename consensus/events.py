"""What the driver feeds into the core. Small frozen records; the core never reads a clock or socket."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Union

from consensus.block import Block, BuiltProposal
from consensus.messages import Message


@dataclass(frozen=True)
class Start:
    """The driver is ready: the core arms its view timer (and proposes if it leads)."""


@dataclass(frozen=True)
class MessageReceived:
    """A message from the authenticated peer ``sender`` (a validator index)."""

    sender: int
    message: Message


@dataclass(frozen=True)
class TimerFired:
    """The timeout armed by ``SetTimer(view, ...)`` ran out."""

    view: int


@dataclass(frozen=True)
class ProposalReady:
    """The driver's answer to RequestProposal: the block to propose in ``view``; ``built``,
    if the driver kept it (consensus.block.build_proposal), spares the check of the block
    hashing its roots again."""

    view: int
    block: Block
    built: BuiltProposal | None = field(default=None, compare=False, repr=False)


@dataclass(frozen=True)
class BlockChecked:
    """The driver's answer to CheckBlock: the IO-dependent rules hold (or not) for the block.

    ``reason``: when the block is invalid (not merely uncheckable now), what is wrong with
    it; the core then keeps the leader's signed proposal as evidence.
    """

    block_hash: bytes
    valid: bool
    reason: str | None = None


Event = Union[Start, MessageReceived, TimerFired, ProposalReady, BlockChecked]
