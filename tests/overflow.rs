//! Each overflow policy at its edge: a reader that stops keeps memory bounded, the others keep
//! receiving, `Block` publishers are released, and `Lagged` counts are exact.

mod common;

use std::sync::mpsc;
use std::thread;
use std::time::Duration;

use common::drain;
use fanout::{Broker, Disconnected, Message, Overflow, PubSub};

/// Fails the test (instead of hanging it) when `f` does not finish within 10 s.
fn within_10s<R: Send + 'static>(f: impl FnOnce() -> R + Send + 'static) -> impl FnOnce() -> R {
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        let _ = tx.send(f());
    });
    move || {
        rx.recv_timeout(Duration::from_secs(10))
            .expect("did not finish within 10 s")
    }
}

fn payloads(messages: &[Message<u64>]) -> Vec<u64> {
    messages
        .iter()
        .filter_map(|m| m.payload().map(|p| **p))
        .collect()
}

fn lagged(messages: &[Message<u64>]) -> Vec<u64> {
    messages
        .iter()
        .filter_map(|m| match m {
            Message::Lagged { missed } => Some(*missed),
            _ => None,
        })
        .collect()
}

fn bounded(broker: &Broker<u64>, capacity: usize, overflow: Overflow) -> PubSub<u64> {
    let sub = broker
        .pubsub_builder()
        .capacity(capacity)
        .overflow(overflow)
        .build();
    sub.subscribe(["ch"]);
    sub
}

#[test]
fn a_reader_that_stops_keeps_memory_bounded_under_every_dropping_policy() {
    for overflow in [
        Overflow::DropNewest,
        Overflow::DropOldest,
        Overflow::Disconnect,
    ] {
        let broker = Broker::<u64>::new();
        let stuck = bounded(&broker, 64, overflow);
        let steady = broker.pubsub();
        steady.subscribe(["ch"]);
        for i in 0..100_000 {
            broker.publish("ch", i);
            if i % 10_000 == 0 {
                // The confirmation and at most 64 deliveries (and one notice).
                assert!(
                    stuck.stats().queued <= 66,
                    "{overflow:?}: {:?}",
                    stuck.stats()
                );
            }
        }
        assert!(
            stuck.stats().queued <= 66,
            "{overflow:?}: {:?}",
            stuck.stats()
        );
        assert_eq!(
            payloads(&drain(&steady)),
            (0..100_000).collect::<Vec<_>>(),
            "{overflow:?}"
        );
    }
}

#[test]
fn drop_newest_reports_the_exact_gap_before_the_next_delivery() {
    let broker = Broker::<u64>::new();
    let sub = bounded(&broker, 2, Overflow::DropNewest);
    for i in 0..5 {
        broker.publish("ch", i); // 0 and 1 fit; 2, 3, 4 are dropped
    }
    assert_eq!(sub.get_message(Duration::ZERO).unwrap().kind(), "subscribe");
    assert_eq!(payloads(&[sub.get_message(Duration::ZERO).unwrap()]), [0]);
    assert_eq!(broker.publish("ch", 5), 1);
    let rest = drain(&sub);
    assert_eq!(rest.len(), 3);
    assert_eq!(payloads(&rest[..1]), [1]);
    assert_eq!(rest[1], Message::Lagged { missed: 3 });
    assert_eq!(payloads(&rest[2..]), [5]);
    let stats = sub.stats();
    assert_eq!((stats.delivered, stats.dropped, stats.lagged), (3, 3, 1));
}

#[test]
fn drop_newest_notice_comes_once_the_queue_is_read_even_without_new_messages() {
    let broker = Broker::<u64>::new();
    let sub = bounded(&broker, 1, Overflow::DropNewest);
    for i in 0..10 {
        broker.publish("ch", i);
    }
    let got = drain(&sub);
    assert_eq!(payloads(&got), [0]);
    assert_eq!(lagged(&got), [9]);
    assert_eq!(got.last(), Some(&Message::Lagged { missed: 9 }));
}

