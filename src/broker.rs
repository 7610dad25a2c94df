//! The broker handle: publishing and introspection.

use std::fmt;
use std::sync::Arc;

use crate::pubsub::PubSub;
use crate::registry::Registry;

/// A message broker with Redis Pub/Sub semantics, shared by cloning.
///
/// Clones are cheap (one `Arc`) and share one set of subscriptions; the broker is
/// `Send + Sync` for any `T: ?Sized + Send + Sync`. Dropping the last clone while
/// [`PubSub`] handles live keeps them working until they drop.
///
/// # Examples
///
/// ```
/// use fanout::Broker;
///
/// let broker = Broker::<str>::new();
/// let sub = broker.pubsub();
/// sub.subscribe(["channel"]);
/// sub.psubscribe(["chan*"]);
///
/// // One `message` for the channel, one `pmessage` for the pattern: 2 deliveries.
/// assert_eq!(broker.publish("channel", "message"), 2);
/// assert_eq!(broker.publish("nobody", "message"), 0);
/// assert_eq!(broker.channels(None), ["channel"]);
/// assert_eq!((broker.numsub("channel"), broker.numpat()), (1, 1));
/// ```
pub struct Broker<T: ?Sized> {
    registry: Arc<Registry<T>>,
}

impl<T: ?Sized> Broker<T> {
    /// Makes a broker with no subscriptions.
    pub fn new() -> Self {
        Broker {
            registry: Arc::new(Registry::new()),
        }
    }

    /// Delivers `payload` to every subscriber of `channel`, then to every handle subscribed
    /// to a pattern that matches it, and returns the number of deliveries, like Redis's
    /// `PUBLISH` reply.
    ///
    /// Each delivery is one clone of the same `Arc`; the payload is never copied. A handle
    /// subscribed to the channel and to `k` matching patterns receives one `Message` and then
    /// `k` `PMessage`s, and counts `1 + k`. Publishing to a channel nobody listens to returns
    /// 0 and keeps nothing. Queues are unbounded, so `publish` never waits.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::sync::Arc;
    /// use fanout::Broker;
    ///
    /// let broker = Broker::<[u8]>::new();
    /// let sub = broker.pubsub();
    /// sub.subscribe(["bytes"]);
    /// let payload: Arc<[u8]> = Arc::from(&b"shared"[..]);
    /// assert_eq!(broker.publish("bytes", payload.clone()), 1);
    /// let received = sub.listen().nth(1).unwrap(); // after the confirmation
    /// assert!(Arc::ptr_eq(received.payload().unwrap(), &payload));
    /// ```
    pub fn publish(&self, channel: &str, payload: impl Into<Arc<T>>) -> usize {
        self.registry.publish(channel, payload.into())
    }

    /// Makes a new subscriber handle with no subscriptions.
    pub fn pubsub(&self) -> PubSub<T> {
        PubSub::new(Arc::clone(&self.registry))
    }

    /// Channels with at least one channel subscriber, sorted; only those that match the Redis
    /// glob `pattern` when one is given (`PUBSUB CHANNELS [pattern]`).
    ///
    /// Pattern subscriptions do not make a channel active.
    pub fn channels(&self, pattern: Option<&str>) -> Vec<String> {
        self.registry.channels(pattern)
    }

    /// How many handles subscribe to exactly `channel` (`PUBSUB NUMSUB`); patterns are not
    /// counted, and an unknown channel gives 0.
    pub fn numsub(&self, channel: &str) -> usize {
        self.registry.numsub(channel)
    }

    /// How many unique patterns are subscribed across all handles (`PUBSUB NUMPAT`): two
    /// handles on `foo*` count once.
    pub fn numpat(&self) -> usize {
        self.registry.numpat()
    }
}

impl<T: ?Sized> Clone for Broker<T> {
    fn clone(&self) -> Self {
        Broker {
            registry: Arc::clone(&self.registry),
        }
    }
}

impl<T: ?Sized> Default for Broker<T> {
    fn default() -> Self {
        Broker::new()
    }
}

/// Shows the counts only, so it needs no `T: Debug`.
impl<T: ?Sized> fmt::Debug for Broker<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Broker")
            .field("channels", &self.registry.channel_count())
            .field("patterns", &self.numpat())
            .finish()
    }
}
