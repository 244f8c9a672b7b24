"""The HTTP API: a thin translation between HTTP and the node's service object.

Reads are public; writes need ``Authorization: Bearer <token>``. Every request is
bounded (body bytes, roots per request, one page of a list) and every overload reaches
the client as a status it can act on: 429 (this node is busy, or this token is past its
rate or holds its share of the mempool: retry soon) or 503 (the mempool is full, retry
later), all with ``Retry-After``. Errors are JSON
``{"error": "..."}``. A malformed path, query or body is always a 400 naming the part
that is wrong (:class:`BadRequest`), never a 500: a client's mistake must not reach the
error log with a traceback, or anyone could flood the log.

Lists (``/v1/evidence``, ``/v1/anchors``) are served a page at a time: ``limit`` (at
most a named maximum) and a cursor (``from`` / ``from_height``); the answer's ``next``
is the cursor of the following page, or null at the end. No request builds more than one
bounded page of JSON on the event loop.

The service object holds all node logic; this module never touches storage or
consensus, so the same app serves the real node and, in unit tests, a stand-in.
Proof material in other encodings (CBOR certified blocks, consistency proofs, anchor
records, the checkpoint as a C2SP signed note) comes from a :class:`ProofSource`.
"""

from __future__ import annotations

import binascii
import json
import logging
import math
from collections.abc import Sequence
from typing import Any, Protocol

from starlette.applications import Starlette
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from node.interface import Overloaded, Page, Receipt, SubmitterQuota, UniformReceipts
from node.mempool import MempoolFull, ShareExceeded
from node.tokens import TokenTable
from proof.errors import PantheonError
from storage.errors import StoreWriteError

log = logging.getLogger("pantheon.api")

ROOT_SIZE = 32
RETRY_AFTER_BUSY_S = 1
RETRY_AFTER_FULL_S = 5
CBOR = "application/cbor"
NOTE = "text/plain; charset=utf-8"
U64_MAX = 2**64 - 1
PROMETHEUS = "text/plain; version=0.0.4; charset=utf-8"
EVIDENCE_PAGE_DEFAULT = 50
EVIDENCE_PAGE_MAX = 100
"""An evidence record is two signed votes (about 7 KB of CBOR, 14 KB as hex): 1.4 MB a page."""
ANCHORS_PAGE_DEFAULT = 100
ANCHORS_PAGE_MAX = 500
"""An anchor entry is under 1 KB of JSON: a page stays under 0.5 MB."""


class BadRequest(PantheonError):
    """A path, query or body the API cannot use; answered 400 with this message."""


class NodeService(Protocol):
    """What the API needs from a node."""

    node_name: str
    tokens: TokenTable

    async def submit(self, roots: bytes, submitter: str) -> Sequence[Receipt]: ...

    def root_status(self, root: bytes) -> dict[str, Any] | None: ...

    def proof_bundle(self, root: bytes) -> bytes | None: ...

    def checkpoint(self) -> dict[str, Any]: ...

    def block(self, height: int) -> dict[str, Any] | None: ...

    def anchors(self, from_height: int, limit: int) -> Page: ...

    def evidence(self, start: int, limit: int) -> Page: ...

    def health(self) -> tuple[bool, dict[str, Any]]: ...

    def metrics(self) -> bytes: ...


class ProofSource(Protocol):
    """Proof material for auditors and monitors (node.bundles.NodeProofs on a real node)."""

    def certified_block(self, height: int) -> bytes | None: ...

    def consistency(self, size1: int, size2: int | None) -> bytes | None: ...

    def anchor_record(self, height: int) -> bytes | None: ...

    def checkpoint_note(self) -> str | None: ...


def quota_of(service: NodeService) -> SubmitterQuota:
    """The submitter quota of a service that has one (``service.quota``), else none metered."""
    quota = getattr(service, "quota", None)
    return quota if isinstance(quota, SubmitterQuota) else SubmitterQuota(0, 0)


def proof_source_of(service: NodeService) -> ProofSource | None:
    """The proof source the service offers (``service.proof_source()``), else None.

    The service builds it: the HTTP layer depends on the service interface, never on
    the node's modules behind it (node.bundles, node.runtime).
    """
    offer = getattr(service, "proof_source", None)
    return offer() if callable(offer) else None


