"""Helpers to drive the real ``corral`` binary from the integration tests.

Everything here is bounded in time: no helper waits forever, and every process
a test starts is killed by pid when the test (or module) ends.
"""

from __future__ import annotations

import http.client
import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.parse
from dataclasses import dataclass, field
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
TESTS = REPO / "tests"
APPS = TESTS / "apps"
EXAMPLES = REPO / "examples"

READY_TIMEOUT = 30.0
STOP_TIMEOUT = 20.0

# The two MPM set-ups every "both MPMs" test runs under.
MPMS = {
    "prefork": ("--mpm", "prefork", "-w", "2"),
    "worker": ("--mpm", "worker", "-w", "1", "--threads", "4"),
}

# Environment variables read by the fixture apps. They deliberately do not start
# with CORRAL_, which is corral's own configuration namespace.
CALL_LOG_ENV = "CORRALTEST_CALL_LOG"

# corral_proto::MAX_PACKET: the largest IPC packet between master and worker.
IPC_PACKET = 80 * 1024


def corral_bin() -> Path:
    """Path of the binary under test: $CORRAL_BIN, else <repo>/target/debug/corral."""
    value = os.environ.get("CORRAL_BIN")
    return Path(value) if value else REPO / "target" / "debug" / "corral"


def child_env(extra: dict | None = None) -> dict:
    """Environment for a corral process.

    - drops every CORRAL_* variable of the runner (they are corral configuration);
    - VIRTUAL_ENV points at the virtualenv running pytest (if any), so the apps
      import Flask/Django from it;
    - ``extra`` is applied last; a value of None removes the variable.
    """
    env = {k: v for k, v in os.environ.items() if not k.startswith("CORRAL_")}
    if sys.prefix != sys.base_prefix:
        env["VIRTUAL_ENV"] = sys.prefix
    else:
        env.pop("VIRTUAL_ENV", None)
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    for key, value in (extra or {}).items():
        if value is None:
            env.pop(key, None)
        else:
            env[key] = str(value)
    return env


# --------------------------------------------------------------------------
# /proc helpers
# --------------------------------------------------------------------------


def _stat_fields(task: str) -> list[str] | None:
    """Fields 3 onwards of /proc/TASK/stat (TASK: "PID" or "PID/task/TID"), or None if it is
    gone. Field 3 (state) is index 0."""
    try:
        with open(f"/proc/{task}/stat", "rb") as f:
            data = f.read().decode("latin-1")
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    return data[data.rindex(")") + 2 :].split()


def proc_stat(pid: int):
    """(state, ppid, pgrp, starttime) of a process, or None if it does not exist."""
    rest = _stat_fields(str(pid))
    if rest is None:
        return None
    return rest[0], int(rest[1]), int(rest[2]), int(rest[19])


def sched_policy(task: str) -> int:
    """The scheduling policy (field 41) of TASK: "PID" or "PID/task/TID"."""
    rest = _stat_fields(task)
    assert rest is not None, f"no task {task}"
    return int(rest[38])


def pid_alive(pid: int, starttime: int | None = None) -> bool:
    """True if ``pid`` exists, is not a zombie and (if given) has that start time."""
    st = proc_stat(pid)
    if st is None or st[0] in ("Z", "X", "x"):
        return False
    return starttime is None or st[3] == starttime


def children(pid: int) -> list[int]:
    """Direct children of ``pid`` (all threads), via /proc/<pid>/task/*/children."""
    out: list[int] = []
    task_dir = f"/proc/{pid}/task"
    try:
        tids = os.listdir(task_dir)
    except (FileNotFoundError, ProcessLookupError):
        return out
    found_file = False
    for tid in tids:
        try:
            with open(f"{task_dir}/{tid}/children") as f:
                found_file = True
                out.extend(int(x) for x in f.read().split())
        except FileNotFoundError:
            continue
    if not found_file:  # kernel without CONFIG_PROC_CHILDREN: scan /proc
        for entry in os.listdir("/proc"):
            if entry.isdigit():
                st = proc_stat(int(entry))
                if st is not None and st[1] == pid:
                    out.append(int(entry))
    return sorted(set(out))


