//! What a new user writes first: helpers that return only a worker or a stream, outcomes
//! told apart, names and payloads as redis-py spells them.

use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use fanout::{Broker, Disconnected, Each, HandleClosed, Message, RecvTimeoutError, Worker};

const LONG: Duration = Duration::from_secs(10);

/// The first helper a user writes: it returns only the worker; the `PubSub` goes out of scope.
fn spawn_logger(broker: &Broker<str>, log: mpsc::Sender<String>) -> Worker {
    let sub = broker.pubsub();
    let log = Mutex::new(log);
    sub.subscribe_with("jobs", move |m: Message<str>| {
        let _ = log.lock().unwrap().send(m.data().unwrap().to_string());
    });
    sub.run_in_thread().unwrap()
}

#[test]
fn a_worker_returned_alone_keeps_its_subscriptions_until_it_stops() {
    let broker = Broker::<str>::new();
    let (tx, rx) = mpsc::channel();
    let worker = spawn_logger(&broker, tx);
    assert_eq!(broker.publish("jobs", "build"), 1, "the handle is alive");
    assert_eq!(rx.recv_timeout(LONG).unwrap(), "build");
    assert!(!worker.is_finished());
    worker.stop();
    worker.join().unwrap();
    assert_eq!(broker.publish("jobs", "late"), 0, "gone with the worker");
    assert_eq!(broker.numsub("jobs"), 0);
}

#[test]
fn a_worker_builder_returned_alone_keeps_its_handle_too() {
    let broker = Broker::<str>::new();
    let (tx, rx) = mpsc::channel();
    let worker = {
        let sub = broker.pubsub();
        let tx = Mutex::new(tx);
        sub.psubscribe_with("jobs.*", move |m: Message<str>| {
            let _ = tx.lock().unwrap().send(m.channel().unwrap().to_string());
        });
        sub.worker().name("jobs").spawn().unwrap()
    };
    assert_eq!(broker.publish("jobs.a", "x"), 1);
    assert_eq!(rx.recv_timeout(LONG).unwrap(), "jobs.a");
    drop(worker); // stops it and waits for it
    assert_eq!(broker.numpat(), 0);
}

#[test]
fn a_worker_still_ends_when_its_handle_is_closed() {
    let broker = Broker::<str>::new();
    let sub = broker.pubsub();
    sub.subscribe_with("c", |_| {});
    let worker = sub.run_in_thread().unwrap();
    sub.close();
    worker.join().unwrap();
}

#[test]
fn a_worker_counts_the_deliveries_it_has_no_handler_for() {
    let broker = Broker::<str>::new();
    let sub = broker.pubsub();
    let (tx, rx) = mpsc::channel();
    let tx = Mutex::new(tx);
    sub.subscribe_with("handled", move |_| tx.lock().unwrap().send(()).unwrap());
    let worker = sub.run_in_thread().unwrap();
    sub.subscribe("plain");
    broker.publish("plain", "1");
    broker.publish("plain", "2");
    broker.publish("handled", "3"); // queued after both: once handled, both were seen
    rx.recv_timeout(LONG).unwrap();
    assert_eq!(worker.unhandled(), 2);
    assert_eq!(sub.stats().delivered, 3);
}

#[cfg(feature = "async")]
mod streams {
    use super::*;
    use fanout::MessageStream;
    use futures::StreamExt;

    fn ticks(broker: &Broker<str>) -> MessageStream<str> {
        let sub = broker
            .pubsub_builder()
            .ignore_subscribe_messages(true)
            .build();
        sub.subscribe("ticks");
        sub.stream()
    }

    #[test]
    fn a_stream_returned_alone_keeps_its_subscriptions_until_dropped() {
        let broker = Broker::<str>::new();
        let mut stream = ticks(&broker);
        assert_eq!(broker.publish("ticks", "1"), 1);
        let first = futures::executor::block_on(stream.next()).unwrap();
        assert_eq!(first.data(), Some("1"));
        drop(stream);
        assert_eq!(broker.publish("ticks", "2"), 0);
    }

