//! Builders for a broker's default queue and for one handle's queue.

use std::fmt;
use std::marker::PhantomData;

use crate::broker::Broker;
use crate::config::{HistoryLimits, Overflow, QueueConfig};
use crate::pubsub::PubSub;

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
    #[must_use = "a builder does nothing until `build`"]
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
    #[must_use = "a builder does nothing until `build`"]
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
#[must_use = "a builder does nothing until `build`"]
pub struct BrokerBuilder<T: ?Sized> {
    config: QueueConfig,
    history: Option<HistoryLimits>,
    payload: PhantomData<fn(Box<T>)>,
}

impl<T: ?Sized> BrokerBuilder<T> {
    pub(crate) fn new() -> Self {
        BrokerBuilder {
            config: QueueConfig::default(),
            history: None,
            payload: PhantomData,
        }
    }

    /// Keeps the last `per_channel` payloads of each channel, also while nobody subscribes
    /// to it, for at most `channels` channels: publishing to one more lets go of the least
    /// recently published (counted in [`BrokerStats::history_evicted`]). Either at 0 keeps
    /// no history (the default).
    ///
    /// Handles made with [`PubSubBuilder::replay`] get them after each new subscription's
    /// confirmation, as [`Message::Replay`]: up to `per_channel` for a channel, oldest first,
    /// and those of every retained channel a pattern matches, in publish order. Every other
    /// handle sees no difference. [`Broker::retained`] lists what is kept.
    ///
    /// Memory: besides the payloads themselves (shared with their deliveries, kept alive
    /// while retained), up to 250 bytes per retained channel plus its name, and 24 bytes per
    /// retained payload (16 for a sized `T`): a channel costs what it holds, whatever
    /// `per_channel` allows (`tests/history_memory.rs` measures it, over 1,000,000 channels
    /// too).
    /// Cost: a publish also records its payload under one lock of the broker's, and holds
    /// the pattern table's read lock from start to end (BENCHMARKS.md has the measured cost).
    ///
    /// With a Redis bridge attached (feature `redis`), the history records the channel
    /// messages this process delivers: what Redis sends for the channels local handles
    /// subscribe to (from this process or any other) and, with [`Route::LocalFirst`], local
    /// publishes. A publish only a local pattern subscription receives is not recorded, and
    /// since Redis sends one publish's `message` and `pmessage`s separately, a replaying
    /// pattern subscription made between them may get it both replayed and live; the
    /// clean cut below holds for a broker without a bridge.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use fanout::{Broker, Message};
    ///
    /// let broker = Broker::<str>::builder().history(2, 1000).build();
    /// for price in ["10", "11", "12"] {
    ///     broker.publish("prices.eu", price);
    /// }
    /// let late = broker.pubsub_builder().replay(true).build();
    /// late.subscribe("prices.eu");
    /// broker.publish("prices.eu", "13");
    /// let read: Vec<_> = std::iter::from_fn(|| late.get_message(Duration::ZERO)).collect();
    /// assert_eq!(read.iter().map(|m| m.kind()).collect::<Vec<_>>(),
    ///            ["subscribe", "replay", "replay", "message"]);
    /// assert_eq!(read.iter().map(|m| m.data()).collect::<Vec<_>>(),
    ///            [None, Some("11"), Some("12"), Some("13")]);
    /// ```
    ///
    /// [`BrokerStats::history_evicted`]: crate::BrokerStats::history_evicted
    /// [`Message::Replay`]: crate::Message::Replay
    /// [`Broker::retained`]: crate::Broker::retained
    ///
    #[cfg_attr(
        feature = "redis",
        doc = "[`Route::LocalFirst`]: crate::Route::LocalFirst"
    )]
    #[cfg_attr(
        not(feature = "redis"),
        doc = "[`Route::LocalFirst`]: https://docs.rs/fanout/latest/fanout/enum.Route.html#variant.LocalFirst"
    )]
    pub fn history(mut self, per_channel: usize, channels: usize) -> Self {
        self.history = (per_channel > 0 && channels > 0).then_some(HistoryLimits {
            per_channel,
            channels,
        });
        self
    }

    /// Gives each handle's bounded queue a high-water mark; see
    /// [`PubSubBuilder::high_water`].
    ///
    /// # Examples
    ///
    /// ```
    /// use fanout::Broker;
    ///
    /// let broker = Broker::<str>::builder().capacity(100).high_water(80).build();
    /// assert_eq!(broker.pubsub().high_water(), Some(80));
    /// ```
    pub fn high_water(mut self, deliveries: usize) -> Self {
        self.config.high_water = Some(deliveries);
        self
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
        Broker::with_config(self.config, self.history)
    }
}

