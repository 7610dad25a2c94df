//! A handle's queue: a `crossbeam-channel` of [`Item`]s that only the handle reads, and, for
//! a bounded handle, the exact count of the deliveries in it.
//!
//! # Counting a bounded queue
//!
//! Confirmations and notices never count against the bound; [`Room`] counts deliveries. A
//! publisher claims a place (a compare-and-swap below the limit) before it sends, a reader
//! gives one back when it takes a delivery, an eviction when it drops one. So the count is
//! exact at every moment: the deliveries in the channel plus those claimed and being sent.
//!
//! # Waiting for room (`Block`)
//!
//! A publisher that finds no room registers in the room's wake list and claims once more
//! before it sleeps (`wake.rs` has the protocol). A reader that takes a delivery from a full
//! queue gives its place back, issues a `SeqCst` fence and takes the registered wakers, to
//! wake once it has let go of its locks: the read that makes room wakes the publisher, and a
//! queue that is not full costs its readers one comparison. A reader waiting on a rendezvous
//! (capacity 0) is room too: it wakes the publishers when it starts to wait.
//!
//! # `DropOldest`
//!
//! Under `DropOldest` every delivery and every take locks the queue ([`Carry`]), and a full
//! queue makes room by taking the oldest items from the channel's head: deliveries are
//! dropped, and the other items move, in order, to the carry, which readers take before the
//! channel. Each run of evicted deliveries leaves one `Lagged` notice in its place (added to
//! a notice right before it), and the newest `HighWater` notice that sits behind the first
//! delivery moves ahead of it, so that the warning is still read before the loss (its
//! original in the channel is then skipped). Each item moves at most once, so an eviction
//! costs its batch of deliveries, whatever else is queued.
//!
//! # Locks
//!
//! The carry's lock is taken by publishers under an index lock and by readers under the
//! handle's `names`; nothing is taken under it. The wake lists' locks are leaves.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU64};

use crossbeam_channel::TryRecvError;
use parking_lot::Mutex;

use super::wake::{WakeList, Woken};
use crate::config::{Overflow, QueueConfig};
use crate::item::{Item, ItemReceiver, ItemSender, Queued};
use crate::shrink::is_sparse;
use crate::sync::{AtomicUsize, Ordering};

/// `Relaxed`, for counters: each is exact, none orders anything else.
const COUNTED: std::sync::atomic::Ordering = std::sync::atomic::Ordering::Relaxed;

/// What became of a delivery that did not simply go in (see `Queue::offer`).
pub(crate) enum Offer<T: ?Sized> {
    /// Queued, after evicting these older deliveries (`DropOldest`): the caller drops them
    /// once it holds no lock, since dropping a payload may run the user's code.
    Evicted(Vec<Item<T>>),
    /// Not queued, and counted as dropped: full under a drop policy, or refused without
    /// waiting. Given back to be dropped with no lock held.
    Dropped(Item<T>),
    /// Full under `Block`, and the caller may wait: the delivery comes back to retry.
    Full(Item<T>),
    /// Full under `Disconnect`: the caller disconnects the handle once it holds no lock.
    Disconnect(Item<T>),
    /// The queue has ended: not queued, not counted.
    Gone(Item<T>),
}

/// A handle's counters: on cache lines of their own, since publishers write them on every
/// delivery and readers poll the handle's other fields.
#[derive(Default)]
#[repr(align(128))]
pub(crate) struct Counters {
    /// Deliveries queued.
    pub(crate) delivered: AtomicU64,
    /// Deliveries refused or evicted.
    pub(crate) dropped: AtomicU64,
    /// `Lagged` notices made, less those merged into another.
    pub(crate) lagged: AtomicU64,
    /// `HighWater` notices made.
    pub(crate) warnings: AtomicU64,
}

impl Counters {
    fn drop_one(&self, broker: &mut u64) {
        self.dropped.fetch_add(1, COUNTED);
        *broker += 1;
    }
}

