#!/usr/bin/python3
"""make bench: the paravirtual clock event device against the stock timers.

One run of one QEMU build and one guest kernel; the only difference between
the columns of every figure is the guest's clock event device: the
paravirtual device ("pv"), or the kernel parameter no-pvclockevent, which
falls back to the stock devices ("stock"), or on KVM also the paravirtual
peers (Hyper-V's synthetic timer, Xen's single-shot timer). The boots are
interleaved (AB BA AB ... from one experiment to the next) so that drift
of the host hits every device alike. Every figure is the median over
repetitions, with its spread (min..max).

Platforms (--platform, BENCH_PLATFORMS; default both): "tcg" (QEMU TCG)
and "kvm" (KVM nested in an L1 host that runs under TCG: see KvmNested).
Results go to bench/results/<date>/ (README.md, results.json, PNG plots,
raw logs under build/bench/). With --quick (BENCH_QUICK=1) a reduced set
runs and the exit status says whether every figure of it was produced (not
its value).
"""
import argparse
import base64
import datetime
import gzip
import hashlib
import json
import os
import platform as pyplatform
import re
import shlex
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import boot  # noqa: E402  (QMP client, splat patterns)

TOP = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# ---------------------------------------------------------------------------
# Fixed settings. Every figure of a results set is measured with these; the
# quick mode only shortens and thins them out (QUICK below).
SETTINGS = {
    "reps": 3,               # repetitions of every PV/stock pair
    "boot_reps": 5,          # boots per device for the boot-time figure
    "smp": 2,                # vCPUs of the lateness/stall/interaction runs
    "mem_mib": 512,
    "interval_us": 1000,     # cyclictest -i
    "priority": 99,          # cyclictest -p (SCHED_FIFO); -m (mlockall) always
    "hist_us": 100000,       # cyclictest -h: 1 us buckets up to 100 ms
    "cyclic_s": 10,          # cyclictest -D per phase
    "nohz_s": 10,            # NO_HZ idle counter window
    "idle_s": 30,            # host CPU time window of an idle guest
    "stalls_us": [0, 100, 1000],
    "scale_smp": [1, 2, 4, 8, 16],
    "loglevel": 5,           # console: warnings and worse (splat check)
}
QUICK = {
    "reps": 1, "boot_reps": 2, "cyclic_s": 2, "nohz_s": 2, "idle_s": 4,
    "scale_smp": [1, 2, 4],
}

# QOM counters of every x86 vCPU (qemu/ series, "count guest timer activity")
COUNTERS = ["pvce-arms", "pvce-disarms", "pvce-fires", "pvce-injections",
            "pvce-gps", "pvce-exits", "timer-lapic-writes",
            "timer-lapic-reads", "timer-lapic-fires", "apic-eois"]


def log(*a):
    print("bench:", *a, file=sys.stderr, flush=True)


# ---------------------------------------------------------------------------
# Devices and platforms


class Device:
    """One column of a comparison: what differs between the boots. A peer
    is another paravirtual timer, compared with PV as well as with the
    baseline; timer_irq names the guest's timer interrupt in
    /proc/interrupts (a regular expression)."""

    def __init__(self, key, label, cpu, append="", baseline=False, accel=None,
                 peer=False, timer_irq="LOC"):
        self.key, self.label, self.cpu, self.append = key, label, cpu, append
        self.baseline, self.accel, self.peer = baseline, accel, peer
        self.timer_irq = timer_irq

    def is_timer_irq(self, name):
        """Whether NAME (a /proc/interrupts row) is this device's timer."""
        return re.fullmatch(self.timer_irq, name) is not None


class RunSpec:
    """One boot: a device, a guest shape and the bench phases it runs."""

    def __init__(self, exp, device, smp, phases, stall_us=0, rep=0):
        self.exp, self.device, self.smp, self.phases = exp, device, smp, phases
        self.stall_us, self.rep = stall_us, rep
        self.extra_timeout = 0

    @property
    def name(self):
        s = f"{self.exp}-{self.device.key}-smp{self.smp}"
        if self.stall_us:
            s += f"-stall{self.stall_us}"
        return f"{s}-r{self.rep}"


class Platform:
    """What a platform provides to the benchmark.

    A platform boots one RunSpec and returns a run record: the guest's
    bench lines, the hypervisor counters sampled at each of the guest's
    marks, the host CPU time of the hypervisor process and the wall clock
    at each mark. The figures are computed from these records the same way
    on every platform; only interactions() is platform-specific.
    """
    name = "?"
    title = "?"
    devices = []            # the first one is the baseline ("stock")
    supports_stall = False  # the stall knob (TCG)
    smp = None              # vCPUs of the main runs (None: the settings')
    scale = True            # the scale experiment
    ack = True              # the host answers the guest's marks
    consoles = ["console"]   # logs (NAME.log) checked for splats
    # The parts of "interactions" (keys of interactions()' result) shown as
    # rows and bars, besides the total.
    ia_parts = []
    # Extra lateness conditions: (key, label, goal, devices, experiment,
    # phase): rows of p50/p99 of that phase in that experiment's runs
    # (goal: a GOALS key, for p99).
    conditions = []
    describe = ""

    def finish(self, rec):
        """Post-processing of a run record (platform-specific lines)."""

    def available(self):
        return True, ""

    def prepare(self, cfg):
        """Builds, versions; raises on failure."""

    def versions(self):
        return {}

    def plan(self, cfg):
        return default_plan(self, cfg)

    def run(self, spec, cfg, logdir):
        """Boot one run (run_qemu()) and post-process its record."""
        rec = run_qemu(self, spec, cfg, logdir)
        self.finish(rec)
        return rec

    def interactions(self, device, m0, m1):
        """Two marks' samples -> dict of interaction counts (a "total" key
        included) and "events" (timer expiries)."""
        raise NotImplementedError


def williams(items, row):
    """Row `row` (mod len) of a Williams Latin square over items: the first
    row is 0, 1, n-1, 2, n-2, ...; row i adds i to each. For an even
    number of items, over n rows each item takes each position once and
    follows each other item once (balanced first-order carryover)."""
    n = len(items)
    first, lo, hi = [0], 1, n - 1
    while len(first) < n:
        first.append(lo)
        lo += 1
        if len(first) < n:
            first.append(hi)
            hi -= 1
    return [items[(j + row) % n] for j in first]


def default_plan(pf, cfg):
    """The run list: repetitions outermost; inside one, each experiment boots
    every device, the order alternating from one experiment to the next
    (AB BA AB ...) so that drift of the host hits every device alike."""
    s = cfg["s"]
    devs = pf.devices
    slots = []
    for rep in range(s["reps"]):
        exps = [("main", s["smp"], ["cyclic-idle", "cyclic-busy", "idle"], 0)]
        if pf.supports_stall and cfg["icount"] is None:
            exps += [("stall", s["smp"], ["cyclic-idle"], st)
                     for st in s["stalls_us"] if st]
        exps += [("scale", n, ["cyclic-idle"], 0)
                 for n in s["scale_smp"] if n != s["smp"]]
        slots += [(rep, e) for e in exps]
    # Boot-only runs until every device has boot_reps boots of the main
    # shape (the main runs count: they boot the same guest).
    for i in range(max(0, s["boot_reps"] - s["reps"])):
        slots.append((i, ("boot", s["smp"], [], 0)))
    runs = []
    for k, (rep, (exp, smp, phases, stall)) in enumerate(slots):
        for d in (devs if k % 2 == 0 else list(reversed(devs))):
            runs.append(RunSpec(exp, d, smp, phases, stall, rep))
    return runs


