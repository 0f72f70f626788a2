"""From run records to figures: per-run measurements, then every figure
over the repetitions, with its ratio and the goal's verdict."""
import base64
import gzip
import json
import math
import random
import re
import statistics
import zlib

from .measure import parse_irqs


# From run records to figures


def agg(values):
    """Median of the repetitions and their spread."""
    v = [x for x in values if x is not None]
    if not v:
        return None
    return {"median": statistics.median(v), "min": min(v), "max": max(v),
            "n": len(v), "values": v}


def cyclictest_docs(rec):
    """{phase: cyclictest JSON document} of one run."""
    out = {}
    for _, l in rec["lines"]:
        if l.startswith("PVTIME-BENCH cyclictest"):
            _, kind, phase, doc = l.split(" ", 3)
            try:
                if kind == "cyclictest-gz":
                    doc = gzip.decompress(base64.b64decode(doc)).decode()
                out[phase] = json.loads(doc)
            except (ValueError, OSError, EOFError):
                rec["problems"].append(f"{phase}: unreadable cyclictest JSON")
    return out


def pooled_hist(doc):
    """Histogram of all threads of one cyclictest run: {us: count}, the
    number of samples (including overflows) and the exact maximum."""
    h, n, mx = {}, 0, 0
    for t in doc["thread"].values():
        for b, c in t.get("histogram", {}).items():
            h[int(b)] = h.get(int(b), 0) + c
        n += t["cycles"]
        mx = max(mx, t["max"])
    return h, n, mx


def percentile(h, n, p, hist_us):
    """Lateness at quantile p (us): the smallest 1-us bucket holding at
    least p of the samples; samples beyond the histogram count as
    hist_us (a lower bound, flagged in the report)."""
    if n == 0:
        return None
    want, c = p * n, 0
    for b in sorted(h):
        c += h[b]
        if c >= want:
            return b
    return hist_us


def lateness(doc, hist_us):
    h, n, mx = pooled_hist(doc)
    inhist = sum(h.values())
    per_cpu = []
    for t in doc["thread"].values():
        th = {int(b): c for b, c in t.get("histogram", {}).items()}
        per_cpu.append({"cpu": t.get("cpu"), "samples": t["cycles"],
                        "p50": percentile(th, t["cycles"], 0.5, hist_us),
                        "p99": percentile(th, t["cycles"], 0.99, hist_us),
                        "max": t["max"]})
    return {"p50": percentile(h, n, 0.5, hist_us),
            "p99": percentile(h, n, 0.99, hist_us),
            "p99.9": percentile(h, n, 0.999, hist_us),
            "max": mx, "samples": n, "overflows": n - inhist,
            "threads": len(doc["thread"]), "per_cpu": per_cpu}


def window(pf, device, rec, a, b):
    m = rec["marks"]
    if a not in m or b not in m or "counters" not in m[a] or "counters" not in m[b]:
        return None
    ia = pf.interactions(device, m[a], m[b])
    ia["guest_s"] = m[b]["guest"] - m[a]["guest"]
    ia["wall_s"] = m[b]["wall"] - m[a]["wall"]
    ia["cpu_s"] = m[b].get("cpu_s", 0) - m[a].get("cpu_s", 0)
    return ia


def per1000(ia, key):
    if not ia or not ia["events"]:
        return None
    return 1000.0 * ia[key] / ia["events"]


def boot_sample(rec):
    seen = {}
    for _, l in rec["lines"]:
        m = re.match(r"PVTIME-BENCH l1-seen (\S+) uptime=([0-9.]+)", l)
        if m:
            seen[m.group(1)] = float(m.group(2))
    for t, l in rec["lines"]:
        m = re.match(r"PVTIME-BENCH boot init=([0-9.]+) now=([0-9.]+)", l)
        if m:
            init, now = float(m.group(1)), float(m.group(2))
            if "qemu-start" in seen and "boot" in seen:
                # Nested: L1 saw L2's line (boot - qemu-start) after it
                # started L2's QEMU, in L1's time.
                t = seen["boot"] - seen["qemu-start"]
            # The host saw the line at wall time t; the guest wrote it
            # (now - init) guest seconds after it started /init.
            return {"guest_s": init, "wall_s": t - (now - init)}
    return None


