//! A small chat: each user is a thread that publishes to rooms and listens, and one
//! moderator thread waits on two handles (a room and a pattern for direct messages) plus a
//! shutdown channel at once, with `crossbeam_channel::Select`.
//!
//! Run: `cargo run --example chat`.

use std::thread;
use std::time::Duration;

use crossbeam_channel::{bounded, Select};
use fanout::{Broker, Message};

const USERS: [&str; 3] = ["ada", "linus", "grace"];
const LINES_EACH: usize = 3;

fn main() {
    let broker = Broker::<String>::new();

    // The moderator reads the lobby on one handle and all direct messages on another.
    let lobby = broker.pubsub();
    lobby.subscribe(["room.lobby"]);
    let direct = broker.pubsub();
    direct.psubscribe(["dm.*"]);
    let (shutdown, shutdown_rx) = bounded::<()>(0);

    let moderator = thread::spawn(move || {
        let (mut said, mut whispered) = (0, 0);
        let mut show = |message: Message<String>| match message {
            Message::Message { payload, .. } => {
                said += 1;
                println!("[lobby]    {payload}");
            }
            Message::PMessage {
                channel, payload, ..
            } => {
                whispered += 1;
                println!("[{channel}] {payload}");
            }
            _ => {} // confirmations
        };
        // The recipe: `Select::ready` says which handle has something, and the handle reads
        // until `None`, exactly as `get_message` always does (handlers, ignored confirmations,
        // names, and a `Lagged` notice once the queue is empty).
        let mut select = Select::new();
        let lobby_ready = select.recv(lobby.receiver());
        let direct_ready = select.recv(direct.receiver());
        select.recv(&shutdown_rx);
        loop {
            let ready = select.ready();
            for (index, handle) in [(lobby_ready, &lobby), (direct_ready, &direct)] {
                if ready == index {
                    while let Some(message) = handle.get_message(Duration::ZERO) {
                        show(message);
                    }
                }
            }
            if ready != lobby_ready && ready != direct_ready {
                // Shut down: read what is still queued.
                for handle in [&lobby, &direct] {
                    while let Some(message) = handle.get_message(Duration::ZERO) {
                        show(message);
                    }
                }
                break;
            }
        }
        (said, whispered)
    });

    // Every user subscribes before any of them speaks, so nobody misses a line.
    let handles: Vec<_> = USERS
        .iter()
        .map(|name| {
            let sub = broker.pubsub();
            sub.subscribe(["room.lobby", &format!("dm.{name}")]);
            sub
        })
        .collect();

    let users: Vec<_> = USERS
        .iter()
        .zip(handles)
        .enumerate()
        .map(|(i, (&name, sub))| {
            let broker = broker.clone();
            thread::spawn(move || {
                let next = USERS[(i + 1) % USERS.len()];
                for line in 0..LINES_EACH {
                    broker.publish("room.lobby", format!("{name}: hello #{line}"));
                }
                broker.publish(&format!("dm.{next}"), format!("{name} -> {next}: psst"));
                // Each user hears every lobby line (their own included) and one DM.
                let expected = USERS.len() * LINES_EACH + 1;
                let heard = sub
                    .listen()
                    .filter(|m| m.payload().is_some())
                    .take(expected)
                    .count();
                (name, heard)
            })
        })
        .collect();

    for user in users {
        let (name, heard) = user.join().expect("user thread panicked");
        println!("{name} heard {heard} lines");
    }
    // Every publish has returned; the moderator's queues hold everything it will get.
    drop(shutdown);
    let (said, whispered) = moderator.join().expect("moderator thread panicked");
    println!("moderator saw {said} lobby lines and {whispered} direct messages");
}
