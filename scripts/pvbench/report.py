"""Reporting: the README of a results set and the table printed at the end
of a run, from the figures (analyse) and the records."""
import os
import re

from . import TOP
from .plots import fmt
from .analyse import BOOTSTRAP, MIN_REPS
from .texts import METHOD, METHOD_KVM, STATIC_NOTES


def cell(a, unit):
    if not a:
        return "–"
    m = fmt(a["median"])
    if a["n"] > 1:
        return f"{m} [{fmt(a['min'])}–{fmt(a['max'])}]"
    return m


# A goal's verdict as the README shows it.
VERDICTS = {"met": "met", "missed": "**missed**", "open": "open",
            "few": "not judged"}


def ratio_cell(x, ci):
    """A ratio with its interval: "0.86 [0.70–1.05]"."""
    if x is None:
        return "–"
    return f"{x:.2f} [{ci[0]:.2f}–{ci[1]:.2f}]" if ci else f"{x:.2f}"


def notes_for(pf, res, cfg, ctx_load):
    """Explanations a reviewer will ask for, from the data of this run."""
    s = cfg["s"]
    n = []
    if cfg["icount"] is not None:
        n.append(f"-icount shift={cfg['icount']},sleep=off: one guest instruction "
                 f"is 2^{cfg['icount']} ns of guest time, all vCPUs take turns on one "
                 "host thread, and guest time leaps over idle periods. Lateness is "
                 "then guest time spent executing (the wakeup path, and other vCPUs' "
                 "turns), not host scheduling, and the boot wall time is not "
                 "comparable with a run without -icount. The stall rows are not "
                 "measured: a host stall does not advance guest time. Host CPU is "
                 "per second of guest time.")
    # Which devices the guests really used.
    used = {}
    for m in res["runs"]:
        used.setdefault(m["device"], set()).add(f"{m['clockevent']} (clocksource {m['clocksource']})")
    n.append("Devices the guests used (per-CPU clock event device from "
             "/proc/timer_list in every boot): " +
             "; ".join(f"{k}: {', '.join(sorted(v))}" for k, v in used.items()) + ".")
    # Missed wakeups and overflows.
    for phase in ("cyclic-idle", "cyclic-busy"):
        parts, ovs = [], []
        for d in pf.all_devices:
            ls = [m[f"lat:{phase}"] for m in res["runs"]
                  if m["device"] == d.key and m["exp"] == "main" and f"lat:{phase}" in m]
            if not ls:
                continue
            got = sum(x["samples"] for x in ls)
            exp = sum(x["loops_expected"] for x in ls)
            ov = sum(x["overflows"] for x in ls)
            if exp and got < 0.98 * exp:
                parts.append(f"{d.key} {got} of {exp:.0f} ({100 * (1 - got / exp):.1f}% missed)")
            if ov:
                ovs.append(f"{d.key} {ov}")
        if parts:
            n.append(f"{phase}: wakeups measured against periods run: " + ", ".join(parts) +
                     ". cyclictest skips the periods that passed while a wakeup was "
                     "late (and the thread's start-up counts as run time), so a "
                     "wakeup later than one period hides periods that no percentile "
                     "contains: the tail is worse than shown.")
        if ovs:
            n.append(f"{phase}: samples beyond the {s['hist_us']} µs histogram "
                     "(counted at its end): " + ", ".join(ovs) + ".")
    la = ctx_load.get("loadavg"), ctx_load.get("loadavg_end")
    # Only the load before the first boot is other work's: the load at the
    # end counts the benchmark's own QEMU (its vCPU threads, main loop).
    if la[0]:
        end = (f", {la[1][0]} " + ctx_load.get("_loadavg_end_at", "after the last")
               if la[1] else "")
        busy = float(la[0][0]) > 0.5 * (os.cpu_count() or 1)
        n.append(f"Host load average (1 min) on {os.cpu_count()} cores: {la[0][0]} before "
                 f"the first boot{end}, the benchmark's own QEMU included. " +
                 ("The host was busy with other work: lateness tails and boot times then "
                  "measure the host as much as the device; medians of the interaction "
                  "counts do not depend on it." if busy else
                  "The host was otherwise idle when the run began."))
    # Where the EOIs beyond the timer's own come from (guest's view).
    for ph, what in (("idle", "NO_HZ idle"), ("cyclic-idle", "cyclictest")):
        parts = []
        for d in pf.all_devices:
            tot, cnt = {}, 0
            for m in res["runs"]:
                if m["device"] == d.key and m["exp"] == "main" and ph in m.get("irqs", {}):
                    cnt += 1
                    for k, v in m["irqs"][ph].items():
                        tot[k] = tot.get(k, 0) + v
            t = sum(v for k, v in tot.items() if d.is_timer_irq(k))
            if not cnt or not t:
                continue
            other = sorted(((v, k) for k, v in tot.items()
                            if not d.is_timer_irq(k) and v > 0), reverse=True)
            parts.append(f"{d.key}: per 1000 timer interrupts " + (", ".join(
                f"{k} {1000.0 * v / t:.0f}" for v, k in other[:5]) or "none"))
        if parts:
            n.append(f"Other interrupts in the guest during the {what} phase (each "
                     "one more EOI): " + "; ".join(parts) + ". RES/CAL are "
                     "rescheduling and function-call IPIs, ttyS0/ttyS1 the "
                     "serial ports (the marks and the host's answers).")
    few = [r for r in res["figures"] if r.get("verdict") == "few"]
    if few:
        n.append(f"{len(few)} goals are not judged: a verdict needs at least "
                 f"{MIN_REPS} repetitions in every arm it compares, and this run "
                 f"has {s['reps']} (boot times: {s['boot_reps']}).")
    return n


