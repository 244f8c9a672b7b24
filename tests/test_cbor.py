"""Canonical CBOR (proof/cbor.py): RFC 8949 vectors, cbor2 cross-checks, strict rejection.

The key guarantee, checked by the fuzz-like properties at the end: any input that
``decode`` accepts is the unique canonical encoding of its value, i.e.
``encode(decode(data)) == data``; everything else raises DecodeError and nothing else.
"""

from __future__ import annotations

import cbor2
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from proof import cbor
from proof.cbor import (
    DEFAULT_MAX_DEPTH,
    MAX_DEPTH_LIMIT,
    decode,
    encode,
    expect_bool,
    expect_bytes,
    expect_int,
    expect_list,
    expect_map,
    expect_text,
    expect_uint,
)
from proof.errors import DecodeError, EncodeError


def typed(value):
    """A comparable form that keeps types apart: True == 1 in Python, not in CBOR."""
    if isinstance(value, list):
        return ("array", tuple(typed(element) for element in value))
    if isinstance(value, dict):
        return ("map", frozenset((typed(k), typed(v)) for k, v in value.items()))
    return (type(value).__name__, value)


def assert_same(actual, expected):
    assert typed(actual) == typed(expected)


# --------------------------------------------------------------------------- RFC 8949 Appendix A

# Every Appendix A example inside Pantheon's subset, exactly as the RFC gives it
# (hex from the appendix table; also in github.com/cbor/test-vectors appendix_a.json).
APPENDIX_A_SUPPORTED = [
    ("00", 0),
    ("01", 1),
    ("0a", 10),
    ("17", 23),
    ("1818", 24),
    ("1819", 25),
    ("1864", 100),
    ("1903e8", 1000),
    ("1a000f4240", 1000000),
    ("1b000000e8d4a51000", 1000000000000),
    ("1bffffffffffffffff", 18446744073709551615),
    ("3bffffffffffffffff", -18446744073709551616),
    ("20", -1),
    ("29", -10),
    ("3863", -100),
    ("3903e7", -1000),
    ("f4", False),
    ("f5", True),
    ("f6", None),
    ("40", b""),
    ("4401020304", b"\x01\x02\x03\x04"),
    ("60", ""),
    ("6161", "a"),
    ("6449455446", "IETF"),
    ("62225c", '"\\'),
    ("62c3bc", "\u00fc"),
    ("63e6b0b4", "\u6c34"),
    ("64f0908591", "\U00010151"),
    ("80", []),
    ("83010203", [1, 2, 3]),
    ("8301820203820405", [1, [2, 3], [4, 5]]),
    ("98190102030405060708090a0b0c0d0e0f101112131415161718181819", list(range(1, 26))),
    ("a0", {}),
    ("a201020304", {1: 2, 3: 4}),
    ("a26161016162820203", {"a": 1, "b": [2, 3]}),
    ("826161a161626163", ["a", {"b": "c"}]),
    (
        "a56161614161626142616361436164614461656145",
        {"a": "A", "b": "B", "c": "C", "d": "D", "e": "E"},
    ),
]

