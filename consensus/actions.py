"""What the core asks its driver to do, in list order.

Order matters: a Persist must be durably stored before any later action of the same
list is executed, because the votes after it are only safe once it survives a crash.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Union

from proof.chain import BlockHeader, Certificate, FinalizationProof
from proof.compact import CompactRange

from consensus.block import Block
from consensus.messages import Message, MisbehaviourEvidence
from consensus.safety import SafetyState


@dataclass(frozen=True)
class Persist:
    """Durably store ``state`` (replacing the previous one) before executing later actions."""

    state: SafetyState


@dataclass(frozen=True)
class Send:
    to: int
    message: Message


@dataclass(frozen=True)
class Broadcast:
    """Send to every other validator."""

    message: Message


@dataclass(frozen=True)
class SetTimer:
    """Fire TimerFired(view) after ``delay_ms``; supersedes any timer armed for another view."""

    view: int
    delay_ms: int


@dataclass(frozen=True)
class RequestProposal:
    """We lead ``view``: build a block on ``parent`` (None: the first block) and answer ProposalReady.

    ``log`` is the compact range of the log at ``parent`` (a private copy); ``pending`` are the
    not-yet-finalized ancestors of the new block, oldest first (``parent`` is the last one),
    whose roots the block must not repeat.
    """

    view: int
    parent: BlockHeader | None
    log: CompactRange
    pending: tuple[Block, ...] = ()


@dataclass(frozen=True)
class CheckBlock:
    """Check the rules that need IO (roots not yet logged nor in ``pending``, anchors exist); answer BlockChecked."""

    block: Block
    pending: tuple[Block, ...] = ()
    split: list[bytes] | None = field(default=None, compare=False, repr=False)
    """The block's roots as the check split them (their hashes computed by its set), or None."""


@dataclass(frozen=True)
class Finalized:
    """``block`` is final: commit it. Emitted in height order, exactly once per height.

    ``certificate`` is a finalization certificate for ``block`` itself when ``descendants``
    is empty; otherwise for the last of ``descendants``, the headers that link ``block``
    to the certified block (Simplex finalizes all ancestors of a finalized block).
    ``subtrees`` are the subtree hashes the core's check of ``block`` computed
    (check_extension), for the append to store without hashing the roots again; empty if
    the check kept none. Not part of what the action means, so not compared.
    """

    block: Block
    certificate: Certificate
    descendants: tuple[BlockHeader, ...] = ()
    subtrees: tuple[bytes, ...] = field(default=(), repr=False, compare=False)

    @property
    def proof(self) -> FinalizationProof:
        """The self-contained proof an auditor checks with proof.chain.verify_finalization."""
        return FinalizationProof(headers=self.descendants, certificate=self.certificate)


@dataclass(frozen=True)
class Evidence:
    """A validator equivocated, or proposed a block the driver's checks refused: keep and expose the record."""

    record: MisbehaviourEvidence


Action = Union[Persist, Send, Broadcast, SetTimer, RequestProposal, CheckBlock, Finalized, Evidence]
