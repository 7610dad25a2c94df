//! What a subscriber reads from its queue: confirmations and deliveries.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

/// One item in a subscriber's queue, mirroring the message dicts redis-py yields.
///
/// Confirmations (`Subscribe`, `Unsubscribe`, `PSubscribe`, `PUnsubscribe`) carry `count`,
/// the handle's channels plus patterns right after that name was handled, as Redis sends it.
/// Deliveries carry the payload as the publisher's `Arc`, shared, never copied.
///
/// | variant | redis-py `type` | redis-py `channel` | redis-py `pattern` | redis-py `data` |
/// |---|---|---|---|---|
/// | `Subscribe` / `Unsubscribe` | `subscribe` / `unsubscribe` | channel | `None` | count |
/// | `PSubscribe` / `PUnsubscribe` | `psubscribe` / `punsubscribe` | the pattern | `None` | count |
/// | `Message` | `message` | channel | `None` | payload |
/// | `PMessage` | `pmessage` | channel | the matching pattern | payload |
///
/// Divergence from redis-py: a pattern confirmation keeps its pattern in `pattern`, not in
/// `channel`, so [`Message::channel`] is `None` for it and [`Message::pattern`] is the pattern.
///
/// The enum is `#[non_exhaustive]`: more notices may be added, so matches need a catch-all
/// arm.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use fanout::{Broker, Message};
///
/// let broker = Broker::<str>::new();
/// let sub = broker.pubsub();
/// sub.subscribe(["orders"]);
/// broker.publish("orders", "#1");
///
/// let confirmation = sub.get_message(Duration::ZERO).unwrap();
/// assert_eq!(confirmation.kind(), "subscribe");
/// assert_eq!(confirmation.count(), Some(1));
///
/// match sub.get_message(Duration::ZERO).unwrap() {
///     Message::Message { channel, payload } => {
///         assert_eq!(&*channel, "orders");
///         assert_eq!(&*payload, "#1");
///     }
///     other => panic!("unexpected {other:?}"),
/// }
/// ```
#[derive(Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Message<T: ?Sized> {
    /// A channel was subscribed (or subscribed again, with an unchanged count).
    Subscribe {
        /// The channel named in the call.
        channel: Arc<str>,
        /// The handle's channels plus patterns after this subscription.
        count: usize,
    },
    /// A channel was unsubscribed (or was not subscribed, with an unchanged count).
    Unsubscribe {
        /// The channel named in the call.
        channel: Arc<str>,
        /// The handle's channels plus patterns after this unsubscription.
        count: usize,
    },
    /// A pattern was subscribed (or subscribed again, with an unchanged count).
    PSubscribe {
        /// The pattern, as text: `foo*` and `fo[o]*` are two subscriptions.
        pattern: Arc<str>,
        /// The handle's channels plus patterns after this subscription.
        count: usize,
    },
    /// A pattern was unsubscribed (or was not subscribed, with an unchanged count).
    PUnsubscribe {
        /// The pattern, compared as text, never matched.
        pattern: Arc<str>,
        /// The handle's channels plus patterns after this unsubscription.
        count: usize,
    },
    /// A payload published to a channel this handle subscribed to.
    Message {
        /// The channel it was published to.
        channel: Arc<str>,
        /// The publisher's payload, shared with every other recipient.
        payload: Arc<T>,
    },
    /// Deliveries to this handle were dropped by its [`Overflow`](crate::Overflow) policy:
    /// `missed` of them, just before this point in the queue.
    ///
    /// Not a Redis message (Redis disconnects a slow subscriber instead); redis-py has no
    /// equivalent either. It is never dropped and does not count against capacity.
    Lagged {
        /// How many deliveries were dropped in this gap.
        missed: u64,
    },
    /// The broker's Redis [`Bridge`] (feature `redis`) lost its connection and
    /// is back: whatever was published elsewhere while it was down (how much is unknown) did
    /// not reach this handle. It sits where the gap is, before the first delivery after it.
    /// The bridge gives it as soon as its subscription connection is made again and every
    /// name subscribed again: within the back-off's cap (`BridgeBuilder::reconnect_delay`,
    /// 2 s unless set) of the server answering again, plus those round trips.
    ///
    /// Not a Redis message: redis-py reconnects in silence. Like `Lagged`, it is never dropped
    /// and does not count against capacity.
    ///
    #[cfg_attr(feature = "redis", doc = "[`Bridge`]: crate::Bridge")]
    #[cfg_attr(
        not(feature = "redis"),
        doc = "[`Bridge`]: https://docs.rs/fanout/latest/fanout/struct.Bridge.html"
    )]
    Gap {
        /// How long the bridge was without its subscription connection.
        down_for: Duration,
    },
    /// A payload published to a channel that matches a pattern this handle subscribed to.
    PMessage {
        /// The subscribed pattern that matched.
        pattern: Arc<str>,
        /// The channel it was published to.
        channel: Arc<str>,
        /// The publisher's payload, shared with every other recipient.
        payload: Arc<T>,
    },
    /// A payload retained by the broker's history (see
    /// [`BrokerBuilder::history`](crate::BrokerBuilder::history)), replayed to a handle made
    /// with [`PubSubBuilder::replay`](crate::PubSubBuilder::replay) right after the
    /// confirmation of the subscription it matched: published before that subscription,
    /// where live deliveries ([`Message::Message`], [`Message::PMessage`]) were published after it.
    ///
    /// Not a Redis message. Like a confirmation it is never dropped and does not count
    /// against capacity.
    Replay {
        /// The pattern subscription it was replayed for; `None` for a channel subscription.
        pattern: Option<Arc<str>>,
        /// The channel it was published to.
        channel: Arc<str>,
        /// The retained payload, shared with every other recipient.
        payload: Arc<T>,
    },
    /// The queue of a bounded handle made with
    /// [`PubSubBuilder::high_water`](crate::PubSubBuilder::high_water) has just reached its
    /// mark: `queued` deliveries wait to be read. Placed right after the delivery that
    /// reached it, so it comes before any delivery the policy loses (a `DropOldest` eviction
    /// moves an unread one ahead of the deliveries it drops, and of any confirmation between
    /// them); given again only once the reader has brought the queue below half the mark.
    ///
    /// Not a Redis message. Like `Lagged`, it is never dropped and does not count against
    /// capacity.
    HighWater {
        /// Deliveries queued when the mark was reached (the mark itself).
        queued: usize,
    },
}