# Appendix A examples outside the subset, with the word the rejection must name.
APPENDIX_A_UNSUPPORTED = [
    ("c249010000000000000000", "tag"),  # 18446744073709551616 as a bignum
    ("c349010000000000000000", "tag"),  # -18446744073709551617 as a bignum
    ("f90000", "floating-point"),
    ("f98000", "floating-point"),
    ("f93c00", "floating-point"),
    ("fb3ff199999999999a", "floating-point"),
    ("f93e00", "floating-point"),
    ("f97bff", "floating-point"),
    ("fa47c35000", "floating-point"),
    ("fa7f7fffff", "floating-point"),
    ("fb7e37e43c8800759c", "floating-point"),
    ("f90001", "floating-point"),
    ("f90400", "floating-point"),
    ("f9c400", "floating-point"),
    ("fbc010666666666666", "floating-point"),
    ("f97c00", "floating-point"),
    ("f97e00", "floating-point"),
    ("f9fc00", "floating-point"),
    ("fa7f800000", "floating-point"),
    ("fa7fc00000", "floating-point"),
    ("faff800000", "floating-point"),
    ("fb7ff0000000000000", "floating-point"),
    ("fb7ff8000000000000", "floating-point"),
    ("fbfff0000000000000", "floating-point"),
    ("f7", "simple value"),  # undefined
    ("f0", "simple value"),  # simple(16)
    ("f818", "simple value"),  # simple(24)
    ("f8ff", "simple value"),  # simple(255)
    ("c074323031332d30332d32315432303a30343a30305a", "tag"),
    ("c11a514b67b0", "tag"),
    ("c1fb41d452d9ec200000", "tag"),
    ("d74401020304", "tag"),
    ("d818456449455446", "tag"),
    ("d82076687474703a2f2f7777772e6578616d706c652e636f6d", "tag"),
    ("5f42010243030405ff", "indefinite"),
    ("7f657374726561646d696e67ff", "indefinite"),
    ("9fff", "indefinite"),
    ("9f018202039f0405ffff", "indefinite"),
    ("9f01820203820405ff", "indefinite"),
    ("83018202039f0405ff", "indefinite"),
    ("83019f0203ff820405", "indefinite"),
    ("9f0102030405060708090a0b0c0d0e0f101112131415161718181819ff", "indefinite"),
    ("bf61610161629f0203ffff", "indefinite"),
    ("826161bf61626163ff", "indefinite"),
    ("bf6346756ef563416d7421ff", "indefinite"),
]


@pytest.mark.parametrize(("hex_bytes", "value"), APPENDIX_A_SUPPORTED)
def test_appendix_a_value_encodes_to_the_rfc_bytes(hex_bytes, value):
    assert encode(value).hex() == hex_bytes


@pytest.mark.parametrize(("hex_bytes", "value"), APPENDIX_A_SUPPORTED)
def test_appendix_a_bytes_decode_to_the_rfc_value(hex_bytes, value):
    assert_same(decode(bytes.fromhex(hex_bytes)), value)


@pytest.mark.parametrize(("hex_bytes", "problem"), APPENDIX_A_UNSUPPORTED)
def test_appendix_a_items_outside_the_subset_are_rejected(hex_bytes, problem):
    with pytest.raises(DecodeError, match=problem):
        decode(bytes.fromhex(hex_bytes))


def test_map_keys_follow_the_rfc_8949_core_deterministic_order():
    # RFC 8949 section 4.2.1 lists these keys "sorted correctly" (bytewise order of
    # their encodings): 10, 100, -1, "z", "aa" (its array and false keys are outside
    # our subset).
    value = {"aa": 0, "z": 0, -1: 0, 100: 0, 10: 0}
    assert encode(value) == bytes.fromhex("a5" "0a00" "186400" "2000" "617a00" "62616100")


def test_bytewise_order_differs_from_cbor2_length_first_order_for_mixed_sign_keys():
    # 24 encodes as 0x1818 and -1 as 0x20: bytewise (RFC 8949 4.2.1), 24 comes first;
    # cbor2's canonical mode sorts length-first (RFC 7049 / RFC 8949 4.2.3), -1 first.
    value = {-1: "minus one", 24: "twenty-four"}
    ours = encode(value)
    assert ours.startswith(bytes.fromhex("a21818"))
    assert cbor2.dumps(value, canonical=True) != ours
    with pytest.raises(DecodeError, match="order"):
        decode(cbor2.dumps(value, canonical=True))


# --------------------------------------------------------------------------- encoder rules


def test_true_is_not_encoded_as_one():
    assert encode(True) == b"\xf5"
    assert encode(1) == b"\x01"
    assert encode([True, 1, False, 0]) == bytes.fromhex("84f501f400")


def test_tuples_encode_as_arrays_and_bytearrays_as_byte_strings():
    assert encode((1, 2)) == encode([1, 2])
    assert encode(bytearray(b"ab")) == encode(b"ab")


