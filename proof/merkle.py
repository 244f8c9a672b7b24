"""RFC 9162 Merkle tree hashing and proof verification.

Leaf hash = SHA-256(0x00 || data); interior node = SHA-256(0x01 || left || right),
exactly as RFC 9162 section 2.1.1, so that any RFC 6962/9162 verifier accepts
Pantheon's proofs and Pantheon accepts theirs.

Verification follows RFC 9162 sections 2.1.3.2 (inclusion) and 2.1.4.2
(consistency) and accepts exactly the proofs that transparency-dev/merkle
``proof/verify.go`` accepts, with one deliberate difference: every hash handed in
(leaf hash, roots, path nodes) must be 32 bytes, also where transparency-dev never
looks at it (equal sizes, where it only compares the two roots as byte strings).
``tests/test_merkle_verify.py`` checks this against their published vectors.

Theory of operation. A proof for leaf ``index`` in a tree of ``size`` leaves is
the list of sibling hashes on the way up, lowest first. It splits where the paths
to ``index`` and to the last leaf ``size - 1`` part: below that point ("inner"
nodes) a sibling is on the left or the right according to one bit of ``index``;
above it ("border" nodes) the path runs along the tree's right edge, where every
sibling is a left sibling. The exact number of nodes is therefore known from
``index`` and ``size`` alone, and a path of any other length is refused before a
single hash is computed. A consistency proof from ``size1`` to ``size2`` is the
inclusion path of the last leaf of the old tree, started at the largest perfect
subtree that ends there; the old root is rebuilt from the left siblings only, the
new root from all of them.

Empty trees. transparency-dev refuses every consistency proof from ``size1 == 0``
(even ``0 -> 0``): an empty tree commits to nothing, so "consistent with the empty
tree" carries no information, and RFC 9162 defines PROOF(m, D[n]) only for a
non-empty first tree (m > 0). We do the same, so the two verifiers agree.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

from proof.checks import enforced
from proof.errors import ProofError

LEAF_PREFIX = b"\x00"
NODE_PREFIX = b"\x01"

HASH_SIZE = 32
# RFC 9162 tree sizes and leaf indices are uint64 on the wire.
TREE_SIZE_MAX = 2**64 - 1
# Hex characters of a hash shown in an error message: enough to tell two apart.
HEX_PREFIX_CHARS = 16

_EMPTY_ROOT = hashlib.sha256(b"").digest()


class RootMismatchError(ProofError):
    """The proof is well formed but leads to a different root than the one given.

    ``which`` names the root that did not match ("root", "root1" or "root2");
    ``calculated`` and ``expected`` hold the full hashes for whoever logs them.
    """

    def __init__(self, which: str, calculated: bytes, expected: bytes) -> None:
        self.which = which
        self.calculated = calculated
        self.expected = expected
        super().__init__(
            f"{which} mismatch: proof leads to {calculated.hex()[:HEX_PREFIX_CHARS]}..., "
            f"want {expected.hex()[:HEX_PREFIX_CHARS]}..."
        )


def leaf_hash(data: bytes) -> bytes:
    """RFC 9162 hash of one log entry (for Pantheon: one 32-byte audit root)."""
    return hashlib.sha256(LEAF_PREFIX + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """RFC 9162 hash of an interior node from its two children's hashes."""
    return hashlib.sha256(NODE_PREFIX + left + right).digest()


def empty_root() -> bytes:
    """RFC 9162 MTH({}) = SHA-256 of the empty string: the root of a log with no entries."""
    return _EMPTY_ROOT


def verify_inclusion(
    leaf_hash: bytes, index: int, size: int, path: Sequence[bytes], root: bytes
) -> None:
    """Check that ``leaf_hash`` is entry ``index`` of the tree of ``size`` leaves with ``root``.

    Requires 0 <= index < size <= 2**64 - 1 and 32-byte hashes. Returns None when
    the proof holds; raises ProofError (RootMismatchError for a wrong root) naming
    the failed check otherwise.
    """
    _check_hash(root, "root")
    calculated = root_from_inclusion(leaf_hash, index, size, path)
    if calculated != root and enforced("inclusion.root"):
        raise RootMismatchError("root", calculated, root)


def root_from_inclusion(leaf_hash: bytes, index: int, size: int, path: Sequence[bytes]) -> bytes:
    """The root that ``path`` proves for ``leaf_hash`` at ``index`` in a tree of ``size`` leaves.

    Requires 0 <= index < size <= 2**64 - 1. The result is only as good as the
    root it is compared with: any leaf has *some* root for any well-formed path.
    """
    _check_uint(index, "index")
    _check_uint(size, "size")
    if index >= size and enforced("inclusion.index"):
        raise ProofError(f"index {index} is beyond the tree: it must be below size {size}")
    _check_hash(leaf_hash, "leaf hash")
    _check_path_type(path)
    inner, border = _decompose_inclusion(index, size)
    nodes = _check_path(path, inner + border)
    seed = _chain_inner(leaf_hash, nodes[:inner], index)
    return _chain_border_right(seed, nodes[inner:])


