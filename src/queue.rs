//! Bounded subscriber queues and what happens when one is full.
//!
//! # How a bounded queue is counted
//!
//! Every handle's queue is an unbounded `crossbeam-channel` of [`Item`]s; a bounded handle
//! adds the bookkeeping here, under one mutex (`QueueState`), so that only *deliveries* count
//! against the capacity and confirmations and notices never do. Every item sent gets a
//! position (`sent` counts them); items leave at the head in order, by a read or an eviction,
//! so `sent - len` of them have left. `marks` holds the positions of the non-delivery items
//! that may still be queued; those below `sent - len` are gone. What is queued is therefore
//! `len` items, of which `len - (marks still queued)` are deliveries.
//!
//! # Locks
//!
//! `queue` is taken after the registry's stripe or pattern lock and after the handle's
//! `state` and `names` (see `index/mod.rs`), never before them, and nothing else is taken while
//! it is held. A publisher waiting for room (`Overflow::Block`) registers under `queue` and
//! waits on `room` (`room.rs` has the handshake with the readers that make room); the
//! publish path holds a [`Locked`] queue, and lets go of its own registry lock itself between
//! the registration and the wait.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use crossbeam_channel::TryRecvError;

use crate::item::{Item, ItemReceiver, ItemSender, Queued};
use crate::message::Message;
use crate::room::Room;
use crate::sync::{Mutex, MutexGuard};

/// What a bounded queue does with a delivery that finds it full.
///
/// Confirmations and [`Message::Lagged`] notices never count against the capacity and are
/// never dropped, whatever the policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum Overflow {
    /// The publisher waits for room, as `bus` and bounded `crossbeam-channel`s do, holding no
    /// broker lock while it waits. Unsubscribing or closing the handle (or dropping it with
    /// its workers and streams) releases it at once. [`Broker::try_publish`](crate::Broker::try_publish) never waits and
    /// [`Broker::publish_timeout`](crate::Broker::publish_timeout) waits at most a while; both
    /// report the handles that were full. The default, as for bounded Rust channels.
    #[default]
    Block,
    /// The new delivery is dropped; the reader gets `Lagged { missed }` before the next
    /// delivery (or as soon as it has read everything queued).
    DropNewest,
    /// The oldest queued deliveries are dropped to make room, and the reader gets
    /// `Lagged { missed }` exactly where they were. Room is made in batches of an eighth of
    /// the capacity (at least one), so a reader that has stopped costs its publishers O(1)
    /// per message rather than a pass over the queue each time.
    DropOldest,
    /// Redis's choice: the handle is disconnected. It loses every subscription, its queue ends
    /// after what was already in it, and its stats say why.
    Disconnect,
}

/// The queue a new handle gets unless its builder says otherwise.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct QueueConfig {
    pub(crate) capacity: Option<usize>,
    pub(crate) overflow: Overflow,
    /// redis-py's `ignore_subscribe_messages`.
    pub(crate) ignore_confirmations: bool,
    /// Retained payloads are replayed after each new subscription's confirmation.
    pub(crate) replay: bool,
    /// A publish reaches the handle once, however many of its subscriptions match.
    pub(crate) one_per_publish: bool,
    /// A bounded queue's high-water mark, as asked for (clamped by `Bounded::new`).
    pub(crate) high_water: Option<usize>,
}

/// The outcome of offering one delivery to a handle.
pub(crate) enum Offer<T: ?Sized> {
    /// Queued.
    Delivered,
    /// Not queued, and counted as dropped (full under a drop policy, or refused without
    /// waiting).
    Dropped,
    /// Full under `Block`, and the caller may wait: the delivery comes back to retry.
    Full(Item<T>),
    /// Full under `Disconnect`: the caller must disconnect the handle once it holds no lock.
    Disconnect,
    /// The handle is closing or gone: not queued, not counted.
    Gone,
}

