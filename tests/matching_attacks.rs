//! Attacks on `Publisher` and its matching status (review of step 14): races between
//! publishers made and dropped, the position cache, close, payload drops, async wakeups,
//! deadlines, hostile names, and `Publisher::publish` against `Broker::publish` in every
//! configuration.

mod common;
#[path = "common/counting_alloc.rs"]
mod counting_alloc;

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Barrier};
use std::thread;
use std::time::{Duration, Instant};

use common::{glob_reference::reference_match, race_rounds, within};
use fanout::{Broker, Matching, Message, Overflow, PubSub, Publisher};
use proptest::prelude::*;

/// Everything queued on `sub` now, as comparable text (no handle ids).
fn drained(sub: &PubSub<u64>) -> Vec<String> {
    std::iter::from_fn(|| sub.get_message(Duration::ZERO))
        .map(|m: Message<u64>| {
            format!(
                "{} {:?} {:?} {:?} {:?}",
                m.kind(),
                m.channel(),
                m.pattern(),
                m.data(),
                m.count()
            )
        })
        .collect()
}

// ---------------------------------------------------------------------------------------
// Interests: made and released concurrently
// ---------------------------------------------------------------------------------------

/// Threads make and drop publishers of one channel as fast as they can, while another keeps
/// making one and checks that it follows a subscription. The last user of an interest that
/// lost the race to release it must not remove a newer interest of the same channel from the
/// table (that one would then never hear of a change).
#[test]
fn a_publisher_made_while_others_are_released_follows_subscriptions() {
    let broker = Broker::<u64>::new();
    let stop = Arc::new(AtomicBool::new(false));
    let churners: Vec<_> = (0..3)
        .map(|_| {
            let (broker, stop) = (broker.clone(), Arc::clone(&stop));
            thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    drop(broker.publisher("x"));
                }
            })
        })
        .collect();
    let sub = broker.pubsub();
    let mut failure = None;
    // The bug this guards against showed within a few hundred rounds.
    for rounds in 0..race_rounds() * 20 {
        let publisher = broker.publisher("x");
        sub.subscribe("x");
        let matched = publisher.is_matched();
        sub.unsubscribe("x");
        let unmatched = !publisher.is_matched();
        if !matched || !unmatched {
            failure = Some((rounds, matched, unmatched));
            break;
        }
    }
    stop.store(true, Ordering::Relaxed);
    for churner in churners {
        churner.join().unwrap();
    }
    assert_eq!(
        failure, None,
        "(round, matched after subscribe, unmatched after unsubscribe)"
    );
}

/// Many threads make and drop publishers of a few channels, each checking the status
/// against a subscription that stands the whole time (on half the channels).
#[test]
fn publishers_made_and_dropped_concurrently_all_see_standing_subscriptions() {
    let broker = Broker::<u64>::new();
    let sub = broker.pubsub();
    sub.subscribe(["c0", "c2"]);
    let bad = Arc::new(AtomicUsize::new(0));
    let rounds = race_rounds() * 20;
    thread::scope(|s| {
        for t in 0..4 {
            let (broker, bad) = (&broker, &bad);
            s.spawn(move || {
                for n in 0..rounds {
                    let channel = format!("c{}", (n + t) % 4);
                    let publisher = broker.publisher(&channel);
                    let expected = (n + t) % 2 == 0;
                    if publisher.is_matched() != expected {
                        bad.fetch_add(1, Ordering::Relaxed);
                    }
                    let watch = publisher.matching_changes();
                    drop(publisher);
                    drop(watch);
                }
            });
        }
    });
    assert_eq!(bad.load(Ordering::Relaxed), 0);
}

/// A watch keeps the interest alive and counting after its publisher went; a publisher made
/// later shares it; once both are gone, a new publisher starts from the truth again.
#[test]
fn a_watch_outliving_its_publisher_keeps_counting_and_is_shared() {
    let broker = Broker::<u64>::new();
    let publisher = broker.publisher("x");
    let mut watch = publisher.matching_changes();
    drop(publisher);
    let sub = broker.pubsub();
    sub.subscribe("x");
    assert_eq!(watch.next_timeout(Duration::ZERO), Some(Matching::Matched));
    let later = broker.publisher("x");
    assert!(later.is_matched());
    sub.unsubscribe("x");
    assert!(!later.is_matched());
    assert_eq!(
        watch.next_timeout(Duration::ZERO),
        Some(Matching::Unmatched)
    );
    drop(later);
    drop(watch);
    sub.psubscribe("?");
    let fresh = broker.publisher("x");
    assert!(fresh.is_matched());
    let mut watch = fresh.matching_changes();
    assert_eq!(watch.next_timeout(Duration::ZERO), Some(Matching::Matched));
    assert_eq!(watch.next_timeout(Duration::ZERO), None);
}

// ---------------------------------------------------------------------------------------
// Publisher::publish against Broker::publish
// ---------------------------------------------------------------------------------------

#[derive(Clone, Copy, Debug)]
enum Config {
    Plain,
    History,
    Bounded(Overflow),
    OnceAndReplay,
}

fn twin_broker(config: Config) -> Broker<u64> {
    match config {
        Config::History | Config::OnceAndReplay => Broker::builder().history(3, 40).build(),
        _ => Broker::new(),
    }
}

