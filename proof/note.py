"""The log state as a C2SP tlog-checkpoint signed note, with ML-DSA-65 signature lines.

Transparency-log witnesses and monitors (c2sp.org/tlog-checkpoint, c2sp.org/signed-note)
follow a log through checkpoints like this one::

    pantheon/57a8e732...16b8            origin: "pantheon/" + chain id (64 hex digits)
    1029                                tree size, decimal
    EH2fR88aFOawUZt45+O2qBzU8lq1AqYYSB9WoD52vLc=   root hash, base64
                                        (blank line)
    — pantheon/57a8e732...16b8 <base64(key ID || ML-DSA-65 signature)>

Signature type. The signed-note spec assigns type bytes only to Ed25519, ECDSA and
a few cosignature formats; ``0xff`` is reserved for types without an assigned byte,
followed by a longer identifier. Ours is :data:`SIGNATURE_TYPE`
(``0xff || "pantheon-mldsa65-v1"``); the key ID is, as the spec recommends,
``SHA-256(key name || 0x0A || SIGNATURE_TYPE || public key)[:4]`` with the 1952-byte
ML-DSA-65 public key. The signature is pure ML-DSA-65 (FIPS 204, empty context) over
the note text: every byte up to and including the newline that ends the root hash
line, without the blank line. Verifiers that do not know the type ignore the line,
as the spec requires.

Domain separation. Validator keys also sign consensus votes and p2p handshake
transcripts; both messages are 32-byte hashes, while a note text is at least 121
bytes ("pantheon/" + 64 hex digits + newline + size + newline + 44 base64 characters
+ newline), so no note signature is ever a valid vote or handshake signature.

Who signs. The finalize certificate is 2f+1 signatures over a vote for the block hash,
a different message than this note, so it cannot be turned into note signatures. The
node serving the note signs it with its own validator key: the note says "validator i
states this log state", not "2f+1 validators certified it". The note text depends only
on the certified block (origin, size, root), so notes fetched from several validators at
the same size carry the same text and their signature lines can be merged into one
note with several signatures. The quorum-backed statement remains the finalization
proof (``GET /v1/blocks/{height}?format=cbor``).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from proof.errors import DecodeError, ProofError
from proof.hashing import HASH_SIZE
from proof.mldsa import PUBLIC_KEY_SIZE, SIGNATURE_SIZE
from proof.mldsa import verify as mldsa_verify

SIGNATURE_TYPE = b"\xff" + b"pantheon-mldsa65-v1"
KEY_ID_SIZE = 4
ORIGIN_PREFIX = "pantheon/"
EM_DASH = "\u2014"
NOTE_SIZE_MAX = 64 * 1024
SIGNATURE_LINES_MAX = 100
"""The Go reference (sumdb/note) stops at 100 signatures; C2SP asks for at least 16."""
_DECIMAL = re.compile(r"0|[1-9][0-9]{0,19}")


def origin(chain_id: bytes) -> str:
    """The origin line and key name: unique per chain, no spaces or plus signs."""
    if len(chain_id) != HASH_SIZE:
        raise ValueError(f"chain id must be {HASH_SIZE} bytes")
    return ORIGIN_PREFIX + chain_id.hex()


def key_id(name: str, public_key: bytes, signature_type: bytes = SIGNATURE_TYPE) -> bytes:
    """C2SP signed-note key ID: SHA-256(name || 0x0A || signature type || public key)[:4]."""
    return hashlib.sha256(name.encode() + b"\n" + signature_type + public_key).digest()[:KEY_ID_SIZE]


def verifier_key(name: str, public_key: bytes) -> str:
    """The vkey text a note verifier is configured with: name+hex(key ID)+base64(type || key)."""
    encoded = base64.b64encode(SIGNATURE_TYPE + public_key).decode()
    return f"{name}+{key_id(name, public_key).hex()}+{encoded}"


def checkpoint_text(origin_line: str, size: int, root: bytes) -> str:
    """The note text of a tlog checkpoint: origin, tree size, base64 root, each ending in a newline."""
    if not origin_line or any(c.isspace() or c == "+" for c in origin_line):
        raise ValueError("origin must be non-empty, without spaces or plus signs")
    if len(root) != HASH_SIZE or not 0 <= size < 2**64:
        raise ValueError("root must be 32 bytes and size a uint64")
    return f"{origin_line}\n{size}\n{base64.b64encode(root).decode()}\n"


def signature_line(name: str, public_key: bytes, text: str, sign: Callable[[bytes], bytes]) -> str:
    """One signature line over ``text`` by the ML-DSA-65 key whose public half is ``public_key``."""
    signature = sign(text.encode())
    if len(signature) != SIGNATURE_SIZE:
        raise ValueError(f"ML-DSA-65 signatures are {SIGNATURE_SIZE} bytes, got {len(signature)}")
    return f"{EM_DASH} {name} {base64.b64encode(key_id(name, public_key) + signature).decode()}\n"


def signed_note(text: str, lines: list[str]) -> str:
    return text + "\n" + "".join(lines)


@dataclass(frozen=True)
class Checkpoint:
    """A parsed note: the log state it states and which known keys signed it."""

    origin: str
    size: int
    root: bytes
    signed_by: tuple[str, ...]


@dataclass(frozen=True)
class NoteSignature:
    name: str
    key_id: bytes
    signature: bytes


def split_note(note: str) -> tuple[str, list[NoteSignature]]:
    """The note text and its signature lines, checked against the signed-note grammar."""
    if len(note.encode()) > NOTE_SIZE_MAX:
        raise DecodeError(f"note is larger than {NOTE_SIZE_MAX} bytes")
    if any(ord(c) < 0x20 and c != "\n" for c in note):
        raise DecodeError("note contains a control character other than newline")
    cut = note.rfind("\n\n")
    if cut < 0 or not note.endswith("\n"):
        raise DecodeError("note has no blank line before its signatures, or does not end in a newline")
    text, block = note[: cut + 1], note[cut + 2 :]
    signatures = []
    for number, line in enumerate(block[:-1].split("\n")):
        if number >= SIGNATURE_LINES_MAX:
            raise DecodeError(f"note has more than {SIGNATURE_LINES_MAX} signature lines")
        parts = line.split(" ")
        if len(parts) != 3 or parts[0] != EM_DASH or not parts[1] or "+" in parts[1]:
            raise DecodeError(f"signature line {number} is not '{EM_DASH} <name> <base64>'")
        try:
            raw = base64.b64decode(parts[2], validate=True)
        except binascii.Error:
            raise DecodeError(f"signature line {number} is not base64") from None
        if len(raw) <= KEY_ID_SIZE:
            raise DecodeError(f"signature line {number} is too short for a key ID and a signature")
        signatures.append(NoteSignature(parts[1], raw[:KEY_ID_SIZE], raw[KEY_ID_SIZE:]))
    return text, signatures


def parse_checkpoint_text(text: str) -> tuple[str, int, bytes]:
    lines = text[:-1].split("\n")
    if len(lines) < 3 or not all(lines):
        raise DecodeError("checkpoint text needs origin, size and root hash lines, none empty")
    if not _DECIMAL.fullmatch(lines[1]) or int(lines[1]) >= 2**64:
        raise DecodeError(f"checkpoint size {lines[1]!r} is not a decimal uint64 without leading zeros")
    try:
        root = base64.b64decode(lines[2], validate=True)
    except binascii.Error:
        raise DecodeError("checkpoint root hash is not base64") from None
    if len(root) != HASH_SIZE:
        raise DecodeError(f"checkpoint root hash is {len(root)} bytes, expected {HASH_SIZE}")
    return lines[0], int(lines[1]), root


def verify_checkpoint(note: str, keys: Mapping[str, tuple[str, bytes]]) -> Checkpoint:
    """Parse a checkpoint note and check its signatures by the known ``keys``.

    ``keys`` maps a label (e.g. "validator 2") to (key name, ML-DSA-65 public key).
    Lines of unknown keys are ignored; a known key's line that fails rejects the
    note; at least one known key must have signed (c2sp.org/signed-note rules).
    """
    text, signatures = split_note(note)
    origin_line, size, root = parse_checkpoint_text(text)
    known = {(name, key_id(name, public_key)): (label, public_key) for label, (name, public_key) in keys.items()}
    signed_by = []
    for entry in signatures:
        match = known.get((entry.name, entry.key_id))
        if match is None:
            continue
        label, public_key = match
        if len(public_key) != PUBLIC_KEY_SIZE or not mldsa_verify(public_key, text.encode(), entry.signature):
            raise ProofError(f"the note signature of {label} does not verify")
        signed_by.append(label)
    if not signed_by:
        raise ProofError("no signature on the note is by a known key")
    return Checkpoint(origin=origin_line, size=size, root=root, signed_by=tuple(signed_by))