@pytest.mark.parametrize(
    "value",
    [1.0, float("nan"), 2**64, -(2**64) - 1, {1}, frozenset(), object(), memoryview(b"x")],
)
def test_values_outside_the_subset_are_refused(value):
    with pytest.raises(EncodeError):
        encode(value)


@pytest.mark.parametrize("key", [True, None, b"k", 1.5, (1,), 2**64])
def test_map_keys_other_than_int_or_text_are_refused(key):
    with pytest.raises(EncodeError):
        encode({key: 0})


def test_text_with_a_lone_surrogate_is_refused():
    with pytest.raises(EncodeError, match="UTF-8"):
        encode("\ud800")


def test_nesting_up_to_the_default_depth_encodes_and_decodes():
    value: list = []
    for _ in range(DEFAULT_MAX_DEPTH - 1):
        value = [value]
    assert decode(encode(value)) == value


def test_nesting_beyond_the_default_depth_is_refused():
    value: list = []
    for _ in range(DEFAULT_MAX_DEPTH):
        value = [value]
    with pytest.raises(EncodeError, match="nesting"):
        encode(value)


def test_a_value_that_contains_itself_is_refused():
    value: list = []
    value.append(value)
    with pytest.raises(EncodeError, match="nesting"):
        encode(value)


def test_keys_that_encode_identically_are_refused():
    class DistinctText(str):
        # Two equal strings that a dict keeps apart: their encodings collide.
        __hash__ = object.__hash__

        def __eq__(self, other):
            return self is other

    with pytest.raises(EncodeError, match="duplicate"):
        encode({DistinctText("k"): 1, DistinctText("k"): 2})


# --------------------------------------------------------------------------- decoder rejections


@pytest.mark.parametrize(
    "hex_bytes",
    [
        "1817",  # 23 in a 1-byte field
        "1900ff",  # 255 in a 2-byte field
        "1a0000ffff",  # 65535 in a 4-byte field
        "1b00000000ffffffff",  # 2**32-1 in an 8-byte field
        "3817",  # -24 in a 1-byte field
        "5801ff",  # byte-string length 1 in a 1-byte field
        "780161",  # text length 1 in a 1-byte field
        "9800",  # array count 0 in a 1-byte field
        "b90000",  # map count 0 in a 2-byte field
    ],
)
def test_non_shortest_heads_are_rejected(hex_bytes):
    with pytest.raises(DecodeError, match="non-shortest"):
        decode(bytes.fromhex(hex_bytes))


@pytest.mark.parametrize("initial", [0x5F, 0x7F, 0x9F, 0xBF])
def test_indefinite_lengths_are_rejected(initial):
    with pytest.raises(DecodeError, match="indefinite"):
        decode(bytes([initial, 0xFF]))


def test_tags_are_rejected():
    with pytest.raises(DecodeError, match="tag"):
        decode(bytes.fromhex("c100"))


@pytest.mark.parametrize("hex_bytes", ["e0", "f3", "f7", "f820", "f8ff"])
def test_simple_values_other_than_false_true_null_are_rejected(hex_bytes):
    with pytest.raises(DecodeError, match="simple value"):
        decode(bytes.fromhex(hex_bytes))


@pytest.mark.parametrize("hex_bytes", ["f93c00", "fa3f800000", "fb3ff0000000000000"])
def test_floats_are_rejected(hex_bytes):
    with pytest.raises(DecodeError, match="floating-point"):
        decode(bytes.fromhex(hex_bytes))


@pytest.mark.parametrize("major", [0, 1, 2, 3, 4, 5, 7])
@pytest.mark.parametrize("info", [28, 29, 30])
def test_reserved_additional_information_values_are_rejected(major, info):
    with pytest.raises(DecodeError, match="reserved"):
        decode(bytes([major << 5 | info]) + bytes(8))


def test_a_lone_break_code_is_rejected():
    with pytest.raises(DecodeError, match="break"):
        decode(b"\xff")


@pytest.mark.parametrize("hex_bytes", ["a201000100", "a2616100616100"])
def test_duplicate_map_keys_are_rejected(hex_bytes):
    with pytest.raises(DecodeError, match="duplicate"):
        decode(bytes.fromhex(hex_bytes))


