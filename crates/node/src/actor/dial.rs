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
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use gossipnet_proto::record::SignedRecord;
use gossipnet_proto::seed::{DialResult, SeedInput};
use gossipnet_proto::{Command, InEvent, NodeId};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;
use tracing::{debug, info, warn, Instrument};

use super::discourage::{self, Key, Offence};
use super::driver::Encoded;
use super::links::LinkEvent;
use super::{Actor, Direction, CONNECT_TIMEOUT, MAX_DIAL_QUEUE};
use crate::config::NodeConfig;
use crate::transport::{self, HandshakeError, Link, LinkConfig};

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
    queues: HashMap<NodeId, Vec<Encoded>>,
}

impl Held {
    /// Whether a dial to `peer` is out.
    pub(super) fn dialing(&self, peer: &NodeId) -> bool {
        self.queues.contains_key(peer)
    }

    /// Holds `msg` if a dial to `peer` is out (dropping it beyond
    /// [`MAX_DIAL_QUEUE`]); gives it back if none is.
    pub(super) fn hold(&mut self, peer: NodeId, msg: Encoded) -> Result<(), Encoded> {
        let Some(queue) = self.queues.get_mut(&peer) else {
            return Err(msg);
        };
        if queue.len() < MAX_DIAL_QUEUE {
            queue.push(msg);
        }
        Ok(())
    }

    /// A dial to `peer` starts, with `msg` the first to send.
    pub(super) fn start(&mut self, peer: NodeId, msg: Encoded) {
        self.queues.insert(peer, vec![msg]);
    }

    /// The dial ended: what was held, in order.
    pub(super) fn take(&mut self, peer: &NodeId) -> Vec<Encoded> {
        self.queues.remove(peer).unwrap_or_default()
    }
}

/// Outbound dials in flight at once: a node needs a handful for its views
/// and the seeds; more than this is a burst (a shuffle reply naming many
/// unreachable peers) that should not hold a socket and a task per peer.
const MAX_DIALS: usize = 32;
/// Dials waiting for a slot; beyond it a dial is dropped (the overlay asks
/// again), so a burst costs a bounded number of waiting tasks.
const MAX_DIALS_WAITING: usize = 256;
/// Handshakes in progress from one IP address: one host cannot take more
/// than this share of the handshake slots, so others can still link while it
/// holds connections half-open.
pub(super) const MAX_HANDSHAKES_PER_IP: usize = 4;
/// The same for a loopback address: the processes of one host are its
/// user's own, and a local test network starts dozens of nodes that all dial
/// one seed at once. Half the slots still leaves the other half to others.
pub(super) const MAX_HANDSHAKES_PER_LOOPBACK_IP: usize = 16;
/// Refusals being written at once. Past it, a connection over a limit is
/// closed without a word: under a flood, telling each dialler why would
/// cost a task per connection.
pub(super) const MAX_REFUSALS: usize = 16;
/// Time a refusal waits for the dialler's hello: a real peer sends it at
/// once, and a silent one should not hold a refusal slot for long.
const REFUSAL_TIMEOUT: Duration = Duration::from_secs(2);
/// First pause of the listener after a failed accept: long enough that a
/// listener out of file descriptors does not spin, short enough that
/// nobody notices it once descriptors are free again.
const ACCEPT_BACKOFF_MIN: Duration = Duration::from_millis(50);
/// Longest pause after accepts keep failing.
const ACCEPT_BACKOFF_MAX: Duration = Duration::from_secs(1);
/// At most one warning about failing accepts this often; the rest are
/// counted into the next one.
const ACCEPT_WARN_EVERY: Duration = Duration::from_secs(10);
/// How many of a record's addresses a seed's probe tries: nodes list their
/// likeliest first, and the probe's timeout grows with each.
pub(super) const PROBE_ADDRS: usize = 2;

/// The handshake slot of an accepted connection: one of the node's and one
/// of its address's, both given back when it is dropped.
struct HandshakeSlot {
    _permit: OwnedSemaphorePermit,
    ip: IpAddr,
    per_ip: Arc<Mutex<HashMap<IpAddr, usize>>>,
}

impl Drop for HandshakeSlot {
    fn drop(&mut self) {
        let mut per_ip = self.per_ip.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(n) = per_ip.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                per_ip.remove(&self.ip);
            }
        }
    }
}

