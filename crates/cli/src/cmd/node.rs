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

use anyhow::{anyhow, Context, Result};
use clap::Args;
use gossipnet_node::chat::ChatBody;
use gossipnet_node::control::{self, ControlError, ControlOptions};
use gossipnet_node::default_data_dir;
use gossipnet_node::{Events, EventsError, Limits, Node, NodeBuilder, NodeEvent, Received, Role};
use gossipnet_node::{DEFAULT_PORT, DEFAULT_PORT_RANGE};
use gossipnet_proto::envelope::Kind;
use gossipnet_proto::NodeId;
use tokio::io::AsyncBufReadExt;

use self::file_config::FileConfig;
use super::chat::{self, CHAT_LOG_FILE};
use crate::logging;
use crate::signals::Signals;
use crate::util::{clock, raise_fd_limit, read_hex32, usage_bail, UsageError};

mod file_config;

/// Arguments shared by `node` and `seed`.
#[derive(Debug, Args)]
pub struct CommonArgs {
    /// Port to listen on. Without one, the first free port from 7465 up is
    /// used.
    #[arg(long)]
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
    /// Append logs to this file instead of standard error (the chat's
    /// default is DATA_DIR/node.log).
    #[arg(long, value_name = "FILE")]
    log_file: Option<PathBuf>,
    /// In the chat, show logs on screen, above the input line, instead of
    /// writing them to DATA_DIR/node.log.
    #[arg(short, long)]
    verbose: bool,
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
    /// The port to listen on, then peers to join through as HOST:PORT:
    /// `gossipnet node 8001 127.0.0.1:8002`. With --port, all are peers.
    #[arg(value_name = "PORT | HOST:PORT")]
    positional: Vec<String>,
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
    /// Port to listen on (also --port).
    #[arg(value_name = "PORT", conflicts_with = "port")]
    port_pos: Option<u16>,
}

