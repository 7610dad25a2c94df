//! The broker handle: publishing and introspection.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use crate::config::{HistoryLimits, QueueConfig};
#[cfg(feature = "async")]
use crate::engine::Reach;
use crate::engine::{Lookup, Published, Registry};
use crate::error::PublishError;
use crate::into_names::IntoNames;
use crate::into_payload::IntoPayload;
use crate::publisher::Publisher;
use crate::pubsub::PubSub;
use crate::stats::{BrokerStats, Disconnected};
use crate::wait::Wait;

/// A message broker with Redis Pub/Sub semantics, shared by cloning.
///
/// Clones are cheap (one `Arc`) and share one set of subscriptions; the broker is
/// `Send + Sync` for any `T: ?Sized + Send + Sync`. Once the last clone is dropped (with
/// the [`Bridge`] (feature `redis`)'s, if one is attached), nothing can publish to the
/// [`PubSub`] handles any more: each reads what it had queued and then ends, as a crossbeam
/// or tokio receiver does when its senders are gone ([`Disconnected::BrokerDropped`]). A
/// clone held elsewhere, by a handler closure for instance, counts like any other: while it
/// lives, the handles stay open.
///
/// ```
/// use fanout::{Broker, Disconnected, RecvTimeoutError};
/// use std::time::Duration;
///
/// let broker = Broker::<str>::new();
/// let sub = broker.pubsub();
/// sub.subscribe("news");
/// broker.publish("news", "last");
/// drop(broker);
/// let kinds: Vec<_> = sub.listen_forever().map(|m| m.kind()).collect();
/// assert_eq!(kinds, ["subscribe", "message"]);
/// assert_eq!(
///     sub.recv_timeout(Duration::from_secs(1)),
///     Err(RecvTimeoutError::Closed(Disconnected::BrokerDropped))
/// );
/// ```
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
///
#[cfg_attr(feature = "redis", doc = "[`Bridge`]: crate::Bridge")]
#[cfg_attr(
    not(feature = "redis"),
    doc = "[`Bridge`]: https://docs.rs/fanout/latest/fanout/struct.Bridge.html"
)]
pub struct Broker<T: ?Sized> {
    registry: Arc<Registry<T>>,
}

impl<T: ?Sized> Broker<T> {
    /// Makes a broker with no subscriptions, whose handles have unbounded queues.
    ///
    /// # Examples
    ///
    /// ```
    /// use fanout::Broker;
    ///
    /// let broker = Broker::<str>::new();
    /// assert!(broker.channels(None).is_empty());
    /// assert_eq!(broker.numpat(), 0);
    /// assert_eq!(broker.pubsub().capacity(), None); // unbounded
    /// ```
    pub fn new() -> Self {
        Broker::with_config(QueueConfig::default(), None)
    }

    pub(crate) fn with_config(config: QueueConfig, history: Option<HistoryLimits>) -> Self {
        Broker {
            registry: Arc::new(Registry::new(config, history)),
        }
    }

    /// Delivers `payload` to every subscriber of `channel`, then to every handle subscribed
    /// to a pattern that matches it, and returns the number of deliveries, like Redis's
    /// `PUBLISH` reply.
    ///
    /// Each delivery is one clone of the same `Arc`; the payload is never copied. A handle
    /// subscribed to the channel and to `k` matching patterns receives one
    /// [`Message::Message`](crate::Message::Message) and then `k` `PMessage`s, and counts `1 + k`.
    /// Publishing to a channel nobody listens to returns 0 and keeps nothing, and so does
    /// publishing after [`close`](Broker::close).
    ///
    /// The count is of deliveries queued, as Redis counts clients written to: a full bounded queue
    /// follows its [`Overflow`](crate::Overflow) policy and, unless it made room, is not counted.
    /// Under [`Overflow::Block`](crate::Overflow::Block) this call waits for room, holding no
    /// broker lock, for as long as the handle stays subscribed;
    /// [`try_publish`](Broker::try_publish) and
    /// [`publish_timeout`](Broker::publish_timeout) do not wait, or not for ever.
    ///
    /// Waiting for a handle that the same thread must read deadlocks, as with any bounded
    /// channel.
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
    pub fn publish(&self, channel: &str, payload: impl IntoPayload<T>) -> usize {
        let channel = self.registry.index().key(channel);
        let published = self.publish_by(channel, payload.into_payload(), Wait::Forever);
        published.delivered
    }

