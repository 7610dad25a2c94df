//! What `publish` delivers and counts: channel subscribers first, then one delivery per
//! matching pattern per subscriber, payloads shared, never copied.

mod common;

use std::sync::Arc;

use common::drain;
use fanout::{Broker, Disconnected, Message};

#[test]
fn channel_and_matching_pattern_on_one_handle_count_two() {
    let broker = Broker::<str>::new();
    let sub = broker.pubsub();
    sub.subscribe(["news"]);
    sub.psubscribe(["n*"]);
    drain(&sub);
    assert_eq!(broker.publish("news", "hi"), 2);
    assert_eq!(
        drain(&sub),
        [
            Message::Message {
                channel: "news".into(),
                payload: "hi".into()
            },
            Message::PMessage {
                pattern: "n*".into(),
                channel: "news".into(),
                payload: "hi".into()
            },
        ]
    );
}

#[test]
fn two_matching_patterns_give_two_pmessages() {
    let broker = Broker::<str>::new();
    let sub = broker.pubsub();
    sub.psubscribe(["n*", "*s"]);
    drain(&sub);
    assert_eq!(broker.publish("news", "hi"), 2);
    let mut patterns: Vec<_> = drain(&sub)
        .iter()
        .map(|m| m.pattern().unwrap().to_string())
        .collect();
    patterns.sort();
    assert_eq!(patterns, ["*s", "n*"]);
}

#[test]
fn exact_deliveries_come_before_pattern_deliveries_across_handles() {
    let broker = Broker::<str>::new();
    let by_pattern = broker.pubsub();
    by_pattern.psubscribe(["*"]);
    let by_channel = broker.pubsub();
    by_channel.subscribe(["c"]);
    drain(&by_pattern);
    drain(&by_channel);
    for round in 0..200 {
        std::thread::scope(|s| {
            // Wakes on the pattern delivery; by then the exact delivery of the same publish
            // must already sit in the other handle's queue.
            let watcher = s.spawn(|| {
                let m = by_pattern.listen().next().unwrap();
                (m.kind(), by_channel.receiver().len())
            });
            assert_eq!(broker.publish("c", "x"), 2);
            assert_eq!(watcher.join().unwrap(), ("pmessage", 1), "round {round}");
        });
        assert_eq!(drain(&by_channel).len(), 1);
    }
}

#[test]
fn every_subscriber_gets_one_message_in_subscription_order_count() {
    let broker = Broker::<str>::new();
    let subs: Vec<_> = (0..10).map(|_| broker.pubsub()).collect();
    for sub in &subs {
        sub.subscribe(["all"]);
    }
    assert_eq!(broker.publish("all", "x"), 10);
    for sub in &subs {
        assert_eq!(drain(sub).len(), 2, "confirmation and one message");
    }
}

#[test]
fn two_handles_on_one_pattern_each_get_a_pmessage() {
    let broker = Broker::<str>::new();
    let (a, b) = (broker.pubsub(), broker.pubsub());
    a.psubscribe(["foo*"]);
    b.psubscribe(["foo*"]);
    assert_eq!(broker.numpat(), 1);
    assert_eq!(broker.publish("foobar", "x"), 2);
}

#[test]
fn publishing_to_nobody_returns_zero_and_keeps_nothing() {
    let broker = Broker::<str>::new();
    let sub = broker.pubsub();
    sub.subscribe(["other"]);
    sub.psubscribe(["x*"]);
    drain(&sub);
    assert_eq!(broker.publish("nobody", "lost"), 0);
    assert!(drain(&sub).is_empty());
    assert_eq!(broker.channels(None), ["other"]);
}

#[test]
fn payload_is_shared_not_copied() {
    let broker = Broker::<[u8]>::new();
    let (a, b) = (broker.pubsub(), broker.pubsub());
    a.subscribe(["bytes"]);
    b.psubscribe(["b*"]);
    drain(&a);
    drain(&b);
    let payload: Arc<[u8]> = Arc::from(vec![1u8, 2, 3]);
    assert_eq!(broker.publish("bytes", payload.clone()), 2);
    for sub in [&a, &b] {
        let got = drain(sub);
        assert!(Arc::ptr_eq(got[0].payload().unwrap(), &payload));
    }
}

