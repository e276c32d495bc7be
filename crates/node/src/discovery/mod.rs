//! LAN discovery: how a node finds others on its link and on its own
//! machine without being told any address.
//!
//! Two mechanisms, both best effort (a node that finds nobody this way still
//! joins through static peers, seeds and its address book):
//!
//! - **mDNS/DNS-SD** (RFC 6762, RFC 6763) through the `mdns-sd` crate. Each
//!   node registers an instance of [`SERVICE_TYPE`] named after its short id
//!   (and its name, if it has one), on its listen port, with three TXT
//!   entries: `id=` the full node id, `net=` a tag of the network id (the
//!   first [`NET_TAG_HEX_LEN`] hex characters of its BLAKE3 hash, so the
//!   network id itself is not broadcast to the LAN) and `v=` the TXT layout
//!   version. It browses the same type and reports every resolved instance
//!   of its own network but not itself as a [`Discovered`]. Because the
//!   records are standard, stock tools (`avahi-browse -r _gossipnet._tcp`,
//!   python's zeroconf: see `scripts/mdns_browse.py`) list the nodes.
//! - **Localhost probing**: where multicast is unavailable, nodes started with
//!   default settings on one machine listen on one of the
//!   [`DEFAULT_PORT_RANGE`] ports from [`DEFAULT_PORT`]; [`probe_targets`]
//!   lists the other ports of that range on 127.0.0.1 to dial.
//!
//! `mdns-sd` runs its own thread and hands out events on a bounded `flume`
//! channel. [`Mdns`] bridges that to a bounded tokio channel with one more
//! thread, which also re-sends what it knows every [`REPEAT_INTERVAL`]: a
//! full channel drops a report, the next round repeats it, so the caller
//! never has to keep up. Nothing read from the network can make the bridge
//! panic or grow without bound: entries that fail to parse are skipped, the
//! addresses per entry and the entries remembered are capped.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, SocketAddrV6, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use gossipnet_proto::NodeId;
use mdns_sd::{
    IfKind, Receiver, ResolvedService, ScopedIp, ServiceDaemon, ServiceEvent, ServiceInfo,
};
use tokio::sync::mpsc;
use tracing::{debug, info, warn};

use crate::config::{DEFAULT_PORT, DEFAULT_PORT_RANGE};

#[cfg(test)]
mod lan_tests;
#[cfg(test)]
mod tests;

/// The DNS-SD service type of gossipnet nodes (RFC 6763 section 7).
pub const SERVICE_TYPE: &str = "_gossipnet._tcp.local.";

/// The version of the TXT layout (`id`, `net`, `v`). A node ignores
/// instances of another version: it cannot know what their fields mean.
pub const TXT_VERSION: &str = "1";

/// TXT key of the full node id.
pub const TXT_ID: &str = "id";
/// TXT key of the network tag.
pub const TXT_NET: &str = "net";
/// TXT key of the TXT layout version.
pub const TXT_V: &str = "v";

/// Hex characters of `blake3(network_id)` in the `net` TXT entry: 64 bits
/// tell networks apart with no chance of a mix-up on one LAN, without
/// publishing the network id (the Noise prologue still checks it in full).
pub const NET_TAG_HEX_LEN: usize = 16;

/// The mDNS group address (RFC 6762 section 3), used to check that
/// multicast works before starting the daemon.
const MDNS_GROUP_V4: Ipv4Addr = Ipv4Addr::new(224, 0, 0, 251);

/// Most bytes of a node's name put into its instance name. A DNS label holds
/// 63 bytes; the short id, a space and parentheses take 11 of them.
const MAX_NAME_IN_INSTANCE: usize = 48;

/// Most addresses kept from one resolved instance: a host has a few, and a
/// forged record with hundreds must not make us dial hundreds.
const MAX_ADDRS_PER_PEER: usize = 8;

/// Most instances remembered for repeating. A LAN with more gossipnet nodes
/// than this still works: the surplus is reported once, as resolved, and the
/// overlay's peer exchange does the rest.
const MAX_KNOWN: usize = 256;

/// How often the bridge re-sends every instance it knows, so a report
/// dropped on a full channel (or a dial that failed) is retried.
pub const REPEAT_INTERVAL: Duration = Duration::from_secs(30);

/// How long the bridge thread blocks on the daemon before it checks whether
/// it should stop or repeat: short enough that a stop is prompt.
const BRIDGE_POLL: Duration = Duration::from_millis(250);

/// How long [`Mdns::stop`] waits for each of the daemon's answers (to the
/// unregister and to the shutdown) before it gives up waiting.
const STOP_TIMEOUT: Duration = Duration::from_secs(2);

