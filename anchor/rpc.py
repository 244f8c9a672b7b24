"""A small, blocking JSON-RPC client for bitcoind, with errors an operator can act on.

One HTTP connection per call: bitcoind is on loopback, calls are few (a handful per
anchor), and a fresh connection never inherits a half-read response after a timeout.
Amounts come back as Decimal, never float. Callers in trio run calls in a thread
(``trio.to_thread.run_sync``); the timeout bounds each whole call, however slowly
the other side answers.

bitcoind is outside the validator's trust boundary. Everything it sends is bounded
(size, JSON nesting and value count) before it is decoded, the JSON-RPC envelope is
checked (an object with result/error/id, our id, a well-formed error), and the node
reads results only through the typed methods of BitcoindRPC, which parse them with
anchor.replies. Whatever is wrong ends as one error of the BitcoindError family,
whose message names the bitcoind, the method and what was wrong, and never the
credentials (bitcoind's own text is redacted before it goes into a message).
"""

from __future__ import annotations

import base64
import http.client
import itertools
import json
import socket
import time
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any, TypeVar

from anchor import replies
from anchor.replies import ReplyShapeError
from proof.errors import PantheonError
from proof.spv import hash_to_hex

T = TypeVar("T")

TIMEOUT_S_DEFAULT = 30.0
# getrawtransaction of the largest transaction (4 MB, so 8 MB of hex) fits under this.
RESPONSE_SIZE_MAX = 16 * 1024 * 1024
# bitcoind's replies nest a few levels (getblock verbosity 3 about 6); the bound has room.
JSON_DEPTH_MAX = 32
# Values in one reply: a block's txids (replies.BLOCK_TX_COUNT_MAX) with room to spare.
JSON_ITEMS_MAX = 1 << 18
RPC_PARAMS_MAX = 16
ENVELOPE_KEYS = frozenset({"result", "error", "id", "jsonrpc"})
ERROR_MESSAGE_SIZE_MAX = 500
EXCERPT_SIZE = 60
# Credentials shorter than this are not searched for in messages (they would blank out words).
SECRET_SIZE_MIN = 4

# bitcoind RPC error codes (src/rpc/protocol.h) that get their own class or message.
RPC_WALLET_ERROR = -4
RPC_INVALID_ADDRESS_OR_KEY = -5  # unknown txid (wallet, mempool) or block
RPC_WALLET_INSUFFICIENT_FUNDS = -6
RPC_IN_WARMUP = -28


class BitcoindError(PantheonError):
    """Anything that went wrong talking to bitcoind. ``kind`` labels it in metrics and status."""

    kind = "bitcoind"


class BitcoindUnavailable(BitcoindError):
    """bitcoind did not answer: not running, wrong port, or too slow."""

    kind = "unavailable"


class BitcoindAuthError(BitcoindError):
    """bitcoind answered but refused the credentials."""

    kind = "auth"


class BitcoindRPCError(BitcoindError):
    """bitcoind answered the call with a JSON-RPC error."""

    kind = "rpc_error"

    def __init__(self, method: str, code: int, message: str, description: str | None = None) -> None:
        super().__init__(description or f"bitcoind {method} failed with error {code}: {message}")
        self.method = method
        self.code = code
        self.message = message


class WalletEmptyError(BitcoindRPCError):
    """The wallet cannot pay for the transaction."""

    kind = "wallet_empty"

    def __init__(self, method: str, code: int, message: str, wallet: str | None) -> None:
        super().__init__(
            method,
            code,
            message,
            f"bitcoind wallet {wallet or '(default)'} has insufficient funds for {method} "
            f"({message}, error {code}): send coins to it, or on regtest mine to one of its "
            "addresses (generatetoaddress 101 <address>)",
        )
        self.wallet = wallet


class BitcoindReplyInvalid(BitcoindError):
    """bitcoind (or whatever answers at its address) sent a reply that is not what the
    method promises: not JSON, too large or deep, cut short, the wrong shape, types,
    ranges or hex lengths, or about another block or transaction than the one asked for."""

    kind = "reply_invalid"

    def __init__(self, address: str, method: str, reason: str) -> None:
        super().__init__(
            f"bitcoind at {address} answered {method} with an invalid reply: {reason}; "
            "check that rpc_url reaches a Bitcoin Core or Knots node (not a proxy or another "
            "service) of a supported version"
        )
        self.method = method
        self.reason = reason