#[test]
fn sized_payloads_work_too() {
    #[derive(Debug, PartialEq)]
    struct Order {
        id: u32,
    }
    let broker = Broker::<Order>::new();
    let sub = broker.pubsub();
    sub.subscribe(["orders"]);
    broker.publish("orders", Order { id: 7 });
    let got = sub.listen().nth(1).unwrap();
    assert_eq!(got.payload().map(|o| o.id), Some(7));
}

#[test]
fn dropping_a_handle_removes_all_its_subscriptions_at_once() {
    let broker = Broker::<str>::new();
    let stay = broker.pubsub();
    stay.subscribe(["shared"]);
    let leave = broker.pubsub();
    leave.subscribe(["shared", "only-mine"]);
    leave.psubscribe(["p*"]);
    assert_eq!(broker.publish("shared", "x"), 2);
    drop(leave);
    assert_eq!(broker.publish("shared", "x"), 1);
    assert_eq!(broker.publish("only-mine", "x"), 0);
    assert_eq!(broker.publish("pp", "x"), 0);
    assert_eq!(broker.channels(None), ["shared"]);
    assert_eq!(broker.numpat(), 0);
}

#[test]
fn handles_work_while_a_broker_clone_lives_and_end_after_the_last() {
    let broker = Broker::<str>::new();
    let publisher = broker.clone();
    let sub = broker.pubsub();
    sub.subscribe(["a"]);
    drop(broker);
    assert_eq!(publisher.publish("a", "x"), 1);
    sub.subscribe(["b"]);
    drop(publisher);
    sub.subscribe(["c"]); // nothing can publish to it: does nothing
    let kinds: Vec<_> = sub.listen().map(|m| m.kind()).collect();
    assert_eq!(kinds, ["subscribe", "message", "subscribe"]);
    assert!(sub.is_closed());
    assert_eq!(sub.stats().disconnected, Some(Disconnected::BrokerDropped));
}

#[test]
fn message_accessors_follow_redis_types() {
    let broker = Broker::<str>::new();
    let sub = broker.pubsub();
    sub.subscribe(["c"]);
    sub.psubscribe(["c*"]);
    broker.publish("c", "p");
    sub.unsubscribe(["c"]);
    sub.punsubscribe(["c*"]);
    let got: Vec<_> = sub.listen().collect();
    let view: Vec<_> = got
        .iter()
        .map(|m| {
            (
                m.kind(),
                m.channel(),
                m.pattern(),
                m.payload().map(|p| &**p),
                m.count(),
            )
        })
        .collect();
    assert_eq!(
        view,
        [
            ("subscribe", Some("c"), None, None, Some(1)),
            ("psubscribe", None, Some("c*"), None, Some(2)),
            ("message", Some("c"), None, Some("p"), None),
            ("pmessage", Some("c"), Some("c*"), Some("p"), None),
            ("unsubscribe", Some("c"), None, None, Some(1)),
            ("punsubscribe", None, Some("c*"), None, Some(0)),
        ]
    );
    assert!(got[0].is_confirmation() && !got[2].is_confirmation());
    assert_eq!(got[3].clone(), got[3]);
}

/// The payload a handle reads is the publisher's own `Arc`, for every subscriber, through a
/// channel and through patterns: one shared allocation, never copied.
#[test]
fn every_delivery_carries_the_publishers_arc() {
    let broker = Broker::<[u8]>::new();
    let (a, b) = (broker.pubsub(), broker.pubsub());
    a.subscribe(["bytes"]);
    b.subscribe(["bytes"]);
    b.psubscribe(["by*", "b*"]);
    drain(&a);
    drain(&b);
    let payload: Arc<[u8]> = Arc::from(&b"shared"[..]);
    assert_eq!(broker.publish("bytes", payload.clone()), 4);
    let received: Vec<Message<[u8]>> = drain(&a).into_iter().chain(drain(&b)).collect();
    assert_eq!(received.len(), 4);
    for message in &received {
        assert!(
            Arc::ptr_eq(message.payload().unwrap(), &payload),
            "{}",
            message.kind()
        );
    }
    drop(received);
    assert_eq!(
        Arc::strong_count(&payload),
        1,
        "nothing kept a copy of the count"
    );
}
