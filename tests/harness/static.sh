#!/bin/sh
# Self-tests of the harness that need no build: the apply gate refuses a
# broken patch and an empty series, accepts a good one; the TAP parser, the
# row judge, the matrix reader and the closing tally of the boot runner
# judge sample input correctly; make bench reads the nested rig's lines
# correctly and its quick mode fails on run problems.
# Usage: static.sh OUTDIR  (writes OUTDIR/results: "ok|fail NAME" lines)
# Exits non-zero when any check failed or did not run: each Python block
# prints its plan ("plan N", computed from its table of checks) before its
# checks, and a block that crashes or reports fewer results than it
# planned is a failed check of its own. PVTIME_STATIC_BREAK=N makes block
# N crash after its plan (make check's test of this guard).
set -u
out=${1:?usage: static.sh OUTDIR}
top=$(cd "$(dirname "$0")/../.." && pwd)
rm -rf "$out" && mkdir -p "$out"
res=$out/results
: >"$res"
r() { echo "$1 $2" >>"$res"; }

# block N NAME: run a Python block (stdin) whose output is "plan K" and
# then K "ok|fail NAME" lines, and hold it to its plan.
block() {
	n=$1 name=$2
	/usr/bin/python3 - "$top/scripts" "$n" >"$out/block$n.out" 2>"$out/block$n.log"
	st=$?
	plan=$(sed -n 's/^plan \([0-9][0-9]*\)$/\1/p' "$out/block$n.out" | head -n1)
	grep -E '^(ok|fail) ' "$out/block$n.out" >>"$res"
	ran=$(grep -cE '^(ok|fail) ' "$out/block$n.out")
	if [ "$st" != 0 ] || [ -z "$plan" ] || [ "$ran" != "$plan" ]; then
		r fail "$name: block ran ${ran} of ${plan:-?} planned checks, exit $st (see block$n.log)"
	fi
}

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
	r fail "apply gate refuses a broken patch and names it (it passed)"
elif grep -q 'patch does not apply: .*0002-broken.patch' "$out/broken.log"; then
	r ok "apply gate refuses a broken patch and names it"
else
	r fail "apply gate refuses a broken patch and names it (no name)"
