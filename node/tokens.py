"""API write credentials: bearer tokens per submitter, stored only as SHA-256 hashes.

A token is shown once, when it is made; the node keeps ``sha256(token)`` and the
submitter's name in a 0600 file. A leaked tokens file therefore gives no one the
right to submit, and a token can be revoked by deleting its line.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import tomllib
from dataclasses import dataclass
from pathlib import Path

from node.keyfiles import KeyFileError, read_secret_file, write_secret_file
from proof.errors import PantheonError

TOKEN_PREFIX = "pnt_"
TOKEN_RANDOM_BYTES = 32
TOKENS_MAX = 10_000
SUBMITTER_NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


class TokenError(PantheonError):
    """A tokens file that cannot be used, or a token request that makes no sense."""


def new_token() -> str:
    return TOKEN_PREFIX + secrets.token_urlsafe(TOKEN_RANDOM_BYTES)


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class TokenTable:
    """Submitter name by token hash."""

    by_hash: dict[str, str]

    def submitter(self, token: str) -> str | None:
        """The submitter a presented token belongs to, or None."""
        presented = token_hash(token)
        for known, name in self.by_hash.items():
            if hmac.compare_digest(known, presented):
                return name
        return None

    def render(self) -> bytes:
        lines = ["# Pantheon API tokens: SHA-256 of each bearer token, by submitter.\n"]
        for digest, name in sorted(self.by_hash.items(), key=lambda item: item[1]):
            lines.append(f'[[token]]\nname = "{name}"\nsha256 = "{digest}"\n')
        return "\n".join(lines).encode("ascii")


def load_tokens(path: Path) -> TokenTable:
    try:
        raw = read_secret_file(path)
    except KeyFileError as exc:
        raise TokenError(f"tokens file: {exc}") from None
    try:
        doc = tomllib.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise TokenError(f"{path} is not a tokens file: {exc}") from None
    entries = doc.get("token", [])
    if not isinstance(entries, list) or len(entries) > TOKENS_MAX:
        raise TokenError(f"{path}: 'token' must be a list of at most {TOKENS_MAX} tables")
    by_hash: dict[str, str] = {}
    for number, entry in enumerate(entries, 1):
        name, digest = entry.get("name"), entry.get("sha256")
        if not isinstance(name, str) or not SUBMITTER_NAME_PATTERN.match(name):
            raise TokenError(f"{path}: token #{number} has no valid name (letters, digits, . _ -)")
        if not isinstance(digest, str) or not re.fullmatch(r"[0-9a-f]{64}", digest):
            raise TokenError(f"{path}: token {name!r} needs sha256 = 64 lowercase hex digits")
        by_hash[digest] = name
    return TokenTable(by_hash)


def add_token(path: Path, name: str) -> str:
    """Add a token for ``name`` to the tokens file (creating it 0600); return the token."""
    if not SUBMITTER_NAME_PATTERN.match(name):
        raise TokenError(f"submitter name {name!r}: use 1-64 letters, digits, '.', '_' or '-'")
    table = load_tokens(path) if path.exists() else TokenTable({})
    if name in table.by_hash.values():
        raise TokenError(f"{path} already has a token for {name!r}; remove its entry first")
    token = new_token()
    updated = TokenTable({**table.by_hash, token_hash(token): name})
    replacement = path.with_name(path.name + ".new")
    replacement.unlink(missing_ok=True)
    write_secret_file(replacement, updated.render())
    replacement.replace(path)
    return token
