"""The journal on disk, and the one way to add to it: sign, append, fsync, then return.

A journal is a directory::

    journal.pjl        the entries (journal/records.py framing), append-only
    producer.key       the active producer key (mode 0600)
    anchors/           receipts and proof bundles of submitted heads (journal/anchors.py)
    genesis.cbor       the chain's genesis, once a bundle has been fetched

*Sign before execute*: :meth:`Journal.action` appends the signed ``intent`` entry and
fsyncs it before the caller's block runs, then records an ``outcome`` (with the error,
if the block raised). An intent whose process died has no outcome; it stays in the
journal and every report lists it as "started, no recorded outcome".

Opening re-verifies the whole file (signatures and links), so a writer never extends a
journal that was tampered with; a torn tail (an interrupted append) makes opening for
writing refuse until :func:`repair` cut it off, which is never done implicitly. One
writer at a time: the file is locked (``flock``) while a :class:`Journal` is open.
"""

from __future__ import annotations

import fcntl
import os
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

from proof.errors import DecodeError
from proof.mldsa import SigningKey

from journal.entry import (
    META_TEXT_SIZE_MAX,
    OUTCOME_ERROR,
    OUTCOME_OK,
    ZERO_HASH,
    Entry,
    Kind,
    MetaValue,
    Signer,
    is_control,
    key_fingerprint,
    sign_entry,
)
from journal.errors import ChainError, JournalError, JournalFileError, JournalKeyError, TornTailError
from journal.keyfile import read_key_file, write_key_file
from journal.records import MAGIC, Scan, TornTail, frame, scan
from journal.verify import ChainReport, ChainWalker

