//! What `subscribe` and its siblings take: one name, or any list of names.

use std::borrow::Cow;
use std::collections::{
    binary_heap, btree_map, btree_set, hash_map, hash_set, linked_list, vec_deque, BTreeSet,
    BinaryHeap, HashSet, LinkedList, VecDeque,
};
use std::iter;
use std::sync::Arc;

/// One channel or pattern name, or a list of them, as [`PubSub::subscribe`](crate::PubSub::subscribe)
/// and its siblings take: `sub.subscribe("one")` as redis-py's `p.subscribe('one')`, or
/// `sub.subscribe(["a", "b"])` as `p.subscribe('a', 'b')`.
///
/// Implemented for a single name (`&str`, `String`, `&String`, `Box<str>`, `Arc<str>`,
/// `Cow<str>`), for arrays, slices, `Vec`, `VecDeque`, `HashSet` and `BTreeSet` of names (owned
/// or borrowed), and for the usual iterators over names (`iter()`, `into_iter()`, `map`,
/// `filter`, `chain`, `once`, `split`, a map's `keys()`...). Any other iterator or collection
/// of names goes through [`Each`]: `sub.subscribe(Each(my_names))`.
///
/// (A single blanket implementation over every iterator would shut out `&str`, which Rust's
/// coherence rules do not let a crate implement beside it; hence the list.) In generic code
/// over `I: IntoIterator<Item = S>, S: AsRef<str>`, pass `Each(names)`.
///
/// # Examples
///
/// ```
/// use std::collections::HashMap;
/// use fanout::{Broker, Each};
///
/// let broker = Broker::<str>::new();
/// let sub = broker.pubsub();
/// sub.subscribe("one");
/// sub.subscribe(["two", "three"]);
/// sub.subscribe(vec![String::from("four")]);
/// sub.subscribe((5..7).map(|n| format!("n.{n}")));
/// let rooms = HashMap::from([("lobby", 1)]);
/// sub.subscribe(rooms.keys());
/// sub.subscribe(Each(std::collections::LinkedList::from(["last"])));
/// assert_eq!(sub.subscriptions(), 8);
/// ```
pub trait IntoNames {
    /// One name.
    type Name: AsRef<str>;
    /// The names, in order.
    type Names: Iterator<Item = Self::Name>;

    /// The names, in the order they are to be handled.
    fn into_names(self) -> Self::Names;
}

/// Any iterable of names, for the ones [`IntoNames`] does not list: `sub.subscribe(Each(names))`.
///
/// # Examples
///
/// ```
/// use std::collections::LinkedList;
/// use fanout::{Broker, Each};
///
/// let broker = Broker::<str>::new();
/// let sub = broker.pubsub();
/// sub.psubscribe(Each(LinkedList::from(["a.*", "b.*"])));
/// assert_eq!(sub.patterns(), ["a.*", "b.*"]);
/// ```
#[derive(Debug, Clone, Copy)]
pub struct Each<I>(pub I);

impl<I> IntoNames for Each<I>
where
    I: IntoIterator,
    I::Item: AsRef<str>,
{
    type Name = I::Item;
    type Names = I::IntoIter;

    fn into_names(self) -> Self::Names {
        self.0.into_iter()
    }
}

