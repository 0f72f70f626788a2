#!/usr/bin/python3
"""Boot one pvtime guest under QEMU and judge the run.

The guest's init (guest/init) runs one test set, prints its TAP stream on the
status port (the second serial port) and ends with "PVTIME-RC <rc>". A run
fails on: timeout, no exit status, non-zero status, a TAP "not ok" or a
missing result, and any kernel splat in the console log (panic, Oops, BUG,
WARNING, lockdep, KASAN/UBSAN, RCU stalls, clocksource watchdog
complaints). --extra-console adds serial ports after the status port, each
logged to a file and checked for splats like the console: the nested rig's
L1 guest writes its L2 guest's console there. Logs of every run stay in the
log directory; the path of a failed run's logs is printed.
"""
import argparse
import json
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time

SPLATS = [
    ("panic", r"Kernel panic - not syncing"),
    ("oops", r"\bOops\b"),
    ("bug", r"\bBUG: |kernel BUG at"),
    ("warning", r"\bWARNING: |\bWARNING at\b"),
    ("lockdep", r"possible circular locking|possible recursive locking|"
                r"inconsistent lock state|DEBUG_LOCKS_WARN_ON"),
    ("kasan", r"KASAN"),
    ("ubsan", r"UBSAN"),
    ("rcu-stall", r"rcu: INFO: .*stall|self-detected stall"),
    ("msr", r"unchecked MSR access error"),
    ("gpf", r"general protection fault"),
    ("clocksource-watchdog",
     r"timekeeping watchdog|Marking clocksource .* as unstable|"
     r"clocksource watchdog|Long readout interval|"
     # A Hyper-V guest (nested rig, Hyper-V enlightenments) always says
     # so at boot; that is not the watchdog.
     r"Marking TSC unstable(?! due to running on Hyper-V)|wd_nsec:"),
]
SPLAT_RE = [(n, re.compile(p)) for n, p in SPLATS]

TAP_RESULT = re.compile(r"^(not ok|ok)\b\s*(\d+)?\s*(.*)$")
TAP_PLAN = re.compile(r"^1\.\.(\d+)")


def parse_tap(lines):
    """Count top-level results the way kselftest's runner writes them.

    Nested subtest output is prefixed by "# " and is not counted; each
    "TAP version" line starts a new stream whose plan must be met.
    """
    res = {"passed": 0, "failed": 0, "skipped": 0, "timeout": 0, "failures": []}
    plan, seen = None, 0

    def close():
        if plan is not None and seen < plan:
            res["failed"] += plan - seen
            res["failures"].append(f"{plan - seen} planned result(s) missing")

    for line in lines:
        line = line.rstrip("\r\n")
        if line.startswith("TAP version"):
            close()
            plan, seen = None, 0
            continue
        if line.startswith("Bail out!"):
            res["failed"] += 1
            res["failures"].append(line)
            continue
        m = TAP_PLAN.match(line)
        if m:
            plan = int(m.group(1))
            continue
        m = TAP_RESULT.match(line)
        if not m:
            continue
        seen += 1
        desc = m.group(3)
        directive = desc.split("#", 1)[1].strip().upper() if "#" in desc else ""
        if m.group(1) == "ok":
            if directive.startswith("SKIP"):
                res["skipped"] += 1
            else:
                res["passed"] += 1
        elif directive.startswith("TIMEOUT"):
            res["timeout"] += 1
            res["failed"] += 1
            res["failures"].append(line)
        elif directive.startswith("SKIP") or directive.startswith("XFAIL"):
            res["skipped"] += 1
        else:
            res["failed"] += 1
            res["failures"].append(line)
    close()
    return res


class QMP:
    """A minimal QMP client over a unix socket."""

    def __init__(self, path, timeout=30):
        deadline = time.monotonic() + timeout
        while True:
            try:
                self.s = socket.socket(socket.AF_UNIX)
                self.s.connect(path)
                break
            except OSError:
                self.s.close()
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
        self.f = self.s.makefile("rw")
        json.loads(self.f.readline())
        self.cmd("qmp_capabilities")

    def cmd(self, name, **args):
        self.f.write(json.dumps({"execute": name, "arguments": args}) + "\n")
        self.f.flush()
        while True:
            line = self.f.readline()
            if not line:
                raise OSError("QMP connection closed")
            r = json.loads(line)
            if "return" in r:
                return r["return"]
            if "error" in r:
                raise RuntimeError(f"{name}: {r['error']}")

    def close(self):
        self.s.close()


