//! Anti-entropy: two neighbours compare summaries of their histories and
//! each sends the other what it lacks, so a node back from downtime, or a
//! partition that heals, ends with every message of the retention window.
//!
//! This is push-pull anti-entropy in the sense of Demers et al.,
//! "Epidemic Algorithms for Replicated Database Maintenance" (PODC 1987),
//! with the summary of van Renesse et al.'s "Efficient Reconciliation and
//! Flow Control for Anti-Entropy Protocols" (LADIS 2008): per origin, the
//! sequence numbers held, as ranges ([`crate::history::Summary`]). A node
//! starts a *session* with a neighbour when the link comes up (or is
//! replaced), and every [`Config::interval`] with one neighbour picked at
//! random. A round is one [`Message::Summary`] from the node and one
//! [`Message::Fill`] back: the neighbour's envelopes the summary lacks, in
//! origin then sequence order, up to [`Config::fill_budget`] bytes. While
//! the fill says there is more, or the summary covered only a slice of the
//! origins, the next round follows [`Config::round_gap`] later. Both ends
//! of a new link start a session, so each learns what the other has.
//!
//! Bounds, against a hostile neighbour: one round is outstanding per peer,
//! and a fill that was not asked for closes the link; a summary is answered
//! at most once per [`Config::min_answer_gap`]; a
//! fill's envelopes are verified like any broadcast (one that fails closes
//! the link), and those outside the age window are dropped; a session ends
//! after [`Config::max_rounds`] rounds, or at the first round that brings
//! nothing new. Memory is the history's own bound.
//!
//! Two rules spread a repair beyond the two ends of one session. A fill
//! that brought something new is news for the rest of the neighbourhood
//! too, so the node starts sessions with its other neighbours
//! ([`OutEvent::Learned`]); and each tick also runs a session with a
//! random *passive* peer: if that fill brings something new, the overlay
//! is split (a healed partition whose views had filled up on each side),
//! and the router joins through that peer to stitch the two parts
//! together.
//!
//! Order: a fill's envelopes are delivered sorted by origin and sequence,
//! so a gap is filled in sequence order. Live messages are not held back
//! while a gap is being filled (a held message could wait on one that no
//! one has any more), so a message broadcast during catch-up can be
//! delivered before older ones of its origin that are still on the way.

use std::collections::{BTreeMap, VecDeque};
use std::time::{Duration, Instant};

use bytes::Bytes;
use rand::seq::IteratorRandom;
use rand::Rng;
use serde::{Deserialize, Serialize};

use crate::envelope::SignedEnvelope;
use crate::history::{self, Age, History, Meta, Summary, FIRST_ID, LAST_ID};
use crate::{MessageId, NodeId};

/// Tunables of anti-entropy.
#[derive(Debug, Clone)]
pub struct Config {
    /// The history's windows and bounds.
    pub history: history::Config,
    /// Period of the background session with one random neighbour: low
    /// enough to cost nothing (one summary of a few KB per 30 s), often
    /// enough that a gap left by a lost message closes within a minute.
    pub interval: Duration,
    /// Wait between the rounds of one session, so a long catch-up is paced
    /// rather than a burst.
    pub round_gap: Duration,
    /// A neighbour's summaries closer together than this are dropped: an
    /// honest one waits `round_gap` between rounds.
    pub min_answer_gap: Duration,
    /// Most envelope bytes in one fill: a quarter of the largest wire
    /// message, so a fill never nears the frame limit.
    pub fill_budget: usize,
    /// A round whose fill has not come after this long is given up.
    pub fill_timeout: Duration,
    /// Most rounds in one session: with the budget, 16 MiB per session; the
    /// next session carries on.
    pub max_rounds: u32,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            history: history::Config::default(),
            interval: Duration::from_secs(30),
            round_gap: Duration::from_millis(100),
            min_answer_gap: Duration::from_millis(50),
            fill_budget: 256 * 1024,
            fill_timeout: Duration::from_secs(10),
            max_rounds: 64,
        }
    }
}

/// Most envelopes in one fill: the budget holds a few thousand small chat
/// lines; a list longer than this is refused before it is looked at.
pub const MAX_FILL_ENVELOPES: usize = 4096;

/// Most fills owed to ended sessions counted per peer: a neighbour that
/// flaps faster than its fills arrive cannot buy unlimited unasked fills.
const MAX_ORPHANED_FILLS: u32 = 4;

