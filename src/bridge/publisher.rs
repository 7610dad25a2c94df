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
use std::time::{Duration, Instant};

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
    /// Made again after a loss: proved as soon as the subscription side is ready, before a
    /// batch is taken (the first connection is proved before its first batch).
    made_again: bool,
    /// When the connection last answered: one idle for longer than `IDLE` is proved before a
    /// batch goes out on it (a server's `timeout` setting closes idle connections, and a batch
    /// sent on a closed one would be lost).
    answered: Instant,
}

/// How long a publishing connection may sit idle before it is proved again.
const IDLE: Duration = Duration::from_secs(1);

/// Sends the backlog until the bridge is dropped and the backlog is empty.
pub(crate) fn run<T: ?Sized + Codec>(
    shared: Arc<Shared<T>>,
    client: redis::Client,
    first: MultiplexedConnection,
    runtime: Runtime,
) {
    shared.order.bridge_thread();
    let mut sender = Sender {
        shared: &shared,
        client,
        runtime,
        link: Some(Link {
            connection: first,
            arms: 0,
            made_again: false,
            answered: Instant::now(),
        }),
        answered_at: 1,
        lost: false,
    };
    loop {
        // A lost connection is made again and proved at once, not at the next publish, so
        // that `connected` and `reconnects` tell of the server's return, publishing or not.
        if sender.link.is_none() {
            sender.relink();
        }
        if sender
            .link
            .as_ref()
            .is_some_and(|link| link.made_again && link.arms == 0)
        {
            if let Some(arms) = shared.wait_ready(0) {
                if !sender.prove(arms) {
                    continue;
                }
            }
        }
        let Some(batch) = shared.backlog.take(BATCH) else {
            break;
        };
        let needed = batch.iter().map(|item| item.needed).max().unwrap_or(0);
        if !sender.send(&batch, needed) {
            shared.give_up(&batch, &shared.counters.lost);
        }
        shared.settled(&batch);
    }
    bump(&shared.counters.lost, shared.doubts.give_up());
    shared.publisher_up.store(false, Ordering::Release);
}

/// The publishing thread's state.
struct Sender<'a, T: ?Sized> {
    shared: &'a Shared<T>,
    client: redis::Client,
    runtime: Runtime,
    /// `None` while the connection is lost.
    link: Option<Link>,
    /// The subscription side's armings as of the publishing connection's last answer (1: its
    /// first arming).
    answered_at: u64,
    /// Whether the connection was lost since it last answered.
    lost: bool,
}

impl<T: ?Sized + Codec> Sender<'_, T> {
    /// Sends `batch` once Redis has subscription change `needed`, and accounts for the
    /// replies; false if it never went out (the bridge was dropped while disconnected).
    fn send(&mut self, batch: &[Outgoing<T>], needed: u64) -> bool {
        let shared = self.shared;
        loop {
            // `None` once the bridge is dropped: what is left goes out on a live connection,
            // without waiting for the subscription side.
            let ready = shared.wait_ready(needed);
            let Some(current) = self.link.as_ref() else {
                if ready.is_none() {
                    return false;
                }
                self.relink();
                continue;
            };
            let idle = current.answered.elapsed() > IDLE;
            let changed = ready.filter(|&arms| arms != current.arms || idle);
            if let Some(arms) = changed {
                if !self.prove(arms) {
                    continue;
                }
            }
            let Some(current) = self.link.as_mut() else {
                continue;
            };
            let mut pipe = redis::pipe();
            for item in batch {
                pipe.cmd("PUBLISH")
                    .arg(item.channel.as_bytes())
                    .arg(&*item.payload.encode());
            }
            let exchange = current
                .connection
                .req_packed_commands(&pipe, 0, batch.len());
            // Not raced with the drop: what the backlog held goes out, within the timeout.
            let timeout = shared.timing.reply_timeout;
            let replies = self
                .runtime
                .block_on(async { tokio::time::timeout(timeout, exchange).await });
            match replies {
                Ok(Ok(replies)) => {
                    current.answered = Instant::now();
                    account(shared, batch, &replies);
                }
                Ok(Err(_)) | Err(_) => {
                    // Its fate is unknown: Redis may run it yet (a hung server resumed).
                    self.lose();
                    shared.in_doubt(batch);
                }
            }
            return true;
        }
    }
}

impl<T: ?Sized> Sender<'_, T> {
    /// Connects again (with back-off); the link stays `None` once the bridge is dropped.
    fn relink(&mut self) {
        self.link = self.runtime.block_on(reconnect(self.shared, &self.client));
        if self.link.is_some() {
            // The server may have restarted: have the subscription side prove it is
            // subscribed there before anything goes out.
            self.shared.request_publisher_check();
        }
    }

    /// Has the connection answer a `PING` now that the subscription side has armed `arms`
    /// times, and counts an outage this connection came back from alone (see `Link`); false,
    /// with the connection lost, if no answer came within the reply timeout. `connected`
    /// turns true here, not when the connection is made.
    fn prove(&mut self, arms: u64) -> bool {
        let Some(link) = self.link.as_mut() else {
            return false;
        };
        let ping = redis::cmd("PING");
        let exchange = link.connection.req_packed_command(&ping);
        if let Some(Ok(_)) = self.runtime.block_on(self.shared.reply(DRAINING, exchange)) {
            link.arms = arms;
            link.answered = Instant::now();
            let was_lost = std::mem::take(&mut self.lost);
            if was_lost && arms == self.answered_at {
                bump(&self.shared.counters.reconnects, 1);
            }
            if was_lost {
                // Redis answers again: once the subscription side has passed a marker that
                // follows this, whatever it ran of a batch in doubt has come back.
                // Publishes wait for this check too, so their copies come after the marker
                // that settles what is in doubt (and its `Gap` notice, if any).
                let check = self.shared.request_publisher_check();
                let (lost, since) = self.shared.doubts.settle_at(check);
                self.shared.doubts_lost(lost, since);
            }
            self.answered_at = arms;
            self.shared.publisher_up.store(true, Ordering::Release);
            true
        } else {
            self.lose();
            false
        }
    }

    /// The publishing connection failed: it is dropped, and made again before the next batch
    /// is taken.
    fn lose(&mut self) {
        self.shared.publisher_up.store(false, Ordering::Release);
        self.link = None;
        self.lost = true;
    }
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
                return Some(Link {
                    connection,
                    arms: 0,
                    made_again: true,
                    answered: Instant::now(),
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
