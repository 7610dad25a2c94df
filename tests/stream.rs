//! `PubSub::stream()` (feature `async`): works on any executor, wakes exactly when a message
//! arrives, supports handlers, and ends when the handle is closed.
#![cfg(feature = "async")]

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Wake, Waker};
use std::time::Duration;

use fanout::{Broker, Message, Overflow};
use futures::StreamExt;
use futures_core::Stream;

/// A waker that counts how often it is woken.
struct Counter(AtomicUsize);

impl Wake for Counter {
    fn wake(self: Arc<Self>) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

fn poll_once<S: Stream + Unpin>(stream: &mut S, waker: &Waker) -> Poll<Option<S::Item>> {
    Pin::new(stream).poll_next(&mut Context::from_waker(waker))
}

#[test]
fn an_idle_stream_is_woken_once_per_arrival_and_never_while_idle() {
    let broker = Broker::<str>::new();
    let sub = broker
        .pubsub_builder()
        .ignore_subscribe_messages(true)
        .build();
    sub.subscribe(["a"]);
    let mut stream = sub.stream();
    let counter = Arc::new(Counter(AtomicUsize::new(0)));
    let waker = Waker::from(counter.clone());
    assert!(poll_once(&mut stream, &waker).is_pending());
    std::thread::sleep(Duration::from_millis(50));
    assert_eq!(
        counter.0.load(Ordering::SeqCst),
        0,
        "nothing arrived, nothing woke it"
    );
    broker.publish("a", "x");
    assert_eq!(counter.0.load(Ordering::SeqCst), 1);
    match poll_once(&mut stream, &waker) {
        Poll::Ready(Some(m)) => assert_eq!(m.payload().map(|p| &**p), Some("x")),
        other => panic!(
            "expected the message, got {:?}",
            other.map(|o| o.map(|m| m.kind()))
        ),
    }
    assert!(poll_once(&mut stream, &waker).is_pending());
    broker.publish("a", "y");
    broker.publish("a", "z");
    assert_eq!(
        counter.0.load(Ordering::SeqCst),
        2,
        "one wake for the first arrival after a poll"
    );
}

#[test]
fn block_on_reads_what_another_thread_publishes_and_the_end() {
    let broker = Broker::<u64>::new();
    let sub = broker
        .pubsub_builder()
        .capacity(4)
        .overflow(Overflow::Block)
        .build();
    sub.subscribe(["n"]);
    let stream = sub.stream();
    std::thread::scope(|s| {
        s.spawn(|| {
            for i in 0..1000 {
                broker.publish("n", i);
            }
            sub.close();
        });
        let got: Vec<u64> = futures::executor::block_on(
            stream
                .filter_map(|m| async move { m.payload().map(|p| **p) })
                .collect(),
        );
        assert_eq!(got, (0..1000).collect::<Vec<_>>());
    });
}

#[test]
fn handlers_take_their_deliveries_in_a_stream_too() {
    let broker = Broker::<str>::new();
    let sub = broker
        .pubsub_builder()
        .ignore_subscribe_messages(true)
        .build();
    let handled = Arc::new(Mutex::new(Vec::new()));
    let log = handled.clone();
    sub.subscribe_with("h", move |m: Message<str>| {
        log.lock().unwrap().push(m.payload().unwrap().to_string())
    });
    sub.subscribe(["plain"]);
    broker.publish("h", "1");
    broker.publish("plain", "2");
    let mut stream = sub.stream();
    let first = futures::executor::block_on(stream.next()).unwrap();
    assert_eq!(first.payload().map(|p| &**p), Some("2"));
    assert_eq!(*handled.lock().unwrap(), ["1"]);
}

#[test]
fn a_tokio_task_consumes_while_threads_publish() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_time()
        .build()
        .unwrap();
    let broker = Broker::<u64>::new();
    let sub = broker
        .pubsub_builder()
        .ignore_subscribe_messages(true)
        .build();
    sub.subscribe(["t"]);
    let mut stream = sub.stream();
    let task = runtime.spawn(async move {
        let mut sum = 0;
        while let Some(m) = stream.next().await {
            sum += **m.payload().unwrap();
        }
        sum
    });
    let publishers: Vec<_> = (0..2)
        .map(|_| {
            let broker = broker.clone();
            std::thread::spawn(move || {
                for i in 1..=500u64 {
                    broker.publish("t", i);
                }
            })
        })
        .collect();
    for p in publishers {
        p.join().unwrap();
    }
    sub.close(); // ends the stream after what it queued (dropping `sub` would not: the stream holds the handle)
    let sum = runtime
        .block_on(async { tokio::time::timeout(Duration::from_secs(10), task).await })
        .unwrap()
        .unwrap();
    assert_eq!(sum, 2 * 500 * 501 / 2);
}