/// Most peers with fills owed to ended sessions; more than any node's
/// neighbours come and go within one fill timeout.
const MAX_ORPHANED_PEERS: usize = 1024;

/// Most peers whose last summary is remembered for the rate limit; past
/// it, those outside the gap are forgotten. More than any node's links.
const MAX_ANSWERED: usize = 4096;

/// Anti-entropy's wire messages.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Message {
    /// What the sender holds of a slice of the origins; answered by a fill.
    Summary(Summary),
    /// The answer: envelopes the summary lacked.
    Fill(Fill),
}

/// Envelopes a summary lacked.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Fill {
    /// Encoded signed envelopes, ascending by origin then sequence.
    pub envelopes: Vec<Bytes>,
    /// The budget cut the fill short: ask again.
    pub more: bool,
}

impl Message {
    /// Whether the bounds hold.
    pub fn check(&self) -> bool {
        match self {
            Message::Summary(s) => s.check(),
            Message::Fill(f) => {
                f.envelopes.len() <= MAX_FILL_ENVELOPES
                    && f.envelopes
                        .iter()
                        .all(|e| e.len() <= crate::envelope::MAX_ENVELOPE_BYTES)
            }
        }
    }
}

/// Timers of anti-entropy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Timer {
    /// Start the background session, expire stale rounds.
    Tick,
    /// The next round of the session with this peer.
    Round(NodeId),
}

/// Outputs of anti-entropy.
#[derive(Debug, Clone)]
pub enum OutEvent {
    /// Send to a peer.
    SendMessage(NodeId, Message),
    /// Call back after the delay.
    ScheduleTimer(Duration, Timer),
    /// A message caught up: verified, new, inside the window, recorded in
    /// the history; deliver it.
    Deliver {
        /// The neighbour it came from.
        from: NodeId,
        /// Its id.
        id: MessageId,
        /// The encoded envelope.
        content: Bytes,
    },
    /// The peer broke the rules; close its link.
    Misbehaved(NodeId, &'static str),
    /// A fill from this peer brought messages this node lacked: the other
    /// neighbours may lack them too, and a peer that is not a neighbour
    /// has shown the overlay to be split.
    Learned(NodeId),
}

/// Counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    /// Sessions started.
    pub sessions: u64,
    /// Summaries sent.
    pub summaries_sent: u64,
    /// Envelopes sent in fills.
    pub envelopes_sent: u64,
    /// Messages delivered by catch-up.
    pub caught_up: u64,
    /// Envelopes in fills that were known already.
    pub duplicates: u64,
    /// Envelopes refused for being outside the age window.
    pub outside_window: u64,
    /// Summaries dropped for coming too fast.
    pub summaries_dropped: u64,
    /// Fills dropped because the session that asked for them had ended.
    pub late_fills: u64,
}

#[derive(Debug)]
struct Session {
    /// Where the next summary's slice starts.
    lo: NodeId,
    /// The round out: when its summary went, and where its slice ended.
    awaiting: Option<(Instant, NodeId)>,
    rounds: u32,
}

/// The anti-entropy state of one node, with its history.
#[derive(Debug)]
pub struct AntiEntropy {
    config: Config,
    history: History,
    sessions: BTreeMap<NodeId, Session>,
    answered: BTreeMap<NodeId, Instant>,
    /// Fills still owed to sessions that ended with their round out (the
    /// neighbour went and came back, or the link was replaced): how many,
    /// and when the last such session ended. A fill that answers one of
    /// them is honest, only late, and is dropped without blame.
    orphans: BTreeMap<NodeId, (u32, Instant)>,
    started: bool,
    stats: Stats,
}

impl AntiEntropy {
    /// No history and no sessions yet.
    pub fn new(config: Config) -> Self {
        Self {
            history: History::new(config.history.clone()),
            config,
            sessions: BTreeMap::new(),
            answered: BTreeMap::new(),
            orphans: BTreeMap::new(),
            started: false,
            stats: Stats::default(),
        }
    }

    /// The history.
    pub fn history(&self) -> &History {
        &self.history
    }

    /// The history, to record what was delivered or broadcast.
    pub fn history_mut(&mut self) -> &mut History {
        &mut self.history
    }

    /// Counters since start.
    pub fn stats(&self) -> Stats {
        self.stats
    }