/// How long [`Mdns::stop`] lets the daemon run after the goodbye so its
/// one scheduled repeat (120 ms after the first, in `mdns-sd`) goes out too.
const GOODBYE_LINGER: Duration = Duration::from_millis(200);

/// Errors of LAN discovery. None is fatal to a node: it logs the error and
/// goes on without that mechanism.
#[derive(Debug, thiserror::Error)]
pub enum DiscoveryError {
    /// No requested interface accepts the mDNS multicast group.
    #[error("multicast unavailable: {0}")]
    MulticastUnavailable(String),
    /// Port 0 cannot be advertised: the node must be listening first.
    #[error("cannot advertise port 0")]
    NoPort,
    /// The mDNS daemon could not be started or refused a request.
    #[error("mdns: {0}")]
    Mdns(#[from] mdns_sd::Error),
    /// The thread that forwards discoveries could not be started.
    #[error("cannot start the discovery thread: {0}")]
    Thread(#[source] std::io::Error),
}

/// A node found on the LAN: its id (from its TXT record) and the addresses
/// its mDNS records give, each with its listen port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Discovered {
    /// The node's id.
    pub id: NodeId,
    /// Where it listens (at least one, at most a few).
    pub addrs: Vec<SocketAddr>,
}

/// The network tag published in the `net` TXT entry for `network_id`.
pub fn net_tag(network_id: &str) -> String {
    let hex = blake3::hash(network_id.as_bytes()).to_hex();
    hex.as_str()[..NET_TAG_HEX_LEN].to_string()
}

/// The DNS-SD instance name of a node: its short id, after its name if it
/// has one (`alice (abcd1234)`), so a person browsing the LAN sees both.
pub fn instance_name(id: &NodeId, name: Option<&str>) -> String {
    let short = id.short();
    match name.map(str::trim).filter(|n| !n.is_empty()) {
        None => short,
        Some(name) => {
            let mut end = name.len().min(MAX_NAME_IN_INSTANCE);
            while !name.is_char_boundary(end) {
                end -= 1;
            }
            format!("{} ({short})", &name[..end])
        }
    }
}

/// The localhost addresses where other nodes with default settings may
/// listen: 127.0.0.1 on every port of the default range except `own_port`.
pub fn probe_targets(own_port: u16) -> Vec<SocketAddr> {
    (DEFAULT_PORT..DEFAULT_PORT.saturating_add(DEFAULT_PORT_RANGE))
        .filter(|&p| p != own_port)
        .map(|p| SocketAddr::from((Ipv4Addr::LOCALHOST, p)))
        .collect()
}

/// A running mDNS registration and browse. Dropping it withdraws the
/// registration (a goodbye packet) and stops the daemon without waiting;
/// [`Mdns::stop`] does the same and waits, briefly, until it is done.
pub struct Mdns {
    daemon: ServiceDaemon,
    fullname: String,
    stopping: Arc<AtomicBool>,
    bridge: Option<JoinHandle<()>>,
    stopped: bool,
}

impl std::fmt::Debug for Mdns {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Mdns")
            .field("fullname", &self.fullname)
            .finish_non_exhaustive()
    }
}

impl Mdns {
    /// [`Mdns::start_named`] for a node without a name; only the tests start
    /// one so.
    #[cfg(test)]
    pub fn start(
        id: NodeId,
        network_id: &str,
        port: u16,
        addrs: Vec<IpAddr>,
        tx: mpsc::Sender<Discovered>,
    ) -> Result<Mdns, DiscoveryError> {
        Self::start_named(id, None, network_id, port, addrs, tx)
    }

