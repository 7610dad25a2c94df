//! A publisher for one channel, which knows whether anyone listens: [`Publisher`], its
//! [`Matching`] changes and the [`MatchingChanges`] watch that reports them.

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::broker::Broker;
use crate::engine::Watching;
use crate::error::PublishError;
use crate::into_payload::IntoPayload;
use crate::wait::Wait;

/// A handle that publishes on one channel, made by [`Broker::publisher`]: the broker's
/// publishes, with the same counts, and whether a publish now would reach anyone.
///
/// A publish through it skips what [`Broker::publish`] does for every call to find the
/// channel (hashing its name, looking it up) while no channel of its stripe of the broker's
/// map came or went; BENCHMARKS.md counts the difference. Clones are cheap and share one
/// status. A publisher keeps the broker open, as a [`Broker`] clone does.
///
/// # Matching status
///
/// [`is_matched`](Publisher::is_matched) says whether a publish now would reach a handle: one
/// subscribed to the channel, or to a pattern that matches it, exactly as
/// [`publish`](Publisher::publish) finds them (Redis's `PUBSUB NUMSUB` leaves pattern
/// subscribers out; this does not). So, with no bounded queue full, it is `false` exactly
/// when a publish would return 0. It is one atomic load, cheap enough before every publish.
/// A `subscribe` or `psubscribe` that returned has made it `true`; an unsubscription (or a
/// handle's close, drop or [`Overflow::Disconnect`](crate::Overflow::Disconnect)) that
/// removed the last matching subscription has made it `false`, as has
/// [`Broker::close`].
///
/// [`wait_matched`](Publisher::wait_matched) and
/// [`wait_unmatched`](Publisher::wait_unmatched) wait for a state without polling, and
/// [`matching_changes`](Publisher::matching_changes) reports every change, in order.
///
/// On a broker with a [`Bridge`] (feature `redis`), the status is local: it counts this
/// process's handles only, as Redis tells a subscriber nothing of other clients' subscriptions.
/// A publish may then reach subscribers elsewhere while `is_matched()` is `false`.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use fanout::Broker;
///
/// let broker = Broker::<str>::new();
/// let prices = broker.publisher("prices.eu");
/// assert!(!prices.is_matched());
/// assert_eq!(prices.publish("101.5"), 0); // nobody listens
///
/// let dashboard = broker.pubsub();
/// dashboard.psubscribe("prices.*"); // a pattern counts too
/// assert!(prices.is_matched());
/// assert_eq!(prices.publish("101.7"), 1);
///
/// dashboard.punsubscribe("prices.*");
/// assert!(prices.wait_unmatched(Duration::ZERO));
/// ```
///
#[cfg_attr(feature = "redis", doc = "[`Bridge`]: crate::Bridge")]
#[cfg_attr(
    not(feature = "redis"),
    doc = "[`Bridge`]: https://docs.rs/fanout/latest/fanout/struct.Bridge.html"
)]
pub struct Publisher<T: ?Sized> {
    broker: Broker<T>,
    watching: Watching,
}

impl<T: ?Sized> Publisher<T> {
    pub(crate) fn new(broker: Broker<T>, watching: Watching) -> Self {
        Publisher { broker, watching }
    }

    /// The channel this publisher publishes on.
    ///
    /// ```
    /// let broker = fanout::Broker::<str>::new();
    /// assert_eq!(broker.publisher("news").channel(), "news");
    /// ```
    pub fn channel(&self) -> &str {
        self.watching.interest().channel()
    }

    /// Publishes `payload` as [`Broker::publish`] does on this channel: same deliveries, same
    /// count, same waiting for a full [`Overflow::Block`](crate::Overflow::Block) queue.
    ///
    /// ```
    /// let broker = fanout::Broker::<str>::new();
    /// let sub = broker.pubsub();
    /// sub.subscribe("news");
    /// let news = broker.publisher("news");
    /// assert_eq!(news.publish("hello"), broker.publish("news", "again"));
    /// ```
    pub fn publish(&self, payload: impl IntoPayload<T>) -> usize {
        let published = self.publish_waiting(payload.into_payload(), Wait::Forever);
        published.delivered
    }

