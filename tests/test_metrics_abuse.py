"""Issue 14: what an attack is doing shows in /metrics, not only in a log that is rate-limited.

Refused API connections (by cap), API clients reset for not reading, and p2p handshake
refusals (by reason, the pre-auth budget's included) are counters an operator can alert on.
"""

import socket
import struct
from collections import Counter

import httpx

from node.http_server import ConnectionGuard, HTTPSettings
from node.metrics import NodeMetrics
from tests.network_harness import wait_until
from tests.test_http_limits import running, start_node  # noqa: F401  (running is a fixture)

SETTINGS = HTTPSettings(host="127.0.0.1", port=0, connections_max=3, connections_per_source_max=2,
                        write_timeout_s=1.0, read_timeout_s=1.0, keep_alive_timeout_s=1.0, shutdown_timeout_s=1.0)


async def test_refused_api_connections_are_counted_by_cap():
    metrics = NodeMetrics()
    guard = ConnectionGuard(SETTINGS, metrics)
    assert [guard.try_acquire("10.0.0.1") for _ in range(3)] == [True, True, False]
    assert guard.try_acquire("10.0.0.2") is True
    assert guard.try_acquire("10.0.0.3") is False
    text = metrics.render().decode()
    assert 'pantheon_api_connections_refused_total{cap="source"} 1.0' in text
    assert 'pantheon_api_connections_refused_total{cap="total"} 1.0' in text


async def test_clients_reset_for_not_reading_are_counted():
    metrics = NodeMetrics()
    guard = ConnectionGuard(SETTINGS, metrics)
    guard.note_write_timeout("10.0.0.1")
    guard.note_write_timeout("10.0.0.1")
    assert "pantheon_api_connections_reset_total 2.0" in metrics.render().decode()


def test_handshake_refusals_follow_the_transport_counter_by_reason():
    metrics = NodeMetrics()
    failures = Counter({"source_busy": 5, "rate_limited": 2})
    metrics.sync_handshake_failures(failures)
    failures["source_busy"] += 3
    failures["idle"] += 1
    metrics.sync_handshake_failures(failures)
    metrics.sync_handshake_failures(failures)  # a scrape without news adds nothing
    text = metrics.render().decode()
    assert 'pantheon_p2p_handshake_failures_total{reason="source_busy"} 8.0' in text
    assert 'pantheon_p2p_handshake_failures_total{reason="rate_limited"} 2.0' in text
    assert 'pantheon_p2p_handshake_failures_total{reason="idle"} 1.0' in text


def test_a_real_node_exports_refused_api_connections_and_handshake_refusals(tmp_path, running):  # noqa: F811
    node = start_node(tmp_path / "devnet", {"connections_per_source_max": 2})
    running.append(node)
    held = [socket.create_connection(("127.0.0.1", node.port)) for _ in range(2)]
    refused = socket.create_connection(("127.0.0.1", node.port))
    host, port = node.entry.p2p_addr.rsplit(":", 1)
    with socket.create_connection((host, int(port))) as p2p:
        p2p.sendall(struct.pack(">I", 16) + b"XXXX" + bytes(12))
        p2p.settimeout(5)
        assert p2p.recv(1) == b""  # refused: bad magic
    for sock in [*held, refused]:
        sock.close()

    def scraped() -> str:
        return httpx.get(f"http://127.0.0.1:{node.port}/metrics", timeout=5).text

    wait_until(lambda: 'pantheon_api_connections_refused_total{cap="source"}' in scraped(), deadline_s=10,
               what="the refused API connection in /metrics")
    assert 'pantheon_p2p_handshake_failures_total{reason="bad_magic"} 1.0' in scraped()
