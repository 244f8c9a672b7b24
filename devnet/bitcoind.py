"""Find a bitcoind, or install Bitcoin Knots from Debian unstable into the user's cache;
run throwaway regtest nodes.

Search order: ``$PANTHEON_BITCOIND`` (the bitcoind binary; bitcoin-cli beside it),
then ``bitcoind``/``bitcoin-cli`` on PATH, then a previous install in the cache, then
a fresh install. The install never touches the system: Debian's sid archive ships
bitcoin-knots (same RPC and regtest as Bitcoin Core) built against a newer glibc than
the host's, so the packages are fetched with a private apt state, unpacked with
``dpkg -x`` into a prefix, and run through the prefix's own dynamic loader (see
shared/notes/bitcoind.md). The mirror comes from the machine's own apt sources.

``python -m devnet.bitcoind`` prints the two paths, installing first if needed.
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import BinaryIO

from anchor.tx import PARASITE_LOCK_TIME
from anchor.rpc import BitcoindAuthError, BitcoindRPC, BitcoindRPCError, BitcoindUnavailable, is_warming_up
from devnet.ports import free_ports
from proof.errors import PantheonError

ENV_BITCOIND = "PANTHEON_BITCOIND"
ENV_CACHE_DIR = "PANTHEON_BITCOIND_CACHE"
MARKER_NAME = "installed.json"
# A fresh regtest chain is mined to at least this height before anything is anchored: the
# wallet's fee bumps then never pick the lock time Knots refuses (anti-fee-sniping stays
# within 99 blocks of the tip; see anchor.tx.PARASITE_LOCK_TIME).
ANCHOR_TIP_HEIGHT_MIN = PARASITE_LOCK_TIME + 100
# Bumped when the install layout or package list changes, so old installs are redone.
INSTALL_FORMAT = 1

KNOTS_PACKAGES = (
    "bitcoin-knots",
    "libc6",
    "libstdc++6",
    "libgcc-s1",
    "libzmq5",
    "libsodium26",
    "libpgm-5.3-0t64",
    "libnorm1t64",
    "libbsd0",
    "libmd0",
    "libevent-core-2.1-7t64",
    "libevent-extra-2.1-7t64",
    "libevent-pthreads-2.1-7t64",
    "libsqlite3-0",
    "libgssapi-krb5-2",
    "libkrb5-3",
    "libk5crypto3",
    "libcom-err2",
    "libkrb5support0",
    "libkeyutils1",
)
# Debian architecture -> (multiarch library dir, dynamic loader name).
ARCHITECTURES = {
    "amd64": ("x86_64-linux-gnu", "ld-linux-x86-64.so.2"),
    "arm64": ("aarch64-linux-gnu", "ld-linux-aarch64.so.1"),
}
APT_SOURCES_DIR = Path("/etc/apt/sources.list.d")
APT_SOURCES_LIST = Path("/etc/apt/sources.list")

APT_UPDATE_TIMEOUT_S = 300.0
APT_DOWNLOAD_TIMEOUT_S = 600.0
UNPACK_TIMEOUT_S = 120.0
VERSION_TIMEOUT_S = 30.0
INSTALL_LOCK_TIMEOUT_S = 900.0
LOCK_POLL_S = 0.2
STDERR_TAIL_CHARS = 2000

RPC_READY_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 30.0
KILL_TIMEOUT_S = 10.0
READY_POLL_S = 0.05
RPC_PROBE_TIMEOUT_S = 5.0


class BitcoindInstallError(PantheonError):
    """bitcoind could not be found or installed; the message names the failing step."""


def wait_rpc_ready(
    probe: BitcoindRPC, process: subprocess.Popen[bytes] | None, stderr_log: Path, *, timeout_s: float
) -> None:
    """Wait until bitcoind answers RPC; BitcoindStartError if it exits or the deadline passes."""
    deadline = time.monotonic() + timeout_s
    last_error = "no answer yet"
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            try:
                tail = stderr_log.read_text(errors="replace")[-STDERR_TAIL_CHARS:].strip()
            except OSError:
                tail = ""
            raise BitcoindStartError(
                f"bitcoind exited with {process.returncode} during startup: {tail or '(nothing on stderr)'}"
            )
        try:
            probe.call("getblockchaininfo")
            return
        except (BitcoindUnavailable, BitcoindAuthError) as exc:
            # A crashed earlier run in a reused datadir can leave a stale cookie
            # until bitcoind writes its new one.
            last_error = str(exc)
        except BitcoindRPCError as exc:
            if not is_warming_up(exc):
                raise
            last_error = str(exc)
        time.sleep(READY_POLL_S)
    raise BitcoindStartError(
        f"bitcoind RPC on 127.0.0.1:{probe.port} not ready within {timeout_s:g} s: {last_error}"
    )


class BitcoindStartError(PantheonError):
    """A regtest bitcoind did not start or did not become ready."""


@dataclass(frozen=True)
class BitcoindPaths:
    bitcoind: Path
    bitcoin_cli: Path


def default_cache_dir() -> Path:
    override = os.environ.get(ENV_CACHE_DIR)
    if override:
        return Path(override)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "pantheon" / "bitcoind"


def find_or_install(*, cache_dir: Path | None = None) -> BitcoindPaths:
    """Paths of a working bitcoind and bitcoin-cli, installing Knots if none is found."""
    found = _from_environment() or _from_path()
    if found is not None:
        return found
    return install_into(cache_dir if cache_dir is not None else default_cache_dir())


def install_into(cache: Path) -> BitcoindPaths:
    """The Knots install in ``cache``, made first if it is missing or incomplete.

    Concurrent callers (two test runs, a test run and the devnet) serialize on a
    lock file; the ones that waited find the marker and return at once.
    """
    installed = cached_install(cache)
    if installed is not None:
        return installed
    try:
        cache.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise BitcoindInstallError(f"step 'create cache dir': cannot create {cache}: {exc.strerror}") from exc
    with _install_lock(cache):
        installed = cached_install(cache)
        if installed is not None:
            return installed
        return _install(cache)


def _from_environment() -> BitcoindPaths | None:
    value = os.environ.get(ENV_BITCOIND)
    if not value:
        return None
    bitcoind = Path(value)
    bitcoin_cli = bitcoind.with_name("bitcoin-cli")
    for path in (bitcoind, bitcoin_cli):
        if not (path.is_file() and os.access(path, os.X_OK)):
            raise BitcoindInstallError(
                f"step 'use ${ENV_BITCOIND}': {path} is not an executable file "
                f"(${ENV_BITCOIND} must name bitcoind, with bitcoin-cli in the same directory)"
            )
    return BitcoindPaths(bitcoind, bitcoin_cli)


def _from_path() -> BitcoindPaths | None:
    bitcoind = shutil.which("bitcoind")
    bitcoin_cli = shutil.which("bitcoin-cli")
    if bitcoind is None or bitcoin_cli is None:
        return None
    return BitcoindPaths(Path(bitcoind), Path(bitcoin_cli))


def cached_install(cache: Path) -> BitcoindPaths | None:
    """The cached install, if its marker says it completed with this install format."""
    try:
        marker = json.loads((cache / MARKER_NAME).read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(marker, dict) or marker.get("format") != INSTALL_FORMAT:
        return None
    paths = BitcoindPaths(cache / "bin" / "bitcoind", cache / "bin" / "bitcoin-cli")
    if all(path.is_file() and os.access(path, os.X_OK) for path in (paths.bitcoind, paths.bitcoin_cli)):
        return paths
    return None


def installed_version(cache_dir: Path | None = None) -> str | None:
    """The version string recorded by the cached install, if there is one."""
    cache = cache_dir if cache_dir is not None else default_cache_dir()
    try:
        marker = json.loads((cache / MARKER_NAME).read_text())
    except (OSError, ValueError):
        return None
    return marker.get("version") if isinstance(marker, dict) else None


@contextmanager
def _install_lock(cache: Path) -> Iterator[None]:
    """An exclusive lock on the cache, so concurrent installs wait for the first one."""
    deadline = time.monotonic() + INSTALL_LOCK_TIMEOUT_S
    with open(cache / ".lock", "a+") as lock_file:
        while True:
            try:
                fcntl.flock(lock_file, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise BitcoindInstallError(
                        f"step 'lock': another install held {cache / '.lock'} for more than "
                        f"{INSTALL_LOCK_TIMEOUT_S:g} s"
                    ) from None
                time.sleep(LOCK_POLL_S)
        try:
            yield
        finally:
            fcntl.flock(lock_file, fcntl.LOCK_UN)


def _run(step: str, argv: Sequence[str], timeout_s: float, cwd: Path | None = None) -> str:
    try:
        done = subprocess.run(
            list(argv), cwd=cwd, capture_output=True, text=True, timeout=timeout_s, check=False
        )
    except FileNotFoundError as exc:
        raise BitcoindInstallError(f"step '{step}': {argv[0]} is not installed") from exc
    except subprocess.TimeoutExpired as exc:
        raise BitcoindInstallError(f"step '{step}': {shlex.join(argv)} took more than {timeout_s:g} s") from exc
    if done.returncode != 0:
        raise BitcoindInstallError(
            f"step '{step}': {shlex.join(argv)} exited with {done.returncode}: "
            f"{(done.stderr or done.stdout)[-STDERR_TAIL_CHARS:].strip()}"
        )
    return done.stdout


def debian_mirror(
    *, sources_dir: Path = APT_SOURCES_DIR, sources_list: Path = APT_SOURCES_LIST
) -> tuple[str, str | None]:
    """(mirror URI, signed-by keyring or None) of the machine's main Debian archive:
    the first deb source with a plain suite (not -security, -updates, -backports)."""
    preferred = sources_dir / "debian.sources"
    candidates = [preferred] + sorted(p for p in sources_dir.glob("*.sources") if p != preferred)
    for path in candidates:
        try:
            text = path.read_text()
        except OSError:
            continue
        for stanza in re.split(r"\n\s*\n", text):
            fields = _deb822_fields(stanza)
            suites = fields.get("suites", "").split()
            if "deb" not in fields.get("types", "").split() or not fields.get("uris"):
                continue
            if not any("-" not in suite and "/" not in suite for suite in suites):
                continue
            return fields["uris"].split()[0], fields.get("signed-by") or None
    try:
        lines = sources_list.read_text().splitlines()
    except OSError:
        lines = []
    for line in lines:
        words = line.split("#", 1)[0].split()
        if not words or words[0] != "deb":
            continue
        options = ""
        if len(words) > 1 and words[1].startswith("["):
            end = next((i for i, w in enumerate(words) if w.endswith("]")), None)
            if end is None:
                continue
            options = " ".join(words[1 : end + 1])
            words = [words[0]] + words[end + 1 :]
        if len(words) >= 3 and "-" not in words[2]:
            signed_by = re.search(r"signed-by=(\S+?)\]?(?:\s|$)", options)
            return words[1], signed_by.group(1) if signed_by else None
    raise BitcoindInstallError(
        f"step 'find mirror': no Debian archive in {sources_dir}/*.sources or {sources_list}; "
        f"install bitcoind yourself and set ${ENV_BITCOIND}"
    )


def _deb822_fields(stanza: str) -> dict[str, str]:
    fields: dict[str, str] = {}
    for line in stanza.splitlines():
        if line.startswith("#") or ":" not in line or line[:1].isspace():
            continue
        key, value = line.split(":", 1)
        fields[key.strip().lower()] = value.strip()
    return fields


def _architecture() -> tuple[str, str, str]:
    arch = _run("detect architecture", ["dpkg", "--print-architecture"], VERSION_TIMEOUT_S).strip()
    if arch not in ARCHITECTURES:
        raise BitcoindInstallError(
            f"step 'detect architecture': no recipe for {arch!r} (known: {', '.join(ARCHITECTURES)}); "
            f"install bitcoind yourself and set ${ENV_BITCOIND}"
        )
    return (arch, *ARCHITECTURES[arch])


def _install(cache: Path) -> BitcoindPaths:
    arch, multiarch, loader_name = _architecture()
    mirror, keyring = debian_mirror()
    apt_dir = cache / "apt"
    debs = cache / "debs"
    prefix = cache / "prefix"
    bin_dir = cache / "bin"
    for path in (debs, prefix, bin_dir):
        shutil.rmtree(path, ignore_errors=True)
    for path in (apt_dir / "lists" / "partial", apt_dir / "cache" / "archives" / "partial", debs, prefix, bin_dir):
        path.mkdir(parents=True, exist_ok=True)
    sources = apt_dir / "sources.list"
    signed_by = f"[signed-by={keyring}] " if keyring else ""
    sources.write_text(f"deb {signed_by}{mirror} sid main\n")
    apt_options = [
        "-o", f"Dir::Etc::SourceList={sources}",
        "-o", "Dir::Etc::SourceParts=/dev/null",
        "-o", "Dir::Etc::Preferences=/dev/null",
        "-o", "Dir::Etc::PreferencesParts=/dev/null",
        "-o", f"Dir::State::Lists={apt_dir / 'lists'}",
        "-o", f"Dir::Cache={apt_dir / 'cache'}",
        "-o", f"APT::Architecture={arch}",
    ]  # fmt: skip
    if os.geteuid() == 0:
        # apt would download as _apt, which cannot write into root's home.
        apt_options += ["-o", "APT::Sandbox::User=root"]
    _run("apt-get update (sid index)", ["apt-get", *apt_options, "update"], APT_UPDATE_TIMEOUT_S)
    _run(
        "apt-get download",
        ["apt-get", *apt_options, "download", *KNOTS_PACKAGES],
        APT_DOWNLOAD_TIMEOUT_S,
        cwd=debs,
    )
    for deb in sorted(debs.glob("*.deb")):
        _run(f"unpack {deb.name}", ["dpkg", "-x", str(deb), str(prefix)], UNPACK_TIMEOUT_S)
    lib_dir = prefix / "usr" / "lib" / multiarch
    loader = lib_dir / loader_name
    for name in ("bitcoind", "bitcoin-cli"):
        binary = prefix / "usr" / "bin" / name
        if not binary.is_file():
            raise BitcoindInstallError(f"step 'unpack': {binary} is missing after unpacking bitcoin-knots")
        listing = _run(
            f"check libraries of {name}",
            [str(loader), "--library-path", str(lib_dir), "--list", str(binary)],
            VERSION_TIMEOUT_S,
        )
        missing = [line.split()[0] for line in listing.splitlines() if "not found" in line]
        if missing:
            raise BitcoindInstallError(
                f"step 'check libraries of {name}': {', '.join(missing)} not found in the prefix; "
                "sid renamed a library package: add the package that ships it to KNOTS_PACKAGES"
            )
        wrapper = bin_dir / name
        wrapper.write_text(
            "#!/bin/sh\n"
            f"exec {shlex.quote(str(loader))} --library-path {shlex.quote(str(lib_dir))} "
            f'{shlex.quote(str(binary))} "$@"\n'
        )
        wrapper.chmod(0o755)
    paths = BitcoindPaths(bin_dir / "bitcoind", bin_dir / "bitcoin-cli")
    version = _run("bitcoind -version", [str(paths.bitcoind), "-version"], VERSION_TIMEOUT_S).splitlines()
    if not version or "version" not in version[0]:
        raise BitcoindInstallError(f"step 'bitcoind -version': unexpected output {version[:1]!r}")
    # The sid index (tens of MB) and the .debs are only needed again for a reinstall.
    shutil.rmtree(debs, ignore_errors=True)
    shutil.rmtree(apt_dir, ignore_errors=True)
    marker = {"format": INSTALL_FORMAT, "version": version[0], "mirror": mirror}
    temporary = cache / (MARKER_NAME + ".tmp")
    temporary.write_text(json.dumps(marker, indent=2) + "\n")
    temporary.replace(cache / MARKER_NAME)
    return paths


class RegtestNode:
    """A regtest bitcoind on a fresh datadir and free loopback ports.

    Use as a context manager; ``stop()`` asks bitcoind to stop over RPC, waits for the
    process, and kills it only if it outlives ``STOP_TIMEOUT_S``. A datadir created
    here is removed on stop; one passed in is left for inspection.
    """

    def __init__(
        self,
        paths: BitcoindPaths,
        *,
        datadir: Path | None = None,
        extra_args: Sequence[str] = (),
        rpc_timeout_s: float = 30.0,
    ) -> None:
        self.paths = paths
        self._owns_datadir = datadir is None
        self.datadir = Path(tempfile.mkdtemp(prefix="pantheon-regtest-")) if datadir is None else datadir
        self.extra_args = tuple(extra_args)
        self.rpc_timeout_s = rpc_timeout_s
        self.rpc_port = 0
        self.p2p_port = 0
        self._process: subprocess.Popen[bytes] | None = None
        self._stderr: BinaryIO | None = None

    @property
    def cookie_path(self) -> Path:
        return self.datadir / "regtest" / ".cookie"

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def rpc(self, wallet: str | None = None) -> BitcoindRPC:
        return BitcoindRPC(self.rpc_port, cookie_path=self.cookie_path, wallet=wallet, timeout_s=self.rpc_timeout_s)

    def start(self, *, ready_timeout_s: float = RPC_READY_TIMEOUT_S) -> None:
        if self._process is not None:
            raise BitcoindStartError("this regtest node was already started")
        self.datadir.mkdir(parents=True, exist_ok=True)
        self.rpc_port, self.p2p_port = free_ports(2)
        argv = [
            str(self.paths.bitcoind),
            "-regtest",
            f"-datadir={self.datadir}",
            "-server=1",
            f"-rpcport={self.rpc_port}",
            "-rpcbind=127.0.0.1",
            "-rpcallowip=127.0.0.1",
            f"-port={self.p2p_port}",
            f"-bind=127.0.0.1:{self.p2p_port}",
            "-listenonion=0",
            "-dnsseed=0",
            "-fixedseeds=0",
            "-discover=0",
            "-fallbackfee=0.0002",
            "-addresstype=bech32",
            "-printtoconsole=0",
            *self.extra_args,
        ]
        self._stderr = open(self.datadir / "stderr.log", "wb")  # noqa: SIM115 (closed in stop)
        self._process = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=self._stderr)
        try:
            self._wait_ready(ready_timeout_s)
        except BaseException:
            self.stop()
            raise

    def _wait_ready(self, timeout_s: float) -> None:
        assert self._process is not None
        probe = BitcoindRPC(self.rpc_port, cookie_path=self.cookie_path, timeout_s=RPC_PROBE_TIMEOUT_S)
        wait_rpc_ready(probe, self._process, self.datadir / "stderr.log", timeout_s=timeout_s)

    def _stderr_tail(self) -> str:
        try:
            return (self.datadir / "stderr.log").read_text(errors="replace")[-STDERR_TAIL_CHARS:].strip()
        except OSError:
            return ""

    def stop(self) -> None:
        process = self._process
        if process is not None:
            if process.poll() is None:
                try:
                    self.rpc().call("stop", timeout_s=RPC_PROBE_TIMEOUT_S)
                except (BitcoindUnavailable, BitcoindAuthError, BitcoindRPCError):
                    process.terminate()
                try:
                    process.wait(timeout=STOP_TIMEOUT_S)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait(timeout=KILL_TIMEOUT_S)
            self._process = None
        if self._stderr is not None:
            self._stderr.close()
            self._stderr = None
        if self._owns_datadir:
            shutil.rmtree(self.datadir, ignore_errors=True)

    def create_wallet(self, name: str) -> BitcoindRPC:
        self.rpc().call("createwallet", name)
        return self.rpc(wallet=name)

    def __enter__(self) -> RegtestNode:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def main() -> int:
    try:
        paths = find_or_install()
    except BitcoindInstallError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"bitcoind: {paths.bitcoind}")
    print(f"bitcoin-cli: {paths.bitcoin_cli}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
