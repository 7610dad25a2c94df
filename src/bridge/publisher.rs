//! The publishing thread: the backlog, pipelined to Redis in batches.
//!
//! Each batch is one pipeline of `PUBLISH` commands on a connection of its own (a connection
//! in subscribed state may not publish under RESP2). A batch goes out only when the
//! subscription side says Redis has what it needs (the arming protocol, `shared.rs`), so that
//! a publish made after `subscribe` returned comes back to that subscriber, also across a
//! server restart. A batch whose connection fails has an unknown fate (Redis may have run
//! part of it): it is counted as `lost`, never sent twice.
//!
//! The thread blocks on the backlog and on the arming protocol, and runs each exchange with
//! Redis on a one-thread runtime of its own, so that every wait is bounded (the reply
//! timeout) and a back-off or a connection attempt ends as soon as the bridge is dropped.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use redis::aio::{ConnectionLike, MultiplexedConnection};
use tokio::runtime::Runtime;

use super::backlog::Outgoing;
use super::codec::Codec;
use super::shared::{bump, Shared, DRAINING};

/// Publishes per pipeline at most.
pub(crate) const BATCH: usize = 256;

/// A publishing connection, and the arming it was last known good for.
///
/// `reconnects` counts outages, not connections: a publishing connection made again is
/// counted only when the subscription side did not reconnect since the last one last answered
/// (the publishing connection was lost alone); otherwise the subscription side counted that
/// outage when it armed again. The count is decided at the new connection's first answer,
/// after the check it asks for, so that a subscription side that has not yet noticed the
/// same loss finds it first.
struct Link {
    connection: MultiplexedConnection,
    /// `arms` (see `Shared::wait_ready`) when the connection last answered; a later arming
    /// means the subscription side reconnected, and this connection may be as dead as its
    /// old one was.
    arms: u64,
}

/// Sends the backlog until the bridge is dropped and the backlog is empty.
pub(crate) fn run<T: ?Sized + Codec>(
    shared: Arc<Shared<T>>,
    client: redis::Client,
    first: MultiplexedConnection,
    runtime: Runtime,
) {
    let mut link = Some(Link {
        connection: first,
        arms: 0,
    });
    // The subscription side's armings as of the publishing connection's last answer (1: its
    // first arming), and whether that connection was lost since.
    let (mut answered_at, mut lost) = (1, false);
    while let Some(batch) = shared.backlog.take(BATCH) {
        let needed = batch.iter().map(|item| item.needed).max().unwrap_or(0);
        let mut sent = false;
        loop {
            // `None` once the bridge is dropped: what is left goes out on a live connection,
            // without waiting for the subscription side.
            let ready = shared.wait_ready(needed);
            let Some(current) = link.as_mut() else {
                if ready.is_none() {
                    break; // dropped while disconnected: these never go out
                }
                link = runtime.block_on(reconnect(&shared, &client));
                if link.is_some() {
                    // The server may have restarted: have the subscription side prove it
                    // is subscribed there before anything goes out.
                    shared.request_check();
                }
                continue;
            };
            if let Some(arms) = ready.filter(|&arms| arms != current.arms) {
                let ping = redis::cmd("PING");
                let exchange = current.connection.req_packed_command(&ping);
                if let Some(Ok(_)) = runtime.block_on(shared.reply(DRAINING, exchange)) {
                    current.arms = arms;
                    if std::mem::take(&mut lost) && arms == answered_at {
                        bump(&shared.counters.reconnects, 1);
                    }
                    answered_at = arms;
                } else {
                    lose_link(&shared, &mut link);
                    lost = true;
                    continue;
                }
            }
            let mut pipe = redis::pipe();
            for item in &batch {
                pipe.cmd("PUBLISH")
                    .arg(item.channel.as_bytes())
                    .arg(&*item.payload.encode());
            }
            let exchange = current
                .connection
                .req_packed_commands(&pipe, 0, batch.len());
            // Not raced with the drop: what the backlog held goes out, within the timeout.
            let timeout = shared.timing.reply_timeout;
            match runtime.block_on(async { tokio::time::timeout(timeout, exchange).await }) {
                Ok(Ok(replies)) => account(&shared, &batch, &replies),
                Ok(Err(_)) | Err(_) => {
                    lose_link(&shared, &mut link);
                    lost = true;
                    shared.give_up(&batch, &shared.counters.lost);
                }
            }
            sent = true;
            break;
        }
        if !sent {
            shared.give_up(&batch, &shared.counters.lost);
        }
        shared.settled(batch.len());
    }
    shared.publisher_up.store(false, Ordering::Release);
}

/// The publishing connection failed: it is dropped, and made again before the next batch.
fn lose_link<T: ?Sized>(shared: &Shared<T>, link: &mut Option<Link>) {
    shared.publisher_up.store(false, Ordering::Release);
    *link = None;
}

/// Counts a batch's replies: the number of receivers for each publish Redis ran, an error
/// for each it refused (an ACL rule on the channel, say), counted in `refused`. A publish
/// that local subscriptions were waiting for but that Redis delivered to no one missed the
/// bridge's own subscription connection (it had just dropped, or those subscriptions were
/// removed first): counted `lost`, not `forwarded`.
pub(crate) fn account<T: ?Sized>(
    shared: &Shared<T>,
    batch: &[Outgoing<T>],
    replies: &[redis::Value],
) {
    let mut forwarded = 0;
    for (item, reply) in batch.iter().zip(replies) {
        let counter = match reply {
            redis::Value::ServerError(_) => &shared.counters.refused,
            redis::Value::Int(0) if item.comes_back => &shared.counters.lost,
            _ => {
                forwarded += 1;
                continue;
            }
        };
        shared.give_up(std::slice::from_ref(item), counter);
    }
    bump(&shared.counters.forwarded, forwarded);
}

/// Connects again with the same back-off as the subscription side; `None` once the bridge is
/// dropped (which cuts the back-off and the attempt short).
async fn reconnect<T: ?Sized>(shared: &Shared<T>, client: &redis::Client) -> Option<Link> {
    let timing = shared.timing;
    let mut delay = timing.min_delay;
    loop {
        if !shared.sleep(DRAINING, delay).await {
            return None;
        }
        let attempt = open(client, timing.connect_timeout);
        match shared.unless(DRAINING, attempt).await? {
            Ok(connection) => {
                shared.publisher_up.store(true, Ordering::Release);
                return Some(Link {
                    connection,
                    arms: 0,
                });
            }
            Err(_) => delay = timing.next_delay(delay),
        }
    }
}

/// A publishing connection, within `timeout`.
pub(crate) async fn open(
    client: &redis::Client,
    timeout: std::time::Duration,
) -> redis::RedisResult<MultiplexedConnection> {
    super::within(timeout, client.get_multiplexed_async_connection()).await
}