/// A handle's queue.
pub(crate) struct Queue<T: ?Sized> {
    receiver: ItemReceiver<T>,
    /// `None` for an unbounded queue.
    bound: Option<Bound<T>>,
    pub(crate) counters: Counters,
}

impl<T: ?Sized> Queue<T> {
    /// A queue as `config` describes it, and its first sender.
    pub(crate) fn new(config: &QueueConfig) -> (Self, ItemSender<T>) {
        let (sender, receiver) = crossbeam_channel::unbounded();
        let bound = config.capacity.map(|capacity| Bound {
            capacity,
            overflow: config.overflow,
            high_water: config
                .high_water
                .filter(|_| capacity > 0)
                .map(|mark| mark.clamp(1, capacity)),
            room: Room::new(capacity),
            armed: AtomicBool::new(true),
            peak: std::sync::atomic::AtomicUsize::new(0),
            missed: AtomicU64::new(0),
            carry: (config.overflow == Overflow::DropOldest && capacity > 0)
                .then(|| Mutex::new(Carry::default())),
        });
        let queue = Queue {
            receiver,
            bound,
            counters: Counters::default(),
        };
        (queue, sender)
    }

    /// The channel's receiving end, for `Select`.
    pub(crate) fn receiver(&self) -> &ItemReceiver<T> {
        &self.receiver
    }

    /// The bound, `None` for an unbounded queue.
    pub(crate) fn bound(&self) -> Option<&Bound<T>> {
        self.bound.as_ref()
    }

    /// Items queued: deliveries, confirmations and notices.
    pub(crate) fn len(&self) -> usize {
        let carried = self.bound.as_ref().and_then(|b| b.carry.as_ref());
        match carried {
            None => self.receiver.len(),
            Some(carry) => {
                let carry = carry.lock();
                let queued = carry.items.len() + self.receiver.len();
                queued.saturating_sub(carry.stale.len())
            }
        }
    }

    /// Offers one delivery through `sender`: whether it was queued. Anything else that
    /// became of it goes to `not_queued` (an [`Offer`] is made only then, so the usual path
    /// has none to drop); the broker's drop count goes to `dropped`. A full `Block` queue
    /// gives the delivery back unless `may_wait` is false.
    #[inline(always)]
    pub(crate) fn offer(
        &self,
        sender: &ItemSender<T>,
        item: Item<T>,
        may_wait: bool,
        dropped: &mut u64,
        not_queued: impl FnOnce(Offer<T>),
    ) -> bool {
        let Some(bound) = &self.bound else {
            if let Err(unsent) = sender.send(Queued(item)) {
                not_queued(Offer::Gone(unsent.0 .0));
                return false;
            }
            self.counters.delivered.fetch_add(1, COUNTED);
            return true;
        };
        if bound.carry.is_none() {
            if let Some(before) = bound.room.claim() {
                return bound.deliver(self, sender, item, before, None, not_queued);
            }
        }
        bound.offer_full(self, sender, item, may_wait, dropped, not_queued)
    }

    /// For a publisher that waited for room: queues the delivery if there is room now
    /// (`Ok(false)` if the queue has ended meanwhile), or gives it back.
    pub(crate) fn offer_after_wait(
        &self,
        sender: &ItemSender<T>,
        item: Item<T>,
    ) -> Result<bool, Item<T>> {
        let Some(bound) = &self.bound else {
            return Ok(self.offer(sender, item, false, &mut 0, drop));
        };
        match bound.room.claim() {
            Some(before) => Ok(bound.deliver(self, sender, item, before, None, drop)),
            None => Err(item),
        }
    }

    /// Refuses one delivery (full, or a publisher stopped waiting for room): counted, and
    /// reported by the next `Lagged` notice, which goes before the next item queued or is
    /// read once the queue is empty.
    pub(crate) fn refuse(&self, dropped: &mut u64) {
        if let Some(bound) = &self.bound {
            bound.missed.fetch_add(1, COUNTED);
            self.counters.drop_one(dropped);
        }
    }

