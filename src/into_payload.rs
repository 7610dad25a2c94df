//! What `publish` takes: anything that becomes the shared `Arc<T>` every recipient reads.

use std::borrow::Cow;
use std::ffi::{CStr, CString, OsStr, OsString};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// A payload for a `Broker<T>`: the value itself, an `Arc<T>` to share as it is, a `Box<T>`,
/// and the borrowed and owned forms of text and bytes.
///
/// | `T` | accepts |
/// |---|---|
/// | any | `Arc<T>` (shared as it is: every recipient gets this very `Arc`), `&Arc<T>`, `Box<T>`, `T` itself when sized |
/// | `str` | `&str`, `String`, `&String`, `Cow<str>` |
/// | `String` | `&str`, `&String`, `Cow<str>` (and `String`) |
/// | `[E]` (`E: Clone`) | `&[E]`, `Vec<E>`, `&Vec<E>`, `[E; N]`, `&[E; N]` (so `b"bytes"`), `Cow<[E]>` |
/// | `Vec<E>` (`E: Clone`) | `&[E]`, `&[E; N]`, `&Vec<E>` (and `Vec<E>`) |
/// | `[u8]` | also `Arc<str>` (the same bytes, shared) |
/// | `Path`, `OsStr`, `CStr` | their borrowed, owned and `Cow` forms |
///
/// Generic code over `P: Into<Arc<T>>` converts first: `broker.publish(channel, Arc::<T>::from(payload))`.
///
/// # Examples
///
/// ```
/// use std::sync::Arc;
/// use fanout::Broker;
///
/// let text = Broker::<String>::new();
/// text.publish("room", "hi"); // a `&str` into a `Broker<String>`
/// text.publish("room", String::from("hi")); // moved in: the text is not copied
///
/// let bytes = Broker::<[u8]>::new();
/// bytes.publish("raw", b"\x00\x01"); // a byte string literal
///
/// let shared: Arc<str> = Arc::from("one allocation for every recipient");
/// Broker::<str>::new().publish("c", &shared);
/// ```
pub trait IntoPayload<T: ?Sized> {
    /// The shared payload.
    fn into_payload(self) -> Arc<T>;
}

impl<T: ?Sized> IntoPayload<T> for Arc<T> {
    fn into_payload(self) -> Arc<T> {
        self
    }
}

impl<T: ?Sized> IntoPayload<T> for &Arc<T> {
    fn into_payload(self) -> Arc<T> {
        Arc::clone(self)
    }
}

impl<T: ?Sized> IntoPayload<T> for Box<T> {
    fn into_payload(self) -> Arc<T> {
        Arc::from(self)
    }
}

impl<T> IntoPayload<T> for T {
    fn into_payload(self) -> Arc<T> {
        Arc::new(self)
    }
}

/// Conversions `Arc` already has (`Arc<T>: From<S>`), listed one by one.
macro_rules! via_from {
    ($([$($generics:tt)*] $source:ty => $target:ty),* $(,)?) => {$(
        impl<$($generics)*> IntoPayload<$target> for $source {
            fn into_payload(self) -> Arc<$target> {
                Arc::from(self)
            }
        }
    )*};
}

via_from!(
    ['a] &'a str => str,
    [] String => str,
    ['a] Cow<'a, str> => str,
    [E: Clone] Vec<E> => [E],
    ['a, E: Clone] &'a [E] => [E],
    ['a, E: Clone] Cow<'a, [E]> => [E],
    [] Arc<str> => [u8],
    ['a] Cow<'a, Path> => Path,
    ['a] Cow<'a, OsStr> => OsStr,
    ['a] Cow<'a, CStr> => CStr,
    ['a] &'a Path => Path,
    [] PathBuf => Path,
    ['a] &'a OsStr => OsStr,
    [] OsString => OsStr,
    ['a] &'a CStr => CStr,
    [] CString => CStr,
);

/// Conversions through an owned value first (`Arc::new(source.into())`).
macro_rules! via_owned {
    ($([$($generics:tt)*] $source:ty => $target:ty),* $(,)?) => {$(
        impl<$($generics)*> IntoPayload<$target> for $source {
            fn into_payload(self) -> Arc<$target> {
                Arc::new(<$target>::from(self))
            }
        }
    )*};
}

via_owned!(
    ['a] &'a str => String,
    ['a] &'a String => String,
    ['a] Cow<'a, str> => String,
    ['a, E: Clone] &'a [E] => Vec<E>,
    ['a, E: Clone, const N: usize] &'a [E; N] => Vec<E>,
);

impl IntoPayload<str> for &mut str {
    fn into_payload(self) -> Arc<str> {
        Arc::from(&*self)
    }
}

impl<E: Clone> IntoPayload<[E]> for &mut [E] {
    fn into_payload(self) -> Arc<[E]> {
        Arc::from(&*self)
    }
}

impl IntoPayload<str> for &String {
    fn into_payload(self) -> Arc<str> {
        Arc::from(self.as_str())
    }
}

impl<E: Clone> IntoPayload<Vec<E>> for &Vec<E> {
    fn into_payload(self) -> Arc<Vec<E>> {
        Arc::new(self.clone())
    }
}

impl<E: Clone> IntoPayload<[E]> for &Vec<E> {
    fn into_payload(self) -> Arc<[E]> {
        Arc::from(self.as_slice())
    }
}

impl<E, const N: usize> IntoPayload<[E]> for [E; N] {
    fn into_payload(self) -> Arc<[E]> {
        Arc::from(self)
    }
}

impl<E: Clone, const N: usize> IntoPayload<[E]> for &[E; N] {
    fn into_payload(self) -> Arc<[E]> {
        Arc::from(&self[..])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn payload<T: ?Sized>(p: impl IntoPayload<T>) -> Arc<T> {
        p.into_payload()
    }

    #[test]
    fn text_and_bytes_in_their_usual_forms() {
        assert_eq!(&*payload::<str>("a"), "a");
        assert_eq!(&*payload::<str>(String::from("a")), "a");
        assert_eq!(&*payload::<String>("a"), "a");
        assert_eq!(&*payload::<[u8]>(b"ab"), b"ab");
        assert_eq!(&*payload::<[u8]>(vec![1u8]), [1]);
        assert_eq!(&*payload::<Vec<u8>>(&b"ab"[..]), b"ab");
        assert_eq!(*payload::<u64>(7), 7);
        let shared: Arc<str> = Arc::from("s");
        assert!(Arc::ptr_eq(&payload(&shared), &shared));
        assert!(Arc::ptr_eq(&payload(shared.clone()), &shared));
    }
}
