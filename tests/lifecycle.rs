//! Closing and dropping: `PubSub::close`, `Broker::close`, dropped brokers, and input that
//! could break a broker (huge names, many names, hostile patterns).

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use common::drain;
use fanout::{Broker, Disconnected, Message, RecvTimeoutError, MAX_STAR_NESTING};

#[test]
fn close_ends_a_listen_blocked_in_another_thread_without_confirmations() {
    let broker = Broker::<str>::new();
    let sub = broker.pubsub();
    sub.subscribe(["a", "b"]);
    sub.psubscribe(["c*"]);
    thread::scope(|s| {
        let listener = s.spawn(|| sub.listen().map(|m| m.kind()).collect::<Vec<_>>());
        broker.publish("a", "x");
        thread::sleep(Duration::from_millis(20)); // let it block on an empty queue
        sub.close();
        let kinds = listener.join().unwrap();
        assert_eq!(kinds, ["subscribe", "subscribe", "psubscribe", "message"]);
    });
    assert!(!sub.is_subscribed() && sub.is_closed());
    assert_eq!(sub.stats().disconnected, Some(Disconnected::Closed));
    assert_eq!((broker.numsub("a"), broker.numpat()), (0, 0));
    assert!(broker.channels(None).is_empty());
}

#[test]
fn a_closed_handle_ignores_later_calls_and_its_queue_reports_its_end() {
    let broker = Broker::<str>::new();
    let sub = broker.pubsub();
    sub.subscribe(["a"]);
    sub.close();
    sub.close(); // twice is harmless
    sub.subscribe(["a"]);
    sub.psubscribe(["*"]);
    sub.unsubscribe(["a"]);
    sub.unsubscribe_all();
    assert_eq!(broker.publish("a", "x"), 0);
    assert_eq!(
        drain(&sub).len(),
        1,
        "only the confirmation from before close"
    );
    assert!(
        sub.receiver().recv().is_err(),
        "the raw receiver sees the end too"
    );
    assert_eq!(
        sub.get_message(Duration::from_secs(5)),
        None,
        "returns at once"
    );
}

#[test]
fn broker_close_drains_every_listen_and_refuses_what_comes_later() {
    let broker = Broker::<str>::new();
    let subs: Vec<_> = (0..4).map(|_| broker.pubsub()).collect();
    for (i, sub) in subs.iter().enumerate() {
        sub.subscribe(["all", &format!("own.{i}")]);
        sub.psubscribe(["a*"]);
    }
    let idle = broker.pubsub();
    thread::scope(|s| {
        let listeners: Vec<_> = subs
            .iter()
            .map(|sub| s.spawn(move || sub.listen().count()))
            .collect();
        assert_eq!(broker.publish("all", "x"), 8);
        thread::sleep(Duration::from_millis(20));
        broker.clone().close();
        for listener in listeners {
            assert_eq!(
                listener.join().unwrap(),
                5,
                "3 confirmations, a message, a pmessage"
            );
        }
    });
    assert!(broker.is_closed());
    assert_eq!(broker.publish("all", "x"), 0);
    assert!(broker.try_publish("all", "x").is_ok());
    let late = broker.pubsub();
    late.subscribe(["all"]);
    idle.psubscribe(["*"]);
    for sub in subs.iter().chain([&late, &idle]) {
        assert!(sub.is_closed());
        assert!(!sub.is_subscribed());
        assert_eq!(sub.stats().disconnected, Some(Disconnected::BrokerClosed));
        assert!(drain(sub).is_empty());
    }
    let stats = broker.stats();
    assert_eq!((stats.channels, stats.patterns, stats.published), (0, 0, 1));
    assert_eq!(stats.subscribers, 6);
}

#[test]
fn the_last_broker_clone_ends_every_handle_after_what_it_queued() {
    let broker = Broker::<str>::new();
    let a = broker.pubsub();
    let b = broker.pubsub();
    a.subscribe(["x"]);
    broker.publish("x", "queued");
    drop(broker);
    b.subscribe(["y"]); // refused: nothing could publish to it
    assert_eq!(drain(&a).len(), 2);
    assert!(drain(&b).is_empty());
    for sub in [&a, &b] {
        assert!(sub.is_closed());
        assert_eq!(
            sub.recv_timeout(Duration::from_secs(10)),
            Err(RecvTimeoutError::Closed(Disconnected::BrokerDropped))
        );
        assert_eq!(sub.listen_forever().count(), 0);
    }
}

