//! The subscriber handle: (un)subscriptions with confirmations, polling and `listen()`.
//!
//! # Locks
//!
//! Every (un)subscription holds the handle's `calls` for the whole call and takes index
//! locks inside it (see `engine/index.rs` for the order), so two threads changing one handle
//! at once still see counts that rise and fall one by one, in queue order. Publishers never
//! take it. The readers woken by a call's confirmations are woken once it has let go of every
//! lock.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use crossbeam_channel::Receiver;

use crate::config::{Overflow, QueueConfig};
use crate::engine::{Registry, Stopped};
use crate::error::{HandleClosed, RecvTimeoutError, WorkerError};
use crate::handle::{Bound, Calls, Handle, Handler, Nothing, SubscriberId, Woken};
use crate::into_names::IntoNames;
use crate::item::{Item, ItemSender, Queued};
use crate::kind::Kind;
use crate::message::Message;
use crate::owner::Owner;
use crate::stats::{Disconnected, PubSubStats};
use crate::wait::Wait;
use crate::worker::{Worker, WorkerBuilder};

fn confirmation<T: ?Sized>(
    kind: Kind,
    subscribed: bool,
    name: Arc<str>,
    count: usize,
) -> Message<T> {
    match (kind, subscribed) {
        (Kind::Channel, true) => Message::Subscribe {
            channel: name,
            count,
        },
        (Kind::Channel, false) => Message::Unsubscribe {
            channel: name,
            count,
        },
        (Kind::Pattern, true) => Message::PSubscribe {
            pattern: name,
            count,
        },
        (Kind::Pattern, false) => Message::PUnsubscribe {
            pattern: name,
            count,
        },
    }
}

/// One subscriber: its subscriptions and the queue its messages arrive in.
///
/// Made by [`Broker::pubsub`](crate::Broker::pubsub). A handle receives only what is
/// published after the `subscribe` call that let it through has returned, and nothing
/// published after the matching `unsubscribe` has returned. Every call takes `&self`, and the
/// handle is `Send + Sync`, so one thread may block in [`listen`](PubSub::listen) while another
/// subscribes and unsubscribes.
///
/// Dropping the handle, once no [`Worker`] or [`MessageStream`] made from it is left, removes
/// all its subscriptions from the broker at once, with no confirmations; until then they stay.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use fanout::{Broker, Message};
///
/// let broker = Broker::<str>::new();
/// let sub = broker.pubsub();
/// sub.subscribe(["a", "b"]);
/// sub.psubscribe(["news.*"]);
/// assert_eq!(sub.subscriptions(), 3);
///
/// let counts: Vec<_> = std::iter::from_fn(|| sub.get_message(Duration::ZERO))
///     .map(|m| m.count())
///     .collect();
/// assert_eq!(counts, [Some(1), Some(2), Some(3)]);
/// ```
///
#[cfg_attr(feature = "async", doc = "[`MessageStream`]: crate::MessageStream")]
#[cfg_attr(
    not(feature = "async"),
    doc = "[`MessageStream`]: https://docs.rs/fanout/latest/fanout/struct.MessageStream.html"
)]
#[must_use = "dropping a `PubSub` removes its subscriptions: keep it for as long as it should receive"]
pub struct PubSub<T: ?Sized> {
    /// Shared with this handle's workers and streams: the last to go closes the handle.
    owner: Arc<Owner<T>>,
}

impl<T: ?Sized> PubSub<T> {
    pub(crate) fn new(registry: Arc<Registry<T>>, config: QueueConfig) -> Self {
        PubSub {
            owner: Owner::new(registry, config),
        }
    }

    fn subscriber(&self) -> &Arc<Handle<T>> {
        self.owner.handle()
    }

    fn registry(&self) -> &Registry<T> {
        self.owner.registry()
    }

    /// Subscribes to each channel in `names`, queuing one `Subscribe` confirmation per name,
    /// in order.
    ///
    /// A channel already subscribed is confirmed again with an unchanged count and still
    /// receives each message once. An empty list does nothing.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use fanout::{Broker, Message};
    ///
    /// let broker = Broker::<str>::new();
    /// let sub = broker.pubsub();
    /// sub.subscribe(["c", "c"]);
    /// let first = sub.get_message(Duration::ZERO).unwrap();
    /// let again = sub.get_message(Duration::ZERO).unwrap();
    /// assert_eq!(first.count(), Some(1));
    /// assert_eq!(again.count(), Some(1));
    /// assert_eq!(broker.publish("c", "hi"), 1);
    /// ```
    pub fn subscribe<I>(&self, names: I)
    where
        I: IntoNames,
    {
        self.subscribe_each(Kind::Channel, names, None);
    }

    /// Subscribes to each Redis glob pattern in `names` (see [`glob_match`](crate::glob_match)),
    /// queuing one `PSubscribe` confirmation per name, in order.
    ///
    /// Patterns are subscriptions by their text: `foo*` and `fo[o]*` are two. A pattern
    /// already subscribed is confirmed again with an unchanged count. An empty list does
    /// nothing.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use fanout::Broker;
    ///
    /// let broker = Broker::<str>::new();
    /// let sub = broker.pubsub();
    /// sub.psubscribe(["foo*", "fo[o]*"]); // two patterns, by their text
    /// assert_eq!(broker.publish("food", "soup"), 2); // one pmessage per matching pattern
    /// assert_eq!(broker.publish("fo", "nothing"), 0);
    /// let counts: Vec<_> = sub.listen().take(2).map(|m| m.count()).collect();
    /// assert_eq!(counts, [Some(1), Some(2)]);
    /// let m = sub.get_message(Duration::ZERO).unwrap();
    /// assert_eq!((m.kind(), m.channel(), m.data()), ("pmessage", Some("food"), Some("soup")));
    /// ```
    pub fn psubscribe<I>(&self, names: I)
    where
        I: IntoNames,
    {
        self.subscribe_each(Kind::Pattern, names, None);
    }

