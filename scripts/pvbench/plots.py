"""Plots (gnuplot, PNG) of one platform's figures and histograms."""
import os
import re
import subprocess

# Plots (gnuplot, PNG)

COLORS = {"stock": "#c0392b", "pv": "#2471a3", "hv": "#7d3c98", "xen": "#1e8449"}


def gnuplot(script, workdir):
    path = os.path.join(workdir, "plot.gp")
    with open(path, "w") as f:
        f.write(script)
    r = subprocess.run(["gnuplot", path], stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, text=True, cwd=workdir)
    if r.returncode != 0:
        raise RuntimeError(f"gnuplot failed: {r.stdout[-1500:]}")
    os.rename(path, path + f".{abs(hash(script)) % 100000}")


def fmt(x, nd=None):
    if x is None:
        return "–"
    if nd is None:
        nd = 0 if abs(x) >= 100 else (1 if abs(x) >= 10 else 2)
    return f"{x:.{nd}f}"


# gnuplot: bars with whiskers (median, min-max), one cluster per row.
BARS = """set style data histogram
set style histogram errorbars gap 2 lw 1
set style fill solid 0.8 border -1
set boxwidth 0.9
set yrange [0:*]
set offsets 0, 0, graph 0.1, 0
set grid ytics
set key top left font ",10"
set datafile missing "NaN"
"""


def bars(dat, rows, devs, figs):
    """Write the data of a bar plot, one line per (label, figure id) with
    every device's median, min and max; return gnuplot's plot clauses."""
    with open(dat, "w") as f:
        for what, fid in rows:
            cols = [f'"{what}"']
            for d in devs:
                a = figs.get(fid, {}).get(d.key)
                cols += ([fmt(a["median"], 1), fmt(a["min"], 1), fmt(a["max"], 1)]
                         if a else ["NaN"] * 3)
            f.write(" ".join(cols) + "\n")
    pl = []
    for j, d in enumerate(devs):
        c = 2 + 3 * j
        xt = ":xtic(1)" if j == 0 else ""
        pl.append(f"'{dat}' using {c}:{c + 1}:{c + 2}{xt} lc rgb '{COLORS.get(d.key, 'black')}' "
                  f"title '{d.label}'")
    return ", ".join(pl)


