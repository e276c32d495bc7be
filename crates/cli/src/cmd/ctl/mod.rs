//! Subcommands that talk to a running node through its control API:
//! `status`, `peers`, `send`, `dm`, `leave`, `history`, and `network
//! status|size|graph|shutdown`; plus `network init`, which writes a new
//! network's config. `history` reads the data dir itself when its node is
//! not running.
//!
//! The node is found through its data directory (`--data-dir`, or `--name`
//! for the default one of that name), whose `control.json` gives the API's
//! address and cookie; or through `--api ADDR` with the cookie from
//! `--cookie` or `GOSSIPNET_COOKIE`. With none of these, the one node
//! running under the default data root is used.
//!
//! `history` lives in `ctl/history.rs`, the `network` subcommands in
//! `ctl/network.rs`.

use std::io::{BufRead, BufReader, IsTerminal};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use clap::{Args, Subcommand, ValueEnum};
use gossipnet_node::control::{ControlFile, CONTROL_FILE};
use gossipnet_node::crawl::Topology;
use gossipnet_node::{data_root, default_data_dir};
use gossipnet_proto::{NodeId, SecretKey};
use serde_json::{json, Value};

use crate::graph;

/// `println!` that does not panic when standard output is a closed pipe
/// (`gossipnet status | head -3`).
macro_rules! outln {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stdout().lock(), $($arg)*);
    }};
}

/// `print!`, likewise.
macro_rules! out {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = write!(std::io::stdout().lock(), $($arg)*);
    }};
}

/// Time allowed for a request to answer, but for crawls, which take as long
/// as the network is big.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// A crawl's progress is shown at most this often.
const PROGRESS_EVERY: Duration = Duration::from_millis(250);

mod history;
mod network;

pub use history::{history, HistoryArgs};
pub use network::{network, NetworkCommand};

/// Which node to talk to.
#[derive(Debug, Args, Clone)]
pub struct Target {
    /// The node's data directory.
    #[arg(long, value_name = "DIR", global = true)]
    data_dir: Option<PathBuf>,
    /// The node's name (its default data directory).
    #[arg(long, global = true)]
    name: Option<String>,
    /// The node's control API address (needs --cookie or GOSSIPNET_COOKIE
    /// unless a data directory under the default root names it).
    #[arg(long, value_name = "ADDR", global = true)]
    api: Option<SocketAddr>,
    /// The API cookie, with --api.
    #[arg(long, env = "GOSSIPNET_COOKIE", hide_env_values = true, global = true)]
    cookie: Option<String>,
    /// Print JSON instead of text.
    #[arg(long, global = true)]
    json: bool,
}

/// `gossipnet send`.
#[derive(Debug, Args)]
pub struct SendArgs {
    #[command(flatten)]
    target: Target,
    /// The text to broadcast.
    #[arg(required = true, num_args = 1..)]
    text: Vec<String>,
}

/// `gossipnet dm`.
#[derive(Debug, Args)]
pub struct DmArgs {
    #[command(flatten)]
    target: Target,
    /// The recipient: a full node id, or the start of the id of a peer the
    /// node knows.
    id: String,
    /// The text.
    #[arg(required = true, num_args = 1..)]
    text: Vec<String>,
}

/// A connection to one node's API.
struct Client {
    base: String,
    cookie: String,
    agent: ureq::Agent,
}

impl Client {
    fn connect(target: &Target) -> Result<Client> {
        let control = find_control(target)?;
        let (api, cookie) = match (target.api, &target.cookie, control) {
            (Some(api), Some(cookie), _) => (api, cookie.clone()),
            (_, _, Some(c)) => (c.api, c.cookie),
            _ => bail!("no node to talk to; name one with --data-dir, --name or --api"),
        };
        let agent = ureq::AgentBuilder::new()
            .timeout_connect(Duration::from_secs(5))
            .build();
        Ok(Client {
            base: format!("http://{api}"),
            cookie,
            agent,
        })
    }

