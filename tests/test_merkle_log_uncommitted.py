"""While a finalization batch is written but not yet committed to the in-memory log (the node
writes it in a worker thread and keeps answering), its roots read as not logged yet, never as a
corrupt store (found by the catch-up bench: gossip asked about such a root and the node died)."""

from __future__ import annotations

import os

import pytest

from storage.db import Store
from storage.errors import StoreError
from storage.merkle_log import MerkleLog


@pytest.fixture
def store(tmp_path):
    with Store(tmp_path / "db") as s:
        yield s


def test_a_root_whose_batch_is_written_but_not_committed_is_not_logged_yet(store):
    log = MerkleLog(store)
    log.append(os.urandom(32 * 5))
    roots = os.urandom(32 * 3)
    staged = log.stage_append(roots)
    with store.batch() as batch:
        staged.write_to(batch)
    assert log.index_of(roots[32:64]) is None
    log.commit(staged)
    assert log.index_of(roots[32:64]) == 6


def test_an_index_beyond_the_log_is_still_reported_as_corruption(store):
    """The root index only ever lists committed entries: a candidate past the size means a
    damaged index, which the log reports instead of reading past its end."""
    log = MerkleLog(store)
    log.append(os.urandom(32 * 2))
    log._index.candidates = lambda root: [99]
    with pytest.raises(StoreError, match="corrupt"):
        log.index_of(os.urandom(32))
    log.close()
