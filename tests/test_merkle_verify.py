"""RFC 9162 inclusion and consistency verification (proof.merkle).

Three independent sources of truth:
- transparency-dev/merkle's published probes (tests/vectors/merkle/, see README there):
  their valid proofs must verify and their invalid ones fail;
- the RFC's own recursive definitions and step-by-step verification algorithms
  (tests/merkle_reference.py): every proof they generate must verify, and our
  verifier must agree with the RFC's on every probe;
- every corruption of every good proof, generated here in transparency-dev's style:
  none may verify.
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from proof import merkle
from proof.errors import ProofError
from proof.merkle import RootMismatchError, verify_consistency, verify_inclusion

from . import merkle_reference as ref

VECTORS_DIR = Path(__file__).parent / "vectors" / "merkle"
# Reference trees whose every proof is corrupted in every way (sizes 1..this).
CORRUPTED_TREE_LEAVES_MAX = 20
# Hypothesis trees: sizes 1..this.
PROPERTY_TREE_LEAVES_MAX = 300
HASH_BITS = 8 * merkle.HASH_SIZE
SOME_HASH = hashlib.sha256(b"not a node of any tree here").digest()

# transparency-dev compares the two roots of an equal-size consistency check as plain
# byte strings and accepts 12-byte "roots"; we require 32-byte hashes everywhere.
REFUSED_ON_PURPOSE = {
    "testdata/consistency/additional/sizes-are-equal-one-and-proof-is-empty.json": "root1 is 12 bytes",
}


def _load_probes(kind: str) -> list[dict]:
    return json.loads((VECTORS_DIR / f"{kind}.json").read_text())["probes"]


def _b64(value: str) -> bytes:
    return base64.b64decode(value, validate=True)


def _b64_path(value: list[str] | None) -> list[bytes]:
    return [_b64(node) for node in value or []]


INCLUSION_PROBES = _load_probes("inclusion")
CONSISTENCY_PROBES = _load_probes("consistency")
TREE_VECTORS = json.loads((VECTORS_DIR / "tree.json").read_text())
LEAF_INPUTS = [bytes.fromhex(h) for h in TREE_VECTORS["testonly_constants"]["leaf_inputs"]]


def _is_hash(value: bytes) -> bool:
    return len(value) == merkle.HASH_SIZE


def _verifies_inclusion(leaf_hash: bytes, index: int, size: int, path, root: bytes) -> bool:
    try:
        verify_inclusion(leaf_hash, index, size, path, root)
    except ProofError:
        return False
    return True


def _verifies_consistency(size1: int, size2: int, path, root1: bytes, root2: bytes) -> bool:
    try:
        verify_consistency(size1, size2, path, root1, root2)
    except ProofError:
        return False
    return True


# ---------------------------------------------------------------------------
# transparency-dev vectors


def test_vector_files_hold_every_transparency_dev_probe():
    assert len(INCLUSION_PROBES) == 98
    assert len(CONSISTENCY_PROBES) == 98
    assert sum(not p["wantErr"] for p in INCLUSION_PROBES) == 6
    assert sum(not p["wantErr"] for p in CONSISTENCY_PROBES) == 6


@pytest.mark.parametrize("probe", INCLUSION_PROBES, ids=[p["file"] for p in INCLUSION_PROBES])
def test_inclusion_vector_gives_transparency_devs_verdict(probe):
    verified = _verifies_inclusion(
        _b64(probe["leafHash"]),
        probe["leafIdx"],
        probe["treeSize"],
        _b64_path(probe["proof"]),
        _b64(probe["root"]),
    )
    assert verified == (not probe["wantErr"]), probe["desc"]


SHARED_VERDICT_CONSISTENCY_PROBES = [p for p in CONSISTENCY_PROBES if p["file"] not in REFUSED_ON_PURPOSE]


@pytest.mark.parametrize(
    "probe", SHARED_VERDICT_CONSISTENCY_PROBES, ids=[p["file"] for p in SHARED_VERDICT_CONSISTENCY_PROBES]
)
def test_consistency_vector_gives_transparency_devs_verdict(probe):
    verified = _verifies_consistency(
        probe["size1"],
        probe["size2"],
        _b64_path(probe["proof"]),
        _b64(probe["root1"]),
        _b64(probe["root2"]),
    )
    assert verified == (not probe["wantErr"]), probe["desc"]


def test_equal_sizes_with_roots_that_are_not_hashes_are_refused_unlike_transparency_dev():
    (probe,) = [p for p in CONSISTENCY_PROBES if p["file"] in REFUSED_ON_PURPOSE]
    assert probe["wantErr"] is False
    with pytest.raises(ProofError, match="root.* is 12 bytes, want 32"):
        verify_consistency(
            probe["size1"], probe["size2"], [], _b64(probe["root1"]), _b64(probe["root2"])
        )


def _in_rfc_inclusion_domain(probe: dict) -> bool:
    """The RFC's step-by-step algorithm assumes 32-byte hashes; size checks are tested above."""
    hashes = [_b64(probe["leafHash"]), _b64(probe["root"]), *_b64_path(probe["proof"])]
    return all(_is_hash(h) for h in hashes)


