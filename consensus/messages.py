"""Consensus wire messages: frozen records, one canonical CBOR encoding each, strict decode.

A message on the wire is a CBOR map with a type field ``t`` and the record's fields.
:func:`decode_message` accepts exactly the bytes :meth:`encode` produces for some valid
message and raises DecodeError for anything else, so a peer cannot make the core hold
a record that breaks a structural rule (sizes, ranges, orderings).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Union

from proof import cbor
from proof.chain import (
    FINALIZATION_PROOF_HEADERS_MAX,
    UINT64_MAX,
    VALIDATORS_MAX,
    ZERO_HASH,
    BlockHeader,
    Certificate,
    ChainRecordError,
    VoteKind,
    vote_message,
)
from proof.errors import DecodeError
from proof.hashing import HASH_SIZE
from proof.mldsa import SIGNATURE_SIZE
from proof.wire import MESSAGE_BYTES_MAX

from consensus.block import BLOCK_ROOTS_MAX, ROOT_SIZE, Block, InvalidBlock

MESSAGE_SIZE_MAX = MESSAGE_BYTES_MAX
"""A message that cannot travel in one p2p frame is never valid (proof.wire owns the bound)."""
MESSAGE_ITEMS_MAX = 1 << 18
CATCHUP_BLOCKS_MAX = 256
"""Most blocks one catch-up request may ask for (and one response may carry)."""
CATCHUP_TAIL_HEADERS_MAX = FINALIZATION_PROOF_HEADERS_MAX - CATCHUP_BLOCKS_MAX
"""Headers after a response's last block up to its certified descendant; with the response's
own blocks they still fit one finalization proof."""
GOSSIP_BATCH_ROOTS_MAX = MESSAGE_SIZE_MAX // ROOT_SIZE
"""No gossip batch (one p2p frame of roots) holds more roots than this."""


class MessageError(ChainRecordError):
    """A message whose fields break a structural rule."""


def _check_uint(value: object, what: str) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= UINT64_MAX:
        raise MessageError(f"{what} must be an integer in 0..2**64-1, got {value!r}")


@dataclass(frozen=True)
class Vote:
    """One validator's signed notarize, nullify or finalize vote."""

    kind: VoteKind
    view: int
    block_hash: bytes
    signer: int
    signature: bytes

    def __post_init__(self) -> None:
        if not isinstance(self.kind, VoteKind):
            raise MessageError(f"vote kind must be a VoteKind, got {self.kind!r}")
        _check_uint(self.view, "vote view")
        if not isinstance(self.block_hash, bytes) or len(self.block_hash) != HASH_SIZE:
            raise MessageError(f"vote block hash must be {HASH_SIZE} bytes")
        if (self.kind == VoteKind.NULLIFY) != (self.block_hash == ZERO_HASH):
            raise MessageError("exactly nullify votes carry the zero block hash")
        _check_uint(self.signer, "vote signer")
        if self.signer >= VALIDATORS_MAX:
            raise MessageError(f"vote signer {self.signer} is not below {VALIDATORS_MAX}")
        if not isinstance(self.signature, bytes) or not 0 < len(self.signature) <= SIGNATURE_SIZE:
            raise MessageError(f"vote signature must be 1..{SIGNATURE_SIZE} bytes")

    def message(self, chain_id: bytes) -> bytes:
        """The bytes the signature covers."""
        return vote_message(chain_id, self.kind, self.view, self.block_hash)

    def to_cbor(self) -> dict[str, Any]:
        return {
            "kind": int(self.kind),
            "view": self.view,
            "block": self.block_hash,
            "signer": self.signer,
            "sig": self.signature,
        }

    @classmethod
    def from_cbor(cls, value: Any) -> Vote:
        fields = cbor.expect_map(value, "vote", {"kind", "view", "block", "signer", "sig"})
        kind = VoteKind(cbor.expect_int(fields["kind"], "vote kind", min_value=min(VoteKind), max_value=max(VoteKind)))
        return _build(
            lambda: cls(
                kind=kind,
                view=cbor.expect_uint(fields["view"], "vote view"),
                block_hash=cbor.expect_bytes(fields["block"], "vote block", size=HASH_SIZE),
                signer=cbor.expect_uint(fields["signer"], "vote signer", max_value=VALIDATORS_MAX - 1),
                signature=cbor.expect_bytes(fields["sig"], "vote sig", max_size=SIGNATURE_SIZE),
            ),
            "vote",
        )

    def encode(self) -> bytes:
        return _encode(self)


