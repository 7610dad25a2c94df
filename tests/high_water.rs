//! The warning before loss: a `HighWater` notice once per crossing of the mark, where it
//! happened, before the first loss under `Disconnect` and `DropOldest`, never counted against
//! capacity; and the peak queue length in the stats.

mod common;

use std::time::Duration;

use common::drain;
use fanout::{Broker, Message, Overflow, PubSub};

fn handle(broker: &Broker<u64>, capacity: usize, overflow: Overflow, mark: usize) -> PubSub<u64> {
    broker
        .pubsub_builder()
        .capacity(capacity)
        .overflow(overflow)
        .high_water(mark)
        .ignore_subscribe_messages(true)
        .build()
}

fn kinds(messages: &[Message<u64>]) -> Vec<&'static str> {
    messages.iter().map(Message::kind).collect()
}

#[test]
fn the_notice_follows_the_delivery_that_reached_the_mark_once_per_crossing() {
    let broker = Broker::<u64>::new();
    let sub = handle(&broker, 8, Overflow::Block, 4);
    sub.subscribe("a");
    for i in 0..6 {
        assert_eq!(broker.publish("a", i), 1);
    }
    let read = drain(&sub);
    assert_eq!(
        kinds(&read),
        [
            "message",
            "message",
            "message",
            "message",
            "high_water",
            "message",
            "message"
        ]
    );
    assert_eq!(read[4], Message::HighWater { queued: 4 });
    let stats = sub.stats();
    assert_eq!((stats.peak_queued, stats.high_water), (6, 1));
}

#[test]
fn it_is_armed_again_only_below_half_the_mark() {
    let broker = Broker::<u64>::new();
    let sub = handle(&broker, 8, Overflow::Block, 4);
    sub.subscribe("a");
    let publish = |n: u64| (0..n).for_each(|i| assert_eq!(broker.publish("a", i), 1));
    let read_n = |n: usize| {
        (0..n)
            .filter_map(|_| sub.get_message(Duration::ZERO))
            .count()
    };
    publish(4); // 4 queued: the notice
    assert_eq!(read_n(3), 3); // 1 queued (and the notice): 1 < 4 / 2, armed again
    publish(2); // 3 queued: no notice yet
    assert_eq!(sub.stats().high_water, 1);
    publish(1); // 4 queued: the second notice
    assert_eq!(sub.stats().high_water, 2);
    // Queue: message, notice, message x 3, notice.
    assert_eq!(read_n(3), 3); // 2 deliveries left: not below half the mark
    publish(2); // 4 again: no notice, it was not armed
    assert_eq!(sub.stats().high_water, 2);
    assert_eq!(sub.stats().peak_queued, 4);
}

#[test]
fn under_disconnect_the_notice_is_read_before_the_queue_ends() {
    let broker = Broker::<u64>::new();
    let sub = handle(&broker, 4, Overflow::Disconnect, 4);
    sub.subscribe("a");
    for i in 0..5 {
        broker.publish("a", i);
    }
    assert!(sub.is_closed());
    let read: Vec<_> = sub.listen().collect();
    assert_eq!(
        kinds(&read),
        ["message", "message", "message", "message", "high_water"]
    );
}

#[test]
fn under_drop_oldest_the_notice_is_read_before_the_lag_it_warned_of() {
    let broker = Broker::<u64>::new();
    let sub = handle(&broker, 8, Overflow::DropOldest, 6);
    sub.subscribe("a");
    for i in 0..9 {
        assert_eq!(broker.publish("a", i), 1); // the 9th evicts the 1st
    }
    let read = drain(&sub);
    assert_eq!(read[0], Message::HighWater { queued: 6 });
    assert_eq!(read[1], Message::Lagged { missed: 1 });
    let payloads: Vec<u64> = read.iter().filter_map(|m| m.data().copied()).collect();
    assert_eq!(payloads, (1..9).collect::<Vec<_>>());
}

