//! The subscriber handle: (un)subscriptions with confirmations, polling and `listen()`.
//!
//! # Locks
//!
//! `state` is this handle's own list of subscriptions. Every (un)subscription holds it for
//! the whole call and takes registry locks inside it (see `registry.rs` for the order), so
//! two threads changing one handle at once still see counts that rise and fall one by one,
//! in queue order. Publishers never take it.

use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crossbeam_channel::Receiver;
use parking_lot::Mutex;

use crate::message::Message;
use crate::registry::{shrink_if_sparse, Mailbox, Registry};

/// Channels or patterns: the two kinds of subscription, which work alike.
#[derive(Clone, Copy)]
enum Kind {
    Channel,
    Pattern,
}

/// What one handle is subscribed to, with the order of subscription.
#[derive(Default)]
struct Subscriptions {
    /// Channel name to its subscription sequence number.
    channels: HashMap<Arc<str>, u64>,
    /// Pattern text to its subscription sequence number.
    patterns: HashMap<Arc<str>, u64>,
    /// The next sequence number; orders `unsubscribe_all` by subscription time.
    next_seq: u64,
}

impl Subscriptions {
    fn of(&mut self, kind: Kind) -> &mut HashMap<Arc<str>, u64> {
        match kind {
            Kind::Channel => &mut self.channels,
            Kind::Pattern => &mut self.patterns,
        }
    }

    fn count(&self) -> usize {
        self.channels.len() + self.patterns.len()
    }
}

fn confirmation<T: ?Sized>(
    kind: Kind,
    subscribed: bool,
    name: Arc<str>,
    count: usize,
) -> Message<T> {
    match (kind, subscribed) {
        (Kind::Channel, true) => Message::Subscribe {
            channel: name,
            count,
        },
        (Kind::Channel, false) => Message::Unsubscribe {
            channel: name,
            count,
        },
        (Kind::Pattern, true) => Message::PSubscribe {
            pattern: name,
            count,
        },
        (Kind::Pattern, false) => Message::PUnsubscribe {
            pattern: name,
            count,
        },
    }
}

/// One subscriber: its subscriptions and the queue its messages arrive in.
///
/// Made by [`Broker::pubsub`](crate::Broker::pubsub). A handle receives only what is
/// published after the `subscribe` call that let it through has returned, and nothing
/// published after the matching `unsubscribe` has returned. Every call takes `&self`, and the
/// handle is `Send + Sync`, so one thread may block in [`listen`](PubSub::listen) while another
/// subscribes and unsubscribes.
///
/// Dropping the handle removes all its subscriptions from the broker at once, with no
/// confirmations.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use fanout::{Broker, Message};
///
/// let broker = Broker::<str>::new();
/// let sub = broker.pubsub();
/// sub.subscribe(["a", "b"]);
/// sub.psubscribe(["news.*"]);
/// assert_eq!(sub.subscriptions(), 3);
///
/// let counts: Vec<_> = std::iter::from_fn(|| sub.get_message(Duration::ZERO))
///     .map(|m| m.count())
///     .collect();
/// assert_eq!(counts, [Some(1), Some(2), Some(3)]);
/// ```
pub struct PubSub<T: ?Sized> {
    registry: Arc<Registry<T>>,
    mailbox: Arc<Mailbox<T>>,
    receiver: Receiver<Message<T>>,
    state: Mutex<Subscriptions>,
    /// `state`'s channels plus patterns, readable without the lock. It is stored after the
    /// confirmation of each change is queued (Release) and loaded before the queue is read
    /// (Acquire), so `listen` that reads 0 also sees the last `Unsubscribe` confirmation.
    subscriptions: AtomicUsize,
}

impl<T: ?Sized> PubSub<T> {
    pub(crate) fn new(registry: Arc<Registry<T>>) -> Self {
        let (sender, receiver) = crossbeam_channel::unbounded();
        PubSub {
            registry,
            mailbox: Arc::new(Mailbox::new(sender)),
            receiver,
            state: Mutex::new(Subscriptions::default()),
            subscriptions: AtomicUsize::new(0),
        }
    }

    /// Subscribes to each channel in `names`, queuing one `Subscribe` confirmation per name,
    /// in order.
    ///
    /// A channel already subscribed is confirmed again with an unchanged count and still
    /// receives each message once. An empty list does nothing.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use fanout::{Broker, Message};
    ///
    /// let broker = Broker::<str>::new();
    /// let sub = broker.pubsub();
    /// sub.subscribe(["c", "c"]);
    /// let first = sub.get_message(Duration::ZERO).unwrap();
    /// let again = sub.get_message(Duration::ZERO).unwrap();
    /// assert_eq!(first.count(), Some(1));
    /// assert_eq!(again.count(), Some(1));
    /// assert_eq!(broker.publish("c", "hi"), 1);
    /// ```
    pub fn subscribe<I>(&self, names: I)
    where
        I: IntoIterator,
        I::Item: AsRef<str>,
    {
        self.subscribe_each(Kind::Channel, names);
    }

