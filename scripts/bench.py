#!/usr/bin/python3
"""make bench: the paravirtual clock event device against the stock timers.

One run of one QEMU build and one guest kernel; the only difference between
the columns of every figure is the guest's clock event device: the
paravirtual device ("pv"), or the kernel parameter no-pvclockevent, which
falls back to the stock devices ("stock"), or on KVM also the paravirtual
peers (Hyper-V's synthetic timer, Xen's single-shot timer). The order of
the boots is counterbalanced so that drift of the host hits every device
alike. Every figure is the median over repetitions, with its spread
(min..max); every ratio has a 95% bootstrap interval, and a goal's verdict
is read from that interval (pvbench/analyse.py).

A run measures first, writing every boot's raw record to runs.jsonl, then
reports from those records alone; --report-only does the second half again
from a results set's runs.jsonl.gz.

Platforms (--platform, BENCH_PLATFORMS; default both): "tcg" (QEMU TCG)
and "kvm" (KVM nested in an L1 host that runs under TCG: see KvmNested).
Results go to bench/results/<date>/ (README.md, results.json, PNG plots,
runs.jsonl.gz: the raw records; logs under build/bench/). With --quick (BENCH_QUICK=1) a reduced set
runs and the exit status says whether every figure of it was produced (not
its value).
"""
import argparse
import datetime
import gzip
import json
import os
import shutil
import sys
import time

from pvbench import QUICK, SETTINGS, TOP, log
from pvbench.analyse import analyse, cyclictest_docs
from pvbench.measure import git_clean, git_rev, machine_info, run_all, run_problems
from pvbench.platforms import PLATFORMS
from pvbench.plots import plots
from pvbench.report import notes_for, print_table, sanitize, write_readme


def read_records(path):
    """The records of a run: runs.jsonl, or a results set's runs.jsonl.gz."""
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rt") as f:
        return [json.loads(l) for l in f if l.strip()]


def measure(cfg, names, runs_path, header):
    """Boot every run of every platform; every record goes to runs_path as
    it is made, and nothing else is kept for the report."""
    def put(obj):
        with open(runs_path, "a") as f:
            f.write(json.dumps(obj) + "\n")
    with open(runs_path, "w") as f:
        f.write(json.dumps({"header": header}) + "\n")
    t0 = time.monotonic()
    build_s = 0.0
    for name in names:
        pf = PLATFORMS[name]()
        ok, why = pf.available()
        if not ok:
            log(f"platform {name}: not measured: {why}")
            put({"not_measured": name, "reason": why})
            continue
        tb = time.monotonic()
        pf.prepare(cfg)
        build_s += time.monotonic() - tb
        put({"versions": pf.versions()})
        run_all(pf, cfg, cfg["logroot"], runs_path)
        put({"platform_end": name,
             "loadavg_end": open("/proc/loadavg").read().split()[:3]})
    shutil.rmtree(os.path.join(cfg["logroot"], "builds"), ignore_errors=True)
    put({"footer": {"wall_s": time.monotonic() - t0, "build_s": build_s}})


