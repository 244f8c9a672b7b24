"""examples/federated_learning.py, run for real against a regtest devnet, as the README tells a developer to."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from devnet.bitcoind import BitcoindInstallError, find_or_install
from journal.entry import Entry, Kind, digest, key_fingerprint
from journal.package import PackageClaim, verify_package
from journal.writer import load
from proof.chain import Genesis

REPO = Path(__file__).resolve().parent.parent
EXAMPLE = REPO / "examples" / "federated_learning.py"
POISONED = "client-3"

pytestmark = pytest.mark.timeout(240)


def run(*args: str | Path, cwd: Path = REPO, timeout_s: float = 180) -> subprocess.CompletedProcess:
    env = {name: value for name, value in os.environ.items() if name != "PANTHEON_TOKEN"}
    return subprocess.run([sys.executable, *map(str, args)], capture_output=True, text=True, timeout=timeout_s,
                          cwd=cwd, env=env)


@pytest.fixture(scope="module")
def devnet():
    """A 4-validator devnet with bitcoind mining every 0.5 s, so an anchor takes seconds.

    Its directory is a mkdtemp of its own, not pytest's tmp_path: a concurrent pytest run
    prunes old base temp directories, and would delete bitcoind's datadir under it.
    """
    try:
        find_or_install()
    except BitcoindInstallError as exc:
        pytest.skip(f"no bitcoind on this machine and it could not be installed: {exc}")
    directory = Path(tempfile.mkdtemp(prefix="pantheon-fl-example-")) / "devnet"
    up = run("-m", "node.cli", "devnet", "up", "-n", "4", "--detach", "--mine-every-s", "0.5", "--dir", directory)
    try:
        assert up.returncode == 0, up.stdout + up.stderr
        yield directory
    finally:
        down = run("-m", "node.cli", "devnet", "down", "--dir", directory)
        assert down.returncode == 0, down.stdout + down.stderr
        shutil.rmtree(directory.parent)


def verified(path: Path, genesis: Path, journal: Path) -> PackageClaim:
    """The package checked as an auditor would: chain and producer pinned from outside the package."""
    producer = key_fingerprint(load(journal).report.keys[0])
    return verify_package(path.read_bytes(), chain_id=Genesis.decode(genesis.read_bytes()).hash, producer=producer)


def intent(claim: PackageClaim, action: str) -> Entry:
    (entry,) = [e for e in claim.entries if e.kind == Kind.INTENT and e.action == action]
    return entry


@pytest.mark.bitcoind
def test_the_anchored_round_3_package_shows_the_poisoned_contribution_and_its_weight(devnet):
    out = devnet.parent / "anchored-run"
    result = run(EXAMPLE, "--devnet", devnet, "--out", out, "--anchor-deadline-s", "120")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "anchored in Bitcoin 6/6" in result.stdout and "points against the others" in result.stdout
    genesis = devnet / "genesis.cbor"
    package = verified(out / "round-3.audit.cbor", genesis, out / "journals" / "coordinator")
    assert package.claim.anchored and package.claim.bitcoin_network == "regtest"
    aggregate = intent(package, "aggregate")
    assert aggregate.meta["round"] == 3
    assert aggregate.inputs[f"update.{POISONED}"] == digest((out / "evidence" / "round-3" / f"{POISONED}.update")
                                                            .read_bytes())
    weights = {name: aggregate.meta[f"weight.{name}"] for name in str(aggregate.meta["clients"]).split(",")}
    assert len(weights) == 5 and weights[POISONED] > sum(w for name, w in weights.items() if name != POISONED)
    assert intent(package, "ship").inputs["model"] == aggregate.inputs["model"]
    client = verified(out / f"{POISONED}-round-3.audit.cbor", genesis, out / "journals" / POISONED)
    sent = intent(client, "send-update")
    assert (sent.inputs["update"], sent.meta["samples"]) == (aggregate.inputs[f"update.{POISONED}"], weights[POISONED])


@pytest.mark.bitcoind
def test_without_waiting_for_bitcoin_the_package_is_certified_and_pending(devnet):
    out = devnet.parent / "certified-run"
    result = run(EXAMPLE, "--devnet", devnet, "--out", out, "--no-wait-anchor")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "PENDING (certified, not yet anchored in Bitcoin)" in result.stdout
    package = verified(out / "round-3.audit.cbor", devnet / "genesis.cbor", out / "journals" / "coordinator")
    assert not package.claim.anchored


def test_without_a_devnet_the_example_says_to_start_one(tmp_path):
    result = run(EXAMPLE, "--devnet", tmp_path / "absent", cwd=tmp_path, timeout_s=60)
    assert result.returncode == 1
    assert "no devnet found" in result.stderr and "make devnet" in result.stderr
    assert not (tmp_path / "fl-runs").exists()


def test_with_no_node_listening_the_example_says_to_start_the_devnet(tmp_path):
    result = run(EXAMPLE, "--node", "http://127.0.0.1:1", "--token", "t", "--genesis", tmp_path / "genesis.cbor",
                 cwd=tmp_path, timeout_s=60)
    assert result.returncode == 1
    assert "no Pantheon node answers at http://127.0.0.1:1" in result.stderr and "make devnet" in result.stderr


def test_help_names_the_devnet_and_the_options(tmp_path):
    result = run(EXAMPLE, "--help", cwd=tmp_path, timeout_s=60)
    assert result.returncode == 0
    for text in ("make devnet", "--node", "--token", "--no-wait-anchor", "--anchor-deadline-s"):
        assert text in result.stdout
