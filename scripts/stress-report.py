#!/usr/bin/python3
"""Write the results set of make stress: stress/results/<date>/README.md.

stress-report.py RESULTS LOGDIR --minutes M [--filter REGEX] [--out DIR]

RESULTS is the run's results.jsonl (one record per row, scripts/boot.py);
LOGDIR holds each row's logs (LOGDIR/<row>/status.log). The counts come
from the rows' own output: the fuzz lines the MSR tests print. Nothing is
written for a filtered run, which is not a results set.
"""
import argparse
import datetime
import json
import os
import re
import sys

from pvbench import TOP
from pvbench.measure import git_clean, git_rev

# pvtime_msr_test: "# fuzz: N accesses on K CPU(s), M of them #GP"; the KVM
# selftest, nested one level deeper: "... N accesses on K vCPUs, M of them
# #GP, 0 mismatches".
FUZZ = re.compile(r"(\d+) accesses on (\d+) v?CPU\(?s?\)?, (\d+) of them #GP")


def counts(logdir, name):
    try:
        with open(os.path.join(logdir, name, "status.log"), errors="replace") as f:
            text = f.read()
    except OSError:
        return "no status log"
    found = FUZZ.findall(text)
    if not found:
        return "no count printed"
    acc = sum(int(a) for a, _, _ in found)
    gps = sum(int(g) for _, _, g in found)
    return f"{acc:,} MSR accesses, {gps:,} of them #GP, 0 mismatches"


def main():
    p = argparse.ArgumentParser()
    p.add_argument("results")
    p.add_argument("logdir")
    p.add_argument("--minutes", type=int, required=True)
    p.add_argument("--filter", default="")
    p.add_argument("--out")
    a = p.parse_args()
    if a.filter:
        print("stress: filtered run, no results set written", file=sys.stderr)
        return 0
    with open(a.results) as f:
        recs = [json.loads(x) for x in f if x.strip()]
    if not recs:
        print("stress: no row ran", file=sys.stderr)
        return 1
    day = datetime.date.today().isoformat()
    out = a.out
    if not out:
        base = os.path.join(TOP, "stress", "results", day)
        out, n = base, 2
        while os.path.exists(out):
            out, n = f"{base}-{n}", n + 1
    os.makedirs(out, exist_ok=True)
    rev, clean = git_rev(), git_clean()
    lines = [f"# make stress, {day}", "",
             f"Harness revision {rev} ({'clean tree' if clean else 'tree with local changes'}); "
             f"{len(recs)} rows in {a.minutes} min on {os.cpu_count()} host CPUs. "
             "Rows and their counts: `tests/stress`; command: `make stress`.", "",
             "| row | verdict | count | wall |", "|---|---|---|---|"]
    for r in recs:
        ok = r["failed"] == 0
        verdict = "pass" if ok else f"FAIL ({r['failed']} failed)"
        c = counts(a.logdir, r["name"]) if ok else "; ".join(r.get("problems", [])[:2])
        lines.append(f"| `{r['name']}` | {verdict} | {c} | {r['wall']:.0f} s |")
    lines += ["", "A row passes only if every one of its checks passed: each "
              "access matched the test's model of the ABI (0 mismatches), the "
              "timers worked on every CPU afterwards, the hypervisor's #GP and "
              "arm counters (TCG rows) agree with the guest's, and neither "
              "guest's log shows a splat or an unchecked MSR access.", ""]
    with open(os.path.join(out, "README.md"), "w") as f:
        f.write("\n".join(lines))
    print(f"stress: results in {out}/README.md", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