#[test]
fn drop_oldest_keeps_the_newest_and_reports_the_gap_where_it_was() {
    let broker = Broker::<u64>::new();
    let sub = bounded(&broker, 8, Overflow::DropOldest);
    assert_eq!(broker.publish("ch", 0), 1);
    for i in 1..1000 {
        assert_eq!(broker.publish("ch", i), 1, "DropOldest always makes room");
    }
    let got = drain(&sub);
    assert_eq!(
        got[0].kind(),
        "subscribe",
        "confirmations are never dropped"
    );
    assert_eq!(got[1], Message::Lagged { missed: 992 });
    assert_eq!(payloads(&got), (992..1000).collect::<Vec<_>>());
    let stats = sub.stats();
    assert_eq!(
        (stats.delivered, stats.dropped, stats.lagged),
        (1000, 992, 1)
    );
}

#[test]
fn notices_sit_exactly_where_the_gaps_are() {
    for overflow in [Overflow::DropOldest, Overflow::DropNewest] {
        notices_sit_exactly_where_the_gaps_are_for(overflow);
    }
}

fn notices_sit_exactly_where_the_gaps_are_for(overflow: Overflow) {
    let broker = Broker::<u64>::new();
    let sub = bounded(&broker, 16, overflow);
    // Every value received is the previous one plus one plus the notices read in between.
    let mut next = 0;
    let mut check = |m: Message<u64>| match m {
        Message::Lagged { missed } => next += missed,
        Message::Message { payload, .. } => {
            assert_eq!(*payload, next);
            next += 1;
        }
        _ => {}
    };
    for i in 0..10_000u64 {
        broker.publish("ch", i);
        if i % 7 == 0 {
            for _ in 0..3 {
                sub.get_message(Duration::ZERO).map(&mut check);
            }
        }
    }
    drain(&sub).into_iter().for_each(&mut check);
    assert_eq!(
        next, 10_000,
        "{overflow:?}: every message is received or reported"
    );
    let stats = sub.stats();
    assert!(stats.dropped > 0);
    let lost_after_queueing = if overflow == Overflow::DropOldest {
        stats.dropped
    } else {
        0
    };
    assert_eq!(
        stats.delivered + stats.dropped - lost_after_queueing,
        10_000,
        "{overflow:?}"
    );
}

#[test]
fn drop_oldest_makes_room_in_batches_of_an_eighth() {
    let broker = Broker::<u64>::new();
    let sub = bounded(&broker, 64, Overflow::DropOldest);
    for i in 0..65 {
        broker.publish("ch", i);
    }
    // The 65th delivery evicted 8 (64 / 8) to get back to 56, then joined them.
    let got = drain(&sub);
    assert_eq!(lagged(&got), [8]);
    assert_eq!(payloads(&got), (8..65).collect::<Vec<_>>());
}

#[test]
fn disconnect_ends_the_handle_after_what_it_queued() {
    let broker = Broker::<u64>::new();
    let sub = bounded(&broker, 4, Overflow::Disconnect);
    sub.psubscribe(["c*"]);
    let other = broker.pubsub();
    other.subscribe(["ch"]);
    assert_eq!(broker.publish("ch", 0), 3); // channel + pattern on `sub`, and `other`
    assert_eq!(broker.publish("ch", 1), 3);
    assert_eq!(
        broker.publish("ch", 2),
        1,
        "the full handle is disconnected, not counted"
    );
    assert!(!sub.is_subscribed());
    assert_eq!(sub.stats().disconnected, Some(Disconnected::Overflow));
    assert_eq!(broker.numsub("ch"), 1);
    assert_eq!(broker.numpat(), 0);
    assert_eq!(broker.publish("ch", 3), 1);
    let kinds: Vec<_> = sub.listen().map(|m| m.kind()).collect();
    assert_eq!(
        kinds,
        [
            "subscribe",
            "psubscribe",
            "message",
            "pmessage",
            "message",
            "pmessage"
        ]
    );
    sub.subscribe(["again"]);
    assert!(
        drain(&sub).is_empty(),
        "a disconnected handle takes no new subscriptions"
    );
    assert_eq!(payloads(&drain(&other)), [0, 1, 2, 3]);
}

