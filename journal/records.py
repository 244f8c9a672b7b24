"""The journal file's framing: a header, then length-prefixed, checksummed records.

Why this shape: the only write is an append of one whole record followed by fsync,
so a crash (kill -9, power loss) can only leave the *last* record incomplete. A reader
therefore tells two cases apart, and must never confuse them:

- a **torn tail**: the last record is cut short, zero-filled, or fails its checksum
  while reaching exactly the end of the file. That is an interrupted append; the
  records before it are complete, and ``repair`` may cut the tail off;
- a **damaged record**: a record that fails its checksum (or declares an impossible
  length) while bytes follow it. Appends never do that, so it is damage or tampering,
  reported as the first bad entry and never "repaired" away.

The checksum (CRC-32 over length and payload) only detects torn writes: tamper
evidence comes from the entries' signatures and chain hashes, not from it.

Layout (docs/journal-format.md section 5)::

    file    = MAGIC (8 bytes: "PNTHJNL" 0x01) || record*
    record  = length (u32 big-endian, 1..ENTRY_SIZE_MAX) || crc32(length || payload) (u32 big-endian) || payload
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass

from journal.entry import ENTRY_SIZE_MAX
from journal.errors import ChainError, JournalFileError

MAGIC = b"PNTHJNL\x01"
RECORD_HEADER_SIZE = 8
_HEADER = struct.Struct(">II")
_LENGTH = struct.Struct(">I")


def frame(payload: bytes) -> bytes:
    """One record holding ``payload``."""
    if not 0 < len(payload) <= ENTRY_SIZE_MAX:
        raise ValueError(f"record payload must be 1..{ENTRY_SIZE_MAX} bytes, got {len(payload)}")
    length = _LENGTH.pack(len(payload))
    return length + _LENGTH.pack(zlib.crc32(length + payload)) + payload


@dataclass(frozen=True)
class TornTail:
    """An incomplete last record: where it starts and how many bytes it holds."""

    offset: int
    size: int
    why: str

    def describe(self) -> str:
        return (
            f"torn tail: {self.size} byte(s) at offset {self.offset} are an incomplete record ({self.why}); "
            "an append was interrupted. Entries before it are intact; `pantheon journal repair` removes it"
        )


@dataclass(frozen=True)
class Scan:
    """The complete records of a file (payloads in order), and its torn tail if any."""

    payloads: tuple[bytes, ...]
    end: int
    """Offset just past the last complete record: where the next append goes."""
    torn: TornTail | None


def scan(data: bytes) -> Scan:
    """Split a journal file into records; ChainError("record-damaged") for damage before the end."""
    if data[: len(MAGIC)] != MAGIC:
        raise JournalFileError(f"not a Pantheon journal file (expected the magic {MAGIC!r} at the start)")
    payloads: list[bytes] = []
    offset = len(MAGIC)
    size = len(data)
    while offset < size:
        torn_or_damage = _check_record(data, offset)
        if torn_or_damage is not None:
            why, torn = torn_or_damage
            if not torn:
                raise ChainError(len(payloads), "record-damaged", f"record at byte offset {offset}: {why}")
            return Scan(tuple(payloads), offset, TornTail(offset, size - offset, why))
        length = _LENGTH.unpack_from(data, offset)[0]
        start = offset + RECORD_HEADER_SIZE
        payloads.append(data[start : start + length])
        offset = start + length
    return Scan(tuple(payloads), offset, None)


def _check_record(data: bytes, offset: int) -> tuple[str, bool] | None:
    """None for a complete record at ``offset``; else (what is wrong, whether it is a torn tail)."""
    remaining = len(data) - offset
    if remaining < RECORD_HEADER_SIZE:
        return f"{remaining} byte(s), shorter than a record header", True
    length, checksum = _HEADER.unpack_from(data, offset)
    if not 0 < length <= ENTRY_SIZE_MAX:
        zero_filled = not any(data[offset:])
        return f"declared length {length} outside 1..{ENTRY_SIZE_MAX}", zero_filled
    end = offset + RECORD_HEADER_SIZE + length
    if end > len(data):
        return f"declares {length} payload bytes, only {remaining - RECORD_HEADER_SIZE} present", True
    payload = data[offset + RECORD_HEADER_SIZE : end]
    if zlib.crc32(data[offset : offset + 4] + payload) != checksum:
        return "checksum mismatch", end == len(data)
    return None
