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
from concurrent.futures import ThreadPoolExecutor

import pytest

from support import APPS, RawConnection, get_request, parse_response, read_lines, wait_until, Incomplete

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


def _read_whole(conn, size, timeout=30):
    """Reads one response with a body of `size` bytes from `conn`; returns its body length."""
    r = conn.read_response(timeout=timeout)
    assert r.status == 200, r
    return len(r.body)


def _stall_an_answer(c, path):
    """A client over the Unix socket `path` asks for an 800 KiB answer and reads none of it
    (the kernel does not grow a Unix socket's buffers, so the answer outgrows them and the
    slot's ring holds the rest); returns its connection once the slot has answered."""
    stuck = RawConnection(unix_path=str(path), timeout=30)
    stuck.send(get_request("/big?kib=800"))
    time.sleep(1.0)
    return stuck


def test_a_request_does_not_wait_behind_an_answer_its_client_does_not_read(corral, short_dir):
    """An answer larger than the slot's ring, whose client reads none of it, stays in the
    slot's ring after the slot is done with it. The slot then takes no request (it would
    wait behind that answer): the idle process serves the next client at once, and the
    stalled answer is still whole when its client reads it."""
    path = short_dir / "s.sock"
    app = f"{APPS / 'wsgi_app.py'}:application"
    c = corral(app, "--mpm", "prefork", "-w", "2", bind=["127.0.0.1:0", f"unix:{path}"])
    with _stall_an_answer(c, path) as stuck:
        started = time.monotonic()
        r = c.get("/sysinfo", timeout=15)
        assert r.status == 200
        assert time.monotonic() - started < 5, "the request waited behind the unread answer"
        assert _read_whole(stuck, 800 * 1024) == 800 * 1024
    for _ in range(5):  # the slot that waited serves again
        assert c.get("/hello", timeout=5).status == 200


def test_a_stalled_slot_takes_requests_again_once_its_answer_is_read(corral, short_dir):
    """With one slot, the next request waits in the queue while the answer is unread, and
    the slot takes it as soon as its client has read the answer."""
    path = short_dir / "s.sock"
    app = f"{APPS / 'wsgi_app.py'}:application"
    c = corral(app, "--mpm", "prefork", "-w", "1", bind=["127.0.0.1:0", f"unix:{path}"])
    with _stall_an_answer(c, path) as stuck, ThreadPoolExecutor(1) as pool:
        waiting = pool.submit(c.get, "/hello", timeout=30)
        time.sleep(1.0)
        assert not waiting.done(), "the only slot took a request behind its unread answer"
        assert _read_whole(stuck, 800 * 1024) == 800 * 1024
        assert waiting.result(timeout=30).status == 200
