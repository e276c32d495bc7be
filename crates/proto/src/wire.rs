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
