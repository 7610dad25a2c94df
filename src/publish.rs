//! The publish path, top-down.
//!
//! 1. The channel's stripe is locked and each of the channel's subscribers is offered a
//!    delivery (`Round::offer`); the payload is cloned for each delivery but the last, which
//!    takes it. The stripe's counters are added to under the lock.
//! 2. If patterns exist, the matching ones' slots are taken out of the cache, and under the
//!    pattern table's read lock each of their subscribers is offered a delivery; these share
//!    one envelope with the channel and the payload.
//! 3. The readers collected on the way are woken, with no lock held.
//! 4. A delivery that found a `Block` queue full waits for room with no index lock held, then
//!    checks under the lock that the same subscription still stands before it queues
//!    (`deliver_after_wait`): an unsubscription in between is a clean cut.
//! 5. Handles that overflowed under `Disconnect` are detached, and the round is counted.
//!
//! On a broker that keeps history, step 1 also records the payload, and the pattern table is
//! read-locked from before step 1 to the end of step 2 (`index/mod.rs` says why). A handle
//! made with `one_delivery_per_publish` that step 1 reached is skipped in step 2; one it did
//! not reach gets one delivery there, by its matching pattern subscribed first (`Once`).
//!
//! # A cancelled `publish_async`
//!
//! Its future may be dropped while it waits for room. It keeps its work in an `Unfinished`,
//! whose `Drop` refuses each delivery still waiting (under the subscription's index lock, as a
//! wait would re-check it: the handle counts it dropped and reads a `Lagged` notice) and
//! counts what the publish delivered, as `finish` does.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Arc;

use crate::error::Published;
use crate::index::{Entry, Held, Index, Released, Stripe};
use crate::item::{Envelope, Item, ItemSender};
use crate::kind::Kind;
use crate::names::SubId;
use crate::queue::{Offer, Tally};
use crate::registry::Registry;
use crate::stats::Disconnected;
use crate::subscriber::{Subscriber, SubscriberId};
use crate::sync::{fence, Ordering};
use crate::wait::Wait;
use crate::wake::Woken;

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
    fn channels(&self) -> bool {
        #[cfg(feature = "redis")]
        if let Reach::Pattern(_) = self {
            return false;
        }
        true
    }

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

/// A subscription a delivery that waits may be queued through: where to find it again, and
/// which one it must still be.
struct Target {
    kind: Kind,
    name: Arc<str>,
    id: SubId,
}

/// A delivery that found a `Block` queue full, to retry without any index lock held.
struct Deferred<T: ?Sized> {
    subscriber: Arc<Subscriber<T>>,
    /// The subscription it was for; for a handle that takes one delivery per publish, then
    /// its other subscriptions that matched the publish, in the order they stand in for the
    /// ones before them once those are gone (`Deferred::hold`).
    targets: VecDeque<Target>,
    /// The channel published to, once `targets` holds more than one.
    channel: Option<Arc<str>>,
    /// `None` only while it is being offered.
    item: Option<Item<T>>,
}

impl<T: ?Sized> Deferred<T> {
    /// The index lock over the first of its subscriptions that still stands, held, and its
    /// sender (see `Index::hold`), with the item addressed to that subscription; `None` once
    /// none stands.
    fn hold<'i>(&mut self, index: &'i Index<T>) -> Option<(Held<'i, T>, ItemSender<T>)> {
        while let Some(target) = self.targets.front() {
            let held = index.hold(target.kind, &target.name, &self.subscriber, target.id);
            if held.is_some() {
                if let Some(item) = self.item.take() {
                    self.item = Some(readdress(item, target, self.channel.as_ref()));
                }
                return held;
            }
            self.targets.pop_front();
        }
        None
    }

    /// The sender clones it queued with may have been the queue's last: the readers of a
    /// handle closed meanwhile then see the end.
    fn done(self) {
        if !self.subscriber.is_open() {
            self.subscriber.wake().wake();
        }
    }
}

/// The work of one publish, gathered while index locks are held and finished after.
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
    /// Readers to wake once the locks are let go.
    woken: Woken,
}

