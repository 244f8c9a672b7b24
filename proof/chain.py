"""The chain records an offline auditor checks: genesis, block header, certificate.

Everything here is pure and verifier-side. A block is final when 2f+1 of the
validators fixed by the genesis signed a FINALIZE vote for it or for one of its
descendants (Simplex finalizes a block together with all its ancestors). So the
proof that the block at some height is final is a :class:`FinalizationProof`: the
headers from that block up to the descendant that was certified (each linked to the
one before by its ``parent`` hash), plus that descendant's finalization certificate.
When the block was certified itself the header list is empty.

Every record is a canonical CBOR map with short text keys, decoded strictly: unknown
or missing fields, wrong sizes and out-of-range values are refused, so any change to
the bytes of a record is either rejected or changes its hash.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from enum import IntEnum
from functools import cached_property
from typing import Any

from proof import cbor
from proof.checks import enforced
from proof.errors import DecodeError, PantheonError, ProofError
from proof.hashing import (
    HASH_SIZE,
    TAG_BLOCK_HEADER,
    TAG_GENESIS,
    TAG_VALIDATOR_SET,
    TAG_VOTE,
    tagged_hash,
)
from proof.mldsa import PUBLIC_KEY_SIZE, SIGNATURE_SIZE
from proof.mldsa import verify as mldsa_verify

UINT64_MAX = 2**64 - 1
ZERO_HASH = bytes(HASH_SIZE)
GENESIS_PARENT = ZERO_HASH
"""Parent hash of the block at height 1 (the genesis itself is not a block)."""

VALIDATORS_MAX = 100
CHAIN_NAME_SIZE_MAX = 64
ANCHORS_PER_BLOCK_MAX = 16
GENESIS_SIZE_MAX = VALIDATORS_MAX * (PUBLIC_KEY_SIZE + 8) + 1024
HEADER_SIZE_MAX = 4096
CERTIFICATE_SIZE_MAX = VALIDATORS_MAX * (SIGNATURE_SIZE + 16) + 256
FINALIZATION_PROOF_HEADERS_MAX = 4096
"""Longest run of blocks one finalization certificate may finalize implicitly in a proof."""
FINALIZATION_PROOF_SIZE_MAX = FINALIZATION_PROOF_HEADERS_MAX * HEADER_SIZE_MAX + CERTIFICATE_SIZE_MAX


class ChainRecordError(PantheonError, ValueError):
    """A record whose fields break a structural rule (size, range, ordering)."""


def _check_hash(value: object, what: str) -> None:
    if not isinstance(value, bytes) or len(value) != HASH_SIZE:
        raise ChainRecordError(f"{what} must be {HASH_SIZE} bytes")


def _check_uint(value: object, what: str) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= UINT64_MAX:
        raise ChainRecordError(f"{what} must be an integer in 0..2**64-1, got {value!r}")


def _decoded(build: Callable[[], Any], what: str) -> Any:
    """Run a constructor on decoded fields; a structural error there is a decode error."""
    try:
        return build()
    except ChainRecordError as error:
        raise DecodeError(f"{what}: {error}") from None


def validator_set_hash(validators: tuple[bytes, ...]) -> bytes:
    """The hash every header carries, binding it to one validator set."""
    return tagged_hash(TAG_VALIDATOR_SET, cbor.encode(list(validators)))


@dataclass(frozen=True)
class Genesis:
    """The chain's identity: its validators and anchoring parameters. Its hash is the chain id."""

    chain_name: str
    validators: tuple[bytes, ...]
    created_at_ms: int
    anchor_every_blocks: int
    anchor_every_ms: int
    anchor_final_depth: int

    def __post_init__(self) -> None:
        if not isinstance(self.chain_name, str) or not 0 < len(self.chain_name.encode()) <= CHAIN_NAME_SIZE_MAX:
            raise ChainRecordError(f"chain_name must be 1..{CHAIN_NAME_SIZE_MAX} bytes of text")
        if not isinstance(self.validators, tuple):
            raise ChainRecordError("validators must be a tuple of public keys")
        n = len(self.validators)
        if not 1 <= n <= VALIDATORS_MAX or (n - 1) % 3 != 0:
            raise ChainRecordError(
                f"validator count must be 3f+1 (1, 4, 7, ...) and at most {VALIDATORS_MAX}, got {n}"
            )
        for index, key in enumerate(self.validators):
            if not isinstance(key, bytes) or len(key) != PUBLIC_KEY_SIZE:
                raise ChainRecordError(f"validator {index}: public key must be {PUBLIC_KEY_SIZE} bytes")
        if len(set(self.validators)) != n:
            raise ChainRecordError("validator public keys must be distinct")
        for name in ("created_at_ms", "anchor_every_blocks", "anchor_every_ms", "anchor_final_depth"):
            _check_uint(getattr(self, name), name)

    @property
    def n(self) -> int:
        return len(self.validators)

    @property
    def f(self) -> int:
        """Faults tolerated: n = 3f + 1."""
        return (self.n - 1) // 3

    @property
    def quorum(self) -> int:
        """Signatures a certificate needs: 2f + 1."""
        return 2 * self.f + 1

    def to_cbor(self) -> dict[str, Any]:
        return {
            "name": self.chain_name,
            "validators": list(self.validators),
            "created_ms": self.created_at_ms,
            "anchor_blocks": self.anchor_every_blocks,
            "anchor_ms": self.anchor_every_ms,
            "anchor_depth": self.anchor_final_depth,
        }

    @classmethod
    def from_cbor(cls, value: Any) -> Genesis:
        fields = cbor.expect_map(
            value, "genesis", {"name", "validators", "created_ms", "anchor_blocks", "anchor_ms", "anchor_depth"}
        )
        keys = cbor.expect_list(fields["validators"], "genesis validators", max_items=VALIDATORS_MAX)
        validators = tuple(
            cbor.expect_bytes(key, f"genesis validator {i}", size=PUBLIC_KEY_SIZE) for i, key in enumerate(keys)
        )
        return _decoded(
            lambda: cls(
                chain_name=cbor.expect_text(fields["name"], "genesis name", max_size=CHAIN_NAME_SIZE_MAX),
                validators=validators,
                created_at_ms=cbor.expect_uint(fields["created_ms"], "genesis created_ms"),
                anchor_every_blocks=cbor.expect_uint(fields["anchor_blocks"], "genesis anchor_blocks"),
                anchor_every_ms=cbor.expect_uint(fields["anchor_ms"], "genesis anchor_ms"),
                anchor_final_depth=cbor.expect_uint(fields["anchor_depth"], "genesis anchor_depth"),
            ),
            "genesis",
        )

    def encode(self) -> bytes:
        return cbor.encode(self.to_cbor())

    @classmethod
    def decode(cls, data: bytes) -> Genesis:
        return cls.from_cbor(cbor.decode(data, max_size=GENESIS_SIZE_MAX))

    @cached_property
    def hash(self) -> bytes:
        """The chain id: every vote and header is bound to it."""
        return tagged_hash(TAG_GENESIS, self.encode())

    @cached_property
    def validator_set_hash(self) -> bytes:
        return validator_set_hash(self.validators)


