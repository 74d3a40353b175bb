"""Processes the harness starts: spawning (pinned), the server's process tree, its CPU time and
memory (USS/PSS/RSS from /proc/PID/smaps_rollup), and stopping it by PID only.

A tree is the started process, its descendants, and every process of the session it leads (it is
started with start_new_session, so daemons that were re-parented to init are still found). Each
member is identified by PID *and* start time, so a recycled PID is never signalled.
"""
import os
import signal
import subprocess
import time


def spawn(argv, cpus=None, log=None, cwd=None, env=None, stdout=None):
    """Starts argv in a new session, pinned to `cpus` (a set) if given. Output goes to `log`."""
    def pin():
        if cpus:
            os.sched_setaffinity(0, cpus)
    out = stdout if stdout is not None else (open(log, "ab") if log else subprocess.DEVNULL)
    try:
        return subprocess.Popen(argv, cwd=cwd, env=env, stdin=subprocess.DEVNULL, stdout=out,
                                stderr=subprocess.STDOUT if log else None,
                                start_new_session=True, preexec_fn=pin)
    finally:
        if log and stdout is None:
            out.close()


def _stat(pid):
    """(ppid, session, starttime, state, utime+stime+cutime+cstime) of a pid, or None."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            s = f.read()
    except OSError:
        return None
    rest = s[s.rindex(")") + 2:].split()
    # rest[0]=state, [1]=ppid, [3]=session, [11..14]=utime stime cutime cstime, [19]=starttime
    return (int(rest[1]), int(rest[3]), int(rest[19]), rest[0],
            int(rest[11]) + int(rest[12]) + int(rest[13]) + int(rest[14]))


def _all_pids():
    return [int(d) for d in os.listdir("/proc") if d.isdigit()]


class Tree:
    """The process tree of one started server (or any process started with spawn)."""

    def __init__(self, popen):
        self.popen = popen
        self.root = popen.pid
        self.seen = {}  # pid -> starttime, every member ever observed

    def members(self):
        """{pid: stat} of the live tree now (zombies excluded); remembers every member."""
        table = {p: st for p in _all_pids() if (st := _stat(p)) is not None}
        kids = {}
        for p, st in table.items():
            kids.setdefault(st[0], []).append(p)
        found, todo = set(), [self.root]
        while todo:
            p = todo.pop()
            if p in found or p not in table:
                continue
            found.add(p)
            todo.extend(kids.get(p, []))
        found |= {p for p, st in table.items() if st[1] == self.root}
        live = {p: table[p] for p in found if table[p][3] != "Z"}
        for p, st in live.items():
            self.seen.setdefault(p, st[2])
        return live

    def cpu_ticks(self):
        return sum(st[4] for st in self.members().values())

    def memory(self):
        """Summed over the tree: nprocs, uss_kb (Private_Clean+Private_Dirty), pss_kb, rss_kb."""
        n = uss = pss = rss = 0
        for p in self.members():
            try:
                with open(f"/proc/{p}/smaps_rollup") as f:
                    v = {k: int(x.split()[0]) for k, _, x in (ln.partition(":") for ln in f) if x.strip().endswith("kB")}
            except (OSError, ValueError):
                continue
            n += 1
            uss += v.get("Private_Clean", 0) + v.get("Private_Dirty", 0)
            pss += v.get("Pss", 0)
            rss += v.get("Rss", 0)
        return {"nprocs": n, "uss_kb": uss, "pss_kb": pss, "rss_kb": rss}

    def alive(self):
        return self.popen.poll() is None

    def _still(self, pid):
        st = _stat(pid)
        return st is not None and st[3] != "Z" and self.seen.get(pid) == st[2]

    def stop(self, term_timeout=20.0, straggler_timeout=5.0):
        """SIGTERM to the root; SIGKILL to whatever of the tree is left after the timeouts.
        Returns a list of notes (empty when everything stopped on TERM)."""
        notes = []
        self.members()
        if self.popen.poll() is None:
            try:
                os.kill(self.root, signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                self.popen.wait(timeout=term_timeout)
            except subprocess.TimeoutExpired:
                notes.append(f"pid {self.root} ignored SIGTERM for {term_timeout:.0f} s: SIGKILL")
                os.kill(self.root, signal.SIGKILL)
                self.popen.wait(timeout=10)
        deadline = time.monotonic() + straggler_timeout
        left = [p for p in self.seen if p != self.root and self._still(p)]
        while left and time.monotonic() < deadline:
            time.sleep(0.1)
            left = [p for p in left if self._still(p)]
        for p in left:
            notes.append(f"leftover pid {p} of the tree: SIGKILL")
            try:
                os.kill(p, signal.SIGKILL)
            except ProcessLookupError:
                pass
        return notes


def children_cpu_ticks():
    """CPU time (in clock ticks) of this process's waited-for children so far (wrk runs)."""
    import resource
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return (r.ru_utime + r.ru_stime) * os.sysconf("SC_CLK_TCK")
