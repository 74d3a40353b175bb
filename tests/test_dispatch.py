"""The request queue: every idle slot takes requests from one queue, so a busy worker never
holds up a request another worker could serve, a queued request outlives the death of a
worker, and a request whose client left while it waited never runs."""

from __future__ import annotations

import os
import signal
import time

import pytest

from support import APPS, CALL_LOG_ENV, MPMS, Background, RawConnection, get_request, read_lines, wait_until

APP = f"{APPS / 'wsgi_app.py'}:application"


def _hold(c, tmp_path, name, timeout=30):
    """Starts a request that occupies one slot until `release()`; returns (background, pid, release)."""
    started = tmp_path / f"{name}.started"
    release = tmp_path / f"{name}.release"
    bg = Background(lambda: c.get(f"/hold?started={started}&release={release}&timeout={timeout}", timeout=timeout + 10))
    pid = int(wait_until(lambda: started.exists() and started.read_text(), 15, message=f"{name} to start"))
    return bg, pid, lambda: release.write_text("go")


@pytest.mark.smoke
def test_a_busy_worker_never_holds_up_requests_another_can_serve(corral, tmp_path):
    c = corral(APP, *MPMS["prefork"])
    held, busy_pid, release = _hold(c, tmp_path, "busy")
    with RawConnection(c.port) as conn:
        for i in range(20):
            conn.send(get_request("/sysinfo"))
            r = conn.read_response(timeout=10)
            assert r.status == 200, f"request {i}: {r}"
            assert r.json()["pid"] != busy_pid, "a request went to the busy worker"
    assert not held.done(), "the held request must still be running"
    release()
    assert held.result(15).status == 200


@pytest.mark.smoke
def test_a_queued_request_is_served_after_its_worker_dies(corral, tmp_path):
    """One worker, busy; a second request waits in the queue. The worker is killed: the
    request it was running gets a 502, the queued one is served by the replacement."""
    c = corral(APP, "--mpm", "prefork", "-w", "1")
    held, victim, _release = _hold(c, tmp_path, "victim")
    queued = Background(lambda: c.get("/sysinfo", timeout=30))
    time.sleep(0.3)  # let it reach the queue
    assert not queued.done()
    os.kill(victim, signal.SIGKILL)
    assert held.result(15).status == 502
    r = queued.result(30)
    assert r.status == 200, r
    assert r.json()["pid"] != victim


def test_a_request_whose_client_left_while_queued_never_runs(corral, tmp_path):
    call_log = tmp_path / "calls.log"
    c = corral(APP, "--mpm", "prefork", "-w", "1", env={CALL_LOG_ENV: call_log})
    held, _pid, release = _hold(c, tmp_path, "busy")
    with RawConnection(c.port) as gone:
        gone.send(get_request("/hello?who=left"))
        time.sleep(0.3)  # queued behind the held request
    # The client closed its connection; the master notices and cancels the queued request.
    time.sleep(0.3)
    release()
    assert held.result(15).status == 200
    assert c.get("/hello?who=stayed").status == 200
    calls = read_lines(call_log)
    assert "GET /hello" in calls, calls  # the one that stayed ran...
    assert calls.count("GET /hello") == 1, f"the request whose client left ran too: {calls}"


def test_worker_threads_take_requests_while_one_is_busy(corral, tmp_path):
    c = corral(APP, *MPMS["worker"])
    held, busy_pid, release = _hold(c, tmp_path, "busy")
    for i in range(10):
        r = c.get("/sysinfo", timeout=10)
        assert r.status == 200, f"request {i}: {r}"
        assert r.json()["pid"] == busy_pid, "one process, several threads"
    assert not held.done()
    release()
    assert held.result(15).status == 200


@pytest.mark.parametrize(
    "layout, slots",
    [(("--mpm", "worker", "-w", "1", "--threads", "4"), 4), (("--mpm", "worker", "-w", "2", "--threads", "3"), 6)],
    ids=["1x4", "2x3"],
)
def test_a_burst_of_requests_runs_on_every_idle_slot_at_once(corral, tmp_path, layout, slots):
    """As many requests as slots arrive together while every slot sleeps. The master wakes at
    most one slot per worker process; a slot that takes a request and sees more waiting wakes
    the next, so they all run at once. (Without that chain only the master's look for a queue
    that stopped moving would wake the others, one process at a time.)"""
    c = corral(APP, *layout)
    started = [tmp_path / f"burst{i}.started" for i in range(slots)]
    release = tmp_path / "burst.release"
    conns = [RawConnection(c.port, timeout=30) for _ in range(slots)]
    try:
        requests = [get_request(f"/hold?started={s}&release={release}&timeout=20") for s in started]
        sent = time.monotonic()
        for conn, request in zip(conns, requests):
            conn.send(request)
        wait_until(lambda: all(s.exists() for s in started), 15, message="every request to run at once")
        took = time.monotonic() - sent
        assert took < 1.5, f"the requests started one by one over {took:.1f} s"
        release.write_text("go")
        for i, conn in enumerate(conns):
            r = conn.read_response(timeout=15)
            assert r.status == 200, f"request {i}: {r}"
    finally:
        for conn in conns:
            conn.close()


