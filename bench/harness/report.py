"""Turns a run's raw.jsonl and meta.json into results.md (header, targets, one table per scenario
and layout, with corral/peer ratios) and chart.svg. Medians over the repetitions; error counts
are summed. `python -m harness --report DIR` re-renders an existing run."""
import json
import os
import statistics
from collections import defaultdict

from . import svg
from .scenarios import BY_NAME, GROUP_TITLES
from .servers import FAMILIES

COMPOSITE = {
    "errors": lambda m, s: f"{s['err_socket']:.0f}/{s['err_timeout']:.0f}/{s['non2xx']:.0f}",
    "cpu": lambda m, s: f"{m['cpu_srv']:.0f}/{m['cpu_wrk']:.0f}/{m['cpu_other']:.0f}",
    "mem": lambda m, s: f"{m['uss_kb'] / 1024:.1f} / {m['pss_kb'] / 1024:.1f}",
    "slow_open": lambda m, s: f"{m['slow_open_ready']:.0f}/{m['slow_open_stop']:.0f}",
    "before_after": lambda m, s: f"{m['rps_before']:,.0f} / {m['rps_after']:,.0f}",
    "fast_slow_n": lambda m, s: f"{m['fast_n']:.0f}/{m['slow_n']:.0f}",
}


def load(outdir):
    recs, events = [], []
    with open(os.path.join(outdir, "raw.jsonl")) as f:
        for line in f:
            r = json.loads(line)
            (events if "event" in r else recs).append(r)
    with open(os.path.join(outdir, "meta.json")) as f:
        meta = json.load(f)
    return meta, recs, events


def aggregate(recs):
    """{(scenario, group, server): cell} with medians (m), sums (s), runs, failures, label."""
    by = defaultdict(list)
    for r in recs:
        by[(r["scenario"], r["group"], r["server"])].append(r)
    cells = {}
    for key, rs in by.items():
        ok = [r for r in rs if r.get("status") == "ok"]
        nums = defaultdict(list)
        for r in ok:
            for k, v in r.items():
                if isinstance(v, (int, float)) and not isinstance(v, bool) and v is not None:
                    nums[k].append(v)
        sc = BY_NAME[key[0]]
        cells[key] = {
            "label": rs[0]["label"], "family": rs[0]["family"], "n": len(ok), "fail": len(rs) - len(ok),
            "m": {k: statistics.median(v) for k, v in nums.items()},
            "s": {k: sum(v) for k, v in nums.items()},
            "runs": [r.get(sc.metric) for r in ok],
            "errors": sorted({r["error"] for r in rs if r.get("error")}),
            "notes": sorted({n for r in rs for n in r.get("notes", [])}),
        }
    return cells


def cell_value(cell, key, fmt):
    if cell is None or cell["n"] == 0:
        return "-"
    if key in COMPOSITE:
        try:
            return COMPOSITE[key](cell["m"], cell["s"])
        except KeyError:
            return "-"
    v = cell["m"].get(key)
    return "-" if v is None else fmt.format(v)


def ordered(cells, scenario, group):
    keys = [k for k in cells if k[0] == scenario and k[1] == group]
    return sorted(keys, key=lambda k: FAMILIES.index(cells[k]["family"]))


def corral_of(cells, scenario, group):
    for k in ordered(cells, scenario, group):
        if cells[k]["family"] == "corral" and cells[k]["n"]:
            return cells[k]["m"].get(BY_NAME[scenario].metric)
    return None


def ratio(a, b):
    if a is None or b is None:
        return "-"
    return f"{a / b:.2f}" if b else "∞ (peer: 0)"


def scenario_tables(cells, scenarios):
    out = []
    for sc in scenarios:
        for group in sc.groups:
            keys = ordered(cells, sc.name, group)
            if not keys:
                continue
            direction = "> 1: corral better" if sc.higher_better else "< 1: corral better"
            out.append(f"\n### {sc.name} — {GROUP_TITLES[group]}\n\n{sc.title}. Headline: {sc.unit}"
                       f" ({'higher' if sc.higher_better else 'lower'} is better).\n")
            heads = [h for h, _, _ in sc.columns]
            out.append("| server | " + " | ".join(heads) + f" | runs | corral / this ({direction}) |")
            out.append("|---|" + "---:|" * len(heads) + "---|---:|")
            ref = corral_of(cells, sc.name, group)
            for k in keys:
                c = cells[k]
                if c["n"] == 0:
                    out.append(f"| {c['label']} | FAILED: {'; '.join(c['errors'])[:300]} |" + " |" * (len(heads) + 1))
                    continue
                vals = [cell_value(c, key, fmt) for _, key, fmt in sc.columns]
                runs = " / ".join(svg._fmt(v) for v in c["runs"] if v is not None)
                me = c["m"].get(sc.metric)
                rat = "—" if c["family"] == "corral" else ratio(ref, me)
                extra = f" ({c['fail']} failed)" if c["fail"] else ""
                out.append(f"| {c['label']}{extra} | " + " | ".join(vals) + f" | {runs} | {rat} |")
            for k in keys:
                for n in cells[k]["notes"] + (cells[k]["errors"] if cells[k]["n"] else []):
                    out.append(f"\n- {cells[k]['label']}: {n}")
    return out


