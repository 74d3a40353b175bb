"""Fixture: apps that break the WSGI rules. The server must answer 500 (or cut
the connection once the headers are out), log the error and stay healthy.

Routes:
  /hello            a correct response
  /none             returns None
  /no_start         returns a body without calling start_response
  /double_start     calls start_response twice without exc_info
  /str_body         yields str instead of bytes
  /bad_status       start_response("abc", ...)
  /header_injection a header value containing CR LF
  /non_latin1       a header value that is not latin-1
  /short_body       Content-Length: 100 but 10 bytes
  /long_body        Content-Length: 5 but 20 bytes
  /keep             keeps its write() and wsgi.input past the request
  /use_kept?what=   streams "own\n", then uses what /keep kept (write: writes
                    "INJECTED"; input: reads the body) and reports what came of it
  /use_kept_later?what=  a thread uses what /keep kept 0.3 s after this request
                    (while the worker is idle); /kept_result says what came of it
"""

import threading
import time

_kept = {}


def _use_kept(what):
    yield b"own\n"
    try:
        if what == "write":
            _kept["write"](b"INJECTED")
            yield b"written\n"
        else:
            yield b"read " + _kept["input"].read(6) + b"\n"
    except Exception as e:
        yield f"{type(e).__name__}: {e}\n".encode()
    yield b"end\n"


def _use_kept_later(what):
    time.sleep(0.3)
    try:
        if what == "write":
            _kept["write"](b"INJECTED")
        else:
            _kept["input"].read(6)
        _kept["result"] = "no error"
    except Exception as e:
        _kept["result"] = f"{type(e).__name__}: {e}"


def _route(environ, start_response):
    path = environ.get("PATH_INFO", "/")
    ct = ("Content-Type", "text/plain")
    if path == "/hello":
        start_response("200 OK", [ct, ("Content-Length", "14")])
        return [b"Hello, world!\n"]
    if path == "/none":
        start_response("200 OK", [ct])
        return None
    if path == "/no_start":
        return [b"no start_response\n"]
    if path == "/double_start":
        start_response("200 OK", [ct])
        start_response("201 Created", [ct])
        return [b"twice\n"]
    if path == "/str_body":
        start_response("200 OK", [ct])
        return ["not bytes\n"]
    if path == "/bad_status":
        start_response("abc", [ct])
        return [b"bad status\n"]
    if path == "/header_injection":
        start_response("200 OK", [ct, ("X-Evil", "a\r\nX-Injected: yes")])
        return [b"injected?\n"]
    if path == "/non_latin1":
        start_response("200 OK", [ct, ("X-Euro", "\u20ac")])
        return [b"euro\n"]
    if path == "/short_body":
        start_response("200 OK", [ct, ("Content-Length", "100")])
        return [b"0123456789"]
    if path == "/long_body":
        start_response("200 OK", [ct, ("Content-Length", "5")])
        return [b"01234", b"56789012345678901234"]
    if path == "/keep":
        _kept["write"] = start_response("200 OK", [ct])
        _kept["input"] = environ["wsgi.input"]
        return [b"kept\n"]
    if path == "/use_kept":
        start_response("200 OK", [ct])
        return _use_kept(environ.get("QUERY_STRING", "").removeprefix("what="))
    if path == "/use_kept_later":
        what = environ.get("QUERY_STRING", "").removeprefix("what=")
        _kept["result"] = "pending"
        threading.Thread(target=_use_kept_later, args=(what,), daemon=True).start()
        start_response("200 OK", [ct])
        return [b"started\n"]
    if path == "/kept_result":
        start_response("200 OK", [ct])
        return [_kept.get("result", "none").encode()]
    start_response("404 Not Found", [ct])
    return [b"not found\n"]


application = _route
