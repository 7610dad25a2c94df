//! Errors: what a publish that could not reach every subscriber gives back, why a read or a
//! subscription found the handle ended, and how a worker ended.

use std::fmt;
use std::sync::Arc;

use crate::handle::SubscriberId;
use crate::stats::Disconnected;

/// Some subscribers did not get a message from [`Broker::try_publish`](crate::Broker::try_publish)
/// or [`Broker::publish_timeout`](crate::Broker::publish_timeout) because their queue was full.
///
/// The others got it, and [`delivered`](PublishError::delivered) counts them. The payload
/// comes back with [`into_inner`](PublishError::into_inner), to retry or log; each handle that
/// missed it gets a [`Message::Lagged`](crate::Message::Lagged) notice, or, under
/// [`Overflow::Disconnect`](crate::Overflow::Disconnect), is disconnected.
pub struct PublishError<T: ?Sized> {
    pub(crate) delivered: usize,
    pub(crate) full: Vec<SubscriberId>,
    pub(crate) backlog_full: bool,
    pub(crate) payload: Arc<T>,
}

impl<T: ?Sized> PublishError<T> {
    /// Deliveries that were queued, as `publish` would have returned.
    ///
    /// # Examples
    ///
    /// ```
    /// use fanout::{Broker, Overflow};
    ///
    /// let broker = Broker::<str>::new();
    /// let slow = broker.pubsub_builder().capacity(1).overflow(Overflow::DropNewest).build();
    /// let fast = broker.pubsub();
    /// slow.subscribe("a");
    /// fast.subscribe("a");
    /// assert_eq!(broker.try_publish("a", "1").unwrap(), 2);
    /// let err = broker.try_publish("a", "2").unwrap_err(); // `slow` is full
    /// assert_eq!(err.delivered(), 1); // `fast` got it
    /// ```
    pub fn delivered(&self) -> usize {
        self.delivered
    }

    /// The handles whose queue was full, each once, by ascending id (see
    /// [`PubSub::id`](crate::PubSub::id)).
    ///
    /// # Examples
    ///
    /// ```
    /// use fanout::{Broker, Overflow};
    ///
    /// // Capacity 0 is a rendezvous: with no reader waiting, every queue is full.
    /// let broker = Broker::<str>::builder().capacity(0).overflow(Overflow::DropNewest).build();
    /// let (a, b) = (broker.pubsub(), broker.pubsub());
    /// a.subscribe("x");
    /// a.psubscribe("x*"); // a second delivery to `a`: still listed once
    /// b.subscribe("x");
    /// let err = broker.try_publish("x", "nobody reads").unwrap_err();
    /// let mut ids = [a.id(), b.id()];
    /// ids.sort();
    /// assert_eq!(err.full(), ids);
    /// ```
    pub fn full(&self) -> &[SubscriberId] {
        &self.full
    }

    /// Whether the broker's Redis [`Bridge`] (feature `redis`) had no room in
    /// its backlog of publishes waiting for Redis, so the message did not go out.
    ///
    /// # Examples
    ///
    /// ```
    /// use fanout::{Broker, Overflow};
    ///
    /// let broker = Broker::<str>::builder().capacity(1).overflow(Overflow::DropNewest).build();
    /// let sub = broker.pubsub();
    /// sub.subscribe("x");
    /// broker.publish("x", "fills the queue");
    /// let err = broker.try_publish("x", "refused").unwrap_err();
    /// assert!(!err.backlog_full()); // a handle's queue was full; there is no bridge
    /// assert_eq!(err.full(), [sub.id()]);
    /// ```
    ///
    #[cfg_attr(feature = "redis", doc = "[`Bridge`]: crate::Bridge")]
    #[cfg_attr(
        not(feature = "redis"),
        doc = "[`Bridge`]: https://docs.rs/fanout/latest/fanout/struct.Bridge.html"
    )]
    pub fn backlog_full(&self) -> bool {
        self.backlog_full
    }

    /// The payload, given back.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::sync::Arc;
    /// use fanout::{Broker, Overflow};
    ///
    /// let broker = Broker::<str>::builder().capacity(1).overflow(Overflow::Block).build();
    /// let sub = broker.pubsub();
    /// sub.subscribe("jobs");
    /// broker.publish("jobs", "first");
    /// let payload: Arc<str> = Arc::from("retry me");
    /// let err = broker.try_publish("jobs", payload.clone()).unwrap_err();
    /// assert!(Arc::ptr_eq(&err.into_inner(), &payload)); // the same `Arc`, not a copy
    /// ```
    pub fn into_inner(self) -> Arc<T> {
        self.payload
    }
}