#[test]
fn the_notice_never_counts_against_capacity() {
    let broker = Broker::<u64>::new();
    let sub = handle(&broker, 2, Overflow::DropNewest, 2);
    sub.subscribe("a");
    assert_eq!(broker.publish("a", 1), 1);
    assert_eq!(broker.publish("a", 2), 1); // reaches the mark: the notice, outside the bound
    assert_eq!(broker.publish("a", 3), 0);
    let read = drain(&sub);
    assert_eq!(kinds(&read), ["message", "message", "high_water", "lagged"]);
}

#[test]
fn a_mark_beyond_reach_is_clamped_and_unbounded_queues_have_none() {
    let broker = Broker::<u64>::new();
    assert_eq!(
        handle(&broker, 3, Overflow::Block, 10).high_water(),
        Some(3)
    );
    assert_eq!(handle(&broker, 3, Overflow::Block, 0).high_water(), Some(1));
    assert_eq!(handle(&broker, 0, Overflow::Block, 1).high_water(), None);
    let unbounded = broker.pubsub_builder().high_water(1).build();
    unbounded.subscribe("a");
    broker.publish("a", 1);
    assert_eq!(unbounded.high_water(), None);
    assert_eq!(kinds(&drain(&unbounded)), ["subscribe", "message"]);
    assert_eq!(unbounded.stats().peak_queued, 0);
}

/// A publisher floods a slow reader; in read order, a `HighWater` notice comes before the
/// first `Lagged` (under `DropOldest`) or before the end (under `Disconnect`).
#[test]
fn under_concurrent_publishes_the_warning_comes_first() {
    let mut losses = 0;
    for round in 0..common::race_rounds() / 4 {
        for overflow in [Overflow::DropOldest, Overflow::Disconnect] {
            let broker = Broker::<u64>::new();
            let sub = handle(&broker, 16, overflow, 12);
            sub.subscribe("a");
            let read: Vec<Message<u64>> = std::thread::scope(|s| {
                s.spawn(|| {
                    for i in 0..500 {
                        broker.publish("a", i);
                    }
                    broker.close(); // ends a DropOldest reader too
                });
                let mut read = Vec::new();
                for m in sub.listen_forever() {
                    if round % 2 == 0 {
                        std::thread::yield_now(); // a slow reader
                    }
                    read.push(m);
                }
                read
            });
            let first_warning = read.iter().position(|m| m.kind() == "high_water");
            let first_loss = read.iter().position(|m| m.kind() == "lagged");
            let stats = sub.stats();
            if stats.dropped > 0 {
                losses += 1;
                let warning = first_warning.expect("a loss with no warning");
                if let Some(loss) = first_loss {
                    assert!(
                        warning < loss,
                        "{overflow:?}: warning at {warning}, loss at {loss}"
                    );
                }
            }
            assert!(stats.peak_queued <= 16);
        }
    }
    assert!(
        losses > 0,
        "no round lost anything: the test proved nothing"
    );
}

/// A stopped reader under `DropOldest` keeps one warning and one merged `Lagged` notice,
/// not one of each per eviction (evictions do not re-arm the warning).
#[test]
fn a_stopped_reader_keeps_one_warning() {
    for capacity in [1, 2, 8] {
        let broker = Broker::<u64>::new();
        let sub = handle(&broker, capacity, Overflow::DropOldest, 1);
        sub.subscribe("a");
        for i in 0..1_000 {
            broker.publish("a", i);
        }
        let stats = sub.stats();
        assert_eq!(stats.high_water, 1, "capacity {capacity}");
        assert!(
            stats.queued <= capacity + 3,
            "capacity {capacity}: {} items queued",
            stats.queued
        );
        let read = drain(&sub);
        assert_eq!(kinds(&read)[..2], ["high_water", "lagged"]);
        assert_eq!(
            read[1],
            Message::Lagged {
                missed: stats.dropped
            }
        );
    }
}