fn twin_handle(broker: &Broker<u64>, config: Config, n: usize) -> PubSub<u64> {
    match config {
        Config::Plain => broker.pubsub(),
        Config::History => broker.pubsub_builder().replay(n.is_multiple_of(2)).build(),
        Config::Bounded(overflow) => match n % 2 {
            0 => broker
                .pubsub_builder()
                .capacity(2)
                .overflow(overflow)
                .build(),
            _ => broker.pubsub(),
        },
        Config::OnceAndReplay => broker
            .pubsub_builder()
            .one_delivery_per_publish(n.is_multiple_of(2))
            .replay(n.is_multiple_of(3))
            .build(),
    }
}

/// Two brokers given the same steps: on one, every publish goes through a `Publisher` (made
/// before any channel exists, so its cached position goes stale again and again as channels
/// come and go in its stripe); on the other, through `Broker`. Counts, errors and every
/// message read must be the same.
fn differential(config: Config, seed: u64, steps: usize) {
    const CHANNELS: usize = 600; // about 9 per stripe
    const HANDLES: usize = 4;
    let names: Vec<String> = (0..CHANNELS).map(|i| format!("ch.{i}")).collect();
    let patterns = ["ch.1*", "ch.?", "*", "ch.[0-4]*"];
    let (a, b) = (twin_broker(config), twin_broker(config));
    let publishers: Vec<Publisher<u64>> = names.iter().map(|n| a.publisher(n)).collect();
    let mut subs_a: Vec<PubSub<u64>> = (0..HANDLES).map(|i| twin_handle(&a, config, i)).collect();
    let mut subs_b: Vec<PubSub<u64>> = (0..HANDLES).map(|i| twin_handle(&b, config, i)).collect();
    let may_block = matches!(config, Config::Bounded(Overflow::Block));
    let mut x = seed;
    let mut next = move || {
        x = x
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (x >> 33) as usize
    };
    for step in 0..steps {
        let r = next();
        let h = next() % HANDLES;
        let c = next() % CHANNELS;
        let ctx = || format!("{config:?} seed {seed} step {step}");
        match r % 12 {
            0..=2 => {
                // Subscribe a run of channels, so a stripe gains several.
                let run: Vec<&str> = (c..(c + 7).min(CHANNELS))
                    .map(|i| names[i].as_str())
                    .collect();
                subs_a[h].subscribe(run.clone());
                subs_b[h].subscribe(run);
            }
            3 | 4 => {
                let run: Vec<&str> = (c..(c + 9).min(CHANNELS))
                    .map(|i| names[i].as_str())
                    .collect();
                subs_a[h].unsubscribe(run.clone());
                subs_b[h].unsubscribe(run);
            }
            5 => {
                let p = patterns[next() % patterns.len()];
                if next() % 2 == 0 {
                    subs_a[h].psubscribe(p);
                    subs_b[h].psubscribe(p);
                } else {
                    subs_a[h].punsubscribe(p);
                    subs_b[h].punsubscribe(p);
                }
            }
            6 => {
                assert_eq!(drained(&subs_a[h]), drained(&subs_b[h]), "{}", ctx());
            }
            7 if next() % 4 == 0 => {
                subs_a[h] = twin_handle(&a, config, step);
                subs_b[h] = twin_handle(&b, config, step);
            }
            _ => {
                let payload = step as u64;
                let (got_a, got_b) = match (may_block, next() % 3) {
                    (false, 0) => (
                        Ok(publishers[c].publish(payload)),
                        Ok(b.publish(&names[c], payload)),
                    ),
                    (_, 1) => (
                        publishers[c].publish_timeout(payload, Duration::ZERO),
                        b.publish_timeout(&names[c], payload, Duration::ZERO),
                    ),
                    _ => (
                        publishers[c].try_publish(payload),
                        b.try_publish(&names[c], payload),
                    ),
                };
                let shown = |r: Result<usize, fanout::PublishError<u64>>| match r {
                    Ok(n) => (n, 0usize),
                    Err(e) => (e.delivered(), e.full().len()),
                };
                assert_eq!(shown(got_a), shown(got_b), "{} on {}", ctx(), names[c]);
                let expected = subs_b.iter().any(|s| {
                    s.channels().contains(&names[c])
                        || s.patterns().iter().any(|p| reference_match(p, &names[c]))
                });
                assert_eq!(
                    publishers[c].is_matched(),
                    expected,
                    "{} on {}",
                    ctx(),
                    names[c]
                );
            }
        }
        // Disconnected twins are replaced alike.
        for i in 0..HANDLES {
            assert_eq!(subs_a[i].is_closed(), subs_b[i].is_closed(), "{}", ctx());
            if subs_a[i].is_closed() {
                assert_eq!(drained(&subs_a[i]), drained(&subs_b[i]), "{}", ctx());
                subs_a[i] = twin_handle(&a, config, step + i);
                subs_b[i] = twin_handle(&b, config, step + i);
            }
        }
    }
    for i in 0..HANDLES {
        assert_eq!(
            drained(&subs_a[i]),
            drained(&subs_b[i]),
            "{config:?} seed {seed} end"
        );
    }
    assert_eq!(a.stats().published, b.stats().published);
    assert_eq!(a.stats().delivered, b.stats().delivered);
    assert_eq!(a.stats().dropped, b.stats().dropped);
}

fn steps() -> usize {
    if cfg!(debug_assertions) {
        3_000
    } else {
        20_000
    }
}

