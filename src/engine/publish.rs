//! The publish path, top-down.
//!
//! 1. The channel's stripe is locked and each of the channel's subscriptions is offered a
//!    delivery: the payload is cloned for each but the last, which takes it. After the
//!    sends, one `SeqCst` fence, then the waiting readers are taken (`handle/wake.rs`), and
//!    the stripe's counters are added to, under the lock.
//! 2. If patterns exist, the matching ones are found (`patterns.rs`) under the pattern table's
//!    read lock, and each of their subscriptions is offered a delivery; these share one
//!    envelope with the channel and the payload.
//! 3. The readers taken are woken, with no lock held.
//! 4. What did not go straight in is dealt with last, with no index lock held: a delivery
//!    that found a `Block` queue full waits for room (`blocking.rs`), a handle full under
//!    `Disconnect` is detached, and refused or evicted deliveries are dropped (a payload's
//!    `Drop` is the user's code).
//!
//! A plain publish builds nothing for step 4 (`Rest` is made by the first delivery that
//! needs it), and enters the options only when they are set: the history when the broker
//! keeps one, one delivery per publish while a handle made with it lives, the bridge's
//! narrower reaches when it delivers what Redis sent.
//!
//! On a broker that keeps history, step 1 also records the payload, and the pattern table is
//! read-locked from before step 1 to the end of step 2 (`index.rs` says why). A handle made
//! with `one_delivery_per_publish` that step 1 reached is skipped in step 2; one it did not
//! reach gets one delivery there, by its matching pattern subscribed first (`options/once.rs`).
//!
//! # A cancelled `publish_async`
//!
//! Its future may be dropped while it waits for room. It keeps its work in an `Unfinished`,
//! whose `Drop` refuses each delivery still waiting (under the subscription's index lock, as a
//! wait would re-check it: the handle counts it dropped and reads a `Lagged` notice) and
//! counts what the publish delivered, as `finish` does.

use std::collections::HashSet;
use std::mem::ManuallyDrop;
use std::sync::Arc;

use super::blocking::{Deferred, Target, Waited};
use super::entries::Entry;
use super::index::{Index, Key, Lookup, Patterns, Stripe};
use super::Registry;
use crate::error::PublishError;
use crate::handle::{Handle, Offer, SubscriberId, Woken};
use crate::item::{Envelope, Item};
use crate::kind::Kind;
use crate::options::{Match, NoHistory, Once, Recorder};
use crate::stats::Disconnected;
use crate::sync::{fence, Ordering};
use crate::wait::Wait;

/// Which subscriptions a publish reaches.
#[derive(Clone)]
pub(crate) enum Reach {
    /// The channel's subscribers, then every matching pattern's: a local publish.
    All,
    /// Only the channel's own subscribers (a Redis `message`, or a sharded publish).
    #[cfg(feature = "redis")]
    Channel,
    /// Only this pattern's subscribers (a Redis `pmessage`): Redis matched it already, and
    /// its matcher decides (it compares range ends as signed chars, `glob_match` as bytes).
    #[cfg(feature = "redis")]
    Pattern(Arc<str>),
}

impl Reach {
    #[inline]
    fn channels(&self) -> bool {
        #[cfg(feature = "redis")]
        if let Reach::Pattern(_) = self {
            return false;
        }
        true
    }

    #[inline]
    fn patterns(&self) -> bool {
        #[cfg(feature = "redis")]
        if let Reach::Channel = self {
            return false;
        }
        true
    }

    /// Whether the broker's history records this publish: not a Redis `pmessage`, which
    /// repeats a publish already recorded as a `message` or made elsewhere.
    fn records(&self) -> bool {
        self.channels()
    }

    fn only_pattern(&self) -> Option<&str> {
        #[cfg(feature = "redis")]
        if let Reach::Pattern(pattern) = self {
            return Some(pattern);
        }
        None
    }
}

