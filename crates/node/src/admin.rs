//! Admin commands: a network-wide shutdown that only the holder of an admin
//! key can order.
//!
//! A shutdown command is an ordinary signed envelope of kind
//! [`Kind::Shutdown`], signed by the admin key itself (so its origin *is* the
//! admin's public key), whose body names the network it is for. It travels
//! like any broadcast, and every node decides for itself whether to obey:
//! the origin must be one of the admin keys in its config, the network id
//! must be its own, the command must be fresh (not older than
//! [`MAX_AGE`]) and newer than any command it obeyed before. The last
//! point is what refuses a replay: the sequence number of the last command
//! obeyed is kept in the data directory, so a node restarted after a
//! shutdown does not obey the same command again. A command with a bad
//! signature never gets this far: it is dropped before it is delivered or
//! forwarded.
//!
//! An embedder needs only the signing side: [`sign_shutdown`] makes a
//! command with the admin key, wherever that key is kept, and
//! [`Node::publish_admin`](crate::Node::publish_admin) sends it. The checks
//! every node runs on what it receives stay inside the crate.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use bytes::Bytes;
use gossipnet_proto::envelope::{Envelope, Kind, SignedEnvelope};
use gossipnet_proto::{NodeId, SecretKey};
use serde::{Deserialize, Serialize};

use crate::NodeError;

/// A command older than this is refused even by a node that never saw it:
/// long enough for a command to cross a large network, short enough that an
/// old capture is useless.
pub const MAX_AGE: Duration = Duration::from_secs(600);
/// How far ahead of a node's clock a command's time may be (clock skew).
pub const MAX_SKEW: Duration = Duration::from_secs(60);
/// The file in the data directory that remembers the last command obeyed,
/// per admin key.
pub(crate) const SEEN_FILE: &str = "admin-seen";
/// Largest shutdown body: a network id and little else.
const MAX_BODY: usize = 256;

/// The body of a shutdown command.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct ShutdownBody {
    /// The network the command is for.
    pub(crate) network_id: String,
}

/// Why a shutdown command was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// Not a signed envelope, or its signature does not verify.
    #[error("it is not signed, or its signature does not verify")]
    BadSignature,
    /// Signed, but not a shutdown command.
    #[error("it is not a shutdown command")]
    NotShutdown,
    /// Signed by a key that is not an admin key of this network.
    #[error("signed by {0}, which is not an admin key in this node's config")]
    NotAdmin(NodeId),
    /// The body does not decode.
    #[error("its body is malformed")]
    Malformed,
    /// For another network.
    #[error("it is for network '{0}', not this one")]
    OtherNetwork(String),
    /// Too old, or too far in the future.
    #[error("it is stale (signed {age_s} s ago; commands older than {max_s} s are refused)")]
    Stale {
        /// Its age, in seconds (negative: from the future).
        age_s: i64,
        /// The limit.
        max_s: u64,
    },
    /// This node already obeyed this command or a newer one.
    #[error("it is a replay (sequence {seq}; this node already obeyed {last})")]
    Replayed {
        /// The command's sequence number.
        seq: u64,
        /// The last one obeyed.
        last: u64,
    },
}

/// Signs a shutdown command for `network_id` with the admin key, stamped
/// `now_ms` (also its sequence number, so later commands are larger).
pub fn sign_shutdown(admin: &SecretKey, network_id: &str, now_ms: u64) -> Result<Bytes, NodeError> {
    let body = ShutdownBody {
        network_id: network_id.to_string(),
    };
    let body = postcard::to_allocvec(&body)?;
    let envelope = Envelope {
        origin: admin.node_id(),
        seq: now_ms,
        time_ms: now_ms,
        kind: Kind::Shutdown,
        body: Bytes::from(body),
    };
    let signed = SignedEnvelope::sign(admin, envelope)?;
    Ok(signed.encode())
}

/// Checks that `bytes` is a validly signed shutdown command, whoever signed
/// it; returns the envelope. The full check against a node's config is
/// [`AdminState::check`].
pub(crate) fn verify_signed(bytes: &[u8]) -> Result<SignedEnvelope, Refusal> {
    let signed =
        gossipnet_proto::envelope::decode_verified(bytes).map_err(|_| Refusal::BadSignature)?;
    if signed.envelope().kind != Kind::Shutdown {
        return Err(Refusal::NotShutdown);
    }
    Ok(signed)
}

/// What a node remembers of admin commands.
#[derive(Debug, Default)]
pub(crate) struct AdminState {
    path: Option<PathBuf>,
    last: HashMap<NodeId, u64>,
}

impl AdminState {
    /// Loads what the data directory remembers (nothing without one, or if
    /// the file is missing; unreadable lines are skipped).
    pub(crate) fn load(data_dir: Option<&Path>) -> Self {
        let path = data_dir.map(|d| d.join(SEEN_FILE));
        let mut last = HashMap::new();
        if let Some(text) = path.as_ref().and_then(|p| std::fs::read_to_string(p).ok()) {
            for line in text.lines() {
                let mut parts = line.split_whitespace();
                if let (Some(id), Some(seq)) = (parts.next(), parts.next()) {
                    if let (Ok(id), Ok(seq)) = (id.parse::<NodeId>(), seq.parse::<u64>()) {
                        last.insert(id, seq);
                    }
                }
            }
        }
        Self { path, last }
    }