JOURNAL_FILE = "journal.pjl"
KEY_FILE = "producer.key"
NEXT_KEY_FILE = "producer.key.next"
JOURNAL_FILE_BYTES_MAX = 1 << 40
INIT_ACTION = "journal-init"
ROTATE_ACTION = "key-rotation"
RESERVED_OUTCOME_META = ("status", "error")


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def _fsync_directory(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@dataclass(frozen=True)
class Loaded:
    """A journal file read and verified: its entries, the walk's report, and a torn tail if any."""

    entries: tuple[Entry, ...]
    walker: ChainWalker
    torn: TornTail | None
    end: int

    @property
    def report(self) -> ChainReport:
        return self.walker.report()


def load(directory: Path, *, first_key: bytes | None = None) -> Loaded:
    """Read and verify the journal in ``directory``; ChainError names the first bad entry.

    A torn tail is returned, not raised: everything before it is complete and checked.
    """
    path = Path(directory) / JOURNAL_FILE
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise JournalFileError(f"no journal in {directory} (no {JOURNAL_FILE}); run `pantheon journal init`") from None
    return _verified(scan(data), first_key)


def _verified(scanned: Scan, first_key: bytes | None) -> Loaded:
    if not scanned.payloads:
        raise ChainError(0, "first-entry", "the journal holds no complete entry (entry 0 introduces the producer key)")
    walker = ChainWalker(first_key=first_key)
    entries = []
    for position, payload in enumerate(scanned.payloads):
        try:
            entry = Entry.decode(payload)
        except DecodeError as exc:
            raise ChainError(position, "decode", str(exc)) from None
        walker.add_entry(entry)
        entries.append(entry)
    return Loaded(tuple(entries), walker, scanned.torn, scanned.end)


def repair(directory: Path) -> TornTail | None:
    """Cut off a torn tail (and only that); return what was removed, None if nothing was torn.

    Damage before the end is a ChainError and is left alone: it is evidence, not an
    interrupted append.
    """
    path = Path(directory) / JOURNAL_FILE
    with _locked(path) as fd:
        scanned = scan(_read_fd(fd))
        if scanned.torn is None:
            return None
        os.ftruncate(fd, scanned.end)
        os.fsync(fd)
    return scanned.torn


def _read_fd(fd: int) -> bytes:
    size = os.fstat(fd).st_size
    if size > JOURNAL_FILE_BYTES_MAX:
        raise JournalFileError(f"journal file of {size} bytes exceeds {JOURNAL_FILE_BYTES_MAX}")
    return os.pread(fd, size, 0)


@contextmanager
def _locked(path: Path) -> Iterator[int]:
    try:
        fd = os.open(path, os.O_RDWR | os.O_APPEND)
    except FileNotFoundError:
        raise JournalFileError(f"no journal file {path}; run `pantheon journal init`") from None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise JournalFileError(f"{path} is open for writing by another process") from None
        yield fd
    finally:
        os.close(fd)


class Journal:
    """An open, verified, locked journal: append entries, run actions, rotate the key."""

    def __init__(self, directory: Path, fd: int, loaded: Loaded, key: Signer, clock_ms: Callable[[], int],
                 lock: ExitStack) -> None:
        self.directory = directory
        self._fd = fd
        self._lock = lock
        self._closed = False
        self._entries = list(loaded.entries)
        self._walker = loaded.walker
        self._key = key
        self._clock_ms = clock_ms
        if key_fingerprint(key.public_key) != key_fingerprint(self._walker.active_key or b""):
            raise JournalFileError(
                f"{directory / KEY_FILE} is not the journal's active producer key "
                f"({key_fingerprint(self._walker.active_key or b'').hex()[:16]}…)"
            )

    # ------------------------------------------------------------------ opening

    @classmethod
    def create(
        cls,
        directory: Path,
        *,
        key: SigningKey | None = None,
        clock_ms: Callable[[], int] = now_ms,
        meta: Mapping[str, MetaValue] | None = None,
    ) -> Journal:
        """A new journal whose entry 0 introduces ``key`` (a fresh one by default)."""
        directory = Path(directory)
        path = directory / JOURNAL_FILE
        if path.exists():
            raise JournalFileError(f"{directory} already holds a journal")
        if (directory / KEY_FILE).exists():
            raise JournalFileError(f"{directory} holds a producer key but no journal (an interrupted init?); "
                                   f"remove {directory / KEY_FILE} to start over")
        directory.mkdir(parents=True, exist_ok=True)
        key = key or SigningKey.generate()
        first = sign_entry(key, seq=0, prev=ZERO_HASH, time_ms=clock_ms(), kind=Kind.KEY_ROTATION,
                           action=INIT_ACTION, inputs={}, meta=meta, pubkey=key.public_key)
        write_key_file(directory / KEY_FILE, key)
        # Written whole under a temporary name, then renamed: a journal file always holds entry 0.
        tmp = directory / (JOURNAL_FILE + ".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        try:
            _write_all(fd, MAGIC + frame(first.encode()))
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
        _fsync_directory(directory)
        return cls.open(directory, clock_ms=clock_ms)

    @classmethod
    def open(cls, directory: Path, *, clock_ms: Callable[[], int] = now_ms) -> Journal:
        """Open for appending: verify everything, refuse a torn tail, take the lock."""
        directory = Path(directory)
        path = directory / JOURNAL_FILE
        lock = ExitStack()
        fd = lock.enter_context(_locked(path))
        try:
            loaded = _verified(scan(_read_fd(fd)), None)
            if loaded.torn is not None:
                raise TornTailError(f"{path}: {loaded.torn.describe()}")
            key = _active_key_file(directory, loaded.walker.active_key)
            return cls(directory, fd, loaded, key, clock_ms, lock)
        except BaseException:
            lock.close()
            raise

    def close(self) -> None:
        self._closed = True
        self._lock.close()

    def __enter__(self) -> Journal:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.close()

    # ------------------------------------------------------------------ state

    @property
    def entries(self) -> tuple[Entry, ...]:
        return tuple(self._entries)

    @property
    def size(self) -> int:
        return len(self._entries)

    @property
    def head(self) -> bytes:
        """The chain hash of the last entry: the audit root to submit."""
        return self._walker.head

    @property
    def walker(self) -> ChainWalker:
        return self._walker

    def report(self) -> ChainReport:
        return self._walker.report()

    # ------------------------------------------------------------------ writing

    def append(
        self,
        kind: Kind,
        action: str,
        inputs: Mapping[str, bytes] | None = None,
        *,
        outputs: Mapping[str, bytes] | None = None,
        meta: Mapping[str, MetaValue] | None = None,
        ref: int | None = None,
        pubkey: bytes | None = None,
    ) -> Entry:
        """Sign the next entry, append it and fsync; return only once it is durable."""
        if self._closed:
            raise JournalFileError("the journal is closed")
        time_ms = max(self._clock_ms(), self._entries[-1].time_ms)
        entry = sign_entry(self._key, seq=self.size, prev=self.head, time_ms=time_ms, kind=kind, action=action,
                           inputs=inputs or {}, meta=meta, outputs=outputs, ref=ref, pubkey=pubkey)
        self._walker.add_entry(entry)
        try:
            _write_all(self._fd, frame(entry.encode()))
            os.fsync(self._fd)
        except OSError as exc:
            # The file may now end in part of this record: a torn tail for the next open to report.
            self.close()
            raise JournalFileError(f"appending entry {entry.seq} failed ({exc.strerror}); the journal is closed") from exc
        self._entries.append(entry)
        return entry

    def note(self, action: str, inputs: Mapping[str, bytes] | None = None, *,
             outputs: Mapping[str, bytes] | None = None, meta: Mapping[str, MetaValue] | None = None) -> Entry:
        return self.append(Kind.NOTE, action, inputs, outputs=outputs, meta=meta)

    @contextmanager
    def action(
        self, name: str, inputs: Mapping[str, bytes] | None = None, *, meta: Mapping[str, MetaValue] | None = None
    ) -> Iterator[Action]:
        """Journal the intent (signed, fsynced), run the block, journal its outcome.

        The block may call ``act.outcome(outputs=...)``; if it does not, a plain ``ok``
        outcome is recorded when it ends; if it raises, an ``error`` outcome naming the
        exception is recorded and the exception propagates.
        """
        intent = self.append(Kind.INTENT, name, inputs, meta=meta)
        act = Action(self, intent)
        try:
            yield act
        except BaseException as exc:
            if act.outcome_entry is None:
                act.record(OUTCOME_ERROR, None, {}, error=_error_text(exc))
            raise
        if act.outcome_entry is None:
            act.outcome()

    def rotate_key(self, new_key: SigningKey | None = None) -> Entry:
        """Introduce a new producer key, signed by the current one; the new key signs from then on.

        Crash-safe order: the new key file is written (``producer.key.next``) before the
        rotation entry, and renamed over ``producer.key`` after it; :meth:`open` finishes
        a rename a crash interrupted.
        """
        new_key = new_key or SigningKey.generate()
        next_path = self.directory / NEXT_KEY_FILE
        next_path.unlink(missing_ok=True)
        write_key_file(next_path, new_key)
        entry = self.append(Kind.KEY_ROTATION, ROTATE_ACTION, {}, pubkey=new_key.public_key)
        os.replace(next_path, self.directory / KEY_FILE)
        _fsync_directory(self.directory)
        self._key = new_key
        return entry


class Action:
    """The handle of one running action: its intent, and at most one outcome."""

    def __init__(self, journal: Journal, intent: Entry) -> None:
        self._journal = journal
        self.intent = intent
        self.outcome_entry: Entry | None = None

    def outcome(self, outputs: Mapping[str, bytes] | None = None, *,
                meta: Mapping[str, MetaValue] | None = None) -> Entry:
        """Record that the action succeeded, with the digests of what it produced."""
        return self.record(OUTCOME_OK, outputs, meta or {})

    def record(self, status: str, outputs: Mapping[str, bytes] | None, meta: Mapping[str, MetaValue],
               *, error: str | None = None) -> Entry:
        if self.outcome_entry is not None:
            raise JournalError(f"action {self.intent.action!r} (intent {self.intent.seq}) already has its outcome")
        reserved = [key for key in RESERVED_OUTCOME_META if key in meta]
        if reserved:
            raise JournalError(f"meta keys {reserved} are set by the journal itself in an outcome")
        full: dict[str, MetaValue] = {**meta, "status": status}
        if error is not None:
            full["error"] = error
        self.outcome_entry = self._journal.append(
            Kind.OUTCOME, self.intent.action, {}, outputs=outputs or None, meta=full, ref=self.intent.seq
        )
        return self.outcome_entry


def _error_text(exc: BaseException) -> str:
    """The exception as one line of entry text: control characters (newlines) become spaces."""
    line = "".join(" " if is_control(char) else char for char in f"{type(exc).__name__}: {exc}")
    return line.encode("utf-8", "replace")[:META_TEXT_SIZE_MAX].decode("utf-8", "ignore")


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]


def _active_key_file(directory: Path, active: bytes | None) -> SigningKey:
    """The key file matching the journal's active key, finishing an interrupted rotation."""
    assert active is not None
    wanted = key_fingerprint(active)
    current, following = directory / KEY_FILE, directory / NEXT_KEY_FILE
    if following.exists():
        try:
            candidate: SigningKey | None = read_key_file(following)
        except JournalKeyError:
            # Cut short by a crash while being written: the rotation entry, written only
            # after this file was complete, cannot exist, so this key never became active.
            candidate = None
        if candidate is not None and key_fingerprint(candidate.public_key) == wanted:
            os.replace(following, current)
            _fsync_directory(directory)
            return candidate
        following.unlink()
    return read_key_file(current)