    /// Registers this node (id, its human `name` in the instance name,
    /// network, listen `port`) and browses for the others of `network_id`,
    /// sending each one found to `tx` (dropped when `tx` is full; it is
    /// repeated later). `addrs` restricts mDNS to the interfaces holding
    /// those addresses and advertises exactly them; empty means every
    /// interface and its addresses.
    ///
    /// An error means LAN discovery is unavailable here; the caller logs it
    /// and goes on.
    pub fn start_named(
        id: NodeId,
        name: Option<&str>,
        network_id: &str,
        port: u16,
        addrs: Vec<IpAddr>,
        tx: mpsc::Sender<Discovered>,
    ) -> Result<Mdns, DiscoveryError> {
        if port == 0 {
            return Err(DiscoveryError::NoPort);
        }
        check_multicast(&addrs)?;
        let net = net_tag(network_id);
        let id_text = id.to_string();
        let properties = [
            (TXT_ID, id_text.as_str()),
            (TXT_NET, net.as_str()),
            (TXT_V, TXT_VERSION),
        ];
        let host = format!("gossipnet-{}.local.", id.short());
        let instance = instance_name(&id, name);
        let service = if addrs.is_empty() {
            ServiceInfo::new(SERVICE_TYPE, &instance, &host, (), port, &properties[..])?
                .enable_addr_auto()
        } else {
            let mut service = ServiceInfo::new(
                SERVICE_TYPE,
                &instance,
                &host,
                &addrs[..],
                port,
                &properties[..],
            )?;
            service.set_interfaces(addrs.iter().copied().map(IfKind::Addr).collect());
            service
        };
        let fullname = service.get_fullname().to_string();

        let daemon = ServiceDaemon::new()?;
        // From here on, a failure must shut the daemon's thread down again.
        let started = (|| {
            if !addrs.is_empty() {
                // Later selections override earlier ones, so: none, then ours.
                daemon.disable_interface(IfKind::All)?;
                daemon.enable_interface(
                    addrs.iter().copied().map(IfKind::Addr).collect::<Vec<_>>(),
                )?;
            }
            let events = daemon.browse(SERVICE_TYPE)?;
            daemon.register(service)?;
            Ok::<_, DiscoveryError>(events)
        })();
        let events = match started {
            Ok(events) => events,
            Err(err) => {
                let _ = daemon.shutdown();
                return Err(err);
            }
        };

        let stopping = Arc::new(AtomicBool::new(false));
        let bridge = Bridge {
            own: id,
            net,
            events,
            tx,
            stopping: stopping.clone(),
            known: BTreeMap::new(),
        };
        let bridge = match std::thread::Builder::new()
            .name("gossipnet-mdns".into())
            .spawn(move || bridge.run())
        {
            Ok(handle) => handle,
            Err(err) => {
                let _ = daemon.unregister(&fullname);
                let _ = daemon.shutdown();
                return Err(DiscoveryError::Thread(err));
            }
        };
        info!(instance = %fullname, port, "mdns: registered and browsing");
        Ok(Mdns {
            daemon,
            fullname,
            stopping,
            bridge: Some(bridge),
            stopped: false,
        })
    }

    /// The full DNS-SD name this node registered
    /// (`<instance>._gossipnet._tcp.local.`).
    #[cfg(test)]
    pub fn fullname(&self) -> &str {
        &self.fullname
    }

    /// Withdraws the registration (goodbye packet), stops the daemon and the
    /// bridge thread, and waits until they are done: at most a few seconds,
    /// so call it from a blocking context (`spawn_blocking`) in async code.
    pub fn stop(mut self) {
        self.stopped = true;
        self.stopping.store(true, Ordering::Relaxed);
        match self.daemon.unregister(&self.fullname) {
            Ok(status) => {
                let _ = status.recv_timeout(STOP_TIMEOUT);
                std::thread::sleep(GOODBYE_LINGER);
            }
            Err(err) => debug!(%err, "mdns: unregister failed"),
        }
        match self.daemon.shutdown() {
            Ok(status) => {
                let _ = status.recv_timeout(STOP_TIMEOUT);
            }
            Err(err) => debug!(%err, "mdns: shutdown failed"),
        }
        if let Some(bridge) = self.bridge.take() {
            // The bridge notices `stopping` within one BRIDGE_POLL.
            let _ = bridge.join();
        }
    }
}

impl Drop for Mdns {
    fn drop(&mut self) {
        if self.stopped {
            return;
        }
        // Without waiting: the daemon runs its commands in order, so the
        // goodbye goes out before it exits, as long as the process lives.
        self.stopping.store(true, Ordering::Relaxed);
        if let Err(err) = self.daemon.unregister(&self.fullname) {
            debug!(%err, "mdns: unregister failed");
        }
        if let Err(err) = self.daemon.shutdown() {
            debug!(%err, "mdns: shutdown failed");
        }
    }
}

/// Checks that the mDNS group can be joined on at least one of `addrs` (or,
/// with none given, on the default multicast interface or loopback).
/// `mdns-sd` opens its sockets on its own thread and only logs failures, so
/// without this a node in a sandbox would browse silently forever.
fn check_multicast(addrs: &[IpAddr]) -> Result<(), DiscoveryError> {
    let socket = UdpSocket::bind((Ipv4Addr::UNSPECIFIED, 0))
        .map_err(|e| DiscoveryError::MulticastUnavailable(format!("udp socket: {e}")))?;
    let candidates: Vec<Ipv4Addr> = if addrs.is_empty() {
        vec![Ipv4Addr::UNSPECIFIED, Ipv4Addr::LOCALHOST]
    } else {
        addrs
            .iter()
            .filter_map(|a| match a {
                IpAddr::V4(v4) => Some(*v4),
                IpAddr::V6(_) => None,
            })
            .collect()
    };
    if candidates.is_empty() {
        // IPv6 only: joining needs an interface index we do not have here;
        // let the daemon try.
        return Ok(());
    }
    let mut last = None;
    for interface in candidates {
        match socket.join_multicast_v4(&MDNS_GROUP_V4, &interface) {
            // The membership ends when `socket` is dropped.
            Ok(()) => return Ok(()),
            Err(err) => last = Some(format!("joining {MDNS_GROUP_V4} on {interface}: {err}")),
        }
    }
    Err(DiscoveryError::MulticastUnavailable(
        last.unwrap_or_default(),
    ))
}

