"""``pantheon proof get|upgrade|consistency``, ``pantheon verify`` and ``pantheon audit``.

What an auditor and a monitor run. ``verify`` needs no network at all: the bundle file
and the genesis file are the whole input (``--bitcoind`` adds one optional question to
a Bitcoin node the auditor trusts). The others fetch from a node over plain HTTP and
check everything they fetch before they say anything about it: a node is never
trusted for a fact the genesis can check.

Exit status: 0 when everything checked holds (or, for ``proof upgrade``, when the
bundle is still pending: nothing is wrong, there is just nothing to upgrade to yet),
1 with the failed check otherwise.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import re
import shutil
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol, TextIO
from urllib.parse import unquote, urlsplit

from anchor.rpc import BitcoindRPC, BitcoindWrongNetwork
from node.commands import read_genesis
from proof import verify_cli
from proof.bundle import (
    BUNDLE_SIZE_MAX,
    AnchorRecord,
    Bundle,
    CertifiedBlock,
    Claim,
    ConsistencyRecord,
    floor_time_ms,
    verify_anchor,
    verify_bundle,
)
from proof.chain import BlockHeader, Genesis
from proof.errors import DecodeError, PantheonError, ProofError
from proof.spv import TEST_NETWORKS, hash_to_hex

HTTP_TIMEOUT_S = 30.0
RESPONSE_SIZE_MAX = BUNDLE_SIZE_MAX
AUDIT_BLOCKS_MAX = 10_000_000
"""Heights one audit walks at most: a bound on the loop, far above any real chain."""
AUDIT_ANCHORS_MAX = 1_000_000


class FetchError(PantheonError):
    """The node could not be reached or answered with an error."""


class NotServed(PantheonError):
    """The node answered 404: it has nothing for this request (yet)."""


class AuditFailure(PantheonError):
    """A check of the audit failed; the message names it."""


# ---------------------------------------------------------------------------- HTTP


class NodeClient:
    """GETs against one node's API with a timeout and a response-size bound."""

    def __init__(self, url: str, *, timeout_s: float = HTTP_TIMEOUT_S) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise FetchError(f"node URL {url!r} must look like http://HOST:PORT")
        self.url = url.rstrip("/")
        self._scheme = parts.scheme
        self._host = parts.hostname
        self._port = parts.port
        self._base = parts.path.rstrip("/")
        self.timeout_s = timeout_s

    def get(self, path: str) -> bytes:
        """The body of a 200 answer; NotServed for 404, FetchError for anything else."""
        cls = http.client.HTTPSConnection if self._scheme == "https" else http.client.HTTPConnection
        connection = cls(self._host, self._port, timeout=self.timeout_s)
        try:
            connection.request("GET", self._base + path)
            response = connection.getresponse()
            body = response.read(RESPONSE_SIZE_MAX + 1)
        except (OSError, http.client.HTTPException) as exc:
            raise FetchError(f"node {self.url} is not reachable: {exc!r}") from exc
        finally:
            connection.close()
        if len(body) > RESPONSE_SIZE_MAX:
            raise FetchError(f"node {self.url}{path}: answer larger than {RESPONSE_SIZE_MAX} bytes")
        if response.status == 404:
            raise NotServed(_error_text(body) or f"{path}: not found")
        if response.status != 200:
            raise FetchError(f"node {self.url}{path}: HTTP {response.status} {_error_text(body)}")
        return body

    def get_or_none(self, path: str) -> bytes | None:
        try:
            return self.get(path)
        except NotServed:
            return None

    def proof(self, root: bytes) -> bytes | None:
        return self.get_or_none(f"/v1/proofs/{root.hex()}")

    def tip_height(self) -> int:
        doc = json.loads(self.get("/v1/checkpoints/latest"))
        height = doc.get("height") if isinstance(doc, dict) else None
        if not isinstance(height, int) or height < 0:
            raise FetchError(f"node {self.url}: /v1/checkpoints/latest has no height")
        return height

    def certified_block(self, height: int) -> bytes | None:
        return self.get_or_none(f"/v1/blocks/{height}?format=cbor")

    def consistency(self, size1: int, size2: int) -> bytes | None:
        return self.get_or_none(f"/v1/consistency?size1={size1}&size2={size2}")

    def anchor_record(self, height: int) -> bytes | None:
        return self.get_or_none(f"/v1/anchored/{height}")


