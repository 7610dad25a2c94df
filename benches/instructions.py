#!/usr/bin/env python3
"""Instructions per operation, fanout against raw crossbeam-channel, counted by callgrind.

Builds benches/instructions.rs once (release, as `cargo bench` builds), runs each case under
`valgrind --tool=callgrind --toggle-collect=*measured_ops*` at two sizes and prints a Markdown
table to stdout. Run from anywhere in the repository:

    python3 benches/instructions.py [--n1 20000] [--n2 40000] [--cases CASE ...] [--json] [--check]

Method: callgrind counts the instructions executed (Ir), so a count is the same run to run
(for the same command line: the arguments shift the heap a little), whatever else the machine
is doing. Only `measured_ops`, the loop of n operations, and what it calls are counted
(--toggle-collect); set-up and checks are not. The two sizes cancel what is left of fixed
costs: per operation = (I(n2) - I(n1)) / (n2 - n1); the fan10 row is also divided by 10, per
delivery. These are instructions, not time: cache misses and the cost of atomic operations
on real cores do not show. The `sketch` column is the floor of this design (see
benches/instructions.rs): what any publish or read of it must do. A full run also saves the
table to target/fanout-bench/instructions.json, which benches/report.py puts in BENCHMARKS.md.
"""
import argparse
import datetime
import json
import os
import re
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PATTERN = "*measured_ops*"

# (row, fanout's case, crossbeam's case, how crossbeam's side is named, deliveries per operation,
#  the highest fanout/crossbeam ratio --check accepts)
ROWS = [
    ("publish, one unbounded subscriber", "fanout_publish_unbounded",
     "crossbeam_send_unbounded", "`send`", 1, 1.5, "sketch_publish"),
    ("publish through a `Publisher`, one unbounded subscriber", "fanout_publisher_unbounded",
     "crossbeam_send_unbounded", "`send`", 1, 1.5, "sketch_publish"),
    ("read (`get_message(ZERO)`), unbounded", "fanout_read_unbounded",
     "crossbeam_read_unbounded", "`try_recv`", 1, 1.5, "sketch_read"),
    ("publish, one bounded subscriber", "fanout_publish_bounded",
     "crossbeam_send_bounded", "bounded `send`", 1, 1.5, None),
    ("read, bounded", "fanout_read_bounded", "crossbeam_read_bounded",
     "bounded `try_recv`", 1, 1.5, None),
    ("publish to 10 subscribers, per delivery", "fanout_publish_fan10",
     "crossbeam_send_fan10", "a send loop", 10, 1.3, None),
    ("publish through a `Publisher` to 10 subscribers, per delivery", "fanout_publisher_fan10",
     "crossbeam_send_fan10", "a send loop", 10, 1.3, None),
]
CASES = list(dict.fromkeys(case for row in ROWS for case in (row[1], row[2], row[6]) if case))
SAVED = os.path.join(ROOT, "target", "fanout-bench", "instructions.json")


def output(cmd):
    return subprocess.run(cmd, cwd=ROOT, check=True, text=True, capture_output=True).stdout.strip()


def build(features):
    """Builds the bench binary and returns its path."""
    cmd = ["cargo", "bench", "--bench", "instructions", "--no-run", "--message-format=json"]
    if features:
        cmd += ["--features", features]
    print("+", " ".join(cmd), file=sys.stderr)
    out = subprocess.run(cmd, cwd=ROOT, check=True, text=True, stdout=subprocess.PIPE).stdout
    for line in out.splitlines():
        msg = json.loads(line)
        if (msg.get("reason") == "compiler-artifact" and msg["target"]["name"] == "instructions"
                and msg.get("executable")):
            return msg["executable"]
    sys.exit("instructions.py: cargo built no `instructions` executable")


def count(exe, case, n):
    """The instructions callgrind counted inside `measured_ops` for `n` operations."""
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "callgrind.out")
        cmd = ["valgrind", "--tool=callgrind", f"--toggle-collect={PATTERN}",
               f"--callgrind-out-file={out}", exe, case, str(n)]
        run = subprocess.run(cmd, text=True, capture_output=True)
        if run.returncode != 0:
            sys.exit(f"instructions.py: {' '.join(cmd)} failed:\n{run.stderr}")
        with open(out) as f:
            text = f.read()
    total = re.search(r"^(?:totals|summary): (\d+)", text, re.M)
    if total is None or "measured_ops" not in text:
        sys.exit(f"instructions.py: {case} {n}: no total, or `measured_ops` never ran: "
                 f"was it inlined, or renamed?")
    return int(total.group(1))


