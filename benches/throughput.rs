//! Throughput of `fanout` side by side with its floor and its peers, in one run:
//! raw `crossbeam-channel`, `tokio::sync::broadcast`, `bus`, and Redis over loopback.
//!
//! Every message is consumed by its subscriber thread; timings cover publishing and
//! consuming, not the set-up (threads are started before the clock). Run all groups with
//! `cargo bench --bench throughput`; `FANOUT_BENCH_QUICK=1` makes every group small and short.

#[path = "common/mod.rs"]
mod common;
#[allow(dead_code)]
#[path = "../tests/common/redis.rs"]
mod redis_server;

use std::collections::HashMap;
use std::hint::black_box;
use std::sync::{Arc, Barrier};
use std::thread;
use std::time::{Duration, Instant};

use criterion::measurement::WallTime;
use criterion::{
    criterion_group, criterion_main, BenchmarkGroup, BenchmarkId, Criterion, Throughput,
};
use fanout::{glob_match, Broker, PubSub};

fn configure(group: &mut BenchmarkGroup<'_, WallTime>, samples: usize) {
    if common::quick() {
        group
            .sample_size(10)
            .warm_up_time(Duration::from_millis(200))
            .measurement_time(Duration::from_millis(800));
    } else {
        group
            .sample_size(samples)
            .warm_up_time(Duration::from_secs(1))
            .measurement_time(Duration::from_secs(4));
    }
}

fn payload() -> Arc<str> {
    Arc::from("a payload of about forty bytes, shared")
}

/// Runs `consumers` (each already holding its receiving end), then times `publish`, then
/// waits for every consumer to finish. The clock covers publishing and consuming only.
fn timed<C: FnOnce() + Send + 'static>(consumers: Vec<C>, publish: impl FnOnce()) -> Duration {
    let start = Arc::new(Barrier::new(consumers.len() + 1));
    let handles: Vec<_> = consumers
        .into_iter()
        .map(|consume| {
            let start = start.clone();
            thread::spawn(move || {
                start.wait();
                consume();
            })
        })
        .collect();
    start.wait();
    let began = Instant::now();
    publish();
    for h in handles {
        h.join().unwrap();
    }
    began.elapsed()
}

/// A consumer that reads `expect` deliveries from `sub` (skipping confirmations).
fn reads(
    sub: impl std::ops::Deref<Target = PubSub<str>> + Send + 'static,
    expect: usize,
) -> impl FnOnce() + Send + 'static {
    move || {
        let got = sub
            .listen()
            .filter(|m| m.payload().is_some())
            .take(expect)
            .count();
        assert_eq!(got, expect);
    }
}

fn repeat(iters: u64, mut once: impl FnMut() -> Duration) -> Duration {
    (0..iters).map(|_| once()).sum()
}

