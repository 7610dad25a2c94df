//! An index over the broker's patterns: for a channel, a small set of candidate patterns that
//! `glob_match` (the only judge) then confirms, instead of every pattern.
//!
//! Every Redis glob that holds a literal byte requires some run of literal bytes in every
//! channel it matches. Each pattern is filed under one such run, its *key*, chosen among:
//!
//! - a run in the pattern's fixed head (the tokens before its first `*`, each of which
//!   consumes exactly one byte): it must sit at that offset from the channel's start;
//! - a run in its fixed tail (the tokens after its last `*`): it must sit at that offset from
//!   the channel's end;
//! - a run between two `*`s: it must occur somewhere in the channel.
//!
//! The longest run wins (a head or tail run on a tie: finding those costs one hash lookup per
//! distinct key length, where an inner run is looked for at every position). `\x` is the
//! literal `x`;
//! `?` and `[...]` consume one byte but are not literal. A pattern with no literal byte at all
//! (`*`, `?*`, `[ab]*`, the empty pattern) goes to a short residual list that every channel
//! scans, as every pattern was scanned before.
//!
//! Head and tail keys sit in hash maps, grouped by offset and length. An inner key is filed
//! under one of its `GRAM`-byte (8) windows (any window of a required run is required too), the
//! one fewest patterns use yet, or whole when it is shorter: a channel then looks up each of its
//! own windows of those lengths. Every change is O(1): nothing is ever rebuilt, so a publish
//! never waits for one.
//!
//! Candidates are slots of `PatternTable`; a key may hold several slots (patterns sharing a
//! run), and each slot is filed once, so candidates come without repeats.

/// The index's maps: keys chosen by subscribers, hashed fast (foldhash) with a random seed.
type HashMap<K, V> = std::collections::HashMap<K, V, foldhash::fast::RandomState>;

use crate::shrink::shrink_if_sparse;

/// Where a key must sit in a channel.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum Anchor {
    /// `offset` bytes after the channel's start.
    Head(usize),
    /// Ending `offset` bytes before the channel's end.
    Tail(usize),
    /// Anywhere.
    Inner,
}

/// A pattern's key: a literal run every matching channel holds, and where.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Key {
    anchor: Anchor,
    literal: Box<[u8]>,
}

/// One token of a glob, as `glob_match` reads it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Token {
    /// Matches exactly this byte.
    Byte(u8),
    /// Matches any one byte (`?`, or a set).
    One,
    /// Matches any run (`*`).
    Star,
}

/// The tokens of `pattern`, read as `pattern.rs` reads them: `\x` is `x` (a trailing `\` is
/// itself), a set runs to its first unescaped `]` after an optional `^` (or to the end).
fn tokens(pattern: &[u8]) -> Vec<Token> {
    let mut tokens = Vec::with_capacity(pattern.len());
    let mut p = pattern;
    while let Some(&token) = p.first() {
        match token {
            b'*' => tokens.push(Token::Star),
            b'?' => tokens.push(Token::One),
            b'[' => {
                tokens.push(Token::One);
                p = set_end(&p[1..]);
            }
            b'\\' if p.len() >= 2 => {
                p = &p[1..];
                tokens.push(Token::Byte(p[0]));
            }
            literal => tokens.push(Token::Byte(literal)),
        }
        p = p.get(1..).unwrap_or_default();
    }
    tokens
}

/// The pattern from the closing `]` of the set that starts at `p` (just after its `[`), or
/// empty for an unclosed set: the same walk as `pattern.rs`'s `match_set`.
fn set_end(mut p: &[u8]) -> &[u8] {
    if p.first() == Some(&b'^') {
        p = &p[1..];
    }
    loop {
        match p {
            [b'\\', _, ..] => p = &p[2..],
            [b']', ..] | [] => return p,
            [_, b'-', _, ..] => p = &p[3..],
            [_, ..] => p = &p[1..],
        }
    }
}

