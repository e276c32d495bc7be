//! The seed protocol's I/O, both ways: the [`Role`] of a node (an ordinary
//! node, or a seed running the registry and staying out of the overlay) and
//! the glue that carries out what [`SeedClient`] and [`SeedRegistry`] ask.
//!
//! Both state machines live in `gossipnet_proto::seed`; this file only
//! turns their outputs into sends, dials, log lines and protocol commands.
//!
//! [`SeedClient`]: gossipnet_proto::seed::SeedClient

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;
use gossipnet_proto::hyparview::PeerInfo;
use gossipnet_proto::seed::{
    ClientOutput, RefuseReason, RemoveReason, SeedConfig, SeedInput, SeedMessage, SeedOutput,
    SeedRegistry,
};
use gossipnet_proto::wire::Message;
use gossipnet_proto::{Command, InEvent, NodeId};
use tracing::{debug, info, warn};

use super::dial::{Purpose, PROBE_ADDRS};
use super::driver::Encoded;
use super::{Actor, CONNECT_TIMEOUT};
use crate::config::Limits;

/// Slack on a probe's timeout beyond its dialler's worst case, for the
/// task to start and its result to reach the registry.
const PROBE_MARGIN: Duration = Duration::from_secs(5);

/// How long a dead report for a node the seed holds a link to waits for
/// that link to end. A node that died a moment ago is reported by its
/// neighbours about when the seed's own link to it closes, and the report
/// may come first; a link that outlives this wait belongs to a live node.
const LINK_PROBE_WAIT: Duration = Duration::from_secs(3);

/// How long the registry waits for a probe: longer than the probe's dial
/// can take ([`PROBE_ADDRS`] addresses, each a connect and a handshake at
/// their timeouts), so a probe still dialling never counts as failed.
pub(super) fn probe_timeout(limits: &Limits) -> Duration {
    let per_addr = CONNECT_TIMEOUT + limits.handshake_timeout;
    per_addr * PROBE_ADDRS as u32 + PROBE_MARGIN
}

/// What a node is in the network.
pub(super) enum Role {
    /// A member of the overlay.
    Node,
    /// A seed: keeps the registry, answers lists, and stays out of the
    /// overlay (it joins nobody and broadcasts nothing).
    Seed(Box<SeedServer>),
}

impl Role {
    pub(super) fn new(seed: bool, limits: &Limits) -> Self {
        if seed {
            let config = SeedConfig {
                probe_timeout: probe_timeout(limits),
                ..SeedConfig::default()
            };
            Self::Seed(Box::new(SeedServer {
                registry: SeedRegistry::new(config),
                link_probes: HashMap::new(),
            }))
        } else {
            Self::Node
        }
    }

    /// Whether the node takes part in the overlay (joins, broadcasts,
    /// registers with seeds).
    pub(super) fn in_overlay(&self) -> bool {
        matches!(self, Self::Node)
    }

    /// The role as the public API names it.
    pub(super) fn public(&self) -> crate::Role {
        match self {
            Self::Node => crate::Role::Node,
            Self::Seed(_) => crate::Role::Seed,
        }
    }

    pub(super) fn server(&self) -> Option<&SeedServer> {
        match self {
            Self::Seed(server) => Some(server),
            Self::Node => None,
        }
    }
}

/// The seed role's state: the registry of live nodes.
pub(super) struct SeedServer {
    pub(super) registry: SeedRegistry,
    /// Dead reports for nodes the seed holds a link to, waiting
    /// [`LINK_PROBE_WAIT`] for the link to end: the addresses to probe
    /// then, and since when. At most one per probe the registry has in
    /// flight, so bounded as those are.
    link_probes: HashMap<NodeId, (Vec<SocketAddr>, Instant)>,
}

impl Actor {
    /// A seed message over a link: the registry's if we are a seed, the
    /// client's otherwise.
    pub(super) async fn on_seed_message(&mut self, from: NodeId, msg: SeedMessage) {
        if self.role.server().is_some() {
            self.registry_input(SeedInput::Message { from, msg }).await;
            return;
        }
        let out = self.seeds.on_message(from, msg, &mut self.rng);
        self.seed_client_outputs(out).await;
    }

    /// Carries out what the seed client asks, in order.
    pub(super) async fn seed_client_outputs(&mut self, outs: Vec<ClientOutput>) {
        for out in outs {
            match out {
                ClientOutput::Send { to, msg } => self.send_seed(to, msg).await,
                ClientOutput::Dial { seed, addr } => {
                    self.dial_address(&addr, Purpose::Seed(seed)).await
                }
                ClientOutput::Peers { records, contact } => {
                    self.on_seed_list(records, contact).await
                }
                ClientOutput::Registered {
                    seed,
                    count,
                    total,
                    majority,
                } => {
                    let addr = self.seeds.seeds()[seed].addr();
                    info!("registered with seed {addr} ({count}/{total})");
                    if majority {
                        info!("registered with a majority of seeds");
                    }
                }
                ClientOutput::NotASeed { from } => {
                    debug!(peer = %from.short(), "seed message from a node that is not our seed")
                }
                ClientOutput::Unexpected { msg, .. } => debug!("unexpected seed message {msg:?}"),
            }
        }
    }

