//! The public API compiles exactly as issued, and its handles are `Send + Sync`.

use std::sync::Arc;
use std::time::Duration;

use fanout::{Broker, Message, PubSub, Queued};

fn assert_send_sync<T: Send + Sync>() {}

#[test]
fn handles_are_send_and_sync() {
    assert_send_sync::<Broker<str>>();
    assert_send_sync::<Broker<[u8]>>();
    assert_send_sync::<PubSub<str>>();
    assert_send_sync::<PubSub<Vec<u8>>>();
    assert_send_sync::<Message<str>>();
}

#[test]
fn the_issue_snippet_compiles_and_runs() {
    let broker = Broker::<str>::new();
    let sub: PubSub<str> = broker.pubsub();
    sub.subscribe(["channel"]);
    sub.psubscribe(["news.*"]);
    let delivered: usize = broker.publish("channel", "message");
    assert_eq!(delivered, 1);
    sub.unsubscribe_all();
    sub.punsubscribe_all();
    let mut seen = Vec::new();
    for msg in sub.listen() {
        seen.push(format!("{msg:?}"));
    }
    assert_eq!(seen.len(), 5);
    assert_eq!(
        seen[2],
        r#"Message { channel: "channel", payload: "message" }"#
    );
}

#[test]
fn signatures_match_the_issue() {
    let broker: Broker<str> = Broker::default();
    let _: fn(&Broker<str>, &str, Arc<str>) -> usize = |b, c, p| b.publish(c, p);
    let _: fn(&Broker<str>) -> PubSub<str> = Broker::pubsub;
    let _: fn(&Broker<str>, Option<&str>) -> Vec<String> = Broker::channels;
    let _: fn(&Broker<str>, &str) -> usize = Broker::numsub;
    let _: fn(&Broker<str>) -> usize = Broker::numpat;
    let _: fn(&PubSub<str>, Duration) -> Option<Message<str>> = PubSub::get_message;
    let _: fn(&PubSub<str>) = PubSub::unsubscribe_all;
    let _: fn(&PubSub<str>) = PubSub::punsubscribe_all;
    let _: fn(&PubSub<str>) -> bool = PubSub::is_subscribed;
    let _: fn(&PubSub<str>) -> usize = PubSub::subscriptions;
    let _: fn(&PubSub<str>) -> &crossbeam_channel::Receiver<Queued<str>> = PubSub::receiver;
    let _: fn(&Message<str>) -> &'static str = Message::kind;
    let _: fn(&Message<str>) -> Option<&str> = Message::channel;
    let _: fn(&Message<str>) -> Option<&str> = Message::pattern;
    let _: fn(&Message<str>) -> Option<&Arc<str>> = Message::payload;

    // Names as any `IntoIterator` of `AsRef<str>`: arrays, vectors, slices of Strings.
    let sub = broker.pubsub();
    sub.subscribe(vec![String::from("a")]);
    sub.subscribe(&[String::from("b")]);
    sub.psubscribe(["c*"].iter());
    sub.unsubscribe(std::iter::once("a"));
    sub.punsubscribe(["c*"]);
    assert_eq!(sub.subscriptions(), 1);
    let clone = broker.clone();
    assert_eq!(clone.publish("b", String::from("owned")), 1);
    assert_eq!(
        format!("{sub:?}"),
        "PubSub { id: SubscriberId(1), subscriptions: 1, queued: 6 }"
    );
}

#[test]
fn get_message_waits_at_most_the_timeout() {
    let broker = Broker::<str>::new();
    let sub = broker.pubsub();
    sub.subscribe(["a"]);
    assert!(sub.get_message(Duration::ZERO).is_some());
    assert!(sub.get_message(Duration::ZERO).is_none());
    assert!(sub.get_message(Duration::from_millis(20)).is_none());
    std::thread::scope(|s| {
        s.spawn(|| {
            std::thread::sleep(Duration::from_millis(20));
            broker.publish("a", "late");
        });
        // Generous: the point is that it waits for the message instead of returning None.
        let got = sub.get_message(Duration::from_secs(30)).unwrap();
        assert_eq!(got.payload().map(|p| &**p), Some("late"));
    });
}
