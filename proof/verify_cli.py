"""The ``pantheon-verify`` command, and the output ``pantheon verify`` shares with it.

An auditor installs only ``proof/`` (the ``pantheon-verify`` distribution, built from
``verifier/pyproject.toml``) and runs

    pantheon-verify BUNDLE --genesis GENESIS [--chain ID] [--require-network main
                    [--min-confirmations N]] [--json]

It prints exactly what ``pantheon verify`` prints for the same arguments: both render
the claim with the functions here. ``pantheon verify`` adds one option that needs
the node's Bitcoin RPC client (``--bitcoind``); its extra lines come after these.

Exit status: 0 when the bundle verifies (and meets the policy, if one is given), 1
with the failed check otherwise, 2 for a usage error (argparse).
"""

from __future__ import annotations

import argparse
import datetime
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TextIO

from proof.bundle import BUNDLE_SIZE_MAX, Claim, Policy, verify_bundle, work_log2
from proof.chain import Genesis
from proof.errors import DecodeError, PantheonError, ProofError
from proof.spv import POW_LIMITS, hash_to_hex


class InputError(PantheonError):
    """A file or option the verifier cannot use (not a verdict on the bundle: exit 1 with ``error:``)."""


def add_verify_arguments(parser: argparse.ArgumentParser) -> None:
    """The options both verify commands take (``pantheon verify`` adds ``--bitcoind``)."""
    parser.add_argument("file", help="the bundle (.cbor)")
    parser.add_argument("--genesis", required=True, help="the chain's genesis file")
    parser.add_argument("--chain", help="expected chain id (genesis hash, hex), known from an independent source")
    parser.add_argument("--require-network", choices=sorted(POW_LIMITS),
                        help="fail unless the bundle is anchored on this Bitcoin network (use main)")
    parser.add_argument("--min-confirmations", type=int, metavar="N",
                        help="fail unless the bundle shows at least N confirmations by headers "
                             "(default with --require-network: the genesis's final depth)")
    parser.add_argument("--json", action="store_true", help="print the result as JSON")


def policy_from(args: argparse.Namespace) -> Policy | None:
    """The policy the options ask for (PolicyError, an ``error:``, for a minimum below 1)."""
    if args.require_network is None and args.min_confirmations is None:
        return None
    return Policy(require_network=args.require_network, min_confirmations=args.min_confirmations)


def read_genesis_file(path: Path) -> Genesis:
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise InputError(f"cannot read genesis {path}: {exc.strerror}") from None
    try:
        return Genesis.decode(data)
    except DecodeError as exc:
        raise InputError(f"{path} is not a valid genesis: {exc}") from None


def read_bundle_file(path: Path) -> bytes:
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise InputError(f"cannot read bundle {path}: {exc.strerror}") from None
    if len(data) > BUNDLE_SIZE_MAX:
        raise InputError(f"{path} is {len(data)} bytes, larger than any bundle ({BUNDLE_SIZE_MAX})")
    return data


def chain_id_from(text: str | None) -> bytes | None:
    if text is None:
        return None
    try:
        chain_id = bytes.fromhex(text)
    except ValueError:
        chain_id = b""
    if len(chain_id) != 32:
        raise InputError(f"--chain {text[:70]!r} must be the 64-hex-digit chain id (genesis hash)")
    return chain_id


