//! A handle's subscription names by slot, for its readers.
//!
//! A queued delivery names its subscription by slot (`item.rs`); the reader takes the name
//! from here to build the `Message`. A slot is claimed when the handle subscribes and retired
//! when a reader takes that subscription's `Unsubscribe` confirmation, the last item that can
//! name it; only then may it serve another subscription, so a delivery always finds its own
//! name. A slot's generation goes up each time it is claimed: slot and generation together
//! ([`SubId`]) tell one subscription from every other of the handle, which is how a
//! publisher that waited for room knows the subscription it found still stands.
//!
//! A name starts as the index's shared one; the first time a reader needs it, it makes a
//! copy of its own, so the readers of different handles on one channel never bounce one
//! reference count between their cores.

use std::sync::Arc;

use crate::shrink::is_sparse;

/// One subscription of one handle: a slot of its `Names` and that slot's generation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) struct SubId {
    pub(crate) slot: u32,
    generation: u32,
}

/// The names of a handle's subscriptions, by slot.
#[derive(Default)]
pub(crate) struct Names {
    slots: Vec<Slot>,
    /// Retired slots, reused last-retired first; may hold slots past the end of `slots`
    /// (cut off since), which `claim` skips.
    free: Vec<u32>,
    /// Claimed slots.
    live: usize,
    /// The next generation: one counter for every slot, so no slot's (slot, generation)
    /// comes back, even after the slot was cut off and made again.
    next_generation: u32,
}

struct Slot {
    /// `None` once retired.
    name: Option<Arc<str>>,
    /// Whether `name` is this handle's own copy.
    own: bool,
}

impl Names {
    /// A slot for a new subscription to `name`.
    pub(crate) fn claim(&mut self, name: Arc<str>) -> SubId {
        let generation = self.next_generation;
        self.next_generation = generation.wrapping_add(1);
        self.live += 1;
        let fresh = Slot {
            name: Some(name),
            own: false,
        };
        while let Some(slot) = self.free.pop() {
            if let Some(entry) = self.slots.get_mut(slot as usize) {
                *entry = fresh;
                return SubId { slot, generation };
            }
        }
        let slot = u32::try_from(self.slots.len()).expect("fewer than 2^32 subscriptions");
        self.slots.push(fresh);
        SubId { slot, generation }
    }

    /// The name in `slot`, for a `Message`: the handle's own copy.
    pub(crate) fn name(&mut self, slot: u32) -> Arc<str> {
        let entry = &mut self.slots[slot as usize];
        let name = entry
            .name
            .as_mut()
            .expect("a queued delivery's slot is claimed");
        if !entry.own {
            *name = Arc::from(&**name);
            entry.own = true;
        }
        Arc::clone(name)
    }

    /// Frees `slot` for another subscription, and gives memory back: free slots at the end
    /// are cut off, and everything once no slot is claimed.
    pub(crate) fn retire(&mut self, slot: u32) {
        let Some(entry) = self.slots.get_mut(slot as usize) else {
            return;
        };
        if entry.name.take().is_none() {
            return;
        }
        self.live -= 1;
        if self.live == 0 {
            self.slots = Vec::new();
            self.free = Vec::new();
            return;
        }
        self.free.push(slot);
        while self.slots.last().is_some_and(|s| s.name.is_none()) {
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
    }
}

#[cfg(test)]
mod tests {
    use super::Names;

    #[test]
    fn a_slot_is_reused_only_once_retired_and_then_with_a_new_generation() {
        let mut names = Names::default();
        let a = names.claim("a".into());
        let b = names.claim("b".into());
        assert_ne!(a.slot, b.slot);
        assert_eq!(&*names.name(a.slot), "a");
        names.retire(a.slot);
        names.retire(a.slot); // twice is harmless
        let c = names.claim("c".into());
        assert_eq!(c.slot, a.slot);
        assert_ne!(c, a, "a new generation");
        assert_eq!(&*names.name(c.slot), "c");
        assert_eq!(&*names.name(b.slot), "b");
    }

    #[test]
    fn a_reader_gets_a_copy_of_its_own() {
        let shared: std::sync::Arc<str> = "shared".into();
        let mut names = Names::default();
        let id = names.claim(shared.clone());
        let first = names.name(id.slot);
        assert!(!std::sync::Arc::ptr_eq(&first, &shared));
        assert!(std::sync::Arc::ptr_eq(&first, &names.name(id.slot)));
    }
}
