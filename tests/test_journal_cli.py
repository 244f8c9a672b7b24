"""`pantheon journal ...` through the real entry point (node.cli.main): help, clear errors, exit codes."""

from __future__ import annotations

import dataclasses
import json

import pytest

from journal.entry import Entry, digest
from journal.writer import JOURNAL_FILE
from node.cli import main
from tests.test_journal_fixtures import payloads, rewrite

SUBCOMMANDS = ("init", "append", "show", "verify", "submit", "upgrade", "export", "repair")


def pantheon(argv, capsys) -> tuple[int, str, str]:
    code = main([str(a) for a in argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.fixture
def journal_dir(tmp_path, capsys):
    directory = tmp_path / "journal"
    assert pantheon(["journal", "init", directory], capsys)[0] == 0
    return directory


@pytest.mark.parametrize("command", SUBCOMMANDS)
def test_every_subcommand_has_help(command, capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["journal", command, "--help"])
    assert exit_.value.code == 0 and "usage: pantheon journal " + command in capsys.readouterr().out


def test_append_hashes_a_file_given_as_an_input(journal_dir, tmp_path, capsys):
    data = tmp_path / "update.bin"
    data.write_bytes(b"weights")
    code, out, _ = pantheon(["journal", "append", journal_dir, "--kind", "intent", "--action", "send-update",
                             "--input", f"update=@{data}", "--meta", "round:int=2"], capsys)
    assert code == 0 and f"update={digest(b'weights').hex()[:12]}" in out
    code, out, _ = pantheon(["journal", "show", journal_dir, "--json"], capsys)
    entry = json.loads(out)["entries"][1]
    assert entry["in"] == {"update": digest(b"weights").hex()} and entry["meta"] == {"round": 2}


def test_an_outcome_closes_its_intent_and_show_lists_what_stays_open(journal_dir, capsys):
    pantheon(["journal", "append", journal_dir, "--kind", "intent", "--action", "train"], capsys)
    pantheon(["journal", "append", journal_dir, "--kind", "intent", "--action", "deploy"], capsys)
    code, out, _ = pantheon(["journal", "append", journal_dir, "--kind", "outcome", "--ref", 1, "--error", "OOM"],
                            capsys)
    assert code == 0 and '"status": "error"' in out
    code, out, _ = pantheon(["journal", "show", journal_dir], capsys)
    assert "entry 2: 'deploy' started" in out and "no recorded outcome" in out and "entry 1:" not in out


@pytest.mark.parametrize("argv, message", [
    (["--kind", "intent", "--action", "x", "--input", "data=abcd"], "a digest is 64 hex digits"),
    (["--kind", "intent", "--action", "x", "--input", "data"], "expected NAME=HEX64 or NAME=@FILE"),
    (["--kind", "outcome"], "needs --ref SEQ"),
    (["--kind", "note"], "needs --action NAME"),
    (["--kind", "note", "--action", "x", "--ref", "0"], "belong to --kind outcome"),
    (["--kind", "note", "--action", "x", "--meta", "n:float=1.5"], "type 'float' is not one of"),
    (["--kind", "outcome", "--ref", "0"], "outcome-ref"),
])
def test_append_says_what_is_wrong(journal_dir, capsys, argv, message):
    code, _, err = pantheon(["journal", "append", journal_dir, *argv], capsys)
    assert code == 1 and err.startswith("pantheon journal: error: ") and message in err, err


def test_a_missing_journal_is_a_clear_error(tmp_path, capsys):
    code, _, err = pantheon(["journal", "show", tmp_path / "nowhere"], capsys)
    assert code == 1 and "run `pantheon journal init`" in err


def test_verify_names_the_first_bad_entry_and_its_reason(journal_dir, capsys):
    pantheon(["journal", "append", journal_dir, "--kind", "note", "--action", "original"], capsys)
    records = [Entry.decode(p) for p in payloads(journal_dir)]
    records[1] = dataclasses.replace(records[1], action="forged")
    rewrite(journal_dir, [e.encode() for e in records])
    code, out, _ = pantheon(["journal", "verify", journal_dir], capsys)
    assert code == 1 and out.startswith(f"INVALID {journal_dir}: ChainError: entry 1: signature: ")
    code, out, _ = pantheon(["journal", "verify", journal_dir, "--json"], capsys)
    doc = json.loads(out)
    assert code == 1 and (doc["valid"], doc["seq"], doc["reason"]) == (False, 1, "signature")


def test_verify_warns_of_a_torn_tail_and_repair_removes_it(journal_dir, capsys):
    path = journal_dir / JOURNAL_FILE
    path.write_bytes(path.read_bytes() + b"\x00\x00\x10\x00\xde\xad")
    code, out, _ = pantheon(["journal", "verify", journal_dir], capsys)
    assert code == 0 and "VALID journal" in out and "WARNING torn tail: 6 byte(s)" in out
    code, _, err = pantheon(["journal", "append", journal_dir, "--kind", "note", "--action", "x"], capsys)
    assert code == 1 and "pantheon journal repair" in err
    code, out, _ = pantheon(["journal", "repair", journal_dir], capsys)
    assert code == 0 and "removed 6 byte(s)" in out
    assert pantheon(["journal", "append", journal_dir, "--kind", "note", "--action", "x"], capsys)[0] == 0


def test_export_without_a_proved_head_says_what_to_do(journal_dir, tmp_path, capsys):
    code, _, err = pantheon(["journal", "export", journal_dir, "--entries", "0", "-o", tmp_path / "p.cbor"], capsys)
    assert code == 1 and "submit the head, then upgrade" in err


def test_upgrade_before_any_submit_says_so(journal_dir, capsys):
    code, _, err = pantheon(["journal", "upgrade", journal_dir, "--node", "http://127.0.0.1:9"], capsys)
    assert code == 1 and "pass --genesis FILE" in err


def test_verify_of_a_file_that_is_not_a_package_is_invalid(tmp_path, capsys):
    path = tmp_path / "junk.cbor"
    path.write_bytes(b"\xa0")
    code, out, _ = pantheon(["journal", "verify", path], capsys)
    assert code == 1 and out.startswith(f"INVALID {path}: DecodeError: package: missing field")