#[test]
fn dropping_the_last_broker_clone_ends_blocked_readers_workers_and_listen_forever() {
    let broker = Broker::<str>::new();
    let (listening, forever, worked) = (broker.pubsub(), broker.pubsub(), broker.pubsub());
    listening.subscribe("a");
    forever.subscribe("a");
    let handled = Arc::new(AtomicUsize::new(0));
    let count = handled.clone();
    worked.subscribe_with("a", move |_| {
        count.fetch_add(1, Ordering::Relaxed);
    });
    let worker = worked.run_in_thread().unwrap();
    let publisher = broker.clone();
    drop(broker);
    let listen = on_a_thread(move || listening.listen().count());
    let listen_forever = on_a_thread(move || forever.listen_forever().count());
    assert_eq!(publisher.publish("a", "last"), 3);
    thread::sleep(Duration::from_millis(20)); // let the readers block
    drop(publisher);
    assert_eq!(listen.recv_timeout(Duration::from_secs(10)), Ok(2));
    assert_eq!(listen_forever.recv_timeout(Duration::from_secs(10)), Ok(2));
    assert_eq!(
        common::within(Duration::from_secs(10), move || worker.join()).map(|r| r.is_ok()),
        Some(true)
    );
    assert_eq!(handled.load(Ordering::Relaxed), 1);
}

/// Runs `f` on a thread of its own; its result arrives on the returned receiver.
fn on_a_thread<R: Send + 'static>(
    f: impl FnOnce() -> R + Send + 'static,
) -> std::sync::mpsc::Receiver<R> {
    let (tx, rx) = std::sync::mpsc::channel();
    thread::spawn(move || {
        let _ = tx.send(f());
    });
    rx
}

#[test]
fn stats_count_handles_publishes_and_deliveries() {
    let broker = Broker::<str>::new();
    let a = broker.pubsub();
    {
        let b = broker.pubsub();
        b.subscribe(["x"]);
        a.subscribe(["x"]);
        a.psubscribe(["*"]);
        assert_eq!(broker.publish("x", "1"), 3);
        assert_eq!(broker.publish("nobody", "2"), 1);
        let stats = broker.stats();
        assert_eq!((stats.published, stats.delivered, stats.dropped), (2, 4, 0));
        assert_eq!(
            (stats.channels, stats.patterns, stats.subscribers),
            (1, 1, 2)
        );
        assert_eq!(b.stats().delivered, 1);
    }
    assert_eq!(broker.stats().subscribers, 1);
    let stats = a.stats();
    assert_eq!(
        (stats.queued, stats.delivered, stats.dropped, stats.lagged),
        (5, 3, 0, 0)
    );
    assert_eq!(stats.disconnected, None);
}

#[test]
fn empty_and_huge_names_work_like_any_other() {
    let broker = Broker::<str>::new();
    let sub = broker.pubsub();
    let huge = "n".repeat(1 << 20);
    sub.subscribe(["", &huge]);
    sub.psubscribe([&format!("{}*", &huge[..1000])]);
    assert_eq!(broker.publish("", "empty"), 1);
    assert_eq!(broker.publish(&huge, "huge"), 2);
    assert_eq!(broker.channels(None).len(), 2);
    assert_eq!(broker.channels(Some("")), [""]);
    let got = drain(&sub);
    assert_eq!(got.len(), 6);
    assert_eq!(got[3].channel(), Some(""));
    assert_eq!(got[4].channel().map(str::len), Some(1 << 20));
    sub.unsubscribe(["", &huge]);
    assert!(broker.channels(None).is_empty());
}

#[test]
fn hostile_patterns_are_cheap_and_the_nesting_guard_says_no_match() {
    let broker = Broker::<str>::new();
    let sub = broker.pubsub();
    let stars = "*a".repeat(5_000);
    sub.psubscribe([&stars, "a*a*a*a*a*a*a*a*a*a*b"]);
    let channel = "a".repeat(20_000);
    let started = Instant::now();
    // `*a` repeated 5,000 times would match, but nests deeper than the guard allows.
    const _: () = assert!(5_000 > MAX_STAR_NESTING);
    assert_eq!(broker.publish(&channel, "x"), 0);
    // A loose bound against exponential backtracking, not a benchmark.
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "took {:?}",
        started.elapsed()
    );
    let shallow = "*a".repeat(MAX_STAR_NESTING);
    sub.psubscribe([&shallow]);
    assert_eq!(broker.publish(&channel, "x"), 1);
    let last = drain(&sub).pop().unwrap();
    assert!(matches!(last, Message::PMessage { .. }));
}

/// `Broker::close` reaches every live handle, not only those holding a subscription at that
/// moment: a `listen_forever()` on a handle with none (it unsubscribed, or never subscribed)
/// ends, and a handle made concurrently with the close is closed too.
#[test]
fn broker_close_ends_listen_forever_on_handles_without_subscriptions() {
    let broker = Broker::<str>::new();
    let never = std::sync::Arc::new(broker.pubsub());
    let left = std::sync::Arc::new(broker.pubsub());
    left.subscribe(["a"]);
    left.unsubscribe(["a"]);
    let listeners: Vec<_> = [never.clone(), left.clone()]
        .into_iter()
        .map(|sub| {
            let (tx, rx) = std::sync::mpsc::channel();
            thread::spawn(move || {
                let _ = tx.send(sub.listen_forever().count());
            });
            rx
        })
        .collect();
    thread::sleep(Duration::from_millis(20)); // let them block
    broker.close();
    for (rx, expected) in listeners.iter().zip([0, 2]) {
        match rx.recv_timeout(Duration::from_secs(10)) {
            Ok(read) => assert_eq!(read, expected),
            Err(_) => {
                never.close();
                left.close();
                panic!("listen_forever() kept waiting after Broker::close");
            }
        }
    }
    for sub in [&never, &left] {
        assert!(sub.is_closed());
        assert_eq!(sub.stats().disconnected, Some(Disconnected::BrokerClosed));
        assert!(sub.receiver().recv().is_err(), "the queue has ended");
    }
}

