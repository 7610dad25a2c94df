//! Every (un)subscription is confirmed once per name, in order, with Redis's counts, and
//! `listen()` ends exactly when redis-py's does.

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::time::Duration;

use common::{confirmations, drain, triples};
use fanout::{Broker, Message};

#[test]
fn counts_rise_per_name_in_argument_order() {
    let broker = Broker::<str>::new();
    let sub = broker.pubsub();
    sub.subscribe(["a", "b", "c"]);
    sub.psubscribe(["x*"]);
    assert_eq!(
        confirmations(&sub),
        triples(&[
            ("subscribe", "a", 1),
            ("subscribe", "b", 2),
            ("subscribe", "c", 3),
            ("psubscribe", "x*", 4)
        ])
    );
    assert_eq!(sub.subscriptions(), 4);
}

#[test]
fn duplicate_subscribe_confirms_with_unchanged_count_and_delivers_once() {
    let broker = Broker::<str>::new();
    let sub = broker.pubsub();
    sub.subscribe(["c", "c", "c"]);
    sub.psubscribe(["p*", "p*"]);
    assert_eq!(
        confirmations(&sub),
        triples(&[
            ("subscribe", "c", 1),
            ("subscribe", "c", 1),
            ("subscribe", "c", 1),
            ("psubscribe", "p*", 2),
            ("psubscribe", "p*", 2),
        ])
    );
    assert_eq!(broker.publish("c", "once"), 1);
    assert_eq!(broker.publish("pp", "once"), 1);
    assert_eq!(drain(&sub).len(), 2);
}

#[test]
fn unsubscribing_an_unknown_name_confirms_with_unchanged_count() {
    let broker = Broker::<str>::new();
    let sub = broker.pubsub();
    sub.unsubscribe(["never"]);
    sub.punsubscribe(["never*"]);
    sub.subscribe(["a"]);
    sub.unsubscribe(["b", "a", "a"]);
    assert_eq!(
        confirmations(&sub),
        triples(&[
            ("unsubscribe", "never", 0),
            ("punsubscribe", "never*", 0),
            ("subscribe", "a", 1),
            ("unsubscribe", "b", 1),
            ("unsubscribe", "a", 0),
            ("unsubscribe", "a", 0),
        ])
    );
}

#[test]
fn patterns_are_compared_as_text_when_unsubscribing() {
    let broker = Broker::<str>::new();
    let sub = broker.pubsub();
    sub.psubscribe(["foo*", "fo[o]*"]);
    sub.punsubscribe(["foo"]); // matches `foo*`, but is not its text
    assert_eq!(broker.numpat(), 2);
    sub.punsubscribe(["fo[o]*"]);
    assert_eq!(
        confirmations(&sub),
        triples(&[
            ("psubscribe", "foo*", 1),
            ("psubscribe", "fo[o]*", 2),
            ("punsubscribe", "foo", 2),
            ("punsubscribe", "fo[o]*", 1),
        ])
    );
    assert_eq!(broker.publish("foo1", "x"), 1);
}

#[test]
fn empty_lists_do_nothing() {
    let broker = Broker::<str>::new();
    let sub = broker.pubsub();
    sub.subscribe(["a"]);
    sub.psubscribe(["p*"]);
    drain(&sub);
    let none: [&str; 0] = [];
    sub.subscribe(none);
    sub.psubscribe(Vec::<String>::new());
    sub.unsubscribe(none);
    sub.punsubscribe(none);
    assert!(drain(&sub).is_empty());
    assert_eq!(sub.subscriptions(), 2);
    assert_eq!(broker.publish("a", "still"), 1);
}

#[test]
fn unsubscribe_all_removes_channels_in_subscription_order_and_keeps_patterns() {
    let broker = Broker::<str>::new();
    let sub = broker.pubsub();
    sub.subscribe(["z", "a", "m"]);
    sub.psubscribe(["p*", "q*"]);
    drain(&sub);
    sub.unsubscribe_all();
    assert_eq!(
        confirmations(&sub),
        triples(&[
            ("unsubscribe", "z", 4),
            ("unsubscribe", "a", 3),
            ("unsubscribe", "m", 2)
        ])
    );
    assert_eq!(broker.numsub("z"), 0);
    assert_eq!(broker.numpat(), 2);
    sub.punsubscribe_all();
    assert_eq!(
        confirmations(&sub),
        triples(&[("punsubscribe", "p*", 1), ("punsubscribe", "q*", 0)])
    );
    assert!(!sub.is_subscribed());
}