#[test]
fn confirmations_never_count_against_capacity_nor_get_dropped() {
    for overflow in [
        Overflow::Block,
        Overflow::DropNewest,
        Overflow::DropOldest,
        Overflow::Disconnect,
    ] {
        let broker = Broker::<u64>::new();
        let sub = broker
            .pubsub_builder()
            .capacity(1)
            .overflow(overflow)
            .build();
        let names: Vec<String> = (0..100).map(|i| format!("c{i}")).collect();
        sub.subscribe(&names);
        assert_eq!(broker.try_publish("c7", 7).ok(), Some(1), "{overflow:?}");
        sub.unsubscribe(&names);
        let got = drain(&sub);
        assert_eq!(
            got.iter().filter(|m| m.is_confirmation()).count(),
            200,
            "{overflow:?}"
        );
        assert_eq!(payloads(&got), [7]);
    }
}

#[test]
fn block_waits_for_room_and_others_keep_receiving() {
    let broker = Broker::<u64>::new();
    let slow = bounded(&broker, 2, Overflow::Block);
    let fast = broker.pubsub();
    fast.subscribe(["ch", "elsewhere"]);
    broker.publish("ch", 0);
    broker.publish("ch", 1);
    let publisher = {
        let broker = broker.clone();
        within_10s(move || broker.publish("ch", 2))
    };
    // The waiting publisher holds no broker lock: other work goes on meanwhile.
    thread::sleep(Duration::from_millis(50));
    assert_eq!(broker.publish("elsewhere", 99), 1);
    let extra = broker.pubsub();
    extra.subscribe(["more"]);
    extra.unsubscribe(["more"]);
    assert_eq!(broker.numsub("ch"), 2);
    let fast_got = payloads(&drain(&fast));
    assert!(fast_got.starts_with(&[0, 1]));
    // Reading one delivery makes room; the publisher finishes and counts both handles.
    assert_eq!(
        slow.get_message(Duration::ZERO).unwrap().kind(),
        "subscribe"
    );
    assert_eq!(payloads(&[slow.get_message(Duration::ZERO).unwrap()]), [0]);
    assert_eq!(publisher(), 2);
    assert_eq!(payloads(&drain(&slow)), [1, 2]);
}

#[test]
fn block_publisher_is_released_by_unsubscribe_drop_close_and_broker_close() {
    for release in [
        "unsubscribe",
        "punsubscribe",
        "drop",
        "close",
        "broker close",
    ] {
        let broker = Broker::<u64>::new();
        let slow = bounded(&broker, 2, Overflow::Block);
        slow.psubscribe(["c*"]);
        broker.publish("ch", 0); // a message and a pmessage fill the queue
        let publisher = {
            let broker = broker.clone();
            within_10s(move || broker.publish("ch", 1))
        };
        thread::sleep(Duration::from_millis(20));
        match release {
            "unsubscribe" => {
                slow.unsubscribe(["ch"]);
                // Still waiting for the pattern delivery, which stays subscribed.
                thread::sleep(Duration::from_millis(20));
                slow.punsubscribe(["c*"]);
            }
            "punsubscribe" => {
                slow.punsubscribe(["c*"]);
                thread::sleep(Duration::from_millis(20));
                slow.unsubscribe(["ch"]);
            }
            "drop" => drop(slow),
            "close" => slow.close(),
            _ => broker.close(),
        }
        assert_eq!(publisher(), 0, "released by {release}");
    }
}

