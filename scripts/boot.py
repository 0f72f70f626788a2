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
    "TAP version" line starts a new stream. kselftest's accounting rules
    hold for each stream: every planned result must be there, none beyond
    the plan, each number once and in order ("Planned tests != run
    tests"). "1..0 # SKIP reason" is a stream skipped whole. A run with no
    result at all is for the caller to judge (results() == 0).
    """
    res = {"passed": 0, "failed": 0, "skipped": 0, "timeout": 0, "failures": []}
    st = {"plan": None, "seen": 0, "last": 0}

    def fail(why):
        res["failed"] += 1
        res["failures"].append(why)

    def close():
        plan, seen = st["plan"], st["seen"]
        if plan is not None and seen < plan:
            res["failed"] += plan - seen
            res["failures"].append(f"{plan - seen} planned result(s) missing")

    for line in lines:
        line = line.rstrip("\r\n")
        if line.startswith("TAP version"):
            close()
            st.update(plan=None, seen=0, last=0)
            continue
        if line.startswith("Bail out!"):
            fail(line)
            continue
        m = TAP_PLAN.match(line)
        if m:
            if st["plan"] is not None:
                fail(f"a second plan in one stream: {line}")
            st["plan"] = int(m.group(1))
            if st["plan"] == 0 and "SKIP" in line.upper():
                res["skipped"] += 1
            continue
        m = TAP_RESULT.match(line)
        if not m:
            continue
        st["seen"] += 1
        num = int(m.group(2)) if m.group(2) else st["last"] + 1
        if num != st["last"] + 1:
            fail(f"result number {num} out of order or repeated "
                 f"(after {st['last']}): {line}")
        st["last"] = num
        if st["plan"] is not None and st["seen"] > st["plan"]:
            fail(f"result beyond the plan of {st['plan']}: {line}")
        desc = m.group(3)
        directive = desc.split("#", 1)[1].strip().upper() if "#" in desc else ""
        if m.group(1) == "ok":
            if directive.startswith("SKIP"):
                res["skipped"] += 1
            else:
                res["passed"] += 1
        elif directive.startswith("TIMEOUT"):
            res["timeout"] += 1
            fail(line)
        elif directive.startswith("SKIP") or directive.startswith("XFAIL"):
            res["skipped"] += 1
        else:
            fail(line)
    close()
    return res


def results(tap):
    """How many results a parsed stream had, whatever their verdict."""
    return tap["passed"] + tap["failed"] + tap["skipped"]


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
        # The handshake is bounded too: a monitor that already has a
        # client accepts the connection but does not greet a second one.
        self.s.settimeout(timeout)
        self.f = self.s.makefile("rw")
        json.loads(self.f.readline())
        self.cmd("qmp_capabilities")
        self.s.settimeout(None)

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

        # Each command names its vCPU: an HMP "cpu N" does not carry over
        # from one human-monitor-command to the next.
        def hmp(c, i):
            return q.cmd("human-monitor-command", **{"command-line": c, "cpu-index": i})

        text = ""
        for cpu in q.cmd("query-cpus-fast"):
            i = cpu["cpu-index"]
            text += f"== vCPU {i}\n" + hmp("info registers", i) + hmp("info lapic", i)
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


# The guest's exit status on its status port, written last (guest/init).
RC_LINE = re.compile(r"^PVTIME-RC (\d+)", re.M)

# Seconds a guest has to reboot once it has reported its exit status: one
# that hangs on the way down (e.g. with a CPU whose timers stopped) is
# killed then rather than at the row's timeout, and the run fails.
REBOOT_GRACE = 30

# -cpu models by the names the matrix and the docs use.
CPU_MODELS = {
    # kvm-clock under TCG and the paravirtual clock event device.
    "PV": "max,tcg-kvmclock=on,kvm-pv-clockevent=on",
    # kvm-clock alone: a hypervisor without the device.
    "KVMCLOCK": "max,tcg-kvmclock=on",
}
# The nested rig's L1 host: -cpu max (SVM with nested paging under TCG),
# one vCPU, room for L2, and L2's console on a third serial port.
L1_RIG = {"cpu": "max", "smp": 1, "mem": 1536, "extra_console": ["l2-console"]}
FIRMWARE = ["/usr/share/seabios", "/usr/share/qemu"]
RUNTIME_FILES = [("/usr/share/seabios/bios-256k.bin", "install seabios"),
                 ("/usr/share/qemu/linuxboot_dma.bin", "install qemu-system-data")]


def kernel_args(set_name, more="", loglevel=6):
    """The guest kernel's command line: console, panic on oops, the set."""
    return " ".join(x for x in ["console=ttyS0 panic=-1", f"loglevel={loglevel}",
                                f"pvtime.set={set_name}", more] if x)


def qemu_cmdline(qemu, kernel, initrd, append, logdir, cpu="max", smp=1, mem=512,
                 status_sock=None, extra_console=(), qmp=None, icount=None,
                 extra=()):
    """The one QEMU command line of every guest the harness boots (matrix
    rows, the snapshot test, the benchmark). The console goes to
    logdir/console.log; the status port (ttyS1) to logdir/status.log, or
    to a unix socket the caller listens on; extra consoles (ttyS2, ...) to
    logdir/NAME.log. icount: -icount shift=N,sleep=off, which needs
    single-threaded TCG (guest time is the instructions executed)."""
    if icount is not None or smp == 1:
        accel = "tcg,thread=single"
    else:
        accel = "tcg,thread=multi"
    status = (f"socket,id=status,path={status_sock},server=off" if status_sock
              else f"file,id=status,path={logdir}/status.log")
    cmd = [qemu, "-accel", accel, "-cpu", CPU_MODELS.get(cpu, cpu),
           "-smp", str(smp), "-m", str(mem), "-nodefaults", "-display", "none",
           "-vga", "none", "-no-reboot",
           "-chardev", f"file,id=con,path={logdir}/console.log",
           "-serial", "chardev:con",
           "-chardev", status, "-serial", "chardev:status"]
    for i, n in enumerate(extra_console):
        cmd += ["-chardev", f"file,id=xcon{i},path={logdir}/{n}.log",
                "-serial", f"chardev:xcon{i}"]
    cmd += ["-kernel", kernel, "-initrd", initrd, "-append", append]
    for d in FIRMWARE:
        cmd += ["-L", d]
    if qmp:
        cmd += ["-qmp", f"unix:{qmp},server=on,wait=off"]
    if icount is not None:
        cmd += ["-icount", f"shift={icount},sleep=off"]
    return cmd + list(extra)


def missing_inputs(*paths):
    """Messages for the inputs of a boot that are not there."""
    out = []
    for f, what in [(p, "run make check's builds (make qemu kernel initramfs)")
                    for p in paths] + RUNTIME_FILES:
        if not os.path.exists(f):
            out.append(f"{f} not found: {what}")
    return out


class Guest:
    """One QEMU process with its logs in a directory: started, waited for
    with a time limit (described from the monitor, then killed, when it
    runs out), its logs read back."""

    def __init__(self, cmd, logdir, qmp=None):
        self.cmd, self.logdir, self.qmp = cmd, logdir, qmp
        self.proc, self.timed_out, self.hang = None, False, []

    def start(self, nice=0):
        os.makedirs(self.logdir, exist_ok=True)
        with open(os.path.join(self.logdir, "cmdline"), "w") as f:
            f.write(shlex.join(self.cmd) + "\n")
        self.t0 = time.monotonic()
        self.qlog = open(os.path.join(self.logdir, "qemu.log"), "w")
        cmd = ["nice", "-n", str(nice)] + self.cmd if nice else self.cmd
        self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=self.qlog,
                                     stderr=subprocess.STDOUT, start_new_session=True)
        return self

    def elapsed(self):
        return time.monotonic() - self.t0

    def wait(self, timeout, poll=None, progress=None, every=60):
        """Wait for QEMU to exit, at most timeout more seconds. poll() runs
        about five times a second; progress(elapsed) once a minute, so a
        long row shows that it is alive."""
        shown, until = self.elapsed(), self.elapsed() + timeout
        while True:
            try:
                self.proc.wait(timeout=0.2)
                break
            except subprocess.TimeoutExpired:
                pass
            el = self.elapsed()
            if el > until:
                self.timed_out = True
                if self.qmp:
                    self.hang = hang_report(self.qmp, os.path.join(self.logdir, "hang.log"))
                self.kill()
                break
            if poll:
                poll()
            if progress and el - shown >= every:
                shown = el
                progress(el)
        self.qlog.close()
        if self.qmp and os.path.exists(self.qmp):
            os.unlink(self.qmp)
        return self.proc.returncode

    def kill(self):
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()

    def read(self, name):
        try:
            with open(os.path.join(self.logdir, name), errors="replace") as f:
                return f.read()
        except FileNotFoundError:
            return ""


