//! Bounded subscriber queues and what happens when one is full.
//!
//! # How a bounded queue is counted
//!
//! Every handle's queue is an unbounded `crossbeam-channel`; a bounded handle adds the
//! bookkeeping here, under one mutex (`QueueState`), so that only *deliveries* count against
//! the capacity and confirmations and notices never do, even when the reader takes items
//! straight from [`PubSub::receiver`](crate::PubSub::receiver). Every item sent gets a
//! position (`sent` counts them); items leave at the head in order, by a read or an eviction,
//! so `sent - len` of them have left. `marks` holds the positions of the non-delivery items
//! that may still be queued; those below `sent - len` are gone. What is queued is therefore
//! `len` items, of which `len - (marks still queued)` are deliveries.
//!
//! # Locks
//!
//! `queue` is taken after the registry's stripe or pattern lock and after the handle's
//! `state` (see `registry.rs`), never before them, and nothing else is taken while it is held.
//! A publisher waiting for room (`Overflow::Block`) waits on `room` with only `queue` held by
//! the condition variable, which releases it while it sleeps; `room.rs` has the handshake
//! with the readers that make room.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender, TryRecvError};

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
    /// broker lock while it waits. Unsubscribing, closing or dropping the handle releases it
    /// at once. [`Broker::try_publish`](crate::Broker::try_publish) never waits and
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

/// The outcome of offering one delivery to a handle.
pub(crate) enum Offer<T: ?Sized> {
    /// Queued.
    Delivered,
    /// Not queued, and counted as dropped (full under a drop policy, refused without waiting,
    /// or the handle is closing).
    Dropped,
    /// Full under `Block`, and the caller may wait: the message comes back to retry.
    Full(Message<T>),
    /// Full under `Disconnect`: the caller must disconnect the handle once it holds no lock.
    Disconnect,
    /// The handle is closing or gone: not queued, not counted.
    Gone,
}

/// A bounded queue's limit, policy and bookkeeping.
pub(crate) struct Bounded<T: ?Sized> {
    pub(crate) capacity: usize,
    pub(crate) overflow: Overflow,
    /// A second receiver of the handle's queue: its length, and evictions for `DropOldest`.
    receiver: Receiver<Message<T>>,
    queue: Mutex<QueueState>,
    /// Publishers waiting for room, signalled when room may have appeared or the handle's
    /// subscriptions changed.
    room: Room,
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
}

impl Tally {
    pub(crate) fn add(&mut self, other: &Tally) {
        self.dropped += other.dropped;
        self.notices += other.notices;
        self.notices_merged += other.notices_merged;
    }
}

