"""The audit package: the part of a journal an auditor is given, with everything to check it offline.

One canonical CBOR file (docs/journal-format.md section 8) holding:

- the chain of entries 0..k, each position either the whole entry (disclosed) or only
  its entry digest (withheld; runs of withheld digests travel as one byte string);
- the producer's public keys, in the order the key-rotation entries introduce them;
- the chain's genesis (bytes of the genesis file) and the proof bundle whose audit root
  is the chain hash after entry k.

So entry 17 can be proved without revealing entry 18: the auditor recomputes the chain
hashes across the withheld digests up to the head the bundle proves. Key-rotation
entries are always disclosed, since the auditor follows the key through them.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from proof import cbor
from proof.bundle import BUNDLE_SIZE_MAX, Bundle, Claim, verify_bundle
from proof.chain import GENESIS_SIZE_MAX, Genesis
from proof.errors import DecodeError, ProofError
from proof.hashing import HASH_SIZE
from proof.mldsa import PUBLIC_KEY_SIZE

from journal.entry import Entry, Kind, key_fingerprint
from journal.errors import ChainError, PackageError
from journal.verify import ChainReport, ChainWalker

PACKAGE_VERSION = 1
PACKAGE_SIZE_MAX = 64 * 1024 * 1024
PACKAGE_ENTRIES_MAX = 1_000_000
"""Positions (disclosed and withheld) one package may cover."""
PACKAGE_DISCLOSED_MAX = 10_000
PACKAGE_KEYS_MAX = 256
PACKAGE_ITEMS_MAX = 1 << 22
_FIELDS = {"v", "keys", "chain", "genesis", "bundle"}

ChainItem = Entry | bytes
"""A disclosed entry, or a run of withheld entry digests (a positive multiple of 32 bytes)."""


@dataclass(frozen=True)
class Package:
    keys: tuple[bytes, ...]
    chain: tuple[ChainItem, ...]
    genesis: bytes
    bundle: bytes

    def to_cbor(self) -> dict[str, Any]:
        return {
            "v": PACKAGE_VERSION,
            "keys": list(self.keys),
            "chain": [item if isinstance(item, bytes) else item.to_cbor() for item in self.chain],
            "genesis": self.genesis,
            "bundle": self.bundle,
        }

    def encode(self) -> bytes:
        return cbor.encode(self.to_cbor())

    @classmethod
    def decode(cls, data: bytes) -> Package:
        """Strict decode (every bound checked); entries stay undecoded maps until the walk."""
        value = cbor.decode(data, max_size=PACKAGE_SIZE_MAX, max_items=PACKAGE_ITEMS_MAX)
        if not isinstance(value, dict):
            raise DecodeError("package: expected a map at the top level")
        if "v" in value:
            version = cbor.expect_uint(value["v"], "package version")
            if version != PACKAGE_VERSION:
                raise DecodeError(f"package version {version} is not supported (this verifier reads {PACKAGE_VERSION})")
        fields = cbor.expect_map(value, "package", _FIELDS)
        keys = tuple(
            cbor.expect_bytes(key, f"package key {i}", size=PUBLIC_KEY_SIZE)
            for i, key in enumerate(cbor.expect_list(fields["keys"], "package keys", max_items=PACKAGE_KEYS_MAX))
        )
        items = cbor.expect_list(fields["chain"], "package chain", max_items=2 * PACKAGE_DISCLOSED_MAX + 1)
        return cls(
            keys=keys,
            chain=tuple(_chain_items(items)),
            genesis=cbor.expect_bytes(fields["genesis"], "package genesis", max_size=GENESIS_SIZE_MAX),
            bundle=cbor.expect_bytes(fields["bundle"], "package bundle", max_size=BUNDLE_SIZE_MAX),
        )


def _chain_items(items: list[Any]) -> Iterable[ChainItem]:
    """Decode the chain's items; entry-level failures become ChainError at the entry's position."""
    position = 0
    previous_withheld = False
    disclosed = 0
    for item in items:
        if isinstance(item, bytes):
            if not item or len(item) % HASH_SIZE:
                raise DecodeError(f"package chain at entry {position}: a withheld run is a positive multiple "
                                  f"of {HASH_SIZE} bytes, got {len(item)}")
            if previous_withheld:
                raise DecodeError(f"package chain at entry {position}: adjacent withheld runs must be one run")
            previous_withheld = True
            position += len(item) // HASH_SIZE
            yield item
        else:
            try:
                entry = Entry.from_cbor(item)
            except DecodeError as exc:
                raise ChainError(position, "decode", str(exc)) from None
            previous_withheld = False
            disclosed += 1
            position += 1
            yield entry
        if position > PACKAGE_ENTRIES_MAX or disclosed > PACKAGE_DISCLOSED_MAX:
            raise DecodeError(f"package covers more than {PACKAGE_ENTRIES_MAX} entries or discloses more than "
                              f"{PACKAGE_DISCLOSED_MAX}")


def build_package(
    entries: Sequence[Entry], disclose: Iterable[int], *, head_seq: int, genesis: bytes, bundle: bytes
) -> Package:
    """The package of entries 0..``head_seq`` disclosing ``disclose`` (plus every key rotation)."""
    if not 0 <= head_seq < len(entries):
        raise PackageError("not-covered", f"the journal has no entry {head_seq}")
    shown = set(disclose)
    late = sorted(seq for seq in shown if not 0 <= seq <= head_seq)
    if late:
        raise PackageError("not-covered", f"entries {late} are not covered by the proved head (entry {head_seq}): "
                                          "submit, wait for the proof, and upgrade first")
    shown |= {e.seq for e in entries[: head_seq + 1] if e.kind == Kind.KEY_ROTATION}
    chain: list[ChainItem] = []
    run = bytearray()
    for entry in entries[: head_seq + 1]:
        if entry.seq in shown:
            if run:
                chain.append(bytes(run))
                run = bytearray()
            chain.append(entry)
        else:
            run += entry.digest
    if run:
        chain.append(bytes(run))
    keys = tuple(e.pubkey for e in chain if isinstance(e, Entry) and e.pubkey is not None)
    return Package(keys=keys, chain=tuple(chain), genesis=genesis, bundle=bundle)


@dataclass(frozen=True)
class PackageClaim:
    """What a verified package proves: these entries, at these places, in a chain whose head the bundle proves."""

    report: ChainReport
    entries: tuple[Entry, ...]
    claim: Claim

    @property
    def head_seq(self) -> int:
        return self.report.length - 1

    @property
    def producer(self) -> bytes:
        return key_fingerprint(self.report.keys[0])

    def to_json(self) -> dict[str, Any]:
        return {
            "producer": self.producer.hex(),
            "keys": [key_fingerprint(key).hex() for key in self.report.keys],
            "head": self.report.head.hex(),
            "head_seq": self.head_seq,
            "entries": self.report.length,
            "disclosed": [entry.seq for entry in self.entries],
            "withheld": self.report.withheld,
            "open_intents": [intent.seq for intent in self.report.open_intents],
            "bundle": self.claim.to_json(),
        }


def verify_package(data: bytes, *, chain_id: bytes | None = None, producer: bytes | None = None) -> PackageClaim:
    """Check a package offline; raise DecodeError, ChainError, PackageError or ProofError at the first failure.

    ``chain_id`` pins the genesis and ``producer`` the fingerprint of the first producer
    key, both known to the auditor from a source other than the package.
    """
    package = Package.decode(data)
    try:
        genesis = Genesis.decode(package.genesis)
    except DecodeError as exc:
        raise DecodeError(f"package genesis: {exc}") from None
    if chain_id is not None and genesis.hash != chain_id:
        raise PackageError("chain-id", f"the package's genesis is chain {genesis.hash.hex()[:16]}…, "
                                       f"not the expected {chain_id.hex()[:16]}…")
    walker = ChainWalker(first_key=producer)
    entries = []
    for item in package.chain:
        if isinstance(item, bytes):
            for offset in range(0, len(item), HASH_SIZE):
                walker.add_withheld(item[offset : offset + HASH_SIZE])
        else:
            walker.add_entry(item)
            entries.append(item)
    report = walker.report()
    if report.length == 0:
        raise PackageError("empty", "the package holds no entries")
    if report.keys != package.keys:
        raise PackageError("keys", "the package's key list is not the keys its key-rotation entries introduce")
    try:
        bundle = Bundle.decode(package.bundle)
    except DecodeError as exc:
        raise DecodeError(f"package bundle: {exc}") from None
    if bundle.root != report.head:
        raise PackageError("head", f"the bundle proves root {bundle.root.hex()[:16]}…, but the chain hash after "
                                   f"entry {report.length - 1} is {report.head.hex()[:16]}…")
    try:
        claim = verify_bundle(package.bundle, genesis=genesis)
    except ProofError as exc:
        raise ProofError(f"package bundle: {exc}") from exc
    except DecodeError as exc:  # a Bitcoin transaction that does not parse (proof-format §6 step 5.2)
        raise DecodeError(f"package bundle: {exc}") from exc
    return PackageClaim(report=report, entries=tuple(entries), claim=claim)
