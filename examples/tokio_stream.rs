//! A tokio task consumes a handle's messages as a stream while plain threads publish.
//!
//! Run: `cargo run --example tokio_stream --features async`.

use std::time::Duration;

use fanout::{Broker, Message};
use futures::StreamExt;

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let broker = Broker::<String>::new();
    let sub = broker
        .pubsub_builder()
        .ignore_subscribe_messages(true)
        .build();
    sub.subscribe(["prices"]);
    sub.psubscribe(["alerts.*"]);
    let mut stream = sub.stream();

    let consumer = tokio::spawn(async move {
        let mut seen = 0;
        while let Some(message) = stream.next().await {
            match message {
                Message::Message { channel, payload } => println!("{channel}: {payload}"),
                Message::PMessage {
                    channel, payload, ..
                } => println!("ALERT {channel}: {payload}"),
                other => println!("{other:?}"),
            }
            seen += 1;
        }
        seen
    });

    let publishers: Vec<_> = ["EUR", "USD"]
        .into_iter()
        .map(|currency| {
            let broker = broker.clone();
            std::thread::spawn(move || {
                for tick in 0..3 {
                    broker.publish("prices", format!("{currency} tick {tick}"));
                    std::thread::sleep(Duration::from_millis(5));
                }
                broker.publish(&format!("alerts.{currency}"), format!("{currency} closed"));
            })
        })
        .collect();
    for publisher in publishers {
        publisher.join().expect("publisher panicked");
    }
    sub.close(); // the stream ends after what was queued (it holds the handle: dropping `sub` would not end it)
    let seen = consumer.await.expect("consumer panicked");
    println!("the task saw {seen} messages");
}
