//! Reading a handle: taking an item, turning it into a [`Message`], waiting, and the handler
//! a message goes to. Shared by [`PubSub`](crate::PubSub)'s reads, its workers and streams.
//!
//! # Reading
//!
//! An item is taken and turned into a `Message` under the handle's `names` lock: a delivery
//! takes its subscription's name from the slot it carries, and an `Unsubscribe`
//! confirmation retires its slot, so a reader on another thread can never find a slot
//! retired under a delivery it took. A reader that finds the queue empty spins a little,
//! then waits as `wake.rs` describes (register, look again, park).
//!
//! # The listen-end check
//!
//! `listen()` waits while the handle has subscriptions and ends once it has none and nothing
//! is queued. The count and the queue change in two steps: an (un)subscription queues its
//! confirmation, then stores the new count, and a reader may take the confirmation between
//! the two. Both steps happen while the handle's `calls` lock is held (`pubsub.rs`), so the
//! reader decides under that lock, and only once its queue is empty:
//!
//! 1. take an item without waiting; if there is one, that is the answer;
//! 2. the queue is empty: lock `calls`, load the count, unlock. Any confirmation already
//!    taken has its count stored by now, and any later one will be queued after this point;
//! 3. count > 0: wait for the next item (the confirmation that brings the count to 0 is
//!    such an item, so the wait ends; if another reader took it, the wait stops once the
//!    count is 0, and the check starts again at step 1); count 0: take an item without
//!    waiting (a confirmation queued since step 1) or end.
//!
//! A skipped item (an ignored confirmation, a delivery that went to its handler) goes back
//! to step 1, so the check runs again after it. See [`next_while_subscribed`].

use std::sync::Arc;
use std::time::Instant;

use crossbeam_channel::TryRecvError;

use super::names::{Handler, Names};
use super::wake::{this_thread, Woken};
use super::Handle;
use crate::item::Item;
use crate::message::Message;
use crate::wait::Wait;

/// Why a read returned nothing.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Nothing {
    /// Nothing arrived in time (or the reader was asked to stop).
    Empty,
    /// The queue has ended: the handle is closed or disconnected, and everything was read.
    Ended,
}

/// Rounds of spinning, then of yielding, before a reader parks (as crossbeam's `Backoff`).
const SPIN_ROUNDS: u32 = 6;
const YIELD_ROUNDS: u32 = 4;

impl<T: ?Sized> Handle<T> {
    /// Takes the next item as a message, without waiting; `handler` gets the handler of
    /// the subscription a delivery came through, if it was made with one.
    #[inline(always)]
    pub(crate) fn take(&self, handler: &mut Option<Handler<T>>) -> Result<Message<T>, Nothing> {
        let queue = self.queue();
        if queue.bound().is_none() {
            let mut names = self.names();
            let item = queue.take_unbounded();
            return match item {
                Ok(Item::Channel { slot, payload }) => {
                    if let Some(found) = names.handler(slot) {
                        *handler = Some(found);
                    }
                    let channel = names.name(slot);
                    Ok(Message::Message { channel, payload })
                }
                Ok(item @ Item::Pattern { .. }) => Ok(open(item, &mut names, handler, &mut None)),
                other => {
                    drop(names);
                    self.take_other(other, handler)
                }
            };
        }
        self.take_bounded(handler)
    }

    /// `take` for what is not a delivery from an unbounded queue: a confirmation may retire
    /// its slot, and an ended queue lets the handlers go.
    #[inline(never)]
    fn take_other(
        &self,
        item: Result<Item<T>, TryRecvError>,
        handler: &mut Option<Handler<T>>,
    ) -> Result<Message<T>, Nothing> {
        let mut retired = None;
        let taken = item.map(|item| open(item, &mut self.names(), handler, &mut retired));
        // With no lock held: a retired handler may hold this very handle.
        drop(retired);
        self.taken(taken)
    }

