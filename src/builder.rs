//! Builders for a broker's default queue and for one handle's queue.

use std::fmt;
use std::marker::PhantomData;

use crate::broker::Broker;
use crate::pubsub::PubSub;
use crate::queue::{Overflow, QueueConfig};

impl<T: ?Sized> Broker<T> {
    /// Starts a broker whose handles get bounded queues by default; see [`BrokerBuilder`].
    ///
    /// # Examples
    ///
    /// ```
    /// use fanout::{Broker, Overflow};
    ///
    /// let broker = Broker::<str>::builder().capacity(16).build();
    /// let sub = broker.pubsub();
    /// assert_eq!((sub.capacity(), sub.overflow()), (Some(16), Some(Overflow::Block)));
    /// ```
    pub fn builder() -> BrokerBuilder<T> {
        BrokerBuilder::new()
    }

    /// Starts a handle with its own queue bound and policy; see [`PubSubBuilder`].
    ///
    /// # Examples
    ///
    /// ```
    /// use fanout::{Broker, Overflow};
    ///
    /// let broker = Broker::<str>::builder().capacity(16).overflow(Overflow::DropOldest).build();
    /// let own = broker.pubsub_builder().capacity(2).build(); // from the broker's defaults
    /// assert_eq!((own.capacity(), own.overflow()), (Some(2), Some(Overflow::DropOldest)));
    /// assert_eq!(broker.pubsub().capacity(), Some(16)); // the others keep them
    /// ```
    pub fn pubsub_builder(&self) -> PubSubBuilder<'_, T> {
        PubSubBuilder::new(self, self.defaults())
    }
}

/// Sets up a [`Broker`]: the queue every handle gets unless its own builder says otherwise.
///
/// # Examples
///
/// ```
/// use fanout::{Broker, Overflow};
///
/// let broker = Broker::<[u8]>::builder()
///     .capacity(1024) // deliveries per handle; unbounded if unset
///     .overflow(Overflow::DropOldest)
///     .build();
/// let sub = broker.pubsub();
/// assert_eq!((sub.capacity(), sub.overflow()), (Some(1024), Some(Overflow::DropOldest)));
/// ```
pub struct BrokerBuilder<T: ?Sized> {
    config: QueueConfig,
    payload: PhantomData<fn(Box<T>)>,
}

impl<T: ?Sized> BrokerBuilder<T> {
    pub(crate) fn new() -> Self {
        BrokerBuilder {
            config: QueueConfig::default(),
            payload: PhantomData,
        }
    }

    /// Bounds each handle's queue to `deliveries` messages (confirmations and notices are not
    /// counted). `0` makes a rendezvous: a delivery is queued only while a reader waits for
    /// one (in `get_message`, `listen`, a [`Worker`](crate::Worker) blocked on the queue, or
    /// a stream that returned `Pending`), and the overflow policy applies otherwise.
    ///
    /// # Examples
    ///
    /// ```
    /// use fanout::{Broker, Overflow};
    ///
    /// let broker = Broker::<str>::builder().capacity(1).overflow(Overflow::DropNewest).build();
    /// let sub = broker.pubsub();
    /// sub.subscribe("a"); // a confirmation: not counted against the bound
    /// assert_eq!(broker.publish("a", "1"), 1);
    /// assert_eq!(broker.publish("a", "2"), 0); // the queue is full
    /// assert_eq!(sub.stats().dropped, 1);
    /// ```
    pub fn capacity(mut self, deliveries: usize) -> Self {
        self.config.capacity = Some(deliveries);
        self
    }

    /// What a full queue does; [`Overflow::Block`] unless set. Has no effect on unbounded
    /// queues.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use fanout::{Broker, Message, Overflow};
    ///
    /// let broker = Broker::<str>::builder().capacity(2).overflow(Overflow::DropOldest).build();
    /// let sub = broker.pubsub_builder().ignore_subscribe_messages(true).build();
    /// sub.subscribe("ticks");
    /// for tick in ["1", "2", "3"] {
    ///     assert_eq!(broker.publish("ticks", tick), 1); // "3" makes room by evicting "1"
    /// }
    /// assert_eq!(sub.get_message(Duration::ZERO), Some(Message::Lagged { missed: 1 }));
    /// assert_eq!(sub.get_message(Duration::ZERO).unwrap().data(), Some("2"));
    /// ```
    pub fn overflow(mut self, overflow: Overflow) -> Self {
        self.config.overflow = overflow;
        self
    }

    /// Makes the broker.
    ///
    /// # Examples
    ///
    /// ```
    /// use fanout::Broker;
    ///
    /// let broker: Broker<str> = Broker::builder().capacity(8).build();
    /// let sub = broker.pubsub();
    /// sub.subscribe("a");
    /// assert_eq!(broker.publish("a", "x"), 1);
    /// assert_eq!(sub.capacity(), Some(8));
    /// assert_eq!(Broker::<str>::builder().build().pubsub().capacity(), None); // as `new()`
    /// ```
    pub fn build(self) -> Broker<T> {
        Broker::with_config(self.config)
    }
}

