//! Races on a bounded queue's exact count: publishers claiming places, readers giving them
//! back and waking the publishers that wait, evictions under `DropOldest`, a rendezvous, and
//! a subscription removed under a waiting publisher. Each interleaving is repeated
//! `common::race_rounds()` times (1,000 in release builds).

mod common;

use std::thread;
use std::time::Duration;

use fanout::{Broker, Message, Overflow, PubSub};

/// A message numbered by its publisher: `(publisher, n)`.
type Seq = (u32, u32);

const PER_PUBLISHER: u32 = 40;

fn bounded(broker: &Broker<Seq>, capacity: usize, overflow: Overflow) -> PubSub<Seq> {
    let sub = broker
        .pubsub_builder()
        .capacity(capacity)
        .overflow(overflow)
        .ignore_subscribe_messages(true)
        .build();
    sub.subscribe("ch");
    sub
}

/// Publishes `PER_PUBLISHER` messages as publisher `id`, each with `publish`.
fn publisher(broker: &Broker<Seq>, id: u32) -> thread::JoinHandle<usize> {
    let broker = broker.clone();
    thread::spawn(move || {
        (0..PER_PUBLISHER)
            .map(|n| broker.publish("ch", (id, n)))
            .sum()
    })
}

/// Reads until `done(read so far)`, failing the test instead of hanging when nothing comes
/// for 10 s.
fn read_until(sub: &PubSub<Seq>, done: impl Fn(&[Message<Seq>]) -> bool) -> Vec<Message<Seq>> {
    let mut read = Vec::new();
    while !done(&read) {
        let message = sub.get_message(Duration::from_secs(10));
        read.push(message.expect("a publisher or a reader was never woken"));
    }
    read
}

fn payloads(read: &[Message<Seq>]) -> Vec<Seq> {
    read.iter()
        .filter_map(|m| m.payload().map(|p| **p))
        .collect()
}

/// Each publisher's messages, as received, are in its order.
fn assert_in_order(received: &[Seq]) {
    for id in 0..2 {
        let mine: Vec<u32> = received.iter().filter(|m| m.0 == id).map(|m| m.1).collect();
        assert!(
            mine.windows(2).all(|w| w[0] < w[1]),
            "publisher {id}: {mine:?}"
        );
    }
}

/// Two publishers block on a queue of one place while a reader takes deliveries: each read
/// that makes room releases a waiting publisher, so everything arrives, once, in order.
#[test]
fn blocked_publishers_get_everything_through_a_queue_of_one() {
    for capacity in [1, 2] {
        for round in 0..common::race_rounds() {
            let broker = Broker::<Seq>::new();
            let sub = bounded(&broker, capacity, Overflow::Block);
            let publishers = [publisher(&broker, 0), publisher(&broker, 1)];
            let total = 2 * PER_PUBLISHER as usize;
            let read = read_until(&sub, |read| read.len() == total);
            let delivered: usize = publishers.into_iter().map(|p| p.join().unwrap()).sum();
            let received = payloads(&read);
            assert_eq!((received.len(), delivered), (total, total), "round {round}");
            assert_in_order(&received);
            let stats = sub.stats();
            assert_eq!(
                (stats.delivered, stats.dropped, stats.queued),
                (total as u64, 0, 0)
            );
            assert!(stats.peak_queued <= capacity, "round {round}: {stats:?}");
        }
    }
}

/// `DropOldest` evicts while publishers and a reader race: every message is either read or
/// counted in a `Lagged` notice, each publisher's order holds, and the counters add up.
#[test]
fn drop_oldest_accounts_for_every_message_under_racing_publishers_and_reader() {
    for round in 0..common::race_rounds() {
        let broker = Broker::<Seq>::new();
        let sub = bounded(&broker, 4, Overflow::DropOldest);
        let publishers = [publisher(&broker, 0), publisher(&broker, 1)];
        let mut read = Vec::new();
        for _ in 0..PER_PUBLISHER {
            read.extend(sub.get_message(Duration::ZERO));
        }
        let delivered: usize = publishers.into_iter().map(|p| p.join().unwrap()).sum();
        read.extend(common::drain(&sub));
        let received = payloads(&read);
        let missed: u64 = read
            .iter()
            .map(|m| match m {
                Message::Lagged { missed } => *missed,
                _ => 0,
            })
            .sum();
        let stats = sub.stats();
        let total = 2 * u64::from(PER_PUBLISHER);
        assert_eq!(
            delivered as u64, total,
            "DropOldest always queues: round {round}"
        );
        assert_eq!(received.len() as u64 + missed, total, "round {round}");
        assert_eq!(
            (stats.delivered, stats.dropped),
            (total, missed),
            "round {round}"
        );
        assert_in_order(&received);
        assert!(stats.peak_queued <= 4);
    }
}

/// A rendezvous queues a delivery only while a reader waits: a publisher blocked on it is
/// released by each reader that starts waiting, in order, and nothing is lost.
#[test]
fn a_rendezvous_hands_each_message_to_a_waiting_reader() {
    for round in 0..common::race_rounds() {
        let broker = Broker::<Seq>::new();
        let sub = bounded(&broker, 0, Overflow::Block);
        let publishers = [publisher(&broker, 0)];
        let read = read_until(&sub, |read| read.len() == PER_PUBLISHER as usize);
        let delivered: usize = publishers.into_iter().map(|p| p.join().unwrap()).sum();
        assert_eq!(delivered, PER_PUBLISHER as usize, "round {round}");
        let received = payloads(&read);
        assert_eq!(
            received,
            (0..PER_PUBLISHER).map(|n| (0, n)).collect::<Vec<_>>()
        );
    }
}

/// A publisher waits on a full queue while another thread unsubscribes: it is released
/// either way; if its message went in, it is read before the `Unsubscribe` confirmation.
#[test]
fn an_unsubscribe_racing_a_blocked_publisher_releases_it_cleanly() {
    for round in 0..common::race_rounds() {
        let broker = Broker::<Seq>::new();
        let sub = broker.pubsub_builder().capacity(1).build();
        sub.subscribe("ch");
        assert_eq!(broker.publish("ch", (0, 0)), 1);
        let waiting = {
            let broker = broker.clone();
            thread::spawn(move || broker.publish("ch", (0, 1)))
        };
        // Read the first delivery (making room) and unsubscribe, racing the publisher.
        let read_first = round % 2 == 0;
        if read_first {
            let _ = sub.get_message(Duration::ZERO);
        }
        sub.unsubscribe("ch");
        let delivered = common::within(Duration::from_secs(10), move || waiting.join().unwrap())
            .expect("the blocked publisher was not released");
        let read = common::drain(&sub);
        let kinds: Vec<_> = read
            .iter()
            .map(|m| (m.kind(), m.payload().map(|p| **p)))
            .collect();
        let unsubscribed = kinds.iter().position(|k| k.0 == "unsubscribe").unwrap();
        let late = kinds.iter().position(|k| k.1 == Some((0, 1)));
        assert_eq!(late.is_some(), delivered == 1, "round {round}: {kinds:?}");
        assert!(
            late.is_none_or(|i| i < unsubscribed),
            "round {round}: {kinds:?}"
        );
    }
}
