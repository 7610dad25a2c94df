//! The pattern subscriptions of a broker, with a cache of which patterns match a channel.
//!
//! Redis tests every pattern against every published channel (O(patterns) per publish). Here
//! the first publish to a channel asks the glob index (`glob_index.rs`) for the few patterns
//! that may match it, confirms each with `glob_match`, and keeps the slots of those that
//! matched; later publishes to the same channel reuse them, until the set of patterns changes
//! (a new pattern or a removed one clears the cache; another subscriber on an existing pattern
//! does not). Matching stays exactly Redis's: the index only narrows, `glob_match` decides,
//! and the cache only remembers its results. Adding or removing a pattern costs O(1) on
//! average (a slot and a free list, and the index's own amortised upkeep), however many exist.
//!
//! # Locks
//!
//! The table sits behind the index's `patterns` read-write lock. The cache is split into
//! stripes with a mutex each, taken while the read lock is held, only to look a channel up
//! (or scan and fill it): a publisher takes the matches out (one shared slice) and lets go of
//! the stripe before it delivers. A write lock has the table to itself and clears the cache
//! without them.

use std::collections::HashMap;
use std::sync::Arc;

use parking_lot::Mutex;

use super::channels::ChannelTable;
use super::glob_index::GlobIndex;
use crate::name::NameHasher;
use crate::pattern::glob_match;
use crate::shrink::is_sparse;

/// Cache stripes; a power of two so a hash picks one with a mask.
const CACHE_STRIPES: usize = 64;
/// Channels remembered per cache stripe before it starts over (about 64k in all).
const CACHE_CHANNELS: usize = 1024;

/// One stripe of the match cache: channel to the slots of the patterns that match it.
type CacheStripe = Mutex<ChannelTable<Arc<[u32]>>>;

/// A pattern and what the registry keeps for it (its subscriptions).
pub(crate) struct Pattern<V> {
    pub(crate) name: Arc<str>,
    /// When the pattern first appeared: matches are delivered in this order.
    order: u64,
    pub(crate) value: V,
}

/// The broker's unique patterns, each in a slot of its own.
///
/// Slots are reused (a free list), so adding and removing a pattern costs O(1) however many
/// exist; the slots are compacted, in order, once most are free. Slot order is not the order
/// of appearance, so the matches of a channel are sorted by `order` once, when cached.
pub(crate) struct PatternTable<V> {
    slots: Vec<Option<Pattern<V>>>,
    /// Free slots, reused last-freed first.
    free: Vec<u32>,
    /// Pattern text to its slot.
    index: HashMap<Arc<str>, u32>,
    /// The next pattern's `order`.
    next_order: u64,
    /// Channel to the slots of the patterns that match it, in order of appearance.
    cache: Box<[CacheStripe]>,
    /// The slots that may match a channel not in the cache.
    glob: GlobIndex,
}

