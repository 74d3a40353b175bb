"""WSGI semantics (PEP 3333) under both MPMs, for the fixture app as is and
wrapped in wsgiref.validate.validator (any validator complaint fails the test).
"""

from __future__ import annotations

import email.utils
import hashlib
import os
import re
import shutil
import subprocess
import time
import urllib.parse
import uuid

import pytest

from support import (
    APPS,
    MPMS,
    assert_clean_stderr,
    get_request,
    read_lines,
    wait_until,
)

SERVERS = [(mpm, name) for mpm in MPMS for name in ("application", "validated_application")]
VALIDATOR_MARKERS = ("AssertionError", "WSGIWarning", "Exception ignored", "without being closed")


@pytest.fixture(
    scope="module",
    params=SERVERS,
    ids=[f"{mpm}-{'validated' if name != 'application' else 'plain'}" for mpm, name in SERVERS],
)
def server(request, module_corral):
    mpm, name = request.param
    c = module_corral(f"{APPS / 'wsgi_app.py'}:{name}", *MPMS[mpm])
    c.mpm = mpm
    c.validated = name != "application"
    yield c
    text = c.stderr_text()
    c.kill()
    for marker in VALIDATOR_MARKERS:
        assert marker not in text, f"{marker!r} in corral's stderr ({mpm}, {name}):\n{text}"


@pytest.fixture(autouse=True)
def no_traceback_unless_expected(request, server):
    """Tests not marked app_errors must leave no traceback on stderr."""
    mark = server.mark()
    yield
    if request.node.get_closest_marker("app_errors") is None:
        assert_clean_stderr(server.stderr_since(mark))


@pytest.mark.smoke
def test_hello(server):
    r = server.get("/hello")
    assert r.status == 200
    assert r.body == b"Hello, world!\n"
    assert r.header("Content-Length") == "14"
    assert r.header("Content-Type") == "text/plain; charset=utf-8"
    assert re.match(r"^corral\b", r.header("Server", "")), r.headers
    date = r.header("Date")
    assert date is not None, r.headers
    assert email.utils.parsedate_to_datetime(date) is not None


def test_unknown_route_is_the_apps_404(server):
    r = server.get("/no/such/route")
    assert r.status == 404
    assert r.body == b"not found\n"


@pytest.mark.parametrize("framing", ["chunked", "length"])
def test_streaming_generator_is_incremental(server, framing):
    """Chunks are forwarded as the generator yields them: chunked, or within a declared length."""
    n, delay = 4, 0.3
    length = "&length=1" if framing == "length" else ""
    with server.raw() as conn:
        conn.send(get_request(f"/stream?n={n}&delay={delay}{length}"))
        seen = {}
        deadline = time.monotonic() + 15
        while f"chunk-{n - 1}" not in seen:
            assert conn.fill(deadline), f"timeout; got {conn.buf!r}"
            assert not conn.eof or f"chunk-{n - 1}".encode() in conn.buf, conn.buf
            for i in range(n):
                if f"chunk-{i}".encode() in conn.buf and f"chunk-{i}" not in seen:
                    seen[f"chunk-{i}"] = time.monotonic()
        resp = conn.read_response(timeout=5)
    body = b"".join(f"chunk-{i}\n".encode() for i in range(n))
    assert resp.status == 200
    if framing == "chunked":
        assert resp.header("Content-Length") is None
        assert resp.header("Transfer-Encoding", "").lower() == "chunked", resp.headers
    else:
        assert resp.header("Content-Length") == str(len(body)), resp.headers
        assert resp.header("Transfer-Encoding") is None, resp.headers
    assert resp.body == body
    # generated over >= 0.9 s: had the server buffered the body, all would arrive at once
    assert seen[f"chunk-{n - 1}"] - seen["chunk-0"] >= 0.5, seen