def test_a_worker_killed_while_a_woken_slot_waits_for_the_gil_leaves_the_queue_working(corral, tmp_path):
    """One thread holds the GIL in C code; a request arrives and wakes the other thread, which
    waits for the GIL. The worker is killed then: the woken slot never looks at the queue. The
    wake-up it was counted for must not hold back the wake-ups of the replacement's slots."""
    c = corral(APP, "--mpm", "worker", "-w", "1", "--threads", "2")
    started = tmp_path / "gil.started"
    held = Background(lambda: c.get(f"/gil_hold?started={started}&seconds=30", timeout=40))
    victim = int(wait_until(lambda: started.exists() and started.read_text(), 15, message="the GIL to be held"))
    queued = Background(lambda: c.get("/hello?who=queued", timeout=30))
    time.sleep(0.5)  # the other thread is woken for it, and waits for the GIL
    assert not queued.done()
    os.kill(victim, signal.SIGKILL)
    assert held.result(15).status == 502
    assert queued.result(30).status == 200, "the queued request goes to the replacement"
    for i in range(5):
        r = c.get(f"/hello?who=after{i}", timeout=10)
        assert r.status == 200, f"request {i} to the idle replacement: {r}"


def test_a_process_whose_gil_c_code_holds_is_not_woken_while_another_is_idle(corral, tmp_path):
    """-w 2 --threads 4: one thread of one process holds the GIL in C code for seconds, its
    three other threads sleep. Requests arrive one at a time: each must go to the idle
    process at once. (Waking a sleeping thread of the GIL-bound process would leave the
    request waiting for the GIL, or for the master's look for a queue that stopped moving.)"""
    c = corral(APP, "--mpm", "worker", "-w", "2", "--threads", "4")
    started = tmp_path / "gil.started"
    held = Background(lambda: c.get(f"/gil_hold?started={started}&seconds=4", timeout=30))
    busy = int(wait_until(lambda: started.exists() and started.read_text(), 15, message="the GIL to be held"))
    slowest = 0.0
    for i in range(20):
        sent = time.monotonic()
        r = c.get("/sysinfo", timeout=20)
        slowest = max(slowest, time.monotonic() - sent)
        assert r.status == 200, f"request {i}: {r}"
        assert r.json()["pid"] != busy, f"request {i} was served by the GIL-bound process"
        time.sleep(0.02)
    assert not held.done(), "the GIL is still held: the test is meaningless otherwise"
    assert slowest < 0.3, f"a request waited {slowest:.2f} s while a process was idle"
    assert held.result(20).status == 200


def test_a_request_woken_into_a_gil_bound_process_is_handed_to_the_other_soon(corral, tmp_path):
    """-w 2 --threads 4. A thread of the first process holds the GIL in C code. Requests that
    hold a slot of the other process without the GIL make the two processes equals (as many
    idle slots each), and the master then wakes the lower-numbered one: the GIL-bound
    process, whose woken thread cannot look at the queue. The master sees that nothing was
    taken between two of its looks (ten a second) and wakes the other process. Three times,
    as the idle slots run out on both sides; each time within a fraction of a second."""
    c = corral(APP, "--mpm", "worker", "-w", "2", "--threads", "4")
    started = tmp_path / "gil.started"
    held = Background(lambda: c.get(f"/gil_hold?started={started}&seconds=8", timeout=30))
    busy = int(wait_until(lambda: started.exists() and started.read_text(), 15, message="the GIL to be held"))
    holds = []
    for i in range(3):
        bg, pid, release = _hold(c, tmp_path, f"io{i}")
        holds.append((bg, release))
        assert pid != busy, f"hold {i} went to the process with fewer idle slots"
        sent = time.monotonic()
        r = c.get("/sysinfo", timeout=20)
        waited = time.monotonic() - sent
        assert r.status == 200, f"request {i}: {r}"
        assert r.json()["pid"] != busy, f"request {i} was served by the GIL-bound process"
        assert waited < 0.4, f"request {i} waited {waited:.2f} s for the GIL-bound process"
    assert not held.done(), "the GIL is still held: the test is meaningless otherwise"
    for bg, release in holds:
        release()
        assert bg.result(15).status == 200
    assert held.result(20).status == 200


