"""web/verify.html is what web/build.mjs makes from web/src/, pinned dependencies, one offline file.

The rebuild needs node and npm (and the npm registry once, for `npm ci` into web/node_modules);
without node it skips and says so.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

WEB = Path(__file__).resolve().parent.parent / "web"
PAGE = WEB / "verify.html"
PINNED = {"@noble/post-quantum": "0.7.1", "@noble/hashes": "2.4.0", "esbuild": "0.28.2"}


def _csp_hash(text: str) -> str:
    return "sha256-" + base64.b64encode(hashlib.sha256(text.encode()).digest()).decode()


def _npm_ready() -> str | None:
    """Why the page cannot be rebuilt here, or None once web/node_modules is installed."""
    if shutil.which("node") is None or shutil.which("npm") is None:
        return "rebuilding web/verify.html needs node and npm (Debian: apt-get install -y nodejs npm)"
    if (WEB / "node_modules" / "esbuild").is_dir():
        return None
    done = subprocess.run(["npm", "ci", "--no-audit", "--no-fund"], cwd=WEB, capture_output=True, text=True,
                          timeout=600)
    return None if done.returncode == 0 else f"npm ci in web/ failed: {done.stderr[-500:]}"


def test_the_committed_page_is_byte_for_byte_what_the_build_makes(tmp_path):
    reason = _npm_ready()
    if reason:
        pytest.skip(reason)
    rebuilt = tmp_path / "verify.html"
    subprocess.run(["node", "build.mjs", "--out", str(rebuilt)], cwd=WEB, check=True, capture_output=True, timeout=300)
    assert rebuilt.read_bytes() == PAGE.read_bytes(), "web/verify.html is stale: run `make web` and commit it"


def test_the_dependencies_are_pinned_to_exact_versions_in_package_json_and_the_lock_file():
    manifest = json.loads((WEB / "package.json").read_text())
    declared = {**manifest["dependencies"], **manifest["devDependencies"]}
    lock = json.loads((WEB / "package-lock.json").read_text())["packages"]
    assert declared == PINNED
    assert {name: lock[f"node_modules/{name}"]["version"] for name in PINNED} == PINNED


def test_the_page_allows_only_its_own_inline_script_and_style_and_names_no_url():
    html = PAGE.read_text()
    csp = re.search(r'http-equiv="Content-Security-Policy" content="([^"]+)"', html).group(1)
    scripts = re.findall(r"<script>(.*?)</script>", html, re.S)
    styles = re.findall(r"<style>(.*?)</style>", html, re.S)
    assert len(scripts) == 1 and len(styles) == 1
    assert csp == (f"default-src 'none'; script-src '{_csp_hash(scripts[0])}'; style-src '{_csp_hash(styles[0])}'; "
                   "base-uri 'none'; form-action 'none'")
    assert not re.search(r"https?://|\bsrc=|<link|\bfetch\b|XMLHttpRequest|WebSocket|sendBeacon", html)
