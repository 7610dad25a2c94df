//! One stripe's table of channels, looked up by a hash computed once per call.
//!
//! The registry hashes a channel name once (foldhash, with a per-broker random seed, so names
//! chosen from outside cannot aim at one bucket) and uses the hash twice: its low bits pick the stripe,
//! and the table here finds the channel without hashing again.

use std::hash::BuildHasher;
use std::sync::Arc;

use hashbrown::HashTable;

use crate::shrink::is_sparse;

/// A channel's name and what the registry keeps for it. The hash is not kept (8 bytes a
/// channel): the table hashes the name again when it grows or shrinks.
pub(crate) struct Channel<V> {
    pub(crate) name: Arc<str>,
    pub(crate) value: V,
}

/// Channels by name, for one stripe: hashed with the broker's `hasher`, which the caller
/// also uses for the hash it looks a channel up with.
pub(crate) struct ChannelTable<V> {
    table: HashTable<Channel<V>>,
    hasher: foldhash::fast::RandomState,
}

impl<V> ChannelTable<V> {
    pub(crate) fn new(hasher: foldhash::fast::RandomState) -> Self {
        ChannelTable {
            table: HashTable::new(),
            hasher,
        }
    }

    pub(crate) fn get(&self, hash: u64, name: &str) -> Option<&Channel<V>> {
        self.table.find(hash, |c| &*c.name == name)
    }

    pub(crate) fn get_mut(&mut self, hash: u64, name: &str) -> Option<&mut Channel<V>> {
        self.table.find_mut(hash, |c| &*c.name == name)
    }

    /// The channel named `name`, made with `V::default()` if it is not there.
    pub(crate) fn get_or_insert(&mut self, hash: u64, name: &str) -> &mut Channel<V>
    where
        V: Default,
    {
        let hasher = &self.hasher;
        let entry = self
            .table
            .entry(hash, |c| &*c.name == name, |c| hasher.hash_one(&*c.name))
            .or_insert_with(|| Channel {
                name: Arc::from(name),
                value: V::default(),
            });
        entry.into_mut()
    }

    /// Removes the channel, giving memory back once the table is mostly empty (so a burst of
    /// short-lived channels does not pin its peak size; it halves at most, amortised).
    pub(crate) fn remove(&mut self, hash: u64, name: &str) {
        if let Ok(entry) = self.table.find_entry(hash, |c| &*c.name == name) {
            entry.remove();
        }
        let (len, capacity) = (self.table.len(), self.table.capacity());
        if is_sparse(len, capacity) {
            let hasher = &self.hasher;
            self.table.shrink_to(len * 2, |c| hasher.hash_one(&*c.name));
        }
    }

    pub(crate) fn iter(&self) -> impl Iterator<Item = &Channel<V>> {
        self.table.iter()
    }

    pub(crate) fn len(&self) -> usize {
        self.table.len()
    }

    /// Empties the table, giving back what it held.
    pub(crate) fn take(&mut self) -> impl Iterator<Item = Channel<V>> {
        std::mem::take(&mut self.table).into_iter()
    }
}
