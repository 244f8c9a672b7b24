"""The anchor sidecar: receipts and proof bundles of submitted heads, kept beside the journal.

Why a sidecar rather than entries: a bundle is 12-20 KB of someone else's proof, and an
entry that recorded it would itself change the head, so the journal would never stop
needing a newer anchor. The sidecar holds the material; an ``anchor`` entry (written by
journal/anchoring.py once a head is anchored in Bitcoin) records only its digest.

The sidecar is also the journal's memory of what it told the world: every receipt and
bundle names a (seq, head) pair, and :func:`check_sidecar` refuses a journal that no
longer holds that head there. That is how *truncation* of a journal (dropping its last
entries, which leaves a shorter chain that is internally valid) is detected locally; the
node's log and Bitcoin detect it for everyone else.

Files (written to a temporary name, fsynced, renamed)::

    anchors/<seq, 12 digits>-<head hex>.receipt.json
    anchors/<seq, 12 digits>-<head hex>.bundle.cbor
    genesis.cbor      (in the journal directory: the chain the bundles are checked against)
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from proof.bundle import BUNDLE_SIZE_MAX, Bundle, Claim, verify_bundle
from proof.chain import GENESIS_SIZE_MAX, Genesis
from proof.errors import DecodeError, ProofError
from proof.hashing import HASH_SIZE

from journal.errors import JournalFileError
from journal.verify import ChainWalker

ANCHORS_DIR = "anchors"
GENESIS_FILE = "genesis.cbor"
RECEIPT_SUFFIX = ".receipt.json"
BUNDLE_SUFFIX = ".bundle.cbor"
RECEIPT_SIZE_MAX = 4096
_NAME = re.compile(r"^(\d{12})-([0-9a-f]{64})(\.receipt\.json|\.bundle\.cbor)$")


def _write_atomically(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@dataclass(frozen=True)
class Receipt:
    """A node's acknowledgement that it took head ``head`` (the chain hash after entry ``seq``)."""

    seq: int
    head: bytes
    node: str
    state: str
    received_at_ms: int
    index: int | None

    def to_json(self) -> dict[str, Any]:
        doc: dict[str, Any] = {"seq": self.seq, "head": self.head.hex(), "node": self.node, "state": self.state,
                               "received_at_ms": self.received_at_ms}
        if self.index is not None:
            doc["index"] = self.index
        return doc

    @classmethod
    def from_json(cls, doc: Any, where: Path) -> Receipt:
        try:
            receipt = cls(seq=doc["seq"], head=bytes.fromhex(doc["head"]), node=doc["node"], state=doc["state"],
                          received_at_ms=doc["received_at_ms"], index=doc.get("index"))
        except (KeyError, TypeError, ValueError):
            raise JournalFileError(f"{where} is not a receipt") from None
        if not isinstance(receipt.seq, int) or len(receipt.head) != HASH_SIZE:
            raise JournalFileError(f"{where} is not a receipt")
        return receipt


@dataclass(frozen=True)
class StoredBundle:
    seq: int
    head: bytes
    path: Path

    def read(self) -> bytes:
        data = self.path.read_bytes()
        if len(data) > BUNDLE_SIZE_MAX:
            raise JournalFileError(f"{self.path} is larger than any bundle ({BUNDLE_SIZE_MAX} bytes)")
        return data


