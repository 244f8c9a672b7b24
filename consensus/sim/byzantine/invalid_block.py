"""Invalid proposer: as leader, proposes a block that breaks exactly one validity rule.

The block is signed by the (real) leader, so only the validity rules stand between it
and a notarization. Every rule is one variant; each proposal picks one at random.
The simulator records each such block as invalid, and the ``honest-votes`` invariant
fails if any honest node votes for one.
"""

from __future__ import annotations

from dataclasses import replace

from consensus.block import Block, body_hash
from consensus.messages import Message, Proposal
from consensus.sim.byzantine.base import Behaviour
from proof.chain import GENESIS_PARENT
from proof.compact import CompactRange

ROOT_SIZE = 32
HASH_SIZE = 32
# Far enough ahead of any clock-skew bound a core may allow.
FUTURE_TIMESTAMP_MS = 10 * 24 * 3600 * 1000

VARIANTS: tuple[str, ...] = (
    "log_root",
    "log_size",
    "parent",
    "height",
    "too_many_roots",
    "body_hash",
    "duplicate_root",
    "proposer",
    "chain_id",
    "validator_set",
    "future_timestamp",
    "replayed_root",
)


class InvalidBlock(Behaviour):
    name = "invalid"

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.variants: dict[str, int] = {}

    def broadcast(self, message: Message, now_ms: int) -> None:
        node = self.node
        request = self.request_for(message.vote.view) if type(message) is Proposal else None
        if request is None or message.vote.signer != node.index:
            super().broadcast(message, now_ms)
            return
        variant = self.rng.choice(VARIANTS)
        block = self._corrupt(variant, message.block, request.log, now_ms)
        if block is None:
            variant = "log_root"
            block = self._corrupt(variant, message.block, request.log, now_ms)
        assert block is not None
        node.mark_invalid(block)
        proposal = node.signed_proposal(block)
        data = proposal.encode()
        for peer in node.peers:
            node.transmit(peer, data)
        self.committed += 1
        self.variants[variant] = self.variants.get(variant, 0) + 1

    def stats(self) -> dict[str, int]:
        return {"committed": self.committed, **{f"variant_{k}": v for k, v in sorted(self.variants.items())}}

    def _random_hash(self) -> bytes:
        return self.rng.randbytes(HASH_SIZE)

    def _with_roots(self, block: Block, roots: bytes, parent_log: CompactRange) -> Block:
        """``block`` with other roots and a header consistent with them (log and body)."""
        edge = parent_log.copy()
        edge.extend_roots(roots)
        header = replace(block.header, log_size=edge.size, log_root=edge.root(), body_hash=body_hash(roots))
        return Block(header=header, roots=roots)

    def _corrupt(self, variant: str, block: Block, parent_log: CompactRange, now_ms: int) -> Block | None:
        header = block.header
        rng = self.rng
        node = self.node
        if variant == "log_root":
            return Block(replace(header, log_root=self._random_hash()), block.roots)
        if variant == "log_size":
            return Block(replace(header, log_size=header.log_size + 1), block.roots)
        if variant == "parent":
            if header.height == 1:
                return None
            return Block(replace(header, parent=self._random_hash()), block.roots)
        if variant == "height":
            parent = GENESIS_PARENT if header.height == 1 else header.parent
            if header.height == 1:
                return None
            return Block(replace(header, height=header.height + 1, parent=parent), block.roots)
        if variant == "too_many_roots":
            roots = rng.randbytes(ROOT_SIZE * (node.config.block_roots_max + 1))
            return self._with_roots(block, roots, parent_log)
        if variant == "body_hash":
            return Block(replace(header, body_hash=self._random_hash()), block.roots)
        if variant == "duplicate_root":
            root = rng.randbytes(ROOT_SIZE)
            return self._with_roots(block, block.roots + root + root, parent_log)
        if variant == "proposer":
            return Block(replace(header, proposer=(header.proposer + 1) % node.genesis.n), block.roots)
        if variant == "chain_id":
            return Block(replace(header, chain_id=self._random_hash()), block.roots)
        if variant == "validator_set":
            return Block(replace(header, validator_set=self._random_hash()), block.roots)
        if variant == "future_timestamp":
            return Block(replace(header, timestamp_ms=now_ms + FUTURE_TIMESTAMP_MS), block.roots)
        if variant == "replayed_root":
            finalized = node.disk.blocks
            candidates = [b for b, _ in finalized[-8:] if b.roots]
            if not candidates:
                return None
            old = rng.choice(candidates).roots
            return self._with_roots(block, block.roots + old[:ROOT_SIZE], parent_log)
        raise ValueError(f"unknown invalid-block variant {variant!r}")
