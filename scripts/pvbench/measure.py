"""Measuring: the builds a run boots, one boot (run_qemu) and its raw
record, and the run list. Records go to runs.jsonl; everything else is
computed from them (analyse, report)."""
import hashlib
import json
import os
import platform as pyplatform
import re
import shlex
import shutil
import socket
import subprocess
import tempfile
import threading
import time

import boot

from . import TOP, COUNTERS, log


# ---------------------------------------------------------------------------
# Builds


def script_out(cmd):
    r = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       text=True)
    if r.returncode != 0:
        raise RuntimeError(f"{shlex.join(cmd)} failed:\n{r.stderr[-2000:]}")
    return r.stdout.strip().splitlines()[-1]


def get_builds(cfg):
    """The builds of make check, from the same cached build scripts."""
    if cfg.get("builds"):
        return cfg["builds"]
    sc = os.path.join(TOP, "scripts")
    log("builds (cached when up to date)")
    qemu = script_out([os.path.join(sc, "build-qemu.sh")])
    kout = script_out([os.path.join(sc, "build-kernel.sh")])
    initrd = script_out([os.path.join(sc, "build-initramfs.sh"), kout])
    b = {"qemu": qemu, "kout": kout,
         "kernel": os.path.join(kout, "arch/x86/boot/bzImage"), "initrd": initrd}
    # The run boots copies: a build started meanwhile (another make check
    # on the same cache) cannot swap the kernel or QEMU under it.
    snap = os.path.join(cfg["logroot"], "builds")
    os.makedirs(snap, exist_ok=True)
    for k in ("qemu", "kernel", "initrd"):
        dst = os.path.join(snap, os.path.basename(b[k]))
        shutil.copy2(b[k], dst)
        b[k + "_orig"], b[k] = b[k], dst
        with open(dst, "rb") as f:
            b[k + "_sha256"] = hashlib.sha256(f.read()).hexdigest()[:16]
    cfg["builds"] = b
    return b


def series_hash(d):
    r = subprocess.run(["sh", "-c", '. "$0/scripts/lib.sh" >/dev/null; series_hash "$1"',
                        TOP, d], stdout=subprocess.PIPE, text=True)
    return r.stdout.strip()


def lib_var(name):
    r = subprocess.run(["sh", "-c", '. "$0/scripts/lib.sh" >/dev/null; eval echo "\\$$1"',
                        TOP, name], stdout=subprocess.PIPE, text=True)
    return r.stdout.strip()


def builds_versions(b):
    def read(p):
        try:
            with open(p) as f:
                return f.read().strip()
        except OSError:
            return None
    v = {
        "linux_base": lib_var("LINUX_VERSION"),
        "qemu_base": lib_var("QEMU_UPSTREAM"),
        "linux_series": series_hash(os.path.join(TOP, "linux")),
        "qemu_series": series_hash(os.path.join(TOP, "qemu")),
        "kernel_key": read(os.path.join(b["kout"], ".pvtime-key")),
        "qemu_key": read(os.path.join(os.path.dirname(b["qemu_orig"]), ".pvtime-key")),
        "initramfs": os.path.basename(b["initrd"]),
        "sha256 (first 16)": ", ".join(f"{k} {b[k + '_sha256']}"
                                       for k in ("qemu", "kernel", "initrd")),
    }
    try:
        v["qemu_version"] = subprocess.run([b["qemu"], "--version"], stdout=subprocess.PIPE,
                                           text=True).stdout.splitlines()[0]
    except (OSError, IndexError):
        pass
    try:
        v["kernel_release"] = read(os.path.join(b["kout"], "include/config/kernel.release"))
    except OSError:
        pass
    try:
        v["cyclictest"] = subprocess.run(
            ["dpkg-query", "-W", "-f=${Version}", "rt-tests"],
            stdout=subprocess.PIPE, text=True).stdout.strip()
    except OSError:
        pass
    return v


# ---------------------------------------------------------------------------
# One boot