impl<T: ?Sized> Message<T> {
    /// The Redis type string: `"subscribe"`, `"unsubscribe"`, `"psubscribe"`,
    /// `"punsubscribe"`, `"message"` or `"pmessage"`; for what Redis does not have,
    /// `"lagged"` ([`Message::Lagged`]), `"gap"` ([`Message::Gap`]), `"replay"`
    /// ([`Message::Replay`]) and `"high_water"` ([`Message::HighWater`]).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use fanout::{Broker, Message};
    ///
    /// let broker = Broker::<str>::new();
    /// let sub = broker.pubsub();
    /// sub.subscribe("a");
    /// sub.psubscribe("a*");
    /// broker.publish("a", "x");
    /// sub.punsubscribe_all();
    /// let kinds: Vec<_> = std::iter::from_fn(|| sub.get_message(Duration::ZERO))
    ///     .map(|m| m.kind())
    ///     .collect();
    /// assert_eq!(kinds, ["subscribe", "psubscribe", "message", "pmessage", "punsubscribe"]);
    /// assert_eq!(Message::<str>::Lagged { missed: 1 }.kind(), "lagged");
    /// ```
    pub fn kind(&self) -> &'static str {
        match self {
            Message::Subscribe { .. } => "subscribe",
            Message::Unsubscribe { .. } => "unsubscribe",
            Message::PSubscribe { .. } => "psubscribe",
            Message::PUnsubscribe { .. } => "punsubscribe",
            Message::Message { .. } => "message",
            Message::PMessage { .. } => "pmessage",
            Message::Lagged { .. } => "lagged",
            Message::Gap { .. } => "gap",
            Message::Replay { .. } => "replay",
            Message::HighWater { .. } => "high_water",
        }
    }

    /// The channel: the one published to, or the one a channel confirmation names.
    ///
    /// `None` for pattern confirmations (see [`Message::pattern`]).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use fanout::Broker;
    ///
    /// let broker = Broker::<str>::new();
    /// let sub = broker.pubsub();
    /// sub.psubscribe("news.*");
    /// broker.publish("news.rust", "out");
    /// let confirmation = sub.get_message(Duration::ZERO).unwrap();
    /// assert_eq!(confirmation.channel(), None); // a pattern confirmation
    /// let delivery = sub.get_message(Duration::ZERO).unwrap();
    /// assert_eq!(delivery.channel(), Some("news.rust"));
    /// ```
    pub fn channel(&self) -> Option<&str> {
        match self {
            Message::Subscribe { channel, .. }
            | Message::Unsubscribe { channel, .. }
            | Message::Message { channel, .. }
            | Message::PMessage { channel, .. }
            | Message::Replay { channel, .. } => Some(channel),
            Message::PSubscribe { .. }
            | Message::PUnsubscribe { .. }
            | Message::Lagged { .. }
            | Message::Gap { .. }
            | Message::HighWater { .. } => None,
        }
    }

    /// The pattern: the one that matched a `PMessage`, or the one a pattern confirmation names.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use fanout::Broker;
    ///
    /// let broker = Broker::<str>::new();
    /// let sub = broker.pubsub();
    /// sub.subscribe("news.rust");
    /// sub.psubscribe("news.*");
    /// broker.publish("news.rust", "out");
    /// let read: Vec<_> = std::iter::from_fn(|| sub.get_message(Duration::ZERO)).collect();
    /// let patterns: Vec<_> = read.iter().map(|m| m.pattern()).collect();
    /// // subscribe, psubscribe, message, pmessage
    /// assert_eq!(patterns, [None, Some("news.*"), None, Some("news.*")]);
    /// ```
    pub fn pattern(&self) -> Option<&str> {
        match self {
            Message::PSubscribe { pattern, .. }
            | Message::PUnsubscribe { pattern, .. }
            | Message::PMessage { pattern, .. } => Some(pattern),
            Message::Replay { pattern, .. } => pattern.as_deref(),
            _ => None,
        }
    }

    /// The payload of a [`Message::Message`], [`Message::PMessage`] or [`Message::Replay`]; `None`
    /// for confirmations and notices.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::sync::Arc;
    /// use std::time::Duration;
    /// use fanout::Broker;
    ///
    /// let broker = Broker::<str>::new();
    /// let (a, b) = (broker.pubsub(), broker.pubsub());
    /// a.subscribe("x");
    /// b.subscribe("x");
    /// broker.publish("x", "shared");
    /// assert_eq!(a.get_message(Duration::ZERO).unwrap().payload(), None); // the confirmation
    /// let (from_a, from_b) = (a.listen().next().unwrap(), b.listen().nth(1).unwrap());
    /// assert_eq!(&**from_a.payload().unwrap(), "shared");
    /// assert!(Arc::ptr_eq(from_a.payload().unwrap(), from_b.payload().unwrap()));
    /// ```
    pub fn payload(&self) -> Option<&Arc<T>> {
        match self {
            Message::Message { payload, .. }
            | Message::PMessage { payload, .. }
            | Message::Replay { payload, .. } => Some(payload),
            _ => None,
        }
    }

    /// The payload of a [`Message::Message`], [`Message::PMessage`] or [`Message::Replay`] as a
    /// plain reference (redis-py's `data`), to compare or print it without going through the `Arc`;
    /// `None` for confirmations and notices.
    ///
    /// # Examples
    ///
    /// ```
    /// use fanout::Broker;
    ///
    /// let broker = Broker::<str>::new();
    /// let sub = broker.pubsub_builder().ignore_subscribe_messages(true).build();
    /// sub.subscribe("chat");
    /// broker.publish("chat", "bye");
    /// let message = sub.listen().next().unwrap();
    /// assert_eq!(message.data(), Some("bye"));
    /// ```
    pub fn data(&self) -> Option<&T> {
        self.payload().map(|payload| &**payload)
    }

    /// The subscription count a confirmation carries; `None` for deliveries.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use fanout::Broker;
    ///
    /// let broker = Broker::<str>::new();
    /// let sub = broker.pubsub();
    /// sub.subscribe(["a", "b"]);
    /// sub.unsubscribe("a");
    /// broker.publish("b", "x");
    /// let counts: Vec<_> = std::iter::from_fn(|| sub.get_message(Duration::ZERO))
    ///     .map(|m| m.count())
    ///     .collect();
    /// assert_eq!(counts, [Some(1), Some(2), Some(1), None]);
    /// ```
    pub fn count(&self) -> Option<usize> {
        match self {
            Message::Subscribe { count, .. }
            | Message::Unsubscribe { count, .. }
            | Message::PSubscribe { count, .. }
            | Message::PUnsubscribe { count, .. } => Some(*count),
            _ => None,
        }
    }

    /// Whether this is a confirmation (what redis-py's `ignore_subscribe_messages` hides).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use fanout::{Broker, Message};
    ///
    /// let broker = Broker::<str>::new();
    /// let sub = broker.pubsub();
    /// sub.subscribe("a");
    /// broker.publish("a", "x");
    /// let flags: Vec<_> = std::iter::from_fn(|| sub.get_message(Duration::ZERO))
    ///     .map(|m| m.is_confirmation())
    ///     .collect();
    /// assert_eq!(flags, [true, false]);
    /// assert!(!Message::<str>::Lagged { missed: 1 }.is_confirmation());
    /// ```
    pub fn is_confirmation(&self) -> bool {
        self.count().is_some()
    }

    /// Whether this is a notice about the queue or the bridge rather than a Redis message:
    /// [`Lagged`](Message::Lagged), [`Gap`](Message::Gap) or
    /// [`HighWater`](Message::HighWater), and any notice kind added later. A
    /// [`Worker`](crate::Worker) gives these to its
    /// [`on_notice`](crate::WorkerBuilder::on_notice) handler.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use fanout::{Broker, Message};
    ///
    /// let broker = Broker::<str>::new();
    /// let sub = broker.pubsub();
    /// sub.subscribe("a");
    /// broker.publish("a", "x");
    /// assert!(std::iter::from_fn(|| sub.get_message(Duration::ZERO)).all(|m| !m.is_notice()));
    /// assert!(Message::<str>::Lagged { missed: 1 }.is_notice());
    /// assert!(Message::<str>::Gap { down_for: Duration::from_secs(1) }.is_notice());
    /// assert!(Message::<str>::HighWater { queued: 8 }.is_notice());
    /// ```
    pub fn is_notice(&self) -> bool {
        match self {
            Message::Subscribe { .. }
            | Message::Unsubscribe { .. }
            | Message::PSubscribe { .. }
            | Message::PUnsubscribe { .. }
            | Message::Message { .. }
            | Message::PMessage { .. }
            | Message::Replay { .. } => false,
            Message::Lagged { .. } | Message::Gap { .. } | Message::HighWater { .. } => true,
        }
    }
}

