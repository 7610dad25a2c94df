//! The one rule for giving memory back once a collection is mostly empty, so a burst of
//! short-lived subscriptions does not pin its peak size.

use std::collections::HashMap;

/// More than 8 slots, under a quarter of them used.
pub(crate) fn is_sparse(len: usize, capacity: usize) -> bool {
    capacity > 8 && len * 4 < capacity
}

/// Halves `map`'s room (at most, amortised) once it is sparse.
pub(crate) fn shrink_if_sparse<K: Eq + std::hash::Hash, V, S: std::hash::BuildHasher>(
    map: &mut HashMap<K, V, S>,
) {
    if is_sparse(map.len(), map.capacity()) {
        map.shrink_to(map.len() * 2);
    }
}
