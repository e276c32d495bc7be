//! Persistence: the node's data directory, its identity key, and a SQLite
//! database holding the address book and the message history.
//!
//! A data dir ([`DataDir`], one per node name, mode 0700) holds two files.
//! `identity.key` is the node's ed25519 secret as 64 hex characters, mode
//! 0600, written once and published atomically, so a crash never leaves half
//! a key. `gossipnet.db` is the [`AddressBook`]: the signed records of peers
//! met before, with when each was last seen and how often dialling it failed
//! since, the plain addresses given on the command line or found on the LAN,
//! and the last [`MAX_HISTORY`] broadcast envelopes, for `history` and for
//! catch-up after a restart. Every table is bounded, so a node that runs for
//! years, or that strangers feed records, keeps a database of a known size.
//!
//! The database is synchronous and so must stay off the async runtime:
//! [`Store`] runs it on one dedicated thread, fed by a bounded channel, and
//! [`StoreHandle`] is how the node talks to it. Writes are advisory (a node
//! that forgets a peer's last-seen time loses nothing the overlay cannot
//! relearn), so they are fire-and-forget and are dropped, and counted, when
//! the thread falls behind; queries wait for their answer. The channel is
//! FIFO, so a query observes every write sent before it from the same task.

use std::cmp::Reverse;
use std::collections::HashMap;
use std::fmt::Write as _;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use gossipnet_proto::record::{RecordError, SignedRecord};
use gossipnet_proto::{MessageId, NodeId, SecretKey};
use rand::rngs::OsRng;
use rusqlite::{params, Connection, OptionalExtension};
use tokio::sync::{mpsc, oneshot};

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

/// Most broadcast envelopes kept for `history` and catch-up: at most 64 KiB
/// each, though chat lines are a few hundred bytes.
pub const MAX_HISTORY: usize = 10_000;

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

/// How long a statement waits for a lock held by another process (a CLI
/// reading the history) before it fails.
const BUSY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

/// Bytes of a well-formed key file: 64 hex characters and a newline.
const KEY_FILE_LEN: usize = 65;

/// Migrations, in order: entry `i` takes the schema from version `i` to
/// `i + 1`, and `PRAGMA user_version` records how many have run. Append only;
/// never edit a migration that has shipped.
const MIGRATIONS: &[&str] = &[
    // Version 1. Ids are 32-byte blobs; times are unix milliseconds. `seq`
    // is stored bit for bit (a u64 read as i64) and compared in Rust, never
    // in SQL, so a record with a sequence number above i64::MAX still sorts.
    "CREATE TABLE peers (
        id              BLOB PRIMARY KEY NOT NULL,
        record          BLOB NOT NULL,
        seq             INTEGER NOT NULL,
        updated_ms      INTEGER NOT NULL,
        last_seen_ms    INTEGER,
        failures        INTEGER NOT NULL DEFAULT 0,
        last_failure_ms INTEGER
    ) WITHOUT ROWID;
    CREATE TABLE addresses (
        addr         TEXT PRIMARY KEY NOT NULL,
        id           BLOB,
        last_seen_ms INTEGER NOT NULL
    );
    CREATE INDEX addresses_by_id ON addresses (id);
    CREATE TABLE messages (
        seq      INTEGER PRIMARY KEY,
        id       BLOB NOT NULL UNIQUE,
        origin   BLOB NOT NULL,
        time_ms  INTEGER NOT NULL,
        envelope BLOB NOT NULL
    );",
];

/// The schema version this build writes.
const SCHEMA_VERSION: usize = MIGRATIONS.len();

/// How peers rank, best first: fewest failures since last seen, then most
/// recently seen (never seen last), then most recently re-issued record, then
/// id so the order is total. Used by both `candidates` and `prune`.
macro_rules! peer_order {
    () => {
        "failures ASC, last_seen_ms DESC NULLS LAST, updated_ms DESC, id ASC"
    };
}

/// How a candidate ranks, lowest first: its failures since last seen, then
/// its last-seen time, newest first and never seen last.
type Rank = (i64, Reverse<Option<i64>>);

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
    #[error("cannot open database {}: {source}; if it is damaged, stop the node and move it away (the address book is rebuilt)", .path.display())]
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

