"""Admission control: --max-queue answers 503 + Retry-After when the queue is full."""

from __future__ import annotations

import time

from support import APPS, Background, run_concurrently, wait_until


def test_full_queue_answers_503_with_retry_after(corral, tmp_path):
    c = corral(f"{APPS / 'wsgi_app.py'}:application", "--mpm", "prefork", "-w", "1", "--max-queue", "1")
    pidfile = tmp_path / "busy.pid"
    busy = Background(lambda: c.get(f"/pidfile?path={pidfile}&sleep=1.5", timeout=20))
    wait_until(pidfile.exists, 10, message="the first request to occupy the only worker")
    queued = Background(lambda: c.get("/slow?sleep=0.1", timeout=20))
    time.sleep(0.3)  # the second request is now waiting in the queue
    rejected = c.get("/hello", timeout=10)

    statuses = [busy.result(20).status, queued.result(20).status, rejected.status]
    assert statuses[0] == 200, statuses
    assert 503 in statuses[1:], statuses
    assert rejected.status == 503, statuses
    retry_after = rejected.header("Retry-After")
    assert retry_after is not None and retry_after.strip().isdigit(), rejected.headers
    assert rejected.header("Server", "").startswith("corral") and rejected.header("Date"), rejected.headers
    # once the queue drains, requests are served again
    assert c.get("/hello").status == 200


def test_concurrent_burst_over_queue_limit(corral):
    """Three requests at once on one worker with --max-queue 1: at least one 503."""
    c = corral(f"{APPS / 'wsgi_app.py'}:application", "--mpm", "prefork", "-w", "1", "--max-queue", "1")
    results = run_concurrently([lambda: c.get("/slow?sleep=1", timeout=20)] * 3)
    statuses = sorted(r.status for r in results)
    assert 503 in statuses, statuses
    assert 200 in statuses, statuses
    for r in results:
        if r.status == 503:
            assert r.header("Retry-After") is not None, r.headers
