"""A back-to-back network of cores (no sockets, no simulator), and the behaviour it shows.

``Net`` delivers every message immediately, FIFO, through its wire encoding, answers
RequestProposal/CheckBlock at once, and fires the earliest timer only when nothing
else is pending. Other consensus test modules import it.
"""

from __future__ import annotations

import hashlib
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from proof.chain import ZERO_HASH, Certificate, FinalizationProof, Genesis, VoteKind, verify_finalization, vote_message
from proof.compact import CompactRange

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
from consensus.block import Block, build_block
from consensus.catchup import build_response
from consensus.core import Core, CoreConfig, FinalizedTip
from consensus.crypto import MLDSASigner, MLDSAVerifier, Signer, Verifier, sim_validators
from proof.mldsa import SigningKey
from consensus.events import BlockChecked, Event, MessageReceived, ProposalReady, Start, TimerFired
from consensus.messages import CatchUpRequest, Message, Proposal, Vote, decode_message
from consensus.safety import SafetyState

ROOTS_PER_BLOCK = 3


def make_genesis(keys: Sequence[bytes], name: str = "pantheon-test") -> Genesis:
    return Genesis(
        chain_name=name,
        validators=tuple(keys),
        created_at_ms=0,
        anchor_every_blocks=10,
        anchor_every_ms=60_000,
        anchor_final_depth=6,
    )


def fresh_roots(seed: bytes, count: int = ROOTS_PER_BLOCK) -> bytes:
    return b"".join(hashlib.sha256(seed + i.to_bytes(4, "big")).digest() for i in range(count))


@dataclass
class Node:
    core: Core
    disk: SafetyState | None = None
    timer: tuple[int, int] | None = None
    finalized: list[Finalized] = field(default_factory=list)
    evidence: list[Evidence] = field(default_factory=list)
    actions: list[Action] = field(default_factory=list)
    kept_blocks: list[Block] = field(default_factory=list)
    up: bool = True