/// A bounded queue's limit, policy and bookkeeping.
pub(crate) struct Bounded<T: ?Sized> {
    capacity: usize,
    overflow: Overflow,
    /// A second receiver of the handle's queue: its length, and evictions for `DropOldest`.
    receiver: ItemReceiver<T>,
    queue: Mutex<QueueState>,
    /// Publishers waiting for room, signalled when room may have appeared or the handle's
    /// subscriptions changed.
    room: Room,
    /// Deliveries queued at which a `HighWater` notice is given, between 1 and `capacity`.
    high_water: Option<usize>,
}

struct QueueState {
    /// Items ever sent into the queue, of every kind.
    sent: u64,
    /// Positions of confirmations and notices that may still be queued, ascending.
    marks: VecDeque<u64>,
    /// Deliveries refused since the last notice; reported by the next `Lagged`.
    missed: u64,
    /// Readers waiting for an item (blocked in `get_message`/`listen` or a worker, or a
    /// stream that returned `Pending`): room for a rendezvous (capacity 0).
    waiting_readers: usize,
    /// Async publishers waiting for room (`Broker::publish_async`), woken with the others.
    room_wakers: Vec<std::task::Waker>,
    /// Whether reaching the high-water mark gives a notice: cleared when it does, set again
    /// once fewer than half the mark are queued.
    armed: bool,
    /// The most deliveries queued at once.
    peak: usize,
}

/// What a send changed, for the counters of the handle and the broker.
#[derive(Default)]
pub(crate) struct Tally {
    /// Deliveries refused or evicted.
    pub(crate) dropped: u64,
    /// `Lagged` notices made.
    pub(crate) notices: u64,
    /// Queued notices merged into another (a `DropOldest` eviction): no longer there to read.
    pub(crate) notices_merged: u64,
    /// `HighWater` notices made.
    pub(crate) warnings: u64,
}

impl Tally {
    pub(crate) fn add(&mut self, other: &Tally) {
        self.dropped += other.dropped;
        self.notices += other.notices;
        self.notices_merged += other.notices_merged;
        self.warnings += other.warnings;
    }
}

impl<T: ?Sized> Bounded<T> {
    /// A queue of `capacity` deliveries; a `high_water` mark above it is the capacity, 0 is
    /// 1, and a rendezvous (capacity 0) has none (it never holds a delivery).
    pub(crate) fn new(
        capacity: usize,
        overflow: Overflow,
        high_water: Option<usize>,
        receiver: ItemReceiver<T>,
    ) -> Self {
        Bounded {
            capacity,
            overflow,
            receiver,
            queue: Mutex::new(QueueState {
                sent: 0,
                marks: VecDeque::new(),
                missed: 0,
                waiting_readers: 0,
                room_wakers: Vec::new(),
                armed: true,
                peak: 0,
            }),
            room: Room::new(),
            high_water: high_water
                .filter(|_| capacity > 0)
                .map(|mark| mark.clamp(1, capacity)),
        }
    }

    /// The high-water mark in effect, if any.
    pub(crate) fn high_water(&self) -> Option<usize> {
        self.high_water
    }

    /// The most deliveries this queue has held at once.
    pub(crate) fn peak(&self) -> usize {
        self.queue.lock().peak
    }

    pub(crate) fn capacity(&self) -> usize {
        self.capacity
    }

    pub(crate) fn overflow(&self) -> Overflow {
        self.overflow
    }