@pytest.mark.parametrize("query", ["lazy=1", "empty=1", "lazy=1&empty=1"])
def test_streaming_variants(server, query):
    """start_response on the first next(); empty bytestrings must not end the chunked body."""
    with server.raw() as conn:
        conn.send(get_request(f"/stream?n=3&delay=0.05&{query}") + get_request("/hello"))
        r = conn.read_response()
        after = conn.read_response()
    assert r.status == 200
    assert r.body == b"chunk-0\nchunk-1\nchunk-2\n"
    assert (after.status, after.body) == (200, b"Hello, world!\n")


def test_write_callable(server):
    r = server.get("/write")
    assert r.status == 200
    assert r.body == b"part1 part2 tail"


@pytest.mark.parametrize("size", [0, 1, 65536, 300_001])
def test_file_wrapper_real_file(server, tmp_path, size):
    path = tmp_path / "payload.bin"
    data = os.urandom(size)
    path.write_bytes(data)
    r = server.get(f"/file?path={path}&blksize=4096")
    assert r.status == 200
    assert r.header("Content-Length") == str(size)
    assert len(r.body) == size
    assert r.body == data


def test_file_wrapper_ranges_chunked_head_and_pipelined(server, tmp_path):
    """Files go out with sendfile underneath hyper: an offset, chunked framing (no
    Content-Length), HEAD, and several file and plain responses in a row on one connection
    must all come out in order and byte-exact."""
    a, b = tmp_path / "a.bin", tmp_path / "b.bin"
    data_a, data_b = os.urandom(700_001), os.urandom(5)
    a.write_bytes(data_a)
    b.write_bytes(data_b)
    requests = [
        ("GET", f"/file?path={a}&offset=12345"),
        ("GET", f"/file?path={a}&nolength=1"),
        ("HEAD", f"/file?path={a}"),
        ("GET", "/hello"),
        ("GET", f"/file?path={b}&nolength=1"),
        ("GET", f"/file?path={b}"),
    ]
    with server.raw() as conn:
        conn.send(b"".join(get_request(path, method=m) for m, path in requests))
        got = [conn.read_response(method=m) for m, _ in requests]
    assert [r.status for r in got] == [200] * len(requests)
    assert got[0].body == data_a[12345:]
    assert got[1].chunked and got[1].body == data_a
    assert got[2].header("Content-Length") == str(len(data_a)) and got[2].body == b""
    assert got[3].body == b"Hello, world!\n"
    assert got[4].chunked and got[4].body == data_b
    assert got[5].body == data_b


def test_file_wrapper_to_a_slow_reader(server, tmp_path):
    """A large file to a client that reads slowly: the socket fills, sendfile resumes."""
    path = tmp_path / "big.bin"
    data = os.urandom(8 * 1024 * 1024)
    path.write_bytes(data)
    with server.raw() as conn:
        conn.send(get_request(f"/file?path={path}"))
        time.sleep(0.5)  # let the server fill the socket buffers and wait
        r = conn.read_response()
    assert r.body == data


def _traced_by_strace(server, syscalls, action):
    """(action(), strace's log of `syscalls` in the master's threads while it ran)."""
    trace = subprocess.Popen(
        ["strace", "-f", "-e", f"trace={syscalls}", "-p", str(server.pid)],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )
    try:
        time.sleep(1.0)  # strace attaches to every thread
        result = action()
        time.sleep(0.3)
    finally:
        trace.terminate()
        log = trace.communicate(timeout=10)[1]
    if "Operation not permitted" in log:
        pytest.skip("ptrace is not permitted here")
    return result, log


@pytest.mark.skipif(shutil.which("strace") is None, reason="needs strace")
def test_file_wrapper_is_sent_with_sendfile_by_the_master(server, tmp_path):
    if server.validated:
        pytest.skip("wsgiref.validate wraps the file_wrapper: the worker sees a plain iterable")
    path = tmp_path / "payload.bin"
    data = os.urandom(1_000_000)
    path.write_bytes(data)
    r, log = _traced_by_strace(server, "sendfile", lambda: server.get(f"/file?path={path}"))
    assert r.body == data
    sent = sum(int(n) for n in re.findall(r"sendfile\(.*\) = (\d+)", log))
    assert sent == len(data), log[-2000:]


