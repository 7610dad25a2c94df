//! The subscription connection: Redis holds the union of what local handles subscribe to.
//!
//! One thread runs a single-threaded tokio runtime for redis-rs's async Pub/Sub connection,
//! split in two: the sink subscribes and unsubscribes as the registry reports names coming
//! and going, and what the stream brings is forwarded to the receiving thread (`receive.rs`),
//! which delivers it. When the connection drops, this side disarms (no publish goes out
//! meanwhile, see `shared.rs`), reconnects with back-off, subscribes to everything again,
//! hands a new feed over with the length of the gap, and arms. It answers checks with a PING
//! and, once the reply is in, forwards what the stream holds, then the check's marker
//! (`order.rs`).
//!
//! Every command waits for its reply at most the reply timeout (a server that hangs counts
//! as lost), and every wait ends as soon as the bridge reaches `STOPPED`.

use std::collections::HashSet;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_core::Stream;
use redis::aio::{PubSub, PubSubSink, PubSubStream};
use redis::Msg;
use tokio::sync::mpsc::UnboundedReceiver;

use crate::engine::hooks::{Change, Topic};
use crate::kind::Kind;

use super::shared::{bump, Shared, STOPPED};

/// What the receiving thread gets from one subscription connection, in the connection's
/// order.
pub(crate) enum Arrival {
    /// A message or pmessage.
    Message(Msg),
    /// Everything Redis sent before its reply to check number `.0` came before this.
    Marker(u64),
}

/// One connection's arrivals for the receiving thread, and what it must report before
/// reading them.
pub(crate) struct Feed {
    /// Ends when the connection does.
    pub(crate) arrivals: crossbeam_channel::Receiver<Arrival>,
    /// How long the bridge was without a subscription connection before this one, if it lost
    /// one.
    pub(crate) gap: Option<Duration>,
}

/// The sink side's state.
pub(crate) struct Mirror<T: ?Sized> {
    pub(crate) shared: Arc<Shared<T>>,
    pub(crate) client: redis::Client,
    /// Changes from the registry, numbered; closed when the bridge is dropped.
    pub(crate) changes: UnboundedReceiver<(u64, Change)>,
    /// New feeds, to the receiving thread.
    pub(crate) feeds: crossbeam_channel::Sender<Feed>,
    /// Names Redis should have.
    desired: HashSet<Topic>,
    /// The last change taken into `desired`.
    last_seq: u64,
}

/// Why the steady state ended, or a command did not go through.
enum Stop {
    /// The connection dropped, or a reply took too long: reconnect.
    Lost,
    /// The bridge was dropped.
    Closed,
}

impl<T: ?Sized> Mirror<T> {
    pub(crate) fn new(
        shared: Arc<Shared<T>>,
        client: redis::Client,
        changes: UnboundedReceiver<(u64, Change)>,
        feeds: crossbeam_channel::Sender<Feed>,
    ) -> Self {
        Mirror {
            shared,
            client,
            changes,
            feeds,
            desired: HashSet::new(),
            last_seq: 0,
        }
    }

    /// Runs until the bridge is dropped, starting from the connection `connect` made.
    pub(crate) async fn run(mut self, first: PubSub) {
        let mut connection = Some(first);
        let mut down_since: Option<Instant> = None;
        loop {
            let pubsub = match connection.take() {
                Some(pubsub) => pubsub,
                None => match self.reconnect().await {
                    Some(pubsub) => pubsub,
                    None => return,
                },
            };
            let (mut sink, mut stream) = pubsub.split();
            self.drain();
            match self.subscribe_all(&mut sink).await {
                Ok(()) => {}
                Err(Stop::Closed) => return,
                Err(Stop::Lost) => {
                    down_since.get_or_insert_with(Instant::now);
                    continue;
                }
            }
            let gap = down_since.take().map(|since| since.elapsed());
            if gap.is_some() {
                bump(&self.shared.counters.reconnects, 1);
            }
            let (arrivals, feed) = crossbeam_channel::unbounded();
            let feed = Feed {
                arrivals: feed,
                gap,
            };
            if self.feeds.send(feed).is_err() {
                return;
            }
            self.shared.subscriber_up.store(true, Ordering::Release);
            self.shared.arm(self.last_seq);
            let stop = self.steady(&mut sink, &mut stream, &arrivals).await;
            self.shared.disarm();
            self.shared.subscriber_up.store(false, Ordering::Release);
            match stop {
                Stop::Closed => return,
                Stop::Lost => down_since = Some(Instant::now()),
            }
        }
    }