    /// Publishes like [`publish`](Broker::publish), but never waits for a full queue.
    ///
    /// # Errors
    ///
    /// When a handle's queue was full and it did not get the message (under `Block`, or
    /// `DropNewest`, or `Disconnect`), a [`PublishError`] names the handles, counts the
    /// deliveries that were queued, and gives the payload back. Each such handle reads a
    /// [`Message::Lagged`](crate::Message::Lagged) notice for the gap, except under
    /// `Disconnect`, where the handle ends instead (its queue ends after what it holds).
    ///
    /// # Examples
    ///
    /// ```
    /// use fanout::{Broker, Overflow};
    ///
    /// let broker = Broker::<str>::builder().capacity(1).overflow(Overflow::Block).build();
    /// let (slow, fast) = (broker.pubsub(), broker.pubsub_builder().unbounded().build());
    /// slow.subscribe(["jobs"]);
    /// fast.subscribe(["jobs"]);
    /// assert_eq!(broker.try_publish("jobs", "1").unwrap(), 2);
    /// let err = broker.try_publish("jobs", "2").unwrap_err();
    /// assert_eq!((err.delivered(), err.full()), (1, &[slow.id()][..]));
    /// assert_eq!(&*err.into_inner(), "2");
    /// ```
    pub fn try_publish(
        &self,
        channel: &str,
        payload: impl IntoPayload<T>,
    ) -> Result<usize, PublishError<T>> {
        self.publish_waiting(channel, payload.into_payload(), Wait::Never)
    }

    /// Publishes like [`publish`](Broker::publish) from async code (feature `async`): a full
    /// [`Overflow::Block`](crate::Overflow::Block) queue is waited for without blocking the thread, the task being woken
    /// when the handle's reader takes a delivery (through `get_message`, `listen`, a worker or
    /// a stream) or the subscription changes. Other policies never wait, so `publish` is
    /// already fine in async code when no handle uses `Block`.
    ///
    /// # Examples
    ///
    /// ```
    /// use fanout::{Broker, Overflow};
    ///
    /// let broker = Broker::<str>::builder().capacity(1).overflow(Overflow::Block).build();
    /// let sub = broker.pubsub_builder().ignore_subscribe_messages(true).build();
    /// sub.subscribe(["jobs"]);
    /// futures::executor::block_on(async {
    ///     assert_eq!(broker.publish_async("jobs", "1").await, 1);
    /// });
    /// std::thread::scope(|s| {
    ///     // The queue is full: this task waits until the reader takes "1".
    ///     let waiting = s.spawn(|| futures::executor::block_on(broker.publish_async("jobs", "2")));
    ///     assert_eq!(sub.get_message(std::time::Duration::from_secs(10)).unwrap().payload().map(|p| &**p), Some("1"));
    ///     assert_eq!(waiting.join().unwrap(), 1);
    /// });
    /// ```
    #[cfg(feature = "async")]
    pub async fn publish_async(&self, channel: &str, payload: impl IntoPayload<T>) -> usize {
        let payload = payload.into_payload();
        #[cfg(feature = "redis")]
        if let Some(bridge) = self.registry.bridge() {
            return bridge.publish_async(channel, payload).await.delivered;
        }
        let channel = self.registry.index().key(channel);
        let published = self.registry.publish_async(channel, payload, Reach::All);
        published.await.delivered
    }