def _in_rfc_consistency_domain(probe: dict) -> bool:
    """RFC 9162 2.1.4.2 covers 0 < size1 < size2 with 32-byte hashes; the edges are tested above."""
    hashes = [_b64(probe["root1"]), _b64(probe["root2"]), *_b64_path(probe["proof"])]
    return 0 < probe["size1"] < probe["size2"] and all(_is_hash(h) for h in hashes)


RFC_INCLUSION_PROBES = [p for p in INCLUSION_PROBES if _in_rfc_inclusion_domain(p)]
RFC_CONSISTENCY_PROBES = [p for p in CONSISTENCY_PROBES if _in_rfc_consistency_domain(p)]


@pytest.mark.parametrize("probe", RFC_INCLUSION_PROBES, ids=[p["file"] for p in RFC_INCLUSION_PROBES])
def test_rfc_step_by_step_inclusion_verifier_agrees_on_vector(probe):
    leaf_hash, root = _b64(probe["leafHash"]), _b64(probe["root"])
    path = _b64_path(probe["proof"])
    rfc_verdict = ref.rfc_verify_inclusion(probe["leafIdx"], probe["treeSize"], leaf_hash, path, root)
    ours = _verifies_inclusion(leaf_hash, probe["leafIdx"], probe["treeSize"], path, root)
    assert ours == rfc_verdict == (not probe["wantErr"]), probe["desc"]


@pytest.mark.parametrize("probe", RFC_CONSISTENCY_PROBES, ids=[p["file"] for p in RFC_CONSISTENCY_PROBES])
def test_rfc_step_by_step_consistency_verifier_agrees_on_vector(probe):
    root1, root2 = _b64(probe["root1"]), _b64(probe["root2"])
    path = _b64_path(probe["proof"])
    rfc_verdict = ref.rfc_verify_consistency(probe["size1"], probe["size2"], root1, root2, path)
    ours = _verifies_consistency(probe["size1"], probe["size2"], path, root1, root2)
    assert ours == rfc_verdict == (not probe["wantErr"]), probe["desc"]


def test_reference_reproduces_transparency_dev_roots():
    roots = [bytes.fromhex(h) for h in TREE_VECTORS["testonly_constants"]["root_hashes_by_size"]]
    assert [ref.mth(LEAF_INPUTS[:size]) for size in range(len(roots))] == roots


def test_reference_reproduces_transparency_dev_perfect_subtree_hashes():
    levels = TREE_VECTORS["testonly_constants"]["node_hashes_by_level"]
    for level, hashes in enumerate(levels):
        width = 1 << level
        got = [ref.mth(LEAF_INPUTS[i * width : (i + 1) * width]).hex() for i in range(len(hashes))]
        assert got == hashes, f"level {level}"


def _numbered_happy_paths(probes: list[dict], kind: str) -> list[dict]:
    found = [
        p
        for p in probes
        if p["file"].split("/")[2].isdigit() and p["file"].endswith("/happy-path.json")
    ]
    assert len(found) == 5, f"expected the five generated {kind} proofs"
    return found


