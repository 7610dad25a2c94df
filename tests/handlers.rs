//! Handlers, the worker thread, ignored confirmations and `listen_forever`: each redis-py trap
//! named in the issue, shown not to happen here.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex, OnceLock};
use std::thread;
use std::time::{Duration, Instant};

use common::drain;
use fanout::{Broker, HandlerPanic, Message, Overflow, PubSub, StopHandle, WorkerError};

/// Fails (instead of hanging) when `rx` gets nothing within 10 s.
fn within_10s<R>(rx: &mpsc::Receiver<R>) -> R {
    rx.recv_timeout(Duration::from_secs(10))
        .expect("nothing within 10 s")
}

fn payload_text(m: &Message<str>) -> String {
    m.payload().map(|p| p.to_string()).unwrap_or_default()
}

#[test]
fn handled_deliveries_are_not_yielded_and_others_are() {
    let broker = Broker::<str>::new();
    let sub = broker.pubsub();
    let handled = Arc::new(Mutex::new(Vec::new()));
    let log = handled.clone();
    sub.subscribe_with("orders", move |m| {
        log.lock().unwrap().push(payload_text(&m))
    });
    let log = handled.clone();
    sub.psubscribe_with("ord*", move |m| {
        log.lock().unwrap().push(format!("p:{}", payload_text(&m)))
    });
    sub.subscribe(["plain"]);
    broker.publish("orders", "1");
    broker.publish("plain", "2");
    let yielded: Vec<_> = drain(&sub)
        .iter()
        .map(|m| (m.kind(), payload_text(m)))
        .collect();
    assert_eq!(
        yielded,
        [
            ("subscribe", String::new()),
            ("psubscribe", String::new()),
            ("subscribe", String::new()),
            ("message", "2".into())
        ]
    );
    assert_eq!(*handled.lock().unwrap(), ["1", "p:1"]);
    // Unsubscribing removes the handler: later deliveries are yielded again.
    sub.unsubscribe(["orders"]);
    sub.subscribe(["orders"]);
    broker.publish("orders", "3");
    let kinds: Vec<_> = drain(&sub).iter().map(|m| m.kind()).collect();
    assert_eq!(kinds, ["unsubscribe", "subscribe", "message"]);
}

#[test]
fn ignore_subscribe_messages_hides_confirmations_only() {
    let broker = Broker::<str>::new();
    let sub = broker
        .pubsub_builder()
        .ignore_subscribe_messages(true)
        .build();
    sub.subscribe(["a"]);
    sub.psubscribe(["a*"]);
    broker.publish("a", "x");
    sub.unsubscribe_all();
    sub.punsubscribe_all();
    let kinds: Vec<_> = sub.listen().map(|m| m.kind()).collect();
    assert_eq!(kinds, ["message", "pmessage"]);
}

#[test]
fn worker_refuses_a_subscription_without_a_handler_and_names_it() {
    let broker = Broker::<str>::new();
    let sub = broker.pubsub();
    sub.subscribe_with("fine", |_| {});
    sub.subscribe(["orphan"]);
    let err = sub.run_in_thread().unwrap_err();
    assert!(matches!(&err, WorkerError::NoHandler { pattern: false, name } if name == "orphan"));
    assert_eq!(
        err.to_string(),
        "channel \"orphan\" has no handler registered"
    );
    sub.unsubscribe(["orphan"]);
    sub.psubscribe(["p*"]);
    assert_eq!(
        sub.run_in_thread().unwrap_err().to_string(),
        "pattern \"p*\" has no handler registered"
    );
}