fn one_to_one(c: &mut Criterion) {
    let messages = common::size(20_000, 2_000);
    let mut group = c.benchmark_group("one_to_one");
    configure(&mut group, 30);
    group.throughput(Throughput::Elements(messages as u64));
    let payload = payload();

    group.bench_function("crossbeam", |b| {
        b.iter_custom(|iters| {
            repeat(iters, || {
                let (tx, rx) = crossbeam_channel::unbounded::<Arc<str>>();
                let consumer = move || assert_eq!(rx.iter().take(messages).count(), messages);
                timed(vec![consumer], || {
                    for _ in 0..messages {
                        tx.send(payload.clone()).unwrap();
                    }
                })
            })
        })
    });

    group.bench_function("fanout", |b| {
        b.iter_custom(|iters| {
            repeat(iters, || {
                let broker = Broker::<str>::new();
                let sub = broker.pubsub();
                sub.subscribe(["bench"]);
                let consumer = reads(Box::new(sub), messages);
                timed(vec![consumer], || {
                    for _ in 0..messages {
                        broker.publish("bench", payload.clone());
                    }
                })
            })
        })
    });

    group.bench_function("tokio_broadcast", |b| {
        b.iter_custom(|iters| {
            repeat(iters, || {
                let (tx, mut rx) = tokio::sync::broadcast::channel::<Arc<str>>(messages);
                let consumer = move || {
                    for _ in 0..messages {
                        rx.blocking_recv().unwrap();
                    }
                };
                timed(vec![consumer], || {
                    for _ in 0..messages {
                        tx.send(payload.clone()).unwrap();
                    }
                })
            })
        })
    });

    group.bench_function("bus", |b| {
        b.iter_custom(|iters| {
            repeat(iters, || {
                let mut bus = bus::Bus::<Arc<str>>::new(1024);
                let mut rx = bus.add_rx();
                let consumer = move || {
                    for _ in 0..messages {
                        rx.recv().unwrap();
                    }
                };
                timed(vec![consumer], || {
                    for _ in 0..messages {
                        bus.broadcast(payload.clone());
                    }
                })
            })
        })
    });
    group.finish();

    // Redis needs a round trip per PUBLISH: fewer messages, the same per-message rate.
    let Some(server) = redis_server::Server::start() else {
        println!("one_to_one/redis_loopback skipped: redis-server is not installed");
        return;
    };
    let redis_messages = common::size(2_000, 200);
    let mut group = c.benchmark_group("one_to_one");
    configure(&mut group, 10);
    group.throughput(Throughput::Elements(redis_messages as u64));
    let url = format!("redis://127.0.0.1:{}/", server.port);
    group.bench_function("redis_loopback", |b| {
        b.iter_custom(|iters| {
            repeat(iters, || {
                let client = redis::Client::open(url.as_str()).unwrap();
                let mut publisher = client.get_connection().unwrap();
                let mut subscriber = client.get_connection().unwrap();
                let ready = Arc::new(Barrier::new(2));
                let subscribed = ready.clone();
                let consumer = move || {
                    let mut pubsub = subscriber.as_pubsub();
                    pubsub.subscribe("bench").unwrap();
                    subscribed.wait();
                    for _ in 0..redis_messages {
                        let msg = pubsub.get_message().unwrap();
                        black_box(msg.get_payload_bytes());
                    }
                };
                let handle = thread::spawn(consumer);
                ready.wait();
                let began = Instant::now();
                for _ in 0..redis_messages {
                    let n: usize = redis::cmd("PUBLISH")
                        .arg("bench")
                        .arg(payload.as_bytes())
                        .query(&mut publisher)
                        .unwrap();
                    assert_eq!(n, 1);
                }
                handle.join().unwrap();
                began.elapsed()
            })
        })
    });
    group.finish();
}

fn fan_out(c: &mut Criterion) {
    let mut group = c.benchmark_group("fan_out");
    configure(&mut group, 10);
    let payload = payload();
    let sizes: &[usize] = if common::quick() {
        &[10, 100]
    } else {
        &[1, 10, 100, 1000]
    };
    for &n in sizes {
        // About the same number of deliveries per iteration at every N.
        let messages = (common::size(100_000, 10_000) / n).max(100);
        group.throughput(Throughput::Elements((messages * n) as u64));

        group.bench_with_input(BenchmarkId::new("crossbeam_loop", n), &n, |b, &n| {
            b.iter_custom(|iters| {
                repeat(iters, || {
                    let (txs, rxs): (Vec<_>, Vec<_>) = (0..n)
                        .map(|_| crossbeam_channel::unbounded::<Arc<str>>())
                        .unzip();
                    let consumers = rxs
                        .into_iter()
                        .map(|rx| move || assert_eq!(rx.iter().take(messages).count(), messages))
                        .collect();
                    timed(consumers, || {
                        for _ in 0..messages {
                            for tx in &txs {
                                tx.send(payload.clone()).unwrap();
                            }
                        }
                    })
                })
            })
        });

        group.bench_with_input(BenchmarkId::new("fanout", n), &n, |b, &n| {
            b.iter_custom(|iters| {
                repeat(iters, || {
                    let broker = Broker::<str>::new();
                    let consumers = (0..n)
                        .map(|_| {
                            let sub = broker.pubsub();
                            sub.subscribe(["fan"]);
                            reads(Box::new(sub), messages)
                        })
                        .collect();
                    timed(consumers, || {
                        for _ in 0..messages {
                            broker.publish("fan", payload.clone());
                        }
                    })
                })
            })
        });

        group.bench_with_input(BenchmarkId::new("tokio_broadcast", n), &n, |b, &n| {
            b.iter_custom(|iters| {
                repeat(iters, || {
                    let (tx, _) = tokio::sync::broadcast::channel::<Arc<str>>(messages);
                    let consumers = (0..n)
                        .map(|_| {
                            let mut rx = tx.subscribe();
                            move || {
                                for _ in 0..messages {
                                    rx.blocking_recv().unwrap();
                                }
                            }
                        })
                        .collect();
                    timed(consumers, || {
                        for _ in 0..messages {
                            tx.send(payload.clone()).unwrap();
                        }
                    })
                })
            })
        });

        group.bench_with_input(BenchmarkId::new("bus", n), &n, |b, &n| {
            b.iter_custom(|iters| {
                repeat(iters, || {
                    let mut bus = bus::Bus::<Arc<str>>::new(1024);
                    let consumers = (0..n)
                        .map(|_| {
                            let mut rx = bus.add_rx();
                            move || {
                                for _ in 0..messages {
                                    rx.recv().unwrap();
                                }
                            }
                        })
                        .collect();
                    timed(consumers, || {
                        for _ in 0..messages {
                            bus.broadcast(payload.clone());
                        }
                    })
                })
            })
        });
    }
    group.finish();
}

