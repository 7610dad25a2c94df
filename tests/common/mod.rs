//! Helpers shared by the integration tests.
#![allow(dead_code)] // each test binary uses a different part

pub mod glob_reference;
pub mod redis;

use std::time::Duration;

use fanout::{Message, PubSub};
use proptest::prelude::*;

/// Everything queued on `sub` right now, without waiting.
pub fn drain<T: ?Sized>(sub: &PubSub<T>) -> Vec<Message<T>> {
    std::iter::from_fn(|| sub.get_message(Duration::ZERO)).collect()
}

/// `(kind, name, count)` of each queued confirmation: the triple Redis sends.
pub fn confirmations<T: ?Sized>(sub: &PubSub<T>) -> Vec<(&'static str, String, usize)> {
    drain(sub)
        .into_iter()
        .map(|m| {
            let name = m.channel().or(m.pattern()).unwrap_or_default().to_string();
            let count = m.count().expect("only confirmations were expected");
            (m.kind(), name, count)
        })
        .collect()
}

/// Builds the triples `confirmations` returns, from literals.
pub fn triples(items: &[(&'static str, &str, usize)]) -> Vec<(&'static str, String, usize)> {
    items
        .iter()
        .map(|&(kind, name, count)| (kind, name.to_string(), count))
        .collect()
}

/// Strings of up to `max` characters drawn from `alphabet`: glob metacharacters and the
/// like, so patterns and channels exercise every matching rule.
pub fn text_from(alphabet: &[char], max: usize) -> impl Strategy<Value = String> {
    proptest::collection::vec(prop::sample::select(alphabet.to_vec()), 0..max)
        .prop_map(|chars| chars.into_iter().collect())
}

/// How many times a race test repeats its interleaving: `FANOUT_RACE_ROUNDS` if set, else
/// 1,000 in release builds and 200 in debug ones (so `cargo test` stays quick; run
/// `cargo test --release` for the full count).
pub fn race_rounds() -> usize {
    std::env::var("FANOUT_RACE_ROUNDS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(if cfg!(debug_assertions) { 200 } else { 1_000 })
}

/// Runs `f` on a thread of its own and returns what it returned, or `None` if it did not
/// finish within `limit` (the thread is then left running: the caller unblocks it).
pub fn within<R: Send + 'static>(
    limit: Duration,
    f: impl FnOnce() -> R + Send + 'static,
) -> Option<R> {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    rx.recv_timeout(limit).ok()
}
