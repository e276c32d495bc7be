//! A `gossipnet testnet` run by a test: started with `--json`, its table
//! parsed, its standard error kept for waits and failure messages, and
//! stopped (SIGTERM, then by force) when the test ends. Also the small HTTP
//! and polling helpers that tests of the control API share.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc::{sync_channel, Receiver, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;

use super::{bin, TempDir, DEADLINE};

/// The pause between two looks at something that is not there yet.
pub const POLL: Duration = Duration::from_millis(200);
/// One HTTP request; a crawl of a local testnet is far quicker.
pub const REQUEST: Duration = Duration::from_secs(30);
/// Lines of the testnet's log kept for waits and failure messages.
const LOG_LINES: usize = 2000;

/// Calls `probe` until it succeeds; after the deadline, fails with what
/// was awaited and the last thing `probe` saw.
pub fn poll<T>(what: &str, mut probe: impl FnMut() -> Result<T, String>) -> T {
    let until = Instant::now() + DEADLINE;
    loop {
        match probe() {
            Ok(value) => return value,
            Err(last) if Instant::now() >= until => {
                panic!("timed out waiting for {what}; last seen: {last}")
            }
            Err(_) => std::thread::sleep(POLL),
        }
    }
}

pub fn str_field<'a>(v: &'a Value, key: &str) -> &'a str {
    v[key]
        .as_str()
        .unwrap_or_else(|| panic!("no string '{key}' in {v}"))
}

/// Reachable non-seed nodes in a crawl, and how many components their
/// overlay links make; an error if the crawl breaks docs/API.md's shape.
pub fn overlay(topo: &Value) -> Result<(usize, usize), String> {
    fn id(v: &Value) -> Result<&str, String> {
        v.as_str()
            .ok_or_else(|| format!("a node id is not a string, as docs/API.md says: {v}"))
    }
    let nodes = topo["nodes"]
        .as_array()
        .ok_or_else(|| format!("no list of nodes in {topo}"))?;
    let mut parent = BTreeMap::new();
    for n in nodes {
        let n_id = id(&n["id"])?;
        if n["reachable"] == true && n["seed"] != true {
            parent.insert(n_id, n_id);
        }
    }
    fn root<'a>(parent: &BTreeMap<&'a str, &'a str>, mut x: &'a str) -> &'a str {
        while parent[x] != x {
            x = parent[x];
        }
        x
    }
    let links = topo["links"]
        .as_array()
        .ok_or_else(|| format!("no list of links in {topo}"))?;
    for link in links {
        let (a, b) = (id(&link[0])?, id(&link[1])?);
        if parent.contains_key(a) && parent.contains_key(b) {
            let (ra, rb) = (root(&parent, a), root(&parent, b));
            parent.insert(ra, rb);
        }
    }
    let roots: BTreeSet<&str> = parent.keys().map(|&x| root(&parent, x)).collect();
    Ok((parent.len(), roots.len()))
}

/// `GET` on a node's control API, with its cookie.
pub fn api_get(node: &Value, path: &str) -> Result<Value, String> {
    let (url, auth) = endpoint(node, path);
    answer(
        &url,
        ureq::get(&url)
            .timeout(REQUEST)
            .set("Authorization", &auth)
            .call(),
    )
}

/// The URL of `path` on a node's API, and its authorization header.
fn endpoint(node: &Value, path: &str) -> (String, String) {
    (
        format!("http://{}{path}", str_field(node, "api")),
        format!("Bearer {}", str_field(node, "cookie")),
    )
}

/// An API answer as JSON, or what went wrong.
fn answer(url: &str, response: Result<ureq::Response, ureq::Error>) -> Result<Value, String> {
    match response {
        Ok(response) => response
            .into_json::<Value>()
            .map_err(|e| format!("{url}: bad JSON: {e}")),
        Err(ureq::Error::Status(code, response)) => Err(format!(
            "{url}: {code} {}",
            response.into_string().unwrap_or_default()
        )),
        Err(e) => Err(format!("{url}: {e}")),
    }
}

/// A running `gossipnet testnet`: one seed and `NODES` nodes.
pub struct Testnet {
    child: Child,
    /// The JSON line it printed once every node was up.
    info: Value,
    /// The last lines it wrote to stderr.
    log: Arc<Mutex<VecDeque<String>>>,
}

