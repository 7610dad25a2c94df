//! The receiving thread: what Redis sends, delivered to local handles.
//!
//! A `message` goes to the handles subscribed to its channel and a `pmessage` to those of its
//! pattern, never more, so a publish that reaches the bridge through a channel and a pattern
//! is delivered once per local subscription, as Redis would. Deliveries follow each handle's
//! overflow policy; under `Block` this thread waits, and Redis buffers behind it.

use std::future::Future;
use std::pin::pin;
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};
use std::thread::Thread;

use futures_core::Stream;
use redis::Msg;
use tokio::sync::mpsc::UnboundedSender;

use crate::engine::Reach;
use crate::message::Message;
use crate::wait::Wait;

use super::codec::Codec;
use super::mirror::Feed;
use super::shared::{bump, Shared};
use super::Route;

/// Reads each stream the mirror hands over until the bridge is dropped.
pub(crate) fn run<T: ?Sized + Codec>(
    shared: Arc<Shared<T>>,
    feeds: crossbeam_channel::Receiver<Feed>,
    ended: UnboundedSender<u64>,
) {
    while let Ok(feed) = feeds.recv() {
        if let Some(down_for) = feed.gap {
            shared
                .registry()
                .notify_subscribers(|| Message::Gap { down_for });
            bump(&shared.counters.gaps, 1);
        }
        let mut stream = feed.stream;
        while let Some(msg) = block_on(next(&mut stream)) {
            deliver(&shared, &msg);
        }
        let _ = ended.send(feed.generation);
    }
}

/// Delivers one arrival to the local subscriptions it came through.
pub(crate) fn deliver<T: ?Sized + Codec>(shared: &Shared<T>, msg: &Msg) {
    let counters = &shared.counters;
    let text =
        |bytes: redis::RedisResult<Vec<u8>>| bytes.ok().and_then(|b| String::from_utf8(b).ok());
    let Some(channel) = text(msg.get_channel()) else {
        return bump(&counters.undecodable, 1);
    };
    let pattern = match msg.from_pattern() {
        true => match text(msg.get_pattern()) {
            Some(pattern) => Some(pattern),
            None => return bump(&counters.undecodable, 1),
        },
        false => None,
    };
    let bytes = msg.get_payload_bytes();
    if shared.route == Route::LocalFirst && shared.echoes.take(pattern.as_deref(), &channel, bytes)
    {
        return bump(&counters.echoes_skipped, 1);
    }
    let Ok(payload) = T::decode(bytes) else {
        return bump(&counters.undecodable, 1);
    };
    let reach = match pattern {
        Some(pattern) => Reach::Pattern(Arc::from(pattern)),
        None => Reach::Channel,
    };
    // Counted first, so a reader that got it sees it counted.
    bump(&counters.received, 1);
    shared
        .registry()
        .publish_to(&channel, payload, reach, Wait::Forever);
}

/// The next item of `stream`.
fn next<S: Stream + Unpin>(stream: &mut S) -> impl Future<Output = Option<S::Item>> + '_ {
    std::future::poll_fn(move |cx| std::pin::Pin::new(&mut *stream).poll_next(cx))
}

/// Runs `future` on this thread, parking it while the future waits.
fn block_on<F: Future>(future: F) -> F::Output {
    struct Unpark(Thread);
    impl Wake for Unpark {
        fn wake(self: Arc<Self>) {
            self.0.unpark();
        }
    }
    let waker = Waker::from(Arc::new(Unpark(std::thread::current())));
    let mut cx = Context::from_waker(&waker);
    let mut future = pin!(future);
    loop {
        if let Poll::Ready(output) = future.as_mut().poll(&mut cx) {
            return output;
        }
        std::thread::park();
    }
}
