"""Options not covered elsewhere: keep-alive timeout, body buffer, error log, log level,
processes x threads, warm-up."""

from __future__ import annotations

import hashlib
import os
import re
import time
import uuid

from support import (
    APPS,
    RawConnection,
    descendants,
    read_lines,
    run_concurrently,
    sched_policy,
    wait_until,
)

WSGI_APP = f"{APPS / 'wsgi_app.py'}:application"


def test_keepalive_timeout_closes_idle_connections(corral):
    c = corral(WSGI_APP, "--keepalive-timeout", "1s")
    with c.raw() as conn:
        conn.send(b"GET /hello HTTP/1.1\r\nHost: x\r\n\r\n")
        assert conn.read_response().status == 200
        started = time.monotonic()
        assert conn.wait_closed(timeout=6), "idle keep-alive connection still open after 6 s"
        assert time.monotonic() - started >= 0.5, "closed long before the keep-alive timeout"
    assert c.get("/hello").status == 200


def test_keepalive_counts_from_the_end_of_the_response(corral):
    # The connection's first deadline is the (longer) header timeout; the keep-alive count that
    # the response starts must not wait for it.
    c = corral(WSGI_APP, "--keepalive-timeout", "1s", "--header-timeout", "4s")
    with c.raw() as conn:
        conn.send(b"GET /hello HTTP/1.1\r\nHost: x\r\n\r\n")
        assert conn.read_response().status == 200
        started = time.monotonic()
        assert conn.wait_closed(timeout=6), "idle keep-alive connection still open after 6 s"
        elapsed = time.monotonic() - started
    assert 0.8 <= elapsed <= 2.5, f"closed {elapsed:.1f} s after the response (keep-alive 1 s)"


def test_a_head_started_late_in_the_idle_time_gets_its_whole_header_timeout(corral):
    c = corral(WSGI_APP, "--keepalive-timeout", "2s", "--header-timeout", "2s")
    with c.raw() as conn:
        conn.send(b"GET /hello HTTP/1.1\r\nHost: x\r\n\r\n")
        assert conn.read_response().status == 200
        time.sleep(1.5)
        conn.send(b"GET /hello HTTP/1.1\r\nHost: x\r\n")  # never finished
        started = time.monotonic()
        reply = conn.read_until_close(timeout=6)
        elapsed = time.monotonic() - started
    assert reply.startswith(b"HTTP/1.1 408 "), f"after {elapsed:.1f} s: {reply[:200]!r}"
    assert 1.8 <= elapsed <= 3.5, f"408 came {elapsed:.1f} s after the head started (timeout 2 s)"


def test_bodies_larger_than_the_body_buffer_are_streamed(corral):
    c = corral(WSGI_APP, "--body-buffer", "16KiB", "--max-body", "64MiB", "--mpm", "worker", "-w", "1", "--threads", "2")
    body = os.urandom(10 * 1024 * 1024 + 3)
    for mode in ("readn", "read", "iter"):
        r = c.http("POST", f"/echo?mode={mode}", body=body, timeout=60)
        assert r.status == 200, r
        assert hashlib.sha256(r.body).digest() == hashlib.sha256(body).digest(), mode
    # chunked, slow client: several writes with pauses
    chunks = [os.urandom(50_000) for _ in range(6)]
    with c.raw(timeout=30) as conn:
        conn.send(b"POST /echo?mode=readn HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n")
        for ch in chunks:
            conn.send(f"{len(ch):x}\r\n".encode() + ch + b"\r\n")
            time.sleep(0.05)
        conn.send(b"0\r\n\r\n")
        r = conn.read_response(timeout=30)
    assert r.status == 200
    assert r.body == b"".join(chunks)


