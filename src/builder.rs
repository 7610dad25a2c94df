//! Builders for a broker's default queue and for one handle's queue.

use std::fmt;
use std::marker::PhantomData;

use crate::broker::Broker;
use crate::pubsub::PubSub;
use crate::queue::{Overflow, QueueConfig};

impl<T: ?Sized> Broker<T> {
    /// Starts a broker whose handles get bounded queues by default; see [`BrokerBuilder`].
    pub fn builder() -> BrokerBuilder<T> {
        BrokerBuilder::new()
    }

    /// Starts a handle with its own queue bound and policy; see [`PubSubBuilder`].
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
    pub fn capacity(mut self, deliveries: usize) -> Self {
        self.config.capacity = Some(deliveries);
        self
    }

    /// What a full queue does; [`Overflow::Block`] unless set. Has no effect on unbounded
    /// queues.
    pub fn overflow(mut self, overflow: Overflow) -> Self {
        self.config.overflow = overflow;
        self
    }

    /// Makes the broker.
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
    pub fn capacity(mut self, deliveries: usize) -> Self {
        self.config.capacity = Some(deliveries);
        self
    }

    /// Makes this handle's queue unbounded, whatever the broker's default.
    pub fn unbounded(mut self) -> Self {
        self.config.capacity = None;
        self
    }

    /// What this handle's full queue does.
    pub fn overflow(mut self, overflow: Overflow) -> Self {
        self.config.overflow = overflow;
        self
    }

    /// Skips confirmations when reading (redis-py's `ignore_subscribe_messages=True`):
    /// `get_message` and `listen` yield deliveries and `Lagged` notices only. A
    /// [`Worker`](crate::Worker) always skips them.
    pub fn ignore_subscribe_messages(mut self, ignore: bool) -> Self {
        self.config.ignore_confirmations = ignore;
        self
    }

    /// Makes the handle.
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
