//! A thread that reads a handle and gives each delivery to its handler (redis-py's
//! `run_in_thread`), without redis-py's traps: it never dies silently, `stop` works from
//! anywhere (a handler included) and returns at once, and it blocks on the queue instead of
//! polling.

use std::any::Any;
use std::fmt;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::{self, JoinHandle, Thread, ThreadId};

use parking_lot::Mutex;

use crate::error::{HandlerPanic, WorkerError};
use crate::handle::{Handle, Nothing};
use crate::kind::Kind;
use crate::message::Message;
use crate::owner::Owner;
use crate::wait::Wait;

/// What a panic handler is given: see [`WorkerBuilder::on_panic`].
type PanicHandler = Arc<dyn Fn(HandlerPanic) + Send + Sync>;

/// The handler of notices: see [`WorkerBuilder::on_notice`].
type NoticeHandler<T> = Arc<dyn Fn(&Message<T>) + Send + Sync>;

/// What a worker passed over, for want of a handler (relaxed: statistics, ordered with
/// nothing).
#[derive(Default)]
struct Skipped {
    deliveries: AtomicU64,
    notices: AtomicU64,
}

/// Stops a [`Worker`] from anywhere, a handler included; cheap to clone.
///
/// `stop` returns at once: the worker finishes the handler it is running (if any) and ends.
/// Take one from [`Worker::stopper`], or make one first with [`StopHandle::new`] and give it
/// to [`WorkerBuilder::stop_handle`], so that the worker's own handlers can hold it. One
/// handle may stop several workers.
#[derive(Clone, Default)]
pub struct StopHandle {
    stopped: Arc<AtomicBool>,
    /// The workers' threads, which `stop` unparks. Each thread adds itself before it first
    /// waits; `stop` sets `stopped` under this lock and a thread checks it after adding
    /// itself, so either `stop` unparks it or the thread sees the flag.
    threads: Arc<Mutex<Vec<Thread>>>,
}

impl StopHandle {
    /// A handle for workers not spawned yet: give it to [`WorkerBuilder::stop_handle`].
    /// Handlers registered before the worker exists can then stop it.
    ///
    /// # Examples
    ///
    /// ```
    /// use fanout::{Broker, StopHandle};
    ///
    /// let broker = Broker::<str>::new();
    /// let sub = broker.pubsub();
    /// let stop = StopHandle::new();
    /// let stopper = stop.clone();
    /// sub.subscribe_with("control", move |_| stopper.stop()); // stops its own worker
    /// let worker = sub.worker().stop_handle(stop).spawn().unwrap();
    /// broker.publish("control", "shutdown");
    /// worker.join().unwrap(); // ended by its handler
    /// ```
    pub fn new() -> Self {
        StopHandle::default()
    }

    /// Asks the worker to stop; returns at once. Stopping twice is harmless.
    ///
    /// # Examples
    ///
    /// ```
    /// use fanout::Broker;
    ///
    /// let broker = Broker::<str>::new();
    /// let sub = broker.pubsub();
    /// sub.subscribe_with("jobs", |_| {});
    /// let worker = sub.run_in_thread().unwrap();
    /// let stopper = worker.stopper();
    /// std::thread::spawn(move || stopper.stop()).join().unwrap();
    /// worker.join().unwrap(); // the worker ended
    /// assert!(sub.is_subscribed()); // the handle keeps its subscriptions
    /// ```
    pub fn stop(&self) {
        let threads = self.threads.lock();
        self.stopped.store(true, Ordering::Release);
        for thread in threads.iter() {
            thread.unpark();
        }
    }

    /// Records the worker's thread, from the thread itself.
    fn started(&self) {
        self.threads.lock().push(thread::current());
    }

    /// Whether `stop` was called.
    ///
    /// # Examples
    ///
    /// ```
    /// use fanout::Broker;
    ///
    /// let broker = Broker::<str>::new();
    /// let sub = broker.pubsub();
    /// sub.subscribe_with("jobs", |_| {});
    /// let worker = sub.run_in_thread().unwrap();
    /// let stopper = worker.stopper();
    /// assert!(!stopper.is_stopped());
    /// worker.stop();
    /// assert!(stopper.is_stopped()); // every clone sees it
    /// ```
    pub fn is_stopped(&self) -> bool {
        self.stopped.load(Ordering::Acquire)
    }
}

impl fmt::Debug for StopHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StopHandle")
            .field("stopped", &self.is_stopped())
            .finish()
    }
}

