"""Proposals whose roots cross the network once: runs of gossip batches named by digest.

Why. Every root used to reach each validator twice: in the gossip that spreads it, and
again inside the leader's proposal, which the leader uploads to n - 1 peers (320 KB per
10,000-root block each). Narwhal's answer is to order references to batches the
validators already hold; this is that idea at the edge of the node, the consensus core
untouched: it still receives exactly the Proposal the leader built.

How:

- The leader encodes its block's roots as *segments* (:func:`compact_segments`): runs of a
  gossip batch, ``BatchRef(digest, start, count)``, where the mempool says which batch a
  root first came in (node.batch_pool), and inline roots for the rest (roots restored at
  start, short runs, batches no longer held). A block with no run worth naming goes as a
  plain Proposal.
- A receiver rebuilds the roots from the batches it holds. For segments it lacks it asks
  the sender (SegmentsRequest) and goes on collecting gossip meanwhile; the sender answers
  from the proposals it made lately, once per receiver and proposal (a request is 100
  bytes, its answer up to 2 MiB). Until then the proposal waits here, at most
  :data:`WAITING_PER_PEER` of them per sender, its oldest dropped first, so that a peer
  sending proposals nobody can rebuild crowds out only its own.
- The rebuilt roots must hash to the header's ``body_hash``, the commitment the leader's
  vote signs; any other outcome drops the proposal. So a relay can change nothing, and a
  leader that references batches nobody holds and never answers has only withheld its
  proposal: the view times out as it would then.
"""

from __future__ import annotations

import collections
import logging
from collections.abc import Callable
from dataclasses import dataclass, field

from consensus.block import BLOCK_ROOTS_MAX, ROOT_SIZE, Block, InvalidBlock, body_hash
from consensus.messages import (
    BatchRef,
    CompactProposal,
    Proposal,
    Segment,
    SegmentsRequest,
    SegmentsResponse,
)
from node.batch_pool import BatchPool
from node.logs import event
from node.metrics import NodeMetrics

log = logging.getLogger("pantheon.relay")

REF_ROOTS_MIN = 4
"""A shorter run of a batch goes inline: a reference costs about 40 bytes, a root 32."""
SCAN_BYTES_MAX = 16 << 20
"""Most batch bytes one encoding searches for roots (a few ms at memchr speed); past it, the
rest of the block goes inline. Roots of one batch appear in a block in their batch order
(the mempool takes each owner's roots oldest first), so a search resumes where the last
run of its batch ended and the budget is never reached in practice."""
OWN_PROPOSALS_KEPT = 8
"""Proposals of ours whose segments we can still send to a receiver that lacks them."""
WAITING_PER_PEER = 4
"""Compact proposals from one sender held here while their missing segments are fetched."""


