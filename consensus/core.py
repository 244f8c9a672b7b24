"""The Simplex consensus core: events in, actions out, no clock, socket or disk inside.

Theory of operation
===================

The protocol is Simplex (Chan and Pass, "Simplex Consensus: A Simple and Fast
Consensus Protocol", TCC 2023, https://eprint.iacr.org/2023/463, Figure 1), in the
form of commonware's ``consensus::simplex`` (which names the paper's vote for a
block *notarize*, the vote for the dummy block ⊥ *nullify*, and adds a separate
*finalize* vote message). Views are numbered 0, 1, 2, ...; the leader of view v is
validator v mod n; a quorum is 2f+1 of n = 3f+1. Paper rules are paraphrased
(iteration h = view v, dummy block ⊥_h = nullify); text in quotes is verbatim from
commonware's specification (consensus/src/simplex/mod.rs).

Per view v, these are the rules, each one a method below:

``_rule_propose`` (entering v as its leader)
    Propose a block extending the highest-view notarized block b_p such that every
    view strictly between p and v is nullified (the finalized tip counts as
    notarized). Broadcast Proposal(block, own notarize vote). The paper's leader
    proposes on a notarized blockchain of length h-1: a notarized block or dummy
    block at every earlier iteration; the nullifications are the dummy blocks.
    Commonware: the parent must be "notarized at v_parent and we have null
    notarizations for all views between v and v_parent".

``_rule_notarize`` (on the first proposal of the leader of v, while in v)
    Paper: on the first proposal of the iteration's leader carrying a valid block
    that extends a notarized blockchain, vote for it. Vote NOTARIZE(v, b) once, and
    only if this validator has not voted NOTARIZE or NULLIFY in v (a timed-out
    validator stays out of the view's block vote), after the pure checks (consensus.block.
    check_extension, parent rule above, timestamp not beyond now + skew) and the
    driver's IO checks (CheckBlock -> BlockChecked(valid=True)).

``_rule_notarization`` (2f+1 NOTARIZE(v, b), counted or received as a certificate)
    Paper: on seeing a notarized block of iteration h, move to h+1 and, if the timer
    of h has not fired, send finalize(h). Commonware: "Broadcast notarization(c,v)",
    "If have not broadcast nullify(v), broadcast finalize(c,v)", "Enter v+1".

``_rule_timeout`` (the timer of v fires before v is left)
    Paper: when the timer of iteration h fires, vote for the dummy block ⊥_h. So:
    vote NULLIFY(v). A validator that already voted NOTARIZE(v) still nullifies: the
    paper allows both votes in one iteration, and commonware states "It is ok to
    have both a vote for a proposal and the null container in the same view".
    Safety only needs FINALIZE(v) and NULLIFY(v) to exclude each other: 2f+1
    FINALIZE(v, b) and 2f+1 NULLIFY(v) would share an honest validator. The timer is
    re-armed; each firing rebroadcasts the nullify vote and the certificates that
    justify view v (commonware's rebroadcast), so lost messages cannot stall a view.

``_rule_fill_gaps`` (on the same timeout)
    Not in the paper, which assumes every certificate is eventually delivered: here
    certificates live in memory and a crash loses them. A view w below v that has
    neither certificate (as far as we know) blocks the chain rule forever, because
    nobody votes in w any more. Since safety only needs "never FINALIZE(w) and
    NULLIFY(w) both", a validator whose safety state shows it did not vote
    FINALIZE(w) votes NULLIFY(w) late. A finalized w cannot gather 2f+1 of these.
    The safety state also keeps the certificate that entered the current view and
    the highest notarization (``entry``, ``lock``) so they survive a restart.

``_rule_nullification`` (2f+1 NULLIFY(v))
    Broadcast the nullification, enter v+1.

``_rule_finalization`` (2f+1 FINALIZE(v, b))
    b and all its ancestors are final: emit Finalized for each, in height order,
    exactly once. The certificate of an ancestor a is b's finalization plus the
    headers from a to b (proof.chain.FinalizationProof). Blocks not known locally
    are fetched by catch-up (consensus.catchup) and checked against the genesis.

Entering a view arms its timer: base_timeout_ms * backoff^k, capped at
max_timeout_ms, where k counts consecutive views left by nullification; k resets to
0 when a view is left by notarization or finalization (progress).

Safety state: before any vote leaves, ``Persist(SafetyState)`` recording it comes
first in the action list (consensus.safety explains the content). Equivocation (two
different validly signed votes of one kind, view and signer) is recorded once as
evidence. Every message that fails a check (unknown signer, bad signature, wrong
chain, view below the finalized one or beyond current + FUTURE_VIEWS_MAX, duplicate,
invalid block) is dropped and counted in ``counters``; it changes no state.
Equivocation shows up in two ways: a second vote arriving directly, or a received
certificate carrying a signature on a block other than the one the same validator's
vote, which we hold, names (this is how an equivocating leader is caught: its
conflicting notarize votes travel inside the notarization).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

from proof.chain import GENESIS_PARENT, ZERO_HASH, BlockHeader, Certificate, Genesis, VoteKind, vote_message
from proof.compact import CompactRange
from proof.errors import PantheonError, ProofError

from consensus.actions import (
    Action,
    Broadcast,
    CheckBlock,
    Evidence,
    Finalized,
    Persist,
    RequestProposal,
    Send,
    SetTimer,
)
from consensus.block import BLOCK_ROOTS_MAX, ROOT_SIZE, Block, BuiltProposal, InvalidBlock, check_extension
from consensus.catchup import CatchUpError, verify_response
from consensus.catchup_client import APPLY_ALLOWANCE_MS_PER_1000_ROOTS, CatchUpClient
from consensus.crypto import Signer, Verifier
from consensus.events import BlockChecked, Event, MessageReceived, ProposalReady, Start, TimerFired
from consensus.messages import (
    CATCHUP_BLOCKS_MAX,
    CatchUpRequest,
    CatchUpResponse,
    CertificateMessage,
    EquivocationEvidence,
    InvalidBlockEvidence,
    MisbehaviourEvidence,
    Proposal,
    Vote,
)
from consensus.safety import SafetyState
from consensus.validators import ValidatorSet

VIEW_MAX = 2**48
"""Highest view accepted in any message (about 8,900 years at one view per millisecond);
keeps view + 1 arithmetic far from the 64-bit limit whatever a quorum signs."""
FUTURE_VIEWS_MAX = 64
"""Votes and proposals more than this many views ahead of ours are dropped (bounds memory)."""
VIEWS_RETAINED_MAX = 256
"""Unfinalized views kept in memory behind the current view; older ones are pruned."""
CATCHUP_VIEW_GAP = 8
"""A certificate this many views ahead of ours suggests we missed finalized blocks: ask for them."""
BACKOFF_STEPS_MAX = 32
GAP_NULLIFY_VOTES_MAX = 16
"""Late nullify votes for lost earlier views cast per timeout (see Core._rule_fill_gaps)."""
JUSTIFICATION_CERTIFICATES_MAX = 32
"""Certificates rebroadcast per timeout (see Core._rebroadcast_justification)."""
EVIDENCE_KEPT_MAX = 1_024
"""Evidence records kept in ``Core.evidence`` (oldest dropped first); each also left as an Evidence action."""
INVALID_BLOCK_REASON_CHARS_MAX = 100
"""Characters of a driver's reason kept in invalid-block evidence (well inside its byte bound)."""
RESTORED_VIEW_MARGIN = 3
"""A restored validator resumes this many views above the highest certificate its peers show (see Core)."""


