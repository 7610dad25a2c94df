//! The shared half of a subscriber handle: what the registry's entries point to.
//!
//! # Locks
//!
//! `state` is the handle's list of subscriptions and its own sender. It is taken before any
//! registry lock (see `registry.rs`), and a bounded queue's lock (`policy.rs`) after both.

use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Instant;

use crossbeam_channel::{Sender, TryRecvError};
use parking_lot::Mutex;

use crate::message::Message;
use crate::policy::{Bounded, Offer, Tally};
use crate::stats::Disconnected;
use crate::wake::ReaderWake;

/// Identifies one [`PubSub`](crate::PubSub) handle of a broker, for reports such as
/// [`PublishError::full`](crate::PublishError::full). Shown as `#n`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SubscriberId(pub(crate) u64);

impl fmt::Display for SubscriberId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "#{}", self.0)
    }
}

/// A handler for the deliveries of one subscription.
pub(crate) type Handler<T> = Arc<dyn Fn(Message<T>) + Send + Sync>;

/// What one handle is subscribed to, in subscription order, and how it confirms.
pub(crate) struct State<T: ?Sized> {
    /// Channel name to the sequence number of its subscription.
    pub(crate) channels: HashMap<Arc<str>, u64>,
    /// Pattern text to the sequence number of its subscription.
    pub(crate) patterns: HashMap<Arc<str>, u64>,
    /// The next sequence number: orders `unsubscribe_all`, and tells a publisher that waited
    /// whether the subscription it found is still the same one.
    pub(crate) next_seq: u64,
    /// The handle's own sender, for confirmations; `None` once it is closed or disconnected,
    /// so that the queue disconnects when the registry's senders are gone too.
    pub(crate) sender: Option<Sender<Message<T>>>,
    /// Handlers of channel (`[0]`) and pattern (`[1]`) subscriptions, by name.
    pub(crate) handlers: [HashMap<Arc<str>, Handler<T>>; 2],
}

impl<T: ?Sized> State<T> {
    pub(crate) fn count(&self) -> usize {
        self.channels.len() + self.patterns.len()
    }
}

const OPEN: u8 = 0;

/// One handle's shared state.
pub(crate) struct Subscriber<T: ?Sized> {
    pub(crate) id: SubscriberId,
    pub(crate) state: Mutex<State<T>>,
    /// `state.count()`, stored only while `state` is locked, after the change's confirmation
    /// is queued. `listen()` loads it under that lock to decide whether to wait (the
    /// listen-end check, `inbox.rs`); lock-free readers (`subscriptions()`) load it Acquire,
    /// paired with the Release stores.
    pub(crate) subscriptions: AtomicUsize,
    /// `OPEN`, or 1 + the `Disconnected` reason's index. Set once, from `OPEN`.
    status: AtomicU8,
    /// `None` for an unbounded queue.
    pub(crate) bounded: Option<Bounded<T>>,
    /// Whether `state.handlers` may be non-empty: readers skip the lock while it is false.
    pub(crate) has_handlers: AtomicBool,
    /// redis-py's `ignore_subscribe_messages`: reads skip confirmations.
    pub(crate) ignore_confirmations: bool,
    /// The async reader to wake when something is queued (feature `async`).
    pub(crate) reader_wake: ReaderWake,
    counters: Counters,
}

/// A handle's counters, written by publishers on every delivery: on cache lines of their
/// own, so readers polling `subscriptions` and `status` do not share a line with them.
#[repr(align(128))]
struct Counters {
    delivered: AtomicU64,
    dropped: AtomicU64,
    lagged: AtomicU64,
}

impl<T: ?Sized> Subscriber<T> {
    pub(crate) fn new(
        id: SubscriberId,
        sender: Sender<Message<T>>,
        bounded: Option<Bounded<T>>,
        ignore_confirmations: bool,
    ) -> Self {
        Subscriber {
            id,
            state: Mutex::new(State {
                channels: HashMap::new(),
                patterns: HashMap::new(),
                next_seq: 0,
                sender: Some(sender),
                handlers: [HashMap::new(), HashMap::new()],
            }),
            subscriptions: AtomicUsize::new(0),
            status: AtomicU8::new(OPEN),
            bounded,
            has_handlers: AtomicBool::new(false),
            ignore_confirmations,
            reader_wake: ReaderWake::default(),
            counters: Counters {
                delivered: AtomicU64::new(0),
                dropped: AtomicU64::new(0),
                lagged: AtomicU64::new(0),
            },
        }
    }

    pub(crate) fn is_open(&self) -> bool {
        self.status.load(Ordering::Acquire) == OPEN
    }

    /// Why the handle stopped, if it did.
    pub(crate) fn disconnected(&self) -> Option<Disconnected> {
        match self.status.load(Ordering::Acquire) {
            1 => Some(Disconnected::Closed),
            2 => Some(Disconnected::BrokerClosed),
            3 => Some(Disconnected::Overflow),
            _ => None,
        }
    }

