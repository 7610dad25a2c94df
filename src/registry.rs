//! The broker's shared state: who is subscribed to what, and the publish path.
//!
//! # Locks and their order
//!
//! - `stripes[i]`: a mutex over one slice of the channel map; a channel lives in the stripe
//!   its hash picks, so publishers on different channels seldom meet.
//! - `patterns`: a read-write lock over the pattern table; publishers read it, pattern
//!   (un)subscriptions write it. Publishers skip it entirely while no pattern exists.
//! - A subscriber handle's own `state` mutex (`pubsub.rs`) is always taken *before* these.
//!
//! The order is therefore: handle state, then one stripe or the pattern table. No path holds
//! two stripes, or a stripe and the pattern table, at the same time, and a publisher holds no
//! handle lock at all, so no cycle can form.
//!
//! # Why deliveries are sent under the lock
//!
//! Queues are unbounded, so a send never blocks. Sending while the lock that found the
//! subscriber is held makes each (un)subscription a clean cut in the subscriber's queue: the
//! confirmation is queued under the same lock, so every delivery the subscription lets through
//! comes after its `Subscribe` confirmation and before its `Unsubscribe` confirmation, and a
//! publish that starts after `subscribe`/`unsubscribe` returned sees the new state.

use std::collections::hash_map::RandomState;
use std::collections::HashMap;
use std::hash::BuildHasher;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use crossbeam_channel::Sender;
use parking_lot::{Mutex, RwLock};

use crate::message::Message;
use crate::pattern::glob_match;

/// Number of channel-map stripes; a power of two so a hash picks one with a mask.
const STRIPES: usize = 64;

/// The sending end of one subscriber handle's queue, shared by every entry that names it.
///
/// Identity is the allocation: two entries name the same handle when `Arc::ptr_eq` holds.
pub(crate) struct Mailbox<T: ?Sized> {
    sender: Sender<Message<T>>,
}

impl<T: ?Sized> Mailbox<T> {
    pub(crate) fn new(sender: Sender<Message<T>>) -> Self {
        Mailbox { sender }
    }

    /// Queues `message`; false only if every receiver is gone.
    pub(crate) fn send(&self, message: Message<T>) -> bool {
        self.sender.send(message).is_ok()
    }
}

/// Subscribers of one channel or one pattern, in subscription order.
type Subscribers<T> = Vec<Arc<Mailbox<T>>>;

/// One stripe of the channel map, padded to its own cache lines so stripes do not share one.
#[repr(align(128))]
struct Stripe<T: ?Sized>(Mutex<HashMap<Arc<str>, Subscribers<T>>>);

/// A pattern and the handles subscribed to it.
struct PatternEntry<T: ?Sized> {
    pattern: Arc<str>,
    subscribers: Subscribers<T>,
}

/// All subscriptions of one broker.
pub(crate) struct Registry<T: ?Sized> {
    hasher: RandomState,
    stripes: Box<[Stripe<T>]>,
    /// Unique patterns in the order they first appeared.
    patterns: RwLock<Vec<PatternEntry<T>>>,
    /// `patterns.len()`, kept beside it so a publisher can skip the lock when it is 0.
    /// Written under the write lock (Release), read without a lock (Acquire): a publish that
    /// starts after `psubscribe` returned reads the new length.
    pattern_count: AtomicUsize,
}

impl<T: ?Sized> Registry<T> {
    pub(crate) fn new() -> Self {
        Registry {
            hasher: RandomState::new(),
            stripes: (0..STRIPES)
                .map(|_| Stripe(Mutex::new(HashMap::new())))
                .collect(),
            patterns: RwLock::new(Vec::new()),
            pattern_count: AtomicUsize::new(0),
        }
    }

    fn stripe(&self, channel: &str) -> &Mutex<HashMap<Arc<str>, Subscribers<T>>> {
        let hash = self.hasher.hash_one(channel) as usize;
        &self.stripes[hash & (STRIPES - 1)].0
    }

    /// Adds `mailbox` to `channel` and queues `confirm(name)` under the stripe lock.
    ///
    /// The caller has checked that the handle is not subscribed yet. Returns the channel's
    /// shared name, so the handle can keep the same allocation.
    pub(crate) fn add_channel(
        &self,
        channel: &str,
        mailbox: &Arc<Mailbox<T>>,
        confirm: impl FnOnce(Arc<str>) -> Message<T>,
    ) -> Arc<str> {
        let mut map = self.stripe(channel).lock();
        let name = match map.get_key_value(channel) {
            Some((name, _)) => name.clone(),
            None => Arc::from(channel),
        };
        map.entry(name.clone())
            .or_default()
            .push(Arc::clone(mailbox));
        mailbox.send(confirm(name.clone()));
        name
    }

    /// Removes `mailbox` from `channel`, dropping the channel's entry when it was the last,
    /// and queues `confirmation` (if any) under the stripe lock.
    pub(crate) fn remove_channel(
        &self,
        channel: &str,
        mailbox: &Arc<Mailbox<T>>,
        confirmation: Option<Message<T>>,
    ) {
        let mut map = self.stripe(channel).lock();
        if let Some(subscribers) = map.get_mut(channel) {
            subscribers.retain(|m| !Arc::ptr_eq(m, mailbox));
            if subscribers.is_empty() {
                map.remove(channel);
                shrink_if_sparse(&mut map);
            }
        }
        if let Some(message) = confirmation {
            mailbox.send(message);
        }
    }

