"""The validator process: one trio nursery wiring storage, p2p, consensus and the HTTP API.

Theory of operation. Every input the consensus core reacts to (a peer's message, a
view timer, a block this node built or checked) becomes an event on one bounded
channel, and one task feeds them to ``Core.handle`` in arrival order and executes the
returned actions *in order*: a ``Persist`` is written with a synced LevelDB batch
before any later action of the same list runs, so a vote never leaves the node before
the safety state that forbids its conflicting twin is on disk.

A finalized block is applied in one atomic batch: its header and finalization proof,
and the log append of its roots. After a crash the node therefore restarts with either
all of a block or none of it; the mempool records of submissions whose roots are all
logged are deleted in the next such batch, or at start (node.mempool). Blocks
are applied in order by their own task, so that consensus goes on with the next block
meanwhile (applying 10,000 roots took 200 ms of the consensus loop under load); until a
block is applied, its roots count as an unfinalized ancestor's for every block checked
or built (Node._with_applying).

Submitted roots are gossiped to every peer, so whichever validator leads next can
propose them, and stored: the receipt is sent only once their synced batch is written
(one batch for all the submissions that arrive together: node.group_commit).

Tasks: p2p manager, inbound pump, consensus loop, block applier, submission group
commit, view timer, block builder, HTTP server, and a signal watcher. Any task that
fails cancels the nursery: the node stops as a whole and says why, it never keeps
running with a dead part.
"""

from __future__ import annotations

import collections
import itertools
import logging
import math
import signal
import time
from collections.abc import Iterable, Sequence
from typing import Any

import trio

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
from consensus.block import Block, build_proposal
from consensus.catchup import ServeLimiter
from consensus.core import Core, CoreConfig, FinalizedTip
from consensus.crypto import MLDSASigner, MLDSAVerifier
from consensus.events import BlockChecked, Event, MessageReceived, ProposalReady, Start, TimerFired
from consensus.messages import (
    CatchUpRequest,
    CatchUpResponse,
    CertificateMessage,
    CompactProposal,
    Message,
    Proposal,
    SegmentsRequest,
    SegmentsResponse,
    Vote,
    decode_message,
)
from consensus.safety import SafetyState
from anchor.rpc import BitcoindError
from node.anchoring import Anchorer, AnchorRefInvalid
from node.api import build_app
from node.interface import Overloaded, Receipt, UniformReceipts
from node.byte_budget import ByteBudget
from node.commands import read_genesis
from node.config import Config
from node.batch_pool import BatchPool
from node.gossip import GossipAdmission
from node.group_commit import GroupCommit
from node.http_server import HTTPSettings, serve_api
from node.keyfiles import read_key_file
from node.logs import event
from node.mempool import Mempool, split_roots
from node.metrics import NodeMetrics
from node.proposal_relay import ProposalRelay
from node.tokens import TokenTable, load_tokens
from p2p.frames import MAX_FRAME_BYTES, Channel
from p2p.handshake import LocalIdentity
from p2p.peers import PeerAddress, PeerManager, Received, TransportSettings
from proof.chain import AnchorRef, FinalizationProof
from proof.errors import DecodeError, PantheonError
from storage.anchor_store import AnchorStore
from storage.chain_store import ChainStore
from storage.db import Store
from storage.logged_filter import LoggedRoots
from storage.merkle_log import APPEND_ROOTS_MAX, MerkleLog

log = logging.getLogger("pantheon.node")

EVENTS_MAX = 4096
APPLY_QUEUE_BLOCKS = 16
"""Finalized blocks waiting to be applied before the consensus loop waits for the applier."""
APPLY_RUN_BLOCKS_MAX = 16
APPLY_RUN_ROOTS_MAX = APPEND_ROOTS_MAX
"""Most blocks, and roots, one batch applies (one log append: about 10 MB of records)."""
PEER_EVENTS_BYTES_MAX = 64 * 1024 * 1024
"""Bytes of decoded peer messages waiting for the consensus loop (node.byte_budget)."""
# How often a waiting leader looks for confirmed anchors to propose (roots wake it at once).
BUILDER_POLL_S = 1.0
GOSSIP_ROOTS_PER_FRAME_MAX = (MAX_FRAME_BYTES - 1024) // 32
SUBMIT_IN_FLIGHT_MAX = 64
ROOT_SETS_MAX = 32
"""Unfinalized (or not yet applied) blocks whose root sets are kept (Node._root_set), about
1 MB each for a full block; more are recomputed when asked for."""


class NodeError(PantheonError):
    """The node cannot start as configured."""


def now_ms() -> int:
    return int(time.time() * 1000)


