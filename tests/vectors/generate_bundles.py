"""Generate tests/vectors/bundles: valid proof bundles with their expected claims, invalid ones with the reason.

    .venv/bin/python -m tests.vectors.generate_bundles [--out DIR]

Everything is built here from fixed seeds, without a node or bitcoind: validator keys
(ML-DSA-65 from seeds), chains of real blocks (consensus.block.build_block), RFC 9162
paths from tests/merkle_reference.py (the literal RFC definitions, not the production
log), and Bitcoin transactions, blocks and headers serialized by hand, their nonces
ground to the target of their ``bits``.

Expected claims are written from what was built (the roots, the reference tree, the
headers, the transaction bytes), never from the verifier's output; the generator then
checks that the verifier agrees, and that each invalid vector fails with its reason.

Determinism, precisely: ML-DSA signing in ``cryptography`` is hedged (randomized), so
every signature is kept in ``signatures.cbor`` (keyed by SHA-256 of public key and
message) and reused when present. With that file, running the generator again writes
byte-for-byte the same files (tests/test_bundle_vectors.py checks it). Without it, only
the signature bytes differ: every other byte, every expected claim and every expected
failure reason is the same.

Difficulty: the regtest network accepts any target up to its limit (bits 0x207fffff,
where half of all hashes qualify). Most anchored vectors use bits 0x1f00ffff (one hash
in 65,536): a changed header byte then fails proof of work instead of describing
another valid regtest header, which the every-byte-flip test relies on. One vector
uses the regtest limit itself.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import struct
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from itertools import count
from pathlib import Path
from typing import Any

from consensus.block import build_block
from proof import cbor
from proof.anchor_payload import encode_script
from proof.spv import MONEY_MAX_SAT
from proof.bundle import BitcoinAnchor, Bundle, Policy, verify_bundle
from proof.checks import switched_off
from proof.chain import AnchorRef, BlockHeader, Certificate, FinalizationProof, Genesis, VoteKind, vote_message
from proof.compact import CompactRange
from proof.errors import DecodeError, PantheonError, ProofError
from proof.mldsa import SigningKey
from proof.mldsa import verify as mldsa_verify
from tests import merkle_reference

OUT = Path(__file__).parent / "bundles"
SIGNATURES_FILE = "signatures.cbor"
BITS_VECTOR = 0x1F00FFFF
BITS_REGTEST = 0x207FFFFF
BITS_SIGNET = 0x1E0377AE
"""Signet's proof-of-work limit: about 2**22 hashes a header, the cheapest signet allows."""
BITS_MAIN_LIMIT = 0x1D00FFFF
"""Mainnet's proof-of-work limit (difficulty 1), far below the work floor."""
BTC_TIME_BASE = 1_767_225_600
CHAIN_TIME_BASE_MS = 1_767_225_600_000


