//! Attaching a [`Broker`] to a Redis server (feature `redis`).
//!
//! See [`Bridge`] for what it does, and the crate's README ("Scaling out") for commands.

mod backlog;
#[cfg(feature = "cluster")]
mod cluster;
mod codec;
mod doubt;
mod echo;
mod mirror;
mod order;
mod publisher;
mod receive;
mod shared;

use std::fmt;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use parking_lot::Mutex;

use crate::broker::Broker;
use crate::config::Overflow;
use crate::engine::hooks::{Change, Outbound, Watcher};

pub use codec::Codec;
#[cfg(feature = "json")]
pub use codec::Json;

use backlog::Backlog;
use mirror::Mirror;
use shared::{Shared, Timing, DRAINING, STOPPED};

/// Where a publish on a bridged broker goes first. Either way, every subscriber in every
/// attached process and every redis-py subscriber gets it once.
///
/// | | `ViaRedis` (default) | `LocalFirst` |
/// |---|---|---|
/// | local handles get it | when it comes back from Redis (one round trip) | at once, in `publish` |
/// | order across processes | one global order: Redis's | local publishes may overtake remote ones |
/// | `publish` returns | local deliveries it will make | local deliveries made |
/// | if Redis is down | local handles wait for it with everyone else | local handles still get it |
///
/// Under `LocalFirst` the bridge skips the copies Redis sends back (see `echo.rs`): exactly
/// once holds as long as the bridge's subscriptions on Redis match local ones. In the short
/// window while a name's first local subscription is being made on Redis, or its last removed,
/// a publish on it may reach that handle twice or, when the copy from Redis is mistaken for a
/// remote one with identical bytes, the same count in another order. Around a reconnection,
/// the copy of a publish sent just before the connection dropped may never come back, and an
/// identical remote message is then taken for it and skipped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum Route {
    /// Publishes go to Redis and come back: one global order, exactly once.
    #[default]
    ViaRedis,
    /// Publishes are delivered locally at once and sent to Redis for everyone else; the copy
    /// Redis sends back is skipped.
    LocalFirst,
}

/// A bridge's counters, from [`Bridge::stats`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct BridgeStats {
    /// Both connections (subscriptions and publishes) are up now.
    pub connected: bool,
    /// Outages the bridge came back from, one each however many connections it made again.
    ///
    /// - A server restart (or any loss of the subscription connection) counts 1, when the
    ///   subscription connection is made again and every name subscribed again: the moment
    ///   subscribed handles are given their [`Message::Gap`](crate::Message::Gap) notice. The
    ///   publishing connection made again after the same restart does not count again.
    /// - The publishing connection lost alone (killed, or a reply slower than the reply
    ///   timeout) while the subscription one stayed up counts 1, when the new one first
    ///   answers: it is made again as soon as the loss is seen, with the back-off, whether
    ///   or not anything is published meanwhile. That connection is used, and so found lost,
    ///   only when publishes go out.
    /// - On a cluster, each recovery after node connections were lost counts 1 (with a Gap
    ///   notice).
    ///
    /// So one restart of the server makes `reconnects` 1 by the time its Gap notice is
    /// readable, and it stays 1 when a later publish finds the old publishing connection
    /// dead and makes another.
    pub reconnects: u64,
    /// Publishes Redis acknowledged.
    pub forwarded: u64,
    /// Messages from Redis delivered to local subscriptions (channel or pattern arrivals).
    pub received: u64,
    /// Copies of our own publishes skipped under [`Route::LocalFirst`].
    pub echoes_skipped: u64,
    /// Publishes the backlog refused or evicted under its overflow policy.
    pub dropped: u64,
    /// Publishes whose connection failed while Redis had them and that are not known to have
    /// been delivered (never resent; under [`Route::ViaRedis`] one whose copy still comes back
    /// to local handles, from a hung server that resumed, is not counted; under
    /// [`Route::LocalFirst`] such a copy is skipped as an echo), and publishes local
    /// subscriptions were waiting for that Redis delivered to no one (the subscription
    /// connection had just dropped, or the subscriptions were removed before the publish
    /// reached Redis), and, once the bridge is dropped, what was left with no connection to
    /// send it on.
    pub lost: u64,
    /// Messages from Redis whose channel or pattern was not UTF-8, or whose payload
    /// [`Codec::decode`] refused; they were skipped.
    pub undecodable: u64,
    /// Times local handles were sent a [`Message::Gap`](crate::Message::Gap) notice: each
    /// time the subscription connection (on a cluster, the subscriptions) came back, and
    /// when publishes whose fate was unknown turn out lost with no notice since.
    pub gaps: u64,
    /// Publishes Redis refused (an ACL rule on the channel, say), and on a cluster refused
    /// (un)subscriptions; the bridge goes on. (On one server, redis-rs reports a refused
    /// `SUBSCRIBE` as done: that channel then gets nothing from Redis.)
    pub refused: u64,
    /// Publishes in the backlog now. The batch the publishing thread has taken from it (up
    /// to 256 publishes, being sent, or held while the connection is made again) is not
    /// counted: while Redis is down, the first publishes made wait there, and `backlog`
    /// counts those after them.
    pub backlog: usize,
    /// Channels plus patterns the bridge is subscribed to on Redis now.
    pub subscriptions: usize,
}

