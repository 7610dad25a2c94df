//! Retained history: the last payloads of each channel, kept for handles that subscribe
//! later and ask for a replay (`BrokerBuilder::history`).
//!
//! Every recorded publish takes the next number of one counter, so the payloads of several
//! channels can be replayed in publish order. Channels are kept by recency too (a
//! `BTreeMap` from the number of a channel's last publish to its name): once more channels
//! are retained than the bound allows, the least recently published one goes, whole.
//!
//! # Locks
//!
//! One mutex over all of it, a leaf taken under a channel's stripe lock (a publish records
//! there; a channel subscription reads there) or under the pattern table's write lock (a
//! pattern subscription reads every matching channel), and then, for a handle made with
//! `one_delivery_per_publish`, under that handle's `names` too (`replay`); see
//! `engine/index.rs` for why that makes the cut between replayed and live deliveries clean.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Arc;

use parking_lot::Mutex;

use crate::config::HistoryLimits;
use crate::handle::{Handle, SubId, Woken};
use crate::item::{Item, ItemSender};
use crate::kind::Kind;
use crate::message::Message;
use crate::pattern::glob_match;

/// One retained channel: its newest payloads, oldest first, each with its publish number.
/// The queue starts with room for one and grows as payloads come (`grow`), so a channel costs
/// what it holds, whatever `per_channel` allows.
struct Retained<T: ?Sized> {
    payloads: VecDeque<(u64, Arc<T>)>,
}

impl<T: ?Sized> Retained<T> {
    fn last(&self) -> u64 {
        self.payloads.back().map_or(0, |&(number, _)| number)
    }
}

/// `retained`'s payloads as replays of channel `name`, oldest first.
fn replayed<'a, T: ?Sized>(
    name: &'a Arc<str>,
    retained: &'a Retained<T>,
) -> impl Iterator<Item = Replayed<T>> + 'a {
    (retained.payloads.iter()).map(|(number, p)| (*number, Arc::clone(name), Arc::clone(p)))
}

/// Makes room for one more payload in `payloads`, which is full and holds fewer than
/// `per_channel`: doubles its capacity (to at least 4), but never past `per_channel`, so a
/// full channel holds no spare slot.
#[cold]
fn grow<T: ?Sized>(payloads: &mut VecDeque<(u64, Arc<T>)>, per_channel: usize) {
    let len = payloads.len();
    let target = (2 * len).max(4).min(per_channel);
    payloads.reserve_exact(target - len);
}

/// What a record let go of: dropped by the caller once it holds no lock.
pub(crate) struct Released<T: ?Sized> {
    payload: Option<Arc<T>>,
    channel: Option<VecDeque<(u64, Arc<T>)>>,
}

impl<T: ?Sized> Default for Released<T> {
    fn default() -> Self {
        Released {
            payload: None,
            channel: None,
        }
    }
}

/// A payload to replay: its publish number, channel and payload.
pub(crate) type Replayed<T> = (u64, Arc<str>, Arc<T>);

/// The retained payloads of a broker.
pub(crate) struct History<T: ?Sized> {
    limits: HistoryLimits,
    channels: HashMap<Arc<str>, Retained<T>, foldhash::fast::RandomState>,
    /// Each retained channel under the number of its last publish: the first is the least
    /// recently published.
    by_recency: BTreeMap<u64, Arc<str>>,
    /// The number the next recorded publish gets.
    next: u64,
    /// Channels let go of to stay within `limits.channels`.
    evicted: u64,
}

impl<T: ?Sized> History<T> {
    /// A history within `limits`; both must be at least 1.
    pub(crate) fn new(limits: HistoryLimits) -> Self {
        History {
            limits,
            channels: HashMap::default(),
            by_recency: BTreeMap::new(),
            next: 1,
            evicted: 0,
        }
    }

    /// Keeps `payload` as `channel`'s newest, letting go of its oldest beyond the limit and,
    /// for a channel not retained yet, of the least recently published channel beyond the
    /// bound. `shared` is the channel map's text of the name, if it has one, to share. What
    /// it lets go of goes into `released`, for the caller to drop once it holds no lock (a
    /// payload's `Drop` is the user's code).
    pub(crate) fn record(
        &mut self,
        channel: &str,
        shared: Option<&Arc<str>>,
        payload: &Arc<T>,
        released: &mut Released<T>,
    ) {
        let number = self.next;
        self.next += 1;
        if let Some(retained) = self.channels.get_mut(channel) {
            if let Some(name) = self.by_recency.remove(&retained.last()) {
                self.by_recency.insert(number, name);
            }
            let payloads = &mut retained.payloads;
            if payloads.len() == self.limits.per_channel {
                released.payload = payloads.pop_front().map(|(_, p)| p);
            } else if payloads.len() == payloads.capacity() {
                grow(payloads, self.limits.per_channel);
            }
            payloads.push_back((number, Arc::clone(payload)));
            return;
        }
        if self.channels.len() == self.limits.channels {
            if let Some((_, oldest)) = self.by_recency.pop_first() {
                released.channel = self.channels.remove(&oldest).map(|r| r.payloads);
                self.evicted += 1;
            }
        }
        let name = shared.cloned().unwrap_or_else(|| Arc::from(channel));
        let mut payloads = VecDeque::with_capacity(1);
        payloads.push_back((number, Arc::clone(payload)));
        self.by_recency.insert(number, Arc::clone(&name));
        self.channels.insert(name, Retained { payloads });
    }

    /// `channel`'s retained payloads, oldest first.
    pub(crate) fn of_channel(&self, channel: &str) -> Vec<Replayed<T>> {
        let mut found = Vec::new();
        if let Some((name, retained)) = self.channels.get_key_value(channel) {
            found.extend(replayed(name, retained));
        }
        found
    }

