"""Anchor transactions: built, funded, signed, broadcast, mined, read back, fee-bumped, reorged."""

import os
from decimal import Decimal

import pytest
from bitcoin.core import CMutableTransaction, CMutableTxIn, CMutableTxOut, COutPoint, CScript, CTransaction

from anchor.payload import decode_payload, encode_script
from anchor.rpc import WalletEmptyError
from anchor.replies import FinalizedPsbt
from anchor.tx import (
    BUMP_ASKS_MAX,
    PARASITE_LOCK_TIME,
    AnchorTxError,
    build_unfunded,
    bump_fee,
    check_anchor,
    create_anchor,
)
from proof.spv import parse_transaction

BLOCK_HASH = bytes.fromhex("a1" * 32)
FEE_RATE = Decimal(2)


def nulldata_outputs(verbose_tx: dict) -> list[dict]:
    return [out for out in verbose_tx["vout"] if out["scriptPubKey"]["type"] == "nulldata"]


def test_unfunded_anchor_has_version_2_no_inputs_and_one_op_return_output():
    """Laid out by hand: a parser would read the empty input list as a segwit marker."""
    script = encode_script(BLOCK_HASH)
    expected = (
        (2).to_bytes(4, "little") + b"\x00"  # version, no inputs
        + b"\x01" + (0).to_bytes(8, "little") + bytes([len(script)]) + script  # one zero-value output
        + (0).to_bytes(4, "little")  # lock time
    )  # fmt: skip
    assert build_unfunded(BLOCK_HASH) == expected


@pytest.mark.bitcoind
def test_mined_anchor_carries_the_block_hash_in_a_nulldata_output(funded_wallet):  # noqa: F811
    anchor = create_anchor(funded_wallet.wallet, BLOCK_HASH, fee_rate_sat_vb=FEE_RATE)
    [block] = funded_wallet.mine()
    on_chain = funded_wallet.node.rpc().call("getrawtransaction", anchor.txid, True, block)
    assert on_chain["confirmations"] == 1
    [nulldata] = nulldata_outputs(on_chain)
    assert nulldata["n"] == anchor.vout
    assert decode_payload(bytes.fromhex(nulldata["scriptPubKey"]["hex"])) == BLOCK_HASH
    assert len(on_chain["vout"]) == 2, "an anchor needs a change output to be relayed"


@pytest.mark.bitcoind
def test_anchor_record_matches_what_bitcoind_reports(funded_wallet):  # noqa: F811
    anchor = create_anchor(funded_wallet.wallet, BLOCK_HASH, fee_rate_sat_vb=FEE_RATE)
    entry = funded_wallet.node.rpc().call("getmempoolentry", anchor.txid)
    assert anchor.fee_sat == int(entry["fees"]["base"] * 100_000_000)
    assert anchor.vsize == entry["vsize"]
    assert FEE_RATE <= anchor.fee_rate_sat_vb < FEE_RATE + 1
    decoded = funded_wallet.node.rpc().call("decoderawtransaction", anchor.raw_tx_hex)
    assert decoded["txid"] == anchor.txid
    assert all(txin["sequence"] <= 0xFFFFFFFD for txin in decoded["vin"])


@pytest.mark.bitcoind
def test_bump_fee_replaces_the_anchor_keeps_the_op_return_and_pays_more(funded_wallet):  # noqa: F811
    rpc = funded_wallet.node.rpc()
    anchor = create_anchor(funded_wallet.wallet, BLOCK_HASH, fee_rate_sat_vb=FEE_RATE)
    bumped = bump_fee(funded_wallet.wallet, anchor, fee_rate_sat_vb=Decimal(10))
    assert bumped.txid != anchor.txid
    assert bumped.fee_sat > anchor.fee_sat
    assert rpc.call("getrawmempool") == [bumped.txid]
    [block] = funded_wallet.mine()
    [nulldata] = nulldata_outputs(rpc.call("getrawtransaction", bumped.txid, True, block))
    assert decode_payload(bytes.fromhex(nulldata["scriptPubKey"]["hex"])) == BLOCK_HASH


class ParasiteLockTimeWallet:
    """The real wallet, except that its first ``parasite_replacements`` replacements come
    back with lock time 21, as anti-fee-sniping gives about one bump in a thousand below
    height 121 (their signatures no longer match, which does not matter: they must never be sent)."""

    def __init__(self, wallet, parasite_replacements: int):
        self._wallet = wallet
        self.parasite_left = parasite_replacements
        self.replacements = 0

    def __getattr__(self, name):
        return getattr(self._wallet, name)

    def finalize_psbt(self, psbt: str) -> FinalizedPsbt:
        finalized = self._wallet.finalize_psbt(psbt)
        self.replacements += 1
        if self.parasite_left == 0:
            return finalized
        self.parasite_left -= 1
        tx = CMutableTransaction.from_tx(CTransaction.deserialize(finalized.raw_tx))
        tx.nLockTime = PARASITE_LOCK_TIME
        return FinalizedPsbt(raw_tx=tx.serialize(), complete=True)


