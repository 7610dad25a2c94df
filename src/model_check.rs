//! Model checks of the wait/wake protocols with loom: every interleaving of the threads
//! involved (up to the preemption bound `LOOM_MAX_PREEMPTIONS`), each with every ordering
//! the memory model allows. A lost wake-up shows as a deadlock (a thread parked that nothing
//! will unpark), which loom reports.
//!
//! ```text
//! RUSTFLAGS="--cfg loom" LOOM_MAX_PREEMPTIONS=5 cargo test -p fanout --release --features async --lib model_check -- --nocapture
//! ```
//!
//! Each model runs the crate's own code for its protocol (`WakeList`, `Room`, the listen-end
//! check), with loom's primitives standing in through `sync.rs`; only what surrounds it (the
//! channel) is a small model: crossbeam-channel is not loom-aware. Each test prints how many
//! interleavings it explored.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicUsize as StdAtomicUsize, Ordering::Relaxed as StdRelaxed};
use std::task::{Wake, Waker};

use loom::sync::{Arc, Condvar};
use loom::thread;

use crate::handle::{next_while_subscribed, Nothing, Room, Waiting, WakeList, Woken};
use crate::sync::{fence, AtomicBool, AtomicUsize, Mutex, Ordering};
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

/// A waker that unparks a loom thread, as `handle::this_thread`'s unparks a real one.
struct Unpark(thread::Thread);

impl Wake for Unpark {
    fn wake(self: std::sync::Arc<Self>) {
        self.0.unpark();
    }
}

fn this_thread() -> Waker {
    Waker::from(std::sync::Arc::new(Unpark(thread::current())))
}