/// redis-py #816, #717: a worker that dies silently on one exception.
#[test]
fn a_panicking_handler_is_reported_and_the_worker_goes_on() {
    let broker = Broker::<str>::new();
    let sub = broker.pubsub();
    let (tx, rx) = mpsc::channel();
    let tx = Mutex::new(tx);
    sub.subscribe_with("jobs", move |m| {
        let text = payload_text(&m);
        if text == "boom" {
            panic!("bad job {text}");
        }
        tx.lock().unwrap().send(text).unwrap();
    });
    let (ptx, prx) = mpsc::channel();
    let ptx = Mutex::new(ptx);
    let worker = sub
        .worker()
        .name("jobs-worker")
        .on_panic(move |p: HandlerPanic| ptx.lock().unwrap().send(p).unwrap())
        .spawn()
        .unwrap();
    broker.publish("jobs", "boom");
    broker.publish("jobs", "after");
    let panic = within_10s(&prx);
    assert_eq!(
        panic,
        HandlerPanic {
            channel: "jobs".into(),
            message: "bad job boom".into()
        }
    );
    assert_eq!(within_10s(&rx), "after", "the worker kept going");
    worker.stop();
    worker.join().unwrap();
}

#[test]
fn without_a_panic_handler_the_worker_stops_and_join_says_why() {
    let broker = Broker::<str>::new();
    let sub = broker.pubsub();
    sub.subscribe_with("jobs", |_| panic!("no good"));
    let worker = sub.run_in_thread().unwrap();
    broker.publish("jobs", "x");
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || tx.send(worker.join()).unwrap());
    match within_10s(&rx) {
        Err(WorkerError::Panicked(p)) => assert_eq!(
            (p.channel.as_str(), p.message.as_str()),
            ("jobs", "no good")
        ),
        other => panic!("expected a reported panic, got {other:?}"),
    }
}

/// redis-py #1194, #3464: `stop()` ignored, or impossible from a handler.
#[test]
fn stop_works_from_inside_a_handler_and_from_outside_at_once() {
    let broker = Broker::<str>::new();
    let sub = broker.pubsub();
    let stopper: Arc<OnceLock<StopHandle>> = Arc::new(OnceLock::new());
    let seen = Arc::new(AtomicUsize::new(0));
    let (s, n) = (stopper.clone(), seen.clone());
    sub.subscribe_with("ctl", move |m| {
        n.fetch_add(1, Ordering::SeqCst);
        if payload_text(&m) == "stop" {
            s.get().unwrap().stop();
        }
    });
    let worker = sub.run_in_thread().unwrap();
    stopper.set(worker.stopper()).unwrap();
    broker.publish("ctl", "stop");
    broker.publish("ctl", "never handled");
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || tx.send(worker.join()).unwrap());
    within_10s(&rx).unwrap();
    assert_eq!(seen.load(Ordering::SeqCst), 1);

    // An idle worker, blocked on its queue, stops when asked from another thread.
    let idle = broker.pubsub();
    idle.subscribe_with("quiet", |_| {});
    let worker = idle.run_in_thread().unwrap();
    thread::sleep(Duration::from_millis(20));
    let started = Instant::now();
    worker.stop();
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "stop returns at once"
    );
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || tx.send(worker.join()).unwrap());
    within_10s(&rx).unwrap();
}

/// redis-py #3640: a deadlock when a handler subscribes.
#[test]
fn a_handler_may_subscribe_unsubscribe_and_publish() {
    let broker = Broker::<str>::new();
    let sub = Arc::new(broker.pubsub());
    let me: Arc<OnceLock<Arc<PubSub<str>>>> = Arc::new(OnceLock::new());
    let (tx, rx) = mpsc::channel();
    let tx = Mutex::new(tx);
    let (m, b) = (me.clone(), broker.clone());
    sub.subscribe_with("control", move |msg| {
        let sub = m.get().unwrap();
        let tx = tx.lock().unwrap().clone();
        match payload_text(&msg).as_str() {
            "add" => sub.subscribe_with("extra", move |m| tx.send(payload_text(&m)).unwrap()),
            "drop" => sub.unsubscribe(["extra"]),
            _ => {
                b.publish("extra", "from a handler");
            }
        }
    });
    me.set(sub.clone()).unwrap();
    let worker = sub.run_in_thread().unwrap();
    broker.publish("control", "add");
    let deadline = Instant::now() + Duration::from_secs(10);
    while broker.numsub("extra") == 0 {
        assert!(
            Instant::now() < deadline,
            "the handler's subscribe did not happen"
        );
        thread::sleep(Duration::from_millis(1));
    }
    broker.publish("control", "publish");
    assert_eq!(within_10s(&rx), "from a handler");
    broker.publish("control", "drop");
    while broker.numsub("extra") == 1 {
        assert!(
            Instant::now() < deadline,
            "the handler's unsubscribe did not happen"
        );
        thread::sleep(Duration::from_millis(1));
    }
    drop(worker);
    sub.close(); // the handler holds the handle: close breaks the cycle's work
}