def targets(cells):
    """The issue's targets, as ratios from this run."""
    def m(sc, g, fam, key=None):
        for k in ordered(cells, sc, g):
            if cells[k]["family"] == fam and cells[k]["n"]:
                return cells[k]["m"].get(key or BY_NAME[sc].metric)
        return None

    rows = []
    for sc, what in (("hello", "req/s"), ("flask", "req/s")):
        rows.append((f"{sc} 2 processes", f"corral / Granian 2p ({what})", m(sc, "p2", "corral"), m(sc, "p2", "granian"), ""))
        rows.append((f"{sc} 2 processes", f"corral / gunicorn sync 2 ({what})", m(sc, "p2", "corral"), m(sc, "p2", "gunicorn"), ""))
        rows.append((f"{sc} 1x8", f"corral worker / Granian 1x8 ({what})", m(sc, "t8", "corral"), m(sc, "t8", "granian"), ""))
    for sc, label, rate in (("mixed", "mixed", "req/s"), ("mixedconn", "mixed by client", "fast req/s")):
        for g, gt in (("p4", "4 processes"), ("p2", "2 processes"), ("t8", "1x8")):
            p99 = m(sc, g, "corral")
            for fam, name, want in (("granian", "Granian", 0.1), ("gunicorn", "gunicorn", 1.0)):
                peer = m(sc, g, fam)
                ok = "" if g != "p4" or not (p99 and peer) else (f"meets <= {want}" if p99 / peer <= want else f"ABOVE {want}")
                rows.append((f"{label} {gt}", f"corral / {name}: p99 of fast requests (< 1: corral better)", p99, peer, ok))
            rps, gun = m(sc, g, "corral", "rps"), m(sc, g, "gunicorn", "rps")
            ok = "" if g != "p4" or not (rps and gun) else ("meets >= 3" if rps / gun >= 3 else "BELOW 3")
            rows.append((f"{label} {gt}", f"corral / gunicorn: {rate}", rps, gun, ok))
    for g, gt in (("p2", "2 processes"), ("t8", "1x8")):
        with_, without = m("slowclients", g, "corral", "rps_slow"), m("slowclients", g, "corral", "rps_base")
        ok = "" if not (with_ and without) else ("meets >= 0.90" if with_ / without >= 0.9 else "BELOW 0.90")
        rows.append((f"slow clients {gt}", "corral req/s with / without 1000 slow clients", with_, without, ok))
    rows.append(("sleep10ms 1x8", "corral req/s / 800 (8 threads / 10 ms)", m("sleep10ms", "t8", "corral"), 800.0, ""))
    rows.append(("sleep10ms 2 processes", "corral req/s / 200 (2 / 10 ms)", m("sleep10ms", "p2", "corral"), 200.0, ""))
    per = m("memory", "m4", "corral")
    rows.append(("memory Flask", "corral USS per extra worker, MiB", per, False, ""))
    for fam, name in (("granian", "Granian"), ("gunicorn", "gunicorn sync"), ("uwsgi", "uWSGI"), ("apache", "mod_wsgi")):
        rows.append(("memory Flask", f"corral / {name}: USS per extra worker (< 1: corral better)", per, m("memory", "m4", fam), ""))
    out = ["\n## Targets (ratios from this run)\n", "| scenario | what | corral | peer / reference | ratio | |",
           "|---|---|---:|---:|---:|---|"]
    for sc, what, a, b, note in rows:
        if a is None or b is None:  # not measured in this run
            continue
        fb = "" if b is False else svg._fmt(b)
        out.append(f"| {sc} | {what} | {svg._fmt(a)} | {fb} | {ratio(a, b) if b else ''} | {note} |")
    return out