impl<T: ?Sized> Bounded<T> {
    pub(crate) fn new(capacity: usize, overflow: Overflow, receiver: Receiver<Message<T>>) -> Self {
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
            }),
            room: Room::new(),
        }
    }

    /// Queues a confirmation, never refused; a pending `Lagged` notice goes first.
    pub(crate) fn send_control(
        &self,
        sender: &Sender<Message<T>>,
        message: Message<T>,
        tally: &mut Tally,
    ) {
        let mut q = self.queue.lock();
        self.flush_missed(&mut q, sender, tally);
        push(&mut q, sender, message, true);
    }

    /// Offers one delivery under the policy. `may_wait` is false for `try_publish`.
    pub(crate) fn offer(
        &self,
        sender: &Sender<Message<T>>,
        message: Message<T>,
        may_wait: bool,
        tally: &mut Tally,
    ) -> Offer<T> {
        let mut q = self.queue.lock();
        if self.has_room(&mut q) {
            self.flush_missed(&mut q, sender, tally);
            push(&mut q, sender, message, false);
            return Offer::Delivered;
        }
        match self.overflow {
            Overflow::Block if may_wait => Offer::Full(message),
            Overflow::Block | Overflow::DropNewest => {
                q.missed += 1;
                tally.dropped += 1;
                Offer::Dropped
            }
            Overflow::DropOldest if self.capacity > 0 => {
                self.evict_oldest(&mut q, sender, tally);
                push(&mut q, sender, message, false);
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

    /// Offers again after a `Full`: queues the message if there is room now, refuses it once
    /// `deadline` has passed, or else calls `unlock` (releasing the caller's registry lock,
    /// under which it checked that the subscription still stands) and waits a while for room,
    /// giving the message back so the caller re-checks and calls again.
    pub(crate) fn offer_after_wait(
        &self,
        sender: &Sender<Message<T>>,
        message: Message<T>,
        deadline: Option<Instant>,
        tally: &mut Tally,
        unlock: impl FnOnce(),
    ) -> Result<Offer<T>, Message<T>> {
        let mut q = self.queue.lock();
        if self.has_room(&mut q) {
            self.flush_missed(&mut q, sender, tally);
            push(&mut q, sender, message, false);
            return Ok(Offer::Delivered);
        }
        let now = Instant::now();
        if deadline.is_some_and(|d| d <= now) {
            q.missed += 1;
            tally.dropped += 1;
            return Ok(Offer::Dropped);
        }
        // A reader that takes items straight from `receiver()` signals nothing, so re-check
        // now and then even without a signal.
        let mut slice = Duration::from_millis(5);
        if let Some(deadline) = deadline {
            slice = slice.min(deadline - now);
        }
        self.room.wait(&mut q, slice, unlock);
        Err(message)
    }

    /// Refuses one delivery (a publisher stopped waiting for room): counted, and reported by
    /// the next `Lagged` notice.
    #[cfg(feature = "async")]
    pub(crate) fn refuse(&self, tally: &mut Tally) {
        self.queue.lock().missed += 1;
        tally.dropped += 1;
    }

    /// Wakes every publisher waiting for room, to re-check (room, or a changed subscription).
    pub(crate) fn wake_publishers(&self) {
        self.room
            .notify(|| self.queue.lock(), |q| std::mem::take(&mut q.room_wakers));
    }

    /// For an async publisher: queues the message if there is room (`Ok(true)`), or keeps
    /// `waker` to wake when room may appear and gives the message back. The check and the
    /// registration happen under the queue lock, so a reader's wake-up cannot slip between.
    #[cfg(feature = "async")]
    pub(crate) fn offer_or_register(
        &self,
        sender: &Sender<Message<T>>,
        message: Message<T>,
        tally: &mut Tally,
        waker: &std::task::Waker,
    ) -> Result<bool, Message<T>> {
        let mut q = self.queue.lock();
        if self.has_room(&mut q) {
            self.flush_missed(&mut q, sender, tally);
            push(&mut q, sender, message, false);
            return Ok(true);
        }
        if !q.room_wakers.iter().any(|w| w.will_wake(waker)) {
            q.room_wakers.push(waker.clone());
            // Counted with the blocked threads, so readers signal; taken back when woken.
            self.room.registered_waker();
        }
        Err(message)
    }

    /// Takes the next item for a reader, under the queue lock: a `DropOldest` eviction
    /// re-queues what it keeps, and only a read under the lock sees the queue whole. When
    /// the queue is empty, a pending `Lagged` notice is the next item.
    pub(crate) fn take(&self, tally: &mut Tally) -> Result<Message<T>, TryRecvError> {
        let mut q = self.queue.lock();
        let error = match self.receiver.try_recv() {
            Ok(message) => return Ok(message),
            Err(error) => error,
        };
        if q.missed == 0 {
            return Err(error);
        }
        tally.notices += 1;
        Ok(Message::Lagged {
            missed: std::mem::take(&mut q.missed),
        })
    }

    /// A reader is about to block (`+1`) or has stopped blocking (`-1`).
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

    fn count_deliveries(&self, q: &mut MutexGuard<'_, QueueState>) -> usize {
        let len = self.receiver.len();
        let left = q.sent - len as u64;
        while q.marks.front().is_some_and(|&p| p < left) {
            q.marks.pop_front();
        }
        len - q.marks.len()
    }

    fn has_room(&self, q: &mut MutexGuard<'_, QueueState>) -> bool {
        let limit = self.capacity.max(q.waiting_readers);
        self.count_deliveries(q) < limit
    }

    fn flush_missed(&self, q: &mut QueueState, sender: &Sender<Message<T>>, tally: &mut Tally) {
        if q.missed > 0 {
            let missed = std::mem::take(&mut q.missed);
            tally.notices += 1;
            push(q, sender, Message::Lagged { missed }, true);
        }
    }

    /// Drops the oldest deliveries down to 7/8 of the capacity (at least one), re-queuing
    /// the rest in order. Each run of evicted deliveries becomes one `Lagged` notice in its
    /// place, so a notice sits exactly where its deliveries were, on the same side of every
    /// confirmation; a notice already queued next to a run is merged into it (so a reader that
    /// has stopped keeps one notice, not one per eviction).
    fn evict_oldest(
        &self,
        q: &mut MutexGuard<'_, QueueState>,
        sender: &Sender<Message<T>>,
        tally: &mut Tally,
    ) {
        let items: Vec<Message<T>> = self.receiver.try_iter().collect();
        q.marks.clear();
        let deliveries = items.iter().filter(|m| m.is_delivery()).count();
        let keep = self.capacity - (self.capacity / 8).max(1);
        let mut to_evict = deliveries.saturating_sub(keep);
        tally.dropped += to_evict as u64;
        // The notice being built: deliveries missed, whether it holds fresh evictions, and
        // how many queued notices it absorbed.
        let (mut missed, mut fresh, mut absorbed) = (0u64, false, 0u64);
        let mut flush =
            |q: &mut QueueState, missed: &mut u64, fresh: &mut bool, absorbed: &mut u64| {
                if *missed > 0 {
                    push(
                        q,
                        sender,
                        Message::Lagged {
                            missed: std::mem::take(missed),
                        },
                        true,
                    );
                    // A notice made of queued ones only is one of them, kept; one with fresh
                    // evictions is new unless it absorbed a queued one.
                    tally.notices += u64::from(*fresh && *absorbed == 0);
                    tally.notices_merged += absorbed.saturating_sub(1);
                }
                (*fresh, *absorbed) = (false, 0);
            };
        for item in items {
            match item {
                Message::Lagged { missed: earlier } => {
                    missed += earlier;
                    absorbed += 1;
                }
                m if m.is_delivery() && to_evict > 0 => {
                    to_evict -= 1;
                    missed += 1;
                    fresh = true;
                }
                m => {
                    flush(q, &mut missed, &mut fresh, &mut absorbed);
                    let control = !m.is_delivery();
                    push(q, sender, m, control);
                }
            }
        }
        flush(q, &mut missed, &mut fresh, &mut absorbed);
    }
}

/// Sends one item and records its position; `control` items do not count against capacity.
fn push<T: ?Sized>(
    q: &mut QueueState,
    sender: &Sender<Message<T>>,
    message: Message<T>,
    control: bool,
) {
    if sender.send(message).is_ok() {
        if control {
            q.marks.push_back(q.sent);
        }
        q.sent += 1;
    }
}
