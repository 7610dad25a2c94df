//! Memory follows the subscriptions: once channels and patterns are gone, so is the memory
//! they took (counted by a global allocator; this file holds one test so nothing else runs
//! beside it in this binary).

#[path = "common/counting_alloc.rs"]
mod counting_alloc;

use std::time::Duration;

use counting_alloc::live;
use fanout::Broker;

#[test]
fn unsubscribed_channels_and_patterns_give_their_memory_back() {
    let broker = Broker::<str>::new();
    let sub = broker.pubsub();
    let other = broker.pubsub();
    sub.subscribe(["warm-up"]);
    sub.unsubscribe(["warm-up"]);
    while sub.get_message(Duration::ZERO).is_some() {}
    let before = live();

    let names: Vec<String> = (0..20_000).map(|i| format!("channel.{i}")).collect();
    let patterns: Vec<String> = (0..2_000).map(|i| format!("pattern.{i}.*")).collect();
    let names_bytes = live() - before;
    for _ in 0..3 {
        sub.subscribe(&names);
        other.subscribe(&names[..1000]);
        sub.psubscribe(&patterns);
        let peak = live() - before - names_bytes;
        assert_eq!(broker.channels(None).len(), names.len());
        sub.unsubscribe_all();
        sub.punsubscribe_all();
        other.unsubscribe(&names[..1000]);
        while sub.get_message(Duration::ZERO).is_some() {}
        while other.get_message(Duration::ZERO).is_some() {}
        assert!(broker.channels(None).is_empty());
        let left = live() - before - names_bytes;
        println!("peak {peak} bytes, left {left} bytes");
        // What stays is a few empty slots per stripe, not a share of the peak.
        assert!(
            left < peak / 100,
            "{left} of {peak} bytes stayed after every subscription was gone"
        );
    }
}
