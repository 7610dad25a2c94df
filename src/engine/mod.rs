//! A broker's shared state: the index of its subscriptions, its live handles, its counters
//! and (feature `redis`) its bridge; and stopping handles (one, or all at a close). The
//! publish path is in `publish.rs`, a delivery that waits for room in `blocking.rs`.
//!
//! # Closing reaches every handle
//!
//! `close` must end the readers of handles that hold no subscription too, so the registry
//! keeps every live handle in `handles` (weakly). The protocol with a handle being made at
//! the same moment: `close` closes the index, then reads `handles` under its lock;
//! `register` inserts under that lock only if it still sees the index open there. So a new
//! handle is either in the set `close` reads (and detached by it) or sees the close (and is
//! born detached); its readers end either way. `handles` is a leaf lock.
//!
//! # When the last broker goes
//!
//! `brokers` counts the [`Broker`](crate::Broker) values (clones, and the one each bridge
//! holds), as `Arc` counts its holders: an increment is `Relaxed` (made from a live one), a
//! decrement `AcqRel`, and the one that takes it to 0 closes the registry for
//! `Disconnected::BrokerDropped`: nothing can publish any more, so every handle ends after
//! what it holds.
//!
//! # Detaching a handle
//!
//! Under the handle's `calls`, its status moves from open (once), every subscription is
//! removed from the index without confirmations, and its own sender is let go of: the
//! queue ends once the index's senders are gone too, after what it holds. Then its readers
//! and the publishers waiting for its room are woken, with no lock held.

mod blocking;
mod channels;
mod entries;
mod glob_index;
#[cfg(feature = "redis")]
pub(crate) mod hooks;
mod index;
pub(crate) mod matching;
mod patterns;
mod publish;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock, Weak};

use parking_lot::Mutex;
#[cfg(feature = "redis")]
use parking_lot::RwLock;
#[cfg(feature = "redis")]
use std::sync::atomic::AtomicBool;

pub(crate) use index::{Index, Lookup};
pub(crate) use matching::Watching;
pub(crate) use publish::Published;
#[cfg(any(feature = "async", feature = "redis"))]
pub(crate) use publish::Reach;

use crate::config::{HistoryLimits, QueueConfig};
use crate::handle::{Calls, Handle, SubscriberId, Woken};
use crate::shrink::shrink_if_sparse;
use crate::stats::{BrokerStats, Disconnected};
#[cfg(feature = "redis")]
use hooks::Outbound;

/// A broker's shared state.
pub(crate) struct Registry<T: ?Sized> {
    index: Index<T>,
    /// Deliveries lost to full queues, across handles.
    dropped: AtomicU64,
    /// Live handles, counted.
    subscribers: AtomicUsize,
    /// `Broker` values, counted (see the module docs).
    brokers: AtomicUsize,
    /// Why the registry closed: set once, before the index closes.
    closed_by: OnceLock<Disconnected>,
    /// Every live handle, so `close` reaches those that hold no subscription too (see the
    /// module docs).
    handles: Mutex<HashMap<SubscriberId, Weak<Handle<T>>>>,
    next_id: AtomicU64,
    /// The queue a new handle gets unless its builder says otherwise.
    defaults: QueueConfig,
    /// Set while a bridge is attached, so a publish checks `bridge` only then.
    #[cfg(feature = "redis")]
    bridged: AtomicBool,
    #[cfg(feature = "redis")]
    bridge: RwLock<Option<Arc<dyn Outbound<T>>>>,
}

impl<T: ?Sized> Registry<T> {
    pub(crate) fn new(defaults: QueueConfig, history: Option<HistoryLimits>) -> Self {
        Registry {
            index: Index::new(history),
            dropped: AtomicU64::new(0),
            subscribers: AtomicUsize::new(0),
            brokers: AtomicUsize::new(1),
            closed_by: OnceLock::new(),
            handles: Mutex::new(HashMap::new()),
            next_id: AtomicU64::new(1),
            defaults,
            #[cfg(feature = "redis")]
            bridged: AtomicBool::new(false),
            #[cfg(feature = "redis")]
            bridge: RwLock::new(None),
        }
    }