/// Why a bridge could not be made.
#[derive(Debug)]
#[non_exhaustive]
pub enum BridgeError {
    /// The URL is not a Redis URL redis-rs understands: `redis://` or, with feature `tls`,
    /// `rediss://`, then `[user:password@]host[:port][/db]`.
    Url {
        /// The URL given.
        url: String,
        /// What redis-rs said.
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// The server could not be reached or refused the connection (authentication, say).
    Connect {
        /// The URL given, with any password hidden.
        url: String,
        /// What redis-rs said.
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// The broker already has a bridge; drop it first.
    AlreadyBridged,
    /// The broker was closed.
    BrokerClosed,
    /// A thread or the runtime for the bridge could not be started.
    Start(std::io::Error),
}

impl fmt::Display for BridgeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BridgeError::Url { url, source } => write!(f, "invalid Redis URL {url:?}: {source}"),
            BridgeError::Connect { url, source } => {
                write!(f, "cannot connect to Redis at {url}: {source}")
            }
            BridgeError::AlreadyBridged => f.write_str("the broker already has a Redis bridge"),
            BridgeError::BrokerClosed => f.write_str("the broker is closed"),
            BridgeError::Start(error) => write!(f, "cannot start the bridge: {error}"),
        }
    }
}

impl std::error::Error for BridgeError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            BridgeError::Url { source, .. } | BridgeError::Connect { source, .. } => {
                Some(&**source)
            }
            BridgeError::Start(error) => Some(error),
            BridgeError::AlreadyBridged | BridgeError::BrokerClosed => None,
        }
    }
}

/// A [`Broker`] attached to a Redis server (feature `redis`): its publishes reach every
/// subscriber in every attached process and every redis-py client on the same channels,
/// exactly once each, and what they publish reaches its handles.
///
/// The broker keeps its API: `publish`, `pubsub`, `subscribe` and `listen` work as on a
/// broker without a bridge.
/// Underneath, the bridge
///
/// - keeps one Redis connection for subscriptions, subscribed to the union of what local
///   handles need: a channel's or pattern's first local subscriber subscribes it on Redis, its
///   last one unsubscribes it (no connection per handle);
/// - sends publishes through a backlog to a second connection, pipelined, as the raw bytes
///   [`Codec`] makes (text and bytes types as redis-py sends them, serde types as JSON with
///   `Json<T>`);
/// - delivers what Redis sends to the local handles subscribed to that channel or pattern;
/// - on a lost connection (or a reply slower than the reply timeout: a hung server) reconnects
///   with back-off, subscribes again, and gives every local handle a
///   [`Message::Gap`](crate::Message::Gap) notice where messages may be missing: what went
///   out before the loss was noticed, counted in [`BridgeStats::lost`].
///
/// Where a publish goes first is the [`Route`]; by default through Redis, so all processes
/// see one order. A publish made after `subscribe` returned reaches that handle: the publish
/// waits in the backlog until Redis has the subscription, also across a server restart
/// (nothing goes out while the subscription connection is down, nor after a reconnection
/// until every name is subscribed again). For a *remote* publisher the usual Redis rule
/// holds: it reaches the handle once Redis has the subscription, which
/// [`flush`](Bridge::flush) waits for.
///
/// While Redis is unreachable, publishes wait in the backlog, whose bound and policy are the
/// broker's default queue ones ([`BridgeBuilder::backlog`] to change): `Block` waits for room
/// (`try_publish` and `publish_timeout` report a full backlog with
/// [`PublishError::backlog_full`](crate::PublishError::backlog_full)), `DropOldest` evicts
/// the oldest, `DropNewest` and `Disconnect` refuse the new one; [`BridgeStats`] counts them.
///
/// What Redis sends is delivered by the bridge's receiving thread under each handle's policy;
/// under [`Overflow::Block`] a full handle makes that thread wait, and redis-rs keeps reading
/// the socket meanwhile, holding what arrives in memory (as Redis itself would, up to its
/// `client-output-buffer-limit`, after which it drops the connection: a gap).
///
/// Dropping the bridge returns promptly whatever Redis is doing: back-offs, connection
/// attempts and commands waiting for a reply are cut short; what the backlog holds is sent if
/// a connection is up (each reply waited for at most the reply timeout), else counted `lost`.
/// The broker is local again. [`Broker::close`] stops publishes through the bridge too, and
/// unsubscribes on Redis what the closed handles had subscribed.
///
/// # Examples
///
/// ```no_run
/// use fanout::{Bridge, Broker};
///
/// let broker = Broker::<str>::new();
/// let bridge = Bridge::connect(&broker, "redis://127.0.0.1:6379")?;
/// let sub = broker.pubsub();
/// sub.subscribe(["channel"]); // SUBSCRIBE channel, on Redis
/// broker.publish("channel", "message"); // PUBLISH channel message; comes back to `sub`
/// for message in sub.listen().take(2) {
///     println!("{message:?}"); // the confirmation, then the message
/// }
/// println!("{:?}", bridge.stats());
/// # Ok::<(), fanout::BridgeError>(())
/// ```
#[must_use = "dropping a `Bridge` detaches its broker from Redis: keep it for as long as it should be bridged"]
pub struct Bridge<T: ?Sized + Codec + Send + Sync + 'static> {
    shared: Arc<Shared<T>>,
    url: String,
    /// The publishing thread, joined first on drop (it sends what the backlog holds).
    publisher: Option<JoinHandle<()>>,
    /// The subscription side's thread, joined once the publisher has ended.
    mirror: Option<JoinHandle<()>>,
}

