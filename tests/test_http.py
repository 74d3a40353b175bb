"""HTTP/1.x handling in the master: malformed input, limits, HTTP/1.0, 100-continue.

Every malformed request is sent on its own raw connection; then the test proves
the server is still healthy and that the app was never called (the fixture app
appends every call to a log file).
"""

from __future__ import annotations

import re
import signal
import threading
import time

import pytest

from support import (
    APPS,
    CALL_LOG_ENV,
    IPC_PACKET,
    RawConnection,
    parse_response,
    raw_request,
    read_lines,
)

LIMIT_REQUEST_LINE = 256
LIMIT_FIELDS = 20
LIMIT_FIELD_SIZE = 512
MAX_BODY = 1024 * 1024


@pytest.fixture(scope="module")
def call_log(tmp_path_factory):
    return tmp_path_factory.mktemp("calllog") / "calls.log"


@pytest.fixture(scope="module")
def server(module_corral, call_log):
    c = module_corral(
        f"{APPS / 'wsgi_app.py'}:application",
        "--mpm", "prefork", "-w", "1",
        "--limit-request-line", LIMIT_REQUEST_LINE,
        "--limit-request-fields", LIMIT_FIELDS,
        "--limit-request-field-size", LIMIT_FIELD_SIZE,
        "--max-body", "1MiB",
        "--header-timeout", "1s",
        env={CALL_LOG_ENV: call_log},
    )
    yield c
    c.kill()


def _healthy(server, call_log, before):
    """A normal request works, and it is the only call the app saw."""
    r = server.get("/hello")
    assert (r.status, r.body) == (200, b"Hello, world!\n")
    assert read_lines(call_log) == before + ["GET /hello"], "the app was called by the malformed request"


def _first_status(data: bytes):
    """Status of the first response in data, or None if the server sent nothing."""
    if not data:
        return None
    m = re.match(rb"HTTP/1\.[01] (\d{3})", data)
    assert m, f"not an HTTP response: {data[:300]!r}"
    return int(m.group(1))


H = "Host: 127.0.0.1\r\n"

MALFORMED = {
    # name: (request bytes, accepted statuses; None = closed without a response)
    "garbage-request-line": (b"THIS IS NOT HTTP\r\n\r\n", {400}),
    "bad-version": (f"GET /hello HTTP/9.9x\r\n{H}\r\n".encode(), {400, 505}),
    "tls-client-hello": (b"\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03" + bytes(32) + b"\r\n\r\n", {400, None}),
    "request-line-too-long": (f"GET /{'a' * (LIMIT_REQUEST_LINE + 100)} HTTP/1.1\r\n{H}\r\n".encode(), {414}),
    "too-many-headers": (
        ("GET /hello HTTP/1.1\r\n" + H + "".join(f"X-H{i}: v\r\n" for i in range(LIMIT_FIELDS + 10)) + "\r\n").encode(),
        {431},
    ),
    "header-too-large": (f"GET /hello HTTP/1.1\r\n{H}X-Big: {'b' * (LIMIT_FIELD_SIZE * 2)}\r\n\r\n".encode(), {431}),
    "header-without-colon": (f"GET /hello HTTP/1.1\r\n{H}NoColonHere\r\n\r\n".encode(), {400}),
    "space-before-colon": (f"GET /hello HTTP/1.1\r\n{H}X-Bad : v\r\n\r\n".encode(), {400}),
    "obs-fold": (f"GET /hello HTTP/1.1\r\n{H}X-Fold: a\r\n b\r\n\r\n".encode(), {400}),
    "content-length-and-transfer-encoding": (
        f"POST /echo HTTP/1.1\r\n{H}Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n".encode(),
        {400},
    ),
    "two-different-content-lengths": (
        f"POST /echo HTTP/1.1\r\n{H}Content-Length: 5\r\nContent-Length: 6\r\n\r\nhello!".encode(),
        {400},
    ),
    "content-length-not-a-number": (f"POST /echo HTTP/1.1\r\n{H}Content-Length: abc\r\n\r\nhello".encode(), {400}),
    "content-length-negative": (f"POST /echo HTTP/1.1\r\n{H}Content-Length: -5\r\n\r\nhello".encode(), {400}),
    "transfer-encoding-xchunked": (
        f"POST /echo HTTP/1.1\r\n{H}Transfer-Encoding: xchunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n".encode(),
        set(range(400, 500)) | {501},
    ),
    "transfer-encoding-chunked-identity": (
        f"POST /echo HTTP/1.1\r\n{H}Transfer-Encoding: chunked, identity\r\n\r\n5\r\nhello\r\n0\r\n\r\n".encode(),
        set(range(400, 500)) | {501},
    ),
    "invalid-chunk-size": (
        f"POST /echo HTTP/1.1\r\n{H}Transfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n".encode(),
        {400, None},
    ),
    "body-over-max-body": (
        f"POST /echo HTTP/1.1\r\n{H}Content-Length: {MAX_BODY + 1}\r\n\r\n".encode(),
        {413},
    ),
}


