//! How payloads cross Redis: as the raw bytes a redis-py client sends and receives.

use std::borrow::Cow;
use std::error::Error;
use std::sync::Arc;

/// Converts a payload to the bytes Redis carries and back, for a [`Bridge`](crate::Bridge).
///
/// `str` and `[u8]` implement it as redis-py sees them: `r.publish('channel', 'message')`
/// arrives in a `Broker<str>` as `"message"`, and a `Broker<[u8]>` publish arrives in redis-py
/// as the same `bytes`. For other payloads, implement it on your own type, for example with
/// `serde_json`:
///
/// ```
/// use std::{borrow::Cow, error::Error, sync::Arc};
/// use fanout::Codec;
///
/// struct Price { cents: u64 }
///
/// impl Codec for Price {
///     fn encode(&self) -> Cow<'_, [u8]> {
///         Cow::Owned(self.cents.to_string().into_bytes())
///     }
///     fn decode(bytes: &[u8]) -> Result<Arc<Self>, Box<dyn Error + Send + Sync>> {
///         let cents = std::str::from_utf8(bytes)?.parse()?;
///         Ok(Arc::new(Price { cents }))
///     }
/// }
///
/// assert_eq!(&*Price { cents: 250 }.encode(), b"250");
/// assert_eq!(Price::decode(b"250").unwrap().cents, 250);
/// assert!(Price::decode(b"a lot").is_err());
/// ```
pub trait Codec {
    /// The bytes to publish on Redis for this payload.
    fn encode(&self) -> Cow<'_, [u8]>;

    /// The payload for bytes that arrived from Redis.
    ///
    /// # Errors
    ///
    /// When the bytes are not a valid payload; the bridge then skips the message and counts it
    /// in [`BridgeStats::undecodable`](crate::BridgeStats::undecodable).
    fn decode(bytes: &[u8]) -> Result<Arc<Self>, Box<dyn Error + Send + Sync>>;
}

/// Bytes as they are.
impl Codec for [u8] {
    fn encode(&self) -> Cow<'_, [u8]> {
        Cow::Borrowed(self)
    }

    fn decode(bytes: &[u8]) -> Result<Arc<Self>, Box<dyn Error + Send + Sync>> {
        Ok(Arc::from(bytes))
    }
}

/// UTF-8 text; bytes that are not UTF-8 do not decode.
impl Codec for str {
    fn encode(&self) -> Cow<'_, [u8]> {
        Cow::Borrowed(self.as_bytes())
    }

    fn decode(bytes: &[u8]) -> Result<Arc<Self>, Box<dyn Error + Send + Sync>> {
        Ok(Arc::from(std::str::from_utf8(bytes)?))
    }
}
