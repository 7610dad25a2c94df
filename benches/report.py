#!/usr/bin/env python3
"""Writes BENCHMARKS.md and the SVG charts from the last `cargo bench` run.

Reads criterion's results (target/criterion/*/new/{benchmark,estimates}.json) and the
latency and memory benches' JSON (target/fanout-bench/). Every figure comes from that run;
ratios compare rows of the same run; the instruction counts come from `benches/instructions.py`,
run beside it. Usage: `cargo bench --all-features && python3 benches/instructions.py && python3 benches/report.py`.
"""
import datetime
import json
import os
import platform
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CRITERION = os.path.join(ROOT, "target", "criterion")
EXTRA = os.path.join(ROOT, "target", "fanout-bench")


def load_criterion(home=CRITERION):
    """{(group, function, parameter or None): {"ns": mean ns per iteration, "elements": n}},
    from criterion's output directory `home`."""
    results = {}
    for dirpath, _, files in os.walk(home):
        if os.path.basename(dirpath) != "new" or "benchmark.json" not in files:
            continue
        with open(os.path.join(dirpath, "benchmark.json")) as f:
            bench = json.load(f)
        with open(os.path.join(dirpath, "estimates.json")) as f:
            estimates = json.load(f)
        throughput = bench.get("throughput") or {}
        key = (bench["group_id"], bench["function_id"], bench.get("value_str"))
        results[key] = {
            "ns": estimates["mean"]["point_estimate"],
            "elements": throughput.get("Elements"),
        }
    return results


def load_json(name):
    path = os.path.join(EXTRA, name)
    if not os.path.exists(path):
        return None
    with open(path) as f:
        return json.load(f)


def per_element(r):
    return r["ns"] / r["elements"] if r and r.get("elements") else None


def fmt_ns(ns):
    if ns is None:
        return "n/a"
    if ns >= 1e6:
        return f"{ns / 1e6:.2f} ms"
    if ns >= 1e3:
        return f"{ns / 1e3:.2f} µs"
    return f"{ns:.1f} ns"


def rate(r):
    e = per_element(r)
    return None if e is None else 1e9 / e


def fmt_rate(x):
    if x is None:
        return "n/a"
    if x >= 1e6:
        return f"{x / 1e6:.2f} M/s"
    return f"{x / 1e3:.1f} k/s"


def verdict(ok):
    return "**met**" if ok else "**missed**"


def machine():
    cpu = "unknown CPU"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    rustc = subprocess.run(["rustc", "--version"], capture_output=True, text=True).stdout.strip()
    return f"{cpu}, {os.cpu_count()} cores, {platform.system()} {platform.release()}, {rustc}"


def bar_chart(title, unit, groups, path):
    """groups: [(label, [(series, value or None)])]; horizontal bars on a log scale from 10."""
    colors = {"fanout": "#d95f02", "crossbeam_loop": "#7570b3", "crossbeam": "#7570b3",
              "tokio_broadcast": "#1b9e77", "bus": "#e7298a"}
    import math
    values = [v for _, series in groups for _, v in series if v is not None]
    top = math.log10(max(values + [100.0]))
    scale = lambda v: max(1.0, (math.log10(max(v, 10.0)) - 1) / (top - 1) * width)
    bar_h, gap, left, width = 16, 10, 190, 460
    rows = sum(len(s) for _, s in groups)
    height = 50 + rows * (bar_h + 4) + len(groups) * gap + 20
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{left + width + 120}" height="{height}" font-family="sans-serif" font-size="12">',
           f'<text x="10" y="20" font-size="15" font-weight="bold">{title}</text>',
           f'<text x="10" y="38" fill="#555">{unit}, log scale; shorter is faster</text>']
    y = 50
    for label, series in groups:
        for name, value in series:
            out.append(f'<text x="10" y="{y + 12}">{label} · {name}</text>')
            if value is not None:
                w = scale(value)
                out.append(f'<rect x="{left}" y="{y}" width="{w:.1f}" height="{bar_h}" fill="{colors.get(name, "#666")}"/>')
                out.append(f'<text x="{left + w + 5:.1f}" y="{y + 12}">{value:.1f}</text>')
            y += bar_h + 4
        y += gap
    out.append("</svg>")
    with open(path, "w") as f:
        f.write("\n".join(out) + "\n")