/// A thread running a handle's handlers, from
/// [`PubSub::run_in_thread`](crate::PubSub::run_in_thread) or
/// [`PubSub::worker`](crate::PubSub::worker).
///
/// It holds its handle: a worker returned alone from a function keeps running, and the handle's
/// subscriptions go once both the worker and the [`PubSub`](crate::PubSub) are gone. It ends
/// when stopped, when the handle is closed (by [`PubSub::close`](crate::PubSub::close), its
/// broker's `close`, or its overflow policy) after handling what was queued, or when a handler
/// panics and no panic handler was set. Dropping it stops
/// it and waits for it (unless dropped by its own thread, from a handler: then it only stops).
#[must_use = "dropping a `Worker` stops its thread: keep it for as long as it should run, or `join` it"]
pub struct Worker {
    stop: StopHandle,
    skipped: Arc<Skipped>,
    thread: Option<JoinHandle<Result<(), WorkerError>>>,
    thread_id: ThreadId,
}

impl Worker {
    /// Asks the worker to stop and returns at once; works from inside a handler.
    ///
    /// # Examples
    ///
    /// ```
    /// use fanout::Broker;
    ///
    /// let broker = Broker::<str>::new();
    /// let sub = broker.pubsub();
    /// sub.subscribe_with("jobs", |_| {});
    /// let worker = sub.run_in_thread().unwrap();
    /// worker.stop(); // returns at once
    /// worker.join().unwrap();
    /// assert_eq!(broker.publish("jobs", "queued, unread"), 1); // still subscribed
    /// ```
    pub fn stop(&self) {
        self.stop.stop();
    }

    /// A handle that stops this worker, for handlers and other threads.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::sync::{Arc, OnceLock};
    /// use fanout::{Broker, StopHandle};
    ///
    /// let broker = Broker::<str>::new();
    /// let sub = broker.pubsub();
    /// let slot: Arc<OnceLock<StopHandle>> = Arc::default();
    /// let in_handler = slot.clone();
    /// sub.subscribe_with("shutdown", move |_| in_handler.get().unwrap().stop());
    /// let worker = sub.run_in_thread().unwrap();
    /// slot.set(worker.stopper()).unwrap();
    /// broker.publish("shutdown", "now");
    /// worker.join().unwrap(); // returns once the handler stopped it
    /// ```
    pub fn stopper(&self) -> StopHandle {
        self.stop.clone()
    }

    /// How many deliveries (and replays) the worker skipped because their subscription has
    /// no handler (one made without a handler after the worker started; redis-py's worker
    /// drops them too). The deliveries still count in the handle's `stats().delivered`.
    ///
    /// # Examples
    ///
    /// ```
    /// use fanout::Broker;
    ///
    /// let broker = Broker::<str>::new();
    /// let sub = broker.pubsub();
    /// sub.subscribe_with("handled", |_| {});
    /// let worker = sub.run_in_thread().unwrap();
    /// sub.subscribe("plain"); // no handler: the worker cannot give its deliveries to anyone
    /// broker.publish("plain", "lost to the worker");
    /// while worker.unhandled() == 0 {
    ///     std::thread::yield_now();
    /// }
    /// assert_eq!(worker.unhandled(), 1);
    /// ```
    pub fn unhandled(&self) -> u64 {
        self.skipped.deliveries.load(Ordering::Relaxed)
    }

    /// How many notices ([`Lagged`](Message::Lagged), [`HighWater`](Message::HighWater),
    /// [`Gap`](Message::Gap): see [`Message::is_notice`]) the worker passed over because it
    /// was started without [`on_notice`](WorkerBuilder::on_notice). With that handler set,
    /// it stays 0.
    ///
    /// # Examples
    ///
    /// ```
    /// use fanout::{Broker, Overflow};
    ///
    /// let broker = Broker::<str>::new();
    /// let sub = broker.pubsub_builder().capacity(1).overflow(Overflow::DropNewest).build();
    /// let (gate, wait) = std::sync::mpsc::channel::<()>();
    /// let wait = std::sync::Mutex::new(wait);
    /// sub.subscribe_with("jobs", move |_| { let _ = wait.lock().unwrap().recv(); });
    /// let worker = sub.run_in_thread().unwrap();
    /// broker.publish("jobs", "taken by the handler, which waits");
    /// while sub.stats().queued > 0 {
    ///     std::thread::yield_now();
    /// }
    /// broker.publish("jobs", "queued");
    /// broker.publish("jobs", "dropped: the queue is full");
    /// drop(gate); // the handler goes on; then the `Lagged` notice comes
    /// while worker.unhandled_notices() == 0 {
    ///     std::thread::yield_now();
    /// }
    /// assert_eq!(worker.unhandled_notices(), 1);
    /// ```
    pub fn unhandled_notices(&self) -> u64 {
        self.skipped.notices.load(Ordering::Relaxed)
    }

