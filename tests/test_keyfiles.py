"""Validator key files: created 0600, refused when readable by others, checked on load."""

import os

import pytest

from node.keyfiles import KeyFileError, read_key_file, write_key_file
from proof.mldsa import SigningKey


def test_key_file_is_created_with_mode_0600(tmp_path):
    path = tmp_path / "validator.key"
    write_key_file(path, SigningKey.generate())
    assert os.stat(path).st_mode & 0o777 == 0o600


def test_key_file_round_trips_the_key(tmp_path):
    path = tmp_path / "validator.key"
    key = SigningKey.generate()
    write_key_file(path, key)
    loaded = read_key_file(path)
    assert loaded.seed == key.seed and loaded.public_key == key.public_key


@pytest.mark.parametrize("mode", [0o640, 0o604, 0o644, 0o666])
def test_key_file_readable_by_others_is_refused_with_the_fix(tmp_path, mode):
    path = tmp_path / "validator.key"
    write_key_file(path, SigningKey.generate())
    os.chmod(path, mode)
    with pytest.raises(KeyFileError, match="chmod 600"):
        read_key_file(path)


def test_existing_key_file_is_never_overwritten(tmp_path):
    path = tmp_path / "validator.key"
    write_key_file(path, SigningKey.generate())
    before = path.read_bytes()
    with pytest.raises(KeyFileError, match="already exists"):
        write_key_file(path, SigningKey.generate())
    assert path.read_bytes() == before


def test_missing_key_file_names_the_path(tmp_path):
    with pytest.raises(KeyFileError, match="does not exist"):
        read_key_file(tmp_path / "nope.key")


def test_edited_public_key_is_detected(tmp_path):
    path = tmp_path / "validator.key"
    write_key_file(path, SigningKey.generate())
    other = SigningKey.generate().public_key.hex()
    lines = [
        f'public_key = "{other}"' if line.startswith("public_key") else line
        for line in path.read_text().splitlines()
    ]
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(KeyFileError, match="does not match"):
        read_key_file(path)


def test_file_of_another_kind_is_refused(tmp_path):
    path = tmp_path / "other.key"
    path.write_text('kind = "something-else"\nversion = 1\n')
    os.chmod(path, 0o600)
    with pytest.raises(KeyFileError, match="not a version 1 Pantheon key file"):
        read_key_file(path)


def test_garbage_is_refused_with_a_clear_error(tmp_path):
    path = tmp_path / "garbage.key"
    path.write_bytes(b"\xff\xfe not toml")
    os.chmod(path, 0o600)
    with pytest.raises(KeyFileError, match="not a Pantheon key file"):
        read_key_file(path)
