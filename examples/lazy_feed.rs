//! A producer that computes only while someone listens: it waits for its channel's first
//! subscriber (a pattern counts), publishes while anyone is there, and stops when the last
//! one leaves, without polling `numsub`.
//!
//! `cargo run --example lazy_feed`

use std::time::Duration;

use fanout::{Broker, Matching, Message};

fn main() {
    let broker = Broker::<str>::new();
    // The producer reports on a channel of its own, so that one thread prints everything.
    let status = broker
        .pubsub_builder()
        .ignore_subscribe_messages(true)
        .build();
    status.subscribe("feed.status");

    let ticks = broker.publisher("ticks.eu");
    let says = broker.publisher("feed.status");
    let producer = std::thread::spawn(move || {
        // Ends when the broker closes.
        for change in ticks.matching_changes() {
            if change == Matching::Unmatched {
                continue; // already stopped: the loop below saw it
            }
            says.publish("someone listens: computing");
            let mut computed = 0;
            while ticks.is_matched() {
                computed += 1; // the costly part, skipped while nobody listens
                ticks.publish(format!("price {computed}"));
                std::thread::sleep(Duration::from_millis(5));
            }
            says.publish("nobody listens: stopped");
        }
    });

    let show = |who: &str, m: Message<str>| match m.pattern() {
        Some(pattern) => println!("{who}: {} (through {pattern})", m.data().unwrap_or("")),
        None => println!("{who}: {}", m.data().unwrap_or("")),
    };
    let next = |handle: &fanout::PubSub<str>| handle.listen().next().expect("open");

    // A dashboard on a pattern: the producer starts, the dashboard reads 2 prices, leaves.
    let dashboard = broker
        .pubsub_builder()
        .ignore_subscribe_messages(true)
        .build();
    println!("dashboard: psubscribe ticks.*");
    dashboard.psubscribe("ticks.*");
    show("producer", next(&status));
    (0..2).for_each(|_| show("dashboard", next(&dashboard)));
    dashboard.punsubscribe("ticks.*");
    println!("dashboard: punsubscribe ticks.*");
    show("producer", next(&status));

    // A logger on the channel itself, dropped after a price: the same again.
    let logger = broker
        .pubsub_builder()
        .ignore_subscribe_messages(true)
        .build();
    println!("logger: subscribe ticks.eu");
    logger.subscribe("ticks.eu");
    show("producer", next(&status));
    show("logger", next(&logger));
    drop(logger);
    println!("logger: dropped");
    show("producer", next(&status));

    broker.close(); // ends the producer's loop
    producer.join().expect("the producer does not panic");
    println!("broker closed: the producer returned");
}
