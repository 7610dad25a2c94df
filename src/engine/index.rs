//! Who is subscribed to what: the channel map (striped) and the pattern table (with its match
//! cache), the changes made to them, and the questions asked of them (`PUBSUB CHANNELS`,
//! `NUMSUB`, `NUMPAT`).
//!
//! # Locks and their order
//!
//! 1. A handle's `calls` (`handle/mod.rs`).
//! 2. One lock of this index: a `stripes[i]` mutex over a slice of the channel map (a channel
//!    lives in the stripe its hash picks, so publishers on different channels seldom meet),
//!    or the `patterns` read-write lock over the pattern table (publishers read it, and skip
//!    it entirely while no pattern exists). Under the read lock, a publisher takes a cache
//!    stripe of the table for the lookup only (`patterns.rs`).
//! 3. A handle's `names`, taken under 2 when a subscription is added; the history's lock
//!    (`options/history.rs`), a leaf taken under 2 by a publish that records and by a
//!    subscription that replays (under the handle's `names` too, for a handle made with
//!    `one_delivery_per_publish`).
//! 4. A handle's queue carry lock (`handle/queue.rs`) and its wake lists' locks.
//!
//! Locks are only ever taken in that order, and no path holds two locks of this index at
//! once, but one: on a broker that keeps history, a publish takes the pattern table's read
//! lock first and a stripe's lock under it (nothing takes the table's lock under a
//! stripe's, so the two cannot wait for each other). A watcher (feature `redis`,
//! `hooks.rs`) is called under a lock of level 2 and may take only locks of its own that
//! nothing else is taken under.
//!
//! # Clean cuts
//!
//! A subscription's confirmation is queued under the lock that adds or removes it, and a
//! publish queues its deliveries under the lock that found the subscription; queues never
//! block a send. So every delivery a subscription lets through comes after its `Subscribe`
//! confirmation and before its `Unsubscribe` confirmation, and a publish that starts after
//! `subscribe`/`unsubscribe` returned sees the new state.
//!
//! A replay is queued under the same lock as its subscription's confirmation, and a publish
//! records its payload in the history under the channel's stripe, holding the table's read
//! lock from before that record to its last pattern delivery: a channel subscription and a
//! publish to its channel meet at the stripe, a pattern subscription and any publish at the
//! table. Either the publish comes first (it is in the history the replay reads, and did not
//! see the subscription) or the subscription does (the publish delivers to it live, and was
//! not in the history yet).

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;

use parking_lot::{Mutex, MutexGuard, RwLock, RwLockReadGuard, RwLockWriteGuard};

use super::channels::{Channel, ChannelTable};
use super::entries::{Entries, Entry};
#[cfg(feature = "redis")]
use super::hooks::{Change, Topic, Watcher};
use super::matching::{Interest, Interests, Reached, Watching};
use super::patterns::PatternTable;
use crate::config::HistoryLimits;
use crate::handle::{Handle, SubId, Waiting, Woken};
use crate::item::{Item, ItemSender};
use crate::kind::Kind;
use crate::name::NameHasher;
use crate::options::History;
use crate::pattern::glob_match;

/// Number of channel-map stripes; a power of two so a hash picks one with a mask.
const STRIPES: usize = 64;

/// The channels of one stripe, each with its subscriptions.
type Channels<T> = ChannelTable<Entries<T>>;

/// The broker's patterns, each with its subscriptions.
pub(crate) type Patterns<T> = PatternTable<Entries<T>>;

/// One stripe of the channel map and its counters, padded to its own cache lines.
#[repr(align(128))]
pub(crate) struct Stripe<T: ?Sized> {
    map: Mutex<Channels<T>>,
    /// Publish calls to channels of this stripe. Changed only under `map`'s lock, so a plain
    /// load and store (no read-modify-write) is enough; `stats` reads it without the lock.
    published: AtomicU64,
    /// Channel deliveries those calls queued; changed only under `map`'s lock, like `published`.
    delivered: AtomicU64,
    /// Pattern deliveries and deliveries after a wait, which happen without `map`'s lock.
    delivered_late: AtomicU64,
}