@dataclass(frozen=True)
class AnchorRef:
    """A Bitcoin anchor of an earlier Pantheon block, recorded in a later block."""

    txid: bytes
    vout: int
    anchored_block_hash: bytes
    btc_block_hash: bytes
    btc_height: int

    def __post_init__(self) -> None:
        _check_hash(self.txid, "anchor txid")
        _check_hash(self.anchored_block_hash, "anchored block hash")
        _check_hash(self.btc_block_hash, "anchor bitcoin block hash")
        _check_uint(self.vout, "anchor vout")
        _check_uint(self.btc_height, "anchor bitcoin height")

    def to_cbor(self) -> dict[str, Any]:
        return {
            "txid": self.txid,
            "vout": self.vout,
            "block": self.anchored_block_hash,
            "btc_block": self.btc_block_hash,
            "btc_height": self.btc_height,
        }

    @classmethod
    def from_cbor(cls, value: Any) -> AnchorRef:
        fields = cbor.expect_map(value, "anchor", {"txid", "vout", "block", "btc_block", "btc_height"})
        return _decoded(
            lambda: cls(
                txid=cbor.expect_bytes(fields["txid"], "anchor txid", size=HASH_SIZE),
                vout=cbor.expect_uint(fields["vout"], "anchor vout"),
                anchored_block_hash=cbor.expect_bytes(fields["block"], "anchor block", size=HASH_SIZE),
                btc_block_hash=cbor.expect_bytes(fields["btc_block"], "anchor btc_block", size=HASH_SIZE),
                btc_height=cbor.expect_uint(fields["btc_height"], "anchor btc_height"),
            ),
            "anchor",
        )


