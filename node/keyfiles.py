"""Secret files on disk: validator keys (and later API tokens), mode 0600 or refused.

A key file holds the 32-byte FIPS 204 seed of an ML-DSA-65 key as hex, in a small TOML
document that names what it is, so that a file handed to the wrong command is recognised.
Files are created with ``O_EXCL`` and mode 0600 from the start (no window in which they
are readable by others) and refused at load time if group or others can read them, the
way ssh refuses a private key with loose permissions. Loading opens first and checks the
open descriptor (``fstat``), so the file checked is the file read; it refuses a symlink
(``O_NOFOLLOW``: a link can be re-pointed after the check) and a file owned by anyone but
the user running the node (who else could have written it).
"""

from __future__ import annotations

import errno
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
    """Read a secret file after checking, on the open descriptor, that only its owner (the
    user running this process) can read it. ``O_NONBLOCK`` keeps a FIFO from blocking the
    open before the check refuses it."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except FileNotFoundError:
        raise KeyFileError(f"{path} does not exist") from None
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise KeyFileError(
                f"{path} is a symbolic link; secret files are read only directly: "
                f"name the target file in the config instead"
            ) from None
        raise KeyFileError(f"{path} cannot be opened: {exc.strerror}") from None
    with os.fdopen(fd, "rb") as f:
        check_secret_stat(path, os.fstat(f.fileno()))
        content = f.read(SECRET_FILE_BYTES_MAX + 1)
    if len(content) > SECRET_FILE_BYTES_MAX:
        raise KeyFileError(f"{path} is larger than {SECRET_FILE_BYTES_MAX} bytes, larger than any secret file")
    return content


def check_secret_stat(path: Path, info: os.stat_result) -> None:
    """Refuse what a secret file must not be: not a regular file, owned by another user,
    or accessible by group or others. ``info`` comes from ``fstat`` of the open file."""
    if not stat.S_ISREG(info.st_mode):
        raise KeyFileError(f"{path} is not a regular file")
    if info.st_uid != os.geteuid():
        raise KeyFileError(
            f"{path} is owned by uid {info.st_uid}, not by uid {os.geteuid()} running this node; "
            f"a secret file must belong to the user that reads it: chown {os.geteuid()} {path}"
        )
    if info.st_mode & 0o077:
        raise KeyFileError(
            f"{path} has mode {stat.S_IMODE(info.st_mode):04o}: secret files must not be "
            f"accessible by group or others; run: chmod 600 {path}"
        )


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