/// A stripe, locked: its channels, and its counters to add to.
pub(crate) struct StripeGuard<'a, T: ?Sized> {
    stripe: &'a Stripe<T>,
    map: MutexGuard<'a, Channels<T>>,
}

impl<T: ?Sized> StripeGuard<'_, T> {
    #[inline]
    pub(crate) fn get(&self, hash: u64, channel: &str) -> Option<&Channel<Entries<T>>> {
        self.map.get(hash, channel)
    }

    /// Counts one publish call and the deliveries it queued here, under the lock.
    #[inline]
    pub(crate) fn count(&self, delivered: usize) {
        add_under_lock(&self.stripe.published, 1);
        add_under_lock(&self.stripe.delivered, delivered as u64);
    }
}

/// How a publish finds its channel in the stripe: by name, or where a publisher last found it.
pub(crate) trait Lookup: Copy {
    /// The channel's name and hash.
    fn key(&self) -> Key<'_>;

    /// The channel in `map`, its stripe, locked.
    fn find<'m, T: ?Sized>(&self, map: &'m StripeGuard<'_, T>) -> Option<&'m Channel<Entries<T>>>;
}

impl Lookup for Key<'_> {
    #[inline]
    fn key(&self) -> Key<'_> {
        *self
    }

    #[inline]
    fn find<'m, T: ?Sized>(&self, map: &'m StripeGuard<'_, T>) -> Option<&'m Channel<Entries<T>>> {
        map.get(self.hash, self.name)
    }
}

/// A publisher's channel: looked up by name only when the stripe's channels were added to or
/// removed from since the last lookup.
impl Lookup for &Interest {
    #[inline]
    fn key(&self) -> Key<'_> {
        Key {
            name: self.channel(),
            hash: self.hash(),
        }
    }

    #[inline]
    fn find<'m, T: ?Sized>(&self, map: &'m StripeGuard<'_, T>) -> Option<&'m Channel<Entries<T>>> {
        let generation = map.map.generation();
        let position = match self.position_at(generation) {
            Some(position) => position,
            None => {
                let position = map.map.find_position(self.hash(), self.channel());
                self.remember(generation, position);
                position
            }
        };
        position.map(|position| map.map.at(position))
    }
}

impl<T: ?Sized> Stripe<T> {
    #[inline]
    pub(crate) fn lock(&self) -> StripeGuard<'_, T> {
        StripeGuard {
            stripe: self,
            map: self.map.lock(),
        }
    }

    /// Counts deliveries made without the stripe's lock (patterns, after a wait).
    pub(crate) fn count_late(&self, delivered: usize) {
        if delivered > 0 {
            self.delivered_late
                .fetch_add(delivered as u64, Ordering::Relaxed);
        }
    }
}

/// The index lock over one name's subscriptions, for a change.
enum Locked<'a, T: ?Sized> {
    Channel(u64, MutexGuard<'a, Channels<T>>),
    Pattern(RwLockWriteGuard<'a, Patterns<T>>),
}

impl<T: ?Sized> Locked<'_, T> {
    /// The name's shared text and subscriptions, added if it has none.
    fn get_or_insert(&mut self, name: &str) -> (Arc<str>, &mut Entries<T>) {
        match self {
            Locked::Channel(hash, map) => {
                let channel = map.get_or_insert(*hash, name);
                (channel.name.clone(), &mut channel.value)
            }
            Locked::Pattern(table) => {
                let pattern = table.get_or_insert(name);
                (pattern.name.clone(), &mut pattern.value)
            }
        }
    }

    /// The name's shared text and subscriptions, if it has any.
    fn get_mut(&mut self, name: &str) -> Option<(Arc<str>, &mut Entries<T>)> {
        match self {
            Locked::Channel(hash, map) => {
                let channel = map.get_mut(*hash, name)?;
                Some((channel.name.clone(), &mut channel.value))
            }
            Locked::Pattern(table) => {
                let pattern = table.get_mut(name)?;
                Some((pattern.name.clone(), &mut pattern.value))
            }
        }
    }

    fn remove(&mut self, name: &str) {
        match self {
            Locked::Channel(hash, map) => map.remove(*hash, name),
            Locked::Pattern(table) => table.remove(name),
        }
    }
}