    /// Schedules the background tick, once.
    pub fn start(&mut self, out: &mut VecDeque<OutEvent>) {
        if !self.started {
            self.started = true;
            out.push_back(OutEvent::ScheduleTimer(self.config.interval, Timer::Tick));
        }
    }

    /// A link to `peer` came up or was replaced: catch up with it.
    pub fn on_link_up(&mut self, peer: NodeId, now: Instant, out: &mut VecDeque<OutEvent>) {
        self.start_session(peer, now, out);
    }

    /// `peer` left the active view.
    pub fn on_neighbor_down(&mut self, peer: &NodeId, now: Instant) {
        if let Some(session) = self.sessions.remove(peer) {
            if session.awaiting.is_some() {
                self.orphan(*peer, now);
            }
        }
        self.answered.remove(peer);
    }

    /// A session with `peer` ended with its fill still to come.
    fn orphan(&mut self, peer: NodeId, now: Instant) {
        let timeout = self.config.fill_timeout;
        self.orphans
            .retain(|_, (_, since)| now.saturating_duration_since(*since) < timeout);
        if self.orphans.len() >= MAX_ORPHANED_PEERS && !self.orphans.contains_key(&peer) {
            return;
        }
        let entry = self.orphans.entry(peer).or_insert((0, now));
        entry.0 = (entry.0 + 1).min(MAX_ORPHANED_FILLS);
        entry.1 = now;
    }

    /// Whether a fill from `peer` that no session awaits answers a session
    /// that ended; if so, it is taken off the count.
    fn late_fill(&mut self, peer: &NodeId, now: Instant) -> bool {
        let timeout = self.config.fill_timeout;
        let Some((count, since)) = self.orphans.get_mut(peer) else {
            return false;
        };
        let late = *count > 0 && now.saturating_duration_since(*since) < timeout;
        *count = count.saturating_sub(1);
        if *count == 0 || !late {
            self.orphans.remove(peer);
        }
        late
    }

    /// Starts a session with `peer` unless one is under way.
    pub fn start_session(&mut self, peer: NodeId, now: Instant, out: &mut VecDeque<OutEvent>) {
        if self.sessions.contains_key(&peer) {
            return;
        }
        self.stats.sessions += 1;
        self.sessions.insert(
            peer,
            Session {
                lo: FIRST_ID,
                awaiting: None,
                rounds: 0,
            },
        );
        self.send_summary(peer, now, out);
    }

    fn send_summary(&mut self, peer: NodeId, now: Instant, out: &mut VecDeque<OutEvent>) {
        let Some(session) = self.sessions.get_mut(&peer) else {
            return;
        };
        let summary = self.history.summary(session.lo);
        session.awaiting = Some((now, summary.hi));
        session.rounds += 1;
        self.stats.summaries_sent += 1;
        out.push_back(OutEvent::SendMessage(peer, Message::Summary(summary)));
    }