def status_problems(status, need_tap=True, skips=None, tap=None, timed_out=False):
    """What the guest's status stream says is wrong: no exit status (unless
    the run timed out, which says more), a non-zero one, no TAP result at
    all (a set that ran nothing), or a number of skipped results other
    than the row allows."""
    problems = []
    tap = tap or parse_tap(status.splitlines())
    rcs = RC_LINE.findall(status)
    if not rcs:
        if not timed_out:
            problems.append("guest reported no exit status")
    elif rcs[-1] != "0":
        problems.append(f"guest test set exited with {rcs[-1]}")
    if need_tap and results(tap) == 0:
        problems.append("the set printed no TAP result")
    if skips is not None and tap["skipped"] != skips:
        problems.append(f"{tap['skipped']} result(s) skipped, the row allows {skips}")
    return problems


def verdict(name, tap, problems, wall, logs, extra=None):
    """A row's result: its TAP results plus one for the run itself (it
    completed cleanly or it did not). Returns the record of results.jsonl."""
    passed = tap["passed"] + (0 if problems else 1)
    failed = tap["failed"] + (1 if problems else 0)
    rec = {"name": name, "passed": passed, "failed": failed,
           "skipped": tap["skipped"], "problems": problems,
           "wall": round(wall, 1), "logs": os.path.abspath(logs)}
    rec.update(extra or {})
    print(f"row {name}: {passed} passed, {failed} failed, {tap['skipped']} skipped "
          f"({wall:.0f} s)", flush=True)
    for x in tap["failures"] + problems[:10]:
        print(f"  {x}", flush=True)
    return rec