@dataclass(frozen=True)
class Proposal:
    """The leader's block together with its own notarize vote for it."""

    block: Block
    vote: Vote

    def __post_init__(self) -> None:
        if not isinstance(self.block, Block) or not isinstance(self.vote, Vote):
            raise MessageError("a proposal holds a Block and a Vote")

    def to_cbor(self) -> dict[str, Any]:
        return {"block": self.block.to_cbor(), "vote": self.vote.to_cbor()}

    @classmethod
    def from_cbor(cls, value: Any) -> Proposal:
        fields = cbor.expect_map(value, "proposal", {"block", "vote"})
        return _build(lambda: cls(block=_block(fields["block"]), vote=Vote.from_cbor(fields["vote"])), "proposal")

    def encode(self) -> bytes:
        return _encode(self)


@dataclass(frozen=True)
class CertificateMessage:
    """A certificate, forwarded so that validators that missed the votes still advance.

    ``block`` may accompany a notarization or finalization so that a receiver that never
    saw the proposal can still link it.
    """

    certificate: Certificate
    block: Block | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.certificate, Certificate):
            raise MessageError("certificate message must hold a Certificate")
        if self.block is not None:
            if self.certificate.kind == VoteKind.NULLIFY:
                raise MessageError("a nullification carries no block")
            if self.block.hash != self.certificate.block_hash:
                raise MessageError("the block does not match the certificate's block hash")

    def to_cbor(self) -> dict[str, Any]:
        fields: dict[str, Any] = {"cert": self.certificate.to_cbor()}
        if self.block is not None:
            fields["block"] = self.block.to_cbor()
        return fields

    @classmethod
    def from_cbor(cls, value: Any) -> CertificateMessage:
        fields = cbor.expect_map(value, "certificate message", {"cert"}, {"block"})
        certificate = _build(lambda: Certificate.from_cbor(fields["cert"]), "certificate message")
        block = _block(fields["block"]) if "block" in fields else None
        return _build(lambda: cls(certificate=certificate, block=block), "certificate message")

    def encode(self) -> bytes:
        return _encode(self)


@dataclass(frozen=True)
class CatchUpRequest:
    """Ask a peer for finalized blocks from ``from_height`` on; the answer repeats ``request_id``."""

    request_id: int
    from_height: int
    max_blocks: int

    def __post_init__(self) -> None:
        _check_uint(self.request_id, "catch-up request_id")
        _check_uint(self.from_height, "catch-up from_height")
        if self.from_height < 1:
            raise MessageError("catch-up from_height starts at 1")
        _check_uint(self.max_blocks, "catch-up max_blocks")
        if not 1 <= self.max_blocks <= CATCHUP_BLOCKS_MAX:
            raise MessageError(f"catch-up max_blocks must be 1..{CATCHUP_BLOCKS_MAX}")

    def to_cbor(self) -> dict[str, Any]:
        return {"id": self.request_id, "from": self.from_height, "max": self.max_blocks}

    @classmethod
    def from_cbor(cls, value: Any) -> CatchUpRequest:
        fields = cbor.expect_map(value, "catch-up request", {"id", "from", "max"})
        return _build(
            lambda: cls(
                request_id=cbor.expect_uint(fields["id"], "catch-up id"),
                from_height=cbor.expect_uint(fields["from"], "catch-up from"),
                max_blocks=cbor.expect_uint(fields["max"], "catch-up max"),
            ),
            "catch-up request",
        )

    def encode(self) -> bytes:
        return _encode(self)


