#!/bin/sh
# Self-tests of the harness that need no build: the apply gate refuses a
# broken patch and names it, accepts a good one; the TAP parser and the
# splat detector of the boot runner judge sample logs correctly; make
# bench reads the nested rig's lines correctly.
# Usage: static.sh OUTDIR  (writes OUTDIR/results: "ok|fail NAME" lines)
set -u
out=${1:?usage: static.sh OUTDIR}
top=$(cd "$(dirname "$0")/../.." && pwd)
rm -rf "$out" && mkdir -p "$out"
res=$out/results
: >"$res"
r() { echo "$1 $2" >>"$res"; }

# A tiny pristine base and two series: one good patch, then a broken one.
base=$out/base
mkdir -p "$base"
printf 'one\ntwo\nthree\n' >"$base/file.txt"
touch "$base/.pvtime-pristine"
git -C "$out" init -q scratch
cp "$base/file.txt" "$out/scratch/"
(cd "$out/scratch" && git add file.txt &&
 git -c user.name=t -c user.email=t@example.org commit -qm base &&
 sed -i 's/two/TWO/' file.txt &&
 git -c user.name=t -c user.email=t@example.org commit -qam 'good: change two' &&
 git format-patch -q -1 -o "$out/good")
mkdir -p "$out/broken"
cp "$out"/good/*.patch "$out/broken/0001-good.patch"
sed 's/^-two$/-no such line/' "$out/broken/0001-good.patch" >"$out/broken/0002-broken.patch"
sed -i 's/^Subject: .*/Subject: [PATCH] broken: does not apply/' "$out/broken/0002-broken.patch"
printf '0001-good.patch\n0002-broken.patch\n' >"$out/broken/series"
(cd "$out/good" && ls *.patch >series)

if "$top/scripts/tree.sh" apply-check "$out/good" "$base" >"$out/good.log" 2>&1; then
	r ok "apply gate accepts a good patch"
else
	r fail "apply gate accepts a good patch"
fi
if "$top/scripts/tree.sh" apply-check "$out/broken" "$base" >"$out/broken.log" 2>&1; then
	r fail "apply gate refuses a broken patch"
elif grep -q 'patch does not apply: .*0002-broken.patch' "$out/broken.log"; then
	r ok "apply gate refuses a broken patch and names it"
else
	r fail "apply gate refuses a broken patch and names it"
fi

# The boot runner's judges, on sample logs.
/usr/bin/python3 - "$top/scripts" >>"$res" <<'PY'
import sys
sys.path.insert(0, sys.argv[1])
from boot import diagnose, parse_tap, find_splats

def check(name, cond):
    print(("ok " if cond else "fail ") + name)

t = parse_tap("""TAP version 13
1..5
# selftests: timers: nanosleep
# ok 1 nested result, not counted
ok 1 selftests: timers: nanosleep
not ok 2 selftests: timers: posix_timers # exit=1
ok 3 selftests: timers: rtcpie # SKIP
not ok 4 selftests: timers: set-timer-lat # TIMEOUT 45 seconds
ok 5 selftests: timers: raw_skew
""".splitlines())
check("TAP: ok/not ok/SKIP/TIMEOUT counted as kselftest writes them",
      (t["passed"], t["failed"], t["skipped"], t["timeout"]) == (2, 2, 1, 1))
t = parse_tap("TAP version 13\n1..3\nok 1 a\n".splitlines())
check("TAP: results missing from the plan count as failed",
      (t["passed"], t["failed"]) == (1, 2))
t = parse_tap("TAP version 13\n1..1\nok 1 a\nTAP version 13\n1..1\nnot ok 1 b\n".splitlines())
check("TAP: two streams in one run", (t["passed"], t["failed"]) == (1, 1))

