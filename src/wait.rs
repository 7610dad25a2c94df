//! How long a call may wait: one type for reads (an item) and publishes (room in a `Block`
//! queue or a bridge's backlog), as crossbeam passes one deadline to every flavor.

use std::time::{Duration, Instant};

/// How long a call may wait.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Wait {
    /// Not at all.
    Never,
    /// Until this instant.
    Until(Instant),
    /// For ever.
    Forever,
}

impl Wait {
    /// At most `timeout` from now: zero is `Never`, and a deadline past what an `Instant`
    /// can hold (`Duration::MAX`) is `Forever`.
    #[inline]
    pub(crate) fn at_most(timeout: Duration) -> Wait {
        if timeout.is_zero() {
            return Wait::Never;
        }
        Instant::now()
            .checked_add(timeout)
            .map_or(Wait::Forever, Wait::Until)
    }

    /// Whether the call may wait at all.
    pub(crate) fn may_wait(self) -> bool {
        self != Wait::Never
    }

    /// The instant the wait ends, `None` for ever; `Never` has ended already.
    pub(crate) fn deadline(self) -> Option<Instant> {
        match self {
            Wait::Never => Some(Instant::now()),
            Wait::Until(deadline) => Some(deadline),
            Wait::Forever => None,
        }
    }
}
