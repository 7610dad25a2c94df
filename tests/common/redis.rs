//! A `redis-server` of the test's own on a free loopback port, and a minimal RESP2 client,
//! so tests can compare `fanout` with the real thing. No traffic leaves 127.0.0.1.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A running `redis-server`, stopped when dropped.
pub struct Server {
    child: Child,
    pub port: u16,
    /// Arguments beyond the defaults, kept for `restart`.
    extra: Vec<String>,
}

impl Server {
    /// Starts `redis-server` without persistence on a free loopback port.
    ///
    /// Returns `None`, after printing why, when `redis-server` is not installed and the test
    /// is not running in CI (where `.ci/run` installs it, so a missing server fails).
    pub fn start() -> Option<Server> {
        Server::start_with(|_| Vec::new())
    }

    /// `start`, with more arguments for `redis-server`, made from a second free port (for a
    /// TLS port, say) when the arguments need one.
    pub fn start_with(extra: impl Fn(u16) -> Vec<String>) -> Option<Server> {
        // Another test may pick the same free port at the same moment; the server that loses
        // the race exits, so check that the one answering is ours, and try again if not.
        for _ in 0..10 {
            let port = TcpListener::bind("127.0.0.1:0")
                .ok()?
                .local_addr()
                .ok()?
                .port();
            let second = TcpListener::bind("127.0.0.1:0")
                .ok()?
                .local_addr()
                .ok()?
                .port();
            let extra = extra(second);
            let args: Vec<&str> = extra.iter().map(String::as_str).collect();
            let child = match spawn_with(port, &args) {
                Ok(child) => child,
                Err(e) if std::env::var_os("CI").is_none() => {
                    skipped(&format!("redis-server could not start ({e}); `apt-get install redis-server` to run it"));
                    return None;
                }
                Err(e) => panic!("redis-server could not start in CI: {e}"),
            };
            let mut server = Server { child, port, extra };
            if server.wait_until_ours() {
                return Some(server);
            }
        }
        panic!("could not start a redis-server of this test's own on a free port");
    }

    /// `redis://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Kills the server (as a crash would: no goodbye to clients).
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Stops the server process (SIGSTOP): it keeps its connections but answers nothing, as
    /// a hung server does, until `resume`.
    pub fn pause(&self) {
        self.signal("-STOP");
    }

    /// Lets a paused server go on (SIGCONT).
    pub fn resume(&self) {
        self.signal("-CONT");
    }

    fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .args([signal, &self.child.id().to_string()])
            .status()
            .expect("kill runs");
        assert!(status.success(), "kill {signal} failed");
    }

    /// Starts a new server on the same port after `kill`.
    pub fn restart(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let extra: Vec<&str> = self.extra.iter().map(String::as_str).collect();
            self.child = spawn_with(self.port, &extra).expect("redis-server starts again");
            if self.wait_until_ours() {
                return;
            }
            assert!(Instant::now() < deadline, "port {} stayed taken", self.port);
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Waits for the server to answer, and tells whether the one answering is this child.
    fn wait_until_ours(&mut self) -> bool {
        let deadline = Instant::now() + Duration::from_secs(10);
        let ours = format!("process_id:{}", self.child.id());
        loop {
            if let Ok(Some(_)) = self.child.try_wait() {
                return false; // it exited: the port was taken
            }
            if let Some(pid_line) = self.answering_pid() {
                return pid_line == ours;
            }
            assert!(
                Instant::now() < deadline,
                "redis-server did not answer on {}",
                self.port
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The `process_id:N` line of the server answering on the port, if one answers in full.
    fn answering_pid(&self) -> Option<String> {
        let mut stream = TcpStream::connect(("127.0.0.1", self.port)).ok()?;
        stream.set_read_timeout(Some(Duration::from_secs(1))).ok()?;
        stream
            .write_all(b"*2\r\n$4\r\nINFO\r\n$6\r\nserver\r\n")
            .ok()?;
        let mut text = String::new();
        let mut buf = [0u8; 4096];
        loop {
            let n = stream.read(&mut buf).ok()?;
            if n == 0 {
                return None;
            }
            text.push_str(&String::from_utf8_lossy(&buf[..n]));
            if let Some(line) = text
                .lines()
                .find(|l| l.starts_with("process_id:") && text.contains(&format!("{l}\r\n")))
            {
                return Some(line.trim().to_string());
            }
        }
    }

    pub fn connect(&self) -> Connection {
        let stream = TcpStream::connect(("127.0.0.1", self.port)).expect("connect to redis-server");
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        Connection {
            reader: BufReader::new(stream.try_clone().unwrap()),
            writer: stream,
        }
    }
}

/// `redis-server` without persistence on `port`, loopback only, with `extra` arguments.
fn spawn_with(port: u16, extra: &[&str]) -> std::io::Result<Child> {
    Command::new("redis-server")
        .args([
            "--port",
            &port.to_string(),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
        ])
        .args(extra)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
}

/// A Redis Cluster of the test's own: masters only, on free loopback ports (each with its
/// cluster bus port, +10000, free too), in a temporary directory; stopped when dropped.
pub struct Cluster {
    pub nodes: Vec<Server>,
    dir: std::path::PathBuf,
}

impl Cluster {
    /// Starts `masters` nodes and joins them with `redis-cli --cluster create`; `None` (with
    /// the reason printed) outside CI when `redis-server` is missing.
    pub fn start(masters: usize) -> Option<Cluster> {
        let has_cli = Command::new("redis-cli")
            .arg("--version")
            .stdout(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if !has_cli {
            assert!(
                std::env::var_os("CI").is_none(),
                "CI must install redis-cli"
            );
            skipped("redis-cli is not installed (`apt-get install redis-server`)");
            return None;
        }
        let dir = std::env::temp_dir().join(format!(
            "fanout-cluster-{}-{:?}",
            std::process::id(),
            std::thread::current().id()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let mut cluster = Cluster {
            nodes: Vec::new(),
            dir,
        };
        while cluster.nodes.len() < masters {
            let port = TcpListener::bind("127.0.0.1:0")
                .ok()?
                .local_addr()
                .ok()?
                .port();
            if port > 55_000 || TcpListener::bind(("127.0.0.1", port + 10_000)).is_err() {
                continue;
            }
            let dir = cluster.dir.to_str().unwrap().to_owned();
            let config = format!("nodes-{port}.conf");
            let extra = [
                "--cluster-enabled",
                "yes",
                "--cluster-config-file",
                &config,
                "--cluster-node-timeout",
                "2000",
                "--dir",
                &dir,
            ];
            let child = match spawn_with(port, &extra) {
                Ok(child) => child,
                Err(e) if std::env::var_os("CI").is_none() => {
                    skipped(&format!("redis-server could not start ({e})"));
                    return None;
                }
                Err(e) => panic!("redis-server could not start in CI: {e}"),
            };
            let mut server = Server {
                child,
                port,
                extra: extra.iter().map(|s| s.to_string()).collect(),
            };
            if server.wait_until_ours() {
                cluster.nodes.push(server);
            }
        }
        let mut create = Command::new("redis-cli");
        create.args(["--cluster", "create"]);
        for node in &cluster.nodes {
            create.arg(format!("127.0.0.1:{}", node.port));
        }
        let status = create
            .args(["--cluster-replicas", "0", "--cluster-yes"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .expect("redis-cli runs");
        assert!(status.success(), "redis-cli --cluster create failed");
        cluster.wait_ok();
        Some(cluster)
    }

    /// Waits until every node says `cluster_state:ok`.
    pub fn wait_ok(&self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        for node in &self.nodes {
            loop {
                let info = node.connect().call(&["CLUSTER", "INFO"]);
                let Reply::Bulk(Some(text)) = info else {
                    panic!("CLUSTER INFO: {info:?}")
                };
                if String::from_utf8_lossy(&text).contains("cluster_state:ok") {
                    break;
                }
                assert!(Instant::now() < deadline, "the cluster never became ok");
                std::thread::sleep(Duration::from_millis(50));
            }
        }
    }

    /// The first node's URL: a cluster client finds the others from it.
    pub fn url(&self) -> String {
        self.nodes[0].url()
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        self.nodes.clear();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A RESP2 reply.
#[derive(Debug, Clone, PartialEq)]
pub enum Reply {
    Status(String),
    Error(String),
    Int(i64),
    Bulk(Option<Vec<u8>>),
    Array(Vec<Reply>),
}

impl Reply {
    pub fn int(&self) -> i64 {
        match self {
            Reply::Int(i) => *i,
            other => panic!("expected an integer, got {other:?}"),
        }
    }

    /// An array of bulk strings, as text.
    pub fn strings(&self) -> Vec<String> {
        match self {
            Reply::Array(items) => items
                .iter()
                .map(|i| match i {
                    Reply::Bulk(Some(b)) => String::from_utf8(b.clone()).unwrap(),
                    other => panic!("expected a bulk string, got {other:?}"),
                })
                .collect(),
            other => panic!("expected an array, got {other:?}"),
        }
    }
}

/// One connection; commands are pipelined by `send` and answered by `read`.
pub struct Connection {
    reader: BufReader<TcpStream>,
    writer: TcpStream,
}

impl Connection {
    pub fn send<S: AsRef<[u8]>>(&mut self, args: &[S]) {
        let mut out = format!("*{}\r\n", args.len()).into_bytes();
        for arg in args {
            let arg = arg.as_ref();
            out.extend_from_slice(format!("${}\r\n", arg.len()).as_bytes());
            out.extend_from_slice(arg);
            out.extend_from_slice(b"\r\n");
        }
        self.writer.write_all(&out).unwrap();
    }

    pub fn read(&mut self) -> Reply {
        let mut line = String::new();
        self.reader.read_line(&mut line).unwrap();
        let (kind, rest) = line.trim_end().split_at(1);
        match kind {
            "+" => Reply::Status(rest.to_string()),
            "-" => Reply::Error(rest.to_string()),
            ":" => Reply::Int(rest.parse().unwrap()),
            "$" => {
                let len: i64 = rest.parse().unwrap();
                if len < 0 {
                    return Reply::Bulk(None);
                }
                let mut data = vec![0; len as usize + 2];
                self.reader.read_exact(&mut data).unwrap();
                data.truncate(len as usize);
                Reply::Bulk(Some(data))
            }
            "*" => {
                let len: i64 = rest.parse().unwrap();
                Reply::Array((0..len.max(0)).map(|_| self.read()).collect())
            }
            other => panic!("unexpected RESP type {other:?} in {line:?}"),
        }
    }

    pub fn call<S: AsRef<[u8]>>(&mut self, args: &[S]) -> Reply {
        self.send(args);
        self.read()
    }
}

/// Says that the running test skipped its work, where the user sees it: straight to the
/// process's stderr, past the test harness's capture (which hides `eprintln!` of passing tests).
pub fn skipped(reason: &str) {
    use std::io::Write;
    let test = std::thread::current()
        .name()
        .unwrap_or("a test")
        .to_string();
    let _ = writeln!(std::io::stderr().lock(), "\nSKIPPED {test}: {reason}");
}