def _error_text(body: bytes) -> str:
    try:
        doc = json.loads(body)
    except ValueError:
        return body[:200].decode("utf-8", "replace")
    return str(doc.get("error", "")) if isinstance(doc, dict) else ""


def _parse_root(text: str) -> bytes:
    try:
        root = bytes.fromhex(text)
    except ValueError:
        root = b""
    if len(root) != 32:
        raise PantheonError(f"root {text[:70]!r} must be 64 hex digits")
    return root


def _write_atomically(path: Path, data: bytes) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


# ---------------------------------------------------------------------------- verify


@dataclass(frozen=True)
class BestChainCheck:
    node: str
    height: int
    confirmations: int


BITCOIND_USER_ENV = "PANTHEON_BITCOIND_USER"
BITCOIND_PASSWORD_ENV = "PANTHEON_BITCOIND_PASSWORD"
_USERINFO = re.compile(r"^((?:[A-Za-z][A-Za-z0-9+.-]*:)?//)?[^/?#]*@")


def without_userinfo(url: str) -> str:
    """``url`` as it may be shown in an error: whatever precedes ``@`` in the authority hidden."""
    return _USERINFO.sub(lambda m: f"{m.group(1) or ''}***@", url, count=1)


def bitcoind_from(url: str | None, cookie: Path | None) -> BitcoindRPC | None:
    """The auditor's bitcoind for ``--bitcoind``. Credentials come from ``--bitcoind-cookie``,
    or a user (in the URL or ``$PANTHEON_BITCOIND_USER``) and ``$PANTHEON_BITCOIND_PASSWORD``:
    a password in the URL still works but is visible in the process list, so it is warned
    about. No error repeats the URL's credentials."""
    if url is None:
        return None
    usage = (
        f"--bitcoind {without_userinfo(url)!r} must look like host:port or http://user@host:port "
        f"(credentials: --bitcoind-cookie FILE, or ${BITCOIND_PASSWORD_ENV})"
    )
    try:
        parts = urlsplit(url if "://" in url else f"http://{url}")
        port = parts.port
    except ValueError:
        raise PantheonError(usage) from None
    if parts.scheme != "http" or not parts.hostname or not port:
        raise PantheonError(usage)
    if cookie is not None:
        return BitcoindRPC(port, host=parts.hostname, cookie_path=cookie)
    user = unquote(parts.username) if parts.username else os.environ.get(BITCOIND_USER_ENV, "")
    password = os.environ.get(BITCOIND_PASSWORD_ENV)
    if parts.password is not None:
        print(f"warning: the password in --bitcoind is visible in the process list; "
              f"use ${BITCOIND_PASSWORD_ENV} or --bitcoind-cookie", file=sys.stderr)
        password = unquote(parts.password)
    if not user or password is None:
        raise PantheonError(
            f"--bitcoind needs credentials: --bitcoind-cookie FILE, or a user (http://user@host:port or "
            f"${BITCOIND_USER_ENV}) and the password in ${BITCOIND_PASSWORD_ENV}"
        )
    return BitcoindRPC(port, host=parts.hostname, user=user, password=password)


def check_best_chain(rpc: BitcoindRPC, claim: Claim) -> BestChainCheck:
    """Ask the auditor's own bitcoind whether the anchor's block is on its best chain.

    The replies go through anchor.rpc's typed parsers: a bitcoind that answers nonsense is
    a BitcoindError the command reports, never a crash of the verifier.
    """
    assert claim.btc_block_hash is not None
    try:
        rpc.chain_info(claim.bitcoin_network)
    except BitcoindWrongNetwork as exc:
        raise ProofError(
            f"bitcoind at {rpc.address} follows {exc.chain!r}, the bundle's anchor is on {claim.bitcoin_network!r}"
        ) from None
    block = hash_to_hex(claim.btc_block_hash)
    header = rpc.header_info(claim.btc_block_hash)
    if header is None:
        raise ProofError(f"bitcoind at {rpc.address} does not know Bitcoin block {block}")
    if not header.on_best_chain:
        raise ProofError(f"Bitcoin block {block} is not on the best chain of bitcoind at {rpc.address} (stale)")
    return BestChainCheck(node=rpc.address, height=header.height, confirmations=header.confirmations)