    /// A seed's sample of live nodes: their addresses, passive peers, and a
    /// contact to join through if we have no neighbour yet.
    async fn on_seed_list(
        &mut self,
        records: Vec<gossipnet_proto::record::SignedRecord>,
        contact: NodeId,
    ) {
        let mut peers = Vec::with_capacity(records.len());
        for record in records {
            let id = record.id();
            self.dialer.learn(&record);
            peers.push(PeerInfo {
                id,
                data: Bytes::from(record.encode()),
            });
            if let Some(store) = &self.store {
                store.record(record);
            }
        }
        self.proto(InEvent::Command(Command::AddPeers(peers))).await;
        if self.driver.neighbors.is_empty() {
            self.proto(InEvent::Command(Command::Join(vec![contact])))
                .await;
        }
    }

    /// The dead reports waiting on a link: a link that ended sends its node
    /// to the dial probe; one that lasted [`LINK_PROBE_WAIT`] proves it
    /// alive. Called when a link ends and from housekeeping.
    pub(super) async fn settle_link_probes(&mut self) {
        let Role::Seed(server) = &mut self.role else {
            return;
        };
        if server.link_probes.is_empty() {
            return;
        }
        let now = Instant::now();
        let links = &self.links;
        let mut settled = Vec::new();
        server.link_probes.retain(|id, (addrs, since)| {
            if !links.contains(id) {
                settled.push((*id, Some(std::mem::take(addrs))));
                false
            } else if now.duration_since(*since) >= LINK_PROBE_WAIT {
                settled.push((*id, None));
                false
            } else {
                true
            }
        });
        for (id, addrs) in settled {
            match addrs {
                Some(addrs) => self.dialer.dial(addrs, Some(id), Purpose::Probe(id)),
                None => {
                    debug!(node = %id.short(), "reported dead, but its link lives; it is alive");
                    self.registry_input(SeedInput::ProbeResult { id, alive: true })
                        .await;
                }
            }
        }
    }

    pub(super) async fn send_seed(&mut self, seed: NodeId, msg: SeedMessage) {
        self.send_bytes(seed, Encoded::new(&Message::Seed(msg)))
            .await;
    }

    /// Feeds the registry, if we are a seed, and carries out its outputs.
    pub(super) async fn registry_input(&mut self, input: SeedInput) {
        let now = tokio::time::Instant::now().into_std();
        let Role::Seed(server) = &mut self.role else {
            return;
        };
        let outs = server.registry.handle(input, now, &mut self.rng);
        self.registry_outputs(outs).await;
    }

    /// Carries out the registry's outputs.
    async fn registry_outputs(&mut self, outs: Vec<SeedOutput>) {
        for out in outs {
            match out {
                // A list is the one big answer a small request buys: it
                // comes out of the asker's reply budget.
                SeedOutput::Send {
                    to,
                    msg: msg @ SeedMessage::List(_),
                } => {
                    let reply = Encoded::new(&Message::Seed(msg));
                    self.send_reply(to, reply, "a seed list request").await;
                }
                SeedOutput::Send { to, msg } => self.send_seed(to, msg).await,
                SeedOutput::Probe { id, record } if self.links.contains(&id) => {
                    // A node we hold a link to is alive, whatever a peer
                    // says, unless that link ends soon; dialling it now
                    // would only test its addresses.
                    debug!(node = %id.short(), "dead report for a linked node; watching its link");
                    let addrs = record.record().addrs.iter().take(PROBE_ADDRS).copied();
                    if let Role::Seed(server) = &mut self.role {
                        server
                            .link_probes
                            .insert(id, (addrs.collect(), Instant::now()));
                    }
                }
                SeedOutput::Probe { id, record } => {
                    let addrs = record.record().addrs.iter().take(PROBE_ADDRS).copied();
                    self.dialer
                        .dial(addrs.collect(), Some(id), Purpose::Probe(id));
                }
                SeedOutput::Added { id } => info!(node = %id, "node registered"),
                SeedOutput::Removed { id, reason } => {
                    let why = match reason {
                        RemoveReason::Expired => "expired",
                        RemoveReason::Left => "left",
                        RemoveReason::Dead => "dead",
                    };
                    info!(node = %id, reason = why, "removed node from registry");
                }
                // A node that lost many neighbours at once hits these
                // honestly; they are no warning.
                SeedOutput::Refused {
                    from,
                    reason: reason @ (RefuseReason::NotRegistered | RefuseReason::TooManyReports),
                } => debug!(peer = %from.short(), "dead report refused: {reason:?}"),
                SeedOutput::Refused { from, reason } => {
                    warn!(peer = %from.short(), "refused seed message: {reason:?}")
                }
            }
        }
    }
}