/// Shows the counts only, so it needs no `T: Debug`.
impl<T: ?Sized> fmt::Debug for PublishError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PublishError")
            .field("delivered", &self.delivered)
            .field("full", &self.full)
            .field("backlog_full", &self.backlog_full)
            .finish_non_exhaustive()
    }
}

impl<T: ?Sized> fmt::Display for PublishError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} subscriber queue(s) full (delivered to {})",
            self.full.len(),
            self.delivered
        )?;
        if self.backlog_full {
            f.write_str("; the Redis bridge's backlog was full")?;
        }
        Ok(())
    }
}

impl<T: ?Sized> std::error::Error for PublishError<T> {}

/// A handler panicked while a [`Worker`](crate::Worker) ran it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HandlerPanic {
    /// The channel of the message being handled.
    pub channel: String,
    /// The panic's message (its `&str` or `String` payload).
    pub message: String,
}

impl fmt::Display for HandlerPanic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "handler for channel {:?} panicked: {}",
            self.channel, self.message
        )
    }
}

/// Why a [`Worker`](crate::Worker) did not start, or how it ended.
#[derive(Debug)]
#[non_exhaustive]
pub enum WorkerError {
    /// A subscription has no handler (redis-py: "Channel: '…' has no handler registered").
    NoHandler {
        /// Whether the subscription is a pattern.
        pattern: bool,
        /// The channel or pattern.
        name: String,
    },
    /// A handler panicked and no panic handler was set: the worker stopped there.
    Panicked(HandlerPanic),
    /// The panic handler ([`WorkerBuilder::on_panic`](crate::WorkerBuilder::on_panic))
    /// panicked while handling a handler's panic: the worker stopped there. Holds the channel
    /// of the message being handled and the panic handler's own panic message.
    PanicHandlerPanicked(HandlerPanic),
    /// The thread could not be started.
    Spawn(std::io::Error),
}

impl fmt::Display for WorkerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            WorkerError::NoHandler {
                pattern: false,
                name,
            } => write!(f, "channel {name:?} has no handler registered"),
            WorkerError::NoHandler {
                pattern: true,
                name,
            } => write!(f, "pattern {name:?} has no handler registered"),
            WorkerError::Panicked(panic) => panic.fmt(f),
            WorkerError::PanicHandlerPanicked(panic) => write!(
                f,
                "the panic handler panicked on channel {:?}: {}",
                panic.channel, panic.message
            ),
            WorkerError::Spawn(e) => write!(f, "worker thread could not start: {e}"),
        }
    }
}

impl std::error::Error for WorkerError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            WorkerError::Spawn(e) => Some(e),
            _ => None,
        }
    }
}

/// Why [`PubSub::recv_timeout`](crate::PubSub::recv_timeout) returned no message, as
/// crossbeam's [`RecvTimeoutError`] tells a timeout from a disconnected channel.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RecvTimeoutError {
    /// Nothing arrived in time, and the handle's queue has not ended. A close under way on
    /// another thread ([`Broker::close`](crate::Broker::close), an overflow disconnection) may
    /// already show in [`PubSub::is_closed`](crate::PubSub::is_closed) and still end the queue
    /// a moment later: to drain a handle, read until [`Closed`](RecvTimeoutError::Closed).
    Timeout,
    /// The handle is closed or disconnected, and everything it had queued was read: no
    /// message will come again.
    Closed(Disconnected),
}

impl fmt::Display for RecvTimeoutError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RecvTimeoutError::Timeout => f.write_str("timed out waiting for a message"),
            RecvTimeoutError::Closed(reason) => write!(f, "the handle ended: {reason}"),
        }
    }
}

impl std::error::Error for RecvTimeoutError {}

/// A subscription asked of a handle that no longer takes any: it was closed, disconnected by
/// its overflow policy, or its broker was closed. From
/// [`PubSub::try_subscribe`](crate::PubSub::try_subscribe) and
/// [`try_psubscribe`](crate::PubSub::try_psubscribe).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct HandleClosed(pub Disconnected);

impl fmt::Display for HandleClosed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "the handle takes no subscriptions: {}", self.0)
    }
}

impl std::error::Error for HandleClosed {}
