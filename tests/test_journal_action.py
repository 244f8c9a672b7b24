"""Sign before execute: the intent is durable before the block runs; every intent gets an outcome or stays open."""

from __future__ import annotations

import pytest

from journal.entry import Kind, digest
from journal.errors import EntryError, JournalError
from journal.writer import Journal, load
from tests.test_journal_fixtures import clock


@pytest.fixture
def journal(tmp_path):
    with Journal.create(tmp_path / "journal", clock_ms=clock()) as journal:
        yield journal


def test_the_intent_is_signed_and_on_disk_before_the_block_runs(journal):
    with journal.action("aggregate", {"update": digest(b"u")}) as act:
        seen = load(journal.directory)
        assert seen.entries[-1] == act.intent and seen.entries[-1].kind == Kind.INTENT
        assert [i.seq for i in seen.report.open_intents] == [act.intent.seq]


def test_the_outcome_names_its_intent_and_the_output_digests(journal):
    with journal.action("aggregate", {"update": digest(b"u")}) as act:
        act.outcome({"model": digest(b"m")})
    outcome = journal.entries[-1]
    assert (outcome.kind, outcome.ref, outcome.action) == (Kind.OUTCOME, act.intent.seq, "aggregate")
    assert outcome.outputs == {"model": digest(b"m")} and outcome.meta == {"status": "ok"}
    assert journal.report().open_intents == ()


def test_a_block_that_raises_records_an_error_outcome_and_the_error_propagates(journal):
    with pytest.raises(ValueError, match="bad weights"):
        with journal.action("aggregate"):
            raise ValueError("bad weights")
    outcome = journal.entries[-1]
    assert outcome.kind == Kind.OUTCOME and outcome.meta == {"status": "error", "error": "ValueError: bad weights"}
    assert outcome.outputs is None


def test_an_error_message_over_several_lines_is_recorded_on_one_line(journal):
    with pytest.raises(RuntimeError):
        with journal.action("aggregate"):
            raise RuntimeError("first line\nsecond line\tend")
    assert journal.entries[-1].meta["error"] == "RuntimeError: first line second line end"


def test_a_block_that_ends_without_an_outcome_records_a_plain_ok(journal):
    with journal.action("ping"):
        pass
    assert journal.entries[-1].meta == {"status": "ok"} and journal.report().open_intents == ()


def test_an_intent_whose_process_died_is_reported_open_after_reopening(journal):
    intent = journal.append(Kind.INTENT, "deploy", {"model": digest(b"m")})
    journal.close()
    report = load(journal.directory).report
    assert [(i.seq, i.action) for i in report.open_intents] == [(intent.seq, "deploy")]


def test_nested_actions_close_their_own_intents(journal):
    with journal.action("round") as outer:
        with journal.action("client-update") as inner:
            inner.outcome({"update": digest(b"u")})
        outer.outcome({"model": digest(b"m")})
    refs = [e.ref for e in journal.entries if e.kind == Kind.OUTCOME]
    assert refs == [inner.intent.seq, outer.intent.seq]


def test_an_action_takes_one_outcome_only(journal):
    with journal.action("aggregate") as act:
        act.outcome()
        with pytest.raises(JournalError, match="already has its outcome"):
            act.outcome()


def test_the_journal_sets_the_outcome_status_itself(journal):
    with journal.action("aggregate") as act:
        with pytest.raises(JournalError, match="set by the journal"):
            act.outcome(meta={"status": "ok"})


def test_inputs_are_digests_never_data(journal):
    with pytest.raises(EntryError, match="must be 32 bytes"):
        journal.append(Kind.INTENT, "train", {"data": b"the training data itself"})


def test_a_closed_journal_refuses_appends(journal):
    journal.close()
    with pytest.raises(JournalError, match="closed"):
        journal.note("late")


def test_entry_times_never_go_back_even_if_the_clock_does(tmp_path):
    times = iter([5_000, 4_000, 3_000])
    with Journal.create(tmp_path / "j", clock_ms=lambda: next(times)) as journal:
        journal.note("a")
        journal.note("b")
    assert [e.time_ms for e in load(tmp_path / "j").entries] == [5_000, 5_000, 5_000]
