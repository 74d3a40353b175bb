"""The scenario matrix: which app each scenario serves, how it is loaded, in which server layouts
it runs, which number is its headline (and whether higher or lower is better), and the columns of
its table in the report.
"""
from dataclasses import dataclass, field


@dataclass
class Scenario:
    name: str
    app: str                  # module under bench/apps
    kind: str                 # wrk | mixed | mixedconn | slowclients | download | memory
    title: str
    groups: tuple = ("p2", "t8")
    metric: str = "rps"       # headline key of a measurement
    unit: str = "req/s"
    higher_better: bool = True
    lua: str = ""             # script under bench/lua
    conns: int = 0            # 0: the --connections option
    ready_path: str = "/"
    columns: list = field(default_factory=list)  # (header, key, format)


WRK_COLS = [("req/s", "rps", "{:,.0f}"), ("p50 ms", "p50_ms", "{:.2f}"), ("p99 ms", "p99_ms", "{:.2f}"),
            ("errors sock/timeout/non-2xx", "errors", "{}"), ("CPU % srv/wrk/other", "cpu", "{}"),
            ("procs", "nprocs", "{:.0f}"), ("USS / PSS MiB", "mem", "{}")]

SCENARIOS = [
    Scenario("hello", "hello", "wrk", "hello world (13 bytes)", columns=WRK_COLS),
    Scenario("bytes16k", "bytes16k", "wrk", "16 KiB response", columns=WRK_COLS),
    Scenario("echo64k", "echo", "wrk", "64 KiB POST echoed", lua="post64k.lua", columns=WRK_COLS),
    Scenario("sleep10ms", "sleep10ms", "wrk", "I/O-bound: sleep 10 ms (limit: slots / 10 ms)",
             columns=WRK_COLS),
    Scenario("cpu1ms", "cpu1ms", "wrk", "CPU-bound: ~1 ms of Python", columns=WRK_COLS),
    Scenario("flask", "flask_json", "wrk", "Flask JSON", columns=WRK_COLS),
    Scenario("django", "djbench.wsgi", "wrk", "Django: template from a SQLite query", columns=WRK_COLS),
    Scenario("mixed", "mixed", "mixed", "mixed: 5 % of requests sleep 200 ms; p99 of the fast ones",
             groups=("p4", "p2", "t8"), metric="fast_p99_ms", unit="ms (fast p99)", higher_better=False,
             lua="mixed.lua", ready_path="/fast",
             columns=[("fast p99 ms", "fast_p99_ms", "{:.2f}"), ("fast p50 ms", "fast_p50_ms", "{:.2f}"),
                      ("slow p50 ms", "slow_p50_ms", "{:.1f}"), ("req/s", "rps", "{:,.0f}"),
                      ("fast / slow requests", "fast_slow_n", "{}"), ("unmatched", "unmatched", "{:.0f}"),
                      ("errors sock/timeout/non-2xx", "errors", "{}"), ("CPU % srv/wrk/other", "cpu", "{}")]),
    Scenario("mixedconn", "mixed", "mixedconn",
             "mixed, by client: 5 % of the connections (3 of 64) ask only for /slow (200 ms), the others "
             "only for /fast; p99 and req/s of the fast ones",
             groups=("p4", "p2", "t8"), metric="p99_ms", unit="ms (fast p99)", higher_better=False,
             ready_path="/fast",
             columns=[("fast p99 ms", "p99_ms", "{:.2f}"), ("fast p50 ms", "p50_ms", "{:.2f}"),
                      ("fast req/s", "rps", "{:,.0f}"), ("slow req/s", "slow_rps", "{:.1f}"),
                      ("slow p50 ms", "slow_p50_ms", "{:.0f}"),
                      ("errors sock/timeout/non-2xx", "errors", "{}"), ("CPU % srv/wrk/other", "cpu", "{}")]),
    Scenario("slowclients", "hello", "slowclients",
             "slow clients: hello req/s while 1000 idle connections dribble headers",
             metric="rps_slow", columns=[
                 ("req/s with slow clients", "rps_slow", "{:,.0f}"), ("req/s without (mean of before / after)", "rps_base", "{:,.0f}"),
                 ("before / after", "before_after", "{}"),
                 ("with / without", "slow_ratio", "{:.2f}"), ("p99 ms with", "p99_ms_slow", "{:.2f}"),
                 ("slow conns open start/end", "slow_open", "{}"), ("slow reconnects", "slow_reconnects", "{:.0f}"),
                 ("errors sock/timeout/non-2xx (with)", "errors", "{}")]),
    Scenario("download", "download", "download", "100 MiB download through wsgi.file_wrapper (4 connections)",
             metric="mib_s", unit="MiB/s", conns=4, ready_path="/ping", columns=[
                 ("MiB/s", "mib_s", "{:,.0f}"), ("downloads/s", "rps", "{:.1f}"), ("p50 ms", "p50_ms", "{:.0f}"),
                 ("p99 ms", "p99_ms", "{:.0f}"), ("errors sock/timeout/non-2xx", "errors", "{}"),
                 ("CPU % srv/wrk/other", "cpu", "{}")]),
    Scenario("memory", "flask_json", "memory",
             "memory: Flask, 1 and 4 workers, after load (USS/PSS summed over the process tree)",
             groups=("m4",), metric="uss_per_worker_mib", unit="MiB USS per extra worker",
             higher_better=False, columns=[
                 ("USS per extra worker MiB", "uss_per_worker_mib", "{:.1f}"), ("USS MiB (4 workers)", "uss4_mib", "{:.1f}"),
                 ("PSS MiB (4 workers)", "pss4_mib", "{:.1f}"), ("USS MiB (1 worker)", "uss1_mib", "{:.1f}"),
                 ("PSS MiB (1 worker)", "pss1_mib", "{:.1f}"), ("procs (4 workers)", "nprocs4", "{:.0f}")]),
]

BY_NAME = {s.name: s for s in SCENARIOS}
LAYOUTS = ("p2", "t8", "p4")  # the -g choices; "m4" (memory) always runs with its scenario
GROUP_TITLES = {"p2": "2 processes x 1 thread", "t8": "1 process x 8 threads", "p4": "4 processes x 1 thread",
                "m4": "1 vs 4 single-threaded workers"}
