"""Tamper evidence: every change to a journal's entries fails verification, naming the first bad entry.

Each case rewrites the journal file with correctly framed records (valid lengths and
checksums), so what is caught is the change to the entries themselves, not the framing.
"""

from __future__ import annotations

import dataclasses

import pytest

from journal.anchors import Receipt, Sidecar, check_sidecar
from journal.entry import Entry, Kind, chain_hash, key_fingerprint
from journal.errors import ChainError
from journal.keyfile import read_key_file
from journal.writer import JOURNAL_FILE, load
from proof.mldsa import SigningKey
from tests.test_journal_fixtures import payloads, resign, rewrite, sample_journal


@pytest.fixture
def journal_dir(tmp_path):
    directory = tmp_path / "journal"
    sample_journal(directory).close()
    return directory


def failure(directory, **kwargs) -> ChainError:
    with pytest.raises(ChainError) as caught:
        loaded = load(directory, **kwargs)
        check_sidecar(Sidecar(directory), loaded.walker)
    return caught.value


def entries(directory) -> list[Entry]:
    return [Entry.decode(p) for p in payloads(directory)]


def test_the_untouched_journal_verifies(journal_dir):
    assert load(journal_dir).walker.length == 8


def test_an_edited_field_fails_the_signature_of_that_entry(journal_dir):
    records = entries(journal_dir)
    records[3] = dataclasses.replace(records[3], action="train-fast")
    rewrite(journal_dir, [e.encode() for e in records])
    error = failure(journal_dir)
    assert (error.seq, error.reason) == (3, "signature")


def test_an_edited_digest_fails_the_signature(journal_dir):
    records = entries(journal_dir)
    records[1] = dataclasses.replace(records[1], inputs={"source": bytes(32)})
    rewrite(journal_dir, [e.encode() for e in records])
    assert (failure(journal_dir).seq, failure(journal_dir).reason) == (1, "signature")


def test_a_deleted_entry_is_named_by_the_position_it_left(journal_dir):
    records = payloads(journal_dir)
    del records[4]
    rewrite(journal_dir, records)
    error = failure(journal_dir)
    assert (error.seq, error.reason) == (4, "seq")


def test_two_swapped_entries_fail_at_the_first_of_them(journal_dir):
    records = payloads(journal_dir)
    records[3], records[4] = records[4], records[3]
    rewrite(journal_dir, records)
    assert (failure(journal_dir).seq, failure(journal_dir).reason) == (3, "seq")


def test_a_duplicated_entry_fails(journal_dir):
    records = payloads(journal_dir)
    records.insert(3, records[2])
    rewrite(journal_dir, records)
    assert (failure(journal_dir).seq, failure(journal_dir).reason) == (3, "seq")


def test_an_inserted_entry_signed_by_another_key_fails_as_an_unknown_key(journal_dir):
    records = entries(journal_dir)
    forged = resign(records[3], SigningKey.generate(), action="approve")
    rewrite(journal_dir, [e.encode() for e in records[:3]] + [forged.encode()] + [e.encode() for e in records[3:]])
    assert (failure(journal_dir).seq, failure(journal_dir).reason) == (3, "key-unknown")


def test_an_entry_re_signed_with_another_key_fails_as_an_unknown_key(journal_dir):
    records = entries(journal_dir)
    records[5] = resign(records[5], SigningKey.generate(), meta={"round": 4})
    rewrite(journal_dir, [e.encode() for e in records])
    assert (failure(journal_dir).seq, failure(journal_dir).reason) == (5, "key-unknown")


def test_an_entry_re_signed_with_another_key_under_the_old_fingerprint_fails_its_signature(journal_dir):
    records = entries(journal_dir)
    other = resign(records[5], SigningKey.generate(), meta={"round": 4})
    records[5] = dataclasses.replace(other, signer=records[5].signer)
    rewrite(journal_dir, [e.encode() for e in records])
    assert (failure(journal_dir).seq, failure(journal_dir).reason) == (5, "signature")


def test_a_journal_re_signed_from_the_start_with_another_key_fails_the_producer_pin(journal_dir):
    records = entries(journal_dir)
    pinned = records[0].signer
    thief = SigningKey.generate()
    forged, prev = [], records[0].prev
    for entry in records:
        pubkey = thief.public_key if entry.seq == 0 else entry.pubkey
        new = resign(entry, thief, prev=prev, pubkey=pubkey)
        forged.append(new)
        prev = chain_hash(prev, new.digest)
    rewrite(journal_dir, [e.encode() for e in forged])
    assert load(journal_dir).walker.length == 8, "self-consistent: only a pin or an anchored head can tell"
    error = failure(journal_dir, first_key=pinned)
    assert (error.seq, error.reason) == (0, "first-key")


