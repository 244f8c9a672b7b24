"""CompactRange: the right edge of an RFC 9162 tree (proof.compact).

Checked against transparency-dev/merkle's golden trees and roots
(tests/vectors/merkle/tree.json) and the RFC's recursive MTH (tests/merkle_reference.py).
"""

from __future__ import annotations

import base64
import hashlib
import json
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from proof import merkle
from proof.compact import CompactRange, CompactRangeError

from . import merkle_reference as ref

VECTORS = json.loads((Path(__file__).parent / "vectors" / "merkle" / "tree.json").read_text())
CONSTANTS = VECTORS["testonly_constants"]
LEAF_INPUTS = [bytes.fromhex(h) for h in CONSTANTS["leaf_inputs"]]
EVERY_SIZE_MAX = 300
PROPERTY_TREE_LEAVES_MAX = 300


def _roots(count: int, salt: bytes = b"") -> list[bytes]:
    """Distinct 32-byte audit roots."""
    return [hashlib.sha256(salt + i.to_bytes(4, "big")).digest() for i in range(count)]


def _built(roots: list[bytes]) -> CompactRange:
    compact = CompactRange()
    compact.extend_roots(b"".join(roots))
    return compact


def _subtree_sizes(size: int) -> list[int]:
    return [1 << bit for bit in reversed(range(size.bit_length())) if size >> bit & 1]


def test_empty_range_has_the_empty_tree_root():
    compact = CompactRange()
    assert compact.size == 0
    assert compact.hashes == ()
    assert compact.root() == hashlib.sha256(b"").digest() == merkle.empty_root()


def test_hashes_and_roots_match_transparency_dev_golden_trees():
    compact = CompactRange()
    wanted_hashes = CONSTANTS["compact_hashes_by_size"]
    wanted_roots = CONSTANTS["root_hashes_by_size"]
    for size in range(len(LEAF_INPUTS) + 1):
        if size:
            compact.append(merkle.leaf_hash(LEAF_INPUTS[size - 1]))
        assert [h.hex() for h in compact.hashes] == wanted_hashes[size], f"size {size}"
        assert compact.root().hex() == wanted_roots[size], f"size {size}"


def test_root_matches_transparency_dev_golden_roots_up_to_65535_leaves():
    cases = VECTORS["compact_golden_roots"]["roots"]
    golden = {case["size"]: base64.b64decode(case["root"]) for case in cases}
    compact = CompactRange()
    for index in range(max(golden)):
        compact.append(merkle.leaf_hash(bytes([index & 0xFF, (index >> 8) & 0xFF])))
        if compact.size in golden:
            assert compact.root() == golden[compact.size], f"size {compact.size}"
    assert compact.size == 65535


def test_root_equals_reference_mth_for_every_size_up_to_300():
    roots = _roots(EVERY_SIZE_MAX)
    compact = CompactRange()
    for size in range(EVERY_SIZE_MAX + 1):
        assert compact.root() == ref.mth(roots[:size]), f"size {size}"
        if size < EVERY_SIZE_MAX:
            compact.append(ref.leaf(roots[size]))


def test_each_hash_is_the_reference_mth_of_its_perfect_subtree_largest_first():
    roots = _roots(100)
    compact = CompactRange()
    for size in range(1, 101):
        compact.append(ref.leaf(roots[size - 1]))
        start = 0
        want = []
        for width in _subtree_sizes(size):
            want.append(ref.mth(roots[start : start + width]))
            start += width
        assert list(compact.hashes) == want, f"size {size}"


@settings(max_examples=200, deadline=None)
@given(st.integers(0, PROPERTY_TREE_LEAVES_MAX), st.binary(max_size=8))
def test_root_equals_reference_mth_for_random_roots(size, salt):
    roots = _roots(size, salt)
    assert _built(roots).root() == ref.mth(roots)


@settings(max_examples=200, deadline=None)
@given(st.integers(0, PROPERTY_TREE_LEAVES_MAX), st.binary(max_size=8))
def test_incremental_range_round_trips_through_from_hashes(size, salt):
    compact = CompactRange()
    for root in _roots(size, salt):
        compact.append(merkle.leaf_hash(root))
    rebuilt = CompactRange.from_hashes(compact.size, compact.hashes)
    assert rebuilt == compact
    assert rebuilt.root() == compact.root()


@settings(max_examples=200, deadline=None)
@given(st.integers(0, PROPERTY_TREE_LEAVES_MAX), st.data())
def test_extend_roots_in_any_chunks_equals_appending_leaf_hashes_one_by_one(size, data):
    roots = _roots(size)
    one_by_one = CompactRange()
    for root in roots:
        one_by_one.append(merkle.leaf_hash(root))
    chunked = CompactRange()
    start = 0
    while start < size:
        end = data.draw(st.integers(start + 1, size), label="chunk end")
        chunked.extend_roots(b"".join(roots[start:end]))
        start = end
    assert chunked == one_by_one


@settings(max_examples=200, deadline=None)
@given(st.integers(0, PROPERTY_TREE_LEAVES_MAX), st.integers(0, PROPERTY_TREE_LEAVES_MAX))
def test_resuming_from_stored_hashes_gives_the_same_tree_as_never_stopping(first, more):
    roots = _roots(first + more)
    straight = _built(roots)
    resumed = CompactRange.from_hashes(first, _built(roots[:first]).hashes)
    resumed.extend_roots(b"".join(roots[first:]))
    assert resumed == straight
    assert resumed.root() == ref.mth(roots)