class Sidecar:
    """The anchors directory of one journal."""

    def __init__(self, journal_directory: Path) -> None:
        self.journal_directory = Path(journal_directory)
        self.directory = self.journal_directory / ANCHORS_DIR

    def _path(self, seq: int, head: bytes, suffix: str) -> Path:
        return self.directory / f"{seq:012d}-{head.hex()}{suffix}"

    def _listed(self, suffix: str) -> list[tuple[int, bytes, Path]]:
        if not self.directory.is_dir():
            return []
        found = []
        for path in sorted(self.directory.iterdir()):
            match = _NAME.match(path.name)
            if match and match.group(3) == suffix:
                found.append((int(match.group(1)), bytes.fromhex(match.group(2)), path))
        return found

    def put_receipt(self, receipt: Receipt) -> Path:
        path = self._path(receipt.seq, receipt.head, RECEIPT_SUFFIX)
        _write_atomically(path, (json.dumps(receipt.to_json(), indent=2) + "\n").encode())
        return path

    def receipts(self) -> list[Receipt]:
        receipts = []
        for seq, head, path in self._listed(RECEIPT_SUFFIX):
            raw = path.read_bytes()
            if len(raw) > RECEIPT_SIZE_MAX:
                raise JournalFileError(f"{path} is larger than any receipt")
            try:
                receipt = Receipt.from_json(json.loads(raw), path)
            except ValueError:
                raise JournalFileError(f"{path} is not JSON") from None
            if (receipt.seq, receipt.head) != (seq, head):
                raise JournalFileError(f"{path}: its name and its content name different heads")
            receipts.append(receipt)
        return receipts

    def put_bundle(self, seq: int, head: bytes, data: bytes) -> Path:
        path = self._path(seq, head, BUNDLE_SUFFIX)
        _write_atomically(path, data)
        return path

    def bundles(self) -> list[StoredBundle]:
        return [StoredBundle(seq, head, path) for seq, head, path in self._listed(BUNDLE_SUFFIX)]

    # ------------------------------------------------------------------ genesis

    @property
    def genesis_path(self) -> Path:
        return self.journal_directory / GENESIS_FILE

    def genesis(self) -> Genesis | None:
        if not self.genesis_path.exists():
            return None
        return _read_genesis(self.genesis_path)

    def genesis_bytes(self) -> bytes | None:
        return self.genesis_path.read_bytes() if self.genesis_path.exists() else None

    def adopt_genesis(self, path: Path) -> Genesis:
        """The genesis at ``path``, stored as the journal's chain on first use, refused if it is another chain."""
        genesis = _read_genesis(path)
        current = self.genesis()
        if current is None:
            _write_atomically(self.genesis_path, genesis.encode())
        elif current.hash != genesis.hash:
            raise JournalFileError(
                f"this journal anchors in chain {current.chain_name} ({current.hash.hex()[:16]}…), "
                f"not in {genesis.chain_name} ({genesis.hash.hex()[:16]}…) from {path}"
            )
        return genesis


def _read_genesis(path: Path) -> Genesis:
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise JournalFileError(f"genesis file {path} does not exist") from None
    if len(data) > GENESIS_SIZE_MAX:
        raise JournalFileError(f"{path} is larger than any genesis")
    try:
        return Genesis.decode(data)
    except DecodeError as exc:
        raise JournalFileError(f"{path} is not a valid genesis: {exc}") from None


@dataclass(frozen=True)
class VerifiedBundle:
    seq: int
    head: bytes
    data: bytes
    claim: Claim


@dataclass(frozen=True)
class AnchorStatus:
    """What the sidecar proves about the journal: the latest certified and Bitcoin-anchored heads.

    An entry is anchored when a bundle for its head or a later head verifies: the later
    head's chain hash commits to every entry before it.
    """

    receipts: int
    verified: tuple[VerifiedBundle, ...]
    unverified: tuple[str, ...]

    @property
    def certified(self) -> VerifiedBundle | None:
        """The verified bundle of the latest head (pending or anchored)."""
        return max(self.verified, key=lambda b: b.seq, default=None)

    @property
    def anchored(self) -> VerifiedBundle | None:
        """The verified Bitcoin-anchored bundle of the latest head."""
        return max((b for b in self.verified if b.claim.anchored), key=lambda b: b.seq, default=None)

    def covering(self, seq: int) -> VerifiedBundle | None:
        """The bundle an export of entries up to ``seq`` should carry: anchored if possible, then the earliest."""
        candidates = [b for b in self.verified if b.seq >= seq]
        return min(candidates, key=lambda b: (not b.claim.anchored, b.seq), default=None)


def check_sidecar(sidecar: Sidecar, walker: ChainWalker) -> AnchorStatus:
    """Check every recorded head against the chain (ChainError on truncation or a changed head),
    then every stored bundle against the genesis."""
    receipts = sidecar.receipts()
    bundles = sidecar.bundles()
    for receipt in receipts:
        walker.check_head(receipt.seq, receipt.head, f"the receipt from {receipt.node}")
    for stored in bundles:
        walker.check_head(stored.seq, stored.head, f"the bundle {stored.path.name}")
    genesis = sidecar.genesis()
    verified: list[VerifiedBundle] = []
    unverified: list[str] = []
    for stored in bundles:
        if genesis is None:
            unverified.append(f"{stored.path.name}: no genesis.cbor to check it against")
            continue
        data = stored.read()
        try:
            if Bundle.decode(data).root != stored.head:
                raise ProofError("the bundle proves another root than the head its name gives")
            claim = verify_bundle(data, genesis=genesis)
        except (ProofError, DecodeError) as exc:
            unverified.append(f"{stored.path.name}: {exc}")
            continue
        verified.append(VerifiedBundle(stored.seq, stored.head, data, claim))
    return AnchorStatus(len(receipts), tuple(verified), tuple(unverified))
