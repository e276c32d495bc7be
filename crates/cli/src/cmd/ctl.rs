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

/// `gossipnet history`.
#[derive(Debug, Args)]
pub struct HistoryArgs {
    #[command(flatten)]
    target: Target,
    /// Only messages sent since TIME: a Unix time in milliseconds, an
    /// RFC 3339 time (2026-12-01T18:00:00Z), or a span ago (90s, 10m, 2h,
    /// 1d).
    #[arg(long, value_name = "TIME")]
    since: Option<String>,
    /// Only messages from the node whose id starts with ID (its short form
    /// will do).
    #[arg(long, value_name = "ID")]
    from: Option<String>,
    /// At most N messages, the newest.
    #[arg(long, value_name = "N", default_value_t = 50)]
    limit: usize,
}

/// `gossipnet network ...`.
#[derive(Debug, Subcommand)]
pub enum NetworkCommand {
    /// Crawl the network from a node: nodes, links, degrees, components,
    /// diameter, unreachable nodes.
    Status(Target),
    /// The exact node count from a crawl beside the gossip estimate.
    Size(Target),
    /// The crawled topology as JSON, Graphviz DOT or a rendered SVG.
    Graph(GraphArgs),
    /// Write a new network's config and its admin key.
    Init(InitArgs),
    /// Shut the whole network down with a command signed by its admin key.
    Shutdown(ShutdownArgs),
}

/// The picture formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum GraphFormat {
    /// The topology as JSON (the crawl's own form).
    Json,
    /// Graphviz DOT.
    Dot,
    /// An SVG picture laid out and drawn by gossipnet.
    Svg,
}

/// `gossipnet network graph`.
#[derive(Debug, Args)]
pub struct GraphArgs {
    #[command(flatten)]
    target: Target,
    /// Output format.
    #[arg(long, value_enum, default_value = "svg")]
    format: GraphFormat,
    /// Write to this file instead of standard output.
    #[arg(short, long, value_name = "FILE")]
    output: Option<PathBuf>,
    /// Seed of the layout (the same seed draws the same picture).
    #[arg(long, default_value_t = 1)]
    layout_seed: u64,
}

/// `gossipnet network init`.
#[derive(Debug, Args)]
pub struct InitArgs {
    /// The network's name: its id, and the stem of the files written.
    name: String,
    /// Directory to write NAME.toml, NAME.admin.key (and NAME.psk) into.
    #[arg(long, value_name = "DIR", default_value = ".")]
    dir: PathBuf,
    /// Make the network private: write a pre-shared key that every node
    /// needs.
    #[arg(long)]
    psk: bool,
    /// A seed node, as HOST:PORT. Repeatable.
    #[arg(long = "seed", value_name = "HOST:PORT")]
    seeds: Vec<String>,
    /// Overwrite existing files.
    #[arg(long)]
    force: bool,
}