/// Prints the message as redis-py prints its message dict, so a program's output can be
/// compared line by line with a redis-py client's: names and payloads as Python `bytes`
/// (`b'...'`, redis-py's default), or as Python `str` (`'...'`, redis-py with
/// `decode_responses=True`) with the alternate flag `{:#}`. The payload is written with its
/// own `Display`. Pattern confirmations put the pattern under `'channel'`, as redis-py does.
/// `Lagged` and `Gap` notices, which redis-py does not have, print as `'type': 'lagged'` with
/// the missed count and `'type': 'gap'` with the seconds the bridge was down; a `Replay` as a
/// `message` or `pmessage` would, with `'type': 'replay'`, and a `HighWater` notice as
/// `'type': 'high_water'` with the queued count.
///
/// # Examples
///
/// ```
/// use fanout::Broker;
///
/// let broker = Broker::<str>::new();
/// let sub = broker.pubsub();
/// sub.psubscribe("news.*");
/// broker.publish("news.rust", "it's out");
/// let lines: Vec<String> = sub.listen().take(2).map(|m| m.to_string()).collect();
/// assert_eq!(lines, [
///     "{'type': 'psubscribe', 'pattern': None, 'channel': b'news.*', 'data': 1}",
///     "{'type': 'pmessage', 'pattern': b'news.*', 'channel': b'news.rust', 'data': b\"it's out\"}",
/// ]);
/// let decoded = format!("{:#}", Message::<str>::Lagged { missed: 2 });
/// # use fanout::Message;
/// assert_eq!(decoded, "{'type': 'lagged', 'pattern': None, 'channel': None, 'data': 2}");
/// ```
impl<T: ?Sized + fmt::Display> fmt::Display for Message<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let bytes = !f.alternate();
        let name = |name: &str| python_repr(name, bytes);
        let (pattern, channel, data) = match self {
            Message::Subscribe { channel, count } | Message::Unsubscribe { channel, count } => {
                (None, Some(name(channel)), count.to_string())
            }
            Message::PSubscribe { pattern, count } | Message::PUnsubscribe { pattern, count } => {
                (None, Some(name(pattern)), count.to_string())
            }
            Message::Message { channel, payload } => (
                None,
                Some(name(channel)),
                python_repr(&payload.to_string(), bytes),
            ),
            Message::PMessage {
                pattern,
                channel,
                payload,
            } => (
                Some(name(pattern)),
                Some(name(channel)),
                python_repr(&payload.to_string(), bytes),
            ),
            Message::Replay {
                pattern,
                channel,
                payload,
            } => (
                pattern.as_deref().map(name),
                Some(name(channel)),
                python_repr(&payload.to_string(), bytes),
            ),
            Message::Lagged { missed } => (None, None, missed.to_string()),
            Message::HighWater { queued } => (None, None, queued.to_string()),
            Message::Gap { down_for } => (None, None, format!("{:?}", down_for.as_secs_f64())),
        };
        let none = || "None".to_string();
        write!(
            f,
            "{{'type': '{}', 'pattern': {}, 'channel': {}, 'data': {}}}",
            self.kind(),
            pattern.unwrap_or_else(none),
            channel.unwrap_or_else(none),
            data
        )
    }
}

