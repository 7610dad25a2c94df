//! How payloads cross Redis: as the raw bytes a redis-py client sends and receives.

use std::borrow::Cow;
use std::error::Error;
use std::sync::Arc;

/// Converts a payload to the bytes Redis carries and back, for a [`Bridge`](crate::Bridge).
///
/// Text and bytes implement it as redis-py sees them: `r.publish('channel', 'message')`
/// arrives in a `Broker<str>` (or `Broker<String>`) as `"message"`, and a `Broker<[u8]>` (or
/// `Vec<u8>`, or `bytes::Bytes`) publish arrives in redis-py as the same `bytes`. Serde types
/// go through `bridge::Json` (feature `json`), as JSON text a redis-py client reads with
/// `json.loads`. For other payloads, implement it on your own type:
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

/// UTF-8 text, as `str`.
impl Codec for String {
    fn encode(&self) -> Cow<'_, [u8]> {
        Cow::Borrowed(self.as_bytes())
    }

    fn decode(bytes: &[u8]) -> Result<Arc<Self>, Box<dyn Error + Send + Sync>> {
        Ok(Arc::new(std::str::from_utf8(bytes)?.to_owned()))
    }
}

/// Bytes as they are.
impl Codec for Vec<u8> {
    fn encode(&self) -> Cow<'_, [u8]> {
        Cow::Borrowed(self)
    }

    fn decode(bytes: &[u8]) -> Result<Arc<Self>, Box<dyn Error + Send + Sync>> {
        Ok(Arc::new(bytes.to_vec()))
    }
}

/// Bytes as they are.
impl Codec for bytes::Bytes {
    fn encode(&self) -> Cow<'_, [u8]> {
        Cow::Borrowed(self)
    }

    fn decode(bytes: &[u8]) -> Result<Arc<Self>, Box<dyn Error + Send + Sync>> {
        Ok(Arc::new(bytes::Bytes::copy_from_slice(bytes)))
    }
}

/// A serde type carried across Redis as JSON text (feature `json`): a `Broker<Json<Event>>`
/// publishes `Json(event)` and its subscribers in every process (and redis-py clients, with
/// `json.loads`) read the same value. Messages from Redis that are not JSON of this type are
/// skipped and counted in [`BridgeStats::undecodable`](crate::BridgeStats::undecodable).
///
/// # Examples
///
/// ```
/// use fanout::bridge::{Codec, Json};
///
/// #[derive(serde::Serialize, serde::Deserialize, Debug, PartialEq)]
/// struct Price { symbol: String, cents: u64 }
///
/// let price = Json(Price { symbol: "EUR".into(), cents: 108 });
/// assert_eq!(&*price.encode(), br#"{"symbol":"EUR","cents":108}"#);
/// assert_eq!(Json::<Price>::decode(&price.encode()).unwrap().0, price.0);
/// assert!(Json::<Price>::decode(b"not json").is_err());
/// ```
#[cfg(feature = "json")]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Json<T>(pub T);

#[cfg(feature = "json")]
impl<T> Codec for Json<T>
where
    T: serde::Serialize + serde::de::DeserializeOwned,
{
    fn encode(&self) -> Cow<'_, [u8]> {
        // Serialising to a `Vec` fails only for maps with non-string keys or a `Serialize`
        // impl that reports an error; such a payload goes out as JSON `null`.
        Cow::Owned(serde_json::to_vec(&self.0).unwrap_or_else(|_| b"null".to_vec()))
    }

    fn decode(bytes: &[u8]) -> Result<Arc<Self>, Box<dyn Error + Send + Sync>> {
        Ok(Arc::new(Json(serde_json::from_slice(bytes)?)))
    }
}