@pytest.mark.skipif(shutil.which("strace") is None, reason="needs strace")
def test_a_complete_streamed_body_is_not_aborted(server):
    """Frameworks return one-piece bodies as iterators (Flask's ClosingIterator, Django's
    HttpResponse). Once the piece that completes the declared Content-Length is out, the
    master sends the worker nothing more than the request: no Abort waking it for nothing.
    The request itself goes through the ring in shared memory, and the queue's doorbell is a
    futex, so the master sends the worker nothing at all."""
    r, log = _traced_by_strace(server, "sendmsg,sendto",
                               lambda: server.get("/stream?n=1&delay=0&length=1"))
    assert (r.status, r.body, r.header("Content-Length")) == (200, b"chunk-0\n", "8")
    assert "sendmsg(" not in log, log[-3000:]
    assert "sendto(" not in log, log[-3000:]


def test_the_response_does_not_wait_for_the_iterables_close(server, tmp_path):
    """Clean-up in close() (Werkzeug's call_on_close, Django's request_finished) runs after
    the client has its whole response."""
    record = tmp_path / "record.txt"
    started = time.monotonic()
    r = server.get(f"/close?record={record}&n=2&length=1&close_sleep=2", timeout=10)
    took = time.monotonic() - started
    assert (r.status, r.body) == (200, b"chunk-0\nchunk-1\n")
    assert took < 1.5, f"the response waited {took:.1f} s for close()"
    wait_until(lambda: "close" in read_lines(record), 10, message="close() to be called")


def test_file_wrapper_file_like_without_fileno(server, tmp_path):
    path = tmp_path / "payload.bin"
    record = tmp_path / "record.txt"
    data = os.urandom(100_003)
    path.write_bytes(data)
    r = server.get(f"/file?path={path}&nofileno=1&record={record}")
    assert r.status == 200
    assert r.body == data
    # the file wrapper's close() closes the file-like object
    wait_until(lambda: "filelike-close" in read_lines(record), 10, message="filelike.close()")


def _payload(size: int) -> bytes:
    """Random bytes with a newline every ~200 bytes (exercises readline)."""
    data = bytearray(os.urandom(size))
    for i in range(150, size, 199):
        data[i] = 0x0A
    return bytes(data)


@pytest.mark.parametrize("mode", ["readn", "read"])
def test_echo_10mib_post(server, mode):
    body = os.urandom(10 * 1024 * 1024)
    r = server.http("POST", f"/echo?mode={mode}", body=body, headers={"Content-Type": "application/octet-stream"}, timeout=60)
    assert r.status == 200, r
    assert r.header("X-Echo-Mode") == mode
    assert len(r.body) == len(body)
    assert hashlib.sha256(r.body).hexdigest() == hashlib.sha256(body).hexdigest()


@pytest.mark.parametrize("mode", ["readline", "readline_n", "readlines", "iter"])
def test_echo_line_modes(server, mode):
    body = _payload(1024 * 1024 + 17)
    r = server.http("POST", f"/echo?mode={mode}", body=body, timeout=60)
    assert r.status == 200, r
    assert hashlib.sha256(r.body).hexdigest() == hashlib.sha256(body).hexdigest()


def _chunked(chunks: list[bytes]) -> bytes:
    out = b""
    for i, c in enumerate(chunks):
        ext = b";note=x" if i == 1 else b""
        out += f"{len(c):X}".encode() + ext + b"\r\n" + c + b"\r\n"
    return out + b"0\r\n\r\n"


@pytest.mark.parametrize("mode", ["readn", "read", "readline", "readline_n", "readlines", "iter"])
def test_chunked_upload(server, mode):
    chunks = [b"first line\n", _payload(70_000), b"x", _payload(5000), b"last, no newline"]
    body = b"".join(chunks)
    with server.raw(timeout=30) as conn:
        head = (
            f"POST /echo?mode={mode} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            "Content-Type: application/octet-stream\r\nTransfer-Encoding: chunked\r\n\r\n"
        ).encode()
        conn.send(head)
        encoded = _chunked(chunks)
        # several writes, cutting across chunk boundaries
        for start in range(0, len(encoded), 30_000):
            conn.send(encoded[start : start + 30_000])
            time.sleep(0.02)
        resp = conn.read_response(timeout=30)
    assert resp.status == 200, resp
    assert resp.body == body