/// The listener's pause after failed accepts, and its rate-limited
/// warning.
#[derive(Debug, Default)]
pub(super) struct AcceptBackoff {
    delay: Option<Duration>,
    until: Option<Instant>,
    last_warn: Option<Instant>,
    suppressed: u64,
}

impl AcceptBackoff {
    /// An accept failed at `now`: the listener pauses, for twice as long as
    /// the last time, and the warning to log, if one is due.
    pub(super) fn failed(&mut self, err: &io::Error, now: Instant) -> Option<String> {
        let delay = self
            .delay
            .map_or(ACCEPT_BACKOFF_MIN, |d| (d * 2).min(ACCEPT_BACKOFF_MAX));
        self.delay = Some(delay);
        self.until = Some(now + delay);
        if self
            .last_warn
            .is_some_and(|at| now.duration_since(at) < ACCEPT_WARN_EVERY)
        {
            self.suppressed += 1;
            return None;
        }
        self.last_warn = Some(now);
        let more = std::mem::take(&mut self.suppressed);
        let more = if more > 0 {
            format!(" ({more} more failures since the last warning)")
        } else {
            String::new()
        };
        // EMFILE and ENFILE: the process or the system is out of files.
        let hint = if matches!(err.raw_os_error(), Some(23 | 24)) {
            "; the node is out of file descriptors: raise the open-file limit (ulimit -n)"
        } else {
            ""
        };
        Some(format!(
            "accept failed: {err}{hint}; pausing the listener for {} ms{more}",
            delay.as_millis()
        ))
    }

    /// An accept succeeded: the next failure pauses briefly again.
    pub(super) fn accepted(&mut self) {
        self.delay = None;
    }

    /// Until when the listener is paused, if it is.
    pub(super) fn paused_until(&self) -> Option<Instant> {
        self.until
    }

    /// The pause is over.
    pub(super) fn resume(&mut self) {
        self.until = None;
    }
}

/// Opens connections; see the module docs.
pub(super) struct Dialer {
    config: Arc<LinkConfig>,
    /// As `config`, with the short wait of a refusal.
    refuse_config: Arc<LinkConfig>,
    events: mpsc::Sender<LinkEvent>,
    handshakes: Arc<Semaphore>,
    /// Handshakes in progress per address, for [`MAX_HANDSHAKES_PER_IP`].
    per_ip: Arc<Mutex<HashMap<IpAddr, usize>>>,
    refusals: Arc<Semaphore>,
    dials: Arc<Semaphore>,
    /// Dials waiting for one of `dials`; only the actor adds to it.
    dials_waiting: Arc<AtomicUsize>,
    pub(super) scores: discourage::Shared,
    pub(super) backoff: AcceptBackoff,
    /// Where each known peer listens, from records and discovery.
    pub(super) addrs: HashMap<NodeId, Vec<SocketAddr>>,
    /// The names in the records of known peers, for the status.
    names: HashMap<NodeId, String>,
    pub(super) held: Held,
}