    /// Moves from open to `reason`; false if it had already stopped.
    pub(crate) fn stop(&self, reason: Disconnected) -> bool {
        let code = match reason {
            Disconnected::Closed => 1,
            Disconnected::BrokerClosed => 2,
            Disconnected::Overflow => 3,
        };
        self.status
            .compare_exchange(OPEN, code, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
    }

    /// Queues a confirmation: never refused, never counted against capacity.
    pub(crate) fn send_control(&self, sender: &Sender<Message<T>>, message: Message<T>) {
        match &self.bounded {
            None => {
                let _ = sender.send(message);
            }
            Some(bounded) => {
                let mut tally = Tally::default();
                bounded.send_control(sender, message, &mut tally);
                self.count(&tally);
            }
        }
        self.reader_wake.wake();
    }

    /// Offers one delivery; `tally` collects the broker-wide counts.
    pub(crate) fn offer(
        &self,
        sender: &Sender<Message<T>>,
        message: Message<T>,
        may_wait: bool,
        tally: &mut Tally,
    ) -> Offer<T> {
        if !self.is_open() {
            return Offer::Gone;
        }
        let offer = match &self.bounded {
            None => match sender.send(message) {
                Ok(()) => Offer::Delivered,
                Err(_) => Offer::Gone,
            },
            Some(bounded) => {
                self.tallied(tally, |mine| bounded.offer(sender, message, may_wait, mine))
            }
        };
        if let Offer::Delivered = offer {
            self.queued_one();
        }
        offer
    }

    /// Waits for room (see `Bounded::offer_after_wait`); `unlock` releases the caller's
    /// registry lock just before the wait.
    pub(crate) fn offer_after_wait(
        &self,
        sender: &Sender<Message<T>>,
        message: Message<T>,
        deadline: Option<Instant>,
        tally: &mut Tally,
        unlock: impl FnOnce(),
    ) -> Result<Offer<T>, Message<T>> {
        let Some(bounded) = self.bounded.as_ref().filter(|_| self.is_open()) else {
            return Ok(Offer::Gone);
        };
        let result = self.tallied(tally, |mine| {
            bounded.offer_after_wait(sender, message, deadline, mine, unlock)
        });
        if let Ok(Offer::Delivered) = result {
            self.queued_one();
        }
        result
    }

    /// For an async publisher after a `Full`: queues the message if there is room now
    /// (`Ok(true)`; `Ok(false)` if the handle stopped meanwhile), or registers `waker` to be
    /// woken when room may appear and gives the message back.
    #[cfg(feature = "async")]
    pub(crate) fn offer_or_register(
        &self,
        sender: &Sender<Message<T>>,
        message: Message<T>,
        tally: &mut Tally,
        waker: &std::task::Waker,
    ) -> Result<bool, Message<T>> {
        let Some(bounded) = self.bounded.as_ref().filter(|_| self.is_open()) else {
            return Ok(false);
        };
        let result = self.tallied(tally, |mine| {
            bounded.offer_or_register(sender, message, mine, waker)
        });
        if let Ok(true) = result {
            self.queued_one();
        }
        result
    }

    /// Refuses a delivery that waited for room (its `publish_async` was cancelled): counted
    /// dropped, and reported by a `Lagged` notice.
    #[cfg(feature = "async")]
    pub(crate) fn refuse(&self, tally: &mut Tally) {
        if let Some(bounded) = &self.bounded {
            self.tallied(tally, |mine| bounded.refuse(mine));
        }
    }

    /// Wakes publishers waiting for this handle's room, to re-check.
    pub(crate) fn wake_publishers(&self) {
        if let Some(bounded) = &self.bounded {
            bounded.wake_publishers();
        }
    }

    /// Takes the next item for a bounded handle's reader (see `Bounded::take`).
    pub(crate) fn take(&self, bounded: &Bounded<T>) -> Result<Message<T>, TryRecvError> {
        let mut tally = Tally::default();
        let taken = bounded.take(&mut tally);
        self.count(&tally);
        if taken.as_ref().is_ok_and(Message::is_delivery) {
            bounded.wake_publishers();
        }
        taken
    }

    pub(crate) fn counters(&self) -> (u64, u64, u64) {
        (
            self.counters.delivered.load(Ordering::Relaxed),
            self.counters.dropped.load(Ordering::Relaxed),
            self.counters.lagged.load(Ordering::Relaxed),
        )
    }

    /// Runs `f` on the bounded queue with a tally of its own, then adds that tally to this
    /// handle's counters and to the caller's (the broker's).
    fn tallied<R>(&self, tally: &mut Tally, f: impl FnOnce(&mut Tally) -> R) -> R {
        let mut mine = Tally::default();
        let result = f(&mut mine);
        self.count(&mine);
        tally.add(&mine);
        result
    }

    /// A delivery was queued: count it, and wake an async reader.
    fn queued_one(&self) {
        self.counters.delivered.fetch_add(1, Ordering::Relaxed);
        self.reader_wake.wake();
    }

    fn count(&self, tally: &Tally) {
        if tally.dropped > 0 {
            self.counters
                .dropped
                .fetch_add(tally.dropped, Ordering::Relaxed);
        }
        if tally.notices > 0 {
            self.counters
                .lagged
                .fetch_add(tally.notices, Ordering::Relaxed);
        }
        if tally.notices_merged > 0 {
            self.counters
                .lagged
                .fetch_sub(tally.notices_merged, Ordering::Relaxed);
        }
    }
}