    pub(crate) fn index(&self) -> &Index<T> {
        &self.index
    }

    pub(crate) fn defaults(&self) -> QueueConfig {
        self.defaults
    }

    pub(crate) fn is_closed(&self) -> bool {
        self.index.is_closed()
    }

    /// One more `Broker` for this registry (see the module docs).
    pub(crate) fn broker_cloned(&self) {
        self.brokers.fetch_add(1, Ordering::Relaxed);
    }

    /// One `Broker` fewer; the last closes the registry (see the module docs).
    pub(crate) fn broker_dropped(&self) {
        if self.brokers.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.close(Disconnected::BrokerDropped);
        }
    }

    /// A new handle with `config`'s queue, counted as live until `handle_dropped`, so that
    /// `close` reaches it; made detached when the broker is closed already.
    pub(crate) fn new_handle(&self, config: &QueueConfig) -> Arc<Handle<T>> {
        let id = SubscriberId(self.next_id.fetch_add(1, Ordering::Relaxed));
        let readers = Arc::clone(self.index.waiting_readers());
        let handle = Arc::new(Handle::new(id, config, readers));
        self.subscribers.fetch_add(1, Ordering::Relaxed);
        if handle.one_per_publish() {
            self.index.count_one_per_publish(true);
        }
        let mut handles = self.handles.lock();
        if self.is_closed() {
            drop(handles);
            // Born closed: no sender is kept, so the queue reports its end at once.
            self.detach(&handle, Disconnected::BrokerClosed);
            return handle;
        }
        handles.insert(id, Arc::downgrade(&handle));
        handle
    }

    /// The last owner of `handle` went: it is closed, and no longer counted.
    pub(crate) fn handle_dropped(&self, handle: &Handle<T>) {
        self.detach(handle, Disconnected::Closed);
        self.subscribers.fetch_sub(1, Ordering::Relaxed);
        if handle.one_per_publish() {
            self.index.count_one_per_publish(false);
        }
        let mut handles = self.handles.lock();
        handles.remove(&handle.id());
        shrink_if_sparse(&mut handles);
    }

    /// Counts deliveries lost to full queues.
    pub(crate) fn count_dropped(&self, n: u64) {
        if n > 0 {
            self.dropped.fetch_add(n, Ordering::Relaxed);
        }
    }

    /// Stops `handle` for `reason` (see the module docs). Takes its `calls`: call with no
    /// lock held.
    pub(crate) fn detach(&self, handle: &Handle<T>, reason: Disconnected) {
        let mut calls = handle.calls();
        let stopped = self.detach_locked(handle, &mut calls, reason);
        drop(calls);
        stopped.wake();
    }

    /// `detach` for a caller that holds the handle's `calls` already: it calls
    /// [`Stopped::wake`] once it lets go of it.
    pub(crate) fn detach_locked<'a>(
        &self,
        handle: &'a Handle<T>,
        calls: &mut Calls<T>,
        reason: Disconnected,
    ) -> Stopped<'a, T> {
        // Once the broker is closed, that is why every handle stopped.
        let reason = match self.closed_by.get() {
            Some(&closed_by) if self.is_closed() => closed_by,
            _ => reason,
        };
        let mut woken = Woken::default();
        if !handle.stop(reason) {
            return Stopped {
                handle,
                woken: None,
            };
        }
        *calls = None;
        let subscriptions = handle.names().take_all();
        for (kind, name) in subscriptions {
            self.index.remove(kind, &name, handle, None, &mut woken);
        }
        handle.set_subscriptions(0);
        // Its queue may have ended: its readers see the end.
        handle.readers().take(&mut woken);
        Stopped {
            handle,
            woken: Some(woken),
        }
    }

    /// Closes the broker for `reason` (`BrokerClosed` or `BrokerDropped`; the first close's
    /// reason stays): later publishes deliver nothing, later subscriptions are refused, and
    /// every live handle, subscribed or not, is detached (its queue ends after what it holds,
    /// which wakes its readers, blocked or async).
    pub(crate) fn close(&self, reason: Disconnected) {
        let _ = self.closed_by.set(reason);
        // Closed first, then every index lock is taken in turn by the detaches below: a
        // subscription either got in before its lock was taken (and is removed with its
        // handle) or sees the close under that lock. See the module docs for new handles.
        self.index.close();
        #[cfg(feature = "redis")]
        if let Some(bridge) = self.bridge() {
            bridge.broker_closed();
        }
        let live: Vec<Arc<Handle<T>>> = {
            let handles = self.handles.lock();
            handles.values().filter_map(Weak::upgrade).collect()
        };
        for handle in live {
            self.detach(&handle, Disconnected::BrokerClosed);
        }
        // Every handle is detached: the publishers' watches have seen their last change.
        let mut woken = Woken::default();
        self.index.interests().close(&mut woken);
        woken.wake_all();
    }

    pub(crate) fn stats(&self) -> BrokerStats {
        let (published, delivered) = self.index.counts();
        // Read and let go of before the stripes are locked: the history's lock is taken
        // under theirs (`index.rs`).
        let history = self.index.history().map(|h| {
            let history = h.lock();
            (history.len(), history.evicted())
        });
        BrokerStats {
            published,
            delivered,
            dropped: self.dropped.load(Ordering::Relaxed),
            channels: self.index.channel_count(),
            patterns: self.index.numpat(),
            subscribers: self.subscribers.load(Ordering::Relaxed),
            retained_channels: history.map_or(0, |h| h.0),
            history_evicted: history.map_or(0, |h| h.1),
        }
    }

    /// Makes `change`, a handle's subscription change (or its close or drop), where an
    /// attached bridge's order of messages puts it (`bridge/order.rs`); at once without one.
    /// Called with no lock held.
    #[inline]
    pub(crate) fn in_order(&self, change: impl FnOnce()) {
        #[cfg(feature = "redis")]
        if let Some(bridge) = self.bridge() {
            let mut change = Some(change);
            return bridge.in_order(&mut || {
                if let Some(change) = change.take() {
                    change();
                }
            });
        }
        change();
    }

    /// `in_order` for a change that only removes `handle`'s subscriptions (an unsubscribe,
    /// its close or drop): with none, there is nothing to order, and it is made at once.
    #[inline]
    pub(crate) fn in_order_leaving(&self, handle: &Handle<T>, change: impl FnOnce()) {
        match handle.subscriptions() {
            0 => change(),
            _ => self.in_order(change),
        }
    }
}