@pytest.mark.parametrize(
    "hex_bytes",
    [
        "a202000100",  # 2 before 1
        "a26161000100",  # text before integer
        "a2616200616100",  # "b" before "a"
        "a22000181800",  # -1 before 24: length-first order, not bytewise
    ],
)
def test_map_keys_out_of_canonical_order_are_rejected(hex_bytes):
    with pytest.raises(DecodeError, match="order"):
        decode(bytes.fromhex(hex_bytes))


@pytest.mark.parametrize("hex_bytes", ["a14000", "a1f500", "a1f600", "a18000", "a1a000"])
def test_map_keys_other_than_int_or_text_are_rejected(hex_bytes):
    with pytest.raises(DecodeError, match="map key"):
        decode(bytes.fromhex(hex_bytes))


@pytest.mark.parametrize(
    "hex_bytes",
    [
        "61ff",  # never valid in UTF-8
        "62c328",  # bad continuation byte
        "62c080",  # overlong NUL
        "63eda080",  # UTF-16 surrogate U+D800
        "64f4908080",  # beyond U+10FFFF
    ],
)
def test_invalid_utf8_is_rejected(hex_bytes):
    with pytest.raises(DecodeError, match="UTF-8"):
        decode(bytes.fromhex(hex_bytes))


@pytest.mark.parametrize("hex_bytes", ["0000", "8000", "f6f6", "a0ff"])
def test_trailing_bytes_are_rejected(hex_bytes):
    with pytest.raises(DecodeError, match="trailing"):
        decode(bytes.fromhex(hex_bytes))


def test_input_over_max_size_is_rejected_before_decoding():
    data = encode(b"x" * 100)
    assert decode(data, max_size=len(data)) == b"x" * 100
    with pytest.raises(DecodeError, match="max_size"):
        decode(data, max_size=len(data) - 1)


def test_nesting_deeper_than_max_depth_is_rejected():
    assert decode(b"\x81" * 3 + b"\x80", max_depth=4) == [[[[]]]]
    with pytest.raises(DecodeError, match="max_depth"):
        decode(b"\x81" * 4 + b"\x80", max_depth=4)
    with pytest.raises(DecodeError, match="max_depth"):
        decode(b"\xa1\x00" * 4 + b"\xa0", max_depth=4)


def test_deep_nesting_at_the_depth_ceiling_is_a_decode_error_not_a_recursion_error():
    with pytest.raises(DecodeError, match="max_depth"):
        decode(b"\x81" * 100_000 + b"\x80", max_depth=MAX_DEPTH_LIMIT)


def test_max_depth_above_the_ceiling_is_a_programming_error():
    with pytest.raises(ValueError, match="max_depth"):
        decode(b"\x00", max_depth=MAX_DEPTH_LIMIT + 1)


@pytest.mark.parametrize(
    "hex_bytes",
    [
        "5affffffff",  # byte string of 4 GiB, no bytes follow
        "7b00000001000000000061",  # text string of 4 Gi characters
        "4201",  # two bytes declared, one present
    ],
)
def test_declared_lengths_beyond_the_input_are_rejected(hex_bytes):
    with pytest.raises(DecodeError, match="exceeds"):
        decode(bytes.fromhex(hex_bytes))


@pytest.mark.parametrize(
    "hex_bytes",
    [
        "9bffffffffffffffff00",  # array of 2**64-1 items
        "bbffffffffffffffff00",  # map of 2**64-1 entries
        "8200",  # array of 2, one item present
        "a100",  # map of 1 entry, key only
    ],
)
def test_declared_counts_beyond_the_input_are_rejected(hex_bytes):
    with pytest.raises(DecodeError, match="exceeds"):
        decode(bytes.fromhex(hex_bytes))


def test_total_items_over_max_items_are_rejected():
    data = encode([[0, 0], [0, 0]])  # 7 items: 3 arrays, 4 integers
    assert decode(data, max_items=7) == [[0, 0], [0, 0]]
    with pytest.raises(DecodeError, match="max_items"):
        decode(data, max_items=6)
    with pytest.raises(DecodeError, match="max_items"):
        decode(encode(list(range(10))), max_items=5)


