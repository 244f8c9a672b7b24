"""Finalized blocks in LevelDB: stored with the log append in one batch, read back by height and hash."""

import pytest

from storage.chain_store import ChainStore
from storage.db import Store
from storage.errors import StoreError
from storage.merkle_log import MerkleLog
from tests.chain_fixtures import make_chain, random_roots


def finalize(store, log, chain_store, block, proof):
    staged = log.stage_append(block.roots)
    with store.batch() as batch:
        staged.write_to(batch)
        chain_store.stage_finalized(batch, block.header, proof)
    log.commit(staged)
    chain_store.commit_tip(block.header)


@pytest.fixture
def chain():
    c = make_chain()
    for count in (3, 1, 5):
        c.add_block(random_roots(count))
    return c


def test_finalized_blocks_read_back_by_height_hash_and_log_index(tmp_path, chain):
    with Store(tmp_path / "db") as store:
        log, chain_store = MerkleLog(store), ChainStore(store)
        for block, proof in zip(chain.blocks, chain.proofs):
            finalize(store, log, chain_store, block, proof)
        assert chain_store.tip_height == 3
        assert chain_store.header_at(2) == chain.blocks[1].header
        assert chain_store.height_of(chain.blocks[2].hash) == 3
        assert chain_store.finalization_at(1) == chain.proofs[0]
        assert chain_store.log_range(3) == (4, 9)
        assert [chain_store.height_of_log_index(i) for i in range(9)] == [1, 1, 1, 2, 3, 3, 3, 3, 3]
        assert chain_store.height_of_log_index(9) is None
        assert log.audit_roots(*chain_store.log_range(3)) == chain.blocks[2].roots


def test_tip_survives_reopening(tmp_path, chain):
    with Store(tmp_path / "db") as store:
        log, chain_store = MerkleLog(store), ChainStore(store)
        finalize(store, log, chain_store, chain.blocks[0], chain.proofs[0])
    with Store(tmp_path / "db") as store:
        reopened = ChainStore(store)
        assert reopened.tip_height == 1
        assert reopened.tip_header == chain.blocks[0].header


def test_a_gap_in_heights_is_refused(tmp_path, chain):
    with Store(tmp_path / "db") as store:
        chain_store = ChainStore(store)
        with pytest.raises(StoreError, match="does not follow"):
            with store.batch() as batch:
                chain_store.stage_finalized(batch, chain.blocks[1].header, chain.proofs[1])


def test_safety_state_and_evidence_persist(tmp_path):
    with Store(tmp_path / "db") as store:
        chain_store = ChainStore(store)
        chain_store.save_safety(b"state-1")
        chain_store.add_evidence(b"e1")
        chain_store.add_evidence(b"e2")
    with Store(tmp_path / "db") as store:
        chain_store = ChainStore(store)
        assert chain_store.load_safety() == b"state-1"
        assert chain_store.evidence() == [b"e1", b"e2"]


def test_a_block_written_but_not_committed_is_not_read_back_yet(tmp_path, chain):
    """A node writes a finalization batch in a worker thread and serves reads meanwhile."""
    with Store(tmp_path / "db") as store:
        log, chain_store = MerkleLog(store), ChainStore(store)
        block, proof = chain.blocks[0], chain.proofs[0]
        staged = log.stage_append(block.roots)
        with store.batch() as batch:
            staged.write_to(batch)
            chain_store.stage_finalized(batch, block.header, proof)
        assert chain_store.header_at(1) is None
        assert chain_store.finalization_at(1) is None
        assert chain_store.height_of(block.hash) is None
        assert chain_store.log_range(1) is None
        log.commit(staged)
        chain_store.commit_tip(block.header)
        assert chain_store.header_at(1) == block.header
        assert chain_store.height_of(block.hash) == 1