/// A handle just detached: its readers and waiting publishers, to wake once the caller lets
/// go of the handle's `calls`.
#[must_use = "call `wake` once the handle's `calls` is let go of"]
pub(crate) struct Stopped<'a, T: ?Sized> {
    handle: &'a Handle<T>,
    /// `None` when it had stopped already.
    woken: Option<Woken>,
}

impl<T: ?Sized> Stopped<'_, T> {
    /// Wakes its readers (its queue may have ended) and the publishers waiting for its room
    /// (their subscription is gone); call with no lock held.
    pub(crate) fn wake(self) {
        if let Some(woken) = self.woken {
            self.handle.wake_publishers();
            woken.wake_all();
        }
    }
}

/// The bridge's slot (feature `redis`).
#[cfg(feature = "redis")]
impl<T: ?Sized> Registry<T> {
    /// Sends publishes to `bridge` from now on, unless one is attached already (false).
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
    pub(crate) fn is_bridged(&self) -> bool {
        self.bridged.load(Ordering::Acquire)
    }

    /// Queues `notice()` once for every handle with a subscription (a `Gap`), and wakes
    /// their readers.
    pub(crate) fn notify_subscribers(&self, notice: impl Fn() -> crate::message::Message<T>) {
        let mut woken = Woken::default();
        self.index.notify_subscribers(notice, &mut woken);
        woken.wake_all();
    }
}
