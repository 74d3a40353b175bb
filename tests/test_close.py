"""The iterable's close() runs after the client has its whole response.

Frameworks clean up in close() (Werkzeug's call_on_close, Django's request_finished). The
worker tells the master the body is complete before calling it; the worker stays busy until
close() returns. These tests pin what the client, the next request, a crash inside close() and
a graceful stop each see.
"""

from __future__ import annotations

import signal
import time

import pytest

from support import APPS, IPC_PACKET, MPMS, get_request, read_lines, wait_until

APP = f"{APPS / 'wsgi_app.py'}:application"
ONE_WORKER = ("--mpm", "prefork", "-w", "1")
BODY = b"chunk-0\nchunk-1\n"


def _get_whole_two_chunks(conn, query):
    """GET /close?n=2&<query> on ``conn``; its response must be the whole two-chunk body."""
    conn.send(get_request(f"/close?n=2&{query}"))
    r = conn.read_response()
    assert (r.status, r.body) == (200, BODY)


@pytest.fixture(scope="module")
def one_worker(module_corral):
    return module_corral(APP, *ONE_WORKER)


@pytest.mark.parametrize("length", ["1", "0"], ids=["content-length", "chunked"])
def test_the_response_is_whole_before_close_runs(one_worker, tmp_path, length):
    record = tmp_path / "record.txt"
    r = one_worker.get(f"/close?record={record}&n=2&length={length}&close_sleep=2", timeout=10)
    assert (r.status, r.body) == (200, BODY)
    assert "close" not in read_lines(record), "the response waited for the iterable's close()"
    wait_until(lambda: "close" in read_lines(record), 10, message="close() to be called")


def test_requests_sent_while_the_worker_is_in_close_get_their_own_responses(one_worker, tmp_path):
    """Keep-alive requests back to back on the only worker, each arriving while the worker is
    still in the previous close(): every response must be its own request's (the frames of a
    request still finishing must never be read as the next one's)."""
    record = tmp_path / "record.txt"
    with one_worker.raw() as conn:
        for i in range(4):
            length = i % 2
            conn.send(get_request(f"/close?record={record}&n={i + 1}&length={length}&close_sleep=0.2"))
            r = conn.read_response()
            expected = b"".join(f"chunk-{k}\n".encode() for k in range(i + 1))
            assert (r.status, r.body) == (200, expected), f"request {i}"
        assert not conn.eof
    wait_until(lambda: read_lines(record).count("close") == 4, 10, message="four close() calls")


def test_a_worker_in_close_takes_no_request_while_another_is_idle(corral, tmp_path):
    """The slot of a worker running close() stays busy until close() returns: a request that
    arrives meanwhile goes to the idle worker instead of waiting behind the clean-up."""
    c = corral(APP, "--mpm", "prefork", "-w", "2")
    record = tmp_path / "record.txt"
    r = c.get(f"/close?record={record}&n=2&length=1&close_sleep=3")
    assert (r.status, r.body) == (200, BODY)
    for _ in range(3):
        assert c.get("/slow?sleep=0").status == 200
    assert "close" not in read_lines(record), "a request waited for another request's close()"


def test_bodies_that_fill_an_ipc_packet_to_the_last_bytes(one_worker):
    """Head and body in one packet, then `Complete`: whatever the body size, no packet may
    exceed the IPC packet the master receives (a packet one frame too long cost a 502 and the
    worker). The sizes cover the packet filled to each of its last bytes."""
    with one_worker.raw() as conn:
        for size in range(IPC_PACKET - 200, IPC_PACKET + 16):
            conn.send(get_request(f"/sized?bytes={size}"))
            r = conn.read_response()
            assert (r.status, len(r.body)) == (200, size), f"{size} bytes: {r.status}"
        assert not conn.eof


@pytest.mark.app_errors
@pytest.mark.parametrize("length", ["1", "0"], ids=["content-length", "chunked"])
def test_close_raising_after_a_whole_body_is_logged_and_the_connection_stays(
    one_worker, tmp_path, length
):
    record = tmp_path / "record.txt"
    mark = one_worker.mark()
    with one_worker.raw() as conn:
        _get_whole_two_chunks(conn, f"record={record}&length={length}&mode=close_raise")
        text = one_worker.wait_for_stderr("close-after-body-token", since=mark)
        assert "close() raised" in text, text
        conn.send(get_request("/hello"))
        assert conn.read_response().status == 200
        assert not conn.eof


@pytest.mark.app_errors
def test_a_request_queued_behind_a_worker_that_dies_in_close_goes_to_its_replacement(
    corral, tmp_path
):
    c = corral(APP, *ONE_WORKER)
    record = tmp_path / "record.txt"
    mark = c.mark()
    with c.raw() as conn:
        _get_whole_two_chunks(conn, f"record={record}&length=1&mode=close_exit&close_sleep=0.5")
        # Sent while the only worker is still in close(), which then kills it: the request
        # waits for the replacement.
        conn.send(get_request("/hello"))
        r = conn.read_response(timeout=20)
        assert (r.status, r.body) == (200, b"Hello, world!\n"), r
    c.wait_for_stderr("exited with status 1; replacing it", since=mark)


@pytest.mark.parametrize("mpm", list(MPMS))
def test_a_graceful_stop_lets_close_finish(corral, tmp_path, mpm):
    c = corral(APP, *MPMS[mpm])
    record = tmp_path / "record.txt"
    r = c.get(f"/close?record={record}&n=2&length=1&close_sleep=1.5")
    assert (r.status, r.body) == (200, BODY)
    assert "close" not in read_lines(record)
    c.signal(signal.SIGTERM)
    assert c.wait(20) == 0, c.stderr_text()
    assert read_lines(record) == ["close"], "the stop killed close() halfway"
    assert c.leftovers() == []


def test_a_client_that_leaves_ends_a_write_loop(one_worker, tmp_path):
    """An event-stream loop on write() gets BrokenPipeError once its client has gone (as under
    gunicorn), so it ends and the worker is free; a disconnect is not logged as an app error."""
    record = tmp_path / "record.txt"
    mark = one_worker.mark()
    with one_worker.raw() as conn:
        conn.send(get_request(f"/write_forever?record={record}"))
        deadline = time.monotonic() + 10
        while b"data: 2\n" not in conn.buf and conn.fill(deadline):
            pass
        assert b"data: 2\n" in conn.buf, conn.buf
    wait_until(lambda: read_lines(record), 10, message="the write() loop to end")
    assert read_lines(record) == ["BrokenPipeError"]
    assert one_worker.get("/hello").status == 200
    assert "the application raised" not in one_worker.stderr_since(mark)


def test_write_to_a_head_request_does_not_raise(one_worker, tmp_path):
    """The master drops a HEAD response's body (and aborts it): that is no client leaving,
    so write() goes on as under gunicorn."""
    record = tmp_path / "record.txt"
    with one_worker.raw() as conn:
        conn.send(get_request(f"/write_forever?record={record}&n=5", method="HEAD"))
        r = conn.read_response(method="HEAD")
        assert (r.status, r.body) == (200, b"")
    wait_until(lambda: read_lines(record), 10, message="the write() loop to end")
    assert read_lines(record) == ["finished"]
