"""Every check of the verifier is caught by at least one shipped vector.

For each check of proof/checks.py, switched off alone, every vector of
tests/vectors/bundles is run again; a vector *catches* the check when its outcome then
differs from what its JSON expects (a valid vector fails or proves another claim; an
invalid one verifies, or fails with another error class or without its reason). A
check no vector catches could be deleted without any vector noticing: the test fails.

The table of check -> catching vectors is docs/proof-format.md section 11, verbatim
(`.venv/bin/python -m tests.test_check_coverage` prints it). A vector marked `*` then
turns from invalid to VALID (or from valid to invalid): that check alone stands between
it and the opposite verdict.
"""

from __future__ import annotations

import json
from pathlib import Path

from proof.bundle import verify_bundle
from proof.chain import Genesis
from proof.checks import CHECKS, switched_off
from proof.errors import DecodeError, ProofError
from tests.vectors.generate_bundles import policy_of

VECTORS = Path(__file__).parent / "vectors" / "bundles"
SPEC = Path(__file__).parent.parent / "docs" / "proof-format.md"
ERRORS = {"ProofError": ProofError, "DecodeError": DecodeError}


def _vectors() -> list[tuple[str, bytes, dict, Genesis]]:
    geneses = {p.name: Genesis.decode(p.read_bytes()) for p in VECTORS.glob("genesis-*.cbor")}
    loaded = []
    for path in sorted((VECTORS / "valid").glob("*.cbor")) + sorted((VECTORS / "invalid").glob("*.cbor")):
        doc = json.loads(path.with_suffix(".json").read_text())
        data = path.read_bytes() + bytes(doc.get("zero_bytes_appended", 0))
        loaded.append((f"{path.parent.name}/{path.stem}", data, doc, geneses[doc["genesis"]]))
    return loaded


def _outcome(data: bytes, doc: dict, genesis: Genesis) -> tuple[bool, bool]:
    """(as expected, verified): run one vector the way its JSON says."""
    chain_id = bytes.fromhex(doc["chain_id"]) if "chain_id" in doc else None
    try:
        claim = verify_bundle(data, genesis=genesis, chain_id=chain_id, policy=policy_of(doc.get("policy")))
    except (ProofError, DecodeError) as exc:
        expected = "error" in doc and isinstance(exc, ERRORS[doc["error"]]) and doc["reason"] in str(exc)
        return expected, False
    except Exception:  # noqa: BLE001 - a check switched off may let a later step crash: that is a change too
        return False, False
    return "claim" in doc and claim.to_json() == doc["claim"], True


def coverage() -> dict[str, list[str]]:
    """check -> the vectors it catches (name, with * when the verdict flips outright)."""
    vectors = _vectors()
    for name, data, doc, genesis in vectors:
        assert _outcome(data, doc, genesis)[0], f"{name} does not hold with every check on"
    table: dict[str, list[str]] = {}
    for check in CHECKS:
        caught = []
        with switched_off(check):
            for name, data, doc, genesis in vectors:
                expected, verified = _outcome(data, doc, genesis)
                if not expected:
                    flipped = verified == ("error" in doc)
                    caught.append(f"{name.split('/', 1)[1]}{'*' if flipped else ''}")
        table[check] = caught
    return table


def coverage_table(table: dict[str, list[str]]) -> str:
    rows = ["| check | spec step: rule | vectors that catch it (`*`: the verdict flips) |", "|---|---|---|"]
    for check, vectors in table.items():
        rows.append(f"| `{check}` | {CHECKS[check]} | {', '.join(f'`{v}`' for v in vectors)} |")
    return "\n".join(rows) + "\n"


def test_every_check_is_caught_by_a_vector_and_the_spec_carries_the_table():
    table = coverage()
    text = coverage_table(table)
    print(text)
    assert [check for check, vectors in table.items() if not vectors] == []
    assert text in SPEC.read_text(), "docs/proof-format.md section 11: paste `python -m tests.test_check_coverage`"


if __name__ == "__main__":
    print(coverage_table(coverage()), end="")