    /// [`subscribe`](PubSub::subscribe), reporting a handle that takes no subscriptions.
    ///
    /// Returns the handle's channels plus patterns after the call.
    ///
    /// # Errors
    ///
    /// [`HandleClosed`] when the handle is closed, disconnected or its broker closed: nothing
    /// was subscribed and nothing queued. (`subscribe` does nothing then, as redis-py's
    /// `subscribe` on a closed [`PubSub`] sends nothing.)
    ///
    /// # Examples
    ///
    /// ```
    /// use fanout::{Broker, Disconnected, HandleClosed};
    ///
    /// let broker = Broker::<str>::new();
    /// let sub = broker.pubsub();
    /// assert_eq!(sub.try_subscribe(["a", "b"]), Ok(2));
    /// sub.close();
    /// assert_eq!(sub.try_subscribe("c"), Err(HandleClosed(Disconnected::Closed)));
    /// ```
    pub fn try_subscribe<I>(&self, names: I) -> Result<usize, HandleClosed>
    where
        I: IntoNames,
    {
        self.subscribe(names);
        self.still_open()
    }

    /// [`psubscribe`](PubSub::psubscribe), reporting a handle that takes no subscriptions;
    /// see [`try_subscribe`](PubSub::try_subscribe).
    ///
    /// # Errors
    ///
    /// [`HandleClosed`] when the handle is closed, disconnected or its broker closed.
    ///
    /// # Examples
    ///
    /// ```
    /// use fanout::{Broker, Disconnected, HandleClosed};
    ///
    /// let broker = Broker::<str>::new();
    /// let sub = broker.pubsub();
    /// broker.close();
    /// assert_eq!(sub.try_psubscribe("news.*"), Err(HandleClosed(Disconnected::BrokerClosed)));
    /// ```
    pub fn try_psubscribe<I>(&self, names: I) -> Result<usize, HandleClosed>
    where
        I: IntoNames,
    {
        self.psubscribe(names);
        self.still_open()
    }

    /// The count after a subscription call, or why the handle took none. A handle never
    /// opens again once closed, so checking after the call is exact: a call on a closed handle
    /// did nothing, and one that a concurrent close interrupted lost its subscriptions to it.
    fn still_open(&self) -> Result<usize, HandleClosed> {
        match self.disconnected() {
            Some(reason) => Err(HandleClosed(reason)),
            None => Ok(self.subscriptions()),
        }
    }

    /// Unsubscribes from each channel in `names`, queuing one `Unsubscribe` confirmation per
    /// name, in order, after the last message the subscription let through.
    ///
    /// A channel that was not subscribed is confirmed anyway, with an unchanged count.
    /// Divergence from Redis: an empty list does nothing (it does not mean "all"); use
    /// [`unsubscribe_all`](PubSub::unsubscribe_all).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use fanout::Broker;
    ///
    /// let broker = Broker::<str>::new();
    /// let sub = broker.pubsub();
    /// sub.subscribe(["a", "b"]);
    /// broker.publish("a", "before");
    /// sub.unsubscribe(["a", "never"]); // "never" is confirmed too, with an unchanged count
    /// assert_eq!(broker.publish("a", "after"), 0);
    /// let read: Vec<_> = std::iter::from_fn(|| sub.get_message(Duration::ZERO))
    ///     .map(|m| (m.kind(), m.count()))
    ///     .collect();
    /// assert_eq!(
    ///     read[2..],
    ///     [("message", None), ("unsubscribe", Some(1)), ("unsubscribe", Some(1))]
    /// );
    /// ```
    pub fn unsubscribe<I>(&self, names: I)
    where
        I: IntoNames,
    {
        self.unsubscribe_each(Kind::Channel, names);
    }

    /// Unsubscribes from each pattern in `names`, compared as text (never matched), queuing
    /// one `PUnsubscribe` confirmation per name, in order. An empty list does nothing; use
    /// [`punsubscribe_all`](PubSub::punsubscribe_all).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use fanout::Broker;
    ///
    /// let broker = Broker::<str>::new();
    /// let sub = broker.pubsub();
    /// sub.psubscribe(["news.*", "sport.*"]);
    /// sub.punsubscribe("news.rust"); // compared as text: not subscribed, count unchanged
    /// sub.punsubscribe("news.*");
    /// assert_eq!(sub.patterns(), ["sport.*"]);
    /// let counts: Vec<_> = std::iter::from_fn(|| sub.get_message(Duration::ZERO))
    ///     .map(|m| m.count())
    ///     .collect();
    /// assert_eq!(counts, [Some(1), Some(2), Some(2), Some(1)]);
    /// ```
    pub fn punsubscribe<I>(&self, names: I)
    where
        I: IntoNames,
    {
        self.unsubscribe_each(Kind::Pattern, names);
    }

    /// Unsubscribes from every channel, in subscription order, with one confirmation each;
    /// patterns stay. Queues nothing when no channel was subscribed.
    ///
    /// # Examples
    ///
    /// ```
    /// use fanout::Broker;
    ///
    /// let broker = Broker::<str>::new();
    /// let sub = broker.pubsub();
    /// sub.subscribe(["a", "b"]);
    /// sub.psubscribe(["p*"]);
    /// sub.unsubscribe_all();
    /// assert_eq!(sub.subscriptions(), 1);
    /// let kinds: Vec<_> = sub.listen().take(5).map(|m| (m.kind(), m.count())).collect();
    /// assert_eq!(
    ///     kinds,
    ///     [
    ///         ("subscribe", Some(1)),
    ///         ("subscribe", Some(2)),
    ///         ("psubscribe", Some(3)),
    ///         ("unsubscribe", Some(2)),
    ///         ("unsubscribe", Some(1)),
    ///     ]
    /// );
    /// ```
    pub fn unsubscribe_all(&self) {
        self.unsubscribe_every(Kind::Channel);
    }