def write_result(path, rec):
    """One line of results.jsonl, written whole in one call."""
    if path:
        with open(path, "a") as f:
            f.write(json.dumps(rec) + "\n")


def console_problems(guest, names):
    out = []
    for n in names:
        for kind, line in find_splats(guest.read(f"{n}.log")):
            out.append(f"{kind}: {line}" if n == "console" else f"{n}: {kind}: {line}")
    return out


# Matrix rows (tests/matrix): "NAME key=value ...", values quoted the way a
# shell quotes them. The keys, and their defaults:
ROW_KEYS = {
    "set": None,            # the guest test set (guest/sets/NAME)
    "smp": "1",             # vCPUs
    "cpu": "max",           # -cpu model and properties, or a CPU_MODELS name
    "mem": "512",           # MiB
    "timeout": "600",       # wall seconds for the row
    "append": "",           # more kernel arguments
    "expect": "",           # pv|stock: the device every CPU must tick on
    "skips": "0",           # how many TAP results may be skipped
    "runner": "boot",       # boot (one guest) | snapshot (tests/snapshot.py)
    "qom_check": "0",       # 1: hold the guest's account against QOM counters
    "counter": "",          # snapshot: QOM counters that must grow after restore
    "rig": "",              # l1: the nested rig's L1 host runs the set
}


def matrix_rows(path):
    """The rows of a matrix file: a list of dicts with every key of
    ROW_KEYS. An unknown key, a missing set or a repeated name is an
    error, not a row that quietly means something else."""
    rows, names = [], set()
    with open(path) as f:
        for n, line in enumerate(f, 1):
            if not line.strip() or line.lstrip().startswith("#"):
                continue
            words = shlex.split(line)
            row = dict(ROW_KEYS, name=words[0])
            for w in words[1:]:
                k, sep, v = w.partition("=")
                if not sep or k not in ROW_KEYS:
                    raise ValueError(f"{path}:{n}: unknown field {w!r}")
                row[k] = v
            if not row["set"] or row["name"] in names:
                raise ValueError(f"{path}:{n}: row {row['name']}: no set, or a repeated name")
            if row["rig"] not in ("", "l1") or row["runner"] not in ("boot", "snapshot"):
                raise ValueError(f"{path}:{n}: row {row['name']}: bad rig or runner")
            names.add(row["name"])
            rows.append(row)
    return rows