/// `text` as Python's `repr` writes it: a `bytes` literal of its UTF-8 (`b'...'`) or a `str`
/// literal, single-quoted unless it holds a `'` and no `"`.
fn python_repr(text: &str, bytes: bool) -> String {
    use fmt::Write;
    let quote = if text.contains('\'') && !text.contains('"') {
        '"'
    } else {
        '\''
    };
    let mut out = String::with_capacity(text.len() + 3);
    if bytes {
        out.push('b');
    }
    out.push(quote);
    for c in text.chars() {
        // Writing to a `String` cannot fail.
        let _ = match c {
            '\\' => out.write_str("\\\\"),
            '\n' => out.write_str("\\n"),
            '\r' => out.write_str("\\r"),
            '\t' => out.write_str("\\t"),
            c if c == quote => write!(out, "\\{c}"),
            c if c.is_ascii_control() => write!(out, "\\x{:02x}", c as u32),
            c if bytes && !c.is_ascii() => c
                .encode_utf8(&mut [0; 4])
                .bytes()
                .try_for_each(|byte| write!(out, "\\x{byte:02x}")),
            c if !python_printable(c) => match c as u32 {
                code @ 0..=0xff => write!(out, "\\x{code:02x}"),
                code @ 0x100..=0xffff => write!(out, "\\u{code:04x}"),
                code => write!(out, "\\U{code:08x}"),
            },
            c => out.write_char(c),
        };
    }
    out.push(quote);
    out
}