    /// Unsubscribes from every pattern, in subscription order, with one confirmation each;
    /// channels stay. Queues nothing when no pattern was subscribed.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use fanout::Broker;
    ///
    /// let broker = Broker::<str>::new();
    /// let sub = broker.pubsub();
    /// sub.subscribe("a");
    /// sub.psubscribe(["p*", "q*"]);
    /// sub.punsubscribe_all();
    /// assert_eq!((sub.channels(), sub.patterns().len()), (vec!["a".to_string()], 0));
    /// let counts: Vec<_> = std::iter::from_fn(|| sub.get_message(Duration::ZERO))
    ///     .map(|m| m.count())
    ///     .collect();
    /// assert_eq!(counts, [Some(1), Some(2), Some(3), Some(2), Some(1)]);
    /// sub.punsubscribe_all(); // no pattern left: queues nothing
    /// assert_eq!(sub.get_message(Duration::ZERO), None);
    /// ```
    pub fn punsubscribe_all(&self) {
        self.unsubscribe_every(Kind::Pattern);
    }

    /// Subscribes to `channel` with a handler: its deliveries go to `handler`, called by
    /// whichever thread reads this handle (`get_message`, `listen`, or a [`Worker`]), and are
    /// not yielded, as in redis-py. The handler runs with no lock held, so it may subscribe,
    /// unsubscribe, publish or stop the worker.
    ///
    /// A delivery goes to the handler of the subscription it came through. Subscribing again
    /// with a handler replaces it for what comes next. Unsubscribing ends the subscription but
    /// not its handler: the deliveries queued before it still go to the handler, which is let
    /// go when the `Unsubscribe` confirmation is read (redis-py also forgets a handler when it
    /// reads that reply); so a worker loses none of them, and a later subscription to the same
    /// name, with or without a handler, never takes them. Confirmations are yielded as usual.
    /// A handler may hold this handle (to subscribe from inside it); the handlers are let go
    /// once a reader sees the handle's queue end after `close`, which breaks that cycle.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::sync::{Arc, Mutex};
    /// use std::time::Duration;
    /// use fanout::{Broker, Message};
    ///
    /// let broker = Broker::<str>::new();
    /// let sub = broker.pubsub();
    /// let seen = Arc::new(Mutex::new(Vec::new()));
    /// let log = seen.clone();
    /// sub.subscribe_with("orders", move |m: Message<str>| {
    ///     log.lock().unwrap().push(m.payload().unwrap().to_string());
    /// });
    /// broker.publish("orders", "#1");
    /// // The confirmation is yielded; the message went to the handler.
    /// assert_eq!(sub.get_message(Duration::ZERO).unwrap().kind(), "subscribe");
    /// assert_eq!(sub.get_message(Duration::ZERO), None);
    /// assert_eq!(*seen.lock().unwrap(), ["#1"]);
    /// ```
    pub fn subscribe_with<F>(&self, channel: &str, handler: F)
    where
        F: Fn(Message<T>) + Send + Sync + 'static,
    {
        self.subscribe_each(Kind::Channel, [channel], Some(Arc::new(handler)));
    }

    /// Subscribes to `pattern` with a handler for its `PMessage`s; see
    /// [`subscribe_with`](PubSub::subscribe_with).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::sync::mpsc;
    /// use std::sync::Mutex;
    /// use fanout::{Broker, Message};
    ///
    /// let broker = Broker::<str>::new();
    /// let sub = broker.pubsub();
    /// let (tx, rx) = mpsc::channel();
    /// let tx = Mutex::new(tx);
    /// sub.psubscribe_with("news.*", move |m: Message<str>| {
    ///     tx.lock().unwrap().send(m.channel().unwrap().to_string()).unwrap();
    /// });
    /// let worker = sub.run_in_thread().unwrap();
    /// broker.publish("news.rust", "out");
    /// assert_eq!(rx.recv().unwrap(), "news.rust");
    /// drop(worker);
    /// ```
    pub fn psubscribe_with<F>(&self, pattern: &str, handler: F)
    where
        F: Fn(Message<T>) + Send + Sync + 'static,
    {
        self.subscribe_each(Kind::Pattern, [pattern], Some(Arc::new(handler)));
    }

    /// Closes the handle, like redis-py's `close()`: every subscription goes at once, without
    /// confirmations, and the queue ends after what it already holds, so a `listen()` blocked
    /// in another thread yields the rest and ends. Publishers waiting for this handle's room
    /// are released.
    ///
    /// Later (un)subscriptions do nothing and queue nothing; [`is_closed`](PubSub::is_closed)
    /// tells. Closing twice is harmless.
    ///
    /// # Examples
    ///
    /// ```
    /// use fanout::{Broker, Disconnected};
    ///
    /// let broker = Broker::<str>::new();
    /// let sub = broker.pubsub();
    /// sub.subscribe(["a"]);
    /// std::thread::scope(|s| {
    ///     let listener = s.spawn(|| sub.listen().count());
    ///     broker.publish("a", "last words");
    ///     sub.close();
    ///     assert_eq!(listener.join().unwrap(), 2); // the confirmation and the message
    /// });
    /// assert_eq!(broker.publish("a", "too late"), 0);
    /// assert_eq!(sub.stats().disconnected, Some(Disconnected::Closed));
    /// ```
    pub fn close(&self) {
        self.owner.close();
    }

    /// Whether the handle was closed, disconnected by its overflow policy, or belongs to a
    /// closed broker: it then has no subscriptions and takes no new ones. While a close runs
    /// on another thread this may turn true a moment before the queue ends; what was queued
    /// is still read, and [`recv_timeout`](PubSub::recv_timeout) says `Closed` once it has.
    ///
    /// # Examples
    ///
    /// ```
    /// use fanout::{Broker, Overflow};
    ///
    /// let broker = Broker::<str>::new();
    /// let sub = broker.pubsub_builder().capacity(1).overflow(Overflow::Disconnect).build();
    /// sub.subscribe("a");
    /// assert!(!sub.is_closed());
    /// broker.publish("a", "1");
    /// broker.publish("a", "2"); // the queue is full: disconnected
    /// assert!(sub.is_closed());
    /// sub.subscribe("b"); // takes no new subscriptions
    /// assert!(!sub.is_subscribed());
    /// ```
    pub fn is_closed(&self) -> bool {
        self.disconnected().is_some()
    }