/// redis-py #3208: a polling loop that burns a core while idle.
#[cfg(target_os = "linux")]
#[test]
fn an_idle_worker_uses_no_cpu() {
    /// The CPU time (user + system, in clock ticks of usually 10 ms) of this process's thread
    /// named `name`: the worker's own, whatever other tests run meanwhile.
    fn thread_ticks(name: &str) -> u64 {
        for task in std::fs::read_dir("/proc/self/task").unwrap() {
            let path = task.unwrap().path();
            let comm = std::fs::read_to_string(path.join("comm")).unwrap_or_default();
            if comm.trim() == name {
                let stat = std::fs::read_to_string(path.join("stat")).unwrap();
                let fields: Vec<&str> = stat
                    .rsplit(')')
                    .next()
                    .unwrap()
                    .split_whitespace()
                    .collect();
                return fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap();
            }
        }
        panic!("no thread named {name}");
    }
    let broker = Broker::<str>::new();
    let sub = broker.pubsub();
    sub.subscribe_with("quiet", |_| {});
    let worker = sub.worker().name("idle-worker").spawn().unwrap();
    thread::sleep(Duration::from_millis(50));
    let before = thread_ticks("idle-worker");
    thread::sleep(Duration::from_millis(500));
    let used = thread_ticks("idle-worker") - before;
    // A polling loop would use all 50 ticks; a blocked thread uses none.
    assert!(used <= 1, "{used} ticks of CPU in 500 ms of idling");
    drop(worker);
}

#[test]
fn dropping_a_worker_stops_it_even_from_its_own_handler() {
    let broker = Broker::<str>::new();
    let sub = broker.pubsub();
    let slot: Arc<Mutex<Option<fanout::Worker>>> = Arc::new(Mutex::new(None));
    let (s, (tx, rx)) = (slot.clone(), mpsc::channel());
    let tx = Mutex::new(tx);
    sub.subscribe_with("bye", move |_| {
        drop(s.lock().unwrap().take()); // the worker drops itself: no self-join deadlock
        tx.lock().unwrap().send(()).unwrap();
    });
    *slot.lock().unwrap() = Some(sub.run_in_thread().unwrap());
    broker.publish("bye", "now");
    within_10s(&rx);
    // And a worker dropped from outside stops and is joined.
    let other = broker.pubsub();
    other.subscribe_with("x", |_| {});
    drop(other.run_in_thread().unwrap());
}

#[test]
fn closing_the_handle_ends_its_worker_after_the_queue() {
    let broker = Broker::<str>::new();
    let sub = broker.pubsub();
    let count = Arc::new(AtomicUsize::new(0));
    let c = count.clone();
    sub.subscribe_with("a", move |_| {
        c.fetch_add(1, Ordering::SeqCst);
    });
    for _ in 0..100 {
        broker.publish("a", "x");
    }
    let worker = sub.run_in_thread().unwrap();
    sub.close();
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || tx.send(worker.join()).unwrap());
    within_10s(&rx).unwrap();
    assert_eq!(
        count.load(Ordering::SeqCst),
        100,
        "what was queued was handled"
    );
}

