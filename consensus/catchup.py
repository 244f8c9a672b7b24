"""Catch-up: fetch finalized history from a peer and believe none of it unchecked.

A lagging or new validator asks a peer for finalized blocks after its tip
(``CatchUpRequest``, with a request id); the peer's driver answers from storage
(:func:`build_response`), rate-limited per peer (:class:`ServeLimiter`). Every answer
fits one p2p frame and proves itself:

- the blocks are consecutive: the first extends our finalized tip, each next one
  extends the one before (parent hash, height + 1, higher view, later timestamp);
- each passes every pure block rule, and its log size and root are recomputed from
  the compact range of the log at the block before (so the roots are exactly the
  ones the certified header commits to);
- each carries a FINALIZE certificate, signed by a quorum, for itself, for a later
  block of the response, or for the last header of the response's ``tail``: the
  headers (without bodies) that link the last block to the descendant its
  certificate finalizes. Simplex finalizes a block with all its ancestors, so a
  certificate for block j proves every block up to j.

The server cuts an answer to fit the frame at any block and adds that block's tail,
so a long run of blocks finalized by one later certificate is still fetched piece by
piece, each piece proven. Any certificate, block or header that fails a check rejects
the whole response with a :class:`CatchUpError` naming it. Which peer to ask, and
which answers to accept, is :mod:`consensus.catchup_client`'s job.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from proof.chain import BlockHeader, Certificate, FinalizationProof, Genesis, VoteKind
from proof.compact import CompactRange
from proof.errors import PantheonError, ProofError

from consensus.block import BLOCK_ROOTS_MAX, Block, InvalidBlock, check_extension, check_header_extension
from consensus.crypto import Verifier
from consensus.messages import (
    CATCHUP_BLOCKS_MAX,
    CATCHUP_TAIL_HEADERS_MAX,
    MESSAGE_SIZE_MAX,
    CatchUpRequest,
    CatchUpResponse,
)
from consensus.validators import ValidatorSet

RESPONSE_OVERHEAD_BYTES = 256
"""Bytes of an encoded response beyond its entries and tail (map keys, type, id, list heads)."""
CATCHUP_RESPONSE_BYTES_MAX = MESSAGE_SIZE_MAX - RESPONSE_OVERHEAD_BYTES
"""Entry and tail bytes one response may carry: what is left of one frame."""

SERVE_BYTES_PER_S = 16 * 1024 * 1024
"""Catch-up bytes served to one peer per second, sustained (four full answers)."""
SERVE_BURST_BYTES = 2 * MESSAGE_SIZE_MAX
"""Catch-up bytes a peer may draw at once after being quiet."""
SERVE_REQUEST_COST_BYTES = 64 * 1024
"""Least charge per request, so that floods of requests for nothing are limited too."""


class CatchUpError(PantheonError):
    """A catch-up response that does not prove what it claims. ``reason`` is a short code for counters."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"catch-up response rejected ({reason}): {detail}")
        self.reason = reason


@dataclass(frozen=True)
class VerifiedBlock:
    """A block proven final: certificate for it or for the last of ``descendants``; ``log`` is the
    edge after it, ``subtrees`` the subtree hashes its check kept (consensus.actions.Finalized)."""

    block: Block
    certificate: Certificate
    descendants: tuple[BlockHeader, ...]
    log: CompactRange
    subtrees: tuple[bytes, ...] = field(default=(), repr=False, compare=False)


def _entry_bytes(block: Block, certificate: Certificate) -> int:
    return len(block.encode()) + len(certificate.encode()) + 1


def _tail_bytes(headers: tuple[BlockHeader, ...]) -> int:
    return sum(len(header.encode()) for header in headers)


def build_response(
    request: CatchUpRequest,
    read_finalized: Callable[[int], tuple[Block, FinalizationProof] | None],
    *,
    response_bytes_max: int = CATCHUP_RESPONSE_BYTES_MAX,
) -> CatchUpResponse:
    """The server side: finalized blocks from ``request.from_height`` on, cut to fit one frame.

    ``read_finalized(height)`` returns the stored block and its finalization proof, or
    None past the tip. Stops at ``max_blocks``, at the tip, or before the entries plus
    the last block's tail would pass ``response_bytes_max``. The answer is empty when
    not even one block with its tail fits (the requester then asks another peer).
    """
    entries: list[tuple[Block, Certificate]] = []
    tail: tuple[BlockHeader, ...] = ()
    carried_bytes = 0
    for height in range(request.from_height, request.from_height + min(request.max_blocks, CATCHUP_BLOCKS_MAX)):
        stored = read_finalized(height)
        if stored is None:
            break
        block, proof = stored
        if len(proof.headers) > CATCHUP_TAIL_HEADERS_MAX:
            break
        entry_bytes = _entry_bytes(block, proof.certificate)
        if carried_bytes + entry_bytes + _tail_bytes(proof.headers) > response_bytes_max:
            break
        entries.append((block, proof.certificate))
        tail = proof.headers
        carried_bytes += entry_bytes
    return CatchUpResponse(request_id=request.request_id, blocks=tuple(entries), tail=tail if entries else ())