def test_head_has_no_body_and_get_headers(server):
    get = server.get("/hello")
    with server.raw() as conn:
        # HEAD then GET on one connection: any stray body bytes would break the GET
        conn.send(
            b"HEAD /hello HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
            b"GET /hello HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
        )
        head = conn.read_response(method="HEAD")
        after = conn.read_response()
    assert head.status == 200
    assert head.body == b""
    assert head.header("Content-Length") == get.header("Content-Length") == "14"
    assert head.header("Content-Type") == get.header("Content-Type")
    assert after.status == 200
    assert after.body == b"Hello, world!\n"


@pytest.mark.parametrize("method, status", [("HEAD", "200 OK"), ("GET", "304 Not Modified"),
                                            ("GET", "204 No Content")])
def test_a_bodiless_response_may_declare_a_length(server, method, status):
    """RFC 9110 §8.6: a response to HEAD, and a 204 or 304, may carry the Content-Length the
    body would have had. Its empty body is not a short one: no 500, no cut connection."""
    query = "status=" + status.replace(" ", "%20")
    with server.raw() as conn:
        conn.send(get_request(f"/declared_empty?{query}", method=method))
        r = conn.read_response(method="HEAD" if method == "HEAD" else "GET")
        assert r.status == int(status[:3]), r
        assert r.body == b""
        conn.send(get_request("/hello"))
        assert conn.read_response().body == b"Hello, world!\n"
        assert not conn.eof


def test_head_of_streaming_response(server):
    with server.raw() as conn:
        conn.send(
            b"HEAD /stream?n=3&delay=0 HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
            b"GET /hello HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
        )
        head = conn.read_response(method="HEAD")
        after = conn.read_response()
    assert head.status == 200
    assert head.body == b""
    assert after.status == 200
    assert after.body == b"Hello, world!\n"


def test_pipelining_three_requests_in_one_write(server):
    with server.raw() as conn:
        # the first is the slowest: the answers must still come back in order
        conn.send(
            b"GET /slow?sleep=0.3 HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
            b"POST /echo HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 6\r\n\r\nsecond"
            b"GET /stream?n=2&delay=0 HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
        )
        first = conn.read_response()
        second = conn.read_response()
        third = conn.read_response()
        assert not conn.eof
    assert first.status == 200 and b'"counter"' in first.body, first
    assert (second.status, second.body) == (200, b"second")
    assert (third.status, third.body) == (200, b"chunk-0\nchunk-1\n")


def test_unread_request_bodies_are_discarded(server):
    """The app ignores the bodies: the server must still frame the next requests."""
    with server.raw() as conn:
        conn.send(
            b"POST /hello HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 5\r\n\r\nxxxxx"
            b"POST /hello HTTP/1.1\r\nHost: 127.0.0.1\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n"
            b"GET /hello HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
        )
        for _ in range(3):
            r = conn.read_response()
            assert (r.status, r.body) == (200, b"Hello, world!\n")


@pytest.mark.parametrize("status", ["200 OK", "201 Created", "418 I'm a teapot", "299 Custom Reason"])
@pytest.mark.parametrize("container", ["list", "tuple", "generator"])
def test_status_and_headers_are_passed_through(server, status, container):
    if container != "list" and server.validated:
        pytest.skip("PEP 3333 wants a list (the validator says so); corral takes any iterable")
    with server.raw() as conn:
        conn.send(get_request(f"/headers?as={container}&status=" + urllib.parse.quote(status)))
        r = conn.read_response()
    assert r.status == int(status[:3])
    assert r.body == b"headers\n"
    # repeated headers stay separate; values keep their bytes (latin-1)
    assert r.header_all("Set-Cookie") == ["a=1; Path=/", "b=2; Path=/; HttpOnly"], r.headers
    assert r.header("X-Custom-Header") == "Value With  Spaces"
    assert r.header("X-Latin") == "caf\u00e9"
    assert len(r.header_all("Server")) == 1 and len(r.header_all("Date")) == 1, r.headers