@dataclass(frozen=True)
class CatchUpResponse:
    """The answer to request ``request_id``: consecutive finalized blocks that prove themselves.

    Each block carries a finalize certificate, for itself, for a later block of the
    response, or for the last of ``tail``: the headers that follow the last block up to
    the block its certificate finalizes. So every answer, however it was cut to fit a
    frame, ends in a block whose finalization it proves.
    """

    request_id: int
    blocks: tuple[tuple[Block, Certificate], ...]
    tail: tuple[BlockHeader, ...] = ()

    def __post_init__(self) -> None:
        _check_uint(self.request_id, "catch-up request_id")
        if not isinstance(self.tail, tuple) or len(self.tail) > CATCHUP_TAIL_HEADERS_MAX:
            raise MessageError(f"catch-up tail holds at most {CATCHUP_TAIL_HEADERS_MAX} headers")
        if not all(isinstance(header, BlockHeader) for header in self.tail):
            raise MessageError("catch-up tail entries are block headers")
        if self.tail and not self.blocks:
            raise MessageError("a catch-up tail follows a block: an empty response has none")
        if not isinstance(self.blocks, tuple) or len(self.blocks) > CATCHUP_BLOCKS_MAX:
            raise MessageError(f"catch-up response holds at most {CATCHUP_BLOCKS_MAX} blocks")
        for entry in self.blocks:
            if (
                not isinstance(entry, tuple)
                or len(entry) != 2
                or not isinstance(entry[0], Block)
                or not isinstance(entry[1], Certificate)
            ):
                raise MessageError("catch-up response entries are (Block, Certificate) pairs")

    def to_cbor(self) -> dict[str, Any]:
        return {
            "id": self.request_id,
            "blocks": [[block.to_cbor(), cert.to_cbor()] for block, cert in self.blocks],
            "tail": [header.to_cbor() for header in self.tail],
        }

    @classmethod
    def from_cbor(cls, value: Any) -> CatchUpResponse:
        fields = cbor.expect_map(value, "catch-up response", {"id", "blocks", "tail"})
        tail = tuple(
            _build(lambda: BlockHeader.from_cbor(item), "catch-up tail")
            for item in cbor.expect_list(fields["tail"], "catch-up tail", max_items=CATCHUP_TAIL_HEADERS_MAX)
        )
        entries = []
        for position, item in enumerate(
            cbor.expect_list(fields["blocks"], "catch-up blocks", max_items=CATCHUP_BLOCKS_MAX)
        ):
            pair = cbor.expect_list(item, f"catch-up entry {position}", max_items=2)
            if len(pair) != 2:
                raise DecodeError(f"catch-up entry {position}: expected [block, certificate]")
            entries.append((_block(pair[0]), _build(lambda: Certificate.from_cbor(pair[1]), "catch-up entry")))
        return _build(
            lambda: cls(
                request_id=cbor.expect_uint(fields["id"], "catch-up id"), blocks=tuple(entries), tail=tail
            ),
            "catch-up response",
        )

    def encode(self) -> bytes:
        return _encode(self)


@dataclass(frozen=True)
class BatchRef:
    """Roots ``start .. start + count`` (in roots, not bytes) of the gossip batch whose digest is
    ``digest`` (node.batch_pool)."""

    digest: bytes
    start: int
    count: int

    def __post_init__(self) -> None:
        if not isinstance(self.digest, bytes) or len(self.digest) != HASH_SIZE:
            raise MessageError(f"batch reference digest must be {HASH_SIZE} bytes")
        _check_uint(self.start, "batch reference start")
        _check_uint(self.count, "batch reference count")
        if self.start >= GOSSIP_BATCH_ROOTS_MAX or not 1 <= self.count <= BLOCK_ROOTS_MAX:
            raise MessageError(f"batch reference {self.start}+{self.count} is out of range")

    def to_cbor(self) -> list[Any]:
        return [self.digest, self.start, self.count]

    @classmethod
    def from_cbor(cls, value: Any) -> BatchRef:
        fields = cbor.expect_list(value, "batch reference", max_items=3)
        if len(fields) != 3:
            raise DecodeError("batch reference: expected [digest, start, count]")
        return _build(
            lambda: cls(
                digest=cbor.expect_bytes(fields[0], "batch reference digest", size=HASH_SIZE),
                start=cbor.expect_uint(fields[1], "batch reference start"),
                count=cbor.expect_uint(fields[2], "batch reference count"),
            ),
            "batch reference",
        )


