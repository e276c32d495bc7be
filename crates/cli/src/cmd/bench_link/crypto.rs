//! One core's limits on the crypto that links and nodes pay for:
//! ChaCha20-Poly1305 sealing, the cipher of every link frame, and ed25519
//! verification, which a node does once per envelope it receives, measured
//! one signature at a time and in batches. Each is a plain loop on the
//! calling thread, run for a given time; nothing here touches a socket.

use std::hint::black_box;
use std::time::{Duration, Instant};

use anyhow::{ensure, Result};
use chacha20poly1305::aead::{AeadInPlace, KeyInit};
use chacha20poly1305::{ChaCha20Poly1305, Key, Nonce};
use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};

/// Bytes of each signed message: the broadcast bench's default body. The
/// hash over it is a small part of a verification; the curve is the rest.
pub(super) const SIGNED_BYTES: usize = 256;

/// How much work was done in how long.
#[derive(Debug, Clone, Copy)]
pub(super) struct Rate {
    /// Bytes sealed, or signatures verified.
    pub count: u64,
    pub elapsed: Duration,
}

impl Rate {
    pub fn per_s(&self) -> f64 {
        self.count as f64 / self.elapsed.as_secs_f64().max(f64::MIN_POSITIVE)
    }
}

/// Runs `step`, which does `per_step` units of work, until `duration` has
/// passed (at least once).
fn run_for(
    duration: Duration,
    per_step: u64,
    mut step: impl FnMut() -> Result<()>,
) -> Result<Rate> {
    let start = Instant::now();
    let mut count = 0;
    loop {
        step()?;
        count += per_step;
        let elapsed = start.elapsed();
        if elapsed >= duration {
            return Ok(Rate { count, elapsed });
        }
    }
}

/// Seals `frame`-byte frames in place with ChaCha20-Poly1305 under one
/// key and a counting nonce, as a link's writer does.
pub(super) fn seal(frame: usize, duration: Duration) -> Result<Rate> {
    let cipher = ChaCha20Poly1305::new(Key::from_slice(&[7; 32]));
    let mut buf = vec![0u8; frame];
    let mut counter = 0u64;
    run_for(duration, frame as u64, || {
        let mut nonce = [0u8; 12];
        nonce[4..].copy_from_slice(&counter.to_le_bytes());
        counter += 1;
        let tag = cipher
            .encrypt_in_place_detached(Nonce::from_slice(&nonce), b"", &mut buf)
            .map_err(|_| anyhow::anyhow!("ChaCha20-Poly1305 refused to seal a frame"))?;
        black_box(tag);
        Ok(())
    })
}

/// `count` messages, each signed by a key of its own.
struct Signed {
    messages: Vec<Vec<u8>>,
    signatures: Vec<Signature>,
    keys: Vec<VerifyingKey>,
}

impl Signed {
    fn new(count: usize) -> Self {
        let mut signed = Self {
            messages: Vec::with_capacity(count),
            signatures: Vec::with_capacity(count),
            keys: Vec::with_capacity(count),
        };
        for i in 0..count {
            let mut seed = [0u8; 32];
            seed[..8].copy_from_slice(&(i as u64).to_le_bytes());
            let key = SigningKey::from_bytes(&seed);
            let message = vec![i as u8; SIGNED_BYTES];
            signed.signatures.push(key.sign(&message));
            signed.keys.push(key.verifying_key());
            signed.messages.push(message);
        }
        signed
    }
}

/// Verifies signatures one at a time, with the strict check a node makes.
pub(super) fn verify(duration: Duration) -> Result<Rate> {
    // A few keys in turn, so no one key's tables stay warm in the cache.
    let signed = Signed::new(16);
    let mut i = 0;
    run_for(duration, 1, || {
        let n = i % signed.keys.len();
        i += 1;
        let ok = signed.keys[n].verify_strict(&signed.messages[n], &signed.signatures[n]);
        ensure!(ok.is_ok(), "ed25519 refused a good signature");
        Ok(())
    })
}

/// Verifies signatures `batch` at a time, each batch in one check.
pub(super) fn verify_batch(batch: usize, duration: Duration) -> Result<Rate> {
    let signed = Signed::new(batch);
    let messages: Vec<&[u8]> = signed.messages.iter().map(Vec::as_slice).collect();
    run_for(duration, batch as u64, || {
        let ok = ed25519_dalek::verify_batch(&messages, &signed.signatures, &signed.keys);
        ensure!(ok.is_ok(), "ed25519 refused a batch of good signatures");
        Ok(())
    })
}
