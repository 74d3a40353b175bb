"""A worker that dies mid-request costs that request a 502 and nothing else."""

from __future__ import annotations

import os
import signal
import time

import pytest

from support import APPS, MPMS, Background, pid_alive, run_concurrently, wait_until


def _read_pid(path) -> int:
    def ready():
        try:
            return int(path.read_text())
        except (FileNotFoundError, ValueError):
            return None

    return wait_until(ready, 15, message=f"pid file {path}")


def _all_ok(c, n=8):
    for i in range(n):
        r = c.get("/sysinfo", timeout=20)
        assert r.status == 200, f"request {i} after the crash: {r}"


def test_sigkill_worker_mid_request(corral, tmp_path):
    c = corral(f"{APPS / 'wsgi_app.py'}:application", *MPMS["prefork"])
    pid_a = tmp_path / "a.pid"
    pid_b = tmp_path / "b.pid"
    a = Background(lambda: c.get(f"/pidfile?path={pid_a}&sleep=30", timeout=40))
    victim = _read_pid(pid_a)
    b = Background(lambda: c.get(f"/pidfile?path={pid_b}&sleep=1.5", timeout=40))
    other = _read_pid(pid_b)
    assert victim != other
    assert victim in c.descendants()

    os.kill(victim, signal.SIGKILL)
    ra = a.result(15)
    assert ra.status == 502, ra
    assert ra.header("Server", "").startswith("corral") and ra.header("Date"), ra.headers
    rb = b.result(15)
    assert rb.status == 200, rb
    assert rb.json()["pid"] == other

    _all_ok(c)
    # a replacement worker starts: two requests at once again use two processes
    wait_until(lambda: not pid_alive(victim), 5, message="the killed worker to be reaped")
    results = run_concurrently([lambda: c.get("/slow?sleep=0.5", timeout=20)] * 2)
    pids = {r.json()["pid"] for r in results}
    assert all(r.status == 200 for r in results)
    assert len(pids) == 2 and victim not in pids, pids


@pytest.mark.parametrize("mpm", list(MPMS))
@pytest.mark.parametrize("route", ["/exit?code=7", "/segv"])
def test_worker_dies_by_itself_mid_request(corral, mpm, route):
    c = corral(f"{APPS / 'wsgi_app.py'}:application", *MPMS[mpm])
    before = set(c.descendants())
    r = c.get(route, timeout=20)
    assert r.status == 502, r
    _all_ok(c)

    def replaced():
        now = set(c.descendants())
        return len(now) == len(before) and now != before

    wait_until(replaced, 15, message=f"a replacement worker (before: {before})")
    # the master keeps running and still stops cleanly
    assert c.stop() == 0
    assert c.leftovers() == []


def test_crash_does_not_disturb_other_connections(corral, tmp_path):
    """A keep-alive connection that sent nothing during the crash keeps working."""
    c = corral(f"{APPS / 'wsgi_app.py'}:application", *MPMS["prefork"])
    with c.raw() as conn:
        conn.send(b"GET /hello HTTP/1.1\r\nHost: x\r\n\r\n")
        assert conn.read_response().status == 200
        assert c.get("/exit").status == 502
        time.sleep(0.2)
        conn.send(b"GET /hello HTTP/1.1\r\nHost: x\r\n\r\n")
        assert conn.read_response(timeout=20).status == 200
