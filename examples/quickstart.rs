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

use fanout::Broker;

fn main() {
    let broker = Broker::<str>::new();

    // p = r.pubsub(); p.subscribe('channel')
    let p = broker.pubsub();
    p.subscribe("channel");

    let subscriber = thread::spawn(move || {
        let mut received = 0;
        // for message in p.listen(): print(message)
        for message in p.listen() {
            println!("{message}"); // as redis-py prints its message dict
            if message.payload().is_some() {
                received += 1;
                if received == 3 {
                    // listen() yields this confirmation, then ends, as in redis-py.
                    p.unsubscribe("channel");
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
