//! `gossipnet node` and `gossipnet seed`: run a node (or a seed) in the
//! foreground.
//!
//! `gossipnet node 8001 127.0.0.1:8002 127.0.0.1:8003` works as the classic
//! `p2p.py` did: listen on 8001, join through the peers given. Lines read on
//! standard input are broadcast; every message delivered is printed as one
//! line on standard output (`[hh:mm:ss] name (shortid): text`, or JSON with
//! `--json`), so nodes can be scripted and piped. At the end of input the
//! node keeps running until it is signalled; SIGINT or SIGTERM makes it leave
//! gracefully and exit 0.

use std::io::Write;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use clap::Args;
use gossipnet_node::chat::ChatBody;
use gossipnet_node::control::{self, ControlError, ControlOptions};
use gossipnet_node::default_data_dir;
use gossipnet_node::{EventsError, Limits, Node, NodeBuilder, NodeEvent, Received, Role};
use gossipnet_node::{DEFAULT_PORT, DEFAULT_PORT_RANGE};
use gossipnet_proto::envelope::Kind;
use gossipnet_proto::NodeId;
use serde::Deserialize;
use tokio::io::AsyncBufReadExt;

use super::chat;
use crate::logging;
use crate::signals::Signals;
use crate::util::{clock, raise_fd_limit, read_hex32};

/// Arguments shared by `node` and `seed`.
#[derive(Debug, Args)]
pub struct CommonArgs {
    /// Port to listen on (also --port). Without one, the first free port
    /// from 7465 up is used.
    #[arg(value_name = "PORT")]
    port_pos: Option<u16>,
    /// Port to listen on.
    #[arg(long, conflicts_with = "port_pos")]
    port: Option<u16>,
    /// Address to listen on.
    #[arg(long, default_value = "0.0.0.0")]
    host: IpAddr,
    /// Address to publish to other nodes (default: the listen address, or
    /// 127.0.0.1 when listening on every interface). Repeatable.
    #[arg(long, value_name = "HOST:PORT")]
    advertise: Vec<SocketAddr>,
    /// Network config file (TOML): network id, pre-shared key file, admin
    /// keys, seeds, limits.
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Network id (overrides the config file). Nodes of different networks
    /// refuse each other.
    #[arg(long)]
    network_id: Option<String>,
    /// File holding the 32-byte pre-shared key of a private network, as 64
    /// hex characters (overrides the config file).
    #[arg(long, value_name = "FILE")]
    psk_file: Option<PathBuf>,
    /// Data directory (identity key, address book). Default: one per name
    /// under the user's data directory.
    #[arg(long, value_name = "DIR")]
    data_dir: Option<PathBuf>,
    /// A name shown beside this node's id.
    #[arg(long)]
    name: Option<String>,
    /// Append logs to this file instead of standard error.
    #[arg(long, value_name = "FILE")]
    log_file: Option<PathBuf>,
    /// Log format.
    #[arg(long, default_value = "text", value_parser = ["text", "json"])]
    log_format: String,
    /// Address of the control API (loopback only; port 0 picks a free
    /// one). Its address and cookie are written to DATA_DIR/control.json.
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:0")]
    api: SocketAddr,
}

/// `gossipnet node`.
#[derive(Debug, Args)]
pub struct NodeArgs {
    #[command(flatten)]
    common: CommonArgs,
    /// Peers to join through, as HOST:PORT (also --peer).
    #[arg(value_name = "HOST:PORT")]
    peers_pos: Vec<String>,
    /// A peer to join through, as HOST:PORT. Repeatable.
    #[arg(long = "peer", value_name = "HOST:PORT")]
    peers: Vec<String>,
    /// A seed node, as HOST:PORT. Repeatable; adds to the config's seeds.
    #[arg(long = "seed", value_name = "HOST:PORT")]
    seeds: Vec<String>,
    /// Print delivered messages as JSON lines.
    #[arg(long)]
    json: bool,
    /// Do not use LAN discovery (multicast DNS).
    #[arg(long)]
    no_mdns: bool,
}

// Terminal chat (cmd::chat): `gossipnet chat` asks for a name when none was
// given, before the node is prepared.
impl NodeArgs {
    pub(crate) fn name(&self) -> Option<&str> {
        self.common.name.as_deref()
    }

    pub(crate) fn set_name(&mut self, name: String) {
        self.common.name = Some(name);
    }
}

/// `gossipnet seed`.
#[derive(Debug, Args)]
pub struct SeedArgs {
    #[command(flatten)]
    common: CommonArgs,
}

