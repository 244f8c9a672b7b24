"""Each bitcoind reply parser (anchor.replies) and the client's envelope and JSON bounds
(anchor.rpc) against each malformed reply: a healthy answer parses, every corruption of
it is one specific error naming what was wrong."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import pytest

from anchor import replies
from anchor.replies import ReplyShapeError
from anchor.rpc import (
    JSON_DEPTH_MAX,
    JSON_ITEMS_MAX,
    RESPONSE_SIZE_MAX,
    BitcoindReplyInvalid,
    BitcoindRPC,
    BitcoindRPCError,
    BitcoindUnavailable,
    BitcoindWrongNetwork,
    WalletEmptyError,
    decode_json,
)
from proof.hashing import sha256d
from proof.spv import hash_to_hex
from tests.hostile_bitcoind import (
    BLOCK_HASH,
    HEADER,
    MERKLE_BLOCK,
    PSBT,
    RAW_TX,
    TXID,
    HostileBitcoind,
    Reply,
    healthy_result,
)

PASSWORD = "parse-test-secret"
H = hash_to_hex(BLOCK_HASH)
T = hash_to_hex(TXID)
OTHER = "ab" * 32
# Values of the wrong JSON type for any field, and the out-of-range numbers and bad hex that
# a parser must refuse wherever a field of that kind is.
WRONG_TYPES: list[Any] = [None, True, "12", [], {}, Decimal("1.5")]
BAD_INTS: list[Any] = [*WRONG_TYPES, -2, 10**30]
BAD_HASHES: list[Any] = [None, 7, True, "", "ab", "ab" * 31, "ab" * 33, "zz" * 32, OTHER + "00"]
BAD_HEX: list[Any] = [None, 7, True, "abc", "zz", "0x00"]


def good(method: str, *params: Any) -> Any:
    return healthy_result(method, list(params))


# (name, parser with its context, healthy result, {field: values that must each be refused})
CASES: list[tuple[str, Callable[[Any], Any], Any, dict[str, list[Any]]]] = [
    ("getblockchaininfo", replies.parse_chain_info, good("getblockchaininfo"), {
        "chain": [None, 5, "", "bitcoin", "x" * 40],
        "blocks": [*BAD_INTS, -1],
        "bestblockhash": BAD_HASHES,
    }),
    ("getblockheader", lambda v: replies.parse_header_info(v, BLOCK_HASH), good("getblockheader", H, True), {
        "hash": [*BAD_HASHES, OTHER],
        "height": [*BAD_INTS, -1],
        "confirmations": [*BAD_INTS, 0, -5],
        "previousblockhash": [7, "ab", True],
    }),
    ("getblock", lambda v: replies.parse_block_info(v, BLOCK_HASH), good("getblock", H, 1), {
        "hash": [OTHER, None],
        "tx": [None, [], "txids", [7], [OTHER[:10]], {"a": 1}],
        "confirmations": [0, "1"],
    }),
    ("gettransaction", lambda v: replies.parse_wallet_tx(v, TXID), good("gettransaction", T), {
        "txid": [*BAD_HASHES, OTHER],
        "confirmations": [*WRONG_TYPES, 10**30],
        "blockhash": [7, "ab", True],
        "hex": BAD_HEX,
        "fee": [True, "-0.0001", Decimal("-0.000000001"), Decimal("-21000001"), Decimal("NaN")],
        "replaced_by_txid": [7, "ab"],
        "mempoolconflicts": [7, "x", [7], ["ab"]],
    }),
    ("fundrawtransaction", replies.parse_funded_tx, {"hex": RAW_TX.hex(), "fee": Decimal("0.00000300")}, {
        "hex": [*BAD_HEX, ""],
        "fee": [None, True, "0.0003", Decimal("-0.00000001"), Decimal("0.000000001"), 10**30],
    }),
    ("signrawtransactionwithwallet", replies.parse_signed_tx, {"hex": RAW_TX.hex(), "complete": True}, {
        "hex": BAD_HEX,
        "complete": [None, 1, "true", []],
        "errors": [7, "bad", {}],
    }),
    ("psbtbumpfee", replies.parse_psbt_bump, good("psbtbumpfee", T, {}), {
        "psbt": [None, 7, "", "not base64!", "a" * (replies.PSBT_SIZE_MAX + 1)],
        "fee": [None, "1", Decimal("-1"), True],
        "errors": [7, "bad"],
    }),
    ("walletprocesspsbt", replies.parse_processed_psbt, {"psbt": PSBT, "complete": True}, {
        "psbt": [None, 7, "***"],
        "complete": [None, 0, "yes"],
    }),
    ("finalizepsbt", replies.parse_finalized_psbt, {"hex": RAW_TX.hex(), "complete": True}, {
        "hex": BAD_HEX,
        "complete": [None, 1, "true"],
    }),
]
REQUIRED = {
    "getblockchaininfo": ["chain", "blocks", "bestblockhash"],
    "getblockheader": ["hash", "height", "confirmations", "previousblockhash"],
    "getblock": ["hash", "height", "confirmations", "tx"],
    "gettransaction": ["txid", "confirmations", "hex", "blockhash"],
    "fundrawtransaction": ["hex", "fee"],
    "signrawtransactionwithwallet": ["hex", "complete"],
    "psbtbumpfee": ["psbt", "fee"],
    "walletprocesspsbt": ["psbt", "complete"],
    "finalizepsbt": ["hex", "complete"],
}
NOT_OBJECTS: list[Any] = [None, 12, "text", [1, 2], True, Decimal("1.5")]


def case_ids(cases: list[tuple[str, Any, Any, dict[str, list[Any]]]]) -> list[str]:
    return [name for name, *_ in cases]


@pytest.mark.parametrize(("name", "parse", "healthy", "bad"), CASES, ids=case_ids(CASES))
def test_a_healthy_result_parses_and_extra_keys_are_ignored(name, parse, healthy, bad):
    assert parse(healthy) == parse({**healthy, "added_in_a_later_release": [1, {"x": None}]})


@pytest.mark.parametrize(("name", "parse", "healthy", "bad"), CASES, ids=case_ids(CASES))
def test_a_result_that_is_not_an_object_is_refused(name, parse, healthy, bad):
    for value in NOT_OBJECTS:
        with pytest.raises(ReplyShapeError, match="expected a JSON object"):
            parse(value)


@pytest.mark.parametrize(("name", "parse", "healthy", "bad"), CASES, ids=case_ids(CASES))
def test_a_result_missing_a_required_key_is_refused(name, parse, healthy, bad):
    for key in REQUIRED[name]:
        with pytest.raises(ReplyShapeError, match=key):
            parse({k: v for k, v in healthy.items() if k != key})


@pytest.mark.parametrize(("name", "parse", "healthy", "bad"), CASES, ids=case_ids(CASES))
def test_a_field_of_the_wrong_type_range_or_length_is_refused(name, parse, healthy, bad):
    for key, values in bad.items():
        for value in values:
            with pytest.raises(ReplyShapeError):
                parse({**healthy, key: value})
                pytest.fail(f"{name}: {key}={value!r} was accepted")


def test_hashes_come_back_in_internal_byte_order_and_amounts_as_decimal():
    info = replies.parse_chain_info(good("getblockchaininfo"))
    assert info == replies.ChainInfo(chain="regtest", blocks=120, best_block_hash=BLOCK_HASH)
    wallet_tx = replies.parse_wallet_tx(good("gettransaction", T), TXID)
    assert wallet_tx.block_hash == BLOCK_HASH and wallet_tx.fee_btc == Decimal("-0.00000300")


def test_a_block_below_the_genesis_needs_a_previous_block_and_a_stale_one_is_minus_one():
    header = good("getblockheader", H, True)
    with pytest.raises(ReplyShapeError, match="no previousblockhash"):
        replies.parse_header_info({k: v for k, v in header.items() if k != "previousblockhash"}, BLOCK_HASH)
    genesis = replies.parse_header_info({**header, "height": 0, "previousblockhash": None}, BLOCK_HASH)
    assert genesis.previous is None
    assert not replies.parse_header_info({**header, "confirmations": -1}, BLOCK_HASH).on_best_chain


def test_a_raw_header_must_be_80_bytes_and_hash_to_the_block_asked_for():
    assert replies.parse_raw_header(HEADER.hex(), BLOCK_HASH) == HEADER
    for value in [HEADER.hex()[:-2], HEADER.hex() + "00", "zz" * 80, None, 80]:
        with pytest.raises(ReplyShapeError):
            replies.parse_raw_header(value, BLOCK_HASH)
    with pytest.raises(ReplyShapeError, match="does not hash to block"):
        replies.parse_raw_header(HEADER.hex(), sha256d(b"other"))


def test_a_raw_transaction_must_parse_and_have_the_txid_asked_for():
    assert replies.parse_raw_transaction(RAW_TX.hex(), TXID) == RAW_TX
    with pytest.raises(ReplyShapeError, match="does not parse"):
        replies.parse_raw_transaction(RAW_TX.hex()[:-8], TXID)
    with pytest.raises(ReplyShapeError, match="not the one asked for"):
        replies.parse_raw_transaction(RAW_TX.hex(), BLOCK_HASH)
    with pytest.raises(ReplyShapeError, match="above"):
        replies.parse_raw_transaction("00" * (replies.TX_SIZE_MAX + 1), TXID)


def test_hashes_merkle_blocks_and_mempool_entries_have_their_shapes():
    assert replies.parse_hash(H) == BLOCK_HASH
    for value in BAD_HASHES:
        with pytest.raises(ReplyShapeError):
            replies.parse_hash(value)
    assert replies.parse_merkle_block_hex(MERKLE_BLOCK.hex()) == MERKLE_BLOCK
    for value in [MERKLE_BLOCK.hex()[:100], "00" * (replies.MERKLE_BLOCK_SIZE_MAX + 1), None, 5]:
        with pytest.raises(ReplyShapeError):
            replies.parse_merkle_block_hex(value)
    assert replies.parse_mempool_entry({"vsize": 150}) is True
    with pytest.raises(ReplyShapeError):
        replies.parse_mempool_entry("in mempool")


def test_an_unfinished_psbt_has_no_transaction():
    assert replies.parse_finalized_psbt({"psbt": PSBT, "complete": False}) == replies.FinalizedPsbt(None, False)


# --------------------------------------------------------------------------- JSON bounds


def test_json_nested_deeper_than_the_bound_is_refused_before_decoding():
    assert decode_json(b"[" * JSON_DEPTH_MAX + b"]" * JSON_DEPTH_MAX) is not None
    with pytest.raises(ReplyShapeError, match=f"nested {JSON_DEPTH_MAX + 1} deep"):
        decode_json(b"[" * (JSON_DEPTH_MAX + 1) + b"]" * (JSON_DEPTH_MAX + 1))
    with pytest.raises(ReplyShapeError, match="nested 100000 deep"):
        decode_json(b"[" * 100_000)


def test_brackets_inside_strings_count_for_nothing_escaped_quotes_included():
    text = 'x\\"[[[[' + "[" * 100 + '\\\\'
    assert decode_json(json.dumps({"a": [text, '"{{{{']}).encode()) == {"a": [text, '"{{{{']}


def test_json_with_more_values_than_the_bound_is_refused():
    with pytest.raises(ReplyShapeError, match=f"more than {JSON_ITEMS_MAX} JSON values"):
        decode_json(b"[" + b"0," * JSON_ITEMS_MAX + b"0]")


def test_nan_duplicate_keys_and_huge_number_literals_are_not_json_bitcoind_sends():
    for payload in [b'{"a": NaN}', b'{"a": Infinity}', b'{"a": 1, "a": 2}', b"1" + b"0" * 5000, b"\xff\xfe"]:
        with pytest.raises(ReplyShapeError, match="not JSON"):
            decode_json(payload)


def test_numbers_with_a_fraction_are_decimal():
    assert decode_json(b'{"fee": 0.00000300}') == {"fee": Decimal("0.00000300")}


# --------------------------------------------------------------------------- the envelope


class CannedRPC(BitcoindRPC):
    """A client whose HTTP exchange returns a canned (status, body); ``{id}`` in the body
    becomes the request's id."""

    def __init__(self, status: int, body: bytes) -> None:
        super().__init__(1, user="pantheon", password=PASSWORD, timeout_s=1)
        self.status, self.body = status, body

    def _post(self, method: str, body: bytes, timeout_s: float, *, refresh_credentials: bool) -> tuple[int, bytes]:
        self._credentials(refresh_credentials)
        request_id = json.loads(body)["id"]
        return self.status, self.body.replace(b"{id}", str(request_id).encode())


