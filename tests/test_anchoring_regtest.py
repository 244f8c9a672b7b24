"""Anchoring in real validator processes against a real regtest bitcoind (the devnet's own).

One 4-validator devnet with Bitcoin serves the whole module (starting one costs a few
seconds of a shared 2-core machine); each test leaves bitcoind, the miner and the
wallets as it found them. Nodes, bitcoind and miner are the processes `pantheon devnet
up` runs, so this is the path a user takes.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import pytest

from anchor.payload import decode_payload
from anchor.rpc import BitcoindRPCError
from anchor.tracker import RPC_VERIFY_ALREADY_IN_CHAIN
from devnet import cluster, regtest
from devnet.bitcoind import BitcoindInstallError, find_or_install
from node.anchoring import REORG_DEPTH_MAX
from node.commands import read_genesis
from proof.spv import parse_transaction
from tests.network_harness import Network, random_roots, wait_until

pytestmark = [pytest.mark.timeout(300), pytest.mark.bitcoind]

MINE_EVERY_S = 1.0
ANCHORED_DEADLINE_S = 60
RPC_VERIFY_REJECTED = -26  # sendrawtransaction: already in the mempool (txn-already-known)
# Short deadlines, so that the fee-bump and fallback paths run within a test's time.
BUMP_AFTER_MS = 4_000
FALLBACK_MS = 8_000


@pytest.fixture(scope="module")
def devnet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[cluster.DevnetState, Network]]:
    try:
        paths = find_or_install()
    except BitcoindInstallError as exc:
        pytest.skip(f"no bitcoind on this machine and it could not be installed: {exc}")
    directory = tmp_path_factory.mktemp("anchoring") / "devnet"
    info = regtest.new_info(directory, paths, 4, mine_every_s=MINE_EVERY_S)
    for section in info["nodes"]:
        section.update(bump_after_ms=BUMP_AFTER_MS, fallback_ms=FALLBACK_MS)
    state = cluster.create(directory, 4, bitcoin=info)
    network = Network(state)
    try:
        cluster.start_bitcoin(state)
        cluster.start(state)
        wait_until(network.all_ready, deadline_s=60, what="4 validators ready")
        yield state, network
    finally:
        network.close()
        cluster.stop(state)
    assert not regtest.bitcoind_running(info) and not regtest.miner_running(info, directory)
    assert not any(cluster.is_running(entry) for entry in state.nodes)


def wallet_rpc(state: cluster.DevnetState, name: str | None = None):
    return regtest.rpc(state.bitcoin, name)


def root_json(network: Network, node: int, root: bytes) -> dict:
    return network.http.get(f"{network.url(node)}/v1/roots/{root.hex()}").json()


def anchored_on_all(network: Network, root: bytes) -> bool:
    return all(network.root_state(i, root) == "anchored" for i in range(4))


def anchors(network: Network, node: int) -> list[dict]:
    return network.http.get(f"{network.url(node)}/v1/anchors").json()["anchors"]


def anchoring(network: Network, node: int) -> dict:
    return network.status(node)["anchoring"]


def logged(state: cluster.DevnetState, node: int, text: str) -> bool:
    """Whether the node's log says ``text``: bitcoind's error details go there, not to /healthz."""
    return text in Path(state.nodes[node].log).read_text(errors="replace")


def test_roots_become_anchored_and_the_op_return_is_the_pantheon_block_hash(devnet):
    state, network = devnet
    roots = random_roots(20)
    assert network.submit(0, roots).status_code == 202
    wait_until(lambda: anchored_on_all(network, roots[-1]), deadline_s=ANCHORED_DEADLINE_S, what="root anchored")
    status = root_json(network, 2, roots[0])
    anchor = status["anchor"]
    assert status["state"] == "anchored" and anchor["confirmations"] >= 1
    assert anchor["height"] >= status["height"]
    block = network.http.get(f"{network.url(1)}/v1/blocks/{anchor['height']}").json()
    assert block["hash"] == anchor["block_hash"]
    entry = next(e for e in anchors(network, 3) if e["height"] == anchor["height"])
    raw = wallet_rpc(state).call("getrawtransaction", entry["txid"], False, anchor["btc_block_hash"])
    tx = parse_transaction(bytes.fromhex(raw))
    [(vout, script)] = tx.op_return_outputs()
    assert vout == entry["vout"]
    assert decode_payload(script).hex() == block["hash"]
    header = wallet_rpc(state).call("getblockheader", anchor["btc_block_hash"])
    assert header["height"] == anchor["btc_height"] == entry["btc_height"]


def test_metrics_count_confirmed_anchors(devnet):
    state, network = devnet
    wait_until(lambda: anchoring(network, 0)["anchors_confirmed"] >= 1, deadline_s=ANCHORED_DEADLINE_S,
               what="a confirmed anchor")
    text = network.http.get(f"{network.url(0)}/metrics").text
    line = next(line for line in text.splitlines() if line.startswith("pantheon_anchors_confirmed "))
    assert float(line.split()[1]) >= 1


def mine_while_transactions_wait(state: cluster.DevnetState, predicate, *, what: str) -> None:
    """With the miner stopped: mine one block whenever the mempool holds a transaction,
    until ``predicate`` holds. Anchors then sit at shallow depth, where reorgs are followed
    (past the final depth an anchor is final and no longer watched)."""
    node = wallet_rpc(state)
    miner = wallet_rpc(state, regtest.MINER_WALLET)

    def step() -> bool:
        if predicate():
            return True
        if int(node.call("getmempoolinfo")["size"]):
            miner.call("generatetoaddress", 1, miner.call("getnewaddress"))
        return False

    wait_until(step, deadline_s=ANCHORED_DEADLINE_S, what=what, poll_s=0.5)


def test_reorg_returns_the_anchor_to_pending_and_it_is_confirmed_again(devnet):
    state, network = devnet
    directory = Path(state.directory)
    roots = random_roots(10)
    regtest.stop_miner(state.bitcoin, directory)
    try:
        assert network.submit(1, roots).status_code == 202
        mine_while_transactions_wait(state, lambda: anchored_on_all(network, roots[-1]), what="root anchored")
        anchor = root_json(network, 0, roots[-1])["anchor"]
        assert anchor["confirmations"] < anchoring_final_depth(state)
        height, old_block = anchor["height"], anchor["btc_block_hash"]
        node = wallet_rpc(state)
        node.call("invalidateblock", old_block)
        wait_until(lambda: network.root_state(0, roots[-1]) == "certified", deadline_s=30,
                   what="root back to certified (anchor pending) after the reorg")
        entry = next(e for e in anchors(network, 0) if e["height"] == height)
        assert entry["state"] == "pending"
        miner = wallet_rpc(state, regtest.MINER_WALLET)
        miner.call("generatetoaddress", 1, miner.call("getnewaddress"))
        wait_until(lambda: anchored_on_all(network, roots[-1]), deadline_s=ANCHORED_DEADLINE_S,
                   what="anchor confirmed again in another block")
        again = root_json(network, 2, roots[-1])["anchor"]
        assert again["btc_block_hash"] != old_block
        assert node.call("getblockheader", again["btc_block_hash"])["confirmations"] >= 1
        wait_until(
            lambda: all(
                next(e for e in anchors(network, i) if e["height"] == height)["btc_block_hash"]
                == again["btc_block_hash"]
                for i in range(4)
            ),
            deadline_s=30, what="a later block to record the anchor's new Bitcoin block",
        )
    finally:
        regtest.start_miner(state.bitcoin, directory)
        state.save()


def anchoring_final_depth(state: cluster.DevnetState) -> int:
    return max(read_genesis(Path(state.directory) / "genesis.cbor").anchor_final_depth, REORG_DEPTH_MAX)


def keep_finalizing(network, *, blocks: int) -> None:
    """Submit ``blocks`` batches one after another, each certified everywhere before the next
    (an idle chain adds no blocks, so finalization is shown by roots, not by the clock)."""
    for k in range(blocks):
        batch = random_roots(5)
        assert network.submit(k % 4, batch).status_code == 202
        wait_until(lambda: all(network.root_state(i, batch[-1]) in ("certified", "anchored") for i in range(4)),
                   deadline_s=30, what=f"batch {k} certified while anchoring is impaired")


def test_bitcoind_down_the_chain_keeps_finalizing_and_anchoring_resumes_with_nothing_lost(devnet):
    state, network = devnet
    directory = Path(state.directory)
    before = random_roots(10)
    assert network.submit(0, before).status_code == 202
    wait_until(lambda: all(network.root_state(i, before[-1]) in ("certified", "anchored") for i in range(4)),
               deadline_s=30, what="first roots certified")
    regtest.stop_miner(state.bitcoin, directory)
    regtest.stop_bitcoind(state.bitcoin)
    state.save()
    try:
        wait_until(lambda: all(anchoring(network, i)["bitcoind"] == "unavailable" for i in range(4)), deadline_s=30,
                   what="every node to report bitcoind down")
        # A bitcoind shutting down first answers 503 ("busy"), then refuses connections ("not
        # reachable"); the log names whichever the node met first (one line per change of kind).
        assert logged(state, 0, "not reachable") or logged(state, 0, "is busy")
        during = random_roots(10)
        height_then = network.status(0)["height"]
        assert network.submit(2, during).status_code == 202
        wait_until(lambda: all(network.root_state(i, during[-1]) == "certified" for i in range(4)),
                   deadline_s=30, what="roots certified while bitcoind is down")
        keep_finalizing(network, blocks=5)
        assert network.status(0)["height"] >= height_then + 5
    finally:
        cluster.start_bitcoin(state)
    wait_until(lambda: all(anchoring(network, i)["bitcoind"] == "ok" for i in range(4)), deadline_s=30,
               what="every node to see bitcoind again")
    wait_until(lambda: all(anchored_on_all(network, r) for r in (before[-1], during[-1])),
               deadline_s=ANCHORED_DEADLINE_S, what="roots from before and during the outage anchored")
    assert all(network.root_state(3, r) == "anchored" for r in before + during)


def test_empty_wallets_give_a_clear_error_and_the_chain_keeps_finalizing(devnet):
    state, network = devnet
    node = wallet_rpc(state)
    miner = wallet_rpc(state, regtest.MINER_WALLET)
    sink = miner.call("getnewaddress")
    wait_until(lambda: int(node.call("getmempoolinfo")["size"]) == 0, deadline_s=30, what="an empty mempool")
    for name in state.bitcoin["wallets"]:
        wallet_rpc(state, name).call("sendall", [sink])
    miner.call("generatetoaddress", 1, miner.call("getnewaddress"))
    roots = random_roots(10)
    assert network.submit(3, roots).status_code == 202
    try:
        wait_until(lambda: any(anchoring(network, i)["wallet"] == "empty" for i in range(4)), deadline_s=30,
                   what="a node to report its empty wallet")
        reporter = next(i for i in range(4) if anchoring(network, i)["wallet"] == "empty")
        assert logged(state, reporter, "insufficient funds")
        height_then = network.status(0)["height"]
        keep_finalizing(network, blocks=5)
        assert network.status(1)["height"] >= height_then + 5
        assert all(network.root_state(i, roots[-1]) == "certified" for i in range(4))
    finally:
        for name in state.bitcoin["wallets"]:
            wallet = wallet_rpc(state, name)
            wallet.call("generatetoaddress", 1, wallet.call("getnewaddress"))
        miner.call("generatetoaddress", regtest.MATURITY_BLOCKS, miner.call("getnewaddress"))
    wait_until(lambda: anchored_on_all(network, roots[-1]), deadline_s=ANCHORED_DEADLINE_S,
               what="anchoring to resume once the wallets are funded")
    assert not any(anchoring(network, i)["wallet"] == "empty" for i in range(4))


def test_an_anchor_stuck_unconfirmed_is_fee_bumped_and_then_confirmed(devnet):
    state, network = devnet
    directory = Path(state.directory)
    node = wallet_rpc(state)
    regtest.stop_miner(state.bitcoin, directory)
    try:
        roots = random_roots(10)
        assert network.submit(0, roots).status_code == 202

        def bumped() -> dict | None:
            for i in range(4):
                for entry in anchors(network, i):
                    own = entry.get("own")
                    if own and own["replaced_txids"] and own["state"] == "broadcast":
                        return own
            return None

        record = wait_until(bumped, deadline_s=60, what="an unconfirmed anchor to be fee-bumped")
        mempool = node.call("getrawmempool")
        assert record["replaced_txids"][-1] not in mempool
        assert Decimal(record["fee_rate_sat_vb"]) > 2
    finally:
        regtest.start_miner(state.bitcoin, directory)
        state.save()
    wait_until(lambda: anchored_on_all(network, roots[-1]), deadline_s=ANCHORED_DEADLINE_S,
               what="the bumped anchor confirmed")


def test_with_a_validator_down_its_anchor_duty_falls_back_to_the_next_one(devnet):
    state, network = devnet
    down = state.nodes[3]
    recorded_before = anchoring(network, 0)["anchors_recorded"]
    cluster.stop_node(down)
    state.save()
    try:
        roots: list[bytes] = []

        def full_rotation_recorded() -> bool:
            batch = random_roots(5)
            if network.submit(len(roots) % 3, batch).status_code == 202:
                roots.extend(batch)
            return anchoring(network, 0)["anchors_recorded"] >= recorded_before + 4

        wait_until(full_rotation_recorded, deadline_s=120, poll_s=0.5,
                   what="four more anchors recorded (a full duty rotation) with validator 3 down")
        wait_until(lambda: all(network.root_state(i, roots[0]) == "anchored" for i in range(3)),
                   deadline_s=ANCHORED_DEADLINE_S, what="roots anchored without validator 3")
    finally:
        cluster.start_node(down)
        state.save()
    wait_until(network.all_ready, deadline_s=60, what="validator 3 back")


def new_block(state: cluster.DevnetState) -> None:
    miner = wallet_rpc(state, regtest.MINER_WALLET)
    miner.call("generatetoaddress", 1, miner.call("getnewaddress"))


def broadcaster_of(network: Network, height: int) -> tuple[int, str]:
    """The validator that broadcast the anchor recorded for ``height``, and its txid."""
    txid = next(e for e in anchors(network, 0) if e["height"] == height)["txid"]
    for i in range(4):
        for entry in anchors(network, i):
            if entry["height"] == height and entry.get("own") and txid in entry["own"]["txid"]:
                return i, txid
    raise AssertionError(f"no validator has an own anchor {txid} at height {height}")


def spend_its_inputs_elsewhere(state: cluster.DevnetState, wallet_name: str, txid: str) -> str:
    """A transaction of ``wallet_name`` spending the inputs of its anchor ``txid`` to itself,
    at a much higher fee, so that it replaces the anchor in the mempool (full RBF): the
    double spend an operator's own wallet use, or a compromised wallet, can make."""
    wallet = wallet_rpc(state, wallet_name)
    decoded = wallet.call("decoderawtransaction", wallet.call("gettransaction", txid)["hex"])
    inputs = [{"txid": i["txid"], "vout": i["vout"]} for i in decoded["vin"]]
    total = sum(
        Decimal(str(wallet.call("decoderawtransaction", wallet.call("gettransaction", i["txid"])["hex"])
                    ["vout"][i["vout"]]["value"]))
        for i in inputs
    )
    raw = wallet.call("createrawtransaction", inputs, {wallet.call("getnewaddress"): str(total - Decimal("0.0002"))})
    return wallet.call("sendrawtransaction", wallet.call("signrawtransactionwithwallet", raw)["hex"])