/// A handle made while another thread closes the broker is either closed by the close or born
/// closed: its reader never waits for ever.
#[test]
fn a_handle_made_during_broker_close_ends_its_reader() {
    for round in 0..common::race_rounds() {
        let broker = Broker::<str>::new();
        let (tx, rx) = std::sync::mpsc::channel();
        let (started_tx, started) = std::sync::mpsc::channel();
        let maker = {
            let broker = broker.clone();
            thread::spawn(move || {
                let _ = started_tx.send(());
                let sub = broker.pubsub();
                let _ = tx.send(sub.listen_forever().count());
            })
        };
        // Close at a different moment of the handle's making each round.
        started.recv().unwrap();
        for _ in 0..round % 64 {
            std::hint::spin_loop();
        }
        broker.close();
        assert!(
            rx.recv_timeout(Duration::from_secs(10)).is_ok(),
            "a handle made in round {round} kept waiting after the close"
        );
        maker.join().unwrap();
    }
}

/// Two threads `listen()` to one handle while a third unsubscribes its last channel: one of
/// them reads the confirmation, and both end (the other stops waiting once the count is 0).
#[test]
fn every_listen_on_a_handle_ends_after_its_last_unsubscribe() {
    for capacity in [None, Some(1)] {
        for round in 0..common::race_rounds() {
            let broker = Broker::<str>::new();
            let builder = broker.pubsub_builder();
            let sub = std::sync::Arc::new(match capacity {
                Some(capacity) => builder.capacity(capacity).build(),
                None => builder.unbounded().build(),
            });
            sub.subscribe("a");
            let _ = sub.get_message(Duration::ZERO);
            let listen = || {
                let sub = sub.clone();
                thread::spawn(move || sub.listen().map(|m| m.kind()).collect::<Vec<_>>())
            };
            let listeners = [listen(), listen()];
            sub.unsubscribe("a");
            let read = common::within(Duration::from_secs(10), move || {
                listeners.map(|l| l.join().unwrap())
            });
            let Some(read) = read else {
                sub.close(); // releases the listener left waiting
                panic!("round {round}, capacity {capacity:?}: a listen() kept waiting");
            };
            assert_eq!(
                read.concat(),
                ["unsubscribe"],
                "round {round}, capacity {capacity:?}"
            );
        }
    }
}

/// Clones dropped on several threads at once, each after publishing, while a reader blocks in
/// `listen_forever` and another thread subscribes: the reader gets every publish that was
/// counted, in order per publisher, then ends; the late subscription is confirmed (and then
/// ended) or refused, never left hanging. Repeated `common::race_rounds()` times.
#[test]
fn the_last_of_several_clones_dropped_at_once_ends_readers_after_every_counted_publish() {
    const CLONES: usize = 3;
    for round in 0..common::race_rounds() {
        let broker = Broker::<(usize, usize)>::new();
        let reader = broker.pubsub();
        reader.subscribe("a");
        let late = broker.pubsub();
        let clones: Vec<_> = (0..CLONES).map(|_| broker.clone()).collect();
        drop(broker);
        let listening = on_a_thread(move || {
            reader
                .listen_forever()
                .filter_map(|m| m.payload().map(|p| **p))
                .collect::<Vec<_>>()
        });
        let subscribing = on_a_thread(move || {
            let confirmed = late.try_subscribe("b").is_ok();
            let read = late.listen_forever().count();
            (confirmed, read)
        });
        let publishers: Vec<_> = clones
            .into_iter()
            .enumerate()
            .map(|(id, broker)| {
                thread::spawn(move || (0..3).map(|n| broker.publish("a", (id, n))).sum::<usize>())
            })
            .collect();
        let counted: usize = publishers.into_iter().map(|p| p.join().unwrap()).sum();
        let read = listening
            .recv_timeout(Duration::from_secs(10))
            .unwrap_or_else(|_| panic!("round {round}: listen_forever never ended"));
        assert_eq!(read.len(), counted, "round {round}");
        for id in 0..CLONES {
            let mine: Vec<_> = read.iter().filter(|m| m.0 == id).map(|m| m.1).collect();
            assert_eq!(mine, [0, 1, 2], "round {round}: publisher {id}");
        }
        let (confirmed, late_read) = subscribing
            .recv_timeout(Duration::from_secs(10))
            .unwrap_or_else(|_| panic!("round {round}: the late handle never ended"));
        assert_eq!(late_read, usize::from(confirmed), "round {round}");
    }
}
