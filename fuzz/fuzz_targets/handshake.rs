//! The handshake: the identity proof a peer sends inside Noise messages 2
//! and 3, and the framing of handshake messages (a u16 length, 0 for an
//! abort and its status record). The first byte picks the parser.

#![no_main]

use gossipnet_node::fuzzing;
use libfuzzer_sys::fuzz_target;

/// Bytes of a Noise static key, and of a seed for an ed25519 key.
const KEY: usize = 32;

fn key(bytes: &[u8]) -> [u8; KEY] {
    let mut out = [0u8; KEY];
    let n = bytes.len().min(KEY);
    out[..n].copy_from_slice(&bytes[..n]);
    out
}

fuzz_target!(|data: &[u8]| {
    let Some((&which, rest)) = data.split_first() else {
        return;
    };
    match which % 5 {
        0 => {
            // A payload against a static key of any length, or none.
            let (remote, payload) = rest.split_at(rest.len().min(KEY));
            let remote = (which & 0x80 == 0).then_some(remote);
            let _ = fuzzing::proof(payload, remote);
        }
        1 => {
            let (seed, rest) = rest.split_at(rest.len().min(KEY));
            let (noise, flips) = rest.split_at(rest.len().min(KEY));
            fuzzing::tampered_proof(key(seed), key(noise), flips);
        }
        2 => fuzzing::handshake_message(rest),
        3 => fuzzing::handshake_with_proof(rest, true),
        _ => fuzzing::handshake_with_proof(rest, false),
    }
});