def run_verify(args: argparse.Namespace, out: TextIO | None = None) -> int:
    """``pantheon-verify``'s output (proof.verify_cli), plus the answer of ``--bitcoind`` when given."""
    out = out or sys.stdout
    try:
        genesis, claim = verify_cli.verify_file(args)
        best = None
        if args.bitcoind is not None:
            if not claim.anchored:
                raise PantheonError("--bitcoind given, but the bundle is pending: there is no Bitcoin block to check")
            rpc = bitcoind_from(args.bitcoind, Path(args.bitcoind_cookie) if args.bitcoind_cookie else None)
            assert rpc is not None
            best = check_best_chain(rpc, claim)
    except (ProofError, DecodeError) as exc:
        return verify_cli.print_invalid(args, exc, out)
    if args.json:
        doc = verify_cli.valid_document(str(args.file), claim)
        if best is not None:
            doc["bitcoind"] = {"node": best.node, "height": best.height, "confirmations": best.confirmations}
        print(json.dumps(doc, indent=2), file=out)
        return 0
    for line in verify_cli.describe_claim(claim, genesis):
        print(line, file=out)
    if best is not None:
        print(f"  {'bitcoind':<14}{best.node}: block at height {best.height} on its best chain, "
              f"{best.confirmations} confirmations", file=out)
    print(f"Proved: {claim.summary()}.", file=out)
    return 0


# ---------------------------------------------------------------------------- proof get / upgrade


def run_get(args: argparse.Namespace, out: TextIO | None = None) -> int:
    out = out or sys.stdout
    root = _parse_root(args.root)
    data = NodeClient(args.node).proof(root)
    if data is None:
        raise PantheonError(f"node {args.node} has no proof for root {root.hex()} yet (unknown or not certified)")
    bundle = Bundle.decode(data)
    if bundle.root != root:
        raise ProofError(f"node {args.node} answered with a bundle for another root ({bundle.root.hex()})")
    if args.genesis:
        verify_bundle(data, genesis=read_genesis(Path(args.genesis)))
    _write_atomically(Path(args.output), data)
    state = "anchored" if bundle.anchored else "pending"
    print(f"wrote {state} bundle for root {root.hex()} (entry {bundle.index}, block {bundle.header.height}, "
          f"{len(data)} bytes) to {args.output}", file=out)
    return 0


def run_upgrade(args: argparse.Namespace, out: TextIO | None = None) -> int:
    """Pending -> anchored; an anchored bundle gains the confirming headers the node has since added."""
    out = out or sys.stdout
    path = Path(args.file)
    current = Bundle.decode(verify_cli.read_bundle_file(path))
    data = NodeClient(args.node).proof(current.root)
    if data is None:
        raise PantheonError(f"node {args.node} has no proof for root {current.root.hex()}")
    fresh = Bundle.decode(data)
    if (fresh.root, fresh.index) != (current.root, current.index):
        raise ProofError(
            f"node {args.node} answered for entry {fresh.index} of root {fresh.root.hex()}, "
            f"the bundle is for entry {current.index}"
        )
    if fresh.bitcoin is None:
        state = "is anchored, but the node serves only a pending bundle" if current.anchored else "still pending"
        print(f"{state}: root {current.root.hex()} (node is at block {fresh.header.height}); "
              f"{path} left as it is", file=out)
        return 0
    if current.bitcoin is not None:
        same_anchor = (current.header.hash, current.bitcoin.header) == (fresh.header.hash, fresh.bitcoin.header)
        if not same_anchor or len(fresh.bitcoin.more) <= len(current.bitcoin.more):
            print(f"{path} is already anchored and the node has nothing newer for it; left as it is", file=out)
            return 0
    if args.genesis:
        verify_bundle(data, genesis=read_genesis(Path(args.genesis)))
    backup = path.with_name(path.name + ".bak")
    shutil.copyfile(path, backup)
    _write_atomically(path, data)
    what = "added confirming Bitcoin headers to" if current.anchored else "upgraded to an anchored bundle:"
    print(f"{what} {path} (block {fresh.header.height}, {1 + len(fresh.bitcoin.more)} confirmations by headers, "
          f"{len(data)} bytes); the previous one is kept as {backup}", file=out)
    return 0