impl<T: ?Sized + Codec + Send + Sync + 'static> Bridge<T> {
    /// Attaches `broker` to the Redis server at `url` with the default settings; see
    /// [`Bridge::builder`] for the others.
    ///
    /// # Errors
    ///
    /// A bad URL, an unreachable server, a broker that is closed or already bridged.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # fn main() -> Result<(), fanout::BridgeError> {
    /// use fanout::{Bridge, BridgeError, Broker};
    ///
    /// let broker = Broker::<str>::new();
    /// let bridge = Bridge::connect(&broker, "redis://127.0.0.1:6379")?;
    /// let again = Bridge::connect(&broker, "redis://127.0.0.1:6379");
    /// assert!(matches!(again, Err(BridgeError::AlreadyBridged)));
    /// drop(bridge); // the broker is local again
    /// # Ok(())
    /// # }
    /// ```
    pub fn connect(broker: &Broker<T>, url: &str) -> Result<Self, BridgeError> {
        Bridge::builder(broker, url).connect()
    }

    /// Starts a bridge to `url` with settings of its own.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # fn main() -> Result<(), fanout::BridgeError> {
    /// use fanout::{Bridge, Broker, Route};
    ///
    /// let broker = Broker::<str>::new();
    /// let bridge = Bridge::builder(&broker, "redis://127.0.0.1:6379")
    ///     .route(Route::LocalFirst)
    ///     .connect()?;
    /// assert_eq!(bridge.route(), Route::LocalFirst);
    /// # Ok(())
    /// # }
    /// ```
    pub fn builder<'a>(broker: &'a Broker<T>, url: &str) -> BridgeBuilder<'a, T> {
        let defaults = broker.registry().defaults();
        BridgeBuilder {
            broker,
            url: url.to_owned(),
            route: Route::default(),
            capacity: defaults.capacity,
            overflow: defaults.overflow,
            timing: Timing {
                connect_timeout: Duration::from_secs(5),
                reply_timeout: Duration::from_secs(5),
                min_delay: Duration::from_millis(20),
                max_delay: Duration::from_secs(2),
            },
            cluster: false,
            #[cfg(feature = "tls")]
            tls_root: None,
        }
    }

    /// The bridge's counters now.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # fn main() -> Result<(), fanout::BridgeError> {
    /// use std::time::Duration;
    /// use fanout::{Bridge, Broker};
    ///
    /// let broker = Broker::<str>::new();
    /// let bridge = Bridge::connect(&broker, "redis://127.0.0.1:6379")?;
    /// broker.publish("orders", "#1"); // no local subscriber: Redis gets it all the same
    /// assert!(bridge.flush(Duration::from_secs(5)));
    /// let stats = bridge.stats();
    /// assert_eq!((stats.forwarded, stats.lost, stats.backlog), (1, 0, 0));
    /// # Ok(())
    /// # }
    /// ```
    pub fn stats(&self) -> BridgeStats {
        self.shared.stats()
    }

    /// Whether both connections are up now.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # fn main() -> Result<(), fanout::BridgeError> {
    /// use std::time::Duration;
    /// use fanout::{Bridge, Broker};
    ///
    /// let broker = Broker::<str>::new();
    /// let bridge = Bridge::connect(&broker, "redis://127.0.0.1:6379")?;
    /// // The subscription side comes up on its own thread; `flush` waits for it.
    /// assert!(bridge.flush(Duration::from_secs(5)));
    /// assert!(bridge.is_connected());
    /// # Ok(())
    /// # }
    /// ```
    pub fn is_connected(&self) -> bool {
        self.shared.is_connected()
    }

    /// Where publishes go first.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # fn main() -> Result<(), fanout::BridgeError> {
    /// use fanout::{Bridge, Broker, Route};
    ///
    /// let broker = Broker::<str>::new();
    /// let bridge = Bridge::connect(&broker, "redis://127.0.0.1:6379")?;
    /// assert_eq!(bridge.route(), Route::ViaRedis); // the default
    /// # Ok(())
    /// # }
    /// ```
    pub fn route(&self) -> Route {
        self.shared.route
    }

    /// The server's URL, as given, with any password shown as `***`.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # fn main() -> Result<(), fanout::BridgeError> {
    /// use fanout::{Bridge, Broker};
    ///
    /// let broker = Broker::<str>::new();
    /// let bridge = Bridge::connect(&broker, "redis://127.0.0.1:6379")?;
    /// assert_eq!(bridge.url(), "redis://127.0.0.1:6379");
    /// # Ok(())
    /// # }
    /// ```
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Waits until Redis has every local subscription change and every publish made before
    /// this call (forwarded, or given up as dropped or lost), at most `timeout`
    /// (`Duration::MAX` waits for ever); false if that did not happen in time.
    ///
    /// What it does not wait for: the copies Redis sends back. Under the default
    /// [`Route::ViaRedis`] a local handle gets a publish when its copy comes back, which may
    /// be after `flush` returned; so does a remote publisher's message. To know a delivery was
    /// made, read it ([`PubSub::get_message`](crate::PubSub::get_message) with a timeout).
    ///
    /// Useful before a remote process publishes to a handle that just subscribed, and before
    /// exiting. A bridged test is deterministic with `flush` after each subscription change
    /// and each publish (then Redis has them, and a publish from anywhere reaches the handle):
    /// a handle's subscription change takes effect at its place in Redis's order (copies in
    /// flight reach the subscriptions that stood when Redis ran them; docs/BRIDGE.md says
    /// how), so what each handle reads is what a redis-py client in its place reads.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # fn main() -> Result<(), fanout::BridgeError> {
    /// use std::time::Duration;
    /// use fanout::{Bridge, Broker};
    ///
    /// let broker = Broker::<str>::new();
    /// let bridge = Bridge::connect(&broker, "redis://127.0.0.1:6379")?;
    /// let sub = broker.pubsub();
    /// sub.subscribe("orders");
    /// assert!(bridge.flush(Duration::from_secs(5)));
    /// // Redis has `SUBSCRIBE orders` now: a redis-py `publish("orders", ...)` reaches `sub`.
    /// # Ok(())
    /// # }
    /// ```
    pub fn flush(&self, timeout: Duration) -> bool {
        self.shared.flush(timeout)
    }
}

