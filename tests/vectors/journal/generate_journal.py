"""Generate tests/vectors/journal: audit packages and journal files, valid ones with what they prove,
corrupted ones with the error class and reason code they must fail with.

    .venv/bin/python -m tests.vectors.journal.generate_journal [--out DIR]

Built from fixed seeds, without a node: producer keys and a one-validator chain (ML-DSA-65
from seeds), entries signed with journal.entry.sign_entry, a block logging the journal head
(consensus.block.build_block), RFC 9162 paths from tests/merkle_reference.py, and for the
anchored vector the Bitcoin transaction, block and headers of tests/vectors/generate_bundles.py.

Expected results are written from what was built: the heads are recomputed here with
hashlib from the tagged-hash definitions in docs/journal-format.md (not with journal/), the
claim from the roots and headers; the generator then checks that the verifier agrees.
ML-DSA signing is randomized, so signatures are kept in ``signatures.cbor`` and reused:
with that file the generator rewrites every file byte for byte (tests/test_journal_vectors.py
checks it).

Files (see docs/journal-format.md section 11):

- ``genesis.cbor``: the chain of every package;
- ``packages/valid/*.cbor`` + ``.json`` ``{"description", "claim"}`` (the package claim
  as ``pantheon journal verify --json`` prints it, without the entry listing);
- ``packages/invalid/*.cbor`` + ``.json`` ``{"description", "error", "reason", "seq"?, "producer"?}``
  (``producer``: the first-key fingerprint to pin when verifying);
- ``journals/*.pjl`` + ``.json`` ``{"description", "valid", ...}``: journal files (the
  record framing of section 5) with ``length``/``head``/``open_intents``/``torn`` when valid,
  ``error``/``reason``/``seq`` when not.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from consensus.block import build_block
from journal.entry import Entry, Kind, chain_hash, digest, sign_entry
from journal.package import Package, build_package, verify_package
from journal.records import MAGIC, frame
from proof import cbor
from proof.bundle import Bundle
from proof.chain import Certificate, FinalizationProof, Genesis, VoteKind, vote_message
from proof.compact import CompactRange
from proof.mldsa import SigningKey
from tests import merkle_reference
from tests.vectors import generate_bundles as gen

OUT = Path(__file__).parent
SIGNATURES_FILE = "signatures.cbor"
TIME_BASE_MS = 1_767_225_600_000
ZERO = bytes(32)


def tagged(tag: str, *parts: bytes) -> bytes:
    """BIP-340 tagged hash, written out from docs/journal-format.md section 3."""
    prefix = hashlib.sha256(tag.encode()).digest()
    return hashlib.sha256(prefix + prefix + b"".join(parts)).digest()


def head_of(entries: list[Entry]) -> bytes:
    head = ZERO
    for entry in entries:
        head = tagged("pantheon/journal-chain/v1", head, tagged("pantheon/journal-entry/v1", cbor.encode(entry.to_cbor())))
    return head


@dataclass
class Replay:
    """A signer whose ML-DSA signatures come from signatures.cbor when it has them."""

    key: SigningKey
    signatures: gen.Signatures

    @property
    def public_key(self) -> bytes:
        return self.key.public_key

    def sign(self, message: bytes) -> bytes:
        return self.signatures.sign(self.key, message)


class Writer:
    """Entries built one after another, as the journal writer would, with a fixed clock."""

    def __init__(self, signer: Replay) -> None:
        self.signer = signer
        self.entries: list[Entry] = []
        self.append(Kind.KEY_ROTATION, "journal-init", meta={"system": "vectors"}, pubkey=signer.public_key)

    @property
    def head(self) -> bytes:
        return chain_hash(self.entries[-1].prev, self.entries[-1].digest) if self.entries else ZERO

    def append(self, kind: Kind, action: str, inputs: dict[str, bytes] | None = None, *,
               signer: Replay | None = None, **fields: Any) -> Entry:
        entry = sign_entry(signer or self.signer, seq=len(self.entries), prev=self.head,
                           time_ms=TIME_BASE_MS + 1_000 * len(self.entries), kind=kind, action=action,
                           inputs=inputs or {}, **fields)
        self.entries.append(entry)
        return entry


def federated_journal(producer: Replay, rotated_to: Replay) -> Writer:
    """20 entries: three rounds of a coordinator's work, a key rotation at 10, a withheld-worthy step at 18."""
    writer = Writer(producer)
    for round_ in range(1, 4):
        intent = writer.append(Kind.INTENT, "aggregate", {"code": digest(b"fedavg.py"),
                                                          "update-a": digest(b"a%d" % round_),
                                                          "update-b": digest(b"b%d" % round_)},
                               meta={"round": round_, "weight-a": 500, "weight-b": 500})
        writer.append(Kind.OUTCOME, "aggregate", outputs={"model": digest(b"model-%d" % round_)},
                      meta={"status": "ok"}, ref=intent.seq)
        writer.append(Kind.NOTE, "evaluate", {"model": digest(b"model-%d" % round_)}, meta={"accuracy-bp": 9100})
    writer.append(Kind.KEY_ROTATION, "key-rotation", pubkey=rotated_to.public_key)
    writer.signer = rotated_to
    while len(writer.entries) < 17:
        writer.append(Kind.NOTE, "monitor", meta={"alerts": len(writer.entries)})
    intent = writer.append(Kind.INTENT, "deploy", {"model": digest(b"model-3")}, meta={"target": "prod"})
    writer.append(Kind.NOTE, "reviewer", {"reviewer-id": digest(b"dr. jane roe")})
    writer.append(Kind.OUTCOME, "deploy", meta={"status": "error", "error": "rollout halted"}, ref=intent.seq)
    assert len(writer.entries) == 20
    return writer


