"""The ``pantheon`` command line.

Each command lives beside the code it drives and contributes its parser through a
``register(subparsers)`` function; this module only assembles them and turns
Pantheon's own errors into one clear line and a non-zero exit status.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence
from importlib import metadata

from proof.errors import PantheonError

Register = Callable[["argparse._SubParsersAction[argparse.ArgumentParser]"], None]


def _command_modules() -> list[Register]:
    """Commands in the order ``--help`` lists them."""
    from bench import network_bench
    from consensus.sim import cli as sim_cli
    from devnet import cli as devnet_cli
    from devnet import soak
    from journal import cli as journal_cli
    from node import commands, proof_commands, run_command

    return [
        commands.register,
        run_command.register,
        proof_commands.register,
        devnet_cli.register,
        soak.register,
        sim_cli.register,
        journal_cli.register,
        network_bench.register,
    ]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="pantheon",
        description=(
            "Pantheon: a permissioned BFT chain that orders audit roots into a Merkle log, "
            "certifies each block with ML-DSA-65 signatures and anchors the chain in Bitcoin."
        ),
    )
    parser.add_argument("--version", action="version", version=f"pantheon {_version()}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for register in _command_modules():
        register(subparsers)
    return parser


def _version() -> str:
    try:
        return metadata.version("pantheon")
    except metadata.PackageNotFoundError:
        return "unknown"


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    handler = getattr(args, "handler", None)
    if handler is None:
        parser.print_help()
        return 2
    try:
        return int(handler(args) or 0)
    except PantheonError as exc:
        print(f"pantheon {args.command}: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # The reader went away (e.g. `| head`): stop quietly, like other Unix tools.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141


if __name__ == "__main__":
    sys.exit(main())