/// The longest run of `Byte` tokens in `tokens`, with its start: `(start, bytes)`.
fn longest_run(tokens: &[Token]) -> Option<(usize, Vec<u8>)> {
    let mut best: Option<(usize, Vec<u8>)> = None;
    let mut start = 0;
    let mut run = Vec::new();
    for (at, token) in tokens.iter().chain([&Token::One]).enumerate() {
        if let Token::Byte(byte) = token {
            if run.is_empty() {
                start = at;
            }
            run.push(*byte);
        } else if !run.is_empty() {
            if best.as_ref().map_or(true, |(_, b)| run.len() > b.len()) {
                best = Some((start, std::mem::take(&mut run)));
            }
            run.clear();
        }
    }
    best
}

/// The key of `pattern`, or `None` when it holds no literal byte.
fn key_of(pattern: &str) -> Option<Key> {
    let tokens = tokens(pattern.as_bytes());
    let first_star = tokens.iter().position(|t| *t == Token::Star);
    let last_star = tokens.iter().rposition(|t| *t == Token::Star);
    let (head, inner, tail) = match (first_star, last_star) {
        (Some(first), Some(last)) => (
            &tokens[..first],
            tokens.get(first + 1..last).unwrap_or_default(),
            &tokens[last + 1..],
        ),
        // No `*`: the whole pattern is a head (every token at a fixed offset).
        _ => (&tokens[..], &[][..], &[][..]),
    };
    let mut best: Option<Key> = None;
    let mut consider = |anchor: Anchor, literal: Vec<u8>| {
        if best
            .as_ref()
            .map_or(true, |b| literal.len() > b.literal.len())
        {
            best = Some(Key {
                anchor,
                literal: literal.into_boxed_slice(),
            });
        }
    };
    if let Some((start, run)) = longest_run(head) {
        consider(Anchor::Head(start), run);
    }
    if let Some((start, run)) = longest_run(tail) {
        let after = tail.len() - start - run.len();
        consider(Anchor::Tail(after), run);
    }
    if let Some((_, run)) = longest_run(inner) {
        consider(Anchor::Inner, run);
    }
    best
}

/// Slots filed under one literal, with each slot's place among them (for O(1) removal).
#[derive(Default)]
struct Slots(Vec<u32>);

/// Head or tail keys at one offset: literal to slots; how many literals have each byte at the
/// channel position next to the anchor (a head key's first byte, a tail key's last), so a
/// channel whose byte there no key has is done at once; and, per length, how many literals
/// have each byte at the far end, so most windows are ruled out before they are hashed.
struct AtOffset {
    by_literal: HashMap<Box<[u8]>, Slots>,
    edge_bytes: Box<[u32; 256]>,
    /// The lengths of the literals, ascending.
    lengths: Vec<Length>,
}

/// The literals of one length at one offset.
struct Length {
    len: usize,
    /// How many literals of this length have each byte at the far end.
    far_bytes: Box<[u32; 256]>,
    count: usize,
}

impl Default for AtOffset {
    fn default() -> Self {
        AtOffset {
            by_literal: HashMap::default(),
            lengths: Vec::new(),
            edge_bytes: Box::new([0; 256]),
        }
    }
}

impl AtOffset {
    /// Counts a literal (its length and its edge and far bytes) in or out.
    fn count(&mut self, anchor: Anchor, literal: &[u8], add: bool) {
        let (edge, far) = edges(anchor, literal);
        let len = literal.len();
        let at = self.lengths.partition_point(|l| l.len < len);
        if add {
            self.edge_bytes[edge as usize] += 1;
            if self.lengths.get(at).map_or(true, |l| l.len != len) {
                let far_bytes = Box::new([0; 256]);
                let length = Length {
                    len,
                    far_bytes,
                    count: 0,
                };
                self.lengths.insert(at, length);
            }
            let length = &mut self.lengths[at];
            length.far_bytes[far as usize] += 1;
            length.count += 1;
        } else {
            self.edge_bytes[edge as usize] -= 1;
            let length = &mut self.lengths[at];
            length.far_bytes[far as usize] -= 1;
            length.count -= 1;
            if length.count == 0 {
                self.lengths.remove(at);
            }
        }
    }
}

/// A head or tail key's byte next to its anchor (a head key's first, a tail key's last), and
/// its byte at the other end.
fn edges(anchor: Anchor, literal: &[u8]) -> (u8, u8) {
    let (first, last) = (literal[0], literal[literal.len() - 1]);
    match anchor {
        Anchor::Tail(_) => (last, first),
        _ => (first, last),
    }
}

