"""How long web/verify.html takes to verify one bundle and one audit package in headless Chromium.

A benchmark, not a test: it prints figures. The time is measured inside the page
(performance.now() around window.pantheon.verify), so it leaves out WebDriver's transfer.

    python -m bench.web_bench [--runs N]
"""

from __future__ import annotations

import argparse
import base64
import statistics
import sys

from tests.test_web_page import BUNDLES, PACKAGES, browser_missing, verifier_page

TIMED = """
const [method, files, runs, done] = arguments;
const bytes = (text) => Uint8Array.from(atob(text), (c) => c.charCodeAt(0));
const inputs = files.map(bytes);
(async () => {
  const times = [];
  for (let i = 0; i < runs; i++) {
    const started = performance.now();
    const result = await window.pantheon[method](...inputs);
    times.push(performance.now() - started);
    if (!result.ok) return done({error: result.error});
  }
  done({times});
})();
"""

CASES = (
    ("anchored bundle, 4 validators (3 signatures), log of 3", "verify",
     [BUNDLES / "valid" / "anchored-v4-size3.cbor", BUNDLES / "genesis-v4.cbor"]),
    ("anchored bundle, 7 validators (5 signatures), log of 1029", "verify",
     [BUNDLES / "valid" / "anchored-v7-size1029.cbor", BUNDLES / "genesis-v7.cbor"]),
    ("audit package, 20 entries all disclosed (20 + 1 signatures), pending", "verifyPackage",
     [PACKAGES / "valid" / "all-disclosed-pending.cbor"]),
)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=20, help="verifications per case after the first (cold) one")
    args = parser.parse_args()
    reason = browser_missing()
    if reason:
        print(f"web_bench: skipped: {reason}")
        return 0
    with verifier_page() as driver:
        for label, method, paths in CASES:
            files = [base64.b64encode(path.read_bytes()).decode() for path in paths]
            result = driver.execute_async_script(TIMED, method, files, 1 + args.runs)
            if "error" in result:
                print(f"web_bench: {label}: verification failed: {result['error']}", file=sys.stderr)
                return 1
            cold, *warm = result["times"]
            print(f"browser verify, {label}: first {cold:.1f} ms, then median {statistics.median(warm):.1f} ms "
                  f"(min {min(warm):.1f}, max {max(warm):.1f}, {len(warm)} runs)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