    /// Publishes like [`publish`](Broker::publish), waiting at most `timeout` in all for full
    /// `Block` queues.
    ///
    /// # Errors
    ///
    /// As [`try_publish`](Broker::try_publish), for the handles still full at the deadline.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use fanout::{Broker, Overflow};
    ///
    /// let broker = Broker::<str>::builder().capacity(1).overflow(Overflow::Block).build();
    /// let sub = broker.pubsub();
    /// sub.subscribe("jobs");
    /// assert_eq!(broker.publish_timeout("jobs", "1", Duration::ZERO).unwrap(), 1);
    /// // The queue is full and nobody reads it: gives up after 10 ms.
    /// let err = broker.publish_timeout("jobs", "2", Duration::from_millis(10)).unwrap_err();
    /// assert_eq!(err.full(), [sub.id()]);
    /// sub.listen().nth(1); // the confirmation, then "1": room again
    /// assert_eq!(broker.publish_timeout("jobs", "3", Duration::from_secs(10)).unwrap(), 1);
    /// ```
    pub fn publish_timeout(
        &self,
        channel: &str,
        payload: impl IntoPayload<T>,
        timeout: Duration,
    ) -> Result<usize, PublishError<T>> {
        self.publish_waiting(channel, payload.into_payload(), Wait::at_most(timeout))
    }

    fn publish_waiting(
        &self,
        channel: &str,
        payload: Arc<T>,
        wait: Wait,
    ) -> Result<usize, PublishError<T>> {
        let channel = self.registry.index().key(channel);
        self.publish_by(channel, payload.clone(), wait)
            .into_result(payload)
    }

    /// A publish to the channel `lookup` finds, through the bridge when one is attached.
    #[inline]
    pub(crate) fn publish_by<L: Lookup>(
        &self,
        lookup: L,
        payload: Arc<T>,
        wait: Wait,
    ) -> Published {
        #[cfg(feature = "redis")]
        if let Some(bridge) = self.registry.bridge() {
            return bridge.publish(lookup.key().name, payload, wait);
        }
        self.registry.publish(lookup, payload, wait)
    }

    /// A publisher for `channel`: it publishes there as [`publish`](Broker::publish) does, with
    /// less work per call, and says whether anyone listens (its
    /// [matching status](Publisher#matching-status)), now, when it changes, or once it does.
    ///
    /// Publishers of one channel share one status; each keeps the broker open, as a clone does.
    ///
    /// # Examples
    ///
    /// ```
    /// use fanout::Broker;
    ///
    /// let broker = Broker::<str>::new();
    /// let frames = broker.publisher("frames");
    /// let viewer = broker.pubsub();
    /// viewer.psubscribe("fr*");
    /// if frames.is_matched() {
    ///     assert_eq!(frames.publish("rendered only when someone watches"), 1);
    /// }
    /// ```
    #[must_use = "a publisher does nothing unless it publishes or is asked for its status"]
    pub fn publisher(&self, channel: &str) -> Publisher<T> {
        let watching = self.registry.index().interest(channel);
        Publisher::new(self.clone(), watching)
    }

    /// Makes a new subscriber handle with no subscriptions, with the broker's default queue.
    ///
    /// # Examples
    ///
    /// ```
    /// use fanout::Broker;
    ///
    /// let broker = Broker::<str>::builder().capacity(16).build();
    /// let (a, b) = (broker.pubsub(), broker.pubsub());
    /// assert_ne!(a.id(), b.id());
    /// assert_eq!(a.capacity(), Some(16)); // the broker's default queue
    /// a.subscribe("news");
    /// b.subscribe("news");
    /// assert_eq!(broker.publish("news", "hi"), 2);
    /// ```
    #[must_use = "dropping a `PubSub` removes its subscriptions: keep it for as long as it should receive"]
    pub fn pubsub(&self) -> PubSub<T> {
        PubSub::new(Arc::clone(&self.registry), self.registry.defaults())
    }

    /// The shared state, for the Redis bridge.
    #[cfg(feature = "redis")]
    pub(crate) fn registry(&self) -> &Arc<Registry<T>> {
        &self.registry
    }

