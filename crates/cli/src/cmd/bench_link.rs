//! `gossipnet bench link`: one link's throughput beside the machine's
//! limits, all measured in the same run.
//!
//! The link is a real one ([`gossipnet_node::linkbench`]): TCP on
//! 127.0.0.1, the Noise handshake, and batches of messages written and
//! read back as a node does, for payloads from 64 bytes to the largest
//! message a link carries. Beside it stand three limits the link cannot
//! pass: plain TCP over the same loopback with the same batches, the links'
//! cipher (ChaCha20-Poly1305) sealing 64 KiB frames on one core, and
//! ed25519 verification on one core, one signature at a time and batched.
//! Every measurement runs for the same time (`--seconds`).
//!
//! As with `gossipnet bench`, the figures are one JSON line on standard
//! output; the phases and a table of the figures go to standard error.

use std::time::Duration;

use anyhow::{Context, Result};
use clap::{Args, Subcommand};
use gossipnet_node::linkbench::{self, Load, Throughput};
use serde::Serialize;

use crate::util::usage_bail;

mod crypto;

/// Payload sizes measured: a control message, a chat line, a large
/// broadcast, and the largest message a link carries, which the ratios use.
const PAYLOADS: [usize; 4] = [64, 1 << 10, 64 << 10, LARGEST];
/// The largest payload, 1 MiB: the link's message limit.
const LARGEST: usize = gossipnet_proto::wire::MAX_MESSAGE_BYTES;
/// Frames the cipher seals: about the size of a link's full frame.
const CIPHER_FRAME: usize = 64 << 10;
/// Signatures per batch verification: past a few dozen the gain per
/// signature flattens, and a busy node receives this many within moments.
const VERIFY_BATCH: usize = 64;
/// Measurements in a run: each payload over a link and over plain TCP,
/// the cipher, and ed25519 one by one and batched.
const MEASUREMENTS: usize = 2 * PAYLOADS.len() + 3;
/// Seconds per measurement by default: long enough for steady figures,
/// short enough that the whole run stays under 20 s.
const DEFAULT_SECONDS: f64 = 1.5;
/// Longest measurement accepted: an hour is past anything useful, and
/// bounds a typo.
const MAX_SECONDS: f64 = 3600.0;

/// What `gossipnet bench` measures besides broadcast.
#[derive(Debug, Subcommand)]
pub enum BenchCommand {
    /// Measure one link's throughput beside the machine's limits, as JSON.
    ///
    /// A real link (TCP on 127.0.0.1, the Noise handshake, the framing)
    /// carries messages of 64 B, 1 KiB, 64 KiB and 1 MiB in batches as a
    /// node writes them. Beside it, in the same run: plain TCP on the same
    /// loopback with the same batches, ChaCha20-Poly1305 sealing on one
    /// core, and ed25519 verification on one core, one by one and batched.
    Link(LinkArgs),
}

#[derive(Debug, Args)]
pub struct LinkArgs {
    /// Seconds per measurement; a run makes 11 (each payload size over a
    /// link and over plain TCP, the cipher, ed25519 single and batched).
    #[arg(long, default_value_t = DEFAULT_SECONDS)]
    seconds: f64,
}

impl LinkArgs {
    fn duration(&self) -> Result<Duration> {
        if !(self.seconds.is_finite() && self.seconds > 0.0 && self.seconds <= MAX_SECONDS) {
            usage_bail!(
                "--seconds must be a number of seconds above 0 and at most {MAX_SECONDS}, not {}",
                self.seconds
            );
        }
        Ok(Duration::from_secs_f64(self.seconds))
    }
}

/// The figures, as printed on standard output.
#[derive(Debug, Serialize)]
struct Figures {
    #[serde(rename = "impl")]
    implementation: &'static str,
    bench: &'static str,
    seconds: f64,
    /// Cores this process may use: the link's two ends want one each.
    cores: usize,
    link: Vec<Row>,
    tcp: Vec<Row>,
    chacha20poly1305: Cipher,
    ed25519: Verify,
    /// The link's MB/s with 1 MiB payloads over the cipher's on one core.
    link_1mib_vs_chacha20poly1305: f64,
    /// The link's MB/s with 1 MiB payloads over plain TCP's.
    link_1mib_vs_tcp: f64,
}

/// One payload size over the link or over plain TCP.
#[derive(Debug, Serialize)]
struct Row {
    payload: usize,
    batch: usize,
    messages: u64,
    bytes: u64,
    elapsed_s: f64,
    messages_per_s: f64,
    mb_per_s: f64,
}

impl From<&Throughput> for Row {
    fn from(t: &Throughput) -> Self {
        Self {
            payload: t.payload,
            batch: t.batch,
            messages: t.messages,
            bytes: t.bytes,
            elapsed_s: round3(t.elapsed.as_secs_f64()),
            messages_per_s: round3(t.messages_per_s()),
            mb_per_s: round3(t.mb_per_s()),
        }
    }
}

#[derive(Debug, Serialize)]
struct Cipher {
    frame: usize,
    bytes: u64,
    elapsed_s: f64,
    mb_per_s: f64,
}

#[derive(Debug, Serialize)]
struct Verify {
    message: usize,
    verify_per_s: f64,
    batch: usize,
    batch_verify_per_s: f64,
}

pub fn run(command: BenchCommand) -> Result<()> {
    match command {
        BenchCommand::Link(args) => link(args),
    }
}