    /// Decides whether to obey a shutdown command.
    pub(crate) fn check(
        &self,
        bytes: &[u8],
        admin_keys: &[NodeId],
        network_id: &str,
        now_ms: u64,
    ) -> Result<(NodeId, u64), Refusal> {
        let signed = verify_signed(bytes)?;
        let env = signed.envelope();
        if !admin_keys.contains(&env.origin) {
            return Err(Refusal::NotAdmin(env.origin));
        }
        if env.body.len() > MAX_BODY {
            return Err(Refusal::Malformed);
        }
        let body: ShutdownBody = postcard::from_bytes(&env.body).map_err(|_| Refusal::Malformed)?;
        if body.network_id != network_id {
            return Err(Refusal::OtherNetwork(body.network_id));
        }
        let age_ms = now_ms as i64 - env.time_ms as i64;
        if age_ms > MAX_AGE.as_millis() as i64 || -age_ms > MAX_SKEW.as_millis() as i64 {
            return Err(Refusal::Stale {
                age_s: age_ms / 1000,
                max_s: MAX_AGE.as_secs(),
            });
        }
        if let Some(&last) = self.last.get(&env.origin) {
            if env.seq <= last {
                return Err(Refusal::Replayed { seq: env.seq, last });
            }
        }
        Ok((env.origin, env.seq))
    }

    /// Remembers that the command `seq` of `admin` was obeyed, in the data
    /// directory too, before the node acts on it.
    pub(crate) fn obeyed(&mut self, admin: NodeId, seq: u64) -> std::io::Result<()> {
        self.last.insert(admin, seq);
        let Some(path) = &self.path else {
            return Ok(());
        };
        let mut text = String::new();
        for (id, seq) in &self.last {
            text.push_str(&format!("{id} {seq}\n"));
        }
        // Written beside and renamed over, so a crash leaves the old file or
        // the new one, never half of one.
        let tmp = path.with_extension("tmp");
        std::fs::write(&tmp, text)?;
        std::fs::rename(&tmp, path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(b: u8) -> SecretKey {
        SecretKey::from_bytes(&[b; 32])
    }

    const NOW: u64 = 1_800_000_000_000;

    #[test]
    fn an_admin_command_is_obeyed_once() {
        let dir = tempfile::tempdir().unwrap();
        let admin = key(1);
        let cmd = sign_shutdown(&admin, "net", NOW).unwrap();
        let mut state = AdminState::load(Some(dir.path()));
        let keys = [admin.node_id()];
        assert_eq!(
            state.check(&cmd, &keys, "net", NOW + 5),
            Ok((admin.node_id(), NOW))
        );
        state.obeyed(admin.node_id(), NOW).unwrap();
        // A restarted node remembers it.
        let state = AdminState::load(Some(dir.path()));
        assert_eq!(
            state.check(&cmd, &keys, "net", NOW + 5),
            Err(Refusal::Replayed {
                seq: NOW,
                last: NOW
            })
        );
        // A newer command is obeyed.
        let newer = sign_shutdown(&admin, "net", NOW + 10).unwrap();
        assert!(state.check(&newer, &keys, "net", NOW + 11).is_ok());
    }

    #[test]
    fn wrong_keys_networks_times_and_signatures_are_refused() {
        let admin = key(1);
        let other = key(2);
        let state = AdminState::default();
        let keys = [admin.node_id()];
        let by_other = sign_shutdown(&other, "net", NOW).unwrap();
        assert_eq!(
            state.check(&by_other, &keys, "net", NOW),
            Err(Refusal::NotAdmin(other.node_id()))
        );
        let elsewhere = sign_shutdown(&admin, "other", NOW).unwrap();
        assert_eq!(
            state.check(&elsewhere, &keys, "net", NOW),
            Err(Refusal::OtherNetwork("other".into()))
        );
        let old = sign_shutdown(&admin, "net", NOW).unwrap();
        assert!(matches!(
            state.check(&old, &keys, "net", NOW + MAX_AGE.as_millis() as u64 + 1),
            Err(Refusal::Stale { .. })
        ));
        assert!(matches!(
            state.check(&old, &keys, "net", NOW - MAX_SKEW.as_millis() as u64 - 1),
            Err(Refusal::Stale { .. })
        ));
        let mut tampered = sign_shutdown(&admin, "net", NOW).unwrap().to_vec();
        let last = tampered.len() - 1;
        tampered[last] ^= 1;
        assert_eq!(
            state.check(&tampered, &keys, "net", NOW),
            Err(Refusal::BadSignature)
        );
        assert_eq!(
            state.check(b"garbage", &keys, "net", NOW),
            Err(Refusal::BadSignature)
        );
    }
}