    /// `take` from a bounded queue, which may make room for waiting publishers.
    #[inline(never)]
    fn take_bounded(&self, handler: &mut Option<Handler<T>>) -> Result<Message<T>, Nothing> {
        let mut woken = Woken::default();
        let mut retired = None;
        let taken = {
            let mut names = self.names();
            let item = self.queue().take(&mut woken);
            item.map(|item| open(item, &mut names, handler, &mut retired))
        };
        // With no lock held: publishers waiting for room are woken (a waker may read or
        // subscribe this very handle), and a retired handler is dropped (it may hold one).
        woken.wake_all();
        drop(retired);
        self.taken(taken)
    }

    fn taken(&self, taken: Result<Message<T>, TryRecvError>) -> Result<Message<T>, Nothing> {
        match taken {
            Ok(message) => Ok(message),
            Err(TryRecvError::Empty) => Err(Nothing::Empty),
            Err(TryRecvError::Disconnected) => Err(self.ended()),
        }
    }

    /// Takes the next message, waiting as `wait` allows, or stops waiting (with
    /// `Nothing::Empty`) once `stopped()` holds; the caller unparks this thread when it may
    /// have changed. `handler` as for `take`.
    #[inline]
    pub(crate) fn read_unless(
        &self,
        wait: Wait,
        stopped: impl Fn() -> bool,
        handler: &mut Option<Handler<T>>,
    ) -> Result<Message<T>, Nothing> {
        match self.take(handler) {
            Err(Nothing::Empty) if wait.may_wait() => {
                self.wait_and_take(wait.deadline(), stopped, handler)
            }
            taken => taken,
        }
    }

    /// Spins, then waits as `wake.rs` describes, until an item comes, the queue ends, the
    /// deadline passes or `stopped()` holds. Counts as a waiting reader meanwhile: room for a
    /// rendezvous.
    #[inline(never)]
    fn wait_and_take(
        &self,
        deadline: Option<Instant>,
        stopped: impl Fn() -> bool,
        handler: &mut Option<Handler<T>>,
    ) -> Result<Message<T>, Nothing> {
        self.queue().reader_waiting(true);
        let read = self.spin_then_park(deadline, stopped, handler);
        self.queue().reader_waiting(false);
        read
    }

