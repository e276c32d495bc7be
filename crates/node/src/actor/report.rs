//! What the node tells about itself: the [`Status`] its handles ask for,
//! the [`NodeInfo`] a crawl's status query is answered with, and the
//! node-level [`Counters`] (the protocol keeps its own).
//!
//! Both reports are read from the parts as they stand; nothing here keeps
//! state beyond the counters.

use std::net::SocketAddr;

use bytes::Bytes;
use gossipnet_proto::query::{self, NodeInfo, PeerRef};
use gossipnet_proto::wire::Class;
use gossipnet_proto::NodeId;

use super::Actor;
use crate::status::{self, Identity, PerClass, Views};
use crate::{PeerStatus, Status};

/// Node-level counters (the protocol keeps its own).
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct Counters {
    pub handshake_failures: u64,
    pub bytes_sent: u64,
    pub messages_sent: u64,
    /// The sends split by class; bumped beside the totals, so they add up.
    pub bytes_sent_by_kind: PerClass,
    pub messages_sent_by_kind: PerClass,
    pub bytes_received: u64,
    pub messages_received: u64,
}

impl Counters {
    pub(super) fn sent(&mut self, class: Class, bytes: u64) {
        self.messages_sent += 1;
        self.bytes_sent += bytes;
        self.messages_sent_by_kind.add(class, 1);
        self.bytes_sent_by_kind.add(class, bytes);
    }

    pub(super) fn received(&mut self, bytes: u64) {
        self.messages_received += 1;
        self.bytes_received += bytes;
    }
}

impl Actor {
    pub(super) fn status(&self) -> Status {
        let membership = self.driver.state.membership();
        let tree = self.driver.state.broadcast().stats();
        let seeds = self.seeds.seeds();
        Status {
            identity: Identity {
                id: self.me,
                name: self.config.name.clone(),
                network_id: self.config.network_id.clone(),
                listen: self.local.listen,
                advertise: self.local.record.record().addrs.clone(),
                uptime_s: self.local.started.elapsed().as_secs(),
                role: self.role.public(),
            },
            views: Views {
                active: membership
                    .active_view()
                    .iter()
                    .map(|id| self.peer_status(*id))
                    .collect(),
                passive: membership.passive_view().to_vec(),
                links: self.links.len(),
                seeds_configured: seeds.len(),
                seeds_reachable: self.seeds.linked(|id| self.links.contains(id)).count(),
                registry_size: self.role.server().map(|s| s.registry.len()),
            },
            counters: status::Counters {
                broadcast: tree.broadcast,
                delivered: tree.delivered,
                forwarded: tree.payload_sent,
                duplicates: tree.duplicates,
                handshake_failures: self.counters.handshake_failures,
                bytes_sent: self.counters.bytes_sent,
                bytes_received: self.counters.bytes_received,
                messages_sent: self.counters.messages_sent,
                bytes_sent_by_kind: self.counters.bytes_sent_by_kind,
                messages_sent_by_kind: self.counters.messages_sent_by_kind,
                messages_received: self.counters.messages_received,
                caught_up: self.driver.state.sync().map_or(0, |s| s.stats().caught_up),
                history: self.driver.state.sync().map_or(0, |s| s.history().len()),
            },
            size_estimate: self.driver.state.size_estimate(),
            shutting_down: self.shutdown.pending(),
        }
    }

    /// One neighbour as the status shows it: its record's name and
    /// addresses, and what the link table knows of the link.
    fn peer_status(&self, id: NodeId) -> PeerStatus {
        let link = self.links.info(&id);
        let listen = self
            .dialer
            .addrs_of(&id)
            .cloned()
            .or_else(|| self.links.dialled_addr(&id).map(|a| vec![a]))
            .unwrap_or_default();
        PeerStatus {
            id,
            name: self.dialer.name_of(&id).map(str::to_string),
            listen,
            addr: link.map(|l| l.addr),
            direction: link.map(|l| l.direction),
            transport: link.map(|_| "tcp"),
            rtt_ms: link.and_then(|l| l.rtt).map(|d| d.as_secs_f64() * 1e3),
            link_age_s: link.map(|l| l.age.as_secs()),
            bytes_sent: link.map_or(0, |l| l.bytes_sent),
            bytes_received: link.map_or(0, |l| l.bytes_received),
        }
    }

    /// What this node tells a crawl about itself.
    pub(super) fn node_info(&self) -> NodeInfo {
        let peer_ref = |id: NodeId| PeerRef {
            id,
            addrs: self
                .dialer
                .addrs_of(&id)
                .cloned()
                .or_else(|| self.links.dialled_addr(&id).map(|a| vec![a]))
                .unwrap_or_default(),
        };
        let neighbors = self
            .driver
            .state
            .membership()
            .active_view()
            .iter()
            .take(query::MAX_NEIGHBORS)
            .map(|id| peer_ref(*id))
            .collect();
        let seeds = self
            .seeds
            .seeds()
            .iter()
            .filter_map(|s| {
                s.id()
                    .filter(|id| self.links.contains(id))
                    .map(|id| (s, id))
            })
            .take(query::MAX_SEEDS)
            .map(|(s, id)| {
                let mut r = peer_ref(id);
                if r.addrs.is_empty() {
                    r.addrs.extend(s.addr().parse::<SocketAddr>().ok());
                }
                r
            })
            .collect();
        let registry = self
            .role
            .server()
            .map(|server| {
                server
                    .registry
                    .records()
                    .take(query::MAX_REGISTRY)
                    .map(|r| PeerRef {
                        id: r.id(),
                        addrs: r.record().addrs.clone(),
                    })
                    .collect()
            })
            .unwrap_or_default();
        NodeInfo {
            record: Bytes::from(self.local.record.encode()),
            uptime_s: self.local.started.elapsed().as_secs(),
            size_estimate: self
                .driver
                .state
                .size_estimate()
                .map(|e| e.round().max(0.0) as u64),
            neighbors,
            seeds,
            registry,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sends_and_receipts_count_messages_and_bytes() {
        let mut c = Counters::default();
        c.sent(Class::Gossip, 10);
        c.sent(Class::IHave, 5);
        c.received(7);
        assert_eq!((c.messages_sent, c.bytes_sent), (2, 15));
        assert_eq!(c.bytes_sent_by_kind[Class::Gossip], 10);
        assert_eq!(c.bytes_sent_by_kind[Class::IHave], 5);
        assert_eq!(c.bytes_sent_by_kind.total(), c.bytes_sent);
        assert_eq!(c.messages_sent_by_kind.total(), c.messages_sent);
        assert_eq!((c.messages_received, c.bytes_received), (1, 7));
        assert_eq!(c.handshake_failures, 0);
    }
}
