#!/usr/bin/env python3
"""Checks each package's `rust-version` against what its README command really builds.

No older toolchain can be installed here, so the check reads the `rust-version` every built
crate declares (`cargo metadata`) over the crates each command builds for this machine
(`cargo tree`), and fails when a package claims less than the highest of them:

- `fanout` (Cargo.toml): `cargo run --example quickstart`, the library with its default
  features and the doc tests' dev-dependencies;
- `fanout-dev` (dev/Cargo.toml): `cargo test --all-features`, everything.

fanout's own code is held to its `rust-version` by clippy's `incompatible_msrv` lint (standard
library items newer than the claim), which `cargo clippy -- -D warnings` turns into an error.

Crates that declare no `rust-version` are listed; they cannot be checked this way.
"""
import json
import subprocess
import sys


def cargo(*args):
    return subprocess.run(["cargo", *args], check=True, capture_output=True, text=True).stdout


def version(text):
    """`1.71` and `1.71.0` alike, as (1, 71, 0)."""
    parts = [int(part) for part in text.split(".")]
    return tuple(parts + [0] * (3 - len(parts)))


def built(*tree_args, edges="normal,build,dev"):
    """(name, version) of every crate `cargo tree` says these arguments build (for this host:
    `cargo tree` without `--target` shows the host's dependencies only)."""
    out = cargo("tree", "-e", edges, "--prefix", "none",
                "--format", "{p}", *tree_args)
    crates = set()
    for line in out.splitlines():
        parts = line.split()
        if len(parts) >= 2 and parts[1].startswith("v"):
            crates.add((parts[0], parts[1][1:]))
    return crates


def main():
    metadata = json.loads(cargo("metadata", "--format-version", "1", "--all-features"))
    declared = {(p["name"], p["version"]): p.get("rust_version") for p in metadata["packages"]}
    checks = [
        ("fanout", "cargo run --example quickstart", built("-p", "fanout")),
        ("fanout-dev", "cargo test --all-features", built("--workspace", "--all-features")),
    ]
    failed = False
    for package, command, crates in checks:
        claimed = next(v for (n, _), v in declared.items() if n == package)
        others = [(declared.get(c), c) for c in crates if c[0] not in ("fanout", "fanout-dev")]
        needed = max((version(v), f"{n} {ver}") for v, (n, ver) in others if v)
        unknown = sorted(f"{n} {ver}" for v, (n, ver) in others if not v)
        need = ".".join(map(str, needed[0][:2])) if needed[0][2] == 0 else ".".join(map(str, needed[0]))
        print(f"{command}: {len(crates)} crates; the highest rust-version is {need} ({needed[1]});"
              f" {package} claims {claimed}")
        if unknown:
            print(f"  crates that declare none: {', '.join(unknown)}")
        if claimed is None or version(claimed) < needed[0]:
            print(f"  FAIL: {package}'s rust-version must be at least {need}")
            failed = True
        elif version(claimed) > needed[0]:
            print(f"  FAIL: {package} claims more than its command needs; lower it to {need}")
            failed = True
    # Told, not checked: what the optional features need (README and Cargo.toml say it).
    crates = built("-p", "fanout", "--all-features", edges="normal,build")
    needed = max((version(declared[c]), f"{c[0]} {c[1]}") for c in crates if declared.get(c))
    print(f"fanout with every feature (async, redis, cluster, json, tls) needs {'.'.join(map(str, needed[0][:2]))}"
          f" ({needed[1]})")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