impl Dialer {
    pub(super) fn new(config: &NodeConfig, events: mpsc::Sender<LinkEvent>) -> Self {
        let link_config = config.link_config();
        let refuse_config = LinkConfig {
            handshake_timeout: REFUSAL_TIMEOUT.min(link_config.handshake_timeout),
            ..link_config.clone()
        };
        Self {
            config: Arc::new(link_config),
            refuse_config: Arc::new(refuse_config),
            events,
            handshakes: Arc::new(Semaphore::new(config.limits.max_handshakes)),
            per_ip: Arc::default(),
            refusals: Arc::new(Semaphore::new(MAX_REFUSALS)),
            dials: Arc::new(Semaphore::new(MAX_DIALS)),
            dials_waiting: Arc::default(),
            scores: discourage::Shared::default(),
            backoff: AcceptBackoff::default(),
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

    /// Forgets the name of a peer whose addresses were forgotten, so the
    /// names are bounded as the addresses are.
    pub(super) fn forget_name(&mut self, peer: &NodeId) {
        self.names.remove(peer);
    }

    /// The name in `peer`'s record, if it has one.
    pub(super) fn name_of(&self, peer: &NodeId) -> Option<&str> {
        self.names.get(peer).map(String::as_str)
    }

    /// The addresses `peer` listens at, if any are known.
    pub(super) fn addrs_of(&self, peer: &NodeId) -> Option<&Vec<SocketAddr>> {
        self.addrs.get(peer).filter(|a| !a.is_empty())
    }

    /// Whether a dial now would run or wait, rather than be dropped.
    fn dial_room(&self) -> bool {
        self.dials.available_permits() > 0
            || self.dials_waiting.load(Ordering::Relaxed) < MAX_DIALS_WAITING
    }

    /// Dials `peer` at its known addresses with `msg` the first message to
    /// send once linked. False, with nothing dialled, if no address is
    /// known or too many dials are out.
    pub(super) fn dial_peer(&mut self, peer: NodeId, msg: Encoded) -> bool {
        let Some(addrs) = self.addrs_of(&peer).cloned() else {
            return false;
        };
        if !self.dial_room() {
            debug!(peer = %peer.short(), "too many dials out; not dialling");
            return false;
        }
        self.held.start(peer, msg);
        self.dial(addrs, Some(peer), Purpose::Peer);
        true
    }

    /// Tries `addrs` in turn until one links, in a task of its own, once
    /// one of [`MAX_DIALS`] slots is free. A seed's probes skip the queue:
    /// the registry caps them, and a probe that waited could outlive its
    /// timeout. A dial with no room even to wait is reported failed.
    pub(super) fn dial(&self, addrs: Vec<SocketAddr>, expected: Option<NodeId>, purpose: Purpose) {
        let permit = match (self.dials.clone().try_acquire_owned(), purpose) {
            (Ok(permit), _) => Some(permit),
            (Err(_), Purpose::Probe(_)) => None,
            (Err(_), _) if self.dials_waiting.load(Ordering::Relaxed) < MAX_DIALS_WAITING => {
                self.dials_waiting.fetch_add(1, Ordering::Relaxed);
                None
            }
            (Err(_), _) => {
                debug!(?purpose, "too many dials out; dropping this one");
                let failed = LinkEvent::Failed {
                    addr: addrs.first().copied(),
                    purpose,
                    expected,
                    error: "too many dials out".into(),
                };
                if self.events.try_send(failed).is_err() {
                    debug!("link events full; a dropped dial goes unreported");
                }
                return;
            }
        };
        let waits = permit.is_none() && !matches!(purpose, Purpose::Probe(_));
        let slots = self.dials.clone();
        let waiting = self.dials_waiting.clone();
        let cfg = self.config.clone();
        let tx = self.events.clone();
        tokio::spawn(
            async move {
                let _permit = match permit {
                    Some(permit) => Some(permit),
                    None if waits => {
                        let permit = slots.acquire_owned().await.ok();
                        waiting.fetch_sub(1, Ordering::Relaxed);
                        permit
                    }
                    None => None,
                };
                let event = dial_addrs(addrs, &cfg, expected, purpose).await;
                let _ = tx.send(event).await;
            }
            .in_current_span(),
        );
    }

    /// Runs the handshake of an accepted connection in a task, or tells
    /// the peer why not: `refusal`, a discouraged address, or too many
    /// handshakes (in all, or from its address). Past [`MAX_REFUSALS`]
    /// the connection is closed unanswered.
    pub(super) fn accept(
        &self,
        stream: TcpStream,
        addr: SocketAddr,
        refusal: Option<&'static str>,
    ) {
        let ip = addr.ip();
        let refusal = refusal.or_else(|| {
            let now = Instant::now();
            let scores = self.scores.lock();
            scores
                .discouraged(Key::Ip(ip), now)
                .then_some(discourage::REASON)
        });
        let slot = match refusal {
            Some(reason) => Err(reason),
            None => self.handshake_slot(ip),
        };
        let slot = match slot {
            Ok(slot) => slot,
            Err(reason) => return self.refuse(stream, addr, reason),
        };
        let cfg = self.config.clone();
        let tx = self.events.clone();
        let scores = self.scores.clone();
        tokio::spawn(
            async move {
                let gate = {
                    let scores = scores.clone();
                    move |id: &NodeId| {
                        let scores = scores.lock();
                        scores
                            .discouraged(Key::Id(*id), Instant::now())
                            .then_some(discourage::REASON)
                    }
                };
                let result = transport::accept_gated(stream, &cfg, &gate).await;
                // The slot is free before the actor hears, so a peer that
                // redials at once is not refused by its own last attempt.
                drop(slot);
                let event = match result {
                    Ok(link) => LinkEvent::Established {
                        link,
                        direction: Direction::Inbound,
                        addr,
                        purpose: Purpose::Inbound,
                    },
                    Err(e) => {
                        let offence = match e {
                            HandshakeError::BadIdentity => Some(Offence::BadProof),
                            HandshakeError::Closed | HandshakeError::Timeout => {
                                Some(Offence::Abandoned)
                            }
                            _ => None,
                        };
                        if let Some(offence) = offence {
                            scores.lock().add(Key::Ip(ip), offence, Instant::now());
                        }
                        warn!("link from {addr} refused: {e}");
                        LinkEvent::Failed {
                            addr: Some(addr),
                            purpose: Purpose::Inbound,
                            expected: None,
                            error: e.to_string(),
                        }
                    }
                };
                let _ = tx.send(event).await;
            }
            .in_current_span(),
        );
    }

    /// A handshake slot for a connection from `ip`, or why there is none.
    fn handshake_slot(&self, ip: IpAddr) -> Result<HandshakeSlot, &'static str> {
        let mut per_ip = self.per_ip.lock().unwrap_or_else(|e| e.into_inner());
        let n = per_ip.get(&ip).copied().unwrap_or(0);
        let cap = if ip.is_loopback() {
            MAX_HANDSHAKES_PER_LOOPBACK_IP
        } else {
            MAX_HANDSHAKES_PER_IP
        };
        if n >= cap {
            return Err("busy: too many handshakes from your address");
        }
        let permit = self
            .handshakes
            .clone()
            .try_acquire_owned()
            .map_err(|_| "busy: too many handshakes")?;
        *per_ip.entry(ip).or_default() += 1;
        Ok(HandshakeSlot {
            _permit: permit,
            ip,
            per_ip: self.per_ip.clone(),
        })
    }

    /// Tells the dialler at `addr` why it is refused, in a task of its own
    /// while fewer than [`MAX_REFUSALS`] are; else hangs up on it.
    fn refuse(&self, stream: TcpStream, addr: SocketAddr, reason: &'static str) {
        let Ok(permit) = self.refusals.clone().try_acquire_owned() else {
            debug!("closing connection from {addr} unanswered ({reason}): too many refusals out");
            return;
        };
        debug!("refusing link from {addr}: {reason}");
        let cfg = self.refuse_config.clone();
        tokio::spawn(
            async move {
                let _ = transport::refuse(stream, &cfg, reason).await;
                drop(permit);
            }
            .in_current_span(),
        );
    }
}

/// Tries `addrs` in turn until one links; what the actor is to hear.
async fn dial_addrs(
    addrs: Vec<SocketAddr>,
    cfg: &LinkConfig,
    expected: Option<NodeId>,
    purpose: Purpose,
) -> LinkEvent {
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
        match transport::connect(stream, cfg, expected).await {
            Ok(link) => {
                return LinkEvent::Established {
                    link,
                    direction: Direction::Outbound,
                    addr,
                    purpose,
                }
            }
            Err(e) => {
                // Probing our own machine's ports meets other programs;
                // that is no news.
                if matches!(purpose, Purpose::Local) {
                    debug!("link to {addr} refused: {e}");
                } else {
                    warn!("link to {addr} refused: {e}");
                }
                last_error = e.to_string();
            }
        }
    }
    LinkEvent::Failed {
        addr: last_addr,
        purpose,
        expected,
        error: last_error,
    }
}