/// encode/broadcaster#133: `listen()` ends (and kills a long-lived task) when the last
/// channel is unsubscribed. `listen_forever` waits for the next subscription instead.
#[test]
fn listen_forever_outlives_its_last_subscription_and_ends_on_close() {
    let broker = Broker::<str>::new();
    let sub = broker.pubsub();
    thread::scope(|s| {
        let reader = s.spawn(|| {
            sub.listen_forever()
                .map(|m| (m.kind(), payload_text(&m)))
                .collect::<Vec<_>>()
        });
        sub.subscribe(["first"]);
        broker.publish("first", "1");
        sub.unsubscribe(["first"]);
        thread::sleep(Duration::from_millis(20));
        sub.subscribe(["second"]);
        broker.publish("second", "2");
        sub.close();
        let got = reader.join().unwrap();
        let kinds: Vec<_> = got.iter().map(|(k, _)| *k).collect();
        assert_eq!(
            kinds,
            [
                "subscribe",
                "message",
                "unsubscribe",
                "subscribe",
                "message"
            ]
        );
        assert_eq!(got[4].1, "2");
    });
}

#[test]
fn a_handler_holding_its_own_handle_is_let_go_once_the_queue_ends() {
    let broker = Broker::<str>::new();
    let sub = Arc::new(broker.pubsub());
    let me = Arc::clone(&sub);
    sub.subscribe_with("loop", move |_| me.subscribe(["more"]));
    let weak = Arc::downgrade(&sub);
    broker.publish("loop", "x");
    sub.close();
    assert_eq!(
        sub.listen_forever().count(),
        1,
        "the confirmation; the message went to the handler"
    );
    drop(sub);
    assert!(
        weak.upgrade().is_none(),
        "the handler's reference was let go: no cycle"
    );
}

/// `Broker::close` ends a worker whose handle holds no subscription at that moment.
#[test]
fn broker_close_ends_a_worker_whose_handle_has_no_subscription() {
    let broker = Broker::<str>::new();
    let sub = broker.pubsub();
    sub.subscribe_with("jobs", |_| {});
    sub.unsubscribe(["jobs"]);
    let worker = sub.run_in_thread().unwrap();
    thread::sleep(Duration::from_millis(20)); // let it block
    broker.close();
    let deadline = Instant::now() + Duration::from_secs(10);
    while !worker.is_finished() {
        if Instant::now() > deadline {
            worker.stop();
            panic!("the worker kept waiting after Broker::close");
        }
        thread::sleep(Duration::from_millis(5));
    }
    worker.join().unwrap();
}

/// A panic in the panic handler kills the worker's thread; `join` says so instead of
/// returning `Ok(())` as if it had stopped cleanly.
#[test]
fn a_panic_in_the_panic_handler_is_an_error_from_join() {
    let broker = Broker::<str>::new();
    let sub = broker.pubsub();
    sub.subscribe_with("jobs", |_| panic!("handler failed"));
    let worker = sub
        .worker()
        .on_panic(|_| panic!("panic handler failed too"))
        .spawn()
        .unwrap();
    broker.publish("jobs", "x");
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || tx.send(worker.join()).unwrap());
    match within_10s(&rx) {
        Err(WorkerError::PanicHandlerPanicked(p)) => assert_eq!(
            (p.channel.as_str(), p.message.as_str()),
            ("jobs", "panic handler failed too")
        ),
        other => panic!("expected the panic handler's panic, got {other:?}"),
    }
}

/// With capacity 0 (a rendezvous), a worker blocked on the queue is the waiting reader a
/// delivery needs: `Block` publishes go through, and a drop policy does not drop them.
#[test]
fn capacity_zero_delivers_to_a_waiting_worker() {
    for overflow in [Overflow::Block, Overflow::DropNewest, Overflow::DropOldest] {
        let broker = Broker::<str>::new();
        let sub = broker
            .pubsub_builder()
            .capacity(0)
            .overflow(overflow)
            .build();
        let (tx, rx) = mpsc::channel();
        let tx = Mutex::new(tx);
        sub.subscribe_with("jobs", move |m| {
            tx.lock().unwrap().send(payload_text(&m)).unwrap();
        });
        let worker = sub.run_in_thread().unwrap();
        let mut got = Vec::new();
        for i in 0..20 {
            let publisher = {
                let broker = broker.clone();
                common::within(Duration::from_secs(10), move || {
                    // A drop policy refuses while no reader waits: retry until one does.
                    let deadline = Instant::now() + Duration::from_secs(5);
                    loop {
                        let delivered = broker.publish("jobs", i.to_string());
                        if delivered == 1 || Instant::now() > deadline {
                            return delivered;
                        }
                        thread::sleep(Duration::from_millis(1));
                    }
                })
            };
            let Some(delivered) = publisher else {
                sub.close();
                panic!("{overflow:?}: a publish waited for ever for the worker");
            };
            assert_eq!(
                delivered, 1,
                "{overflow:?}: the worker never counted as waiting"
            );
            got.push(within_10s(&rx));
        }
        assert_eq!(got, (0..20).map(|i| i.to_string()).collect::<Vec<_>>());
        worker.stop();
        worker.join().unwrap();
    }
}

