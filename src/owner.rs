//! What keeps a handle's subscriptions: its [`PubSub`](crate::PubSub) and every worker and
//! stream made from it hold an [`Owner`]; when the last of them goes, the handle is closed.

use std::sync::Arc;

use crate::registry::Registry;
use crate::stats::Disconnected;
use crate::subscriber::Subscriber;

/// Shared by a handle, its workers and its streams. Dropping the last one removes the
/// handle's subscriptions at once, without confirmations, as `PubSub::close` does.
pub(crate) struct Owner<T: ?Sized> {
    registry: Arc<Registry<T>>,
    subscriber: Arc<Subscriber<T>>,
}

impl<T: ?Sized> Owner<T> {
    pub(crate) fn new(registry: Arc<Registry<T>>, subscriber: Arc<Subscriber<T>>) -> Arc<Self> {
        Arc::new(Owner {
            registry,
            subscriber,
        })
    }

    /// The broker the handle belongs to.
    pub(crate) fn registry(&self) -> &Arc<Registry<T>> {
        &self.registry
    }

    /// Closes the handle: its subscriptions go at once and its queue ends after what it holds.
    pub(crate) fn close(&self) {
        self.registry.detach(&self.subscriber, Disconnected::Closed);
    }
}

impl<T: ?Sized> Drop for Owner<T> {
    fn drop(&mut self) {
        self.close();
        self.registry.handle_dropped(self.subscriber.id());
    }
}
