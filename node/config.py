"""The node's TOML configuration: one dataclass per section, strict loading, documented keys.

Every key has a default, a type and a one-line meaning in the dataclass field's
metadata; ``pantheon config reference`` prints the table from them, so the operator
docs cannot drift from the code. Loading is strict: an unknown section or key, or a
value of the wrong type, is an error naming the file, the key and what was expected
(a typo in a config file must not silently fall back to a default).

Relative paths are resolved against the directory of the config file.

Secrets: a key marked ``secret`` is never repeated in an error. A config file that holds
``bitcoin.rpc_password`` must be a secret file itself (mode 0600, owned by the node's
user), the same rule as key and token files; ``bitcoin.rpc_password_file`` names such a
file instead, so node.toml can stay world-readable.
"""

from __future__ import annotations

import dataclasses
import os
import tomllib
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from node.keyfiles import KeyFileError, check_secret_stat, read_secret_file
from proof.errors import PantheonError

CONFIG_FILE_BYTES_MAX = 1024 * 1024


class ConfigError(PantheonError):
    """A configuration file or value that cannot be used; the message names the key."""


def _key(default: Any, meaning: str, **extra: Any) -> Any:
    return field(default=default, metadata={"meaning": meaning, **extra})


def _table(factory: Any, meaning: str) -> Any:
    return field(default_factory=factory, metadata={"meaning": meaning})


@dataclass(frozen=True)
class NodeSection:
    data_dir: str = _key("data", "directory of the node's LevelDB store (created if missing)")
    key_file: str = _key("validator.key", "ML-DSA-65 validator key file (mode 0600, `pantheon keygen`)")
    genesis_file: str = _key("genesis.cbor", "the chain's genesis (`pantheon genesis`), identical on every validator")
    log_level: str = _key("info", "log verbosity: debug, info, warning or error", choices=("debug", "info", "warning", "error"))


@dataclass(frozen=True)
class P2PSection:
    listen: str = _key("0.0.0.0:7700", "host:port to accept validator connections on")
    peers: dict[str, str] = _table(dict, 'validator index -> "host:port" of every other validator, e.g. { "1" = "10.0.0.2:7700" }')
    send_queue_frames_max: int = _key(1024, "frames queued per peer before the oldest are dropped")
    reconnect_max_ms: int = _key(30_000, "longest wait between reconnection attempts (backoff cap)")
    gossip_roots_per_s: int = _key(20_000, "roots per second each peer's gossip may bring into this node's mempool; the rest of a frame is dropped (the peer still proposes them); 0: unmetered")
    gossip_burst_roots: int = _key(40_000, "roots one peer's gossip may bring at once above gossip_roots_per_s")


@dataclass(frozen=True)
class APISection:
    listen: str = _key("127.0.0.1:8700", "host:port of the HTTP API (reads public, writes need a token)")
    tokens_file: str = _key("tokens.toml", "submitter tokens, stored hashed (`pantheon token add`), mode 0600")
    roots_per_request_max: int = _key(1000, "most roots one POST /v1/roots may carry")
    body_bytes_max: int = _key(1_000_000, "largest request body accepted (413 above)")
    connections_max: int = _key(512, "open API connections at most; more are reset at once (the process's descriptor limit must cover this plus 1256, see LimitNOFILE)")
    connections_per_source_max: int = _key(64, "open API connections from one IP address at most (behind a reverse proxy: set it to connections_max)")
    write_timeout_ms: int = _key(10_000, "a client must take each 64 KiB of a response within this, or its connection is reset")
    read_timeout_ms: int = _key(30_000, "a connection that sends nothing this long while a request is open is closed (0: no limit)")
    keep_alive_timeout_ms: int = _key(5_000, "an idle connection (also one with an unfinished request head) is closed after this")
    shutdown_timeout_ms: int = _key(2_000, "at shutdown, requests in flight and pending writes get this long, then are cut")
    token_roots_per_s: int = _key(5_000, "roots per second one submitter token may submit to this node (429 + Retry-After past it); 0: unmetered")
    token_burst_roots: int = _key(10_000, "roots a token may submit at once above its rate (at least roots_per_request_max)")
    token_backlog_roots: int = _key(20_000, "every token's refill slows as this node's mempool fills towards this many roots and stops there, so a flooding token waits while a quiet one still gets its burst; 0: steady refill")
    tls_cert_file: str = _key("", "PEM certificate chain: serve HTTPS (with tls_key_file); empty: plain HTTP, keep it on loopback or behind a TLS proxy")
    tls_key_file: str = _key("", "PEM private key of tls_cert_file (mode 0600)")