def reply(result: Any) -> bytes:
    return json.dumps({"result": result, "error": None, "id": 0}, default=float).replace('"id": 0', '"id": {id}').encode()


@pytest.mark.parametrize(("status", "body", "reason"), [
    (200, b"[1, 2]", "not a JSON object"),
    (200, b'{"result": 1, "error": null, "id": 999}', "answers request id 999"),
    (200, b'{"result": 1, "error": null}', "answers request id None"),
    (200, b'{"result": 1, "error": null, "id": {id}, "extra": 1}', "unknown keys"),
    (200, b'{"error": null, "id": {id}}', "neither a result nor an error"),
    (200, b'{"result": null, "error": 7, "id": {id}}', "integer code and a message"),
    (200, b'{"result": null, "error": {"code": "x", "message": "m"}, "id": {id}}', "integer code"),
    (200, b'{"result": null, "error": {"code": -1}, "id": {id}}', "integer code and a message"),
    (500, b"Internal Server Error", "HTTP 500, not JSON"),
    (502, b'{"result": 1, "error": null, "id": {id}}', "HTTP 502 without an error object"),
    (200, b"<html>" + PASSWORD.encode() + b"</html>", "not JSON"),
])
def test_a_malformed_envelope_is_reply_invalid_naming_method_and_reason(status, body, reason):
    with pytest.raises(BitcoindReplyInvalid, match="answered getblockcount with an invalid reply") as raised:
        CannedRPC(status, body).call("getblockcount")
    assert reason in raised.value.reason
    assert PASSWORD not in str(raised.value)


