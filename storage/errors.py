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


class LogError(PantheonError, ValueError):
    """A Merkle log request that cannot be served: an index, size or staged append out of place."""
