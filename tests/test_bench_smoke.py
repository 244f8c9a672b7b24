"""The benchmarks run and print their figures as name=value lines (their values are not
asserted: speed is shown by `make bench`, not tested)."""

from __future__ import annotations

import subprocess
import sys

import pytest

NETWORK_FIGURES = (
    "nproc", "finalized_roots_per_s", "reference_roots_per_s", "ratio", "certify_p50_ms", "certify_p99_ms",
    "certify_half_p50_ms", "certify_half_p99_ms", "cpu_s_per_1000_roots", "rss_mb_max", "disk_bytes_per_root",
    "p2p_gossip_bytes_per_root", "p2p_proposal_bytes_per_root", "compact_proposals_sent", "certify_half_max_ms",
    "leveldb_write_stalls", "view_timeouts", "view_timeouts_half",
)


def figures(output: str) -> dict[str, str]:
    pairs = [line.split("=", 1) for line in output.splitlines() if line and not line.startswith("#")]
    assert all(len(pair) == 2 for pair in pairs), output
    return dict(pairs)


@pytest.mark.timeout(300)
def test_pantheon_bench_drives_a_real_network_and_prints_every_figure():
    result = subprocess.run(
        # 5 s: the window must outlast one view timeout (2 s in the devnet) to see a block finalized.
        [sys.executable, "-m", "node.cli", "bench", "--seconds", "5", "--warmup-seconds", "1",
         "--reference-roots", "5000", "--loaders", "2"],
        capture_output=True, text=True, timeout=280,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    values = figures(result.stdout)
    for name in NETWORK_FIGURES:
        assert name in values, f"{name} missing from:\n{result.stdout}"
        float(values[name])
    assert float(values["finalized_roots_per_s"]) > 0
    assert float(values["reference_roots_per_s"]) > 0
    assert values["view_timeouts_stages"] == "none" or all(
        stage.split(":")[0] in {"no_proposal", "checking", "invalid", "voted", "waiting_for_parent", "notarized"}
        for stage in values["view_timeouts_stages"].split(",")
    )


def test_the_verify_bench_prints_the_anchored_bundle_figure():
    result = subprocess.run([sys.executable, "-m", "bench.verify_bench", "--rounds", "2"],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    values = figures(result.stdout)
    assert float(values["verify_anchored_n4_ms"]) > 0


@pytest.mark.timeout(120)
def test_the_pipeline_bench_runs_a_validators_steps_and_prints_each():
    result = subprocess.run([sys.executable, "-m", "bench.pipeline_bench", "--blocks", "2"],
                            capture_output=True, text=True, timeout=100)
    assert result.returncode == 0, result.stderr[-2000:]
    values = figures(result.stdout)
    assert values["roots"] == "20000"
    for step in ("admit_gossip", "check_block", "block_fault", "apply_stage", "apply_write", "apply_forget"):
        assert float(values[f"{step}_us_per_root"]) >= 0, step
    assert float(values["process_cpu_us_per_root"]) > 0
