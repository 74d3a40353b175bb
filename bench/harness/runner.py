"""Runs the matrix. For each scenario: wait for a quiet machine; for each layout, repetitions x
servers in alternating order (forward, then backward, ...). One measurement = start the server,
wait for a 200, warm up (discarded), measure, read the tree's memory, stop it by PID. Every
measurement is appended to raw.jsonl at once, so an interrupted run still has its data.
"""
import http.client
import json
import os
import socket
import time
import traceback

from . import loadgen, machine, procs, servers
from .servers import Server


class StartError(Exception):
    pass


class Runner:
    def __init__(self, opts, paths, outdir, log):
        self.o, self.paths, self.log = opts, paths, log
        self.srv_cpus, self.gen_cpus = opts.srv_cpus, opts.gen_cpus
        # Slow clients beside wrk delay wrk's wake-ups and so measure the load generator as much
        # as the server (bench/README.md, "slowclients"); beside the server they cost it CPU.
        self.slow_cpus = opts.srv_cpus if opts.slow_cpu == "server" else opts.gen_cpus
        self.logs = os.path.join(outdir, "logs")
        os.makedirs(self.logs, exist_ok=True)
        self.raw = open(os.path.join(outdir, "raw.jsonl"), "a")
        self.env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}

    # ------------------------------------------------------------------ matrix
    def run(self, scenarios, families):
        for sc in scenarios:
            lv, waited, quiet = machine.wait_quiet(self.o.load_max, self.o.max_wait, self.log)
            self.write({"event": "scenario", "scenario": sc.name, "load1": lv, "waited_s": round(waited),
                        "quiet": quiet, "t": time.time()})
            for group in [g for g in sc.groups if g in self.o.groups or sc.kind == "memory"]:
                todo = servers.servers_for(group, families)
                for rep in range(self.o.repetitions):
                    for srv in (todo if rep % 2 == 0 else todo[::-1]):
                        rec = self.measure(sc, group, srv, rep + 1)
                        self.write(rec)
                        self.log(summary_line(rec))

    def write(self, rec):
        self.raw.write(json.dumps(rec) + "\n")
        self.raw.flush()

    def measure(self, sc, group, srv, rep):
        rec = {"scenario": sc.name, "group": group, "server": srv.id, "family": srv.family,
               "label": srv.label, "rep": rep, "t": time.time(), "status": "ok", "notes": []}
        try:
            if sc.kind == "memory":
                self.measure_memory(sc, srv, rec)
            else:
                with Serving(self, srv, sc, f"{sc.name}-{srv.id}-{rep}", rec) as live:
                    self.measure_load(sc, live, rec)
        except StartError as e:
            rec["status"], rec["error"] = "fail", str(e)[:500]
        except Exception as e:  # a harness or tool failure: keep the run going, keep the trace
            rec["status"], rec["error"] = "fail", f"{e.__class__.__name__}: {e}"[:500]
            rec["traceback"] = traceback.format_exc()[-2000:]
        return rec

    # ------------------------------------------------------------------ kinds
    def measure_load(self, sc, live, rec):
        if sc.kind == "mixedconn":
            return self.measure_mixed_by_client(live, rec)
        conns = sc.conns or self.o.connections
        lua = os.path.join(self.paths.bench, "lua", sc.lua) if sc.lua else None
        args = ["0.05"] if sc.kind == "mixed" else []
        timeout = 60 if sc.kind == "download" else 5
        tag = f"{sc.name}-{rec['server']}-{rec['rep']}"
        if self.o.warmup > 0:
            loadgen.run_wrk(live.url, conns, self.o.warmup, self.wrk_file(tag + "-warmup"),
                            self.gen_cpus, lua, args, timeout)
        r = self.timed_wrk(live, conns, self.o.duration, tag, lua, args, timeout)
        if sc.kind == "slowclients":
            r = self.with_slow_clients(live, conns, tag, (lua, args, timeout), before=r)
        rec.update(r)
        rec.update(live.tree.memory())
        if "error" in r:
            rec["status"] = "fail"

    def with_slow_clients(self, live, conns, tag, wrk_opts, before):
        """The slow-client measurement, sandwiched: wrk without them (`before`), with them, and
        without them again once they are gone. The ratio divides "with" by the mean of the two
        runs without, so that a host drifting during the minute it takes does not count as the
        slow clients' cost (bench/README.md, "slowclients")."""
        slow = loadgen.SlowClients(os.path.join(self.paths.venv, "bin", "python"), live.port,
                                   self.o.slow_conns, self.o.slow_interval, self.o.duration * 3 + 120,
                                   self.slow_cpus, os.path.join(self.logs, tag + "-slowclients.log"))
        try:
            ready = slow.wait_ready(40)
            r = self.timed_wrk(live, conns, self.o.duration, tag + "-slow", *wrk_opts, slow.popen)
        finally:
            stats = slow.stop()
        after = self.timed_wrk(live, conns, self.o.duration, tag + "-after", *wrk_opts)
        bases = [x["rps"] for x in (before, after) if x.get("rps")]
        base = sum(bases) / len(bases) if bases else None
        r.update({"rps_base": base, "rps_before": before.get("rps"), "rps_after": after.get("rps"),
                  "rps_slow": r.get("rps"), "p99_ms_slow": r.get("p99_ms"), "slow_open_ready": ready,
                  "slow_open_stop": stats.get("open_at_stop"),
                  "slow_reconnects": stats.get("closed_by_server"),
                  "slow_connect_errors": stats.get("connect_errors")})
        if base and r.get("rps") is not None:
            r["slow_ratio"] = r["rps"] / base
        return r

    def measure_mixed_by_client(self, live, rec):
        """5 % of the connections (at least 1) send only /slow, from a wrk of their own that runs
        through the warm-up and the measured run; the measured wrk sends /fast on the rest."""
        slow_conns = max(1, round(0.05 * self.o.connections))
        fast_conns = self.o.connections - slow_conns
        tag = f"mixedconn-{rec['server']}-{rec['rep']}"
        slow_url = live.url.replace("/fast", "/slow")
        slow_out = self.wrk_file(tag + "-slow")
        span = self.o.warmup + self.o.duration + 15  # outlasts the idle wait of the measured run
        with open(slow_out, "wb") as out:
            argv = ["wrk", "-t1", f"-c{slow_conns}", f"-d{span}s", "--latency", "--timeout", "5s", slow_url]
            slow = procs.spawn(argv, cpus=self.gen_cpus, stdout=out)
        try:
            time.sleep(0.5)  # the slow clients are busy before the fast ones start
            if self.o.warmup > 0:
                loadgen.run_wrk(live.url, fast_conns, self.o.warmup, self.wrk_file(tag + "-warmup"),
                                self.gen_cpus)
            r = self.timed_wrk(live, fast_conns, self.o.duration, tag, None, [], 5, slow)
        finally:
            if slow.poll() is None:
                slow.send_signal(2)  # wrk prints its summary on SIGINT
                try:
                    slow.wait(timeout=10)
                except Exception:
                    slow.kill()
                    slow.wait(timeout=10)
        with open(slow_out, errors="replace") as f:
            s = loadgen.parse_wrk(f.read())
        r.update({"slow_rps": s.get("rps"), "slow_p50_ms": s.get("p50_ms"), "slow_conns": slow_conns})
        for k in ("err_socket", "err_timeout", "non2xx"):
            r[k] = r.get(k, 0) + s.get(k, 0)
        rec.update(r)
        rec.update(live.tree.memory())
        if "error" in r:
            rec["status"] = "fail"

    def measure_memory(self, sc, srv, rec):
        """Flask with 1, then 4 single-threaded workers: load, then USS/PSS of the whole tree."""
        load_s = max(2, min(self.o.duration, 5))
        for n in (1, 4):
            one = Server(srv.family, n, 1, srv.extra)
            with Serving(self, one, sc, f"{sc.name}-{one.id}-{rec['rep']}", rec) as live:
                tag = f"{sc.name}-{one.id}-{rec['rep']}"
                r = loadgen.run_wrk(live.url, self.o.connections, load_s, self.wrk_file(tag),
                                    self.gen_cpus)
                if "error" in r:
                    raise RuntimeError(r["error"])
                m = live.tree.memory()
                rec.update({f"uss{n}_mib": m["uss_kb"] / 1024, f"pss{n}_mib": m["pss_kb"] / 1024,
                            f"rss{n}_mib": m["rss_kb"] / 1024, f"nprocs{n}": m["nprocs"],
                            f"rps{n}": r.get("rps"), "load1": machine.load1()})
        rec["uss_per_worker_mib"] = (rec["uss4_mib"] - rec["uss1_mib"]) / 3
        if rec["nprocs4"] != rec["nprocs1"] + 3:  # a worker died or was being replaced
            rec["notes"].append(f"process count {rec['nprocs1']} with 1 worker but {rec['nprocs4']} "
                                "with 4 (expected 3 more): the USS difference is not per worker")

    def timed_wrk(self, live, conns, seconds, tag, lua, args, timeout, extra_gen=None):
        """wrk with CPU accounting: server tree, load generator, and everything else (% of all
        CPUs). A run during which "everything else" exceeded --other-max is repeated once."""
        for attempt in (1, 2):
            idle = machine.wait_idle(self.o.idle_min, min(60, self.o.max_wait))
            load = machine.load1()
            gen_tree = procs.Tree(extra_gen) if extra_gen else None
            b0, t0 = machine.stat_jiffies()
            s0, w0 = live.tree.cpu_ticks(), procs.children_cpu_ticks() + (gen_tree.cpu_ticks() if gen_tree else 0)
            r = loadgen.run_wrk(live.url, conns, seconds, self.wrk_file(tag), self.gen_cpus, lua, args, timeout)
            b1, t1 = machine.stat_jiffies()
            s1, w1 = live.tree.cpu_ticks(), procs.children_cpu_ticks() + (gen_tree.cpu_ticks() if gen_tree else 0)
            tot = max(1, t1 - t0)
            r.update({"load1": load, "idle_pct": round(idle, 1), "cpu_srv": 100 * (s1 - s0) / tot,
                      "cpu_wrk": 100 * (w1 - w0) / tot,
                      "cpu_other": 100 * ((b1 - b0) - (s1 - s0) - (w1 - w0)) / tot})
            if attempt == 1 and r["cpu_other"] > self.o.other_max:
                self.log(f"{tag}: other CPU {r['cpu_other']:.0f} % > {self.o.other_max} %: repeating the run")
                os.replace(self.wrk_file(tag), self.wrk_file(tag) + ".discarded")
                continue
            return r

    def wrk_file(self, tag):
        return os.path.join(self.logs, f"wrk-{tag}.txt")

    def port(self, srv):
        return self.o.port_base + servers.FAMILIES.index(srv.family)


