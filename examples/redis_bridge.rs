//! Scaling out: the same `Broker` calls, with Redis doing the distribution, talking to the
//! redis-py programs in `examples/redis_py/` on the same channel.
//!
//! ```sh
//! redis-server --port 6379 --save '' --appendonly no &  # a server on loopback
//! python3 examples/redis_py/subscriber.py &               # redis-py's subscriber
//! cargo run --features redis --example redis_bridge       # this: publishes, then listens
//! python3 examples/redis_py/publisher.py 'hello from python'  # while this listens
//! ```
//!
//! The Python subscriber prints what this publishes (and stops at "bye"); this prints, as
//! redis-py dicts, its own messages coming back through Redis and whatever others publish on
//! `channel` while it listens. `REDIS_URL` picks the server (`redis://127.0.0.1:6379`),
//! `LISTEN_SECS` how long it listens after its last message (10).

use std::error::Error;
use std::time::Duration;

use fanout::{Bridge, Broker};

fn main() -> Result<(), Box<dyn Error>> {
    let url = std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into());
    let listen: u64 = match std::env::var("LISTEN_SECS") {
        Ok(secs) => secs
            .parse()
            .map_err(|e| format!("LISTEN_SECS={secs:?}: {e}"))?,
        Err(_) => 10,
    };

    let broker = Broker::<str>::new();
    let bridge = Bridge::connect(&broker, &url)
        .map_err(|e| format!("{e} (start one with: redis-server --port 6379 --save '')"))?;
    println!("bridged to {}", bridge.url());

    // p = r.pubsub(); p.subscribe('channel'): one SUBSCRIBE on Redis for all local handles.
    let p = broker.pubsub();
    p.subscribe("channel");

    // r.publish('channel', ...): through Redis, to `p` and to every redis-py subscriber.
    for text in ["message", "another message", "bye"] {
        let local = broker.publish("channel", text);
        println!("publish('channel', {text:?}) -> {local} local subscriber(s)");
    }

    // for message in p.listen(): print(message), until `listen` seconds pass in silence.
    while let Some(message) = p.get_message(Duration::from_secs(listen)) {
        println!("{message}"); // as redis-py prints its message dict
    }
    bridge.flush(Duration::from_secs(5));
    println!("{:?}", bridge.stats());
    Ok(())
}