    /// The broker's default queue, for builders.
    pub(crate) fn defaults(&self) -> QueueConfig {
        self.registry.defaults()
    }

    pub(crate) fn pubsub_with(&self, config: QueueConfig) -> PubSub<T> {
        PubSub::new(Arc::clone(&self.registry), config)
    }

    /// Closes the broker, for every clone: each handle loses its subscriptions (without
    /// confirmations) and its `listen()` yields what is queued and ends; later publishes
    /// deliver nothing and return 0; later subscriptions do nothing, and the handle reports
    /// [`is_closed`](PubSub::is_closed). Publishers waiting for room are released.
    ///
    /// # Examples
    ///
    /// ```
    /// use fanout::Broker;
    ///
    /// let broker = Broker::<str>::new();
    /// let sub = broker.pubsub();
    /// sub.subscribe(["a"]);
    /// broker.publish("a", "queued before close");
    /// broker.close();
    /// assert_eq!(broker.publish("a", "after"), 0);
    /// sub.subscribe(["b"]); // does nothing
    /// assert_eq!(sub.listen().count(), 2); // the confirmation and the message
    /// assert!(sub.is_closed() && broker.is_closed());
    /// ```
    pub fn close(&self) {
        self.registry.close(Disconnected::BrokerClosed);
    }

    /// Whether [`close`](Broker::close) was called on any clone.
    ///
    /// # Examples
    ///
    /// ```
    /// use fanout::Broker;
    ///
    /// let broker = Broker::<str>::new();
    /// let clone = broker.clone();
    /// assert!(!broker.is_closed());
    /// clone.close();
    /// assert!(broker.is_closed()); // every clone shares it
    /// ```
    pub fn is_closed(&self) -> bool {
        self.registry.is_closed()
    }

    /// The broker's counters; see [`BrokerStats`].
    ///
    /// # Examples
    ///
    /// ```
    /// use fanout::Broker;
    ///
    /// let broker = Broker::<str>::new();
    /// let sub = broker.pubsub();
    /// sub.subscribe(["a", "b"]);
    /// sub.psubscribe("a*");
    /// broker.publish("a", "x"); // a message and a pmessage
    /// broker.publish("nobody", "x");
    /// let stats = broker.stats();
    /// assert_eq!((stats.published, stats.delivered, stats.dropped), (2, 2, 0));
    /// assert_eq!((stats.channels, stats.patterns, stats.subscribers), (2, 1, 1));
    /// ```
    pub fn stats(&self) -> BrokerStats {
        self.registry.stats()
    }

    /// Channels with at least one channel subscriber, sorted; only those that match the Redis
    /// glob `pattern` when one is given (`PUBSUB CHANNELS [pattern]`).
    ///
    /// Pattern subscriptions do not make a channel active.
    ///
    /// # Examples
    ///
    /// ```
    /// use fanout::Broker;
    ///
    /// let broker = Broker::<str>::new();
    /// let sub = broker.pubsub();
    /// sub.subscribe(["news.tech", "weather", "news.art"]);
    /// sub.psubscribe("sport.*"); // not a channel
    /// assert_eq!(broker.channels(None), ["news.art", "news.tech", "weather"]);
    /// assert_eq!(broker.channels(Some("news.*")), ["news.art", "news.tech"]);
    /// ```
    pub fn channels(&self, pattern: Option<&str>) -> Vec<String> {
        self.registry.index().channels(pattern)
    }

    /// How many handles subscribe to exactly `channel` (`PUBSUB NUMSUB`); patterns are not
    /// counted, and an unknown channel gives 0.
    ///
    /// # Examples
    ///
    /// ```
    /// use fanout::Broker;
    ///
    /// let broker = Broker::<str>::new();
    /// let (a, b) = (broker.pubsub(), broker.pubsub());
    /// a.subscribe("news");
    /// b.subscribe("news");
    /// b.psubscribe("n*"); // patterns are not counted
    /// assert_eq!((broker.numsub("news"), broker.numsub("unknown")), (2, 0));
    /// drop(a);
    /// assert_eq!(broker.numsub("news"), 1);
    /// ```
    pub fn numsub(&self, channel: &str) -> usize {
        self.registry.index().numsub(channel)
    }

