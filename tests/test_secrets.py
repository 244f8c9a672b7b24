"""Issue 14, finding 8: secrets on disk and on the command line.

Secret files are opened first and checked on the descriptor (no stat-then-open race),
never through a symlink, and only when owned by the user running the node. A bitcoind
RPC password in node.toml requires node.toml to be a secret file too (or the password
moves to ``bitcoin.rpc_password_file``); no error repeats a password, and
``pantheon verify --bitcoind`` takes credentials from a cookie file or the environment
and never echoes a URL that carries them.
"""

import os

import pytest

from node.config import ConfigError, load_config
from node.keyfiles import KeyFileError, read_secret_file, write_secret_file
from tests.cli_helpers import run
from tests.test_verify_cli import ANCHORED, CLAIM, GENESIS4, bitcoind  # noqa: F401  (bitcoind is a fixture)

PASSWORD = "hunter2-correct-horse"


def secret(tmp_path, name="secret", content=b"s3cret\n"):
    path = tmp_path / name
    write_secret_file(path, content)
    return path


# ---------------------------------------------------------------------------- read_secret_file


def test_a_symlink_to_a_0600_secret_file_is_refused(tmp_path):
    target = secret(tmp_path)
    link = tmp_path / "link"
    link.symlink_to(target)
    with pytest.raises(KeyFileError, match="symbolic link"):
        read_secret_file(link)


def test_a_secret_file_owned_by_another_user_is_refused(tmp_path, monkeypatch):
    path = secret(tmp_path)
    monkeypatch.setattr(os, "geteuid", lambda: os.stat(path).st_uid + 1)
    with pytest.raises(KeyFileError, match="owned by uid"):
        read_secret_file(path)


def test_the_checks_are_made_on_the_open_descriptor_not_the_path(tmp_path, monkeypatch):
    """A file swapped between a path check and the open cannot pass: there is no path check."""
    path = secret(tmp_path)
    looked_at = []
    real_stat, real_lstat = os.stat, os.lstat

    def recording(real):
        def stat(target, *args, **kwargs):
            looked_at.append(os.fspath(target) if not isinstance(target, int) else target)
            return real(target, *args, **kwargs)
        return stat

    monkeypatch.setattr(os, "stat", recording(real_stat))
    monkeypatch.setattr(os, "lstat", recording(real_lstat))
    content = read_secret_file(path)
    monkeypatch.undo()
    assert content == b"s3cret\n"
    assert str(path) not in looked_at, "read_secret_file checked the path, not the descriptor it read"


def test_a_fifo_is_refused_without_blocking(tmp_path):
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo, 0o600)
    with pytest.raises(KeyFileError, match="not a regular file"):
        read_secret_file(fifo)


def test_a_loose_secret_file_is_still_refused_with_the_fix(tmp_path):
    path = secret(tmp_path)
    os.chmod(path, 0o640)
    with pytest.raises(KeyFileError, match="chmod 600"):
        read_secret_file(path)


# ---------------------------------------------------------------------------- node.toml


def config_file(tmp_path, text, mode):
    path = tmp_path / "node.toml"
    path.write_text(text)
    os.chmod(path, mode)
    return path


def test_rpc_password_in_a_world_readable_config_is_refused(tmp_path):
    path = config_file(tmp_path, f'[bitcoin]\nrpc_user = "u"\nrpc_password = "{PASSWORD}"\n', 0o644)
    with pytest.raises(ConfigError, match="rpc_password_file|chmod 600") as caught:
        load_config(path)
    assert PASSWORD not in str(caught.value)


def test_rpc_password_in_a_0600_config_is_accepted(tmp_path):
    path = config_file(tmp_path, f'[bitcoin]\nrpc_user = "u"\nrpc_password = "{PASSWORD}"\n', 0o600)
    assert load_config(path).bitcoin.rpc_password == PASSWORD


def test_a_world_readable_config_without_a_password_is_fine(tmp_path):
    path = config_file(tmp_path, '[api]\nlisten = "127.0.0.1:9000"\n', 0o644)
    assert load_config(path).api.listen == "127.0.0.1:9000"


