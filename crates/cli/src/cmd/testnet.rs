//! `gossipnet testnet`: a local network of real node processes in one
//! command.
//!
//! Seeds start first, then the nodes, each told the seeds' addresses (with
//! no seed, each node joins through the first). Every process is this same
//! binary, listening on a free loopback port, with its data directory and
//! log file under one directory that the testnet names. Once every node's
//! control API is up, a table of names, ids, ports, API and dashboard URLs
//! is printed; Ctrl-C (or SIGTERM) then stops them all gracefully.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use clap::Args;
use gossipnet_node::control::{ControlFile, CONTROL_FILE};
use serde::Serialize;

/// Time every process gets to start and open its control API.
const START_TIMEOUT: Duration = Duration::from_secs(30);
/// Time every process gets to leave gracefully before it is killed.
const STOP_TIMEOUT: Duration = Duration::from_secs(10);
/// How often the children are checked while waiting.
const POLL: Duration = Duration::from_millis(50);
/// Most processes one testnet starts: each is a real node with its own
/// threads and sockets.
const MAX_PROCESSES: usize = 500;

/// `gossipnet testnet`.
#[derive(Debug, Args)]
pub struct TestnetArgs {
    /// Nodes to start (not counting seeds).
    #[arg(long, default_value_t = 5)]
    nodes: usize,
    /// Seed nodes to start.
    #[arg(long, default_value_t = 1)]
    seeds: usize,
    /// Directory for the nodes' data and logs (default: a new one under the
    /// system's temporary directory).
    #[arg(long, value_name = "DIR")]
    dir: Option<PathBuf>,
    /// A network config file (TOML) every process is started with.
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Open the first node's dashboard in a browser (when one can be
    /// opened; its URL is printed either way).
    #[arg(long)]
    dashboard: bool,
    /// Print the table as one JSON line.
    #[arg(long)]
    json: bool,
    /// Delete the directory when the testnet stops.
    #[arg(long)]
    rm: bool,
}

/// One process of the testnet, as the table shows it.
#[derive(Debug, Clone, Serialize)]
struct Member {
    name: String,
    role: &'static str,
    id: String,
    listen: String,
    port: u16,
    api: String,
    cookie: String,
    dashboard: String,
    pid: u32,
    data_dir: PathBuf,
}

/// The children, stopped (gracefully, then by force) when dropped.
struct Children(Vec<(String, Child)>);

impl Drop for Children {
    fn drop(&mut self) {
        stop_all(&mut self.0);
    }
}

pub fn run(args: TestnetArgs) -> Result<()> {
    if args.nodes == 0 {
        bail!("--nodes must be at least 1");
    }
    if args.nodes + args.seeds > MAX_PROCESSES {
        bail!("at most {MAX_PROCESSES} processes in one testnet");
    }
    let dir = match &args.dir {
        Some(dir) => dir.clone(),
        None => {
            let tag: u32 = rand::random();
            std::env::temp_dir().join(format!("gossipnet-testnet-{tag:08x}"))
        }
    };
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let dir = dir.canonicalize().unwrap_or(dir);
    let exe = std::env::current_exe().context("cannot find this program's path")?;
    eprintln!(
        "testnet: {} seed(s) and {} node(s), data and logs in {}",
        args.seeds,
        args.nodes,
        dir.display()
    );

    let mut children = Children(Vec::new());
    let mut members = Vec::new();
    let mut seed_addrs = Vec::new();
    for i in 1..=args.seeds {
        let name = format!("seed-{i}");
        let child = spawn(&exe, &dir, &name, "seed", &args, &[])?;
        children.0.push((name.clone(), child));
        let member = wait_ready(&dir, &name, "seed", &mut children.0)?;
        seed_addrs.push(member.listen.clone());
        members.push(member);
    }
    let mut first_node: Option<String> = None;
    let mut pending = Vec::new();
    for i in 1..=args.nodes {
        let name = format!("node-{i}");
        let mut extra: Vec<String> = seed_addrs
            .iter()
            .flat_map(|a| ["--seed".to_string(), a.clone()])
            .collect();
        if let Some(first) = &first_node {
            extra.extend(["--peer".to_string(), first.clone()]);
        }
        let child = spawn(&exe, &dir, &name, "node", &args, &extra)?;
        children.0.push((name.clone(), child));
        if first_node.is_none() && seed_addrs.is_empty() {
            // Without seeds the others join through the first node, so its
            // address is needed before they start.
            let member = wait_ready(&dir, &name, "node", &mut children.0)?;
            first_node = Some(member.listen.clone());
            members.push(member);
        } else {
            pending.push(name);
        }
        if i % 10 == 0 {
            eprintln!("testnet: started {i} of {} nodes", args.nodes);
        }
    }
    for name in pending {
        members.push(wait_ready(&dir, &name, "node", &mut children.0)?);
    }

    print_table(&dir, &members, args.json)?;
    if args.dashboard {
        if let Some(first) = members.iter().find(|m| m.role == "node") {
            open_browser(&first.dashboard);
        }
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(wait(&mut children.0))?;
    eprintln!("testnet: stopping {} processes", children.0.len());
    stop_all(&mut children.0);
    eprintln!("testnet: stopped");
    if args.rm {
        std::fs::remove_dir_all(&dir)
            .with_context(|| format!("cannot remove {}", dir.display()))?;
    } else {
        eprintln!("testnet: data and logs kept in {}", dir.display());
    }
    Ok(())
}

/// Starts one process.
fn spawn(
    exe: &Path,
    dir: &Path,
    name: &str,
    role: &str,
    args: &TestnetArgs,
    extra: &[String],
) -> Result<Child> {
    let data_dir = dir.join(name);
    std::fs::create_dir_all(&data_dir)
        .with_context(|| format!("cannot create {}", data_dir.display()))?;
    // A control file left by an earlier run would look like readiness.
    let _ = std::fs::remove_file(data_dir.join(CONTROL_FILE));
    let mut command = Command::new(exe);
    command
        .arg(role)
        .args(["--host", "127.0.0.1", "--port", "0", "--name", name])
        .arg("--data-dir")
        .arg(&data_dir)
        .arg("--log-file")
        .arg(data_dir.join("node.log"));
    if role == "node" {
        command.arg("--no-mdns");
    }
    if let Some(config) = &args.config {
        command.arg("--config").arg(config);
    }
    command
        .args(extra)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    // Its own process group: a Ctrl-C at the terminal reaches the testnet,
    // which then stops the nodes in order, rather than every node at once.
    std::os::unix::process::CommandExt::process_group(&mut command, 0);
    command
        .spawn()
        .with_context(|| format!("cannot start {name}"))
}

/// Waits for a process's control file; fails if it exits first.
fn wait_ready(
    dir: &Path,
    name: &str,
    role: &'static str,
    children: &mut [(String, Child)],
) -> Result<Member> {
    let data_dir = dir.join(name);
    let deadline = Instant::now() + START_TIMEOUT;
    loop {
        if let Ok(control) = ControlFile::read(&data_dir) {
            return Ok(Member {
                name: name.to_string(),
                role,
                id: control.id,
                listen: control.listen.to_string(),
                port: control.listen.port(),
                api: control.api.to_string(),
                dashboard: format!("http://{}/?cookie={}", control.api, control.cookie),
                cookie: control.cookie,
                pid: control.pid,
                data_dir,
            });
        }
        if let Some((_, child)) = children.iter_mut().find(|(n, _)| n == name) {
            if let Ok(Some(status)) = child.try_wait() {
                bail!(
                    "{name} exited ({status}) before it was ready; its log: {}\n{}",
                    data_dir.join("node.log").display(),
                    log_tail(&data_dir.join("node.log"))
                );
            }
        }
        if Instant::now() >= deadline {
            bail!(
                "{name} was not ready within {} s; its log: {}",
                START_TIMEOUT.as_secs(),
                data_dir.join("node.log").display()
            );
        }
        std::thread::sleep(POLL);
    }
}

fn log_tail(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(10)..].join("\n")
}