/// The default data dir for the node called `name`:
/// `$XDG_DATA_HOME/gossipnet/<name>`, else `$HOME/.local/share/gossipnet/<name>`,
/// else (no home at all) `.gossipnet/<name>` under the current directory.
///
/// `name` is used as one path component; the caller keeps it to a plain name.
pub fn default_data_dir(name: &str) -> PathBuf {
    data_root().join(name)
}

/// The directory that holds the default data dirs:
/// `$XDG_DATA_HOME/gossipnet`, else `$HOME/.local/share/gossipnet`, else
/// `.gossipnet` under the current directory.
pub fn data_root() -> PathBuf {
    // The XDG spec says a relative XDG_DATA_HOME is invalid and is ignored.
    let base = std::env::var_os("XDG_DATA_HOME")
        .map(PathBuf::from)
        .filter(|p| p.is_absolute())
        .or_else(|| {
            std::env::var_os("HOME")
                .filter(|h| !h.is_empty())
                .map(|h| PathBuf::from(h).join(".local").join("share"))
        });
    match base {
        Some(base) => base.join("gossipnet"),
        None => PathBuf::from(".gossipnet"),
    }
}

/// A node's data directory: its identity key and its database.
#[derive(Debug, Clone)]
pub struct DataDir {
    path: PathBuf,
}

impl DataDir {
    /// Opens the data dir at `path`, creating it (and missing parents) with
    /// mode 0700 if needed. An existing directory keeps its mode.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        let err = |source| StoreError::DataDir {
            path: path.to_owned(),
            source,
        };
        let mut builder = fs::DirBuilder::new();
        builder.recursive(true);
        #[cfg(unix)]
        std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
        builder.create(path).map_err(err)?;
        // `recursive` succeeds on an existing path only if it is a
        // directory, but say so plainly rather than fail later on the key.
        if !fs::metadata(path).map_err(err)?.is_dir() {
            return Err(err(io::Error::new(
                io::ErrorKind::AlreadyExists,
                "a file with that name exists",
            )));
        }
        Ok(Self {
            path: path.to_owned(),
        })
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Where the identity key lives.
    pub fn identity_path(&self) -> PathBuf {
        self.path.join(IDENTITY_FILE)
    }

    /// Where the database lives.
    pub fn database_path(&self) -> PathBuf {
        self.path.join(DATABASE_FILE)
    }

    /// Loads the node's secret key, or makes and saves a new one on first
    /// run; the flag says whether it was created.
    ///
    /// A key file that others may read is tightened to 0600 with a warning: a
    /// leaked key lets anyone speak as this node.
    pub fn load_or_create_identity(&self) -> Result<(SecretKey, bool), StoreError> {
        let path = self.identity_path();
        if let Some(key) = load_identity(&path)? {
            return Ok((key, false));
        }
        let key = SecretKey::generate(&mut OsRng);
        match self.publish_identity(&key, &path)? {
            true => Ok((key, true)),
            // Another process published one first: use it, so both agree.
            false => load_identity(&path)?
                .map(|key| (key, false))
                .ok_or_else(|| StoreError::IdentityIo {
                    path: path.clone(),
                    source: io::Error::new(io::ErrorKind::NotFound, "vanished while created"),
                }),
        }
    }

    /// Writes `key` to a temporary file (0600 from its creation, so the
    /// secret is never readable by others) and then publishes it under
    /// `path`. Returns false if a key file appeared there meanwhile.
    fn publish_identity(&self, key: &SecretKey, path: &Path) -> Result<bool, StoreError> {
        let io_err = |source| StoreError::IdentityIo {
            path: path.to_owned(),
            source,
        };
        let tmp = self
            .path
            .join(format!(".{IDENTITY_FILE}.{}.tmp", std::process::id()));
        // A leftover from a crash of a process that had our pid.
        match fs::remove_file(&tmp) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(io_err(e)),
            _ => {}
        }
        let mut options = OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        let written = options.open(&tmp).and_then(|mut file| {
            file.write_all(hex_line(&key.to_bytes()).as_bytes())?;
            file.sync_all()
        });
        if let Err(e) = written {
            let _ = fs::remove_file(&tmp);
            return Err(io_err(e));
        }
        // A hard link publishes without replacing: if two processes start on
        // one data dir at once, the second sees AlreadyExists and adopts the
        // first one's key, where a rename would silently swap it. Filesystems
        // without hard links (FAT) fall back to the rename.
        let published = match fs::hard_link(&tmp, path) {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(false),
            Err(_) => fs::rename(&tmp, path).map(|()| true),
        };
        let _ = fs::remove_file(&tmp);
        let published = published.map_err(io_err)?;
        // Make the new directory entry durable, not just the file's bytes.
        #[cfg(unix)]
        File::open(&self.path)
            .and_then(|dir| dir.sync_all())
            .map_err(io_err)?;
        Ok(published)
    }
}