QOM_EXPECT = re.compile(r"^# PVTIME-QOM cpu=(\d+)((?: [a-z0-9-]+=\d+)+)\s*$", re.M)


def qom_check(qmp_path, status):
    """Hold the guest's own account of what it did ("# PVTIME-QOM cpu=N
    counter=value ...") against the hypervisor's per-vCPU QOM counters.
    Returns a list of (ok, description)."""
    want = {}
    for m in QOM_EXPECT.finditer(status):
        want[int(m.group(1))] = {k: int(v) for k, v in
                                 (kv.split("=") for kv in m.group(2).split())}
    if not want:
        return [(False, "QOM check: the guest printed no expected counters")]
    q = QMP(qmp_path, timeout=5)
    try:
        paths = {c["cpu-index"]: c["qom-path"] for c in q.cmd("query-cpus-fast")}
        out = []
        for cpu, counters in sorted(want.items()):
            for k, v in counters.items():
                got = q.cmd("qom-get", path=paths[cpu], property=k)
                out.append((got == v, f"QOM {k} of vCPU {cpu}: guest did {v}, "
                                      f"hypervisor counted {got}"))
        return out
    finally:
        q.close()


HANG_LINES = re.compile(r"^(dumping local APIC|LVTT\s|Timer|ISR|IRR)|"
                        r"\b(RIP|HLT)=")


def hang_report(qmp_path, path):
    """The state of a hung guest, from QEMU's monitor before it is killed:
    every vCPU's registers and local APIC, written to path. Returns the
    lines worth printing (RIP, HLT, the APIC timer, ISR and IRR), or a
    line saying why there are none."""
    try:
        q = QMP(qmp_path, timeout=5)
    except OSError as e:
        return [f"QEMU monitor unreachable: {e}"]
    try:
        q.s.settimeout(10)

        def hmp(c):
            return q.cmd("human-monitor-command", **{"command-line": c})

        text = ""
        for cpu in q.cmd("query-cpus-fast"):
            i = cpu["cpu-index"]
            hmp(f"cpu {i}")
            text += f"== vCPU {i}\n" + hmp("info registers") + hmp("info lapic")
    except (OSError, RuntimeError, KeyError, ValueError) as e:
        return [f"QEMU monitor: {e}"]
    finally:
        q.close()
    with open(path, "w") as f:
        f.write(text)
    keep = []
    for line in text.splitlines():
        if line.startswith("== vCPU") or HANG_LINES.search(line):
            keep.append(line)
    return keep


def find_splats(text):
    found = []
    for line in text.splitlines():
        for name, rx in SPLAT_RE:
            if rx.search(line):
                found.append((name, line.strip()))
                break
    return found


HARNESS_END = re.compile(r"^(OK|FAIL)\s+\S")
# The nested rig's account of an L2 guest it had to kill (guest/sets/l2).
L2_HANG = re.compile(r"^# l2( hang: |: timed out)")


def diagnose(status, consoles, most=25):
    """What a failed run's summary should show of its logs.

    The kselftest harness's account of each failed test (its lines from
    "RUN" to "FAIL": TH_LOG and assertion messages), the lines before any
    other "not ok", the nested rig's description of an L2 guest that hung,
    then the last lines of the status stream and of every console
    (consoles: a list of (name, text)), which show where a run that hung
    stopped: in the nested rig, whether L1 or L2 did. At most `most`
    lines of explanation come before the last lines.
    """
    out, block, prev, explained = [], None, [], False
    for line in status.splitlines():
        line = line.rstrip("\r")
        core = line.lstrip("# ")  # the text without its TAP nesting
        m = TAP_RESULT.match(core)
        if L2_HANG.match(line):
            out.append(line)
        elif core.startswith("RUN "):
            block = []
        elif block is not None and HARNESS_END.match(core):
            if core.startswith("FAIL"):
                out += block[-12:] + [line]
                explained = True
            block = None
        elif block is not None:
            block.append(line)
        elif m and m.group(1) == "not ok":
            if not explained:
                out += prev + [line]
            explained = True
        if m and core == line:  # a top-level result ends its test's output
            explained, prev = False, []
        else:
            prev = (prev + [line])[-3:]
    out = out[:most]
    for n, text in [("status", status)] + list(consoles):
        tail = [x for x in text.splitlines() if x.strip()][-4:]
        out += [f"last lines of {n}:"] + [f"  {x}" for x in tail]
    return out