@dataclass(frozen=True)
class BlockHeader:
    """What validators sign (through its hash). The first block has height 1 and parent GENESIS_PARENT."""

    chain_id: bytes
    height: int
    view: int
    parent: bytes
    timestamp_ms: int
    proposer: int
    log_size: int
    log_root: bytes
    validator_set: bytes
    anchors: tuple[AnchorRef, ...]
    body_hash: bytes

    def __post_init__(self) -> None:
        for name in ("chain_id", "parent", "log_root", "validator_set", "body_hash"):
            _check_hash(getattr(self, name), f"header {name}")
        for name in ("height", "view", "timestamp_ms", "proposer", "log_size"):
            _check_uint(getattr(self, name), f"header {name}")
        if self.height < 1 and enforced("record.header-height"):
            raise ChainRecordError("header height must be at least 1 (the genesis is not a block)")
        if (self.height == 1) != (self.parent == GENESIS_PARENT) and enforced("record.genesis-parent"):
            raise ChainRecordError("exactly the block at height 1 has the genesis parent (32 zero bytes)")
        if self.proposer >= VALIDATORS_MAX and enforced("record.proposer"):
            raise ChainRecordError(f"header proposer {self.proposer} is not below {VALIDATORS_MAX}")
        if not isinstance(self.anchors, tuple) or len(self.anchors) > ANCHORS_PER_BLOCK_MAX:
            raise ChainRecordError(f"header anchors must be a tuple of at most {ANCHORS_PER_BLOCK_MAX}")
        if not all(isinstance(anchor, AnchorRef) for anchor in self.anchors):
            raise ChainRecordError("header anchors must be AnchorRef records")

    def to_cbor(self) -> dict[str, Any]:
        return {
            "chain": self.chain_id,
            "height": self.height,
            "view": self.view,
            "parent": self.parent,
            "time_ms": self.timestamp_ms,
            "proposer": self.proposer,
            "log_size": self.log_size,
            "log_root": self.log_root,
            "vset": self.validator_set,
            "anchors": [anchor.to_cbor() for anchor in self.anchors],
            "body": self.body_hash,
        }

    @classmethod
    def from_cbor(cls, value: Any) -> BlockHeader:
        fields = cbor.expect_map(
            value,
            "header",
            {"chain", "height", "view", "parent", "time_ms", "proposer", "log_size", "log_root", "vset",
             "anchors", "body"},
        )
        anchors = tuple(
            AnchorRef.from_cbor(item)
            for item in cbor.expect_list(fields["anchors"], "header anchors", max_items=ANCHORS_PER_BLOCK_MAX)
        )
        return _decoded(
            lambda: cls(
                chain_id=cbor.expect_bytes(fields["chain"], "header chain", size=HASH_SIZE),
                height=cbor.expect_uint(fields["height"], "header height"),
                view=cbor.expect_uint(fields["view"], "header view"),
                parent=cbor.expect_bytes(fields["parent"], "header parent", size=HASH_SIZE),
                timestamp_ms=cbor.expect_uint(fields["time_ms"], "header time_ms"),
                proposer=cbor.expect_uint(fields["proposer"], "header proposer"),
                log_size=cbor.expect_uint(fields["log_size"], "header log_size"),
                log_root=cbor.expect_bytes(fields["log_root"], "header log_root", size=HASH_SIZE),
                validator_set=cbor.expect_bytes(fields["vset"], "header vset", size=HASH_SIZE),
                anchors=anchors,
                body_hash=cbor.expect_bytes(fields["body"], "header body", size=HASH_SIZE),
            ),
            "header",
        )

    def encode(self) -> bytes:
        return cbor.encode(self.to_cbor())

    @classmethod
    def decode(cls, data: bytes) -> BlockHeader:
        return cls.from_cbor(cbor.decode(data, max_size=HEADER_SIZE_MAX))

    @cached_property
    def hash(self) -> bytes:
        return tagged_hash(TAG_BLOCK_HEADER, self.encode())


class VoteKind(IntEnum):
    NOTARIZE = 1
    NULLIFY = 2
    FINALIZE = 3


def vote_message(chain_id: bytes, kind: VoteKind, view: int, block_hash: bytes) -> bytes:
    """The exact bytes a validator signs for a vote (nullify votes carry 32 zero bytes)."""
    return tagged_hash(TAG_VOTE, chain_id, cbor.encode([int(kind), view, block_hash]))


def _expect_kind(value: Any, what: str) -> VoteKind:
    return VoteKind(cbor.expect_int(value, what, min_value=min(VoteKind), max_value=max(VoteKind)))


