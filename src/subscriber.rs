//! The shared half of a subscriber handle: what the index's entries point to, and what its
//! readers consult.
//!
//! # Locks
//!
//! - `state` (the handle's own sender, which says whether it is open) is taken before any
//!   registry lock, by every (un)subscription of the handle for the whole call, and by
//!   `listen()`'s end check (`inbox.rs`); publishers never take it.
//! - `names` (the slot table and the handlers, `names.rs`) is taken under `state` by
//!   (un)subscriptions, and by readers before a bounded queue's lock; nothing else is taken
//!   under it, and nothing is woken or dropped that could run user code while it is held.
//! - A bounded queue's lock (`queue.rs`) comes after both, and after the registry's.
//! - The wake slot's lock (`wake.rs`) is a leaf.
//!
//! # Atomics
//!
//! - `subscriptions`: stored only while `state` is locked, after the change's confirmation is
//!   queued; `listen()` loads it under that lock (the listen-end check), lock-free readers
//!   (`subscriptions()`) load it Acquire, paired with the Release stores.
//! - `status`: set once from `OPEN` by a compare-exchange (AcqRel), loaded Acquire by
//!   publishers and readers.
//! - The counters are relaxed: each is exact, not read at one instant with the others.

use std::fmt;
use std::sync::atomic::{AtomicU64, AtomicU8, AtomicUsize, Ordering};

use parking_lot::{Mutex, MutexGuard};

use crate::item::{Item, ItemSender, Queued};
use crate::names::Names;
use crate::queue::{Bounded, Offer, QueueConfig, Tally};
use crate::stats::Disconnected;
use crate::wake::{ReaderWake, Woken};

/// Identifies one [`PubSub`](crate::PubSub) handle of a broker, for reports such as
/// [`PublishError::full`](crate::PublishError::full). Shown as `#n`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SubscriberId(pub(crate) u64);

impl fmt::Display for SubscriberId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "#{}", self.0)
    }
}

/// Whether the handle is open, and how it confirms. Its subscriptions and their handlers
/// are in `names` (`names.rs`), which its readers consult too.
pub(crate) struct State<T: ?Sized> {
    /// The handle's own sender, for confirmations; `None` once it is closed or disconnected,
    /// so that the queue ends once the index's senders are gone too.
    sender: Option<ItemSender<T>>,
}

impl<T: ?Sized> State<T> {
    /// The sender for confirmations, `None` once the handle stopped.
    pub(crate) fn sender(&self) -> Option<&ItemSender<T>> {
        self.sender.as_ref()
    }

    /// Lets go of the handle's sender: the handle stops.
    pub(crate) fn stop(&mut self) {
        self.sender = None;
    }
}

const OPEN: u8 = 0;

/// One handle's shared state.
pub(crate) struct Subscriber<T: ?Sized> {
    id: SubscriberId,
    state: Mutex<State<T>>,
    names: Mutex<Names<T>>,
    /// `state.count()`; see the module docs.
    subscriptions: AtomicUsize,
    /// `OPEN`, or 1 + the `Disconnected` reason's index. Set once, from `OPEN`.
    status: AtomicU8,
    /// `None` for an unbounded queue.
    queue: Option<Bounded<T>>,
    /// redis-py's `ignore_subscribe_messages`: reads skip confirmations.
    ignore_confirmations: bool,
    /// New subscriptions get the broker's retained payloads replayed.
    replay: bool,
    /// A publish reaches the handle once, however many of its subscriptions match
    /// (`publish.rs`).
    one_per_publish: bool,
    /// The readers to wake when something is queued or the queue ends.
    wake: ReaderWake,
    counters: Counters,
}

/// A handle's counters, written by publishers on every delivery: on cache lines of their
/// own, so readers polling `subscriptions` and `status` do not share a line with them.
#[repr(align(128))]
struct Counters {
    delivered: AtomicU64,
    dropped: AtomicU64,
    lagged: AtomicU64,
    warnings: AtomicU64,
}

impl<T: ?Sized> Subscriber<T> {
    pub(crate) fn new(
        id: SubscriberId,
        sender: ItemSender<T>,
        queue: Option<Bounded<T>>,
        config: &QueueConfig,
    ) -> Self {
        Subscriber {
            id,
            state: Mutex::new(State {
                sender: Some(sender),
            }),
            names: Mutex::new(Names::default()),
            subscriptions: AtomicUsize::new(0),
            status: AtomicU8::new(OPEN),
            queue,
            ignore_confirmations: config.ignore_confirmations,
            replay: config.replay,
            one_per_publish: config.one_per_publish,
            wake: ReaderWake::default(),
            counters: Counters {
                delivered: AtomicU64::new(0),
                dropped: AtomicU64::new(0),
                lagged: AtomicU64::new(0),
                warnings: AtomicU64::new(0),
            },
        }
    }

    pub(crate) fn id(&self) -> SubscriberId {
        self.id
    }

