//! Getting into the overlay: static peers, seeds, the address book of the
//! last run, LAN discovery and the default ports on this machine.
//!
//! Static peers and seeds are dialled by address (their ids are learned in
//! the handshake); with neither, the address book is tried. While the node
//! has no neighbour it tries again in rounds that back off, and each static
//! peer it cannot reach backs off on its own. The seeds' side of a round is
//! the seed client's (`gossipnet_proto::seed::SeedClient`). The
//! housekeeping tick that drives the retries lives here too.

use std::net::SocketAddr;

use bytes::Bytes;
use gossipnet_proto::backoff::Backoff;
use gossipnet_proto::hyparview::PeerInfo;
use gossipnet_proto::seed::DialResult;
use gossipnet_proto::{Command, InEvent, NodeId};
use tokio::sync::mpsc;
use tracing::{debug, info, warn};

use super::dial::Purpose;
use super::{
    Actor, BOOK_CANDIDATES, BOOTSTRAP_BACKOFF_MAX, BOOTSTRAP_BACKOFF_MIN, DISCOVERY_QUEUE,
    IDLE_LINK, PROBE_RETRY,
};
use crate::discovery::{self, Discovered, Mdns};

/// A static peer from the configuration and what we know of it.
struct StaticPeer {
    addr: String,
    id: Option<NodeId>,
    dialing: bool,
    retry: Backoff,
}

/// The bootstrap state; see the module docs.
pub(super) struct Bootstrap {
    statics: Vec<StaticPeer>,
    /// When the next round may start, while the node is alone.
    round: Backoff,
    /// LAN discovery, while it runs.
    pub(super) mdns: Option<Mdns>,
    discovered_tx: mpsc::Sender<Discovered>,
    discovered_rx: mpsc::Receiver<Discovered>,
}

fn backoff() -> Backoff {
    Backoff::new(BOOTSTRAP_BACKOFF_MIN, BOOTSTRAP_BACKOFF_MAX)
}

impl Bootstrap {
    pub(super) fn new(peers: &[String]) -> Self {
        let (discovered_tx, discovered_rx) = mpsc::channel(DISCOVERY_QUEUE);
        Self {
            statics: peers
                .iter()
                .map(|addr| StaticPeer {
                    addr: addr.clone(),
                    id: None,
                    dialing: false,
                    retry: backoff(),
                })
                .collect(),
            round: backoff(),
            mdns: None,
            discovered_tx,
            discovered_rx,
        }
    }

    /// Whether a new round may start at `now`.
    pub(super) fn due(&self, now: std::time::Instant) -> bool {
        self.round.ready(now)
    }

    /// The next node found on the LAN. Cancel-safe (a channel receive).
    pub(super) async fn discovered(&mut self) -> Option<Discovered> {
        self.discovered_rx.recv().await
    }

    /// A dial of static peer `i` ended: linked to `id`, or to ourselves
    /// (`None`).
    pub(super) fn static_resolved(&mut self, i: usize, id: Option<NodeId>) {
        if let Some(s) = self.statics.get_mut(i) {
            s.dialing = false;
            s.retry.reset();
            if id.is_some() {
                s.id = id;
            }
        }
    }

    /// A dial of static peer `i` failed at `now`.
    pub(super) fn static_failed(&mut self, i: usize, now: std::time::Instant) -> Option<&str> {
        let s = self.statics.get_mut(i)?;
        s.dialing = false;
        s.retry.defer(now);
        Some(&s.addr)
    }
}

impl Actor {
    /// The periodic upkeep: close idle one-off links (shuffle replies,
    /// probes), keep registered with the seeds or redial them, and start a
    /// bootstrap round while alone and one is due.
    pub(super) async fn housekeeping(&mut self) {
        if self.leaving {
            return;
        }
        let now = tokio::time::Instant::now();
        // Close idle links to non-neighbours (shuffle replies, probes).
        let seed_ids: Vec<NodeId> = self.seeds.seeds().iter().filter_map(|s| s.id()).collect();
        let idle = self.links.idle(now, IDLE_LINK, |id| {
            self.driver.neighbors.contains(id)
                || seed_ids.contains(id)
                || self.dialer.held.dialing(id)
        });
        for peer in idle {
            debug!(peer = %peer.short(), "closing idle link");
            self.links.close(peer);
        }
        let neighbors = &self.driver.neighbors;
        for peer in self
            .links
            .untimed(now, PROBE_RETRY, |id| neighbors.contains(id))
        {
            self.driver.probe(peer);
        }
        self.send_probes().await;
        self.settle_link_probes().await;
        self.prune_addrs();
        let links = &self.links;
        let out = self
            .seeds
            .handle_tick(now.into_std(), |id| links.contains(id));
        self.seed_client_outputs(out).await;
        if self.role.in_overlay()
            && self.driver.neighbors.is_empty()
            && self.bootstrap.due(now.into_std())
        {
            self.bootstrap().await;
        }
    }

    /// Dials whatever might get us into the overlay.
    pub(super) async fn bootstrap(&mut self) {
        let now = tokio::time::Instant::now().into_std();
        self.bootstrap.round.defer(now);
        for i in 0..self.bootstrap.statics.len() {
            let s = &self.bootstrap.statics[i];
            match s.id.filter(|id| self.links.contains(id)) {
                Some(id) if !self.driver.neighbors.contains(&id) && self.role.in_overlay() => {
                    self.proto(InEvent::Command(Command::Join(vec![id]))).await;
                }
                Some(_) => {}
                None if !s.dialing && s.retry.ready(now) => {
                    let addr = s.addr.clone();
                    self.bootstrap.statics[i].dialing = true;
                    self.dial_address(&addr, Purpose::Static(i)).await;
                }
                None => {}
            }
        }
        let links = &self.links;
        let out = self.seeds.handle_bootstrap(now, |id| links.contains(id));
        self.seed_client_outputs(out).await;
        if self.bootstrap.statics.is_empty()
            && self.seeds.seeds().is_empty()
            && self.role.in_overlay()
        {
            self.bootstrap_from_book().await;
        }
        if self.config.discovery && self.role.in_overlay() {
            // Where multicast does not reach, nodes on this machine still
            // find each other on the default ports.
            for addr in discovery::probe_targets(self.local.listen.port()) {
                self.dialer.dial(vec![addr], None, Purpose::Local);
            }
        }
    }

