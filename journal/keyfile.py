"""The producer's secret key file: an ML-DSA-65 seed, mode 0600 or refused.

The same shape as a validator key file (a small TOML document naming what it is), with
its own ``kind``, so that a validator key handed to the journal, or the reverse, is
recognised as the wrong file. Created with ``O_EXCL`` and mode 0600 from the start,
written through a temporary file and renamed so that a crash leaves the old or the new
key, never half of one.
"""

from __future__ import annotations

import os
import stat
import tomllib
from pathlib import Path

from proof.mldsa import SEED_SIZE, SigningKey

from journal.errors import JournalKeyError

KEY_FILE_KIND = "pantheon-journal-key"
KEY_FILE_VERSION = 1
KEY_FILE_MODE = 0o600
KEY_FILE_BYTES_MAX = 16 * 1024


def write_key_file(path: Path, key: SigningKey) -> None:
    """Create ``path`` (mode 0600, fsynced); refuse to overwrite an existing file."""
    content = (
        "# Pantheon journal producer key (ML-DSA-65, FIPS 204 seed). Keep it secret.\n"
        f'kind = "{KEY_FILE_KIND}"\n'
        f"version = {KEY_FILE_VERSION}\n"
        f'seed = "{key.seed.hex()}"\n'
    ).encode("ascii")
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, KEY_FILE_MODE)
    except FileExistsError:
        raise JournalKeyError(f"{path} already exists; refusing to overwrite a key file") from None
    with os.fdopen(fd, "wb") as f:
        f.write(content)
        f.flush()
        os.fsync(f.fileno())


def read_key_file(path: Path) -> SigningKey:
    try:
        info = os.stat(path)
    except FileNotFoundError:
        raise JournalKeyError(f"producer key file {path} does not exist") from None
    if not stat.S_ISREG(info.st_mode) or info.st_size > KEY_FILE_BYTES_MAX:
        raise JournalKeyError(f"{path} is not a key file (not a regular file, or too large)")
    if info.st_mode & 0o077:
        raise JournalKeyError(
            f"{path} has mode {stat.S_IMODE(info.st_mode):04o}: a key file must not be accessible by group "
            f"or others; run: chmod 600 {path}"
        )
    try:
        doc = tomllib.loads(path.read_text("utf-8"))
    except (UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise JournalKeyError(f"{path} is not a journal key file: {exc}") from None
    if doc.get("kind") != KEY_FILE_KIND or doc.get("version") != KEY_FILE_VERSION:
        raise JournalKeyError(
            f"{path} is not a version {KEY_FILE_VERSION} journal key file "
            f"(kind={doc.get('kind')!r}, version={doc.get('version')!r})"
        )
    try:
        seed = bytes.fromhex(doc["seed"])
    except (KeyError, TypeError, ValueError):
        raise JournalKeyError(f"{path}: 'seed' must be a hex string") from None
    if len(seed) != SEED_SIZE:
        raise JournalKeyError(f"{path}: seed must be {SEED_SIZE} bytes, got {len(seed)}")
    return SigningKey(seed)
