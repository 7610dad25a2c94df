//! The same operations against a real `redis-server` and against `fanout` give the same
//! answers: glob matching (PUBSUB CHANNELS), PUBLISH replies, confirmations and counts.
//! Skipped with a printed reason when `redis-server` is missing outside CI.

mod common;

use common::redis::{Reply, Server};
use common::{confirmations, drain};
use fanout::Broker;
use proptest::prelude::*;
use proptest::strategy::ValueTree;
use proptest::test_runner::TestRunner;

/// ASCII only: Redis compares range ends as signed `char`, a documented divergence above 0x7f.
fn text(max: usize) -> impl Strategy<Value = String> {
    common::text_from(
        &[
            'a', 'b', 'c', '*', '?', '[', ']', '^', '-', '\\', '!', 'z', '.',
        ],
        max,
    )
}

#[test]
fn glob_matching_agrees_with_redis_pubsub_channels() {
    let Some(server) = Server::start() else {
        return;
    };
    let mut runner = TestRunner::deterministic();
    let channels: Vec<String> = (0..300)
        .map(|_| text(8).new_tree(&mut runner).unwrap().current())
        .chain(["".to_string(), "a".to_string(), "\\".to_string()])
        .collect();
    let patterns: Vec<String> = (0..3000)
        .map(|_| text(8).new_tree(&mut runner).unwrap().current())
        .collect();

    // One Redis connection and one handle subscribe to every channel.
    let mut subscriber = server.connect();
    let mut args = vec!["SUBSCRIBE".to_string()];
    args.extend(channels.iter().cloned());
    subscriber.send(&args);
    for _ in &channels {
        subscriber.read();
    }
    let broker = Broker::<str>::new();
    let sub = broker.pubsub();
    sub.subscribe(&channels);

    let mut query = server.connect();
    for pattern in &patterns {
        query.send(&["PUBSUB", "CHANNELS", pattern]);
    }
    let (mut matched_some, mut matched_none) = (0, 0);
    for pattern in &patterns {
        let mut expected = query.read().strings();
        expected.sort();
        assert_eq!(
            broker.channels(Some(pattern)),
            expected,
            "pattern {pattern:?}"
        );
        if expected.is_empty() {
            matched_none += 1;
        } else {
            matched_some += 1;
        }
    }
    // The random patterns must exercise both outcomes for the comparison to mean anything.
    println!("{matched_some} patterns matched some channels, {matched_none} matched none");
    assert!(matched_some > 300 && matched_none > 300);
}

#[test]
fn publish_replies_and_confirmations_agree_with_redis() {
    let Some(server) = Server::start() else {
        return;
    };
    let mut redis_sub = server.connect();
    let mut publisher = server.connect();
    let broker = Broker::<str>::new();
    let sub = broker.pubsub();

    let steps: &[&[&str]] = &[
        &["SUBSCRIBE", "news", "news", "a"],
        &["PSUBSCRIBE", "n*", "*s", "n*"],
        &["UNSUBSCRIBE", "missing", "a"],
        &["PUNSUBSCRIBE", "*s", "zz*"],
    ];
    for step in steps {
        let names = &step[1..];
        redis_sub.send(step);
        let mut expected = Vec::new();
        for _ in names {
            match redis_sub.read() {
                Reply::Array(items) => {
                    let kind = match &items[0] {
                        Reply::Bulk(Some(k)) => String::from_utf8(k.clone()).unwrap(),
                        other => panic!("{other:?}"),
                    };
                    let name = match &items[1] {
                        Reply::Bulk(Some(n)) => String::from_utf8(n.clone()).unwrap(),
                        other => panic!("{other:?}"),
                    };
                    expected.push((kind, name, items[2].int() as usize));
                }
                other => panic!("{other:?}"),
            }
        }
        match step[0] {
            "SUBSCRIBE" => sub.subscribe(names),
            "PSUBSCRIBE" => sub.psubscribe(names),
            "UNSUBSCRIBE" => sub.unsubscribe(names),
            _ => sub.punsubscribe(names),
        }
        let got: Vec<_> = confirmations(&sub)
            .into_iter()
            .map(|(k, n, c)| (k.to_string(), n, c))
            .collect();
        assert_eq!(got, expected, "after {step:?}");
    }

    for channel in ["news", "nope", "a", "s", "n"] {
        let redis_count = publisher.call(&["PUBLISH", channel, "x"]).int() as usize;
        assert_eq!(
            broker.publish(channel, "x"),
            redis_count,
            "PUBLISH {channel}"
        );
        drain(&sub);
    }
    assert_eq!(
        broker.numpat() as i64,
        publisher.call(&["PUBSUB", "NUMPAT"]).int(),
        "NUMPAT"
    );
    let numsub = publisher.call(&["PUBSUB", "NUMSUB", "news", "a"]);
    match numsub {
        Reply::Array(items) => {
            assert_eq!(items[1].int() as usize, broker.numsub("news"));
            assert_eq!(items[3].int() as usize, broker.numsub("a"));
        }
        other => panic!("{other:?}"),
    }
}