    /// The queue, locked: for the publish path to offer, and to wait for room.
    pub(crate) fn lock(&self) -> Locked<'_, T> {
        Locked {
            bounded: self,
            q: self.queue.lock(),
        }
    }

    /// Queues a confirmation or notice, never refused; a pending `Lagged` notice goes first.
    pub(crate) fn send_control(&self, sender: &ItemSender<T>, item: Item<T>, tally: &mut Tally) {
        let mut q = self.queue.lock();
        self.flush_missed(&mut q, sender, tally);
        push(&mut q, sender, item, true);
    }

    /// Refuses one delivery (a publisher stopped waiting for room): counted, and reported by
    /// the next `Lagged` notice. With nothing queued for the notice to follow, the notice is
    /// queued now, so a reader waiting on the raw receiver (`Select`) sees it too.
    #[cfg(feature = "async")]
    pub(crate) fn refuse(&self, sender: &ItemSender<T>, tally: &mut Tally) {
        let mut q = self.queue.lock();
        q.missed += 1;
        tally.dropped += 1;
        if self.receiver.is_empty() {
            self.flush_missed(&mut q, sender, tally);
        }
    }

    /// Wakes every publisher waiting for room, to re-check (room, or a changed subscription).
    pub(crate) fn wake_publishers(&self) {
        self.room
            .notify(|| self.queue.lock(), |q| std::mem::take(&mut q.room_wakers));
    }

    /// For an async publisher: queues the delivery if there is room (`Ok(true)`), or keeps
    /// `waker` to wake when room may appear and gives the delivery back. The check and the
    /// registration happen under the queue lock, so a reader's wake-up cannot slip between.
    #[cfg(feature = "async")]
    pub(crate) fn offer_or_register(
        &self,
        sender: &ItemSender<T>,
        item: Item<T>,
        tally: &mut Tally,
        waker: &std::task::Waker,
    ) -> Result<bool, Item<T>> {
        let mut q = self.queue.lock();
        if let Some(queued) = self.room(&mut q) {
            self.flush_missed(&mut q, sender, tally);
            self.push_delivery(&mut q, sender, item, queued, tally);
            return Ok(true);
        }
        if !q.room_wakers.iter().any(|w| w.will_wake(waker)) {
            q.room_wakers.push(waker.clone());
            // Counted with the blocked threads, so readers signal; taken back when woken.
            self.room.registered_waker();
        }
        Err(item)
    }

    /// Takes the next item for a reader, under the queue lock: a `DropOldest` eviction
    /// re-queues what it keeps, and only a read under the lock sees the queue whole. When
    /// the queue is empty, a pending `Lagged` notice is the next item.
    ///
    /// Always inlined into `Inbox::take`, as it was before the high-water re-arm made it
    /// larger: left out of line, reads of *unbounded* queues, which never call it, took about
    /// 3% longer (`halves` read, side by side; benches/NOTES.md "Step 10").
    #[inline(always)]
    pub(crate) fn take(&self, tally: &mut Tally) -> Result<Item<T>, TryRecvError> {
        let mut q = self.queue.lock();
        let error = match self.receiver.try_recv() {
            Ok(Queued(item)) => {
                if item.is_delivery() && !q.armed {
                    self.rearm(&mut q);
                }
                return Ok(item);
            }
            Err(error) => error,
        };
        if q.missed == 0 {
            return Err(error);
        }
        tally.notices += 1;
        let missed = std::mem::take(&mut q.missed);
        Ok(Item::control(Message::Lagged { missed }))
    }

    /// A reader is about to wait (`true`) or has stopped waiting (`false`).
    pub(crate) fn reader_waiting(&self, waiting: bool) {
        let mut q = self.queue.lock();
        if waiting {
            q.waiting_readers += 1;
        } else {
            q.waiting_readers -= 1;
        }
        drop(q);
        if waiting {
            self.wake_publishers();
        }
    }

    fn count_deliveries(&self, q: &mut QueueState) -> usize {
        let len = self.receiver.len();
        let left = q.sent - len as u64;
        while q.marks.front().is_some_and(|&p| p < left) {
            q.marks.pop_front();
        }
        len - q.marks.len()
    }

    /// The deliveries queued now, if one more fits.
    fn room(&self, q: &mut QueueState) -> Option<usize> {
        let limit = self.capacity.max(q.waiting_readers);
        let queued = self.count_deliveries(q);
        (queued < limit).then_some(queued)
    }

    /// Queues a delivery that fits (`queued` were there before it): the peak is kept, and a
    /// `HighWater` notice follows it if it reached the armed mark.
    fn push_delivery(
        &self,
        q: &mut QueueState,
        sender: &ItemSender<T>,
        item: Item<T>,
        queued: usize,
        tally: &mut Tally,
    ) {
        push(q, sender, item, false);
        let queued = queued + 1;
        q.peak = q.peak.max(queued);
        if let Some(mark) = self.high_water {
            if q.armed && queued >= mark {
                q.armed = false;
                tally.warnings += 1;
                let notice = Item::control(Message::HighWater { queued });
                push(q, sender, notice, true);
            }
        }
    }

    /// Arms the high-water notice again once fewer than half the mark are queued: called
    /// when a reader takes a delivery. An eviction does not re-arm it: the reader has not
    /// caught up, and a stopped reader keeps one notice.
    fn rearm(&self, q: &mut QueueState) {
        if let Some(mark) = self.high_water {
            if self.count_deliveries(q) * 2 < mark {
                q.armed = true;
            }
        }
    }

    fn flush_missed(&self, q: &mut QueueState, sender: &ItemSender<T>, tally: &mut Tally) {
        if q.missed > 0 {
            let missed = std::mem::take(&mut q.missed);
            tally.notices += 1;
            push(q, sender, Item::control(Message::Lagged { missed }), true);
        }
    }

    /// Drops the oldest deliveries down to 7/8 of the capacity (at least one), re-queuing
    /// the rest in order. Each run of evicted deliveries becomes one `Lagged` notice in its
    /// place, so a notice sits exactly where its deliveries were, on the same side of every
    /// confirmation; a notice already queued next to a run is merged into it (so a reader that
    /// has stopped keeps one notice, not one per eviction).
    fn evict_oldest(&self, q: &mut QueueState, sender: &ItemSender<T>, tally: &mut Tally) {
        let mut items: Vec<Item<T>> = self.receiver.try_iter().map(|q| q.0).collect();
        q.marks.clear();
        let deliveries = items.iter().filter(|i| i.is_delivery()).count();
        let keep = self.capacity - (self.capacity / 8).max(1);
        let mut to_evict = deliveries.saturating_sub(keep);
        tally.dropped += to_evict as u64;
        // An unread `HighWater` notice moves ahead of the deliveries about to go, so that it
        // is still read before the loss it warned of.
        let first = items.iter().position(Item::is_delivery);
        let warning = items.iter().rposition(Item::is_high_water);
        if let (Some(first), Some(warning), true) = (first, warning, to_evict > 0) {
            if warning > first {
                let notice = items.remove(warning);
                items.insert(first, notice);
            }
        }
        // The notice being built: deliveries missed, whether it holds fresh evictions, and
        // how many queued notices it absorbed.
        let (mut missed, mut fresh, mut absorbed) = (0u64, false, 0u64);
        let mut flush =
            |q: &mut QueueState, missed: &mut u64, fresh: &mut bool, absorbed: &mut u64| {
                if *missed > 0 {
                    let notice = Item::control(Message::Lagged {
                        missed: std::mem::take(missed),
                    });
                    push(q, sender, notice, true);
                    // A notice made of queued ones only is one of them, kept; one with fresh
                    // evictions is new unless it absorbed a queued one.
                    tally.notices += u64::from(*fresh && *absorbed == 0);
                    tally.notices_merged += absorbed.saturating_sub(1);
                }
                (*fresh, *absorbed) = (false, 0);
            };
        for item in items {
            if let Some(earlier) = item.lagged() {
                missed += earlier;
                absorbed += 1;
            } else if item.is_delivery() && to_evict > 0 {
                to_evict -= 1;
                missed += 1;
                fresh = true;
            } else {
                flush(q, &mut missed, &mut fresh, &mut absorbed);
                let control = !item.is_delivery();
                push(q, sender, item, control);
            }
        }
        flush(q, &mut missed, &mut fresh, &mut absorbed);
    }
}

