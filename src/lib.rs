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
//!   pattern to each of that pattern's subscribers, and returns the number of deliveries: a
//!   handle on `news` and `n*` receives a `Message` and a `PMessage` and counts 2.
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
//! Each handle's queue is unbounded, as Redis buffers a subscriber's replies until its
//! output-buffer limit: a publisher never waits, and a handle that stops reading keeps
//! everything sent to it until it reads or drops. Bounded queues with overflow policies are
//! planned; until then, drop (or unsubscribe) a handle you no longer read.
//!
//! # Closing and dropping
//!
//! Dropping a [`PubSub`] removes all its subscriptions from the broker at once, without
//! confirmations. [`PubSub::listen`] ends by itself once the handle has no subscriptions left
//! and its queue is empty. Dropping every [`Broker`] clone keeps live handles working.
//!
//! # Cost model
//!
//! A publish locks one stripe of the channel map (64 stripes, so publishers on different
//! channels seldom meet), and, only while patterns exist, reads the pattern table and tests
//! each pattern. Each delivery is one `Arc` clone of the payload and one clone of the
//! channel's shared name, pushed into the handle's `crossbeam-channel` queue; nothing is
//! copied or formatted.
//!
//! # Cargo features
//!
//! None yet; the default build depends on `parking_lot` and `crossbeam-channel` only.
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
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod broker;
mod builder;
mod error;
mod message;
mod pattern;
mod policy;
mod pubsub;
mod registry;
mod stats;
mod subscriber;

pub use broker::Broker;
pub use builder::{BrokerBuilder, PubSubBuilder};
pub use error::PublishError;
pub use message::Message;
pub use pattern::{glob_match, MAX_STAR_NESTING};
pub use policy::Overflow;
pub use pubsub::PubSub;
pub use stats::{BrokerStats, Disconnected, PubSubStats};
pub use subscriber::SubscriberId;
