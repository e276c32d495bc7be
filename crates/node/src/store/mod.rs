//! Persistence: the node's data directory, its identity key, and a SQLite
//! database holding the address book and the message history.
//!
//! A data dir ([`DataDir`], one per node name, mode 0700) holds two files.
//! `identity.key` is the node's ed25519 secret as 64 hex characters, mode
//! 0600, written once and published atomically, so a crash never leaves half
//! a key. `gossipnet.db` is the [`AddressBook`]: the signed records of peers
//! met before, with when each was last seen and how often dialling it failed
//! since, the plain addresses given on the command line or found on the LAN,
//! and the message history (every broadcast envelope of the retention
//! window, see [`Retention`]), for `history` and for catch-up after a
//! restart. Every table is bounded, so a node that runs for
//! years, or that strangers feed records, keeps a database of a known size.
//!
//! The database is synchronous and so must stay off the async runtime:
//! [`Store`] runs it on one dedicated thread, fed by a bounded channel, and
//! [`StoreHandle`] is how the node talks to it. Writes are advisory (a node
//! that forgets a peer's last-seen time loses nothing the overlay cannot
//! relearn), so they are fire-and-forget and are dropped, and counted, when
//! the thread falls behind; queries wait for their answer. The channel is
//! FIFO, so a query observes every write sent before it from the same task.
//!
//! The parts, each re-exported here: `datadir` (the directory, the identity
//! key, and [`write_private`] for files only their owner may read), `book`
//! (the [`AddressBook`] over the database), `history` (the message history
//! in the same database) and `schema` (its tables and migrations). This
//! module holds the bounds, the errors, and the store thread with its
//! handle.

use std::io;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use bytes::Bytes;
use gossipnet_proto::record::{RecordError, SignedRecord};
use gossipnet_proto::{MessageId, NodeId};
use tokio::sync::{mpsc, oneshot};

use crate::time::unix_ms;

mod book;
mod datadir;
mod history;
mod schema;
#[cfg(test)]
mod tests;

pub use book::{AddressBook, Candidate};
pub use datadir::{data_root, default_data_dir, write_private, DataDir};
pub use history::{HistoryFilter, Retention};

/// File name of the identity key inside the data dir.
pub const IDENTITY_FILE: &str = "identity.key";

/// File name of the SQLite database inside the data dir.
pub const DATABASE_FILE: &str = "gossipnet.db";

/// Most peers (signed records) the address book keeps: at most 512 bytes a
/// record, about 5 MB, and far more than a node needs to find its way back
/// into a network of any size.
pub const MAX_PEERS: usize = 10_000;

/// Most plain addresses kept: they come from the command line, config files
/// and LAN discovery, which name a handful each; the cap only stops a noisy
/// LAN from growing the table.
pub const MAX_ADDRESSES: usize = 1_000;

/// Most broadcast envelopes kept for `history` and catch-up, unless the
/// node's [`Retention`] says otherwise: the protocol's default, 100,000
/// (chat lines are a few hundred bytes; the byte bound caps larger ones).
pub const MAX_HISTORY: usize = 100_000;

/// Failures in a row (with no success between) after which a peer is only
/// offered as a candidate when nothing else is left: several backoff rounds
/// say it is gone, but an old peer is still better than no peer.
pub const MAX_FAILURES: u32 = 5;

/// Capacity of the channel into the store thread: a burst of gossip (a
/// shuffle brings dozens of records, a busy chat hundreds of messages) fits
/// while the disk catches up; past it, advisory writes are dropped rather
/// than block the node.
pub const STORE_CHANNEL_CAPACITY: usize = 1024;

/// A bounded table is pruned once every this many new rows, so keeping the
/// bound costs one indexed delete per batch rather than one per insert; a
/// table may thus exceed its bound by fewer than this many rows.
pub const PRUNE_EVERY: u32 = 256;

