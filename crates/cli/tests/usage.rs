//! What a person types, right and wrong: the forgiving forms of `node` and
//! `chat` arguments, the errors for the wrong ones (the argument named, the
//! right form shown, exit code 2, nothing started), two nodes started at
//! once without a port, and the shell completions and man page.

mod common;

use std::process::{Command, Output, Stdio};

use common::{args, bin, Proc, TempDir};

/// Runs `gossipnet ARGS` to the end, with no input.
fn run(list: &[&str]) -> Output {
    Command::new(bin())
        .args(list)
        .stdin(Stdio::null())
        .output()
        .expect("run gossipnet")
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Runs a node command that must be refused: exit 2, `says` in the error,
/// and no readiness line (nothing was started).
fn refused(list: &[&str], says: &str) {
    let out = run(list);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(2), "{list:?}: {err}");
    assert!(err.contains(says), "{list:?}: '{says}' not in: {err}");
    assert!(!err.contains("listening on"), "{list:?} started: {err}");
}

#[test]
fn wrong_arguments_are_named_with_the_right_form_and_exit_2() {
    let dir = TempDir::new("usage-wrong");
    let data = dir.join("d");
    let node = |extra: &[&str]| {
        let mut a = vec!["node", "--data-dir", &data, "--no-mdns"];
        a.extend_from_slice(extra);
        a.iter().map(|s| s.to_string()).collect::<Vec<_>>()
    };
    let check = |extra: &[&str], says: &str| {
        let a = node(extra);
        let list: Vec<&str> = a.iter().map(String::as_str).collect();
        refused(&list, says);
    };
    check(
        &["--port", "5", "6"],
        "'6' looks like a port, but the port is already given (--port 5)",
    );
    check(
        &["7000", "7001"],
        "a peer is HOST:PORT, for example 127.0.0.1:7001",
    );
    check(
        &["70000"],
        "'70000' is not a port: ports go from 0 to 65535",
    );
    check(
        &["abc"],
        "'abc' is neither a port nor a peer HOST:PORT; the form is: [PORT] [HOST:PORT ...]",
    );
    check(&["--peer", "nowhere"], "--peer nowhere");
    for name in ["..", "../elsewhere", "/tmp/x"] {
        refused(
            &["node", "0", "--no-mdns", "--name", name],
            "cannot name a data directory",
        );
    }
    check(&["--api", "0.0.0.0:0"], "listens on loopback only");

    let config = dir.path().join("net.toml");
    std::fs::write(&config, "network_id = \"x\"\ncolour = \"blue\"\n").unwrap();
    check(
        &["--config", config.to_str().unwrap()],
        "unknown field `colour`",
    );
    for (toml, says) in [
        (
            "[limits]\nhandshake_timeout_ms = 0\n",
            "limits.handshake_timeout_ms in the config must be at least 1",
        ),
        (
            "[limits]\nmax_inbound = 0\n",
            "limits.max_inbound in the config must be at least 1",
        ),
        (
            "[protocol]\nping_after_ms = 5000\ndead_after_ms = 1000\n",
            "must be above 0 and below protocol.dead_after_ms",
        ),
    ] {
        std::fs::write(&config, toml).unwrap();
        check(&["--config", config.to_str().unwrap()], says);
    }
    // A mistake clap finds itself exits 2 too.
    refused(&["node", "--no-such-flag"], "--no-such-flag");
}

#[test]
fn with_port_given_a_positional_host_port_is_a_peer() {
    let dir = TempDir::new("usage-peer");
    let alice = Proc::start(
        "alice",
        &args(&[
            "node",
            "0",
            "--host",
            "127.0.0.1",
            "--data-dir",
            &dir.join("alice"),
            "--name",
            "alice",
            "--no-mdns",
        ]),
    );
    // `gossipnet chat --port P --name bob 127.0.0.1:Q`, as a script runs it.
    let bob = Proc::start(
        "bob",
        &args(&[
            "node",
            "--port",
            "0",
            "--name",
            "bob",
            "--host",
            "127.0.0.1",
            "--data-dir",
            &dir.join("bob"),
            "--no-mdns",
            &alice.addr,
        ]),
    );
    assert!(
        bob.wait_neighbors(1),
        "bob never joined alice\n{}",
        bob.logs()
    );
    assert!(
        alice.wait_neighbors(1),
        "alice never saw bob\n{}",
        alice.logs()
    );
}

#[test]
fn two_nodes_started_at_once_without_a_port_take_different_ports() {
    let dir = TempDir::new("usage-ports");
    let start = |name: &str| {
        let a = args(&[
            "node",
            "--host",
            "127.0.0.1",
            "--data-dir",
            &dir.join(name),
            "--no-mdns",
        ]);
        let name = name.to_string();
        std::thread::spawn(move || Proc::start(&name, &a))
    };
    // Both from one script, at the same moment: each binds a port of the
    // default range and keeps it, so neither finds its port taken.
    let (a, b) = (start("a"), start("b"));
    let (a, b) = (a.join().unwrap(), b.join().unwrap());
    assert_ne!(a.addr, b.addr, "both nodes on one address");
}

