//! `channels`, `numsub` and `numpat` answer as PUBSUB CHANNELS, NUMSUB and NUMPAT do, and
//! entries go away with their last subscriber.

use fanout::Broker;

#[test]
fn channels_are_sorted_and_only_exact_subscriptions_count() {
    let broker = Broker::<str>::new();
    let a = broker.pubsub();
    a.subscribe(["zeta", "alpha", "mid"]);
    a.psubscribe(["pattern-only*"]);
    let b = broker.pubsub();
    b.subscribe(["alpha"]);
    assert_eq!(broker.channels(None), ["alpha", "mid", "zeta"]);
    assert_eq!(broker.channels(Some("*a")), ["alpha", "zeta"]);
    assert_eq!(broker.channels(Some("nothing*")), Vec::<String>::new());
}

#[test]
fn numsub_counts_exact_subscribers_only() {
    let broker = Broker::<str>::new();
    let (a, b, c) = (broker.pubsub(), broker.pubsub(), broker.pubsub());
    a.subscribe(["x"]);
    b.subscribe(["x", "x"]);
    c.psubscribe(["x", "*"]);
    assert_eq!(broker.numsub("x"), 2);
    assert_eq!(broker.numsub("unknown"), 0);
}

#[test]
fn numpat_counts_unique_patterns() {
    let broker = Broker::<str>::new();
    let (a, b) = (broker.pubsub(), broker.pubsub());
    a.psubscribe(["foo*", "bar*"]);
    b.psubscribe(["foo*", "fo[o]*"]);
    assert_eq!(broker.numpat(), 3);
    a.punsubscribe(["foo*"]);
    assert_eq!(broker.numpat(), 3, "b still holds foo*");
    drop(b);
    assert_eq!(broker.numpat(), 1);
}

#[test]
fn entries_disappear_with_their_last_subscriber() {
    let broker = Broker::<str>::new();
    let (a, b) = (broker.pubsub(), broker.pubsub());
    a.subscribe(["shared", "a-only"]);
    b.subscribe(["shared"]);
    a.unsubscribe(["a-only"]);
    assert_eq!(broker.channels(None), ["shared"]);
    a.unsubscribe(["shared"]);
    assert_eq!(broker.channels(None), ["shared"]);
    drop(b);
    assert!(broker.channels(None).is_empty());
    assert_eq!(format!("{broker:?}"), "Broker { channels: 0, patterns: 0 }");
}

#[test]
fn many_short_lived_channels_leave_nothing_behind() {
    let broker = Broker::<str>::new();
    let sub = broker.pubsub();
    for round in 0..10 {
        let names: Vec<String> = (0..10_000).map(|i| format!("r{round}.{i}")).collect();
        sub.subscribe(&names);
        assert_eq!(broker.channels(None).len(), 10_000);
        sub.unsubscribe(&names);
        assert!(broker.channels(None).is_empty());
    }
}