def sha256(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


def sha256d(data: bytes) -> bytes:
    return sha256(sha256(data))


def seeded(label: str) -> bytes:
    return sha256(f"pantheon/test-vectors/{label}".encode())


# ---------------------------------------------------------------------------- signing


class Signatures:
    """ML-DSA signatures reused from the previous run, so that regeneration is byte-exact."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.known: dict[bytes, bytes] = {}
        if path.exists():
            pairs = cbor.decode(path.read_bytes(), max_size=16 * 1024 * 1024)
            self.known = {slot: signature for slot, signature in pairs}
        self.used: dict[bytes, bytes] = {}

    def sign(self, key: SigningKey, message: bytes) -> bytes:
        slot = sha256(key.public_key + message)
        signature = self.used.get(slot) or self.known.get(slot)
        if signature is None or not mldsa_verify(key.public_key, message, signature):
            signature = key.sign(message)
        self.used[slot] = signature
        return signature

    def save(self, path: Path) -> None:
        path.write_bytes(cbor.encode([[slot, signature] for slot, signature in sorted(self.used.items())]))


# ---------------------------------------------------------------------------- chains


def entry(i: int) -> bytes:
    return seeded(f"root/{i}")


@dataclass
class VectorChain:
    keys: list[SigningKey]
    outsider: SigningKey
    genesis: Genesis
    headers: list[BlockHeader] = field(default_factory=list)

    @property
    def entries(self) -> list[bytes]:
        return [entry(i) for i in range(self.headers[-1].log_size)]

    def header(self, height: int) -> BlockHeader:
        return self.headers[height - 1]

    def certificate(
        self,
        header: BlockHeader,
        signers: tuple[int, ...],
        signatures: Signatures,
        *,
        chain_id: bytes | None = None,
        keys: dict[int, SigningKey] | None = None,
        kind: VoteKind = VoteKind.FINALIZE,
        view: int | None = None,
    ) -> Certificate:
        view = header.view if view is None else view
        message = vote_message(chain_id or self.genesis.hash, kind, view, header.hash)
        by_index = keys or dict(enumerate(self.keys))
        return Certificate(
            kind=kind,
            view=view,
            block_hash=header.hash,
            signatures=tuple((i, signatures.sign(by_index[i], message)) for i in signers),
        )


def build_chain(n: int, block_sizes: list[int], anchors: dict[int, tuple[AnchorRef, ...]] | None = None) -> VectorChain:
    keys = [SigningKey(seeded(f"key/{n}/{i}")) for i in range(n)]
    genesis = Genesis(
        chain_name=f"vectors-{n}",
        validators=tuple(k.public_key for k in keys),
        created_at_ms=CHAIN_TIME_BASE_MS,
        anchor_every_blocks=10,
        anchor_every_ms=600_000,
        anchor_final_depth=6,
    )
    chain = VectorChain(keys=keys, outsider=SigningKey(seeded(f"key/{n}/outsider")), genesis=genesis)
    log = CompactRange()
    parent = None
    first = 0
    for view, size in enumerate(block_sizes):
        roots = b"".join(entry(i) for i in range(first, first + size))
        block = build_block(
            genesis=genesis, view=view, parent=parent, log=log, roots=roots,
            timestamp_ms=CHAIN_TIME_BASE_MS + 1_000 * (view + 1), anchors=(anchors or {}).get(view + 1, ()),
        )
        log.extend_roots(roots)
        first += size
        assert block.header.log_root == merkle_reference.mth([entry(i) for i in range(first)])
        chain.headers.append(block.header)
        parent = block.header
    return chain


# ---------------------------------------------------------------------------- bitcoin


def compact_size(n: int) -> bytes:
    if n < 0xFD:
        return bytes([n])
    if n <= 0xFFFF:
        return b"\xfd" + struct.pack("<H", n)
    return b"\xfe" + struct.pack("<I", n)


def serialize_tx(inputs: list[tuple[bytes, int, bytes, int]], outputs: list[tuple[int, bytes]],
                 *, lock_time: int = 0, witness: list[list[bytes]] | None = None) -> bytes:
    body = compact_size(len(inputs))
    for prev_txid, vout, script_sig, sequence in inputs:
        body += prev_txid + struct.pack("<I", vout) + compact_size(len(script_sig)) + script_sig
        body += struct.pack("<I", sequence)
    body += compact_size(len(outputs))
    for value, script in outputs:
        body += struct.pack("<Q", value) + compact_size(len(script)) + script
    if witness is None:
        return struct.pack("<I", 2) + body + struct.pack("<I", lock_time)
    stacks = b"".join(compact_size(len(items)) + b"".join(compact_size(len(i)) + i for i in items) for items in witness)
    return struct.pack("<I", 2) + b"\x00\x01" + body + stacks + struct.pack("<I", lock_time)


def anchor_tx(block_hash: bytes, salt: str, *, lock_time: int = 0, witness: bool = False) -> bytes:
    """A P2WPKH-funded anchor: one input, the OP_RETURN output, a change output."""
    script_sig = b"" if witness else b"\x47" + (seeded(f"{salt}/sig") * 3)[:71] + b"\x21" + (seeded(f"{salt}/pub") * 2)[:33]
    return serialize_tx(
        [(seeded(f"{salt}/prevout"), 1, script_sig, 0xFFFFFFFD)],
        [(0, encode_script(block_hash)), (99_990_000, b"\x00\x14" + seeded(f"{salt}/change")[:20])],
        lock_time=lock_time,
        witness=[[seeded(f"{salt}/w1") + seeded(f"{salt}/w2"), seeded(f"{salt}/w3")[:33]]] if witness else None,
    )


def filler_tx(salt: str) -> bytes:
    return serialize_tx(
        [(seeded(f"{salt}/prevout"), 0, b"\x16" + seeded(f"{salt}/sig")[:22], 0xFFFFFFFF)],
        [(12_345, b"\x00\x14" + seeded(f"{salt}/out")[:20])],
    )


def coinbase_tx(salt: str) -> bytes:
    return serialize_tx(
        [(bytes(32), 0xFFFFFFFF, b"\x03\x01\x02\x03" + seeded(f"{salt}/coinbase")[:8], 0xFFFFFFFF)],
        [(5_000_000_000, b"\x00\x14" + seeded(f"{salt}/miner")[:20])],
    )


def txid(raw: bytes) -> bytes:
    """Double SHA-256 of the serialization without witness (BIP 144)."""
    if raw[4:6] != b"\x00\x01":
        return sha256d(raw)
    from proof.spv import parse_transaction

    return parse_transaction(raw).txid


def merkle_root_and_branch(txids: list[bytes], index: int) -> tuple[bytes, list[bytes]]:
    """Bitcoin's merkle tree (last node of an odd level paired with itself)."""
    level, branch, position = list(txids), [], index
    while len(level) > 1:
        if len(level) % 2:
            level.append(level[-1])
        branch.append(level[position ^ 1])
        level = [sha256d(level[i] + level[i + 1]) for i in range(0, len(level), 2)]
        position >>= 1
    return level[0], branch


def target(bits: int) -> int:
    return (bits & 0x007FFFFF) << (8 * ((bits >> 24) - 3))


def mine(prev: bytes, merkle_root: bytes, time: int, bits: int, *, valid: bool = True) -> bytes:
    """An 80-byte header whose hash meets (or, with valid=False, misses) the target of ``bits``."""
    prefix = struct.pack("<I", 0x20000000) + prev + merkle_root + struct.pack("<II", time, bits)
    limit = target(bits)
    for nonce in count():
        header = prefix + struct.pack("<I", nonce)
        if (int.from_bytes(sha256d(header), "little") <= limit) == valid:
            return header
    raise AssertionError("unreachable")


@dataclass(frozen=True)
class BitcoinBlock:
    header: bytes
    branch: list[bytes]
    txids: list[bytes]


def bitcoin_block(txs: list[bytes], index: int, salt: str, bits: int, *, valid: bool = True) -> BitcoinBlock:
    txids = [txid(tx) for tx in txs]
    root, branch = merkle_root_and_branch(txids, index)
    header = mine(seeded(f"{salt}/prev-block"), root, BTC_TIME_BASE + len(salt), bits, valid=valid)
    return BitcoinBlock(header=header, branch=branch, txids=txids)


def block_with(anchor: bytes, position: int, tx_count: int, salt: str, bits: int, *, valid: bool = True) -> BitcoinBlock:
    txs = [coinbase_tx(salt)] + [filler_tx(f"{salt}/filler/{i}") for i in range(tx_count - 1)]
    txs.insert(position, anchor)
    return bitcoin_block(txs[:tx_count], position, salt, bits, valid=valid)


def confirming_headers(after: bytes, count_: int, bits: int, salt: str) -> list[bytes]:
    headers, prev = [], sha256d(after)
    for i in range(count_):
        header = mine(prev, seeded(f"{salt}/more/{i}"), BTC_TIME_BASE + 600 * (i + 1), bits)
        headers.append(header)
        prev = sha256d(header)
    return headers


# ---------------------------------------------------------------------------- vectors


@dataclass
class Built:
    chain: VectorChain
    bundle: Bundle
    claim: dict[str, Any]


def hash_to_hex(h: bytes) -> str:
    return h[::-1].hex()


def make_bundle(
    chain: VectorChain,
    *,
    index: int,
    height: int,
    signers: tuple[int, ...],
    signatures: Signatures,
    finalized_by: int | None = None,
    bitcoin: BitcoinAnchor | None = None,
) -> Built:
    header = chain.header(height)
    entries = chain.entries[: header.log_size]
    certified = chain.header(finalized_by or height)
    later = tuple(chain.headers[height:(finalized_by or height)])
    finality = FinalizationProof(headers=later, certificate=chain.certificate(certified, signers, signatures))
    bundle = Bundle(
        root=entries[index],
        index=index,
        path=tuple(merkle_reference.path(index, entries)),
        header=header,
        finality=finality,
        bitcoin=bitcoin,
    )
    claim: dict[str, Any] = {
        "state": "anchored" if bitcoin else "pending",
        "root": entries[index].hex(),
        "index": index,
        "log_size": len(entries),
        "log_root": merkle_reference.mth(entries).hex(),
        "chain_id": chain.genesis.hash.hex(),
        "chain_name": chain.genesis.chain_name,
        "height": height,
        "block_hash": header.hash.hex(),
        "signers": list(signers),
    }
    if bitcoin is not None:
        claim["bitcoin_security"] = "none" if bitcoin.network != "main" else "proof-of-work"
        headers, total = [], 0
        for raw in (bitcoin.header, *bitcoin.more):
            work = (1 << 256) // (target(struct.unpack("<I", raw[72:76])[0]) + 1)
            total += work
            headers.append({"block_hash": hash_to_hex(sha256d(raw)), "bits": raw[72:76][::-1].hex(),
                            "work": f"{work:064x}", "chain_work": f"{total:064x}"})
        depth = chain.genesis.anchor_final_depth
        claim["bitcoin"] = {
            "network": bitcoin.network,
            "txid": hash_to_hex(txid(bitcoin.tx)),
            "block_hash": hash_to_hex(sha256d(bitcoin.header)),
            "time": struct.unpack("<I", bitcoin.header[68:72])[0],
            "confirmations": len(headers),
            "final_depth": depth,
            "final": len(headers) >= depth,
            "chain_work": f"{total:064x}",
            "work_floor": None,
            "headers": headers,
        }
    return Built(chain=chain, bundle=bundle, claim=claim)


def anchored_part(block_hash: bytes, *, salt: str, position: int, tx_count: int, more: int,
                  bits: int = BITS_VECTOR, network: str = "regtest") -> BitcoinAnchor:
    tx = anchor_tx(block_hash, salt)
    block = block_with(tx, position, tx_count, salt, bits)
    return BitcoinAnchor(
        network=network, tx=tx, tx_index=position, branch=tuple(block.branch), header=block.header,
        more=tuple(confirming_headers(block.header, more, bits, salt)),
    )


@dataclass
class Invalid:
    data: bytes
    genesis: str
    error: type[PantheonError]
    reason: str
    description: str
    policy: dict[str, Any] | None = None
    chain_id: bytes | None = None
    zero_bytes_appended: int = 0
    """The input is the file followed by this many zero bytes (a 4 MiB file is not worth shipping)."""


def policy_of(doc: dict[str, Any] | None) -> Policy | None:
    """The verifier's Policy from a vector's ``policy`` field ({"require_network", "min_confirmations"})."""
    return None if doc is None else Policy(**doc)


def tweak(bundle: Bundle, change: Callable[[dict[str, Any]], None]) -> bytes:
    value = bundle.to_cbor()
    change(value)
    return cbor.encode(value)


def sixty_four_byte_attack(header: BlockHeader, salt: str) -> BitcoinAnchor:
    """A real anchor T passed off as the left half of a 64-byte transaction X in a block.

    X = txid(T) || S parses as a one-input, one-output transaction, so the block
    [coinbase, X] has merkle root H(txid(coinbase) || H(X)) = H(txid(coinbase) || H(txid(T) || S)):
    without rule 2b, branch [S, txid(coinbase)] at position 2 would "prove" T in it.
    """
    for lock_time in count():
        tx = anchor_tx(header.hash, salt, lock_time=lock_time)
        if txid(tx)[4] == 0x01:
            break
    # outpoint tail (9) | script length 0 | sequence | 1 output | value 0 | script length 4 | script | lock time
    tail = seeded(f"{salt}/tail")[:9] + b"\x00" + b"\xff" * 4 + b"\x01" + bytes(8) + b"\x04" + b"\x6a\x51\x51\x51" + bytes(4)
    assert len(tail) == 32
    sixty_four = txid(tx) + tail
    coinbase = coinbase_tx(salt)
    block = bitcoin_block([coinbase, sixty_four], 1, salt, BITS_VECTOR)
    return BitcoinAnchor(network="regtest", tx=tx, tx_index=2, branch=(tail, txid(coinbase)), header=block.header, more=())


def header_over(txids: list[bytes], index: int, salt: str, bits: int = BITS_VECTOR, *,
                valid: bool = True) -> BitcoinBlock:
    """A block header over a list of txids (the transactions themselves need not exist)."""
    root, branch = merkle_root_and_branch(txids, index)
    return BitcoinBlock(header=mine(seeded(f"{salt}/prev-block"), root, BTC_TIME_BASE + len(salt), bits, valid=valid),
                        branch=branch, txids=txids)


def inner_node_without_inputs(block_hash: bytes, salt: str) -> BitcoinAnchor:
    """A valid anchor whose first inner node (left sibling || txid) would parse as a transaction
    if a transaction without inputs were allowed: version, 0 inputs, 1 output of value 0 with a
    45-byte script (17 bytes of the sibling, 28 of the txid), the txid's last 4 bytes as lock time.
    Only the rule "at least one input" keeps this honest branch from being refused as a 64-byte
    transaction."""
    tx = anchor_tx(block_hash, salt)
    sibling = struct.pack("<I", 2) + b"\x00\x01" + bytes(8) + b"\x2d" + seeded(f"{salt}/script")[:17]
    assert len(sibling) == 32
    block = header_over([sibling, txid(tx)], 1, salt)
    return BitcoinAnchor("regtest", tx, 1, tuple(block.branch), block.header, ())


def build_vectors(signatures: Signatures) -> tuple[dict[str, Genesis], dict[str, Built], dict[str, Invalid]]:
    recorded = AnchorRef(txid=seeded("recorded/txid"), vout=0, anchored_block_hash=seeded("recorded/block"),
                         btc_block_hash=seeded("recorded/btc-block"), btc_height=812)
    chain4 = build_chain(4, [1, 1, 1, 1026, 3], anchors={5: (recorded,)})
    chain7 = build_chain(7, [1, 1, 1, 1026])
    geneses = {"genesis-v4.cbor": chain4.genesis, "genesis-v7.cbor": chain7.genesis}
    sig = signatures
    valid: dict[str, Built] = {
        "pending-v4-size1": make_bundle(chain4, index=0, height=1, signers=(0, 1, 2), signatures=sig),
        "pending-v4-size2": make_bundle(chain4, index=1, height=2, signers=(1, 2, 3), signatures=sig),
        "pending-v4-size3": make_bundle(chain4, index=2, height=3, signers=(0, 2, 3), signatures=sig),
        "pending-v4-size1029": make_bundle(chain4, index=777, height=4, signers=(0, 1, 2, 3), signatures=sig),
        "pending-v7-size1": make_bundle(chain7, index=0, height=1, signers=(0, 1, 2, 3, 4), signatures=sig),
        "pending-v7-size3": make_bundle(chain7, index=1, height=3, signers=(0, 1, 2, 3, 4, 5, 6), signatures=sig),
        "pending-v7-size1029": make_bundle(chain7, index=1000, height=4, signers=(2, 3, 4, 5, 6), signatures=sig),
        "anchored-v4-size1": make_bundle(
            chain4, index=0, height=1, signers=(0, 1, 2), signatures=sig,
            bitcoin=anchored_part(chain4.header(1).hash, salt="a4-1", position=1, tx_count=2, more=0),
        ),
        "anchored-v4-size3": make_bundle(
            chain4, index=0, height=3, finalized_by=4, signers=(1, 2, 3), signatures=sig,
            bitcoin=anchored_part(chain4.header(3).hash, salt="a4-3", position=6, tx_count=7, more=2),
        ),
        "anchored-v4-size1029": make_bundle(
            chain4, index=1028, height=4, signers=(0, 1, 3), signatures=sig,
            bitcoin=anchored_part(chain4.header(4).hash, salt="a4-1029", position=5, tx_count=12, more=5),
        ),
        "anchored-v7-size2": make_bundle(
            chain7, index=1, height=2, signers=(0, 1, 2, 3, 4), signatures=sig,
            bitcoin=anchored_part(chain7.header(2).hash, salt="a7-2", position=2, tx_count=3, more=0,
                                  bits=BITS_REGTEST),
        ),
        "anchored-v7-size1029": make_bundle(
            chain7, index=500, height=4, signers=(0, 2, 4, 5, 6), signatures=sig,
            bitcoin=anchored_part(chain7.header(4).hash, salt="a7-1029", position=37, tx_count=100, more=3),
        ),
        "pending-v4-finalized-through-descendant": make_bundle(
            chain4, index=2, height=3, finalized_by=5, signers=(0, 1, 2), signatures=sig,
        ),
        "anchored-v4-header-with-anchors": make_bundle(
            chain4, index=1031, height=5, signers=(1, 2, 3), signatures=sig,
            bitcoin=anchored_part(chain4.header(5).hash, salt="a4-5", position=4, tx_count=5, more=1),
        ),
        "anchored-v4-inner-node-shaped-like-a-tx-without-inputs": make_bundle(
            chain4, index=3, height=4, signers=(0, 1, 2), signatures=sig,
            bitcoin=inner_node_without_inputs(chain4.header(4).hash, "no-inputs-node"),
        ),
        "anchored-v4-signet": make_bundle(
            chain4, index=1, height=2, signers=(0, 1, 2), signatures=sig,
            bitcoin=anchored_part(chain4.header(2).hash, salt="a4-signet", position=1, tx_count=2, more=0,
                                  bits=BITS_SIGNET, network="signet"),
        ),
    }
    invalid = build_invalid(chain4, chain7, valid, sig)
    return geneses, valid, invalid


def build_invalid(chain4: VectorChain, chain7: VectorChain, valid: dict[str, Built], sig: Signatures) -> dict[str, Invalid]:
    base = valid["anchored-v4-size1029"].bundle
    pending = valid["pending-v4-size1029"].bundle
    anchor = base.bitcoin
    assert anchor is not None
    h4 = chain4.header(4)
    g4 = "genesis-v4.cbor"
    out: dict[str, Invalid] = {}

    def add(name: str, data: bytes, error: type[PantheonError], reason: str, description: str, genesis: str = g4,
            policy: dict[str, Any] | None = None, chain_id: bytes | None = None, zero_bytes_appended: int = 0) -> None:
        out[name] = Invalid(data=data, genesis=genesis, error=error, reason=reason, description=description,
                            policy=policy, chain_id=chain_id, zero_bytes_appended=zero_bytes_appended)

    def on_network(network: str, part: BitcoinAnchor = anchor) -> bytes:
        return with_bitcoin(BitcoinAnchor(network, part.tx, part.tx_index, part.branch, part.header, part.more))

    def with_bitcoin(part: BitcoinAnchor) -> bytes:
        return Bundle(base.root, base.index, base.path, base.header, base.finality, part).encode()

    def with_certificate(cert_cbor: dict[str, Any]) -> bytes:
        return tweak(base, lambda v: v["finality"].__setitem__("cert", cert_cbor))

    add("wrong-root", Bundle(entry(1027), base.index, base.path, base.header, base.finality, anchor).encode(),
        ProofError, "root mismatch", "the audit root is another entry of the log; path and index unchanged")
    add("wrong-index", Bundle(pending.root, 778, pending.path, pending.header, pending.finality).encode(),
        ProofError, "root mismatch", "pending bundle of entry 777 claiming index 778 with the same path")
    add("truncated-path", Bundle(base.root, base.index, base.path[:-1], base.header, base.finality, anchor).encode(),
        ProofError, "wrong path length", "the inclusion path lost its last node")
    swapped = (pending.path[1], pending.path[0], *pending.path[2:])
    add("swapped-siblings", Bundle(pending.root, pending.index, swapped, pending.header, pending.finality).encode(),
        ProofError, "root mismatch", "the first two nodes of the inclusion path are swapped")
    below = chain4.certificate(h4, (0, 1), sig)
    add("certificate-below-quorum", with_certificate(below.to_cbor()), ProofError,
        "certificate has 2 signatures, quorum is 3", "the finalize certificate carries 2 of the 3 signatures needed")
    full = base.finality.certificate.to_cbor()
    full["sigs"] = [full["sigs"][0], full["sigs"][0], full["sigs"][1]]
    add("duplicate-signer", with_certificate(full), DecodeError, "signer indices must be strictly increasing",
        "validator 0's signature counted twice to reach the quorum")
    outsider = chain4.certificate(h4, (0, 1, 4), sig, keys={0: chain4.keys[0], 1: chain4.keys[1], 4: chain4.outsider})
    add("signer-not-in-genesis", with_certificate(outsider.to_cbor()), ProofError,
        "certificate signer 4 is not one of the 4 validators", "a fifth key, not in the genesis, signs as validator 4")
    other = chain4.certificate(h4, (0, 1, 3), sig, chain_id=seeded("another-chain"))
    add("signature-over-another-chain-id", with_certificate(other.to_cbor()), ProofError,
        "signature of validator 0 on the finalize certificate", "the validators signed the vote for another chain id")
    add("altered-header-field-pending",
        tweak(pending, lambda v: v["header"].__setitem__("time_ms", v["header"]["time_ms"] + 1)),
        ProofError, "certificate is for another block", "a pending bundle whose header's timestamp is 1 ms later")
    add("altered-header-field", tweak(base, lambda v: v["header"].__setitem__("time_ms", v["header"]["time_ms"] + 1)),
        ProofError, "certificate is for another block", "the header's timestamp is one millisecond later")
    other_tx = anchor_tx(chain4.header(3).hash, "other-hash")
    other_block = block_with(other_tx, 1, 4, "other-hash", BITS_VECTOR)
    add("op-return-other-hash", with_bitcoin(BitcoinAnchor("regtest", other_tx, 1, tuple(other_block.branch),
                                                            other_block.header, ())),
        ProofError, "anchors Pantheon block", "a valid Bitcoin anchor, but of block 3, not of the bundle's block 4")
    broken = (bytes([anchor.branch[0][0] ^ 1]) + anchor.branch[0][1:], *anchor.branch[1:])
    add("broken-merkle-branch", with_bitcoin(BitcoinAnchor("regtest", anchor.tx, anchor.tx_index, broken, anchor.header,
                                                            anchor.more)),
        ProofError, "not to the header's merkle root", "one bit of the first merkle branch node is flipped")
    weak = block_with(anchor.tx, anchor.tx_index, 12, "a4-1029", BITS_VECTOR, valid=False)
    add("insufficient-work", with_bitcoin(BitcoinAnchor("regtest", anchor.tx, anchor.tx_index, tuple(weak.branch),
                                                         weak.header, ())),
        ProofError, "insufficient proof of work", "the Bitcoin header's hash does not meet the target of its bits")
    add("sixty-four-byte-transaction", with_bitcoin(sixty_four_byte_attack(h4, "64-byte")), ProofError,
        "parses as a transaction",
        "the anchor is passed off as half of a real 64-byte transaction of the block (leaf-node weakness)")
    phantom_tx = anchor_tx(h4.hash, "phantom")
    phantom = block_with(phantom_tx, 2, 3, "phantom", BITS_VECTOR)
    add("duplicated-last-transaction", with_bitcoin(BitcoinAnchor("regtest", phantom_tx, 3, tuple(phantom.branch),
                                                                   phantom.header, ())),
        ProofError, "CVE-2012-2459", "the last transaction of an odd level claimed at the phantom position after it")
    bad_more = list(anchor.more)
    bad_more[1] = mine(seeded("elsewhere"), seeded("elsewhere/root"), BTC_TIME_BASE, BITS_VECTOR)
    add("broken-header-chain", with_bitcoin(BitcoinAnchor("regtest", anchor.tx, anchor.tx_index, anchor.branch,
                                                           anchor.header, tuple(bad_more))),
        ProofError, "not on header 1", "the second confirming header builds on another block")
    add("wrong-network", on_network("main"),
        ProofError, "demand less work than main allows", "regtest headers presented as mainnet")
    for name in ("test", "testnet4"):
        add(f"regtest-headers-as-{name}", on_network(name), ProofError, f"demand less work than {name} allows",
            f"regtest headers presented as {name} (the name is known, its limit applies)")
    add("unknown-network", on_network("mainnet"), ProofError, "bitcoin anchor: unknown Bitcoin network 'mainnet'",
        "the config's name 'mainnet' in a bundle, where bitcoind's chain name 'main' belongs")
    weak_main = block_with(anchor.tx, anchor.tx_index, 12, "a4-1029", BITS_MAIN_LIMIT, valid=False)
    add("main-below-work-floor", on_network("main", BitcoinAnchor("main", anchor.tx, anchor.tx_index,
                                                                  tuple(weak_main.branch), weak_main.header, ())),
        ProofError, "below the main work floor",
        "a 'main' header at the network's proof-of-work limit (difficulty 1, about 2**32 hashes to forge)")
    pending_data = pending.encode()
    add("policy-test-network", base.encode(), ProofError, "policy: the anchor is on 'regtest', the policy requires 'main'",
        "a valid regtest anchor checked under --require-network main", policy={"require_network": "main"})
    add("policy-pending", pending_data, ProofError, "policy: the bundle is pending",
        "a valid pending bundle checked under --require-network main", policy={"require_network": "main"})
    add("policy-min-confirmations", base.encode(), ProofError,
        "policy: the bundle shows 6 confirmations by headers, the policy requires 7",
        "a valid anchor with 6 confirmations checked under --min-confirmations 7", policy={"min_confirmations": 7})
    add("policy-final-depth", valid["anchored-v4-size3"].bundle.encode(), ProofError,
        "policy: the bundle shows 3 confirmations by headers, the policy requires 6",
        "3 confirmations under --require-network regtest: the default minimum is the genesis's final depth 6",
        policy={"require_network": "regtest"})
    witness_tx = anchor_tx(h4.hash, "witness", witness=True)
    add("transaction-with-witness", tweak(base, lambda v: v["bitcoin"].__setitem__("tx", witness_tx)), DecodeError,
        "carries a witness", "the anchor transaction in its witness serialization (witness bytes are not in the txid)")
    add("trailing-bytes", base.encode() + b"\x00", DecodeError, "trailing", "one zero byte after the bundle")
    encoded = base.encode()
    marker = b"\x65index\x19\x04\x04"
    assert encoded.count(marker) == 1
    add("non-canonical-integer", encoded.replace(marker, b"\x65index\x1a\x00\x00\x04\x04"), DecodeError,
        "non-shortest form", "the index 1028 written in a 4-byte field instead of 2")
    add("unknown-version", tweak(base, lambda v: v.__setitem__("v", 2)), DecodeError,
        "bundle version 2 is not supported", "format version 2")
    add("unknown-field", tweak(base, lambda v: v.__setitem__("note", "trust me")), DecodeError,
        "unknown field", "an extra top-level field")
    add("other-genesis", base.encode(), ProofError, "another chain",
        "a valid 4-validator bundle checked against the 7-validator genesis", genesis="genesis-v7.cbor")
    add_coverage(add, chain4, valid, sig)
    return out


def encode_map_in_order(value: dict[Any, Any], keys: list[Any], *, head: int | None = None) -> bytes:
    """A map's bytes with its entries in the given order (repeats allowed): what the encoder never writes."""
    count = len(keys) if head is None else head
    assert count < 24
    return bytes([0xA0 | count]) + b"".join(cbor.encode(key) + cbor.encode(value[key]) for key in keys)


def replace_once(data: bytes, old: bytes, new: bytes) -> bytes:
    assert data.count(old) == 1, old
    return data.replace(old, new)


def add_coverage(add: Callable[..., None], chain4: VectorChain, valid: dict[str, Built], sig: Signatures) -> None:
    """One vector per check of proof/checks.py that the original set did not isolate (section 11)."""
    base = valid["anchored-v4-size1029"].bundle
    pending = valid["pending-v4-size1029"].bundle
    anchor = base.bitcoin
    assert anchor is not None
    h3, h4 = chain4.header(3), chain4.header(4)
    encoded = base.encode()
    value = base.to_cbor()
    canonical = sorted(value, key=lambda key: cbor.encode(key))

    def with_bitcoin(part: BitcoinAnchor) -> bytes:
        return Bundle(base.root, base.index, base.path, base.header, base.finality, part).encode()

    def anchor_in_block(tx: bytes, salt: str, *, position: int = 1, tx_count: int = 3) -> bytes:
        block = block_with(tx, position, tx_count, salt, BITS_VECTOR)
        return with_bitcoin(BitcoinAnchor("regtest", tx, position, tuple(block.branch), block.header, ()))

    def pending_with(finality: FinalizationProof, header: BlockHeader = h4, bundle: Bundle = pending) -> bytes:
        return Bundle(bundle.root, bundle.index, bundle.path, header, finality).encode()

    # step 0
    add("pin-other-chain-id", encoded, ProofError, "the genesis has chain id",
        "a valid bundle, but the auditor expects another chain id (--chain)", chain_id=seeded("another-chain"))
    # step 1: canonical CBOR
    root_item = b"\x64root\x58\x20" + base.root
    add("cbor-tag", replace_once(encoded, root_item, b"\x64root\xd8\x40\x58\x20" + base.root), DecodeError,
        "tags (major type 6) are not supported", "the root wrapped in tag 64")
    path_head = b"\x64path" + bytes([0x80 | len(base.path)])
    nodes = b"".join(b"\x58\x20" + node for node in base.path)
    add("cbor-indefinite-length", replace_once(encoded, path_head + nodes, b"\x64path\x9f" + nodes + b"\xff"),
        DecodeError, "indefinite length (major type 4) is not allowed", "the path as an indefinite-length array")
    index_item = b"\x65index\x19\x04\x04"
    add("cbor-float", replace_once(encoded, index_item, b"\x65index\xfa" + struct.pack(">f", 1028.0)), DecodeError,
        "floating-point values are not supported", "the index as the float 1028.0")
    add("cbor-simple-value", replace_once(encoded, index_item, b"\x65index\xf7"), DecodeError,
        "unsupported simple value", "the index as undefined (0xf7)")
    add("cbor-reserved-information", replace_once(encoded, index_item, b"\x65index\x1c"), DecodeError,
        "reserved additional information value 28", "the index's head has additional information 28")
    add("cbor-invalid-utf8", replace_once(encoded, b"\x63net\x67regtest", b"\x63net\x67regtes\xff"), DecodeError,
        "invalid UTF-8", "the network name's last byte is 0xff")
    deep = replace_once(cbor.encode({**value, "x": 0}), b"\x61x\x00", b"\x61x" + b"\x81" * 31 + b"\x80")
    add("cbor-too-deep", deep, DecodeError, "nesting deeper than max_depth=32",
        "an extra field holding 32 nested arrays (depth 33 with the top-level map)")
    add("cbor-too-many-items", cbor.encode({**value, "x": [0] * 65_536}), DecodeError, "exceeds max_items=65536",
        "an extra field holding an array of 65,536 integers")
    add("cbor-byte-string-key", b"\xa7\x41v" + encode_map_in_order(value, canonical)[3:], DecodeError,
        "map key is not an integer or text string", "the key v written as a byte string")
    add("cbor-duplicate-key", encode_map_in_order(value, [canonical[0], *canonical]), DecodeError,
        "duplicate map key 'v'", "the entry v: 1 twice")
    swapped = [canonical[0], canonical[2], canonical[1], *canonical[3:]]
    add("cbor-key-order", encode_map_in_order(value, swapped), DecodeError, "out of canonical order",
        f"the keys {canonical[1]!r} and {canonical[2]!r} swapped")
    add("cbor-too-large", encoded, DecodeError, "exceeds max_size of 4194304 bytes",
        "a valid bundle followed by zero bytes up to 4 MiB + 1", zero_bytes_appended=4 * 1024 * 1024 + 1 - len(encoded))
    add("cbor-truncated", encoded[:-1], DecodeError, "truncated", "the last byte is missing")
    # step 1: records
    add("record-missing-field", tweak(base, lambda v: v.pop("index")), DecodeError, "missing field(s) 'index'",
        "the index field left out")
    add("record-wrong-type", tweak(base, lambda v: v.__setitem__("index", "1028")), DecodeError,
        "bundle index: expected an integer", "the index as the text '1028'")
    add("record-wrong-size", tweak(base, lambda v: v.__setitem__("root", base.root[:31])), DecodeError,
        "bundle root: expected 32 bytes, got 31", "a 31-byte root")
    add("record-txi-out-of-range", tweak(base, lambda v: v["bitcoin"].__setitem__("txi", 1 << 24)), DecodeError,
        "bundle bitcoin txi: 16777216 is outside 0 .. 16777215", "the Bitcoin position 2^24")
    def signed_despite(check: str, **fields: Any) -> bytes:
        """A pending bundle of a header that breaks ``check``, certified by the genesis validators."""
        with switched_off(check):
            broken = replace(h4, **fields)
            return pending_with(FinalizationProof((), chain4.certificate(broken, (0, 1, 2), sig)), broken)

    add("record-header-height-0", signed_despite("record.header-height", height=0), DecodeError,
        "header height must be at least 1", "a header at height 0, certified by the validators")
    add("record-zero-parent-above-height-1", signed_despite("record.genesis-parent", parent=bytes(32)), DecodeError,
        "exactly the block at height 1 has the genesis parent",
        "the header at height 4 names the zero parent, certified by the validators")
    add("record-proposer-100", signed_despite("record.proposer", proposer=100), DecodeError,
        "header proposer 100 is not below 100", "a proposer index of 100, certified by the validators")
    add("record-finalize-with-zero-block", tweak(base, lambda v: v["finality"]["cert"].__setitem__("block", bytes(32))),
        DecodeError, "exactly nullify certificates carry the zero block hash", "a finalize certificate for 32 zero bytes")
    add("record-signature-too-long",
        tweak(base, lambda v: v["finality"]["cert"]["sigs"][0].__setitem__(1, bytes(3310))), DecodeError,
        "exceeds the maximum of 3309", "a signature of 3310 bytes")
    add("record-signer-index-100",
        tweak(base, lambda v: v["finality"]["cert"]["sigs"][2].__setitem__(0, 100)), DecodeError,
        "index: 100 is outside 0 .. 99", "a signer index of 100")
    add("record-path-too-long", tweak(base, lambda v: v.__setitem__("path", [base.root] * 65)), DecodeError,
        "65 items exceeds the maximum of 64", "an inclusion path of 65 nodes")
    add("record-net-too-long", tweak(base, lambda v: v["bitcoin"].__setitem__("net", "regtest-regtest-x")), DecodeError,
        "text of 17 bytes exceeds the maximum of 16", "a 17-byte network name")
    notarize = chain4.certificate(h4, (0, 1, 3), sig, kind=VoteKind.NOTARIZE)
    add("notarize-certificate-as-finality", tweak(pending, lambda v: v["finality"].__setitem__("cert", notarize.to_cbor())),
        DecodeError, "a finalization proof needs a finalize certificate",
        "a valid notarize certificate (kind 1) of the block where a finalize certificate belongs")
    # step 2
    other_vset = replace(h4, validator_set=seeded("another-validator-set"))
    other_chain = replace(h4, chain_id=seeded("another-chain"))
    add("header-names-another-chain",
        pending_with(FinalizationProof((), chain4.certificate(other_chain, (0, 1, 2), sig)), other_chain),
        ProofError, "chain: the bundle's block belongs to another chain",
        "the header names another chain id, and the genesis validators signed it for this chain")
    add("header-names-another-validator-set",
        pending_with(FinalizationProof((), chain4.certificate(other_vset, (0, 1, 2), sig)), other_vset),
        ProofError, "chain: the block names another validator set",
        "the header names another validator set, and the genesis validators signed it")
    # step 3
    three = valid["pending-v4-size3"].bundle

    def descendant(header: BlockHeader) -> bytes:
        return pending_with(FinalizationProof((header,), chain4.certificate(header, (0, 2, 3), sig)), h3, three)

    add("finality-header-of-another-chain", descendant(replace(h4, chain_id=seeded("another-chain"))), ProofError,
        "proof header 0 belongs to another chain", "the descendant header names another chain id")
    add("finality-header-wrong-parent", descendant(replace(h4, parent=seeded("another-parent"))), ProofError,
        "its parent is not the hash of the header before it", "the descendant header's parent is another block")
    add("finality-header-wrong-height", descendant(replace(h4, height=5)), ProofError, "height 4 expected",
        "the descendant header skips a height")
    add("certificate-view-differs", pending_with(FinalizationProof((), chain4.certificate(h4, (0, 1, 2), sig,
                                                                                           view=h4.view + 1))),
        ProofError, "view differs from the certified header's view", "the quorum signed the block hash in another view")
    good = chain4.certificate(h4, (0, 1, 2), sig)
    stray = chain4.certificate(h4, (3,), sig, chain_id=seeded("another-chain"))
    above = Certificate(VoteKind.FINALIZE, h4.view, h4.hash, good.signatures + stray.signatures)
    add("invalid-signature-above-quorum", pending_with(FinalizationProof((), above)), ProofError,
        "signature of validator 3 on the finalize certificate", "3 good signatures and a fourth that does not verify")
    # step 4
    add("index-beyond-log", Bundle(pending.root, h4.log_size, pending.path, h4, pending.finality).encode(), ProofError,
        "inclusion proof: index 1029 is beyond the tree", "the index equals the log size")
    # step 5
    plain = anchor_tx(h4.hash, "txs")
    op_return = b"\x00" * 8 + b"\x27" + encode_script(h4.hash)
    add("tx-non-canonical-compact-size",
        anchor_in_block(replace_once(plain, op_return, b"\x00" * 8 + b"\xfd\x27\x00" + encode_script(h4.hash)), "cs"),
        DecodeError, "bitcoin anchor: transaction: output 0 script length at offset", "the anchor script's length in 3 bytes")
    outpoint = (seeded("txs/prevout"), 1, b"", 0xFFFFFFFD)
    too_much = serialize_tx([outpoint], [(0, encode_script(h4.hash)), (MONEY_MAX_SAT + 1, b"\x51")])
    add("tx-value-above-21-million", anchor_in_block(too_much, "value"), DecodeError, "above 21 million BTC",
        "the change output is worth 21,000,000 BTC and 1 sat")
    trail = block_with(plain, 1, 3, "trail", BITS_VECTOR)
    add("tx-trailing-bytes", with_bitcoin(BitcoinAnchor("regtest", plain + plain[-4:], 1, tuple(trail.branch),
                                                         trail.header, ())), DecodeError,
        "trailing bytes after the lock time",
        "the anchor transaction's lock time written twice (the block holds the txid of the transaction without the copy)")
    witness = anchor_tx(h4.hash, "witness-in-block", witness=True)
    add("transaction-with-witness-in-its-block", anchor_in_block(witness, "witness-in-block"), DecodeError,
        "carries a witness", "the anchor in witness serialization, in a block that holds its txid")
    add("tx-no-outputs", anchor_in_block(serialize_tx([outpoint], []), "no-out"), DecodeError,
        "transaction has no outputs", "a transaction without outputs")
    sixty_four = serialize_tx([(seeded("64/prevout"), 0, b"\x51\x51\x51\x51", 0)], [(0, b"")])
    assert len(sixty_four) == 64
    add("anchor-tx-64-bytes", anchor_in_block(sixty_four, "64-tx"), ProofError, "64 bytes without its witness",
        "the bundle's transaction is 64 bytes, the size of an inner merkle node")
    add("branch-index-too-large", with_bitcoin(BitcoinAnchor("regtest", anchor.tx, anchor.tx_index + 16,
                                                              anchor.branch, anchor.header, anchor.more)),
        ProofError, "does not fit a merkle branch of 4 nodes", "the position with a bit above the branch's length")
    node = txid(plain)
    fake = header_over([node, node, seeded("fake/x")], 0, "fake")
    add("branch-duplicate-then-distinct", with_bitcoin(BitcoinAnchor("regtest", plain, 0, (node, fake.branch[1]),
                                                                      fake.header, ())),
        ProofError, "was duplicated at level 0", "a branch whose node is its own sibling, then has a distinct one")
    for name, bits, reason in (("bits-negative", 0x1F80FFFF, "encode a negative target"),
                               ("bits-overflow", 0x2301FFFF, "encode a target above 2**256"),
                               ("bits-zero", 0x1F000000, "encode a zero target")):
        block = block_with(plain, 1, 3, name, bits, valid=bits != 0x1F000000)
        add(name, with_bitcoin(BitcoinAnchor("regtest", plain, 1, tuple(block.branch), block.header, ())), ProofError,
            reason, f"the anchor's header has bits {bits:#010x}")
    two = serialize_tx([outpoint], [(0, encode_script(h4.hash)), (0, encode_script(h3.hash))])
    add("two-op-return-outputs", anchor_in_block(two, "two"), ProofError, "has 2 OP_RETURN outputs",
        "the first OP_RETURN anchors the bundle's block, a second one another block")
    foreign = serialize_tx([outpoint], [(0, encode_script(h4.hash).replace(b"PNTH", b"PNTX"))])
    add("anchor-script-other-magic", anchor_in_block(foreign, "magic"), ProofError, "not a Pantheon anchor",
        "the OP_RETURN payload starts with PNTX")
    weak = list(anchor.more)
    weak[-1] = mine(sha256d(weak[-2]), seeded("weak-more"), BTC_TIME_BASE, BITS_VECTOR, valid=False)
    add("confirming-header-insufficient-work", with_bitcoin(BitcoinAnchor("regtest", anchor.tx, anchor.tx_index,
                                                                           anchor.branch, anchor.header, tuple(weak))),
        ProofError, "insufficient proof of work", "the last confirming header misses its target")


def write(out: Path, signatures: Signatures) -> None:
    geneses, valid, invalid = build_vectors(signatures)
    for directory in (out / "valid", out / "invalid"):
        directory.mkdir(parents=True, exist_ok=True)
        for stale in directory.glob("*"):
            stale.unlink()
    for name, genesis in geneses.items():
        (out / name).write_bytes(genesis.encode())
    by_chain = {g.hash: name for name, g in geneses.items()}
    for name, built in valid.items():
        data = built.bundle.encode()
        claim = verify_bundle(data, genesis=built.chain.genesis).to_json()
        assert claim == built.claim, f"{name}: verifier says {claim}, built {built.claim}"
        (out / "valid" / f"{name}.cbor").write_bytes(data)
        doc = {"genesis": by_chain[built.chain.genesis.hash], "size_bytes": len(data), "claim": built.claim}
        (out / "valid" / f"{name}.json").write_text(json.dumps(doc, indent=2) + "\n")
    for name, bad in invalid.items():
        genesis = geneses[bad.genesis]
        try:
            verify_bundle(bad.data + bytes(bad.zero_bytes_appended), genesis=genesis, chain_id=bad.chain_id,
                          policy=policy_of(bad.policy))
        except (ProofError, DecodeError) as exc:
            assert isinstance(exc, bad.error) and bad.reason in str(exc), f"{name}: failed with {exc!r}"
        else:
            raise AssertionError(f"invalid vector {name} verifies")
        (out / "invalid" / f"{name}.cbor").write_bytes(bad.data)
        doc = {"genesis": bad.genesis, "description": bad.description, "error": bad.error.__name__, "reason": bad.reason}
        if bad.policy is not None:
            doc["policy"] = bad.policy
        if bad.chain_id is not None:
            doc["chain_id"] = bad.chain_id.hex()
        if bad.zero_bytes_appended:
            doc["zero_bytes_appended"] = bad.zero_bytes_appended
        (out / "invalid" / f"{name}.json").write_text(json.dumps(doc, indent=2) + "\n")
    signatures.save(out / SIGNATURES_FILE)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=OUT, help=f"output directory (default {OUT})")
    parser.add_argument("--signatures", type=Path, default=OUT / SIGNATURES_FILE,
                        help="signatures to reuse (default: the committed ones)")
    args = parser.parse_args()
    write(args.out, Signatures(args.signatures))
    print(f"wrote vectors to {args.out}")


if __name__ == "__main__":
    main()