class Node:
    """One validator. ``await nursery.start(node.run)`` returns the HTTP API's bound URL."""

    def __init__(self, config: Config, *, restored: bool = False) -> None:
        """``restored``: the data directory may be older than the votes this validator sent
        (a restore from backup); it votes again only once its peers showed which views are
        safe (consensus.core.Core, ``restored``)."""
        self.config = config
        self.genesis = read_genesis(config.resolve(config.node.genesis_file))
        key = read_key_file(config.resolve(config.node.key_file))
        if key.public_key not in self.genesis.validators:
            raise NodeError(
                f"the key in {config.node.key_file} is not a validator of chain {self.genesis.hash.hex()[:16]}…; "
                "wrong key file or wrong genesis"
            )
        self.index = self.genesis.validators.index(key.public_key)
        self.name = f"validator-{self.index}"
        self.tokens: TokenTable = load_tokens(config.resolve(config.api.tokens_file))
        self.store = Store(config.resolve(config.node.data_dir))
        self.log = MerkleLog(self.store)
        self.chain = ChainStore(self.store)
        self.logged = LoggedRoots(self.log)
        self.mempool = Mempool(self.store, self.logged, roots_max=config.mempool.roots_max,
                               share_roots_max=config.mempool.share_roots_max)
        self.anchor_store = AnchorStore(self.store)
        self.anchorer: Anchorer | None = None
        if config.bitcoin.enabled:
            self.anchorer = Anchorer(
                genesis=self.genesis,
                index=self.index,
                config=config.bitcoin,
                resolve=config.resolve,
                anchors=self.anchor_store,
                chain=self.chain,
            )
        self.metrics = NodeMetrics()
        self.gossip = GossipAdmission(self.mempool, self.metrics, roots_per_s=config.p2p.gossip_roots_per_s,
                                      burst_roots=config.p2p.gossip_burst_roots,
                                      gossip_roots_max=config.mempool.gossip_roots_max)
        self.group_commit = GroupCommit(self.store, self.mempool, self._flushed)
        self.batches = BatchPool(bytes_max=config.mempool.roots_max * 32)
        """Gossip batches, for proposals by reference: at most a full mempool's worth of roots."""
        self.relay = ProposalRelay(self.batches, self.mempool.batch_of, self.metrics,
                                   roots_max=config.consensus.block_roots_max)
        self._serve_limiter = ServeLimiter()
        safety_raw = self.chain.load_safety()
        self._unfinalized: dict[bytes, int] = {}
        kept = []
        for encoded in self.chain.unfinalized():
            block = Block.decode(encoded)
            self._unfinalized[block.hash] = block.header.height
            if block.header.height > self.chain.tip_height:
                kept.append(block)
        self.core = Core(
            genesis=self.genesis,
            signer=MLDSASigner(key, self.index),
            verifier=MLDSAVerifier(self.genesis),
            safety=SafetyState.decode(safety_raw) if safety_raw else None,
            finalized_tip=FinalizedTip(header=self.chain.tip_header, log=self.log.compact_range()),
            config=CoreConfig(
                base_timeout_ms=config.consensus.timeout_base_ms,
                max_timeout_ms=config.consensus.timeout_max_ms,
                block_roots_max=config.consensus.block_roots_max,
            ),
            blocks=sorted(kept, key=lambda b: b.header.height),
            restored=restored,
        )
        if restored:
            event(log, logging.WARNING, "restored data directory: not voting until 2f+1 peers show which views are safe")
        peers = {int(index): PeerAddress.parse(address) for index, address in config.p2p.peers.items()}
        self.peers = PeerManager(
            LocalIdentity(chain_id=self.genesis.hash, index=self.index, signing_key=key),
            dict(enumerate(self.genesis.validators)),
            peers,
            TransportSettings(
                send_queue_frames_max=config.p2p.send_queue_frames_max,
                reconnect_max_ms=config.p2p.reconnect_max_ms,
            ),
            listen=PeerAddress.parse(config.p2p.listen),
        )
        self._events_send, self._events_recv = trio.open_memory_channel[Event](EVENTS_MAX)
        self._apply_send, self._apply_recv = trio.open_memory_channel[tuple[Block, Finalized]](APPLY_QUEUE_BLOCKS)
        self._applying: collections.deque[Block] = collections.deque()
        """Blocks the core finalized that are not yet applied, oldest first."""
        self._peer_events_budget = ByteBudget(PEER_EVENTS_BYTES_MAX)
        self._peer_event_sizes: collections.deque[int] = collections.deque()
        self._stop = trio.Event()
        self._timer_scope: trio.CancelScope | None = None
        self._builder_scope: trio.CancelScope | None = None
        self._mempool_changed = trio.Event()
        self._submits_in_flight = 0
        self._root_sets: collections.OrderedDict[bytes, tuple[frozenset[bytes], list[bytes]]] = collections.OrderedDict()
        """block hash -> its roots as a set and in order, the same bytes objects (ROOT_SETS_MAX blocks)."""
        self.api_url: str | None = None
        self.sync_metrics()

    # ---- lifecycle ----------------------------------------------------------------

    async def run(self, *, task_status: trio.TaskStatus[str] = trio.TASK_STATUS_IGNORED) -> None:
        event(log, logging.INFO, "starting", validator=self.index, chain=self.genesis.hash.hex()[:16],
              height=self.chain.tip_height, log_size=self.log.size, mempool=len(self.mempool))
        self.logged.start()
        try:
            async with trio.open_nursery() as nursery:
                self._nursery = nursery
                await nursery.start(self.peers.run)
                nursery.start_soon(self._pump_inbound)
                nursery.start_soon(self._consensus_loop)
                nursery.start_soon(self._apply_loop)
                nursery.start_soon(self.group_commit.run)
                if self.anchorer is not None:
                    nursery.start_soon(self._anchoring_loop, self.anchorer)
                self.api_url = await nursery.start(self._serve_http)
                await self._events_send.send(Start())
                event(log, logging.INFO, "ready", api=self.api_url, p2p_port=self.peers.listen_port)
                task_status.started(self.api_url)
                await self._stop.wait()
                event(log, logging.INFO, "stopping")
                self.peers.shutdown()
                nursery.cancel_scope.cancel()
        finally:
            self.logged.close()
            self.log.close()
            self.store.close()
            event(log, logging.INFO, "stopped", height=self.chain.tip_height, log_size=self.log.size)

    def stop(self) -> None:
        self._stop.set()

    async def _serve_http(self, *, task_status: trio.TaskStatus[str] = trio.TASK_STATUS_IGNORED) -> None:
        from node.service import NodeAPIService

        app = build_app(
            NodeAPIService(self),
            roots_per_request_max=self.config.api.roots_per_request_max,
            body_bytes_max=self.config.api.body_bytes_max,
        )
        settings = HTTPSettings.from_config(self.config)
        binds = await self._nursery.start(
            lambda task_status: serve_api(app, settings, shutdown_trigger=self._stop.wait, metrics=self.metrics,
                                      task_status=task_status)
        )
        task_status.started(binds[0] if binds else "")

    # ---- inbound -----------------------------------------------------------------

    async def _pump_inbound(self) -> None:
        async for received in self.peers.inbound:
            if received.channel is Channel.GOSSIP:
                await self._on_gossip(received)
                continue
            message = self._decode(received)
            peer = received.peer_index
            if isinstance(message, CatchUpRequest):
                self._serve_catch_up(peer, message)
            elif isinstance(message, (CompactProposal, SegmentsRequest, SegmentsResponse)):
                await self._on_relay(peer, message, len(received.payload))
            elif message is not None:
                await self._deliver(peer, message, len(received.payload))

    async def _deliver(self, peer: int, message: Message, size: int) -> None:
        """Hand a peer's message to the consensus loop, within the bytes budget of waiting ones."""
        await self._peer_events_budget.acquire(size)
        self._peer_event_sizes.append(size)
        await self._events_send.send(MessageReceived(peer, message))

    async def _on_relay(self, peer: int, message: CompactProposal | SegmentsRequest | SegmentsResponse,
                        size: int) -> None:
        """Proposals by reference (node.proposal_relay): rebuild, fetch what is missing, answer."""
        if isinstance(message, SegmentsRequest):
            answer = self.relay.answer(peer, message)
            if answer is None:
                self.metrics.messages_rejected.labels(reason="segments_unknown").inc()
            else:
                self._send_message(peer, answer)
            return
        if isinstance(message, CompactProposal):
            outcome = self.relay.incoming(peer, message)
            if isinstance(outcome, SegmentsRequest):
                self._send_message(peer, outcome)
                return
        else:
            outcome = self.relay.on_response(peer, message)
        if outcome is not None:
            await self._deliver(peer, outcome, size + len(outcome.block.roots))

    def _decode(self, received: Received) -> Message | None:
        try:
            return decode_message(received.payload)
        except DecodeError as exc:
            self.metrics.messages_rejected.labels(reason="malformed").inc()
            event(log, logging.WARNING, "dropped malformed message", peer=received.peer_index, error=str(exc)[:200])
            return None

    async def _on_gossip(self, received: Received) -> None:
        """Within the peer's gossip budget, a chunk at a time (node.gossip)."""
        number = self.batches.reserve()
        outcome = await self.gossip.admit(received.peer_index, received.payload, now_ms(), gossip_batch=number)
        if outcome.reason not in ("malformed", "rate"):
            self.batches.put(number, received.payload)
            for peer, proposal in self.relay.on_batch():
                await self._deliver(peer, proposal, len(proposal.block.roots))
        if outcome.new_roots:
            self.sync_metrics()
            self._mempool_changed.set()

    # ---- consensus ---------------------------------------------------------------

    async def _consensus_loop(self) -> None:
        async for ev in self._events_recv:
            recovering = self.core.recovering
            if isinstance(ev, TimerFired) and ev.view == self.core.view:
                self._view_timed_out(ev.view)
            actions = self.core.handle(ev, now_ms())
            if recovering and not self.core.recovering:
                event(log, logging.WARNING, "restored validator: peers showed the safe views, voting again",
                      view=self.core.view)
            if isinstance(ev, MessageReceived):
                await self._peer_events_budget.release(self._peer_event_sizes.popleft())
            await self._execute(actions)
            self.metrics.view.set(self.core.view)

    def _view_timed_out(self, view: int) -> None:
        """Count and log a view timeout with how far the view got here: on a loaded chain a
        timeout costs a whole timeout of latency, and the stage says where it stuck. An idle
        chain's views all time out without a proposal (its timeouts back off), so at debug."""
        stage = self.core.view_stage(view)
        self.metrics.view_timeouts.labels(stage=stage).inc()
        event(log, logging.DEBUG, "view timed out", view=view, leader=self.core.validators.leader(view), stage=stage,
              height=self.core.finalized_height, mempool_roots=len(self.mempool))

    async def _execute(self, actions: Iterable[Action]) -> None:
        for action in actions:
            if isinstance(action, Persist):
                await trio.to_thread.run_sync(self.chain.save_safety, action.state.encode())
            elif isinstance(action, Send):
                self._send_message(action.to, action.message)
            elif isinstance(action, Broadcast):
                message = action.message
                if isinstance(message, Proposal):
                    message = self.relay.outgoing(message)
                self._broadcast_message(message)
            elif isinstance(action, SetTimer):
                self._set_timer(action.view, action.delay_ms)
            elif isinstance(action, RequestProposal):
                self._start_builder(action)
            elif isinstance(action, CheckBlock):
                if action.split is not None:
                    self._keep_split(action.block, action.split)
                fault = self._block_fault(action.block, self._with_applying(action.pending))
                if fault is None and action.block.header.anchors:
                    self._nursery.start_soon(self._check_anchors, action.block)
                    continue
                if fault is None:
                    await self._keep_unfinalized(action.block)
                await self._events_send.send(BlockChecked(action.block.hash, fault is None, fault))
            elif isinstance(action, Finalized):
                self._applying.append(action.block)
                await self._apply_send.send((action.block, action))
            elif isinstance(action, Evidence):
                self.chain.add_evidence(action.record.encode())
                event(log, logging.WARNING, "misbehaviour evidence kept", validator=action.record.signer,
                      detail=action.record.describe()[:200])
            else:
                raise NodeError(f"consensus asked for an unknown action {action!r}")

    def _send_message(self, peer: int, message: Message) -> None:
        self._send(peer, _channel_of(message), message.encode(), kind=_KIND_OF[type(message)])

    def _broadcast_message(self, message: Message) -> None:
        payload = message.encode()
        self.peers.broadcast(Channel.CONSENSUS, payload)
        self.metrics.p2p_sent_bytes.labels(message=_KIND_OF[type(message)]).inc(len(payload) * (self.genesis.n - 1))

    def _send(self, peer: int, channel: Channel, payload: bytes, *, kind: str) -> None:
        try:
            self.peers.send(peer, channel, payload)
        except PantheonError as exc:
            event(log, logging.WARNING, "send failed", peer=peer, error=str(exc))
            return
        self.metrics.p2p_sent_bytes.labels(message=kind).inc(len(payload))

    def _set_timer(self, view: int, delay_ms: int) -> None:
        if self._timer_scope is not None:
            self._timer_scope.cancel()
        scope = self._timer_scope = trio.CancelScope()

        async def fire() -> None:
            with scope:
                await trio.sleep(delay_ms / 1000)
                await self._events_send.send(TimerFired(view))

        self._nursery.start_soon(fire)

    def _start_builder(self, request: RequestProposal) -> None:
        """Propose as soon as there is something to carry: roots, or confirmed anchors.

        An idle leader proposes nothing; its view times out into a (cheap, unstored)
        nullification and the timeouts back off, so an idle chain grows by no blocks at
        all. Roots gossiped to the waiting leader wake it at once. With
        ``empty_block_interval_ms`` > 0 an idle leader proposes an empty block after that
        long instead (each costs a stored header and certificate, about 10 KB).
        """
        if self._builder_scope is not None:
            self._builder_scope.cancel()
        scope = self._builder_scope = trio.CancelScope()
        interval_ms = self.config.consensus.empty_block_interval_ms
        give_up_at = trio.current_time() + interval_ms / 1000 if interval_ms else math.inf

        async def build() -> None:
            asked_at = trio.current_time()
            with scope:
                while (not self._proposable(self._with_applying(request.pending))
                       and trio.current_time() < give_up_at):
                    self._mempool_changed = trio.Event()
                    with trio.move_on_at(min(give_up_at, trio.current_time() + BUILDER_POLL_S)):
                        await self._mempool_changed.wait()
                pending = self._with_applying(request.pending)
                split = self.mempool.take_split(self.config.consensus.block_roots_max, exclude=self._roots_of(pending).sets)
                roots = b"".join(split)
                built = build_proposal(
                    genesis=self.genesis,
                    view=request.view,
                    parent=request.parent,
                    log=request.log,
                    roots=roots,
                    timestamp_ms=now_ms(),
                    anchors=self._anchors_to_propose(pending),
                )
                block = built.block
                self._keep_split(block, split)
                await self._keep_unfinalized(block)
                event(log, logging.DEBUG, "proposal built", view=request.view, roots=block.root_count,
                      waited_ms=round((trio.current_time() - asked_at) * 1000), mempool_roots=len(self.mempool))
                await self._events_send.send(ProposalReady(request.view, block, built))

        self._nursery.start_soon(build)

    def _anchors_to_propose(self, pending: tuple[Block, ...]) -> tuple[AnchorRef, ...]:
        if self.anchorer is None:
            return ()
        return self.anchorer.refs_to_propose(now_ms(), (ref for block in pending for ref in block.header.anchors))

    def _proposable(self, pending: tuple[Block, ...]) -> bool:
        if len(self.mempool) and self.mempool.take(1, exclude=self._roots_of(pending).sets):
            return True
        return bool(self._anchors_to_propose(pending))

    def _block_fault(self, block: Block, pending: tuple[Block, ...]) -> str | None:
        """What is wrong with the IO side of a block, or None: none of its roots is already
        logged or in an ancestor, and its AnchorRefs name finalized ancestors, once each
        (their Bitcoin side is checked after this, off the consensus loop: see
        _check_anchors). A fault is something no honest leader does, so the core keeps
        the leader's signed proposal as evidence."""
        fault = self._anchor_refs_fault(block, pending)
        if fault is not None:
            return fault
        roots = self._root_set(block)
        repeated = self._roots_of(pending).first_shared(roots)
        if repeated is None:
            # A root waiting in our mempool is not logged (the mempool never holds a logged root),
            # so only the others cost a lookup.
            repeated = next(
                (root for root in self.mempool.not_waiting(roots) if self.logged.index_of(root) is not None), None
            )
        if repeated is not None:
            self.metrics.messages_rejected.labels(reason="block_repeats_root").inc()
            event(log, logging.WARNING, "block repeats a root", height=block.header.height, root=repeated)
            return f"repeats root {repeated.hex()[:16]}, already logged or in an ancestor"
        return None

    def _root_set(self, block: Block) -> frozenset[bytes]:
        """The roots of ``block`` as a set, computed once per block while it is unfinalized (a
        block's roots are checked against every later proposal that builds on it)."""
        kept = self._root_sets.get(block.hash)
        if kept is None:
            kept = self._keep_split(block, split_roots(block.roots))
        return kept[0]

    def _split_of(self, block: Block) -> list[bytes]:
        """The roots of ``block`` as the bytes objects its set holds (their hashes computed), if kept."""
        kept = self._root_sets.get(block.hash)
        return split_roots(block.roots) if kept is None else kept[1]

    def _keep_split(self, block: Block, split: list[bytes]) -> tuple[frozenset[bytes], list[bytes]]:
        kept = self._root_sets[block.hash] = (frozenset(split), split)
        while len(self._root_sets) > ROOT_SETS_MAX:
            self._root_sets.popitem(last=False)
        return kept

    def _roots_of(self, blocks: Iterable[Block]) -> _InAny:
        """The roots of unfinalized ancestors, which a new block must not repeat."""
        return _InAny([self._root_set(block) for block in blocks])

    def _anchor_refs_fault(self, block: Block, pending: tuple[Block, ...]) -> str | None:
        anchors = block.header.anchors
        if not anchors:
            return None
        ancestors = {b.hash for b in pending}
        seen: set[bytes] = set()
        for ref in anchors:
            height = self.chain.height_of(ref.anchored_block_hash)
            recorded = self.anchor_store.recorded(height) if height is not None else None
            reason = None
            if height is None and ref.anchored_block_hash not in ancestors:
                reason = "anchored block is not a finalized ancestor"
            elif ref.anchored_block_hash in seen:
                reason = "two anchors of one block"
            elif recorded is not None and recorded.ref == ref:
                reason = "anchor already recorded"
            elif any(ref in b.header.anchors for b in pending):
                reason = "anchor already in an ancestor"
            if reason is not None:
                self.metrics.messages_rejected.labels(reason="block_anchor_invalid").inc()
                event(log, logging.WARNING, "block carries an invalid anchor", height=block.header.height,
                      reason=reason, anchored=ref.anchored_block_hash.hex()[:16])
                return f"anchor record refused: {reason}"
            seen.add(ref.anchored_block_hash)
        return None

    async def _check_anchors(self, block: Block) -> None:
        """Check a proposal's AnchorRefs with our own bitcoind, in a worker thread so the
        consensus loop never waits on it, then answer the core. An anchor that cannot be
        checked now (no bitcoind, or it is down, slow, on another network or answers
        malformed replies: any BitcoindError) counts as invalid: this validator
        withholds its notarize vote and the view times out into a nullification, exactly as
        for a block it cannot verify otherwise. Blocks without anchors never come here, so
        a dead bitcoind never stops them; a leader offers anchors only while its bitcoind
        answers (Anchorer.refs_to_propose)."""
        valid = False
        reason = None
        if self.anchorer is None:
            event(log, logging.WARNING, "cannot check a block's anchors: [bitcoin] is not enabled here",
                  height=block.header.height)
        else:
            try:
                await trio.to_thread.run_sync(self.anchorer.check_refs, block.header.anchors)
                valid = True
            except BitcoindError as exc:
                event(log, logging.WARNING, "cannot check a block's anchors now, not voting for it",
                      height=block.header.height, error=str(exc)[:200])
            except AnchorRefInvalid as exc:
                event(log, logging.WARNING, "block carries an anchor bitcoind contradicts",
                      height=block.header.height, proposer=block.header.proposer, error=str(exc)[:200])
                reason = "".join(char if char.isprintable() else " " for char in f"anchor record refused: {exc}")
        if not valid:
            self.metrics.messages_rejected.labels(reason="block_anchor_unchecked").inc()
        else:
            await self._keep_unfinalized(block)
        await self._events_send.send(BlockChecked(block.hash, valid, reason))

    async def _anchoring_loop(self, anchorer: Anchorer) -> None:
        """One anchoring tick at a time, in a worker thread (every bitcoind call blocks)."""
        interval_s = max(self.config.bitcoin.poll_interval_ms, 100) / 1000
        while True:
            await trio.to_thread.run_sync(anchorer.tick, now_ms())
            self.sync_anchor_metrics()
            await trio.sleep(interval_s)

    async def _keep_unfinalized(self, block: Block) -> None:
        """Persist a block before voting on or proposing it (see ChainStore.keep_unfinalized)."""
        if block.hash not in self._unfinalized:
            await trio.to_thread.run_sync(self.chain.keep_unfinalized, block.hash, block.encode())
            self._unfinalized[block.hash] = block.header.height

    def _with_applying(self, pending: tuple[Block, ...]) -> tuple[Block, ...]:
        """``pending`` (the unfinalized ancestors the core names) and the finalized blocks not
        yet applied: a new block must repeat the roots and anchors of neither."""
        return (*self._applying, *pending) if self._applying else pending

    async def _apply_loop(self) -> None:
        """Apply finalized blocks in order; those already waiting go into one batch together
        (a catch-up answer finalizes a dozen at once, and one synced write serves them all)."""
        carried: tuple[Block, Finalized] | None = None
        while True:
            first = carried if carried is not None else await self._apply_recv.receive()
            carried = None
            run = [first]
            roots = first[0].root_count
            while len(run) < APPLY_RUN_BLOCKS_MAX:
                try:
                    item = self._apply_recv.receive_nowait()
                except trio.WouldBlock:
                    break
                if roots + item[0].root_count > APPLY_RUN_ROOTS_MAX:
                    carried = item
                    break
                run.append(item)
                roots += item[0].root_count
            await self._apply_finalized(run)
            for _ in run:
                self._applying.popleft()

    async def _apply_finalized(self, run: list[tuple[Block, Finalized]]) -> None:
        """Consecutive finalized blocks in one synced batch, written in a worker thread so that
        gossip, submissions and the API go on meanwhile. Until ``commit`` the finalized roots
        are still in the mempool, so a root gossiped or submitted during the write is either
        seen as logged or taken back out by ``forget``."""
        run = [(block, action) for block, action in run if block.header.height > self.chain.tip_height]
        if not run:
            return
        last = run[-1][0].header
        roots = list(itertools.chain.from_iterable(self._split_of(block) for block, _ in run))
        settled = [h for h, height in self._unfinalized.items() if height <= last.height]
        # The core's block checks hashed these roots already: their subtrees spare the append the work.
        subtrees = [node for _, action in run for node in action.subtrees]
        staged = self.log.stage_append(roots, lookup=self.logged.to_look_up(roots), subtrees=subtrees)
        # The last header commits to the whole log, so agreeing with it is agreeing with every block of the run.
        if staged.new_size != last.log_size or staged.root != last.log_root:
            raise NodeError(
                f"log would diverge from finalized block {last.height}: size {staged.new_size} root "
                f"{staged.root.hex()[:16]} vs header {last.log_size} {last.log_root.hex()[:16]}; nothing was written"
            )
        run_heights = {block.hash: block.header.height for block, _ in run}
        recorded = [self._recorded_anchors(block.header, run_heights) for block, _ in run]

        def write() -> None:
            with self.store.batch(sync=True) as batch:
                staged.write_to(batch)
                follows = self.chain.tip_height
                for block, action in run:
                    self.chain.stage_finalized(batch, block.header, action.proof, after=follows)
                    follows = block.header.height
                self.anchor_store.stage_recorded_run(
                    batch, [(anchors, block.header.height) for (block, _), anchors in zip(run, recorded)]
                )
                self.mempool.delete_finished(batch)
                self.chain.drop_unfinalized(batch, settled)

        await trio.to_thread.run_sync(write)
        for block_hash in settled:
            del self._unfinalized[block_hash]
        self.log.commit(staged)
        self.logged.added(roots)
        self.chain.commit_tip(last)
        self.mempool.forget(roots)
        self.metrics.blocks_finalized.inc(len(run))
        self.metrics.roots_finalized.inc(len(roots))
        self.sync_metrics()
        event(log, logging.DEBUG, "finalized", height=last.height, blocks=len(run), roots=len(roots),
              log_size=last.log_size)

    def _recorded_anchors(self, header: Any, run_heights: dict[bytes, int]) -> list[tuple[int, AnchorRef]]:
        """(anchored height, ref) of a finalized block's anchors; the anchored blocks are
        finalized ancestors: in the chain store already, or earlier in the same run."""
        out = []
        for ref in header.anchors:
            height = run_heights.get(ref.anchored_block_hash) or self.chain.height_of(ref.anchored_block_hash)
            if height is None:
                event(log, logging.WARNING, "finalized block records an anchor of an unknown block",
                      height=header.height, anchored=ref.anchored_block_hash.hex()[:16])
                continue
            out.append((height, ref))
        return out

    # ---- catch-up ----------------------------------------------------------------

    def read_finalized(self, height: int) -> tuple[Block, FinalizationProof] | None:
        """A finalized block and its proof (up to the applied tip: ChainStore reads stop there)."""
        header = self.chain.header_at(height)
        proof = self.chain.finalization_at(height)
        span = self.chain.log_range(height)
        if header is None or proof is None or span is None:
            return None
        roots = self.log.audit_roots(*span)
        return Block(header=header, roots=roots), proof

    def _serve_catch_up(self, peer: int, request: CatchUpRequest) -> None:
        """Answer from finalized storage, within the per-peer byte budget (consensus.catchup.ServeLimiter)."""
        payload = self._serve_limiter.answer(peer, request, self.read_finalized, now_ms())
        if payload is None:
            self.metrics.catchup_refused.inc()
            return
        self.metrics.catchup_served_bytes.inc(len(payload))
        self._send(peer, Channel.CATCHUP, payload, kind="catch_up_response")

    # ---- submissions -------------------------------------------------------------

    async def submit(self, roots: bytes, submitter: str) -> Sequence[Receipt]:
        if self._submits_in_flight >= SUBMIT_IN_FLIGHT_MAX:
            raise Overloaded(f"{SUBMIT_IN_FLIGHT_MAX} submissions in flight; retry shortly")
        self._submits_in_flight += 1
        try:
            received_at = now_ms()
            number = self.batches.reserve() if len(roots) <= GOSSIP_ROOTS_PER_FRAME_MAX * 32 else 0
            admission = self.mempool.admit(roots, received_at, owner=submitter, write=False, gossip_batch=number)
            flush = self.group_commit.add(admission)
            if admission.new_roots:
                if number:
                    self.batches.put(number, admission.new_roots)
                self._gossip(admission.new_roots)
                self.metrics.roots_submitted.inc(len(admission.new_roots) // 32)
                self.sync_metrics()
                self._mempool_changed.set()
            await self.group_commit.wait(flush)
        finally:
            self._submits_in_flight -= 1
        if len(admission.new_roots) == len(roots):  # all new: one receipt shape, no object per root
            return UniformReceipts(roots, "pending", received_at)
        split = split_roots(roots)
        return [
            Receipt(root, "certified" if state == "logged" else "pending", received_at, index if index >= 0 else None)
            for root, state, index in zip(split, admission.states, admission.indices)
        ]

    def _gossip(self, roots: bytes) -> None:
        """Send new roots to the peers that are connected now. Gossip only saves a round: a
        peer that is down gets these roots in the blocks that carry them, and queueing them
        for it (up to a send queue of 1,024 frames) only made it admit, on reconnect, roots
        its catch-up was about to bring (10 % of a catching-up validator's CPU)."""
        step = GOSSIP_ROOTS_PER_FRAME_MAX * 32
        for peer in self.peers.connected_peers():
            for start in range(0, len(roots), step):
                self._send(peer, Channel.GOSSIP, roots[start : start + step], kind="roots")

    def _flushed(self, requests: int) -> None:
        self.metrics.submit_flushes.inc()
        self.metrics.submit_flush_requests.inc(requests)

    def sync_metrics(self) -> None:
        self.metrics.height.set(self.chain.tip_height)
        self.metrics.log_size.set(self.log.size)
        self.metrics.mempool_roots.set(len(self.mempool))
        self.metrics.peers_connected.set(len(self.peers.connected_peers()))
        self.metrics.voting.set(0 if self.core.recovering else 1)

    def sync_anchor_metrics(self) -> None:
        if self.anchorer is None:
            return
        counts = self.anchorer.counts()
        self.metrics.anchors_pending.set(counts["pending"])
        self.metrics.anchors_confirmed.set(self.anchor_store.checkpoint_count())
        self.metrics.anchor_fee_capped.set(1 if "fee_capped" in self.anchorer.status.alerts else 0)
        self.metrics.sync_bitcoind(self.anchorer.status.bitcoind_ok, self.anchorer.status.errors_total)

    def anchoring_status(self) -> dict[str, Any] | None:
        if self.anchorer is None:
            return None
        last, count = self.anchor_store.recorded_summary()
        return {
            **self.anchorer.status.as_json(),
            "anchors_pending": self.anchorer.counts()["pending"],
            "anchors_confirmed": self.anchor_store.checkpoint_count(),
            "last_anchored_height": last,
            "anchors_recorded": count,
        }

    def status(self) -> dict[str, Any]:
        tip = self.chain.tip_header
        return {
            "validator": self.index,
            "chain_id": self.genesis.hash.hex(),
            "height": self.chain.tip_height,
            "view": self.core.view,
            "voting": not self.core.recovering,
            "log_size": self.log.size,
            "log_root": self.log.root().hex(),
            "block_hash": tip.hash.hex() if tip else None,
            "mempool_roots": len(self.mempool),
            "peers": len(self.peers.connected_peers()),
            "anchoring": self.anchoring_status(),
        }


_KIND_OF: dict[type, str] = {
    Vote: "vote", Proposal: "proposal", CompactProposal: "compact_proposal", CertificateMessage: "certificate",
    CatchUpRequest: "catch_up_request", CatchUpResponse: "catch_up_response", SegmentsRequest: "segments_request",
    SegmentsResponse: "segments_response",
}
"""The ``message`` label of pantheon_p2p_sent_bytes (gossip frames are ``roots``)."""


def _channel_of(message: Message) -> Channel:
    """Catch-up traffic goes on its own channel so that bulk history never delays votes."""
    return Channel.CATCHUP if isinstance(message, (CatchUpRequest, CatchUpResponse)) else Channel.CONSENSUS


class _InAny:
    """Membership in any of several sets, without building their union."""

    def __init__(self, sets: list[frozenset[bytes]]) -> None:
        self._sets = [roots for roots in sets if roots]

    @property
    def sets(self) -> list[frozenset[bytes]]:
        """The non-empty sets (Mempool.take filters by each from C)."""
        return self._sets

    def first_shared(self, roots: frozenset[bytes]) -> bytes | None:
        """A root of ``roots`` that one of the sets holds, or None (set operations in C)."""
        for held in self._sets:
            if not held.isdisjoint(roots):
                return next(iter(held & roots))
        return None


async def run_until_signalled(node: Node) -> None:
    """Run ``node`` until SIGINT or SIGTERM, then stop it cleanly."""
    async with trio.open_nursery() as nursery:

        async def watch_signals() -> None:
            with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
                async for signum in signals:
                    event(log, logging.INFO, "signal received", signal=signal.Signals(signum).name)
                    node.stop()
                    return

        nursery.start_soon(watch_signals)
        await node.run()
        nursery.cancel_scope.cancel()

