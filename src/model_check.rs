//! Model checks of the wait/wake protocols with loom: every interleaving of the threads
//! involved (up to the preemption bound `LOOM_MAX_PREEMPTIONS`), each with every ordering
//! the memory model allows. A lost wake-up shows as a deadlock (a thread waiting that
//! nothing will wake), which loom reports.
//!
//! ```text
//! RUSTFLAGS="--cfg loom" LOOM_MAX_PREEMPTIONS=5 cargo test -p fanout --release --features async --lib model_check -- --nocapture
//! ```
//!
//! Each model runs the crate's own code for its protocol, with loom's primitives standing in
//! through `sync.rs`; only what surrounds it (the queue) is a small model: crossbeam-channel
//! is not loom-aware. Each test prints how many interleavings it explored.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicUsize as StdAtomicUsize, Ordering::Relaxed as StdRelaxed};
use std::task::{Wake, Waker};
use std::time::Duration;

use loom::sync::Arc;
use loom::thread;

use crate::inbox::{next_while_subscribed, Nothing};
use crate::room::Room;
use crate::sync::{AtomicBool, AtomicUsize, Condvar, Mutex, Ordering};
use crate::wait::Wait;

/// Runs `model` under loom and prints how many interleavings it explored.
fn explore(name: &str, model: impl Fn() + Sync + Send + 'static) {
    static RUNS: StdAtomicUsize = StdAtomicUsize::new(0);
    let start = RUNS.load(StdRelaxed);
    let model = std::sync::Arc::new(model);
    let counted = std::sync::Arc::clone(&model);
    loom::model(move || {
        RUNS.fetch_add(1, StdRelaxed);
        counted();
    });
    let runs = RUNS.load(StdRelaxed) - start;
    println!("model_check: {name}: {runs} interleavings explored");
}

/// A waker that records that it was woken.
struct Flag(AtomicBool);

impl Wake for Flag {
    fn wake(self: std::sync::Arc<Self>) {
        self.0.store(true, Ordering::SeqCst);
    }
}

fn flag() -> (std::sync::Arc<Flag>, Waker) {
    let flag = std::sync::Arc::new(Flag(AtomicBool::new(false)));
    (flag.clone(), Waker::from(flag))
}

/// The reader wake slot (`wake.rs`): a reader (a stream, or a thread before it parks) that
/// looks at its queue, registers its waker and looks again, against publishers that queue
/// and then take the wakers and wake them. Whenever the reader ends up waiting, it was
/// woken. The queue is a counter used with `Relaxed` only, so the slot's own fences must
/// carry the ordering.
#[test]
fn reader_wake_loses_no_wake_up() {
    use crate::wake::ReaderWake;
    for publishers in [1, 2] {
        explore(
            &format!("reader wake, {publishers} publisher(s)"),
            move || {
                let wake = Arc::new(ReaderWake::default());
                let queued = Arc::new(AtomicUsize::new(0));
                let threads: Vec<_> = (0..publishers)
                    .map(|_| {
                        let (wake, queued) = (wake.clone(), queued.clone());
                        thread::spawn(move || {
                            queued.fetch_add(1, Ordering::Relaxed);
                            wake.wake();
                        })
                    })
                    .collect();
                let (woken, waker) = flag();
                // `MessageStream::poll_next`: look, register, look again.
                let ready = queued.load(Ordering::Relaxed) > 0 || {
                    wake.register(0, &waker);
                    queued.load(Ordering::Relaxed) > 0
                };
                for thread in threads {
                    thread.join().unwrap();
                }
                assert!(
                    ready || woken.0.load(Ordering::SeqCst),
                    "a wake-up was lost"
                );
            },
        );
    }
}

/// A bounded queue's length and capacity, and the async publishers' wakers: what the room
/// handshake (`room.rs`) protects in `queue.rs`.
struct Queue {
    len: usize,
    capacity: usize,
    wakers: Vec<Waker>,
}