    /// Subscribes to each Redis glob pattern in `names` (see [`glob_match`](crate::glob_match)),
    /// queuing one `PSubscribe` confirmation per name, in order.
    ///
    /// Patterns are subscriptions by their text: `foo*` and `fo[o]*` are two. A pattern
    /// already subscribed is confirmed again with an unchanged count. An empty list does
    /// nothing.
    pub fn psubscribe<I>(&self, names: I)
    where
        I: IntoIterator,
        I::Item: AsRef<str>,
    {
        self.subscribe_each(Kind::Pattern, names);
    }

    /// Unsubscribes from each channel in `names`, queuing one `Unsubscribe` confirmation per
    /// name, in order, after the last message the subscription let through.
    ///
    /// A channel that was not subscribed is confirmed anyway, with an unchanged count.
    /// Divergence from Redis: an empty list does nothing (it does not mean "all"); use
    /// [`unsubscribe_all`](PubSub::unsubscribe_all).
    pub fn unsubscribe<I>(&self, names: I)
    where
        I: IntoIterator,
        I::Item: AsRef<str>,
    {
        self.unsubscribe_each(Kind::Channel, names);
    }

    /// Unsubscribes from each pattern in `names`, compared as text (never matched), queuing
    /// one `PUnsubscribe` confirmation per name, in order. An empty list does nothing; use
    /// [`punsubscribe_all`](PubSub::punsubscribe_all).
    pub fn punsubscribe<I>(&self, names: I)
    where
        I: IntoIterator,
        I::Item: AsRef<str>,
    {
        self.unsubscribe_each(Kind::Pattern, names);
    }

    /// Unsubscribes from every channel, in subscription order, with one confirmation each;
    /// patterns stay. Queues nothing when no channel was subscribed.
    ///
    /// # Examples
    ///
    /// ```
    /// use fanout::Broker;
    ///
    /// let broker = Broker::<str>::new();
    /// let sub = broker.pubsub();
    /// sub.subscribe(["a", "b"]);
    /// sub.psubscribe(["p*"]);
    /// sub.unsubscribe_all();
    /// assert_eq!(sub.subscriptions(), 1);
    /// let kinds: Vec<_> = sub.listen().take(5).map(|m| (m.kind(), m.count())).collect();
    /// assert_eq!(
    ///     kinds,
    ///     [
    ///         ("subscribe", Some(1)),
    ///         ("subscribe", Some(2)),
    ///         ("psubscribe", Some(3)),
    ///         ("unsubscribe", Some(2)),
    ///         ("unsubscribe", Some(1)),
    ///     ]
    /// );
    /// ```
    pub fn unsubscribe_all(&self) {
        self.unsubscribe_every(Kind::Channel);
    }

    /// Unsubscribes from every pattern, in subscription order, with one confirmation each;
    /// channels stay. Queues nothing when no pattern was subscribed.
    pub fn punsubscribe_all(&self) {
        self.unsubscribe_every(Kind::Pattern);
    }

    /// Takes the next queued message, waiting at most `timeout` for one to arrive.
    ///
    /// `Duration::ZERO` polls without waiting. Returns `None` when nothing arrived in time.
    pub fn get_message(&self, timeout: Duration) -> Option<Message<T>> {
        if timeout.is_zero() {
            self.receiver.try_recv().ok()
        } else {
            self.receiver.recv_timeout(timeout).ok()
        }
    }