def sample_qom(qmp, paths):
    """Counters of every vCPU: {cpu_index: {counter: value}}."""
    out = {}
    for idx, path in paths.items():
        out[idx] = {k: qmp.cmd("qom-get", path=path, property=k) for k in COUNTERS}
    return out


def proc_cpu_s(pid):
    """utime + stime of a process (all its threads), seconds."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    hz = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / hz


MARK = re.compile(r"^PVTIME-BENCH mark (\S+) t=([0-9.]+)")


def run_qemu(pf, spec, cfg, logdir):
    """Boot one guest; collect its bench lines, and at each of its marks the
    counters, the QEMU process' CPU time and the host wall clock."""
    shutil.rmtree(logdir, ignore_errors=True)
    # Unix socket paths are short (108 bytes): not under a deep log dir.
    sockdir = tempfile.mkdtemp(prefix="pvtime-bench-")
    status_sock = os.path.join(sockdir, "status")
    qmp_sock = os.path.join(sockdir, "qmp")
    srv = socket.socket(socket.AF_UNIX)
    srv.bind(status_sock)
    srv.listen(1)
    # The boot runner's Guest: the same start, time limit and kill as the
    # rows of make check. Its monitor belongs to on_mark() below, so there
    # is no hang report (a second QMP client would wait on the first).
    guest = boot.Guest(pf.cmdline(spec, cfg, logdir, status_sock, qmp_sock), logdir)
    s = cfg["s"]
    timeout = (120 + 15 * spec.smp + s["cyclic_s"] * 3 * len(spec.phases)
               + (s["idle_s"] * 2 if "idle" in spec.phases else 0)
               + (60 if spec.stall_us else 0) + spec.extra_timeout)
    if cfg["icount"] is not None:
        timeout *= 4
    rec = {"name": spec.name, "exp": spec.exp, "device": spec.device.key,
           "smp": spec.smp, "stall_us": spec.stall_us, "rep": spec.rep,
           "phases": spec.phases, "cmdline": shlex.join(guest.cmd),
           "marks": {}, "lines": [], "problems": []}
    guest.start(nice=cfg["nice"])
    t0, proc = guest.t0, guest.proc
    srv.settimeout(30)
    qmp = None
    try:
        conn, _ = srv.accept()
        conn.settimeout(None)
    except OSError as e:
        rec["problems"].append(f"QEMU never connected its status port: {e}")
        conn = None
    statf = open(os.path.join(logdir, "status.log"), "w")
    # QMP before the guest gets anywhere: the first mark must not wait.
    paths = None
    if conn:
        try:
            qmp = boot.QMP(qmp_sock, timeout=10)
            paths = {c["cpu-index"]: c["qom-path"] for c in qmp.cmd("query-cpus-fast")}
        except (OSError, RuntimeError, ValueError) as e:
            rec["problems"].append(f"QMP: {e}")
    icount = cfg["icount"] is not None

    def on_mark(name, guest_t, now):
        mk = {"wall": now - t0, "guest": guest_t}
        stopped = False
        try:
            # Under -icount guest time only moves while the VM runs: stop it
            # so that the guest makes no progress while it is sampled.
            if icount:
                qmp.cmd("stop")
                stopped = True
            mk["cpu_s"] = proc_cpu_s(proc.pid)
            c = pf.sample(qmp, paths)
            if c is not None:
                mk["counters"] = c
            mk["sample_s"] = time.monotonic() - now
        except (OSError, RuntimeError, ValueError, AttributeError) as e:
            rec["problems"].append(f"sampling at {name}: {e}")
        finally:
            if stopped:
                try:
                    qmp.cmd("cont")
                except (OSError, RuntimeError, ValueError) as e:
                    rec["problems"].append(f"cont after {name}: {e}")
        rec["marks"][name] = mk
        # The guest waits for this before it goes on.
        if pf.ack:
            try:
                conn.sendall(b"go\n")
            except OSError:
                pass

    def reader():
        buf = b""
        while True:
            try:
                chunk = conn.recv(65536)
            except OSError:
                break
            if not chunk:
                break
            now = time.monotonic()
            buf += chunk
            while b"\n" in buf:
                raw, buf = buf.split(b"\n", 1)
                line = raw.decode(errors="replace").rstrip("\r")
                statf.write(line + "\n")
                statf.flush()
                if not line.startswith("PVTIME-BENCH"):
                    continue
                rec["lines"].append([round(now - t0, 4), line])
                m = MARK.match(line)
                if m:
                    on_mark(m.group(1), float(m.group(2)), now)

    th = None
    if conn:
        th = threading.Thread(target=reader, daemon=True)
        th.start()
    guest.wait(timeout)
    timed_out = guest.timed_out
    if th:
        th.join(timeout=10)
    rec["wall"] = round(time.monotonic() - t0, 2)
    for x in (conn, srv, qmp):
        try:
            if x:
                x.close()
        except OSError:
            pass
    statf.close()
    shutil.rmtree(sockdir, ignore_errors=True)
    if timed_out:
        rec["problems"].append(f"timeout after {timeout} s")
    elif proc.returncode != 0:
        rec["problems"].append(f"qemu exited with {proc.returncode}")
    rec["problems"] += boot.console_problems(guest, pf.consoles)
    lines = [l for _, l in rec["lines"]]
    for l in lines:
        if l.startswith("PVTIME-BENCH error"):
            rec["problems"].append(l[len("PVTIME-BENCH "):])
    if not any(l.startswith("PVTIME-BENCH done rc=0") for l in lines) and not timed_out:
        rec["problems"].append("the bench set did not finish cleanly")
    rec["logs"] = logdir
    return rec


