//! Waking what waits on a handle: its readers (threads blocked in `get_message`, `listen` or a
//! worker, and tasks parked in `MessageStream::poll_next`), and, for a bounded queue, the
//! publishers waiting for room. One list type serves all of them: a thread's waker unparks it.
//!
//! # The protocol
//!
//! A waiter that found nothing to do (no item, or no room) stores its waker under its id,
//! sets `waiting`, issues a `SeqCst` fence, and looks once more before it sleeps. The side
//! that changes what it waits for (queues an item, makes room, ends the queue, removes a
//! subscription) makes the change, issues a `SeqCst` fence, and loads `waiting`. With a fence
//! on both sides, either the waiter's second look sees the change or the other side sees
//! `waiting`; then it takes the wakers (under the list's lock, a leaf) into a [`Woken`] and
//! wakes them once it has let go of every lock it holds. An idle waiter is never woken, and
//! one that never has to wait is never registered.
//!
//! A waiter that stops waiting (it found what it waited for, or its deadline passed) forgets
//! its waker, so a later change does not wake it for nothing.
//!
//! A list can also count its waiters in a total shared with other lists (`Waiting`): the
//! broker's readers, so that a publish that finds the total at 0 after its fence skips looking
//! at each handle it reached. The total is changed before the waiter's fence and read after
//! the publisher's, so the same argument holds for it.

use std::sync::Arc;
use std::task::{Wake, Waker};
use std::thread::Thread;

use crate::sync::{fence, AtomicBool, AtomicUsize, Mutex, Ordering};

/// Waiters registered in a group of lists (the broker's readers), counted.
pub(crate) type Waiting = Arc<AtomicUsize>;

/// The waiters of one kind on one handle.
#[derive(Default)]
pub(crate) struct WakeList {
    waiting: AtomicBool,
    wakers: Mutex<Wakers>,
    /// The group total this list's waiters count in, if any.
    counted: Option<Waiting>,
}

/// Wakers by waiter id: the first inline, so the usual single waiter never allocates.
#[derive(Default)]
struct Wakers {
    first: Option<(u64, Waker)>,
    more: Vec<(u64, Waker)>,
}

impl Wakers {
    /// Sets waiter `id`'s waker: whether it was not registered yet.
    fn set(&mut self, id: u64, waker: &Waker) -> bool {
        let mut mine = self.first.iter_mut().chain(self.more.iter_mut());
        if let Some((_, current)) = mine.find(|(waiter, _)| *waiter == id) {
            if !current.will_wake(waker) {
                *current = waker.clone();
            }
            return false;
        }
        match self.first {
            None => self.first = Some((id, waker.clone())),
            Some(_) => self.more.push((id, waker.clone())),
        }
        true
    }

    /// Removes waiter `id`'s waker: whether it was registered.
    fn remove(&mut self, id: u64) -> bool {
        if self.first.as_ref().is_some_and(|(waiter, _)| *waiter == id) {
            self.first = self.more.pop();
            return true;
        }
        let before = self.more.len();
        self.more.retain(|(waiter, _)| *waiter != id);
        self.more.len() < before
    }

    fn len(&self) -> usize {
        usize::from(self.first.is_some()) + self.more.len()
    }

    fn is_empty(&self) -> bool {
        self.first.is_none()
    }
}

impl WakeList {
    /// A list whose waiters count in `total`.
    pub(crate) fn counted_in(total: Waiting) -> Self {
        WakeList {
            counted: Some(total),
            ..WakeList::default()
        }
    }

    /// Called after a change (with locks held): moves the waiters' wakers into `woken`, to
    /// wake once the locks are let go.
    #[inline]
    pub(crate) fn take(&self, woken: &mut Woken) {
        fence(Ordering::SeqCst);
        self.take_after_fence(woken);
    }

    /// `take` for a caller that has issued the `SeqCst` fence itself, after all its changes:
    /// one fence for every handle a publish reached.
    #[inline]
    pub(crate) fn take_after_fence(&self, woken: &mut Woken) {
        if self.waiting.load(Ordering::SeqCst) {
            self.take_waiting(woken);
        }
    }

    #[cold]
    fn take_waiting(&self, woken: &mut Woken) {
        let taken = {
            let mut wakers = self.wakers.lock();
            self.waiting.store(false, Ordering::SeqCst);
            self.count(-(wakers.len() as isize));
            std::mem::take(&mut *wakers)
        };
        let taken = taken.first.into_iter().chain(taken.more);
        taken.for_each(|(_, waker)| woken.push(waker));
    }

    /// `take` for a caller that holds no lock: wakes the waiters now.
    pub(crate) fn wake(&self) {
        let mut woken = Woken::default();
        self.take(&mut woken);
        woken.wake_all();
    }

    /// Called by waiter `id` after it found nothing to do, before it looks once more.
    pub(crate) fn register(&self, id: u64, waker: &Waker) {
        let mut wakers = self.wakers.lock();
        if wakers.set(id, waker) {
            self.count(1);
        }
        self.waiting.store(true, Ordering::SeqCst);
        drop(wakers);
        fence(Ordering::SeqCst);
    }

    /// Waiter `id` no longer waits: its waker is dropped.
    pub(crate) fn forget(&self, id: u64) {
        let mut wakers = self.wakers.lock();
        if wakers.remove(id) {
            self.count(-1);
        }
        if wakers.is_empty() {
            self.waiting.store(false, Ordering::SeqCst);
        }
    }

    /// Adds `change` to the group total, if the list counts in one (under its lock).
    fn count(&self, change: isize) {
        if let Some(total) = &self.counted {
            match change {
                0.. => total.fetch_add(change as usize, Ordering::SeqCst),
                _ => total.fetch_sub(change.unsigned_abs(), Ordering::SeqCst),
            };
        }
    }
}

/// Wakers taken while locks were held, woken by `wake_all` once they are let go. Empty, it
/// costs nothing to make or drop; it allocates only when there is someone to wake, which
/// costs a system call anyway.
#[derive(Default)]
pub(crate) struct Woken(Vec<Waker>);

impl Woken {
    fn push(&mut self, waker: Waker) {
        self.0.push(waker);
    }

    /// Wakes every waiter taken; call with no lock held.
    #[inline]
    pub(crate) fn wake_all(self) {
        if !self.0.is_empty() {
            Self::wake_each(self.0);
        }
    }

    /// Wakes every waiter taken so far and forgets them; call with no lock held.
    #[inline]
    pub(crate) fn wake_taken(&mut self) {
        if !self.0.is_empty() {
            Self::wake_each(std::mem::take(&mut self.0));
        }
    }

    #[cold]
    fn wake_each(wakers: Vec<Waker>) {
        wakers.into_iter().for_each(Waker::wake);
    }
}

/// A new waiter id, for a thread, a stream or an async publish.
pub(crate) fn waiter_id() -> u64 {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
    NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
}

/// This thread's waiter id and a waker that unparks it, made once per thread.
pub(crate) fn this_thread() -> (u64, Waker) {
    struct Unpark(Thread);
    impl Wake for Unpark {
        fn wake(self: Arc<Self>) {
            self.0.unpark();
        }
        fn wake_by_ref(self: &Arc<Self>) {
            self.0.unpark();
        }
    }
    thread_local! {
        static WAITER: (u64, Waker) =
            (waiter_id(), Waker::from(Arc::new(Unpark(std::thread::current()))));
    }
    WAITER.with(|(id, waker)| (*id, waker.clone()))
}