@pytest.mark.parametrize(
    "hex_bytes",
    [
        "",  # nothing at all
        "19",  # 2-byte argument missing
        "1901",  # 2-byte argument half present
        "821901",  # inside an array
        "a20043000000",  # map: the second key is missing after a long value
    ],
)
def test_truncated_input_is_rejected(hex_bytes):
    with pytest.raises(DecodeError, match="truncated"):
        decode(bytes.fromhex(hex_bytes))


@pytest.mark.parametrize("data", ["00", None, 0, [0], memoryview(b"\x00")])
def test_input_that_is_not_bytes_is_rejected(data):
    with pytest.raises(DecodeError, match="bytes"):
        decode(data)


def test_rejections_name_the_byte_offset():
    with pytest.raises(DecodeError, match="offset 3"):
        decode(bytes.fromhex("8301021817"))  # third element, 23, in a 1-byte field


# --------------------------------------------------------------------------- decoder results


def test_bytearray_input_decodes_like_bytes():
    assert decode(bytearray(b"\x43abc")) == b"abc"


def test_large_byte_strings_decode_to_bytes():
    roots = bytes(range(256)) * 4096  # 1 MiB: 32,768 roots of 32 bytes
    decoded = decode(encode({"roots": roots}))
    assert type(decoded["roots"]) is bytes
    assert decoded["roots"] == roots


def test_decoded_types_are_plain_python_types():
    value = decode(encode({"a": [1, -1, b"x", "y", True, None]}))
    assert [type(v) for v in value["a"]] == [int, int, bytes, str, bool, type(None)]


# --------------------------------------------------------------------------- hypothesis: cbor2

BOUNDARY_INTEGERS = [
    0, 23, 24, 255, 256, 65535, 65536, 2**32 - 1, 2**32, 2**64 - 1,
    -1, -24, -25, -256, -257, -65536, -65537, -(2**32), -(2**32) - 1, -(2**64),
]
integers = st.one_of(st.sampled_from(BOUNDARY_INTEGERS), st.integers(-(2**64), 2**64 - 1))
texts = st.text(max_size=30)  # hypothesis text excludes lone surrogates by default
scalars = st.one_of(st.none(), st.booleans(), integers, st.binary(max_size=40), texts)


def nested(keys):
    return st.recursive(
        scalars,
        lambda children: st.one_of(
            st.lists(children, max_size=6), st.dictionaries(keys, children, max_size=6)
        ),
        max_leaves=24,
    )


any_values = nested(st.one_of(integers, st.text(max_size=8)))

# cbor2's canonical=True sorts keys length-first (RFC 8949 4.2.3). For keys of one
# major type (all non-negative ints, all negative ints, or all text) a shorter encoding
# always has a smaller initial byte, so length-first and bytewise order coincide; mixed
# signs or ints mixed with text do not (see the test above). Each map picks one kind.
same_kind_values = st.recursive(
    scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=6),
        st.dictionaries(st.integers(0, 2**64 - 1), children, max_size=6),
        st.dictionaries(st.integers(-(2**64), -1), children, max_size=6),
        st.dictionaries(st.text(max_size=8), children, max_size=6),
    ),
    max_leaves=24,
)


@settings(max_examples=300, deadline=None)
@given(any_values)
def test_our_encoding_decodes_with_cbor2_to_the_same_value(value):
    assert_same(cbor2.loads(encode(value)), value)


@settings(max_examples=300, deadline=None)
@given(any_values)
def test_decode_inverts_encode(value):
    assert_same(decode(encode(value)), value)


@settings(max_examples=300, deadline=None)
@given(same_kind_values)
def test_our_bytes_equal_cbor2_canonical_bytes_for_same_kind_keys(value):
    assert encode(value) == cbor2.dumps(value, canonical=True)


# --------------------------------------------------------------------------- canonical round trip