class Net:
    """n cores wired back to back; messages go through encode/decode like on a wire."""

    def __init__(
        self,
        n: int = 4,
        *,
        config: CoreConfig = CoreConfig(),
        salt: bytes = b"",
        signing_keys: Sequence[SigningKey] | None = None,
    ) -> None:
        """Simulated signatures, or real ML-DSA-65 ones when ``signing_keys`` are given."""
        if signing_keys is None:
            signers, verifier, keys = sim_validators(n, salt)
            self.genesis = make_genesis(keys)
            self.signers: list[Signer] = list(signers)
            self.verifier: Verifier = verifier
        else:
            self.genesis = make_genesis([key.public_key for key in signing_keys])
            self.signers = [MLDSASigner(key, index) for index, key in enumerate(signing_keys)]
            self.verifier = MLDSAVerifier(self.genesis)
        self.config = config
        self.nodes = [
            Node(Core(genesis=self.genesis, signer=signer, verifier=self.verifier, config=config)) for signer in self.signers
        ]
        self.queue: deque[tuple[int, Event]] = deque()
        self.now_ms = 0
        self.blocks_built = 0
        self.drop: Callable[[int, int, Message], bool] = lambda sender, to, message: False

    def start(self) -> None:
        for index in range(len(self.nodes)):
            self.queue.append((index, Start()))

    def feed(self, index: int, event: Event) -> list[Action]:
        node = self.nodes[index]
        actions = node.core.handle(event, self.now_ms)
        node.actions.extend(actions)
        self._apply(index, actions)
        return actions

    def _apply(self, index: int, actions: list[Action]) -> None:
        node = self.nodes[index]
        for action in actions:
            if isinstance(action, Persist):
                node.disk = action.state
            elif isinstance(action, Send):
                self._post(index, action.to, action.message)
            elif isinstance(action, Broadcast):
                for to in range(len(self.nodes)):
                    if to != index:
                        self._post(index, to, action.message)
            elif isinstance(action, SetTimer):
                node.timer = (action.view, self.now_ms + action.delay_ms)
            elif isinstance(action, RequestProposal):
                self.blocks_built += 1
                block = build_block(
                    genesis=self.genesis,
                    view=action.view,
                    parent=action.parent,
                    log=action.log,
                    roots=fresh_roots(b"block-%d" % self.blocks_built),
                    timestamp_ms=self.now_ms,
                )
                node.kept_blocks.append(block)
                self.queue.append((index, ProposalReady(action.view, block)))
            elif isinstance(action, CheckBlock):
                node.kept_blocks.append(action.block)
                self.queue.append((index, BlockChecked(action.block.hash, True)))
            elif isinstance(action, Finalized):
                node.finalized.append(action)
            elif isinstance(action, Evidence):
                node.evidence.append(action)

    def _post(self, sender: int, to: int, message: Message) -> None:
        if self.drop(sender, to, message):
            return
        self.queue.append((to, MessageReceived(sender, decode_message(message.encode()))))

    def step(self) -> bool:
        """Deliver one pending event, else fire the earliest timer; False when nothing is left."""
        while self.queue:
            index, event = self.queue.popleft()
            if not self.nodes[index].up:
                continue
            if isinstance(event, MessageReceived) and isinstance(event.message, CatchUpRequest):
                self._serve_catch_up(index, event.sender, event.message)
            else:
                self.feed(index, event)
            return True
        armed = [(node.timer[1], i) for i, node in enumerate(self.nodes) if node.up and node.timer is not None]
        if not armed:
            return False
        due_ms, index = min(armed)
        view, _ = self.nodes[index].timer  # type: ignore[misc]
        self.nodes[index].timer = None
        self.now_ms = max(self.now_ms, due_ms)
        self.feed(index, TimerFired(view))
        return True

    def _serve_catch_up(self, index: int, to: int, request: CatchUpRequest) -> None:
        """The driver's job: answer from the node's finalized blocks."""
        finalized = self.nodes[index].finalized

        def read(height: int) -> tuple[Block, FinalizationProof] | None:
            if height > len(finalized):
                return None
            item = finalized[height - 1]
            return item.block, FinalizationProof(headers=item.descendants, certificate=item.certificate)

        self._post(index, to, build_response(request, read))

    def run_until(self, done: Callable[[], bool], *, steps_max: int = 20_000) -> None:
        for _ in range(steps_max):
            if done():
                return
            if not self.step():
                break
        assert done(), "the network stopped before reaching the goal"

    def heights(self) -> list[int]:
        return [node.core.finalized_height for node in self.nodes]

    def restart(self, index: int) -> None:
        """Replace a node's core by one built from its persisted state and finalized tip."""
        old = self.nodes[index]
        tip = old.finalized[-1] if old.finalized else None
        log = CompactRange()
        if tip is not None:
            for item in old.finalized:
                log.extend_roots(item.block.roots)
        core = Core(
            genesis=self.genesis,
            signer=self.signers[index],
            verifier=self.verifier,
            safety=old.disk,
            finalized_tip=FinalizedTip(header=None if tip is None else tip.block.header, log=log),
            config=self.config,
            blocks=old.kept_blocks,
        )
        self.nodes[index] = Node(core=core, disk=old.disk, finalized=list(old.finalized), kept_blocks=old.kept_blocks)
        self.queue.append((index, Start()))


def sim_check(genesis: Genesis, verifier: Verifier) -> Callable[[bytes, bytes, bytes], bool]:
    """proof.chain's verify_sig for SimSigner signatures (public key -> index by position)."""
    index_of = {key: index for index, key in enumerate(genesis.validators)}
    return lambda key, message, signature: verifier.verify(index_of[key], message, signature)


def test_four_cores_finalize_the_same_blocks() -> None:
    net = Net()
    net.start()
    net.run_until(lambda: min(net.heights()) >= 10)
    chains = [[item.block.hash for item in node.finalized][:10] for node in net.nodes]
    assert all(chain == chains[0] for chain in chains)
    assert [item.block.header.height for item in net.nodes[0].finalized[:10]] == list(range(1, 11))


def test_every_finalized_block_carries_a_proof_that_verifies_against_the_genesis() -> None:
    net = Net()
    net.start()
    net.run_until(lambda: min(net.heights()) >= 5)
    check = sim_check(net.genesis, net.verifier)
    for node in net.nodes:
        for item in node.finalized:
            verify_finalization(net.genesis, item.block.header, item.proof, verify_sig=check)


def test_honest_network_reports_no_evidence_and_makes_progress_without_timeouts() -> None:
    net = Net()
    net.start()
    net.run_until(lambda: min(net.heights()) >= 8)
    assert all(not node.evidence for node in net.nodes)
    assert net.now_ms == 0


