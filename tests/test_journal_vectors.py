"""The shipped journal vectors: valid packages prove their claim, corrupted ones fail with their class and reason,
journal files read as specified, and the generator reproduces every file byte for byte."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from journal.errors import ChainError, PackageError
from journal.package import verify_package
from journal.verify import ChainWalker
from journal.writer import JOURNAL_FILE, load
from proof.errors import DecodeError, ProofError
from tests.vectors.journal import generate_journal

VECTORS = Path(generate_journal.__file__).parent
VALID = sorted((VECTORS / "packages" / "valid").glob("*.cbor"))
INVALID = sorted((VECTORS / "packages" / "invalid").glob("*.cbor"))
JOURNALS = sorted((VECTORS / "journals").glob("*.pjl"))
ERRORS = {"ChainError": ChainError, "PackageError": PackageError, "DecodeError": DecodeError,
          "ProofError": ProofError}
REQUIRED_INVALID = {
    "edited-entry", "deleted-entry", "reordered-entries", "inserted-entry", "truncated-chain", "re-signed-other-key",
    "withheld-digest-altered", "withheld-rotation", "bundle-of-another-root", "unknown-version", "trailing-bytes",
}


def expected(path: Path) -> dict:
    return json.loads(path.with_suffix(".json").read_text())


def pin(doc: dict) -> bytes | None:
    return bytes.fromhex(doc["producer"]) if "producer" in doc else None


def verdict(path: Path) -> tuple[str, str]:
    """(error class, reason code or "") of a package vector, ("valid", "") if it verifies.

    Any exception counts: with a check switched off, a later invariant (an assertion) may be what stops it.
    """
    try:
        verify_package(path.read_bytes(), producer=pin(expected(path)))
    except Exception as exc:
        return type(exc).__name__, getattr(exc, "reason", "")
    return "valid", ""


CHECKS = sorted(name for name in vars(ChainWalker) if name.startswith("_check_"))


def test_the_invalid_set_covers_edit_delete_reorder_insert_truncate_and_re_signing():
    assert REQUIRED_INVALID <= {p.stem for p in INVALID}


@pytest.mark.parametrize("path", VALID, ids=lambda p: p.stem)
def test_valid_package_proves_exactly_its_claim(path):
    claim = verify_package(path.read_bytes()).to_json()
    assert generate_journal.agrees(claim, expected(path)["claim"])


@pytest.mark.parametrize("path", VALID, ids=lambda p: p.stem)
def test_valid_package_is_pinned_to_its_chain(path):
    chain_id = bytes.fromhex(expected(path)["claim"]["bundle"]["chain_id"])
    verify_package(path.read_bytes(), chain_id=chain_id)
    with pytest.raises(PackageError):
        verify_package(path.read_bytes(), chain_id=bytes(32))


@pytest.mark.parametrize("path", INVALID, ids=lambda p: p.stem)
def test_invalid_package_fails_with_its_class_and_reason(path):
    doc = expected(path)
    with pytest.raises(ERRORS[doc["error"]]) as caught:
        verify_package(path.read_bytes(), producer=pin(doc))
    error = caught.value
    assert getattr(error, "reason", None) == doc["reason"] or doc["reason"] in str(error), str(error)
    if "seq" in doc:
        assert error.seq == doc["seq"], str(error)


@pytest.mark.parametrize("path", JOURNALS, ids=lambda p: p.stem)
def test_journal_file_reads_as_specified(path, tmp_path):
    doc = expected(path)
    shutil.copyfile(path, tmp_path / JOURNAL_FILE)
    if not doc["valid"]:
        with pytest.raises(ERRORS[doc["error"]]) as caught:
            load(tmp_path)
        assert (caught.value.seq, caught.value.reason) == (doc["seq"], doc["reason"])
        return
    loaded = load(tmp_path)
    torn = None if loaded.torn is None else {"offset": loaded.torn.offset, "size": loaded.torn.size}
    got = {"length": loaded.walker.length, "head": loaded.walker.head.hex(),
           "open_intents": [i.seq for i in loaded.report.open_intents], "torn": torn}
    assert got == {k: doc[k] for k in got}


def test_the_generator_reproduces_every_vector_byte_for_byte(tmp_path):
    generate_journal.write(tmp_path, generate_journal.gen.Signatures(VECTORS / generate_journal.SIGNATURES_FILE))
    shipped = {p.relative_to(VECTORS) for p in VECTORS.rglob("*") if p.is_file() and p.suffix != ".py"}
    made = {p.relative_to(tmp_path) for p in tmp_path.rglob("*") if p.is_file()}
    assert made == shipped
    for relative in sorted(shipped):
        assert (tmp_path / relative).read_bytes() == (VECTORS / relative).read_bytes(), relative


@pytest.mark.parametrize("check", CHECKS)
def test_switching_off_any_chain_check_changes_the_verdict_of_some_vector(check, monkeypatch):
    baseline = {path.stem: verdict(path) for path in INVALID}
    if check == "_check_active_key":
        monkeypatch.setattr(ChainWalker, check, lambda self, entry: self.active_key)
    else:
        monkeypatch.setattr(ChainWalker, check, lambda self, *args: None)
    changed = [path.stem for path in INVALID if verdict(path) != baseline[path.stem]]
    assert changed, f"no vector depends on {check}"