    /// Takes the next queued message, waiting at most `timeout` for one to arrive.
    ///
    /// `Duration::ZERO` polls without waiting. Returns `None` when nothing for the caller
    /// arrived in time (deliveries to handlers and ignored confirmations are skipped), or at
    /// once when the handle has ended; [`recv_timeout`](PubSub::recv_timeout) tells the two
    /// apart.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use fanout::Broker;
    ///
    /// let broker = Broker::<str>::new();
    /// let sub = broker.pubsub();
    /// sub.subscribe("a");
    /// assert_eq!(sub.get_message(Duration::ZERO).unwrap().kind(), "subscribe");
    /// assert_eq!(sub.get_message(Duration::ZERO), None); // nothing queued: at once
    /// std::thread::scope(|s| {
    ///     s.spawn(|| broker.publish("a", "later"));
    ///     let message = sub.get_message(Duration::from_secs(10)).unwrap(); // waits for it
    ///     assert_eq!(message.data(), Some("later"));
    /// });
    /// ```
    pub fn get_message(&self, timeout: Duration) -> Option<Message<T>> {
        self.next(Wait::at_most(timeout)).ok()
    }

    /// Takes the next message like [`get_message`](PubSub::get_message), telling a timeout
    /// from a handle that has ended, as crossbeam's `recv_timeout` does.
    ///
    /// # Errors
    ///
    /// [`RecvTimeoutError::Timeout`] when nothing arrived in time (the handle is still
    /// open); [`RecvTimeoutError::Closed`] once the handle is closed or disconnected and
    /// everything it had queued was read, with the reason.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use fanout::{Broker, Disconnected, RecvTimeoutError};
    ///
    /// let broker = Broker::<str>::new();
    /// let sub = broker.pubsub_builder().ignore_subscribe_messages(true).build();
    /// sub.subscribe("jobs");
    /// assert_eq!(sub.recv_timeout(Duration::ZERO), Err(RecvTimeoutError::Timeout));
    /// broker.publish("jobs", "last");
    /// sub.close();
    /// assert_eq!(sub.recv_timeout(Duration::ZERO).unwrap().data(), Some("last"));
    /// assert_eq!(
    ///     sub.recv_timeout(Duration::from_secs(60)), // returns at once
    ///     Err(RecvTimeoutError::Closed(Disconnected::Closed))
    /// );
    /// ```
    pub fn recv_timeout(&self, timeout: Duration) -> Result<Message<T>, RecvTimeoutError> {
        self.next(Wait::at_most(timeout))
            .map_err(|nothing| match nothing {
                Nothing::Empty => RecvTimeoutError::Timeout,
                // The queue ends only once the handle was detached, with a reason.
                Nothing::Ended => {
                    RecvTimeoutError::Closed(self.disconnected().unwrap_or(Disconnected::Closed))
                }
            })
    }

