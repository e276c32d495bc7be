//! The wire: every message a node sends on a link, its encoding and its
//! bounds.
//!
//! Messages are postcard-encoded (compact, schema-less, no allocation beyond
//! the message itself). Links carry them inside encrypted frames; the frame
//! layer bounds a message to [`MAX_MESSAGE_BYTES`] before [`decode`] is ever
//! called, and [`decode`] then checks every list and size inside, so a peer
//! cannot make a node allocate or loop beyond these bounds. Decoding arbitrary
//! bytes returns an error, never panics.
//!
//! The protocol version is exchanged once, in the link handshake; a change to
//! this enum that old nodes cannot read bumps [`PROTOCOL_VERSION`].
//!
//! [`Message::class`] sorts messages into the few [`Class`]es a runtime
//! counts its traffic by, and [`kind`] names each variant for logs.

use serde::{Deserialize, Serialize};

use crate::{hyparview, plumtree, query, seed, size, sync};

/// Version of the wire protocol. The link handshake sends it in its
/// plaintext hello and refuses a peer with another one, since under another
/// version the messages below may not mean the same. Version 2: `Prune` and
/// `Graft` name the origin whose broadcast tree they change.
pub const PROTOCOL_VERSION: u16 = 2;

/// Largest encoded message, and so the largest a link carries: far above any
/// gossip message (a record list or an envelope is a few KiB), yet small
/// enough that a hostile peer cannot make a node buffer much before the
/// length is seen and refused.
pub const MAX_MESSAGE_BYTES: usize = 1 << 20;

/// Largest peer data (an encoded signed record) carried in membership
/// messages.
pub const MAX_PEER_DATA_BYTES: usize = crate::record::MAX_RECORD_BYTES;

/// Largest broadcast content: one encoded signed envelope.
pub const MAX_GOSSIP_BYTES: usize = crate::envelope::MAX_ENVELOPE_BYTES;

/// Errors from [`decode`].
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DecodeError {
    /// Larger than [`MAX_MESSAGE_BYTES`].
    #[error("message of {0} bytes is over the limit")]
    TooLarge(usize),
    /// Not a valid encoding of any message.
    #[error("malformed message: {0}")]
    Malformed(String),
    /// Well-formed, but a list or size inside is over its bound.
    #[error("message field over its bound: {0}")]
    OverBound(&'static str),
}

/// Everything that travels on a link between two nodes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Message {
    /// Membership (HyParView).
    Membership(hyparview::Message),
    /// Broadcast (Plumtree).
    Broadcast(plumtree::Message),
    /// Liveness probe of a quiet link.
    Ping(u64),
    /// Answer to a ping, echoing its nonce.
    Pong(u64),
    /// A size-estimate sketch.
    Size(size::Message),
    /// The seed protocol (registration, lists, dead reports), between a node
    /// and a seed; its bounds are checked while decoding.
    Seed(seed::SeedMessage),
    /// A direct message (an encoded signed envelope of kind `Direct`) sent
    /// straight to its recipient over a link.
    Direct(bytes::Bytes),
    /// A status query of a crawl, or its answer.
    Query(query::Query),
    /// An admin command (an encoded signed envelope, such as a shutdown)
    /// handed to a node outside the overlay: a seed.
    Admin(bytes::Bytes),
    /// Anti-entropy: history summaries and the fills that answer them.
    /// Appended last, so the encodings of the variants above are unchanged.
    Sync(sync::Message),
}

/// The classes a node counts the messages it sends by: one per part of the
/// protocol whose cost an operator weighs on its own (full copies against
/// the tree's repair traffic, membership, liveness), and [`Class::Other`]
/// for the rare rest. A small, stable set, so a table indexed by class
/// costs an array and a dashboard's series stay the same across versions.
/// New classes are appended, so [`Class::index`] of the old ones holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Class {
    /// Full copies of a broadcast (Plumtree's eager pushes and graft
    /// answers).
    Gossip,
    /// Announcements of messages held (Plumtree's lazy pushes).
    IHave,
    /// Requests to be sent a message, and to be taken into the tree.
    Graft,
    /// Requests to be left out of a tree.
    Prune,
    /// Liveness probes of a link and their answers.
    Ping,
    /// HyParView: joins, forwarded joins, neighbour requests and replies,
    /// shuffles and disconnects.
    Membership,
    /// Size-estimate sketches.
    Size,
    /// Anti-entropy: history summaries and the fills that answer them.
    Sync,
    /// Between a node and a seed: registrations, lists, dead reports.
    Seed,
    /// The rest: direct messages, crawl queries and their answers, admin
    /// commands handed to a seed.
    Other,
}

impl Class {
    /// Every class, each at its [`Class::index`].
    pub const ALL: [Class; 10] = [
        Class::Gossip,
        Class::IHave,
        Class::Graft,
        Class::Prune,
        Class::Ping,
        Class::Membership,
        Class::Size,
        Class::Sync,
        Class::Seed,
        Class::Other,
    ];

    /// How many classes there are: the length of a table indexed by
    /// [`Class::index`].
    pub const COUNT: usize = Class::ALL.len();

    /// The class's place in [`Class::ALL`], below [`Class::COUNT`]: an
    /// index into a counter table, so counting a send is one array
    /// increment.
    pub const fn index(self) -> usize {
        self as usize
    }

