//! Shared by the benches: run sizes and the quick mode.
#![allow(dead_code)]

/// `FANOUT_BENCH_QUICK=1` (CI's smoke run) uses small sizes; otherwise full sizes.
pub fn quick() -> bool {
    std::env::var_os("FANOUT_BENCH_QUICK").is_some_and(|v| v != "0")
}

/// `full` normally, `small` in quick mode.
pub fn size(full: usize, small: usize) -> usize {
    if quick() {
        small
    } else {
        full
    }
}

/// A channel of the kind `idle_pattern`'s patterns are made for, matched by none of them.
pub fn idle_channel(i: usize) -> String {
    match i % 3 {
        0 => format!("metrics.{i}"),
        1 => format!("host{i}.cpu"),
        _ => format!("orders.{i}"),
    }
}

/// The `i`th of the benches' idle patterns, in three shapes: a literal head (`metrics.7.*`), a
/// literal tail (`*.cpu7`) and a literal after a `?` (`?rders.7.*`). None matches the channels
/// the benches publish to.
pub fn idle_pattern(i: usize) -> String {
    match i % 3 {
        0 => format!("metrics.{i}.*"),
        1 => format!("*.cpu{i}"),
        _ => format!("?rders.{i}.*"),
    }
}

/// The raw send the single-thread publish rows compare with: `iters` times, `messages`
/// clones of `payload` sent into an unbounded crossbeam queue nobody reads, timed.
pub fn crossbeam_send(
    iters: u64,
    messages: usize,
    payload: &std::sync::Arc<str>,
) -> std::time::Duration {
    (0..iters)
        .map(|_| {
            let (tx, rx) = crossbeam_channel::unbounded::<std::sync::Arc<str>>();
            let began = std::time::Instant::now();
            for _ in 0..messages {
                tx.send(payload.clone()).unwrap();
            }
            let elapsed = began.elapsed();
            drop(rx);
            elapsed
        })
        .sum()
}

/// A group of the single-thread benches (`halves`, `history`): 20 samples, and short
/// warm-up and measurement in quick mode.
pub fn single_thread_group<'c>(
    c: &'c mut criterion::Criterion,
    name: &str,
) -> criterion::BenchmarkGroup<'c, criterion::measurement::WallTime> {
    let mut group = c.benchmark_group(name);
    group.sample_size(20);
    if quick() {
        group
            .warm_up_time(std::time::Duration::from_millis(200))
            .measurement_time(std::time::Duration::from_millis(800));
    }
    group
}