@pytest.mark.bitcoind
def test_a_replacement_with_the_lock_time_knots_refuses_is_never_sent_and_the_wallet_is_asked_again(funded_wallet):  # noqa: F811
    rpc = funded_wallet.node.rpc()
    anchor = create_anchor(funded_wallet.wallet, BLOCK_HASH, fee_rate_sat_vb=FEE_RATE)
    wallet = ParasiteLockTimeWallet(funded_wallet.wallet, parasite_replacements=2)
    bumped = bump_fee(wallet, anchor, fee_rate_sat_vb=Decimal(10))
    assert wallet.replacements == 3
    assert parse_transaction(bumped.raw_tx).lock_time != PARASITE_LOCK_TIME
    assert rpc.call("getrawmempool") == [bumped.txid]


@pytest.mark.bitcoind
def test_a_wallet_that_keeps_choosing_the_refused_lock_time_is_an_error_and_nothing_is_sent(funded_wallet):  # noqa: F811
    rpc = funded_wallet.node.rpc()
    anchor = create_anchor(funded_wallet.wallet, BLOCK_HASH, fee_rate_sat_vb=FEE_RATE)
    wallet = ParasiteLockTimeWallet(funded_wallet.wallet, parasite_replacements=BUMP_ASKS_MAX)
    with pytest.raises(AnchorTxError, match="parasite-cat21.*past height 120"):
        bump_fee(wallet, anchor, fee_rate_sat_vb=Decimal(10))
    assert wallet.replacements == BUMP_ASKS_MAX
    assert rpc.call("getrawmempool") == [anchor.txid]


@pytest.mark.bitcoind
def test_fee_rate_above_the_cap_is_refused_before_anything_is_sent(funded_wallet):  # noqa: F811
    with pytest.raises(AnchorTxError, match="operator's cap"):
        create_anchor(
            funded_wallet.wallet, BLOCK_HASH, fee_rate_sat_vb=Decimal(50), fee_rate_max_sat_vb=Decimal(20)
        )
    anchor = create_anchor(funded_wallet.wallet, BLOCK_HASH, fee_rate_sat_vb=FEE_RATE)
    with pytest.raises(AnchorTxError, match="operator's cap"):
        bump_fee(funded_wallet.wallet, anchor, fee_rate_sat_vb=Decimal(50), fee_rate_max_sat_vb=Decimal(20))
    assert funded_wallet.node.rpc().call("getrawmempool") == [anchor.txid]


@pytest.mark.bitcoind
def test_empty_wallet_is_a_wallet_empty_error_saying_how_to_fund_it(regtest_node):  # noqa: F811
    empty = regtest_node.create_wallet("empty")
    with pytest.raises(WalletEmptyError, match="wallet empty has insufficient funds.*generatetoaddress"):
        create_anchor(empty, BLOCK_HASH, fee_rate_sat_vb=FEE_RATE)


@pytest.mark.bitcoind
def test_reorg_puts_the_anchor_back_in_the_mempool_and_it_confirms_again(funded_wallet):  # noqa: F811
    rpc = funded_wallet.node.rpc()
    anchor = create_anchor(funded_wallet.wallet, BLOCK_HASH, fee_rate_sat_vb=FEE_RATE)
    [first_block] = funded_wallet.mine()
    rpc.call("invalidateblock", first_block)
    assert rpc.call("getrawmempool") == [anchor.txid]
    assert funded_wallet.wallet.call("gettransaction", anchor.txid)["confirmations"] == 0
    [second_block] = funded_wallet.mine()
    assert second_block != first_block
    assert rpc.call("getrawtransaction", anchor.txid, True, second_block)["confirmations"] == 1


def wallet_like_tx(script: bytes, *, sequence: int = 0xFFFFFFFD, version: int = 2) -> bytes:
    tx = CMutableTransaction(
        [CMutableTxIn(COutPoint(os.urandom(32), 0), nSequence=sequence)],
        [CMutableTxOut(10_000, CScript(b"\x00\x14" + os.urandom(20))), CMutableTxOut(0, CScript(script))],
        nVersion=version,
    )
    return tx.serialize()


def test_wallet_result_anchoring_another_hash_is_refused():
    with pytest.raises(AnchorTxError, match="carries"):
        check_anchor(wallet_like_tx(encode_script(bytes(32))), BLOCK_HASH)


def test_wallet_result_that_cannot_be_fee_bumped_is_refused():
    with pytest.raises(AnchorTxError, match="replaceability"):
        check_anchor(wallet_like_tx(encode_script(BLOCK_HASH), sequence=0xFFFFFFFF), BLOCK_HASH)


def test_wallet_result_with_the_anchor_as_its_only_output_is_refused():
    tx = CMutableTransaction.from_tx(CTransaction.deserialize(wallet_like_tx(encode_script(BLOCK_HASH))))
    tx.vout = tx.vout[1:]
    with pytest.raises(AnchorTxError, match="no change output"):
        check_anchor(tx.serialize(), BLOCK_HASH)


def test_wallet_result_with_the_wrong_version_is_refused():
    with pytest.raises(AnchorTxError, match="version 1"):
        check_anchor(wallet_like_tx(encode_script(BLOCK_HASH), version=1), BLOCK_HASH)
