//! What the bridge's threads and its publishers share: counters, progress and the publish path.
//!
//! # Locks
//!
//! `progress` is a leaf, as are the backlog's and the echoes' locks; none is held while
//! calling into the registry.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex};

use crate::registry::{Outbound, Published, Registry, Scope, Wait};

use super::backlog::{Backlog, Outgoing, Pushed};
use super::codec::Codec;
use super::echo::{EchoKey, Echoes};
use super::{BridgeStats, Route};

/// How the bridge (re)connects.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Timing {
    pub(crate) connect_timeout: Duration,
    pub(crate) min_delay: Duration,
    pub(crate) max_delay: Duration,
}

/// How far the bridge has got; guarded by `Shared::progress`.
#[derive(Default)]
struct Progress {
    /// The last subscription change (by sequence number) Redis has.
    applied: u64,
    /// Publishes out of the backlog for good: forwarded, evicted or lost.
    settled: u64,
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
    pub(crate) registry: Arc<Registry<T>>,
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
    progress: Mutex<Progress>,
    progressed: Condvar,
    /// Whether the subscription and the publishing connection are up.
    pub(crate) subscriber_up: AtomicBool,
    pub(crate) publisher_up: AtomicBool,
    /// Names subscribed on Redis now.
    pub(crate) mirrored: AtomicUsize,
    /// Set when the bridge is dropped: connections are no longer retried.
    pub(crate) stopping: AtomicBool,
}

impl<T: ?Sized> Shared<T> {
    pub(crate) fn new(
        registry: Arc<Registry<T>>,
        route: Route,
        sharded: bool,
        timing: Timing,
        backlog: Backlog<T>,
    ) -> Self {
        Shared {
            registry,
            route,
            sharded,
            timing,
            backlog,
            echoes: Echoes::default(),
            counters: Counters::default(),
            issued: AtomicU64::new(0),
            accepted: AtomicU64::new(0),
            progress: Mutex::new(Progress::default()),
            progressed: Condvar::new(),
            subscriber_up: AtomicBool::new(false),
            publisher_up: AtomicBool::new(false),
            mirrored: AtomicUsize::new(0),
            stopping: AtomicBool::new(false),
        }
    }

    pub(crate) fn is_stopping(&self) -> bool {
        self.stopping.load(Ordering::Acquire)
    }

    /// Records that Redis has every subscription change up to `seq`.
    pub(crate) fn applied(&self, seq: u64) {
        let mut progress = self.progress.lock();
        progress.applied = progress.applied.max(seq);
        self.progressed.notify_all();
    }

    /// Records that `n` publishes left the backlog for good.
    pub(crate) fn settled(&self, n: usize) {
        if n == 0 {
            return;
        }
        self.progress.lock().settled += n as u64;
        self.progressed.notify_all();
    }

    /// Wakes everyone waiting on progress (the bridge is stopping).
    pub(crate) fn wake_all(&self) {
        let _progress = self.progress.lock();
        self.progressed.notify_all();
    }

    /// Waits until Redis has subscription change `seq`; false if the bridge stopped first.
    pub(crate) fn wait_applied(&self, seq: u64) -> bool {
        let mut progress = self.progress.lock();
        while progress.applied < seq {
            if self.is_stopping() {
                return false;
            }
            self.progressed.wait(&mut progress);
        }
        true
    }

    /// Waits until Redis has every subscription change and every publish made so far.
    pub(crate) fn flush(&self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        let (changes, publishes) = (
            self.issued.load(Ordering::Acquire),
            self.accepted.load(Ordering::Acquire),
        );
        let mut progress = self.progress.lock();
        while progress.applied < changes || progress.settled < publishes {
            if self.is_stopping()
                || self
                    .progressed
                    .wait_until(&mut progress, deadline)
                    .timed_out()
            {
                return progress.applied >= changes && progress.settled >= publishes;
            }
        }
        true
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
        if self.registry.is_closed() {
            return None;
        }
        let (count, topics) = self.registry.matching(channel, !self.sharded);
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
        };
        let counted = (self.route == Route::ViaRedis).then(|| Published {
            delivered: count,
            ..Published::default()
        });
        Some((counted, item))
    }

    /// Which local subscriptions a publish reaches: not patterns under sharded Pub/Sub.
    fn scope(&self) -> Scope<'static> {
        if self.sharded {
            Scope::Channel
        } else {
            Scope::All
        }
    }

    /// Accounts for what the backlog did with a publish.
    fn pushed(&self, pushed: Pushed<T>, published: &mut Published) {
        match pushed {
            Pushed::Queued(evicted) => {
                self.accepted.fetch_add(1, Ordering::AcqRel);
                self.give_up(&evicted, &self.counters.dropped);
                self.settled(evicted.len());
            }
            Pushed::Refused(item) => {
                self.give_up(std::slice::from_ref(&item), &self.counters.dropped);
                published.backlog_full = true;
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
            self.registry
                .publish_to(channel, payload, self.scope(), wait)
        });
        let pushed = self.backlog.push(item, wait);
        self.pushed(pushed, &mut published);
        published
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
            let mut published = match counted {
                Some(counted) => counted,
                None => {
                    let payload = item.payload.clone();
                    let local = self.registry.publish_async(channel, payload, self.scope());
                    local.await
                }
            };
            // Waits for room in a full `Block` backlog without blocking the thread.
            let mut item = Some(item);
            let pushed = std::future::poll_fn(|cx| {
                let Some(pending) = item.take() else {
                    return std::task::Poll::Ready(None);
                };
                match self.backlog.poll_push(pending, cx.waker()) {
                    Ok(pushed) => std::task::Poll::Ready(Some(pushed)),
                    Err(back) => {
                        item = Some(back);
                        std::task::Poll::Pending
                    }
                }
            })
            .await;
            if let Some(pushed) = pushed {
                self.pushed(pushed, &mut published);
            }
            published
        })
    }
}