/// Bytes in an inner key's window.
const GRAM: usize = 8;

/// Inner keys: by window length (1 to `GRAM`), the window (bytes packed in a `u64`) to its
/// slots, and how many windows start with each byte.
struct Inner {
    by_len: [HashMap<u64, Slots>; GRAM],
    first_bytes: [Box<[u32; 256]>; GRAM],
}

impl Default for Inner {
    fn default() -> Self {
        Inner {
            by_len: std::array::from_fn(|_| HashMap::default()),
            first_bytes: std::array::from_fn(|_| Box::new([0; 256])),
        }
    }
}

impl Inner {
    /// Files `slot` under the window of `literal` fewest slots use yet (or all of a short
    /// literal), and says where.
    fn insert(&mut self, slot: u32, literal: &[u8]) -> Filed {
        let len = literal.len().min(GRAM);
        let map = &mut self.by_len[len - 1];
        let start = (0..=literal.len() - len)
            .min_by_key(|&start| {
                let window = pack(&literal[start..start + len]);
                map.get(&window).map_or(0, |slots| slots.0.len())
            })
            .unwrap_or(0);
        let window = pack(&literal[start..start + len]);
        let slots = map.entry(window).or_default();
        slots.0.push(slot);
        self.first_bytes[len - 1][literal[start] as usize] += 1;
        Filed::Inner {
            len,
            window,
            at: slots.0.len() - 1,
        }
    }

    /// Takes out the slot filed at `at` under `window`; returns the slot moved into its place.
    fn remove(&mut self, len: usize, window: u64, at: usize) -> Option<u32> {
        let map = &mut self.by_len[len - 1];
        let slots = map.get_mut(&window).expect("a filed window");
        slots.0.swap_remove(at);
        let moved = slots.0.get(at).copied();
        if slots.0.is_empty() {
            map.remove(&window);
            shrink_if_sparse(map);
        }
        // The window's first byte, the highest of the `len` packed ones.
        let first = (window >> (8 * (len - 1))) as u8;
        self.first_bytes[len - 1][first as usize] -= 1;
        moved
    }

    /// Adds the slots filed under every window of `bytes`.
    fn candidates(&self, bytes: &[u8], found: &mut Vec<u32>) {
        for (i, map) in self.by_len.iter().enumerate() {
            if map.is_empty() {
                continue;
            }
            let (len, first_bytes) = (i + 1, &self.first_bytes[i]);
            for window in bytes.windows(len) {
                if first_bytes[window[0] as usize] == 0 {
                    continue;
                }
                if let Some(slots) = map.get(&pack(window)) {
                    found.extend_from_slice(&slots.0);
                }
            }
        }
    }
}

/// `window` (at most 8 bytes) packed in a `u64`.
fn pack(window: &[u8]) -> u64 {
    window
        .iter()
        .fold(0, |packed, &byte| packed << 8 | u64::from(byte))
}

/// Where a slot is filed, so removal finds it at once: its place in its list. An anchored
/// key is worked out again from the pattern; an inner one is not (the window chosen depended
/// on what was filed then), so it is kept.
#[derive(Clone, Debug)]
enum Filed {
    Anchored {
        at: usize,
    },
    /// Under a window of `len` bytes, packed in `window`.
    Inner {
        len: usize,
        window: u64,
        at: usize,
    },
    Residual {
        at: usize,
    },
}

/// The index: candidates for a channel among the table's slots.
#[derive(Default)]
pub(crate) struct GlobIndex {
    /// Head keys by offset, and tail keys by offset (few offsets: a `Vec` scans fastest).
    heads: Vec<(usize, AtOffset)>,
    tails: Vec<(usize, AtOffset)>,
    inner: Inner,
    residual: Vec<u32>,
    /// Where each slot is filed, by slot.
    filed: Vec<Option<Filed>>,
}

