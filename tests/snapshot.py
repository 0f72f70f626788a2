#!/usr/bin/python3
"""Save a running guest with armed timers and restore it into a new QEMU.

The runner of matrix rows with runner=snapshot (scripts/boot.py --row).
Guest A boots the row's set; once it reports PVTIME-READY the host stops
it, saves its whole state through the migration stream into a file
("exec:" transport, so no disk image is needed), reads its QOM counters and
quits it. Guest B is the same command line with -incoming from that file;
it must finish the set with every sleep on time. The counters named by the
row (counter=) must grow on every vCPU of B after the restore.

Before B, the same state is loaded with vCPU 0's device state corrupted
in each way no guest can leave it (CORRUPT): each such QEMU must refuse
the stream with the device's error message and exit, never running.
"""
import os
import re
import shlex
import shutil
import struct
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "..", "scripts"))
import boot  # noqa: E402


def counters(q, props):
    out = {}
    for cpu in q.cmd("query-cpus-fast"):
        path = cpu["qom-path"]
        out[cpu["cpu-index"]] = {p: q.cmd("qom-get", path=path, property=p)
                                 for p in props}
    return out


# vCPU 0's "cpu/pv_clockevent" subsection in the migration stream: the
# subsection marker, the name's length and the name, the version (be32),
# then CTRL and DEADLINE (be64) and the pending flag (one byte).
PVCE_SUBSECTION = b"\x05\x11cpu/pv_clockevent"
ENABLE, VECTOR_MASK = 1, 0xff00

# (what, new (ctrl, deadline, pending) from the saved ones, QEMU's message)
CORRUPT = [
    ("a reserved bit in CTRL",
     lambda c, d, p: (c | 1 << 40, d, p), "Invalid PV clock event control"),
    ("vector 0x10 enabled",
     lambda c, d, p: ((c & ~VECTOR_MASK) | 0x1000 | ENABLE, d, p),
     "Invalid PV clock event control"),
    ("a deadline while disabled",
     lambda c, d, p: (0, d or 1 << 40, 0),
     "PV clock event deadline while the device is disabled"),
    ("a pending expiry while disabled",
     lambda c, d, p: (0, 0, 1),
     "PV clock event pending expiry while the device is disabled"),
]


def corrupt(state, out, change):
    """Write state to out with vCPU 0's device state changed by change();
    returns the saved (ctrl, deadline, pending)."""
    with open(state, "rb") as f:
        data = bytearray(f.read())
    at = data.find(PVCE_SUBSECTION)
    if at < 0:
        raise RuntimeError("the saved state has no cpu/pv_clockevent subsection")
    at += len(PVCE_SUBSECTION)
    version, ctrl, deadline, pending = struct.unpack_from(">IQQB", data, at)
    if version != 1 or pending > 1:
        raise RuntimeError(f"cpu/pv_clockevent subsection not as expected: "
                           f"version {version}, pending {pending}")
    struct.pack_into(">IQQB", data, at, version, *change(ctrl, deadline, pending))
    with open(out, "wb") as f:
        f.write(data)
    return ctrl, deadline, pending


def wait_for(guest, pattern, timeout):
    rx = re.compile(pattern, re.M)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if rx.search(guest.read("status.log")):
            return True
        if guest.proc.poll() is not None:
            return False
        time.sleep(0.2)
    return False