class ServeLimiter:
    """Per-peer token bucket in bytes for answering catch-up requests (the server's side of the bound).

    Pure and clocked by the caller: ``allow(peer, now_ms)`` before building an answer,
    ``charge(peer, size)`` after. A peer that asks faster than it could use the answers
    gets nothing until its bucket refills; honest catch-up (one request in flight) stays
    well inside it.
    """

    def __init__(
        self,
        *,
        bytes_per_s: int = SERVE_BYTES_PER_S,
        burst_bytes: int = SERVE_BURST_BYTES,
        request_cost_bytes: int = SERVE_REQUEST_COST_BYTES,
    ) -> None:
        if bytes_per_s <= 0 or burst_bytes < request_cost_bytes or request_cost_bytes <= 0:
            raise ValueError("need bytes_per_s > 0 and burst_bytes >= request_cost_bytes > 0")
        self._rate = bytes_per_s
        self._burst = burst_bytes
        self._cost = request_cost_bytes
        self._tokens: dict[int, float] = {}
        self._stamp_ms: dict[int, int] = {}

    def allow(self, peer: int, now_ms: int) -> bool:
        """Whether ``peer`` may be answered now (refills its bucket to ``now_ms`` first)."""
        last_ms = self._stamp_ms.get(peer, now_ms)
        tokens = self._tokens.get(peer, float(self._burst))
        tokens = min(float(self._burst), tokens + max(0, now_ms - last_ms) * self._rate / 1_000)
        self._tokens[peer] = tokens
        self._stamp_ms[peer] = now_ms
        return tokens >= self._cost

    def charge(self, peer: int, answer_bytes: int) -> None:
        """Take the cost of an answer just built for ``peer`` (may leave the bucket negative)."""
        self._tokens[peer] = self._tokens.get(peer, float(self._burst)) - max(answer_bytes, self._cost)

    def answer(
        self,
        peer: int,
        request: CatchUpRequest,
        read_finalized: Callable[[int], tuple[Block, FinalizationProof] | None],
        now_ms: int,
    ) -> bytes | None:
        """The encoded answer to ``peer``'s request, charged to its budget; None when it is spent.

        What every driver does with a request (node.runtime, the simulator): one place, so
        the bound they model is the one the node enforces.
        """
        if not self.allow(peer, now_ms):
            return None
        data = build_response(request, read_finalized).encode()
        self.charge(peer, len(data))
        return data


def verify_response(
    *,
    genesis: Genesis,
    verifier: Verifier,
    tip: BlockHeader | None,
    tip_log: CompactRange,
    response: CatchUpResponse,
    max_blocks: int = CATCHUP_BLOCKS_MAX,
    block_roots_max: int = BLOCK_ROOTS_MAX,
    validators: ValidatorSet | None = None,
) -> list[VerifiedBlock]:
    """The proven prefix of ``response``, oldest first, each ready to commit on top of ``tip``.

    ``tip`` is our finalized tip (None: nothing finalized) and ``tip_log`` the log's
    compact range there (not modified). Raises CatchUpError if any part is invalid.
    """
    members = validators if validators is not None else ValidatorSet(genesis)
    entries = response.blocks
    if not entries:
        return []
    if len(entries) > max_blocks:
        raise CatchUpError("too_many_blocks", f"{len(entries)} blocks, at most {max_blocks} were asked for")

    edges: list[CompactRange] = []
    subtrees: list[tuple[bytes, ...]] = []
    parent, parent_log = tip, tip_log
    for position, (block, _) in enumerate(entries):
        kept: list[bytes] = []
        try:
            edge = check_extension(genesis, parent, parent_log, block, block_roots_max=block_roots_max, subtrees=kept)
        except InvalidBlock as error:
            raise CatchUpError(f"invalid_block_{error.reason}", f"block {position}: {error}") from None
        edges.append(edge)
        subtrees.append(tuple(kept))
        parent, parent_log = block.header, edge
    for position, header in enumerate(response.tail):
        try:
            check_header_extension(genesis, parent, header)
        except InvalidBlock as error:
            raise CatchUpError(f"invalid_tail_{error.reason}", f"tail header {position}: {error}") from None
        parent = header

    headers = [block.header for block, _ in entries] + list(response.tail)
    position_of = {header.hash: position for position, header in enumerate(headers)}
    checked: set[bytes] = set()
    proven_to = -1
    targets: list[int | None] = []
    for position, (_, cert) in enumerate(entries):
        if cert.kind != VoteKind.FINALIZE:
            raise CatchUpError("not_finalization", f"block {position}: certificate is a {cert.kind.name.lower()}")
        target = position_of.get(cert.block_hash)
        if target is not None and target < position:
            raise CatchUpError("certificate_for_ancestor", f"block {position}: certificate finalizes an earlier block")
        if target is not None and headers[target].view != cert.view:
            raise CatchUpError("certificate_view", f"block {position}: certificate view differs from its block's")
        encoded = cert.encode()
        if encoded not in checked:
            try:
                members.verify_certificate(cert, verifier)
            except ProofError as error:
                raise CatchUpError("bad_certificate", f"block {position}: {error}") from None
            checked.add(encoded)
        targets.append(target)
        if target is not None:
            proven_to = max(proven_to, min(target, len(entries) - 1))
    if proven_to < 0:
        raise CatchUpError("unproven", "no certificate in the response finalizes any of its blocks")

    certificate_of = {target: entries[position][1] for position, target in enumerate(targets) if target is not None}
    proven: list[VerifiedBlock] = []
    for position in range(proven_to + 1):
        target = min(t for t in certificate_of if t >= position)
        proven.append(
            VerifiedBlock(
                block=entries[position][0],
                certificate=certificate_of[target],
                descendants=tuple(headers[position + 1 : target + 1]),
                log=edges[position],
                subtrees=subtrees[position],
            )
        )
    return proven