/// The select recipe (`Select::ready` on the handle's receiver, then
/// `get_message(Duration::ZERO)`) reads exactly what `get_message` reads: handlers take
/// their deliveries, ignored confirmations stay hidden, and notices come where they belong.
#[test]
fn the_select_recipe_reads_exactly_what_get_message_reads() {
    use crossbeam_channel::Select;

    fn scenario(broker: &Broker<str>, sub: &PubSub<str>, handled: &Arc<Mutex<Vec<String>>>) {
        let log = handled.clone();
        sub.subscribe_with("jobs", move |m| log.lock().unwrap().push(payload_text(&m)));
        sub.subscribe(["news"]);
        sub.psubscribe(["n*"]);
        for i in 0..4 {
            broker.publish("jobs", format!("job {i}"));
            broker.publish("news", format!("news {i}"));
        }
        sub.unsubscribe(["news"]);
        broker.publish("news", "late");
    }

    let make = |broker: &Broker<str>| {
        broker
            .pubsub_builder()
            .capacity(4)
            .overflow(Overflow::DropNewest)
            .ignore_subscribe_messages(true)
            .build()
    };
    // What get_message reads.
    let broker = Broker::<str>::new();
    let direct = make(&broker);
    let direct_handled = Arc::new(Mutex::new(Vec::new()));
    scenario(&broker, &direct, &direct_handled);
    let expected: Vec<String> = std::iter::from_fn(|| direct.get_message(Duration::ZERO))
        .map(|m| format!("{} {}", m.kind(), payload_text(&m)))
        .collect();

    // The same through the recipe, beside another channel.
    let broker = Broker::<str>::new();
    let selected = make(&broker);
    let selected_handled = Arc::new(Mutex::new(Vec::new()));
    scenario(&broker, &selected, &selected_handled);
    let (_other_tx, other_rx) = crossbeam_channel::unbounded::<()>();
    let mut select = Select::new();
    let at_handle = select.recv(selected.receiver());
    select.recv(&other_rx);
    let mut got = Vec::new();
    while let Ok(ready) = select.ready_timeout(Duration::from_millis(50)) {
        assert_eq!(ready, at_handle);
        match selected.get_message(Duration::ZERO) {
            Some(m) => got.push(format!("{} {}", m.kind(), payload_text(&m))),
            None => break,
        }
    }
    assert!(!expected.is_empty());
    assert!(
        expected.iter().any(|m| m.starts_with("lagged")),
        "{expected:?}"
    );
    assert_eq!(got, expected);
    assert_eq!(
        *selected_handled.lock().unwrap(),
        *direct_handled.lock().unwrap()
    );
}

