"""Listeners: unix sockets, IPv6, several binds at once."""

from __future__ import annotations

import pytest

from support import APPS, RawConnection, http_request


def test_unix_socket_bind(corral, short_dir):
    path = short_dir / "corral.sock"
    c = corral(f"{APPS / 'wsgi_app.py'}:application", bind=[f"unix:{path}"])
    assert [lst.unix_path for lst in c.listeners] == [str(path)], c.stdout_text()
    r = http_request(None, "GET", "/hello", unix_path=str(path))
    assert (r.status, r.body) == (200, b"Hello, world!\n")
    env = http_request(None, "GET", "/environ", unix_path=str(path)).json()
    assert env["SERVER_PROTOCOL"]["value"] == "HTTP/1.1"
    with RawConnection(unix_path=str(path)) as conn:
        conn.send(b"GET /hello HTTP/1.1\r\nHost: localhost\r\n\r\nGET /hello HTTP/1.1\r\nHost: localhost\r\n\r\n")
        assert conn.read_response().status == 200
        assert conn.read_response().status == 200
    assert c.stop() == 0


def test_tcp_ipv6_and_unix_together(corral, short_dir):
    path = short_dir / "both.sock"
    c = corral(
        f"{APPS / 'hello.py'}",
        bind=["127.0.0.1:0", "[::1]:0", f"unix:{path}"],
    )
    raws = [lst.raw for lst in c.listeners]
    assert len(raws) == 3, c.stdout_text()
    assert raws[0].startswith("http://127.0.0.1:")
    assert raws[1].startswith("http://[::1]:")
    assert raws[2] == f"unix:{path}"
    v4, v6 = c.listeners[0], c.listeners[1]
    assert http_request(v4.port, "GET", "/", host="127.0.0.1").status == 200
    assert http_request(v6.port, "GET", "/", host="::1").status == 200
    assert http_request(None, "GET", "/", unix_path=str(path)).status == 200
