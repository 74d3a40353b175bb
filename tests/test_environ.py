"""The WSGI environ (PEP 3333) as the app sees it, under both MPMs."""

from __future__ import annotations

import json
import re
import sys

import pytest

from support import APPS, MPMS, proc_stat


@pytest.fixture(scope="module", params=list(MPMS))
def server(request, module_corral):
    c = module_corral(f"{APPS / 'wsgi_app.py'}:application", *MPMS[request.param])
    c.mpm = request.param
    yield c
    c.kill()


def _environ(server, request_bytes: bytes):
    with server.raw() as conn:
        conn.send(request_bytes)
        resp = conn.read_response()
        local_port = conn.local_port
    assert resp.status == 200, resp
    return json.loads(resp.body), local_port


def _value(env, key):
    assert key in env, f"{key} missing from environ: {sorted(env)}"
    return env[key]["value"]


@pytest.mark.smoke
def test_environ_of_a_get_request(server):
    env, local_port = _environ(
        server,
        (
            f"GET /environ/sub?x=1&y=%20z&e= HTTP/1.1\r\n"
            f"Host: 127.0.0.1:{server.port}\r\n"
            "User-Agent: corral-tests\r\n"
            "X-Multi: a\r\n"
            "X-Multi: b\r\n"
            "Accept: */*\r\n\r\n"
        ).encode(),
    )
    # every CGI variable is a native str
    for key, item in env.items():
        if "." not in key and not key.startswith("_"):
            assert item["type"] == "str", f"{key} is {item['type']}, not str"
    assert _value(env, "REQUEST_METHOD") == "GET"
    assert _value(env, "SCRIPT_NAME") == ""
    assert _value(env, "PATH_INFO") == "/environ/sub"
    assert _value(env, "QUERY_STRING") == "x=1&y=%20z&e="  # not decoded
    assert _value(env, "SERVER_PROTOCOL") == "HTTP/1.1"
    assert _value(env, "SERVER_NAME") in ("127.0.0.1", "localhost")
    assert _value(env, "SERVER_PORT") == str(server.port)
    assert _value(env, "REMOTE_ADDR") == "127.0.0.1"
    assert _value(env, "REMOTE_PORT") == str(local_port)
    assert _value(env, "HTTP_HOST") == f"127.0.0.1:{server.port}"
    assert _value(env, "HTTP_USER_AGENT") == "corral-tests"
    assert re.fullmatch(r"a, ?b", _value(env, "HTTP_X_MULTI")), _value(env, "HTTP_X_MULTI")
    assert _value(env, "HTTP_ACCEPT") == "*/*"
    assert "HTTP_CONTENT_TYPE" not in env and "HTTP_CONTENT_LENGTH" not in env
    assert env.get("CONTENT_LENGTH", {"value": ""})["value"] in ("", "0")
    # wsgi.* keys
    assert env["wsgi.version"] == {"type": "tuple", "value": [1, 0]}
    assert _value(env, "wsgi.url_scheme") == "http"
    assert env["wsgi.run_once"] == {"type": "bool", "value": False}
    assert env["wsgi.input_terminated"] == {"type": "bool", "value": True}
    assert "wsgi.file_wrapper" in env
    assert env["_input_methods"] == ["read", "readline", "readlines", "__iter__"]
    assert env["_errors_methods"] == ["write", "writelines", "flush"]


def test_multithread_and_multiprocess_flags(server):
    env = server.get("/environ").json()
    expected = {"prefork": (False, True), "worker": (True, False)}[server.mpm]
    assert (env["wsgi.multithread"]["value"], env["wsgi.multiprocess"]["value"]) == expected
    assert env["wsgi.multithread"]["type"] == env["wsgi.multiprocess"]["type"] == "bool"