    /// Follows the registry's changes and answers publishers' checks until the connection
    /// drops or the bridge is dropped.
    async fn steady(
        &mut self,
        sink: &mut PubSubSink,
        stream: &mut PubSubStream,
        arrivals: &crossbeam_channel::Sender<Arrival>,
    ) -> Stop {
        loop {
            if let Some(requested) = self.shared.check_wanted() {
                // A PING that starts now proves this connection alive after the request.
                match self
                    .shared
                    .reply(STOPPED, sink.ping::<redis::Value>())
                    .await
                {
                    Some(Ok(_)) => {}
                    None if self.shared.is_stopped() => return Stop::Closed,
                    _ => return Stop::Lost,
                }
                // Redis sent everything before the reply first: it is in the stream now.
                if !forward_held(stream, arrivals).await {
                    return Stop::Lost;
                }
                let _ = arrivals.send(Arrival::Marker(requested));
                self.shared.checked(requested);
            }
            let shared = Arc::clone(&self.shared);
            tokio::select! {
                change = self.changes.recv() => {
                    // The registry stops telling once the bridge is dropped: wait for the stop.
                    let Some((seq, change)) = change else {
                        return self.stopped().await;
                    };
                    self.last_seq = seq;
                    if let Err(stop) = self.apply(sink, change).await {
                        return stop;
                    }
                    self.shared.mirrored.store(self.desired.len(), Ordering::Relaxed);
                    self.shared.applied(seq);
                }
                arrival = next(stream) => match arrival {
                    Some(message) => {
                        let _ = arrivals.send(Arrival::Message(message));
                    }
                    None => return Stop::Lost,
                },
                () = shared.check_wanted.notified() => {} // answered at the top
                None = shared.unless(STOPPED, std::future::pending::<()>()) => return Stop::Closed,
            }
        }
    }

    /// Waits for the bridge to reach `STOPPED`.
    async fn stopped(&self) -> Stop {
        self.shared
            .unless(STOPPED, std::future::pending::<()>())
            .await;
        Stop::Closed
    }

    /// Records `change` and makes it on Redis.
    async fn apply(&mut self, sink: &mut PubSubSink, change: Change) -> Result<(), Stop> {
        let Some((topic, subscribe)) = self.record(change) else {
            return Ok(());
        };
        let done = self.command(sink, &topic, subscribe).await;
        if !subscribe {
            // Redis sends nothing more through it; echoes still expected never come.
            self.shared.echoes.forget_topic(&topic);
        }
        done
    }

    /// Subscribes to everything in `desired` on a new connection.
    async fn subscribe_all(&mut self, sink: &mut PubSubSink) -> Result<(), Stop> {
        let topics: Vec<Topic> = self.desired.iter().cloned().collect();
        for topic in &topics {
            self.command(sink, topic, true).await?;
        }
        self.shared.mirrored.store(topics.len(), Ordering::Relaxed);
        Ok(())
    }