/// The index lock held while a waiting publisher queues (see `Index::hold`): held for the
/// lock only, and released on drop.
pub(crate) enum Held<'a, T: ?Sized> {
    Channel(MutexGuard<'a, Channels<T>>),
    Pattern(RwLockReadGuard<'a, Patterns<T>>),
}

/// All subscriptions of one broker.
pub(crate) struct Index<T: ?Sized> {
    hasher: NameHasher,
    stripes: Box<[Stripe<T>; STRIPES]>,
    /// Unique patterns, with a cache of matches.
    patterns: RwLock<Patterns<T>>,
    /// `patterns.len()`, kept beside it so a publisher can skip the lock when it is 0.
    /// Written under the write lock (Release), read without a lock (Acquire): a publish that
    /// starts after `psubscribe` returned reads the new length.
    pattern_count: AtomicUsize,
    /// Live handles made with `one_delivery_per_publish`. Counted before such a handle can
    /// subscribe, and loaded by a publish under the lock where it meets their subscriptions,
    /// so a publish that reaches one knows.
    one_per_publish: AtomicUsize,
    /// Set once by `close` (Release), loaded under each lock (Acquire): a subscription made
    /// after the close is refused.
    closed: AtomicBool,
    /// Readers registered to be woken, across the broker's handles (`handle/wake.rs`).
    waiting_readers: Waiting,
    /// Told of names coming and going; `None` unless a bridge is attached.
    #[cfg(feature = "redis")]
    watcher: RwLock<Option<Watcher>>,
    /// The retained payloads, when the broker keeps history.
    history: Option<Mutex<History<T>>>,
    /// The channels publishers watch (`matching.rs`).
    interests: Arc<Interests>,
}

/// A channel's name and its hash under the index's hasher, computed once per call.
#[derive(Clone, Copy)]
pub(crate) struct Key<'a> {
    pub(crate) name: &'a str,
    pub(crate) hash: u64,
}

impl<T: ?Sized> Index<T> {
    /// An empty index, keeping history within `history` if given.
    pub(crate) fn new(history: Option<HistoryLimits>) -> Self {
        let hasher = NameHasher::default();
        Index {
            hasher,
            stripes: Box::new(std::array::from_fn(|_| Stripe {
                map: Mutex::new(ChannelTable::new(hasher)),
                published: AtomicU64::new(0),
                delivered: AtomicU64::new(0),
                delivered_late: AtomicU64::new(0),
            })),
            patterns: RwLock::new(PatternTable::new(hasher)),
            pattern_count: AtomicUsize::new(0),
            one_per_publish: AtomicUsize::new(0),
            closed: AtomicBool::new(false),
            waiting_readers: Waiting::new(crate::sync::AtomicUsize::new(0)),
            #[cfg(feature = "redis")]
            watcher: RwLock::new(None),
            history: history.map(|limits| Mutex::new(History::new(limits))),
            interests: Arc::default(),
        }
    }

    /// The channels publishers watch.
    pub(crate) fn interests(&self) -> &Arc<Interests> {
        &self.interests
    }

    /// The interest in `channel`, counted as one more user: made, if new, with the names a
    /// publish there reaches now, counted under the locks that change them (`matching.rs`).
    pub(crate) fn interest(&self, channel: &str) -> Watching {
        let key = self.key(channel);
        let table = self.patterns.read();
        let map = self.stripe_of(key.hash).map.lock();
        let reach = || {
            let channel_reached = usize::from(map.get(key.hash, channel).is_some());
            let patterns = table.matches(key.hash, channel);
            let live = patterns.iter().filter(|&&slot| table.at(slot).is_some());
            channel_reached + live.count()
        };
        let interest = self.interests.get_or_insert(channel, key.hash, reach);
        Watching::new(Arc::clone(&self.interests), interest)
    }