    async fn bootstrap_from_book(&mut self) {
        let Some(store) = self.store.clone() else {
            return;
        };
        let Ok(candidates) = store.candidates(BOOK_CANDIDATES).await else {
            return;
        };
        let mut peers = Vec::new();
        for c in candidates {
            if c.id == Some(self.me) {
                continue;
            }
            if let (Some(id), Some(record)) = (c.id, &c.record) {
                self.dialer.addrs.insert(id, c.addrs.clone());
                peers.push(PeerInfo {
                    id,
                    data: Bytes::from(record.encode()),
                });
            }
            if !c.addrs.is_empty() && !c.id.is_some_and(|id| self.links.contains(&id)) {
                self.dialer.dial(c.addrs.clone(), c.id, Purpose::Book);
            }
        }
        if !peers.is_empty() {
            self.proto(InEvent::Command(Command::AddPeers(peers))).await;
        }
    }

    /// Resolves a configured address (a name may need DNS) and dials it. A
    /// name that does not resolve counts as a failed dial.
    pub(super) async fn dial_address(&mut self, text: &str, purpose: Purpose) {
        match tokio::net::lookup_host(text).await {
            Ok(addrs) => {
                let addrs: Vec<SocketAddr> = addrs.collect();
                self.dialer.dial(addrs, None, purpose);
            }
            Err(e) => {
                warn!("cannot resolve {text}: {e}");
                let now = tokio::time::Instant::now().into_std();
                match purpose {
                    Purpose::Static(i) => {
                        self.bootstrap.static_failed(i, now);
                    }
                    Purpose::Seed(i) => {
                        // A failure only schedules the redial; it asks for
                        // nothing to be done now.
                        let out = self.seeds.handle_dial(i, DialResult::Failed, now);
                        debug_assert!(out.is_empty());
                    }
                    _ => {}
                }
            }
        }
    }

    pub(super) fn start_mdns(&mut self) {
        // Announce on the interface we listen on, or on all of them.
        let ip = self.local.listen.ip();
        let addrs = if ip.is_unspecified() {
            Vec::new()
        } else {
            vec![ip]
        };
        match Mdns::start_named(
            self.me,
            self.config.name.as_deref(),
            &self.config.network_id,
            self.local.listen.port(),
            addrs,
            self.bootstrap.discovered_tx.clone(),
        ) {
            Ok(mdns) => {
                info!("LAN discovery on (mDNS {})", discovery::SERVICE_TYPE);
                self.bootstrap.mdns = Some(mdns);
            }
            Err(e) => info!("LAN discovery by mDNS unavailable: {e}; probing local ports"),
        }
    }

    /// A node of our network found on the LAN: a contact if we are alone, a
    /// passive peer otherwise.
    pub(super) async fn on_discovered(&mut self, found: Discovered) {
        if found.id == self.me || found.addrs.is_empty() || self.leaving {
            return;
        }
        let known = self.dialer.addrs.contains_key(&found.id);
        self.dialer.addrs.entry(found.id).or_insert(found.addrs);
        if self.driver.neighbors.contains(&found.id) {
            return;
        }
        if self.driver.neighbors.is_empty() {
            debug!(peer = %found.id.short(), "found on the LAN; joining through it");
            self.proto(InEvent::Command(Command::Join(vec![found.id])))
                .await;
        } else if !known {
            let peer = PeerInfo {
                id: found.id,
                data: Bytes::new(),
            };
            self.proto(InEvent::Command(Command::AddPeers(vec![peer])))
                .await;
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use super::*;

    #[test]
    fn rounds_back_off_from_one_second_to_half_a_minute() {
        let mut b = Bootstrap::new(&[]);
        let mut now = Instant::now();
        assert!(b.due(now), "the first round starts at once");
        let mut waits = Vec::new();
        for _ in 0..8 {
            b.round.defer(now);
            let start = now;
            while !b.due(now) {
                now += Duration::from_millis(250);
            }
            waits.push((now - start).as_secs());
        }
        assert_eq!(waits, vec![1, 2, 4, 8, 16, 30, 30, 30]);
    }

    #[test]
    fn a_static_peer_backs_off_until_reached_then_starts_over() {
        let mut b = Bootstrap::new(&["192.0.2.1:7465".to_string()]);
        let now = Instant::now();
        assert!(b.statics[0].retry.ready(now));
        assert_eq!(b.static_failed(0, now), Some("192.0.2.1:7465"));
        assert_eq!(b.static_failed(0, now), Some("192.0.2.1:7465"));
        assert!(!b.statics[0].retry.ready(now + Duration::from_secs(1)));
        assert!(b.statics[0].retry.ready(now + Duration::from_secs(2)));
        assert_eq!(b.statics[0].retry.delay(), Duration::from_secs(4));
        b.static_resolved(0, None);
        assert_eq!(b.statics[0].id, None, "dialled ourselves: no id learned");
        assert_eq!(b.statics[0].retry.delay(), BOOTSTRAP_BACKOFF_MIN);
        assert_eq!(b.static_failed(1, now), None, "no such peer");
    }
}
