//! The broker's shared state: who is subscribed to what, and the publish path.
//!
//! # Locks and their order
//!
//! 1. A handle's `state` (`subscriber.rs`): its own list of subscriptions.
//! 2. One registry lock: a `stripes[i]` mutex over a slice of the channel map (a channel lives
//!    in the stripe its hash picks, so publishers on different channels seldom meet), or the
//!    `patterns` read-write lock over the pattern table (publishers read it, and skip it
//!    entirely while no pattern exists).
//! 3. A bounded handle's queue lock (`policy.rs`).
//!
//! Locks are only ever taken in that order, and no path holds two registry locks at once.
//! A [`Watcher`] (feature `redis`: the bridge's mirror of subscriptions) is called under a
//! registry lock of level 2 and may take only locks of its own that nothing else is taken
//! under (leaves); the `watcher` and `bridge` slots are read-write locks taken on their own or
//! as such leaves. A
//! publisher starts at 2 and holds no handle's `state`; when it must disconnect a handle, it
//! first lets go of every lock. A publisher that waits for room (`Overflow::Block`) holds
//! nothing but the queue lock, which its condition variable releases while it sleeps.
//!
//! # Why deliveries are queued under the registry lock
//!
//! Queues never block a send (bounded ones only count), so a delivery is queued while the lock
//! that found the subscription is held. Confirmations are queued under the same lock. That
//! makes each (un)subscription a clean cut in the handle's queue: every delivery it lets
//! through comes after its `Subscribe` confirmation and before its `Unsubscribe`
//! confirmation, and a publish that starts after `subscribe`/`unsubscribe` returned sees the
//! new state. A publisher that waited for room checks again, under the lock, that the same
//! subscription (by sequence number) still stands before it queues.
//!
//! # Closing reaches every handle
//!
//! `close` must end the readers of handles that hold no subscription too, so the registry
//! keeps every live handle in `handles` (weakly). The protocol with a handle being made at
//! the same moment: `close` stores `closed`, then reads `handles` under its lock;
//! `register` inserts under that lock only if it still sees `closed` unset there. So a new
//! handle is either in the set `close` reads (and detached by it) or sees the flag (and is
//! born detached); its readers end either way.
//!
//! # A cancelled `publish_async`
//!
//! Its future may be dropped while it waits for room. It keeps its work in an
//! `Unfinished`, whose `Drop` refuses each delivery still waiting (under the subscription's
//! registry lock, as a wait would re-check it: the handle counts it dropped and reads a
//! `Lagged` notice) and counts what the publish delivered, as `finish` does.

use std::collections::{HashMap, HashSet};
use std::hash::BuildHasher;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Weak};
use std::time::Instant;

use crossbeam_channel::Sender;
use parking_lot::{Mutex, RwLock};

use crate::channel_map::ChannelTable;
use crate::entries::{Entries, Entry};
use crate::message::Message;
use crate::pattern::glob_match;
use crate::pattern_table::{Pattern, PatternTable};
use crate::policy::{Offer, Overflow, Tally};
use crate::shrink::shrink_if_sparse;
use crate::stats::{BrokerStats, Disconnected};
use crate::subscriber::{State, Subscriber, SubscriberId};

/// Number of channel-map stripes; a power of two so a hash picks one with a mask.
const STRIPES: usize = 64;

/// One stripe of the channel map and its counters, padded to its own cache lines.
#[repr(align(128))]
struct Stripe<T: ?Sized> {
    map: Mutex<ChannelTable<Entries<T>>>,
    /// Publish calls to channels of this stripe. Changed only under `map`'s lock, so a plain
    /// load and store (no read-modify-write) is enough; `stats` reads it without the lock.
    published: AtomicU64,
    /// Channel deliveries those calls queued; changed only under `map`'s lock, like `published`.
    delivered: AtomicU64,
    /// Pattern deliveries and deliveries after a wait, which happen without `map`'s lock.
    delivered_late: AtomicU64,
}

/// The queue a new handle gets unless its builder says otherwise.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct QueueConfig {
    pub(crate) capacity: Option<usize>,
    pub(crate) overflow: Overflow,
    /// redis-py's `ignore_subscribe_messages`.
    pub(crate) ignore_confirmations: bool,
}

/// How long a publisher may wait for a full `Block` queue.
#[derive(Clone, Copy)]
pub(crate) enum Wait {
    Never,
    Until(Instant),
    Forever,
}

/// What one publish did.
#[derive(Default)]
pub(crate) struct Published {
    pub(crate) delivered: usize,
    /// Handles that did not get the message because their queue was full.
    pub(crate) full: Vec<SubscriberId>,
    /// A bridge's backlog was full and did not take the message.
    pub(crate) backlog_full: bool,
}

