//! Retained history and replay: what a late joiner gets, the bound on what is kept, and the
//! clean cut between replayed and live deliveries under concurrent publishes.

mod common;

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::drain;
use fanout::{Broker, Message, Overflow, PubSub};

/// `(kind, channel, pattern, payload)` of each queued message but confirmations.
fn read(sub: &PubSub<str>) -> Vec<(&'static str, String, Option<String>, String)> {
    drain(sub)
        .iter()
        .filter(|m| !m.is_confirmation())
        .map(|m| {
            let channel = m.channel().unwrap_or_default().to_string();
            let pattern = m.pattern().map(str::to_string);
            (
                m.kind(),
                channel,
                pattern,
                m.data().unwrap_or("").to_string(),
            )
        })
        .collect()
}

fn replay(
    channel: &str,
    pattern: Option<&str>,
    payload: &str,
) -> (&'static str, String, Option<String>, String) {
    let pattern = pattern.map(str::to_string);
    ("replay", channel.to_string(), pattern, payload.to_string())
}

#[test]
fn a_late_channel_subscriber_gets_the_last_payloads_then_live_ones() {
    let broker = Broker::<str>::builder().history(2, 10).build();
    for p in ["1", "2", "3"] {
        assert_eq!(broker.publish("prices", p), 0); // nobody subscribes: kept all the same
    }
    let late = broker.pubsub_builder().replay(true).build();
    late.subscribe("prices");
    broker.publish("prices", "4");
    let live = ("message", "prices".to_string(), None, "4".to_string());
    assert_eq!(
        read(&late),
        [
            replay("prices", None, "2"),
            replay("prices", None, "3"),
            live
        ]
    );
}

#[test]
fn a_late_pattern_subscriber_gets_every_matching_channel_in_publish_order() {
    let broker = Broker::<str>::builder().history(2, 10).build();
    for (channel, p) in [
        ("a.1", "1"),
        ("b.1", "2"),
        ("a.2", "3"),
        ("a.1", "4"),
        ("a.1", "5"),
    ] {
        broker.publish(channel, p);
    }
    let late = broker.pubsub_builder().replay(true).build();
    late.psubscribe("a.*");
    let p = Some("a.*");
    assert_eq!(
        read(&late),
        [
            replay("a.2", p, "3"),
            replay("a.1", p, "4"),
            replay("a.1", p, "5")
        ]
    );
}

#[test]
fn the_confirmation_comes_first_and_only_a_new_subscription_replays() {
    let broker = Broker::<str>::builder().history(1, 10).build();
    broker.publish("a", "x");
    let sub = broker.pubsub_builder().replay(true).build();
    sub.subscribe(["a", "a"]);
    let kinds: Vec<_> = drain(&sub).iter().map(Message::kind).collect();
    assert_eq!(kinds, ["subscribe", "replay", "subscribe"]);
    sub.unsubscribe("a");
    sub.subscribe("a"); // new again: replays again
    let kinds: Vec<_> = drain(&sub).iter().map(Message::kind).collect();
    assert_eq!(kinds, ["unsubscribe", "subscribe", "replay"]);
}

#[test]
fn handles_without_replay_and_brokers_without_history_see_no_difference() {
    let kept = Broker::<str>::builder().history(4, 10).build();
    let plain = Broker::<str>::new();
    for broker in [&kept, &plain] {
        broker.publish("a", "before");
    }
    let (no_replay, no_history) = (kept.pubsub(), plain.pubsub_builder().replay(true).build());
    for (broker, sub) in [(&kept, &no_replay), (&plain, &no_history)] {
        sub.subscribe("a");
        broker.publish("a", "after");
        let live = ("message", "a".to_string(), None, "after".to_string());
        assert_eq!(read(sub), [live]);
    }
    assert_eq!(plain.retained(None), []);
    assert_eq!(kept.retained(None), [("a".to_string(), 2)]);
}

#[test]
fn a_history_of_zero_keeps_nothing() {
    for (per_channel, channels) in [(0, 10), (3, 0)] {
        let broker = Broker::<str>::builder()
            .history(per_channel, channels)
            .build();
        broker.publish("a", "x");
        assert_eq!(broker.retained(None), []);
        assert_eq!(broker.stats().retained_channels, 0);
    }
}

