"""The catch-up benchmark runs end to end on a tiny history and prints its figures as name=value lines.

It asserts nothing about speed (figures on a shared machine are noise at this size):
only that every figure is there, is a number, and that the caught-up log matched.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.timeout(300)

FIGURES = (
    "roots_missed",
    "blocks_missed",
    "live_finalized_roots_per_s",
    "restart_to_healthz_s",
    "catchup_s",
    "catchup_roots_per_s",
    "catchup_blocks_per_s",
    "catchup_ratio_vs_live",
    "log_root_match",
)


def test_the_bench_prints_every_figure_as_a_name_value_line_for_a_tiny_history():
    result = subprocess.run(
        [sys.executable, "-m", "bench.catchup_bench", "--roots", "20000", "--block-roots-max", "2000"],
        cwd=Path(__file__).resolve().parent.parent, capture_output=True, text=True, timeout=280,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    lines = [line for line in result.stdout.splitlines() if line and not line.startswith("# ")]
    figures = dict(line.split("=", 1) for line in lines)
    assert len(figures) == len(lines), f"every line is one name=value: {lines}"
    assert set(FIGURES) <= set(figures), f"missing: {set(FIGURES) - set(figures)}"
    assert all(float(value) >= 0 for value in figures.values())
    assert figures["roots_missed"] == "20000"
    assert figures["log_root_match"] == "1"