    /// Publishes as [`Broker::try_publish`] does on this channel: never waits for a full
    /// queue.
    ///
    /// # Errors
    ///
    /// As [`Broker::try_publish`]: the handles whose queue was full, the deliveries made, and
    /// the payload back.
    ///
    /// ```
    /// use fanout::{Broker, Overflow};
    ///
    /// let broker = Broker::<str>::builder().capacity(1).overflow(Overflow::Block).build();
    /// let sub = broker.pubsub();
    /// sub.subscribe("jobs");
    /// let jobs = broker.publisher("jobs");
    /// assert_eq!(jobs.try_publish("1").unwrap(), 1);
    /// assert_eq!(jobs.try_publish("2").unwrap_err().full(), [sub.id()]);
    /// ```
    pub fn try_publish(&self, payload: impl IntoPayload<T>) -> Result<usize, PublishError<T>> {
        let payload = payload.into_payload();
        self.publish_waiting(payload.clone(), Wait::Never)
            .into_result(payload)
    }

    /// Publishes as [`Broker::publish_timeout`] does on this channel: waits at most `timeout`
    /// in all for full `Block` queues.
    ///
    /// # Errors
    ///
    /// As [`Broker::publish_timeout`], for the handles still full at the deadline.
    ///
    /// ```
    /// use std::time::Duration;
    /// use fanout::{Broker, Overflow};
    ///
    /// let broker = Broker::<str>::builder().capacity(1).overflow(Overflow::Block).build();
    /// let sub = broker.pubsub();
    /// sub.subscribe("jobs");
    /// let jobs = broker.publisher("jobs");
    /// assert_eq!(jobs.publish_timeout("1", Duration::ZERO).unwrap(), 1);
    /// let err = jobs.publish_timeout("2", Duration::from_millis(10)).unwrap_err();
    /// assert_eq!(err.full(), [sub.id()]);
    /// ```
    pub fn publish_timeout(
        &self,
        payload: impl IntoPayload<T>,
        timeout: Duration,
    ) -> Result<usize, PublishError<T>> {
        let payload = payload.into_payload();
        self.publish_waiting(payload.clone(), Wait::at_most(timeout))
            .into_result(payload)
    }

    /// Publishes as [`Broker::publish_async`] does on this channel (feature `async`): a full
    /// `Block` queue is waited for without blocking the thread.
    ///
    /// ```
    /// let broker = fanout::Broker::<str>::new();
    /// let sub = broker.pubsub();
    /// sub.subscribe("news");
    /// let news = broker.publisher("news");
    /// assert_eq!(futures::executor::block_on(news.publish_async("hello")), 1);
    /// ```
    #[cfg(feature = "async")]
    pub async fn publish_async(&self, payload: impl IntoPayload<T>) -> usize {
        self.broker.publish_async(self.channel(), payload).await
    }

    #[inline]
    fn publish_waiting(&self, payload: Arc<T>, wait: Wait) -> crate::engine::Published {
        self.broker
            .publish_by(self.watching.interest(), payload, wait)
    }

    /// Whether a publish now would reach a local handle (see [Matching
    /// status](Publisher#matching-status)): one atomic load.
    ///
    /// ```
    /// let broker = fanout::Broker::<str>::new();
    /// let news = broker.publisher("news");
    /// let sub = broker.pubsub();
    /// sub.subscribe("news");
    /// assert!(news.is_matched());
    /// drop(sub); // its subscriptions go with it
    /// assert!(!news.is_matched());
    /// ```
    #[inline]
    pub fn is_matched(&self) -> bool {
        self.watching.interest().changes() % 2 == 1
    }

    /// Waits until a publish would reach someone: `true` at once if it would, or as soon as a
    /// subscription makes it so within `timeout`; `false` after `timeout`, or at once once the
    /// broker is closed (no subscription can come). `Duration::MAX` waits for ever.
    ///
    /// ```
    /// use std::time::Duration;
    ///
    /// let broker = fanout::Broker::<str>::new();
    /// let feed = broker.publisher("feed");
    /// assert!(!feed.wait_matched(Duration::from_millis(1)));
    /// let sub = broker.pubsub();
    /// std::thread::scope(|s| {
    ///     s.spawn(|| sub.subscribe("feed"));
    ///     assert!(feed.wait_matched(Duration::from_secs(10)));
    /// });
    /// ```
    pub fn wait_matched(&self, timeout: Duration) -> bool {
        self.wait_for(true, timeout)
    }

    /// Waits until a publish would reach nobody: `true` at once if so, or as soon as the last
    /// matching subscription goes within `timeout`; `false` after `timeout`.
    /// `Duration::MAX` waits for ever.
    ///
    /// ```
    /// use std::time::Duration;
    ///
    /// let broker = fanout::Broker::<str>::new();
    /// let feed = broker.publisher("feed");
    /// let sub = broker.pubsub();
    /// sub.subscribe("feed");
    /// assert!(!feed.wait_unmatched(Duration::ZERO));
    /// std::thread::scope(|s| {
    ///     s.spawn(|| sub.unsubscribe("feed"));
    ///     assert!(feed.wait_unmatched(Duration::from_secs(10)));
    /// });
    /// ```
    pub fn wait_unmatched(&self, timeout: Duration) -> bool {
        self.wait_for(false, timeout)
    }