# ---------------------------------------------------------------------------- consistency


def run_consistency(args: argparse.Namespace, out: TextIO | None = None) -> int:
    out = out or sys.stdout
    if not 1 <= args.size1 <= args.size2:
        raise PantheonError("sizes must satisfy 1 <= SIZE1 <= SIZE2")
    genesis = read_genesis(Path(args.genesis)) if args.genesis else None
    data = NodeClient(args.node).consistency(args.size1, args.size2)
    if data is None:
        raise PantheonError(
            f"node {args.node} serves no consistency proof {args.size1} -> {args.size2}: both must be "
            "log sizes of finalized blocks"
        )
    record = ConsistencyRecord.decode(data)
    old, new = record.old.header, record.new.header
    try:
        if (old.log_size, new.log_size) != (args.size1, args.size2):
            raise ProofError(
                f"node answered for sizes {old.log_size} -> {new.log_size}, not {args.size1} -> {args.size2}"
            )
        record.verify(genesis)
    except (ProofError, DecodeError) as exc:
        print(f"INCONSISTENT: {exc}", file=out)
        return 1
    print(f"CONSISTENT: the log of size {old.log_size} (root {old.log_root.hex()}, block {old.height}) "
          f"is a prefix of the log of size {new.log_size} (root {new.log_root.hex()}, block {new.height})", file=out)
    if genesis is None:
        print("  certificates NOT checked (no --genesis): the two log states are as the node states them", file=out)
    else:
        print(f"  both log states certified by validators of chain {genesis.chain_name} "
              f"({genesis.hash.hex()[:16]}…): {list(record.old.finality.certificate.signers)} and "
              f"{list(record.new.finality.certificate.signers)}", file=out)
    return 0


# ---------------------------------------------------------------------------- audit


class AuditSource(Protocol):
    def tip_height(self) -> int: ...

    def certified_block(self, height: int) -> bytes | None: ...

    def consistency(self, size1: int, size2: int) -> bytes | None: ...

    def anchor_record(self, height: int) -> bytes | None: ...


@dataclass
class AuditSummary:
    blocks: int = 0
    log_size: int = 0
    log_root: bytes = b""
    consistency_proofs: int = 0
    anchors_checked: int = 0
    anchors_recorded: int = 0
    anchors_without_material: int = 0
    latest_anchor: str = ""
    signers_seen: set[int] = field(default_factory=set)