    fn request(&self, method: &str, path: &str) -> ureq::Request {
        self.agent
            .request(method, &format!("{}{path}", self.base))
            .set("Authorization", &format!("Bearer {}", self.cookie))
    }

    fn get(&self, path: &str) -> Result<Value> {
        let response = self.request("GET", path).timeout(REQUEST_TIMEOUT).call();
        self.answer(response)
    }

    fn post(&self, path: &str, body: Value) -> Result<Value> {
        let response = self
            .request("POST", path)
            .timeout(REQUEST_TIMEOUT)
            .send_json(body);
        self.answer(response)
    }

    fn answer(&self, response: Result<ureq::Response, ureq::Error>) -> Result<Value> {
        response
            .map_err(|e| self.failure(e))?
            .into_json()
            .context("the node's answer is not JSON")
    }

    /// What a failed request means, in words: the node's own error message,
    /// or that it cannot be reached.
    fn failure(&self, error: ureq::Error) -> anyhow::Error {
        match error {
            ureq::Error::Status(code, r) => {
                let text = r.into_string().unwrap_or_default();
                let message = serde_json::from_str::<Value>(&text)
                    .ok()
                    .and_then(|v| v["error"].as_str().map(str::to_string))
                    .unwrap_or(text);
                anyhow!("the node refused ({code}): {message}")
            }
            e => anyhow!(
                "cannot reach the node's control API at {}: {e}; is the node running?",
                self.base
            ),
        }
    }

    /// Crawls through the node, showing progress on standard error.
    fn crawl(&self) -> Result<Topology> {
        let response = self
            .request("GET", "/api/network?stream=1")
            .call()
            .map_err(|e| self.failure(e))?;
        let reader = BufReader::new(response.into_reader());
        let terminal = std::io::stderr().is_terminal();
        let mut last_shown = Instant::now();
        let mut shown = false;
        for line in reader.lines() {
            let line = line.context("the crawl's answer broke off")?;
            let value: Value = serde_json::from_str(&line).context("bad crawl progress line")?;
            if let Some(topology) = value.get("topology") {
                if shown && terminal {
                    eprintln!();
                }
                return serde_json::from_value(topology.clone())
                    .context("the crawl's topology does not parse");
            }
            if let Some(p) = value.get("progress") {
                if last_shown.elapsed() >= PROGRESS_EVERY {
                    last_shown = Instant::now();
                    shown = true;
                    let text = format!(
                        "crawling: {} answered, {} pending, {} unreachable",
                        p["answered"], p["pending"], p["unreachable"]
                    );
                    if terminal {
                        eprint!("\r{text}   ");
                    } else {
                        eprintln!("{text}");
                    }
                }
            }
        }
        bail!("the node ended the crawl without a result")
    }
}

/// Finds the control file of the node meant, or says how to name one.
fn find_control(target: &Target) -> Result<Option<ControlFile>> {
    if let Some(dir) = &target.data_dir {
        return read_control(dir).map(Some);
    }
    if let Some(name) = &target.name {
        return read_control(&default_data_dir(name)).map(Some);
    }
    let running = running_nodes();
    if let Some(api) = target.api {
        if target.cookie.is_some() {
            return Ok(None);
        }
        return running
            .into_iter()
            .find(|c| c.api == api)
            .map(Some)
            .ok_or_else(|| {
                anyhow!("no cookie for {api}: pass --cookie (or set GOSSIPNET_COOKIE), or use --data-dir")
            });
    }
    let root = data_root();
    match running.len() {
        0 => bail!(
            "no running node found under {}; start one with `gossipnet node`, \
             or name one with --data-dir, --name or --api",
            root.display()
        ),
        1 => Ok(running.into_iter().next()),
        _ => {
            let names: Vec<String> = running
                .iter()
                .map(|c| c.name.clone().unwrap_or_else(|| c.id.clone()))
                .collect();
            bail!(
                "{} nodes are running ({}); pick one with --name",
                running.len(),
                names.join(", ")
            )
        }
    }
}

