"""A hostile bitcoind for tests: a real JSON-RPC HTTP server on loopback that answers badly.

bitcoind is outside a validator's trust boundary, so tests point a validator (in process,
or a real ``pantheon node run``) at this server and make it answer each RPC method with
whatever a buggy, misconfigured, upgraded, compromised or slow bitcoind could send: a null
result, wrong JSON types, missing keys, non-JSON, HTTP errors, a truncated body, deeply
nested JSON, no answer at all, a trickle, another network, hex of the wrong length,
negative or huge integers. It can also proxy every call to a real bitcoind, so one test
can show a validator recovering once its bitcoind is healthy again (``proxy_to``).

Behaviour is a table ``method -> Reply`` plus a default, swapped at any time from the
test's thread (``set``); every request is counted per method (``calls``).
"""

from __future__ import annotations

import base64
import http.client
import json
import socketserver
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from decimal import Decimal
from typing import Any

from bitcoin.core import CMutableTransaction, CMutableTxIn, CMutableTxOut, COutPoint, CScript

from proof.hashing import sha256d
from proof.spv import hash_to_hex, parse_transaction

# Longest a "never answers" reply holds its connection (the server's close ends it sooner).
SILENT_HOLD_S_MAX = 60.0
PROXY_TIMEOUT_S = 30.0
USER = "hostile"
PASSWORD = "hostile-secret-pw-do-not-log"


@dataclass(frozen=True)
class Reply:
    """One canned answer. ``body`` None means "JSON-RPC envelope around ``result``"."""

    result: Any = None
    body: bytes | None = None
    status: int = 200
    content_length_extra: int = 0
    """Announce this many bytes more than are sent, then close: a truncated body."""
    silent: bool = False
    """Read the request, never answer."""
    trickle_s: float = 0.0
    """Send the answer one byte per ``trickle_s`` seconds."""


# In a raw ``body``, replaced by the request's id (so that only the fault shown is wrong).
ID = b"@ID"


def envelope(result: Any, request_id: Any) -> bytes:
    """A JSON-RPC reply; amounts (Decimal) go out as JSON numbers, as bitcoind writes them."""
    return json.dumps({"result": result, "error": None, "id": request_id}, default=float).encode()


def nested(depth: int) -> bytes:
    """A reply nested ``depth`` arrays deep: Python's json recurses once per level."""
    return b'{"result": ' + b"[" * depth + b"]" * depth + b', "error": null, "id": ' + ID + b"}"


GOOD_HASH = "00" * 32
# Hostile answers by name, for parametrized tests; each is shown to be survived.
HOSTILE_REPLIES: dict[str, Reply] = {
    "null_result": Reply(result=None),
    "int_result": Reply(result=12),
    "string_result": Reply(result="main"),
    "list_result": Reply(result=[1, 2, 3]),
    "missing_keys": Reply(result={"chain": "regtest"}),
    "blocks_not_int": Reply(result={"chain": "regtest", "blocks": "many", "bestblockhash": GOOD_HASH}),
    "blocks_bool": Reply(result={"chain": "regtest", "blocks": True, "bestblockhash": GOOD_HASH}),
    "blocks_negative": Reply(result={"chain": "regtest", "blocks": -5, "bestblockhash": GOOD_HASH}),
    "blocks_huge": Reply(result={"chain": "regtest", "blocks": 10**30, "bestblockhash": GOOD_HASH}),
    "blocks_float": Reply(result={"chain": "regtest", "blocks": 1.5, "bestblockhash": GOOD_HASH}),
    "short_hash": Reply(result={"chain": "regtest", "blocks": 5, "bestblockhash": "abcd"}),
    "wrong_network": Reply(result={"chain": "main", "blocks": 900_000, "bestblockhash": GOOD_HASH}),
    "non_json": Reply(body=b"<html><body>502 Bad Gateway</body></html>"),
    "http_500_text": Reply(status=500, body=b"Internal Server Error"),
    "http_401": Reply(status=401, body=b""),
    "truncated": Reply(body=b'{"result": {"chain": "regtest", "blo', content_length_extra=40),
    "deeply_nested": Reply(body=nested(100_000)),
    "nan": Reply(body=b'{"result": NaN, "error": null, "id": @ID}'),
    "error_not_object": Reply(body=b'{"result": null, "error": 7, "id": @ID}'),
    "envelope_not_object": Reply(body=b"[1, 2]"),
    "huge_number_literal": Reply(body=b'{"result": 1' + b"0" * 5000 + b', "error": null, "id": @ID}'),
}


@dataclass
class _Behaviour:
    replies: dict[str, Reply] = field(default_factory=dict)
    default: Reply | None = None
    upstream: Callable[[], tuple[int, str]] | None = None
    """When set, unlisted methods go to the real bitcoind at (port, cookie file contents)."""
    healthy: bool = False
    """When set, unlisted methods get healthy_result's answer."""


