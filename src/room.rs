//! The `Block` room handshake: publishers that wait for room in a bounded queue, and the
//! signal a reader gives when it makes some.
//!
//! # The handshake
//!
//! A publisher checks for room while it holds the queue's lock. Finding none, it registers
//! (`waiting += 1`, or its task's waker added to the queue's list under that lock) before it
//! lets go of the lock, and then waits on `signal`, which releases the lock as it starts
//! waiting (`register`, then `wait`). A reader makes room under the queue's lock, lets go of it, and then calls
//! [`Room::notify`], which loads `waiting` and, if a publisher is registered, takes the lock
//! (to take the wakers) and signals.
//!
//! No signal is lost: the reader took the queue's lock after the publisher let go of it, so
//! its load sees the registration, and by then the publisher is already waiting on `signal`
//! (parking_lot enqueues the waiter before it releases the lock). An idle queue costs its
//! readers one atomic load. `src/model_check.rs` explores this with loom.
//!
//! The same holds for a change of the subscription the publisher waits for (an unsubscribe,
//! a close): the publisher checked the subscription under a registry lock, and registers
//! before it lets go of that lock too; the change is made under that lock and then
//! notifies, so it sees the registration.
//!
//! `waiting` uses `SeqCst`, though the lock already orders the two sides: it is read outside
//! the lock, and `SeqCst` keeps that read easy to reason about at no measurable cost.
//!
//! A reader that takes items straight from the raw receiver makes room without the lock and
//! without calling `notify`; waiting publishers re-check on a timer for it (`queue.rs`).

use std::task::Waker;
use std::time::Duration;

use crate::sync::{AtomicUsize, Condvar, MutexGuard, Ordering};

/// Publishers waiting for room in one queue, and the signal that wakes them.
pub(crate) struct Room {
    /// Registered publishers: blocked threads and async tasks with a waker in the queue's
    /// list. Readers signal only when it is above 0.
    waiting: AtomicUsize,
    signal: Condvar,
}

impl Room {
    pub(crate) fn new() -> Self {
        Room {
            waiting: AtomicUsize::new(0),
            signal: Condvar::new(),
        }
    }

    /// Registers a blocked publisher, with the queue's lock held: it found no room under it.
    /// The caller then lets go of the registry lock it checked its subscription under, and
    /// calls `wait`: so a subscription change (made under that lock, then notified) cannot
    /// slip between the check and the wait either.
    pub(crate) fn register(&self) {
        self.waiting.fetch_add(1, Ordering::SeqCst);
    }

    /// Waits for a signal, at most `timeout`, after `register`, with the queue's lock
    /// `queue` held on entry (released while waiting, held again on return).
    pub(crate) fn wait<S>(&self, queue: &mut MutexGuard<'_, S>, timeout: Duration) {
        self.signal.wait_for(queue, timeout);
        self.waiting.fetch_sub(1, Ordering::SeqCst);
    }

    /// Registers an async publisher whose waker the caller has just added to the queue's
    /// list, under the queue's lock; `notify` takes it back.
    #[cfg(feature = "async")]
    pub(crate) fn registered_waker(&self) {
        self.waiting.fetch_add(1, Ordering::SeqCst);
    }

    /// Wakes every registered publisher to re-check, if there is one. `take_wakers` runs
    /// under the queue's lock, which `lock` takes; the wakers are woken after it is let go.
    pub(crate) fn notify<'a, S: 'a>(
        &self,
        lock: impl FnOnce() -> MutexGuard<'a, S>,
        take_wakers: impl FnOnce(&mut S) -> Vec<Waker>,
    ) {
        if self.waiting.load(Ordering::SeqCst) == 0 {
            return;
        }
        let wakers = take_wakers(&mut lock());
        self.signal.notify_all();
        if !wakers.is_empty() {
            self.waiting.fetch_sub(wakers.len(), Ordering::SeqCst);
            wakers.into_iter().for_each(Waker::wake);
        }
    }
}