@pytest.mark.parametrize("status", ["204 No Content", "304 Not Modified"])
def test_statuses_without_body(server, status):
    with server.raw() as conn:
        conn.send(get_request("/headers?status=" + urllib.parse.quote(status)) + get_request("/hello"))
        r = conn.read_response()
        after = conn.read_response()
    assert r.status == int(status[:3])
    assert r.header("Transfer-Encoding") is None, r.headers
    assert r.header("Content-Length") in (None, "0"), r.headers
    assert (after.status, after.body) == (200, b"Hello, world!\n")


def test_keepalive_sequential_requests(server):
    with server.raw() as conn:
        for i in range(5):
            conn.send(f"POST /echo HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 1\r\n\r\n{i}".encode())
            r = conn.read_response()
            assert (r.status, r.body) == (200, str(i).encode())
        assert not conn.eof


def test_exc_info_before_headers_replaces_response(server):
    r = server.get("/exc_before")
    assert r.status == 500
    assert r.body == b"custom error page\n"


@pytest.mark.app_errors
def test_exc_info_after_headers_reraises(server):
    mark = server.mark()
    with server.raw() as conn:
        conn.send(get_request("/exc_after"))
        data = conn.read_until_close(timeout=10)
        assert conn.eof, f"connection not closed after the app failed mid-response: {data!r}"
    assert data.startswith(b"HTTP/1.1 200"), data
    assert b"partial body" in data
    assert b"must never be sent" not in data
    # the response must not look complete: the chunked body is cut short
    assert not data.endswith(b"0\r\n\r\n"), data
    server.wait_for_stderr("exc-after-token", since=mark)
    assert server.get("/hello").status == 200


def test_close_called_after_normal_response(server, tmp_path):
    record = tmp_path / "record.txt"
    r = server.get(f"/close?record={record}&mode=normal")
    assert r.status == 200
    assert r.body == b"chunk-0\nchunk-1\nchunk-2\n"
    wait_until(lambda: "close" in read_lines(record), 10, message="close() to be called")
    time.sleep(0.2)
    assert read_lines(record) == ["exhausted", "close"]


@pytest.mark.app_errors
def test_close_called_when_app_raises_mid_stream(server, tmp_path):
    record = tmp_path / "record.txt"
    mark = server.mark()
    with server.raw() as conn:
        conn.send(get_request(f"/close?record={record}&mode=raise&delay=0.3"))
        data = conn.read_until_close(timeout=10)
    assert data.startswith(b"HTTP/1.1 200") and b"chunk-0" in data, data
    assert not data.endswith(b"0\r\n\r\n"), "a failed response must not look complete"
    wait_until(lambda: "close" in read_lines(record), 10, message="close() to be called")
    assert read_lines(record).count("close") == 1
    server.wait_for_stderr("close-raise-token", since=mark)
    assert server.get("/hello").status == 200


def test_close_called_when_client_disconnects(server, tmp_path):
    record = tmp_path / "record.txt"
    conn = server.raw()
    try:
        conn.send(get_request(f"/close?record={record}&mode=long"))
        deadline = time.monotonic() + 10
        while b"chunk-0" not in conn.buf:
            assert conn.fill(deadline) and not conn.eof, conn.buf
    finally:
        conn.close()
    # the generator would run for 30 s; the server must notice the disconnect
    wait_until(lambda: "close" in read_lines(record), 10, message="close() after the client left")
    assert "exhausted" not in read_lines(record)
    assert read_lines(record).count("close") == 1
    assert server.get("/hello").status == 200


