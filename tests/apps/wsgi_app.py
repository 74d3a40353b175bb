"""Fixture WSGI app for corral's integration tests: one route per WSGI feature.

Two callables:
- ``application``: the app itself;
- ``validated_application``: the same wrapped in ``wsgiref.validate.validator``;
  a validator warning is turned into an exception, so any complaint makes the
  request fail visibly (500 + traceback on corral's stderr).

Every request is appended ("METHOD PATH_INFO") to the file named by
$CORRALTEST_CALL_LOG, if set. Query parameters select the behaviour of a route.

Routes:
  /hello                      "Hello, world!" with Content-Length
  /stream?n=&delay=&lazy=&empty=   generator, n chunks "chunk-i\\n", pause between
                              them; lazy=1: start_response on first next();
                              empty=1: empty bytestrings in between
  /write                      uses the write() callable, then returns a tail
  /write_forever?record=&n=   write()s a line every 50 ms, n times (400: 20 s; a server-sent
                              events loop); records the exception that ends it, or "finished"
  /write_beside?record=&n=    a thread write()s n 64 KiB pieces while the returned generator
                              yields n of its own; records what the thread's write()s raised
  /file?path=&blksize=&offset=&nolength=1
                              wsgi.file_wrapper over the file at path (from offset;
                              without Content-Length: chunked)
  /file?path=&nofileno=1&record=   file_wrapper over a file-like without fileno()
  /echo?mode=                 echoes the request body; mode = readn | read |
                              readline | readline_n | readlines | iter, or
                              first_line (echoes only that)
  /exc_before                 start_response(200) then start_response(500, exc_info)
  /exc_after                  exc_info after the headers were sent: must re-raise
  /close?record=&mode=&n=&delay=&length=&close_sleep=
                              iterable whose close() is recorded in the file
                              record; mode = normal | raise | long, or
                              close_raise | close_exit (close() raises / kills
                              the worker after the whole body); length=1 sets
                              Content-Length; close() first sleeps close_sleep
  /raise?token=               raises before start_response
  /errors?token=&partial=1    writes the token to wsgi.errors (partial: with no newline
                              and no flush)
  /slow?sleep=                sleeps; returns pid, thread id, a module-global counter
  /pidfile?path=&sleep=       writes its pid to path, then sleeps
  /exit?code=                 os._exit mid-request
  /segv                       crashes the worker with SIGSEGV
  /gil_hold?started=&seconds= writes its pid to started, then sleeps in C code that keeps
                              the GIL (no other thread of the process runs Python)
  /environ                    JSON dump of environ: {key: {"type", "value"}}
  /sysinfo                    JSON: pid, ppid, pgid, cwd, sys.prefix, sys.path
  /headers?status=&as=        two Set-Cookie headers, a latin-1 value, any status; the
                              headers as a list (default), a tuple or a generator
  /hop?close=1                hop-by-hop headers an app should not send (a proxy passing on
                              an upstream response's); close=1: Connection: close
  /big?kib=&forever=&record=  a large generated body (see big())
  /start_thread               leaves a background thread running
  /input_thread?delay=        a thread reads the whole body while the request's own thread
                              starts answering after delay s; then the answer says what it read
  /sized?bytes=               a generator of exactly that many bytes, with Content-Length
  /declared_empty?status=     Content-Length 14 and no body (as HEAD, 204, 304 allow)
"""

import json
import os
import sys
import threading
import time
import warnings
from urllib.parse import parse_qsl
from wsgiref.validate import InputWrapper, WSGIWarning, validator

warnings.simplefilter("error", WSGIWarning)

_lock = threading.Lock()
_counter = 0


def _query(environ):
    return dict(parse_qsl(environ.get("QUERY_STRING", ""), keep_blank_values=True))


def _append(path, line):
    if path:
        with open(path, "a") as f:
            f.write(line + "\n")


