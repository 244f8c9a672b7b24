"""`pantheon audit`: walk every finalized block, consistency proof and anchor a node serves.

The audit runs against node/bundles.py over real storage (in process, where a test
needs to tamper with what is served) and over HTTP through the real API app.
"""

from dataclasses import dataclass

import pytest

from node import bundles
from node.proof_commands import AuditFailure, audit
from proof.bundle import AnchorRecord, CertifiedBlock, ConsistencyRecord
from tests.cli_helpers import run
from tests.bundle_fixtures import serve, stored_node
from tests.chain_fixtures import make_chain


@dataclass
class Source:
    """What `audit` reads, served from a stored node; tests override one method to tamper."""

    node: object

    def tip_height(self):
        return self.node.chain.tip_height

    def certified_block(self, height):
        return bundles.certified_block(self.node, height)

    def consistency(self, size1, size2):
        return bundles.consistency_proof(self.node, size1, size2)

    def anchor_record(self, height):
        return bundles.anchor_record(self.node, height)


@pytest.fixture
def node(tmp_path):
    n = stored_node(tmp_path, blocks=(5, 3, 4))
    first = n.anchor(1)
    n.add_block(2, anchors=(n.ref(first),))
    n.add_block(0)
    n.anchor(3)
    yield n
    n.close()


def test_an_honest_node_passes_and_every_part_is_counted(node):
    summary = audit(Source(node), node.genesis)
    assert summary.blocks == 5 and summary.log_size == 14
    assert summary.consistency_proofs == 3
    assert summary.anchors_checked == 2 and summary.anchors_recorded == 1 and summary.anchors_without_material == 0


def test_a_block_the_genesis_validators_did_not_certify_fails_at_its_height(node):
    foreign = make_chain(name="foreign")
    foreign.add_block(b"\x01" * 32)
    block = foreign.add_block(b"\x02" * 32)

    class Forged(Source):
        def certified_block(self, height):
            if height == 2:
                return CertifiedBlock(block.header, foreign.proofs[-1]).encode()
            return super().certified_block(height)

    with pytest.raises(AuditFailure, match="block 2: .*another chain"):
        audit(Forged(node), node.genesis)


def test_a_missing_block_below_the_tip_fails(node):
    class Gap(Source):
        def certified_block(self, height):
            return None if height == 3 else super().certified_block(height)

    with pytest.raises(AuditFailure, match="height 3"):
        audit(Gap(node), node.genesis)


def test_a_block_served_at_the_wrong_height_fails(node):
    class Shifted(Source):
        def certified_block(self, height):
            return super().certified_block(1 if height == 2 else height)

    with pytest.raises(AuditFailure, match="block 2"):
        audit(Shifted(node), node.genesis)


def test_a_broken_consistency_proof_fails(node):
    class Bent(Source):
        def consistency(self, size1, size2):
            record = ConsistencyRecord.decode(super().consistency(size1, size2))
            path = (bytes(32),) + record.path[1:]
            return ConsistencyRecord(record.old, record.new, path).encode()

    with pytest.raises(AuditFailure, match="mismatch"):
        audit(Bent(node), node.genesis)


def test_a_consistency_proof_from_another_log_state_fails(node):
    class Elsewhere(Source):
        def consistency(self, size1, size2):
            return super().consistency(5, size2) if size1 != 5 else super().consistency(size1, size2)

    with pytest.raises(AuditFailure, match="another log state"):
        audit(Elsewhere(node), node.genesis)


def test_an_anchor_of_another_block_fails(node):
    class Swapped(Source):
        def anchor_record(self, height):
            data = super().anchor_record(height)
            if data is None:
                return None
            record = AnchorRecord.decode(data)
            return AnchorRecord(record.height + 1, record.block_hash, record.bitcoin, record.btc_height).encode()

    with pytest.raises(AuditFailure, match="not the audited block"):
        audit(Swapped(node), node.genesis)


def test_an_anchor_the_chain_recorded_differently_fails(node, tmp_path):
    node.anchor(1, witness=False)
    with pytest.raises(AuditFailure, match="recorded another transaction"):
        audit(Source(node), node.genesis)


def test_the_audit_command_over_http_prints_a_summary_and_exits_0(node, tmp_path, capsys):
    genesis = tmp_path / "genesis.cbor"
    genesis.write_bytes(node.genesis.encode())
    with serve(node) as url:
        code, out = run(["audit", "--node", url, "--genesis", genesis], capsys)
    assert code == 0, out
    assert "AUDIT OK" in out and "5 finalized blocks" in out and "3 proofs" in out and "2 served with SPV material" in out


def test_the_audit_command_against_another_genesis_exits_1_at_block_1(node, tmp_path, capsys):
    genesis = tmp_path / "other.cbor"
    genesis.write_bytes(make_chain(name="other").genesis.encode())
    with serve(node) as url:
        code, out = run(["audit", "--node", url, "--genesis", genesis], capsys)
    assert code == 1 and "AUDIT FAILED: block 1" in out