/// The thread between `mdns-sd`'s event channel and the tokio channel.
struct Bridge {
    own: NodeId,
    net: String,
    events: Receiver<ServiceEvent>,
    tx: mpsc::Sender<Discovered>,
    stopping: Arc<AtomicBool>,
    /// Instances resolved and not removed, by full name, for repeating.
    known: BTreeMap<String, Discovered>,
}

impl Bridge {
    fn run(mut self) {
        let mut next_repeat = Instant::now() + REPEAT_INTERVAL;
        loop {
            if self.stopping.load(Ordering::Relaxed) || self.tx.is_closed() {
                break;
            }
            match self.events.recv_timeout(BRIDGE_POLL) {
                Ok(ServiceEvent::ServiceResolved(service)) => self.on_resolved(&service),
                Ok(ServiceEvent::ServiceRemoved(_, fullname)) => {
                    self.known.remove(&fullname);
                }
                Ok(_) => {}
                Err(mdns_sd::RecvTimeoutError::Timeout) => {}
                // The daemon has shut down.
                Err(mdns_sd::RecvTimeoutError::Disconnected) => break,
            }
            let now = Instant::now();
            if now >= next_repeat {
                next_repeat = now + REPEAT_INTERVAL;
                for found in self.known.values() {
                    // Full: the next round repeats it.
                    let _ = self.tx.try_send(found.clone());
                }
            }
        }
        debug!("mdns: bridge stopped");
    }

    fn on_resolved(&mut self, service: &ResolvedService) {
        let Some(found) = accept(service, &self.own, &self.net) else {
            return;
        };
        debug!(peer = %found.id.short(), addrs = ?found.addrs, "mdns: found peer");
        if self.known.len() < MAX_KNOWN || self.known.contains_key(&service.fullname) {
            self.known.insert(service.fullname.clone(), found.clone());
        }
        match self.tx.try_send(found) {
            Ok(()) | Err(mpsc::error::TrySendError::Full(_)) => {}
            Err(mpsc::error::TrySendError::Closed(_)) => {
                self.stopping.store(true, Ordering::Relaxed);
            }
        }
    }
}

/// The [`Discovered`] a resolved instance stands for, if it is a gossipnet
/// node of network `net` other than `own` with at least one usable address.
fn accept(service: &ResolvedService, own: &NodeId, net: &str) -> Option<Discovered> {
    if service.get_property_val_str(TXT_V) != Some(TXT_VERSION)
        || service.get_property_val_str(TXT_NET) != Some(net)
    {
        return None;
    }
    let id: NodeId = match service.get_property_val_str(TXT_ID)?.parse() {
        Ok(id) => id,
        Err(err) => {
            debug!(instance = %service.fullname, %err, "mdns: bad id in TXT record");
            return None;
        }
    };
    if id == *own {
        return None;
    }
    if id.verifying_key().is_err() {
        warn!(instance = %service.fullname, "mdns: TXT id is not a public key");
        return None;
    }
    let port = service.get_port();
    if port == 0 {
        return None;
    }
    let mut addrs: Vec<SocketAddr> = service
        .get_addresses()
        .iter()
        .filter_map(|ip| socket_addr(ip, port))
        .collect();
    // IPv4 first, then a stable order, so repeats compare equal.
    addrs.sort_by_key(|a| (a.is_ipv6(), *a));
    addrs.dedup();
    addrs.truncate(MAX_ADDRS_PER_PEER);
    if addrs.is_empty() {
        return None;
    }
    Some(Discovered { id, addrs })
}

/// A dialable address: link-local IPv6 keeps the interface it was seen on.
fn socket_addr(ip: &ScopedIp, port: u16) -> Option<SocketAddr> {
    match ip {
        ScopedIp::V4(v4) => {
            let addr = *v4.addr();
            (!addr.is_unspecified() && !addr.is_multicast() && !addr.is_broadcast())
                .then(|| SocketAddr::from((addr, port)))
        }
        ScopedIp::V6(v6) => {
            let addr = *v6.addr();
            if addr.is_unspecified() || addr.is_multicast() {
                return None;
            }
            let scope = if addr.is_unicast_link_local() {
                v6.scope_id().index
            } else {
                0
            };
            Some(SocketAddr::V6(SocketAddrV6::new(addr, port, 0, scope)))
        }
        // `ScopedIp` may grow variants; none we know how to dial.
        _ => None,
    }
}