    fn spin_then_park(
        &self,
        deadline: Option<Instant>,
        stopped: impl Fn() -> bool,
        handler: &mut Option<Handler<T>>,
    ) -> Result<Message<T>, Nothing> {
        for round in 0..SPIN_ROUNDS + YIELD_ROUNDS {
            if round < SPIN_ROUNDS {
                (0..1 << round).for_each(|_| std::hint::spin_loop());
            } else {
                std::thread::yield_now();
            }
            match self.take(handler) {
                Err(Nothing::Empty) if !stopped() => {}
                taken => return taken,
            }
        }
        let (reader, waker) = this_thread();
        let readers = self.readers();
        let read = loop {
            readers.register(reader, &waker);
            match self.take(handler) {
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
        readers.forget(reader);
        read
    }

    /// The next message for `listen()`: see the listen-end check in the module docs. A wait
    /// stops once the count is 0 (an unsubscription's confirmation wakes it), so that a
    /// `listen()` whose last confirmation another reader took ends too.
    pub(crate) fn read_while_subscribed(
        &self,
        handler: &mut Option<Handler<T>>,
    ) -> Result<Message<T>, Nothing> {
        let unsubscribed = || self.settled_subscriptions() == 0;
        next_while_subscribed(
            |wait| self.read_unless(wait, unsubscribed, handler),
            || !unsubscribed(),
        )
    }

    /// The queue has ended and nothing is left to hand to a handler: let the handlers go, so
    /// one that holds its own handle (a cycle) does not keep it alive.
    #[cold]
    fn ended(&self) -> Nothing {
        self.drop_handlers();
        Nothing::Ended
    }

    /// The next message for the reader, waiting as `wait` allows, or why there is none:
    /// ignored confirmations are skipped, and deliveries with a handler go to it (in this
    /// thread, with no lock held) instead.
    #[inline]
    pub(crate) fn next_for_reader(&self, wait: Wait) -> Result<Message<T>, Nothing> {
        let mut handler = None;
        match self.take(&mut handler) {
            Ok(message) if handler.is_none() && !self.skips(&message) => Ok(message),
            taken => self.next_after(taken, handler, wait),
        }
    }

    /// `next_for_reader` once the first item taken was not simply the answer.
    #[inline(never)]
    fn next_after(
        &self,
        mut taken: Result<Message<T>, Nothing>,
        mut handler: Option<Handler<T>>,
        wait: Wait,
    ) -> Result<Message<T>, Nothing> {
        loop {
            if let (Err(Nothing::Empty), true) = (&taken, wait.may_wait()) {
                taken = self.wait_and_take(wait.deadline(), || false, &mut handler);
            }
            if let Some(message) = self.for_reader(taken?, handler.take()) {
                return Ok(message);
            }
            taken = self.take(&mut handler);
        }
    }

    /// Whether a reader skips `message`: a confirmation, when the handle ignores them.
    #[inline]
    fn skips(&self, message: &Message<T>) -> bool {
        self.ignores_confirmations() && message.is_confirmation()
    }

    /// What a reader does with a message it took: `None` when a confirmation is ignored, or
    /// when the message went to `handler` (called here, with no lock held).
    #[inline]
    pub(crate) fn for_reader(
        &self,
        message: Message<T>,
        handler: Option<Handler<T>>,
    ) -> Option<Message<T>> {
        if let Some(handler) = handler {
            handler(message);
            return None;
        }
        (!self.skips(&message)).then_some(message)
    }
}

/// Turns a queued item into the message it stands for, with the names and handlers in
/// `names`: the handler of the subscription a delivery or replay came through goes to
/// `handler`. An `Unsubscribe` confirmation retires its slot; the slot's handler goes to
/// `retired`, for the caller to drop once it lets go of `names`.
#[inline]
fn open<T: ?Sized>(
    item: Item<T>,
    names: &mut Names<T>,
    handler: &mut Option<Handler<T>>,
    retired: &mut Option<Handler<T>>,
) -> Message<T> {
    match item {
        Item::Channel { slot, payload } => {
            *handler = names.handler(slot);
            let channel = names.name(slot);
            Message::Message { channel, payload }
        }
        Item::Pattern { slot, publish } => {
            *handler = names.handler(slot);
            Message::PMessage {
                pattern: names.name(slot),
                channel: Arc::clone(&publish.channel),
                payload: Arc::clone(&publish.payload),
            }
        }
        Item::Replay { slot, message } => {
            *handler = names.handler(slot);
            *message
        }
        Item::Control { message, retire } => {
            if let Some(slot) = retire {
                *retired = names.retire(slot);
                if message.count() == Some(0) {
                    names.end_read();
                }
            }
            *message
        }
        Item::Lagged { missed } => Message::Lagged { missed },
        Item::Warning { queued, .. } => Message::HighWater { queued },
    }
}

/// Steps 1 to 3 of the listen-end check (module docs): `read` takes an item waiting as told
/// (a wait for ever may stop empty once the count is 0: then the check runs again), and
/// `subscribed` loads the count under the handle's `calls` lock. Generic so that the protocol
/// can be model-checked on its own (`model_check.rs`).
pub(crate) fn next_while_subscribed<M>(
    mut read: impl FnMut(Wait) -> Result<M, Nothing>,
    mut subscribed: impl FnMut() -> bool,
) -> Result<M, Nothing> {
    loop {
        match read(Wait::Never) {
            Err(Nothing::Empty) => {}
            taken => return taken,
        }
        if !subscribed() {
            return read(Wait::Never);
        }
        match read(Wait::Forever) {
            Err(Nothing::Empty) => {}
            taken => return taken,
        }
    }
}
