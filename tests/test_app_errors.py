"""Apps that break the WSGI rules: 500 (or a cut connection once the headers are
out), an error in the log, and a server that stays healthy."""

from __future__ import annotations

import re
import time

import pytest

from support import APPS, Incomplete, get_request, parse_response

ERROR_LINE = re.compile(r"Z ERROR \[pid \d+\]")


@pytest.fixture(scope="module")
def server(module_corral):
    c = module_corral(f"{APPS / 'bad_app.py'}", "--mpm", "prefork", "-w", "1")
    yield c
    c.kill()


def _outcome(conn, timeout=10.0):
    """('response', Response) for a complete response, else ('cut', raw bytes)."""
    data = b""
    try:
        return "response", conn.read_response(timeout=timeout)
    except ConnectionError:
        data = conn.buf
    return "cut", data


def _healthy(server):
    r = server.get("/hello")
    assert (r.status, r.body) == (200, b"Hello, world!\n")


@pytest.mark.parametrize(
    "path", ["/none", "/no_start", "/double_start", "/str_body", "/bad_status", "/header_injection", "/non_latin1"]
)
def test_broken_app_gets_500(server, path):
    mark = server.mark()
    with server.raw() as conn:
        conn.send(get_request(path))
        kind, result = _outcome(conn)
    if kind == "response":
        assert result.status == 500, result
        assert result.header("X-Injected") is None and b"X-Injected" not in result.raw_head
    else:
        # acceptable only if the response was cut short after the head
        assert b"X-Injected" not in result, result
    server.wait_for_stderr(ERROR_LINE, since=mark)
    _healthy(server)


def test_body_shorter_than_content_length_closes_the_connection(server):
    with server.raw() as conn:
        conn.send(get_request("/short_body"))
        data = conn.read_until_close(timeout=3)
        eof = conn.eof
    # Either (nothing sent yet) a complete 500, after which the connection may stay open, or the
    # head and the 10 bytes, cut short by closing the connection. An empty reply tells the
    # client nothing and is not accepted.
    assert data, "the connection was closed without any response"
    try:
        resp, _ = parse_response(data)
        assert resp.status == 500, resp  # only a 500 may be complete
    except Incomplete:
        assert eof, f"connection left open with an incomplete body: {data!r}"
        assert data.startswith(b"HTTP/1.1 200") and data.endswith(b"0123456789"), data
    _healthy(server)


def test_body_longer_than_content_length_is_not_sent(server):
    with server.raw() as conn:
        conn.send(get_request("/long_body") + get_request("/hello"))
        first = conn.read_response()
        assert first.status in (200, 500), first
        if first.status == 200:
            assert first.body == b"01234"
        # next on the wire: either a correct response or the end of the connection,
        # never the extra bytes "5678..."
        try:
            second = conn.read_response(timeout=5)
        except ConnectionError:
            assert conn.buf == b"", conn.buf
        else:
            assert (second.status, second.body) == (200, b"Hello, world!\n")
    _healthy(server)


@pytest.mark.parametrize("what", ["write", "input"])
def test_objects_kept_past_their_request_cannot_touch_a_later_one(server, what):
    """write() and wsgi.input kept by one request raise when a later request uses them: they
    neither write into its response nor read its body, and the worker survives."""
    mark = server.mark()
    assert server.get("/keep").body == b"kept\n"
    r = server.http("POST", f"/use_kept?what={what}", body=b"SECRET")
    assert r.status == 200, r
    lines = r.body.split(b"\n")
    assert lines[0] == b"own" and lines[-2:] == [b"end", b""], r.body
    assert re.fullmatch(rb"RuntimeError: request \d+ has ended: .*", lines[1]), r.body
    assert b"INJECTED" not in r.body and b"SECRET" not in r.body, r.body
    assert "broke the protocol" not in server.stderr_since(mark)
    _healthy(server)


@pytest.mark.parametrize("what", ["write", "input"])
def test_kept_objects_refuse_at_once_while_the_worker_is_idle(server, what):
    """Used by a thread while the worker waits for work, they raise at once: they do not wait
    for the worker's next request."""
    assert server.get("/keep").body == b"kept\n"
    assert server.get(f"/use_kept_later?what={what}").body == b"started\n"
    time.sleep(1.5)  # the thread has used the kept object; the worker is idle meanwhile
    result = server.get("/kept_result").body
    assert re.fullmatch(rb"RuntimeError: request \d+ has ended: .*", result), result
    _healthy(server)