class Serving:
    """Context manager: a started, answering server; stopped by PID on exit, whatever happens."""

    def __init__(self, runner, srv, sc, tag, rec):
        self.r, self.srv, self.sc, self.tag, self.rec = runner, srv, sc, tag, rec
        self.port = runner.port(srv)
        self.url = f"http://127.0.0.1:{self.port}{'/fast' if sc.kind in ('mixed', 'mixedconn') else '/'}"
        self.tree = None

    def __enter__(self):
        wait_port_free(self.port, 15)
        rundir = os.path.join(self.r.paths.tmp, self.tag)
        argv, cwd = servers.command(self.srv, self.sc.app, self.port, self.r.paths, rundir)
        self.log = os.path.join(self.r.logs, f"server-{self.tag}.log")
        with open(self.log, "w") as f:
            f.write("# " + " ".join(argv) + "\n")
        self.rec.setdefault("commands", []).append(" ".join(argv))
        self.tree = procs.Tree(procs.spawn(argv, self.r.srv_cpus, self.log, cwd, self.r.env))
        try:
            wait_ready(self.tree, self.port, self.sc.ready_path, 90, self.log)
        except BaseException:
            self.__exit__(None, None, None)
            raise
        self.tree.members()
        return self

    def __exit__(self, *exc):
        notes = self.tree.stop() if self.tree else []
        self.rec["notes"] += notes
        err = os.path.join(self.r.paths.tmp, self.tag, "error.log")
        if os.path.exists(err):  # Apache's own log, kept with the others
            with open(err, errors="replace") as f, open(self.log, "a") as out:
                out.write(f.read())
        return False


