//! Helpers for tests that run real `gossipnet` processes: spawn one, wait
//! for its readiness line, feed its standard input, watch its output and
//! logs with deadlines (never sleeps), and kill it when the test ends.

#![allow(dead_code)]

pub mod netns;
pub mod testnet;

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

/// How long a test waits for anything a node should do (generous: the
/// machine may be busy running other tests).
pub const DEADLINE: Duration = Duration::from_secs(60);

/// The binary under test.
pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_gossipnet")
}

/// A listening socket on loopback, on a port the kernel picked. It is held
/// from here until the node it is handed to ([`Proc::start_on`]) owns it,
/// so no other process can take the port in between; tests use it where
/// nodes must know each other's addresses before they start. Everywhere
/// else a node listens on port 0 and the test reads its address back from
/// the readiness line.
pub fn listener() -> TcpListener {
    TcpListener::bind("127.0.0.1:0").expect("bind a loopback listener")
}

/// The port of a listener.
pub fn port_of(listener: &TcpListener) -> u16 {
    listener.local_addr().expect("listener address").port()
}

/// An address nobody can dial: a loopback socket bound to a port but never
/// listening, so connections to it are refused, and held by the caller (in
/// the returned socket) so no other process can start listening there.
pub fn undialable() -> (socket2::Socket, String) {
    use socket2::{Domain, Socket, Type};
    let socket = Socket::new(Domain::IPV4, Type::STREAM, None).expect("a socket");
    let any: std::net::SocketAddr = "127.0.0.1:0".parse().unwrap();
    socket.bind(&any.into()).expect("bind a loopback port");
    let addr = socket
        .local_addr()
        .ok()
        .and_then(|a| a.as_socket())
        .expect("bound address");
    (socket, addr.to_string())
}

/// A tag unique to this test process and call (for file, namespace and
/// marker names).
pub fn unique() -> String {
    static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    format!("{}-{n}", std::process::id())
}

/// Lines a process wrote to one stream, with a condition variable to wait
/// for more.
#[derive(Default)]
pub struct Lines {
    lines: Mutex<Vec<String>>,
    more: Condvar,
}

impl Lines {
    /// Waits until `pred` holds on the lines, or the deadline passes.
    pub fn wait(&self, deadline: Duration, mut pred: impl FnMut(&[String]) -> bool) -> bool {
        let until = Instant::now() + deadline;
        let mut lines = self.lines.lock().unwrap();
        loop {
            if pred(&lines) {
                return true;
            }
            let now = Instant::now();
            if now >= until {
                return false;
            }
            lines = self.more.wait_timeout(lines, until - now).unwrap().0;
        }
    }

    /// A copy of the lines so far.
    pub fn snapshot(&self) -> Vec<String> {
        self.lines.lock().unwrap().clone()
    }

    fn push(&self, line: String) {
        self.lines.lock().unwrap().push(line);
        self.more.notify_all();
    }
}

/// A running `gossipnet` process.
pub struct Proc {
    pub name: String,
    child: Child,
    stdin: Option<ChildStdin>,
    pub stdout: Arc<Lines>,
    pub stderr: Arc<Lines>,
    /// The address it listens on (from its readiness line).
    pub addr: String,
    /// Its node id (from its readiness line).
    pub id: String,
}

impl Proc {
    /// Starts `gossipnet ARGS` and waits for its readiness line.
    pub fn start(name: &str, args: &[String]) -> Proc {
        Self::start_in(None, name, args)
    }

    /// Starts `gossipnet ARGS` on a listening socket bound by the test
    /// (handed over as descriptor 3 with `LISTEN_FDS=1`, as systemd's socket
    /// activation does), and waits for its readiness line.
    pub fn start_on(name: &str, args: &[String], listener: TcpListener) -> Proc {
        Self::spawn(None, name, args, Some(listener))
    }

