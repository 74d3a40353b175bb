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

from support import APPS, get_request, parse_response, read_lines, wait_until, Incomplete

KEEPALIVE = 1.0


def _one_worker(module_corral, *options):
    """The fixture app on a single prefork worker, with `options`."""
    return module_corral(f"{APPS / 'wsgi_app.py'}:application", "--mpm", "prefork", "-w", "1", *options)


@pytest.fixture(scope="module")
def server(module_corral):
    c = _one_worker(module_corral, "--keepalive-timeout", f"{KEEPALIVE:g}s")
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


SEND_TIMEOUT = 1.0


@pytest.fixture(scope="module")
def one_worker_send_timeout(module_corral):
    c = _one_worker(module_corral, "--send-timeout", f"{SEND_TIMEOUT:g}s")
    yield c
    c.kill()


def test_a_client_that_reads_nothing_does_not_keep_the_worker(one_worker_send_timeout, tmp_path):
    """A large generated response to a client that never reads fills every buffer on the way
    and blocks the only worker; after --send-timeout the connection is closed, the generator
    is closed, and the worker serves the next client."""
    server = one_worker_send_timeout
    record = tmp_path / "record.txt"
    mark = server.mark()
    stuck = socket.socket()
    stuck.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    stuck.settimeout(20)
    stuck.connect(("127.0.0.1", server.port))
    try:
        stuck.sendall(get_request(f"/big?kib={512 * 1024}&record={record}"))
        time.sleep(0.5)  # the worker is now producing the response, which nobody reads
        started = time.monotonic()
        r = server.get("/hello", timeout=15)
        assert (r.status, r.body) == (200, b"Hello, world!\n")
        assert time.monotonic() - started < 10
        got = 0
        while piece := stuck.recv(1 << 20):  # the server closed the stalled connection
            got += len(piece)
        assert got < 512 * 1024 * 1024
    finally:
        stuck.close()
    wait_until(lambda: "generator-closed" in read_lines(record), 10, message="the generator's close")
    server.wait_for_stderr("--send-timeout", since=mark)


def test_a_slow_reader_is_not_cut_off_by_the_send_timeout(one_worker_send_timeout):
    """Reading steadily, however slowly, is progress: only a client that takes nothing for the
    whole timeout is closed."""
    body = 512 * 1024
    data = _read_slowly(one_worker_send_timeout.port, get_request("/big?kib=512"), rate=128 * 1024)
    resp, _ = parse_response(data)
    assert resp.status == 200
    assert len(resp.body) == body



def test_a_generator_that_runs_past_its_content_length_does_not_keep_the_worker(
    one_worker_send_timeout, tmp_path
):
    """PEP 3333: the server stops iterating once the declared length is sent, and closes."""
    server = one_worker_send_timeout
    record = tmp_path / "record.txt"
    r = server.get(f"/big?kib=64&forever=1&record={record}", timeout=10)
    assert (r.status, len(r.body)) == (200, 64 * 1024)
    wait_until(lambda: "generator-closed" in read_lines(record), 10, message="the generator's close")
    assert server.get("/hello", timeout=10).status == 200
