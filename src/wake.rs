//! Waking an async reader (feature `async`): the task parked in `MessageStream::poll_next`.
//!
//! The reader stores its waker, sets `waiting`, then looks at the queue once more; a
//! publisher queues, then checks `waiting`. With a `SeqCst` fence on both sides, either the
//! reader's second look finds the item or the publisher sees `waiting` and wakes it, so no
//! wake-up is lost and an idle reader is never woken. Without the feature this is empty and
//! costs publishers nothing.

#[cfg(feature = "async")]
use std::task::Waker;

#[cfg(feature = "async")]
use crate::sync::{fence, AtomicBool, Mutex, Ordering};

#[derive(Default)]
pub(crate) struct ReaderWake {
    #[cfg(feature = "async")]
    waiting: AtomicBool,
    #[cfg(feature = "async")]
    waker: Mutex<Option<Waker>>,
}

impl ReaderWake {
    /// Called after queuing an item (or ending the queue): wakes a waiting reader, if any.
    #[inline]
    pub(crate) fn wake(&self) {
        #[cfg(feature = "async")]
        {
            fence(Ordering::SeqCst);
            if self.waiting.load(Ordering::SeqCst) {
                let waker = {
                    let mut slot = self.waker.lock();
                    self.waiting.store(false, Ordering::SeqCst);
                    slot.take()
                };
                if let Some(waker) = waker {
                    waker.wake();
                }
            }
        }
    }

    /// Called by a reader that found the queue empty, before it looks once more.
    #[cfg(feature = "async")]
    pub(crate) fn register(&self, waker: &Waker) {
        {
            let mut slot = self.waker.lock();
            match &*slot {
                Some(current) if current.will_wake(waker) => {}
                _ => *slot = Some(waker.clone()),
            }
        }
        self.waiting.store(true, Ordering::SeqCst);
        fence(Ordering::SeqCst);
    }
}
