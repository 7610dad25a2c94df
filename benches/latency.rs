//! Latency, next to raw `crossbeam-channel`:
//!
//! - a publish to a subscriber blocked in `listen()`: each sample is one message sent while
//!   the reader is waiting (the sender pauses between messages), timed from just before the
//!   send to the reader's wake-up;
//! - a publisher blocked on a full `Block` queue of capacity 1 (crossbeam: a blocked `send`
//!   on `bounded(1)`): the reader waits until the queue is full again and a pause has passed
//!   (so the publisher waits for room), then each sample is timed from just before the read
//!   that makes room to the publisher's return.
//!
//! Prints p50, p99 and p99.9 and writes them to `target/fanout-bench/latency.json` for
//! `benches/report.py`. Run: `cargo bench --bench latency` (`FANOUT_BENCH_QUICK=1` for fewer
//! samples).

#[path = "common/mod.rs"]
mod common;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use fanout::{Broker, Message};

/// Waits about `gap` without sleeping, so the reader really is blocked when the next send comes.
fn pause(gap: Duration) {
    let until = Instant::now() + gap;
    while Instant::now() < until {
        std::hint::spin_loop();
    }
}

fn percentiles(mut samples: Vec<Duration>) -> [f64; 3] {
    samples.sort_unstable();
    let at = |q: f64| samples[((samples.len() - 1) as f64 * q) as usize].as_nanos() as f64 / 1000.0;
    [at(0.50), at(0.99), at(0.999)]
}

fn crossbeam(samples: usize, gap: Duration) -> Vec<Duration> {
    let (tx, rx) = crossbeam_channel::unbounded::<Instant>();
    let reader = thread::spawn(move || rx.iter().map(|sent| sent.elapsed()).collect::<Vec<_>>());
    for _ in 0..samples {
        pause(gap);
        tx.send(Instant::now()).unwrap();
    }
    drop(tx);
    reader.join().unwrap()
}

fn fanout(samples: usize, gap: Duration) -> Vec<Duration> {
    let broker = Broker::<Instant>::new();
    let sub = broker.pubsub();
    sub.subscribe(["latency"]);
    let reader = thread::spawn(move || {
        sub.listen()
            .take(samples + 1)
            .filter_map(|m| match m {
                Message::Message { payload, .. } => Some(payload.elapsed()),
                _ => None,
            })
            .collect::<Vec<_>>()
    });
    for _ in 0..samples {
        pause(gap);
        broker.publish("latency", Instant::now());
    }
    reader.join().unwrap()
}

/// When the reader last began the read that makes room, in ns since `base`: written before
/// the read, read by the publisher once it returns (the read's wake-up orders the two).
struct RoomMade {
    base: Instant,
    at: AtomicU64,
}

impl RoomMade {
    fn new() -> Arc<Self> {
        Arc::new(RoomMade {
            base: Instant::now(),
            at: AtomicU64::new(0),
        })
    }

    fn now(&self) {
        let at = self.base.elapsed().as_nanos() as u64;
        self.at.store(at, Ordering::Release);
    }

    fn since(&self) -> Duration {
        let made = Duration::from_nanos(self.at.load(Ordering::Acquire));
        self.base.elapsed().saturating_sub(made)
    }
}

fn crossbeam_block_wake(samples: usize, gap: Duration) -> Vec<Duration> {
    let (tx, rx) = crossbeam_channel::bounded::<usize>(1);
    tx.send(0).unwrap();
    let made = RoomMade::new();
    let publisher = {
        let made = made.clone();
        thread::spawn(move || {
            let waits = (1..=samples).map(|i| {
                tx.send(i).unwrap();
                made.since()
            });
            waits.collect::<Vec<_>>()
        })
    };
    for _ in 0..samples {
        while !rx.is_full() {
            std::hint::spin_loop();
        }
        pause(gap);
        made.now();
        rx.recv().unwrap();
    }
    publisher.join().unwrap()
}

fn fanout_block_wake(samples: usize, gap: Duration) -> Vec<Duration> {
    let broker = Broker::<usize>::new();
    let sub = broker
        .pubsub_builder()
        .capacity(1)
        .ignore_subscribe_messages(true)
        .build();
    sub.subscribe("room");
    broker.publish("room", 0);
    let made = RoomMade::new();
    let publisher = {
        let (broker, made) = (broker.clone(), made.clone());
        thread::spawn(move || {
            let waits = (1..=samples).map(|i| {
                assert_eq!(broker.publish("room", i), 1);
                made.since()
            });
            waits.collect::<Vec<_>>()
        })
    };
    for _ in 0..samples {
        while sub.stats().queued < 1 {
            std::hint::spin_loop();
        }
        pause(gap);
        made.now();
        sub.get_message(Duration::ZERO).expect("the queue is full");
    }
    publisher.join().unwrap()
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return; // `cargo bench -- --list` and `cargo test --benches` ask; nothing to list
    }
    let samples = common::size(20_000, 2_000);
    let gap = Duration::from_micros(50);
    let rows = [
        ("crossbeam", percentiles(crossbeam(samples, gap))),
        ("fanout", percentiles(fanout(samples, gap))),
        (
            "crossbeam_block_wake",
            percentiles(crossbeam_block_wake(samples, gap)),
        ),
        (
            "fanout_block_wake",
            percentiles(fanout_block_wake(samples, gap)),
        ),
    ];
    println!("latency: {samples} messages, {gap:?} apart: to a reader blocked in recv/listen, and (block_wake) from the read that makes room to a blocked publisher's return");
    println!(
        "{:<22} {:>9} {:>9} {:>9}",
        "", "p50 µs", "p99 µs", "p99.9 µs"
    );
    for (name, [p50, p99, p999]) in &rows {
        println!("{name:<22} {p50:>9.2} {p99:>9.2} {p999:>9.2}");
    }
    let json: Vec<String> = rows
        .iter()
        .map(|(name, [p50, p99, p999])| format!("\"{name}\": {{\"p50_us\": {p50:.3}, \"p99_us\": {p99:.3}, \"p999_us\": {p999:.3}}}"))
        .collect();
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/fanout-bench");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("latency.json"),
        format!("{{\"samples\": {samples}, {}}}\n", json.join(", ")),
    )
    .unwrap();
}
