"""corral's benchmark harness: options, preparation (data files, Django database, availability of
each server), the run itself (runner.py), and the report (report.py). Run through bench/run.sh,
or directly: PYTHONPATH=bench bench/.venv/bin/python -m harness --help
"""
import argparse
import datetime
import json
import os
import resource
import shutil
import signal
import subprocess
import sys
import tempfile

from . import machine, report, runner, servers
from .scenarios import BY_NAME, LAYOUTS, SCENARIOS

BENCH = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DATA = os.path.join(BENCH, ".data")


def options(argv):
    p = argparse.ArgumentParser(prog="bench/run.sh", description="corral vs its peers, on loopback.")
    csv = lambda s: [x for x in s.split(",") if x]  # noqa: E731
    p.add_argument("-s", "--scenarios", type=csv, default=[s.name for s in SCENARIOS],
                   help="comma-separated: " + ",".join(s.name for s in SCENARIOS) + " (default: all)")
    p.add_argument("-S", "--servers", type=csv, default=servers.FAMILIES,
                   help="comma-separated: " + ",".join(servers.FAMILIES) + " (default: all)")
    p.add_argument("-g", "--groups", type=csv, default=list(LAYOUTS),
                   help="layouts: p2 (2 processes x 1 thread), t8 (1 process x 8 threads), p4 (4 processes"
                        " x 1 thread: the mixed scenarios only); default all")
    p.add_argument("-d", "--duration", type=int, default=10, help="seconds per measured wrk run (10)")
    p.add_argument("-r", "--repetitions", type=int, default=3, help="repetitions per server (3)")
    p.add_argument("-c", "--connections", type=int, default=64, help="wrk connections (64)")
    p.add_argument("-w", "--warmup", type=int, default=2, help="discarded warm-up seconds (2)")
    p.add_argument("-p", "--pin", choices=["split", "none"], default="split",
                   help="split: server on CPU 0, load generators on CPU 1 (default); none: unpinned")
    p.add_argument("--slow-conns", type=int, default=1000, help="slow clients (1000)")
    p.add_argument("--slow-interval", type=float, default=3.0, help="seconds between their header bytes (3)")
    p.add_argument("--slow-cpu", choices=["server", "load"], default="server",
                   help="where the slow clients run under split pinning: server (CPU 0, beside the server,"
                        " taking its CPU time from it; default) or load (CPU 1, beside wrk)")
    p.add_argument("--load-max", type=float, default=0.7, help="1-min load to wait for before a scenario (0.7)")
    p.add_argument("--max-wait", type=float, default=600, help="longest wait for that, seconds (600)")
    p.add_argument("--idle-min", type=float, default=90, help="CPU idle %% wanted before each run (90)")
    p.add_argument("--other-max", type=float, default=15,
                   help="repeat a run once if other processes used more than this %% of the machine (15)")
    p.add_argument("--port-base", type=int, default=18100, help="first of 6 loopback ports (18100)")
    p.add_argument("--run-id", default=None, help="results/<run-id>/ (default: UTC time + placement)")
    p.add_argument("--results", default=os.path.join(BENCH, "results"), help="results directory")
    p.add_argument("--no-latest", action="store_true", help="do not update results/latest.md/.svg")
    p.add_argument("--smoke", action="store_true",
                   help="tiny end-to-end check: hello, corral+granian, p2, 2 s, 1 repetition, no latest")
    p.add_argument("--list", action="store_true", help="list scenarios and servers (with availability)")
    p.add_argument("--report", metavar="RUN_DIR", help="only re-render RUN_DIR's results.md and chart.svg")
    o = p.parse_args(argv)
    if o.smoke:
        o.scenarios, o.servers, o.groups = ["hello"], ["corral", "granian"], ["p2"]
        o.duration, o.repetitions, o.warmup, o.max_wait, o.no_latest = 2, 1, 1, 60, True
    for s in o.scenarios:
        if s not in BY_NAME:
            p.error(f"unknown scenario {s}")
    for s in o.servers:
        if s not in servers.FAMILIES:
            p.error(f"unknown server {s}")
    for g in o.groups:
        if g not in LAYOUTS:
            p.error(f"unknown group {g}")
    return o


