"""Canonical CBOR: the one encoding of every record Pantheon hashes, signs or ships.

Why our own codec rather than a general library:

- *Strictness.* A proof bundle is only tamper-evident if every change to its bytes is
  either rejected or changes a signed value. So the decoder accepts exactly one encoding
  per value: any input it accepts re-encodes to the very same bytes. General decoders
  are lenient on purpose (they accept long integer forms, unsorted maps, indefinite
  lengths), which would let two different byte strings stand for one record.
- *Canonical.* Hashes and signatures are taken over these bytes, so the encoder must be
  deterministic: RFC 8949 section 4.2.1 (core deterministic encoding).
- *Small.* An auditor reads this file, and the offline browser verifier mirrors it line
  for line. A few hundred lines over a fixed subset are easier to check than a full CBOR
  implementation with tags, floats and extension hooks.

The exact subset (nothing else is encoded or accepted):

- major type 0 and 1: integers from -2**64 to 2**64 - 1 (Python ``int``; ``bool`` is
  never taken for an integer);
- major type 2: byte strings (``bytes``; ``bytearray`` is accepted on encode);
- major type 3: UTF-8 text strings (``str``);
- major type 4: arrays (``list``; ``tuple`` is accepted on encode);
- major type 5: maps (``dict``) whose keys are integers or text strings;
- major type 7: only ``false``, ``true`` and ``null`` (``False``, ``True``, ``None``).

Refused: tags (major type 6), floats, ``undefined`` and every other simple value,
indefinite lengths, the reserved additional-information values 28-30.

Deterministic encoding, as RFC 8949 section 4.2.1 defines it: every argument (integer
value, length, count) in its shortest form; definite lengths only; map keys sorted by
the bytewise lexicographic order of their encodings, no two equal.

The decoder additionally bounds its work before doing any: input size, nesting depth,
total number of data items, and every declared length or count against the bytes that
remain. It raises :class:`~proof.errors.DecodeError` (naming the byte offset and the
problem) and nothing else, whatever the input.
"""

from __future__ import annotations

import struct
from collections.abc import Set
from typing import Any, NoReturn

from proof.checks import enforced
from proof.errors import DecodeError, EncodeError

DEFAULT_MAX_SIZE = 16 * 1024 * 1024
"""Largest input, in bytes, that :func:`decode` accepts unless told otherwise."""

DEFAULT_MAX_DEPTH = 32
"""Deepest nesting of arrays and maps (a top-level array is depth 1). Also the
encoder's limit, so that everything :func:`encode` produces decodes with the defaults."""

MAX_DEPTH_LIMIT = 128
"""Ceiling for ``max_depth``: the decoder recurses once per level, and this keeps it far
below Python's recursion limit."""

DEFAULT_MAX_ITEMS = 1 << 16
"""Most data items (every scalar, array, map, key and value counts one) in one input.
Bulk data, such as a batch of 32-byte roots, travels as one long byte string, which is
one item: this bound caps the Python objects a small input can make us allocate."""

UINT_MAX = 2**64 - 1
NINT_MIN = -(2**64)

_MAJOR_UNSIGNED = 0
_MAJOR_NEGATIVE = 1
_MAJOR_BYTES = 2
_MAJOR_TEXT = 3
_MAJOR_ARRAY = 4
_MAJOR_MAP = 5
_MAJOR_TAG = 6
_MAJOR_SIMPLE = 7

_FALSE = 0xF4
_TRUE = 0xF5
_NULL = 0xF6
_SIMPLE_VALUES: dict[int, bool | None] = {
    _FALSE & 0x1F: False,
    _TRUE & 0x1F: True,
    _NULL & 0x1F: None,
}
_KEY_MAJORS = (_MAJOR_UNSIGNED, _MAJOR_NEGATIVE, _MAJOR_TEXT)
_FLOAT_FORMATS = {25: ">e", 26: ">f", 27: ">d"}
_BREAK = 0xFF
_INDEFINITE = -1
"""The "argument" of an indefinite-length array's head (reached only with its check switched off)."""

# Additional information 24..27: the argument follows in 1, 2, 4 or 8 bytes, and is
# canonical only if it would not have fitted the next smaller form.
_ARGUMENT_SIZES = {24: 1, 25: 2, 26: 4, 27: 8}
_ARGUMENT_MINIMUMS = {24: 24, 25: 1 << 8, 26: 1 << 16, 27: 1 << 32}


# --------------------------------------------------------------------------- encode


def encode(value: Any) -> bytes:
    """The deterministic encoding of ``value``; EncodeError if it is outside the subset."""
    out = bytearray()
    _encode_into(value, out, 0)
    return bytes(out)


