"""Walking a chain of entries, some of them perhaps withheld: every check, in order.

One walker serves the writer (which re-verifies its file on open, so it never extends
a tampered journal), ``pantheon journal verify`` and the audit-package verifier. It is
fed the chain from entry 0 on, each position either a whole entry or, in an audit
package, only the entry digest of a withheld one, and raises :class:`ChainError` at the
first entry that breaks a rule. docs/journal-format.md section 7 lists the checks with
their reason codes; the order here is the order there.
"""

from __future__ import annotations

from dataclasses import dataclass

from proof.hashing import HASH_SIZE
from proof.mldsa import verify as mldsa_verify

from journal.entry import ZERO_HASH, Entry, Kind, chain_hash, key_fingerprint
from journal.errors import ChainError

_WITHHELD = 0
_DISCLOSED = 1


@dataclass(frozen=True)
class OpenIntent:
    """A disclosed intent with no outcome among the entries seen: started, no recorded outcome."""

    seq: int
    action: str
    time_ms: int


@dataclass(frozen=True)
class ChainReport:
    """What a walk established: length, head, keys in order of introduction, open intents."""

    length: int
    head: bytes
    disclosed: int
    withheld: int
    keys: tuple[bytes, ...]
    open_intents: tuple[OpenIntent, ...]


