//! Publishing through Redis on loopback (feature `redis`): a bridged broker next to the
//! `redis` crate alone and redis-py, each with one publisher and one subscriber in another
//! connection, every message received before the clock stops.
//!
//! `cargo bench --features redis --bench bridge`; `python3 benches/report.py` adds the table.

use std::hint::black_box;
use std::process::Command;
use std::sync::{Arc, Barrier};
use std::thread;
use std::time::{Duration, Instant};

use criterion::measurement::WallTime;
use criterion::{criterion_group, criterion_main, BenchmarkGroup, Criterion, Throughput};
use fanout::{Bridge, Broker, Route};

mod common;
#[allow(dead_code)]
#[path = "../tests/common/redis.rs"]
mod redis_server;

fn configure(group: &mut BenchmarkGroup<'_, WallTime>) {
    let (warm_up, measure) = if common::quick() {
        (200, 800)
    } else {
        (1_000, 5_000)
    };
    group
        .sample_size(10)
        .warm_up_time(Duration::from_millis(warm_up))
        .measurement_time(Duration::from_millis(measure));
}

fn repeat(iters: u64, mut once: impl FnMut() -> Duration) -> Duration {
    (0..iters).map(|_| once()).sum()
}

const PAYLOAD: &str = "a payload of about forty bytes, shared";

fn bridged(c: &mut Criterion) {
    let Some(server) = redis_server::Server::start() else {
        println!("bridged skipped: redis-server is not installed");
        return;
    };
    let url = server.url();
    let mut group = c.benchmark_group("bridged");
    configure(&mut group);

    // Two brokers, as two processes would be: A publishes, B's handle receives via Redis.
    for (name, route) in [
        ("fanout_bridge", Route::ViaRedis),
        ("fanout_bridge_local_first", Route::LocalFirst),
    ] {
        let messages = common::size(20_000, 2_000);
        group.throughput(Throughput::Elements(messages as u64));
        let (a, b) = (Broker::<str>::new(), Broker::<str>::new());
        let bridge_a = Bridge::builder(&a, &url).route(route).connect().unwrap();
        let bridge_b = Bridge::connect(&b, &url).unwrap();
        let sub = b.pubsub_builder().ignore_subscribe_messages(true).build();
        sub.subscribe(["bench"]);
        assert!(bridge_b.flush(Duration::from_secs(10)));
        let payload: Arc<str> = Arc::from(PAYLOAD);
        group.bench_function(name, |bench| {
            bench.iter_custom(|iters| {
                repeat(iters, || {
                    let began = Instant::now();
                    for _ in 0..messages {
                        a.publish("bench", payload.clone());
                    }
                    for _ in 0..messages {
                        let message = sub.get_message(Duration::from_secs(30)).unwrap();
                        black_box(message);
                    }
                    began.elapsed()
                })
            })
        });
        drop((bridge_a, bridge_b));
    }

    // The redis crate alone: PUBLISH and wait for its reply, then the next (what redis-py's
    // `r.publish` does too).
    let messages = common::size(2_000, 200);
    group.throughput(Throughput::Elements(messages as u64));
    group.bench_function("redis_crate", |bench| {
        bench.iter_custom(|iters| {
            repeat(iters, || {
                with_redis_subscriber(&url, messages, |publisher| {
                    for _ in 0..messages {
                        let n: usize = redis::cmd("PUBLISH")
                            .arg("bench")
                            .arg(PAYLOAD)
                            .query(publisher)
                            .unwrap();
                        assert_eq!(n, 1);
                    }
                })
            })
        })
    });

    // The same with a pipeline of 256 PUBLISHes per round trip, as the bridge sends them.
    let messages = common::size(20_000, 2_000);
    group.throughput(Throughput::Elements(messages as u64));
    group.bench_function("redis_crate_pipelined", |bench| {
        bench.iter_custom(|iters| {
            repeat(iters, || {
                with_redis_subscriber(&url, messages, |publisher| {
                    for chunk in (0..messages).collect::<Vec<_>>().chunks(256) {
                        let mut pipe = redis::pipe();
                        for _ in chunk {
                            pipe.cmd("PUBLISH").arg("bench").arg(PAYLOAD);
                        }
                        let replies: Vec<usize> = pipe.query(publisher).unwrap();
                        assert!(replies.iter().all(|&n| n == 1));
                    }
                })
            })
        })
    });

    // redis-py, timed by the script itself (interpreter start-up excluded).
    let python_ok = Command::new("python3")
        .args(["-c", "import redis"])
        .status()
        .is_ok_and(|s| s.success());
    if python_ok {
        let messages = common::size(2_000, 200);
        group.throughput(Throughput::Elements(messages as u64));
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../benches/redis_py_pubsub.py");
        group.bench_function("redis_py", |bench| {
            bench.iter_custom(|iters| {
                repeat(iters, || {
                    let output = Command::new("python3")
                        .args([script, &messages.to_string()])
                        .env("REDIS_PORT", server.port.to_string())
                        .output()
                        .expect("python3 runs");
                    assert!(output.status.success(), "{output:?}");
                    let seconds: f64 = String::from_utf8_lossy(&output.stdout)
                        .trim()
                        .parse()
                        .expect("seconds");
                    Duration::from_secs_f64(seconds)
                })
            })
        });
    } else {
        println!("bridged/redis_py skipped: `pip install redis` to run it");
    }
    group.finish();
}