impl<V> PatternTable<V> {
    /// An empty table whose cache hashes channels with `hasher` (the index's).
    pub(crate) fn new(hasher: NameHasher) -> Self {
        PatternTable {
            slots: Vec::new(),
            free: Vec::new(),
            index: HashMap::new(),
            next_order: 0,
            cache: (0..CACHE_STRIPES)
                .map(|_| Mutex::new(ChannelTable::new(hasher)))
                .collect(),
            glob: GlobIndex::default(),
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.index.len()
    }

    /// Every pattern, in no particular order.
    #[cfg(feature = "redis")]
    pub(crate) fn iter(&self) -> impl Iterator<Item = &Pattern<V>> {
        self.slots.iter().flatten()
    }

    pub(crate) fn get(&self, pattern: &str) -> Option<&Pattern<V>> {
        let slot = *self.index.get(pattern)?;
        self.slots[slot as usize].as_ref()
    }

    pub(crate) fn get_mut(&mut self, pattern: &str) -> Option<&mut Pattern<V>> {
        let slot = *self.index.get(pattern)?;
        self.slots[slot as usize].as_mut()
    }

    /// The pattern's entry, added (and the cache cleared) if it is new.
    pub(crate) fn get_or_insert(&mut self, pattern: &str) -> &mut Pattern<V>
    where
        V: Default,
    {
        let slot = match self.index.get(pattern) {
            Some(&slot) => slot,
            None => {
                let pattern: Arc<str> = Arc::from(pattern);
                let entry = Pattern {
                    name: pattern.clone(),
                    order: self.next_order,
                    value: V::default(),
                };
                self.next_order += 1;
                let slot = match self.free.pop() {
                    Some(slot) => {
                        self.slots[slot as usize] = Some(entry);
                        slot
                    }
                    None => {
                        self.slots.push(Some(entry));
                        (self.slots.len() - 1) as u32
                    }
                };
                self.glob.insert(slot, &pattern);
                self.index.insert(pattern, slot);
                self.clear_cache();
                slot
            }
        };
        self.slots[slot as usize]
            .as_mut()
            .expect("an indexed slot holds its pattern")
    }

    /// Removes the pattern and clears the cache; O(1), plus an occasional compaction that
    /// the removals since the last one pay for.
    pub(crate) fn remove(&mut self, pattern: &str) {
        let Some(slot) = self.index.remove(pattern) else {
            return;
        };
        self.slots[slot as usize] = None;
        self.glob.remove(slot, pattern);
        self.free.push(slot);
        if is_sparse(self.index.len(), self.slots.len()) {
            self.compact();
        }
        self.clear_cache();
    }

    /// Moves the patterns to the front, in slot order, and gives the free slots back.
    fn compact(&mut self) {
        self.slots.retain(Option::is_some);
        self.slots.shrink_to(self.slots.len() * 2);
        self.free = Vec::new();
        self.glob = GlobIndex::default();
        for (slot, entry) in self.slots.iter().enumerate() {
            if let Some(entry) = entry {
                if let Some(at) = self.index.get_mut(&entry.name) {
                    *at = slot as u32;
                }
                self.glob.insert(slot as u32, &entry.name);
            }
        }
        if is_sparse(self.index.len(), self.index.capacity()) {
            self.index.shrink_to(self.index.len() * 2);
        }
    }

    /// The slots of the patterns that match `channel` (whose hash is `hash`), in order of
    /// appearance: from the cache, or scanned and cached. The cache's stripe is let go of
    /// before this returns.
    pub(crate) fn matches(&self, hash: u64, channel: &str) -> Arc<[u32]> {
        let mut stripe = self.cache[hash as usize & (CACHE_STRIPES - 1)].lock();
        if let Some(cached) = stripe.get(hash, channel) {
            return Arc::clone(&cached.value);
        }
        let candidates = self.glob.candidates(channel);
        if candidates.is_empty() {
            // Nothing for `glob_match` to decide, so nothing worth remembering: a channel
            // seen once (the high-cardinality case) does not fill the cache.
            return Arc::from([]);
        }
        if stripe.len() >= CACHE_CHANNELS {
            drop(stripe.take());
        }
        let mut matches: Vec<(u64, u32)> = candidates
            .into_iter()
            .filter_map(|slot| {
                let entry = self.slots[slot as usize].as_ref()?;
                glob_match(&entry.name, channel).then_some((entry.order, slot))
            })
            .collect();
        matches.sort_unstable();
        let slots: Arc<[u32]> = matches.into_iter().map(|(_, slot)| slot).collect();
        stripe.get_or_insert(hash, channel).value = Arc::clone(&slots);
        slots
    }

    /// The slot of `pattern`, compared as text.
    pub(crate) fn slot(&self, pattern: &str) -> Option<u32> {
        self.index.get(pattern).copied()
    }

    /// The pattern in `slot`, from `matches`.
    pub(crate) fn at(&self, slot: u32) -> Option<&Pattern<V>> {
        self.slots.get(slot as usize)?.as_ref()
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