#[test]
fn publisher_and_broker_publish_agree_plain() {
    for seed in 0..3 {
        differential(Config::Plain, seed, steps());
    }
}

#[test]
fn publisher_and_broker_publish_agree_with_history_and_replay() {
    for seed in 0..3 {
        differential(Config::History, seed, steps());
    }
}

#[test]
fn publisher_and_broker_publish_agree_with_one_delivery_and_replay() {
    for seed in 0..3 {
        differential(Config::OnceAndReplay, seed, steps());
    }
}

#[test]
fn publisher_and_broker_publish_agree_with_each_overflow() {
    for overflow in [
        Overflow::Block,
        Overflow::DropNewest,
        Overflow::DropOldest,
        Overflow::Disconnect,
    ] {
        for seed in 0..2 {
            differential(Config::Bounded(overflow), seed, steps());
        }
    }
}

/// The cached position must never deliver to another channel: publishers of every channel of
/// a crowded broker publish while channels of their stripes are removed (moving others by
/// `swap_remove`) and re-added in another order.
#[test]
fn a_stale_position_never_delivers_to_another_channel() {
    const N: usize = 2048; // 32 per stripe
    let broker = Broker::<u64>::new();
    let names: Vec<String> = (0..N).map(|i| format!("k{i}")).collect();
    let publishers: Vec<_> = names.iter().map(|n| broker.publisher(n)).collect();
    let sub = broker
        .pubsub_builder()
        .ignore_subscribe_messages(true)
        .build();
    let mut present = vec![false; N];
    let mut x = 7u64;
    for round in 0..(race_rounds() / 4).max(20) {
        // Remove or add a pseudo-random third of the channels, in a pseudo-random order.
        for _ in 0..N / 3 {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let i = (x >> 33) as usize % N;
            if present[i] {
                sub.unsubscribe(names[i].as_str());
            } else {
                sub.subscribe(names[i].as_str());
            }
            present[i] = !present[i];
            // Publish through a neighbour now and then, so positions are cached mid-churn.
            let j = (i * 31 + 17) % N;
            let n = publishers[j].publish(j as u64);
            assert_eq!(n, usize::from(present[j]), "round {round} channel {j}");
        }
        let _ = drained(&sub);
        for (i, publisher) in publishers.iter().enumerate() {
            let n = publisher.publish(i as u64);
            assert_eq!(n, usize::from(present[i]), "round {round} channel {i}");
            assert_eq!(publisher.is_matched(), present[i]);
            if present[i] {
                let m = sub.get_message(Duration::ZERO).expect("delivered");
                assert_eq!(
                    (m.channel(), m.data()),
                    (Some(names[i].as_str()), Some(&(i as u64)))
                );
            }
        }
        assert!(sub.get_message(Duration::ZERO).is_none());
    }
}

/// The one channel is removed and re-added, with the stripe's generation moving in between by
/// other channels; its publisher made before it ever existed, and one made in between.
#[test]
fn a_channel_removed_and_readded_is_found_again() {
    let broker = Broker::<u64>::new();
    let early = broker.publisher("c");
    let others: Vec<String> = (0..500).map(|i| format!("o{i}")).collect();
    let a = broker.pubsub();
    let b = broker.pubsub();
    for round in 0..200 {
        a.subscribe("c");
        assert_eq!(early.publish(1), 1, "round {round}");
        b.subscribe(others.iter().map(String::as_str).collect::<Vec<_>>());
        let middle = broker.publisher("c");
        assert_eq!(middle.publish(2), 1);
        a.unsubscribe("c");
        assert_eq!(early.publish(3), 0);
        assert_eq!(middle.publish(3), 0);
        b.unsubscribe(
            others[..round % 500]
                .iter()
                .map(String::as_str)
                .collect::<Vec<_>>(),
        );
        b.subscribe("c");
        assert_eq!(early.publish(4), 1);
        b.unsubscribe_all();
        assert_eq!(early.publish(5), 0);
        assert!(!early.is_matched());
    }
    let seen: Vec<String> = drained(&b);
    assert!(seen
        .iter()
        .filter(|m| m.starts_with("message"))
        .all(|m| m.contains("Some(\"c\")")));
}

#[cfg(feature = "async")]
#[test]
fn publish_async_through_a_publisher_counts_as_the_broker_does() {
    let broker = Broker::<u64>::builder().history(2, 8).build();
    let p = broker.publisher("a.b");
    let sub = broker
        .pubsub_builder()
        .one_delivery_per_publish(true)
        .build();
    sub.subscribe("a.b");
    sub.psubscribe(["a.*", "*"]);
    let other = broker.pubsub();
    other.psubscribe("*.b");
    let via_publisher = futures::executor::block_on(p.publish_async(1));
    let via_broker = futures::executor::block_on(broker.publish_async("a.b", 2));
    assert_eq!(via_publisher, via_broker);
    assert_eq!(via_publisher, p.publish(3));
    assert_eq!(via_publisher, 2);
}

// ---------------------------------------------------------------------------------------
// Hostile names: is_matched against what a publish does
// ---------------------------------------------------------------------------------------

const ALPHABET: &[char] = &['a', 'b', '*', '?', '[', ']', '^', '-', '\\', '!'];

