"""Proof bundles: what a producer fetches and an auditor checks, offline, years later.

A bundle proves one claim: "audit root R is entry i of the log of chain C at size S,
in the block at height H, which 2f+1 validators of C finalized" and, once anchored,
"... and that block's hash is in an OP_RETURN output of Bitcoin transaction T, which
is in the Bitcoin block B (time, confirmations by headers)". It is canonical CBOR (a
map with short text keys, decoded strictly), and holds:

- ``v``: format version (1);
- ``root``, ``index``: the audit root and its log index;
- ``path``: the RFC 9162 inclusion path of ``root`` at the header's log size;
- ``header``: the block header that commits to that log size and root;
- ``finality``: the finalization proof of that header (headers linking it to a
  certified descendant, and that descendant's finalize certificate);
- ``bitcoin`` (anchored bundles only): the anchor transaction (witness stripped), its
  position and merkle branch in its Bitcoin block, that block's 80-byte header, and
  the headers built on it. Its header is then the *anchored* block's, which may be
  later than the block that carried the root: the path is taken at that block's size.

The genesis is *not* inside the bundle: its 4 validator keys alone (7.8 KB) weigh as
much as the rest of an anchored bundle, and an auditor needs it once per chain, not
once per root. The auditor holds the genesis file (checked once, out of band, against
the chain id the chain's operators publish) and passes it to :func:`verify_bundle`;
the bundle's header names the chain id, which must be that genesis's hash.

Why the transaction is stored without its witness: the txid commits to every byte of
the stripped serialization and to none of the witness, so a witness byte could be
changed without changing anything the verifier checks. Storing the stripped form keeps
the rule that any change to any byte of a bundle is rejected or changes the claim.

``docs/proof-format.md`` describes every field and every check in order.
"""

from __future__ import annotations

import datetime
import math
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from typing import Any

from proof import cbor
from proof.checks import enforced
from proof.anchor_payload import anchored_block_hash
from proof.chain import BlockHeader, FinalizationProof, Genesis, verify_finalization
from proof.errors import DecodeError, PantheonError, ProofError
from proof.hashing import HASH_SIZE
from proof.merkle import leaf_hash, verify_consistency, verify_inclusion
from proof.spv import (
    BRANCH_LENGTH_MAX,
    HEADER_SIZE,
    MAIN,
    POW_LIMITS,
    TEST_NETWORKS,
    HeaderWork,
    WorkFloor,
    check_header_chain,
    hash_to_hex,
    main_work_floor,
    verify_spv,
)

BUNDLE_VERSION = 1
PATH_NODES_MAX = 64
BUNDLE_SIZE_MAX = 4 * 1024 * 1024
BITCOIN_NETWORK_SIZE_MAX = 16
BITCOIN_TX_SIZE_MAX = 100_000
"""An anchor is a few hundred bytes; 100 kB is Bitcoin's standard-transaction limit."""
CONFIRMING_HEADERS_MAX = 2016
"""Bitcoin headers after the anchor's block one bundle may carry (two weeks, 161 kB)."""

SECURITY_NONE = "none"
"""``bitcoin_security`` of an anchor on a test network: its headers cost nothing to make."""
SECURITY_WORK = "proof-of-work"
"""``bitcoin_security`` of a ``main`` anchor: every header met the work floor."""
VERDICT_PENDING = "VALID pending bundle"
VERDICT_ANCHORED = "VALID anchored bundle"
VERDICT_TEST_NETWORK = "VALID (test network: the Bitcoin part proves nothing about time)"

_BUNDLE_FIELDS = {"v", "root", "index", "path", "header", "finality"}
_BITCOIN_FIELDS = {"net", "tx", "txi", "branch", "hdr", "more"}


def _hashes(value: Any, what: str, *, max_items: int, size: int = HASH_SIZE) -> tuple[bytes, ...]:
    return tuple(
        cbor.expect_bytes(item, f"{what} {i}", size=size)
        for i, item in enumerate(cbor.expect_list(value, what, max_items=max_items))
    )


