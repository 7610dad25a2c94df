//! Channels and patterns side by side: `message` for an exact subscription, `pmessage` for
//! each matching pattern, and the PUBLISH reply that counts both.
//!
//! Run: `cargo run --example patterns`.

use std::time::Duration;

use fanout::{glob_match, Broker, Message};

fn main() {
    let broker = Broker::<str>::new();
    let sub = broker.pubsub();
    sub.subscribe(["news.tech"]);
    sub.psubscribe(["news.*", "*.tech", "news.[^t]*"]);

    for (channel, payload) in [
        (
            "news.tech",
            "a handle on the channel and two matching patterns: 3 deliveries",
        ),
        ("news.sport", "two patterns match"),
        ("blog.tech", "one pattern matches"),
        ("weather", "nobody listens"),
    ] {
        let delivered = broker.publish(channel, payload);
        println!("PUBLISH {channel} -> {delivered}");
    }

    println!();
    while let Some(message) = sub.get_message(Duration::ZERO) {
        match &message {
            Message::Message { channel, payload } => {
                println!("message   {channel:<10}            {payload}")
            }
            Message::PMessage {
                pattern,
                channel,
                payload,
            } => println!("pmessage  {channel:<10} via {pattern:<10} {payload}"),
            confirmation => println!(
                "{:<12} {:<12} count {}",
                confirmation.kind(),
                confirmation
                    .channel()
                    .or(confirmation.pattern())
                    .unwrap_or_default(),
                confirmation.count().unwrap_or_default()
            ),
        }
    }

    println!();
    println!("PUBSUB CHANNELS      -> {:?}", broker.channels(None));
    println!("PUBSUB NUMPAT        -> {}", broker.numpat());
    println!("PUBSUB NUMSUB news.tech -> {}", broker.numsub("news.tech"));
    for (pattern, channel) in [
        ("h[!e]llo", "h!llo"),
        ("h[^e]llo", "hallo"),
        ("*", ""),
        ("a\\*", "a*"),
    ] {
        println!(
            "glob_match({pattern:?}, {channel:?}) = {}",
            glob_match(pattern, channel)
        );
    }
}