/// Reads a node's control file, or says why there is none to read.
fn read_control(data_dir: &Path) -> Result<ControlFile> {
    ControlFile::read(data_dir)
        .context("no running node found (is the node running with this data directory?)")
}

/// Control files under the default root whose process is alive.
fn running_nodes() -> Vec<ControlFile> {
    let Ok(entries) = std::fs::read_dir(data_root()) else {
        return Vec::new();
    };
    let mut found: Vec<ControlFile> = entries
        .filter_map(|e| e.ok())
        .filter(|e| e.path().join(CONTROL_FILE).is_file())
        .filter_map(|e| ControlFile::read(&e.path()).ok())
        .filter(|c| Path::new(&format!("/proc/{}", c.pid)).exists())
        .collect();
    found.sort_by(|a, b| a.name.cmp(&b.name));
    found
}

fn print_json(value: &impl serde::Serialize) -> Result<()> {
    outln!("{}", serde_json::to_string_pretty(value)?);
    Ok(())
}

/// `gossipnet status`.
pub fn status(target: Target) -> Result<()> {
    let client = Client::connect(&target)?;
    let s = client.get("/api/status")?;
    if target.json {
        return print_json(&s);
    }
    let list = |v: &Value| -> Vec<String> {
        v.as_array()
            .map(|a| {
                a.iter()
                    .map(|x| x.as_str().unwrap_or("").to_string())
                    .collect()
            })
            .unwrap_or_default()
    };
    let short = |id: &str| id.chars().take(8).collect::<String>();
    let active: Vec<String> = s["active"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|p| short(p["id"].as_str().unwrap_or("")))
                .collect()
        })
        .unwrap_or_default();
    let passive = list(&s["passive"]);
    let estimate = s["size_estimate"]
        .as_f64()
        .map(|e| format!("{e:.1}"))
        .unwrap_or_else(|| "not yet".into());
    outln!("id            {}", s["id"].as_str().unwrap_or(""));
    outln!("name          {}", s["name"].as_str().unwrap_or("-"));
    outln!("role          {}", s["role"].as_str().unwrap_or(""));
    outln!("listen        {}", s["listen"].as_str().unwrap_or(""));
    outln!("addresses     {}", list(&s["advertise"]).join(", "));
    outln!(
        "uptime        {}",
        uptime(s["uptime_s"].as_u64().unwrap_or(0))
    );
    outln!("active view   {} [{}]", active.len(), active.join(" "));
    outln!("passive view  {}", passive.len());
    outln!("links         {}", s["links"]);
    outln!(
        "seeds         {} of {} reachable",
        s["seeds_reachable"],
        s["seeds_configured"]
    );
    if let Some(r) = s["registry_size"].as_u64() {
        outln!("registry      {r} nodes");
    }
    outln!(
        "messages      {} broadcast, {} delivered, {} forwarded, {} duplicates",
        s["broadcast"],
        s["delivered"],
        s["forwarded"],
        s["duplicates"]
    );
    outln!(
        "traffic       {} sent, {} received",
        bytes(s["bytes_sent"].as_u64().unwrap_or(0)),
        bytes(s["bytes_received"].as_u64().unwrap_or(0))
    );
    outln!("handshakes    {} failed", s["handshake_failures"]);
    outln!("size estimate {estimate}");
    Ok(())
}

fn uptime(s: u64) -> String {
    match s {
        0..60 => format!("{s} s"),
        60..3600 => format!("{} min {} s", s / 60, s % 60),
        _ => format!("{} h {} min", s / 3600, s % 3600 / 60),
    }
}

fn bytes(n: u64) -> String {
    match n {
        0..1024 => format!("{n} B"),
        1024..1_048_576 => format!("{:.1} KiB", n as f64 / 1024.0),
        _ => format!("{:.1} MiB", n as f64 / 1_048_576.0),
    }
}

