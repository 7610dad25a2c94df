//! What a full bounded queue costs its publishers: 4,000 publishes into a `DropOldest`
//! handle of capacity 8 that nobody reads, behind 0 or 20,000 unread confirmations (the
//! handle also subscribed to 20,000 other channels). Evictions take the oldest items from the
//! queue's head and move what is not a delivery aside once, so the second row should cost
//! about what the first does, not 20,000 moves per eviction.
//!
//! `cargo bench --bench overflow`; `FANOUT_BENCH_QUICK=1` makes it short.

#[path = "common/mod.rs"]
mod common;

use std::sync::Arc;
use std::time::Instant;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use fanout::{Broker, Overflow};

const PUBLISHES: usize = 4_000;

fn drop_oldest(c: &mut Criterion) {
    let payload: Arc<str> = Arc::from("a payload of about forty bytes, shared");
    let mut group = common::single_thread_group(c, "drop_oldest");
    group.throughput(Throughput::Elements(PUBLISHES as u64));
    for confirmations in [0usize, 20_000] {
        let id = BenchmarkId::new("stopped_reader_behind_confirmations", confirmations);
        group.bench_with_input(id, &confirmations, |b, &confirmations| {
            let others: Vec<String> = (0..confirmations).map(|i| format!("other.{i}")).collect();
            b.iter_custom(|iters| {
                (0..iters)
                    .map(|_| {
                        let broker = Broker::<str>::new();
                        let sub = broker
                            .pubsub_builder()
                            .capacity(8)
                            .overflow(Overflow::DropOldest)
                            .build();
                        sub.subscribe("ch");
                        let _ = sub.get_message(std::time::Duration::ZERO);
                        sub.subscribe(&others);
                        let began = Instant::now();
                        for _ in 0..PUBLISHES {
                            broker.publish("ch", payload.clone());
                        }
                        let elapsed = began.elapsed();
                        assert_eq!(sub.stats().dropped, (PUBLISHES - 8) as u64);
                        elapsed
                    })
                    .sum()
            })
        });
    }
    group.finish();
}

criterion_group!(benches, drop_oldest);
criterion_main!(benches);