@dataclass(frozen=True)
class MempoolSection:
    roots_max: int = _key(1_000_000, "pending roots held before submissions get 503 + Retry-After")
    submitter_share_percent: int = _key(25, "most of roots_max one submitter token (or one peer's gossip) may hold; past it its submissions get 429 + Retry-After while the others are still admitted (1-100)")
    gossip_share_percent: int = _key(50, "most of roots_max that roots gossiped by all peers together may hold, so that submissions to this node always find room; gossip past it is dropped (1-100)")

    @property
    def share_roots_max(self) -> int:
        """``submitter_share_percent`` of ``roots_max`` in roots, at least one."""
        return max(1, self.roots_max * self.submitter_share_percent // 100)

    @property
    def gossip_roots_max(self) -> int:
        """``gossip_share_percent`` of ``roots_max`` in roots, at least one."""
        return max(1, self.roots_max * self.gossip_share_percent // 100)


@dataclass(frozen=True)
class ConsensusSection:
    block_roots_max: int = _key(10_000, "most roots in one block")
    empty_block_interval_ms: int = _key(0, "0: blocks only carry roots or anchors (an idle chain adds no blocks); N: an idle leader proposes an empty block after N ms")
    timeout_base_ms: int = _key(2_000, "view timeout before voting to skip a silent leader")
    timeout_max_ms: int = _key(30_000, "cap of the exponentially backed-off view timeout")


@dataclass(frozen=True)
class BitcoinSection:
    enabled: bool = _key(False, "anchor the chain into Bitcoin through the bitcoind below")
    network: str = _key("regtest", "bitcoin network, as bitcoind names it: main, test, testnet4, signet or regtest", choices=("main", "test", "testnet4", "signet", "regtest"))
    rpc_url: str = _key("http://127.0.0.1:18443", "bitcoind JSON-RPC URL")
    rpc_cookie_file: str = _key("", "bitcoind .cookie file for RPC auth (empty: use rpc_user/rpc_password)")
    rpc_user: str = _key("", "RPC user name when not using the cookie file")
    rpc_password: str = _key("", "RPC password when not using the cookie file; node.toml must then be mode 0600 (prefer rpc_password_file)", secret=True)
    rpc_password_file: str = _key("", "file (mode 0600) holding the RPC password, instead of rpc_password in node.toml")
    wallet: str = _key("pantheon", "bitcoind wallet that funds and signs anchor transactions")
    fee_rate_sat_vb: int = _key(2, "fee rate of a new anchor transaction (sat/vB)")
    fee_rate_max_sat_vb: int = _key(50, "fee bumps never go above this fee rate (sat/vB)")
    fee_estimate_blocks: int = _key(6, "a new anchor pays bitcoind's estimatesmartfee rate for this confirmation target, at least fee_rate_sat_vb and at most fee_rate_max_sat_vb (0: always fee_rate_sat_vb)")
    fee_budget_sat_per_day: int = _key(0, "most satoshi this validator's anchors may pay in fees in any 24 hours; past it no new anchor is built and the fee_budget alert says when anchoring resumes (0: no budget)")
    bump_after_ms: int = _key(3_600_000, "an anchor unconfirmed this long is fee-bumped (RBF), up to fee_rate_max_sat_vb")
    fallback_ms: int = _key(7_200_000, "if the validator on anchor duty has not got its anchor recorded in a block this long after the due block, the next validator anchors it")
    poll_interval_ms: int = _key(2_000, "how often the anchoring task asks bitcoind about anchors in flight")
    rpc_timeout_ms: int = _key(5_000, "longest wait for one bitcoind RPC answer")
    check_timeout_ms: int = _key(2_000, "longest wait for bitcoind when checking a proposal's anchors before voting (no answer: the vote is withheld)")


@dataclass(frozen=True)
class Config:
    path: Path
    node: NodeSection = _table(NodeSection, "this validator's files")
    p2p: P2PSection = _table(P2PSection, "connections to the other validators")
    api: APISection = _table(APISection, "the HTTP API")
    mempool: MempoolSection = _table(MempoolSection, "roots accepted but not yet in a block")
    consensus: ConsensusSection = _table(ConsensusSection, "block building and view timeouts")
    bitcoin: BitcoinSection = _table(BitcoinSection, "Bitcoin anchoring")

    def resolve(self, relative: str) -> Path:
        """A path from the config, relative to the config file's directory."""
        candidate = Path(relative).expanduser()
        return candidate if candidate.is_absolute() else self.path.parent / candidate


SECTIONS: dict[str, type] = {
    name: section_type
    for name, section_type in typing.get_type_hints(Config).items()
    if name != "path"
}


def _check_value(file: Path, where: str, value: Any, spec: dataclasses.Field[Any], expected: Any) -> Any:
    if spec.metadata.get("secret") and not isinstance(value, str):
        raise ConfigError(f"{file}: {where} must be a string, got a TOML {type(value).__name__} (value not shown)")
    if typing.get_origin(expected) is dict:
        if not isinstance(value, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in value.items()
        ):
            raise ConfigError(f"{file}: {where} must be a table of strings")
        return dict(value)
    if expected is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{file}: {where} must be true or false, got {value!r}")
    elif expected is int:
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise ConfigError(f"{file}: {where} must be a non-negative integer, got {value!r}")
    elif expected is str:
        if not isinstance(value, str):
            raise ConfigError(f"{file}: {where} must be a string, got {value!r}")
    choices = spec.metadata.get("choices")
    if choices and value not in choices:
        raise ConfigError(f"{file}: {where} must be one of {', '.join(choices)}; got {value!r}")
    return value


def load_config(path: Path) -> Config:
    """Read and check a config file. Missing keys take their defaults; unknown ones are errors."""
    path = Path(path)
    try:
        with open(path, "rb") as f:
            file_info = os.fstat(f.fileno())
            raw = f.read(CONFIG_FILE_BYTES_MAX + 1)
    except FileNotFoundError:
        raise ConfigError(f"config file {path} does not exist (see `pantheon config reference`)") from None
    except OSError as exc:
        raise ConfigError(f"config file {path} cannot be read: {exc.strerror}") from None
    if len(raw) > CONFIG_FILE_BYTES_MAX:
        raise ConfigError(f"config file {path} is larger than {CONFIG_FILE_BYTES_MAX} bytes")
    try:
        doc = tomllib.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"config file {path} is not valid TOML: {exc}") from None
    sections: dict[str, Any] = {}
    for name, values in doc.items():
        section_type = SECTIONS.get(name)
        if section_type is None:
            raise ConfigError(f"{path}: unknown section [{name}]; known: {', '.join(SECTIONS)}")
        if not isinstance(values, dict):
            raise ConfigError(f"{path}: [{name}] must be a table")
        specs = {f.name: f for f in dataclasses.fields(section_type)}
        hints = typing.get_type_hints(section_type)
        checked = {}
        for key, value in values.items():
            spec = specs.get(key)
            if spec is None:
                raise ConfigError(f"{path}: unknown key {name}.{key}; known: {', '.join(specs)}")
            checked[key] = _check_value(path, f"{name}.{key}", value, spec, hints[key])
        sections[name] = section_type(**checked)
    config = Config(path=path.resolve(), **sections)
    _check_api(config)
    _check_mempool(config)
    return dataclasses.replace(config, bitcoin=_checked_bitcoin(config, file_info))


def _check_api(config: Config) -> None:
    """Limits that would make the API unusable, and half a TLS setup, are errors at load."""
    api, path = config.api, config.path
    if bool(api.tls_cert_file) != bool(api.tls_key_file):
        raise ConfigError(f"{path}: api.tls_cert_file and api.tls_key_file go together; set both or neither")
    if api.token_roots_per_s and api.token_burst_roots < api.roots_per_request_max:
        raise ConfigError(
            f"{path}: api.token_burst_roots ({api.token_burst_roots}) must be at least api.roots_per_request_max "
            f"({api.roots_per_request_max}), or a full request could never be admitted"
        )
    for key in ("connections_max", "connections_per_source_max", "write_timeout_ms", "keep_alive_timeout_ms"):
        if getattr(api, key) == 0:
            raise ConfigError(f"{path}: api.{key} must be at least 1")


def _check_mempool(config: Config) -> None:
    """A share of 0 would refuse every root; over 100 would mean no share at all, silently."""
    for key in ("submitter_share_percent", "gossip_share_percent"):
        value = getattr(config.mempool, key)
        if not 1 <= value <= 100:
            raise ConfigError(f"{config.path}: mempool.{key} must be from 1 to 100, got {value}")


def _checked_bitcoin(config: Config, file_info: os.stat_result) -> BitcoinSection:
    """The bitcoin section with its password in place, after the checks that keep it secret:
    node.toml holding a password must be a secret file, a password file must be one, and the
    URL carries no credentials (they would be shown in errors and the process list, and the
    RPC client takes them from rpc_user/rpc_password only)."""
    section, path = config.bitcoin, config.path
    try:
        parts = urlsplit(section.rpc_url)
        has_userinfo = "@" in parts.netloc
    except ValueError:
        raise ConfigError(f"{path}: bitcoin.rpc_url is not a URL; it must look like http://127.0.0.1:18443") from None
    if has_userinfo:
        shown = parts._replace(netloc=parts.netloc.rpartition("@")[2]).geturl()
        raise ConfigError(
            f"{path}: bitcoin.rpc_url must not carry user:password (given for {shown}); "
            "set bitcoin.rpc_user, and bitcoin.rpc_password_file (or rpc_cookie_file)"
        )
    if section.rpc_password and section.rpc_password_file:
        raise ConfigError(f"{path}: set bitcoin.rpc_password or bitcoin.rpc_password_file, not both")
    if section.rpc_password:
        try:
            check_secret_stat(path, file_info)
        except KeyFileError as exc:
            raise ConfigError(
                f"{path} holds bitcoin.rpc_password, so it must be a secret file: {exc}; "
                "or move the password into a mode 0600 file named by bitcoin.rpc_password_file"
            ) from None
        return section
    if not section.rpc_password_file:
        return section
    password_path = config.resolve(section.rpc_password_file)
    try:
        raw = read_secret_file(password_path)
    except KeyFileError as exc:
        raise ConfigError(f"{path}: bitcoin.rpc_password_file: {exc}") from None
    try:
        password = raw.decode("utf-8").rstrip("\r\n")
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: bitcoin.rpc_password_file {password_path} is not UTF-8 text") from None
    if not password:
        raise ConfigError(f"{path}: bitcoin.rpc_password_file {password_path} is empty")
    return dataclasses.replace(section, rpc_password=password)


def reference_rows() -> list[tuple[str, str, str]]:
    """(key, default, meaning) for every config key, in file order."""
    rows = []
    for name, section_type in SECTIONS.items():
        for spec in dataclasses.fields(section_type):
            default = spec.default if spec.default is not dataclasses.MISSING else spec.default_factory()  # type: ignore[misc]
            rows.append((f"{name}.{spec.name}", _toml_literal(default), spec.metadata["meaning"]))
    return rows


def _toml_literal(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return f'"{value}"'
    if isinstance(value, dict):
        return "{}" if not value else "{ " + ", ".join(f'"{k}" = "{v}"' for k, v in value.items()) + " }"
    return str(value)


def render_config(values: dict[str, dict[str, Any]]) -> str:
    """A config file with the given values, every other key commented with its default."""
    lines = ["# Pantheon node configuration. `pantheon config reference` explains every key."]
    for name, section_type in SECTIONS.items():
        lines.append(f"\n[{name}]")
        given = values.get(name, {})
        for spec in dataclasses.fields(section_type):
            if spec.name in given:
                lines.append(f"{spec.name} = {_toml_literal(given[spec.name])}")
    return "\n".join(lines) + "\n"

