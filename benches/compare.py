#!/usr/bin/env python3
"""Side by side: the rows that have a raw-crossbeam baseline, for an older commit and this tree.

"No regression beyond noise" asks whether a change made `fanout` slower against raw crossbeam.
On a shared machine two full runs minutes apart differ by more than that on several rows, with
unchanged code (benches/NOTES.md shows the same binary failing a 5% check against its own
earlier run), so this builds both versions' bench binaries and runs them alternately, several
rounds, each round measuring `fanout` and its crossbeam baseline in the same process. It
prints, for each pair, the median over rounds of fanout's time over the baseline's in each
version, and how much the new ratio differs from the old.

Usage: `python3 benches/compare.py OLD_COMMIT [--rounds N]` from anywhere in the repository.
The old commit is checked out in a worktree under target/compare/ (kept, so a second
comparison reuses its build); results go to target/compare/runs/, never to target/criterion,
which benches/report.py reads. `FANOUT_BENCH_QUICK=1` makes every bench short.
`git worktree remove --force target/compare/<commit>` lets the old tree go.
"""
import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys

sys.dont_write_bytecode = True  # no __pycache__ left in benches/ by the import below
import report  # noqa: E402 (benches/report.py: criterion's results read as it reads them)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
WORK = os.path.join(ROOT, "target", "compare")

# The rows compared, per bench binary, as criterion filters.
FILTERS = {
    "throughput": r"^(one_to_one/(crossbeam|fanout)|fan_out/(crossbeam_loop|fanout)/.*|many_channels/.*)$",
    "halves": r"^halves/.*$",
}

# (what is compared, fanout's row, its baseline's row): rows as "group/function[/parameter]".
PAIRS = [
    ("one_to_one", "one_to_one/fanout", "one_to_one/crossbeam"),
    ("halves publish", "halves/fanout_publish", "halves/crossbeam_send"),
    ("halves read", "halves/fanout_read", "halves/crossbeam_recv"),
    *[
        (f"fan_out N={n}", f"fan_out/fanout/{n}", f"fan_out/crossbeam_loop/{n}")
        for n in (1, 10, 100, 1000)
    ],
    ("many_channels", "many_channels/fanout", "many_channels/hashmap_of_crossbeam"),
]

# How much worse a ratio may get before it counts as a regression (the issues' "within 5%").
TOLERANCE = 0.05


def run(cmd, cwd, env=None, capture=False, log=None):
    """Runs `cmd`; its output is returned (`capture`), appended to `log`, or shown."""
    print("+", " ".join(cmd), file=sys.stderr)
    if log is not None:
        with open(log, "a") as f:
            subprocess.run(cmd, cwd=cwd, env=env, check=True, text=True, stdout=f, stderr=f)
        return None
    out = subprocess.run(cmd, cwd=cwd, env=env, check=True, text=True,
                         stdout=subprocess.PIPE if capture else None)
    return out.stdout


def bench_binaries(tree, target_dir):
    """Builds the tree's benches with every feature, as the full run does: {name: path}."""
    env = dict(os.environ, CARGO_TARGET_DIR=target_dir)
    out = run(["cargo", "bench", "--all-features", "--no-run", "--message-format=json"],
              tree, env, capture=True)
    found = {}
    for line in out.splitlines():
        try:
            msg = json.loads(line)
        except ValueError:
            continue
        if msg.get("reason") == "compiler-artifact" and msg.get("executable"):
            name = msg["target"]["name"]
            if name in FILTERS:
                found[name] = msg["executable"]
    missing = set(FILTERS) - set(found)
    if missing:
        sys.exit(f"compare: no bench binary {sorted(missing)} in {tree}")
    return found


def old_tree(commit):
    """A worktree of `commit` under target/compare/, made once."""
    sha = run(["git", "rev-parse", "--verify", f"{commit}^{{commit}}"], ROOT, capture=True).strip()
    tree = os.path.join(WORK, sha[:12])
    if not os.path.exists(os.path.join(tree, "Cargo.toml")):
        os.makedirs(WORK, exist_ok=True)
        run(["git", "worktree", "add", "--detach", "--force", tree, sha], ROOT)
    return sha[:12], tree


