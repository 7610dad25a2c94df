//! Redis Pub/Sub, in-process: channels, glob patterns, confirmations with counts and a
//! blocking `listen()`, between the threads of one program, with no server and no
//! serialisation.
//!
//! # Quick start
//!
//! ```
//! use std::time::Duration;
//! use fanout::{Broker, Message, PubSub};
//!
//! let broker = Broker::<str>::new();
//! let sub: PubSub<str> = broker.pubsub();
//! sub.subscribe(["channel"]);
//! sub.psubscribe(["news.*"]);
//!
//! let publisher = {
//!     let broker = broker.clone();
//!     std::thread::spawn(move || broker.publish("channel", "message"))
//! };
//! assert_eq!(publisher.join().unwrap(), 1); // deliveries, like PUBLISH's reply
//!
//! let received: Vec<Message<str>> =
//!     std::iter::from_fn(|| sub.get_message(Duration::ZERO)).collect();
//! assert_eq!(
//!     received,
//!     [
//!         Message::Subscribe { channel: "channel".into(), count: 1 },
//!         Message::PSubscribe { pattern: "news.*".into(), count: 2 },
//!         Message::Message { channel: "channel".into(), payload: "message".into() },
//!     ]
//! );
//! ```
//!
//! # Choosing the payload type `T`
//!
//! A `Broker<T>` carries `Arc<T>` payloads: a publish makes one `Arc` (or takes yours) and
//! every recipient shares it, so `T` need not be `Clone`, and nothing is copied per
//! subscriber.
//! [`publish`](Broker::publish) takes anything [`IntoPayload<T>`](IntoPayload): the value, an
//! `Arc<T>`, or the borrowed and owned forms of text and bytes.
//!
//! | `T` | pick it when | a publish of |
//! |---|---|---|
//! | `str` | text, mostly literals or borrowed (the usual choice, redis-py's `decode_responses=True`) | `&str` copies the text into one `Arc<str>`; a `String` too (one copy) |
//! | `String` | text you build at run time and hand over | a `String` is moved in without copying its bytes (one small `Arc` around it); `&str` copies |
//! | `[u8]` / `Vec<u8>` | bytes, as redis-py sees them by default | as `str` / `String` |
//! | your type | structured events between threads | the value is moved into its `Arc`, never serialised |
//!
//! All of them bridge to Redis (feature `redis`) through its [`Codec`] trait:
//! `str`, `String`, `[u8]`, `Vec<u8>` and `bytes::Bytes` as they are, serde types through
//! [`Json<T>`] (feature `json`), and your own type by implementing it.
//!
//! # Channels and patterns
//!
//! A [`PubSub`] handle subscribes to exact channels ([`PubSub::subscribe`]) and to Redis glob
//! patterns ([`PubSub::psubscribe`]). Patterns match exactly as Redis's matcher does, byte by
//! byte and case-sensitively: `*`, `?`, `[abc]`, `[^abc]`, `[a-z]` (reversed ranges too),
//! `\` escapes, an unclosed `[` running to the end, and `*` never matching the empty channel.
//! Every pattern is valid; hostile ones stay cheap. [`glob_match`] is the matcher itself.
//!
//! # Delivery, counts and ordering
//!
//! - Every (un)subscription queues one confirmation per name, in argument order, whose
//!   `count` is the handle's channels plus patterns after that name. Subscribing twice
//!   confirms again with an unchanged count and still delivers once; unsubscribing a name that
//!   is not subscribed confirms with an unchanged count.
//! - [`Broker::publish`] delivers to the channel's subscribers first, then once per matching
//!   pattern to each of that pattern's subscribers, and returns the number of deliveries: a handle
//!   on `news` and `n*` receives a [`Message::Message`] and a [`Message::PMessage`] and counts 2.
//! - Each handle sees one publisher's messages in publish order. A `Subscribe` confirmation
//!   comes before the first message it lets through, an `Unsubscribe` confirmation after the
//!   last. Once `subscribe` returns, every later publish reaches the handle; once
//!   `unsubscribe` returns, none does.
//! - [`Broker::channels`], [`Broker::numsub`] and [`Broker::numpat`] answer as
//!   `PUBSUB CHANNELS`, `NUMSUB` and `NUMPAT` do; a channel's entry goes away with its last
//!   subscriber.
//!
//! # Slow subscribers
//!
//! Queues are unbounded by default, as Redis buffers a subscriber's replies until its
//! output-buffer limit. [`Broker::builder`] (for every handle) and [`Broker::pubsub_builder`]
//! (for one) bound a queue to a number of deliveries and pick an [`Overflow`] policy.
//! Confirmations and notices never count against the bound and are never dropped.
//!
//! - [`Overflow::Block`] (the default once bounded): the publisher waits for room, holding no
//!   broker lock, so other publishers and (un)subscriptions go on; unsubscribing or closing the
//!   slow handle (or dropping it with its workers and streams) releases it at once.
//!   [`Broker::try_publish`] never waits and [`Broker::publish_timeout`] waits at most a while;
//!   both name the handles that were full.
//! - [`Overflow::DropNewest`]: a delivery that finds the queue full is dropped, and the
//!   reader gets [`Message::Lagged`] with the exact count before the next delivery.
//! - [`Overflow::DropOldest`]: the oldest queued deliveries make room (an eighth of the
//!   capacity at a time, at least one), and `Lagged` sits exactly where they were.
//! - [`Overflow::Disconnect`] (Redis's answer): the handle loses every subscription, its queue
//!   ends after what it holds, and [`PubSub::stats`] says why.
//!
//! ```
//! use std::time::Duration;
//! use fanout::{Broker, Message, Overflow};
//!
//! let broker = Broker::<str>::new();
//! let sub = broker.pubsub_builder().capacity(2).overflow(Overflow::DropNewest).build();
//! sub.subscribe(["prices"]);
//! for price in ["10", "11", "12", "13"] {
//!     broker.publish("prices", price); // 12 and 13 find the queue full
//! }
//! let read: Vec<_> = std::iter::from_fn(|| sub.get_message(Duration::ZERO)).collect();
//! assert_eq!(read[1..], [
//!     Message::Message { channel: "prices".into(), payload: "10".into() },
//!     Message::Message { channel: "prices".into(), payload: "11".into() },
//!     Message::Lagged { missed: 2 },
//! ]);
//! assert_eq!(sub.stats().dropped, 2);
//! ```
//!
//! A capacity of 0 is a rendezvous: a delivery is queued only while a reader waits for it in
//! [`PubSub::get_message`] or [`PubSub::listen`], in a [`Worker`] blocked on the queue, or
//! in a stream that returned `Pending` (feature `async`).
//!
//! To wait on several handles and other channels at once, register each handle's
//! [`PubSub::receiver`] with a `crossbeam_channel::Select`, wait with [`Select::ready`], and read
//! the handle it reports with `get_message(Duration::ZERO)` until it returns `None`; see
//! [`PubSub::receiver`] (a capacity-0 handle cannot be selected on).
//!
//! # Closing and dropping
//!
//! A handle lives as long as its [`PubSub`] or any [`Worker`] or [`MessageStream`] made from it:
//! a function may return just the worker or the stream, and the subscriptions stay. Once all
//! of them are dropped, the handle's subscriptions leave the broker at once, without
//! confirmations. [`PubSub::close`] (or [`MessageStream::close`], or stopping every worker and
//! dropping the rest) removes them and ends the handle's queue after what it
//! holds, so a `listen()` blocked in another thread yields the rest and ends (and the raw
//! receiver reports disconnection). [`Broker::close`] does that to every live handle, with
//! subscriptions or without (a `listen_forever()`, a worker or a stream waiting on a handle
//! that holds none ends too), and to handles made while it runs; later publishes return 0
//! and later (un)subscriptions do nothing ([`PubSub::is_closed`] tells). [`PubSub::listen`]
//! also ends by itself once the handle has no subscriptions left and its queue is empty,
//! also when another thread removed the last one and also when confirmations are ignored.
//! Once every [`Broker`] clone is dropped (a `Bridge` holds one too), nothing can publish
//! to a handle any more, so each ends as [`Broker::close`] ends it: its readers, workers and
//! streams take what is queued and end, and [`PubSub::recv_timeout`] reports
//! [`Disconnected::BrokerDropped`], as a crossbeam or tokio receiver ends once its senders
//! are gone.
//!
//! # Handlers and workers
//!
//! [`PubSub::subscribe_with`] and [`PubSub::psubscribe_with`] register a handler that gets
//! the subscription's deliveries instead of the reader, as redis-py's `subscribe(ch=handler)`.
//! Whichever thread reads the handle calls it, with no lock held, so a handler may subscribe,
//! unsubscribe, publish, or stop a worker. [`PubSub::run_in_thread`] (or [`PubSub::worker`])
//! starts a [`Worker`] thread that blocks on the queue and hands each delivery to its handler;
//! a handler panic goes to the panic handler and the worker goes on, or, without one, stops
//! the worker and [`Worker::join`] reports it. Notices (`Lagged`, `HighWater`, a bridge's
//! `Gap`) go to [`WorkerBuilder::on_notice`], or are counted by [`Worker::unhandled_notices`].
//! Handlers are `Fn`, so the state they change lives in atomics or a `Mutex`; a handler
//! stops its own worker through a [`StopHandle::new`] given to
//! [`WorkerBuilder::stop_handle`]. [`PubSub::listen_forever`] is a `listen()` that
//! outlives the handle's last subscription and ends only when the handle is closed.
//!
//! ```
//! use std::sync::mpsc;
//! use std::sync::Mutex;
//! use fanout::{Broker, Message};
//!
//! let broker = Broker::<str>::new();
//! let sub = broker.pubsub();
//! let (tx, rx) = mpsc::channel();
//! let tx = Mutex::new(tx);
//! sub.subscribe_with("orders", move |m: Message<str>| {
//!     tx.lock().unwrap().send(m.payload().unwrap().len()).unwrap();
//! });
//! let worker = sub.run_in_thread().unwrap();
//! broker.publish("orders", "four");
//! assert_eq!(rx.recv().unwrap(), 4);
//! drop(worker); // stops it and waits for it
//! ```
//!
//! # Beyond Redis
//!
//! Three opt-in options and a publisher handle that Redis Pub/Sub does not have; with none
//! used, nothing changes.
//!
//! - **Retained history and replay**: [`BrokerBuilder::history`] keeps the last payloads of
//!   each channel (within a bound on channels), and a handle made with
//!   [`PubSubBuilder::replay`] gets them after each new subscription's confirmation, as
//!   [`Message::Replay`]. A publish concurrent with the subscription is either replayed or
//!   delivered live, never both, never neither.
//! - **One delivery per publish** (Redis's proposed `NOPUBDUP`):
//!   [`PubSubBuilder::one_delivery_per_publish`] makes a publish that matches several of a
//!   handle's subscriptions reach it once.
//! - **A warning before loss**: [`PubSubBuilder::high_water`] queues a
//!   [`Message::HighWater`] notice when a bounded queue reaches a mark, before any delivery is
//!   lost; [`PubSubStats::peak_queued`] keeps the most it has held.
//! - **Publishers that know whether anyone listens**: [`Broker::publisher`] makes a
//!   [`Publisher`] for one channel, whose publishes skip finding the channel by name, and
//!   whose [`is_matched`](Publisher::is_matched) says whether a publish would reach anyone
//!   (patterns included, which Redis's `PUBSUB NUMSUB` leaves out);
//!   [`wait_matched`](Publisher::wait_matched), [`wait_unmatched`](Publisher::wait_unmatched)
//!   and [`matching_changes`](Publisher::matching_changes) wait for it or report each
//!   [`Matching`] change, so a costly producer runs only while someone listens.
//!
//! ```
//! use fanout::{Broker, Overflow};
//!
//! let broker = Broker::<str>::builder().history(1, 10_000).build(); // last price, 10,000 markets
//! broker.publish("prices.eu", "101.5");
//! broker.publish("prices.us", "99.8"); // nobody listens yet: kept all the same
//!
//! let dashboard = broker.pubsub_builder().replay(true).build();
//! dashboard.psubscribe("prices.*");
//! broker.publish("prices.eu", "101.7");
//! let kinds: Vec<_> = dashboard.listen().take(4).map(|m| m.kind()).collect();
//! assert_eq!(kinds, ["psubscribe", "replay", "replay", "pmessage"]);
//! assert_eq!(broker.retained(None), [("prices.eu".to_string(), 1), ("prices.us".to_string(), 1)]);
//!
//! let once = broker.pubsub_builder().one_delivery_per_publish(true).build();
//! once.subscribe("news");
//! once.psubscribe(["n*", "*"]);
//! assert_eq!(broker.publish("news", "hello"), 1); // Redis: 3
//!
//! let sub = broker.pubsub_builder().capacity(100).overflow(Overflow::DropOldest).high_water(80).build();
//! sub.subscribe("ticks");
//! for i in 0..80 {
//!     broker.publish("ticks", i.to_string());
//! }
//! assert_eq!(sub.listen().nth(81).map(|m| m.kind()), Some("high_water")); // after 80 ticks
//! assert_eq!(sub.stats().peak_queued, 80);
//!
//! let broker = Broker::<str>::new();
//! let frames = broker.publisher("frames");
//! assert!(!frames.is_matched()); // nobody would see a frame: not worth rendering
//! let viewer = broker.pubsub();
//! viewer.psubscribe("fr*");
//! assert!(frames.is_matched());
//! ```
//!
//! # Guarantees
//!
//! - **Order**: each handle sees one publisher's messages in publish order, whatever the
//!   policy (a policy may leave gaps, never reorder, when read with `get_message`/`listen`).
//! - **Clean cuts**: once `subscribe` returns, every later publish reaches the handle; once
//!   `unsubscribe` returns, none does; confirmations sit between the two sides.
//! - **Exactly once** per matching subscription for unbounded and `Block` queues under
//!   `publish`: nothing lost, nothing twice.
//! - **At most once, never silently** for `DropNewest`, `DropOldest`, and `Block` under
//!   `try_publish`/`publish_timeout`: every delivery lost is counted in a `Lagged` notice and
//!   in the stats. `Disconnect` is at most once too; its loss ends the handle instead.
//! - **Cancelled async publishes lose nothing unseen**: a `publish_async` dropped while it
//!   waits for a full `Block` queue (a `timeout`, a `select!`) keeps the deliveries it made;
//!   each handle it was still waiting for counts the delivery as dropped and reads a
//!   `Lagged` notice where it would have been, as under `try_publish`.
//! - **Counters add up**: the sum of what `publish` returned is [`BrokerStats::delivered`]
//!   (plus the deliveries of cancelled `publish_async` calls, which return nothing);
//!   a handle's deliveries read, still queued, or evicted by `DropOldest` add up to its
//!   [`PubSubStats::delivered`], and its `Lagged` notices add up to its
//!   [`PubSubStats::dropped`] (but for the delivery a `Disconnect` handle loses as it ends,
//!   which ends it instead of making a notice).
//! - **Replays cut cleanly**: with [`BrokerBuilder::history`], a publish made while a
//!   [`PubSubBuilder::replay`] handle subscribes is either replayed or delivered live to it,
//!   never both, never neither, subscription by subscription; a
//!   [`PubSubBuilder::one_delivery_per_publish`] handle gets each publish at most once, live
//!   or replayed, while one of its subscriptions that receive the channel stands, and live
//!   once as long as one of its subscriptions that matched it stands (a delivery waiting for
//!   room moves to another when its own is removed).
//! - **A warning comes before loss**: a [`Message::HighWater`] notice is read before the first
//!   loss under `Disconnect` and `DropOldest`.
//! - **Matching status is exact and in order**: once a subscription that matches a
//!   [`Publisher`]'s channel returned, its `is_matched()` is `true`; once the last one went
//!   (unsubscribed, its handle closed, dropped or disconnected, or the broker closed), it is
//!   `false`; with no queue full, it is `false` exactly when a publish would return 0 (local
//!   handles only, on a bridged broker). Its changes alternate, each reported once, in order.
//! - **Nothing waits for ever by itself**: `listen()` ends once the handle has no
//!   subscription and nothing queued, whichever thread removed the last one;
//!   [`Broker::close`], or dropping the last broker clone, ends every reader of every handle
//!   after what it queued; a worker or a stream counts as a waiting reader of a capacity-0
//!   handle, as `get_message` does.
//!
//! # Cost model
//!
//! A publish locks one stripe of the channel map (64 stripes, so publishers on different channels
//! seldom meet), and, only while patterns exist, reads the pattern table. There a cache remembers
//! which patterns match a channel published before (one lookup, whatever the number of patterns P);
//! for a channel not in the cache, an index hands over the patterns that may match it, a few hash
//! lookups whatever P (one per window of the channel for patterns whose literal sits between two
//! `*`s), and [`glob_match`] confirms each. A pattern is indexed by the longest run of literal
//! bytes every match must hold (at a fixed offset from the channel's start or end, or anywhere);
//! one with no literal byte (`*`, `?*`, `[ab]*`) is tested on every such publish, as Redis tests
//! every pattern. Each delivery is one `Arc` clone of the payload (the last one takes the
//! publisher's), pushed into the handle's `crossbeam-channel` queue as a 24-byte item that names
//! its subscription by slot: the reader takes the channel's name from its handle's own table, so a
//! publisher touches no name's reference count and nothing is copied or formatted. The deliveries
//! of one publish to patterns share one envelope (one allocation per such publish). A bounded queue
//! counts its deliveries exactly: a publisher claims a place with one compare-and-swap, a read
//! gives it back, and a publisher waiting under `Block` is woken by the read that makes room
//! (`DropOldest` locks the queue instead, and evicts from its head, a batch at a time, whatever
//! else it holds). A publish issues one fence for all its deliveries under one lock, to see which
//! readers wait (looking at no handle while no reader of the broker waits), and wakes them after
//! letting go of its locks. Statistics are relaxed atomic adds: the broker's per stripe, a handle's
//! its own. A read locks the handle's subscription table (uncontended unless several threads read
//! one handle), takes the item and clones the name into the [`Message`]. A subscription on a
//! channel of its own costs about 145 bytes, a queued delivery about 32 bytes beyond the payload (a
//! 24-byte item plus the queue's slot state; BENCHMARKS.md has the measurements).
//!
//! # Cargo features
//!
//! - `async` (off by default): [`PubSub::stream()`] returns a [`MessageStream`], a
//!   `futures_core::Stream` of the handle's messages, woken by publishers, for any executor;
//!   [`Broker::publish_async`] waits for a full `Block` queue without blocking the thread.
//! - `redis` (off by default): [`Bridge`] attaches a broker to a Redis server or cluster, so
//!   its publishes reach every attached process and redis-py clients on the same channels, and
//!   theirs reach its handles; see [Scaling out](#scaling-out-feature-redis). It adds `redis`
//!   (redis-rs) and a one-thread `tokio` runtime.
//! - `cluster` (off by default, implies `redis`): [`BridgeBuilder::cluster`] attaches it to a
//!   Redis Cluster instead, through redis-rs's cluster client, which `redis` alone does not
//!   build.
//! - `json` (off by default, implies `redis`): [`bridge::Json<T>`] carries any serde type across
//!   Redis as JSON text.
//! - `tls` (off by default, implies `redis`): `rediss://` URLs, over rustls with the `ring`
//!   crypto provider; [`BridgeBuilder::tls_root_certificate`] trusts a CA of your own.
//!
//! The default build depends on `parking_lot`, `crossbeam-channel`, `hashbrown`, `foldhash`
//! and `smallvec` only.
//!
//! # Scaling out (feature `redis`)
//!
//! The same calls, with Redis doing the distribution: a [`Bridge`] keeps one Redis connection
//! subscribed to the union of what local handles need, sends publishes pipelined on another,
//! and delivers what Redis sends to the local handles of that channel or pattern. Payloads
//! cross as raw bytes through [`Codec`] (built in for `str`, `String`, `[u8]`, `Vec<u8>` and
//! `bytes::Bytes`; serde types with [`Json<T>`], feature `json`). [`Route`] chooses between one
//! global order (publishes go to Redis and come back; the default) and local speed (local
//! delivery at once, the echo skipped). A lost connection is retried with back-off, and each
//! subscribed handle reads a [`Message::Gap`] notice where messages may be missing.
//! [`BridgeBuilder::cluster`] (feature `cluster`) uses Redis Cluster's sharded Pub/Sub
//! (`SSUBSCRIBE`/`SPUBLISH`), where, as in Redis, patterns are not consulted.
//!
//! ```no_run
//! # #[cfg(feature = "redis")]
//! # fn main() -> Result<(), fanout::BridgeError> {
//! use fanout::{Bridge, Broker};
//!
//! let broker = Broker::<str>::new();
//! let bridge = Bridge::connect(&broker, "redis://127.0.0.1:6379")?;
//! let p = broker.pubsub();
//! p.subscribe(["channel"]); // SUBSCRIBE channel, on Redis, once for every local handle
//! broker.publish("channel", "message"); // PUBLISH; every subscriber anywhere gets it once
//! # drop(bridge);
//! # Ok(())
//! # }
//! # #[cfg(not(feature = "redis"))]
//! # fn main() {}
//! ```
//!
//! # Divergences from Redis
//!
//! - `unsubscribe([])` and `punsubscribe([])` do nothing; [`PubSub::unsubscribe_all`] and
//!   [`PubSub::punsubscribe_all`] say "all" explicitly, in subscription order, and send
//!   nothing when there is nothing to remove (Redis sends one confirmation with a null name).
//! - A pattern confirmation keeps its pattern in [`Message::pattern`], where redis-py puts it
//!   in `channel`.
//! - Glob range ends compare as unsigned bytes (Redis compares C `char`, signed on x86).
//! - Channels and patterns are `&str`, so they are valid UTF-8; payloads are any `T`.
//! - [`Broker::channels`] is sorted.
//! - [`PubSub::get_message`] skips messages that went to a handler (or were ignored) and keeps
//!   waiting, within its timeout, for one to return; redis-py returns `None` for them.
//! - Redis bounds a subscriber's output buffer in bytes and disconnects it; here the bound is
//!   a number of deliveries and disconnecting is one policy of four
//!   ([`Message::Lagged`] is not a Redis message).
//! - More than [`MAX_STAR_NESTING`] nested `*` groups give "no match", as Redis does since
//!   its fix for CVE-2024-31228 (older servers recurse further).
//! - On a bridged broker, `publish` returns the local deliveries (made, or to be made when the
//!   message comes back from Redis), not Redis's count of receivers in every process, which
//!   would cost a round trip per publish.
//!
#![cfg_attr(feature = "redis", doc = "[`Bridge`]: crate::Bridge")]
#![cfg_attr(
    not(feature = "redis"),
    doc = "[`Bridge`]: https://docs.rs/fanout/latest/fanout/struct.Bridge.html"
)]
#![cfg_attr(feature = "redis", doc = "[`Codec`]: crate::Codec")]
#![cfg_attr(
    not(feature = "redis"),
    doc = "[`Codec`]: https://docs.rs/fanout/latest/fanout/trait.Codec.html"
)]
#![cfg_attr(feature = "redis", doc = "[`Route`]: crate::Route")]
#![cfg_attr(
    not(feature = "redis"),
    doc = "[`Route`]: https://docs.rs/fanout/latest/fanout/enum.Route.html"
)]
#![cfg_attr(
    feature = "tls",
    doc = "[`BridgeBuilder::tls_root_certificate`]: crate::BridgeBuilder::tls_root_certificate"
)]
#![cfg_attr(
    not(feature = "tls"),
    doc = "[`BridgeBuilder::tls_root_certificate`]: https://docs.rs/fanout/latest/fanout/struct.BridgeBuilder.html#method.tls_root_certificate"
)]
#![cfg_attr(
    feature = "cluster",
    doc = "[`BridgeBuilder::cluster`]: crate::BridgeBuilder::cluster"
)]
#![cfg_attr(
    not(feature = "cluster"),
    doc = "[`BridgeBuilder::cluster`]: https://docs.rs/fanout/latest/fanout/struct.BridgeBuilder.html#method.cluster"
)]
#![cfg_attr(feature = "async", doc = "[`MessageStream`]: crate::MessageStream")]
#![cfg_attr(
    not(feature = "async"),
    doc = "[`MessageStream`]: https://docs.rs/fanout/latest/fanout/struct.MessageStream.html"
)]
#![cfg_attr(
    feature = "async",
    doc = "[`MessageStream::close`]: crate::MessageStream::close"
)]
#![cfg_attr(
    not(feature = "async"),
    doc = "[`MessageStream::close`]: https://docs.rs/fanout/latest/fanout/struct.MessageStream.html#method.close"
)]
#![cfg_attr(feature = "async", doc = "[`PubSub::stream()`]: crate::PubSub::stream")]
#![cfg_attr(
    not(feature = "async"),
    doc = "[`PubSub::stream()`]: https://docs.rs/fanout/latest/fanout/struct.PubSub.html#method.stream"
)]
#![cfg_attr(
    feature = "async",
    doc = "[`Broker::publish_async`]: crate::Broker::publish_async"
)]
#![cfg_attr(
    not(feature = "async"),
    doc = "[`Broker::publish_async`]: https://docs.rs/fanout/latest/fanout/struct.Broker.html#method.publish_async"
)]
#![cfg_attr(feature = "json", doc = "[`bridge::Json<T>`]: crate::bridge::Json")]
#![cfg_attr(
    not(feature = "json"),
    doc = "[`bridge::Json<T>`]: https://docs.rs/fanout/latest/fanout/bridge/struct.Json.html"
)]
#![cfg_attr(feature = "json", doc = "[`Json<T>`]: crate::bridge::Json")]
#![cfg_attr(
    not(feature = "json"),
    doc = "[`Json<T>`]: https://docs.rs/fanout/latest/fanout/bridge/struct.Json.html"
)]
#![forbid(unsafe_code)]
// docs.rs (nightly) labels every item behind a feature with it.
#![cfg_attr(docsrs, feature(doc_cfg))]
#![warn(missing_docs)]

