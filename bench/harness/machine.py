"""The machine: its load (load average, CPU idle, /proc/stat busy time), waiting for it to be
quiet (always bounded), CPU placement of server and load generator, and what to record about it.
"""
import os
import platform
import re
import shutil
import subprocess
import time


def load1():
    with open("/proc/loadavg") as f:
        return float(f.read().split()[0])


def stat_jiffies():
    """(busy, total) clock ticks of all CPUs together, from /proc/stat."""
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:9]]
    user, nice, system, idle, iowait, irq, softirq, steal = v
    busy = user + nice + system + irq + softirq + steal
    return busy, busy + idle + iowait


def idle_pct(sample=1.0):
    b0, t0 = stat_jiffies()
    time.sleep(sample)
    b1, t1 = stat_jiffies()
    return 100.0 * (1 - (b1 - b0) / max(1, t1 - t0))


def wait_quiet(load_max, max_wait, log, poll=15.0):
    """Waits until the 1-min load average is below load_max, at most max_wait seconds.
    Returns (load1, waited_seconds, quiet_reached)."""
    start = time.monotonic()
    while True:
        lv = load1()
        waited = time.monotonic() - start
        if lv < load_max:
            return lv, waited, True
        if waited + poll > max_wait:
            log(f"load1 {lv:.2f} still >= {load_max} after {waited:.0f} s: measuring anyway")
            return lv, waited, False
        log(f"load1 {lv:.2f} >= {load_max}: waiting ({waited:.0f}/{max_wait:.0f} s)")
        time.sleep(poll)


def wait_idle(idle_min, max_wait=60.0):
    """Waits (bounded) for a 1-s sample with at least idle_min % CPU idle; returns the last %."""
    deadline = time.monotonic() + max_wait
    while True:
        idle = idle_pct()
        if idle >= idle_min or time.monotonic() > deadline:
            return idle
        time.sleep(2)


def placement(mode):
    """(server_cpus, loadgen_cpus) as sets, or (None, None) for 'none'."""
    if mode == "none":
        return None, None
    cpus = sorted(os.sched_getaffinity(0))
    if len(cpus) < 2:
        raise SystemExit("--pin split needs 2 CPUs; use --pin none")
    return {cpus[0]}, {cpus[1]}


def command(argv):
    """Output of a short command (stdout+stderr), for version strings; never raises."""
    try:
        r = subprocess.run(argv, capture_output=True, text=True, timeout=20)
        return (r.stdout + r.stderr).strip()
    except (OSError, subprocess.SubprocessError) as e:
        return f"unavailable ({e.__class__.__name__})"


def describe():
    """A dict of facts about the machine for meta.json and the report header."""
    model = ""
    try:
        with open("/proc/cpuinfo") as f:
            m = re.search(r"model name\s*:\s*(.*)", f.read())
            model = m.group(1).strip() if m else ""
    except OSError:
        pass
    with open("/proc/meminfo") as f:
        mem_kb = int(f.readline().split()[1])
    return {
        "cpu_model": model,
        "cpus": os.cpu_count(),
        "mem_gib": round(mem_kb / 1048576, 1),
        "kernel": platform.release(),
        "os": _os_name(),
        "wrk": command(["wrk", "--version"]).splitlines()[0].split(" Copyright")[0] if shutil.which("wrk") else "missing",
    }


def _os_name():
    try:
        with open("/etc/os-release") as f:
            m = re.search(r'PRETTY_NAME="(.*)"', f.read())
            return m.group(1) if m else ""
    except OSError:
        return ""