pub fn run_node(args: NodeArgs) -> Result<()> {
    let (port, mut peers) = split_positional(&args.positional, args.common.port)?;
    for peer in &args.peers {
        check_host_port(peer).with_context(|| format!("--peer {peer}"))?;
    }
    peers.extend(args.peers.iter().cloned());
    for seed in &args.seeds {
        check_host_port(seed).with_context(|| format!("--seed {seed}"))?;
    }
    let mut prepared = prepare(&args.common, port, false, peers, args.seeds.clone())?;
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

/// Splits the positional arguments of `node` and `chat` into the port and
/// the peers: a first argument that is a number is the port, unless
/// `--port` gave one; every other is a peer, HOST:PORT.
fn split_positional(args: &[String], port_flag: Option<u16>) -> Result<(Option<u16>, Vec<String>)> {
    let mut rest = args;
    let mut port = port_flag;
    if let (None, Some(first)) = (port_flag, args.first()) {
        if let Ok(p) = first.parse::<u16>() {
            port = Some(p);
            rest = &args[1..];
        } else if first.parse::<u64>().is_ok() {
            usage_bail!("'{first}' is not a port: ports go from 0 to 65535");
        }
    }
    for arg in rest {
        if check_host_port(arg).is_ok() {
            continue;
        }
        if arg.parse::<u16>().is_ok() {
            let given = match port_flag {
                Some(p) => format!("--port {p}"),
                None => format!("the first argument, {}", port.unwrap_or_default()),
            };
            usage_bail!(
                "'{arg}' looks like a port, but the port is already given ({given}); \
                 a peer is HOST:PORT, for example 127.0.0.1:{arg}"
            );
        }
        usage_bail!(
            "'{arg}' is neither a port nor a peer HOST:PORT; \
             the form is: [PORT] [HOST:PORT ...], for example 8001 127.0.0.1:8002"
        );
    }
    Ok((port, rest.to_vec()))
}

pub fn run_seed(args: SeedArgs) -> Result<()> {
    let port = args.port_pos.or(args.common.port);
    let prepared = prepare(&args.common, port, true, Vec::new(), Vec::new())?;
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
    /// The addresses given with --advertise.
    advertise: Vec<SocketAddr>,
    role: Role,
    data_dir: PathBuf,
    /// Logs on screen in the chat.
    verbose: bool,
    log_file: Option<PathBuf>,
    log_json: bool,
    api: SocketAddr,
}

fn prepare(
    args: &CommonArgs,
    port: Option<u16>,
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
    let mut listener = handed_listener()?;
    let port = match (&listener, port) {
        (Some(l), Some(port)) if port != l.local_addr()?.port() => usage_bail!(
            "the listening socket handed over (LISTEN_FDS) is on port {}, not {port}; \
             give no port, or that one",
            l.local_addr()?.port()
        ),
        (Some(l), _) => l.local_addr()?.port(),
        (None, Some(port)) => port,
        (None, None) => {
            // Bound here and kept: a port only found free could be taken
            // by another node started at the same moment.
            let bound = bind_default_port(args.host)?;
            let port = bound.local_addr()?.port();
            listener = Some(bound);
            port
        }
    };
    let name = args.name.clone().unwrap_or_else(|| {
        if seed_role {
            format!("seed-{port}")
        } else {
            format!("node-{port}")
        }
    });
    let data_dir = match &args.data_dir {
        Some(dir) => dir.clone(),
        None => {
            check_dir_name(&name)?;
            default_data_dir(&name)
        }
    };
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
            usage_bail!("the network id must be 1 to 64 characters");
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
        let id: NodeId = key.parse().map_err(|e| {
            anyhow::Error::new(UsageError(format!("admin key '{key}' in the config: {e}")))
        })?;
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
    // A zero would refuse every peer or time every handshake out: a typo,
    // never a wish.
    let at_least_one = |key: &str, v: u64| -> Result<()> {
        if v == 0 {
            usage_bail!("{key} in the config must be at least 1");
        }
        Ok(())
    };
    if let Some(v) = file.limits.max_inbound {
        at_least_one("limits.max_inbound", v as u64)?;
        limits.max_inbound = v;
    }
    if let Some(v) = file.limits.max_inbound_per_ip {
        at_least_one("limits.max_inbound_per_ip", v as u64)?;
        limits.max_inbound_per_ip = v;
    }
    if let Some(ms) = file.limits.handshake_timeout_ms {
        at_least_one("limits.handshake_timeout_ms", ms)?;
        limits.handshake_timeout = Duration::from_millis(ms);
    }
    let mut proto = gossipnet_proto::Config::default();
    let p = &mut proto;
    if let Some(v) = file.protocol.active_view {
        if v == 0 {
            usage_bail!("protocol.active_view must be at least 1");
        }
        let most = gossipnet_proto::plumtree::MAX_TREE_NEIGHBORS;
        if v > most {
            // The broadcast trees tell this many neighbours apart.
            usage_bail!("protocol.active_view must be at most {most}");
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
    if p.liveness.ping_after.is_zero() || p.liveness.dead_after <= p.liveness.ping_after {
        usage_bail!(
            "protocol.ping_after_ms ({} ms) must be above 0 and below protocol.dead_after_ms ({} ms)",
            p.liveness.ping_after.as_millis(),
            p.liveness.dead_after.as_millis()
        );
    }
    if let Some(ms) = file.protocol.shuffle_interval_ms {
        p.membership.shuffle_interval = Duration::from_millis(ms.max(100));
    }
    if let (Some(ms), Some(size)) = (file.protocol.size_tick_ms, p.size.as_mut()) {
        size.tick = Duration::from_millis(ms.max(100));
    }
    if let Some(sync) = p.sync.as_mut() {
        if let Some(n) = file.protocol.history_messages {
            at_least_one("protocol.history_messages", n as u64)?;
            sync.history.max_messages = n;
        }
        if let Some(mib) = file.protocol.history_mib {
            at_least_one("protocol.history_mib", mib as u64)?;
            sync.history.max_bytes = mib.saturating_mul(1024 * 1024);
        }
    }
    builder = builder
        .admin_keys(admin_keys)
        .peers(all_peers)
        .seeds(all_seeds)
        .limits(limits)
        .protocol(proto);
    if !args.api.ip().is_loopback() {
        usage_bail!(
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
        advertise: args.advertise.clone(),
        role,
        data_dir,
        verbose: args.verbose,
        log_file: args.log_file.clone(),
        log_json: args.log_format == "json",
        api: args.api,
    })
}

fn load_config(path: &Path) -> Result<FileConfig> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read config file {}", path.display()))
        .map_err(|e| anyhow::Error::new(UsageError(format!("{e:#}"))))?;
    file_config::parse(&text).map_err(|e| {
        anyhow::Error::new(UsageError(format!(
            "config file {} is not valid: {e}",
            path.display()
        )))
    })
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

/// A name that gives the default data directory must be a plain directory
/// name: `..`, `/` or an absolute path would move it out of the data root.
fn check_dir_name(name: &str) -> Result<()> {
    if name.is_empty() || name == "." || name == ".." || name.contains(['/', '\\', '\0']) {
        usage_bail!(
            "--name '{name}' cannot name a data directory (it must be a plain name, \
             without '/' and not '.' or '..'); pick another name, or give --data-dir"
        );
    }
    Ok(())
}

fn check_host_port(text: &str) -> Result<()> {
    match text.rsplit_once(':') {
        Some((host, port)) if !host.is_empty() && port.parse::<u16>().is_ok() => Ok(()),
        _ => usage_bail!("'{text}' is not HOST:PORT (for example 127.0.0.1:8002)"),
    }
}

/// A listener on the first port of the default range that is free on
/// `host`.
fn bind_default_port(host: IpAddr) -> Result<std::net::TcpListener> {
    (DEFAULT_PORT..DEFAULT_PORT + DEFAULT_PORT_RANGE)
        .find_map(|p| std::net::TcpListener::bind((host, p)).ok())
        .ok_or_else(|| {
            anyhow::Error::new(UsageError(format!(
                "ports {DEFAULT_PORT}-{} are all in use; pick one with --port",
                DEFAULT_PORT + DEFAULT_PORT_RANGE - 1
            )))
        })
}

async fn serve(prepared: Prepared, json: bool) -> Result<()> {
    let listen = prepared.listen;
    let role = prepared.role;
    let seed_role = role == Role::Seed;
    let data_dir = Some(prepared.data_dir.clone()); // chat history, control file
    let chat_mode = !seed_role && !json && chat::on_terminal();
    // The chat keeps the screen for the conversation: its logs go to a file
    // in the data dir unless asked for on screen.
    let log_file = match (&prepared.log_file, chat_mode && !prepared.verbose) {
        (Some(file), _) => Some(file.clone()),
        (None, true) => {
            gossipnet_node::DataDir::open(&prepared.data_dir).with_context(|| {
                format!(
                    "cannot use data directory {}; pick another with --data-dir",
                    prepared.data_dir.display()
                )
            })?;
            Some(prepared.data_dir.join(CHAT_LOG_FILE))
        }
        (None, false) => None,
    };
    logging::init(log_file.as_deref(), prepared.log_json)?;
    raise_fd_limit();
    // Before the readiness line: a signal sent the moment it is read must
    // find the node ready to leave gracefully.
    let mut signals = Signals::watch(chat_mode)?;
    let prepared_dir = prepared.data_dir.clone();
    let spawned = prepared.builder.spawn().await;
    let node = spawned.map_err(|e| match e {
        gossipnet_node::NodeError::Bind { .. } => anyhow::Error::new(UsageError(format!(
            "{e}; port {} may be in use: pick another with --port",
            listen.port()
        ))),
        // A data dir in use, or a key file or database that cannot be used
        // as it is: the message names the file and what to do, and the
        // person must act before the node can start.
        gossipnet_node::NodeError::Store(
            ref source @ (gossipnet_node::StoreError::InUse { .. }
            | gossipnet_node::StoreError::DataDir { .. }
            | gossipnet_node::StoreError::IdentityIo { .. }
            | gossipnet_node::StoreError::MalformedIdentity { .. }
            | gossipnet_node::StoreError::OpenDatabase { .. }
            | gossipnet_node::StoreError::SchemaTooNew { .. }),
        ) => anyhow::Error::new(UsageError(source.to_string())),
        gossipnet_node::NodeError::Store(ref source) => anyhow!(
            "cannot use data directory {}: {source}; pick another with --data-dir",
            prepared_dir.display()
        ),
        e => anyhow!(e),
    })?;
    // Every event since the node started, taken at once: what is caught up
    // as the first links come up, and a message that arrives before the
    // printer task first runs (a peer may send the moment it reads the
    // readiness line), must still be printed.
    let events = node.startup_events().unwrap_or_else(|| node.subscribe());
    let mut options = ControlOptions::new(prepared.api);
    if let Some(dir) = &data_dir {
        options = options.data_dir(dir);
    }
    let api = control::serve(node.clone(), options)
        .await
        .map_err(|e| match e {
            ControlError::Bind { addr, source } => anyhow::Error::new(UsageError(format!(
                "cannot listen for the control API on {addr}: {source}; pick another with --api"
            ))),
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
        let intro = chat::Intro {
            join: join_addrs(node.local_addr(), &prepared.advertise),
            log_file,
        };
        let result = chat::run(node, events, data_dir.as_deref(), intro, &mut signals).await;
        drop(api);
        return result;
    }
    let printer = tokio::spawn(print_messages(events, json));
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

/// The addresses to give others so they can join this node: those given
/// with --advertise; else, when listening on every interface, this host's
/// non-loopback addresses and loopback for the same machine; else the
/// listen address.
fn join_addrs(listen: SocketAddr, advertise: &[SocketAddr]) -> Vec<SocketAddr> {
    /// Enough for the usual host (a LAN and a VPN address) without a wall
    /// of text on a busy one.
    const MAX_SHOWN: usize = 3;
    if !advertise.is_empty() {
        return advertise.iter().take(MAX_SHOWN).copied().collect();
    }
    if !listen.ip().is_unspecified() {
        return vec![listen];
    }
    let mut addrs: Vec<SocketAddr> = if_addrs::get_if_addrs()
        .unwrap_or_default()
        .into_iter()
        .map(|i| i.ip())
        .filter(|ip| !ip.is_loopback() && ip.is_ipv4() == listen.is_ipv4())
        .take(MAX_SHOWN)
        .map(|ip| SocketAddr::new(ip, listen.port()))
        .collect();
    let loopback: IpAddr = if listen.is_ipv4() {
        std::net::Ipv4Addr::LOCALHOST.into()
    } else {
        std::net::Ipv6Addr::LOCALHOST.into()
    };
    addrs.push(SocketAddr::new(loopback, listen.port()));
    addrs
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

async fn print_messages(mut events: Events, json: bool) {
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