def load_means(home):
    """{row: mean ns per iteration} from one criterion output directory."""
    return {
        "/".join(part for part in key if part): result["ns"]
        for key, result in report.load_criterion(home).items()
    }


def measure(binaries, home):
    """Runs the compared rows of each binary once, into criterion directory `home` (with
    criterion's report in `home`.log)."""
    shutil.rmtree(home, ignore_errors=True)
    os.makedirs(home)
    log = home + ".log"
    open(log, "w").close()
    env = dict(os.environ, CRITERION_HOME=home)
    for name, path in binaries.items():
        run([path, "--bench", "--noplot", FILTERS[name]], ROOT, env, log=log)
    return load_means(home)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("old", help="the commit to compare this tree against")
    parser.add_argument("--rounds", type=int, default=5, help="alternated rounds (default 5)")
    args = parser.parse_args()
    if args.rounds < 1:
        parser.error("--rounds must be at least 1")

    sha, tree = old_tree(args.old)
    sides = {
        "old": bench_binaries(tree, os.path.join(tree, "target")),
        "new": bench_binaries(ROOT, os.path.join(ROOT, "target")),
    }
    # Copied, so that building either tree again cannot swap a binary mid-comparison.
    for side, binaries in sides.items():
        for name, path in binaries.items():
            copy = os.path.join(WORK, "bin", f"{side}-{name}")
            os.makedirs(os.path.dirname(copy), exist_ok=True)
            shutil.copy2(path, copy)
            binaries[name] = copy

    ratios = {side: {label: [] for label, _, _ in PAIRS} for side in sides}
    times = {side: {} for side in sides}
    for round_ in range(args.rounds):
        # Alternate which side goes first, so a slow stretch of the machine is shared.
        order = ["old", "new"] if round_ % 2 == 0 else ["new", "old"]
        for side in order:
            print(f"== round {round_ + 1}/{args.rounds}: {side}", file=sys.stderr)
            means = measure(sides[side], os.path.join(WORK, "runs", f"{side}-{round_}"))
            for row, ns in means.items():
                times[side].setdefault(row, []).append(ns)
            for label, subject, baseline in PAIRS:
                if subject in means and baseline in means:
                    ratios[side][label].append(means[subject] / means[baseline])

    print(f"\nfanout's time over raw crossbeam's, median of {args.rounds} alternated rounds: "
          f"old = {sha}, new = this tree")
    print("\n| row | old | new | new / old | per round (old; new) |")
    print("|---|---|---|---|---|")
    worse = []
    for label, _, _ in PAIRS:
        old, new = ratios["old"][label], ratios["new"][label]
        if not old or not new:
            print(f"| {label} | n/a | n/a | n/a | not measured in a run |")
            continue
        change = statistics.median(new) / statistics.median(old)
        if change > 1 + TOLERANCE:
            worse.append(label)
        rounds = "; ".join(" ".join(f"{r:.2f}" for r in side) for side in (old, new))
        print(f"| {label} | {statistics.median(old):.2f}x | {statistics.median(new):.2f}x "
              f"| {change:.3f} | {rounds} |")
    print("\n| row | old median | new median | new / old |")
    print("|---|---|---|---|")
    for row in sorted(set(times["old"]) & set(times["new"])):
        old, new = statistics.median(times["old"][row]), statistics.median(times["new"][row])
        print(f"| {row} | {old / 1e6:.3f} ms | {new / 1e6:.3f} ms | {new / old:.3f} |")
    if worse:
        print(f"\nmore than {TOLERANCE:.0%} worse against crossbeam: {', '.join(worse)}")
        sys.exit(1)
    print(f"\nevery ratio within {TOLERANCE:.0%} of the old one (or better)")


if __name__ == "__main__":
    main()
