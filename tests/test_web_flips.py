"""Differential test: bundles and packages with one bit flipped get the same verdict in the browser as in Python.

The vectors show each rule once; flipping bits spreads over every field and every step, so
the two implementations are compared on inputs neither was written for. A flip lands in every
stride-th byte (bit position = byte offset mod 8); both verifiers must agree on each result:
the claim when it still verifies, else the error class, step prefix, reason code and entry.
"""

from __future__ import annotations

import base64
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from journal.errors import ChainError, PackageError
from journal.package import verify_package
from proof.bundle import verify_bundle
from proof.chain import Genesis
from proof.errors import DecodeError, ProofError
from tests.test_web_page import BUNDLES, PACKAGE_PREFIXES, PACKAGES, STEP_PREFIXES, page_session, step_of

BUNDLE = BUNDLES / "valid" / "anchored-v4-header-with-anchors.cbor"
GENESIS = BUNDLES / "genesis-v4.cbor"
PACKAGE = PACKAGES / "valid" / "entry-17-of-20-anchored.cbor"
BUNDLE_STRIDE = 11
PACKAGE_STRIDE = 17
FLIPS = """
const [method, files, stride, done] = arguments;
const bytes = (text) => Uint8Array.from(atob(text), (c) => c.charCodeAt(0));
const [data, ...rest] = files.map(bytes);
(async () => {
  const out = [];
  for (let i = 0; i < data.length; i += stride) {
    const copy = data.slice();
    copy[i] ^= 1 << (i % 8);
    const r = await window.pantheon[method](copy, ...rest, {});
    out.push(r.ok ? [true, r.claim] : [false, r.error.class, r.error.prefix, r.error.reason ?? null, r.error.seq ?? null]);
  }
  done(out);
})();
"""


def flipped(data: bytes, stride: int) -> Iterator[bytes]:
    for offset in range(0, len(data), stride):
        copy = bytearray(data)
        copy[offset] ^= 1 << (offset % 8)
        yield bytes(copy)


def python_bundle_result(data: bytes, genesis: Genesis) -> list[Any]:
    try:
        return [True, verify_bundle(data, genesis=genesis).to_json()]
    except (ProofError, DecodeError) as exc:
        return [False, "ProofError" if isinstance(exc, ProofError) else "DecodeError", step_of(str(exc), STEP_PREFIXES),
                None, None]


def python_package_result(data: bytes) -> list[Any]:
    try:
        return [True, verify_package(data).to_json()]
    except (ChainError, PackageError, ProofError, DecodeError) as exc:
        return [False, type(exc).__name__, step_of(str(exc), PACKAGE_PREFIXES), getattr(exc, "reason", None),
                getattr(exc, "seq", None)]


@pytest.fixture(scope="module")
def page() -> Iterator[Any]:
    yield from page_session()


def browser_results(page: Any, method: str, paths: list[Path], stride: int) -> list[list[Any]]:
    files = [base64.b64encode(path.read_bytes()).decode() for path in paths]
    return page.execute_async_script(FLIPS, method, files, stride)


def test_a_bundle_with_any_one_bit_flipped_gets_the_same_verdict_in_the_browser(page):
    genesis = Genesis.decode(GENESIS.read_bytes())
    expected = [python_bundle_result(data, genesis) for data in flipped(BUNDLE.read_bytes(), BUNDLE_STRIDE)]
    got = browser_results(page, "verify", [BUNDLE, GENESIS], BUNDLE_STRIDE)
    differ = [(i * BUNDLE_STRIDE, e, g) for i, (e, g) in enumerate(zip(expected, got, strict=True)) if e != g]
    assert differ == [], f"{len(differ)} of {len(expected)} flips differ, first: {differ[:3]}"


def test_a_package_with_any_one_bit_flipped_gets_the_same_verdict_in_the_browser(page):
    expected = [python_package_result(data) for data in flipped(PACKAGE.read_bytes(), PACKAGE_STRIDE)]
    got = browser_results(page, "verifyPackage", [PACKAGE], PACKAGE_STRIDE)
    differ = [(i * PACKAGE_STRIDE, e, g) for i, (e, g) in enumerate(zip(expected, got, strict=True)) if e != g]
    assert differ == [], f"{len(differ)} of {len(expected)} flips differ, first: {differ[:3]}"
