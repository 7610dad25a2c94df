//! Waking an async reader (feature `async`): the task parked in `MessageStream::poll_next`.
//!
//! A handle may have several streams; each stores its waker (by stream id), sets `waiting`,
//! then looks at the queue once more; a publisher queues, then checks `waiting` and wakes
//! them all. With a `SeqCst` fence on both sides, either the
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
    /// The wakers of the handle's waiting streams (a handle may have several).
    #[cfg(feature = "async")]
    wakers: Mutex<Wakers>,
}

/// Wakers by stream id: the first inline, so the usual single stream never allocates.
#[cfg(feature = "async")]
#[derive(Default)]
struct Wakers {
    first: Option<(u64, Waker)>,
    more: Vec<(u64, Waker)>,
}

#[cfg(feature = "async")]
impl Wakers {
    fn set(&mut self, stream: u64, waker: &Waker) {
        let mut mine = self.first.iter_mut().chain(self.more.iter_mut());
        if let Some((_, current)) = mine.find(|(id, _)| *id == stream) {
            if !current.will_wake(waker) {
                *current = waker.clone();
            }
        } else if self.first.is_none() {
            self.first = Some((stream, waker.clone()));
        } else {
            self.more.push((stream, waker.clone()));
        }
    }
}

impl ReaderWake {
    /// Called after queuing an item (or ending the queue): wakes the waiting readers, if any,
    /// after letting go of the slot's lock.
    #[inline]
    pub(crate) fn wake(&self) {
        #[cfg(feature = "async")]
        {
            fence(Ordering::SeqCst);
            if self.waiting.load(Ordering::SeqCst) {
                let woken = {
                    let mut wakers = self.wakers.lock();
                    self.waiting.store(false, Ordering::SeqCst);
                    std::mem::take(&mut *wakers)
                };
                woken
                    .first
                    .into_iter()
                    .chain(woken.more)
                    .for_each(|(_, w)| w.wake());
            }
        }
    }

    /// Called by stream `stream` after it found the queue empty, before it looks once more.
    #[cfg(feature = "async")]
    pub(crate) fn register(&self, stream: u64, waker: &Waker) {
        self.wakers.lock().set(stream, waker);
        self.waiting.store(true, Ordering::SeqCst);
        fence(Ordering::SeqCst);
    }

    /// Stream `stream` is gone: its waker is dropped.
    #[cfg(feature = "async")]
    pub(crate) fn forget(&self, stream: u64) {
        let mut wakers = self.wakers.lock();
        if wakers.first.as_ref().is_some_and(|(id, _)| *id == stream) {
            wakers.first = wakers.more.pop();
        } else {
            wakers.more.retain(|(id, _)| *id != stream);
        }
    }
}
