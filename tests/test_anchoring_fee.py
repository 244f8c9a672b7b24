"""The fee cap is checked before a fee-bumped replacement is broadcast (anchor.tx.bump_fee)."""

from __future__ import annotations

import math
from decimal import Decimal
from typing import Any

import pytest

from anchor.rpc import BitcoindRPC
from anchor.tx import AnchorTxError, bump_fee, create_anchor, fee_within_cap
from tests.conftest_bitcoind import FundedWallet

BLOCK_HASH = bytes(range(32))


class SpyWallet(BitcoindRPC):
    """A wallet client that records every method called and can alter psbtbumpfee's answer."""

    def __init__(self, wallet: BitcoindRPC, fee_override_btc: Decimal | None = None) -> None:
        super().__init__(wallet.port, host=wallet.host, cookie_path=wallet.cookie_path, wallet=wallet.wallet_name)
        self.calls: list[str] = []
        self.fee_override_btc = fee_override_btc

    def call(self, method: str, *params: Any, timeout_s: float | None = None) -> Any:
        self.calls.append(method)
        result = super().call(method, *params, timeout_s=timeout_s)
        if method == "psbtbumpfee" and self.fee_override_btc is not None:
            result = {**result, "fee": self.fee_override_btc}
        return result


def test_a_fee_asked_at_exactly_the_cap_is_within_it_despite_the_wallets_rounding():
    vsize, inputs, cap = 153, 1, Decimal(5)
    assert fee_within_cap(math.ceil(cap * (vsize + 1)), vsize, inputs, cap)
    assert not fee_within_cap(math.ceil(cap * (vsize + 1)) + 1, vsize, inputs, cap)


@pytest.mark.bitcoind
def test_bumping_to_exactly_the_cap_is_broadcast(funded_wallet: FundedWallet):
    anchor = create_anchor(funded_wallet.wallet, BLOCK_HASH, fee_rate_sat_vb=Decimal(2))
    bumped = bump_fee(funded_wallet.wallet, anchor, fee_rate_sat_vb=Decimal(5), fee_rate_max_sat_vb=Decimal(5))
    assert funded_wallet.node.rpc().call("getrawmempool") == [bumped.txid]
    assert bumped.fee_sat > anchor.fee_sat


@pytest.mark.bitcoind
def test_a_replacement_above_the_cap_is_refused_before_it_is_broadcast(funded_wallet: FundedWallet):
    anchor = create_anchor(funded_wallet.wallet, BLOCK_HASH, fee_rate_sat_vb=Decimal(2))
    spy = SpyWallet(funded_wallet.wallet, fee_override_btc=Decimal("0.001"))
    with pytest.raises(AnchorTxError, match="above the cap"):
        bump_fee(spy, anchor, fee_rate_sat_vb=Decimal(5), fee_rate_max_sat_vb=Decimal(5))
    assert "sendrawtransaction" not in spy.calls
    assert funded_wallet.node.rpc().call("getrawmempool") == [anchor.txid]
