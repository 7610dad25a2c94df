//! Channels or patterns: the two kinds of subscription, which work alike. One type for it,
//! used by handles, the index, the publish path and the bridge.

/// Whether a subscription (or a name) is a channel or a pattern.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) enum Kind {
    Channel,
    Pattern,
}

impl Kind {
    /// Both kinds, channels first.
    pub(crate) const BOTH: [Kind; 2] = [Kind::Channel, Kind::Pattern];

    /// A position for tables kept per kind.
    pub(crate) fn index(self) -> usize {
        self as usize
    }
}
