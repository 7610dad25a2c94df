//! A handle's subscriptions, by name for its calls and by slot for its readers.
//!
//! Each subscription lives in a slot. A queued delivery names its subscription by slot
//! (`item.rs`), and the reader takes the name from here to build the `Message`. A slot is
//! claimed when the handle subscribes; unsubscribing takes it out of the by-name index but
//! keeps its name, and it is retired when a reader takes that subscription's `Unsubscribe`
//! confirmation, the last item that can name it: only then may it serve another subscription,
//! so a delivery always finds its own name. Every claim gets the next generation of one
//! counter: slot and generation together ([`SubId`]) tell one subscription from every other of
//! the handle (how a publisher that waited for room knows the subscription it found still
//! stands), and generations give the order in which names were subscribed.
//!
//! A subscription made with a handler keeps it in its slot: a delivery goes to the handler
//! of the subscription it came through, until that subscription's confirmation is read (as
//! redis-py forgets a handler when it reads the `unsubscribe` reply), so deliveries queued
//! before an unsubscription still reach their handler, and a later subscription to the same
//! name, with or without a handler, never takes them.
//!
//! A name starts as the index's shared one; the first time a reader needs it, it makes a
//! copy of its own, so the readers of different handles on one channel never bounce one
//! reference count between their cores.
//!
//! Memory: a slot is 24 bytes and the by-name index 4 bytes (and a control byte) per name;
//! free slots at the end are given back, and everything once no slot is in use.

use std::collections::HashMap;
use std::hash::BuildHasher;
use std::sync::Arc;

use hashbrown::HashTable;

use crate::kind::Kind;
use crate::message::Message;
use crate::pattern::glob_match;
use crate::shrink::{is_sparse, shrink_if_sparse};

/// A handler for the deliveries of one subscription.
pub(crate) type Handler<T> = Arc<dyn Fn(Message<T>) + Send + Sync>;

/// One subscription of one handle: a slot of its `Names` and that claim's generation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) struct SubId {
    pub(crate) slot: u32,
    generation: u32,
}

impl SubId {
    /// The order in which the handle made its subscriptions: a later one has a larger
    /// number (until the counter wraps, after 2^32 subscriptions of one handle).
    pub(crate) fn order(self) -> u32 {
        self.generation
    }
}

/// What a slot holds now.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Use {
    Free,
    /// A subscription the handle has.
    Subscribed,
    /// Unsubscribed; its confirmation is queued and its name still needed by deliveries
    /// queued before it.
    Retiring,
}

struct Slot {
    /// `None` when free.
    name: Option<Arc<str>>,
    generation: u32,
    kind: Kind,
    used: Use,
    /// Whether `name` is this handle's own copy.
    own: bool,
}

/// A handle's subscriptions.
pub(crate) struct Names<T: ?Sized> {
    slots: Vec<Slot>,
    /// Free slots, reused last-freed first; may hold slots past the end of `slots` (cut off
    /// since), which `claim` skips.
    free: Vec<u32>,
    /// Subscribed slots by name, one table per kind (`Kind::index`).
    by_name: [HashTable<u32>; 2],
    hasher: foldhash::fast::RandomState,
    /// Slots not free.
    in_use: usize,
    next_generation: u32,
    /// The handlers of the slots subscribed with one (until the slot is retired).
    handlers: HashMap<u32, Handler<T>, foldhash::fast::RandomState>,
    /// Queued confirmations that took the count to 0 and are not read yet: the handle is
    /// subscribed, as redis-py's `subscribed` says, until the reader has seen its last one.
    unread_ends: usize,
}

impl<T: ?Sized> Default for Names<T> {
    fn default() -> Self {
        Names {
            slots: Vec::new(),
            free: Vec::new(),
            by_name: [HashTable::new(), HashTable::new()],
            hasher: foldhash::fast::RandomState::default(),
            in_use: 0,
            next_generation: 0,
            handlers: HashMap::default(),
            unread_ends: 0,
        }
    }
}

impl<T: ?Sized> Names<T> {
    fn index(&self, kind: Kind) -> &HashTable<u32> {
        &self.by_name[kind.index()]
    }

    fn name_of(slots: &[Slot], slot: u32) -> &str {
        slots[slot as usize].name.as_deref().unwrap_or_default()
    }

    /// The subscription to `name`, if the handle has it: the name as the index shares it.
    pub(crate) fn lookup(&self, kind: Kind, name: &str) -> Option<(Arc<str>, SubId)> {
        let hash = self.hasher.hash_one(name);
        let slots = &self.slots;
        let &slot = self
            .index(kind)
            .find(hash, |&s| Self::name_of(slots, s) == name)?;
        let entry = &slots[slot as usize];
        let shared = entry.name.clone()?;
        let id = SubId {
            slot,
            generation: entry.generation,
        };
        Some((shared, id))
    }

