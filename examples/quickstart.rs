//! The redis-py quick start, in-process: a publisher thread and a subscriber thread.
//!
//! ```python
//! r.publish('channel', 'message')            # returns how many subscribers got it
//! p = r.pubsub(); p.subscribe('channel')
//! for message in p.listen(): print(message)  # confirmations, then messages
//! ```
//!
//! Run: `cargo run --example quickstart`. Each line is printed as redis-py prints its dict.

use std::thread;

use fanout::{Broker, Message};

fn main() {
    let broker = Broker::<str>::new();

    // p = r.pubsub(); p.subscribe('channel')
    let p = broker.pubsub();
    p.subscribe(["channel"]);

    let subscriber = thread::spawn(move || {
        let mut received = 0;
        // for message in p.listen(): print(message)
        for message in p.listen() {
            println!("{}", as_redis_py(&message));
            if message.payload().is_some() {
                received += 1;
                if received == 3 {
                    // listen() yields this confirmation, then ends, as in redis-py.
                    p.unsubscribe(["channel"]);
                }
            }
        }
    });

    let publisher = {
        let r = broker.clone();
        thread::spawn(move || {
            for text in ["message", "another message", "last message"] {
                // r.publish('channel', 'message') returns the number of deliveries.
                let delivered = r.publish("channel", text);
                println!("publish('channel', {text:?}) -> {delivered}");
            }
        })
    };

    publisher.join().expect("publisher thread panicked");
    subscriber.join().expect("subscriber thread panicked");
}

/// Formats a message the way redis-py prints its message dict.
fn as_redis_py(message: &Message<str>) -> String {
    let quote = |s: &str| format!("b'{s}'");
    let (pattern, channel, data) = match message {
        Message::Subscribe { channel, count } | Message::Unsubscribe { channel, count } => {
            ("None".to_string(), quote(channel), count.to_string())
        }
        Message::PSubscribe { pattern, count } | Message::PUnsubscribe { pattern, count } => {
            ("None".to_string(), quote(pattern), count.to_string())
        }
        Message::Message { channel, payload } => {
            ("None".to_string(), quote(channel), quote(payload))
        }
        Message::PMessage {
            pattern,
            channel,
            payload,
        } => (quote(pattern), quote(channel), quote(payload)),
        other => ("None".to_string(), "None".to_string(), format!("{other:?}")),
    };
    format!(
        "{{'type': '{}', 'pattern': {pattern}, 'channel': {channel}, 'data': {data}}}",
        message.kind()
    )
}