fi
# A series that lists no patch (only the cover letter), and no series file.
mkdir -p "$out/empty" "$out/noseries"
printf '# nothing\n0000-cover-letter.patch\n' >"$out/empty/series"
cp "$out"/good/*.patch "$out/noseries/"
for d in empty noseries; do
	if "$top/scripts/tree.sh" apply-check "$out/$d" "$base" >"$out/$d.log" 2>&1; then
		r fail "apply gate refuses a series with no patch ($d: it passed)"
	elif grep -q 'no patch' "$out/$d.log"; then
		r ok "apply gate refuses a series with no patch ($d)"
	else
		r fail "apply gate refuses a series with no patch ($d: $(tail -n1 "$out/$d.log"))"
	fi
done

# The nested rig's KVM selftest set, on the host: a required test that
# skips (exit 4) is a failure, one that passes is not.
kd=$out/kvm
mkdir -p "$kd/x86"
printf '#!/bin/sh\nexit 0\n' >"$kd/x86/passes"
printf '#!/bin/sh\necho "1..0 # SKIP feature absent"\nexit 4\n' >"$kd/x86/skips"
chmod +x "$kd/x86/passes" "$kd/x86/skips"
printf 'x86/passes\nx86/skips\n' >"$kd/list"
PVTIME_KVMDIR=$kd PVTIME_KVMDEV=/dev/null PVTIME_TMP=$kd \
	sh "$top/guest/sets/kvm-selftests" >"$kd/out" 2>&1
if grep -q '^ok 2 selftests: kvm: x86/passes$' "$kd/out" &&
   grep -q '^not ok 3 selftests: kvm: x86/skips # exit=4' "$kd/out" &&
   [ "$(cat "$kd/pvtime-rc" 2>/dev/null)" = 1 ]; then
	r ok "kvm-selftests set: a required test that skips fails the row"
else
	r fail "kvm-selftests set: a required test that skips fails the row (see $kd/out)"
fi

# A filter for pvtime_test (pvtime.kvmfilter) that selects no case fails;
# one that ran a case passes.
kf=$out/kvmfilter
mkdir -p "$kf/x86"
printf '#!/bin/sh\necho "# args: $*"\necho "1..0"\nexit 0\n' >"$kf/x86/pvtime_test"
chmod +x "$kf/x86/pvtime_test"
printf 'x86/pvtime_test\n' >"$kf/list"
PVTIME_KVMDIR=$kf PVTIME_KVMDEV=/dev/null PVTIME_TMP=$kf PVTIME_KVMFILTER="-r pvtime.nosuch" \
	sh "$top/guest/sets/kvm-selftests" >"$kf/out-none" 2>&1
printf '#!/bin/sh\necho "# args: $*"\necho "1..1"\necho "ok 1 pvtime.repin"\nexit 0\n' >"$kf/x86/pvtime_test"
PVTIME_KVMDIR=$kf PVTIME_KVMDEV=/dev/null PVTIME_TMP=$kf PVTIME_KVMFILTER="-r pvtime.repin" \
	sh "$top/guest/sets/kvm-selftests" >"$kf/out-one" 2>&1
if grep -q '^not ok 2 selftests: kvm: x86/pvtime_test -r pvtime.nosuch # no case ran$' "$kf/out-none" &&
   grep -q '^# # args: -r pvtime.repin$' "$kf/out-one" &&
   grep -q '^ok 2 selftests: kvm: x86/pvtime_test$' "$kf/out-one"; then
	r ok "kvm-selftests set: a pvtime_test filter that selects no case fails"
else
	r fail "kvm-selftests set: a pvtime_test filter that selects no case fails (see $kf/out-none, $kf/out-one)"
fi

# Both Python blocks register their checks in a table; the prologue prints
# the plan and runs them, a check that raises is a failed check.
PROLOGUE='
import os, sys
sys.path.insert(0, sys.argv[1])
CHECKS = []
def check(name, fn):
    CHECKS.append((name, fn))
def run_checks():
    print(f"plan {len(CHECKS)}", flush=True)
    if os.environ.get("PVTIME_STATIC_BREAK") == sys.argv[2]:
        raise SystemExit("injected crash (PVTIME_STATIC_BREAK)")
    for name, fn in CHECKS:
        try:
            ok = bool(fn())
        except Exception as e:
            ok, name = False, f"{name} (raised {type(e).__name__}: {e})"
        print(("ok " if ok else "fail ") + name, flush=True)
'

# The boot runner's judges, on sample logs and streams.
{ echo "$PROLOGUE"; cat <<'PY'; } | block 1 "boot runner judges"
import json, tempfile
from boot import (diagnose, parse_tap, find_splats, results, status_problems,
                  matrix_rows, ROW_KEYS)
import tally


def tap(text):
    return parse_tap(text.splitlines())


t = tap("""TAP version 13
1..5
# selftests: timers: nanosleep
# ok 1 nested result, not counted
ok 1 selftests: timers: nanosleep
not ok 2 selftests: timers: posix_timers # exit=1
ok 3 selftests: timers: rtcpie # SKIP
not ok 4 selftests: timers: set-timer-lat # TIMEOUT 45 seconds
ok 5 selftests: timers: raw_skew
""")
check("TAP: ok/not ok/SKIP/TIMEOUT counted as kselftest writes them",
      lambda: (t["passed"], t["failed"], t["skipped"], t["timeout"]) == (2, 2, 1, 1))
check("TAP: results missing from the plan count as failed",
      lambda: (lambda t: (t["passed"], t["failed"]) == (1, 2))(
          tap("TAP version 13\n1..3\nok 1 a\n")))
check("TAP: two streams in one run",
      lambda: (lambda t: (t["passed"], t["failed"]) == (1, 1))(
          tap("TAP version 13\n1..1\nok 1 a\nTAP version 13\n1..1\nnot ok 1 b\n")))
check("TAP: a result beyond the plan fails",
      lambda: tap("TAP version 13\n1..1\nok 1 a\nok 2 b\n")["failed"] == 1)
check("TAP: a repeated result number fails",
      lambda: tap("TAP version 13\n1..2\nok 1 a\nok 1 a\n")["failed"] == 1)
check("TAP: results out of order fail",
      lambda: tap("TAP version 13\n1..2\nok 2 b\nok 1 a\n")["failed"] >= 1)
check("TAP: Bail out! fails",
      lambda: tap("TAP version 13\n1..2\nok 1 a\nBail out! no CPU\n")["failed"] >= 1)
check("TAP: 1..0 # SKIP is one skipped result",
      lambda: (lambda t: (t["skipped"], t["failed"]) == (1, 0))(
          tap("TAP version 13\n1..0 # SKIP no /dev/cpu/0/msr\n")))
check("TAP: a stream with no result has no result",
      lambda: results(tap("PVTIME-BEGIN x\n# hello\nPVTIME-END x\n")) == 0)

# The row judge on a status stream (guest/init's lines).
good = "PVTIME-BEGIN s\nTAP version 13\n1..1\nok 1 a\nPVTIME-END s\nPVTIME-RC 0\n"
check("row judge: a clean stream has no problem", lambda: status_problems(good) == [])
check("row judge: a set that printed no TAP result fails",
      lambda: any("no TAP result" in p for p in status_problems(
          "PVTIME-BEGIN s\n# nothing\nPVTIME-END s\nPVTIME-RC 0\n")))
check("row judge: no exit status fails",
      lambda: any("no exit status" in p for p in status_problems(good.replace("PVTIME-RC 0\n", ""))))
check("row judge: a non-zero exit status fails",
      lambda: any("exited with 255" in p for p in status_problems(good.replace("RC 0", "RC 255"))))
check("row judge: a skip the row does not allow fails",
      lambda: status_problems(good.replace("ok 1 a", "ok 1 a # SKIP x"), skips=0) != [] and
      status_problems(good.replace("ok 1 a", "ok 1 a # SKIP x"), skips=1) == [])

# The matrix: named fields, and nothing it does not know.
def matrix(text):
    with tempfile.NamedTemporaryFile("w", suffix=".matrix", delete=False) as f:
        f.write(text)
    try:
        return matrix_rows(f.name)
    finally:
        os.unlink(f.name)


def refused(text):
    try:
        matrix(text)
    except ValueError:
        return True
    return False


check("matrix: a row's fields, quoted values and defaults",
      lambda: (lambda r: (r["set"], r["smp"], r["expect"], r["append"], r["skips"]) ==
               ("l2", "2", "pv", 'a=1 b="c d"', "0"))(
          matrix("""# comment\nrow1 set=l2 smp=2 expect=pv append='a=1 b="c d"'\n""")[0]))
check("matrix: an unknown field, a row without a set, a repeated name are errors",
      lambda: refused("r set=a sets=b\n") and refused("r smp=1\n") and
      refused("r set=a\nr set=b\n"))
check("matrix: tests/matrix reads, every row states its expectation or is not a pvtime row",
      lambda: all(r["expect"] or r["set"] not in ("pvtime", "pvtime-full", "l2")
                  for r in matrix_rows(os.path.join(sys.argv[1], "..", "tests", "matrix"))))
check("matrix: tests/stress (make stress) reads, and names rows tests/matrix does not",
      lambda: (lambda st, mx: st and not {r["name"] for r in st} & {r["name"] for r in mx})(
          matrix_rows(os.path.join(sys.argv[1], "..", "tests", "stress")),
          matrix_rows(os.path.join(sys.argv[1], "..", "tests", "matrix"))))

# The closing tally: fails closed.
def summed(lines):
    p, f, s, bad = tally.tally(lines)
    return p, f, s

check("tally: results are summed",
      lambda: summed(['{"name": "a", "passed": 2, "failed": 0, "skipped": 1}\n',
                      '{"name": "b", "passed": 1, "failed": 1, "skipped": 0}\n']) == (3, 1, 1))
check("tally: a malformed line is a failure",
      lambda: summed(['{"name": "a", "passed": 2, "failed": 0, "skipped": 0}\n',
                      'Traceback (most recent call last):\n'])[1] == 1)
check("tally: a truncated line is a failure",
      lambda: summed(['{"name": "a", "passed": 2, "failed": 0, "skipped": 0}\n',
                      '{"name": "b", "passed": 1, "fai'])[1] == 1)
check("tally: a count that is not a count is a failure",
      lambda: summed(['{"name": "a", "passed": "2", "failed": 0, "skipped": 0}\n',
                      '{"name": "b", "passed": 1, "failed": -1, "skipped": 0}\n'])[1] == 2)
check("tally: no result at all is a failure", lambda: summed([])[1] == 1)

bad = {
    "panic": "[ 1.0] Kernel panic - not syncing: sysrq triggered crash",
    "oops": "[ 1.0] Oops: general protection fault, probably for non-canonical address",
    "bug": "[ 1.0] BUG: kernel NULL pointer dereference, address: 0000000000000000",
    "warning": "[ 1.0] WARNING: CPU: 0 PID: 1 at kernel/time/clockevents.c:42 foo+0x1/0x2",
    "lockdep": "[ 1.0] WARNING: possible circular locking dependency detected",
    "kasan": "[ 1.0] BUG: KASAN: slab-out-of-bounds in foo+0x1/0x2",
    "ubsan": "[ 1.0] UBSAN: shift-out-of-bounds in kernel/time/foo.c:1:2",
    "rcu-stall": "[ 1.0] rcu: INFO: rcu_preempt self-detected stall on CPU",
    "gpf": "[ 1.0] traps: init[1] general protection fault ip:4011 sp:7ffd error:0",
    "clocksource-watchdog": "[ 1.0] clocksource: timekeeping watchdog on CPU1: Marking clocksource 'tsc' as unstable because the skew is too large:",
    "msr": "[ 1.0] unchecked MSR access error: WRMSR to 0x4b564d0a (tried to write 0x0000000000000001)",
}
for kind, line in bad.items():
    check(f"splat detector flags {kind}", lambda line=line: len(find_splats(line)) == 1)
clean = """[    0.000000] Linux version 7.1.8 (pvtime@example.org)
[    0.100000] clocksource: tsc-early: mask: 0xffffffffffffffff max_cycles: 0x1
[    0.200000] Lock dependency validator: Copyright (c) 2006 Red Hat, Inc.
[    0.300000] clocksource: Switched to clocksource kvm-clock
[    0.400000] hpet0: at MMIO 0xfed00000, IRQs 2, 8, 0
[    0.500000] x86/bugs: Spectre V2 : Mitigation: Retpolines
[    0.000231] tsc: Marking TSC unstable due to running on Hyper-V"""
check("splat detector passes a clean boot log", lambda: find_splats(clean) == [])

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
      lambda: "# # pvtime_test.c:700:fallback:cpu0: 2 late, max 612 ms" in d and
      "# #          FAIL  stock.fallback" in d and
      not any("passing test" in x for x in d))
check("failed row: the lines before a not ok outside the harness",
      lambda: "# Nanosleep CLOCK_MONOTONIC  FAIL (late by 3 s)" in d and
      sum("not ok" in x for x in d if not x.startswith(" ")) == 1)
check("failed row: the nested rig's account of a hung L2",
      lambda: "# l2: timed out after 240 s" in d and any(x.startswith("# l2 hang: RIP=") for x in d))
check("failed row: the last lines of its status and consoles (where it stopped)",
      lambda: "last lines of console:" in d and "  [ 9.0] stuck here" in d)
run_checks()
PY

# make bench's parsing of the nested rig's lines, on a sample run record:
# L1's statistics attached to L2's marks, interactions per window without
# L2's serial traffic, timer events by the device's interrupt name, the
# compressed cyclictest summary, the boot time as L1 saw it; and the quick
# mode's verdict on runs with problems.
{ echo "$PROLOGUE"; cat <<'PY'; } | block 2 "bench parsing"
import base64, gzip, json
from pvbench import SETTINGS
from pvbench import analyse as A, measure as M, platforms as P

pf = P.KvmNested()
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
      lambda: rec["problems"] == [] and rec["marks"]["cyclic-idle-end"]["counters"]["exits"] == 4050)
check("bench: the host CPU time of a nested run is L2's QEMU in L1",
      lambda: rec["marks"]["cyclic-idle-end"]["cpu_s"] == 3.0)
ia = A.window(pf, xen, rec, "cyclic-idle-begin", "cyclic-idle-end")
check("bench: nested interactions leave out L2's serial port",
      lambda: ia["total"] == 3000 and ia["serial"] == 1000 and ia["other"] == 3000 - 500 - 400 - 100)
check("bench: timer events counted by the device's interrupt (timer0, not timer)",
      lambda: ia["events"] == 1000 and A.per1000(ia, "total") == 3000)
rec2 = {"lines": [[1.0, lines[3]]], "problems": [],
        "marks": {"cyclic-idle-begin": {"wall": 1.0, "guest": 6.0}}}
pf.finish(rec2)
check("bench: a mark without L1's statistics is a run problem",
      lambda: any("no KVM statistics" in p for p in rec2["problems"]))
d = A.cyclictest_docs(rec)
lat = A.lateness(d["cyclic-idle"], 100000)
check("bench: compressed cyclictest summary decoded, percentiles from it",
      lambda: (lat["p50"], lat["p99"], lat["max"], lat["samples"]) == (3, 7, 7, 6))
b = A.boot_sample(rec)
check("bench: nested boot wall time is L1's view of L2's QEMU",
      lambda: abs(b["wall_s"] - (10.0 - 2.5 - 1.0)) < 1e-9 and b["guest_s"] == 4.0)
rows = [P.williams(list("SPHX"), r) for r in range(4)]
check("bench: nested device order is a Williams square (every position, every predecessor once)",
      lambda: all(len({row[j] for row in rows}) == 4 for j in range(4)) and
      len({(row[j], row[j + 1]) for row in rows for j in range(3)}) == 12 and
      [r.device.key for r in pf.plan({"s": dict(SETTINGS), "quick": True})[:5]]
      == [d.key for d in P.williams(pf.all_devices, 0)])
tcg = P.Tcg()
plan = tcg.plan({"s": dict(SETTINGS), "quick": False, "icount": None})
check("bench: the control boots in the main and boot-only experiments only",
      lambda: {r.exp for r in plan if r.device.control} == {"main"} | ({"boot"} if SETTINGS["boot_reps"] > SETTINGS["reps"] else set())
      and sum(r.device.control for r in plan if r.exp == "main") == SETTINGS["reps"]
      and sum(r.device.control for r in pf.plan({"s": dict(SETTINGS), "quick": True})) == SETTINGS["reps"])
check("bench: quick mode fails on a run with a problem (timeout, splat, unfinished set)",
      lambda: M.run_problems([{"name": "a", "problems": [], "logs": "x"},
                                  {"name": "b", "problems": ["timeout after 9 s"], "logs": "y"}])
      == ["b: timeout after 9 s (logs: y)"] and M.run_problems([rec]) == [])
# Intervals and verdicts: separated arms, equal arms, the other direction,
# too few repetitions, a peer goal, and the same interval on every render.
st = A.agg([100.0 + i for i in range(10)])
half = A.agg([50.0 + i for i in range(10)])
double = A.agg([200.0 + 2 * i for i in range(10)])
three = A.agg([50.0, 51.0, 52.0])
ci = A.ratio_ci(half, st, "x")
check("bench: the interval of a ratio of separated arms excludes parity",
      lambda: 0.4 < ci[0] <= A.ratio(half, st) <= ci[1] < 0.6
      and A.verdict([(ci, half, st)], 1.0) == "met")
same = A.ratio_ci(st, st, "y")
check("bench: equal arms give an open verdict (the interval holds 1)",
      lambda: same[0] < 1.0 < same[1] and A.verdict([(same, st, st)], 1.0) == "open")
check("bench: an interval above the bound is missed",
      lambda: A.verdict([(A.ratio_ci(double, st, "z"), double, st)], 1.0) == "missed")
check("bench: fewer than MIN_REPS repetitions are not judged",
      lambda: A.verdict([(A.ratio_ci(three, st, "w"), three, st)], 1.0) == "few"
      and A.ratio_ci(A.agg([1.0]), st, "v") is None)
check("bench: a peer goal needs both intervals below the bound",
      lambda: A.verdict([(ci, half, st), (A.ratio_ci(half, half, "p"), half, half)], 1.0) == "open")
check("bench: the same figure gets the same interval on every render",
      lambda: A.ratio_ci(half, st, "x") == ci and A.ratio_ci(half, st, "x2") != ci)
run_checks()
PY
cat "$res"
! grep -q '^fail ' "$res"