class Tcg(Platform):
    """QEMU TCG: the stock device is the LAPIC in one-shot mode (a relative
    count: TCG has no TSC-deadline), plus the HPET as broadcast device."""
    name = "tcg"
    title = "QEMU TCG"
    supports_stall = True
    PV_CPU = boot.CPU_MODELS["PV"]
    ia_parts = [("program", "timer programming accesses"), ("eoi", "EOIs"),
                ("inject", "timer interrupt injections")]
    describe = (
        "The two columns of every row differ only in the guest's clock event "
        "device: **PV** boots the guest with the paravirtual device "
        "(`-cpu max,tcg-kvmclock=on,kvm-pv-clockevent=on`), **stock** boots "
        "the same kernel on the same QEMU command line plus the kernel "
        "parameter `no-pvclockevent`, which falls back to the stock devices.")

    def __init__(self):
        self.devices = [
            Device("stock", "stock (LAPIC one-shot)", self.PV_CPU,
                   "no-pvclockevent", baseline=True),
            Device("pv", "PV (kvm-clockevent)", self.PV_CPU,
                   timer_irq="kvm-clockevent"),
        ]
        self.builds = {}

    def prepare(self, cfg):
        self.builds = get_builds(cfg)

    def versions(self):
        return builds_versions(self.builds)

    def cmdline(self, spec, cfg, logdir, status_sock, qmp_sock):
        s = cfg["s"]
        cpu = spec.device.cpu
        if spec.stall_us:
            cpu += f",x-timer-program-stall-us={spec.stall_us}"
        # -icount (boot.qemu_cmdline) needs single-threaded TCG; sleep=off:
        # guest time is a function of the instructions executed only.
        append = boot.kernel_args("bench", loglevel=s["loglevel"], more=" ".join(x for x in [
            "pvtime.bench=" + ",".join(spec.phases or ["none"]),
            # -icount: the guest spins while the host samples (an idle
            # vCPU would let guest time leap to the next timer).
            "pvtime.bench_sync=" + ("spin" if cfg["icount"] is not None else "ack"),
            f"pvtime.bench_dur={s['cyclic_s']}",
            f"pvtime.bench_intv={s['interval_us']}",
            f"pvtime.bench_prio={s['priority']}",
            f"pvtime.bench_hist={s['hist_us']}",
            f"pvtime.bench_nohz={s['nohz_s']}",
            f"pvtime.bench_idle={s['idle_s']}",
            spec.device.append] if x))
        b = self.builds
        return boot.qemu_cmdline(b["qemu"], b["kernel"], b["initrd"], append, logdir,
                                 cpu=cpu, smp=spec.smp, mem=s["mem_mib"],
                                 status_sock=status_sock, qmp=qmp_sock,
                                 icount=cfg["icount"])

    def sample(self, qmp, paths):
        return sample_qom(qmp, paths)

    def interactions(self, device, m0, m1):
        c0 = {int(k): v for k, v in m0["counters"].items()}
        c1 = {int(k): v for k, v in m1["counters"].items()}
        d = {k: sum(c1[c][k] - c0[c][k] for c in c1) for k in COUNTERS}
        # Every timer register or MSR access is one trap to the
        # hypervisor, every expiry one interrupt injection, every EOI one
        # more access (x2APIC MSR or xAPIC MMIO write).
        if device.key == "pv":
            events = d["pvce-fires"]
            inj = d["pvce-injections"]
        else:
            events = d["timer-lapic-fires"]
            inj = d["timer-lapic-fires"]
        out = {
            "program": d["pvce-exits"],     # timer MSR / LAPIC timer reg accesses
            "eoi": d["apic-eois"],
            "inject": inj,
            "events": events,
            "raw": d,
        }
        out["total"] = out["program"] + out["eoi"] + out["inject"]
        return out