/// The `Block` room handshake (`room.rs`): publishers find the queue full and wait, a reader
/// takes items and notifies. Every publisher gets its item in; none waits for ever. The
/// waits are untimed here (the production code re-checks every 5 ms only for readers that
/// bypass the handshake), so a lost signal is a deadlock.
#[test]
fn room_handshake_loses_no_signal() {
    for publishers in [1, 2] {
        explore(
            &format!("room handshake, {publishers} blocked publisher(s)"),
            move || {
                let queue = Arc::new(Mutex::new(Queue {
                    len: 1,
                    capacity: 1,
                    wakers: Vec::new(),
                }));
                let room = Arc::new(Room::new());
                let threads: Vec<_> = (0..publishers)
                    .map(|_| {
                        let (queue, room) = (queue.clone(), room.clone());
                        thread::spawn(move || {
                            let mut q = queue.lock();
                            while q.len >= q.capacity {
                                room.register();
                                room.wait(&mut q, Duration::MAX);
                            }
                            q.len += 1;
                        })
                    })
                    .collect();
                // The reader takes one item per publisher, each time as soon as there is one.
                for _ in 0..publishers {
                    loop {
                        let took = {
                            let mut q = queue.lock();
                            let took = q.len > 0;
                            q.len -= usize::from(took);
                            took
                        };
                        if took {
                            room.notify(|| queue.lock(), |q| std::mem::take(&mut q.wakers));
                            break;
                        }
                        thread::yield_now();
                    }
                }
                for thread in threads {
                    thread.join().unwrap();
                }
                assert_eq!(queue.lock().len, 1);
            },
        );
    }
}

/// A subscription removed (an unsubscribe, a close) while its publisher waits for room: the
/// publisher checked it under the index lock and registers before it lets go of that lock
/// (`Room::register`, then `Room::wait`); the remover changes it under that lock, then notifies. The
/// publisher always sees the removal and stops waiting.
#[test]
fn room_handshake_sees_a_subscription_removed() {
    explore("room handshake, subscription removed", || {
        let subscribed = Arc::new(Mutex::new(true));
        let queue = Arc::new(Mutex::new(Queue {
            len: 1,
            capacity: 1,
            wakers: Vec::new(),
        }));
        let room = Arc::new(Room::new());
        let remover = {
            let (subscribed, queue, room) = (subscribed.clone(), queue.clone(), room.clone());
            thread::spawn(move || {
                *subscribed.lock() = false;
                room.notify(|| queue.lock(), |q| std::mem::take(&mut q.wakers));
            })
        };
        // `Registry::deliver_after_wait`: check under the registry lock, then wait for room.
        loop {
            let held = subscribed.lock();
            if !*held {
                break;
            }
            let mut q = queue.lock();
            if q.len < q.capacity {
                q.len += 1;
                break;
            }
            // `Locked::register`, then the publish path lets go of its index lock, then waits.
            room.register();
            drop(held);
            room.wait(&mut q, Duration::MAX);
        }
        remover.join().unwrap();
    });
}

/// The same handshake for an async publisher (`Broker::publish_async`): it registers its
/// waker under the queue's lock and returns `Pending`; the reader's notify wakes it.
#[cfg(feature = "async")]
#[test]
fn room_handshake_wakes_an_async_publisher() {
    explore("room handshake, async publisher", || {
        let queue = Arc::new(Mutex::new(Queue {
            len: 1,
            capacity: 1,
            wakers: Vec::new(),
        }));
        let room = Arc::new(Room::new());
        let reader = {
            let (queue, room) = (queue.clone(), room.clone());
            thread::spawn(move || {
                queue.lock().len -= 1;
                room.notify(|| queue.lock(), |q| std::mem::take(&mut q.wakers));
            })
        };
        let (woken, waker) = flag();
        // `Bounded::offer_or_register`: queue if there is room, else register, under the lock.
        let queued = {
            let mut q = queue.lock();
            if q.len < q.capacity {
                q.len += 1;
                true
            } else {
                q.wakers.push(waker);
                room.registered_waker();
                false
            }
        };
        reader.join().unwrap();
        assert!(
            queued || woken.0.load(Ordering::SeqCst),
            "the publisher was never woken"
        );
    });
}

