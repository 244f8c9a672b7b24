"""Key rotation: the old key signs the entry introducing the new one; verification follows it."""

from __future__ import annotations

import dataclasses

import pytest

from journal.entry import Kind, key_fingerprint
from journal.errors import ChainError, JournalKeyError
from journal.keyfile import read_key_file, write_key_file
from journal.writer import KEY_FILE, NEXT_KEY_FILE, Journal, load
from proof.mldsa import SigningKey
from tests.test_journal_fixtures import clock, payloads, resign, rewrite


@pytest.fixture
def rotated(tmp_path):
    """A journal: init (key A), note, rotation to key B, note."""
    directory = tmp_path / "journal"
    first, second = SigningKey.generate(), SigningKey.generate()
    with Journal.create(directory, key=first, clock_ms=clock()) as journal:
        journal.note("before")
        journal.rotate_key(second)
        journal.note("after")
    return directory, first, second


def test_verification_follows_the_rotation_to_the_new_key(rotated):
    directory, first, second = rotated
    loaded = load(directory)
    assert loaded.report.keys == (first.public_key, second.public_key)
    rotation, after = loaded.entries[2], loaded.entries[3]
    assert rotation.signer == key_fingerprint(first.public_key) and rotation.pubkey == second.public_key
    assert after.signer == key_fingerprint(second.public_key)


def test_the_new_key_replaces_the_old_key_file(rotated):
    directory, _first, second = rotated
    assert read_key_file(directory / KEY_FILE).seed == second.seed and not (directory / NEXT_KEY_FILE).exists()


def test_an_entry_signed_by_the_old_key_after_the_rotation_fails(rotated):
    directory, first, _second = rotated
    records = [dataclasses.replace(e) for e in load(directory).entries]
    records[3] = resign(records[3], first)
    rewrite(directory, [e.encode() for e in records])
    with pytest.raises(ChainError) as caught:
        load(directory)
    assert (caught.value.seq, caught.value.reason) == (3, "key-unknown")


def test_a_rotation_back_to_an_earlier_key_fails(rotated):
    directory, first, second = rotated
    entries = list(load(directory).entries)
    back = resign(entries[3], second, kind=Kind.KEY_ROTATION, action="key-rotation", inputs={}, meta={},
                  pubkey=first.public_key)
    rewrite(directory, payloads(directory)[:3] + [back.encode()])
    with pytest.raises(ChainError) as caught:
        load(directory)
    assert (caught.value.seq, caught.value.reason) == (3, "key-reused")


def test_a_rotation_interrupted_after_its_entry_is_finished_on_open(tmp_path):
    directory = tmp_path / "journal"
    new = SigningKey.generate()
    with Journal.create(directory, clock_ms=clock()) as journal:
        write_key_file(directory / NEXT_KEY_FILE, new)
        journal.append(Kind.KEY_ROTATION, "key-rotation", {}, pubkey=new.public_key)
    with Journal.open(directory) as journal:
        journal.note("signed by the new key")
    assert read_key_file(directory / KEY_FILE).seed == new.seed
    assert load(directory).entries[-1].signer == key_fingerprint(new.public_key)


def test_a_rotation_interrupted_before_its_entry_keeps_the_old_key(tmp_path):
    directory = tmp_path / "journal"
    old = SigningKey.generate()
    Journal.create(directory, key=old, clock_ms=clock()).close()
    write_key_file(directory / NEXT_KEY_FILE, SigningKey.generate())
    with Journal.open(directory) as journal:
        journal.note("still the old key")
    assert not (directory / NEXT_KEY_FILE).exists() and read_key_file(directory / KEY_FILE).seed == old.seed


def test_a_half_written_next_key_file_is_discarded(tmp_path):
    directory = tmp_path / "journal"
    Journal.create(directory, clock_ms=clock()).close()
    path = directory / NEXT_KEY_FILE
    path.write_text('kind = "pantheon-journal-key"\nversion = 1\nseed = "00ab')
    path.chmod(0o600)
    Journal.open(directory).close()
    assert not path.exists()


def test_a_key_file_readable_by_others_is_refused(tmp_path):
    directory = tmp_path / "journal"
    Journal.create(directory, clock_ms=clock()).close()
    (directory / KEY_FILE).chmod(0o644)
    with pytest.raises(JournalKeyError, match="chmod 600"):
        Journal.open(directory)