/// Whether Python's `str.isprintable()` holds for `c`, so `repr` shows it as it is: not a
/// control, format (`Cf`) or private-use character, nor a separator other than the space.
/// (Python also escapes characters Unicode leaves unassigned; without Unicode's tables they
/// are shown as they are here.)
fn python_printable(c: char) -> bool {
    const FORMAT: &[(u32, u32)] = &[
        (0x00ad, 0x00ad),
        (0x0600, 0x0605),
        (0x061c, 0x061c),
        (0x06dd, 0x06dd),
        (0x070f, 0x070f),
        (0x0890, 0x0891),
        (0x08e2, 0x08e2),
        (0x180e, 0x180e),
        (0x200b, 0x200f),
        (0x202a, 0x202e),
        (0x2060, 0x2064),
        (0x2066, 0x206f),
        (0xfeff, 0xfeff),
        (0xfff9, 0xfffb),
        (0x110bd, 0x110bd),
        (0x110cd, 0x110cd),
        (0x13430, 0x1343f),
        (0x1bca0, 0x1bca3),
        (0x1d173, 0x1d17a),
        (0xe0001, 0xe0001),
        (0xe0020, 0xe007f),
    ];
    const PRIVATE_USE: &[(u32, u32)] = &[(0xe000, 0xf8ff), (0xf0000, 0x10ffff)];
    let code = c as u32;
    let within = |ranges: &[(u32, u32)]| ranges.iter().any(|&(lo, hi)| (lo..=hi).contains(&code));
    c == ' ' || !(c.is_control() || c.is_whitespace() || within(FORMAT) || within(PRIVATE_USE))
}

/// Clones the `Arc`s only: `T` need not be `Clone`.
impl<T: ?Sized> Clone for Message<T> {
    fn clone(&self) -> Self {
        match self {
            Message::Subscribe { channel, count } => Message::Subscribe {
                channel: channel.clone(),
                count: *count,
            },
            Message::Unsubscribe { channel, count } => Message::Unsubscribe {
                channel: channel.clone(),
                count: *count,
            },
            Message::PSubscribe { pattern, count } => Message::PSubscribe {
                pattern: pattern.clone(),
                count: *count,
            },
            Message::PUnsubscribe { pattern, count } => Message::PUnsubscribe {
                pattern: pattern.clone(),
                count: *count,
            },
            Message::Message { channel, payload } => Message::Message {
                channel: channel.clone(),
                payload: payload.clone(),
            },
            Message::PMessage {
                pattern,
                channel,
                payload,
            } => Message::PMessage {
                pattern: pattern.clone(),
                channel: channel.clone(),
                payload: payload.clone(),
            },
            Message::Replay {
                pattern,
                channel,
                payload,
            } => Message::Replay {
                pattern: pattern.clone(),
                channel: channel.clone(),
                payload: payload.clone(),
            },
            Message::Lagged { missed } => Message::Lagged { missed: *missed },
            Message::HighWater { queued } => Message::HighWater { queued: *queued },
            Message::Gap { down_for } => Message::Gap {
                down_for: *down_for,
            },
        }
    }
}