#[derive(Debug, Clone)]
enum NameOp {
    Subscribe(usize, String),
    Unsubscribe(usize, String),
    PSubscribe(usize, String),
    PUnsubscribe(usize, String),
    Drop(usize),
    Publisher(String),
}

fn name_op() -> impl Strategy<Value = NameOp> {
    let name = || common::text_from(ALPHABET, 5);
    prop_oneof![
        (0..3usize, name()).prop_map(|(h, n)| NameOp::Subscribe(h, n)),
        (0..3usize, name()).prop_map(|(h, n)| NameOp::Unsubscribe(h, n)),
        (0..3usize, name()).prop_map(|(h, n)| NameOp::PSubscribe(h, n)),
        (0..3usize, name()).prop_map(|(h, n)| NameOp::PUnsubscribe(h, n)),
        (0..3usize).prop_map(NameOp::Drop),
        name().prop_map(NameOp::Publisher),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, failure_persistence: None, ..ProptestConfig::default() })]

    /// Channel names and patterns full of glob metacharacters (and the empty name): after
    /// every step, each publisher is matched exactly when a publish returns more than 0, and
    /// when the reference matcher says a subscription reaches it.
    #[test]
    fn hostile_names_is_matched_iff_publish_reaches(ops in proptest::collection::vec(name_op(), 1..50)) {
        let broker = Broker::<u64>::new();
        let mut subs: Vec<PubSub<u64>> = (0..3).map(|_| broker.pubsub()).collect();
        let mut publishers: Vec<Publisher<u64>> = ["", "*", "[", "\\", "a*b"]
            .iter()
            .map(|c| broker.publisher(c))
            .collect();
        for op in ops {
            match op {
                NameOp::Subscribe(h, n) => subs[h].subscribe(n.as_str()),
                NameOp::Unsubscribe(h, n) => subs[h].unsubscribe(n.as_str()),
                NameOp::PSubscribe(h, n) => subs[h].psubscribe(n.as_str()),
                NameOp::PUnsubscribe(h, n) => subs[h].punsubscribe(n.as_str()),
                NameOp::Drop(h) => subs[h] = broker.pubsub(),
                NameOp::Publisher(n) => publishers.push(broker.publisher(&n)),
            }
            for p in &publishers {
                let c = p.channel();
                let reference = subs.iter().any(|s| {
                    s.channels().iter().any(|x| x == c)
                        || s.patterns().iter().any(|pat| reference_match(pat, c))
                });
                let published = p.publish(0);
                prop_assert_eq!(published, broker.publish(c, 0), "channel {:?}", c);
                prop_assert_eq!(p.is_matched(), published > 0, "channel {:?}", c);
                prop_assert_eq!(p.is_matched(), reference, "channel {:?}", c);
            }
        }
    }
}

/// Many publishers and many patterns: one pattern `*` toggles them all; each other pattern
/// matches a tenth; the status of each follows.
#[test]
fn thousands_of_publishers_and_patterns_stay_exact() {
    let broker = Broker::<u64>::new();
    let publishers: Vec<_> = (0..3000)
        .map(|i| broker.publisher(&format!("p.{i}")))
        .collect();
    let sub = broker.pubsub();
    let patterns: Vec<String> = (0..500).map(|i| format!("p.{i}*")).collect();
    sub.psubscribe(patterns.iter().map(String::as_str).collect::<Vec<_>>());
    let matched_by_patterns =
        |i: usize| (0..500).any(|k| reference_match(&format!("p.{k}*"), &format!("p.{i}")));
    for (i, p) in publishers.iter().enumerate() {
        assert_eq!(p.is_matched(), matched_by_patterns(i), "p.{i}");
    }
    sub.psubscribe("*");
    assert!(publishers.iter().all(Publisher::is_matched));
    sub.punsubscribe(patterns.iter().map(String::as_str).collect::<Vec<_>>());
    assert!(publishers.iter().all(Publisher::is_matched));
    sub.punsubscribe("*");
    assert!(!publishers.iter().any(Publisher::is_matched));
    assert!(publishers.iter().all(|p| p.publish(1) == 0));
}

#[test]
fn one_delivery_per_publish_counts_as_is_matched_says() {
    let broker = Broker::<u64>::new();
    let p = broker.publisher("a");
    let sub = broker
        .pubsub_builder()
        .one_delivery_per_publish(true)
        .build();
    sub.subscribe("a");
    sub.psubscribe(["a", "*", "?"]);
    assert!(p.is_matched());
    assert_eq!(p.publish(1), 1);
    sub.unsubscribe("a");
    sub.punsubscribe(["a", "*"]);
    assert!(p.is_matched());
    assert_eq!(p.publish(2), 1);
    sub.punsubscribe("?");
    assert!(!p.is_matched());
    assert_eq!(p.publish(3), 0);
}

/// A full queue under each policy: the status stays matched (a subscription stands), only
/// `Disconnect` removes it, and then the publish that did so has made it false on return.
#[test]
fn full_queues_under_each_policy_and_the_status() {
    for overflow in [
        Overflow::Block,
        Overflow::DropNewest,
        Overflow::DropOldest,
        Overflow::Disconnect,
    ] {
        let broker = Broker::<u64>::new();
        let p = broker.publisher("q");
        let sub = broker
            .pubsub_builder()
            .capacity(1)
            .overflow(overflow)
            .ignore_subscribe_messages(true)
            .build();
        sub.subscribe("q");
        assert_eq!(p.try_publish(1).ok(), Some(1));
        let _ = p.try_publish(2);
        let disconnected = overflow == Overflow::Disconnect;
        assert_eq!(p.is_matched(), !disconnected, "{overflow:?}");
        assert_eq!(
            p.wait_unmatched(Duration::ZERO),
            disconnected,
            "{overflow:?}"
        );
    }
}