/// Reads the key file at `path`; `None` if there is none.
fn load_identity(path: &Path) -> Result<Option<SecretKey>, StoreError> {
    let io_err = |source| StoreError::IdentityIo {
        path: path.to_owned(),
        source,
    };
    let malformed = |reason: String| StoreError::MalformedIdentity {
        path: path.to_owned(),
        reason,
    };
    let file = match File::open(path) {
        Ok(file) => file,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io_err(e)),
    };
    let meta = file.metadata().map_err(io_err)?;
    if !meta.is_file() {
        return Err(malformed("it is not a regular file".into()));
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = meta.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            tracing::warn!(
                path = %path.display(),
                mode = format_args!("{mode:o}"),
                "identity key file was readable by others; setting its mode to 600"
            );
            file.set_permissions(fs::Permissions::from_mode(0o600))
                .map_err(io_err)?;
        }
    }
    // Read one byte past a well-formed file, enough to tell it is too long
    // without reading whatever large file sits there.
    let mut bytes = Vec::with_capacity(KEY_FILE_LEN + 2);
    file.take(KEY_FILE_LEN as u64 + 2)
        .read_to_end(&mut bytes)
        .map_err(io_err)?;
    parse_key_file(&bytes).map(Some).map_err(malformed)
}

/// Parses 64 hex characters, optionally followed by a newline.
fn parse_key_file(bytes: &[u8]) -> Result<SecretKey, String> {
    let text = bytes
        .strip_suffix(b"\n")
        .map(|t| t.strip_suffix(b"\r").unwrap_or(t))
        .unwrap_or(bytes);
    if text.len() != 64 {
        return Err(format!(
            "expected 64 hex characters, found {} bytes",
            text.len()
        ));
    }
    let mut secret = [0u8; 32];
    for (byte, pair) in secret.iter_mut().zip(text.chunks_exact(2)) {
        let (Some(hi), Some(lo)) = (hex_digit(pair[0]), hex_digit(pair[1])) else {
            return Err("expected 64 hex characters, found other characters".into());
        };
        *byte = hi << 4 | lo;
    }
    Ok(SecretKey::from_bytes(&secret))
}

fn hex_digit(c: u8) -> Option<u8> {
    (c as char).to_digit(16).map(|d| d as u8)
}

/// `bytes` as lowercase hex and a newline: the key file's content.
fn hex_line(bytes: &[u8; 32]) -> String {
    let mut s = String::with_capacity(KEY_FILE_LEN);
    for b in bytes {
        let _ = write!(s, "{b:02x}");
    }
    s.push('\n');
    s
}

/// A peer worth dialling, as [`AddressBook::candidates`] offers it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate {
    /// The node, when known: from its record, or from an address noted with
    /// an id. A dial to a candidate with an id should insist on that id.
    pub id: Option<NodeId>,
    /// Where to dial, best first: the record's addresses, then noted ones.
    pub addrs: Vec<SocketAddr>,
    /// The peer's signed record, when one is stored.
    pub record: Option<SignedRecord>,
}

/// The address book and message history, over one SQLite connection.
///
/// Its methods block on disk, so a node uses it through [`Store`], which
/// runs it on a thread of its own; tests and tools may use it directly.
#[derive(Debug)]
pub struct AddressBook {
    conn: Connection,
    /// New peer rows since the last prune of the peers table.
    new_peers: u32,
    /// New address rows since the last prune of the addresses table.
    new_addresses: u32,
    /// New messages since the last prune of the history.
    new_messages: u32,
}

impl AddressBook {
    /// Opens the database in `dir`, creating it or migrating it to the
    /// current schema, and trims every table to its bound.
    pub fn open_in(dir: &DataDir) -> Result<Self, StoreError> {
        Self::open(&dir.database_path())
    }

