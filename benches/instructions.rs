//! Instructions per operation, for fanout and raw crossbeam-channel side by side: a plain
//! program that sets up one case, runs exactly `n` operations inside `measured_ops` (the only
//! code callgrind counts, through `--toggle-collect=*measured_ops*`), then checks and cleans
//! up outside it.
//!
//! `python3 benches/instructions.py` builds it, runs every case under callgrind at two sizes
//! and prints the table. By hand: `instructions <case> <n>`, cases as in `CASES`.
//!
//! Besides fanout and raw crossbeam, `sketch_publish` and `sketch_read` run [`sketch`]: the
//! least a publish and a read of this design can do (a seeded hash, a stripe lock, a table
//! lookup, a crossbeam send of a slot number and the payload, a counter and a fence; a
//! receive and the slot's name cloned under a lock), as a floor to read the other rows
//! against.

use std::hint::black_box;
use std::sync::Arc;
use std::time::Duration;

use crossbeam_channel::{Receiver, Sender};
use fanout::{Broker, Message, PubSub};

const CASES: [&str; 14] = [
    "fanout_publish_unbounded",
    "fanout_publisher_unbounded",
    "fanout_publisher_fan10",
    "crossbeam_send_unbounded",
    "fanout_read_unbounded",
    "crossbeam_read_unbounded",
    "fanout_publish_bounded",
    "crossbeam_send_bounded",
    "fanout_read_bounded",
    "crossbeam_read_bounded",
    "fanout_publish_fan10",
    "crossbeam_send_fan10",
    "sketch_publish",
    "sketch_read",
];

const CHANNEL: &str = "ch";
const FAN: usize = 10;

/// The measured loop: callgrind's `--toggle-collect` matches this name, so it must stay out
/// of line and be the only caller of the operations measured. Returns how many succeeded.
#[inline(never)]
fn measured_ops<F: FnMut() -> bool>(n: usize, mut op: F) -> usize {
    let mut ok = 0;
    for _ in 0..n {
        ok += usize::from(op());
    }
    ok
}

/// A handle subscribed to `CHANNEL`, bounded to `capacity` when given, its confirmation read.
fn subscriber(broker: &Broker<str>, capacity: Option<usize>) -> PubSub<str> {
    let sub = match capacity {
        Some(cap) => broker.pubsub_builder().capacity(cap).build(),
        None => broker.pubsub(),
    };
    assert_eq!(sub.capacity(), capacity);
    sub.subscribe(CHANNEL);
    let confirmation = sub.get_message(Duration::ZERO);
    assert!(matches!(confirmation, Some(Message::Subscribe { .. })));
    sub
}

/// Reads `sub` empty, returning the number of payload messages it held.
fn drain(sub: &PubSub<str>) -> usize {
    std::iter::from_fn(|| sub.get_message(Duration::ZERO))
        .filter(|m| m.payload().is_some())
        .count()
}

fn is_message(m: Option<Message<str>>) -> bool {
    matches!(m, Some(Message::Message { .. }))
}

fn fanout_publish(n: usize, capacity: Option<usize>, handles: usize, payload: &Arc<str>) {
    let broker = Broker::<str>::new();
    let subs: Vec<_> = (0..handles)
        .map(|_| subscriber(&broker, capacity))
        .collect();
    let ok = measured_ops(n, || {
        black_box(broker.publish(black_box(CHANNEL), payload.clone())) == handles
    });
    assert_eq!(ok, n);
    for sub in &subs {
        assert_eq!(drain(sub), n);
    }
}

/// `fanout_publish` through a `Publisher` of the channel.
fn fanout_publisher(n: usize, handles: usize, payload: &Arc<str>) {
    let broker = Broker::<str>::new();
    let subs: Vec<_> = (0..handles).map(|_| subscriber(&broker, None)).collect();
    let publisher = broker.publisher(CHANNEL);
    let ok = measured_ops(n, || {
        black_box(black_box(&publisher).publish(payload.clone())) == handles
    });
    assert_eq!(ok, n);
    for sub in &subs {
        assert_eq!(drain(sub), n);
    }
}

fn fanout_read(n: usize, capacity: Option<usize>, payload: &Arc<str>) {
    let broker = Broker::<str>::new();
    let sub = subscriber(&broker, capacity);
    for _ in 0..n {
        assert_eq!(broker.publish(CHANNEL, payload.clone()), 1);
    }
    let ok = measured_ops(n, || is_message(black_box(sub.get_message(Duration::ZERO))));
    assert_eq!(ok, n);
    assert_eq!(drain(&sub), 0);
}

fn channel(capacity: Option<usize>) -> (Sender<Arc<str>>, Receiver<Arc<str>>) {
    match capacity {
        Some(cap) => crossbeam_channel::bounded(cap),
        None => crossbeam_channel::unbounded(),
    }
}

fn crossbeam_send(n: usize, capacity: Option<usize>, queues: usize, payload: &Arc<str>) {
    let (txs, rxs): (Vec<_>, Vec<_>) = (0..queues).map(|_| channel(capacity)).unzip();
    let ok = measured_ops(n, || {
        txs.iter()
            .all(|tx| black_box(tx.send(payload.clone())).is_ok())
    });
    assert_eq!(ok, n);
    for rx in &rxs {
        assert_eq!(rx.try_iter().count(), n);
    }
}

fn crossbeam_read(n: usize, capacity: Option<usize>, payload: &Arc<str>) {
    let (tx, rx) = channel(capacity);
    for _ in 0..n {
        tx.send(payload.clone()).unwrap();
    }
    let ok = measured_ops(n, || black_box(rx.try_recv()).is_ok());
    assert_eq!(ok, n);
    assert!(rx.try_recv().is_err());
}

