"""``pantheon node run --config FILE``: run one validator until SIGINT/SIGTERM."""

from __future__ import annotations

import argparse
from pathlib import Path

import trio

from node.config import load_config
from node.logs import setup_logging
from proof.errors import PantheonError


def cmd_node_run(args: argparse.Namespace) -> int:
    from node.runtime import Node, run_until_signalled

    config = load_config(args.config)
    setup_logging(args.log_level or config.node.log_level)
    node = Node(config, restored=args.restored)
    try:
        trio.run(run_until_signalled, node)
    except BaseExceptionGroup as group:
        raise operator_error_of(group) or group from None
    return 0


def operator_error_of(group: BaseExceptionGroup) -> PantheonError | None:
    """The first error of a failed start or run when every error in ``group`` is one the
    operator can act on (a PantheonError, e.g. an API address in use or a descriptor limit
    too low): printed as one line, not as the nurseries' traceback. None otherwise, so a
    bug keeps its traceback."""
    matched, rest = group.split(PantheonError)
    if matched is None or rest is not None:
        return None
    first: BaseException = matched
    while isinstance(first, BaseExceptionGroup):
        first = first.exceptions[0]
    assert isinstance(first, PantheonError)
    return first


def register(subparsers: argparse._SubParsersAction) -> None:
    node = subparsers.add_parser("node", help="run a validator")
    sub = node.add_subparsers(dest="node_command", metavar="ACTION", required=True)
    run = sub.add_parser("run", help="run a validator until SIGINT/SIGTERM (clean shutdown)")
    run.add_argument("--config", type=Path, required=True, help="node config file (TOML)")
    run.add_argument("--log-level", choices=("debug", "info", "warning", "error"), default=None,
                     help="override node.log_level from the config")
    run.add_argument(
        "--restored", action="store_true",
        help="the data directory was restored from a backup or copied: sign nothing until 2f+1 peers have "
        "shown which views are safe, then resume above them (never equivocates with votes sent before)",
    )
    run.set_defaults(handler=cmd_node_run)
