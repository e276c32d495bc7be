//! Entry points for the fuzz targets in `fuzz/` (feature `fuzzing`): thin
//! wrappers that hand hostile bytes to the crate's private decoders, the
//! transport's preamble, handshake and frames, the admin command check and
//! the control API's request bodies. Not an API: nothing but a fuzz target
//! should call these, and they may change with the decoders they wrap. Each
//! panics when a decoder breaks a promise it makes; returning is a pass.

use gossipnet_proto::envelope::{Envelope, Kind, SignedEnvelope};
use gossipnet_proto::{NodeId, SecretKey};

pub use crate::transport::fuzz::{
    handshake_message, handshake_with_proof, hello, plaintext_stream, preamble, proof, raw_wire,
    status, tampered_proof,
};

use crate::admin::{verify_signed, AdminState, ShutdownBody};
use crate::control::{DmBody, SendBody, ShutdownBody as ShutdownRequest};

/// The network the admin harness's commands are checked against.
const NETWORK_ID: &str = "fuzz";

/// The time the admin harness checks commands at.
const NOW_MS: u64 = 1_800_000_000_000;

/// The admin key of the admin harness.
pub fn admin_key() -> SecretKey {
    SecretKey::from_bytes(&[7; 32])
}

/// A shutdown command as it arrives from a peer or the API, checked as a
/// node whose only admin key is [`admin_key`] checks it.
pub fn shutdown_command(bytes: &[u8]) {
    let state = AdminState::default();
    let admin = admin_key().node_id();
    let checked = state.check(bytes, &[admin], NETWORK_ID, NOW_MS);
    if let Ok((origin, _seq)) = checked {
        assert_eq!(origin, admin, "a command obeyed from a key not ours");
    }
    let _ = verify_signed(bytes);
}

/// A genuine command signed by [`admin_key`] whose body is `body` and whose
/// time is `time_ms`: reaches the body's decoder and the freshness check.
pub fn signed_shutdown_body(body: &[u8], seq: u64, time_ms: u64) {
    let admin = admin_key();
    let envelope = Envelope {
        origin: admin.node_id(),
        seq,
        time_ms,
        kind: Kind::Shutdown,
        body: bytes::Bytes::copy_from_slice(body),
    };
    let Ok(signed) = SignedEnvelope::sign(&admin, envelope) else {
        return;
    };
    let state = AdminState::default();
    let checked = state.check(&signed.encode(), &[admin.node_id()], NETWORK_ID, NOW_MS);
    if checked.is_ok() {
        let body: ShutdownBody = postcard::from_bytes(body).expect("an obeyed body decodes");
        assert_eq!(
            body.network_id, NETWORK_ID,
            "obeyed a command for another network"
        );
    }
}

/// A control API request body, parsed as the server's JSON extractor parses
/// it, then read as its handler reads it.
pub fn api_body(which: u8, bytes: &[u8]) {
    match which % 3 {
        0 => {
            if let Ok(axum::Json(body)) = axum::Json::<SendBody>::from_bytes(bytes) {
                let _ = body.text.trim_end().is_empty();
            }
        }
        1 => {
            if let Ok(axum::Json(body)) = axum::Json::<DmBody>::from_bytes(bytes) {
                if let Ok(id) = body.to.parse::<NodeId>() {
                    assert_eq!(id.to_string().parse::<NodeId>(), Ok(id));
                }
                let _ = body.text.trim().is_empty();
            }
        }
        _ => {
            if let Ok(axum::Json(body)) = axum::Json::<ShutdownRequest>::from_bytes(bytes) {
                if let Ok(command) =
                    data_encoding::HEXLOWER_PERMISSIVE.decode(body.command.trim().as_bytes())
                {
                    let _ = verify_signed(&command);
                }
            }
        }
    }
}