    /// One (P)SUBSCRIBE or (P)UNSUBSCRIBE, its reply waited for at most the reply timeout.
    /// An error other than a lost connection is counted in `refused` and the connection kept.
    async fn command(
        &self,
        sink: &mut PubSubSink,
        topic: &Topic,
        subscribe: bool,
    ) -> Result<(), Stop> {
        let sent = async {
            let name = topic.name.as_bytes();
            match (topic.kind, subscribe) {
                (Kind::Channel, true) => sink.subscribe(name).await,
                (Kind::Channel, false) => sink.unsubscribe(name).await,
                (Kind::Pattern, true) => sink.psubscribe(name).await,
                (Kind::Pattern, false) => sink.punsubscribe(name).await,
            }
        };
        match self.shared.reply(STOPPED, sent).await {
            Some(Ok(())) => Ok(()),
            Some(Err(error)) if !is_connection_error(&error) => {
                bump(&self.shared.counters.refused, 1);
                Ok(())
            }
            None if self.shared.is_stopped() => Err(Stop::Closed),
            _ => Err(Stop::Lost),
        }
    }

    /// Takes the changes already told into `desired`, without Redis.
    fn drain(&mut self) {
        while let Ok((seq, change)) = self.changes.try_recv() {
            self.record_offline(seq, change);
        }
    }

    /// Takes `change` into `desired`: the topic and whether to subscribe (or unsubscribe) it
    /// on Redis, when that changes anything.
    fn record(&mut self, change: Change) -> Option<(Topic, bool)> {
        let (topic, subscribe, changed) = match change {
            Change::Added(topic) => (topic.clone(), true, self.desired.insert(topic)),
            Change::Removed(topic) => {
                let changed = self.desired.remove(&topic);
                (topic, false, changed)
            }
        };
        changed.then_some((topic, subscribe))
    }

    /// `record` while disconnected: what is removed expects no more echoes.
    fn record_offline(&mut self, seq: u64, change: Change) {
        self.last_seq = seq;
        if let Change::Removed(topic) = &change {
            self.shared.echoes.forget_topic(topic);
        }
        self.record(change);
    }

    /// Connects again, waiting `min_delay`, then twice as long each time up to `max_delay`,
    /// between attempts; keeps taking changes meanwhile. `None` once the bridge is dropped,
    /// which cuts the wait and the attempt short.
    async fn reconnect(&mut self) -> Option<PubSub> {
        let shared = Arc::clone(&self.shared);
        let timing = shared.timing;
        let mut delay = timing.min_delay;
        loop {
            let pause = tokio::time::sleep(delay);
            tokio::pin!(pause);
            loop {
                tokio::select! {
                    () = &mut pause => break,
                    Some((seq, change)) = self.changes.recv() => self.record_offline(seq, change),
                    None = shared.unless(STOPPED, std::future::pending::<()>()) => return None,
                }
            }
            let attempt = super::within(timing.connect_timeout, self.client.get_async_pubsub());
            if let Ok(pubsub) = shared.unless(STOPPED, attempt).await? {
                return Some(pubsub);
            }
            delay = timing.next_delay(delay);
        }
    }
}

/// Whether `error` means the connection is gone (rather than one command refused).
pub(crate) fn is_connection_error(error: &redis::RedisError) -> bool {
    error.is_io_error()
        || error.is_connection_dropped()
        || error.is_connection_refusal()
        || error.is_unrecoverable_error()
}

/// The next arrival of `stream`; `None` once the connection ended.
fn next(stream: &mut PubSubStream) -> impl std::future::Future<Output = Option<Msg>> + '_ {
    std::future::poll_fn(move |cx| std::pin::Pin::new(&mut *stream).poll_next(cx))
}

/// Forwards what `stream` holds now, without waiting for more; false if the connection ended.
async fn forward_held(
    stream: &mut PubSubStream,
    arrivals: &crossbeam_channel::Sender<Arrival>,
) -> bool {
    std::future::poll_fn(|cx| loop {
        match std::pin::Pin::new(&mut *stream).poll_next(cx) {
            std::task::Poll::Ready(Some(message)) => {
                let _ = arrivals.send(Arrival::Message(message));
            }
            std::task::Poll::Ready(None) => return std::task::Poll::Ready(false),
            std::task::Poll::Pending => return std::task::Poll::Ready(true),
        }
    })
    .await
}
