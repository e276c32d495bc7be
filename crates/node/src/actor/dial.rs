//! Dialling and accepting: where peers are reached, the tasks that open
//! connections and run handshakes, and the messages held while a dial is
//! out.
//!
//! A dial or accept runs as its own task and reports to the actor as a
//! [`LinkEvent`], tagged with the [`Purpose`] it was made for, so the
//! actor knows what to do once the peer's id is known. Handshakes in
//! progress are capped by a semaphore; an inbound connection over a cap is
//! told why in the plaintext preamble before it is dropped.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use gossipnet_proto::record::SignedRecord;
use gossipnet_proto::seed::{DialResult, SeedInput};
use gossipnet_proto::{Command, InEvent, NodeId};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, Semaphore};
use tracing::{debug, info, warn, Instrument};

use super::links::LinkEvent;
use super::{Actor, Direction, CONNECT_TIMEOUT, MAX_DIAL_QUEUE};
use crate::config::NodeConfig;
use crate::transport::{self, Link, LinkConfig};

/// Why a connection was dialled.
#[derive(Debug, Clone, Copy)]
pub(super) enum Purpose {
    /// To reach a known peer for the protocol.
    Peer,
    /// A static peer from the command line: join through it.
    Static(usize),
    /// A configured seed.
    Seed(usize),
    /// An address-book entry.
    Book,
    /// A port of the default range on this machine, probed while alone.
    Local,
    /// A seed checking that a reported node is dead.
    Probe(NodeId),
    /// Accepted from the listener.
    Inbound,
}

/// Messages held per peer while a link to it is dialled, bounded.
#[derive(Debug, Default)]
pub(super) struct Held {
    queues: HashMap<NodeId, Vec<Bytes>>,
}

impl Held {
    /// Whether a dial to `peer` is out.
    pub(super) fn dialing(&self, peer: &NodeId) -> bool {
        self.queues.contains_key(peer)
    }

    /// Holds `bytes` if a dial to `peer` is out (dropping them beyond
    /// [`MAX_DIAL_QUEUE`]); gives them back if none is.
    pub(super) fn hold(&mut self, peer: NodeId, bytes: Bytes) -> Result<(), Bytes> {
        let Some(queue) = self.queues.get_mut(&peer) else {
            return Err(bytes);
        };
        if queue.len() < MAX_DIAL_QUEUE {
            queue.push(bytes);
        }
        Ok(())
    }

    /// A dial to `peer` starts, with `bytes` the first to send.
    pub(super) fn start(&mut self, peer: NodeId, bytes: Bytes) {
        self.queues.insert(peer, vec![bytes]);
    }

    /// The dial ended: what was held, in order.
    pub(super) fn take(&mut self, peer: &NodeId) -> Vec<Bytes> {
        self.queues.remove(peer).unwrap_or_default()
    }
}

/// Opens connections; see the module docs.
pub(super) struct Dialer {
    config: Arc<LinkConfig>,
    events: mpsc::Sender<LinkEvent>,
    handshakes: Arc<Semaphore>,
    /// Where each known peer listens, from records and discovery.
    pub(super) addrs: HashMap<NodeId, Vec<SocketAddr>>,
    /// The names in the records of known peers, for the status.
    names: HashMap<NodeId, String>,
    pub(super) held: Held,
}

impl Dialer {
    pub(super) fn new(config: &NodeConfig, events: mpsc::Sender<LinkEvent>) -> Self {
        Self {
            config: Arc::new(config.link_config()),
            events,
            handshakes: Arc::new(Semaphore::new(config.limits.max_handshakes)),
            addrs: HashMap::new(),
            names: HashMap::new(),
            held: Held::default(),
        }
    }

    /// Takes a verified record's addresses and name.
    pub(super) fn learn(&mut self, record: &SignedRecord) {
        let id = record.id();
        self.addrs.insert(id, record.record().addrs.clone());
        match &record.record().name {
            Some(name) => self.names.insert(id, name.clone()),
            None => self.names.remove(&id),
        };
    }

    /// The name in `peer`'s record, if it has one.
    pub(super) fn name_of(&self, peer: &NodeId) -> Option<&str> {
        self.names.get(peer).map(String::as_str)
    }

    /// The addresses `peer` listens at, if any are known.
    pub(super) fn addrs_of(&self, peer: &NodeId) -> Option<&Vec<SocketAddr>> {
        self.addrs.get(peer).filter(|a| !a.is_empty())
    }

