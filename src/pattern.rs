//! Redis's glob matcher (`stringmatchlen` in Redis's `src/util.c`), byte for byte.
//!
//! Written here rather than taken from the `glob` crate: `glob` reads `[!a]` as a negation,
//! has no `\` escape and rejects an unclosed `[`, while Redis accepts every pattern and gives
//! each a meaning. The rules, with the quirks kept on purpose:
//!
//! - `*` matches any run of bytes, `?` exactly one byte, and both work on bytes, not on
//!   characters: a two-byte UTF-8 character needs `??`.
//! - The empty channel matches only the empty pattern (`*` does not match `""`).
//! - `[...]` matches one byte from a set; `^` first negates it, `]` closes it (even first),
//!   `\x` adds `x`, `x-y` is a range (reversed ends are swapped) when three bytes are left,
//!   and an unclosed set runs to the end of the pattern.
//! - `\x` outside a set matches `x`; a trailing `\` matches a backslash.
//! - Two guards keep hostile patterns cheap, as in Redis: once the rest of a pattern fails at
//!   every position after a `*`, no earlier `*` retries (CVE-2022-36021), and more than
//!   [`MAX_STAR_NESTING`] nested `*` groups give "no match" (CVE-2024-31228).
//!
//! Divergence: Redis compares range ends as C `char`, signed on x86, so ranges that mix bytes
//! below and above 0x80 behave oddly there. Here bytes compare as unsigned (`[a-é]` is not
//! useful either way, since `é` is two bytes).

/// How many `*` groups may nest before a match gives up and reports "no match" (Redis: 1000).
pub const MAX_STAR_NESTING: usize = 1000;

/// Tells whether `channel` matches the Redis glob `pattern`, exactly as `PSUBSCRIBE` and
/// `PUBSUB CHANNELS` match them.
///
/// Every pattern is valid; matching is byte-wise and case-sensitive. The cost is polynomial
/// in the lengths, whatever the pattern (see the crate docs on patterns for the rules).
///
/// # Examples
///
/// ```
/// use fanout::glob_match;
///
/// assert!(glob_match("news.*", "news.tech"));
/// assert!(!glob_match("news.*", "news"));
/// assert!(glob_match("h[^e]llo", "hallo"));
/// assert!(glob_match("h[!e]llo", "h!llo")); // `!` is an ordinary member, not a negation
/// assert!(!glob_match("*", "")); // Redis's quirk: only "" matches ""
/// ```
pub fn glob_match(pattern: &str, channel: &str) -> bool {
    let mut skip_longer = false;
    match_at(pattern.as_bytes(), channel.as_bytes(), &mut skip_longer, 0)
}

/// Matches `p` against `s`; `nesting` counts the `*` groups above this call.
///
/// `skip_longer` is shared by the whole match: it is set once the part after some `*` has
/// failed at every position to the end of the string. Then no enclosing `*` can succeed by
/// matching a longer run, because that only hands the rest a shorter suffix.
fn match_at(mut p: &[u8], mut s: &[u8], skip_longer: &mut bool, nesting: usize) -> bool {
    if nesting > MAX_STAR_NESTING {
        return false;
    }
    while let (Some(&token), Some(&byte)) = (p.first(), s.first()) {
        match token {
            b'*' => {
                while p.len() >= 2 && p[1] == b'*' {
                    p = &p[1..];
                }
                if p.len() == 1 {
                    return true;
                }
                while !s.is_empty() {
                    if match_at(&p[1..], s, skip_longer, nesting + 1) {
                        return true;
                    }
                    if *skip_longer {
                        return false;
                    }
                    s = &s[1..];
                }
                *skip_longer = true;
                return false;
            }
            b'?' => {}
            b'[' => {
                let (matched, rest) = match_set(&p[1..], byte);
                if !matched {
                    return false;
                }
                // `rest` starts at the closing `]`, or is empty for an unclosed set.
                p = rest;
            }
            b'\\' if p.len() >= 2 => {
                p = &p[1..];
                if p[0] != byte {
                    return false;
                }
            }
            literal => {
                if literal != byte {
                    return false;
                }
            }
        }
        s = &s[1..];
        p = p.get(1..).unwrap_or_default();
        if s.is_empty() {
            while p.first() == Some(&b'*') {
                p = &p[1..];
            }
            break;
        }
    }
    p.is_empty() && s.is_empty()
}

/// Matches one byte against the set that starts at `p` (just after its `[`).
///
/// Returns whether it matched and the pattern from the set's closing `]` on (empty when the
/// set is unclosed and so runs to the end of the pattern).
fn match_set(mut p: &[u8], byte: u8) -> (bool, &[u8]) {
    let negate = p.first() == Some(&b'^');
    if negate {
        p = &p[1..];
    }
    let mut matched = false;
    loop {
        match p {
            [b'\\', escaped, ..] => {
                matched |= *escaped == byte;
                p = &p[2..];
            }
            [b']', ..] | [] => break,
            [start, b'-', end, ..] => {
                let (low, high) = if start <= end {
                    (*start, *end)
                } else {
                    (*end, *start)
                };
                matched |= (low..=high).contains(&byte);
                p = &p[3..];
            }
            [member, ..] => {
                matched |= *member == byte;
                p = &p[1..];
            }
        }
    }
    (matched != negate, p)
}