bad = {
    "panic": "[ 1.0] Kernel panic - not syncing: sysrq triggered crash",
    "oops": "[ 1.0] Oops: general protection fault, probably for non-canonical address",
    "bug": "[ 1.0] BUG: kernel NULL pointer dereference, address: 0000000000000000",
    "warning": "[ 1.0] WARNING: CPU: 0 PID: 1 at kernel/time/clockevents.c:42 foo+0x1/0x2",
    "lockdep": "[ 1.0] WARNING: possible circular locking dependency detected",
    "kasan": "[ 1.0] BUG: KASAN: slab-out-of-bounds in foo+0x1/0x2",
    "ubsan": "[ 1.0] UBSAN: shift-out-of-bounds in kernel/time/foo.c:1:2",
    "clocksource-watchdog": "[ 1.0] clocksource: timekeeping watchdog on CPU1: Marking clocksource 'tsc' as unstable because the skew is too large:",
    "msr": "[ 1.0] unchecked MSR access error: WRMSR to 0x4b564d0a (tried to write 0x0000000000000001)",
}
for kind, line in bad.items():
    check(f"splat detector flags {kind}", len(find_splats(line)) == 1)
good = """[    0.000000] Linux version 7.1.8 (pvtime@example.org)
[    0.100000] clocksource: tsc-early: mask: 0xffffffffffffffff max_cycles: 0x1
[    0.200000] Lock dependency validator: Copyright (c) 2006 Red Hat, Inc.
[    0.300000] clocksource: Switched to clocksource kvm-clock
[    0.400000] hpet0: at MMIO 0xfed00000, IRQs 2, 8, 0
[    0.500000] x86/bugs: Spectre V2 : Mitigation: Retpolines
[    0.000231] tsc: Marking TSC unstable due to running on Hyper-V"""
check("splat detector passes a clean boot log", find_splats(good) == [])

status = """PVTIME-BEGIN pvtime
TAP version 13
1..2
# selftests: pvtime: pvtime_test
# TAP version 13
# 1..2
# #  RUN           pvtime.current_device ...
# # pvtime_test.c:10:current_device:passing test's log
# #            OK  pvtime.current_device
# ok 1 pvtime.current_device
# #  RUN           stock.fallback ...
# # pvtime_test.c:700:fallback:cpu0: 2 late, max 612 ms
# # pvtime_test.c:790:fallback:Expected 0 (0) == bad (1)
# # fallback: Test failed
# #          FAIL  stock.fallback
# not ok 2 stock.fallback
# # FAILED: 1 / 2 tests passed.
not ok 1 selftests: pvtime: pvtime_test # exit=1
# selftests: timers: nanosleep
# Nanosleep CLOCK_MONOTONIC  FAIL (late by 3 s)
not ok 2 selftests: timers: nanosleep # exit=1
# l2: timed out after 240 s
# l2 hang: RIP=ffffffff814d5688 RFL=00000046 [---Z-P-] CPL=0 II=0 A20=1 SMM=0 HLT=1
"""
d = diagnose(status, [("console", "[ 1.0] booted\n[ 9.0] stuck here\n")])
check("failed row: the harness's account of the failed test, not the passed one's",
      "# # pvtime_test.c:700:fallback:cpu0: 2 late, max 612 ms" in d and
      "# #          FAIL  stock.fallback" in d and
      not any("passing test" in x for x in d))
check("failed row: the lines before a not ok outside the harness",
      "# Nanosleep CLOCK_MONOTONIC  FAIL (late by 3 s)" in d and
      sum("not ok" in x for x in d if not x.startswith(" ")) == 1)
check("failed row: the nested rig's account of a hung L2",
      "# l2: timed out after 240 s" in d and any(x.startswith("# l2 hang: RIP=") for x in d))
check("failed row: the last lines of its status and consoles (where it stopped)",
      "last lines of console:" in d and "  [ 9.0] stuck here" in d)
PY

