"""SPV material read from a real regtest chain, checked by proof.spv and by bitcoind itself."""

import os
from decimal import Decimal

import pytest

from anchor.payload import decode_payload
from anchor.rpc import BitcoindRPCError
from anchor.spv import SpvMaterialError, extract_spv_material, parse_merkle_block
from anchor.tx import create_anchor
from proof.errors import DecodeError, ProofError
from proof.spv import check_header_chain, hash_to_hex, hex_to_hash, verify_spv

pytestmark = pytest.mark.bitcoind

FEE_RATE = Decimal(2)
MAINNET_DIFFICULTY_1_BITS = 0x1D00FFFF


def anchor_and_mine(funded_wallet, count=1):  # noqa: F811
    anchors = [
        create_anchor(funded_wallet.wallet, os.urandom(32), fee_rate_sat_vb=FEE_RATE) for _ in range(count)
    ]
    [block] = funded_wallet.mine()
    return anchors, block


def test_extracted_material_verifies_and_bitcoind_agrees(funded_wallet):  # noqa: F811
    [anchor], block = anchor_and_mine(funded_wallet)
    rpc = funded_wallet.node.rpc()
    material = extract_spv_material(rpc, anchor.txid, block, network="regtest")
    claim = verify_spv(material.raw_tx, material.branch, material.index, material.header, network="regtest")
    assert hash_to_hex(claim.txid) == anchor.txid
    assert hash_to_hex(claim.block_hash) == block
    [(vout, script)] = claim.transaction.op_return_outputs()
    assert vout == anchor.vout and decode_payload(script) == anchor.block_hash
    proof = rpc.call("gettxoutproof", [anchor.txid], block)
    assert rpc.call("verifytxoutproof", proof) == [anchor.txid]
    header = rpc.call("getblockheader", block)
    assert (claim.time, f"{claim.bits:08x}", hash_to_hex(claim.merkle_root)) == (
        header["time"],
        header["bits"],
        header["merkleroot"],
    )


def test_every_position_in_a_block_with_an_odd_transaction_count_verifies(funded_wallet):  # noqa: F811
    anchors, block = anchor_and_mine(funded_wallet, count=6)
    rpc = funded_wallet.node.rpc()
    order = rpc.call("getblock", block, 1)["tx"]
    assert len(order) == 7
    for anchor in anchors:
        material = extract_spv_material(rpc, anchor.txid, block, network="regtest")
        assert material.index == order.index(anchor.txid)
        assert len(material.branch) == 3
        verify_spv(material.raw_tx, material.branch, material.index, material.header, network="regtest")


def test_material_for_a_transaction_not_in_the_block_is_an_rpc_error(funded_wallet):  # noqa: F811
    [anchor], block = anchor_and_mine(funded_wallet)
    [other_block] = funded_wallet.mine()
    with pytest.raises(BitcoindRPCError):
        extract_spv_material(funded_wallet.node.rpc(), anchor.txid, other_block, network="regtest")


def test_proof_matching_two_transactions_is_refused(funded_wallet):  # noqa: F811
    anchors, block = anchor_and_mine(funded_wallet, count=2)
    proof = funded_wallet.node.rpc().call("gettxoutproof", [a.txid for a in anchors], block)
    with pytest.raises(DecodeError, match="matches 2 transactions"):
        parse_merkle_block(bytes.fromhex(proof))


def test_proof_with_a_tampered_hash_is_refused(funded_wallet):  # noqa: F811
    anchors, block = anchor_and_mine(funded_wallet, count=3)
    proof = bytearray.fromhex(funded_wallet.node.rpc().call("gettxoutproof", [anchors[0].txid], block))
    proof[80 + 4 + 1 + 5] ^= 0x01  # a byte of the first hash of the partial tree
    with pytest.raises(DecodeError, match="not the header's merkle root"):
        parse_merkle_block(bytes(proof))


def test_extraction_refuses_material_that_does_not_verify(funded_wallet):  # noqa: F811
    [anchor], block = anchor_and_mine(funded_wallet)
    with pytest.raises(SpvMaterialError, match="less work than main allows"):
        extract_spv_material(funded_wallet.node.rpc(), anchor.txid, block, network="main")


@pytest.fixture
def material(funded_wallet):  # noqa: F811
    anchors, block = anchor_and_mine(funded_wallet, count=4)
    return extract_spv_material(funded_wallet.node.rpc(), anchors[2].txid, block, network="regtest")


def test_flipped_transaction_byte_is_refused(material):
    raw = bytearray(material.raw_tx)
    raw[len(raw) // 2] ^= 0x01
    with pytest.raises((ProofError, DecodeError)):
        verify_spv(bytes(raw), material.branch, material.index, material.header, network="regtest")


def test_flipped_branch_node_is_refused(material):
    """The block's transaction order is bitcoind's, so the anchor may be the last of an odd
    level (its sibling is itself): a flip above such a level gives a shape no tree has."""
    for level in range(len(material.branch)):
        branch = list(material.branch)
        branch[level] = bytes([branch[level][0] ^ 0x80]) + branch[level][1:]
        with pytest.raises(ProofError, match="not to the header's merkle root|no tree has that shape"):
            verify_spv(material.raw_tx, branch, material.index, material.header, network="regtest")


def test_wrong_index_is_refused(material):
    for index in range(1 << len(material.branch)):
        if index != material.index:
            with pytest.raises(ProofError):
                verify_spv(material.raw_tx, material.branch, index, material.header, network="regtest")


def test_header_whose_bits_demand_more_work_than_its_hash_has_is_refused(material):
    header = material.header[:72] + MAINNET_DIFFICULTY_1_BITS.to_bytes(4, "little") + material.header[76:]
    with pytest.raises(ProofError, match="insufficient proof of work"):
        verify_spv(material.raw_tx, material.branch, material.index, header, network="regtest")


def test_confirmations_are_a_chain_of_headers_on_top_of_the_anchor_block(funded_wallet):  # noqa: F811
    [anchor], block = anchor_and_mine(funded_wallet)
    later = funded_wallet.mine(3)
    rpc = funded_wallet.node.rpc()
    headers = [bytes.fromhex(rpc.call("getblockheader", h, False)) for h in [block, *later]]
    chain = check_header_chain(headers, network="regtest")
    assert chain.hashes[0] == hex_to_hash(block) and len(chain.hashes) == 4
    assert rpc.call("getblockheader", block)["confirmations"] == 4
    with pytest.raises(ProofError, match="builds on"):
        check_header_chain([headers[0], headers[2]], network="regtest")
