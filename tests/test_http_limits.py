"""Issue 14, findings 3 and 9, against a real validator process on real sockets.

Finding 3: HTTP clients that never read were held forever (no write timeout, no cap), so
about 1,000 of them exhausted the descriptors the API and p2p listener need, and one kept
SIGTERM from finishing. Now connections are capped per source and in total, a client that
does not take its response is reset after the write timeout, and shutdown is bounded.
Finding 9: the API can serve HTTPS (``api.tls_cert_file`` / ``api.tls_key_file``) and warns
when it serves plaintext beyond loopback.

A "stuck" client here pipelines many ``GET /metrics`` and never reads, with a 4 KiB receive
buffer: the node's response write blocks once the socket buffers are full.
"""

from __future__ import annotations

import datetime
import ipaddress
import os
import signal
import socket
import ssl
import time
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from devnet import cluster
from node.config import render_config
from node.keyfiles import write_secret_file
from tests.network_harness import wait_until

STUCK_REQUESTS = 200


@dataclass
class RunningNode:
    state: cluster.DevnetState
    entry: cluster.NodeEntry
    port: int

    @property
    def pid(self) -> int:
        assert self.entry.pid is not None
        return self.entry.pid

    def descriptors(self) -> int:
        return len(os.listdir(f"/proc/{self.pid}/fd"))

    def log_text(self) -> str:
        return Path(self.entry.log).read_text(errors="replace")


def start_node(directory: Path, api: dict | None = None, *, scheme: str = "http") -> RunningNode:
    state = cluster.create(directory, 1)
    entry = state.nodes[0]
    config_path = Path(entry.config)
    values = tomllib.loads(config_path.read_text())
    values["api"].update(api or {})
    config_path.write_text(render_config(values))
    port = int(values["api"]["listen"].rsplit(":", 1)[1])
    entry.api_url = f"{scheme}://127.0.0.1:{port}"
    cluster.start(state)
    node = RunningNode(state, entry, port)
    wait_until(lambda: "ready" in node.log_text(), deadline_s=60, what="the node to be ready")
    return node


@pytest.fixture
def running() -> Iterator[list[RunningNode]]:
    nodes: list[RunningNode] = []
    yield nodes
    for node in nodes:
        cluster.stop(node.state)


def stuck_client(port: int, source: str = "127.0.0.1") -> socket.socket:
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.bind((source, 0))
    sock.connect(("127.0.0.1", port))
    sock.setblocking(False)
    try:
        sock.send(b"GET /metrics HTTP/1.1\r\nHost: node\r\n\r\n" * STUCK_REQUESTS)
    except BlockingIOError:
        pass
    return sock


def healthz_from(port: int, source: str, *, scheme: str = "http", ca: Path | None = None) -> int:
    verify = ssl.create_default_context(cafile=str(ca)) if ca is not None else False
    transport = httpx.HTTPTransport(local_address=source, verify=verify)
    with httpx.Client(transport=transport, timeout=5.0) as client:
        return client.get(f"{scheme}://127.0.0.1:{port}/healthz").status_code


def test_clients_that_never_read_are_capped_per_source_and_dropped_after_the_write_timeout(tmp_path, running):
    """Defaults: 64 connections per source, 10 s write timeout."""
    node = start_node(tmp_path / "devnet")
    running.append(node)
    assert httpx.get(f"http://127.0.0.1:{node.port}/v1/blocks/²").status_code == 400
    baseline = node.descriptors()
    clients = [stuck_client(node.port) for _ in range(80)]
    time.sleep(1.0)
    held = node.descriptors() - baseline
    assert held <= 64 + 2, f"{held} descriptors held by 80 clients that never read"
    assert healthz_from(node.port, "127.0.0.2") == 200, "another source must still be served"
    started = time.monotonic()
    wait_until(lambda: node.descriptors() <= baseline + 2, deadline_s=25,
               what="the node to drop clients that do not read")
    dropped_after_s = time.monotonic() - started
    assert healthz_from(node.port, "127.0.0.1") == 200
    assert "Traceback" not in node.log_text()
    assert "API client reset: it did not take its response" in node.log_text()
    print(f"80 stuck clients: {held} descriptors held, all dropped {dropped_after_s + 1.0:.1f} s after they stalled")
    for sock in clients:
        sock.close()


