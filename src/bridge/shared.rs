//! What the bridge's threads and its publishers share: counters, progress and the publish path.
//!
//! # Locks
//!
//! `progress` is a leaf, as are the backlog's and the echoes' locks; none is held while
//! calling into the registry.
//!
//! # When a publish may go out (the arming protocol)
//!
//! A publish made after a local `subscribe` returned must come back to that subscription, so
//! it may go to Redis only once Redis has the subscription, on the server the publish goes
//! to. `Progress` holds what the subscription side (the mirror) has proved:
//!
//! - `armed`: its connection is up and subscribed to every name, as of change `applied`.
//!   The mirror disarms as soon as it sees its connection fail, and arms again only after
//!   subscribing to everything on a new one; each arming bumps `arms`.
//! - `checks_done` against `checks_requested`: a publishing connection made again (after a
//!   failure, the server may have restarted without the mirror noticing yet) asks for a check,
//!   and the mirror answers it by a PING on its connection made after the request; a failed
//!   PING is a lost connection (disarm, reconnect, subscribe again, then check).
//!
//! A batch goes out once `wait_ready` sees it armed, with `applied` at least the batch's
//! `needed` and no check outstanding. Before sending on a connection that last answered
//! before the latest arming, the publisher PINGs it: after a restart it is dead, and finding
//! that out costs nothing, where sending on it would lose the batch.
//!
//! # Stopping
//!
//! `stage` says how far a drop has got: `RUNNING`, then `DRAINING` (the publishing threads
//! stop waiting: back-offs, connection attempts and checks end at once, and what the backlog
//! holds goes out on a live connection, each reply waited for at most the reply timeout),
//! then `STOPPED` once they are done (the subscription side ends, even in the middle of a
//! command). Every wait on Redis is bounded by a timeout and raced against `stage`.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex};

use crate::broker::Broker;
use crate::engine::hooks::Outbound;
use crate::engine::{Published, Reach, Registry};
use crate::wait::Wait;

use super::backlog::{Backlog, Outgoing, Pushed};
use super::codec::Codec;
use super::doubt::Doubts;
use super::echo::{EchoKey, Echoes};
use super::order::{Order, WAIT_CAP};
use super::{BridgeStats, Route};

/// How the bridge (re)connects.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Timing {
    pub(crate) connect_timeout: Duration,
    /// How long a reply from Redis may take before the connection counts as lost.
    pub(crate) reply_timeout: Duration,
    pub(crate) min_delay: Duration,
    pub(crate) max_delay: Duration,
}

impl Timing {
    /// The back-off after `delay`: twice as long, up to `max_delay`, never overflowing.
    pub(crate) fn next_delay(&self, delay: Duration) -> Duration {
        delay.saturating_mul(2).min(self.max_delay)
    }
}

/// The bridge runs.
pub(crate) const RUNNING: u8 = 0;
/// The bridge was dropped: publishing threads send what is left and end.
pub(crate) const DRAINING: u8 = 1;
/// The publishing threads ended: the subscription side ends too.
pub(crate) const STOPPED: u8 = 2;

/// How far the bridge has got; guarded by `Shared::progress`. See the module docs.
#[derive(Default)]
struct Progress {
    /// The last subscription change (by sequence number) Redis has, while `armed`.
    applied: u64,
    /// The subscription connection is up and subscribed to everything as of `applied`.
    armed: bool,
    /// Times the subscription side armed.
    arms: u64,
    /// Checks asked for (by the publishing side, subscription changes and `doubt.rs`), and
    /// checks the subscription side answered.
    checks_requested: u64,
    checks_done: u64,
    /// The last check the publishing side asked for: publishes wait for that one only.
    publisher_check: u64,
    /// Publishes out of the backlog for good: forwarded, evicted or lost.
    settled: u64,
    /// Of those, the ones local subscriptions were counted for (`Outgoing::comes_back`).
    settled_back: u64,
}

/// Monotonic counters; see [`BridgeStats`] for what each means.
#[derive(Default)]
pub(crate) struct Counters {
    pub(crate) reconnects: AtomicU64,
    pub(crate) forwarded: AtomicU64,
    pub(crate) received: AtomicU64,
    pub(crate) echoes_skipped: AtomicU64,
    pub(crate) dropped: AtomicU64,
    pub(crate) lost: AtomicU64,
    pub(crate) undecodable: AtomicU64,
    pub(crate) gaps: AtomicU64,
    pub(crate) refused: AtomicU64,
}

pub(crate) fn bump(counter: &AtomicU64, n: u64) {
    counter.fetch_add(n, Ordering::Relaxed);
}