/// Stops the bridge in two stages (see `shared.rs`): the publishing thread stops waiting and
/// sends what the backlog holds (each reply waited for at most the reply timeout; nothing
/// when disconnected), then the subscription side ends, at once, whatever it was waiting for.
impl<T: ?Sized + Codec + Send + Sync + 'static> Drop for Bridge<T> {
    fn drop(&mut self) {
        let registry = self.shared.registry();
        registry.detach_bridge();
        registry.index().watch(None);
        self.shared.backlog.close();
        self.shared.set_stage(DRAINING);
        if let Some(publisher) = self.publisher.take() {
            let _ = publisher.join();
        }
        self.shared.set_stage(STOPPED);
        if let Some(mirror) = self.mirror.take() {
            let _ = mirror.join();
        }
    }
}

impl<T: ?Sized + Codec + Send + Sync + 'static> fmt::Debug for Bridge<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Bridge")
            .field("url", &self.url)
            .field("route", &self.shared.route)
            .field("stats", &self.stats())
            .finish()
    }
}

/// Settings for a [`Bridge`], from [`Bridge::builder`].
///
/// # Examples
///
/// ```no_run
/// use std::time::Duration;
/// use fanout::{Bridge, Broker, Overflow, Route};
///
/// let broker = Broker::<[u8]>::new();
/// let bridge = Bridge::builder(&broker, "redis://127.0.0.1:6379")
///     .route(Route::LocalFirst)
///     .backlog(Some(10_000), Overflow::DropOldest)
///     .reconnect_delay(Duration::from_millis(50), Duration::from_secs(5))
///     .connect()?;
/// # Ok::<(), fanout::BridgeError>(())
/// ```
#[must_use = "a builder does nothing until `connect`"]
pub struct BridgeBuilder<'a, T: ?Sized> {
    broker: &'a Broker<T>,
    url: String,
    route: Route,
    capacity: Option<usize>,
    overflow: Overflow,
    timing: Timing,
    /// Sharded Pub/Sub on a Redis Cluster; set only by `cluster` (feature `cluster`).
    cluster: bool,
    /// A CA to trust for `rediss://` instead of the system's roots (PEM).
    #[cfg(feature = "tls")]
    tls_root: Option<Vec<u8>>,
}