def receipts_json(receipts: Sequence[Receipt], node: str) -> bytes:
    """``{"receipts": [...]}`` with each receipt as Receipt.to_json gives it, written by format:
    a 1,000-root answer built as dicts and encoded by json cost 7 % of a loaded node's CPU.
    Every value is hex, a fixed word or an integer, except the node's name, which json quotes."""
    name = json.dumps(node)
    if isinstance(receipts, UniformReceipts):
        if not receipts:
            return b'{"receipts":[]}'
        # The roots in hex with a separator every 32 bytes, which becomes the one shape's
        # seam: every step runs in C, none per root in Python.
        tail = f'","state":"{receipts.state}","received_at_ms":{int(receipts.received_at_ms)},"node":{name}}}'
        return ('{"receipts":[{"root":"' + receipts.roots.hex("|", 32).replace("|", tail + ',{"root":"')
                + tail + "]}").encode()
    parts = [
        f'{{"root":"{r.root.hex()}","state":"{r.state}","received_at_ms":{int(r.received_at_ms)},"node":{name}'
        + ("}" if r.index is None else f',"index":{int(r.index)}}}')
        for r in receipts
    ]
    return ('{"receipts":[' + ",".join(parts) + "]}").encode()


def error(status: int, message: str, *, retry_after_s: int | None = None) -> JSONResponse:
    headers = {"Retry-After": str(retry_after_s)} if retry_after_s is not None else None
    return JSONResponse({"error": message}, status_code=status, headers=headers)


def parse_root(text: str) -> bytes:
    """32 bytes from exactly 64 hex digits (``bytes.fromhex`` would also skip spaces)."""
    if len(text) != 2 * ROOT_SIZE:
        raise BadRequest(f"a root is {2 * ROOT_SIZE} hex digits, got {len(text)} characters")
    try:
        return binascii.unhexlify(text)
    except (binascii.Error, ValueError):
        raise BadRequest(f"root {text[:16]!r}... is not hex") from None


class TooManyRoots(BadRequest):
    """More roots in one request than the node takes (413, not 400: split the batch)."""


def parse_submission(body: bytes, content_type: str, roots_max: int) -> bytes:
    """The roots of a POST body as n*32 bytes; BadRequest (or TooManyRoots) says what is wrong."""
    if content_type == "application/octet-stream":
        if len(body) % ROOT_SIZE:
            raise BadRequest(f"octet-stream body must be a multiple of {ROOT_SIZE} bytes")
        count = len(body) // ROOT_SIZE
        data = body
    else:
        try:
            doc = json.loads(body)
        except ValueError as exc:  # JSONDecodeError, UnicodeDecodeError, over-long integers
            raise BadRequest(f"body is not JSON: {str(exc)[:200]}") from None
        except RecursionError:
            raise BadRequest('body nests too deeply; it must be {"roots": ["<64 hex>", ...]}') from None
        if not isinstance(doc, dict) or set(doc) != {"roots"} or not isinstance(doc["roots"], list):
            raise BadRequest('body must be {"roots": ["<64 hex>", ...]}')
        count = len(doc["roots"])
        if count > roots_max:
            raise TooManyRoots(f"{count} roots in one request; the maximum is {roots_max}")
        if not all(isinstance(item, str) for item in doc["roots"]):
            raise BadRequest("every root must be a hex string")
        joined = "".join(doc["roots"])
        if len(joined) != count * 2 * ROOT_SIZE:
            raise BadRequest(f"every root must be {2 * ROOT_SIZE} hex digits")
        try:
            data = binascii.unhexlify(joined)
        except (binascii.Error, ValueError):
            raise BadRequest("roots must be hex digits only") from None
    if count == 0:
        raise BadRequest("no roots in the request")
    if count > roots_max:
        raise TooManyRoots(f"{count} roots in one request; the maximum is {roots_max}")
    return data


def parse_u64(text: str | None, what: str) -> int:
    """A height, size or cursor: ASCII decimal digits only (``str.isdigit`` also accepts
    ``²`` and other scripts' digits) and at most u64, the width storage keys use."""
    if text is None or not text or len(text) > len(str(U64_MAX)) or not (text.isascii() and text.isdigit()):
        raise BadRequest(f"{what} must be an integer from 0 to {U64_MAX}")
    value = int(text)
    if value > U64_MAX:
        raise BadRequest(f"{what} must be an integer from 0 to {U64_MAX}")
    return value