#[test]
fn unsubscribe_all_with_nothing_to_remove_sends_nothing() {
    let broker = Broker::<str>::new();
    let sub = broker.pubsub();
    sub.unsubscribe_all();
    sub.punsubscribe_all();
    sub.psubscribe(["p*"]);
    drain(&sub);
    sub.unsubscribe_all(); // patterns are not channels
    assert!(drain(&sub).is_empty());
}

#[test]
fn listen_yields_the_last_unsubscribe_confirmation_then_ends() {
    let broker = Broker::<str>::new();
    let sub = broker.pubsub();
    sub.subscribe(["a"]);
    broker.publish("a", "1");
    sub.unsubscribe(["a"]);
    let kinds: Vec<_> = sub.listen().map(|m| m.kind()).collect();
    assert_eq!(kinds, ["subscribe", "message", "unsubscribe"]);
}

#[test]
fn listen_without_subscriptions_ends_at_once() {
    let broker = Broker::<str>::new();
    let sub = broker.pubsub();
    assert_eq!(sub.listen().count(), 0);
    // Confirmations of names that were never subscribed are still yielded, then it ends.
    sub.unsubscribe(["x"]);
    let got: Vec<_> = sub.listen().collect();
    assert_eq!(
        got,
        [Message::Unsubscribe {
            channel: "x".into(),
            count: 0
        }]
    );
}

#[test]
fn listen_ends_when_another_thread_unsubscribes() {
    let broker = Broker::<str>::new();
    let sub = broker.pubsub();
    sub.subscribe(["a"]);
    std::thread::scope(|s| {
        let listener = s.spawn(|| sub.listen().map(|m| m.kind()).collect::<Vec<_>>());
        broker.publish("a", "1");
        sub.unsubscribe(["a"]);
        assert_eq!(
            listener.join().unwrap(),
            ["subscribe", "message", "unsubscribe"]
        );
    });
}

#[test]
fn listen_starts_again_after_a_later_subscribe() {
    let broker = Broker::<str>::new();
    let sub = broker.pubsub();
    sub.subscribe(["a"]);
    sub.unsubscribe(["a"]);
    assert_eq!(sub.listen().count(), 2);
    sub.psubscribe(["b*"]);
    broker.publish("bb", "x");
    sub.punsubscribe(["b*"]);
    let kinds: Vec<_> = sub.listen().map(|m| m.kind()).collect();
    assert_eq!(kinds, ["psubscribe", "pmessage", "punsubscribe"]);
}

#[test]
fn a_subscription_survives_many_names_in_one_call() {
    let broker = Broker::<str>::new();
    let sub = broker.pubsub();
    let names: Vec<String> = (0..100_000).map(|i| format!("ch.{i}")).collect();
    sub.subscribe(&names);
    assert_eq!(sub.subscriptions(), 100_000);
    let counts: Vec<usize> = drain(&sub).iter().filter_map(|m| m.count()).collect();
    assert_eq!(counts, (1..=100_000).collect::<Vec<_>>());
    assert_eq!(broker.channels(Some("ch.9999*")).len(), 11);
    sub.unsubscribe_all();
    assert!(broker.channels(None).is_empty());
}

