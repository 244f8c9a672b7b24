"""Exception types of the storage layer.

Both name the store's directory or the log position involved, so that an operator
can tell a configuration mistake (two nodes on one data directory) from damage
(a corrupt or truncated store) from a caller's bug (a proof for a size the log
never had).
"""

from __future__ import annotations

from proof.errors import PantheonError


class StoreError(PantheonError):
    """The LevelDB store cannot be opened or read: locked, corrupt, or missing records."""


class StoreWriteError(StoreError):
    """A write to the store failed (the disk is full, or an I/O error): none of it was stored.

    LevelDB refuses every later write once one has failed, so the node answers writes
    with this error and stops at the next one it must make (a finalized block); after
    the operator frees space, a restart resumes from the last complete write.
    """


class LogError(PantheonError, ValueError):
    """A Merkle log request that cannot be served: an index, size or staged append out of place."""
