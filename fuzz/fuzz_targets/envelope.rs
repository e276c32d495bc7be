//! What travels inside a broadcast or a direct message: signed envelopes,
//! signed node records, chat bodies, sealed direct bodies (opened with a
//! fixed key) and admin shutdown commands. The first byte picks the parser;
//! some modes sign or seal the fuzzed bytes first, so the parsers behind a
//! signature check are reached too.

#![no_main]

use bytes::Bytes;
use gossipnet_node::chat::{ChatBody, MAX_NAME_BYTES, MAX_TEXT_BYTES};
use gossipnet_node::fuzzing;
use gossipnet_proto::direct::Sealed;
use gossipnet_proto::envelope::{decode_verified, Envelope, Kind, SignedEnvelope};
use gossipnet_proto::record::SignedRecord;
use gossipnet_proto::SecretKey;
use libfuzzer_sys::fuzz_target;
use rand_chacha::rand_core::SeedableRng;

/// The key of the node that receives, opens and signs in these modes.
fn key() -> SecretKey {
    SecretKey::from_bytes(&[3; 32])
}

fn u64_at(bytes: &[u8], at: usize) -> u64 {
    let mut out = [0u8; 8];
    if let Some(src) = bytes.get(at..) {
        let n = src.len().min(8);
        out[..n].copy_from_slice(&src[..n]);
    }
    u64::from_le_bytes(out)
}

fn check_chat(body: &ChatBody) {
    assert!(
        body.text.len() <= MAX_TEXT_BYTES * 3,
        "chat text over its bound"
    );
    let name = body.name.as_deref().unwrap_or("");
    assert!(name.len() <= MAX_NAME_BYTES * 3, "chat name over its bound");
    for s in [body.text.as_str(), name] {
        assert!(
            !s.chars().any(|c| c.is_control() && c != '\t'),
            "control character in a chat body: {s:?}"
        );
    }
}

/// The direct message path of a node: verify, open, read the chat body.
fn receive_direct(envelope: &[u8]) {
    let Ok(signed) = decode_verified(envelope) else {
        return;
    };
    if signed.envelope().kind != Kind::Direct {
        return;
    }
    let Ok(sealed) = Sealed::decode(&signed.envelope().body) else {
        return;
    };
    if let Some(body) = sealed
        .open(&key())
        .ok()
        .and_then(|plain| ChatBody::decode(&plain))
    {
        check_chat(&body);
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&which, rest)) = data.split_first() else {
        return;
    };
    match which % 9 {
        0 => {
            if let Ok(signed) = SignedEnvelope::decode(rest) {
                assert_eq!(
                    &signed.encode()[..],
                    rest,
                    "a non-canonical envelope decoded"
                );
                let _ = signed.verify();
                let _ = signed.id();
            }
        }
        1 => {
            let _ = decode_verified(rest);
            receive_direct(rest);
        }
        2 => {
            if let Ok(record) = SignedRecord::decode(rest) {
                record
                    .record()
                    .check()
                    .expect("a decoded record is in bounds");
                let _ = record.verify();
                let again = SignedRecord::decode(&record.encode()).expect("re-encoded record");
                assert_eq!(again, record, "a record changed in a round trip");
            }
        }
        3 => {
            if let Some(body) = ChatBody::decode(rest) {
                check_chat(&body);
            }
        }
        4 => {
            if let Ok(sealed) = Sealed::decode(rest) {
                let _ = sealed.open(&key());
                let again = Sealed::decode(&sealed.encode()).expect("re-encoded sealed body");
                assert_eq!(again, sealed);
            }
        }
        5 => {
            // A genuine sealed body of fuzzed plaintext opens to it.
            let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(u64_at(rest, 0));
            if let Ok(sealed) = Sealed::seal(key().node_id(), rest, &mut rng) {
                let plain = Sealed::decode(&sealed.encode())
                    .expect("our sealed body decodes")
                    .open(&key())
                    .expect("our sealed body opens");
                assert_eq!(plain, rest);
                if let Some(body) = ChatBody::decode(&plain) {
                    check_chat(&body);
                }
            }
        }
        6 => {
            // A genuine envelope of any kind and body: verifies and decodes to
            // itself; through the direct path when it is a direct message.
            let kind = match which / 9 % 4 {
                0 => Kind::Chat,
                1 => Kind::Direct,
                2 => Kind::Shutdown,
                _ => Kind::Custom(u64_at(rest, 16) as u16),
            };
            let envelope = Envelope {
                origin: key().node_id(),
                seq: u64_at(rest, 0),
                time_ms: u64_at(rest, 8),
                kind,
                body: Bytes::copy_from_slice(rest.get(16..).unwrap_or_default()),
            };
            if let Ok(signed) = SignedEnvelope::sign(&key(), envelope) {
                let bytes = signed.encode();
                assert_eq!(decode_verified(&bytes), Ok(signed));
                receive_direct(&bytes);
            }
        }
        7 => fuzzing::shutdown_command(rest),
        _ => fuzzing::signed_shutdown_body(
            rest.get(16..).unwrap_or_default(),
            u64_at(rest, 0),
            u64_at(rest, 8),
        ),
    }
});
