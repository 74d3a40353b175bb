"""Load generators: wrk (run bounded, output kept, parsed) and the slow-client process."""
import json
import os
import re
import subprocess
import time

from . import procs

UNIT_MS = {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 6e4, "h": 3.6e6}
UNIT_B = {"B": 1, "KB": 1024, "MB": 1024 ** 2, "GB": 1024 ** 3, "TB": 1024 ** 4}


def _ms(text):
    m = re.match(r"([0-9.]+)(us|ms|s|m|h)$", text)
    return float(m.group(1)) * UNIT_MS[m.group(2)] if m else None


def parse_wrk(out):
    """Numbers from wrk --latency output (and the MIXED line of lua/mixed.lua)."""
    r = {}
    if m := re.search(r"^Requests/sec:\s+([0-9.]+)", out, re.M):
        r["rps"] = float(m.group(1))
    if m := re.search(r"^Transfer/sec:\s+([0-9.]+)([KMGT]?B)", out, re.M):
        r["mib_s"] = float(m.group(1)) * UNIT_B[m.group(2)] / 1024 ** 2
    for pct, key in (("50%", "p50_ms"), ("99%", "p99_ms")):
        if m := re.search(rf"^\s+{pct}\s+(\S+)", out, re.M):
            r[key] = _ms(m.group(1))
    if m := re.search(r"^\s+(\d+) requests in", out, re.M):
        r["requests"] = int(m.group(1))
        if r["requests"] == 0:  # wrk prints a latency distribution of zeros then
            r.pop("p50_ms", None)
            r.pop("p99_ms", None)
    sock = [0, 0, 0, 0]
    if m := re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out):
        sock = [int(x) for x in m.groups()]
    r["err_socket"] = sum(sock[:3])
    r["err_timeout"] = sock[3]
    m = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    r["non2xx"] = int(m.group(1)) if m else 0
    if m := re.search(r"^MIXED (.*)$", out, re.M):
        for k, v in (kv.split("=") for kv in m.group(1).split()):
            r[k] = float(v)
    return r


def run_wrk(url, conns, seconds, outfile, cpus=None, lua=None, lua_args=(), timeout_s=5):
    """Runs wrk once (bounded: killed after seconds + 30) and returns parse_wrk of its output."""
    argv = ["wrk", "-t1", f"-c{conns}", f"-d{seconds}s", "--latency", "--timeout", f"{timeout_s}s"]
    if lua:
        argv += ["-s", lua]
    argv.append(url)
    if lua_args:
        argv += ["--", *lua_args]
    with open(outfile, "wb") as out:
        p = procs.spawn(argv, cpus=cpus, stdout=out)
        try:
            p.wait(timeout=seconds + 30)
        except subprocess.TimeoutExpired:
            pass
        finally:  # also on an interrupt of the harness
            if p.poll() is None:
                p.kill()
                p.wait(timeout=10)
    with open(outfile, errors="replace") as f:
        text = f.read()
    r = parse_wrk(text)
    if "rps" not in r:
        r["error"] = "wrk: " + (text.strip().splitlines() or ["no output"])[-1][:200]
    return r


class SlowClients:
    """bench/harness/slowclients.py as a child process, pinned to `cpus` (see --slow-cpu)."""

    def __init__(self, python, port, conns, interval, limit_s, cpus, log):
        script = os.path.join(os.path.dirname(os.path.abspath(__file__)), "slowclients.py")
        self.log = log
        self.out = open(log, "w+")
        self.popen = procs.spawn([python, script, "--port", str(port), "--conns", str(conns),
                                  "--interval", str(interval), "--duration", str(limit_s)],
                                 cpus=cpus, stdout=self.out)

    def wait_ready(self, timeout):
        """Seconds-bounded wait for the READY line; returns the open connection count or None."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and self.popen.poll() is None:
            if m := re.search(r"^READY (\d+)", self._text(), re.M):
                return int(m.group(1))
            time.sleep(0.2)
        return None

    def stop(self):
        """Stops the clients (TERM, KILL after 15 s) and returns their counters."""
        tree = procs.Tree(self.popen)
        tree.stop(term_timeout=15, straggler_timeout=1)
        stats = {}
        for line in self._text().splitlines():
            if line.startswith("{"):
                stats = json.loads(line)
        self.out.close()
        return stats

    def _text(self):
        with open(self.log) as f:
            return f.read()
