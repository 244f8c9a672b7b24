"""Catch-up: fetch finalized history from a peer and believe none of it unchecked.

A lagging or new validator asks a peer for finalized blocks after its tip
(``CatchUpRequest``); the peer's driver answers from storage (:func:`build_response`).
The answer is checked here, against the genesis only:

- the blocks are consecutive: the first extends our finalized tip, each next one
  extends the one before (parent hash, height + 1, higher view, later timestamp);
- each passes every pure block rule, and its log size and root are recomputed from
  the compact range of the log at the block before (so the roots are exactly the
  ones the certified header commits to);
- each carries a FINALIZE certificate, signed by a quorum, for itself or for a later
  block of the same response. Simplex finalizes a block with all its ancestors, so a
  certificate for block j proves every block up to j.

Blocks after the last certified one in the response are unproven and not returned
(the requester asks again from its new tip). Any certificate or block that fails a
check rejects the whole response with a :class:`CatchUpError` naming it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from proof.chain import BlockHeader, Certificate, Genesis, VoteKind
from proof.compact import CompactRange
from proof.errors import PantheonError, ProofError

from consensus.block import BLOCK_ROOTS_MAX, Block, InvalidBlock, check_extension
from consensus.crypto import Verifier
from consensus.messages import CATCHUP_BLOCKS_MAX, CatchUpRequest, CatchUpResponse
from consensus.validators import ValidatorSet

CATCHUP_RESPONSE_BYTES_MAX = 8 * 1024 * 1024
"""Roots carried by one response; a server stops adding blocks past this (but sends at least one)."""


class CatchUpError(PantheonError):
    """A catch-up response that does not prove what it claims. ``reason`` is a short code for counters."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"catch-up response rejected ({reason}): {detail}")
        self.reason = reason


@dataclass(frozen=True)
class VerifiedBlock:
    """A block proven final: certificate for it or for the last of ``descendants``; ``log`` is the edge after it."""

    block: Block
    certificate: Certificate
    descendants: tuple[BlockHeader, ...]
    log: CompactRange


def build_response(
    request: CatchUpRequest,
    read_finalized: Callable[[int], tuple[Block, Certificate] | None],
    *,
    response_bytes_max: int = CATCHUP_RESPONSE_BYTES_MAX,
) -> CatchUpResponse:
    """The server side: finalized (block, certificate) pairs from ``request.from_height`` on.

    ``read_finalized(height)`` returns the stored pair or None past the tip. Stops at
    ``max_blocks``, at the tip, or once the roots carried reach ``response_bytes_max``.
    """
    entries: list[tuple[Block, Certificate]] = []
    carried_bytes = 0
    for height in range(request.from_height, request.from_height + min(request.max_blocks, CATCHUP_BLOCKS_MAX)):
        entry = read_finalized(height)
        if entry is None:
            break
        if entries and carried_bytes + len(entry[0].roots) > response_bytes_max:
            break
        entries.append(entry)
        carried_bytes += len(entry[0].roots)
    return CatchUpResponse(blocks=tuple(entries))


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
    parent, parent_log = tip, tip_log
    for position, (block, _) in enumerate(entries):
        try:
            edge = check_extension(genesis, parent, parent_log, block, block_roots_max=block_roots_max)
        except InvalidBlock as error:
            raise CatchUpError(f"invalid_block_{error.reason}", f"block {position}: {error}") from None
        edges.append(edge)
        parent, parent_log = block.header, edge

    position_of = {block.hash: position for position, (block, _) in enumerate(entries)}
    checked: set[bytes] = set()
    proven_to = -1
    targets: list[int | None] = []
    for position, (_, cert) in enumerate(entries):
        if cert.kind != VoteKind.FINALIZE:
            raise CatchUpError("not_finalization", f"block {position}: certificate is a {cert.kind.name.lower()}")
        target = position_of.get(cert.block_hash)
        if target is not None and target < position:
            raise CatchUpError("certificate_for_ancestor", f"block {position}: certificate finalizes an earlier block")
        if target is not None and entries[target][0].header.view != cert.view:
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
            proven_to = max(proven_to, target)
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
                descendants=tuple(entries[i][0].header for i in range(position + 1, target + 1)),
                log=edges[position],
            )
        )
    return proven