/// A name whose first subscriber came or whose last went: what a bridge mirrors to Redis.
#[cfg_attr(not(feature = "redis"), allow(dead_code))]
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(crate) enum Change {
    /// A channel or pattern got its first subscriber.
    Added(Topic),
    /// A channel or pattern lost its last subscriber.
    Removed(Topic),
}

/// A channel or a pattern, by name.
#[cfg_attr(not(feature = "redis"), allow(dead_code))]
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) enum Topic {
    Channel(Arc<str>),
    Pattern(Arc<str>),
}

/// Told of every [`Change`], under the registry lock that made it, so changes to one name
/// arrive in the order they happened. Must not block, nor take any lock but its own.
pub(crate) type Watcher = Arc<dyn Fn(Change) + Send + Sync>;

/// Which subscriptions one delivery is for.
#[derive(Clone, Copy)]
pub(crate) enum Scope<'a> {
    /// The channel's subscribers, then every matching pattern's: a local publish.
    All,
    /// Only the channel's own subscribers (a Redis `message`).
    #[cfg_attr(not(feature = "redis"), allow(dead_code))]
    Channel,
    /// Only this pattern's subscribers (a Redis `pmessage`).
    #[cfg_attr(not(feature = "redis"), allow(dead_code))]
    Pattern(&'a str),
}

/// Where publishes go instead of straight to local queues: a Redis bridge (feature `redis`).
pub(crate) trait Outbound<T: ?Sized>: Send + Sync {
    /// Publishes `payload` on `channel` through the bridge, waiting for room as `wait` allows.
    fn publish(&self, channel: &str, payload: Arc<T>, wait: Wait) -> Published;

    /// `publish` for async callers: waits for room without blocking the thread.
    #[cfg(feature = "async")]
    fn publish_async<'a>(
        &'a self,
        channel: &'a str,
        payload: Arc<T>,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Published> + Send + 'a>>;

    /// The broker was closed: publishers waiting for room in the bridge are released, and
    /// later publishes are refused.
    fn broker_closed(&self);
}

/// All subscriptions of one broker.
pub(crate) struct Registry<T: ?Sized> {
    /// Keyed per broker, so names chosen from outside cannot aim at one bucket.
    hasher: foldhash::fast::RandomState,
    stripes: Box<[Stripe<T>]>,
    /// Unique patterns in the order they first appeared, with a cache of matches.
    patterns: RwLock<PatternTable<Entries<T>>>,
    /// `patterns.len()`, kept beside it so a publisher can skip the lock when it is 0.
    /// Written under the write lock (Release), read without a lock (Acquire): a publish that
    /// starts after `psubscribe` returned reads the new length.
    pattern_count: AtomicUsize,
    /// Set once by `close`, under every registry lock in turn (see `close`).
    closed: AtomicBool,
    dropped: AtomicU64,
    subscribers: AtomicUsize,
    /// Every live handle, so `close` reaches those that hold no subscription too. A leaf lock,
    /// taken on its own; `close` stores `closed` before taking it and `register` loads
    /// `closed` under it, so a handle either is in the set `close` reads or sees the flag.
    handles: Mutex<HashMap<SubscriberId, Weak<Subscriber<T>>>>,
    next_id: AtomicU64,
    pub(crate) defaults: QueueConfig,
    /// Told of names coming and going (see [`Watcher`]); `None` unless a bridge is attached.
    watcher: RwLock<Option<Watcher>>,
    /// Set while a bridge is attached, so a publish checks `bridge` only then.
    bridged: AtomicBool,
    bridge: RwLock<Option<Arc<dyn Outbound<T>>>>,
}

/// Where a waiting publisher finds the subscription again.
enum Target {
    Channel(Arc<str>),
    Pattern(Arc<str>),
}

