"""Fixed text of the README: how each platform measures, and notes that
hold whatever the data (kept apart from what a run computes)."""


METHOD = [
    "Lateness: rt-tests' cyclictest in the guest, `-m -p 99 -i 1000 -h 100000` "
    "(SCHED_FIFO 99, mlockall, 1 ms period, absolute clock_nanosleep, 1 µs "
    "histogram buckets); idle guest: one thread pinned to every vCPU and "
    "nothing else; busy guest: one thread on vCPU 0 and a CPU hog (a shell "
    "loop, SCHED_OTHER) pinned to every other vCPU. Percentiles come from "
    "the pooled histogram of all threads of one boot; p50/p99/p99.9 are the "
    "1 µs bucket holding that quantile, max is cyclictest's exact maximum.",
    "Stall: the QEMU CPU property x-timer-program-stall-us makes the vCPU "
    "thread sleep that long in host time, outside QEMU's global lock, right "
    "before each timer-programming MSR write is handled (the PV deadline MSR "
    "or the x2APIC initial-count MSR; both guests run their local APIC in "
    "x2APIC mode), guest time running on; cyclictest as for the idle guest. "
    "The knob is set for the whole boot.",
    "Interactions: QEMU's per-vCPU QOM counters, read over QMP when the guest "
    "prints a mark and holds still (nothing is printed inside a window). "
    "Timer programming accesses = PV MSR accesses or LAPIC timer register "
    "accesses (`x-pvce-exits`), EOIs = `x-apic-eois` (all EOIs of the vCPU), "
    "injections = `x-pvce-injections` or `x-timer-lapic-fires`; total = their "
    "sum. A timer event is one expiry counted by the hypervisor "
    "(`x-pvce-fires` or `x-timer-lapic-fires`), summed over vCPUs. NO_HZ idle: "
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
        "it, waking QEMU's main loop while the guest idles; the PV guest "
        "never sets up the HPET. How much of the difference that is, this "
        "run's `stock-nohpet` control (stock with hpet=disable) shows: "
        "compare its row with stock's and PV's.",
        "Interactions that remain, on either device: per expiry one injection "
        "and one EOI (the PV vector comes through the same local APIC and is "
        "EOIed like the LAPIC timer's), and the programming writes (the "
        "interactions table gives them per expiry for this run): "
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
        "either device, which bounds what an absolute deadline can save under "
        "this knob. The 'added by the stall' rows (each against stall 0 of "
        "the same repetition) isolate what the device changes.",
    ],
}


# ---------------------------------------------------------------------------
# Main
