"""Operator commands: keygen, genesis, token, config.

These are the steps of setting up a chain: every operator makes a key on their own
machine and shares only the public key; one of them assembles the genesis from all
public keys and everyone checks its hash out of band; each operator issues API
tokens to their producers.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from node.config import reference_rows
from node.keyfiles import read_key_file, write_key_file
from node.tokens import add_token
from proof.chain import Genesis
from proof.errors import DecodeError, PantheonError
from proof.hashing import sha256
from proof.mldsa import PUBLIC_KEY_SIZE, SigningKey

DEFAULT_ANCHOR_EVERY_BLOCKS = 10
DEFAULT_ANCHOR_EVERY_MS = 60_000
DEFAULT_ANCHOR_FINAL_DEPTH = 6


class GenesisFileError(PantheonError):
    """A genesis or public key file that cannot be used."""


def public_key_path(key_path: Path) -> Path:
    return key_path.with_suffix(".pub")


def write_public_key(path: Path, public_key: bytes) -> None:
    path.write_text(public_key.hex() + "\n")


def read_public_key(path: Path) -> bytes:
    try:
        text = path.read_text().strip()
    except FileNotFoundError:
        raise GenesisFileError(f"public key file {path} does not exist") from None
    try:
        key = bytes.fromhex(text)
    except ValueError:
        raise GenesisFileError(f"{path} is not a hex public key") from None
    if len(key) != PUBLIC_KEY_SIZE:
        raise GenesisFileError(f"{path}: ML-DSA-65 public key must be {PUBLIC_KEY_SIZE} bytes, got {len(key)}")
    return key


def read_genesis(path: Path) -> Genesis:
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise GenesisFileError(f"genesis file {path} does not exist") from None
    try:
        return Genesis.decode(data)
    except DecodeError as exc:
        raise GenesisFileError(f"{path} is not a valid genesis: {exc}") from None


def key_fingerprint(public_key: bytes) -> str:
    return sha256(public_key).hex()[:16]


def describe_genesis(genesis: Genesis) -> str:
    lines = [
        f"chain name:   {genesis.chain_name}",
        f"chain id:     {genesis.hash.hex()}",
        f"validators:   n={genesis.n} f={genesis.f} quorum={genesis.quorum}",
    ]
    lines += [f"  [{i}] {key_fingerprint(key)}" for i, key in enumerate(genesis.validators)]
    lines += [
        f"anchoring:    every {genesis.anchor_every_blocks} blocks or {genesis.anchor_every_ms} ms, "
        f"final at depth {genesis.anchor_final_depth}",
    ]
    return "\n".join(lines)


def cmd_keygen(args: argparse.Namespace) -> int:
    key = SigningKey.generate()
    write_key_file(args.out, key)
    pub = public_key_path(args.out)
    write_public_key(pub, key.public_key)
    print(f"wrote {args.out} (secret, mode 0600) and {pub} (share this one)")
    print(f"fingerprint: {key_fingerprint(key.public_key)}")
    return 0


def cmd_pubkey(args: argparse.Namespace) -> int:
    print(read_key_file(args.key).public_key.hex())
    return 0


def cmd_genesis_create(args: argparse.Namespace) -> int:
    keys = tuple(read_public_key(path) for path in args.validator)
    genesis = Genesis(
        chain_name=args.chain_name,
        validators=keys,
        created_at_ms=args.created_at_ms if args.created_at_ms is not None else int(time.time() * 1000),
        anchor_every_blocks=args.anchor_every_blocks,
        anchor_every_ms=args.anchor_every_ms,
        anchor_final_depth=args.anchor_final_depth,
    )
    if args.out.exists():
        raise GenesisFileError(f"{args.out} already exists; refusing to overwrite a genesis")
    args.out.write_bytes(genesis.encode())
    print(describe_genesis(genesis))
    print(f"wrote {args.out}: every operator must check that its chain id matches")
    return 0


def cmd_genesis_show(args: argparse.Namespace) -> int:
    print(describe_genesis(read_genesis(args.genesis)))
    return 0


def cmd_token_add(args: argparse.Namespace) -> int:
    token = add_token(args.tokens_file, args.name)
    print(token)
    print(f"# token for {args.name!r} added to {args.tokens_file}; it is shown only now", flush=True)
    return 0


def config_reference_markdown() -> str:
    lines = ["| key | default | meaning |", "|---|---|---|"]
    for key, default, meaning in reference_rows():
        lines.append(f"| `{key}` | `{default}` | {meaning.replace('|', '/')} |")
    return "\n".join(lines)


def cmd_config_reference(args: argparse.Namespace) -> int:
    if args.markdown:
        print(config_reference_markdown())
        return 0
    rows = reference_rows()
    width = max(len(key) for key, _, _ in rows)
    for key, default, meaning in rows:
        print(f"{key:<{width}}  {default:<24}  {meaning}")
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    keygen = subparsers.add_parser("keygen", help="create a validator key (mode 0600) and its .pub file")
    keygen.add_argument("-o", "--out", type=Path, default=Path("validator.key"), help="key file to create (default: validator.key)")
    keygen.set_defaults(handler=cmd_keygen)

    pubkey = subparsers.add_parser("pubkey", help="print the public key of a validator key file")
    pubkey.add_argument("key", type=Path)
    pubkey.set_defaults(handler=cmd_pubkey)

    genesis = subparsers.add_parser("genesis", help="create or show a genesis")
    genesis_sub = genesis.add_subparsers(dest="genesis_command", metavar="ACTION", required=True)
    create = genesis_sub.add_parser("create", help="assemble a genesis from the validators' .pub files")
    create.add_argument("--chain-name", required=True, help="human label of the chain")
    create.add_argument("--validator", type=Path, action="append", required=True, metavar="PUBFILE",
                        help="a validator's .pub file; repeat in validator index order (n = 3f+1)")
    create.add_argument("--anchor-every-blocks", type=int, default=DEFAULT_ANCHOR_EVERY_BLOCKS)
    create.add_argument("--anchor-every-ms", type=int, default=DEFAULT_ANCHOR_EVERY_MS)
    create.add_argument("--anchor-final-depth", type=int, default=DEFAULT_ANCHOR_FINAL_DEPTH)
    create.add_argument("--created-at-ms", type=int, default=None, help="fixed creation time (default: now)")
    create.add_argument("-o", "--out", type=Path, default=Path("genesis.cbor"))
    create.set_defaults(handler=cmd_genesis_create)
    show = genesis_sub.add_parser("show", help="print a genesis: chain id, validators, parameters")
    show.add_argument("genesis", type=Path)
    show.set_defaults(handler=cmd_genesis_show)

    token = subparsers.add_parser("token", help="manage API tokens of submitters")
    token_sub = token.add_subparsers(dest="token_command", metavar="ACTION", required=True)
    token_add = token_sub.add_parser("add", help="issue a token for a submitter (printed once)")
    token_add.add_argument("name", help="submitter name (letters, digits, . _ -)")
    token_add.add_argument("--tokens-file", type=Path, default=Path("tokens.toml"))
    token_add.set_defaults(handler=cmd_token_add)

    config = subparsers.add_parser("config", help="configuration help")
    config_sub = config.add_subparsers(dest="config_command", metavar="ACTION", required=True)
    reference = config_sub.add_parser("reference", help="every config key with its default and meaning")
    reference.add_argument("--markdown", action="store_true", help="print a Markdown table (as in docs/operator.md)")
    reference.set_defaults(handler=cmd_config_reference)



