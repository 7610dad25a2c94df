//! One delivery per publish (`PubSubBuilder::one_delivery_per_publish`): which handles made
//! with it one publish meets, and through which of their subscriptions it reaches them.
//!
//! A handle the channel's delivery reached gets no pattern delivery. One it did not reach gets
//! the publish through its matching pattern subscription made first; its other matching
//! subscriptions stand in for that one, should the delivery wait for room and find it gone.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use crate::handle::{SubId, SubscriberId};

/// A matching pattern subscription: the pattern's table slot, the subscription, the pattern.
pub(crate) type Match = (u32, SubId, Arc<str>);

/// The handles made with `one_delivery_per_publish` that one publish meets.
#[derive(Default)]
pub(crate) struct Once {
    reached: HashSet<SubscriberId>,
    /// Per handle: its matching pattern subscriptions.
    matched: HashMap<SubscriberId, Vec<Match>>,
}

impl Once {
    /// The channel's delivery reached `handle`: no pattern delivery will.
    pub(crate) fn reached(&mut self, handle: SubscriberId) {
        self.reached.insert(handle);
    }

    /// A subscription of `handle` to the pattern `pattern` (in table slot `slot`) matches.
    pub(crate) fn matched(
        &mut self,
        handle: SubscriberId,
        id: SubId,
        slot: u32,
        pattern: &Arc<str>,
    ) {
        let of_handle = self.matched.entry(handle).or_default();
        of_handle.push((slot, id, Arc::clone(pattern)));
    }

    /// Each handle whose pattern subscriptions matched, whether the channel's delivery
    /// reached it, and those subscriptions in subscription order: for a handle not reached,
    /// the first gets the delivery; the others (all, for one reached) stand in for it.
    pub(crate) fn take(self) -> Vec<(SubscriberId, bool, Vec<Match>)> {
        let Once { reached, matched } = self;
        let all = matched.into_iter().map(|(handle, mut of_handle)| {
            of_handle.sort_unstable_by_key(|(_, id, _)| id.order());
            (handle, reached.contains(&handle), of_handle)
        });
        all.collect()
    }
}
