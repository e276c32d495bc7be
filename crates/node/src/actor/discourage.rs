//! Misbehaviour scores and discouragement: a peer that keeps breaking the
//! rules is refused for a while, with the reason in words.
//!
//! Every offence adds points to a score kept by peer node id (for what a
//! proven peer does on its link: protocol misbehaviour, undecodable or
//! oversized frames) or by IP address (for what happens before an id is
//! proven: bad identity proofs, handshakes abandoned half-way). A score
//! that reaches [`THRESHOLD`] discourages its key for [`DISCOURAGE_FOR`]:
//! its link is closed and its handshakes are refused with the reason
//! "discouraged", once logged as a warning. A score with no new points for
//! [`SCORE_MEMORY`] starts again from zero, so a rare slip never adds up
//! to a ban.
//!
//! Loopback addresses are never scored by IP: every node of a local test
//! network shares 127.0.0.1, so one bad node would ban them all. They are
//! still scored by node id, and the per-address handshake cap in
//! [`super::dial`] still applies to them.
//!
//! The table is shared (behind a mutex held only for a lookup or an
//! update) between the actor, which scores what it sees on links, and the
//! accept tasks, which score handshakes and ask before they accept an id.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use gossipnet_proto::NodeId;
use tokio::time::Instant;
use tracing::warn;

use super::Actor;

/// Score at which a key is discouraged; the points of each offence are
/// fractions of it, so the count of offences to a ban is plain to read.
pub(crate) const THRESHOLD: u32 = 100;
/// How long a discouraged key is refused: long enough that a hostile peer
/// gains little by retrying, short enough that a peer fixed (or an address
/// handed to someone else) is soon served again.
pub(crate) const DISCOURAGE_FOR: Duration = Duration::from_secs(10 * 60);
/// A score with no new points for this long is forgotten.
const SCORE_MEMORY: Duration = Duration::from_secs(10 * 60);
/// Most keys scored at once: a few hundred bytes each, so the table stays
/// small however many ids or addresses a flood makes up.
const MAX_SCORED: usize = 4096;
/// The reason a discouraged peer reads in its refusal.
pub(crate) const REASON: &str = "discouraged: too much misbehaviour, try again later";

/// What a score is kept for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Key {
    Id(NodeId),
    Ip(IpAddr),
}

/// What a peer did wrong, and what it costs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Offence {
    /// The protocol reported it (an unasked-for fill, a forged envelope).
    Misbehaved,
    /// A frame that did not decode, decrypt or fit the size bound.
    BadFrame,
    /// An identity proof that did not verify.
    BadProof,
    /// A handshake left half-way: the peer went silent or hung up.
    Abandoned,
}

impl Offence {
    /// Points: three protocol offences, bad frames or bad proofs ban; an
    /// abandoned handshake is often a network fault, so it takes ten.
    pub(crate) fn points(self) -> u32 {
        match self {
            Self::Misbehaved | Self::BadFrame | Self::BadProof => 34,
            Self::Abandoned => 10,
        }
    }

    fn words(self) -> &'static str {
        match self {
            Self::Misbehaved => "protocol misbehaviour",
            Self::BadFrame => "bad frames",
            Self::BadProof => "bad identity proofs",
            Self::Abandoned => "abandoned handshakes",
        }
    }
}

/// The offence a link's closing error shows, if any: only what a peer
/// does on purpose or by a bug, never what a network does (resets, a cut
/// in the middle of a frame).
pub(crate) fn offence_of_link_error(error: &str) -> Option<Offence> {
    // The words of `LinkError` and of the reader's decode failure; a test
    // pins them to the types.
    const BAD: [&str; 4] = [
        "bad message",
        "byte limit",
        "failed to decrypt",
        "shorter than its tag",
    ];
    BAD.iter()
        .any(|words| error.contains(words))
        .then_some(Offence::BadFrame)
}

#[derive(Debug, Clone, Copy)]
struct Entry {
    score: u32,
    last: Instant,
    until: Option<Instant>,
}

/// The score table; see the module docs.
#[derive(Debug, Default)]
pub(crate) struct Scores {
    entries: HashMap<Key, Entry>,
}

/// The table as the actor and the accept tasks share it.
#[derive(Debug, Clone, Default)]
pub(crate) struct Shared(Arc<Mutex<Scores>>);

impl Shared {
    /// The table, even if a holder panicked: a score is never left half
    /// written, so the data is sound.
    pub(crate) fn lock(&self) -> MutexGuard<'_, Scores> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Whether an address is scored at all; see the module docs.
pub(crate) fn scored_ip(ip: IpAddr) -> bool {
    !ip.to_canonical().is_loopback()
}

impl Scores {
    /// Adds `offence`'s points to `key`'s score at `now`. True if this
    /// discouraged the key (it was not before); then a warning is logged.
    pub(crate) fn add(&mut self, key: Key, offence: Offence, now: Instant) -> bool {
        if let Key::Ip(ip) = key {
            if !scored_ip(ip) {
                return false;
            }
        }
        if !self.entries.contains_key(&key) && self.entries.len() >= MAX_SCORED {
            self.evict(now);
        }
        let entry = self.entries.entry(key).or_insert(Entry {
            score: 0,
            last: now,
            until: None,
        });
        if entry.until.is_some_and(|until| until <= now) {
            entry.until = None;
            entry.score = 0;
        }
        if entry.until.is_some() {
            return false;
        }
        if now.duration_since(entry.last) > SCORE_MEMORY {
            entry.score = 0;
        }
        entry.last = now;
        entry.score = entry.score.saturating_add(offence.points());
        if entry.score < THRESHOLD {
            return false;
        }
        entry.until = Some(now + DISCOURAGE_FOR);
        let minutes = DISCOURAGE_FOR.as_secs() / 60;
        match key {
            Key::Id(id) => warn!(
                peer = %id.short(),
                "discouraging peer for {minutes} min: {}", offence.words()
            ),
            Key::Ip(ip) => warn!(
                %ip,
                "discouraging address for {minutes} min: {}", offence.words()
            ),
        }
        true
    }