    /// Starts `gossipnet ARGS` inside a network namespace (`ip netns exec`).
    pub fn start_in(netns: Option<&str>, name: &str, args: &[String]) -> Proc {
        Self::spawn(netns, name, args, None)
    }

    fn spawn(
        netns: Option<&str>,
        name: &str,
        args: &[String],
        listener: Option<TcpListener>,
    ) -> Proc {
        let mut command = match netns {
            Some(ns) => {
                let mut c = Command::new("ip");
                c.args(["netns", "exec", ns, bin()]);
                c
            }
            None => Command::new(bin()),
        };
        if let Some(listener) = listener {
            use command_fds::{CommandFdExt, FdMapping};
            command
                .fd_mappings(vec![FdMapping {
                    parent_fd: listener.into(),
                    child_fd: 3,
                }])
                .expect("one descriptor mapping")
                .env("LISTEN_FDS", "1");
        }
        let mut child = command
            .args(args)
            .env(
                "RUST_LOG",
                std::env::var("GN_TEST_LOG").unwrap_or_else(|_| "info".into()),
            )
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start gossipnet");
        let stdout = Arc::new(Lines::default());
        let stderr = Arc::new(Lines::default());
        pump(child.stdout.take().unwrap(), stdout.clone());
        pump(child.stderr.take().unwrap(), stderr.clone());
        let stdin = child.stdin.take();
        let mut proc = Proc {
            name: name.to_string(),
            child,
            stdin,
            stdout,
            stderr,
            addr: String::new(),
            id: String::new(),
        };
        let mut ready = None;
        let ok = proc.stderr.wait(DEADLINE, |lines| {
            ready = lines.iter().find_map(|l| parse_ready(l));
            ready.is_some()
        });
        assert!(
            ok,
            "{name} never became ready; stderr:\n{}",
            proc.stderr.snapshot().join("\n")
        );
        let (addr, id) = ready.unwrap();
        proc.addr = addr;
        proc.id = id;
        proc
    }

    /// The first 8 characters of the id, as logs show it.
    pub fn short(&self) -> &str {
        &self.id[..8]
    }

    /// Writes a line to its standard input (it broadcasts it).
    pub fn say(&mut self, text: &str) {
        let stdin = self.stdin.as_mut().expect("stdin open");
        writeln!(stdin, "{text}").expect("write to node");
        stdin.flush().unwrap();
    }

    /// Waits until a stdout line contains `text`.
    pub fn wait_output(&self, text: &str) -> bool {
        self.stdout
            .wait(DEADLINE, |l| l.iter().any(|x| x.contains(text)))
    }

    /// Waits until a log line contains every one of `parts`.
    pub fn wait_log(&self, parts: &[&str]) -> bool {
        self.stderr.wait(DEADLINE, |l| {
            l.iter().any(|x| parts.iter().all(|p| x.contains(p)))
        })
    }

    /// How many stdout lines contain `text`.
    pub fn count_output(&self, text: &str) -> usize {
        self.stdout
            .snapshot()
            .iter()
            .filter(|l| l.contains(text))
            .count()
    }

    /// Waits until the node logged at least `n` "neighbor up" lines.
    pub fn wait_neighbors(&self, n: usize) -> bool {
        self.stderr.wait(DEADLINE, |l| {
            l.iter().filter(|x| x.contains("neighbor up")).count() >= n
        })
    }

    /// SIGKILL: the process dies with no goodbye.
    pub fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// SIGTERM, then waits for the exit status.
    pub fn terminate(&mut self) -> ExitStatus {
        signal(self.child.id(), "TERM");
        self.wait_exit()
    }