@dataclass
class Chain:
    key: SigningKey
    genesis: Genesis
    signatures: gen.Signatures

    def bundle(self, root: bytes, *, anchored: bool) -> tuple[bytes, dict[str, Any]]:
        """A bundle proving ``root`` as entry 2 of a 3-root block at height 1 (anchored: with Bitcoin material)."""
        roots = [gen.seeded("journal/filler/0"), gen.seeded("journal/filler/1"), root]
        block = build_block(genesis=self.genesis, view=0, parent=None, log=CompactRange(), roots=b"".join(roots),
                            timestamp_ms=TIME_BASE_MS + 60_000)
        header = block.header
        message = vote_message(self.genesis.hash, VoteKind.FINALIZE, header.view, header.hash)
        certificate = Certificate(kind=VoteKind.FINALIZE, view=header.view, block_hash=header.hash,
                                  signatures=((0, self.signatures.sign(self.key, message)),))
        bitcoin = gen.anchored_part(header.hash, salt=f"journal/{root.hex()[:8]}", position=1, tx_count=3,
                                    more=2) if anchored else None
        bundle = Bundle(root=root, index=2, path=tuple(merkle_reference.path(2, roots)), header=header,
                        finality=FinalizationProof(headers=(), certificate=certificate), bitcoin=bitcoin)
        claim: dict[str, Any] = {
            "state": "anchored" if anchored else "pending", "root": root.hex(), "index": 2, "log_size": 3,
            "log_root": merkle_reference.mth(roots).hex(), "chain_id": self.genesis.hash.hex(),
            "chain_name": self.genesis.chain_name, "height": 1, "block_hash": header.hash.hex(), "signers": [0],
        }
        if bitcoin is not None:
            claim["bitcoin"] = {
                "network": "regtest", "txid": gen.hash_to_hex(gen.txid(bitcoin.tx)),
                "block_hash": gen.hash_to_hex(gen.sha256d(bitcoin.header)),
                "time": int.from_bytes(bitcoin.header[68:72], "little"), "confirmations": 3,
            }
        return bundle.encode(), claim


