//! Ordering under concurrency: each publisher's messages arrive in publish order, and
//! (un)subscribe calls are clean cuts, with confirmations on the right side of them.

mod common;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use common::drain;
use fanout::{Broker, Message, PubSub};

/// Payload: (publisher, sequence number).
type Seq = (usize, u64);

#[test]
fn each_publisher_is_seen_in_publish_order() {
    const PUBLISHERS: usize = 4;
    const PER_PUBLISHER: u64 = 20_000;
    let broker = Broker::<Seq>::new();
    let sub = broker.pubsub();
    sub.subscribe(["orders"]);
    sub.psubscribe(["ord*"]);
    drain(&sub);
    std::thread::scope(|s| {
        for p in 0..PUBLISHERS {
            let broker = &broker;
            s.spawn(move || {
                for i in 0..PER_PUBLISHER {
                    assert_eq!(broker.publish("orders", (p, i)), 2);
                }
            });
        }
        // [publisher][0 = message, 1 = pmessage]: the next sequence number expected.
        let mut next = [[0u64; 2]; PUBLISHERS];
        let total = PUBLISHERS as u64 * PER_PUBLISHER * 2;
        for m in sub.listen().take(total as usize) {
            let (slot, &(p, i)) = match &m {
                Message::Message { payload, .. } => (0, &**payload),
                Message::PMessage { payload, .. } => (1, &**payload),
                other => panic!("unexpected {other:?}"),
            };
            assert_eq!(i, next[p][slot], "publisher {p} out of order");
            next[p][slot] += 1;
        }
        assert!(next.iter().flatten().all(|&n| n == PER_PUBLISHER));
    });
}

/// Runs a publisher on `channel` while `cut` subscribes or unsubscribes `sub`; returns the
/// number of the first publish that started after `cut` returned, and the queue.
fn publish_across(
    broker: &Broker<u64>,
    sub: &PubSub<u64>,
    channel: &str,
    cut: impl FnOnce(),
) -> (u64, Vec<Message<u64>>) {
    let started = AtomicU64::new(0);
    let stop = AtomicBool::new(false);
    let first_after = std::thread::scope(|s| {
        s.spawn(|| {
            let mut i = 0;
            while !stop.load(Ordering::SeqCst) || i < 200 {
                started.store(i, Ordering::SeqCst);
                broker.publish(channel, i);
                i += 1;
            }
        });
        while started.load(Ordering::SeqCst) < 100 {
            std::hint::spin_loop();
        }
        cut();
        // Every publish numbered above this one started after `cut` returned.
        let first_after = started.load(Ordering::SeqCst) + 1;
        while started.load(Ordering::SeqCst) < first_after + 100 {
            std::hint::spin_loop();
        }
        stop.store(true, Ordering::SeqCst);
        first_after
    });
    (first_after, drain(sub))
}

fn payloads(queue: &[Message<u64>]) -> Vec<u64> {
    queue
        .iter()
        .filter_map(|m| m.payload().map(|p| **p))
        .collect()
}

#[test]
fn subscribe_is_a_clean_cut() {
    for kind in ["channel", "pattern"] {
        for _ in 0..20 {
            let broker = Broker::<u64>::new();
            let sub = broker.pubsub();
            let (first_after, queue) = publish_across(&broker, &sub, "feed", || match kind {
                "channel" => sub.subscribe(["feed"]),
                _ => sub.psubscribe(["fe*"]),
            });
            // The confirmation precedes every delivery it lets through ...
            assert!(queue[0].is_confirmation(), "{kind}: {:?}", queue[0]);
            // ... and deliveries run without a gap from the cut to the end.
            let got = payloads(&queue);
            assert_eq!(got.len(), queue.len() - 1);
            assert!(
                got[0] <= first_after,
                "{kind}: publish {first_after} was missed"
            );
            assert!(
                got.windows(2).all(|w| w[1] == w[0] + 1),
                "{kind}: gap in {got:?}"
            );
            assert!(
                got[got.len() - 1] >= first_after + 100,
                "{kind}: the tail is missing"
            );
        }
    }
}

#[test]
fn unsubscribe_is_a_clean_cut() {
    for kind in ["channel", "pattern"] {
        for _ in 0..20 {
            let broker = Broker::<u64>::new();
            let sub = broker.pubsub();
            match kind {
                "channel" => sub.subscribe(["feed"]),
                _ => sub.psubscribe(["fe*"]),
            }
            let (first_after, queue) = publish_across(&broker, &sub, "feed", || match kind {
                "channel" => sub.unsubscribe(["feed"]),
                _ => sub.punsubscribe(["fe*"]),
            });
            // Nothing after the cut arrives, and the confirmation is the very last item.
            let last = queue.last().unwrap();
            assert_eq!(
                last.kind(),
                if kind == "channel" {
                    "unsubscribe"
                } else {
                    "punsubscribe"
                }
            );
            let got = payloads(&queue);
            assert!(
                got.iter().all(|&i| i < first_after),
                "{kind}: {first_after} or later arrived"
            );
            assert!(
                got.windows(2).all(|w| w[1] == w[0] + 1),
                "{kind}: gap in {got:?}"
            );
        }
    }
}

#[test]
fn concurrent_subscribes_on_one_handle_keep_counts_in_queue_order() {
    let broker = Broker::<str>::new();
    let sub = broker.pubsub();
    std::thread::scope(|s| {
        for t in 0..4 {
            let sub = &sub;
            s.spawn(move || {
                for i in 0..500 {
                    sub.subscribe([format!("t{t}.{i}")]);
                }
            });
        }
    });
    let counts: Vec<usize> = drain(&sub).iter().filter_map(|m| m.count()).collect();
    assert_eq!(counts, (1..=2000).collect::<Vec<_>>());
}