    /// [`numsub`](Broker::numsub) for each channel given, in order, as redis-py's
    /// `pubsub_numsub(*channels)` returns it: `(channel, handles)` pairs, one per name (a name
    /// given twice is answered twice).
    ///
    /// # Examples
    ///
    /// ```
    /// use fanout::Broker;
    ///
    /// let broker = Broker::<str>::new();
    /// let (a, b) = (broker.pubsub(), broker.pubsub());
    /// a.subscribe(["news", "sport"]);
    /// b.subscribe("news");
    /// assert_eq!(
    ///     broker.numsub_each(["news", "sport", "weather"]),
    ///     [("news".to_string(), 2), ("sport".to_string(), 1), ("weather".to_string(), 0)]
    /// );
    /// ```
    pub fn numsub_each(&self, channels: impl IntoNames) -> Vec<(String, usize)> {
        let index = self.registry.index();
        channels
            .into_names()
            .map(|channel| {
                let channel = channel.as_ref();
                (channel.to_string(), index.numsub(channel))
            })
            .collect()
    }

    /// How many unique patterns are subscribed across all handles (`PUBSUB NUMPAT`): two
    /// handles on `foo*` count once.
    ///
    /// # Examples
    ///
    /// ```
    /// use fanout::Broker;
    ///
    /// let broker = Broker::<str>::new();
    /// let (a, b) = (broker.pubsub(), broker.pubsub());
    /// a.psubscribe(["foo*", "bar*"]);
    /// b.psubscribe("foo*"); // the same pattern: counted once
    /// assert_eq!(broker.numpat(), 2);
    /// a.punsubscribe("bar*");
    /// assert_eq!(broker.numpat(), 1);
    /// ```
    pub fn numpat(&self) -> usize {
        self.registry.index().numpat()
    }

    /// The channels whose last payloads the broker retains (those matching `pattern`, when
    /// given, as [`channels`](Broker::channels) filters), each with how many it holds, sorted
    /// by name; empty unless the broker keeps history ([`BrokerBuilder::history`]).
    ///
    /// # Examples
    ///
    /// ```
    /// use fanout::Broker;
    ///
    /// let broker = Broker::<str>::builder().history(2, 100).build();
    /// for (channel, price) in [("prices.eu", "10"), ("prices.eu", "11"), ("prices.eu", "12"), ("prices.us", "9")] {
    ///     broker.publish(channel, price); // retained, though nobody subscribes yet
    /// }
    /// assert_eq!(
    ///     broker.retained(Some("prices.*")),
    ///     [("prices.eu".to_string(), 2), ("prices.us".to_string(), 1)]
    /// );
    /// assert!(Broker::<str>::new().retained(None).is_empty());
    /// ```
    ///
    /// [`BrokerBuilder::history`]: crate::BrokerBuilder::history
    pub fn retained(&self, pattern: Option<&str>) -> Vec<(String, usize)> {
        let history = self.registry.index().history();
        history.map_or_else(Vec::new, |history| history.lock().retained(pattern))
    }
}

impl<T: ?Sized> Clone for Broker<T> {
    fn clone(&self) -> Self {
        self.registry.broker_cloned();
        Broker {
            registry: Arc::clone(&self.registry),
        }
    }
}

/// The last [`Broker`] (with the bridge's, if one is attached) ends every handle: see
/// [`Disconnected::BrokerDropped`].
impl<T: ?Sized> Drop for Broker<T> {
    fn drop(&mut self) {
        self.registry.broker_dropped();
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
            .field("channels", &self.registry.index().channel_count())
            .field("patterns", &self.numpat())
            .finish()
    }
}