def test_clients_that_leave_mid_request_never_wedge_a_worker(corral):
    """Each client leaves while its request runs; the master aborts a request the worker has
    often already finished, so stale frames reach an idle slot. Hundreds of them (more than
    a slot socket holds: a few hundred) must not stop the worker from serving."""
    c = corral(APP, "--mpm", "prefork", "-w", "1")
    for _ in range(1000):
        with RawConnection(c.port) as conn:
            conn.send(get_request("/slow?sleep=0.002"))
            time.sleep(0.001)  # the worker has (often) taken it: leave while it runs
    for i in range(5):
        r = c.get("/hello", timeout=10)
        assert r.status == 200, f"request {i} after the departures: {r}"


def test_a_graceful_stop_waits_for_a_request_whose_client_left(corral, tmp_path):
    """The client is gone but the app is still at work: a graceful stop lets it finish."""
    c = corral(APP, "--mpm", "prefork", "-w", "1")
    started, release, done = (tmp_path / n for n in ("started", "release", "done"))
    with RawConnection(c.port) as conn:
        conn.send(get_request(f"/hold?started={started}&release={release}&done={done}"))
        wait_until(started.exists, 15, message="the request to start")
    time.sleep(0.3)  # the master has seen the client leave
    c.signal(signal.SIGTERM)
    time.sleep(0.5)
    release.write_text("go")
    assert c.wait(20) == 0
    assert done.exists(), "the worker was stopped before the request finished"


def test_an_app_that_answers_before_reading_a_large_body_does_not_deadlock(corral):
    """The app writes 2 MiB before it reads any of a 900 KiB body that the master buffered:
    both directions exceed a socket's buffer, so the master must send the rest of the body
    while it reads the response, not before."""
    c = corral(APP, "--mpm", "prefork", "-w", "1")
    body = b"b" * (900 * 1024)
    r = c.http("POST", "/big?kib=2048", body=body, timeout=20)
    assert r.status == 200, r
    assert len(r.body) == 2048 * 1024
    assert c.get("/hello").status == 200, "the worker is free again"


def test_a_client_that_leaves_while_both_directions_are_full_frees_the_worker(corral):
    """As above, but the client reads a little of the response and leaves: the master stops
    the rest of the body and reads the worker out of its write, then the worker serves again."""
    c = corral(APP, "--mpm", "prefork", "-w", "1")
    body = b"b" * (900 * 1024)
    with RawConnection(c.port) as conn:
        conn.send(
            b"POST /big?kib=8192 HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % len(body) + body
        )
        deadline = time.monotonic() + 10
        while len(conn.buf) < 64 * 1024 and conn.fill(deadline):
            pass
        assert len(conn.buf) >= 64 * 1024, "the response started"
    for i in range(3):
        r = c.get("/hello", timeout=10)
        assert r.status == 200, f"request {i} after the departure: {r}"


def test_a_threaded_worker_killed_with_two_requests_in_flight_fails_both_and_only_them(corral, tmp_path):
    """-w 2 --threads 2: both threads of one process hold a request (taken from the queue, no
    answer yet) when it is killed; each gets its 502 from its own slot's scoreboard word, and
    the other process serves on."""
    c = corral(APP, "--mpm", "worker", "-w", "2", "--threads", "2")
    held = [_hold(c, tmp_path, f"h{i}") for i in range(4)]  # all four slots busy
    by_pid = {}
    for bg, pid, release in held:
        by_pid.setdefault(pid, []).append((bg, release))
    assert len(by_pid) == 2 and all(len(v) == 2 for v in by_pid.values()), by_pid.keys()
    victim, survivor = list(by_pid)
    os.kill(victim, signal.SIGKILL)
    for bg, _release in by_pid[victim]:
        assert bg.result(15).status == 502
    for bg, release in by_pid[survivor]:
        assert not bg.done(), "the other process's requests are untouched"
        release()
        assert bg.result(15).status == 200
    r = c.get("/sysinfo", timeout=20)
    assert r.status == 200 and r.json()["pid"] != victim
