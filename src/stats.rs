//! Counters a user can read: plain structs, filled from relaxed atomics.

use std::fmt;

/// Counters of a [`Broker`](crate::Broker), from [`Broker::stats`](crate::Broker::stats).
///
/// Each counter is read on its own without stopping publishers, so under load the fields
/// are each exact but not taken at one instant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct BrokerStats {
    /// `publish`, `try_publish` and `publish_timeout` calls made before the broker closed.
    pub published: u64,
    /// Deliveries queued: the sum of what the publish calls returned.
    pub delivered: u64,
    /// Deliveries lost to a full queue: refused, or evicted by `DropOldest`.
    pub dropped: u64,
    /// Channels with at least one subscriber now.
    pub channels: usize,
    /// Unique patterns subscribed now.
    pub patterns: usize,
    /// [`PubSub`](crate::PubSub) handles not yet dropped (with their workers and streams),
    /// closed ones included.
    pub subscribers: usize,
    /// Channels whose last payloads the history keeps now (see
    /// [`BrokerBuilder::history`](crate::BrokerBuilder::history)); 0 without history.
    pub retained_channels: usize,
    /// Retained channels the history let go of to stay within its bound, least recently
    /// published first.
    pub history_evicted: u64,
}

/// Counters of one [`PubSub`](crate::PubSub) handle, from [`PubSub::stats`](crate::PubSub::stats).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct PubSubStats {
    /// Items in the queue now: deliveries, confirmations and notices.
    pub queued: usize,
    /// Deliveries ever queued for this handle.
    pub delivered: u64,
    /// Deliveries this handle lost to a full queue: refused, or evicted by `DropOldest`.
    pub dropped: u64,
    /// [`Message::Lagged`](crate::Message::Lagged) notices given for those gaps, read or
    /// still queued. A `DropOldest` eviction next to an unread notice adds to that notice
    /// instead of making another, so a reader that stopped holds one notice, not one per
    /// eviction; their `missed` counts add up to `dropped`, except for the one delivery a
    /// `Disconnect` handle loses as it ends (counted in `dropped`, with no notice).
    pub lagged: u64,
    /// The most deliveries this handle's bounded queue has held at once (0 for an unbounded
    /// queue, which does not keep count): how close it came to its capacity.
    pub peak_queued: usize,
    /// [`Message::HighWater`](crate::Message::HighWater) notices given (see
    /// [`PubSubBuilder::high_water`](crate::PubSubBuilder::high_water)).
    pub high_water: u64,
    /// Why the handle stopped receiving, if it did.
    pub disconnected: Option<Disconnected>,
}

/// Why a handle no longer has subscriptions and its queue ends after what it holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Disconnected {
    /// [`PubSub::close`](crate::PubSub::close) was called.
    Closed,
    /// [`Broker::close`](crate::Broker::close) was called.
    BrokerClosed,
    /// A delivery found the queue full under [`Overflow::Disconnect`](crate::Overflow::Disconnect).
    Overflow,
    /// Every [`Broker`](crate::Broker) clone was dropped (and every
    /// [`Bridge`] (feature `redis`), which holds one): nothing can publish to the handle any
    /// more, so it ends as a crossbeam or tokio receiver does once its senders are gone.
    ///
    #[cfg_attr(feature = "redis", doc = "[`Bridge`]: crate::Bridge")]
    #[cfg_attr(
        not(feature = "redis"),
        doc = "[`Bridge`]: https://docs.rs/fanout/latest/fanout/struct.Bridge.html"
    )]
    BrokerDropped,
}

impl fmt::Display for Disconnected {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Disconnected::Closed => "closed by its handle",
            Disconnected::BrokerClosed => "the broker was closed",
            Disconnected::Overflow => "disconnected: queue full",
            Disconnected::BrokerDropped => "every broker was dropped",
        })
    }
}