def parse_irqs(text):
    """The guest's "NAME=COUNT ..." interrupt list -> {name: count}, rows
    of the same name summed."""
    d = {}
    for kv in text.split():
        k, _, v = kv.partition("=")
        if v.isdigit():
            d[k] = d.get(k, 0) + int(v)
    return d


def machine_info():
    model = "?"
    try:
        with open("/proc/cpuinfo") as f:
            for l in f:
                if l.startswith("model name"):
                    model = l.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return {"nproc": os.cpu_count(), "cpu_model": model,
            "host_kernel": pyplatform.release(),
            "loadavg": open("/proc/loadavg").read().split()[:3]}


def git_clean():
    """Whether the harness tree has no uncommitted change (None: no git)."""
    r = subprocess.run(["git", "-C", TOP, "status", "--porcelain", "--untracked-files=no"],
                       stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    return None if r.returncode else not r.stdout.strip()


def git_rev():
    r = subprocess.run(["git", "-C", TOP, "describe", "--always", "--dirty"],
                       stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    return r.stdout.strip() or "?"


def run_problems(recs):
    """The problems of a list of run records (a timeout, a splat, an error
    the bench set reported, a set that did not finish), one line each."""
    return [f"{r['name']}: {x} (logs: {r['logs']})" for r in recs for x in r["problems"]]


def run_all(pf, cfg, logroot, runs_path):
    plan = pf.plan(cfg)
    if cfg.get("only"):
        plan = [r for r in plan if r.exp in cfg["only"]]
    recs = []
    t0 = time.monotonic()
    for i, spec in enumerate(plan):
        el = time.monotonic() - t0
        eta = f", ~{el / i * (len(plan) - i) / 60:.1f} min left" if i else ""
        log(f"[{pf.name} {i + 1}/{len(plan)}] {spec.name} ({el / 60:.1f} min{eta})")
        rec = pf.run(spec, cfg, os.path.join(logroot, pf.name, spec.name))
        for x in rec["problems"]:
            log(f"  {spec.name}: {x} (logs: {rec['logs']})")
        recs.append(rec)
        with open(runs_path, "a") as f:
            f.write(json.dumps({"platform": pf.name, **rec}) + "\n")
    return recs