@dataclass(frozen=True)
class BitcoinAnchor:
    """The SPV material of one anchor: tx -> txid -> branch -> header (+ headers on top).

    ``tx`` is the transaction serialized without witness (its txid preimage). Hashes
    and headers are in Bitcoin's internal byte order (see proof/spv.py).
    """

    network: str
    tx: bytes
    tx_index: int
    branch: tuple[bytes, ...]
    header: bytes
    more: tuple[bytes, ...]

    def to_cbor(self) -> dict[str, Any]:
        return {
            "net": self.network,
            "tx": self.tx,
            "txi": self.tx_index,
            "branch": list(self.branch),
            "hdr": self.header,
            "more": list(self.more),
        }

    @classmethod
    def from_cbor(cls, value: Any) -> BitcoinAnchor:
        fields = cbor.expect_map(value, "bundle bitcoin", _BITCOIN_FIELDS)
        tx = cbor.expect_bytes(fields["tx"], "bundle bitcoin tx", max_size=BITCOIN_TX_SIZE_MAX)
        if len(tx) >= 6 and tx[4] == 0x00 and tx[5] != 0x00 and enforced("record.witness"):
            raise DecodeError(
                "bundle bitcoin tx carries a witness: a bundle holds the transaction without "
                "its witness (the bytes its txid is computed from)"
            )
        return cls(
            network=cbor.expect_text(fields["net"], "bundle bitcoin net", max_size=BITCOIN_NETWORK_SIZE_MAX),
            tx=tx,
            tx_index=cbor.expect_uint(fields["txi"], "bundle bitcoin txi", max_value=(1 << BRANCH_LENGTH_MAX) - 1),
            branch=_hashes(fields["branch"], "bundle bitcoin branch", max_items=BRANCH_LENGTH_MAX),
            header=cbor.expect_bytes(fields["hdr"], "bundle bitcoin hdr", size=HEADER_SIZE),
            more=_hashes(fields["more"], "bundle bitcoin more", max_items=CONFIRMING_HEADERS_MAX, size=HEADER_SIZE),
        )


@dataclass(frozen=True)
class AnchorClaim:
    """What verified SPV material proves about one Pantheon block hash.

    ``headers`` is the anchor's block and every further header, each with its bits and
    work: the evidence to judge. ``floor`` is the work floor they met (``main`` only).
    """

    network: str
    txid: bytes
    btc_block_hash: bytes
    btc_time: int
    headers: tuple[HeaderWork, ...]
    floor: WorkFloor | None

    @property
    def confirmations(self) -> int:
        return len(self.headers)

    @property
    def btc_work(self) -> int:
        return sum(header.work for header in self.headers)


def floor_time_ms(genesis: Genesis, header: BlockHeader) -> int:
    """The time that picks the ``main`` work floor: the later of the genesis creation and the block.

    Neither is the Bitcoin header's own timestamp, which the one who mines it chooses. The
    block's timestamp is under the quorum's signature, so a forger without the quorum
    cannot move it; the genesis time is fixed by the chain id, so even a dishonest quorum
    cannot pick a floor from before the chain existed.
    """
    return max(genesis.created_at_ms, header.timestamp_ms)


def verify_anchor(anchor: BitcoinAnchor, block_hash: bytes, *, floor_at_ms: int) -> AnchorClaim:
    """Check that ``anchor`` commits ``block_hash`` to a Bitcoin block with valid proof of work.

    Order: network known, transaction in the header's merkle tree (proof.spv rules,
    including the 64-byte-transaction and duplicate-node guards) with the header's
    work, OP_RETURN payload equal to ``block_hash``, each further header building on
    the one before with its own work. On ``main`` every header must also meet the work
    floor in force at ``floor_at_ms`` (see :func:`floor_time_ms`).
    """
    if anchor.network not in POW_LIMITS and enforced("bitcoin.network"):
        raise ProofError(f"unknown Bitcoin network {anchor.network!r}; known: {', '.join(POW_LIMITS)}")
    floor = main_work_floor(floor_at_ms) if anchor.network == MAIN else None
    spv = verify_spv(anchor.tx, anchor.branch, anchor.tx_index, anchor.header, network=anchor.network, floor=floor)
    anchored = anchored_block_hash(spv.transaction)
    if anchored != block_hash and enforced("bitcoin.anchored-block"):
        raise ProofError(
            f"the Bitcoin transaction {hash_to_hex(spv.txid)} anchors Pantheon block "
            f"{anchored.hex()[:16]}…, not the bundle's block {block_hash.hex()[:16]}…"
        )
    chain = check_header_chain([anchor.header, *anchor.more], network=anchor.network, floor=floor)
    return AnchorClaim(
        network=anchor.network,
        txid=spv.txid,
        btc_block_hash=spv.block_hash,
        btc_time=spv.time,
        headers=chain.headers,
        floor=floor,
    )


