//! Removing one subscription among many costs the same as among a few: large removals that
//! were quadratic (40,000 patterns, 40,000 handles on one channel, 40,000 full handles)
//! finish in a bounded time. The bounds are generous (seconds where the work takes
//! milliseconds in release); `cargo bench --bench scale` gives the figures.

use std::time::{Duration, Instant};

use fanout::{Broker, Overflow};

/// Far above what the linear work takes on a loaded 2-core machine (the target is
/// 100 ms in release), and far below what the quadratic code took: in release 15 s for
/// 40,000 patterns, 0.48 s for 40,000 handles, 0.7 s for `publish_timeout` over 40,000.
const BOUND: Duration = if cfg!(debug_assertions) {
    Duration::from_secs(3)
} else {
    Duration::from_millis(250)
};

fn timed(what: &str, f: impl FnOnce()) {
    let start = Instant::now();
    f();
    let took = start.elapsed();
    eprintln!("{what}: {took:?}");
    assert!(took < BOUND, "{what} took {took:?}");
}

#[test]
fn punsubscribe_all_of_40000_patterns_is_linear() {
    let broker = Broker::<str>::new();
    let sub = broker
        .pubsub_builder()
        .ignore_subscribe_messages(true)
        .build();
    let patterns: Vec<String> = (0..40_000).map(|i| format!("metrics.{i}.*")).collect();
    sub.psubscribe(&patterns);
    timed("punsubscribe_all of 40,000 patterns", || {
        sub.punsubscribe_all()
    });
    assert_eq!(broker.numpat(), 0);
    sub.psubscribe(&patterns);
    timed("dropping a handle with 40,000 patterns", || drop(sub));
    assert_eq!(broker.numpat(), 0);
}

#[test]
fn dropping_40000_handles_on_one_channel_is_linear() {
    let broker = Broker::<str>::new();
    let handles: Vec<_> = (0..40_000)
        .map(|_| {
            let sub = broker.pubsub();
            sub.subscribe(["room"]);
            sub
        })
        .collect();
    assert_eq!(broker.numsub("room"), 40_000);
    timed("dropping 40,000 handles on one channel", || drop(handles));
    assert_eq!(broker.numsub("room"), 0);
    // The same, patterns: 40,000 handles on one pattern, dropped oldest first.
    let handles: Vec<_> = (0..40_000)
        .map(|_| {
            let sub = broker.pubsub();
            sub.psubscribe(["room.*"]);
            sub
        })
        .collect();
    timed("dropping 40,000 handles on one pattern", || drop(handles));
    assert_eq!(broker.numpat(), 0);
}

#[test]
fn publish_timeout_zero_over_40000_full_block_handles_is_linear() {
    let broker = Broker::<u64>::builder()
        .capacity(1)
        .overflow(Overflow::Block)
        .build();
    let handles: Vec<_> = (0..40_000)
        .map(|_| {
            let sub = broker.pubsub();
            sub.subscribe(["q"]);
            sub
        })
        .collect();
    assert_eq!(broker.publish("q", 0), 40_000);
    timed("publish_timeout(0) over 40,000 full handles", || {
        let error = broker
            .publish_timeout("q", 1, Duration::ZERO)
            .expect_err("every handle is full");
        assert_eq!((error.delivered(), error.full().len()), (0, 40_000));
    });
    drop(handles);
}