def _text(start_response, body, status="200 OK", ctype="text/plain; charset=utf-8", extra=()):
    if isinstance(body, str):
        body = body.encode("utf-8")
    start_response(status, [("Content-Type", ctype), ("Content-Length", str(len(body))), *extra])
    return [body]


def _json(start_response, obj):
    return _text(start_response, json.dumps(obj, sort_keys=True), ctype="application/json")


def hello(environ, start_response):
    return _text(start_response, "Hello, world!\n")


def stream(environ, start_response):
    q = _query(environ)
    n = int(q.get("n", 5))
    delay = float(q.get("delay", 0.1))
    lazy = q.get("lazy") == "1"  # start_response called on the first next()
    empty = q.get("empty") == "1"  # empty bytestrings between the chunks
    headers = [("Content-Type", "text/plain")]
    if q.get("length") == "1":  # declare the Content-Length up front
        headers.append(("Content-Length", str(sum(len(f"chunk-{i}\n") for i in range(n)))))
    if not lazy:
        start_response("200 OK", headers)

    def generate():
        if lazy:
            start_response("200 OK", headers)
        for i in range(n):
            if i and delay:
                time.sleep(delay)
            if empty:
                yield b""
            yield f"chunk-{i}\n".encode()
        if empty:
            yield b""

    return generate()


def write_route(environ, start_response):
    write = start_response("200 OK", [("Content-Type", "text/plain")])
    write(b"part1 ")
    write(b"part2 ")
    return [b"tail"]


def write_forever(environ, start_response):
    q = _query(environ)
    record = q["record"]
    write = start_response("200 OK", [("Content-Type", "text/event-stream")])
    try:
        for i in range(int(q.get("n", 400))):
            write(f"data: {i}\n\n".encode())
            time.sleep(0.05)
    except Exception as e:
        _append(record, type(e).__name__)
        raise
    _append(record, "finished")
    return []


def write_beside(environ, start_response):
    q = _query(environ)
    record, n = q["record"], int(q.get("n", 32))
    write = start_response("200 OK", [("Content-Type", "application/octet-stream")])
    raised = []

    def writer():
        for _ in range(n):
            try:
                write(b"w" * 65536)
            except Exception as e:
                raised.append(type(e).__name__)

    thread = threading.Thread(target=writer)
    thread.start()

    def body():
        for _ in range(n):
            yield b"g" * 65536
        thread.join(30)
        _append(record, "raised " + ",".join(sorted(set(raised))))

    return body()


class NoFilenoReader:
    """A file-like object with read() and close() but no fileno()."""

    def __init__(self, f, record):
        self._f = f
        self._record = record

    def read(self, size=-1):
        return self._f.read(size)

    def close(self):
        self._f.close()
        _append(self._record, "filelike-close")


def file_route(environ, start_response):
    q = _query(environ)
    path = q["path"]
    offset = int(q.get("offset", 0))
    size = os.path.getsize(path) - offset
    f = open(path, "rb")
    f.seek(offset)
    if q.get("nofileno"):
        f = NoFilenoReader(f, q.get("record"))
    headers = [("Content-Type", "application/octet-stream")]
    if not q.get("nolength"):
        headers.append(("Content-Length", str(size)))
    start_response("200 OK", headers)
    return environ["wsgi.file_wrapper"](f, int(q.get("blksize", 8192)))


def _read_exact_or_eof(inp, environ, size):
    parts = []
    length = environ.get("CONTENT_LENGTH")
    if length:
        remaining = int(length)
        while remaining > 0:
            chunk = inp.read(min(size, remaining))
            if not chunk:
                break
            parts.append(chunk)
            remaining -= len(chunk)
    else:  # chunked request: relies on wsgi.input_terminated
        while True:
            chunk = inp.read(size)
            if not chunk:
                break
            parts.append(chunk)
    return b"".join(parts)