class BitcoindWrongNetwork(BitcoindError):
    """bitcoind follows another Bitcoin network than the one configured."""

    kind = "wrong_network"

    def __init__(self, address: str, chain: str, network: str) -> None:
        super().__init__(
            f"bitcoind at {address} follows chain {chain!r}, but [bitcoin] network expects {network!r}: "
            "point rpc_url at a bitcoind on that network"
        )
        self.chain = chain
        self.network = network


def _is_insufficient_funds(code: int, message: str) -> bool:
    return code in (RPC_WALLET_ERROR, RPC_WALLET_INSUFFICIENT_FUNDS) and "insufficient funds" in message.lower()


def _json_default(value: object) -> str:
    if isinstance(value, Decimal):
        # bitcoind reads amounts and fee rates from strings as well as numbers.
        return str(value)
    raise TypeError(f"cannot send {type(value).__name__} to bitcoind")


class BitcoindRPC:
    """JSON-RPC to one bitcoind (and optionally one of its wallets).

    Credentials: either ``cookie_path`` (``<datadir>/<chain>/.cookie``, re-read when
    bitcoind refuses it, since a restart writes a new one) or ``user``/``password``.

    ``call`` returns the raw result of any method (devnet and test tooling use it); the
    node uses only the typed methods below it, each of which parses its result with
    anchor.replies, so that nothing bitcoind says reaches the node unchecked.
    """

    def __init__(
        self,
        port: int,
        *,
        host: str = "127.0.0.1",
        cookie_path: Path | None = None,
        user: str | None = None,
        password: str | None = None,
        wallet: str | None = None,
        timeout_s: float = TIMEOUT_S_DEFAULT,
    ) -> None:
        if (cookie_path is None) == (user is None):
            raise ValueError("give bitcoind credentials as cookie_path or as user and password, not both")
        self.host = host
        self.port = port
        self.cookie_path = cookie_path
        self.user = user
        self.password = password
        self.wallet_name = wallet
        self.timeout_s = timeout_s
        self._ids = itertools.count(1)
        self._auth_header: str | None = None
        self._secrets: tuple[str, ...] = ()

    def wallet(self, name: str) -> BitcoindRPC:
        """A client for wallet ``name`` on the same bitcoind (path /wallet/<name>)."""
        return BitcoindRPC(
            self.port,
            host=self.host,
            cookie_path=self.cookie_path,
            user=self.user,
            password=self.password,
            wallet=name,
            timeout_s=self.timeout_s,
        )

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    def _credentials(self, refresh: bool) -> str:
        if self._auth_header is None or refresh:
            if self.cookie_path is not None:
                try:
                    secret = self.cookie_path.read_text().strip()
                except OSError as exc:
                    raise BitcoindUnavailable(
                        f"bitcoind at {self.address} is not reachable: cannot read its cookie "
                        f"file {self.cookie_path} ({exc.strerror}); is it running with that datadir?"
                    ) from exc
            else:
                secret = f"{self.user}:{self.password}"
            encoded = base64.b64encode(secret.encode()).decode("ascii")
            self._auth_header = "Basic " + encoded
            password = secret.partition(":")[2]
            self._secrets = tuple(s for s in (secret, password, encoded) if len(s) >= SECRET_SIZE_MIN)
        return self._auth_header

    def _redact(self, text: str) -> str:
        """``text`` (from bitcoind, or whatever answers) with the credentials blanked out:
        a hostile server could echo them back, and messages end up in logs."""
        for secret in self._secrets:
            text = text.replace(secret, "<redacted>")
        return text

    def call(self, method: str, *params: Any, timeout_s: float | None = None) -> Any:
        """Call ``method``; return its result or raise one of this module's errors.

        The whole call, headers and body, takes at most the timeout; the reply is bounded
        in size, nesting and item count before it is decoded, and its envelope checked.
        """
        if len(params) > RPC_PARAMS_MAX:
            raise ValueError(f"{method}: {len(params)} parameters, above {RPC_PARAMS_MAX}")
        request_id = next(self._ids)
        body = json.dumps(
            {"jsonrpc": "1.0", "id": request_id, "method": method, "params": list(params)},
            default=_json_default,
        ).encode()
        timeout = self.timeout_s if timeout_s is None else timeout_s
        status, payload = self._post(method, body, timeout, refresh_credentials=False)
        if status == http.client.UNAUTHORIZED and self.cookie_path is not None:
            status, payload = self._post(method, body, timeout, refresh_credentials=True)
        if status in (http.client.UNAUTHORIZED, http.client.FORBIDDEN):
            source = f"cookie file {self.cookie_path}" if self.cookie_path else f"user {self.user!r}"
            raise BitcoindAuthError(
                f"bitcoind at {self.address} refused the RPC credentials ({source}, HTTP {status})"
            )
        try:
            reply = decode_json(payload)
        except ReplyShapeError as exc:
            if status == http.client.SERVICE_UNAVAILABLE:
                raise BitcoindUnavailable(
                    f"bitcoind at {self.address} is busy: {method} got HTTP 503 (work queue full?); "
                    "it is tried again on the next tick"
                ) from exc
            raise self._invalid(method, f"HTTP {status}, {exc}: {_excerpt(payload)}") from exc
        return self._result(method, status, reply, request_id)

    def _result(self, method: str, status: int, reply: object, request_id: int) -> Any:
        """The result inside a JSON-RPC reply envelope, or its error raised."""
        if not isinstance(reply, dict):
            raise self._invalid(method, f"HTTP {status}, the reply is not a JSON object")
        unknown = set(reply) - ENVELOPE_KEYS
        if unknown:
            raise self._invalid(method, f"the reply has unknown keys {sorted(unknown)[:4]}")
        if reply.get("id") != request_id:
            raise self._invalid(method, f"the reply answers request id {reply.get('id')!r}, not {request_id}")
        error = reply.get("error")
        if error is not None:
            if not isinstance(error, dict) or type(error.get("code")) is not int or not isinstance(
                error.get("message"), str
            ):
                raise self._invalid(method, "the error is not an object with an integer code and a message")
            code, message = error["code"], self._redact(error["message"][:ERROR_MESSAGE_SIZE_MAX])
            if _is_insufficient_funds(code, message):
                raise WalletEmptyError(method, code, message, self.wallet_name)
            raise BitcoindRPCError(method, code, message)
        if status != http.client.OK:
            raise self._invalid(method, f"HTTP {status} without an error object")
        if "result" not in reply:
            raise self._invalid(method, "the reply has neither a result nor an error")
        return reply["result"]

    def _invalid(self, method: str, reason: str) -> BitcoindReplyInvalid:
        return BitcoindReplyInvalid(self.address, method, self._redact(reason))

    def _post(self, method: str, body: bytes, timeout_s: float, *, refresh_credentials: bool) -> tuple[int, bytes]:
        path = "/" if self.wallet_name is None else f"/wallet/{self.wallet_name}"
        headers = {
            "Authorization": self._credentials(refresh_credentials),
            "Content-Type": "application/json",
        }
        connection = _DeadlineConnection(self.host, self.port, timeout_s)
        try:
            connection.request("POST", path, body, headers)
            response = connection.getresponse()
            payload = response.read(RESPONSE_SIZE_MAX + 1)
            # Bytes the Content-Length announced that never came (a read of a set size does
            # not raise IncompleteRead); None when the length was not announced.
            missing = response.length or 0
        except TimeoutError as exc:
            raise BitcoindUnavailable(
                f"bitcoind at {self.address} is not reachable: {method} got no answer within "
                f"{timeout_s:g} s (or only part of one)"
            ) from exc
        except (OSError, http.client.HTTPException) as exc:
            raise BitcoindUnavailable(
                f"bitcoind at {self.address} is not reachable: {method}: {self._redact(repr(exc))[:300]}; "
                "is it running, with -server and this -rpcport?"
            ) from exc
        finally:
            connection.close()
        if len(payload) > RESPONSE_SIZE_MAX:
            raise self._invalid(method, f"the reply is larger than {RESPONSE_SIZE_MAX} bytes")
        if missing:
            raise self._invalid(
                method, f"the reply was cut short after {len(payload)} of the {len(payload) + missing} bytes it announced"
            )
        return response.status, payload

    # ---- typed calls: every one the node makes ---------------------------------------

    def _parse(self, method: str, parse: Callable[..., T], value: object, *context: Any) -> T:
        try:
            return parse(value, *context)
        except ReplyShapeError as exc:
            raise self._invalid(method, str(exc)) from exc

    def _call_or_none(self, method: str, *params: Any) -> Any:
        """``method``'s result, or None when bitcoind does not know the txid or block."""
        try:
            return self.call(method, *params)
        except BitcoindRPCError as exc:
            if exc.code == RPC_INVALID_ADDRESS_OR_KEY:
                return None
            raise

    def chain_info(self, network: str) -> replies.ChainInfo:
        """getblockchaininfo, which must say bitcoind follows ``network`` (its chain name)."""
        info = self._parse("getblockchaininfo", replies.parse_chain_info, self.call("getblockchaininfo"))
        if info.chain != network:
            raise BitcoindWrongNetwork(self.address, info.chain, network)
        return info

    def best_block_hash(self) -> bytes:
        return self._parse("getbestblockhash", replies.parse_hash, self.call("getbestblockhash"))

    def header_info(self, block_hash: bytes) -> replies.HeaderInfo | None:
        """Where block ``block_hash`` is, or None if bitcoind does not know it."""
        value = self._call_or_none("getblockheader", hash_to_hex(block_hash), True)
        return None if value is None else self._parse("getblockheader", replies.parse_header_info, value, block_hash)

    def raw_header(self, block_hash: bytes) -> bytes:
        value = self.call("getblockheader", hash_to_hex(block_hash), False)
        return self._parse("getblockheader", replies.parse_raw_header, value, block_hash)

    def block_info(self, block_hash: bytes) -> replies.BlockInfo:
        value = self.call("getblock", hash_to_hex(block_hash), 1)
        return self._parse("getblock", replies.parse_block_info, value, block_hash)

    def raw_block(self, block_hash: bytes) -> bytes:
        """The serialized block (getblock verbosity 0), checked to hash to ``block_hash``
        by its reader (anchor.scan)."""
        value = self.call("getblock", hash_to_hex(block_hash), 0)
        return self._parse("getblock", replies.parse_raw_block, value)

    def raw_transaction(self, txid: bytes, block_hash: bytes) -> bytes:
        """Transaction ``txid`` of block ``block_hash`` (the block is always named: without
        -txindex bitcoind cannot find a confirmed transaction otherwise)."""
        value = self.call("getrawtransaction", hash_to_hex(txid), False, hash_to_hex(block_hash))
        return self._parse("getrawtransaction", replies.parse_raw_transaction, value, txid)

    def merkle_block(self, txid: bytes, block_hash: bytes) -> bytes:
        value = self.call("gettxoutproof", [hash_to_hex(txid)], hash_to_hex(block_hash))
        return self._parse("gettxoutproof", replies.parse_merkle_block_hex, value)

    def in_mempool(self, txid: bytes) -> bool:
        value = self._call_or_none("getmempoolentry", hash_to_hex(txid))
        return value is not None and self._parse("getmempoolentry", replies.parse_mempool_entry, value)

    def send_raw_transaction(self, raw_tx: bytes, max_fee_rate_btc_kvb: Decimal) -> bytes:
        """Broadcast; the txid bitcoind accepted (it refuses above ``max_fee_rate_btc_kvb``)."""
        value = self.call("sendrawtransaction", raw_tx.hex(), max_fee_rate_btc_kvb)
        return self._parse("sendrawtransaction", replies.parse_hash, value)

    def wallet_tx(self, txid: bytes) -> replies.WalletTx | None:
        """The wallet's view of ``txid``, or None if the wallet does not know it."""
        value = self._call_or_none("gettransaction", hash_to_hex(txid))
        return None if value is None else self._parse("gettransaction", replies.parse_wallet_tx, value, txid)

    def fee_estimate(self, target_blocks: int) -> replies.FeeEstimate:
        value = self.call("estimatesmartfee", target_blocks)
        return self._parse("estimatesmartfee", replies.parse_fee_estimate, value)

    def wallet_txids(self, count_max: int) -> tuple[bytes, ...]:
        """The txids of the wallet's ``count_max`` most recent transaction entries, newest first."""
        count = min(count_max, replies.WALLET_TXS_LISTED_MAX)
        value = self.call("listtransactions", "*", count, 0, True)
        return self._parse("listtransactions", replies.parse_wallet_txids, value)

    def fund_raw_transaction(self, raw_tx: bytes, fee_rate_sat_vb: Decimal) -> replies.FundedTx:
        value = self.call(
            "fundrawtransaction", raw_tx.hex(), {"fee_rate": Decimal(fee_rate_sat_vb), "replaceable": True}
        )
        return self._parse("fundrawtransaction", replies.parse_funded_tx, value)

    def sign_raw_transaction(self, raw_tx: bytes) -> replies.SignedTx:
        value = self.call("signrawtransactionwithwallet", raw_tx.hex())
        return self._parse("signrawtransactionwithwallet", replies.parse_signed_tx, value)

    def psbt_bump_fee(self, txid: bytes, fee_rate_sat_vb: Decimal) -> replies.PsbtBump:
        value = self.call("psbtbumpfee", hash_to_hex(txid), {"fee_rate": Decimal(fee_rate_sat_vb)})
        return self._parse("psbtbumpfee", replies.parse_psbt_bump, value)

    def process_psbt(self, psbt: str) -> replies.ProcessedPsbt:
        value = self.call("walletprocesspsbt", psbt, True)
        return self._parse("walletprocesspsbt", replies.parse_processed_psbt, value)

    def finalize_psbt(self, psbt: str) -> replies.FinalizedPsbt:
        value = self.call("finalizepsbt", psbt, True)
        return self._parse("finalizepsbt", replies.parse_finalized_psbt, value)