/// Errors from the data dir, the identity key and the database.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The data directory could not be created or is not a directory.
    #[error("cannot use data directory {}: {source}; check its permissions or pick another with --data-dir", .path.display())]
    DataDir {
        /// The directory.
        path: PathBuf,
        /// What the OS said.
        source: io::Error,
    },
    /// Another process runs a node on the data directory.
    #[error("data directory {} is in use by another gossipnet process{}; stop it, or give this one another --data-dir (or --name)", .path.display(), .pid.map(|p| format!(" (pid {p})")).unwrap_or_default())]
    InUse {
        /// The directory.
        path: PathBuf,
        /// The process holding it, as its lock file says.
        pid: Option<u32>,
    },
    /// The identity key file could not be read or written.
    #[error("cannot access identity key file {}: {source}; check the data dir's permissions", .path.display())]
    IdentityIo {
        /// The key file.
        path: PathBuf,
        /// What the OS said.
        source: io::Error,
    },
    /// The identity key file does not hold a key.
    #[error("identity key file {} is malformed: {reason}; move it away to create a new identity", .path.display())]
    MalformedIdentity {
        /// The key file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// The database could not be opened or brought to the current schema.
    #[error("cannot open database {}: {source}; if it is damaged, move it away (it is left as it is) and start again with a new one: the address book is rebuilt from the network, the message history starts empty", .path.display())]
    OpenDatabase {
        /// The database file.
        path: PathBuf,
        /// What SQLite said.
        source: rusqlite::Error,
    },
    /// The database was written by a newer gossipnet.
    #[error("database {} has schema version {found}, newer than this build's {supported}; upgrade gossipnet or use another --data-dir", .path.display())]
    SchemaTooNew {
        /// The database file.
        path: PathBuf,
        /// The version found in the file.
        found: i64,
        /// The newest version this build knows.
        supported: usize,
    },
    /// A database statement failed.
    #[error("database error: {0}; if it persists, stop the node and move gossipnet.db out of the data dir")]
    Database(#[from] rusqlite::Error),
    /// A record was refused: bad bounds or a signature that does not verify.
    #[error("record refused: {0}")]
    InvalidRecord(#[from] RecordError),
    /// The store thread could not be started.
    #[error("cannot start the store thread: {0}; the system is out of threads or memory")]
    Spawn(io::Error),
    /// The store thread has stopped, so nothing more can be asked of it.
    #[error("the store is closed; the node is shutting down")]
    Closed,
}

/// What the handles ask of the store thread.
#[derive(Debug)]
enum Command {
    Record(SignedRecord, u64),
    Seen(NodeId, u64),
    Failure(NodeId, u64),
    Address(SocketAddr, Option<NodeId>, u64),
    Message {
        id: MessageId,
        origin: NodeId,
        time_ms: u64,
        envelope: Bytes,
    },
    Candidates(usize, oneshot::Sender<Result<Vec<Candidate>, StoreError>>),
    History(
        HistoryFilter,
        usize,
        oneshot::Sender<Result<Vec<Vec<u8>>, StoreError>>,
    ),
    Close(oneshot::Sender<()>),
}

/// The store thread: one [`AddressBook`] and the receiving end of the
/// channel its [`StoreHandle`]s send on. Start it with [`Store::open`] or
/// [`Store::spawn`].
#[derive(Debug)]
pub struct Store {
    book: AddressBook,
    rx: mpsc::Receiver<Command>,
}

impl Store {
    /// Opens the database in `dir` and starts the store thread on it.
    #[cfg(test)]
    pub fn open(dir: &DataDir) -> Result<StoreHandle, StoreError> {
        Self::spawn(AddressBook::open_in(dir)?)
    }

    /// Opens the database in `dir` with the history bounded by
    /// `retention` (trimmed to it at once) and starts the store thread.
    pub fn open_with(dir: &DataDir, retention: Retention) -> Result<StoreHandle, StoreError> {
        let mut book = AddressBook::open_in(dir)?;
        book.set_retention(retention);
        book.prune_history().map_err(|err| match err {
            StoreError::Database(source) => StoreError::OpenDatabase {
                path: dir.database_path(),
                source,
            },
            other => other,
        })?;
        Self::spawn(book)
    }

    /// Starts the store thread on `book`. The thread runs until
    /// [`StoreHandle::close`] or until every handle is dropped; only
    /// `close` waits for it, so a program should call it before exiting.
    ///
    /// The thread logs inside the caller's current tracing span.
    pub fn spawn(book: AddressBook) -> Result<StoreHandle, StoreError> {
        let (tx, rx) = mpsc::channel(STORE_CHANNEL_CAPACITY);
        let span = tracing::debug_span!("store");
        let store = Store { book, rx };
        let thread = std::thread::Builder::new()
            .name("gossipnet-store".into())
            .spawn(move || span.in_scope(|| store.run()))
            .map_err(StoreError::Spawn)?;
        Ok(StoreHandle {
            tx,
            shared: Arc::new(Shared {
                dropped_writes: AtomicU64::new(0),
                thread: Mutex::new(Some(thread)),
            }),
        })
    }

    fn run(mut self) {
        let mut close_reply = None;
        while let Some(command) = self.rx.blocking_recv() {
            match command {
                Command::Close(reply) => {
                    close_reply = Some(reply);
                    break;
                }
                command => self.handle(command),
            }
        }
        // Commands sent after Close are dropped with the receiver, so their
        // queries see Closed rather than wait forever.
        drop(self.rx);
        if let Err(err) = self.book.close() {
            tracing::warn!(%err, "closing the database failed");
        }
        if let Some(reply) = close_reply {
            let _ = reply.send(());
        }
    }

    fn handle(&mut self, command: Command) {
        let book = &mut self.book;
        let written = match command {
            Command::Record(record, now) => match book.upsert_record(&record, now) {
                // Records come from peers: a bad one is their fault, not ours.
                Err(StoreError::InvalidRecord(err)) => {
                    tracing::debug!(%err, "refused a record for the address book");
                    Ok(())
                }
                other => other.map(drop),
            },
            Command::Seen(id, now) => book.note_seen(id, now),
            Command::Failure(id, now) => book.note_failure(id, now),
            Command::Address(addr, id, now) => book.note_address(addr, id, now),
            Command::Message {
                id,
                origin,
                time_ms,
                envelope,
            } => book.save_message(id, origin, time_ms, &envelope).map(drop),
            Command::Candidates(limit, reply) => {
                let _ = reply.send(book.candidates(limit));
                Ok(())
            }
            Command::History(filter, limit, reply) => {
                let _ = reply.send(book.query_history(&filter, limit));
                Ok(())
            }
            Command::Close(_) => unreachable!("run handles Close"),
        };
        if let Err(err) = written {
            tracing::warn!(%err, "address book write failed");
        }
    }
}

/// State the handles share.
#[derive(Debug)]
struct Shared {
    dropped_writes: AtomicU64,
    /// Taken by the first `close`, which joins the thread.
    thread: Mutex<Option<JoinHandle<()>>>,
}

/// A cheap, cloneable way to reach the store thread.
///
/// Writes (`record`, `seen`, `failure`, `address`, `message`) never wait:
/// when the channel is full they are dropped and counted
/// ([`StoreHandle::dropped_writes`]). Queries wait for room and for the
/// answer; each is cancel-safe in that dropping it loses nothing but the
/// answer. A query sees every write sent before it on the same handle.
#[derive(Debug, Clone)]
pub struct StoreHandle {
    tx: mpsc::Sender<Command>,
    shared: Arc<Shared>,
}

impl StoreHandle {
    /// Stores a peer's record (checked on the store thread: an invalid one or
    /// one older than the stored one is ignored).
    pub fn record(&self, record: SignedRecord) {
        self.write(Command::Record(record, unix_ms()));
    }

    /// Notes that a link to `id` came up.
    pub fn seen(&self, id: NodeId) {
        self.write(Command::Seen(id, unix_ms()));
    }

    /// Notes that dialling `id` failed.
    pub fn failure(&self, id: NodeId) {
        self.write(Command::Failure(id, unix_ms()));
    }

    /// Notes a plain address to dial, with the node expected there if known.
    pub fn address(&self, addr: SocketAddr, id: Option<NodeId>) {
        self.write(Command::Address(addr, id, unix_ms()));
    }

    /// Adds a broadcast envelope to the history.
    pub fn message(&self, id: MessageId, origin: NodeId, time_ms: u64, envelope: Bytes) {
        self.write(Command::Message {
            id,
            origin,
            time_ms,
            envelope,
        });
    }

    /// Up to `limit` peers to dial, best first; see [`AddressBook::candidates`].
    pub async fn candidates(&self, limit: usize) -> Result<Vec<Candidate>, StoreError> {
        self.query(|reply| Command::Candidates(limit, reply))
            .await?
    }

    /// Up to `limit` envelopes from the history, newest first (at most
    /// the retention's count).
    #[cfg(test)]
    pub async fn recent_messages(&self, limit: usize) -> Result<Vec<Vec<u8>>, StoreError> {
        self.query_history(HistoryFilter::default(), limit).await
    }

    /// Up to `limit` envelopes that pass `filter`, newest first.
    pub async fn query_history(
        &self,
        filter: HistoryFilter,
        limit: usize,
    ) -> Result<Vec<Vec<u8>>, StoreError> {
        self.query(|reply| Command::History(filter, limit, reply))
            .await?
    }

    /// Writes dropped because the store thread was behind or closed (each
    /// drop is logged as it happens; the tests read the count).
    #[cfg(test)]
    pub fn dropped_writes(&self) -> u64 {
        self.shared.dropped_writes.load(Ordering::Relaxed)
    }

    /// Processes every command sent before this one, closes the database and
    /// stops the thread. Other handles then get [`StoreError::Closed`] from
    /// queries. Closing again is a no-op.
    ///
    /// An error closing the database has no remedy at shutdown, so it is
    /// logged (by the store thread) rather than returned; what matters to the
    /// caller is that every write before the close has been made.
    pub async fn close(&self) {
        // Closed means another handle closed it already; the join below still
        // waits for the thread if it has not been joined.
        let _ = self.query(Command::Close).await;
        let thread = self
            .shared
            .thread
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .take();
        if let Some(thread) = thread {
            // The thread replies as its last act, so this join returns at
            // once and does not stall the runtime.
            if thread.join().is_err() {
                tracing::error!("the store thread panicked; recent address book writes are lost");
            }
        }
    }

    fn write(&self, command: Command) {
        if let Err(err) = self.tx.try_send(command) {
            let dropped = self.shared.dropped_writes.fetch_add(1, Ordering::Relaxed) + 1;
            let why = match err {
                mpsc::error::TrySendError::Full(_) => "store is behind",
                mpsc::error::TrySendError::Closed(_) => "store is closed",
            };
            tracing::debug!(why, dropped, "dropped an address book write");
        }
    }

    async fn query<T>(
        &self,
        command: impl FnOnce(oneshot::Sender<T>) -> Command,
    ) -> Result<T, StoreError> {
        let (reply, answer) = oneshot::channel();
        self.tx
            .send(command(reply))
            .await
            .map_err(|_| StoreError::Closed)?;
        answer.await.map_err(|_| StoreError::Closed)
    }
}