def test_reference_reproduces_transparency_dev_inclusion_proofs():
    for probe in _numbered_happy_paths(INCLUSION_PROBES, "inclusion"):
        index, size = probe["leafIdx"], probe["treeSize"]
        entries = LEAF_INPUTS[:size]
        assert _b64(probe["leafHash"]) == ref.leaf(entries[index]), probe["file"]
        assert _b64_path(probe["proof"]) == ref.path(index, entries), probe["file"]
        assert _b64(probe["root"]) == ref.mth(entries), probe["file"]


def test_reference_reproduces_transparency_dev_consistency_proofs():
    for probe in _numbered_happy_paths(CONSISTENCY_PROBES, "consistency"):
        size1, size2 = probe["size1"], probe["size2"]
        assert _b64_path(probe["proof"]) == ref.proof(size1, LEAF_INPUTS[:size2]), probe["file"]
        assert _b64(probe["root1"]) == ref.mth(LEAF_INPUTS[:size1]), probe["file"]
        assert _b64(probe["root2"]) == ref.mth(LEAF_INPUTS[:size2]), probe["file"]


def test_hashes_match_transparency_dev_rfc6962_hasher_vectors():
    vectors = TREE_VECTORS["rfc6962_hasher"]
    assert merkle.empty_root().hex() == vectors["empty_root"]
    for case in vectors["leaf"]:
        assert merkle.leaf_hash(bytes.fromhex(case["data_hex"])).hex() == case["hash"]
    for case in vectors["node"]:
        left, right = bytes.fromhex(case["left_hex"]), bytes.fromhex(case["right_hex"])
        assert merkle.node_hash(left, right).hex() == case["hash"]


# ---------------------------------------------------------------------------
# Edge cases and error messages


def _tree(size: int) -> list[bytes]:
    return [b"entry %d" % i for i in range(size)]


def test_single_leaf_tree_has_empty_inclusion_path_and_its_leaf_hash_as_root():
    leaf = merkle.leaf_hash(b"only")
    verify_inclusion(leaf, 0, 1, [], leaf)


def test_index_at_or_beyond_size_is_refused():
    leaf = merkle.leaf_hash(b"x")
    with pytest.raises(ProofError, match="index 1 is beyond the tree"):
        verify_inclusion(leaf, 1, 1, [], leaf)


def test_empty_tree_has_no_inclusion_proofs():
    with pytest.raises(ProofError, match="index 0 is beyond the tree"):
        verify_inclusion(merkle.leaf_hash(b""), 0, 0, [], merkle.empty_root())


def test_wrong_path_length_names_got_and_want():
    entries = _tree(5)
    path = ref.path(2, entries)
    with pytest.raises(ProofError, match="wrong path length: 2 nodes, want 3"):
        verify_inclusion(ref.leaf(entries[2]), 2, 5, path[:-1], ref.mth(entries))


def test_root_mismatch_names_both_roots_by_hex_prefix():
    entries = _tree(5)
    path = ref.path(2, entries)
    with pytest.raises(RootMismatchError) as caught:
        verify_inclusion(ref.leaf(entries[2]), 2, 5, path, SOME_HASH)
    error = caught.value
    assert error.which == "root"
    assert error.expected == SOME_HASH
    assert error.calculated == ref.mth(entries)
    assert SOME_HASH.hex()[: merkle.HEX_PREFIX_CHARS] in str(error)
    assert ref.mth(entries).hex()[: merkle.HEX_PREFIX_CHARS] in str(error)


def test_consistency_from_an_empty_tree_is_refused_even_to_an_empty_tree():
    empty = merkle.empty_root()
    with pytest.raises(ProofError, match="size1 is 0"):
        verify_consistency(0, 0, [], empty, empty)
    with pytest.raises(ProofError, match="size1 is 0"):
        verify_consistency(0, 1, [], empty, ref.mth(_tree(1)))


def test_consistency_backwards_is_refused():
    entries = _tree(3)
    with pytest.raises(ProofError, match="size1 3 is larger than size2 2"):
        verify_consistency(3, 2, [], ref.mth(entries), ref.mth(entries[:2]))


def test_equal_sizes_need_equal_roots_and_an_empty_path():
    root = ref.mth(_tree(4))
    verify_consistency(4, 4, [], root, root)
    with pytest.raises(ProofError, match="path has 1 nodes, want none"):
        verify_consistency(4, 4, [root], root, root)
    with pytest.raises(RootMismatchError):
        verify_consistency(4, 4, [], root, SOME_HASH)