def run(a):
    """Boot A, save it, restore B, judge B's run; returns the result record."""
    logdir = os.path.abspath(os.path.join(a.log_dir, a.name))
    state = os.path.join(logdir, "state.bin")
    append = boot.kernel_args(a.set, a.append)

    def guest(tag, extra=()):
        d = os.path.join(logdir, tag)
        qmp = os.path.join(d, "qmp.sock")
        cmd = boot.qemu_cmdline(a.qemu, a.kernel, a.initrd, append, d, cpu=a.cpu,
                                smp=a.smp, mem=a.mem, qmp=qmp, extra=extra)
        return boot.Guest(cmd, d, qmp)

    if a.dry_run:
        print(shlex.join(guest("A").cmd))
        print(shlex.join(guest("B", ["-incoming", "exec:cat " + shlex.quote(state)]).cmd))
        return None
    shutil.rmtree(logdir, ignore_errors=True)
    problems, tap, guests = [], boot.parse_tap([]), []
    t0 = time.monotonic()
    try:
        ga = guest("A").start()
        guests.append(ga)
        qa = boot.QMP(ga.qmp)
        if not wait_for(ga, r"PVTIME-READY", a.timeout):
            raise RuntimeError("guest A never became ready")
        time.sleep(2)      # let the sleeps run; every CPU has a deadline armed
        qa.cmd("stop")
        before = counters(qa, a.counter)
        qa.cmd("migrate", uri=f"exec:cat > {shlex.quote(state)}")
        deadline = time.monotonic() + 120
        while qa.cmd("query-migrate").get("status") != "completed":
            if time.monotonic() > deadline:
                raise RuntimeError("saving the state did not complete")
            time.sleep(0.2)
        qa.cmd("quit")
        qa.close()
        ga.wait(30)

        bad = state + ".bad"
        for i, (what, change, message) in enumerate(CORRUPT):
            saved = corrupt(state, bad, change)
            gc = guest(f"C{i}", ["-incoming", "exec:cat " + shlex.quote(bad)]).start()
            guests.append(gc)
            rc = gc.wait(60)
            log = gc.read("qemu.log")
            if gc.timed_out:
                problems.append(f"a stream with {what} was not refused "
                                "(QEMU still up after 60 s)")
            elif rc == 0 or message not in log:
                problems.append(f"a stream with {what} (saved ctrl/deadline/"
                                f"pending {saved}): exit {rc}, "
                                f"\"{message}\" {'said' if message in log else 'not said'}")
        if os.path.exists(bad):
            os.unlink(bad)

        gb = guest("B", ["-incoming", "exec:cat " + shlex.quote(state)]).start()
        guests.append(gb)
        qb = boot.QMP(gb.qmp)
        # A was stopped when it was saved, so B comes up paused once the
        # state is in: resume it.
        deadline = time.monotonic() + 120
        while qb.cmd("query-status")["status"] == "inmigrate":
            if time.monotonic() > deadline:
                raise RuntimeError("restoring the state did not complete")
            time.sleep(0.2)
        if qb.cmd("query-status")["status"] != "running":
            qb.cmd("cont")
        if a.counter:
            # The counters are statistics of the QEMU process, not guest
            # state: B's start from zero and must grow while its guest
            # sleeps on after the restore.
            try:
                time.sleep(2)
                first = counters(qb, a.counter)
                time.sleep(1)
                second = counters(qb, a.counter)
            except (RuntimeError, OSError) as e:
                first = second = {}
                problems.append(f"reading B's counters: {e}")
            for idx in before:
                for k in a.counter:
                    v1 = first.get(idx, {}).get(k, 0)
                    v2 = second.get(idx, {}).get(k, 0)
                    if not v2 > v1:
                        problems.append(f"vCPU {idx}: {k} did not grow after "
                                        f"the restore ({v1} -> {v2})")
        qb.close()
        rc = gb.wait(a.timeout)
        if gb.timed_out:
            problems.append(f"restored guest did not finish in {a.timeout} s "
                            "(a lost deadline leaves idle CPUs asleep)")
        elif rc != 0:
            problems.append(f"restored QEMU exited with {rc}")
        status = gb.read("status.log")
        tap = boot.parse_tap(status.splitlines())
        problems += boot.status_problems(status, True, a.skips, tap, gb.timed_out)
        for g in guests:
            problems += [f"{os.path.basename(g.logdir)}: {p}"
                         for p in boot.console_problems(g, ["console"])]
    except Exception as e:  # noqa: BLE001 - every failure is a result
        problems.append(f"{type(e).__name__}: {e}")
    finally:
        for g in guests:
            g.kill()
        if os.path.exists(state):
            os.unlink(state)
    rec = boot.verdict(a.name, tap, problems, time.monotonic() - t0, logdir)
    if rec["failed"]:
        print(f"  logs: {logdir}", flush=True)
    return rec
