"""make bench, as a package: measure (boots and their raw records), analyse
(figures and intervals from the records), report (README, plots, table).
scripts/bench.py is the command."""
import os
import sys

TOP = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(TOP, "scripts"))

# ---------------------------------------------------------------------------
# Fixed settings. Every figure of a results set is measured with these; the
# quick mode only shortens and thins them out (QUICK below).
SETTINGS = {
    "reps": 10,              # repetitions of every PV/stock pair (analyse.MIN_REPS)
    "boot_reps": 10,         # boots per device for the boot-time figure
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
COUNTERS = ["x-pvce-arms", "x-pvce-disarms", "x-pvce-fires",
            "x-pvce-injections", "x-pvce-gps", "x-pvce-exits",
            "x-timer-lapic-writes", "x-timer-lapic-reads",
            "x-timer-lapic-fires", "x-apic-eois"]


def log(*a):
    print("bench:", *a, file=sys.stderr, flush=True)