/// A queue of confirmations' counts, blocking when empty, and whether the unsubscribing
/// thread is done (then nothing more will ever come).
struct Confirmations {
    items: Mutex<(VecDeque<usize>, bool)>,
    changed: Condvar,
}

impl Confirmations {
    fn poll(&self) -> Result<usize, Nothing> {
        self.items.lock().0.pop_front().ok_or(Nothing::Empty)
    }

    /// Waits as `wait` says; a wait for ever that nothing can end returns `Ended`: that is
    /// the hang (kept an error rather than a deadlock so the model can count it).
    fn read(&self, wait: Wait) -> Result<usize, Nothing> {
        if !matches!(wait, Wait::Forever) {
            return self.poll();
        }
        let mut items = self.items.lock();
        loop {
            if let Some(item) = items.0.pop_front() {
                return Ok(item);
            }
            if items.1 {
                return Err(Nothing::Ended);
            }
            self.changed.wait(&mut items);
        }
    }
}

/// One handle, subscribed once, whose confirmation was read; another thread unsubscribes it
/// (under the handle's `state`: queue `Unsubscribe { count: 0 }`, then store the count) while
/// `listen` runs with `listen_step`. Returns what `listen` yielded, and whether it would
/// have waited for ever.
fn listen_while_unsubscribed(
    listen_step: impl Fn(&Confirmations, &Mutex<()>, &AtomicUsize) -> Result<usize, Nothing>,
) -> (Vec<usize>, bool) {
    let state = Arc::new(Mutex::new(()));
    let count = Arc::new(AtomicUsize::new(1));
    let queue = Arc::new(Confirmations {
        items: Mutex::new((VecDeque::new(), false)),
        changed: Condvar::new(),
    });
    let unsubscriber = {
        let (state, count, queue) = (state.clone(), count.clone(), queue.clone());
        thread::spawn(move || {
            {
                let _state = state.lock();
                queue.items.lock().0.push_back(0);
                queue.changed.notify_all();
                count.store(0, Ordering::Release);
            }
            queue.items.lock().1 = true;
            queue.changed.notify_all();
        })
    };
    let mut yielded = Vec::new();
    let hung = loop {
        match listen_step(&queue, &state, &count) {
            Ok(count) => yielded.push(count),
            Err(end) => break end == Nothing::Ended,
        }
    };
    unsubscriber.join().unwrap();
    (yielded, hung)
}

/// The listen-end check (`inbox.rs`): `listen` yields the last `Unsubscribe` and ends,
/// whatever the interleaving; it never waits for a confirmation it already took.
#[test]
fn listen_end_check_ends_after_the_last_unsubscribe() {
    explore("listen-end check", || {
        let (yielded, hung) = listen_while_unsubscribed(|queue, state, count| {
            next_while_subscribed(
                || queue.poll(),
                |wait| queue.read(wait),
                || {
                    let _state = state.lock();
                    count.load(Ordering::Relaxed) > 0
                },
            )
        });
        assert!(!hung, "listen() would wait for ever");
        assert_eq!(yielded, [0]);
    });
}

/// The protocol before the fix (load the count without the lock, before looking at the
/// queue) is found to hang in some interleaving: the model sees the bug the check fixed.
#[test]
fn listen_without_the_check_is_found_to_hang() {
    static HUNG: StdAtomicUsize = StdAtomicUsize::new(0);
    explore("listen without the check (the bug)", || {
        let (_, hung) = listen_while_unsubscribed(|queue, _state, count| {
            let wait = if count.load(Ordering::Acquire) > 0 {
                Wait::Forever
            } else {
                Wait::Never
            };
            queue.read(wait)
        });
        HUNG.fetch_add(usize::from(hung), StdRelaxed);
    });
    let hung = HUNG.load(StdRelaxed);
    println!("model_check: listen without the check: {hung} interleavings hang");
    assert!(hung > 0, "the model missed the hang");
}