def assert_canonical_or_rejected(data: bytes) -> None:
    """The key guarantee: accepted bytes are the unique encoding of their value."""
    try:
        value = decode(data)
    except DecodeError:
        return
    assert encode(value) == data


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=64))
def test_random_bytes_are_canonical_or_rejected(data):
    assert_canonical_or_rejected(data)


@st.composite
def mutated_encodings(draw):
    data = bytearray(encode(draw(any_values)))
    kind = draw(st.sampled_from(["flip", "truncate", "append", "insert", "delete", "replace"]))
    if kind == "append":
        data += draw(st.binary(min_size=1, max_size=9))
    elif kind == "truncate":
        del data[draw(st.integers(0, len(data) - 1)) :]
    else:
        position = draw(st.integers(0, len(data) - 1))
        if kind == "flip":
            data[position] ^= 1 << draw(st.integers(0, 7))
        elif kind == "insert":
            data.insert(position, draw(st.integers(0, 255)))
        elif kind == "delete":
            del data[position]
        else:
            data[position] = draw(st.integers(0, 255))
    return bytes(data)


@settings(max_examples=300, deadline=None)
@given(mutated_encodings())
def test_mutated_encodings_are_canonical_or_rejected(data):
    assert_canonical_or_rejected(data)


@st.composite
def lenient_encodings(draw):
    """A value and one of its many well-formed encodings: any argument width that fits,
    any map order. Written independently of proof.cbor, as a lenient encoder would.
    Half the time every argument is in its shortest form, so that map order alone
    decides whether the encoding is canonical."""
    value = draw(any_values)
    shortest_only = draw(st.booleans())

    def head(major: int, argument: int) -> bytes:
        limits = ((0, 24), (1, 2**8), (2, 2**16), (4, 2**32), (8, 2**64))
        widths = [width for width, limit in limits if argument < limit]
        width = widths[0] if shortest_only else draw(st.sampled_from(widths))
        if width == 0:
            return bytes([major << 5 | argument])
        info = {1: 24, 2: 25, 4: 26, 8: 27}[width]
        return bytes([major << 5 | info]) + argument.to_bytes(width, "big")

    def lenient(item) -> bytes:
        if item is False or item is True or item is None:
            return {False: b"\xf4", True: b"\xf5", None: b"\xf6"}[item]
        if isinstance(item, int):
            return head(0, item) if item >= 0 else head(1, -1 - item)
        if isinstance(item, bytes):
            return head(2, len(item)) + item
        if isinstance(item, str):
            return head(3, len(item.encode())) + item.encode()
        if isinstance(item, list):
            return head(4, len(item)) + b"".join(lenient(element) for element in item)
        entries = draw(st.permutations(list(item.items())))
        return head(5, len(entries)) + b"".join(lenient(k) + lenient(v) for k, v in entries)

    return value, lenient(value)


@settings(max_examples=300, deadline=None)
@given(lenient_encodings())
def test_only_the_canonical_one_of_many_encodings_is_accepted(value_and_data):
    value, data = value_and_data
    if data == encode(value):
        assert_same(decode(data), value)
    else:
        with pytest.raises(DecodeError):
            decode(data)


@settings(max_examples=200, deadline=None)
@given(any_values, st.booleans())
def test_cbor2_non_canonical_encodings_are_canonical_or_rejected(value, indefinite):
    # cbor2's default mode keeps insertion order and can write indefinite containers:
    # the decoder must never accept such bytes as something other than our encoding.
    assert_canonical_or_rejected(cbor2.dumps(value, indefinite_containers=indefinite))


def test_cbor2_indefinite_containers_are_rejected():
    with pytest.raises(DecodeError, match="indefinite"):
        decode(cbor2.dumps([1, 2], indefinite_containers=True))


# --------------------------------------------------------------------------- schema helpers


def test_expect_map_returns_a_record_with_required_and_optional_fields():
    record = {"h": 1, "note": "x"}
    assert expect_map(record, "header", {"h"}, frozenset({"note"})) is record
    assert expect_map({"h": 1}, "header", {"h"}, {"note"}) == {"h": 1}