    fn wait_for(&self, matched: bool, timeout: Duration) -> bool {
        let deadline = Wait::at_most(timeout).deadline();
        let answer = self.watching.interest().wait(deadline, |changes, closed| {
            match ((changes % 2 == 1) == matched, closed) {
                (true, _) => Some(true),
                // Closed, so unmatched for good.
                (false, true) => Some(false),
                (false, false) => None,
            }
        });
        answer.unwrap_or(false)
    }

    /// A watch of this channel's matching status: an iterator of its changes, each
    /// [`Matching::Matched`] or [`Matching::Unmatched`], in order, none lost or repeated.
    ///
    /// The watch starts from unmatched: if a publish would reach someone when it is made, its
    /// first change is `Matched`. So changes alternate, starting with `Matched`, and the last
    /// one read is the status. Its `next()` blocks until the next change, and returns `None`
    /// once the broker is closed and every change before the close was read (the last is
    /// then `Unmatched`). [`MatchingChanges::next_timeout`] waits at most a while; with
    /// feature `async`, `MatchingChanges::stream()` makes it a `Stream`. To run a callback on each change, give a
    /// thread the loop: `std::thread::spawn(move || changes.for_each(on_change))`.
    ///
    /// A watch keeps counting while it lives, whether or not its publisher does.
    ///
    /// ```
    /// use fanout::{Broker, Matching};
    ///
    /// let broker = Broker::<str>::new();
    /// let feed = broker.publisher("feed");
    /// let changes = feed.matching_changes();
    /// let (a, b) = (broker.pubsub(), broker.pubsub());
    /// a.subscribe("feed"); // Matched
    /// b.psubscribe("f*"); // still matched: no change
    /// a.unsubscribe("feed");
    /// drop(b); // Unmatched
    /// broker.close(); // ends the watch
    /// assert_eq!(changes.collect::<Vec<_>>(), [Matching::Matched, Matching::Unmatched]);
    /// ```
    #[must_use = "a watch reports changes only when read"]
    pub fn matching_changes(&self) -> MatchingChanges {
        let watching = self.watching.clone();
        let changes = watching.interest().changes();
        MatchingChanges {
            watching,
            // From unmatched: a watch made while matched reads that `Matched` first.
            seen: changes - changes % 2,
        }
    }
}

impl<T: ?Sized> Clone for Publisher<T> {
    fn clone(&self) -> Self {
        Publisher {
            broker: self.broker.clone(),
            watching: self.watching.clone(),
        }
    }
}

/// Shows the channel and the status, so it needs no `T: Debug`.
impl<T: ?Sized> fmt::Debug for Publisher<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Publisher")
            .field("channel", &self.channel())
            .field("matched", &self.is_matched())
            .finish()
    }
}

/// A change of a [`Publisher`]'s matching status, reported by [`MatchingChanges`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Matching {
    /// A publish on the channel now reaches someone: its first channel or matching pattern
    /// subscription came.
    Matched,
    /// A publish on the channel now reaches nobody: its last matching subscription went.
    Unmatched,
}

impl Matching {
    /// The change that made the `n`th change of a status that starts unmatched (`n` from 1).
    fn nth(n: u64) -> Matching {
        match n % 2 {
            1 => Matching::Matched,
            _ => Matching::Unmatched,
        }
    }
}

/// The changes of a [`Publisher`]'s matching status, in order, from
/// [`Publisher::matching_changes`]: a blocking iterator, made a `Stream` by `stream()`
/// (feature `async`).
///
/// Nothing is queued per change: the watch keeps a count of the changes it read, and the
/// status a count of those made, so a slow reader holds no memory and still reads every
/// change.
pub struct MatchingChanges {
    watching: Watching,
    /// Changes read, from the unmatched start.
    seen: u64,
}

impl MatchingChanges {
    /// The status after the last change read (unmatched before the first).
    ///
    /// ```
    /// let broker = fanout::Broker::<str>::new();
    /// let sub = broker.pubsub();
    /// sub.subscribe("feed");
    /// let mut changes = broker.publisher("feed").matching_changes();
    /// assert!(!changes.is_matched()); // nothing read yet
    /// changes.next();
    /// assert!(changes.is_matched());
    /// ```
    pub fn is_matched(&self) -> bool {
        self.seen % 2 == 1
    }

