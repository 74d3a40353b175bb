"""Clients that read their response slowly must get all of it.

These clients read a file response (sent with sendfile, which keeps hitting a full socket) for
several times the keep-alive timeout. (The master also keeps its idle timers off while hyper
still holds unwritten response bytes; whether this test reaches that state depends on the
kernel's socket buffer sizes, so it guards the outcome, not that mechanism.)
"""

from __future__ import annotations

import os
import socket
import time

import pytest

from support import APPS, get_request, parse_response, Incomplete

KEEPALIVE = 1.0


@pytest.fixture(scope="module")
def server(module_corral):
    c = module_corral(
        f"{APPS / 'wsgi_app.py'}:application",
        "--mpm", "prefork", "-w", "1",
        "--keepalive-timeout", f"{KEEPALIVE:g}s",
    )
    yield c
    c.kill()


def _read_slowly(port, request, rate):
    """Sends request on a socket with a tiny receive buffer, then reads the answer at about
    rate bytes/s. Returns the bytes received until the server closed or a complete response
    arrived."""
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    s.settimeout(10)
    s.connect(("127.0.0.1", port))
    s.sendall(request)
    buf = b""
    deadline = time.monotonic() + 60
    try:
        while time.monotonic() < deadline:
            piece = s.recv(4096)
            if not piece:
                break
            buf += piece
            try:
                parse_response(buf)
                break
            except Incomplete:
                pass
            time.sleep(len(piece) / rate)
    finally:
        s.close()
    return buf


@pytest.mark.parametrize("size", [600_000, 2_000_000])
def test_slow_reader_gets_a_whole_file(server, tmp_path, size):
    path = tmp_path / "payload.bin"
    data = os.urandom(size)
    path.write_bytes(data)
    started = time.monotonic()
    raw = _read_slowly(server.port, get_request(f"/file?path={path}"), size / (3 * KEEPALIVE))
    took = time.monotonic() - started
    resp, _ = parse_response(raw, eof=True)
    assert resp.status == 200
    assert len(resp.body) == size, f"got {len(resp.body)} of {size} bytes in {took:.1f}s"
    assert resp.body == data
    assert took > 2 * KEEPALIVE, "the read was not slow enough to test anything"
