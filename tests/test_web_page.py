"""web/verify.html in a real browser: the same verdict as the Python verifier for every vector, no network.

Every bundle vector, every audit-package vector and every journal-file vector is verified in
the page and by the Python reference, and both must agree: the claim (and the printed words)
when valid, the error class and step prefix (and reason code and entry) when not.

Headless Debian chromium driven by selenium through the system chromedriver. One browser
session serves the whole module. Every request the page attempts is blocked (CDP
``Network.setBlockedURLs``) and recorded (the performance log), and the session fails if
there was any besides the page itself. The run writes two screenshots (a verified and a
rejected audit package) under build/screenshots/ and prints their paths.
"""

from __future__ import annotations

import base64
import json
import shutil
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from journal.cli import describe_package, entry_json
from journal.entry import key_fingerprint
from journal.errors import ChainError, JournalFileError, PackageError
from journal.package import Package, verify_package
from journal.writer import JOURNAL_FILE, load
from proof.bundle import verify_bundle
from proof.chain import Genesis
from proof.errors import DecodeError, ProofError
from proof.verify_cli import describe_claim
from tests.vectors import generate_bundles

ROOT = Path(__file__).resolve().parent.parent
PAGE = ROOT / "web" / "verify.html"
BUNDLES = ROOT / "tests" / "vectors" / "bundles"
PACKAGES = ROOT / "tests" / "vectors" / "journal" / "packages"
JOURNALS = ROOT / "tests" / "vectors" / "journal" / "journals"
SCREENSHOTS = ROOT / "build" / "screenshots"
BUNDLE_VECTORS = sorted((BUNDLES / "valid").glob("*.cbor")) + sorted((BUNDLES / "invalid").glob("*.cbor"))
PACKAGE_VECTORS = sorted((PACKAGES / "valid").glob("*.cbor")) + sorted((PACKAGES / "invalid").glob("*.cbor"))
JOURNAL_VECTORS = sorted(JOURNALS.glob("*.pjl"))
CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
INSTALL = ("the browser tests need Debian's chromium and its driver (as root: apt-get install -y chromium "
           "chromium-driver) and selenium (pip install selenium, part of the dev extra: pip install -e '.[dev]')")
# Root needs --no-sandbox; the rest keep Chromium from calling home (updates, sync, metrics, translation).
CHROMIUM_FLAGS = (
    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--window-size=1280,1000",
    "--disable-background-networking", "--disable-component-update", "--disable-default-apps", "--disable-sync",
    "--disable-extensions", "--disable-domain-reliability", "--disable-client-side-phishing-detection",
    "--no-first-run", "--no-default-browser-check", "--metrics-recording-only",
    "--disable-features=Translate,OptimizationHints,MediaRouter,AutofillServerCommunication",
)
STEP_PREFIXES = ("genesis: ", "decode: ", "chain: ", "block certificate: ", "inclusion proof: ", "bitcoin anchor: ",
                 "policy: ")
PACKAGE_PREFIXES = tuple(f"package bundle: {step}" for step in STEP_PREFIXES) + ("package bundle: ", "package genesis: ")
CALL = """
const [method, files, options, done] = arguments;
const bytes = ([text, zeros]) => {
  const raw = atob(text);
  const out = new Uint8Array(raw.length + zeros);
  for (let i = 0; i < raw.length; i++) out[i] = raw.charCodeAt(i);
  return out;
};
window.pantheon[method](...files.map(bytes), options).then(done, (e) => done({thrown: String(e)}));
"""


def browser_missing() -> str | None:
    """Why no browser session can start here, or None."""
    try:
        import selenium  # noqa: F401
    except ImportError:
        return INSTALL
    if not (CHROMIUM.exists() and CHROMEDRIVER.exists()):
        return INSTALL
    return None


@contextmanager
def verifier_page() -> Iterator[Any]:
    """A headless Chromium with web/verify.html loaded from file:// and every network request blocked."""
    from selenium import webdriver
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service

    options = Options()
    options.binary_location = str(CHROMIUM)
    for flag in CHROMIUM_FLAGS:
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"performance": "ALL"})
    driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
    try:
        driver.set_script_timeout(600)
        driver.execute_cdp_cmd("Network.enable", {})
        driver.execute_cdp_cmd("Network.setBlockedURLs", {"urls": ["http://*", "https://*", "ws://*", "wss://*",
                                                                   "ftp://*"]})
        driver.get(PAGE.as_uri())
        yield driver
    finally:
        driver.quit()