pub(crate) struct Shared<T: ?Sized> {
    /// The bridged broker, held as a `Broker` so that its handles live on while the bridge
    /// does (see `Disconnected::BrokerDropped`).
    broker: Broker<T>,
    pub(crate) route: Route,
    /// Redis Cluster's sharded Pub/Sub: patterns are never consulted, as in Redis.
    pub(crate) sharded: bool,
    pub(crate) timing: Timing,
    pub(crate) backlog: Backlog<T>,
    pub(crate) echoes: Echoes,
    pub(crate) counters: Counters,
    /// The last subscription change (by sequence number) the registry told the bridge of.
    pub(crate) issued: AtomicU64,
    /// Publishes the backlog took.
    accepted: AtomicU64,
    /// Of those, the ones local subscriptions were counted for (`Outgoing::comes_back`).
    accepted_back: AtomicU64,
    progress: Mutex<Progress>,
    progressed: Condvar,
    /// Wakes the subscription side when a publisher asks for a check.
    pub(crate) check_wanted: tokio::sync::Notify,
    /// `RUNNING`, `DRAINING` or `STOPPED`; see the module docs.
    stage: tokio::sync::watch::Sender<u8>,
    /// Whether the subscription and the publishing connection are up.
    pub(crate) subscriber_up: AtomicBool,
    pub(crate) publisher_up: AtomicBool,
    /// Names subscribed on Redis now.
    pub(crate) mirrored: AtomicUsize,
    /// Where local subscription changes meet the stream from Redis (`order.rs`).
    pub(crate) order: Order,
    /// Publishes whose fate is unknown (`doubt.rs`).
    pub(crate) doubts: Doubts,
}

impl<T: ?Sized> Shared<T> {
    pub(crate) fn new(
        broker: Broker<T>,
        route: Route,
        sharded: bool,
        timing: Timing,
        backlog: Backlog<T>,
    ) -> Self {
        Shared {
            broker,
            route,
            sharded,
            timing,
            backlog,
            echoes: Echoes::default(),
            counters: Counters::default(),
            issued: AtomicU64::new(0),
            accepted: AtomicU64::new(0),
            accepted_back: AtomicU64::new(0),
            progress: Mutex::new(Progress::default()),
            progressed: Condvar::new(),
            check_wanted: tokio::sync::Notify::new(),
            stage: tokio::sync::watch::channel(RUNNING).0,
            subscriber_up: AtomicBool::new(false),
            publisher_up: AtomicBool::new(false),
            mirrored: AtomicUsize::new(0),
            order: Order::default(),
            doubts: Doubts::default(),
        }
    }

    /// The bridged broker's shared state.
    pub(crate) fn registry(&self) -> &Arc<Registry<T>> {
        self.broker.registry()
    }

    /// Whether the bridge was dropped (`DRAINING` or later).
    pub(crate) fn is_stopping(&self) -> bool {
        *self.stage.borrow() >= DRAINING
    }

    /// Whether the publishing threads are done and the subscription side must end.
    pub(crate) fn is_stopped(&self) -> bool {
        *self.stage.borrow() >= STOPPED
    }

    /// Moves to `stage` and wakes everyone waiting on progress or on the stage.
    pub(crate) fn set_stage(&self, stage: u8) {
        self.stage.send_replace(stage);
        let progress = self.progress.lock();
        self.progressed.notify_all();
        drop(progress);
        // No marker comes any more: changes waiting for one are made now.
        self.order.release();
    }

    /// Runs `work` until it finishes (`Some`) or the bridge reaches `stage` (`None`).
    pub(crate) async fn unless<F: std::future::Future>(
        &self,
        stage: u8,
        work: F,
    ) -> Option<F::Output> {
        let mut watch = self.stage.subscribe();
        tokio::select! {
            biased;
            _ = watch.wait_for(|now| *now >= stage) => None,
            out = work => Some(out),
        }
    }

    /// Waits for a reply from Redis: `None` if it took longer than the reply timeout or the
    /// bridge reached `stage` first.
    pub(crate) async fn reply<F: std::future::Future>(
        &self,
        stage: u8,
        work: F,
    ) -> Option<F::Output> {
        let timed = tokio::time::timeout(self.timing.reply_timeout, work);
        self.unless(stage, timed).await.and_then(Result::ok)
    }

    /// Sleeps for `delay`, cut short (false) when the bridge reaches `stage`.
    pub(crate) async fn sleep(&self, stage: u8, delay: Duration) -> bool {
        self.unless(stage, tokio::time::sleep(delay))
            .await
            .is_some()
    }