/// Under `Block`, `publish_async` waits for room without blocking its thread: here the
/// publisher and the reader are tasks on one thread, which only works if the wait yields.
#[test]
fn publish_async_waits_for_room_without_blocking_the_thread() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap();
    let broker = Broker::<u64>::builder()
        .capacity(1)
        .overflow(Overflow::Block)
        .build();
    let sub = broker
        .pubsub_builder()
        .ignore_subscribe_messages(true)
        .build();
    sub.subscribe(["q"]);
    let mut stream = sub.stream();
    let publisher = broker.clone();
    let got = runtime.block_on(async move {
        let publish = tokio::spawn(async move {
            let mut delivered = 0;
            for i in 0..100u64 {
                delivered += publisher.publish_async("q", i).await;
            }
            delivered
        });
        let mut got = Vec::new();
        while got.len() < 100 {
            let m = tokio::time::timeout(Duration::from_secs(10), stream.next())
                .await
                .expect("stalled")
                .unwrap();
            got.push(**m.payload().unwrap());
        }
        assert_eq!(publish.await.unwrap(), 100);
        got
    });
    assert_eq!(got, (0..100).collect::<Vec<_>>());
}

#[test]
fn publish_async_is_released_by_unsubscribe() {
    let broker = Broker::<u64>::builder()
        .capacity(1)
        .overflow(Overflow::Block)
        .build();
    let sub = broker.pubsub();
    sub.subscribe(["q"]);
    futures::executor::block_on(broker.publish_async("q", 0));
    std::thread::scope(|s| {
        let waiting = s.spawn(|| futures::executor::block_on(broker.publish_async("q", 1)));
        std::thread::sleep(Duration::from_millis(30));
        sub.unsubscribe(["q"]);
        assert_eq!(waiting.join().unwrap(), 0);
    });
}

/// `Broker::close` ends a stream whose handle holds no subscription at that moment.
#[test]
fn broker_close_ends_a_stream_whose_handle_has_no_subscription() {
    let broker = Broker::<str>::new();
    let sub = broker.pubsub();
    let mut stream = sub.stream();
    let counter = Arc::new(Counter(AtomicUsize::new(0)));
    let waker = Waker::from(counter.clone());
    assert!(poll_once(&mut stream, &waker).is_pending());
    broker.close();
    assert_eq!(
        counter.0.load(Ordering::SeqCst),
        1,
        "the close woke the stream"
    );
    assert!(matches!(poll_once(&mut stream, &waker), Poll::Ready(None)));
}

#[test]
fn dropping_the_last_broker_ends_a_parked_stream_after_what_it_queued() {
    let broker = Broker::<str>::new();
    let sub = broker.pubsub();
    sub.subscribe("a");
    let mut stream = sub.stream();
    let counter = Arc::new(Counter(AtomicUsize::new(0)));
    let waker = Waker::from(counter.clone());
    assert!(matches!(
        poll_once(&mut stream, &waker),
        Poll::Ready(Some(_))
    )); // subscribe
    assert!(poll_once(&mut stream, &waker).is_pending());
    drop(broker);
    assert_eq!(counter.0.load(Ordering::SeqCst), 1, "the drop woke it");
    assert!(matches!(poll_once(&mut stream, &waker), Poll::Ready(None)));

    let broker = Broker::<str>::new();
    let sub = broker.pubsub();
    sub.subscribe("a");
    let mut stream = sub.stream();
    broker.publish("a", "queued");
    drop(broker);
    let kinds: Vec<_> = futures::executor::block_on_stream(&mut stream)
        .map(|m| m.kind())
        .collect();
    assert_eq!(kinds, ["subscribe", "message"]);
}