/// The connections a bridge starts with.
#[allow(clippy::large_enum_variant)] // made once per bridge, moved once
enum Connections {
    /// One server: a Pub/Sub connection and a publishing one.
    Standalone {
        client: redis::Client,
        pubsub: redis::aio::PubSub,
        publishing: redis::aio::MultiplexedConnection,
        /// The publishing thread's runtime, which the publishing connection belongs to.
        publishing_runtime: tokio::runtime::Runtime,
    },
    /// A cluster: one client for every node, its pushes on `pushes`.
    #[cfg(feature = "cluster")]
    Cluster {
        connection: redis::cluster_async::ClusterConnection,
        pushes: crossbeam_channel::Receiver<redis::PushInfo>,
    },
}

impl<T: ?Sized + Codec + Send + Sync + 'static> BridgeBuilder<'_, T> {
    /// Where publishes go first; [`Route::ViaRedis`] unless set.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # fn main() -> Result<(), fanout::BridgeError> {
    /// use std::time::Duration;
    /// use fanout::{Bridge, Broker, Route};
    ///
    /// let broker = Broker::<str>::new();
    /// let _bridge = Bridge::builder(&broker, "redis://127.0.0.1:6379")
    ///     .route(Route::LocalFirst)
    ///     .connect()?;
    /// let sub = broker.pubsub_builder().ignore_subscribe_messages(true).build();
    /// sub.subscribe("orders");
    /// assert_eq!(broker.publish("orders", "#1"), 1);
    /// // Delivered at once, before Redis has it.
    /// assert_eq!(sub.get_message(Duration::ZERO).unwrap().data(), Some("#1"));
    /// # Ok(())
    /// # }
    /// ```
    pub fn route(mut self, route: Route) -> Self {
        self.route = route;
        self
    }

    /// The backlog of publishes waiting for Redis: at most `capacity` (at least 1; `None`
    /// for no bound), and what a publish does when it is full. The broker's default queue
    /// bound and policy unless set.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # fn main() -> Result<(), fanout::BridgeError> {
    /// use fanout::{Bridge, Broker, Overflow};
    ///
    /// let broker = Broker::<str>::new();
    /// let _bridge = Bridge::builder(&broker, "redis://127.0.0.1:6379")
    ///     .backlog(Some(1_000), Overflow::Block) // while Redis is down, hold 1000 publishes
    ///     .connect()?;
    /// if let Err(e) = broker.try_publish("orders", "#1") {
    ///     assert!(e.backlog_full()); // no local handle: only the backlog can be full
    /// }
    /// # Ok(())
    /// # }
    /// ```
    pub fn backlog(mut self, capacity: Option<usize>, overflow: Overflow) -> Self {
        self.capacity = capacity;
        self.overflow = overflow;
        self
    }

    /// How long to wait before reconnecting: `min` after a loss, twice as long after each
    /// failed attempt, up to `max`. 20 ms and 2 s unless set. `Duration::MAX` waits for
    /// ever (until the bridge is dropped); dropping the bridge cuts any wait short.
    ///
    /// This bounds how soon handles hear of an outage's end: their
    /// [`Message::Gap`](crate::Message::Gap) notice is readable once the next attempt after
    /// the server answers again has connected and subscribed every name again, so within
    /// `max` (2 s unless set) of the server being back, plus one connection and one round
    /// trip per subscribed channel and pattern.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # fn main() -> Result<(), fanout::BridgeError> {
    /// use std::time::Duration;
    /// use fanout::{Bridge, Broker};
    ///
    /// let broker = Broker::<str>::new();
    /// let bridge = Bridge::builder(&broker, "redis://127.0.0.1:6379")
    ///     .reconnect_delay(Duration::from_millis(100), Duration::from_secs(10))
    ///     .connect()?;
    /// // After a loss, attempts come 100 ms, 200 ms, 400 ms, ... apart, at most 10 s.
    /// println!("reconnected {} times", bridge.stats().reconnects);
    /// # Ok(())
    /// # }
    /// ```
    pub fn reconnect_delay(mut self, min: Duration, max: Duration) -> Self {
        self.timing.min_delay = min.max(Duration::from_millis(1));
        self.timing.max_delay = max.max(self.timing.min_delay);
        self
    }

