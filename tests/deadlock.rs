//! No deadlock: publish, subscribe, unsubscribe, drop, close and broker close run concurrently
//! in a loop, over every policy, while a watchdog fails the test if progress stops for 10 s.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use fanout::{Broker, Overflow, PubSub};

const ROUNDS: u64 = 30;
const WORKERS: u64 = 6;

fn handle(broker: &Broker<u64>, n: u64) -> PubSub<u64> {
    let builder = broker.pubsub_builder().capacity((n % 4) as usize);
    match n % 5 {
        0 => broker.pubsub_builder().unbounded().build(),
        1 => builder.overflow(Overflow::Block).build(),
        2 => builder.overflow(Overflow::DropNewest).build(),
        3 => builder.overflow(Overflow::DropOldest).build(),
        _ => builder.overflow(Overflow::Disconnect).build(),
    }
}

/// One worker's loop: a mix of every operation on a shared broker.
fn work(broker: Broker<u64>, id: u64, progress: Arc<AtomicU64>, stop: Arc<AtomicBool>) {
    let mut n = id;
    let mut held: Vec<PubSub<u64>> = Vec::new();
    while !stop.load(Ordering::Relaxed) {
        n = n
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let channel = ["a", "b", "ab"][(n >> 33) as usize % 3];
        match (n >> 40) % 10 {
            0 | 1 => {
                let sub = handle(&broker, n >> 20);
                sub.subscribe([channel]);
                if n & 1 == 0 {
                    sub.psubscribe(["a*"]);
                }
                if sub.overflow() != Some(Overflow::Block) {
                    sub.subscribe(["free"]); // plain `publish` below never waits on it
                }
                held.push(sub);
            }
            2 => {
                if let Some(sub) = held.pop() {
                    sub.unsubscribe([channel]);
                    sub.punsubscribe_all();
                    held.insert(0, sub);
                }
            }
            3 => drop(held.pop()),
            4 => {
                if let Some(sub) = held.first() {
                    sub.close();
                }
            }
            5 => {
                // Read a little, so Block publishers make progress, as a real reader would.
                for sub in &held {
                    for _ in 0..4 {
                        sub.get_message(Duration::ZERO);
                    }
                }
            }
            6 => {
                let _ = broker.publish_timeout(channel, n, Duration::from_millis(2));
            }
            7 => {
                broker.publish("free", n);
            }
            _ => {
                let _ = broker.try_publish(channel, n);
            }
        }
        // Never hold a never-read Block handle for long: it would stall `publish_timeout`
        // callers (by design, up to their timeout) and slow the loop down.
        if held.len() > 4 {
            drop(held.remove(0));
        }
        progress.fetch_add(1, Ordering::Relaxed);
    }
}

#[test]
fn concurrent_operations_never_deadlock() {
    let progress = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    for round in 0..ROUNDS {
        let broker = Broker::<u64>::new();
        let stop = Arc::new(AtomicBool::new(false));
        // Plain threads, not scoped: if they hang, the failing test still ends the process.
        let workers: Vec<_> = (0..WORKERS)
            .map(|w| {
                let (broker, progress, stop) = (broker.clone(), progress.clone(), stop.clone());
                thread::spawn(move || work(broker, round * WORKERS + w, progress, stop))
            })
            .collect();
        let mut last = (progress.load(Ordering::Relaxed), Instant::now());
        let round_end = Instant::now() + Duration::from_millis(100);
        while Instant::now() < round_end || !workers.iter().all(|w| w.is_finished()) {
            if Instant::now() >= round_end {
                stop.store(true, Ordering::Relaxed);
                if round % 3 == 0 {
                    broker.close(); // also releases anyone waiting for room
                }
            }
            thread::sleep(Duration::from_millis(5));
            let now = progress.load(Ordering::Relaxed);
            if now != last.0 {
                last = (now, Instant::now());
            }
            let stalled = last.1.elapsed();
            let finished = workers.iter().all(|w| w.is_finished());
            assert!(
                finished || stalled < Duration::from_secs(10),
                "no progress for {stalled:?} in round {round}: deadlock"
            );
        }
        for worker in workers {
            worker.join().expect("worker panicked");
        }
    }
    println!(
        "{} operations in {ROUNDS} rounds of {WORKERS} threads, {:.2?}",
        progress.load(Ordering::Relaxed),
        started.elapsed()
    );
}

/// A payload whose `Drop` calls the broker (subscribes a pattern, publishes): the last
/// reference may be dropped by a publish that delivered it nowhere (a pattern exists that does
/// not match; a full `DropNewest` queue refused it; the history let go of it), which must hold
/// no lock by then.
#[test]
fn a_payload_whose_drop_calls_the_broker_is_dropped_with_no_lock_held() {
    use std::sync::OnceLock;

    struct CallsBack(Arc<OnceLock<Broker<CallsBack>>>);

    impl Drop for CallsBack {
        fn drop(&mut self) {
            if let Some(broker) = self.0.get() {
                let sub = broker.pubsub();
                sub.psubscribe("from.drop.*");
                broker.publish("from.drop", CallsBack(Arc::new(OnceLock::new())));
            }
        }
    }

    let brokers = [
        Broker::<CallsBack>::new(),
        Broker::<CallsBack>::builder().history(1, 1).build(),
    ];
    for broker in brokers {
        let slot = Arc::new(OnceLock::new());
        let _ = slot.set(broker.clone());
        let other = broker.pubsub();
        other.psubscribe("zzz*"); // a pattern that matches nothing published here
        let full = broker
            .pubsub_builder()
            .capacity(0)
            .overflow(Overflow::DropNewest)
            .build();
        full.subscribe("refused");
        let done = {
            let (broker, slot) = (broker.clone(), slot.clone());
            move || {
                broker.publish("nobody", CallsBack(slot.clone()));
                broker.publish("refused", CallsBack(slot.clone()));
                for n in 0..3 {
                    broker.publish(&format!("kept.{n}"), CallsBack(slot.clone()));
                }
            }
        };
        let (tx, rx) = std::sync::mpsc::channel();
        thread::spawn(move || {
            done();
            let _ = tx.send(());
        });
        if rx.recv_timeout(Duration::from_secs(10)).is_err() {
            // Dropping the handles would wait for the lock the stuck publish holds.
            std::mem::forget((other, full, broker));
            panic!("a publish deadlocked in its payload's drop");
        }
    }
}