def test_rpc_password_file_supplies_the_password(tmp_path):
    secret(tmp_path, "rpc.password", f"{PASSWORD}\n".encode())
    path = config_file(tmp_path, '[bitcoin]\nrpc_user = "u"\nrpc_password_file = "rpc.password"\n', 0o644)
    assert load_config(path).bitcoin.rpc_password == PASSWORD


def test_a_loose_rpc_password_file_is_refused(tmp_path):
    password_file = secret(tmp_path, "rpc.password", PASSWORD.encode())
    os.chmod(password_file, 0o644)
    path = config_file(tmp_path, '[bitcoin]\nrpc_user = "u"\nrpc_password_file = "rpc.password"\n', 0o600)
    with pytest.raises(ConfigError, match="chmod 600") as caught:
        load_config(path)
    assert PASSWORD not in str(caught.value)


def test_password_and_password_file_together_are_refused(tmp_path):
    secret(tmp_path, "rpc.password", PASSWORD.encode())
    path = config_file(
        tmp_path, '[bitcoin]\nrpc_password = "x"\nrpc_password_file = "rpc.password"\n', 0o600
    )
    with pytest.raises(ConfigError, match="not both"):
        load_config(path)


@pytest.mark.parametrize("value", ["12345678901234", "[\"hunter2-correct-horse\"]", "{ p = \"hunter2-correct-horse\" }"])
def test_a_wrong_typed_password_is_not_echoed(tmp_path, value):
    path = config_file(tmp_path, f"[bitcoin]\nrpc_password = {value}\n", 0o600)
    with pytest.raises(ConfigError, match="rpc_password must be a string") as caught:
        load_config(path)
    assert "12345678901234" not in str(caught.value) and PASSWORD not in str(caught.value)


def test_userinfo_in_rpc_url_is_refused_without_echoing_it(tmp_path):
    path = config_file(tmp_path, f'[bitcoin]\nrpc_url = "http://alice:{PASSWORD}@10.0.0.5:8332"\n', 0o600)
    with pytest.raises(ConfigError, match="rpc_user") as caught:
        load_config(path)
    assert PASSWORD not in str(caught.value) and "alice" not in str(caught.value)


# ---------------------------------------------------------------------------- pantheon verify --bitcoind


@pytest.mark.parametrize(
    "url",
    [
        f"http://alice:{PASSWORD}@[::1:8332",
        f"http://alice:{PASSWORD}@127.0.0.1:notaport",
        f"https://alice:{PASSWORD}@127.0.0.1:8332",
        f"http://alice:{PASSWORD}@127.0.0.1",
    ],
)
def test_a_malformed_bitcoind_url_is_not_echoed_with_its_password(capsys, url):
    code, out = run(["verify", ANCHORED, "--genesis", GENESIS4, "--bitcoind", url], capsys)
    assert code == 1 and "--bitcoind" in out
    assert PASSWORD not in out + capsys.readouterr().err


def test_bitcoind_password_from_the_environment(capsys, bitcoind, monkeypatch):  # noqa: F811
    fake = bitcoind(blocks={CLAIM["bitcoin"]["block_hash"]: {"height": 812, "confirmations": 40}},
                    secret=f"alice:{PASSWORD}")
    monkeypatch.setenv("PANTHEON_BITCOIND_PASSWORD", PASSWORD)
    code, out = run(["verify", ANCHORED, "--genesis", GENESIS4, "--bitcoind", f"http://alice@127.0.0.1:{fake.port}"],
                    capsys)
    assert code == 0, out


def test_bitcoind_user_and_password_from_the_environment(capsys, bitcoind, monkeypatch):  # noqa: F811
    fake = bitcoind(blocks={CLAIM["bitcoin"]["block_hash"]: {"height": 812, "confirmations": 40}},
                    secret=f"alice:{PASSWORD}")
    monkeypatch.setenv("PANTHEON_BITCOIND_USER", "alice")
    monkeypatch.setenv("PANTHEON_BITCOIND_PASSWORD", PASSWORD)
    code, out = run(["verify", ANCHORED, "--genesis", GENESIS4, "--bitcoind", f"127.0.0.1:{fake.port}"], capsys)
    assert code == 0, out