def package_claim(entries: list[Entry], disclosed: list[int], keys: list[bytes], bundle_claim: dict) -> dict[str, Any]:
    closed = {e.ref for e in entries if e.kind == Kind.OUTCOME and e.seq in disclosed}
    return {
        "producer": tagged("pantheon/journal-key/v1", keys[0]).hex(),
        "keys": [tagged("pantheon/journal-key/v1", k).hex() for k in keys],
        "head": head_of(entries).hex(),
        "head_seq": len(entries) - 1,
        "entries": len(entries),
        "disclosed": disclosed,
        "withheld": len(entries) - len(disclosed),
        "open_intents": [e.seq for e in entries if e.kind == Kind.INTENT and e.seq in disclosed and e.seq not in closed],
        "bundle": bundle_claim,
    }


@dataclass
class Invalid:
    data: bytes
    description: str
    error: str
    reason: str
    seq: int | None = None
    producer: bytes | None = None
    """The producer fingerprint the auditor pins (``verify_package(..., producer=)``), if any."""


def tweak(package: Package, change: Callable[[dict[str, Any]], None]) -> bytes:
    value = package.to_cbor()
    change(value)
    return cbor.encode(value)


def with_chain(package: Package, chain: list) -> bytes:
    return dataclasses.replace(package, chain=tuple(chain)).encode()


def runs(entries: list[Entry], disclosed: set[int]) -> list:
    chain: list = []
    for entry in entries:
        if entry.seq in disclosed:
            chain.append(entry)
        elif chain and isinstance(chain[-1], bytes):
            chain[-1] += entry.digest
        else:
            chain.append(entry.digest)
    return chain