def test_a_well_formed_error_is_an_rpc_error_with_the_password_redacted():
    body = b'{"result": null, "error": {"code": -8, "message": "bad ' + PASSWORD.encode() + b'"}, "id": {id}}'
    with pytest.raises(BitcoindRPCError) as raised:
        CannedRPC(500, body).call("getblockcount")
    assert raised.value.code == -8 and PASSWORD not in str(raised.value) and "<redacted>" in str(raised.value)


def test_insufficient_funds_is_wallet_empty_and_busy_is_unavailable():
    body = b'{"result": null, "error": {"code": -6, "message": "Insufficient funds"}, "id": {id}}'
    with pytest.raises(WalletEmptyError):
        CannedRPC(500, body).call("fundrawtransaction")
    with pytest.raises(BitcoindUnavailable, match="busy"):
        CannedRPC(503, b"Work queue depth exceeded").call("getblockcount")


def test_typed_calls_name_the_method_and_what_was_wrong():
    with pytest.raises(BitcoindReplyInvalid, match=r"answered getblockchaininfo .*'blocks'"):
        CannedRPC(200, reply({"chain": "regtest", "bestblockhash": H})).chain_info("regtest")
    with pytest.raises(BitcoindWrongNetwork, match="follows chain 'main', but \\[bitcoin\\] network expects 'regtest'"):
        CannedRPC(200, reply({**good("getblockchaininfo"), "chain": "main"})).chain_info("regtest")
    with pytest.raises(BitcoindReplyInvalid, match="answered getblockheader .*not the one asked for"):
        CannedRPC(200, reply(good("getblockheader", OTHER, True))).header_info(BLOCK_HASH)


