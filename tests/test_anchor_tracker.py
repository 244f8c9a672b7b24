"""The anchor tracker against a real regtest bitcoind: confirm, finalize, reorg, bump, cap, evict, restart."""

from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import pytest

from anchor.payload import decode_payload
from anchor.rpc import BitcoindRPC, BitcoindUnavailable, WalletEmptyError
from anchor.state import ALERT_EVICTED, ALERT_FEE_CAPPED, ALERT_REORG, Alert, AnchorState, AnchorStateError
from anchor.tracker import AnchorTracker
from anchor.tx import AnchorTx, bump_fee, check_anchor, vsize_of
from devnet.bitcoind import ANCHOR_TIP_HEIGHT_MIN, BitcoindPaths, RegtestNode
from proof.spv import hash_to_hex, hex_to_hash, verify_spv
from tests.conftest_bitcoind import mine_one_mature_coin

pytestmark = pytest.mark.bitcoind

PANTHEON_HASH = bytes.fromhex("c3" * 32)
FEE_RATE_SAT_VB = Decimal(2)
BUMP_AFTER_MS = 10_000
ATTEMPT_INTERVAL_MS = 1_000
FINAL_DEPTH = 3
WALLET = "anchor"


def make_tracker(wallet: BitcoindRPC, alerts: list[Alert] | None = None, **overrides) -> AnchorTracker:
    settings = dict(
        network="regtest",
        fee_rate_sat_vb=FEE_RATE_SAT_VB,
        fee_rate_max_sat_vb=Decimal(50),
        bump_after_ms=BUMP_AFTER_MS,
        final_depth=FINAL_DEPTH,
        attempt_interval_ms=ATTEMPT_INTERVAL_MS,
    )
    settings.update(overrides)
    return AnchorTracker(wallet, on_alert=(alerts if alerts is not None else []).append, **settings)


def mine(wallet: BitcoindRPC, blocks: int = 1) -> list[str]:
    """To a fresh address each time: after invalidateblock, the same address would
    rebuild the block that was just invalidated."""
    return wallet.call("generatetoaddress", blocks, wallet.call("getnewaddress"))


def mempool(wallet: BitcoindRPC) -> list[str]:
    return wallet.call("getrawmempool")


def anchored_hash(raw_tx: bytes) -> bytes:
    tx, vout = check_anchor(raw_tx, PANTHEON_HASH)
    return decode_payload(tx.outputs[vout].script)


# ----------------------------------------------------------------- confirm and finalize


def test_an_anchor_is_broadcast_and_waits_in_the_mempool(funded_wallet):  # noqa: F811
    tracker = make_tracker(funded_wallet.wallet)
    record = tracker.anchor(PANTHEON_HASH, now_ms=0)
    assert record.state is AnchorState.BROADCAST
    assert mempool(funded_wallet.wallet) == [hash_to_hex(record.txid)]
    polled = tracker.poll(record, now_ms=100)
    assert polled.state is AnchorState.BROADCAST and polled.txid == record.txid


def test_an_anchor_confirms_then_becomes_final_at_the_configured_depth(funded_wallet):  # noqa: F811
    wallet = funded_wallet.wallet
    tracker = make_tracker(wallet)
    record = tracker.anchor(PANTHEON_HASH, now_ms=0)
    [block] = mine(wallet)
    record = tracker.poll(record, now_ms=100)
    assert (record.state, record.confirmations) == (AnchorState.CONFIRMED, 1)
    assert record.block_hash == hex_to_hash(block)
    assert record.block_height == ANCHOR_TIP_HEIGHT_MIN + 1
    mine(wallet, FINAL_DEPTH - 2)
    record = tracker.poll(record, now_ms=200)
    assert (record.state, record.confirmations) == (AnchorState.CONFIRMED, FINAL_DEPTH - 1)
    mine(wallet)
    record = tracker.poll(record, now_ms=300)
    assert (record.state, record.confirmations) == (AnchorState.FINAL, FINAL_DEPTH)


