//! One stripe's table of channels, looked up by a hash computed once per call.
//!
//! The registry hashes a channel name once (foldhash, with a per-broker random seed, so names
//! chosen from outside cannot aim at one bucket) and uses the hash twice: its low bits pick the stripe,
//! and the table here finds the channel without hashing again.

use std::sync::Arc;

use hashbrown::HashTable;

use crate::shrink::is_sparse;

/// A channel's name, its hash, and what the registry keeps for it.
pub(crate) struct Channel<V> {
    pub(crate) name: Arc<str>,
    hash: u64,
    pub(crate) value: V,
}

/// Channels by name, for one stripe.
pub(crate) struct ChannelTable<V> {
    table: HashTable<Channel<V>>,
}

impl<V> Default for ChannelTable<V> {
    fn default() -> Self {
        ChannelTable {
            table: HashTable::new(),
        }
    }
}

impl<V> ChannelTable<V> {
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
        let entry = self
            .table
            .entry(hash, |c| &*c.name == name, |c| c.hash)
            .or_insert_with(|| Channel {
                name: Arc::from(name),
                hash,
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
            self.table.shrink_to(len * 2, |c| c.hash);
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
