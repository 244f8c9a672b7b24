"""``pantheon journal init|append|show|verify|submit|upgrade|export|repair``.

The producer's commands over a journal directory, and the auditor's ``verify`` of an
audit package (give it a file instead of a directory: it needs no network and nothing
but the package). Exit status: 0 when everything checked holds, 1 with the first failed
check otherwise (``verify`` prints ``INVALID ...: entry N: <reason>: <detail>``).
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import sys
from pathlib import Path
from typing import Any, TextIO

from proof.chain import Genesis
from proof.errors import DecodeError, PantheonError, ProofError
from proof.hashing import HASH_SIZE
from proof.spv import hash_to_hex

from journal.anchoring import submit_head, upgrade
from journal.anchors import AnchorStatus, Sidecar, check_sidecar
from journal.client import NodeClient
from journal.entry import OUTCOME_ERROR, OUTCOME_OK, Entry, Kind, MetaValue, digest, key_fingerprint
from journal.errors import ChainError, JournalError, PackageError
from journal.package import PACKAGE_SIZE_MAX, PackageClaim, build_package, verify_package
from journal.verify import ChainReport
from journal.writer import Journal, load, repair

TOKEN_ENV = "PANTHEON_TOKEN"
APPEND_KINDS = ("intent", "outcome", "note", "key-rotation")


class UsageError(JournalError):
    """A command-line argument that cannot be used as given."""


# ---------------------------------------------------------------------------- parsing helpers


def _digest_arg(text: str) -> tuple[str, bytes]:
    """``name=HEX`` (a 32-byte digest) or ``name=@FILE`` (the file's SHA-256)."""
    name, sep, value = text.partition("=")
    if not sep or not name:
        raise UsageError(f"{text!r}: expected NAME=HEX64 or NAME=@FILE")
    if value.startswith("@"):
        try:
            return name, digest(Path(value[1:]).read_bytes())
        except OSError as exc:
            raise UsageError(f"{text!r}: cannot read {value[1:]}: {exc.strerror}") from None
    try:
        raw = bytes.fromhex(value)
    except ValueError:
        raw = b""
    if len(raw) != HASH_SIZE:
        raise UsageError(f"{text!r}: a digest is {2 * HASH_SIZE} hex digits (or use NAME=@FILE to hash a file)")
    return name, raw


def _digests(values: list[str] | None) -> dict[str, bytes]:
    result: dict[str, bytes] = {}
    for text in values or []:
        name, raw = _digest_arg(text)
        if name in result:
            raise UsageError(f"digest name {name!r} given twice")
        result[name] = raw
    return result


def _meta(values: list[str] | None) -> dict[str, MetaValue]:
    """``key=text``, ``key:int=123`` or ``key:bool=true``."""
    result: dict[str, MetaValue] = {}
    for text in values or []:
        key, sep, value = text.partition("=")
        if not sep or not key:
            raise UsageError(f"--meta {text!r}: expected KEY=TEXT, KEY:int=N or KEY:bool=true|false")
        name, _, kind = key.partition(":")
        if kind == "int":
            try:
                result[name] = int(value)
            except ValueError:
                raise UsageError(f"--meta {text!r}: not an integer") from None
        elif kind == "bool":
            if value not in ("true", "false"):
                raise UsageError(f"--meta {text!r}: a bool is true or false")
            result[name] = value == "true"
        elif kind == "":
            result[name] = value
        else:
            raise UsageError(f"--meta {text!r}: type {kind!r} is not one of int, bool (text has no type)")
    return result


def _fingerprint(text: str | None, what: str) -> bytes | None:
    if text is None:
        return None
    try:
        raw = bytes.fromhex(text)
    except ValueError:
        raw = b""
    if len(raw) != HASH_SIZE:
        raise UsageError(f"{what} {text[:70]!r} must be {2 * HASH_SIZE} hex digits")
    return raw


def _seqs(text: str) -> set[int]:
    """``3,5,17-20``."""
    result: set[int] = set()
    for part in text.split(","):
        first, sep, last = part.strip().partition("-")
        try:
            low = int(first)
            high = int(last) if sep else low
        except ValueError:
            raise UsageError(f"--entries {text!r}: expected numbers and ranges like 3,5,17-20") from None
        if low < 0 or high < low:
            raise UsageError(f"--entries {text!r}: {part!r} is not a range of entry numbers")
        result.update(range(low, high + 1))
    return result


def _time(time_ms: int) -> str:
    moment = datetime.datetime.fromtimestamp(time_ms / 1000, datetime.UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{time_ms % 1000:03d}Z"


def _short(value: bytes) -> str:
    return value.hex()[:16] + "…"


# ---------------------------------------------------------------------------- describing


def describe_entry(entry: Entry) -> str:
    parts = [f"{entry.seq:>6}  {_time(entry.time_ms)}  {entry.kind:<12} {entry.action}"]
    if entry.ref is not None:
        parts.append(f"for intent {entry.ref}")
    if entry.inputs:
        parts.append("in " + ", ".join(f"{name}={value.hex()[:12]}…" for name, value in entry.inputs.items()))
    if entry.outputs:
        parts.append("out " + ", ".join(f"{name}={value.hex()[:12]}…" for name, value in entry.outputs.items()))
    if entry.meta:
        parts.append("meta " + json.dumps({k: v.hex() if isinstance(v, bytes) else v for k, v in entry.meta.items()},
                                          sort_keys=True, ensure_ascii=False))
    if entry.pubkey is not None:
        parts.append(f"introduces key {_short(key_fingerprint(entry.pubkey))}")
    return "  ".join(parts)


def entry_json(entry: Entry) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "seq": entry.seq, "time_ms": entry.time_ms, "kind": str(entry.kind), "action": entry.action,
        "signer": entry.signer.hex(), "digest": entry.digest.hex(),
        "in": {k: v.hex() for k, v in entry.inputs.items()},
        "meta": {k: v.hex() if isinstance(v, bytes) else v for k, v in entry.meta.items()},
    }
    if entry.outputs is not None:
        doc["out"] = {k: v.hex() for k, v in entry.outputs.items()}
    if entry.ref is not None:
        doc["ref"] = entry.ref
    if entry.pubkey is not None:
        doc["introduces_key"] = key_fingerprint(entry.pubkey).hex()
    return doc


def _open_intent_lines(report: ChainReport, among: str) -> list[str]:
    return [f"  entry {intent.seq}: {intent.action!r} started {_time(intent.time_ms)}, no recorded outcome{among}"
            for intent in report.open_intents]


def _anchor_lines(status: AnchorStatus, length: int) -> list[str]:
    lines = [f"  receipts      {status.receipts} submitted head(s)"]
    for label, found in (("anchored", status.anchored), ("certified", status.certified)):
        if found is None:
            continue
        claim = found.claim
        text = (f"entries 0..{found.seq} (head {_short(found.head)}) in block {claim.height} of chain "
                f"{claim.chain_name}")
        if claim.anchored and claim.txid is not None:
            text += f", Bitcoin tx {hash_to_hex(claim.txid)} ({claim.bitcoin_network}, {claim.confirmations} conf.)"
        lines.append(f"  {label:<13} {text}")
    newest = status.anchored.seq if status.anchored else -1
    if newest < length - 1:
        lines.append(f"  not anchored  entries {newest + 1}..{length - 1} (in Bitcoin)")
    lines += [f"  unverified    {text}" for text in status.unverified]
    return lines


# ---------------------------------------------------------------------------- commands


def run_init(args: argparse.Namespace, out: TextIO) -> int:
    with Journal.create(Path(args.directory), meta=_meta(args.meta)) as journal:
        key = journal.report().keys[0]
        print(f"created journal {args.directory}: producer key {key_fingerprint(key).hex()}", file=out)
        print(f"  head {journal.head.hex()} (entry 0); the secret key is {args.directory}/producer.key (mode 0600)",
              file=out)
    return 0


def run_append(args: argparse.Namespace, out: TextIO) -> int:
    kind = Kind(args.kind)
    inputs, outputs, meta = _digests(args.input), _digests(args.output) or None, _meta(args.meta)
    if kind != Kind.OUTCOME and (args.ref is not None or args.status is not None or args.error is not None):
        raise UsageError("--ref, --status and --error belong to --kind outcome")
    with Journal.open(Path(args.directory)) as journal:
        if kind == Kind.KEY_ROTATION:
            if inputs or outputs or meta:
                raise UsageError("a key rotation takes no --input, --output or --meta")
            entry = journal.rotate_key()
        elif kind == Kind.OUTCOME:
            if args.ref is None:
                raise UsageError("--kind outcome needs --ref SEQ (the intent it closes)")
            if args.ref >= journal.size:
                raise UsageError(f"--ref {args.ref}: the journal has {journal.size} entries")
            status = args.status or (OUTCOME_ERROR if args.error else OUTCOME_OK)
            full = {**meta, "status": status, **({"error": args.error} if args.error is not None else {})}
            entry = journal.append(kind, journal.entries[args.ref].action, inputs, outputs=outputs, meta=full,
                                   ref=args.ref)
        else:
            if args.action is None:
                raise UsageError(f"--kind {kind} needs --action NAME")
            entry = journal.append(kind, args.action, inputs, outputs=outputs, meta=meta)
        print(describe_entry(entry), file=out)
        print(f"head {journal.head.hex()}", file=out)
    return 0


def run_show(args: argparse.Namespace, out: TextIO) -> int:
    loaded = load(Path(args.directory))
    chosen = [e for e in loaded.entries if e.seq >= args.start][: args.limit]
    if args.json:
        print(json.dumps({"head": loaded.walker.head.hex(), "entries": [entry_json(e) for e in chosen]}, indent=2),
              file=out)
        return 0
    for entry in chosen:
        print(describe_entry(entry), file=out)
    print(f"{loaded.walker.length} entries, head {loaded.walker.head.hex()}", file=out)
    for line in _open_intent_lines(loaded.report, ""):
        print(line, file=out)
    if loaded.torn is not None:
        print(f"WARNING {loaded.torn.describe()}", file=out)
    return 0


def run_verify(args: argparse.Namespace, out: TextIO) -> int:
    path = Path(args.path)
    producer = _fingerprint(args.producer, "--producer")
    if path.is_dir():
        if args.chain is not None:
            raise UsageError("--chain pins the genesis of an audit package; a journal directory keeps its own")
        return _verify_journal(path, producer, args.json, out)
    return _verify_package(path, producer, _fingerprint(args.chain, "--chain"), args.json, out)


def _verify_journal(path: Path, producer: bytes | None, as_json: bool, out: TextIO) -> int:
    try:
        loaded = load(path, first_key=producer)
        status = check_sidecar(Sidecar(path), loaded.walker)
    except ChainError as exc:
        return _invalid(path, exc, as_json, out)
    report = loaded.report
    if as_json:
        doc = {"valid": True, "path": str(path), "entries": report.length, "head": report.head.hex(),
               "keys": [key_fingerprint(k).hex() for k in report.keys],
               "open_intents": [i.seq for i in report.open_intents],
               "torn_tail": None if loaded.torn is None else {"offset": loaded.torn.offset, "size": loaded.torn.size},
               "anchored_through": status.anchored.seq if status.anchored else None,
               "certified_through": status.certified.seq if status.certified else None}
        print(json.dumps(doc, indent=2), file=out)
        return 0
    print(f"VALID journal {path}: {report.length} entries, every signature and link checked", file=out)
    print(f"  head          {report.head.hex()} (after entry {report.length - 1})", file=out)
    keys = ", ".join(f"{_short(key_fingerprint(k))} from entry {i}" for i, k in
                     zip(_rotation_seqs(loaded.entries), report.keys, strict=True))
    print(f"  keys          {keys}", file=out)
    for line in _open_intent_lines(report, ""):
        print(line, file=out)
    for line in _anchor_lines(status, report.length):
        print(line, file=out)
    if loaded.torn is not None:
        print(f"WARNING {loaded.torn.describe()}", file=out)
    return 0


def _rotation_seqs(entries: tuple[Entry, ...]) -> list[int]:
    return [e.seq for e in entries if e.kind == Kind.KEY_ROTATION]


def _verify_package(path: Path, producer: bytes | None, chain_id: bytes | None, as_json: bool, out: TextIO) -> int:
    try:
        size = path.stat().st_size
    except OSError as exc:
        raise UsageError(f"cannot read {path}: {exc.strerror}") from None
    if size > PACKAGE_SIZE_MAX:
        raise UsageError(f"{path} is {size} bytes, larger than any audit package ({PACKAGE_SIZE_MAX})")
    try:
        claim = verify_package(path.read_bytes(), chain_id=chain_id, producer=producer)
    except (ChainError, PackageError, ProofError, DecodeError) as exc:
        return _invalid(path, exc, as_json, out)
    if as_json:
        doc = {"valid": True, "path": str(path), **claim.to_json(), "disclosed_entries": [entry_json(e)
                                                                                          for e in claim.entries]}
        print(json.dumps(doc, indent=2), file=out)
        return 0
    for line in describe_package(claim):
        print(line, file=out)
    return 0


def describe_package(claim: PackageClaim) -> list[str]:
    bundle = claim.claim
    state = "anchored" if bundle.anchored else "PENDING (certified, not yet anchored in Bitcoin)"
    lines = [
        f"VALID audit package: {len(claim.entries)} disclosed and {claim.report.withheld} withheld entries "
        f"(0..{claim.head_seq}), producer {claim.producer.hex()}",
        f"  head          {claim.report.head.hex()} is audit root {bundle.index} of chain {bundle.chain_name} "
        f"({bundle.chain_id.hex()[:16]}…), block {bundle.height}, finalized by validators "
        f"{', '.join(map(str, bundle.signers))}",
        f"  state         {state}",
    ]
    if bundle.anchored and bundle.txid is not None and bundle.btc_block_hash is not None:
        lines.append(f"  bitcoin       tx {hash_to_hex(bundle.txid)} in {bundle.bitcoin_network} block "
                     f"{hash_to_hex(bundle.btc_block_hash)}, {bundle.confirmations} confirmation(s) by headers")
    lines.append("  disclosed entries:")
    lines += ["  " + describe_entry(entry) for entry in claim.entries]
    lines += _open_intent_lines(claim.report, " among the disclosed entries")
    lines.append(f"Proved: {bundle.summary()}.")
    return lines


def _invalid(path: Path, exc: PantheonError, as_json: bool, out: TextIO) -> int:
    if as_json:
        doc: dict[str, Any] = {"valid": False, "path": str(path), "error": type(exc).__name__, "message": str(exc)}
        if isinstance(exc, ChainError):
            doc.update(seq=exc.seq, reason=exc.reason)
        elif isinstance(exc, PackageError):
            doc.update(reason=exc.reason)
        print(json.dumps(doc, indent=2), file=out)
    else:
        print(f"INVALID {path}: {type(exc).__name__}: {exc}", file=out)
    return 1


def _client(args: argparse.Namespace) -> NodeClient:
    token = getattr(args, "token", None) or os.environ.get(TOKEN_ENV)
    return NodeClient(args.node, token=token, attempts=args.attempts)


def run_submit(args: argparse.Namespace, out: TextIO) -> int:
    directory = Path(args.directory)
    loaded = load(directory)
    receipt = submit_head(loaded.walker, Sidecar(directory), _client(args))
    index = "" if receipt.index is None else f", log index {receipt.index}"
    print(f"submitted head {receipt.head.hex()} (after entry {receipt.seq}) to {receipt.node}: "
          f"{receipt.state}{index}", file=out)
    if loaded.torn is not None:
        print(f"WARNING {loaded.torn.describe()}", file=out)
    return 0


def run_upgrade(args: argparse.Namespace, out: TextIO) -> int:
    directory = Path(args.directory)
    sidecar = Sidecar(directory)
    genesis = _genesis(sidecar, args.genesis)
    if not sidecar.receipts():
        raise UsageError(f"nothing to upgrade: no head of {directory} was submitted yet (`pantheon journal submit`)")
    client = _client(args)
    if args.no_entry:
        results = upgrade(load(directory).walker, sidecar, client, genesis, None)
    else:
        with Journal.open(directory) as journal:
            results = upgrade(journal.walker, sidecar, client, genesis, journal)
    if not results:
        print("every submitted head is already covered by an anchored bundle", file=out)
    for result in results:
        text = f"head after entry {result.seq} ({_short(result.head)}): {result.state}"
        if result.claim is not None:
            text += f", block {result.claim.height}"
            if result.claim.txid is not None:
                text += f", Bitcoin tx {hash_to_hex(result.claim.txid)}"
        if result.anchor_entry is not None:
            text += f"; recorded as anchor entry {result.anchor_entry.seq}"
        print(text, file=out)
    return 0


def _genesis(sidecar: Sidecar, path: str | None) -> Genesis:
    if path is not None:
        return sidecar.adopt_genesis(Path(path))
    genesis = sidecar.genesis()
    if genesis is None:
        raise UsageError("the journal has no genesis yet: pass --genesis FILE (the chain's genesis.cbor) once")
    return genesis


def run_export(args: argparse.Namespace, out: TextIO) -> int:
    directory = Path(args.directory)
    loaded = load(directory)
    sidecar = Sidecar(directory)
    status = check_sidecar(sidecar, loaded.walker)
    disclose = _seqs(args.entries)
    covering = status.covering(max(disclose))
    if covering is None:
        raise UsageError(f"no verified bundle covers entry {max(disclose)}: submit the head, then upgrade")
    if args.require_anchored and not covering.claim.anchored:
        raise UsageError(f"the bundle covering entry {max(disclose)} is not anchored in Bitcoin yet; upgrade later")
    genesis = sidecar.genesis_bytes()
    assert genesis is not None, "a verified bundle implies a genesis"
    package = build_package(loaded.entries, disclose, head_seq=covering.seq, genesis=genesis, bundle=covering.data)
    data = package.encode()
    claim = verify_package(data)
    output = Path(args.output)
    tmp = output.with_name(output.name + ".tmp")
    tmp.write_bytes(data)
    os.replace(tmp, output)
    state = "anchored" if claim.claim.anchored else "pending (certified, not yet anchored)"
    print(f"wrote {output}: {len(claim.entries)} disclosed, {claim.report.withheld} withheld entries, "
          f"head after entry {covering.seq}, {state} bundle, {len(data)} bytes", file=out)
    return 0


def run_repair(args: argparse.Namespace, out: TextIO) -> int:
    torn = repair(Path(args.directory))
    if torn is None:
        print(f"{args.directory}: nothing to repair (the journal ends in a complete entry)", file=out)
    else:
        print(f"{args.directory}: removed {torn.size} byte(s) of an incomplete last record at offset {torn.offset} "
              f"({torn.why})", file=out)
    return 0


# ---------------------------------------------------------------------------- parser


def _with_out(handler: Any) -> Any:
    return lambda args: handler(args, sys.stdout)


def register(subparsers: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    journal = subparsers.add_parser(
        "journal", help="the producer's signed, hash-chained audit journal (sign before you act)",
        description="A local journal of ML-DSA-65 signed, hash-chained entries. Its head is the audit root "
                    "a producer submits; an audit package proves chosen entries against an anchored head.",
    )
    commands = journal.add_subparsers(dest="journal_command", metavar="COMMAND", required=True)

    init = commands.add_parser("init", help="create a journal directory with a fresh producer key")
    init.add_argument("directory")
    init.add_argument("--meta", action="append", metavar="KEY=VALUE", help="metadata of entry 0 (e.g. system=name)")
    init.set_defaults(handler=_with_out(run_init))

    append = commands.add_parser("append", help="sign and append one entry (fsynced before this returns)")
    append.add_argument("directory")
    append.add_argument("--kind", choices=APPEND_KINDS, required=True)
    append.add_argument("--action", help="action name (intent, note)")
    append.add_argument("--input", action="append", metavar="NAME=HEX|NAME=@FILE", help="an input digest")
    append.add_argument("--output", action="append", metavar="NAME=HEX|NAME=@FILE", help="an output digest")
    append.add_argument("--meta", action="append", metavar="KEY=TEXT|KEY:int=N|KEY:bool=B")
    append.add_argument("--ref", type=int, help="outcome: the seq of the intent it closes")
    append.add_argument("--status", choices=(OUTCOME_OK, OUTCOME_ERROR), help="outcome status (default ok)")
    append.add_argument("--error", help="outcome: what went wrong (implies --status error)")
    append.set_defaults(handler=_with_out(run_append))

    show = commands.add_parser("show", help="list entries")
    show.add_argument("directory")
    show.add_argument("--from", dest="start", type=int, default=0, help="first entry to list")
    show.add_argument("--limit", type=int, default=None, help="most entries to list")
    show.add_argument("--json", action="store_true")
    show.set_defaults(handler=_with_out(run_show))

    verify = commands.add_parser(
        "verify", help="verify a journal directory, or an audit package file offline",
        description="A directory: every entry, signature, link and recorded head, and the stored bundles. "
                    "A file: an audit package, needing nothing else (no network).",
    )
    verify.add_argument("path", help="journal directory or audit package (.cbor)")
    verify.add_argument("--producer", help="expected fingerprint of the first producer key (hex)")
    verify.add_argument("--chain", help="package: expected chain id (hex), known from an independent source")
    verify.add_argument("--json", action="store_true")
    verify.set_defaults(handler=_with_out(run_verify))

    for name, helptext, handler in (
        ("submit", "send the current head to a validator and keep its receipt", run_submit),
        ("upgrade", "fetch, verify and store the proof bundles of submitted heads", run_upgrade),
    ):
        command = commands.add_parser(name, help=helptext)
        command.add_argument("directory")
        command.add_argument("--node", required=True, help="validator API URL, e.g. http://127.0.0.1:8080")
        command.add_argument("--attempts", type=int, default=5, help="tries per request (with backoff)")
        command.set_defaults(handler=_with_out(handler))
        if name == "submit":
            command.add_argument("--token", help=f"bearer token (default: ${TOKEN_ENV})")
        else:
            command.add_argument("--genesis", help="the chain's genesis.cbor (needed once; kept in the journal)")
            command.add_argument("--no-entry", action="store_true",
                                 help="do not append anchor entries (when a writer holds the journal open)")

    export = commands.add_parser("export", help="write an audit package of chosen entries")
    export.add_argument("directory")
    export.add_argument("--entries", required=True, help="entries to disclose, e.g. 3,5,17-20")
    export.add_argument("-o", "--output", required=True, help="package file to write")
    export.add_argument("--require-anchored", action="store_true", help="refuse a bundle not yet anchored in Bitcoin")
    export.set_defaults(handler=_with_out(run_export))

    repair_parser = commands.add_parser("repair", help="cut off a torn tail left by an interrupted append")
    repair_parser.add_argument("directory")
    repair_parser.set_defaults(handler=_with_out(run_repair))