    /// Dials `peer` at its known addresses with `bytes` the first message
    /// to send once linked. False, with nothing dialled, if no address is
    /// known.
    pub(super) fn dial_peer(&mut self, peer: NodeId, bytes: Bytes) -> bool {
        let Some(addrs) = self.addrs_of(&peer).cloned() else {
            return false;
        };
        self.held.start(peer, bytes);
        self.dial(addrs, Some(peer), Purpose::Peer);
        true
    }

    /// Tries `addrs` in turn until one links, in a task of its own.
    pub(super) fn dial(&self, addrs: Vec<SocketAddr>, expected: Option<NodeId>, purpose: Purpose) {
        let cfg = self.config.clone();
        let tx = self.events.clone();
        tokio::spawn(
            async move {
                let mut last_error = String::from("no address");
                let mut last_addr = None;
                for addr in addrs {
                    last_addr = Some(addr);
                    let connect = tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(addr));
                    let stream = match connect.await {
                        Ok(Ok(stream)) => stream,
                        Ok(Err(e)) => {
                            last_error = format!("cannot connect to {addr}: {e}");
                            continue;
                        }
                        Err(_) => {
                            last_error = format!("connecting to {addr} timed out");
                            continue;
                        }
                    };
                    match transport::connect(stream, &cfg, expected).await {
                        Ok(link) => {
                            let _ = tx
                                .send(LinkEvent::Established {
                                    link,
                                    direction: Direction::Outbound,
                                    addr,
                                    purpose,
                                })
                                .await;
                            return;
                        }
                        Err(e) => {
                            // Probing our own machine's ports meets other
                            // programs; that is no news.
                            if matches!(purpose, Purpose::Local) {
                                debug!("link to {addr} refused: {e}");
                            } else {
                                warn!("link to {addr} refused: {e}");
                            }
                            last_error = e.to_string();
                        }
                    }
                }
                let _ = tx
                    .send(LinkEvent::Failed {
                        addr: last_addr,
                        purpose,
                        expected,
                        error: last_error,
                    })
                    .await;
            }
            .in_current_span(),
        );
    }

    /// Runs the handshake of an accepted connection in a task, or tells
    /// the peer why not (`refusal`, or too many handshakes at once).
    pub(super) fn accept(
        &self,
        stream: TcpStream,
        addr: SocketAddr,
        refusal: Option<&'static str>,
    ) {
        let cfg = self.config.clone();
        let tx = self.events.clone();
        let Ok(permit) = self.handshakes.clone().try_acquire_owned() else {
            warn!("refusing link from {addr}: too many handshakes in progress");
            tokio::spawn(async move {
                let _ = transport::refuse(stream, &cfg, "busy: too many handshakes").await;
            });
            return;
        };
        if let Some(reason) = refusal {
            warn!("refusing link from {addr}: {reason}");
            tokio::spawn(async move {
                let _ = transport::refuse(stream, &cfg, reason).await;
                drop(permit);
            });
            return;
        }
        tokio::spawn(
            async move {
                let event = match transport::accept(stream, &cfg).await {
                    Ok(link) => LinkEvent::Established {
                        link,
                        direction: Direction::Inbound,
                        addr,
                        purpose: Purpose::Inbound,
                    },
                    Err(e) => {
                        warn!("link from {addr} refused: {e}");
                        LinkEvent::Failed {
                            addr: Some(addr),
                            purpose: Purpose::Inbound,
                            expected: None,
                            error: e.to_string(),
                        }
                    }
                };
                drop(permit);
                let _ = tx.send(event).await;
            }
            .in_current_span(),
        );
    }
}

impl Actor {
    /// A dial or accept linked: keep the link (or the one we had), send
    /// what waited for it, and do what the dial was for.
    pub(super) async fn on_established(
        &mut self,
        link: Link,
        direction: Direction,
        addr: SocketAddr,
        purpose: Purpose,
    ) {
        let peer = link.peer;
        if peer == self.me {
            debug!("dialled ourselves at {addr}; dropping");
            self.dial_resolved(purpose, None).await;
            return;
        }
        if !self.links.admit(peer, direction) {
            drop(link);
            self.after_link(peer, purpose).await;
            return;
        }
        let replacing = self.links.contains(&peer);
        self.links.insert(link, direction, addr);
        info!(peer = %peer.short(), %addr, direction = ?direction, "link up");
        if replacing {
            // What the peer sent on the link just closed may be lost: it
            // was in flight, or queued behind a write the close cut short.
            self.proto(InEvent::LinkReplaced(peer)).await;
        }
        if let Some(store) = &self.store {
            store.seen(peer);
            if direction == Direction::Outbound {
                store.address(addr, Some(peer));
            }
        }
        // Direct messages waiting for this dial now go over the link.
        self.direct.linked(&peer);
        for bytes in self.dialer.held.take(&peer) {
            self.send_bytes(peer, bytes).await;
        }
        self.after_link(peer, purpose).await;
    }