def parse_limit(text: str | None, default: int, maximum: int) -> int:
    """A page size: ``default`` when absent, else 1..``maximum``."""
    if text is None:
        return default
    value = parse_u64(text, "limit")
    if not 1 <= value <= maximum:
        raise BadRequest(f"limit must be from 1 to {maximum}")
    return value


def build_app(
    service: NodeService,
    *,
    roots_per_request_max: int,
    body_bytes_max: int,
    proofs: ProofSource | None = None,
) -> Starlette:
    """The API app. ``proofs`` defaults to the service's ``proof_source()`` when it has one;
    submissions are metered by ``service.quota`` when the service has one."""
    if proofs is None:
        proofs = proof_source_of(service)
    quota = quota_of(service)

    def submitter_of(request: Request) -> str | None:
        header = request.headers.get("authorization", "")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token:
            return None
        return service.tokens.submitter(token.strip())

    async def post_roots(request: Request) -> Response:
        if "authorization" not in request.headers:
            return error(401, "writes need Authorization: Bearer <token>")
        submitter = submitter_of(request)
        if submitter is None:
            return error(403, "token not recognised")
        content_type = request.headers.get("content-type", "application/json").split(";")[0].strip()
        if content_type not in ("application/json", "application/octet-stream"):
            return error(415, f"content type {content_type!r}: use application/json or application/octet-stream")
        try:
            body = await request.body()
        except ClientDisconnect:  # the client hung up mid-body: nobody to answer, nothing to log
            return Response(status_code=400)
        try:
            roots = parse_submission(body, content_type, roots_per_request_max)
        except TooManyRoots as exc:
            return error(413, str(exc))
        count = len(roots) // ROOT_SIZE
        wait_s = quota.take(submitter, count)
        if wait_s:
            refill_per_s = quota.refill_per_s()
            slowed = (
                f"; its refill is slowed to {refill_per_s:.0f} roots/s while this node's backlog drains"
                if refill_per_s < quota.roots_per_s else ""
            )
            return error(
                429,
                f"submitter {submitter!r} is past its quota of {quota.roots_per_s} roots/s "
                f"(burst {quota.burst_roots}) on this node{slowed}",
                retry_after_s=max(1, math.ceil(min(wait_s, RETRY_AFTER_FULL_S))),
            )
        try:
            receipts = await service.submit(roots, submitter)
        except ShareExceeded as exc:
            quota.refund(submitter, count)
            return error(429, f"submitter {exc}", retry_after_s=RETRY_AFTER_FULL_S)
        except MempoolFull as exc:
            quota.refund(submitter, count)
            return error(503, str(exc), retry_after_s=RETRY_AFTER_FULL_S)
        except Overloaded as exc:
            quota.refund(submitter, count)
            return error(429, str(exc), retry_after_s=RETRY_AFTER_BUSY_S)
        except StoreWriteError:
            quota.refund(submitter, count)
            log.error("a submission could not be stored: the data directory's disk is full or failing")
            return error(507, "this node cannot store the roots (its disk is full): submit them to another validator")
        return Response(receipts_json(receipts, service.node_name), status_code=202, media_type="application/json")

    def root_param(request: Request) -> bytes:
        return parse_root(request.path_params["root"])

    async def get_root(request: Request) -> Response:
        root = root_param(request)
        status = service.root_status(root)
        return error(404, "root not known to this node") if status is None else JSONResponse(status)

    async def get_proof(request: Request) -> Response:
        root = root_param(request)
        bundle = service.proof_bundle(root)
        if bundle is None:
            return error(404, "no proof yet: root unknown or not yet certified")
        return Response(bundle, media_type=CBOR)

    def wanted_format(request: Request, allowed: tuple[str, ...]) -> str | None:
        fmt = request.query_params.get("format", "json")
        if fmt not in allowed:
            raise BadRequest(f"format {fmt[:20]!r} is not served here; use one of: {', '.join(allowed)}")
        if fmt != "json" and proofs is None:
            raise LookupError(f"this node does not serve format={fmt}")
        return fmt

    async def get_checkpoint(request: Request) -> Response:
        try:
            fmt = wanted_format(request, ("json", "note"))
        except LookupError as exc:
            return error(404, str(exc))
        if fmt == "note":
            assert proofs is not None
            text = proofs.checkpoint_note()
            return error(404, "no finalized block yet") if text is None else Response(text, media_type=NOTE)
        return JSONResponse(service.checkpoint())

    async def get_block(request: Request) -> Response:
        height = parse_u64(request.path_params["height"], "height")
        try:
            fmt = wanted_format(request, ("json", "cbor"))
        except LookupError as exc:
            return error(404, str(exc))
        if fmt == "cbor":
            assert proofs is not None
            data = proofs.certified_block(height)
            return error(404, "no finalized block at that height") if data is None else Response(data, media_type=CBOR)
        block = service.block(height)
        return error(404, "no finalized block at that height") if block is None else JSONResponse(block)

    async def get_consistency(request: Request) -> Response:
        if proofs is None:
            return error(404, "this node does not serve consistency proofs")
        size1 = parse_u64(request.query_params.get("size1"), "size1")
        second = request.query_params.get("size2")
        size2 = None if second is None else parse_u64(second, "size2")
        data = proofs.consistency(size1, size2)
        if data is None:
            return error(
                404,
                "no consistency proof: both sizes must be log sizes of finalized blocks, with 1 <= size1 <= size2",
            )
        return Response(data, media_type=CBOR)

    async def get_anchored(request: Request) -> Response:
        if proofs is None:
            return error(404, "this node does not serve anchor records")
        height = parse_u64(request.path_params["height"], "height")
        data = proofs.anchor_record(height)
        if data is None:
            return error(404, "no confirmed anchor at or above that height")
        return Response(data, media_type=CBOR)

    async def get_anchors(request: Request) -> Response:
        query = request.query_params
        page = service.anchors(
            parse_u64(query.get("from_height", "0"), "from_height"),
            parse_limit(query.get("limit"), ANCHORS_PAGE_DEFAULT, ANCHORS_PAGE_MAX),
        )
        return JSONResponse({"anchors": page.items, "next": page.next})

    async def get_evidence(request: Request) -> Response:
        query = request.query_params
        page = service.evidence(
            parse_u64(query.get("from", "0"), "from"),
            parse_limit(query.get("limit"), EVIDENCE_PAGE_DEFAULT, EVIDENCE_PAGE_MAX),
        )
        return JSONResponse({"evidence": page.items, "next": page.next})

    async def get_health(request: Request) -> Response:
        healthy, detail = service.health()
        return JSONResponse({"ok": healthy, **detail}, status_code=200 if healthy else 503)

    async def get_metrics(request: Request) -> Response:
        return Response(service.metrics(), media_type=PROMETHEUS)

    routes = [
        Route("/v1/roots", post_roots, methods=["POST"]),
        Route("/v1/roots/{root}", get_root, methods=["GET"]),
        Route("/v1/proofs/{root}", get_proof, methods=["GET"]),
        Route("/v1/checkpoints/latest", get_checkpoint, methods=["GET"]),
        Route("/v1/blocks/{height}", get_block, methods=["GET"]),
        Route("/v1/anchors", get_anchors, methods=["GET"]),
        Route("/v1/anchored/{height}", get_anchored, methods=["GET"]),
        Route("/v1/consistency", get_consistency, methods=["GET"]),
        Route("/v1/evidence", get_evidence, methods=["GET"]),
        Route("/healthz", get_health, methods=["GET"]),
        Route("/metrics", get_metrics, methods=["GET"]),
    ]

    async def not_found(request: Request, exc: Exception) -> Response:
        return error(404, f"no such endpoint: {request.method} {request.url.path}")

    async def not_allowed(request: Request, exc: Exception) -> Response:
        return error(405, f"{request.method} is not allowed on {request.url.path}")

    async def too_large(request: Request, exc: Exception) -> Response:
        return error(413, f"request body larger than {body_bytes_max} bytes")

    async def bad_request(request: Request, exc: Exception) -> Response:
        return error(400, str(exc))

    return Starlette(
        routes=routes,
        max_body_size=body_bytes_max,
        exception_handlers={404: not_found, 405: not_allowed, 413: too_large, BadRequest: bad_request},
    )
