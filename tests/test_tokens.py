"""API tokens: shown once, stored hashed in a 0600 file, matched by hash."""

import os

import pytest

from node.tokens import TokenError, add_token, load_tokens, token_hash


def test_added_token_authenticates_its_submitter(tmp_path):
    path = tmp_path / "tokens.toml"
    token = add_token(path, "producer-a")
    assert load_tokens(path).submitter(token) == "producer-a"


def test_tokens_file_holds_only_the_hash(tmp_path):
    path = tmp_path / "tokens.toml"
    token = add_token(path, "producer-a")
    content = path.read_text()
    assert token not in content
    assert token_hash(token) in content


def test_tokens_file_is_mode_0600(tmp_path):
    path = tmp_path / "tokens.toml"
    add_token(path, "producer-a")
    add_token(path, "producer-b")
    assert os.stat(path).st_mode & 0o777 == 0o600


def test_unknown_token_is_not_a_submitter(tmp_path):
    path = tmp_path / "tokens.toml"
    add_token(path, "producer-a")
    assert load_tokens(path).submitter("pnt_not-a-real-token") is None


def test_two_submitters_each_keep_their_own_token(tmp_path):
    path = tmp_path / "tokens.toml"
    first = add_token(path, "producer-a")
    second = add_token(path, "producer-b")
    table = load_tokens(path)
    assert table.submitter(first) == "producer-a"
    assert table.submitter(second) == "producer-b"


def test_second_token_for_one_name_is_refused(tmp_path):
    path = tmp_path / "tokens.toml"
    add_token(path, "producer-a")
    with pytest.raises(TokenError, match="already has a token"):
        add_token(path, "producer-a")


def test_world_readable_tokens_file_is_refused(tmp_path):
    path = tmp_path / "tokens.toml"
    add_token(path, "producer-a")
    os.chmod(path, 0o644)
    with pytest.raises(TokenError, match="chmod 600"):
        load_tokens(path)


@pytest.mark.parametrize("name", ["", "-leading-dash", "has space", "x" * 65, "ünï"])
def test_bad_submitter_names_are_refused(tmp_path, name):
    with pytest.raises(TokenError, match="submitter name"):
        add_token(tmp_path / "tokens.toml", name)


def test_malformed_hash_line_names_the_submitter(tmp_path):
    path = tmp_path / "tokens.toml"
    path.write_text('[[token]]\nname = "producer-a"\nsha256 = "abc"\n')
    os.chmod(path, 0o600)
    with pytest.raises(TokenError, match="producer-a"):
        load_tokens(path)
