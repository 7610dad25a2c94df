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

use crate::engine::hooks::{Change, Topic};
use crate::kind::Kind;
use crate::message::Message;

use redis::aio::ConnectionLike;

use super::codec::Codec;
use super::publisher::account;
use super::receive::deliver;
use super::shared::{bump, Shared, STOPPED};

/// Lost node connections, from the receiving thread to the mirror.
#[derive(Default)]
pub(crate) struct Losses {
    /// `Disconnection` pushes seen so far.
    count: AtomicU64,
    notify: Notify,
}

/// Follows the registry's changes with `SSUBSCRIBE`/`SUNSUBSCRIBE` until the bridge is
/// dropped. When a node connection is lost it disarms (no publish goes out meanwhile, see
/// `shared.rs`) and pings every node, with back-off, until all answer, subscribes to every
/// channel again, arms, and gives subscribed handles a `Gap` notice. A publisher's check is
/// answered the same way: every node pinged and every channel subscribed again.
pub(crate) async fn mirror<T: ?Sized>(
    shared: Arc<Shared<T>>,
    mut con: ClusterConnection,
    mut changes: UnboundedReceiver<(u64, Change)>,
    losses: Arc<Losses>,
) {
    let mut desired: HashSet<Arc<str>> = HashSet::new();
    let (mut handled, mut last_seq) = (0, 0);
    let mut down_since: Option<Instant> = None;
    let mut delay = shared.timing.min_delay;
    shared.arm(0);
    loop {
        if let Some(requested) = shared.check_wanted().filter(|_| down_since.is_none()) {
            match shared
                .unless(STOPPED, recover(&shared, &mut con, &desired))
                .await
            {
                None => return,
                Some(true) => shared.checked(requested),
                Some(false) => {
                    down_since = Some(Instant::now());
                    shared.disarm();
                    shared.subscriber_up.store(false, Ordering::Release);
                    delay = shared.timing.min_delay;
                }
            }
        }
        tokio::select! {
            Some((seq, change)) = changes.recv() => {
                last_seq = seq;
                let command = async {
                    match change {
                        Change::Added(Topic { kind: Kind::Channel, name })
                            if desired.insert(name.clone()) =>
                        {
                            con.ssubscribe(name.as_bytes()).await.is_ok()
                        }
                        Change::Removed(topic)
                            if topic.kind == Kind::Channel && desired.remove(&topic.name) =>
                        {
                            shared.echoes.forget_topic(&topic);
                            con.sunsubscribe(topic.name.as_bytes()).await.is_ok()
                        }
                        // Patterns are not mirrored; a name already (un)subscribed needs nothing.
                        _ => true,
                    }
                };
                let ok = match shared.reply(STOPPED, command).await {
                    Some(ok) => ok,
                    None if shared.is_stopped() => return,
                    None => false,
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
                    shared.disarm();
                    shared.subscriber_up.store(false, Ordering::Release);
                    delay = shared.timing.min_delay;
                }
            }
            () = tokio::time::sleep(delay), if down_since.is_some() => {
                handled = losses.count.load(Ordering::Acquire);
                let requested = shared.check_wanted();
                match shared.unless(STOPPED, recover(&shared, &mut con, &desired)).await {
                    None => return,
                    Some(true) => {
                        let since = down_since.take().unwrap_or_else(Instant::now);
                        shared.subscriber_up.store(true, Ordering::Release);
                        shared.arm(last_seq);
                        if let Some(requested) = requested {
                            shared.checked(requested);
                        }
                        gap(&shared, since.elapsed());
                    }
                    Some(false) => delay = shared.timing.next_delay(delay),
                }
            }
            () = shared.check_wanted.notified() => {} // answered at the top
            None = shared.unless(STOPPED, std::future::pending::<()>()) => return,
        }
    }
}

/// Whether every node answers a `PING` and every channel in `desired` could be subscribed
/// again (a channel still subscribed on a node that stayed up is simply confirmed again).
async fn recover<T: ?Sized>(
    shared: &Shared<T>,
    con: &mut ClusterConnection,
    desired: &HashSet<Arc<str>>,
) -> bool {
    let every = RoutingInfo::MultiNode((MultipleNodeRoutingInfo::AllNodes, None));
    let ping = redis::cmd("PING");
    if !matches!(
        shared.reply(STOPPED, con.route_command(&ping, every)).await,
        Some(Ok(_))
    ) {
        return false;
    }
    for name in desired {
        if !matches!(
            shared.reply(STOPPED, con.ssubscribe(name.as_bytes())).await,
            Some(Ok(()))
        ) {
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
        .registry()
        .notify_subscribers(|| Message::Gap { down_for });
    bump(&shared.counters.gaps, 1);
    bump(&shared.counters.reconnects, 1);
}

/// Sends the backlog with `SPUBLISH`, in order: each run of publishes on one channel (one
/// slot) is one pipeline, the runs one after another. Each run waits for the subscription
/// side as on one server (`shared.rs`); a failed run is counted `lost` and asks for a check,
/// so the next run goes out only once every node answers and every channel is subscribed
/// again. Once the bridge is dropped, runs go out without waiting until one fails: the rest
/// of the backlog is then counted `lost` at once, so a hung shard costs the drop one reply
/// timeout, not one per run. Runs on the subscription side's runtime, which stays driven
/// until this ends.
pub(crate) fn publish<T: ?Sized + Codec>(
    shared: Arc<Shared<T>>,
    mut con: ClusterConnection,
    runtime: tokio::runtime::Handle,
) {
    let mut failed_while_draining = false;
    while let Some(batch) = shared.backlog.take(super::publisher::BATCH) {
        let needed = batch.iter().map(|item| item.needed).max().unwrap_or(0);
        let mut start = 0;
        while start < batch.len() {
            let channel = &batch[start].channel;
            let end = start
                + batch[start..]
                    .iter()
                    .take_while(|item| &item.channel == channel)
                    .count();
            let run = &batch[start..end];
            start = end;
            if failed_while_draining {
                shared.give_up(run, &shared.counters.lost);
                continue;
            }
            // `None` once the bridge is dropped: what is left goes out without waiting.
            let draining = shared.wait_ready(needed).is_none();
            let mut pipe = redis::pipe();
            for item in run {
                pipe.cmd("SPUBLISH")
                    .arg(item.channel.as_bytes())
                    .arg(&*item.payload.encode());
            }
            let exchange = con.req_packed_commands(&pipe, 0, run.len());
            let timeout = shared.timing.reply_timeout;
            let sent = runtime.block_on(async { tokio::time::timeout(timeout, exchange).await });
            match sent {
                Ok(Ok(replies)) => {
                    shared.publisher_up.store(true, Ordering::Release);
                    account(&shared, run, &replies);
                }
                Ok(Err(_)) | Err(_) => {
                    shared.publisher_up.store(false, Ordering::Release);
                    shared.give_up(run, &shared.counters.lost);
                    if draining {
                        failed_while_draining = true;
                    } else {
                        shared.request_publisher_check();
                        shared.sleep_blocking(shared.timing.min_delay);
                    }
                }
            }
        }
        shared.settled(&batch);
    }
}