// ---------------------------------------------------------------------------------------
// Close
// ---------------------------------------------------------------------------------------

/// `Broker::close` racing a handle's drop, close, unsubscribe or a new subscribe: once close
/// returned, the status is unmatched, and the watch reads whole pairs, then ends.
#[test]
fn close_racing_subscription_changes_ends_unmatched() {
    for round in 0..race_rounds() {
        let broker = Broker::<u64>::new();
        let p = broker.publisher("x");
        let watch = p.matching_changes();
        let sub = broker.pubsub();
        let kind = round % 4;
        if kind != 3 {
            sub.subscribe("x");
        }
        let barrier = Barrier::new(2);
        thread::scope(|s| {
            s.spawn(|| {
                barrier.wait();
                match kind {
                    0 => drop(sub),
                    1 => sub.close(),
                    2 => sub.unsubscribe("x"),
                    _ => sub.psubscribe("*"),
                }
            });
            barrier.wait();
            broker.close();
            assert!(
                !p.is_matched(),
                "round {round} kind {kind}: matched after close"
            );
            assert_eq!(p.publish(1), 0);
        });
        assert!(p.wait_unmatched(Duration::ZERO));
        assert!(!p.wait_matched(Duration::from_secs(5)));
        let seen = within(Duration::from_secs(10), move || watch.collect::<Vec<_>>())
            .expect("the watch ends after the close");
        assert!(seen.len() % 2 == 0, "round {round} kind {kind}: {seen:?}");
        assert!(seen
            .chunks(2)
            .all(|c| c == [Matching::Matched, Matching::Unmatched]));
    }
}

/// The last broker clone dropped while a publisher lives does not close the broker; dropping
/// the publisher then does, and ends the watch it left.
#[test]
fn a_publisher_keeps_the_broker_open_and_its_drop_closes_it() {
    let broker = Broker::<u64>::new();
    let sub = broker.pubsub();
    let p = broker.publisher("x");
    let watch = p.matching_changes();
    drop(broker);
    sub.subscribe("x");
    assert!(!sub.is_closed());
    assert!(p.is_matched());
    assert_eq!(p.publish(1), 1);
    drop(p);
    assert!(
        sub.is_closed(),
        "the last publisher was the last broker clone"
    );
    let seen = within(Duration::from_secs(10), move || watch.collect::<Vec<_>>())
        .expect("the watch ends once the broker is dropped");
    assert_eq!(seen, [Matching::Matched, Matching::Unmatched]);
}

/// A publisher made by a publisher's broker clone chain: clones keep it open, too.
#[test]
fn publisher_clones_keep_the_broker_open() {
    let broker = Broker::<u64>::new();
    let sub = broker.pubsub();
    sub.subscribe("x");
    let p = broker.publisher("x");
    let q = p.clone();
    drop(broker);
    drop(p);
    assert!(!sub.is_closed());
    assert_eq!(q.publish(1), 1);
    drop(q);
    assert!(sub.is_closed());
}

// ---------------------------------------------------------------------------------------
// Drops from payloads and handlers
// ---------------------------------------------------------------------------------------

