//! Handlers and a worker thread, as redis-py's `run_in_thread`, without its traps: a handler
//! that panics is reported and the worker goes on, and a handler stops the worker.
//!
//! Run: `cargo run --example worker`.

use fanout::{Broker, HandlerPanic, Message, StopHandle};

fn main() {
    let broker = Broker::<str>::new();
    let sub = broker.pubsub();
    // Made before the worker, so that a handler can hold it and stop its own worker.
    let stop = StopHandle::new();

    sub.subscribe_with("orders", |m: Message<str>| {
        let order = m.payload().expect("a delivery");
        if order.contains("bad") {
            panic!("cannot parse order {order:?}");
        }
        println!("handled order {order}");
    });
    sub.psubscribe_with("audit.*", |m: Message<str>| {
        println!(
            "audit on {}: {}",
            m.channel().unwrap_or_default(),
            m.payload().unwrap()
        );
    });
    let stopper = stop.clone();
    sub.subscribe_with("control", move |m: Message<str>| {
        if &**m.payload().unwrap() == "shutdown" {
            println!("shutdown requested: stopping the worker from its own handler");
            stopper.stop();
        }
    });

    let worker = sub
        .worker()
        .name("orders-worker")
        .on_panic(|p: HandlerPanic| println!("reported, and the worker goes on: {p}"))
        .stop_handle(stop)
        .spawn()
        .expect("every subscription has a handler");

    for (channel, payload) in [
        ("orders", "#1 two apples"),
        ("audit.login", "ada logged in"),
        ("orders", "#2 bad input"),
        ("orders", "#3 one pear"),
        ("control", "shutdown"),
    ] {
        broker.publish(channel, payload);
    }
    worker.join().expect("the worker ended cleanly");
    println!("worker stopped; {} deliveries", sub.stats().delivered);
}
