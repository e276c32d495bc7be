//! The dashboard in a real browser: a testnet of one seed and ten nodes on
//! loopback, node-1's dashboard open in headless Chromium (driven through
//! chromedriver's W3C WebDriver HTTP API), and checks that the map, the send
//! box and the feed follow the network live, including a node's sudden
//! death.
//!
//! Every wait polls with a deadline. Chromium, chromedriver and the testnet
//! are stopped when the test ends, pass or fail; a failure prints what the
//! page showed and what the browser logged.

mod common;

use common::testnet::{api_get, overlay, poll, signal, str_field, Testnet, POLL, REQUEST};
use common::TempDir;
use serde_json::{json, Value};
use std::io::BufRead;
use std::panic::{self, AssertUnwindSafe};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
/// How many nodes (besides the seed) the testnet runs.
const NODES: usize = 10;
/// Where the screenshot goes, for a human to look at.
const SCREENSHOT: &str = concat!(env!("CARGO_TARGET_TMPDIR"), "/dashboard.png");

#[test]
fn dashboard_shows_the_network_live() {
    assert!(
        Path::new(CHROMEDRIVER).exists() && Path::new(CHROMIUM).exists(),
        "{CHROMEDRIVER} or {CHROMIUM} is missing: run scripts/test, which installs \
         Debian's chromium and chromium-driver"
    );
    let dir = TempDir::new("dashboard");
    let mut net = Testnet::start(&dir, NODES, 1, &[]);
    let browser = Browser::start();

    let outcome = panic::catch_unwind(AssertUnwindSafe(|| exercise(&net, &browser)));
    if let Err(failure) = outcome {
        eprintln!("--- page text ---\n{}", browser.page_text());
        eprintln!("--- browser console ---");
        for entry in browser.console() {
            eprintln!("{entry}");
        }
        eprintln!("--- testnet log (last lines) ---\n{}", net.log());
        panic::resume_unwind(failure);
    }
    drop(browser);

    let status = net.stop();
    assert!(
        status.success(),
        "the testnet did not exit cleanly on SIGINT (Ctrl-C): {status}\n{}",
        net.log()
    );
}