class ChainWalker:
    """Feed entries (or withheld digests) in chain order; each call checks one position.

    ``first_key``, when given, pins the fingerprint of the key entry 0 introduces (a
    producer identity known out of band), so that a whole journal re-signed from the
    start with another key is refused too.
    """

    def __init__(self, *, first_key: bytes | None = None) -> None:
        self._first_key = first_key
        self._head = ZERO_HASH
        self._hashes = bytearray()
        self._shown = bytearray()
        self._keys: list[bytes] = []
        self._fingerprints: set[bytes] = set()
        self._open: dict[int, OpenIntent] = {}
        self._time_ms = 0

    @property
    def length(self) -> int:
        return len(self._shown)

    @property
    def head(self) -> bytes:
        return self._head

    @property
    def active_key(self) -> bytes | None:
        return self._keys[-1] if self._keys else None

    def chain_hash_at(self, seq: int) -> bytes:
        """The chain hash after entry ``seq`` (the head the journal had when it was the last)."""
        if not 0 <= seq < self.length:
            raise IndexError(seq)
        return bytes(self._hashes[seq * HASH_SIZE : (seq + 1) * HASH_SIZE])

    def add_withheld(self, entry_digest: bytes) -> None:
        position = self.length
        if len(entry_digest) != HASH_SIZE:
            raise ChainError(position, "withheld-digest", f"a withheld entry digest is {HASH_SIZE} bytes")
        self._check_withheld_position(position)
        self._advance(entry_digest, _WITHHELD)

    def add_entry(self, entry: Entry) -> None:
        """Check one disclosed entry, in the order of docs/journal-format.md section 7."""
        position = self.length
        self._check_seq(entry, position)
        self._check_prev(entry)
        self._check_time(entry)
        if position == 0:
            self._check_first_entry(entry)
            self._check_first_key(entry)
            key = entry.pubkey
        else:
            key = self._check_active_key(entry)
        assert key is not None
        self._check_signature(entry, key)
        if entry.kind == Kind.KEY_ROTATION:
            self._check_new_key(entry)
        elif entry.kind == Kind.OUTCOME:
            self._check_outcome(entry)
        self._apply(entry)
        self._time_ms = entry.time_ms
        self._advance(entry.digest, _DISCLOSED)

    # ------------------------------------------------------------------ the checks, one rule each

    def _check_withheld_position(self, position: int) -> None:
        if position == 0:
            raise ChainError(0, "first-entry", "entry 0 introduces the producer key and is never withheld")

    def _check_seq(self, entry: Entry, position: int) -> None:
        if entry.seq != position:
            raise ChainError(
                position, "seq", f"entry at position {position} says seq {entry.seq} (an entry deleted, inserted or moved)"
            )

    def _check_prev(self, entry: Entry) -> None:
        if entry.prev != self._head:
            raise ChainError(
                entry.seq, "prev",
                f"prev {entry.prev.hex()[:16]}… is not the chain hash of the entry before ({self._head.hex()[:16]}…)",
            )

    def _check_time(self, entry: Entry) -> None:
        if entry.time_ms < self._time_ms:
            raise ChainError(entry.seq, "time",
                             f"time {entry.time_ms} ms is before the previous entry's {self._time_ms} ms")

    def _check_first_entry(self, entry: Entry) -> None:
        if entry.kind != Kind.KEY_ROTATION or entry.pubkey is None:
            raise ChainError(0, "first-entry",
                             f"entry 0 must be a key-rotation entry introducing the producer key, not {entry.kind}")
        if entry.signer != key_fingerprint(entry.pubkey):
            raise ChainError(0, "key-unknown", "entry 0 must be signed by the key it introduces")

    def _check_first_key(self, entry: Entry) -> None:
        if self._first_key is not None and entry.signer != self._first_key:
            raise ChainError(0, "first-key", f"the producer key is {entry.signer.hex()[:16]}…, "
                                             f"not the expected {self._first_key.hex()[:16]}…")

    def _check_active_key(self, entry: Entry) -> bytes:
        """The active key, which must be the one the entry names as its signer."""
        active = self.active_key
        assert active is not None, "entry 0 is disclosed, so a key is active"
        if entry.signer != key_fingerprint(active):
            raise ChainError(
                entry.seq, "key-unknown",
                f"signed by key {entry.signer.hex()[:16]}…, but the active producer key is "
                f"{key_fingerprint(active).hex()[:16]}… (re-signed with another key, or a key rotation withheld)",
            )
        return active

    def _check_signature(self, entry: Entry, key: bytes) -> None:
        if not mldsa_verify(key, entry.signed_message, entry.signature):
            raise ChainError(entry.seq, "signature",
                             "the ML-DSA-65 signature does not verify (entry edited after signing)")

    def _check_new_key(self, entry: Entry) -> None:
        assert entry.pubkey is not None
        if key_fingerprint(entry.pubkey) in self._fingerprints:
            raise ChainError(entry.seq, "key-reused", "a key rotation must introduce a key not used before")

    def _check_outcome(self, entry: Entry) -> None:
        assert entry.ref is not None
        intent = self._open.get(entry.ref)
        if intent is not None:
            if intent.action != entry.action:
                raise ChainError(entry.seq, "outcome-mismatch",
                                 f"outcome of {entry.action!r} closes intent {entry.ref}, which is {intent.action!r}")
        elif self._shown[entry.ref] == _DISCLOSED:
            raise ChainError(entry.seq, "outcome-ref",
                             f"ref {entry.ref} is not an intent awaiting its outcome (not an intent, or already closed)")

    # ------------------------------------------------------------------ state

    def _apply(self, entry: Entry) -> None:
        if entry.kind == Kind.KEY_ROTATION:
            assert entry.pubkey is not None
            self._fingerprints.add(key_fingerprint(entry.pubkey))
            self._keys.append(entry.pubkey)
        elif entry.kind == Kind.INTENT:
            self._open[entry.seq] = OpenIntent(entry.seq, entry.action, entry.time_ms)
        elif entry.kind == Kind.OUTCOME:
            assert entry.ref is not None
            self._open.pop(entry.ref, None)

    def _advance(self, entry_digest: bytes, shown: int) -> None:
        self._head = chain_hash(self._head, entry_digest)
        self._hashes += self._head
        self._shown.append(shown)

    def check_head(self, seq: int, head: bytes, where: str) -> None:
        """Raise ChainError unless the chain hash after entry ``seq`` is ``head`` (recorded in ``where``)."""
        if seq >= self.length:
            raise ChainError(
                self.length, "truncated",
                f"the chain ends after {self.length} entries, but {where} holds the head after entry {seq}",
            )
        if self.chain_hash_at(seq) != head:
            raise ChainError(seq, "head-mismatch",
                             f"the chain hash after entry {seq} is not the head {head.hex()[:16]}… in {where}")

    def report(self) -> ChainReport:
        disclosed = sum(self._shown)
        return ChainReport(
            length=self.length,
            head=self._head,
            disclosed=disclosed,
            withheld=self.length - disclosed,
            keys=tuple(self._keys),
            open_intents=tuple(self._open.values()),
        )