class KvmNested(Platform):
    """KVM, nested: L2 guests under -accel kvm in an L1 host that runs under
    TCG on a CPU model with SVM (the nested rig of make check). Each run
    boots L1 (one vCPU) with the "l2" set, which starts L2 from L1's kernel
    parameters and relays L2's status stream as its own:

        pvtime.set=l2 pvtime.l2set=bench pvtime.l2cpu=<the device's -cpu>
        pvtime.l2accel=<...> pvtime.l2hook=kvm-stats[,burst]
        pvtime.l2append="<the bench parameters> <the device's kernel args>"

    L2 cannot hear the host, so it sleeps after each mark (bench_sync) and
    puts its interrupt counts on the mark line; L1's kvm-stats hook then
    prints KVM's debugfs statistics and the CPU time of L2's QEMU process
    ("PVTIME-BENCH kvm-stats MARK ..."), which finish() attaches to the
    mark. The burst hook runs a SCHED_FIFO hog in L1 in bursts during the
    cyclictest windows (preemption of L2's vCPU thread)."""
    name = "kvm"
    title = "KVM nested (L1: TCG + SVM, 1 vCPU; L2: -accel kvm, 1 vCPU)"
    smp = 1
    ack = False
    scale = False
    consoles = ["console", "l2-console"]
    SYNC_S = 1
    BURST = "200/1700"
    ia_parts = [("halt", "HLT exits (idle)"),
                ("hostirq", "host interrupt exits (expiry kicks)"),
                ("irqwin", "interrupt-window exits"),
                ("other", "other exits (timer programming: MSR write or "
                          "Xen hypercall; x2APIC EOI)"),
                ("inject", "interrupt injections (all)")]
    describe = (
        "The columns differ only in L2's clock event device: **pv** "
        "boots L2 with the paravirtual device (`-cpu host,kvm-pv-clockevent=on`), "
        "**stock** is the same L2 command line without it plus `no-pvclockevent` "
        "(LAPIC TSC-deadline: coupled, the strongest upstream baseline, when "
        "tsc is the clocksource; see the notes on timekeeping), **hv** is Hyper-V's synthetic timer 0 in direct "
        "mode (`-cpu host,kvm=off,hv-relaxed,hv-vpindex,hv-time,hv-synic,"
        "hv-stimer,hv-stimer-direct`) and **xen** Xen's single-shot timer "
        "through KVM's Xen emulation (`-accel kvm,xen-version=0x4000a,"
        "kernel-irqchip=split`). Same L1, same L2 kernel and initramfs.")

    def __init__(self):
        self.devices = [
            Device("stock", "stock (LAPIC TSC-deadline)", "host",
                   "no-pvclockevent", baseline=True),
            Device("pv", "PV (kvm-clockevent)", "host,kvm-pv-clockevent=on",
                   timer_irq="kvm-clockevent"),
            Device("hv", "Hyper-V stimer direct",
                   "host,kvm=off,hv-relaxed,hv-vpindex,hv-time,hv-synic,"
                   "hv-stimer,hv-stimer-direct", peer=True, timer_irq="HVS"),
            Device("xen", "Xen single-shot", "host",
                   accel="kvm,xen-version=0x4000a,kernel-irqchip=split",
                   peer=True, timer_irq=r"timer\d+"),
        ]
        self.builds = {}
        # Stock and PV only: the peers keep their own clocksources.
        self.base = [d for d in self.devices if d.key in ("stock", "pv")]
        # L2's own choice of clocksource in this rig is kvm-clock (its
        # TSC is not flagged constant and nonstop): the main runs are the
        # kvm-clock case, where stock's TSC-deadline timer is relative;
        # clocksource=tsc makes it coupled, upstream's strongest case.
        self.conditions = [
            ("preempt", "preempted (SCHED_FIFO bursts in L1)", "lt",
             self.devices, "main", "cyclic-preempt"),
            ("tsc", "clocksource=tsc (stock coupled)", "le", self.base, "tsc",
             "cyclic-idle"),
            ("tsc-preempt", "clocksource=tsc, preempted", "le",
             self.base, "tsc", "cyclic-preempt"),
        ]

    def prepare(self, cfg):
        b = get_builds(cfg)
        sc = os.path.join(TOP, "scripts")
        kvmst = script_out([os.path.join(sc, "build-kvm-selftests.sh"), b["kout"]])
        l1 = script_out([os.path.join(sc, "build-initramfs-l1.sh"), b["kout"],
                         b["qemu_orig"], b["initrd_orig"], kvmst])
        dst = os.path.join(cfg["logroot"], "builds", os.path.basename(l1))
        shutil.copy2(l1, dst)
        b["initrd_l1"] = dst
        self.builds = b

    def versions(self):
        v = builds_versions(self.builds)
        v["initramfs (L1)"] = os.path.basename(self.builds["initrd_l1"])
        return v

    def plan(self, cfg):
        """Repetitions outermost; no stall knob, no scale. Inside one
        repetition each experiment boots every device in the order of row
        `rep` of a Williams square (williams()), so that over the
        repetitions every device takes every position equally often and
        follows every other device equally often. A boot costs a quarter
        of a minute, so one boot runs several phases: the main one also
        the preempted one; the tsc one (stock and PV only: the peers keep
        their own clocksources) both."""
        s = cfg["s"]
        slots = []
        for rep in range(s["reps"]):
            slots.append((rep, "main", ["cyclic-idle", "cyclic-busy", "idle",
                                        "cyclic-preempt"], self.devices))
            slots.append((rep, "tsc", ["cyclic-idle", "cyclic-preempt"], self.base))
        # Boot-only runs up to boot_reps boots per device (not in the
        # quick mode: a nested boot costs a quarter of a minute).
        for i in range(0 if cfg["quick"] else max(0, s["boot_reps"] - s["reps"])):
            slots.append((i, "boot", [], self.devices))
        runs = []
        for rep, exp, phases, devs in slots:
            for d in williams(devs, rep):
                r = RunSpec(exp, d, 1, phases, 0, rep)
                r.extra_timeout = 120
                runs.append(r)
        return runs

    def cmdline(self, spec, cfg, logdir, status_sock, qmp_sock):
        s = cfg["s"]
        d = spec.device
        l2 = [f"loglevel={s['loglevel']}", "pvtime.hold=0",
              "pvtime.bench=" + ",".join(spec.phases or ["none"]),
              f"pvtime.bench_sync={self.SYNC_S}",
              f"pvtime.bench_dur={s['cyclic_s']}",
              f"pvtime.bench_intv={s['interval_us']}",
              f"pvtime.bench_prio={s['priority']}",
              f"pvtime.bench_hist={s['hist_us']}",
              f"pvtime.bench_nohz={s['nohz_s']}",
              # Host CPU over the NO_HZ window only (L1 has the numbers
              # at the marks; a longer window costs nested boot time).
              f"pvtime.bench_idle={s['nohz_s']}"]
        if d.append:
            l2.append(d.append)
        if spec.exp == "tsc":
            # tsc=reliable: no clocksource watchdog on the rig's TSC.
            l2.append("clocksource=tsc tsc=reliable")
        hooks = "kvm-stats,burst"
        l1 = ["pvtime.l2set=bench pvtime.l2smp=1",
              f"pvtime.l2mem={s['mem_mib']}", f"pvtime.l2cpu={d.cpu}",
              f"pvtime.l2hook={hooks}", f"pvtime.burst={self.BURST}",
              'pvtime.l2append="' + " ".join(l2) + '"']
        if d.accel:
            l1.append(f"pvtime.l2accel={d.accel}")
        b = self.builds
        rig = boot.L1_RIG
        return boot.qemu_cmdline(b["qemu"], b["kernel"], b["initrd_l1"],
                                 boot.kernel_args("l2", " ".join(l1), s["loglevel"]),
                                 logdir, cpu=rig["cpu"], smp=rig["smp"], mem=rig["mem"],
                                 status_sock=status_sock,
                                 extra_console=rig["extra_console"], qmp=qmp_sock)

    def sample(self, qmp, paths):
        return None     # L1 samples: see finish()

    STATS = re.compile(r"^PVTIME-BENCH kvm-stats (\S+) (.*)")
    IRQS = re.compile(r"^PVTIME-BENCH mark (\S+) t=\S+ irqs (.*)")

    def finish(self, rec):
        """Attach L1's statistics and L2's interrupt counts to the marks;
        the host CPU time is L2's QEMU process' in L1."""
        for _, l in rec["lines"]:
            m = self.STATS.match(l)
            if m and m.group(1) in rec["marks"]:
                kv = dict(x.partition("=")[::2] for x in m.group(2).split())
                st = {k: int(v) for k, v in kv.items() if v.isdigit()}
                mk = rec["marks"][m.group(1)]
                mk["counters"] = st
                mk["cpu_s"] = st.get("cpu_ns", 0) / 1e9
                mk["l1_uptime"] = float(kv.get("uptime", "nan"))
            m = self.IRQS.match(l)
            if m and m.group(1) in rec["marks"]:
                rec["marks"][m.group(1)]["irqs"] = parse_irqs(m.group(2))
        for name, mk in rec["marks"].items():
            if "counters" not in mk:
                rec["problems"].append(f"no KVM statistics from L1 at mark {name}")

    def interactions(self, device, m0, m1):
        c0, c1 = m0["counters"], m1["counters"]
        d = {k: c1[k] - c0.get(k, 0) for k in c1}
        ev = sum(v - m0.get("irqs", {}).get(k, 0)
                 for k, v in m1.get("irqs", {}).items() if device.is_timer_irq(k))
        # L2's serial port writes (its benchmark lines) are I/O exits to
        # L1's QEMU: left out, every other exit counts.
        total = d.get("exits", 0) - d.get("io_exits", 0)
        known = {"halt": d.get("halt_exits", 0), "hostirq": d.get("irq_exits", 0),
                 "irqwin": d.get("irq_window_exits", 0)}
        out = dict(known)
        out["other"] = total - sum(known.values())
        out["inject"] = d.get("irq_injections", 0)
        out["total"] = total
        out["serial"] = d.get("io_exits", 0)
        out["events"] = ev
        out["raw"] = {k: v for k, v in d.items() if v}
        return out


PLATFORMS = {"tcg": Tcg, "kvm": KvmNested}


# ---------------------------------------------------------------------------
# Builds


def script_out(cmd):
    r = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       text=True)
    if r.returncode != 0:
        raise RuntimeError(f"{shlex.join(cmd)} failed:\n{r.stderr[-2000:]}")
    return r.stdout.strip().splitlines()[-1]


def get_builds(cfg):
    """The builds of make check, from the same cached build scripts."""
    if cfg.get("builds"):
        return cfg["builds"]
    sc = os.path.join(TOP, "scripts")
    log("builds (cached when up to date)")
    qemu = script_out([os.path.join(sc, "build-qemu.sh")])
    kout = script_out([os.path.join(sc, "build-kernel.sh")])
    initrd = script_out([os.path.join(sc, "build-initramfs.sh"), kout])
    b = {"qemu": qemu, "kout": kout,
         "kernel": os.path.join(kout, "arch/x86/boot/bzImage"), "initrd": initrd}
    # The run boots copies: a build started meanwhile (another make check
    # on the same cache) cannot swap the kernel or QEMU under it.
    snap = os.path.join(cfg["logroot"], "builds")
    os.makedirs(snap, exist_ok=True)
    for k in ("qemu", "kernel", "initrd"):
        dst = os.path.join(snap, os.path.basename(b[k]))
        shutil.copy2(b[k], dst)
        b[k + "_orig"], b[k] = b[k], dst
        with open(dst, "rb") as f:
            b[k + "_sha256"] = hashlib.sha256(f.read()).hexdigest()[:16]
    cfg["builds"] = b
    return b


def series_hash(d):
    r = subprocess.run(["sh", "-c", '. "$0/scripts/lib.sh" >/dev/null; series_hash "$1"',
                        TOP, d], stdout=subprocess.PIPE, text=True)
    return r.stdout.strip()


def lib_var(name):
    r = subprocess.run(["sh", "-c", '. "$0/scripts/lib.sh" >/dev/null; eval echo "\\$$1"',
                        TOP, name], stdout=subprocess.PIPE, text=True)
    return r.stdout.strip()