    /// The next change, waiting at most `timeout` for it; `None` when none came in time, or
    /// when the watch ended (the broker closed; see [`is_ended`](MatchingChanges::is_ended)).
    ///
    /// ```
    /// use std::time::Duration;
    /// use fanout::Matching;
    ///
    /// let broker = fanout::Broker::<str>::new();
    /// let mut changes = broker.publisher("feed").matching_changes();
    /// assert_eq!(changes.next_timeout(Duration::from_millis(1)), None);
    /// let sub = broker.pubsub();
    /// sub.psubscribe("*");
    /// assert_eq!(changes.next_timeout(Duration::ZERO), Some(Matching::Matched));
    /// ```
    pub fn next_timeout(&mut self, timeout: Duration) -> Option<Matching> {
        let deadline = Wait::at_most(timeout).deadline();
        self.next_until(deadline)
    }

    /// Whether the watch ended: the broker closed, and every change was read.
    ///
    /// ```
    /// let broker = fanout::Broker::<str>::new();
    /// let mut changes = broker.publisher("feed").matching_changes();
    /// broker.close();
    /// assert!(changes.is_ended());
    /// assert_eq!(changes.next(), None);
    /// ```
    pub fn is_ended(&self) -> bool {
        let interest = self.watching.interest();
        interest.is_closed() && interest.changes() == self.seen
    }

    /// What a look at the status finds after the changes read: the next change, the end
    /// (`Some(None)`), or nothing yet (`None`).
    fn after(&self) -> impl FnMut(u64, bool) -> Option<Option<Matching>> {
        let seen = self.seen;
        move |changes, closed| match (changes > seen, closed) {
            (true, _) => Some(Some(Matching::nth(seen + 1))),
            (false, true) => Some(None),
            (false, false) => None,
        }
    }

    fn next_until(&mut self, deadline: Option<Instant>) -> Option<Matching> {
        let next = self.watching.interest().wait(deadline, self.after());
        let next = next.flatten();
        self.seen += u64::from(next.is_some());
        next
    }
}

/// Blocks until the next change; `None` once the watch ended (the broker closed).
impl Iterator for MatchingChanges {
    type Item = Matching;

    fn next(&mut self) -> Option<Matching> {
        self.next_until(None)
    }
}

/// [`MatchingChanges`] as a `futures_core::Stream` (feature `async`), from
/// [`MatchingChanges::stream`]: woken by the change itself, on any executor.
///
/// ```
/// use futures::StreamExt;
/// use fanout::Matching;
///
/// let broker = fanout::Broker::<str>::new();
/// let mut changes = broker.publisher("feed").matching_changes().stream();
/// let sub = broker.pubsub();
/// sub.subscribe("feed");
/// assert_eq!(futures::executor::block_on(changes.next()), Some(Matching::Matched));
/// ```
#[cfg(feature = "async")]
#[derive(Debug)]
pub struct MatchingStream {
    changes: MatchingChanges,
    /// Its waiter id, under which it registers for the next change.
    waiter: u64,
}

#[cfg(feature = "async")]
impl MatchingChanges {
    /// The same changes as a `Stream` (feature `async`): see [`MatchingStream`].
    #[must_use = "a stream reports changes only when polled"]
    pub fn stream(self) -> MatchingStream {
        MatchingStream {
            changes: self,
            waiter: crate::handle::waiter_id(),
        }
    }
}

#[cfg(feature = "async")]
impl MatchingStream {
    /// The status after the last change read: see [`MatchingChanges::is_matched`].
    pub fn is_matched(&self) -> bool {
        self.changes.is_matched()
    }
}

#[cfg(feature = "async")]
impl futures_core::Stream for MatchingStream {
    type Item = Matching;

    fn poll_next(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Matching>> {
        let after = self.changes.after();
        let interest = self.changes.watching.interest();
        match interest.poll(self.waiter, cx.waker(), after) {
            Some(next) => {
                self.changes.seen += u64::from(next.is_some());
                std::task::Poll::Ready(next)
            }
            None => std::task::Poll::Pending,
        }
    }
}

#[cfg(feature = "async")]
impl Drop for MatchingStream {
    fn drop(&mut self) {
        self.changes.watching.interest().forget(self.waiter);
    }
}

impl fmt::Debug for MatchingChanges {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MatchingChanges")
            .field("channel", &self.watching.interest().channel())
            .field("matched", &self.is_matched())
            .finish()
    }
}
