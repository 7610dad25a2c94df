//! The primitives of the wait/wake protocols, in one place so that `loom` can stand in for
//! them, as tokio does: the reader wake slot (`wake.rs`) and the room handshake of bounded
//! queues (`room.rs`) take their atomics, mutexes and condition variables from here.
//! `src/model_check.rs` then explores their interleavings with
//! `RUSTFLAGS="--cfg loom" cargo test --release --lib model_check`.
//!
//! Normally these are `parking_lot`'s locks and `std`'s atomics. Under `cfg(loom)` they are
//! loom's, wrapped in `parking_lot`'s shape (a guard taken by `&mut` to wait on), and a timed
//! wait waits for the signal only: the model checks that the signal alone wakes the waiter.

#[cfg(not(loom))]
pub(crate) use parking_lot::{Condvar, Mutex, MutexGuard};
#[cfg(not(loom))]
pub(crate) use std::sync::atomic::{fence, AtomicBool, AtomicUsize, Ordering};

#[cfg(loom)]
pub(crate) use loom::sync::atomic::{fence, AtomicBool, AtomicUsize, Ordering};
#[cfg(loom)]
pub(crate) use modelled::{Condvar, Mutex, MutexGuard};

#[cfg(loom)]
mod modelled {
    use std::ops::{Deref, DerefMut};
    use std::time::Duration;

    /// loom's mutex, locked as `parking_lot`'s is (no poisoning).
    #[derive(Debug, Default)]
    pub(crate) struct Mutex<T>(loom::sync::Mutex<T>);

    impl<T> Mutex<T> {
        pub(crate) fn new(value: T) -> Self {
            Mutex(loom::sync::Mutex::new(value))
        }

        pub(crate) fn lock(&self) -> MutexGuard<'_, T> {
            MutexGuard(Some(self.0.lock().expect("loom locks are not poisoned")))
        }
    }

    /// Holds the lock; `None` only while a condition variable has it.
    pub(crate) struct MutexGuard<'a, T>(Option<loom::sync::MutexGuard<'a, T>>);

    impl<T> Deref for MutexGuard<'_, T> {
        type Target = T;
        fn deref(&self) -> &T {
            self.0.as_ref().expect("held")
        }
    }

    impl<T> DerefMut for MutexGuard<'_, T> {
        fn deref_mut(&mut self) -> &mut T {
            self.0.as_mut().expect("held")
        }
    }

    /// loom's condition variable, waited on as `parking_lot`'s is.
    #[derive(Debug, Default)]
    pub(crate) struct Condvar(loom::sync::Condvar);

    impl Condvar {
        pub(crate) fn new() -> Self {
            Condvar(loom::sync::Condvar::new())
        }

        pub(crate) fn wait<T>(&self, guard: &mut MutexGuard<'_, T>) {
            let held = guard.0.take().expect("held");
            guard.0 = Some(self.0.wait(held).expect("loom locks are not poisoned"));
        }

        /// Waits for a signal; the model has no clock, so `timeout` is not used.
        pub(crate) fn wait_for<T>(&self, guard: &mut MutexGuard<'_, T>, _timeout: Duration) {
            self.wait(guard);
        }

        pub(crate) fn notify_all(&self) {
            self.0.notify_all();
        }
    }
}
