//! One delivery per publish (`PubSubBuilder::one_delivery_per_publish`, Redis's proposed
//! NOPUBDUP) where it meets full queues and concurrent (un)subscriptions. The rule itself is
//! checked against the Redis model with duplicates removed in `model.rs`.

mod common;

use std::sync::atomic::{AtomicBool, Ordering};

use common::drain;
use fanout::{Broker, Message, Overflow};

#[test]
fn a_full_queue_is_reported_once_and_no_pattern_delivery_slips_in() {
    let broker = Broker::<u64>::new();
    let once = broker
        .pubsub_builder()
        .capacity(1)
        .overflow(Overflow::Block)
        .one_delivery_per_publish(true)
        .build();
    once.subscribe("a");
    once.psubscribe(["a*", "*"]);
    assert_eq!(broker.try_publish("a", 1).unwrap(), 1);
    let err = broker.try_publish("a", 2).unwrap_err();
    assert_eq!((err.delivered(), err.full()), (0, &[once.id()][..]));
    let kinds: Vec<_> = drain(&once).iter().map(Message::kind).collect();
    assert_eq!(
        kinds,
        ["subscribe", "psubscribe", "psubscribe", "message", "lagged"]
    );
    assert_eq!(once.stats().dropped, 1);
}

#[test]
fn other_handles_still_get_every_matching_subscription() {
    let broker = Broker::<u64>::new();
    let once = broker
        .pubsub_builder()
        .one_delivery_per_publish(true)
        .build();
    let redis = broker.pubsub();
    for sub in [&once, &redis] {
        sub.subscribe("a");
        sub.psubscribe(["a*", "*"]);
    }
    assert_eq!(broker.publish("a", 1), 1 + 3);
}

/// While a publisher publishes to `a`, other threads keep subscribing and unsubscribing the
/// handle's channel `a` and one of its patterns; `*` stays. Every publish must reach the
/// handle exactly once, whichever subscription carries it.
#[test]
fn every_publish_arrives_once_while_subscriptions_come_and_go() {
    for _ in 0..common::race_rounds() {
        publishes_arrive_once_while_subscriptions_come_and_go(200);
    }
}

fn publishes_arrive_once_while_subscriptions_come_and_go(publishes: u64) {
    let broker = Broker::<u64>::new();
    let once = broker
        .pubsub_builder()
        .one_delivery_per_publish(true)
        .build();
    once.psubscribe("*");
    let done = AtomicBool::new(false);
    std::thread::scope(|s| {
        s.spawn(|| {
            while !done.load(Ordering::Relaxed) {
                once.subscribe("a");
                once.unsubscribe("a");
            }
        });
        s.spawn(|| {
            while !done.load(Ordering::Relaxed) {
                once.psubscribe("a*");
                once.punsubscribe("a*");
            }
        });
        for i in 0..publishes {
            assert_eq!(broker.publish("a", i), 1, "publish {i}");
        }
        done.store(true, Ordering::Relaxed);
    });
    let got: Vec<u64> = drain(&once)
        .iter()
        .filter_map(|m| m.data().copied())
        .collect();
    assert_eq!(got, (0..publishes).collect::<Vec<_>>());
}

/// A publish waiting for room through one subscription, which is then removed: another of
/// the handle's subscriptions that matched the publish stands in, so the publish still
/// arrives once (without the option, that subscription would have had its own delivery).
#[test]
fn a_publish_waiting_for_room_falls_back_to_another_matching_subscription() {
    for (channel_too, remove) in [(true, "a"), (false, "a*")] {
        let broker = Broker::<u64>::new();
        let once = broker
            .pubsub_builder()
            .capacity(1)
            .overflow(Overflow::Block)
            .one_delivery_per_publish(true)
            .ignore_subscribe_messages(true)
            .build();
        if channel_too {
            once.subscribe("a");
        }
        once.psubscribe(["a*", "*"]);
        assert_eq!(broker.try_publish("a", 1).unwrap(), 1);
        std::thread::scope(|s| {
            let waiting = s.spawn(|| broker.publish("a", 2));
            std::thread::sleep(std::time::Duration::from_millis(50)); // it waits for room
            if channel_too {
                once.unsubscribe(remove);
            } else {
                once.punsubscribe(remove);
            }
            let first = once.listen().next().unwrap();
            assert_eq!(first.data(), Some(&1));
            assert_eq!(waiting.join().unwrap(), 1, "removing {remove}");
        });
        let second = once.listen().next().unwrap();
        assert_eq!(second.kind(), "pmessage");
        let expected = if channel_too { "a*" } else { "*" };
        assert_eq!(
            (second.pattern(), second.data()),
            (Some(expected), Some(&2))
        );
        let stats = once.stats();
        assert_eq!((stats.delivered, stats.dropped), (2, 0));
        assert_eq!(broker.stats().delivered, 2);
    }
}

/// With replay too, a new subscription replays what is retained for it even when another of
/// the handle's subscriptions matches: a delivery of that other subscription may still be
/// waiting for room, and lost if that subscription then goes. Here the waiting publish is
/// replayed, and the removed subscription's delivery of it is cut: it arrives exactly once.
#[test]
fn with_replay_a_waiting_publish_whose_subscription_goes_is_still_read() {
    let broker = Broker::<u64>::builder().history(10, 100).build();
    let h = broker
        .pubsub_builder()
        .capacity(1)
        .overflow(Overflow::Block)
        .one_delivery_per_publish(true)
        .replay(true)
        .ignore_subscribe_messages(true)
        .build();
    h.subscribe("a");
    broker.try_publish("a", 1).unwrap();
    std::thread::scope(|s| {
        let waiting = s.spawn(|| broker.publish("a", 2));
        std::thread::sleep(std::time::Duration::from_millis(50)); // it waits for room
        h.psubscribe("a*"); // replays 1 and 2
        h.unsubscribe("a"); // the waiting delivery's only subscription at its publish
        assert_eq!(waiting.join().unwrap(), 0);
    });
    let read: Vec<(&str, u64)> = drain(&h)
        .iter()
        .filter_map(|m| Some((m.kind(), *m.data()?)))
        .collect();
    assert_eq!(read, [("message", 1), ("replay", 1), ("replay", 2)]);
}
