"""Finding or installing bitcoind: idempotent, quick the second time, safe to run twice at once."""

import fcntl
import json
import subprocess
import sys
import threading
import time

import pytest

from devnet import bitcoind
from devnet.bitcoind import (
    BitcoindInstallError,
    BitcoindPaths,
    cached_install,
    debian_mirror,
    find_or_install,
    install_into,
)

pytestmark = pytest.mark.bitcoind

SECOND_CALL_S_MAX = 1.0


def test_second_find_or_install_is_fast_and_gives_the_same_paths(bitcoind_install):  # noqa: F811
    started = time.monotonic()
    again = find_or_install()
    assert time.monotonic() - started < SECOND_CALL_S_MAX
    assert again == bitcoind_install.paths


def test_found_binaries_run_and_report_their_version(bitcoind_paths):  # noqa: F811
    for binary in (bitcoind_paths.bitcoind, bitcoind_paths.bitcoin_cli):
        done = subprocess.run([binary, "-version"], capture_output=True, text=True, timeout=30, check=True)
        assert "version v" in done.stdout.splitlines()[0]


def test_environment_variable_names_the_bitcoind_to_use(bitcoind_paths, monkeypatch):  # noqa: F811
    monkeypatch.setenv(bitcoind.ENV_BITCOIND, str(bitcoind_paths.bitcoind))
    assert find_or_install() == BitcoindPaths(
        bitcoind_paths.bitcoind, bitcoind_paths.bitcoind.with_name("bitcoin-cli")
    )


def test_environment_variable_naming_a_missing_file_is_an_install_error(tmp_path, monkeypatch):
    monkeypatch.setenv(bitcoind.ENV_BITCOIND, str(tmp_path / "bitcoind"))
    with pytest.raises(BitcoindInstallError, match=r"step 'use \$PANTHEON_BITCOIND'.*not an executable"):
        find_or_install()


def write_fake_install(cache, version):
    (cache / "bin").mkdir()
    for name in ("bitcoind", "bitcoin-cli"):
        (cache / "bin" / name).write_text("#!/bin/sh\n")
        (cache / "bin" / name).chmod(0o755)
    marker = {"format": bitcoind.INSTALL_FORMAT, "version": version}
    (cache / bitcoind.MARKER_NAME).write_text(json.dumps(marker))


def test_install_waits_for_a_concurrent_install_and_uses_its_result(tmp_path):
    results = []
    with open(tmp_path / ".lock", "a+") as lock_file:
        fcntl.flock(lock_file, fcntl.LOCK_EX)
        waiter = threading.Thread(target=lambda: results.append(install_into(tmp_path)))
        waiter.start()
        waiter.join(timeout=0.5)
        assert waiter.is_alive(), "install_into did not wait for the lock held by another install"
        write_fake_install(tmp_path, "fake 1.0")
        fcntl.flock(lock_file, fcntl.LOCK_UN)
    waiter.join(timeout=10)
    assert results == [BitcoindPaths(tmp_path / "bin" / "bitcoind", tmp_path / "bin" / "bitcoin-cli")]
    assert bitcoind.installed_version(tmp_path) == "fake 1.0"
    assert not (tmp_path / "prefix").exists()


def test_complete_install_is_found_from_its_marker(tmp_path):
    write_fake_install(tmp_path, "fake 1.0")
    assert cached_install(tmp_path) == BitcoindPaths(tmp_path / "bin" / "bitcoind", tmp_path / "bin" / "bitcoin-cli")


def test_marker_of_an_older_install_format_is_not_trusted(tmp_path):
    write_fake_install(tmp_path, "old")
    marker = json.loads((tmp_path / bitcoind.MARKER_NAME).read_text())
    marker["format"] = bitcoind.INSTALL_FORMAT - 1
    (tmp_path / bitcoind.MARKER_NAME).write_text(json.dumps(marker))
    assert cached_install(tmp_path) is None


def test_marker_without_the_wrappers_is_not_trusted(tmp_path):
    write_fake_install(tmp_path, "fake 1.0")
    (tmp_path / "bin" / "bitcoin-cli").unlink()
    assert cached_install(tmp_path) is None


DEB822 = """\
Types: deb
URIs: http://security.example/debian-security
Suites: bookworm-security
Components: main
Signed-By: /usr/share/keyrings/a.gpg

Types: deb
# a comment line
URIs: http://mirror.example/debian
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
"""


def test_mirror_is_read_from_deb822_sources_skipping_security(tmp_path):
    (tmp_path / "debian.sources").write_text(DEB822)
    assert debian_mirror(sources_dir=tmp_path, sources_list=tmp_path / "missing") == (
        "http://mirror.example/debian",
        "/usr/share/keyrings/debian-archive-keyring.gpg",
    )


def test_mirror_is_read_from_a_one_line_sources_list(tmp_path):
    sources_list = tmp_path / "sources.list"
    sources_list.write_text(
        "# comment\n"
        "deb http://security.example/debian-security bookworm-security main\n"
        "deb [arch=amd64 signed-by=/k.gpg] http://mirror.example/debian bookworm main\n"
    )
    assert debian_mirror(sources_dir=tmp_path / "none", sources_list=sources_list) == (
        "http://mirror.example/debian",
        "/k.gpg",
    )


def test_no_debian_mirror_is_an_install_error_naming_the_step(tmp_path):
    with pytest.raises(BitcoindInstallError, match="step 'find mirror'.*PANTHEON_BITCOIND"):
        debian_mirror(sources_dir=tmp_path, sources_list=tmp_path / "sources.list")


def test_module_entry_point_prints_both_paths(bitcoind_paths):  # noqa: F811
    done = subprocess.run(
        [sys.executable, "-m", "devnet.bitcoind"], capture_output=True, text=True, timeout=60, check=True
    )
    assert done.stdout.splitlines() == [
        f"bitcoind: {bitcoind_paths.bitcoind}",
        f"bitcoin-cli: {bitcoind_paths.bitcoin_cli}",
    ]