class CoreConfigError(PantheonError, ValueError):
    """Core timeouts or bounds that make no sense (the message names the setting)."""


@dataclass(frozen=True)
class CoreConfig:
    """Timeouts and bounds of one core. The defaults suit a LAN devnet."""

    base_timeout_ms: int = 1_000
    timeout_backoff: int = 2
    max_timeout_ms: int = 30_000
    block_roots_max: int = BLOCK_ROOTS_MAX
    clock_skew_ms: int = 5_000
    catchup_blocks_max: int = CATCHUP_BLOCKS_MAX
    quorum_override: int | None = None
    """TEST ONLY: form and accept certificates with this many votes instead of 2f+1.

    Exists so the simulator can show that it catches a broken protocol (quorum f+1
    forks); a production node never sets it."""

    def __post_init__(self) -> None:
        if not 0 < self.base_timeout_ms <= self.max_timeout_ms:
            raise CoreConfigError("need 0 < base_timeout_ms <= max_timeout_ms")
        if self.timeout_backoff < 1:
            raise CoreConfigError("timeout_backoff must be at least 1")
        if not 0 < self.block_roots_max <= BLOCK_ROOTS_MAX:
            raise CoreConfigError(f"block_roots_max must be 1..{BLOCK_ROOTS_MAX}")
        if not 0 < self.catchup_blocks_max <= CATCHUP_BLOCKS_MAX:
            raise CoreConfigError(f"catchup_blocks_max must be 1..{CATCHUP_BLOCKS_MAX}")
        if self.clock_skew_ms < 0:
            raise CoreConfigError("clock_skew_ms must not be negative")
        if self.quorum_override is not None and self.quorum_override < 1:
            raise CoreConfigError("quorum_override must be at least 1 (or None for 2f+1)")

    def timeout_ms(self, consecutive_nullified: int) -> int:
        steps = min(consecutive_nullified, BACKOFF_STEPS_MAX)
        return min(self.base_timeout_ms * self.timeout_backoff**steps, self.max_timeout_ms)


@dataclass(frozen=True)
class Footprint:
    """What a core holds in memory, for checking its documented bounds (docs/consensus.md).

    With W = VIEWS_RETAINED_MAX + FUTURE_VIEWS_MAX + 1 views in the window and n
    validators: ``votes`` <= 3 * n * W, ``certificates`` <= 3 * W, ``proposals`` <= W,
    ``window_blocks`` <= 3 * W (a proposal and a notarized and a finalized block per
    view), ``chain_blocks`` the unfinalized ancestors older than the window (one per
    notarized height, while finalization is starved), ``block_bytes`` <= blocks *
    block_roots_max * 32, ``evidence`` <= EVIDENCE_KEPT_MAX.
    """

    views: int
    votes: int
    certificates: int
    proposals: int
    window_blocks: int
    chain_blocks: int
    block_bytes: int
    evidence: int


@dataclass
class FinalizedTip:
    """The last finalized block's header (None: nothing finalized yet) and the log's compact range there."""

    header: BlockHeader | None = None
    log: CompactRange = field(default_factory=CompactRange)


@dataclass(frozen=True)
class _HeldVotesFirst:
    """A certificate's verifier that skips the signatures we already verified as votes.

    ``held`` are the verified votes of the certificate's kind and view, by signer. A
    certificate signature equal to the held vote's, on the same block, signs the same
    message (chain, kind, view, block hash), so it verifies as the vote did; any other
    signature goes to ``verifier``. Without this, a certificate arriving before our own
    quorum re-verified every vote we had (up to 2f of its 2f+1 signatures).
    """

    held: dict[int, Vote]
    block_hash: bytes
    verifier: Verifier

    def verify(self, index: int, message: bytes, signature: bytes) -> bool:
        vote = self.held.get(index)
        if vote is not None and vote.block_hash == self.block_hash and vote.signature == signature:
            return True
        return self.verifier.verify(index, message, signature)


