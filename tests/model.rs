//! Random sequences of operations checked against a plain model of Redis's pub/sub state:
//! every confirmation and count, every delivery, the PUBLISH reply, NUMSUB, NUMPAT, CHANNELS.
//! The same runs with the options beyond Redis (retained history and replay, one delivery
//! per publish) check them against the model with those rules added: a naive history (a
//! list of channels in publish order, each with its last payloads) and Redis's deliveries
//! with the duplicates removed.

mod common;

use std::collections::VecDeque;

use common::{drain, glob_reference::reference_match};
use fanout::{Broker, Message, PubSub};
use proptest::prelude::*;

const HANDLES: usize = 3;
const CHANNELS: &[&str] = &["a", "b", "ab", "ba", "a.b", ""];
const PATTERNS: &[&str] = &[
    "a*", "*b", "?", "[ab]*", "*", "a", "", "a?b", "[^a]*", "a[.]b",
];

#[derive(Debug, Clone)]
enum Op {
    Renew(usize),
    Subscribe(usize, Vec<&'static str>),
    PSubscribe(usize, Vec<&'static str>),
    Unsubscribe(usize, Vec<&'static str>),
    PUnsubscribe(usize, Vec<&'static str>),
    UnsubscribeAll(usize),
    PUnsubscribeAll(usize),
    Publish(&'static str),
}

fn op() -> impl Strategy<Value = Op> {
    let handle = 0..HANDLES;
    let channels = proptest::collection::vec(prop::sample::select(CHANNELS), 0..4);
    let patterns = proptest::collection::vec(prop::sample::select(PATTERNS), 0..4);
    prop_oneof![
        1 => handle.clone().prop_map(Op::Renew),
        3 => (handle.clone(), channels.clone()).prop_map(|(h, n)| Op::Subscribe(h, n)),
        3 => (handle.clone(), patterns.clone()).prop_map(|(h, n)| Op::PSubscribe(h, n)),
        2 => (handle.clone(), channels).prop_map(|(h, n)| Op::Unsubscribe(h, n)),
        2 => (handle.clone(), patterns).prop_map(|(h, n)| Op::PUnsubscribe(h, n)),
        1 => handle.clone().prop_map(Op::UnsubscribeAll),
        1 => handle.prop_map(Op::PUnsubscribeAll),
        6 => prop::sample::select(CHANNELS).prop_map(Op::Publish),
    ]
}

/// What Redis keeps for one client, in subscription order.
#[derive(Default)]
struct Client {
    channels: Vec<&'static str>,
    patterns: Vec<&'static str>,
}

impl Client {
    fn count(&self) -> usize {
        self.channels.len() + self.patterns.len()
    }
}

/// A confirmation or delivery, as comparable text: kind, channel, pattern, count, payload.
type Item = (
    &'static str,
    Option<String>,
    Option<String>,
    Option<usize>,
    Option<String>,
);

fn item(m: &Message<str>) -> Item {
    (
        m.kind(),
        m.channel().map(str::to_string),
        m.pattern().map(str::to_string),
        m.count(),
        m.data().map(str::to_string),
    )
}

fn confirm(kind: &'static str, name: &str, count: usize) -> Item {
    let name = Some(name.to_string());
    match kind {
        "subscribe" | "unsubscribe" => (kind, name, None, Some(count), None),
        _ => (kind, None, name, Some(count), None),
    }
}

/// The options beyond Redis a run uses: per handle, and the broker's history.
#[derive(Debug, Clone, Copy, Default)]
struct Options {
    replay: [bool; HANDLES],
    once: [bool; HANDLES],
    /// Payloads per channel, channels.
    history: Option<(usize, usize)>,
}

/// The naive history: retained channels, least recently published first, each with its
/// last payloads and their publish numbers.
#[derive(Default)]
struct History {
    channels: Vec<(&'static str, VecDeque<(u64, String)>)>,
    evicted: u64,
}

impl History {
    fn record(&mut self, (per_channel, max): (usize, usize), channel: &'static str, n: u64) {
        let payloads = match self.channels.iter().position(|(c, _)| *c == channel) {
            Some(i) => self.channels.remove(i).1,
            None => {
                if self.channels.len() == max {
                    self.channels.remove(0);
                    self.evicted += 1;
                }
                VecDeque::new()
            }
        };
        let mut payloads = payloads;
        payloads.push_back((n, n.to_string()));
        if payloads.len() > per_channel {
            payloads.pop_front();
        }
        self.channels.push((channel, payloads));
    }

    /// What a new subscription to `name` replays: the channels it receives that `elsewhere`
    /// (the handle's other subscriptions) does not.
    fn replay(&self, channel: bool, name: &str, elsewhere: impl Fn(&str) -> bool) -> Vec<Item> {
        let mut found: Vec<(u64, Item)> = Vec::new();
        for (c, payloads) in &self.channels {
            let matches = if channel {
                c == &name
            } else {
                reference_match(name, c)
            };
            if matches && !elsewhere(c) {
                let pattern = (!channel).then(|| name.to_string());
                found.extend(payloads.iter().map(|(n, p)| {
                    let replay = (
                        "replay",
                        Some(c.to_string()),
                        pattern.clone(),
                        None,
                        Some(p.clone()),
                    );
                    (*n, replay)
                }));
            }
        }
        found.sort_by_key(|(n, _)| *n);
        found.into_iter().map(|(_, i)| i).collect()
    }

    fn retained(&self) -> Vec<(String, usize)> {
        let mut all: Vec<_> = (self.channels.iter())
            .map(|(c, p)| (c.to_string(), p.len()))
            .collect();
        all.sort();
        all
    }
}

fn run(ops: Vec<Op>) -> Result<(), TestCaseError> {
    run_with(ops, Options::default())
}

fn run_with(ops: Vec<Op>, options: Options) -> Result<(), TestCaseError> {
    let broker = match options.history {
        Some((per_channel, channels)) => Broker::<str>::builder()
            .history(per_channel, channels)
            .build(),
        None => Broker::<str>::new(),
    };
    let new_handle = |h: usize| {
        (broker.pubsub_builder())
            .replay(options.replay[h])
            .one_delivery_per_publish(options.once[h])
            .build()
    };
    let mut handles: Vec<PubSub<str>> = (0..HANDLES).map(new_handle).collect();
    let mut model: Vec<Client> = (0..HANDLES).map(|_| Client::default()).collect();
    let mut history = History::default();
    let mut published = 0u64;
    for op in ops {
        let mut expected: Vec<Vec<Item>> = vec![Vec::new(); HANDLES];
        match op.clone() {
            Op::Renew(h) => {
                handles[h] = new_handle(h);
                model[h] = Client::default();
            }
            Op::Subscribe(h, names) | Op::PSubscribe(h, names) => {
                let channel = matches!(op, Op::Subscribe(..));
                let c = &mut model[h];
                for name in &names {
                    let new = !(if channel { &c.channels } else { &c.patterns }).contains(name);
                    // Each new subscription replays what is retained for it; one of a handle
                    // that takes one delivery per publish leaves out the channels its other
                    // subscriptions receive.
                    let replayed = (new && options.replay[h]).then(|| {
                        let elsewhere = |ch: &str| {
                            options.once[h]
                                && (c.channels.contains(&ch)
                                    || c.patterns.iter().any(|p| reference_match(p, ch)))
                        };
                        history.replay(channel, name, elsewhere)
                    });
                    let list = if channel {
                        &mut c.channels
                    } else {
                        &mut c.patterns
                    };
                    if new {
                        list.push(name);
                    }
                    let kind = if channel { "subscribe" } else { "psubscribe" };
                    expected[h].push(confirm(kind, name, c.count()));
                    expected[h].extend(replayed.into_iter().flatten());
                }
                if channel {
                    handles[h].subscribe(&names)
                } else {
                    handles[h].psubscribe(&names)
                }
            }
            Op::Unsubscribe(h, names) | Op::PUnsubscribe(h, names) => {
                let channel = matches!(op, Op::Unsubscribe(..));
                let c = &mut model[h];
                for name in &names {
                    let list = if channel {
                        &mut c.channels
                    } else {
                        &mut c.patterns
                    };
                    list.retain(|n| n != name);
                    let kind = if channel {
                        "unsubscribe"
                    } else {
                        "punsubscribe"
                    };
                    expected[h].push(confirm(kind, name, c.count()));
                }
                if channel {
                    handles[h].unsubscribe(&names)
                } else {
                    handles[h].punsubscribe(&names)
                }
            }
            Op::UnsubscribeAll(h) | Op::PUnsubscribeAll(h) => {
                let channel = matches!(op, Op::UnsubscribeAll(..));
                let c = &mut model[h];
                let total = c.count();
                let names = std::mem::take(if channel {
                    &mut c.channels
                } else {
                    &mut c.patterns
                });
                let kind = if channel {
                    "unsubscribe"
                } else {
                    "punsubscribe"
                };
                for (i, name) in names.into_iter().enumerate() {
                    expected[h].push(confirm(kind, name, total - i - 1));
                }
                if channel {
                    handles[h].unsubscribe_all()
                } else {
                    handles[h].punsubscribe_all()
                }
            }
            Op::Publish(channel) => {
                published += 1;
                let payload = Some(published.to_string());
                let mut total = 0;
                for (h, c) in model.iter().enumerate() {
                    let subscribed = c.channels.contains(&channel);
                    if subscribed {
                        let message =
                            ("message", Some(channel.into()), None, None, payload.clone());
                        expected[h].push(message);
                    }
                    let mut pmessages: Vec<Item> = c
                        .patterns
                        .iter()
                        .filter(|p| reference_match(p, channel))
                        .map(|p| {
                            let pattern = Some(p.to_string());
                            (
                                "pmessage",
                                Some(channel.into()),
                                pattern,
                                None,
                                payload.clone(),
                            )
                        })
                        .collect();
                    if options.once[h] {
                        // Redis's deliveries with the duplicates removed: the channel's, else
                        // the first matching pattern's in subscription order.
                        pmessages.truncate(usize::from(!subscribed));
                    }
                    pmessages.sort();
                    expected[h].extend(pmessages);
                    total += expected[h].len();
                }
                if let Some(limits) = options.history {
                    history.record(limits, channel, published);
                }
                prop_assert_eq!(
                    broker.publish(channel, published.to_string()),
                    total,
                    "PUBLISH {:?}",
                    channel
                );
            }
        }
        for (h, sub) in handles.iter().enumerate() {
            let mut got: Vec<Item> = drain(sub).iter().map(item).collect();
            // Redis leaves the order among one publish's pattern deliveries open: sort them.
            if let Op::Publish(_) = op {
                let first_pattern = got
                    .iter()
                    .position(|i| i.0 == "pmessage")
                    .unwrap_or(got.len());
                got[first_pattern..].sort();
            }
            prop_assert_eq!(&got, &expected[h], "handle {} after {:?}", h, op);
            prop_assert_eq!(sub.subscriptions(), model[h].count());
            prop_assert_eq!(sub.is_subscribed(), model[h].count() > 0);
        }
        for channel in CHANNELS {
            let subscribers = model
                .iter()
                .filter(|c| c.channels.contains(channel))
                .count();
            prop_assert_eq!(broker.numsub(channel), subscribers, "NUMSUB {:?}", channel);
        }
        let mut unique: Vec<_> = model
            .iter()
            .flat_map(|c| c.patterns.iter().copied())
            .collect();
        unique.sort_unstable();
        unique.dedup();
        prop_assert_eq!(broker.numpat(), unique.len());
        prop_assert_eq!(broker.retained(None), history.retained());
        let stats = broker.stats();
        prop_assert_eq!(
            (stats.retained_channels, stats.history_evicted),
            (history.channels.len(), history.evicted)
        );
        let mut active: Vec<String> = model
            .iter()
            .flat_map(|c| c.channels.iter().map(|s| s.to_string()))
            .collect();
        active.sort_unstable();
        active.dedup();
        prop_assert_eq!(broker.channels(None), active.clone());
        for pattern in PATTERNS {
            let filtered: Vec<String> = active
                .iter()
                .filter(|c| reference_match(pattern, c))
                .cloned()
                .collect();
            prop_assert_eq!(
                broker.channels(Some(pattern)),
                filtered,
                "CHANNELS {:?}",
                pattern
            );
        }
    }
    Ok(())
}

fn options() -> impl Strategy<Value = Options> {
    let flags = proptest::array::uniform3(any::<bool>());
    let history = prop::option::weighted(0.8, (1..4usize, 1..5usize));
    (flags, flags, history).prop_map(|(replay, once, history)| Options {
        replay,
        once,
        history,
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(500))]

    #[test]
    fn broker_behaves_like_the_model(ops in proptest::collection::vec(op(), 1..60)) {
        run(ops)?;
    }

    #[test]
    fn history_replay_and_one_delivery_behave_like_the_model(
        options in options(),
        ops in proptest::collection::vec(op(), 1..60),
    ) {
        run_with(ops, options)?;
    }
}