def test_an_anchor_double_spent_after_it_was_recorded_is_replaced_on_an_idle_chain(devnet):
    state, network = devnet
    directory = Path(state.directory)
    roots = random_roots(10)
    regtest.stop_miner(state.bitcoin, directory)
    try:
        assert network.submit(2, roots).status_code == 202
        mine_while_transactions_wait(state, lambda: anchored_on_all(network, roots[-1]), what="root anchored")
        anchor = root_json(network, 0, roots[-1])["anchor"]
        owner, txid = broadcaster_of(network, anchor["height"])
        node = wallet_rpc(state)
        node.call("invalidateblock", anchor["btc_block_hash"])
        wait_until(lambda: txid in node.call("getrawmempool"), deadline_s=10,
                   what=f"the anchor back in the mempool ({node.call('getrawmempool')})")
        spend_its_inputs_elsewhere(state, state.bitcoin["wallets"][owner], txid)
        assert txid not in node.call("getrawmempool")
        new_block(state)
        new_block(state)
        wait_until(lambda: network.root_state(0, roots[-1]) == "certified", deadline_s=30,
                   what="the roots back to certified: their anchor is double-spent")
        mine_while_transactions_wait(state, lambda: anchored_on_all(network, roots[-1]),
                                     what="a new anchor of the idle chain, recorded and confirmed")
        again = root_json(network, 1, roots[-1])["anchor"]
        assert again["btc_block_hash"] != anchor["btc_block_hash"]
        assert node.call("getblockheader", again["btc_block_hash"])["confirmations"] >= 1
    finally:
        regtest.start_miner(state.bitcoin, directory)
        state.save()