def test_extend_roots_accepts_memoryview_and_bytearray():
    roots = _roots(9)
    data = b"".join(roots)
    assert _built(roots) == _with(memoryview(data)) == _with(bytearray(data))


def _with(data) -> CompactRange:
    compact = CompactRange()
    compact.extend_roots(data)
    return compact


def test_extend_of_leaf_hashes_equals_extend_roots():
    roots = _roots(37)
    compact = CompactRange()
    compact.extend(merkle.leaf_hash(r) for r in roots)
    assert compact == _built(roots)


def test_copy_is_independent_of_the_original():
    original = _built(_roots(5))
    copy = original.copy()
    copy.extend_roots(_roots(1, b"more")[0])
    assert original.size == 5
    assert copy.size == 6
    assert original.root() == ref.mth(_roots(5))


def test_hashes_is_a_snapshot_not_a_view():
    compact = _built(_roots(3))
    before = compact.hashes
    compact.extend_roots(_roots(1, b"more")[0])
    assert isinstance(before, tuple)
    assert len(before) == 2
    assert len(compact.hashes) == 1


@pytest.mark.parametrize("size, count", [(0, 1), (1, 0), (5, 1), (5, 3), (2**64 - 1, 63)])
def test_from_hashes_refuses_a_count_other_than_one_per_set_bit(size, count):
    with pytest.raises(CompactRangeError, match=f"size {size} has {size.bit_count()} perfect subtrees"):
        CompactRange.from_hashes(size, [b"\x00" * 32] * count)


@pytest.mark.parametrize("bad_size", [-1, 2**64, True, 1.0, "1", None])
def test_from_hashes_refuses_a_size_outside_uint64(bad_size):
    with pytest.raises(CompactRangeError, match="size must be an int"):
        CompactRange.from_hashes(bad_size, [b"\x00" * 32])


@pytest.mark.parametrize("bad_hash", [b"\x00" * 31, b"\x00" * 33, bytearray(32), "00" * 16, None])
def test_from_hashes_refuses_a_hash_that_is_not_32_bytes(bad_hash):
    with pytest.raises(CompactRangeError, match="hash 1"):
        CompactRange.from_hashes(3, [b"\x00" * 32, bad_hash])


def test_from_hashes_accepts_the_largest_tree():
    compact = CompactRange.from_hashes(2**64 - 1, [bytes([i]) * 32 for i in range(64)])
    assert compact.size == 2**64 - 1
    assert len(compact.root()) == 32


def test_a_full_uint64_tree_refuses_one_more_leaf():
    compact = CompactRange.from_hashes(2**64 - 1, [bytes([i]) * 32 for i in range(64)])
    with pytest.raises(CompactRangeError, match="would pass 2\\*\\*64-1 leaves"):
        compact.append(b"\x00" * 32)
    with pytest.raises(CompactRangeError, match="would pass 2\\*\\*64-1 leaves"):
        compact.extend_roots(b"\x00" * 32)
    assert compact.size == 2**64 - 1


@pytest.mark.parametrize("length", [1, 31, 33, 63])
def test_extend_roots_refuses_a_partial_root(length):
    compact = CompactRange()
    with pytest.raises(CompactRangeError, match=f"{length} bytes, not a multiple of 32"):
        compact.extend_roots(b"\x00" * length)
    assert compact.size == 0


def test_extend_roots_refuses_text():
    with pytest.raises(CompactRangeError, match="roots must be bytes"):
        CompactRange().extend_roots("00" * 32)


@pytest.mark.parametrize("bad_hash", [b"\x00" * 31, bytearray(32), "00" * 16])
def test_append_refuses_a_leaf_hash_that_is_not_32_bytes(bad_hash):
    compact = CompactRange()
    with pytest.raises(CompactRangeError, match="leaf hash"):
        compact.append(bad_hash)
    assert compact.size == 0


def test_extend_checks_every_leaf_hash_before_adding_any():
    compact = _built(_roots(3))
    before = compact.copy()
    with pytest.raises(CompactRangeError, match="leaf hash 2"):
        compact.extend([b"\x01" * 32, b"\x02" * 32, b"short"])
    assert compact == before


@settings(max_examples=200, deadline=None)
@given(st.integers(0, PROPERTY_TREE_LEAVES_MAX), st.integers(0, PROPERTY_TREE_LEAVES_MAX), st.integers(1, 5))
def test_extend_roots_keeps_every_perfect_subtree_it_completes_from_the_level_asked(first, more, level):
    """What an append stores as node records (storage.merkle_log), in the order it stores them."""
    roots = _roots(first + more)
    compact = _built(roots[:first])
    kept = compact.extend_roots(b"".join(roots[first:]), keep_level=level)
    want = [
        ref.mth(roots[end - (1 << height) : end])
        for end in range(first + 1, first + more + 1)
        for height in range(level, end.bit_length())
        if end % (1 << height) == 0
    ]
    assert kept == want
    assert compact == _built(roots)


def test_extend_roots_keeps_nothing_unless_asked():
    assert CompactRange().extend_roots(b"".join(_roots(64))) == []


@pytest.mark.parametrize("level", [0, 64, True, "4"])
def test_extend_roots_refuses_a_keep_level_outside_1_to_63(level):
    with pytest.raises(CompactRangeError):
        CompactRange().extend_roots(b"", keep_level=level)
