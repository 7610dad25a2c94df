//! Redis Cluster: sharded Pub/Sub (`SSUBSCRIBE`/`SPUBLISH`) through redis-rs's cluster client.
//!
//! A sharded channel lives on the shard that owns its key slot, so the cluster client keeps a
//! connection per node and routes each command by channel; it also subscribes again on its
//! own after reconnecting (and the mirror does it again, to be sure, before reporting the
//! gap). Its messages (RESP3 pushes) arrive on one channel, read by the receiving thread.
//! Redis never consults patterns for sharded channels: pattern subscriptions are not mirrored.

use std::collections::HashSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use redis::cluster_async::ClusterConnection;
use redis::cluster_routing::{MultipleNodeRoutingInfo, RoutingInfo};
use redis::{Msg, PushInfo, PushKind};
use tokio::sync::mpsc::UnboundedReceiver;
use tokio::sync::Notify;

use crate::message::Message;
use crate::registry::{Change, Topic};

use redis::aio::ConnectionLike;

use super::codec::Codec;
use super::publisher::account;
use super::receive::deliver;
use super::shared::{bump, Shared};

/// Lost node connections, from the receiving thread to the mirror.
#[derive(Default)]
pub(crate) struct Losses {
    /// `Disconnection` pushes seen so far.
    count: AtomicU64,
    notify: Notify,
}

/// Follows the registry's changes with `SSUBSCRIBE`/`SUNSUBSCRIBE` until the bridge is
/// dropped. When a node connection is lost it pings every node, with back-off, until all
/// answer, subscribes to every channel again and then gives subscribed handles a `Gap` notice.
pub(crate) async fn mirror<T: ?Sized>(
    shared: Arc<Shared<T>>,
    mut con: ClusterConnection,
    mut changes: UnboundedReceiver<(u64, Change)>,
    losses: Arc<Losses>,
) {
    let mut desired: HashSet<Arc<str>> = HashSet::new();
    let mut handled = 0;
    let mut down_since: Option<Instant> = None;
    let mut delay = shared.timing.min_delay;
    loop {
        tokio::select! {
            change = changes.recv() => {
                let Some((seq, change)) = change else { return };
                let ok = match change {
                    Change::Added(Topic::Channel(name)) if desired.insert(name.clone()) => {
                        con.ssubscribe(name.as_bytes()).await.is_ok()
                    }
                    Change::Removed(Topic::Channel(name)) if desired.remove(&name) => {
                        shared.echoes.forget_topic(&Topic::Channel(name.clone()));
                        con.sunsubscribe(name.as_bytes()).await.is_ok()
                    }
                    // Patterns are not mirrored; a name already (un)subscribed needs nothing.
                    _ => true,
                };
                if !ok && down_since.is_none() {
                    bump(&shared.counters.refused, 1);
                }
                shared.mirrored.store(desired.len(), Ordering::Relaxed);
                shared.applied(seq);
            }
            () = losses.notify.notified(), if down_since.is_none() => {
                let count = losses.count.load(Ordering::Acquire);
                if count > handled {
                    handled = count;
                    down_since = Some(Instant::now());
                    shared.subscriber_up.store(false, Ordering::Release);
                    delay = shared.timing.min_delay;
                }
            }
            () = tokio::time::sleep(delay), if down_since.is_some() => {
                handled = losses.count.load(Ordering::Acquire);
                if recover(&mut con, &desired).await {
                    let since = down_since.take().unwrap_or_else(Instant::now);
                    shared.subscriber_up.store(true, Ordering::Release);
                    gap(&shared, since.elapsed());
                } else {
                    delay = (delay * 2).min(shared.timing.max_delay);
                }
            }
        }
    }
}

/// Whether every node answers a `PING` and every channel in `desired` could be subscribed
/// again (a channel still subscribed on a node that stayed up is simply confirmed again).
async fn recover(con: &mut ClusterConnection, desired: &HashSet<Arc<str>>) -> bool {
    let every = RoutingInfo::MultiNode((MultipleNodeRoutingInfo::AllNodes, None));
    if con.route_command(&redis::cmd("PING"), every).await.is_err() {
        return false;
    }
    for name in desired {
        if con.ssubscribe(name.as_bytes()).await.is_err() {
            return false;
        }
    }
    true
}

/// Delivers sharded messages until the bridge is dropped, and tells the mirror of lost node
/// connections.
pub(crate) fn receive<T: ?Sized + Codec>(
    shared: Arc<Shared<T>>,
    pushes: crossbeam_channel::Receiver<PushInfo>,
    losses: Arc<Losses>,
) {
    for push in pushes {
        match push.kind {
            PushKind::Disconnection => {
                losses.count.fetch_add(1, Ordering::AcqRel);
                losses.notify.notify_one();
            }
            PushKind::SMessage => {
                if let Some(msg) = Msg::from_push_info(push) {
                    deliver(&shared, &msg);
                }
            }
            _ => {}
        }
    }
}

fn gap<T: ?Sized>(shared: &Shared<T>, down_for: Duration) {
    shared
        .registry
        .notify_subscribers(|| Message::Gap { down_for });
    bump(&shared.counters.gaps, 1);
    bump(&shared.counters.reconnects, 1);
}

/// Sends the backlog with `SPUBLISH`, in order: each run of publishes on one channel (one
/// slot) is one pipeline, the runs one after another.
pub(crate) fn publish<T: ?Sized + Codec>(
    shared: Arc<Shared<T>>,
    mut con: ClusterConnection,
    runtime: tokio::runtime::Handle,
) {
    while let Some(batch) = shared.backlog.take(super::publisher::BATCH) {
        let needed = batch.iter().map(|item| item.needed).max().unwrap_or(0);
        shared.wait_applied(needed);
        let mut start = 0;
        while start < batch.len() {
            let channel = &batch[start].channel;
            let end = start
                + batch[start..]
                    .iter()
                    .take_while(|item| &item.channel == channel)
                    .count();
            let mut pipe = redis::pipe();
            for item in &batch[start..end] {
                pipe.cmd("SPUBLISH")
                    .arg(item.channel.as_bytes())
                    .arg(&*item.payload.encode());
            }
            let run = &batch[start..end];
            let sent = runtime.block_on(con.req_packed_commands(&pipe, 0, run.len()));
            match sent {
                Ok(replies) => {
                    shared.publisher_up.store(true, Ordering::Release);
                    account(&shared, run, &replies);
                }
                Err(_) => {
                    shared.publisher_up.store(false, Ordering::Release);
                    shared.give_up(run, &shared.counters.lost);
                    if !shared.is_stopping() {
                        std::thread::sleep(shared.timing.min_delay);
                    }
                }
            }
            start = end;
        }
        shared.settled(batch.len());
    }
}
