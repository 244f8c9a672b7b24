"""One journal entry: its fields, its canonical CBOR, its signature, its digest and its chain link.

An entry records *that* something happened and *which bytes* were involved, never the
bytes themselves: inputs and outputs are 32-byte digests under names. A federated
learning client can then journal its update before sending it without the journal ever
holding training data.

Three hashes, each under its own domain tag (like proof/chain.py does for blocks and
votes), so that no value of one kind can stand for another:

- the **signed message** ``tagged_hash(TAG_SIGNED, CBOR(fields without "sig"))``, what
  the producer key signs (pure ML-DSA-65, empty context);
- the **entry digest** ``tagged_hash(TAG_ENTRY, CBOR(all fields))``, what a withheld
  entry is shown as in an audit package;
- the **chain hash** ``tagged_hash(TAG_CHAIN, previous chain hash || entry digest)``,
  starting from 32 zero bytes. The chain hash of the last entry is the journal *head*,
  the audit root a producer submits. Because the link needs only the digest, an auditor
  can follow the chain across withheld entries.

Every entry names the previous chain hash (``prev``) and its position (``seq``) inside
what it signs, so a signed entry cannot be moved elsewhere in the chain.
docs/journal-format.md sections 3 and 4 are the specification.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from functools import cached_property
from typing import Any, Protocol

from proof import cbor
from proof.errors import DecodeError
from proof.hashing import HASH_SIZE, sha256, tagged_hash
from proof.mldsa import PUBLIC_KEY_SIZE, SIGNATURE_SIZE

from journal.errors import EntryError

TAG_SIGNED = "pantheon/journal-signed/v1"
TAG_ENTRY = "pantheon/journal-entry/v1"
TAG_CHAIN = "pantheon/journal-chain/v1"
TAG_KEY = "pantheon/journal-key/v1"

ZERO_HASH = bytes(HASH_SIZE)
"""The chain hash before the first entry (the ``prev`` of entry 0)."""

UINT64_MAX = 2**64 - 1
INT64_MIN = -(2**63)
ACTION_SIZE_MAX = 64
NAME_SIZE_MAX = 64
DIGESTS_MAX = 64
"""Named digests per ``in`` or ``out`` map."""
META_KEYS_MAX = 32
META_TEXT_SIZE_MAX = 1024
META_BYTES_SIZE_MAX = 64
"""Metadata byte strings are identifiers (a nonce, a short id), not data: 64 bytes at most."""
ENTRY_SIZE_MAX = 64 * 1024
"""Encoded size of one entry. The largest legal entry is about 53 KB (two full digest
maps, full metadata, a public key and a signature)."""
ENTRY_ITEMS_MAX = 1024
OUTCOME_OK = "ok"
OUTCOME_ERROR = "error"

MetaValue = str | int | bool | bytes


class Kind(StrEnum):
    INTENT = "intent"
    OUTCOME = "outcome"
    NOTE = "note"
    KEY_ROTATION = "key-rotation"
    ANCHOR = "anchor"


class Signer(Protocol):
    """What signs entries: proof.mldsa.SigningKey, or a stand-in that replays signatures."""

    public_key: bytes

    def sign(self, message: bytes) -> bytes: ...


def digest(data: bytes) -> bytes:
    """The digest a producer records for a blob: plain SHA-256, so anyone can recompute it."""
    return sha256(data)


def key_fingerprint(public_key: bytes) -> bytes:
    """The 32 bytes an entry names its signing key by."""
    return tagged_hash(TAG_KEY, public_key)


def chain_hash(previous: bytes, entry_digest: bytes) -> bytes:
    """The chain hash after an entry with ``entry_digest``, given the one before it."""
    return tagged_hash(TAG_CHAIN, previous, entry_digest)


def _size(text: str) -> int:
    return len(text.encode("utf-8", "surrogatepass"))


def is_control(char: str) -> bool:
    """The code points no text field of an entry may hold (docs/journal-format.md §4)."""
    return ord(char) < 0x20 or 0x7F <= ord(char) <= 0x9F


def _check_no_control(value: str, what: str) -> None:
    if any(is_control(char) for char in value):
        raise EntryError(f"{what} {value[:80]!r} holds control characters (U+0000..U+001F, U+007F..U+009F)")


def _check_text(value: object, what: str, size_max: int) -> None:
    if not isinstance(value, str) or not 0 < _size(value) <= size_max:
        raise EntryError(f"{what} must be 1..{size_max} bytes of text")
    _check_no_control(value, what)


def _check_uint(value: object, what: str) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= UINT64_MAX:
        raise EntryError(f"{what} must be an integer in 0..2**64-1, got {value!r}")


def _check_bytes(value: object, what: str, size: int) -> None:
    if not isinstance(value, bytes) or len(value) != size:
        raise EntryError(f"{what} must be {size} bytes")


def _check_digests(value: object, what: str) -> None:
    if not isinstance(value, dict) or len(value) > DIGESTS_MAX:
        raise EntryError(f"{what} must be a map of at most {DIGESTS_MAX} named digests")
    for name, item in value.items():
        _check_text(name, f"{what} name", NAME_SIZE_MAX)
        _check_bytes(item, f"{what} digest {name!r}", HASH_SIZE)


def _check_meta_value(key: str, value: object) -> None:
    if isinstance(value, bool):
        return
    if isinstance(value, int):
        if not INT64_MIN <= value <= UINT64_MAX:
            raise EntryError(f"meta {key!r}: integer outside -2**63..2**64-1")
    elif isinstance(value, str):
        if _size(value) > META_TEXT_SIZE_MAX:
            raise EntryError(f"meta {key!r}: text longer than {META_TEXT_SIZE_MAX} bytes")
        _check_no_control(value, f"meta {key!r}: text")
    elif isinstance(value, bytes):
        if len(value) > META_BYTES_SIZE_MAX:
            raise EntryError(f"meta {key!r}: byte string longer than {META_BYTES_SIZE_MAX} bytes")
    else:
        raise EntryError(f"meta {key!r}: a value must be text, an integer, a bool or bytes, not {type(value).__name__}")


def _check_meta(meta: object, kind: Kind) -> None:
    if not isinstance(meta, dict) or len(meta) > META_KEYS_MAX:
        raise EntryError(f"meta must be a map of at most {META_KEYS_MAX} keys")
    for key, value in meta.items():
        _check_text(key, "meta key", NAME_SIZE_MAX)
        _check_meta_value(key, value)
    if kind == Kind.OUTCOME:
        status = meta.get("status")
        if status not in (OUTCOME_OK, OUTCOME_ERROR):
            raise EntryError(f"an outcome's meta must have status {OUTCOME_OK!r} or {OUTCOME_ERROR!r}")
        if ("error" in meta) != (status == OUTCOME_ERROR) or not isinstance(meta.get("error", ""), str):
            raise EntryError("exactly an outcome with status 'error' has meta 'error', a text")


@dataclass(frozen=True)
class Entry:
    """A signed journal entry. Construct through :func:`sign_entry`; decode with :meth:`decode`.

    ``ref`` is carried by outcomes only (the seq of the intent they close); ``pubkey``
    by key-rotation entries only (the key that signs from the next entry on).
    """

    seq: int
    prev: bytes
    time_ms: int
    signer: bytes
    kind: Kind
    action: str
    inputs: Mapping[str, bytes]
    meta: Mapping[str, MetaValue]
    signature: bytes
    outputs: Mapping[str, bytes] | None = None
    ref: int | None = None
    pubkey: bytes | None = None

    def __post_init__(self) -> None:
        _check_uint(self.seq, "seq")
        _check_bytes(self.prev, "prev", HASH_SIZE)
        _check_uint(self.time_ms, "time_ms")
        _check_bytes(self.signer, "signer", HASH_SIZE)
        if not isinstance(self.kind, Kind):
            raise EntryError(f"kind must be a Kind, got {self.kind!r}")
        _check_text(self.action, "action", ACTION_SIZE_MAX)
        _check_digests(self.inputs, "in")
        if self.outputs is not None:
            _check_digests(self.outputs, "out")
            if not self.outputs:
                raise EntryError("out, when present, names at least one digest (absent means none)")
            if self.kind == Kind.INTENT:
                raise EntryError("an intent has no outputs yet: they belong in its outcome")
        _check_meta(self.meta, self.kind)
        _check_bytes(self.signature, "sig", SIGNATURE_SIZE)
        if (self.kind == Kind.OUTCOME) != (self.ref is not None):
            raise EntryError("exactly outcome entries carry ref (the seq of their intent)")
        if self.ref is not None:
            _check_uint(self.ref, "ref")
            if self.ref >= self.seq:
                raise EntryError(f"ref {self.ref} must name an earlier entry than seq {self.seq}")
        if (self.kind == Kind.KEY_ROTATION) != (self.pubkey is not None):
            raise EntryError("exactly key-rotation entries carry pubkey")
        if self.pubkey is not None:
            _check_bytes(self.pubkey, "pubkey", PUBLIC_KEY_SIZE)

    def _fields(self) -> dict[str, Any]:
        value: dict[str, Any] = {
            "seq": self.seq,
            "prev": self.prev,
            "time_ms": self.time_ms,
            "signer": self.signer,
            "kind": str(self.kind),
            "action": self.action,
            "in": dict(self.inputs),
            "meta": dict(self.meta),
        }
        if self.outputs is not None:
            value["out"] = dict(self.outputs)
        if self.ref is not None:
            value["ref"] = self.ref
        if self.pubkey is not None:
            value["pubkey"] = self.pubkey
        return value

    def to_cbor(self) -> dict[str, Any]:
        return {**self._fields(), "sig": self.signature}

    def encode(self) -> bytes:
        return cbor.encode(self.to_cbor())

    @cached_property
    def signed_message(self) -> bytes:
        """The 32 bytes the producer key signed."""
        return tagged_hash(TAG_SIGNED, cbor.encode(self._fields()))

    @cached_property
    def digest(self) -> bytes:
        """The entry digest: what stands for this entry when it is withheld."""
        return tagged_hash(TAG_ENTRY, self.encode())

    @classmethod
    def from_cbor(cls, value: Any) -> Entry:
        fields = cbor.expect_map(
            value,
            "entry",
            {"seq", "prev", "time_ms", "signer", "kind", "action", "in", "meta", "sig"},
            {"out", "ref", "pubkey"},
        )
        kind_text = cbor.expect_text(fields["kind"], "entry kind", max_size=16)
        try:
            kind = Kind(kind_text)
        except ValueError:
            raise DecodeError(f"entry kind {kind_text!r} is not one of {', '.join(Kind)}") from None
        try:
            return cls(
                seq=fields["seq"],
                prev=fields["prev"],
                time_ms=fields["time_ms"],
                signer=fields["signer"],
                kind=kind,
                action=fields["action"],
                inputs=fields["in"],
                meta=fields["meta"],
                signature=fields["sig"],
                outputs=fields.get("out"),
                ref=fields.get("ref"),
                pubkey=fields.get("pubkey"),
            )
        except EntryError as exc:
            raise DecodeError(f"entry: {exc}") from None

    @classmethod
    def decode(cls, data: bytes) -> Entry:
        """The entry whose canonical encoding is exactly ``data``; DecodeError otherwise."""
        return cls.from_cbor(cbor.decode(data, max_size=ENTRY_SIZE_MAX, max_depth=3, max_items=ENTRY_ITEMS_MAX))


def sign_entry(
    signer: Signer,
    *,
    seq: int,
    prev: bytes,
    time_ms: int,
    kind: Kind,
    action: str,
    inputs: Mapping[str, bytes],
    meta: Mapping[str, MetaValue] | None = None,
    outputs: Mapping[str, bytes] | None = None,
    ref: int | None = None,
    pubkey: bytes | None = None,
) -> Entry:
    """A new entry, checked, then signed by ``signer`` (whose fingerprint it names)."""
    unsigned = Entry(
        seq=seq,
        prev=prev,
        time_ms=time_ms,
        signer=key_fingerprint(signer.public_key),
        kind=kind,
        action=action,
        inputs=dict(inputs),
        meta=dict(meta or {}),
        signature=bytes(SIGNATURE_SIZE),
        outputs=None if outputs is None else dict(outputs),
        ref=ref,
        pubkey=pubkey,
    )
    entry = dataclasses.replace(unsigned, signature=signer.sign(unsigned.signed_message))
    if len(entry.encode()) > ENTRY_SIZE_MAX:
        raise EntryError(f"entry of {len(entry.encode())} bytes exceeds {ENTRY_SIZE_MAX}")
    return entry
