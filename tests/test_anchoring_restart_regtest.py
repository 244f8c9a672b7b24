"""Anchoring across crashes: a validator SIGKILLed at the worst moment never anchors twice.

One validator (n = 1, so it is always on duty) on the devnet's regtest bitcoind, the
miner stopped (blocks are mined by hand). Each round the node is armed to SIGKILL
itself the instant bitcoind accepts its anchor (node.anchoring.FAULT_KILL_AFTER_SEND_ENV),
is restarted, and the anchor is mined and recorded. At the end the wallet's anchor
transactions are compared with the node's records: one live anchor per checkpoint,
every wallet anchor explained by a record, and the same fees on both sides.
"""

from __future__ import annotations

import re
import time
from collections import Counter
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import pytest

from anchor.payload import decode_payload
from anchor.state import decode_record
from devnet import cluster, regtest
from devnet.bitcoind import BitcoindInstallError, find_or_install
from node.anchoring import FAULT_KILL_AFTER_SEND_ENV
from proof.errors import DecodeError
from proof.spv import parse_transaction
from storage.anchor_store import AnchorStore
from storage import keys as store_keys
from storage.db import Store
from tests.network_harness import Network, random_roots, wait_until

pytestmark = [pytest.mark.timeout(900), pytest.mark.bitcoind]

ROUNDS = 20
SAT_PER_BTC = 100_000_000


@pytest.fixture(scope="module")
def devnet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[cluster.DevnetState, Network, Path]]:
    try:
        paths = find_or_install()
    except BitcoindInstallError as exc:
        pytest.skip(f"no bitcoind on this machine and it could not be installed: {exc}")
    base = tmp_path_factory.mktemp("restarts")
    directory = base / "devnet"
    trigger = base / "kill-after-send"
    info = regtest.new_info(directory, paths, 1, mine_every_s=1.0)
    info["nodes"][0].update(poll_interval_ms=200, bump_after_ms=3_600_000, fallback_ms=3_600_000)
    state = cluster.create(directory, 1, bitcoin=info)
    network = Network(state)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(FAULT_KILL_AFTER_SEND_ENV, str(trigger))
        try:
            cluster.start_bitcoin(state)
            regtest.stop_miner(state.bitcoin, directory)
            cluster.start(state)
            wait_until(network.all_ready, deadline_s=60, what="the validator ready")
            yield state, network, trigger
        finally:
            network.close()
            cluster.stop(state)


def mine_one(state: cluster.DevnetState) -> None:
    miner = regtest.rpc(state.bitcoin, regtest.MINER_WALLET)
    miner.call("generatetoaddress", 1, miner.call("getnewaddress"))


def wallet_anchors(state: cluster.DevnetState) -> list[tuple[bytes, int, int]]:
    """(anchored block hash, confirmations, fee in sat) of every anchor transaction in
    validator 0's wallet that is in a block or in the mempool (a conflicted or replaced
    one never paid its fee)."""
    wallet = regtest.rpc(state.bitcoin, regtest.wallet_name(0))
    mempool = set(wallet.call("getrawmempool"))
    txids = dict.fromkeys(entry["txid"] for entry in wallet.call("listtransactions", "*", 10_000))
    out = []
    for txid in txids:
        tx = wallet.call("gettransaction", txid)
        if "fee" not in tx or not (int(tx["confirmations"]) >= 1 or txid in mempool):
            continue
        for _vout, script in parse_transaction(bytes.fromhex(tx["hex"])).op_return_outputs():
            try:
                anchored = decode_payload(script)
            except DecodeError:
                continue
            out.append((anchored, int(tx["confirmations"]), int(-Decimal(str(tx["fee"])) * SAT_PER_BTC)))
    return out


def open_store(state: cluster.DevnetState) -> Store:
    return Store(Path(state.nodes[0].config).parent / "data", create_if_missing=False)


def own_records(state: cluster.DevnetState) -> list:
    store = open_store(state)
    try:
        return [decode_record(raw) for _height, raw in AnchorStore(store).own_records(count_max=10_000)]
    finally:
        store.close()


def mine_until_anchored(state: cluster.DevnetState, network: Network, root: bytes, what: str) -> None:
    node = regtest.rpc(state.bitcoin)

    def anchored() -> bool:
        if network.root_state(0, root) == "anchored":
            return True
        if int(node.call("getmempoolinfo")["size"]):
            mine_one(state)
        return False

    wait_until(anchored, deadline_s=60, poll_s=0.3, what=what)