def main():
    r = load_criterion()
    if not r:
        sys.exit("no criterion results under target/criterion: run `cargo bench` first")
    get = lambda g, f, p=None: r.get((g, f, p))
    lines = []
    w = lines.append
    now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    w("# Benchmarks")
    w("")
    w(f"Measured {now} on {machine()}.")
    w("Command: `cargo bench --all-features && python3 benches/instructions.py && python3 benches/report.py` (this file and `benches/charts/*.svg` are")
    w("written by the script from that run). Each group runs `fanout` next to its baselines in the")
    w("same run, on the same payload `Arc` and message count, every message consumed by its")
    w("subscriber thread. This is a shared 2-core machine: compare the ratios within a table, not")
    w("absolute times across runs.")
    w("")
    targets = []

    # one_to_one
    w("## one_to_one: 1 publisher thread, 1 subscriber thread")
    w("")
    w("| implementation | per message | throughput | fanout's throughput relative to it |")
    w("|---|---|---|---|")
    fan = get("one_to_one", "fanout")
    for name in ["crossbeam", "fanout", "tokio_broadcast", "bus", "redis_loopback"]:
        x = get("one_to_one", name)
        if x is None:
            w(f"| {name} | skipped | | |")
            continue
        ratio = rate(fan) / rate(x) if fan else None
        w(f"| {name} | {fmt_ns(per_element(x))} | {fmt_rate(rate(x))} | {ratio:.2f}x |")
    w("")
    cb, redis = get("one_to_one", "crossbeam"), get("one_to_one", "redis_loopback")
    if fan and cb:
        x = per_element(fan) / per_element(cb)
        targets.append(("one_to_one at most 1.3x raw crossbeam's time", f"{x:.2f}x", x <= 1.3))
    if fan and redis:
        x = rate(fan) / rate(redis)
        targets.append(("one_to_one at least 100x Redis over loopback", f"{x:.0f}x", x >= 100))

    # halves
    halves = [(side, get("halves", base), get("halves", ours)) for side, base, ours in
              [("publish", "crossbeam_send", "fanout_publish"),
               ("publish through a `Publisher`", "crossbeam_send", "fanout_publisher"),
               ("read", "crossbeam_recv", "fanout_read")]]
    if any(b and o for _, b, o in halves):
        w("### The two halves of one_to_one, each on one thread (`benches/halves.rs`)")
        w("")
        w("| half | raw crossbeam | fanout | fanout / crossbeam |")
        w("|---|---|---|---|")
        for side, b, o in halves:
            if b and o:
                w(f"| {side} | {fmt_ns(per_element(b))} | {fmt_ns(per_element(o))} | {per_element(o) / per_element(b):.2f}x |")
        w("")

    # history
    hist = {name: per_element(get("history", name)) for name in
            ["crossbeam_send", "publish_off", "publish_on", "spread_off", "spread_on",
             "nobody_off", "nobody_on", "two_publishers_off", "two_publishers_on"]}
    if hist["publish_on"] and hist["publish_off"]:
        w("### What retained history costs a publish (`benches/history.rs`, each publisher on one thread, queues unread)")
        w("")
        w(f"History keeps 8 payloads per channel for up to 10,000 channels. Raw crossbeam send: {fmt_ns(hist['crossbeam_send'])}.")
        w("")
        w("| publishes | history off | history on | on - off | on / off | on / crossbeam send |")
        w("|---|---|---|---|---|---|")
        for name, what in [("publish", "one channel, one subscriber"),
                           ("spread", "1,000 channels round robin, one subscriber each"),
                           ("nobody", "1,000 channels nobody subscribes to"),
                           ("two_publishers", "two threads, distinct channels (per publish, wall clock)")]:
            off, on = hist[f"{name}_off"], hist[f"{name}_on"]
            if off and on:
                cb = f"{on / hist['crossbeam_send']:.2f}x" if hist["crossbeam_send"] else "n/a"
                w(f"| {what} | {fmt_ns(off)} | {fmt_ns(on)} | {fmt_ns(on - off)} | {on / off:.2f}x | {cb} |")
        replay = get("history", "replay_psubscribe")
        if replay:
            w("")
            w(f"A `psubscribe` with replay that matches 1,000 retained channels (8,000 replays): {fmt_ns(replay['ns'])}.")
        w("")

    # fan_out
    w("## fan_out: 1 publisher, N subscribers on one channel")
    w("")
    w("Cost per delivery (time / (messages x N)), and fanout's cost relative to each baseline.")
    w("")
    w("| N | crossbeam send loop | fanout | tokio broadcast | bus | fanout / loop | fanout / tokio | fanout / bus |")
    w("|---|---|---|---|---|---|---|---|")
    chart = []
    for n in ["1", "10", "100", "1000"]:
        row = {name: per_element(get("fan_out", name, n)) for name in ["crossbeam_loop", "fanout", "tokio_broadcast", "bus"]}
        if row["fanout"] is None:
            continue
        rel = lambda b: f"{row['fanout'] / row[b]:.2f}x" if row[b] else "n/a"
        w(f"| {n} | {fmt_ns(row['crossbeam_loop'])} | {fmt_ns(row['fanout'])} | {fmt_ns(row['tokio_broadcast'])} | {fmt_ns(row['bus'])} | {rel('crossbeam_loop')} | {rel('tokio_broadcast')} | {rel('bus')} |")
        chart.append((f"N={n}", [(k, v) for k, v in row.items()]))
        if n in ("10", "100", "1000") and row["crossbeam_loop"]:
            x = row["fanout"] / row["crossbeam_loop"]
            targets.append((f"fan_out N={n}: cost per delivery at most 1.2x the raw send loop", f"{x:.2f}x", x <= 1.2))
        if row["tokio_broadcast"]:
            targets.append((f"fan_out N={n}: faster than tokio broadcast", f"{row['fanout'] / row['tokio_broadcast']:.2f}x its time", row["fanout"] < row["tokio_broadcast"]))
        if n in ("10", "100", "1000") and row["bus"]:
            targets.append((f"fan_out N={n}: faster than bus", f"{row['fanout'] / row['bus']:.2f}x its time", row["fanout"] < row["bus"]))
    w("")
    w("![fan_out chart](benches/charts/fan_out.svg)")
    w("")
    bar_chart("fan_out: ns per delivery", "ns per delivery", chart, os.path.join(ROOT, "benches", "charts", "fan_out.svg"))

    # patterns
    w("## patterns: publish while P non-matching patterns exist (plus one that matches)")
    w("")
    w("| P | per publish | relative to P = 0 |")
    w("|---|---|---|")
    base = per_element(get("patterns", "fanout", "0"))
    pchart = []
    for p in ["0", "100", "10000"]:
        x = per_element(get("patterns", "fanout", p))
        if x is None:
            continue
        w(f"| {p} | {fmt_ns(x)} | {x / base:.2f}x |")
        pchart.append((f"P={p}", [("fanout", x)]))
        if p == "10000":
            targets.append(("patterns: 10,000 non-matching patterns within 1.2x of none", f"{x / base:.2f}x", x / base <= 1.2))
    w("")
    w("![patterns chart](benches/charts/patterns.svg)")
    w("")
    bar_chart("patterns: ns per publish", "ns per publish (one matching pattern delivered)", pchart, os.path.join(ROOT, "benches", "charts", "patterns.svg"))
    # patterns_cold
    cold_base = per_element(get("patterns_cold", "fanout", "0"))
    if cold_base:
        w("## patterns_cold: each publish to a channel never published before (no match cache)")
        w("")
        w("20,000 distinct channels per run, P non-matching patterns of three shapes (`metrics.N.*`,")
        w("`*.cpuN`, `?rders.N.*`); the residual row holds 1,000 patterns with no literal byte")
        w("(`[^u][xy]*`), which every channel scans.")
        w("")
        w("| P | per publish | relative to P = 0 |")
        w("|---|---|---|")
        for p, limit in [("0", None), ("10000", 2.0), ("100000", 3.0)]:
            x = per_element(get("patterns_cold", "fanout", p))
            if x is None:
                continue
            w(f"| {p} | {fmt_ns(x)} | {x / cold_base:.2f}x |")
            if limit:
                targets.append((f"patterns_cold: {int(p):,} patterns within {limit:g}x of none", f"{x / cold_base:.2f}x", x / cold_base <= limit))
        x = per_element(get("patterns_cold", "residual", "1000"))
        if x is not None:
            w(f"| 1000 residual (literal-free) | {fmt_ns(x)} | {x / cold_base:.2f}x |")
        w("")
        one = get("pattern_upkeep", "psubscribe_one_more", "100000")
        with_publishers = get("pattern_upkeep", "psubscribe_one_more_with_publishers", "100000")
        drop_all = get("pattern_upkeep", "punsubscribe_all", "100000")
        if one or drop_all:
            w("Keeping the index up to date with 100,000 patterns (`pattern_upkeep` group):")
            w("")
            w("| operation | time |")
            w("|---|---|")
            if one:
                w(f"| `psubscribe` of one more pattern (average) | {fmt_ns(one['ns'])} |")
                targets.append(("pattern_upkeep: psubscribe of one more pattern with 100,000 under 50 µs", fmt_ns(one["ns"]), one["ns"] < 50_000))
            if with_publishers:
                w(f"| the same with 10,000 publishers (`Broker::publisher`), each counted for the new pattern when it may match | {fmt_ns(with_publishers['ns'])} |")
            if drop_all:
                w(f"| `punsubscribe_all` of 100,000 patterns | {fmt_ns(drop_all['ns'])} |")
                targets.append(("pattern_upkeep: punsubscribe_all of 100,000 patterns under 200 ms", fmt_ns(drop_all["ns"]), drop_all["ns"] < 200e6))
            w("")
    w("The matcher on hostile input (`glob` group, a 10,000-byte channel of `a`s):")
    w("")
    w("| pattern | time per match |")
    w("|---|---|")
    for (g, f, p), x in sorted(r.items()):
        if g == "glob":
            w(f"| `{p}` | {fmt_ns(x['ns'])} |")
    w("")

    # many_channels
    w("## many_channels: 100,000 channels, one subscriber each (8 handles), random publishes")
    w("")
    w("| implementation | per publish | relative to the HashMap-of-crossbeam floor |")
    w("|---|---|---|")
    floor = per_element(get("many_channels", "hashmap_of_crossbeam"))
    for name in ["hashmap_of_crossbeam", "fanout"]:
        x = per_element(get("many_channels", name))
        if x is not None:
            w(f"| {name} | {fmt_ns(x)} | {x / floor:.2f}x |")
    w("")

    # contention
    w("## contention: publisher threads, each with its subscriber thread, or into queues read afterwards")
    w("")
    w("| case | total throughput | relative to one publisher (of the same kind) |")
    w("|---|---|---|")
    one = rate(get("contention", "one_publisher"))
    one_unread = rate(get("contention", "one_publisher_unread"))
    for name in ["one_publisher", "two_publishers_distinct", "two_publishers_same", "one_publisher_unread", "two_publishers_distinct_unread"]:
        x = rate(get("contention", name))
        base = one_unread if name.endswith("_unread") else one
        if x is not None and base:
            w(f"| {name} | {fmt_rate(x)} | {x / base:.2f}x |")
        if name == "two_publishers_distinct_unread" and x is not None and base:
            targets.append(("contention: 2 publishers on distinct channels, no reader threads, reach 1.7x one publisher", f"{x / base:.2f}x", x / base >= 1.7))
    w("")

    # bridged (feature `redis`)
    w("## bridged: publishing through Redis on loopback, 1 publisher, 1 subscriber")
    w("")
    w("`cargo bench --features redis --bench bridge`: every message received by a subscriber on")
    w("another connection before the clock stops. `fanout_bridge` is two brokers, each with its")
    w("`Bridge` (as two processes would be), `broker.publish` on one and a handle's `get_message` on")
    w("the other; `redis_crate` and `redis_py` publish and wait for each reply, as `r.publish`")
    w("does; `redis_crate_pipelined` sends 256 `PUBLISH`es per round trip, as the bridge does.")
    w("")
    w("| implementation | per message | throughput | the bridge's throughput relative to it |")
    w("|---|---|---|---|")
    bridge = get("bridged", "fanout_bridge")
    for name in ["fanout_bridge", "fanout_bridge_local_first", "redis_crate", "redis_crate_pipelined", "redis_py"]:
        x = get("bridged", name)
        if x is None:
            w(f"| {name} | not run | | |")
            continue
        ratio = f"{rate(bridge) / rate(x):.2f}x" if bridge else "n/a"
        w(f"| {name} | {fmt_ns(per_element(x))} | {fmt_rate(rate(x))} | {ratio} |")
    w("")

    # overflow
    behind = {c: per_element(get("drop_oldest", "stopped_reader_behind_confirmations", c)) for c in ["0", "20000"]}
    if behind["0"] and behind["20000"]:
        w("## drop_oldest: publishes into a stopped `DropOldest` handle (`benches/overflow.rs`)")
        w("")
        w("4,000 publishes into a handle of capacity 8 that nobody reads, which also holds 0 or")
        w("20,000 unread confirmations (it subscribed to 20,000 other channels).")
        w("")
        w("| unread confirmations | per publish | relative to none |")
        w("|---|---|---|")
        for c in ["0", "20000"]:
            w(f"| {int(c):,} | {fmt_ns(behind[c])} | {behind[c] / behind['0']:.2f}x |")
        x = behind["20000"] / behind["0"]
        targets.append(("drop_oldest: behind 20,000 unread confirmations at most 2x the cost with none", f"{x:.2f}x", x <= 2.0))
        w("")

    # latency
    lat = load_json("latency.json")
    w("## latency (`benches/latency.rs`)")
    w("")
    if lat:
        w(f"{lat['samples']} samples, 50 µs apart. Publish to a subscriber blocked in `listen()`")
        w("(crossbeam: in `recv`), from just before the publish to the reader's wake-up; and a")
        w("publisher blocked on a full `Block` queue of capacity 1 (crossbeam: a `send` blocked on")
        w("`bounded(1)`), from just before the read that makes room to the publisher's return.")
        w("")
        w("| case | implementation | p50 | p99 | p99.9 |")
        w("|---|---|---|---|---|")
        for case, names in [("publish to a waiting reader", ["crossbeam", "fanout"]),
                            ("read that releases a blocked publisher", ["crossbeam_block_wake", "fanout_block_wake"])]:
            for name in names:
                x = lat.get(name)
                if x:
                    w(f"| {case} | {name.replace('_block_wake', '')} | {x['p50_us']:.2f} µs | {x['p99_us']:.2f} µs | {x['p999_us']:.2f} µs |")
        ratio = lat["fanout"]["p99_us"] / lat["crossbeam"]["p99_us"]
        targets.append(("latency: fanout's p99 within 1.5x crossbeam's", f"{ratio:.2f}x", ratio <= 1.5))
    else:
        w("not run")
    w("")

    # instructions
    counted = load_json("instructions.json")
    w("## Instructions per operation (`benches/instructions.py`)")
    w("")
    if counted:
        w("Counted by callgrind, so exact run to run and free of this machine's noise; each case at")
        w("two sizes, the difference divided by the extra operations, single thread, queues read")
        w("afterwards. The `sketch` is the floor of this design (benches/instructions.rs). Run:")
        w(f"{counted['header']}.")
        w("")
        w(counted["table"])
        from instructions import ROWS
        for name, ours, theirs, _, _, limit, _ in ROWS:
            raw = counted["raw"]
            if ours in raw and theirs in raw:
                x = raw[ours]["per_op"] / raw[theirs]["per_op"]
                targets.append((f"counted: {name} at most {limit}x raw crossbeam", f"{x:.2f}x", x <= limit))
    else:
        w("not run (`python3 benches/instructions.py` after the benches writes it)")
    w("")

    # memory
    mem = load_json("memory.json")
    w("## memory (counting global allocator, `benches/memory.rs`)")
    w("")
    if mem:
        w(f"| what | bytes each ({mem['units']:,} of them) |")
        w("|---|---|")
        w(f"| subscription, every one on its own channel | {mem['subscription_distinct']:.1f} |")
        w(f"| subscription, 1,000 handles on the same 1,000 channels | {mem['subscription_shared']:.1f} |")
        w(f"| queued message beyond the (shared) payload | {mem['queued_message']:.1f} |")
        if "pattern_subscription" in mem:
            w(f"| pattern subscription, index included ({mem['patterns']:,} patterns of three shapes on one handle) | {mem['pattern_subscription']:.1f} |")
            w(f"| left per pattern once all are unsubscribed (given back) | {mem['pattern_left']:.1f} |")
        targets.append(("memory: at most 150 bytes per subscription, every one on its own channel", f"{mem['subscription_distinct']:.1f} B", mem["subscription_distinct"] <= 150))
        targets.append(("memory: at most 40 bytes per queued delivery beyond the payload", f"{mem['queued_message']:.1f} B", mem["queued_message"] <= 40))
    else:
        w("not run")
    w("")

    w("## Targets")
    w("")
    w("| target | measured | verdict |")
    w("|---|---|---|")
    for name, measured, ok in targets:
        w(f"| {name} | {measured} | {verdict(ok)} |")
    w("")
    notes = os.path.join(ROOT, "benches", "NOTES.md")
    if os.path.exists(notes):
        with open(notes) as f:
            w(f.read().rstrip())
        w("")
    with open(os.path.join(ROOT, "BENCHMARKS.md"), "w") as f:
        f.write("\n".join(lines))
    print("wrote BENCHMARKS.md and benches/charts/*.svg")
    for name, measured, ok in targets:
        print(("met    " if ok else "MISSED ") + f"{name}: {measured}")


if __name__ == "__main__":
    main()