    /// Whether the worker's thread has ended.
    ///
    /// # Examples
    ///
    /// ```
    /// use fanout::Broker;
    ///
    /// let broker = Broker::<str>::new();
    /// let sub = broker.pubsub();
    /// sub.subscribe_with("jobs", |_| {});
    /// let worker = sub.run_in_thread().unwrap();
    /// assert!(!worker.is_finished()); // it waits for messages
    /// sub.close(); // the worker ends once it sees the queue end
    /// while !worker.is_finished() {
    ///     std::thread::yield_now();
    /// }
    /// assert!(worker.join().is_ok());
    /// ```
    pub fn is_finished(&self) -> bool {
        self.thread.as_ref().map_or(true, JoinHandle::is_finished)
    }

    /// Waits for the worker's thread to end.
    ///
    /// # Errors
    ///
    /// [`WorkerError::Panicked`] when a handler panicked and no panic handler was set (the
    /// worker stopped there), with the channel and the panic's message;
    /// [`WorkerError::PanicHandlerPanicked`] when the panic handler itself panicked.
    ///
    /// # Examples
    ///
    /// ```
    /// use fanout::{Broker, Message, WorkerError};
    ///
    /// let broker = Broker::<str>::new();
    /// let sub = broker.pubsub();
    /// sub.subscribe_with("jobs", |m: Message<str>| panic!("cannot do {}", m.data().unwrap()));
    /// let worker = sub.run_in_thread().unwrap();
    /// broker.publish("jobs", "x"); // no panic handler: the worker stops at this panic
    /// match worker.join() {
    ///     Err(WorkerError::Panicked(panic)) => {
    ///         assert_eq!(panic.channel, "jobs");
    ///         assert_eq!(panic.message, "cannot do x");
    ///     }
    ///     other => panic!("unexpected {other:?}"),
    /// }
    /// ```
    pub fn join(mut self) -> Result<(), WorkerError> {
        self.wait()
    }

    fn wait(&mut self) -> Result<(), WorkerError> {
        match self.thread.take() {
            None => Ok(()),
            Some(thread) if thread::current().id() == self.thread_id => {
                drop(thread); // from a handler: the thread cannot wait for itself
                Ok(())
            }
            // The loop catches every panic it runs into; one that still ends the thread is
            // reported as such, never as a clean exit.
            Some(thread) => thread.join().unwrap_or_else(|panic| {
                Err(WorkerError::Panicked(HandlerPanic {
                    channel: String::new(),
                    message: panic_message(&*panic),
                }))
            }),
        }
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        self.stop.stop();
        let _ = self.wait();
    }
}

impl fmt::Debug for Worker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Worker")
            .field("stopped", &self.stop.is_stopped())
            .field("finished", &self.is_finished())
            .finish()
    }
}

/// Sets up a [`Worker`]: its thread's name and what to do when a handler panics.
#[must_use = "a builder does nothing until `spawn`"]
pub struct WorkerBuilder<T: ?Sized> {
    /// Moved into the thread: the handle lives as long as the worker runs.
    owner: Arc<Owner<T>>,
    name: Option<String>,
    on_panic: Option<PanicHandler>,
    on_notice: Option<NoticeHandler<T>>,
    stop: Option<StopHandle>,
}

