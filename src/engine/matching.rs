//! Matching status: for each channel a [`Publisher`](crate::Publisher) publishes on, how many
//! of the index's names a publish there reaches (the channel itself, while it has
//! subscribers, and each pattern that matches it, while that has subscribers), and the
//! changes of that number between zero and not zero.
//!
//! # Exact, in order
//!
//! A channel gains or loses its first or last subscriber under its stripe's lock, a pattern
//! under the pattern table's write lock, and each tells the interests here under that lock
//! (`Index::add` and `Index::remove`). An interest is made holding the table's read lock and
//! the channel's stripe lock, so it counts what stands and misses no change after. Both kinds
//! of change may meet on one interest, so its count is changed under its own `status` lock (a
//! leaf, taken under the index locks); a change of "zero or not" adds one to `changes` under
//! it. So changes alternate, starting from unmatched: matched while `changes` is odd.
//!
//! # Waiting
//!
//! Threads and tasks wait for `changes` (or the close) as `handle/wake.rs` describes: the
//! side that changes it takes the waiters' wakers under the index lock and wakes them once
//! it has let go of every lock.
//!
//! # Locks
//!
//! `Interests::table` is taken under an index lock (level 2 in `index.rs`) for a change, and
//! under the pattern table's read lock and a stripe lock for a new interest; an interest's
//! `status` under it. Dropping the last user of an interest, and the broker's close, take
//! `table` alone. The close sets the table's `closed` under its write lock, after every
//! handle was detached: a new interest sees it there (and is born closed) or is in the table
//! the close marks.
//!
//! # Atomic orderings
//!
//! `changes` and `closed` are written under `status` (`Release`) and read without it
//! (`Acquire`): a reader that sees a change sees the subscription change behind it, and one
//! that sees `closed` sees every change before it (`close` sets it after detaching every
//! handle). `users` is changed under `table`'s write lock when an interest is found there,
//! and otherwise only from a live user (`Relaxed`, as `Arc` counts); the last user takes the
//! lock and checks again before removing it. `count` mirrors `table.len()`: written under
//! the write lock, read under an index lock that a new interest also held.

use std::collections::BTreeMap;
use std::ops::Bound;
use std::sync::atomic::AtomicUsize;
use std::sync::Arc;
use std::task::Waker;
use std::time::Instant;

use parking_lot::RwLock;

use crate::handle::{WakeList, Woken};
use crate::kind::Kind;
use crate::pattern::glob_match;
// The status and its waiting, model-checked with loom (`model_check.rs`); the rest is not.
use crate::sync::{AtomicBool, AtomicU64, Mutex, Ordering};

/// The channels publishers watch, by name.
#[derive(Default)]
pub(crate) struct Interests {
    table: RwLock<Table>,
    /// The table's length, so that a change skips the lock while no publisher exists.
    count: AtomicUsize,
}

#[derive(Default)]
struct Table {
    /// By channel, sorted: the channels a pattern may match are those that start with its
    /// literal prefix, one range of the map.
    interests: BTreeMap<Arc<str>, Arc<Interest>>,
    /// The same, by channel reversed: those that end with its literal suffix.
    reversed: BTreeMap<String, Arc<Interest>>,
    /// Set by the broker's close, under the write lock: an interest made after it is born
    /// closed, whatever the index's own flag looked like to its maker.
    closed: bool,
}

/// One channel's matching status, shared by its publishers and their watches.
pub(crate) struct Interest {
    channel: Arc<str>,
    hash: u64,
    /// Names a publish on the channel reaches: 1 for the channel while it has subscribers,
    /// and 1 for each matching pattern that has.
    status: Mutex<usize>,
    /// How often the status changed, starting from unmatched: odd while matched.
    changes: AtomicU64,
    /// Set once the broker is closed: nothing will change any more.
    closed: AtomicBool,
    /// Threads and tasks waiting for a change.
    waiters: WakeList,
    /// Publishers and watches holding it; the last one removes it from the table.
    users: AtomicUsize,
    /// Where the channel sat in its stripe's table, and at which generation
    /// (`channels.rs`): `u64::MAX` for "absent". Read and written under the stripe's lock.
    position: AtomicU64,
    generation: AtomicU64,
}

/// A publisher's or a watch's hold on an interest: counted while it lives, so that the last
/// one removes the interest from the table.
pub(crate) struct Watching {
    interests: Arc<Interests>,
    interest: Arc<Interest>,
}

impl Watching {
    /// Holds `interest`, already counted as a user.
    pub(crate) fn new(interests: Arc<Interests>, interest: Arc<Interest>) -> Self {
        Watching {
            interests,
            interest,
        }
    }