    /// Records that Redis has every subscription change up to `seq` (the connection stays
    /// armed).
    pub(crate) fn applied(&self, seq: u64) {
        let mut progress = self.progress.lock();
        progress.applied = progress.applied.max(seq);
        self.progressed.notify_all();
    }

    /// The subscription connection is up and subscribed to everything as of change `seq`.
    pub(crate) fn arm(&self, seq: u64) {
        let mut progress = self.progress.lock();
        progress.applied = progress.applied.max(seq);
        progress.armed = true;
        progress.arms += 1;
        self.progressed.notify_all();
    }

    /// The subscription connection failed: nothing goes out until it is armed again.
    pub(crate) fn disarm(&self) {
        let mut progress = self.progress.lock();
        progress.armed = false;
        let requested = progress.checks_requested;
        drop(progress);
        // The checks asked for so far are answered on the next connection, after messages
        // this one never delivered: changes waiting for them are made now.
        self.order.release_up_to(requested);
    }

    /// Asks the subscription side to prove its connection is alive now (see the module docs);
    /// returns the check's number. Publishes do not wait for it.
    pub(crate) fn request_check(&self) -> u64 {
        self.request(false)
    }

    /// `request_check` for the publishing side: publishes wait until it is answered.
    pub(crate) fn request_publisher_check(&self) -> u64 {
        self.request(true)
    }

    fn request(&self, for_publishes: bool) -> u64 {
        let mut progress = self.progress.lock();
        progress.checks_requested += 1;
        let check = progress.checks_requested;
        if for_publishes {
            progress.publisher_check = check;
        }
        drop(progress);
        self.check_wanted.notify_one();
        check
    }

    /// Makes a local subscription change where Redis's order of messages puts it (`order.rs`).
    pub(crate) fn in_order(&self, change: &mut dyn FnMut()) {
        if self.sharded || !self.is_connected() || self.order.must_not_wait() {
            return change();
        }
        let deadline = Instant::now().checked_add(self.timing.reply_timeout.min(WAIT_CAP));
        // Only publishes counted for local subscriptions come back here.
        let publishes = self.accepted_back.load(Ordering::Acquire);
        self.wait_progress(deadline, |p| p.settled_back >= publishes);
        let check = self.request_check();
        self.order.change_at(check, deadline, change);
    }

    /// The check to answer, if one is outstanding: answer it with `checked` after a PING
    /// that started after this call.
    pub(crate) fn check_wanted(&self) -> Option<u64> {
        let progress = self.progress.lock();
        (progress.checks_done < progress.checks_requested).then_some(progress.checks_requested)
    }

    /// Checks up to `requested` are answered.
    pub(crate) fn checked(&self, requested: u64) {
        let mut progress = self.progress.lock();
        progress.checks_done = progress.checks_done.max(requested);
        self.progressed.notify_all();
    }

    /// Records that `items` left the backlog for good.
    pub(crate) fn settled(&self, items: &[Outgoing<T>]) {
        if items.is_empty() {
            return;
        }
        let back = items.iter().filter(|item| item.comes_back).count();
        let mut progress = self.progress.lock();
        progress.settled += items.len() as u64;
        progress.settled_back += back as u64;
        drop(progress);
        self.progressed.notify_all();
    }

    /// Waits until a batch that needs subscription change `needed` may go out (see the
    /// module docs): returns how many times the subscription side armed, or `None` once the
    /// bridge is stopping.
    pub(crate) fn wait_ready(&self, needed: u64) -> Option<u64> {
        let mut progress = self.progress.lock();
        loop {
            if self.is_stopping() {
                return None;
            }
            let checked = progress.checks_done >= progress.publisher_check;
            if progress.armed && progress.applied >= needed && checked {
                return Some(progress.arms);
            }
            self.progressed.wait(&mut progress);
        }
    }

    /// Sleeps for `delay` on a thread, cut short (false) once the bridge is stopping.
    #[cfg(feature = "cluster")]
    pub(crate) fn sleep_blocking(&self, delay: Duration) -> bool {
        self.wait_progress(Instant::now().checked_add(delay), |_| false);
        !self.is_stopping()
    }

    /// Waits until Redis has every subscription change and every publish made so far, at
    /// most `timeout` (`Duration::MAX`: for ever).
    pub(crate) fn flush(&self, timeout: Duration) -> bool {
        let (changes, publishes) = (
            self.issued.load(Ordering::Acquire),
            self.accepted.load(Ordering::Acquire),
        );
        self.wait_progress(Instant::now().checked_add(timeout), |p| {
            p.armed && p.applied >= changes && p.settled >= publishes
        })
    }

