//! Crawling the network: from one node, ask every node reachable through
//! the overlay for its status and its neighbours, and put the answers
//! together into a [`Topology`].
//!
//! The crawler dials each node with a throwaway identity (so that the
//! one-link-per-peer rule of the node being crawled never touches its real
//! links), sends one [`gossipnet_proto::query::Query`], reads the answer and
//! hangs up. Dials are bounded in number at once and in time each; a node
//! named by a neighbour that does not answer in time is reported as
//! unreachable, not waited for.
//!
//! A crawl is started with [`Node::crawl`](crate::Node::crawl); this module
//! holds what it returns.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use gossipnet_proto::query::{NodeInfo, PeerRef, Query};
use gossipnet_proto::record::SignedRecord;
use gossipnet_proto::wire::{self, Message};
use gossipnet_proto::NodeId;
use serde::{Deserialize, Serialize};
use tokio::net::TcpStream;
use tokio::task::JoinSet;

use crate::transport::{self, LinkConfig};

/// One node as the crawl saw it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CrawledNode {
    /// The node's id: proven by the handshake if it answered, else as the
    /// neighbour or seed that named it gave it.
    pub id: NodeId,
    /// The name it goes by, if it answered and has one.
    pub name: Option<String>,
    /// A seed (keeps the registry, is not in the overlay).
    pub seed: bool,
    /// The addresses it was dialled at (from its record or a neighbour's).
    pub addrs: Vec<SocketAddr>,
    /// It answered the crawl's query.
    pub reachable: bool,
    /// Its gossip estimate of the network size, if it has one.
    pub size_estimate: Option<f64>,
    /// Seconds since it started, if it answered.
    pub uptime_s: Option<u64>,
}

/// The network as one crawl saw it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Topology {
    /// The node the crawl started from.
    pub from: NodeId,
    /// Every node the crawl heard of, answering or not.
    pub nodes: Vec<CrawledNode>,
    /// Overlay links between two nodes that both answered, each once, the
    /// smaller id first.
    pub links: Vec<(NodeId, NodeId)>,
    /// Links from a node to a seed it keeps registered with: (node, seed).
    pub seed_links: Vec<(NodeId, NodeId)>,
    /// How long the crawl took, in milliseconds.
    pub elapsed_ms: u64,
}

/// Most nodes one crawl dials at once: enough to crawl thousands of nodes
/// in seconds, few enough not to look like an attack to anyone.
pub(crate) const CONCURRENCY: usize = 32;
/// Time one node is given to connect, shake hands and answer.
pub(crate) const QUERY_TIMEOUT: Duration = Duration::from_secs(5);
/// Most nodes one crawl looks at: bounds its memory whatever the replies
/// claim.
pub(crate) const MAX_NODES: usize = 20_000;
/// Longest a whole crawl runs: replies naming thousands of nodes that never
/// answer must not keep it going for an hour. Nodes not asked by then count
/// as unreachable.
pub(crate) const MAX_DURATION: Duration = Duration::from_secs(120);

/// How far a crawl has got.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Progress {
    /// Nodes that answered.
    pub answered: usize,
    /// Nodes queued or being asked.
    pub pending: usize,
    /// Nodes that did not answer.
    pub unreachable: usize,
}

/// Crawls the network starting from the node at `start` (expected to prove
/// the id `from`), dialling with `cfg` (whose secret should be a throwaway
/// key). `progress` is called after every answer or failure.
pub(crate) async fn crawl(
    from: NodeId,
    start: Vec<SocketAddr>,
    cfg: LinkConfig,
    mut progress: impl FnMut(Progress),
) -> Topology {
    let started = std::time::Instant::now();
    let cfg = Arc::new(cfg);
    // Every node heard of, by id, in the order first heard of.
    let mut known: BTreeMap<NodeId, Entry> = BTreeMap::new();
    let mut queue: VecDeque<NodeId> = VecDeque::new();
    known.insert(from, Entry::new(start));
    queue.push_back(from);
    let mut tasks = JoinSet::new();
    let mut count = Progress::default();
    let deadline = tokio::time::Instant::now() + MAX_DURATION;
    loop {
        if tokio::time::Instant::now() >= deadline {
            tracing::warn!(
                left = queue.len() + tasks.len(),
                "crawl: out of time; the nodes not yet asked count as unreachable"
            );
            tasks.abort_all();
            count.unreachable += queue.len() + tasks.len();
            count.pending = 0;
            progress(count);
            break;
        }
        while tasks.len() < CONCURRENCY {
            let Some(id) = queue.pop_front() else { break };
            let addrs = known.get(&id).map(|e| e.addrs.clone()).unwrap_or_default();
            let cfg = cfg.clone();
            tasks.spawn(async move {
                let answer = tokio::time::timeout(QUERY_TIMEOUT, ask(id, addrs, &cfg)).await;
                (id, answer.unwrap_or_else(|_| Err("timed out".into())))
            });
        }
        count.pending = queue.len() + tasks.len();
        let Some(done) = tasks.join_next().await else {
            break;
        };
        let Ok((id, answer)) = done else { continue };
        match answer {
            Ok(info) => {
                count.answered += 1;
                let heard: Vec<PeerRef> = info
                    .neighbors
                    .iter()
                    .chain(&info.seeds)
                    .chain(&info.registry)
                    .cloned()
                    .collect();
                for peer in heard {
                    if let Some(entry) = known.get_mut(&peer.id) {
                        // A neighbour may know addresses we lack.
                        if entry.reply.is_none() && entry.addrs.is_empty() {
                            entry.addrs = peer.addrs;
                        }
                    } else if known.len() < MAX_NODES {
                        known.insert(peer.id, Entry::new(peer.addrs));
                        queue.push_back(peer.id);
                    }
                }
                if let Some(entry) = known.get_mut(&id) {
                    entry.reply = Some(info);
                }
            }
            Err(e) => {
                tracing::debug!(node = %id.short(), "crawl: no answer: {e}");
                count.unreachable += 1;
            }
        }
        count.pending = queue.len() + tasks.len();
        progress(count);
    }
    assemble(from, known, started.elapsed())
}