/// Deliveries queued before an unsubscription still go to its handler, as redis-py forgets a
/// handler only when it reads the `unsubscribe` reply: a worker loses none of them.
#[test]
fn deliveries_queued_before_an_unsubscription_still_reach_its_handler() {
    let broker = Broker::<str>::new();
    let sub = broker.pubsub();
    let handled = Arc::new(AtomicUsize::new(0));
    let seen = handled.clone();
    sub.subscribe_with("jobs", move |_| {
        thread::sleep(Duration::from_millis(2));
        seen.fetch_add(1, Ordering::SeqCst);
    });
    let worker = sub.run_in_thread().unwrap();
    for i in 0..10 {
        broker.publish("jobs", &*i.to_string());
    }
    sub.unsubscribe(["jobs"]);
    assert_eq!(broker.publish("jobs", "after"), 0);
    let deadline = Instant::now() + Duration::from_secs(10);
    while handled.load(Ordering::SeqCst) < 10 && Instant::now() < deadline {
        thread::sleep(Duration::from_millis(5));
    }
    worker.stop();
    worker.join().unwrap();
    assert_eq!(
        handled.load(Ordering::SeqCst),
        10,
        "every queued delivery handled"
    );
    assert_eq!(sub.stats().delivered, 10);
}

/// A delivery goes to the handler of the subscription it came through: a later subscription
/// to the same name, with a handler, does not take what an earlier one without a handler
/// queued, and the earlier handler keeps what its subscription queued.
#[test]
fn a_delivery_goes_to_the_handler_of_its_own_subscription() {
    let broker = Broker::<str>::new();
    let sub = broker.pubsub();
    let log = Arc::new(Mutex::new(Vec::new()));
    sub.subscribe(["news"]);
    broker.publish("news", "plain");
    sub.unsubscribe(["news"]);
    let first = log.clone();
    sub.subscribe_with("news", move |m| {
        first
            .lock()
            .unwrap()
            .push(format!("first:{}", payload_text(&m)))
    });
    broker.publish("news", "one");
    sub.unsubscribe(["news"]);
    let second = log.clone();
    sub.subscribe_with("news", move |m| {
        second
            .lock()
            .unwrap()
            .push(format!("second:{}", payload_text(&m)))
    });
    broker.publish("news", "two");
    let yielded: Vec<_> = drain(&sub)
        .iter()
        .map(|m| format!("{}:{}", m.kind(), payload_text(m)))
        .collect();
    assert_eq!(
        yielded,
        [
            "subscribe:",
            "message:plain",
            "unsubscribe:",
            "subscribe:",
            "unsubscribe:",
            "subscribe:"
        ]
    );
    assert_eq!(*log.lock().unwrap(), ["first:one", "second:two"]);
    // Subscribing again with a handler replaces it for what comes next.
    let third = log.clone();
    sub.subscribe_with("news", move |m| {
        third
            .lock()
            .unwrap()
            .push(format!("third:{}", payload_text(&m)))
    });
    broker.publish("news", "three");
    assert_eq!(drain(&sub).len(), 1, "the confirmation");
    assert_eq!(
        *log.lock().unwrap(),
        ["first:one", "second:two", "third:three"]
    );
}

/// A notice or a delivery's payload, as one line of a log.
fn describe(m: &Message<str>) -> String {
    match m {
        Message::Lagged { missed } => format!("lagged {missed}"),
        Message::HighWater { queued } => format!("high_water {queued}"),
        other => payload_text(other),
    }
}

/// Publishes "1" (which `worker_took_it` waits to be taken out of the queue), then 2 to 6
/// into a capacity-2 `DropNewest` queue with a mark at 2: a high-water notice after "3",
/// then 3 deliveries lost. Returns what a plain reader of a twin handle saw, in order.
fn fill_past_the_mark(broker: &Broker<str>, worker_took_it: impl Fn()) -> Vec<String> {
    let twin = bounded_with_mark(broker);
    twin.subscribe("jobs");
    broker.publish("jobs", "1");
    assert_eq!(drain(&twin).len(), 2, "the confirmation and 1");
    worker_took_it();
    for i in 2..=6 {
        broker.publish("jobs", i.to_string());
    }
    drain(&twin)
        .iter()
        .filter(|m| !m.is_confirmation())
        .map(describe)
        .collect()
}

fn bounded_with_mark(broker: &Broker<str>) -> PubSub<str> {
    broker
        .pubsub_builder()
        .capacity(2)
        .overflow(Overflow::DropNewest)
        .high_water(2)
        .build()
}

