//! A differential test of the Redis bridge: random scripts run twice against one real
//! `redis-server`, and what each logical client saw is compared.
//!
//! - Run A ("all redis-py"): every logical subscriber client is a raw RESP connection
//!   (`SUBSCRIBE`, `UNSUBSCRIBE`, `PSUBSCRIBE`, `PUNSUBSCRIBE`, reading its pushes), and every
//!   publish is a `PUBLISH` on a plain connection. This is the reference: Redis's own
//!   semantics, fully ordered, because each step waits for its reply or confirmation.
//! - Run B ("mixed"): the same logical clients, but some are `PubSub<str>` handles in one of
//!   two brokers (two processes, in effect), each broker with its own [`fanout::Bridge`] to
//!   the same server on the default route (`Route::ViaRedis`); the others stay raw
//!   connections. A fanout client publishes through its broker's `publish`, a plain one
//!   through `PUBLISH`.
//!
//! Run B waits only where README and docs/BRIDGE.md tell users to: after each operation of a
//! fanout client (a subscription change, or a publish), `flush` on THAT client's bridge and
//! no other ("A remote publisher reaches a new handle once Redis has its subscription:
//! `bridge.flush(timeout)` waits for that (and for every publish made so far)"; the other
//! broker stands for another process, which cannot know when to flush); after a plain
//! client's subscription change, reading its confirmations (as redis-py does); after a plain
//! `PUBLISH`, its reply. No sleeps. At the end of a script every client subscribes to an end
//! channel (the same waits), a plain connection publishes on it, and each client reads until
//! that message arrives: Redis writes to each connection in order, and a broker's bridge
//! delivers what its one subscription connection reads in order, so by then everything
//! published earlier has been delivered (or never will be).
//!
//! What is compared, per logical client, between the runs:
//!
//! 1. Deliveries per name: for each channel, its `message`s in order; for each pattern, its
//!    `pmessage`s (channel and payload) in order. README promises order per name only (and
//!    per publisher; with `ViaRedis` one global order, Redis's), so the order of deliveries
//!    across names (a channel and a pattern matching it, say) is not compared.
//! 2. Confirmations: the sequence of `(kind, name, count)` the client reads, as redis-py
//!    shows them. A fanout handle's counts are its own channels plus patterns, which are what
//!    a redis-py client with the same subscriptions reads; confirmations are made in call
//!    order in both runs, so their order across names is compared too.
//! 3. Confirmations among deliveries, per name: README ("Semantics") promises that "a
//!    `Subscribe` confirmation precedes the first message it lets through, an `Unsubscribe`
//!    follows the last", so for each name the sequence of its deliveries and of the
//!    confirmations that begin or end a subscription is compared (a message that Redis
//!    delivered before an unsubscription must come before its confirmation, not after it,
//!    nor after the next subscription's). Confirmations that change nothing (`subscribe a`
//!    when subscribed, `unsubscribe a` when not) let no message through, and README places
//!    them nowhere among deliveries: they are left out here (they are compared in 2.).
//! 4. Notices: a redis-py client reads none, and no connection is lost here, so a fanout
//!    handle must read none either (a `Gap` would be a failure of the test's set-up).
//! 5. Publish returns. Redis's count for a plain `PUBLISH` legitimately differs between the
//!    runs (each broker's subscriptions are one Redis connection), so instead:
//!    - a fanout client's `publish` returns the local deliveries (docs/BRIDGE.md,
//!      "Divergences while bridged"): it must equal the deliveries run A made to the logical clients that
//!      are handles of the same broker in run B, and the deliveries that broker's handles
//!      actually got in run B;
//!    - a plain `PUBLISH` in run B must return what Redis holds according to BRIDGE.md ("Redis
//!      holds the union of what local handles need", which `flush` waits for): the plain
//!      clients' matching subscriptions, plus, per broker, the channels and patterns of the
//!      union of its handles' subscriptions that match. (Run A's counts are checked against
//!      the test's own model of the subscriptions; a mismatch there is a bug of the test and
//!      panics.)
//!
//! Environment: `FANOUT_DIFF_SEED` (default 1) seeds the scripts, `FANOUT_DIFF_SCRIPTS`
//! (default 200) says how many to run, `FANOUT_DIFF_ONLY` runs one script number alone. Every
//! disagreeing script is collected and printed (the script, its seed and its first
//! difference) before the test fails.

#[cfg(not(feature = "redis"))]
#[test]
fn differential_tests_need_the_redis_feature() {
    use std::io::Write; // past the harness's capture, so the skip is seen
    let _ = writeln!(
        std::io::stderr(),
        "\nSKIPPED bridge differential tests: they run with `--features redis` (or --all-features)"
    );
}

#[cfg(feature = "redis")]
mod common;