def build(signatures: gen.Signatures) -> dict[str, Any]:
    producer = Replay(SigningKey(gen.seeded("journal/producer/0")), signatures)
    rotated = Replay(SigningKey(gen.seeded("journal/producer/1")), signatures)
    outsider = Replay(SigningKey(gen.seeded("journal/outsider")), signatures)
    validator = SigningKey(gen.seeded("journal/validator/0"))
    genesis = Genesis(chain_name="journal-vectors", validators=(validator.public_key,), created_at_ms=TIME_BASE_MS,
                      anchor_every_blocks=10, anchor_every_ms=600_000, anchor_final_depth=3)
    chain = Chain(validator, genesis, signatures)
    writer = federated_journal(producer, rotated)
    entries = writer.entries
    assert head_of(entries) == writer.head
    keys = [producer.public_key, rotated.public_key]
    pending_bundle, pending_claim = chain.bundle(writer.head, anchored=False)
    anchored_bundle, anchored_claim = chain.bundle(writer.head, anchored=True)
    genesis_bytes = genesis.encode()

    def package(disclose: set[int], bundle: bytes) -> Package:
        return build_package(entries, disclose, head_seq=19, genesis=genesis_bytes, bundle=bundle)

    valid: dict[str, tuple[bytes, dict]] = {}
    one = package({17}, anchored_bundle)
    valid["entry-17-of-20-anchored"] = (one.encode(), {
        "description": "entry 17 (the deploy intent) disclosed, 18 (the reviewer) and the rest withheld; "
                       "key rotations 0 and 10 always disclosed; anchored bundle",
        "claim": package_claim(entries, [0, 10, 17], keys, anchored_claim)})
    everything = package(set(range(20)), pending_bundle)
    valid["all-disclosed-pending"] = (everything.encode(), {
        "description": "every entry disclosed; pending bundle (certified, not anchored in Bitcoin)",
        "claim": package_claim(entries, list(range(20)), keys, pending_claim)})
    round2 = package({4, 5, 6}, pending_bundle)
    valid["round-2-pending"] = (round2.encode(), {
        "description": "the three entries of round 2 (intent, outcome, evaluation); pending bundle",
        "claim": package_claim(entries, [0, 4, 5, 6, 10], keys, pending_claim)})

    invalid: dict[str, Invalid] = {}
    base = everything
    listed = list(base.chain)

    def replaced(position: int, entry: Entry) -> bytes:
        chain_ = list(listed)
        chain_[position] = entry
        return with_chain(base, chain_)

    def forged(entry: Entry, signer: Replay, **changes: Any) -> Entry:
        fields = dict(seq=entry.seq, prev=entry.prev, time_ms=entry.time_ms, kind=entry.kind, action=entry.action,
                      inputs=entry.inputs, meta=entry.meta, outputs=entry.outputs, ref=entry.ref, pubkey=entry.pubkey)
        fields.update(changes)
        return sign_entry(signer, **fields)

    invalid["edited-entry"] = Invalid(replaced(5, dataclasses.replace(entries[5], outputs={"model": digest(b"x")})),
                                      "entry 5's output digest changed after signing", "ChainError", "signature", 5)
    swapped = list(listed)
    swapped[3], swapped[4] = swapped[4], swapped[3]
    invalid["reordered-entries"] = Invalid(with_chain(base, swapped), "entries 3 and 4 swapped", "ChainError", "seq", 3)
    invalid["deleted-entry"] = Invalid(with_chain(base, listed[:7] + listed[8:]), "entry 7 removed", "ChainError",
                                       "seq", 7)
    invalid["inserted-entry"] = Invalid(
        with_chain(base, listed[:12] + [forged(entries[12], outsider, action="approve")] + listed[12:]),
        "an approval signed by an outsider key inserted at 12", "ChainError", "key-unknown", 12)
    invalid["re-signed-other-key"] = Invalid(replaced(13, forged(entries[13], outsider)),
                                             "entry 13 re-signed by another key", "ChainError", "key-unknown", 13)
    invalid["old-key-after-rotation"] = Invalid(replaced(11, forged(entries[11], producer)),
                                                "entry 11 signed by the key rotated out at 10", "ChainError",
                                                "key-unknown", 11)
    invalid["prev-not-predecessor"] = Invalid(replaced(8, forged(entries[8], producer, prev=entries[6].prev)),
                                              "entry 8 names the chain hash before entry 6 as its prev",
                                              "ChainError", "prev", 8)
    invalid["time-goes-back"] = Invalid(replaced(2, forged(entries[2], producer, time_ms=entries[1].time_ms - 1)),
                                        "entry 2 dated before entry 1", "ChainError", "time", 2)
    invalid["outcome-of-another-action"] = Invalid(replaced(2, forged(entries[2], producer, action="train")),
                                                   "the outcome at 2 names action 'train', its intent 1 is 'aggregate'",
                                                   "ChainError", "outcome-mismatch", 2)
    invalid["second-outcome"] = Invalid(replaced(3, forged(entries[3], producer, kind=Kind.OUTCOME, action="aggregate",
                                                           inputs={}, meta={"status": "ok"}, ref=1)),
                                        "a second outcome for intent 1", "ChainError", "outcome-ref", 3)
    invalid["rotation-to-used-key"] = Invalid(replaced(10, forged(entries[10], producer, pubkey=producer.public_key)),
                                              "the rotation at 10 re-introduces the first key", "ChainError",
                                              "key-reused", 10)
    invalid["first-entry-not-rotation"] = Invalid(
        replaced(0, forged(entries[0], producer, kind=Kind.NOTE, pubkey=None)),
        "entry 0 is a note, introducing no key", "ChainError", "first-entry", 0)
    invalid["first-entry-signed-by-another-key"] = Invalid(
        replaced(0, forged(entries[0], outsider)), "entry 0 introduces the producer key but is signed by another",
        "ChainError", "key-unknown", 0)
    invalid["another-producer-pinned"] = Invalid(
        one.encode(), "a valid package, verified by an auditor who expects another producer key", "ChainError",
        "first-key", 0, producer=tagged("pantheon/journal-key/v1", outsider.public_key))
    invalid["empty-chain"] = Invalid(dataclasses.replace(one, chain=(), keys=()).encode(), "no entries at all",
                                     "PackageError", "empty")
    one_chain = list(one.chain)
    invalid["withheld-digest-altered"] = Invalid(
        with_chain(one, [one_chain[0], b"\x00" + one_chain[1][1:], *one_chain[2:]]),
        "the first withheld digest changed: the next disclosed entry's prev no longer matches", "ChainError", "prev", 10)
    invalid["withheld-rotation"] = Invalid(
        dataclasses.replace(one, chain=tuple(runs(entries, {0, 17})), keys=(producer.public_key,)).encode(),
        "the key rotation at 10 withheld: entry 17's key is unknown", "ChainError", "key-unknown", 17)
    invalid["first-entry-withheld"] = Invalid(with_chain(one, runs(entries, {10, 17})),
                                              "entry 0 withheld", "ChainError", "first-entry", 0)
    invalid["truncated-chain"] = Invalid(with_chain(one, [*one_chain[:-1], one_chain[-1][:-32]]),
                                         "the last withheld digest dropped (chain ends at 18)", "PackageError", "head")
    invalid["extended-chain"] = Invalid(with_chain(one, [*one_chain[:-1], one_chain[-1] + gen.seeded("extra")]),
                                        "one more withheld digest after the proved head", "PackageError", "head")
    invalid["keys-mismatch"] = Invalid(dataclasses.replace(one, keys=(producer.public_key,)).encode(),
                                       "the key list omits the rotated-in key", "PackageError", "keys")
    other_bundle, _ = chain.bundle(gen.seeded("journal/another-head"), anchored=False)
    invalid["bundle-of-another-root"] = Invalid(dataclasses.replace(one, bundle=other_bundle).encode(),
                                                "a valid bundle, but for another audit root", "PackageError", "head")
    broken = bytearray(anchored_bundle)
    broken[-200] ^= 0x01
    invalid["bundle-broken"] = Invalid(dataclasses.replace(one, bundle=bytes(broken)).encode(),
                                       "one bit of the validator's signature in the bundle flipped", "ProofError",
                                       "package bundle: block certificate")
    invalid["unknown-version"] = Invalid(tweak(one, lambda v: v.update(v=2)), "package version 2", "DecodeError",
                                         "version 2 is not supported")
    invalid["unknown-field"] = Invalid(tweak(one, lambda v: v.update(note="hi")), "an extra top-level field",
                                       "DecodeError", "unknown field")
    invalid["trailing-bytes"] = Invalid(one.encode() + b"\x00", "one byte after the package", "DecodeError",
                                        "trailing bytes")
    data = one.encode()
    assert data[0] == 0xA5
    invalid["non-canonical-map-head"] = Invalid(b"\xb8\x05" + data[1:], "the top-level map count in a 2-byte form",
                                                "DecodeError", "non-shortest form")
    invalid["adjacent-withheld-runs"] = Invalid(
        with_chain(one, [*one_chain[:-1], one_chain[-1][:32], one_chain[-1][32:]]),
        "a withheld run split in two", "DecodeError", "adjacent withheld runs")
    invalid["withheld-run-not-32-bytes"] = Invalid(
        with_chain(one, [*one_chain[:-1], one_chain[-1][:-1]]), "a withheld run one byte short", "DecodeError",
        "positive multiple of 32")

    journals = journal_files(entries)
    return {"genesis": genesis_bytes, "valid": valid, "invalid": invalid, "journals": journals}


