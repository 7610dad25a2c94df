//! What retained history costs a publisher, side by side with the same publishes on a
//! broker without it and with a raw `crossbeam-channel` send (`cargo bench --bench history`;
//! `FANOUT_BENCH_QUICK=1` makes it short). Every publisher runs on one thread, into queues
//! nobody reads while the clock runs, as `halves.rs` does:
//!
//! - `publish_off` / `publish_on`: one channel with one subscriber;
//! - `spread_off` / `spread_on`: round robin over 1,000 channels, one subscriber each (the
//!   history's recency order changes on every publish);
//! - `nobody_off` / `nobody_on`: 1,000 channels nobody subscribes to (history records them
//!   all the same);
//! - `two_publishers_off` / `two_publishers_on`: two threads on distinct channels, which meet
//!   at the history's one lock;
//! - `replay_psubscribe`: a `psubscribe` with replay matching 1,000 retained channels (one
//!   iteration is one subscription and its replays).

#[path = "common/mod.rs"]
mod common;

use std::hint::black_box;
use std::sync::{Arc, Barrier};
use std::thread;
use std::time::Instant;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use fanout::{Broker, PubSub};

/// Payloads kept per channel and channels kept, when history is on.
const KEPT: (usize, usize) = (8, 10_000);

fn broker(history: bool) -> Broker<str> {
    let builder = Broker::builder();
    match history {
        true => builder.history(KEPT.0, KEPT.1).build(),
        false => builder.build(),
    }
}

/// A handle of its own on each of `channels`, for the caller to keep alive.
fn subscribed(broker: &Broker<str>, channels: &[String]) -> Vec<PubSub<str>> {
    (channels.iter())
        .map(|channel| {
            let sub = broker.pubsub();
            sub.subscribe(channel);
            sub
        })
        .collect()
}

fn history(c: &mut Criterion) {
    let messages = common::size(200_000, 20_000);
    let payload: Arc<str> = Arc::from("a payload of about forty bytes, shared");
    let spread: Vec<String> = (0..1_000).map(|i| format!("market.{i}")).collect();
    let mut group = common::single_thread_group(c, "history");
    group.throughput(Throughput::Elements(messages as u64));

    group.bench_function("crossbeam_send", |b| {
        b.iter_custom(|iters| common::crossbeam_send(iters, messages, &payload))
    });
    for on in [false, true] {
        let state = if on { "on" } else { "off" };
        group.bench_function(format!("publish_{state}"), |b| {
            b.iter_custom(|iters| {
                (0..iters)
                    .map(|_| {
                        let broker = broker(on);
                        let _subs = subscribed(&broker, &["bench".to_string()]);
                        let began = Instant::now();
                        for _ in 0..messages {
                            broker.publish("bench", payload.clone());
                        }
                        began.elapsed()
                    })
                    .sum()
            })
        });
        for (name, subscribe) in [("spread", true), ("nobody", false)] {
            group.bench_function(format!("{name}_{state}"), |b| {
                b.iter_custom(|iters| {
                    (0..iters)
                        .map(|_| {
                            let broker = broker(on);
                            let _subs = subscribe.then(|| subscribed(&broker, &spread));
                            let began = Instant::now();
                            for channel in spread.iter().cycle().take(messages) {
                                broker.publish(channel, payload.clone());
                            }
                            began.elapsed()
                        })
                        .sum()
                })
            });
        }
        group.bench_function(format!("two_publishers_{state}"), |b| {
            b.iter_custom(|iters| {
                (0..iters)
                    .map(|_| {
                        let broker = broker(on);
                        let channels = ["left".to_string(), "right".to_string()];
                        let _subs = subscribed(&broker, &channels);
                        let start = Barrier::new(2);
                        thread::scope(|s| {
                            let spans: Vec<_> = (channels.iter())
                                .map(|channel| {
                                    let (broker, start, payload) = (&broker, &start, &payload);
                                    s.spawn(move || {
                                        start.wait();
                                        let began = Instant::now();
                                        for _ in 0..messages / 2 {
                                            broker.publish(channel, payload.clone());
                                        }
                                        (began, Instant::now())
                                    })
                                })
                                .collect();
                            let spans: Vec<_> =
                                spans.into_iter().map(|h| h.join().unwrap()).collect();
                            let first = spans.iter().map(|s| s.0).min().unwrap();
                            let last = spans.iter().map(|s| s.1).max().unwrap();
                            last - first
                        })
                    })
                    .sum()
            })
        });
    }
    group.throughput(Throughput::Elements(1));
    group.bench_function("replay_psubscribe", |b| {
        let broker = broker(true);
        for channel in &spread {
            for _ in 0..KEPT.0 {
                broker.publish(channel, payload.clone());
            }
        }
        b.iter_custom(|iters| {
            (0..iters)
                .map(|_| {
                    let sub = broker.pubsub_builder().replay(true).build();
                    let began = Instant::now();
                    sub.psubscribe("market.*");
                    let elapsed = began.elapsed();
                    assert_eq!(sub.stats().queued, 1 + spread.len() * KEPT.0);
                    drop(black_box(sub));
                    elapsed
                })
                .sum()
        })
    });
    group.finish();
}

criterion_group!(benches, history);
criterion_main!(benches);
