//! The publishing thread: the backlog, pipelined to Redis in batches.
//!
//! Each batch is one pipeline of `PUBLISH` commands on a connection of its own (a connection
//! in subscribed state may not publish under RESP2). Before a batch goes out, Redis must have
//! every subscription change made before its publishes, so that a publish made after
//! `subscribe` returned comes back to that subscriber. A batch whose connection fails has an
//! unknown fate (Redis may have run part of it): it is counted as `lost`, never sent twice.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use redis::ConnectionLike;
use std::time::Duration;

use super::codec::Codec;
use super::shared::{bump, Shared};

/// Publishes per pipeline at most.
pub(crate) const BATCH: usize = 256;

/// How long a reply may take before the connection counts as failed.
const REPLY_TIMEOUT: Duration = Duration::from_secs(10);

/// Sends the backlog until the bridge is dropped and the backlog is empty.
pub(crate) fn run<T: ?Sized + Codec>(
    shared: Arc<Shared<T>>,
    client: redis::Client,
    first: redis::Connection,
) {
    let mut connection = Some(first);
    while let Some(batch) = shared.backlog.take(BATCH) {
        let needed = batch.iter().map(|item| item.needed).max().unwrap_or(0);
        shared.wait_applied(needed);
        if connection.is_none() {
            connection = reconnect(&shared, &client);
        }
        let Some(con) = connection.as_mut() else {
            // Dropped while disconnected: these never go out.
            shared.give_up(&batch, &shared.counters.lost);
            shared.settled(batch.len());
            continue;
        };
        let mut pipe = redis::pipe();
        for item in &batch {
            pipe.cmd("PUBLISH")
                .arg(item.channel.as_bytes())
                .arg(&*item.payload.encode());
        }
        match con.req_packed_commands(&pipe.get_packed_pipeline(), 0, batch.len()) {
            Ok(replies) => account(&shared, &batch, &replies),
            Err(_) => {
                shared.publisher_up.store(false, Ordering::Release);
                connection = None;
                shared.give_up(&batch, &shared.counters.lost);
            }
        }
        shared.settled(batch.len());
    }
    shared.publisher_up.store(false, Ordering::Release);
}

/// Counts a batch's replies: a number for each publish Redis ran, an error for each it
/// refused (an ACL rule on the channel, say), which is counted in `refused`.
pub(crate) fn account<T: ?Sized>(
    shared: &Shared<T>,
    batch: &[super::backlog::Outgoing<T>],
    replies: &[redis::Value],
) {
    let mut forwarded = 0;
    for (item, reply) in batch.iter().zip(replies) {
        match reply {
            redis::Value::ServerError(_) => {
                shared.give_up(std::slice::from_ref(item), &shared.counters.refused)
            }
            _ => forwarded += 1,
        }
    }
    bump(&shared.counters.forwarded, forwarded);
}

/// Connects again with the same back-off as the subscription side; `None` once the bridge is
/// dropped.
fn reconnect<T: ?Sized>(shared: &Shared<T>, client: &redis::Client) -> Option<redis::Connection> {
    let timing = shared.timing;
    let mut delay = timing.min_delay;
    loop {
        if shared.is_stopping() {
            return None;
        }
        std::thread::sleep(delay);
        if let Ok(connection) = open(client, timing.connect_timeout) {
            shared.publisher_up.store(true, Ordering::Release);
            bump(&shared.counters.reconnects, 1);
            return Some(connection);
        }
        delay = (delay * 2).min(timing.max_delay);
    }
}

/// A publishing connection with time limits on connecting and on each reply.
pub(crate) fn open(
    client: &redis::Client,
    timeout: Duration,
) -> redis::RedisResult<redis::Connection> {
    let connection = client.get_connection_with_timeout(timeout)?;
    connection.set_read_timeout(Some(REPLY_TIMEOUT))?;
    connection.set_write_timeout(Some(REPLY_TIMEOUT))?;
    Ok(connection)
}
