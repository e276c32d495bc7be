//! A node's report on itself: the [`Status`] that
//! [`Node::status`](crate::Node::status) returns and the control API
//! serves as JSON at `/api/status` (docs/API.md is the contract for its
//! shape).

use std::net::SocketAddr;
use std::ops::{AddAssign, Index};

use gossipnet_proto::wire::Class;
use gossipnet_proto::NodeId;
use serde::ser::SerializeMap;
use serde::{Deserialize, Serialize, Serializer};

/// One neighbour in a [`Status`], and an entry of `gossipnet peers`.
#[derive(Debug, Clone, Serialize)]
pub struct PeerStatus {
    /// The neighbour's id.
    pub id: NodeId,
    /// The name in the neighbour's record, if it has one and it has reached
    /// this node.
    pub name: Option<String>,
    /// Where the neighbour listens, from its record (or the address it was
    /// dialled at): what another node would dial.
    pub listen: Vec<SocketAddr>,
    /// The address of the link to it (`None` while no link is open). For an
    /// inbound link this is the peer's source port, not where it listens.
    pub addr: Option<SocketAddr>,
    /// Which side opened the link.
    pub direction: Option<Direction>,
    /// What the link runs over: `"tcp"`.
    pub transport: Option<&'static str>,
    /// The round-trip time of the last ping answered on the link, in
    /// milliseconds (the node pings each new link once, then quiet ones).
    pub rtt_ms: Option<f64>,
    /// Seconds since the link was established.
    pub link_age_s: Option<u64>,
    /// Bytes of messages queued to the link (before framing and encryption).
    pub bytes_sent: u64,
    /// Bytes of messages read from the link.
    pub bytes_received: u64,
}

/// Which side opened a link. Serialised, and shown, as `"outbound"` or
/// `"inbound"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Direction {
    /// We dialled.
    Outbound,
    /// The peer dialled.
    Inbound,
}

impl Direction {
    /// `"outbound"` or `"inbound"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Direction::Outbound => "outbound",
            Direction::Inbound => "inbound",
        }
    }
}

/// What part a node plays in the network. Serialised, and shown, as
/// `"node"` or `"seed"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// In the overlay: joins, broadcasts, registers with seeds.
    Node,
    /// Keeps the registry of live nodes and stays out of the overlay.
    Seed,
}

impl Role {
    /// The role's name: `"node"` or `"seed"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Node => "node",
            Role::Seed => "seed",
        }
    }
}