class _DeadlineSocket(socket.socket):
    """A socket whose reads all end by one deadline: http.client's timeout is per read,
    so a server trickling a byte at a time could otherwise hold a call for ever."""

    deadline: float = 0.0

    def recv_into(self, buffer: Any, nbytes: int = 0, flags: int = 0) -> int:
        remaining = self.deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError("the call's deadline passed")
        self.settimeout(remaining)
        return super().recv_into(buffer, nbytes, flags)


class _DeadlineConnection(http.client.HTTPConnection):
    """An HTTP connection whose whole exchange (connect, send, headers, body) takes at most ``timeout_s``."""

    def __init__(self, host: str, port: int, timeout_s: float) -> None:
        super().__init__(host, port, timeout=timeout_s)
        self._deadline = time.monotonic() + timeout_s

    def connect(self) -> None:
        plain = socket.create_connection((self.host, self.port), self.timeout)
        sock = _DeadlineSocket(plain.family, plain.type, plain.proto, fileno=plain.detach())
        sock.deadline = self._deadline
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.sock = sock


def decode_json(payload: bytes) -> Any:
    """JSON from bitcoind, bounded before it is decoded: nesting at most JSON_DEPTH_MAX,
    at most JSON_ITEMS_MAX values (Python's decoder recurses per level and allocates per
    value); no NaN or Infinity, no duplicate keys; numbers with a fraction as Decimal.

    The bounds are counted on the structural characters outside strings: escaped
    backslashes and quotes are dropped first, so every remaining quote opens or closes
    a string, and splitting on quotes leaves the outside of strings at even positions.
    """
    plain = payload.replace(b"\\\\", b"").replace(b'\\"', b"")
    outside = b"".join(plain.translate(None, _NOT_STRUCTURAL).split(b'"')[0::2])
    opened = outside.count(b"[") + outside.count(b"{")
    if opened + outside.count(b",") > JSON_ITEMS_MAX:
        raise ReplyShapeError(f"more than {JSON_ITEMS_MAX} JSON values")
    if opened > JSON_DEPTH_MAX:
        depth = max(itertools.accumulate(_DEPTH_STEP[c] for c in outside.translate(None, b",")))
        if depth > JSON_DEPTH_MAX:
            raise ReplyShapeError(f"JSON nested {depth} deep, above {JSON_DEPTH_MAX}")
    try:
        return json.loads(payload, parse_float=Decimal, parse_constant=_no_constant, object_pairs_hook=_unique_keys)
    except (ValueError, RecursionError) as exc:
        raise ReplyShapeError(f"not JSON ({exc})") from exc


_NOT_STRUCTURAL = bytes(c for c in range(256) if c not in b'"[]{},')
_DEPTH_STEP = {ord("["): 1, ord("{"): 1, ord("]"): -1, ord("}"): -1}


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a number bitcoind sends")


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result = dict(pairs)
    if len(result) != len(pairs):
        raise ValueError("an object repeats a key")
    return result


def _excerpt(payload: bytes) -> str:
    """The start of a reply for an error message, as text an operator can read."""
    text = payload[:EXCERPT_SIZE].decode("utf-8", "replace")
    return repr(text) + (f" ({len(payload)} bytes)" if len(payload) > EXCERPT_SIZE else "")


def is_warming_up(error: BitcoindRPCError) -> bool:
    """bitcoind is up but still loading (block index, wallet): try again shortly."""
    return error.code == RPC_IN_WARMUP