    /// Queues a confirmation or notice: never refused, never counted against capacity. A
    /// pending `Lagged` notice goes first.
    pub(crate) fn send_control(&self, sender: &ItemSender<T>, item: Item<T>) {
        if let Some(bound) = &self.bound {
            bound.flush_missed(self, sender);
        }
        let _ = sender.send(Queued(item));
    }

    /// Queues the pending `Lagged` notice now if nothing is queued for it to follow, so that
    /// a reader waiting on the raw receiver (`Select`) sees it too.
    #[cfg(feature = "async")]
    pub(crate) fn flush_missed_if_empty(&self, sender: &ItemSender<T>) {
        if let Some(bound) = self.bound.as_ref().filter(|_| self.receiver.is_empty()) {
            bound.flush_missed(self, sender);
        }
    }

    /// `take` for an unbounded queue.
    #[inline]
    pub(crate) fn take_unbounded(&self) -> Result<Item<T>, TryRecvError> {
        self.receiver.try_recv().map(|queued| queued.0)
    }

    /// Takes the next item for the reader; publishers to wake for the room it made go into
    /// `woken`. Once the channel is empty, a pending `Lagged` notice is the next item.
    #[inline]
    pub(crate) fn take(&self, woken: &mut Woken) -> Result<Item<T>, TryRecvError> {
        let Some(bound) = &self.bound else {
            return self.receiver.try_recv().map(|queued| queued.0);
        };
        if let Some(carry) = &bound.carry {
            return bound.take_oldest(self, carry, woken);
        }
        match self.receiver.try_recv() {
            Ok(Queued(item)) => {
                if item.is_delivery() {
                    bound.took_delivery(woken);
                }
                Ok(item)
            }
            Err(error) => bound.take_missed(self).ok_or(error),
        }
    }

    /// A reader is about to wait (`true`) or has stopped waiting (`false`): room for a
    /// rendezvous.
    pub(crate) fn reader_waiting(&self, waiting: bool) {
        if let Some(bound) = &self.bound {
            bound.room.reader_waiting(waiting);
        }
    }

    /// The room of a bounded queue, for publishers that wait for it.
    pub(crate) fn room(&self) -> Option<&Room> {
        self.bound.as_ref().map(|bound| &bound.room)
    }
}

/// A bounded queue's limit, policy and bookkeeping.
pub(crate) struct Bound<T: ?Sized> {
    capacity: usize,
    overflow: Overflow,
    /// Deliveries queued at which a `HighWater` notice is given, between 1 and `capacity`.
    high_water: Option<usize>,
    room: Room,
    /// Whether reaching the high-water mark gives a notice: cleared when it does, set again
    /// once fewer than half the mark are queued after a read.
    armed: AtomicBool,
    /// The most deliveries queued at once.
    peak: std::sync::atomic::AtomicUsize,
    /// Deliveries refused since the last `Lagged` notice.
    missed: AtomicU64,
    /// `DropOldest` with a capacity above 0: the evictions' carry, locked by every delivery
    /// and take.
    carry: Option<Mutex<Carry<T>>>,
}

/// What `DropOldest` evictions moved out of the channel's head, and the warnings they track.
struct Carry<T: ?Sized> {
    /// Items older than everything in the channel, read first.
    items: VecDeque<Item<T>>,
    /// The `HighWater` notices in the channel, not read, oldest first: `(id, queued)`.
    warnings: VecDeque<(u64, usize)>,
    /// Notices copied into `items` whose originals are still in the channel, to skip.
    stale: Vec<u64>,
}

impl<T: ?Sized> Default for Carry<T> {
    fn default() -> Self {
        Carry {
            items: VecDeque::new(),
            warnings: VecDeque::new(),
            stale: Vec::new(),
        }
    }
}

impl<T: ?Sized> Carry<T> {
    /// Ends a run of `run` evicted deliveries with its `Lagged` notice, added to the notice
    /// right before it if there is one.
    fn end_run(&mut self, run: &mut u64, counters: &Counters) {
        let missed = std::mem::take(run);
        if missed == 0 {
            return;
        }
        match self.items.back_mut() {
            Some(Item::Lagged { missed: before }) => *before += missed,
            _ => {
                self.items.push_back(Item::Lagged { missed });
                counters.lagged.fetch_add(1, COUNTED);
            }
        }
    }

