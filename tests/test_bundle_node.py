"""node/bundles.py: what a node serves, read from real storage (log, chain store, anchor store)."""

import pytest

from node import bundles
from proof import note
from proof.bundle import (
    AnchorRecord,
    Bundle,
    CertifiedBlock,
    ConsistencyRecord,
    floor_time_ms,
    verify_anchor,
    verify_bundle,
)
from proof.hashing import sha256d
from proof.spv import parse_transaction
from tests.bundle_fixtures import stored_node


@pytest.fixture
def node(tmp_path):
    n = stored_node(tmp_path)
    yield n
    n.close()


def test_a_root_without_anchor_gets_a_pending_bundle_at_the_tip(node):
    data = bundles.proof_bundle(node, node.roots[2])
    claim = verify_bundle(data, genesis=node.genesis)
    assert not claim.anchored
    assert (claim.index, claim.height, claim.log_size) == (2, 3, 12)


def test_a_root_covered_by_an_anchor_gets_the_anchored_bundle_at_the_anchored_block(node):
    checkpoint = node.anchor(2)
    claim = verify_bundle(bundles.proof_bundle(node, node.roots[1]), genesis=node.genesis)
    assert claim.anchored
    assert (claim.height, claim.log_size, claim.index) == (2, 8, 1)
    assert claim.btc_block_hash == sha256d(checkpoint.header)


def test_the_anchored_bundle_carries_headers_up_to_the_genesis_final_depth(node):
    node.anchor(2, confirmations=20)
    claim = verify_bundle(bundles.proof_bundle(node, node.roots[0]), genesis=node.genesis)
    assert claim.confirmations == node.genesis.anchor_final_depth


def test_the_anchored_bundle_shows_only_the_headers_the_node_has(node):
    node.anchor(2, confirmations=2)
    claim = verify_bundle(bundles.proof_bundle(node, node.roots[0]), genesis=node.genesis)
    assert claim.confirmations == 2


def test_a_root_logged_after_the_latest_anchor_stays_pending(node):
    node.anchor(1)
    claim = verify_bundle(bundles.proof_bundle(node, node.roots[9]), genesis=node.genesis)
    assert not claim.anchored and claim.height == 3


def test_the_lowest_covering_anchor_is_used(node):
    node.anchor(3)
    node.anchor(2)
    claim = verify_bundle(bundles.proof_bundle(node, node.roots[0]), genesis=node.genesis)
    assert claim.height == 2


def test_the_bundle_holds_the_transaction_without_its_witness_and_the_same_txid(node):
    checkpoint = node.anchor(2, witness=True)
    bundle = Bundle.decode(bundles.proof_bundle(node, node.roots[0]))
    assert len(bundle.bitcoin.tx) < len(checkpoint.raw_tx)
    assert parse_transaction(bundle.bitcoin.tx).txid == parse_transaction(checkpoint.raw_tx).txid


def test_an_unknown_root_has_no_bundle(node):
    assert bundles.proof_bundle(node, b"\x42" * 32) is None


def test_a_certified_block_verifies_against_the_genesis(node):
    block = CertifiedBlock.decode(bundles.certified_block(node, 2))
    block.verify(node.genesis)
    assert block.header.height == 2
    assert bundles.certified_block(node, 4) is None and bundles.certified_block(node, 0) is None


def test_a_consistency_proof_links_two_certified_log_states(node):
    record = ConsistencyRecord.decode(bundles.consistency_proof(node, 5, 12))
    record.verify(node.genesis)
    assert (record.old.header.height, record.new.header.height) == (1, 3)


def test_consistency_is_served_only_between_block_boundaries(node):
    assert bundles.consistency_proof(node, 4, 12) is None
    assert bundles.consistency_proof(node, 8, 5) is None
    assert bundles.consistency_proof(node, 0, 5) is None


def test_an_anchor_record_carries_checkable_spv_material(node):
    node.anchor(2)
    record = AnchorRecord.decode(bundles.anchor_record(node, 1))
    assert record.height == 2
    header = node.chain.header_at(2)
    claim = verify_anchor(record.bitcoin, header.hash, floor_at_ms=floor_time_ms(node.genesis, header))
    assert claim.confirmations == 6
    assert bundles.anchor_record(node, 3) is None


def test_an_anchor_of_a_block_the_node_does_not_hold_is_not_served(node, tmp_path):
    checkpoint = node.anchor(2)
    (tmp_path / "other").mkdir()
    other = stored_node(tmp_path / "other", blocks=(5, 3, 4))
    try:
        other.anchor_store.put_checkpoint(checkpoint)
        assert bundles.anchor_record(other, 1) is None
        assert not verify_bundle(bundles.proof_bundle(other, other.roots[0]), genesis=other.genesis).anchored
    finally:
        other.close()


def test_the_checkpoint_note_is_signed_with_the_key_in_the_node_key_file(node):
    text = bundles.checkpoint_note(node)
    name = note.origin(node.genesis.hash)
    checkpoint = note.verify_checkpoint(text, {"validator 0": (name, node.genesis.validators[0])})
    assert (checkpoint.size, checkpoint.root) == (12, node.chain.tip_header.log_root)
