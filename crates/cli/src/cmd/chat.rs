//! The terminal chat: `gossipnet chat`, and `gossipnet node` when its
//! standard input and output are a terminal.
//!
//! Typed lines are broadcast; arriving messages are printed as
//! `[hh:mm:ss] name (shortid): text` above the line being typed, which is
//! redrawn intact. Lines starting with `/` are commands (`/help` lists them).
//! Three parts cooperate:
//!
//! - the editor thread: rustyline's `readline` blocks, so it runs on a thread
//!   of its own. Each line goes to the async side over a bounded channel with
//!   a oneshot the thread waits on before it reads the next one, so a
//!   command's output comes before the next prompt and `/quit` leaves no read
//!   pending;
//! - the printer task: messages, direct messages, command output and log
//!   lines all go through rustyline's external printer, which clears the
//!   input line, prints above it and redraws what was being typed. Anything
//!   written to the terminal another way would land in the middle of it;
//! - the command loop: runs each line or command against the [`Node`], and
//!   watches for signals. Ctrl-C and Ctrl-D (read by the editor as keys,
//!   since the terminal is in raw mode), `/quit`, SIGINT, SIGTERM and SIGHUP
//!   all leave the network gracefully and exit 0.
//!
//! The screen is the conversation's: logs go to [`CHAT_LOG_FILE`] in the
//! data dir (or `--log-file`), and only with `-v` to the printer, above the
//! input line ([`crate::logging`]). Neighbours coming and going show as
//! short lines ("* bob (m6q4g3qq) joined"), and the first lines say how
//! others can join.

use std::collections::{HashMap, HashSet};
use std::fmt::Write as _;
use std::io::{IsTerminal, Write as _};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result};
use gossipnet_node::chat::{sanitize, ChatBody, MAX_NAME_BYTES};
use gossipnet_node::{DirectMessage, DownReason, Events, EventsError, Node, NodeEvent, Received};
use gossipnet_proto::envelope::Kind;
use gossipnet_proto::NodeId;
use rustyline::error::ReadlineError;
use rustyline::{Config, DefaultEditor, ExternalPrinter};
use tokio::sync::{mpsc, oneshot};

use crate::graph;
use crate::logging;
use crate::signals::Signals;
use crate::util::clock;

/// Lines waiting for the printer. Absorbs a burst of messages; when it is
/// full, log lines are dropped (logging must never stall the node) and other
/// output waits its turn.
const OUTPUT_QUEUE: usize = 256;

/// Typed lines waiting for the command loop. The editor thread waits for
/// each line to be handled, so one slot is all it ever uses.
const INPUT_QUEUE: usize = 1;

/// Typed lines kept in the history, in memory and in its file.
const HISTORY_LEN: usize = 1000;

/// The history file, in the node's data directory.
const HISTORY_FILE: &str = "chat_history";

/// How long the printer may take, at exit, to show what is still queued.
const PRINTER_DRAIN: Duration = Duration::from_secs(2);

/// The input prompt.
const PROMPT: &str = "> ";

/// The chat's log file, in the node's data directory.
pub(crate) const CHAT_LOG_FILE: &str = "node.log";

/// Names remembered for the lines about neighbours; past this many the
/// memory starts afresh, so a long chat in a big network stays small.
const MAX_NAMES: usize = 4096;

/// What the chat says before the conversation starts.
#[derive(Debug)]
pub(crate) struct Intro {
    /// Addresses others can join through, the most useful first.
    pub join: Vec<SocketAddr>,
    /// Where the logs go, when not on screen.
    pub log_file: Option<PathBuf>,
}

impl Intro {
    /// The lines, one about joining and one about the logs.
    fn lines(&self) -> Vec<String> {
        let mut lines = Vec::new();
        let mut addrs = self.join.iter();
        if let Some(first) = addrs.next() {
            let mut line = format!("Others can join you with: gossipnet chat --peer {first}");
            let rest: Vec<String> = addrs.map(|a| format!("--peer {a}")).collect();
            if !rest.is_empty() {
                let _ = write!(line, " (or {})", rest.join(", "));
            }
            lines.push(line);
        }
        if let Some(path) = &self.log_file {
            lines.push(format!(
                "Logs go to {} (-v shows them here).",
                path.display()
            ));
        }
        lines
    }
}

/// Whether a node should run the terminal chat: both standard input and
/// standard output are a terminal.
pub fn on_terminal() -> bool {
    std::io::stdin().is_terminal() && std::io::stdout().is_terminal()
}

