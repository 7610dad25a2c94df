//! The Redis bridge against real `redis-server` processes and redis-py: no mocks. Each test
//! starts its own server on a free loopback port without persistence.

#[cfg(not(feature = "redis"))]
#[test]
fn bridge_tests_need_the_redis_feature() {
    use std::io::Write; // past the harness's capture, so the skip is seen
    let _ = writeln!(
        std::io::stderr(),
        "\nSKIPPED bridge tests: they run with `--features redis` (or --all-features)"
    );
}

#[cfg(feature = "redis")]
mod common;

#[cfg(feature = "redis")]
mod bridged {
    use std::collections::HashSet;
    #[cfg(feature = "async")]
    use std::future::Future;
    use std::process::Command;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;
    use std::time::{Duration, Instant};

    use fanout::{Bridge, BridgeError, Broker, Codec, Message, Overflow, PubSub, Route};

    use super::common::race_rounds;
    #[cfg(feature = "cluster")]
    use super::common::redis::Cluster;
    use super::common::redis::{Reply, Server};

    /// Long enough for a loaded CI machine; tests end as soon as what they wait for happens.
    const WAIT: Duration = Duration::from_secs(30);

    /// Publishes per pipeline, as the bridge sends them.
    const BATCH: u64 = 256;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    fn bridge<T: ?Sized + Codec + Send + Sync + 'static>(
        broker: &Broker<T>,
        server: &Server,
        route: Route,
    ) -> Bridge<T> {
        Bridge::builder(broker, &server.url())
            .route(route)
            .reconnect_delay(ms(10), ms(200))
            .connect()
            .expect("the bridge connects")
    }

    #[cfg(feature = "cluster")]
    fn on_cluster(broker: &Broker<str>, cluster: &Cluster) -> Bridge<str> {
        Bridge::builder(broker, &cluster.url())
            .cluster()
            .reconnect_delay(ms(10), ms(200))
            .connect()
            .expect("the bridge connects to the cluster")
    }

    fn quiet(broker: &Broker<str>) -> PubSub<str> {
        broker
            .pubsub_builder()
            .ignore_subscribe_messages(true)
            .build()
    }

    /// What `sub` reads until `n` deliveries came or `WAIT` passed: payloads as text, and
    /// `<gap>` for each `Gap` notice.
    fn read(sub: &PubSub<str>, n: usize) -> Vec<String> {
        let deadline = Instant::now() + WAIT;
        let mut got = Vec::new();
        let mut deliveries = 0;
        while deliveries < n {
            let left = deadline.saturating_duration_since(Instant::now());
            match sub.get_message(left) {
                Some(Message::Gap { .. }) => got.push("<gap>".to_string()),
                Some(message) => {
                    if let Some(payload) = message.payload() {
                        got.push(payload.to_string());
                        deliveries += 1;
                    }
                }
                None => break,
            }
        }
        got
    }

    /// Everything `sub` reads until it has been quiet for `quiet` (gaps as `<gap>`).
    #[cfg(feature = "cluster")]
    fn read_for(sub: &PubSub<str>, quiet: Duration) -> Vec<String> {
        std::iter::from_fn(|| sub.get_message(quiet))
            .map(|m| match m.payload() {
                Some(payload) => payload.to_string(),
                None => format!("<{}>", m.kind()),
            })
            .collect()
    }

    /// Reads deliveries into `got` until `last` arrives, which is not kept.
    fn read_until(sub: &PubSub<str>, last: &str, got: &mut Vec<String>) {
        while got.last().map(String::as_str) != Some(last) {
            let next = read(sub, 1);
            assert!(!next.is_empty(), "{last:?} never arrived");
            got.extend(next);
        }
        got.pop();
    }

    /// Polls `check` until it holds or `WAIT` passes.
    fn eventually(what: &str, mut check: impl FnMut() -> bool) {
        let deadline = Instant::now() + WAIT;
        while !check() {
            assert!(Instant::now() < deadline, "timed out waiting for {what}");
            std::thread::sleep(ms(5));
        }
    }

    fn numsub(server: &Server, channel: &str) -> i64 {
        match server.connect().call(&["PUBSUB", "NUMSUB", channel]) {
            Reply::Array(items) => items[1].int(),
            other => panic!("unexpected {other:?}"),
        }
    }

    fn numpat(server: &Server) -> i64 {
        server.connect().call(&["PUBSUB", "NUMPAT"]).int()
    }

    /// Numbers of one publisher's messages (`prefix` + number), in the order received.
    fn numbers(got: &[String], prefix: &str) -> Vec<u64> {
        got.iter()
            .filter_map(|m| m.strip_prefix(prefix)?.parse().ok())
            .collect()
    }

    #[test]
    fn bridges_can_move_between_threads() {
        fn send_sync<T: Send + Sync>() {}
        send_sync::<Bridge<str>>();
        send_sync::<Bridge<[u8]>>();
        send_sync::<fanout::BridgeError>();
    }

    /// A bridged broker's `Publisher` knows its local handles only, as the docs say: a
    /// subscriber in another attached process gets its publishes while `is_matched()` is
    /// false; a local subscription makes it true, and its publishes go through Redis to both.
    #[test]
    fn a_publishers_matching_status_is_local_on_a_bridged_broker() {
        let Some(server) = Server::start() else {
            return;
        };
        let (here, there) = (Broker::<str>::new(), Broker::<str>::new());
        let (bridge_here, bridge_there) = (
            bridge(&here, &server, Route::ViaRedis),
            bridge(&there, &server, Route::ViaRedis),
        );
        let remote = quiet(&there);
        remote.psubscribe("feed.*");
        assert!(bridge_there.flush(WAIT));
        let feed = here.publisher("feed.eu");
        let mut changes = feed.matching_changes();
        assert!(!feed.is_matched(), "a remote subscriber is not counted");
        assert_eq!(feed.publish("to the remote one"), 0); // local deliveries, as documented
        assert!(bridge_here.flush(WAIT));
        assert_eq!(read(&remote, 1), ["to the remote one"]);
        let local = quiet(&here);
        local.subscribe("feed.eu");
        assert!(feed.is_matched());
        assert_eq!(changes.next_timeout(WAIT), Some(fanout::Matching::Matched));
        assert_eq!(feed.publish("to both"), 1);
        assert_eq!(read(&local, 1), ["to both"]);
        assert_eq!(read(&remote, 1), ["to both"]);
        drop(local);
        assert_eq!(
            changes.next_timeout(WAIT),
            Some(fanout::Matching::Unmatched)
        );
    }

    /// A `Bridge` holds a broker: its handles stay open while the bridge lives, with Redis
    /// still publishing to them, and end after what they queued once it is dropped too.
    #[test]
    fn a_bridge_keeps_handles_open_after_every_broker_is_dropped_and_its_drop_ends_them() {
        let Some(server) = Server::start() else {
            return;
        };
        let broker = Broker::<str>::new();
        let bridge = bridge(&broker, &server, Route::ViaRedis);
        let sub = quiet(&broker);
        sub.subscribe("x");
        assert!(bridge.flush(WAIT));
        drop(broker);
        assert!(!sub.is_closed());
        assert_eq!(
            server.connect().call(&["PUBLISH", "x", "from redis"]).int(),
            1
        );
        assert_eq!(read(&sub, 1), ["from redis"]);
        server.connect().call(&["PUBLISH", "x", "queued"]);
        eventually("the second message to arrive", || sub.stats().queued == 1);
        drop(bridge);
        let rest: Vec<String> = sub
            .listen_forever()
            .filter_map(|m| m.data().map(str::to_string))
            .collect();
        assert_eq!(rest, ["queued"]);
        assert!(sub.is_closed());
        assert_eq!(
            sub.recv_timeout(ms(10)),
            Err(fanout::RecvTimeoutError::Closed(
                fanout::Disconnected::BrokerDropped
            ))
        );
    }

    /// A worker reads the bridge's `Gap` notice through `on_notice`, in order with the
    /// deliveries around it, and counts no notice unhandled.
    #[test]
    fn a_worker_gets_the_gap_of_a_server_restart_through_on_notice() {
        let Some(mut server) = Server::start() else {
            return;
        };
        let broker = Broker::<str>::new();
        let bridge = bridge(&broker, &server, Route::ViaRedis);
        let sub = broker.pubsub();
        let (seen, got) = std::sync::mpsc::channel::<String>();
        let deliveries = std::sync::Mutex::new(seen.clone());
        sub.subscribe_with("jobs", move |m| {
            let _ = deliveries
                .lock()
                .unwrap()
                .send(m.data().unwrap().to_string());
        });
        let notices = std::sync::Mutex::new(seen);
        let worker = sub
            .worker()
            .on_notice(move |m| {
                let _ = notices.lock().unwrap().send(format!("<{}>", m.kind()));
            })
            .spawn()
            .expect("the worker starts");
        assert!(bridge.flush(WAIT));
        broker.publish("jobs", "before");
        assert_eq!(got.recv_timeout(WAIT).as_deref(), Ok("before"));
        server.kill();
        std::thread::sleep(ms(100));
        server.restart();
        eventually("the bridge to reconnect", || bridge.is_connected());
        assert!(bridge.flush(WAIT));
        broker.publish("jobs", "after");
        let mut rest = Vec::new();
        while rest.last().map(String::as_str) != Some("after") {
            rest.push(got.recv_timeout(WAIT).expect("the worker goes on"));
        }
        assert_eq!(rest, ["<gap>", "after"]);
        assert_eq!(worker.unhandled_notices(), 0);
        worker.stop();
        assert!(worker.join().is_ok());
    }

    #[test]
    fn two_bridges_deliver_everything_once_in_one_global_order() {
        let Some(server) = Server::start() else {
            return;
        };
        let (a, b) = (Broker::<str>::new(), Broker::<str>::new());
        let (bridge_a, bridge_b) = (
            bridge(&a, &server, Route::ViaRedis),
            bridge(&b, &server, Route::ViaRedis),
        );
        let (on_a, pattern_on_a, on_b) = (quiet(&a), quiet(&a), quiet(&b));
        on_a.subscribe(["room"]);
        pattern_on_a.psubscribe(["ro*"]);
        on_b.subscribe(["room"]);
        assert!(bridge_a.flush(WAIT) && bridge_b.flush(WAIT));
        // One Redis subscription per bridge and name, whatever the local handles.
        assert_eq!((numsub(&server, "room"), numpat(&server)), (2, 1));

        const N: u64 = 2_000;
        std::thread::scope(|s| {
            for (broker, prefix, local) in [(&a, "a", 2), (&b, "b", 1)] {
                s.spawn(move || {
                    for i in 0..N {
                        // Local deliveries it will make when it comes back.
                        assert_eq!(broker.publish("room", format!("{prefix}{i}")), local);
                    }
                });
            }
        });
        let seen: Vec<Vec<String>> = [&on_a, &pattern_on_a, &on_b]
            .iter()
            .map(|sub| read(sub, 2 * N as usize))
            .collect();
        for got in &seen {
            assert_eq!(got.len(), 2 * N as usize);
            assert_eq!(
                got.iter().collect::<HashSet<_>>().len(),
                got.len(),
                "a duplicate"
            );
            for prefix in ["a", "b"] {
                assert_eq!(numbers(got, prefix), (0..N).collect::<Vec<_>>());
            }
        }
        // Redis ordered the two publishers once, for every process.
        assert_eq!(seen[0], seen[1]);
        assert_eq!(seen[0], seen[2]);
        for sub in [&on_a, &pattern_on_a, &on_b] {
            assert_eq!(sub.get_message(ms(100)), None, "nothing more");
        }
        assert!(bridge_a.flush(WAIT) && bridge_b.flush(WAIT));
        let (stats_a, stats_b) = (bridge_a.stats(), bridge_b.stats());
        assert_eq!((stats_a.forwarded, stats_b.forwarded), (N, N));
        // A receives each publish twice from Redis (the channel, the pattern), B once.
        assert_eq!((stats_a.received, stats_b.received), (4 * N, 2 * N));
        assert!(stats_a.connected && stats_a.lost == 0 && stats_a.dropped == 0);
        assert_eq!(stats_a.subscriptions, 2);
    }

    #[test]
    fn local_first_delivers_at_once_and_skips_its_own_echo() {
        let Some(server) = Server::start() else {
            return;
        };
        let (a, b) = (Broker::<str>::new(), Broker::<str>::new());
        let bridge_a = bridge(&a, &server, Route::LocalFirst);
        let bridge_b = bridge(&b, &server, Route::ViaRedis);
        let (on_a, pattern_on_a, on_b) = (quiet(&a), quiet(&a), quiet(&b));
        on_a.subscribe(["room"]);
        pattern_on_a.psubscribe(["r*"]);
        on_b.subscribe(["room"]);
        assert!(bridge_a.flush(WAIT) && bridge_b.flush(WAIT));

        // Delivered in `publish` itself, before any round trip.
        assert_eq!(a.publish("room", "first"), 2);
        for sub in [&on_a, &pattern_on_a] {
            let message = sub.get_message(Duration::ZERO).expect("delivered at once");
            assert_eq!(message.payload().map(|p| &**p), Some("first"));
        }
        const N: u64 = 500;
        std::thread::scope(|s| {
            s.spawn(|| (0..N).for_each(|i| assert_eq!(a.publish("room", format!("a{i}")), 2)));
            s.spawn(|| (0..N).for_each(|i| assert_eq!(b.publish("room", format!("b{i}")), 1)));
        });
        let expected_at_b = 1 + 2 * N as usize;
        let at_b = read(&on_b, expected_at_b);
        assert_eq!(at_b.len(), expected_at_b);
        for sub in [&on_a, &pattern_on_a] {
            let got = read(sub, 2 * N as usize);
            assert_eq!(got.len(), 2 * N as usize);
            for prefix in ["a", "b"] {
                assert_eq!(numbers(&got, prefix), (0..N).collect::<Vec<_>>());
            }
        }
        assert!(bridge_a.flush(WAIT) && bridge_b.flush(WAIT));
        // Every copy of A's own publishes came back once per subscription and was skipped.
        eventually("A's echoes", || {
            bridge_a.stats().echoes_skipped == 2 * (N + 1)
        });
        for sub in [&on_a, &pattern_on_a, &on_b] {
            assert_eq!(sub.get_message(ms(200)), None, "no duplicate");
        }
        let stats = bridge_a.stats();
        assert_eq!((stats.forwarded, stats.received), (N + 1, 2 * N));
    }

    #[test]
    fn a_publish_made_after_subscribe_returned_comes_back() {
        let Some(server) = Server::start() else {
            return;
        };
        let broker = Broker::<str>::new();
        let bridge = bridge(&broker, &server, Route::ViaRedis);
        for i in 0..50 {
            let sub = quiet(&broker);
            let channel = format!("fresh-{i}");
            sub.subscribe([channel.as_str()]);
            assert_eq!(broker.publish(&channel, "hello"), 1);
            assert_eq!(read(&sub, 1), ["hello"], "channel {channel}");
        }
        assert_eq!(bridge.stats().received, 50);
    }

    #[test]
    fn subscriptions_are_mirrored_as_the_union_of_local_ones() {
        let Some(server) = Server::start() else {
            return;
        };
        let broker = Broker::<str>::new();
        let early = broker.pubsub();
        early.subscribe(["early"]);
        let bridge = bridge(&broker, &server, Route::ViaRedis);
        assert!(bridge.flush(WAIT));
        let channels = server.connect().call(&["PUBSUB", "CHANNELS"]).strings();
        assert_eq!(channels, ["early"], "a subscription made before the bridge");

        let (h1, h2, h3) = (broker.pubsub(), broker.pubsub(), broker.pubsub());
        h1.subscribe(["news"]);
        h2.subscribe(["news"]);
        h3.psubscribe(["n*"]);
        assert!(bridge.flush(WAIT));
        assert_eq!((numsub(&server, "news"), numpat(&server)), (1, 1));
        assert_eq!(bridge.stats().subscriptions, 3);
        h1.unsubscribe(["news"]);
        assert!(bridge.flush(WAIT));
        assert_eq!(numsub(&server, "news"), 1, "h2 still needs it");
        drop(h2);
        h3.punsubscribe(["n*"]);
        early.unsubscribe_all();
        assert!(bridge.flush(WAIT));
        assert_eq!((numsub(&server, "news"), numpat(&server)), (0, 0));
        assert_eq!(bridge.stats().subscriptions, 0);

        // Dropped, the bridge leaves Redis and the broker is local again.
        h1.subscribe(["after"]);
        drop(bridge);
        assert_eq!(broker.publish("after", "local"), 1);
        eventually("the bridge's connection to close", || {
            server
                .connect()
                .call(&["PUBSUB", "CHANNELS"])
                .strings()
                .is_empty()
        });
    }

    #[test]
    fn bytes_cross_unchanged_and_text_that_is_not_utf8_is_counted() {
        let Some(server) = Server::start() else {
            return;
        };
        let bytes = Broker::<[u8]>::new();
        let bytes_bridge = bridge(&bytes, &server, Route::ViaRedis);
        let sub = bytes
            .pubsub_builder()
            .ignore_subscribe_messages(true)
            .build();
        sub.subscribe(["bin"]);
        assert!(bytes_bridge.flush(WAIT));
        let raw: &[u8] = &[0, 255, 13, 10, 1];
        assert_eq!(
            server.connect().call(&[&b"PUBLISH"[..], b"bin", raw]).int(),
            1
        );
        let got = sub.get_message(WAIT).expect("the raw bytes");
        assert_eq!(got.payload().map(|p| &**p), Some(raw));

        // And back: a plain RESP client subscribed on Redis gets the same bytes.
        let mut listener = server.connect();
        listener.call(&["SUBSCRIBE", "out"]);
        bytes.publish("out", raw);
        let arrival = listener.read();
        assert_eq!(
            arrival,
            Reply::Array(vec![
                Reply::Bulk(Some(b"message".to_vec())),
                Reply::Bulk(Some(b"out".to_vec())),
                Reply::Bulk(Some(raw.to_vec())),
            ])
        );

        let text = Broker::<str>::new();
        let text_bridge = bridge(&text, &server, Route::ViaRedis);
        let reader = quiet(&text);
        reader.subscribe(["text"]);
        assert!(text_bridge.flush(WAIT));
        let mut publisher = server.connect();
        publisher.call(&[&b"PUBLISH"[..], b"text", &[0xff, 0xfe]]);
        publisher.call(&["PUBLISH", "text", "fine"]);
        assert_eq!(read(&reader, 1), ["fine"]);
        assert_eq!(text_bridge.stats().undecodable, 1);
    }

    /// Sends `payload` through Redis with a bridged `Broker<T>` and returns what a plain RESP
    /// client subscribed on Redis got, and what the broker's own handle read back.
    fn round_trip<T, P>(server: &Server, channel: &str, payload: P) -> (Vec<u8>, Arc<T>)
    where
        T: ?Sized + Codec + Send + Sync + 'static,
        P: fanout::IntoPayload<T>,
    {
        let broker = Broker::<T>::new();
        let bridge = bridge(&broker, server, Route::ViaRedis);
        let sub = broker
            .pubsub_builder()
            .ignore_subscribe_messages(true)
            .build();
        sub.subscribe(channel);
        assert!(bridge.flush(WAIT));
        let mut listener = server.connect();
        listener.call(&["SUBSCRIBE", channel]);
        broker.publish(channel, payload);
        let Reply::Array(parts) = listener.read() else {
            panic!("a message from Redis")
        };
        let Some(Reply::Bulk(Some(sent))) = parts.into_iter().nth(2) else {
            panic!("the message's data")
        };
        let back = sub
            .get_message(WAIT)
            .expect("the broker's own publish, back from Redis");
        (sent, Arc::clone(back.payload().unwrap()))
    }

    #[test]
    fn string_vec_and_bytes_payloads_cross_as_redis_py_sees_them() {
        let Some(server) = Server::start() else {
            return;
        };
        let (sent, back) = round_trip::<String, _>(&server, "s", "caf\u{e9}");
        assert_eq!(
            (sent.as_slice(), back.as_str()),
            ("caf\u{e9}".as_bytes(), "caf\u{e9}")
        );
        static RAW: [u8; 4] = [0, 255, 13, 10];
        let raw = RAW;
        let (sent, back) = round_trip::<Vec<u8>, _>(&server, "v", &raw[..]);
        assert_eq!((sent.as_slice(), back.as_slice()), (&raw[..], &raw[..]));
        let (sent, back) =
            round_trip::<bytes::Bytes, _>(&server, "b", bytes::Bytes::from_static(&RAW));
        assert_eq!((sent.as_slice(), &back[..]), (&raw[..], &raw[..]));
    }

    #[cfg(feature = "json")]
    #[test]
    fn a_serde_type_crosses_as_json_and_other_json_is_counted() {
        use fanout::bridge::Json;

        #[derive(serde::Serialize, serde::Deserialize, Debug, PartialEq)]
        struct Price {
            symbol: String,
            cents: u64,
        }

        let Some(server) = Server::start() else {
            return;
        };
        let price = Price {
            symbol: "EUR".into(),
            cents: 108,
        };
        let (sent, back) = round_trip::<Json<Price>, _>(&server, "prices", Json(price));
        assert_eq!(sent, br#"{"symbol":"EUR","cents":108}"#);
        assert_eq!(back.0.symbol, "EUR");
        assert_eq!(back.0.cents, 108);

        // JSON of another shape from a redis-py client is skipped and counted.
        let broker = Broker::<Json<Price>>::new();
        let bridge = bridge(&broker, &server, Route::ViaRedis);
        let sub = broker
            .pubsub_builder()
            .ignore_subscribe_messages(true)
            .build();
        sub.subscribe("prices");
        assert!(bridge.flush(WAIT));
        let mut publisher = server.connect();
        publisher.call(&["PUBLISH", "prices", r#"{"symbol":"USD"}"#]);
        publisher.call(&["PUBLISH", "prices", r#"{"symbol":"USD","cents":93}"#]);
        let got = sub.get_message(WAIT).expect("the well-formed price");
        assert_eq!(got.payload().unwrap().0.cents, 93);
        assert_eq!(bridge.stats().undecodable, 1);
    }

    /// A certificate authority and a server certificate for 127.0.0.1 that it signed, made
    /// for this test and written to a directory of its own, with a redis-server that speaks
    /// TLS on a second port: `(server, tls port, the CA's PEM, directory)`.
    #[cfg(feature = "tls")]
    fn tls_server() -> Option<(Server, u16, String, std::path::PathBuf)> {
        use rcgen::{BasicConstraints, CertificateParams, IsCa, KeyPair};

        let ca_key = KeyPair::generate().unwrap();
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let ca = ca_params.self_signed(&ca_key).unwrap();
        let server_key = KeyPair::generate().unwrap();
        let server_cert = CertificateParams::new(vec!["127.0.0.1".to_string()])
            .unwrap()
            .signed_by(&server_key, &ca, &ca_key)
            .unwrap();
        let dir = std::env::temp_dir().join(format!("fanout-tls-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = |name: &str, pem: String| {
            let path = dir.join(name);
            std::fs::write(&path, pem).unwrap();
            path.to_str().unwrap().to_string()
        };
        let (cert, key, ca_file) = (
            file("server.crt", server_cert.pem()),
            file("server.key", server_key.serialize_pem()),
            file("ca.crt", ca.pem()),
        );
        let tls_port = std::sync::Mutex::new(0);
        let server = Server::start_with(|port| {
            *tls_port.lock().unwrap() = port;
            [
                "--tls-port",
                &port.to_string(),
                "--tls-cert-file",
                &cert,
                "--tls-key-file",
                &key,
                "--tls-ca-cert-file",
                &ca_file,
                "--tls-auth-clients",
                "no",
            ]
            .map(String::from)
            .to_vec()
        })?;
        let port = *tls_port.lock().unwrap();
        Some((server, port, ca.pem(), dir))
    }

    #[cfg(feature = "tls")]
    #[test]
    fn a_rediss_url_bridges_through_tls_and_checks_the_certificate() {
        let Some((server, tls_port, ca, dir)) = tls_server() else {
            return;
        };
        let url = format!("rediss://127.0.0.1:{tls_port}");
        let connect = |broker: &Broker<str>| {
            Bridge::builder(broker, &url)
                .tls_root_certificate(ca.as_bytes())
                .reconnect_delay(ms(10), ms(200))
                .connect()
        };
        let (a, b) = (Broker::<str>::new(), Broker::<str>::new());
        let (bridge_a, bridge_b) = (connect(&a).unwrap(), connect(&b).unwrap());
        let sub = quiet(&b);
        sub.subscribe("secure");
        assert!(bridge_b.flush(WAIT));
        a.publish("secure", "over TLS");
        assert!(bridge_a.flush(WAIT));
        assert_eq!(read(&sub, 1), ["over TLS"]);
        assert!(bridge_a.url().starts_with("rediss://"));

        // The plain port sees the same server: Redis counted the TLS subscription.
        let numsub = server.connect().call(&["PUBSUB", "NUMSUB", "secure"]);
        assert_eq!(
            numsub,
            Reply::Array(vec![Reply::Bulk(Some(b"secure".to_vec())), Reply::Int(1),])
        );

        // Without the CA, the server's certificate is not trusted: no connection.
        let untrusted = Bridge::builder(&Broker::<str>::new(), &url)
            .connect_timeout(ms(2000))
            .connect();
        let err = untrusted.expect_err("an untrusted certificate is refused");
        assert!(matches!(err, BridgeError::Connect { .. }), "{err:?}");
        assert!(err.to_string().contains("certificate"), "{err}");
        // Nor over plain TCP on the TLS port.
        let plain = Bridge::builder(
            &Broker::<str>::new(),
            &format!("redis://127.0.0.1:{tls_port}"),
        )
        .connect_timeout(ms(2000))
        .connect();
        assert!(plain.is_err(), "{plain:?}");
        drop((bridge_a, bridge_b));
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn what_redis_refuses_is_counted_and_the_rest_goes_on() {
        let Some(server) = Server::start() else {
            return;
        };
        let acl = [
            "ACL",
            "SETUSER",
            "limited",
            "on",
            ">secret",
            "~*",
            "&allowed*",
            "+@all",
        ];
        assert_eq!(server.connect().call(&acl), Reply::Status("OK".into()));
        let broker = Broker::<str>::new();
        let url = format!("redis://limited:secret@127.0.0.1:{}", server.port);
        let bridge = Bridge::connect(&broker, &url).expect("the user may connect");
        let sub = quiet(&broker);
        sub.subscribe(["allowed-1", "forbidden"]);
        assert!(bridge.flush(WAIT));
        // redis-rs's Pub/Sub sink reports a refused SUBSCRIBE as done: Redis just has none.
        assert_eq!(
            (numsub(&server, "allowed-1"), numsub(&server, "forbidden")),
            (1, 0)
        );
        broker.publish("forbidden", "no");
        broker.publish("allowed-1", "yes");
        assert!(bridge.flush(WAIT));
        assert_eq!(read(&sub, 1), ["yes"]);
        let stats = bridge.stats();
        assert_eq!((stats.refused, stats.forwarded, stats.lost), (1, 1, 0));
        assert!(stats.connected && stats.reconnects == 0);
        assert!(
            format!("{bridge:?}").contains("limited:***@"),
            "the password is hidden"
        );
    }

    #[test]
    fn bad_urls_unreachable_servers_and_second_bridges_are_errors() {
        let Some(server) = Server::start() else {
            return;
        };
        let broker = Broker::<str>::new();
        let error = Bridge::connect(&broker, "http://127.0.0.1:1").unwrap_err();
        assert!(matches!(error, BridgeError::Url { .. }), "{error}");

        let free = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = free.local_addr().unwrap().port();
        drop(free);
        let error = Bridge::connect(&broker, &format!("redis://127.0.0.1:{port}")).unwrap_err();
        assert!(matches!(error, BridgeError::Connect { .. }), "{error}");
        assert!(std::error::Error::source(&error).is_some());

        let first = Bridge::connect(&broker, &server.url()).unwrap();
        let error = Bridge::connect(&broker, &server.url()).unwrap_err();
        assert!(matches!(error, BridgeError::AlreadyBridged), "{error}");
        drop(first);
        let again = Bridge::connect(&broker, &server.url()).expect("free again");
        drop(again);
        broker.close();
        let error = Bridge::connect(&broker, &server.url()).unwrap_err();
        assert!(matches!(error, BridgeError::BrokerClosed), "{error}");
    }

    #[test]
    fn a_server_killed_and_restarted_mid_stream_gives_a_gap_and_delivery_resumes() {
        let Some(mut server) = Server::start() else {
            return;
        };
        let (a, b) = (Broker::<str>::new(), Broker::<str>::new());
        let (bridge_a, bridge_b) = (
            bridge(&a, &server, Route::ViaRedis),
            bridge(&b, &server, Route::ViaRedis),
        );
        let sub = quiet(&b);
        sub.subscribe(["stream"]);
        assert!(bridge_b.flush(WAIT));

        let stop = Arc::new(AtomicBool::new(false));
        let publisher = {
            let (a, stop) = (a.clone(), Arc::clone(&stop));
            std::thread::spawn(move || {
                let mut sent = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    a.publish("stream", sent.to_string());
                    sent += 1;
                    std::thread::sleep(ms(1));
                }
                sent
            })
        };
        let mut got = read(&sub, 200);
        assert_eq!(got.len(), 200, "delivery before the crash");
        server.kill();
        std::thread::sleep(ms(300));
        server.restart();
        eventually("both bridges to reconnect", || {
            bridge_a.is_connected() && bridge_b.is_connected()
        });
        assert!(bridge_b.flush(WAIT));
        // Read up to the gap notice, then 200 deliveries after it.
        loop {
            let next = read(&sub, 1);
            assert!(!next.is_empty(), "the stream went on");
            let gap = next.contains(&"<gap>".to_string());
            got.extend(next);
            if gap {
                break;
            }
        }
        let after = read(&sub, 200);
        assert_eq!(
            after.iter().filter(|m| *m != "<gap>").count(),
            200,
            "delivery resumed"
        );
        got.extend(after);
        stop.store(true, Ordering::Relaxed);
        let sent = publisher.join().expect("the publisher never panicked");
        assert!(bridge_a.flush(WAIT));
        a.publish("stream", "end");
        read_until(&sub, "end", &mut got);

        let gap_at = got.iter().position(|m| m == "<gap>").unwrap();
        let numbers: Vec<u64> = got.iter().filter_map(|m| m.parse().ok()).collect();
        assert!(
            numbers.windows(2).all(|w| w[0] < w[1]),
            "in order, none twice"
        );
        assert!(gap_at >= 200 && gap_at + 200 < got.len());
        assert!(bridge_a.flush(WAIT));
        let (stats_a, stats_b) = (bridge_a.stats(), bridge_b.stats());
        assert!(stats_a.reconnects >= 1 && stats_b.reconnects >= 1);
        assert!(stats_b.gaps >= 1);
        // Every publish is accounted for: forwarded, or lost with the dead connection.
        assert_eq!(stats_a.forwarded + stats_a.lost + stats_a.dropped, sent + 1);
        eprintln!(
            "sent {sent}; received {}; publisher: {stats_a:?}; subscriber: {stats_b:?}",
            numbers.len()
        );
    }

    /// `reconnects` counts outages, not connections: a server restart costs the bridge both
    /// of its connections and counts once; a connection lost alone counts once too. The Gap
    /// notice is readable within the back-off's cap of the server answering again (see
    /// `BridgeStats::reconnects`).
    #[test]
    fn one_outage_counts_one_reconnect_and_the_gap_follows_the_back_off() {
        let Some(mut server) = Server::start() else {
            return;
        };
        let broker = Broker::<str>::new();
        let max_delay = ms(200);
        let bridge = Bridge::builder(&broker, &server.url())
            .reconnect_delay(ms(10), max_delay)
            .connect()
            .expect("the bridge connects");
        let sub = quiet(&broker);
        sub.subscribe(["outage"]);
        assert!(bridge.flush(WAIT));
        broker.publish("outage", "before");
        assert_eq!(read(&sub, 1), ["before"]);

        // A restart: both connections are lost and made again.
        server.kill();
        // Long enough for the back-off to reach its cap.
        std::thread::sleep(ms(600));
        // Waits in the backlog; once the subscription side is back, the publishing side
        // finds its connection dead and makes another.
        broker.publish("outage", "during");
        server.restart();
        let back = Instant::now();
        let gap = sub.get_message(WAIT);
        let gap_after = back.elapsed();
        assert!(matches!(gap, Some(Message::Gap { .. })), "{gap:?}");
        // What the notice reports is counted before it is readable.
        let stats = bridge.stats();
        assert_eq!((stats.reconnects, stats.gaps), (1, 1), "{stats:?}");
        assert_eq!(read(&sub, 1), ["during"]);
        eventually("both connections back", || bridge.is_connected());
        assert!(bridge.flush(WAIT));
        let stats = bridge.stats();
        eprintln!("the Gap notice came {gap_after:?} after the server answered; {stats:?}");
        assert_eq!((stats.reconnects, stats.gaps), (1, 1), "{stats:?}");
        assert!(stats.connected);
        // The next attempt comes at most `max_delay` after the server is back; then a
        // connection, a SUBSCRIBE and a wake-up (slack for a loaded machine).
        assert!(gap_after < max_delay + ms(800), "{gap_after:?}");

        // The publishing connection alone: one reconnect; a publish that went out on the dead
        // connection is lost, with a gap where it would have been, one sent on a new
        // connection arrives.
        server
            .connect()
            .call(&["CLIENT", "KILL", "TYPE", "normal", "SKIPME", "yes"]);
        let lost_before = bridge.stats().lost;
        broker.publish("outage", "lost with the connection, or sent on a new one");
        broker.publish("outage", "after the publishing connection");
        eventually("a new publishing connection", || {
            bridge.stats().reconnects == 2
        });
        assert!(bridge.flush(WAIT));
        let mut got = Vec::new();
        broker.publish("outage", "end");
        read_until(&sub, "end", &mut got);
        let lost = bridge.stats().lost - lost_before;
        let expected = match lost {
            0 => [
                "lost with the connection, or sent on a new one",
                "after the publishing connection",
            ],
            _ => ["<gap>", "after the publishing connection"],
        };
        assert_eq!(got, expected, "lost {lost}");
        let lost_gap = u64::from(lost > 0);

        // The subscription connection alone: a gap, one reconnect.
        server.connect().call(&["CLIENT", "KILL", "TYPE", "pubsub"]);
        let gap = sub.get_message(WAIT);
        assert!(matches!(gap, Some(Message::Gap { .. })), "{gap:?}");
        let stats = bridge.stats();
        assert_eq!(stats.gaps, 2 + lost_gap, "{stats:?}");
        assert!(bridge.flush(WAIT));
        broker.publish("outage", "after the subscription connection");
        assert_eq!(read(&sub, 1), ["after the subscription connection"]);
        assert!(bridge.flush(WAIT));
        let stats = bridge.stats();
        assert_eq!(
            (stats.reconnects, stats.gaps),
            (3, 2 + lost_gap),
            "{stats:?}"
        );
    }

    #[test]
    fn a_full_backlog_follows_the_overflow_policy_while_redis_is_down() {
        let Some(mut server) = Server::start() else {
            return;
        };
        let broker = Broker::<str>::builder()
            .capacity(4)
            .overflow(Overflow::Block)
            .build();
        let bridge = bridge(&broker, &server, Route::ViaRedis);
        server.kill();
        eventually("the loss to be seen", || !bridge.is_connected());
        // Nothing goes out while Redis is down: the publishing thread takes the first publish
        // and holds it; then the backlog takes exactly 4.
        broker.publish("q", "0");
        eventually("the first to be taken", || bridge.stats().backlog == 0);
        let mut accepted = 1;
        let error = loop {
            match broker.try_publish("q", accepted.to_string()) {
                Ok(_) => accepted += 1,
                Err(error) => break error,
            }
            assert!(accepted < 10_000, "the backlog never filled");
        };
        assert_eq!(accepted, 5);
        assert!(error.backlog_full() && error.full().is_empty());
        assert_eq!(&*error.into_inner(), "5");
        assert_eq!(bridge.stats().backlog, 4);
        let started = Instant::now();
        let error = broker
            .publish_timeout("q", "late", ms(50))
            .expect_err("still full");
        assert!(error.backlog_full() && started.elapsed() >= ms(50));
        assert!(!bridge.is_connected());

        server.restart();
        let sub = quiet(&broker);
        sub.subscribe(["q"]);
        assert!(bridge.flush(WAIT), "the backlog drains once Redis is back");
        let stats = bridge.stats();
        assert_eq!(stats.backlog, 0);
        assert_eq!(
            (stats.forwarded, stats.lost),
            (accepted, 0),
            "none went to the dead server"
        );
        assert_eq!(broker.publish("q", "back"), 1);
        let mut before = Vec::new();
        read_until(&sub, "back", &mut before);
        // Anything before it is from the backlog, in order (and a gap notice if `sub` was
        // subscribed before the bridge's subscription connection came back).
        let numbers: Vec<u64> = before.iter().filter_map(|m| m.parse().ok()).collect();
        assert_eq!(
            numbers.len() + before.iter().filter(|m| *m == "<gap>").count(),
            before.len()
        );
        assert!(numbers.windows(2).all(|w| w[0] < w[1]) && numbers.iter().all(|&n| n < 5));

        // Under DropOldest nothing waits: the oldest are evicted and counted.
        let dropping = Broker::<str>::new();
        let mut down = Server::start().unwrap();
        let dropping_bridge = Bridge::builder(&dropping, &down.url())
            .backlog(Some(3), Overflow::DropOldest)
            .reconnect_delay(ms(10), ms(100))
            .connect()
            .unwrap();
        down.kill();
        for i in 0..1_000 {
            dropping
                .try_publish("q", i.to_string())
                .expect("never refused");
        }
        let stats = dropping_bridge.stats();
        assert!(stats.backlog <= 3 && stats.dropped >= 1_000 - 3 - 256);
    }

    /// redis-py, used as in redis-py's quick start, talks to a bridged broker both ways.
    #[test]
    fn redis_py_receives_what_rust_publishes_and_rust_what_python_publishes() {
        let has_redis_py = Command::new("python3")
            .args(["-c", "import redis"])
            .status()
            .is_ok_and(|s| s.success());
        if !has_redis_py {
            assert!(
                std::env::var_os("CI").is_none(),
                "CI must install redis-py (pip install redis)"
            );
            super::common::redis::skipped("`pip install redis` to run the redis-py interop test");
            return;
        }
        let Some(server) = Server::start() else {
            return;
        };
        let broker = Broker::<str>::new();
        let bridge = bridge(&broker, &server, Route::ViaRedis);
        let rust_sub = quiet(&broker);
        rust_sub.subscribe(["channel"]);
        assert!(bridge.flush(WAIT));

        let script =
            |name: &str| format!("{}/../examples/redis_py/{name}", env!("CARGO_MANIFEST_DIR"));
        let python_sub = Command::new("python3")
            .arg(script("subscriber.py"))
            .env("REDIS_PORT", server.port.to_string())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .expect("python3 runs");
        eventually("redis-py to subscribe", || numsub(&server, "channel") == 2);
        for text in ["message", "message", "bye"] {
            assert_eq!(broker.publish("channel", text), 1, "local deliveries");
        }
        let output = python_sub.wait_with_output().unwrap();
        let printed = String::from_utf8(output.stdout).unwrap();
        let lines: Vec<&str> = printed.lines().collect();
        assert_eq!(
            lines,
            [
                "{'type': 'subscribe', 'pattern': None, 'channel': b'channel', 'data': 1}",
                "{'type': 'message', 'pattern': None, 'channel': b'channel', 'data': b'message'}",
                "{'type': 'message', 'pattern': None, 'channel': b'channel', 'data': b'message'}",
                "{'type': 'message', 'pattern': None, 'channel': b'channel', 'data': b'bye'}",
            ]
        );
        assert_eq!(read(&rust_sub, 3), ["message", "message", "bye"]);

        let python_pub = Command::new("python3")
            .args([&script("publisher.py"), "message", "from python"])
            .env("REDIS_PORT", server.port.to_string())
            .output()
            .unwrap();
        assert!(python_pub.status.success());
        // PUBLISH's reply in Python: one receiver, the bridge (the Python subscriber left).
        assert_eq!(String::from_utf8(python_pub.stdout).unwrap(), "1\n1\n");
        assert_eq!(read(&rust_sub, 2), ["message", "from python"]);
    }

    #[cfg(feature = "cluster")]
    #[test]
    fn a_cluster_carries_sharded_channels_between_bridges() {
        let Some(cluster) = Cluster::start(3) else {
            return;
        };
        let (a, b) = (Broker::<str>::new(), Broker::<str>::new());
        let (bridge_a, bridge_b) = (on_cluster(&a, &cluster), on_cluster(&b, &cluster));
        let channels: Vec<String> = (0..20).map(|i| format!("shard-{i}")).collect();
        let (sub, pattern) = (quiet(&b), quiet(&b));
        sub.subscribe(&channels);
        pattern.psubscribe(["shard-*"]); // Redis has no sharded patterns: local only
        assert!(bridge_a.flush(WAIT) && bridge_b.flush(WAIT));
        assert_eq!(bridge_b.stats().subscriptions, 20);
        // Each channel is subscribed on the shard that owns it, spread over the nodes.
        let per_node: Vec<usize> = cluster
            .nodes
            .iter()
            .map(|node| {
                node.connect()
                    .call(&["PUBSUB", "SHARDCHANNELS"])
                    .strings()
                    .len()
            })
            .collect();
        assert_eq!(per_node.iter().sum::<usize>(), 20, "{per_node:?}");
        assert!(
            per_node.iter().filter(|&&n| n > 0).count() >= 2,
            "{per_node:?}"
        );

        const PER_CHANNEL: usize = 100;
        for i in 0..PER_CHANNEL {
            for channel in &channels {
                a.publish(channel, format!("{channel}/{i}"));
            }
        }
        let got = read(&sub, 20 * PER_CHANNEL);
        assert_eq!(got.len(), 20 * PER_CHANNEL);
        assert_eq!(
            got.iter().collect::<HashSet<_>>().len(),
            got.len(),
            "a duplicate"
        );
        for channel in &channels {
            let order: Vec<usize> = got
                .iter()
                .filter_map(|m| m.strip_prefix(&format!("{channel}/"))?.parse().ok())
                .collect();
            assert_eq!(order, (0..PER_CHANNEL).collect::<Vec<_>>(), "{channel}");
        }
        assert_eq!(
            pattern.get_message(ms(200)),
            None,
            "patterns are not sharded"
        );
        assert!(bridge_a.flush(WAIT));
        assert_eq!(bridge_a.stats().forwarded, (20 * PER_CHANNEL) as u64);
        assert_eq!(bridge_b.stats().received, (20 * PER_CHANNEL) as u64);

        // Local-first on a cluster: the channel's handle at once, patterns never (as Redis).
        let c = Broker::<str>::new();
        let bridge_c = Bridge::builder(&c, &cluster.url())
            .cluster()
            .route(Route::LocalFirst)
            .connect()
            .unwrap();
        let (on_c, pattern_on_c) = (quiet(&c), quiet(&c));
        on_c.subscribe(["shard-0"]);
        pattern_on_c.psubscribe(["shard-*"]);
        assert!(bridge_c.flush(WAIT));
        assert_eq!(c.publish("shard-0", "local first"), 1);
        let at_once = on_c
            .get_message(Duration::ZERO)
            .expect("delivered in publish");
        assert_eq!(at_once.payload().map(|p| &**p), Some("local first"));
        assert_eq!(read(&sub, 1), ["local first"], "and to the other bridge");
        assert!(bridge_c.flush(WAIT));
        eventually("its own echo", || bridge_c.stats().echoes_skipped == 1);
        assert_eq!(on_c.get_message(ms(200)), None, "once");
        assert_eq!(pattern_on_c.get_message(Duration::ZERO), None);
    }

    #[cfg(feature = "cluster")]
    #[test]
    fn a_cluster_node_killed_and_restarted_gives_a_gap_and_delivery_resumes() {
        let Some(mut cluster) = Cluster::start(3) else {
            return;
        };
        let (a, b) = (Broker::<str>::new(), Broker::<str>::new());
        let (bridge_a, bridge_b) = (on_cluster(&a, &cluster), on_cluster(&b, &cluster));
        let channels: Vec<String> = (0..20).map(|i| format!("shard-{i}")).collect();
        let sub = quiet(&b);
        sub.subscribe(&channels);
        assert!(bridge_b.flush(WAIT));
        for channel in &channels {
            a.publish(channel, "before");
        }
        assert_eq!(read(&sub, 20).len(), 20);

        // The node with the most of our channels goes down and comes back with its slots.
        let victim = (0..cluster.nodes.len())
            .max_by_key(|&i| {
                let node = &cluster.nodes[i];
                node.connect()
                    .call(&["PUBSUB", "SHARDCHANNELS"])
                    .strings()
                    .len()
            })
            .unwrap();
        cluster.nodes[victim].kill();
        std::thread::sleep(ms(300));
        cluster.nodes[victim].restart();
        cluster.wait_ok();
        let mut seen: Vec<String> = Vec::new();
        eventually("a gap notice, then every channel back", || {
            for channel in &channels {
                a.publish(channel, format!("{channel}/after"));
            }
            seen.extend(read_for(&sub, ms(300)));
            let Some(gap_at) = seen.iter().position(|m| m == "<gap>") else {
                return false;
            };
            let back: HashSet<&str> = seen[gap_at..]
                .iter()
                .filter_map(|m| m.strip_suffix("/after"))
                .collect();
            back.len() == channels.len()
        });
        assert!(bridge_b.stats().gaps >= 1);
        assert!(bridge_a.flush(WAIT), "the publishing side is back too");
    }

    #[cfg(feature = "async")]
    #[test]
    fn publish_async_goes_through_the_bridge_and_waits_for_a_full_backlog() {
        let Some(mut server) = Server::start() else {
            return;
        };
        for route in [Route::ViaRedis, Route::LocalFirst] {
            let broker = Broker::<str>::new();
            let bridge = Bridge::builder(&broker, &server.url())
                .route(route)
                .backlog(Some(1), Overflow::Block)
                .reconnect_delay(ms(10), ms(100))
                .connect()
                .unwrap();
            let sub = quiet(&broker);
            sub.subscribe(["async"]);
            let delivered = futures::executor::block_on(broker.publish_async("async", "x"));
            assert_eq!(delivered, 1, "{route:?}");
            assert_eq!(read(&sub, 1), ["x"], "{route:?}");
            assert!(bridge.flush(WAIT));
            drop(bridge);
        }

        // Redis down, backlog of 1 full: the task waits without blocking, then goes out.
        let broker = Broker::<str>::new();
        let bridge = Bridge::builder(&broker, &server.url())
            .backlog(Some(1), Overflow::Block)
            .reconnect_delay(ms(10), ms(100))
            .connect()
            .unwrap();
        server.kill();
        eventually("the loss to be seen", || !bridge.is_connected());
        broker.publish("q", "1"); // taken, held until Redis is back
        eventually("the first to be taken", || bridge.stats().backlog == 0);
        broker.publish("q", "2"); // fills the backlog
        let mut waiting = Box::pin(broker.publish_async("q", "3"));
        let waker = futures::task::noop_waker();
        let mut cx = std::task::Context::from_waker(&waker);
        assert!(
            waiting.as_mut().poll(&mut cx).is_pending(),
            "waits for room"
        );
        // Cancelled while it waits (a timeout, a select!): counted dropped, never sent.
        let mut cancelled = Box::pin(broker.publish_async("q", "cancelled"));
        assert!(cancelled.as_mut().poll(&mut cx).is_pending());
        drop(cancelled);
        assert_eq!(bridge.stats().dropped, 1);
        server.restart();
        assert_eq!(futures::executor::block_on(waiting), 0);
        assert!(bridge.flush(WAIT));
        assert_eq!(bridge.stats().forwarded, 3);
    }

    /// Panics seen on the bridge's own threads (`fanout-redis-*`), counted by a panic hook
    /// that then prints them as usual.
    fn bridge_thread_panics() -> usize {
        static PANICS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        static HOOK: std::sync::Once = std::sync::Once::new();
        HOOK.call_once(|| {
            let previous = std::panic::take_hook();
            std::panic::set_hook(Box::new(move |info| {
                let thread = std::thread::current();
                if thread.name().is_some_and(|n| n.starts_with("fanout-redis")) {
                    PANICS.fetch_add(1, Ordering::SeqCst);
                }
                previous(info);
            }));
        });
        PANICS.load(Ordering::SeqCst)
    }

    /// Drops `bridge` on another thread; how long it took, or `None` after `limit`.
    fn drop_within(bridge: Bridge<str>, limit: Duration) -> Option<Duration> {
        let started = Instant::now();
        super::common::within(limit, move || drop(bridge)).map(|()| started.elapsed())
    }

    /// `Duration::MAX` means "for ever" everywhere: `flush` waits without a deadline, and a
    /// back-off of `Duration::MAX` waits until the bridge is dropped; neither panics (both
    /// once overflowed adding to an `Instant`, and the back-off sleep could not be cut short).
    #[test]
    fn duration_max_means_for_ever_and_never_panics() {
        let Some(mut server) = Server::start() else {
            return;
        };
        let panics = bridge_thread_panics();
        let broker = Broker::<str>::new();
        let bridge = Bridge::builder(&broker, &server.url())
            .reconnect_delay(Duration::MAX, Duration::MAX)
            .connect_timeout(Duration::MAX)
            .connect()
            .unwrap();
        let sub = quiet(&broker);
        sub.subscribe(["x"]);
        assert!(bridge.flush(Duration::MAX));
        broker.publish("x", "before");
        assert_eq!(read(&sub, 1), ["before"]);
        server.kill();
        // Both connections find out and start their (endless) back-off.
        broker.publish("x", "1");
        std::thread::sleep(ms(300));
        broker.publish("x", "2");
        std::thread::sleep(ms(300));
        assert!(!bridge.flush(ms(100)), "nothing can reach a dead server");
        let took = drop_within(bridge, Duration::from_secs(10));
        assert!(
            took.is_some_and(|t| t < Duration::from_secs(3)),
            "drop took {took:?}"
        );
        assert_eq!(bridge_thread_panics(), panics, "a bridge thread panicked");
    }

    /// Redis hangs (SIGSTOP) while the bridge waits for its reply to a SUBSCRIBE: dropping
    /// the bridge returns at once instead of waiting for the server to wake up.
    #[test]
    fn dropping_a_bridge_while_redis_hangs_returns_promptly() {
        let Some(server) = Server::start() else {
            return;
        };
        let broker = Broker::<str>::new();
        let bridge = bridge(&broker, &server, Route::ViaRedis);
        let sub = quiet(&broker);
        sub.subscribe(["before"]);
        assert!(bridge.flush(WAIT));
        server.pause();
        sub.subscribe(["during"]); // the SUBSCRIBE goes out; no reply comes
        std::thread::sleep(ms(100));
        let took = drop_within(bridge, Duration::from_secs(10));
        server.resume();
        assert!(
            took.is_some_and(|t| t < Duration::from_secs(2)),
            "drop took {took:?}"
        );

        // With a publish waiting too, the drop waits for its reply at most the reply timeout.
        let bridge = Bridge::builder(&broker, &server.url())
            .reply_timeout(ms(500))
            .connect()
            .unwrap();
        assert!(bridge.flush(WAIT));
        server.pause();
        broker.publish("before", "lost in the hang");
        std::thread::sleep(ms(100));
        let took = drop_within(bridge, Duration::from_secs(10));
        server.resume();
        assert!(
            took.is_some_and(|t| t < Duration::from_secs(3)),
            "drop took {took:?}"
        );
    }

    /// A long back-off (here 20 s before the first retry) is cut short by dropping the bridge.
    #[test]
    fn dropping_a_bridge_during_a_long_back_off_returns_promptly() {
        let Some(server) = Server::start() else {
            return;
        };
        let broker = Broker::<str>::new();
        let bridge = Bridge::builder(&broker, &server.url())
            .reconnect_delay(Duration::from_secs(20), Duration::from_secs(20))
            .connect()
            .unwrap();
        let sub = quiet(&broker);
        sub.subscribe(["x"]);
        assert!(bridge.flush(WAIT));
        // Kill the publishing connection only (the subscription one is of type pubsub): the
        // next publish finds it dead, and the thread starts its 20 s back-off.
        server.connect().call(&["CLIENT", "KILL", "TYPE", "normal"]);
        broker.publish("x", "1");
        eventually("the loss to be seen", || !bridge.is_connected());
        broker.publish("x", "2"); // a batch waiting for the connection to be made again
        std::thread::sleep(ms(200));
        let took = drop_within(bridge, Duration::from_secs(30));
        assert!(
            took.is_some_and(|t| t < Duration::from_secs(2)),
            "drop took {took:?}"
        );

        // The subscription side's back-off too: kill the server, then drop.
        let mut server = server;
        let bridge = Bridge::builder(&broker, &server.url())
            .reconnect_delay(Duration::from_secs(20), Duration::from_secs(20))
            .connect()
            .unwrap();
        assert!(bridge.flush(WAIT));
        server.kill();
        eventually("the loss to be seen", || !bridge.is_connected());
        std::thread::sleep(ms(200));
        let took = drop_within(bridge, Duration::from_secs(30));
        assert!(
            took.is_some_and(|t| t < Duration::from_secs(2)),
            "drop took {took:?}"
        );
    }

    /// Publishes made while Redis is down, on channels subscribed before it went down or
    /// while it was down, go out only once Redis has the subscriptions again, so they all
    /// come back. They once went out as soon as the publishing connection was back, while
    /// the subscription connection was still subscribing to 3,000 other channels: lost, and
    /// counted as forwarded.
    #[test]
    fn publishes_made_while_redis_was_down_come_back_once_it_has_the_subscriptions_again() {
        let Some(mut server) = Server::start() else {
            return;
        };
        let broker = Broker::<str>::new();
        let bridge = bridge(&broker, &server, Route::ViaRedis);
        let others = quiet(&broker);
        let names: Vec<String> = (0..3_000).map(|i| format!("other.{i}")).collect();
        others.subscribe(&names);
        let early = quiet(&broker);
        early.subscribe(["early"]);
        assert!(bridge.flush(WAIT));
        let mut sent = 0;
        for round in 0..4 {
            server.kill();
            eventually("the loss to be seen", || !bridge.is_connected());
            let late = quiet(&broker);
            let channel = format!("late.{round}");
            late.subscribe([channel.as_str()]);
            for i in 0..99 {
                assert_eq!(broker.publish("early", format!("{round}.{i}")), 1);
                assert_eq!(broker.publish(&channel, i.to_string()), 1);
                sent += 2;
            }
            server.restart();
            let expected: Vec<String> = (0..99).map(|i| format!("{round}.{i}")).collect();
            let got: Vec<String> = read(&early, 99)
                .into_iter()
                .filter(|m| m != "<gap>")
                .collect();
            assert_eq!(got, expected, "round {round}: subscribed before the loss");
            let got: Vec<String> = read(&late, 99)
                .into_iter()
                .filter(|m| m != "<gap>")
                .collect();
            let expected: Vec<String> = (0..99).map(|i| i.to_string()).collect();
            assert_eq!(got, expected, "round {round}: subscribed during the loss");
            assert!(bridge.flush(WAIT));
            let stats = bridge.stats();
            assert_eq!((stats.forwarded, stats.lost), (sent, 0), "round {round}");
        }
    }

    /// Redis killed (-9) and restarted while one broker publishes to itself, read by a channel
    /// handle and a pattern handle: the two read the same messages in the same order, and
    /// the only ones missing sit at the `Gap` notice and were in flight when the server died
    /// (the batch it never answered, counted `lost`, and at most one batch it answered but had
    /// not yet written to the subscription connection; Redis writes the publisher's reply
    /// first). Publishes made while it was down all come back. They once went out after the
    /// restart before the subscriptions were made again: thousands lost, with `lost: 1`, and
    /// the two handles held different sets.
    #[test]
    fn a_server_killed_mid_stream_loses_only_what_it_counts_and_handles_agree() {
        let Some(mut server) = Server::start() else {
            return;
        };
        let broker = Broker::<str>::new();
        let bridge = bridge(&broker, &server, Route::ViaRedis);
        let (by_channel, by_pattern) = (quiet(&broker), quiet(&broker));
        by_channel.subscribe(["stream"]);
        by_pattern.psubscribe(["str*"]);
        assert!(bridge.flush(WAIT));
        let stop = Arc::new(AtomicBool::new(false));
        let publisher = {
            let (broker, stop) = (broker.clone(), Arc::clone(&stop));
            std::thread::spawn(move || {
                let mut sent = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    broker.publish("stream", sent.to_string());
                    sent += 1;
                    std::thread::sleep(Duration::from_micros(200));
                }
                sent
            })
        };
        let mut got = (read(&by_channel, 500), read(&by_pattern, 500));
        server.kill();
        std::thread::sleep(ms(300));
        server.restart();
        eventually("the bridge to reconnect", || bridge.is_connected());
        std::thread::sleep(ms(300));
        stop.store(true, Ordering::Relaxed);
        let sent = publisher.join().unwrap();
        assert!(bridge.flush(WAIT));
        broker.publish("stream", "end");
        read_until(&by_channel, "end", &mut got.0);
        read_until(&by_pattern, "end", &mut got.1);
        assert!(bridge.flush(WAIT), "the reply to `end` is counted too");
        let (a, b) = (numbers(&got.0, ""), numbers(&got.1, ""));
        assert_eq!(a, b, "both handles read the same messages");
        assert!(a.windows(2).all(|w| w[0] < w[1]), "in order, none twice");
        let stats = bridge.stats();
        eprintln!("sent {sent}, received {}, {stats:?}", a.len());
        assert_eq!(stats.forwarded + stats.lost + stats.dropped, sent + 1);
        let received = a.len() as u64;
        assert!(
            received < stats.forwarded + stats.lost,
            "nothing came back twice"
        );
        // What is missing is one hole, where the gap notice is, no bigger than what was in
        // flight: the batch counted lost, and one batch Redis answered before it died.
        let gap_at = got
            .0
            .iter()
            .position(|m| m == "<gap>")
            .expect("a gap notice");
        let before: Vec<u64> = numbers(&got.0[..gap_at], "");
        let (last_before, first_after) = (before.last().copied(), a.get(before.len()).copied());
        let missing: Vec<u64> = (0..sent).filter(|n| a.binary_search(n).is_err()).collect();
        eprintln!("missing {missing:?} between {last_before:?} and {first_after:?}");
        assert!(
            missing
                .iter()
                .all(|&n| Some(n) > last_before && Some(n) < first_after),
            "only at the gap: {missing:?}"
        );
        assert!(
            missing.len() as u64 <= stats.lost + BATCH,
            "{} missing",
            missing.len()
        );
    }

    /// `Broker::close` releases a publisher waiting for room in the bridge's full `Block`
    /// backlog while Redis is down, as it releases one waiting for a handle's queue; what the
    /// backlog held still goes out once Redis is back.
    #[test]
    fn broker_close_releases_a_publisher_waiting_for_the_bridge_backlog() {
        let Some(mut server) = Server::start() else {
            return;
        };
        let broker = Broker::<str>::new();
        let bridge = Bridge::builder(&broker, &server.url())
            .backlog(Some(1), Overflow::Block)
            .reconnect_delay(ms(10), ms(100))
            .connect()
            .unwrap();
        let sub = quiet(&broker);
        sub.subscribe(["x"]);
        assert!(bridge.flush(WAIT));
        server.kill();
        eventually("the loss to be seen", || !bridge.is_connected());
        let (tx, rx) = std::sync::mpsc::channel();
        let publisher = broker.clone();
        std::thread::spawn(move || {
            let returned: Vec<usize> = (0..5)
                .map(|i| publisher.publish("x", i.to_string()))
                .collect();
            let _ = tx.send(returned);
        });
        std::thread::sleep(ms(300));
        assert!(rx.try_recv().is_err(), "the publisher waits for room");
        broker.close();
        let released = rx.recv_timeout(Duration::from_secs(10));
        server.restart(); // lets it go if the close did not, so the test ends
        let returned = released.expect("Broker::close released the publisher");
        // The first was taken by the publishing thread, the second filled the backlog; the
        // third waited and was refused by the close (dropped), the later ones came after it.
        assert_eq!(returned, [1, 1, 0, 0, 0]);
        assert!(bridge.flush(WAIT));
        let stats = bridge.stats();
        // The two queued ones go out once Redis is back, to a channel nobody subscribes to
        // any more (the close removed `sub`'s subscription): Redis answers 0 receivers where
        // a local handle was counted, so they are counted lost.
        assert_eq!((stats.forwarded + stats.lost, stats.dropped), (2, 1));
    }

    /// Redis matches a pattern whose range ends are not ASCII differently from
    /// `glob_match` (it compares signed chars). A `pmessage` Redis sends for a pattern goes
    /// to that pattern's handles as Redis matched it, not dropped by a second, local match.
    #[test]
    fn a_pmessage_from_redis_reaches_its_pattern_as_redis_matched_it() {
        let Some(server) = Server::start() else {
            return;
        };
        let broker = Broker::<str>::new();
        let bridge = bridge(&broker, &server, Route::ViaRedis);
        let sub = quiet(&broker);
        sub.psubscribe(["[a-é]"]);
        assert!(bridge.flush(WAIT));
        assert!(
            !fanout::glob_match("[a-é]", "A"),
            "bytes compare unsigned here"
        );
        let receivers = server.connect().call(&["PUBLISH", "A", "from redis"]);
        assert_eq!(receivers, Reply::Int(1), "Redis matches it");
        assert_eq!(read(&sub, 1), ["from redis"]);
    }

    /// Killing only the subscription connection (`CLIENT KILL TYPE pubsub`) under a steady
    /// publisher: what the handle misses sits at the `Gap` notice and is counted `lost`
    /// (Redis answers those publishes with 0 receivers), not `forwarded`, beyond at most one
    /// batch Redis answered in the same moment it dropped the connection.
    #[test]
    fn a_killed_subscription_connection_counts_what_it_missed() {
        let Some(server) = Server::start() else {
            return;
        };
        for round in 0..3 {
            let broker = Broker::<str>::new();
            let bridge = bridge(&broker, &server, Route::ViaRedis);
            let sub = quiet(&broker);
            let channel = format!("s{round}");
            sub.subscribe([channel.as_str()]);
            assert!(bridge.flush(WAIT));
            let stop = Arc::new(AtomicBool::new(false));
            let publisher = {
                let (broker, stop, channel) = (broker.clone(), stop.clone(), channel.clone());
                std::thread::spawn(move || {
                    let mut sent = 0u64;
                    while !stop.load(Ordering::Relaxed) {
                        broker.publish(&channel, sent.to_string());
                        sent += 1;
                        // Slow enough for a debug build's receiving thread to keep up:
                        // the bridge notices the loss when that thread reaches the end of
                        // the old connection's stream.
                        if sent.is_multiple_of(8) {
                            std::thread::sleep(Duration::from_micros(200));
                        }
                    }
                    sent
                })
            };
            std::thread::sleep(ms(200));
            server.connect().call(&["CLIENT", "KILL", "TYPE", "pubsub"]);
            std::thread::sleep(ms(300));
            stop.store(true, Ordering::Relaxed);
            let sent = publisher.join().unwrap();
            assert!(bridge.flush(WAIT));
            broker.publish(&channel, "end");
            let mut got = Vec::new();
            read_until(&sub, "end", &mut got);
            assert!(bridge.flush(WAIT));
            let gap_at = got.iter().position(|m| m == "<gap>").expect("a gap notice");
            let received = numbers(&got, "");
            assert!(
                received.windows(2).all(|w| w[0] < w[1]),
                "in order, none twice"
            );
            let before = numbers(&got[..gap_at], "");
            let (last_before, first_after) = (before.last().copied(), received.get(before.len()));
            let missing: Vec<u64> = (0..sent)
                .filter(|n| received.binary_search(n).is_err())
                .collect();
            let stats = bridge.stats();
            eprintln!(
                "round {round}: sent {sent}, {} missing, {stats:?}",
                missing.len()
            );
            assert!(
                missing
                    .iter()
                    .all(|&n| Some(n) > last_before && Some(&n) < first_after),
                "only at the gap: {missing:?}"
            );
            assert_eq!(stats.forwarded + stats.lost, sent + 1);
            assert!(
                missing.len() as u64 <= stats.lost + BATCH,
                "{} missing, {} counted lost",
                missing.len(),
                stats.lost
            );
        }
    }

    /// A shard that hangs (SIGSTOP) while the backlog holds runs of publishes for two of its
    /// channels: dropping the cluster bridge waits for one reply at most, not one per run.
    #[cfg(feature = "cluster")]
    #[test]
    fn dropping_a_cluster_bridge_while_a_shard_hangs_returns_promptly() {
        let Some(cluster) = Cluster::start(3) else {
            return;
        };
        // Two channels whose slots the first node owns (the others answer MOVED).
        let mut first = cluster.nodes[0].connect();
        let channels: Vec<String> = (0..)
            .map(|i| format!("ch{i}"))
            .filter(|name| !matches!(first.call(&["SPUBLISH", name, "probe"]), Reply::Error(_)))
            .take(2)
            .collect();
        let broker = Broker::<str>::new();
        let bridge = Bridge::builder(&broker, &cluster.url())
            .cluster()
            .reply_timeout(ms(300))
            .reconnect_delay(ms(10), ms(50))
            .connect()
            .unwrap();
        let sub = broker.pubsub();
        sub.subscribe(&channels);
        assert!(bridge.flush(WAIT));
        cluster.nodes[0].pause();
        for i in 0..40 {
            broker.publish(&channels[i % 2], i.to_string());
        }
        std::thread::sleep(ms(100));
        let took = drop_within(bridge, Duration::from_secs(60));
        cluster.nodes[0].resume();
        assert!(
            took.is_some_and(|t| t < Duration::from_secs(2)),
            "drop took {took:?}"
        );
    }

    /// The subscription connection dies while the receiving thread waits for a full `Block`
    /// handle: the bridge notices at once all the same (the subscription side reads the
    /// connection), so the publishes made meanwhile wait for the new connection, and reach
    /// the handle after its `Gap` notice, none lost.
    #[test]
    fn a_subscription_connection_lost_while_delivery_waits_is_noticed_and_nothing_is_lost() {
        let Some(server) = Server::start() else {
            return;
        };
        let broker = Broker::<str>::new();
        let bridge = bridge(&broker, &server, Route::ViaRedis);
        let slow = broker
            .pubsub_builder()
            .capacity(1)
            .overflow(Overflow::Block)
            .ignore_subscribe_messages(true)
            .build();
        slow.subscribe(["s"]);
        assert!(bridge.flush(WAIT));
        broker.publish("s", "fills the queue");
        broker.publish("s", "holds the receiving thread");
        eventually("the queue to fill", || slow.stats().queued == 2);
        assert!(bridge.flush(WAIT));
        server.connect().call(&["CLIENT", "KILL", "TYPE", "pubsub"]);
        eventually("the loss to be noticed", || !bridge.is_connected());
        for i in 0..10 {
            broker.publish("s", i.to_string());
        }
        assert!(bridge.flush(WAIT));
        let stats = bridge.stats();
        assert_eq!((stats.forwarded, stats.lost), (12, 0), "{stats:?}");
        broker.publish("s", "end");
        let mut got = read(&slow, 2);
        read_until(&slow, "end", &mut got);
        let mut expected = vec!["fills the queue", "holds the receiving thread", "<gap>"];
        let numbers: Vec<String> = (0..10).map(|i| i.to_string()).collect();
        expected.extend(numbers.iter().map(String::as_str));
        assert_eq!(got, expected);
        assert_eq!(bridge.stats().gaps, 1);
    }

    /// A bridge that counts a reply slower than 300 ms as a lost connection.
    fn hang_aware(broker: &Broker<str>, server: &Server, route: Route) -> Bridge<str> {
        Bridge::builder(broker, &server.url())
            .route(route)
            .reply_timeout(ms(300))
            .reconnect_delay(ms(10), ms(200))
            .connect()
            .expect("the bridge connects")
    }

    /// A server hung past the reply timeout (SIGSTOP), then resumed (SIGCONT): the bridge
    /// is connected again within its back-off with nothing published after the hang, on both
    /// routes, whether the hang was noticed through a publish, a subscription or not at all.
    #[test]
    fn a_hung_server_that_resumes_is_reconnected_without_a_publish() {
        let Some(server) = Server::start() else {
            return;
        };
        for route in [Route::ViaRedis, Route::LocalFirst] {
            for during in ["nothing", "a publish", "a subscription"] {
                let broker = Broker::<str>::new();
                let bridge = hang_aware(&broker, &server, route);
                let sub = quiet(&broker);
                sub.subscribe(["h"]);
                assert!(bridge.flush(WAIT));
                assert_eq!(broker.publish("h", "before"), 1);
                assert!(bridge.flush(WAIT));
                assert_eq!(read(&sub, 1), ["before"]);
                server.pause();
                match during {
                    "a publish" => assert_eq!(broker.publish("h", "during"), 1),
                    "a subscription" => sub.subscribe(["other"]),
                    _ => {}
                }
                if during != "nothing" {
                    eventually("the hang to be noticed", || !bridge.is_connected());
                }
                std::thread::sleep(ms(600)); // twice the reply timeout
                server.resume();
                let resumed = Instant::now();
                eventually("the bridge to reconnect", || bridge.is_connected());
                let took = resumed.elapsed();
                let case = format!("{route:?}, {during} during the hang");
                // The back-off's cap (200 ms) plus a connection and a round trip or two.
                assert!(
                    took < Duration::from_secs(2),
                    "{case}: connected after {took:?}"
                );
                if during != "nothing" {
                    assert_eq!(bridge.stats().reconnects, 1, "{case}: {:?}", bridge.stats());
                }
                assert!(bridge.flush(WAIT), "{case}");
                assert_eq!(broker.publish("h", "after"), 1);
                let mut got = vec![];
                read_until(&sub, "after", &mut got);
                got.retain(|m| m != "<gap>" && m != "during");
                assert!(got.is_empty(), "{case}: {got:?}");
            }
        }
    }

    /// A publish made while the server hangs reaches a local handle once on either route:
    /// `LocalFirst` delivered it at once, so the copy Redis sends back after resuming (if it
    /// went out) is skipped, and `ViaRedis` delivers the copy or counts it lost with a `Gap`.
    #[test]
    fn a_publish_made_while_the_server_hangs_reaches_a_handle_once() {
        let Some(server) = Server::start() else {
            return;
        };
        for route in [Route::LocalFirst, Route::ViaRedis] {
            let broker = Broker::<str>::new();
            let bridge = hang_aware(&broker, &server, route);
            let sub = quiet(&broker);
            sub.subscribe(["h"]);
            assert!(bridge.flush(WAIT));
            assert_eq!(broker.publish("h", "before"), 1);
            assert!(bridge.flush(WAIT));
            server.pause();
            assert_eq!(broker.publish("h", "during"), 1);
            eventually("the hang to be noticed", || !bridge.is_connected());
            std::thread::sleep(ms(400));
            server.resume();
            eventually("the bridge to reconnect", || bridge.is_connected());
            assert!(bridge.flush(WAIT));
            assert_eq!(broker.publish("h", "end"), 1);
            let mut got = vec![];
            read_until(&sub, "end", &mut got);
            let during = got.iter().filter(|m| *m == "during").count();
            let stats = bridge.stats();
            // The resumed server ran the batch whose reply timed out: the copy came back.
            assert_eq!(during, 1, "{route:?}: {got:?}, {stats:?}");
            if route == Route::ViaRedis {
                // Its delivery was made, so it is not counted lost.
                assert_eq!(stats.lost, 0, "{got:?}, {stats:?}");
            }
        }
    }

    /// A redis-py client publishes on `a` (its `PUBLISH` returned: Redis ran it), then a local
    /// handle subscribed to `a` subscribes `b`: the handle reads `message a` before
    /// `subscribe b`, as a redis-py client in its place would (Redis ran the `SUBSCRIBE`
    /// later). Repeated `race_rounds()` times.
    #[test]
    fn a_remote_message_redis_ran_first_comes_before_a_later_local_confirmation() {
        let Some(server) = Server::start() else {
            return;
        };
        let broker = Broker::<str>::new();
        let bridge = bridge(&broker, &server, Route::ViaRedis);
        let mut plain = server.connect();
        for round in 0..race_rounds() {
            let (a, b) = (format!("a{round}"), format!("b{round}"));
            let sub = broker.pubsub();
            sub.subscribe(a.as_str());
            assert!(bridge.flush(WAIT));
            assert_eq!(plain.call(&["PUBLISH", &a, "m"]).int(), 1);
            sub.subscribe(b.as_str());
            let kinds: Vec<_> = (0..3)
                .map(|_| sub.get_message(WAIT).map(|m| m.kind()))
                .collect();
            let expected = ["subscribe", "message", "subscribe"].map(Some);
            assert_eq!(kinds, expected, "round {round}");
        }
    }

    /// A server paused (SIGSTOP) with publishes in flight, then killed: the copies never come
    /// back, and `lost` counts each counted delivery that was not made, and only those; a
    /// publish whose copy a resumed server sent back is not counted.
    #[test]
    fn publishes_in_doubt_are_counted_lost_only_when_their_copies_never_come() {
        let Some(mut server) = Server::start() else {
            return;
        };
        let broker = Broker::<str>::new();
        let bridge = hang_aware(&broker, &server, Route::ViaRedis);
        let sub = quiet(&broker);
        sub.subscribe(["d"]);
        assert!(bridge.flush(WAIT));
        // A first batch proves the publishing connection, so the next goes out at once.
        assert_eq!(broker.publish("d", "first"), 1);
        assert!(bridge.flush(WAIT));
        assert_eq!(read(&sub, 1), ["first"]);
        server.pause();
        for i in 0..3 {
            assert_eq!(broker.publish("d", i.to_string()), 1);
        }
        eventually("the hang to be noticed", || !bridge.is_connected());
        std::thread::sleep(ms(400)); // the batch's reply timed out: its fate is unknown
        server.resume();
        server.kill();
        server.restart();
        eventually("the bridge to reconnect", || bridge.is_connected());
        assert!(bridge.flush(WAIT));
        broker.publish("d", "end");
        let mut got = vec![];
        read_until(&sub, "end", &mut got);
        let made = got.iter().filter(|m| *m != "<gap>").count() as u64;
        eventually("the doubts to be settled", || {
            bridge.stats().lost + made == 3
        });
        let stats = bridge.stats();
        eprintln!("made {made}, lost {}: {got:?}", stats.lost);
        assert_eq!(stats.lost + made, 3, "{got:?}, {stats:?}");
    }

    // ---------------------------------------------------------------------------------------
    // Subscription changes in Redis's order (src/bridge/order.rs) and the publishing
    // thread's reconnection, attacked: deadlocks, stalls, panics, drops, restarts.

    /// A bridge whose reply timeout is `reply` (`Duration::MAX`: none).
    fn replying_within<T: ?Sized + Codec + Send + Sync + 'static>(
        broker: &Broker<T>,
        url: &str,
        reply: Duration,
    ) -> Bridge<T> {
        Bridge::builder(broker, url)
            .reply_timeout(reply)
            .reconnect_delay(ms(10), ms(200))
            .connect()
            .expect("the bridge connects")
    }

    /// How long a delivery from Redis takes to reach `sub` (subscribed to `channel`) just
    /// after another handle made a subscription change, `rounds` times.
    fn delivery_after_changes(
        broker: &Broker<str>,
        server: &Server,
        sub: &PubSub<str>,
        channel: &str,
        rounds: usize,
    ) -> Vec<Duration> {
        let mut plain = server.connect();
        (0..rounds)
            .map(|round| {
                let other = quiet(broker);
                other.subscribe(format!("review.z{round}").as_str());
                let started = Instant::now();
                assert_eq!(plain.call(&["PUBLISH", channel, "m"]).int(), 1);
                assert_eq!(read(sub, 1), ["m"]);
                started.elapsed()
            })
            .collect()
    }

    /// Attacks: nothing left waiting after a panic. The names a caller passes are iterated
    /// inside the change, so a panicking iterator unwinds out of it: the receiving thread must
    /// not wait at later markers for that change, nor later changes on that thread be made
    /// unordered.
    #[test]
    fn a_panic_inside_a_change_leaves_no_later_marker_stalled() {
        let Some(server) = Server::start() else {
            return;
        };
        let broker = Broker::<str>::new();
        let bridge = replying_within(&broker, &server.url(), Duration::from_secs(2));
        let sub = quiet(&broker);
        sub.subscribe("review.a");
        assert!(bridge.flush(WAIT));
        let before = delivery_after_changes(&broker, &server, &sub, "review.a", 2);
        let panicking = quiet(&broker);
        let thread = std::thread::spawn(move || {
            panicking.subscribe(fanout::Each((0..2).map(|i| {
                assert!(i == 0, "a caller's iterator of names panics");
                "review.p0"
            })));
        });
        assert!(thread.join().is_err(), "the iterator panicked");
        let after = delivery_after_changes(&broker, &server, &sub, "review.a", 3);
        assert!(
            after.iter().all(|took| *took < ms(1000)),
            "before the panic: {before:?}; after it, each change stalls delivery: {after:?}"
        );
    }

    /// Attacks: the bridge dropped while a caller waits for its marker (the check's PING held
    /// by a hung server): no marker can come, so the caller goes on at once, also with
    /// `Duration::MAX`.
    #[test]
    fn a_change_waiting_for_its_marker_ends_when_the_bridge_is_dropped() {
        let Some(server) = Server::start() else {
            return;
        };
        let mut late = Vec::new();
        for reply in [Duration::from_secs(3), Duration::MAX] {
            let broker = Broker::<str>::new();
            let bridge = replying_within(&broker, &server.url(), reply);
            let sub = quiet(&broker);
            sub.subscribe("review.a");
            assert!(bridge.flush(WAIT));
            server.pause();
            let (done, finished) = std::sync::mpsc::channel();
            let waiting = quiet(&broker);
            std::thread::spawn(move || {
                waiting.subscribe("review.b");
                let _ = done.send(());
                waiting
            });
            std::thread::sleep(ms(200)); // the check's PING waits on the hung server
            let took = drop_within(bridge, Duration::from_secs(5));
            let dropped = Instant::now();
            let returned = finished.recv_timeout(Duration::from_secs(5)).is_ok();
            let after = dropped.elapsed();
            server.resume();
            if took.is_none() || !returned || after > ms(1000) {
                late.push(format!(
                    "reply_timeout {reply:?}: drop took {took:?}; subscribe returned: \
                     {returned}, {after:?} after the drop"
                ));
            }
        }
        assert!(late.is_empty(), "{late:#?}");
    }

    /// Attacks: a change that began just before the connection was lost (the server dies while
    /// the check's PING waits): once the subscription side sees the loss, the caller goes on,
    /// also with `Duration::MAX`.
    #[test]
    fn a_change_waiting_for_its_marker_ends_when_the_connection_is_lost() {
        let mut late = Vec::new();
        for reply in [Duration::from_secs(3), Duration::MAX] {
            let Some(mut server) = Server::start() else {
                return;
            };
            let broker = Broker::<str>::new();
            let bridge = replying_within(&broker, &server.url(), reply);
            let sub = quiet(&broker);
            sub.subscribe("review.a");
            assert!(bridge.flush(WAIT));
            server.pause();
            let (done, finished) = std::sync::mpsc::channel();
            let waiting = quiet(&broker);
            std::thread::spawn(move || {
                waiting.subscribe("review.b");
                let _ = done.send(());
                waiting
            });
            std::thread::sleep(ms(200)); // the check's PING waits on the hung server
            server.kill();
            let killed = Instant::now();
            eventually("the loss to be seen", || !bridge.is_connected());
            let seen = killed.elapsed();
            let returned = finished.recv_timeout(Duration::from_secs(5)).is_ok();
            let after = killed.elapsed();
            if !returned || after > seen + ms(1000) {
                late.push(format!(
                    "reply_timeout {reply:?}: loss seen {seen:?} after the kill; subscribe \
                     returned: {returned}, {after:?} after the kill"
                ));
            }
            // The caller may still be inside `in_order` (`Duration::MAX`): the drop must not
            // wait for it, and leaves no thread reconnecting to a port another test may take.
            assert!(
                drop_within(bridge, Duration::from_secs(5)).is_some(),
                "the drop hung"
            );
        }
        assert!(late.is_empty(), "{late:#?}");
    }

    /// Attacks: a server restart between the check request and its marker. The outstanding
    /// check is answered on the new connection, whose marker releases the caller well within
    /// its reply timeout, and the handle then gets what is published (nothing left waiting).
    #[test]
    fn a_change_waiting_across_a_restart_is_released_by_the_new_connection() {
        let Some(mut server) = Server::start() else {
            return;
        };
        for round in 0..5 {
            let broker = Broker::<str>::new();
            let bridge = replying_within(&broker, &server.url(), Duration::from_secs(10));
            let sub = quiet(&broker);
            sub.subscribe("review.a");
            assert!(bridge.flush(WAIT));
            server.pause();
            let (done, finished) = std::sync::mpsc::channel();
            let waiting = quiet(&broker);
            std::thread::spawn(move || {
                waiting.subscribe("review.b");
                let _ = done.send(waiting);
            });
            std::thread::sleep(ms(100));
            server.kill();
            server.restart();
            let back = Instant::now();
            let waiting = finished
                .recv_timeout(Duration::from_secs(15))
                .expect("the subscribe returns");
            let took = back.elapsed();
            assert!(
                took < ms(3000),
                "round {round}: released {took:?} after the restart"
            );
            eventually("the bridge to reconnect", || bridge.is_connected());
            assert!(bridge.flush(WAIT));
            let started = Instant::now();
            assert_eq!(broker.publish("review.b", "after"), 1);
            let mut got = Vec::new();
            read_until(&waiting, "after", &mut got);
            assert!(
                started.elapsed() < ms(1000),
                "round {round}: {:?}",
                started.elapsed()
            );
        }
    }

    /// A worker whose handler, on its first delivery, subscribes another handle while the
    /// receiving thread waits for room in the worker's own full `Block` queue. Returns how long
    /// that `subscribe` took, `None` if it had not returned within `limit`.
    fn worker_subscribing_while_its_queue_is_full(
        url: String,
        reply: Duration,
        limit: Duration,
    ) -> Option<Duration> {
        let (took_tx, took) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let broker = Broker::<str>::new();
            let bridge = replying_within(&broker, &url, reply);
            let other = Arc::new(quiet(&broker));
            let busy = broker
                .pubsub_builder()
                .capacity(1)
                .overflow(Overflow::Block)
                .ignore_subscribe_messages(true)
                .build();
            let first = AtomicBool::new(true);
            let took_tx = std::sync::Mutex::new(took_tx);
            let subscriber = Arc::clone(&other);
            busy.subscribe_with("review.busy", move |_| {
                if first.swap(false, Ordering::SeqCst) {
                    // Meanwhile the next delivery fills the queue and the one after holds
                    // the receiving thread.
                    std::thread::sleep(ms(300));
                    let started = Instant::now();
                    subscriber.subscribe("review.other");
                    let _ = took_tx.lock().unwrap().send(started.elapsed());
                }
            });
            assert!(bridge.flush(WAIT));
            let worker = busy.run_in_thread().expect("the worker starts");
            for i in 0..5 {
                broker.publish("review.busy", i.to_string());
            }
            // Kept alive (not joined) whatever happens: the test reads `took`.
            std::thread::sleep(limit + ms(500));
            // The handler may be stuck for good (`Duration::MAX`): its worker and handles are
            // left as they are; the bridge goes, so no thread keeps reconnecting.
            std::mem::forget((worker, busy, other));
            drop(bridge);
        });
        took.recv_timeout(limit).ok()
    }

    /// Attacks: a worker's handler that subscribes while its own `Block` queue is full (the
    /// receiving thread waits on it, the marker is behind): documented in docs/BRIDGE.md as
    /// bounded by the reply timeout and by a cap of 1 s, per change.
    #[test]
    fn a_worker_subscribing_while_its_block_queue_is_full_waits_at_most_the_cap() {
        let Some(server) = Server::start() else {
            return;
        };
        let took = worker_subscribing_while_its_queue_is_full(
            server.url(),
            Duration::from_secs(5),
            Duration::from_secs(10),
        );
        assert!(
            took.is_some_and(|took| took < ms(2000)),
            "the handler's subscribe took {took:?}"
        );
    }

    /// The same with `reply_timeout(Duration::MAX)` ("no limit"): the handler waits for a
    /// marker behind the delivery the receiving thread cannot make until the handler returns,
    /// so only the cap ends the wait; it must, or every delivery from Redis stops for good.
    #[test]
    fn a_worker_subscribing_while_its_block_queue_is_full_does_not_deadlock_without_a_timeout() {
        let Some(server) = Server::start() else {
            return;
        };
        let took = worker_subscribing_while_its_queue_is_full(
            server.url(),
            Duration::MAX,
            Duration::from_secs(5),
        );
        assert!(took.is_some(), "the handler's subscribe never returned");
    }

    /// Attacks: many threads changing subscriptions at once (8 x 200 subscribe/unsubscribe
    /// and psubscribe/punsubscribe) while another publishes and reads: every change and every
    /// round trip finishes promptly, and the bridge delivers afterwards.
    #[test]
    fn many_threads_changing_subscriptions_finish_promptly_and_delivery_goes_on() {
        let Some(server) = Server::start() else {
            return;
        };
        let broker = Broker::<str>::new();
        let bridge = bridge(&broker, &server, Route::ViaRedis);
        let live = quiet(&broker);
        live.subscribe("review.live");
        assert!(bridge.flush(WAIT));
        let stop = Arc::new(AtomicBool::new(false));
        let started = Instant::now();
        let changers: Vec<_> = (0..8)
            .map(|t| {
                let broker = broker.clone();
                std::thread::spawn(move || {
                    let sub = quiet(&broker);
                    let mut slowest = Duration::ZERO;
                    for i in 0..200 {
                        let op = Instant::now();
                        let name = format!("review.t{t}.{}", i % 7);
                        if i % 2 == 0 {
                            sub.subscribe(name.as_str());
                            sub.unsubscribe(name.as_str());
                        } else {
                            sub.psubscribe(format!("{name}*").as_str());
                            sub.punsubscribe_all();
                        }
                        slowest = slowest.max(op.elapsed());
                    }
                    slowest
                })
            })
            .collect();
        let publisher = {
            let (broker, stop) = (broker.clone(), Arc::clone(&stop));
            std::thread::spawn(move || {
                let mut slowest = Duration::ZERO;
                let mut n = 0;
                while !stop.load(Ordering::SeqCst) {
                    let op = Instant::now();
                    broker.publish("review.live", n.to_string());
                    assert_eq!(read(&live, 1), [n.to_string()]);
                    slowest = slowest.max(op.elapsed());
                    n += 1;
                }
                (slowest, n)
            })
        };
        let slowest: Vec<Duration> = changers.into_iter().map(|c| c.join().unwrap()).collect();
        let all = started.elapsed();
        stop.store(true, Ordering::SeqCst);
        let (publish_slowest, published) = publisher.join().unwrap();
        eprintln!(
            "8 x 200 changes in {all:?}; slowest per thread {slowest:?}; {published} round \
             trips, slowest {publish_slowest:?}"
        );
        assert!(slowest.iter().all(|t| *t < ms(1000)), "{slowest:?}");
        assert!(publish_slowest < ms(1000), "{publish_slowest:?}");
        let after = quiet(&broker);
        after.subscribe("review.after");
        assert_eq!(broker.publish("review.after", "end"), 1);
        assert_eq!(read(&after, 1), ["end"]);
        assert!(bridge.flush(WAIT));
        // `review.after` alone: `live` went with the publishing thread.
        assert_eq!(bridge.stats().subscriptions, 1, "{:?}", bridge.stats());
    }

    /// Attacks: `Broker::close` while threads subscribe, unsubscribe, close and drop handles:
    /// all finish promptly and Redis is left with none of their names.
    #[test]
    fn broker_close_during_subscription_changes_finishes_promptly() {
        let Some(server) = Server::start() else {
            return;
        };
        for round in 0..20 {
            let broker = Broker::<str>::new();
            let bridge = bridge(&broker, &server, Route::ViaRedis);
            let threads: Vec<_> = (0..4)
                .map(|t| {
                    let broker = broker.clone();
                    std::thread::spawn(move || {
                        for i in 0..50 {
                            let sub = quiet(&broker);
                            sub.subscribe(format!("review.c{t}.{i}").as_str());
                            sub.psubscribe(format!("review.c{t}.{i}*").as_str());
                            if i % 3 == 0 {
                                sub.close();
                            } else if i % 3 == 1 {
                                sub.unsubscribe_all();
                            }
                        }
                    })
                })
                .collect();
            std::thread::sleep(ms(round % 10));
            let closing = broker.clone();
            let closed = super::common::within(Duration::from_secs(10), move || closing.close());
            assert!(closed.is_some(), "round {round}: close hung");
            let started = Instant::now();
            for thread in threads {
                thread.join().unwrap();
            }
            assert!(
                started.elapsed() < ms(3000),
                "round {round}: {:?}",
                started.elapsed()
            );
            eventually("Redis to have no names left", || {
                server.connect().call(&["PUBSUB", "NUMPAT"]).int() == 0
                    && server
                        .connect()
                        .call(&["PUBSUB", "CHANNELS"])
                        .strings()
                        .is_empty()
            });
            assert!(drop_within(bridge, Duration::from_secs(5)).is_some());
        }
    }

    /// Attacks: handles dropped, unsubscribed and subscribed while the bridge is being
    /// dropped: both sides finish promptly, `race_rounds()` times.
    #[test]
    fn handles_changed_while_the_bridge_is_dropped_finish_promptly() {
        let Some(server) = Server::start() else {
            return;
        };
        for round in 0..race_rounds() {
            let broker = Broker::<str>::new();
            let bridge = bridge(&broker, &server, Route::ViaRedis);
            let subs: Vec<PubSub<str>> = (0..4)
                .map(|i| {
                    let sub = quiet(&broker);
                    sub.subscribe(format!("review.d{i}").as_str());
                    sub
                })
                .collect();
            let changing = super::common::within(Duration::from_secs(10), {
                let broker = broker.clone();
                move || {
                    for sub in subs {
                        sub.unsubscribe("review.d0");
                        sub.psubscribe("review.d*");
                        drop(sub);
                        drop(quiet(&broker));
                    }
                }
            });
            let dropped = drop_within(bridge, Duration::from_secs(10));
            assert!(dropped.is_some(), "round {round}: the bridge's drop hung");
            assert!(changing.is_some(), "round {round}: the changes hung");
        }
    }

    /// A payload whose drop, for some payloads, drops a handle kept in a slot: so a handle
    /// is dropped on whichever thread lets go of the payload last.
    #[derive(Debug)]
    struct Dropper(String);

    /// Handles for `Dropper`s to drop, by the payload's text, and the threads that did.
    static DROPPED_HANDLES: std::sync::Mutex<Vec<(String, PubSub<Dropper>)>> =
        std::sync::Mutex::new(Vec::new());
    static DROPPED_ON: std::sync::Mutex<Vec<(String, Option<String>)>> =
        std::sync::Mutex::new(Vec::new());

    impl Drop for Dropper {
        fn drop(&mut self) {
            let taken = {
                let mut slot = DROPPED_HANDLES.lock().unwrap();
                let found = slot.iter().position(|(key, _)| *key == self.0);
                found.map(|i| slot.remove(i).1)
            };
            if let Some(handle) = taken {
                let thread = std::thread::current().name().map(str::to_owned);
                drop(handle);
                DROPPED_ON.lock().unwrap().push((self.0.clone(), thread));
            }
        }
    }

    impl Codec for Dropper {
        fn encode(&self) -> std::borrow::Cow<'_, [u8]> {
            std::borrow::Cow::Borrowed(self.0.as_bytes())
        }

        fn decode(bytes: &[u8]) -> Result<Arc<Self>, Box<dyn std::error::Error + Send + Sync>> {
            Ok(Arc::new(Dropper(String::from_utf8(bytes.to_vec())?)))
        }
    }

    fn dropped_on(key: &str) -> Option<Option<String>> {
        let on = DROPPED_ON.lock().unwrap();
        on.iter().find(|(k, _)| k == key).map(|(_, t)| t.clone())
    }

    /// Attacks: a handle dropped on the receiving thread (a payload's `Drop`, the payload
    /// refused by a full `DropNewest` handle): made at once, the bridge goes on delivering.
    #[test]
    fn a_handle_dropped_by_a_payload_on_the_receiving_thread_is_immediate() {
        let Some(server) = Server::start() else {
            return;
        };
        let broker = Broker::<Dropper>::new();
        let bridge = replying_within(&broker, &server.url(), Duration::from_secs(3));
        let full = broker
            .pubsub_builder()
            .capacity(1)
            .overflow(Overflow::DropNewest)
            .ignore_subscribe_messages(true)
            .build();
        full.subscribe("review.full");
        let kept = broker.pubsub();
        kept.subscribe("review.kept");
        DROPPED_HANDLES
            .lock()
            .unwrap()
            .push(("review.recv".to_string(), kept));
        let live = broker
            .pubsub_builder()
            .ignore_subscribe_messages(true)
            .build();
        live.subscribe("review.live");
        assert!(bridge.flush(WAIT));
        let mut plain = server.connect();
        plain.call(&["PUBLISH", "review.full", "fills the queue"]);
        plain.call(&["PUBLISH", "review.full", "review.recv"]);
        eventually("the refused payload's drop", || {
            dropped_on("review.recv").is_some()
        });
        assert_eq!(
            dropped_on("review.recv"),
            Some(Some("fanout-redis-receive".to_string()))
        );
        let started = Instant::now();
        plain.call(&["PUBLISH", "review.live", "after"]);
        let got = live
            .get_message(WAIT)
            .and_then(|m| m.payload().map(|p| p.0.clone()));
        assert_eq!(got.as_deref(), Some("after"));
        assert!(started.elapsed() < ms(1000), "{:?}", started.elapsed());
        eventually("Redis to drop the handle's channel", || {
            numsub(&server, "review.kept") == 0
        });
    }

    /// Attacks: a handle dropped on the publishing thread (a payload's `Drop` once its batch
    /// went out): a change waits for publishes that only this thread can settle, so it must
    /// be made at once there, or every publish stops.
    #[test]
    fn a_handle_dropped_by_a_payload_on_the_publishing_thread_does_not_stall_publishing() {
        let Some(server) = Server::start() else {
            return;
        };
        let url = server.url();
        let outcome = super::common::within(Duration::from_secs(15), move || {
            let broker = Broker::<Dropper>::new();
            let bridge = replying_within(&broker, &url, Duration::from_secs(3));
            let kept = broker.pubsub();
            kept.subscribe("review.kept");
            DROPPED_HANDLES
                .lock()
                .unwrap()
                .push(("review.pub".to_string(), kept));
            assert!(bridge.flush(WAIT));
            let started = Instant::now();
            broker.publish("review.nobody", Dropper("review.pub".to_string()));
            for i in 0..2_000 {
                broker.publish("review.nobody", Dropper(i.to_string()));
            }
            assert!(bridge.flush(WAIT));
            let took = started.elapsed();
            let on = dropped_on("review.pub");
            drop(bridge);
            (took, on)
        });
        let (took, on) = outcome.expect("publishing never resumed");
        assert!(
            took < ms(1000),
            "2,001 publishes took {took:?}; the handle dropped on {on:?}"
        );
    }

    /// Attacks: order under patterns, with remote publishers (another bridged broker, a plain
    /// client) and local ones, on both routes, with Redis holding the pattern already or not:
    /// what Redis ran before `psubscribe` never reaches the handle, what it ran before
    /// `punsubscribe` reaches it before the confirmation. `race_rounds()` rounds in all.
    #[test]
    fn pattern_changes_take_effect_in_redis_order_across_brokers_and_routes() {
        let Some(server) = Server::start() else {
            return;
        };
        let remote = Broker::<str>::new();
        let remote_bridge = bridge(&remote, &server, Route::ViaRedis);
        let mut plain = server.connect();
        let rounds = race_rounds().div_ceil(4);
        for route in [Route::ViaRedis, Route::LocalFirst] {
            let local = Broker::<str>::new();
            let local_bridge = bridge(&local, &server, route);
            for redis_has_it in [true, false] {
                for round in 0..rounds {
                    let case =
                        format!("{route:?}, Redis has the pattern: {redis_has_it}, round {round}");
                    let channel = format!("review.{round}.ab");
                    let pattern = format!("review.{round}.a*");
                    let by_channel = quiet(&local);
                    by_channel.subscribe(channel.as_str());
                    let by_pattern = quiet(&local);
                    if redis_has_it {
                        by_pattern.psubscribe(pattern.as_str());
                    }
                    assert!(local_bridge.flush(WAIT));
                    let h = local.pubsub();
                    remote.publish(&channel, "remote before");
                    assert!(remote_bridge.flush(WAIT));
                    plain.call(&["PUBLISH", &channel, "plain before"]);
                    local.publish(&channel, "local before");
                    h.psubscribe(pattern.as_str());
                    if !redis_has_it {
                        // A remote publisher reaches a new name once Redis has it.
                        assert!(local_bridge.flush(WAIT));
                    }
                    remote.publish(&channel, "remote after");
                    assert!(remote_bridge.flush(WAIT));
                    plain.call(&["PUBLISH", &channel, "plain after"]);
                    assert_eq!(
                        local.publish(&channel, "local after"),
                        if redis_has_it { 3 } else { 2 },
                        "{case}"
                    );
                    h.punsubscribe(pattern.as_str());
                    let mut got = Vec::new();
                    loop {
                        let Some(m) = h.get_message(WAIT) else {
                            panic!("{case}: no punsubscribe confirmation after {got:?}");
                        };
                        let kind = m.kind();
                        got.push(match m.payload() {
                            Some(payload) => format!("{kind} {payload}"),
                            None => kind.to_string(),
                        });
                        if kind == "punsubscribe" {
                            break;
                        }
                    }
                    let (first, last) = (got.remove(0), got.pop());
                    got.sort();
                    let expected = [
                        "pmessage local after",
                        "pmessage plain after",
                        "pmessage remote after",
                    ];
                    assert_eq!(
                        (first.as_str(), got.as_slice(), last.as_deref()),
                        (
                            "psubscribe",
                            &expected.map(String::from)[..],
                            Some("punsubscribe")
                        ),
                        "{case}"
                    );
                    assert_eq!(h.get_message(ms(20)), None, "{case}");
                }
            }
        }
    }

    /// Attacks: the cost of a change. With Redis slow to run publishes (`CLIENT PAUSE ...
    /// WRITE`: PINGs and SUBSCRIBEs still answered) or behind a large backlog, a `subscribe`
    /// does not wait for publishes no local handle was counted for, and the drop of a handle
    /// that never subscribed to anything waits for nothing.
    #[test]
    fn a_change_does_not_wait_for_unrelated_publishes() {
        let Some(server) = Server::start() else {
            return;
        };
        let broker = Broker::<str>::new();
        let bridge = bridge(&broker, &server, Route::ViaRedis);
        let idle = quiet(&broker);
        let other = quiet(&broker);
        assert!(bridge.flush(WAIT));
        // Each change measured while a publish to a channel nobody subscribes waits for Redis.
        let while_paused = |change: &mut dyn FnMut()| {
            server.connect().call(&["CLIENT", "PAUSE", "1500", "WRITE"]);
            broker.publish("review.bulk", "nobody listens here");
            std::thread::sleep(ms(100)); // its batch waits for Redis
            let started = Instant::now();
            change();
            let took = started.elapsed();
            server.connect().call(&["CLIENT", "UNPAUSE"]);
            assert!(bridge.flush(WAIT));
            took
        };
        let mut idle = Some(idle);
        let drop_took = while_paused(&mut || drop(idle.take()));
        let subscribe_took = while_paused(&mut || other.subscribe("review.unrelated"));
        // And with a healthy Redis, behind a large backlog of unrelated publishes.
        for i in 0..50_000 {
            broker.publish("review.bulk", i.to_string());
        }
        let started = Instant::now();
        other.subscribe("review.unrelated.2");
        let behind_backlog = started.elapsed();
        assert!(
            drop_took < ms(300) && subscribe_took < ms(300) && behind_backlog < ms(300),
            "dropping a handle with no subscription took {drop_took:?}, subscribing an \
             unrelated channel {subscribe_took:?}, and {behind_backlog:?} behind 50,000 \
             publishes to a healthy Redis"
        );
    }

    /// Attacks: a change by a handle while the bridge is disconnected is made at once.
    #[test]
    fn changes_while_the_server_is_down_are_immediate() {
        let Some(mut server) = Server::start() else {
            return;
        };
        let broker = Broker::<str>::new();
        let bridge = replying_within(&broker, &server.url(), Duration::from_secs(5));
        let sub = quiet(&broker);
        sub.subscribe("review.a");
        assert!(bridge.flush(WAIT));
        server.kill();
        eventually("the loss to be seen", || !bridge.is_connected());
        let mut slow = Vec::new();
        for i in 0..50 {
            let started = Instant::now();
            let other = quiet(&broker);
            other.subscribe(format!("review.b{i}").as_str());
            other.psubscribe("review.*");
            sub.unsubscribe("review.a");
            sub.subscribe("review.a");
            other.close();
            drop(other);
            let took = started.elapsed();
            if took > ms(100) {
                slow.push(took);
            }
        }
        assert!(slow.is_empty(), "{slow:?}");
        server.restart();
        eventually("the bridge to reconnect", || bridge.is_connected());
        assert!(bridge.flush(WAIT));
        assert_eq!(broker.publish("review.a", "back"), 1);
        let mut got = Vec::new();
        read_until(&sub, "back", &mut got);
    }

    /// Attacks: nothing left waiting after a timeout. Changes made while the server hangs
    /// time out; once it is back (reconnected), changes are quick again and delivery is not
    /// held at any marker.
    #[test]
    fn changes_timed_out_during_a_hang_leave_nothing_waiting() {
        let Some(server) = Server::start() else {
            return;
        };
        let broker = Broker::<str>::new();
        let bridge = hang_aware(&broker, &server, Route::ViaRedis);
        let sub = quiet(&broker);
        sub.subscribe("review.a");
        assert!(bridge.flush(WAIT));
        server.pause();
        let threads: Vec<_> = (0..4)
            .map(|i| {
                let broker = broker.clone();
                std::thread::spawn(move || {
                    let other = quiet(&broker);
                    let started = Instant::now();
                    other.subscribe(format!("review.h{i}").as_str());
                    started.elapsed()
                })
            })
            .collect();
        let took: Vec<Duration> = threads.into_iter().map(|t| t.join().unwrap()).collect();
        server.resume();
        assert!(took.iter().all(|t| *t < ms(1500)), "{took:?}");
        eventually("the bridge to reconnect", || bridge.is_connected());
        assert!(bridge.flush(WAIT));
        let mut got = Vec::new();
        assert_eq!(broker.publish("review.a", "sync"), 1);
        read_until(&sub, "sync", &mut got);
        let after = delivery_after_changes(&broker, &server, &sub, "review.a", 5);
        assert!(after.iter().all(|t| *t < ms(250)), "{after:?}");
    }

    /// Attacks the publishing thread: a server with `timeout 1` closes the idle publishing
    /// connection (a subscription connection is exempt), which the thread cannot see while
    /// idle; a batch sent on it would be lost, so a connection idle for a while is proved
    /// first, and the first publish after every idle second arrives.
    #[test]
    fn a_publish_after_the_server_closed_an_idle_publishing_connection_arrives() {
        let Some(server) = Server::start_with(|_| vec!["--timeout".into(), "1".into()]) else {
            return;
        };
        let broker = Broker::<str>::new();
        let bridge = bridge(&broker, &server, Route::ViaRedis);
        let sub = quiet(&broker);
        sub.subscribe("review.idle");
        assert!(bridge.flush(WAIT));
        let mut got = Vec::new();
        for round in 0..2 {
            std::thread::sleep(ms(2500)); // idle past the server's timeout
            assert_eq!(
                broker.publish("review.idle", format!("after idle {round}")),
                1
            );
            broker.publish("review.idle", format!("end {round}"));
            read_until(&sub, &format!("end {round}"), &mut got);
        }
        let stats = bridge.stats();
        assert_eq!(got, ["after idle 0", "after idle 1"], "{stats:?}");
        assert_eq!(stats.lost, 0, "{stats:?}");
    }

    /// Attacks: a handle dropped inside a worker's handler (its queue not full): made in
    /// order, promptly, and the worker goes on.
    #[test]
    fn a_handle_dropped_inside_a_handler_is_prompt() {
        let Some(server) = Server::start() else {
            return;
        };
        let broker = Broker::<str>::new();
        let bridge = bridge(&broker, &server, Route::ViaRedis);
        let held: Arc<std::sync::Mutex<Vec<PubSub<str>>>> = Arc::default();
        for i in 0..20 {
            let sub = quiet(&broker);
            sub.subscribe(format!("review.held{i}").as_str());
            held.lock().unwrap().push(sub);
        }
        let worker_sub = quiet(&broker);
        let (took_tx, took) = std::sync::mpsc::channel();
        let took_tx = std::sync::Mutex::new(took_tx);
        let dropping = Arc::clone(&held);
        worker_sub.subscribe_with("review.jobs", move |_| {
            let started = Instant::now();
            drop(dropping.lock().unwrap().pop());
            let _ = took_tx.lock().unwrap().send(started.elapsed());
        });
        assert!(bridge.flush(WAIT));
        let worker = worker_sub.run_in_thread().expect("the worker starts");
        for i in 0..20 {
            broker.publish("review.jobs", i.to_string());
        }
        let took: Vec<Duration> = (0..20).map(|_| took.recv_timeout(WAIT).unwrap()).collect();
        assert!(took.iter().all(|t| *t < ms(500)), "{took:?}");
        assert!(bridge.flush(WAIT));
        assert_eq!(bridge.stats().subscriptions, 1, "{:?}", bridge.stats());
        worker.stop();
    }

    /// A payload whose decoding panics on the bytes `panic`.
    struct Panicky(String);

    impl Codec for Panicky {
        fn encode(&self) -> std::borrow::Cow<'_, [u8]> {
            std::borrow::Cow::Borrowed(self.0.as_bytes())
        }

        fn decode(bytes: &[u8]) -> Result<Arc<Self>, Box<dyn std::error::Error + Send + Sync>> {
            assert!(bytes != b"panic", "a payload's decoding panics");
            Ok(Arc::new(Panicky(String::from_utf8(bytes.to_vec())?)))
        }
    }

    /// Attacks: nothing left waiting after a panic on the receiving thread (here a `Codec`
    /// that panics): no marker is reached again, so later subscription changes must not wait
    /// for one (also with `Duration::MAX`). Run in a child process (the test below), so the
    /// deliberate panic on a `fanout-redis-*` thread is not counted by the tests that watch
    /// for such panics.
    #[test]
    fn changes_after_the_receiving_thread_panicked_do_not_wait_for_markers() {
        let child = "bridged::receiving_thread_panic_in_a_child_process";
        let output = Command::new(std::env::current_exe().expect("the test binary"))
            .args(["--exact", child, "--test-threads=1", "--nocapture"])
            .env("FANOUT_BRIDGE_CHILD", "1")
            .output()
            .expect("the child runs");
        let text = String::from_utf8_lossy(&output.stdout).to_string()
            + &String::from_utf8_lossy(&output.stderr);
        let report: Vec<&str> = text.lines().filter(|l| l.contains("CHILD:")).collect();
        assert!(output.status.success(), "{report:#?}");
    }

    /// The child process of the test above; does nothing unless `FANOUT_BRIDGE_CHILD` is set.
    #[test]
    fn receiving_thread_panic_in_a_child_process() {
        if std::env::var_os("FANOUT_BRIDGE_CHILD").is_none() {
            return;
        }
        let Some(server) = Server::start() else {
            return;
        };
        let broker = Broker::<Panicky>::new();
        let bridge = replying_within(&broker, &server.url(), Duration::from_secs(2));
        let sub = broker
            .pubsub_builder()
            .ignore_subscribe_messages(true)
            .build();
        sub.subscribe("review.p");
        assert!(bridge.flush(WAIT));
        server.connect().call(&["PUBLISH", "review.p", "panic"]);
        std::thread::sleep(ms(200));
        let mut took = Vec::new();
        for i in 0..3 {
            let other = broker.pubsub();
            let started = Instant::now();
            other.subscribe(format!("review.q{i}").as_str());
            took.push(started.elapsed());
            std::mem::forget(other);
        }
        let slow = took.iter().any(|t| *t >= ms(500));
        eprintln!(
            "CHILD: connected: {}; each subscribe took {took:?}",
            bridge.is_connected()
        );
        std::mem::forget(bridge);
        assert!(
            !slow,
            "CHILD: a subscribe waited for a marker that cannot come"
        );
    }
}