    /// The retained payloads, if the broker keeps history.
    #[inline]
    pub(crate) fn history(&self) -> Option<&Mutex<History<T>>> {
        self.history.as_ref()
    }

    /// The channel's hash (computed once per call) and the stripe it picks.
    #[inline]
    pub(crate) fn stripe(&self, channel: &str) -> (u64, &Stripe<T>) {
        let hash = self.hasher.hash(channel);
        (hash, self.stripe_of(hash))
    }

    /// The channel's name and hash.
    #[inline]
    pub(crate) fn key<'a>(&self, channel: &'a str) -> Key<'a> {
        Key {
            name: channel,
            hash: self.hasher.hash(channel),
        }
    }

    /// The stripe a channel's hash picks.
    #[inline]
    pub(crate) fn stripe_of(&self, hash: u64) -> &Stripe<T> {
        &self.stripes[hash as usize & (STRIPES - 1)]
    }

    /// Whether any pattern is subscribed: read before a channel's lock, so a `psubscribe` that
    /// returned before the publish began is seen.
    #[inline]
    pub(crate) fn has_patterns(&self) -> bool {
        self.pattern_count.load(Ordering::Acquire) > 0
    }

    /// The pattern table, for reading.
    pub(crate) fn patterns(&self) -> RwLockReadGuard<'_, Patterns<T>> {
        self.patterns.read()
    }

    /// A handle made with `one_delivery_per_publish` lives (`true`) or went.
    pub(crate) fn count_one_per_publish(&self, live: bool) {
        match live {
            true => self.one_per_publish.fetch_add(1, Ordering::Relaxed),
            false => self.one_per_publish.fetch_sub(1, Ordering::Relaxed),
        };
    }

    /// Whether a handle made with `one_delivery_per_publish` lives; exact for a caller that
    /// holds the lock over the subscriptions it is about to meet (see the field).
    #[inline]
    pub(crate) fn has_one_per_publish(&self) -> bool {
        self.one_per_publish.load(Ordering::Relaxed) > 0
    }

    /// The broker's total of waiting readers, for a new handle to count its own in.
    pub(crate) fn waiting_readers(&self) -> &Waiting {
        &self.waiting_readers
    }

    /// After a publisher's sends and its `SeqCst` fence: whether any reader of the broker
    /// may wait to be woken (if not, none of the handles reached needs looking at).
    #[inline]
    pub(crate) fn readers_wait(&self) -> bool {
        self.waiting_readers.load(crate::sync::Ordering::SeqCst) > 0
    }

    #[inline]
    pub(crate) fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }

    /// Refuses every later subscription; see `Registry::close` for the rest.
    pub(crate) fn close(&self) {
        self.closed.store(true, Ordering::Release);
    }

    /// The lock over `name`'s subscriptions, for a change.
    fn lock(&self, kind: Kind, name: &str) -> Locked<'_, T> {
        match kind {
            Kind::Channel => {
                let (hash, stripe) = self.stripe(name);
                Locked::Channel(hash, stripe.map.lock())
            }
            Kind::Pattern => Locked::Pattern(self.patterns.write()),
        }
    }

    /// Keeps `pattern_count` in step with the table, under its write lock.
    fn counted(&self, locked: &Locked<'_, T>) {
        if let Locked::Pattern(table) = locked {
            self.pattern_count.store(table.len(), Ordering::Release);
        }
    }

    /// Adds `handle`'s subscription to `name`, under the lock over it: `entry` makes the
    /// entry's id from the index's shared text of the name, and its confirmation, queued here
    /// with the replays it gets (the readers to wake go into `woken`). `None`, with nothing
    /// added, once the index is closed.
    pub(crate) fn add(
        &self,
        kind: Kind,
        name: &str,
        handle: &Arc<Handle<T>>,
        sender: &ItemSender<T>,
        entry: impl FnOnce(&Arc<str>) -> (SubId, Item<T>),
        woken: &mut Woken,
    ) -> Option<(Arc<str>, SubId)> {
        let mut locked = self.lock(kind, name);
        if self.is_closed() {
            return None;
        }
        let (shared, entries) = locked.get_or_insert(name);
        let first = entries.is_empty();
        let (id, confirmation) = entry(&shared);
        entries.push(Entry {
            handle: Arc::clone(handle),
            sender: sender.clone(),
            id,
        });
        handle.send_control(sender, confirmation, woken);
        if let Some(history) = self.history.as_ref().filter(|_| handle.replays()) {
            crate::options::replay(history, kind, &shared, handle, sender, id, woken);
        }
        self.counted(&locked);
        self.added(first, kind, &shared, woken);
        Some((shared, id))
    }

    /// Removes `handle`'s subscription to `name`, dropping the name's entry when it was the
    /// last, and queues `confirmation` (if any) under the same lock.
    pub(crate) fn remove(
        &self,
        kind: Kind,
        name: &str,
        handle: &Handle<T>,
        confirmation: Option<(&ItemSender<T>, Item<T>)>,
        woken: &mut Woken,
    ) {
        let mut locked = self.lock(kind, name);
        if let Some((shared, entries)) = locked.get_mut(name) {
            entries.remove(handle.id());
            if entries.is_empty() {
                locked.remove(name);
                self.counted(&locked);
                self.removed(kind, shared, woken);
            }
        }
        if let Some((sender, item)) = confirmation {
            handle.send_control(sender, item, woken);
        }
    }

    /// The lock over `handle`'s subscription `id` to `name`, held, if it still stands, and
    /// its sender: a publisher that waited for room checks and queues under it, as `publish`
    /// does, so an unsubscription in between is a clean cut. The sender is for the caller to
    /// queue with and drop right after: a waiting publisher holds none meanwhile, so a handle
    /// closed while a `publish_async` future sits unpolled still sees its queue end.
    pub(crate) fn hold(
        &self,
        kind: Kind,
        name: &str,
        handle: &Handle<T>,
        id: SubId,
    ) -> Option<(Held<'_, T>, ItemSender<T>)> {
        let (hash, stripe) = self.stripe(name);
        let held = match kind {
            Kind::Channel => Held::Channel(stripe.map.lock()),
            Kind::Pattern => Held::Pattern(self.patterns.read()),
        };
        let entries = match &held {
            Held::Channel(map) => &map.get(hash, name)?.value,
            Held::Pattern(table) => &table.get(name)?.value,
        };
        let sender = entries.get(handle.id(), id)?.sender.clone();
        Some((held, sender))
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
        self.stripes.iter().map(|s| s.map.lock().len()).sum()
    }

    /// Subscribers of exactly `channel` (patterns are not counted).
    pub(crate) fn numsub(&self, channel: &str) -> usize {
        let (hash, stripe) = self.stripe(channel);
        let map = stripe.map.lock();
        map.get(hash, channel).map_or(0, |c| c.value.len())
    }

    /// Unique patterns across all handles.
    pub(crate) fn numpat(&self) -> usize {
        self.pattern_count.load(Ordering::Acquire)
    }

    /// Publish calls, and the deliveries they made, summed over the stripes.
    pub(crate) fn counts(&self) -> (u64, u64) {
        let sum = |f: fn(&Stripe<T>) -> &AtomicU64| -> u64 {
            self.stripes
                .iter()
                .map(|s| f(s).load(Ordering::Relaxed))
                .sum()
        };
        let delivered = sum(|s| &s.delivered) + sum(|s| &s.delivered_late);
        (sum(|s| &s.published), delivered)
    }

    /// `name` got its first subscriber (`first`): the publishers' interests and the bridge's
    /// watcher are told, under the lock that made the change.
    fn added(&self, first: bool, kind: Kind, name: &Arc<str>, woken: &mut Woken) {
        if first {
            self.interests.changed(kind, name, Reached::Gained, woken);
            #[cfg(feature = "redis")]
            self.tell(|| Change::Added(Topic::new(kind, name.clone())));
        }
    }

    /// `name` lost its last subscriber: told as `added` tells.
    fn removed(&self, kind: Kind, name: Arc<str>, woken: &mut Woken) {
        self.interests.changed(kind, &name, Reached::Lost, woken);
        #[cfg(feature = "redis")]
        self.tell(|| Change::Removed(Topic::new(kind, name)));
    }

    /// Every name's subscriptions, each under its own lock in turn.
    #[cfg(feature = "redis")]
    fn each(&self, mut f: impl FnMut(Kind, &Arc<str>, &Entries<T>)) {
        for stripe in self.stripes.iter() {
            let map = stripe.map.lock();
            map.iter().for_each(|c| f(Kind::Channel, &c.name, &c.value));
        }
        let table = self.patterns.read();
        table
            .iter()
            .for_each(|p| f(Kind::Pattern, &p.name, &p.value));
    }
}