# make bench's parsing of the nested rig's lines, on a sample run record:
# L1's statistics attached to L2's marks, interactions per window without
# L2's serial traffic, timer events by the device's interrupt name, the
# compressed cyclictest summary, the boot time as L1 saw it.
if ! /usr/bin/python3 - "$top/scripts" >>"$res" 2>"$out/bench.log" <<'PY'
import base64, gzip, json, sys
sys.path.insert(0, sys.argv[1])
import bench

def check(name, cond):
    print(("ok " if cond else "fail ") + name)


pf = bench.KvmNested()
xen = next(d for d in pf.devices if d.key == "xen")
doc = {"thread": {"0": {"histogram": {"3": 5, "7": 1}, "cycles": 6, "max": 7, "cpu": 0}}}
gz = base64.b64encode(gzip.compress(json.dumps(doc).encode())).decode()
lines = [
    "PVTIME-BENCH l1-seen qemu-start uptime=2.50",
    "PVTIME-BENCH boot init=4.00 now=5.00 ncpu=1 clocksource=xen clockevent=xen",
    "PVTIME-BENCH l1-seen boot uptime=10.00",
    "PVTIME-BENCH mark cyclic-idle-begin t=6.00 irqs timer=9 timer0=100 ttyS1=4 LOC=0",
    "PVTIME-BENCH kvm-stats cyclic-idle-begin uptime=11.0 cpu_ns=1000000000 exits=50 io_exits=10 halt_exits=5 irq_exits=5 irq_window_exits=0 irq_injections=7",
    "PVTIME-BENCH mark cyclic-idle-end t=16.00 irqs timer=9 timer0=1100 ttyS1=8 LOC=0",
    "PVTIME-BENCH kvm-stats cyclic-idle-end uptime=21.0 cpu_ns=3000000000 exits=4050 io_exits=1010 halt_exits=505 irq_exits=405 irq_window_exits=100 irq_injections=1007",
    "PVTIME-BENCH cyclictest-gz cyclic-idle " + gz,
    "PVTIME-BENCH done rc=0",
]
rec = {"name": "t", "lines": [[1.0, l] for l in lines], "problems": [],
       "marks": {"cyclic-idle-begin": {"wall": 1.0, "guest": 6.0, "cpu_s": 99.0},
                 "cyclic-idle-end": {"wall": 11.0, "guest": 16.0, "cpu_s": 99.0}}}
pf.finish(rec)
check("bench: L1's statistics are attached to L2's marks",
      rec["problems"] == [] and rec["marks"]["cyclic-idle-end"]["counters"]["exits"] == 4050)
check("bench: the host CPU time of a nested run is L2's QEMU in L1",
      rec["marks"]["cyclic-idle-end"]["cpu_s"] == 3.0)
ia = bench.window(pf, xen, rec, "cyclic-idle-begin", "cyclic-idle-end")
check("bench: nested interactions leave out L2's serial port",
      ia["total"] == 3000 and ia["serial"] == 1000 and ia["other"] == 3000 - 500 - 400 - 100)
check("bench: timer events counted by the device's interrupt (timer0, not timer)",
      ia["events"] == 1000 and bench.per1000(ia, "total") == 3000)
rec2 = {"lines": [[1.0, lines[3]]], "problems": [],
        "marks": {"cyclic-idle-begin": {"wall": 1.0, "guest": 6.0}}}
pf.finish(rec2)
check("bench: a mark without L1's statistics is a run problem",
      any("no KVM statistics" in p for p in rec2["problems"]))
d = bench.cyclictest_docs(rec)
lat = bench.lateness(d["cyclic-idle"], 100000)
check("bench: compressed cyclictest summary decoded, percentiles from it",
      (lat["p50"], lat["p99"], lat["max"], lat["samples"]) == (3, 7, 7, 6))
b = bench.boot_sample(rec)
check("bench: nested boot wall time is L1's view of L2's QEMU",
      abs(b["wall_s"] - (10.0 - 2.5 - 1.0)) < 1e-9 and b["guest_s"] == 4.0)
PY
then
	r fail "bench: parsing self-tests ran to their end (see bench.log)"
fi
cat "$res"
