"""``pantheon sim``: run many seeds of the simulator and summarise them.

One summary line per run set, e.g.::

    seeds=1000 violations=0 finalized=123456 median_finality_ms=210 p99_finality_ms=980 ...

``msgs_per_block``, ``bytes_per_block`` and ``verifies_per_block`` are what the honest
validators sent and verified, summed over them, per finalized block (consensus.sim.traffic).

Exit status 0 when every invariant held in every seed; 1 otherwise, after printing
each failing seed, its violation and the exact command that replays it.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

from consensus.sim.byzantine import BEHAVIOURS
from consensus.sim.faults import FaultMixError, parse_fault_mix
from consensus.sim.runner import (
    DEFAULT_GST_MS,
    DEFAULT_STEPS_MAX,
    REAL_SIZES_SHARE,
    SIZES,
    RunResult,
    SimConfig,
    run_seed,
)
from consensus.sim.rng import SEED_MAX

SEEDS_MAX = 10_000_000
FAILURES_PRINTED_MAX = 10


@dataclass
class Summary:
    """Totals over a set of runs."""

    seeds: int = 0
    violations: int = 0
    finalized: int = 0
    finality_ms: list[int] = field(default_factory=list)
    views: int = 0
    messages: int = 0
    dropped: int = 0
    evidence: int = 0
    decode_rejected: int = 0
    invalid_proposals: int = 0
    steps: int = 0
    hops_per_ms: list[float] = field(default_factory=list)
    failures: list[RunResult] = field(default_factory=list)
    real_size_seeds: int = 0
    rejoin_worst_ms: int = 0
    catchup_blocks: int = 0
    honest_msgs: int = 0
    honest_bytes: int = 0
    honest_verifies: int = 0

    def add(self, result: RunResult) -> None:
        self.seeds += 1
        self.finalized += result.height_max
        self.finality_ms.extend(result.finality_ms)
        self.views += result.views_max
        self.messages += result.links.sent
        self.dropped += result.links.dropped + result.links.partitioned
        self.evidence += sum(result.evidence_against.values())
        self.decode_rejected += result.honest_counters.get("decode_rejected", 0)
        self.invalid_proposals += result.invalid_blocks
        self.steps += result.steps
        self.real_size_seeds += result.real_sizes
        self.rejoin_worst_ms = max(self.rejoin_worst_ms, result.rejoin_worst_ms)
        self.catchup_blocks += result.catchup_blocks
        if result.cost is not None:
            self.honest_msgs += result.cost.msgs
            self.honest_bytes += result.cost.bytes_sent
            self.honest_verifies += result.cost.verifies
        if result.mean_link_delay_ms > 0:
            self.hops_per_ms.append(1.0 / result.mean_link_delay_ms)
        if result.violation is not None:
            self.violations += 1
            self.failures.append(result)

    def line(self, seconds: float) -> str:
        latencies = sorted(self.finality_ms)
        median = statistics.median(latencies) if latencies else 0
        p99 = latencies[min(len(latencies) - 1, (len(latencies) * 99) // 100)] if latencies else 0
        hops_per_ms = statistics.mean(self.hops_per_ms) if self.hops_per_ms else 0.0
        blocks = max(1, self.finalized)
        return (
            f"seeds={self.seeds} violations={self.violations} finalized={self.finalized} "
            f"median_finality_ms={median:g} p99_finality_ms={p99} "
            f"median_finality_hops={median * hops_per_ms:.1f} views={self.views} msgs={self.messages} "
            f"dropped={self.dropped} evidence={self.evidence} garbage_rejected={self.decode_rejected} "
            f"invalid_proposals={self.invalid_proposals} steps={self.steps} "
            f"real_size_seeds={self.real_size_seeds} catchup_blocks={self.catchup_blocks} "
            f"rejoin_worst_ms={self.rejoin_worst_ms} "
            f"msgs_per_block={self.honest_msgs / blocks:.1f} bytes_per_block={self.honest_bytes / blocks:.0f} "
            f"verifies_per_block={self.honest_verifies / blocks:.1f} "
            f"sec_per_seed={seconds / max(1, self.seeds):.3f}"
        )


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--validators", type=int, default=4, help="n = 3f+1 validators (default 4)")
    parser.add_argument("--byzantine", type=int, default=None, help="Byzantine validators, 0..f (default f)")
    parser.add_argument("--seeds", type=int, default=100, help="how many seeds to run (default 100)")
    parser.add_argument("--seed-start", type=int, default=0, help="first seed (default 0)")
    parser.add_argument(
        "--steps", type=int, default=DEFAULT_STEPS_MAX,
        help=f"most events per run, a runaway guard (default {DEFAULT_STEPS_MAX})",
    )
    parser.add_argument(
        "--horizon-ms", type=int, default=None,
        help="virtual time per run (default: GST at 5 s + progress bound + 4 s, about 20 s at n=4); "
        "a horizon below 5 s moves GST to the horizon (no progress check)",
    )
    parser.add_argument(
        "--faults", default="all",
        help="fault mix: comma list of delay,drop,dup,reorder,partition,crash,byzantine; 'all' or 'none'",
    )
    parser.add_argument(
        "--behaviours", default=",".join(BEHAVIOURS),
        help=f"Byzantine behaviours to draw from (default all: {','.join(BEHAVIOURS)})",
    )
    parser.add_argument("--real-crypto", action="store_true", help="sign with ML-DSA-65 (slow; traces differ)")
    parser.add_argument(
        "--sizes", choices=SIZES, default="mixed",
        help="small: tiny blocks and signatures; real: full 10,000-root blocks, ML-DSA-65-sized signatures "
        f"and a validator down for most of the time before GST; mixed (default): real in {REAL_SIZES_SHARE:.0%} "
        "of the seeds",
    )
    parser.add_argument("--verbose", action="store_true", help="one line per seed")
    parser.add_argument(
        "--quorum-override", type=int, default=None, metavar="Q",
        help="TEST ONLY: cores form and accept certificates with Q votes instead of 2f+1, "
        "to check that the simulator catches a broken protocol",
    )


def register(subparsers: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    """Add the ``sim`` command to the ``pantheon`` CLI."""
    parser = subparsers.add_parser(
        "sim",
        help="run the deterministic consensus simulator over many seeds",
        description=(
            "Drive n simulated validators (up to f Byzantine) through delays, drops, duplicates, "
            "reordering, partitions and crash-restarts under virtual time, checking the safety and "
            "liveness invariants after every step. Same seed, same run."
        ),
    )
    add_arguments(parser)
    parser.set_defaults(handler=run_command)


def config_from_args(args: argparse.Namespace) -> SimConfig:
    mix = parse_fault_mix(args.faults)
    f = (args.validators - 1) // 3
    byzantine = f if args.byzantine is None else args.byzantine
    behaviours = tuple(word.strip() for word in args.behaviours.split(",") if word.strip())
    return SimConfig(
        validators=args.validators,
        byzantine=byzantine,
        faults=mix,
        behaviours=behaviours,
        horizon_ms=args.horizon_ms,
        # A horizon shorter than the default GST makes the whole run pre-GST.
        gst_ms=DEFAULT_GST_MS if args.horizon_ms is None else min(DEFAULT_GST_MS, args.horizon_ms),
        steps_max=args.steps,
        real_crypto=args.real_crypto,
        quorum_override=args.quorum_override,
        sizes=args.sizes,
    )


def replay_command(args: argparse.Namespace, config: SimConfig, seed: int) -> str:
    parts = [
        "pantheon sim",
        f"--validators {config.validators}",
        f"--byzantine {config.byzantine}",
        "--seeds 1",
        f"--seed-start {seed}",
        f"--steps {config.steps_max}",
        f"--faults {config.faults.spec()}",
        f"--behaviours {','.join(config.behaviours)}",
    ]
    if args.horizon_ms is not None:
        parts.append(f"--horizon-ms {args.horizon_ms}")
    if config.real_crypto:
        parts.append("--real-crypto")
    parts.append(f"--sizes {config.sizes}")
    if config.quorum_override is not None:
        parts.append(f"--quorum-override {config.quorum_override}")
    parts.append("--verbose")
    return " ".join(parts)


def run_command(args: argparse.Namespace) -> int:
    try:
        config = config_from_args(args)
    except (FaultMixError, ValueError) as exc:
        print(f"pantheon sim: error: {exc}", file=sys.stderr)
        return 2
    if not 1 <= args.seeds <= SEEDS_MAX or not 0 <= args.seed_start <= SEED_MAX - args.seeds:
        print(f"pantheon sim: error: --seeds must be 1..{SEEDS_MAX} and seeds must stay in 0..{SEED_MAX}",
              file=sys.stderr)
        return 2
    summary = Summary()
    started = time.perf_counter()
    for seed in range(args.seed_start, args.seed_start + args.seeds):
        result = run_seed(config, seed)
        summary.add(result)
        if args.verbose:
            print(_seed_line(result), flush=True)
    seconds = time.perf_counter() - started
    print(summary.line(seconds), flush=True)
    for result in summary.failures[:FAILURES_PRINTED_MAX]:
        assert result.violation is not None
        print(f"FAILED seed={result.seed}: {result.violation.describe()}")
        print(f"  replay: {replay_command(args, config, result.seed)}")
    if len(summary.failures) > FAILURES_PRINTED_MAX:
        print(f"  ... and {len(summary.failures) - FAILURES_PRINTED_MAX} more failing seeds")
    return 1 if summary.violations else 0


def _seed_line(result: RunResult) -> str:
    verdict = "ok" if result.violation is None else f"VIOLATION {result.violation.invariant}"
    byzantine = ",".join(f"{index}:{name}" for index, name in sorted(result.byzantine.items())) or "-"
    return (
        f"seed={result.seed} {verdict} height={result.height_min}..{result.height_max} "
        f"views={result.views_max} steps={result.steps} t={result.time_ms}ms byzantine={byzantine} "
        f"crashes={result.crashes} partitions={result.partitions} evidence={result.evidence_against or '-'} "
        f"sizes={'real' if result.real_sizes else 'small'} catchup_blocks={result.catchup_blocks} "
        f"rejoin_worst_ms={result.rejoin_worst_ms} "
        f"trace={result.trace_hash[:16]}"
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Standalone entry: ``python -m consensus.sim.cli sim ...`` or ``... -m consensus.sim.cli ...``."""
    parser = argparse.ArgumentParser(prog="pantheon")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    register(subparsers)
    arguments = list(sys.argv[1:] if argv is None else argv)
    if not arguments or arguments[0] != "sim":
        arguments = ["sim", *arguments]
    args = parser.parse_args(arguments)
    return int(args.handler(args))


if __name__ == "__main__":
    sys.exit(main())