def test_consistency_path_that_does_not_rebuild_the_old_root_names_root1():
    entries = _tree(7)
    path = ref.proof(3, entries)
    with pytest.raises(RootMismatchError) as caught:
        verify_consistency(3, 7, path, SOME_HASH, ref.mth(entries))
    assert caught.value.which == "root1"


def test_empty_consistency_path_between_different_sizes_is_refused():
    entries = _tree(2)
    with pytest.raises(ProofError, match="empty consistency path for sizes 1 -> 2"):
        verify_consistency(1, 2, [], ref.mth(entries[:1]), ref.mth(entries))


@pytest.mark.parametrize("bad", [True, 1.0, "1", None, -1, 2**64])
def test_index_and_sizes_must_be_uint64_ints(bad):
    leaf = merkle.leaf_hash(b"x")
    with pytest.raises(ProofError, match="index"):
        verify_inclusion(leaf, bad, 2**64 - 1, [], leaf)
    with pytest.raises(ProofError, match="size1"):
        verify_consistency(bad, 1, [], leaf, leaf)
    with pytest.raises(ProofError, match="size2"):
        verify_consistency(1, bad, [], leaf, leaf)


@pytest.mark.parametrize("bad", [b"", b"\x00" * 31, b"\x00" * 33, bytearray(32), "00" * 32, None])
def test_every_hash_argument_must_be_32_bytes(bad):
    entries = _tree(3)
    leaf, path, root = ref.leaf(entries[0]), ref.path(0, entries), ref.mth(entries)
    with pytest.raises(ProofError, match="leaf hash"):
        verify_inclusion(bad, 0, 3, path, root)
    with pytest.raises(ProofError, match="root"):
        verify_inclusion(leaf, 0, 3, path, bad)
    with pytest.raises(ProofError, match="path node 1"):
        verify_inclusion(leaf, 0, 3, [path[0], bad], root)
    with pytest.raises(ProofError, match="root1"):
        verify_consistency(2, 3, ref.proof(2, entries), bad, root)
    with pytest.raises(ProofError, match="root2"):
        verify_consistency(2, 3, ref.proof(2, entries), ref.mth(entries[:2]), bad)


@pytest.mark.parametrize("bad", [None, b"\x00" * 32, iter([]), {}])
def test_path_must_be_a_list_or_tuple(bad):
    leaf = merkle.leaf_hash(b"x")
    with pytest.raises(ProofError, match="path must be a list or tuple"):
        verify_inclusion(leaf, 0, 1, bad, leaf)
    with pytest.raises(ProofError, match="path must be a list or tuple"):
        verify_consistency(1, 1, bad, leaf, leaf)


def test_largest_tree_size_is_accepted():
    size = 2**64 - 1
    index = size - 1
    # The last leaf of a 2**64-1 leaf tree is a subtree of its own; its path is the
    # 63 perfect subtrees to its left, of sizes 2**1 up to 2**63.
    path = [hashlib.sha256(b"%d" % level).digest() for level in range(63)]
    leaf = merkle.leaf_hash(b"last")
    root = merkle.root_from_inclusion(leaf, index, size, path)
    verify_inclusion(leaf, index, size, path, root)
    assert ref.rfc_verify_inclusion(index, size, leaf, path, root)


def test_inclusion_proofs_do_not_bind_the_tree_size():
    """RFC 9162 property, pinned so nobody relies on the opposite: a path whose
    hashing steps are the same for two sizes verifies for both, so the signed
    block header must bind size and root together (it does: both are in it)."""
    entries = _tree(5)
    leaf, path, root = ref.leaf(entries[0]), ref.path(0, entries), ref.mth(entries)
    assert ref.path_sides(0, 5) == ref.path_sides(0, 6)
    verify_inclusion(leaf, 0, 6, path, root)


# ---------------------------------------------------------------------------
# Every corruption of every good proof


@dataclass(frozen=True)
class Inclusion:
    leaf_hash: bytes
    index: int
    size: int
    path: tuple[bytes, ...]
    root: bytes

    def verifies(self) -> bool:
        return _verifies_inclusion(self.leaf_hash, self.index, self.size, list(self.path), self.root)


