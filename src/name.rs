//! Channel and pattern names as the tables key them: hashed in one pass over their bytes, and
//! compared with a few word loads when short, as most channel names are.

use std::hash::{BuildHasher, Hasher};

/// Hashes names: foldhash, seeded per broker (so names chosen from outside cannot aim at one
/// bucket), over the name's bytes in one write.
#[derive(Clone, Copy, Default)]
pub(crate) struct NameHasher(foldhash::fast::RandomState);

impl NameHasher {
    #[inline]
    pub(crate) fn hash(&self, name: &str) -> u64 {
        let mut hasher = self.0.build_hasher();
        hasher.write(name.as_bytes());
        hasher.finish()
    }
}

/// Whether two names are equal: names up to 16 bytes are compared as two (overlapping)
/// loads of each, longer ones with `memcmp`.
#[inline]
pub(crate) fn same(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    let n = a.len();
    if n != b.len() {
        return false;
    }
    match n {
        0 => true,
        1 => a[0] == b[0],
        2..=3 => word::<2>(a, 0) == word::<2>(b, 0) && word::<2>(a, n - 2) == word::<2>(b, n - 2),
        4..=7 => word::<4>(a, 0) == word::<4>(b, 0) && word::<4>(a, n - 4) == word::<4>(b, n - 4),
        8..=16 => word::<8>(a, 0) == word::<8>(b, 0) && word::<8>(a, n - 8) == word::<8>(b, n - 8),
        _ => a == b,
    }
}

/// The `N` bytes of `bytes` from `at`, as one value to compare.
#[inline]
fn word<const N: usize>(bytes: &[u8], at: usize) -> [u8; N] {
    let mut word = [0; N];
    word.copy_from_slice(&bytes[at..at + N]);
    word
}

#[cfg(test)]
mod tests {
    use super::same;

    #[test]
    fn names_of_every_short_length_compare_equal_only_to_themselves() {
        let text = "abcdefghijklmnopqrstuvwxyz0123456789";
        for n in 0..=text.len() {
            let name = &text[..n];
            let copy = String::from(name);
            assert!(same(name, &copy), "a copy of {name}");
            for at in 0..n {
                // One byte changed, at each position: at the start, in the middle, at the end.
                let mut other = name.as_bytes().to_vec();
                other[at] = b'_';
                assert!(
                    !same(name, std::str::from_utf8(&other).unwrap()),
                    "{name} at {at}"
                );
            }
            if n < text.len() {
                assert!(!same(name, &text[..n + 1]));
            }
        }
    }
}
