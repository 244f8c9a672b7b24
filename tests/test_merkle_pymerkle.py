"""Cross-check with an independent RFC 9162 implementation: pymerkle 7 (a dev dependency).

For the same leaves, pymerkle's tree root must equal our stored log's root at
every size, and its inclusion proof (less the leaf hash it puts first) must be
exactly our RFC 9162 PATH. Its consistency proofs have a layout of their own (the
path descends to single leaves and carries the old tree's perfect subtrees, flagged
by ``subset``), so they are not compared node by node: pymerkle's verifier must
accept them against our roots, and ours must accept ours.
"""

import hashlib

import pymerkle
import pytest

from proof.merkle import leaf_hash, verify_consistency, verify_inclusion
from storage.db import Store
from storage.merkle_log import MerkleLog

SIZES = (1, 2, 3, 4, 5, 7, 8, 9, 13, 16, 17, 31, 32, 33, 100, 255, 256, 257, 1000, 1025)


def audit_root(n: int) -> bytes:
    return hashlib.sha256(b"pymerkle cross-check %d" % n).digest()


@pytest.fixture(scope="module")
def both(tmp_path_factory):
    """Our log and pymerkle's in-memory tree holding the same max(SIZES) roots."""
    roots = [audit_root(n) for n in range(max(SIZES))]
    store = Store(tmp_path_factory.mktemp("pymerkle") / "db")
    log = MerkleLog(store)
    log.append(roots)
    tree = pymerkle.InmemoryTree()
    tree.append_entries(roots)
    yield log, tree, roots
    store.close()


@pytest.mark.parametrize("size", SIZES)
def test_root_equals_pymerkle(both, size):
    log, tree, _ = both
    assert log.root(size) == tree.get_root(size)


def test_root_equals_pymerkle_sqlite_tree(tmp_path):
    """The persistent SqliteTree too, grown batch by batch like a log of blocks."""
    roots = [audit_root(n) for n in range(300)]
    with Store(tmp_path / "db") as store:
        log = MerkleLog(store)
        with pymerkle.SqliteTree(str(tmp_path / "merkle.db")) as tree:
            for start in range(0, len(roots), 37):
                log.append(roots[start : start + 37])
                tree.append_entries(roots[start : start + 37])
                assert log.root() == tree.get_root()


@pytest.mark.parametrize("size", (1, 2, 5, 8, 13, 100, 257, 1025))
def test_inclusion_proof_equals_pymerkle(both, size):
    log, tree, roots = both
    for index in range(0, size, max(1, size // 40)):
        ours = log.inclusion_proof(index, size)
        theirs = tree.prove_inclusion(index + 1, size)  # pymerkle counts from one
        assert theirs.path[0] == leaf_hash(roots[index])
        assert theirs.path[1:] == ours
        verify_inclusion(theirs.path[0], index, size, theirs.path[1:], log.root(size))


@pytest.mark.parametrize("size2", (2, 5, 8, 13, 100, 257, 1025))
def test_consistency_proofs_agree_on_roots(both, size2):
    log, tree, _ = both
    for size1 in range(1, size2 + 1, max(1, size2 // 30)):
        theirs = tree.prove_consistency(size1, size2)
        pymerkle.verify_consistency(log.root(size1), log.root(size2), theirs, prior_size=size1, later_size=size2)
        verify_consistency(size1, size2, log.consistency_proof(size1, size2), log.root(size1), log.root(size2))