def test_sigterm_stops_the_node_within_the_bound_while_clients_never_read(tmp_path, running):
    """Defaults: 2 s shutdown timeout; the node used to hang on a shielded write forever."""
    node = start_node(tmp_path / "devnet", {"write_timeout_ms": 600_000})
    running.append(node)
    clients = [stuck_client(node.port) for _ in range(20)]
    time.sleep(1.0)
    started = time.monotonic()
    os.kill(node.pid, signal.SIGTERM)
    wait_until(lambda: not cluster.pid_alive(node.pid), deadline_s=15, what="the node to exit after SIGTERM", poll_s=0.05)
    took_s = time.monotonic() - started
    assert took_s < 6.0, f"shutdown took {took_s:.1f} s"
    print(f"SIGTERM with 20 clients that never read: stopped in {took_s:.2f} s")
    for sock in clients:
        sock.close()


def test_the_total_cap_holds_across_sources_and_p2p_still_accepts(tmp_path, running):
    node = start_node(tmp_path / "devnet", {"connections_max": 40, "connections_per_source_max": 16})
    running.append(node)
    baseline = node.descriptors()
    clients = [stuck_client(node.port, f"127.0.0.{2 + i % 5}") for i in range(100)]
    time.sleep(1.0)
    held = node.descriptors() - baseline
    assert held <= 40 + 2, f"{held} descriptors held by 100 clients from 5 sources"
    p2p_host, p2p_port = node.entry.p2p_addr.rsplit(":", 1)
    with socket.create_connection((p2p_host, int(p2p_port)), timeout=5):
        pass
    assert "API connections refused at the cap" in node.log_text()
    for sock in clients:
        sock.close()
    wait_until(lambda: healthz_from(node.port, "127.0.0.9") == 200, deadline_s=10, what="the API to serve again")


def self_signed(directory: Path) -> tuple[Path, Path]:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1)).not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "api.crt", directory / "api.key"
    directory.mkdir(parents=True, exist_ok=True)
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    write_secret_file(key_path, key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    return cert_path, key_path


def test_the_api_serves_https_with_the_configured_certificate_and_keeps_its_limits(tmp_path, running):
    cert, key = self_signed(tmp_path / "tls")
    node = start_node(tmp_path / "devnet", {"tls_cert_file": str(cert), "tls_key_file": str(key),
                                            "connections_per_source_max": 4}, scheme="https")
    running.append(node)
    assert healthz_from(node.port, "127.0.0.1", scheme="https", ca=cert) == 200
    with pytest.raises(httpx.HTTPError):
        healthz_from(node.port, "127.0.0.1", scheme="http")
    clients = [socket.create_connection(("127.0.0.1", node.port)) for _ in range(4)]
    time.sleep(0.5)
    with pytest.raises(httpx.HTTPError):
        healthz_from(node.port, "127.0.0.1", scheme="https", ca=cert)
    assert healthz_from(node.port, "127.0.0.2", scheme="https", ca=cert) == 200
    assert "plaintext" not in node.log_text()
    for sock in clients:
        sock.close()


def test_plaintext_beyond_loopback_is_warned_about_at_start(tmp_path, running):
    node = start_node(tmp_path / "devnet")
    running.append(node)
    assert "plaintext" not in node.log_text()
    cluster.stop(node.state)
    config_path = Path(node.entry.config)
    values = tomllib.loads(config_path.read_text())
    values["api"]["listen"] = f"0.0.0.0:{node.port}"
    config_path.write_text(render_config(values))
    cluster.start(node.state)
    wait_until(lambda: node.log_text().count("ready") >= 2, deadline_s=60, what="the node to be ready again")
    assert "API serves writes over plaintext on a non-loopback address" in node.log_text()