/// The race behind a `listen()` that never ended: the unsubscribing thread queued
/// `Unsubscribe { count: 0 }` and only then stored the handle's count, so a listener that
/// read the confirmation in between
///
/// ```text
/// unsubscriber                      listener (caught up, spinning in recv)
/// queue Unsubscribe{count 0}
///                                   read it, yield it
///                                   load count -> still 1: block on the queue
/// store count 0                     (nothing will ever come)
/// ```
///
/// waited for ever. A publisher keeps the listener busy but caught up (so it is spinning,
/// not asleep, when the confirmation lands) and contending for the registry lock the
/// unsubscription releases, as when it was found (56 hangs in 2,000 runs);
/// the rounds alternate a pattern and a channel.
#[test]
fn listen_ends_when_another_thread_removes_the_last_subscription_while_publishers_run() {
    let broker = Broker::<str>::new();
    let stop = Arc::new(AtomicBool::new(false));
    let publisher = {
        let (broker, stop) = (broker.clone(), stop.clone());
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                broker.publish("p1", "x");
            }
        })
    };
    for round in 0..common::race_rounds() {
        let sub = Arc::new(broker.pubsub());
        let pattern = round % 2 == 0;
        if pattern {
            sub.psubscribe(["p*"]);
        } else {
            sub.subscribe(["p1"]);
        }
        let listener = Arc::clone(&sub);
        let (started, reading) = mpsc::channel();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut last: Option<Message<str>> = None;
            for message in listener.listen() {
                if last.as_ref().is_some_and(|m| m.payload().is_none()) {
                    let _ = started.send(()); // the first delivery after the confirmation
                }
                last = Some(message);
            }
            let _ = tx.send(last);
        });
        // Unsubscribe once the listener is reading deliveries as they come.
        let _ = reading.recv_timeout(Duration::from_secs(10));
        for _ in 0..round % 7 {
            std::thread::yield_now();
        }
        if pattern {
            sub.punsubscribe(["p*"]);
        } else {
            sub.unsubscribe(["p1"]);
        }
        let Ok(last) = rx.recv_timeout(Duration::from_secs(10)) else {
            sub.close(); // ends the stuck listener before failing
            panic!("listen() did not end in round {round}");
        };
        assert_eq!(last.and_then(|m| m.count()), Some(0), "round {round}");
    }
    stop.store(true, Ordering::Relaxed);
    publisher.join().unwrap();
}

/// With `ignore_subscribe_messages(true)` the last `Unsubscribe` is skipped, not yielded; the
/// listener must still notice that the handle has no subscriptions left and end, as
/// redis-py's `listen()` does.
#[test]
fn listen_that_ignores_confirmations_ends_when_another_thread_unsubscribes() {
    let broker = Broker::<str>::new();
    for channel in [true, false] {
        let sub = Arc::new(
            broker
                .pubsub_builder()
                .ignore_subscribe_messages(true)
                .build(),
        );
        if channel {
            sub.subscribe(["a"]);
        } else {
            sub.psubscribe(["a*"]);
        }
        let listener = Arc::clone(&sub);
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let got: Vec<String> = listener
                .listen()
                .map(|m| m.payload().unwrap().to_string())
                .collect();
            let _ = tx.send(got);
        });
        broker.publish("a", "1");
        std::thread::sleep(Duration::from_millis(20)); // let the listener block
        if channel {
            sub.unsubscribe(["a"]);
        } else {
            sub.punsubscribe(["a*"]);
        }
        let Ok(got) = rx.recv_timeout(Duration::from_secs(10)) else {
            sub.close();
            panic!("listen() did not end (channel: {channel})");
        };
        assert_eq!(got, ["1"]);
    }
}

/// One row of redis-py's subscription checks: a change of subscription and the name it takes.
type Check<'a> = (&'a dyn Fn(&str), &'a str);

/// `is_subscribed()` as redis-py's `subscribed` (its tests/test_pubsub.py,
/// `_test_subscribed_property`), run for channels and for patterns: true from a subscription
/// on, and after the last unsubscription until the confirmation that brought the count to 0
/// has been read.
fn subscribed_property(kind: &str, unsub_kind: &str, keys: [&str; 2]) {
    let broker = Broker::<str>::new();
    let p = broker.pubsub();
    let sub = |name: &str| match kind {
        "subscribe" => p.subscribe([name]),
        _ => p.psubscribe([name]),
    };
    let unsub_all = || match kind {
        "subscribe" => p.unsubscribe_all(),
        _ => p.punsubscribe_all(),
    };
    let next = || {
        let m = p.get_message(Duration::ZERO).expect("a confirmation");
        let name = m.channel().or(m.pattern()).unwrap_or_default();
        (m.kind().to_string(), name.to_string(), m.count())
    };
    let confirmation = |k: &str, name: &str, count| (k.to_string(), name.to_string(), Some(count));

    assert!(!p.is_subscribed());
    sub(keys[0]);
    // subscribed before the confirmation is read
    assert!(p.is_subscribed());
    assert_eq!(next(), confirmation(kind, keys[0], 1));
    assert!(p.is_subscribed());

    unsub_all();
    // still subscribed until the confirmation is read
    assert!(p.is_subscribed());
    assert_eq!(p.subscriptions(), 0, "the live count has dropped already");
    assert_eq!(next(), confirmation(unsub_kind, keys[0], 0));
    assert!(!p.is_subscribed());

    // subscribing again flips it back
    sub(keys[0]);
    assert!(p.is_subscribed());
    assert_eq!(next(), confirmation(kind, keys[0], 1));

    unsub_all();
    assert!(p.is_subscribed());
    // a subscription made before the end is read keeps it true through that read
    sub(keys[1]);
    assert!(p.is_subscribed());
    assert_eq!(next(), confirmation(unsub_kind, keys[0], 0));
    assert!(p.is_subscribed());
    assert_eq!(next(), confirmation(kind, keys[1], 1));
    unsub_all();
    assert!(p.is_subscribed());
    assert_eq!(next(), confirmation(unsub_kind, keys[1], 0));
    assert!(!p.is_subscribed());
    assert!(p.get_message(Duration::ZERO).is_none());
}