/// The floor of this design, in a few lines: what every publish and read here must do.
mod sketch {
    use std::hash::BuildHasher;
    use std::sync::atomic::{fence, AtomicBool, AtomicU64, Ordering};
    use std::sync::Arc;

    use crossbeam_channel::Sender;
    use hashbrown::HashTable;
    use parking_lot::Mutex;

    pub struct Subscriber {
        pub tx: Sender<(u32, Arc<str>)>,
        delivered: AtomicU64,
        waiting: AtomicBool,
    }

    struct Channel {
        name: Arc<str>,
        subscribers: Vec<(u32, Arc<Subscriber>)>,
    }

    pub struct Broker {
        hasher: foldhash::fast::RandomState,
        stripes: Box<[Mutex<HashTable<Channel>>; 64]>,
    }

    impl Broker {
        /// A broker with one channel, `name`, and one subscriber sending into `tx`.
        pub fn with_one(name: &str, tx: Sender<(u32, Arc<str>)>) -> Self {
            let hasher = foldhash::fast::RandomState::default();
            let broker = Broker {
                hasher,
                stripes: Box::new(std::array::from_fn(|_| Mutex::new(HashTable::new()))),
            };
            let subscriber = Arc::new(Subscriber {
                tx,
                delivered: AtomicU64::new(0),
                waiting: AtomicBool::new(false),
            });
            let hash = hasher.hash_one(name);
            let channel = Channel {
                name: Arc::from(name),
                subscribers: vec![(0, subscriber)],
            };
            let rehash = |c: &Channel| hasher.hash_one(&*c.name);
            broker.stripes[hash as usize & 63]
                .lock()
                .insert_unique(hash, channel, rehash);
            broker
        }

        pub fn publish(&self, channel: &str, payload: Arc<str>) -> usize {
            let hash = self.hasher.hash_one(channel);
            let map = self.stripes[hash as usize & 63].lock();
            let Some(found) = map.find(hash, |c| &*c.name == channel) else {
                return 0;
            };
            let (last, others) = found.subscribers.split_last().expect("one at least");
            let mut delivered = 0;
            for (slot, subscriber) in others {
                if subscriber.tx.send((*slot, payload.clone())).is_ok() {
                    subscriber.delivered.fetch_add(1, Ordering::Relaxed);
                    delivered += 1;
                }
            }
            if last.1.tx.send((last.0, payload)).is_ok() {
                last.1.delivered.fetch_add(1, Ordering::Relaxed);
                delivered += 1;
            }
            fence(Ordering::SeqCst);
            let waiting = found.subscribers.iter();
            assert!(!waiting
                .into_iter()
                .any(|s| s.1.waiting.load(Ordering::SeqCst)));
            delivered
        }
    }
}

fn sketch_publish(n: usize, payload: &Arc<str>) {
    let (tx, rx) = crossbeam_channel::unbounded();
    let broker = sketch::Broker::with_one(CHANNEL, tx);
    let ok = measured_ops(n, || {
        black_box(broker.publish(black_box(CHANNEL), payload.clone())) == 1
    });
    assert_eq!(ok, n);
    assert_eq!(rx.try_iter().count(), n);
}

fn sketch_read(n: usize, payload: &Arc<str>) {
    let (tx, rx) = crossbeam_channel::unbounded::<(u32, Arc<str>)>();
    for _ in 0..n {
        tx.send((0, payload.clone())).unwrap();
    }
    let names = parking_lot::Mutex::new(vec![Arc::<str>::from(CHANNEL)]);
    let ok = measured_ops(n, || {
        let names = names.lock();
        let read = rx
            .try_recv()
            .map(|(slot, p)| (names[slot as usize].clone(), p));
        drop(names);
        black_box(read).is_ok()
    });
    assert_eq!(ok, n);
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.iter().all(|a| a.starts_with("--")) {
        // `cargo bench` runs every bench with `--bench`: this one is run by its script.
        println!("instructions: run by `python3 benches/instructions.py` (it needs valgrind)");
        return;
    }
    let (case, n) = match args.as_slice() {
        [case, n] if CASES.contains(&case.as_str()) => {
            (case.as_str(), n.parse::<usize>().expect("n: a count"))
        }
        _ => {
            eprintln!("usage: instructions <case> <n>\ncases: {}", CASES.join(" "));
            std::process::exit(2);
        }
    };
    let payload: Arc<str> = Arc::from("a payload of about forty bytes, shared");
    // Room for every message and the confirmation: a bounded queue never fills.
    let cap = Some(n + 16);
    match case {
        "fanout_publish_unbounded" => fanout_publish(n, None, 1, &payload),
        "fanout_publisher_unbounded" => fanout_publisher(n, 1, &payload),
        "fanout_publisher_fan10" => fanout_publisher(n, FAN, &payload),
        "crossbeam_send_unbounded" => crossbeam_send(n, None, 1, &payload),
        "fanout_read_unbounded" => fanout_read(n, None, &payload),
        "crossbeam_read_unbounded" => crossbeam_read(n, None, &payload),
        "fanout_publish_bounded" => fanout_publish(n, cap, 1, &payload),
        "crossbeam_send_bounded" => crossbeam_send(n, cap, 1, &payload),
        "fanout_read_bounded" => fanout_read(n, cap, &payload),
        "crossbeam_read_bounded" => crossbeam_read(n, cap, &payload),
        "fanout_publish_fan10" => fanout_publish(n, None, FAN, &payload),
        "crossbeam_send_fan10" => crossbeam_send(n, None, FAN, &payload),
        "sketch_publish" => sketch_publish(n, &payload),
        "sketch_read" => sketch_read(n, &payload),
        _ => unreachable!(),
    }
}
