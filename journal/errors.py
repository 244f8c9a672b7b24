"""Exception types of the journal.

Every verification failure names the first bad entry (its sequence number) and a
short, stable reason code, so that a tool (or the browser verifier, which mirrors
these codes) can say which check failed without parsing English.
"""

from __future__ import annotations

from proof.errors import PantheonError


class JournalError(PantheonError):
    """Base class of the journal's own errors."""


class ChainError(JournalError):
    """An entry that breaks the chain: bad signature, link, sequence, key, record.

    ``seq`` is the position of the first bad entry in the chain (for a damaged record,
    the position the record would have had); ``reason`` is one of the codes listed in
    docs/journal-format.md section 7.
    """

    def __init__(self, seq: int, reason: str, detail: str) -> None:
        super().__init__(f"entry {seq}: {reason}: {detail}")
        self.seq = seq
        self.reason = reason
        self.detail = detail


class TornTailError(JournalError):
    """The journal file ends in an incomplete record (an interrupted append).

    Reading stops before it; writing refuses until ``pantheon journal repair`` cut it off.
    """


class JournalFileError(JournalError):
    """A journal directory or file that is missing, locked, or not a journal."""


class JournalKeyError(JournalError):
    """A producer key file that is missing, malformed or readable by others."""


class PackageError(JournalError):
    """An audit package that fails a check outside the entry chain.

    ``reason`` is one of the package codes of docs/journal-format.md section 9.
    """

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


class SubmitError(JournalError):
    """A node that refused or could not take a head, or served no usable proof."""


class EntryError(JournalError, ValueError):
    """Entry fields that break a structural rule (size, type, which kinds carry which fields)."""