fn print_table(dir: &Path, members: &[Member], json: bool) -> Result<()> {
    let mut out = std::io::stdout().lock();
    if json {
        let v = serde_json::json!({ "dir": dir, "nodes": members });
        writeln!(out, "{v}")?;
    } else {
        writeln!(
            out,
            "{:<10} {:<5} {:<9} {:<6} {:<22} DASHBOARD",
            "NAME", "ROLE", "ID", "PORT", "API"
        )?;
        for m in members {
            writeln!(
                out,
                "{:<10} {:<5} {:<9} {:<6} {:<22} {}",
                m.name,
                m.role,
                m.id.chars().take(8).collect::<String>(),
                m.port,
                m.api,
                m.dashboard
            )?;
        }
        writeln!(out)?;
        writeln!(
            out,
            "Try: gossipnet network status --data-dir {}",
            members
                .iter()
                .find(|m| m.role == "node")
                .map(|m| m.data_dir.display().to_string())
                .unwrap_or_default()
        )?;
        writeln!(out, "Press Ctrl-C to stop the network.")?;
    }
    out.flush()?;
    Ok(())
}

/// Opens a URL in the desktop's browser, if there is a desktop.
fn open_browser(url: &str) {
    let desktop =
        std::env::var_os("DISPLAY").is_some() || std::env::var_os("WAYLAND_DISPLAY").is_some();
    let opened = desktop
        && Command::new("xdg-open")
            .arg(url)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .is_ok();
    if !opened {
        eprintln!("testnet: open the dashboard at {url}");
    }
}

/// Waits for Ctrl-C or SIGTERM, or for every process to have exited (a
/// network shutdown), reporting processes that exit on their own.
async fn wait(children: &mut [(String, Child)]) -> Result<()> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).context("cannot watch SIGTERM")?;
    let mut check = tokio::time::interval(Duration::from_millis(500));
    let mut exited = vec![false; children.len()];
    loop {
        tokio::select! {
            _ = tokio::signal::ctrl_c() => return Ok(()),
            _ = term.recv() => return Ok(()),
            _ = check.tick() => {
                for (i, (name, child)) in children.iter_mut().enumerate() {
                    if exited[i] {
                        continue;
                    }
                    if let Ok(Some(status)) = child.try_wait() {
                        exited[i] = true;
                        eprintln!("testnet: {name} exited ({status})");
                    }
                }
                if exited.iter().all(|e| *e) {
                    eprintln!("testnet: every process has exited");
                    return Ok(());
                }
            }
        }
    }
}

/// SIGTERM to every process still running, then SIGKILL to those still
/// there after [`STOP_TIMEOUT`].
fn stop_all(children: &mut Vec<(String, Child)>) {
    use nix::sys::signal::{kill, Signal};
    use nix::unistd::Pid;
    for (_, child) in children.iter_mut() {
        if let Ok(None) = child.try_wait() {
            let _ = kill(Pid::from_raw(child.id() as i32), Signal::SIGTERM);
        }
    }
    let deadline = Instant::now() + STOP_TIMEOUT;
    for (name, child) in children.iter_mut() {
        loop {
            match child.try_wait() {
                Ok(Some(_)) | Err(_) => break,
                Ok(None) if Instant::now() >= deadline => {
                    eprintln!("testnet: {name} did not stop in time; killing it");
                    let _ = child.kill();
                    let _ = child.wait();
                    break;
                }
                Ok(None) => std::thread::sleep(POLL),
            }
        }
    }
    children.clear();
}