def test_finalized_logs_agree_byte_for_byte() -> None:
    net = Net()
    net.start()
    net.run_until(lambda: min(net.heights()) >= 6)
    logs = [b"".join(item.block.roots for item in node.finalized[:6]) for node in net.nodes]
    assert all(log == logs[0] for log in logs)


class Cast:
    """Signed messages from any validator of a Net-style genesis, for single-core tests."""

    def __init__(self, n: int = 4, salt: bytes = b"") -> None:
        self.signers, self.verifier, keys = sim_validators(n, salt)
        self.genesis = make_genesis(keys)
        self.blocks_built = 0
        self._logs: dict[bytes, CompactRange] = {}

    def core(self, index: int = 3, **kwargs: object) -> Core:
        return Core(genesis=self.genesis, signer=self.signers[index], verifier=self.verifier, **kwargs)  # type: ignore[arg-type]

    def vote(self, signer: int, kind: VoteKind, view: int, block_hash: bytes = ZERO_HASH) -> Vote:
        message = vote_message(self.genesis.hash, kind, view, block_hash)
        return Vote(kind=kind, view=view, block_hash=block_hash, signer=signer, signature=self.signers[signer].sign(message))

    def certificate(self, kind: VoteKind, view: int, block_hash: bytes = ZERO_HASH, signers: Sequence[int] = (0, 1, 2)) -> Certificate:
        message = vote_message(self.genesis.hash, kind, view, block_hash)
        return Certificate(
            kind=kind,
            view=view,
            block_hash=block_hash,
            signatures=tuple((index, self.signers[index].sign(message)) for index in sorted(signers)),
        )

    def block(
        self,
        view: int,
        parent: Block | None = None,
        *,
        log: CompactRange | None = None,
        roots: bytes | None = None,
        timestamp_ms: int | None = None,
    ) -> Block:
        """A valid block of ``view`` on ``parent`` (``log`` = the log at the parent; default: parent's chain is the log)."""
        self.blocks_built += 1
        if log is None:
            log = CompactRange()
            if parent is not None:
                log = self.log_after(parent)
        block = build_block(
            genesis=self.genesis,
            view=view,
            parent=None if parent is None else parent.header,
            log=log,
            roots=fresh_roots(b"cast-%d" % self.blocks_built) if roots is None else roots,
            timestamp_ms=(view + 1) * 10 if timestamp_ms is None else timestamp_ms,
        )
        self._logs[block.hash] = self._log_after_block(log, block)
        return block

    @staticmethod
    def _log_after_block(log: CompactRange, block: Block) -> CompactRange:
        edge = log.copy()
        edge.extend_roots(block.roots)
        return edge

    def log_after(self, block: Block) -> CompactRange:
        """The log's compact range after ``block`` (a block this Cast built)."""
        return self._logs[block.hash].copy()

    def proposal(self, block: Block, signer: int | None = None) -> Proposal:
        leader = block.header.view % self.genesis.n if signer is None else signer
        return Proposal(block=block, vote=self.vote(leader, VoteKind.NOTARIZE, block.header.view, block.hash))


def received(sender: int, message: Message) -> MessageReceived:
    return MessageReceived(sender, message)


def votes_in(actions: Sequence[Action]) -> list[Vote]:
    """Votes this core sent: broadcast votes and the leader vote inside its proposals."""
    found: list[Vote] = []
    for action in actions:
        message = action.message if isinstance(action, (Broadcast, Send)) else None
        if isinstance(message, Vote):
            found.append(message)
        elif isinstance(message, Proposal):
            found.append(message.vote)
    return found


def of_type(actions: Sequence[Action], kind: type) -> list:
    return [action for action in actions if isinstance(action, kind)]


def covered(state: SafetyState, vote: Vote) -> bool:
    """Whether a persisted safety state already records (and so protects) ``vote``."""
    if vote.kind == VoteKind.NOTARIZE:
        return state.view > vote.view or (state.view == vote.view and state.notarize == vote.block_hash)
    if vote.kind == VoteKind.NULLIFY:
        return (state.view == vote.view and state.nullify) or (state.view > vote.view and state.may_nullify(vote.view))
    return vote.view in state.finalize_votes
