//! Pattern matching is exactly Redis's `stringmatchlen`: the documented table, a property
//! test against a plain reference, and the guards that keep hostile patterns cheap.

mod common;

use std::time::{Duration, Instant};

use common::glob_reference::reference_match;
use fanout::{glob_match, Broker, MAX_STAR_NESTING};
use proptest::prelude::*;

/// The table in SEMANTICS.md, checked through the public matcher and through a real
/// `psubscribe` + `publish`.
const TABLE: &[(&str, &str, bool)] = &[
    ("*", "", false),
    ("", "", true),
    ("a*", "a", true),
    ("a*?", "a", false),
    ("h?llo", "hello", true),
    ("h*llo", "hllo", true),
    ("h[ae]llo", "hillo", false),
    ("h[^e]llo", "hallo", true),
    ("h[!e]llo", "h!llo", true),
    ("h[!e]llo", "hallo", false),
    ("[z-a]", "m", true),
    ("[a-z]", "A", false),
    ("[]", "a", false),
    ("[^]", "x", true),
    ("[abc", "b", true),
    ("[abc", "[", false),
    ("[a-]", "-", false),
    ("[a-]", "]", true),
    ("\\*", "*", true),
    ("\\*", "a", false),
    ("a\\", "a\\", true),
    ("[\\]]", "]", true),
    ("[*]", "*", true),
    ("a[", "a[", false),
    ("foo.*", "foo.1", true),
    ("foo.*", "foo1", false),
    ("*", "a/b", true),
    ("a*b*c", "axxbxxcx", false),
    ("*c", "abcabc", true),
    ("[a-c-e]", "-", true),
    // More from SEMANTICS.md's prose.
    ("[^", "z", true),
    ("[", "[", false),
    ("[a-", "a", true),
    ("[a-", "-", true),
    ("[a-", "b", false),
    ("[]a]", "a]", false),
    ("[\\-]", "-", true),
    ("[-a]", "-", true),
    ("?", "é", false),
    ("??", "é", true),
    ("**", "", false),
    ("h*llo", "HELLO", false),
];

#[test]
fn semantics_table_matches() {
    for &(pattern, channel, expected) in TABLE {
        assert_eq!(
            glob_match(pattern, channel),
            expected,
            "{pattern:?} vs {channel:?}"
        );
        assert_eq!(
            reference_match(pattern, channel),
            expected,
            "reference: {pattern:?} vs {channel:?}"
        );
    }
}

#[test]
fn psubscribe_delivers_exactly_where_the_table_says() {
    let broker = Broker::<str>::new();
    for &(pattern, channel, expected) in TABLE {
        let sub = broker.pubsub();
        sub.psubscribe([pattern]);
        assert_eq!(
            broker.publish(channel, "x"),
            usize::from(expected),
            "{pattern:?} vs {channel:?}"
        );
    }
}

#[test]
fn channels_filter_uses_the_same_matcher() {
    let broker = Broker::<str>::new();
    let sub = broker.pubsub();
    let names = ["hello", "hallo", "hxllo", "h!llo", "", "news.1", "news"];
    sub.subscribe(names);
    assert_eq!(
        broker.channels(Some("h[^e]llo")),
        ["h!llo", "hallo", "hxllo"]
    );
    assert_eq!(broker.channels(Some("h[!e]llo")), ["h!llo", "hello"]);
    assert_eq!(broker.channels(Some("news.*")), ["news.1"]);
    assert_eq!(
        broker.channels(Some("*")).len(),
        names.len() - 1,
        "`*` skips the empty channel"
    );
    assert_eq!(broker.channels(Some("")), [""]);
}

/// Not a benchmark: a guard that the match is polynomial. Plain backtracking would need
/// about 10,000^10 steps here; the bound is loose enough for a debug build on a busy machine.
/// The real cost is measured by the `glob` group in `benches/publish.rs`.
#[test]
fn hostile_patterns_finish_quickly() {
    let channel = "a".repeat(10_000);
    let started = Instant::now();
    assert!(!glob_match("a*a*a*a*a*a*a*a*a*a*b", &channel));
    assert!(glob_match("a*a*a*a*a*a*a*a*a*a*", &channel));
    assert!(!glob_match(&format!("{}b", "*a".repeat(500)), &channel));
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "took {:?}",
        started.elapsed()
    );
}

#[test]
fn nesting_deeper_than_the_guard_is_no_match() {
    let channel = "a".repeat(MAX_STAR_NESTING + 1);
    // MAX_STAR_NESTING star groups may nest; one more gives up, as Redis does.
    let at_limit = "*a".repeat(MAX_STAR_NESTING);
    let over_limit = "*a".repeat(MAX_STAR_NESTING + 1);
    assert!(glob_match(&at_limit, &channel));
    assert!(
        reference_match(&over_limit, &channel),
        "the pattern does match without the guard"
    );
    assert!(!glob_match(&over_limit, &channel));
}

/// Every rule's metacharacters, and a two-byte character.
fn text(max: usize) -> impl Strategy<Value = String> {
    common::text_from(
        &[
            'a', 'b', 'c', '*', '?', '[', ']', '^', '-', '\\', '!', 'é', 'z',
        ],
        max,
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(20_000))]

    #[test]
    fn matcher_agrees_with_reference(pattern in text(10), channel in text(10)) {
        prop_assert_eq!(glob_match(&pattern, &channel), reference_match(&pattern, &channel));
    }

    #[test]
    fn matcher_agrees_on_plain_channels(pattern in text(8), channel in "[abc]{0,12}") {
        prop_assert_eq!(glob_match(&pattern, &channel), reference_match(&pattern, &channel));
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    /// The broker's pattern index narrows, `glob_match` decides: with many patterns subscribed
    /// (some removed again, so slots are reused and the index's automaton is rebuilt), each
    /// publish to a channel never published before (no cache) reaches exactly the patterns a
    /// plain scan of `glob_match` finds, once each, in subscription order.
    #[test]
    fn the_pattern_index_finds_every_match_on_cold_channels(
        patterns in proptest::collection::vec(text(9), 1..120),
        removed in proptest::collection::vec(any::<prop::sample::Index>(), 0..40),
        channels in proptest::collection::vec(text(12), 1..40),
    ) {
        let broker = Broker::<str>::new();
        let sub = broker.pubsub_builder().ignore_subscribe_messages(true).build();
        sub.psubscribe(&patterns);
        let mut gone = std::collections::HashSet::new();
        for index in &removed {
            let pattern = index.get(&patterns);
            sub.punsubscribe(pattern.as_str());
            gone.insert(pattern.clone());
        }
        // The patterns still subscribed, in order of first subscription (Redis's order).
        let mut live: Vec<&String> = Vec::new();
        for pattern in &patterns {
            if !gone.contains(pattern) && !live.contains(&pattern) {
                live.push(pattern);
            }
        }
        let mut seen = std::collections::HashSet::new();
        for channel in &channels {
            if !seen.insert(channel) {
                continue; // a channel published before may come from the cache
            }
            let expected: Vec<&str> = live
                .iter()
                .filter(|p| glob_match(p, channel))
                .map(|p| p.as_str())
                .collect();
            prop_assert_eq!(broker.publish(channel, "x"), expected.len());
            let got: Vec<String> = std::iter::from_fn(|| sub.get_message(Duration::ZERO))
                .map(|m| m.pattern().unwrap().to_string())
                .collect();
            prop_assert_eq!(got, expected, "channel {:?}", channel);
        }
    }
}