def test_spv_material_of_a_confirmed_anchor_proves_its_transaction_in_its_block(funded_wallet):  # noqa: F811
    tracker = make_tracker(funded_wallet.wallet)
    record = tracker.anchor(PANTHEON_HASH, now_ms=0)
    mine(funded_wallet.wallet)
    record = tracker.poll(record, now_ms=100)
    material = tracker.spv_material(record)
    claim = verify_spv(material.raw_tx, material.branch, material.index, material.header, network="regtest")
    assert (claim.txid, claim.block_hash) == (record.txid, record.block_hash)
    assert anchored_hash(material.raw_tx) == PANTHEON_HASH


def test_spv_material_of_an_unconfirmed_anchor_is_refused(funded_wallet):  # noqa: F811
    tracker = make_tracker(funded_wallet.wallet)
    record = tracker.anchor(PANTHEON_HASH, now_ms=0)
    with pytest.raises(AnchorStateError, match="once the anchor is confirmed"):
        tracker.spv_material(record)


def test_an_empty_wallet_is_a_wallet_empty_error_and_no_record(regtest_node):  # noqa: F811
    tracker = make_tracker(regtest_node.create_wallet("empty"))
    with pytest.raises(WalletEmptyError, match="insufficient funds"):
        tracker.anchor(PANTHEON_HASH, now_ms=0)


class SendNeverArrives(BitcoindRPC):
    """The wallet client, except that every sendrawtransaction is lost on the way."""

    def call(self, method, *params, timeout_s=None):
        if method == "sendrawtransaction":
            raise BitcoindUnavailable(f"bitcoind at {self.address} is not reachable: {method}: connection reset")
        return super().call(method, *params, timeout_s=timeout_s)


def test_a_first_broadcast_that_never_arrives_leaves_a_built_record_that_poll_sends(funded_wallet):  # noqa: F811
    wallet = funded_wallet.wallet
    lossy = SendNeverArrives(wallet.port, cookie_path=wallet.cookie_path, wallet=wallet.wallet_name)
    record = make_tracker(lossy).anchor(PANTHEON_HASH, now_ms=0)
    assert record.state is AnchorState.BUILT
    assert "not reachable" in record.last_error
    assert mempool(wallet) == []

    record = make_tracker(wallet).poll(record, now_ms=ATTEMPT_INTERVAL_MS)
    assert record.state is AnchorState.BROADCAST and record.last_error == ""
    assert mempool(wallet) == [hash_to_hex(record.txid)]


# ----------------------------------------------------------------- reorg


def test_a_reorged_anchor_goes_back_to_broadcast_and_confirms_again_in_another_block(funded_wallet):  # noqa: F811
    wallet = funded_wallet.wallet
    alerts: list[Alert] = []
    tracker = make_tracker(wallet, alerts)
    record = tracker.anchor(PANTHEON_HASH, now_ms=0)
    [first_block] = mine(wallet)
    record = tracker.poll(record, now_ms=100)
    assert record.state is AnchorState.CONFIRMED

    wallet.call("invalidateblock", first_block)
    record = tracker.poll(record, now_ms=200)
    assert record.state is AnchorState.BROADCAST
    assert (record.block_hash, record.reorgs, record.rebroadcasts) == (None, 1, 0)
    assert mempool(wallet) == [hash_to_hex(record.txid)], "bitcoind put it back: no rebroadcast needed"
    assert [a.kind for a in alerts] == [ALERT_REORG]

    [second_block] = mine(wallet)
    record = tracker.poll(record, now_ms=300)
    assert record.state is AnchorState.CONFIRMED
    assert record.block_hash == hex_to_hash(second_block) != hex_to_hash(first_block)


# ----------------------------------------------------------------- fee bumps


