//! Publishers' matching status (`Publisher::is_matched`, `wait_matched`, `wait_unmatched`,
//! `matching_changes`) against a model: random subscriptions, unsubscriptions, drops and
//! closes across 3 handles and several publishers, checked after every step; races between
//! subscribing threads and a watcher; and each kind of change (pattern, drop, close,
//! `Disconnect` overflow, `Broker::close`) on its own.

mod common;

use std::sync::{Barrier, Mutex};
use std::time::{Duration, Instant};

use common::{glob_reference::reference_match, race_rounds};
use fanout::{Broker, Matching, MatchingChanges, Overflow, PubSub, Publisher};
use proptest::prelude::*;

const HANDLES: usize = 3;
const CHANNELS: &[&str] = &["a", "b", "ab", "ba", "a.b", ""];
const PATTERNS: &[&str] = &["a*", "*b", "?", "[ab]*", "*", "a", "a?b", "[^a]*"];

#[derive(Debug, Clone)]
enum Op {
    Subscribe(usize, Vec<&'static str>),
    PSubscribe(usize, Vec<&'static str>),
    Unsubscribe(usize, Vec<&'static str>),
    PUnsubscribe(usize, Vec<&'static str>),
    UnsubscribeAll(usize),
    PUnsubscribeAll(usize),
    /// The handle is dropped and a new one takes its place.
    Drop(usize),
    /// The handle is closed and a new one takes its place.
    Close(usize),
    /// A new publisher, with a watch made with it.
    NewPublisher(&'static str),
    /// The publisher goes; its watch stays.
    DropPublisher(usize),
    /// Publishes through a publisher, and through the broker on its channel.
    Publish(usize),
}

fn op() -> impl Strategy<Value = Op> {
    let handle = 0..HANDLES;
    let channels = proptest::collection::vec(prop::sample::select(CHANNELS), 0..3);
    let patterns = proptest::collection::vec(prop::sample::select(PATTERNS), 0..3);
    prop_oneof![
        4 => (handle.clone(), channels.clone()).prop_map(|(h, n)| Op::Subscribe(h, n)),
        3 => (handle.clone(), patterns.clone()).prop_map(|(h, n)| Op::PSubscribe(h, n)),
        3 => (handle.clone(), channels).prop_map(|(h, n)| Op::Unsubscribe(h, n)),
        2 => (handle.clone(), patterns).prop_map(|(h, n)| Op::PUnsubscribe(h, n)),
        1 => handle.clone().prop_map(Op::UnsubscribeAll),
        1 => handle.clone().prop_map(Op::PUnsubscribeAll),
        1 => handle.clone().prop_map(Op::Drop),
        1 => handle.prop_map(Op::Close),
        2 => prop::sample::select(CHANNELS).prop_map(Op::NewPublisher),
        1 => (0..8usize).prop_map(Op::DropPublisher),
        3 => (0..8usize).prop_map(Op::Publish),
    ]
}

/// What Redis keeps for one client.
#[derive(Default)]
struct Client {
    channels: Vec<&'static str>,
    patterns: Vec<&'static str>,
}

/// Deliveries a publish on `channel` makes: one per subscribed channel equal to it, one per
/// matching pattern, across clients.
fn deliveries(clients: &[Client], channel: &str) -> usize {
    let on_channel = clients.iter().filter(|c| c.channels.contains(&channel));
    let on_patterns = clients.iter().flat_map(|c| &c.patterns);
    on_channel.count() + on_patterns.filter(|p| reference_match(p, channel)).count()
}

/// A watch and what the model says it has yet to report.
struct Watch {
    channel: &'static str,
    changes: MatchingChanges,
    /// The model's status for the channel when the watch last caught up.
    matched: bool,
}

impl Watch {
    /// The changes the watch reports now, which must be the model's transition since the
    /// last step (one at most: a step only adds or only removes).
    fn check(&mut self, now: bool) -> Result<(), TestCaseError> {
        let reported: Vec<Matching> =
            std::iter::from_fn(|| self.changes.next_timeout(Duration::ZERO)).collect();
        let expected = match (self.matched, now) {
            (false, true) => vec![Matching::Matched],
            (true, false) => vec![Matching::Unmatched],
            _ => vec![],
        };
        prop_assert_eq!(&reported, &expected, "watch of {:?}", self.channel);
        prop_assert_eq!(self.changes.is_matched(), now);
        self.matched = now;
        Ok(())
    }
}

fn run(ops: Vec<Op>) -> Result<(), TestCaseError> {
    let broker = Broker::<str>::new();
    let mut handles: Vec<PubSub<str>> = (0..HANDLES).map(|_| broker.pubsub()).collect();
    let mut model: Vec<Client> = (0..HANDLES).map(|_| Client::default()).collect();
    let mut publishers: Vec<Publisher<str>> = Vec::new();
    let mut watches: Vec<Watch> = Vec::new();
    for op in ops {
        match op {
            Op::Subscribe(h, names) => {
                handles[h].subscribe(&names);
                for name in names {
                    if !model[h].channels.contains(&name) {
                        model[h].channels.push(name);
                    }
                }
            }
            Op::PSubscribe(h, names) => {
                handles[h].psubscribe(&names);
                for name in names {
                    if !model[h].patterns.contains(&name) {
                        model[h].patterns.push(name);
                    }
                }
            }
            Op::Unsubscribe(h, names) => {
                handles[h].unsubscribe(&names);
                model[h].channels.retain(|c| !names.contains(c));
            }
            Op::PUnsubscribe(h, names) => {
                handles[h].punsubscribe(&names);
                model[h].patterns.retain(|p| !names.contains(p));
            }
            Op::UnsubscribeAll(h) => {
                handles[h].unsubscribe_all();
                model[h].channels.clear();
            }
            Op::PUnsubscribeAll(h) => {
                handles[h].punsubscribe_all();
                model[h].patterns.clear();
            }
            Op::Drop(h) | Op::Close(h) => {
                let old = std::mem::replace(&mut handles[h], broker.pubsub());
                match op {
                    Op::Close(_) => old.close(),
                    _ => drop(old),
                }
                model[h] = Client::default();
            }
            Op::NewPublisher(channel) => {
                let publisher = broker.publisher(channel);
                watches.push(Watch {
                    channel,
                    changes: publisher.matching_changes(),
                    matched: false,
                });
                publishers.push(publisher);
            }
            Op::DropPublisher(i) => {
                if !publishers.is_empty() {
                    publishers.remove(i % publishers.len());
                }
            }
            Op::Publish(i) => {
                if let Some(publisher) = publishers.get(i % publishers.len().max(1)) {
                    let expected = deliveries(&model, publisher.channel());
                    prop_assert_eq!(publisher.publish("p"), expected);
                    prop_assert_eq!(broker.publish(publisher.channel(), "b"), expected);
                    prop_assert_eq!(publisher.try_publish("t").ok(), Some(expected));
                }
            }
        }
        for publisher in &publishers {
            let would_reach = deliveries(&model, publisher.channel()) > 0;
            prop_assert_eq!(publisher.is_matched(), would_reach, "{:?}", publisher);
            prop_assert!(publisher.wait_matched(Duration::ZERO) == would_reach);
            prop_assert!(publisher.wait_unmatched(Duration::ZERO) != would_reach);
        }
        for watch in &mut watches {
            watch.check(deliveries(&model, watch.channel) > 0)?;
        }
    }
    broker.close();
    for publisher in &publishers {
        prop_assert!(!publisher.is_matched());
        prop_assert!(!publisher.wait_matched(Duration::from_secs(5)));
        prop_assert_eq!(publisher.publish("after"), 0);
    }
    for watch in &mut watches {
        watch.check(false)?;
        prop_assert!(watch.changes.is_ended());
        prop_assert_eq!(watch.changes.next_timeout(Duration::from_secs(5)), None);
    }
    // Handles drained, so the queued messages are not what keeps anything alive.
    for handle in &handles {
        handle.listen_forever().for_each(drop);
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn matching_status_and_changes_follow_the_model(ops in proptest::collection::vec(op(), 1..60)) {
        run(ops)?;
    }
}

/// A hand-picked run through every kind of change, so a failure reads plainly.
#[test]
fn each_kind_of_change_is_reported_in_order() {
    let broker = Broker::<str>::new();
    let feed = broker.publisher("news.tech");
    let changes = feed.matching_changes();
    let a = broker.pubsub();
    a.subscribe("news.tech"); // Matched
    a.psubscribe("news.*"); // still matched
    a.unsubscribe("news.tech");
    a.punsubscribe("news.*"); // Unmatched
    let b = broker.pubsub();
    b.psubscribe(["n*", "*tech"]); // Matched
    drop(b); // Unmatched
    let c = broker.pubsub();
    c.subscribe("news.tech"); // Matched
    c.close(); // Unmatched
    let d = broker.pubsub();
    d.psubscribe("*"); // Matched
    broker.close(); // Unmatched, and the end
    use Matching::*;
    let all: Vec<Matching> = changes.collect();
    assert_eq!(
        all,
        [Matched, Unmatched, Matched, Unmatched, Matched, Unmatched, Matched, Unmatched]
    );
}

#[test]
fn a_disconnect_overflow_that_removes_the_last_subscription_is_a_change() {
    let broker = Broker::<str>::new();
    let feed = broker.publisher("feed");
    let mut changes = feed.matching_changes();
    let slow = (broker.pubsub_builder())
        .capacity(1)
        .overflow(Overflow::Disconnect)
        .ignore_subscribe_messages(true)
        .build();
    slow.subscribe("feed");
    assert_eq!(
        changes.next_timeout(Duration::ZERO),
        Some(Matching::Matched)
    );
    assert_eq!(feed.publish("1"), 1);
    assert_eq!(feed.publish("2"), 0); // the queue is full: the handle is disconnected
    assert!(!feed.is_matched());
    assert_eq!(
        changes.next_timeout(Duration::ZERO),
        Some(Matching::Unmatched)
    );
    assert_eq!(changes.next_timeout(Duration::ZERO), None);
    assert!(!changes.is_ended()); // the broker is still open
}

#[test]
fn a_watch_made_while_matched_reads_matched_first() {
    let broker = Broker::<str>::new();
    let sub = broker.pubsub();
    sub.psubscribe("*");
    let feed = broker.publisher("anything");
    let mut changes = feed.matching_changes();
    assert!(!changes.is_matched());
    assert_eq!(
        changes.next_timeout(Duration::ZERO),
        Some(Matching::Matched)
    );
    assert_eq!(changes.next_timeout(Duration::ZERO), None);
    // A second publisher of the channel shares the status.
    assert!(broker.publisher("anything").is_matched());
}

#[test]
fn a_publisher_made_after_close_is_unmatched_and_its_watch_ended() {
    let broker = Broker::<str>::new();
    broker.close();
    let feed = broker.publisher("feed");
    assert!(!feed.is_matched() && !feed.wait_matched(Duration::MAX));
    assert!(feed.wait_unmatched(Duration::ZERO));
    let mut changes = feed.matching_changes();
    assert!(changes.is_ended());
    assert_eq!(changes.next(), None);
}

#[test]
fn a_blocked_watch_and_waiters_are_woken_by_close() {
    let broker = Broker::<str>::new();
    let feed = broker.publisher("feed");
    let changes = feed.matching_changes();
    std::thread::scope(|s| {
        let watcher = s.spawn(move || changes.collect::<Vec<_>>());
        let waiter = s.spawn(|| feed.wait_matched(Duration::MAX));
        std::thread::sleep(Duration::from_millis(50));
        broker.close();
        assert_eq!(watcher.join().unwrap(), []);
        assert!(!waiter.join().unwrap());
    });
}

/// Publishers of one channel made and dropped on two threads while a third subscribes or
/// unsubscribes: the status they share is made once and removed with the last, and a publisher
/// made during the change still has the status of the subscriptions once it is done.
#[test]
fn publishers_made_during_a_change_end_with_the_right_status() {
    let broker = Broker::<str>::new();
    let sub = broker.pubsub();
    for round in 0..race_rounds() {
        let barrier = Barrier::new(3);
        let kept: Vec<Publisher<str>> = std::thread::scope(|s| {
            let makers: Vec<_> = (0..2)
                .map(|_| {
                    s.spawn(|| {
                        barrier.wait();
                        let mut last = broker.publisher("shared");
                        for _ in 0..20 {
                            last = broker.publisher("shared").clone();
                        }
                        last
                    })
                })
                .collect();
            barrier.wait();
            match round % 2 {
                0 => sub.subscribe("shared"),
                _ => sub.psubscribe("sh*"),
            }
            makers.into_iter().map(|m| m.join().unwrap()).collect()
        });
        for publisher in &kept {
            assert!(publisher.is_matched(), "round {round}");
            assert_eq!(publisher.publish("x"), 1);
        }
        sub.unsubscribe_all();
        sub.punsubscribe_all();
        for publisher in &kept {
            assert!(!publisher.is_matched(), "round {round}");
            assert_eq!(publisher.publish("x"), 0);
        }
    }
}

/// Threads subscribe and unsubscribe (channels and patterns, on handles of their own) while a
/// watcher blocks on the changes: what it read alternates from `Matched`, and once the threads
/// are done it ends in their final status (the watcher is woken for the last change). The
/// broker's close then ends the watch, with `Unmatched` if it was matched. Each subscription
/// that returned has made the status matched.
#[test]
fn racing_subscriptions_give_alternating_changes_that_end_in_the_final_state() {
    for round in 0..race_rounds() {
        let broker = Broker::<str>::new();
        let feed = broker.publisher("feed.1");
        let changes = feed.matching_changes();
        let seen = Mutex::new(Vec::new());
        let barrier = Barrier::new(4);
        std::thread::scope(|s| {
            let watcher = s.spawn(|| changes.for_each(|change| seen.lock().unwrap().push(change)));
            let workers: Vec<_> = (0..3)
                .map(|t| {
                    let (broker, feed, barrier) = (&broker, &feed, &barrier);
                    s.spawn(move || {
                        let sub = broker
                            .pubsub_builder()
                            .ignore_subscribe_messages(true)
                            .build();
                        barrier.wait();
                        for i in 0..10 {
                            match (t + i) % 3 {
                                0 => sub.subscribe("feed.1"),
                                1 => sub.psubscribe("feed.*"),
                                _ => sub.psubscribe("*.1"),
                            }
                            assert!(feed.is_matched(), "round {round}: a returned subscription");
                            sub.unsubscribe_all();
                            sub.punsubscribe_all();
                        }
                        // Thread 0 stays subscribed in odd rounds.
                        (t == 0 && round % 2 == 1).then(|| {
                            sub.psubscribe("feed.?");
                            sub
                        })
                    })
                })
                .collect();
            barrier.wait();
            let kept: Vec<_> = workers.into_iter().map(|w| w.join().unwrap()).collect();
            let last = match feed.is_matched() {
                true => Some(Matching::Matched),
                false => Some(Matching::Unmatched),
            };
            assert_eq!(
                last,
                Some(if round % 2 == 1 {
                    Matching::Matched
                } else {
                    Matching::Unmatched
                })
            );
            // The blocked watcher is woken for every change, the last one included.
            let deadline = Instant::now() + Duration::from_secs(10);
            while seen.lock().unwrap().last().copied() != last {
                assert!(
                    Instant::now() < deadline,
                    "round {round}: {:?}",
                    seen.lock().unwrap()
                );
                std::thread::yield_now();
            }
            broker.close();
            drop(kept);
            watcher.join().unwrap();
        });
        let seen = seen.into_inner().unwrap();
        let alternating = seen.iter().enumerate().all(|(i, change)| {
            *change
                == if i % 2 == 0 {
                    Matching::Matched
                } else {
                    Matching::Unmatched
                }
        });
        assert!(alternating, "round {round}: {seen:?}");
        // Matched at least once (a subscription returned), ended by an Unmatched.
        assert!(
            seen.len() >= 2 && seen.len() % 2 == 0,
            "round {round}: {seen:?}"
        );
    }
}

/// Threads waiting for either state are released by the change that makes it, from another
/// thread; one waiting past its deadline gets `false`.
#[test]
fn waiters_are_released_by_the_change_they_wait_for() {
    for _ in 0..race_rounds() / 10 {
        let broker = Broker::<str>::new();
        let feed = broker.publisher("feed");
        let sub = broker.pubsub();
        std::thread::scope(|s| {
            let matched = s.spawn(|| feed.wait_matched(Duration::from_secs(10)));
            sub.psubscribe("f*");
            assert!(matched.join().unwrap());
            let unmatched = s.spawn(|| feed.wait_unmatched(Duration::from_secs(10)));
            sub.punsubscribe("f*");
            assert!(unmatched.join().unwrap());
        });
        assert!(!feed.wait_matched(Duration::from_millis(1)));
    }
}

#[cfg(feature = "async")]
#[test]
fn the_stream_reports_every_change_and_ends_with_the_broker() {
    use futures::StreamExt;

    let broker = Broker::<str>::new();
    let feed = broker.publisher("feed");
    let changes = feed.matching_changes().stream();
    let reader =
        std::thread::spawn(move || futures::executor::block_on(changes.collect::<Vec<_>>()));
    let sub = broker.pubsub();
    for _ in 0..100 {
        sub.subscribe("feed");
        sub.unsubscribe("feed");
    }
    sub.psubscribe("*");
    broker.close();
    let seen = reader.join().unwrap();
    assert_eq!(seen.len(), 202);
    assert!(seen
        .chunks(2)
        .all(|c| c == [Matching::Matched, Matching::Unmatched]));
}