/// The test proper, from a running testnet and browser.
fn exercise(net: &Testnet, browser: &Browser) {
    let node1 = net.node("node-1");
    let node5 = net.node("node-5");

    // 1. The network has formed, as node-1's own crawl sees it.
    poll("node-1's crawl to show ten nodes in one component", || {
        let topo = api_get(node1, "/api/network")?;
        // A crawl of the wrong shape will not mend itself: fail at once.
        let (nodes, parts) = overlay(&topo).unwrap_or_else(|e| panic!("{e}"));
        if nodes == NODES && parts == 1 {
            Ok(())
        } else {
            Err(format!("{nodes} nodes in {parts} components"))
        }
    });

    // 2. The dashboard draws the same network.
    browser.open(str_field(node1, "dashboard"));
    poll("the map to draw ten nodes", || {
        let drawn = browser.execute(
            "return document.querySelector('#topology')?.dataset.nodes",
            json!([]),
        )?;
        if drawn == json!(NODES.to_string()) {
            Ok(())
        } else {
            Err(format!("data-nodes is {drawn}"))
        }
    });
    let dom = browser
        .execute(
            "const me = document.querySelectorAll('#topology g.node.me');
             return [document.querySelectorAll('#topology g.node').length, me.length,
                     me[0]?.dataset.id ?? null];",
            json!([]),
        )
        .unwrap();
    assert_eq!(dom[0], json!(NODES), "g.node elements: {dom}");
    assert_eq!(dom[1], json!(1), "g.node.me elements: {dom}");
    assert_eq!(dom[2], node1["id"], "the node marked as me: {dom}");

    // 3. A line typed into the page reaches another node.
    let marker = format!("dashboard marker {}", common::unique());
    let input = browser.find("#text").unwrap();
    browser.type_into(&input, &marker).unwrap();
    let button = browser.find("#send button").unwrap();
    browser.click(&button).unwrap();
    poll("node-5 to deliver the line sent from the page", || {
        let list = api_get(node5, "/api/messages?limit=50")?;
        let entries = list
            .as_array()
            .ok_or_else(|| format!("not a list: {list}"))?;
        if entries.iter().any(|m| m["text"] == json!(marker)) {
            Ok(())
        } else {
            Err(format!("{} messages, none with the marker", entries.len()))
        }
    });
    poll("the page to show its own line and clear the box", || {
        let seen = browser.execute(
            "return [document.querySelector('#feed').innerText.includes(arguments[0]),
                     document.querySelector('#text').value];",
            json!([marker]),
        )?;
        if seen == json!([true, ""]) {
            Ok(())
        } else {
            Err(format!("feed has it, box holds: {seen}"))
        }
    });

    // 4. A node dies without a word; the map drops it.
    let victim = net
        .nodes()
        .iter()
        .find(|n| n["role"] == "node" && n["name"] != "node-1" && n["name"] != "node-5")
        .expect("a node to kill");
    let victim_id = str_field(victim, "id").to_string();
    let pid = victim["pid"].as_u64().expect("a pid").to_string();
    let killed = Command::new("kill").args(["-9", &pid]).status().unwrap();
    assert!(killed.success(), "kill -9 {pid} failed");
    poll("the map to drop the killed node", || {
        let seen = browser.execute(
            "const svg = document.querySelector('#topology');
             const gone = svg.querySelector(`g.node[data-id=\"${CSS.escape(arguments[0])}\"]`);
             return [svg.dataset.nodes, gone === null];",
            json!([victim_id]),
        )?;
        if seen == json!([(NODES - 1).to_string(), true]) {
            Ok(())
        } else {
            Err(format!("[data-nodes, killed node gone]: {seen}"))
        }
    });

    // 5. A picture for a human, once the layout has come to rest (a
    // picture mid-move is still worth having, so this wait is not a check).
    let until = Instant::now() + Duration::from_secs(10);
    while Instant::now() < until
        && browser.execute(
            "return document.querySelector('#topology').dataset.settled",
            json!([]),
        ) != Ok(json!("true"))
    {
        std::thread::sleep(POLL);
    }
    let png = browser.screenshot();
    std::fs::write(SCREENSHOT, png).expect("write the screenshot");
    let shown = Path::new(SCREENSHOT)
        .canonicalize()
        .map_or_else(|_| SCREENSHOT.to_string(), |p| p.display().to_string());
    println!("dashboard screenshot: {shown}");

    // The page logged no script errors along the way.
    let errors: Vec<Value> = browser
        .console()
        .into_iter()
        .filter(|e| e["level"] == "SEVERE" || e["source"] == "javascript")
        .collect();
    assert!(errors.is_empty(), "the browser logged errors: {errors:#?}");
}

/// Chromium under chromedriver, with one WebDriver session.
struct Browser {
    driver: Child,
    base: String,
    session: String,
    /// Chromium's profile: new for each run, and the mark by which its
    /// processes are found if they outlive the session.
    profile: TempDir,
}

