#!/bin/sh
# Self-tests of the harness that need no build: the apply gate refuses a
# broken patch and names it, accepts a good one; the TAP parser and the
# splat detector of the boot runner judge sample logs correctly.
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
from boot import parse_tap, find_splats

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
PY
cat "$res"