def builds_versions(b):
    def read(p):
        try:
            with open(p) as f:
                return f.read().strip()
        except OSError:
            return None
    v = {
        "linux_base": lib_var("LINUX_VERSION"),
        "qemu_base": lib_var("QEMU_UPSTREAM"),
        "linux_series": series_hash(os.path.join(TOP, "linux")),
        "qemu_series": series_hash(os.path.join(TOP, "qemu")),
        "kernel_key": read(os.path.join(b["kout"], ".pvtime-key")),
        "qemu_key": read(os.path.join(os.path.dirname(b["qemu_orig"]), ".pvtime-key")),
        "initramfs": os.path.basename(b["initrd"]),
        "sha256 (first 16)": ", ".join(f"{k} {b[k + '_sha256']}"
                                       for k in ("qemu", "kernel", "initrd")),
    }
    try:
        v["qemu_version"] = subprocess.run([b["qemu"], "--version"], stdout=subprocess.PIPE,
                                           text=True).stdout.splitlines()[0]
    except (OSError, IndexError):
        pass
    try:
        v["kernel_release"] = read(os.path.join(b["kout"], "include/config/kernel.release"))
    except OSError:
        pass
    try:
        v["cyclictest"] = subprocess.run(
            ["dpkg-query", "-W", "-f=${Version}", "rt-tests"],
            stdout=subprocess.PIPE, text=True).stdout.strip()
    except OSError:
        pass
    return v


# ---------------------------------------------------------------------------
# One boot


def sample_qom(qmp, paths):
    """Counters of every vCPU: {cpu_index: {counter: value}}."""
    out = {}
    for idx, path in paths.items():
        out[idx] = {k: qmp.cmd("qom-get", path=path, property=k) for k in COUNTERS}
    return out


def proc_cpu_s(pid):
    """utime + stime of a process (all its threads), seconds."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    hz = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / hz


MARK = re.compile(r"^PVTIME-BENCH mark (\S+) t=([0-9.]+)")


def run_qemu(pf, spec, cfg, logdir):
    """Boot one guest; collect its bench lines, and at each of its marks the
    counters, the QEMU process' CPU time and the host wall clock."""
    shutil.rmtree(logdir, ignore_errors=True)
    # Unix socket paths are short (108 bytes): not under a deep log dir.
    sockdir = tempfile.mkdtemp(prefix="pvtime-bench-")
    status_sock = os.path.join(sockdir, "status")
    qmp_sock = os.path.join(sockdir, "qmp")
    srv = socket.socket(socket.AF_UNIX)
    srv.bind(status_sock)
    srv.listen(1)
    # The boot runner's Guest: the same start, time limit and kill as the
    # rows of make check. Its monitor belongs to on_mark() below, so there
    # is no hang report (a second QMP client would wait on the first).
    guest = boot.Guest(pf.cmdline(spec, cfg, logdir, status_sock, qmp_sock), logdir)
    s = cfg["s"]
    timeout = (120 + 15 * spec.smp + s["cyclic_s"] * 3 * len(spec.phases)
               + (s["idle_s"] * 2 if "idle" in spec.phases else 0)
               + (60 if spec.stall_us else 0) + spec.extra_timeout)
    if cfg["icount"] is not None:
        timeout *= 4
    rec = {"name": spec.name, "exp": spec.exp, "device": spec.device.key,
           "smp": spec.smp, "stall_us": spec.stall_us, "rep": spec.rep,
           "phases": spec.phases, "marks": {}, "lines": [], "problems": []}
    guest.start(nice=cfg["nice"])
    t0, proc = guest.t0, guest.proc
    srv.settimeout(30)
    qmp = None
    try:
        conn, _ = srv.accept()
        conn.settimeout(None)
    except OSError as e:
        rec["problems"].append(f"QEMU never connected its status port: {e}")
        conn = None
    statf = open(os.path.join(logdir, "status.log"), "w")
    # QMP before the guest gets anywhere: the first mark must not wait.
    paths = None
    if conn:
        try:
            qmp = boot.QMP(qmp_sock, timeout=10)
            paths = {c["cpu-index"]: c["qom-path"] for c in qmp.cmd("query-cpus-fast")}
        except (OSError, RuntimeError, ValueError) as e:
            rec["problems"].append(f"QMP: {e}")
    icount = cfg["icount"] is not None

    def on_mark(name, guest_t, now):
        mk = {"wall": now - t0, "guest": guest_t}
        stopped = False
        try:
            # Under -icount guest time only moves while the VM runs: stop it
            # so that the guest makes no progress while it is sampled.
            if icount:
                qmp.cmd("stop")
                stopped = True
            mk["cpu_s"] = proc_cpu_s(proc.pid)
            c = pf.sample(qmp, paths)
            if c is not None:
                mk["counters"] = c
            mk["sample_s"] = time.monotonic() - now
        except (OSError, RuntimeError, ValueError, AttributeError) as e:
            rec["problems"].append(f"sampling at {name}: {e}")
        finally:
            if stopped:
                try:
                    qmp.cmd("cont")
                except (OSError, RuntimeError, ValueError) as e:
                    rec["problems"].append(f"cont after {name}: {e}")
        rec["marks"][name] = mk
        # The guest waits for this before it goes on.
        if pf.ack:
            try:
                conn.sendall(b"go\n")
            except OSError:
                pass

    def reader():
        buf = b""
        while True:
            try:
                chunk = conn.recv(65536)
            except OSError:
                break
            if not chunk:
                break
            now = time.monotonic()
            buf += chunk
            while b"\n" in buf:
                raw, buf = buf.split(b"\n", 1)
                line = raw.decode(errors="replace").rstrip("\r")
                statf.write(line + "\n")
                statf.flush()
                if not line.startswith("PVTIME-BENCH"):
                    continue
                rec["lines"].append([round(now - t0, 4), line])
                m = MARK.match(line)
                if m:
                    on_mark(m.group(1), float(m.group(2)), now)

    th = None
    if conn:
        th = threading.Thread(target=reader, daemon=True)
        th.start()
    guest.wait(timeout)
    timed_out = guest.timed_out
    if th:
        th.join(timeout=10)
    rec["wall"] = round(time.monotonic() - t0, 2)
    for x in (conn, srv, qmp):
        try:
            if x:
                x.close()
        except OSError:
            pass
    statf.close()
    shutil.rmtree(sockdir, ignore_errors=True)
    if timed_out:
        rec["problems"].append(f"timeout after {timeout} s")
    elif proc.returncode != 0:
        rec["problems"].append(f"qemu exited with {proc.returncode}")
    rec["problems"] += boot.console_problems(guest, pf.consoles)
    lines = [l for _, l in rec["lines"]]
    for l in lines:
        if l.startswith("PVTIME-BENCH error"):
            rec["problems"].append(l[len("PVTIME-BENCH "):])
    if not any(l.startswith("PVTIME-BENCH done rc=0") for l in lines) and not timed_out:
        rec["problems"].append("the bench set did not finish cleanly")
    rec["logs"] = logdir
    return rec


# ---------------------------------------------------------------------------
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


def parse_irqs(text):
    """The guest's "NAME=COUNT ..." interrupt list -> {name: count}, rows
    of the same name summed."""
    d = {}
    for kv in text.split():
        k, _, v = kv.partition("=")
        if v.isdigit():
            d[k] = d.get(k, 0) + int(v)
    return d


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


