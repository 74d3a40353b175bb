"""Start-up failures, graceful stop, and no orphans when the master dies."""

from __future__ import annotations

import signal
import socket
import time

import pytest

from support import APPS, MPMS, Background, http_request, pid_alive, wait_until


@pytest.mark.parametrize("fixture, message", [
    ("import_error.py", "RuntimeError: import_error fixture: this module deliberately fails to import"),
    ("syntax_error.py", "SyntaxError"),
])
def test_app_that_fails_to_import_exits_3(corral, fixture, message):
    c = corral(APPS / fixture, *MPMS["prefork"], wait=False)
    status = c.wait(30)
    assert status == 3, f"exit status {status}\n{c.stderr_text()}"
    err = c.stderr_text()
    assert message in err
    if fixture == "import_error.py":
        assert "Traceback" in err
    assert "corral: ready" not in c.stdout_text()
    assert c.leftovers() == [], "processes left behind"
    # no respawn loop: a handful of processes at most were ever started
    assert len(c.known_pids()) <= 3, c.known_pids()


@pytest.mark.smoke
@pytest.mark.parametrize("mpm", list(MPMS))
def test_sigterm_finishes_in_flight_request(corral, tmp_path, mpm):
    c = corral(f"{APPS / 'wsgi_app.py'}:application", *MPMS[mpm])
    pidfile = tmp_path / "req.pid"
    inflight = Background(lambda: c.get(f"/pidfile?path={pidfile}&sleep=2", timeout=20))
    wait_until(pidfile.exists, 10, message="the slow request to reach the app")
    workers = c.descendants()
    assert workers

    c.signal(signal.SIGTERM)
    time.sleep(0.5)
    # stopped accepting: a new request is refused or at least not served by the app
    try:
        r = http_request(c.port, "GET", "/hello", timeout=1)
        assert r.status != 200, "a new request was served after SIGTERM"
    except (ConnectionError, socket.timeout, OSError):
        pass

    r = inflight.result(20)
    assert r.status == 200, r
    assert c.wait(15) == 0, c.stderr_text()
    assert c.leftovers() == [], "processes left behind"


def test_sigint_idle_exits_0(corral):
    c = corral(f"{APPS / 'hello.py'}", *MPMS["prefork"])
    assert c.get("/").status == 200
    assert c.stop(signal.SIGINT) == 0
    assert c.leftovers() == []


def test_graceful_timeout_bounds_the_stop(corral, tmp_path):
    c = corral(f"{APPS / 'wsgi_app.py'}:application", *MPMS["prefork"], "--graceful-timeout", "1s")
    pidfile = tmp_path / "req.pid"
    stuck = Background(lambda: c.get(f"/pidfile?path={pidfile}&sleep=60", timeout=30))
    wait_until(pidfile.exists, 10, message="the request to reach the app")
    started = time.monotonic()
    c.signal(signal.SIGTERM)
    c.wait(10)
    assert time.monotonic() - started < 8, "the graceful timeout was not honoured"
    assert c.leftovers() == []
    try:
        r = stuck.result(10)
        assert r.status != 200
    except (ConnectionError, OSError):
        pass


@pytest.mark.parametrize("busy", [False, True], ids=["idle", "busy"])
@pytest.mark.parametrize("mpm", list(MPMS))
def test_sigkill_master_leaves_no_orphans(corral, tmp_path, mpm, busy):
    c = corral(f"{APPS / 'wsgi_app.py'}:application", *MPMS[mpm])
    assert c.get("/hello").status == 200
    if busy:  # a worker is inside a long request when the master dies
        pidfile = tmp_path / "busy.pid"
        Background(lambda: c.get(f"/pidfile?path={pidfile}&sleep=30", timeout=40))
        wait_until(pidfile.exists, 10, message="the request to reach the app")
    tree = c.descendants()
    # zygote + at least one worker
    assert len(tree) >= 2, tree
    c.signal(signal.SIGKILL)
    c.proc.wait(5)
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and any(pid_alive(p) for p in tree):
        time.sleep(0.05)
    alive = [p for p in tree if pid_alive(p)]
    assert alive == [], f"still alive 5 s after the master was killed: {alive}"
    assert c.leftovers(0) == []
