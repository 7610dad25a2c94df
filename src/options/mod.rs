//! What a broker or a handle does beyond Redis, only when set: retained history with replay
//! (`history.rs`) and one delivery per publish (`once.rs`). The publish path enters them only
//! when the broker keeps history or such a handle lives; a bounded queue's high-water notice
//! is part of the queue (`handle/queue.rs`).

mod history;
mod once;

pub(crate) use history::{replay, History, NoHistory, Recorder};
pub(crate) use once::{Match, Once};
