"""A small real chain for tests: ML-DSA validators, blocks built by the consensus rules, signed certificates."""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from consensus.block import Block, build_block
from proof.chain import Certificate, FinalizationProof, Genesis, VoteKind, vote_message
from proof.compact import CompactRange
from proof.mldsa import SigningKey


@dataclass
class TestChain:
    keys: list[SigningKey]
    genesis: Genesis
    blocks: list[Block] = field(default_factory=list)
    proofs: list[FinalizationProof] = field(default_factory=list)
    log: CompactRange = field(default_factory=CompactRange)

    def certify(self, block: Block, signers: list[int] | None = None) -> Certificate:
        chosen = signers if signers is not None else list(range(self.genesis.quorum))
        message = vote_message(self.genesis.hash, VoteKind.FINALIZE, block.header.view, block.hash)
        return Certificate(
            kind=VoteKind.FINALIZE,
            view=block.header.view,
            block_hash=block.hash,
            signatures=tuple((i, self.keys[i].sign(message)) for i in sorted(chosen)),
        )

    def add_block(self, roots: bytes) -> Block:
        parent = self.blocks[-1].header if self.blocks else None
        view = (parent.view + 1) if parent else 0
        block = build_block(
            genesis=self.genesis, view=view, parent=parent, log=self.log, roots=roots, timestamp_ms=1_000 + view
        )
        self.log.extend_roots(roots)
        self.blocks.append(block)
        self.proofs.append(FinalizationProof(headers=(), certificate=self.certify(block)))
        return block


def make_chain(validators: int = 4, name: str = "test-chain") -> TestChain:
    keys = [SigningKey.generate() for _ in range(validators)]
    genesis = Genesis(
        chain_name=name,
        validators=tuple(k.public_key for k in keys),
        created_at_ms=1,
        anchor_every_blocks=10,
        anchor_every_ms=60_000,
        anchor_final_depth=6,
    )
    return TestChain(keys=keys, genesis=genesis)


def random_roots(count: int) -> bytes:
    return os.urandom(32 * count)