@dataclass(frozen=True)
class Consistency:
    size1: int
    size2: int
    path: tuple[bytes, ...]
    root1: bytes
    root2: bytes

    def verifies(self) -> bool:
        return _verifies_consistency(self.size1, self.size2, list(self.path), self.root1, self.root2)


def _good_inclusions() -> Iterator[Inclusion]:
    for probe in INCLUSION_PROBES:
        if not probe["wantErr"]:
            yield Inclusion(
                _b64(probe["leafHash"]),
                probe["leafIdx"],
                probe["treeSize"],
                tuple(_b64_path(probe["proof"])),
                _b64(probe["root"]),
            )
    for size in range(1, CORRUPTED_TREE_LEAVES_MAX + 1):
        entries = _tree(size)
        root = ref.mth(entries)
        for index in range(size):
            yield Inclusion(ref.leaf(entries[index]), index, size, tuple(ref.path(index, entries)), root)


def _good_consistencies() -> Iterator[Consistency]:
    for probe in CONSISTENCY_PROBES:
        if not probe["wantErr"] and probe["file"] not in REFUSED_ON_PURPOSE:
            yield Consistency(
                probe["size1"],
                probe["size2"],
                tuple(_b64_path(probe["proof"])),
                _b64(probe["root1"]),
                _b64(probe["root2"]),
            )
    for size2 in range(1, CORRUPTED_TREE_LEAVES_MAX + 1):
        entries = _tree(size2)
        root2 = ref.mth(entries)
        for size1 in range(1, size2 + 1):
            yield Consistency(
                size1, size2, tuple(ref.proof(size1, entries)), ref.mth(entries[:size1]), root2
            )


