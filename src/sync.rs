//! The primitives of the wait/wake protocols, in one place so that `loom` can stand in for
//! them, as tokio does: the wake lists (`handle/wake.rs`), the room count of bounded
//! queues (`handle/queue.rs`) and a publisher's matching status (`engine/matching.rs`) take
//! their atomics and mutexes from here. `src/model_check.rs`
//! then explores their interleavings with
//! `RUSTFLAGS="--cfg loom" cargo test --release --lib model_check`.
//!
//! Normally these are `parking_lot`'s mutex and `std`'s atomics. Under `cfg(loom)` they are
//! loom's, the mutex wrapped in `parking_lot`'s shape (no poisoning).

#[cfg(not(loom))]
pub(crate) use parking_lot::Mutex;
#[cfg(not(loom))]
pub(crate) use std::sync::atomic::{fence, AtomicBool, AtomicU64, AtomicUsize, Ordering};

#[cfg(loom)]
pub(crate) use loom::sync::atomic::{fence, AtomicBool, AtomicU64, AtomicUsize, Ordering};
#[cfg(loom)]
pub(crate) use modelled::Mutex;

#[cfg(loom)]
mod modelled {
    /// loom's mutex, locked as `parking_lot`'s is (no poisoning).
    #[derive(Debug, Default)]
    pub(crate) struct Mutex<T>(loom::sync::Mutex<T>);

    impl<T> Mutex<T> {
        pub(crate) fn new(value: T) -> Self {
            Mutex(loom::sync::Mutex::new(value))
        }

        pub(crate) fn lock(&self) -> loom::sync::MutexGuard<'_, T> {
            self.0.lock().expect("loom locks are not poisoned")
        }
    }
}