def _head(major: int, argument: int) -> bytes:
    initial = major << 5
    if argument < 24:
        return bytes((initial | argument,))
    if argument < 1 << 8:
        return bytes((initial | 24, argument))
    if argument < 1 << 16:
        return bytes((initial | 25,)) + argument.to_bytes(2, "big")
    if argument < 1 << 32:
        return bytes((initial | 26,)) + argument.to_bytes(4, "big")
    return bytes((initial | 27,)) + argument.to_bytes(8, "big")


def _encode_into(value: Any, out: bytearray, depth: int) -> None:
    # bool first: it is a subclass of int, and True must never be encoded as 1.
    if value is False:
        out.append(_FALSE)
    elif value is True:
        out.append(_TRUE)
    elif value is None:
        out.append(_NULL)
    elif isinstance(value, int):
        if 0 <= value <= UINT_MAX:
            out += _head(_MAJOR_UNSIGNED, value)
        elif NINT_MIN <= value < 0:
            out += _head(_MAJOR_NEGATIVE, -1 - value)
        else:
            raise EncodeError(f"integer {value} is outside the CBOR range -2**64 .. 2**64-1")
    elif isinstance(value, (bytes, bytearray)):
        out += _head(_MAJOR_BYTES, len(value))
        out += value
    elif isinstance(value, str):
        try:
            encoded = value.encode("utf-8")
        except UnicodeEncodeError as exc:
            raise EncodeError(f"text is not encodable as UTF-8: {exc.reason}") from exc
        out += _head(_MAJOR_TEXT, len(encoded))
        out += encoded
    elif isinstance(value, (list, tuple)):
        _check_encode_depth(depth + 1)
        out += _head(_MAJOR_ARRAY, len(value))
        for element in value:
            _encode_into(element, out, depth + 1)
    elif isinstance(value, dict):
        _check_encode_depth(depth + 1)
        _encode_map(value, out, depth + 1)
    else:
        raise EncodeError(f"cannot encode a value of type {type(value).__name__} in canonical CBOR")


def _check_encode_depth(depth: int) -> None:
    if depth > DEFAULT_MAX_DEPTH:
        raise EncodeError(
            f"nesting deeper than {DEFAULT_MAX_DEPTH} arrays/maps (or a value that contains itself)"
        )


def _encode_map(value: dict[Any, Any], out: bytearray, depth: int) -> None:
    entries = []
    for key, item in value.items():
        if isinstance(key, bool) or not isinstance(key, (int, str)):
            raise EncodeError(f"map key {key!r} is not an integer or text string")
        key_bytes = bytearray()
        _encode_into(key, key_bytes, depth)
        entries.append((bytes(key_bytes), item))
    entries.sort(key=lambda entry: entry[0])
    out += _head(_MAJOR_MAP, len(entries))
    previous = None
    for key_bytes, item in entries:
        if key_bytes == previous:
            raise EncodeError(f"duplicate map key (encoded {key_bytes.hex()})")
        previous = key_bytes
        out += key_bytes
        _encode_into(item, out, depth)


# --------------------------------------------------------------------------- decode


def decode(
    data: bytes,
    *,
    max_size: int = DEFAULT_MAX_SIZE,
    max_depth: int = DEFAULT_MAX_DEPTH,
    max_items: int = DEFAULT_MAX_ITEMS,
) -> Any:
    """The value whose canonical encoding is exactly ``data`` (bytes or bytearray).

    Raises DecodeError for anything else: non-canonical forms, values outside the subset,
    trailing bytes, or input over one of the bounds. ``max_depth`` above
    MAX_DEPTH_LIMIT is a programming error (ValueError), not a property of the input.
    """
    if not 0 <= max_depth <= MAX_DEPTH_LIMIT:
        raise ValueError(f"max_depth must be between 0 and {MAX_DEPTH_LIMIT}, got {max_depth}")
    if not isinstance(data, (bytes, bytearray)):
        raise DecodeError(f"CBOR input must be bytes, got {type(data).__name__}")
    if len(data) > max_size and enforced("cbor.size"):
        raise DecodeError(f"CBOR input of {len(data)} bytes exceeds max_size of {max_size} bytes")
    decoder = _Decoder(bytes(data), max_depth, max_items)
    value = decoder.item(0)
    if decoder.pos != len(data) and enforced("cbor.trailing"):
        extra = len(data) - decoder.pos
        decoder.fail(decoder.pos, f"trailing bytes after the top-level item ({extra} extra)")
    return value


