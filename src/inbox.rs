//! The reading side of a handle: its queue, the wait, the names, and the handler a message
//! goes to. Shared by [`PubSub`](crate::PubSub)'s own reads, its [`Worker`](crate::Worker)
//! and its streams, which hold a clone.
//!
//! # Reading
//!
//! An item is taken and turned into a [`Message`] under the handle's `names` lock (then, for
//! a bounded queue, under the queue's lock): a delivery takes its subscription's name from
//! the slot it carries, and an `Unsubscribe` confirmation retires its slot, so a reader on
//! another thread can never find a slot retired under a delivery it took. A reader that finds
//! the queue empty spins a little, then waits as `wake.rs` describes (register, look again,
//! park); a waiting reader counts as room for a rendezvous queue (capacity 0).
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

use std::sync::Arc;
use std::time::Instant;

use crossbeam_channel::TryRecvError;

use crate::item::{Item, ItemReceiver};
use crate::message::Message;
use crate::names::{Handler, Names};
use crate::queue::Tally;
use crate::subscriber::Subscriber;
use crate::wait::Wait;
use crate::wake::this_thread;

/// Why a read returned nothing.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Nothing {
    /// Nothing arrived in time (or the reader was asked to stop).
    Empty,
    /// The queue has ended: the handle is closed or disconnected, and everything was read.
    Ended,
}

/// A message as a reader took it, with the handler of the subscription it came through.
pub(crate) struct Taken<T: ?Sized> {
    pub(crate) message: Message<T>,
    /// For a delivery through a subscription made with a handler.
    pub(crate) handler: Option<Handler<T>>,
}

/// Rounds of spinning, then of yielding, before a reader parks (as crossbeam's `Backoff`).
const SPIN_ROUNDS: u32 = 6;
const YIELD_ROUNDS: u32 = 4;

/// A handle's queue and the shared state its reads consult.
pub(crate) struct Inbox<T: ?Sized> {
    subscriber: Arc<Subscriber<T>>,
    receiver: ItemReceiver<T>,
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
    pub(crate) fn new(subscriber: Arc<Subscriber<T>>, receiver: ItemReceiver<T>) -> Self {
        Inbox {
            subscriber,
            receiver,
        }
    }

    pub(crate) fn subscriber(&self) -> &Arc<Subscriber<T>> {
        &self.subscriber
    }

    /// The queue's receiving end: for `Select::ready`, and its length.
    pub(crate) fn receiver(&self) -> &ItemReceiver<T> {
        &self.receiver
    }

    /// Takes the next item as a message, without waiting.
    pub(crate) fn take(&self) -> Result<Taken<T>, Nothing> {
        let mut names = self.subscriber.names();
        let mut tally = Tally::default();
        let taken = match self.subscriber.queue() {
            None => self.receiver.try_recv().map(|queued| queued.0),
            Some(queue) => queue.take(&mut tally),
        };
        let delivery = taken.as_ref().is_ok_and(Item::is_delivery);
        let mut retired = None;
        let taken = taken.map(|item| open(item, &mut names, &mut retired));
        drop(names);
        // With no lock held: publishers waiting for room are woken (a waker may read or
        // subscribe this very handle), and a retired handler is dropped (it may hold one).
        drop(retired);
        if self.subscriber.queue().is_some() {
            self.subscriber.took(&tally, delivery);
        }
        match taken {
            Ok(taken) => Ok(taken),
            Err(TryRecvError::Empty) => Err(Nothing::Empty),
            Err(TryRecvError::Disconnected) => Err(self.ended()),
        }
    }

    /// Takes the next message, waiting as `wait` allows.
    pub(crate) fn read(&self, wait: Wait) -> Result<Taken<T>, Nothing> {
        self.read_unless(wait, || false)
    }

    /// `read`, which also stops waiting (with `Nothing::Empty`) once `stopped()` holds; the
    /// caller unparks this thread when it may have changed.
    pub(crate) fn read_unless(
        &self,
        wait: Wait,
        stopped: impl Fn() -> bool,
    ) -> Result<Taken<T>, Nothing> {
        match self.take() {
            Err(Nothing::Empty) if wait.may_wait() => {}
            taken => return taken,
        }
        let queue = self.subscriber.queue();
        if let Some(queue) = queue {
            queue.reader_waiting(true);
        }
        let read = self.wait_and_take(wait.deadline(), stopped);
        if let Some(queue) = queue {
            queue.reader_waiting(false);
        }
        read
    }

