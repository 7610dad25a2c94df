//! A delivery that found a `Block` queue full, offered again with no index lock held until it
//! is queued, refused at its deadline, or the subscription it was for is gone.
//!
//! One attempt ([`Registry::attempt`]) checks the subscription under its index lock, as a
//! publish does, so that an unsubscription in between is a clean cut; registers the
//! publisher as waiting for room, before it claims a place and before that lock is let go
//! (a read that makes room, or a change of the subscription, then sees the registration:
//! `handle/wake.rs`); and claims a place. The blocking shell parks the thread between
//! attempts, the async shell returns `Pending`: one offer-after-waiting for both.

use std::collections::VecDeque;
use std::sync::Arc;
use std::task::{Poll, Waker};
use std::time::Instant;

use super::index::{Held, Index};
use super::Registry;
use crate::handle::{this_thread, Handle, SubId, SubscriberId, Woken};
use crate::item::{Envelope, Item, ItemSender};
use crate::kind::Kind;
use crate::wait::Wait;

/// A subscription a waiting delivery may be queued through: where to find it again, and
/// which one it must still be.
pub(crate) struct Target {
    pub(crate) kind: Kind,
    pub(crate) name: Arc<str>,
    pub(crate) id: SubId,
}

/// A delivery that found a `Block` queue full, to retry without any index lock held.
pub(crate) struct Deferred<T: ?Sized> {
    handle: Arc<Handle<T>>,
    /// The subscription it was for; for a handle that takes one delivery per publish, then
    /// its other subscriptions that matched the publish, which stand in, in order, for the
    /// ones before them once those are gone.
    targets: VecDeque<Target>,
    /// The channel published to, once `targets` holds more than one.
    channel: Option<Arc<str>>,
    /// `None` once queued or given up.
    item: Option<Item<T>>,
}

/// What became of a delivery that waited for room.
pub(crate) enum Waited {
    Delivered,
    /// Refused at the deadline: counted dropped, reported by a `Lagged` notice.
    Refused,
    /// Its subscription (and every stand-in) is gone, or the handle stopped.
    Gone,
}

impl<T: ?Sized> Deferred<T> {
    pub(crate) fn new(handle: &Arc<Handle<T>>, target: Target, item: Item<T>) -> Self {
        Deferred {
            handle: Arc::clone(handle),
            targets: VecDeque::from([target]),
            channel: None,
            item: Some(item),
        }
    }

    pub(crate) fn handle(&self) -> SubscriberId {
        self.handle.id()
    }

    /// Adds `others`, the handle's other subscriptions that matched a publish on `channel`,
    /// to stand in for this one should it be gone by the time there is room.
    pub(crate) fn stand_in(&mut self, channel: Arc<str>, others: impl Iterator<Item = Target>) {
        self.targets.extend(others);
        self.channel = Some(channel);
    }

    /// The index lock over the first of its subscriptions that still stands, held, and its
    /// sender (see `Index::hold`), with the item addressed to that subscription; `None` once
    /// none stands.
    fn hold<'i>(&mut self, index: &'i Index<T>) -> Option<(Held<'i, T>, ItemSender<T>)> {
        while let Some(target) = self.targets.front() {
            let held = index.hold(target.kind, &target.name, &self.handle, target.id);
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

    /// No longer waits: forgets its registration. The sender clones it queued with may
    /// have been the queue's last: the readers of a handle closed meanwhile then see the end.
    pub(crate) fn done(self, waiter: u64) {
        if let Some(room) = self.handle.queue().room() {
            room.publishers().forget(waiter);
        }
        if !self.handle.is_open() {
            self.handle.readers().wake();
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

impl<T: ?Sized> Registry<T> {
    /// One attempt to queue `deferred` (see the module docs), as waiter `waiter` with
    /// `waker`: `Pending` leaves it registered for room, to be woken.
    fn attempt(
        &self,
        deferred: &mut Deferred<T>,
        deadline: Option<Instant>,
        (waiter, waker): (u64, &Waker),
        dropped: &mut u64,
    ) -> Poll<Waited> {
        let Some((held, sender)) = deferred.hold(self.index()) else {
            return Poll::Ready(Waited::Gone);
        };
        let handle = Arc::clone(&deferred.handle);
        let queue = handle.queue();
        // Left in `deferred` (dropped with no lock held) unless it is sent.
        let (Some(room), true, Some(item)) = (queue.room(), handle.is_open(), deferred.item.take())
        else {
            drop((held, sender));
            return Poll::Ready(Waited::Gone);
        };
        room.publishers().register(waiter, waker);
        let (waited, unsent) = match queue.offer_after_wait(&sender, item) {
            Ok(true) => (Waited::Delivered, None),
            Ok(false) => (Waited::Gone, None),
            Err(item) if deadline.is_some_and(|d| d <= Instant::now()) => {
                queue.refuse(dropped);
                (Waited::Refused, Some(item))
            }
            Err(item) => {
                deferred.item = Some(item);
                return Poll::Pending;
            }
        };
        // Held until the handle's counters are updated, so an unsubscribe that returns sees
        // them complete; then the reader is woken, with no lock held.
        let mut woken = Woken::default();
        if let Waited::Delivered = waited {
            handle.readers().take(&mut woken);
        }
        drop((held, sender));
        woken.wake_all();
        drop(unsent);
        Poll::Ready(waited)
    }

    /// Retries a delivery to a full `Block` queue, parking the thread between attempts, as
    /// `wait` allows.
    pub(crate) fn deliver_after_wait(
        &self,
        mut deferred: Deferred<T>,
        wait: Wait,
        dropped: &mut u64,
    ) -> Waited {
        let deadline = wait.deadline();
        let (waiter, waker) = this_thread();
        let waited = loop {
            match self.attempt(&mut deferred, deadline, (waiter, &waker), dropped) {
                Poll::Ready(waited) => break waited,
                Poll::Pending => match deadline {
                    None => std::thread::park(),
                    Some(deadline) => std::thread::park_timeout(
                        deadline.saturating_duration_since(Instant::now()),
                    ),
                },
            }
        };
        deferred.done(waiter);
        waited
    }

    /// The async shell: one attempt, woken through `cx` when room may have appeared or the
    /// subscription changed. Call `Deferred::done` once it is ready.
    #[cfg(feature = "async")]
    pub(crate) fn poll_deliver(
        &self,
        deferred: &mut Deferred<T>,
        waiter: u64,
        cx: &mut std::task::Context<'_>,
        dropped: &mut u64,
    ) -> Poll<Waited> {
        self.attempt(deferred, None, (waiter, cx.waker()), dropped)
    }

    /// Refuses a delivery that was waiting for room (its `publish_async` was cancelled), as
    /// `try_publish` refuses one: when the subscription still stands, the handle counts it
    /// dropped and reads a `Lagged` notice.
    #[cfg(feature = "async")]
    pub(crate) fn refuse_waiting(&self, deferred: &mut Deferred<T>, dropped: &mut u64) {
        if deferred.item.is_none() {
            return;
        }
        let Some((held, sender)) = deferred.hold(self.index()) else {
            return;
        };
        let queue = deferred.handle.queue();
        queue.refuse(dropped);
        queue.flush_missed_if_empty(&sender);
        drop((held, sender));
        // The notice may be all there is to read: a reader asleep on an empty queue must come
        // for it (woken with no lock held).
        deferred.handle.readers().wake();
        drop(deferred.item.take());
    }
}
