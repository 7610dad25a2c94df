//! One delivery per publish (`PubSubBuilder::one_delivery_per_publish`, Redis's proposed
//! NOPUBDUP) where it meets full queues and concurrent (un)subscriptions. The rule itself is
//! checked against the Redis model with duplicates removed in `model.rs`; with replay too,
//! against a model of what each subscription replays.

mod common;

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};

use common::{drain, glob_reference::reference_match};
use fanout::{Broker, Message, Overflow, PubSub};
use proptest::prelude::*;

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

/// With replay too, a delivery waiting for room counts as received: a subscription made
/// meanwhile does not replay it, so it is not read twice; should the subscription it waits on
/// then go (with no stand-in that matched the publish), it is not read at all.
#[test]
fn with_replay_a_delivery_waiting_for_room_is_not_replayed_again() {
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
        h.psubscribe("a*"); // replays nothing: `a` receives the channel
        h.unsubscribe("a"); // the waiting delivery's only subscription at its publish
        assert_eq!(waiting.join().unwrap(), 0);
    });
    assert_eq!(read(&h), [("message", 1)]);
}

/// `(kind, payload)` of each queued message but confirmations.
fn read(sub: &PubSub<u64>) -> Vec<(&'static str, u64)> {
    drain(sub)
        .iter()
        .filter_map(|m| Some((m.kind(), *m.data()?)))
        .collect()
}

/// A broker keeping `news` (1, 2) and `nx` (3), and a handle that replays, taking one
/// delivery per publish when `once`.
fn news(once: bool) -> (Broker<u64>, PubSub<u64>) {
    let broker = Broker::<u64>::builder().history(10, 100).build();
    for (channel, payload) in [("news", 1), ("news", 2), ("nx", 3)] {
        broker.publish(channel, payload);
    }
    let h = broker
        .pubsub_builder()
        .replay(true)
        .one_delivery_per_publish(once)
        .ignore_subscribe_messages(true)
        .build();
    (broker, h)
}

#[test]
fn a_pattern_does_not_replay_a_channel_the_handle_subscribes() {
    let (broker, h) = news(true);
    h.subscribe("news");
    h.psubscribe("n*");
    assert_eq!(read(&h), [("replay", 1), ("replay", 2), ("replay", 3)]);
    broker.publish("news", 4);
    assert_eq!(read(&h), [("message", 4)]);
}

#[test]
fn a_channel_does_not_replay_what_a_pattern_of_the_handle_replayed() {
    let (broker, h) = news(true);
    h.psubscribe("n*");
    h.subscribe("news");
    assert_eq!(read(&h), [("replay", 1), ("replay", 2), ("replay", 3)]);
    broker.publish("news", 4);
    assert_eq!(read(&h), [("message", 4)]);
}

#[test]
fn a_second_pattern_replays_only_the_channels_the_first_does_not_match() {
    let (broker, h) = news(true);
    broker.publish("ne", 5);
    h.psubscribe("ne*");
    h.psubscribe("n*");
    assert_eq!(
        read(&h),
        [("replay", 1), ("replay", 2), ("replay", 5), ("replay", 3)]
    );
}

#[test]
fn patterns_subscribed_in_one_call_replay_each_channel_once() {
    let (_broker, h) = news(true);
    h.psubscribe(["n*", "ne*", "*"]);
    h.subscribe(["news", "nx"]);
    assert_eq!(read(&h), [("replay", 1), ("replay", 2), ("replay", 3)]);
}

#[test]
fn once_the_other_subscription_is_gone_a_new_one_replays_again() {
    let (_broker, h) = news(true);
    h.subscribe("news");
    h.psubscribe("n*");
    h.unsubscribe("news");
    h.psubscribe("ne*"); // `n*` still receives `news`
    assert_eq!(read(&h), [("replay", 1), ("replay", 2), ("replay", 3)]);
    h.punsubscribe(["n*", "ne*"]);
    h.subscribe("news"); // nothing else receives it now: a new subscription replays
    assert_eq!(read(&h), [("replay", 1), ("replay", 2)]);
}