def echo(environ, start_response):
    mode = _query(environ).get("mode", "readn")
    inp = environ["wsgi.input"]
    if mode == "readn":
        body = _read_exact_or_eof(inp, environ, 65536)
    elif mode == "read":
        # read() without a size is not in PEP 3333 (wsgiref.validate rejects it),
        # yet every server supports it: call the server's object past the validator.
        body = (inp.input if isinstance(inp, InputWrapper) else inp).read()
    elif mode == "readline":
        lines = []
        while True:
            line = inp.readline()
            if not line:
                break
            lines.append(line)
        body = b"".join(lines)
    elif mode == "readline_n":
        lines = []
        while True:
            line = inp.readline(1000)
            if not line:
                break
            assert len(line) <= 1000, f"readline(1000) returned {len(line)} bytes"
            lines.append(line)
        body = b"".join(lines)
    elif mode == "first_line":
        body = inp.readline()  # the rest stays unread
    elif mode == "readlines":
        body = b"".join(inp.readlines())
    elif mode == "iter":
        body = b"".join(line for line in inp)
    else:
        return _text(start_response, f"unknown mode {mode}\n", status="400 Bad Request")
    return _text(start_response, body, ctype="application/octet-stream", extra=[("X-Echo-Mode", mode)])


def exc_before(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    try:
        raise ValueError("exc-before-token")
    except ValueError:
        body = b"custom error page\n"
        start_response(
            "500 Internal Server Error",
            [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))],
            sys.exc_info(),
        )
        return [body]


def exc_after(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])

    def generate():
        yield b"partial body\n"
        time.sleep(0.3)  # let the head and the first chunk reach the client
        try:
            raise ValueError("exc-after-token")
        except ValueError:
            # The headers are gone: the server must re-raise the exception here.
            start_response("500 Internal Server Error", [("Content-Type", "text/plain")], sys.exc_info())
            yield b"must never be sent\n"

    return generate()


class ClosingBody:
    """An iterable whose close() calls are recorded (one line "close" each)."""

    def __init__(self, record, mode, n, delay, close_sleep=0.0):
        self.record = record
        self.mode = mode
        self.n = n
        self.delay = delay
        self.close_sleep = close_sleep

    def __iter__(self):
        for i in range(self.n):
            if i and self.delay:
                time.sleep(self.delay)
            if self.mode == "raise" and i == 1:
                raise RuntimeError("close-raise-token")
            yield f"chunk-{i}\n".encode()
        _append(self.record, "exhausted")

    def close(self):
        time.sleep(self.close_sleep)  # clean-up work, as frameworks do in close()
        _append(self.record, "close")
        if self.mode == "close_raise":
            raise RuntimeError("close-after-body-token")
        if self.mode == "close_exit":
            os._exit(1)


def close_route(environ, start_response):
    q = _query(environ)
    mode = q.get("mode", "normal")
    default_n = 3000 if mode == "long" else 3
    default_delay = 0.01 if mode == "long" else 0.0
    n = int(q.get("n", default_n))
    body = ClosingBody(q["record"], mode, n, float(q.get("delay", default_delay)),
                       float(q.get("close_sleep", 0)))
    headers = [("Content-Type", "text/plain")]
    if q.get("length") == "1":
        headers.append(("Content-Length", str(sum(len(f"chunk-{i}\n") for i in range(n)))))
    start_response("200 OK", headers)
    return body


def raise_route(environ, start_response):
    raise RuntimeError("boom " + _query(environ).get("token", "raise-token"))


def errors_route(environ, start_response):
    errors = environ["wsgi.errors"]
    q = _query(environ)
    errors.write("wsgi.errors says " + q.get("token", "errors-token") + ("" if "partial" in q else "\n"))
    if "partial" not in q:
        errors.flush()
    return _text(start_response, f"logged {environ['corral.request_id']}\n")


def slow(environ, start_response):
    global _counter
    q = _query(environ)
    start = time.time()
    time.sleep(float(q.get("sleep", 0.5)))
    with _lock:
        _counter += 1
        value = _counter
    return _json(
        start_response,
        {"pid": os.getpid(), "tid": threading.get_ident(), "counter": value, "start": start, "end": time.time()},
    )