macro_rules! progress {
    ($($arg:tt)*) => { eprintln!("bench link: {}", format_args!($($arg)*)) };
}

fn link(args: LinkArgs) -> Result<()> {
    let duration = args.duration()?;
    progress!(
        "{MEASUREMENTS} measurements of {} s each, about {:.0} s in all",
        args.seconds,
        args.seconds * MEASUREMENTS as f64
    );
    // Sender and receiver each on a worker of their own, as two nodes'
    // tasks would be.
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let (link, tcp) = runtime.block_on(links(duration))?;
    drop(runtime);

    progress!("ChaCha20-Poly1305 sealing {} frames", size(CIPHER_FRAME));
    let sealed = crypto::seal(CIPHER_FRAME, duration)?;
    progress!("ed25519 verifying one signature at a time");
    let single = crypto::verify(duration)?;
    progress!("ed25519 verifying {VERIFY_BATCH} signatures at a time");
    let batched = crypto::verify_batch(VERIFY_BATCH, duration)?;

    let cipher_mb_per_s = sealed.per_s() / 1e6;
    let largest = |rows: &[Throughput]| {
        rows.iter()
            .find(|t| t.payload == LARGEST)
            .map(Throughput::mb_per_s)
            .context("the largest payload was not measured")
    };
    let link_mb_per_s = largest(&link)?;
    let figures = Figures {
        implementation: "gossipnet",
        bench: "link",
        seconds: args.seconds,
        cores: std::thread::available_parallelism().map_or(1, usize::from),
        link: link.iter().map(Row::from).collect(),
        tcp: tcp.iter().map(Row::from).collect(),
        chacha20poly1305: Cipher {
            frame: CIPHER_FRAME,
            bytes: sealed.count,
            elapsed_s: round3(sealed.elapsed.as_secs_f64()),
            mb_per_s: round3(cipher_mb_per_s),
        },
        ed25519: Verify {
            message: crypto::SIGNED_BYTES,
            verify_per_s: round3(single.per_s()),
            batch: VERIFY_BATCH,
            batch_verify_per_s: round3(batched.per_s()),
        },
        link_1mib_vs_chacha20poly1305: round3(link_mb_per_s / cipher_mb_per_s),
        link_1mib_vs_tcp: round3(link_mb_per_s / largest(&tcp)?),
    };
    print_table(&figures);
    println!(
        "{}",
        serde_json::to_string(&figures).context("cannot encode the figures")?
    );
    Ok(())
}

/// Each payload over plain TCP, then over a link, so that the two figures
/// of a size are taken close together in time.
async fn links(duration: Duration) -> Result<(Vec<Throughput>, Vec<Throughput>)> {
    let (mut link, mut tcp) = (Vec::new(), Vec::new());
    for payload in PAYLOADS {
        let load = Load::new(payload, duration);
        let what = format!("{} messages in batches of {}", size(payload), load.batch);
        let t = linkbench::tcp_throughput(load)
            .await
            .with_context(|| format!("plain TCP with {what} failed"))?;
        progress!("plain TCP, {what}: {:.1} MB/s", t.mb_per_s());
        tcp.push(t);
        let t = linkbench::link_throughput(load)
            .await
            .with_context(|| format!("the link with {what} failed"))?;
        progress!(
            "link, {what}: {:.0} messages/s, {:.1} MB/s",
            t.messages_per_s(),
            t.mb_per_s()
        );
        link.push(t);
    }
    Ok((link, tcp))
}

/// The figures for a reader, on standard error.
fn print_table(f: &Figures) {
    eprintln!();
    eprintln!(
        "{:>8} {:>6} {:>14} {:>11} {:>11} {:>9}",
        "payload", "batch", "link msg/s", "link MB/s", "tcp MB/s", "link/tcp"
    );
    for (link, tcp) in f.link.iter().zip(&f.tcp) {
        eprintln!(
            "{:>8} {:>6} {:>14.0} {:>11.1} {:>11.1} {:>9.3}",
            size(link.payload),
            link.batch,
            link.messages_per_s,
            link.mb_per_s,
            tcp.mb_per_s,
            link.mb_per_s / tcp.mb_per_s
        );
    }
    eprintln!();
    eprintln!(
        "ChaCha20-Poly1305, one core, {} frames: {:.1} MB/s",
        size(f.chacha20poly1305.frame),
        f.chacha20poly1305.mb_per_s
    );
    eprintln!(
        "ed25519, one core: {:.0} verifications/s one by one, {:.0}/s in batches of {}",
        f.ed25519.verify_per_s, f.ed25519.batch_verify_per_s, f.ed25519.batch
    );
    eprintln!(
        "a link carries 1 MiB messages at {:.3} of one core's ChaCha20-Poly1305 and {:.3} of plain TCP",
        f.link_1mib_vs_chacha20poly1305, f.link_1mib_vs_tcp
    );
    eprintln!();
}

/// A payload size in the largest binary unit that divides it.
fn size(bytes: usize) -> String {
    match bytes {
        b if b >= 1 << 20 && b % (1 << 20) == 0 => format!("{} MiB", b >> 20),
        b if b >= 1 << 10 && b % (1 << 10) == 0 => format!("{} KiB", b >> 10),
        b => format!("{b} B"),
    }
}

fn round3(x: f64) -> f64 {
    (x * 1e3).round() / 1e3
}