impl Browser {
    fn start() -> Browser {
        let profile = TempDir::new("dashboard-chromium");
        // Port 0: chromedriver binds a port of the kernel's choice and says
        // which on its standard output.
        let mut driver = Command::new(CHROMEDRIVER)
            .arg("--port=0")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start chromedriver");
        let mut out = std::io::BufReader::new(driver.stdout.take().unwrap()).lines();
        let port = out
            .by_ref()
            .map_while(Result::ok)
            .find_map(|l| {
                let rest = l.split(" started successfully on port ").nth(1)?;
                rest.trim_end_matches('.').trim().parse::<u16>().ok()
            })
            .expect("chromedriver never said which port it listens on");
        // Keep reading, so chromedriver never blocks on a full pipe.
        std::thread::spawn(move || out.for_each(drop));
        let mut browser = Browser {
            driver,
            base: format!("http://127.0.0.1:{port}"),
            session: String::new(),
            profile,
        };
        poll("chromedriver to be ready", || {
            let status = browser.call("GET", "/status", None)?;
            if status["ready"] == true {
                Ok(())
            } else {
                Err(status.to_string())
            }
        });
        let capabilities = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:loggingPrefs": {"browser": "ALL"},
            "goog:chromeOptions": {
                "binary": CHROMIUM,
                "args": [
                    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic",
                    "--no-first-run", "--disable-background-networking",
                    "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage",
                    format!("--user-data-dir={}", browser.profile.path().display()),
                    "--window-size=1400,900",
                ],
            },
        }}});
        let session = browser
            .call("POST", "/session", Some(capabilities))
            .unwrap_or_else(|e| panic!("chromedriver could not start Chromium: {e}"));
        browser.session = str_field(&session, "sessionId").to_string();
        browser
    }

    /// One WebDriver command; its `value` on success.
    fn call(&self, method: &str, path: &str, body: Option<Value>) -> Result<Value, String> {
        let request = ureq::request(method, &format!("{}{path}", self.base)).timeout(REQUEST);
        let result = match body {
            Some(body) => request.send_json(body),
            None => request.call(),
        };
        match result {
            Ok(response) => response
                .into_json::<Value>()
                .map(|mut v| v["value"].take())
                .map_err(|e| format!("{method} {path}: bad JSON: {e}")),
            Err(ureq::Error::Status(code, response)) => {
                let body: Value = response.into_json().unwrap_or(Value::Null);
                Err(format!(
                    "{method} {path}: {code} {} {}",
                    body["value"]["error"], body["value"]["message"]
                ))
            }
            Err(e) => Err(format!("{method} {path}: {e}")),
        }
    }

    fn command(&self, method: &str, what: &str, body: Option<Value>) -> Result<Value, String> {
        self.call(method, &format!("/session/{}{what}", self.session), body)
    }

    fn open(&self, url: &str) {
        self.command("POST", "/url", Some(json!({ "url": url })))
            .unwrap_or_else(|e| panic!("open {url}: {e}"));
    }

    fn execute(&self, script: &str, args: Value) -> Result<Value, String> {
        self.command(
            "POST",
            "/execute/sync",
            Some(json!({"script": script, "args": args})),
        )
    }

    /// The WebDriver reference of the first element matching `css`.
    fn find(&self, css: &str) -> Result<String, String> {
        let found = self.command(
            "POST",
            "/element",
            Some(json!({"using": "css selector", "value": css})),
        )?;
        found
            .as_object()
            .and_then(|o| o.values().next())
            .and_then(Value::as_str)
            .map(str::to_string)
            .ok_or_else(|| format!("{css}: no element reference in {found}"))
    }

    fn type_into(&self, element: &str, text: &str) -> Result<(), String> {
        self.command(
            "POST",
            &format!("/element/{element}/value"),
            Some(json!({ "text": text })),
        )
        .map(drop)
    }

    fn click(&self, element: &str) -> Result<(), String> {
        self.command(
            "POST",
            &format!("/element/{element}/click"),
            Some(json!({})),
        )
        .map(drop)
    }

    fn screenshot(&self) -> Vec<u8> {
        let shot = self
            .command("GET", "/screenshot", None)
            .expect("a screenshot");
        let text = shot.as_str().expect("base64 text");
        data_encoding::BASE64
            .decode(text.as_bytes())
            .expect("a base64 PNG")
    }

    fn page_text(&self) -> String {
        self.execute("return document.body.innerText", json!([]))
            .map(|v| v.as_str().unwrap_or_default().to_string())
            .unwrap_or_else(|e| format!("(unavailable: {e})"))
    }

    /// Console entries since the last call (chromedriver's log endpoint).
    fn console(&self) -> Vec<Value> {
        match self.command("POST", "/se/log", Some(json!({"type": "browser"}))) {
            Ok(Value::Array(entries)) => entries,
            Ok(other) => vec![other],
            Err(e) => vec![json!(format!("(console unavailable: {e})"))],
        }
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        if !self.session.is_empty() {
            let _ = self.call("DELETE", &format!("/session/{}", self.session), None);
        }
        let _ = self.driver.kill();
        let _ = self.driver.wait();
        // Chromium normally quits with its session; any process still
        // carrying this run's profile directory is a leftover.
        let mark = format!("--user-data-dir={}", self.profile.path().display());
        for pid in processes_with_arg(&mark) {
            signal("KILL", pid);
        }
    }
}

/// Processes whose command line has `arg` as one of its arguments.
fn processes_with_arg(arg: &str) -> Vec<u32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(Result::ok)
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/cmdline"))
                .is_ok_and(|cmd| cmd.split(|&b| b == 0).any(|a| a == arg.as_bytes()))
        })
        .collect()
}