def analyse(pf, runs, cfg):
    """Per-run measurements, then the figures: medians over repetitions."""
    s = cfg["s"]
    hist_us = s["hist_us"]
    dev = {d.key: d for d in pf.devices}
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
        v = [r[k]["median"] for k in peers if r.get(k)]
        return min(v) if v else None

    # Goals: (text, test of the row's medians: stock, PV, best peer).
    G_LE = ("PV ≤ stock", lambda st, pv, bp: pv <= st)
    G_LT = ("PV < stock", lambda st, pv, bp: pv < st)
    G_LE_PEER = ("PV ≤ stock and ≤ best peer",
                 lambda st, pv, bp: pv <= st and (bp is None or pv <= bp))
    G_STALL = ("PV ≤ 0.1× stock", lambda st, pv, bp: pv <= 0.1 * st)
    G_BOOT = ("PV ≤ 0.9× stock", lambda st, pv, bp: pv <= 0.9 * st)
    GOALS = {"le": G_LE, "lt": G_LT}
    for phase, what in (("cyclic-idle", "idle guest"), ("cyclic-busy", "busy guest")):
        for q in ("p50", "p99", "p99.9", "max"):
            row(f"lat.{phase}.{q}", f"lateness {q}, {what}", "µs", main,
                lambda m, p=phase, q=q: m[f"lat:{p}"][q],
                (G_LE_PEER if peers else G_LE) if q == "p99" else None)
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
            main, lambda m, w=w: per1000(m[f"ia:{w}"], "total"), G_LE)
        for k, kl in pf.ia_parts:
            row(f"ia.{w}.{k}", f"  {kl} per 1000 events", "", main,
                lambda m, w=w, k=k: per1000(m[f"ia:{w}"], k))
        row(f"ia.{w}.rate", f"  timer events per second, {what}", "/s", main,
            lambda m, w=w: m[f"ia:{w}"]["events"] / m[f"ia:{w}"]["guest_s"])
    bootp = lambda m: m["exp"] in ("main", "boot") and m.get("boot")  # noqa: E731
    row("boot.wall", "boot to /init, wall", "s", bootp, lambda m: m["boot"]["wall_s"], G_BOOT)
    row("boot.guest", "boot to /init, guest time", "s", bootp, lambda m: m["boot"]["guest_s"], G_BOOT)
    row("idle.cpu", "host CPU per second of idle guest", "ms/s", main,
        lambda m: m["idle_cpu_ms_per_s"], G_LE)
    for n in (s["scale_smp"] if pf.scale else []):
        pred = (lambda m, n=n: m["smp"] == n and m["exp"] in ("scale", "main")
                and not m["stall_us"])
        flat = ("PV ≤ 1.1× PV at 1 vCPU", None)
        row(f"scale.{n}.p99", f"scale: lateness p99, {n} vCPU", "µs", pred,
            lambda m: m["lat:cyclic-idle"]["p99"], flat if n != s["scale_smp"][0] else None)
        row(f"scale.{n}.ia", f"scale: interactions per event, {n} vCPU", "", pred,
            lambda m: per1000(m["ia:cyclic-idle"], "total") / 1000.0,
            flat if n != s["scale_smp"][0] else None)
    # Ratios and goals
    base = pf.devices[0].key
    for r in figs:
        st, pv = r.get(base), r.get("pv")
        r["ratio"] = (pv["median"] / st["median"]
                      if st and pv and st["median"] else None)
        r["ratios"] = {d.key: (r[d.key]["median"] / st["median"]
                               if r.get(d.key) and st and st["median"] else None)
                       for d in pf.devices if not d.baseline}
        bp = best_peer(r)
        r["ratio_peer"] = pv["median"] / bp if pv and bp else None
        r["met"] = None
        if r["goal"] and st and pv:
            fn = r["goal"][1]
            if fn:
                r["met"] = bool(fn(st["median"], pv["median"], bp))
        if r["goal"] and r["id"].startswith("scale."):
            n0 = s["scale_smp"][0]
            kind = r["id"].split(".")[2]
            ref = next((x for x in figs if x["id"] == f"scale.{n0}.{kind}"), None)
            if ref and ref.get("pv") and pv:
                r["flat"] = pv["median"] / ref["pv"]["median"] if ref["pv"]["median"] else None
                r["met"] = r["flat"] is not None and r["flat"] <= 1.1
                if ref.get(base) and st and ref[base]["median"]:
                    r["flat_stock"] = st["median"] / ref[base]["median"]
        if r["goal"]:
            r["goal"] = r["goal"][0]
    return {"runs": per, "figures": figs,
            "hists": {"|".join(map(str, k)): v for k, v in hists.items()}}


# ---------------------------------------------------------------------------
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


def cell(a, unit):
    if not a:
        return "–"
    m = fmt(a["median"])
    if a["n"] > 1:
        return f"{m} [{fmt(a['min'])}–{fmt(a['max'])}]"
    return m


def machine_info():
    model = "?"
    try:
        with open("/proc/cpuinfo") as f:
            for l in f:
                if l.startswith("model name"):
                    model = l.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return {"nproc": os.cpu_count(), "cpu_model": model,
            "host_kernel": pyplatform.release(),
            "loadavg": open("/proc/loadavg").read().split()[:3]}