    /// Moves the newest warning still in the channel (so behind the first delivery, which is
    /// about to go) ahead of it: a copy goes into `items`, and its original is skipped later.
    fn move_warning_ahead(&mut self) {
        if let Some((id, queued)) = self.warnings.pop_back() {
            self.stale.push(id);
            self.items.push_back(Item::Warning { id, queued });
        }
    }

    /// Whether `item` is the original of a warning moved ahead (and is to be skipped).
    fn is_stale(&mut self, item: &Item<T>) -> bool {
        let Some(id) = item.warning() else {
            return false;
        };
        let found = self.stale.iter().position(|&stale| stale == id);
        found.map(|at| self.stale.swap_remove(at)).is_some()
    }

    /// `item` leaves the channel, for a reader or for `items`.
    fn left(&mut self, item: &Item<T>) {
        if let Some(id) = item.warning() {
            self.warnings.retain(|&(unread, _)| unread != id);
        }
    }
}

impl<T: ?Sized> Bound<T> {
    pub(crate) fn capacity(&self) -> usize {
        self.capacity
    }

    pub(crate) fn overflow(&self) -> Overflow {
        self.overflow
    }

    pub(crate) fn high_water(&self) -> Option<usize> {
        self.high_water
    }

    /// The most deliveries queued at once.
    pub(crate) fn peak(&self) -> usize {
        self.peak.load(COUNTED)
    }

    /// Sends a delivery whose place is claimed (`before` were queued): counted, the peak
    /// kept, a pending `Lagged` notice sent first, and a `HighWater` notice after it if it
    /// reached the armed mark (recorded in `carry` under `DropOldest`). False, the delivery
    /// going to `not_queued`, if the queue has ended.
    #[inline]
    fn deliver(
        &self,
        queue: &Queue<T>,
        sender: &ItemSender<T>,
        item: Item<T>,
        before: usize,
        carry: Option<&mut Carry<T>>,
        not_queued: impl FnOnce(Offer<T>),
    ) -> bool {
        self.flush_missed(queue, sender);
        if let Err(unsent) = sender.send(Queued(item)) {
            self.room.give_back();
            not_queued(Offer::Gone(unsent.0 .0));
            return false;
        }
        queue.counters.delivered.fetch_add(1, COUNTED);
        let queued = before + 1;
        if queued > self.peak.load(COUNTED) {
            self.peak.fetch_max(queued, COUNTED);
        }
        if self.high_water.is_some_and(|mark| queued >= mark) {
            self.warn(queue, sender, queued, carry);
        }
        true
    }

    /// `offer` for a queue that is full, or under `DropOldest`.
    #[inline(never)]
    fn offer_full(
        &self,
        queue: &Queue<T>,
        sender: &ItemSender<T>,
        item: Item<T>,
        may_wait: bool,
        dropped: &mut u64,
        not_queued: impl FnOnce(Offer<T>),
    ) -> bool {
        if let Some(carry) = &self.carry {
            return self.offer_dropping_oldest(queue, carry, sender, item, dropped, not_queued);
        }
        not_queued(match self.overflow {
            Overflow::Block if may_wait => Offer::Full(item),
            Overflow::Disconnect => {
                queue.counters.drop_one(dropped);
                Offer::Disconnect(item)
            }
            _ => {
                queue.refuse(dropped);
                Offer::Dropped(item)
            }
        });
        false
    }

    /// Gives the `HighWater` notice if it is armed; `carry` records it under `DropOldest`.
    #[cold]
    fn warn(
        &self,
        queue: &Queue<T>,
        sender: &ItemSender<T>,
        queued: usize,
        carry: Option<&mut Carry<T>>,
    ) {
        if !self.armed.swap(false, COUNTED) {
            return;
        }
        let id = queue.counters.warnings.fetch_add(1, COUNTED);
        let _ = sender.send(Queued(Item::Warning { id, queued }));
        if let Some(carry) = carry {
            carry.warnings.push_back((id, queued));
        }
    }

