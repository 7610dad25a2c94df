//! What sits in a handle's queue.
//!
//! A delivery names its subscription by the handle's slot for it and carries the payload;
//! the handle's reader turns it into a [`Message`] with the name from the handle's own table
//! (`handle/names.rs`). So a publisher writes one shared reference count per delivery, the
//! payload's, where a `Message` would cost two (the channel name's too), and a queue slot
//! holds 24 bytes beside a `str` or `[u8]` payload (a `Message` is 56).
//!
//! A publish that matches patterns makes one [`Envelope`] with the channel and the payload,
//! shared by its pattern deliveries: each is one clone of the envelope.

use std::fmt;
use std::sync::Arc;

use crate::message::Message;

/// One item of a handle's queue.
pub(crate) enum Item<T: ?Sized> {
    /// A publish through the handle's channel subscription in `slot`.
    Channel { slot: u32, payload: Arc<T> },
    /// A publish through the handle's pattern subscription in `slot`.
    Pattern {
        slot: u32,
        publish: Arc<Envelope<T>>,
    },
    /// A confirmation or a notice, made by the handle's calls, its queue or the bridge.
    /// `retire` is the slot an `Unsubscribe`/`PUnsubscribe` confirmation frees: it is the
    /// last item that can name it, so the slot may serve another subscription once it is
    /// read.
    Control {
        message: Box<Message<T>>,
        retire: Option<u32>,
    },
    /// A retained payload replayed after the confirmation of the handle's subscription in
    /// `slot` (a `Message::Replay`): queued as a confirmation is, never counted against
    /// capacity, and handed to that subscription's handler if it has one.
    Replay { slot: u32, message: Box<Message<T>> },
    /// A `Message::Lagged` notice: `missed` deliveries were lost here.
    Lagged { missed: u64 },
    /// A `Message::HighWater` notice, the handle's `id`th: `queued` deliveries were queued.
    Warning { id: u64, queued: usize },
}

/// A publish on a channel, shared by the pattern deliveries it makes.
pub(crate) struct Envelope<T: ?Sized> {
    pub(crate) channel: Arc<str>,
    pub(crate) payload: Arc<T>,
}

impl<T: ?Sized> Item<T> {
    /// A confirmation or notice that frees no slot.
    pub(crate) fn control(message: Message<T>) -> Self {
        Item::Control {
            message: Box::new(message),
            retire: None,
        }
    }

    /// Whether this carries a payload: what a bounded queue's capacity counts.
    pub(crate) fn is_delivery(&self) -> bool {
        matches!(self, Item::Channel { .. } | Item::Pattern { .. })
    }

    /// The id of a `HighWater` notice.
    pub(crate) fn warning(&self) -> Option<u64> {
        match self {
            Item::Warning { id, .. } => Some(*id),
            _ => None,
        }
    }
}

/// An item of a handle's queue, as the channel behind
/// [`PubSub::receiver`](crate::PubSub::receiver) holds it.
///
/// Opaque: that receiver is for waiting (`crossbeam_channel::Select::ready`), and only the
/// handle reads its queue, with [`get_message`](crate::PubSub::get_message) and the like. An
/// item received from it straight is taken from the handle and cannot be read.
pub struct Queued<T: ?Sized>(pub(crate) Item<T>);

/// The sending end of a handle's queue.
pub(crate) type ItemSender<T> = crossbeam_channel::Sender<Queued<T>>;

/// The receiving end of a handle's queue.
pub(crate) type ItemReceiver<T> = crossbeam_channel::Receiver<Queued<T>>;

/// Shows the kind of item only, so it needs no `T: Debug`.
impl<T: ?Sized> fmt::Debug for Queued<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = match &self.0 {
            Item::Channel { .. } => "message",
            Item::Pattern { .. } => "pmessage",
            Item::Control { message, .. } | Item::Replay { message, .. } => message.kind(),
            Item::Lagged { .. } => "lagged",
            Item::Warning { .. } => "high_water",
        };
        f.debug_tuple("Queued").field(&kind).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::Item;

    #[test]
    fn a_queued_delivery_is_24_bytes_beside_a_str_payload() {
        assert_eq!(std::mem::size_of::<Item<str>>(), 24);
        assert_eq!(std::mem::size_of::<Item<[u8]>>(), 24);
        assert_eq!(std::mem::size_of::<Item<u64>>(), 24);
    }
}