impl<T: ?Sized + Send + Sync + 'static> WorkerBuilder<T> {
    pub(crate) fn new(owner: Arc<Owner<T>>) -> Self {
        WorkerBuilder {
            owner,
            name: None,
            on_panic: None,
            on_notice: None,
            stop: None,
        }
    }

    /// Names the worker's thread (shown by debuggers and panic messages).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::sync::mpsc;
    /// use std::sync::Mutex;
    /// use fanout::{Broker, Message};
    ///
    /// let broker = Broker::<str>::new();
    /// let sub = broker.pubsub();
    /// let (tx, rx) = mpsc::channel();
    /// let tx = Mutex::new(tx);
    /// sub.psubscribe_with("log.*", move |_: Message<str>| {
    ///     tx.lock().unwrap().send(std::thread::current().name().map(String::from)).unwrap();
    /// });
    /// let _worker = sub.worker().name("log-writer").spawn().unwrap();
    /// broker.publish("log.error", "disk full");
    /// assert_eq!(rx.recv().unwrap().as_deref(), Some("log-writer"));
    /// ```
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }

    /// Keeps the worker going when a handler panics: `handler` is given the channel and the
    /// panic's message (redis-py's `exception_handler`). Without it, the worker stops at the
    /// first panic and [`Worker::join`] reports it. Rust's panic hook still prints the panic
    /// as usual (`std::panic::set_hook` changes that, for the whole program).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::sync::mpsc;
    /// use std::sync::Mutex;
    /// use fanout::{Broker, HandlerPanic, Message};
    ///
    /// let broker = Broker::<str>::new();
    /// let sub = broker.pubsub();
    /// let (tx, rx) = mpsc::channel();
    /// let (done, failed) = (Mutex::new(tx.clone()), Mutex::new(tx));
    /// sub.subscribe_with("jobs", move |m: Message<str>| {
    ///     let job = m.data().unwrap();
    ///     assert!(job != "bad", "cannot do {job}");
    ///     done.lock().unwrap().send(format!("did {job}")).unwrap();
    /// });
    /// let _worker = sub.worker().on_panic(move |p: HandlerPanic| {
    ///     failed.lock().unwrap().send(format!("{}: {}", p.channel, p.message)).unwrap();
    /// }).spawn().unwrap();
    /// broker.publish("jobs", "bad");
    /// broker.publish("jobs", "good");
    /// assert_eq!(rx.recv().unwrap(), "jobs: cannot do bad");
    /// assert_eq!(rx.recv().unwrap(), "did good"); // the worker went on
    /// ```
    pub fn on_panic(mut self, handler: impl Fn(HandlerPanic) + Send + Sync + 'static) -> Self {
        self.on_panic = Some(Arc::new(handler));
        self
    }

    /// Gives `handler` every notice the handle reads ([`Lagged`](Message::Lagged) when its
    /// overflow policy lost deliveries, [`HighWater`](Message::HighWater) when its queue
    /// reached its mark, [`Gap`](Message::Gap) when the broker's Redis bridge was down, and any
    /// notice kind added later: see [`Message::is_notice`]), on the worker's thread, in queue
    /// order with the deliveries. Without it the worker counts them in
    /// [`Worker::unhandled_notices`] and goes on. A panic in `handler` is treated as one in a
    /// message handler (see [`on_panic`](WorkerBuilder::on_panic)).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::sync::mpsc;
    /// use std::sync::Mutex;
    /// use fanout::{Broker, Message, Overflow};
    ///
    /// let broker = Broker::<str>::new();
    /// let sub = broker.pubsub_builder().capacity(1).overflow(Overflow::DropNewest).build();
    /// let (seen, notices) = mpsc::channel();
    /// let (gate, wait) = mpsc::channel::<()>();
    /// let wait = Mutex::new(wait);
    /// sub.subscribe_with("jobs", move |_| { let _ = wait.lock().unwrap().recv(); });
    /// let seen = Mutex::new(seen);
    /// let worker = sub
    ///     .worker()
    ///     .on_notice(move |notice: &Message<str>| seen.lock().unwrap().send(notice.kind()).unwrap())
    ///     .spawn()
    ///     .unwrap();
    /// broker.publish("jobs", "taken by the handler, which waits");
    /// while sub.stats().queued > 0 {
    ///     std::thread::yield_now();
    /// }
    /// broker.publish("jobs", "queued");
    /// broker.publish("jobs", "dropped: the queue is full");
    /// drop(gate);
    /// assert_eq!(notices.recv().unwrap(), "lagged");
    /// assert_eq!(worker.unhandled_notices(), 0);
    /// ```
    pub fn on_notice(mut self, handler: impl Fn(&Message<T>) + Send + Sync + 'static) -> Self {
        self.on_notice = Some(Arc::new(handler));
        self
    }

    /// The worker obeys `stop` (see [`StopHandle::new`]): a handler that holds a clone can stop
    /// its own worker. A handle already stopped makes a worker that ends at once.
    pub fn stop_handle(mut self, stop: StopHandle) -> Self {
        self.stop = Some(stop);
        self
    }

    /// Starts the worker.
    ///
    /// # Errors
    ///
    /// [`WorkerError::NoHandler`] when a subscription has no handler (as redis-py refuses),
    /// naming the first such subscription; [`WorkerError::Spawn`] when the thread could not
    /// start.
    ///
    /// # Examples
    ///
    /// ```
    /// use fanout::{Broker, WorkerError};
    ///
    /// let broker = Broker::<str>::new();
    /// let sub = broker.pubsub();
    /// sub.subscribe("plain"); // no handler
    /// match sub.worker().spawn() {
    ///     Err(WorkerError::NoHandler { pattern, name }) => assert!(!pattern && name == "plain"),
    ///     other => panic!("unexpected {other:?}"),
    /// }
    /// sub.unsubscribe("plain");
    /// sub.psubscribe_with("p*", |_| {});
    /// assert!(sub.worker().spawn().is_ok());
    /// ```
    #[must_use = "dropping a `Worker` stops its thread: keep it for as long as it should run, or `join` it"]
    pub fn spawn(self) -> Result<Worker, WorkerError> {
        let missing = self.owner.handle().names().without_handler();
        if let Some((kind, name)) = missing {
            return Err(WorkerError::NoHandler {
                pattern: kind == Kind::Pattern,
                name,
            });
        }
        let stop = self.stop.unwrap_or_default();
        let skipped = Arc::new(Skipped::default());
        let handlers = Handlers {
            on_panic: self.on_panic,
            on_notice: self.on_notice,
        };
        let owner = self.owner;
        let (stopped, counted) = (stop.clone(), Arc::clone(&skipped));
        let mut builder = thread::Builder::new();
        if let Some(name) = self.name {
            builder = builder.name(name);
        }
        let thread = builder
            .spawn(move || {
                let ended = run(owner.handle(), &stopped, &handlers, &counted);
                // The handle's subscriptions go now if nothing else holds it.
                drop(owner);
                ended
            })
            .map_err(WorkerError::Spawn)?;
        Ok(Worker {
            stop,
            skipped,
            thread_id: thread.thread().id(),
            thread: Some(thread),
        })
    }
}