/// The network config file.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    network_id: Option<String>,
    psk_file: Option<PathBuf>,
    #[serde(default)]
    admin_keys: Vec<String>,
    #[serde(default)]
    seeds: Vec<String>,
    #[serde(default)]
    peers: Vec<String>,
    #[serde(default)]
    limits: FileLimits,
    #[serde(default)]
    protocol: FileProtocol,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileLimits {
    max_inbound: Option<usize>,
    max_inbound_per_ip: Option<usize>,
    handshake_timeout_ms: Option<u64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileProtocol {
    active_view: Option<usize>,
    passive_view: Option<usize>,
    ping_after_ms: Option<u64>,
    dead_after_ms: Option<u64>,
    shuffle_interval_ms: Option<u64>,
    size_tick_ms: Option<u64>,
}

pub fn run_node(args: NodeArgs) -> Result<()> {
    let mut peers = args.peers_pos.clone();
    peers.extend(args.peers.iter().cloned());
    let mut prepared = prepare(&args.common, false, peers, args.seeds.clone())?;
    prepared.builder = std::mem::take(&mut prepared.builder).discovery(!args.no_mdns);
    run(serve(prepared, args.json))
}

/// `gossipnet chat`: `gossipnet node` that asks for a name when none was
/// given (on a terminal).
pub fn run_chat(mut args: NodeArgs) -> Result<()> {
    if args.name().is_none() && chat::on_terminal() {
        match chat::ask_name()? {
            chat::NameAnswer::Name(name) => args.set_name(name),
            chat::NameAnswer::Default => {}
            chat::NameAnswer::Cancelled => return Ok(()),
        }
    }
    run_node(args)
}

pub fn run_seed(args: SeedArgs) -> Result<()> {
    let prepared = prepare(&args.common, true, Vec::new(), Vec::new())?;
    run(serve(prepared, false))
}

/// Runs `work` on a fresh runtime. The runtime is shut down without waiting
/// for its blocking threads: one may be parked in a read of standard input
/// that would otherwise hold the exit until the next line.
fn run(work: impl std::future::Future<Output = Result<()>>) -> Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let result = runtime.block_on(work);
    runtime.shutdown_background();
    result
}

struct Prepared {
    /// The node as configured (with the listening socket handed over by
    /// socket activation, if any).
    builder: NodeBuilder,
    listen: SocketAddr,
    role: Role,
    data_dir: PathBuf,
    log_file: Option<PathBuf>,
    log_json: bool,
    api: SocketAddr,
}

fn prepare(
    args: &CommonArgs,
    seed_role: bool,
    peers: Vec<String>,
    seeds: Vec<String>,
) -> Result<Prepared> {
    let file = match &args.config {
        Some(path) => load_config(path)?,
        None => FileConfig::default(),
    };
    let config_dir = args
        .config
        .as_ref()
        .and_then(|p| p.parent().map(Path::to_path_buf))
        .unwrap_or_default();
    let listener = handed_listener()?;
    let port = match (&listener, args.port_pos.or(args.port)) {
        (Some(l), Some(port)) if port != l.local_addr()?.port() => bail!(
            "the listening socket handed over (LISTEN_FDS) is on port {}, not {port}; \
             give no port, or that one",
            l.local_addr()?.port()
        ),
        (Some(l), _) => l.local_addr()?.port(),
        (None, Some(port)) => port,
        (None, None) => free_default_port(args.host)?,
    };
    let name = args.name.clone().unwrap_or_else(|| {
        if seed_role {
            format!("seed-{port}")
        } else {
            format!("node-{port}")
        }
    });
    let data_dir = args
        .data_dir
        .clone()
        .unwrap_or_else(|| default_data_dir(&name));
    let listen = match &listener {
        Some(l) => l.local_addr()?,
        None => SocketAddr::new(args.host, port),
    };
    let role = if seed_role { Role::Seed } else { Role::Node };
    // The builder opens the data directory and reads (or creates) the
    // identity in it.
    let mut builder = Node::builder()
        .listen(listen)
        .advertise(args.advertise.iter().copied())
        .name(name)
        .role(role)
        .data_dir(&data_dir);
    if let Some(id) = args.network_id.clone().or(file.network_id) {
        if id.is_empty() || id.len() > 64 {
            bail!("the network id must be 1 to 64 characters");
        }
        builder = builder.network_id(id);
    }
    let psk_path = args
        .psk_file
        .clone()
        .or_else(|| file.psk_file.map(|p| config_dir.join(p)));
    if let Some(path) = psk_path {
        builder = builder.psk(load_psk(&path)?);
    }
    let mut admin_keys = Vec::new();
    for key in &file.admin_keys {
        let id: NodeId = key
            .parse()
            .map_err(|e| anyhow!("admin key '{key}' in the config: {e}"))?;
        admin_keys.push(id);
    }
    let mut all_peers = file.peers;
    all_peers.extend(peers);
    let mut all_seeds = file.seeds;
    all_seeds.extend(seeds);
    for addr in all_peers.iter().chain(all_seeds.iter()) {
        check_host_port(addr)?;
    }
    let mut limits = if seed_role {
        Limits::for_seed()
    } else {
        Limits::default()
    };
    if let Some(v) = file.limits.max_inbound {
        limits.max_inbound = v;
    }
    if let Some(v) = file.limits.max_inbound_per_ip {
        limits.max_inbound_per_ip = v;
    }
    if let Some(ms) = file.limits.handshake_timeout_ms {
        limits.handshake_timeout = Duration::from_millis(ms);
    }
    let mut proto = gossipnet_proto::Config::default();
    let p = &mut proto;
    if let Some(v) = file.protocol.active_view {
        if v == 0 {
            bail!("protocol.active_view must be at least 1");
        }
        p.membership.active_view_capacity = v;
        p.membership.high_priority_below = v.saturating_sub(1).max(1);
    }
    if let Some(v) = file.protocol.passive_view {
        p.membership.passive_view_capacity = v;
    }
    if let Some(ms) = file.protocol.ping_after_ms {
        p.liveness.ping_after = Duration::from_millis(ms);
    }
    if let Some(ms) = file.protocol.dead_after_ms {
        p.liveness.dead_after = Duration::from_millis(ms);
    }
    if let Some(ms) = file.protocol.shuffle_interval_ms {
        p.membership.shuffle_interval = Duration::from_millis(ms.max(100));
    }
    if let (Some(ms), Some(size)) = (file.protocol.size_tick_ms, p.size.as_mut()) {
        size.tick = Duration::from_millis(ms.max(100));
    }
    builder = builder
        .admin_keys(admin_keys)
        .peers(all_peers)
        .seeds(all_seeds)
        .limits(limits)
        .protocol(proto);
    if !args.api.ip().is_loopback() {
        bail!(
            "--api {}: the control API has no TLS, so it listens on loopback only \
             (for example 127.0.0.1:{})",
            args.api,
            args.api.port()
        );
    }
    if let Some(listener) = listener {
        builder = builder.listener(listener);
    }
    Ok(Prepared {
        builder,
        listen,
        role,
        data_dir,
        log_file: args.log_file.clone(),
        log_json: args.log_format == "json",
        api: args.api,
    })
}