/// A bounded queue, locked by the publish path.
pub(crate) struct Locked<'a, T: ?Sized> {
    bounded: &'a Bounded<T>,
    q: MutexGuard<'a, QueueState>,
}

impl<'a, T: ?Sized> Locked<'a, T> {
    /// Offers one delivery under the policy. Without `may_wait` (`try_publish`) a full
    /// `Block` queue refuses it.
    pub(crate) fn offer(
        &mut self,
        sender: &ItemSender<T>,
        item: Item<T>,
        may_wait: bool,
        tally: &mut Tally,
    ) -> Offer<T> {
        let bounded = self.bounded;
        let q = &mut *self.q;
        if let Some(queued) = bounded.room(q) {
            bounded.flush_missed(q, sender, tally);
            bounded.push_delivery(q, sender, item, queued, tally);
            return Offer::Delivered;
        }
        match bounded.overflow {
            Overflow::Block if may_wait => Offer::Full(item),
            Overflow::Block | Overflow::DropNewest => {
                q.missed += 1;
                tally.dropped += 1;
                Offer::Dropped
            }
            Overflow::DropOldest if bounded.capacity > 0 => {
                bounded.evict_oldest(q, sender, tally);
                let queued = bounded.count_deliveries(q);
                bounded.push_delivery(q, sender, item, queued, tally);
                Offer::Delivered
            }
            Overflow::DropOldest => {
                // A rendezvous keeps no delivery: the oldest is the new one.
                q.missed += 1;
                tally.dropped += 1;
                Offer::Dropped
            }
            Overflow::Disconnect => {
                tally.dropped += 1;
                Offer::Disconnect
            }
        }
    }