def test_a_conflicting_spend_neither_stalls_anchoring_duty_nor_is_retried_forever(devnet):
    state, network = devnet
    directory = Path(state.directory)
    node = wallet_rpc(state)
    regtest.stop_miner(state.bitcoin, directory)
    try:
        wait_until(lambda: int(node.call("getmempoolinfo")["size"]) == 0 or new_block(state), deadline_s=30,
                   what="an empty mempool")
        roots = random_roots(10)
        assert network.submit(1, roots).status_code == 202

        def in_mempool() -> tuple[int, dict] | None:
            mempool = node.call("getrawmempool")
            for i in range(4):
                for entry in anchors(network, i):
                    own = entry.get("own")
                    if own and own["state"] == "broadcast" and own["txid"] in mempool:
                        return i, own
            return None

        owner, own = wait_until(in_mempool, deadline_s=60, what="an anchor waiting in the mempool")
        log_before = Path(state.nodes[owner].log).read_text(errors="replace")
        spend_its_inputs_elsewhere(state, state.bitcoin["wallets"][owner], own["txid"])
        time.sleep(4)
        log_during = Path(state.nodes[owner].log).read_text(errors="replace")[len(log_before):]
        assert "OP_RETURN outputs" not in log_during, "the foreign spend was taken for a fee bump"
        assert "anchoring paused" not in log_during, "the conflict aborted the anchoring tick"
        new_block(state)
        mine_while_transactions_wait(state, lambda: anchored_on_all(network, roots[-1]),
                                     what="the double-spent checkpoint anchored by a new transaction")
        time.sleep(5)
        log_after = Path(state.nodes[owner].log).read_text(errors="replace")[len(log_before):]
        retries = log_after.count("broadcast_failed")
        assert retries <= 3, f"{retries} broadcast_failed warnings for a double-spent anchor"
        assert "double_spent" in log_after, "the double spend was never reported"
    finally:
        regtest.start_miner(state.bitcoin, directory)
        state.save()