/// A registry lock held while a waiting publisher queues (see `hold_subscription`).
#[allow(dead_code)] // the guards are held for their lock, never read, and released on drop
enum Held<'a, T: ?Sized> {
    Channel(parking_lot::MutexGuard<'a, ChannelTable<Entries<T>>>),
    Pattern(parking_lot::RwLockReadGuard<'a, PatternTable<Entries<T>>>),
}

/// A delivery that found a `Block` queue full, to retry without any registry lock held.
struct Deferred<T: ?Sized> {
    subscriber: Arc<Subscriber<T>>,
    seq: u64,
    target: Target,
    /// `None` only while it is being offered.
    message: Option<Message<T>>,
}

impl<T: ?Sized> Deferred<T> {
    /// The sender clones it queued with may have been the queue's last: an async reader of
    /// a handle closed meanwhile then sees the end.
    fn done(self) {
        if !self.subscriber.is_open() {
            self.subscriber.reader_wake.wake();
        }
    }
}

/// A `publish_async` in progress: what it has done, and the deliveries still waiting for room.
///
/// Dropped before the publish finished (its future was cancelled), it refuses the waiting
/// deliveries (each handle counts it dropped and reads a `Lagged` notice where it would have
/// been) and adds what the publish did to the broker's counters, as `finish` does: nothing
/// is lost unseen, and the deliveries it made are counted though no caller gets the number.
#[cfg(feature = "async")]
struct Unfinished<'a, T: ?Sized> {
    registry: &'a Registry<T>,
    /// `None` once finished.
    round: Option<Round<'a, T>>,
    /// The first is the one being waited for.
    deferred: std::collections::VecDeque<Deferred<T>>,
}

#[cfg(feature = "async")]
impl<T: ?Sized> Drop for Unfinished<'_, T> {
    fn drop(&mut self) {
        let Some(mut round) = self.round.take() else {
            return;
        };
        for deferred in std::mem::take(&mut self.deferred) {
            self.registry.refuse(&deferred, &mut round);
            deferred.done();
        }
        self.registry.finish(round);
    }
}

/// The work of one publish, gathered while registry locks are held and finished after.
struct Round<'a, T: ?Sized> {
    may_wait: bool,
    published: Published,
    tally: Tally,
    deferred: Vec<Deferred<T>>,
    /// The handles in `deferred`, so a later delivery to one of them waits behind it; made
    /// at the first deferral (most publishes have none).
    waiting: Option<HashSet<SubscriberId>>,
    disconnect: Vec<Arc<Subscriber<T>>>,
    /// The channel's stripe, whose counters the round adds to.
    stripe: &'a Stripe<T>,
    /// Deliveries counted under the stripe's lock; the rest are added at the end.
    channel_delivered: usize,
}

impl<T: ?Sized> Round<'_, T> {
    fn offer(&mut self, entry: &Entry<T>, target: impl FnOnce() -> Target, message: Message<T>) {
        // Once a handle waits in this publish, its later deliveries wait behind it, so the
        // channel's message still comes before the patterns' ones.
        let waiting = self.waiting.as_ref();
        let offer = if waiting.is_some_and(|w| w.contains(&entry.subscriber.id)) {
            Offer::Full(message)
        } else {
            entry
                .subscriber
                .offer(&entry.sender, message, self.may_wait, &mut self.tally)
        };
        match offer {
            Offer::Delivered => self.published.delivered += 1,
            Offer::Dropped => self.published.full.push(entry.subscriber.id),
            Offer::Full(message) => {
                let waiting = self.waiting.get_or_insert_with(HashSet::new);
                waiting.insert(entry.subscriber.id);
                self.deferred.push(Deferred {
                    subscriber: Arc::clone(&entry.subscriber),
                    seq: entry.seq,
                    target: target(),
                    message: Some(message),
                });
            }
            Offer::Disconnect => {
                self.published.full.push(entry.subscriber.id);
                self.disconnect.push(Arc::clone(&entry.subscriber));
            }
            Offer::Gone => {}
        }
    }
}

impl<T: ?Sized> Registry<T> {
    pub(crate) fn new(defaults: QueueConfig) -> Self {
        Registry {
            hasher: foldhash::fast::RandomState::default(),
            stripes: (0..STRIPES)
                .map(|_| Stripe {
                    map: Mutex::new(ChannelTable::default()),
                    published: AtomicU64::new(0),
                    delivered: AtomicU64::new(0),
                    delivered_late: AtomicU64::new(0),
                })
                .collect(),
            patterns: RwLock::new(PatternTable::default()),
            pattern_count: AtomicUsize::new(0),
            closed: AtomicBool::new(false),
            dropped: AtomicU64::new(0),
            subscribers: AtomicUsize::new(0),
            handles: Mutex::new(HashMap::new()),
            next_id: AtomicU64::new(1),
            defaults,
            watcher: RwLock::new(None),
            bridged: AtomicBool::new(false),
            bridge: RwLock::new(None),
        }
    }

    /// The channel's hash (computed once per call) and the stripe it picks.
    fn stripe(&self, channel: &str) -> (u64, &Stripe<T>) {
        let hash = self.hasher.hash_one(channel);
        (hash, &self.stripes[hash as usize & (STRIPES - 1)])
    }