/// What the Redis bridge asks of the index (feature `redis`).
#[cfg(feature = "redis")]
impl<T: ?Sized> Index<T> {
    /// Tells the watcher, if any, of `change`; called under the lock that made the change.
    fn tell(&self, change: impl FnOnce() -> Change) {
        if let Some(watcher) = &*self.watcher.read() {
            watcher(change());
        }
    }

    /// Installs `watcher` and tells it of every name already subscribed, each under its own
    /// lock, so that with the changes made meanwhile it ends up knowing the whole set; a name
    /// may be told twice. `None` removes the watcher.
    pub(crate) fn watch(&self, watcher: Option<Watcher>) {
        *self.watcher.write() = watcher.clone();
        if let Some(watcher) = watcher {
            self.each(|kind, name, _| watcher(Change::Added(Topic::new(kind, name.clone()))));
        }
    }

    /// The subscriptions a publish on `channel` would reach now: the channel itself if it has
    /// subscribers, then (with `patterns`) each matching pattern; and how many deliveries that
    /// makes.
    pub(crate) fn matching(&self, channel: &str, patterns: bool) -> (usize, Vec<Topic>) {
        let (hash, stripe) = self.stripe(channel);
        let (mut deliveries, mut topics) = (0, Vec::new());
        if let Some(found) = stripe.map.lock().get(hash, channel) {
            deliveries += found.value.len();
            topics.push(Topic::new(Kind::Channel, found.name.clone()));
        }
        if patterns && self.has_patterns() {
            let table = self.patterns.read();
            for &slot in table.matches(hash, channel).iter() {
                if let Some(pattern) = table.at(slot) {
                    deliveries += pattern.value.len();
                    topics.push(Topic::new(Kind::Pattern, pattern.name.clone()));
                }
            }
        }
        (deliveries, topics)
    }

    /// Queues `notice()` once for every handle with a subscription, as a control item (never
    /// dropped), under each lock in turn as confirmations are; the readers to wake go into
    /// `woken`.
    pub(crate) fn notify_subscribers(
        &self,
        notice: impl Fn() -> crate::message::Message<T>,
        woken: &mut Woken,
    ) {
        let mut reached = std::collections::HashSet::new();
        self.each(|_, _, entries| {
            for entry in entries {
                if reached.insert(entry.handle.id()) {
                    let item = Item::control(notice());
                    entry.handle.send_control(&entry.sender, item, woken);
                }
            }
        });
    }
}

/// Adds to a counter that only changes under one lock, which the caller holds: a plain load
/// and store, cheaper than an atomic add, and still readable without the lock.
#[inline]
fn add_under_lock(counter: &AtomicU64, n: u64) {
    if n > 0 {
        counter.store(counter.load(Ordering::Relaxed) + n, Ordering::Relaxed);
    }
}