    /// A short lowercase name, fit for a metric label or a JSON key.
    pub const fn name(self) -> &'static str {
        match self {
            Class::Gossip => "gossip",
            Class::IHave => "ihave",
            Class::Graft => "graft",
            Class::Prune => "prune",
            Class::Ping => "ping",
            Class::Membership => "membership",
            Class::Size => "size",
            Class::Sync => "sync",
            Class::Seed => "seed",
            Class::Other => "other",
        }
    }
}

impl std::fmt::Display for Class {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl Message {
    /// The class the message is counted in. The match names every variant,
    /// so a new message cannot go uncounted or land in a class by default.
    pub fn class(&self) -> Class {
        match self {
            Message::Membership(_) => Class::Membership,
            Message::Broadcast(m) => match m {
                plumtree::Message::Gossip(_) => Class::Gossip,
                plumtree::Message::IHave(_) => Class::IHave,
                plumtree::Message::Graft { .. } => Class::Graft,
                plumtree::Message::Prune { .. } => Class::Prune,
            },
            Message::Ping(_) | Message::Pong(_) => Class::Ping,
            Message::Size(_) => Class::Size,
            Message::Sync(_) => Class::Sync,
            Message::Seed(_) => Class::Seed,
            Message::Direct(_) | Message::Query(_) | Message::Admin(_) => Class::Other,
        }
    }
}

/// Encodes a message.
pub fn encode(message: &Message) -> Vec<u8> {
    // Encoding a value of these types into a Vec cannot fail: every field is
    // serialisable and there is no size limit on the output.
    postcard::to_allocvec(message).unwrap_or_default()
}

/// Decodes and bound-checks a message.
pub fn decode(bytes: &[u8]) -> Result<Message, DecodeError> {
    if bytes.len() > MAX_MESSAGE_BYTES {
        return Err(DecodeError::TooLarge(bytes.len()));
    }
    let (message, rest): (Message, &[u8]) =
        postcard::take_from_bytes(bytes).map_err(|e| DecodeError::Malformed(e.to_string()))?;
    if !rest.is_empty() {
        return Err(DecodeError::Malformed(format!(
            "{} trailing bytes",
            rest.len()
        )));
    }
    validate(&message)?;
    Ok(message)
}

/// Checks every bound inside a message.
pub fn validate(message: &Message) -> Result<(), DecodeError> {
    use hyparview::Message as H;
    use plumtree::Message as P;
    let data_ok = |d: &bytes::Bytes| d.len() <= MAX_PEER_DATA_BYTES;
    let ok = match message {
        Message::Membership(m) => match m {
            H::Join(data) => data_ok(data),
            H::ForwardJoin { peer, .. } => data_ok(&peer.data),
            H::Shuffle { origin, nodes, .. } => {
                data_ok(&origin.data)
                    && nodes.len() <= hyparview::MAX_SHUFFLE_PEERS
                    && nodes.iter().all(|n| data_ok(&n.data))
            }
            H::ShuffleReply { nodes } => {
                nodes.len() <= hyparview::MAX_SHUFFLE_PEERS
                    && nodes.iter().all(|n| data_ok(&n.data))
            }
            H::Neighbor { data, .. } | H::NeighborReply { data, .. } => data_ok(data),
            H::Disconnect { .. } => true,
        },
        Message::Broadcast(m) => match m {
            P::Gossip(g) => g.content.len() <= MAX_GOSSIP_BYTES,
            P::IHave(entries) => entries.len() <= plumtree::MAX_IHAVE_ENTRIES,
            P::Graft { .. } | P::Prune { .. } => true,
        },
        Message::Ping(_) | Message::Pong(_) => true,
        Message::Size(s) => s.registers.len() == size::REGISTERS,
        Message::Seed(_) => true,
        Message::Direct(d) | Message::Admin(d) => d.len() <= MAX_GOSSIP_BYTES,
        Message::Query(q) => q.check(),
        Message::Sync(m) => m.check(),
    };
    if ok {
        Ok(())
    } else {
        Err(DecodeError::OverBound(kind(message)))
    }
}

/// A short name of the message's kind, for logs and metrics.
pub fn kind(message: &Message) -> &'static str {
    use hyparview::Message as H;
    use plumtree::Message as P;
    match message {
        Message::Membership(H::Join(_)) => "join",
        Message::Membership(H::ForwardJoin { .. }) => "forward_join",
        Message::Membership(H::Shuffle { .. }) => "shuffle",
        Message::Membership(H::ShuffleReply { .. }) => "shuffle_reply",
        Message::Membership(H::Neighbor { .. }) => "neighbor",
        Message::Membership(H::NeighborReply { .. }) => "neighbor_reply",
        Message::Membership(H::Disconnect { .. }) => "disconnect",
        Message::Broadcast(P::Gossip(_)) => "gossip",
        Message::Broadcast(P::IHave(_)) => "ihave",
        Message::Broadcast(P::Graft { .. }) => "graft",
        Message::Broadcast(P::Prune { .. }) => "prune",
        Message::Ping(_) => "ping",
        Message::Pong(_) => "pong",
        Message::Size(_) => "size",
        Message::Seed(_) => "seed",
        Message::Direct(_) => "direct",
        Message::Query(_) => "query",
        Message::Admin(_) => "admin",
        Message::Sync(sync::Message::Summary(_)) => "sync_summary",
        Message::Sync(sync::Message::Fill(_)) => "sync_fill",
    }
}