@pytest.mark.parametrize("depth", [8, 15])
def test_a_reorg_deeper_than_the_final_depth_is_followed_and_the_remined_anchor_found(devnet, depth):
    """The anchor's block, ``depth`` deep, is invalidated; a longer chain without it is
    mined, then the same transaction is mined again at its tip, far above its old height."""
    state, network = devnet
    directory = Path(state.directory)
    roots = random_roots(10)
    regtest.stop_miner(state.bitcoin, directory)
    node = wallet_rpc(state)
    try:
        assert network.submit(3, roots).status_code == 202
        mine_while_transactions_wait(state, lambda: anchored_on_all(network, roots[-1]), what="root anchored")
        anchor = root_json(network, 0, roots[-1])["anchor"]
        txid = next(e for e in anchors(network, 0) if e["height"] == anchor["height"])["txid"]
        miner = wallet_rpc(state, regtest.MINER_WALLET)
        miner.call("generatetoaddress", depth - anchor["confirmations"], miner.call("getnewaddress"))
        assert node.call("getblockheader", anchor["btc_block_hash"])["confirmations"] == depth
        time.sleep(3)  # every node sees the anchor past the genesis final depth (3)
        raw = node.call("getrawtransaction", txid, False, anchor["btc_block_hash"])
        node.call("invalidateblock", anchor["btc_block_hash"])
        wait_until(lambda: all(network.root_state(i, roots[-1]) == "certified" for i in range(4)), deadline_s=30,
                   what=f"every node to stop serving the anchor {depth} blocks deep once its block left the best chain")
        miner.call("generatetoaddress", depth + 1, miner.call("getnewaddress"))
        try:  # bitcoind put it back in the mempool and mined it, or dropped it: then send it again
            node.call("sendrawtransaction", raw)
        except BitcoindRPCError as exc:
            assert exc.code in (RPC_VERIFY_ALREADY_IN_CHAIN, RPC_VERIFY_REJECTED), exc
        new_block(state)
        wait_until(lambda: anchored_on_all(network, roots[-1]), deadline_s=ANCHORED_DEADLINE_S,
                   what="the re-mined anchor found in its new block")
        again = root_json(network, 2, roots[-1])["anchor"]
        assert again["btc_block_hash"] != anchor["btc_block_hash"]
        assert again["btc_height"] >= anchor["btc_height"]
        assert all(next(e for e in anchors(network, i) if e["height"] == anchor["height"])["txid"] == txid
                   for i in range(4)), "the checkpoint was anchored anew instead of the re-mined anchor being found"
    finally:
        regtest.start_miner(state.bitcoin, directory)
        state.save()


def test_on_an_idle_chain_one_anchor_is_built_per_checkpoint_and_recorded_without_fallbacks(devnet):
    state, network = devnet
    directory = Path(state.directory)
    regtest.stop_miner(state.bitcoin, directory)
    try:
        builds_before = [Path(e.log).read_text(errors="replace").count("anchor built") for e in state.nodes]
        roots = random_roots(10)
        assert network.submit(0, roots).status_code == 202
        mine_while_transactions_wait(state, lambda: anchored_on_all(network, roots[-1]), what="root anchored")
        time.sleep(2 * FALLBACK_MS / 1000)
        mine_while_transactions_wait(state, lambda: True, what="nothing")
        builds = [Path(e.log).read_text(errors="replace").count("anchor built") - b
                  for e, b in zip(state.nodes, builds_before)]
        assert sum(builds) == 1, f"anchors built per validator for one checkpoint of an idle chain: {builds}"
        assert int(wallet_rpc(state).call("getmempoolinfo")["size"]) == 0
    finally:
        regtest.start_miner(state.bitcoin, directory)
        state.save()