    /// Opens the database file at `path`; see [`AddressBook::open_in`].
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        let open_err = |source| StoreError::OpenDatabase {
            path: path.to_owned(),
            source,
        };
        let mut conn = Connection::open(path).map_err(open_err)?;
        conn.busy_timeout(BUSY_TIMEOUT).map_err(open_err)?;
        // WAL lets a CLI read the history while the node writes; with WAL,
        // synchronous=NORMAL never corrupts, it can only lose the last
        // commits on power loss, which advisory data can afford.
        let mode: String = conn
            .pragma_update_and_check(None, "journal_mode", "WAL", |row| row.get(0))
            .map_err(open_err)?;
        if !mode.eq_ignore_ascii_case("wal") {
            tracing::warn!(path = %path.display(), mode, "database could not use WAL mode");
        }
        conn.pragma_update(None, "synchronous", "NORMAL")
            .map_err(open_err)?;
        migrate(&mut conn, path)?;
        let mut book = Self {
            conn,
            new_peers: 0,
            new_addresses: 0,
            new_messages: 0,
        };
        // The counters restart at zero, so trim now: restarts must not let
        // the tables creep past their bounds.
        book.prune(MAX_PEERS)?;
        book.prune_addresses()?;
        book.prune_history()?;
        Ok(book)
    }

    /// Closes the connection, reporting any error SQLite has on closing
    /// (which dropping would swallow).
    pub fn close(self) -> Result<(), StoreError> {
        self.conn.close().map_err(|(_, e)| StoreError::Database(e))
    }

    /// Stores `record` if its signature verifies and its sequence number is
    /// at least the stored one's; returns whether it was stored. An invalid
    /// record is refused with [`StoreError::InvalidRecord`].
    pub fn upsert_record(
        &mut self,
        record: &SignedRecord,
        now_ms: u64,
    ) -> Result<bool, StoreError> {
        record.verify()?;
        let id = record.id();
        let seq = record.record().seq;
        let tx = self.conn.transaction()?;
        let stored: Option<i64> = tx
            .prepare_cached("SELECT seq FROM peers WHERE id = ?1")?
            .query_row([id.as_bytes().as_slice()], |row| row.get(0))
            .optional()?;
        if stored.is_some_and(|s| from_sql(s) > seq) {
            return Ok(false);
        }
        tx.prepare_cached(
            "INSERT INTO peers (id, record, seq, updated_ms) VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT (id) DO UPDATE SET
                 record = excluded.record, seq = excluded.seq, updated_ms = excluded.updated_ms",
        )?
        .execute(params![
            id.as_bytes().as_slice(),
            record.encode(),
            to_sql(seq),
            to_sql(now_ms)
        ])?;
        tx.commit()?;
        if stored.is_none() {
            self.new_peers += 1;
            if self.new_peers >= PRUNE_EVERY {
                self.prune(MAX_PEERS)?;
            }
        }
        Ok(true)
    }

    /// Notes that a link to `id` came up: it is seen now and its failures
    /// are forgiven.
    pub fn note_seen(&mut self, id: NodeId, now_ms: u64) -> Result<(), StoreError> {
        let now = to_sql(now_ms);
        let id = id.as_bytes().as_slice();
        self.conn
            .prepare_cached("UPDATE peers SET last_seen_ms = ?1, failures = 0 WHERE id = ?2")?
            .execute(params![now, id])?;
        self.conn
            .prepare_cached("UPDATE addresses SET last_seen_ms = ?1 WHERE id = ?2")?
            .execute(params![now, id])?;
        Ok(())
    }

    /// Notes that dialling `id` failed. Only peers with a stored record keep
    /// a failure count; plain addresses are kept for as long as they are
    /// noted, since a person or the LAN named them.
    pub fn note_failure(&mut self, id: NodeId, now_ms: u64) -> Result<(), StoreError> {
        self.conn
            .prepare_cached(
                "UPDATE peers SET failures = failures + 1, last_failure_ms = ?1 WHERE id = ?2",
            )?
            .execute(params![to_sql(now_ms), id.as_bytes().as_slice()])?;
        Ok(())
    }

    /// Notes a plain address to dial (from the command line, a config file
    /// or LAN discovery), with the node expected there if known. A known id
    /// replaces the one stored for that address; `None` keeps it.
    pub fn note_address(
        &mut self,
        addr: SocketAddr,
        id: Option<NodeId>,
        now_ms: u64,
    ) -> Result<(), StoreError> {
        // The upsert cannot tell an insert from an update, and only inserts
        // grow the table, so ask first.
        let existed = self
            .conn
            .prepare_cached("SELECT 1 FROM addresses WHERE addr = ?1")?
            .exists([addr.to_string()])?;
        self.conn
            .prepare_cached(
                "INSERT INTO addresses (addr, id, last_seen_ms) VALUES (?1, ?2, ?3)
                 ON CONFLICT (addr) DO UPDATE SET
                     id = coalesce(excluded.id, addresses.id),
                     last_seen_ms = excluded.last_seen_ms",
            )?
            .execute(params![
                addr.to_string(),
                id.as_ref().map(|id| id.as_bytes().as_slice()),
                to_sql(now_ms)
            ])?;
        if !existed {
            self.new_addresses += 1;
            if self.new_addresses >= PRUNE_EVERY {
                self.prune_addresses()?;
            }
        }
        Ok(())
    }

    /// Up to `limit` peers to dial, best first: fewest failures since last
    /// seen, then most recently seen (never seen last). Peers with
    /// [`MAX_FAILURES`] or more are left out unless nothing else is known.
    pub fn candidates(&self, limit: usize) -> Result<Vec<Candidate>, StoreError> {
        let ranked = self.ranked_candidates(limit, true)?;
        if !ranked.is_empty() {
            return Ok(ranked);
        }
        self.ranked_candidates(limit, false)
    }

    fn ranked_candidates(
        &self,
        limit: usize,
        skip_failing: bool,
    ) -> Result<Vec<Candidate>, StoreError> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        let max_failures = if skip_failing {
            i64::from(MAX_FAILURES)
        } else {
            i64::MAX
        };
        let mut ranked: Vec<(Rank, Candidate)> = Vec::new();

        let mut peers = self.conn.prepare_cached(concat!(
            "SELECT id, record, failures, last_seen_ms FROM peers WHERE failures < ?1 ORDER BY ",
            peer_order!(),
            " LIMIT ?2"
        ))?;
        let rows = peers.query_map(params![max_failures, sql_limit(limit)], |row| {
            Ok((
                row.get::<_, Vec<u8>>(0)?,
                row.get::<_, Vec<u8>>(1)?,
                row.get::<_, i64>(2)?,
                row.get::<_, Option<i64>>(3)?,
            ))
        })?;
        for row in rows {
            let (id, record, failures, seen) = row?;
            let Some(record) = stored_record(&id, &record) else {
                continue;
            };
            let candidate = Candidate {
                id: Some(record.id()),
                addrs: record.record().addrs.clone(),
                record: Some(record),
            };
            ranked.push(((failures, Reverse(seen)), candidate));
        }

        // Noted addresses of the chosen peers, after their signed ones.
        let mut extra = self.conn.prepare_cached(
            "SELECT addr FROM addresses WHERE id = ?1 ORDER BY last_seen_ms DESC",
        )?;
        for (_, candidate) in &mut ranked {
            let Some(id) = candidate.id else { continue };
            let rows =
                extra.query_map([id.as_bytes().as_slice()], |row| row.get::<_, String>(0))?;
            for addr in rows {
                if let Some(addr) = parse_addr(&addr?) {
                    if !candidate.addrs.contains(&addr) {
                        candidate.addrs.push(addr);
                    }
                }
            }
        }

        // Addresses with no stored record: one candidate per known id (its
        // addresses together), one per address when the id is unknown. They
        // have no failure count, so they rank as peers with none.
        let mut plain = self.conn.prepare_cached(
            "SELECT addr, id, last_seen_ms FROM addresses
             WHERE id IS NULL OR id NOT IN (SELECT id FROM peers)
             ORDER BY last_seen_ms DESC, addr ASC",
        )?;
        let rows = plain.query_map([], |row| {
            Ok((
                row.get::<_, String>(0)?,
                row.get::<_, Option<Vec<u8>>>(1)?,
                row.get::<_, i64>(2)?,
            ))
        })?;
        let mut by_id: HashMap<NodeId, usize> = HashMap::new();
        for row in rows {
            let (addr, id, seen) = row?;
            let Some(addr) = parse_addr(&addr) else {
                continue;
            };
            let id = id.and_then(|id| node_id(&id));
            if let Some(&at) = id.as_ref().and_then(|id| by_id.get(id)) {
                // Rows come newest first, so the first one set the rank.
                ranked[at].1.addrs.push(addr);
                continue;
            }
            if let Some(id) = id {
                by_id.insert(id, ranked.len());
            }
            let candidate = Candidate {
                id,
                addrs: vec![addr],
                record: None,
            };
            ranked.push(((0, Reverse(Some(seen))), candidate));
        }

        // Stable: ties keep the SQL order (record age, then id).
        ranked.sort_by_key(|(rank, _)| *rank);
        ranked.truncate(limit);
        Ok(ranked.into_iter().map(|(_, c)| c).collect())
    }

    /// Forgets `id`: its record and every address noted for it.
    pub fn forget(&mut self, id: NodeId) -> Result<(), StoreError> {
        let id = id.as_bytes().as_slice();
        self.conn
            .prepare_cached("DELETE FROM peers WHERE id = ?1")?
            .execute([id])?;
        self.conn
            .prepare_cached("DELETE FROM addresses WHERE id = ?1")?
            .execute([id])?;
        Ok(())
    }

    /// Keeps the best `max_entries` peers (in [`AddressBook::candidates`]
    /// order) and deletes the rest; returns how many were deleted. Runs by
    /// itself with [`MAX_PEERS`] as peers are added.
    pub fn prune(&mut self, max_entries: usize) -> Result<usize, StoreError> {
        self.new_peers = 0;
        let deleted = self
            .conn
            .prepare_cached(concat!(
                "DELETE FROM peers WHERE id NOT IN (SELECT id FROM peers ORDER BY ",
                peer_order!(),
                " LIMIT ?1)"
            ))?
            .execute([sql_limit(max_entries)])?;
        Ok(deleted)
    }

    /// Keeps the [`MAX_ADDRESSES`] most recently noted addresses.
    fn prune_addresses(&mut self) -> Result<(), StoreError> {
        self.new_addresses = 0;
        self.conn
            .prepare_cached(
                "DELETE FROM addresses WHERE addr NOT IN
                 (SELECT addr FROM addresses ORDER BY last_seen_ms DESC LIMIT ?1)",
            )?
            .execute([sql_limit(MAX_ADDRESSES)])?;
        Ok(())
    }

    /// How many peers (signed records) are stored.
    pub fn len(&self) -> Result<usize, StoreError> {
        self.count("SELECT count(*) FROM peers")
    }

    /// Whether no peer record is stored.
    pub fn is_empty(&self) -> Result<bool, StoreError> {
        Ok(self.len()? == 0)
    }

    /// How many messages the history holds.
    pub fn history_len(&self) -> Result<usize, StoreError> {
        self.count("SELECT count(*) FROM messages")
    }

    fn count(&self, sql: &str) -> Result<usize, StoreError> {
        let n: i64 = self
            .conn
            .prepare_cached(sql)?
            .query_row([], |row| row.get(0))?;
        Ok(usize::try_from(n).unwrap_or(0))
    }

    /// Adds a broadcast envelope to the history, once per message id; returns
    /// whether it was new. The oldest are dropped past [`MAX_HISTORY`].
    ///
    /// History is ordered by arrival, not by `time_ms`: that is the origin's
    /// claim, and a clock far in the future must not pin a message on top.
    pub fn save_message(
        &mut self,
        id: MessageId,
        origin: NodeId,
        time_ms: u64,
        envelope: &[u8],
    ) -> Result<bool, StoreError> {
        let inserted = self
            .conn
            .prepare_cached(
                "INSERT OR IGNORE INTO messages (id, origin, time_ms, envelope)
                 VALUES (?1, ?2, ?3, ?4)",
            )?
            .execute(params![
                id.0.as_slice(),
                origin.as_bytes().as_slice(),
                to_sql(time_ms),
                envelope
            ])?;
        if inserted == 0 {
            return Ok(false);
        }
        self.new_messages += 1;
        if self.new_messages >= PRUNE_EVERY {
            self.prune_history()?;
        }
        Ok(true)
    }

    /// Up to `limit` envelopes from the history, newest first.
    pub fn recent_messages(&self, limit: usize) -> Result<Vec<Vec<u8>>, StoreError> {
        let mut stmt = self
            .conn
            .prepare_cached("SELECT envelope FROM messages ORDER BY seq DESC LIMIT ?1")?;
        let rows = stmt.query_map([sql_limit(limit.min(MAX_HISTORY))], |row| row.get(0))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Keeps the [`MAX_HISTORY`] newest messages.
    fn prune_history(&mut self) -> Result<(), StoreError> {
        self.new_messages = 0;
        // With fewer rows the subquery is NULL and nothing matches.
        self.conn
            .prepare_cached(
                "DELETE FROM messages WHERE seq <=
                 (SELECT seq FROM messages ORDER BY seq DESC LIMIT 1 OFFSET ?1)",
            )?
            .execute([sql_limit(MAX_HISTORY)])?;
        Ok(())
    }
}