/// A `publish_async` dropped while it waits for a full `Block` queue (as `timeout` and
/// `select!` do) loses the delivery it was waiting to make, but not unseen: the handle reads
/// a `Lagged` notice where it would have been and counts it dropped, and the broker's
/// `delivered` keeps the deliveries the publish had already queued elsewhere.
#[test]
fn a_cancelled_publish_async_reports_its_waiting_delivery_and_counts_what_it_queued() {
    use futures::FutureExt;
    let broker = Broker::<str>::builder()
        .capacity(1)
        .overflow(Overflow::Block)
        .build();
    let full = broker.pubsub();
    let other = broker.pubsub_builder().unbounded().build();
    full.subscribe(["jobs"]);
    other.subscribe(["jobs"]);
    other.psubscribe(["j*"]);
    assert_eq!(broker.publish("jobs", "1"), 3);
    // Queued to `other` twice (channel and pattern), then waits for `full`: dropped there.
    assert_eq!(broker.publish_async("jobs", "2").now_or_never(), None);

    let read = |sub: &fanout::PubSub<str>| -> Vec<String> {
        std::iter::from_fn(|| sub.get_message(Duration::ZERO))
            .map(|m| match m {
                Message::Lagged { missed } => format!("lagged {missed}"),
                m => format!("{} {}", m.kind(), m.payload().map_or("", |p| &**p)),
            })
            .collect()
    };
    assert_eq!(
        read(&full),
        ["subscribe ", "message 1", "lagged 1"],
        "the lost delivery is reported where it would have been"
    );
    assert_eq!((full.stats().delivered, full.stats().dropped), (1, 1));
    assert_eq!(
        read(&other),
        [
            "subscribe ",
            "psubscribe ",
            "message 1",
            "pmessage 1",
            "message 2",
            "pmessage 2"
        ]
    );
    let stats = broker.stats();
    assert_eq!((stats.published, stats.delivered, stats.dropped), (2, 5, 1));
    // Nothing is left waiting: the next publish goes straight through.
    assert_eq!(broker.try_publish("jobs", "3").unwrap(), 3);
}

/// With capacity 0 (a rendezvous), a stream that is waiting (it returned `Pending`) is the
/// reader a delivery needs.
#[test]
fn capacity_zero_delivers_to_a_waiting_stream() {
    for overflow in [Overflow::Block, Overflow::DropNewest, Overflow::DropOldest] {
        let broker = Broker::<str>::new();
        let sub = broker
            .pubsub_builder()
            .capacity(0)
            .overflow(overflow)
            .ignore_subscribe_messages(true)
            .build();
        sub.subscribe(["q"]);
        let mut stream = sub.stream();
        let counter = Arc::new(Counter(AtomicUsize::new(0)));
        let waker = Waker::from(counter.clone());
        assert!(poll_once(&mut stream, &waker).is_pending());
        let (tx, rx) = std::sync::mpsc::channel();
        let publisher = broker.clone();
        std::thread::spawn(move || {
            let _ = tx.send(publisher.publish("q", "now"));
        });
        let Ok(delivered) = rx.recv_timeout(Duration::from_secs(10)) else {
            sub.close();
            panic!("{overflow:?}: the publish waited for ever for the stream");
        };
        assert_eq!(
            delivered, 1,
            "{overflow:?}: the stream never counted as waiting"
        );
        let Poll::Ready(Some(message)) = poll_once(&mut stream, &waker) else {
            panic!("{overflow:?}: nothing to read");
        };
        assert_eq!(message.payload().map(|p| &**p), Some("now"));
    }
}

/// A handle may have several streams: each one waiting is woken when something is queued
/// and when the handle ends (it once kept a single waker slot: only the last stream to
/// wait was woken, even by `Broker::close`).
#[test]
fn every_stream_of_a_handle_is_woken() {
    let broker = Broker::<str>::new();
    let sub = broker
        .pubsub_builder()
        .ignore_subscribe_messages(true)
        .build();
    sub.subscribe(["a"]);
    let (mut first, mut second, third) = (sub.stream(), sub.stream(), sub.stream());
    let counters: Vec<_> = (0..2)
        .map(|_| Arc::new(Counter(AtomicUsize::new(0))))
        .collect();
    let wakers: Vec<Waker> = counters.iter().map(|c| Waker::from(c.clone())).collect();
    assert!(poll_once(&mut first, &wakers[0]).is_pending());
    assert!(poll_once(&mut second, &wakers[1]).is_pending());
    drop(third); // a stream that never waited, gone
    broker.publish("a", "x");
    let woken: Vec<usize> = counters
        .iter()
        .map(|c| c.0.load(Ordering::SeqCst))
        .collect();
    assert_eq!(woken, [1, 1], "both waiting streams were woken");
    assert!(matches!(
        poll_once(&mut second, &wakers[1]),
        Poll::Ready(Some(_))
    ));
    assert!(
        poll_once(&mut first, &wakers[0]).is_pending(),
        "the other took it"
    );
    drop(second);
    broker.close();
    assert_eq!(counters[0].0.load(Ordering::SeqCst), 2, "the close woke it");
    assert!(matches!(
        poll_once(&mut first, &wakers[0]),
        Poll::Ready(None)
    ));
}