    #[test]
    fn a_stream_outlives_its_pubsub_and_ends_when_closed() {
        let broker = Broker::<str>::new();
        let sub = broker
            .pubsub_builder()
            .ignore_subscribe_messages(true)
            .build();
        sub.subscribe("t");
        let stream = sub.stream();
        drop(sub);
        assert_eq!(broker.publish("t", "still here"), 1);
        stream.close();
        assert_eq!(broker.publish("t", "gone"), 0);
        let seen: Vec<_> = futures::executor::block_on(stream.collect::<Vec<_>>());
        assert_eq!(seen.len(), 1);
        assert_eq!(seen[0].data(), Some("still here"));
    }
}

#[test]
fn recv_timeout_tells_a_timeout_from_an_ended_handle() {
    let broker = Broker::<str>::new();
    let sub = broker.pubsub();
    sub.subscribe("c");
    assert_eq!(
        sub.recv_timeout(Duration::ZERO).unwrap().kind(),
        "subscribe"
    );
    assert_eq!(
        sub.recv_timeout(Duration::from_millis(20)),
        Err(RecvTimeoutError::Timeout)
    );
    broker.publish("c", "queued before the close");
    broker.close();
    assert_eq!(
        sub.recv_timeout(Duration::ZERO).unwrap().data(),
        Some("queued before the close"),
        "what was queued comes first"
    );
    let started = std::time::Instant::now();
    assert_eq!(
        sub.recv_timeout(LONG),
        Err(RecvTimeoutError::Closed(Disconnected::BrokerClosed))
    );
    assert!(
        started.elapsed() < LONG / 2,
        "an ended handle does not wait"
    );
    // get_message keeps redis-py's shape: `None` either way.
    assert_eq!(sub.get_message(Duration::ZERO), None);
}

#[test]
fn recv_timeout_reports_an_overflow_disconnection() {
    let broker = Broker::<str>::new();
    let sub = broker
        .pubsub_builder()
        .capacity(1)
        .overflow(fanout::Overflow::Disconnect)
        .ignore_subscribe_messages(true)
        .build();
    sub.subscribe("c");
    broker.publish("c", "1");
    broker.publish("c", "2"); // full: disconnected
    let mut seen = Vec::new();
    let end = loop {
        match sub.recv_timeout(LONG) {
            Ok(message) => seen.push(message.kind()),
            Err(end) => break end,
        }
    };
    assert_eq!(seen, ["message"], "the rest, then the end");
    assert_eq!(end, RecvTimeoutError::Closed(Disconnected::Overflow));
}

#[test]
fn subscribing_a_closed_handle_is_reported() {
    let broker = Broker::<str>::new();
    let sub = broker.pubsub();
    assert_eq!(sub.try_subscribe("a"), Ok(1));
    assert_eq!(sub.try_psubscribe(["p*", "q*"]), Ok(3));
    sub.close();
    assert_eq!(
        sub.try_subscribe("b"),
        Err(HandleClosed(Disconnected::Closed))
    );
    assert_eq!(
        sub.try_psubscribe(Vec::<String>::new()),
        Err(HandleClosed(Disconnected::Closed)),
        "even an empty list: the handle takes nothing"
    );
    sub.subscribe("c"); // redis-py-shaped: does nothing, says nothing
    assert_eq!(broker.numsub("c"), 0);
    assert!(sub.channels().is_empty());
    let err = sub.try_subscribe("d").unwrap_err();
    assert_eq!(
        err.to_string(),
        "the handle takes no subscriptions: closed by its handle"
    );
}

#[test]
fn names_as_redis_py_spells_them() {
    let broker = Broker::<str>::new();
    let sub = broker
        .pubsub_builder()
        .ignore_subscribe_messages(true)
        .build();
    sub.subscribe("one");
    sub.subscribe(String::from("two"));
    sub.subscribe(["three", "four"]);
    let five = vec!["five".to_string()];
    sub.subscribe(&five);
    assert_eq!(five.len(), 1, "borrowed, not taken");
    sub.subscribe((6..8).map(|n| format!("n{n}")));
    sub.subscribe(Each(std::collections::LinkedList::from(["nine"])));
    sub.psubscribe("p.*");
    assert_eq!(
        sub.channels(),
        ["one", "two", "three", "four", "five", "n6", "n7", "nine"]
    );
    assert_eq!(sub.patterns(), ["p.*"]);
    sub.unsubscribe("two");
    sub.punsubscribe("p.*");
    assert_eq!(sub.channels().len(), 7);
    assert!(sub.patterns().is_empty());
    assert_eq!(
        broker.numsub_each(["one", "two", "one"]),
        [
            ("one".to_string(), 1),
            ("two".to_string(), 0),
            ("one".to_string(), 1)
        ]
    );
}