    /// How long one connection attempt may take; 5 s unless set (`Duration::MAX`: no
    /// limit).
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # fn main() -> Result<(), fanout::BridgeError> {
    /// use std::time::Duration;
    /// use fanout::{Bridge, BridgeError, Broker};
    ///
    /// let broker = Broker::<str>::new();
    /// // A TEST-NET-1 address: nothing answers, so the attempt gives up after 100 ms.
    /// let unreachable = Bridge::builder(&broker, "redis://192.0.2.1:6379")
    ///     .connect_timeout(Duration::from_millis(100))
    ///     .connect();
    /// assert!(matches!(unreachable, Err(BridgeError::Connect { .. })));
    /// let _bridge = Bridge::builder(&broker, "redis://127.0.0.1:6379")
    ///     .connect_timeout(Duration::from_secs(1))
    ///     .connect()?;
    /// # Ok(())
    /// # }
    /// ```
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.timing.connect_timeout = timeout.max(Duration::from_millis(1));
        self
    }

    /// How long Redis may take to answer a command (a `SUBSCRIBE`, a pipeline of publishes)
    /// before the connection counts as lost and is made again; 5 s unless set
    /// (`Duration::MAX`: no limit). A server that hangs is then treated as one that is down,
    /// and dropping the bridge waits at most this long for the replies to its last publishes.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// use std::time::Duration;
    /// use fanout::{Bridge, Broker};
    ///
    /// let broker = Broker::<str>::new();
    /// let bridge = Bridge::builder(&broker, "redis://127.0.0.1:6379")
    ///     .reply_timeout(Duration::from_millis(500))
    ///     .connect()?;
    /// # Ok::<(), fanout::BridgeError>(())
    /// ```
    pub fn reply_timeout(mut self, timeout: Duration) -> Self {
        self.timing.reply_timeout = timeout.max(Duration::from_millis(1));
        self
    }

    /// Uses a Redis Cluster's sharded Pub/Sub: channels are subscribed with `SSUBSCRIBE` on
    /// the shard that owns them and published with `SPUBLISH`, so a message crosses one shard,
    /// not the whole cluster. The URL is any node's; the others are found from it (feature
    /// `cluster`, which builds redis-rs's cluster client; without it this method does not
    /// exist, and a URL alone never selects a cluster).
    ///
    /// Redis never consults patterns for sharded channels, and neither does a bridged broker
    /// then: pattern subscriptions receive nothing (local publishes included), and
    /// `publish` counts channel subscribers only. redis-py meets these channels with
    /// `ssubscribe` and `spublish`. The client subscribes again by itself after a node
    /// comes back; handles get a `Gap` notice then, as with one server.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # fn main() -> Result<(), fanout::BridgeError> {
    /// use fanout::{Bridge, Broker};
    ///
    /// let broker = Broker::<str>::new();
    /// let _bridge = Bridge::builder(&broker, "redis://127.0.0.1:6379").cluster().connect()?;
    /// let (channel, pattern) = (broker.pubsub(), broker.pubsub());
    /// channel.subscribe("orders"); // SSUBSCRIBE orders, on the shard that owns it
    /// pattern.psubscribe("ord*"); // never consulted for sharded channels
    /// assert_eq!(broker.publish("orders", "#1"), 1); // SPUBLISH; the channel subscriber only
    /// # Ok(())
    /// # }
    /// ```
    #[cfg(feature = "cluster")]
    #[cfg_attr(docsrs, doc(cfg(feature = "cluster")))]
    pub fn cluster(mut self) -> Self {
        self.cluster = true;
        self
    }

    /// Trusts the certificate authority `pem` (PEM text) for a `rediss://` URL, instead of
    /// the system's roots: for a server whose certificate a private CA signed, or a
    /// self-signed one (feature `tls`). Without it, `rediss://` trusts the system's roots,
    /// which is what managed Redis services need. The server's name or IP address in the URL
    /// must be in its certificate either way.
    ///
    /// A `rediss://` URL without feature `tls` is a [`BridgeError::Url`] saying that TLS is
    /// not built in.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use fanout::{Bridge, Broker};
    ///
    /// let broker = Broker::<str>::new();
    /// let ca = std::fs::read("ca.crt")?;
    /// let bridge = Bridge::builder(&broker, "rediss://127.0.0.1:6380")
    ///     .tls_root_certificate(ca)
    ///     .connect()?;
    /// assert!(bridge.url().starts_with("rediss://"));
    /// # Ok(())
    /// # }
    /// ```
    #[cfg(feature = "tls")]
    pub fn tls_root_certificate(mut self, pem: impl Into<Vec<u8>>) -> Self {
        self.tls_root = Some(pem.into());
        self
    }

    /// Connects both connections, attaches the broker and subscribes on Redis to what its
    /// handles already subscribe to. The subscription connection's first round trip may
    /// still be under way when this returns: [`Bridge::is_connected`] turns true once it is
    /// done, and [`Bridge::flush`] waits for it.
    ///
    /// # Errors
    ///
    /// A bad URL, an unreachable server, a broker that is closed or already bridged.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # fn main() -> Result<(), fanout::BridgeError> {
    /// use std::time::Duration;
    /// use fanout::{Bridge, Broker};
    ///
    /// let broker = Broker::<str>::new();
    /// let sub = broker.pubsub();
    /// sub.subscribe("orders"); // before the bridge: subscribed on Redis by `connect`
    /// let bridge = Bridge::builder(&broker, "redis://127.0.0.1:6379").connect()?;
    /// assert!(bridge.flush(Duration::from_secs(5)));
    /// assert_eq!(bridge.stats().subscriptions, 1);
    /// # Ok(())
    /// # }
    /// ```
    pub fn connect(self) -> Result<Bridge<T>, BridgeError> {
        let registry = Arc::clone(self.broker.registry());
        if registry.is_closed() {
            return Err(BridgeError::BrokerClosed);
        }
        if registry.is_bridged() {
            return Err(BridgeError::AlreadyBridged);
        }
        let shown = hide_password(&self.url);
        let runtime = current_thread()?;
        let connections = self.open(&runtime, &shown)?;

        let backlog = Backlog::new(self.capacity, self.overflow);
        let shared = Arc::new(Shared::new(
            self.broker.clone(),
            self.route,
            self.cluster,
            self.timing,
            backlog,
        ));
        shared.publisher_up.store(true, Ordering::Release);

        let outbound: Arc<dyn Outbound<T>> = shared.clone();
        if !registry.attach_bridge(outbound) {
            return Err(BridgeError::AlreadyBridged);
        }
        let (changes_tx, changes) = tokio::sync::mpsc::unbounded_channel();
        let numbered = Mutex::new((0u64, changes_tx));
        let watching = Arc::clone(&shared);
        // Called under a registry lock; `numbered` is a leaf lock, held so numbers and the
        // channel agree on the order.
        let watcher: Watcher = Arc::new(move |change: Change| {
            let mut numbered = numbered.lock();
            numbered.0 += 1;
            watching.issued.store(numbered.0, Ordering::Release);
            let _ = numbered.1.send((numbered.0, change));
        });
        registry.index().watch(Some(watcher));

        let mut bridge = Bridge {
            shared: Arc::clone(&shared),
            url: shown,
            publisher: None,
            mirror: None,
        };
        let spawn = |name: &str, body: Box<dyn FnOnce() + Send>| {
            std::thread::Builder::new()
                .name(name.to_owned())
                .spawn(body)
                .map_err(BridgeError::Start)
        };
        let (receiving, publishing_shared) = (Arc::clone(&shared), Arc::clone(&shared));
        // The receiving thread is not joined on drop: it may be waiting for a `Block`
        // handle's reader.
        match connections {
            Connections::Standalone {
                client,
                pubsub,
                publishing,
                publishing_runtime,
            } => {
                let (feeds_tx, feeds) = crossbeam_channel::unbounded();
                let mirror = Mirror::new(shared, client.clone(), changes, feeds_tx);
                spawn(
                    "fanout-redis-receive",
                    Box::new(move || receive::run(receiving, feeds)),
                )?;
                bridge.mirror = Some(spawn(
                    "fanout-redis-subscribe",
                    Box::new(move || runtime.block_on(mirror.run(pubsub))),
                )?);
                bridge.publisher = Some(spawn(
                    "fanout-redis-publish",
                    Box::new(move || {
                        let runtime = publishing_runtime;
                        publisher::run(publishing_shared, client, publishing, runtime)
                    }),
                )?);
            }
            #[cfg(feature = "cluster")]
            Connections::Cluster { connection, pushes } => {
                let losses = Arc::new(cluster::Losses::default());
                let reported = Arc::clone(&losses);
                spawn(
                    "fanout-redis-receive",
                    Box::new(move || cluster::receive(receiving, pushes, reported)),
                )?;
                let handle = runtime.handle().clone();
                let publishing = connection.clone();
                bridge.mirror = Some(spawn(
                    "fanout-redis-subscribe",
                    Box::new(move || {
                        runtime.block_on(cluster::mirror(shared, connection, changes, losses));
                    }),
                )?);
                bridge.publisher = Some(spawn(
                    "fanout-redis-publish",
                    Box::new(move || cluster::publish(publishing_shared, publishing, handle)),
                )?);
            }
        }
        Ok(bridge)
    }

    /// Makes the first connections, so a bad URL or an unreachable server is an error now.
    fn open(
        &self,
        runtime: &tokio::runtime::Runtime,
        shown: &str,
    ) -> Result<Connections, BridgeError> {
        let url_error = |e: redis::RedisError| BridgeError::Url {
            url: shown.to_owned(),
            source: Box::new(e),
        };
        let connect_error = |e: redis::RedisError| BridgeError::Connect {
            url: shown.to_owned(),
            source: Box::new(e),
        };
        let timeout = self.timing.connect_timeout;
        #[cfg(feature = "tls")]
        {
            // rustls needs a process-wide crypto provider; this one unless the program chose.
            let _ = rustls::crypto::ring::default_provider().install_default();
        }
        #[cfg(feature = "cluster")]
        if self.cluster {
            let (tx, pushes) = crossbeam_channel::unbounded();
            let builder = redis::cluster::ClusterClientBuilder::new(vec![self.url.as_str()]);
            #[cfg(feature = "tls")]
            let builder = match &self.tls_root {
                Some(root) => builder.certs(trusting(root)),
                None => builder,
            };
            let client = builder
                .use_protocol(redis::ProtocolVersion::RESP3)
                .connection_timeout(timeout)
                .response_timeout(self.timing.reply_timeout)
                .push_sender(move |push| tx.send(push))
                .build()
                .map_err(url_error)?;
            let connection = runtime
                .block_on(within(timeout, client.get_async_connection()))
                .map_err(connect_error)?;
            return Ok(Connections::Cluster { connection, pushes });
        }
        #[cfg(feature = "tls")]
        let client = match &self.tls_root {
            Some(root) => redis::Client::build_with_tls(self.url.as_str(), trusting(root)),
            None => redis::Client::open(self.url.as_str()),
        };
        #[cfg(not(feature = "tls"))]
        let client = redis::Client::open(self.url.as_str());
        let client = client.map_err(url_error)?;
        let pubsub = runtime
            .block_on(within(timeout, client.get_async_pubsub()))
            .map_err(connect_error)?;
        let publishing_runtime = current_thread()?;
        let publishing = publishing_runtime
            .block_on(publisher::open(&client, timeout))
            .map_err(connect_error)?;
        Ok(Connections::Standalone {
            client,
            pubsub,
            publishing,
            publishing_runtime,
        })
    }
}