#[test]
fn subscribed_property_with_channels_as_redis_py() {
    subscribed_property("subscribe", "unsubscribe", ["foo", "bar"]);
}

#[test]
fn subscribed_property_with_patterns_as_redis_py() {
    subscribed_property("psubscribe", "punsubscribe", ["f*", "b*"]);
}

/// redis-py's `test_ignore_all_subscribe_messages` (its sharded rows aside: fanout has no
/// sharded channels): each (un)subscription makes the handle subscribed until a read passes
/// over its confirmation, and every such read returns nothing.
#[test]
fn ignore_all_subscribe_messages_as_redis_py() {
    let broker = Broker::<str>::new();
    let p = broker
        .pubsub_builder()
        .ignore_subscribe_messages(true)
        .build();
    let checks: [Check; 4] = [
        (&|n| p.subscribe([n]), "foo"),
        (&|n| p.unsubscribe([n]), "foo"),
        (&|n| p.psubscribe([n]), "f*"),
        (&|n| p.punsubscribe([n]), "f*"),
    ];
    assert!(!p.is_subscribed());
    for (change, name) in checks {
        change(name);
        assert!(p.is_subscribed(), "after changing {name}");
        assert!(p.get_message(Duration::from_millis(10)).is_none());
    }
    assert!(!p.is_subscribed());
}

/// redis-py's `test_ignore_individual_subscribe_messages`: the reader passes over each
/// confirmation itself (redis-py's per-call `ignore_subscribe_messages=True`).
#[test]
fn ignore_individual_subscribe_messages_as_redis_py() {
    let broker = Broker::<str>::new();
    let p = broker.pubsub();
    let checks: [Check; 4] = [
        (&|n| p.subscribe([n]), "foo"),
        (&|n| p.unsubscribe([n]), "foo"),
        (&|n| p.psubscribe([n]), "f*"),
        (&|n| p.punsubscribe([n]), "f*"),
    ];
    assert!(!p.is_subscribed());
    for (change, name) in checks {
        change(name);
        assert!(p.is_subscribed(), "after changing {name}");
        let read = p
            .get_message(Duration::from_millis(10))
            .expect("its confirmation");
        assert!(read.is_confirmation());
        assert!(p.get_message(Duration::ZERO).is_none());
    }
    assert!(!p.is_subscribed());
}

/// The flag turns false with the read that ends `listen()`, and an unsubscribe of a name the
/// handle never had (confirmed with count 0) does not make a closed-over handle subscribed.
#[test]
fn subscribed_ends_with_listen_and_ignores_unknown_unsubscribes() {
    let broker = Broker::<str>::new();
    let p = broker.pubsub();
    p.unsubscribe(["never"]);
    assert!(!p.is_subscribed());
    p.subscribe(["a"]);
    p.unsubscribe(["a"]);
    assert!(p.is_subscribed());
    let kinds: Vec<_> = p.listen().map(|m| m.kind().to_string()).collect();
    assert_eq!(kinds, ["unsubscribe", "subscribe", "unsubscribe"]);
    assert!(!p.is_subscribed());
    p.subscribe(["b"]);
    p.close();
    assert!(!p.is_subscribed());
}