fn load_config(path: &Path) -> Result<FileConfig> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read config file {}", path.display()))?;
    toml::from_str(&text).with_context(|| format!("config file {} is not valid", path.display()))
}

fn load_psk(path: &Path) -> Result<[u8; 32]> {
    read_hex32(path, "pre-shared key file")
}

/// The listening socket handed over by socket activation (systemd's
/// `LISTEN_FDS`, the first descriptor, 3), if one was: the supervisor (or a
/// test) binds it, so it can tell others the address before the node runs.
fn handed_listener() -> Result<Option<std::net::TcpListener>> {
    let mut fds = listenfd::ListenFd::from_env();
    if fds.len() == 0 {
        return Ok(None);
    }
    fds.take_tcp_listener(0)
        .context("LISTEN_FDS is set but descriptor 3 is not a listening TCP socket")
}

fn check_host_port(text: &str) -> Result<()> {
    match text.rsplit_once(':') {
        Some((host, port)) if !host.is_empty() && port.parse::<u16>().is_ok() => Ok(()),
        _ => bail!("'{text}' is not HOST:PORT (for example 127.0.0.1:8002)"),
    }
}

/// The first port of the default range that is free on `host`.
fn free_default_port(host: IpAddr) -> Result<u16> {
    (DEFAULT_PORT..DEFAULT_PORT + DEFAULT_PORT_RANGE)
        .find(|p| std::net::TcpListener::bind((host, *p)).is_ok())
        .ok_or_else(|| {
            anyhow!(
                "ports {DEFAULT_PORT}-{} are all in use; pick one with --port",
                DEFAULT_PORT + DEFAULT_PORT_RANGE - 1
            )
        })
}