/// Brings the schema to [`SCHEMA_VERSION`], one migration per transaction.
fn migrate(conn: &mut Connection, path: &Path) -> Result<(), StoreError> {
    let open_err = |source| StoreError::OpenDatabase {
        path: path.to_owned(),
        source,
    };
    let found: i64 = conn
        .pragma_query_value(None, "user_version", |row| row.get(0))
        .map_err(open_err)?;
    let Ok(current) = usize::try_from(found) else {
        return Err(StoreError::SchemaTooNew {
            path: path.to_owned(),
            found,
            supported: SCHEMA_VERSION,
        });
    };
    if current > SCHEMA_VERSION {
        return Err(StoreError::SchemaTooNew {
            path: path.to_owned(),
            found,
            supported: SCHEMA_VERSION,
        });
    }
    for (version, sql) in MIGRATIONS.iter().enumerate().skip(current) {
        let tx = conn.transaction().map_err(open_err)?;
        tx.execute_batch(sql).map_err(open_err)?;
        tx.pragma_update(None, "user_version", sql_limit(version + 1))
            .map_err(open_err)?;
        tx.commit().map_err(open_err)?;
    }
    Ok(())
}

/// A stored record, decoded; `None` (and a warning) if the row is damaged.
/// Records were verified before they were stored, so this does not re-verify.
fn stored_record(id: &[u8], bytes: &[u8]) -> Option<SignedRecord> {
    match SignedRecord::decode(bytes) {
        Ok(record) if record.id().as_bytes().as_slice() == id => Some(record),
        Ok(_) => {
            tracing::warn!("address book row holds a record for another id; skipping it");
            None
        }
        Err(err) => {
            tracing::warn!(%err, "address book row holds an undecodable record; skipping it");
            None
        }
    }
}