class _Decoder:
    """Reads one item at ``pos``; every read is checked against the bytes that remain."""

    def __init__(self, data: bytes, max_depth: int, max_items: int) -> None:
        self.data = data
        self.pos = 0
        self.max_depth = max_depth
        self.max_items = max_items
        self.items_left = max_items

    def fail(self, offset: int, problem: str) -> NoReturn:
        raise DecodeError(f"CBOR at byte offset {offset}: {problem}")

    def remaining(self) -> int:
        return len(self.data) - self.pos

    def head(self) -> tuple[int, int, int]:
        """(offset, major type, argument) of the next item, its form checked.

        For major type 7 the "argument" is the additional information itself:
        :meth:`simple` decides what it means.
        """
        offset = self.pos
        if self.remaining() < 1:
            self.fail(offset, "truncated: expected a data item, input ended")
        initial = self.data[offset]
        self.pos += 1
        major, info = initial >> 5, initial & 0x1F
        if major == _MAJOR_TAG and enforced("cbor.tag"):
            self.fail(offset, "tags (major type 6) are not supported")
        if major == _MAJOR_SIMPLE or info < 24:
            return offset, major, info
        if info in _ARGUMENT_SIZES:
            size = _ARGUMENT_SIZES[info]
            if size > self.remaining():
                self.fail(
                    offset,
                    f"truncated: argument needs {size} bytes, only {self.remaining()} remain",
                )
            argument = int.from_bytes(self.data[self.pos : self.pos + size], "big")
            self.pos += size
            if argument < _ARGUMENT_MINIMUMS[info] and enforced("cbor.shortest"):
                self.fail(offset, f"non-shortest form: argument {argument} in a {size}-byte field")
            return offset, major, argument
        if info == 31 and (major != _MAJOR_ARRAY or enforced("cbor.indefinite")):
            self.fail(offset, f"indefinite length (major type {major}) is not allowed")
        if info == 31:
            return offset, major, _INDEFINITE
        self.fail(offset, f"reserved additional information value {info}")

    def simple(self, offset: int, info: int) -> bool | float | None:
        if info in _SIMPLE_VALUES:
            return _SIMPLE_VALUES[info]
        if info in _FLOAT_FORMATS:
            if enforced("cbor.float"):
                self.fail(offset, "floating-point values are not supported")
            size = struct.calcsize(_FLOAT_FORMATS[info])
            if size > self.remaining():
                self.fail(offset, f"truncated: float needs {size} bytes, only {self.remaining()} remain")
            self.pos += size
            return float(struct.unpack(_FLOAT_FORMATS[info], self.data[self.pos - size : self.pos])[0])
        if info == 31:
            self.fail(offset, "break stop code outside an indefinite-length item")
        if 28 <= info <= 30:
            self.fail(offset, f"reserved additional information value {info}")
        if enforced("cbor.simple"):
            self.fail(offset, f"unsupported simple value (additional information {info})")
        if info == 24:
            if not self.remaining():
                self.fail(offset, "truncated: simple value needs 1 byte, none remain")
            self.pos += 1
        return None

    def item(self, depth: int) -> Any:
        if self.items_left < 1 and enforced("cbor.items"):
            self.fail(self.pos, f"more than max_items={self.max_items} data items")
        self.items_left -= 1
        offset, major, argument = self.head()
        if major == _MAJOR_TAG:
            return self.item(depth)
        if major == _MAJOR_UNSIGNED:
            return argument
        if major == _MAJOR_NEGATIVE:
            return -1 - argument
        if major == _MAJOR_BYTES or major == _MAJOR_TEXT:
            if argument > self.remaining():
                self.fail(
                    offset,
                    f"declared length {argument} exceeds the {self.remaining()} bytes remaining",
                )
            chunk = self.data[self.pos : self.pos + argument]
            self.pos += argument
            if major == _MAJOR_BYTES:
                return chunk
            try:
                return chunk.decode("utf-8")
            except UnicodeDecodeError as exc:
                if enforced("cbor.utf8"):
                    self.fail(offset, f"invalid UTF-8 in text string: {exc.reason}")
                return chunk.decode("utf-8", "replace")
        if major == _MAJOR_ARRAY and argument == _INDEFINITE:
            return self.indefinite_array(depth + 1, offset)
        if major == _MAJOR_ARRAY:
            self.enter(depth + 1, offset, argument, argument)
            array = []
            for _ in range(argument):
                array.append(self.item(depth + 1))
            return array
        if major == _MAJOR_MAP:
            self.enter(depth + 1, offset, argument, 2 * argument)
            return self.map_entries(depth + 1, argument)
        return self.simple(offset, argument)

    def enter(self, depth: int, offset: int, count: int, item_count: int) -> None:
        """Check a container's depth and declared size before reading any element."""
        if depth > self.max_depth and enforced("cbor.depth"):
            self.fail(offset, f"nesting deeper than max_depth={self.max_depth}")
        # Every item takes at least one byte, so a count the remaining input cannot hold
        # is a lie; and one over the item budget would fail later anyway: fail now.
        if item_count > self.remaining():
            self.fail(
                offset,
                f"declared count {count} exceeds what the {self.remaining()} bytes "
                "remaining can hold",
            )
        if item_count > self.items_left and enforced("cbor.items"):
            self.fail(offset, f"declared count {count} exceeds max_items={self.max_items}")

    def indefinite_array(self, depth: int, offset: int) -> list[Any]:
        """An indefinite-length array: read only with the check "cbor.indefinite" switched off."""
        self.enter(depth, offset, 0, 0)
        array = []
        while self.remaining() and self.data[self.pos] != _BREAK:
            array.append(self.item(depth))
        if not self.remaining():
            self.fail(offset, "truncated: indefinite-length array without its break code")
        self.pos += 1
        return array

    def map_entries(self, depth: int, count: int) -> dict[Any, Any]:
        result: dict[Any, Any] = {}
        previous_key: bytes | None = None
        for _ in range(count):
            key_offset = self.pos
            if self.remaining() < 1:
                self.fail(key_offset, "truncated: expected a map key, input ended")
            if self.data[key_offset] >> 5 not in _KEY_MAJORS and enforced("cbor.key-type"):
                self.fail(key_offset, "map key is not an integer or text string")
            key = self.item(depth)
            # The input is canonical so far, so these bytes are the key's encoding.
            key_bytes = self.data[key_offset : self.pos]
            if previous_key is not None:
                if key_bytes == previous_key and enforced("cbor.key-duplicate"):
                    self.fail(key_offset, f"duplicate map key {key!r}")
                if key_bytes < previous_key and enforced("cbor.key-order"):
                    self.fail(key_offset, f"map key {key!r} is out of canonical order")
            previous_key = key_bytes
            result[key] = self.item(depth)
        return result


