//! One stripe's table of channels, looked up by a hash computed once per call.
//!
//! The index hashes a channel name once (`name.rs`) and uses the hash twice: its low bits
//! pick the stripe, and the table here finds the channel without hashing again.

use std::sync::Arc;

use hashbrown::HashTable;

use crate::name::{self, NameHasher};
use crate::shrink::is_sparse;

/// A channel's name and what the registry keeps for it. The hash is not kept (8 bytes a
/// channel): the table hashes the name again when it grows, shrinks or moves a channel.
pub(crate) struct Channel<V> {
    pub(crate) name: Arc<str>,
    pub(crate) value: V,
}

/// Channels by name, for one stripe: hashed with the broker's `hasher`, which the caller
/// also uses for the hash it looks a channel up with.
///
/// The channels sit densely in a `Vec`, and the hash table holds only their positions (4
/// bytes a bucket): a table's buckets are up to half empty after it doubles, and an empty
/// position costs 4 bytes where an empty channel would cost its whole size. Removal swaps
/// the last channel into the hole and points its bucket at its new position.
pub(crate) struct ChannelTable<V> {
    positions: HashTable<u32>,
    channels: Vec<Channel<V>>,
    hasher: NameHasher,
    /// Moves on whenever a channel is added or removed, so that a position (or an absence)
    /// found at one generation holds while the generation does (`Publisher`'s lookup).
    generation: u64,
}

impl<V> ChannelTable<V> {
    pub(crate) fn new(hasher: NameHasher) -> Self {
        ChannelTable {
            positions: HashTable::new(),
            channels: Vec::new(),
            hasher,
            generation: 0,
        }
    }

    /// The table's generation (see the field).
    #[inline]
    pub(crate) fn generation(&self) -> u64 {
        self.generation
    }

    #[inline]
    fn position(&self, hash: u64, name: &str) -> Option<usize> {
        let channels = &self.channels;
        let found = self
            .positions
            .find(hash, |&i| name::same(&channels[i as usize].name, name));
        found.map(|&i| i as usize)
    }

    #[inline]
    pub(crate) fn get(&self, hash: u64, name: &str) -> Option<&Channel<V>> {
        self.position(hash, name).map(|i| &self.channels[i])
    }

    /// Where the channel named `name` sits, valid until the generation moves on: for a
    /// publisher whose stripe's channels changed. Out of line and with a lookup of its own,
    /// so that `get`'s, which a publish inlines, keeps a single caller.
    #[cold]
    #[inline(never)]
    pub(crate) fn find_position(&self, hash: u64, name: &str) -> Option<usize> {
        let channels = &self.channels;
        let found = self
            .positions
            .find(hash, |&i| *channels[i as usize].name == *name);
        found.map(|&i| i as usize)
    }

    /// The channel at `position`, as `find_position` found it at this generation.
    #[inline]
    pub(crate) fn at(&self, position: usize) -> &Channel<V> {
        &self.channels[position]
    }

    pub(crate) fn get_mut(&mut self, hash: u64, name: &str) -> Option<&mut Channel<V>> {
        self.position(hash, name).map(|i| &mut self.channels[i])
    }

    /// The channel named `name`, made with `V::default()` if it is not there.
    pub(crate) fn get_or_insert(&mut self, hash: u64, name: &str) -> &mut Channel<V>
    where
        V: Default,
    {
        let i = match self.position(hash, name) {
            Some(i) => i,
            None => {
                let (hasher, channels) = (&self.hasher, &self.channels);
                let rehash = |&i: &u32| hasher.hash(&channels[i as usize].name);
                let i = channels.len();
                let position = u32::try_from(i).expect("fewer than 2^32 channels in a stripe");
                self.positions.insert_unique(hash, position, rehash);
                self.channels.push(Channel {
                    name: Arc::from(name),
                    value: V::default(),
                });
                self.generation += 1;
                i
            }
        };
        &mut self.channels[i]
    }

    /// Removes the channel, giving memory back once the table is mostly empty (so a burst of
    /// short-lived channels does not pin its peak size; it halves at most, amortised).
    pub(crate) fn remove(&mut self, hash: u64, name: &str) {
        let channels = &self.channels;
        let found = self
            .positions
            .find_entry(hash, |&i| name::same(&channels[i as usize].name, name));
        let Ok(found) = found else {
            return;
        };
        let (i, _) = found.remove();
        self.channels.swap_remove(i as usize);
        self.generation += 1;
        if let Some(moved) = self.channels.get(i as usize) {
            let last = self.channels.len() as u32;
            let moved_hash = self.hasher.hash(&moved.name);
            let position = self.positions.find_mut(moved_hash, |&p| p == last);
            *position.expect("every channel has a position") = i;
        }
        self.shrink_if_sparse();
    }

    fn shrink_if_sparse(&mut self) {
        let len = self.channels.len();
        if is_sparse(len, self.positions.capacity()) {
            let (hasher, channels) = (&self.hasher, &self.channels);
            let rehash = |&i: &u32| hasher.hash(&channels[i as usize].name);
            self.positions.shrink_to(len * 2, rehash);
        }
        if is_sparse(len, self.channels.capacity()) {
            self.channels.shrink_to(len * 2);
        }
    }

    pub(crate) fn iter(&self) -> impl Iterator<Item = &Channel<V>> {
        self.channels.iter()
    }

    pub(crate) fn len(&self) -> usize {
        self.channels.len()
    }

    /// Empties the table, giving back what it held.
    pub(crate) fn take(&mut self) -> impl Iterator<Item = Channel<V>> {
        self.positions = HashTable::new();
        self.generation += 1;
        std::mem::take(&mut self.channels).into_iter()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Inserts and removes in an order that moves channels around, checking after each step
    /// that every channel is found under its own name and nothing else is.
    #[test]
    fn every_channel_is_found_after_removals_move_others() {
        let hasher = NameHasher::default();
        let mut table = ChannelTable::<usize>::new(hasher);
        let hash = |name: &str| hasher.hash(name);
        let names: Vec<String> = (0..200).map(|i| format!("ch.{i}")).collect();
        for (i, name) in names.iter().enumerate() {
            table.get_or_insert(hash(name), name).value = i;
        }
        let mut present: Vec<usize> = (0..names.len()).collect();
        // Remove from the front, the middle and the end, shrinking the table as it empties.
        while !present.is_empty() {
            let at = (present.len() * 7 / 13) % present.len();
            let gone = present.swap_remove(at);
            table.remove(hash(&names[gone]), &names[gone]);
            assert!(table.get(hash(&names[gone]), &names[gone]).is_none());
            assert_eq!(table.len(), present.len());
            for &i in &present {
                let found = table.get(hash(&names[i]), &names[i]).expect("still there");
                assert_eq!((&*found.name, found.value), (names[i].as_str(), i));
            }
        }
        assert_eq!(table.iter().count(), 0);
        table.remove(hash("ch.0"), "ch.0");
    }
}
