//! `Route::ViaRedis`: publishes whose fate is unknown, until their copies come back or cannot.
//!
//! A batch whose publishing connection failed under it may have been run by Redis (a hung
//! server runs it when it resumes) or not. Its publishes that local subscriptions were
//! counted for are held here instead of being counted `lost` at once: a copy that comes back
//! takes its publish off the list (its deliveries are made), and once the subscription side
//! has proved, after the publishing connection answered again, that Redis sent everything it
//! ran before (a marker, `order.rs`), what is left is counted `lost`, and subscribed handles
//! read a `Gap` notice there unless one was given since (the subscription connection came
//! back). Identical bytes published on the same channel by someone else meanwhile are taken
//! for ours.
//!
//! # Locks
//!
//! `state` is a leaf.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use parking_lot::Mutex;

use super::echo::take_one;

#[derive(Default)]
struct State {
    /// Publishes in doubt, by channel and bytes, with how many of each.
    waiting: HashMap<(Arc<str>, Arc<[u8]>), u32>,
    /// The check whose marker settles them, once asked for.
    settled_by: Option<u64>,
    /// Whether a publish was held since handles last read a `Gap` notice, and when the
    /// first of those was.
    unnoticed_since: Option<Instant>,
}

/// Publishes in doubt.
#[derive(Default)]
pub(crate) struct Doubts {
    state: Mutex<State>,
    /// Whether any publish is in doubt: arrivals look no further while none is.
    any: AtomicBool,
    /// The highest marker the receiving thread reached: a marker may pass before the check
    /// it answers is recorded in `settled_by`, and whoever comes second settles.
    passed: AtomicU64,
}

impl Doubts {
    /// Holds a publish on `channel` with `bytes` until its copy comes back or cannot.
    pub(crate) fn hold(&self, channel: Arc<str>, bytes: Arc<[u8]>) {
        let mut state = self.state.lock();
        *state.waiting.entry((channel, bytes)).or_insert(0) += 1;
        state.unnoticed_since.get_or_insert_with(Instant::now);
        // A new doubt needs a check asked for after it.
        state.settled_by = None;
        self.any.store(true, Ordering::Release);
    }

    /// The marker of check `check` settles what is in doubt now; if it passed already, that
    /// is done here, and what `reached` would have returned is returned.
    pub(crate) fn settle_at(&self, check: u64) -> (u64, Option<Instant>) {
        let mut state = self.state.lock();
        if state.waiting.is_empty() {
            return (0, None);
        }
        state.settled_by = Some(check);
        drop(state);
        self.reached_before(self.passed.load(Ordering::SeqCst))
    }

    /// An arrival on `channel` with `bytes`: if a publish in doubt equals it, it came back.
    pub(crate) fn came_back(&self, channel: &str, bytes: &[u8]) {
        if !self.any.load(Ordering::Acquire) {
            return;
        }
        let mut state = self.state.lock();
        take_one(&mut state.waiting, &(Arc::from(channel), Arc::from(bytes)));
        self.any.store(!state.waiting.is_empty(), Ordering::Release);
    }

    /// Handles were given a `Gap` notice (the subscription connection came back): it covers
    /// what is in doubt now.
    pub(crate) fn noticed(&self) {
        self.state.lock().unnoticed_since = None;
    }

    /// The receiving thread reached marker `check`: the publishes it settles that did not
    /// come back, now counted lost, and, if no `Gap` notice covered them, since when handles
    /// may miss them.
    pub(crate) fn reached(&self, check: u64) -> (u64, Option<Instant>) {
        self.passed.fetch_max(check, Ordering::SeqCst);
        if !self.any.load(Ordering::Acquire) {
            return (0, None);
        }
        self.reached_before(check)
    }

    /// Settles what marker `check` settles.
    fn reached_before(&self, check: u64) -> (u64, Option<Instant>) {
        let mut state = self.state.lock();
        match state.settled_by {
            Some(by) if by <= check => {
                let lost = self.take_all(&mut state);
                let since = state.unnoticed_since.take();
                (lost, since.filter(|_| lost > 0))
            }
            _ => (0, None),
        }
    }

    /// Everything still in doubt, counted lost (the bridge is done).
    pub(crate) fn give_up(&self) -> u64 {
        self.take_all(&mut self.state.lock())
    }

    fn take_all(&self, state: &mut State) -> u64 {
        let lost = state.waiting.drain().map(|(_, n)| u64::from(n)).sum();
        state.settled_by = None;
        self.any.store(false, Ordering::Release);
        lost
    }
}