/// A `publish_async` waiting for a full `Block` queue, polled once and kept unpolled (as a
/// `select!` over `&mut future` may leave it), does not keep the handle's queue open:
/// `Broker::close` still ends its readers.
#[test]
fn broker_close_ends_readers_while_a_publish_async_future_is_parked() {
    let broker = Broker::<str>::builder()
        .capacity(1)
        .overflow(Overflow::Block)
        .build();
    let sub = broker.pubsub();
    sub.subscribe(["a"]);
    broker.publish("a", "1"); // the queue is full
    let mut parked = Box::pin(broker.publish_async("a", "2"));
    let counter = Arc::new(Counter(AtomicUsize::new(0)));
    let waker = Waker::from(counter);
    assert!(parked
        .as_mut()
        .poll(&mut Context::from_waker(&waker))
        .is_pending());
    broker.close();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::scope(|s| {
        s.spawn(|| {
            let _ = tx.send(sub.listen_forever().count());
        });
        let ended = rx.recv_timeout(Duration::from_secs(10));
        if ended.is_err() {
            drop(parked); // lets the reader end, so the test can fail instead of hanging
            panic!("listen_forever() kept waiting while a publish_async future was parked");
        }
        assert_eq!(ended, Ok(2), "the confirmation and the message");
    });
}

/// A waker that publishes, subscribes and unsubscribes on the broker that woke it: it runs
/// code that takes the same locks the waking publish or subscription took, so it would
/// deadlock (parking_lot's mutexes are not re-entrant) if a wake ran under one of them.
struct Republisher {
    broker: Broker<str>,
    other: Mutex<Option<fanout::PubSub<str>>>,
    woken: AtomicUsize,
}

impl Wake for Republisher {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        if self.woken.fetch_add(1, Ordering::SeqCst) < 4 {
            self.broker.publish("a", "from the waker");
            self.broker.publish("b", "from the waker");
            if let Some(other) = self.other.lock().unwrap().as_ref() {
                other.subscribe(["a"]);
                other.psubscribe(["*"]);
                other.unsubscribe(["a"]);
            }
        }
    }
}

#[test]
fn a_waker_may_publish_and_subscribe_on_the_broker_that_woke_it() {
    let broker = Broker::<str>::new();
    let sub = broker.pubsub();
    sub.subscribe(["a"]);
    sub.psubscribe(["a*"]);
    let mut stream = sub.stream();
    while let Poll::Ready(Some(_)) = poll_once(&mut stream, &Waker::noop().clone()) {}
    let republisher = Arc::new(Republisher {
        broker: broker.clone(),
        other: Mutex::new(Some(broker.pubsub())),
        woken: AtomicUsize::new(0),
    });
    let waker = Waker::from(republisher.clone());
    let (done, finished) = std::sync::mpsc::channel();
    let publisher = broker.clone();
    std::thread::spawn(move || {
        // A channel delivery (under the stripe's lock) and a pattern delivery (under the
        // pattern table's) in one publish, then a confirmation (under the handle's lock).
        assert!(poll_once(&mut stream, &waker).is_pending());
        assert_eq!(publisher.publish("a", "first"), 2);
        let mut read = Vec::new();
        while let Poll::Ready(Some(m)) = poll_once(&mut stream, &waker) {
            read.push(m.payload().map(|p| p.to_string()));
        }
        assert!(poll_once(&mut stream, &waker).is_pending());
        sub.subscribe(["c"]);
        done.send(read).unwrap();
    });
    let read = finished
        .recv_timeout(Duration::from_secs(10))
        .expect("a wake ran under a lock the waker needs: deadlock");
    assert_eq!(read[..2], [Some("first".into()), Some("first".into())]);
    assert!(
        read[2..]
            .iter()
            .all(|p| p.as_deref() == Some("from the waker")),
        "{read:?}"
    );
    assert!(republisher.woken.load(Ordering::SeqCst) >= 2);
}

/// A publisher's waker that reads and subscribes the very handle whose reader woke it: the
/// reader wakes it with no lock of the handle held.
struct ReadsTheHandle {
    sub: Mutex<Option<Arc<fanout::PubSub<str>>>>,
}