    #[inline]
    pub(crate) fn interest(&self) -> &Interest {
        &self.interest
    }
}

impl Clone for Watching {
    fn clone(&self) -> Self {
        // From a live user, so the interest is in the table (see the module docs).
        self.interest.users.fetch_add(1, Ordering::Relaxed);
        Watching::new(Arc::clone(&self.interests), Arc::clone(&self.interest))
    }
}

impl Drop for Watching {
    fn drop(&mut self) {
        self.interests.release(&self.interest);
    }
}

/// A change to the names a publish reaches: one gained its first subscriber, or lost its last.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Reached {
    Gained,
    Lost,
}

impl Interests {
    /// The interest in `channel` (whose hash is `hash`), made with `reach` names reached if
    /// there is none yet, and counted as one more user. Call holding the pattern table's read
    /// lock and the channel's stripe lock (see the module docs); `reach` is called only to
    /// make one.
    pub(crate) fn get_or_insert(
        &self,
        channel: &str,
        hash: u64,
        reach: impl FnOnce() -> usize,
    ) -> Arc<Interest> {
        let mut table = self.table.write();
        if let Some(found) = table.interests.get(channel) {
            found.users.fetch_add(1, Ordering::Relaxed);
            return Arc::clone(found);
        }
        let closed = table.closed;
        let reach = if closed { 0 } else { reach() };
        let interest = Arc::new(Interest {
            channel: Arc::from(channel),
            hash,
            status: Mutex::new(reach),
            changes: AtomicU64::new(u64::from(reach > 0)),
            closed: AtomicBool::new(closed),
            waiters: WakeList::default(),
            users: AtomicUsize::new(1),
            position: AtomicU64::new(u64::MAX),
            generation: AtomicU64::new(u64::MAX),
        });
        let reversed = reverse(channel);
        table.reversed.insert(reversed, Arc::clone(&interest));
        let interests = &mut table.interests;
        interests.insert(interest.channel.clone(), Arc::clone(&interest));
        self.count.store(interests.len(), Ordering::Relaxed);
        interest
    }

    /// One user of `interest` fewer; the last removes it from the table.
    pub(crate) fn release(&self, interest: &Arc<Interest>) {
        if interest.users.fetch_sub(1, Ordering::AcqRel) != 1 {
            return;
        }
        let mut table = self.table.write();
        // A publisher made meanwhile found it in the table and counted itself; or another
        // last user removed it, and the channel's entry is a newer interest, not this one.
        let interests = &mut table.interests;
        let current = (interests.get(&interest.channel)).is_some_and(|i| Arc::ptr_eq(i, interest));
        if current && interest.users.load(Ordering::Relaxed) == 0 {
            interests.remove(&interest.channel);
            self.count.store(interests.len(), Ordering::Relaxed);
            table.reversed.remove(&reverse(&interest.channel));
        }
    }

    /// `name` (a `kind`) gained its first subscriber or lost its last: every interest whose
    /// publishes it reaches counts it. Called under the index lock that made the change.
    pub(crate) fn changed(&self, kind: Kind, name: &str, reached: Reached, woken: &mut Woken) {
        if self.count.load(Ordering::Relaxed) == 0 {
            return;
        }
        let table = self.table.read();
        match kind {
            Kind::Channel => {
                if let Some(interest) = table.interests.get(name) {
                    interest.count(reached, woken);
                }
            }
            Kind::Pattern => {
                // Only channels that start with the pattern's literal prefix, or end with its
                // literal suffix, can match: the longer one picks a range of one map.
                let (prefix, suffix) = (literal_prefix(name), literal_suffix(name));
                let mut count = |candidates: &mut dyn Iterator<Item = &Arc<Interest>>| {
                    for interest in candidates.filter(|i| glob_match(name, &i.channel)) {
                        interest.count(reached, woken);
                    }
                };
                if prefix.len() >= suffix.len() {
                    let from = (Bound::Included(prefix), Bound::Unbounded);
                    let range = table.interests.range::<str, _>(from);
                    let within = range.take_while(|(channel, _)| channel.starts_with(prefix));
                    count(&mut within.map(|(_, interest)| interest));
                } else {
                    let suffix = reverse(suffix);
                    let from = (Bound::Included(suffix.as_str()), Bound::Unbounded);
                    let range = table.reversed.range::<str, _>(from);
                    let within = range.take_while(|(channel, _)| channel.starts_with(&suffix));
                    count(&mut within.map(|(_, interest)| interest));
                }
            }
        }
    }

    /// The broker closed, and every handle with it: each interest's watches end.
    pub(crate) fn close(&self, woken: &mut Woken) {
        let mut table = self.table.write();
        table.closed = true;
        for interest in table.interests.values() {
            let _status = interest.status.lock();
            interest.closed.store(true, Ordering::Release);
            interest.waiters.take(woken);
        }
    }
}