impl<T: ?Sized> fmt::Debug for WorkerBuilder<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WorkerBuilder")
            .field("name", &self.name)
            .field("on_panic", &self.on_panic.is_some())
            .field("on_notice", &self.on_notice.is_some())
            .field("stop_handle", &self.stop.is_some())
            .finish()
    }
}

/// The worker's own handlers, beside those of the subscriptions.
struct Handlers<T: ?Sized> {
    on_panic: Option<PanicHandler>,
    on_notice: Option<NoticeHandler<T>>,
}

/// The worker's loop: wait for the queue or the stop signal, handle what arrives.
fn run<T: ?Sized>(
    handle: &Handle<T>,
    stop: &StopHandle,
    handlers: &Handlers<T>,
    skipped: &Skipped,
) -> Result<(), WorkerError> {
    stop.started();
    loop {
        if stop.is_stopped() {
            return Ok(());
        }
        // Blocks until the queue has something or `stop` unparks it: no polling, no sleep.
        let mut handler = None;
        let message = match handle.read_unless(Wait::Forever, || stop.is_stopped(), &mut handler) {
            Ok(message) => message,
            Err(Nothing::Ended) => return Ok(()),
            Err(Nothing::Empty) => continue,
        };
        if let Some(handler) = handler {
            // Kept for a panic report: a shared name, not a copy, so a delivery allocates
            // nothing.
            let channel = match &message {
                Message::Message { channel, .. }
                | Message::PMessage { channel, .. }
                | Message::Replay { channel, .. } => Some(Arc::clone(channel)),
                _ => None,
            };
            guarded(handlers, channel.as_deref(), || handler(message))?;
        } else if message.payload().is_some() {
            skipped.deliveries.fetch_add(1, Ordering::Relaxed);
        } else if message.is_notice() {
            match &handlers.on_notice {
                Some(on_notice) => guarded(handlers, None, || on_notice(&message))?,
                None => {
                    skipped.notices.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
        // Confirmations are not the worker's.
    }
}

/// Runs a handler; a panic goes to the panic handler, or ends the worker with it.
fn guarded<T: ?Sized>(
    handlers: &Handlers<T>,
    channel: Option<&str>,
    handler: impl FnOnce(),
) -> Result<(), WorkerError> {
    let Err(panic) = catch_unwind(AssertUnwindSafe(handler)) else {
        return Ok(());
    };
    let panic = HandlerPanic {
        channel: channel.unwrap_or_default().to_string(),
        message: panic_message(&*panic),
    };
    let Some(on_panic) = &handlers.on_panic else {
        return Err(WorkerError::Panicked(panic));
    };
    let channel = panic.channel.clone();
    match catch_unwind(AssertUnwindSafe(|| on_panic(panic))) {
        Ok(()) => Ok(()),
        Err(second) => Err(WorkerError::PanicHandlerPanicked(HandlerPanic {
            channel,
            message: panic_message(&*second),
        })),
    }
}

fn panic_message(panic: &(dyn Any + Send)) -> String {
    if let Some(s) = panic.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = panic.downcast_ref::<String>() {
        s.clone()
    } else {
        "a panic with a non-string payload".to_string()
    }
}