    /// Adds `mailbox` to `pattern` and queues `confirm(name)` under the table's write lock.
    pub(crate) fn add_pattern(
        &self,
        pattern: &str,
        mailbox: &Arc<Mailbox<T>>,
        confirm: impl FnOnce(Arc<str>) -> Message<T>,
    ) -> Arc<str> {
        let mut table = self.patterns.write();
        let index = match table.iter().position(|e| &*e.pattern == pattern) {
            Some(index) => index,
            None => {
                table.push(PatternEntry {
                    pattern: Arc::from(pattern),
                    subscribers: Vec::new(),
                });
                self.pattern_count.store(table.len(), Ordering::Release);
                table.len() - 1
            }
        };
        let entry = &mut table[index];
        entry.subscribers.push(Arc::clone(mailbox));
        let name = entry.pattern.clone();
        mailbox.send(confirm(name.clone()));
        name
    }

    /// Removes `mailbox` from `pattern`, dropping the pattern when it was the last
    /// subscriber, and queues `confirmation` (if any) under the table's write lock.
    pub(crate) fn remove_pattern(
        &self,
        pattern: &str,
        mailbox: &Arc<Mailbox<T>>,
        confirmation: Option<Message<T>>,
    ) {
        let mut table = self.patterns.write();
        if let Some(index) = table.iter().position(|e| &*e.pattern == pattern) {
            let subscribers = &mut table[index].subscribers;
            subscribers.retain(|m| !Arc::ptr_eq(m, mailbox));
            if subscribers.is_empty() {
                table.remove(index);
                shrink_vec_if_sparse(&mut table);
                self.pattern_count.store(table.len(), Ordering::Release);
            }
        }
        if let Some(message) = confirmation {
            mailbox.send(message);
        }
    }

    /// Delivers `payload` to every subscriber of `channel`, then once per matching pattern
    /// to each of its subscribers; returns the number of deliveries, as Redis's PUBLISH does.
    pub(crate) fn publish(&self, channel: &str, payload: Arc<T>) -> usize {
        let mut delivered = 0;
        let mut name: Option<Arc<str>> = None;
        {
            let map = self.stripe(channel).lock();
            if let Some((key, subscribers)) = map.get_key_value(channel) {
                for mailbox in subscribers {
                    delivered += usize::from(mailbox.send(Message::Message {
                        channel: key.clone(),
                        payload: payload.clone(),
                    }));
                }
                name = Some(key.clone());
            }
        }
        if self.pattern_count.load(Ordering::Acquire) == 0 {
            return delivered;
        }
        let table = self.patterns.read();
        for entry in table.iter() {
            if !glob_match(&entry.pattern, channel) {
                continue;
            }
            let name = name.get_or_insert_with(|| Arc::from(channel));
            for mailbox in &entry.subscribers {
                delivered += usize::from(mailbox.send(Message::PMessage {
                    pattern: entry.pattern.clone(),
                    channel: name.clone(),
                    payload: payload.clone(),
                }));
            }
        }
        delivered
    }

    /// Channels with at least one subscriber, filtered by a glob when given, sorted.
    pub(crate) fn channels(&self, pattern: Option<&str>) -> Vec<String> {
        let mut names: Vec<String> = Vec::new();
        for stripe in self.stripes.iter() {
            let map = stripe.0.lock();
            names.extend(
                map.keys()
                    .filter(|name| pattern.map_or(true, |p| glob_match(p, name)))
                    .map(|name| name.to_string()),
            );
        }
        names.sort_unstable();
        names
    }

    /// Channels with at least one subscriber.
    pub(crate) fn channel_count(&self) -> usize {
        self.stripes
            .iter()
            .map(|stripe| stripe.0.lock().len())
            .sum()
    }

    /// Subscribers of exactly `channel` (patterns are not counted).
    pub(crate) fn numsub(&self, channel: &str) -> usize {
        self.stripe(channel).lock().get(channel).map_or(0, Vec::len)
    }

    /// Unique patterns across all handles.
    pub(crate) fn numpat(&self) -> usize {
        self.pattern_count.load(Ordering::Acquire)
    }
}

/// Gives memory back once a map holds far fewer entries than it has room for, so a burst of
/// short-lived subscriptions does not pin its peak size. Amortised: it halves at most.
pub(crate) fn shrink_if_sparse<K: Eq + std::hash::Hash, V>(map: &mut HashMap<K, V>) {
    if map.capacity() > 8 && map.len() * 4 < map.capacity() {
        map.shrink_to(map.len() * 2);
    }
}

/// The same for a vector.
fn shrink_vec_if_sparse<V>(vec: &mut Vec<V>) {
    if vec.capacity() > 8 && vec.len() * 4 < vec.capacity() {
        vec.shrink_to(vec.len() * 2);
    }
}