/// The bytes every channel `pattern` matches starts with: those before its first `*`, `?`,
/// `[` or `\\` (all ASCII, so the cut is a character boundary).
fn literal_prefix(pattern: &str) -> &str {
    let end = pattern.find(['*', '?', '[', '\\']).unwrap_or(pattern.len());
    &pattern[..end]
}

/// The bytes every channel `pattern` matches ends with: those after its last `*` or `?`, for
/// a pattern with no `[` or `\\` (whose classes and escapes are not worth reading backwards).
fn literal_suffix(pattern: &str) -> &str {
    if pattern.contains(['[', '\\']) {
        return "";
    }
    let start = pattern.rfind(['*', '?']).map_or(0, |i| i + 1);
    &pattern[start..]
}

/// `text`'s characters in reverse order: a channel ends with a suffix exactly when its
/// reverse starts with the suffix's reverse.
fn reverse(text: &str) -> String {
    text.chars().rev().collect()
}

impl Interest {
    pub(crate) fn channel(&self) -> &Arc<str> {
        &self.channel
    }

    pub(crate) fn hash(&self) -> u64 {
        self.hash
    }

    fn count(&self, reached: Reached, woken: &mut Woken) {
        let mut status = self.status.lock();
        let before = *status;
        // A name lost was counted: it was there when the interest was made (under the same
        // locks) or told as gained since.
        debug_assert!(before > 0 || reached == Reached::Gained);
        *status = match reached {
            Reached::Gained => before + 1,
            Reached::Lost => before.saturating_sub(1),
        };
        if (before == 0) != (*status == 0) {
            let changes = self.changes.load(Ordering::Relaxed);
            self.changes.store(changes + 1, Ordering::Release);
            self.waiters.take(woken);
        }
    }

    /// How often the status changed, starting from unmatched (odd: matched).
    #[inline]
    pub(crate) fn changes(&self) -> u64 {
        self.changes.load(Ordering::Acquire)
    }

    /// Whether the broker closed: no change comes any more.
    pub(crate) fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }

    /// The channel's position in its stripe at `generation`, if remembered (`Some(None)`:
    /// absent). Call under the stripe's lock.
    #[inline]
    pub(crate) fn position_at(&self, generation: u64) -> Option<Option<usize>> {
        if self.generation.load(Ordering::Relaxed) != generation {
            return None;
        }
        let position = self.position.load(Ordering::Relaxed);
        Some((position != u64::MAX).then_some(position as usize))
    }

    /// Remembers the channel's position at `generation`. Call under the stripe's lock.
    pub(crate) fn remember(&self, generation: u64, position: Option<usize>) {
        let position = position.map_or(u64::MAX, |p| p as u64);
        self.position.store(position, Ordering::Relaxed);
        self.generation.store(generation, Ordering::Relaxed);
    }

    /// Waits, parking the thread, until `done` gives an answer from `changes` and whether the
    /// broker closed, or `deadline` passes (then `None`).
    pub(crate) fn wait<R>(
        &self,
        deadline: Option<Instant>,
        mut done: impl FnMut(u64, bool) -> Option<R>,
    ) -> Option<R> {
        let (waiter, waker) = crate::handle::this_thread();
        loop {
            if let Some(answer) = self.poll(waiter, &waker, &mut done) {
                return Some(answer);
            }
            match deadline {
                None => std::thread::park(),
                Some(deadline) => {
                    let now = Instant::now();
                    if now >= deadline {
                        self.waiters.forget(waiter);
                        return None;
                    }
                    std::thread::park_timeout(deadline - now);
                }
            }
        }
    }

    /// One look: `done`'s answer, or `None` with `waker` registered under `waiter` to be woken
    /// by the next change (the waiter looks once more after registering, as `wake.rs` says).
    pub(crate) fn poll<R>(
        &self,
        waiter: u64,
        waker: &Waker,
        mut done: impl FnMut(u64, bool) -> Option<R>,
    ) -> Option<R> {
        let mut look = || {
            let closed = self.is_closed();
            done(self.changes(), closed)
        };
        if let Some(answer) = look() {
            self.waiters.forget(waiter);
            return Some(answer);
        }
        self.waiters.register(waiter, waker);
        let answer = look();
        if answer.is_some() {
            self.waiters.forget(waiter);
        }
        answer
    }

    /// A task that waited no longer does.
    #[cfg(feature = "async")]
    pub(crate) fn forget(&self, waiter: u64) {
        self.waiters.forget(waiter);
    }
}