pub(crate) enum NameAnswer {
    Name(String),
    /// An empty answer: the node's default name.
    Default,
    /// Ctrl-C or Ctrl-D: nothing was started, so nothing to leave.
    Cancelled,
}

pub(crate) fn ask_name() -> Result<NameAnswer> {
    let mut editor = DefaultEditor::new().context("cannot use the terminal")?;
    loop {
        match editor.readline("Your name: ") {
            Ok(line) => match check_name(line.trim()) {
                Ok("") => return Ok(NameAnswer::Default),
                Ok(name) => return Ok(NameAnswer::Name(name.to_string())),
                Err(why) => println!("{why}"),
            },
            Err(ReadlineError::Eof | ReadlineError::Interrupted) => {
                return Ok(NameAnswer::Cancelled)
            }
            Err(e) => return Err(e).context("cannot read the terminal"),
        }
    }
}

/// The rules of a node record's name, said up front rather than as a
/// signing error later.
fn check_name(name: &str) -> Result<&str, String> {
    if name.len() > MAX_NAME_BYTES {
        Err(format!("a name is at most {MAX_NAME_BYTES} bytes"))
    } else if name.chars().any(char::is_control) {
        Err("a name cannot hold control characters".to_string())
    } else {
        Ok(name)
    }
}

/// What the editor thread sends.
enum Input {
    /// A typed line, and where to say whether to read another.
    Line(String, oneshot::Sender<Flow>),
    /// The terminal could not be read; the thread has ended.
    Failed(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Flow {
    Continue,
    Quit,
}

/// How the chat ended.
#[derive(Debug)]
enum Exit {
    /// From the keyboard: the editor has returned and restored the terminal.
    Typed,
    /// By a signal: the editor may still be in the middle of a read.
    Signal,
}

/// Runs the chat on `node` until the user quits, then leaves the network.
/// History is kept in `data_dir` when there is one.
pub async fn run(
    node: Node,
    events: Events,
    data_dir: Option<&Path>,
    intro: Intro,
    signals: &mut Signals,
) -> Result<()> {
    let history = data_dir.map(|d| d.join(HISTORY_FILE));
    let config = Config::builder()
        .max_history_size(HISTORY_LEN)
        .context("history size")?
        .history_ignore_dups(true)
        .context("history settings")?
        .build();
    let mut editor = DefaultEditor::with_config(config).context("cannot use the terminal")?;
    if let Some(path) = &history {
        // Absent on the first run; a history is a convenience, never a
        // reason not to chat.
        let _ = editor.load_history(path);
    }
    let printer: Box<dyn ExternalPrinter + Send> = Box::new(
        editor
            .create_external_printer()
            .context("cannot print to the terminal")?,
    );
    let saved_tty = TtyMode::save();

    let (out_tx, out_rx) = mpsc::channel(OUTPUT_QUEUE);
    let (detach_tx, detach_rx) = oneshot::channel();
    let (line_tx, mut line_rx) = mpsc::channel(INPUT_QUEUE);
    // The thread holds no output sender: on a signal it stays inside its
    // read, and the printer must still see every sender gone.
    std::thread::Builder::new()
        .name("chat-input".into())
        .spawn(move || read_lines(editor, history, line_tx))
        .context("cannot start the input thread")?;
    logging::divert(Some(out_tx.clone()));
    let printer_task = tokio::spawn(print_output(
        node.clone(),
        events,
        printer,
        saved_tty,
        out_rx,
        detach_rx,
    ));

    for line in intro.lines() {
        let _ = out_tx.send(line).await;
    }
    let _ = out_tx
        .send("Type a line to send it to everyone; /help lists the commands.".into())
        .await;
    let exit = command_loop(&node, &mut line_rx, &out_tx, signals).await;
    // Only a typed exit has seen the editor return; after anything else it
    // is still reading, in raw mode.
    if !matches!(exit, Ok(Exit::Typed)) {
        let _ = detach_tx.send(());
    }
    let _ = out_tx.send("Leaving the network...".into()).await;
    let left = node.leave().await;

    // Dropping every sender ends the printer once it has printed all that
    // was queued; only then is the terminal handed back. Bounded, because a
    // terminal paused with Ctrl-S would block the printer's writes.
    logging::divert(None);
    drop(out_tx);
    let _ = tokio::time::timeout(PRINTER_DRAIN, printer_task).await;
    exit?;
    left.context("leaving the network failed")
}

/// The editor thread: reads lines until the user quits or the command loop
/// says to stop.
fn read_lines(mut editor: DefaultEditor, history: Option<PathBuf>, lines: mpsc::Sender<Input>) {
    loop {
        match editor.readline(PROMPT) {
            Ok(line) => {
                if !line.trim().is_empty() && editor.add_history_entry(line.as_str()).is_ok() {
                    if let Some(path) = &history {
                        // Appended line by line, so a run ended by a signal
                        // keeps its history too.
                        let _ = editor.append_history(path);
                    }
                }
                let (reply, flow) = oneshot::channel();
                if lines.blocking_send(Input::Line(line, reply)).is_err() {
                    return;
                }
                if flow.blocking_recv() != Ok(Flow::Continue) {
                    return;
                }
            }
            // Ctrl-D on an empty line, or Ctrl-C: dropping `lines` tells the
            // command loop.
            Err(ReadlineError::Eof | ReadlineError::Interrupted) => return,
            Err(e) => {
                let _ = lines.blocking_send(Input::Failed(e.to_string()));
                return;
            }
        }
    }
}

/// Prints arriving messages and queued output until every output sender is
/// gone.
///
/// `detach` fires when a signal (not a key) ends the chat. The editor is then
/// still inside a read, in raw mode, and will never return: the printer puts
/// the terminal back, leaves the input line, and prints the rest directly.
/// (Going on through the external printer would redraw the abandoned input
/// line after each message, and after the last one too, where the shell
/// would then print its prompt.)
async fn print_output(
    node: Node,
    mut events: Events,
    printer: Box<dyn ExternalPrinter + Send>,
    tty: TtyMode,
    mut output: mpsc::Receiver<String>,
    mut detach: oneshot::Receiver<()>,
) {
    let mut printer = Some(printer);
    let mut detach_pending = true;
    let mut events_open = true;
    let mut people = People::default();
    // Neighbours that came up before the subscription are announced too;
    // any that come up from now on arrive as events, once each.
    let mut backlog = std::collections::VecDeque::new();
    for peer in node.peers().await.unwrap_or_default() {
        backlog.extend(people.up(&node, peer.id).await);
    }
    loop {
        let text = if let Some(line) = backlog.pop_front() {
            line
        } else {
            tokio::select! {
            biased;
            signalled = &mut detach, if detach_pending => {
                detach_pending = false;
                if signalled.is_ok() {
                    printer = None;
                    tty.restore();
                    println!();
                }
                continue;
            }
            line = output.recv() => match line {
                Some(line) => line,
                None => return,
            },
            event = events.recv(), if events_open => match event {
                Ok(NodeEvent::Message(m)) => {
                    people.heard(&m);
                    match message_line(&m) {
                        Some(line) => line,
                        None => continue,
                    }
                }
                Ok(NodeEvent::Direct(d)) => direct_line(&d),
                Ok(NodeEvent::NeighborUp(peer)) => match people.up(&node, peer).await {
                    Some(line) => line,
                    None => continue,
                },
                Ok(NodeEvent::NeighborDown(peer, why)) => match people.down(peer, why) {
                    Some(line) => line,
                    None => continue,
                },
                Err(EventsError::Lagged(n)) => {
                    format!("(output fell behind: {n} events not shown)")
                }
                Err(EventsError::Closed) => {
                    events_open = false;
                    continue;
                }
            },
            }
        };
        match printer.as_mut() {
            // The external printer ends a message with a newline only while
            // the editor is reading; between reads it writes the text as is.
            Some(p) => {
                if p.print(format!("{text}\n")).is_err() {
                    // The terminal is gone (hung up): nothing more can show.
                    return;
                }
            }
            None => {
                let mut out = std::io::stdout().lock();
                let _ = writeln!(out, "{text}");
                let _ = out.flush();
            }
        }
    }
}

/// Who the chat has said is here, and the names it knows, for the short
/// lines about neighbours.
#[derive(Debug, Default)]
struct People {
    names: HashMap<NodeId, String>,
    /// Neighbours announced as joined and not since as gone.
    present: HashSet<NodeId>,
}

impl People {
    fn remember(&mut self, id: NodeId, name: &str) {
        if self.names.len() >= MAX_NAMES && !self.names.contains_key(&id) {
            self.names.clear();
        }
        self.names.insert(id, sanitize(name));
    }

    /// Takes the name a chat message was signed with.
    fn heard(&mut self, m: &Received) {
        if m.kind != Kind::Chat {
            return;
        }
        if let Some(name) = ChatBody::decode(&m.body).and_then(|b| b.name) {
            self.remember(m.origin, &name);
        }
    }

    /// `name (shortid)`, or the short id alone for a peer with no name.
    fn who(&self, id: NodeId) -> String {
        match self.names.get(&id) {
            Some(name) => format!("{name} ({})", id.short()),
            None => id.short(),
        }
    }

    /// "* bob (m6q4g3qq) joined", unless bob was here already (a link
    /// replaced to rebalance is no news). The name comes from the peer's
    /// record, which has arrived by the time the node reports the
    /// neighbour up.
    async fn up(&mut self, node: &Node, peer: NodeId) -> Option<String> {
        if let Ok(peers) = node.peers().await {
            if let Some(name) = peers
                .iter()
                .find(|p| p.id == peer)
                .and_then(|p| p.name.clone())
            {
                self.remember(peer, &name);
            }
        }
        self.present
            .insert(peer)
            .then(|| format!("* {} joined", self.who(peer)))
    }

    /// "* bob (m6q4g3qq) left", or "... is unreachable, reconnecting"; a
    /// link given up to rebalance says nothing.
    fn down(&mut self, peer: NodeId, why: DownReason) -> Option<String> {
        let what = match why {
            DownReason::Left => "left",
            DownReason::Unreachable => "is unreachable, reconnecting",
            DownReason::Dropped => return None,
        };
        self.present
            .remove(&peer)
            .then(|| format!("* {} {what}", self.who(peer)))
    }
}

/// `[hh:mm:ss] name (shortid): text` for a chat message (marked `(caught
/// up)` when it was missed while away), `None` for our own (the typed line
/// shows it), other kinds and bodies that do not decode.
fn message_line(m: &Received) -> Option<String> {
    if m.kind != Kind::Chat || m.own {
        return None;
    }
    let body = ChatBody::decode(&m.body)?;
    let name = body.name.as_deref().unwrap_or("anonymous");
    Some(format!(
        "[{}] {}{name} ({}): {}",
        clock(m.time_ms),
        if m.caught_up { "(caught up) " } else { "" },
        m.origin.short(),
        body.text
    ))
}

/// `[hh:mm:ss] (dm) name (shortid): text`. Name and text are sanitized here
/// too: whatever reaches the terminal must not carry escape sequences.
fn direct_line(d: &DirectMessage) -> String {
    let name = d.name.as_deref().map(sanitize);
    format!(
        "[{}] (dm) {} ({}): {}",
        clock(d.time_ms),
        name.as_deref().unwrap_or("anonymous"),
        d.from.short(),
        sanitize(&d.text)
    )
}

/// Handles typed lines until the user quits or a signal arrives.
async fn command_loop(
    node: &Node,
    lines: &mut mpsc::Receiver<Input>,
    out: &mpsc::Sender<String>,
    signals: &mut Signals,
) -> Result<Exit> {
    loop {
        let input = tokio::select! {
            _ = signals.recv() => return Ok(Exit::Signal),
            // `gossipnet leave` or an admin's shutdown command.
            _ = node.stopped() => {
                say(out, "The node has left the network.".into()).await;
                return Ok(Exit::Signal);
            }
            input = lines.recv() => input,
        };
        let (line, reply) = match input {
            Some(Input::Line(line, reply)) => (line, reply),
            Some(Input::Failed(e)) => {
                say(out, format!("cannot read the terminal: {e}")).await;
                return Ok(Exit::Typed);
            }
            None => return Ok(Exit::Typed),
        };
        let flow = handle_line(node, &line, out).await;
        let _ = reply.send(flow);
        if flow == Flow::Quit {
            return Ok(Exit::Typed);
        }
    }
}

const HELP: &str = "\
Type a line and press Enter to send it to everyone. Commands:
  /peers          the neighbours this node has a link to
  /status         this node's id, name, address, views and counters
  /dm ID TEXT     a direct message; ID is a full id or the start of a known peer's id
  /name NAME      change the name shown beside your messages
  /size           the number of nodes: counted by a crawl, and the gossip estimate
  /graph [FILE]   crawl the network: a summary, and its picture as SVG (default topology.svg)
  /help           this list
  /quit           leave the network and exit (also Ctrl-C or Ctrl-D)
A line starting with // is sent with a single /.";

async fn handle_line(node: &Node, line: &str, out: &mpsc::Sender<String>) -> Flow {
    let line = line.trim();
    if line.is_empty() {
        return Flow::Continue;
    }
    let text = match line.strip_prefix('/') {
        Some(rest) if rest.starts_with('/') => rest,
        Some(command) => return run_command(node, command, out).await,
        None => line,
    };
    if let Err(e) = node.broadcast_text(text).await {
        say(out, format!("not sent: {:#}", anyhow::Error::from(e))).await;
    }
    Flow::Continue
}

async fn run_command(node: &Node, command: &str, out: &mpsc::Sender<String>) -> Flow {
    let (name, rest) = command
        .split_once(char::is_whitespace)
        .map(|(n, r)| (n, r.trim()))
        .unwrap_or((command, ""));
    let reply = match name {
        "quit" | "exit" => return Flow::Quit,
        "help" => HELP.to_string(),
        "peers" => peers(node).await,
        "status" => status(node).await,
        "dm" => direct(node, rest).await,
        "name" => rename(node, rest).await,
        "size" => size(node).await,
        "graph" => topology(node, rest).await,
        _ => format!("unknown command /{name}; /help lists the commands"),
    };
    say(out, reply).await;
    Flow::Continue
}

async fn say(out: &mpsc::Sender<String>, text: String) {
    let _ = out.send(text).await;
}

async fn size(node: &Node) -> String {
    let topology = node.crawl(|_| {}).await;
    let summary = graph::summarize(&topology);
    let estimate = match node.status().await.ok().and_then(|s| s.size_estimate) {
        Some(e) => format!("{e:.1}"),
        None => "not yet".into(),
    };
    format!(
        "{} nodes (crawled), estimate {estimate} (gossip)",
        summary.nodes
    )
}

async fn topology(node: &Node, file: &str) -> String {
    let topology = node.crawl(|_| {}).await;
    let summary = graph::summarize(&topology);
    let path = if file.is_empty() {
        "topology.svg"
    } else {
        file
    };
    let mut text = graph::render_text(&summary);
    match std::fs::write(path, graph::to_svg(&topology, 1)) {
        Ok(()) => {
            let _ = write!(text, "picture written to {path}");
        }
        Err(e) => {
            let _ = write!(text, "cannot write {path}: {e}");
        }
    }
    text
}

async fn peers(node: &Node) -> String {
    let peers = match node.peers().await {
        Ok(peers) => peers,
        Err(e) => return format!("cannot list peers: {e}"),
    };
    if peers.is_empty() {
        return "no neighbours yet".into();
    }
    let mut text = format!("{} neighbour(s):", peers.len());
    for p in &peers {
        let listen = p
            .listen
            .first()
            .or(p.addr.as_ref())
            .map_or_else(|| "-".to_string(), |a| a.to_string());
        let name = p.name.as_deref().map(sanitize);
        let _ = write!(
            text,
            "\n  {}  {}  {listen}  {}",
            name.as_deref().unwrap_or("-"),
            p.id.short(),
            p.direction.map_or("-", |d| d.as_str()),
        );
        if let Some(ms) = p.rtt_ms {
            let _ = write!(text, "  {ms:.1} ms");
        }
    }
    text
}

async fn status(node: &Node) -> String {
    let s = match node.status().await {
        Ok(s) => s,
        Err(e) => return format!("cannot get the status: {e}"),
    };
    let neighbours: Vec<String> = s.views.active.iter().map(|p| p.id.short()).collect();
    let size = s
        .size_estimate
        .map_or_else(|| "not known yet".to_string(), |n| format!("about {n:.0}"));
    format!(
        "id          {}\nname        {}\nlisten      {}\nneighbours  {} {}\npassive     {}\ndelivered   {}\nnetwork     {size} nodes",
        s.identity.id,
        s.identity.name.as_deref().unwrap_or("-"),
        s.identity.listen,
        s.views.active.len(),
        if neighbours.is_empty() {
            String::new()
        } else {
            format!("({})", neighbours.join(", "))
        },
        s.views.passive.len(),
        s.counters.delivered,
    )
}

async fn direct(node: &Node, args: &str) -> String {
    let Some((target, text)) = args
        .split_once(char::is_whitespace)
        .map(|(t, x)| (t, x.trim()))
        .filter(|(_, x)| !x.is_empty())
    else {
        return "usage: /dm ID TEXT".into();
    };
    let known = match node.status().await {
        Ok(s) => s
            .views
            .active
            .iter()
            .map(|p| p.id)
            .chain(s.views.passive.iter().copied())
            .collect::<Vec<_>>(),
        Err(e) => return format!("cannot look up peers: {e}"),
    };
    let to = match resolve(target, &known) {
        Ok(id) => id,
        Err(why) => return why,
    };
    match node.send_direct(to, text).await {
        Ok(_) => format!(
            "[{}] (dm to {}): {text}",
            clock(gossipnet_node::time::unix_ms()),
            to.short()
        ),
        Err(e) => format!("not sent to {}: {:#}", to.short(), anyhow::Error::from(e)),
    }
}

/// A full id, or the one known id that starts with `text`.
fn resolve(text: &str, known: &[NodeId]) -> Result<NodeId, String> {
    if let Ok(id) = text.parse::<NodeId>() {
        return Ok(id);
    }
    let prefix = text.to_ascii_lowercase();
    let mut matches: Vec<NodeId> = known
        .iter()
        .filter(|id| id.to_string().starts_with(&prefix))
        .copied()
        .collect();
    matches.sort_by_key(|id| id.to_string());
    matches.dedup();
    match matches.as_slice() {
        [] => Err(format!(
            "no known peer has an id starting with '{text}' (/peers lists neighbours)"
        )),
        [one] => Ok(*one),
        many => Err(format!(
            "'{text}' matches {} peers ({}); type more of the id",
            many.len(),
            many.iter()
                .map(NodeId::short)
                .collect::<Vec<_>>()
                .join(", ")
        )),
    }
}

async fn rename(node: &Node, name: &str) -> String {
    let name = match check_name(name) {
        Ok("") => return "usage: /name NAME".into(),
        Ok(name) => name,
        Err(why) => return why,
    };
    match node.set_name(name.to_string()).await {
        Ok(_) => format!("you are now {name}"),
        Err(e) => format!("cannot change the name: {:#}", anyhow::Error::from(e)),
    }
}

/// The terminal's settings before the chat, to put back when a signal ends
/// it while the editor holds the terminal in raw mode.
struct TtyMode(Option<nix::sys::termios::Termios>);

impl TtyMode {
    fn save() -> TtyMode {
        TtyMode(nix::sys::termios::tcgetattr(std::io::stdin()).ok())
    }

    fn restore(&self) {
        if let Some(mode) = &self.0 {
            let _ = nix::sys::termios::tcsetattr(
                std::io::stdin(),
                nix::sys::termios::SetArg::TCSADRAIN,
                mode,
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use gossipnet_proto::SecretKey;

    fn id() -> NodeId {
        SecretKey::generate(&mut rand::rngs::OsRng).node_id()
    }

    #[test]
    fn resolve_takes_full_ids_and_unique_prefixes() {
        let a = id();
        let b = id();
        let known = [a, b];
        assert_eq!(resolve(&a.to_string(), &[]), Ok(a));
        assert_eq!(resolve(&b.short(), &known), Ok(b));
        assert_eq!(resolve(&b.short().to_uppercase(), &known), Ok(b));
        // The empty prefix matches both: ambiguous, never a guess.
        assert!(resolve("", &known).unwrap_err().contains("matches 2"));
        assert!(resolve("0", &known).is_err());
    }

    #[test]
    fn names_follow_the_record_rules() {
        assert_eq!(check_name("ann"), Ok("ann"));
        assert!(check_name("a\u{1b}b").is_err());
        assert!(check_name(&"x".repeat(MAX_NAME_BYTES + 1)).is_err());
    }

    #[test]
    fn chat_messages_print_with_name_and_short_id() {
        let origin = id();
        let body = ChatBody {
            name: Some("ann".into()),
            text: "hi".into(),
        };
        let m = Received {
            id: gossipnet_proto::MessageId([0; 32]),
            origin,
            seq: 1,
            time_ms: 0,
            kind: Kind::Chat,
            body: body.encode().into(),
            hops: 1,
            own: false,
            caught_up: false,
        };
        let line = message_line(&m).unwrap();
        assert!(
            line.ends_with(&format!("ann ({}): hi", origin.short())),
            "{line}"
        );
        assert!(line.starts_with('['));
        let late = Received {
            caught_up: true,
            ..m.clone()
        };
        assert!(message_line(&late).unwrap().contains("] (caught up) ann"));
        let own = Received { own: true, ..m };
        assert_eq!(message_line(&own), None);
    }
}