impl Testnet {
    pub fn start(dir: &TempDir, nodes: usize, seeds: usize, extra: &[&str]) -> Testnet {
        let mut child = Command::new(bin())
            .args([
                "testnet",
                "--nodes",
                &nodes.to_string(),
                "--seeds",
                &seeds.to_string(),
                "--json",
                "--dir",
            ])
            .arg(dir.path())
            .args(extra)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start gossipnet testnet");
        let log = Arc::new(Mutex::new(VecDeque::new()));
        let stderr = child.stderr.take().unwrap();
        let keep = log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                let mut log = keep.lock().unwrap();
                if log.len() == LOG_LINES {
                    log.pop_front();
                }
                log.push_back(line);
            }
        });
        let lines = lines_of(child.stdout.take().unwrap());
        let mut net = Testnet {
            child,
            info: Value::Null,
            log,
        };
        let until = Instant::now() + DEADLINE;
        while net.info.is_null() {
            let left = until.saturating_duration_since(Instant::now());
            match lines.recv_timeout(left) {
                Ok(line) => {
                    if let Ok(info) = serde_json::from_str::<Value>(&line) {
                        if info["nodes"].is_array() {
                            net.info = info;
                        }
                    }
                }
                Err(RecvTimeoutError::Timeout) => {
                    panic!("the testnet printed no JSON line in time\n{}", net.log())
                }
                Err(RecvTimeoutError::Disconnected) => {
                    panic!(
                        "the testnet ended before printing its JSON line\n{}",
                        net.log()
                    )
                }
            }
        }
        assert_eq!(
            net.nodes().iter().filter(|n| n["role"] == "node").count(),
            nodes,
            "nodes in {}",
            net.info
        );
        net
    }

    pub fn nodes(&self) -> &[Value] {
        self.info["nodes"].as_array().map_or(&[], Vec::as_slice)
    }

    pub fn node(&self, name: &str) -> &Value {
        self.nodes()
            .iter()
            .find(|n| n["name"] == name)
            .unwrap_or_else(|| panic!("no {name} in {}", self.info))
    }

    /// Waits until a line of its standard error contains `text`.
    pub fn wait_log(&self, text: &str) -> bool {
        let until = Instant::now() + DEADLINE;
        loop {
            if self.log.lock().unwrap().iter().any(|l| l.contains(text)) {
                return true;
            }
            if Instant::now() >= until {
                return false;
            }
            std::thread::sleep(POLL);
        }
    }

    pub fn log(&self) -> String {
        let log = self.log.lock().unwrap();
        log.iter().cloned().collect::<Vec<_>>().join("\n")
    }

    /// SIGINT (what Ctrl-C sends), then the exit status (within the
    /// deadline).
    pub fn stop(&mut self) -> ExitStatus {
        signal("INT", self.child.id());
        let until = Instant::now() + DEADLINE;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(
                Instant::now() < until,
                "the testnet did not exit within {DEADLINE:?} of SIGINT\n{}",
                self.log()
            );
            std::thread::sleep(POLL);
        }
    }
}

impl Drop for Testnet {
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_some() {
            return;
        }
        // Politely first, so it stops its nodes; if it will not, kill it
        // and its nodes.
        signal("TERM", self.child.id());
        let until = Instant::now() + DEADLINE;
        while Instant::now() < until {
            if self.child.try_wait().ok().flatten().is_some() {
                return;
            }
            std::thread::sleep(POLL);
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        for pid in self.nodes().iter().filter_map(|n| n["pid"].as_u64()) {
            signal("KILL", pid as u32);
        }
    }
}

pub fn signal(name: &str, pid: u32) {
    let _ = Command::new("kill")
        .args([format!("-{name}"), pid.to_string()])
        .status();
}

/// Every line of `stream`, through a small channel a reader thread fills.
/// Once the receiver is gone the thread still reads, and drops, the rest:
/// a closed pipe would make the process's next print fail.
pub fn lines_of(stream: impl std::io::Read + Send + 'static) -> Receiver<String> {
    let (tx, rx) = sync_channel(64);
    std::thread::spawn(move || {
        for line in BufReader::new(stream).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    rx
}

/// `POST` of a JSON body to a node's control API, with its cookie.
pub fn api_post(node: &Value, path: &str, body: Value) -> Result<Value, String> {
    let (url, auth) = endpoint(node, path);
    let response = ureq::post(&url)
        .timeout(REQUEST)
        .set("Authorization", &auth)
        .send_json(body);
    answer(&url, response)
}

/// What one run of the CLI did.
pub struct Run {
    pub ok: bool,
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

/// Runs `gossipnet ARGS` to the end.
pub fn cli(args: &[&str]) -> Run {
    let out = Command::new(bin())
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run gossipnet");
    Run {
        ok: out.status.success(),
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}