fn patterns(c: &mut Criterion) {
    let mut group = c.benchmark_group("patterns");
    configure(&mut group, 20);
    let messages = common::size(20_000, 2_000);
    group.throughput(Throughput::Elements(messages as u64));
    let payload = payload();
    for p in [0usize, 100, 10_000] {
        group.bench_with_input(BenchmarkId::new("fanout", p), &p, |b, &p| {
            let broker = Broker::<str>::new();
            // P patterns that never match, held by a handle that never reads.
            let idle = broker.pubsub();
            let others: Vec<String> = (0..p).map(|i| format!("other.{i}.*")).collect();
            idle.psubscribe(&others);
            b.iter_custom(|iters| {
                repeat(iters, || {
                    let sub = broker.pubsub();
                    sub.psubscribe(["events.*"]);
                    let consumer = reads(Box::new(sub), messages);
                    timed(vec![consumer], || {
                        for _ in 0..messages {
                            broker.publish("events.orders", payload.clone());
                        }
                    })
                })
            })
        });
    }
    group.finish();

    // Cold channels: each publish goes to a channel never published before, so the match
    // cache cannot help and the pattern index does the work.
    let mut group = c.benchmark_group("patterns_cold");
    configure(&mut group, 10);
    let channels = common::size(20_000, 2_000);
    group.throughput(Throughput::Elements(channels as u64));
    let fresh = std::sync::atomic::AtomicU64::new(0);
    let cold = |broker: &Broker<str>, iters: u64| {
        // Names made before the clock starts, never used before by this broker.
        let batches: Vec<Vec<String>> = (0..iters)
            .map(|_| {
                let batch = fresh.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                // Half share the head `metrics.` with a third of the patterns (so their keys
                // are looked up), half share nothing with them; none matches.
                (0..channels)
                    .map(|j| match j % 2 {
                        0 => format!("user.{batch}.{j}.events"),
                        _ => format!("metrics.x{batch}.{j}"),
                    })
                    .collect()
            })
            .collect();
        let started = Instant::now();
        for batch in &batches {
            for channel in batch {
                black_box(broker.publish(channel, "x"));
            }
        }
        started.elapsed()
    };
    for p in [0usize, 10_000, 100_000] {
        group.bench_with_input(BenchmarkId::new("fanout", p), &p, |b, &p| {
            let broker = Broker::<str>::new();
            // P patterns that never match, of three shapes: a literal head, a literal tail,
            // a literal after a `?`.
            let idle = broker.pubsub();
            let patterns: Vec<String> = (0..p).map(common::idle_pattern).collect();
            idle.psubscribe(&patterns);
            b.iter_custom(|iters| cold(&broker, iters));
        });
    }
    // 1,000 patterns with no literal byte at all: the residual list every channel scans.
    group.bench_function(BenchmarkId::new("residual", 1000), |b| {
        let broker = Broker::<str>::new();
        let idle = broker.pubsub();
        let members = "abcdefghijklmnopqrstuvwxyz0123456789".as_bytes();
        let patterns: Vec<String> = (0..1000)
            .map(|i| {
                let (x, y) = (members[i % 36] as char, members[i / 36] as char);
                format!("[^u][{x}{y}]*")
            })
            .collect();
        idle.psubscribe(&patterns);
        b.iter_custom(|iters| cold(&broker, iters));
    });
    group.finish();

    // Keeping the index up to date with 100,000 patterns subscribed.
    let mut group = c.benchmark_group("pattern_upkeep");
    configure(&mut group, 10);
    let existing = common::size(100_000, 10_000);
    let pattern = common::idle_pattern;
    // One more pattern, then the same with 10,000 publishers (`Broker::publisher`) whose
    // matching status each new pattern is counted for.
    let publishers = common::size(10_000, 1_000);
    for (name, with) in [
        ("psubscribe_one_more", 0),
        ("psubscribe_one_more_with_publishers", publishers),
    ] {
        group.bench_function(BenchmarkId::new(name, existing), |b| {
            let broker = Broker::<str>::new();
            let idle = broker.pubsub();
            idle.psubscribe((0..existing).map(pattern));
            let feeds: Vec<_> = (0..with)
                .map(|i| broker.publisher(&common::idle_channel(i)))
                .collect();
            let next = std::sync::atomic::AtomicUsize::new(existing);
            b.iter_custom(|iters| {
                let sub = broker.pubsub();
                let names: Vec<String> = (0..iters)
                    .map(|_| pattern(next.fetch_add(1, std::sync::atomic::Ordering::Relaxed)))
                    .collect();
                let started = Instant::now();
                for name in &names {
                    sub.psubscribe(name.as_str());
                }
                let elapsed = started.elapsed();
                drop(sub); // back to `existing` patterns, untimed
                elapsed
            });
            drop(feeds);
        });
    }
    group.bench_function(BenchmarkId::new("punsubscribe_all", existing), |b| {
        let broker = Broker::<str>::new();
        b.iter_custom(|iters| {
            let mut elapsed = Duration::ZERO;
            for _ in 0..iters {
                let sub = broker
                    .pubsub_builder()
                    .ignore_subscribe_messages(true)
                    .build();
                sub.psubscribe((0..existing).map(pattern));
                let started = Instant::now();
                sub.punsubscribe_all();
                elapsed += started.elapsed();
            }
            elapsed
        });
    });
    group.finish();

    // The matcher on hostile input: polynomial, whatever the pattern.
    let mut group = c.benchmark_group("glob");
    configure(&mut group, 20);
    let channel = "a".repeat(10_000);
    for pattern in ["a*a*a*a*a*a*a*a*a*a*b", "*a*a*a*a*a*a*a*a*a*a"] {
        group.bench_with_input(BenchmarkId::new("10k_a", pattern), pattern, |b, p| {
            b.iter(|| glob_match(black_box(p), &channel))
        });
    }
    group.finish();
}