/// `gossipnet network shutdown`.
#[derive(Debug, Args)]
pub struct ShutdownArgs {
    #[command(flatten)]
    target: Target,
    /// The admin secret key file (written by `network init`).
    #[arg(long, value_name = "FILE", required_unless_present = "command")]
    admin_key: Option<PathBuf>,
    /// The network id the command is for (default: the node's own, from
    /// its status).
    #[arg(long)]
    network_id: Option<String>,
    /// Only sign: write the command to this file instead of sending it
    /// (send it later, from any node, with --command).
    #[arg(long, value_name = "FILE", requires = "admin_key")]
    save: Option<PathBuf>,
    /// Send a command signed earlier (with --save).
    #[arg(long, value_name = "FILE", conflicts_with = "admin_key")]
    command: Option<PathBuf>,
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

/// `gossipnet history`: through the control API when the node runs,
/// straight from its data dir when it does not.
pub fn history(args: HistoryArgs) -> Result<()> {
    let since_ms = args
        .since
        .as_deref()
        .map(|s| parse_since(s, gossipnet_node::time::unix_ms()))
        .transpose()?;
    let limit = args.limit.min(gossipnet_node::MAX_HISTORY_QUERY);
    let dir = args
        .target
        .data_dir
        .clone()
        .or_else(|| args.target.name.as_deref().map(default_data_dir));
    let running = dir.as_deref().is_none_or(|d| {
        ControlFile::read(d).is_ok_and(|c| Path::new(&format!("/proc/{}", c.pid)).exists())
    });
    let messages: Vec<Value> = match (&dir, running) {
        (Some(dir), false) => {
            let query = gossipnet_node::HistoryQuery {
                since_ms,
                from: args.from.clone(),
                limit,
            };
            gossipnet_node::read_history(dir, &query)
                .with_context(|| format!("cannot read the history in {}", dir.display()))?
                .iter()
                .map(gossipnet_node::control::message_json)
                .collect()
        }
        _ => {
            let client = Client::connect(&args.target)?;
            let mut path = format!("/api/history?limit={limit}");
            if let Some(since) = since_ms {
                path.push_str(&format!("&since={since}"));
            }
            if let Some(from) = &args.from {
                path.push_str(&format!("&from={from}"));
            }
            client
                .get(&path)?
                .as_array()
                .cloned()
                .context("the node's history answer is not a list")?
        }
    };
    if args.target.json {
        return print_json(&messages);
    }
    if messages.is_empty() {
        outln!("no messages");
    }
    for m in &messages {
        outln!("{}", history_line(m));
    }
    Ok(())
}

/// `2026-12-01 18:00:00 name (shortid): text`, and a mark for our own
/// lines; other kinds show as `(kind)`.
fn history_line(m: &Value) -> String {
    let time = m["time"]
        .as_i64()
        .and_then(chrono::DateTime::from_timestamp_millis)
        .map(|t| {
            t.with_timezone(&chrono::Local)
                .format("%Y-%m-%d %H:%M:%S")
                .to_string()
        })
        .unwrap_or_else(|| "-".into());
    let origin = m["origin"].as_str().unwrap_or("");
    let short = origin.get(..8).unwrap_or(origin);
    let name = gossipnet_node::chat::sanitize(m["name"].as_str().unwrap_or("anonymous"));
    let text = match m["text"].as_str() {
        Some(t) => gossipnet_node::chat::sanitize(t),
        None => format!("({})", m["kind"].as_str().unwrap_or("message")),
    };
    let own = if m["own"].as_bool() == Some(true) {
        " (you)"
    } else {
        ""
    };
    format!("{time} {name} ({short}){own}: {text}")
}

/// `--since`: Unix ms, RFC 3339, or a span before `now_ms`.
fn parse_since(text: &str, now_ms: u64) -> Result<u64> {
    if let Ok(ms) = text.parse::<u64>() {
        return Ok(ms);
    }
    if let Ok(t) = chrono::DateTime::parse_from_rfc3339(text) {
        return u64::try_from(t.timestamp_millis())
            .map_err(|_| anyhow!("--since {text} is before 1970"));
    }
    let (number, unit) = text.split_at(text.find(|c: char| !c.is_ascii_digit()).unwrap_or(0));
    let n: u64 = number.parse().map_err(|_| {
        anyhow!("--since {text}: give Unix ms, an RFC 3339 time, or a span like 10m")
    })?;
    let unit_ms = match unit {
        "s" => 1_000,
        "m" => 60_000,
        "h" => 3_600_000,
        "d" => 86_400_000,
        _ => bail!("--since {text}: the span's unit is s, m, h or d"),
    };
    Ok(now_ms.saturating_sub(n.saturating_mul(unit_ms)))
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

/// `gossipnet network ...`.
pub fn network(command: NetworkCommand) -> Result<()> {
    match command {
        NetworkCommand::Status(target) => {
            let topology = Client::connect(&target)?.crawl()?;
            let summary = graph::summarize(&topology);
            if target.json {
                return print_json(&summary);
            }
            out!("{}", graph::render_text(&summary));
            Ok(())
        }
        NetworkCommand::Size(target) => {
            let client = Client::connect(&target)?;
            let topology = client.crawl()?;
            let summary = graph::summarize(&topology);
            let status = client.get("/api/status")?;
            let estimate = status["size_estimate"].as_f64();
            if target.json {
                return print_json(&json!({
                    "nodes": summary.nodes,
                    "estimate": estimate,
                    "seeds": summary.seeds,
                    "unreachable": summary.unreachable.len(),
                }));
            }
            outln!("nodes     {} (crawled)", summary.nodes);
            match estimate {
                Some(e) => {
                    let off = if summary.nodes > 0 {
                        format!(
                            " ({:+.0}%)",
                            (e - summary.nodes as f64) / summary.nodes as f64 * 100.0
                        )
                    } else {
                        String::new()
                    };
                    outln!("estimate  {e:.1} (gossip){off}");
                }
                None => outln!("estimate  not yet (the first estimate takes a minute)"),
            }
            if summary.seeds > 0 {
                outln!("seeds     {}", summary.seeds);
            }
            if !summary.unreachable.is_empty() {
                outln!("unreachable {}", summary.unreachable.len());
            }
            Ok(())
        }
        NetworkCommand::Graph(args) => graph_command(args),
        NetworkCommand::Init(args) => init(args),
        NetworkCommand::Shutdown(args) => shutdown(args),
    }
}

fn graph_command(args: GraphArgs) -> Result<()> {
    let topology = Client::connect(&args.target)?.crawl()?;
    let text = match args.format {
        GraphFormat::Json => serde_json::to_string_pretty(&topology)? + "\n",
        GraphFormat::Dot => graph::to_dot(&topology),
        GraphFormat::Svg => graph::to_svg(&topology, args.layout_seed),
    };
    match &args.output {
        Some(path) => {
            std::fs::write(path, text)
                .with_context(|| format!("cannot write {}", path.display()))?;
            let s = graph::summarize(&topology);
            eprintln!(
                "wrote {} ({} nodes, {} links)",
                path.display(),
                s.nodes,
                s.links
            );
        }
        None => out!("{text}"),
    }
    Ok(())
}

/// `gossipnet network init NAME`.
fn init(args: InitArgs) -> Result<()> {
    let name = &args.name;
    if name.is_empty()
        || name.len() > 64
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.')
    {
        bail!("the network name must be 1 to 64 letters, digits, '-', '_' or '.'");
    }
    for seed in &args.seeds {
        match seed.rsplit_once(':') {
            Some((host, port)) if !host.is_empty() && port.parse::<u16>().is_ok() => {}
            _ => bail!("--seed '{seed}' is not HOST:PORT"),
        }
    }
    std::fs::create_dir_all(&args.dir)
        .with_context(|| format!("cannot create {}", args.dir.display()))?;
    let config_path = args.dir.join(format!("{name}.toml"));
    let key_path = args.dir.join(format!("{name}.admin.key"));
    let psk_path = args.dir.join(format!("{name}.psk"));
    if !args.force {
        for path in [&config_path, &key_path]
            .into_iter()
            .chain(args.psk.then_some(&psk_path))
        {
            if path.exists() {
                bail!(
                    "{} exists; pass --force to overwrite it (an old admin key stops working)",
                    path.display()
                );
            }
        }
    }
    let admin = SecretKey::generate(&mut rand::rngs::OsRng);
    write_secret(
        &key_path,
        &data_encoding::HEXLOWER.encode(&admin.to_bytes()),
    )?;
    if args.psk {
        let psk: [u8; 32] = rand::random();
        write_secret(&psk_path, &data_encoding::HEXLOWER.encode(&psk))?;
    }
    let mut config = String::new();
    config.push_str(&format!(
        "# The network '{name}'. Give this file to every node: gossipnet node --config {name}.toml\n"
    ));
    config.push_str(&format!("network_id = {}\n", toml_string(name)));
    if args.psk {
        config.push_str(&format!(
            "# Private network: every node needs this key file too.\npsk_file = {}\n",
            toml_string(&format!("{name}.psk"))
        ));
    }
    config
        .push_str("# Nodes obey a shutdown command only when it is signed by one of these keys.\n");
    config.push_str(&format!(
        "admin_keys = [{}]\n",
        toml_string(&admin.node_id().to_string())
    ));
    let seeds: Vec<String> = args.seeds.iter().map(|s| toml_string(s)).collect();
    config.push_str(&format!("seeds = [{}]\n", seeds.join(", ")));
    std::fs::write(&config_path, config)
        .with_context(|| format!("cannot write {}", config_path.display()))?;
    outln!("wrote {}", config_path.display());
    if args.psk {
        outln!(
            "wrote {} (mode 600: give it to every node, privately)",
            psk_path.display()
        );
    }
    outln!(
        "wrote {} (mode 600: keep it secret; it can shut the network down)",
        key_path.display()
    );
    outln!("admin key {}", admin.node_id());
    Ok(())
}

/// A TOML basic string.
fn toml_string(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if c.is_control() => out.push_str(&format!("\\u{:04X}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Writes a secret as one hex line, readable by its owner only.
fn write_secret(path: &Path, hex: &str) -> Result<()> {
    gossipnet_node::write_private(path, format!("{hex}\n").as_bytes())
        .with_context(|| format!("cannot write {}", path.display()))
}

/// Reads an admin key file (as `network init` writes it).
fn read_secret(path: &Path) -> Result<SecretKey> {
    let bytes = crate::util::read_hex32(path, "admin key file")?;
    Ok(SecretKey::from_bytes(&bytes))
}

/// `gossipnet network shutdown`.
fn shutdown(args: ShutdownArgs) -> Result<()> {
    let command = match (&args.admin_key, &args.command) {
        (_, Some(path)) => std::fs::read_to_string(path)
            .with_context(|| format!("cannot read the command file {}", path.display()))?
            .trim()
            .to_string(),
        (Some(key), None) => {
            let admin = read_secret(key)?;
            let network_id = match &args.network_id {
                Some(id) => id.clone(),
                None if args.save.is_some() => bail!("--save needs --network-id"),
                None => {
                    let client = Client::connect(&args.target)?;
                    network_id_of(&client)?
                }
            };
            let now = gossipnet_node::time::unix_ms();
            let bytes = gossipnet_node::admin::sign_shutdown(&admin, &network_id, now)?;
            data_encoding::HEXLOWER.encode(&bytes)
        }
        (None, None) => bail!(
            "a shutdown must be signed: pass --admin-key FILE (written by `gossipnet network init`)"
        ),
    };
    if let Some(path) = &args.save {
        write_secret(path, &command)?;
        outln!("wrote the signed command to {}", path.display());
        return Ok(());
    }
    let client = Client::connect(&args.target)?;
    let answer = client.post("/api/shutdown", json!({ "command": command }))?;
    if args.target.json {
        return print_json(&answer);
    }
    outln!(
        "shutdown command {} sent; every node that accepts it leaves within seconds",
        answer["id"].as_str().unwrap_or("")
    );
    Ok(())
}

/// The network id of the node.
fn network_id_of(client: &Client) -> Result<String> {
    let status = client.get("/api/status")?;
    status["network_id"]
        .as_str()
        .map(str::to_string)
        .ok_or_else(|| anyhow!("the node did not say its network id; pass --network-id"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn since_takes_ms_rfc3339_and_spans() {
        let now = 10 * 86_400_000;
        assert_eq!(parse_since("1234", now).unwrap(), 1234);
        assert_eq!(parse_since("1970-01-01T00:00:01Z", now).unwrap(), 1000);
        assert_eq!(parse_since("90s", now).unwrap(), now - 90_000);
        assert_eq!(parse_since("2h", now).unwrap(), now - 7_200_000);
        assert_eq!(parse_since("1d", now).unwrap(), now - 86_400_000);
        assert!(parse_since("1w", now).is_err());
        assert!(parse_since("soon", now).is_err());
    }

    #[test]
    fn a_history_line_marks_our_own() {
        let m = json!({
            "time": 0, "origin": "abcdefghijklmnop", "name": "ann",
            "text": "hi\u{1b}[2J", "own": true, "kind": "chat",
        });
        let line = history_line(&m);
        assert!(
            line.ends_with("ann (abcdefgh) (you): hi\u{fffd}[2J"),
            "{line}"
        );
    }
}