#[cfg(feature = "redis")]
mod differential {
    use std::collections::{BTreeMap, BTreeSet};
    use std::fmt;
    use std::time::{Duration, Instant};

    use fanout::{glob_match, Bridge, Broker, Message, PubSub};

    use super::common::race_rounds;
    use super::common::redis::{Connection, Reply, Server};

    /// Long enough for a loaded CI machine; every wait ends as soon as what it waits for
    /// happens.
    const WAIT: Duration = Duration::from_secs(30);

    /// How long a fanout handle may take to read the end marker before the script counts as
    /// disagreeing (it arrives within milliseconds when all is well).
    const END_WAIT: Duration = Duration::from_secs(5);

    const CHANNELS: [&str; 3] = ["a", "b", "c"];
    const PATTERNS: [&str; 3] = ["a*", "[ab]", "*"];

    /// The end channel's name once the script's prefix is stripped.
    const END: &str = "!end";

    fn env_number(name: &str) -> Option<u64> {
        let text = std::env::var(name).ok()?;
        Some(
            text.trim()
                .parse()
                .unwrap_or_else(|_| panic!("{name}={text:?} is not a number")),
        )
    }

    /// Writes past the test harness's capture, so a passing run still shows its figures.
    fn tell(text: &str) {
        use std::io::Write;
        let _ = writeln!(std::io::stderr().lock(), "{text}");
    }

    // ---------------------------------------------------------------------------------------
    // Scripts

    /// xorshift64*, seeded through splitmix64: small, and the same on every platform.
    struct Rng(u64);

    fn splitmix(mut x: u64) -> u64 {
        x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
        x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        x ^ (x >> 31)
    }

    impl Rng {
        fn new(seed: u64) -> Rng {
            Rng(splitmix(seed) | 1)
        }

        fn next(&mut self) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
        }

        fn below(&mut self, n: usize) -> usize {
            (self.next() % n as u64) as usize
        }