    /// `offer` under `DropOldest`: a full queue evicts its oldest deliveries, down to 7/8
    /// of the capacity (at least one), before the new one joins.
    fn offer_dropping_oldest(
        &self,
        queue: &Queue<T>,
        carry: &Mutex<Carry<T>>,
        sender: &ItemSender<T>,
        item: Item<T>,
        dropped: &mut u64,
        not_queued: impl FnOnce(Offer<T>),
    ) -> bool {
        let mut carry = carry.lock();
        let mut evicted = Vec::new();
        // Changed only under this lock, so exact here.
        let queued = self.room.queued();
        if queued >= self.capacity {
            let keep = self.capacity - (self.capacity / 8).max(1);
            self.evict(queue, &mut carry, queued - keep, &mut evicted);
            let gone = evicted.len();
            self.room.evicted(gone);
            queue.counters.dropped.fetch_add(gone as u64, COUNTED);
            *dropped += gone as u64;
        }
        let Some(before) = self.room.claim() else {
            // Only when items were taken from the raw receiver, which the room cannot see.
            queue.refuse(dropped);
            not_queued(Offer::Dropped(item));
            return false;
        };
        let mut unsent = None;
        let sent = self.deliver(queue, sender, item, before, Some(&mut carry), |offer| {
            unsent = Some(offer);
        });
        drop(carry);
        match unsent {
            Some(offer) => not_queued(offer),
            None if !evicted.is_empty() => not_queued(Offer::Evicted(evicted)),
            None => {}
        }
        sent
    }

    /// Takes the oldest items from the channel's head until `count` deliveries are evicted
    /// into `evicted`; see the module docs.
    fn evict(
        &self,
        queue: &Queue<T>,
        carry: &mut Carry<T>,
        mut count: usize,
        evicted: &mut Vec<Item<T>>,
    ) {
        let mut run = 0;
        // What is not a delivery moves here once; many such items are given room at once.
        let others = queue.receiver.len().saturating_sub(self.room.queued());
        if others > 16 {
            carry.items.reserve_exact(others);
        }
        while count > 0 {
            let Ok(Queued(item)) = queue.receiver.try_recv() else {
                break;
            };
            if item.is_delivery() {
                if evicted.is_empty() {
                    carry.move_warning_ahead();
                }
                count -= 1;
                run += 1;
                evicted.push(item);
            } else if !carry.is_stale(&item) {
                carry.end_run(&mut run, &queue.counters);
                carry.left(&item);
                carry.items.push_back(item);
            }
        }
        carry.end_run(&mut run, &queue.counters);
    }

    /// `take` under `DropOldest`: the carry first, then the channel.
    #[inline(never)]
    fn take_oldest(
        &self,
        queue: &Queue<T>,
        carry: &Mutex<Carry<T>>,
        woken: &mut Woken,
    ) -> Result<Item<T>, TryRecvError> {
        let mut carry = carry.lock();
        let item = match carry.items.pop_front() {
            Some(item) => {
                let (len, room) = (carry.items.len(), carry.items.capacity());
                if is_sparse(len, room) {
                    carry.items.shrink_to(len * 2);
                }
                item
            }
            None => loop {
                let item = match queue.receiver.try_recv() {
                    Ok(Queued(item)) => item,
                    Err(error) => return self.take_missed(queue).ok_or(error),
                };
                if !carry.is_stale(&item) {
                    carry.left(&item);
                    break item;
                }
            },
        };
        if item.is_delivery() {
            self.took_delivery(woken);
        }
        Ok(item)
    }