    /// Waits until `done` holds (true), or `deadline` passes (`None`: never) or the bridge
    /// stops (false, unless `done` holds by then).
    fn wait_progress(&self, deadline: Option<Instant>, done: impl Fn(&Progress) -> bool) -> bool {
        let mut progress = self.progress.lock();
        loop {
            if done(&progress) {
                return true;
            }
            if self.is_stopping() {
                return false;
            }
            match deadline {
                Some(deadline) => {
                    let waited = self.progressed.wait_until(&mut progress, deadline);
                    if waited.timed_out() {
                        return done(&progress);
                    }
                }
                None => self.progressed.wait(&mut progress),
            }
        }
    }

    /// Whether both connections are up now.
    pub(crate) fn is_connected(&self) -> bool {
        self.subscriber_up.load(Ordering::Acquire) && self.publisher_up.load(Ordering::Acquire)
    }

    pub(crate) fn stats(&self) -> BridgeStats {
        let c = &self.counters;
        let get = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
        BridgeStats {
            connected: self.is_connected(),
            reconnects: get(&c.reconnects),
            forwarded: get(&c.forwarded),
            received: get(&c.received),
            echoes_skipped: get(&c.echoes_skipped),
            dropped: get(&c.dropped),
            lost: get(&c.lost),
            undecodable: get(&c.undecodable),
            gaps: get(&c.gaps),
            refused: get(&c.refused),
            backlog: self.backlog.len(),
            subscriptions: self.mirrored.load(Ordering::Relaxed),
        }
    }

    /// A batch whose connection failed under it, so Redis may run it yet: under `ViaRedis`
    /// its publishes that local subscriptions wait for are held until their copies come back
    /// or cannot (`doubt.rs`), the others counted `lost` now; under `LocalFirst` their echoes
    /// stay expected (`echo.rs`).
    pub(crate) fn in_doubt(&self, batch: &[Outgoing<T>])
    where
        T: Codec,
    {
        let mut lost = 0;
        for item in batch {
            if self.route == Route::ViaRedis && item.comes_back {
                let bytes: Arc<[u8]> = Arc::from(&*item.payload.encode());
                self.doubts.hold(Arc::clone(&item.channel), bytes);
            } else {
                lost += 1;
            }
        }
        bump(&self.counters.lost, lost);
    }

    /// Publishes in doubt found lost (`doubt.rs`): counted, and a `Gap` notice if none was
    /// given since the first of them.
    pub(crate) fn doubts_lost(&self, lost: u64, since: Option<Instant>) {
        bump(&self.counters.lost, lost);
        if let Some(since) = since {
            self.gap(since.elapsed());
        }
    }

    /// Gives every subscribed handle a `Gap` notice: messages may be missing there.
    pub(crate) fn gap(&self, down_for: Duration) {
        // Counted first, so a handle that reads the notice finds it counted.
        bump(&self.counters.gaps, 1);
        self.registry()
            .notify_subscribers(|| crate::message::Message::Gap { down_for });
    }

    /// Counts publishes that will never reach Redis and forgets their echoes.
    pub(crate) fn give_up(&self, items: &[Outgoing<T>], counter: &AtomicU64) {
        for item in items {
            self.echoes.forget(&item.echoes);
        }
        bump(counter, items.len() as u64);
    }
}

impl<T: ?Sized + Codec> Shared<T> {
    /// What goes to the backlog for a publish, and under `ViaRedis` what the publish returns
    /// (the local deliveries it makes when it comes back); under `LocalFirst` that is `None`,
    /// the caller delivering locally now. `None` once the broker is closed.
    fn prepare(&self, channel: &str, payload: Arc<T>) -> Option<(Option<Published>, Outgoing<T>)> {
        if self.registry().is_closed() {
            return None;
        }
        let (count, topics) = self.registry().index().matching(channel, !self.sharded);
        let comes_back = !topics.is_empty();
        let channel: Arc<str> = Arc::from(channel);
        let mut echoes = Vec::new();
        if self.route == Route::LocalFirst && !topics.is_empty() {
            let bytes: Arc<[u8]> = Arc::from(&*payload.encode());
            echoes = topics
                .into_iter()
                .map(|topic| EchoKey {
                    topic,
                    channel: channel.clone(),
                    payload: bytes.clone(),
                })
                .collect();
            self.echoes.expect(&echoes);
        }
        // Read after the local lookup: a subscription that lookup saw is covered.
        let needed = self.issued.load(Ordering::Acquire);
        let item = Outgoing {
            channel,
            payload,
            needed,
            echoes,
            comes_back,
        };
        let counted = (self.route == Route::ViaRedis).then(|| Published {
            delivered: count,
            ..Published::default()
        });
        Some((counted, item))
    }