def guest_devices(rec):
    for _, l in rec["lines"]:
        m = re.match(r"PVTIME-BENCH boot .*clocksource=(\S+) clockevent=(\S+)", l)
        if m:
            return m.group(1), m.group(2)
    return None, None


def irq_deltas(rec):
    """{phase: {interrupt name: count}} from the guest's /proc/interrupts
    before and after each phase."""
    snap = {}
    for _, l in rec["lines"]:
        m = re.match(r"PVTIME-BENCH irqs (\S+) (before|after) (.*)", l)
        if m:
            snap[(m.group(1), m.group(2))] = parse_irqs(m.group(3))
    # Marks that carry the counts (sync by sleeping): their windows.
    m = rec["marks"]
    for ph, a, b in (("cyclic-idle", "cyclic-idle-begin", "cyclic-idle-end"),
                     ("cyclic-busy", "cyclic-busy-begin", "cyclic-busy-end"),
                     ("idle", "idle-begin", "idle-end")):
        if (ph, "before") not in snap and "irqs" in m.get(a, {}) and "irqs" in m.get(b, {}):
            snap[(ph, "before")], snap[(ph, "after")] = m[a]["irqs"], m[b]["irqs"]
    out = {}
    for (ph, when), d in snap.items():
        if when == "before" and (ph, "after") in snap:
            a = snap[(ph, "after")]
            out[ph] = {k: a.get(k, 0) - v for k, v in d.items() if a.get(k, 0) - v}
    return out


# Intervals and verdicts. A ratio is of the medians over the repetitions;
# its interval is a 95% percentile bootstrap: each arm's repetitions
# resampled independently with replacement, BOOTSTRAP times, with a seed
# fixed by the figure, so that rendering a set again gives the same
# interval. A goal is judged only with MIN_REPS repetitions in every arm
# it compares: "met" when the interval lies below the goal's bound,
# "missed" when it lies above, "open" when it contains the bound.
BOOTSTRAP = 10000
MIN_REPS = 10


def ratio(a, b):
    """Ratio of two agg() medians, or None."""
    if not a or not b or not b["median"]:
        return None
    return a["median"] / b["median"]


def ratio_ci(a, b, seed):
    """95% bootstrap interval [lo, hi] of ratio(a, b), or None with fewer
    than two repetitions in an arm."""
    if not a or not b or a["n"] < 2 or b["n"] < 2:
        return None
    rng = random.Random(zlib.crc32(seed.encode()))
    va, vb = a["values"], b["values"]
    out = []
    for _ in range(BOOTSTRAP):
        den = statistics.median(rng.choices(vb, k=len(vb)))
        if den:
            out.append(statistics.median(rng.choices(va, k=len(va))) / den)
    if len(out) < BOOTSTRAP // 2:
        return None
    out.sort()
    return [out[int(0.025 * (len(out) - 1))], out[math.ceil(0.975 * (len(out) - 1))]]


def verdict(judged, bound):
    """A goal's verdict from its (interval, arm, arm) comparisons, each
    ratio to lie below bound: "met", "missed", "open", or "few" (an arm
    has fewer than MIN_REPS repetitions: not judged)."""
    for ci, a, b in judged:
        if not a or not b or min(a["n"], b["n"]) < MIN_REPS or ci is None:
            return "few"
    if any(ci[0] > bound for ci, _, _ in judged):
        return "missed"
    if all(ci[1] < bound for ci, _, _ in judged):
        return "met"
    return "open"