impl<T: ?Sized> fmt::Debug for BrokerBuilder<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BrokerBuilder")
            .field("capacity", &self.config.capacity)
            .field("overflow", &self.config.overflow)
            .finish()
    }
}

/// Sets up one [`PubSub`] handle's queue, starting from the broker's defaults.
///
/// # Examples
///
/// ```
/// use fanout::{Broker, Overflow};
///
/// let broker = Broker::<str>::new();
/// let sub = broker.pubsub_builder().capacity(8).overflow(Overflow::Disconnect).build();
/// sub.subscribe(["firehose"]);
/// for i in 0..9 {
///     broker.publish("firehose", i.to_string());
/// }
/// assert!(sub.is_closed()); // the 9th delivery found the queue full
/// assert_eq!(sub.listen().count(), 9); // the confirmation and 8 messages, then the end
/// ```
pub struct PubSubBuilder<'a, T: ?Sized> {
    broker: &'a Broker<T>,
    config: QueueConfig,
}

impl<'a, T: ?Sized> PubSubBuilder<'a, T> {
    pub(crate) fn new(broker: &'a Broker<T>, config: QueueConfig) -> Self {
        PubSubBuilder { broker, config }
    }

    /// Bounds this handle's queue to `deliveries` messages; see [`BrokerBuilder::capacity`].
    ///
    /// # Examples
    ///
    /// ```
    /// use fanout::{Broker, Overflow};
    ///
    /// let broker = Broker::<str>::new();
    /// let sub = broker.pubsub_builder().capacity(1).overflow(Overflow::DropNewest).build();
    /// sub.subscribe("a");
    /// assert_eq!(broker.publish("a", "1"), 1);
    /// assert_eq!(broker.publish("a", "2"), 0); // full: `sub` will read a Lagged notice
    /// assert_eq!(broker.pubsub().capacity(), None); // other handles keep the default
    /// ```
    pub fn capacity(mut self, deliveries: usize) -> Self {
        self.config.capacity = Some(deliveries);
        self
    }

    /// Makes this handle's queue unbounded, whatever the broker's default.
    ///
    /// # Examples
    ///
    /// ```
    /// use fanout::{Broker, Overflow};
    ///
    /// let broker = Broker::<str>::builder().capacity(1).overflow(Overflow::DropNewest).build();
    /// let sub = broker.pubsub_builder().unbounded().build();
    /// sub.subscribe("a");
    /// for i in 0..100 {
    ///     broker.publish("a", i.to_string());
    /// }
    /// assert_eq!(sub.capacity(), None);
    /// assert_eq!((sub.stats().queued, sub.stats().dropped), (101, 0));
    /// ```
    pub fn unbounded(mut self) -> Self {
        self.config.capacity = None;
        self
    }

    /// What this handle's full queue does.
    ///
    /// # Examples
    ///
    /// ```
    /// use fanout::{Broker, Disconnected, Overflow};
    ///
    /// let broker = Broker::<str>::new();
    /// let sub = broker.pubsub_builder().capacity(1).overflow(Overflow::Disconnect).build();
    /// sub.subscribe("a");
    /// assert_eq!(broker.publish("a", "1"), 1);
    /// assert_eq!(broker.publish("a", "2"), 0); // the queue is full: disconnected
    /// assert_eq!(sub.stats().disconnected, Some(Disconnected::Overflow));
    /// assert_eq!(broker.publish("a", "3"), 0); // no subscriptions left
    /// ```
    pub fn overflow(mut self, overflow: Overflow) -> Self {
        self.config.overflow = overflow;
        self
    }

    /// Skips confirmations when reading (redis-py's `ignore_subscribe_messages=True`):
    /// `get_message` and `listen` yield deliveries and `Lagged` notices only. A
    /// [`Worker`](crate::Worker) always skips them.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use fanout::Broker;
    ///
    /// let broker = Broker::<str>::new();
    /// let sub = broker.pubsub_builder().ignore_subscribe_messages(true).build();
    /// sub.subscribe("a");
    /// broker.publish("a", "hi");
    /// let first = sub.get_message(Duration::ZERO).unwrap(); // the confirmation was skipped
    /// assert_eq!(first.data(), Some("hi"));
    /// assert_eq!(sub.get_message(Duration::ZERO), None);
    /// ```
    pub fn ignore_subscribe_messages(mut self, ignore: bool) -> Self {
        self.config.ignore_confirmations = ignore;
        self
    }

    /// Makes the handle.
    ///
    /// # Examples
    ///
    /// ```
    /// use fanout::{Broker, Overflow};
    ///
    /// let broker = Broker::<str>::builder().capacity(4).build();
    /// let sub = broker.pubsub_builder().build(); // nothing changed: as `pubsub()`
    /// assert_eq!((sub.capacity(), sub.overflow()), (Some(4), Some(Overflow::Block)));
    /// sub.subscribe("a");
    /// assert_eq!(broker.publish("a", "x"), 1);
    /// ```
    pub fn build(self) -> PubSub<T> {
        self.broker.pubsub_with(self.config)
    }
}

impl<T: ?Sized> fmt::Debug for PubSubBuilder<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PubSubBuilder")
            .field("capacity", &self.config.capacity)
            .field("overflow", &self.config.overflow)
            .finish()
    }
}