def report(recs, asked, out, cfg, source, rendered_by=None):
    """Figures, plots, README and results.json of a run, from its records
    alone. Returns the exit status: 1 if a figure is missing, or (quick
    mode) if a run had a problem."""
    s = cfg["s"]
    hdr = next((r["header"] for r in recs if "header" in r), {})
    ftr = next((r["footer"] for r in recs if "footer" in r), {})
    if hdr.get("settings"):
        s.clear()
        s.update(hdr["settings"])
        cfg.update(quick=hdr["quick"], icount=hdr["icount"])
    now = (datetime.datetime.fromisoformat(hdr["date_full"]) if hdr.get("date_full")
           else datetime.datetime.now().replace(microsecond=0))
    machine = dict(hdr.get("machine") or machine_info())
    rev = hdr.get("git", "?")
    if hdr.get("git_clean") is False:
        rev += " (uncommitted changes: the revision does not reproduce the run)"
    elif hdr.get("git_clean") is None:
        rev += " (whether the tree was clean is not recorded)"
    if rendered_by:
        rev += f"; report rendered again by {rendered_by}"
    ctx = {"cfg": cfg, "date": now.strftime("%Y-%m-%d"),
           "date_full": now.isoformat(timespec="seconds"),
           "platforms": [], "versions": {}, "machine": machine, "git": rev,
           "command": hdr.get("command", "make bench"),
           "raw": source, "set_dir": os.path.relpath(out, TOP)}
    for r in recs:
        ctx["versions"].update(r.get("versions", {}))
    ran = {r["platform"] for r in recs if r.get("platform")}
    skipped = {r["not_measured"]: r["reason"] for r in recs if "not_measured" in r}
    names = [n for n in asked if n in ran or n in skipped] or sorted(ran)
    nruns = 0
    all_recs = []
    for name in names:
        pf = PLATFORMS[name]()
        p = {"pf": pf, "reason": skipped.get(name, f"no runs in {source}")}
        ctx["platforms"].append(p)
        runs = [r for r in recs if r.get("platform") == name]
        if not runs:
            continue
        for r in recs:
            if r.get("platform_end") == name:
                machine["loadavg_end"] = r["loadavg_end"]
                machine["_loadavg_end_at"] = "after the last"
        nruns += len(runs)
        all_recs += runs
        res = analyse(pf, runs, cfg)
        p["res"] = res
        p["notes"] = notes_for(pf, res, cfg, machine)
        p["cmdlines"] = {}
        for d in pf.all_devices:
            r = next((r for r in runs if r["device"] == d.key and r["exp"] == "main"), None)
            if r and r.get("cmdline"):
                p["cmdlines"][d.key] = r["cmdline"]
        p["guest_cmds"] = {}
        for r in runs:
            for ph, doc in cyclictest_docs(r).items():
                p["guest_cmds"].setdefault(ph, doc.get("cmdline:", "?"))
        try:
            p["plots"] = plots(pf, res, cfg, out, os.path.join(cfg["logroot"], "plots"))
        except (RuntimeError, OSError) as e:
            log(f"plots: {e}")
            p["plots"] = []
    wall, build_s = ftr.get("wall_s", 0.0), ftr.get("build_s", 0.0)
    ctx["wall_min"] = (wall - build_s) / 60
    ctx["build_min"] = build_s / 60
    ctx["nruns"] = nruns
    write_readme(os.path.join(out, "README.md"), ctx)
    with open(os.path.join(out, "results.json"), "w") as f:
        json.dump({
            "date": ctx["date_full"], "settings": s, "quick": cfg["quick"],
            "icount": cfg["icount"], "wall_s": round(wall, 1),
            "build_s": round(build_s, 1),
            "versions": ctx["versions"], "machine": machine, "harness": ctx["git"],
            "platforms": {p["pf"].name: (
                {"devices": {d.key: {"label": d.label, "cpu": d.cpu, "append": d.append}
                             for d in p["pf"].all_devices},
                 "figures": p["res"]["figures"], "runs": p["res"]["runs"],
                 "histograms": p["res"]["hists"]}
                if p.get("res") else {"not_measured": p["reason"]})
                for p in ctx["platforms"]},
        }, f, indent=1, default=str)
    log(f"results: {out} (logs: {cfg['logroot']}), {wall / 60:.1f} min "
        f"({build_s / 60:.1f} min of it builds)")

    # Every figure of every measured platform must have been produced.
    missing = []
    for p in ctx["platforms"]:
        if not p.get("res"):
            continue
        for r in p["res"]["figures"]:
            for d in p["pf"].all_devices:
                if d.key in r.get("devices", [d.key]) and not r.get(d.key):
                    missing.append(f"{p['pf'].name}: {r['id']} ({r['label'].strip()}) for {d.key}")
        pfx = p["pf"]
        want = (2 + bool(pfx.scale) + bool(pfx.conditions)
                + bool(pfx.supports_stall and cfg["icount"] is None))
        if len(p.get("plots", [])) < want:
            missing.append(f"{p['pf'].name}: plots ({len(p.get('plots', []))} of {want})")
    for p in ctx["platforms"]:
        if p.get("res"):
            print_table(p)
    sys.stdout.flush()
    # The quick mode (make check's) fails on any run problem as well: the
    # bench boots are the only ones with SCHED_FIFO cyclictest, hogs and
    # stall knobs, and a splat there must not pass.
    probs = run_problems(all_recs) if cfg["quick"] else []
    for m in missing:
        print(f"bench: figure missing: {m}", file=sys.stderr)
    for x in probs:
        print(f"bench: run problem: {x}", file=sys.stderr)
    return 1 if missing or probs else 0


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--platform", default=os.environ.get("BENCH_PLATFORMS", "tcg,kvm"),
                    help="comma-separated: tcg, kvm (default both)")
    ap.add_argument("--quick", action="store_true",
                    default=os.environ.get("BENCH_QUICK", "") not in ("", "0"))
    ap.add_argument("--icount", type=int,
                    default=(int(os.environ["BENCH_ICOUNT"])
                             if os.environ.get("BENCH_ICOUNT", "") != "" else None),
                    help="TCG: -icount shift=N,sleep=off (single-threaded TCG)")
    ap.add_argument("--nice", type=int, default=int(os.environ.get("BENCH_NICE", "0")))
    ap.add_argument("--out", help="results directory (default: bench/results/DATE, "
                                  "quick: build/bench/quick)")
    ap.add_argument("--only", help="comma-separated experiments (main,stall,scale,boot); "
                                   "development only")
    ap.add_argument("--report-only", metavar="RUNS",
                    help="figures, plots and README again from a run's records "
                         "(runs.jsonl, or a results set's runs.jsonl.gz)")
    a = ap.parse_args()

    s = dict(SETTINGS)
    if a.quick:
        s.update(QUICK)
    cfg = {"s": s, "quick": a.quick, "icount": a.icount, "nice": a.nice,
           "only": a.only.split(",") if a.only else None}
    names = [x for x in a.platform.split(",") if x]
    if "all" in names:
        names = list(PLATFORMS)
    for n in names:
        if n not in PLATFORMS:
            ap.error(f"unknown platform {n}")
    now = datetime.datetime.now()
    stamp = now.strftime("%Y%m%d-%H%M%S")
    if a.report_only:
        out = a.out or os.path.dirname(os.path.abspath(a.report_only))
        cfg["logroot"] = os.path.join(TOP, "build", "bench", f"report-{stamp}")
        os.makedirs(cfg["logroot"], exist_ok=True)
        os.makedirs(out, exist_ok=True)
        return report(read_records(a.report_only), names, out, cfg,
                      os.path.basename(a.report_only), rendered_by=git_rev())

    date = now.strftime("%Y-%m-%d")
    if a.out:
        out = a.out
    elif a.quick:
        out = os.path.join(TOP, "build", "bench", "quick")
    else:
        # A new run is a new set: earlier sets are kept.
        out = os.path.join(TOP, "bench", "results", date)
        i = 2
        while os.path.exists(out):
            out = os.path.join(TOP, "bench", "results", f"{date}-{i}")
            i += 1
    cfg["logroot"] = os.path.join(TOP, "build", "bench", stamp)
    os.makedirs(cfg["logroot"], exist_ok=True)
    os.makedirs(out, exist_ok=True)
    runs_path = os.path.join(cfg["logroot"], "runs.jsonl")
    command = " ".join(
        (["BENCH_QUICK=1"] if a.quick else []) +
        ([f"BENCH_ICOUNT={a.icount}"] if a.icount is not None else []) +
        ([f"BENCH_PLATFORMS={a.platform}"] if a.platform != "tcg,kvm" else []) +
        ["make bench"])
    measure(cfg, names, runs_path, {
        "settings": s, "quick": cfg["quick"], "command": command,
        "icount": cfg["icount"], "machine": machine_info(), "git": git_rev(),
        "git_clean": git_clean(), "date_full": now.isoformat(timespec="seconds")})
    recs = read_records(runs_path)
    # The raw records go with a full results set (no machine paths in them).
    raw = "runs.jsonl"
    if not a.quick:
        raw = "runs.jsonl.gz"
        with open(runs_path) as f, gzip.open(os.path.join(out, raw), "wt") as g:
            for line in f:
                g.write(sanitize(line))
    return report(recs, names, out, cfg, raw)


if __name__ == "__main__":
    sys.exit(main())