def pidfile(environ, start_response):
    q = _query(environ)
    path = q["path"]
    with open(path + ".tmp", "w") as f:
        f.write(str(os.getpid()))
    os.replace(path + ".tmp", path)  # readers never see a half-written file
    time.sleep(float(q.get("sleep", 10)))
    return _json(start_response, {"pid": os.getpid()})


def hold(environ, start_response):
    """Writes this pid to `started`, then waits (at most `timeout` s) until `release` exists;
    then writes `done` if given."""
    q = _query(environ)
    with open(q["started"] + ".tmp", "w") as f:
        f.write(str(os.getpid()))
    os.replace(q["started"] + ".tmp", q["started"])
    deadline = time.time() + float(q.get("timeout", 30))
    while not os.path.exists(q["release"]) and time.time() < deadline:
        time.sleep(0.01)
    if "done" in q:
        with open(q["done"], "w") as f:
            f.write("done")
    return _json(start_response, {"pid": os.getpid(), "released": os.path.exists(q["release"])})


def exit_route(environ, start_response):
    os._exit(int(_query(environ).get("code", 1)))


def gil_hold(environ, start_response):
    import ctypes

    q = _query(environ)
    with open(q["started"] + ".tmp", "w") as f:
        f.write(str(os.getpid()))
    os.replace(q["started"] + ".tmp", q["started"])
    ctypes.PyDLL(None).sleep(int(q.get("seconds", 30)))  # PyDLL: the GIL stays held
    return _text(start_response, "held\n")


def segv(environ, start_response):
    import ctypes

    ctypes.string_at(0)  # SIGSEGV
    return _text(start_response, "unreachable\n")


def _jsonable(value):
    if value is None or isinstance(value, (str, bool, int, float)):
        return value
    if isinstance(value, tuple):
        return [_jsonable(v) for v in value]
    return repr(value)


def environ_route(environ, start_response):
    out = {k: {"type": type(v).__name__, "value": _jsonable(v)} for k, v in environ.items()}
    inp = environ.get("wsgi.input")
    out["_input_methods"] = [m for m in ("read", "readline", "readlines", "__iter__") if hasattr(inp, m)]
    errors = environ.get("wsgi.errors")
    out["_errors_methods"] = [m for m in ("write", "writelines", "flush") if hasattr(errors, m)]
    return _json(start_response, out)


def sysinfo(environ, start_response):
    return _json(
        start_response,
        {
            "pid": os.getpid(),
            "ppid": os.getppid(),
            "pgid": os.getpgid(0),
            "cwd": os.getcwd(),
            "prefix": sys.prefix,
            "base_prefix": sys.base_prefix,
            "executable": sys.executable,
            "path": sys.path,
            "version": list(sys.version_info[:3]),
            # the calling (request) thread's policy, and the constant to compare it with
            "sched_policy": os.sched_getscheduler(0),
            "sched_batch": os.SCHED_BATCH,
            "sched_other": os.SCHED_OTHER,
        },
    )


def headers_route(environ, start_response):
    q = _query(environ)
    status = q.get("status", "200 OK")
    headers = [
        ("Content-Type", "text/plain"),
        ("Set-Cookie", "a=1; Path=/"),
        ("Set-Cookie", "b=2; Path=/; HttpOnly"),
        ("X-Custom-Header", "Value With  Spaces"),
        ("X-Latin", "caf\u00e9"),  # latin-1 on the wire
    ]
    if status[:3] in ("204", "304"):
        headers = [h for h in headers if h[0] != "Content-Type"]
        start_response(status, headers)
        return []
    body = b"headers\n"
    headers = headers + [("Content-Length", str(len(body)))]
    container = {"list": list, "tuple": tuple, "generator": lambda hs: (h for h in hs)}
    start_response(status, container[q.get("as", "list")](headers))
    return [body]