class Core:
    """One validator's consensus state machine (or an observer's, with ``signer=None``)."""

    def __init__(
        self,
        *,
        genesis: Genesis,
        signer: Signer | None,
        verifier: Verifier,
        safety: SafetyState | None = None,
        finalized_tip: FinalizedTip | None = None,
        config: CoreConfig = CoreConfig(),
        blocks: Sequence[Block] = (),
        restored: bool = False,
    ) -> None:
        """``blocks``: the unfinalized blocks the driver kept across a restart.

        The driver should durably keep every block it answered a CheckBlock for and every
        block it proposed, until finalized, before answering: the notarize vote that
        follows commits this validator to that block, and if every validator that voted
        for a notarized block lost it in a crash, no child could ever be built on it.

        ``restored``: the safety state may be older than the votes this validator already
        sent (a restore from backup, a copied data directory). The core then signs
        nothing until 2f+1 other validators have each sent it a verified certificate,
        then listens for two more maximal timeouts, and resumes RESTORED_VIEW_MARGIN views
        above the highest certificate view it heard, with no late nullify vote allowed
        below. Why that is safe: this validator last voted in some view V it entered
        through a certificate for V - 1, signed by f+1 honest validators; 2f+1 of the 3f
        others must include one of them, which is in view V - 1 or later and, within one
        timeout, sends the certificate it entered its view with (view V - 2 or later):
        formed as it moves on, or rebroadcast when its view times out. A Byzantine peer
        cannot inflate the figure, since a certificate needs f+1 honest signers.
        """
        self.genesis = genesis
        if config.quorum_override is not None and config.quorum_override > genesis.n:
            raise CoreConfigError(f"quorum_override {config.quorum_override} exceeds the {genesis.n} validators")
        self.validators = ValidatorSet(genesis, quorum=config.quorum_override)
        if signer is not None and not self.validators.is_member(signer.index):
            raise CoreConfigError(f"signer index {signer.index} is not a validator of this genesis")
        self.signer = signer if not restored else None
        self._restored_signer = signer if restored else None
        self._restored_views: dict[int, int] = {}
        self._restored_quorum_ms: int | None = None
        self.verifier = verifier
        self.config = config
        tip = finalized_tip if finalized_tip is not None else FinalizedTip()
        self._tip_header: BlockHeader | None = tip.header
        self._tip_log = tip.log.copy()
        self.safety = safety if safety is not None else SafetyState()
        self._persist_on_start = False
        if self.safety.view <= self.finalized_view:
            self.safety = self.safety.enter(self.finalized_view + 1)
            self._persist_on_start = True

        self.evidence: list[MisbehaviourEvidence] = []
        self.counters: Counter[str] = Counter()
        self._evidence_keys: set[tuple[int, VoteKind, int]] = set()
        self._votes: dict[int, dict[VoteKind, dict[int, Vote]]] = {}
        self._certificates: dict[VoteKind, dict[int, Certificate]] = {kind: {} for kind in VoteKind}
        self._blocks: dict[bytes, Block] = {}
        self._edges: dict[bytes, CompactRange] = {}
        self._subtrees: dict[bytes, tuple[bytes, ...]] = {}
        """block hash -> the subtree hashes its check computed (Finalized.subtrees), beside _edges."""
        self._proposals: dict[int, bytes] = {}
        self._invalid: set[bytes] = set()
        self._checks_requested: set[bytes] = set()
        self._checks_passed: set[bytes] = set()
        self._proposal_requested_view = -1
        self._consecutive_nullified = 0
        self._tip_certificate: Certificate | None = None
        for block in blocks:
            if block.header.height > self.finalized_height and block.header.chain_id == self.validators.chain_id:
                self._blocks[block.hash] = block
        self._pending_finalization: Certificate | None = None
        for kept in (self.safety.entry, self.safety.lock):
            if kept is not None and kept.view > self.finalized_view:
                self._certificates[kept.kind][kept.view] = kept
                if kept.kind == VoteKind.FINALIZE:
                    self._pending_finalization = kept
        self._catchup = CatchUpClient(n=self.validators.n, me=None if signer is None else signer.index)
        self._now_ms = 0

    # ------------------------------------------------------------------ read-only views

    @property
    def view(self) -> int:
        return self.safety.view

    @property
    def finalized_height(self) -> int:
        return 0 if self._tip_header is None else self._tip_header.height

    @property
    def finalized_hash(self) -> bytes:
        return GENESIS_PARENT if self._tip_header is None else self._tip_header.hash

    @property
    def finalized_view(self) -> int:
        """View of the finalized tip; -1 before the first finalization."""
        return -1 if self._tip_header is None else self._tip_header.view

    @property
    def finalized_tip(self) -> FinalizedTip:
        return FinalizedTip(header=self._tip_header, log=self._tip_log.copy())

    @property
    def index(self) -> int | None:
        signer = self.signer if self.signer is not None else self._restored_signer
        return None if signer is None else signer.index

    @property
    def recovering(self) -> bool:
        """A restored core that has not yet learned from its peers which views are safe to vote in."""
        return self._restored_signer is not None

    def view_stage(self, view: int) -> str:
        """How far ``view`` got here, in a word, for logs and metrics when it times out: no
        proposal (none arrived, or it could not be used yet: waiting for its parent), being
        checked (the driver's CheckBlock is not answered), invalid, voted (our notarize
        vote is out, the notarization is not here), notarized."""
        if view in self._certificates[VoteKind.NOTARIZE]:
            return "notarized"
        block_hash = self._proposals.get(view)
        if block_hash is None:
            return "no_proposal"
        if block_hash in self._invalid:
            return "invalid"
        if view == self.view and self.safety.notarize is not None:
            return "voted"
        if block_hash in self._checks_requested and block_hash not in self._checks_passed:
            return "checking"
        return "waiting_for_parent"

    def _window_floor(self) -> int:
        """The lowest view whose votes, certificates, proposals and blocks are kept in memory."""
        return max(self.finalized_view + 1, self.view - VIEWS_RETAINED_MAX)

    def footprint(self) -> Footprint:
        floor = self._window_floor()
        in_window = sum(1 for block in self._blocks.values() if block.header.view >= floor)
        return Footprint(
            views=len(self._votes),
            votes=sum(len(by_signer) for kinds in self._votes.values() for by_signer in kinds.values()),
            certificates=sum(len(certificates) for certificates in self._certificates.values()),
            proposals=len(self._proposals),
            window_blocks=in_window,
            chain_blocks=len(self._blocks) - in_window,
            block_bytes=sum(len(block.roots) for block in self._blocks.values()),
            evidence=len(self.evidence),
        )

    # ------------------------------------------------------------------ entry point

    def handle(self, event: Event, now_ms: int) -> list[Action]:
        """Process one event at the driver's time ``now_ms``; return the actions, in order."""
        self._now_ms = now_ms
        out: list[Action] = []
        if self._restored_quorum_ms is not None and now_ms - self._restored_quorum_ms >= 2 * self.config.max_timeout_ms:
            self._resume_after_restore(out)
        if self._catchup.expire(now_ms):
            self.counters["catchup_timeouts"] += 1
            self._request_catch_up(out)
        if isinstance(event, MessageReceived):
            self._on_message(event, out)
        elif isinstance(event, TimerFired):
            self._rule_timeout(event.view, out)
        elif isinstance(event, BlockChecked):
            self._on_block_checked(event, out)
        elif isinstance(event, ProposalReady):
            self._on_proposal_ready(event, out)
        elif isinstance(event, Start):
            self._on_start(out)
        else:
            raise TypeError(f"not a consensus event: {event!r}")
        return out

    # ------------------------------------------------------------------ events

    def _on_start(self, out: list[Action]) -> None:
        if self._persist_on_start:
            out.append(Persist(self.safety))
            self._persist_on_start = False
        out.append(SetTimer(self.view, self.config.timeout_ms(self._consecutive_nullified)))
        self._rule_propose(out)
        self._rule_notarize(out)

    def _on_message(self, event: MessageReceived, out: list[Action]) -> None:
        if not self.validators.is_member(event.sender):
            self.counters["dropped_unknown_sender"] += 1
            return
        message = event.message
        if isinstance(message, Vote):
            self._on_vote(message, out)
        elif isinstance(message, Proposal):
            self._on_proposal(message, out)
        elif isinstance(message, CertificateMessage):
            self._on_certificate_message(event.sender, message, out)
        elif isinstance(message, CatchUpResponse):
            self._on_catchup_response(event.sender, message, out)
        elif isinstance(message, CatchUpRequest):
            # Answered by the driver from its finalized storage (consensus.catchup.build_response).
            self.counters["ignored_catchup_request"] += 1
        else:
            self.counters["dropped_unknown_message"] += 1

    def _view_in_window(self, view: int) -> bool:
        """Whether a vote or proposal for ``view`` is worth keeping; counts the drop if not."""
        if view <= self.finalized_view or view + VIEWS_RETAINED_MAX < self.view:
            self.counters["dropped_old_view"] += 1
            return False
        if view > self.view + FUTURE_VIEWS_MAX:
            self.counters["dropped_future_view"] += 1
            return False
        return True

    def _on_vote(self, vote: Vote, out: list[Action]) -> None:
        if not self.validators.is_member(vote.signer):
            self.counters["dropped_unknown_signer"] += 1
            return
        if not self._view_in_window(vote.view):
            return
        known = self._votes.get(vote.view, {}).get(vote.kind, {}).get(vote.signer)
        if known is not None and known.block_hash == vote.block_hash:
            self.counters["dropped_duplicate"] += 1
            return
        if not self._in_held_certificate(vote) and not self.validators.vote_is_valid(vote, self.verifier):
            self.counters["dropped_bad_signature"] += 1
            return
        self._add_vote(vote, out)

    def _in_held_certificate(self, vote: Vote) -> bool:
        """Whether ``vote``'s very signature is in a certificate we hold, so verified already.

        The signed message is fixed by (chain, kind, view, block hash): the same signer's same
        signature on it verifies as it did inside the certificate. Without this, every vote
        arriving after its certificate was checked a second time (an ML-DSA verification each).
        """
        cert = self._certificates[vote.kind].get(vote.view)
        return (
            cert is not None
            and cert.block_hash == vote.block_hash
            and (vote.signer, vote.signature) in cert.signatures
        )

    def _add_vote(self, vote: Vote, out: list[Action]) -> None:
        """Record a vote whose signature holds; form a certificate at quorum."""
        by_signer = self._votes.setdefault(vote.view, {}).setdefault(vote.kind, {})
        known = by_signer.get(vote.signer)
        if known is not None:
            if known.block_hash != vote.block_hash:
                self._record_equivocation(known, vote, out)
            else:
                self.counters["dropped_duplicate"] += 1
            return
        by_signer[vote.signer] = vote
        if vote.view in self._certificates[vote.kind]:
            return
        agreeing = sorted(
            (signer, v.signature) for signer, v in by_signer.items() if v.block_hash == vote.block_hash
        )
        if len(agreeing) >= self.validators.quorum:
            cert = Certificate(kind=vote.kind, view=vote.view, block_hash=vote.block_hash, signatures=tuple(agreeing))
            self._on_certificate(cert, None, out)

    def _record_equivocation(self, first: Vote, second: Vote, out: list[Action]) -> None:
        key = (first.signer, first.kind, first.view)
        self.counters["equivocation"] += 1
        if key in self._evidence_keys:
            return
        self._evidence_keys.add(key)
        self._keep_evidence(EquivocationEvidence(first=first, second=second), out)

    def _keep_evidence(self, record: MisbehaviourEvidence, out: list[Action]) -> None:
        """Keep ``record`` in the bounded ``evidence`` list and hand it to the driver."""
        self.evidence.append(record)
        del self.evidence[:-EVIDENCE_KEPT_MAX]
        out.append(Evidence(record))

    def _equivocations_in(self, cert: Certificate, out: list[Action]) -> None:
        """A verified certificate holds signed votes: any that conflict with a vote we hold is evidence."""
        held = self._votes.get(cert.view, {}).get(cert.kind, {})
        for signer, signature in cert.signatures:
            known = held.get(signer)
            if known is not None and known.block_hash != cert.block_hash:
                vote = Vote(kind=cert.kind, view=cert.view, block_hash=cert.block_hash, signer=signer, signature=signature)
                self._record_equivocation(known, vote, out)

    def _on_proposal(self, proposal: Proposal, out: list[Action]) -> None:
        block, vote = proposal.block, proposal.vote
        view = block.header.view
        if vote.kind != VoteKind.NOTARIZE or vote.view != view or vote.block_hash != block.hash:
            self.counters["dropped_malformed_proposal"] += 1
            return
        leader = self.validators.leader(view)
        if vote.signer != leader or block.header.proposer != leader:
            self.counters["dropped_not_leader"] += 1
            return
        if block.header.chain_id != self.validators.chain_id:
            self.counters["dropped_wrong_chain"] += 1
            return
        if not self._view_in_window(view):
            return
        known = self._proposals.get(view)
        if known == block.hash:
            self.counters["dropped_duplicate"] += 1
            return
        if not self._block_worth_keeping(block):
            return
        if not self.validators.vote_is_valid(vote, self.verifier):
            self.counters["dropped_bad_signature"] += 1
            return
        if known is None:
            self._proposals[view] = block.hash
            self._blocks[block.hash] = block
        self._add_vote(vote, out)
        if view != self.view:
            # A block of an earlier view may be the parent that our proposal, or the proposal
            # of this view we hold, waits for: its notarization can come first, since a block
            # travels by reference and may be rebuilt late (node.proposal_relay).
            self._rule_propose(out)
        self._rule_notarize(out)

    def _on_certificate_message(self, sender: int, message: CertificateMessage, out: list[Action]) -> None:
        cert = message.certificate
        if cert.view > VIEW_MAX:
            self.counters["dropped_future_view"] += 1
            return
        if cert.view <= self.finalized_view or cert.view + VIEWS_RETAINED_MAX < self.view:
            self.counters["dropped_old_view"] += 1
            return
        block = message.block  # CertificateMessage guarantees it is the certified block
        if block is not None and block.header.chain_id != self.validators.chain_id:
            self.counters["dropped_wrong_chain"] += 1
            return
        known = self._certificates[cert.kind].get(cert.view)
        if known is not None and known.block_hash == cert.block_hash:
            if self._restored_signer is not None:
                self._learn_safe_view(sender, cert.view)  # the same certificate, verified already
            if block is not None and block.hash not in self._blocks and self._block_worth_keeping(block):
                self._blocks[block.hash] = block  # the certificate naming it is already verified
                self._rule_notarize(out)
                self._rule_propose(out)
                return
            self.counters["dropped_duplicate"] += 1
            return
        try:
            held = self._votes.get(cert.view, {}).get(cert.kind, {})
            self.validators.verify_certificate(cert, _HeldVotesFirst(held, cert.block_hash, self.verifier))
        except ProofError:
            self.counters["dropped_bad_certificate"] += 1
            return
        self._equivocations_in(cert, out)
        if self._restored_signer is not None:
            self._learn_safe_view(sender, cert.view)
        if block is not None and self._block_worth_keeping(block):
            self._blocks.setdefault(block.hash, block)
        if known is not None:
            self.counters["conflicting_certificate"] += 1
            return
        self._on_certificate(cert, sender, out)

    def _learn_safe_view(self, sender: int, view: int) -> None:
        """A restored core: note the highest verified certificate ``sender`` has shown (see ``__init__``)."""
        signer = self._restored_signer
        assert signer is not None
        if sender == signer.index:
            return
        self._restored_views[sender] = max(view, self._restored_views.get(sender, -1))
        if self._restored_quorum_ms is None and len(self._restored_views) >= self.validators.quorum:
            self._restored_quorum_ms = self._now_ms

    def _resume_after_restore(self, out: list[Action]) -> None:
        signer = self._restored_signer
        assert signer is not None
        resume = max(max(self._restored_views.values()) + RESTORED_VIEW_MARGIN, self.view + 1)
        self._restored_signer = None
        self._restored_quorum_ms = None
        self.signer = signer
        self.safety = SafetyState(
            view=resume, finalize_votes_from=resume, entry=self.safety.entry, lock=self.safety.lock
        )
        self.counters["restored_resumed"] += 1
        out.append(Persist(self.safety))
        out.append(SetTimer(resume, self.config.timeout_ms(self._consecutive_nullified)))
        self._prune()
        self._after_entering(out)

    def _block_worth_keeping(self, block: Block) -> bool:
        """Cheap checks before a peer's block takes memory: above the finalized tip, within the size bound.

        A block at or below the finalized height can never be voted on or finalized (it is
        the finalized block or a rival of one); a block over ``block_roots_max`` can never be
        valid. Neither is stored, so neither can be reached later by a rule that expects it.
        """
        if block.header.height <= self.finalized_height:
            self.counters["dropped_stale_proposal"] += 1
            return False
        if len(block.roots) > self.config.block_roots_max * ROOT_SIZE:
            self.counters["dropped_oversize_block"] += 1
            return False
        return True

    def _on_certificate(self, cert: Certificate, sender: int | None, out: list[Action]) -> None:
        """A verified certificate, received or just formed from votes."""
        far_ahead = sender is not None and cert.view > self.view + CATCHUP_VIEW_GAP
        self._certificates[cert.kind][cert.view] = cert
        if cert.kind == VoteKind.NOTARIZE:
            self._rule_notarization(cert, sender is None, out)
        elif cert.kind == VoteKind.NULLIFY:
            self._rule_nullification(cert, sender is None, out)
        else:
            self._rule_finalization(cert, sender, out)
        if far_ahead:
            self._request_catch_up(out)

    def _on_block_checked(self, event: BlockChecked, out: list[Action]) -> None:
        if event.block_hash not in self._checks_requested:
            self.counters["ignored_block_check"] += 1
            return
        self._checks_requested.discard(event.block_hash)
        if event.valid:
            self._checks_passed.add(event.block_hash)
        else:
            self._invalid.add(event.block_hash)
            self.counters["invalid_block_external"] += 1
            if event.reason is not None:
                self._record_invalid_proposal(event.block_hash, event.reason, out)
        self._rule_notarize(out)

    def _record_invalid_proposal(self, block_hash: bytes, reason: str, out: list[Action]) -> None:
        """Keep the leader's signed proposal of a block the driver found invalid (once: a block is checked once)."""
        block = self._blocks.get(block_hash)
        if block is None:
            return
        leader = self.validators.leader(block.header.view)
        vote = self._votes.get(block.header.view, {}).get(VoteKind.NOTARIZE, {}).get(leader)
        if vote is None or vote.block_hash != block_hash:
            return
        self.counters["invalid_proposal_evidence"] += 1
        self._keep_evidence(InvalidBlockEvidence(vote=vote, reason=reason[:INVALID_BLOCK_REASON_CHARS_MAX]), out)

    def _on_proposal_ready(self, event: ProposalReady, out: list[Action]) -> None:
        block = event.block
        if (
            self.signer is None
            or event.view != self.view
            or event.view != self._proposal_requested_view
            or self.safety.notarize is not None
            or self.safety.nullify
        ):
            self.counters["ignored_proposal_ready"] += 1
            return
        self._proposal_requested_view = -1
        if block.header.view != event.view or block.header.proposer != self.signer.index:
            self.counters["invalid_own_proposal"] += 1
            return
        edge = self._check_candidate(block, out, built=event.built)
        if edge is None:
            self.counters["invalid_own_proposal"] += 1
            return
        self._edges[block.hash] = edge
        self._blocks[block.hash] = block
        self._proposals[event.view] = block.hash
        self._broadcast_justification(block, out)
        vote = self._sign_notarize(block.hash, out)
        out.append(Broadcast(Proposal(block=block, vote=vote)))
        self._add_vote(vote, out)

    # ------------------------------------------------------------------ rules

    def _rule_propose(self, out: list[Action]) -> None:
        if (
            self.signer is None
            or self.validators.leader(self.view) != self.signer.index
            or self.safety.notarize is not None
            or self.safety.nullify
            or self._proposal_requested_view == self.view
        ):
            return
        parent_hash = self._choose_parent(self.view)
        if parent_hash is None:
            self.counters["no_parent_to_propose_on"] += 1
            return
        edge = self._edge(parent_hash)
        if edge is None:
            self.counters["no_parent_to_propose_on"] += 1
            return
        self._proposal_requested_view = self.view
        out.append(
            RequestProposal(
                view=self.view,
                parent=self._header(parent_hash),
                log=edge.copy(),
                pending=self._unfinalized_chain(parent_hash) or (),
            )
        )

    def _rule_notarize(self, out: list[Action]) -> None:
        view = self.view
        block_hash = self._proposals.get(view)
        if (
            self.signer is None
            or block_hash is None
            or block_hash in self._invalid
            or self.safety.notarize is not None
            or self.safety.nullify
        ):
            return
        block = self._blocks[block_hash]
        split: list[bytes] = []
        if block_hash not in self._edges:
            edge = self._check_candidate(block, out, split=split)
            if edge is None:
                return
            self._edges[block_hash] = edge
        if block_hash not in self._checks_passed:
            if block_hash not in self._checks_requested:
                self._checks_requested.add(block_hash)
                out.append(CheckBlock(block=block, pending=self._unfinalized_chain(block.header.parent) or (),
                                      split=split if len(split) == block.root_count else None))
            return
        vote = self._sign_notarize(block_hash, out)
        out.append(Broadcast(vote))
        self._add_vote(vote, out)

    def _rule_notarization(self, cert: Certificate, formed: bool, out: list[Action]) -> None:
        if cert.view < self.view:
            if formed:
                out.append(Broadcast(CertificateMessage(certificate=cert)))
            self._after_entering(out)
            return
        out.append(Broadcast(CertificateMessage(certificate=cert)))
        self._consecutive_nullified = 0
        finalize = cert.view == self.view and self.signer is not None and not self.safety.nullify
        self._enter(cert.view + 1, out, cert, finalized_vote=finalize)
        if finalize:
            vote = self._sign(VoteKind.FINALIZE, cert.view, cert.block_hash)
            out.append(Broadcast(vote))
            self._add_vote(vote, out)
        self._after_entering(out)

    def _rule_nullification(self, cert: Certificate, formed: bool, out: list[Action]) -> None:
        if cert.view < self.view:
            if formed:
                out.append(Broadcast(CertificateMessage(certificate=cert)))
            self._after_entering(out)
            return
        out.append(Broadcast(CertificateMessage(certificate=cert)))
        self._consecutive_nullified += 1
        self._enter(cert.view + 1, out, cert)
        self._after_entering(out)

    def _rule_finalization(self, cert: Certificate, sender: int | None, out: list[Action]) -> None:
        advance = cert.view >= self.view
        if advance or sender is None:
            out.append(Broadcast(CertificateMessage(certificate=cert)))
        self._finalize(cert, out)
        if advance and cert.view >= self.view:
            self._consecutive_nullified = 0
            self._enter(cert.view + 1, out, cert)
            self._after_entering(out)

    def _rule_timeout(self, view: int, out: list[Action]) -> None:
        if view != self.view:
            self.counters["stale_timer"] += 1
            return
        if self.signer is not None:
            if not self.safety.nullify:
                self.safety = self.safety.with_nullify()
                out.append(Persist(self.safety))
            self._vote_nullify(view, out)
        self._rebroadcast_justification(out)
        if self.view == view:
            out.append(SetTimer(view, self.config.timeout_ms(self._consecutive_nullified + 1)))
            self._rule_fill_gaps(out)
        # A timeout is the one event a lagging validator is sure to see: when every later
        # view is nullified (an idle chain), no finalization ever arrives to show that it
        # is behind. So each timeout asks a peer for blocks past our finalized tip
        # (consensus.catchup_client rate-limits and picks it; an up-to-date peer answers
        # with an empty response).
        self._request_catch_up(out)

    def _rule_fill_gaps(self, out: list[Action]) -> None:
        """Nullify earlier views whose certificate nobody we hear from holds any more.

        A view between the parent candidate and the current view needs a nullification
        before anyone can build past it (the chain rule). If every copy of a certificate
        was lost (dropped messages, restarted validators: certificates live in memory),
        no vote in that view can be cast again in the usual way, and the chain would
        stall. Simplex's safety argument only needs that no honest validator votes both
        FINALIZE(w) and NULLIFY(w), so a validator that did not vote FINALIZE(w) (its
        safety state says so) may vote NULLIFY(w) late. A finalized w cannot gather
        2f+1 such votes; otherwise the view gets its nullification and the chain moves.
        """
        if self.signer is None:
            return
        notarized = self._certificates[VoteKind.NOTARIZE]
        nullified = self._certificates[VoteKind.NULLIFY]
        filled = 0
        for earlier in range(self.view - 1, max(self.finalized_view, self.view - VIEWS_RETAINED_MAX), -1):
            cert = notarized.get(earlier)
            if cert is not None and self._edge(cert.block_hash) is not None:
                return
            if earlier in nullified:
                continue
            if filled == GAP_NULLIFY_VOTES_MAX or not self.safety.may_nullify(earlier):
                return
            self._vote_nullify(earlier, out)
            self.counters["gap_nullify_votes"] += 1
            filled += 1

    def _vote_nullify(self, view: int, out: list[Action]) -> None:
        """Send NULLIFY(view); the safety state already covers it (current view flag or may_nullify)."""
        vote = self._sign(VoteKind.NULLIFY, view, ZERO_HASH)
        out.append(Broadcast(vote))
        if self._votes.get(view, {}).get(VoteKind.NULLIFY, {}).get(vote.signer) is None:
            self._add_vote(vote, out)

    def _rebroadcast_justification(self, out: list[Action]) -> None:
        """On a timeout, resend the certificates a peer needs to reach and vote in our view.

        Those are the finalization of our tip, the certificate that moved us into this
        view, the notarization of the parent candidate (with its block) and the
        nullifications after it: a message lost before GST must not be needed after it.
        """
        chosen: dict[tuple[VoteKind, int], Certificate] = {}
        for cert in (self._tip_certificate, self.safety.entry):
            if cert is not None:
                chosen[(cert.kind, cert.view)] = cert
        notarized = self._certificates[VoteKind.NOTARIZE]
        nullified = self._certificates[VoteKind.NULLIFY]
        for earlier in range(self.view - 1, max(self.finalized_view, self.view - JUSTIFICATION_CERTIFICATES_MAX), -1):
            cert = notarized.get(earlier)
            if cert is not None:
                chosen[(cert.kind, cert.view)] = cert
                break
            if earlier not in nullified:
                break
            chosen[(VoteKind.NULLIFY, earlier)] = nullified[earlier]
        for cert in chosen.values():
            block = None if cert.kind == VoteKind.NULLIFY else self._blocks.get(cert.block_hash)
            out.append(Broadcast(CertificateMessage(certificate=cert, block=block)))

    # ------------------------------------------------------------------ view changes

    def _enter(self, view: int, out: list[Action], entry: Certificate, *, finalized_vote: bool = False) -> None:
        """Move to ``view``; the Persist comes first so any later vote is covered by it."""
        self.safety = self.safety.enter(view, finalized_vote=finalized_vote, entry=entry, lock=self._lock())
        out.append(Persist(self.safety))
        out.append(SetTimer(view, self.config.timeout_ms(self._consecutive_nullified)))
        self._prune()

    def _lock(self) -> Certificate | None:
        """The highest notarization above the finalized tip: what the chain continues from."""
        notarized = self._certificates[VoteKind.NOTARIZE]
        above = [view for view in notarized if view > self.finalized_view]
        return notarized[max(above)] if above else None

    def _after_entering(self, out: list[Action]) -> None:
        self._rule_propose(out)
        self._rule_notarize(out)

    # ------------------------------------------------------------------ finalization

    def _finalize(self, cert: Certificate, out: list[Action]) -> None:
        """Commit the certified block and its unfinalized ancestors, or fetch what is missing."""
        chain = self._unfinalized_chain(cert.block_hash)
        if chain is None:
            if cert.block_hash in self._blocks and self._conflicts_with_tip(cert.block_hash):
                self.counters["conflicting_finalization"] += 1
                return
            if self._pending_finalization is None or cert.view > self._pending_finalization.view:
                self._pending_finalization = cert
            self._request_catch_up(out)
            return
        if not chain:
            return
        headers = [block.header for block in chain]
        for position, block in enumerate(chain):
            edge = self._edges.get(block.hash)
            subtrees = self._subtrees.pop(block.hash, ())
            if edge is None:
                kept: list[bytes] = []
                try:
                    edge = check_extension(
                        self.genesis, self._tip_header, self._tip_log, block, block_roots_max=BLOCK_ROOTS_MAX,
                        subtrees=kept,
                    )
                except InvalidBlock as error:
                    self.counters[f"finalized_invalid_{error.reason}"] += 1
                    return
                subtrees = tuple(kept)
            out.append(Finalized(block=block, certificate=cert, descendants=tuple(headers[position + 1 :]),
                                 subtrees=subtrees))
            self._set_tip(block.header, edge, cert)
        if self._pending_finalization is not None and self._pending_finalization.view <= self.finalized_view:
            self._pending_finalization = None
        self._prune()

    def _set_tip(self, header: BlockHeader, log: CompactRange, cert: Certificate) -> None:
        self._tip_header = header
        self._tip_log = log.copy()
        self._tip_certificate = cert
        self.safety = self.safety.forget_below(header.view + 1)

    def _conflicts_with_tip(self, block_hash: bytes) -> bool:
        block = self._blocks.get(block_hash)
        return block is not None and block.header.height <= self.finalized_height

    def _request_catch_up(self, out: list[Action], *, continue_with: int | None = None, allowance_ms: int = 0) -> None:
        """Ask for finalized blocks past our tip; consensus.catchup_client picks the peer and the moment."""
        flight = self._catchup.start(
            self.finalized_height + 1, self._now_ms, continue_with=continue_with, allowance_ms=allowance_ms
        )
        if flight is None:
            return
        request = CatchUpRequest(
            request_id=flight.request_id, from_height=flight.from_height, max_blocks=self.config.catchup_blocks_max
        )
        out.append(Send(to=flight.peer, message=request))

    def _on_catchup_response(self, sender: int, response: CatchUpResponse, out: list[Action]) -> None:
        if self._catchup.accept(sender, response.request_id) is None:
            self.counters["dropped_unsolicited_catchup"] += 1
            return
        # Our tip may have moved on since we asked: what is at or below it is not news.
        fresh = tuple(entry for entry in response.blocks if entry[0].header.height > self.finalized_height)
        try:
            proven = verify_response(
                genesis=self.genesis,
                verifier=self.verifier,
                tip=self._tip_header,
                tip_log=self._tip_log,
                response=CatchUpResponse(request_id=response.request_id, blocks=fresh, tail=response.tail if fresh else ()),
                max_blocks=self.config.catchup_blocks_max,
                block_roots_max=self.config.block_roots_max,
                validators=self.validators,
            )
        except CatchUpError as error:
            self.counters[f"catchup_rejected_{error.reason}"] += 1
            self._catchup.refuted(sender, self._now_ms)
            return
        self._catchup.delivered(sender, len(proven))
        for item in proven:
            self._set_tip(item.block.header, item.log, item.certificate)
        self.counters["catchup_blocks"] += len(proven)
        if not proven:
            return
        self._prune()
        # The next request leaves before these blocks are applied (pipelined, see catchup_client).
        roots = sum(item.block.root_count for item in proven)
        self._request_catch_up(out, continue_with=sender, allowance_ms=roots * APPLY_ALLOWANCE_MS_PER_1000_ROOTS // 1000)
        out.extend(Finalized(block=item.block, certificate=item.certificate, descendants=item.descendants,
                             subtrees=item.subtrees) for item in proven)
        if self._pending_finalization is not None:
            pending = self._pending_finalization
            if pending.view <= self.finalized_view:
                self._pending_finalization = None
            else:
                self._finalize(pending, out)
        if self.finalized_view >= self.view:
            self._consecutive_nullified = 0
            self._enter(self.finalized_view + 1, out, proven[-1].certificate)
            self._after_entering(out)

    # ------------------------------------------------------------------ chain helpers

    def _header(self, block_hash: bytes) -> BlockHeader | None:
        if block_hash == self.finalized_hash:
            return self._tip_header
        return self._blocks[block_hash].header

    def _unfinalized_chain(self, block_hash: bytes) -> tuple[Block, ...] | None:
        """The known blocks from just above the finalized tip up to ``block_hash``, oldest first.

        Empty when ``block_hash`` is the tip; None when a link is missing or the block
        does not descend from the tip.
        """
        chain: list[Block] = []
        cursor = block_hash
        while cursor != self.finalized_hash:
            block = self._blocks.get(cursor)
            if block is None or block.header.height <= self.finalized_height:
                return None
            chain.append(block)
            cursor = block.header.parent
        chain.reverse()
        return tuple(chain)

    def _edge(self, block_hash: bytes) -> CompactRange | None:
        """The log's compact range after ``block_hash``, computing (and checking) unvalidated links."""
        if block_hash == self.finalized_hash:
            return self._tip_log
        if block_hash in self._edges:
            return self._edges[block_hash]
        chain = self._unfinalized_chain(block_hash)
        if chain is None:
            return None
        parent, edge = self._tip_header, self._tip_log
        for block in chain:
            known = self._edges.get(block.hash)
            if known is None:
                kept: list[bytes] = []
                try:
                    known = check_extension(
                        self.genesis, parent, edge, block, block_roots_max=self.config.block_roots_max, subtrees=kept
                    )
                except InvalidBlock:
                    self._invalid.add(block.hash)
                    return None
                self._edges[block.hash] = known
                self._subtrees[block.hash] = tuple(kept)
            parent, edge = block.header, known
        return edge

    def _choose_parent(self, view: int) -> bytes | None:
        """Highest notarized block below ``view`` with every view in between nullified (Simplex's chain rule)."""
        notarized = self._certificates[VoteKind.NOTARIZE]
        nullified = self._certificates[VoteKind.NULLIFY]
        for earlier in range(view - 1, self.finalized_view, -1):
            cert = notarized.get(earlier)
            if cert is not None and cert.block_hash in self._blocks:
                return cert.block_hash
            if earlier not in nullified:
                return None
        return self.finalized_hash

    def _parent_is_justified(self, block: Block) -> bool:
        """The parent is the finalized tip or notarized, and every view between is nullified."""
        parent_hash = block.header.parent
        if parent_hash == self.finalized_hash:
            parent_view = self.finalized_view
        else:
            parent = self._blocks.get(parent_hash)
            notarization = None if parent is None else self._certificates[VoteKind.NOTARIZE].get(parent.header.view)
            if notarization is None or notarization.block_hash != parent_hash:
                return False
            parent_view = parent.header.view
        nullified = self._certificates[VoteKind.NULLIFY]
        return all(between in nullified for between in range(parent_view + 1, block.header.view))

    def _check_candidate(self, block: Block, out: list[Action], *, built: BuiltProposal | None = None,
                         split: list[bytes] | None = None) -> CompactRange | None:
        """Every pure rule for a block to vote on; the log edge after it, or None (counted).
        ``built``: our own proposal's build (check_extension takes its hashes); ``split``
        receives the roots split (check_extension's, handed on in CheckBlock)."""
        if not self._parent_is_justified(block):
            self.counters["waiting_for_parent"] += 1
            return None
        parent_edge = self._edge(block.header.parent)
        if parent_edge is None:
            self.counters["waiting_for_parent"] += 1
            return None
        if block.header.timestamp_ms > self._now_ms + self.config.clock_skew_ms:
            self._invalid.add(block.hash)
            self.counters["invalid_block_timestamp_ahead"] += 1
            return None
        kept: list[bytes] = []
        try:
            edge = check_extension(
                self.genesis,
                self._header(block.header.parent),
                parent_edge,
                block,
                block_roots_max=self.config.block_roots_max,
                subtrees=kept,
                built=built,
                split=split,
            )
        except InvalidBlock as error:
            self._invalid.add(block.hash)
            self.counters[f"invalid_block_{error.reason}"] += 1
            return None
        self._subtrees[block.hash] = tuple(kept)
        return edge

    def _broadcast_justification(self, block: Block, out: list[Action]) -> None:
        """After nullified views, send what makes our proposal votable by a validator that missed it.

        That is the unfinalized ancestors (each with its notarization, so the receiver can
        check it is the certified block) and the nullifications of the skipped views. A
        restarted or partitioned validator would otherwise lack them and could not vote,
        and Simplex only advances with 2f+1 voters. In the common case (parent notarized
        in the previous view) nothing extra is sent.
        """
        parent_view = self.finalized_view
        if block.header.parent != self.finalized_hash:
            parent_view = self._blocks[block.header.parent].header.view
        if block.header.view - parent_view <= 1:
            return
        notarized = self._certificates[VoteKind.NOTARIZE]
        for ancestor in self._unfinalized_chain(block.header.parent) or ():
            cert = notarized.get(ancestor.header.view)
            if cert is not None and cert.block_hash == ancestor.hash:
                out.append(Broadcast(CertificateMessage(certificate=cert, block=ancestor)))
        for between in range(parent_view + 1, block.header.view):
            out.append(Broadcast(CertificateMessage(certificate=self._certificates[VoteKind.NULLIFY][between])))

    # ------------------------------------------------------------------ signing

    def _sign(self, kind: VoteKind, view: int, block_hash: bytes) -> Vote:
        assert self.signer is not None, "an observer core never signs"
        signature = self.signer.sign(vote_message(self.validators.chain_id, kind, view, block_hash))
        return Vote(kind=kind, view=view, block_hash=block_hash, signer=self.signer.index, signature=signature)

    def _sign_notarize(self, block_hash: bytes, out: list[Action]) -> Vote:
        """Persist the notarize vote, then sign it: the Persist precedes every use of the vote."""
        self.safety = self.safety.with_notarize(block_hash)
        out.append(Persist(self.safety))
        return self._sign(VoteKind.NOTARIZE, self.view, block_hash)

    # ------------------------------------------------------------------ memory bounds

    def _prune(self) -> None:
        floor = self._window_floor()
        for view in [v for v in self._votes if v < floor]:
            del self._votes[view]
        for kind in VoteKind:
            certificates = self._certificates[kind]
            for view in [v for v in certificates if v < floor]:
                del certificates[view]
        for view in [v for v in self._proposals if v < floor]:
            del self._proposals[view]
        self._evidence_keys = {key for key in self._evidence_keys if key[2] >= floor}
        blocks = self._blocks
        finalized_height = self.finalized_height
        kept = {
            block_hash
            for block_hash, block in blocks.items()
            if block.header.view >= floor and block.header.height > finalized_height
        }
        # A notarized block keeps its whole unfinalized chain, however old: finalizing it
        # commits every ancestor, which must still be here. Only notarized chains are
        # kept past the window (a Byzantine leader's private fork is not), and they grow
        # by one block per notarized view, only while finalization is starved.
        notarized = [cert.block_hash for cert in self._certificates[VoteKind.NOTARIZE].values()]
        if self.safety.lock is not None:
            notarized.append(self.safety.lock.block_hash)
        walked: set[bytes] = set()
        for block_hash in notarized:
            cursor: bytes | None = block_hash
            while cursor is not None and cursor not in walked:
                ancestor = blocks.get(cursor)
                if ancestor is None or ancestor.header.height <= finalized_height:
                    break
                walked.add(cursor)
                cursor = ancestor.header.parent
        kept |= walked
        stale = [block_hash for block_hash in blocks if block_hash not in kept]
        for block_hash in stale:
            del self._blocks[block_hash]
            self._edges.pop(block_hash, None)
            self._subtrees.pop(block_hash, None)
            self._invalid.discard(block_hash)
            self._checks_passed.discard(block_hash)
            self._checks_requested.discard(block_hash)
        for view in [v for v, block_hash in self._proposals.items() if block_hash not in self._blocks]:
            del self._proposals[view]
