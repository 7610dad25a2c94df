//! What keeps a handle's subscriptions: its [`PubSub`](crate::PubSub) and every worker and
//! stream made from it share one [`Owner`]; when the last of them goes, the handle is closed.

use std::sync::Arc;

use crate::config::QueueConfig;
use crate::engine::Registry;
use crate::handle::Handle;
use crate::stats::Disconnected;

/// Shared by a handle's `PubSub`, workers and streams. When the last of them goes, the handle
/// is closed at once, without confirmations, as `PubSub::close` does.
pub(crate) struct Owner<T: ?Sized> {
    registry: Arc<Registry<T>>,
    handle: Arc<Handle<T>>,
}

impl<T: ?Sized> Owner<T> {
    /// A new handle of `registry`'s with `config`'s queue, owned.
    pub(crate) fn new(registry: Arc<Registry<T>>, config: QueueConfig) -> Arc<Self> {
        let handle = registry.new_handle(&config);
        Arc::new(Owner { registry, handle })
    }

    /// The handle owned.
    pub(crate) fn handle(&self) -> &Arc<Handle<T>> {
        &self.handle
    }

    /// The broker the handle belongs to.
    pub(crate) fn registry(&self) -> &Registry<T> {
        &self.registry
    }

    /// Closes the handle: its subscriptions go at once and its queue ends after what it holds.
    pub(crate) fn close(&self) {
        let registry = &self.registry;
        registry.in_order_leaving(&self.handle, || {
            registry.detach(&self.handle, Disconnected::Closed)
        });
    }
}

impl<T: ?Sized> Drop for Owner<T> {
    fn drop(&mut self) {
        let registry = &self.registry;
        registry.in_order_leaving(&self.handle, || registry.handle_dropped(&self.handle));
    }
}