@pytest.mark.app_errors
def test_app_exception_is_500_with_traceback(server):
    token = uuid.uuid4().hex
    mark = server.mark()
    r = server.get(f"/raise?token={token}")
    assert r.status == 500
    assert r.header("Server", "").startswith("corral") and r.header("Date"), r.headers
    assert token.encode() not in r.body, "the traceback must not leak to the client"
    text = server.wait_for_stderr(f"RuntimeError: boom {token}", since=mark)
    assert "Traceback" in text
    assert re.search(
        r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z ERROR \[pid \d+\] \[req \d+\] ", text, re.M
    ), f"no ERROR line in the documented format:\n{text}"
    assert server.get("/hello").status == 200


def test_wsgi_errors_go_to_error_log(server):
    token = uuid.uuid4().hex
    mark = server.mark()
    r = server.get(f"/errors?token={token}")
    assert r.status == 200
    server.wait_for_stderr(f"wsgi.errors says {token}", since=mark)


def test_hop_by_hop_headers_are_dropped_but_connection_close(server):
    """PEP 3333 forbids them (the validator refuses them), but an app that passes on an
    upstream response's headers works under gunicorn, which drops them: so does corral,
    warning once. Unlike gunicorn, it keeps Connection: close, which closes the connection
    after the response."""
    if server.validated:
        pytest.skip("wsgiref.validate refuses hop-by-hop headers")
    mark = server.mark()
    with server.raw() as conn:
        conn.send(get_request("/hop") + get_request("/hello"))
        r = conn.read_response()
        assert (r.status, r.body, r.header("X-Kept")) == (200, b"hop\n", "yes"), r
        assert r.header("Keep-Alive") is None and r.header("Transfer-Encoding") is None, r.raw_head
        assert (r.header("Connection") or "keep-alive").lower() == "keep-alive", r.raw_head
        assert conn.read_response().body == b"Hello, world!\n", "the connection stays open"
        conn.send(get_request("/hop?close=1"))
        r = conn.read_response()
        assert (r.status, r.header("Connection")) == (200, "close"), r.raw_head
        assert conn.wait_closed(), "Connection: close from the app closes the connection"
    server.wait_for_stderr("hop-by-hop header", since=mark)


def test_an_unended_wsgi_errors_line_is_logged_with_its_request(server):
    """A line written without a newline or flush() is logged when its request ends (not when
    the slot's next request comes), tagged with that request's id, and only once."""
    token = uuid.uuid4().hex
    mark = server.mark()
    r = server.get(f"/errors?token={token}&partial=1")
    assert r.status == 200
    request_id = r.body.split()[1].decode()
    server.wait_for_stderr(re.compile(rf"\[req {request_id}\] wsgi.errors says {token}"), since=mark)
    for _ in range(4):
        assert server.get("/hello").status == 200
    assert server.stderr_since(mark).count(token) == 1


def test_a_partly_read_body_stays_with_its_request(server):
    """What one request left unread of its body never reaches the next request's input."""
    with server.raw() as conn:
        for i in range(6):
            body = f"first {i}\nleft unread {i}\n".encode()
            conn.send(
                f"POST /echo?mode=first_line HTTP/1.1\r\nHost: x\r\nContent-Length: {len(body)}\r\n\r\n".encode()
                + body
            )
            assert conn.read_response().body == f"first {i}\n".encode()
            body = f"whole {i}\n".encode()
            conn.send(
                f"POST /echo?mode=readn HTTP/1.1\r\nHost: x\r\nContent-Length: {len(body)}\r\n\r\n".encode()
                + body
            )
            assert conn.read_response().body == body


def test_validator_accepts_environ_of_every_kind_of_request(server):
    """GET with query, POST with a body, chunked POST, HEAD: environ passes check_environ."""
    assert server.get("/environ?a=1&b=2").status == 200
    assert server.http("POST", "/environ", body=b"x=1", headers={"Content-Type": "application/x-www-form-urlencoded"}).status == 200
    assert server.http("HEAD", "/environ").status == 200
    with server.raw() as conn:
        conn.send(b"POST /environ HTTP/1.1\r\nHost: 127.0.0.1\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n")
        assert conn.read_response().status == 200
    for method in ("PUT", "DELETE", "PATCH", "OPTIONS"):
        assert server.http(method, "/environ", body=b"").status == 200, method