/// A payload that holds a publisher (the last of its channel, and maybe the last broker
/// clone): dropped by a refused, evicted or forgotten delivery, by the history, or with its
/// handle's queue; none of it may deadlock.
struct Holds(#[allow(dead_code)] Option<Publisher<Holds>>);

#[test]
fn a_payload_holding_the_last_publisher_is_dropped_without_deadlock() {
    let run = || {
        for history in [false, true] {
            let broker = match history {
                true => Broker::<Holds>::builder().history(1, 1).build(),
                false => Broker::<Holds>::new(),
            };
            let newest = broker
                .pubsub_builder()
                .capacity(0)
                .overflow(Overflow::DropNewest)
                .build();
            newest.subscribe("n");
            let oldest = broker
                .pubsub_builder()
                .capacity(1)
                .overflow(Overflow::DropOldest)
                .build();
            oldest.subscribe("o");
            let cut = broker
                .pubsub_builder()
                .capacity(0)
                .overflow(Overflow::Disconnect)
                .build();
            cut.subscribe("d");
            let watcher = broker.publisher("held");
            let mut watch = watcher.matching_changes();
            let hold = || Holds(Some(broker.publisher("held")));
            drop(watcher);
            broker.publish("n", hold());
            broker.publish("o", hold());
            broker.publish("o", hold());
            broker.publish("d", hold());
            broker.publish("nobody", hold());
            broker.publish("h1", hold());
            broker.publish("h2", hold());
            let sub = broker.pubsub();
            sub.subscribe("held");
            assert_eq!(watch.next_timeout(Duration::ZERO), Some(Matching::Matched));
            // The last broker clone in a queued payload, dropped with the handle.
            let keeper = broker.pubsub();
            keeper.subscribe("k");
            broker.publish("k", Holds(Some(broker.publisher("k2"))));
            drop((newest, oldest, cut, sub));
            if history {
                broker.close(); // the history's payloads hold publishers: a cycle
            }
            drop(broker);
            drop(keeper); // drops the queue, its payload, its publisher: the last clone
            assert_eq!(
                watch.next_timeout(Duration::from_secs(5)),
                Some(Matching::Unmatched)
            );
            assert_eq!(watch.next_timeout(Duration::from_secs(5)), None);
            assert!(watch.is_ended());
        }
    };
    assert!(
        within(Duration::from_secs(20), run).is_some(),
        "a payload's publisher deadlocked its drop"
    );
}

/// A handler that makes, uses and drops publishers (and watches), from its worker thread.
#[test]
fn a_handler_that_makes_and_drops_publishers() {
    let run = || {
        let broker = Broker::<u64>::new();
        let sub = broker.pubsub();
        let seen = Arc::new(AtomicUsize::new(0));
        let (b, s) = (broker.clone(), Arc::clone(&seen));
        sub.subscribe_with("in", move |m: Message<u64>| {
            let p = b.publisher("in");
            if p.is_matched() {
                let mut w = p.matching_changes();
                assert_eq!(w.next_timeout(Duration::ZERO), Some(Matching::Matched));
                p.publish(m.data().copied().unwrap_or(0) + 1000);
                s.fetch_add(1, Ordering::Relaxed);
            }
        });
        let worker = sub.run_in_thread().unwrap();
        let p = broker.publisher("in");
        p.publish(1);
        let deadline = Instant::now() + Duration::from_secs(10);
        while seen.load(Ordering::Relaxed) < 5 && Instant::now() < deadline {
            thread::sleep(Duration::from_millis(1));
        }
        worker.stop();
        assert!(seen.load(Ordering::Relaxed) >= 5);
    };
    assert!(
        within(Duration::from_secs(20), run).is_some(),
        "deadlock in a handler"
    );
}

// ---------------------------------------------------------------------------------------
// Waiting: deadlines, spurious wakeups
// ---------------------------------------------------------------------------------------

/// Unparking the waiting thread again and again does not end a wait early, nor make it
/// answer wrongly.
#[test]
fn spurious_unparks_do_not_end_a_wait_early() {
    let broker = Broker::<u64>::new();
    let p = broker.publisher("x");
    let stop = AtomicBool::new(false);
    thread::scope(|s| {
        let waiter = s.spawn(|| {
            let start = Instant::now();
            let matched = p.wait_matched(Duration::from_millis(300));
            let mut watch = p.matching_changes();
            let next = watch.next_timeout(Duration::from_millis(300));
            (matched, next, start.elapsed())
        });
        let t = waiter.thread().clone();
        let stop = &stop;
        s.spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                t.unpark();
                thread::yield_now();
            }
        });
        let (matched, next, elapsed) = waiter.join().unwrap();
        stop.store(true, Ordering::Relaxed);
        assert!(!matched);
        assert_eq!(next, None);
        assert!(elapsed >= Duration::from_millis(600), "{elapsed:?}");
    });
}

/// Huge timeouts (not `MAX`) do not overflow an `Instant`.
#[test]
fn huge_timeouts_do_not_panic() {
    let broker = Broker::<u64>::new();
    let p = broker.publisher("x");
    let sub = broker.pubsub();
    sub.subscribe("x");
    let huge = Duration::new(u64::MAX, 999_999_999);
    let almost = Duration::from_secs(u64::MAX / 2);
    assert!(p.wait_matched(huge));
    assert!(p.wait_matched(almost));
    let mut watch = p.matching_changes();
    assert_eq!(watch.next_timeout(almost), Some(Matching::Matched));
    thread::scope(|s| {
        s.spawn(|| {
            thread::sleep(Duration::from_millis(20));
            sub.unsubscribe("x");
        });
        assert!(p.wait_unmatched(almost));
        assert_eq!(watch.next_timeout(huge), Some(Matching::Unmatched));
    });
}

/// A waiter that waits for each state in turn, with the maker waiting for its word before the
/// next change, and two watches: every waiter is released by the change it waits for (a lost
/// wakeup times it out), and each watch reads every change.
#[test]
fn racing_waiters_and_watches_miss_no_change() {
    let rounds = race_rounds();
    let broker = Broker::<u64>::new();
    let p = broker.publisher("x");
    let sub = broker.pubsub();
    let acks = AtomicUsize::new(0);
    thread::scope(|s| {
        let watches: Vec<_> = (0..2)
            .map(|_| {
                let watch = p.matching_changes();
                s.spawn(move || watch.collect::<Vec<_>>())
            })
            .collect();
        let waiter = s.spawn(|| {
            for _ in 0..rounds {
                if !p.wait_matched(Duration::from_secs(10)) {
                    return false;
                }
                acks.fetch_add(1, Ordering::SeqCst);
                if !p.wait_unmatched(Duration::from_secs(10)) {
                    return false;
                }
                acks.fetch_add(1, Ordering::SeqCst);
            }
            true
        });
        let wait_ack = |n: usize| {
            let deadline = Instant::now() + Duration::from_secs(20);
            while acks.load(Ordering::SeqCst) < n && Instant::now() < deadline {
                thread::yield_now();
            }
            acks.load(Ordering::SeqCst) >= n
        };
        let mut ok = true;
        for n in 0..rounds {
            if n % 2 == 0 {
                sub.subscribe("x");
            } else {
                sub.psubscribe("x*");
            }
            ok &= wait_ack(2 * n + 1);
            sub.unsubscribe_all();
            sub.punsubscribe_all();
            ok &= wait_ack(2 * n + 2);
            if !ok {
                break;
            }
        }
        assert!(waiter.join().unwrap() && ok, "a waiter missed its wakeup");
        broker.close();
        for watch in watches {
            let seen = watch.join().unwrap();
            assert_eq!(seen.len(), 2 * rounds);
            assert!(seen
                .chunks(2)
                .all(|c| c == [Matching::Matched, Matching::Unmatched]));
        }
    });
}