/// The select recipe documented on `PubSub::receiver`: wait with `Select::ready`, read with
/// `get_message(ZERO)`. The read that makes room releases a publisher waiting under `Block`.
/// (Items received straight from the raw receiver are taken away from the handle and make no
/// room: only the handle's reads count what leaves its queue.)
#[test]
fn block_publisher_is_released_by_a_select_reader() {
    let broker = Broker::<u64>::new();
    let slow = bounded(&broker, 1, Overflow::Block);
    broker.publish("ch", 0);
    let publisher = {
        let broker = broker.clone();
        within_10s(move || broker.publish("ch", 1))
    };
    thread::sleep(Duration::from_millis(20));
    let mut select = crossbeam_channel::Select::new();
    select.recv(slow.receiver());
    let mut read = Vec::new();
    while payloads(&read) != [0, 1] {
        select.ready();
        read.extend(std::iter::from_fn(|| slow.get_message(Duration::ZERO)));
    }
    assert_eq!(publisher(), 1);
    assert_eq!(read[0].kind(), "subscribe");
}

#[test]
fn try_publish_and_publish_timeout_report_full_handles_and_give_the_payload_back() {
    let broker = Broker::<u64>::new();
    let slow = bounded(&broker, 1, Overflow::Block);
    let newest = bounded(&broker, 1, Overflow::DropNewest);
    let oldest = bounded(&broker, 1, Overflow::DropOldest);
    assert_eq!(broker.try_publish("ch", 0).unwrap(), 3);
    let err = broker.try_publish("ch", 1).unwrap_err();
    assert_eq!(err.delivered(), 1, "DropOldest made room");
    assert_eq!(err.full(), [slow.id(), newest.id()]);
    assert_eq!(
        err.to_string(),
        "2 subscriber queue(s) full (delivered to 1)"
    );
    assert_eq!(*err.into_inner(), 1);
    let err = broker
        .publish_timeout("ch", 2, Duration::from_millis(30))
        .unwrap_err();
    assert_eq!(err.full(), [slow.id(), newest.id()]);
    for sub in [&slow, &newest] {
        let got = drain(sub);
        assert_eq!(payloads(&got), [0]);
        assert_eq!(lagged(&got), [2], "each refused delivery is reported");
    }
    assert_eq!(payloads(&drain(&oldest)), [2]);
    assert_eq!(broker.try_publish("ch", 3).unwrap(), 3);
}

#[test]
fn publish_timeout_delivers_when_room_appears_in_time() {
    let broker = Broker::<u64>::new();
    let slow = bounded(&broker, 1, Overflow::Block);
    broker.publish("ch", 0);
    thread::scope(|s| {
        s.spawn(|| {
            thread::sleep(Duration::from_millis(30));
            drain(&slow);
        });
        assert_eq!(
            broker
                .publish_timeout("ch", 1, Duration::from_secs(10))
                .unwrap(),
            1
        );
    });
}

#[test]
fn capacity_zero_is_a_rendezvous() {
    let broker = Broker::<u64>::new();
    let sub = bounded(&broker, 0, Overflow::DropNewest);
    assert_eq!(broker.publish("ch", 0), 0, "nobody is waiting: dropped");
    assert_eq!(sub.get_message(Duration::ZERO).unwrap().kind(), "subscribe");
    assert_eq!(
        sub.get_message(Duration::ZERO),
        Some(Message::Lagged { missed: 1 })
    );
    thread::scope(|s| {
        let reader = s.spawn(|| loop {
            match sub.get_message(Duration::from_secs(10)) {
                Some(Message::Message { payload, .. }) => return *payload,
                Some(_) => continue, // notices for the misses before it waited
                None => panic!("nothing arrived"),
            }
        });
        // Publish until the reader has one: only a delivery to a waiting reader is queued.
        let mut sent = 1;
        while !reader.is_finished() {
            broker.publish("ch", sent);
            sent += 1;
            thread::sleep(Duration::from_millis(1));
        }
        let got = reader.join().unwrap();
        assert!((1..sent).contains(&got));
    });
    assert_eq!(sub.stats().delivered, 1);

    let block = Broker::<u64>::new();
    let sub = bounded(&block, 0, Overflow::Block);
    sub.get_message(Duration::ZERO); // the confirmation
    let publisher = {
        let block = block.clone();
        within_10s(move || block.publish("ch", 7))
    };
    thread::sleep(Duration::from_millis(20));
    let got = sub.get_message(Duration::from_secs(10)).unwrap();
    assert_eq!(payloads(&[got]), [7]);
    assert_eq!(publisher(), 1);
}