def plots(pf, res, cfg, outdir, workdir):
    """The four plots of one platform; returns their file names."""
    s = cfg["s"]
    os.makedirs(workdir, exist_ok=True)
    files = []
    pre = f"{pf.name}-"
    term = 'set terminal pngcairo size 960,600 font "DejaVu Sans,11"\n'
    devs = pf.devices

    # 1. Lateness CDF, all repetitions pooled, idle and busy guest.
    curves = []
    smp = pf.smp or s["smp"]
    for phase, dash in (("cyclic-idle", 1), ("cyclic-busy", 2)):
        key = "|".join(map(str, ("main", smp, 0, phase)))
        for d in devs:
            hd = res["hists"].get(key, {}).get(d.key)
            if not hd or not hd["n"]:
                continue
            dat = os.path.join(workdir, f"{pre}cdf-{phase}-{d.key}.dat")
            c = 0
            with open(dat, "w") as f:
                for b in sorted(int(x) for x in hd["h"]):
                    c += hd["h"][b] if b in hd["h"] else hd["h"][str(b)]
                    f.write(f"{b + 1} {c / hd['n']:.6f}\n")
            what = "idle" if phase == "cyclic-idle" else "busy"
            curves.append(f"'{dat}' using 1:2 with steps lw 2 dt {dash} "
                          f"lc rgb '{COLORS.get(d.key, 'black')}' "
                          f"title '{d.label}, {what} guest'")
    if curves:
        fn = f"{pre}lateness-cdf.png"
        tail = [c.replace("using 1:2", "using 1:(1-$2)").replace(" title ", " notitle ")
                for c in curves]
        gnuplot(term.replace("960,600", "1300,560") + f"""set output '{os.path.join(outdir, fn)}'
set multiplot layout 1,2 title "{pf.title}: cyclictest lateness ({s['interval_us']} µs period, all repetitions pooled)" font ",11"
set logscale x
set xlabel "lateness x (µs, log scale)"
set grid
set ylabel "fraction of wakeups ≤ x (CDF)"
set yrange [0:1.02]
set key bottom right font ",10"
plot {", ".join(curves)}
set ylabel "fraction of wakeups > x (log scale)"
set logscale y
set format y "10^{{%L}}"
set yrange [1e-5:1]
plot {", ".join(tail)}
unset multiplot
""", workdir)
        files.append(fn)

    figs = {r["id"]: r for r in res["figures"]}

    # 2. Lateness vs stall.
    if pf.supports_stall and cfg["icount"] is None:
        dat = os.path.join(workdir, f"{pre}stall.dat")
        with open(dat, "w") as f:
            for i, st in enumerate(s["stalls_us"]):
                cols = [str(i), str(st)]
                for d in devs:
                    for q in ("p99", "p50"):
                        a = figs.get(f"stall.{st}.{q}", {}).get(d.key)
                        cols += ([fmt(a["median"], 1), fmt(a["min"], 1), fmt(a["max"], 1)]
                                 if a else ["NaN"] * 3)
                f.write(" ".join(cols) + "\n")
        pl = []
        for j, d in enumerate(devs):
            c = 3 + j * 6
            col = COLORS.get(d.key, "black")
            xt = ":xtic(2)" if j == 0 else ""
            pl.append(f"'{dat}' using ($1+{0.04 * (j - 0.5):.2f}):{c}:{c + 1}:{c + 2}{xt} "
                      f"with yerrorlines lw 2 pt 7 lc rgb '{col}' title '{d.label} p99'")
            pl.append(f"'{dat}' using ($1+{0.04 * (j - 0.5):.2f}):{c + 3}:{c + 4}:{c + 5} "
                      f"with yerrorlines lw 1 dt 2 pt 6 lc rgb '{col}' title '{d.label} p50'")
        fn = f"{pre}lateness-vs-stall.png"
        gnuplot(term.replace("960,600", "1150,600") + f"""set output '{os.path.join(outdir, fn)}'
set title "{pf.title}: lateness when the vCPU stalls before programming its timer (median, whiskers min-max)"
set xlabel "host stall before each timer-programming write (µs)"
set ylabel "cyclictest lateness (µs, log scale)"
set logscale y
set xrange [-0.5:{len(s['stalls_us']) - 0.5}]
set grid
set key outside right top
plot {", ".join(pl)}
""", workdir)
        files.append(fn)

    # 2b. Lateness under the platform's conditions (KVM: preemption,
    # kvm-clock timekeeping), p99 bars per device.
    if pf.conditions:
        # Short x labels (the parenthetical goes to the table): long ones
        # run into each other.
        rows = [("idle guest", "lat.cyclic-idle.p99")] + [
            (re.sub(r" \(.*\)$", "", c[1]), f"cond.{c[0]}.p99") for c in pf.conditions]
        pl = bars(os.path.join(workdir, f"{pre}conditions.dat"), rows, devs, figs)
        fn = f"{pre}lateness-conditions.png"
        gnuplot(term.replace("960,600", "1150,600") + f"""set output '{os.path.join(outdir, fn)}'
set title "{pf.title}: cyclictest lateness p99 by condition (bars: median, whiskers: min-max)" noenhanced
{BARS}set ylabel "lateness p99 (µs)"
set xtics noenhanced font ",10"
plot {pl}
""", workdir)
        files.append(fn)

    # 3. Interactions per 1000 timer events, one panel per workload.
    panels = []
    for w, wl in (("nohz", "NO_HZ idle guest (sleeping)"),
                  ("cyclic-idle", "cyclictest, 1 kHz per vCPU")):
        rows = [(re.sub(r" \(.*\)$", "", kl), f"ia.{w}.{k}")
                for k, kl in pf.ia_parts + [("total", "total")]]
        pl = bars(os.path.join(workdir, f"{pre}interactions-{w}.dat"), rows, devs, figs)
        panels.append(f'set title "{wl}" noenhanced\nplot {pl}\n')
    fn = f"{pre}interactions.png"
    gnuplot(term.replace("960,600", "1200,560") + f"""set output '{os.path.join(outdir, fn)}'
set multiplot layout 1,2 title "{pf.title}: hypervisor interactions per 1000 timer expiries (bars: median, whiskers: min-max)" font ",11"
set xtics rotate by -25 font ",9"
{BARS}set ylabel "per 1000 timer expiries"
{"".join(panels)}unset multiplot
""", workdir)
    files.append(fn)

    # 4. Scale.
    if not pf.scale:
        return files
    dat = os.path.join(workdir, f"{pre}scale.dat")
    with open(dat, "w") as f:
        for n in s["scale_smp"]:
            cols = [str(n)]
            for kind in ("p99", "ia"):
                for d in devs:
                    a = figs.get(f"scale.{n}.{kind}", {}).get(d.key)
                    cols += [f"{a['median']:.4g}", f"{a['min']:.4g}", f"{a['max']:.4g}"] if a else ["NaN"] * 3
            f.write(" ".join(cols) + "\n")
    nd = len(devs)
    p1, p2 = [], []
    for j, d in enumerate(devs):
        col = COLORS.get(d.key, "black")
        c = 2 + 3 * j
        xo = f"($1*{1 + 0.04 * (j - (nd - 1) / 2):.3f})"
        p1.append(f"'{dat}' using {xo}:{c}:{c + 1}:{c + 2} with yerrorlines lw 2 pt 7 "
                  f"lc rgb '{col}' title '{d.label}'")
        c = 2 + 3 * nd + 3 * j
        p2.append(f"'{dat}' using {xo}:{c}:{c + 1}:{c + 2} with yerrorlines lw 2 pt 7 "
                  f"lc rgb '{col}' title '{d.label}'")
    fn = f"{pre}scale.png"
    gnuplot(term.replace("960,600", "1200,520") + f"""set output '{os.path.join(outdir, fn)}'
set multiplot layout 1,2 title "{pf.title}: scale (cyclictest on every vCPU, idle guest)"
set logscale x 2
set xtics ({", ".join(f'"{n}" {n}' for n in s["scale_smp"])})
set xrange [{s['scale_smp'][0] * 0.8}:{s['scale_smp'][-1] * 1.25}]
set xlabel "vCPUs"
set grid
set key bottom right font ",10"
set ylabel "lateness p99 (µs)"
set yrange [0:*]
plot {", ".join(p1)}
set ylabel "interactions per timer event"
plot {", ".join(p2)}
unset multiplot
""", workdir)
    files.append(fn)
    return files


# ---------------------------------------------------------------------------
# Report
