//! The pattern cache and the striped channel map answer exactly as a plain scan of every
//! subscription would, through every change and past the cache's size.

mod common;

use std::collections::{BTreeMap, BTreeSet};

use common::{drain, glob_reference::reference_match};
use fanout::{Broker, Message};
use proptest::prelude::*;

const PATTERNS: &[&str] = &[
    "*", "a*", "*1", "a?", "[ab]*", "b*2", "a[^1]*", "*.*", "x", "?*?",
];

#[derive(Debug, Clone)]
enum Op {
    PSubscribe(usize, &'static str),
    PUnsubscribe(usize, &'static str),
    Subscribe(usize, String),
    Unsubscribe(usize, String),
    Publish(String),
}

fn channel() -> impl Strategy<Value = String> {
    // Few enough names to publish to the same channel often (cache hits), many enough to
    // spread over stripes.
    "[abx][12.]{0,2}"
}

fn op() -> impl Strategy<Value = Op> {
    let h = 0..3usize;
    prop_oneof![
        2 => (h.clone(), prop::sample::select(PATTERNS)).prop_map(|(h, p)| Op::PSubscribe(h, p)),
        1 => (h.clone(), prop::sample::select(PATTERNS)).prop_map(|(h, p)| Op::PUnsubscribe(h, p)),
        2 => (h.clone(), channel()).prop_map(|(h, c)| Op::Subscribe(h, c)),
        1 => (h, channel()).prop_map(|(h, c)| Op::Unsubscribe(h, c)),
        6 => channel().prop_map(Op::Publish),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(500))]

    /// After every change, each publish delivers to exactly the (handle, pattern) pairs a
    /// scan of all patterns finds, and the channel map answers like a plain map.
    #[test]
    fn cached_and_striped_lookups_equal_a_plain_scan(ops in proptest::collection::vec(op(), 1..100)) {
        let broker = Broker::<str>::new();
        let subs: Vec<_> = (0..3).map(|_| broker.pubsub()).collect();
        let mut patterns: Vec<BTreeSet<&str>> = vec![BTreeSet::new(); 3];
        let mut channels: Vec<BTreeSet<String>> = vec![BTreeSet::new(); 3];
        for op in ops {
            match &op {
                Op::PSubscribe(h, p) => { subs[*h].psubscribe([p]); patterns[*h].insert(p); }
                Op::PUnsubscribe(h, p) => { subs[*h].punsubscribe([p]); patterns[*h].remove(p); }
                Op::Subscribe(h, c) => { subs[*h].subscribe([c]); channels[*h].insert(c.clone()); }
                Op::Unsubscribe(h, c) => { subs[*h].unsubscribe([c]); channels[*h].remove(c); }
                Op::Publish(c) => {
                    let mut expected = 0;
                    for h in 0..3 {
                        let matching = patterns[h].iter().filter(|p| reference_match(p, c)).count();
                        expected += matching + usize::from(channels[h].contains(c));
                    }
                    prop_assert_eq!(broker.publish(c, "x"), expected);
                }
            }
            for (h, sub) in subs.iter().enumerate() {
                // What each handle received since the last op: only the last publish.
                let got: BTreeSet<String> = drain(sub)
                    .iter()
                    .filter_map(|m| match m {
                        Message::PMessage { pattern, .. } => Some(pattern.to_string()),
                        _ => None,
                    })
                    .collect();
                if let Op::Publish(c) = &op {
                    let want: BTreeSet<String> = patterns[h].iter().filter(|p| reference_match(p, c)).map(|p| p.to_string()).collect();
                    prop_assert_eq!(got, want, "handle {} publish {:?}", h, c);
                }
            }
            let mut numsub: BTreeMap<&str, usize> = BTreeMap::new();
            for set in &channels {
                for c in set {
                    *numsub.entry(c).or_default() += 1;
                }
            }
            let active: Vec<String> = numsub.keys().map(|c| c.to_string()).collect();
            prop_assert_eq!(broker.channels(None), active);
            for (c, n) in numsub {
                prop_assert_eq!(broker.numsub(c), n);
            }
            let unique: BTreeSet<&str> = patterns.iter().flatten().copied().collect();
            prop_assert_eq!(broker.numpat(), unique.len());
        }
    }
}

#[test]
fn more_channels_than_the_cache_holds_still_match_exactly() {
    let broker = Broker::<str>::new();
    let sub = broker.pubsub();
    sub.psubscribe(["even.*[02468]", "*7"]);
    drain(&sub);
    for round in 0..2 {
        for i in 0..100_000u32 {
            let channel = format!("even.{i}");
            let expected = usize::from(i % 2 == 0) + usize::from(i % 10 == 7);
            assert_eq!(
                broker.publish(&channel, "x"),
                expected,
                "round {round}, {channel}"
            );
        }
        assert_eq!(drain(&sub).len(), 60_000);
    }
}

#[test]
fn many_channels_across_stripes_behave_like_one_map() {
    let broker = Broker::<str>::new();
    let subs: Vec<_> = (0..4).map(|_| broker.pubsub()).collect();
    let mut model: Vec<BTreeSet<String>> = vec![BTreeSet::new(); 4];
    for i in 0..40_000u32 {
        let name = format!("c{}", (i * 7919) % 5_000);
        let h = (i as usize * 7) % 4;
        if i % 3 == 0 {
            subs[h].unsubscribe([&name]);
            model[h].remove(&name);
        } else {
            subs[h].subscribe([&name]);
            model[h].insert(name);
        }
    }
    let mut numsub: BTreeMap<&str, usize> = BTreeMap::new();
    for name in model.iter().flatten() {
        *numsub.entry(name).or_default() += 1;
    }
    let active: Vec<String> = numsub.keys().map(|c| c.to_string()).collect();
    assert_eq!(broker.channels(None), active);
    let filtered: Vec<String> = active
        .iter()
        .filter(|c| reference_match("c1*7", c))
        .cloned()
        .collect();
    assert_eq!(broker.channels(Some("c1*7")), filtered);
    for i in 0..5_000 {
        let name = format!("c{i}");
        let n = numsub.get(name.as_str()).copied().unwrap_or(0);
        assert_eq!(broker.numsub(&name), n, "{name}");
        assert_eq!(broker.publish(&name, "x"), n, "{name}");
    }
}