    /// A publisher that waited for room offers again: the delivery goes in if there is room
    /// now, is refused (counted, reported by a `Lagged` notice) once `deadline` has passed,
    /// or comes back in `Err` for the caller to wait for room and retry.
    pub(crate) fn offer_after_wait(
        &mut self,
        sender: &ItemSender<T>,
        item: Item<T>,
        deadline: Option<Instant>,
        tally: &mut Tally,
    ) -> Result<Offer<T>, Item<T>> {
        let bounded = self.bounded;
        let q = &mut *self.q;
        if let Some(queued) = bounded.room(q) {
            bounded.flush_missed(q, sender, tally);
            bounded.push_delivery(q, sender, item, queued, tally);
            return Ok(Offer::Delivered);
        }
        if deadline.is_some_and(|d| d <= Instant::now()) {
            q.missed += 1;
            tally.dropped += 1;
            return Ok(Offer::Dropped);
        }
        Err(item)
    }

    /// Registers this publisher as waiting for room; the caller lets go of its registry lock
    /// and then calls [`Waiting::wait`].
    pub(crate) fn register(self) -> Waiting<'a, T> {
        self.bounded.room.register();
        Waiting { locked: self }
    }
}

/// A publisher registered as waiting for room, the queue still locked.
pub(crate) struct Waiting<'a, T: ?Sized> {
    locked: Locked<'a, T>,
}

impl<T: ?Sized> Waiting<'_, T> {
    /// Waits for a signal, at most until `deadline` and at most 5 ms: a reader that takes
    /// items straight from the queue's receiver signals nothing, so the caller re-checks now
    /// and then even without a signal.
    pub(crate) fn wait(mut self, deadline: Option<Instant>) {
        let mut slice = Duration::from_millis(5);
        if let Some(deadline) = deadline {
            slice = slice.min(deadline.saturating_duration_since(Instant::now()));
        }
        let bounded = self.locked.bounded;
        bounded.room.wait(&mut self.locked.q, slice);
    }
}

/// Sends one item and records its position; `control` items do not count against capacity.
fn push<T: ?Sized>(q: &mut QueueState, sender: &ItemSender<T>, item: Item<T>, control: bool) {
    if sender.send(Queued(item)).is_ok() {
        if control {
            q.marks.push_back(q.sent);
        }
        q.sent += 1;
    }
}
