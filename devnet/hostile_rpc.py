"""Garbage answers for a validator's bitcoind RPC, served by a ChaosProxy in ``respond`` mode.

The soak makes one validator's bitcoind hostile for a while: that validator's
``bitcoin.rpc_url`` points at a ChaosProxy in front of the real bitcoind, and for the
hostile period the proxy answers every HTTP request itself with one of the replies
below (chosen by the soak's seeded generator), the kinds issue 12 section 1 lists: a
null or wrongly typed result, deeply nested JSON, non-JSON, an HTTP error, a truncated
body, and no answer at all. The validator must keep finalizing, and anchor again once
the proxy forwards to the real bitcoind.
"""

from __future__ import annotations

import json
import random

import trio

from devnet.chaos_proxy import Responder

REQUEST_BYTES_MAX = 1_048_576
SILENT_S = 15.0
"""Longer than the node's RPC timeout, so "no answer" is a timeout on its side."""
NESTING_DEPTH = 100_000


def _envelope(result: object, request_id: object) -> bytes:
    return json.dumps({"result": result, "error": None, "id": request_id}).encode()


def _http(status: int, body: bytes, *, length: int | None = None) -> bytes:
    announced = len(body) if length is None else length
    head = f"HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nContent-Length: {announced}\r\n"
    return head.encode() + b"Connection: close\r\n\r\n" + body


REPLY_KINDS = ("null_result", "int_result", "nested_json", "not_json", "http_500", "truncated", "silent")


def reply_bytes(kind: str, request_id: object) -> bytes | None:
    """The raw HTTP answer of ``kind`` to a request with ``request_id``; None: never answer."""
    if kind == "null_result":
        return _http(200, _envelope(None, request_id))
    if kind == "int_result":
        return _http(200, _envelope(12, request_id))
    if kind == "nested_json":
        return _http(200, b'{"result": ' + b"[" * NESTING_DEPTH + b"]" * NESTING_DEPTH + b"}")
    if kind == "not_json":
        return _http(200, b"<html>bitcoind is having a bad day</html>")
    if kind == "http_500":
        return _http(500, b"")
    if kind == "truncated":
        return _http(200, _envelope({"blocks": 1}, request_id)[:10], length=1_000)
    if kind == "silent":
        return None
    raise ValueError(f"unknown hostile reply kind {kind!r}; known: {', '.join(REPLY_KINDS)}")


async def read_request_id(stream: trio.SocketStream) -> object:
    """Read one HTTP request (headers, then Content-Length bytes of body); its JSON-RPC id."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = await stream.receive_some(65_536)
        if not chunk or len(data) > REQUEST_BYTES_MAX:
            return None
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length" and value.strip().isdigit():
            length = min(int(value.strip()), REQUEST_BYTES_MAX)
    while len(body) < length:
        chunk = await stream.receive_some(65_536)
        if not chunk:
            break
        body += chunk
    try:
        return json.loads(body).get("id")
    except (ValueError, AttributeError):
        return None


def hostile_responder(rng: random.Random, counts: dict[str, int]) -> Responder:
    """A ChaosProxy responder answering each request with a random garbage kind, counted."""

    async def respond(stream: trio.SocketStream) -> None:
        request_id = await read_request_id(stream)
        kind = rng.choice(REPLY_KINDS)
        counts[kind] = counts.get(kind, 0) + 1
        answer = reply_bytes(kind, request_id)
        if answer is None:
            await trio.sleep(SILENT_S)
            return
        await stream.send_all(answer)

    return respond