    pub(crate) fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }

    /// A fresh id for a new handle.
    pub(crate) fn new_id(&self) -> SubscriberId {
        SubscriberId(self.next_id.fetch_add(1, Ordering::Relaxed))
    }

    /// Counts `subscriber` as live until `handle_dropped`, so that `close` reaches it; false
    /// (and not kept) when the broker is closed already: the caller detaches it then.
    pub(crate) fn register(&self, subscriber: &Arc<Subscriber<T>>) -> bool {
        self.subscribers.fetch_add(1, Ordering::Relaxed);
        let mut handles = self.handles.lock();
        if self.is_closed() {
            return false;
        }
        handles.insert(subscriber.id, Arc::downgrade(subscriber));
        true
    }

    pub(crate) fn handle_dropped(&self, id: SubscriberId) {
        self.subscribers.fetch_sub(1, Ordering::Relaxed);
        let mut handles = self.handles.lock();
        handles.remove(&id);
        shrink_if_sparse(&mut handles);
    }

    /// Adds a subscription to `channel` and queues `confirm(name)` under the stripe lock.
    ///
    /// Returns the channel's shared name, or `None` when the broker is closed.
    pub(crate) fn add_channel(
        &self,
        channel: &str,
        subscriber: &Arc<Subscriber<T>>,
        sender: &Sender<Message<T>>,
        seq: u64,
        confirm: impl FnOnce(Arc<str>) -> Message<T>,
    ) -> Option<Arc<str>> {
        let (hash, stripe) = self.stripe(channel);
        let mut map = stripe.map.lock();
        if self.is_closed() {
            return None;
        }
        let entry = map.get_or_insert(hash, channel);
        let name = entry.name.clone();
        let first = entry.value.is_empty();
        join(&mut entry.value, &name, subscriber, sender, seq, confirm);
        if first {
            self.tell(|| Change::Added(Topic::Channel(name.clone())));
        }
        Some(name)
    }

    /// Removes `subscriber`'s subscription to `channel`, dropping the channel's entry when it
    /// was the last, and queues `confirmation` (if any) under the stripe lock.
    pub(crate) fn remove_channel(
        &self,
        channel: &str,
        subscriber: &Arc<Subscriber<T>>,
        confirmation: Option<(&Sender<Message<T>>, Message<T>)>,
    ) {
        let (hash, stripe) = self.stripe(channel);
        let mut map = stripe.map.lock();
        if let Some(entry) = map.get_mut(hash, channel) {
            entry.value.remove(subscriber.id);
            if entry.value.is_empty() {
                let name = entry.name.clone();
                map.remove(hash, channel);
                self.tell(|| Change::Removed(Topic::Channel(name)));
            }
        }
        if let Some((sender, message)) = confirmation {
            subscriber.send_control(sender, message);
        }
        drop(map);
        subscriber.wake_publishers();
    }

    /// Adds a subscription to `pattern` and queues `confirm(name)` under the table's write
    /// lock. Returns the pattern's shared text, or `None` when the broker is closed.
    pub(crate) fn add_pattern(
        &self,
        pattern: &str,
        subscriber: &Arc<Subscriber<T>>,
        sender: &Sender<Message<T>>,
        seq: u64,
        confirm: impl FnOnce(Arc<str>) -> Message<T>,
    ) -> Option<Arc<str>> {
        let mut table = self.patterns.write();
        if self.is_closed() {
            return None;
        }
        let entry = table.get_or_insert(pattern);
        let name = entry.pattern.clone();
        let first = entry.value.is_empty();
        join(&mut entry.value, &name, subscriber, sender, seq, confirm);
        self.pattern_count.store(table.len(), Ordering::Release);
        if first {
            self.tell(|| Change::Added(Topic::Pattern(name.clone())));
        }
        Some(name)
    }

    /// Removes `subscriber`'s subscription to `pattern`, dropping the pattern when it was the
    /// last, and queues `confirmation` (if any) under the table's write lock.
    pub(crate) fn remove_pattern(
        &self,
        pattern: &str,
        subscriber: &Arc<Subscriber<T>>,
        confirmation: Option<(&Sender<Message<T>>, Message<T>)>,
    ) {
        let mut table = self.patterns.write();
        if let Some(entry) = table.get_mut(pattern) {
            entry.value.remove(subscriber.id);
            if entry.value.is_empty() {
                let name = entry.pattern.clone();
                table.remove(pattern);
                self.pattern_count.store(table.len(), Ordering::Release);
                self.tell(|| Change::Removed(Topic::Pattern(name)));
            }
        }
        if let Some((sender, message)) = confirmation {
            subscriber.send_control(sender, message);
        }
        drop(table);
        subscriber.wake_publishers();
    }

    /// Delivers `payload` to every subscriber of `channel`, then once per matching pattern
    /// to each of its subscribers; full `Block` queues are waited for as `wait` allows, with
    /// no registry lock held.
    pub(crate) fn publish(&self, channel: &str, payload: Arc<T>, wait: Wait) -> Published {
        self.publish_to(channel, payload, Scope::All, wait)
    }

    /// `publish`, to the subscriptions `scope` names only.
    pub(crate) fn publish_to(
        &self,
        channel: &str,
        payload: Arc<T>,
        scope: Scope<'_>,
        wait: Wait,
    ) -> Published {
        let may_wait = !matches!(wait, Wait::Never);
        let Some(mut round) = self.offer_all(channel, payload, scope, may_wait) else {
            return Published::default();
        };
        for deferred in std::mem::take(&mut round.deferred) {
            self.deliver_after_wait(deferred, wait, &mut round);
        }
        self.finish(round)
    }

    /// `publish` for async callers: full `Block` queues are waited for without blocking the
    /// thread (the task is woken when room may have appeared or the subscription changed).
    ///
    /// # Cancellation
    ///
    /// The future may be dropped at any await (a `timeout` or a `select!` does that). The
    /// deliveries already queued stay queued and are counted in the broker's `delivered`; the
    /// ones still waiting for room are dropped as a `try_publish` would drop them: each such
    /// handle reads a `Lagged` notice and counts them in `dropped` (see [`Unfinished`]).
    #[cfg(feature = "async")]
    pub(crate) async fn publish_async(
        &self,
        channel: &str,
        payload: Arc<T>,
        scope: Scope<'_>,
    ) -> Published {
        let Some(mut round) = self.offer_all(channel, payload, scope, true) else {
            return Published::default();
        };
        let deferred = std::mem::take(&mut round.deferred).into();
        let mut unfinished = Unfinished {
            registry: self,
            round: Some(round),
            deferred,
        };
        while let Some(next) = unfinished.deferred.front_mut() {
            let Some(round) = unfinished.round.as_mut() else {
                break;
            };
            let delivered = std::future::poll_fn(|cx| {
                let Some(message) = next.message.take() else {
                    return std::task::Poll::Ready(false);
                };
                // Check the subscription and offer under its registry lock, as `publish` does.
                let Some((_held, sender)) =
                    self.hold_subscription(&next.target, &next.subscriber, next.seq)
                else {
                    return std::task::Poll::Ready(false);
                };
                let subscriber = &next.subscriber;
                match subscriber.offer_or_register(&sender, message, &mut round.tally, cx.waker()) {
                    Ok(delivered) => std::task::Poll::Ready(delivered),
                    Err(again) => {
                        next.message = Some(again);
                        std::task::Poll::Pending
                    }
                }
            })
            .await;
            if delivered {
                round.published.delivered += 1;
            }
            if let Some(done) = unfinished.deferred.pop_front() {
                done.done();
            }
        }
        match unfinished.round.take() {
            Some(round) => self.finish(round),
            None => Published::default(),
        }
    }

    /// Refuses a delivery that was waiting for room, as `try_publish` refuses one: when the
    /// subscription still stands, the handle counts it dropped and reads a `Lagged` notice.
    #[cfg(feature = "async")]
    fn refuse(&self, deferred: &Deferred<T>, round: &mut Round<'_, T>) {
        if deferred.message.is_none() {
            return;
        }
        let held = self.hold_subscription(&deferred.target, &deferred.subscriber, deferred.seq);
        if let Some((_held, _sender)) = held {
            deferred.subscriber.refuse(&mut round.tally);
            round.published.full.push(deferred.subscriber.id);
        }
    }

    /// Offers `payload` to every subscription that matches `channel`, channel subscribers
    /// first, without waiting: full `Block` queues are left in the round's `deferred`.
    /// `None` when the broker is closed.
    fn offer_all(
        &self,
        channel: &str,
        payload: Arc<T>,
        scope: Scope<'_>,
        may_wait: bool,
    ) -> Option<Round<'_, T>> {
        if self.is_closed() {
            return None;
        }
        let (hash, stripe) = self.stripe(channel);
        let mut round = Round {
            may_wait,
            published: Published::default(),
            tally: Tally::default(),
            deferred: Vec::new(),
            waiting: None,
            disconnect: Vec::new(),
            stripe,
            channel_delivered: 0,
        };
        let mut name: Option<Arc<str>> = None;
        // Read before the channel's lock: a `psubscribe` that returned before this call began
        // is seen, and without patterns the table is not touched at all.
        let patterns =
            self.pattern_count.load(Ordering::Acquire) > 0 && !matches!(scope, Scope::Channel);
        {
            let map = stripe.map.lock();
            if let Some(found) = map.get(hash, channel) {
                let key = &found.name;
                let entries = match scope {
                    Scope::Pattern(_) => [].iter(),
                    Scope::All | Scope::Channel => found.value.iter(),
                };
                for entry in entries {
                    let message = Message::Message {
                        channel: key.clone(),
                        payload: payload.clone(),
                    };
                    round.offer(entry, || Target::Channel(key.clone()), message);
                }
                if patterns {
                    name = Some(key.clone());
                }
            }
            add_under_lock(&stripe.published, 1);
            add_under_lock(&stripe.delivered, round.published.delivered as u64);
        }
        round.channel_delivered = round.published.delivered;
        if patterns {
            let table = self.patterns.read();
            let deliver = |pattern: &Pattern<Entries<T>>| {
                let name = name.get_or_insert_with(|| Arc::from(channel));
                for entry in &pattern.value {
                    let message = Message::PMessage {
                        pattern: pattern.pattern.clone(),
                        channel: name.clone(),
                        payload: payload.clone(),
                    };
                    round.offer(entry, || Target::Pattern(pattern.pattern.clone()), message);
                }
            };
            match scope {
                // Redis matched it already: its matcher decides (it compares range ends as
                // signed chars, where `glob_match` compares bytes), so it is not matched again.
                Scope::Pattern(only) => table.get(only).into_iter().for_each(deliver),
                Scope::All | Scope::Channel => table.for_each_match(hash, channel, deliver),
            }
        }
        Some(round)
    }

    /// Disconnects the handles the round found full under `Disconnect` (no lock is held
    /// now), and counts what the round did.
    fn finish(&self, mut round: Round<'_, T>) -> Published {
        for subscriber in std::mem::take(&mut round.disconnect) {
            self.detach(&subscriber, Disconnected::Overflow);
        }
        let late = round.published.delivered - round.channel_delivered;
        if late > 0 {
            round
                .stripe
                .delivered_late
                .fetch_add(late as u64, Ordering::Relaxed);
        }
        if round.tally.dropped > 0 {
            self.dropped
                .fetch_add(round.tally.dropped, Ordering::Relaxed);
        }
        round.published
    }

    /// The registry lock over `target`, held, if `subscriber`'s subscription with sequence
    /// number `seq` still stands there: a waiting publisher checks and queues under it, as
    /// `publish` does, so an unsubscription in between is a clean cut.
    ///
    /// Also gives a clone of the subscription's sender, for the caller to queue with and drop
    /// right after: a waiting publisher holds none meanwhile, so a handle closed while a
    /// `publish_async` future sits unpolled still sees its queue end.
    fn hold_subscription(
        &self,
        target: &Target,
        subscriber: &Arc<Subscriber<T>>,
        seq: u64,
    ) -> Option<(Held<'_, T>, Sender<Message<T>>)> {
        match target {
            Target::Channel(name) => {
                let (hash, stripe) = self.stripe(name);
                let map = stripe.map.lock();
                let entries = &map.get(hash, name)?.value;
                let sender = entries.get(subscriber.id, seq)?.sender.clone();
                Some((Held::Channel(map), sender))
            }
            Target::Pattern(pattern) => {
                let table = self.patterns.read();
                let entries = &table.get(pattern)?.value;
                let sender = entries.get(subscriber.id, seq)?.sender.clone();
                Some((Held::Pattern(table), sender))
            }
        }
    }

    /// Retries a delivery to a full `Block` queue until it is queued, refused at the
    /// deadline, or the subscription it was meant for is gone.
    fn deliver_after_wait(&self, mut deferred: Deferred<T>, wait: Wait, round: &mut Round<'_, T>) {
        let deadline = match wait {
            Wait::Until(deadline) => Some(deadline),
            Wait::Forever | Wait::Never => None,
        };
        let Some(mut message) = deferred.message.take() else {
            return deferred.done();
        };
        let Deferred {
            subscriber,
            seq,
            target,
            ..
        } = &deferred;
        loop {
            let Some((held, sender)) = self.hold_subscription(target, subscriber, *seq) else {
                break;
            };
            // Released early only to wait; after a delivery it is held until the handle's
            // counters are updated, so an unsubscribe that returns sees them complete.
            let mut held = Some(held);
            let result =
                subscriber.offer_after_wait(&sender, message, deadline, &mut round.tally, || {
                    drop(held.take())
                });
            drop(held);
            match result {
                Ok(Offer::Delivered) => round.published.delivered += 1,
                Ok(Offer::Dropped) => round.published.full.push(subscriber.id),
                Ok(_) => {}
                Err(again) => {
                    message = again;
                    continue;
                }
            }
            break;
        }
        deferred.done();
    }

    /// Stops `subscriber` for `reason`: removes all its subscriptions without confirmations
    /// and lets go of its sender, so its queue ends after what it holds. Takes its `state`:
    /// call with no lock held.
    pub(crate) fn detach(&self, subscriber: &Arc<Subscriber<T>>, reason: Disconnected) {
        let mut state = subscriber.state.lock();
        self.detach_locked(subscriber, &mut state, reason);
    }

    /// `detach` for a caller that holds the handle's `state` already.
    pub(crate) fn detach_locked(
        &self,
        subscriber: &Arc<Subscriber<T>>,
        state: &mut State<T>,
        reason: Disconnected,
    ) {
        // Once the broker is closed, that is why every handle stopped.
        let reason = if self.is_closed() {
            Disconnected::BrokerClosed
        } else {
            reason
        };
        if !subscriber.stop(reason) {
            return;
        }
        for (channel, _) in state.channels.drain() {
            self.remove_channel(&channel, subscriber, None);
        }
        for (pattern, _) in state.patterns.drain() {
            self.remove_pattern(&pattern, subscriber, None);
        }
        state.channels.shrink_to_fit();
        state.patterns.shrink_to_fit();
        state.sender = None;
        subscriber.subscriptions.store(0, Ordering::Release);
        subscriber.wake_publishers();
        subscriber.reader_wake.wake(); // its queue may have ended
    }

    /// Closes the broker: later publishes deliver nothing, later subscriptions are refused,
    /// and every live handle, subscribed or not, is detached (its queue ends after what it
    /// holds, which wakes its readers, blocked or async).
    pub(crate) fn close(&self) {
        // Stored first, then every registry lock is taken in turn by the detaches below: a
        // subscription either got in before its lock was taken (and is removed with its
        // handle) or sees the flag under that lock. See `handles` for new handles.
        self.closed.store(true, Ordering::Release);
        if let Some(bridge) = self.bridge() {
            bridge.broker_closed();
        }
        let live: Vec<Arc<Subscriber<T>>> = {
            let handles = self.handles.lock();
            handles.values().filter_map(Weak::upgrade).collect()
        };
        for subscriber in live {
            self.detach(&subscriber, Disconnected::BrokerClosed);
        }
    }

    /// Tells the watcher, if any, of `change`; called under the lock that made the change.
    fn tell(&self, change: impl FnOnce() -> Change) {
        if let Some(watcher) = &*self.watcher.read() {
            watcher(change());
        }
    }

    /// Installs `watcher` and tells it of every name already subscribed, each under its own
    /// lock, so that with the changes made meanwhile it ends up knowing the whole set; a name
    /// may be told twice. `None` removes the watcher.
    #[cfg_attr(not(feature = "redis"), allow(dead_code))]
    pub(crate) fn watch(&self, watcher: Option<Watcher>) {
        *self.watcher.write() = watcher.clone();
        let Some(watcher) = watcher else { return };
        for stripe in self.stripes.iter() {
            let map = stripe.map.lock();
            for channel in map.iter() {
                watcher(Change::Added(Topic::Channel(channel.name.clone())));
            }
        }
        let table = self.patterns.read();
        for pattern in table.iter() {
            watcher(Change::Added(Topic::Pattern(pattern.pattern.clone())));
        }
    }

    /// Sends publishes to `bridge` from now on, unless one is attached already (false).
    #[cfg_attr(not(feature = "redis"), allow(dead_code))]
    pub(crate) fn attach_bridge(&self, bridge: Arc<dyn Outbound<T>>) -> bool {
        let mut slot = self.bridge.write();
        if slot.is_some() {
            return false;
        }
        *slot = Some(bridge);
        self.bridged.store(true, Ordering::Release);
        true
    }

    /// Publishes are delivered locally again.
    #[cfg_attr(not(feature = "redis"), allow(dead_code))]
    pub(crate) fn detach_bridge(&self) {
        let mut slot = self.bridge.write();
        self.bridged.store(false, Ordering::Release);
        *slot = None;
    }

    /// The attached bridge, if any: one atomic load when there is none.
    pub(crate) fn bridge(&self) -> Option<Arc<dyn Outbound<T>>> {
        if !self.bridged.load(Ordering::Acquire) {
            return None;
        }
        self.bridge.read().clone()
    }

    /// Whether a bridge is attached.
    #[cfg_attr(not(feature = "redis"), allow(dead_code))]
    pub(crate) fn is_bridged(&self) -> bool {
        self.bridged.load(Ordering::Acquire)
    }

    /// The subscriptions a publish on `channel` would reach now: the channel itself if it has
    /// subscribers, then (with `patterns`) each matching pattern; and how many deliveries that
    /// makes.
    #[cfg_attr(not(feature = "redis"), allow(dead_code))]
    pub(crate) fn matching(&self, channel: &str, patterns: bool) -> (usize, Vec<Topic>) {
        let (hash, stripe) = self.stripe(channel);
        let (mut deliveries, mut topics) = (0, Vec::new());
        if let Some(found) = stripe.map.lock().get(hash, channel) {
            deliveries += found.value.len();
            topics.push(Topic::Channel(found.name.clone()));
        }
        if patterns && self.pattern_count.load(Ordering::Acquire) > 0 {
            self.patterns
                .read()
                .for_each_match(hash, channel, |pattern| {
                    deliveries += pattern.value.len();
                    topics.push(Topic::Pattern(pattern.pattern.clone()));
                });
        }
        (deliveries, topics)
    }

    /// Queues `notice()` once for every handle with a subscription, as a control item (never
    /// dropped).
    #[cfg_attr(not(feature = "redis"), allow(dead_code))]
    pub(crate) fn notify_subscribers(&self, notice: impl Fn() -> Message<T>) {
        // Queued under each lock in turn, as confirmations are: a queue never blocks a send.
        let mut reached = std::collections::HashSet::new();
        let mut tell = |entries: &Entries<T>| {
            for entry in entries {
                if reached.insert(entry.subscriber.id) {
                    entry.subscriber.send_control(&entry.sender, notice());
                }
            }
        };
        for stripe in self.stripes.iter() {
            stripe.map.lock().iter().for_each(|c| tell(&c.value));
        }
        self.patterns.read().iter().for_each(|p| tell(&p.value));
    }

    /// Channels with at least one subscriber, filtered by a glob when given, sorted.
    pub(crate) fn channels(&self, pattern: Option<&str>) -> Vec<String> {
        let mut names: Vec<String> = Vec::new();
        for stripe in self.stripes.iter() {
            let map = stripe.map.lock();
            names.extend(
                map.iter()
                    .filter(|c| pattern.map_or(true, |p| glob_match(p, &c.name)))
                    .map(|c| c.name.to_string()),
            );
        }
        names.sort_unstable();
        names
    }

    /// Channels with at least one subscriber.
    pub(crate) fn channel_count(&self) -> usize {
        self.stripes
            .iter()
            .map(|stripe| stripe.map.lock().len())
            .sum()
    }

    /// Subscribers of exactly `channel` (patterns are not counted).
    pub(crate) fn numsub(&self, channel: &str) -> usize {
        let (hash, stripe) = self.stripe(channel);
        stripe
            .map
            .lock()
            .get(hash, channel)
            .map_or(0, |c| c.value.len())
    }

    /// Unique patterns across all handles.
    pub(crate) fn numpat(&self) -> usize {
        self.pattern_count.load(Ordering::Acquire)
    }

    pub(crate) fn stats(&self) -> BrokerStats {
        let sum = |f: fn(&Stripe<T>) -> &AtomicU64| {
            self.stripes
                .iter()
                .map(|s| f(s).load(Ordering::Relaxed))
                .sum()
        };
        BrokerStats {
            published: sum(|s| &s.published),
            delivered: sum(|s| &s.delivered) + sum(|s| &s.delivered_late),
            dropped: self.dropped.load(Ordering::Relaxed),
            channels: self.channel_count(),
            patterns: self.numpat(),
            subscribers: self.subscribers.load(Ordering::Relaxed),
        }
    }
}

/// Adds to a counter that only changes under one lock, which the caller holds: a plain load
/// and store, cheaper than an atomic add, and still readable without the lock.
fn add_under_lock(counter: &AtomicU64, n: u64) {
    if n > 0 {
        counter.store(counter.load(Ordering::Relaxed) + n, Ordering::Relaxed);
    }
}

/// Adds a subscription to a channel's or pattern's `entries` and queues its confirmation;
/// the caller holds the lock over `entries`.
fn join<T: ?Sized>(
    entries: &mut Entries<T>,
    name: &Arc<str>,
    subscriber: &Arc<Subscriber<T>>,
    sender: &Sender<Message<T>>,
    seq: u64,
    confirm: impl FnOnce(Arc<str>) -> Message<T>,
) {
    entries.push(Entry {
        subscriber: Arc::clone(subscriber),
        sender: sender.clone(),
        seq,
    });
    subscriber.send_control(sender, confirm(name.clone()));
}
