"""Issue 12, section 6: a client that dribbles its request head byte by byte is cut off.

Each byte would reset a plain idle timer; the bound that holds is for the whole head
(``api.keep_alive_timeout_ms`` covers an unfinished request head, node/http_server.py).
"""

import socket
import time

from tests.test_http_limits import running, start_node  # noqa: F401  (running is a fixture)

DRIBBLE_INTERVAL_S = 0.2


def test_a_client_dribbling_its_headers_byte_by_byte_is_cut_off(tmp_path, running):  # noqa: F811
    node = start_node(tmp_path / "devnet", {"keep_alive_timeout_ms": 1_000, "read_timeout_ms": 1_000})
    running.append(node)
    sock = socket.create_connection(("127.0.0.1", node.port))
    sock.settimeout(DRIBBLE_INTERVAL_S)
    started = time.monotonic()
    head = b"GET /healthz HTTP/1.1\r\nHost: node\r\nX-Pad: " + b"a" * 10_000
    closed_after_s = None
    try:
        for byte in head:
            try:
                sock.sendall(bytes([byte]))
            except OSError:
                closed_after_s = time.monotonic() - started
                break
            try:
                if sock.recv(1024) == b"":
                    closed_after_s = time.monotonic() - started
                    break
            except TimeoutError:
                pass
            except OSError:
                closed_after_s = time.monotonic() - started
                break
            if time.monotonic() - started > 15:
                break
    finally:
        sock.close()
    assert closed_after_s is not None, "the server still read a dribbled head after 15 s"
    assert closed_after_s < 5.0
