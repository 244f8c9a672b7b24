"""`pantheon soak`, short: every fault kind happens, and the chain still keeps every promise.

The full 600 s run is `make soak`; this is the same program for 90 s with a fixed seed
(whose schedule holds every fault kind), run as the user runs it: a `pantheon soak`
process, whose exit status is the verdict and which must leave no process behind.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from devnet import cluster
from devnet.bitcoind import BitcoindInstallError, find_or_install
from devnet.soak import FAULT_KINDS, SUMMARY_FILE

pytestmark = [pytest.mark.slow, pytest.mark.bitcoind, pytest.mark.timeout(720)]

SOAK_SECONDS = 90
SEED = 12
RUN_DEADLINE_S = 660


def processes_naming(directory: Path) -> list[str]:
    """Command lines of live processes that mention ``directory`` (nodes, miner, bitcoind)."""
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cmdline = (proc / "cmdline").read_bytes().replace(b"\x00", b" ").decode(errors="replace")
            state = (proc / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except (FileNotFoundError, ProcessLookupError, PermissionError):
            continue
        if str(directory) in cmdline and state != "Z":
            found.append(f"{proc.name}: {cmdline}")
    return found


def test_a_short_soak_passes_every_check_with_every_fault_kind(tmp_path: Path) -> None:
    try:
        find_or_install()
    except BitcoindInstallError as exc:
        pytest.skip(f"no bitcoind on this machine and it could not be installed: {exc}")
    directory = tmp_path / "soak"
    try:
        result = subprocess.run(
            [sys.executable, "-m", "node.cli", "soak", "--seconds", str(SOAK_SECONDS), "--seed", str(SEED),
             "--dir", str(directory)],
            capture_output=True, text=True, timeout=RUN_DEADLINE_S, cwd=tmp_path,
        )
    except subprocess.TimeoutExpired:
        cluster.stop(cluster.DevnetState.load(directory))  # the soak was SIGKILLed: its finally never ran
        raise
    print(result.stdout[-6000:], result.stderr[-3000:])
    assert result.returncode == 0, f"soak (seed {SEED}) failed:\n{result.stdout[-6000:]}\n{result.stderr[-3000:]}"
    summary = json.loads((directory / SUMMARY_FILE).read_text())
    never = [kind for kind in FAULT_KINDS if summary["faults"].get(kind, 0) < 1]
    assert never == [], f"fault kinds that never happened: {never} (counts: {summary['faults']})"
    assert summary["hostile_replies"], "the hostile bitcoind answered nothing"
    assert summary["proxy_counts"]["cut"] + summary["proxy_counts"]["refused"] >= 1
    assert processes_naming(directory) == []
