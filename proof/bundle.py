"""Proof bundles: what a producer fetches and an auditor checks, offline, years later.

A bundle proves one claim: "audit root R is entry i of the log of chain C at size S,
in the block at height H, which 2f+1 validators of C finalized". It is canonical
CBOR (a map with short text keys, decoded strictly), and holds:

- ``v``: format version (1);
- ``root``, ``index``: the audit root and its log index;
- ``path``: the RFC 9162 inclusion path of ``root`` at the header's log size;
- ``header``: the block header that commits to that log size and root;
- ``finality``: the finalization proof of that header (headers linking it to a
  certified descendant, and that descendant's finalize certificate).

The genesis is *not* inside the bundle: its validator keys alone weigh more than a
whole bundle, and an auditor needs it once per chain, not once per root. The auditor
holds the genesis file (checked once, out of band, against the chain id the chain's
operators publish) and passes it to :func:`verify_bundle`; the bundle's header names
the chain id, which must be that genesis's hash.

The Bitcoin part (anchor transaction, merkle branch, headers) extends this format in
a later version; a bundle without it is *pending*.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from proof import cbor
from proof.chain import BlockHeader, ChainRecordError, FinalizationProof, Genesis, verify_finalization
from proof.errors import DecodeError, ProofError
from proof.hashing import HASH_SIZE
from proof.merkle import leaf_hash, verify_inclusion

BUNDLE_VERSION = 1
PATH_NODES_MAX = 64
BUNDLE_SIZE_MAX = 4 * 1024 * 1024


@dataclass(frozen=True)
class Bundle:
    root: bytes
    index: int
    path: tuple[bytes, ...]
    header: BlockHeader
    finality: FinalizationProof

    def to_cbor(self) -> dict[str, Any]:
        return {
            "v": BUNDLE_VERSION,
            "root": self.root,
            "index": self.index,
            "path": list(self.path),
            "header": self.header.to_cbor(),
            "finality": self.finality.to_cbor(),
        }

    def encode(self) -> bytes:
        return cbor.encode(self.to_cbor())

    @classmethod
    def decode(cls, data: bytes) -> Bundle:
        value = cbor.decode(data, max_size=BUNDLE_SIZE_MAX)
        fields = cbor.expect_map(value, "bundle", {"v", "root", "index", "path", "header", "finality"})
        version = cbor.expect_uint(fields["v"], "bundle version")
        if version != BUNDLE_VERSION:
            raise DecodeError(f"bundle version {version} is not supported (this verifier reads {BUNDLE_VERSION})")
        path = tuple(
            cbor.expect_bytes(node, f"bundle path node {i}", size=HASH_SIZE)
            for i, node in enumerate(cbor.expect_list(fields["path"], "bundle path", max_items=PATH_NODES_MAX))
        )
        try:
            return cls(
                root=cbor.expect_bytes(fields["root"], "bundle root", size=HASH_SIZE),
                index=cbor.expect_uint(fields["index"], "bundle index"),
                path=path,
                header=BlockHeader.from_cbor(fields["header"]),
                finality=FinalizationProof.from_cbor(fields["finality"]),
            )
        except ChainRecordError as exc:
            raise DecodeError(f"bundle: {exc}") from None


@dataclass(frozen=True)
class Claim:
    """Exactly what a valid bundle proves."""

    root: bytes
    index: int
    log_size: int
    log_root: bytes
    chain_id: bytes
    chain_name: str
    height: int
    block_hash: bytes
    signers: tuple[int, ...]

    def summary(self) -> str:
        return (
            f"root {self.root.hex()} is entry {self.index} of the log of size {self.log_size} "
            f"(root {self.log_root.hex()[:16]}…), in block {self.height} ({self.block_hash.hex()[:16]}…) "
            f"of chain {self.chain_name} ({self.chain_id.hex()[:16]}…), finalized by validators "
            f"{{{', '.join(map(str, self.signers))}}}"
        )


def verify_bundle(data: bytes, *, genesis: Genesis, chain_id: bytes | None = None) -> Claim:
    """Check a bundle against the genesis; return the claim or raise ProofError/DecodeError.

    ``chain_id``, when given, pins the genesis: an auditor who knows the chain id from
    an independent source need not trust the genesis file they were handed.
    """
    if chain_id is not None and genesis.hash != chain_id:
        raise ProofError(f"the genesis has chain id {genesis.hash.hex()[:16]}…, not the expected {chain_id.hex()[:16]}…")
    bundle = Bundle.decode(data)
    header = bundle.header
    if header.chain_id != genesis.hash:
        raise ProofError("the bundle's block belongs to another chain than the genesis")
    verify_finalization(genesis, header, bundle.finality)
    verify_inclusion(leaf_hash(bundle.root), bundle.index, header.log_size, list(bundle.path), header.log_root)
    return Claim(
        root=bundle.root,
        index=bundle.index,
        log_size=header.log_size,
        log_root=header.log_root,
        chain_id=genesis.hash,
        chain_name=genesis.chain_name,
        height=header.height,
        block_hash=header.hash,
        signers=bundle.finality.certificate.signers,
    )
