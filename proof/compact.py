"""Compact range: the right edge of an RFC 9162 Merkle tree.

A log of ``size`` leaves splits, left to right, into perfect subtrees of strictly
decreasing size, one per set bit of ``size`` (size 7 = 4 + 2 + 1). Their roots are
all that is needed to append further leaves and to compute the tree's root, so a
node holds at most 64 hashes instead of the whole tree. This is how a validator
computes the log root of a block it has not stored yet.

Appending a leaf is binary increment: each trailing 1 bit of ``size`` is a subtree
of the same height as the new one immediately to its left, and the two merge.
The root is RFC 9162 MTH: the hashes folded right to left, because MTH splits a
tree at the largest power of two below its size, which is exactly the leftmost
subtree, recursively.

``extend_roots`` is the consensus hot path (thousands of audit roots per block):
it walks the raw bytes in one loop with every name bound locally, and creates no
Python object per root beyond the hashes themselves.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence

from proof.errors import PantheonError
from proof.merkle import HASH_SIZE, LEAF_PREFIX, NODE_PREFIX, TREE_SIZE_MAX, empty_root

class CompactRangeError(PantheonError, ValueError):
    """Hashes or a size that cannot describe the right edge of a tree, or a tree that would overflow."""


class CompactRange:
    """The perfect-subtree hashes covering leaves [0, size), largest subtree first."""

    __slots__ = ("_size", "_hashes")

    def __init__(self) -> None:
        self._size = 0
        self._hashes: list[bytes] = []

    @classmethod
    def from_hashes(cls, size: int, hashes: Sequence[bytes]) -> CompactRange:
        """Rebuild a range from stored or received hashes, refusing any that cannot fit ``size``."""
        if type(size) is not int or not 0 <= size <= TREE_SIZE_MAX:
            raise CompactRangeError(f"size must be an int in 0..2**64-1, got {size!r}")
        if not isinstance(hashes, (list, tuple)):
            raise CompactRangeError(f"hashes must be a list or tuple, got {type(hashes).__name__}")
        want = size.bit_count()
        if len(hashes) != want:
            raise CompactRangeError(
                f"a tree of size {size} has {want} perfect subtrees, got {len(hashes)} hashes"
            )
        for position, value in enumerate(hashes):
            _check_hash(value, f"hash {position}")
        compact = cls()
        compact._size = size
        compact._hashes = list(hashes)
        return compact

    @property
    def size(self) -> int:
        """Number of leaves covered."""
        return self._size

    @property
    def hashes(self) -> tuple[bytes, ...]:
        """Roots of the perfect subtrees, largest (leftmost) first."""
        return tuple(self._hashes)

    def copy(self) -> CompactRange:
        """An independent range, for a tentative block that may be thrown away."""
        compact = CompactRange()
        compact._size = self._size
        compact._hashes = list(self._hashes)
        return compact

    def append(self, leaf_hash: bytes) -> None:
        """Add one leaf by its RFC 9162 leaf hash."""
        _check_hash(leaf_hash, "leaf hash")
        self._check_room(1)
        self._push_leaf_hashes((leaf_hash,))

    def extend(self, leaf_hashes: Iterable[bytes]) -> None:
        """Add leaves by their RFC 9162 leaf hashes, all checked before any is added."""
        checked = tuple(leaf_hashes)
        for position, value in enumerate(checked):
            _check_hash(value, f"leaf hash {position}")
        self._check_room(len(checked))
        self._push_leaf_hashes(checked)

    def extend_roots(self, data: bytes | bytearray | memoryview, *, keep_level: int | None = None) -> list[bytes]:
        """Add audit roots given as ``n * 32`` concatenated bytes: each leaf is SHA-256(0x00 || root).

        With ``keep_level``, return the hash of every perfect subtree of at least
        ``2**keep_level`` leaves these roots complete, in the order completed (the carries of
        the binary increment): exactly the node records a store of such subtrees writes for
        them (storage.merkle_log), so an append can take them instead of hashing again.
        """
        if not isinstance(data, (bytes, bytearray, memoryview)):
            raise CompactRangeError(f"roots must be bytes, got {type(data).__name__}")
        total = len(data)
        if total % HASH_SIZE:
            raise CompactRangeError(
                f"roots are {total} bytes, not a multiple of {HASH_SIZE} (one audit root each)"
            )
        self._check_room(total // HASH_SIZE)
        if keep_level is not None and (type(keep_level) is not int or not 1 <= keep_level <= 63):
            raise CompactRangeError(f"keep_level must be an int in 1..63, got {keep_level!r}")
        kept: list[bytes] = []
        keep = kept.append
        low = -1 if keep_level is None else (1 << keep_level) - 1
        sha256 = hashlib.sha256
        leaf_prefix = LEAF_PREFIX
        node_prefix = NODE_PREFIX
        hashes = self._hashes
        pop = hashes.pop
        push = hashes.append
        size = self._size
        for start in range(0, total, HASH_SIZE):
            digest = sha256(leaf_prefix + data[start : start + HASH_SIZE]).digest()
            carry = size
            if carry & low != low:
                while carry & 1:
                    digest = sha256(node_prefix + pop() + digest).digest()
                    carry >>= 1
            else:
                # This leaf completes a subtree of 2**keep_level leaves, and each carry past it a larger one.
                for _ in range(keep_level):  # type: ignore[arg-type]
                    digest = sha256(node_prefix + pop() + digest).digest()
                carry >>= keep_level  # type: ignore[operator]
                keep(digest)
                while carry & 1:
                    digest = sha256(node_prefix + pop() + digest).digest()
                    carry >>= 1
                    keep(digest)
            push(digest)
            size += 1
        self._size = size
        return kept

    def root(self) -> bytes:
        """RFC 9162 MTH of leaves [0, size); the empty tree's root is SHA-256 of nothing."""
        hashes = self._hashes
        if not hashes:
            return empty_root()
        sha256 = hashlib.sha256
        node_prefix = NODE_PREFIX
        digest = hashes[-1]
        for position in range(len(hashes) - 2, -1, -1):
            digest = sha256(node_prefix + hashes[position] + digest).digest()
        return digest

    def _push_leaf_hashes(self, leaf_hashes: Sequence[bytes]) -> None:
        sha256 = hashlib.sha256
        node_prefix = NODE_PREFIX
        hashes = self._hashes
        pop = hashes.pop
        push = hashes.append
        size = self._size
        for digest in leaf_hashes:
            carry = size
            while carry & 1:
                digest = sha256(node_prefix + pop() + digest).digest()
                carry >>= 1
            push(digest)
            size += 1
        self._size = size

    def _check_room(self, leaves: int) -> None:
        if self._size + leaves > TREE_SIZE_MAX:
            raise CompactRangeError(
                f"adding {leaves} leaves to a tree of {self._size} would pass 2**64-1 leaves"
            )

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, CompactRange):
            return NotImplemented
        return self._size == other._size and self._hashes == other._hashes

    __hash__ = None  # type: ignore[assignment]  # mutable: never a dict key

    def __repr__(self) -> str:
        return f"CompactRange(size={self._size}, hashes={len(self._hashes)})"


def _check_hash(value: object, what: str) -> None:
    if not isinstance(value, bytes):
        raise CompactRangeError(f"{what} must be bytes, got {type(value).__name__}")
    if len(value) != HASH_SIZE:
        raise CompactRangeError(f"{what} is {len(value)} bytes, want {HASH_SIZE}")