/// What one publish did: the deliveries it queued, and what a `PublishError` reports.
#[derive(Default)]
pub(crate) struct Published {
    pub(crate) delivered: usize,
    /// Handles that did not get the message because their queue was full.
    pub(crate) full: Vec<SubscriberId>,
    /// A Redis bridge's backlog was full and did not take the message.
    pub(crate) backlog_full: bool,
}

impl Published {
    /// The result of `try_publish`/`publish_timeout`: the count, or an error naming the full
    /// handles (each once) and giving `payload` back.
    pub(crate) fn into_result<T: ?Sized>(
        mut self,
        payload: Arc<T>,
    ) -> Result<usize, PublishError<T>> {
        self.full.sort_unstable();
        self.full.dedup();
        if self.full.is_empty() && !self.backlog_full {
            return Ok(self.delivered);
        }
        Err(PublishError {
            delivered: self.delivered,
            full: self.full,
            backlog_full: self.backlog_full,
            payload,
        })
    }
}

/// The work of one publish, gathered while index locks are held and finished after.
struct Round<'a, T: ?Sized> {
    stripe: &'a Stripe<T>,
    may_wait: bool,
    delivered: usize,
    /// Deliveries counted under the stripe's lock; the rest are added at the end.
    channel_delivered: usize,
    /// Deliveries lost to full queues, for the broker's count.
    dropped: u64,
    /// Readers to wake once the locks are let go.
    woken: Woken,
    /// Made by the first delivery that does not go straight in, and taken by `finish`: a
    /// plain publish, which has none, has nothing to drop (so no drop is made for it).
    rest: ManuallyDrop<Option<Box<Rest<T>>>>,
}

/// What a publish deals with after its locks (step 4 in the module docs).
struct Rest<T: ?Sized> {
    full: Vec<SubscriberId>,
    deferred: Vec<Deferred<T>>,
    /// The handles in `deferred`: a later delivery to one of them waits behind it, so the
    /// channel's message still comes before the patterns' ones.
    waiting: HashSet<SubscriberId>,
    disconnect: Vec<Arc<Handle<T>>>,
    /// Refused and evicted deliveries, dropped with no lock held.
    released: Vec<Item<T>>,
}

impl<'a, T: ?Sized> Round<'a, T> {
    fn new(may_wait: bool, stripe: &'a Stripe<T>) -> Self {
        Round {
            stripe,
            may_wait,
            delivered: 0,
            channel_delivered: 0,
            dropped: 0,
            woken: Woken::default(),
            rest: ManuallyDrop::new(None),
        }
    }

    /// Offers `item` to `entry`, a subscription to `name`.
    #[inline(always)]
    fn offer(&mut self, entry: &Entry<T>, kind: Kind, name: &Arc<str>, item: Item<T>) {
        if let Some(rest) = self.rest.as_mut() {
            if rest.waiting.contains(&entry.handle.id()) {
                return rest.defer(entry, kind, name, item);
            }
        }
        let queue = entry.handle.queue();
        let rest = &mut self.rest;
        let not_queued = |offer| Rest::settle(rest, entry, kind, name, offer);
        if queue.offer(
            &entry.sender,
            item,
            self.may_wait,
            &mut self.dropped,
            not_queued,
        ) {
            self.delivered += 1;
        }
    }
}

impl<T: ?Sized> Rest<T> {
    /// What became of a delivery that did not simply go in (a `DropOldest` one may have gone
    /// in, evicting others).
    #[cold]
    #[inline(never)]
    fn settle(
        rest: &mut Option<Box<Rest<T>>>,
        entry: &Entry<T>,
        kind: Kind,
        name: &Arc<str>,
        offer: Offer<T>,
    ) {
        let rest = rest.get_or_insert_with(|| {
            Box::new(Rest {
                full: Vec::new(),
                deferred: Vec::new(),
                waiting: HashSet::new(),
                disconnect: Vec::new(),
                released: Vec::new(),
            })
        });
        let id = entry.handle.id();
        match offer {
            Offer::Evicted(evicted) => rest.released.extend(evicted),
            Offer::Dropped(item) => {
                rest.full.push(id);
                rest.released.push(item);
            }
            Offer::Disconnect(item) => {
                rest.full.push(id);
                rest.disconnect.push(Arc::clone(&entry.handle));
                rest.released.push(item);
            }
            Offer::Full(item) => rest.defer(entry, kind, name, item),
            Offer::Gone(item) => rest.released.push(item),
        }
    }