        fn pick<T: Copy>(&mut self, items: &[T]) -> T {
            items[self.below(items.len())]
        }
    }

    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    enum Op {
        Subscribe,
        Unsubscribe,
        PSubscribe,
        PUnsubscribe,
    }

    impl Op {
        fn command(self) -> &'static str {
            match self {
                Op::Subscribe => "SUBSCRIBE",
                Op::Unsubscribe => "UNSUBSCRIBE",
                Op::PSubscribe => "PSUBSCRIBE",
                Op::PUnsubscribe => "PUNSUBSCRIBE",
            }
        }

        /// The kind of its confirmations, as Redis and `Message::kind` name them.
        fn kind(self) -> &'static str {
            match self {
                Op::Subscribe => "subscribe",
                Op::Unsubscribe => "unsubscribe",
                Op::PSubscribe => "psubscribe",
                Op::PUnsubscribe => "punsubscribe",
            }
        }

        fn on_patterns(self) -> bool {
            matches!(self, Op::PSubscribe | Op::PUnsubscribe)
        }
    }

    #[derive(Clone, Debug)]
    enum Step {
        Change {
            client: usize,
            op: Op,
            names: Vec<&'static str>,
        },
        /// Publishes `payload(step)`.
        Publish {
            client: usize,
            channel: &'static str,
        },
    }

    /// What a logical client is in run B (in run A every client is plain).
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    enum Role {
        Plain,
        /// A handle of broker 0 or 1.
        Fanout(usize),
    }

    impl fmt::Display for Role {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            match self {
                Role::Plain => f.write_str("plain"),
                Role::Fanout(k) => write!(f, "broker{}", k + 1),
            }
        }
    }

    struct Script {
        number: u64,
        seed: u64,
        roles: Vec<Role>,
        steps: Vec<Step>,
    }

    /// The payload the publish of step `step` sends: unique within a script.
    fn payload(step: usize) -> String {
        format!("m{step}")
    }

    impl Script {
        /// Script `number` of the run seeded with `seed`: 3 to 5 logical clients, 10 to 30
        /// steps.
        fn new(seed: u64, number: u64) -> Script {
            let mut rng = Rng::new(seed ^ splitmix(number));
            let clients = 3 + rng.below(3);
            let mut roles: Vec<Role> = (0..clients)
                .map(|_| match rng.below(4) {
                    0 => Role::Plain,
                    1 | 2 => Role::Fanout(0),
                    _ => Role::Fanout(1),
                })
                .collect();
            if !roles.iter().any(|r| matches!(r, Role::Fanout(_))) {
                roles[0] = Role::Fanout(0);
            }
            let length = 10 + rng.below(21);
            let ops = [
                Op::Subscribe,
                Op::Subscribe,
                Op::Unsubscribe,
                Op::PSubscribe,
                Op::PSubscribe,
                Op::PUnsubscribe,
            ];
            let steps = (0..length)
                .map(|_| {
                    let client = rng.below(clients);
                    if rng.below(10) < 4 {
                        return Step::Publish {
                            client,
                            channel: rng.pick(&CHANNELS),
                        };
                    }
                    let op = rng.pick(&ops);
                    let pool = if op.on_patterns() {
                        &PATTERNS
                    } else {
                        &CHANNELS
                    };
                    let count = if rng.below(5) == 0 { 2 } else { 1 };
                    let names = (0..count).map(|_| rng.pick(pool)).collect();
                    Step::Change { client, op, names }
                })
                .collect();
            Script {
                number,
                seed,
                roles,
                steps,
            }
        }
    }

    impl fmt::Display for Script {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            write!(
                f,
                "script {} (FANOUT_DIFF_SEED={} FANOUT_DIFF_ONLY={}); clients:",
                self.number, self.seed, self.number
            )?;
            for (c, role) in self.roles.iter().enumerate() {
                write!(f, " c{c}={role}")?;
            }
            f.write_str("\n    steps:")?;
            for (i, step) in self.steps.iter().enumerate() {
                if i > 0 && i % 6 == 0 {
                    f.write_str("\n          ")?;
                }
                match step {
                    Step::Change { client, op, names } => {
                        write!(f, " {i}:c{client} {} {};", op.kind(), names.join(","))?
                    }
                    Step::Publish { client, channel } => {
                        write!(f, " {i}:c{client} publish {channel} {};", payload(i))?
                    }
                }
            }
            Ok(())
        }
    }

    /// The test's own model of who is subscribed to what, for the publish counts.
    #[derive(Default, Clone)]
    struct Subscriptions {
        channels: BTreeSet<&'static str>,
        patterns: BTreeSet<&'static str>,
    }

    impl Subscriptions {
        fn change(&mut self, op: Op, names: &[&'static str]) {
            for &name in names {
                match op {
                    Op::Subscribe => self.channels.insert(name),
                    Op::Unsubscribe => self.channels.remove(name),
                    Op::PSubscribe => self.patterns.insert(name),
                    Op::PUnsubscribe => self.patterns.remove(name),
                };
            }
        }

        /// What Redis counts for this subscriber on a publish to `channel`.
        fn matches(&self, channel: &str) -> usize {
            usize::from(self.channels.contains(channel))
                + self
                    .patterns
                    .iter()
                    .filter(|p| glob_match(p, channel))
                    .count()
        }

        fn union(&mut self, other: &Subscriptions) {
            self.channels.extend(&other.channels);
            self.patterns.extend(&other.patterns);
        }
    }

    /// What Redis returns for each publish step, in run A (every client its own connection)
    /// and in run B (plain clients, plus one connection per broker holding the union of its
    /// handles' subscriptions).
    fn expected_redis_counts(script: &Script) -> BTreeMap<usize, (usize, usize)> {
        let mut model = vec![Subscriptions::default(); script.roles.len()];
        let mut counts = BTreeMap::new();
        for (i, step) in script.steps.iter().enumerate() {
            match step {
                Step::Change { client, op, names } => model[*client].change(*op, names),
                Step::Publish { channel, .. } => {
                    let all = model.iter().map(|s| s.matches(channel)).sum();
                    let mut unions = [Subscriptions::default(), Subscriptions::default()];
                    let mut mixed = 0;
                    for (subs, role) in model.iter().zip(&script.roles) {
                        match role {
                            Role::Plain => mixed += subs.matches(channel),
                            Role::Fanout(k) => unions[*k].union(subs),
                        }
                    }
                    mixed += unions.iter().map(|u| u.matches(channel)).sum::<usize>();
                    counts.insert(i, (all, mixed));
                }
            }
        }
        counts
    }

    // ---------------------------------------------------------------------------------------
    // What clients read

    /// One thing a client read, its name stripped of the script's prefix.
    #[derive(Clone, Debug, PartialEq, Eq)]
    enum Event {
        Confirm {
            kind: String,
            name: String,
            count: i64,
        },
        Message {
            channel: String,
            payload: String,
        },
        PMessage {
            pattern: String,
            channel: String,
            payload: String,
        },
        /// Anything else: a notice, or a reply that is no push.
        Other(String),
    }

    impl Event {
        /// `(is a pattern, name)` for confirmations and deliveries.
        fn name(&self) -> Option<(bool, &str)> {
            match self {
                Event::Confirm { kind, name, .. } => Some((kind.starts_with('p'), name)),
                Event::Message { channel, .. } => Some((false, channel)),
                Event::PMessage { pattern, .. } => Some((true, pattern)),
                Event::Other(_) => None,
            }
        }

        fn payload(&self) -> Option<&str> {
            match self {
                Event::Message { payload, .. } | Event::PMessage { payload, .. } => Some(payload),
                _ => None,
            }
        }

        fn is_end(&self) -> bool {
            matches!(self, Event::Message { channel, .. } if channel == END)
        }
    }

    impl fmt::Display for Event {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            match self {
                Event::Confirm { kind, name, count } => write!(f, "{kind} {name} {count}"),
                Event::Message { channel, payload } => write!(f, "message {channel} {payload}"),
                Event::PMessage {
                    pattern,
                    channel,
                    payload,
                } => write!(f, "pmessage {pattern} {channel} {payload}"),
                Event::Other(text) => f.write_str(text),
            }
        }
    }

    fn list(events: &[Event]) -> String {
        let items: Vec<String> = events.iter().map(Event::to_string).collect();
        format!("[{}]", items.join(", "))
    }

    /// A run's names: channels `PREFIX:a`, patterns `PREFIX:a*`, the end channel
    /// `PREFIX!end`, which no pattern matches. Each run of each script has a prefix of its
    /// own, so what is left of another (a connection Redis has not closed yet) cannot count.
    struct Names {
        prefix: String,
    }

    impl Names {
        fn new(script: &Script, run: char) -> Names {
            Names {
                prefix: format!("diff{}{run}", script.number),
            }
        }

        fn full(&self, name: &str) -> String {
            match name {
                END => format!("{}{END}", self.prefix),
                name => format!("{}:{name}", self.prefix),
            }
        }

        fn strip(&self, name: &str) -> String {
            match name.strip_prefix(&self.prefix) {
                Some(rest) => rest.strip_prefix(':').unwrap_or(rest).to_string(),
                None => name.to_string(),
            }
        }

        /// A push read from a plain connection.
        fn plain_event(&self, reply: Reply) -> Event {
            let Reply::Array(items) = &reply else {
                return Event::Other(format!("{reply:?}"));
            };
            let text = |i: usize| match items.get(i) {
                Some(Reply::Bulk(Some(bytes))) => Some(String::from_utf8_lossy(bytes).into_owned()),
                _ => None,
            };
            let (Some(kind), Some(first)) = (text(0), text(1)) else {
                return Event::Other(format!("{reply:?}"));
            };
            match (kind.as_str(), items.get(2), text(2), text(3)) {
                ("message", _, Some(payload), None) => Event::Message {
                    channel: self.strip(&first),
                    payload,
                },
                ("pmessage", _, Some(channel), Some(payload)) => Event::PMessage {
                    pattern: self.strip(&first),
                    channel: self.strip(&channel),
                    payload,
                },
                (
                    "subscribe" | "unsubscribe" | "psubscribe" | "punsubscribe",
                    Some(Reply::Int(count)),
                    _,
                    _,
                ) => Event::Confirm {
                    kind,
                    name: self.strip(&first),
                    count: *count,
                },
                _ => Event::Other(format!("{reply:?}")),
            }
        }

        /// A message read from a fanout handle.
        fn fanout_event(&self, message: &Message<str>) -> Event {
            if let Some(count) = message.count() {
                let name = message.channel().or(message.pattern()).unwrap_or_default();
                return Event::Confirm {
                    kind: message.kind().to_string(),
                    name: self.strip(name),
                    count: count as i64,
                };
            }
            match message {
                Message::Message { channel, payload } => Event::Message {
                    channel: self.strip(channel),
                    payload: payload.to_string(),
                },
                Message::PMessage {
                    pattern,
                    channel,
                    payload,
                } => Event::PMessage {
                    pattern: self.strip(pattern),
                    channel: self.strip(channel),
                    payload: payload.to_string(),
                },
                other => Event::Other(format!("<{}>", other.kind())),
            }
        }
    }

    /// What one run saw.
    struct Observed {
        /// What each logical client read, in order.
        events: Vec<Vec<Event>>,
        /// What each publish step returned: Redis's count for a `PUBLISH`, the local count for
        /// a broker's `publish`.
        returns: BTreeMap<usize, usize>,
        /// The bridge's own waits that failed: a `flush` that timed out, an end marker that
        /// never came.
        trouble: Vec<String>,
    }

    impl Observed {
        fn new(clients: usize) -> Observed {
            Observed {
                events: vec![Vec::new(); clients],
                returns: BTreeMap::new(),
                trouble: Vec::new(),
            }
        }

        /// Deliveries of step `step`'s payload to the clients `which` picks.
        fn deliveries(&self, step: usize, which: impl Fn(usize) -> bool) -> usize {
            let payload = payload(step);
            self.events
                .iter()
                .enumerate()
                .filter(|(c, _)| which(*c))
                .flat_map(|(_, events)| events)
                .filter(|e| e.payload() == Some(payload.as_str()))
                .count()
        }
    }

    // ---------------------------------------------------------------------------------------
    // Running a script

    /// A plain client's subscription change: sends the command and reads until each name's
    /// confirmation came, keeping what arrived before (deliveries queued on the connection).
    fn change_plain(
        conn: &mut Connection,
        events: &mut Vec<Event>,
        names: &Names,
        op: Op,
        list: &[&str],
    ) {
        let mut command = vec![op.command().to_string()];
        command.extend(list.iter().map(|n| names.full(n)));
        conn.send(&command);
        let mut confirmed = 0;
        while confirmed < list.len() {
            let event = names.plain_event(conn.read());
            if matches!(&event, Event::Confirm { kind, .. } if kind == op.kind()) {
                confirmed += 1;
            }
            events.push(event);
        }
    }

    fn change_fanout(handle: &PubSub<str>, names: &Names, op: Op, list: &[&str]) {
        let full: Vec<String> = list.iter().map(|n| names.full(n)).collect();
        match op {
            Op::Subscribe => handle.subscribe(full),
            Op::Unsubscribe => handle.unsubscribe(full),
            Op::PSubscribe => handle.psubscribe(full),
            Op::PUnsubscribe => handle.punsubscribe(full),
        }
    }

    /// Reads a plain connection until the end marker.
    fn read_plain_to_end(conn: &mut Connection, events: &mut Vec<Event>, names: &Names) {
        loop {
            let event = names.plain_event(conn.read());
            let end = event.is_end();
            events.push(event);
            if end {
                return;
            }
        }
    }

    /// Reads a handle until the end marker (false if it did not come within `END_WAIT`),
    /// then whatever else it holds.
    fn read_fanout_to_end(handle: &PubSub<str>, events: &mut Vec<Event>, names: &Names) -> bool {
        let deadline = Instant::now() + END_WAIT;
        let mut ended = false;
        while !ended {
            let left = deadline.saturating_duration_since(Instant::now());
            let Some(message) = handle.get_message(left) else {
                break;
            };
            let event = names.fanout_event(&message);
            ended = event.is_end();
            events.push(event);
        }
        while let Some(message) = handle.get_message(Duration::ZERO) {
            events.push(names.fanout_event(&message));
        }
        ended
    }

    /// Run A: every client is a plain Redis client.
    fn run_plain(server: &Server, script: &Script) -> Observed {
        let names = Names::new(script, 'A');
        let mut clients: Vec<Connection> = script.roles.iter().map(|_| server.connect()).collect();
        let mut publisher = server.connect();
        let mut seen = Observed::new(clients.len());
        for (i, step) in script.steps.iter().enumerate() {
            match step {
                Step::Change {
                    client,
                    op,
                    names: list,
                } => {
                    let events = &mut seen.events[*client];
                    change_plain(&mut clients[*client], events, &names, *op, list);
                }
                Step::Publish { channel, .. } => {
                    let command = ["PUBLISH".to_string(), names.full(channel), payload(i)];
                    let count = publisher.call(&command).int();
                    seen.returns.insert(i, count as usize);
                }
            }
        }
        for (conn, events) in clients.iter_mut().zip(&mut seen.events) {
            change_plain(conn, events, &names, Op::Subscribe, &[END]);
        }
        publisher.call(&["PUBLISH".to_string(), names.full(END), "end".to_string()]);
        for (conn, events) in clients.iter_mut().zip(&mut seen.events) {
            read_plain_to_end(conn, events, &names);
        }
        seen
    }

    enum Client {
        Plain(Connection),
        Fanout(usize, PubSub<str>),
    }

    /// `bridge.flush`, with a failure noted (the script then disagrees).
    fn flush(bridge: &Bridge<str>, trouble: &mut Vec<String>, what: &str) {
        if !bridge.flush(WAIT) {
            trouble.push(format!("flush timed out after {what}"));
        }
    }

    /// Run B: fanout clients are handles of two bridged brokers, the others plain clients.
    fn run_mixed(server: &Server, script: &Script) -> Observed {
        let names = Names::new(script, 'B');
        let brokers = [Broker::<str>::new(), Broker::<str>::new()];
        let bridges: Vec<Bridge<str>> = brokers
            .iter()
            .map(|broker| Bridge::connect(broker, &server.url()).expect("the bridge connects"))
            .collect();
        let mut clients: Vec<Client> = script
            .roles
            .iter()
            .map(|role| match role {
                Role::Plain => Client::Plain(server.connect()),
                Role::Fanout(k) => Client::Fanout(*k, brokers[*k].pubsub()),
            })
            .collect();
        let mut publisher = server.connect();
        let mut seen = Observed::new(clients.len());
        for (i, step) in script.steps.iter().enumerate() {
            match step {
                Step::Change {
                    client,
                    op,
                    names: list,
                } => match &mut clients[*client] {
                    // As redis-py: the command returns once its confirmations are read.
                    Client::Plain(conn) => {
                        let events = &mut seen.events[*client];
                        change_plain(conn, events, &names, *op, list);
                    }
                    // The handle's confirmations are queued at once (read at the end); its
                    // own bridge is flushed so that Redis has the change before anyone
                    // publishes again (README, "Scaling out"; docs/BRIDGE.md, "Subscribe,
                    // then publish"). The other bridge is another process: not flushed.
                    Client::Fanout(k, handle) => {
                        change_fanout(handle, &names, *op, list);
                        flush(&bridges[*k], &mut seen.trouble, &format!("step {i}"));
                    }
                },
                Step::Publish { client, channel } => match &clients[*client] {
                    Client::Plain(_) => {
                        let command = ["PUBLISH".to_string(), names.full(channel), payload(i)];
                        let count = publisher.call(&command).int();
                        seen.returns.insert(i, count as usize);
                    }
                    // `publish` returns the local deliveries; the publishing broker's bridge
                    // is flushed so that Redis has the publish before the next step (what
                    // `flush` promises: "every publish made so far").
                    Client::Fanout(k, _) => {
                        let count = brokers[*k].publish(&names.full(channel), payload(i));
                        seen.returns.insert(i, count);
                        flush(&bridges[*k], &mut seen.trouble, &format!("step {i}"));
                    }
                },
            }
        }
        for (c, client) in clients.iter_mut().enumerate() {
            match client {
                Client::Plain(conn) => {
                    change_plain(conn, &mut seen.events[c], &names, Op::Subscribe, &[END]);
                }
                Client::Fanout(k, handle) => {
                    change_fanout(handle, &names, Op::Subscribe, &[END]);
                    flush(&bridges[*k], &mut seen.trouble, "the end subscription");
                }
            }
        }
        publisher.call(&["PUBLISH".to_string(), names.full(END), "end".to_string()]);
        for (c, client) in clients.iter_mut().enumerate() {
            match client {
                Client::Plain(conn) => read_plain_to_end(conn, &mut seen.events[c], &names),
                Client::Fanout(_, handle) => {
                    if !read_fanout_to_end(handle, &mut seen.events[c], &names) {
                        seen.trouble.push(format!(
                            "c{c} never read the end marker within {END_WAIT:?}"
                        ));
                    }
                }
            }
        }
        drop(clients);
        drop(bridges);
        seen
    }

    // ---------------------------------------------------------------------------------------
    // Comparing

    /// What kind of difference a script showed first, from the coarsest to the finest.
    #[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
    enum Kind {
        /// A flush that timed out, or an end marker that never came.
        Trouble,
        /// Deliveries on one name, or notices.
        Deliveries,
        /// The confirmations a client read.
        Confirmations,
        /// Deliveries and confirmations agree, but not where confirmations sit among a name's
        /// deliveries.
        Interleaving,
        /// A publish's return value.
        Returns,
    }

    struct Difference {
        kind: Kind,
        text: String,
    }

    type PerName = BTreeMap<(bool, String), Vec<Event>>;

    /// A client's events per name: its deliveries, and with `periods` the confirmations that
    /// begin and end a subscription among them.
    ///
    /// A confirmation that changes nothing (a name subscribed again, one not subscribed
    /// unsubscribed) is left out: README places confirmations only relative to the messages
    /// a subscription lets through ("a `Subscribe` confirmation precedes the first message it
    /// lets through, an `Unsubscribe` follows the last"), and a repeated `subscribe a` lets
    /// nothing through. (Such confirmations are compared, with their counts, in the
    /// confirmation sequence.)
    fn per_name(events: &[Event], periods: bool) -> PerName {
        let mut names = PerName::new();
        let mut subscribed: BTreeSet<(bool, String)> = BTreeSet::new();
        for event in events {
            let Some((pattern, name)) = event.name() else {
                continue;
            };
            let key = (pattern, name.to_string());
            let keep = match event {
                Event::Confirm { kind, .. } if kind.ends_with("unsubscribe") => {
                    periods && subscribed.remove(&key)
                }
                Event::Confirm { .. } => periods && subscribed.insert(key.clone()),
                _ => true,
            };
            if keep {
                names.entry(key).or_default().push(event.clone());
            }
        }
        names
    }

    fn confirmations(events: &[Event]) -> Vec<Event> {
        let confirmation = |e: &&Event| matches!(e, Event::Confirm { .. });
        events.iter().filter(confirmation).cloned().collect()
    }

    fn notices(events: &[Event]) -> Vec<Event> {
        let notice = |e: &&Event| matches!(e, Event::Other(_));
        events.iter().filter(notice).cloned().collect()
    }

    /// The first name whose sequences differ, described.
    fn first_name_difference(a: &PerName, b: &PerName) -> Option<String> {
        let keys: BTreeSet<&(bool, String)> = a.keys().chain(b.keys()).collect();
        let empty = Vec::new();
        keys.into_iter().find_map(|key| {
            let (in_a, in_b) = (a.get(key).unwrap_or(&empty), b.get(key).unwrap_or(&empty));
            let what = if key.0 { "pattern" } else { "channel" };
            (in_a != in_b).then(|| {
                format!(
                    "on {what} {}: redis-py read {}, run B read {}",
                    key.1,
                    list(in_a),
                    list(in_b)
                )
            })
        })
    }

    /// Every difference between the runs, in the order of `Kind`.
    fn compare(script: &Script, a: &Observed, b: &Observed) -> Vec<Difference> {
        let mut found = Vec::new();
        let mut note = |kind: Kind, text: String| found.push(Difference { kind, text });
        for trouble in &b.trouble {
            note(Kind::Trouble, trouble.clone());
        }
        for (c, role) in script.roles.iter().enumerate() {
            let (ea, eb) = (&a.events[c], &b.events[c]);
            let who = format!("c{c} ({role})");
            if let Some(d) = first_name_difference(&per_name(ea, false), &per_name(eb, false)) {
                note(Kind::Deliveries, format!("{who} deliveries {d}"));
            }
            let (na, nb) = (notices(ea), notices(eb));
            if na != nb {
                let text = format!("{who} notices: redis-py {}, run B {}", list(&na), list(&nb));
                note(Kind::Deliveries, text);
            }
            let (ca, cb) = (confirmations(ea), confirmations(eb));
            if ca != cb {
                let text = format!(
                    "{who} confirmations: redis-py {}, run B {}",
                    list(&ca),
                    list(&cb)
                );
                note(Kind::Confirmations, text);
            }
            if let Some(d) = first_name_difference(&per_name(ea, true), &per_name(eb, true)) {
                note(Kind::Interleaving, format!("{who} {d}"));
            }
        }
        let redis = expected_redis_counts(script);
        for (i, step) in script.steps.iter().enumerate() {
            let Step::Publish { client, channel } = step else {
                continue;
            };
            let (all, mixed) = redis[&i];
            assert_eq!(
                a.returns[&i], all,
                "a bug of the test: Redis counted {} receivers of step {i} in run A, the \
                 test's model {all}\n{script}",
                a.returns[&i]
            );
            let returned = b.returns[&i];
            let what = format!("step {i} (c{client} publish {channel} {})", payload(i));
            match script.roles[*client] {
                Role::Plain if returned != mixed => note(
                    Kind::Returns,
                    format!(
                        "{what}: Redis counted {returned} receivers in run B, where the plain \
                         clients and the brokers' subscription unions hold {mixed}"
                    ),
                ),
                Role::Plain => {}
                Role::Fanout(k) => {
                    let local = |c: usize| script.roles[c] == Role::Fanout(k);
                    let (should, got) = (a.deliveries(i, local), b.deliveries(i, local));
                    if returned != should || returned != got {
                        note(
                            Kind::Returns,
                            format!(
                                "{what}: broker{}'s publish returned {returned}; redis-py \
                                 clients standing for its handles got {should}, its handles \
                                 got {got}",
                                k + 1
                            ),
                        );
                    }
                }
            }
        }
        found.sort_by_key(|d| d.kind);
        found
    }

    // ---------------------------------------------------------------------------------------
    // The tests

    /// Random scripts, run as all-redis-py clients and as a mix of redis-py clients and
    /// handles of two bridged brokers: every logical client must read the same (see the
    /// module's doc comment for exactly what is compared, and why).
    #[test]
    fn mixed_clients_read_what_redis_py_clients_read() {
        let Some(server) = Server::start() else {
            return;
        };
        let seed = env_number("FANOUT_DIFF_SEED").unwrap_or(1);
        let numbers: Vec<u64> = match env_number("FANOUT_DIFF_ONLY") {
            Some(only) => vec![only],
            None => (0..env_number("FANOUT_DIFF_SCRIPTS").unwrap_or(200)).collect(),
        };
        let started = Instant::now();
        let mut disagreeing = Vec::new();
        let mut kinds: BTreeMap<Kind, usize> = BTreeMap::new();
        for &number in &numbers {
            let script = Script::new(seed, number);
            let a = run_plain(&server, &script);
            let b = run_mixed(&server, &script);
            let differences = compare(&script, &a, &b);
            if let Some(first) = differences.first() {
                *kinds.entry(first.kind).or_default() += 1;
                let others = match differences.len() - 1 {
                    0 => String::new(),
                    n => format!(" (and {n} more)"),
                };
                disagreeing.push(format!(
                    "{script}\n    first difference ({:?}){others}: {}",
                    first.kind, first.text
                ));
            }
        }
        let total = numbers.len();
        let summary = format!(
            "bridge differential, seed {seed}: {}/{total} scripts agree (first differences by \
             kind: {kinds:?}); {total} scripts in {:.1} s",
            total - disagreeing.len(),
            started.elapsed().as_secs_f64()
        );
        tell(&summary);
        assert!(
            disagreeing.is_empty(),
            "{summary}\n\n{}\n",
            disagreeing.join("\n\n")
        );
    }

    /// A handle on `mark` in a bridged broker, and a plain connection publishing on it: once
    /// the handle reads a mark published after something, whatever Redis sent the broker
    /// before it has been delivered.
    struct Marker {
        handle: PubSub<str>,
        publisher: Connection,
    }

    impl Marker {
        fn new(broker: &Broker<str>, bridge: &Bridge<str>, server: &Server) -> Marker {
            let handle = broker
                .pubsub_builder()
                .ignore_subscribe_messages(true)
                .build();
            handle.subscribe("mark");
            assert!(bridge.flush(WAIT));
            Marker {
                handle,
                publisher: server.connect(),
            }
        }

        fn pass(&mut self, round: usize) {
            let round = round.to_string();
            assert_eq!(self.publisher.call(&["PUBLISH", "mark", &round]).int(), 1);
            loop {
                let message = self.handle.get_message(WAIT).expect("the mark arrives");
                if message.data() == Some(round.as_str()) {
                    return;
                }
            }
        }
    }

    /// Everything `handle` holds now, described.
    fn read_now(handle: &PubSub<str>) -> Vec<String> {
        let names = Names {
            prefix: String::new(),
        };
        std::iter::from_fn(|| handle.get_message(Duration::ZERO))
            .map(|m| names.fanout_event(&m).to_string())
            .collect()
    }

    /// Case 1: A subscribes `a`; a publish from the same broker counts A; `flush` says Redis
    /// has the publish; A unsubscribes. Redis delivers that message to a redis-py client in
    /// A's place before its unsubscription: `subscribe a 1`, the message, `unsubscribe a 0`.
    #[test]
    fn a_publish_flushed_before_an_unsubscription_reaches_the_handle() {
        let Some(server) = Server::start() else {
            return;
        };
        let broker = Broker::<str>::new();
        let bridge = Bridge::connect(&broker, &server.url()).expect("the bridge connects");
        let mut marker = Marker::new(&broker, &bridge, &server);
        let mut differing = Vec::new();
        let rounds = race_rounds();
        for round in 0..rounds {
            let channel = format!("a{round}");
            let a = broker.pubsub();
            a.subscribe(channel.as_str());
            let returned = broker.publish(&channel, "hello");
            let flushed = bridge.flush(WAIT);
            a.unsubscribe(channel.as_str());
            marker.pass(round);
            let got = read_now(&a);
            let expected = [
                format!("subscribe {channel} 1"),
                format!("message {channel} hello"),
                format!("unsubscribe {channel} 0"),
            ];
            if (returned, flushed) != (1, true) || got != expected {
                differing.push(format!(
                    "round {round}: publish returned {returned}, flush {flushed}, A read {got:?}"
                ));
            }
        }
        assert!(
            differing.is_empty(),
            "{}/{rounds} rounds differ from Redis (expected subscribe, message, \
             unsubscribe):\n{}",
            differing.len(),
            differing.join("\n")
        );
    }

    /// Case 2: B subscribes `a` and a publish from the same broker counts B alone; then A,
    /// another handle of that broker, subscribes `a`. The message was published before A's
    /// subscription, so A must not read it (as a redis-py client would not); B reads it once.
    #[test]
    fn a_publish_made_before_a_subscription_does_not_reach_it() {
        let Some(server) = Server::start() else {
            return;
        };
        let broker = Broker::<str>::new();
        let bridge = Bridge::connect(&broker, &server.url()).expect("the bridge connects");
        let mut marker = Marker::new(&broker, &bridge, &server);
        let mut differing = Vec::new();
        let rounds = race_rounds();
        for round in 0..rounds {
            let channel = format!("a{round}");
            let (a, b) = (broker.pubsub(), broker.pubsub());
            b.subscribe(channel.as_str());
            let returned = broker.publish(&channel, "hello");
            a.subscribe(channel.as_str());
            // Before reading: Redis has the publish ("before exiting", says `flush`).
            let flushed = bridge.flush(WAIT);
            marker.pass(round);
            let (got_a, got_b) = (read_now(&a), read_now(&b));
            let expected_a = [format!("subscribe {channel} 1")];
            let expected_b = [
                format!("subscribe {channel} 1"),
                format!("message {channel} hello"),
            ];
            if (returned, flushed) != (1, true) || got_a != expected_a || got_b != expected_b {
                differing.push(format!(
                    "round {round}: publish returned {returned}, flush {flushed}, A read \
                     {got_a:?}, B read {got_b:?}"
                ));
            }
        }
        assert!(
            differing.is_empty(),
            "{}/{rounds} rounds differ from Redis (A must read only its confirmation):\n{}",
            differing.len(),
            differing.join("\n")
        );
    }
}