def test_unknown_blocks_and_transactions_are_none_not_errors():
    unknown = b'{"result": null, "error": {"code": -5, "message": "Block not found"}, "id": {id}}'
    assert CannedRPC(500, unknown).header_info(BLOCK_HASH) is None
    assert CannedRPC(500, unknown).wallet_tx(TXID) is None
    assert CannedRPC(500, unknown).in_mempool(TXID) is False


def test_a_reply_above_the_size_bound_is_refused(monkeypatch):
    monkeypatch.setattr("anchor.rpc.RESPONSE_SIZE_MAX", 100)
    with HostileBitcoind() as server:
        server.set(Reply(result="ab" * 100))
        rpc = BitcoindRPC(server.port, user=server.user, password=server.password, timeout_s=2)
        with pytest.raises(BitcoindReplyInvalid, match="larger than 100 bytes"):
            rpc.call("getbestblockhash")
    assert RESPONSE_SIZE_MAX >= 2 * replies.TX_SIZE_MAX


def test_a_reply_trickling_in_ends_at_the_calls_deadline_not_per_read():
    with HostileBitcoind() as server:
        server.set(Reply(result="ab" * 32, trickle_s=0.05))
        rpc = BitcoindRPC(server.port, user=server.user, password=server.password, timeout_s=0.5)
        started = time.monotonic()
        with pytest.raises(BitcoindUnavailable, match="no answer within 0.5 s"):
            rpc.call("getbestblockhash")
        assert time.monotonic() - started < 1.5


def test_a_body_cut_short_of_its_content_length_is_reply_invalid():
    with HostileBitcoind() as server:
        server.set(Reply(body=b'{"result": "ab', content_length_extra=50))
        rpc = BitcoindRPC(server.port, user=server.user, password=server.password, timeout_s=2)
        with pytest.raises(BitcoindReplyInvalid, match="cut short after 14 of the 64 bytes it announced"):
            rpc.call("getbestblockhash")


def test_wallet_errors_are_kept_short_for_the_message_whatever_their_shape():
    errors = [{"txid": T, "vout": 0, "error": "Input not found or already spent"}, "x" * 10_000, {"deep": [[1]]}]
    signed = replies.parse_signed_tx({"hex": RAW_TX.hex(), "complete": False, "errors": errors})
    assert signed.errors[0] == "'Input not found or already spent'"
    assert signed.errors[1].endswith("... (10000 characters)") and len(signed.errors[1]) < 100
    assert signed.errors[2] == "an object"