/// Times `publish` on a redis crate connection until a subscriber on another connection (and
/// thread) has read `messages` messages from `bench`.
fn with_redis_subscriber(
    url: &str,
    messages: usize,
    publish: impl FnOnce(&mut redis::Connection),
) -> Duration {
    let client = redis::Client::open(url).unwrap();
    let mut publisher = client.get_connection().unwrap();
    let mut subscriber = client.get_connection().unwrap();
    let ready = Arc::new(Barrier::new(2));
    let subscribed = ready.clone();
    let consumer = thread::spawn(move || {
        let mut pubsub = subscriber.as_pubsub();
        pubsub.subscribe("bench").unwrap();
        subscribed.wait();
        for _ in 0..messages {
            black_box(pubsub.get_message().unwrap().get_payload_bytes().len());
        }
    });
    ready.wait();
    let began = Instant::now();
    publish(&mut publisher);
    consumer.join().unwrap();
    began.elapsed()
}

/// What a handle's subscription change costs: `subscribe` then `unsubscribe` of a channel
/// another local handle holds (so Redis's subscriptions do not change), on a broker with no
/// bridge and on a bridged one (each change waits for its place in Redis's order: a round
/// trip on the subscription connection), next to a `PING` round trip with the `redis` crate.
fn subscription_change(c: &mut Criterion) {
    let Some(server) = redis_server::Server::start() else {
        println!("subscription_change skipped: redis-server is not installed");
        return;
    };
    let url = server.url();
    let mut group = c.benchmark_group("subscription_change");
    configure(&mut group);
    let changes = common::size(1_000, 100);
    group.throughput(Throughput::Elements(2 * changes as u64));
    let plain = Broker::<str>::new();
    let bridged = Broker::<str>::new();
    let bridge = Bridge::connect(&bridged, &url).unwrap();
    for (name, broker) in [("unbridged", &plain), ("bridged", &bridged)] {
        let holder = broker.pubsub();
        holder.subscribe("held");
        assert!(bridge.flush(Duration::from_secs(10)));
        let sub = broker
            .pubsub_builder()
            .ignore_subscribe_messages(true)
            .build();
        group.bench_function(name, |bench| {
            bench.iter(|| {
                for _ in 0..changes {
                    sub.subscribe("held");
                    sub.unsubscribe("held");
                }
            })
        });
    }
    let client = redis::Client::open(url.as_str()).unwrap();
    let mut connection = client.get_connection().unwrap();
    group.bench_function("redis_crate_ping", |bench| {
        bench.iter(|| {
            for _ in 0..2 * changes {
                let pong: String = redis::cmd("PING").query(&mut connection).unwrap();
                black_box(pong);
            }
        })
    });
    group.finish();
    drop(bridge);
}

criterion_group!(benches, bridged, subscription_change);
criterion_main!(benches);
