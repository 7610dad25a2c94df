//! 4 publishers x 8 steady subscribers x 100,000 messages each, while other threads subscribe,
//! unsubscribe, close and drop handles of every policy all the time: steady subscribers get
//! every message exactly once and in each publisher's order, and every counter adds up.
//!
//! `FANOUT_STRESS_MESSAGES=1000000 cargo test --release --test stress -- --nocapture` runs
//! a larger one (the count is per publisher).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use fanout::{Broker, Message, Overflow, PubSub};

const PUBLISHERS: usize = 4;
const STEADY: usize = 8;
const CHURNERS: usize = 2;

/// Payload: (publisher, sequence number).
type Seq = (usize, u64);

fn messages_per_publisher() -> u64 {
    std::env::var("FANOUT_STRESS_MESSAGES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100_000)
}

/// What a churning handle saw, checked as it goes and totalled by policy at the end.
#[derive(Default, Debug, Clone, Copy)]
struct Totals {
    handles: u64,
    received: u64,
    delivered: u64,
    dropped: u64,
    missed_reported: u64,
    disconnected: u64,
}

fn policy_name(policy: Option<Overflow>) -> &'static str {
    match policy {
        None => "unbounded",
        Some(Overflow::Block) => "Block",
        Some(Overflow::DropNewest) => "DropNewest",
        Some(Overflow::DropOldest) => "DropOldest",
        Some(Overflow::Disconnect) => "Disconnect",
        Some(_) => "other",
    }
}

/// The last number seen from each publisher, by channel (`[0]`) and by pattern (`[1]`).
type Last = [[Option<u64>; PUBLISHERS]; 2];

/// Reads one message, checking that each publisher's numbers only go up.
fn take(m: Message<Seq>, last: &mut Last, totals: &mut Totals) {
    let (slot, payload) = match m {
        Message::Message { payload, .. } => (0, payload),
        Message::PMessage { payload, .. } => (1, payload),
        Message::Lagged { missed } => return totals.missed_reported += missed,
        _ => return,
    };
    let (p, i) = *payload;
    let last = &mut last[slot][p];
    assert!(
        last.is_none_or(|prev| i > prev),
        "publisher {p}: {i} after {last:?}"
    );
    *last = Some(i);
    totals.received += 1;
}

/// One churning handle's life: subscribe, read a little, then close, unsubscribe or drop.
fn churn_once(broker: &Broker<Seq>, round: u64, totals: &mut BTreeMap<&'static str, Totals>) {
    let policy = match round % 5 {
        0 => None,
        1 => Some(Overflow::Block),
        2 => Some(Overflow::DropNewest),
        3 => Some(Overflow::DropOldest),
        _ => Some(Overflow::Disconnect),
    };
    let builder = broker.pubsub_builder();
    let sub: PubSub<Seq> = match policy {
        None => builder.unbounded().build(),
        Some(overflow) => builder.capacity(8).overflow(overflow).build(),
    };
    sub.subscribe(["stress"]);
    if round.is_multiple_of(2) {
        sub.psubscribe(["stre*"]);
    }
    let mut mine = Totals {
        handles: 1,
        ..Totals::default()
    };
    let mut last: Last = [[None; PUBLISHERS]; 2];
    for _ in 0..(round % 7) * 20 {
        match sub.get_message(Duration::from_micros(200)) {
            Some(m) => take(m, &mut last, &mut mine),
            None => break,
        }
    }
    if round % 3 == 2 {
        return drop(sub); // dropped with its subscriptions: nothing left to check
    }
    if round.is_multiple_of(3) {
        sub.close();
    } else {
        sub.unsubscribe_all();
        sub.punsubscribe_all();
    }
    // No delivery can arrive now: read the rest and check the books of this handle.
    while let Some(m) = sub.get_message(Duration::ZERO) {
        take(m, &mut last, &mut mine);
    }
    let stats = sub.stats();
    mine.delivered = stats.delivered;
    mine.dropped = stats.dropped;
    mine.disconnected = u64::from(stats.disconnected == Some(fanout::Disconnected::Overflow));
    let evicted = if policy == Some(Overflow::DropOldest) {
        stats.dropped
    } else {
        0
    };
    assert_eq!(
        stats.delivered,
        mine.received + evicted,
        "{policy:?}: {stats:?} {mine:?}"
    );
    if matches!(policy, Some(Overflow::DropNewest | Overflow::DropOldest)) {
        assert_eq!(
            mine.missed_reported, stats.dropped,
            "{policy:?}: every drop is reported"
        );
    }
    let entry = totals.entry(policy_name(policy)).or_default();
    entry.handles += 1;
    entry.received += mine.received;
    entry.delivered += mine.delivered;
    entry.dropped += mine.dropped;
    entry.missed_reported += mine.missed_reported;
    entry.disconnected += mine.disconnected;
}