/// What the crawl knows of one node.
struct Entry {
    addrs: Vec<SocketAddr>,
    reply: Option<NodeInfo>,
}

impl Entry {
    fn new(addrs: Vec<SocketAddr>) -> Self {
        Self { addrs, reply: None }
    }
}

/// Dials one node, asks, and waits for the answer.
async fn ask(id: NodeId, addrs: Vec<SocketAddr>, cfg: &LinkConfig) -> Result<NodeInfo, String> {
    let mut last = String::from("no address known");
    for addr in addrs {
        let stream = match TcpStream::connect(addr).await {
            Ok(s) => s,
            Err(e) => {
                last = format!("{addr}: {e}");
                continue;
            }
        };
        let link = match transport::connect(stream, cfg, Some(id)).await {
            Ok(link) => link,
            Err(e) => {
                last = format!("{addr}: {e}");
                continue;
            }
        };
        let (mut reader, mut writer) = link.into_split();
        let nonce: u64 = rand::random();
        let query = Bytes::from(wire::encode(&Message::Query(Query::Status { nonce })));
        writer.send(&[query]).await.map_err(|e| e.to_string())?;
        // Other traffic may come first (a catch-up announcement, say); only
        // the reply to this query counts.
        loop {
            match reader.recv().await {
                Ok(Some(bytes)) => {
                    if let Ok(Message::Query(Query::StatusReply { nonce: n, info })) =
                        wire::decode(&bytes)
                    {
                        if n == nonce {
                            let _ = writer.shutdown().await;
                            return Ok(info);
                        }
                    }
                }
                Ok(None) => return Err(format!("{addr}: closed before answering")),
                Err(e) => return Err(format!("{addr}: {e}")),
            }
        }
    }
    Err(last)
}

/// Puts the answers together: a node's name and addresses come from its own
/// signed record; a link is listed when either end reports it and both
/// answered.
fn assemble(from: NodeId, known: BTreeMap<NodeId, Entry>, elapsed: Duration) -> Topology {
    let mut nodes = Vec::with_capacity(known.len());
    let mut links = BTreeSet::new();
    let mut seed_links = BTreeSet::new();
    let answered = |id: &NodeId| known.get(id).is_some_and(|e| e.reply.is_some());
    for (id, entry) in &known {
        let record = entry
            .reply
            .as_ref()
            .and_then(|info| SignedRecord::decode(&info.record).ok())
            .filter(|r| r.id() == *id && r.verify().is_ok());
        let seed = record.as_ref().is_some_and(|r| r.record().is_seed());
        nodes.push(CrawledNode {
            id: *id,
            name: record.as_ref().and_then(|r| r.record().name.clone()),
            seed,
            addrs: record
                .as_ref()
                .map(|r| r.record().addrs.clone())
                .unwrap_or_else(|| entry.addrs.clone()),
            reachable: entry.reply.is_some(),
            size_estimate: entry
                .reply
                .as_ref()
                .and_then(|i| i.size_estimate)
                .map(|e| e as f64),
            uptime_s: entry.reply.as_ref().map(|i| i.uptime_s),
        });
        let Some(info) = &entry.reply else { continue };
        for peer in &info.neighbors {
            if peer.id != *id && answered(&peer.id) {
                links.insert((*id.min(&peer.id), *id.max(&peer.id)));
            }
        }
        for s in &info.seeds {
            if answered(&s.id) {
                seed_links.insert((*id, s.id));
            }
        }
    }
    Topology {
        from,
        nodes,
        links: links.into_iter().collect(),
        seed_links: seed_links.into_iter().collect(),
        elapsed_ms: elapsed.as_millis() as u64,
    }
}