def _flip(value: bytes, bit: int) -> bytes:
    out = bytearray(value)
    out[bit // 8] ^= 0x80 >> (bit % 8)
    return bytes(out)


def _sample_positions(length: int) -> list[int]:
    """First and last node of a path: every bit of those is flipped."""
    return sorted({0, length - 1}) if length else []


LEAF_BITS_SAMPLE = (0, 7, 8, 127, 128, 255)


def _path_corruptions(path: tuple[bytes, ...], extras: tuple[bytes, ...]) -> Iterator[tuple[str, tuple]]:
    yield "empty path", ()
    for position in range(len(path)):
        yield f"node {position} dropped", path[:position] + path[position + 1 :]
    for extra in extras:
        yield "node appended", path + (extra,)
        yield "node prepended", (extra,) + path
    if path:
        yield "first node repeated", (path[0],) + path
        yield "empty node appended", path + (b"",)
    for position in _sample_positions(len(path)):
        for bit in range(HASH_BITS):
            corrupted = path[:position] + (_flip(path[position], bit),) + path[position + 1 :]
            yield f"node {position} bit {bit} flipped", corrupted


def _inclusion_corruptions(good: Inclusion) -> Iterator[tuple[str, Inclusion]]:
    extras = (good.root, good.leaf_hash, SOME_HASH)
    for what, path in _path_corruptions(good.path, extras):
        yield what, replace(good, path=path)
    for bit in LEAF_BITS_SAMPLE:
        yield f"leaf hash bit {bit} flipped", replace(good, leaf_hash=_flip(good.leaf_hash, bit))
        yield f"root bit {bit} flipped", replace(good, root=_flip(good.root, bit))
    yield "leaf hash is the root", replace(good, leaf_hash=good.root)
    yield "empty root", replace(good, root=merkle.empty_root())
    yield "some other root", replace(good, root=SOME_HASH)


def _inclusion_reparameterisations(good: Inclusion) -> Iterator[tuple[str, Inclusion]]:
    for what, index in (
        ("index - 1", good.index - 1),
        ("index + 1", good.index + 1),
        ("index ^ 2", good.index ^ 2),
    ):
        yield what, replace(good, index=index)
    for what, size in (
        ("size * 2", good.size * 2),
        ("size // 2", good.size // 2),
        ("size - 1", good.size - 1),
        ("size + 1", good.size + 1),
    ):
        yield what, replace(good, size=size)


def _consistency_corruptions(good: Consistency) -> Iterator[tuple[str, Consistency]]:
    extras = (good.root1, good.root2, SOME_HASH)
    for what, path in _path_corruptions(good.path, extras):
        yield what, replace(good, path=path)
    yield "roots swapped", replace(good, root1=good.root2, root2=good.root1)
    for bit in LEAF_BITS_SAMPLE:
        yield f"root1 bit {bit} flipped", replace(good, root1=_flip(good.root1, bit))
        yield f"root2 bit {bit} flipped", replace(good, root2=_flip(good.root2, bit))
    for what, root in (("empty root", merkle.empty_root()), ("some other root", SOME_HASH)):
        yield f"root1 is {what}", replace(good, root1=root)
        yield f"root2 is {what}", replace(good, root2=root)


def _consistency_reparameterisations(good: Consistency) -> Iterator[tuple[str, Consistency]]:
    for what, size1 in (
        ("size1 - 1", good.size1 - 1),
        ("size1 + 1", good.size1 + 1),
        ("size1 ^ 2", good.size1 ^ 2),
        ("size1 * 2", good.size1 * 2),
        ("size1 // 2", good.size1 // 2),
    ):
        yield what, replace(good, size1=size1)
    for what, size2 in (
        ("size2 - 1", good.size2 - 1),
        ("size2 + 1", good.size2 + 1),
        ("size2 * 2", good.size2 * 2),
        ("size2 // 2", good.size2 // 2),
    ):
        yield what, replace(good, size2=size2)
    yield "sizes swapped", replace(good, size1=good.size2, size2=good.size1)


def test_every_good_proof_verifies():
    for good in _good_inclusions():
        assert good.verifies(), good
    for good in _good_consistencies():
        assert good.verifies(), good


def test_no_corruption_of_a_good_inclusion_proof_verifies():
    accepted = []
    probes = 0
    for good in _good_inclusions():
        for what, probe in _inclusion_corruptions(good):
            if probe == good:
                continue
            probes += 1
            if probe.verifies():
                accepted.append(f"{what}: index {good.index} size {good.size}")
    assert probes > 100_000
    assert accepted == []


def test_no_corruption_of_a_good_consistency_proof_verifies():
    accepted = []
    probes = 0
    for good in _good_consistencies():
        for what, probe in _consistency_corruptions(good):
            if probe == good:
                continue
            probes += 1
            if probe.verifies():
                accepted.append(f"{what}: sizes {good.size1} -> {good.size2}")
    assert probes > 50_000
    assert accepted == []


def _same_inclusion_steps(good: Inclusion, probe: Inclusion) -> bool:
    if not 0 <= probe.index < probe.size:
        return False
    return ref.path_sides(probe.index, probe.size) == ref.path_sides(good.index, good.size)


def _same_consistency_steps(good: Consistency, probe: Consistency) -> bool:
    if not 0 < probe.size1 <= probe.size2:
        return False
    return ref.proof_shape(probe.size1, probe.size2) == ref.proof_shape(good.size1, good.size2)


def test_inclusion_proof_under_another_index_or_size_verifies_only_where_the_rfc_cannot_tell_them_apart():
    wrong = []
    for good in _good_inclusions():
        for what, probe in _inclusion_reparameterisations(good):
            if probe.verifies() != _same_inclusion_steps(good, probe):
                wrong.append(f"{what}: index {good.index} size {good.size}")
    assert wrong == []


def test_consistency_proof_under_other_sizes_verifies_only_where_the_rfc_cannot_tell_them_apart():
    wrong = []
    for good in _good_consistencies():
        for what, probe in _consistency_reparameterisations(good):
            if probe.verifies() != _same_consistency_steps(good, probe):
                wrong.append(f"{what}: sizes {good.size1} -> {good.size2}")
    assert wrong == []


def test_index_changes_never_verify():
    for good in _good_inclusions():
        for what, probe in _inclusion_reparameterisations(good):
            if probe.index != good.index:
                assert not probe.verifies(), f"{what}: index {good.index} size {good.size}"


def test_rfc_step_by_step_verifiers_agree_with_ours_on_every_corruption():
    disagreements = []
    for good in _good_inclusions():
        probes = [("good", good), *_inclusion_corruptions(good), *_inclusion_reparameterisations(good)]
        for what, probe in probes:
            hashes = [probe.leaf_hash, probe.root, *probe.path]
            if not (0 <= probe.index and all(_is_hash(h) for h in hashes)):
                continue
            rfc = ref.rfc_verify_inclusion(
                probe.index, probe.size, probe.leaf_hash, list(probe.path), probe.root
            )
            if rfc != probe.verifies():
                disagreements.append(f"inclusion {what}: index {good.index} size {good.size}")
    for good in _good_consistencies():
        probes = [("good", good), *_consistency_corruptions(good), *_consistency_reparameterisations(good)]
        for what, probe in probes:
            hashes = [probe.root1, probe.root2, *probe.path]
            if not (0 < probe.size1 < probe.size2 and all(_is_hash(h) for h in hashes)):
                continue
            rfc = ref.rfc_verify_consistency(
                probe.size1, probe.size2, probe.root1, probe.root2, list(probe.path)
            )
            if rfc != probe.verifies():
                disagreements.append(f"consistency {what}: sizes {good.size1} -> {good.size2}")
    assert disagreements == []


# ---------------------------------------------------------------------------
# Properties over random trees


def _entries(size: int, salt: bytes) -> list[bytes]:
    return [salt + i.to_bytes(2, "big") for i in range(size)]


@st.composite
def inclusion_cases(draw) -> tuple[list[bytes], int]:
    size = draw(st.integers(1, PROPERTY_TREE_LEAVES_MAX))
    index = draw(st.integers(0, size - 1))
    return _entries(size, draw(st.binary(max_size=8))), index


@st.composite
def consistency_cases(draw) -> tuple[list[bytes], int]:
    size2 = draw(st.integers(1, PROPERTY_TREE_LEAVES_MAX))
    size1 = draw(st.integers(1, size2))
    return _entries(size2, draw(st.binary(max_size=8))), size1


@settings(max_examples=200, deadline=None)
@given(inclusion_cases())
def test_reference_inclusion_proofs_verify(case):
    entries, index = case
    leaf, path, root = ref.leaf(entries[index]), ref.path(index, entries), ref.mth(entries)
    verify_inclusion(leaf, index, len(entries), path, root)


@settings(max_examples=200, deadline=None)
@given(inclusion_cases(), st.data())
def test_reference_inclusion_proof_with_one_bit_flipped_fails(case, data):
    entries, index = case
    path = ref.path(index, entries)
    hashes = [ref.leaf(entries[index]), ref.mth(entries), *path]
    target = data.draw(st.integers(0, len(hashes) - 1), label="hash to corrupt")
    hashes[target] = _flip(hashes[target], data.draw(st.integers(0, HASH_BITS - 1), label="bit"))
    leaf, root, *path = hashes
    with pytest.raises(ProofError):
        verify_inclusion(leaf, index, len(entries), path, root)


@settings(max_examples=200, deadline=None)
@given(consistency_cases())
def test_reference_consistency_proofs_verify(case):
    entries, size1 = case
    verify_consistency(
        size1, len(entries), ref.proof(size1, entries), ref.mth(entries[:size1]), ref.mth(entries)
    )


@settings(max_examples=200, deadline=None)
@given(consistency_cases(), st.data())
def test_reference_consistency_proof_with_one_bit_flipped_fails(case, data):
    entries, size1 = case
    hashes = [ref.mth(entries[:size1]), ref.mth(entries), *ref.proof(size1, entries)]
    target = data.draw(st.integers(0, len(hashes) - 1), label="hash to corrupt")
    hashes[target] = _flip(hashes[target], data.draw(st.integers(0, HASH_BITS - 1), label="bit"))
    root1, root2, *path = hashes
    with pytest.raises(ProofError):
        verify_consistency(size1, len(entries), path, root1, root2)


@settings(max_examples=200, deadline=None)
@given(consistency_cases(), st.data())
def test_reference_consistency_proof_with_a_node_dropped_or_added_fails(case, data):
    entries, size1 = case
    path = ref.proof(size1, entries)
    if data.draw(st.booleans(), label="drop") and path:
        position = data.draw(st.integers(0, len(path) - 1), label="position")
        del path[position]
    else:
        path.insert(data.draw(st.integers(0, len(path)), label="position"), SOME_HASH)
    with pytest.raises(ProofError):
        verify_consistency(size1, len(entries), path, ref.mth(entries[:size1]), ref.mth(entries))