def test_a_validator_killed_as_its_anchor_reaches_the_mempool_never_anchors_a_checkpoint_twice(devnet):
    state, network, trigger = devnet
    entry = state.nodes[0]
    node = regtest.rpc(state.bitcoin)
    kills = 0
    for round_number in range(ROUNDS):
        trigger.touch()
        roots = random_roots(3)
        assert network.submit(0, roots).status_code == 202
        wait_until(lambda: not cluster.is_running(entry), deadline_s=60,
                   what=f"round {round_number}: the node to kill itself once its anchor was sent")
        kills += 1
        assert not trigger.exists() and int(node.call("getmempoolinfo")["size"]) >= 1
        entry.pid = None
        cluster.start_node(entry)
        state.save()
        wait_until(network.all_ready, deadline_s=60, what=f"round {round_number}: the node back")
        mine_until_anchored(state, network, roots[-1], f"round {round_number}: the roots anchored")
    cluster.stop_node(entry)
    state.save()
    in_wallet = wallet_anchors(state)
    records = own_records(state)
    live = Counter(anchored for anchored, confirmations, _fee in in_wallet if confirmations >= 0)
    print(f"{kills} kills: {len(in_wallet)} anchor transactions in the wallet, {len(records)} records, "
          f"wallet fees {sum(f for _a, _c, f in in_wallet)} sat, record fees {sum(r.fee_sat for r in records)} sat")
    doubled = {block.hex()[:16]: count for block, count in live.items() if count > 1}
    assert not doubled, f"checkpoints anchored more than once: {doubled}"
    assert kills == ROUNDS and len(records) == ROUNDS
    assert sorted(block for block, _c, _f in in_wallet) == sorted(r.pantheon_block_hash for r in records)
    assert sum(fee for _a, _c, fee in in_wallet) == sum(r.fee_sat for r in records)
    cluster.start_node(entry)
    state.save()
    wait_until(network.all_ready, deadline_s=60, what="the node back for the next test")


def test_a_validator_whose_anchor_record_was_lost_adopts_the_wallets_anchor_instead_of_paying_again(devnet):
    state, network, _trigger = devnet
    entry = state.nodes[0]
    roots = random_roots(3)
    assert network.submit(0, roots).status_code == 202
    node = regtest.rpc(state.bitcoin)

    def sent() -> dict | None:
        for anchor in network.http.get(f"{network.url(0)}/v1/anchors").json()["anchors"]:
            own = anchor.get("own")
            if own and own["state"] == "broadcast" and own["txid"] in node.call("getrawmempool"):
                return anchor
        return None

    anchor = wait_until(sent, deadline_s=60, what="an anchor in the mempool")
    cluster.stop_node(entry)
    state.save()
    store = open_store(state)
    try:
        with store.batch(sync=True) as batch:
            batch.delete(store_keys.ANCHOR + b"r" + store_keys.u64(anchor["height"]))
    finally:
        store.close()
    cluster.start_node(entry)
    state.save()
    wait_until(network.all_ready, deadline_s=60, what="the node back without its record")
    mine_until_anchored(state, network, roots[-1], "the roots anchored")
    [record] = [r for r in own_records_live(network) if r["height"] == anchor["height"]]
    assert record["own"]["txid"] == anchor["own"]["txid"]
    block_hash = bytes.fromhex(network.http.get(f"{network.url(0)}/v1/blocks/{anchor['height']}").json()["hash"])
    assert len([a for a, _c, _f in wallet_anchors(state) if a == block_hash]) == 1
    assert "anchor adopted from the wallet" in Path(entry.log).read_text(errors="replace")


def own_records_live(network: Network) -> list[dict]:
    return [a for a in network.http.get(f"{network.url(0)}/v1/anchors").json()["anchors"] if a.get("own")]


def test_in_a_fee_spike_anchors_stay_within_the_daily_budget_and_the_alert_says_anchoring_waits(devnet):
    """Nothing confirms (no block is mined), so the anchor is bumped every second; the
    budget holds its bumps (fee_capped), then keeps the next checkpoint from being
    anchored at all (fee_budget), and the wallet's fees never pass it."""
    state, network, _trigger = devnet
    entry = state.nodes[0]
    cluster.stop_node(entry)
    state.save()
    spent_sat = sum(r.fee_sat for r in own_records(state))
    budget_sat = spent_sat + 2_000
    config = Path(entry.config)
    text = re.sub(r"bump_after_ms = \d+", "bump_after_ms = 1000", config.read_text())
    config.write_text(text.replace("[bitcoin]\n", f"[bitcoin]\nfee_budget_sat_per_day = {budget_sat}\n", 1))
    cluster.start_node(entry)
    state.save()
    wait_until(network.all_ready, deadline_s=60, what="the node back with a fee budget")
    log_start = len(Path(entry.log).read_text(errors="replace"))

    def new_log() -> str:
        return Path(entry.log).read_text(errors="replace")[log_start:]

    roots = random_roots(3)
    assert network.submit(0, roots).status_code == 202
    wait_until(lambda: "kind=fee_capped" in new_log(), deadline_s=60, what="bumps held to the budget")
    assert sum(fee for _a, _c, fee in wallet_anchors(state)) <= budget_sat
    mine_until_anchored(state, network, roots[-1], "the capped anchor mined")
    more = random_roots(3)
    assert network.submit(0, more).status_code == 202
    wait_until(lambda: "kind=fee_budget" in new_log(), deadline_s=30, what="the fee_budget alert")
    assert "fee_budget" in network.status(0)["anchoring"]["alerts"]
    assert "waits about" in new_log()
    time.sleep(2)
    node = regtest.rpc(state.bitcoin)
    assert int(node.call("getmempoolinfo")["size"]) == 0, "an anchor was built past the budget"
    assert network.root_state(0, more[-1]) == "certified"
    total_sat = sum(fee for _a, _c, fee in wallet_anchors(state))
    print(f"budget {budget_sat} sat, wallet anchor fees {total_sat} sat")
    assert total_sat <= budget_sat