#[test]
fn channels_list_in_subscription_order_after_resubscribing() {
    let broker = Broker::<str>::new();
    let sub = broker.pubsub();
    sub.subscribe(["a", "b", "c"]);
    sub.unsubscribe("a");
    sub.subscribe("a");
    sub.subscribe("b"); // already subscribed: keeps its place
    assert_eq!(sub.channels(), ["b", "c", "a"]);
}

#[test]
fn a_string_broker_takes_str_and_payloads_compare_plainly() {
    let broker = Broker::<String>::new();
    let sub = broker
        .pubsub_builder()
        .ignore_subscribe_messages(true)
        .build();
    sub.subscribe("room");
    assert_eq!(broker.publish("room", "hi"), 1);
    let owned = String::from("moved in");
    assert_eq!(broker.publish("room", owned), 1);
    let shared = Arc::new(String::from("shared"));
    assert_eq!(broker.publish("room", &shared), 1);
    let got: Vec<Message<String>> = sub.listen().take(3).collect();
    assert_eq!(got[0].data().unwrap(), "hi");
    assert_eq!(got[1].data().unwrap(), "moved in");
    assert!(Arc::ptr_eq(got[2].payload().unwrap(), &shared));

    let bytes = Broker::<[u8]>::new();
    let raw = bytes
        .pubsub_builder()
        .ignore_subscribe_messages(true)
        .build();
    raw.subscribe("raw");
    bytes.publish("raw", b"\x00\xff");
    assert_eq!(raw.listen().next().unwrap().data(), Some(&b"\x00\xff"[..]));
}

#[test]
fn messages_print_as_redis_py_prints_them() {
    let broker = Broker::<str>::new();
    let sub = broker.pubsub();
    sub.subscribe("channel");
    sub.psubscribe("news.*");
    broker.publish("channel", "message");
    broker.publish("news.x", "it's \"quoted\"\n\u{e9}");
    sub.unsubscribe("channel");
    let lines: Vec<String> = sub.listen().take(5).map(|m| m.to_string()).collect();
    assert_eq!(
        lines,
        [
            "{'type': 'subscribe', 'pattern': None, 'channel': b'channel', 'data': 1}",
            "{'type': 'psubscribe', 'pattern': None, 'channel': b'news.*', 'data': 2}",
            "{'type': 'message', 'pattern': None, 'channel': b'channel', 'data': b'message'}",
            r#"{'type': 'pmessage', 'pattern': b'news.*', 'channel': b'news.x', 'data': b'it\'s "quoted"\n\xc3\xa9'}"#,
            "{'type': 'unsubscribe', 'pattern': None, 'channel': b'channel', 'data': 1}",
        ]
    );
    let decoded = format!(
        "{:#}",
        Message::<str>::Message {
            channel: "c".into(),
            payload: "caf\u{e9} \\ 'x'".into()
        }
    );
    assert_eq!(
        decoded,
        r#"{'type': 'message', 'pattern': None, 'channel': 'c', 'data': "café \\ 'x'"}"#
    );
    let gap = Message::<str>::Gap {
        down_for: Duration::from_millis(1500),
    };
    assert_eq!(
        gap.to_string(),
        "{'type': 'gap', 'pattern': None, 'channel': None, 'data': 1.5}"
    );
}