def hop(environ, start_response):
    connection = "close" if _query(environ).get("close") else "keep-alive"
    body = b"hop\n"
    start_response("200 OK", [
        ("Content-Type", "text/plain"),
        ("Content-Length", str(len(body))),
        ("Connection", connection),
        ("Keep-Alive", "timeout=5"),
        ("Transfer-Encoding", "identity"),
        ("X-Kept", "yes"),
    ])
    return [body]


def big(environ, start_response):
    """?kib=N: N KiB generated in 64 KiB pieces (a large response that is not a file)."""
    q = _query(environ)
    left = int(q.get("kib", 1024)) * 1024
    piece = b"z" * 65536
    start_response("200 OK", [("Content-Type", "application/octet-stream"),
                              ("Content-Length", str(left))])
    record = q.get("record")
    forever = q.get("forever") == "1"  # keeps yielding past the Content-Length (an app bug)

    def generate():
        nonlocal left
        try:
            while left > 0 or forever:
                yield piece[:left] if left > 0 else piece
                left -= len(piece)
        finally:
            _append(record, "generator-closed")

    return generate()


def start_thread(environ, start_response):
    """Leaves a background thread running (as client libraries do on first use)."""
    threading.Thread(target=time.sleep, args=(3600,), daemon=True).start()
    return _text(start_response, "started\n")


def input_thread(environ, start_response):
    """Reads the body in another thread while this one answers (as apps that stream uploads
    to a worker thread do): the answer's first piece waits for the body."""
    inp = environ["wsgi.input"]
    n = int(environ.get("CONTENT_LENGTH") or 0)
    got = []
    reader = threading.Thread(target=lambda: got.append(inp.read(n)), daemon=True)
    reader.start()
    time.sleep(float(_query(environ).get("delay", 0.3)))
    start_response("200 OK", [("Content-Type", "text/plain")])

    def answer():
        yield b"answered\n"
        reader.join(30)
        yield b"read " + (got[0] if got else b"nothing") + b"\n"

    return answer()


def sized(environ, start_response):
    """A generator (it has close()) of exactly `bytes` bytes, with Content-Length."""
    n = int(_query(environ)["bytes"])
    start_response("200 OK", [("Content-Type", "application/octet-stream"), ("Content-Length", str(n))])

    def body():
        yield b"x" * n

    return body()


def declared_empty(environ, start_response):
    """Declares Content-Length 14 and sends nothing (right for HEAD, 204 and 304)."""
    status = _query(environ).get("status", "200 OK")
    headers = [("Content-Length", "14")]
    if status[:3] not in ("204", "304"):  # wsgiref.validate: no Content-Type without content
        headers.append(("Content-Type", "text/plain"))
    start_response(status, headers)
    return []


def not_found(environ, start_response):
    return _text(start_response, "not found\n", status="404 Not Found")


ROUTES = {
    "/": hello,
    "/hello": hello,
    "/stream": stream,
    "/write": write_route,
    "/write_forever": write_forever,
    "/write_beside": write_beside,
    "/file": file_route,
    "/echo": echo,
    "/exc_before": exc_before,
    "/exc_after": exc_after,
    "/close": close_route,
    "/raise": raise_route,
    "/errors": errors_route,
    "/slow": slow,
    "/pidfile": pidfile,
    "/hold": hold,
    "/exit": exit_route,
    "/segv": segv,
    "/gil_hold": gil_hold,
    "/environ": environ_route,
    "/sysinfo": sysinfo,
    "/headers": headers_route,
    "/big": big,
    "/hop": hop,
    "/start_thread": start_thread,
    "/input_thread": input_thread,
    "/sized": sized,
    "/declared_empty": declared_empty,
}


def application(environ, start_response):
    _append(
        os.environ.get("CORRALTEST_CALL_LOG"),
        f"{environ['REQUEST_METHOD']} {environ.get('PATH_INFO', '')}",
    )
    path = environ.get("PATH_INFO", "/")
    if path.startswith("/environ"):
        path = "/environ"  # /environ/<anything> dumps too (for PATH_INFO checks)
    return ROUTES.get(path, not_found)(environ, start_response)


validated_application = validator(application)