    /// A blocking iterator over the queue, like redis-py's `listen()`.
    ///
    /// Each `next` waits for a message while the handle has subscriptions. The iterator ends
    /// once the handle has none left and nothing is queued: after the last `Unsubscribe`
    /// confirmation, or at once for a handle that never subscribed. Calling `listen` again
    /// after a later `subscribe` starts a new loop.
    ///
    /// # Examples
    ///
    /// ```
    /// use fanout::Broker;
    ///
    /// let broker = Broker::<str>::new();
    /// let sub = broker.pubsub();
    /// sub.subscribe(["jobs"]);
    ///
    /// std::thread::scope(|s| {
    ///     s.spawn(|| {
    ///         broker.publish("jobs", "one");
    ///         broker.publish("jobs", "two");
    ///     })
    ///     .join()
    ///     .unwrap();
    ///     let mut seen = Vec::new();
    ///     for message in sub.listen() {
    ///         if let Some(payload) = message.payload() {
    ///             seen.push(payload.to_string());
    ///             if seen.len() == 2 {
    ///                 sub.unsubscribe(["jobs"]); // the loop ends after this confirmation
    ///             }
    ///         }
    ///     }
    ///     assert_eq!(seen, ["one", "two"]);
    /// });
    /// ```
    pub fn listen(&self) -> impl Iterator<Item = Message<T>> + '_ {
        std::iter::from_fn(move || loop {
            // Checked again after every skipped item: see "the listen-end check" (`handle/read.rs`).
            let mut handler = None;
            let message = self.subscriber().read_while_subscribed(&mut handler).ok()?;
            if let Some(message) = self.subscriber().for_reader(message, handler) {
                return Some(message);
            }
        })
    }

    /// A blocking iterator like [`listen`](PubSub::listen) that does not end when the last
    /// subscription goes: it waits for later ones, and ends only once the handle is closed
    /// (by `close`, [`Broker::close`](crate::Broker::close) or the drop of the last broker
    /// clone) or disconnected by its overflow policy, after yielding what was queued.
    ///
    /// For long-lived consumers that subscribe and unsubscribe as they go (the trap of
    /// `listen()` ending a task when its last channel is unsubscribed).
    ///
    /// # Examples
    ///
    /// ```
    /// use fanout::Broker;
    ///
    /// let broker = Broker::<str>::new();
    /// let sub = broker.pubsub_builder().ignore_subscribe_messages(true).build();
    /// std::thread::scope(|s| {
    ///     let reader = s.spawn(|| {
    ///         let read = sub.listen_forever().map(|m| m.data().unwrap().to_string());
    ///         read.collect::<Vec<_>>()
    ///     });
    ///     for channel in ["a", "b"] {
    ///         sub.subscribe(channel); // one subscription at a time: `listen()` could stop between
    ///         broker.publish(channel, channel);
    ///         sub.unsubscribe(channel);
    ///     }
    ///     sub.close(); // what ends it
    ///     assert_eq!(reader.join().unwrap(), ["a", "b"]);
    /// });
    /// ```
    pub fn listen_forever(&self) -> impl Iterator<Item = Message<T>> + '_ {
        std::iter::from_fn(move || self.next(Wait::Forever).ok())
    }

    /// This handle's messages as an async [`Stream`](futures_core::Stream) (feature `async`),
    /// for any executor: woken exactly when a message arrives, never blocking the thread.
    /// Handlers and `ignore_subscribe_messages` apply as for `get_message`. The stream holds
    /// no borrow of the handle but keeps it alive: a stream returned alone from a function
    /// keeps the subscriptions. It ends once the handle is closed ([`PubSub::close`],
    /// [`MessageStream::close`](crate::MessageStream::close),
    /// [`Broker::close`](crate::Broker::close), the drop of the last broker clone) or
    /// disconnected by its overflow policy, and everything queued was read; it does not end
    /// when the last subscription goes.
    ///
    /// # Examples
    ///
    /// ```
    /// use futures::StreamExt;
    /// use fanout::Broker;
    ///
    /// let broker = Broker::<str>::new();
    /// let sub = broker.pubsub_builder().ignore_subscribe_messages(true).build();
    /// sub.subscribe(["ticks"]);
    /// let mut stream = sub.stream();
    /// broker.publish("ticks", "1");
    /// let first = futures::executor::block_on(stream.next()).unwrap();
    /// assert_eq!(first.data(), Some("1"));
    /// sub.close(); // ends the stream (dropping `sub` would not: the stream holds the handle)
    /// assert!(futures::executor::block_on(stream.next()).is_none());
    /// ```
    #[cfg(feature = "async")]
    #[must_use = "dropping a `MessageStream` lets its handle go (and its subscriptions with it, once the `PubSub` is gone too)"]
    pub fn stream(&self) -> crate::MessageStream<T> {
        crate::MessageStream::new(Arc::clone(&self.owner))
    }

    /// Starts a [`Worker`] thread that gives each delivery to its handler, like redis-py's
    /// `run_in_thread()`; see [`worker`](PubSub::worker) to name it or catch handler panics.
    ///
    /// The worker skips confirmations, and blocks on the queue between messages. Notices
    /// ([`Lagged`](Message::Lagged), [`HighWater`](Message::HighWater),
    /// [`Gap`](Message::Gap)) go to the handler set with
    /// [`WorkerBuilder::on_notice`] (through [`worker`](PubSub::worker)); this worker has
    /// none, so it counts them in [`Worker::unhandled_notices`]. Every subscription must have a
    /// handler when it starts; a delivery through one made later without a handler is
    /// skipped too (redis-py's worker also drops what `get_message` returns to it), counted
    /// in [`Worker::unhandled`] and in the handle's `stats().delivered` like any other.
    ///
    /// Keep the returned [`Worker`]: dropping it stops the thread. A call on its own line is
    /// warned of (`#[must_use]`), and refused where `unused_must_use` is denied:
    ///
    /// ```compile_fail
    /// #![deny(unused_must_use)]
    /// let broker = fanout::Broker::<str>::new();
    /// let sub = broker.pubsub();
    /// sub.subscribe_with("jobs", |_| {});
    /// sub.run_in_thread().unwrap(); // error: unused `Worker` that must be used
    /// ```
    ///
    /// ```
    /// #![deny(unused_must_use)]
    /// let broker = fanout::Broker::<str>::new();
    /// let sub = broker.pubsub();
    /// sub.subscribe_with("jobs", |_| {});
    /// let _worker = sub.run_in_thread().unwrap(); // runs until `_worker` goes
    /// ```
    ///
    /// # Errors
    ///
    /// [`WorkerError::NoHandler`] when a subscription has no handler, naming it.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::sync::mpsc;
    /// use fanout::{Broker, Message};
    ///
    /// let broker = Broker::<str>::new();
    /// let sub = broker.pubsub();
    /// let (tx, rx) = mpsc::channel();
    /// let tx = std::sync::Mutex::new(tx);
    /// sub.subscribe_with("jobs", move |m: Message<str>| {
    ///     tx.lock().unwrap().send(m.payload().unwrap().to_string()).unwrap();
    /// });
    /// let worker = sub.run_in_thread().unwrap();
    /// broker.publish("jobs", "build");
    /// assert_eq!(rx.recv().unwrap(), "build");
    /// worker.stop();
    /// worker.join().unwrap();
    /// ```
    #[must_use = "dropping a `Worker` stops its thread: keep it for as long as it should run, or `join` it"]
    pub fn run_in_thread(&self) -> Result<Worker, WorkerError>
    where
        T: Send + Sync + 'static,
    {
        self.worker().spawn()
    }

    /// Starts setting up a [`Worker`]: a thread name, a panic handler.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::sync::mpsc;
    /// use std::sync::Mutex;
    /// use fanout::{Broker, Message};
    ///
    /// let broker = Broker::<str>::new();
    /// let sub = broker.pubsub();
    /// let (tx, rx) = mpsc::channel();
    /// let tx = Mutex::new(tx);
    /// sub.subscribe_with("jobs", move |_: Message<str>| {
    ///     let thread = std::thread::current().name().map(str::to_owned);
    ///     tx.lock().unwrap().send(thread).unwrap();
    /// });
    /// let worker = sub.worker().name("jobs-worker").spawn().unwrap();
    /// broker.publish("jobs", "build");
    /// assert_eq!(rx.recv().unwrap().as_deref(), Some("jobs-worker"));
    /// worker.stop();
    /// ```
    #[must_use = "a builder does nothing until `spawn`"]
    pub fn worker(&self) -> WorkerBuilder<T>
    where
        T: Send + Sync + 'static,
    {
        WorkerBuilder::new(Arc::clone(&self.owner))
    }

    /// Whether the handle is subscribed, as redis-py's `subscribed` says: true from a
    /// subscription on, and after the last unsubscription until the handle has read the
    /// confirmation that brought its count to 0 (with `ignore_subscribe_messages`, until a
    /// read has passed over it), which is also when [`listen`](PubSub::listen) ends. False
    /// once the handle is closed. [`subscriptions`](PubSub::subscriptions) is the live count.
    ///
    /// An item taken straight from [`receiver`](PubSub::receiver) is lost to the handle: if
    /// it was that confirmation, this turns false only once the queue is empty.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use fanout::Broker;
    ///
    /// let broker = Broker::<str>::new();
    /// let sub = broker.pubsub();
    /// assert!(!sub.is_subscribed());
    /// sub.psubscribe("a*");
    /// assert!(sub.is_subscribed()); // a pattern counts too
    /// sub.punsubscribe("a*");
    /// assert_eq!(sub.subscriptions(), 0);
    /// assert!(sub.is_subscribed()); // until the confirmation is read
    /// let read: Vec<_> = std::iter::from_fn(|| sub.get_message(Duration::ZERO)).collect();
    /// assert_eq!(read.last().unwrap().kind(), "punsubscribe");
    /// assert!(!sub.is_subscribed());
    /// ```
    pub fn is_subscribed(&self) -> bool {
        let subscriber = self.subscriber();
        if !subscriber.is_open() {
            return false;
        }
        if subscriber.subscriptions() > 0 {
            return true;
        }
        let end_unread = subscriber.names().end_unread();
        end_unread && subscriber.queue().len() > 0
    }

    /// The handle's channels plus patterns: the count its last confirmation carried, or 0
    /// once the handle is closed (closing removes them without confirmations).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use fanout::Broker;
    ///
    /// let broker = Broker::<str>::new();
    /// let sub = broker.pubsub();
    /// sub.subscribe(["a", "b", "a"]); // "a" again: unchanged
    /// sub.psubscribe("c*");
    /// assert_eq!(sub.subscriptions(), 3);
    /// let last = std::iter::from_fn(|| sub.get_message(Duration::ZERO)).last().unwrap();
    /// assert_eq!(last.count(), Some(3));
    /// ```
    pub fn subscriptions(&self) -> usize {
        self.subscriber().subscriptions()
    }

    /// The channels this handle subscribes to, in the order they were subscribed (redis-py's
    /// `p.channels`).
    ///
    /// # Examples
    ///
    /// ```
    /// use fanout::Broker;
    ///
    /// let broker = Broker::<str>::new();
    /// let sub = broker.pubsub();
    /// sub.subscribe(["b", "a"]);
    /// sub.psubscribe("news.*");
    /// sub.unsubscribe("b");
    /// assert_eq!(sub.channels(), ["a"]);
    /// assert_eq!(sub.patterns(), ["news.*"]);
    /// ```
    pub fn channels(&self) -> Vec<String> {
        self.names_of(Kind::Channel)
    }

    /// The patterns this handle subscribes to, in the order they were subscribed (redis-py's
    /// `p.patterns`); see [`channels`](PubSub::channels).
    ///
    /// # Examples
    ///
    /// ```
    /// use fanout::Broker;
    ///
    /// let broker = Broker::<str>::new();
    /// let sub = broker.pubsub();
    /// sub.psubscribe(["b*", "a*", "b*"]);
    /// sub.subscribe("c"); // a channel, not a pattern
    /// assert_eq!(sub.patterns(), ["b*", "a*"]); // in subscription order, each once
    /// sub.punsubscribe("b*");
    /// assert_eq!(sub.patterns(), ["a*"]);
    /// ```
    pub fn patterns(&self) -> Vec<String> {
        self.names_of(Kind::Pattern)
    }

    fn names_of(&self, kind: Kind) -> Vec<String> {
        let names = self.subscriber().names().in_order(kind);
        names.iter().map(|name| name.to_string()).collect()
    }

    /// The receiving end of this handle's queue, to wait on it beside other handles and
    /// channels with [`crossbeam_channel::Select`].
    ///
    /// The recipe: register it with [`Select::recv`](crate::Select::recv), wait with
    /// [`Select::ready`](crate::Select::ready) (or `ready_timeout`), and when it reports this
    /// handle, read with
    /// [`get_message(Duration::ZERO)`](PubSub::get_message) until it returns `None`, then
    /// wait again. `get_message` returns exactly what it always does (names, handlers, ignored
    /// confirmations, `Lagged` notices, the order around `DropOldest` evictions); read until
    /// `None`, because a notice of deliveries dropped while the queue was full is handed out once
    /// the queue is empty, and only a read finds it there. [`Select::ready`](crate::Select::ready)
    /// also reports the handle once its queue has ended (closed, disconnected), and `get_message`
    /// then returns `None` for good: [`is_closed`](PubSub::is_closed) tells.
    ///
    /// A handle of capacity 0 (a rendezvous) queues a delivery only while a reader waits in
    /// `get_message`, `listen`, a worker or a stream; a thread in
    /// [`Select::ready`](crate::Select::ready) is not such a reader, so nothing is ever queued for
    /// it. Give a handle you select on a capacity of at least 1.
    ///
    /// Do not receive from it (`recv`, `select!`'s `recv` arm): its items are opaque
    /// ([`Queued`]) and only the handle can read them, so an item received
    /// straight is taken away from the handle, and makes no room in a bounded queue (a
    /// publisher waiting under `Block` is released by the handle's reads, which count what
    /// leaves the queue).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use crossbeam_channel::Select;
    /// use fanout::Broker;
    ///
    /// let broker = Broker::<str>::new();
    /// let a = broker.pubsub_builder().ignore_subscribe_messages(true).build();
    /// let b = broker.pubsub_builder().ignore_subscribe_messages(true).build();
    /// a.subscribe(["x"]);
    /// b.subscribe(["y"]);
    /// broker.publish("x", "for a");
    /// broker.publish("y", "for b");
    ///
    /// let mut select = Select::new();
    /// let (at_a, at_b) = (select.recv(a.receiver()), select.recv(b.receiver()));
    /// let mut seen = Vec::new();
    /// while seen.len() < 2 {
    ///     let ready = select.ready();
    ///     let handle = if ready == at_a { &a } else { assert_eq!(ready, at_b); &b };
    ///     while let Some(message) = handle.get_message(Duration::ZERO) {
    ///         seen.push(message.payload().unwrap().to_string());
    ///     }
    /// }
    /// seen.sort();
    /// assert_eq!(seen, ["for a", "for b"]);
    /// ```
    pub fn receiver(&self) -> &Receiver<Queued<T>> {
        self.subscriber().queue().receiver()
    }

    /// This handle's id, as [`PublishError::full`](crate::PublishError::full) reports it.
    ///
    /// # Examples
    ///
    /// ```
    /// use fanout::{Broker, Overflow};
    ///
    /// let broker = Broker::<str>::builder().capacity(1).overflow(Overflow::DropNewest).build();
    /// let (a, b) = (broker.pubsub(), broker.pubsub());
    /// assert_ne!(a.id(), b.id());
    /// a.subscribe("x");
    /// broker.publish("x", "fills the queue");
    /// let err = broker.try_publish("x", "refused").unwrap_err();
    /// assert_eq!(err.full(), [a.id()]);
    /// ```
    pub fn id(&self) -> SubscriberId {
        self.subscriber().id()
    }

    /// The most deliveries the queue holds, or `None` when it is unbounded.
    ///
    /// # Examples
    ///
    /// ```
    /// use fanout::Broker;
    ///
    /// let broker = Broker::<str>::builder().capacity(64).build();
    /// assert_eq!(broker.pubsub().capacity(), Some(64));
    /// assert_eq!(broker.pubsub_builder().capacity(8).build().capacity(), Some(8));
    /// assert_eq!(broker.pubsub_builder().unbounded().build().capacity(), None);
    /// ```
    pub fn capacity(&self) -> Option<usize> {
        self.subscriber().queue().bound().map(Bound::capacity)
    }

    /// The high-water mark in effect ([`PubSubBuilder::high_water`]), or `None` when none
    /// is (unbounded, a rendezvous, or not asked for).
    ///
    /// # Examples
    ///
    /// ```
    /// use fanout::Broker;
    ///
    /// let broker = Broker::<str>::new();
    /// assert_eq!(broker.pubsub_builder().capacity(8).high_water(100).build().high_water(), Some(8));
    /// assert_eq!(broker.pubsub_builder().high_water(100).build().high_water(), None);
    /// ```
    ///
    /// [`PubSubBuilder::high_water`]: crate::PubSubBuilder::high_water
    pub fn high_water(&self) -> Option<usize> {
        self.subscriber()
            .queue()
            .bound()
            .and_then(Bound::high_water)
    }

    /// What a full queue does, or `None` when it is unbounded.
    ///
    /// # Examples
    ///
    /// ```
    /// use fanout::{Broker, Overflow};
    ///
    /// let broker = Broker::<str>::new();
    /// assert_eq!(broker.pubsub().overflow(), None); // unbounded
    /// let bounded = broker.pubsub_builder().capacity(8).build();
    /// assert_eq!(bounded.overflow(), Some(Overflow::Block)); // the default once bounded
    /// let policy_only = broker.pubsub_builder().overflow(Overflow::DropOldest).build();
    /// assert_eq!(policy_only.overflow(), None); // still unbounded
    /// ```
    pub fn overflow(&self) -> Option<Overflow> {
        self.subscriber().queue().bound().map(Bound::overflow)
    }

    /// This handle's counters: what is queued now, delivered, dropped, lag notices, and why
    /// it stopped if it did.
    ///
    /// # Examples
    ///
    /// ```
    /// use fanout::{Broker, Message, Overflow};
    ///
    /// let broker = Broker::<str>::new();
    /// let sub = broker.pubsub_builder().capacity(2).overflow(Overflow::DropNewest).build();
    /// sub.subscribe(["ticks"]);
    /// for tick in ["1", "2", "3", "4"] {
    ///     broker.publish("ticks", tick);
    /// }
    /// let stats = sub.stats();
    /// assert_eq!((stats.delivered, stats.dropped, stats.queued), (2, 2, 3));
    ///
    /// let kinds: Vec<_> = sub.listen().take(4).map(|m| m.kind()).collect();
    /// assert_eq!(kinds, ["subscribe", "message", "message", "lagged"]);
    /// assert_eq!(sub.stats().lagged, 1);
    /// ```
    pub fn stats(&self) -> PubSubStats {
        let handle = self.subscriber();
        let counters = handle.counters();
        let counted = |counter: &std::sync::atomic::AtomicU64| {
            counter.load(std::sync::atomic::Ordering::Relaxed)
        };
        PubSubStats {
            queued: handle.queue().len(),
            delivered: counted(&counters.delivered),
            dropped: counted(&counters.dropped),
            lagged: counted(&counters.lagged),
            peak_queued: handle.queue().bound().map_or(0, Bound::peak),
            high_water: counted(&counters.warnings),
            disconnected: self.disconnected(),
        }
    }

    fn disconnected(&self) -> Option<Disconnected> {
        self.subscriber().disconnected()
    }

    /// The next message for the caller, or why there is none.
    #[inline]
    fn next(&self, wait: Wait) -> Result<Message<T>, Nothing> {
        self.subscriber().next_for_reader(wait)
    }

    /// Subscribes to each of `names`, with `handler` for each if given (replacing the one a
    /// name already subscribed has).
    fn subscribe_each<I>(&self, kind: Kind, names: I, handler: Option<Handler<T>>)
    where
        I: IntoNames,
    {
        self.registry()
            .in_order(|| self.subscribe_each_now(kind, names, handler));
    }

    fn subscribe_each_now<I>(&self, kind: Kind, names: I, handler: Option<Handler<T>>)
    where
        I: IntoNames,
    {
        let subscriber = self.subscriber();
        let (mut woken, mut stopped) = (Woken::default(), None);
        // Handlers replaced, dropped once no lock is held (one may hold a handle).
        let mut replaced = Vec::new();
        let mut calls = subscriber.calls();
        for name in names.into_names() {
            let Some(sender) = self.open_sender(&mut calls, &mut stopped) else {
                break;
            };
            let name = name.as_ref();
            let (known, count) = {
                let mut names = subscriber.names();
                let known = names.lookup(kind, name);
                if let (Some((_, id)), Some(handler)) = (&known, &handler) {
                    replaced.extend(names.set_handler(*id, handler.clone()));
                }
                (known, names.count())
            };
            if let Some((known, _)) = known {
                let confirm = confirmation(kind, true, known, count);
                subscriber.send_control(&sender, Item::control(confirm), &mut woken);
                continue;
            }
            let count = count + 1;
            let added = self.registry().index().add(
                kind,
                name,
                subscriber,
                &sender,
                |shared| {
                    let id = subscriber
                        .names()
                        .claim(kind, shared.clone(), handler.clone());
                    let confirm = confirmation(kind, true, shared.clone(), count);
                    (id, Item::control(confirm))
                },
                &mut woken,
            );
            if added.is_none() {
                // Closed meanwhile: the handle stops, as it would at its next call.
                let reason = Disconnected::BrokerClosed;
                stopped = Some(
                    self.registry()
                        .detach_locked(subscriber, &mut calls, reason),
                );
                break;
            }
            subscriber.set_subscriptions(count);
        }
        drop(calls);
        wake(woken, stopped);
        drop(replaced);
    }

    fn unsubscribe_each<I>(&self, kind: Kind, names: I)
    where
        I: IntoNames,
    {
        self.registry()
            .in_order_leaving(self.subscriber(), || self.unsubscribe_each_now(kind, names));
    }

    fn unsubscribe_each_now<I>(&self, kind: Kind, names: I)
    where
        I: IntoNames,
    {
        let (mut woken, mut stopped) = (Woken::default(), None);
        let mut calls = self.subscriber().calls();
        for name in names.into_names() {
            self.unsubscribe_one(&mut calls, kind, name.as_ref(), &mut woken, &mut stopped);
        }
        drop(calls);
        // Publishers waiting for this handle's room re-check their subscription.
        self.subscriber().wake_publishers();
        wake(woken, stopped);
    }

    fn unsubscribe_every(&self, kind: Kind) {
        self.registry()
            .in_order_leaving(self.subscriber(), || self.unsubscribe_every_now(kind));
    }

    fn unsubscribe_every_now(&self, kind: Kind) {
        let (mut woken, mut stopped) = (Woken::default(), None);
        let mut calls = self.subscriber().calls();
        let subscribed = self.subscriber().names().in_order(kind);
        for name in subscribed {
            self.unsubscribe_one(&mut calls, kind, &name, &mut woken, &mut stopped);
        }
        drop(calls);
        self.subscriber().wake_publishers();
        wake(woken, stopped);
    }

    /// The sender for confirmations, or `None` once the handle or its broker is closed (the
    /// handle is then detached, if it was not yet, and `stopped` says whom to wake once the
    /// caller lets go of `calls`): (un)subscribing does nothing then.
    fn open_sender<'a>(
        &'a self,
        calls: &mut Calls<T>,
        stopped: &mut Option<Stopped<'a, T>>,
    ) -> Option<ItemSender<T>> {
        if self.registry().is_closed() && stopped.is_none() {
            let reason = Disconnected::BrokerClosed;
            *stopped = Some(
                self.registry()
                    .detach_locked(self.subscriber(), calls, reason),
            );
        }
        calls.clone()
    }

    fn unsubscribe_one<'a>(
        &'a self,
        calls: &mut Calls<T>,
        kind: Kind,
        name: &str,
        woken: &mut Woken,
        stopped: &mut Option<Stopped<'a, T>>,
    ) {
        let Some(sender) = self.open_sender(calls, stopped) else {
            return;
        };
        let subscriber = self.subscriber();
        let (removed, count) = {
            let mut names = subscriber.names();
            (names.unsubscribe(kind, name), names.count())
        };
        let Some((shared, id)) = removed else {
            let confirm = confirmation(kind, false, Arc::from(name), count);
            subscriber.send_control(&sender, Item::control(confirm), woken);
            return;
        };
        // The last item that names the subscription's slot: a reader frees it (`handle/names.rs`).
        let confirm = Item::Control {
            message: Box::new(confirmation(kind, false, shared.clone(), count)),
            retire: Some(id.slot),
        };
        let index = self.registry().index();
        index.remove(kind, &shared, subscriber, Some((&sender, confirm)), woken);
        subscriber.set_subscriptions(count);
    }
}

/// Wakes what an (un)subscription call woke, once it has let go of every lock.
fn wake<T: ?Sized>(woken: Woken, stopped: Option<Stopped<'_, T>>) {
    if let Some(stopped) = stopped {
        stopped.wake();
    }
    woken.wake_all();
}

/// Shows the counts only, so it needs no `T: Debug`.
impl<T: ?Sized> fmt::Debug for PubSub<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PubSub")
            .field("id", &self.id())
            .field("subscriptions", &self.subscriptions())
            .field("queued", &self.subscriber().queue().len())
            .finish()
    }
}