def open_intents(entries: list[Entry]) -> list[int]:
    closed = {e.ref for e in entries if e.kind == Kind.OUTCOME}
    return [e.seq for e in entries if e.kind == Kind.INTENT and e.seq not in closed]


def journal_files(entries: list[Entry]) -> dict[str, tuple[bytes, dict]]:
    records = [frame(e.encode()) for e in entries]
    whole = MAGIC + b"".join(records)
    result: dict[str, tuple[bytes, dict]] = {}
    result["valid"] = (whole, {"description": "the 20-entry journal", "valid": True, "length": 20,
                               "head": head_of(entries).hex(), "open_intents": open_intents(entries), "torn": None})
    cut = whole[:-100]
    result["torn-tail"] = (cut, {"description": "the last record cut 100 bytes short (an interrupted append)",
                                 "valid": True, "length": 19, "head": head_of(entries[:19]).hex(),
                                 "open_intents": open_intents(entries[:19]),
                                 "torn": {"offset": len(whole) - len(records[-1]), "size": len(records[-1]) - 100}})
    damaged = bytearray(whole)
    damaged[len(MAGIC) + len(records[0]) + 20] ^= 0x01
    result["damaged-record"] = (bytes(damaged), {"description": "one bit flipped inside record 1", "valid": False,
                                                 "error": "ChainError", "reason": "record-damaged", "seq": 1})
    edited = dataclasses.replace(entries[4], meta={**entries[4].meta, "round": 9})
    result["edited-entry"] = (MAGIC + b"".join(records[:4]) + frame(edited.encode()) + b"".join(records[5:]),
                              {"description": "entry 4's meta changed and reframed with a valid checksum",
                               "valid": False, "error": "ChainError", "reason": "signature", "seq": 4})
    return result