def render(raw):
    """The Markdown table of the rows whose cases ran."""
    out = ["| operation | fanout | raw crossbeam | fanout / crossbeam | the design's floor (`sketch`) | fanout / floor |",
           "|---|---|---|---|---|---|"]
    per_op = lambda case, per: raw[case]["per_op"] / per if case in raw else None
    num = lambda x: "-" if x is None else f"{x:.1f}"
    ratio = lambda a, b: "-" if a is None or b is None else f"{a / b:.2f}x"
    for name, ours, theirs, label, per, _, floor in ROWS:
        a, b = per_op(ours, per), per_op(theirs, per)
        c = per_op(floor, per) if floor else None
        if a is None and b is None:
            continue
        out.append(f"| {name} | {num(a)} | {label} {num(b)} | {ratio(a, b)} | {num(c)} | {ratio(a, c)} |")
    return "\n".join(out)


def main():
    parser = argparse.ArgumentParser(
        description="\n\n".join(__doc__.split("\n\n")[:2]),
        epilog="\n\n".join(__doc__.split("\n\n")[3:]),
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n1", type=int, default=20000, help="the smaller size (default 20000)")
    parser.add_argument("--n2", type=int, default=40000, help="the larger size (default 40000)")
    parser.add_argument("--cases", nargs="+", choices=CASES, default=CASES, metavar="CASE",
                        help=f"run only these cases: {', '.join(CASES)}")
    parser.add_argument("--features", help="cargo features to build with, e.g. async,redis")
    parser.add_argument("--json", action="store_true", help="also print the raw counts as JSON")
    parser.add_argument("--check", action="store_true",
                        help="exit 1 unless fanout/crossbeam <= 1.5 on the one-subscriber rows "
                             "and <= 1.3 on the fan10 row")
    args = parser.parse_args()
    if not 0 < args.n1 < args.n2:
        parser.error("need 0 < n1 < n2")

    exe = build(args.features)
    raw = {}
    for case in args.cases:
        i1, i2 = count(exe, case, args.n1), count(exe, case, args.n2)
        per_op = (i2 - i1) / (args.n2 - args.n1)
        print(f"{case}: {i1} / {i2} instructions, {per_op:.1f} per operation", file=sys.stderr)
        # Guards against a loop that callgrind did not see, or did not see whole: every
        # operation runs at least a few instructions, and the count grows with n.
        if i1 < args.n1 or per_op < 1 or abs(i1 / args.n1 - per_op) > 0.2 * per_op:
            sys.exit(f"instructions.py: {case}: {i1} at n={args.n1} and {i2} at n={args.n2} "
                     f"do not scale with n: is `measured_ops` counted?")
        raw[case] = {"n1": args.n1, "n2": args.n2, "ir_n1": i1, "ir_n2": i2, "per_op": per_op}

    dirty = output(["git", "status", "--porcelain", "src"])
    commit = output(["git", "rev-parse", "--short", "HEAD"]) + (" + uncommitted changes" if dirty else "")
    date = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    command = " ".join(["python3", os.path.relpath(os.path.abspath(sys.argv[0]), ROOT), *sys.argv[1:]])
    features = f", features {args.features}" if args.features else ""
    header = (f"`{command}`, {date}, commit {commit}, "
              f"{output(['rustc', '--version'])}{features}")
    print(f"Instructions per operation (callgrind Ir): {header}.\n")
    table = render(raw)
    print(table)
    failed = []
    for name, ours, theirs, _, per, limit, _ in ROWS:
        if ours in raw and theirs in raw:
            ratio = raw[ours]["per_op"] / raw[theirs]["per_op"]
            if ratio > limit:
                failed.append(f"{name}: {ratio:.2f}x, above {limit}x")
    if set(args.cases) == set(CASES):
        os.makedirs(os.path.dirname(SAVED), exist_ok=True)
        with open(SAVED, "w") as f:
            json.dump({"header": header, "table": table, "raw": raw}, f, indent=2)
        print(f"\n(saved to {os.path.relpath(SAVED, ROOT)} for benches/report.py)", file=sys.stderr)
    if args.json:
        print(json.dumps(raw, indent=2))
    if args.check:
        for line in failed:
            print(f"check failed: {line}", file=sys.stderr)
        if failed:
            sys.exit(1)


if __name__ == "__main__":
    main()