class HostileBitcoind:
    """The server; use as a context manager (``url``, ``user``, ``password`` for the node config)."""

    def __init__(self) -> None:
        self._behaviour = _Behaviour(default=HOSTILE_REPLIES["null_result"])
        self._lock = threading.Lock()
        self._closing = threading.Event()
        self.calls: Counter[str] = Counter()
        owner = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                return

            def do_POST(self) -> None:
                owner._serve(self)

        self._server = _QuietServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, name="hostile-bitcoind", daemon=True)

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    user = USER
    password = PASSWORD

    def __enter__(self) -> HostileBitcoind:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._closing.set()
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=10)

    def set(self, default: Reply | None = None, **replies: Reply) -> None:
        """Answer every method with ``default`` except those named (method=Reply); no proxy."""
        with self._lock:
            self._behaviour = _Behaviour(replies=dict(replies), default=default)

    def heal(self, **replies: Reply) -> None:
        """Answer every method as a healthy regtest bitcoind would (healthy_result), except those named."""
        with self._lock:
            self._behaviour = _Behaviour(replies=dict(replies), healthy=True)

    def proxy_to(self, port: int, cookie_file: Path, **replies: Reply) -> None:
        """Forward every method to the real bitcoind on ``port`` (cookie re-read per call),
        except those named, which keep their canned answers."""

        def upstream() -> tuple[int, str]:
            return port, cookie_file.read_text().strip()

        with self._lock:
            self._behaviour = _Behaviour(replies=dict(replies), upstream=upstream)

    # ---- serving (server threads) ----------------------------------------------------

    def _serve(self, handler: BaseHTTPRequestHandler) -> None:
        length = int(handler.headers.get("Content-Length") or 0)
        request = handler.rfile.read(length)
        try:
            parsed = json.loads(request)
            method, request_id, params = str(parsed.get("method")), parsed.get("id"), list(parsed.get("params"))
        except (ValueError, AttributeError, TypeError):
            method, request_id, params = "?", None, []
        with self._lock:
            behaviour = self._behaviour
            self.calls[method] += 1
        if not _authorized(handler.headers.get("Authorization")):
            _send(handler, Reply(status=401, body=b""), request_id)
            return
        reply = behaviour.replies.get(method)
        if reply is None and behaviour.upstream is not None:
            _forward(handler, behaviour.upstream, request)
            return
        if reply is None and behaviour.healthy:
            reply = Reply(result=healthy_result(method, params))
        _send(handler, reply or behaviour.default or HOSTILE_REPLIES["null_result"], request_id, self._closing)


class _QuietServer(socketserver.ThreadingTCPServer):
    """A client that gives up (its timeout) while an answer is trickling in is expected here."""

    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        return


def _authorized(header: str | None) -> bool:
    expected = "Basic " + base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
    return header == expected


def _send(handler: BaseHTTPRequestHandler, reply: Reply, request_id: Any,
          closing: threading.Event | None = None) -> None:
    if reply.silent:
        (closing or threading.Event()).wait(SILENT_HOLD_S_MAX)
        handler.close_connection = True
        return
    if reply.body is None:
        body = envelope(reply.result, request_id)
    else:
        body = reply.body.replace(ID, json.dumps(request_id).encode())
    handler.send_response(reply.status)
    handler.send_header("Content-Type", "application/json")
    handler.send_header("Content-Length", str(len(body) + reply.content_length_extra))
    handler.end_headers()
    if reply.trickle_s:
        for i in range(len(body)):
            handler.wfile.write(body[i : i + 1])
            handler.wfile.flush()
            time.sleep(reply.trickle_s)
    else:
        handler.wfile.write(body)
    handler.wfile.flush()
    if reply.content_length_extra:
        handler.close_connection = True


def _forward(handler: BaseHTTPRequestHandler, upstream: Callable[[], tuple[int, str]], request: bytes) -> None:
    port, cookie = upstream()
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=PROXY_TIMEOUT_S)
    try:
        connection.request("POST", handler.path, request, {
            "Authorization": "Basic " + base64.b64encode(cookie.encode()).decode(),
            "Content-Type": "application/json",
        })
        response = connection.getresponse()
        status, body = response.status, response.read()
    except (OSError, http.client.HTTPException):
        status, body = 503, b"upstream bitcoind unreachable"
    finally:
        connection.close()
    _send(handler, Reply(status=status, body=body), None)



# --------------------------------------------------------------------------- healthy answers


def wallet_like_tx(payload_script: bytes = b"\x6a\x04PNTH") -> bytes:
    """A signed-looking transaction: one replaceable input, change, an OP_RETURN output."""
    tx = CMutableTransaction(
        [CMutableTxIn(COutPoint(b"\x11" * 32, 0), nSequence=0xFFFFFFFD)],
        [CMutableTxOut(10_000, CScript(b"\x00\x14" + b"\x22" * 20)), CMutableTxOut(0, CScript(payload_script))],
        nVersion=2,
    )
    return tx.serialize()