@pytest.mark.parametrize("name", list(MALFORMED))
def test_malformed_request(server, call_log, name):
    data, accepted = MALFORMED[name]
    before = read_lines(call_log)
    with RawConnection(server.port, timeout=10) as conn:
        conn.send(data)
        reply = conn.read_until_close(timeout=5)
    status = _first_status(reply)
    assert status in accepted, f"{name}: got {status} ({reply[:300]!r}), expected one of {sorted(accepted, key=str)}"
    if status is not None:
        assert reply.startswith(b"HTTP/1."), reply
    time.sleep(0.1)
    _healthy(server, call_log, before)


def test_ambiguous_framing_in_a_pipelined_head_is_refused(server, call_log):
    """A CL+TE head queued behind another request is judged too; a body that merely
    looks like such a head is not."""
    before = read_lines(call_log)
    lookalike = f"GET / HTTP/1.1\r\n{H}Content-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n"
    first = f"POST /echo HTTP/1.1\r\n{H}Content-Length: {len(lookalike)}\r\n\r\n{lookalike}"
    second = f"POST /echo HTTP/1.1\r\n{H}Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n"
    with RawConnection(server.port, timeout=10) as conn:
        conn.send((first + second).encode())
        reply = conn.read_until_close(timeout=5)
    echoed, used = parse_response(reply, "POST")
    assert (echoed.status, echoed.body) == (200, lookalike.encode())
    assert _first_status(reply[used:]) == 400, reply
    assert read_lines(call_log) == before + ["POST /echo"]
    _healthy(server, call_log, before + ["POST /echo"])


def test_error_responses_carry_server_and_date(server):
    """Every response, also the master's own error responses, has Server and Date."""
    missing = []
    for name, (data, _accepted) in MALFORMED.items():
        reply = raw_request(server.port, data, timeout=5)
        if not reply:
            continue
        resp, _ = parse_response(reply, eof=True)
        if not resp.header("Server", "").startswith("corral") or not resp.header("Date"):
            missing.append(f"{name}: {resp.status} {resp.headers}")
    assert not missing, "responses without 'Server: corral' or 'Date':\n" + "\n".join(missing)


def test_request_line_under_the_limit_is_accepted(server):
    path = "/hello?" + "q" * (LIMIT_REQUEST_LINE - len("GET /hello? HTTP/1.1") - 8)
    r = server.get(path)
    assert r.status == 200


def test_body_over_max_body_sent_in_full(server, call_log):
    """The client sends the whole too-large body at once: still a 413 it can read."""
    before = read_lines(call_log)
    with RawConnection(server.port, timeout=10) as conn:
        conn.send(f"POST /echo HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: {MAX_BODY + 1}\r\n\r\n".encode())
        try:
            conn.send(b"x" * (MAX_BODY + 1))
        except (BrokenPipeError, ConnectionResetError, TimeoutError):
            pass  # the server may stop reading early; its 413 must still arrive
        reply = conn.read_until_close(timeout=5)
    assert _first_status(reply) == 413, reply[:300]
    _healthy(server, call_log, before)


# Larger than the loopback socket buffers on both sides: a server that closes before reading it
# all leaves input unread, and the kernel then answers with a reset.
UNREAD = 24 * 1024 * 1024


def test_a_413_reaches_a_client_that_sends_its_whole_body_before_reading(server, call_log):
    """Like http.client and requests: the whole body, then the response. corral stops reading
    at the limit and answers 413; it must then half-close and drain, not close, or the client's
    send fails on a reset and the 413 is lost (RFC 9112 section 9.6, lingering close)."""
    before = read_lines(call_log)
    with RawConnection(server.port, timeout=20) as conn:
        conn.send(f"POST /echo HTTP/1.1\r\n{H}Content-Length: {UNREAD}\r\n\r\n".encode())
        conn.send(b"x" * UNREAD)  # a reset here is the bug
        reply = conn.read_until_close(timeout=5)
    assert _first_status(reply) == 413, reply[:300]
    _healthy(server, call_log, before)


def test_a_response_reaches_a_client_still_sending_a_body_the_app_did_not_read(corral):
    """The app answers without reading a large upload; the client sends it all, then reads."""
    c = corral(f"{APPS / 'wsgi_app.py'}:application", "--mpm", "prefork", "-w", "1")
    for _ in range(3):
        with RawConnection(c.port, timeout=20) as conn:
            conn.send(f"POST /hello HTTP/1.1\r\n{H}Content-Length: {UNREAD}\r\n\r\n".encode())
            conn.send(b"x" * UNREAD)
            reply = conn.read_until_close(timeout=5)
        resp, _ = parse_response(reply, eof=True)
        assert (resp.status, resp.body) == (200, b"Hello, world!\n")