def prepare(scenarios, paths, pin, log):
    """Data the apps need, made once: the 100 MiB download file and the Django database."""
    os.makedirs(DATA, exist_ok=True)
    os.chmod(DATA, 0o755)  # Apache's mod_wsgi daemons (www-data) read these files
    extra = {}
    if "download" in scenarios:
        path = os.path.join(DATA, "download-100m.bin")
        if not os.path.exists(path) or os.path.getsize(path) != 100 << 20:
            log("writing bench/.data/download-100m.bin")
            with open(path + ".tmp", "wb") as f:
                for _ in range(100):
                    f.write(os.urandom(1 << 20))
            os.replace(path + ".tmp", path)
        os.chmod(path, 0o644)
    py = paths.bin("python")
    if "django" in scenarios:
        subprocess.run([py, "-m", "djbench.mkdb"], cwd=paths.apps, check=True, timeout=120,
                       stdout=subprocess.DEVNULL)
    if "cpu1ms" in scenarios:
        code = "import cpu1ms, timeit; print(min(timeit.repeat(cpu1ms.burn, number=50, repeat=5)) / 50 * 1000)"
        srv_cpus, _ = machine.placement(pin)
        pin_cmd = ["taskset", "-c", ",".join(map(str, srv_cpus))] if srv_cpus else []
        r = subprocess.run(pin_cmd + [py, "-c", code], cwd=paths.apps, capture_output=True, text=True, timeout=60)
        extra["cpu1ms_ms"] = float(r.stdout.strip() or 0)
    return extra


def now():
    return datetime.datetime.now(datetime.timezone.utc)


def on_sigterm(*_):
    raise KeyboardInterrupt


def main(argv):
    o = options(argv)
    paths = servers.Paths(bench=BENCH, root=os.path.dirname(BENCH), tmp="")
    if o.report:  # refreshes latest.* too when they show this run
        latest = os.path.join(o.results, "latest.md")
        rel = os.path.relpath(os.path.abspath(o.report), os.path.abspath(o.results))
        shows = os.path.exists(latest) and f"Raw data: [{rel}/]" in open(latest).read()
        print(report.write(o.report, o.results if shows and not o.no_latest else None))
        return 0
    avail = servers.availability(paths, os.path.join(DATA, "setup-notes.txt"))
    if o.list:
        for s in SCENARIOS:
            print(f"scenario {s.name:12s} {s.title} [{', '.join(s.groups)}]")
        for f in servers.FAMILIES:
            print(f"server   {f:12s} {'available' if avail[f] is None else 'SKIPPED: ' + avail[f]}")
        return 0
    if not shutil.which("wrk"):
        sys.exit("wrk is not installed (bench/run.sh installs it with apt-get)")
    families = [f for f in o.servers if avail[f] is None]
    skipped = {f: avail[f] for f in o.servers if avail[f] is not None}
    run_id = o.run_id or now().strftime("%Y%m%d-%H%M%S") + f"-{o.pin}"
    outdir = os.path.join(o.results, run_id)
    os.makedirs(outdir, exist_ok=True)
    logf = open(os.path.join(outdir, "run.log"), "a")

    def log(msg):
        line = f"[{now():%H:%M:%S}] {msg}"
        print(line, file=sys.stderr, flush=True)
        logf.write(line + "\n")
        logf.flush()

    for f, why in skipped.items():
        log(f"skipping {f}: {why}")
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, max(soft, 8192)), hard))
    scen = [BY_NAME[s] for s in o.scenarios]
    meta = {"run_id": run_id, "started": f"{now():%Y-%m-%d %H:%M:%S}",
            "command": "bench/run.sh " + " ".join(argv), "options": vars(o), "scenarios": o.scenarios,
            "machine": machine.describe(), "versions": servers.versions(paths), "skipped": skipped,
            "loadavg_start": open("/proc/loadavg").read().strip()}
    meta.update(prepare(o.scenarios, paths, o.pin, log))
    save(outdir, meta)
    o.srv_cpus, o.gen_cpus = machine.placement(o.pin)
    if o.gen_cpus:
        os.sched_setaffinity(0, o.gen_cpus)  # the harness itself stays off the server's CPU
    signal.signal(signal.SIGTERM, on_sigterm)
    paths.tmp = tempfile.mkdtemp(prefix="corral-bench-")  # short: Apache's socket paths
    os.chmod(paths.tmp, 0o755)
    n = sum(len(servers.servers_for(g, families)) for s in scen for g in s.groups if g in o.groups or s.kind == "memory")
    log(f"run {run_id}: {len(scen)} scenario(s), {n} server configuration(s), {o.repetitions} repetition(s); "
        f"about {n * o.repetitions * (o.duration + o.warmup + 8) / 60:.0f} min plus waits")
    try:
        runner.Runner(o, paths, outdir, log).run(scen, families)
    except KeyboardInterrupt:
        log("interrupted: the server that was running has been stopped; writing the report")
        meta["interrupted"] = True
    finally:
        shutil.rmtree(paths.tmp, ignore_errors=True)
        meta["finished"] = f"{now():%Y-%m-%d %H:%M:%S}"
        meta["loadavg_end"] = open("/proc/loadavg").read().strip()
        save(outdir, meta)
    md = report.write(outdir, None if o.no_latest else o.results)
    log(f"results: {md}" + ("" if o.no_latest else f" (and {o.results}/latest.md, latest.svg)"))
    return 0


def save(outdir, meta):
    with open(os.path.join(outdir, "meta.json"), "w") as f:
        json.dump(meta, f, indent=1, default=str)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