impl<'a, T: ?Sized> Round<'a, T> {
    fn new(may_wait: bool, stripe: &'a Stripe<T>) -> Self {
        Round {
            may_wait,
            published: Published::default(),
            tally: Tally::default(),
            deferred: Vec::new(),
            waiting: None,
            disconnect: Vec::new(),
            stripe,
            channel_delivered: 0,
            woken: Woken::default(),
        }
    }

    /// After the deliveries to `entries` (under the lock over them): one fence for all of
    /// them, then the waiting readers to wake (`wake.rs`).
    fn take_readers<'e>(&mut self, entries: impl IntoIterator<Item = &'e Entry<T>>)
    where
        T: 'e,
    {
        fence(Ordering::SeqCst);
        for entry in entries {
            entry.subscriber.wake().take_after_fence(&mut self.woken);
        }
    }

    fn offer(&mut self, entry: &Entry<T>, kind: Kind, name: &Arc<str>, item: Item<T>) {
        let subscriber = &entry.subscriber;
        // Once a handle waits in this publish, its later deliveries wait behind it, so the
        // channel's message still comes before the patterns' ones.
        let waiting = self.waiting.as_ref();
        let offer = if waiting.is_some_and(|w| w.contains(&subscriber.id())) {
            Offer::Full(item)
        } else {
            subscriber.offer(&entry.sender, item, self.may_wait, &mut self.tally)
        };
        match offer {
            Offer::Delivered => self.published.delivered += 1,
            Offer::Dropped => self.published.full.push(subscriber.id()),
            Offer::Full(item) => self.defer(entry, kind, name, item),
            Offer::Disconnect => {
                self.published.full.push(subscriber.id());
                self.disconnect.push(Arc::clone(subscriber));
            }
            Offer::Gone => {}
        }
    }

    /// Keeps a delivery that found a `Block` queue full, to retry with no lock held. Out of
    /// line: most publishes never come here, and `offer` stays small enough to inline what
    /// every delivery runs.
    #[cold]
    #[inline(never)]
    fn defer(&mut self, entry: &Entry<T>, kind: Kind, name: &Arc<str>, item: Item<T>) {
        let subscriber = &entry.subscriber;
        let waiting = self.waiting.get_or_insert_with(HashSet::new);
        waiting.insert(subscriber.id());
        let target = Target {
            kind,
            name: Arc::clone(name),
            id: entry.id,
        };
        self.deferred.push(Deferred {
            subscriber: Arc::clone(subscriber),
            targets: VecDeque::from([target]),
            channel: None,
            item: Some(item),
        });
    }

    /// Gives `subscriber`'s delivery of this publish, if it waits for room, the handle's
    /// other subscriptions that matched, to stand in should its own be gone by then (a handle
    /// that takes one delivery per publish has no other delivery of it).
    fn stand_ins(
        &mut self,
        subscriber: SubscriberId,
        channel: impl FnOnce() -> Arc<str>,
        others: Vec<Target>,
    ) {
        let waits = self
            .waiting
            .as_ref()
            .is_some_and(|w| w.contains(&subscriber));
        if others.is_empty() || !waits {
            return;
        }
        let mut deferred = self.deferred.iter_mut().rev();
        if let Some(deferred) = deferred.find(|d| d.subscriber.id() == subscriber) {
            deferred.targets.extend(others);
            deferred.channel = Some(channel());
        }
    }
}

/// `item`, addressed to `target` instead: a channel delivery becomes a pattern one (with
/// `channel`, the channel published to) when a pattern subscription stands in for it.
fn readdress<T: ?Sized>(item: Item<T>, target: &Target, channel: Option<&Arc<str>>) -> Item<T> {
    let slot = target.id.slot;
    match (item, target.kind, channel) {
        (Item::Channel { payload, .. }, Kind::Channel, _) => Item::Channel { slot, payload },
        (Item::Channel { payload, .. }, Kind::Pattern, Some(channel)) => Item::Pattern {
            slot,
            publish: Arc::new(Envelope {
                channel: Arc::clone(channel),
                payload,
            }),
        },
        (Item::Pattern { publish, .. }, Kind::Pattern, _) => Item::Pattern { slot, publish },
        (item, _, _) => item,
    }
}