def test_expect_map_rejects_a_non_map():
    with pytest.raises(DecodeError, match="header: expected a map, got array"):
        expect_map([1], "header", {"h"})


def test_expect_map_names_a_missing_field():
    with pytest.raises(DecodeError, match="header: missing field.*'h'"):
        expect_map({}, "header", {"h"})


def test_expect_map_names_an_unknown_field():
    with pytest.raises(DecodeError, match="header: unknown field.*'x'"):
        expect_map({"h": 1, "x": 2}, "header", {"h"})
    with pytest.raises(DecodeError, match="header: unknown field.*7"):
        expect_map({"h": 1, 7: 2}, "header", {"h"})


def test_expect_bytes_checks_type_and_size():
    assert expect_bytes(b"\x00" * 32, "header.root", size=32) == b"\x00" * 32
    assert expect_bytes(b"ab", "note", max_size=2) == b"ab"
    with pytest.raises(DecodeError, match="header.root: expected a byte string, got text"):
        expect_bytes("00", "header.root", size=32)
    with pytest.raises(DecodeError, match="header.root: expected 32 bytes, got 31"):
        expect_bytes(b"\x00" * 31, "header.root", size=32)
    with pytest.raises(DecodeError, match="note: 3 bytes exceeds the maximum of 2"):
        expect_bytes(b"abc", "note", max_size=2)


def test_expect_uint_accepts_only_unsigned_integers_in_range():
    assert expect_uint(0, "header.height") == 0
    assert expect_uint(2**64 - 1, "header.height") == 2**64 - 1
    assert expect_uint(5, "vote.kind", max_value=5) == 5
    with pytest.raises(DecodeError, match="vote.kind: 6 is outside 0 .. 5"):
        expect_uint(6, "vote.kind", max_value=5)
    with pytest.raises(DecodeError, match="header.height: -1 is outside"):
        expect_uint(-1, "header.height")
    with pytest.raises(DecodeError, match="header.height: expected an integer, got bool"):
        expect_uint(True, "header.height")
    with pytest.raises(DecodeError, match="header.height: expected an integer, got byte string"):
        expect_uint(b"\x01", "header.height")


def test_expect_int_enforces_both_bounds_and_rejects_bool():
    assert expect_int(-3, "offset", min_value=-3, max_value=3) == -3
    with pytest.raises(DecodeError, match="offset: -4 is outside -3 .. 3"):
        expect_int(-4, "offset", min_value=-3, max_value=3)
    with pytest.raises(DecodeError, match="offset: 4 is outside"):
        expect_int(4, "offset", min_value=-3, max_value=3)
    with pytest.raises(DecodeError, match="offset: expected an integer, got bool"):
        expect_int(False, "offset", min_value=-3, max_value=3)


def test_expect_text_bounds_the_utf8_size():
    assert expect_text("\u00fc", "name", max_size=2) == "\u00fc"
    with pytest.raises(DecodeError, match="name: text of 2 bytes exceeds the maximum of 1"):
        expect_text("\u00fc", "name", max_size=1)
    with pytest.raises(DecodeError, match="name: expected a text string, got null"):
        expect_text(None, "name", max_size=1)


def test_expect_list_bounds_the_item_count():
    assert expect_list([1, 2], "path", max_items=2) == [1, 2]
    with pytest.raises(DecodeError, match="path: 3 items exceeds the maximum of 2"):
        expect_list([1, 2, 3], "path", max_items=2)
    with pytest.raises(DecodeError, match="path: expected an array, got map"):
        expect_list({}, "path", max_items=2)


def test_expect_bool_rejects_integers():
    assert expect_bool(True, "pending") is True
    assert expect_bool(False, "pending") is False
    with pytest.raises(DecodeError, match="pending: expected a bool, got integer"):
        expect_bool(1, "pending")


def test_default_max_size_is_16_mib():
    assert cbor.DEFAULT_MAX_SIZE == 16 * 1024 * 1024
    with pytest.raises(DecodeError, match="max_size"):
        decode(bytes(cbor.DEFAULT_MAX_SIZE + 1))
