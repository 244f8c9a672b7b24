"""The API server's settings and start-up checks (node.http_server), in process."""

import logging
import os
import resource

import httpx
import pytest
import trio

from node import http_server
from node.config import ConfigError, load_config
from node.http_server import HTTPServerError, HTTPSettings, ensure_descriptors, parse_listen, serve_api
from tests.test_api import StandIn
from tests.test_http_limits import self_signed


def settings(**overrides):
    values = dict(host="127.0.0.1", port=0, connections_max=8, connections_per_source_max=4, write_timeout_s=1.0,
                  read_timeout_s=5.0, keep_alive_timeout_s=5.0, shutdown_timeout_s=0.5)
    values.update(overrides)
    return HTTPSettings(**values)


@pytest.mark.parametrize("listen, expected", [("127.0.0.1:8700", ("127.0.0.1", 8700)), ("[::1]:0", ("::1", 0))])
def test_listen_addresses_parse(listen, expected):
    assert parse_listen(listen) == expected


@pytest.mark.parametrize("listen", ["8700", "host:", "host:99999", "host:８７", ":8700"])
def test_bad_listen_addresses_are_errors_naming_the_key(listen):
    with pytest.raises(HTTPServerError, match="api.listen"):
        parse_listen(listen)


def test_the_soft_descriptor_limit_is_raised_to_cover_the_cap(monkeypatch):
    calls = []
    monkeypatch.setattr(resource, "getrlimit", lambda _which: (1024, 65536))
    monkeypatch.setattr(resource, "setrlimit", lambda _which, limits: calls.append(limits))
    assert ensure_descriptors(512) == 512 + http_server.DESCRIPTORS_RESERVED
    assert calls == [(512 + http_server.DESCRIPTORS_RESERVED, 65536)]


def test_a_hard_descriptor_limit_below_the_cap_is_an_error_naming_limitnofile(monkeypatch):
    monkeypatch.setattr(resource, "getrlimit", lambda _which: (1024, 1024))
    with pytest.raises(HTTPServerError, match="LimitNOFILE"):
        ensure_descriptors(512)


def test_half_a_tls_setup_is_a_config_error(tmp_path):
    path = tmp_path / "node.toml"
    path.write_text('[api]\ntls_cert_file = "api.crt"\n')
    with pytest.raises(ConfigError, match="set both or neither"):
        load_config(path)


def test_a_readable_tls_key_is_refused(tmp_path):
    cert, key = self_signed(tmp_path)
    os.chmod(key, 0o644)
    with pytest.raises(HTTPServerError, match="chmod 600"):
        http_server.tls_context(settings(tls_cert_file=cert, tls_key_file=key))


async def serve_once(app_settings, caplog):
    from node.api import build_app
    from node.tokens import TokenTable

    app = build_app(StandIn(TokenTable({})), roots_per_request_max=4, body_bytes_max=1000)
    stop = trio.Event()
    with caplog.at_level(logging.INFO, logger="pantheon.http"):
        async with trio.open_nursery() as nursery:
            binds = await nursery.start(lambda task_status: serve_api(app, app_settings, shutdown_trigger=stop.wait,
                                                                       task_status=task_status))
            port = int(binds[0].rsplit(":", 1)[1])
            async with httpx.AsyncClient() as client:
                status = (await client.get(f"http://127.0.0.1:{port}/healthz")).status_code
            stop.set()
    return status


async def test_plaintext_on_all_addresses_is_warned_about(caplog):
    assert await serve_once(settings(host="0.0.0.0"), caplog) == 200
    assert any("plaintext" in r.getMessage() and r.levelno == logging.WARNING for r in caplog.records)


async def test_plaintext_on_loopback_is_not_warned_about(caplog):
    assert await serve_once(settings(), caplog) == 200
    assert not any("plaintext" in r.getMessage() for r in caplog.records)


async def test_a_client_that_hangs_up_mid_body_leaves_no_error_in_the_log(caplog, tmp_path):
    from node.api import build_app
    from node.tokens import add_token, load_tokens

    token = add_token(tmp_path / "tokens.toml", "p")
    app = build_app(StandIn(load_tokens(tmp_path / "tokens.toml")), roots_per_request_max=4, body_bytes_max=10_000)
    stop = trio.Event()
    with caplog.at_level(logging.DEBUG):
        async with trio.open_nursery() as nursery:
            binds = await nursery.start(lambda task_status: serve_api(app, settings(), shutdown_trigger=stop.wait,
                                                                       task_status=task_status))
            port = int(binds[0].rsplit(":", 1)[1])
            for _ in range(3):
                stream = await trio.open_tcp_stream("127.0.0.1", port)
                await stream.send_all(
                    b"POST /v1/roots HTTP/1.1\r\nHost: n\r\nContent-Type: application/json\r\n"
                    b"Authorization: Bearer " + token.encode() + b"\r\nContent-Length: 5000\r\n\r\n" + b"{" * 10
                )
                await trio.sleep(0.1)
                await stream.aclose()
            await trio.sleep(0.3)
            stop.set()
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert not errors, errors[0].getMessage()


def test_a_failed_start_is_one_operator_line_and_a_bug_keeps_its_traceback():
    from node.run_command import operator_error_of

    cause = HTTPServerError("api.listen 127.0.0.1:8700 cannot be bound: Address already in use")
    assert operator_error_of(BaseExceptionGroup("node", [ExceptionGroup("serve", [cause])])) is cause
    assert operator_error_of(BaseExceptionGroup("node", [cause, KeyError("bug")])) is None