/// Waking readers (`handle/wake.rs`, and `take_readers` in `engine/publish.rs`): a reader (a
/// stream, or a thread before it parks) looks at its queue, registers its waker (counted in
/// the broker's total) and looks again, against publishers that queue, issue a fence, and
/// look at the handle only when the total says a reader waits. Whenever the reader ends up
/// waiting, it was woken. The queue is a counter used with `Relaxed` only, so the fences and
/// the total must carry the ordering.
#[test]
fn reader_wake_loses_no_wake_up() {
    for publishers in [1, 2] {
        explore(
            &format!("reader wake, {publishers} publisher(s)"),
            move || {
                let total = Waiting::new(AtomicUsize::new(0));
                let readers = Arc::new(WakeList::counted_in(total.clone()));
                let queued = Arc::new(AtomicUsize::new(0));
                let threads: Vec<_> = (0..publishers)
                    .map(|_| {
                        let (readers, queued, total) =
                            (readers.clone(), queued.clone(), total.clone());
                        thread::spawn(move || {
                            queued.fetch_add(1, Ordering::Relaxed);
                            fence(Ordering::SeqCst);
                            let mut woken = Woken::default();
                            if total.load(Ordering::SeqCst) > 0 {
                                readers.take_after_fence(&mut woken);
                            }
                            woken.wake_all();
                        })
                    })
                    .collect();
                let (woken, waker) = flag();
                // `MessageStream::poll_next`: look, register, look again.
                let ready = queued.load(Ordering::Relaxed) > 0 || {
                    readers.register(0, &waker);
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

/// A publisher waiting for room (`engine/blocking.rs`): registers, claims, and parks if
/// there was none. Returns once it has claimed a place.
fn claim_or_park(room: &Room, waiter: u64) {
    let waker = this_thread();
    loop {
        room.publishers().register(waiter, &waker);
        if room.claim().is_some() {
            room.publishers().forget(waiter);
            return;
        }
        thread::park();
    }
}

/// `Block` (`handle/queue.rs`): publishers find a full queue and park; a reader takes
/// deliveries, each giving its place back and waking the registered publishers. Every
/// publisher gets its place; none parks for ever (there is no timed re-check to hide a lost
/// wake-up).
#[test]
fn room_wakes_every_blocked_publisher() {
    for publishers in [1, 2] {
        explore(
            &format!("room, {publishers} blocked publisher(s)"),
            move || {
                let room = Arc::new(Room::new(1));
                assert!(room.claim().is_some(), "one delivery fills it");
                let threads: Vec<_> = (0..publishers)
                    .map(|waiter| {
                        let room = room.clone();
                        thread::spawn(move || claim_or_park(&room, waiter as u64))
                    })
                    .collect();
                // The reader takes one delivery per publisher, each as soon as there is one.
                for _ in 0..publishers {
                    while room.queued() == 0 {
                        thread::yield_now();
                    }
                    let mut woken = Woken::default();
                    room.release(&mut woken);
                    woken.wake_all();
                }
                for thread in threads {
                    thread.join().unwrap();
                }
                assert_eq!(room.queued(), 1);
            },
        );
    }
}

/// A rendezvous (capacity 0): a publisher parks until a reader waits; the reader's
/// `reader_waiting(true)` makes room and wakes it.
#[test]
fn a_waiting_reader_is_room_for_a_rendezvous() {
    explore("rendezvous", || {
        let room = Arc::new(Room::new(0));
        let publisher = {
            let room = room.clone();
            thread::spawn(move || claim_or_park(&room, 0))
        };
        room.reader_waiting(true);
        publisher.join().unwrap();
        assert_eq!(room.queued(), 1);
    });
}

/// A subscription removed (an unsubscribe, a close) while its publisher waits for room: the
/// publisher checks it under the index lock and registers before it lets go of that lock
/// (`Registry::attempt`); the remover changes it under that lock, then wakes the room's
/// publishers. The publisher always sees the removal and stops waiting.
#[test]
fn a_blocked_publisher_sees_its_subscription_removed() {
    explore("room, subscription removed", || {
        let subscribed = Arc::new(Mutex::new(true));
        let room = Arc::new(Room::new(1));
        assert!(room.claim().is_some());
        let remover = {
            let (subscribed, room) = (subscribed.clone(), room.clone());
            thread::spawn(move || {
                *subscribed.lock() = false;
                room.publishers().wake();
            })
        };
        let waker = this_thread();
        loop {
            let held = subscribed.lock();
            if !*held {
                break;
            }
            room.publishers().register(0, &waker);
            if room.claim().is_some() {
                break;
            }
            drop(held);
            thread::park();
        }
        room.publishers().forget(0);
        remover.join().unwrap();
    });
}

/// The same for an async publisher (`Broker::publish_async`): it registers its task's waker,
/// finds no room and returns `Pending`; the reader's release wakes it.
#[test]
fn a_blocked_async_publisher_is_woken() {
    explore("room, async publisher", || {
        let room = Arc::new(Room::new(1));
        assert!(room.claim().is_some());
        let reader = {
            let room = room.clone();
            thread::spawn(move || {
                let mut woken = Woken::default();
                room.release(&mut woken);
                woken.wake_all();
            })
        };
        let (woken, waker) = flag();
        room.publishers().register(0, &waker);
        let claimed = room.claim().is_some();
        reader.join().unwrap();
        assert!(
            claimed || woken.0.load(Ordering::SeqCst),
            "the publisher was never woken"
        );
    });
}

/// A queue of confirmations' counts, blocking when empty, and whether the unsubscribing
/// thread is done (then nothing more will ever come).
struct Confirmations {
    items: loom::sync::Mutex<(VecDeque<usize>, bool)>,
    changed: Condvar,
}

impl Confirmations {
    fn poll(&self) -> Result<usize, Nothing> {
        let mut items = self.items.lock().unwrap();
        items.0.pop_front().ok_or(Nothing::Empty)
    }

    /// Waits as `wait` says; a wait for ever that nothing can end returns `Ended`: that is
    /// the hang (kept an error rather than a deadlock so the model can count it).
    fn read(&self, wait: Wait) -> Result<usize, Nothing> {
        if !matches!(wait, Wait::Forever) {
            return self.poll();
        }
        let mut items = self.items.lock().unwrap();
        loop {
            if let Some(item) = items.0.pop_front() {
                return Ok(item);
            }
            if items.1 {
                return Err(Nothing::Ended);
            }
            items = self.changed.wait(items).unwrap();
        }
    }
}

/// One handle, subscribed once, whose confirmation was read; another thread unsubscribes it
/// (under the handle's `calls`: queue `Unsubscribe { count: 0 }`, then store the count) while
/// `listen` runs with `listen_step`. Returns what `listen` yielded, and whether it would
/// have waited for ever.
fn listen_while_unsubscribed(
    listen_step: impl Fn(&Confirmations, &Mutex<()>, &AtomicUsize) -> Result<usize, Nothing>,
) -> (Vec<usize>, bool) {
    let calls = Arc::new(Mutex::new(()));
    let count = Arc::new(AtomicUsize::new(1));
    let queue = Arc::new(Confirmations {
        items: loom::sync::Mutex::new((VecDeque::new(), false)),
        changed: Condvar::new(),
    });
    let unsubscriber = {
        let (calls, count, queue) = (calls.clone(), count.clone(), queue.clone());
        thread::spawn(move || {
            {
                let _calls = calls.lock();
                queue.items.lock().unwrap().0.push_back(0);
                queue.changed.notify_all();
                count.store(0, Ordering::Release);
            }
            queue.items.lock().unwrap().1 = true;
            queue.changed.notify_all();
        })
    };
    let mut yielded = Vec::new();
    let hung = loop {
        match listen_step(&queue, &calls, &count) {
            Ok(count) => yielded.push(count),
            Err(end) => break end == Nothing::Ended,
        }
    };
    unsubscriber.join().unwrap();
    (yielded, hung)
}

/// The listen-end check (`handle/read.rs`): `listen` yields the last `Unsubscribe` and ends,
/// whatever the interleaving; it never waits for a confirmation it already took.
#[test]
fn listen_end_check_ends_after_the_last_unsubscribe() {
    explore("listen-end check", || {
        let (yielded, hung) = listen_while_unsubscribed(|queue, calls, count| {
            next_while_subscribed(
                |wait| queue.read(wait),
                || {
                    let _calls = calls.lock();
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
        let (_, hung) = listen_while_unsubscribed(|queue, _calls, count| {
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

/// A publisher's matching status (`engine/matching.rs`): a watch (`MatchingStream::poll_next`,
/// and `Interest::wait` before it parks) looks at the changes and the close, registers, and
/// looks again, against a subscription change that counts under the status lock and takes
/// the waiters, and against the broker's close. The watch always sees the change or the
/// close, or is woken for it.
#[cfg(feature = "async")]
#[test]
fn a_matching_watch_loses_no_change() {
    use crate::engine::matching::{Interests, Reached};
    use crate::kind::Kind;

    for closing in [false, true] {
        explore(
            &format!(
                "matching watch, {}",
                if closing { "close" } else { "change" }
            ),
            move || {
                let interests = std::sync::Arc::new(Interests::default());
                let interest = interests.get_or_insert("feed", 0, || 0);
                let other = std::sync::Arc::clone(&interests);
                let changer = thread::spawn(move || {
                    let mut woken = Woken::default();
                    match closing {
                        true => other.close(&mut woken),
                        false => other.changed(Kind::Channel, "feed", Reached::Gained, &mut woken),
                    }
                    woken.wake_all();
                });
                let waker = this_thread();
                let seen = |changes: u64, closed: bool| (changes > 0 || closed).then_some(());
                while interest.poll(0, &waker, seen).is_none() {
                    thread::park();
                }
                changer.join().unwrap();
            },
        );
    }
}