@dataclass(frozen=True)
class Certificate:
    """2f+1 signatures over one vote: a notarization, nullification or finalization."""

    kind: VoteKind
    view: int
    block_hash: bytes
    signatures: tuple[tuple[int, bytes], ...]

    def __post_init__(self) -> None:
        if not isinstance(self.kind, VoteKind):
            raise ChainRecordError(f"certificate kind must be a VoteKind, got {self.kind!r}")
        _check_uint(self.view, "certificate view")
        _check_hash(self.block_hash, "certificate block hash")
        if (self.kind == VoteKind.NULLIFY) != (self.block_hash == ZERO_HASH) and enforced("record.nullify-zero"):
            raise ChainRecordError("exactly nullify certificates carry the zero block hash")
        if not isinstance(self.signatures, tuple) or not 1 <= len(self.signatures) <= VALIDATORS_MAX:
            raise ChainRecordError(f"certificate must hold 1..{VALIDATORS_MAX} signatures")
        previous = -1
        for entry in self.signatures:
            if not isinstance(entry, tuple) or len(entry) != 2:
                raise ChainRecordError("certificate signatures must be (index, signature) pairs")
            index, signature = entry
            _check_uint(index, "certificate signer index")
            if index <= previous and enforced("record.signer-order"):
                raise ChainRecordError("certificate signer indices must be strictly increasing")
            if index >= VALIDATORS_MAX and enforced("record.signer-bound"):
                raise ChainRecordError(f"certificate signer index {index} is not below {VALIDATORS_MAX}")
            if not isinstance(signature, bytes):
                raise ChainRecordError("certificate signature must be bytes")
            if not 0 < len(signature) <= SIGNATURE_SIZE and enforced("record.signature-size"):
                raise ChainRecordError(f"certificate signature must be 1..{SIGNATURE_SIZE} bytes")
            previous = index

    @property
    def signers(self) -> tuple[int, ...]:
        return tuple(index for index, _ in self.signatures)

    def to_cbor(self) -> dict[str, Any]:
        return {
            "kind": int(self.kind),
            "view": self.view,
            "block": self.block_hash,
            "sigs": [[index, signature] for index, signature in self.signatures],
        }

    @classmethod
    def from_cbor(cls, value: Any) -> Certificate:
        fields = cbor.expect_map(value, "certificate", {"kind", "view", "block", "sigs"})
        pairs = []
        for position, item in enumerate(
            cbor.expect_list(fields["sigs"], "certificate sigs", max_items=VALIDATORS_MAX)
        ):
            pair = cbor.expect_list(item, f"certificate sig {position}", max_items=2)
            if len(pair) != 2:
                raise DecodeError(f"certificate sig {position}: expected [index, signature]")
            index = cbor.expect_uint(pair[0], f"certificate sig {position} index")
            if index >= VALIDATORS_MAX and enforced("record.signer-bound"):
                raise DecodeError(f"certificate sig {position} index: {index} is outside 0 .. {VALIDATORS_MAX - 1}")
            signature = cbor.expect_bytes(pair[1], f"certificate sig {position} signature")
            if len(signature) > SIGNATURE_SIZE and enforced("record.signature-size"):
                raise DecodeError(
                    f"certificate sig {position} signature: {len(signature)} bytes exceeds the maximum of {SIGNATURE_SIZE}"
                )
            pairs.append((index, signature))
        return _decoded(
            lambda: cls(
                kind=_expect_kind(fields["kind"], "certificate kind"),
                view=cbor.expect_uint(fields["view"], "certificate view"),
                block_hash=cbor.expect_bytes(fields["block"], "certificate block", size=HASH_SIZE),
                signatures=tuple(pairs),
            ),
            "certificate",
        )

    def encode(self) -> bytes:
        return cbor.encode(self.to_cbor())

    @classmethod
    def decode(cls, data: bytes) -> Certificate:
        return cls.from_cbor(cbor.decode(data, max_size=CERTIFICATE_SIZE_MAX))


SignatureCheck = Callable[[int, bytes, bytes], bool]
"""(validator index, message, signature) -> valid: how a caller checks one signature."""


