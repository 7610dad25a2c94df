//! Publishes waiting to go to Redis, bounded by the bridge's capacity and overflow policy.
//!
//! # Locks
//!
//! `state` is a leaf: nothing else is taken while it is held, and async publishers' wakers
//! are woken after it is let go. A publisher waiting for room waits on `room` with only
//! `state` held by the condition variable, which releases it.

use std::collections::VecDeque;
use std::sync::Arc;

use parking_lot::{Condvar, Mutex};

use crate::config::Overflow;
use crate::wait::Wait;

use super::echo::EchoKey;

/// One publish on its way to Redis.
pub(crate) struct Outgoing<T: ?Sized> {
    pub(crate) channel: Arc<str>,
    pub(crate) payload: Arc<T>,
    /// The subscription change (by sequence number) Redis must have before this goes out, so
    /// that a publish made after `subscribe` returned reaches that subscription.
    pub(crate) needed: u64,
    /// Echoes of this publish to skip when they come back (`Route::LocalFirst`).
    pub(crate) echoes: Vec<EchoKey>,
    /// Local subscriptions matched it when it was published, so the bridge's own
    /// subscription connection is among its receivers: Redis answering "0 receivers" means
    /// they missed it.
    pub(crate) comes_back: bool,
}

/// What `push` did with a publish.
pub(crate) enum Pushed<T: ?Sized> {
    /// Queued; any publishes evicted to make room (`DropOldest`) come back to be accounted.
    Queued(Vec<Outgoing<T>>),
    /// Not queued: full, and the policy or the caller's wait said no.
    Refused(Outgoing<T>),
}

struct State<T: ?Sized> {
    items: VecDeque<Outgoing<T>>,
    closed: bool,
    /// Async publishers waiting for room.
    #[cfg(feature = "async")]
    wakers: Vec<std::task::Waker>,
}

/// The bridge's queue of publishes not yet sent.
pub(crate) struct Backlog<T: ?Sized> {
    capacity: Option<usize>,
    overflow: Overflow,
    state: Mutex<State<T>>,
    /// Signalled when publishes were taken out (room) or the backlog closed.
    room: Condvar,
    /// Signalled when a publish was queued or the backlog closed.
    ready: Condvar,
}

impl<T: ?Sized> Backlog<T> {
    /// A backlog of at most `capacity` publishes (at least one), or unbounded.
    pub(crate) fn new(capacity: Option<usize>, overflow: Overflow) -> Self {
        Backlog {
            capacity: capacity.map(|c| c.max(1)),
            overflow,
            state: Mutex::new(State {
                items: VecDeque::new(),
                closed: false,
                #[cfg(feature = "async")]
                wakers: Vec::new(),
            }),
            room: Condvar::new(),
            ready: Condvar::new(),
        }
    }

    /// Queues `item`, or applies the overflow policy when the backlog is full; under
    /// `Overflow::Block` waits for room as `wait` allows.
    pub(crate) fn push(&self, mut item: Outgoing<T>, wait: Wait) -> Pushed<T> {
        let mut state = self.state.lock();
        loop {
            item = match self.try_push(&mut state, item) {
                Ok(pushed) => return pushed,
                Err(back) => back,
            };
            match wait {
                Wait::Never => return Pushed::Refused(item),
                Wait::Forever => self.room.wait(&mut state),
                Wait::Until(deadline) => {
                    if self.room.wait_until(&mut state, deadline).timed_out() {
                        return match self.try_push(&mut state, item) {
                            Ok(pushed) => pushed,
                            Err(back) => Pushed::Refused(back),
                        };
                    }
                }
            }
        }
    }

    /// `push` for async callers: `Poll::Pending` with `waker` registered while a `Block`
    /// backlog is full.
    #[cfg(feature = "async")]
    pub(crate) fn poll_push(
        &self,
        item: Outgoing<T>,
        waker: &std::task::Waker,
    ) -> Result<Pushed<T>, Outgoing<T>> {
        let mut state = self.state.lock();
        match self.try_push(&mut state, item) {
            Ok(pushed) => Ok(pushed),
            Err(back) => {
                if !state.wakers.iter().any(|w| w.will_wake(waker)) {
                    state.wakers.push(waker.clone());
                }
                Err(back)
            }
        }
    }

    /// Queues `item` unless the backlog is full under `Block` (then it comes back in `Err`).
    fn try_push(&self, state: &mut State<T>, item: Outgoing<T>) -> Result<Pushed<T>, Outgoing<T>> {
        if state.closed {
            return Ok(Pushed::Refused(item));
        }
        let mut evicted = Vec::new();
        if self.is_full(state) {
            match self.overflow {
                Overflow::Block => return Err(item),
                Overflow::DropOldest => evicted.extend(state.items.pop_front()),
                // Nothing to disconnect in a backlog: the new publish is refused.
                _ => return Ok(Pushed::Refused(item)),
            }
        }
        state.items.push_back(item);
        self.ready.notify_one();
        Ok(Pushed::Queued(evicted))
    }

    fn is_full(&self, state: &State<T>) -> bool {
        self.capacity
            .is_some_and(|capacity| state.items.len() >= capacity)
    }

    /// Takes up to `max` publishes, oldest first, waiting while there are none; `None` once
    /// the backlog is closed and empty.
    pub(crate) fn take(&self, max: usize) -> Option<Vec<Outgoing<T>>> {
        let mut state = self.state.lock();
        while state.items.is_empty() {
            if state.closed {
                return None;
            }
            self.ready.wait(&mut state);
        }
        let n = state.items.len().min(max);
        let batch: Vec<_> = state.items.drain(..n).collect();
        self.room.notify_all();
        #[cfg(feature = "async")]
        let wakers = std::mem::take(&mut state.wakers);
        drop(state);
        #[cfg(feature = "async")]
        wakers.into_iter().for_each(std::task::Waker::wake);
        Some(batch)
    }

    /// Publishes queued now (not the batch the publishing thread took).
    pub(crate) fn len(&self) -> usize {
        self.state.lock().items.len()
    }

    /// Refuses later publishes and wakes everyone waiting; what is queued stays to be taken.
    pub(crate) fn close(&self) {
        let mut state = self.state.lock();
        state.closed = true;
        self.room.notify_all();
        self.ready.notify_all();
        #[cfg(feature = "async")]
        let wakers = std::mem::take(&mut state.wakers);
        drop(state);
        #[cfg(feature = "async")]
        wakers.into_iter().for_each(std::task::Waker::wake);
    }
}