    /// Whether a subscription of the handle but `except` receives what is published to
    /// `channel`: the channel's own, or a pattern that matches it.
    pub(crate) fn receives(&self, channel: &str, except: SubId) -> bool {
        let slots = &self.slots;
        let hash = self.hasher.hash_one(channel);
        let own = self
            .index(Kind::Channel)
            .find(hash, |&s| Self::name_of(slots, s) == channel);
        own.is_some_and(|&s| s != except.slot)
            || (self.index(Kind::Pattern).iter())
                .any(|&s| s != except.slot && glob_match(Self::name_of(slots, s), channel))
    }

    /// Channels plus patterns subscribed: the count a confirmation carries.
    pub(crate) fn count(&self) -> usize {
        self.by_name.iter().map(HashTable::len).sum()
    }

    /// Records a new subscription to `name` (the index's shared text) in a slot of its own,
    /// with its handler if it has one.
    pub(crate) fn claim(
        &mut self,
        kind: Kind,
        name: Arc<str>,
        handler: Option<Handler<T>>,
    ) -> SubId {
        let generation = self.next_generation;
        self.next_generation = generation.wrapping_add(1);
        self.in_use += 1;
        let hash = self.hasher.hash_one(&*name);
        let fresh = Slot {
            name: Some(name),
            generation,
            kind,
            used: Use::Subscribed,
            own: false,
        };
        let slot = loop {
            match self.free.pop() {
                Some(slot) if (slot as usize) < self.slots.len() => {
                    self.slots[slot as usize] = fresh;
                    break slot;
                }
                Some(_) => continue,
                None => {
                    let slot =
                        u32::try_from(self.slots.len()).expect("fewer than 2^32 subscriptions");
                    self.slots.push(fresh);
                    break slot;
                }
            }
        };
        let (slots, hasher) = (&self.slots, &self.hasher);
        let rehash = |&s: &u32| hasher.hash_one(Self::name_of(slots, s));
        self.by_name[kind.index()].insert_unique(hash, slot, rehash);
        if let Some(handler) = handler {
            self.handlers.insert(slot, handler);
        }
        SubId { slot, generation }
    }

    /// Gives the subscription `id` the handler `handler` (subscribing again with one), and
    /// returns the one it replaces, for the caller to drop once it holds no lock.
    pub(crate) fn set_handler(&mut self, id: SubId, handler: Handler<T>) -> Option<Handler<T>> {
        self.handlers.insert(id.slot, handler)
    }

    /// The handler of the subscription in `slot`, if it was made with one.
    #[inline]
    pub(crate) fn handler(&self, slot: u32) -> Option<Handler<T>> {
        if self.handlers.is_empty() {
            return None;
        }
        self.handlers.get(&slot).cloned()
    }

    /// Every handler, taken out (the queue has ended), for the caller to drop once it holds
    /// no lock: dropping a handler may drop a handle.
    pub(crate) fn take_handlers(
        &mut self,
    ) -> HashMap<u32, Handler<T>, foldhash::fast::RandomState> {
        std::mem::take(&mut self.handlers)
    }

    /// The first subscription, by kind then name, that has no handler.
    pub(crate) fn without_handler(&self) -> Option<(Kind, String)> {
        Kind::BOTH.into_iter().find_map(|kind| {
            let slots = &self.slots;
            let without = self.index(kind).iter().copied();
            let without = without.filter(|s| !self.handlers.contains_key(s));
            let first = without.map(|s| Self::name_of(slots, s)).min();
            first.map(|name| (kind, name.to_string()))
        })
    }

    /// Takes the subscription to `name` out of the by-name index; its slot keeps the name
    /// until its confirmation is read (`retire`).
    pub(crate) fn unsubscribe(&mut self, kind: Kind, name: &str) -> Option<(Arc<str>, SubId)> {
        let hash = self.hasher.hash_one(name);
        let slots = &self.slots;
        let (slot, _) = self.by_name[kind.index()]
            .find_entry(hash, |&s| Self::name_of(slots, s) == name)
            .ok()?
            .remove();
        self.give_back_index(kind);
        let entry = &mut self.slots[slot as usize];
        entry.used = Use::Retiring;
        let id = SubId {
            slot,
            generation: entry.generation,
        };
        let name = entry.name.clone()?;
        if self.count() == 0 {
            self.unread_ends += 1;
        }
        Some((name, id))
    }

    /// A reader took a confirmation that took the count to 0 (see `unread_ends`).
    pub(crate) fn end_read(&mut self) {
        self.unread_ends = self.unread_ends.saturating_sub(1);
    }

    /// Whether a confirmation that took the count to 0 waits to be read.
    pub(crate) fn end_unread(&self) -> bool {
        self.unread_ends > 0
    }