#[test]
fn a_worker_gives_notices_to_on_notice_in_queue_order() {
    let broker = Broker::<str>::new();
    let sub = bounded_with_mark(&broker);
    let log = Arc::new(Mutex::new(vec!["1".to_string()]));
    let (gate, wait) = mpsc::channel::<()>();
    let wait = Mutex::new(wait);
    let handled = log.clone();
    sub.subscribe_with("jobs", move |m| {
        if m.data() == Some("1") {
            let _ = wait.lock().unwrap().recv(); // hold the worker until the queue is full
        } else {
            handled.lock().unwrap().push(payload_text(&m));
        }
    });
    let noticed = log.clone();
    let worker = sub
        .worker()
        .on_notice(move |m| noticed.lock().unwrap().push(describe(m)))
        .spawn()
        .unwrap();
    let mut expected = vec!["1".to_string()];
    expected.extend(fill_past_the_mark(&broker, || {
        while sub.stats().queued > 0 || sub.subscriptions() == 0 {
            thread::yield_now();
        }
    }));
    assert!(expected.contains(&"high_water 2".to_string()));
    assert!(expected.iter().any(|line| line.starts_with("lagged")));
    drop(gate);
    let deadline = Instant::now() + Duration::from_secs(10);
    while log.lock().unwrap().len() < expected.len() && Instant::now() < deadline {
        thread::sleep(Duration::from_millis(1));
    }
    assert_eq!(*log.lock().unwrap(), expected);
    assert_eq!(worker.unhandled_notices(), 0);
    assert_eq!(worker.unhandled(), 0);
}

#[test]
fn without_on_notice_a_worker_counts_the_notices_it_passes_over() {
    let broker = Broker::<str>::new();
    let sub = bounded_with_mark(&broker);
    let handled = Arc::new(AtomicUsize::new(0));
    let (gate, wait) = mpsc::channel::<()>();
    let wait = Mutex::new(wait);
    let count = handled.clone();
    sub.subscribe_with("jobs", move |m| {
        if m.data() == Some("1") {
            let _ = wait.lock().unwrap().recv();
        }
        count.fetch_add(1, Ordering::Relaxed);
    });
    let worker = sub.run_in_thread().unwrap();
    let seen = fill_past_the_mark(&broker, || {
        while sub.stats().queued > 0 || handled.load(Ordering::Relaxed) > 0 {
            thread::yield_now();
        }
    });
    let notices = seen
        .iter()
        .filter(|line| line.parse::<u32>().is_err())
        .count();
    assert_eq!(notices, 2, "{seen:?}");
    drop(gate);
    let deadline = Instant::now() + Duration::from_secs(10);
    while worker.unhandled_notices() < 2 && Instant::now() < deadline {
        thread::sleep(Duration::from_millis(1));
    }
    assert_eq!(worker.unhandled_notices(), 2);
    assert_eq!(
        handled.load(Ordering::Relaxed),
        3,
        "1, 2 and 3; 4 to 6 were lost"
    );
}

/// A `StopHandle` made before the workers stops every worker given it, also one spawned after
/// it was stopped (which ends at once), and leaves the handles' subscriptions in place.
#[test]
fn one_stop_handle_made_first_stops_every_worker_it_was_given() {
    let broker = Broker::<str>::new();
    let (a, b) = (broker.pubsub(), broker.pubsub());
    a.subscribe_with("x", |_| {});
    b.subscribe_with("x", |_| {});
    let stop = fanout::StopHandle::new();
    let first = a.worker().stop_handle(stop.clone()).spawn().unwrap();
    let second = b.worker().stop_handle(stop.clone()).spawn().unwrap();
    std::thread::sleep(Duration::from_millis(20)); // let both wait
    stop.stop();
    for worker in [first, second] {
        let joined = common::within(Duration::from_secs(10), move || worker.join().is_ok());
        assert_eq!(joined, Some(true));
    }
    let late = a.worker().stop_handle(stop).spawn().unwrap();
    let joined = common::within(Duration::from_secs(10), move || late.join().is_ok());
    assert_eq!(joined, Some(true));
    assert_eq!(broker.numsub("x"), 2);
}