// ---------------------------------------------------------------------------------------
// Async
// ---------------------------------------------------------------------------------------

/// Streams on a multi-threaded runtime while another thread makes changes as fast as it can:
/// each stream reads every change, in order, and ends with the close (a lost wakeup hangs it).
#[cfg(feature = "async")]
#[test]
fn streams_on_a_runtime_miss_no_wakeup() {
    use futures::StreamExt;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_time()
        .build()
        .unwrap();
    for round in 0..(race_rounds() / 10).max(10) {
        let broker = Broker::<u64>::new();
        let p = broker.publisher("x");
        let tasks: Vec<_> = (0..3)
            .map(|_| rt.spawn(p.matching_changes().stream().collect::<Vec<_>>()))
            .collect();
        let sub = broker.pubsub();
        for _ in 0..200 {
            sub.subscribe("x");
            sub.unsubscribe("x");
        }
        broker.close();
        for task in tasks {
            let seen = rt
                .block_on(async { tokio::time::timeout(Duration::from_secs(10), task).await })
                .unwrap_or_else(|_| panic!("round {round}: a stream missed a wakeup"))
                .unwrap();
            assert_eq!(seen.len(), 400);
        }
    }
}

/// A `next()` future cancelled again and again (a `select!`/timeout loop), the stream moved
/// between tasks, and another stream dropped mid-wait: nothing is lost, nothing repeated.
#[cfg(feature = "async")]
#[test]
fn cancelled_polls_and_dropped_streams_lose_nothing() {
    use futures::StreamExt;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_time()
        .build()
        .unwrap();
    let broker = Broker::<u64>::new();
    let p = broker.publisher("x");
    let mut stream = p.matching_changes().stream();
    let doomed = p.matching_changes().stream();
    let doomed_task = rt.spawn(async move {
        let mut doomed = doomed;
        doomed.next().await
    });
    rt.block_on(async { tokio::time::sleep(Duration::from_millis(20)).await });
    doomed_task.abort(); // dropped while registered
    let sub = broker.pubsub();
    let changes = 200;
    let maker = {
        let broker = broker.clone();
        thread::spawn(move || {
            for _ in 0..changes / 2 {
                sub.subscribe("x");
                thread::sleep(Duration::from_micros(100));
                sub.unsubscribe("x");
                thread::sleep(Duration::from_micros(100));
            }
            broker.close();
        })
    };
    let mut seen = Vec::new();
    let mut cancelled = 0;
    loop {
        // Polled in a fresh task each time, then cancelled by a short timeout.
        let (back, got) = rt.block_on(async move {
            let mut stream = stream;
            let got = tokio::time::timeout(Duration::from_micros(50), stream.next()).await;
            (stream, got)
        });
        stream = back;
        match got {
            Err(_) => cancelled += 1,
            Ok(Some(change)) => seen.push(change),
            Ok(None) => break,
        }
        assert!(seen.len() <= changes);
    }
    maker.join().unwrap();
    assert_eq!(seen.len(), changes, "cancelled {cancelled} times");
    assert!(seen
        .chunks(2)
        .all(|c| c == [Matching::Matched, Matching::Unmatched]));
    assert!(!stream.is_matched());
}

/// A stream polled with a waker whose task owns the stream (a hand-made executor): when the
/// watch ends, the waker is dropped by the code that took it; if that is under the interests'
/// lock and the waker was the last owner of the task, the stream's drop would release the
/// interest under that same lock.
#[cfg(feature = "async")]
#[test]
fn a_waker_that_owns_its_stream_is_dropped_with_no_lock_held() {
    use std::future::Future;
    use std::pin::Pin;
    use std::sync::Mutex;
    use std::task::{Context, Wake, Waker};

    use futures::StreamExt;

    struct Task {
        future: Mutex<Option<Pin<Box<dyn Future<Output = ()> + Send>>>>,
    }
    impl Wake for Task {
        fn wake(self: Arc<Self>) {
            // A lazy executor: waking does not run it; dropping the last waker drops the task.
        }
    }
    let run = || {
        let broker = Broker::<u64>::new();
        let p = broker.publisher("x");
        let mut stream = p.matching_changes().stream();
        drop(p); // the stream is the interest's last user
        let task = Arc::new(Task {
            future: Mutex::new(Some(Box::pin(async move {
                let _ = stream.next().await;
            }))),
        });
        {
            let waker = Waker::from(Arc::clone(&task));
            let mut cx = Context::from_waker(&waker);
            let mut slot = task.future.lock().unwrap();
            assert!(slot.as_mut().unwrap().as_mut().poll(&mut cx).is_pending());
        }
        // Only the registered waker keeps the task (and the stream in it) alive now.
        drop(task);
        let sub = broker.pubsub();
        sub.subscribe("x"); // takes the waker, wakes it (a no-op), drops it: the stream goes
        sub.psubscribe("*");
        let again = broker.publisher("x");
        assert!(again.is_matched());
        broker.close();
    };
    assert!(within(Duration::from_secs(10), run).is_some(), "deadlocked");
}