impl Actor {
    /// The listener took a connection: refused if we are leaving or over an
    /// inbound cap, else admitted to a handshake (see [`Dialer::accept`]).
    pub(super) fn on_accept(&mut self, stream: TcpStream, addr: SocketAddr) {
        self.dialer.backoff.accepted();
        let refusal = if self.leaving {
            Some("node is leaving")
        } else {
            self.links.inbound_refusal(addr.ip())
        };
        self.dialer.accept(stream, addr, refusal);
    }

    /// The listener failed (out of file descriptors, say): it pauses
    /// rather than spin, and says so now and then.
    pub(super) fn on_accept_failed(&mut self, err: &io::Error) {
        if let Some(line) = self.dialer.backoff.failed(err, Instant::now()) {
            warn!("{line}");
        }
    }

    /// Why a link just established is not to be kept, if it is not: its
    /// peer is discouraged, or, inbound, the caps filled while it shook
    /// hands (they were checked at accept, but many handshakes may finish
    /// at once).
    fn establish_refusal(
        &self,
        peer: &NodeId,
        direction: Direction,
        addr: SocketAddr,
    ) -> Option<&'static str> {
        let now = Instant::now();
        if self.dialer.scores.lock().discouraged(Key::Id(*peer), now) {
            return Some("discouraged");
        }
        // A link replacing an inbound one from the same peer takes its
        // place in the count.
        let replaces_inbound = self
            .links
            .info(peer)
            .is_some_and(|l| l.direction == Direction::Inbound && l.addr.ip() == addr.ip());
        if direction == Direction::Inbound && !replaces_inbound {
            return self.links.inbound_refusal(addr.ip());
        }
        None
    }

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
        if let Some(reason) = self.establish_refusal(&peer, direction, addr) {
            warn!(peer = %peer.short(), %addr, "dropping new link: {reason}");
            drop(link);
            if direction == Direction::Outbound {
                self.on_failed(Some(addr), purpose, Some(peer), reason.into())
                    .await;
            }
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
        for msg in self.dialer.held.take(&peer) {
            self.send_bytes(peer, msg).await;
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
#[path = "dial_tests.rs"]
mod node_tests;

#[cfg(test)]
mod tests {
    use gossipnet_proto::SecretKey;
    use rand::SeedableRng;

    use super::*;

    fn id(seed: u64) -> NodeId {
        SecretKey::generate(&mut rand::rngs::StdRng::seed_from_u64(seed)).node_id()
    }

    fn ping(nonce: u64) -> Encoded {
        Encoded::new(&gossipnet_proto::wire::Message::Ping(nonce))
    }

    #[test]
    fn nothing_is_held_for_a_peer_no_dial_is_out_to() {
        let mut held = Held::default();
        let peer = id(1);
        assert!(!held.dialing(&peer));
        assert_eq!(held.hold(peer, ping(0)), Err(ping(0)));
        assert!(held.take(&peer).is_empty());
    }

    #[test]
    fn held_messages_come_out_in_order_and_are_bounded() {
        let mut held = Held::default();
        let peer = id(1);
        held.start(peer, ping(0));
        assert!(held.dialing(&peer));
        for i in 1..MAX_DIAL_QUEUE + 10 {
            assert_eq!(held.hold(peer, ping(i as u64)), Ok(()));
        }
        let out = held.take(&peer);
        assert_eq!(out.len(), MAX_DIAL_QUEUE);
        assert_eq!(out[0], ping(0));
        assert_eq!(out[1], ping(1));
        assert!(!held.dialing(&peer));
    }

    // The listener's pause is a unit test of its rule: a real EMFILE needs
    // the process's file limit lowered, which a test cannot do to itself
    // without starving every other test in the process.
    #[test]
    fn failed_accepts_pause_the_listener_longer_each_time_and_warn_rarely() {
        let mut b = AcceptBackoff::default();
        let now = Instant::now();
        let emfile = io::Error::from_raw_os_error(24);
        let line = b.failed(&emfile, now).expect("the first failure warns");
        assert!(line.contains("raise the open-file limit"), "{line}");
        assert_eq!(b.paused_until(), Some(now + ACCEPT_BACKOFF_MIN));
        b.resume();
        assert_eq!(b.paused_until(), None);
        let mut last = ACCEPT_BACKOFF_MIN;
        for i in 1..20u32 {
            let at = now + Duration::from_millis(u64::from(i));
            assert!(b.failed(&emfile, at).is_none(), "warned again at once");
            let pause = b.paused_until().unwrap() - at;
            assert!(pause >= last && pause <= ACCEPT_BACKOFF_MAX);
            last = pause;
            b.resume();
        }
        assert_eq!(last, ACCEPT_BACKOFF_MAX);
        let later = now + ACCEPT_WARN_EVERY;
        let line = b.failed(&emfile, later).expect("warns again after a while");
        assert!(line.contains("19 more failures"), "{line}");
        // A success starts the pauses short again.
        b.accepted();
        b.failed(&io::Error::other("x"), later);
        assert_eq!(b.paused_until(), Some(later + ACCEPT_BACKOFF_MIN));
    }
}