    /// The names of one kind, in the order they were subscribed.
    pub(crate) fn in_order(&self, kind: Kind) -> Vec<Arc<str>> {
        let mut subscribed: Vec<&Slot> = self
            .index(kind)
            .iter()
            .map(|&s| &self.slots[s as usize])
            .collect();
        subscribed.sort_unstable_by_key(|s| s.generation);
        subscribed.iter().filter_map(|s| s.name.clone()).collect()
    }

    /// Every subscription, taken out of the by-name index (the handle stops; its slots keep
    /// their names for what is still queued).
    pub(crate) fn take_all(&mut self) -> Vec<(Kind, Arc<str>)> {
        let mut all = Vec::with_capacity(self.count());
        for kind in Kind::BOTH {
            for slot in std::mem::take(&mut self.by_name[kind.index()]) {
                let entry = &mut self.slots[slot as usize];
                entry.used = Use::Retiring;
                all.extend(entry.name.clone().map(|name| (kind, name)));
            }
        }
        all
    }

    /// The name in `slot`, for a `Message`: the handle's own copy.
    #[inline]
    pub(crate) fn name(&mut self, slot: u32) -> Arc<str> {
        let entry = &mut self.slots[slot as usize];
        let name = entry
            .name
            .as_mut()
            .expect("a queued delivery's slot is in use");
        if !entry.own {
            *name = Arc::from(&**name);
            entry.own = true;
        }
        Arc::clone(name)
    }

    /// Frees `slot` (its `Unsubscribe` confirmation was read), and gives memory back; returns
    /// the slot's handler, for the caller to drop once it holds no lock.
    pub(crate) fn retire(&mut self, slot: u32) -> Option<Handler<T>> {
        let entry = self.slots.get_mut(slot as usize)?;
        if entry.used != Use::Retiring {
            return None;
        }
        let handler = self.handlers.remove(&slot);
        shrink_if_sparse(&mut self.handlers);
        *entry = Slot {
            name: None,
            generation: entry.generation,
            kind: entry.kind,
            used: Use::Free,
            own: false,
        };
        self.in_use -= 1;
        if self.in_use == 0 {
            self.slots = Vec::new();
            self.free = Vec::new();
            return handler;
        }
        self.free.push(slot);
        while self.slots.last().is_some_and(|s| s.used == Use::Free) {
            self.slots.pop();
        }
        if is_sparse(self.slots.len(), self.slots.capacity()) {
            self.slots.shrink_to(self.slots.len() * 2);
        }
        if self.free.len() > 2 * self.slots.len() {
            let end = self.slots.len();
            self.free.retain(|&s| (s as usize) < end);
            self.free.shrink_to(self.free.len() * 2);
        }
        handler
    }

    fn give_back_index(&mut self, kind: Kind) {
        let (slots, hasher) = (&self.slots, &self.hasher);
        let index = &mut self.by_name[kind.index()];
        if is_sparse(index.len(), index.capacity()) {
            index.shrink_to(index.len() * 2, |&s| {
                hasher.hash_one(Self::name_of(slots, s))
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Names;
    use crate::kind::Kind;

    #[test]
    fn a_slot_is_reused_only_once_retired_and_then_with_a_new_generation() {
        let mut names = Names::<str>::default();
        let a = names.claim(Kind::Channel, "a".into(), None);
        let b = names.claim(Kind::Pattern, "b".into(), None);
        assert_ne!(a.slot, b.slot);
        assert_eq!(names.count(), 2);
        assert_eq!(names.lookup(Kind::Channel, "a").map(|(_, id)| id), Some(a));
        assert_eq!(names.lookup(Kind::Pattern, "a"), None, "kinds are apart");
        assert_eq!(&*names.name(a.slot), "a");
        assert_eq!(
            names.unsubscribe(Kind::Channel, "a").map(|(_, id)| id),
            Some(a)
        );
        assert_eq!(names.count(), 1);
        let c = names.claim(Kind::Channel, "c".into(), None);
        assert_ne!(c.slot, a.slot, "a retiring slot is not reused");
        assert_eq!(
            &*names.name(a.slot),
            "a",
            "its name stays for queued deliveries"
        );
        names.retire(a.slot);
        names.retire(a.slot); // twice is harmless
        let d = names.claim(Kind::Channel, "d".into(), None);
        assert_eq!(d.slot, a.slot);
        assert_ne!(d, a, "a new generation");
        assert_eq!(&*names.name(d.slot), "d");
        assert_eq!(
            names.in_order(Kind::Channel),
            ["c".into(), "d".into()] as [std::sync::Arc<str>; 2]
        );
    }

    #[test]
    fn a_reader_gets_a_copy_of_its_own() {
        let shared: std::sync::Arc<str> = "shared".into();
        let mut names = Names::<str>::default();
        let id = names.claim(Kind::Channel, shared.clone(), None);
        let first = names.name(id.slot);
        assert!(!std::sync::Arc::ptr_eq(&first, &shared));
        assert!(std::sync::Arc::ptr_eq(&first, &names.name(id.slot)));
    }
}