impl GlobIndex {
    /// Files the pattern in `slot`.
    pub(crate) fn insert(&mut self, slot: u32, pattern: &str) {
        let filed = match key_of(pattern) {
            None => {
                self.residual.push(slot);
                Filed::Residual {
                    at: self.residual.len() - 1,
                }
            }
            Some(key) => match key.anchor {
                Anchor::Head(offset) | Anchor::Tail(offset) => {
                    let list = self.anchored(key.anchor);
                    let i = match list.iter().position(|(o, _)| *o == offset) {
                        Some(i) => i,
                        None => {
                            list.push((offset, AtOffset::default()));
                            list.len() - 1
                        }
                    };
                    let at_offset = &mut list[i].1;
                    if !at_offset.by_literal.contains_key(&key.literal) {
                        at_offset.count(key.anchor, &key.literal, true);
                    }
                    let slots = at_offset.by_literal.entry(key.literal).or_default();
                    slots.0.push(slot);
                    Filed::Anchored {
                        at: slots.0.len() - 1,
                    }
                }
                Anchor::Inner => self.inner.insert(slot, &key.literal),
            },
        };
        let slot = slot as usize;
        if self.filed.len() <= slot {
            self.filed.resize(slot + 1, None);
        }
        self.filed[slot] = Some(filed);
    }

    /// Takes out `pattern`, filed in `slot`.
    pub(crate) fn remove(&mut self, slot: u32, pattern: &str) {
        let Some(filed) = self.filed.get_mut(slot as usize).and_then(Option::take) else {
            return;
        };
        match filed {
            Filed::Residual { at } => {
                self.residual.swap_remove(at);
                self.refile_moved(at, self.residual.get(at).copied());
            }
            Filed::Anchored { at } => {
                let key = key_of(pattern).expect("an anchored pattern has a key");
                let (Anchor::Head(offset) | Anchor::Tail(offset)) = key.anchor else {
                    unreachable!("an anchored key has an offset")
                };
                let list = self.anchored(key.anchor);
                let i = list
                    .iter()
                    .position(|(o, _)| *o == offset)
                    .expect("a filed key's offset");
                let at_offset = &mut list[i].1;
                let slots = at_offset
                    .by_literal
                    .get_mut(&key.literal)
                    .expect("a filed key's literal");
                slots.0.swap_remove(at);
                let moved = slots.0.get(at).copied();
                if slots.0.is_empty() {
                    at_offset.by_literal.remove(&key.literal);
                    at_offset.count(key.anchor, &key.literal, false);
                    if at_offset.by_literal.is_empty() {
                        list.swap_remove(i);
                    } else {
                        shrink_if_sparse(&mut at_offset.by_literal);
                    }
                }
                self.refile_moved(at, moved);
            }
            Filed::Inner { len, window, at } => {
                let moved = self.inner.remove(len, window, at);
                self.refile_moved(at, moved);
            }
        }
    }

    /// The head or the tail keys, as `anchor` says.
    fn anchored(&mut self, anchor: Anchor) -> &mut Vec<(usize, AtOffset)> {
        match anchor {
            Anchor::Tail(_) => &mut self.tails,
            _ => &mut self.heads,
        }
    }

    /// After a `swap_remove` at `at_now`, points the slot that moved there (if any) at it.
    fn refile_moved(&mut self, at_now: usize, moved: Option<u32>) {
        let Some(moved) = moved else {
            return;
        };
        match self.filed[moved as usize].as_mut() {
            Some(Filed::Residual { at } | Filed::Anchored { at, .. } | Filed::Inner { at, .. }) => {
                *at = at_now
            }
            None => unreachable!("a filed slot moved"),
        }
    }

    /// The slots of the patterns that may match `channel`: a superset of those that do.
    pub(crate) fn candidates(&self, channel: &str) -> Vec<u32> {
        let bytes = channel.as_bytes();
        let mut found: Vec<u32> = self.residual.clone();
        for (offset, at_offset) in &self.heads {
            let Some(&first) = bytes.get(*offset) else {
                continue;
            };
            if at_offset.edge_bytes[first as usize] == 0 {
                continue;
            }
            for length in &at_offset.lengths {
                let Some(window) = bytes.get(*offset..*offset + length.len) else {
                    break;
                };
                if length.far_bytes[window[length.len - 1] as usize] == 0 {
                    continue;
                }
                if let Some(slots) = at_offset.by_literal.get(window) {
                    found.extend_from_slice(&slots.0);
                }
            }
        }
        for (offset, at_offset) in &self.tails {
            let Some(end) = bytes.len().checked_sub(*offset) else {
                continue;
            };
            if end == 0 || at_offset.edge_bytes[bytes[end - 1] as usize] == 0 {
                continue;
            }
            for length in &at_offset.lengths {
                let Some(start) = end.checked_sub(length.len) else {
                    break;
                };
                if length.far_bytes[bytes[start] as usize] == 0 {
                    continue;
                }
                if let Some(slots) = at_offset.by_literal.get(&bytes[start..end]) {
                    found.extend_from_slice(&slots.0);
                }
            }
        }
        let before = found.len();
        self.inner.candidates(bytes, &mut found);
        if found.len() > before {
            // A window may occur more than once in the channel.
            found.sort_unstable();
            found.dedup();
        }
        found
    }