    /// Waits for the process to exit (within the deadline).
    pub fn wait_exit(&mut self) -> ExitStatus {
        let until = Instant::now() + DEADLINE;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(Instant::now() < until, "{} did not exit", self.name);
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Whether the process is still running.
    pub fn running(&mut self) -> bool {
        self.child.try_wait().unwrap().is_none()
    }

    /// Everything it logged, for failure messages.
    pub fn logs(&self) -> String {
        format!(
            "--- {} stderr ---\n{}\n--- {} stdout ---\n{}",
            self.name,
            self.stderr.snapshot().join("\n"),
            self.name,
            self.stdout.snapshot().join("\n")
        )
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn pump(stream: impl std::io::Read + Send + 'static, lines: Arc<Lines>) {
    std::thread::spawn(move || {
        for line in BufReader::new(stream).lines() {
            match line {
                Ok(line) => lines.push(line),
                Err(_) => break,
            }
        }
    });
}

/// Parses `gossipnet node NAME listening on ADDR as ID`.
fn parse_ready(line: &str) -> Option<(String, String)> {
    let rest = line.split(" listening on ").nth(1)?;
    let (addr, id) = rest.split_once(" as ")?;
    Some((addr.trim().to_string(), id.trim().to_string()))
}

fn signal(pid: u32, sig: &str) {
    let _ = Command::new("kill")
        .args([format!("-{sig}"), pid.to_string()])
        .status();
}

/// A temporary directory removed when dropped.
pub struct TempDir(PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        let path = std::env::temp_dir().join(format!("gossipnet-test-{tag}-{}", unique()));
        std::fs::create_dir_all(&path).unwrap();
        TempDir(path)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }

    pub fn join(&self, p: &str) -> String {
        self.0.join(p).display().to_string()
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Turns string slices into owned args.
pub fn args(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| s.to_string()).collect()
}

/// ESTABLISHED TCP sockets in this network namespace whose local port is
/// one of `ports` (each connection to a listener shows once on its side).
pub fn established_to(ports: &[u16]) -> usize {
    let mut count = 0;
    for file in ["/proc/net/tcp", "/proc/net/tcp6"] {
        let Ok(text) = std::fs::read_to_string(file) else {
            continue;
        };
        for line in text.lines().skip(1) {
            let fields: Vec<&str> = line.split_whitespace().collect();
            if fields.len() < 4 || fields[3] != "01" {
                continue;
            }
            let local_port = fields[1]
                .rsplit(':')
                .next()
                .and_then(|p| u16::from_str_radix(p, 16).ok());
            if local_port.is_some_and(|p| ports.contains(&p)) {
                count += 1;
            }
        }
    }
    count
}

/// Sends one line from each node and checks every other node prints it
/// exactly once (and no node prints its own).
pub fn exchange_all(nodes: &mut [Proc], tag: &str) {
    for node in nodes.iter_mut() {
        let text = format!("{tag} from {}", node.name);
        node.say(&text);
    }
    for i in 0..nodes.len() {
        for j in 0..nodes.len() {
            if i == j {
                continue;
            }
            let text = format!("{tag} from {}", nodes[j].name);
            assert!(
                nodes[i].wait_output(&text),
                "{} never printed '{text}'\n{}\n{}",
                nodes[i].name,
                nodes[i].logs(),
                nodes[j].logs()
            );
        }
    }
    // A marker sent after everything: once it has arrived everywhere, any
    // duplicate of the earlier lines would have arrived too (links are
    // ordered and the tree carries both).
    let marker = format!("{tag} marker");
    nodes[0].say(&marker);
    for n in nodes.iter().skip(1) {
        assert!(n.wait_output(&marker));
    }
    for i in 0..nodes.len() {
        for j in 0..nodes.len() {
            if i != j {
                let text = format!("{tag} from {}", nodes[j].name);
                assert_eq!(
                    nodes[i].count_output(&text),
                    1,
                    "{} printed '{text}' twice",
                    nodes[i].name
                );
            }
        }
        let own = format!("{tag} from {}", nodes[i].name);
        assert_eq!(
            nodes[i].count_output(&own),
            0,
            "a node printed its own line"
        );
    }
}
