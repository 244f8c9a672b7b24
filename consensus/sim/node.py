"""A simulated honest validator: a Core, its "disk", and the driver loop between them.

The driver does what the real node runtime does, with the simulator's clock, network
and disk in place of trio, TCP and LevelDB:

- executes a Core's actions strictly in list order; ``Persist`` completes (the state
  is encoded onto the disk) before any later action runs, so no vote leaves the node
  before the state that makes it safe is stored;
- answers ``RequestProposal`` from its mempool and ``CheckBlock`` against its own
  finalized-root index and the pending ancestors, both as fresh events (a real
  driver answers them asynchronously too);
- answers ``CatchUpRequest`` from its finalized blocks, as the contract assigns to
  the driver;
- decodes every received byte string with the strict decoder and drops (and counts)
  what does not decode.

A crash loses everything but the disk: the persisted SafetyState bytes, the
finalized blocks with their certificates, and the unfinalized blocks this node
checked as valid or proposed. Those are kept *before* the BlockChecked or
ProposalReady that lets the core vote for them (as node.runtime does in LevelDB) and
handed back to the restarted core: a notarize vote commits the validator to a block,
and if every honest voter of a notarized block lost it in a crash, no child could
ever be built on it (Deviation 8; sim seed 437 stalled without). Pending timers and
answers of the old incarnation are ignored by ``incarnation`` number.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

from consensus.actions import (
    Broadcast,
    CheckBlock,
    Evidence,
    Finalized,
    Persist,
    RequestProposal,
    Send,
    SetTimer,
)
from consensus.block import ROOT_SIZE, Block, build_block
from consensus.catchup import ServeLimiter
from consensus.core import Core, CoreConfig, FinalizedTip
from consensus.crypto import Signer, Verifier
from consensus.events import BlockChecked, Event, MessageReceived, ProposalReady, Start, TimerFired
from consensus.messages import MESSAGE_SIZE_MAX, CatchUpRequest, Message, Proposal, Vote
from consensus.safety import SafetyState
from consensus.sim.mempool import RootStream
from proof.chain import BlockHeader, Certificate, FinalizationProof, Genesis
from proof.compact import CompactRange
from proof.errors import DecodeError

# Virtual time a driver takes to answer RequestProposal / CheckBlock.
PROPOSAL_BUILD_MS = 1
BLOCK_CHECK_MS = 0


class Host(Protocol):
    """What a simulated node needs from the simulator around it."""

    def transmit(self, src: int, dst: int, data: bytes) -> None: ...

    def timer(self, node: int, incarnation: int, token: int, view: int, delay_ms: int) -> None: ...

    def local(self, node: int, incarnation: int, event: Event, delay_ms: int) -> None: ...

    def finalized(self, node: int, action: Finalized) -> None: ...

    def vote_sent(self, node: int, vote: Vote, persisted: SafetyState | None) -> None: ...

    def evidence(self, node: int, action: Evidence) -> None: ...

    def mark_invalid(self, block_hash: bytes) -> None: ...

    def oversize(self, node: int, size_bytes: int) -> None:
        """``node`` tried to send a message larger than one frame (a bug for an honest node)."""
        ...

    def decode(self, data: bytes) -> Message:
        """``decode_message(data)`` (the host may memoize it: decoding is a pure function)."""
        ...


@dataclass
class Disk:
    """What survives a crash: the safety state, the finalized chain, the blocks voted on."""

    safety: bytes | None = None
    safety_state: SafetyState | None = None  # the decoded form of ``safety``, for checkers
    blocks: list[tuple[Block, Certificate]] = field(default_factory=list)
    descendants: list[tuple[BlockHeader, ...]] = field(default_factory=list)
    roots: set[bytes] = field(default_factory=set)
    persists: int = 0
    unfinalized: dict[bytes, Block] = field(default_factory=dict)
    _log: CompactRange = field(default_factory=CompactRange)
    _log_height: int = 0

    @property
    def height(self) -> int:
        return len(self.blocks)

    @property
    def log(self) -> CompactRange:
        """The log's compact range at the tip, brought up to date only when asked (at boot).

        The core already hashed every finalized root to check its block; hashing them
        again per commit would double a run's cost with full-size blocks.
        """
        for block, _ in self.blocks[self._log_height :]:
            self._log.extend_roots(block.roots)
        self._log_height = len(self.blocks)
        return self._log

    def keep(self, block: Block) -> None:
        """Store a block this node is about to vote for or propose, until it is finalized.

        Nothing is dropped before finalization: a notarized chain that finalization
        starved for longer than the core's view window is still one chain, and its
        finalization needs every block of it (as node.runtime keeps them in LevelDB).
        """
        if block.header.height <= self.height or block.hash in self.unfinalized:
            return
        self.unfinalized[block.hash] = block

    def kept(self) -> list[Block]:
        """The kept blocks above the finalized tip, lowest first (what ``Core(blocks=)`` takes)."""
        return sorted(self.unfinalized.values(), key=lambda block: (block.header.height, block.header.view))

    def read_finalized(self, height: int) -> tuple[Block, FinalizationProof] | None:
        if 1 <= height <= len(self.blocks):
            block, certificate = self.blocks[height - 1]
            return block, FinalizationProof(headers=self.descendants[height - 1], certificate=certificate)
        return None

    def commit(self, block: Block, certificate: Certificate, descendants: tuple[BlockHeader, ...] = ()) -> None:
        self.blocks.append((block, certificate))
        self.descendants.append(descendants)
        roots = block.roots
        self.roots.update(roots[i : i + ROOT_SIZE] for i in range(0, len(roots), ROOT_SIZE))
        height = self.height
        for settled in [h for h, kept in self.unfinalized.items() if kept.header.height <= height]:
            del self.unfinalized[settled]

    def tip(self) -> FinalizedTip:
        header = self.blocks[-1][0].header if self.blocks else None
        return FinalizedTip(header=header, log=self.log.copy())


@dataclass
class NodeCounters:
    """What a node saw; tests read them to see faults act and get caught."""

    received: int = 0
    decode_rejected: int = 0
    catchup_served: int = 0
    catchup_refused: int = 0
    oversize_unsent: int = 0
    proposals_built: int = 0
    blocks_checked_invalid: int = 0
    evidence: int = 0
    restarts: int = 0


class SimNode:
    """One validator as the simulator drives it (honest unless a subclass says otherwise)."""

    def __init__(
        self,
        *,
        index: int,
        genesis: Genesis,
        signer: Signer,
        verifier: Verifier,
        config: CoreConfig,
        mempool: RootStream,
        host: Host,
    ) -> None:
        self.index = index
        self.genesis = genesis
        self.signer = signer
        self.verifier = verifier
        self.config = config
        self.mempool = mempool
        self.host = host
        self.disk = Disk()
        self.counters = NodeCounters()
        self.core: Core | None = None
        self.incarnation = 0
        self.timer_token = 0
        self.peers = tuple(i for i in range(genesis.n) if i != index)
        self.serve_limiter = ServeLimiter()

    @property
    def up(self) -> bool:
        return self.core is not None

    # -- lifecycle ----------------------------------------------------------------------

    def boot(self, now_ms: int, *, restored: bool = False) -> None:
        """Start (or restart) from the disk alone; ``restored``: the disk may be an old backup."""
        safety = SafetyState.decode(self.disk.safety) if self.disk.safety is not None else None
        self.core = Core(
            genesis=self.genesis,
            signer=self.signer,
            verifier=self.verifier,
            safety=safety,
            finalized_tip=self.disk.tip(),
            config=self.config,
            blocks=self.disk.kept(),
            restored=restored,
        )
        self.handle(Start(), now_ms)

    def crash(self) -> None:
        """Power loss: memory, timers and in-flight answers are gone; the disk stays."""
        self.core = None
        self.incarnation += 1
        self.counters.restarts += 1

    # -- events -------------------------------------------------------------------------

    def receive(self, src: int, data: bytes, now_ms: int) -> None:
        """Bytes from the authenticated peer ``src``."""
        if self.core is None:
            return
        self.counters.received += 1
        try:
            message = self.host.decode(data)
        except DecodeError:
            self.counters.decode_rejected += 1
            return
        if type(message) is CatchUpRequest:
            self.serve_catch_up(src, message, now_ms)
            return
        self.handle(MessageReceived(src, message), now_ms)

    def serve_catch_up(self, src: int, request: CatchUpRequest, now_ms: int) -> None:
        """The driver's job, as node.runtime does it: answer from the disk, rate-limited per peer."""
        data = self.serve_limiter.answer(src, request, self.disk.read_finalized, now_ms)
        if data is None:
            self.counters.catchup_refused += 1
            return
        self.counters.catchup_served += 1
        self.transmit_checked(src, data)

    def transmit_checked(self, to: int, data: bytes) -> None:
        """Send what one p2p frame can carry; the runtime's PeerManager refuses anything larger."""
        if len(data) > MESSAGE_SIZE_MAX:
            self.counters.oversize_unsent += 1
            self.host.oversize(self.index, len(data))
            return
        self.host.transmit(self.index, to, data)

    def timer_fired(self, incarnation: int, token: int, view: int, now_ms: int) -> None:
        if self.core is None or incarnation != self.incarnation or token != self.timer_token:
            return
        self.handle(TimerFired(view), now_ms)

    def local(self, incarnation: int, event: Event, now_ms: int) -> None:
        if self.core is None or incarnation != self.incarnation:
            return
        self.handle(event, now_ms)

    def handle(self, event: Event, now_ms: int) -> None:
        assert self.core is not None
        self.execute(self.core.handle(event, now_ms), now_ms)

    # -- actions, strictly in order -----------------------------------------------------

    def execute(self, actions: list[Any], now_ms: int) -> None:
        for action in actions:
            kind = type(action)
            if kind is Persist:
                self.persist(action)
            elif kind is Broadcast:
                self.broadcast(action.message, now_ms)
            elif kind is Send:
                self.send(action.to, action.message, now_ms)
            elif kind is SetTimer:
                self.timer_token += 1
                self.host.timer(self.index, self.incarnation, self.timer_token, action.view, action.delay_ms)
            elif kind is RequestProposal:
                self.propose(action, now_ms)
            elif kind is CheckBlock:
                self.check_block(action)
            elif kind is Finalized:
                self.finalize(action)
            elif kind is Evidence:
                self.counters.evidence += 1
                self.host.evidence(self.index, action)
            else:
                raise TypeError(f"node {self.index}: core emitted an unknown action {action!r}")

    def persist(self, action: Persist) -> None:
        self.disk.safety = action.state.encode()
        self.disk.safety_state = action.state
        self.disk.persists += 1

    def broadcast(self, message: Message, now_ms: int) -> None:
        self._note_votes(message)
        data = message.encode()
        for peer in self.peers:
            self.transmit_checked(peer, data)

    def send(self, to: int, message: Message, now_ms: int) -> None:
        self._note_votes(message)
        self.transmit_checked(to, message.encode())

    def _note_votes(self, message: Message) -> None:
        kind = type(message)
        if kind is Vote:
            self.host.vote_sent(self.index, message, self.disk.safety_state)
        elif kind is Proposal:
            self.host.vote_sent(self.index, message.vote, self.disk.safety_state)

    def propose(self, action: RequestProposal, now_ms: int) -> None:
        self.counters.proposals_built += 1
        block = self.build(action, self.mempool.next_batch(), now_ms)
        self.disk.keep(block)
        self.host.local(self.index, self.incarnation, ProposalReady(action.view, block), PROPOSAL_BUILD_MS)

    def build(self, action: RequestProposal, roots: bytes, now_ms: int) -> Block:
        return build_block(
            genesis=self.genesis,
            view=action.view,
            parent=action.parent,
            log=action.log,
            roots=roots,
            timestamp_ms=now_ms,
        )

    def check_block(self, action: CheckBlock) -> None:
        """The IO rule: no root already in this node's log or in a pending ancestor."""
        block = action.block
        roots = block.roots
        seen = self.disk.roots
        pending: set[bytes] = set()
        for ancestor in action.pending:
            ancestor_roots = ancestor.roots
            pending.update(ancestor_roots[i : i + ROOT_SIZE] for i in range(0, len(ancestor_roots), ROOT_SIZE))
        valid = not any(
            roots[i : i + ROOT_SIZE] in seen or roots[i : i + ROOT_SIZE] in pending
            for i in range(0, len(roots), ROOT_SIZE)
        )
        if valid:
            self.disk.keep(block)
        else:
            self.counters.blocks_checked_invalid += 1
        self.host.local(self.index, self.incarnation, BlockChecked(block.hash, valid), BLOCK_CHECK_MS)

    def finalize(self, action: Finalized) -> None:
        self.disk.commit(action.block, action.certificate, action.descendants)
        self.host.finalized(self.index, action)