def requests_besides_the_page(driver: Any) -> list[str]:
    """URLs of every request the browser sent since the last call, except loading the page itself."""
    urls = []
    for record in driver.get_log("performance"):
        message = json.loads(record["message"])["message"]
        if message["method"] == "Network.requestWillBeSent":
            urls.append(message["params"]["request"]["url"])
    return [url for url in urls if url != PAGE.as_uri()]


def call(driver: Any, method: str, files: list[tuple[bytes, int]], options: dict[str, Any]) -> dict[str, Any]:
    """window.pantheon[method](*files, options) in the page; each file is (bytes, zero bytes to append)."""
    encoded = [[base64.b64encode(data).decode(), zeros] for data, zeros in files]
    return driver.execute_async_script(CALL, method, encoded, options)


def page_session() -> Iterator[Any]:
    """Body of a module's page fixture: skip without a browser; fail if the page sent any request."""
    reason = browser_missing()
    if reason:
        pytest.skip(reason)
    with verifier_page() as driver:
        yield driver
        assert requests_besides_the_page(driver) == [], "the page attempted network requests"


@pytest.fixture(scope="module")
def page() -> Iterator[Any]:
    yield from page_session()


def doc_of(path: Path) -> dict[str, Any]:
    return json.loads(path.with_suffix(".json").read_text())


# ---------------------------------------------------------------------------- what Python says


def step_of(message: str, prefixes: tuple[str, ...]) -> str:
    return next((prefix for prefix in prefixes if message.startswith(prefix)), "")


def python_bundle(path: Path) -> dict[str, Any]:
    doc = doc_of(path)
    genesis = Genesis.decode((BUNDLES / doc["genesis"]).read_bytes())
    data = path.read_bytes() + bytes(doc.get("zero_bytes_appended", 0))
    chain_id = bytes.fromhex(doc["chain_id"]) if "chain_id" in doc else None
    try:
        claim = verify_bundle(data, genesis=genesis, chain_id=chain_id,
                              policy=generate_bundles.policy_of(doc.get("policy")))
    except (ProofError, DecodeError) as exc:
        return {"ok": False, "class": "ProofError" if isinstance(exc, ProofError) else "DecodeError",
                "prefix": step_of(str(exc), STEP_PREFIXES)}
    return {"ok": True, "claim": claim.to_json(), "verdict": claim.verdict,
            "text": describe_claim(claim, genesis) + [f"Proved: {claim.summary()}."]}


def python_package(path: Path) -> dict[str, Any]:
    doc = doc_of(path)
    data = path.read_bytes()
    producer = bytes.fromhex(doc["producer"]) if "producer" in doc else None
    try:
        claim = verify_package(data, producer=producer)
    except (ChainError, PackageError, ProofError, DecodeError) as exc:
        return {"ok": False, "class": type(exc).__name__, "reason": getattr(exc, "reason", None),
                "seq": getattr(exc, "seq", None), "prefix": step_of(str(exc), PACKAGE_PREFIXES)}
    positions: list[dict[str, Any]] = []
    for item in Package.decode(data).chain:
        if isinstance(item, bytes):
            positions += [{"seq": len(positions) + i, "withheld": True, "digest": item[o:o + 32].hex()}
                          for i, o in enumerate(range(0, len(item), 32))]
        else:
            positions.append({"seq": len(positions), "withheld": False, "entry": entry_json(item)})
    return {"ok": True, "claim": claim.to_json(), "journal": positions, "text": describe_package(claim)}


def python_journal(path: Path, directory: Path) -> dict[str, Any]:
    shutil.copyfile(path, directory / JOURNAL_FILE)
    try:
        loaded = load(directory)
    except (ChainError, JournalFileError) as exc:
        return {"ok": False, "class": type(exc).__name__, "reason": getattr(exc, "reason", None),
                "seq": getattr(exc, "seq", None)}
    torn = None if loaded.torn is None else {"offset": loaded.torn.offset, "size": loaded.torn.size}
    claim = {"entries": loaded.walker.length, "head": loaded.walker.head.hex(),
             "keys": [key_fingerprint(key).hex() for key in loaded.report.keys],
             "open_intents": [intent.seq for intent in loaded.report.open_intents], "torn_tail": torn}
    journal = [{"seq": entry.seq, "withheld": False, "entry": entry_json(entry)} for entry in loaded.entries]
    return {"ok": True, "claim": claim, "journal": journal}


# ---------------------------------------------------------------------------- what the browser says