#[test]
fn without_the_option_each_subscription_replays_as_before() {
    let (_broker, h) = news(false);
    h.subscribe("news");
    h.psubscribe("n*");
    assert_eq!(
        read(&h),
        [
            ("replay", 1),
            ("replay", 2),
            ("replay", 1),
            ("replay", 2),
            ("replay", 3)
        ]
    );
}

const CHANNELS: &[&str] = &["news", "nx", "ne", "n", "a", "ab"];
const PATTERNS: &[&str] = &["n*", "ne*", "*", "n?", "?e*", "a*", "news", "[an]*"];

#[derive(Debug, Clone)]
enum Op {
    Publish(&'static str),
    Subscribe(Vec<&'static str>),
    PSubscribe(Vec<&'static str>),
    Unsubscribe(&'static str),
    PUnsubscribe(&'static str),
}

fn op() -> impl Strategy<Value = Op> {
    let channel = || prop::sample::select(CHANNELS);
    let pattern = || prop::sample::select(PATTERNS);
    prop_oneof![
        4 => channel().prop_map(Op::Publish),
        2 => proptest::collection::vec(channel(), 1..3).prop_map(Op::Subscribe),
        2 => proptest::collection::vec(pattern(), 1..3).prop_map(Op::PSubscribe),
        1 => channel().prop_map(Op::Unsubscribe),
        1 => pattern().prop_map(Op::PUnsubscribe),
    ]
}

/// What the docs promise a replaying handle: a publish reaches it live through each of its
/// subscriptions that match it (through one, with one delivery per publish), and a new
/// subscription replays what is retained of each channel it matches, leaving out (with one
/// delivery per publish) the channels another of its subscriptions receives.
#[derive(Default)]
struct Model {
    once: bool,
    channels: Vec<&'static str>,
    patterns: Vec<&'static str>,
    /// Per payload, how many times the handle gets it.
    expected: BTreeMap<u64, usize>,
}

impl Model {
    /// Subscriptions of the handle that receive `channel`, but the new one to `except`
    /// (a pattern when `true`).
    fn receiving(&self, channel: &str, except: Option<(bool, &str)>) -> usize {
        let own = (self.channels.iter()).filter(|&&c| c == channel && except != Some((false, c)));
        let patterns = (self.patterns.iter())
            .filter(|&&p| reference_match(p, channel) && except != Some((true, p)));
        own.count() + patterns.count()
    }

    fn publish(&mut self, channel: &str, payload: u64) {
        let receiving = self.receiving(channel, None);
        let times = if self.once {
            receiving.min(1)
        } else {
            receiving
        };
        *self.expected.entry(payload).or_default() += times;
    }

    /// A new subscription to `name` (`channels` or `patterns`) replays `retained`.
    fn add(&mut self, pattern: bool, name: &'static str, retained: &Retained) {
        let subscribed = if pattern {
            &mut self.patterns
        } else {
            &mut self.channels
        };
        if subscribed.contains(&name) {
            return;
        }
        subscribed.push(name);
        for (channel, payloads) in &retained.channels {
            let matches = if pattern {
                reference_match(name, channel)
            } else {
                name == *channel
            };
            let elsewhere = self.once && self.receiving(channel, Some((pattern, name))) > 0;
            if matches && !elsewhere {
                payloads
                    .iter()
                    .for_each(|&p| *self.expected.entry(p).or_default() += 1);
            }
        }
    }
}

/// The broker's history: the last `per_channel` payloads of at most `bound` channels, the
/// least recently published let go of first.
struct Retained {
    per_channel: usize,
    bound: usize,
    channels: HashMap<&'static str, VecDeque<u64>>,
    by_recency: Vec<&'static str>,
}

impl Retained {
    fn record(&mut self, channel: &'static str, payload: u64) {
        self.by_recency.retain(|&c| c != channel);
        if !self.channels.contains_key(channel) && self.channels.len() == self.bound {
            let oldest = self.by_recency.remove(0);
            self.channels.remove(oldest);
        }
        self.by_recency.push(channel);
        let kept = self.channels.entry(channel).or_default();
        if kept.len() == self.per_channel {
            kept.pop_front();
        }
        kept.push_back(payload);
    }
}

/// Runs `ops` on a handle with replay, and one without one delivery per publish beside it:
/// each gets each payload as often as the model says; with no unsubscription, the one that
/// takes one delivery per publish gets each at most once.
fn replays_as_documented(
    per_channel: usize,
    bound: usize,
    ops: &[Op],
) -> Result<(), TestCaseError> {
    let broker = Broker::<u64>::builder().history(per_channel, bound).build();
    let handles = [true, false].map(|once| {
        let h = broker
            .pubsub_builder()
            .replay(true)
            .one_delivery_per_publish(once)
            .ignore_subscribe_messages(true)
            .build();
        (
            h,
            Model {
                once,
                ..Model::default()
            },
        )
    });
    let mut retained = Retained {
        per_channel,
        bound,
        channels: HashMap::new(),
        by_recency: Vec::new(),
    };
    let mut handles = handles;
    for (payload, op) in (0u64..).zip(ops) {
        for (h, model) in &mut handles {
            match op {
                Op::Publish(_) => {}
                Op::Subscribe(names) => {
                    h.subscribe(names.as_slice());
                    names.iter().for_each(|&n| model.add(false, n, &retained));
                }
                Op::PSubscribe(names) => {
                    h.psubscribe(names.as_slice());
                    names.iter().for_each(|&n| model.add(true, n, &retained));
                }
                Op::Unsubscribe(name) => {
                    h.unsubscribe(*name);
                    model.channels.retain(|c| c != name);
                }
                Op::PUnsubscribe(name) => {
                    h.punsubscribe(*name);
                    model.patterns.retain(|p| p != name);
                }
            }
        }
        if let Op::Publish(channel) = op {
            broker.publish(channel, payload);
            retained.record(channel, payload);
            for (_, model) in &mut handles {
                model.publish(channel, payload);
            }
        }
    }
    let unsubscribed = ops
        .iter()
        .any(|op| matches!(op, Op::Unsubscribe(_) | Op::PUnsubscribe(_)));
    for (h, model) in &handles {
        let mut got: BTreeMap<u64, usize> = BTreeMap::new();
        for (_, payload) in read(h) {
            *got.entry(payload).or_default() += 1;
        }
        let expected: BTreeMap<u64, usize> = (model.expected.iter())
            .filter(|&(_, &n)| n > 0)
            .map(|(&p, &n)| (p, n))
            .collect();
        prop_assert_eq!(&got, &expected, "once: {}", model.once);
        if model.once && !unsubscribed {
            prop_assert!(got.values().all(|&n| n == 1), "{:?}", got);
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(500))]

    /// Random subscription orders, several names a call, over retained payloads of several
    /// channels: replays follow the documented rule, once per payload with the option.
    #[test]
    fn replays_reach_a_one_delivery_handle_at_most_once(
        per_channel in 1usize..4,
        bound in 1usize..8,
        ops in proptest::collection::vec(op(), 1..40),
    ) {
        replays_as_documented(per_channel, bound, &ops)?;
    }

    /// The same without unsubscriptions, where "at most once" is exact.
    #[test]
    fn without_unsubscriptions_each_payload_reaches_a_one_delivery_handle_at_most_once(
        per_channel in 1usize..4,
        ops in proptest::collection::vec(
            op().prop_filter("no unsubscription", |op| {
                !matches!(op, Op::Unsubscribe(_) | Op::PUnsubscribe(_))
            }),
            1..40,
        ),
    ) {
        replays_as_documented(per_channel, 100, &ops)?;
    }
}