    /// Keeps a delivery that found a `Block` queue full, to retry with no lock held.
    fn defer(&mut self, entry: &Entry<T>, kind: Kind, name: &Arc<str>, item: Item<T>) {
        self.waiting.insert(entry.handle.id());
        let target = Target {
            kind,
            name: Arc::clone(name),
            id: entry.id,
        };
        self.deferred
            .push(Deferred::new(&entry.handle, target, item));
    }

    /// Gives `handle`'s waiting delivery of this publish on `channel` the handle's other
    /// matching subscriptions, to stand in should its own be gone by then.
    fn stand_ins(
        &mut self,
        handle: SubscriberId,
        channel: impl FnOnce() -> Arc<str>,
        others: Vec<Match>,
    ) {
        if others.is_empty() || !self.waiting.contains(&handle) {
            return;
        }
        let mut deferred = self.deferred.iter_mut().rev();
        if let Some(deferred) = deferred.find(|d| d.handle() == handle) {
            let others = others.into_iter().map(|(_, id, name)| Target {
                kind: Kind::Pattern,
                name,
                id,
            });
            deferred.stand_in(channel(), others);
        }
    }
}

/// After deliveries to `entries`, under the lock over them: one fence for all of them, then
/// the waiting readers go into `woken` (`handle/wake.rs`); with none in the whole broker, no
/// handle is looked at.
#[inline]
fn take_readers<'e, T: ?Sized + 'e>(
    index: &Index<T>,
    entries: impl IntoIterator<Item = &'e Entry<T>>,
    woken: &mut Woken,
) {
    fence(Ordering::SeqCst);
    if index.readers_wait() {
        for entry in entries {
            entry.handle.readers().take_after_fence(woken);
        }
    }
}

/// The payload, cloned for each delivery but the last, which takes it: one shared count
/// written per delivery, none more.
struct Payload<T: ?Sized>(Option<Arc<T>>);

impl<T: ?Sized> Payload<T> {
    /// The payload, before any delivery took it.
    fn peek(&self) -> &Arc<T> {
        self.0.as_ref().expect("peeked before the deliveries")
    }

    #[inline]
    fn get(&mut self, last: bool) -> Arc<T> {
        match (last, &self.0) {
            (false, Some(payload)) => Arc::clone(payload),
            _ => self.0.take().expect("taken by the last delivery only"),
        }
    }
}

impl<T: ?Sized> Registry<T> {
    /// Delivers `payload` to every subscriber of the channel `lookup` finds, then once per
    /// matching pattern to each of its subscribers; full `Block` queues are waited for as `wait` allows, with
    /// no index lock held.
    #[inline]
    pub(crate) fn publish<L: Lookup>(&self, lookup: L, payload: Arc<T>, wait: Wait) -> Published {
        let index = self.index();
        if index.is_closed() || index.history().is_some() || index.has_patterns() {
            return self.publish_to(lookup.key(), payload, Reach::All, wait);
        }
        self.publish_plain(lookup, payload, wait)
    }