def agrees(actual: dict[str, Any], expected: dict[str, Any]) -> bool:
    """Every expected field matches; the bundle's claim (owned by docs/proof-format.md) may carry more."""
    bundle, expected_bundle = actual["bundle"], expected["bundle"]
    plain = {k: v for k, v in actual.items() if k != "bundle"} == {k: v for k, v in expected.items() if k != "bundle"}
    fields = all(bundle.get(k) == v for k, v in expected_bundle.items() if k != "bitcoin")
    bitcoin = all(bundle.get("bitcoin", {}).get(k) == v for k, v in expected_bundle.get("bitcoin", {}).items())
    return plain and fields and bitcoin and ("bitcoin" in bundle) == ("bitcoin" in expected_bundle)


def check(built: dict[str, Any]) -> None:
    """The verifier must agree with every expectation written here."""
    from journal.errors import ChainError, PackageError
    from proof.errors import DecodeError, ProofError

    classes = {"ChainError": ChainError, "PackageError": PackageError, "DecodeError": DecodeError,
               "ProofError": ProofError}
    for name, (data, doc) in built["valid"].items():
        claim = verify_package(data).to_json()
        assert agrees(claim, doc["claim"]), (name, claim, doc["claim"])
    for name, case in built["invalid"].items():
        try:
            verify_package(case.data, producer=case.producer)
        except classes[case.error] as exc:
            assert getattr(exc, "reason", None) == case.reason or case.reason in str(exc), (name, exc)
            assert case.seq is None or exc.seq == case.seq, (name, exc)
        else:
            raise AssertionError(f"{name} verified")


def write(out: Path, signatures: gen.Signatures) -> None:
    built = build(signatures)
    check(built)
    (out / "packages" / "valid").mkdir(parents=True, exist_ok=True)
    (out / "packages" / "invalid").mkdir(parents=True, exist_ok=True)
    (out / "journals").mkdir(parents=True, exist_ok=True)
    (out / "genesis.cbor").write_bytes(built["genesis"])
    for name, (data, doc) in built["valid"].items():
        (out / "packages" / "valid" / f"{name}.cbor").write_bytes(data)
        (out / "packages" / "valid" / f"{name}.json").write_text(json.dumps(doc, indent=2) + "\n")
    for name, case in built["invalid"].items():
        doc = {"description": case.description, "error": case.error, "reason": case.reason}
        if case.seq is not None:
            doc["seq"] = case.seq
        if case.producer is not None:
            doc["producer"] = case.producer.hex()
        (out / "packages" / "invalid" / f"{name}.cbor").write_bytes(case.data)
        (out / "packages" / "invalid" / f"{name}.json").write_text(json.dumps(doc, indent=2) + "\n")
    for name, (data, doc) in built["journals"].items():
        (out / "journals" / f"{name}.pjl").write_bytes(data)
        (out / "journals" / f"{name}.json").write_text(json.dumps(doc, indent=2) + "\n")
    signatures.save(out / SIGNATURES_FILE)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()
    write(args.out, gen.Signatures(OUT / SIGNATURES_FILE))
    print(f"wrote journal vectors to {args.out}")


if __name__ == "__main__":
    main()
