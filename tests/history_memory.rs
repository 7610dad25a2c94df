//! Retained history stays within its bound: publishing to 1,000,000 distinct channels keeps
//! the memory of the bound's channels, not of every channel seen (counted by a global
//! allocator; this file holds one test so nothing else runs beside it in this binary).

#[path = "common/counting_alloc.rs"]
mod counting_alloc;

use counting_alloc::live;
use fanout::Broker;

#[test]
fn a_million_distinct_channels_keep_only_the_bound() {
    const KEPT: usize = 1_000;
    const PER_CHANNEL: usize = 4;
    const CHANNELS: usize = 1_000_000;
    let broker = Broker::<str>::builder().history(PER_CHANNEL, KEPT).build();
    let before = live();
    let mut name = String::new();
    let mut publish = |i: usize| {
        use std::fmt::Write;
        name.clear();
        let _ = write!(name, "sensor.{i:07}");
        // Each channel gets PER_CHANNEL payloads, so the kept ones are full.
        for _ in 0..PER_CHANNEL {
            broker.publish(&name, "21.5");
        }
    };
    // Past the bound, the retained channels' map has grown once to hold its removals and
    // insertions; from then on nothing grows.
    (0..CHANNELS / 10).for_each(&mut publish);
    let at_bound = live() - before;
    (CHANNELS / 10..CHANNELS).for_each(&mut publish);
    let at_end = live() - before;
    let stats = broker.stats();
    println!(
        "{at_bound} bytes once the bound was reached, {at_end} after {CHANNELS} channels: {} bytes per retained channel with {PER_CHANNEL} payloads",
        at_end / KEPT as isize
    );
    assert_eq!(stats.retained_channels, KEPT);
    assert_eq!(stats.history_evicted, (CHANNELS - KEPT) as u64);
    assert_eq!(broker.retained(None).len(), KEPT);
    assert!(
        at_end <= at_bound + at_bound / 10,
        "grew from {at_bound} to {at_end} bytes past the bound"
    );
    // Per retained channel: the map and recency entries, its name, and 4 payloads (each
    // an `Arc<str>` of 4 bytes, 24 allocated) with their 24-byte slots.
    assert!(
        at_end < (KEPT * 600) as isize,
        "{at_end} bytes for {KEPT} channels"
    );
    drop(broker);
    assert!(
        live() - before < 1_000,
        "{} bytes left after the broker went",
        live() - before
    );
}