def test_max_body_applies_to_chunked_bodies(corral):
    c = corral(WSGI_APP, "--max-body", "64KiB")
    with RawConnection(c.port, timeout=10) as conn:
        conn.send(b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n")
        try:
            for _ in range(10):
                conn.send(b"4000\r\n" + b"y" * 0x4000 + b"\r\n")  # 10 x 16 KiB
            conn.send(b"0\r\n\r\n")
        except (BrokenPipeError, ConnectionResetError):
            pass
        reply = conn.read_until_close(timeout=5)
    assert reply.startswith(b"HTTP/1.1 413"), reply[:200]


def test_error_log_file(corral, tmp_path):
    log = tmp_path / "error.log"
    token = uuid.uuid4().hex
    c = corral(WSGI_APP, "--error-log", log)
    assert c.get(f"/raise?token={token}").status == 500
    wait_until(lambda: f"RuntimeError: boom {token}" in "\n".join(read_lines(log)), 10,
               message="the traceback in the error log file")
    text = "\n".join(read_lines(log))
    assert "Traceback" in text
    assert re.search(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z ERROR \[pid \d+\]", text, re.M), text
    assert token not in c.stderr_text(), "--error-log FILE must take the errors off stderr"


def test_log_level_filters(corral):
    c = corral(f"{APPS / 'hello.py'}", "--log-level", "debug")
    assert c.get("/").status == 200
    assert c.stop() == 0
    verbose = c.stderr_text()
    assert re.search(r"Z (INFO|DEBUG) \[pid \d+\]", verbose), verbose

    c = corral(f"{APPS / 'hello.py'}", "--log-level", "error")
    assert c.get("/").status == 200
    assert c.stop() == 0
    quiet = c.stderr_text()
    assert not re.search(r"Z (INFO|DEBUG|WARN|WARNING) \[pid", quiet), quiet


def test_processes_times_threads(corral):
    c = corral(WSGI_APP, "--mpm", "worker", "-w", "2", "--threads", "2", "--backlog", "64")
    env = c.get("/environ").json()
    assert env["wsgi.multithread"]["value"] is True
    assert env["wsgi.multiprocess"]["value"] is True
    results = run_concurrently([lambda: c.get("/slow?sleep=0.8", timeout=20)] * 4)
    bodies = [r.json() for r in results]
    assert len({b["pid"] for b in bodies}) == 2, bodies
    assert len({(b["pid"], b["tid"]) for b in bodies}) == 4, bodies


def test_master_zygote_and_workers_run_with_batch_scheduling(corral):
    # Set once in the master before it starts threads or the zygote: the runtime's threads,
    # the zygote and the workers (and a threaded worker's request threads) inherit it.
    c = corral(WSGI_APP, "--mpm", "worker", "-w", "1", "--threads", "2")
    info = c.get("/sysinfo").json()
    assert info["sched_policy"] == info["sched_batch"], info
    tree = [c.pid, *descendants(c.pid)]
    assert info["pid"] in tree
    threads = [(pid, tid) for pid in tree for tid in os.listdir(f"/proc/{pid}/task")]
    policies = {(pid, tid): sched_policy(f"{pid}/task/{tid}") for pid, tid in threads}
    assert set(policies.values()) == {info["sched_batch"]}, policies


def test_scheduling_normal_keeps_the_default_policy(corral):
    c = corral(WSGI_APP, "--scheduling", "normal")
    info = c.get("/sysinfo").json()
    assert info["sched_policy"] == info["sched_other"], info
    assert sched_policy(str(c.pid)) == info["sched_other"]


def test_warmup_requests_run_in_the_zygote_before_the_fork(corral, tmp_path):
    marker = tmp_path / "warm.pid"
    c = corral(WSGI_APP, "--warmup", f"/pidfile?path={marker}&sleep=0", "--warmup", "/hello",
               "--log-level", "info")
    warm_pid = int(marker.read_text())
    info = c.get("/sysinfo").json()
    assert warm_pid == info["ppid"], "the warm-up request must run in the zygote, the workers' parent"
    assert warm_pid != info["pid"]
    c.wait_for_stderr("warm-up GET /hello: 200")


def test_a_failing_warmup_is_reported_and_the_server_starts_anyway(corral):
    c = corral(WSGI_APP, "--warmup", "/raise?token=warmup-raise-token")
    c.wait_for_stderr("warm-up GET /raise?token=warmup-raise-token did not succeed")
    c.wait_for_stderr("warmup-raise-token")  # the app's traceback
    assert c.get("/hello").status == 200


def test_a_warmup_that_leaves_a_thread_stops_the_start_with_a_clear_error(corral):
    c = corral(WSGI_APP, "--warmup", "/start_thread", wait=False)
    status = c.wait(30)
    assert status == 3, f"exit status {status}\n{c.stderr_text()}"
    assert "the --warmup requests left 1 thread(s) running in the zygote" in c.stderr_text()
    assert c.leftovers() == [], "processes left behind"
