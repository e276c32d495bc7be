//! The terminal chat on a real pseudo-terminal: `gossipnet node` and
//! `gossipnet chat` run inside tmux, typed at with `send-keys` and read with
//! `capture-pane`, next to plain piped nodes.
//!
//! What matters here cannot be seen on a pipe: a message arriving while a
//! line is half typed must print above the input line and leave what was
//! typed intact. Every wait polls the screen against a deadline. Each pane
//! has a tmux server of its own, its socket in the test's temporary
//! directory, killed when the test ends, pass or fail. Without tmux the
//! tests are skipped with a printed reason.

mod common;

use std::process::{Command, Output};
use std::time::{Duration, Instant};

use common::{args, bin, Proc, TempDir, DEADLINE};

/// Pane size: wide enough that a log line (about 110 columns) does not wrap.
const COLUMNS: &str = "120";
const ROWS: &str = "30";

/// What the shell prints, before the status and `]`, when the program exits.
const EXITED: &str = "[gossipnet exited with status ";

/// Characters in a node id (32 bytes in base32).
const ID_LEN: usize = 52;

/// How often the screen is read while waiting for it to change.
const POLL: Duration = Duration::from_millis(20);

fn tmux_available() -> bool {
    Command::new("tmux")
        .arg("-V")
        .output()
        .is_ok_and(|o| o.status.success())
}

/// One program in a detached tmux session, on a tmux server of its own.
struct Pane {
    socket: String,
    name: String,
}