def _time(seconds: int | None) -> str:
    if seconds is None:
        return "?"
    return datetime.datetime.fromtimestamp(seconds, datetime.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _plural(count: int, word: str) -> str:
    return f"{count} {word}{'s' if count != 1 else ''}"


def describe_claim(claim: Claim, genesis: Genesis) -> list[str]:
    """The verdict line, then one row per fact proved: what a person reads."""
    rows = [
        ("root", claim.root.hex()),
        ("log entry", f"{claim.index} of a log of size {claim.log_size}, log root {claim.log_root.hex()}"),
        ("chain", f"{claim.chain_name} (chain id {claim.chain_id.hex()})"),
        ("block", f"height {claim.height}, hash {claim.block_hash.hex()}"),
        ("finalized by", f"validators {', '.join(map(str, claim.signers))} "
                         f"({len(claim.signers)} of {genesis.n}, quorum {genesis.quorum})"),
    ]
    if claim.anchored:
        assert claim.txid is not None and claim.btc_block_hash is not None and claim.confirmations is not None
        rows += [
            ("bitcoin tx", f"{hash_to_hex(claim.txid)} ({claim.bitcoin_network})"),
            ("bitcoin block", f"{hash_to_hex(claim.btc_block_hash)}, time {_time(claim.btc_time)}, "
                              f"{_plural(claim.confirmations, 'confirmation')} by headers in the bundle"),
        ]
        total = 0
        for position, header in enumerate(claim.btc_headers):
            total += header.work
            which = "the anchor's block" if position == 0 else f"confirmation {position + 1}"
            rows.append((f"header +{position}", f"bits {header.bits:08x}, work {work_log2(header.work)}, "
                                                f"chain work {work_log2(total)} ({which}, "
                                                f"{hash_to_hex(header.hash)[:16]}…)"))
        rows.append(("final depth", f"{claim.final_depth} (genesis anchor_depth): "
                                    f"{'reached' if claim.final else 'NOT reached'} with "
                                    f"{_plural(claim.confirmations, 'confirmation')}"))
        if claim.test_network:
            security = (f"none: {claim.bitcoin_network} is a test network, its headers cost nothing to make, "
                        "so the Bitcoin part proves nothing about time")
        else:
            assert claim.work_floor is not None
            security = (f"proof of work: {work_log2(claim.chain_work)} expected hashes in all, every header at "
                        f"or above the {claim.bitcoin_network} work floor of difficulty "
                        f"{claim.work_floor.difficulty:.3g}")
        rows.append(("security", security))
    else:
        rows.append(("bitcoin", "not yet anchored (pending): run `pantheon proof upgrade` later"))
    return [claim.verdict] + [f"  {label:<14}{text}" for label, text in rows]


def valid_document(path: str, claim: Claim) -> dict[str, Any]:
    """The ``--json`` document of a bundle that verified."""
    return {"valid": True, "verdict": claim.verdict, "file": path, "claim": claim.to_json()}


def invalid_document(path: str, error: PantheonError) -> dict[str, Any]:
    return {"valid": False, "file": path, "error": str(error)}


def print_invalid(args: argparse.Namespace, error: PantheonError, out: TextIO) -> int:
    if args.json:
        print(json.dumps(invalid_document(str(args.file), error)), file=out)
    else:
        print(f"INVALID {args.file}: {error}", file=out)
    return 1


def verify_file(args: argparse.Namespace) -> tuple[Genesis, Claim]:
    """Read the files the arguments name and verify; ProofError/DecodeError when the bundle fails."""
    genesis = read_genesis_file(Path(args.genesis))
    chain_id = chain_id_from(args.chain)
    policy = policy_from(args)
    data = read_bundle_file(Path(args.file))
    return genesis, verify_bundle(data, genesis=genesis, chain_id=chain_id, policy=policy)


def run(args: argparse.Namespace, out: TextIO) -> int:
    """``pantheon-verify``: verify, print, return the exit status."""
    try:
        genesis, claim = verify_file(args)
    except (ProofError, DecodeError) as exc:
        return print_invalid(args, exc, out)
    if args.json:
        print(json.dumps(valid_document(str(args.file), claim), indent=2), file=out)
        return 0
    for line in describe_claim(claim, genesis):
        print(line, file=out)
    print(f"Proved: {claim.summary()}.", file=out)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="pantheon-verify", description="verify a Pantheon proof bundle offline and say exactly what it proves"
    )
    add_verify_arguments(parser)
    args = parser.parse_args(argv)
    try:
        return run(args, sys.stdout)
    except PantheonError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
