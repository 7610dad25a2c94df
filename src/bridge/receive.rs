//! The receiving thread: what Redis sends, delivered to local handles.
//!
//! A `message` goes to the handles subscribed to its channel and a `pmessage` to those of its
//! pattern, never more, so a publish that reaches the bridge through a channel and a pattern
//! is delivered once per local subscription, as Redis would. Deliveries follow each handle's
//! overflow policy; under `Block` this thread waits, and what Redis sends meanwhile is
//! buffered in this process (the subscription side reads the connection as data comes, so
//! Redis's output buffer limit never sees it).

use std::sync::Arc;
use std::time::Instant;

use redis::Msg;

use crate::engine::Reach;
use crate::wait::Wait;

use super::codec::Codec;
use super::mirror::{Arrival, Feed};
use super::shared::{bump, Shared};
use super::Route;

/// Delivers each feed the mirror hands over until the bridge is dropped.
pub(crate) fn run<T: ?Sized + Codec>(
    shared: Arc<Shared<T>>,
    feeds: crossbeam_channel::Receiver<Feed>,
) {
    shared.order.bridge_thread();
    // However this thread ends (a payload's `Drop` or a handler may panic here), no marker
    // comes after it.
    struct Ended<'a>(&'a super::order::Order);
    impl Drop for Ended<'_> {
        fn drop(&mut self) {
            self.0.release();
        }
    }
    let _ended = Ended(&shared.order);
    while let Ok(feed) = feeds.recv() {
        if let Some(down_for) = feed.gap {
            shared.doubts.noticed();
            shared.gap(down_for);
        }
        for arrival in feed.arrivals.iter() {
            match arrival {
                Arrival::Message(msg) => deliver(&shared, &msg),
                Arrival::Marker(check) => {
                    let (lost, since) = shared.doubts.reached(check);
                    shared.doubts_lost(lost, since);
                    let deadline = Instant::now().checked_add(shared.timing.reply_timeout);
                    shared.order.reached(check, deadline);
                }
            }
        }
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
    if shared.route == Route::ViaRedis {
        shared.doubts.came_back(&channel, bytes);
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
    let registry = shared.registry();
    let channel = registry.index().key(&channel);
    registry.publish_to(channel, payload, reach, Wait::Forever);
}