fn node_id(bytes: &[u8]) -> Option<NodeId> {
    <[u8; 32]>::try_from(bytes).ok().map(NodeId::from_bytes)
}

fn parse_addr(text: &str) -> Option<SocketAddr> {
    let addr = text.parse().ok();
    if addr.is_none() {
        tracing::warn!(
            text,
            "address book holds an unparsable address; skipping it"
        );
    }
    addr
}

/// A u64 as SQLite's i64, bit for bit; [`from_sql`] undoes it exactly.
/// Times stay far below 2^63, so they also sort correctly in SQL.
fn to_sql(v: u64) -> i64 {
    i64::from_ne_bytes(v.to_ne_bytes())
}

fn from_sql(v: i64) -> u64 {
    u64::from_ne_bytes(v.to_ne_bytes())
}

fn sql_limit(limit: usize) -> i64 {
    i64::try_from(limit).unwrap_or(i64::MAX)
}

/// Milliseconds since the unix epoch by the wall clock (0 if the clock is
/// before 1970), for the times the address book keeps.
fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
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
    RecentMessages(usize, oneshot::Sender<Result<Vec<Vec<u8>>, StoreError>>),
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
    pub fn open(dir: &DataDir) -> Result<StoreHandle, StoreError> {
        Self::spawn(AddressBook::open_in(dir)?)
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
            Command::RecentMessages(limit, reply) => {
                let _ = reply.send(book.recent_messages(limit));
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

    /// Up to `limit` envelopes from the history, newest first.
    pub async fn recent_messages(&self, limit: usize) -> Result<Vec<Vec<u8>>, StoreError> {
        self.query(|reply| Command::RecentMessages(limit, reply))
            .await?
    }

    /// Writes dropped because the store thread was behind or closed.
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
