//! One channel's or one pattern's subscriptions: the handles a publish delivers to.
//!
//! A list, because a publish walks it whole, whose first entry is kept inline, because most
//! channels have one subscriber; with a position index once it grows, so that removing one
//! handle of many (a handle dropped from a channel with 40,000 others) or finding it again (a
//! publisher that waited for room) costs O(1), not a pass over the list. Removal swaps the
//! last entry into the hole: the order in which handles of one channel get a publish is not a promise (each handle's own order is).
//!
//! Every method runs under the registry lock that guards the channel or pattern.

use std::collections::HashMap;
use std::sync::Arc;

use smallvec::SmallVec;

use crate::handle::{Handle, SubId, SubscriberId};
use crate::item::ItemSender;

/// Lists longer than this keep a position index.
const INDEXED_FROM: usize = 16;

/// One subscription as the registry holds it.
pub(crate) struct Entry<T: ?Sized> {
    pub(crate) handle: Arc<Handle<T>>,
    /// The registry's own sender into the handle's queue: the queue disconnects once every
    /// entry and the handle have let go of theirs.
    pub(crate) sender: ItemSender<T>,
    /// Which of the handle's subscriptions this is: the slot its deliveries name, and the
    /// slot's generation, so a waiting publisher knows it is still the same one.
    pub(crate) id: SubId,
}

/// The subscriptions of one channel or pattern, each handle at most once.
pub(crate) struct Entries<T: ?Sized> {
    list: SmallVec<[Entry<T>; 1]>,
    /// Handle id to its position in `list`, kept only while `list` is long. Boxed so that
    /// the common short list pays one pointer for it, not an empty map's 48 bytes.
    #[allow(clippy::box_collection)]
    positions: Option<Box<HashMap<SubscriberId, u32>>>,
}

impl<T: ?Sized> Default for Entries<T> {
    fn default() -> Self {
        Entries {
            list: SmallVec::new(),
            positions: None,
        }
    }
}

impl<T: ?Sized> Entries<T> {
    pub(crate) fn len(&self) -> usize {
        self.list.len()
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.list.is_empty()
    }

    pub(crate) fn iter(&self) -> std::slice::Iter<'_, Entry<T>> {
        self.list.iter()
    }

    #[inline]
    pub(crate) fn as_slice(&self) -> &[Entry<T>] {
        &self.list
    }

    /// Adds `entry`; its handle must not be in the list already.
    pub(crate) fn push(&mut self, entry: Entry<T>) {
        if let Some(positions) = &mut self.positions {
            positions.insert(entry.handle.id(), self.list.len() as u32);
        }
        self.list.push(entry);
        if self.positions.is_none() && self.list.len() > INDEXED_FROM {
            let index = self.list.iter().enumerate();
            let positions = index.map(|(i, e)| (e.handle.id(), i as u32)).collect();
            self.positions = Some(Box::new(positions));
        }
    }

    /// The position of `id`'s entry, if it has one.
    fn position(&self, id: SubscriberId) -> Option<usize> {
        match &self.positions {
            Some(positions) => positions.get(&id).map(|&i| i as usize),
            None => self.list.iter().position(|e| e.handle.id() == id),
        }
    }

    /// `handle`'s entry, if it is still its subscription `id`.
    pub(crate) fn get(&self, handle: SubscriberId, id: SubId) -> Option<&Entry<T>> {
        let entry = &self.list[self.position(handle)?];
        (entry.id == id).then_some(entry)
    }

    /// Removes `id`'s entry, if any, giving memory back once the list is mostly empty.
    pub(crate) fn remove(&mut self, id: SubscriberId) {
        let Some(i) = self.position(id) else {
            return;
        };
        self.list.swap_remove(i);
        if let Some(positions) = &mut self.positions {
            positions.remove(&id);
            if let Some(moved) = self.list.get(i) {
                positions.insert(moved.handle.id(), i as u32);
            }
            if self.list.len() <= INDEXED_FROM / 2 {
                self.positions = None;
            } else if crate::shrink::is_sparse(positions.len(), positions.capacity()) {
                positions.shrink_to(positions.len() * 2);
            }
        }
        if crate::shrink::is_sparse(self.list.len(), self.list.capacity()) {
            self.list.grow(self.list.len() * 2);
        }
    }
}

impl<'a, T: ?Sized> IntoIterator for &'a Entries<T> {
    type Item = &'a Entry<T>;
    type IntoIter = std::slice::Iter<'a, Entry<T>>;

    fn into_iter(self) -> Self::IntoIter {
        self.iter()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_single_subscription_lives_in_the_channel_table_slot() {
        // The inline entry (32 bytes), its length, and the boxed position index.
        assert_eq!(std::mem::size_of::<Entry<str>>(), 32);
        assert_eq!(std::mem::size_of::<Entries<str>>(), 48);
    }
}