# --------------------------------------------------------------------------- schema helpers


def _kind(value: Any) -> str:
    if isinstance(value, bool):
        return "bool"
    if value is None:
        return "null"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, bytes):
        return "byte string"
    if isinstance(value, str):
        return "text string"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "map"
    return type(value).__name__


def expect_map(
    value: Any,
    what: str,
    required: Set[str],
    optional: Set[str] = frozenset(),
) -> dict[Any, Any]:
    """``value`` as a record: a map with every required field and no unknown field."""
    if not isinstance(value, dict):
        raise DecodeError(f"{what}: expected a map, got {_kind(value)}")
    missing = set(required) - value.keys()
    if missing:
        raise DecodeError(f"{what}: missing field(s) {', '.join(sorted(map(repr, missing)))}")
    unknown = value.keys() - set(required) - set(optional)
    if unknown and enforced("record.unknown-field"):
        raise DecodeError(f"{what}: unknown field(s) {', '.join(sorted(map(repr, unknown)))}")
    return value


def expect_bytes(
    value: Any, what: str, *, size: int | None = None, max_size: int | None = None
) -> bytes:
    """``value`` as a byte string of exactly ``size`` or at most ``max_size`` bytes."""
    if not isinstance(value, bytes):
        raise DecodeError(f"{what}: expected a byte string, got {_kind(value)}")
    if size is not None and len(value) != size:
        raise DecodeError(f"{what}: expected {size} bytes, got {len(value)}")
    if max_size is not None and len(value) > max_size:
        raise DecodeError(f"{what}: {len(value)} bytes exceeds the maximum of {max_size}")
    return value


def expect_int(value: Any, what: str, *, min_value: int, max_value: int) -> int:
    """``value`` as an integer in ``min_value .. max_value`` (a bool is not an integer)."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise DecodeError(f"{what}: expected an integer, got {_kind(value)}")
    if not min_value <= value <= max_value:
        raise DecodeError(f"{what}: {value} is outside {min_value} .. {max_value}")
    return value


def expect_uint(value: Any, what: str, *, max_value: int = UINT_MAX) -> int:
    """``value`` as an unsigned integer no larger than ``max_value``."""
    return expect_int(value, what, min_value=0, max_value=max_value)


def expect_text(value: Any, what: str, *, max_size: int) -> str:
    """``value`` as a text string of at most ``max_size`` bytes of UTF-8."""
    if not isinstance(value, str):
        raise DecodeError(f"{what}: expected a text string, got {_kind(value)}")
    size = len(value.encode("utf-8", "surrogatepass"))
    if size > max_size:
        raise DecodeError(f"{what}: text of {size} bytes exceeds the maximum of {max_size}")
    return value


def expect_list(value: Any, what: str, *, max_items: int) -> list[Any]:
    """``value`` as an array of at most ``max_items`` elements."""
    if not isinstance(value, list):
        raise DecodeError(f"{what}: expected an array, got {_kind(value)}")
    if len(value) > max_items:
        raise DecodeError(f"{what}: {len(value)} items exceeds the maximum of {max_items}")
    return value


def expect_bool(value: Any, what: str) -> bool:
    """``value`` as true or false (not 0 or 1)."""
    if not isinstance(value, bool):
        raise DecodeError(f"{what}: expected a bool, got {_kind(value)}")
    return value
