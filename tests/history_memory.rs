//! What retained history costs in memory, counted by a global allocator: publishing to
//! 1,000,000 distinct channels keeps the memory of the bound's channels, not of every channel
//! seen; a channel holding one payload costs the same whatever `per_channel` allows; and the
//! documented figures per retained channel and per retained payload hold. The allocator counts
//! the whole process, so the tests of this binary take turns (`alone`).

#[path = "common/counting_alloc.rs"]
mod counting_alloc;

use std::sync::{Mutex, MutexGuard};

use counting_alloc::live;
use fanout::Broker;

/// The documented memory of retained history (`BrokerBuilder::history`), beside the names
/// and payloads themselves: per retained channel, and per retained payload.
const PER_CHANNEL: usize = 250;
const PER_PAYLOAD: usize = 24;

/// Bytes an `Arc<str>` of `len` bytes allocates: two counts, then the text, padded to 8.
fn arc_str(len: usize) -> usize {
    (16 + len).next_multiple_of(8)
}

/// Held by each test for its whole run, so no other allocates meanwhile.
fn alone() -> MutexGuard<'static, ()> {
    static ALONE: Mutex<()> = Mutex::new(());
    ALONE
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// The channel names the tests publish to: all of one length.
fn channel(i: usize, name: &mut String) -> &str {
    use std::fmt::Write;
    name.clear();
    let _ = write!(name, "sensor.{i:07}");
    name
}

const PAYLOAD: &str = "21.5";

#[test]
fn a_million_distinct_channels_keep_only_the_bound() {
    let _alone = alone();
    const KEPT: usize = 1_000;
    const PER_CHANNEL: usize = 4;
    const CHANNELS: usize = 1_000_000;
    let broker = Broker::<str>::builder().history(PER_CHANNEL, KEPT).build();
    let before = live();
    let mut name = String::new();
    let mut publish = |i: usize| {
        let name = channel(i, &mut name);
        // Each channel gets PER_CHANNEL payloads, so the kept ones are full.
        for _ in 0..PER_CHANNEL {
            broker.publish(name, PAYLOAD);
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

/// Bytes per channel for a broker with `history(per_channel, channels)` after `payloads`
/// publishes to each of `channels` channels, with the names and payloads themselves.
fn bytes_per_channel(per_channel: usize, channels: usize, payloads: usize) -> usize {
    let broker = Broker::<str>::builder()
        .history(per_channel, channels)
        .build();
    let before = live();
    let mut name = String::new();
    for i in 0..channels {
        let name = channel(i, &mut name);
        for _ in 0..payloads {
            broker.publish(name, PAYLOAD);
        }
    }
    let used = usize::try_from(live() - before).expect("publishing allocates");
    assert_eq!(broker.stats().retained_channels, channels);
    used / channels
}

/// The documented bound for a channel of `payloads` payloads, with its name and payloads.
fn documented(payloads: usize) -> usize {
    let name = arc_str(channel(0, &mut String::new()).len());
    PER_CHANNEL + name + payloads * (PER_PAYLOAD + arc_str(PAYLOAD.len()))
}

#[test]
fn a_channel_of_one_payload_costs_the_same_whatever_per_channel_allows() {
    let _alone = alone();
    const CHANNELS: usize = 20_000;
    let costs = [1, 16, 1_000].map(|per_channel| {
        let cost = bytes_per_channel(per_channel, CHANNELS, 1);
        println!("history({per_channel}, _), one payload per channel: {cost} bytes per channel");
        (per_channel, cost)
    });
    let least = costs
        .iter()
        .map(|&(_, cost)| cost)
        .min()
        .unwrap_or_default();
    for (per_channel, cost) in costs {
        assert!(
            cost <= least + least / 10,
            "history({per_channel}, _): {cost} bytes per channel of one payload, against {least}"
        );
        assert!(
            cost <= documented(1),
            "history({per_channel}, _): {cost} bytes per channel of one payload, over the documented {}",
            documented(1)
        );
    }
}

#[test]
fn a_full_channel_costs_what_is_documented_per_payload() {
    let _alone = alone();
    for (per_channel, channels) in [(16, 2_000), (5, 2_000), (100, 200)] {
        let cost = bytes_per_channel(per_channel, channels, per_channel);
        let one = bytes_per_channel(per_channel, channels, 1);
        let per_payload = (cost - one) / (per_channel - 1) - arc_str(PAYLOAD.len());
        println!(
            "history({per_channel}, _), full: {cost} bytes per channel, {per_payload} per payload beside the payload"
        );
        assert!(
            cost <= documented(per_channel),
            "history({per_channel}, _): {cost} bytes per full channel, over the documented {}",
            documented(per_channel)
        );
    }
}