class PolicyError(PantheonError, ValueError):
    """A policy that cannot be applied: an unknown network name or a minimum below 1."""


@dataclass(frozen=True)
class Policy:
    """What an auditor demands beyond validity: a network and a number of confirmations.

    A valid bundle on a test network, or with fewer confirmations than asked, fails
    under a policy instead of printing a weaker verdict. ``min_confirmations`` None with
    a network required means the genesis's final depth (``anchor_depth``).
    """

    require_network: str | None = None
    min_confirmations: int | None = None

    def __post_init__(self) -> None:
        if self.require_network is not None and self.require_network not in POW_LIMITS:
            raise PolicyError(f"unknown Bitcoin network {self.require_network!r}; known: {', '.join(POW_LIMITS)}")
        if self.min_confirmations is not None and self.min_confirmations < 1:
            raise PolicyError(f"the minimum of confirmations must be at least 1, got {self.min_confirmations}")

    def confirmations_needed(self, genesis: Genesis) -> int | None:
        if self.min_confirmations is not None:
            return self.min_confirmations
        return genesis.anchor_final_depth if self.require_network is not None else None


@dataclass(frozen=True)
class Bundle:
    root: bytes
    index: int
    path: tuple[bytes, ...]
    header: BlockHeader
    finality: FinalizationProof
    bitcoin: BitcoinAnchor | None = None

    @property
    def anchored(self) -> bool:
        return self.bitcoin is not None

    def to_cbor(self) -> dict[str, Any]:
        value: dict[str, Any] = {
            "v": BUNDLE_VERSION,
            "root": self.root,
            "index": self.index,
            "path": list(self.path),
            "header": self.header.to_cbor(),
            "finality": self.finality.to_cbor(),
        }
        if self.bitcoin is not None:
            value["bitcoin"] = self.bitcoin.to_cbor()
        return value

    def encode(self) -> bytes:
        return cbor.encode(self.to_cbor())

    @classmethod
    def decode(cls, data: bytes) -> Bundle:
        value = cbor.decode(data, max_size=BUNDLE_SIZE_MAX)
        if not isinstance(value, dict):
            raise DecodeError("bundle: expected a map at the top level")
        if "v" in value:
            version = cbor.expect_uint(value["v"], "bundle version")
            if version != BUNDLE_VERSION and enforced("record.version"):
                raise DecodeError(
                    f"bundle version {version} is not supported (this verifier reads {BUNDLE_VERSION})"
                )
        fields = cbor.expect_map(value, "bundle", _BUNDLE_FIELDS, {"bitcoin"})
        path = _hashes(fields["path"], "bundle path node", max_items=PATH_NODES_MAX)
        header = BlockHeader.from_cbor(fields["header"])
        finality = FinalizationProof.from_cbor(fields["finality"])
        bitcoin = BitcoinAnchor.from_cbor(fields["bitcoin"]) if "bitcoin" in fields else None
        return cls(
            root=cbor.expect_bytes(fields["root"], "bundle root", size=HASH_SIZE),
            index=cbor.expect_uint(fields["index"], "bundle index"),
            path=path,
            header=header,
            finality=finality,
            bitcoin=bitcoin,
        )


