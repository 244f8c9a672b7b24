"""Operator commands through the real CLI entry point: keygen, genesis, token, config."""

import os

import pytest

from node.cli import main
from node.commands import read_genesis


@pytest.fixture
def four_keys(tmp_path, capsys):
    for i in range(4):
        assert main(["keygen", "-o", str(tmp_path / f"v{i}.key")]) == 0
    capsys.readouterr()
    return [tmp_path / f"v{i}.pub" for i in range(4)]


def genesis_args(pubs, out):
    args = ["genesis", "create", "--chain-name", "test", "--created-at-ms", "1", "-o", str(out)]
    for pub in pubs:
        args += ["--validator", str(pub)]
    return args


def test_keygen_writes_a_0600_key_and_a_public_file(four_keys, tmp_path):
    assert os.stat(tmp_path / "v0.key").st_mode & 0o777 == 0o600
    assert len(bytes.fromhex(four_keys[0].read_text().strip())) == 1952


def test_keygen_refuses_to_overwrite(four_keys, tmp_path, capsys):
    assert main(["keygen", "-o", str(tmp_path / "v0.key")]) == 1
    assert "already exists" in capsys.readouterr().err


def test_genesis_from_four_public_keys_names_the_chain_id(four_keys, tmp_path, capsys):
    out = tmp_path / "genesis.cbor"
    assert main(genesis_args(four_keys, out)) == 0
    genesis = read_genesis(out)
    assert genesis.n == 4 and genesis.f == 1
    assert genesis.hash.hex() in capsys.readouterr().out


def test_same_inputs_give_the_same_chain_id(four_keys, tmp_path):
    main(genesis_args(four_keys, tmp_path / "a.cbor"))
    main(genesis_args(four_keys, tmp_path / "b.cbor"))
    assert (tmp_path / "a.cbor").read_bytes() == (tmp_path / "b.cbor").read_bytes()


def test_genesis_with_three_validators_is_refused(four_keys, tmp_path, capsys):
    assert main(genesis_args(four_keys[:3], tmp_path / "g.cbor")) == 1
    assert "3f+1" in capsys.readouterr().err


def test_genesis_show_of_a_damaged_file_is_a_clear_error(four_keys, tmp_path, capsys):
    out = tmp_path / "genesis.cbor"
    main(genesis_args(four_keys, out))
    out.write_bytes(out.read_bytes() + b"\x00")
    assert main(["genesis", "show", str(out)]) == 1
    assert "not a valid genesis" in capsys.readouterr().err


def test_token_add_prints_the_token_once(tmp_path, capsys):
    assert main(["token", "add", "alice", "--tokens-file", str(tmp_path / "t.toml")]) == 0
    token = capsys.readouterr().out.splitlines()[0]
    assert token.startswith("pnt_")
    assert token not in (tmp_path / "t.toml").read_text()


def test_config_reference_lists_every_section(capsys):
    assert main(["config", "reference"]) == 0
    out = capsys.readouterr().out
    for section in ("node.", "p2p.", "api.", "mempool.", "consensus.", "bitcoin."):
        assert section in out


def test_operator_docs_list_every_config_key_as_the_code_defines_it():
    from pathlib import Path

    from node.commands import config_reference_markdown

    docs = (Path(__file__).parent.parent / "docs" / "operator.md").read_text()
    assert config_reference_markdown() in docs, "regenerate with `pantheon config reference --markdown`"