def analyse(pf, runs, cfg):
    """Per-run measurements, then the figures: medians over repetitions."""
    s = cfg["s"]
    hist_us = s["hist_us"]
    dev = {d.key: d for d in pf.all_devices}
    per = []       # one dict of measurements per run
    hists = {}     # (phase key, device) -> pooled histogram over all reps
    for rec in runs:
        d = dev[rec["device"]]
        docs = cyclictest_docs(rec)
        meas = {"name": rec["name"], "exp": rec["exp"], "device": rec["device"],
                "smp": rec["smp"], "stall_us": rec["stall_us"], "rep": rec["rep"]}
        cs, ce = guest_devices(rec)
        meas["clocksource"], meas["clockevent"] = cs, ce
        for phase, doc in docs.items():
            meas[f"lat:{phase}"] = lateness(doc, hist_us)
            key = (rec["exp"], rec["smp"], rec["stall_us"], phase)
            h, n, _ = pooled_hist(doc)
            acc = hists.setdefault(key, {}).setdefault(rec["device"], {"h": {}, "n": 0})
            for b, c in h.items():
                acc["h"][b] = acc["h"].get(b, 0) + c
            acc["n"] += n
            expect = s["cyclic_s"] * 1e6 / s["interval_us"] * len(doc["thread"])
            meas[f"lat:{phase}"]["loops_expected"] = expect
        for phase in ("cyclic-idle", "cyclic-busy"):
            ia = window(pf, d, rec, f"{phase}-begin", f"{phase}-end")
            if ia:
                meas[f"ia:{phase}"] = ia
        ia = window(pf, d, rec, "idle-begin", "idle-nohz")
        if ia:
            meas["ia:nohz"] = ia
        ia = window(pf, d, rec, "idle-begin", "idle-end")
        if ia and ia["guest_s"] > 0:
            meas["idle_cpu_ms_per_s"] = 1000.0 * ia["cpu_s"] / ia["guest_s"]
        if rec["exp"] in ("main", "boot") and not rec["stall_us"]:
            meas["boot"] = boot_sample(rec)
        meas["irqs"] = irq_deltas(rec)
        meas["problems"] = rec["problems"]
        per.append(meas)

    def vals(device, pred, get):
        out = []
        for m in per:
            if m["device"] == device and pred(m):
                try:
                    out.append(get(m))
                except (KeyError, TypeError, ZeroDivisionError):
                    pass
        return agg(out)

    main = lambda m: m["exp"] == "main"  # noqa: E731
    # Rows of the main and boot-only experiments have the controls too.
    mainbench = pf.all_devices
    figs = []   # rows of the table

    def row(fid, label, unit, pred, get, goal=None, devices=None):
        devices = devices or pf.devices
        r = {"id": fid, "label": label, "unit": unit, "goal": goal,
             "devices": [d.key for d in devices]}
        for d in devices:
            r[d.key] = vals(d.key, pred, get)
        figs.append(r)
        return r

    peers = [d.key for d in pf.devices if d.peer]

    def best_peer(r):
        """The peer with the lowest median."""
        v = [(r[k]["median"], k) for k in peers if r.get(k)]
        return min(v)[1] if v else None

    # Goals: (text, bound, against the best peer too): the ratio PV/stock
    # (and PV/best peer) must lie below the bound; judged by the ratio's
    # interval (verdict()).
    G_LE = ("PV ≤ stock", 1.0, False)
    G_LT = ("PV < stock", 1.0, False)
    G_LE_PEER = ("PV ≤ stock and ≤ best peer", 1.0, True)
    G_STALL = ("PV ≤ 0.1× stock", 0.1, False)
    G_BOOT = ("PV ≤ 0.9× stock", 0.9, False)
    GOALS = {"le": G_LE, "lt": G_LT}
    for phase, what in (("cyclic-idle", "idle guest"), ("cyclic-busy", "busy guest")):
        for q in ("p50", "p99", "p99.9", "max"):
            row(f"lat.{phase}.{q}", f"lateness {q}, {what}", "µs", main,
                lambda m, p=phase, q=q: m[f"lat:{p}"][q],
                (G_LE_PEER if peers else G_LE) if q == "p99" else None, mainbench)
    for key, what, goal, devs, exp, phase in pf.conditions:
        for q in ("p50", "p99"):
            row(f"cond.{key}.{q}", f"lateness {q}, {what}", "µs",
                lambda m, exp=exp: m["exp"] == exp,
                lambda m, q=q, phase=phase: m[f"lat:{phase}"][q],
                GOALS[goal] if q == "p99" else None, devs)
    if pf.supports_stall and cfg["icount"] is None:
        for st in s["stalls_us"]:
            pred = (main if st == 0 else
                    (lambda m, st=st: m["exp"] == "stall" and m["stall_us"] == st))
            for q in ("p50", "p99"):
                row(f"stall.{st}.{q}", f"lateness {q}, stall {st} µs"
                    + (" (= idle guest)" if not st else ""), "µs", pred,
                    lambda m, q=q: m["lat:cyclic-idle"][q],
                    G_STALL if (st and q == "p99") else None)
        # What the stall added, against stall 0 of the same repetition.
        zero = {(m["device"], m["rep"]): m for m in per if main(m)}
        for st in s["stalls_us"]:
            if not st:
                continue
            for q in ("p50", "p99"):
                row(f"stall.{st}.{q}.added", f"  added by the stall: {q}(stall {st}) − {q}(0)",
                    "µs", lambda m, st=st: m["exp"] == "stall" and m["stall_us"] == st,
                    lambda m, q=q: (m["lat:cyclic-idle"][q]
                                    - zero[(m["device"], m["rep"])]["lat:cyclic-idle"][q]))
    for w, what in (("nohz", "NO_HZ idle"), ("cyclic-idle", "cyclictest 1 kHz")):
        row(f"ia.{w}.total", f"interactions per 1000 events, {what}", "",
            main, lambda m, w=w: per1000(m[f"ia:{w}"], "total"), G_LE, mainbench)
        for k, kl in pf.ia_parts:
            row(f"ia.{w}.{k}", f"  {kl} per 1000 events", "", main,
                lambda m, w=w, k=k: per1000(m[f"ia:{w}"], k), None, mainbench)
        row(f"ia.{w}.rate", f"  timer events per second, {what}", "/s", main,
            lambda m, w=w: m[f"ia:{w}"]["events"] / m[f"ia:{w}"]["guest_s"], None, mainbench)
    bootp = lambda m: m["exp"] in ("main", "boot") and m.get("boot")  # noqa: E731
    row("boot.wall", "boot to /init, wall", "s", bootp, lambda m: m["boot"]["wall_s"],
        G_BOOT, mainbench)
    row("boot.guest", "boot to /init, guest time", "s", bootp, lambda m: m["boot"]["guest_s"],
        G_BOOT, mainbench)
    row("idle.cpu", "host CPU per second of idle guest", "ms/s", main,
        lambda m: m["idle_cpu_ms_per_s"], G_LE, mainbench)
    for n in (s["scale_smp"] if pf.scale else []):
        pred = (lambda m, n=n: m["smp"] == n and m["exp"] in ("scale", "main")
                and not m["stall_us"])
        flat = ("PV ≤ 1.1× PV at 1 vCPU", 1.1, False)
        row(f"scale.{n}.p99", f"scale: lateness p99, {n} vCPU", "µs", pred,
            lambda m: m["lat:cyclic-idle"]["p99"], flat if n != s["scale_smp"][0] else None)
        row(f"scale.{n}.ia", f"scale: interactions per event, {n} vCPU", "", pred,
            lambda m: per1000(m["ia:cyclic-idle"], "total") / 1000.0,
            flat if n != s["scale_smp"][0] else None)
    # Ratios, their intervals and the goals' verdicts
    base = pf.devices[0].key
    for r in figs:
        st, pv = r.get(base), r.get("pv")
        r["ratio"] = ratio(pv, st)
        devs = [dev[k] for k in r["devices"] if not dev[k].baseline]
        r["ratios"] = {d.key: ratio(r.get(d.key), st) for d in devs}
        r["cis"] = {d.key: ratio_ci(r.get(d.key), st, f"{r['id']}|{d.key}")
                    for d in devs}
        bp = best_peer(r)
        r["ratio_peer"] = ratio(pv, r.get(bp)) if bp else None
        r["ci_peer"] = ratio_ci(pv, r.get(bp), f"{r['id']}|peer") if bp else None
        r["verdict"] = None
        goal = r["goal"]
        if goal and r["id"].startswith("scale."):
            # PV at N vCPUs against PV at the first count.
            n0 = s["scale_smp"][0]
            ref = next((x for x in figs if x["id"] == f"scale.{n0}.{r['id'].split('.')[2]}"), {})
            r["flat"] = ratio(pv, ref.get("pv"))
            r["ci_flat"] = ratio_ci(pv, ref.get("pv"), f"{r['id']}|flat")
            r["flat_stock"] = ratio(st, ref.get(base))
            r["verdict"] = verdict([(r["ci_flat"], pv, ref.get("pv"))], goal[1])
        elif goal:
            judged = [(r["cis"].get("pv"), pv, st)]
            if goal[2] and bp:
                judged.append((r["ci_peer"], pv, r.get(bp)))
            r["verdict"] = verdict(judged, goal[1])
        if goal:
            r["goal"] = goal[0]
    return {"runs": per, "figures": figs,
            "hists": {"|".join(map(str, k)): v for k, v in hists.items()}}


# ---------------------------------------------------------------------------
