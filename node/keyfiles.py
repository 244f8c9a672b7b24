"""Secret files on disk: validator keys (and later API tokens), mode 0600 or refused.

A key file holds the 32-byte FIPS 204 seed of an ML-DSA-65 key as hex, in a small TOML
document that names what it is, so that a file handed to the wrong command is recognised.
Files are created with ``O_EXCL`` and mode 0600 from the start (no window in which they
are readable by others) and refused at load time if group or others can read them, the
way ssh refuses a private key with loose permissions.
"""

from __future__ import annotations

import os
import stat
import tomllib
from pathlib import Path

from proof.errors import PantheonError
from proof.mldsa import SEED_SIZE, SigningKey

KEY_FILE_KIND = "pantheon-validator-key"
KEY_FILE_VERSION = 1
SECRET_FILE_MODE = 0o600
SECRET_FILE_BYTES_MAX = 64 * 1024


class KeyFileError(PantheonError):
    """A key or secret file that is missing, malformed or too widely readable."""


def write_secret_file(path: Path, content: bytes) -> None:
    """Create ``path`` with mode 0600; refuse to overwrite an existing file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, SECRET_FILE_MODE)
    except FileExistsError:
        raise KeyFileError(f"{path} already exists; refusing to overwrite a secret file") from None
    with os.fdopen(fd, "wb") as f:
        f.write(content)
        f.flush()
        os.fsync(f.fileno())


def read_secret_file(path: Path) -> bytes:
    """Read a secret file after checking that only its owner can read it."""
    try:
        info = os.stat(path)
    except FileNotFoundError:
        raise KeyFileError(f"{path} does not exist") from None
    if not stat.S_ISREG(info.st_mode):
        raise KeyFileError(f"{path} is not a regular file")
    loose = info.st_mode & 0o077
    if loose:
        raise KeyFileError(
            f"{path} has mode {stat.S_IMODE(info.st_mode):04o}: secret files must not be "
            f"accessible by group or others; run: chmod 600 {path}"
        )
    if info.st_size > SECRET_FILE_BYTES_MAX:
        raise KeyFileError(f"{path} is {info.st_size} bytes, larger than any secret file")
    return path.read_bytes()


def write_key_file(path: Path, key: SigningKey) -> None:
    content = (
        "# Pantheon validator signing key (ML-DSA-65, FIPS 204 seed). Keep it secret.\n"
        f'kind = "{KEY_FILE_KIND}"\n'
        f"version = {KEY_FILE_VERSION}\n"
        f'seed = "{key.seed.hex()}"\n'
        f'public_key = "{key.public_key.hex()}"\n'
    )
    write_secret_file(path, content.encode("ascii"))


def read_key_file(path: Path) -> SigningKey:
    raw = read_secret_file(path)
    try:
        doc = tomllib.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise KeyFileError(f"{path} is not a Pantheon key file: {exc}") from None
    if doc.get("kind") != KEY_FILE_KIND or doc.get("version") != KEY_FILE_VERSION:
        raise KeyFileError(
            f"{path} is not a version {KEY_FILE_VERSION} Pantheon key file "
            f"(kind={doc.get('kind')!r}, version={doc.get('version')!r})"
        )
    try:
        seed = bytes.fromhex(doc["seed"])
        public_key = bytes.fromhex(doc["public_key"])
    except (KeyError, TypeError, ValueError):
        raise KeyFileError(f"{path}: 'seed' and 'public_key' must be hex strings") from None
    if len(seed) != SEED_SIZE:
        raise KeyFileError(f"{path}: seed must be {SEED_SIZE} bytes, got {len(seed)}")
    key = SigningKey(seed)
    if key.public_key != public_key:
        raise KeyFileError(f"{path}: public_key does not match the seed (file damaged or edited)")
    return key
