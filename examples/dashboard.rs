//! A late-joining dashboard: a price feed has been publishing for a while when the dashboard
//! starts; it shows the last price of every market at once (replayed from the broker's
//! retained history), then live ticks as they come.
//!
//! Also shown, the other options beyond Redis: the dashboard follows `prices.*` and its
//! headline market `prices.eu` on one handle and still gets each tick once
//! (`one_delivery_per_publish`), and, when a slow redraw lets ticks pile up, its bounded
//! queue warns before it loses any (`high_water`) and then says how many it dropped.
//!
//! Run: `cargo run --example dashboard`.

use std::collections::BTreeMap;
use std::thread;
use std::time::Duration;

use fanout::{Broker, Message, Overflow};

fn main() {
    // Keep the last price of up to 1,000 markets, whether anybody listens or not.
    let broker = Broker::<str>::builder().history(1, 1_000).build();

    // The feed, before the dashboard exists: nobody receives these, the broker keeps them.
    for (market, price) in [
        ("prices.eu", "101.50"),
        ("prices.us", "99.80"),
        ("prices.asia", "100.20"),
        ("prices.eu", "101.70"),
    ] {
        broker.publish(market, price);
    }
    println!(
        "retained before the dashboard: {:?}\n",
        broker.retained(None)
    );

    let dashboard = broker
        .pubsub_builder()
        .replay(true) // the last price of each market right after the subscription
        .one_delivery_per_publish(true) // `prices.eu` matches twice below: once is enough
        .capacity(64)
        .overflow(Overflow::DropOldest) // never slow the feed down...
        .high_water(48) // ...but say so before ticks are dropped
        .ignore_subscribe_messages(true)
        .build();
    dashboard.psubscribe("prices.*");
    dashboard.subscribe("prices.eu");

    // The replays were queued with the subscriptions: all there now, each market's last price
    // once (`prices.eu` through `prices.*`; its own subscription replays nothing more, as
    // one delivery per publish holds for replays too).
    let mut board = BTreeMap::new();
    while let Some(message) = dashboard.get_message(Duration::ZERO) {
        if let Message::Replay {
            channel, payload, ..
        } = message
        {
            board.insert(channel, payload);
        }
    }
    for (market, price) in &board {
        println!("{market:<12} {price:>7}   last known");
    }

    let feed = {
        let broker = broker.clone();
        thread::spawn(move || {
            let ticks = [
                ("prices.us", "99.85"),
                ("prices.eu", "101.65"),
                ("prices.asia", "100.10"),
                ("prices.eu", "101.80"),
            ];
            for (market, price) in ticks {
                thread::sleep(Duration::from_millis(20));
                let delivered = broker.publish(market, price);
                assert_eq!(delivered, 1, "one delivery per publish");
            }
        })
    };

    // Then the four live ticks, each once.
    for message in dashboard.listen().take(4) {
        match &message {
            Message::Message { channel, payload } => {
                println!("{channel:<12} {payload:>7}   live (headline)")
            }
            Message::PMessage {
                channel, payload, ..
            } => println!("{channel:<12} {payload:>7}   live"),
            Message::HighWater { queued } => println!("falling behind: {queued} ticks queued"),
            Message::Lagged { missed } => println!("missed {missed} ticks"),
            other => println!("{other:#}"),
        }
    }
    feed.join().expect("the feed thread panicked");

    // A slow phase: the dashboard redraws for a while without reading, and a burst of 80
    // ticks arrives meanwhile. The queue warns when it reaches 48 ticks, before anything is
    // lost; past 64, the oldest ticks make room and the reader is told how many went.
    let burst = {
        let broker = broker.clone();
        thread::spawn(move || {
            for i in 0..80 {
                broker.publish("prices.us", format!("{:.2}", 99.0 + f64::from(i) / 100.0));
            }
        })
    };
    burst.join().expect("the burst thread panicked");
    println!(
        "
after a slow redraw:"
    );
    let mut latest = None;
    while let Some(message) = dashboard.get_message(Duration::ZERO) {
        match message {
            Message::HighWater { queued } => {
                println!("warning: falling behind, {queued} ticks queued")
            }
            Message::Lagged { missed } => println!("missed {missed} older ticks"),
            Message::PMessage { payload, .. } => latest = Some(payload),
            other => println!("{other:#}"),
        }
    }
    if let Some(price) = latest {
        println!("prices.us    {price:>7}   latest after the burst");
    }
    let stats = dashboard.stats();
    println!(
        "
the queue peaked at {} of 64; {} ticks dropped, each reported",
        stats.peak_queued, stats.dropped
    );
}