def wait_port_free(port, timeout):
    deadline = time.monotonic() + timeout
    while True:
        with socket.socket() as s:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                s.bind(("127.0.0.1", port))
                return
            except OSError:
                if time.monotonic() > deadline:
                    raise StartError(f"port {port} stays busy (another process listens on it)")
        time.sleep(0.5)


def wait_ready(tree, port, path, timeout, log):
    """Polls GET path until a 200 (bounded); fails early if the server exits."""
    deadline = time.monotonic() + timeout
    last = "no answer"
    while time.monotonic() < deadline:
        if not tree.alive():
            raise StartError(f"server exited with {tree.popen.returncode} before answering: {tail(log)}")
        try:
            c = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
            c.request("GET", path)
            resp = c.getresponse()
            resp.read()
            c.close()
            if resp.status == 200:
                return
            last = f"HTTP {resp.status}"
        except (OSError, http.client.HTTPException) as e:
            last = e.__class__.__name__
        time.sleep(0.3)
    raise StartError(f"no 200 on {path} within {timeout} s ({last}): {tail(log)}")


def tail(path, n=4):
    try:
        with open(path, errors="replace") as f:
            return " | ".join(f.read().strip().splitlines()[-n:])
    except OSError:
        return ""


def summary_line(rec):
    if rec.get("status") != "ok":
        return f"{rec['scenario']} {rec['server']} #{rec['rep']}: FAIL {rec.get('error', '')}"
    keys = ["rps", "p99_ms", "fast_p99_ms", "rps_slow", "slow_ratio", "mib_s", "uss_per_worker_mib",
            "cpu_other", "uss_kb"]
    vals = " ".join(f"{k}={rec[k]:.2f}" if isinstance(rec[k], float) else f"{k}={rec[k]}"
                    for k in keys if rec.get(k) is not None)
    return f"{rec['scenario']} {rec['server']} #{rec['rep']}: {vals}"
