//! The two halves of a one-to-one delivery, each on one thread, side by side with the same
//! half of a raw `crossbeam-channel` queue: where `one_to_one`'s gap to crossbeam comes from.
//!
//! - `publish`: publishes into the queue of a handle that nobody reads while the clock runs
//!   (against `send` into an unbounded crossbeam queue nobody reads), through
//!   `Broker::publish` and through a `Publisher` of the channel;
//! - `read`: `get_message(Duration::ZERO)` from a queue filled before the clock starts
//!   (against `try_recv`).
//!
//! No second thread, so no cache line crosses cores: these are the instructions each side
//! runs. `cargo bench --bench halves`; `FANOUT_BENCH_QUICK=1` makes it short.

#[path = "common/mod.rs"]
mod common;

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use fanout::Broker;

fn halves(c: &mut Criterion) {
    let messages = common::size(200_000, 20_000);
    let payload: Arc<str> = Arc::from("a payload of about forty bytes, shared");
    let mut group = common::single_thread_group(c, "halves");
    group.throughput(Throughput::Elements(messages as u64));

    group.bench_function("crossbeam_send", |b| {
        b.iter_custom(|iters| common::crossbeam_send(iters, messages, &payload))
    });
    // `Broker::publish`, and the same publishes through a `Publisher` of the channel.
    group.bench_function("fanout_publish", |b| {
        b.iter_custom(|iters| {
            publish_half(iters, messages, |broker| {
                for _ in 0..messages {
                    broker.publish("bench", payload.clone());
                }
            })
        })
    });
    group.bench_function("fanout_publisher", |b| {
        b.iter_custom(|iters| {
            publish_half(iters, messages, |broker| {
                let publisher = broker.publisher("bench");
                for _ in 0..messages {
                    publisher.publish(payload.clone());
                }
            })
        })
    });
    group.bench_function("crossbeam_recv", |b| {
        b.iter_custom(|iters| {
            (0..iters)
                .map(|_| {
                    let (tx, rx) = crossbeam_channel::unbounded::<Arc<str>>();
                    for _ in 0..messages {
                        tx.send(payload.clone()).unwrap();
                    }
                    let began = Instant::now();
                    for _ in 0..messages {
                        black_box(rx.try_recv().unwrap());
                    }
                    began.elapsed()
                })
                .sum()
        })
    });
    group.bench_function("fanout_read", |b| {
        b.iter_custom(|iters| {
            (0..iters)
                .map(|_| {
                    let broker = Broker::<str>::new();
                    let sub = broker.pubsub();
                    sub.subscribe(["bench"]);
                    assert!(sub.get_message(Duration::ZERO).is_some(), "confirmation");
                    for _ in 0..messages {
                        broker.publish("bench", payload.clone());
                    }
                    let began = Instant::now();
                    for _ in 0..messages {
                        black_box(sub.get_message(Duration::ZERO).unwrap());
                    }
                    began.elapsed()
                })
                .sum()
        })
    });
    group.finish();
}

/// `iters` runs of `publish`, each given a broker whose one handle subscribes to "bench" and
/// is not read; the clock covers `publish` only, which must queue `messages` deliveries.
fn publish_half(iters: u64, messages: usize, publish: impl Fn(&Broker<str>)) -> Duration {
    (0..iters)
        .map(|_| {
            let broker = Broker::<str>::new();
            let sub = broker.pubsub();
            sub.subscribe(["bench"]);
            let began = Instant::now();
            publish(&broker);
            let elapsed = began.elapsed();
            assert_eq!(sub.stats().queued, messages + 1);
            elapsed
        })
        .sum()
}

criterion_group!(benches, halves);
criterion_main!(benches);