    /// What to do once a dialled contact's id is known and linked.
    async fn after_link(&mut self, peer: NodeId, purpose: Purpose) {
        match purpose {
            Purpose::Static(_) | Purpose::Book | Purpose::Local => {
                self.dial_resolved(purpose, Some(peer)).await;
                if self.role.in_overlay() && !self.driver.neighbors.contains(&peer) {
                    self.proto(InEvent::Command(Command::Join(vec![peer])))
                        .await;
                }
            }
            Purpose::Seed(_) => self.dial_resolved(purpose, Some(peer)).await,
            Purpose::Probe(id) => {
                self.registry_input(SeedInput::ProbeResult { id, alive: true })
                    .await
            }
            Purpose::Peer | Purpose::Inbound => {}
        }
    }

    /// A dial of a configured contact reached `id` (`None`: ourselves).
    async fn dial_resolved(&mut self, purpose: Purpose, id: Option<NodeId>) {
        match purpose {
            Purpose::Static(i) => self.bootstrap.static_resolved(i, id),
            Purpose::Seed(i) => {
                let result = id.map_or(DialResult::Myself, DialResult::Linked);
                let now = tokio::time::Instant::now().into_std();
                let out = self.seeds.handle_dial(i, result, now);
                self.seed_client_outputs(out).await;
            }
            _ => {}
        }
    }

    /// A dial or handshake failed.
    pub(super) async fn on_failed(
        &mut self,
        addr: Option<SocketAddr>,
        purpose: Purpose,
        expected: Option<NodeId>,
        error: String,
    ) {
        self.counters.handshake_failures += 1;
        let now = tokio::time::Instant::now().into_std();
        match purpose {
            Purpose::Static(i) => {
                if let Some(addr) = self.bootstrap.static_failed(i, now) {
                    debug!("static peer {addr} not reachable: {error}");
                }
            }
            Purpose::Seed(i) => {
                if let Some(seed) = self.seeds.seeds().get(i) {
                    warn!("seed {} not reachable: {error}", seed.addr());
                }
                let out = self.seeds.handle_dial(i, DialResult::Failed, now);
                self.seed_client_outputs(out).await;
            }
            Purpose::Probe(id) => {
                self.registry_input(SeedInput::ProbeResult { id, alive: false })
                    .await
            }
            Purpose::Peer => {
                if let Some(peer) = expected {
                    debug!(peer = %peer.short(), ?addr, "dial failed: {error}");
                    self.dialer.held.take(&peer);
                    // No direct link: relay the direct messages instead.
                    self.relay_direct(peer).await;
                    if let Some(store) = &self.store {
                        store.failure(peer);
                    }
                    self.proto(InEvent::PeerDisconnected(peer)).await;
                }
            }
            Purpose::Book | Purpose::Local | Purpose::Inbound => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use gossipnet_proto::SecretKey;
    use rand::SeedableRng;

    use super::*;

    fn id(seed: u64) -> NodeId {
        SecretKey::generate(&mut rand::rngs::StdRng::seed_from_u64(seed)).node_id()
    }

    #[test]
    fn nothing_is_held_for_a_peer_no_dial_is_out_to() {
        let mut held = Held::default();
        let peer = id(1);
        assert!(!held.dialing(&peer));
        let bytes = Bytes::from_static(b"x");
        assert_eq!(held.hold(peer, bytes.clone()), Err(bytes));
        assert!(held.take(&peer).is_empty());
    }

    #[test]
    fn held_messages_come_out_in_order_and_are_bounded() {
        let mut held = Held::default();
        let peer = id(1);
        held.start(peer, Bytes::from(vec![0u8]));
        assert!(held.dialing(&peer));
        for i in 1..MAX_DIAL_QUEUE + 10 {
            assert_eq!(
                held.hold(peer, Bytes::from(i.to_le_bytes().to_vec())),
                Ok(())
            );
        }
        let out = held.take(&peer);
        assert_eq!(out.len(), MAX_DIAL_QUEUE);
        assert_eq!(out[0], Bytes::from(vec![0u8]));
        assert_eq!(out[1], Bytes::from(1usize.to_le_bytes().to_vec()));
        assert!(!held.dialing(&peer));
    }
}