#[test]
fn broker_defaults_apply_and_handles_can_override_them() {
    let broker = Broker::<u64>::builder()
        .capacity(4)
        .overflow(Overflow::DropNewest)
        .build();
    let default = broker.pubsub();
    let own = broker
        .pubsub_builder()
        .capacity(2)
        .overflow(Overflow::DropOldest)
        .build();
    let unbounded = broker.pubsub_builder().unbounded().build();
    assert_eq!(
        (default.capacity(), default.overflow()),
        (Some(4), Some(Overflow::DropNewest))
    );
    assert_eq!(
        (own.capacity(), own.overflow()),
        (Some(2), Some(Overflow::DropOldest))
    );
    assert_eq!((unbounded.capacity(), unbounded.overflow()), (None, None));
    assert_eq!(Broker::<u64>::new().pubsub().capacity(), None);
    assert_eq!(
        Broker::<u64>::builder()
            .capacity(1)
            .build()
            .pubsub()
            .overflow(),
        Some(Overflow::Block)
    );
}

/// A `DropOldest` eviction puts each `Lagged` notice exactly where its deliveries were, even
/// when confirmations sit between the evicted and the kept ones (it once put the notice after
/// them: `[Subscribe c, Subscribe x, Lagged 1, 1]`).
#[test]
fn drop_oldest_puts_each_notice_where_its_deliveries_were_between_confirmations() {
    let broker = Broker::<u64>::new();
    let sub = broker
        .pubsub_builder()
        .capacity(2)
        .overflow(Overflow::DropOldest)
        .build();
    sub.subscribe(["c"]);
    broker.publish("c", 0);
    sub.subscribe(["x"]);
    broker.publish("c", 1);
    broker.publish("c", 2); // full: evicts 0, which sat before `Subscribe x`
    let got = drain(&sub);
    assert_eq!(
        got,
        [
            Message::Subscribe {
                channel: "c".into(),
                count: 1
            },
            Message::Lagged { missed: 1 },
            Message::Subscribe {
                channel: "x".into(),
                count: 2
            },
            Message::Message {
                channel: "c".into(),
                payload: 1.into()
            },
            Message::Message {
                channel: "c".into(),
                payload: 2.into()
            },
        ]
    );
    assert_eq!((sub.stats().dropped, sub.stats().lagged), (1, 1));

    // Two evicted runs with a confirmation between them: one notice for each run.
    let sub = broker
        .pubsub_builder()
        .capacity(8)
        .overflow(Overflow::DropOldest)
        .build();
    sub.subscribe(["d"]);
    broker.publish("d", 0);
    sub.subscribe(["y"]);
    for i in 1..8 {
        broker.publish("d", i);
    }
    broker.publish("d", 8); // full: evicts one (8 / 8): 0
    broker.publish("d", 9); // full again: evicts 1
    let kinds: Vec<String> = drain(&sub)
        .iter()
        .map(|m| match m {
            Message::Lagged { missed } => format!("lagged {missed}"),
            m => match m.payload() {
                Some(p) => p.to_string(),
                None => m.kind().to_string(),
            },
        })
        .collect();
    assert_eq!(
        kinds,
        [
            "subscribe",
            "lagged 1",
            "subscribe",
            "lagged 1",
            "2",
            "3",
            "4",
            "5",
            "6",
            "7",
            "8",
            "9"
        ]
    );
    let stats = sub.stats();
    assert_eq!((stats.dropped, stats.lagged), (2, 2));
}