def compact_segments(roots: bytes, batch_of: Callable[[bytes], int], pool: BatchPool) -> tuple[Segment, ...]:
    """``roots`` as segments: batch runs of at least :data:`REF_ROOTS_MIN` roots, inline the rest."""
    segments: list[Segment] = []
    resume: dict[int, int] = {}
    """batch number -> byte offset in its payload where the next search starts."""
    scan_left = SCAN_BYTES_MAX
    inline_from: int | None = None
    pos, end = 0, len(roots)
    view = memoryview(roots)
    while pos < end:
        root = roots[pos : pos + ROOT_SIZE]
        number = batch_of(root)
        entry = pool.by_number(number) if number and scan_left > 0 else None
        run = 0
        if entry is not None:
            digest, payload = entry
            start = resume.get(number, 0)
            at = _find_aligned(payload, root, start)
            scan_left -= (len(payload) if at < 0 else at) - start
            if at >= 0:
                resume[number] = at + ROOT_SIZE
                run = _common_run(view, pos, payload, at)
        if run >= REF_ROOTS_MIN:
            if inline_from is not None:
                segments.append(roots[inline_from:pos])
                inline_from = None
            segments.append(BatchRef(digest, at // ROOT_SIZE, run))
            resume[number] = at + run * ROOT_SIZE
            pos += run * ROOT_SIZE
            continue
        if inline_from is None:
            inline_from = pos
        pos += ROOT_SIZE
    if inline_from is not None:
        segments.append(roots[inline_from:])
    return tuple(segments)


def _find_aligned(payload: bytes, root: bytes, start: int) -> int:
    """Byte offset of ``root`` at a root boundary of ``payload`` at or after ``start``, or -1."""
    at = payload.find(root, start)
    while at >= 0 and at % ROOT_SIZE:
        at = payload.find(root, at + 1)
    return at


def _common_run(roots: memoryview, pos: int, payload: bytes, at: int) -> int:
    """How many roots from ``roots[pos:]`` equal those from ``payload[at:]`` (the first does)."""
    other = memoryview(payload)
    longest = min(len(roots) - pos, len(payload) - at) // ROOT_SIZE

    def same(count: int) -> bool:
        size = count * ROOT_SIZE
        return roots[pos : pos + size] == other[at : at + size]

    if same(longest):
        return longest
    equal, unequal = 1, longest
    while unequal - equal > 1:
        middle = (equal + unequal) // 2
        if same(middle):
            equal = middle
        else:
            unequal = middle
    return equal


def _segment_sizes(segments: tuple[Segment, ...]) -> list[int]:
    return [s.count * ROOT_SIZE if isinstance(s, BatchRef) else len(s) for s in segments]


@dataclass
class _Waiting:
    """A compact proposal from ``peer`` missing the runs at ``missing`` (segment index -> ref)."""

    peer: int
    compact: CompactProposal
    parts: list[bytes | None]
    missing: dict[int, BatchRef] = field(default_factory=dict)


@dataclass(frozen=True)
class _Own:
    segments: tuple[Segment, ...]
    roots: bytes
    offsets: tuple[int, ...]
    answered: set[int] = field(default_factory=set)
    """Peers already sent segments of this proposal."""


class ProposalRelay:
    """Both ends of proposals by reference for one validator (see the module docstring)."""

    def __init__(self, pool: BatchPool, batch_of: Callable[[bytes], int], metrics: NodeMetrics, *,
                 roots_max: int = BLOCK_ROOTS_MAX) -> None:
        """``roots_max``: the most roots a block may hold here (consensus.block_roots_max); a
        compact proposal of more is dropped before anything is looked up or held for it."""
        self.pool = pool
        self.roots_max = roots_max
        self._batch_of = batch_of
        self.metrics = metrics
        self._own: collections.OrderedDict[bytes, _Own] = collections.OrderedDict()
        self._waiting: collections.OrderedDict[tuple[int, bytes], _Waiting] = collections.OrderedDict()
        """(sender, block hash) -> the proposal it sent, oldest first."""

    # ---- the leader's side -------------------------------------------------------

    def outgoing(self, proposal: Proposal) -> Proposal | CompactProposal:
        """What to broadcast for our ``proposal``: its compact form when any run is worth naming."""
        roots = proposal.block.roots
        if not roots:
            return proposal
        segments = compact_segments(roots, self._batch_of, self.pool)
        if not any(isinstance(segment, BatchRef) for segment in segments):
            return proposal
        offsets = [0]
        for size in _segment_sizes(segments):
            offsets.append(offsets[-1] + size)
        self._own[proposal.block.hash] = _Own(segments, roots, tuple(offsets))
        while len(self._own) > OWN_PROPOSALS_KEPT:
            self._own.popitem(last=False)
        self.metrics.compact_proposals.labels(outcome="sent").inc()
        return CompactProposal(header=proposal.block.header, vote=proposal.vote, segments=segments)

    def answer(self, peer: int, request: SegmentsRequest) -> SegmentsResponse | None:
        """The runs ``request`` names of a proposal of ours, or None: not ours (or no longer
        kept), an index that names no reference (a receiver asks only for those), or asked
        by ``peer`` before (an honest receiver asks once)."""
        own = self._own.get(request.block_hash)
        if own is None or peer in own.answered or request.indices[-1] >= len(own.segments):
            return None
        if not all(isinstance(own.segments[index], BatchRef) for index in request.indices):
            return None
        own.answered.add(peer)
        runs = tuple(own.roots[own.offsets[index] : own.offsets[index + 1]] for index in request.indices)
        return SegmentsResponse(block_hash=request.block_hash, indices=request.indices, roots=runs)

    # ---- a receiver's side -------------------------------------------------------

    def incoming(self, peer: int, compact: CompactProposal) -> Proposal | SegmentsRequest | None:
        """The proposal ``compact`` stands for when every run is held here; else the request
        to send ``peer`` for the missing ones (the proposal waits here meanwhile); None when
        it cannot stand for one (its roots do not match its header) or is waiting already."""
        block_hash = compact.header.hash
        key = (peer, block_hash)
        if key in self._waiting:
            return None
        if compact.root_count > self.roots_max:
            self.metrics.compact_proposals.labels(outcome="mismatch").inc()
            event(log, logging.WARNING, "dropped a compact proposal of more roots than a block may hold",
                  peer=peer, roots=compact.root_count, roots_max=self.roots_max)
            return None
        parts: list[bytes | None] = []
        missing: dict[int, BatchRef] = {}
        for index, segment in enumerate(compact.segments):
            if isinstance(segment, BatchRef):
                run = self._run_of(segment)
                if run is None:
                    missing[index] = segment
                parts.append(run)
            else:
                parts.append(segment)
        if not missing:
            return self._complete(peer, compact, parts, "rebuilt")
        self._waiting[key] = _Waiting(peer, compact, parts, missing)
        event(log, logging.DEBUG, "compact proposal waits for segments", peer=peer, view=compact.header.view,
              height=compact.header.height, missing=len(missing), segments=len(compact.segments))
        senders = [other for other in self._waiting if other[0] == peer]
        if len(senders) > WAITING_PER_PEER:
            self._abandon(self._waiting.pop(senders[0]), "more compact proposals from one peer waiting than are kept")
        return SegmentsRequest(block_hash=block_hash, indices=tuple(missing))

    def on_response(self, peer: int, response: SegmentsResponse) -> Proposal | None:
        """Fill a waiting proposal from ``peer``'s answer; the proposal once complete."""
        key = (peer, response.block_hash)
        waiting = self._waiting.get(key)
        if waiting is None:
            return None
        for index, run in zip(response.indices, response.roots):
            ref = waiting.missing.get(index)
            if ref is None or len(run) != ref.count * ROOT_SIZE:
                del self._waiting[key]
                self._abandon(waiting, f"the answer for segment {index} does not fit its reference")
                return None
            waiting.parts[index] = run
            del waiting.missing[index]
        return self._finish(key, waiting, "fetched")

    def on_batch(self) -> list[tuple[int, Proposal]]:
        """After a batch arrived by gossip: the waiting proposals it completed, with their senders."""
        done = []
        for key, waiting in list(self._waiting.items()):
            if key not in self._waiting:
                continue
            for index, ref in list(waiting.missing.items()):
                run = self._run_of(ref)
                if run is not None:
                    waiting.parts[index] = run
                    del waiting.missing[index]
            proposal = self._finish(key, waiting, "rebuilt")
            if proposal is not None:
                done.append((waiting.peer, proposal))
        return done

    def waiting(self) -> int:
        return len(self._waiting)

    def _finish(self, key: tuple[int, bytes], waiting: _Waiting, outcome: str) -> Proposal | None:
        """The proposal once nothing is missing; the same block waiting from other senders
        is then no longer needed."""
        if waiting.missing:
            return None
        for other in [other for other in self._waiting if other[1] == key[1]]:
            del self._waiting[other]
        return self._complete(waiting.peer, waiting.compact, waiting.parts, outcome)

    def _run_of(self, ref: BatchRef) -> bytes | None:
        payload = self.pool.by_digest(ref.digest)
        end = (ref.start + ref.count) * ROOT_SIZE
        if payload is None or end > len(payload):
            return None
        return payload[ref.start * ROOT_SIZE : end]

    def _complete(
        self, peer: int, compact: CompactProposal, parts: list[bytes | None], outcome: str
    ) -> Proposal | None:
        roots = b"".join(part or b"" for part in parts)
        header = compact.header
        if body_hash(roots) != header.body_hash:
            self.metrics.compact_proposals.labels(outcome="mismatch").inc()
            event(log, logging.WARNING, "dropped a compact proposal: its roots do not match its header",
                  peer=peer, view=header.view, height=header.height)
            return None
        try:
            block = Block(header=header, roots=roots)
        except InvalidBlock as error:
            self.metrics.compact_proposals.labels(outcome="mismatch").inc()
            event(log, logging.WARNING, "dropped a compact proposal", peer=peer, error=str(error))
            return None
        self.metrics.compact_proposals.labels(outcome=outcome).inc()
        return Proposal(block=block, vote=compact.vote)

    def _abandon(self, waiting: _Waiting, why: str) -> None:
        self.metrics.compact_proposals.labels(outcome="abandoned").inc()
        event(log, logging.WARNING, "dropped a compact proposal", peer=waiting.peer,
              view=waiting.compact.header.view, why=why)
