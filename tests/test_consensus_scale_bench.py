"""bench.consensus_scale runs and prints its figures; they are counts, so how they grow with n is behaviour."""

from __future__ import annotations

import contextlib
import io
import re
from pathlib import Path

import pytest

from bench.consensus_scale import main

LINE = re.compile(r"^(n(\d+)_[a-z0-9_]+)=(\S+)$", re.MULTILINE)
FIGURES = (
    "msgs_per_block", "bytes_per_block", "sig_verifies_per_block", "sig_verifies_per_block_per_validator",
    "finality_p50_ms", "finality_p99_ms", "finality_p50_hops",
)
COUNTS = ("blocks", "msgs_per_block", "bytes_per_block", "sig_verifies_per_block")


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> tuple[int, dict[str, float], str, Path]:
    table = tmp_path_factory.mktemp("scale") / "table.md"
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        status = main(
            ["--seeds", "1", "--validators", "4,7", "--sizes", "small", "--horizon-ms", "3000", "--table", str(table)]
        )
    text = out.getvalue()
    return status, {name: float(value) for name, _, value in LINE.findall(text)}, text, table


def test_the_bench_prints_every_figure_as_a_number_for_each_n_healthy_and_byzantine(run) -> None:
    status, figures, text, _ = run
    expected = {f"n{n}_{name}{suffix}" for n in (4, 7) for name in FIGURES for suffix in ("", "_byz")}
    assert status == 0, text
    assert expected <= set(figures), sorted(expected - set(figures))


def test_every_count_is_positive(run) -> None:
    _, figures, _, _ = run
    counts = {f"n{n}_{name}{suffix}" for n in (4, 7) for name in COUNTS for suffix in ("", "_byz")}
    assert {name: figures[name] for name in counts if figures[name] <= 0} == {}


def test_messages_bytes_and_verifications_per_block_grow_with_n(run) -> None:
    _, figures, _, _ = run
    for name in ("msgs_per_block", "bytes_per_block", "sig_verifies_per_block"):
        for suffix in ("", "_byz"):
            assert figures[f"n7_{name}{suffix}"] > figures[f"n4_{name}{suffix}"], name + suffix


def test_the_table_has_a_row_per_n_and_run_in_the_output_and_the_file(run) -> None:
    _, _, text, table = run
    rows = re.findall(r"^\| (\d+) \| \d+ \| (healthy|byz) \|", table.read_text(), re.MULTILINE)
    assert rows == [("4", "healthy"), ("4", "byz"), ("7", "healthy"), ("7", "byz")]
    assert text.count("\n# | ") == 1 + 4