async fn serve(prepared: Prepared, json: bool) -> Result<()> {
    logging::init(prepared.log_file.as_deref(), prepared.log_json)?;
    raise_fd_limit();
    let listen = prepared.listen;
    let role = prepared.role;
    let seed_role = role == Role::Seed;
    let data_dir = Some(prepared.data_dir.clone()); // chat history, control file
    let chat_mode = !seed_role && !json && chat::on_terminal();
    // Before the readiness line: a signal sent the moment it is read must
    // find the node ready to leave gracefully.
    let mut signals = Signals::watch(chat_mode)?;
    let prepared_dir = prepared.data_dir.clone();
    let spawned = prepared.builder.spawn().await;
    let node = spawned.map_err(|e| match e {
        gossipnet_node::NodeError::Bind { .. } => anyhow!(
            "{e}; port {} may be in use: pick another with --port",
            listen.port()
        ),
        gossipnet_node::NodeError::Store(ref source) => anyhow!(
            "cannot use data directory {}: {source}; pick another with --data-dir",
            prepared_dir.display()
        ),
        e => anyhow!(e),
    })?;
    let mut options = ControlOptions::new(prepared.api);
    if let Some(dir) = &data_dir {
        options = options.data_dir(dir);
    }
    let api = control::serve(node.clone(), options)
        .await
        .map_err(|e| match e {
            ControlError::Bind { addr, source } => anyhow!(source).context(format!(
                "cannot listen for the control API on {addr}; pick another with --api"
            )),
            e => anyhow!(e),
        })?;
    {
        let mut err = std::io::stderr().lock();
        let _ = writeln!(
            err,
            "gossipnet {role} {} listening on {} as {}",
            node.name().unwrap_or_default(),
            node.local_addr(),
            node.id()
        );
        let _ = writeln!(
            err,
            "control API on http://{} (dashboard: {})",
            api.info().addr(),
            api.info().dashboard_url()
        );
    }
    // Terminal chat (cmd::chat): on a terminal, a line editor replaces the
    // plain reader and printer below, and handles signals itself.
    if chat_mode {
        let result = chat::run(node, data_dir.as_deref(), &mut signals).await;
        drop(api);
        return result;
    }
    let printer = tokio::spawn(print_messages(node.clone(), json));
    if !seed_role {
        tokio::spawn(read_input(node.clone()));
    }
    // A signal, `gossipnet leave` or an admin's shutdown command: each ends
    // in a graceful leave and exit 0.
    tokio::select! {
        _ = signals.recv() => {}
        _ = node.stopped() => {}
    }
    node.leave().await?;
    drop(api);
    printer.abort();
    Ok(())
}

/// Each input line is broadcast; at end of input the node keeps running.
async fn read_input(node: Node) {
    let mut lines = tokio::io::BufReader::new(tokio::io::stdin()).lines();
    while let Ok(Some(line)) = lines.next_line().await {
        let line = line.trim_end();
        if line.is_empty() {
            continue;
        }
        // `/dm ID TEXT` sends a direct message; every other line is
        // broadcast as it is.
        let sent = match line.strip_prefix("/dm ") {
            Some(rest) => match rest.trim_start().split_once(' ') {
                Some((id, text)) => match id.parse::<NodeId>() {
                    Ok(to) => node.send_direct(to, text).await.map(|_| ()),
                    Err(e) => {
                        eprintln!("not sent: '{id}' is not a node id: {e}");
                        continue;
                    }
                },
                None => {
                    eprintln!("usage: /dm NODE_ID TEXT");
                    continue;
                }
            },
            None => node.broadcast_text(line).await.map(|_| ()),
        };
        if let Err(e) = sent {
            eprintln!("not sent: {:#}", anyhow::Error::from(e));
        }
    }
}

async fn print_messages(node: Node, json: bool) {
    // From the start: what is caught up as the first links come up, too.
    let mut events = node.startup_events().unwrap_or_else(|| node.subscribe());
    loop {
        match events.recv().await {
            Ok(NodeEvent::Message(m)) => print_message(&m, json),
            Ok(NodeEvent::Direct(d)) => print_direct(&d, json),
            Ok(_) => {}
            Err(EventsError::Lagged(n)) => {
                eprintln!("(output fell behind: {n} events not shown)");
            }
            Err(_) => return,
        }
    }
}

fn print_message(m: &Received, json: bool) {
    // Our own lines were typed here; only what others said is printed.
    if m.kind != Kind::Chat || m.own {
        return;
    }
    let Some(body) = ChatBody::decode(&m.body) else {
        return;
    };
    let mut out = std::io::stdout().lock();
    if json {
        let v = serde_json::json!({
            "id": m.id.to_string(),
            "origin": m.origin.to_string(),
            "name": body.name,
            "seq": m.seq,
            "time": m.time_ms,
            "text": body.text,
            "caught_up": m.caught_up,
        });
        let _ = writeln!(out, "{v}");
    } else {
        let time = clock(m.time_ms);
        let name = body.name.as_deref().unwrap_or("anonymous");
        let _ = writeln!(out, "[{time}] {name} ({}): {}", m.origin.short(), body.text);
    }
    let _ = out.flush();
}

fn print_direct(d: &gossipnet_node::DirectMessage, json: bool) {
    let mut out = std::io::stdout().lock();
    if json {
        let v = serde_json::json!({
            "id": d.id.to_string(),
            "direct": true,
            "origin": d.from.to_string(),
            "name": d.name,
            "time": d.time_ms,
            "text": d.text,
        });
        let _ = writeln!(out, "{v}");
    } else {
        let name = d.name.as_deref().unwrap_or("anonymous");
        let _ = writeln!(
            out,
            "[{}] (dm) {name} ({}): {}",
            clock(d.time_ms),
            d.from.short(),
            d.text
        );
    }
    let _ = out.flush();
}