/// The handles made with `one_delivery_per_publish` that one publish matches: those its
/// channel reached, and the matching pattern subscriptions of each. A handle the channel did
/// not reach gets the publish through the first of them in subscription order; the others
/// stand in for the one that got it, should it wait for room and be gone by then. Empty,
/// and allocation-free, for a publish that meets none.
#[derive(Default)]
struct Once {
    reached: Option<HashSet<SubscriberId>>,
    /// Per handle: its matching pattern subscriptions, as the pattern's table slot, the
    /// subscription's id and the pattern.
    matched: Option<HashMap<SubscriberId, Vec<Match>>>,
}

/// A matching pattern subscription: the pattern's table slot, the subscription, the pattern.
type Match = (u32, SubId, Arc<str>);

impl Once {
    /// The channel's delivery reached `subscriber`: no pattern delivery will.
    fn reached(&mut self, subscriber: SubscriberId) {
        let reached = self.reached.get_or_insert_with(HashSet::new);
        reached.insert(subscriber);
    }

    fn was_reached(&self, subscriber: SubscriberId) -> bool {
        let reached = self.reached.as_ref();
        reached.is_some_and(|r| r.contains(&subscriber))
    }

    /// `entry`, a subscription of `pattern` (in table slot `slot`), matches.
    fn matched<T: ?Sized>(&mut self, entry: &Entry<T>, slot: u32, pattern: &Arc<str>) {
        let matched = self.matched.get_or_insert_with(HashMap::new);
        let of_handle = matched.entry(entry.subscriber.id()).or_default();
        of_handle.push((slot, entry.id, Arc::clone(pattern)));
    }

    /// Each handle's matching pattern subscriptions, in subscription order.
    fn take(&mut self) -> Vec<(SubscriberId, Vec<Match>)> {
        let Some(matched) = self.matched.take() else {
            return Vec::new(); // most publishes: no map made, nothing allocated
        };
        let mut all: Vec<_> = matched.into_iter().collect();
        for (_, of_handle) in &mut all {
            of_handle.sort_unstable_by_key(|(_, id, _)| id.order());
        }
        all
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

    fn get(&mut self, last: bool) -> Arc<T> {
        match (last, &self.0) {
            (false, Some(payload)) => Arc::clone(payload),
            _ => self.0.take().expect("taken by the last delivery only"),
        }
    }
}

impl<T: ?Sized> Registry<T> {
    /// Delivers `payload` to every subscriber of `channel`, then once per matching pattern
    /// to each of its subscribers; full `Block` queues are waited for as `wait` allows, with
    /// no index lock held.
    pub(crate) fn publish(&self, channel: &str, payload: Arc<T>, wait: Wait) -> Published {
        self.publish_to(channel, payload, Reach::All, wait)
    }