/// A single name.
macro_rules! one_name {
    ($($(#[$lt:lifetime])? $ty:ty),* $(,)?) => {$(
        impl<$($lt)?> IntoNames for $ty {
            type Name = Self;
            type Names = iter::Once<Self>;

            fn into_names(self) -> Self::Names {
                iter::once(self)
            }
        }
    )*};
}

one_name!(#['a] &'a str, String, #['a] &'a String, Box<str>, Arc<str>, #['a] &'a Arc<str>, #['a] Cow<'a, str>);

/// A collection or an iterator whose items are names.
macro_rules! many_names {
    ($([$($generics:tt)*] $ty:ty),* $(,)?) => {$(
        impl<$($generics)*> IntoNames for $ty
        where
            $ty: IntoIterator,
            <$ty as IntoIterator>::Item: AsRef<str>,
        {
            type Name = <$ty as IntoIterator>::Item;
            type Names = <$ty as IntoIterator>::IntoIter;

            fn into_names(self) -> Self::Names {
                IntoIterator::into_iter(self)
            }
        }
    )*};
}

many_names!(
    [S, const N: usize] [S; N],
    ['a, S, const N: usize] &'a [S; N],
    ['a, S] &'a [S],
    [S] Vec<S>,
    ['a, S] &'a Vec<S>,
    [S] VecDeque<S>,
    ['a, S] &'a VecDeque<S>,
    [S, H] HashSet<S, H>,
    ['a, S, H] &'a HashSet<S, H>,
    [S] BTreeSet<S>,
    ['a, S] &'a BTreeSet<S>,
    [S] Option<S>,
    [S] iter::Once<S>,
    [S] iter::Empty<S>,
    [S, const N: usize] std::array::IntoIter<S, N>,
    ['a, S] std::slice::Iter<'a, S>,
    [S] std::vec::IntoIter<S>,
    ['a, S] std::collections::vec_deque::Iter<'a, S>,
    ['a, S] hash_set::Iter<'a, S>,
    [S] hash_set::IntoIter<S>,
    ['a, S] btree_set::Iter<'a, S>,
    [S] btree_set::IntoIter<S>,
    ['a, K, V] hash_map::Keys<'a, K, V>,
    [K, V] hash_map::IntoKeys<K, V>,
    ['a, K, V] btree_map::Keys<'a, K, V>,
    [K, V] btree_map::IntoKeys<K, V>,
    [I, F] iter::Map<I, F>,
    [I, P] iter::Filter<I, P>,
    [I, F] iter::FilterMap<I, F>,
    [A, B] iter::Chain<A, B>,
    [I] iter::Take<I>,
    [I] iter::Skip<I>,
    [I] iter::StepBy<I>,
    [I] iter::Rev<I>,
    [I] iter::Cloned<I>,
    [I] iter::Copied<I>,
    [I: Iterator] iter::Peekable<I>,
    [I] iter::Fuse<I>,
    [I, F] iter::Inspect<I, F>,
    [I, P] iter::TakeWhile<I, P>,
    [I, P] iter::SkipWhile<I, P>,
    [I, U: IntoIterator, F] iter::FlatMap<I, U, F>,
    [I: Iterator<Item = U>, U: IntoIterator] iter::Flatten<I>,
    ['a] std::str::Split<'a, char>,
    ['a, 'b] std::str::Split<'a, &'b str>,
    ['a] std::str::SplitWhitespace<'a>,
    ['a] std::str::SplitAsciiWhitespace<'a>,
    ['a] std::str::Lines<'a>,
    ['a, S] Box<dyn Iterator<Item = S> + 'a>,
    ['a, S] Box<dyn Iterator<Item = S> + Send + 'a>,
    ['a, I: Iterator + ?Sized] &'a mut I,
    ['a, S] &'a Option<S>,
    ['a, S] std::option::Iter<'a, S>,
    [S] std::option::IntoIter<S>,
    ['a, S] std::slice::IterMut<'a, S>,
    ['a, S] std::vec::Drain<'a, S>,
    [S] vec_deque::IntoIter<S>,
    ['a, S] vec_deque::Drain<'a, S>,
    [S] LinkedList<S>,
    ['a, S] &'a LinkedList<S>,
    ['a, S] linked_list::Iter<'a, S>,
    [S] linked_list::IntoIter<S>,
    [S] BinaryHeap<S>,
    ['a, S] &'a BinaryHeap<S>,
    ['a, S] binary_heap::Iter<'a, S>,
    [S] binary_heap::IntoIter<S>,
    ['a, S] btree_set::Range<'a, S>,
    ['a, K, V] hash_map::Values<'a, K, V>,
    [K, V] hash_map::IntoValues<K, V>,
    ['a, K, V] btree_map::Values<'a, K, V>,
    [K, V] btree_map::IntoValues<K, V>,
    [] std::env::Args,
    [F] iter::FromFn<F>,
    [I, St, F] iter::Scan<I, St, F>,
    [I, P] iter::MapWhile<I, P>,
    ['a, F: FnMut(char) -> bool] std::str::Split<'a, F>,
    ['a, 'b] std::str::Split<'a, &'b String>,
    ['a, const N: usize] std::str::Split<'a, [char; N]>,
    ['a, 'b] std::str::Split<'a, &'b [char]>,
    ['a] std::str::SplitN<'a, char>,
    ['a, 'b] std::str::SplitN<'a, &'b str>,
    ['a] std::str::RSplit<'a, char>,
    ['a, 'b] std::str::RSplit<'a, &'b str>,
    ['a] std::str::SplitTerminator<'a, char>,
    ['a, 'b] std::str::SplitTerminator<'a, &'b str>,
    ['a] std::str::Matches<'a, char>,
    ['a, 'b] std::str::Matches<'a, &'b str>,
);

#[cfg(test)]
mod tests {
    use super::*;

    fn names(names: impl IntoNames) -> Vec<String> {
        names
            .into_names()
            .map(|name| name.as_ref().to_string())
            .collect()
    }

    #[test]
    fn one_name_or_many_in_order() {
        assert_eq!(names("a"), ["a"]);
        assert_eq!(names(String::from("a")), ["a"]);
        assert_eq!(names(["a", "b"]), ["a", "b"]);
        let array = [String::from("a"), String::from("b")];
        assert_eq!(names(&array), ["a", "b"]);
        assert_eq!(names(array), ["a", "b"]);
        assert_eq!(names(&["a", "b"][..1]), ["a"]);
        assert_eq!(names(vec!["b".to_string(), "a".to_string()]), ["b", "a"]);
        assert_eq!(
            names(["x", "y"].iter().map(|n| format!("{n}!"))),
            ["x!", "y!"]
        );
        assert_eq!(names("a b".split(' ')), ["a", "b"]);
        assert_eq!(names(Vec::<String>::new()), Vec::<String>::new());
        assert_eq!(
            names(Each(std::collections::LinkedList::from(["z"]))),
            ["z"]
        );
    }
}
