"""A small, blocking JSON-RPC client for bitcoind, with errors an operator can act on.

One HTTP connection per call: bitcoind is on loopback, calls are few (a handful per
anchor), and a fresh connection never inherits a half-read response after a timeout.
Amounts come back as Decimal, never float. Callers in trio run calls in a thread
(``trio.to_thread.run_sync``); the per-call timeout bounds each one.
"""

from __future__ import annotations

import base64
import http.client
import itertools
import json
from decimal import Decimal
from pathlib import Path
from typing import Any

from proof.errors import PantheonError

TIMEOUT_S_DEFAULT = 30.0
# getblock/getrawtransaction of a full 4 MWU block, hex and verbose, fit well under this.
RESPONSE_SIZE_MAX = 64 * 1024 * 1024
RPC_PARAMS_MAX = 16

# bitcoind RPC error codes (src/rpc/protocol.h) that get their own class or message.
RPC_WALLET_ERROR = -4
RPC_WALLET_INSUFFICIENT_FUNDS = -6
RPC_IN_WARMUP = -28


class BitcoindUnavailable(PantheonError):
    """bitcoind did not answer: not running, wrong port, or too slow."""


class BitcoindAuthError(PantheonError):
    """bitcoind answered but refused the credentials."""


class BitcoindRPCError(PantheonError):
    """bitcoind answered the call with a JSON-RPC error."""

    def __init__(self, method: str, code: int, message: str, description: str | None = None) -> None:
        super().__init__(description or f"bitcoind {method} failed with error {code}: {message}")
        self.method = method
        self.code = code
        self.message = message


class WalletEmptyError(BitcoindRPCError):
    """The wallet cannot pay for the transaction."""

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
            self._auth_header = "Basic " + base64.b64encode(secret.encode()).decode("ascii")
        return self._auth_header

    def call(self, method: str, *params: Any, timeout_s: float | None = None) -> Any:
        """Call ``method``; return its result or raise one of this module's errors."""
        if len(params) > RPC_PARAMS_MAX:
            raise ValueError(f"{method}: {len(params)} parameters, above {RPC_PARAMS_MAX}")
        body = json.dumps(
            {"jsonrpc": "1.0", "id": next(self._ids), "method": method, "params": list(params)},
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
            reply = json.loads(payload, parse_float=Decimal)
        except ValueError as exc:
            raise BitcoindRPCError(method, status, f"non-JSON reply (HTTP {status}): {payload[:200]!r}") from exc
        if not isinstance(reply, dict):
            raise BitcoindRPCError(method, status, f"reply is not a JSON object (HTTP {status})")
        error = reply.get("error")
        if error:
            code = int(error.get("code", 0)) if isinstance(error, dict) else 0
            message = str(error.get("message", error)) if isinstance(error, dict) else str(error)
            if _is_insufficient_funds(code, message):
                raise WalletEmptyError(method, code, message, self.wallet_name)
            raise BitcoindRPCError(method, code, message)
        if status != http.client.OK:
            raise BitcoindRPCError(method, status, f"HTTP {status} without an error object")
        return reply.get("result")

    def _post(self, method: str, body: bytes, timeout_s: float, *, refresh_credentials: bool) -> tuple[int, bytes]:
        path = "/" if self.wallet_name is None else f"/wallet/{self.wallet_name}"
        headers = {
            "Authorization": self._credentials(refresh_credentials),
            "Content-Type": "application/json",
        }
        connection = http.client.HTTPConnection(self.host, self.port, timeout=timeout_s)
        try:
            connection.request("POST", path, body, headers)
            response = connection.getresponse()
            payload = response.read(RESPONSE_SIZE_MAX + 1)
        except TimeoutError as exc:
            raise BitcoindUnavailable(
                f"bitcoind at {self.address} is not reachable: {method} got no answer within {timeout_s:g} s"
            ) from exc
        except (OSError, http.client.HTTPException) as exc:
            raise BitcoindUnavailable(
                f"bitcoind at {self.address} is not reachable: {method}: {exc!r}; "
                "is it running, with -server and this -rpcport?"
            ) from exc
        finally:
            connection.close()
        if len(payload) > RESPONSE_SIZE_MAX:
            raise BitcoindRPCError(method, response.status, f"reply larger than {RESPONSE_SIZE_MAX} bytes")
        return response.status, payload


def is_warming_up(error: BitcoindRPCError) -> bool:
    """bitcoind is up but still loading (block index, wallet): try again shortly."""
    return error.code == RPC_IN_WARMUP