// ---------------------------------------------------------------------------------------
// Memory, nesting, auto traits
// ---------------------------------------------------------------------------------------

/// Interests go with their last user: 100,000 publishers of distinct channels made and
/// dropped (with watches, some outliving their publisher) leave no memory behind. Measured
/// three times over (other tests of this binary allocate meanwhile): the least growth counts.
#[test]
fn interests_go_with_their_last_user() {
    let broker = Broker::<u64>::new();
    let sub = broker.pubsub();
    // A pattern exists, but matches none of them (a pattern the channels are candidates for
    // would fill the broker's bounded match cache, which is not the interests' doing).
    sub.psubscribe("zz*");
    sub.subscribe("m.1");
    let churn = |tag: usize| {
        for i in 0..100_000 {
            let p = broker.publisher(&format!("m.{i}.{tag}.a-longish-channel-name"));
            if i % 3 == 0 {
                let watch = p.matching_changes();
                drop(p);
                drop(watch);
            }
        }
    };
    churn(0); // the tables grow to their peak once
    let mut least = isize::MAX;
    for tag in 1..4 {
        let before = counting_alloc::live();
        churn(tag);
        least = least.min(counting_alloc::live() - before);
    }
    assert!(
        least < 4 << 20,
        "{least} bytes left after 100,000 publishers went"
    );
    // And the table works on.
    let p = broker.publisher("m.1");
    assert!(p.is_matched());
}

/// A pattern past `MAX_STAR_NESTING` matches nothing, for the status as for a publish.
#[test]
fn over_nested_patterns_match_nothing_for_the_status_too() {
    let broker = Broker::<u64>::new();
    let channel = "a".repeat(fanout::MAX_STAR_NESTING + 10);
    let p = broker.publisher(&channel);
    let sub = broker.pubsub();
    let pattern = format!("{}b", "*a".repeat(fanout::MAX_STAR_NESTING + 5));
    sub.psubscribe(pattern.as_str());
    assert_eq!(p.is_matched(), broker.publish(&channel, 1) > 0);
    assert_eq!(p.is_matched(), fanout::glob_match(&pattern, &channel));
    let later = broker.publisher(&channel);
    assert_eq!(later.is_matched(), p.is_matched());
    sub.punsubscribe(pattern.as_str());
    assert!(!p.is_matched());
}

#[test]
fn publishers_and_watches_are_send_and_sync() {
    fn send_sync<X: Send + Sync>() {}
    fn send_unpin<X: Send + Unpin>() {}
    send_sync::<Publisher<str>>();
    send_sync::<Publisher<u64>>();
    send_unpin::<fanout::MatchingChanges>();
    #[cfg(feature = "async")]
    send_unpin::<fanout::MatchingStream>();
}

/// Pattern changes with many publishers: a pattern is counted for the publishers' channels
/// in the range its literal prefix or suffix picks (`Interests::changed`), so every shape of
/// pattern is tried here against 2,000 channels and checked against the reference matcher:
/// a prefix, a suffix, both, neither, escapes, classes (closed, unclosed, with `]` and `\`),
/// the empty pattern. What a pattern change costs with publishers is timed in
/// `benches/throughput.rs` (`pattern_upkeep`), not here.
#[test]
fn patterns_of_every_shape_reach_exactly_their_publishers() {
    let broker = Broker::<u64>::new();
    let channels: Vec<String> = (0..2_000)
        .map(|i| match i % 5 {
            0 => format!("p.{i}"),
            1 => format!("{i}.cpu"),
            2 => format!("a[b]*{i}"),
            3 => format!("x\\y.{i}"),
            _ => format!("{}", i % 7),
        })
        .chain(["", "é.ü", "ü", "ab", "ac", "b", "]", "p.11"].map(String::from))
        .collect();
    let publishers: Vec<_> = channels.iter().map(|c| broker.publisher(c)).collect();
    let patterns = [
        "p.1*",
        "p.*5",
        "*.cpu",
        "*5.cpu",
        "?1.cpu",
        "1?.cpu",
        "*",
        "",
        "p.1[0-2]?",
        "a[[]b]*",
        "a\\[b]*1*",
        "x\\\\y.*",
        "a[bc",
        "[a\\]b",
        "p.1[0-2",
        "a[b",
        "[]]",
        "[^p]*",
        "*[",
        "[]*",
        "*]",
        "é*",
        "*ü",
        "?",
        "[0-9]",
        "a[b\\]*",
        "*\\",
        "p.\\1*",
        "\\*",
        "*.*.*",
    ];
    let sub = broker.pubsub();
    for pattern in patterns {
        sub.psubscribe(pattern);
        for (channel, publisher) in channels.iter().zip(&publishers) {
            let expected = reference_match(pattern, channel);
            assert_eq!(
                publisher.is_matched(),
                expected,
                "{pattern:?} on {channel:?}"
            );
        }
        sub.punsubscribe(pattern);
        assert!(
            publishers.iter().all(|p| !p.is_matched()),
            "{pattern:?} removed"
        );
    }
}