#[cfg(feature = "redis")]
pub mod bridge;
mod broker;
mod builder;
mod config;
mod engine;
mod error;
mod handle;
mod into_names;
mod into_payload;
mod item;
mod kind;
mod message;
#[cfg(all(test, loom))]
mod model_check;
mod name;
mod options;
mod owner;
mod pattern;
mod publisher;
mod pubsub;
mod shrink;
mod stats;
#[cfg(feature = "async")]
mod stream;
mod sync;
mod wait;
mod worker;

#[cfg(feature = "redis")]
pub use bridge::{Bridge, BridgeBuilder, BridgeError, BridgeStats, Codec, Route};
pub use broker::Broker;
pub use builder::{BrokerBuilder, PubSubBuilder};
pub use config::Overflow;
pub use error::{HandleClosed, HandlerPanic, PublishError, RecvTimeoutError, WorkerError};
pub use handle::SubscriberId;
pub use into_names::{Each, IntoNames};
pub use into_payload::IntoPayload;
pub use item::Queued;
pub use message::Message;
pub use pattern::{glob_match, MAX_STAR_NESTING};
#[cfg(feature = "async")]
pub use publisher::MatchingStream;
pub use publisher::{Matching, MatchingChanges, Publisher};
pub use pubsub::PubSub;
pub use stats::{BrokerStats, Disconnected, PubSubStats};
#[cfg(feature = "async")]
pub use stream::MessageStream;
pub use worker::{StopHandle, Worker, WorkerBuilder};

/// crossbeam-channel's `Select`, to wait on several handles' [`PubSub::receiver`]s and other
/// crossbeam channels at once, with `fanout` as the only dependency: the recipe is at
/// [`PubSub::receiver`].
pub use crossbeam_channel::Select;

/// README.md's Rust blocks, run as doc tests so that the guide follows the code.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