    /// The plain publish: no history, no pattern, so only the channel's subscriptions, each
    /// offered the delivery in one loop. What does not go straight in goes to `Rest`, and to
    /// `finish_after_wait` after the lock, as in the general path.
    #[inline]
    fn publish_plain<L: Lookup>(&self, lookup: L, payload: Arc<T>, wait: Wait) -> Published {
        let stripe = self.index().stripe_of(lookup.key().hash);
        let may_wait = wait.may_wait();
        let (mut delivered, mut dropped) = (0, 0);
        let mut rest = ManuallyDrop::new(None);
        let mut woken = Woken::default();
        {
            let map = stripe.lock();
            let Some(found) = lookup.find(&map) else {
                map.count(0);
                return Published::default();
            };
            let entries = found.value.as_slice();
            let mut payload = Payload(Some(payload));
            for (i, entry) in entries.iter().enumerate() {
                let item = Item::Channel {
                    slot: entry.id.slot,
                    payload: payload.get(i + 1 == entries.len()),
                };
                let queue = entry.handle.queue();
                let not_queued =
                    |offer| Rest::settle(&mut rest, entry, Kind::Channel, &found.name, offer);
                if queue.offer(&entry.sender, item, may_wait, &mut dropped, not_queued) {
                    delivered += 1;
                }
            }
            take_readers(self.index(), entries, &mut woken);
            map.count(delivered);
        }
        woken.wake_all();
        if rest.is_none() && dropped == 0 {
            return Published {
                delivered,
                ..Published::default()
            };
        }
        let round = Round {
            stripe,
            may_wait,
            delivered,
            channel_delivered: delivered,
            dropped,
            woken: Woken::default(),
            rest,
        };
        self.finish_after_wait(round, wait)
    }

    /// `publish`, to the subscriptions `reach` names only (the Redis bridge's narrower reaches).
    #[inline(never)]
    pub(crate) fn publish_to(
        &self,
        channel: Key<'_>,
        payload: Arc<T>,
        reach: Reach,
        wait: Wait,
    ) -> Published {
        let Some(round) = self.offer_and_wake(channel, payload, &reach, wait.may_wait()) else {
            return Published::default();
        };
        if round.rest.is_none() && round.dropped == 0 && round.delivered == round.channel_delivered
        {
            return Published {
                delivered: round.delivered,
                ..Published::default()
            };
        }
        self.finish_after_wait(round, wait)
    }

    /// Steps 4 and 5 of a publish that has more to do than count (module docs).
    #[cold]
    #[inline(never)]
    fn finish_after_wait(&self, mut round: Round<'_, T>, wait: Wait) -> Published {
        if let Some(rest) = round.rest.as_mut() {
            for deferred in std::mem::take(&mut rest.deferred) {
                let handle = deferred.handle();
                match self.deliver_after_wait(deferred, wait, &mut round.dropped) {
                    Waited::Delivered => round.delivered += 1,
                    Waited::Refused => rest.full.push(handle),
                    Waited::Gone => {}
                }
            }
        }
        self.finish(&mut round)
    }

    /// `publish` for async callers: full `Block` queues are waited for without blocking the
    /// thread (the task is woken when room may have appeared or the subscription changed).
    /// See the module docs for what a cancelled one does.
    #[cfg(feature = "async")]
    pub(crate) async fn publish_async(
        &self,
        channel: Key<'_>,
        payload: Arc<T>,
        reach: Reach,
    ) -> Published {
        let Some(mut round) = self.offer_and_wake(channel, payload, &reach, true) else {
            return Published::default();
        };
        let deferred = round.rest.as_mut().map(|r| std::mem::take(&mut r.deferred));
        let mut unfinished = Unfinished {
            registry: self,
            round: Some(round),
            deferred: deferred.unwrap_or_default().into(),
            waiter: crate::handle::waiter_id(),
        };
        let waiter = unfinished.waiter;
        while let (Some(next), Some(round)) =
            (unfinished.deferred.front_mut(), unfinished.round.as_mut())
        {
            let dropped = &mut round.dropped;
            let waited =
                std::future::poll_fn(|cx| self.poll_deliver(next, waiter, cx, dropped)).await;
            if let Waited::Delivered = waited {
                round.delivered += 1;
            }
            if let Some(done) = unfinished.deferred.pop_front() {
                done.done(waiter);
            }
        }
        match unfinished.round.take() {
            Some(mut round) => self.finish(&mut round),
            None => Published::default(),
        }
    }

