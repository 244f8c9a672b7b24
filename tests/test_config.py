"""Node config files: defaults, strict keys and types, paths relative to the file."""

import pytest

from node.config import ConfigError, load_config, reference_rows, render_config


def write(tmp_path, text):
    path = tmp_path / "node.toml"
    path.write_text(text)
    return path


def test_empty_file_gives_every_default(tmp_path):
    config = load_config(write(tmp_path, ""))
    assert config.api.roots_per_request_max == 1000
    assert config.bitcoin.enabled is False
    assert config.p2p.peers == {}


def test_given_values_override_defaults(tmp_path):
    config = load_config(
        write(tmp_path, '[api]\nlisten = "127.0.0.1:9000"\n[p2p.peers]\n"1" = "10.0.0.2:7700"\n')
    )
    assert config.api.listen == "127.0.0.1:9000"
    assert config.p2p.peers == {"1": "10.0.0.2:7700"}


def test_relative_paths_resolve_against_the_config_directory(tmp_path):
    config = load_config(write(tmp_path, '[node]\ndata_dir = "store"\n'))
    assert config.resolve(config.node.data_dir) == tmp_path.resolve() / "store"


def test_unknown_key_is_an_error_naming_it(tmp_path):
    with pytest.raises(ConfigError, match="unknown key api.listne"):
        load_config(write(tmp_path, '[api]\nlistne = "x"\n'))


def test_unknown_section_is_an_error_naming_it(tmp_path):
    with pytest.raises(ConfigError, match=r"unknown section \[apii\]"):
        load_config(write(tmp_path, "[apii]\n"))


@pytest.mark.parametrize(
    "text, message",
    [
        ('[api]\nroots_per_request_max = "10"\n', "non-negative integer"),
        ("[api]\nroots_per_request_max = -1\n", "non-negative integer"),
        ("[bitcoin]\nenabled = 1\n", "true or false"),
        ('[bitcoin]\nnetwork = "moonnet"\n', "must be one of"),
        ("[node]\ndata_dir = 5\n", "must be a string"),
        ('[p2p]\npeers = ["a"]\n', "table of strings"),
    ],
)
def test_wrong_types_are_errors_naming_the_key(tmp_path, text, message):
    with pytest.raises(ConfigError, match=message):
        load_config(write(tmp_path, text))


def test_invalid_toml_is_a_clear_error(tmp_path):
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(write(tmp_path, "[api\n"))


def test_missing_file_is_a_clear_error(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "absent.toml")


def test_reference_documents_every_key():
    keys = [key for key, _default, meaning in reference_rows()]
    assert "api.tokens_file" in keys and "bitcoin.fee_rate_max_sat_vb" in keys
    assert all(meaning for _key, _default, meaning in reference_rows())


def test_rendered_config_loads_back_to_the_same_values(tmp_path):
    text = render_config({"api": {"listen": "127.0.0.1:9100"}, "p2p": {"peers": {"2": "h:1"}}})
    config = load_config(write(tmp_path, text))
    assert config.api.listen == "127.0.0.1:9100"
    assert config.p2p.peers == {"2": "h:1"}