def test_dropping_the_last_entries_fails_against_a_recorded_head(journal_dir):
    walker = load(journal_dir).walker
    Sidecar(journal_dir).put_receipt(Receipt(seq=7, head=walker.chain_hash_at(7), node="http://n", state="pending",
                                             received_at_ms=1, index=0))
    rewrite(journal_dir, payloads(journal_dir)[:6])
    error = failure(journal_dir)
    assert (error.seq, error.reason) == (6, "truncated")


def test_a_rewritten_history_fails_against_a_recorded_head(journal_dir):
    walker = load(journal_dir).walker
    Sidecar(journal_dir).put_receipt(Receipt(seq=5, head=walker.chain_hash_at(5), node="http://n", state="pending",
                                             received_at_ms=1, index=0))
    key = _producer_key(journal_dir)
    records = entries(journal_dir)
    records[5] = resign(records[5], key, meta={"round": 4})
    rewrite(journal_dir, [e.encode() for e in records[:6]])
    error = failure(journal_dir)
    assert (error.seq, error.reason) == (5, "head-mismatch")


def test_a_first_entry_that_introduces_no_key_fails(journal_dir):
    records = entries(journal_dir)
    key = _producer_key(journal_dir)
    records[0] = resign(records[0], key, kind=Kind.NOTE, pubkey=None)
    rewrite(journal_dir, [e.encode() for e in records])
    assert (failure(journal_dir).seq, failure(journal_dir).reason) == (0, "first-entry")


def test_an_entry_pointing_at_another_predecessor_fails_its_link(journal_dir):
    records = entries(journal_dir)
    records[4] = resign(records[4], _producer_key(journal_dir), prev=records[2].prev)
    rewrite(journal_dir, [e.encode() for e in records])
    assert (failure(journal_dir).seq, failure(journal_dir).reason) == (4, "prev")


def test_an_entry_dated_before_its_predecessor_fails(journal_dir):
    records = entries(journal_dir)
    records[6] = resign(records[6], _producer_key(journal_dir), time_ms=records[5].time_ms - 1)
    rewrite(journal_dir, [e.encode() for e in records])
    assert (failure(journal_dir).seq, failure(journal_dir).reason) == (6, "time")


def test_a_second_outcome_for_one_intent_fails(journal_dir):
    records = entries(journal_dir)
    records[7] = resign(records[7], _producer_key(journal_dir), kind=Kind.OUTCOME, action="fetch", ref=1,
                        meta={"status": "ok"})
    rewrite(journal_dir, [e.encode() for e in records])
    assert (failure(journal_dir).seq, failure(journal_dir).reason) == (7, "outcome-ref")


def test_an_outcome_naming_another_action_than_its_intent_fails(journal_dir):
    records = entries(journal_dir)
    records[7] = resign(records[7], _producer_key(journal_dir), kind=Kind.OUTCOME, action="rollback", ref=6,
                        meta={"status": "ok"})
    rewrite(journal_dir, [e.encode() for e in records])
    assert (failure(journal_dir).seq, failure(journal_dir).reason) == (7, "outcome-mismatch")


def test_a_flipped_byte_inside_a_record_is_damage_not_a_torn_tail(journal_dir):
    path = journal_dir / JOURNAL_FILE
    data = bytearray(path.read_bytes())
    data[200] ^= 0x01
    path.write_bytes(bytes(data))
    error = failure(journal_dir)
    assert (error.seq, error.reason) == (0, "record-damaged")


def test_a_record_that_is_not_an_entry_fails_to_decode(journal_dir):
    records = payloads(journal_dir)
    records[2] = records[2] + b"\x00"
    rewrite(journal_dir, records)
    assert (failure(journal_dir).seq, failure(journal_dir).reason) == (2, "decode")


def test_the_failure_message_names_the_entry_and_the_reason(journal_dir):
    records = entries(journal_dir)
    records[3] = dataclasses.replace(records[3], action="train-fast")
    rewrite(journal_dir, [e.encode() for e in records])
    assert str(failure(journal_dir)).startswith("entry 3: signature: ")


def _producer_key(directory) -> SigningKey:
    key = read_key_file(directory / "producer.key")
    assert key_fingerprint(key.public_key) == entries(directory)[0].signer
    return key
