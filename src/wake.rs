//! Waking a handle's readers: threads blocked in `get_message`, `listen` or a worker, and
//! tasks parked in `MessageStream::poll_next`. One slot type serves both: a thread's waker
//! unparks it.
//!
//! # The protocol
//!
//! A reader that found the queue empty stores its waker (under its reader id), sets
//! `waiting`, issues a `SeqCst` fence, and looks at the queue once more before it sleeps. A
//! publisher queues, issues a `SeqCst` fence, and loads `waiting` (a publish issues one fence
//! after all its deliveries under one lock, then checks each handle it reached). With a fence on both
//! sides, either the reader's second look finds the item or the publisher sees `waiting`;
//! then it takes the wakers (under the slot's lock, a leaf) into a [`Woken`] and wakes them
//! once it has let go of every lock it holds (tokio's rule: no lock held while waking). An
//! idle reader is never woken, and a reader that keeps up is never registered.
//!
//! A reader that stops waiting (it found an item, or its deadline passed) forgets its waker,
//! so a later publisher does not wake it for nothing.

use std::sync::Arc;
use std::task::{Wake, Waker};
use std::thread::Thread;

use crate::sync::{fence, AtomicBool, Mutex, Ordering};

/// The waiting readers of one handle.
#[derive(Default)]
pub(crate) struct ReaderWake {
    waiting: AtomicBool,
    wakers: Mutex<Wakers>,
}

/// Wakers by reader id: the first inline, so the usual single reader never allocates.
#[derive(Default)]
struct Wakers {
    first: Option<(u64, Waker)>,
    more: Vec<(u64, Waker)>,
}

impl Wakers {
    fn set(&mut self, reader: u64, waker: &Waker) {
        let mut mine = self.first.iter_mut().chain(self.more.iter_mut());
        if let Some((_, current)) = mine.find(|(id, _)| *id == reader) {
            if !current.will_wake(waker) {
                *current = waker.clone();
            }
        } else if self.first.is_none() {
            self.first = Some((reader, waker.clone()));
        } else {
            self.more.push((reader, waker.clone()));
        }
    }

    fn remove(&mut self, reader: u64) {
        if self.first.as_ref().is_some_and(|(id, _)| *id == reader) {
            self.first = self.more.pop();
        } else {
            self.more.retain(|(id, _)| *id != reader);
        }
    }

    fn is_empty(&self) -> bool {
        self.first.is_none()
    }
}

impl ReaderWake {
    /// Called after queuing an item (or ending the queue), with locks held: moves the
    /// waiting readers' wakers into `woken`, to wake once the locks are let go.
    #[inline]
    pub(crate) fn take(&self, woken: &mut Woken) {
        fence(Ordering::SeqCst);
        self.take_after_fence(woken);
    }

    /// `take` for a caller that has issued the `SeqCst` fence itself, after all its sends:
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
        taken
            .first
            .into_iter()
            .chain(taken.more)
            .for_each(|(_, waker)| woken.push(waker));
    }

    /// `take` for a caller that holds no lock: wakes the waiting readers now.
    pub(crate) fn wake(&self) {
        let mut woken = Woken::default();
        self.take(&mut woken);
        woken.wake_all();
    }

    /// Called by reader `reader` after it found the queue empty, before it looks once more.
    pub(crate) fn register(&self, reader: u64, waker: &Waker) {
        self.wakers.lock().set(reader, waker);
        self.waiting.store(true, Ordering::SeqCst);
        fence(Ordering::SeqCst);
    }

    /// Reader `reader` no longer waits: its waker is dropped.
    pub(crate) fn forget(&self, reader: u64) {
        let mut wakers = self.wakers.lock();
        wakers.remove(reader);
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

    /// Wakes every reader taken; call with no lock held.
    pub(crate) fn wake_all(mut self) {
        self.wake_taken();
    }

    /// Wakes every reader taken so far and forgets them; call with no lock held.
    #[inline]
    pub(crate) fn wake_taken(&mut self) {
        if self.inline[0].is_none() {
            return; // nothing taken: the usual case, kept cheap
        }
        self.inline
            .iter_mut()
            .filter_map(Option::take)
            .for_each(Waker::wake);
        self.more.drain(..).for_each(Waker::wake);
    }
}

/// A new reader id, for a thread or a stream.
pub(crate) fn reader_id() -> u64 {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
    NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
}

/// This thread's reader id and a waker that unparks it, made once per thread.
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
        static READER: (u64, Waker) =
            (reader_id(), Waker::from(Arc::new(Unpark(std::thread::current()))));
    }
    READER.with(|(id, waker)| (*id, waker.clone()))
}
