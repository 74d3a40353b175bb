"""Processes or threads: what prefork and worker mean for concurrent requests."""

from __future__ import annotations

import time

import pytest

from support import APPS, MPMS, RawConnection, get_request, read_lines, run_concurrently, wait_until


def _overlap(a, b) -> bool:
    return a["start"] < b["end"] and b["start"] < a["end"]


def test_prefork_isolates_processes(corral):
    c = corral(f"{APPS / 'wsgi_app.py'}:application", "--mpm", "prefork", "-w", "2")
    seen: dict[int, list[int]] = {}
    for _round in range(2):
        results = run_concurrently([lambda: c.get("/slow?sleep=1", timeout=20)] * 2)
        bodies = [r.json() for r in results]
        assert all(r.status == 200 for r in results)
        # two requests at once land on two processes, and really run at once
        assert bodies[0]["pid"] != bodies[1]["pid"], bodies
        assert _overlap(bodies[0], bodies[1]), bodies
        for b in bodies:
            seen.setdefault(b["pid"], []).append(b["counter"])
    # each process has its own copy of the module-global counter
    assert len(seen) == 2, seen
    for pid, counters in seen.items():
        assert counters == [1, 2], f"pid {pid} counted {counters}: module state is shared or reset"
    assert set(seen) <= set(c.descendants())


def test_worker_threads_share_one_process(corral):
    c = corral(f"{APPS / 'wsgi_app.py'}:application", "--mpm", "worker", "-w", "1", "--threads", "4")
    results = run_concurrently([lambda: c.get("/slow?sleep=1", timeout=20)] * 4)
    assert all(r.status == 200 for r in results)
    bodies = [r.json() for r in results]
    assert len({b["pid"] for b in bodies}) == 1, bodies
    assert len({b["tid"] for b in bodies}) == 4, "four requests at once need four threads"
    # one module, one counter, incremented by every thread
    assert sorted(b["counter"] for b in bodies) == [1, 2, 3, 4]
    for i in range(4):
        for j in range(i + 1, 4):
            assert _overlap(bodies[i], bodies[j]), bodies


def test_a_thread_waiting_for_the_body_does_not_stop_the_process(corral):
    """An app thread blocked in wsgi.input holds its request's transport. The request's own
    thread, answering meanwhile, waits for it without Python's lock, so the other threads of
    the process go on serving; the answer comes once the body has. (--body-buffer 0: the
    request reaches the app before its body.)"""
    app = f"{APPS / 'wsgi_app.py'}:application"
    c = corral(app, "--mpm", "worker", "-w", "1", "--threads", "4", "--body-buffer", "0")
    with c.raw(timeout=30) as conn:
        conn.send(b"POST /input_thread?delay=0.3 HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\n01234")
        time.sleep(1.0)  # the reader waits for the rest; the request thread is answering
        r = c.get("/hello", timeout=5)
        assert (r.status, r.body) == (200, b"Hello, world!\n")
        conn.send(b"56789")
        answer = conn.read_response(timeout=30)
    assert (answer.status, answer.body) == (200, b"answered\nread 0123456789\n"), answer


def test_write_from_a_thread_beside_the_body_breaks_nothing(corral, tmp_path):
    """A thread calling write() while the returned generator is being sent: its write()s may
    raise RuntimeError when they meet the response in use, but the slot thread never fails
    (it used to panic when a write() held the response while it waited for room), the
    response ends whole, and the worker serves on."""
    c = corral(f"{APPS / 'wsgi_app.py'}:application", "--mpm", "prefork", "-w", "1")
    record = tmp_path / "record.txt"
    workers = c.descendants()
    PIECES = 128  # 8 MiB from each side: more than every buffer on the way holds
    with c.raw(timeout=30) as conn:
        conn.send(get_request(f"/write_beside?record={record}&n={PIECES}"))
        time.sleep(1.0)  # nothing read yet: the ring and the sockets fill, write() waits for room
        r = conn.read_response(timeout=30)
    assert r.status == 200, r
    assert set(r.body) <= {ord("w"), ord("g")} and r.body.count(b"g") == PIECES * 65536, len(r.body)
    wait_until(lambda: read_lines(record), 10, message="the generator's end")
    assert read_lines(record)[0] in ("raised ", "raised RuntimeError"), read_lines(record)
    assert "panicked" not in c.stderr_text()
    assert c.get("/hello").status == 200
    assert c.descendants() == workers, "the worker was replaced"


@pytest.mark.parametrize("mpm", list(MPMS))
def test_many_keepalive_clients(corral, mpm):
    """16 clients x 10 keep-alive requests each, all at once: every answer right."""
    c = corral(f"{APPS / 'wsgi_app.py'}:application", *MPMS[mpm])

    def client(i):
        def run():
            with RawConnection(c.port, timeout=30) as conn:
                for j in range(10):
                    body = f"client {i} request {j}".encode()
                    conn.send(
                        f"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: {len(body)}\r\n\r\n".encode() + body
                    )
                    r = conn.read_response(timeout=30)
                    assert (r.status, r.body) == (200, body), r
            return True

        return run

    assert all(run_concurrently([client(i) for i in range(16)], timeout=60))