/// `Display` quotes names and payloads exactly as Python's `repr` does, for `bytes` (`{}`) and
/// for `str` (`{:#}`), on strings full of quotes, backslashes, control and non-ASCII
/// characters: checked against python3 itself.
#[test]
fn display_quotes_as_python_repr_does() {
    use std::io::Write;
    use std::process::{Command, Stdio};

    let alphabet: Vec<char> = "ab'\"\\\n\r\t\u{0}\u{1f}\u{7f}\u{80}\u{9f}\u{a0}\u{ad}\u{e9}\u{200b}\u{2028}\u{3000}\u{e000}\u{feff}\u{1f600}\u{f0000} "
        .chars()
        .collect();
    // A fixed pseudo-random walk over the alphabet: the same cases on every run.
    let mut seed = 0x2545_f491_4f6c_dd1d_u64;
    let cases: Vec<String> = (0..2000)
        .map(|_| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            let len = (seed % 8) as usize;
            (0..len)
                .map(|i| alphabet[((seed >> (8 * i)) % alphabet.len() as u64) as usize])
                .collect()
        })
        .collect();
    let script = "import sys, json\n\
        for s in json.load(sys.stdin):\n    print(repr(s.encode()))\n    print(repr(s))\n";
    let python = Command::new("python3")
        .args(["-c", script])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn();
    let Ok(mut python) = python else {
        assert!(std::env::var_os("CI").is_none(), "CI has python3");
        let _ = writeln!(
            std::io::stderr(),
            "\nSKIPPED display_quotes_as_python_repr_does: no python3"
        );
        return;
    };
    let json = format!(
        "[{}]",
        cases
            .iter()
            .map(|s| {
                let mut out = String::from("\"");
                for unit in s.encode_utf16() {
                    out.push_str(&format!("\\u{unit:04x}"));
                }
                out.push('"');
                out
            })
            .collect::<Vec<_>>()
            .join(",")
    );
    python
        .stdin
        .take()
        .unwrap()
        .write_all(json.as_bytes())
        .unwrap();
    let output = python.wait_with_output().unwrap();
    assert!(output.status.success());
    let stdout = String::from_utf8(output.stdout).unwrap();
    let expected: Vec<&str> = stdout.lines().collect();
    assert_eq!(expected.len(), 2 * cases.len());
    for (case, pair) in cases.iter().zip(expected.chunks(2)) {
        let message = Message::<str>::Message {
            channel: "c".into(),
            payload: case.as_str().into(),
        };
        let (bytes, text) = (message.to_string(), format!("{message:#}"));
        let data = |printed: &str| {
            printed
                .split_once("'data': ")
                .map(|(_, rest)| rest.strip_suffix('}').unwrap().to_string())
                .unwrap()
        };
        assert_eq!(data(&bytes), pair[0], "bytes repr of {case:?}");
        assert_eq!(data(&text), pair[1], "str repr of {case:?}");
    }
}

/// Draining with `recv_timeout` until `Closed`, while another thread publishes and then closes
/// the broker: every handle reads a gap-free prefix of the publishes, and `Closed` comes only
/// after all of it (a `Timeout` on the way is allowed: the close may still be under way).
#[test]
fn draining_until_closed_loses_nothing_under_a_concurrent_broker_close() {
    let rounds = if cfg!(debug_assertions) { 200 } else { 1_000 };
    for round in 0..rounds {
        let broker = Broker::<u64>::new();
        let handles: Vec<_> = (0..4)
            .map(|_| {
                let sub = broker
                    .pubsub_builder()
                    .ignore_subscribe_messages(true)
                    .build();
                sub.subscribe("n");
                sub
            })
            .collect();
        let publisher = {
            let broker = broker.clone();
            std::thread::spawn(move || {
                for i in 1..=200u64 {
                    broker.publish("n", i);
                    if i == 100 + round as u64 % 100 {
                        broker.close();
                    }
                }
            })
        };
        for sub in &handles {
            let mut next = 1;
            let end = loop {
                match sub.recv_timeout(LONG) {
                    Ok(message) => {
                        assert_eq!(*message.data().unwrap(), next, "round {round}: a gap");
                        next += 1;
                    }
                    Err(RecvTimeoutError::Timeout) => continue,
                    Err(RecvTimeoutError::Closed(reason)) => break reason,
                }
            };
            assert_eq!(end, Disconnected::BrokerClosed);
            assert_eq!(
                sub.recv_timeout(Duration::ZERO),
                Err(RecvTimeoutError::Closed(end))
            );
        }
        publisher.join().unwrap();
    }
}