    /// Spins, then waits as `wake.rs` describes, until an item comes, the queue ends, the
    /// deadline passes or `stopped()` holds.
    fn wait_and_take(
        &self,
        deadline: Option<Instant>,
        stopped: impl Fn() -> bool,
    ) -> Result<Taken<T>, Nothing> {
        for round in 0..SPIN_ROUNDS + YIELD_ROUNDS {
            if round < SPIN_ROUNDS {
                (0..1 << round).for_each(|_| std::hint::spin_loop());
            } else {
                std::thread::yield_now();
            }
            match self.take() {
                Err(Nothing::Empty) if !stopped() => {}
                taken => return taken,
            }
        }
        let (reader, waker) = this_thread();
        let wake = self.subscriber.wake();
        let read = loop {
            wake.register(reader, &waker);
            match self.take() {
                Err(Nothing::Empty) => {}
                taken => break taken,
            }
            if stopped() {
                break Err(Nothing::Empty);
            }
            match deadline {
                None => std::thread::park(),
                Some(deadline) => {
                    let now = Instant::now();
                    if now >= deadline {
                        break Err(Nothing::Empty);
                    }
                    std::thread::park_timeout(deadline - now);
                }
            }
        };
        wake.forget(reader);
        read
    }

    /// The next message for `listen()`: see the listen-end check in the module docs.
    pub(crate) fn read_while_subscribed(&self) -> Result<Taken<T>, Nothing> {
        next_while_subscribed(
            || self.take(),
            |wait| self.read(wait),
            || self.subscriber.settled_subscriptions() > 0,
        )
    }

    /// The queue has ended and nothing is left to hand to a handler: let the handlers go, so
    /// one that holds its own handle (a cycle) does not keep it alive.
    fn ended(&self) -> Nothing {
        self.subscriber.drop_handlers();
        Nothing::Ended
    }

    /// The next message for the reader, waiting as `wait` allows, or why there is none:
    /// ignored confirmations are skipped, and deliveries with a handler go to it (in this
    /// thread, with no lock held) instead.
    ///
    /// Inlined into its callers, as the loop was before it was shared: out of line,
    /// `get_message` read about 10% slower for about the same instructions (`halves` read,
    /// side by side; benches/NOTES.md "Step 10").
    #[inline]
    pub(crate) fn next_for_reader(&self, wait: Wait) -> Result<Message<T>, Nothing> {
        loop {
            let taken = self.read(wait)?;
            if let Some(message) = self.for_reader(taken) {
                return Ok(message);
            }
        }
    }

    /// What a reader does with a message it took: `None` when a confirmation is ignored, or
    /// when the message went to its handler (called here, with no lock held).
    pub(crate) fn for_reader(&self, taken: Taken<T>) -> Option<Message<T>> {
        let Taken { message, handler } = taken;
        if message.is_confirmation() && self.subscriber.ignores_confirmations() {
            return None;
        }
        match handler {
            Some(handler) => {
                handler(message);
                None
            }
            None => Some(message),
        }
    }
}

/// Turns a queued item into the message it stands for, with the names and handlers in
/// `names`. An `Unsubscribe` confirmation retires its slot; the slot's handler goes to
/// `retired`, for the caller to drop once it lets go of `names`.
fn open<T: ?Sized>(
    item: Item<T>,
    names: &mut Names<T>,
    retired: &mut Option<Handler<T>>,
) -> Taken<T> {
    let (message, handler) = match item {
        Item::Channel { slot, payload } => {
            let channel = names.name(slot);
            (Message::Message { channel, payload }, names.handler(slot))
        }
        Item::Pattern { slot, publish } => {
            let message = Message::PMessage {
                pattern: names.name(slot),
                channel: Arc::clone(&publish.channel),
                payload: Arc::clone(&publish.payload),
            };
            (message, names.handler(slot))
        }
        Item::Replay { slot, message } => (*message, names.handler(slot)),
        Item::Control { message, retire } => {
            if let Some(slot) = retire {
                *retired = names.retire(slot);
            }
            (*message, None)
        }
    };
    Taken { message, handler }
}

/// Steps 1 to 3 of the listen-end check (module docs): `poll` takes an item without
/// waiting, `read` takes one waiting as told, and `subscribed` loads the count under the
/// handle's `state` lock. Generic so that the protocol can be model-checked on its own
/// (`model_check.rs`).
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
        Wait::Never
    })
}