@dataclass(frozen=True)
class Claim:
    """Exactly what a valid bundle proves. The Bitcoin fields are None (or empty) for a pending bundle.

    ``txid`` and ``btc_block_hash`` are in internal byte order (``to_json`` prints them
    the way bitcoind does). ``btc_headers`` is the evidence to judge: the anchor's block
    and every further header with its bits and work; ``final_depth`` is the genesis's
    ``anchor_depth``, which the claim compares with, never requires (a :class:`Policy`
    does). The Bitcoin block's height is not here: its header does not commit to it; ask
    a Bitcoin node (``pantheon verify --bitcoind``). Two bundles may differ in bytes and
    verify to one claim (docs/proof-format.md section 7): the claim is what is unique.
    """

    root: bytes
    index: int
    log_size: int
    log_root: bytes
    chain_id: bytes
    chain_name: str
    height: int
    block_hash: bytes
    signers: tuple[int, ...]
    final_depth: int
    bitcoin_network: str | None = None
    txid: bytes | None = None
    btc_block_hash: bytes | None = None
    btc_time: int | None = None
    btc_headers: tuple[HeaderWork, ...] = ()
    work_floor: WorkFloor | None = None

    @property
    def anchored(self) -> bool:
        return self.txid is not None

    @property
    def confirmations(self) -> int | None:
        """The anchor's block and the headers on it, as the bundle shows them (not a node's word)."""
        return len(self.btc_headers) if self.anchored else None

    @property
    def final(self) -> bool:
        """Whether the confirmations reach the genesis's ``anchor_depth``."""
        return self.anchored and len(self.btc_headers) >= self.final_depth

    @property
    def chain_work(self) -> int:
        return sum(header.work for header in self.btc_headers)

    @property
    def test_network(self) -> bool:
        return self.bitcoin_network in TEST_NETWORKS

    @property
    def bitcoin_security(self) -> str | None:
        if not self.anchored:
            return None
        return SECURITY_NONE if self.test_network else SECURITY_WORK

    @property
    def verdict(self) -> str:
        """The first line an auditor reads: a test-network anchor never reads like a mainnet one."""
        if not self.anchored:
            return VERDICT_PENDING
        return VERDICT_TEST_NETWORK if self.test_network else VERDICT_ANCHORED

    def to_json(self) -> dict[str, Any]:
        doc: dict[str, Any] = {
            "state": "anchored" if self.anchored else "pending",
            "root": self.root.hex(),
            "index": self.index,
            "log_size": self.log_size,
            "log_root": self.log_root.hex(),
            "chain_id": self.chain_id.hex(),
            "chain_name": self.chain_name,
            "height": self.height,
            "block_hash": self.block_hash.hex(),
            "signers": list(self.signers),
        }
        if self.anchored:
            assert self.txid is not None and self.btc_block_hash is not None
            doc["bitcoin_security"] = self.bitcoin_security
            headers, total = [], 0
            for header in self.btc_headers:
                total += header.work
                headers.append({
                    "block_hash": hash_to_hex(header.hash),
                    "bits": f"{header.bits:08x}",
                    "work": work_hex(header.work),
                    "chain_work": work_hex(total),
                })
            doc["bitcoin"] = {
                "network": self.bitcoin_network,
                "txid": hash_to_hex(self.txid),
                "block_hash": hash_to_hex(self.btc_block_hash),
                "time": self.btc_time,
                "confirmations": self.confirmations,
                "final_depth": self.final_depth,
                "final": self.final,
                "chain_work": work_hex(total),
                "work_floor": None if self.work_floor is None else {
                    "difficulty": self.work_floor.difficulty, "since_ms": self.work_floor.since_ms,
                },
                "headers": headers,
            }
        return doc

    def summary(self) -> str:
        text = (
            f"root {self.root.hex()} is entry {self.index} of the log of size {self.log_size} "
            f"(root {self.log_root.hex()[:16]}…), in block {self.height} ({self.block_hash.hex()[:16]}…) "
            f"of chain {self.chain_name} ({self.chain_id.hex()[:16]}…), finalized by validators "
            f"{{{', '.join(map(str, self.signers))}}}"
        )
        if not self.anchored:
            return text + "; not yet anchored in Bitcoin (pending bundle)"
        assert self.txid is not None and self.btc_block_hash is not None
        text += (
            f"; that block is committed by Bitcoin transaction {hash_to_hex(self.txid)} in {self.bitcoin_network} "
            f"block {hash_to_hex(self.btc_block_hash)} (time {_utc(self.btc_time)}, "
            f"{self.confirmations} confirmation{'s' if self.confirmations != 1 else ''} by headers, "
            f"{'reaching' if self.final else 'short of'} the final depth {self.final_depth}, "
            f"chain work {work_log2(self.chain_work)} expected hashes)"
        )
        if self.test_network:
            text += f"; {self.bitcoin_network} is a test network: the Bitcoin part proves nothing about time"
        return text


def work_hex(work: int) -> str:
    """Chain work as bitcoind prints ``chainwork``: 64 lowercase hex digits (exact, unlike a JSON number)."""
    return f"{work:064x}"


def work_log2(work: int) -> str:
    """Work as a power of two, to the hundredth: how an auditor compares it with a forger's budget."""
    return f"2^{math.log2(work):.2f}" if work else "0"


