//! Runs the `echo_bot` example's code against a real node: two nodes over
//! real TCP on loopback, one of them the bot.

#[allow(dead_code)]
#[path = "../examples/echo_bot.rs"]
mod echo_bot;

use std::time::Duration;

use gossipnet_node::chat::ChatBody;
use gossipnet_node::{Node, NodeEvent};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_echo_bot_answers_a_message() {
    let bot = Node::builder()
        .name("echo-bot")
        .discovery(false)
        .spawn()
        .await
        .unwrap();
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
    user.leave().await.unwrap();
    bot.leave().await.unwrap();
    bot_task.abort();
}