Segment = Union[bytes, BatchRef]
"""Of a compact proposal's roots: inline roots (n * 32 bytes), or a run of a gossip batch."""


def _check_roots_bytes(value: object, what: str) -> None:
    if not isinstance(value, bytes) or not value or len(value) % ROOT_SIZE:
        raise MessageError(f"{what} must be a non-empty multiple of {ROOT_SIZE} bytes")


@dataclass(frozen=True)
class CompactProposal:
    """A proposal whose roots travel as runs of gossip batches the receivers already hold.

    Receivers rebuild the Proposal it stands for (node.proposal_relay); the core never sees
    this form. One encoding per proposal: inline runs are never adjacent, and a proposal
    with no reference at all is sent as a plain Proposal.
    """

    header: BlockHeader
    vote: Vote
    segments: tuple[Segment, ...]

    def __post_init__(self) -> None:
        if not isinstance(self.header, BlockHeader) or not isinstance(self.vote, Vote):
            raise MessageError("a compact proposal holds a BlockHeader and a Vote")
        if not isinstance(self.segments, tuple) or not 1 <= len(self.segments) <= BLOCK_ROOTS_MAX:
            raise MessageError(f"a compact proposal holds 1..{BLOCK_ROOTS_MAX} segments")
        total = 0
        inline_before = False
        referenced = False
        for segment in self.segments:
            if isinstance(segment, BatchRef):
                total += segment.count
                inline_before = False
                referenced = True
                continue
            _check_roots_bytes(segment, "an inline segment")
            if inline_before:
                raise MessageError("two inline segments are adjacent: they are one segment")
            inline_before = True
            total += len(segment) // ROOT_SIZE
        if not referenced:
            raise MessageError("a compact proposal without batch references is a plain proposal")
        if total > BLOCK_ROOTS_MAX:
            raise MessageError(f"a compact proposal holds more than {BLOCK_ROOTS_MAX} roots")

    @property
    def root_count(self) -> int:
        return sum(s.count if isinstance(s, BatchRef) else len(s) // ROOT_SIZE for s in self.segments)

    def to_cbor(self) -> dict[str, Any]:
        return {
            "header": self.header.to_cbor(),
            "vote": self.vote.to_cbor(),
            "segs": [s.to_cbor() if isinstance(s, BatchRef) else s for s in self.segments],
        }

    @classmethod
    def from_cbor(cls, value: Any) -> CompactProposal:
        fields = cbor.expect_map(value, "compact proposal", {"header", "vote", "segs"})
        segments: list[Segment] = []
        for item in cbor.expect_list(fields["segs"], "compact proposal segments", max_items=BLOCK_ROOTS_MAX):
            if isinstance(item, bytes):
                segments.append(item)
            else:
                segments.append(BatchRef.from_cbor(item))
        return _build(
            lambda: cls(
                header=BlockHeader.from_cbor(fields["header"]),
                vote=Vote.from_cbor(fields["vote"]),
                segments=tuple(segments),
            ),
            "compact proposal",
        )

    def encode(self) -> bytes:
        return _encode(self)


def _check_indices(indices: object, what: str) -> None:
    if not isinstance(indices, tuple) or not 1 <= len(indices) <= BLOCK_ROOTS_MAX:
        raise MessageError(f"{what} names 1..{BLOCK_ROOTS_MAX} segments")
    previous = -1
    for index in indices:
        _check_uint(index, f"{what} segment index")
        if not previous < index < BLOCK_ROOTS_MAX:
            raise MessageError(f"{what} segment indices must increase and stay below {BLOCK_ROOTS_MAX}")
        previous = index


@dataclass(frozen=True)
class SegmentsRequest:
    """Ask the sender of a compact proposal for the roots of the referenced segments we lack."""

    block_hash: bytes
    indices: tuple[int, ...]

    def __post_init__(self) -> None:
        if not isinstance(self.block_hash, bytes) or len(self.block_hash) != HASH_SIZE:
            raise MessageError(f"segments request block hash must be {HASH_SIZE} bytes")
        _check_indices(self.indices, "segments request")

    def to_cbor(self) -> dict[str, Any]:
        return {"block": self.block_hash, "segs": list(self.indices)}

    @classmethod
    def from_cbor(cls, value: Any) -> SegmentsRequest:
        fields = cbor.expect_map(value, "segments request", {"block", "segs"})
        indices = cbor.expect_list(fields["segs"], "segments request indices", max_items=BLOCK_ROOTS_MAX)
        return _build(
            lambda: cls(
                block_hash=cbor.expect_bytes(fields["block"], "segments request block", size=HASH_SIZE),
                indices=tuple(cbor.expect_uint(index, "segments request index") for index in indices),
            ),
            "segments request",
        )

    def encode(self) -> bytes:
        return _encode(self)


@dataclass(frozen=True)
class SegmentsResponse:
    """The roots of the segments a SegmentsRequest named, in its order."""

    block_hash: bytes
    indices: tuple[int, ...]
    roots: tuple[bytes, ...]

    def __post_init__(self) -> None:
        if not isinstance(self.block_hash, bytes) or len(self.block_hash) != HASH_SIZE:
            raise MessageError(f"segments response block hash must be {HASH_SIZE} bytes")
        _check_indices(self.indices, "segments response")
        if not isinstance(self.roots, tuple) or len(self.roots) != len(self.indices):
            raise MessageError("a segments response holds one run of roots per segment index")
        for run in self.roots:
            _check_roots_bytes(run, "a segments response run")
        if sum(len(run) for run in self.roots) > BLOCK_ROOTS_MAX * ROOT_SIZE:
            raise MessageError(f"a segments response holds more than {BLOCK_ROOTS_MAX} roots")

    def to_cbor(self) -> dict[str, Any]:
        return {"block": self.block_hash, "segs": list(self.indices), "roots": list(self.roots)}

    @classmethod
    def from_cbor(cls, value: Any) -> SegmentsResponse:
        fields = cbor.expect_map(value, "segments response", {"block", "segs", "roots"})
        indices = cbor.expect_list(fields["segs"], "segments response indices", max_items=BLOCK_ROOTS_MAX)
        runs = cbor.expect_list(fields["roots"], "segments response roots", max_items=BLOCK_ROOTS_MAX)
        return _build(
            lambda: cls(
                block_hash=cbor.expect_bytes(fields["block"], "segments response block", size=HASH_SIZE),
                indices=tuple(cbor.expect_uint(index, "segments response index") for index in indices),
                roots=tuple(cbor.expect_bytes(run, "segments response run", max_size=BLOCK_ROOTS_MAX * ROOT_SIZE)
                            for run in runs),
            ),
            "segments response",
        )

    def encode(self) -> bytes:
        return _encode(self)


Message = Union[
    Vote, Proposal, CertificateMessage, CatchUpRequest, CatchUpResponse, CompactProposal, SegmentsRequest,
    SegmentsResponse,
]

_TYPE_OF: dict[type, int] = {
    Vote: 1, Proposal: 2, CertificateMessage: 3, CatchUpRequest: 4, CatchUpResponse: 5, CompactProposal: 6,
    SegmentsRequest: 7, SegmentsResponse: 8,
}
_CLASS_OF: dict[int, type] = {code: kind for kind, code in _TYPE_OF.items()}


def _build(make: Any, what: str) -> Any:
    try:
        return make()
    except (ChainRecordError, InvalidBlock) as error:
        raise DecodeError(f"{what}: {error}") from None


def _block(value: Any) -> Block:
    return _build(lambda: Block.from_cbor(value), "block")


def _encode(message: Any) -> bytes:
    fields = message.to_cbor()
    fields["t"] = _TYPE_OF[type(message)]
    return cbor.encode(fields)


def decode_message(data: bytes) -> Message:
    """The message whose canonical encoding is ``data``; DecodeError for anything else."""
    value = cbor.decode(data, max_size=MESSAGE_SIZE_MAX, max_items=MESSAGE_ITEMS_MAX)
    if not isinstance(value, dict) or "t" not in value:
        raise DecodeError("consensus message: expected a map with a type field 't'")
    code = cbor.expect_int(value["t"], "consensus message type", min_value=1, max_value=len(_CLASS_OF))
    fields = dict(value)
    del fields["t"]
    return _CLASS_OF[code].from_cbor(fields)


@dataclass(frozen=True)
class EquivocationEvidence:
    """Two different validly signed votes of one kind, in one view, from one validator.

    Anyone holding the genesis can check it: both signatures verify and the votes differ.
    """

    first: Vote
    second: Vote

    def __post_init__(self) -> None:
        a, b = self.first, self.second
        if not isinstance(a, Vote) or not isinstance(b, Vote):
            raise MessageError("evidence holds two votes")
        if (a.signer, a.kind, a.view) != (b.signer, b.kind, b.view) or a.block_hash == b.block_hash:
            raise MessageError("evidence votes must share signer, kind and view and differ in block")

    @property
    def signer(self) -> int:
        return self.first.signer

    @property
    def view(self) -> int:
        return self.first.view

    def describe(self) -> str:
        return f"two {self.first.kind.name} votes in view {self.view}"

    def to_cbor(self) -> dict[str, Any]:
        return {"first": self.first.to_cbor(), "second": self.second.to_cbor()}

    @classmethod
    def from_cbor(cls, value: Any) -> EquivocationEvidence:
        fields = cbor.expect_map(value, "evidence", {"first", "second"})
        return _build(
            lambda: cls(first=Vote.from_cbor(fields["first"]), second=Vote.from_cbor(fields["second"])), "evidence"
        )

    def encode(self) -> bytes:
        return cbor.encode(self.to_cbor())

    @classmethod
    def decode(cls, data: bytes) -> EquivocationEvidence:
        return cls.from_cbor(cbor.decode(data, max_size=2 * (SIGNATURE_SIZE + 256)))


INVALID_BLOCK_REASON_SIZE_MAX = 200


@dataclass(frozen=True)
class InvalidBlockEvidence:
    """A leader's signed proposal of a block this validator's own checks refused.

    The vote proves that validator ``signer`` proposed block ``vote.block_hash`` in
    ``view``; ``reason`` says what was wrong with it (for example an anchor record the
    validator's bitcoind contradicts). Unlike equivocation this is not self-proving: an
    honest leader cannot make such a block, but a third party must re-check the reason
    (for an anchor, against Bitcoin) before blaming the leader.
    """

    vote: Vote
    reason: str

    def __post_init__(self) -> None:
        if not isinstance(self.vote, Vote) or self.vote.kind != VoteKind.NOTARIZE:
            raise MessageError("invalid-block evidence holds the leader's notarize vote")
        if (
            not isinstance(self.reason, str)
            or not 0 < len(self.reason.encode()) <= INVALID_BLOCK_REASON_SIZE_MAX
            or not self.reason.isprintable()
        ):
            raise MessageError(f"invalid-block evidence reason must be 1..{INVALID_BLOCK_REASON_SIZE_MAX} printable bytes")

    @property
    def signer(self) -> int:
        return self.vote.signer

    @property
    def view(self) -> int:
        return self.vote.view

    def describe(self) -> str:
        return f"a proposal in view {self.view} refused: {self.reason}"

    def to_cbor(self) -> dict[str, Any]:
        return {"vote": self.vote.to_cbor(), "reason": self.reason}

    @classmethod
    def from_cbor(cls, value: Any) -> InvalidBlockEvidence:
        fields = cbor.expect_map(value, "invalid-block evidence", {"vote", "reason"})
        return _build(
            lambda: cls(
                vote=Vote.from_cbor(fields["vote"]),
                reason=cbor.expect_text(fields["reason"], "invalid-block reason", max_size=INVALID_BLOCK_REASON_SIZE_MAX),
            ),
            "invalid-block evidence",
        )

    def encode(self) -> bytes:
        return cbor.encode(self.to_cbor())

    @classmethod
    def decode(cls, data: bytes) -> InvalidBlockEvidence:
        return cls.from_cbor(cbor.decode(data, max_size=SIGNATURE_SIZE + 2 * INVALID_BLOCK_REASON_SIZE_MAX + 256))


MisbehaviourEvidence = Union[EquivocationEvidence, InvalidBlockEvidence]