def _utc(seconds: int | None) -> str:
    if seconds is None:
        return "?"
    return datetime.datetime.fromtimestamp(seconds, datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _check_genesis(genesis: Genesis, chain_id: bytes | None) -> None:
    if chain_id is not None and genesis.hash != chain_id and enforced("pin.chain-id"):
        raise ProofError(
            f"the genesis has chain id {genesis.hash.hex()[:16]}…, not the expected {chain_id.hex()[:16]}…"
        )


def _check_chain(genesis: Genesis, header: BlockHeader) -> None:
    if header.chain_id != genesis.hash and enforced("chain.id"):
        raise ProofError("the bundle's block belongs to another chain than the genesis")
    if header.validator_set != genesis.validator_set_hash and enforced("chain.vset"):
        raise ProofError("the block names another validator set than the genesis")


def _check_certified(genesis: Genesis, header: BlockHeader, finality: FinalizationProof) -> None:
    _check_chain(genesis, header)
    verify_finalization(genesis, header, finality)


def verify_bundle(
    data: bytes, *, genesis: Genesis, chain_id: bytes | None = None, policy: Policy | None = None
) -> Claim:
    """Check a bundle against the genesis; return the claim or raise ProofError/DecodeError.

    ``chain_id``, when given, pins the genesis: an auditor who knows the chain id from
    an independent source need not trust the genesis file they were handed. ``policy``,
    when given, turns a weaker Bitcoin part (another network, fewer confirmations, no
    anchor yet) into a failure of the step "policy".
    """
    with _check("genesis"):
        _check_genesis(genesis, chain_id)
    with _check("decode"):
        bundle = Bundle.decode(data)
    header = bundle.header
    with _check("chain"):
        _check_chain(genesis, header)
    with _check("block certificate"):
        verify_finalization(genesis, header, bundle.finality)
    with _check("inclusion proof"):
        verify_inclusion(leaf_hash(bundle.root), bundle.index, header.log_size, list(bundle.path), header.log_root)
    claim = Claim(
        root=bundle.root,
        index=bundle.index,
        log_size=header.log_size,
        log_root=header.log_root,
        chain_id=genesis.hash,
        chain_name=genesis.chain_name,
        height=header.height,
        block_hash=header.hash,
        signers=bundle.finality.certificate.signers,
        final_depth=genesis.anchor_final_depth,
    )
    if bundle.bitcoin is not None:
        with _check("bitcoin anchor"):
            anchor = verify_anchor(bundle.bitcoin, header.hash, floor_at_ms=floor_time_ms(genesis, header))
        claim = replace(
            claim,
            bitcoin_network=anchor.network,
            txid=anchor.txid,
            btc_block_hash=anchor.btc_block_hash,
            btc_time=anchor.btc_time,
            btc_headers=anchor.headers,
            work_floor=anchor.floor,
        )
    if policy is not None:
        with _check("policy"):
            _check_policy(claim, policy, genesis)
    return claim


def _check_policy(claim: Claim, policy: Policy, genesis: Genesis) -> None:
    needed = policy.confirmations_needed(genesis)
    if policy.require_network is None and needed is None:
        return
    if not claim.anchored and enforced("policy.pending"):
        raise ProofError("the bundle is pending: it has no Bitcoin anchor yet, and the policy requires one")
    if (policy.require_network is not None and claim.bitcoin_network != policy.require_network
            and enforced("policy.network")):
        raise ProofError(
            f"the anchor is on {claim.bitcoin_network!r}, the policy requires {policy.require_network!r}"
            + (" (a test network proves nothing about time)" if claim.test_network else "")
        )
    if needed is not None and len(claim.btc_headers) < needed and enforced("policy.confirmations"):
        raise ProofError(
            f"the bundle shows {len(claim.btc_headers)} confirmation{'s' if len(claim.btc_headers) != 1 else ''} "
            f"by headers, the policy requires {needed}"
        )


@contextmanager
def _check(step: str) -> Iterator[None]:
    """Name the verification step in the error, so the auditor reads which check failed.

    Every message of :func:`verify_bundle` starts with one of these prefixes
    (docs/proof-format.md section 6): an independent verifier matches the step, not the
    wording after it.
    """
    try:
        yield
    except ProofError as exc:
        raise ProofError(f"{step}: {exc}") from exc
    except DecodeError as exc:
        raise DecodeError(f"{step}: {exc}") from exc


@dataclass(frozen=True)
class CertifiedBlock:
    """A finalized header with its finalization proof: one certified log state (size, root).

    What ``GET /v1/blocks/{height}?format=cbor`` serves, and what a monitor walks.
    """

    header: BlockHeader
    finality: FinalizationProof

    def to_cbor(self) -> dict[str, Any]:
        return {"header": self.header.to_cbor(), "finality": self.finality.to_cbor()}

    def encode(self) -> bytes:
        return cbor.encode(self.to_cbor())

    @classmethod
    def from_cbor(cls, value: Any) -> CertifiedBlock:
        fields = cbor.expect_map(value, "certified block", {"header", "finality"})
        return cls(
            header=BlockHeader.from_cbor(fields["header"]),
            finality=FinalizationProof.from_cbor(fields["finality"]),
        )

    @classmethod
    def decode(cls, data: bytes) -> CertifiedBlock:
        return cls.from_cbor(cbor.decode(data, max_size=BUNDLE_SIZE_MAX))

    def verify(self, genesis: Genesis) -> None:
        """Raise ProofError unless 2f+1 validators of ``genesis`` finalized this header."""
        _check_certified(genesis, self.header, self.finality)


@dataclass(frozen=True)
class ConsistencyRecord:
    """An RFC 9162 consistency proof between two certified log states.

    Both ends travel with their certificates, so a monitor holding only the genesis
    learns that the log of size ``old.header.log_size`` is a prefix of the later one.
    """

    old: CertifiedBlock
    new: CertifiedBlock
    path: tuple[bytes, ...]

    def to_cbor(self) -> dict[str, Any]:
        return {"v": BUNDLE_VERSION, "old": self.old.to_cbor(), "new": self.new.to_cbor(), "path": list(self.path)}

    def encode(self) -> bytes:
        return cbor.encode(self.to_cbor())

    @classmethod
    def decode(cls, data: bytes) -> ConsistencyRecord:
        value = cbor.decode(data, max_size=BUNDLE_SIZE_MAX)
        fields = cbor.expect_map(value, "consistency", {"v", "old", "new", "path"})
        version = cbor.expect_uint(fields["v"], "consistency version")
        if version != BUNDLE_VERSION:
            raise DecodeError(
                f"consistency record version {version} is not supported (this verifier reads {BUNDLE_VERSION})"
            )
        return cls(
            old=CertifiedBlock.from_cbor(fields["old"]),
            new=CertifiedBlock.from_cbor(fields["new"]),
            path=_hashes(fields["path"], "consistency path node", max_items=PATH_NODES_MAX),
        )

    def verify(self, genesis: Genesis | None) -> None:
        """Check the path between the two headers' log states; with a genesis, their certificates first.

        Without a genesis this only shows that the two log states *as the server states
        them* are consistent: the caller must say so.
        """
        if genesis is not None:
            self.old.verify(genesis)
            self.new.verify(genesis)
        old, new = self.old.header, self.new.header
        if old.chain_id != new.chain_id:
            raise ProofError("the two log states belong to different chains")
        if old.height > new.height:
            raise ProofError(f"the old log state is at height {old.height}, after the new one at {new.height}")
        verify_consistency(old.log_size, new.log_size, list(self.path), old.log_root, new.log_root)


@dataclass(frozen=True)
class AnchorRecord:
    """One anchored checkpoint as a node serves it: Pantheon height, SPV material, Bitcoin height.

    ``btc_height`` is what the node's bitcoind said: the header does not commit to it.
    """

    height: int
    block_hash: bytes
    bitcoin: BitcoinAnchor
    btc_height: int

    def to_cbor(self) -> dict[str, Any]:
        return {
            "height": self.height,
            "block": self.block_hash,
            "bitcoin": self.bitcoin.to_cbor(),
            "btc_height": self.btc_height,
        }

    def encode(self) -> bytes:
        return cbor.encode(self.to_cbor())

    @classmethod
    def decode(cls, data: bytes) -> AnchorRecord:
        fields = cbor.expect_map(
            cbor.decode(data, max_size=BUNDLE_SIZE_MAX), "anchor record", {"height", "block", "bitcoin", "btc_height"}
        )
        return cls(
            height=cbor.expect_uint(fields["height"], "anchor record height"),
            block_hash=cbor.expect_bytes(fields["block"], "anchor record block", size=HASH_SIZE),
            bitcoin=BitcoinAnchor.from_cbor(fields["bitcoin"]),
            btc_height=cbor.expect_uint(fields["btc_height"], "anchor record btc_height"),
        )