    /// The retained payloads of every channel `pattern` matches and `wanted` keeps, in
    /// publish order.
    pub(crate) fn matching(
        &self,
        pattern: &str,
        mut wanted: impl FnMut(&str) -> bool,
    ) -> Vec<Replayed<T>> {
        let mut found: Vec<Replayed<T>> = Vec::new();
        for (name, retained) in &self.channels {
            if glob_match(pattern, name) && wanted(name) {
                found.extend(replayed(name, retained));
            }
        }
        found.sort_unstable_by_key(|&(number, _, _)| number);
        found
    }

    /// Retained channels (those `pattern` matches, when given) and how many payloads each
    /// holds, sorted by name.
    pub(crate) fn retained(&self, pattern: Option<&str>) -> Vec<(String, usize)> {
        let mut found: Vec<(String, usize)> = (self.channels.iter())
            .filter(|(name, _)| pattern.map_or(true, |p| glob_match(p, name)))
            .map(|(name, retained)| (name.to_string(), retained.payloads.len()))
            .collect();
        found.sort_unstable();
        found
    }

    /// Channels retained now.
    pub(crate) fn len(&self) -> usize {
        self.channels.len()
    }

    /// Channels let go of to stay within the bound.
    pub(crate) fn evicted(&self) -> u64 {
        self.evicted
    }
}

/// Where a publish records its payload: nowhere ([`NoHistory`]), or a broker's history. The
/// publish path is generic over it, so a broker without history runs code that has none.
pub(crate) trait Recorder<T: ?Sized> {
    /// What recording let go of, for the publisher to drop once it holds no lock.
    type Released: Default;
    /// Whether it records at all.
    const RECORDS: bool;
    /// Records `payload` as `channel`'s newest (see [`History::record`]).
    fn record(
        &self,
        channel: &str,
        shared: Option<&Arc<str>>,
        payload: &Arc<T>,
        released: &mut Self::Released,
    );
}

/// A broker that keeps no history.
pub(crate) struct NoHistory;

impl<T: ?Sized> Recorder<T> for NoHistory {
    type Released = ();
    const RECORDS: bool = false;
    #[inline(always)]
    fn record(&self, _: &str, _: Option<&Arc<str>>, _: &Arc<T>, _: &mut ()) {}
}

impl<T: ?Sized> Recorder<T> for Mutex<History<T>> {
    type Released = Released<T>;
    const RECORDS: bool = true;
    fn record(
        &self,
        channel: &str,
        shared: Option<&Arc<str>>,
        payload: &Arc<T>,
        released: &mut Released<T>,
    ) {
        self.lock().record(channel, shared, payload, released);
    }
}

/// Queues the retained payloads for `handle`'s new subscription `id` to `name`, after its
/// confirmation and under the same index lock (see the module docs): those of the channel,
/// or of every channel the pattern matches, in publish order. A handle made with
/// `one_delivery_per_publish` gets none of a channel another of its subscriptions receives
/// (`PubSubBuilder::one_delivery_per_publish` says why). The history's lock is let go of
/// before anything is queued.
pub(crate) fn replay<T: ?Sized>(
    history: &Mutex<History<T>>,
    kind: Kind,
    name: &Arc<str>,
    handle: &Handle<T>,
    sender: &ItemSender<T>,
    id: SubId,
    woken: &mut Woken,
) {
    // The caller holds the handle's `calls`, so its subscriptions stay as they are here.
    let names = handle.one_per_publish().then(|| handle.names());
    let elsewhere = |channel: &str| names.as_ref().is_some_and(|n| n.receives(channel, id));
    let (pattern, replayed) = match kind {
        Kind::Channel if elsewhere(name) => (None, Vec::new()),
        Kind::Channel => (None, history.lock().of_channel(name)),
        Kind::Pattern => {
            let wanted = |channel: &str| !elsewhere(channel);
            (Some(name), history.lock().matching(name, wanted))
        }
    };
    drop(names);
    for (_, channel, payload) in replayed {
        let message = Message::Replay {
            pattern: pattern.cloned(),
            channel,
            payload,
        };
        let item = Item::Replay {
            slot: id.slot,
            message: Box::new(message),
        };
        handle.send_control(sender, item, woken);
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::{History, HistoryLimits, Released};

    fn history(per_channel: usize, channels: usize) -> History<str> {
        History::new(HistoryLimits {
            per_channel,
            channels,
        })
    }

    #[test]
    fn keeps_the_newest_payloads_of_the_most_recently_published_channels() {
        let mut h = history(2, 2);
        for (channel, payload) in [("a", "1"), ("b", "2"), ("a", "3"), ("a", "4"), ("c", "5")] {
            h.record(channel, None, &Arc::from(payload), &mut Released::default());
        }
        // "b" was the least recently published when "c" came.
        assert_eq!(h.retained(None), [("a".into(), 2), ("c".into(), 1)]);
        let of_a: Vec<_> = h
            .of_channel("a")
            .into_iter()
            .map(|(n, _, p)| (n, p))
            .collect();
        assert_eq!(of_a, [(3, Arc::from("3")), (4, Arc::from("4"))]);
        assert_eq!(h.evicted(), 1);
        let replayed: Vec<_> = h
            .matching("*", |_| true)
            .into_iter()
            .map(|(n, c, _)| (n, c))
            .collect();
        assert_eq!(
            replayed,
            [(3, "a".into()), (4, "a".into()), (5, "c".into())]
        );
    }

    #[test]
    fn a_publish_refreshes_its_channel() {
        let mut h = history(1, 2);
        for channel in ["a", "b", "a", "c"] {
            h.record(channel, None, &Arc::from("x"), &mut Released::default());
        }
        assert_eq!(h.retained(None), [("a".into(), 1), ("c".into(), 1)]);
    }
}
