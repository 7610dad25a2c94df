//! What the Redis bridge (feature `redis`) hooks into: the index tells a watcher of names
//! coming and going, and a publish goes to an outbound bridge instead of straight to local
//! queues. Compiled only with the feature, so the default build has no code that exists
//! only for the bridge.

use std::sync::Arc;

use super::publish::Published;
use crate::kind::Kind;
use crate::wait::Wait;

/// A channel or a pattern, by name.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) struct Topic {
    pub(crate) kind: Kind,
    pub(crate) name: Arc<str>,
}

impl Topic {
    pub(crate) fn new(kind: Kind, name: Arc<str>) -> Self {
        Topic { kind, name }
    }
}

/// A name whose first subscriber came or whose last went: what a bridge mirrors to Redis.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(crate) enum Change {
    /// A channel or pattern got its first subscriber.
    Added(Topic),
    /// A channel or pattern lost its last subscriber.
    Removed(Topic),
}

/// Told of every [`Change`], under the index lock that made it, so changes to one name
/// arrive in the order they happened. Must not block, nor take any lock but its own.
pub(crate) type Watcher = Arc<dyn Fn(Change) + Send + Sync>;

/// Where publishes go instead of straight to local queues: a Redis bridge.
pub(crate) trait Outbound<T: ?Sized>: Send + Sync {
    /// Publishes `payload` on `channel` through the bridge, waiting for room as `wait` allows.
    fn publish(&self, channel: &str, payload: Arc<T>, wait: Wait) -> Published;

    /// `publish` for async callers: waits for room without blocking the thread.
    #[cfg(feature = "async")]
    fn publish_async<'a>(
        &'a self,
        channel: &'a str,
        payload: Arc<T>,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Published> + Send + 'a>>;

    /// The broker was closed: publishers waiting for room in the bridge are released, and
    /// later publishes are refused.
    fn broker_closed(&self);

    /// Makes `change`, a local handle's subscription change, where the bridge's order of
    /// messages puts it (`bridge/order.rs`). Called with no lock held; may block for a round
    /// trip to Redis.
    fn in_order(&self, change: &mut dyn FnMut());
}
