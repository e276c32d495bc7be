//! The signals that end a running node: SIGINT and SIGTERM, and SIGHUP for
//! the terminal chat (its terminal went away).
//!
//! They are watched from before the node announces that it is ready, so a
//! supervisor (or a test) that signals it the moment it reads the readiness
//! line gets a graceful leave, never the default action that kills the
//! process on the spot.

use anyhow::{Context, Result};
use tokio::signal::unix::{signal, Signal, SignalKind};

/// Watchers for the signals that make a node leave.
#[derive(Debug)]
pub(crate) struct Signals {
    interrupt: Signal,
    terminate: Signal,
    hangup: Option<Signal>,
}

impl Signals {
    /// Starts watching SIGINT and SIGTERM, and SIGHUP when `hangup` is set.
    /// From here on these signals no longer kill the process.
    pub(crate) fn watch(hangup: bool) -> Result<Signals> {
        Ok(Signals {
            interrupt: signal(SignalKind::interrupt()).context("cannot watch SIGINT")?,
            terminate: signal(SignalKind::terminate()).context("cannot watch SIGTERM")?,
            hangup: match hangup {
                true => Some(signal(SignalKind::hangup()).context("cannot watch SIGHUP")?),
                false => None,
            },
        })
    }

    /// Waits for the next of the watched signals (cancel-safe).
    pub(crate) async fn recv(&mut self) {
        let hangup = async {
            match self.hangup.as_mut() {
                Some(h) => {
                    h.recv().await;
                }
                None => std::future::pending::<()>().await,
            }
        };
        tokio::select! {
            _ = self.interrupt.recv() => {}
            _ = self.terminate.recv() => {}
            _ = hangup => {}
        }
    }
}
