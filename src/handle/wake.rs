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

use std::sync::Arc;
use std::task::{Wake, Waker};
use std::thread::Thread;

use crate::sync::{fence, AtomicBool, Mutex, Ordering};

/// The waiters of one kind on one handle.
#[derive(Default)]
pub(crate) struct WakeList {
    waiting: AtomicBool,
    wakers: Mutex<Wakers>,
}

/// Wakers by waiter id: the first inline, so the usual single waiter never allocates.
#[derive(Default)]
struct Wakers {
    first: Option<(u64, Waker)>,
    more: Vec<(u64, Waker)>,
}

impl Wakers {
    fn set(&mut self, id: u64, waker: &Waker) {
        let mut mine = self.first.iter_mut().chain(self.more.iter_mut());
        if let Some((_, current)) = mine.find(|(waiter, _)| *waiter == id) {
            if !current.will_wake(waker) {
                *current = waker.clone();
            }
        } else if self.first.is_none() {
            self.first = Some((id, waker.clone()));
        } else {
            self.more.push((id, waker.clone()));
        }
    }

    fn remove(&mut self, id: u64) {
        if self.first.as_ref().is_some_and(|(waiter, _)| *waiter == id) {
            self.first = self.more.pop();
        } else {
            self.more.retain(|(waiter, _)| *waiter != id);
        }
    }

    fn is_empty(&self) -> bool {
        self.first.is_none()
    }
}

impl WakeList {
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
        self.wakers.lock().set(id, waker);
        self.waiting.store(true, Ordering::SeqCst);
        fence(Ordering::SeqCst);
    }

    /// Waiter `id` no longer waits: its waker is dropped.
    pub(crate) fn forget(&self, id: u64) {
        let mut wakers = self.wakers.lock();
        wakers.remove(id);
        if wakers.is_empty() {
            self.waiting.store(false, Ordering::SeqCst);
        }
    }
}

/// Wakers taken while locks were held, woken by `wake_all` once they are let go: the first
/// two inline, so a publish to a few waiting readers does not allocate.
#[derive(Default)]
pub(crate) struct Woken {
    inline: [Option<Waker>; 2],
    more: Vec<Waker>,
}

impl Woken {
    fn push(&mut self, waker: Waker) {
        match self.inline.iter_mut().find(|slot| slot.is_none()) {
            Some(slot) => *slot = Some(waker),
            None => self.more.push(waker),
        }
    }

    /// Wakes every waiter taken; call with no lock held.
    #[inline]
    pub(crate) fn wake_all(mut self) {
        self.wake_taken();
    }

    /// Wakes every waiter taken so far and forgets them; call with no lock held.
    #[inline]
    pub(crate) fn wake_taken(&mut self) {
        if self.inline[0].is_some() {
            self.wake_each();
        }
    }

    #[cold]
    fn wake_each(&mut self) {
        self.inline
            .iter_mut()
            .filter_map(Option::take)
            .for_each(Waker::wake);
        self.more.drain(..).for_each(Waker::wake);
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
