"""A block: its header and its body, the ordered audit roots (n * 32 bytes).

The body travels as one byte string, never as a list of per-root objects: blocks carry
thousands of roots and every per-root Python object costs. The header binds the body
through ``body_hash`` and the log through ``log_size``/``log_root``.

:func:`check_extension` holds every validity rule that needs no IO and no clock, so
that the core (for proposals) and catch-up (for finalized history) apply the very
same rules. The core adds the clock rule (timestamp not too far ahead) and asks the
driver for the IO rules (roots not already logged, anchors exist in Bitcoin).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from proof import cbor
from proof.chain import GENESIS_PARENT, AnchorRef, BlockHeader, Genesis, HEADER_SIZE_MAX
from proof.compact import CompactRange
from proof.errors import DecodeError, PantheonError
from proof.hashing import HASH_SIZE, TAG_BLOCK_BODY, tagged_hash

ROOT_SIZE = HASH_SIZE
BLOCK_ROOTS_MAX = 65_536
"""Hard wire bound on roots per block (2 MiB of body); CoreConfig may set a lower one."""
BLOCK_SIZE_MAX = BLOCK_ROOTS_MAX * ROOT_SIZE + HEADER_SIZE_MAX + 64
STORED_SUBTREE_LEVEL = 4
"""The smallest perfect subtrees (16 leaves) a node's log stores a record for
(storage.merkle_log.TILE_LEVEL, which a test holds equal): check_extension hands their hashes on."""


class InvalidBlock(PantheonError):
    """A block that breaks a validity rule. ``reason`` is a short stable code for counters."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"invalid block ({reason}): {detail}")
        self.reason = reason


def body_hash(roots: bytes) -> bytes:
    """The header's commitment to the ordered roots."""
    return tagged_hash(TAG_BLOCK_BODY, roots)


@dataclass(frozen=True)
class Block:
    header: BlockHeader
    roots: bytes

    def __post_init__(self) -> None:
        if not isinstance(self.header, BlockHeader):
            raise InvalidBlock("type", "header must be a BlockHeader")
        if not isinstance(self.roots, bytes) or len(self.roots) % ROOT_SIZE:
            raise InvalidBlock("roots", f"roots must be bytes, a multiple of {ROOT_SIZE} long")
        if len(self.roots) > BLOCK_ROOTS_MAX * ROOT_SIZE:
            raise InvalidBlock("too_many_roots", f"more than {BLOCK_ROOTS_MAX} roots")

    @property
    def hash(self) -> bytes:
        return self.header.hash

    @property
    def root_count(self) -> int:
        return len(self.roots) // ROOT_SIZE

    def to_cbor(self) -> dict[str, Any]:
        return {"header": self.header.to_cbor(), "roots": self.roots}

    @classmethod
    def from_cbor(cls, value: Any) -> Block:
        fields = cbor.expect_map(value, "block", {"header", "roots"})
        header = BlockHeader.from_cbor(fields["header"])
        roots = cbor.expect_bytes(fields["roots"], "block roots", max_size=BLOCK_ROOTS_MAX * ROOT_SIZE)
        if len(roots) % ROOT_SIZE:
            raise DecodeError(f"block roots: {len(roots)} bytes is not a multiple of {ROOT_SIZE}")
        return cls(header=header, roots=roots)

    def encode(self) -> bytes:
        return cbor.encode(self.to_cbor())

    @classmethod
    def decode(cls, data: bytes) -> Block:
        return cls.from_cbor(cbor.decode(data, max_size=BLOCK_SIZE_MAX))


def leader(view: int, validator_count: int) -> int:
    """Round-robin leader of ``view``."""
    return view % validator_count


def build_block(
    *,
    genesis: Genesis,
    view: int,
    parent: BlockHeader | None,
    log: CompactRange,
    roots: bytes,
    timestamp_ms: int,
    anchors: tuple[AnchorRef, ...] = (),
) -> Block:
    """The block the leader of ``view`` proposes on ``parent`` (None: the first block).

    ``log`` is the compact range at the parent (as handed out in RequestProposal); it is
    not modified. The timestamp is raised to parent's + 1 if the clock lags, because
    timestamps must strictly increase along the chain.
    """
    return build_proposal(genesis=genesis, view=view, parent=parent, log=log, roots=roots,
                          timestamp_ms=timestamp_ms, anchors=anchors).block


@dataclass(frozen=True)
class BuiltProposal:
    """A block as its builder made it, with the work its check would repeat: the log edge
    after it and the hashes of the subtrees its roots complete (check_extension's ``built``)."""

    block: Block
    edge: CompactRange = field(repr=False)
    subtrees: tuple[bytes, ...] = field(repr=False)


