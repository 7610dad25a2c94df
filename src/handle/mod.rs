//! One subscriber handle, shared: by the index's entries (which publish into its queue), by
//! its readers, and by the [`PubSub`](crate::PubSub), workers and streams that own it.
//!
//! # Locks
//!
//! - `calls` (the handle's own sender, for confirmations) is taken before any index lock, by
//!   every (un)subscription of the handle for the whole call, by a detach, and by `listen()`'s
//!   end check (`read.rs`); publishers never take it.
//! - `names` (the slot table and the handlers, `names.rs`) is taken under `calls` by
//!   (un)subscriptions, under an index lock when a subscription is added, and by readers,
//!   who take the queue's carry lock (`queue.rs`) under it. Nothing is woken or dropped that
//!   could run user code while it is held.
//! - The wake lists' locks (`wake.rs`) are leaves.
//!
//! # Atomics
//!
//! - `status`: whether the handle is open, and why it stopped, kept here only. Set once from
//!   open by a compare-exchange (`AcqRel`), loaded `Acquire`.
//! - `subscriptions`: stored only while `calls` is locked, after the change's confirmation
//!   is queued; `listen()` loads it under that lock (the listen-end check), lock-free readers
//!   load it `Acquire`, paired with the `Release` stores.

mod names;
mod queue;
mod read;
mod wake;

use std::fmt;
use std::sync::atomic::{AtomicU8, AtomicUsize, Ordering};

use parking_lot::{Mutex, MutexGuard};

use crate::config::QueueConfig;
use crate::item::{Item, ItemSender};
use crate::stats::Disconnected;

pub(crate) use names::{Handler, Names, SubId};
#[cfg(all(test, loom))]
pub(crate) use queue::Room;
pub(crate) use queue::{Bound, Counters, Offer, Queue};
#[cfg(all(test, loom))]
pub(crate) use read::next_while_subscribed;
pub(crate) use read::Nothing;
#[cfg(feature = "async")]
pub(crate) use wake::waiter_id;
pub(crate) use wake::{this_thread, Waiting, WakeList, Woken};

/// Identifies one [`PubSub`](crate::PubSub) handle of a broker, for reports such as
/// [`PublishError::full`](crate::PublishError::full). Shown as `#n`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SubscriberId(pub(crate) u64);

impl fmt::Display for SubscriberId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "#{}", self.0)
    }
}

/// The handle's own sender, for its confirmations: `None` once it stopped, so that the queue
/// ends once the index's senders are gone too.
pub(crate) type Calls<T> = Option<ItemSender<T>>;

/// `status` while the handle is open; otherwise 1 + the `Disconnected` reason's position.
const OPEN: u8 = 0;
const REASONS: [Disconnected; 4] = [
    Disconnected::Closed,
    Disconnected::BrokerClosed,
    Disconnected::Overflow,
    Disconnected::BrokerDropped,
];

/// One handle's shared state.
pub(crate) struct Handle<T: ?Sized> {
    id: SubscriberId,
    status: AtomicU8,
    calls: Mutex<Calls<T>>,
    names: Mutex<Names<T>>,
    subscriptions: AtomicUsize,
    queue: Queue<T>,
    /// The readers waiting for an item or the queue's end.
    readers: WakeList,
    /// redis-py's `ignore_subscribe_messages`: reads skip confirmations.
    ignore_confirmations: bool,
    /// New subscriptions get the broker's retained payloads replayed.
    replay: bool,
    /// A publish reaches the handle once, however many of its subscriptions match.
    one_per_publish: bool,
}

impl<T: ?Sized> Handle<T> {
    /// A handle whose waiting readers count in `readers` (the broker's total).
    pub(crate) fn new(id: SubscriberId, config: &QueueConfig, readers: Waiting) -> Self {
        let (queue, sender) = Queue::new(config);
        Handle {
            id,
            status: AtomicU8::new(OPEN),
            calls: Mutex::new(Some(sender)),
            names: Mutex::new(Names::default()),
            subscriptions: AtomicUsize::new(0),
            queue,
            readers: WakeList::counted_in(readers),
            ignore_confirmations: config.ignore_confirmations,
            replay: config.replay,
            one_per_publish: config.one_per_publish,
        }
    }

    pub(crate) fn id(&self) -> SubscriberId {
        self.id
    }

    /// The handle's own sender, locked (see the module docs for the order).
    pub(crate) fn calls(&self) -> MutexGuard<'_, Calls<T>> {
        self.calls.lock()
    }

    /// The slot table, locked (see the module docs for the order).
    pub(crate) fn names(&self) -> MutexGuard<'_, Names<T>> {
        self.names.lock()
    }

    pub(crate) fn queue(&self) -> &Queue<T> {
        &self.queue
    }

    pub(crate) fn readers(&self) -> &WakeList {
        &self.readers
    }

    pub(crate) fn counters(&self) -> &Counters {
        &self.queue.counters
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

    /// Stores the count; the caller holds `calls` (see the module docs).
    pub(crate) fn set_subscriptions(&self, count: usize) {
        self.subscriptions.store(count, Ordering::Release);
    }

    /// `subscriptions()`, loaded under `calls`: the listen-end check (`read.rs`).
    pub(crate) fn settled_subscriptions(&self) -> usize {
        let _calls = self.calls.lock();
        self.subscriptions.load(Ordering::Relaxed)
    }

    pub(crate) fn is_open(&self) -> bool {
        self.status.load(Ordering::Acquire) == OPEN
    }

    /// Why the handle stopped, if it did.
    pub(crate) fn disconnected(&self) -> Option<Disconnected> {
        let status = self.status.load(Ordering::Acquire);
        REASONS.get(usize::from(status).checked_sub(1)?).copied()
    }

    /// Moves from open to `reason`; false if it had stopped already.
    pub(crate) fn stop(&self, reason: Disconnected) -> bool {
        let code = REASONS
            .iter()
            .position(|&r| r == reason)
            .map_or(1, |i| i + 1);
        self.status
            .compare_exchange(OPEN, code as u8, Ordering::AcqRel, Ordering::Acquire)
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
        self.queue.send_control(sender, item);
        self.readers.take(woken);
    }

    /// Wakes the publishers waiting for this handle's room, to check their subscription again.
    pub(crate) fn wake_publishers(&self) {
        if let Some(room) = self.queue.room() {
            room.publishers().wake();
        }
    }
}
