//! The pattern subscriptions of a broker, with a cache of which patterns match a channel.
//!
//! Redis tests every pattern against every published channel (O(patterns) per publish). Here
//! the first publish to a channel does that scan and keeps the indices of the patterns that
//! matched; later publishes to the same channel reuse them, until the set of patterns changes
//! (a new pattern or a removed one clears the cache; another subscriber on an existing pattern
//! does not). Matching stays exactly Redis's: the cache only remembers `glob_match` results.
//!
//! # Locks
//!
//! The table sits behind the registry's `patterns` read-write lock. The cache is split into
//! stripes with a mutex each, taken while the read lock is held (a publisher holds its
//! stripe while it delivers the cached matches); a write lock has the table to itself and
//! clears the cache without them.

use std::collections::HashMap;
use std::sync::Arc;

use parking_lot::{Mutex, MutexGuard};

use crate::channel_map::ChannelTable;
use crate::pattern::glob_match;
use crate::registry::is_sparse;

/// Cache stripes; a power of two so a hash picks one with a mask.
const CACHE_STRIPES: usize = 64;
/// Channels remembered per cache stripe before it starts over (about 64k in all).
const CACHE_CHANNELS: usize = 1024;

/// A pattern and what the registry keeps for it (its subscriptions).
pub(crate) struct Pattern<V> {
    pub(crate) pattern: Arc<str>,
    pub(crate) value: V,
}

pub(crate) struct PatternTable<V> {
    /// Unique patterns in the order they first appeared.
    entries: Vec<Pattern<V>>,
    /// Pattern text to its index in `entries`.
    index: HashMap<Arc<str>, usize>,
    /// Channel to the indices of the patterns that match it.
    cache: Box<[Mutex<ChannelTable<Vec<u32>>>]>,
}

impl<V> Default for PatternTable<V> {
    fn default() -> Self {
        PatternTable {
            entries: Vec::new(),
            index: HashMap::new(),
            cache: (0..CACHE_STRIPES).map(|_| Mutex::default()).collect(),
        }
    }
}

impl<V> PatternTable<V> {
    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }

    /// Every pattern, in the order it first appeared.
    pub(crate) fn iter(&self) -> impl Iterator<Item = &Pattern<V>> {
        self.entries.iter()
    }

    pub(crate) fn get(&self, pattern: &str) -> Option<&Pattern<V>> {
        self.index.get(pattern).map(|&i| &self.entries[i])
    }

    pub(crate) fn get_mut(&mut self, pattern: &str) -> Option<&mut Pattern<V>> {
        self.index.get(pattern).map(|&i| &mut self.entries[i])
    }

    /// The pattern's entry, added (and the cache cleared) if it is new.
    pub(crate) fn get_or_insert(&mut self, pattern: &str) -> &mut Pattern<V>
    where
        V: Default,
    {
        let i = match self.index.get(pattern) {
            Some(&i) => i,
            None => {
                let pattern: Arc<str> = Arc::from(pattern);
                self.entries.push(Pattern {
                    pattern: pattern.clone(),
                    value: V::default(),
                });
                self.index.insert(pattern, self.entries.len() - 1);
                self.clear_cache();
                self.entries.len() - 1
            }
        };
        &mut self.entries[i]
    }

    /// Removes the pattern, keeping the others in order, and clears the cache.
    pub(crate) fn remove(&mut self, pattern: &str) {
        let Some(i) = self.index.remove(pattern) else {
            return;
        };
        self.entries.remove(i);
        for later in &self.entries[i..] {
            if let Some(index) = self.index.get_mut(&later.pattern) {
                *index -= 1;
            }
        }
        if is_sparse(self.entries.len(), self.entries.capacity()) {
            self.entries.shrink_to(self.entries.len() * 2);
            self.index.shrink_to(self.entries.len() * 2);
        }
        self.clear_cache();
    }

    /// Empties the table, giving back what it held.
    pub(crate) fn take(&mut self) -> Vec<Pattern<V>> {
        self.index.clear();
        self.clear_cache();
        std::mem::take(&mut self.entries)
    }

    /// Calls `deliver` for each pattern that matches `channel` (whose hash is `hash`), in
    /// table order, holding the channel's cache stripe meanwhile.
    pub(crate) fn for_each_match(
        &self,
        hash: u64,
        channel: &str,
        mut deliver: impl FnMut(&Pattern<V>),
    ) {
        let mut stripe: MutexGuard<'_, ChannelTable<Vec<u32>>> =
            self.cache[hash as usize & (CACHE_STRIPES - 1)].lock();
        if stripe.get(hash, channel).is_none() {
            if stripe.len() >= CACHE_CHANNELS {
                drop(stripe.take());
            }
            let matches = self
                .entries
                .iter()
                .enumerate()
                .filter(|(_, p)| glob_match(&p.pattern, channel))
                .map(|(i, _)| i as u32)
                .collect();
            stripe.get_or_insert(hash, channel).value = matches;
        }
        if let Some(cached) = stripe.get(hash, channel) {
            for &i in &cached.value {
                deliver(&self.entries[i as usize]);
            }
        }
    }

    fn clear_cache(&mut self) {
        for stripe in self.cache.iter_mut() {
            let stripe = stripe.get_mut();
            if stripe.len() > 0 {
                drop(stripe.take());
            }
        }
    }
}