def build_proposal(
    *,
    genesis: Genesis,
    view: int,
    parent: BlockHeader | None,
    log: CompactRange,
    roots: bytes,
    timestamp_ms: int,
    anchors: tuple[AnchorRef, ...] = (),
) -> BuiltProposal:
    """:func:`build_block`, keeping the edge and subtree hashes it computed."""
    edge = log.copy()
    kept = edge.extend_roots(roots, keep_level=STORED_SUBTREE_LEVEL)
    if parent is not None:
        timestamp_ms = max(timestamp_ms, parent.timestamp_ms + 1)
    header = BlockHeader(
        chain_id=genesis.hash,
        height=1 if parent is None else parent.height + 1,
        view=view,
        parent=GENESIS_PARENT if parent is None else parent.hash,
        timestamp_ms=timestamp_ms,
        proposer=leader(view, genesis.n),
        log_size=edge.size,
        log_root=edge.root(),
        validator_set=genesis.validator_set_hash,
        anchors=anchors,
        body_hash=body_hash(roots),
    )
    return BuiltProposal(Block(header=header, roots=roots), edge, tuple(kept))


def check_header_extension(genesis: Genesis, parent: BlockHeader | None, header: BlockHeader) -> None:
    """The rules a header alone must meet as the child of ``parent`` (None: the first block).

    Catch-up checks headers it receives without their bodies (the tail that links a
    response to its certified descendant) by these same rules.
    """
    if header.chain_id != genesis.hash:
        raise InvalidBlock("chain_id", "block belongs to another chain")
    if header.validator_set != genesis.validator_set_hash:
        raise InvalidBlock("validator_set", "block names another validator set")
    want_parent = GENESIS_PARENT if parent is None else parent.hash
    if header.parent != want_parent:
        raise InvalidBlock("parent", "block does not extend the expected parent")
    want_height = 1 if parent is None else parent.height + 1
    if header.height != want_height:
        raise InvalidBlock("height", f"height {header.height}, want {want_height}")
    if parent is not None and header.view <= parent.view:
        raise InvalidBlock("view", f"view {header.view} is not above the parent's view {parent.view}")
    if parent is not None and header.timestamp_ms <= parent.timestamp_ms:
        raise InvalidBlock("timestamp", "timestamp does not increase over the parent's")
    if header.proposer != leader(header.view, genesis.n):
        raise InvalidBlock("proposer", f"validator {header.proposer} is not the leader of view {header.view}")


def check_extension(
    genesis: Genesis,
    parent: BlockHeader | None,
    parent_log: CompactRange,
    block: Block,
    *,
    block_roots_max: int = BLOCK_ROOTS_MAX,
    subtrees: list[bytes] | None = None,
    built: BuiltProposal | None = None,
    split: list[bytes] | None = None,
) -> CompactRange:
    """Check every pure rule for ``block`` as the child of ``parent``; return the log edge after it.

    ``parent`` None means the block must be the first one (height 1, on the genesis).
    Raises InvalidBlock naming the rule broken. ``subtrees``, if given, receives the hashes
    of the perfect subtrees of at least 2**STORED_SUBTREE_LEVEL leaves the block's roots
    complete (CompactRange.extend_roots): the node records its append stores, computed here
    once instead of again at the append. ``built``: this validator's own proposal as
    :func:`build_proposal` made it; its edge and subtrees are taken instead of hashing the
    roots again (every other rule is still checked, and the header must match that edge).
    ``split``, if given, receives the roots as separate bytes objects, each with its hash
    already computed by the duplicate check: lookups by the node that follow reuse them.
    """
    header = block.header
    check_header_extension(genesis, parent, header)
    count = block.root_count
    if count > block_roots_max:
        raise InvalidBlock("too_many_roots", f"{count} roots, at most {block_roots_max} allowed")
    if body_hash(block.roots) != header.body_hash:
        raise InvalidBlock("body_hash", "body hash does not match the roots")
    roots = block.roots
    parts = [roots[i : i + ROOT_SIZE] for i in range(0, len(roots), ROOT_SIZE)]
    if len(set(parts)) != count:
        raise InvalidBlock("duplicate_root", "a root appears twice in the block")
    if header.log_size != parent_log.size + count:
        raise InvalidBlock("log_size", f"log size {header.log_size}, want {parent_log.size + count}")
    if built is not None and built.block is block:
        edge, kept = built.edge.copy(), list(built.subtrees)
    else:
        edge = parent_log.copy()
        kept = edge.extend_roots(roots, keep_level=None if subtrees is None else STORED_SUBTREE_LEVEL)
    if edge.root() != header.log_root:
        raise InvalidBlock("log_root", "log root does not match the parent's log extended by the roots")
    if subtrees is not None:
        subtrees.extend(kept)
    if split is not None:
        split.extend(parts)
    return edge