#[test]
fn a_data_dir_in_use_is_refused_and_left_as_it_was() {
    let dir = TempDir::new("usage-inuse");
    let data = dir.join("shared");
    let node = |name: &str| {
        args(&[
            "node",
            "0",
            "--host",
            "127.0.0.1",
            "--data-dir",
            &data,
            "--name",
            name,
            "--no-mdns",
        ])
    };
    let first = Proc::start("first", &node("first"));
    let control = std::fs::read(std::path::Path::new(&data).join("control.json")).unwrap();
    let list = node("second");
    let list: Vec<&str> = list.iter().map(String::as_str).collect();
    refused(&list, "is in use by another gossipnet process");
    // The running node's files are untouched: same control file, same id.
    let after = std::fs::read(std::path::Path::new(&data).join("control.json")).unwrap();
    assert_eq!(control, after, "the second process wrote the control file");
    drop(first);
    // Once the first is gone (killed: the kernel drops its lock), the
    // directory can be used again, with the same identity.
    let again = Proc::start("again", &node("again"));
    assert_eq!(again.id, first_id(&control), "another identity");
}

/// The node id in a control file's JSON.
fn first_id(control: &[u8]) -> String {
    let v: serde_json::Value = serde_json::from_slice(control).unwrap();
    v["id"].as_str().unwrap().to_string()
}

#[test]
fn bash_completions_load_and_the_man_page_renders() {
    let dir = TempDir::new("usage-shell");
    let script = dir.path().join("gossipnet.bash");
    let out = run(&["completions", "bash"]);
    assert!(out.status.success(), "{}", stderr(&out));
    std::fs::write(&script, &out.stdout).unwrap();
    let bash = Command::new("bash")
        .arg("-c")
        .arg(format!(
            "source '{}' && complete -p gossipnet",
            script.display()
        ))
        .output()
        .expect("run bash");
    let said = String::from_utf8_lossy(&bash.stdout);
    assert!(
        bash.status.success() && said.contains("-F _gossipnet gossipnet"),
        "complete -p: {said} {}",
        String::from_utf8_lossy(&bash.stderr)
    );
    for shell in ["zsh", "fish"] {
        let out = run(&["completions", shell]);
        assert!(out.status.success() && out.stdout.len() > 1000, "{shell}");
    }

    let page = dir.path().join("gossipnet.1");
    let out = run(&["man"]);
    assert!(out.status.success(), "{}", stderr(&out));
    std::fs::write(&page, &out.stdout).unwrap();
    let pages = dir.path().join("man1");
    let out = run(&["man", "--out-dir", pages.to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr(&out));
    for (file, says) in [
        (page, "SUBCOMMANDS"),
        (pages.join("gossipnet-node.1"), "--peer"),
        (pages.join("gossipnet-chat.1"), "--verbose"),
    ] {
        let man = Command::new("man")
            .arg("-l")
            .arg(&file)
            .env("MANPAGER", "cat")
            .env("MANWIDTH", "100")
            .output()
            .expect("run man (apt-get install man-db)");
        let text = String::from_utf8_lossy(&man.stdout);
        assert!(
            man.status.success() && text.contains(says) && text.contains("gossipnet"),
            "man -l {}: {text}{}",
            file.display(),
            String::from_utf8_lossy(&man.stderr)
        );
    }
}

/// Runs a node on the data dir `data` that must be refused with exit 2,
/// saying each of `says`.
fn refused_on(data: &str, extra: &[&str], says: &[&str]) {
    let mut list = vec!["node", "0", "--data-dir", data, "--no-mdns"];
    if !extra.contains(&"--host") {
        list.extend_from_slice(&["--host", "127.0.0.1"]);
    }
    list.extend_from_slice(extra);
    let out = run_bounded(&list);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(2), "{list:?}: {err}");
    for s in says {
        assert!(err.contains(s), "{list:?}: '{s}' not in: {err}");
    }
    assert!(!err.contains("listening on"), "{list:?} started: {err}");
}

#[test]
fn malformed_configs_and_invalid_limits_are_named_and_exit_2() {
    let dir = TempDir::new("usage-config");
    let data = dir.join("d");
    let config = dir.path().join("net.toml");
    let path = config.to_str().unwrap();
    // What the parser refuses names the file; a value it takes but we
    // refuse names the key.
    for (toml, says) in [
        ("network_id = \"x\n", &[path, "is not valid"][..]),
        ("this is not toml at all", &[path, "is not valid"]),
        ("[limits]\nmax_inbound = -1\n", &[path, "max_inbound"]),
        ("[limits]\nmax_inbound = \"many\"\n", &[path, "max_inbound"]),
        ("[limits]\nspeed = 3\n", &[path, "unknown field `speed`"]),
        (
            "[limits]\nmax_inbound_per_ip = 0\n",
            &["limits.max_inbound_per_ip in the config must be at least 1"],
        ),
        (
            "[protocol]\nactive_view = 0\n",
            &["protocol.active_view must be at least 1"],
        ),
        (
            "[protocol]\nactive_view = 65\n",
            &["protocol.active_view must be at most 64"],
        ),
        ("peers = [\"nowhere\"]\n", &["'nowhere' is not HOST:PORT"]),
    ] {
        std::fs::write(&config, toml).unwrap();
        refused_on(&data, &["--config", path], says);
    }
    refused_on(
        &data,
        &["--config", &dir.join("missing.toml")],
        &["cannot read config file", "missing.toml"],
    );
}