    /// A blocking iterator over the queue, like redis-py's `listen()`.
    ///
    /// Each `next` waits for a message while the handle has subscriptions. The iterator ends
    /// once the handle has none left and nothing is queued: after the last `Unsubscribe`
    /// confirmation, or at once for a handle that never subscribed. Calling `listen` again
    /// after a later `subscribe` starts a new loop.
    ///
    /// # Examples
    ///
    /// ```
    /// use fanout::Broker;
    ///
    /// let broker = Broker::<str>::new();
    /// let sub = broker.pubsub();
    /// sub.subscribe(["jobs"]);
    ///
    /// std::thread::scope(|s| {
    ///     s.spawn(|| {
    ///         broker.publish("jobs", "one");
    ///         broker.publish("jobs", "two");
    ///     })
    ///     .join()
    ///     .unwrap();
    ///     let mut seen = Vec::new();
    ///     for message in sub.listen() {
    ///         if let Some(payload) = message.payload() {
    ///             seen.push(payload.to_string());
    ///             if seen.len() == 2 {
    ///                 sub.unsubscribe(["jobs"]); // the loop ends after this confirmation
    ///             }
    ///         }
    ///     }
    ///     assert_eq!(seen, ["one", "two"]);
    /// });
    /// ```
    pub fn listen(&self) -> impl Iterator<Item = Message<T>> + '_ {
        std::iter::from_fn(move || {
            // Load the count before reading the queue: see the field's invariant.
            if self.is_subscribed() {
                self.receiver.recv().ok()
            } else {
                self.receiver.try_recv().ok()
            }
        })
    }

    /// Whether the handle has at least one channel or pattern subscription.
    pub fn is_subscribed(&self) -> bool {
        self.subscriptions() > 0
    }

    /// The handle's channels plus patterns: the count its last confirmation carried.
    pub fn subscriptions(&self) -> usize {
        self.subscriptions.load(Ordering::Acquire)
    }

    /// The receiving end of this handle's queue, for `crossbeam_channel::select!` over several
    /// handles and other channels.
    ///
    /// Reading from it is the same as [`get_message`](PubSub::get_message). The queue stays
    /// open while the handle lives, so a receive never reports disconnection while it does.
    ///
    /// # Examples
    ///
    /// ```
    /// use crossbeam_channel::select;
    /// use fanout::Broker;
    ///
    /// let broker = Broker::<str>::new();
    /// let (a, b) = (broker.pubsub(), broker.pubsub());
    /// a.subscribe(["x"]);
    /// b.subscribe(["y"]);
    /// let mut seen = 0;
    /// while seen < 2 {
    ///     select! {
    ///         recv(a.receiver()) -> m => { m.unwrap(); seen += 1 }
    ///         recv(b.receiver()) -> m => { m.unwrap(); seen += 1 }
    ///     }
    /// }
    /// ```
    pub fn receiver(&self) -> &Receiver<Message<T>> {
        &self.receiver
    }

    fn subscribe_each<I>(&self, kind: Kind, names: I)
    where
        I: IntoIterator,
        I::Item: AsRef<str>,
    {
        let mut state = self.state.lock();
        for name in names {
            let name = name.as_ref();
            if let Some((known, _)) = state.of(kind).get_key_value(name) {
                let known = known.clone();
                self.mailbox
                    .send(confirmation(kind, true, known, state.count()));
                continue;
            }
            let count = state.count() + 1;
            let confirm = |name| confirmation(kind, true, name, count);
            let shared = match kind {
                Kind::Channel => self.registry.add_channel(name, &self.mailbox, confirm),
                Kind::Pattern => self.registry.add_pattern(name, &self.mailbox, confirm),
            };
            let seq = state.next_seq;
            state.next_seq += 1;
            state.of(kind).insert(shared, seq);
            self.subscriptions.store(count, Ordering::Release);
        }
    }

    fn unsubscribe_each<I>(&self, kind: Kind, names: I)
    where
        I: IntoIterator,
        I::Item: AsRef<str>,
    {
        let mut state = self.state.lock();
        for name in names {
            self.unsubscribe_one(&mut state, kind, name.as_ref());
        }
    }

    fn unsubscribe_one(&self, state: &mut Subscriptions, kind: Kind, name: &str) {
        let removed = state.of(kind).remove_entry(name);
        shrink_if_sparse(state.of(kind));
        let Some((shared, _)) = removed else {
            let count = state.count();
            self.mailbox
                .send(confirmation(kind, false, Arc::from(name), count));
            return;
        };
        let count = state.count();
        let message = Some(confirmation(kind, false, shared.clone(), count));
        match kind {
            Kind::Channel => self
                .registry
                .remove_channel(&shared, &self.mailbox, message),
            Kind::Pattern => self
                .registry
                .remove_pattern(&shared, &self.mailbox, message),
        }
        self.subscriptions.store(count, Ordering::Release);
    }

    fn unsubscribe_every(&self, kind: Kind) {
        let mut state = self.state.lock();
        let mut names: Vec<(Arc<str>, u64)> = state
            .of(kind)
            .iter()
            .map(|(name, seq)| (name.clone(), *seq))
            .collect();
        names.sort_unstable_by_key(|&(_, seq)| seq);
        for (name, _) in names {
            self.unsubscribe_one(&mut state, kind, &name);
        }
    }
}

impl<T: ?Sized> Drop for PubSub<T> {
    fn drop(&mut self) {
        let state = self.state.get_mut();
        for channel in state.channels.keys() {
            self.registry.remove_channel(channel, &self.mailbox, None);
        }
        for pattern in state.patterns.keys() {
            self.registry.remove_pattern(pattern, &self.mailbox, None);
        }
    }
}

/// Shows the counts only, so it needs no `T: Debug`.
impl<T: ?Sized> fmt::Debug for PubSub<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PubSub")
            .field("subscriptions", &self.subscriptions())
            .field("queued", &self.receiver.len())
            .finish()
    }
}
