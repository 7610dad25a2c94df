//! What a broker and its handles are set up with: plain values, read by the builders that
//! fill them in and by the parts that act on them.

/// What a bounded queue does with a delivery that finds it full.
///
/// Confirmations and [`Message::Lagged`](crate::Message::Lagged) notices never count against the capacity and are
/// never dropped, whatever the policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum Overflow {
    /// The publisher waits for room, as `bus` and bounded `crossbeam-channel`s do, holding no
    /// broker lock while it waits. Unsubscribing or closing the handle (or dropping it with
    /// its workers and streams) releases it at once. [`Broker::try_publish`](crate::Broker::try_publish) never waits and
    /// [`Broker::publish_timeout`](crate::Broker::publish_timeout) waits at most a while; both
    /// report the handles that were full. The default, as for bounded Rust channels.
    #[default]
    Block,
    /// The new delivery is dropped; the reader gets `Lagged { missed }` before the next
    /// delivery (or as soon as it has read everything queued).
    DropNewest,
    /// The oldest queued deliveries are dropped to make room, and the reader gets
    /// `Lagged { missed }` exactly where they were. Room is made in batches of an eighth of
    /// the capacity (at least one), so a reader that has stopped costs its publishers O(1)
    /// per message rather than a pass over the queue each time.
    DropOldest,
    /// Redis's choice: the handle is disconnected. It loses every subscription, its queue ends
    /// after what was already in it, and its stats say why.
    Disconnect,
}

/// The queue a new handle gets unless its builder says otherwise.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct QueueConfig {
    pub(crate) capacity: Option<usize>,
    pub(crate) overflow: Overflow,
    /// redis-py's `ignore_subscribe_messages`.
    pub(crate) ignore_confirmations: bool,
    /// Retained payloads are replayed after each new subscription's confirmation.
    pub(crate) replay: bool,
    /// A publish reaches the handle once, however many of its subscriptions match.
    pub(crate) one_per_publish: bool,
    /// A bounded queue's high-water mark, as asked for (clamped by `Bound::new`).
    pub(crate) high_water: Option<usize>,
}

/// How much history a broker keeps.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct HistoryLimits {
    /// Payloads kept per channel, the newest.
    pub(crate) per_channel: usize,
    /// Channels kept, the most recently published.
    pub(crate) channels: usize,
}
