"""The journal file: torn tails are reported and cut off only by repair; damage is never "repaired"; one writer."""

from __future__ import annotations

import pytest

from journal.entry import Kind
from journal.errors import ChainError, JournalFileError, TornTailError
from journal.records import MAGIC, RECORD_HEADER_SIZE, frame, scan
from journal.writer import JOURNAL_FILE, Journal, load, repair
from tests.test_journal_fixtures import payloads, sample_journal


@pytest.fixture
def journal_dir(tmp_path):
    directory = tmp_path / "journal"
    sample_journal(directory).close()
    return directory


def test_every_cut_inside_the_last_record_leaves_a_journal_that_verifies_up_to_the_entry_before(journal_dir):
    path = journal_dir / JOURNAL_FILE
    data = path.read_bytes()
    last = len(frame(payloads(journal_dir)[-1]))
    complete = load(journal_dir).walker.chain_hash_at(6)
    for cut in range(1, last):
        scanned = scan(data[: len(data) - cut])
        assert len(scanned.payloads) == 7 and scanned.torn is not None and scanned.torn.size == last - cut, cut
    for cut in (1, 2, 7, 8, 9, last // 2, last - 9, last - 8, last - 1):
        path.write_bytes(data[: len(data) - cut])
        loaded = load(journal_dir)
        assert (loaded.walker.length, loaded.walker.head) == (7, complete), cut
        assert loaded.torn is not None and loaded.torn.size == last - cut, cut


def test_a_zero_filled_tail_is_a_torn_tail(journal_dir):
    path = journal_dir / JOURNAL_FILE
    path.write_bytes(path.read_bytes() + bytes(4096))
    loaded = load(journal_dir)
    assert loaded.walker.length == 8 and loaded.torn is not None and loaded.torn.size == 4096


def test_a_last_record_with_a_bad_checksum_is_a_torn_tail(journal_dir):
    path = journal_dir / JOURNAL_FILE
    data = bytearray(path.read_bytes())
    data[-1] ^= 0xFF
    path.write_bytes(bytes(data))
    loaded = load(journal_dir)
    assert loaded.walker.length == 7 and loaded.torn is not None and loaded.torn.why == "checksum mismatch"


def test_a_torn_tail_blocks_appending_until_repair(journal_dir):
    path = journal_dir / JOURNAL_FILE
    path.write_bytes(path.read_bytes()[:-10])
    with pytest.raises(TornTailError, match="pantheon journal repair"):
        Journal.open(journal_dir)
    torn = repair(journal_dir)
    assert torn is not None and torn.offset == scan(path.read_bytes()).end
    with Journal.open(journal_dir) as journal:
        journal.note("after-repair")
    assert load(journal_dir).walker.length == 8 and load(journal_dir).torn is None


def test_repair_of_a_complete_journal_changes_nothing(journal_dir):
    before = (journal_dir / JOURNAL_FILE).read_bytes()
    assert repair(journal_dir) is None
    assert (journal_dir / JOURNAL_FILE).read_bytes() == before


def test_repair_refuses_damage_before_the_end(journal_dir):
    path = journal_dir / JOURNAL_FILE
    data = bytearray(path.read_bytes())
    data[len(MAGIC) + RECORD_HEADER_SIZE + 5] ^= 0x01
    path.write_bytes(bytes(data))
    with pytest.raises(ChainError) as caught:
        repair(journal_dir)
    assert caught.value.reason == "record-damaged" and path.read_bytes() == bytes(data)


def test_an_impossible_length_before_the_end_is_damage(journal_dir):
    path = journal_dir / JOURNAL_FILE
    data = bytearray(path.read_bytes())
    data[len(MAGIC) : len(MAGIC) + 4] = b"\xff\xff\xff\xff"
    path.write_bytes(bytes(data))
    with pytest.raises(ChainError) as caught:
        load(journal_dir)
    assert (caught.value.seq, caught.value.reason) == (0, "record-damaged")


def test_a_file_without_the_magic_is_not_a_journal(journal_dir):
    path = journal_dir / JOURNAL_FILE
    path.write_bytes(b"XXXX" + path.read_bytes()[4:])
    with pytest.raises(JournalFileError, match="not a Pantheon journal"):
        load(journal_dir)


def test_a_second_writer_is_refused_while_one_holds_the_journal(journal_dir):
    with Journal.open(journal_dir):
        with pytest.raises(JournalFileError, match="another process"):
            Journal.open(journal_dir)
    Journal.open(journal_dir).close()


def test_a_missing_journal_says_how_to_create_one(tmp_path):
    with pytest.raises(JournalFileError, match="pantheon journal init"):
        load(tmp_path)


def test_create_refuses_an_existing_journal(journal_dir):
    with pytest.raises(JournalFileError, match="already holds"):
        Journal.create(journal_dir)


def test_a_reopened_journal_continues_the_chain(journal_dir):
    head = load(journal_dir).walker.head
    with Journal.open(journal_dir) as journal:
        entry = journal.append(Kind.NOTE, "resumed")
    assert entry.seq == 8 and entry.prev == head


def test_a_journal_file_without_any_complete_entry_is_refused(journal_dir):
    (journal_dir / JOURNAL_FILE).write_bytes(MAGIC)
    with pytest.raises(ChainError) as caught:
        load(journal_dir)
    assert (caught.value.seq, caught.value.reason) == (0, "first-entry")


def test_an_interrupted_init_is_named_and_not_overwritten(tmp_path):
    directory = tmp_path / "journal"
    Journal.create(directory).close()
    (directory / JOURNAL_FILE).unlink()
    with pytest.raises(JournalFileError, match="interrupted init"):
        Journal.create(directory)