    /// Patterns in the residual list (no literal byte).
    #[cfg(test)]
    fn residual_len(&self) -> usize {
        self.residual.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pattern::glob_match;

    fn key(pattern: &str) -> Option<(Anchor, String)> {
        key_of(pattern).map(|k| (k.anchor, String::from_utf8(k.literal.into()).unwrap()))
    }

    #[test]
    fn keys_are_the_longest_required_literal_run() {
        assert_eq!(
            key("metrics.12.*"),
            Some((Anchor::Head(0), "metrics.12.".into()))
        );
        assert_eq!(key("*.cpu7"), Some((Anchor::Tail(0), ".cpu7".into())));
        assert_eq!(
            key("?rders.3.*"),
            Some((Anchor::Head(1), "rders.3.".into()))
        );
        assert_eq!(key("*.cpu?"), Some((Anchor::Tail(1), ".cpu".into())));
        assert_eq!(key("a*tenant*b"), Some((Anchor::Inner, "tenant".into())));
        assert_eq!(key("t.*.events"), Some((Anchor::Tail(0), ".events".into())));
        assert_eq!(key("exact"), Some((Anchor::Head(0), "exact".into())));
        assert_eq!(key(r"\*lit*"), Some((Anchor::Head(0), "*lit".into())));
        assert_eq!(key("[ab]c*"), Some((Anchor::Head(1), "c".into())));
        assert_eq!(key("[a]]x*"), Some((Anchor::Head(1), "]x".into())));
        assert_eq!(key(r"[\]]x*"), Some((Anchor::Head(1), "x".into())));
        assert_eq!(key("[abc"), None, "an unclosed set runs to the end");
        assert_eq!(key("ab\\"), Some((Anchor::Head(0), "ab\\".into())));
        for literal_free in ["*", "?*", "[ab]*", "", "??", "*?*", "[^x]"] {
            assert_eq!(key(literal_free), None, "{literal_free}");
        }
    }

    /// A fixed pseudo-random walk over hostile bytes: every pattern that matches a channel is
    /// among its candidates, as patterns come and go (slots reused, windows shared).
    #[test]
    fn candidates_hold_every_match() {
        let alphabet = b"aab*?[]^-\\!.";
        let mut seed = 0x9e37_79b9_7f4a_7c15_u64;
        let mut next = |n: usize| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            (seed % n as u64) as usize
        };
        let mut index = GlobIndex::default();
        let mut live: Vec<Option<String>> = Vec::new();
        for round in 0..3000 {
            let len = next(12);
            let pattern: String = (0..len)
                .map(|_| alphabet[next(alphabet.len())] as char)
                .collect();
            if next(4) == 0 && !live.is_empty() {
                let slot = next(live.len());
                if let Some(gone) = live[slot].take() {
                    index.remove(slot as u32, &gone);
                }
            } else {
                index.insert(live.len() as u32, &pattern);
                live.push(Some(pattern));
            }
            let channel: String = (0..next(14))
                .map(|_| alphabet[next(alphabet.len())] as char)
                .collect();
            let candidates = index.candidates(&channel);
            let mut sorted = candidates.clone();
            sorted.sort_unstable();
            sorted.dedup();
            assert_eq!(sorted.len(), candidates.len(), "no repeats");
            for (slot, pattern) in live.iter().enumerate() {
                if let Some(pattern) = pattern {
                    if glob_match(pattern, &channel) {
                        assert!(
                            candidates.contains(&(slot as u32)),
                            "round {round}: {pattern:?} matches {channel:?} but is no candidate"
                        );
                    }
                }
            }
        }
        assert!(index.residual_len() > 0);
    }
}
