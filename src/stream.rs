//! Messages as an async `Stream` (feature `async`).

use std::fmt;
use std::pin::Pin;
use std::task::{Context, Poll};

use futures_core::Stream;

use crate::inbox::{Inbox, Nothing, Wait};
use crate::message::Message;

/// A handle's messages as a [`futures_core::Stream`], from [`PubSub::stream`](crate::PubSub::stream).
///
/// Works on any executor. It is woken exactly when something is queued for it (an idle
/// stream is not polled again), gives deliveries with a handler to the handler, skips
/// confirmations when the handle ignores them, and ends once the handle is closed, dropped
/// or disconnected and everything queued was read. Like [`PubSub::listen_forever`](crate::PubSub::listen_forever),
/// it does not end when the last subscription goes. Reading never blocks the thread.
pub struct MessageStream<T: ?Sized> {
    inbox: Inbox<T>,
}

impl<T: ?Sized> MessageStream<T> {
    pub(crate) fn new(inbox: Inbox<T>) -> Self {
        MessageStream { inbox }
    }

    /// The next message for the reader, or why there is none.
    fn next_now(&self) -> Result<Message<T>, Nothing> {
        loop {
            let message = self.inbox.read(Wait::Poll)?;
            if let Some(message) = self.inbox.for_reader(message) {
                return Ok(message);
            }
        }
    }
}

impl<T: ?Sized> Stream for MessageStream<T> {
    type Item = Message<T>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Message<T>>> {
        match self.next_now() {
            Ok(message) => return Poll::Ready(Some(message)),
            Err(Nothing::Ended) => return Poll::Ready(None),
            Err(Nothing::Empty) => {}
        }
        // Register, then look once more: see `wake.rs` for why no wake-up is lost.
        self.inbox.subscriber.reader_wake.register(cx.waker());
        match self.next_now() {
            Ok(message) => Poll::Ready(Some(message)),
            Err(Nothing::Ended) => Poll::Ready(None),
            Err(Nothing::Empty) => Poll::Pending,
        }
    }
}

impl<T: ?Sized> fmt::Debug for MessageStream<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MessageStream")
            .field("id", &self.inbox.subscriber.id)
            .field("queued", &self.inbox.receiver.len())
            .finish()
    }
}