    /// The handle's subscriptions, locked (see the module docs for the order).
    pub(crate) fn state(&self) -> MutexGuard<'_, State<T>> {
        self.state.lock()
    }

    /// The slot table, locked (see the module docs for the order).
    pub(crate) fn names(&self) -> MutexGuard<'_, Names<T>> {
        self.names.lock()
    }

    /// The bounded queue's bookkeeping, `None` for an unbounded queue.
    pub(crate) fn queue(&self) -> Option<&Bounded<T>> {
        self.queue.as_ref()
    }

    pub(crate) fn wake(&self) -> &ReaderWake {
        &self.wake
    }

    pub(crate) fn ignores_confirmations(&self) -> bool {
        self.ignore_confirmations
    }

    pub(crate) fn replays(&self) -> bool {
        self.replay
    }

    pub(crate) fn one_per_publish(&self) -> bool {
        self.one_per_publish
    }

    /// Channels plus patterns, as the last confirmation counted them.
    pub(crate) fn subscriptions(&self) -> usize {
        self.subscriptions.load(Ordering::Acquire)
    }

    /// Stores the count; the caller holds `state` (see the module docs).
    pub(crate) fn set_subscriptions(&self, count: usize) {
        self.subscriptions.store(count, Ordering::Release);
    }

    /// `subscriptions()`, loaded under `state`: the listen-end check (`inbox.rs`).
    pub(crate) fn settled_subscriptions(&self) -> usize {
        let _state = self.state.lock();
        self.subscriptions.load(Ordering::Relaxed)
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

    /// Lets the handlers go (the queue has ended), outside the lock: dropping a handler may
    /// drop a handle.
    pub(crate) fn drop_handlers(&self) {
        let handlers = self.names.lock().take_handlers();
        drop(handlers);
    }

    /// Queues a confirmation or notice: never refused, never counted against capacity. The
    /// readers to wake go into `woken`.
    pub(crate) fn send_control(&self, sender: &ItemSender<T>, item: Item<T>, woken: &mut Woken) {
        match &self.queue {
            None => {
                let _ = sender.send(Queued(item));
            }
            Some(queue) => {
                let mut tally = Tally::default();
                queue.send_control(sender, item, &mut tally);
                self.count(&tally);
            }
        }
        self.wake.take(woken);
    }

    /// Offers one delivery; `tally` collects the broker-wide counts. The caller then takes
    /// the readers to wake (`wake().take_after_fence`, after one fence for all its sends).
    pub(crate) fn offer(
        &self,
        sender: &ItemSender<T>,
        item: Item<T>,
        may_wait: bool,
        tally: &mut Tally,
    ) -> Offer<T> {
        if !self.is_open() {
            return Offer::Gone;
        }
        let offer = match &self.queue {
            None => match sender.send(Queued(item)) {
                Ok(()) => Offer::Delivered,
                Err(_) => Offer::Gone,
            },
            Some(queue) => self.offer_bounded(queue, sender, item, may_wait, tally),
        };
        if let Offer::Delivered = offer {
            self.counters.delivered.fetch_add(1, Ordering::Relaxed);
        }
        offer
    }

    /// `offer`'s bounded half, out of line so that `offer` stays small enough to be inlined
    /// into the publish loop for unbounded queues.
    #[inline(never)]
    fn offer_bounded(
        &self,
        queue: &Bounded<T>,
        sender: &ItemSender<T>,
        item: Item<T>,
        may_wait: bool,
        tally: &mut Tally,
    ) -> Offer<T> {
        self.tallied(tally, |mine| {
            queue.lock().offer(sender, item, may_wait, mine)
        })
    }

    /// For an async publisher after a `Full`: queues the delivery if there is room now
    /// (`Ok(true)`; `Ok(false)` if the handle stopped meanwhile), or registers `waker` to be
    /// woken when room may appear and gives the delivery back.
    #[cfg(feature = "async")]
    pub(crate) fn offer_or_register(
        &self,
        sender: &ItemSender<T>,
        item: Item<T>,
        tally: &mut Tally,
        waker: &std::task::Waker,
        woken: &mut Woken,
    ) -> Result<bool, Item<T>> {
        let Some(queue) = self.queue.as_ref().filter(|_| self.is_open()) else {
            return Ok(false);
        };
        let result = self.tallied(tally, |mine| {
            queue.offer_or_register(sender, item, mine, waker)
        });
        if let Ok(true) = result {
            self.delivered(woken);
        }
        result
    }

    /// Refuses a delivery that waited for room (its `publish_async` was cancelled): counted
    /// dropped, and reported by a `Lagged` notice.
    #[cfg(feature = "async")]
    pub(crate) fn refuse(&self, sender: &ItemSender<T>, tally: &mut Tally) {
        if let Some(queue) = &self.queue {
            self.tallied(tally, |mine| queue.refuse(sender, mine));
        }
    }

    /// Wakes publishers waiting for this handle's room, to re-check.
    pub(crate) fn wake_publishers(&self) {
        if let Some(queue) = &self.queue {
            queue.wake_publishers();
        }
    }

    /// Counts what a reader took from a bounded queue (a notice it made) and, for a
    /// delivery, wakes the publishers waiting for room.
    pub(crate) fn took(&self, tally: &Tally, delivery: bool) {
        self.count(tally);
        if delivery {
            self.wake_publishers();
        }
    }

    pub(crate) fn counters(&self) -> (u64, u64, u64) {
        (
            self.counters.delivered.load(Ordering::Relaxed),
            self.counters.dropped.load(Ordering::Relaxed),
            self.counters.lagged.load(Ordering::Relaxed),
        )
    }

    /// Runs `f` with a tally of its own, then adds that tally to this handle's counters and
    /// to the caller's (the broker's).
    pub(crate) fn tallied<R>(&self, tally: &mut Tally, f: impl FnOnce(&mut Tally) -> R) -> R {
        let mut mine = Tally::default();
        let result = f(&mut mine);
        self.count(&mine);
        tally.add(&mine);
        result
    }

    /// A delivery was queued: count it, and take the waiting readers to wake.
    pub(crate) fn delivered(&self, woken: &mut Woken) {
        self.counters.delivered.fetch_add(1, Ordering::Relaxed);
        self.wake.take(woken);
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
        if tally.warnings > 0 {
            self.counters
                .warnings
                .fetch_add(tally.warnings, Ordering::Relaxed);
        }
    }

    /// `HighWater` notices given.
    pub(crate) fn warnings(&self) -> u64 {
        self.counters.warnings.load(Ordering::Relaxed)
    }
}
