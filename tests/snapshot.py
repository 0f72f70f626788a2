#!/usr/bin/python3
"""Save a running guest with armed timers and restore it into a new QEMU.

Guest A boots the "snapshot" set; once it reports PVTIME-READY the host
stops it, saves its whole state through the migration stream into a file
("exec:" transport, so no disk image is needed), reads its QOM counters and
quits it. Guest B is the same command line with -incoming from that file;
it must finish the set with every sleep on time. The counters of B must
show the device firing in B after the restore.
"""
import argparse
import json
import os
import re
import shlex
import signal
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "scripts"))
import boot  # noqa: E402


def counters(q, props):
    out = {}
    for cpu in q.cmd("query-cpus-fast"):
        path = cpu["qom-path"]
        out[cpu["cpu-index"]] = {p: q.cmd("qom-get", path=path, property=p)
                                 for p in props}
    return out


def wait_for(path, pattern, timeout):
    rx = re.compile(pattern, re.M)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with open(path, errors="replace") as f:
                if rx.search(f.read()):
                    return True
        except FileNotFoundError:
            pass
        time.sleep(0.2)
    return False


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    for o in ("--qemu", "--kernel", "--initrd", "--cpu"):
        p.add_argument(o, required=True)
    p.add_argument("--smp", type=int, default=2)
    p.add_argument("--mem", type=int, default=512)
    p.add_argument("--append", default="")
    p.add_argument("--name", default="snapshot")
    p.add_argument("--timeout", type=int, default=300)
    p.add_argument("--log-dir", default="build/logs")
    p.add_argument("--results")
    p.add_argument("--counter", action="append", default=[],
                   help="QOM counter that must grow on every vCPU after restore")
    a = p.parse_args()

    logdir = os.path.abspath(os.path.join(a.log_dir, a.name))
    os.makedirs(logdir, exist_ok=True)
    problems, tap = [], {"passed": 0, "failed": 0, "skipped": 0, "failures": []}
    t0 = time.monotonic()

    def start(tag, extra):
        d = os.path.join(logdir, tag)
        os.makedirs(d, exist_ok=True)
        ns = argparse.Namespace(
            qemu=a.qemu, kernel=a.kernel, initrd=a.initrd, set="snapshot",
            smp=a.smp, mem=a.mem, cpu=a.cpu, accel="tcg", append=a.append,
            qemu_args=extra, icount=None, extra_console=[], qmp=os.path.join(d, "qmp.sock"),
            firmware=["/usr/share/seabios", "/usr/share/qemu"])
        cmd = boot.qemu_cmdline(ns, d)
        with open(os.path.join(d, "cmdline"), "w") as f:
            f.write(shlex.join(cmd) + "\n")
        log = open(os.path.join(d, "qemu.log"), "w")
        proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=log,
                                stderr=subprocess.STDOUT, start_new_session=True)
        return d, proc, boot.QMP(ns.qmp)

    state = os.path.join(logdir, "state.bin")
    procs = []
    try:
        da, pa, qa = start("A", "")
        procs.append(pa)
        if not wait_for(os.path.join(da, "status.log"), r"PVTIME-READY", a.timeout):
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
        pa.wait(timeout=30)

        db, pb, qb = start("B", f"-incoming {shlex.quote('exec:cat ' + state)}")
        procs.append(pb)
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
        try:
            pb.wait(timeout=a.timeout)
        except subprocess.TimeoutExpired:
            problems.append(f"restored guest did not finish in {a.timeout} s "
                            "(a lost deadline leaves idle CPUs asleep)")
        with open(os.path.join(db, "status.log"), errors="replace") as f:
            status = f.read()
        tap = boot.parse_tap(status.splitlines())
        rcs = re.findall(r"^PVTIME-RC (\d+)", status, re.M)
        if not rcs:
            problems.append("restored guest reported no exit status")
        elif rcs[-1] != "0":
            problems.append(f"restored guest's set exited with {rcs[-1]}")
        if tap["passed"] == 0:
            problems.append("no TAP result after the restore")
        for tag in ("A", "B"):
            with open(os.path.join(logdir, tag, "console.log"), errors="replace") as f:
                for kind, line in boot.find_splats(f.read()):
                    problems.append(f"{tag}: {kind}: {line}")
    except Exception as e:  # noqa: BLE001 - every failure is a result
        problems.append(str(e))
    finally:
        for pr in procs:
            if pr.poll() is None:
                os.killpg(pr.pid, signal.SIGKILL)
                pr.wait()
        if os.path.exists(state):
            os.unlink(state)

    passed = tap["passed"] + (0 if problems else 1)
    failed = tap["failed"] + (1 if problems else 0)
    print(f"row {a.name}: {passed} passed, {failed} failed, {tap['skipped']} skipped "
          f"({time.monotonic() - t0:.0f} s)", flush=True)
    for x in tap["failures"] + problems:
        print(f"  {x}")
    if failed:
        print(f"  logs: {logdir}")
    if a.results:
        with open(a.results, "a") as f:
            f.write(json.dumps({"name": a.name, "passed": passed, "failed": failed,
                                "skipped": tap["skipped"], "problems": problems,
                                "logs": logdir}) + "\n")
    return 0 if failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
