//! Memory, counted by a global allocator: bytes per (channel, subscriber) subscription with
//! 1,000,000 subscriptions, and bytes per queued message beyond the payload (every message
//! shares one payload `Arc`, so what is counted is the broker's own cost).
//!
//! Prints the figures and writes them to `target/fanout-bench/memory.json` for
//! `benches/report.py`. Run: `cargo bench --bench memory`.

#[path = "common/mod.rs"]
mod common;

#[path = "../tests/common/counting_alloc.rs"]
mod counting_alloc;

use std::sync::Arc;

use fanout::Broker;

/// Bytes allocated while `f` builds something, per `units`, with the thing still alive.
fn measure<R>(units: usize, f: impl FnOnce() -> R) -> (f64, R) {
    let before = counting_alloc::live();
    let kept = f();
    let after = counting_alloc::live();
    ((after - before) as f64 / units as f64, kept)
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let total = common::size(1_000_000, 100_000);
    let names: Vec<String> = (0..total).map(|i| format!("channel.{i:07}")).collect();

    // Every subscription on its own channel: one handle, `total` channels.
    let broker = Broker::<str>::new();
    let (distinct, kept) = measure(total, || {
        let sub = broker.pubsub();
        sub.subscribe(&names);
        while sub.get_message(std::time::Duration::ZERO).is_some() {}
        sub
    });
    drop(kept);

    // Shared channels: 1,000 handles on the same 1,000 channels.
    let side = (total as f64).sqrt() as usize;
    let broker = Broker::<str>::new();
    let (shared, kept) = measure(side * side, || {
        (0..side)
            .map(|_| {
                let sub = broker.pubsub();
                sub.subscribe(&names[..side]);
                while sub.get_message(std::time::Duration::ZERO).is_some() {}
                sub
            })
            .collect::<Vec<_>>()
    });
    drop(kept);

    // Queued messages: one handle that does not read, one shared payload.
    let broker = Broker::<str>::new();
    let sub = broker.pubsub();
    sub.subscribe(["queue"]);
    let payload: Arc<str> = Arc::from("payload");
    let (queued, ()) = measure(total, || {
        for _ in 0..total {
            broker.publish("queue", payload.clone());
        }
    });
    assert_eq!(sub.stats().queued, total + 1);

    // Patterns, with the index over them: 100,000 of three shapes on one handle; then what is
    // left once they are all unsubscribed (the index gives its memory back).
    let patterns = common::size(100_000, 10_000);
    let texts: Vec<String> = (0..patterns).map(common::idle_pattern).collect();
    let broker = Broker::<str>::new();
    let before = counting_alloc::live();
    let (per_pattern, sub) = measure(patterns, || {
        let sub = broker.pubsub();
        sub.psubscribe(&texts);
        while sub.get_message(std::time::Duration::ZERO).is_some() {}
        sub
    });
    sub.punsubscribe_all();
    while sub.get_message(std::time::Duration::ZERO).is_some() {}
    let left = (counting_alloc::live() - before) as f64 / patterns as f64;
    drop(sub);

    println!("memory ({total} subscriptions / queued messages)");
    println!("  bytes per subscription, distinct channels: {distinct:.1}");
    println!("  bytes per subscription, {side} handles x {side} channels: {shared:.1}");
    println!("  bytes per queued message beyond the payload: {queued:.1}");
    println!(
        "  bytes per pattern subscription, index included ({patterns} patterns): {per_pattern:.1}"
    );
    println!("  bytes per pattern left after unsubscribing them all: {left:.1}");
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/fanout-bench");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("memory.json"),
        format!("{{\"units\": {total}, \"subscription_distinct\": {distinct:.1}, \"subscription_shared\": {shared:.1}, \"queued_message\": {queued:.1}, \"patterns\": {patterns}, \"pattern_subscription\": {per_pattern:.1}, \"pattern_left\": {left:.1}}}\n"),
    )
    .unwrap();
}
