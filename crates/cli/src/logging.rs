//! Where the node's logs go: a file on request, else standard error; and,
//! while the terminal chat runs, above its input line instead, so a log
//! line never lands in the middle of what is being typed.

use std::io::Write;
use std::path::Path;
use std::sync::Mutex;

use anyhow::{anyhow, Context, Result};
use tokio::sync::mpsc;

/// The printer's queue while a chat runs; `None` sends logs to standard
/// error. Global because the tracing subscriber is set up once, before the
/// chat starts, and outlives it.
static LOG_SINK: Mutex<Option<mpsc::Sender<String>>> = Mutex::new(None);

/// Sends log lines to `sink` (the chat's printer) from now on, or back to
/// standard error with `None`.
pub(crate) fn divert(sink: Option<mpsc::Sender<String>>) {
    *LOG_SINK.lock().unwrap_or_else(|e| e.into_inner()) = sink;
}

/// Sets up tracing: to `log_file` when one is given (appended, text or
/// JSON lines), else to standard error through [`log_writer`].
pub(crate) fn init(log_file: Option<&Path>, json: bool) -> Result<()> {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false);
    let result = match log_file {
        Some(path) => {
            let file = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .with_context(|| format!("cannot open log file {}", path.display()))?;
            let writer = std::sync::Mutex::new(file);
            if json {
                builder.json().with_writer(writer).try_init()
            } else {
                builder.with_ansi(false).with_writer(writer).try_init()
            }
        }
        None => {
            // Terminal chat (cmd::chat): `log_writer` is standard error,
            // except while a chat runs, when log lines go above its input line.
            if json {
                builder.json().with_writer(log_writer).try_init()
            } else {
                use std::io::IsTerminal;
                builder
                    .with_ansi(std::io::stderr().is_terminal())
                    .with_writer(log_writer)
                    .try_init()
            }
        }
    };
    result.map_err(|e| anyhow!("cannot set up logging: {e}"))
}

/// The writer tracing logs through (see the module docs). Each log event is
/// gathered whole and sent when the writer is dropped, so a line is never
/// split around the input line.
pub(crate) fn log_writer() -> LogWriter {
    LogWriter(Vec::new())
}

/// One log event on its way to the chat printer or standard error.
#[derive(Debug)]
pub(crate) struct LogWriter(Vec<u8>);

impl std::io::Write for LogWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Drop for LogWriter {
    fn drop(&mut self) {
        if self.0.is_empty() {
            return;
        }
        let sink = LOG_SINK.lock().unwrap_or_else(|e| e.into_inner());
        match sink.as_ref() {
            Some(tx) => {
                let text = String::from_utf8_lossy(&self.0);
                let _ = tx.try_send(text.trim_end().to_string());
            }
            None => {
                let _ = std::io::stderr().write_all(&self.0);
            }
        }
    }
}
