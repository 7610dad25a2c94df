//! The reading side of a handle: its queue, the wait, and the handler a message goes to.
//!
//! Shared by [`PubSub`](crate::PubSub)'s own reads and by its [`Worker`](crate::Worker),
//! which holds a clone.

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
