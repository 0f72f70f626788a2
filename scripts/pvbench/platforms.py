"""The devices compared, and the platforms that boot them: QEMU TCG, and KVM
nested in an L1 host under TCG. A platform plans the boots of a run and
turns two marks' samples into interaction counts."""
import os
import re
import shutil

import boot

from . import TOP, COUNTERS
from .measure import (builds_versions, get_builds, parse_irqs, run_qemu,
                      sample_qom, script_out)


# ---------------------------------------------------------------------------
# Devices and platforms


class Device:
    """One column of a comparison: what differs between the boots. A peer
    is another paravirtual timer, compared with PV as well as with the
    baseline; timer_irq names the guest's timer interrupt in
    /proc/interrupts (a regular expression)."""

    def __init__(self, key, label, cpu, append="", baseline=False, accel=None,
                 peer=False, timer_irq="LOC", control=False):
        self.key, self.label, self.cpu, self.append = key, label, cpu, append
        self.baseline, self.accel, self.peer = baseline, accel, peer
        self.timer_irq, self.control = timer_irq, control

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
    # Controls: variants of the baseline booted in the main and boot-only
    # experiments only, to show what of a difference is not the device's.
    controls = []
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

    @property
    def all_devices(self):
        """The compared devices, then the controls."""
        return self.devices + self.controls

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
        ds = pf.all_devices if exp in ("main", "boot") else devs
        for d in (ds if k % 2 == 0 else list(reversed(ds))):
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
        "The columns stock and PV differ only in the guest's clock event "
        "device: **PV** boots the guest with the paravirtual device "
        "(`-cpu max,tcg-kvmclock=on,kvm-pv-clockevent=on`), **stock** boots "
        "the same kernel on the same QEMU command line plus the kernel "
        "parameter `no-pvclockevent`, which falls back to the stock devices." " **stock-nohpet**, a control booted in the main and boot-only experiments, is "
        "stock with `hpet=disable`: what of stock's boot time, idle host CPU and "
        "lateness comes from the HPET that the stock guest sets up and the PV guest "
        "does not.")

    def __init__(self):
        self.devices = [
            Device("stock", "stock (LAPIC one-shot)", self.PV_CPU,
                   "no-pvclockevent", baseline=True),
            Device("pv", "PV (kvm-clockevent)", self.PV_CPU,
                   timer_irq="kvm-clockevent"),
        ]
        # The stock guest also sets up the HPET, which QEMU keeps counting
        # with its interrupt off; the PV guest does not.
        self.controls = [
            Device("stock-nohpet", "stock with hpet=disable (control)", self.PV_CPU,
                   "no-pvclockevent hpet=disable", control=True),
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
            events = d["x-pvce-fires"]
            inj = d["x-pvce-injections"]
        else:
            events = d["x-timer-lapic-fires"]
            inj = d["x-timer-lapic-fires"]
        out = {
            "program": d["x-pvce-exits"],  # timer MSR / LAPIC timer reg accesses
            "eoi": d["x-apic-eois"],
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
        "kernel-irqchip=split`). Same L1, same L2 kernel and initramfs." " **stock-nohpet**, a control booted in the main and boot-only experiments, is "
        "stock with `hpet=disable`: what of stock's boot time, idle host CPU and "
        "lateness comes from the HPET that the stock guest sets up and the PV guest "
        "does not.")

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
        # L2's HPET is emulated by its QEMU in L1, on L1's only CPU.
        self.controls = [
            Device("stock-nohpet", "stock with hpet=disable (control)", "host",
                   "no-pvclockevent hpet=disable", control=True),
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
                                        "cyclic-preempt"], self.all_devices))
            slots.append((rep, "tsc", ["cyclic-idle", "cyclic-preempt"], self.base))
        # Boot-only runs up to boot_reps boots per device (not in the
        # quick mode: a nested boot costs a quarter of a minute).
        for i in range(0 if cfg["quick"] else max(0, s["boot_reps"] - s["reps"])):
            slots.append((i, "boot", [], self.all_devices))
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
