"""Running `pantheon proof|verify|audit` in-process, as the tests of those commands do."""

from __future__ import annotations

import argparse

from node.proof_commands import register
from proof.errors import PantheonError


def run(argv, capsys) -> tuple[int, str]:
    """Exit code and stdout of one command; a PantheonError prints as `error: ...` with code 1."""
    parser = argparse.ArgumentParser(prog="pantheon")
    register(parser.add_subparsers(dest="command"))
    args = parser.parse_args([str(a) for a in argv])
    try:
        code = args.handler(args)
    except PantheonError as exc:
        print(f"error: {exc}")
        code = 1
    return code, capsys.readouterr().out