/// `gossipnet peers`: one row per neighbour, by name and listen address
/// (an inbound link's own address is the peer's source port, which tells
/// nobody anything).
pub fn peers(target: Target) -> Result<()> {
    let client = Client::connect(&target)?;
    let peers = client.get("/api/peers")?;
    if target.json {
        return print_json(&peers);
    }
    let peers = peers.as_array().cloned().unwrap_or_default();
    if peers.is_empty() {
        outln!("no neighbours yet");
        return Ok(());
    }
    let mut rows = vec![[
        "NAME",
        "ID",
        "LISTEN",
        "DIRECTION",
        "VIA",
        "RTT",
        "LINKED",
        "SENT",
        "RECEIVED",
    ]
    .map(String::from)];
    rows.extend(peers.iter().map(peer_row));
    let widths: Vec<usize> = (0..rows[0].len())
        .map(|c| rows.iter().map(|r| r[c].chars().count()).max().unwrap_or(0))
        .collect();
    for row in rows {
        let line: Vec<String> = row
            .iter()
            .zip(&widths)
            .map(|(cell, w)| format!("{cell:<w$}"))
            .collect();
        outln!("{}", line.join("  ").trim_end());
    }
    Ok(())
}

/// A neighbour of `/api/peers` as the cells of its row.
fn peer_row(p: &Value) -> [String; 9] {
    let text = |key: &str| p[key].as_str().unwrap_or("-").to_string();
    let id: String = p["id"].as_str().unwrap_or("").chars().take(8).collect();
    let listen = p["listen"]
        .as_array()
        .and_then(|a| a.first())
        .and_then(Value::as_str)
        .or_else(|| p["addr"].as_str())
        .unwrap_or("-")
        .to_string();
    let rtt = p["rtt_ms"]
        .as_f64()
        .map_or_else(|| "-".into(), |ms| format!("{ms:.1} ms"));
    let age = p["link_age_s"].as_u64().map_or_else(|| "-".into(), uptime);
    [
        text("name"),
        id,
        listen,
        text("direction"),
        text("transport"),
        rtt,
        age,
        bytes(p["bytes_sent"].as_u64().unwrap_or(0)),
        bytes(p["bytes_received"].as_u64().unwrap_or(0)),
    ]
}

/// `gossipnet send`.
pub fn send(args: SendArgs) -> Result<()> {
    let client = Client::connect(&args.target)?;
    let answer = client.post("/api/send", json!({ "text": args.text.join(" ") }))?;
    if args.target.json {
        return print_json(&answer);
    }
    outln!("sent {}", answer["id"].as_str().unwrap_or(""));
    Ok(())
}

/// `gossipnet dm`.
pub fn dm(args: DmArgs) -> Result<()> {
    let client = Client::connect(&args.target)?;
    let to = match args.id.parse::<NodeId>() {
        Ok(id) => id.to_string(),
        Err(_) => {
            // The start of an id: look among the peers the node knows.
            let s = client.get("/api/status")?;
            let mut known: Vec<String> = s["active"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|p| p["id"].as_str().map(str::to_string))
                .chain(
                    s["passive"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .filter_map(|p| p.as_str().map(str::to_string)),
                )
                .filter(|id| id.starts_with(&args.id.to_lowercase()))
                .collect();
            known.dedup();
            match known.len() {
                1 => known.remove(0),
                0 => bail!(
                    "'{}' is not a node id, nor the start of a known peer's id; give the full id",
                    args.id
                ),
                n => bail!("'{}' matches {n} peers; give more of the id", args.id),
            }
        }
    };
    let answer = client.post("/api/dm", json!({ "to": to, "text": args.text.join(" ") }))?;
    if args.target.json {
        return print_json(&answer);
    }
    outln!("sent {} to {to}", answer["id"].as_str().unwrap_or(""));
    Ok(())
}

/// `gossipnet leave`.
pub fn leave(target: Target) -> Result<()> {
    let client = Client::connect(&target)?;
    let answer = client.post("/api/leave", json!({}))?;
    if target.json {
        return print_json(&answer);
    }
    outln!("the node is leaving the network");
    Ok(())
}