def browser_bundle(page: Any, path: Path) -> dict[str, Any]:
    doc = doc_of(path)
    policy = doc.get("policy") or {}
    options = {"chainId": doc.get("chain_id"), "requireNetwork": policy.get("require_network"),
               "minConfirmations": policy.get("min_confirmations")}
    files = [(path.read_bytes(), doc.get("zero_bytes_appended", 0)), ((BUNDLES / doc["genesis"]).read_bytes(), 0)]
    result = call(page, "verify", files, options)
    assert "thrown" not in result, result
    if not result["ok"]:
        return {"ok": False, "class": result["error"]["class"], "prefix": result["error"]["prefix"]}
    return {"ok": True, "claim": result["claim"], "verdict": result["verdict"], "text": result["text"]}


def browser_package(page: Any, path: Path) -> dict[str, Any]:
    doc = doc_of(path)
    result = call(page, "verifyPackage", [(path.read_bytes(), 0)], {"producer": doc.get("producer")})
    assert "thrown" not in result, result
    if not result["ok"]:
        error = result["error"]
        return {"ok": False, "class": error["class"], "reason": error.get("reason"), "seq": error.get("seq"),
                "prefix": error["prefix"]}
    return {"ok": True, "claim": result["claim"], "journal": result["journal"], "text": result["text"]}


def browser_journal(page: Any, path: Path) -> dict[str, Any]:
    result = call(page, "verifyJournal", [(path.read_bytes(), 0)], {})
    assert "thrown" not in result, result
    if not result["ok"]:
        error = result["error"]
        return {"ok": False, "class": error["class"], "reason": error.get("reason"), "seq": error.get("seq")}
    return {"ok": True, "claim": result["claim"], "journal": result["journal"]}


# ---------------------------------------------------------------------------- the tests


def test_every_bundle_vector_gets_the_python_verdict_and_failing_step_in_the_browser(page, capsys):
    """Valid: the same claim JSON, verdict and printed words; invalid: the same error class and step prefix."""
    disagree = {path.stem: (python_bundle(path), browser_bundle(page, path)) for path in BUNDLE_VECTORS}
    disagree = {name: pair for name, pair in disagree.items() if pair[0] != pair[1]}
    with capsys.disabled():
        print(f"\nbundle vectors agreed in the browser: {len(BUNDLE_VECTORS) - len(disagree)} / {len(BUNDLE_VECTORS)}")
    assert disagree == {}


def test_every_package_vector_gets_the_python_verdict_reason_and_entries_in_the_browser(page, capsys):
    """Valid: the same claim, entries, withheld digests and words; invalid: the same class, reason, seq and prefix."""
    disagree = {path.stem: (python_package(path), browser_package(page, path)) for path in PACKAGE_VECTORS}
    disagree = {name: pair for name, pair in disagree.items() if pair[0] != pair[1]}
    with capsys.disabled():
        print(f"\npackage vectors agreed in the browser: {len(PACKAGE_VECTORS) - len(disagree)} / {len(PACKAGE_VECTORS)}")
    assert disagree == {}


def test_every_journal_file_vector_gets_the_python_verdict_torn_tail_and_entries_in_the_browser(page, tmp_path, capsys):
    disagree = {path.stem: (python_journal(path, tmp_path), browser_journal(page, path)) for path in JOURNAL_VECTORS}
    disagree = {name: pair for name, pair in disagree.items() if pair[0] != pair[1]}
    with capsys.disabled():
        print(f"\njournal file vectors agreed in the browser: {len(JOURNAL_VECTORS) - len(disagree)} / {len(JOURNAL_VECTORS)}")
    assert disagree == {}


def test_a_valid_package_is_pinned_to_its_chain_and_producer_in_the_browser(page):
    path = PACKAGES / "valid" / "entry-17-of-20-anchored.cbor"
    claim = doc_of(path)["claim"]
    pinned = call(page, "verifyPackage", [(path.read_bytes(), 0)],
                  {"chainId": claim["bundle"]["chain_id"], "producer": claim["producer"]})
    assert pinned["ok"]
    other = call(page, "verifyPackage", [(path.read_bytes(), 0)], {"chainId": "00" * 32})
    assert (other["error"]["class"], other["error"]["reason"]) == ("PackageError", "chain-id")


def test_options_the_verifier_cannot_apply_are_errors_not_verdicts(page):
    path = BUNDLES / "valid" / "anchored-v4-size3.cbor"
    files = [(path.read_bytes(), 0), ((BUNDLES / "genesis-v4.cbor").read_bytes(), 0)]
    assert call(page, "verify", files, {"requireNetwork": "mainnet"})["error"]["class"] == "PolicyError"
    assert call(page, "verify", files, {"minConfirmations": 0})["error"]["class"] == "PolicyError"
    assert call(page, "verify", files, {"chainId": "abc"})["error"]["class"] == "InputError"
    not_genesis = [files[0], (path.read_bytes(), 0)]
    assert call(page, "verify", not_genesis, {})["error"]["class"] == "InputError"


