//! Runs the `echo_bot` example's code against a real node: two nodes over
//! real TCP on loopback, one of them the bot, whose control API is read
//! over HTTP as a browser or script would.

#![cfg(feature = "control-api")]

#[allow(dead_code)]
#[path = "../examples/echo_bot.rs"]
mod echo_bot;

use std::time::Duration;

use gossipnet_node::chat::ChatBody;
use gossipnet_node::{Node, NodeEvent};
use serde_json::Value;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_echo_bot_answers_a_message() {
    let bot = echo_bot::bot().discovery(false).spawn().await.unwrap();
    let user = Node::builder()
        .name("user")
        .discovery(false)
        .peer(bot.local_addr().to_string())
        .spawn()
        .await
        .unwrap();
    let mut events = user.subscribe();
    let bot_task = tokio::spawn({
        let bot = bot.clone();
        async move { echo_bot::answer(&bot).await }
    });
    // Wait until the two are neighbours, then talk.
    let wait = async {
        loop {
            if let Ok(NodeEvent::NeighborUp(id)) = events.recv().await {
                if id == bot.id() {
                    break;
                }
            }
        }
        user.broadcast_text("hello bot").await.unwrap();
        loop {
            if let Ok(NodeEvent::Message(m)) = events.recv().await {
                let body = ChatBody::decode(&m.body).unwrap();
                if m.origin == bot.id() {
                    return body;
                }
            }
        }
    };
    let answer = tokio::time::timeout(Duration::from_secs(60), wait)
        .await
        .expect("the bot answers within a minute");
    assert_eq!(answer.text, "echo: hello bot");
    assert_eq!(answer.name.as_deref(), Some("echo-bot"));

    // The bot's control API answers with its cookie, and only with it.
    let api = bot.control_api().expect("the bot serves its API").clone();
    let (status, without_cookie) = tokio::task::spawn_blocking(move || {
        let url = format!("http://{}/api/status", api.addr());
        let status: Value = ureq::get(&url)
            .set("Authorization", &format!("Bearer {}", api.cookie()))
            .call()
            .unwrap()
            .into_json()
            .unwrap();
        let without_cookie = match ureq::get(&url).call() {
            Err(ureq::Error::Status(code, _)) => code,
            other => panic!("without the cookie: {other:?}"),
        };
        (status, without_cookie)
    })
    .await
    .unwrap();
    assert_eq!(status["id"], bot.id().to_string());
    assert_eq!(status["name"], "echo-bot");
    assert_eq!(status["role"], "node");
    assert_eq!(status["active"][0]["id"], user.id().to_string());
    assert_eq!(without_cookie, 401);
    user.leave().await.unwrap();
    bot.leave().await.unwrap();
    bot_task.abort();
}