#[test]
fn steady_subscribers_get_everything_once_in_order_while_others_churn() {
    let per_publisher = messages_per_publisher();
    let broker = Broker::<Seq>::new();
    // Half unbounded, half bounded with Block (publishers wait for them); two by pattern.
    let steady: Vec<PubSub<Seq>> = (0..STEADY)
        .map(|i| {
            let sub = if i % 2 == 0 {
                broker.pubsub()
            } else {
                broker
                    .pubsub_builder()
                    .capacity(256)
                    .overflow(Overflow::Block)
                    .build()
            };
            if i < 2 {
                sub.psubscribe(["str*"]);
            } else {
                sub.subscribe(["stress"]);
            }
            sub
        })
        .collect();
    let returned = AtomicU64::new(0);
    let publishing = AtomicBool::new(true);
    let started = Instant::now();
    let churn_totals = thread::scope(|s| {
        for (i, sub) in steady.iter().enumerate() {
            let slot = usize::from(i < 2); // the first two subscribe by pattern
            s.spawn(move || {
                let mut last: Last = [[None; PUBLISHERS]; 2];
                let mut totals = Totals::default();
                assert!(sub.get_message(Duration::ZERO).unwrap().is_confirmation());
                while totals.received < PUBLISHERS as u64 * per_publisher {
                    let m = sub
                        .get_message(Duration::from_secs(30))
                        .expect("no progress for 30 s");
                    take(m, &mut last, &mut totals);
                }
                assert_eq!(
                    last[slot],
                    [Some(per_publisher - 1); PUBLISHERS],
                    "every last message arrived"
                );
                assert_eq!(totals.missed_reported, 0);
                assert!(sub.get_message(Duration::ZERO).is_none(), "nothing twice");
            });
        }
        let churners: Vec<_> = (0..CHURNERS)
            .map(|c| {
                let (broker, publishing) = (&broker, &publishing);
                s.spawn(move || {
                    let mut totals = BTreeMap::new();
                    let mut round = c as u64;
                    while publishing.load(Ordering::Relaxed) {
                        churn_once(broker, round, &mut totals);
                        round += CHURNERS as u64;
                    }
                    totals
                })
            })
            .collect();
        let publishers: Vec<_> = (0..PUBLISHERS)
            .map(|p| {
                let (broker, returned) = (&broker, &returned);
                s.spawn(move || {
                    for i in 0..per_publisher {
                        let delivered = broker.publish("stress", (p, i));
                        assert!(delivered >= STEADY, "a steady subscriber was skipped");
                        returned.fetch_add(delivered as u64, Ordering::Relaxed);
                    }
                })
            })
            .collect();
        for publisher in publishers {
            publisher.join().unwrap();
        }
        publishing.store(false, Ordering::Relaxed);
        let mut all: BTreeMap<&'static str, Totals> = BTreeMap::new();
        for churner in churners {
            for (policy, t) in churner.join().unwrap() {
                let e = all.entry(policy).or_default();
                e.handles += t.handles;
                e.received += t.received;
                e.delivered += t.delivered;
                e.dropped += t.dropped;
                e.missed_reported += t.missed_reported;
                e.disconnected += t.disconnected;
            }
        }
        all
    });
    let elapsed = started.elapsed();

    let stats = broker.stats();
    let steady_deliveries = STEADY as u64 * PUBLISHERS as u64 * per_publisher;
    assert_eq!(stats.published, PUBLISHERS as u64 * per_publisher);
    assert_eq!(
        stats.delivered,
        returned.load(Ordering::Relaxed),
        "publish returns add up"
    );
    let checked: u64 = churn_totals.values().map(|t| t.delivered).sum();
    assert!(stats.delivered >= steady_deliveries + checked);
    let checked_dropped: u64 = churn_totals.values().map(|t| t.dropped).sum();
    assert!(stats.dropped >= checked_dropped);
    for sub in &steady {
        let s = sub.stats();
        assert_eq!(
            (s.delivered, s.dropped, s.queued),
            (PUBLISHERS as u64 * per_publisher, 0, 0)
        );
    }

    println!(
        "stress: {} messages x {} steady subscribers = {} deliveries in {:.2?}; broker: {:?}",
        PUBLISHERS as u64 * per_publisher,
        STEADY,
        steady_deliveries,
        elapsed,
        stats
    );
    for (policy, t) in &churn_totals {
        println!(
            "  churn {policy:<10} handles {:>5} delivered {:>8} received {:>8} dropped {:>8} reported {:>8} disconnected {:>4}",
            t.handles, t.delivered, t.received, t.dropped, t.missed_reported, t.disconnected
        );
    }
}