    /// Which local subscriptions a publish reaches: not patterns under sharded Pub/Sub.
    fn reach(&self) -> Reach {
        if self.sharded {
            Reach::Channel
        } else {
            Reach::All
        }
    }

    /// Accounts for what the backlog did with a publish (`comes_back`: see `Outgoing`).
    fn pushed(&self, pushed: Pushed<T>, comes_back: bool, published: &mut Published) {
        match pushed {
            Pushed::Queued(evicted) => {
                self.accepted.fetch_add(1, Ordering::AcqRel);
                if comes_back {
                    self.accepted_back.fetch_add(1, Ordering::AcqRel);
                }
                self.give_up(&evicted, &self.counters.dropped);
                self.settled(&evicted);
            }
            Pushed::Refused(item) => {
                self.give_up(std::slice::from_ref(&item), &self.counters.dropped);
                if self.registry().is_closed() {
                    // Released by `Broker::close`: a publish after the close, which delivers
                    // nothing and reports nothing.
                    *published = Published::default();
                } else {
                    published.backlog_full = true;
                }
            }
        }
    }
}

impl<T: ?Sized + Codec + Send + Sync> Outbound<T> for Shared<T> {
    fn publish(&self, channel: &str, payload: Arc<T>, wait: Wait) -> Published {
        let Some((counted, item)) = self.prepare(channel, payload) else {
            return Published::default();
        };
        let mut published = counted.unwrap_or_else(|| {
            let payload = item.payload.clone();
            let registry = self.registry();
            let channel = registry.index().key(channel);
            registry.publish_to(channel, payload, self.reach(), wait)
        });
        let comes_back = item.comes_back;
        let pushed = self.backlog.push(item, wait);
        self.pushed(pushed, comes_back, &mut published);
        published
    }

    fn broker_closed(&self) {
        self.backlog.close();
    }

    fn in_order(&self, change: &mut dyn FnMut()) {
        Shared::in_order(self, change);
    }

    #[cfg(feature = "async")]
    fn publish_async<'a>(
        &'a self,
        channel: &'a str,
        payload: Arc<T>,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Published> + Send + 'a>> {
        Box::pin(async move {
            let Some((counted, item)) = self.prepare(channel, payload) else {
                return Published::default();
            };
            // Cancelled before the backlog took it, the publish is given up as dropped (its
            // expected echoes forgotten), never left half made.
            let comes_back = item.comes_back;
            let mut unsent = Unsent {
                shared: self,
                item: Some(item),
            };
            let mut published = match counted {
                Some(counted) => counted,
                None => {
                    let payload = unsent.payload();
                    let registry = self.registry();
                    let channel = registry.index().key(channel);
                    let local = registry.publish_async(channel, payload, self.reach());
                    local.await
                }
            };
            // Waits for room in a full `Block` backlog without blocking the thread.
            let pushed = std::future::poll_fn(|cx| {
                let Some(pending) = unsent.item.take() else {
                    return std::task::Poll::Ready(None);
                };
                match self.backlog.poll_push(pending, cx.waker()) {
                    Ok(pushed) => std::task::Poll::Ready(Some(pushed)),
                    Err(back) => {
                        unsent.item = Some(back);
                        std::task::Poll::Pending
                    }
                }
            })
            .await;
            if let Some(pushed) = pushed {
                self.pushed(pushed, comes_back, &mut published);
            }
            published
        })
    }
}

/// A publish on its way into the backlog from `publish_async`: given up as dropped if the
/// future is dropped before the backlog took it.
#[cfg(feature = "async")]
struct Unsent<'a, T: ?Sized> {
    shared: &'a Shared<T>,
    item: Option<Outgoing<T>>,
}

#[cfg(feature = "async")]
impl<T: ?Sized> Unsent<'_, T> {
    fn payload(&self) -> Arc<T> {
        let item = self.item.as_ref().expect("not sent yet");
        Arc::clone(&item.payload)
    }
}

#[cfg(feature = "async")]
impl<T: ?Sized> Drop for Unsent<'_, T> {
    fn drop(&mut self) {
        if let Some(item) = self.item.take() {
            let counter = &self.shared.counters.dropped;
            self.shared.give_up(std::slice::from_ref(&item), counter);
        }
    }
}