def test_path_info_is_url_decoded_as_latin1(server):
    # UTF-8 "café" percent-encoded: PATH_INFO holds the raw bytes decoded as latin-1
    env, _ = _environ(server, b"GET /environ/caf%C3%A9/a%20b?q=%C3%A9 HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
    assert _value(env, "PATH_INFO") == "/environ/caf\u00c3\u00a9/a b"
    assert _value(env, "PATH_INFO").encode("latin-1").decode("utf-8") == "/environ/café/a b"
    assert _value(env, "QUERY_STRING") == "q=%C3%A9"


def test_high_bytes_in_header_values_are_latin1(server):
    env, _ = _environ(server, b"GET /environ HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Latin: caf\xe9\r\n\r\n")
    assert _value(env, "HTTP_X_LATIN") == "caf\u00e9"


def test_repeated_headers_join_under_one_key(server):
    env, _ = _environ(
        server,
        b"GET /environ HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: text/html\r\nX-Three: 1\r\n"
        b"Accept: */*\r\nX-Three: 2\r\nX-Three: caf\xe9\r\nX-Once: only\r\n\r\n",
    )
    # in arrival order, whether the name is one corral knows (Accept) or not
    assert re.fullmatch(r"text/html, ?\*/\*", _value(env, "HTTP_ACCEPT")), _value(env, "HTTP_ACCEPT")
    assert re.fullmatch(r"1, ?2, ?caf\u00e9", _value(env, "HTTP_X_THREE")), _value(env, "HTTP_X_THREE")
    assert _value(env, "HTTP_X_ONCE") == "only"


def test_header_names_with_underscores_are_dropped(server):
    # X_Forwarded_For would map to the key of X-Forwarded-For: an app trusting that key could
    # be fooled, so the underscore spelling never reaches the environ (as in gunicorn).
    env, _ = _environ(
        server,
        b"GET /environ HTTP/1.1\r\nHost: 127.0.0.1\r\nX_Forwarded_For: 6.6.6.6\r\n"
        b"X-Forwarded-For: 10.0.0.1\r\nX_Other: x\r\n\r\n",
    )
    assert _value(env, "HTTP_X_FORWARDED_FOR") == "10.0.0.1"
    assert "HTTP_X_OTHER" not in env


def test_environ_of_a_post_request(server):
    r = server.http(
        "POST",
        "/environ?k=v",
        body=b"a=1&b=2",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert r.status == 200
    env = r.json()
    assert _value(env, "REQUEST_METHOD") == "POST"
    assert _value(env, "CONTENT_TYPE") == "application/x-www-form-urlencoded"
    assert _value(env, "CONTENT_LENGTH") == "7"
    assert "HTTP_CONTENT_TYPE" not in env and "HTTP_CONTENT_LENGTH" not in env


def test_environ_of_a_chunked_request(server):
    env, _ = _environ(
        server,
        b"POST /environ HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: text/plain\r\n"
        b"Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
    )
    assert _value(env, "CONTENT_TYPE") == "text/plain"
    # the length is unknown: CONTENT_LENGTH absent or empty, the input terminated
    assert env.get("CONTENT_LENGTH", {"value": ""})["value"] == ""
    assert env["wsgi.input_terminated"]["value"] is True


def test_http10_request_protocol(server):
    env, _ = _environ(server, b"GET /environ HTTP/1.0\r\n\r\n")
    assert _value(env, "SERVER_PROTOCOL") == "HTTP/1.0"
    assert _value(env, "SERVER_NAME")  # from the bind address when there is no Host


def test_app_runs_in_the_virtualenv(server):
    info = server.get("/sysinfo").json()
    if sys.prefix != sys.base_prefix:
        assert info["prefix"] == sys.prefix, info
    assert info["version"][:2] == list(sys.version_info[:2]), "corral embeds another Python than pytest runs"


def test_process_tree(server):
    """master -> zygote -> workers; each worker leads its own process group."""
    info = server.get("/sysinfo").json()
    worker = info["pid"]
    zygote = info["ppid"]
    assert worker != server.pid and zygote != server.pid
    assert proc_stat(zygote)[1] == server.pid, "the worker's parent must be a child of the master"
    assert info["pgid"] == worker, "a worker must lead its own process group"
    assert worker in server.descendants()


def test_absolute_form_request_target(server):
    env, _ = _environ(
        server,
        f"GET http://127.0.0.1:{server.port}/environ/abs?x=1 HTTP/1.1\r\nHost: 127.0.0.1:{server.port}\r\n\r\n".encode(),
    )
    assert _value(env, "PATH_INFO") == "/environ/abs"
    assert _value(env, "QUERY_STRING") == "x=1"


def test_extension_method_passes_through(server):
    env, _ = _environ(server, b"PURGE /environ HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
    assert _value(env, "REQUEST_METHOD") == "PURGE"
