//! Publish throughput next to its floor, raw `crossbeam-channel`, in the same run.
//!
//! Run: `cargo bench --bench publish` (add `-- --quick` for a short smoke run).

use std::sync::Arc;
use std::thread;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use fanout::{glob_match, Broker};

/// Messages per measured iteration: one publisher thread, one consuming thread.
const MESSAGES: u64 = 10_000;

fn one_to_one(c: &mut Criterion) {
    let mut group = c.benchmark_group("one_to_one");
    group.throughput(Throughput::Elements(MESSAGES));
    let payload: Arc<str> = Arc::from("payload");

    group.bench_function("crossbeam_unbounded", |b| {
        b.iter(|| {
            let (tx, rx) = crossbeam_channel::unbounded::<Arc<str>>();
            let consumer = thread::spawn(move || rx.iter().take(MESSAGES as usize).count());
            for _ in 0..MESSAGES {
                tx.send(payload.clone()).unwrap();
            }
            assert_eq!(consumer.join().unwrap(), MESSAGES as usize);
        })
    });

    group.bench_function("fanout_publish", |b| {
        b.iter(|| {
            let broker = Broker::<str>::new();
            let sub = broker.pubsub();
            sub.subscribe(["bench"]);
            let consumer = thread::spawn(move || {
                sub.listen()
                    .filter(|m| m.payload().is_some())
                    .take(MESSAGES as usize)
                    .count()
            });
            for _ in 0..MESSAGES {
                broker.publish("bench", payload.clone());
            }
            assert_eq!(consumer.join().unwrap(), MESSAGES as usize);
        })
    });
    group.finish();
}

fn hostile_pattern(c: &mut Criterion) {
    let mut group = c.benchmark_group("glob");
    let channel = "a".repeat(10_000);
    for pattern in ["a*a*a*a*a*a*a*a*a*a*b", "*a*a*a*a*a*a*a*a*a*a"] {
        group.bench_with_input(BenchmarkId::new("10k_a", pattern), pattern, |b, p| {
            b.iter(|| glob_match(p, &channel))
        });
    }
    group.finish();
}

criterion_group!(benches, one_to_one, hostile_pattern);
criterion_main!(benches);