/// A reproducible random sequence (64-bit LCG), so runs are comparable.
fn random_indices(n: usize, below: usize) -> Vec<usize> {
    let mut x: u64 = 0x2545_f491_4f6c_dd1d;
    (0..n)
        .map(|_| {
            x = x
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            (x >> 33) as usize % below
        })
        .collect()
}

fn many_channels(c: &mut Criterion) {
    const CONSUMERS: usize = 8;
    let channels = common::size(100_000, 10_000);
    let messages = common::size(50_000, 5_000);
    let names: Vec<String> = (0..channels).map(|i| format!("channel.{i}")).collect();
    let order = random_indices(messages, channels);
    let mut group = c.benchmark_group("many_channels");
    configure(&mut group, 10);
    group.throughput(Throughput::Elements(messages as u64));
    let payload = payload();
    // Channel i belongs to consumer i % CONSUMERS, so each channel has one subscriber.
    let per_consumer = |k: usize| order.iter().filter(|&&i| i % CONSUMERS == k).count();

    group.bench_function("hashmap_of_crossbeam", |b| {
        let (txs, rxs): (Vec<_>, Vec<_>) = (0..CONSUMERS)
            .map(|_| crossbeam_channel::unbounded::<Arc<str>>())
            .unzip();
        let routes: HashMap<&str, &crossbeam_channel::Sender<Arc<str>>> = names
            .iter()
            .enumerate()
            .map(|(i, n)| (n.as_str(), &txs[i % CONSUMERS]))
            .collect();
        b.iter_custom(|iters| {
            repeat(iters, || {
                let consumers = rxs
                    .iter()
                    .cloned()
                    .enumerate()
                    .map(|(k, rx)| {
                        let expect = per_consumer(k);
                        move || assert_eq!(rx.iter().take(expect).count(), expect)
                    })
                    .collect();
                timed(consumers, || {
                    for &i in &order {
                        routes[names[i].as_str()].send(payload.clone()).unwrap();
                    }
                })
            })
        })
    });

    group.bench_function("fanout", |b| {
        // Subscribing 100,000 channels takes longer than publishing to them: do it once.
        let broker = Broker::<str>::new();
        let subs: Vec<Arc<fanout::PubSub<str>>> = (0..CONSUMERS)
            .map(|k| {
                let sub = broker.pubsub();
                sub.subscribe(names.iter().skip(k).step_by(CONSUMERS));
                while sub.get_message(Duration::ZERO).is_some() {}
                Arc::new(sub)
            })
            .collect();
        b.iter_custom(|iters| {
            repeat(iters, || {
                let consumers = subs
                    .iter()
                    .enumerate()
                    .map(|(k, sub)| reads(sub.clone(), per_consumer(k)))
                    .collect();
                timed(consumers, || {
                    for &i in &order {
                        broker.publish(&names[i], payload.clone());
                    }
                })
            })
        })
    });
    group.finish();
}