    /// Steps 1 to 3 of a publish (module docs): the round, with what is left to do after the
    /// locks; `None` once the broker is closed.
    #[inline]
    fn offer_and_wake(
        &self,
        channel: Key<'_>,
        payload: Arc<T>,
        reach: &Reach,
        may_wait: bool,
    ) -> Option<Round<'_, T>> {
        let index = self.index();
        if index.is_closed() {
            return None;
        }
        let mut round = Round::new(may_wait, index.stripe_of(channel.hash));
        self.offer_any(&mut round, channel.hash, channel.name, payload, reach);
        round.woken.wake_taken();
        Some(round)
    }

    /// `offer_all`, with the broker's history if it keeps one and `reach` records.
    #[inline(always)]
    fn offer_any(
        &self,
        round: &mut Round<'_, T>,
        hash: u64,
        channel: &str,
        payload: Arc<T>,
        reach: &Reach,
    ) {
        match self.index().history().filter(|_| reach.records()) {
            None => self.offer_all(round, hash, channel, payload, reach, &NoHistory),
            Some(history) => self.offer_all(round, hash, channel, payload, reach, history),
        }
    }

    /// Offers `payload` to every subscription `reach` names that matches `channel` (whose
    /// hash is `hash`, in the round's stripe), channel subscribers first, without waiting:
    /// full `Block` queues are left in the round's `rest`. A `history` that records gets the
    /// payload under the stripe's lock, and the pattern table is read-locked from before
    /// that to the last pattern delivery, so that a pattern subscription's replay is a clean
    /// cut (`index.rs`).
    #[inline(always)]
    fn offer_all<H: Recorder<T>>(
        &self,
        round: &mut Round<'_, T>,
        hash: u64,
        channel: &str,
        payload: Arc<T>,
        reach: &Reach,
        history: &H,
    ) {
        let index = self.index();
        // Declared before the locks, so dropped after them: a payload's `Drop` (the last
        // reference may be one no delivery took) is the user's code.
        let mut payload = Payload(Some(payload));
        let mut envelope = None;
        let mut released = H::Released::default();
        let held = H::RECORDS.then(|| index.patterns());
        let patterns = reach.patterns() && index.has_patterns();
        let mut name: Option<Arc<str>> = None;
        let mut once: Option<Once> = None;
        {
            let map = round.stripe.lock();
            let found = map.get(hash, channel);
            if H::RECORDS {
                let shared = found.map(|found| &found.name);
                history.record(channel, shared, payload.peek(), &mut released);
            }
            if let Some(found) = found.filter(|_| reach.channels()) {
                let entries = &found.value;
                // Under the stripe's lock, where it meets their subscriptions (`index.rs`).
                let reached = patterns && index.has_one_per_publish();
                let last = entries.len() - 1;
                for (i, entry) in entries.iter().enumerate() {
                    if reached && entry.handle.one_per_publish() {
                        once.get_or_insert_with(Once::default)
                            .reached(entry.handle.id());
                    }
                    let payload = payload.get(i == last && !patterns);
                    let item = Item::Channel {
                        slot: entry.id.slot,
                        payload,
                    };
                    round.offer(entry, Kind::Channel, &found.name, item);
                }
                take_readers(index, entries, &mut round.woken);
                if patterns {
                    name = Some(found.name.clone());
                }
            }
            map.count(round.delivered);
        }
        round.channel_delivered = round.delivered;
        if patterns {
            let table = held.unwrap_or_else(|| index.patterns());
            let once = match index.has_one_per_publish() {
                true => Some(once.unwrap_or_default()),
                false => None,
            };
            let channel = name.unwrap_or_else(|| Arc::from(channel));
            let publish = (&mut payload, &mut envelope);
            self.offer_patterns(round, &table, hash, channel, publish, once, reach);
        }
    }

    /// Step 2 of a publish (module docs), under the pattern table's read lock: `once` is
    /// `Some` while a handle made with `one_delivery_per_publish` lives (loaded under that
    /// lock, where it meets their pattern subscriptions). The payload, and the envelope its
    /// deliveries share, stay the caller's, to drop once it has let go of the lock.
    #[allow(clippy::too_many_arguments)]
    fn offer_patterns(
        &self,
        round: &mut Round<'_, T>,
        table: &Patterns<T>,
        hash: u64,
        channel: Arc<str>,
        (payload, envelope): (&mut Payload<T>, &mut Option<Arc<Envelope<T>>>),
        mut once: Option<Once>,
        reach: &Reach,
    ) {
        let slots: Arc<[u32]> = match reach.only_pattern() {
            Some(only) => table.slot(only).into_iter().collect(),
            None => table.matches(hash, &channel),
        };
        let mut offer = |round: &mut Round<'_, T>, entry: &Entry<T>, pattern: &Arc<str>| {
            let publish = envelope.get_or_insert_with(|| {
                Arc::new(Envelope {
                    channel: Arc::clone(&channel),
                    payload: payload.get(true),
                })
            });
            let item = Item::Pattern {
                slot: entry.id.slot,
                publish: Arc::clone(publish),
            };
            round.offer(entry, Kind::Pattern, pattern, item);
        };
        for &slot in slots.iter() {
            let Some(pattern) = table.at(slot) else {
                continue;
            };
            for entry in &pattern.value {
                match once.as_mut().filter(|_| entry.handle.one_per_publish()) {
                    Some(once) => once.matched(entry.handle.id(), entry.id, slot, &pattern.name),
                    None => offer(round, entry, &pattern.name),
                }
            }
            take_readers(self.index(), &pattern.value, &mut round.woken);
        }
        let Some(once) = once else {
            return;
        };
        for (handle, reached, mut matched) in once.take() {
            if !reached && !matched.is_empty() {
                let (slot, id, _) = matched.remove(0);
                let pattern = table.at(slot);
                let found = pattern.and_then(|p| Some((p, p.value.get(handle, id)?)));
                if let Some((pattern, entry)) = found {
                    offer(round, entry, &pattern.name);
                    take_readers(self.index(), [entry], &mut round.woken);
                }
            }
            if let Some(rest) = round.rest.as_mut() {
                rest.stand_ins(handle, || Arc::clone(&channel), matched);
            }
        }
    }

    /// Disconnects the handles the round found full under `Disconnect` (no lock is held
    /// now), and counts what the round did.
    fn finish(&self, round: &mut Round<'_, T>) -> Published {
        let mut published = Published {
            delivered: round.delivered,
            ..Published::default()
        };
        if let Some(rest) = round.rest.take() {
            let Rest {
                full,
                disconnect,
                released,
                ..
            } = *rest;
            for handle in disconnect {
                self.detach(&handle, Disconnected::Overflow);
            }
            drop(released);
            published.full = full;
        }
        let late = round.delivered - round.channel_delivered;
        round.stripe.count_late(late);
        self.count_dropped(round.dropped);
        published
    }
}

/// A `publish_async` in progress: what it has done, and the deliveries still waiting for
/// room. Dropped before the publish finished, it refuses and counts (see the module docs).
#[cfg(feature = "async")]
struct Unfinished<'a, T: ?Sized> {
    registry: &'a Registry<T>,
    /// `None` once finished.
    round: Option<Round<'a, T>>,
    /// The first is the one being waited for.
    deferred: std::collections::VecDeque<Deferred<T>>,
    /// Its waiter id, under which it registers for room.
    waiter: u64,
}

#[cfg(feature = "async")]
impl<T: ?Sized> Drop for Unfinished<'_, T> {
    fn drop(&mut self) {
        let Some(mut round) = self.round.take() else {
            return;
        };
        for mut deferred in std::mem::take(&mut self.deferred) {
            self.registry
                .refuse_waiting(&mut deferred, &mut round.dropped);
            deferred.done(self.waiter);
        }
        self.registry.finish(&mut round);
    }
}