impl Wake for ReadsTheHandle {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        if let Some(sub) = self.sub.lock().unwrap().take() {
            let _ = sub.get_message(Duration::ZERO);
            sub.subscribe(["from the waker"]);
        }
    }
}

#[test]
fn a_publishers_waker_may_read_and_subscribe_the_handle_that_made_room() {
    let broker = Broker::<str>::new();
    let sub = Arc::new(
        broker
            .pubsub_builder()
            .capacity(1)
            .overflow(Overflow::Block)
            .ignore_subscribe_messages(true)
            .build(),
    );
    sub.subscribe(["c"]);
    assert_eq!(broker.publish("c", "1"), 1, "the queue is full now");
    let mut publishing = Box::pin(broker.publish_async("c", "2"));
    let waker = Waker::from(Arc::new(ReadsTheHandle {
        sub: Mutex::new(Some(sub.clone())),
    }));
    assert!(publishing
        .as_mut()
        .poll(&mut Context::from_waker(&waker))
        .is_pending());
    let (done, finished) = std::sync::mpsc::channel();
    let reader = sub.clone();
    std::thread::spawn(move || {
        // Takes "1": makes room, and wakes the publisher's waker.
        let read = reader.get_message(Duration::ZERO);
        done.send(read.and_then(|m| m.payload().map(|p| p.to_string())))
            .unwrap();
    });
    let read = finished
        .recv_timeout(Duration::from_secs(10))
        .expect("the waker ran under a lock of the handle: deadlock");
    assert_eq!(read.as_deref(), Some("1"));
    assert_eq!(sub.subscriptions(), 2, "the waker's subscription is made");
}

/// A cancelled `publish_async` leaves a `Lagged` notice: a reader asleep on the empty queue
/// (in `get_message` or in the `Select` recipe) is woken for it at once.
#[test]
fn a_cancelled_publish_async_wakes_the_reader_for_its_notice() {
    for select in [false, true] {
        let broker = Broker::<str>::new();
        let sub = broker
            .pubsub_builder()
            .capacity(1)
            .overflow(Overflow::Block)
            .ignore_subscribe_messages(true)
            .build();
        sub.subscribe(["c"]);
        broker.publish("c", "1");
        let mut publishing = Box::pin(broker.publish_async("c", "2"));
        let mut cx = Context::from_waker(Waker::noop());
        assert!(publishing.as_mut().poll(&mut cx).is_pending());
        let first = sub.get_message(Duration::ZERO).unwrap();
        assert_eq!(first.payload().map(|p| &**p), Some("1"));
        std::thread::scope(|s| {
            let reader = s.spawn(|| {
                let began = std::time::Instant::now();
                let read = if select {
                    let mut ready = crossbeam_channel::Select::new();
                    ready.recv(sub.receiver());
                    match ready.ready_timeout(Duration::from_secs(10)) {
                        Ok(_) => sub.get_message(Duration::ZERO),
                        Err(_) => None,
                    }
                } else {
                    sub.get_message(Duration::from_secs(10))
                };
                (began.elapsed(), read)
            });
            std::thread::sleep(Duration::from_millis(100));
            drop(publishing);
            let (took, read) = reader.join().unwrap();
            assert_eq!(
                read,
                Some(Message::Lagged { missed: 1 }),
                "select: {select}"
            );
            assert!(took < Duration::from_secs(5), "woken late: {took:?}");
        });
    }
}

/// A `next()` dropped before it finished (the losing branch of a `select!`) takes nothing
/// from the queue: every message published around the drops is read once, in order.
#[test]
fn a_next_dropped_unfinished_loses_nothing() {
    use futures::FutureExt;
    let broker = Broker::<str>::new();
    let sub = broker
        .pubsub_builder()
        .ignore_subscribe_messages(true)
        .build();
    sub.subscribe("c");
    let mut stream = sub.stream();
    let mut got = Vec::new();
    for i in 0..100 {
        if i % 3 != 1 {
            // Pending: the future is dropped with nothing queued.
            assert!(stream.next().now_or_never().is_none());
        }
        broker.publish("c", i.to_string());
        if i % 3 == 0 {
            continue; // left queued for the next round
        }
        while let Some(Some(m)) = stream.next().now_or_never() {
            got.push(m.data().unwrap().to_string());
        }
    }
    while let Some(Some(m)) = stream.next().now_or_never() {
        got.push(m.data().unwrap().to_string());
    }
    let expected: Vec<String> = (0..100).map(|i| i.to_string()).collect();
    assert_eq!(got, expected);
}