    /// Whether `key` is discouraged at `now`.
    pub(crate) fn discouraged(&self, key: Key, now: Instant) -> bool {
        self.entries
            .get(&key)
            .and_then(|e| e.until)
            .is_some_and(|until| until > now)
    }

    /// Makes room: drops the entry whose ban ends first or, before any
    /// ban, the score touched longest ago. Only when the table is full.
    fn evict(&mut self, now: Instant) {
        let victim = self
            .entries
            .iter()
            .min_by_key(|(_, e)| match e.until {
                Some(until) if until > now => (1, until),
                _ => (0, e.last),
            })
            .map(|(k, _)| *k);
        if let Some(k) = victim {
            self.entries.remove(&k);
        }
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }
}

impl Actor {
    /// Scores `offence` against proven peer `peer`; a peer discouraged
    /// loses its link.
    pub(super) fn discourage(&mut self, peer: NodeId, offence: Offence) {
        let now = Instant::now();
        let mut scores = self.dialer.scores.lock();
        scores.add(Key::Id(peer), offence, now);
        let banned = scores.discouraged(Key::Id(peer), now);
        drop(scores);
        if banned {
            self.links.close(peer);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    use super::*;
    use crate::transport::LinkError;

    fn id(n: u8) -> NodeId {
        NodeId::from_bytes([n; 32])
    }

    #[test]
    fn three_offences_discourage_and_the_ban_ends() {
        let mut s = Scores::default();
        let now = Instant::now();
        let key = Key::Id(id(1));
        assert!(!s.add(key, Offence::Misbehaved, now));
        assert!(!s.add(key, Offence::Misbehaved, now));
        assert!(!s.discouraged(key, now));
        assert!(s.add(key, Offence::Misbehaved, now), "the third bans");
        assert!(s.discouraged(key, now));
        assert!(
            !s.add(key, Offence::Misbehaved, now),
            "one ban, one warning"
        );
        assert!(!s.discouraged(Key::Id(id(2)), now), "others are served");
        assert!(!s.discouraged(key, now + DISCOURAGE_FOR));
    }

    #[test]
    fn old_points_are_forgotten() {
        let mut s = Scores::default();
        let now = Instant::now();
        let key = Key::Ip(IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1)));
        s.add(key, Offence::BadProof, now);
        s.add(key, Offence::BadProof, now);
        let later = now + SCORE_MEMORY + Duration::from_secs(1);
        assert!(!s.add(key, Offence::BadProof, later));
        assert!(!s.discouraged(key, later));
    }

    #[test]
    fn loopback_is_never_scored_by_address() {
        let mut s = Scores::default();
        let now = Instant::now();
        for ip in [
            IpAddr::V4(Ipv4Addr::LOCALHOST),
            IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2)),
            "::1".parse().unwrap(),
            "::ffff:127.0.0.1".parse().unwrap(),
        ] {
            for _ in 0..20 {
                assert!(!s.add(Key::Ip(ip), Offence::BadProof, now));
            }
            assert!(!s.discouraged(Key::Ip(ip), now));
        }
        assert_eq!(s.len(), 0);
    }

    #[test]
    fn the_table_is_bounded_and_keeps_its_bans() {
        let mut s = Scores::default();
        let now = Instant::now();
        let banned = Key::Id(id(0));
        for _ in 0..3 {
            s.add(banned, Offence::BadFrame, now);
        }
        for n in 0..MAX_SCORED as u32 + 100 {
            let ip = IpAddr::V4(Ipv4Addr::from(0x0a00_0000 + n));
            s.add(Key::Ip(ip), Offence::Abandoned, now);
        }
        assert!(s.len() <= MAX_SCORED);
        assert!(
            s.discouraged(banned, now),
            "a flood of new keys lifts no ban"
        );
    }

    #[test]
    fn link_errors_that_are_the_peers_fault_score_and_network_ones_do_not() {
        let bad = [
            LinkError::Decrypt.to_string(),
            LinkError::ShortFrame { len: 3 }.to_string(),
            LinkError::MessageTooLarge { len: 10, max: 1 }.to_string(),
            "bad message: malformed".to_string(),
        ];
        for e in bad {
            assert_eq!(offence_of_link_error(&e), Some(Offence::BadFrame), "{e}");
        }
        let network = [
            LinkError::Truncated.to_string(),
            LinkError::Io(std::io::Error::from(std::io::ErrorKind::ConnectionReset)).to_string(),
        ];
        for e in network {
            assert_eq!(offence_of_link_error(&e), None, "{e}");
        }
    }
}