    /// `publish`, to the subscriptions `reach` names only (the Redis bridge's narrower reaches).
    pub(crate) fn publish_to(
        &self,
        channel: &str,
        payload: Arc<T>,
        reach: Reach,
        wait: Wait,
    ) -> Published {
        let Some((hash, stripe)) = self.open_stripe(channel) else {
            return Published::default();
        };
        // Made here and only lent from now on: a round is a few hundred bytes, and its moves
        // (out of a returned `Option`, into `finish`) were 12% of its samples in `perf`.
        let mut round = Round::new(wait.may_wait(), stripe);
        self.offer_and_wake(&mut round, hash, channel, payload, reach);
        // Checked first here and in `finish`: most rounds have nothing to wait for or detach,
        // and iterating even an empty taken `Vec` costs a call to drop its iterator (2-3% of
        // a publish's samples in `perf` before the check).
        if !round.deferred.is_empty() {
            for deferred in std::mem::take(&mut round.deferred) {
                self.deliver_after_wait(deferred, wait, &mut round);
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
        channel: &str,
        payload: Arc<T>,
        reach: Reach,
    ) -> Published {
        let Some((hash, stripe)) = self.open_stripe(channel) else {
            return Published::default();
        };
        let mut round = Round::new(true, stripe);
        self.offer_and_wake(&mut round, hash, channel, payload, reach);
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
                // Check the subscription and offer under its index lock, as `publish` does.
                let index = self.index();
                let Some((held, sender)) = next.hold(index) else {
                    return std::task::Poll::Ready(false);
                };
                let Some(item) = next.item.take() else {
                    return std::task::Poll::Ready(false);
                };
                let mut woken = Woken::default();
                let offered = next.subscriber.offer_or_register(
                    &sender,
                    item,
                    &mut round.tally,
                    cx.waker(),
                    &mut woken,
                );
                drop((held, sender));
                woken.wake_all();
                match offered {
                    Ok(delivered) => std::task::Poll::Ready(delivered),
                    Err(again) => {
                        next.item = Some(again);
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
            Some(mut round) => self.finish(&mut round),
            None => Published::default(),
        }
    }

    /// The hash of `channel` and the stripe it picks; `None` once the broker is closed.
    fn open_stripe(&self, channel: &str) -> Option<(u64, &Stripe<T>)> {
        let index = self.index();
        (!index.is_closed()).then(|| index.stripe(channel))
    }

    /// Steps 1 to 3 of a publish (module docs), into `round` (made on `channel`'s stripe,
    /// whose hash is `hash`): the deliveries that must wait for room are left in its
    /// `deferred`.
    fn offer_and_wake(
        &self,
        round: &mut Round<'_, T>,
        hash: u64,
        channel: &str,
        payload: Arc<T>,
        reach: Reach,
    ) {
        self.offer_all(round, hash, channel, payload, reach);
        round.woken.wake_taken();
    }

    /// Offers `payload` to every subscription `reach` names that matches `channel` (whose
    /// hash is `hash`, in the round's stripe), channel subscribers first, without waiting:
    /// full `Block` queues are left in the round's `deferred`. With history kept, the payload
    /// is recorded under the stripe's lock, and the pattern table is read-locked from before
    /// that to the last pattern delivery, so that a pattern subscription's replay is a clean
    /// cut (`index/mod.rs`).
    fn offer_all(
        &self,
        round: &mut Round<'_, T>,
        hash: u64,
        channel: &str,
        payload: Arc<T>,
        reach: Reach,
    ) {
        let index = self.index();
        let stripe = round.stripe;
        let channels = reach.channels();
        let history = index.history().filter(|_| reach.records());
        // Declared before the locks, so dropped after them.
        let mut released = Released::default();
        let held = history.map(|_| index.patterns());
        let patterns = reach.patterns() && index.has_patterns();
        let mut payload = Payload(Some(payload));
        let mut name: Option<Arc<str>> = None;
        let mut once = Once::default();
        {
            let map = stripe.lock();
            let found = map.get(hash, channel);
            if let Some(history) = history {
                let shared = found.map(|found| &found.name);
                history
                    .lock()
                    .record(channel, shared, payload.peek(), &mut released);
            }
            if let Some(found) = found.filter(|_| channels) {
                let last = found.value.len().saturating_sub(1);
                for (i, entry) in found.value.iter().enumerate() {
                    if patterns && entry.subscriber.one_per_publish() {
                        once.reached(entry.subscriber.id());
                    }
                    let payload = payload.get(i == last && !patterns);
                    let item = Item::Channel {
                        slot: entry.id.slot,
                        payload,
                    };
                    round.offer(entry, Kind::Channel, &found.name, item);
                }
                round.take_readers(&found.value);
                if patterns {
                    name = Some(found.name.clone());
                }
            }
            map.count(round.published.delivered);
        }
        round.channel_delivered = round.published.delivered;
        if patterns {
            let table = held.unwrap_or_else(|| index.patterns());
            let slots: Arc<[u32]> = match reach.only_pattern() {
                Some(only) => table.slot(only).into_iter().collect(),
                None => table.matches(hash, channel),
            };
            let mut envelope: Option<Arc<Envelope<T>>> = None;
            let mut offer = |round: &mut Round<'_, T>, entry: &Entry<T>, pattern: &Arc<str>| {
                let publish = envelope.get_or_insert_with(|| {
                    Arc::new(Envelope {
                        channel: name.take().unwrap_or_else(|| Arc::from(channel)),
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
                    if entry.subscriber.one_per_publish() {
                        once.matched(entry, slot, &pattern.pattern);
                    } else {
                        offer(round, entry, &pattern.pattern);
                    }
                }
                round.take_readers(&pattern.value);
            }
            let mut matched = once.take();
            for (subscriber, matched) in &mut matched {
                if !once.was_reached(*subscriber) && !matched.is_empty() {
                    let (slot, id, _) = matched.remove(0);
                    let pattern = table.at(slot);
                    let found = pattern.and_then(|p| Some((p, p.value.get(*subscriber, id)?)));
                    if let Some((pattern, entry)) = found {
                        offer(round, entry, &pattern.pattern);
                        round.take_readers([entry]);
                    }
                }
            }
            // Made only for a delivery that waits and has stand-ins: a clone of a shared
            // name is an atomic add on a line the readers use.
            let published = || {
                let shared = envelope.as_ref().map(|e| &e.channel).or(name.as_ref());
                shared.map_or_else(|| Arc::from(channel), Arc::clone)
            };
            for (subscriber, others) in matched {
                let others: Vec<Target> = (others.into_iter())
                    .map(|(_, id, name)| Target {
                        kind: Kind::Pattern,
                        name,
                        id,
                    })
                    .collect();
                round.stand_ins(subscriber, published, others);
            }
        }
    }

    /// Retries a delivery to a full `Block` queue until it is queued, refused at the
    /// deadline, or the subscription it was meant for is gone.
    fn deliver_after_wait(&self, mut deferred: Deferred<T>, wait: Wait, round: &mut Round<'_, T>) {
        let deadline = wait.deadline();
        let subscriber = Arc::clone(&deferred.subscriber);
        let index = self.index();
        loop {
            let Some((held, sender)) = deferred.hold(index) else {
                break;
            };
            let Some(item) = deferred.item.take() else {
                break;
            };
            let Some(queue) = subscriber.queue().filter(|_| subscriber.is_open()) else {
                break;
            };
            let mut locked = queue.lock();
            let offered = subscriber.tallied(&mut round.tally, |mine| {
                locked.offer_after_wait(&sender, item, deadline, mine)
            });
            match offered {
                Ok(Offer::Delivered) => {
                    // Held until the handle's counters are updated, so an unsubscribe that
                    // returns sees them complete; then the reader is woken, with no lock held.
                    round.published.delivered += 1;
                    let mut woken = Woken::default();
                    subscriber.delivered(&mut woken);
                    drop((locked, held, sender));
                    woken.wake_all();
                }
                Ok(Offer::Dropped) => round.published.full.push(subscriber.id()),
                Ok(_) => {}
                Err(again) => {
                    deferred.item = Some(again);
                    // Registered before the index lock is let go (see `room.rs`).
                    let waiting = locked.register();
                    drop((held, sender));
                    waiting.wait(deadline);
                    continue;
                }
            }
            break;
        }
        deferred.done();
    }

    /// Disconnects the handles the round found full under `Disconnect` (no lock is held
    /// now), and counts what the round did.
    fn finish(&self, round: &mut Round<'_, T>) -> Published {
        if !round.disconnect.is_empty() {
            for subscriber in std::mem::take(&mut round.disconnect) {
                self.detach(&subscriber, Disconnected::Overflow);
            }
        }
        let late = round.published.delivered - round.channel_delivered;
        round.stripe.count_late(late);
        self.count_dropped(round.tally.dropped);
        std::mem::take(&mut round.published)
    }

    /// Refuses a delivery that was waiting for room, as `try_publish` refuses one: when the
    /// subscription still stands, the handle counts it dropped and reads a `Lagged` notice.
    #[cfg(feature = "async")]
    fn refuse(&self, deferred: &mut Deferred<T>, round: &mut Round<'_, T>) {
        if deferred.item.is_none() {
            return;
        }
        let index = self.index();
        if let Some(held) = deferred.hold(index) {
            deferred.subscriber.refuse(&held.1, &mut round.tally);
            round.published.full.push(deferred.subscriber.id());
            drop(held);
            // The notice may be all there is to read: a reader asleep on an empty queue
            // must come for it (woken with no lock held).
            deferred.subscriber.wake().wake();
        }
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
}

#[cfg(feature = "async")]
impl<T: ?Sized> Drop for Unfinished<'_, T> {
    fn drop(&mut self) {
        let Some(mut round) = self.round.take() else {
            return;
        };
        for mut deferred in std::mem::take(&mut self.deferred) {
            self.registry.refuse(&mut deferred, &mut round);
            deferred.done();
        }
        self.registry.finish(&mut round);
    }
}