impl<T: ?Sized> fmt::Debug for BrokerBuilder<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BrokerBuilder")
            .field("capacity", &self.config.capacity)
            .field("overflow", &self.config.overflow)
            .field("high_water", &self.config.high_water)
            .field("history", &self.history)
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
#[must_use = "a builder does nothing until `build`"]
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
    /// `get_message` and `listen` skip `subscribe`, `unsubscribe`, `psubscribe` and
    /// `punsubscribe` and yield everything else: deliveries, replays
    /// ([`Message::Replay`](crate::Message::Replay)) and notices
    /// ([`Message::is_notice`](crate::Message::is_notice): `Lagged`, `HighWater`, a bridge's
    /// `Gap`). A [`Worker`](crate::Worker) always skips confirmations.
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

    /// Replays the broker's retained payloads ([`BrokerBuilder::history`]) to each new
    /// subscription of this handle, right after its confirmation, as [`Message::Replay`]: the
    /// last ones of a channel, oldest first; for a pattern, those of every retained channel
    /// it matches, in publish order. A late joiner sees the last value at once instead of
    /// after the next publish.
    ///
    /// The cut is clean: each publish made while the subscription is being added is either
    /// replayed or delivered live, never both and never neither. Subscribing again to a name
    /// already subscribed replays nothing (its confirmation is all it gets, as in Redis), and
    /// on a handle made with
    /// [`one_delivery_per_publish`](PubSubBuilder::one_delivery_per_publish) neither does a
    /// channel another of its subscriptions receives.
    /// Replays are not deliveries: they do not count against capacity, are never dropped,
    /// and are not in [`PubSubStats::delivered`]; a subscription's handler gets them. On a
    /// broker without history there is nothing to replay.
    ///
    /// Costs: a pattern subscription reads every retained channel, under the lock that every
    /// publish on a broker with history takes for reading, so publishes wait for it (BENCHMARKS.md
    /// has the time for 1,000 channels). Replays sit in the queue like confirmations, so a
    /// `DropOldest` eviction re-queues those still unread: a large replay into a small
    /// `DropOldest` queue makes each eviction cost in proportion until it is read.
    ///
    /// # Examples
    ///
    /// ```
    /// use fanout::{Broker, Message};
    ///
    /// let broker = Broker::<str>::builder().history(1, 1000).build();
    /// broker.publish("prices.eu", "10");
    /// broker.publish("prices.us", "9");
    /// broker.publish("prices.eu", "11");
    ///
    /// let dashboard = broker.pubsub_builder().replay(true).build();
    /// dashboard.psubscribe("prices.*");
    /// let last: Vec<String> = dashboard.listen().skip(1).take(2).map(|m| m.to_string()).collect();
    /// assert_eq!(last, [ // the last price of each channel, in publish order
    ///     "{'type': 'replay', 'pattern': b'prices.*', 'channel': b'prices.us', 'data': b'9'}",
    ///     "{'type': 'replay', 'pattern': b'prices.*', 'channel': b'prices.eu', 'data': b'11'}",
    /// ]);
    /// ```
    ///
    /// [`Message::Replay`]: crate::Message::Replay
    /// [`PubSubStats::delivered`]: crate::PubSubStats::delivered
    pub fn replay(mut self, replay: bool) -> Self {
        self.config.replay = replay;
        self
    }

    /// One delivery per publish (Redis's proposed `NOPUBDUP`): a publish that matches this
    /// handle's channel subscription and several of its patterns reaches it once, as a
    /// [`Message::Message`](crate::Message::Message) when the channel is subscribed, else as a `PMessage` of the first matching
    /// pattern in subscription order, and `publish` counts it once. Other handles are not
    /// affected.
    ///
    /// A publish that waits for room in a `Block` queue through one of the handle's
    /// subscriptions, which is then removed, goes through the next of the handle's
    /// subscriptions that matched it, if one still stands. (Subscription order is counted
    /// per handle, and wraps after 2^32 subscriptions.)
    ///
    /// With [`replay`](PubSubBuilder::replay) too, a new subscription replays nothing of a
    /// channel another of the handle's subscriptions receives, since that one had its
    /// payloads, live or replayed: a handle on `news` and `n*` gets each retained payload of
    /// `news` once, whichever it subscribed first. So a publish reaches the handle at most
    /// once, live or replayed, while one of its subscriptions that receive the channel
    /// stands; a subscription made once none does replays the channel again, as any new
    /// subscription does. A delivery waiting for room in a `Block` queue counts as had:
    /// should its subscription, and every other that matched the publish, go before there is
    /// room, the handle does not get it, even through a subscription made meanwhile.
    ///
    /// Redis delivers (and counts) once per matching subscription; this is the option it
    /// discussed (redis #1378) and never shipped. With a Redis bridge attached, it holds for
    /// what is delivered in one go: a publish Redis sends as one `message` and several
    /// `pmessage`s arrives as separate publishes.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use fanout::Broker;
    ///
    /// let broker = Broker::<str>::new();
    /// let once = broker.pubsub_builder().one_delivery_per_publish(true).build();
    /// once.psubscribe(["news.*", "*"]);
    /// once.subscribe("news.rust");
    /// assert_eq!(broker.publish("news.rust", "out"), 1); // Redis would say 3
    /// assert_eq!(broker.publish("news.go", "out"), 1); // Redis would say 2
    /// let read: Vec<_> = std::iter::from_fn(|| once.get_message(Duration::ZERO))
    ///     .filter(|m| !m.is_confirmation())
    ///     .map(|m| (m.kind(), m.pattern().map(str::to_string)))
    ///     .collect();
    /// assert_eq!(read, [("message", None), ("pmessage", Some("news.*".to_string()))]);
    /// ```
    #[doc(alias = "NOPUBDUP")]
    pub fn one_delivery_per_publish(mut self, once: bool) -> Self {
        self.config.one_per_publish = once;
        self
    }

    /// A warning before loss: once this handle's bounded queue holds `deliveries` deliveries,
    /// a [`Message::HighWater`] notice is queued right after the one that reached the mark,
    /// once per crossing (given again only after the reader has brought the queue below half
    /// the mark; evictions do not count, so a stopped reader gets one notice).
    /// It is never dropped and does not count against capacity. Under `Disconnect` and
    /// `DropOldest` it comes before the first loss: the mark is at most the capacity, so it
    /// is reached before a delivery finds the queue full, and a `DropOldest` eviction moves
    /// an unread notice ahead of the deliveries it drops. [`PubSubStats::peak_queued`] keeps
    /// the most deliveries the queue has held.
    ///
    /// A mark above the capacity is the capacity, and 0 is 1. It has no effect on an
    /// unbounded queue or a rendezvous (capacity 0), which [`PubSub::high_water`] reports as
    /// `None`.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use fanout::{Broker, Message, Overflow};
    ///
    /// let broker = Broker::<str>::new();
    /// let sub = broker
    ///     .pubsub_builder()
    ///     .capacity(4)
    ///     .overflow(Overflow::Disconnect)
    ///     .high_water(3)
    ///     .ignore_subscribe_messages(true)
    ///     .build();
    /// sub.subscribe("ticks");
    /// for tick in ["1", "2", "3", "4", "5"] {
    ///     broker.publish("ticks", tick); // "5" finds the queue full: disconnected
    /// }
    /// let kinds: Vec<_> = sub.listen().map(|m| m.kind()).collect();
    /// assert_eq!(kinds, ["message", "message", "message", "high_water", "message"]);
    /// assert_eq!(sub.stats().peak_queued, 4);
    /// ```
    ///
    /// [`Message::HighWater`]: crate::Message::HighWater
    /// [`PubSubStats::peak_queued`]: crate::PubSubStats::peak_queued
    /// [`PubSub::high_water`]: crate::PubSub::high_water
    pub fn high_water(mut self, deliveries: usize) -> Self {
        self.config.high_water = Some(deliveries);
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
    #[must_use = "dropping a `PubSub` removes its subscriptions: keep it for as long as it should receive"]
    pub fn build(self) -> PubSub<T> {
        self.broker.pubsub_with(self.config)
    }
}

impl<T: ?Sized> fmt::Debug for PubSubBuilder<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PubSubBuilder")
            .field("capacity", &self.config.capacity)
            .field("overflow", &self.config.overflow)
            .field("high_water", &self.config.high_water)
            .field("replay", &self.config.replay)
            .field("one_delivery_per_publish", &self.config.one_per_publish)
            .finish()
    }
}