def test_a_lingering_connection_whose_client_goes_quiet_is_closed(server):
    """After a 413 the server half-closes (the client reads the end of its stream) and drains
    while the client sends; once the client has been quiet for 2 s the socket is closed, and
    the kernel resets whatever the client sends after that."""
    with RawConnection(server.port, timeout=10) as conn:
        conn.send(f"POST /echo HTTP/1.1\r\n{H}Content-Length: {MAX_BODY * 4}\r\n\r\n".encode())
        conn.send(b"x" * (MAX_BODY * 2))
        assert conn.read_response(timeout=5).status == 413
        conn.read_until_close(timeout=5)
        assert conn.eof, "the server half-closed after its response"
        conn.send(b"x" * 1000)  # still lingering: drained, no reset
        time.sleep(3.5)
        with pytest.raises((BrokenPipeError, ConnectionResetError)):
            for _ in range(20):  # the first send after the close draws the reset
                conn.send(b"x")
                time.sleep(0.05)


def test_a_stop_shortens_the_linger_of_a_client_that_keeps_sending(corral):
    """A client that keeps sending after its 413 is lingered on for up to 30 s, but a graceful
    stop gives it 2 s more at most."""
    c = corral(f"{APPS / 'wsgi_app.py'}:application", "--mpm", "prefork", "-w", "1", "--max-body", "1KiB")
    with RawConnection(c.port, timeout=10) as conn:
        conn.send(f"POST /echo HTTP/1.1\r\n{H}Content-Length: {UNREAD}\r\n\r\n".encode())
        conn.send(b"x" * 4096)
        assert conn.read_response(timeout=5).status == 413
        sending = threading.Event()
        sending.set()

        def trickle():  # a byte every 0.2 s, so the 2 s of quiet never pass
            while sending.is_set():
                try:
                    conn.sock.send(b"x")
                except OSError:
                    return
                time.sleep(0.2)

        t = threading.Thread(target=trickle, daemon=True)
        t.start()
        try:
            time.sleep(1)
            started = time.monotonic()
            assert c.stop(timeout=40) == 0
            took = time.monotonic() - started
        finally:
            sending.clear()
            t.join(5)
    assert took < 10, f"the stop waited {took:.1f}s for a lingering client"


def test_idle_keepalive_connections_do_not_linger_at_a_stop(corral):
    """A stop closes idle keep-alive connections at once: pooling clients never close them, so a
    linger would hold the stop for its whole quiet time."""
    c = corral(f"{APPS / 'wsgi_app.py'}:application", "--mpm", "prefork", "-w", "1")
    conns = [RawConnection(c.port, timeout=10) for _ in range(3)]
    try:
        for conn in conns:
            conn.send(b"GET /hello HTTP/1.1\r\nHost: x\r\n\r\n")
            assert conn.read_response(timeout=5).status == 200
        started = time.monotonic()
        c.signal(signal.SIGTERM)
        assert c.wait(10) == 0  # the clients hold their connections open all along
        took = time.monotonic() - started
        for conn in conns:
            conn.read_until_close(timeout=5)
            assert conn.eof
    finally:
        for conn in conns:
            conn.close()
    assert took < 1.5, f"the stop took {took:.1f}s with idle keep-alive connections open"


def test_incomplete_head_times_out_with_408(server, call_log):
    before = read_lines(call_log)
    with RawConnection(server.port, timeout=10) as conn:
        conn.send(b"GET /hello HTTP/1.1\r\nHost: 127.0.0.1\r\n")  # no final empty line
        started = time.monotonic()
        reply = conn.read_until_close(timeout=6)
        elapsed = time.monotonic() - started
    assert _first_status(reply) == 408, f"after {elapsed:.1f}s: {reply!r}"
    resp, _ = parse_response(reply, eof=True)
    assert resp.header("Server", "").startswith("corral/") and resp.header("Date"), resp.headers
    assert b"(C1005)" in resp.body
    _healthy(server, call_log, before)


def test_body_over_max_body_with_100_continue_is_refused_before_the_body(server, call_log):
    before = read_lines(call_log)
    with RawConnection(server.port, timeout=10) as conn:
        conn.send(
            f"POST /echo HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: {MAX_BODY * 2}\r\n"
            "Expect: 100-continue\r\n\r\n".encode()
        )
        first = conn.read_response(interim=True, timeout=5)
    assert first.status == 413, first
    _healthy(server, call_log, before)