    /// A timer fired. `neighbors` is the active view, `passive` the
    /// passive one.
    #[allow(clippy::too_many_arguments)]
    pub fn on_timer<'a, R: Rng>(
        &mut self,
        timer: Timer,
        neighbors: impl Iterator<Item = &'a NodeId>,
        passive: impl Iterator<Item = &'a NodeId>,
        now: Instant,
        now_ms: u64,
        rng: &mut R,
        out: &mut VecDeque<OutEvent>,
    ) {
        match timer {
            Timer::Tick => {
                self.history.evict(now_ms);
                let timeout = self.config.fill_timeout;
                self.sessions.retain(|_, s| match s.awaiting {
                    Some((at, _)) => now.saturating_duration_since(at) < timeout,
                    None => true,
                });
                let idle = neighbors
                    .filter(|p| !self.sessions.contains_key(p))
                    .copied()
                    .choose(rng);
                if let Some(peer) = idle {
                    self.start_session(peer, now, out);
                }
                let beyond = passive
                    .filter(|p| !self.sessions.contains_key(p))
                    .copied()
                    .choose(rng);
                if let Some(peer) = beyond {
                    self.start_session(peer, now, out);
                }
                out.push_back(OutEvent::ScheduleTimer(self.config.interval, Timer::Tick));
            }
            Timer::Round(peer) => {
                if self
                    .sessions
                    .get(&peer)
                    .is_some_and(|s| s.awaiting.is_none())
                {
                    self.send_summary(peer, now, out);
                }
            }
        }
    }

    /// A message from `from`; `verify` whether envelopes' signatures are checked, and
    /// `now_ms` is the wall clock, if the runtime gives one (without it,
    /// ages are not judged).
    #[allow(clippy::too_many_arguments)]
    pub fn on_message(
        &mut self,
        from: NodeId,
        message: Message,
        verify: bool,
        now: Instant,
        now_ms: Option<u64>,
        out: &mut VecDeque<OutEvent>,
    ) {
        match message {
            Message::Summary(summary) => self.on_summary(from, summary, now, out),
            Message::Fill(fill) => self.on_fill(from, fill, verify, now, now_ms, out),
        }
    }

    fn on_summary(
        &mut self,
        from: NodeId,
        summary: Summary,
        now: Instant,
        out: &mut VecDeque<OutEvent>,
    ) {
        // Any linked peer is answered, not only neighbours: the two ends of
        // a new link list each other a moment apart, and a summary may
        // arrive first. What is sent is broadcast data, public anyway.
        if self.answered.len() >= MAX_ANSWERED {
            let gap = self.config.min_answer_gap;
            self.answered
                .retain(|_, at| now.saturating_duration_since(*at) < gap);
        }
        if let Some(at) = self.answered.get(&from) {
            if now.saturating_duration_since(*at) < self.config.min_answer_gap {
                self.stats.summaries_dropped += 1;
                return;
            }
        }
        self.answered.insert(from, now);
        let (envelopes, more) = self.history.missing_from(&summary, self.config.fill_budget);
        self.stats.envelopes_sent += envelopes.len() as u64;
        out.push_back(OutEvent::SendMessage(
            from,
            Message::Fill(Fill { envelopes, more }),
        ));
    }

    fn on_fill(
        &mut self,
        from: NodeId,
        fill: Fill,
        verify: bool,
        now: Instant,
        now_ms: Option<u64>,
        out: &mut VecDeque<OutEvent>,
    ) {
        let Some(hi) = self
            .sessions
            .get_mut(&from)
            .and_then(|s| s.awaiting.take())
            .map(|(_, hi)| hi)
        else {
            if self.late_fill(&from, now) {
                // Honest but late: its session ended while it was on
                // the way. What it carries comes again if still missing.
                self.stats.late_fills += 1;
                return;
            }
            self.sessions.remove(&from);
            out.push_back(OutEvent::Misbehaved(
                from,
                "catch-up data that was not asked for",
            ));
            return;
        };
        let mut fresh: Vec<(Meta, Bytes)> = Vec::with_capacity(fill.envelopes.len());
        for content in fill.envelopes {
            let signed = if verify {
                crate::envelope::decode_verified(&content)
            } else {
                SignedEnvelope::decode(&content)
            };
            let Ok(signed) = signed else {
                self.sessions.remove(&from);
                out.push_back(OutEvent::Misbehaved(
                    from,
                    "catch-up envelope failed verification",
                ));
                return;
            };
            fresh.push((Meta::of(&signed, &content), content));
        }
        // Per-origin order, whatever order the peer chose.
        fresh.sort_by_key(|(m, _)| (m.origin, m.seq));
        let mut new = 0u32;
        for (meta, content) in fresh {
            if now_ms.is_some_and(|ms| self.history.age(meta.time_ms, ms) != Age::Fresh) {
                self.stats.outside_window += 1;
                continue;
            }
            if !self
                .history
                .insert(meta, content.clone(), now_ms.unwrap_or(0))
            {
                self.stats.duplicates += 1;
                continue;
            }
            new += 1;
            self.stats.caught_up += 1;
            out.push_back(OutEvent::Deliver {
                from,
                id: meta.id,
                content,
            });
        }
        if new > 0 {
            out.push_back(OutEvent::Learned(from));
        }
        let Some(session) = self.sessions.get_mut(&from) else {
            return;
        };
        let next_slice = (hi != LAST_ID).then(|| history::next_id(&hi)).flatten();
        let go_on = if fill.more {
            // The same slice again, from where we now stand; a round that
            // brought nothing new would bring nothing next time either.
            new > 0
        } else if let Some(lo) = next_slice {
            session.lo = lo;
            true
        } else {
            false
        };
        if go_on && session.rounds < self.config.max_rounds {
            out.push_back(OutEvent::ScheduleTimer(
                self.config.round_gap,
                Timer::Round(from),
            ));
        } else {
            self.sessions.remove(&from);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::envelope::{Envelope, Kind};
    use crate::SecretKey;
    use rand::SeedableRng;

    const NOW_MS: u64 = 1_700_000_000_000;

    fn envelope(key: &SecretKey, seq: u64) -> Bytes {
        let env = Envelope {
            origin: key.node_id(),
            seq,
            time_ms: NOW_MS,
            kind: Kind::Chat,
            body: Bytes::from(vec![b'x'; 100]),
        };
        SignedEnvelope::sign(key, env).unwrap().encode()
    }

    fn holding(key: &SecretKey, seqs: impl Iterator<Item = u64>) -> AntiEntropy {
        let mut ae = AntiEntropy::new(Config::default());
        for s in seqs {
            let c = envelope(key, s);
            let meta = Meta::decode(&c).unwrap();
            ae.history_mut().insert(meta, c, NOW_MS);
        }
        ae
    }

    /// Runs sessions from `a` to `b` and back until both are quiet;
    /// returns what each delivered.
    fn exchange(a: &mut AntiEntropy, b: &mut AntiEntropy) -> (Vec<Bytes>, Vec<Bytes>) {
        let (ia, ib) = (NodeId::from_bytes([1; 32]), NodeId::from_bytes([2; 32]));
        let now = Instant::now();
        let mut rng = rand::rngs::StdRng::seed_from_u64(1);
        let mut queue: VecDeque<(NodeId, OutEvent)> = VecDeque::new();
        let mut out = VecDeque::new();
        a.on_link_up(ib, now, &mut out);
        queue.extend(out.drain(..).map(|o| (ia, o)));
        b.on_link_up(ia, now, &mut out);
        queue.extend(out.drain(..).map(|o| (ib, o)));
        let mut delivered = (Vec::new(), Vec::new());
        let mut steps = 0;
        while let Some((at, o)) = queue.pop_front() {
            steps += 1;
            assert!(steps < 10_000, "sessions end");
            let (me, other) = if at == ia {
                (&mut *a, &mut *b)
            } else {
                (&mut *b, &mut *a)
            };
            let peer = if at == ia { ib } else { ia };
            match o {
                OutEvent::SendMessage(_, m) => {
                    assert!(m.check());
                    other.on_message(at, m, true, now, Some(NOW_MS), &mut out);
                    queue.extend(out.drain(..).map(|o| (peer, o)));
                }
                OutEvent::ScheduleTimer(_, t @ Timer::Round(_)) => {
                    me.on_timer(
                        t,
                        std::iter::empty(),
                        std::iter::empty(),
                        now,
                        NOW_MS,
                        &mut rng,
                        &mut out,
                    );
                    queue.extend(out.drain(..).map(|o| (at, o)));
                }
                OutEvent::ScheduleTimer(_, Timer::Tick) => {}
                OutEvent::Deliver { content, .. } => {
                    if at == ia {
                        delivered.0.push(content)
                    } else {
                        delivered.1.push(content)
                    }
                }
                OutEvent::Misbehaved(_, why) => panic!("honest peers misbehaved: {why}"),
                OutEvent::Learned(_) => {}
            }
        }
        delivered
    }

    #[test]
    fn both_ends_end_with_everything_in_order_once() {
        let k1 = SecretKey::generate(&mut rand::rngs::StdRng::seed_from_u64(1));
        let mut a = holding(&k1, 1..=300);
        let mut b = holding(&k1, (1..=50).chain(200..=210));
        let (to_a, to_b) = exchange(&mut a, &mut b);
        assert!(to_a.is_empty());
        assert_eq!(to_b.len(), 300 - 61);
        let seqs: Vec<u64> = to_b.iter().map(|c| Meta::decode(c).unwrap().seq).collect();
        let mut sorted = seqs.clone();
        sorted.sort();
        assert_eq!(seqs, sorted, "in sequence order");
        assert_eq!(b.history().len(), 300);
        assert!(b.stats().sessions >= 1);
    }

    #[test]
    fn a_fill_not_asked_for_is_misbehaviour() {
        let mut ae = AntiEntropy::new(Config::default());
        let mut out = VecDeque::new();
        let peer = NodeId::from_bytes([9; 32]);
        let fill = Message::Fill(Fill {
            envelopes: Vec::new(),
            more: true,
        });
        ae.on_message(peer, fill, true, Instant::now(), Some(NOW_MS), &mut out);
        assert!(matches!(out.pop_front(), Some(OutEvent::Misbehaved(p, _)) if p == peer));
    }

    #[test]
    fn a_fill_for_a_session_that_ended_is_late_not_misbehaviour() {
        let mut ae = AntiEntropy::new(Config::default());
        let mut out = VecDeque::new();
        let peer = NodeId::from_bytes([9; 32]);
        let now = Instant::now();
        let fill = || {
            Message::Fill(Fill {
                envelopes: Vec::new(),
                more: false,
            })
        };
        // A session's summary is out when the neighbour goes and comes
        // back: the old round's fill and the new one's both arrive.
        ae.on_link_up(peer, now, &mut out);
        ae.on_neighbor_down(&peer, now);
        ae.on_link_up(peer, now, &mut out);
        out.clear();
        for _ in 0..2 {
            ae.on_message(peer, fill(), true, now, Some(NOW_MS), &mut out);
        }
        assert!(
            out.iter().all(|o| !matches!(o, OutEvent::Misbehaved(..))),
            "{out:?}"
        );
        // One more has no round to answer.
        ae.on_message(peer, fill(), true, now, Some(NOW_MS), &mut out);
        assert!(matches!(out.back(), Some(OutEvent::Misbehaved(p, _)) if *p == peer));
    }

    #[test]
    fn a_forged_envelope_closes_the_link() {
        let k1 = SecretKey::generate(&mut rand::rngs::StdRng::seed_from_u64(1));
        let mut ae = AntiEntropy::new(Config::default());
        let peer = NodeId::from_bytes([9; 32]);
        let mut out = VecDeque::new();
        let now = Instant::now();
        ae.on_link_up(peer, now, &mut out);
        out.clear();
        let mut forged = envelope(&k1, 1).to_vec();
        let n = forged.len();
        forged[n - 70] ^= 1;
        let fill = Message::Fill(Fill {
            envelopes: vec![envelope(&k1, 2), Bytes::from(forged)],
            more: false,
        });
        ae.on_message(peer, fill, true, now, Some(NOW_MS), &mut out);
        assert!(out.iter().all(|o| !matches!(o, OutEvent::Deliver { .. })));
        assert!(matches!(out.back(), Some(OutEvent::Misbehaved(..))));
        assert!(ae.history().is_empty(), "nothing of a bad fill is kept");
    }

    #[test]
    fn endless_fills_end_the_session() {
        let mut ae = AntiEntropy::new(Config::default());
        let peer = NodeId::from_bytes([9; 32]);
        let mut out = VecDeque::new();
        let now = Instant::now();
        let mut rng = rand::rngs::StdRng::seed_from_u64(1);
        ae.on_link_up(peer, now, &mut out);
        let mut rounds = 0;
        let mut seq = 0;
        let k = SecretKey::generate(&mut rand::rngs::StdRng::seed_from_u64(3));
        loop {
            out.clear();
            seq += 1;
            let fill = Message::Fill(Fill {
                envelopes: vec![envelope(&k, seq)],
                more: true,
            });
            ae.on_message(peer, fill, true, now, Some(NOW_MS), &mut out);
            let Some(OutEvent::ScheduleTimer(_, t)) = out
                .iter()
                .find(|o| matches!(o, OutEvent::ScheduleTimer(..)))
                .cloned()
            else {
                break;
            };
            out.clear();
            ae.on_timer(
                t,
                std::iter::empty(),
                std::iter::empty(),
                now,
                NOW_MS,
                &mut rng,
                &mut out,
            );
            rounds += 1;
            assert!(rounds <= 64, "a session is bounded");
        }
        assert_eq!(rounds + 1, Config::default().max_rounds);
    }

    #[test]
    fn summaries_too_fast_are_dropped() {
        let mut ae = AntiEntropy::new(Config::default());
        let peer = NodeId::from_bytes([9; 32]);
        let mut out = VecDeque::new();
        let now = Instant::now();
        let s = || Message::Summary(ae_summary());
        ae.on_message(peer, s(), true, now, Some(NOW_MS), &mut out);
        ae.on_message(peer, s(), true, now, Some(NOW_MS), &mut out);
        assert_eq!(out.len(), 1);
        assert_eq!(ae.stats().summaries_dropped, 1);
    }

    fn ae_summary() -> Summary {
        History::new(history::Config::default()).summary(FIRST_ID)
    }
}
