"""Fuzz every bitcoind RPC call site with random and structured-malformed replies.

Each reply the client receives is drawn by hypothesis, per call: a healthy answer (so that
the code goes on to its next call), the healthy answer with one corruption (a key dropped,
a value of another type, hex cut or lengthened, a number out of range, a null), a random
JSON value, "not found" (-5) or another error object, another HTTP status, or random bytes. The replies enter
below the HTTP layer (``_post``), so decoding, the envelope and the typed parsers all run.

Properties: a typed call returns its type or raises a BitcoindError; the anchoring tick
never raises; the anchor check before a vote raises only BitcoindError or
AnchorRefInvalid (both withhold the vote); building, bumping, tracking an anchor and
extracting SPV material raise only their documented errors; no message carries the
RPC password. Examples per target: FUZZ_EXAMPLES (``--hypothesis-show-statistics``
prints the counts); set PANTHEON_FUZZ_EXAMPLES for a long run.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from anchor.payload import encode_script
from anchor.replies import BlockInfo, ChainInfo, FinalizedPsbt, FundedTx, HeaderInfo, ProcessedPsbt, PsbtBump
from anchor.replies import FeeEstimate, SignedTx, WalletTx
from anchor.rpc import BitcoindError, BitcoindRPC
from anchor.spv import SpvMaterialError, extract_spv_material
from anchor.state import AnchorStateError, built, encode_record
from anchor.tracker import AnchorTracker
from anchor.tx import AnchorTx, AnchorTxError, bump_fee, create_anchor
from node.anchoring import Anchorer, AnchorRefInvalid
from node.config import BitcoinSection
from proof.chain import AnchorRef, Genesis
from proof.errors import DecodeError
from proof.spv import hash_to_hex
from storage.anchor_store import AnchorStore
from storage.chain_store import ChainStore
from storage.db import Store
from tests.chain_fixtures import TestChain as ChainFixture
from tests.chain_fixtures import make_chain, random_roots
from tests.hostile_bitcoind import BTC_HEIGHT, DEFAULT_MINED, MinedTx, healthy_result, mined, wallet_like_tx

FUZZ_EXAMPLES = int(os.environ.get("PANTHEON_FUZZ_EXAMPLES", "150"))
PASSWORD = "fuzz-secret-password"
FUZZ_SETTINGS = settings(
    max_examples=FUZZ_EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large]
)
# The errors each call site documents; anything else escaping is a bug.
ANCHOR_ERRORS = (BitcoindError, AnchorTxError, AnchorStateError, SpvMaterialError, DecodeError)

json_scalars = st.one_of(
    st.none(), st.booleans(), st.integers(min_value=-(2**70), max_value=2**70),
    st.decimals(allow_nan=False, allow_infinity=False, places=8), st.text(max_size=12),
)
json_values = st.recursive(
    json_scalars, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)


def corrupt(data: st.DataObject, value: Any) -> Any:
    """One structural corruption of a healthy result."""
    if isinstance(value, dict) and value:
        key = data.draw(st.sampled_from(sorted(value)))
        how = data.draw(st.sampled_from(["drop", "replace", "corrupt"]))
        if how == "drop":
            return {k: v for k, v in value.items() if k != key}
        if how == "replace":
            return {**value, key: data.draw(json_values)}
        return {**value, key: corrupt(data, value[key])}
    if isinstance(value, str):
        return data.draw(st.sampled_from([value[:-1], value[:-2], value + "00", value.upper(), "zz" + value[2:], "", 7]))
    if isinstance(value, bool):
        return not value
    if isinstance(value, int):
        return data.draw(st.sampled_from([-1, 0, -(10**30), 10**30, str(value), True, Decimal("0.5")]))
    if isinstance(value, list):
        return data.draw(st.sampled_from([[], value + value, [7], "list", None]))
    return data.draw(json_values)


def envelope(result: Any, request_id: int) -> bytes:
    return json.dumps({"result": result, "error": None, "id": request_id}, default=float).encode()


class FuzzedRPC(BitcoindRPC):
    """A client whose every HTTP exchange is answered by a reply drawn from ``data``."""

    def __init__(self, data: st.DataObject, chain: MinedTx = DEFAULT_MINED) -> None:
        super().__init__(1, user="pantheon", password=PASSWORD, wallet="w", timeout_s=1)
        self.data = data
        self.chain = chain

    def wallet(self, name: str) -> BitcoindRPC:
        return self

    def _post(self, method: str, body: bytes, timeout_s: float, *, refresh_credentials: bool) -> tuple[int, bytes]:
        self._credentials(refresh_credentials)
        request = json.loads(body)
        request_id = request["id"]
        healthy = healthy_result(method, request["params"], self.chain)
        kind = self.data.draw(
            st.sampled_from(["healthy"] * 6 + ["corrupt"] * 3 + ["unknown", "json", "error", "status", "bytes", "echo"]),
            label=f"{method} reply",
        )
        if kind == "healthy":
            return 200, envelope(healthy, request_id)
        if kind == "corrupt":
            return 200, envelope(corrupt(self.data, healthy), request_id)
        if kind == "json":
            return 200, envelope(self.data.draw(json_values), request_id)
        if kind == "unknown":
            error = {"code": -5, "message": "No such mempool or blockchain transaction"}
            return 500, json.dumps({"result": None, "error": error, "id": request_id}).encode()
        if kind == "error":
            error = self.data.draw(st.one_of(
                st.fixed_dictionaries({"code": st.sampled_from([-5, -4, -6, -8, -26, -27, -28]), "message": st.text()}),
                json_values,
            ))
            return 500, json.dumps({"result": None, "error": error, "id": request_id}, default=float).encode()
        if kind == "status":
            return self.data.draw(st.sampled_from([400, 404, 500, 502, 503])), self.data.draw(st.binary(max_size=64))
        if kind == "echo":
            return 200, envelope(f"Authorization: {PASSWORD}", request_id)
        return 200, self.data.draw(st.binary(max_size=200))


def assert_secret_free(exc: BaseException) -> None:
    assert PASSWORD not in str(exc), str(exc)


TYPED_CALLS: dict[str, tuple[Callable[[BitcoindRPC], Any], type | tuple[type, ...]]] = {
    "getblockchaininfo": (lambda r: r.chain_info("regtest"), ChainInfo),
    "getbestblockhash": (lambda r: r.best_block_hash(), bytes),
    "getblockheader": (lambda r: r.header_info(DEFAULT_MINED.block_hash), (HeaderInfo, type(None))),
    "getblockheader raw": (lambda r: r.raw_header(DEFAULT_MINED.block_hash), bytes),
    "getblock": (lambda r: r.block_info(DEFAULT_MINED.block_hash), BlockInfo),
    "getrawtransaction": (lambda r: r.raw_transaction(DEFAULT_MINED.txid, DEFAULT_MINED.block_hash), bytes),
    "gettxoutproof": (lambda r: r.merkle_block(DEFAULT_MINED.txid, DEFAULT_MINED.block_hash), bytes),
    "getmempoolentry": (lambda r: r.in_mempool(DEFAULT_MINED.txid), bool),
    "gettransaction": (lambda r: r.wallet_tx(DEFAULT_MINED.txid), (WalletTx, type(None))),
    "sendrawtransaction": (lambda r: r.send_raw_transaction(DEFAULT_MINED.raw_tx, Decimal("0.1")), bytes),
    "fundrawtransaction": (lambda r: r.fund_raw_transaction(DEFAULT_MINED.raw_tx, Decimal(2)), FundedTx),
    "signrawtransactionwithwallet": (lambda r: r.sign_raw_transaction(DEFAULT_MINED.raw_tx), SignedTx),
    "psbtbumpfee": (lambda r: r.psbt_bump_fee(DEFAULT_MINED.txid, Decimal(5)), PsbtBump),
    "walletprocesspsbt": (lambda r: r.process_psbt("cHNidP8="), ProcessedPsbt),
    "finalizepsbt": (lambda r: r.finalize_psbt("cHNidP8="), FinalizedPsbt),
    "getblock raw": (lambda r: r.raw_block(DEFAULT_MINED.block_hash), bytes),
    "estimatesmartfee": (lambda r: r.fee_estimate(6), FeeEstimate),
    "listtransactions": (lambda r: r.wallet_txids(50), tuple),
}


@pytest.mark.parametrize("name", sorted(TYPED_CALLS))
@FUZZ_SETTINGS
@given(data=st.data())
def test_a_typed_call_returns_its_type_or_raises_a_bitcoind_error(name, data):
    call, result_type = TYPED_CALLS[name]
    try:
        result = call(FuzzedRPC(data))
    except BitcoindError as exc:
        assert_secret_free(exc)
        return
    assert isinstance(result, result_type)


# --------------------------------------------------------------------------- the node's call sites


class State:
    """A finalized chain of 3 blocks: block 1 recorded as anchored (by a transaction that
    really anchors it), this validator's own anchor of block 1 in flight, block 2 due
    and this validator on duty. So one tick reaches every call site of the node."""

    def __init__(self) -> None:
        base = make_chain()
        self.genesis = Genesis(
            chain_name="fuzz", validators=base.genesis.validators, created_at_ms=1, anchor_every_blocks=1,
            anchor_every_ms=60_000, anchor_final_depth=3,
        )
        self.test_chain = ChainFixture(keys=base.keys, genesis=self.genesis)
        self.blocks = [self.test_chain.add_block(random_roots(2)) for _ in range(3)]
        self.anchor_tx = wallet_like_tx(encode_script(self.blocks[0].hash))
        self.chain = mined(self.anchor_tx)
        self.ref = AnchorRef(
            txid=self.chain.txid, vout=1, anchored_block_hash=self.blocks[0].hash,
            btc_block_hash=self.chain.block_hash, btc_height=BTC_HEIGHT,
        )

    def anchorer(self, store: Store, data: st.DataObject) -> Anchorer:
        chain, anchors = ChainStore(store), AnchorStore(store)
        for block, proof in zip(self.blocks, self.test_chain.proofs, strict=True):
            with store.batch() as batch:
                chain.stage_finalized(batch, block.header, proof)
                if block.header.height == 3:
                    anchors.stage_recorded(batch, [(1, self.ref)], 3)
            chain.commit_tip(block.header)
        record, _ = built(self.blocks[0].hash, self.anchor_tx, fee_rate_sat_kvb=2000, fee_sat=300, now_ms=0)
        anchors.put_own(1, encode_record(record))
        config = BitcoinSection(
            enabled=True, rpc_user="pantheon", rpc_password=PASSWORD, wallet="w", fallback_ms=10**9,
            rpc_timeout_ms=1000, check_timeout_ms=1000,
        )
        anchorer = Anchorer(genesis=self.genesis, index=1, config=config, resolve=Path, anchors=anchors, chain=chain)
        fuzzed = FuzzedRPC(data, self.chain)
        anchorer.rpc = anchorer.check_rpc = anchorer.tracker.rpc = fuzzed
        return anchorer


STATE = State()


@FUZZ_SETTINGS
@given(data=st.data())
def test_the_anchoring_tick_never_raises_and_the_vote_check_raises_only_what_withholds_the_vote(data):
    with tempfile.TemporaryDirectory() as directory, Store(Path(directory) / "db") as store:
        anchorer = STATE.anchorer(store, data)
        for now_ms in (STATE.blocks[-1].header.timestamp_ms + 1, STATE.blocks[-1].header.timestamp_ms + 5_000):
            anchorer.tick(now_ms)
            assert PASSWORD not in anchorer.status.last_error
            assert anchorer.status.bitcoind_ok or anchorer.refs_to_propose(now_ms, ()) == ()
        try:
            anchorer.check_refs((STATE.ref,))
        except (BitcoindError, AnchorRefInvalid) as exc:
            assert_secret_free(exc)


@FUZZ_SETTINGS
@given(data=st.data())
def test_building_bumping_tracking_and_spv_extraction_raise_only_their_documented_errors(data):
    rpc = FuzzedRPC(data, STATE.chain)
    block_hash = STATE.blocks[0].hash
    tracker = AnchorTracker(rpc, network="regtest", fee_rate_sat_vb=2, fee_rate_max_sat_vb=50,
                            bump_after_ms=1, final_depth=3, attempt_interval_ms=1, on_alert=lambda alert: None)
    steps: list[Callable[[], Any]] = [
        lambda: create_anchor(rpc, block_hash, fee_rate_sat_vb=Decimal(2)),
        lambda: bump_fee(rpc, AnchorTx(hash_to_hex(STATE.chain.txid), STATE.anchor_tx, block_hash, 1, 300, 150),
                         fee_rate_sat_vb=Decimal(5)),
        lambda: tracker.poll(tracker.anchor(block_hash, now_ms=0), now_ms=10_000),
        lambda: extract_spv_material(rpc, hash_to_hex(STATE.chain.txid), hash_to_hex(STATE.chain.block_hash),
                                     network="regtest"),
    ]
    for run in steps:
        try:
            run()
        except ANCHOR_ERRORS as exc:
            assert_secret_free(exc)