#[test]
fn the_least_recently_published_channel_goes_first_and_is_counted() {
    let broker = Broker::<str>::builder().history(3, 2).build();
    broker.publish("a", "1");
    broker.publish("b", "2");
    broker.publish("a", "3"); // "b" is now the least recently published
    broker.publish("c", "4");
    assert_eq!(
        broker.retained(None),
        [("a".to_string(), 2), ("c".to_string(), 1)]
    );
    let stats = broker.stats();
    assert_eq!((stats.retained_channels, stats.history_evicted), (2, 1));
    let late = broker.pubsub_builder().replay(true).build();
    late.subscribe("b");
    assert_eq!(read(&late), []); // evicted whole
}

#[test]
fn replays_never_count_against_capacity_and_are_never_dropped() {
    let broker = Broker::<str>::builder().history(3, 10).build();
    for p in ["1", "2", "3"] {
        broker.publish("a", p);
    }
    let sub = broker
        .pubsub_builder()
        .capacity(1)
        .overflow(Overflow::DropNewest)
        .replay(true)
        .build();
    sub.subscribe("a");
    assert_eq!(broker.publish("a", "4"), 1); // the queue's one place is still free
    assert_eq!(broker.publish("a", "5"), 0);
    let kinds: Vec<_> = read(&sub).into_iter().map(|m| (m.0, m.3)).collect();
    let expected = [
        ("replay", "1"),
        ("replay", "2"),
        ("replay", "3"),
        ("message", "4"),
        ("lagged", ""),
    ];
    let expected: Vec<_> = expected.iter().map(|&(k, p)| (k, p.to_string())).collect();
    assert_eq!(kinds, expected);
    let stats = sub.stats();
    assert_eq!((stats.delivered, stats.dropped), (1, 1));
}

#[test]
fn a_subscription_handler_gets_its_replays() {
    let broker = Broker::<str>::builder().history(2, 10).build();
    broker.publish("a", "old");
    let sub = broker.pubsub_builder().replay(true).build();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let into = Arc::clone(&seen);
    sub.subscribe_with("a", move |m: Message<str>| {
        into.lock()
            .unwrap()
            .push((m.kind(), m.data().unwrap().to_string()));
    });
    broker.publish("a", "new");
    while sub.get_message(Duration::ZERO).is_some() {}
    let seen = seen.lock().unwrap().clone();
    assert_eq!(
        seen,
        [
            ("replay", "old".to_string()),
            ("message", "new".to_string())
        ]
    );
}

#[test]
fn a_replayed_payload_is_the_publishers_arc() {
    let broker = Broker::<str>::builder().history(1, 10).build();
    let payload: Arc<str> = Arc::from("shared");
    broker.publish("a", Arc::clone(&payload));
    let sub = broker.pubsub_builder().replay(true).build();
    sub.subscribe("a");
    let replayed = drain(&sub).pop().unwrap();
    assert!(Arc::ptr_eq(replayed.payload().unwrap(), &payload));
    assert_eq!(replayed.kind(), "replay");
}

/// Payload: (channel, sequence number on that channel).
type Seq = (usize, u64);

/// For one channel, what a handle read: every sequence number, replayed or live, in read
/// order. The cut is clean when the replayed ones come first and, with the live ones, run
/// without gap or repeat to the last publish; and when the replayed ones are the `kept` last
/// before the cut (all of them, if fewer were published).
fn check_channel(read: &[(bool, u64)], kept: u64, published: u64, what: &str) {
    let replayed = read.iter().take_while(|(replay, _)| *replay).count();
    assert!(
        read[replayed..].iter().all(|(replay, _)| !replay),
        "{what}: a replay after a live delivery: {read:?}"
    );
    let numbers: Vec<u64> = read.iter().map(|&(_, n)| n).collect();
    let first = numbers.first().copied().unwrap_or(published);
    let expected: Vec<u64> = (first..published).collect();
    assert_eq!(numbers, expected, "{what}: a gap or a repeat");
    // The cut is before number `first + replayed`; what was published before it and kept.
    let cut = first + replayed as u64;
    assert_eq!(
        replayed as u64,
        kept.min(cut),
        "{what}: replayed {replayed} before cut {cut}"
    );
}