fn contention(c: &mut Criterion) {
    let mut group = c.benchmark_group("contention");
    configure(&mut group, 20);
    let per_publisher = common::size(20_000, 2_000);
    let payload = payload();
    for (name, publishers, same) in [
        ("one_publisher", 1, false),
        ("two_publishers_distinct", 2, false),
        ("two_publishers_same", 2, true),
    ] {
        group.throughput(Throughput::Elements((per_publisher * publishers) as u64));
        group.bench_function(name, |b| {
            b.iter_custom(|iters| {
                repeat(iters, || {
                    let broker = Broker::<str>::new();
                    let channels: Vec<String> = (0..publishers)
                        .map(|p| {
                            if same {
                                "shared".into()
                            } else {
                                format!("ch.{p}")
                            }
                        })
                        .collect();
                    let consumers: Vec<_> = (0..publishers)
                        .map(|p| {
                            let sub = broker.pubsub();
                            sub.subscribe([&channels[p]]);
                            let expect = if same {
                                per_publisher * publishers
                            } else {
                                per_publisher
                            };
                            reads(Box::new(sub), expect)
                        })
                        .collect();
                    timed(consumers, || {
                        thread::scope(|s| {
                            for channel in &channels {
                                let (broker, payload) = (&broker, &payload);
                                s.spawn(move || {
                                    for _ in 0..per_publisher {
                                        broker.publish(channel, payload.clone());
                                    }
                                });
                            }
                        })
                    })
                })
            })
        });
    }
    // The same publishers with no reader threads: each handle's queue is read after the
    // clock stops, so only the publishers compete for the two cores (and their caches).
    for (name, publishers) in [
        ("one_publisher_unread", 1),
        ("two_publishers_distinct_unread", 2),
    ] {
        group.throughput(Throughput::Elements((per_publisher * publishers) as u64));
        group.bench_function(name, |b| {
            b.iter_custom(|iters| {
                repeat(iters, || {
                    let broker = Broker::<str>::new();
                    let channels: Vec<String> =
                        (0..publishers).map(|p| format!("ch.{p}")).collect();
                    let subs: Vec<_> = channels
                        .iter()
                        .map(|channel| {
                            let sub = broker.pubsub();
                            sub.subscribe([channel]);
                            sub
                        })
                        .collect();
                    let start = Arc::new(Barrier::new(publishers + 1));
                    let elapsed = thread::scope(|s| {
                        let handles: Vec<_> = channels
                            .iter()
                            .map(|channel| {
                                // A payload of its own, so the publishers share no count.
                                let payload: Arc<str> = Arc::from(&*payload);
                                let (broker, start) = (&broker, start.clone());
                                s.spawn(move || {
                                    start.wait();
                                    let began = Instant::now();
                                    for _ in 0..per_publisher {
                                        broker.publish(channel, payload.clone());
                                    }
                                    (began, Instant::now())
                                })
                            })
                            .collect();
                        start.wait();
                        // The publishers time themselves: with two of them on two cores,
                        // this thread may not run again until they are done, so a clock
                        // read here would miss their work.
                        let spans: Vec<_> =
                            handles.into_iter().map(|h| h.join().unwrap()).collect();
                        let first = spans.iter().map(|s| s.0).min().unwrap();
                        let last = spans.iter().map(|s| s.1).max().unwrap();
                        last - first
                    });
                    for sub in subs {
                        assert_eq!(sub.stats().queued, per_publisher + 1);
                    }
                    elapsed
                })
            })
        });
    }
    group.finish();
}

criterion_group!(
    benches,
    one_to_one,
    fan_out,
    patterns,
    many_channels,
    contention
);
criterion_main!(benches);