def choose_files(page: Any, *paths: Path) -> Any:
    """Pick files in the page's file input, as a person would, and wait for the verdict."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    result = page.find_element(By.ID, "result")
    page.execute_script("arguments[0].dataset.state = 'empty'", result)
    page.find_element(By.ID, "files").send_keys("\n".join(str(p) for p in paths))
    WebDriverWait(page, 60).until(lambda d: result.get_attribute("data-state") != "empty")
    return result


def screenshot(page: Any, name: str) -> Path:
    height = page.execute_script("return document.documentElement.scrollHeight")
    page.set_window_size(1280, max(800, height + 40))
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    target = SCREENSHOTS / name
    page.save_screenshot(str(target))
    page.set_window_size(1280, 1000)
    return target


def test_the_page_shows_a_verified_package_with_withheld_entries_and_its_test_network(page, capsys):
    result = choose_files(page, PACKAGES / "valid" / "entry-17-of-20-anchored.cbor")
    assert result.get_attribute("data-state") == "valid"
    text = result.text
    assert "VALID audit package" in text
    assert "TEST NETWORK (regtest): the Bitcoin part proves nothing about time" in text
    assert text.count("WITHHELD") == 17
    assert "started, no recorded outcome among the disclosed entries" in text
    target = screenshot(page, "package-verified.png")
    with capsys.disabled():
        print(f"\nscreenshot of a verified package: {target}")


def test_the_page_shows_which_check_rejected_a_tampered_package(page, capsys):
    result = choose_files(page, PACKAGES / "invalid" / "edited-entry.cbor")
    assert result.get_attribute("data-state") == "invalid"
    assert "INVALID" in result.text
    assert "Failed check: entry 5, reason signature (ChainError)" in result.text
    target = screenshot(page, "package-rejected.png")
    with capsys.disabled():
        print(f"\nscreenshot of a rejected package: {target}")


def test_the_page_verifies_a_bundle_dropped_with_its_genesis_and_says_it_is_pending(page):
    result = choose_files(page, BUNDLES / "valid" / "pending-v4-size3.cbor", BUNDLES / "genesis-v4.cbor")
    assert result.get_attribute("data-state") == "valid"
    assert "VALID pending bundle" in result.text
    assert "PENDING: certified by the validators, not yet anchored in Bitcoin" in result.text


DROP = """
const [names, files] = arguments;
const transfer = new DataTransfer();
files.forEach((text, i) => transfer.items.add(new File([Uint8Array.from(atob(text), (c) => c.charCodeAt(0))], names[i])));
document.getElementById('result').dataset.state = 'empty';
document.body.dispatchEvent(new DragEvent('drop', {dataTransfer: transfer, bubbles: true, cancelable: true}));
"""


def test_a_bundle_and_its_genesis_dropped_anywhere_on_the_page_are_verified(page):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    paths = [BUNDLES / "valid" / "anchored-v7-size2.cbor", BUNDLES / "genesis-v7.cbor"]
    page.execute_script(DROP, [p.name for p in paths], [base64.b64encode(p.read_bytes()).decode() for p in paths])
    result = page.find_element(By.ID, "result")
    WebDriverWait(page, 60).until(lambda d: result.get_attribute("data-state") != "empty")
    assert "VALID (test network: the Bitcoin part proves nothing about time)" in result.text


def test_the_page_verifies_a_journal_file_and_says_it_is_not_anchored(page):
    result = choose_files(page, JOURNALS / "torn-tail.pjl")
    assert result.get_attribute("data-state") == "valid"
    assert "VALID journal file" in result.text
    assert "NOT ANCHORED" in result.text
    assert "WARNING torn tail: 3403 byte(s) at offset 70742" in result.text


def test_the_page_loads_nothing_and_sends_nothing(page):
    page.get(PAGE.as_uri())
    choose_files(page, PACKAGES / "valid" / "entry-17-of-20-anchored.cbor")
    assert page.execute_script("return performance.getEntriesByType('resource').length") == 0
    assert requests_besides_the_page(page) == []


def test_the_request_check_sees_a_page_that_does_reach_out(page, tmp_path):
    """The check above is not vacuous: a page without the CSP that fetches is caught (and blocked)."""
    assert requests_besides_the_page(page) == []
    probe = tmp_path / "probe.html"
    probe.write_text("<!doctype html><script>fetch('http://127.0.0.1:9/probe').catch(() => {});</script>")
    page.get(probe.as_uri())
    time.sleep(0.5)
    seen = requests_besides_the_page(page)
    page.get(PAGE.as_uri())
    assert "http://127.0.0.1:9/probe" in seen