#[test]
fn unparseable_addresses_are_named_and_exit_2() {
    let dir = TempDir::new("usage-addr");
    let data = dir.join("d");
    for (extra, says) in [
        (&["--peer", "127.0.0.1:port"][..], "127.0.0.1:port"),
        (&["--peer", ":7000"][..], ":7000"),
        (&["--host", "not-an-ip"][..], "not-an-ip"),
        (&["--advertise", "somewhere"][..], "somewhere"),
        (&["--api", "localhost"][..], "localhost"),
    ] {
        refused_on(&data, extra, &[says]);
    }
}

#[test]
fn a_port_in_use_is_named_and_exits_2() {
    let dir = TempDir::new("usage-port");
    // Held for the whole test: the node must find the port taken.
    let taken = common::listener();
    let port = common::port_of(&taken).to_string();
    let list = [
        "node",
        "--port",
        &port,
        "--host",
        "127.0.0.1",
        "--data-dir",
        &dir.join("d"),
        "--no-mdns",
    ];
    let out = run(&list);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains(&format!("port {port}")), "{err}");
    assert!(err.contains("--port"), "{err}");
    drop(taken);
}

/// Runs `gossipnet ARGS` to the end, as [`run`] does, but kills it and
/// fails if it is still running at the deadline: a node that should have
/// been refused and started instead must not hang the test.
fn run_bounded(list: &[&str]) -> Output {
    let child = Command::new(bin())
        .args(list)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run gossipnet");
    let pid = child.id();
    let (done, finished) = std::sync::mpsc::sync_channel(1);
    let waiter = std::thread::spawn(move || {
        let out = child.wait_with_output().expect("wait for gossipnet");
        let _ = done.send(());
        out
    });
    if finished.recv_timeout(common::DEADLINE).is_err() {
        let _ = Command::new("kill")
            .args(["-KILL", &pid.to_string()])
            .status();
        let out = waiter.join().unwrap();
        panic!("{list:?} did not exit: it started\n{}", stderr(&out));
    }
    waiter.join().unwrap()
}

/// Starts and stops a node on `data`, so it holds an identity key and a
/// database.
fn first_run(data: &str) {
    let mut node = Proc::start(
        "first",
        &args(&[
            "node",
            "0",
            "--host",
            "127.0.0.1",
            "--data-dir",
            data,
            "--no-mdns",
        ]),
    );
    assert!(node.terminate().success());
}

#[test]
fn a_corrupted_or_unreadable_identity_key_is_named_kept_and_exits_2() {
    let dir = TempDir::new("usage-key");
    let data = dir.join("d");
    first_run(&data);
    let key = std::path::Path::new(&data).join("identity.key");
    let key_name = key.display().to_string();
    for bad in [
        b"not a key\n".to_vec(),
        vec![0xff, 0x00, 0xfe, 0x80],
        format!("{}\n", "g".repeat(64)).into_bytes(),
        Vec::new(),
    ] {
        std::fs::write(&key, &bad).unwrap();
        refused_on(&data, &[], &[&key_name, "move it away"]);
        assert_eq!(
            std::fs::read(&key).unwrap(),
            bad,
            "the key file was changed"
        );
    }
    // A key that cannot be read as a file (root reads any file's bytes, so
    // a directory stands in for an unreadable one).
    std::fs::remove_file(&key).unwrap();
    std::fs::create_dir(&key).unwrap();
    refused_on(&data, &[], &[&key_name]);
    assert!(key.is_dir(), "the key's directory was replaced");
}

#[test]
fn a_corrupted_database_is_named_kept_and_exits_2() {
    let dir = TempDir::new("usage-db");
    let data = dir.join("d");
    first_run(&data);
    let db = std::path::Path::new(&data).join("gossipnet.db");
    let db_name = db.display().to_string();
    let mut valid = std::fs::read(&db).unwrap();
    let mut rng_state = 0x5eed_u64;
    let mut noise = |n: usize| -> Vec<u8> {
        (0..n)
            .map(|_| {
                rng_state = rng_state.wrapping_mul(6364136223846793005).wrapping_add(1);
                (rng_state >> 33) as u8
            })
            .collect()
    };
    // Garbage throughout, and a real header over garbage pages.
    let garbage = noise(16 << 10);
    let page = 4096.min(valid.len());
    let tail = noise(valid.len().max(3 * page) - page);
    valid.truncate(page);
    valid.extend(tail);
    for bad in [garbage, valid] {
        for extra in ["gossipnet.db-wal", "gossipnet.db-shm"] {
            let _ = std::fs::remove_file(std::path::Path::new(&data).join(extra));
        }
        std::fs::write(&db, &bad).unwrap();
        refused_on(&data, &[], &[&db_name, "move it away"]);
        assert!(
            std::fs::read(&db).unwrap() == bad,
            "the database file was changed"
        );
    }
}