def git_rev():
    r = subprocess.run(["git", "-C", TOP, "describe", "--always", "--dirty"],
                       stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    return r.stdout.strip() or "?"


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
        for d in pf.devices:
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
        for d in pf.devices:
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
    base = pf.devices[0].key
    figs = {r["id"]: r for r in res["figures"]}

    def spread(r):
        """How the repetitions' ranges of stock and PV relate."""
        a, b = r.get(base), r.get("pv")
        if not a or not b or a["n"] < 2 or b["n"] < 2:
            return "one repetition: no spread to judge it by"
        if a["max"] < b["min"] or b["max"] < a["min"]:
            return "the repetitions' ranges do not overlap"
        return "the repetitions' ranges overlap"
    scale_missed = []
    for r in res["figures"]:
        if r["met"] is not False:
            continue
        fid = r["id"]
        why = ""
        if pf.name == "kvm":
            why = KVM_MISSED.get(fid.split(".")[0], "")
            if fid.startswith("cond.tsc"):
                why = KVM_MISSED["tsc"]
            why = (why + ": " if why else "") + spread(r)
            if r.get("ratio_peer") is not None and fid.startswith("lat."):
                why += f"; PV over the best peer: {r['ratio_peer']:.2f}×"
        elif fid.startswith("lat."):
            why = ("Under TCG both devices are QEMU timers on the same virtual "
                   "clock, fired by the same main-loop thread and delivered by "
                   "the same local APIC path; the device changes the programming "
                   "write (an MSR instead of an APIC register) and the interrupt "
                   "vector, not the delivery, so a p99 difference smaller than "
                   "the host's scheduling noise is noise: " + spread(r))
        elif fid.startswith("stall."):
            st_us = fid.split(".")[1]
            add = {k: figs.get(f"stall.{st_us}.{q}.added", {}).get(k)
                   for k in (base, "pv") for q in ("p50",)}
            why = ("See the note on stalls: with this knob every wakeup pays "
                   "at least one stall on either device")
            if add.get(base) and add.get("pv"):
                why += (f"; what the stall added to p50: stock {fmt(add[base]['median'])} µs, "
                        f"PV {fmt(add['pv']['median'])} µs")
        elif fid.startswith("ia."):
            why = ("Per timer event both devices need the same three "
                   "interactions: one programming write (MSR or TMICT), one "
                   "injection and one EOI; the counts differ only by how often "
                   "the guest reprograms (idle entry and exit, tick stop) and by "
                   "other interrupts' EOIs, which depend on the guest's "
                   "activity, not the device: " + spread(r))
        elif fid.startswith("boot."):
            st, pv = r.get(base), r.get("pv")
            why = ("The PV boot skips the LAPIC timer calibration (100 ms of "
                   "guest time against the PM timer) and the HPET and PIT setup; "
                   "everything else is the same boot, so a loaded host's noise "
                   "easily exceeds the difference: " + spread(r))
            if st and pv and st["min"]:
                why += (f"; the fastest boots: stock {fmt(st['min'])} s, PV "
                        f"{fmt(pv['min'])} s ({pv['min'] / st['min']:.2f}×)")
        elif fid.startswith("idle."):
            why = ("Idle host CPU follows the guest's timer events per second "
                   "and QEMU's own housekeeping: " + spread(r))
        elif fid.startswith("scale."):
            scale_missed.append(r)
            continue
        if why:
            st, pv = r.get(base), r.get("pv")
            n.append(f"Missed: {r['label'].strip()} (stock {fmt(st and st['median'])}, "
                     f"PV {fmt(pv and pv['median'])}). {why}.")
    if scale_missed:
        items = "; ".join(
            f"{r['label'].replace('scale: ', '').strip()}: PV {r['flat']:.2f}×"
            + (f", stock {r['flat_stock']:.2f}×" if r.get("flat_stock") is not None else "")
            for r in scale_missed if r.get("flat") is not None)
        n.append(f"Missed: flat scale ({items}, each against the same device at "
                 f"{s['scale_smp'][0]} vCPU). vCPUs are host threads: with "
                 f"{os.cpu_count()} host cores, a guest with more vCPUs than that "
                 "queues its vCPU threads behind each other and behind QEMU's main "
                 "loop, which fires every timer, so the tail grows with the vCPU "
                 "count on either device; the interactions per event, which do "
                 "not depend on host scheduling, are the part of the goal the "
                 "device decides.")
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
    L.append("One table per platform. Boots alternate between the devices (AB BA "
             "... from one experiment to the next). A cell is the median over "
             "repetitions with its spread [min–max]; a ratio is of the medians "
             "(X/stock; on KVM also PV over the best of the peers, hv and xen).")
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
        L.append("Devices: " + "; ".join(f"**{d.key}** = {d.label}" for d in pf.devices) + ".")
        L.append("")
        judged = [r for r in res["figures"] if r["met"] is not None]
        missed = [r["label"].strip() for r in judged if not r["met"]]
        L.append(f"Goals: {len(judged) - len(missed)} of {len(judged)} met" +
                 (f"; missed: {'; '.join(missed)} (see the notes)." if missed else "."))
        L.append("")
        base = pf.devices[0].key
        others = [d for d in pf.devices if not d.baseline]
        peers = any(d.peer for d in pf.devices)
        hdr = "| figure | " + " | ".join(d.key for d in pf.devices) + " | " + \
              " | ".join(f"{d.key}/{base}" for d in others) + \
              (" | pv/best peer" if peers else "") + " | goal | met? |"
        L.append(hdr)
        L.append("|" + "---|" * (hdr.count("|") - 1))
        for r in res["figures"]:
            unit = f" ({r['unit']})" if r["unit"] else ""
            cells = [cell(r.get(d.key), r["unit"]) for d in pf.devices]
            ratio = [fmt(r["ratios"].get(d.key), 2) for d in others]
            if peers:
                ratio.append(fmt(r.get("ratio_peer"), 2))
            goal = r["goal"] or ""
            met = {True: "yes", False: "**no**", None: ""}[r["met"]]
            if r.get("flat") is not None:
                goal += f" (PV: {r['flat']:.2f}×"
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
    L.append("## Versions and machine")
    L.append("")
    for k, v in ctx["versions"].items():
        L.append(f"- {k}: {v}")
    for k, v in ctx["machine"].items():
        if not k.startswith("_"):
            L.append(f"- {k}: {v}")
    L.append(f"- harness: {ctx['git']}")
    L.append(f"- date: {ctx['date_full']}")
    L.append("")
    with open(path, "w") as f:
        f.write("\n".join(L))


METHOD = [
    "Lateness: rt-tests' cyclictest in the guest, `-m -p 99 -i 1000 -h 100000` "
    "(SCHED_FIFO 99, mlockall, 1 ms period, absolute clock_nanosleep, 1 µs "
    "histogram buckets); idle guest: one thread pinned to every vCPU and "
    "nothing else; busy guest: one thread on vCPU 0 and a CPU hog (a shell "
    "loop, SCHED_OTHER) pinned to every other vCPU. Percentiles come from "
    "the pooled histogram of all threads of one boot; p50/p99/p99.9 are the "
    "1 µs bucket holding that quantile, max is cyclictest's exact maximum.",
    "Stall: the QEMU CPU property x-timer-program-stall-us makes the vCPU "
    "thread sleep that long in host time right before each timer-programming "
    "write takes effect (the PV deadline MSR write or the LAPIC initial-count "
    "write), guest time running on; cyclictest as for the idle guest. The "
    "knob is set for the whole boot.",
    "Interactions: QEMU's per-vCPU QOM counters, read over QMP when the guest "
    "prints a mark and holds still (nothing is printed inside a window). "
    "Timer programming accesses = PV MSR accesses or LAPIC timer register "
    "accesses (`pvce-exits`), EOIs = `apic-eois` (all EOIs of the vCPU), "
    "injections = `pvce-injections` or `timer-lapic-fires`; total = their "
    "sum. A timer event is one expiry counted by the hypervisor "
    "(`pvce-fires` or `timer-lapic-fires`), summed over vCPUs. NO_HZ idle: "
    "the guest sleeps in `sleep` (window of nohz_s); cyclictest: the idle "
    "guest's cyclictest window.",
    "Boot: guest time = printk timestamp of \"Run /init as init process\"; "
    "wall = host time from starting QEMU to the guest's first status line, "
    "minus the guest time from /init to that line (so it includes QEMU start "
    "and firmware). Every boot of the main shape counts (main and boot-only "
    "runs, no stall knob).",
    "Host CPU of an idle guest: utime+stime of the QEMU process "
    "(/proc/PID/stat) over idle_s of guest sleep, after boot, per second of "
    "guest time (equal to wall time without -icount).",
    "Scale: cyclictest on every vCPU of an idle guest with 1..16 vCPUs; "
    "interactions per timer event over the same window. Flatness is PV's "
    "value at N vCPUs over PV's value at 1 vCPU.",
]

# Why a goal can be missed on the nested KVM platform (notes_for()).
KVM_MISSED = {
    "lat": "L1 runs under TCG, so every L2 expiry goes through an hrtimer "
           "of L1 (a TCG timer of L0), KVM's injection, and L0's scheduling "
           "of L1's one vCPU thread; the devices differ in how L2 programs "
           "its timer and in which of L1's hrtimers fires. Lateness here is "
           "dominated by the nesting, alike for every device",
    "cond": "The bursts preempt L2's vCPU thread at moments unrelated to "
            "its timers: an expiry that falls into a burst is late by the "
            "rest of it on every device. An absolute deadline only helps "
            "when the preemption falls between computing a deadline and "
            "programming it (stock, with kvm-clock timekeeping, converts a "
            "delta to a TSC deadline there), a window of well under a "
            "microsecond in every 1 ms period",
    "tsc": "With clocksource=tsc, stock's TSC-deadline timer is coupled "
           "(absolute) like PV, and PV is the one that takes the relative "
           "path (its delta converted to a kvm-clock deadline when it is "
           "programmed): neither device has an advantage left, and the "
           "difference is the L1 side of each",
    "ia": "Per expiry every device needs a programming write, an "
          "injection and an EOI; what differs is how many of these trap "
          "(see the notes on interactions)",
    "boot": "L2's boot to /init differs by the timer setup only; L2's "
            "QEMU start under L1 and L1's TCG speed dominate the wall time",
    "idle": "L2's QEMU process in L1 spends its idle time on the guest's "
            "timer events and its own main loop",
}

METHOD_KVM = [
    "The rig: L0 is this machine running the project's QEMU under TCG with "
    "`-cpu max` (SVM with nested paging), one vCPU, 1536 MiB; L1 runs the "
    "same kernel as L2 and the project's QEMU, which starts L2 with "
    "`-accel kvm -cpu host -smp 1 -m 512` plus the device's options. L2 is "
    "the guest measured. Every figure is L2's or L1's; nothing is "
    "measured on L0.",
    "Marks: L2 cannot hear L0, so after each mark it sleeps 1 s while L1's "
    "hook reads KVM's debugfs statistics (/sys/kernel/debug/kvm/*) and the "
    "CPU time of L2's QEMU (the sum of its threads' schedstat run time). "
    "The mark line itself carries L2's interrupt counts from just before "
    "it, and cyclictest's summary leaves L2 gzip'ed (every byte L2 writes "
    "is a trap to L1's QEMU).",
    "Busy guest: with one vCPU, the hog (SCHED_OTHER) shares cyclictest's "
    "vCPU: the vCPU never halts, so each expiry interrupts a running vCPU "
    "(a host interrupt exit) instead of waking a halted one.",
    "Preempted: a SCHED_FIFO hog in L1 (guest/src/burst.c) runs 200 µs of "
    "every 1.7 ms on L1's only CPU for the length of the cyclic-preempt "
    "phase (cyclictest as for the idle guest), preempting L2's vCPU thread "
    "and L1's QEMU at moments unrelated to L2's timers. The main boot runs "
    "it after the other phases; the tsc boot (L2 with `clocksource=tsc "
    "tsc=reliable`, stock and PV only) runs the idle guest and the "
    "preempted phase.",
    "Interactions: VM exits of L2 (`exits` − `io_exits`: the I/O exits "
    "are L2's serial port, its benchmark lines) per timer event, with "
    "their parts from KVM's statistics: `halt_exits`, `irq_exits` (host "
    "interrupts: the kick of L1's hrtimer when it expires while L2 runs), "
    "`irq_window_exits`, and the rest (MSR writes: the timer programming "
    "and the x2APIC EOI; Xen's timer hypercall); injections = "
    "`irq_injections` (every interrupt). A timer event is one timer "
    "interrupt in L2's /proc/interrupts: LOC (stock), kvm-clockevent (PV), "
    "HVS (Hyper-V), timer0 (Xen). The idle windows are 10 s (NO_HZ, and "
    "host CPU).",
    "Boot: guest time as on TCG (L2's printk time); wall = L1's uptime from "
    "starting L2's QEMU to L2's first status line, minus L2's time from "
    "/init to that line.",
    "Host CPU of an idle guest: the CPU time of L2's QEMU process in L1 per "
    "second of L2's time.",
]

STATIC_NOTES = {
    "kvm": [
        "Absolute numbers are the nested rig's, not KVM's on hardware: L1 "
        "runs under TCG on one vCPU, so every L2 exit is handled by an "
        "emulated CPU, and L1's hrtimers are TCG timers of L0. Lateness is "
        "therefore in the hundreds of µs to ms, and tails are exposed to L0's "
        "scheduling of L1's one vCPU thread. Compare the devices with each "
        "other (same rig, same boots interleaved), not with bare metal.",
        "What fires in L1 for each device: stock, KVM's emulation of the "
        "LAPIC TSC-deadline timer (an hrtimer; SVM has no preemption timer); "
        "PV, the device's hrtimer (pv_clockevent.c, absolute, hard "
        "interrupt context); hv, KVM's Hyper-V synthetic timer (an hrtimer; "
        "direct mode injects its vector through the LAPIC); xen, KVM's Xen "
        "timer (an hrtimer; the event channel upcall is a vector). Each "
        "expiry then costs a host interrupt exit if L2 was running (the "
        "hrtimer kicks the vCPU) or a wakeup if it was halted, one "
        "injection, and one EOI, which traps on SVM without AVIC (x2APIC "
        "MSR write). Interrupt-window exits are KVM asking to be told when "
        "L2 can take a pending interrupt (L2 had interrupts off).",
        "Timekeeping: in this rig L2 picks kvm-clock by itself (see the "
        "devices used, below; kvm-clock gives way to tsc only on a TSC "
        "flagged constant and nonstop), so the main runs are the kvm-clock "
        "case: stock's TSC-deadline timer, coupled only with tsc, takes the "
        "relative path (delta converted to a TSC deadline when it is "
        "programmed) while PV is coupled with kvm-clock (absolute). The "
        "`clocksource=tsc` rows (with `tsc=reliable`, no watchdog) turn "
        "that around: stock coupled, the strongest upstream baseline, and "
        "PV relative. The peers keep their own clocksources "
        "(hyperv_clocksource_tsc_page, xen) and boot only in the main "
        "experiment.",
        "Host CPU of an idle guest: as on TCG, a stock guest leaves the "
        "HPET of L2's QEMU (userspace, not KVM) counting, and its timer "
        "callbacks wake L2's QEMU; the PV guest never sets up the HPET. "
        "That cause is measured on TCG (see its notes), not separately "
        "here; each wakeup of L2's QEMU costs much more in L1 under TCG.",
    ],
    "tcg": [
        "TCG runs every vCPU as a host thread (MTTCG) and QEMU's timers in its "
        "main loop thread: lateness includes host scheduling of those threads, "
        "so on a host with fewer cores than vCPUs + 1 the tail grows with the "
        "vCPU count for both devices alike, and a loaded host dominates the "
        "tail (p99 and beyond) of both.",
        "Stock under TCG is the LAPIC timer in one-shot mode with the HPET as "
        "broadcast device; TCG's CPUs have ARAT, so the broadcast device is "
        "registered but not used (the HPET's interrupt count does not move "
        "during a window; see the irqs lines of the status logs).",
        "Idle host CPU: the stock kernel runs HPET timer 0 periodic at HZ as "
        "its early tick and, once the LAPIC timers take over, stops it by "
        "clearing only the timer's interrupt enable. An HPET timer keeps "
        "running with its interrupt disabled, and QEMU's HPET keeps re-arming "
        "it: in an idle stock guest QEMU's main loop runs its HPET timer "
        "callback every 4 ms (timer 0, periodic, interrupt disabled, period "
        "400000 ticks of 10 ns), about 500 main-loop wakeups per second "
        "against about a dozen with PV, whose guest never sets up the HPET. "
        "That, not the timer path, is most of the difference.",
        "Interactions that remain, on either device: per expiry one injection "
        "and one EOI (the PV vector comes through the same local APIC and is "
        "EOIed like the LAPIC timer's), and 1.5 to 1.8 programming writes: "
        "hrtimer_interrupt() reprograms for the next event after each expiry, "
        "cyclictest's clock_nanosleep() arms its next deadline (the earliest "
        "event of its CPU), and NO_HZ idle entry and exit stop and restart the "
        "tick. The PV device replaces the LAPIC's initial-count write by one "
        "deadline MSR write, one for one, so under TCG it cannot save an "
        "interaction; it saves the relative-to-absolute conversion, not the "
        "trap. Further EOIs come from IPIs and the serial ports (listed "
        "below).",
        "Stalls: the knob delays both devices' programming writes alike, the "
        "vCPU sleeping while guest time runs on. A relative LAPIC count starts "
        "when the write lands, so that expiry moves by the whole stall; an "
        "absolute deadline does not, so PV saves min(stall, time left to the "
        "deadline). But every wakeup also passes stalled writes itself: "
        "hrtimer_interrupt() reprograms the device for the next event before "
        "the woken task runs, so a wakeup is late by at least one stall on "
        "either device. At 100 µs, well inside the 1 ms period, PV is late by "
        "about one stall and stock by about two; at 1000 µs, one period, the "
        "wakeup is already a period late when cyclictest programs its next "
        "deadline, so no time is left and PV saves little. With this knob the "
        "ratio cannot reach 0.1; the 'added by the stall' rows (each against "
        "stall 0 of the same repetition) isolate what the device changes.",
    ],
}


# ---------------------------------------------------------------------------
# Main


def run_problems(recs):
    """The problems of a list of run records (a timeout, a splat, an error
    the bench set reported, a set that did not finish), one line each."""
    return [f"{r['name']}: {x} (logs: {r['logs']})" for r in recs for x in r["problems"]]


def run_all(pf, cfg, logroot, runs_path):
    plan = pf.plan(cfg)
    if cfg.get("only"):
        plan = [r for r in plan if r.exp in cfg["only"]]
    recs = []
    t0 = time.monotonic()
    for i, spec in enumerate(plan):
        el = time.monotonic() - t0
        eta = f", ~{el / i * (len(plan) - i) / 60:.1f} min left" if i else ""
        log(f"[{pf.name} {i + 1}/{len(plan)}] {spec.name} ({el / 60:.1f} min{eta})")
        rec = pf.run(spec, cfg, os.path.join(logroot, pf.name, spec.name))
        for x in rec["problems"]:
            log(f"  {spec.name}: {x} (logs: {rec['logs']})")
        recs.append(rec)
        with open(runs_path, "a") as f:
            f.write(json.dumps({"platform": pf.name, **rec}) + "\n")
    return recs


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
    ap.add_argument("--report-only", metavar="RUNS_JSONL",
                    help="recompute figures, plots and README from a runs.jsonl")
    a = ap.parse_args()

    s = dict(SETTINGS)
    if a.quick:
        s.update(QUICK)
    cfg = {"s": s, "quick": a.quick, "icount": a.icount, "nice": a.nice,
           "only": a.only.split(",") if a.only else None}
    now = datetime.datetime.now()
    date = now.strftime("%Y-%m-%d")
    if a.out:
        out = a.out
    elif a.quick:
        out = os.path.join(TOP, "build", "bench", "quick")
    else:
        out = os.path.join(TOP, "bench", "results", date)
        i = 2
        while os.path.exists(out) and not a.report_only:
            out = os.path.join(TOP, "bench", "results", f"{date}-{i}")
            i += 1
    stamp = now.strftime("%Y%m%d-%H%M%S")
    logroot = (os.path.dirname(os.path.abspath(a.report_only)) if a.report_only
               else os.path.join(TOP, "build", "bench", stamp))
    os.makedirs(logroot, exist_ok=True)
    os.makedirs(out, exist_ok=True)
    cfg["logroot"] = logroot
    runs_path = os.path.join(logroot, "runs.jsonl")
    old = None
    if a.report_only:
        with open(a.report_only) as f:
            old = [json.loads(l) for l in f]
        hdr = next((r["header"] for r in old if "header" in r), None)
        if hdr:
            s.clear()
            s.update(hdr["settings"])
            cfg.update(quick=hdr["quick"], icount=hdr["icount"])
        ftr = next((r["footer"] for r in old if "footer" in r), {})
        # The run's own date and harness, not this rendering's: from the
        # header, or (older records) the records' end less the run's length.
        if hdr and hdr.get("date_full"):
            now = datetime.datetime.fromisoformat(hdr["date_full"])
        elif ftr.get("wall_s"):
            now = (datetime.datetime.fromtimestamp(os.path.getmtime(a.report_only)) -
                   datetime.timedelta(seconds=ftr["wall_s"])).replace(microsecond=0)
        date = now.strftime("%Y-%m-%d")
    command = " ".join(
        (["BENCH_QUICK=1"] if a.quick else []) +
        ([f"BENCH_ICOUNT={a.icount}"] if a.icount is not None else []) +
        ([f"BENCH_PLATFORMS={a.platform}"] if a.platform != "tcg,kvm" else []) +
        ["make bench"])
    if a.report_only:
        command = (hdr or {}).get("command", command)
    else:
        with open(runs_path, "w") as f:
            f.write(json.dumps({"header": {"settings": s, "quick": cfg["quick"],
                                           "command": command,
                                           "icount": cfg["icount"],
                                           "machine": machine_info(),
                                           "git": git_rev(),
                                           "date_full": now.isoformat(timespec="seconds")}}) + "\n")

    names = [x for x in a.platform.split(",") if x]
    if "all" in names:
        names = list(PLATFORMS)
    if old is not None:
        # Re-rendering: the platforms the run measured, unless asked.
        ran = {r["platform"] for r in old if r.get("platform")}
        names = [n for n in names if n in ran] or names
    machine = machine_info()
    if old is not None:
        machine = dict(hdr.get("machine", machine)) if hdr else machine
        if ftr.get("loadavg_end"):
            machine["loadavg_end"] = ftr["loadavg_end"]
            machine["_loadavg_end_at"] = "at the end of the run"
    t0 = time.monotonic()
    rev = git_rev()
    if old is not None:
        rev = (f"{hdr['git']} (report re-rendered by {rev})" if hdr and hdr.get("git")
               else f"{rev} (report re-rendered from the run's records)")
    ctx = {"cfg": cfg, "date": date, "date_full": now.isoformat(timespec="seconds"),
           "platforms": [], "versions": {}, "machine": machine, "git": rev,
           "command": command}
    nruns = 0
    build_s = 0.0
    all_recs = []
    for name in names:
        if name not in PLATFORMS:
            ap.error(f"unknown platform {name}")
        pf = PLATFORMS[name]()
        ok, why = pf.available()
        p = {"pf": pf, "reason": why}
        ctx["platforms"].append(p)
        if not ok:
            log(f"platform {name}: not measured: {why}")
            continue
        if old is not None:
            recs = [r for r in old if r.get("platform") == name]
            if not recs:
                p["reason"] = "no runs in " + a.report_only
                continue
            for r in old:
                ctx["versions"].update(r.get("versions", {}))
                if r.get("platform_end") == name:
                    machine["loadavg_end"] = r["loadavg_end"]
                    machine["_loadavg_end_at"] = "after the last"
        else:
            tb = time.monotonic()
            pf.prepare(cfg)
            build_s += time.monotonic() - tb
            v = pf.versions()
            ctx["versions"].update(v)
            with open(runs_path, "a") as f:
                f.write(json.dumps({"versions": v}) + "\n")
            recs = run_all(pf, cfg, logroot, runs_path)
            machine["loadavg_end"] = open("/proc/loadavg").read().split()[:3]
            with open(runs_path, "a") as f:
                f.write(json.dumps({"platform_end": name,
                                    "loadavg_end": machine["loadavg_end"]}) + "\n")
        nruns += len(recs)
        all_recs += recs
        res = analyse(pf, recs, cfg)
        p["res"] = res
        p["notes"] = notes_for(pf, res, cfg, machine)
        p["cmdlines"] = {}
        for d in pf.devices:
            r = next((r for r in recs if r["device"] == d.key and r["exp"] == "main"), None)
            if r:
                try:
                    with open(os.path.join(r["logs"], "cmdline")) as f:
                        p["cmdlines"][d.key] = f.read().strip()
                except OSError:
                    pass
        p["guest_cmds"] = {}
        for r in recs:
            for ph, doc in cyclictest_docs(r).items():
                p["guest_cmds"].setdefault(ph, doc.get("cmdline:", "?"))
        try:
            p["plots"] = plots(pf, res, cfg, out, os.path.join(logroot, "plots"))
        except (RuntimeError, OSError) as e:
            log(f"plots: {e}")
            p["plots"] = []
    wall = time.monotonic() - t0
    shutil.rmtree(os.path.join(logroot, "builds"), ignore_errors=True)
    if old is not None:
        wall = ftr.get("wall_s", wall)
        build_s = ftr.get("build_s", 0.0)
    else:
        with open(runs_path, "a") as f:
            f.write(json.dumps({"footer": {"wall_s": wall, "build_s": build_s,
                                           "loadavg_end": machine.get("loadavg_end")}}) + "\n")
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
                             for d in p["pf"].devices},
                 "figures": p["res"]["figures"], "runs": p["res"]["runs"],
                 "histograms": p["res"]["hists"]}
                if p.get("res") else {"not_measured": p["reason"]})
                for p in ctx["platforms"]},
        }, f, indent=1, default=str)
    log(f"results: {out} (logs: {logroot}), {wall / 60:.1f} min "
        f"({build_s / 60:.1f} min of it builds)")

    # Every figure of every measured platform must have been produced.
    missing = []
    for p in ctx["platforms"]:
        if not p.get("res"):
            continue
        for r in p["res"]["figures"]:
            for d in p["pf"].devices:
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


def print_table(p):
    pf, res = p["pf"], p["res"]
    print(f"== {pf.title}")
    for r in res["figures"]:
        cells = "  ".join(f"{d.key} {cell(r.get(d.key), r['unit']):>22}" for d in pf.devices)
        ratio = fmt(r["ratio"], 2) if r["ratio"] is not None else "–"
        met = {True: "met", False: "MISSED", None: ""}[r["met"]]
        print(f"{r['label']:<48} {cells}  ratio {ratio:>5} {met}")


if __name__ == "__main__":
    sys.exit(main())
