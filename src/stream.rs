//! Messages as an async `Stream` (feature `async`).

use std::fmt;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use futures_core::Stream;

use crate::handle::{waiter_id, Handle, Nothing};
use crate::message::Message;
use crate::owner::Owner;
use crate::wait::Wait;

/// A handle's messages as a [`futures_core::Stream`], from [`PubSub::stream`](crate::PubSub::stream).
///
/// Works on any executor. It is woken exactly when something is queued for it (an idle
/// stream is not polled again), gives deliveries with a handler to the handler, skips
/// confirmations when the handle ignores them, and ends once the handle is closed or
/// disconnected and everything queued was read.
///
/// It holds its handle: a stream returned alone from a function keeps its subscriptions, and
/// they go once both the stream and the [`PubSub`](crate::PubSub) are gone (or at
/// [`close`](MessageStream::close)). Like [`PubSub::listen_forever`](crate::PubSub::listen_forever),
/// it does not end when the last subscription goes. Reading never blocks the thread.
///
/// Cancel safe: a message is taken from the queue only by the poll that returns it, so a
/// `next()` dropped unfinished (the branch that lost a `tokio::select!`) loses nothing.
#[must_use = "dropping a `MessageStream` lets its handle go (and its subscriptions with it, once the `PubSub` is gone too)"]
pub struct MessageStream<T: ?Sized> {
    /// The handle lives as long as this stream (dropped after `Drop::drop` below has run).
    owner: Arc<Owner<T>>,
    /// Tells this stream's waker from the other streams' of the same handle.
    id: u64,
    /// Whether the last poll returned `Pending`: the stream then counts as a waiting reader,
    /// room for a rendezvous queue (capacity 0), until it is polled again or dropped.
    waiting: bool,
}

impl<T: ?Sized> MessageStream<T> {
    pub(crate) fn new(owner: Arc<Owner<T>>) -> Self {
        MessageStream {
            owner,
            id: waiter_id(),
            waiting: false,
        }
    }

    /// Closes the handle this stream reads, as [`PubSub::close`](crate::PubSub::close) does:
    /// its subscriptions go at once, and the stream (with every other reader of the handle)
    /// ends after what was queued.
    ///
    /// # Examples
    ///
    /// ```
    /// use futures::StreamExt;
    /// use fanout::{Broker, MessageStream};
    ///
    /// fn ticks(broker: &Broker<str>) -> MessageStream<str> {
    ///     let sub = broker.pubsub_builder().ignore_subscribe_messages(true).build();
    ///     sub.subscribe("ticks");
    ///     sub.stream() // the stream keeps the handle, and its subscription, alive
    /// }
    ///
    /// let broker = Broker::<str>::new();
    /// let mut stream = ticks(&broker);
    /// assert_eq!(broker.publish("ticks", "1"), 1);
    /// stream.close();
    /// assert_eq!(broker.publish("ticks", "2"), 0);
    /// futures::executor::block_on(async {
    ///     assert_eq!(stream.next().await.unwrap().data(), Some("1"));
    ///     assert!(stream.next().await.is_none());
    /// });
    /// ```
    pub fn close(&self) {
        self.owner.close();
    }

    /// Counts this stream as a waiting reader of a bounded queue, or stops counting it.
    fn set_waiting(&mut self, waiting: bool) {
        if self.waiting == waiting {
            return;
        }
        self.waiting = waiting;
        self.handle().queue().reader_waiting(waiting);
    }

    fn handle(&self) -> &Handle<T> {
        self.owner.handle()
    }

    /// The next message for the reader, or why there is none.
    fn next_now(&self) -> Result<Message<T>, Nothing> {
        self.handle().next_for_reader(Wait::Never)
    }
}

impl<T: ?Sized> Stream for MessageStream<T> {
    type Item = Message<T>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Message<T>>> {
        let this = self.get_mut();
        match this.next_now() {
            Ok(message) => {
                this.set_waiting(false);
                return Poll::Ready(Some(message));
            }
            Err(Nothing::Ended) => {
                this.set_waiting(false);
                return Poll::Ready(None);
            }
            Err(Nothing::Empty) => {}
        }
        // Register, then look once more: see `handle/wake.rs` for why no wake-up is lost. Counted
        // as waiting first, so a rendezvous publisher woken by that finds room and queues.
        this.handle().readers().register(this.id, cx.waker());
        this.set_waiting(true);
        match this.next_now() {
            Ok(message) => {
                this.set_waiting(false);
                Poll::Ready(Some(message))
            }
            Err(Nothing::Ended) => {
                this.set_waiting(false);
                Poll::Ready(None)
            }
            Err(Nothing::Empty) => Poll::Pending,
        }
    }
}

impl<T: ?Sized> Drop for MessageStream<T> {
    fn drop(&mut self) {
        self.set_waiting(false);
        self.handle().readers().forget(self.id);
    }
}

impl<T: ?Sized> fmt::Debug for MessageStream<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MessageStream")
            .field("id", &self.handle().id())
            .field("queued", &self.handle().queue().len())
            .finish()
    }
}