def descendants(pid: int) -> list[int]:
    """All living descendants of ``pid`` (children, grandchildren, ...)."""
    seen: list[int] = []
    todo = [pid]
    while todo:
        for child in children(todo.pop()):
            if child not in seen and pid_alive(child):
                seen.append(child)
                todo.append(child)
    return seen


def wait_until(predicate, timeout: float, interval: float = 0.05, message: str = "condition"):
    """Poll ``predicate`` until it returns a truthy value; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            pytest.fail(f"timed out after {timeout}s waiting for {message}", pytrace=False)
        time.sleep(interval)


# --------------------------------------------------------------------------
# The corral process
# --------------------------------------------------------------------------

_LISTEN_RE = re.compile(r"^corral: listening on (\S+)\s*$")


@dataclass
class Listener:
    raw: str
    host: str | None = None
    port: int | None = None
    unix_path: str | None = None


def _parse_listener(text: str) -> Listener:
    if text.startswith("unix:"):
        return Listener(text, unix_path=text[len("unix:") :])
    parts = urllib.parse.urlsplit(text)
    return Listener(text, host=parts.hostname, port=parts.port)


class Corral:
    """One ``corral`` process (master), its output and its process tree."""

    def __init__(
        self,
        app=None,
        args=(),
        *,
        cwd,
        env: dict | None = None,
        command: str = "serve",
        bind=("127.0.0.1:0",),
    ):
        argv = [str(corral_bin()), command]
        if app is not None:
            argv.append(str(app))
        for b in bind:
            argv += ["-b", str(b)]
        argv += [str(a) for a in args]
        self.argv = argv
        self.cwd = str(cwd)
        self.env = child_env(env)
        self.proc: subprocess.Popen | None = None
        self.listeners: list[Listener] = []
        self._stdout: list[str] = []
        self._stderr: list[str] = []
        self._cond = threading.Condition()
        self._eof = {"stdout": False, "stderr": False}
        self._ready = False
        self._known: dict[int, int] = {}  # pid -> starttime of every descendant seen
        self._closing = threading.Event()
        self._readers: list[threading.Thread] = []

    # -- life cycle ---------------------------------------------------------

    def start(self) -> "Corral":
        self.proc = subprocess.Popen(
            self.argv,
            cwd=self.cwd,
            env=self.env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,  # keep terminal signals (Ctrl-C) away from it
        )
        for name, stream, sink in (
            ("stdout", self.proc.stdout, self._stdout),
            ("stderr", self.proc.stderr, self._stderr),
        ):
            t = threading.Thread(target=self._reader, args=(name, stream, sink), daemon=True)
            t.start()
            self._readers.append(t)
        threading.Thread(target=self._watcher, daemon=True).start()
        return self

    def _reader(self, name, stream, sink):
        for raw in iter(stream.readline, b""):
            line = raw.decode("utf-8", "replace").rstrip("\r\n")
            with self._cond:
                sink.append(line)
                if name == "stdout":
                    m = _LISTEN_RE.match(line)
                    if m and not self._ready:
                        self.listeners.append(_parse_listener(m.group(1)))
                    elif line.startswith("corral: ready"):
                        self._ready = True
                self._cond.notify_all()
        with self._cond:
            self._eof[name] = True
            self._cond.notify_all()

    def _watcher(self):
        """Record every descendant pid (with its start time) while anything lives."""
        while not self._closing.is_set():
            roots = [self.proc.pid] if self.proc.poll() is None else []
            roots += [p for p, st in list(self._known.items()) if pid_alive(p, st)]
            for root in roots:
                for child in children(root):
                    if child not in self._known:
                        st = proc_stat(child)
                        if st is not None:
                            self._known[child] = st[3]
            if not roots:
                if self._closing.wait(0.2):
                    break
            self._closing.wait(0.05)

    def wait_ready(self, timeout: float = READY_TIMEOUT) -> "Corral":
        deadline = time.monotonic() + timeout
        with self._cond:
            while not self._ready:
                if self.proc.poll() is not None and self._eof["stdout"]:
                    break
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                self._cond.wait(min(remaining, 0.1))
        if not self._ready:
            status = self.proc.poll()
            self.kill()
            what = f"exited with status {status}" if status is not None else f"not ready after {timeout}s"
            pytest.fail(
                f"corral {what} before printing 'corral: ready'\n"
                f"argv: {' '.join(self.argv)}\ncwd: {self.cwd}\n"
                f"--- stderr ---\n{self.stderr_text()}\n--- stdout ---\n{self.stdout_text()}",
                pytrace=False,
            )
        if not self.listeners:
            self.kill()
            pytest.fail(f"corral printed 'ready' but no 'corral: listening on' line:\n{self.stdout_text()}")
        return self

    def wait(self, timeout: float = STOP_TIMEOUT) -> int:
        """Wait for the master to exit by itself; return its exit status."""
        try:
            status = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            pytest.fail(
                f"corral did not exit within {timeout}s\n--- stderr ---\n{self.stderr_text()}",
                pytrace=False,
            )
        self._join_output()
        return status

    def stop(self, sig=signal.SIGTERM, timeout: float = STOP_TIMEOUT) -> int:
        """Send ``sig`` to the master and return its exit status (bounded wait)."""
        self.signal(sig)
        return self.wait(timeout)

    def signal(self, sig):
        if self.proc.poll() is None:
            os.kill(self.proc.pid, sig)

    def kill(self):
        """SIGKILL the master, then every recorded descendant still alive."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            try:
                os.kill(self.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                pass
        # one last scan so that nothing started just now escapes
        for root in [p for p, st in list(self._known.items()) if pid_alive(p, st)]:
            for child in children(root):
                st = proc_stat(child)
                if st is not None:
                    self._known.setdefault(child, st[3])
        self._closing.set()
        for pid, starttime in list(self._known.items()):
            if pid_alive(pid, starttime):
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
        self._join_output()

    def _join_output(self):
        # stdout/stderr reach EOF once every holder of the pipes has exited
        for t in self._readers:
            t.join(2)

    # -- introspection ------------------------------------------------------

    @property
    def pid(self) -> int:
        return self.proc.pid

    @property
    def returncode(self):
        return self.proc.poll()

    @property
    def port(self) -> int:
        for lst in self.listeners:
            if lst.port is not None:
                return lst.port
        raise AssertionError(f"no TCP listener: {self.listeners}")

    @property
    def host(self) -> str:
        for lst in self.listeners:
            if lst.port is not None:
                return lst.host
        raise AssertionError(f"no TCP listener: {self.listeners}")

    @property
    def url(self) -> str:
        for lst in self.listeners:
            if lst.port is not None:
                return lst.raw.rstrip("/")
        raise AssertionError(f"no TCP listener: {self.listeners}")

    def descendants(self) -> list[int]:
        """Living descendants right now (zygote, workers, ...)."""
        if self.proc.poll() is not None:
            return [p for p, st in self._known.items() if pid_alive(p, st)]
        return descendants(self.proc.pid)

    def known_pids(self) -> dict[int, int]:
        """Every descendant ever seen: pid -> start time."""
        return dict(self._known)

    def leftovers(self, timeout: float = 5.0) -> list[int]:
        """Recorded descendants still alive after waiting up to ``timeout``."""
        deadline = time.monotonic() + timeout
        while True:
            alive = [p for p, st in self._known.items() if pid_alive(p, st)]
            if not alive or time.monotonic() >= deadline:
                return alive
            time.sleep(0.05)

    def stdout_lines(self) -> list[str]:
        with self._cond:
            return list(self._stdout)

    def stderr_lines(self) -> list[str]:
        with self._cond:
            return list(self._stderr)

    def stdout_text(self) -> str:
        return "\n".join(self.stdout_lines())

    def stderr_text(self) -> str:
        return "\n".join(self.stderr_lines())

    def mark(self) -> int:
        """Position in stderr; see stderr_since()."""
        with self._cond:
            return len(self._stderr)

    def stderr_since(self, mark: int) -> str:
        with self._cond:
            return "\n".join(self._stderr[mark:])

    def wait_for_stderr(self, pattern, timeout: float = 10.0, since: int = 0) -> str:
        """Wait until stderr (from line ``since``) matches ``pattern`` (str or regex)."""
        return self._wait_for(self._stderr, pattern, timeout, since, "stderr")

    def wait_for_stdout(self, pattern, timeout: float = 10.0, since: int = 0) -> str:
        return self._wait_for(self._stdout, pattern, timeout, since, "stdout")

    def _wait_for(self, sink, pattern, timeout, since, name):
        rx = pattern if isinstance(pattern, re.Pattern) else re.compile(re.escape(pattern))
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                text = "\n".join(sink[since:])
                if rx.search(text):
                    return text
                remaining = deadline - time.monotonic()
                if remaining <= 0 or (self._eof[name] and self.proc.poll() is not None):
                    break
                self._cond.wait(min(remaining, 0.1))
        pytest.fail(
            f"{rx.pattern!r} not found in corral's {name} within {timeout}s\n--- {name} ---\n"
            + "\n".join(sink[since:]),
            pytrace=False,
        )

    # -- HTTP ---------------------------------------------------------------

    def http(self, method="GET", path="/", body=None, headers=None, timeout=10.0) -> "Response":
        return http_request(self.port, method, path, body, headers, timeout=timeout, host=self.host)

    def get(self, path="/", **kw) -> "Response":
        return self.http("GET", path, **kw)

    def raw(self, timeout=10.0) -> "RawConnection":
        return RawConnection(self.port, host=self.host, timeout=timeout)


def run_corral(args, *, cwd, env: dict | None = None, timeout: float = 30.0):
    """Run ``corral ARGS`` to completion (e.g. ``check``); return a CompletedProcess.

    Like every corral process of the tests, its descendants are recorded and
    killed by pid afterwards.
    """
    args = [str(a) for a in args]
    c = Corral(None, args[1:], cwd=cwd, env=env, command=args[0], bind=())
    c.start()
    try:
        status = c.wait(timeout)
    finally:
        c.kill()
    return subprocess.CompletedProcess(c.argv, status, c.stdout_text(), c.stderr_text())


# --------------------------------------------------------------------------
# HTTP: responses, http.client, raw sockets
# --------------------------------------------------------------------------


@dataclass
class Response:
    status: int
    reason: str
    version: str
    headers: list = field(default_factory=list)  # [(name, value)] in order
    body: bytes = b""
    chunked: bool = False
    raw_head: bytes = b""

    def header(self, name: str, default=None):
        name = name.lower()
        for k, v in self.headers:
            if k.lower() == name:
                return v
        return default

    def header_all(self, name: str) -> list[str]:
        name = name.lower()
        return [v for k, v in self.headers if k.lower() == name]

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", "replace")

    def json(self):
        return json.loads(self.body)

    def __repr__(self):
        body = self.body if len(self.body) < 300 else self.body[:300] + b"..."
        return f"<Response {self.status} {self.reason!r} headers={self.headers} body={body!r}>"


class _UnixHTTPConnection(http.client.HTTPConnection):
    def __init__(self, path, timeout):
        super().__init__("localhost", timeout=timeout)
        self._unix_path = path

    def connect(self):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(self.timeout)
        s.connect(self._unix_path)
        self.sock = s


def http_request(
    port,
    method="GET",
    path="/",
    body=None,
    headers=None,
    *,
    timeout=10.0,
    host="127.0.0.1",
    unix_path=None,
) -> Response:
    """One request over a fresh http.client connection; the whole body is read."""
    if unix_path is not None:
        conn = _UnixHTTPConnection(unix_path, timeout)
    else:
        conn = http.client.HTTPConnection(host, port, timeout=timeout)
    try:
        conn.request(method, path, body=body, headers=dict(headers or {}))
        resp = conn.getresponse()
        data = resp.read()
        return Response(
            status=resp.status,
            reason=resp.reason,
            version="HTTP/1.1" if resp.version == 11 else "HTTP/1.0",
            headers=list(resp.getheaders()),
            body=data,
            chunked=bool(resp.chunked) if hasattr(resp, "chunked") else False,
        )
    finally:
        conn.close()


class Incomplete(Exception):
    """The buffer does not hold a complete response yet."""


class BadFraming(Exception):
    """The server sent bytes that are not valid HTTP/1.x framing."""


def _decode_chunked(buf: bytes, pos: int) -> tuple[bytes, int]:
    out = bytearray()
    while True:
        eol = buf.find(b"\r\n", pos)
        if eol < 0:
            raise Incomplete
        size_text = buf[pos:eol].split(b";", 1)[0].strip()
        try:
            size = int(size_text, 16)
        except ValueError:
            raise BadFraming(f"bad chunk size line {buf[pos:eol]!r}")
        pos = eol + 2
        if size == 0:
            # optional trailer fields, then an empty line
            while True:
                eol = buf.find(b"\r\n", pos)
                if eol < 0:
                    raise Incomplete
                line = buf[pos:eol]
                pos = eol + 2
                if not line:
                    return bytes(out), pos
        if len(buf) < pos + size + 2:
            raise Incomplete
        out += buf[pos : pos + size]
        if buf[pos + size : pos + size + 2] != b"\r\n":
            raise BadFraming("chunk not followed by CRLF")
        pos += size + 2


def parse_response(buf: bytes, method: str = "GET", eof: bool = False) -> tuple[Response, int]:
    """Parse one response at the start of ``buf``; return it and the bytes consumed.

    Raises Incomplete if more bytes are needed (``eof`` says the peer closed, which
    completes a close-delimited body). Interim 1xx responses are returned as such.
    """
    end = buf.find(b"\r\n\r\n")
    if end < 0:
        raise Incomplete
    head = buf[:end].decode("latin-1")
    lines = head.split("\r\n")
    m = re.match(r"^(HTTP/\d\.\d) (\d{3})(?: (.*))?$", lines[0])
    if not m:
        raise BadFraming(f"bad status line {lines[0]!r}")
    version, status, reason = m.group(1), int(m.group(2)), m.group(3) or ""
    headers = []
    for line in lines[1:]:
        if ":" not in line:
            raise BadFraming(f"bad header line {line!r}")
        k, v = line.split(":", 1)
        headers.append((k.strip(), v.strip()))
    resp = Response(status, reason, version, headers, raw_head=buf[: end + 4])
    pos = end + 4
    te = ",".join(resp.header_all("Transfer-Encoding")).lower()
    if method.upper() == "HEAD" or 100 <= status < 200 or status in (204, 304):
        return resp, pos
    if te:
        if te.split(",")[-1].strip() != "chunked":
            raise BadFraming(f"unexpected transfer-encoding {te!r}")
        resp.chunked = True
        resp.body, pos = _decode_chunked(buf, pos)
        return resp, pos
    cl = resp.header("Content-Length")
    if cl is not None:
        n = int(cl)
        if len(buf) < pos + n:
            raise Incomplete
        resp.body = buf[pos : pos + n]
        return resp, pos + n
    if not eof:
        raise Incomplete
    resp.body = buf[pos:]
    return resp, len(buf)


def parse_responses(data: bytes, methods) -> list[Response]:
    """Parse consecutive final responses (skipping 1xx) from a complete capture."""
    out = []
    pos = 0
    for method in methods:
        while True:
            resp, used = parse_response(data[pos:], method, eof=True)
            pos += used
            if not 100 <= resp.status < 200:
                break
        out.append(resp)
    return out


class RawConnection:
    """A raw TCP (or unix) socket with an input buffer and HTTP response parsing."""

    def __init__(self, port=None, host="127.0.0.1", timeout=10.0, unix_path=None):
        if unix_path is not None:
            self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            self.sock.settimeout(timeout)
            self.sock.connect(unix_path)
        else:
            self.sock = socket.create_connection((host, port), timeout=timeout)
        self.timeout = timeout
        self.buf = b""
        self.eof = False

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    @property
    def local_port(self) -> int:
        return self.sock.getsockname()[1]

    def send(self, data: bytes):
        self.sock.settimeout(self.timeout)  # reads leave a shorter timeout behind
        self.sock.sendall(data)

    def fill(self, deadline: float) -> bool:
        """Read more bytes; False on timeout. Sets self.eof on close/reset."""
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return False
        self.sock.settimeout(remaining)
        try:
            data = self.sock.recv(65536)
        except socket.timeout:
            return False
        except (ConnectionResetError, BrokenPipeError):
            data = b""
        if not data:
            self.eof = True
            return True
        self.buf += data
        return True

    def read_response(self, method="GET", timeout=10.0, interim=False) -> Response:
        """Next response from the connection. 1xx responses are skipped unless ``interim``."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                resp, used = parse_response(self.buf, method, eof=self.eof)
            except Incomplete:
                if self.eof:
                    raise ConnectionError(
                        f"connection closed before a complete response; got {self.buf[:500]!r}"
                    )
                if not self.fill(deadline):
                    raise TimeoutError(
                        f"no complete response within {timeout}s; got {self.buf[:500]!r}"
                    )
                continue
            self.buf = self.buf[used:]
            if 100 <= resp.status < 200 and not interim:
                continue
            return resp

    def read_until_close(self, timeout=10.0) -> bytes:
        """Everything until the peer closes (or timeout: check .eof)."""
        deadline = time.monotonic() + timeout
        while not self.eof and self.fill(deadline):
            pass
        data, self.buf = self.buf, b""
        return data

    def wait_closed(self, timeout=5.0) -> bool:
        """True if the server closes the connection within ``timeout``."""
        self.read_until_close(timeout)
        return self.eof

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass


def raw_request(port, data: bytes, timeout=5.0, host="127.0.0.1") -> bytes:
    """Send raw bytes on a fresh connection; return what comes back until close or timeout."""
    with RawConnection(port, host=host, timeout=timeout) as conn:
        conn.send(data)
        return conn.read_until_close(timeout)


def get_request(path="/", host="127.0.0.1", extra="", method="GET") -> bytes:
    return f"{method} {path} HTTP/1.1\r\nHost: {host}\r\n{extra}\r\n".encode("latin-1")


def run_concurrently(funcs, timeout=30.0):
    """Run callables in threads, started in order; return their results (or raise)."""
    results = [None] * len(funcs)
    errors = [None] * len(funcs)

    def run(i, f):
        try:
            results[i] = f()
        except BaseException as e:  # noqa: BLE001 - reported below
            errors[i] = e

    threads = [threading.Thread(target=run, args=(i, f), daemon=True) for i, f in enumerate(funcs)]
    for t in threads:
        t.start()
    deadline = time.monotonic() + timeout
    for t in threads:
        t.join(max(0.0, deadline - time.monotonic()))
    if any(t.is_alive() for t in threads):
        pytest.fail(f"concurrent requests still running after {timeout}s", pytrace=False)
    for e in errors:
        if e is not None:
            raise e
    return results


class Background:
    """Run one callable in a thread; .result(timeout) returns its value or raises."""

    def __init__(self, func):
        self._value = None
        self._error = None
        self._thread = threading.Thread(target=self._run, args=(func,), daemon=True)
        self._thread.start()

    def _run(self, func):
        try:
            self._value = func()
        except BaseException as e:  # noqa: BLE001
            self._error = e

    def done(self) -> bool:
        return not self._thread.is_alive()

    def result(self, timeout=30.0):
        self._thread.join(timeout)
        if self._thread.is_alive():
            pytest.fail(f"background request still running after {timeout}s", pytrace=False)
        if self._error is not None:
            raise self._error
        return self._value


def read_lines(path) -> list[str]:
    try:
        with open(path) as f:
            return f.read().splitlines()
    except FileNotFoundError:
        return []


def assert_clean_stderr(text: str):
    """No sign of a WSGI validator complaint or an app traceback."""
    for marker in ("Traceback", "AssertionError", "WSGIWarning", "Exception ignored", "without being closed"):
        assert marker not in text, f"unexpected {marker!r} in corral's stderr:\n{text}"
