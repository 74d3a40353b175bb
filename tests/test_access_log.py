"""The access log: Apache combined by default, custom Apache LogFormat."""

from __future__ import annotations

import re

from support import APPS, read_lines, wait_until

COMBINED = re.compile(
    r'^127\.0\.0\.1 - - \[\d{2}/[A-Z][a-z]{2}/\d{4}:\d{2}:\d{2}:\d{2} [+-]\d{4}\] '
    r'"GET /hello\?x=1 HTTP/1\.1" 200 14 "http://example\.test/from" "corral-tests/1\.0"$'
)


def test_default_format_is_combined(corral, tmp_path):
    log = tmp_path / "access.log"
    c = corral(f"{APPS / 'wsgi_app.py'}:application", "--access-log", log)
    r = c.get("/hello?x=1", headers={"Referer": "http://example.test/from", "User-Agent": "corral-tests/1.0"})
    assert r.status == 200
    lines = wait_until(lambda: read_lines(log), 10, message="an access log line")
    assert len(lines) == 1, lines
    assert COMBINED.match(lines[0]), lines[0]


def test_custom_format(corral, tmp_path):
    log = tmp_path / "access.log"
    fmt = "%h %>s %b %{X-Test}i %{X-Missing}i %p %P %D %T"
    c = corral(f"{APPS / 'wsgi_app.py'}:application", "--access-log", log, "--access-log-format", fmt)
    r = c.get("/slow?sleep=0.3", headers={"X-Test": "hello-header"})
    assert r.status == 200
    worker = r.json()["pid"]
    line = wait_until(lambda: read_lines(log), 10, message="an access log line")[0]
    parts = line.split(" ")
    assert len(parts) == 9, line
    host, status, size, xtest, missing, port, pid, micros, secs = parts
    assert (host, status, size, xtest, missing) == ("127.0.0.1", "200", str(len(r.body)), "hello-header", "-"), line
    assert port == str(c.port), line
    assert int(pid) in (c.pid, worker), f"%P is neither the master ({c.pid}) nor the worker ({worker}): {line}"
    assert int(micros) >= 300_000, f"%D (microseconds) below the 0.3 s the app slept: {line}"
    assert secs.isdigit(), line


def test_empty_body_is_a_dash_and_request_line(corral, tmp_path):
    log = tmp_path / "access.log"
    c = corral(f"{APPS / 'wsgi_app.py'}:application", "--access-log", log, "--access-log-format", '%>s %b "%r"')
    assert c.http("HEAD", "/hello").status == 200
    line = wait_until(lambda: read_lines(log), 10, message="an access log line")[0]
    assert line == '200 - "HEAD /hello HTTP/1.1"', line


def test_access_log_to_stdout(corral):
    c = corral(f"{APPS / 'wsgi_app.py'}:application", "--access-log", "-", "--access-log-format", "%h %>s %{X-Tag}i")
    assert c.get("/hello", headers={"X-Tag": "on-stdout"}).status == 200
    c.wait_for_stdout("127.0.0.1 200 on-stdout")
