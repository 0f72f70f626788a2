#!/usr/bin/python3
"""The results stream of make check, and its closing line.

Every result of make check is one JSON line of one file (results.jsonl):
{"name": ..., "passed": P, "failed": F, "skipped": S, ...}. A gate, a build
or a harness self-test is one result (one of P, F, S is 1); a guest row
counts its TAP results plus one for the run itself.

  tally.py add FILE ok|fail|skip NAME [DETAIL]   append one result
  tally.py sum FILE [--filter REGEX]             print the closing line

"sum" fails closed: a line that is not such a record (malformed, truncated,
counts that are not non-negative integers) is a failed result of its own,
and so is a file with no result at all. It prints

  N passed, N failed, N skipped

and exits 0 only when nothing failed.
"""
import json
import sys

KINDS = {"ok": "passed", "fail": "failed", "skip": "skipped"}


def add(path, kind, name, detail=""):
    rec = {"name": name, "passed": 0, "failed": 0, "skipped": 0}
    rec[KINDS[kind]] = 1
    if detail:
        rec["problems"] = [detail]
    with open(path, "a") as f:
        f.write(json.dumps(rec) + "\n")


def check_record(rec):
    """Why a decoded line is not a result record, or None."""
    if not isinstance(rec, dict) or not isinstance(rec.get("name"), str):
        return "not a record with a name"
    for k in KINDS.values():
        v = rec.get(k)
        if type(v) is not int or v < 0:
            return f"{k} is {v!r}, not a count"
    return None


def tally(lines):
    """(passed, failed, skipped, complaints) of the lines of a results file."""
    p = f = s = 0
    bad = []
    for n, line in enumerate(lines, 1):
        if not line.endswith("\n"):
            bad.append(f"line {n} is truncated (no newline): {line[:80]!r}")
            continue
        try:
            rec = json.loads(line)
            why = check_record(rec)
        except ValueError as e:
            why = f"not JSON ({e})"
        if why:
            bad.append(f"line {n}: {why}: {line.strip()[:80]!r}")
            continue
        p, f, s = p + rec["passed"], f + rec["failed"], s + rec["skipped"]
    if p + f + s == 0 and not bad:
        bad.append("no result at all")
    return p, f + len(bad), s, bad


def main(argv):
    if len(argv) >= 5 and argv[1] == "add" and argv[3] in KINDS:
        add(argv[2], argv[3], argv[4], argv[5] if len(argv) > 5 else "")
        return 0
    if len(argv) in (3, 5) and argv[1] == "sum":
        try:
            with open(argv[2]) as fh:
                lines = fh.readlines()
        except OSError as e:
            print(f"FAIL: results: {e}")
            lines = []
        p, f, s, bad = tally(lines)
        for b in bad:
            print(f"FAIL: results: {b}")
        if len(argv) == 5 and argv[3] == "--filter" and argv[4]:
            print(f"filtered run: MATRIX_FILTER={argv[4]!r}: only the rows it "
                  "matches ran; this is not a full make check")
        print(f"{p} passed, {f} failed, {s} skipped")
        return 0 if f == 0 else 1
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
