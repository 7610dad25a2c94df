//! Local subscription changes placed in Redis's order of messages.
//!
//! A redis-py client's `SUBSCRIBE` takes effect where Redis runs it: messages Redis ran before
//! it do not reach the new subscription, and, for an `UNSUBSCRIBE`, reach the client before its
//! confirmation. A local handle's change is placed the same way, at a point of the stream the
//! bridge reads from its subscription connection:
//!
//! 1. The caller waits until Redis has answered every publish accepted before the change (so
//!    their copies are on their way back, ahead of anything Redis runs later).
//! 2. It asks the subscription side for a check: a `PING` on the subscription connection. On
//!    the reply, the subscription side forwards everything the stream holds (all Redis sent
//!    before the reply) to the receiving thread, then a marker with the check's number.
//! 3. The receiving thread, at the marker, delivers nothing more until the callers waiting
//!    for that marker have made their change (the handle's index entries and its
//!    confirmation), so the copies before the marker were delivered by the subscriptions that
//!    stood before the change, and the ones after it by those that stand after.
//!
//! Each wait is bounded by the reply timeout, and by `WAIT_CAP` (so also with no reply
//! timeout): with Redis down or slow, or the receiving thread held by a full `Block` queue (a
//! worker that subscribes from its handler while its queue is full), the change is made when
//! the wait ends, in the order of this process only. A lost subscription connection, a
//! receiving thread that ended and the bridge's drop end the waits at once. The bridge's own
//! threads (a payload's `Drop` there, say), a change made inside another one's (a handle
//! dropped with a replaced handler), a handle with no subscription that unsubscribes, closes
//! or is dropped, and a disconnected bridge make the change at once. A publish that races the
//! change (called before it returned, accepted by the backlog after step 1 began) may be
//! counted for the subscriptions before the change and delivered by those after it.
//!
//! # Locks
//!
//! `state` is a leaf; nobody is woken while it is held, and the change is made without it.

use std::cell::Cell;
use std::collections::BTreeMap;
use std::thread::ThreadId;
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex, MutexGuard};

/// The longest a change waits for its place in Redis's order (a round trip normally takes
/// a fraction of a millisecond on loopback).
pub(crate) const WAIT_CAP: Duration = Duration::from_secs(1);

thread_local! {
    /// Set while this thread makes a change at its marker.
    static CHANGING: Cell<bool> = const { Cell::new(false) };
}

#[derive(Default)]
struct State {
    /// The highest marker the receiving thread reached.
    reached: u64,
    /// Callers between their check request and the end of their change, by check number.
    waiting: BTreeMap<u64, usize>,
    /// The bridge's own threads (receiving, publishing), which must not wait for markers:
    /// the receiving thread passes them, the publishing thread settles what callers wait for.
    bridge_threads: Vec<ThreadId>,
}

/// Where callers and the receiving thread meet at markers.
#[derive(Default)]
pub(crate) struct Order {
    state: Mutex<State>,
    changed: Condvar,
}

impl Order {
    /// Records the current thread as one of the bridge's own (a payload's `Drop` may drop a
    /// handle there).
    pub(crate) fn bridge_thread(&self) {
        self.state
            .lock()
            .bridge_threads
            .push(std::thread::current().id());
    }

    /// Whether the current thread is the receiving thread, or inside a change made in order
    /// already (a handler dropped by a resubscription may drop a handle): either would wait
    /// for a marker that cannot come until it returns.
    pub(crate) fn must_not_wait(&self) -> bool {
        let here = std::thread::current().id();
        CHANGING.with(Cell::get) || self.state.lock().bridge_threads.contains(&here)
    }

    /// Steps 2 and 3 for a caller whose check is `check`: waits (until `deadline`) for the
    /// receiving thread to reach its marker, makes `change`, and lets the receiving thread go
    /// on.
    pub(crate) fn change_at(
        &self,
        check: u64,
        deadline: Option<Instant>,
        change: &mut dyn FnMut(),
    ) {
        let mut state = self.state.lock();
        *state.waiting.entry(check).or_insert(0) += 1;
        self.wait_while(&mut state, deadline, |state| state.reached < check);
        drop(state);
        let _done = Done { order: self, check };
        CHANGING.with(|changing| changing.set(true));
        change();
    }

    /// No marker will come (the bridge is going, or its receiving thread ended): every
    /// change waiting for one is made now, and later ones at once.
    pub(crate) fn release(&self) {
        self.release_up_to(u64::MAX);
    }

    /// The markers up to `check` will not come (the subscription connection was lost): the
    /// changes waiting for them are made now, in this process's order.
    pub(crate) fn release_up_to(&self, check: u64) {
        let mut state = self.state.lock();
        state.reached = state.reached.max(check);
        drop(state);
        self.changed.notify_all();
    }

    /// The receiving thread reached marker `check`: it waits (until `deadline`) for the
    /// callers waiting for this marker or an earlier one to make their changes.
    pub(crate) fn reached(&self, check: u64, deadline: Option<Instant>) {
        let mut state = self.state.lock();
        state.reached = state.reached.max(check);
        drop(state);
        self.changed.notify_all();
        let mut state = self.state.lock();
        self.wait_while(&mut state, deadline, |state| {
            state.waiting.range(..=check).next().is_some()
        });
    }

    /// Waits on `changed` while `condition` holds, until `deadline` if there is one.
    fn wait_while(
        &self,
        state: &mut MutexGuard<'_, State>,
        deadline: Option<Instant>,
        condition: impl FnMut(&mut State) -> bool,
    ) {
        match deadline {
            Some(deadline) => {
                self.changed.wait_while_until(state, condition, deadline);
            }
            None => self.changed.wait_while(state, condition),
        }
    }
}

/// Ends a caller's change, also when it unwinds: the receiving thread stops waiting for it.
struct Done<'a> {
    order: &'a Order,
    check: u64,
}

impl Drop for Done<'_> {
    fn drop(&mut self) {
        CHANGING.with(|changing| changing.set(false));
        let mut state = self.order.state.lock();
        if let Some(n) = state.waiting.get_mut(&self.check) {
            *n -= 1;
            if *n == 0 {
                state.waiting.remove(&self.check);
            }
        }
        drop(state);
        self.order.changed.notify_all();
    }
}