def audit(source: AuditSource, genesis: Genesis, progress: Callable[[str], None] = lambda _: None) -> AuditSummary:
    """Walk every finalized block from height 1 to the tip, then every anchor.

    Raises AuditFailure naming the first failed check.
    """
    tip = source.tip_height()
    if tip > AUDIT_BLOCKS_MAX:
        raise AuditFailure(f"node claims {tip} blocks, above the audit bound {AUDIT_BLOCKS_MAX}")
    summary = AuditSummary()
    headers: list[BlockHeader] = []
    refs: dict[bytes, list[tuple[bytes, bytes]]] = {}
    previous = None
    state: tuple[int, bytes] | None = None
    for height in range(1, tip + 1):
        data = source.certified_block(height)
        if data is None:
            raise AuditFailure(f"height {height}: the node serves no finalized block below its tip {tip}")
        try:
            block = CertifiedBlock.decode(data)
            header = block.header
            if header.height != height:
                raise ProofError(f"the node answered with the block at height {header.height}")
            block.verify(genesis)
            if previous is not None and header.parent != previous.hash:
                raise ProofError(
                    f"parent {header.parent.hex()[:16]}… is not block {height - 1} ({previous.hash.hex()[:16]}…)"
                )
            if previous is not None and header.log_size < previous.log_size:
                raise ProofError(f"log size {header.log_size} is below the previous block's {previous.log_size}")
            if previous is not None and header.log_size == previous.log_size and header.log_root != previous.log_root:
                raise ProofError("log root changed while the log size stayed the same")
            if state is not None and header.log_size > state[0]:
                _check_consistency(source, state, block)
                summary.consistency_proofs += 1
        except (ProofError, DecodeError) as exc:
            raise AuditFailure(f"block {height}: {exc}") from None
        for ref in header.anchors:
            refs.setdefault(ref.anchored_block_hash, []).append((ref.txid, ref.btc_block_hash))
        summary.signers_seen.update(block.finality.certificate.signers)
        headers.append(header)
        if header.log_size:
            state = (header.log_size, header.log_root)
        previous = header
        if height % 1000 == 0:
            progress(f"checked {height} of {tip} blocks")
    summary.blocks = tip
    if previous is not None:
        summary.log_size, summary.log_root = previous.log_size, previous.log_root
    summary.anchors_recorded = len(refs)
    _audit_anchors(source, genesis, headers, refs, summary)
    return summary


def _check_consistency(source: AuditSource, old: tuple[int, bytes], new: CertifiedBlock) -> None:
    data = source.consistency(old[0], new.header.log_size)
    if data is None:
        raise ProofError(f"the node serves no consistency proof {old[0]} -> {new.header.log_size}")
    record = ConsistencyRecord.decode(data)
    if (record.old.header.log_size, record.old.header.log_root) != old:
        raise ProofError(f"the consistency proof starts from another log state than the audited size {old[0]}")
    if (record.new.header.log_size, record.new.header.log_root) != (new.header.log_size, new.header.log_root):
        raise ProofError("the consistency proof ends at another log state than this block's")
    record.verify(None)


def _audit_anchors(
    source: AuditSource,
    genesis: Genesis,
    headers: list[BlockHeader],
    refs: dict[bytes, list[tuple[bytes, bytes]]],
    summary: AuditSummary,
) -> None:
    height = 1
    served: set[bytes] = set()
    while height <= len(headers) and summary.anchors_checked < AUDIT_ANCHORS_MAX:
        data = source.anchor_record(height)
        if data is None:
            break
        try:
            record = AnchorRecord.decode(data)
            if not height <= record.height <= len(headers):
                raise ProofError(
                    f"the node answered with an anchor at height {record.height}, outside {height}..{len(headers)}"
                )
            anchored = headers[record.height - 1]
            if record.block_hash != anchored.hash:
                raise ProofError(f"the anchored block hash is not the audited block {record.height}")
            claim = verify_anchor(record.bitcoin, record.block_hash, floor_at_ms=floor_time_ms(genesis, anchored))
            recorded = refs.get(record.block_hash)
            if recorded is not None and (claim.txid, claim.btc_block_hash) not in recorded:
                raise ProofError("the chain recorded another transaction or Bitcoin block for this anchor")
        except (ProofError, DecodeError) as exc:
            raise AuditFailure(f"anchor of block {height}: {exc}") from None
        served.add(record.block_hash)
        summary.anchors_checked += 1
        summary.latest_anchor = (
            f"block {record.height} in {claim.network} block {hash_to_hex(claim.btc_block_hash)} "
            f"(height {record.btc_height} per the node, {claim.confirmations} "
            f"confirmation{'s' if claim.confirmations != 1 else ''} by headers"
            + (f"; {claim.network} is a test network: the Bitcoin part proves nothing about time)"
               if claim.network in TEST_NETWORKS else ")")
        )
        height = record.height + 1
    summary.anchors_without_material = len(set(refs) - served)


