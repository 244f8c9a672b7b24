"""Consensus at scale: messages, bytes and signature checks per finalized block, and finality, against n.

Run: ``.venv/bin/python -m bench.consensus_scale [--seeds N] [--validators 4,7,10,16]``.

Each n runs twice in the deterministic simulator: *healthy* (no Byzantine validator, no
network fault, links 20-80 ms one way) and *byz* (f Byzantine validators drawing from
the simulator's whole behaviour mix, the network otherwise clean). The figures are
summed over the honest validators and divided by the heights finalized, so the
Byzantine validators' own traffic is not in them; what they cost shows as the honest
validators' extra work and slower finality. Simplex votes all-to-all, so messages per
block should grow as n^2: ``msgs_per_block_over_n2`` says how closely they do.

The figures are counts, not timings (the simulator runs on virtual time), so they are
the same on any machine: only ``sec`` (wall time of the runs) depends on it.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from consensus.sim.faults import parse_fault_mix
from consensus.sim.runner import DEFAULT_GST_MS, SIZES, RunResult, SimConfig, run_seed

SCENARIOS = (("healthy", "none", False), ("byz", "byzantine", True))
# Message kinds grouped for the "what dominates bytes" shares.
GROUPS = {
    "proposal": ("proposal",),
    "votes": ("vote_notarize", "vote_nullify", "vote_finalize"),
    "certs": (
        "cert_notarize", "cert_notarize_with_block", "cert_nullify",
        "cert_finalize", "cert_finalize_with_block",
    ),
    "catchup": ("catchup_request", "catchup_response"),
}
DEFAULT_HORIZON_MS = 10_000


class BenchError(ValueError):
    """An argument the bench cannot run with."""


@dataclass
class Totals:
    """One (n, scenario)'s sums over its seeds."""

    n: int
    horizon_ms: int
    honest: int = 0
    seeds: int = 0
    blocks: int = 0
    msgs: int = 0
    bytes_sent: int = 0
    verifies: int = 0
    repeat_verifies: int = 0
    views: int = 0
    violations: int = 0
    finality_ms: list[int] = field(default_factory=list)
    hops_per_ms: list[float] = field(default_factory=list)
    kind_bytes: dict[str, int] = field(default_factory=dict)
    kind_msgs: dict[str, int] = field(default_factory=dict)

    def add(self, result: RunResult) -> None:
        cost = result.cost
        assert cost is not None
        self.seeds += 1
        self.honest = cost.honest
        self.blocks += result.finalized_heights
        self.msgs += cost.msgs
        self.bytes_sent += cost.bytes_sent
        self.verifies += cost.verifies
        self.repeat_verifies += cost.repeat_verifies
        self.views += result.views_max
        self.violations += result.violation is not None
        self.finality_ms.extend(result.finality_ms)
        if result.mean_link_delay_ms > 0:
            self.hops_per_ms.append(1.0 / result.mean_link_delay_ms)
        for kind, count in cost.kind_bytes.items():
            self.kind_bytes[kind] = self.kind_bytes.get(kind, 0) + count
        for kind, count in cost.kind_msgs.items():
            self.kind_msgs[kind] = self.kind_msgs.get(kind, 0) + count

    @property
    def horizon_ms_total(self) -> int:
        return self.horizon_ms * self.seeds

    def figures(self) -> dict[str, float]:
        """Name (without the n prefix or scenario suffix) to value."""
        blocks = max(1, self.blocks)
        honest = max(1, self.honest)
        latencies = sorted(self.finality_ms)
        p50 = statistics.median(latencies) if latencies else 0.0
        p99 = latencies[min(len(latencies) - 1, (len(latencies) * 99) // 100)] if latencies else 0.0
        hops_per_ms = statistics.mean(self.hops_per_ms) if self.hops_per_ms else 0.0
        out: dict[str, float] = {
            "blocks": self.blocks,
            "views_per_block": self.views / blocks,
            "block_interval_ms": self.horizon_ms_total / blocks,
            "msgs_per_block": self.msgs / blocks,
            "msgs_per_block_per_validator": self.msgs / blocks / honest,
            "msgs_per_block_over_n2": self.msgs / blocks / self.n**2,
            "bytes_per_block": self.bytes_sent / blocks,
            "bytes_per_block_per_validator": self.bytes_sent / blocks / honest,
            "sig_verifies_per_block": self.verifies / blocks,
            "sig_verifies_per_block_per_validator": self.verifies / blocks / honest,
            "repeat_verifies_share": self.repeat_verifies / max(1, self.verifies),
            "finality_p50_ms": p50,
            "finality_p99_ms": p99,
            "finality_p50_hops": p50 * hops_per_ms,
            "finality_p99_hops": p99 * hops_per_ms,
            "violations": self.violations,
        }
        total_bytes = max(1, self.bytes_sent)
        for group, kinds in GROUPS.items():
            out[f"bytes_share_{group}"] = sum(self.kind_bytes.get(kind, 0) for kind in kinds) / total_bytes
            out[f"msgs_per_block_{group}"] = sum(self.kind_msgs.get(kind, 0) for kind in kinds) / blocks
        return out


def parse_validators(text: str) -> list[int]:
    try:
        counts = [int(word) for word in text.split(",") if word.strip()]
    except ValueError:
        raise BenchError(f"--validators takes a comma list of integers, got {text!r}") from None
    if not counts or any(n < 4 or (n - 1) % 3 for n in counts):
        raise BenchError(f"--validators must list n = 3f+1 >= 4, got {text!r}")
    return counts


def run_scenario(n: int, byzantine: bool, faults: str, *, seeds: int, horizon_ms: int, sizes: str) -> Totals:
    config = SimConfig(
        validators=n,
        byzantine=(n - 1) // 3 if byzantine else 0,
        faults=parse_fault_mix(faults),
        horizon_ms=horizon_ms,
        gst_ms=min(DEFAULT_GST_MS, horizon_ms),
        sizes=sizes,
    )
    totals = Totals(n=n, horizon_ms=horizon_ms)
    for seed in range(seeds):
        totals.add(run_seed(config, seed))
    return totals


def _value(value: float) -> str:
    if isinstance(value, int) or float(value).is_integer():
        return str(int(value))
    return f"{value:.4g}" if abs(value) < 1 else f"{value:.1f}"


def table(rows: list[tuple[int, str, dict[str, float]]]) -> list[str]:
    """The markdown table of the headline figures, one row per (n, scenario)."""
    header = (
        "| n | f | run | blocks | ms/block | msgs/block | msgs/block/n² | msgs/block/validator | MB/block | "
        "MB/block/validator | sig verifies/block | verifies/block/validator | repeat verifies | "
        "finality p50 ms (hops) | finality p99 ms (hops) | bytes: proposals / votes / certs |"
    )
    lines = [header, "|" + "---|" * (header.count("|") - 1)]
    for n, scenario, fig in rows:
        lines.append(
            f"| {n} | {(n - 1) // 3} | {scenario} | {int(fig['blocks'])} | {fig['block_interval_ms']:.0f} | "
            f"{fig['msgs_per_block']:.0f} | "
            f"{fig['msgs_per_block_over_n2']:.2f} | {fig['msgs_per_block_per_validator']:.1f} | "
            f"{fig['bytes_per_block'] / 1e6:.2f} | {fig['bytes_per_block_per_validator'] / 1e6:.3f} | "
            f"{fig['sig_verifies_per_block']:.0f} | {fig['sig_verifies_per_block_per_validator']:.1f} | "
            f"{fig['repeat_verifies_share']:.1%} | {fig['finality_p50_ms']:.0f} ({fig['finality_p50_hops']:.1f}) | "
            f"{fig['finality_p99_ms']:.0f} ({fig['finality_p99_hops']:.1f}) | "
            f"{fig['bytes_share_proposal']:.0%} / {fig['bytes_share_votes']:.0%} / {fig['bytes_share_certs']:.0%} |"
        )
    return lines


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench.consensus_scale", description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=3, help="seeds per n and scenario (default 3)")
    parser.add_argument("--validators", default="4,7,10,16", help="comma list of n (default 4,7,10,16)")
    parser.add_argument("--sizes", choices=SIZES, default="real", help="simulator sizes (default real)")
    parser.add_argument(
        "--horizon-ms", type=int, default=DEFAULT_HORIZON_MS,
        help=f"virtual time per run (default {DEFAULT_HORIZON_MS})",
    )
    parser.add_argument("--table", type=Path, default=None, help="also write the markdown table to this file")
    args = parser.parse_args(argv)
    try:
        counts = parse_validators(args.validators)
        if args.seeds < 1 or args.horizon_ms < 1:
            raise BenchError("--seeds and --horizon-ms must be positive")
    except BenchError as error:
        print(f"bench.consensus_scale: error: {error}", file=sys.stderr)
        return 2
    print(
        f"# consensus at scale: {args.seeds} seed(s) per run, {args.horizon_ms} ms virtual time, "
        f"sizes={args.sizes}; healthy = no faults, byz = f Byzantine validators (behaviour mix), clean links"
    )
    rows: list[tuple[int, str, dict[str, float]]] = []
    for n in counts:
        for scenario, faults, byzantine in SCENARIOS:
            started = time.perf_counter()
            totals = run_scenario(n, byzantine, faults, seeds=args.seeds, horizon_ms=args.horizon_ms, sizes=args.sizes)
            figures = totals.figures()
            figures["sec"] = time.perf_counter() - started
            suffix = "_byz" if byzantine else ""
            for name, value in figures.items():
                print(f"n{n}_{name}{suffix}={_value(value)}", flush=True)
            rows.append((n, scenario, figures))
    lines = table(rows)
    for line in lines:
        print(f"# {line}")
    if args.table is not None:
        args.table.write_text("\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
