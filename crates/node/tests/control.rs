//! The control API as an embedding program serves it: by the builder's one
//! call or by `control::serve`, reachable with the cookie only, announced in
//! `control.json` (mode 0600), and gone when the node stops or the handle
//! is dropped.

#![cfg(feature = "control-api")]

use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::time::{Duration, Instant};

use gossipnet_node::control::{self, ControlError, ControlFile, ControlOptions, CONTROL_FILE};
use gossipnet_node::{Node, NodeError, Role};
use serde_json::Value;

fn loopback() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 0))
}

/// `GET` of a JSON path, with the cookie as a bearer token.
fn get_json(api: SocketAddr, cookie: &str, path: &str) -> Value {
    ureq::get(&format!("http://{api}{path}"))
        .set("Authorization", &format!("Bearer {cookie}"))
        .call()
        .unwrap()
        .into_json()
        .unwrap()
}

/// The status code of a `GET` without the cookie.
fn status_without_cookie(api: SocketAddr, path: &str) -> u16 {
    match ureq::get(&format!("http://{api}{path}")).call() {
        Ok(response) => response.status(),
        Err(ureq::Error::Status(code, _)) => code,
        Err(e) => panic!("{path}: {e}"),
    }
}

/// Waits until nothing answers on `api` and `control` is gone.
async fn wait_gone(api: SocketAddr, control: &Path) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while TcpStream::connect(api).is_ok() || control.exists() {
        assert!(
            Instant::now() < deadline,
            "the control API outlived its end"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_builder_serves_the_api_until_the_node_stops() {
    let dir = tempfile::tempdir().unwrap();
    let node = Node::builder()
        .name("api")
        .discovery(false)
        .data_dir(dir.path())
        .control_api(loopback())
        .spawn()
        .await
        .unwrap();
    let api = node.control_api().expect("the API was asked for").clone();
    let path = dir.path().join(CONTROL_FILE);
    assert_eq!(api.control_file(), Some(path.as_path()));
    assert_eq!(
        api.dashboard_url(),
        format!("http://{}/?cookie={}", api.addr(), api.cookie())
    );

    let control = ControlFile::read(dir.path()).unwrap();
    assert_eq!(control.api, api.addr());
    assert_eq!(control.cookie, api.cookie());
    assert_eq!(control.id, node.id().to_string());
    assert_eq!(control.name.as_deref(), Some("api"));
    assert_eq!(control.listen, node.local_addr());
    assert_eq!(control.role, Role::Node);
    assert_eq!(control.pid, std::process::id());
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    let (addr, cookie) = (api.addr(), api.cookie().to_string());
    let (status, refused) = tokio::task::spawn_blocking(move || {
        let status = get_json(addr, &cookie, "/api/status");
        let refused = ["/", "/api/status", "/metrics"].map(|p| status_without_cookie(addr, p));
        (status, refused)
    })
    .await
    .unwrap();
    assert_eq!(status["id"], node.id().to_string());
    assert_eq!(status["role"], "node");
    assert_eq!(refused, [401; 3]);

    // An open event stream ends with the node rather than holding its
    // server open.
    let events_url = format!("http://{}/api/events?cookie={}", api.addr(), api.cookie());
    let stream = tokio::task::spawn_blocking(move || {
        let mut body = ureq::get(&events_url).call().unwrap().into_reader();
        std::io::copy(&mut body, &mut std::io::sink())
    });
    tokio::time::sleep(Duration::from_millis(200)).await;
    node.leave().await.unwrap();
    wait_gone(api.addr(), &path).await;
    tokio::time::timeout(Duration::from_secs(10), stream)
        .await
        .expect("the event stream ends with the node")
        .unwrap()
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_reports_the_nodes_role_and_stops_with_its_handle() {
    let dir = tempfile::tempdir().unwrap();
    let node = Node::builder()
        .role(Role::Seed)
        .discovery(false)
        .spawn()
        .await
        .unwrap();
    assert!(node.control_api().is_none());
    let handle = control::serve(
        node.clone(),
        ControlOptions::new(loopback()).data_dir(dir.path()),
    )
    .await
    .unwrap();
    let control = ControlFile::read(dir.path()).unwrap();
    assert_eq!(control.role, Role::Seed);

    let (addr, cookie) = (handle.info().addr(), handle.info().cookie().to_string());
    let metrics = tokio::task::spawn_blocking(move || {
        ureq::get(&format!("http://{addr}/metrics"))
            .set("Authorization", &format!("Bearer {cookie}"))
            .call()
            .unwrap()
            .into_string()
            .unwrap()
    })
    .await
    .unwrap();
    assert!(metrics.contains("role=\"seed\""), "{metrics}");

    drop(handle);
    wait_gone(addr, &dir.path().join(CONTROL_FILE)).await;
    // The node runs on without its API.
    assert_eq!(node.status().await.unwrap().identity.role, Role::Seed);
    node.leave().await.unwrap();
}

#[tokio::test]
async fn an_api_off_loopback_starts_no_node() {
    let err = Node::builder()
        .discovery(false)
        .control_api(SocketAddr::from(([0, 0, 0, 0], 0)))
        .spawn()
        .await
        .unwrap_err();
    assert!(
        matches!(err, NodeError::Control(ControlError::NotLoopback(_))),
        "{err}"
    );
}
