//! The reading side of a handle: its queue, the wait, and the handler a message goes to.
//!
//! Shared by [`PubSub`](crate::PubSub)'s own reads and by its [`Worker`](crate::Worker),
//! which holds a clone.
//!
//! # The listen-end check
//!
//! `listen()` waits while the handle has subscriptions and ends once it has none and nothing
//! is queued. The count and the queue change in two steps: an (un)subscription queues its
//! confirmation, then stores the new count, and a reader may take the confirmation between
//! the two. Both steps happen while the handle's `state` lock is held (`pubsub.rs`), so the
//! reader decides under that lock, and only once its queue is empty:
//!
//! 1. take an item without waiting; if there is one, that is the answer;
//! 2. the queue is empty: lock `state`, load the count, unlock. Any confirmation already
//!    taken has its count stored by now, and any later one will be queued after this point;
//! 3. count > 0: wait for the next item (the confirmation that brings the count to 0 is
//!    such an item, so the wait ends); count 0: take an item without waiting (a confirmation
//!    queued since step 1) or end.
//!
//! A skipped item (an ignored confirmation, a delivery that went to its handler) goes back
//! to step 1, so the check runs again after it. See [`next_while_subscribed`].

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Instant;

use crossbeam_channel::{Receiver, RecvTimeoutError, Select, TryRecvError};

use crate::message::Message;
use crate::subscriber::{Handler, Subscriber};

/// How long a read may wait.
#[derive(Clone, Copy)]
pub(crate) enum Wait {
    Poll,
    Until(Instant),
    Forever,
}

/// Why a read returned nothing.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Nothing {
    /// Nothing arrived in time.
    Empty,
    /// The queue has ended: the handle is closed or disconnected, and everything was read.
    Ended,
}

/// A handle's queue and the shared state its reads consult.
pub(crate) struct Inbox<T: ?Sized> {
    pub(crate) subscriber: Arc<Subscriber<T>>,
    pub(crate) receiver: Receiver<Message<T>>,
}

impl<T: ?Sized> Clone for Inbox<T> {
    fn clone(&self) -> Self {
        Inbox {
            subscriber: Arc::clone(&self.subscriber),
            receiver: self.receiver.clone(),
        }
    }
}

impl<T: ?Sized> Inbox<T> {
    /// Takes the next item, waiting as `wait` allows.
    pub(crate) fn read(&self, wait: Wait) -> Result<Message<T>, Nothing> {
        let Some(bounded) = &self.subscriber.bounded else {
            return match wait {
                Wait::Poll => self.receiver.try_recv().map_err(|e| match e {
                    TryRecvError::Empty => Nothing::Empty,
                    TryRecvError::Disconnected => self.ended(),
                }),
                Wait::Until(deadline) => {
                    self.receiver.recv_deadline(deadline).map_err(|e| match e {
                        RecvTimeoutError::Timeout => Nothing::Empty,
                        RecvTimeoutError::Disconnected => self.ended(),
                    })
                }
                Wait::Forever => self.receiver.recv().map_err(|_| self.ended()),
            };
        };
        loop {
            match self.subscriber.take(bounded) {
                Ok(message) => return Ok(message),
                Err(TryRecvError::Disconnected) => return Err(self.ended()),
                Err(TryRecvError::Empty) => {}
            }
            let deadline = match wait {
                Wait::Poll => return Err(Nothing::Empty),
                Wait::Until(deadline) => Some(deadline),
                Wait::Forever => None,
            };
            // Wait for an item without taking it (see `Bounded::take`). A waiting reader is
            // room for a rendezvous queue (capacity 0).
            bounded.reader_waiting(true);
            let mut select = Select::new();
            select.recv(&self.receiver);
            let ready = match deadline {
                Some(deadline) => select.ready_deadline(deadline).is_ok(),
                None => {
                    select.ready();
                    true
                }
            };
            bounded.reader_waiting(false);
            if !ready {
                return self.subscriber.take(bounded).map_err(|e| match e {
                    TryRecvError::Empty => Nothing::Empty,
                    TryRecvError::Disconnected => self.ended(),
                });
            }
        }
    }

    /// The next item for `listen()`: see the listen-end check in the module docs.
    pub(crate) fn read_while_subscribed(&self) -> Result<Message<T>, Nothing> {
        next_while_subscribed(
            || self.read(Wait::Poll),
            |wait| self.read(wait),
            || {
                let _state = self.subscriber.state.lock();
                self.subscriber.subscriptions.load(Ordering::Relaxed) > 0
            },
        )
    }

    /// Blocks until the queue has an item or has ended, or `also` is ready. Meanwhile this
    /// reader counts as waiting, as one blocked in `read` does: room for a rendezvous queue
    /// (capacity 0). For readers that wait on more than their queue (a worker's stop signal).
    pub(crate) fn wait_with(&self, also: &Receiver<()>) {
        let bounded = self.subscriber.bounded.as_ref();
        if let Some(bounded) = bounded {
            bounded.reader_waiting(true);
        }
        let mut select = Select::new();
        select.recv(&self.receiver);
        select.recv(also);
        select.ready();
        if let Some(bounded) = bounded {
            bounded.reader_waiting(false);
        }
    }

    /// The queue has ended and nothing is left to hand to a handler: let the handlers go, so
    /// one that holds its own handle (a cycle) does not keep it alive.
    fn ended(&self) -> Nothing {
        if self.subscriber.has_handlers.swap(false, Ordering::AcqRel) {
            let handlers = std::mem::take(&mut self.subscriber.state.lock().handlers);
            drop(handlers); // outside the lock: dropping a handler may drop a handle
        }
        Nothing::Ended
    }

    /// What a reader does with a message it took: `None` when a confirmation is ignored, or
    /// when the message went to its handler (called here, with no lock held).
    pub(crate) fn for_reader(&self, message: Message<T>) -> Option<Message<T>> {
        if message.is_confirmation() && self.subscriber.ignore_confirmations {
            return None;
        }
        match self.handler_for(&message) {
            Some(handler) => {
                handler(message);
                None
            }
            None => Some(message),
        }
    }

    /// The handler registered for the subscription a delivery came through, if any.
    pub(crate) fn handler_for(&self, message: &Message<T>) -> Option<Handler<T>> {
        if !self.subscriber.has_handlers.load(Ordering::Acquire) {
            return None;
        }
        let (kind, name) = match message {
            Message::Message { channel, .. } => (0, channel),
            Message::PMessage { pattern, .. } => (1, pattern),
            _ => return None,
        };
        let state = self.subscriber.state.lock();
        state.handlers[kind].get(&**name).cloned()
    }
}

/// Step 1 to 3 of the listen-end check (module docs): `poll` takes an item without waiting,
/// `read` takes one waiting as told, and `subscribed` loads the count under the handle's
/// `state` lock. Generic so that the protocol can be model-checked on its own (`loom.rs`).
pub(crate) fn next_while_subscribed<M>(
    poll: impl FnOnce() -> Result<M, Nothing>,
    read: impl FnOnce(Wait) -> Result<M, Nothing>,
    subscribed: impl FnOnce() -> bool,
) -> Result<M, Nothing> {
    match poll() {
        Err(Nothing::Empty) => {}
        taken => return taken,
    }
    read(if subscribed() {
        Wait::Forever
    } else {
        Wait::Poll
    })
}