def verify_consistency(
    size1: int, size2: int, path: Sequence[bytes], root1: bytes, root2: bytes
) -> None:
    """Check that the tree of ``size2`` leaves with ``root2`` extends the one of ``size1`` with ``root1``.

    Requires 0 < size1 <= size2 <= 2**64 - 1 and 32-byte hashes. For size1 == size2
    the path must be empty and the roots equal. Returns None when the proof holds;
    raises ProofError (RootMismatchError for a wrong root) otherwise.
    """
    _check_hash(root2, "root2")
    calculated = root_from_consistency(size1, size2, path, root1)
    if calculated != root2:
        raise RootMismatchError("root2", calculated, root2)


def root_from_consistency(size1: int, size2: int, path: Sequence[bytes], root1: bytes) -> bytes:
    """The root of the tree of ``size2`` leaves that ``path`` proves extends ``root1`` at ``size1``.

    Requires 0 < size1 <= size2 <= 2**64 - 1. Raises RootMismatchError("root1")
    when the path does not rebuild ``root1``, so a returned root is tied to it.
    """
    _check_uint(size1, "size1")
    _check_uint(size2, "size2")
    _check_hash(root1, "root1")
    _check_path_type(path)
    if size1 > size2:
        raise ProofError(f"size1 {size1} is larger than size2 {size2}: a log never shrinks")
    if size1 == 0:
        raise ProofError("size1 is 0: consistency with an empty tree proves nothing")
    if size1 == size2:
        if len(path) != 0:
            raise ProofError(f"size1 == size2 == {size1} but the path has {len(path)} nodes, want none")
        return root1
    if len(path) == 0:
        raise ProofError(f"empty consistency path for sizes {size1} -> {size2}")

    inner, border = _decompose_inclusion(size1 - 1, size2)
    # Height of the largest perfect subtree ending at the last leaf of the old tree:
    # the proof starts at its root.
    shift = _trailing_zeros(size1)
    inner -= shift
    mask = (size1 - 1) >> shift
    if size1 == 1 << shift:
        # The old tree is perfect: its root is that subtree, and the proof omits it.
        nodes = _check_path(path, inner + border)
        seed = root1
    else:
        nodes = _check_path(path, 1 + inner + border)
        seed, nodes = nodes[0], nodes[1:]
        calculated1 = _chain_inner_right(seed, nodes[:inner], mask)
        calculated1 = _chain_border_right(calculated1, nodes[inner:])
        if calculated1 != root1:
            raise RootMismatchError("root1", calculated1, root1)
    calculated2 = _chain_inner(seed, nodes[:inner], mask)
    return _chain_border_right(calculated2, nodes[inner:])


def _decompose_inclusion(index: int, size: int) -> tuple[int, int]:
    """Lengths of the inner and border parts of the inclusion path of ``index`` in ``size``.

    Inner: levels below the node where the paths to ``index`` and ``size - 1`` part.
    Border: one left sibling per set bit of ``index`` above that node.
    """
    inner = (index ^ (size - 1)).bit_length()
    border = (index >> inner).bit_count()
    return inner, border


def _trailing_zeros(value: int) -> int:
    return (value & -value).bit_length() - 1


def _chain_inner(seed: bytes, nodes: Sequence[bytes], index: int) -> bytes:
    """Hash up from ``seed`` at position ``index``; bit i of ``index`` says which side node i is on."""
    for level, node in enumerate(nodes):
        if (index >> level) & 1:
            seed = node_hash(node, seed)
        else:
            seed = node_hash(seed, node)
    return seed


def _chain_inner_right(seed: bytes, nodes: Sequence[bytes], index: int) -> bytes:
    """Like _chain_inner, but only the left siblings: the same subtree as it was before later leaves."""
    for level, node in enumerate(nodes):
        if (index >> level) & 1:
            seed = node_hash(node, seed)
    return seed


def _chain_border_right(seed: bytes, nodes: Sequence[bytes]) -> bytes:
    """Hash up the tree's right edge, where every sibling is on the left."""
    for node in nodes:
        seed = node_hash(node, seed)
    return seed


def _check_uint(value: object, what: str) -> None:
    if type(value) is not int:
        raise ProofError(f"{what} must be an int, got {type(value).__name__}")
    if not 0 <= value <= TREE_SIZE_MAX:
        raise ProofError(f"{what} {value} is outside 0..2**64-1")


def _check_hash(value: object, what: str) -> None:
    if not isinstance(value, bytes):
        raise ProofError(f"{what} must be bytes, got {type(value).__name__}")
    if len(value) != HASH_SIZE:
        raise ProofError(f"{what} is {len(value)} bytes, want {HASH_SIZE}")


def _check_path_type(path: object) -> None:
    if not isinstance(path, (list, tuple)):
        raise ProofError(f"path must be a list or tuple of hashes, got {type(path).__name__}")


def _check_path(path: Sequence[bytes], want_nodes: int) -> Sequence[bytes]:
    """Refuse a path of the wrong length or node size before hashing any of it."""
    if len(path) != want_nodes and enforced("inclusion.path-length"):
        raise ProofError(f"wrong path length: {len(path)} nodes, want {want_nodes}")
    for position, node in enumerate(path):
        _check_hash(node, f"path node {position}")
    return path
