"""Entries: one canonical encoding, strict decoding, explicit bounds, which kinds carry which fields."""

from __future__ import annotations

import dataclasses

import pytest

from journal.entry import (
    DIGESTS_MAX,
    META_BYTES_SIZE_MAX,
    META_KEYS_MAX,
    META_TEXT_SIZE_MAX,
    ZERO_HASH,
    Entry,
    Kind,
    chain_hash,
    key_fingerprint,
    sign_entry,
)
from journal.errors import EntryError
from proof import cbor
from proof.errors import DecodeError
from proof.mldsa import SigningKey
from proof.mldsa import verify as mldsa_verify

KEY = SigningKey(bytes(range(32)))


def make(**changes) -> Entry:
    fields = dict(seq=3, prev=b"\x11" * 32, time_ms=1000, kind=Kind.NOTE, action="note", inputs={"a": b"\x22" * 32},
                  meta={"k": "v"})
    fields.update(changes)
    return sign_entry(KEY, **fields)


def test_an_entry_decodes_from_its_encoding_to_itself():
    entry = make(outputs={"b": b"\x33" * 32}, meta={"t": "x", "n": -5, "f": True, "id": b"\x01\x02"})
    assert Entry.decode(entry.encode()) == entry


def test_the_signature_covers_everything_but_itself_and_names_its_key():
    entry = make()
    assert entry.signer == key_fingerprint(KEY.public_key)
    assert mldsa_verify(KEY.public_key, entry.signed_message, entry.signature)
    assert not mldsa_verify(KEY.public_key, dataclasses.replace(entry, time_ms=1001).signed_message, entry.signature)


def test_the_digest_and_the_chain_hash_are_domain_separated():
    entry = make()
    assert len({entry.digest, entry.signed_message, chain_hash(ZERO_HASH, entry.digest)}) == 3


def test_an_unknown_field_is_refused():
    value = make().to_cbor()
    value["extra"] = 1
    with pytest.raises(DecodeError, match="unknown field"):
        Entry.from_cbor(value)


def test_a_non_canonical_encoding_is_refused():
    data = make().encode()
    assert data[0] == 0xA9  # a map of 9 pairs, in its short form
    with pytest.raises(DecodeError, match="non-shortest"):
        Entry.decode(b"\xb8\x09" + data[1:])


def test_trailing_bytes_are_refused():
    with pytest.raises(DecodeError, match="trailing"):
        Entry.decode(make().encode() + b"\x00")


def test_an_unknown_kind_is_refused():
    value = make().to_cbor()
    value["kind"] = "approval"
    with pytest.raises(DecodeError, match="not one of"):
        Entry.from_cbor(value)


@pytest.mark.parametrize(
    "changes, message",
    [
        (dict(kind=Kind.INTENT, outputs={"x": b"\x00" * 32}), "an intent has no outputs"),
        (dict(outputs={}), "at least one digest"),
        (dict(kind=Kind.OUTCOME, meta={"status": "ok"}), "exactly outcome entries carry ref"),
        (dict(ref=1), "exactly outcome entries carry ref"),
        (dict(kind=Kind.OUTCOME, ref=3, meta={"status": "ok"}), "earlier entry"),
        (dict(kind=Kind.OUTCOME, ref=1, meta={}), "status"),
        (dict(kind=Kind.OUTCOME, ref=1, meta={"status": "ok", "error": "x"}), "exactly an outcome with status 'error'"),
        (dict(kind=Kind.KEY_ROTATION), "exactly key-rotation entries carry pubkey"),
        (dict(pubkey=KEY.public_key), "exactly key-rotation entries carry pubkey"),
        (dict(action=""), "action must be 1..64"),
        (dict(action="a" * 65), "action must be 1..64"),
        (dict(action="line\nbreak"), "control characters"),
        (dict(inputs={"a": b"\x00" * 31}), "must be 32 bytes"),
        (dict(inputs={f"n{i}": b"\x00" * 32 for i in range(DIGESTS_MAX + 1)}), "at most 64"),
        (dict(meta={f"k{i}": 1 for i in range(META_KEYS_MAX + 1)}), "at most 32 keys"),
        (dict(meta={"t": "x" * (META_TEXT_SIZE_MAX + 1)}), "text longer"),
        (dict(meta={"t": "line one\nline two"}), "control characters"),  # found by the browser verifier
        (dict(meta={"b": b"\x00" * (META_BYTES_SIZE_MAX + 1)}), "byte string longer"),
        (dict(meta={"n": 2**64}), "integer outside"),
        (dict(meta={"nested": {"a": 1}}), "must be text, an integer"),
        (dict(seq=-1), "seq must be"),
        (dict(prev=b"\x00" * 31), "prev must be 32 bytes"),
    ],
)
def test_a_structural_rule_is_enforced_when_an_entry_is_made(changes, message):
    with pytest.raises(EntryError, match=message):
        make(**changes)


def test_a_structural_rule_broken_in_the_bytes_is_a_decode_error():
    value = make().to_cbor()
    value["in"] = {"a": b"\x00" * 31}
    with pytest.raises(DecodeError, match="entry: in digest 'a' must be 32 bytes"):
        Entry.decode(cbor.encode(value))


def test_a_signature_of_the_wrong_size_is_refused_on_decode():
    value = make().to_cbor()
    value["sig"] = value["sig"][:-1]
    with pytest.raises(DecodeError, match="sig must be 3309 bytes"):
        Entry.decode(cbor.encode(value))