def _mined_header(merkle_root: bytes) -> bytes:
    """An 80-byte regtest header (nBits 0x207fffff) over ``merkle_root`` with valid proof of work."""
    target = 0x7FFFFF << (8 * (0x20 - 3))
    for nonce in range(1 << 16):
        header = (
            (0x20000000).to_bytes(4, "little") + b"\x33" * 32 + merkle_root
            + (1_700_000_000).to_bytes(4, "little") + (0x207FFFFF).to_bytes(4, "little") + nonce.to_bytes(4, "little")
        )
        if int.from_bytes(sha256d(header), "little") <= target:
            return header
    raise AssertionError("no nonce below the regtest target in 65536 tries")


@dataclass(frozen=True)
class MinedTx:
    """A transaction in a block of its own: what a healthy bitcoind says about them."""

    raw_tx: bytes
    txid: bytes
    header: bytes
    block_hash: bytes
    merkle_block: bytes
    """gettxoutproof's BIP 37 merkle block: header, one transaction, its hash, flag bit 1."""


def mined(raw_tx: bytes) -> MinedTx:
    txid = parse_transaction(raw_tx).txid
    header = _mined_header(txid)
    merkle_block = header + (1).to_bytes(4, "little") + b"\x01" + txid + b"\x01\x01"
    return MinedTx(raw_tx=raw_tx, txid=txid, header=header, block_hash=sha256d(header), merkle_block=merkle_block)


DEFAULT_MINED = mined(wallet_like_tx())
RAW_TX, TXID, HEADER = DEFAULT_MINED.raw_tx, DEFAULT_MINED.txid, DEFAULT_MINED.header
BLOCK_HASH, MERKLE_BLOCK = DEFAULT_MINED.block_hash, DEFAULT_MINED.merkle_block
BTC_HEIGHT = 118
TIP_HEIGHT = 120
PSBT = "cHNidP8BAAoCAAAAAAAAAAAAAAA="


def healthy_result(method: str, params: list[Any], chain: MinedTx = DEFAULT_MINED) -> Any:
    """What a healthy regtest bitcoind could answer to ``method(*params)``: the shape the
    method promises, about the block or transaction asked for where the answer names it,
    with ``chain``'s transaction as the one in every block and wallet answer."""
    asked = str(params[0]) if params else ""
    if method == "getblockchaininfo":
        return {"chain": "regtest", "blocks": TIP_HEIGHT, "headers": TIP_HEIGHT,
                "bestblockhash": hash_to_hex(chain.block_hash), "warnings": ""}
    if method == "getbestblockhash":
        return hash_to_hex(chain.block_hash)
    if method == "getblockheader" and len(params) > 1 and params[1] is False:
        return chain.header.hex()
    if method == "getblock" and len(params) > 1 and params[1] == 0:
        return (chain.header + b"\x01" + chain.raw_tx).hex()
    if method == "listtransactions":
        return []
    if method == "estimatesmartfee":
        return {"errors": ["Insufficient data or no feerate found"], "blocks": 0}
    if method in ("getblockheader", "getblock"):
        # chain's block is at BTC_HEIGHT; any other block asked for is the one below it.
        height = BTC_HEIGHT if asked == hash_to_hex(chain.block_hash) else BTC_HEIGHT - 1
        info = {"hash": asked, "height": height, "confirmations": TIP_HEIGHT - height + 1,
                "previousblockhash": "33" * 32}
        return {**info, "tx": [hash_to_hex(chain.txid)]} if method == "getblock" else info
    if method == "getrawtransaction":
        return chain.raw_tx.hex()
    if method == "gettxoutproof":
        return chain.merkle_block.hex()
    if method == "getmempoolentry":
        return {"vsize": 150, "fees": {"base": Decimal("0.00000300")}}
    if method == "gettransaction":
        return {"txid": asked, "confirmations": 1, "blockhash": hash_to_hex(chain.block_hash), "hex": chain.raw_tx.hex(),
                "fee": Decimal("-0.00000300"), "mempoolconflicts": []}
    if method == "sendrawtransaction":
        return hash_to_hex(parse_transaction(bytes.fromhex(asked)).txid)
    if method == "fundrawtransaction":
        # anchor.tx.build_unfunded: version, no inputs, one output (value, script length, script).
        unfunded = bytes.fromhex(asked)
        script = unfunded[15 : 15 + unfunded[14]]
        return {"hex": wallet_like_tx(script).hex(), "fee": Decimal("0.00000300"), "changepos": 0}
    if method == "signrawtransactionwithwallet":
        return {"hex": asked, "complete": True}
    if method == "psbtbumpfee":
        return {"psbt": PSBT, "origfee": Decimal("0.00000300"), "fee": Decimal("0.00000500"), "errors": []}
    if method == "walletprocesspsbt":
        return {"psbt": asked, "complete": True}
    if method == "finalizepsbt":
        return {"hex": chain.raw_tx.hex(), "complete": True}
    return None