impl Pane {
    /// Starts `gossipnet ARGS` in a new pane. The shell that runs it prints
    /// its exit status, and the pane stays after it exits so that line can be
    /// read. (tmux's own `pane_dead_status` is not used: tmux 3.3 sometimes
    /// leaves the exited program unreaped, so the status never arrives.)
    fn start(dir: &TempDir, name: &str, gossipnet_args: &[String]) -> Pane {
        let socket = dir.join(&format!("tmux-{name}"));
        let mut command = format!("env RUST_LOG=info {}", quote(bin()));
        for a in gossipnet_args {
            command.push(' ');
            command.push_str(&quote(a));
        }
        command.push_str(&format!("; echo \"{EXITED}$?]\""));
        let pane = Pane {
            socket,
            name: name.to_string(),
        };
        let out = pane.tmux(&[
            "new-session",
            "-d",
            "-s",
            name,
            "-x",
            COLUMNS,
            "-y",
            ROWS,
            &command,
            ";",
            "set-option",
            "-w",
            "-t",
            name,
            "remain-on-exit",
            "on",
        ]);
        assert!(
            out.status.success(),
            "tmux new-session failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        pane
    }

    fn tmux(&self, list: &[&str]) -> Output {
        Command::new("tmux")
            // No user config: key bindings or options there could change
            // what the pane shows.
            .args(["-S", &self.socket, "-f", "/dev/null"])
            .args(list)
            .output()
            .expect("run tmux")
    }

    /// Types `text` as it is (no key names).
    fn type_text(&self, text: &str) {
        let out = self.tmux(&["send-keys", "-t", &self.name, "-l", text]);
        assert!(out.status.success(), "send-keys failed");
    }

    /// Presses a key by its tmux name (`Enter`, `C-d`).
    fn key(&self, key: &str) {
        let out = self.tmux(&["send-keys", "-t", &self.name, key]);
        assert!(out.status.success(), "send-keys failed");
    }

    /// Types a line and presses Enter.
    fn line(&self, text: &str) {
        self.type_text(text);
        self.key("Enter");
    }

    /// The screen's lines, wrapped lines joined, trailing blanks removed.
    fn screen(&self) -> Vec<String> {
        let out = self.tmux(&["capture-pane", "-p", "-J", "-t", &self.name]);
        let mut lines: Vec<String> = String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(|l| l.trim_end().to_string())
            .collect();
        while lines.last().is_some_and(|l| l.is_empty()) {
            lines.pop();
        }
        lines
    }

    /// Waits until `pred` holds on the screen; panics, showing the screen,
    /// when the deadline passes first.
    fn wait(&self, what: &str, mut pred: impl FnMut(&[String]) -> bool) -> Vec<String> {
        let until = Instant::now() + DEADLINE;
        loop {
            let screen = self.screen();
            if pred(&screen) {
                return screen;
            }
            assert!(
                Instant::now() < until,
                "{}: never saw {what}; screen:\n{}",
                self.name,
                screen.join("\n")
            );
            std::thread::sleep(POLL);
        }
    }

    /// Waits until some line of the screen contains `text`.
    fn wait_text(&self, text: &str) -> Vec<String> {
        self.wait(&format!("'{text}'"), |s| s.iter().any(|l| l.contains(text)))
    }

    /// Waits until the input line (the last line) is the prompt followed by
    /// `typed`.
    fn wait_input(&self, typed: &str) -> Vec<String> {
        let want = format!("> {typed}");
        self.wait(&format!("the input line '{want}'"), |s| {
            s.last().is_some_and(|l| l.trim_end() == want.trim_end())
        })
    }

    /// The node id from the readiness line (once it is drawn whole).
    fn node_id(&self) -> String {
        self.readiness().1
    }

    /// The listen address from the readiness line.
    fn node_addr(&self) -> String {
        self.readiness().0
    }

    /// The address and id of the readiness line, once it is drawn whole.
    fn readiness(&self) -> (String, String) {
        let mut ready = None;
        self.wait("the readiness line", |screen| {
            ready = screen.iter().find_map(|l| {
                let (_, rest) = l.split_once(" listening on ")?;
                let (addr, id) = rest.split_once(" as ")?;
                (id.trim().len() == ID_LEN)
                    .then(|| (addr.trim().to_string(), id.trim().to_string()))
            });
            ready.is_some()
        });
        ready.unwrap()
    }

    /// Waits until the program has exited, and returns its exit status.
    fn wait_exit(&self) -> i32 {
        let mut status = None;
        self.wait("the program exit", |screen| {
            status = screen.iter().find_map(|l| {
                l.split_once(EXITED)?
                    .1
                    .strip_suffix(']')?
                    .parse::<i32>()
                    .ok()
            });
            status.is_some()
        });
        status.unwrap()
    }
}

impl Drop for Pane {
    fn drop(&mut self) {
        let _ = self.tmux(&["kill-server"]);
        // tmux leaves its socket file behind.
        let _ = std::fs::remove_file(&self.socket);
    }
}

/// Quotes `text` for the shell tmux runs the command with.
fn quote(text: &str) -> String {
    format!("'{}'", text.replace('\'', r"'\''"))
}

/// `CMD PORT` on loopback, with a data directory `dir/label`, named
/// `label` unless `named` is false.
fn node_args(
    cmd: &str,
    port: u16,
    dir: &TempDir,
    label: &str,
    named: bool,
    extra: &[String],
) -> Vec<String> {
    let mut a = args(&[
        cmd,
        &port.to_string(),
        "--host",
        "127.0.0.1",
        "--data-dir",
        &dir.join(label),
        // Tests running side by side must not find each other on the LAN.
        "--no-mdns",
    ]);
    if named {
        a.extend(args(&["--name", label]));
    }
    a.extend(extra.iter().cloned());
    a
}

/// Whether `line` is a log line: a tracing timestamp, or a level between
/// spaces.
fn is_log_line(line: &str) -> bool {
    let stamp = line.len() > 11
        && line.as_bytes()[..4].iter().all(u8::is_ascii_digit)
        && line.as_bytes()[4] == b'-'
        && line.as_bytes()[10] == b'T';
    stamp
        || [" TRACE ", " DEBUG ", " INFO ", " WARN ", " ERROR "]
            .iter()
            .any(|level| line.contains(level))
}

/// Panics, showing the screen, if any line on `pane`'s screen is a log line.
fn assert_no_log_lines(pane: &Pane) {
    let screen = pane.screen();
    if let Some(line) = screen.iter().find(|l| is_log_line(l)) {
        panic!(
            "{}: a log line on the screen: '{line}'\nscreen:\n{}",
            pane.name,
            screen.join("\n")
        );
    }
}

/// Whether `line` is `[hh:mm:ss]` followed by `rest`, and nothing else.
fn is_message_line(line: &str, rest: &str) -> bool {
    let Some((stamp, tail)) = line.split_at_checked(10) else {
        return false;
    };
    let digits = stamp.as_bytes();
    tail == rest
        && digits[0] == b'['
        && digits[9] == b']'
        && [1, 2, 4, 5, 7, 8]
            .iter()
            .all(|&i| digits[i].is_ascii_digit())
        && digits[3] == b':'
        && digits[6] == b':'
}

#[test]
fn a_message_arriving_mid_line_prints_above_the_input_line() {
    if !tmux_available() {
        eprintln!("skipping: tmux is not installed (apt-get install tmux)");
        return;
    }
    let dir = TempDir::new("chat-typing");
    let mut b = Proc::start("b", &node_args("node", 0, &dir, "b", true, &[]));
    let a = Pane::start(
        &dir,
        "a",
        &node_args("node", 0, &dir, "a", true, &[b.addr.clone()]),
    );
    let a_short = a.node_id()[..8].to_string();
    assert!(b.wait_neighbors(1), "b never got a neighbour\n{}", b.logs());
    a.wait_text(&format!("* b ({}) joined", b.short()));
    a.wait_input("");

    // A typed line is broadcast.
    a.line("hello from a");
    assert!(
        b.wait_output(&format!("a ({a_short}): hello from a")),
        "b never printed a's line\n{}\nscreen:\n{}",
        b.logs(),
        a.screen().join("\n")
    );

    // Half a line typed, then a message arrives.
    a.type_text("half typed");
    a.wait_input("half typed");
    b.say("incoming while typing");
    let expected = format!(" b ({}): incoming while typing", b.short());
    let screen = a.wait("the message above the intact input line", |s| {
        s.iter().any(|l| l.contains("incoming while typing"))
            && s.last().is_some_and(|l| l == "> half typed")
    });
    let message = screen
        .iter()
        .position(|l| l.contains("incoming while typing"))
        .unwrap();
    assert!(
        is_message_line(&screen[message], &expected),
        "the message line is not intact: '{}'\nscreen:\n{}",
        screen[message],
        screen.join("\n")
    );
    assert!(
        message < screen.len() - 1,
        "the message is not above the input line"
    );
    assert!(
        screen
            .iter()
            .all(|l| !(l.contains("half typed") && l.contains("incoming"))),
        "a line mixes the message and the typed text:\n{}",
        screen.join("\n")
    );

    // Finishing the line sends all of it.
    a.key("Enter");
    assert!(
        b.wait_output(&format!("a ({a_short}): half typed")),
        "b never printed the finished line\n{}",
        b.logs()
    );

    // Commands print their answers on the terminal, not to the network.
    a.line("/peers");
    a.wait_text(&format!("  b  {}  {}  outbound", b.short(), b.addr));
    a.line("/frobnicate");
    a.wait_text("unknown command /frobnicate; /help lists the commands");
    a.line("/size");
    a.wait_text("2 nodes (crawled)");
    let picture = dir.join("chat-topology.svg");
    a.line(&format!("/graph {picture}"));
    a.wait_text(&format!("picture written to {picture}"));
    let svg = std::fs::read_to_string(&picture).unwrap();
    assert_eq!(svg.matches("<circle class=\"node").count(), 2, "{svg}");

    a.line("/quit");
    assert_eq!(a.wait_exit(), 0, "a did not exit 0");
    assert!(
        b.wait_log(&["peer left the network", &a_short]),
        "a did not leave gracefully\n{}",
        b.logs()
    );
    assert_eq!(b.count_output("/peers"), 0, "a command was broadcast");
}

#[test]
fn chat_asks_for_a_name_and_carries_direct_messages() {
    if !tmux_available() {
        eprintln!("skipping: tmux is not installed (apt-get install tmux)");
        return;
    }
    let dir = TempDir::new("chat-dm");
    // No --name: the chat asks for one.
    let carol = Pane::start(
        &dir,
        "carol",
        &node_args("chat", 0, &dir, "carol", false, &[]),
    );
    carol.wait_text("Your name:");
    carol.line("carol");
    let carol_id = carol.node_id();
    carol.wait_text("gossipnet node carol listening on");
    let carol_addr = carol.node_addr();

    let dave = Pane::start(
        &dir,
        "dave",
        &node_args("chat", 0, &dir, "dave", true, &[carol_addr]),
    );
    let dave_id = dave.node_id();
    dave.wait_text(&format!("* carol ({}) joined", &carol_id[..8]));
    carol.wait_text(&format!("* dave ({}) joined", &dave_id[..8]));
    dave.wait_input("");

    // A short prefix of a neighbour's id is enough.
    dave.line(&format!("/dm {} psst, carol", &carol_id[..6]));
    dave.wait_text(&format!("(dm to {}): psst, carol", &carol_id[..8]));
    let screen = carol.wait_text("psst, carol");
    let line = screen.iter().find(|l| l.contains("psst, carol")).unwrap();
    assert!(
        is_message_line(
            line,
            &format!(" (dm) dave ({}): psst, carol", &dave_id[..8])
        ),
        "the direct message line is not as expected: '{line}'"
    );

    // A new name is used from the next message on.
    carol.line("/name caroline");
    carol.wait_text("you are now caroline");
    carol.line("hi all");
    dave.wait_text(&format!("caroline ({}): hi all", &carol_id[..8]));

    // Ctrl-D and Ctrl-C both leave and exit 0.
    dave.key("C-d");
    assert_eq!(dave.wait_exit(), 0, "dave did not exit 0 on Ctrl-D");
    carol.type_text("never sent");
    carol.key("C-c");
    assert_eq!(carol.wait_exit(), 0, "carol did not exit 0 on Ctrl-C");

    // Typed lines are kept as history in the data directory.
    let history = std::fs::read_to_string(dir.path().join("dave").join("chat_history"))
        .expect("dave's chat history");
    assert!(history.contains("/dm "), "history: {history}");
}

#[test]
fn three_chats_keep_the_screen_for_the_conversation() {
    if !tmux_available() {
        eprintln!("skipping: tmux is not installed (apt-get install tmux)");
        return;
    }
    let dir = TempDir::new("chat-three");
    let alice = Pane::start(
        &dir,
        "alice",
        &node_args("chat", 0, &dir, "alice", true, &[]),
    );
    let alice_id = alice.node_id();
    let alice_addr = alice.node_addr();
    // The start-up says how others join: the line to give them.
    let screen = alice.wait_text("Others can join you with: gossipnet chat --peer ");
    let join = screen
        .iter()
        .find_map(|l| l.split_once("Others can join you with: gossipnet chat --peer "))
        .map(|(_, rest)| rest.split_whitespace().next().unwrap_or("").to_string())
        .unwrap();
    assert_eq!(join, alice_addr, "the join line names another address");
    alice.wait_text(&format!("Logs go to {}", dir.join("alice/node.log")));

    // bob as a new user would type it: --port, --name, then the peer.
    let bob = Pane::start(
        &dir,
        "bob",
        &args(&[
            "chat",
            "--port",
            "0",
            "--name",
            "bob",
            "--host",
            "127.0.0.1",
            "--data-dir",
            &dir.join("bob"),
            "--no-mdns",
            &alice_addr,
        ]),
    );
    let bob_id = bob.node_id();
    // carol with the line alice's screen gave.
    let carol = Pane::start(
        &dir,
        "carol",
        &node_args("chat", 0, &dir, "carol", true, &args(&["--peer", &join])),
    );
    let carol_id = carol.node_id();
    let who = |name: &str, id: &str| format!("{name} ({})", &id[..8]);
    bob.wait_text(&format!("* {} joined", who("alice", &alice_id)));
    carol.wait_text(&format!("* {} joined", who("alice", &alice_id)));
    alice.wait_text(&format!("* {} joined", who("bob", &bob_id)));
    alice.wait_text(&format!("* {} joined", who("carol", &carol_id)));

    // alice is half way through a line while the others talk.
    alice.wait_input("");
    alice.type_text("half a thought");
    alice.wait_input("half a thought");
    for round in 0..3 {
        bob.line(&format!("bob says {round}"));
        carol.line(&format!("carol says {round}"));
    }
    let screen = alice.wait("the others' lines above the intact input line", |s| {
        s.iter().any(|l| l.ends_with("carol says 2"))
            && s.iter().any(|l| l.ends_with("bob says 2"))
            && s.last().is_some_and(|l| l == "> half a thought")
    });
    for line in screen.iter().filter(|l| l.contains(" says ")) {
        assert!(
            is_message_line(
                line,
                &format!(
                    " {}: bob says {}",
                    who("bob", &bob_id),
                    &line[line.len() - 1..]
                )
            ) || is_message_line(
                line,
                &format!(
                    " {}: carol says {}",
                    who("carol", &carol_id),
                    &line[line.len() - 1..]
                )
            ),
            "not a whole message line: '{line}'\nscreen:\n{}",
            screen.join("\n")
        );
    }
    for pane in [&alice, &bob, &carol] {
        assert_no_log_lines(pane);
    }

    // carol leaves: the others are told in a short line.
    carol.line("/quit");
    assert_eq!(carol.wait_exit(), 0, "carol did not exit 0");
    alice.wait_text(&format!("* {} left", who("carol", &carol_id)));
    bob.wait_text(&format!("* {} left", who("carol", &carol_id)));
    assert_eq!(
        alice.screen().last().map(String::as_str),
        Some("> half a thought")
    );

    // The half-typed line was never lost: finished, it is sent whole.
    alice.type_text(", finished");
    alice.key("Enter");
    bob.wait_text(&format!(
        "{}: half a thought, finished",
        who("alice", &alice_id)
    ));
    for pane in [&alice, &bob, &carol] {
        assert_no_log_lines(pane);
    }
    // The logs were written, to the file the start-up named.
    let log = std::fs::read_to_string(dir.path().join("alice").join("node.log")).unwrap();
    assert!(log.contains("link up"), "alice's log file:\n{log}");
}
