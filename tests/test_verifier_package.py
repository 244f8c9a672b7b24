"""The auditor's distribution: built from verifier/, installed alone into a fresh venv, it verifies the vectors.

What an auditor does: build the wheel (``make verifier-wheel``, or ``pip install
./verifier``), install it into an environment holding nothing of the node, and run
``pantheon-verify``. The test does the same: it builds the wheel with the in-tree
backend, fetches the wheels of its declared dependencies with pip (from whatever
indexes this machine's pip uses), creates a venv without system site packages, installs
with ``--no-index`` from those files only, and checks that

- the venv holds nothing but the wheel and its dependency tree (cryptography, cffi,
  pycparser; no trio, plyvel or node code);
- ``pantheon-verify`` prints exactly what ``pantheon verify`` prints, text and JSON;
- every shipped vector gets its verdict from the installed package alone.
"""

from __future__ import annotations

import json
import subprocess
import sys
import venv
from pathlib import Path

import pytest

from tests.cli_helpers import run

REPO = Path(__file__).parent.parent
VECTORS = REPO / "tests" / "vectors" / "bundles"
EXPECTED_DISTRIBUTIONS = {"pantheon-verify", "cryptography", "cffi", "pycparser", "pip", "setuptools"}

pytestmark = pytest.mark.timeout(600)


def _pip(python: Path | str, *args: str) -> str:
    done = subprocess.run([str(python), "-m", "pip", *args], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Path:
    """The bin directory of a fresh venv holding the pantheon-verify wheel and its dependencies only."""
    work = tmp_path_factory.mktemp("verifier")
    _pip(sys.executable, "wheel", "--no-index", "--no-deps", "--wheel-dir", str(work / "dist"), str(REPO / "verifier"))
    (wheel,) = (work / "dist").glob("pantheon_verify-*.whl")
    _pip(sys.executable, "download", "--only-binary", ":all:", "--dest", str(work / "deps"), str(wheel))
    venv.EnvBuilder(with_pip=True, system_site_packages=False).create(work / "venv")
    bin_dir = work / "venv" / "bin"
    _pip(bin_dir / "python", "install", "--no-index", "--find-links", str(work / "deps"), str(wheel))
    return bin_dir


def test_the_fresh_venv_holds_only_the_verifier_and_its_dependencies(installed):
    listed = json.loads(_pip(installed / "python", "list", "--format", "json"))
    assert {item["name"].lower() for item in listed} <= EXPECTED_DISTRIBUTIONS
    probe = subprocess.run([str(installed / "python"), "-c", "import trio"], capture_output=True, timeout=60)
    assert probe.returncode != 0
    probe = subprocess.run([str(installed / "python"), "-c", "import node"], capture_output=True, timeout=60,
                           cwd="/")
    assert probe.returncode != 0


@pytest.mark.parametrize("name, args", [
    ("valid/anchored-v4-size1029", []),
    ("valid/anchored-v4-size1029", ["--json"]),
    ("valid/pending-v7-size1029", []),
    ("valid/anchored-v4-size1029", ["--require-network", "main"]),
    ("invalid/main-below-work-floor", []),
    ("invalid/op-return-other-hash", ["--json"]),
])
def test_pantheon_verify_prints_what_pantheon_verify_prints(installed, capsys, name, args):
    path = VECTORS / f"{name}.cbor"
    genesis = VECTORS / json.loads(path.with_suffix(".json").read_text())["genesis"]
    argv = [str(path), "--genesis", str(genesis), *args]
    done = subprocess.run([str(installed / "pantheon-verify"), *argv], capture_output=True, text=True, timeout=60,
                          cwd="/")
    code, out = run(["verify", *argv], capsys)
    assert (done.returncode, done.stdout) == (code, out)


def test_the_installed_package_alone_gives_every_vector_its_verdict(installed):
    """One process runs proof.verify_cli.main over every vector: exit 0 for valid ones, 1 for invalid ones."""
    cases = []
    for path in sorted(VECTORS.glob("*/*.cbor")):
        doc = json.loads(path.with_suffix(".json").read_text())
        argv = [str(path), "--genesis", str(VECTORS / doc["genesis"]), "--json"]
        if "chain_id" in doc:
            argv += ["--chain", doc["chain_id"]]
        for option, key in (("--require-network", "require_network"), ("--min-confirmations", "min_confirmations")):
            if key in doc.get("policy", {}):
                argv += [option, str(doc["policy"][key])]
        if doc.get("zero_bytes_appended"):
            continue  # a file plus padding is not one file; tests/test_bundle_vectors.py runs it in process
        cases.append((path.parent.name, argv))
    script = (
        "import contextlib, io, json, sys\n"
        "from proof.verify_cli import main\n"
        "for argv in json.loads(sys.stdin.read()):\n"
        "    out = io.StringIO()\n"
        "    with contextlib.redirect_stdout(out):\n"
        "        code = main(argv)\n"
        "    print(json.dumps([code, out.getvalue()]))\n"
    )
    done = subprocess.run([str(installed / "python"), "-c", script], input=json.dumps([a for _, a in cases]),
                          capture_output=True, text=True, timeout=300, cwd="/")
    assert done.returncode == 0, done.stderr
    results = [json.loads(line) for line in done.stdout.splitlines()]
    assert len(results) == len(cases) > 80
    for (kind, argv), (code, out) in zip(cases, results):
        doc = json.loads(Path(argv[0]).with_suffix(".json").read_text())
        verdict = json.loads(out)
        if kind == "valid":
            assert (code, verdict["claim"]) == (0, doc["claim"]), argv[0]
        else:
            assert code == 1 and doc["reason"] in verdict["error"], argv[0]