def test_expect_100_continue(server):
    body = b"hello world"
    with RawConnection(server.port, timeout=10) as conn:
        conn.send(
            f"POST /echo HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: {len(body)}\r\n"
            "Expect: 100-continue\r\n\r\n".encode()
        )
        interim = conn.read_response(interim=True, timeout=5)
        assert interim.status == 100, interim
        assert interim.raw_head.startswith(b"HTTP/1.1 100 Continue\r\n"), interim.raw_head
        conn.send(body)
        final = conn.read_response(timeout=10)
    assert (final.status, final.body) == (200, body)


def test_http10_request_closes_the_connection(server):
    with RawConnection(server.port, timeout=10) as conn:
        conn.send(b"GET /hello HTTP/1.0\r\n\r\n")
        data = conn.read_until_close(timeout=5)
        assert conn.eof, "HTTP/1.0 without keep-alive: the server must close the connection"
    resp, _ = parse_response(data, eof=True)
    assert (resp.status, resp.body) == (200, b"Hello, world!\n")


def test_http10_keepalive_when_asked(server):
    with RawConnection(server.port, timeout=10) as conn:
        for _ in range(2):
            conn.send(b"GET /hello HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
            resp = conn.read_response(timeout=5)
            assert (resp.status, resp.body) == (200, b"Hello, world!\n")
            assert resp.header("Content-Length") == "14"
        assert not conn.eof


def test_http10_streaming_is_not_chunked(server):
    data = raw_request(server.port, b"GET /stream?n=3&delay=0 HTTP/1.0\r\n\r\n", timeout=5)
    resp, _ = parse_response(data, eof=True)
    assert resp.status == 200
    assert "chunked" not in (resp.header("Transfer-Encoding") or "").lower()
    assert resp.body == b"chunk-0\nchunk-1\nchunk-2\n"


def test_connection_close_is_honoured(server):
    with RawConnection(server.port, timeout=10) as conn:
        conn.send(b"GET /hello HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        data = conn.read_until_close(timeout=5)
        assert conn.eof
    resp, _ = parse_response(data, eof=True)
    assert resp.status == 200


# hyper's head buffer is --limit-request-line + 64 KiB; with the default line limit every head
# hyper accepts fits one IPC packet. A longer line limit lets heads bigger than a packet through.
BIG_BUFFER = ("--limit-request-line", "32768")
BIG_HEADERS = (IPC_PACKET - 7000) // 7411  # lines of 7411 bytes that leave room for one more


def test_a_head_within_every_limit_but_too_big_for_a_worker_is_431(corral):
    """Each header under --limit-request-field-size and the head under hyper's buffer, yet
    together larger than one IPC packet. It is refused before a worker is involved; no worker
    may be retired for it (that was a way for any client to kill workers)."""
    c = corral(f"{APPS / 'wsgi_app.py'}:application", "--mpm", "prefork", "-w", "1", *BIG_BUFFER)
    pid = c.get("/slow?sleep=0").json()["pid"]
    big = "".join(f"X-Big-{i}: {'b' * 7400}\r\n" for i in range(BIG_HEADERS + 2))
    assert len(big) > IPC_PACKET
    mark = c.mark()
    with RawConnection(c.port, timeout=10) as conn:
        conn.send(f"GET /hello HTTP/1.1\r\n{H}{big}\r\n".encode())
        r = conn.read_response(timeout=10)
    assert r.status == 431, r
    assert c.get("/slow?sleep=0").json()["pid"] == pid, "a worker was retired for a client's head"
    assert "replacing it" not in c.stderr_since(mark)


def test_heads_that_fill_an_ipc_packet_to_the_last_bytes(corral):
    """A GET's head and the end of its (empty) body share a packet: a head that fits a packet
    by fewer bytes than that end takes must not push the packet past its limit (the worker would
    get a truncated packet, and the client a 502). Sweeps the head size up to the 431 limit."""
    c = corral(f"{APPS / 'wsgi_app.py'}:application", "--mpm", "prefork", "-w", "1", *BIG_BUFFER)
    pid = c.get("/slow?sleep=0").json()["pid"]
    fixed = "".join(f"X-Big-{i}: {'b' * 7400}\r\n" for i in range(BIG_HEADERS))

    def status(last_len):
        with RawConnection(c.port, timeout=10) as conn:
            conn.send(f"GET /hello HTTP/1.1\r\n{H}{fixed}X-Last: {'l' * last_len}\r\n\r\n".encode())
            return conn.read_response(timeout=10).status

    low, high = 0, 8000  # 200 at low, 431 at high: find the first length that is refused
    assert (status(low), status(high)) == (200, 431)
    while high - low > 1:
        mid = (low + high) // 2
        if status(mid) == 200:
            low = mid
        else:
            high = mid
    statuses = {n: status(n) for n in range(high - 40, high + 2)}
    assert all(statuses[n] == 200 for n in range(high - 40, high)), statuses
    assert c.get("/slow?sleep=0").json()["pid"] == pid, "a worker was retired for a client's head"
