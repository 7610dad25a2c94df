//! `Route::LocalFirst`: recognising our own publishes when Redis sends them back.
//!
//! A publish delivered locally at once is also sent to Redis, which sends it back to the
//! bridge once per subscription the bridge holds there that matches: a `message` for the
//! channel, a `pmessage` per pattern. Local handles already have it, so each of those echoes
//! is skipped. At publish time the bridge writes down the echoes it expects (the local
//! subscriptions that matched, each mirrored on Redis); an arrival that equals one of them,
//! topic, channel and bytes, is taken as that echo. Identical bytes published by someone else
//! on the same channel are indistinguishable from ours, and skipping theirs instead of ours
//! leaves every local handle with the same messages, so the count stays exact.
//!
//! A publish that never went out is forgotten. One whose batch's connection failed under it
//! has an unknown fate (a hung server may run it when it resumes): its echoes stay expected,
//! so that the copy coming back then is skipped and the handles get it once. If Redis never
//! ran it, they stay until their subscription is removed, and may skip one identical message
//! (same channel, same bytes) published by someone else meanwhile.
//!
//! # Locks
//!
//! `pending` is a leaf.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::Arc;

use parking_lot::Mutex;

use crate::engine::hooks::Topic;
use crate::kind::Kind;

/// One echo expected back from Redis.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(crate) struct EchoKey {
    /// The subscription it comes back through.
    pub(crate) topic: Topic,
    pub(crate) channel: Arc<str>,
    pub(crate) payload: Arc<[u8]>,
}

/// Echoes expected and not yet seen, with how many of each.
#[derive(Default)]
pub(crate) struct Echoes {
    pending: Mutex<HashMap<EchoKey, u32>>,
}

impl Echoes {
    /// Expects each of `keys` once more.
    pub(crate) fn expect(&self, keys: &[EchoKey]) {
        if keys.is_empty() {
            return;
        }
        let mut pending = self.pending.lock();
        for key in keys {
            *pending.entry(key.clone()).or_insert(0) += 1;
        }
    }

    /// Forgets `keys` once each: their publish never went out.
    pub(crate) fn forget(&self, keys: &[EchoKey]) {
        if keys.is_empty() {
            return;
        }
        let mut pending = self.pending.lock();
        for key in keys {
            take_one(&mut pending, key);
        }
    }

    /// Forgets every echo that would come through `topic`: Redis no longer sends it any.
    pub(crate) fn forget_topic(&self, topic: &Topic) {
        self.pending.lock().retain(|key, _| &key.topic != topic);
    }

    /// Whether an arrival on `channel` (through `pattern`, if any, else the channel's own
    /// subscription) was one of our echoes; if so it is taken.
    pub(crate) fn take(&self, pattern: Option<&str>, channel: &str, payload: &[u8]) -> bool {
        let mut pending = self.pending.lock();
        if pending.is_empty() {
            return false;
        }
        let topic = match pattern {
            Some(pattern) => Topic::new(Kind::Pattern, Arc::from(pattern)),
            None => Topic::new(Kind::Channel, Arc::from(channel)),
        };
        let key = EchoKey {
            topic,
            channel: Arc::from(channel),
            payload: Arc::from(payload),
        };
        take_one(&mut pending, &key)
    }
}

/// Takes one of `key` from a multiset kept as counts; false if there was none.
pub(crate) fn take_one<K: Hash + Eq>(pending: &mut HashMap<K, u32>, key: &K) -> bool {
    match pending.get_mut(key) {
        Some(n) if *n > 1 => {
            *n -= 1;
            true
        }
        Some(_) => {
            pending.remove(key);
            true
        }
        None => false,
    }
}