def qemu_cmdline(a, logdir):
    accel = "tcg"
    if a.accel == "tcg":
        accel = "tcg,thread=multi" if a.smp > 1 else "tcg,thread=single"
    else:
        accel = a.accel
    append = f"console=ttyS0 panic=-1 loglevel=6 pvtime.set={a.set} {a.append}".strip()
    cmd = [a.qemu, "-accel", accel, "-cpu", a.cpu, "-smp", str(a.smp),
           "-m", str(a.mem), "-nodefaults", "-display", "none", "-vga", "none",
           "-no-reboot",
           "-chardev", f"file,id=con,path={logdir}/console.log",
           "-serial", "chardev:con",
           "-chardev", f"file,id=status,path={logdir}/status.log",
           "-serial", "chardev:status",
           "-kernel", a.kernel, "-initrd", a.initrd, "-append", append]
    for d in a.firmware:
        cmd += ["-L", d]
    for i, n in enumerate(a.extra_console):
        cmd += ["-chardev", f"file,id=xcon{i},path={logdir}/{n}.log",
                "-serial", f"chardev:xcon{i}"]
    if a.qmp:
        cmd += ["-qmp", f"unix:{a.qmp},server=on,wait=off"]
    if a.icount is not None:
        cmd += ["-icount", f"shift={a.icount},sleep=on"]
    cmd += shlex.split(a.qemu_args)
    return cmd


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--qemu", required=True)
    p.add_argument("--kernel", required=True)
    p.add_argument("--initrd", required=True)
    p.add_argument("--set", required=True, help="guest test set (guest/sets/)")
    p.add_argument("--name", help="row name (default: the set)")
    p.add_argument("--smp", type=int, default=1)
    p.add_argument("--mem", type=int, default=512, help="MiB")
    p.add_argument("--cpu", default="max")
    p.add_argument("--accel", default="tcg")
    p.add_argument("--append", default="", help="extra kernel arguments")
    p.add_argument("--qemu-args", default="", help="extra QEMU arguments")
    p.add_argument("--extra-console", action="append", default=[],
                   metavar="NAME",
                   help="one more serial port (ttyS2, ttyS3, ...) logged to "
                        "NAME.log and checked for splats")
    p.add_argument("--icount", type=int, default=None, help="-icount shift")
    p.add_argument("--qmp", help="QMP socket path")
    p.add_argument("--qom-check", action="store_true",
                   help="when the guest prints PVTIME-QOM-READY, compare its "
                        "'# PVTIME-QOM cpu=N counter=value' lines with the "
                        "vCPUs' QOM counters (through the monitor)")
    p.add_argument("--timeout", type=int, default=600, help="wall seconds")
    p.add_argument("--firmware", action="append",
                   default=["/usr/share/seabios", "/usr/share/qemu"])
    p.add_argument("--log-dir", default="build/logs")
    p.add_argument("--results", help="append a JSON line per run to this file")
    p.add_argument("--print-status", action="store_true",
                   help="copy the guest's status stream to stdout")
    p.add_argument("--dry-run", action="store_true",
                   help="print the QEMU command line and exit")
    a = p.parse_args()
    name = a.name or a.set

    logdir = os.path.join(a.log_dir, name)
    # The monitor: the QOM check asks it, and a guest that hangs is
    # described from it before it is killed (hang.log). A unix socket's
    # path has a limit; only the QOM check cannot do without it.
    if not a.qmp and (a.qom_check or len(os.path.abspath(logdir)) < 90):
        a.qmp = os.path.join(logdir, "qmp.sock")
    cmd = qemu_cmdline(a, logdir)
    if a.dry_run:
        print(shlex.join(cmd))
        return 0
    for f, pkg in ((a.qemu, "run make qemu"), (a.kernel, "run make kernel"),
                   (a.initrd, "run make initramfs"),
                   ("/usr/share/seabios/bios-256k.bin", "install seabios"),
                   ("/usr/share/qemu/linuxboot_dma.bin", "install qemu-system-data")):
        if not os.path.exists(f):
            print(f"boot: {f} not found: {pkg}", file=sys.stderr)
            return 2
    shutil.rmtree(logdir, ignore_errors=True)
    os.makedirs(logdir)
    with open(os.path.join(logdir, "cmdline"), "w") as f:
        f.write(shlex.join(cmd) + "\n")

    t0 = time.monotonic()
    with open(os.path.join(logdir, "qemu.log"), "w") as qlog:
        proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=qlog,
                                stderr=subprocess.STDOUT, start_new_session=True)
        timed_out = False
        hang = []
        qom_results = None
        status_path = os.path.join(logdir, "status.log")
        while True:
            try:
                proc.wait(timeout=0.2)
                break
            except subprocess.TimeoutExpired:
                pass
            if time.monotonic() - t0 > a.timeout:
                timed_out = True
                hang = (hang_report(a.qmp, os.path.join(logdir, "hang.log"))
                        if a.qmp else [])
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
                break
            # The guest holds still for a few seconds after this line.
            if a.qom_check and qom_results is None:
                with open(status_path, errors="replace") as f:
                    text = f.read()
                if "PVTIME-QOM-READY" in text:
                    try:
                        qom_results = qom_check(a.qmp, text)
                    except (OSError, RuntimeError, KeyError) as e:
                        qom_results = [(False, f"QOM check: {e}")]
    wall = time.monotonic() - t0
    if a.qmp and os.path.exists(a.qmp):
        os.unlink(a.qmp)

    def read(n):
        try:
            with open(os.path.join(logdir, n), errors="replace") as f:
                return f.read()
        except FileNotFoundError:
            return ""

    console, status = read("console.log"), read("status.log")
    if a.print_status:
        sys.stdout.write("".join(l + "\n" for l in status.splitlines()
                                 if not l.startswith("PVTIME-RC")))
    tap = parse_tap(status.splitlines())
    rcs = re.findall(r"^PVTIME-RC (\d+)", status, re.M)
    problems = []
    if timed_out:
        problems.append(f"timeout after {a.timeout} s")
    elif proc.returncode != 0:
        problems.append(f"qemu exited with {proc.returncode} (see qemu.log)")
    if not rcs and not timed_out:
        problems.append("guest reported no exit status")
    elif rcs and rcs[-1] != "0":
        problems.append(f"guest test set exited with {rcs[-1]}")
    for kind, line in find_splats(console):
        problems.append(f"{kind}: {line}")
    for n in a.extra_console:
        for kind, line in find_splats(read(f"{n}.log")):
            problems.append(f"{n}: {kind}: {line}")

    if a.qom_check:
        if qom_results is None:
            qom_results = [(False, "QOM check: the guest never reached it")]
        for ok, desc in qom_results:
            tap["passed" if ok else "failed"] += 1
            if not ok:
                tap["failures"].append(desc)
    # The run itself is one result: it completed cleanly or it did not.
    passed = tap["passed"] + (0 if problems else 1)
    failed = tap["failed"] + (1 if problems else 0)
    ok = failed == 0
    line = (f"row {name}: {passed} passed, {failed} failed, "
            f"{tap['skipped']} skipped ({wall:.0f} s)")
    print(line, flush=True)
    for x in tap["failures"] + problems[:10]:
        print(f"  {x}", flush=True)
    if not ok:
        consoles = [("console", console)] + [(n, read(f"{n}.log"))
                                             for n in a.extra_console]
        for x in diagnose(status, consoles):
            print(f"    {x}", flush=True)
        for x in hang[:24]:
            print(f"    hang: {x}", flush=True)
        print(f"  logs: {os.path.abspath(logdir)}", flush=True)
    if a.results:
        with open(a.results, "a") as f:
            f.write(json.dumps({"name": name, "passed": passed, "failed": failed,
                                "skipped": tap["skipped"], "timeout": timed_out,
                                "tap_timeouts": tap["timeout"],
                                "problems": problems, "wall": round(wall, 1),
                                "logs": os.path.abspath(logdir)}) + "\n")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