def row_args(a, row):
    """Fill the runner's options from a matrix row."""
    a.name, a.set = row["name"], row["set"]
    a.smp, a.mem, a.cpu = int(row["smp"]), int(row["mem"]), row["cpu"]
    a.timeout, a.skips = int(row["timeout"]), int(row["skips"])
    a.append = " ".join(x for x in [row["append"], row["expect"] and
                                    f"pvtime.expect={row['expect']}"] if x)
    a.qom_check = row["qom_check"] == "1"
    a.counter = [c for c in row["counter"].split(",") if c]
    if row["rig"] == "l1":
        use_l1_rig(a)
    return row["runner"]


def use_l1_rig(a):
    """Make the runner's options boot the nested rig's L1 host: its
    initramfs, its memory, L2's console (the -cpu and -smp stay a row's)."""
    if not a.initrd_l1:
        raise ValueError(f"{a.name} boots the L1 host: it needs the L1 initramfs (--initrd-l1)")
    a.initrd = a.initrd_l1
    a.mem = L1_RIG["mem"]
    a.extra_console = L1_RIG["extra_console"] + a.extra_console


def run(a):
    """Boot one guest, judge the run; returns the result record."""
    logdir = os.path.join(a.log_dir, a.name)
    # The monitor: the QOM check asks it, and a guest that hangs is
    # described from it before it is killed (hang.log). A unix socket's
    # path has a limit; only the QOM check cannot do without it.
    qmp = (os.path.join(logdir, "qmp.sock")
           if a.qom_check or len(os.path.abspath(logdir)) < 90 else None)
    cmd = qemu_cmdline(a.qemu, a.kernel, a.initrd, kernel_args(a.set, a.append),
                       logdir, cpu=a.cpu, smp=a.smp, mem=a.mem,
                       extra_console=a.extra_console, qmp=qmp)
    if a.dry_run:
        print(shlex.join(cmd))
        return None
    shutil.rmtree(logdir, ignore_errors=True)
    g = Guest(cmd, logdir, qmp).start()
    qom = {"results": None}
    # When the guest reported its exit status (state["rc_at"]), and
    # whether it then failed to reboot in time (state["stuck"]).
    state = {"rc_at": None, "stuck": False, "looked": 0.0}

    def watch_reboot():
        el = g.elapsed()
        if state["rc_at"] is None:
            if el - state["looked"] < 2:
                return
            state["looked"] = el
            if RC_LINE.search(g.read("status.log")):
                state["rc_at"] = el
        elif el - state["rc_at"] > REBOOT_GRACE:
            state["stuck"] = True
            g.kill()

    def poll():
        watch_reboot()
        if not a.qom_check or qom["results"] is not None:
            return
        # The guest holds still for a few seconds after this line.
        text = g.read("status.log")
        if "PVTIME-QOM-READY" in text:
            try:
                qom["results"] = qom_check(qmp, text)
            except (OSError, RuntimeError, KeyError) as e:
                qom["results"] = [(False, f"QOM check: {e}")]

    def progress(el):
        last = [x for x in g.read("status.log").splitlines() if TAP_RESULT.match(x)]
        print(f"  {a.name}: running, {el / 60:.0f} min"
              + (f"; last result: {last[-1][:100]}" if last else ""), flush=True)

    rc = g.wait(a.timeout, poll, progress if a.progress else None)
    status = g.read("status.log")
    if a.print_status:
        sys.stdout.write("".join(l + "\n" for l in status.splitlines()
                                 if not l.startswith("PVTIME-RC")))
    tap = parse_tap(status.splitlines())
    problems = []
    if g.timed_out:
        problems.append(f"timeout after {a.timeout} s")
    elif state["stuck"]:
        problems.append(f"the guest did not reboot within {REBOOT_GRACE} s "
                        "of reporting its exit status")
    elif rc != 0:
        problems.append(f"qemu exited with {rc} (see qemu.log)")
    problems += status_problems(status, not a.no_tap, a.skips, tap, g.timed_out)
    problems += console_problems(g, ["console"] + a.extra_console)
    if a.qom_check:
        for ok, desc in qom["results"] or [(False, "QOM check: the guest never reached it")]:
            tap["passed" if ok else "failed"] += 1
            if not ok:
                tap["failures"].append(desc)
    rec = verdict(a.name, tap, problems, g.elapsed(), logdir,
                  {"timeout": g.timed_out})
    if rec["failed"]:
        consoles = [(n, g.read(f"{n}.log")) for n in ["console"] + a.extra_console]
        for x in diagnose(status, consoles):
            print(f"    {x}", flush=True)
        for x in g.hang[:24]:
            print(f"    hang: {x}", flush=True)
        print(f"  logs: {os.path.abspath(logdir)}", flush=True)
    return rec


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--qemu")
    p.add_argument("--kernel")
    p.add_argument("--initrd")
    p.add_argument("--initrd-l1", help="the nested rig's L1 initramfs (rows with rig=l1)")
    p.add_argument("--matrix", help="a matrix file (tests/matrix): with --row, "
                                    "the row gives every option below")
    p.add_argument("--row", help="the matrix row to run")
    p.add_argument("--list", metavar="REGEX", nargs="?", const="",
                   help="print the matrix's rows whose names match REGEX "
                        "(all: none given), one 'NAME RIG' line each, and exit")
    p.add_argument("--set", help="guest test set (guest/sets/)")
    p.add_argument("--name", help="row name (default: the set)")
    p.add_argument("--smp", type=int, default=1)
    p.add_argument("--mem", type=int, default=512, help="MiB")
    p.add_argument("--cpu", default="max",
                   help="-cpu model and properties, or one of " + ", ".join(CPU_MODELS))
    p.add_argument("--append", default="", help="extra kernel arguments")
    p.add_argument("--rig", choices=["l1"], help="boot the nested rig's L1 host "
                   "(-cpu max, 1536 MiB, L2's console logged); needs --initrd-l1")
    p.add_argument("--extra-console", action="append", default=[], metavar="NAME",
                   help="one more serial port (ttyS2, ttyS3, ...) logged to "
                        "NAME.log and checked for splats")
    p.add_argument("--qom-check", action="store_true",
                   help="when the guest prints PVTIME-QOM-READY, compare its "
                        "'# PVTIME-QOM cpu=N counter=value' lines with the "
                        "vCPUs' QOM counters (through the monitor)")
    p.add_argument("--skips", type=int, default=None,
                   help="the number of skipped TAP results the run must have")
    p.add_argument("--no-tap", action="store_true",
                   help="the set is not a test (demo): no TAP result is needed")
    p.add_argument("--timeout", type=int, default=600, help="wall seconds")
    p.add_argument("--log-dir", default=os.path.join(os.environ.get("PVTIME_BUILD", "build"), "logs"))
    p.add_argument("--results", help="append a JSON line per run to this file")
    p.add_argument("--progress", action="store_true",
                   help="print a line every minute while the guest runs")
    p.add_argument("--print-status", action="store_true",
                   help="copy the guest's status stream to stdout")
    p.add_argument("--dry-run", action="store_true",
                   help="print the QEMU command line and exit")
    a = p.parse_args()
    if a.list is not None:
        if not a.matrix:
            p.error("--list needs --matrix")
        try:
            rows = matrix_rows(a.matrix)
        except (OSError, ValueError) as e:
            print(f"boot: {e}", file=sys.stderr)
            return 2
        for r in rows:
            if re.search(a.list, r["name"]):
                print(r["name"], r["rig"] or "-")
        return 0
    if not (a.qemu and a.kernel and a.initrd):
        p.error("--qemu, --kernel and --initrd are required")
    a.counter = []
    runner = "boot"
    try:
        if a.row:
            if not a.matrix:
                p.error("--row needs --matrix")
            rows = [r for r in matrix_rows(a.matrix) if r["name"] == a.row]
            if not rows:
                raise ValueError(f"{a.matrix}: no row {a.row}")
            runner = row_args(a, rows[0])
        elif not a.set:
            p.error("--set or --row is required")
        else:
            a.name = a.name or a.set
            if a.rig == "l1":
                use_l1_rig(a)
        bad = [] if a.dry_run else missing_inputs(a.qemu, a.kernel, a.initrd)
    except ValueError as e:
        bad = [str(e)]
    if bad:
        # The run could not start: still one failed result, saying why.
        for x in bad:
            print(f"boot: {x}", file=sys.stderr)
        write_result(a.results, {"name": a.row or a.name or "?", "passed": 0,
                                 "failed": 1, "skipped": 0, "problems": bad})
        return 2
    if runner == "snapshot":
        sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                        "..", "tests"))
        import snapshot
        rec = snapshot.run(a)
    else:
        rec = run(a)
    if rec is None:
        return 0
    write_result(a.results, rec)
    return 0 if rec["failed"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