def placement_split(o):
    # Runs before --slow-cpu existed placed the slow clients beside wrk.
    beside_server = o.get("slow_cpu", "load") == "server"
    return ("server (all its processes) on CPU 0, wrk on CPU 1; the slow clients on CPU "
            + ("0, beside the server." if beside_server else "1, beside wrk."))


def header(meta, recs, events):
    loads = [r["load1"] for r in recs if isinstance(r.get("load1"), (int, float))]
    other = [r["cpu_other"] for r in recs if isinstance(r.get("cpu_other"), (int, float))]
    o = meta["options"]
    lines = [f"# corral benchmark — run {meta['run_id']}\n",
             f"Started {meta['started']} UTC, finished {meta.get('finished', '(unfinished)')} UTC. "
             f"Command: `{meta['command']}`\n",
             f"- Machine: {meta['machine']['cpus']} CPUs ({meta['machine']['cpu_model']}), "
             f"{meta['machine']['mem_gib']} GiB, {meta['machine']['os']}, kernel {meta['machine']['kernel']}; "
             f"{meta['machine']['wrk']}",
             f"- Placement `{o['pin']}`: " + (placement_split(o) if o["pin"] == "split" else "nothing pinned."),
             f"- Load: wrk -t1 -c{o['connections']} -d{o['duration']}s --latency, warm-up {o['warmup']} s "
             f"(discarded), {o['repetitions']} repetition(s), servers alternating (forward, then reverse order).",
             f"- Machine load: 1-min load average {min(loads, default=0):.2f}–{max(loads, default=0):.2f} during "
             f"the measurements; CPU used by other processes up to {max(other, default=0):.0f} % of the machine "
             f"(column \"other\"; a run above {o['other_max']} % was repeated once)."]
    lines.append(f"- /proc/loadavg at the start: {meta.get('loadavg_start', '?')}; at the end: {meta.get('loadavg_end', '?')}.")
    if meta.get("interrupted"):
        lines.append("- **The run was interrupted**: the tables hold what was measured until then.")
    for e in events:
        if e.get("event") == "scenario" and not e.get("quiet"):
            lines.append(f"- {e['scenario']}: the machine did not get quiet (load1 {e['load1']:.2f} after {e['waited_s']} s).")
    for k, v in meta.get("versions", {}).items():
        lines.append(f"- {k}: {v}")
    if meta.get("cpu1ms_ms"):
        lines.append(f"- cpu1ms: {meta['cpu1ms_ms']:.3f} ms of Python per request (measured on the server CPU).")
    for fam, why in meta.get("skipped", {}).items():
        lines.append(f"- **{fam} skipped**: {why}")
    return lines


def write(outdir, latest_dir=None):
    meta, recs, events = load(outdir)
    cells = aggregate(recs)
    scenarios = [BY_NAME[s] for s in meta["scenarios"]]
    md = header(meta, recs, events) + ["\n![chart](CHART)\n"] + targets(cells) + \
        ["\n## Scenarios\n", "Columns: CPU % of the whole machine used by the server's process tree / "
         "the load generator / everything else; errors = wrk socket errors (connect+read+write) / "
         "timeouts / non-2xx, summed over the runs (servers that close every connection make wrk count "
         "read errors that are not failed requests); memory after the run."] + \
        scenario_tables(cells, scenarios) + ["", "See bench/README.md for the method and caveats.", ""]
    panels = []
    for sc in scenarios:
        for g in sc.groups:
            keys = ordered(cells, sc.name, g)
            if keys:
                rows = [(cells[k]["label"], cells[k]["m"].get(sc.metric) if cells[k]["n"] else None,
                         cells[k]["family"] == "corral", "failed") for k in keys]
                panels.append((f"{sc.name} ({GROUP_TITLES[g]})", sc.unit, sc.higher_better, rows))
    chart = svg.chart(f"corral vs peers — run {meta['run_id']}", panels)
    text = "\n".join(md)
    with open(os.path.join(outdir, "results.md"), "w") as f:
        f.write(text.replace("CHART", "chart.svg"))
    with open(os.path.join(outdir, "chart.svg"), "w") as f:
        f.write(chart)
    if latest_dir:
        rel = os.path.relpath(outdir, latest_dir)
        with open(os.path.join(latest_dir, "latest.md"), "w") as f:
            f.write(text.replace("CHART", "latest.svg") + f"Raw data: [{rel}/]({rel}/)\n")
        with open(os.path.join(latest_dir, "latest.svg"), "w") as f:
            f.write(chart)
    return os.path.join(outdir, "results.md")