impl std::fmt::Display for Role {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A node's view of itself. Serialised flat: the groups' fields sit beside
/// `size_estimate` and `shutting_down` in one JSON object.
#[derive(Debug, Clone, Serialize)]
pub struct Status {
    /// Who the node is and where it listens.
    #[serde(flatten)]
    pub identity: Identity,
    /// Its neighbours, links and seeds.
    #[serde(flatten)]
    pub views: Views,
    /// What it has sent and received since it started.
    #[serde(flatten)]
    pub counters: Counters,
    /// Gossip estimate of the network size.
    pub size_estimate: Option<f64>,
    /// An admin's shutdown command was obeyed; the node is about to leave.
    pub shutting_down: bool,
}

/// Who a node is, in a [`Status`].
#[derive(Debug, Clone, Serialize)]
pub struct Identity {
    /// The node's id (the public half of its key).
    pub id: NodeId,
    /// The name shown beside the id, if it has one.
    pub name: Option<String>,
    /// The network it belongs to.
    pub network_id: String,
    /// Where it listens.
    pub listen: SocketAddr,
    /// The addresses in its record.
    pub advertise: Vec<SocketAddr>,
    /// Seconds since the node started.
    pub uptime_s: u64,
    /// In the overlay, or keeping the registry.
    pub role: Role,
}

/// A node's neighbours, links and seeds, in a [`Status`].
#[derive(Debug, Clone, Serialize)]
pub struct Views {
    /// The neighbours (HyParView's active view): the peers messages are
    /// exchanged with.
    pub active: Vec<PeerStatus>,
    /// Peers known and kept in reserve (HyParView's passive view), to
    /// replace a neighbour that leaves.
    pub passive: Vec<NodeId>,
    /// Links established now, to neighbours and to other peers (seeds,
    /// peers being tried).
    pub links: usize,
    /// Seeds in the config.
    pub seeds_configured: usize,
    /// Seeds this node has a link to now.
    pub seeds_reachable: usize,
    /// Records in the registry (seeds only).
    pub registry_size: Option<usize>,
}

/// What a node has sent and received since it started, in a [`Status`].
#[derive(Debug, Clone, Serialize)]
pub struct Counters {
    /// Messages this node broadcast.
    pub broadcast: u64,
    /// Messages delivered here.
    pub delivered: u64,
    /// Full-message sends (forwarded, originated, graft answers).
    pub forwarded: u64,
    /// Duplicate copies received.
    pub duplicates: u64,
    /// Links that failed their handshake.
    pub handshake_failures: u64,
    /// Bytes queued to links.
    pub bytes_sent: u64,
    /// Bytes of messages read from links.
    pub bytes_received: u64,
    /// Messages queued to links.
    pub messages_sent: u64,
    /// [`bytes_sent`](Counters::bytes_sent) split by the class of message:
    /// where the bytes go. The classes add up to it exactly.
    pub bytes_sent_by_kind: PerClass,
    /// [`messages_sent`](Counters::messages_sent) split by the class of
    /// message. The classes add up to it exactly.
    pub messages_sent_by_kind: PerClass,
    /// Messages read from links.
    pub messages_received: u64,
    /// Messages delivered by catch-up (anti-entropy) after being missed.
    pub caught_up: u64,
    /// Messages in the history (the retention window), ours included.
    pub history: usize,
}

/// A count for each [`Class`] of message, as [`Counters`] splits what a
/// node sends. Read one class with `counts[Class::Gossip]`, all of them
/// with [`PerClass::iter`]; sum several nodes' with `+=`. Serialised as an
/// object keyed by [`Class::name`], every class present, in the order of
/// [`Class::ALL`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PerClass([u64; Class::COUNT]);

impl PerClass {
    /// The count of one class.
    pub fn get(&self, class: Class) -> u64 {
        self.0[class.index()]
    }

    /// Every class with its count, in the order of [`Class::ALL`].
    pub fn iter(&self) -> impl Iterator<Item = (Class, u64)> + '_ {
        Class::ALL.into_iter().map(|class| (class, self.get(class)))
    }

    /// The sum over all classes.
    pub fn total(&self) -> u64 {
        self.0.iter().sum()
    }

    /// Adds `n` to one class: an index and an add, cheap enough for every
    /// message sent.
    pub(crate) fn add(&mut self, class: Class, n: u64) {
        self.0[class.index()] += n;
    }
}

impl Index<Class> for PerClass {
    type Output = u64;

    fn index(&self, class: Class) -> &u64 {
        &self.0[class.index()]
    }
}

impl AddAssign for PerClass {
    fn add_assign(&mut self, other: PerClass) {
        for (mine, theirs) in self.0.iter_mut().zip(other.0) {
            *mine += theirs;
        }
    }
}

impl Serialize for PerClass {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(Class::COUNT))?;
        for (class, n) in self.iter() {
            map.serialize_entry(class.name(), &n)?;
        }
        map.end()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_per_class_add_index_and_serialise_by_name() {
        let mut a = PerClass::default();
        a.add(Class::Gossip, 100);
        a.add(Class::Ping, 3);
        a.add(Class::Gossip, 1);
        let mut b = PerClass::default();
        b.add(Class::Other, 7);
        a += b;
        assert_eq!(a[Class::Gossip], 101);
        assert_eq!(a.get(Class::Ping), 3);
        assert_eq!(a[Class::Other], 7);
        assert_eq!(a[Class::IHave], 0);
        assert_eq!(a.total(), 111);
        assert_eq!(a.iter().count(), Class::COUNT);
        let json = serde_json::to_value(a).unwrap();
        let object = json.as_object().unwrap();
        assert_eq!(object.len(), Class::COUNT, "every class, zeros too");
        assert_eq!(object["gossip"], 101);
        assert_eq!(object["ihave"], 0);
        // A `Value`'s keys are sorted; the text shows the order written.
        let text = serde_json::to_string(&a).unwrap();
        let at: Vec<usize> = Class::ALL
            .iter()
            .map(|c| text.find(&format!("\"{}\":", c.name())).unwrap())
            .collect();
        assert!(at.is_sorted(), "not in the order of Class::ALL: {text}");
    }
}