    /// A reader took a delivery: its place goes back (waking publishers waiting for room),
    /// and the high-water notice is armed again once fewer than half the mark are queued.
    #[inline]
    fn took_delivery(&self, woken: &mut Woken) {
        let queued = self.room.release(woken);
        if let Some(mark) = self.high_water {
            if queued * 2 < mark && !self.armed.load(COUNTED) {
                self.armed.store(true, COUNTED);
            }
        }
    }

    /// The pending `Lagged` notice, taken: counted as made.
    fn take_missed(&self, queue: &Queue<T>) -> Option<Item<T>> {
        if self.missed.load(COUNTED) == 0 {
            return None;
        }
        let missed = self.missed.swap(0, COUNTED);
        (missed > 0).then(|| {
            queue.counters.lagged.fetch_add(1, COUNTED);
            Item::Lagged { missed }
        })
    }

    /// Sends the pending `Lagged` notice, if any.
    #[inline]
    fn flush_missed(&self, queue: &Queue<T>, sender: &ItemSender<T>) {
        if self.missed.load(COUNTED) > 0 {
            if let Some(notice) = self.take_missed(queue) {
                let _ = sender.send(Queued(notice));
            }
        }
    }
}

/// The deliveries a bounded queue holds, against its limit, and the publishers waiting for a
/// place (see the module docs). Every change of `queued` is `SeqCst`, and its releases fence
/// before they look for waiting publishers, so no wake-up is lost (`model_check.rs`).
pub(crate) struct Room {
    capacity: usize,
    queued: AtomicUsize,
    /// Readers waiting for an item: the limit of a rendezvous (capacity 0).
    waiting_readers: AtomicUsize,
    publishers: WakeList,
}

impl Room {
    pub(crate) fn new(capacity: usize) -> Self {
        Room {
            capacity,
            queued: AtomicUsize::new(0),
            waiting_readers: AtomicUsize::new(0),
            publishers: WakeList::default(),
        }
    }

    /// Deliveries queued or being sent.
    pub(crate) fn queued(&self) -> usize {
        self.queued.load(Ordering::SeqCst)
    }

    fn limit(&self) -> usize {
        match self.capacity {
            0 => self.waiting_readers.load(Ordering::SeqCst),
            capacity => capacity,
        }
    }

    /// Claims a place for one delivery if one is free: how many were queued before it.
    #[inline]
    pub(crate) fn claim(&self) -> Option<usize> {
        let mut queued = self.queued.load(Ordering::SeqCst);
        loop {
            if queued >= self.limit() {
                return None;
            }
            let claimed = self.queued.compare_exchange_weak(
                queued,
                queued + 1,
                Ordering::SeqCst,
                Ordering::SeqCst,
            );
            match claimed {
                Ok(_) => return Some(queued),
                Err(now) => queued = now,
            }
        }
    }

    /// Gives back a claimed place whose delivery was not sent.
    fn give_back(&self) {
        self.queued.fetch_sub(1, Ordering::SeqCst);
    }

    /// `count` deliveries were evicted (no publisher waits under `DropOldest`).
    fn evicted(&self, count: usize) {
        self.queued.fetch_sub(count, Ordering::SeqCst);
    }

    /// A reader took a delivery: its place goes back, and if the queue was full, the
    /// publishers waiting for one go into `woken`. Returns the deliveries still queued.
    #[inline]
    pub(crate) fn release(&self, woken: &mut Woken) -> usize {
        let before = self.queued.fetch_sub(1, Ordering::SeqCst);
        if before >= self.capacity {
            self.publishers.take(woken);
        }
        before - 1
    }

    /// The publishers waiting for a place.
    pub(crate) fn publishers(&self) -> &WakeList {
        &self.publishers
    }

    /// A reader starts (`true`) or stops waiting: a rendezvous has room while one waits, so
    /// the publishers waiting for it are woken.
    pub(crate) fn reader_waiting(&self, waiting: bool) {
        if self.capacity > 0 {
            return;
        }
        if waiting {
            self.waiting_readers.fetch_add(1, Ordering::SeqCst);
            self.publishers.wake();
        } else {
            self.waiting_readers.fetch_sub(1, Ordering::SeqCst);
        }
    }
}