def run_audit(args: argparse.Namespace, out: TextIO | None = None) -> int:
    out = out or sys.stdout
    genesis = read_genesis(Path(args.genesis))
    chain_id = verify_cli.chain_id_from(args.chain)
    if chain_id is not None and chain_id != genesis.hash:
        raise PantheonError(f"the genesis has chain id {genesis.hash.hex()}, not {chain_id.hex()}")
    try:
        summary = audit(NodeClient(args.node), genesis, progress=lambda line: print(line, file=out, flush=True))
    except AuditFailure as exc:
        print(f"AUDIT FAILED: {exc}", file=out)
        return 1
    print(f"AUDIT OK: chain {genesis.chain_name} ({genesis.hash.hex()}) at {args.node}", file=out)
    print(f"  blocks       {summary.blocks} finalized blocks, heights 1..{summary.blocks}: every finalization "
          f"proof verified against the genesis, parent links and log sizes checked", file=out)
    print(f"  log          size {summary.log_size}, root {summary.log_root.hex() or '-'}", file=out)
    print(f"  consistency  {summary.consistency_proofs} proofs between consecutive certified log states verified",
          file=out)
    print(f"  signers      validators {sorted(summary.signers_seen)} signed finalize certificates", file=out)
    print(f"  anchors      {summary.anchors_checked} served with SPV material, all verified "
          f"(OP_RETURN = block hash, merkle branch, proof of work, header chain); "
          f"{summary.anchors_recorded} recorded in the chain, {summary.anchors_without_material} of them without "
          f"material served (not checked)", file=out)
    if summary.latest_anchor:
        print(f"  latest       {summary.latest_anchor}", file=out)
    return 0


# ---------------------------------------------------------------------------- registration


def register(subparsers: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    proof = subparsers.add_parser("proof", help="fetch, upgrade and check proofs from a node")
    proof_sub = proof.add_subparsers(dest="proof_command", metavar="SUBCOMMAND", required=True)

    get = proof_sub.add_parser("get", help="fetch the proof bundle of an audit root")
    get.add_argument("root", help="the audit root, 64 hex digits")
    get.add_argument("--node", required=True, help="node API URL, e.g. http://127.0.0.1:8080")
    get.add_argument("-o", "--output", required=True, help="file to write the bundle to")
    get.add_argument("--genesis", help="verify the bundle against this genesis before writing it")
    get.set_defaults(handler=run_get)

    upgrade = proof_sub.add_parser(
        "upgrade", help="replace a pending bundle by the anchored one, or add confirmations (keeps FILE.bak)"
    )
    upgrade.add_argument("file")
    upgrade.add_argument("--node", required=True, help="node API URL")
    upgrade.add_argument("--genesis", help="verify the anchored bundle against this genesis before replacing")
    upgrade.set_defaults(handler=run_upgrade)

    consistency = proof_sub.add_parser("consistency", help="check that a node's log of SIZE1 is a prefix of SIZE2")
    consistency.add_argument("size1", type=int)
    consistency.add_argument("size2", type=int)
    consistency.add_argument("--node", required=True, help="node API URL")
    consistency.add_argument("--genesis", help="also verify both log states' certificates against this genesis")
    consistency.set_defaults(handler=run_consistency)

    verify = subparsers.add_parser("verify", help="verify a proof bundle offline and say exactly what it proves")
    verify_cli.add_verify_arguments(verify)
    verify.add_argument("--bitcoind", help="also ask this bitcoind (host:port or http://user@host:port; password in "
                                           "$PANTHEON_BITCOIND_PASSWORD, user also in $PANTHEON_BITCOIND_USER) "
                                           "whether the anchor's block is on its best chain")
    verify.add_argument("--bitcoind-cookie", help="bitcoind's .cookie file, instead of a user and password")
    verify.set_defaults(handler=run_verify)

    audit_parser = subparsers.add_parser(
        "audit", help="check every finalized block, consistency proof and anchor a node serves"
    )
    audit_parser.add_argument("--node", required=True, help="node API URL")
    audit_parser.add_argument("--genesis", required=True, help="the chain's genesis file")
    audit_parser.add_argument("--chain", help="expected chain id (genesis hash, hex)")
    audit_parser.set_defaults(handler=run_audit)