def verify_certificate_with(
    cert: Certificate, *, chain_id: bytes, validator_count: int, quorum: int, check: SignatureCheck
) -> None:
    """Verify a certificate given a per-index signature check (the consensus core plugs its own).

    Raises ProofError naming the first failed check.
    """
    if len(cert.signatures) < quorum and enforced("finality.quorum"):
        raise ProofError(f"certificate has {len(cert.signatures)} signatures, quorum is {quorum}")
    previous = -1
    for index, _ in cert.signatures:
        if index <= previous and enforced("record.signer-order"):
            raise ProofError("certificate signers are duplicated or not in increasing order")
        if index >= validator_count and enforced("finality.signer-known"):
            raise ProofError(f"certificate signer {index} is not one of the {validator_count} validators")
        previous = index
    message = vote_message(chain_id, cert.kind, cert.view, cert.block_hash)
    for index, signature in cert.signatures:
        if not check(index, message, signature) and enforced("finality.signature"):
            raise ProofError(
                f"signature of validator {index} on the {cert.kind.name.lower()} certificate "
                f"for view {cert.view} does not verify"
            )


def verify_certificate(
    genesis: Genesis,
    cert: Certificate,
    *,
    verify_sig: Callable[[bytes, bytes, bytes], bool] = mldsa_verify,
) -> None:
    """Check that 2f+1 distinct genesis validators signed ``cert``; raise ProofError otherwise."""
    keys = genesis.validators
    verify_certificate_with(
        cert,
        chain_id=genesis.hash,
        validator_count=len(keys),
        quorum=genesis.quorum,
        check=lambda index, message, signature: verify_sig(keys[index], message, signature),
    )


@dataclass(frozen=True)
class FinalizationProof:
    """Why one block is final: the headers after it up to a certified descendant, and that certificate.

    ``headers`` is empty when ``certificate`` finalizes the block itself.
    """

    headers: tuple[BlockHeader, ...]
    certificate: Certificate

    def __post_init__(self) -> None:
        if not isinstance(self.headers, tuple) or len(self.headers) > FINALIZATION_PROOF_HEADERS_MAX:
            raise ChainRecordError(f"finalization proof holds at most {FINALIZATION_PROOF_HEADERS_MAX} headers")
        if self.certificate.kind != VoteKind.FINALIZE and enforced("record.finality-kind"):
            raise ChainRecordError("a finalization proof needs a finalize certificate")

    def to_cbor(self) -> dict[str, Any]:
        return {"headers": [header.to_cbor() for header in self.headers], "cert": self.certificate.to_cbor()}

    @classmethod
    def from_cbor(cls, value: Any) -> FinalizationProof:
        fields = cbor.expect_map(value, "finalization proof", {"headers", "cert"})
        headers = tuple(
            BlockHeader.from_cbor(item)
            for item in cbor.expect_list(
                fields["headers"], "finalization proof headers", max_items=FINALIZATION_PROOF_HEADERS_MAX
            )
        )
        certificate = Certificate.from_cbor(fields["cert"])
        return _decoded(lambda: cls(headers=headers, certificate=certificate), "finalization proof")

    def encode(self) -> bytes:
        return cbor.encode(self.to_cbor())

    @classmethod
    def decode(cls, data: bytes) -> FinalizationProof:
        return cls.from_cbor(
            cbor.decode(data, max_size=FINALIZATION_PROOF_SIZE_MAX, max_items=FINALIZATION_PROOF_HEADERS_MAX * 64)
        )


def verify_finalization(
    genesis: Genesis,
    header: BlockHeader,
    proof: FinalizationProof,
    *,
    verify_sig: Callable[[bytes, bytes, bytes], bool] = mldsa_verify,
) -> None:
    """Check that ``header`` is final on the chain of ``genesis``; raise ProofError otherwise."""
    if header.chain_id != genesis.hash and enforced("chain.id"):
        raise ProofError("header belongs to another chain (chain id differs from the genesis hash)")
    previous = header
    for position, later in enumerate(proof.headers):
        if later.chain_id != genesis.hash and enforced("finality.header-chain-id"):
            raise ProofError(f"proof header {position} belongs to another chain")
        if later.parent != previous.hash and enforced("finality.header-parent"):
            raise ProofError(f"proof header {position} (height {later.height}) does not extend the one before: "
                             "its parent is not the hash of the header before it")
        if later.height != previous.height + 1 and enforced("finality.header-height"):
            raise ProofError(f"proof header {position} (height {later.height}) does not extend the one before: "
                             f"height {previous.height + 1} expected")
        previous = later
    if proof.certificate.block_hash != previous.hash and enforced("finality.cert-block"):
        raise ProofError("the finalization certificate is for another block than the last header of the proof")
    if proof.certificate.view != previous.view and enforced("finality.cert-view"):
        raise ProofError("the finalization certificate's view differs from the certified header's view")
    verify_certificate(genesis, proof.certificate, verify_sig=verify_sig)
