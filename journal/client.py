"""The two node routes the journal uses, over the standard library's HTTP client.

- ``POST /v1/roots`` with ``Authorization: Bearer <token>`` and ``{"roots": [hex]}``:
  answered 202 with ``{"receipts": [{"root", "state", "received_at_ms", "node",
  "index"?}]}``. Submitting a root twice is idempotent on the node (same index), so a
  retry after a lost answer is always safe.
- ``GET /v1/proofs/{root}``: the proof bundle (CBOR), 404 while the root is unknown or
  not yet certified.

Retries: connection failures, timeouts, 429, 500, 502, 503 and 504 are retried with
exponential backoff (honouring ``Retry-After`` up to a cap); every other status is an
answer and ends the call. stdlib ``urllib`` keeps the journal free of HTTP libraries,
so a producer embeds it with only what ``proof/`` needs.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from proof.bundle import BUNDLE_SIZE_MAX

from journal.errors import SubmitError

TIMEOUT_S = 10.0
ATTEMPTS = 5
BACKOFF_S = 0.5
RETRY_AFTER_MAX_S = 30.0
RESPONSE_SIZE_MAX = BUNDLE_SIZE_MAX
RETRIED_STATUSES = frozenset({429, 500, 502, 503, 504})


@dataclass(frozen=True)
class Answer:
    status: int
    body: bytes
    retry_after_s: float | None


class NodeClient:
    """One node's API. ``sleep`` is injectable so tests of the retry policy take no time."""

    def __init__(
        self,
        url: str,
        *,
        token: str | None = None,
        timeout_s: float = TIMEOUT_S,
        attempts: int = ATTEMPTS,
        backoff_s: float = BACKOFF_S,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise SubmitError(f"node URL {url!r} must look like http://HOST:PORT")
        if attempts < 1:
            raise ValueError("attempts must be at least 1")
        self.url = url.rstrip("/")
        self._token = token
        self._timeout_s = timeout_s
        self._attempts = attempts
        self._backoff_s = backoff_s
        self._sleep = sleep

    def submit(self, root: bytes) -> dict[str, Any]:
        """The node's receipt for ``root`` (retried until answered); SubmitError if refused."""
        if self._token is None:
            raise SubmitError("submitting needs the node's bearer token (--token, or PANTHEON_TOKEN)")
        body = json.dumps({"roots": [root.hex()]}).encode()
        headers = {"Authorization": f"Bearer {self._token}", "Content-Type": "application/json"}
        answer = self._call("POST", "/v1/roots", body, headers)
        if answer.status != 202:
            raise SubmitError(f"node {self.url} refused the head: HTTP {answer.status} {_error_text(answer.body)}")
        return _receipt(answer.body, root, self.url)

    def proof(self, root: bytes) -> bytes | None:
        """The node's current proof bundle for ``root``, or None while it has none."""
        answer = self._call("GET", f"/v1/proofs/{root.hex()}", None, {})
        if answer.status == 404:
            return None
        if answer.status != 200:
            raise SubmitError(f"node {self.url}: proof of {root.hex()[:16]}…: HTTP {answer.status} "
                              f"{_error_text(answer.body)}")
        return answer.body

    def _call(self, method: str, path: str, body: bytes | None, headers: dict[str, str]) -> Answer:
        last = ""
        retry_after_s: float | None = None
        for attempt in range(self._attempts):
            if attempt:
                self._sleep(self._delay_s(attempt, retry_after_s))
                retry_after_s = None
            try:
                answer = self._once(method, path, body, headers)
            except (urllib.error.URLError, OSError) as exc:
                last = f"not reachable: {getattr(exc, 'reason', exc)}"
                continue
            if answer.status not in RETRIED_STATUSES:
                return answer
            retry_after_s = answer.retry_after_s
            last = f"HTTP {answer.status} {_error_text(answer.body)}"
        raise SubmitError(f"node {self.url}{path}: {last} (gave up after {self._attempts} attempts)")

    def _delay_s(self, attempt: int, retry_after_s: float | None) -> float:
        backoff = self._backoff_s * 2 ** (attempt - 1)
        return min(RETRY_AFTER_MAX_S, max(backoff, retry_after_s or 0.0))

    def _once(self, method: str, path: str, body: bytes | None, headers: dict[str, str]) -> Answer:
        request = urllib.request.Request(self.url + path, data=body, method=method, headers=headers)
        try:
            with urllib.request.urlopen(request, timeout=self._timeout_s) as response:
                return Answer(response.status, _bounded(response), None)
        except urllib.error.HTTPError as error:
            with error:
                return Answer(error.code, _bounded(error), _retry_after(error.headers.get("Retry-After")))


def _bounded(response: Any) -> bytes:
    data = response.read(RESPONSE_SIZE_MAX + 1)
    if len(data) > RESPONSE_SIZE_MAX:
        raise SubmitError(f"answer larger than {RESPONSE_SIZE_MAX} bytes")
    return data


def _retry_after(text: str | None) -> float | None:
    if text is None or not text.strip().isdigit():
        return None
    return float(text.strip())


def _error_text(body: bytes) -> str:
    try:
        doc = json.loads(body)
    except ValueError:
        return body[:200].decode("utf-8", "replace")
    return str(doc.get("error", ""))[:200] if isinstance(doc, dict) else ""


def _receipt(body: bytes, root: bytes, url: str) -> dict[str, Any]:
    try:
        doc = json.loads(body)
        receipts = doc["receipts"]
        (receipt,) = receipts
        ok = (
            isinstance(receipt, dict)
            and receipt.get("root") == root.hex()
            and isinstance(receipt.get("state"), str)
            and isinstance(receipt.get("received_at_ms"), int)
            and isinstance(receipt.get("index", 0), int)
        )
    except (ValueError, KeyError, TypeError):
        ok = False
    if not ok:
        raise SubmitError(f"node {url} answered 202 without a receipt for root {root.hex()[:16]}…")
    return receipt