/// Subscribes a replaying channel handle and a replaying pattern handle while every channel
/// is being published to, and checks each channel's cut. Returns whether the channel
/// handle's cut fell mid-stream (some publishes replayed, some live).
fn clean_cut_once(per_channel: usize) -> bool {
    const CHANNELS: usize = 3;
    const PUBLISHES: u64 = 500;
    let broker = Broker::<Seq>::builder()
        .history(per_channel, CHANNELS)
        .build();
    let started = AtomicUsize::new(0);
    let subscribed = AtomicBool::new(false);
    let (by_channel, by_pattern) = std::thread::scope(|s| {
        for c in 0..CHANNELS {
            let (broker, started, subscribed) = (&broker, &started, &subscribed);
            s.spawn(move || {
                for n in 0..PUBLISHES {
                    broker.publish(&format!("c{c}"), (c, n));
                    if n == PUBLISHES / 4 {
                        started.fetch_add(1, Ordering::SeqCst);
                    }
                    // Slowed down until both handles subscribed, so the cuts fall mid-stream.
                    if n > PUBLISHES / 4 && !subscribed.load(Ordering::SeqCst) {
                        std::thread::yield_now();
                    }
                }
            });
        }
        while started.load(Ordering::SeqCst) < CHANNELS {
            std::hint::spin_loop();
        }
        let by_channel = broker.pubsub_builder().replay(true).build();
        let by_pattern = broker.pubsub_builder().replay(true).build();
        by_pattern.psubscribe("c*");
        by_channel.subscribe("c0");
        subscribed.store(true, Ordering::SeqCst);
        (by_channel, by_pattern)
    });
    let mut seen: Vec<Vec<(bool, u64)>> = vec![Vec::new(); CHANNELS];
    let mut live_started = false;
    for m in drain(&by_pattern) {
        let (replay, &(c, n)) = match &m {
            Message::Replay { payload, .. } => (true, &**payload),
            Message::PMessage { payload, .. } => (false, &**payload),
            _ => continue,
        };
        assert!(!(replay && live_started), "a replay after a live delivery");
        live_started |= !replay;
        seen[c].push((replay, n));
    }
    for (c, read) in seen.iter().enumerate() {
        check_channel(
            read,
            per_channel as u64,
            PUBLISHES,
            &format!("pattern, c{c}"),
        );
    }
    let read: Vec<(bool, u64)> = drain(&by_channel)
        .iter()
        .filter_map(|m| match m {
            Message::Replay { payload, .. } => Some((true, payload.1)),
            Message::Message { payload, .. } => Some((false, payload.1)),
            _ => None,
        })
        .collect();
    check_channel(&read, per_channel as u64, PUBLISHES, "channel c0");
    let replayed = read.iter().filter(|(replay, _)| *replay).count();
    replayed > 0 && replayed < read.len()
}

/// Repeated `race_rounds()` times (1,000 in release; `FANOUT_RACE_ROUNDS` sets it).
#[test]
fn a_publish_during_a_subscription_is_replayed_or_delivered_live_never_both_never_neither() {
    let rounds = common::race_rounds();
    let mid_stream = (0..rounds).filter(|i| clean_cut_once(1 + i % 4)).count();
    println!("{mid_stream} of {rounds} cuts fell mid-stream");
    assert!(
        mid_stream > 0,
        "no cut fell mid-stream: the test proved nothing"
    );
}

/// `Broker::stats` reads the history's counts and the stripes' while publishers record:
/// it must never wait for a lock a publisher holds while that publisher waits for one it
/// holds (a watchdog fails the test instead of hanging it).
#[test]
fn stats_and_introspection_run_beside_recording_publishers() {
    let broker = Broker::<str>::builder().history(4, 100).build();
    let (done_tx, done_rx) = std::sync::mpsc::channel();
    let worker = {
        let broker = broker.clone();
        std::thread::spawn(move || {
            std::thread::scope(|s| {
                for p in 0..2 {
                    let broker = &broker;
                    s.spawn(move || {
                        for i in 0..20_000 {
                            broker.publish(&format!("c{}", (i * 7 + p) % 200), "x");
                        }
                    });
                }
                s.spawn(|| {
                    let sub = broker.pubsub_builder().replay(true).build();
                    for i in 0..2_000 {
                        let stats = broker.stats();
                        assert!(stats.retained_channels <= 100);
                        assert!(broker.retained(Some("c1*")).len() <= 100);
                        sub.psubscribe(format!("c{}*", i % 10));
                        sub.punsubscribe_all();
                        while sub.get_message(Duration::ZERO).is_some() {}
                    }
                });
            });
            done_tx.send(()).unwrap();
        })
    };
    done_rx
        .recv_timeout(Duration::from_secs(60))
        .expect("publishers and stats() deadlocked");
    worker.join().unwrap();
}