def test_an_overdue_anchor_is_replaced_at_a_higher_fee_rate_with_the_same_op_return(funded_wallet):  # noqa: F811
    wallet = funded_wallet.wallet
    tracker = make_tracker(wallet)
    record = tracker.anchor(PANTHEON_HASH, now_ms=0)
    old_fee = wallet.call("getmempoolentry", hash_to_hex(record.txid))["fees"]["base"]
    bumped = tracker.poll(record, now_ms=BUMP_AFTER_MS)

    assert bumped.replaced_txids == (record.txid,), f"no replacement: state={bumped.state} error={bumped.last_error!r}"
    assert bumped.fee_rate_sat_kvb == 3_000, "2 sat/vB * 150% = 3 sat/vB"
    assert mempool(wallet) == [hash_to_hex(bumped.txid)]
    assert wallet.call("getmempoolentry", hash_to_hex(bumped.txid))["fees"]["base"] > old_fee
    assert anchored_hash(bumped.raw_tx) == PANTHEON_HASH
    mine(wallet)
    confirmed = tracker.poll(bumped, now_ms=BUMP_AFTER_MS + 1)
    assert (confirmed.state, confirmed.confirmed_txid) == (AnchorState.CONFIRMED, bumped.txid)


def test_at_the_fee_cap_the_tracker_alerts_once_and_never_bumps(funded_wallet):  # noqa: F811
    wallet = funded_wallet.wallet
    alerts: list[Alert] = []
    tracker = make_tracker(wallet, alerts, fee_rate_max_sat_vb=FEE_RATE_SAT_VB)
    record = tracker.anchor(PANTHEON_HASH, now_ms=0)
    for now_ms in range(BUMP_AFTER_MS, BUMP_AFTER_MS + 5 * ATTEMPT_INTERVAL_MS, ATTEMPT_INTERVAL_MS // 2):
        record = tracker.poll(record, now_ms=now_ms)
    assert record.replaced_txids == ()
    assert mempool(wallet) == [hash_to_hex(record.txid)]
    assert [a.kind for a in alerts] == [ALERT_FEE_CAPPED]
    assert record.fee_capped and ALERT_FEE_CAPPED in record.alerts


@pytest.mark.parametrize("cap_sat_vb", [7, 11, 50])
def test_bumps_end_exactly_on_a_cap_off_the_steps_and_the_cap_alert_fires(funded_wallet, cap_sat_vb):  # noqa: F811
    """2 -> 3 -> 4.5 -> 6.75 would leave 7 out of reach (a replacement must add 1 sat/vB)."""
    wallet = funded_wallet.wallet
    alerts: list[Alert] = []
    tracker = make_tracker(wallet, alerts, fee_rate_max_sat_vb=Decimal(cap_sat_vb), bump_after_ms=0)
    record = tracker.anchor(PANTHEON_HASH, now_ms=0)
    for now_ms in range(ATTEMPT_INTERVAL_MS, 20 * ATTEMPT_INTERVAL_MS, ATTEMPT_INTERVAL_MS):
        record = tracker.poll(record, now_ms=now_ms)
    assert record.fee_rate_sat_kvb == cap_sat_vb * 1000, f"stopped at {record.fee_rate_sat_kvb} sat/kvB"
    assert mempool(wallet) == [hash_to_hex(record.txid)]
    assert [a.kind for a in alerts] == [ALERT_FEE_CAPPED], [a.detail for a in alerts]
    assert record.fee_capped and not record.last_error


def test_a_replacement_the_wallet_made_outside_the_tracker_is_adopted(funded_wallet):  # noqa: F811
    """As after a bumpfee whose answer was lost: the record follows the wallet."""
    wallet = funded_wallet.wallet
    tracker = make_tracker(wallet)
    record = tracker.anchor(PANTHEON_HASH, now_ms=0)
    tx, vout = check_anchor(record.raw_tx, PANTHEON_HASH)
    original = AnchorTx(
        hash_to_hex(record.txid), record.raw_tx, PANTHEON_HASH, vout, record.fee_sat, vsize_of(tx, record.raw_tx)
    )
    replacement = bump_fee(wallet, original, fee_rate_sat_vb=Decimal(5))
    adopted = tracker.poll(record, now_ms=100)
    assert adopted.txid == hex_to_hash(replacement.txid)
    assert adopted.replaced_txids == (record.txid,)
    assert adopted.rebroadcasts == 0 and adopted.last_error == ""


def test_a_mined_version_that_a_bump_replaced_confirms_the_anchor(funded_wallet):  # noqa: F811
    """A miner may have mined the original before it saw the replacement."""
    wallet = funded_wallet.wallet
    tracker = make_tracker(wallet)
    original = tracker.anchor(PANTHEON_HASH, now_ms=0)
    bumped = tracker.poll(original, now_ms=BUMP_AFTER_MS)
    assert bumped.txid != original.txid
    wallet.call("generateblock", wallet.call("getnewaddress"), [original.raw_tx.hex()])
    record = tracker.poll(bumped, now_ms=BUMP_AFTER_MS + 1)
    assert record.state is AnchorState.CONFIRMED
    assert record.confirmed_txid == original.txid
    assert tracker.spv_material(record).txid == original.txid


# ----------------------------------------------------------------- eviction and restarts


class RestartableBitcoind:
    """A regtest node on a datadir that outlives restarts (new ports each time)."""

    def __init__(self, paths: BitcoindPaths, datadir: Path) -> None:
        self.paths = paths
        self.datadir = datadir
        self.node: RegtestNode | None = None

    def start(self, *extra_args: str) -> BitcoindRPC:
        self.node = RegtestNode(self.paths, datadir=self.datadir, extra_args=extra_args)
        self.node.start()
        return self.node.rpc(wallet=WALLET)

    def stop(self) -> None:
        if self.node is not None:
            self.node.stop()
            self.node = None


@pytest.fixture
def restartable(  # noqa: F811
    bitcoind_paths: BitcoindPaths, tmp_path: Path
) -> Iterator[tuple[RestartableBitcoind, BitcoindRPC]]:
    bitcoind = RestartableBitcoind(bitcoind_paths, tmp_path / "bitcoind")
    bitcoind.start()
    assert bitcoind.node is not None
    wallet = bitcoind.node.create_wallet(WALLET)
    mine_one_mature_coin(wallet, wallet.call("getnewaddress"))
    try:
        yield bitcoind, wallet
    finally:
        bitcoind.stop()


def restart(bitcoind: RestartableBitcoind, *extra_args: str) -> BitcoindRPC:
    bitcoind.stop()
    wallet = bitcoind.start(*extra_args)
    wallet.call("loadwallet", WALLET)
    return wallet


def test_an_evicted_anchor_is_rebroadcast_and_confirms(restartable):
    bitcoind, wallet = restartable
    alerts: list[Alert] = []
    record = make_tracker(wallet).anchor(PANTHEON_HASH, now_ms=0)
    # Without its mempool file, and with the wallet not resubmitting its own
    # transactions, bitcoind comes back without the anchor: it was evicted.
    wallet = restart(bitcoind, "-persistmempool=0", "-walletbroadcast=0")
    assert mempool(wallet) == []

    tracker = make_tracker(wallet, alerts)
    record = tracker.poll(record, now_ms=ATTEMPT_INTERVAL_MS)
    assert record.state is AnchorState.BROADCAST and record.rebroadcasts == 1
    assert mempool(wallet) == [hash_to_hex(record.txid)]
    assert [a.kind for a in alerts] == [ALERT_EVICTED]
    mine(wallet)
    assert tracker.poll(record, now_ms=ATTEMPT_INTERVAL_MS + 1).state is AnchorState.CONFIRMED


def test_bitcoind_down_is_bitcoind_unavailable_and_the_record_goes_on_to_final_after_restart(restartable):
    bitcoind, wallet = restartable
    record = make_tracker(wallet).anchor(PANTHEON_HASH, now_ms=0)
    stopped_tracker = make_tracker(wallet)
    bitcoind.stop()
    with pytest.raises(BitcoindUnavailable, match="not reachable"):
        stopped_tracker.poll(record, now_ms=100)

    wallet = restart(bitcoind)
    assert mempool(wallet) == [hash_to_hex(record.txid)]
    tracker = make_tracker(wallet)
    mine(wallet, FINAL_DEPTH)
    record = tracker.poll(record, now_ms=200)
    assert (record.state, record.confirmations) == (AnchorState.FINAL, FINAL_DEPTH)