/// Certificates that trust `root` (PEM) alone, with no client certificate.
#[cfg(feature = "tls")]
fn trusting(root: &[u8]) -> redis::TlsCertificates {
    redis::TlsCertificates {
        client_tls: None,
        root_cert: Some(root.to_vec()),
    }
}

/// A one-thread runtime for a bridge thread.
fn current_thread() -> Result<tokio::runtime::Runtime, BridgeError> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(BridgeError::Start)
}

/// `attempt`, failed with a time-out error if it takes longer than `timeout`.
async fn within<C>(
    timeout: Duration,
    attempt: impl std::future::Future<Output = redis::RedisResult<C>>,
) -> redis::RedisResult<C> {
    tokio::time::timeout(timeout, attempt)
        .await
        .unwrap_or_else(|_| Err(timed_out()))
}

fn timed_out() -> redis::RedisError {
    redis::RedisError::from(std::io::Error::new(
        std::io::ErrorKind::TimedOut,
        "connection attempt timed out",
    ))
}

/// `url` with the password, if any, replaced by `***`, for errors and `Debug`.
fn hide_password(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let Some((credentials, host)) = rest.rsplit_once('@') else {
        return url.to_owned();
    };
    match credentials.split_once(':') {
        Some((user, _)) => format!("{scheme}://{user}:***@{host}"),
        None => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::hide_password;

    #[test]
    fn passwords_are_hidden_from_messages() {
        assert_eq!(
            hide_password("redis://user:secret@host:1/0"),
            "redis://user:***@host:1/0"
        );
        assert_eq!(hide_password("redis://:secret@host"), "redis://:***@host");
        assert_eq!(hide_password("redis://host:6379"), "redis://host:6379");
        assert_eq!(hide_password("not a url"), "not a url");
    }
}