def sanitize(text):
    """Command lines in a results set name no directory of this machine."""
    cache = os.environ.get("PVTIME_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "pvtime")
    text = re.sub(re.escape(os.path.join(TOP, "build", "bench")) + r"/[^/\s']+",
                  "build/bench/RUN", text)
    text = text.replace(cache, "$PVTIME_CACHE").replace(TOP + "/", "")
    return text.replace(os.path.expanduser("~"), "~")


def write_readme(path, ctx):
    cfg = ctx["cfg"]
    s = cfg["s"]
    L = []
    L.append(f"# pvtime benchmark, {ctx['date']}")
    L.append("")
    mode = "quick (BENCH_QUICK=1: reduced set, 1 repetition)" if cfg["quick"] else "full"
    if cfg["icount"] is not None:
        mode += f", -icount shift={cfg['icount']},sleep=off"
    L.append(f"Mode: {mode}. Wall time: {ctx['wall_min']:.1f} min for "
             f"{ctx['nruns']} boots (plus {ctx['build_min']:.1f} min for builds). "
             "Produced by `make bench` "
             "(scripts/bench.py); every figure is measured in this run.")
    L.append("")
    L.append("One table per platform. The order of the devices' boots is "
             "counterbalanced: on TCG it alternates (AB BA ...) from one "
             "experiment to the next, on KVM each repetition takes one row of a "
             "Williams square. A cell is the median over the repetitions with "
             "their spread [min–max]; a ratio is of the medians (X/stock; on KVM "
             "also PV over the best of the peers, hv and xen), with its 95% "
             "bootstrap interval (each arm's repetitions resampled independently, "
             f"{BOOTSTRAP} times). A goal is **met** when the interval lies below "
             "its bound, **missed** when it lies above, **open** when it contains "
             f"the bound, and not judged with fewer than {MIN_REPS} repetitions "
             "in an arm.")
    L.append("")
    for p in ctx["platforms"]:
        pf, res = p["pf"], p.get("res")
        L.append(f"## {pf.title}")
        L.append("")
        if not res:
            L.append(f"Not measured: {p['reason']}.")
            L.append("")
            continue
        L.append(pf.describe)
        L.append("")
        L.append("Devices: " + "; ".join(f"**{d.key}** = {d.label}" for d in pf.all_devices) + ".")
        L.append("")
        vs = [r["verdict"] for r in res["figures"] if r.get("verdict")]
        L.append("Goals: " + ", ".join(f"{vs.count(v)} {w}" for v, w in VERDICTS.items()
                                       if vs.count(v)) + "." if vs else "Goals: none.")
        L.append("")
        base = pf.devices[0].key
        others = [d for d in pf.all_devices if not d.baseline]
        peers = any(d.peer for d in pf.devices)
        hdr = "| figure | " + " | ".join(d.key for d in pf.all_devices) + " | " + \
              " | ".join(f"{d.key}/{base} [95% CI]" for d in others) + \
              (" | pv/best peer" if peers else "") + " | goal | verdict |"
        L.append(hdr)
        L.append("|" + "---|" * (hdr.count("|") - 1))
        for r in res["figures"]:
            unit = f" ({r['unit']})" if r["unit"] else ""
            cells = [cell(r.get(d.key), r["unit"]) for d in pf.all_devices]
            ratio = [ratio_cell(r["ratios"].get(d.key), r["cis"].get(d.key)) for d in others]
            if peers:
                ratio.append(ratio_cell(r.get("ratio_peer"), r.get("ci_peer")))
            goal = r["goal"] or ""
            met = VERDICTS.get(r.get("verdict"), "")
            if r.get("flat") is not None:
                goal += f" (PV: {ratio_cell(r['flat'], r['ci_flat'])}"
                if r.get("flat_stock") is not None:
                    goal += f", stock: {r['flat_stock']:.2f}×"
                goal += ")"
            L.append(f"| {r['label']}{unit} | " + " | ".join(cells) + " | " +
                     " | ".join(ratio) + f" | {goal} | {met} |")
        L.append("")
        for fn in p.get("plots", []):
            L.append(f"![{fn}]({fn})")
            L.append("")
        L.append("### Notes")
        L.append("")
        for x in STATIC_NOTES.get(pf.name, []) + p.get("notes", []):
            L.append(f"- {x}")
        L.append("")
        probs = [(m["name"], x) for m in res["runs"] for x in m["problems"]]
        if probs:
            L.append("### Run problems")
            L.append("")
            for name, x in probs[:40]:
                L.append(f"- `{name}`: {x}")
            L.append("")
    L.append("## How it was measured")
    L.append("")
    for x in METHOD:
        L.append(f"- {x}")
    L.append("")
    if any(p["pf"].name == "kvm" and p.get("res") for p in ctx["platforms"]):
        L.append("On KVM (nested) the same, except:")
        L.append("")
        for x in METHOD_KVM:
            L.append(f"- {x}")
        L.append("")
    L.append("Settings: " + ", ".join(f"{k}={v}" for k, v in s.items()) + ".")
    L.append("")
    L.append("## Commands")
    L.append("")
    L.append("    " + ctx["command"])
    L.append("")
    for p in ctx["platforms"]:
        for k, c in p.get("cmdlines", {}).items():
            L.append(f"{p['pf'].name}, {k} (one boot):")
            L.append("")
            L.append("    " + sanitize(c))
            L.append("")
        for k, c in p.get("guest_cmds", {}).items():
            L.append(f"In the guest ({k}):")
            L.append("")
            L.append("    " + c)
            L.append("")
    if ctx.get("raw", "").endswith(".gz"):
        L.append("## Raw records")
        L.append("")
        L.append(f"`{ctx['raw']}`: every boot's record as the run wrote it (the "
                 "guest's benchmark lines with each cyclictest run's JSON and "
                 "per-thread histograms, the hypervisor counters at each mark, "
                 "the run's problems). Every figure, plot and this README come "
                 "from these records alone; `scripts/bench.py --report-only "
                 f"{ctx['set_dir']}/{ctx['raw']} --out DIR` renders "
                 "them again.")
        L.append("")
    L.append("## Versions and machine")
    L.append("")
    for k, v in ctx["versions"].items():
        L.append(f"- {k}: {v}")
    for k, v in ctx["machine"].items():
        if not k.startswith("_"):
            L.append(f"- {k}: {v}")
    L.append(f"- harness revision of the run: {ctx['git']}")
    L.append(f"- date: {ctx['date_full']}")
    L.append("")
    with open(path, "w") as f:
        f.write("\n".join(L))


def print_table(p):
    pf, res = p["pf"], p["res"]
    print(f"== {pf.title}")
    for r in res["figures"]:
        cells = "  ".join(f"{d.key} {cell(r.get(d.key), r['unit']):>22}" for d in pf.all_devices)
        met = VERDICTS.get(r.get("verdict"), "").replace("*", "")
        print(f"{r['label']:<48} {cells}  ratio {ratio_cell(r['ratio'], r['cis'].get('pv')):>18} {met}")
