"""The shipped bundle vectors: every valid one proves its claim, every invalid one fails for its reason.

The expected claims and reasons are written by tests/vectors/generate_bundles.py from
what it built (roots, the RFC 9162 reference tree, headers, transaction bytes), not
from the verifier's output.
"""

import json
import shutil
from pathlib import Path

import pytest

from proof.bundle import Bundle, verify_bundle
from proof.chain import Genesis
from proof.errors import DecodeError, ProofError
from tests.vectors import generate_bundles

VECTORS = Path(__file__).parent / "vectors" / "bundles"
VALID = sorted((VECTORS / "valid").glob("*.cbor"))
INVALID = sorted((VECTORS / "invalid").glob("*.cbor"))
ERRORS = {"ProofError": ProofError, "DecodeError": DecodeError}
REQUIRED_INVALID = {
    "wrong-root", "wrong-index", "truncated-path", "swapped-siblings", "certificate-below-quorum",
    "duplicate-signer", "signer-not-in-genesis", "signature-over-another-chain-id", "altered-header-field",
    "op-return-other-hash", "broken-merkle-branch", "insufficient-work", "sixty-four-byte-transaction",
    "trailing-bytes", "non-canonical-integer", "unknown-version",
}


def genesis(name: str) -> Genesis:
    return Genesis.decode((VECTORS / name).read_bytes())


def expected(path: Path) -> dict:
    return json.loads(path.with_suffix(".json").read_text())


def test_the_valid_set_covers_pending_and_anchored_4_and_7_validators_and_small_and_large_logs():
    docs = [expected(p) for p in VALID]
    combos = {(d["claim"]["state"], len(genesis(d["genesis"]).validators)) for d in docs}
    assert combos == {("pending", 4), ("pending", 7), ("anchored", 4), ("anchored", 7)}
    assert {1, 2, 3} <= {d["claim"]["log_size"] for d in docs}
    assert max(d["claim"]["log_size"] for d in docs) >= 1000


def test_the_invalid_set_covers_every_required_failure():
    assert REQUIRED_INVALID <= {p.stem for p in INVALID}


@pytest.mark.parametrize("path", VALID, ids=lambda p: p.stem)
def test_valid_vector_proves_exactly_its_claim(path):
    doc = expected(path)
    claim = verify_bundle(path.read_bytes(), genesis=genesis(doc["genesis"]))
    assert claim.to_json() == doc["claim"]


@pytest.mark.parametrize("path", VALID, ids=lambda p: p.stem)
def test_valid_vector_is_pinned_to_its_chain_id(path):
    doc = expected(path)
    claim = verify_bundle(path.read_bytes(), genesis=genesis(doc["genesis"]),
                          chain_id=bytes.fromhex(doc["claim"]["chain_id"]))
    assert claim.chain_id.hex() == doc["claim"]["chain_id"]


@pytest.mark.parametrize("path", VALID, ids=lambda p: p.stem)
def test_valid_vector_is_canonical(path):
    data = path.read_bytes()
    assert Bundle.decode(data).encode() == data


@pytest.mark.parametrize("path", INVALID, ids=lambda p: p.stem)
def test_invalid_vector_fails_for_its_reason(path):
    doc = expected(path)
    data = path.read_bytes() + bytes(doc.get("zero_bytes_appended", 0))
    chain_id = bytes.fromhex(doc["chain_id"]) if "chain_id" in doc else None
    with pytest.raises(ERRORS[doc["error"]]) as failure:
        verify_bundle(data, genesis=genesis(doc["genesis"]), chain_id=chain_id,
                      policy=generate_bundles.policy_of(doc.get("policy")))
    assert doc["reason"] in str(failure.value)


STEP_PREFIXES = ("genesis: ", "decode: ", "chain: ", "block certificate: ", "inclusion proof: ", "bitcoin anchor: ",
                 "policy: ")


@pytest.mark.parametrize("path", INVALID, ids=lambda p: p.stem)
def test_every_failure_names_its_step_with_the_prefix_the_spec_defines(path):
    doc = expected(path)
    data = path.read_bytes() + bytes(doc.get("zero_bytes_appended", 0))
    chain_id = bytes.fromhex(doc["chain_id"]) if "chain_id" in doc else None
    with pytest.raises((ProofError, DecodeError)) as failure:
        verify_bundle(data, genesis=genesis(doc["genesis"]), chain_id=chain_id,
                      policy=generate_bundles.policy_of(doc.get("policy")))
    assert str(failure.value).startswith(STEP_PREFIXES)
    assert str(failure.value).startswith("decode: ") == (doc["error"] == "DecodeError" and not
                                                          str(failure.value).startswith("bitcoin anchor: "))


def test_the_generator_recreates_every_file_byte_for_byte(tmp_path):
    """Given the committed signatures (ML-DSA signing is randomized), regeneration is exact."""
    shutil.copy(VECTORS / generate_bundles.SIGNATURES_FILE, tmp_path / "reuse.cbor")
    generate_bundles.write(tmp_path, generate_bundles.Signatures(tmp_path / "reuse.cbor"))
    committed = sorted(p.relative_to(VECTORS) for p in VECTORS.rglob("*") if p.is_file())
    regenerated = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*") if p.is_file() and p.name != "reuse.cbor")
    assert regenerated == committed
    for relative in committed:
        assert (tmp_path / relative).read_bytes() == (VECTORS / relative).read_bytes(), relative
