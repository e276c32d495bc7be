//! The address book: the peers a node has met or been told of, ranked for
//! dialling when it starts or loses its way back into the network.
//!
//! It keeps signed records (verified before they are stored, newest
//! sequence number wins) with when each peer was last seen and how often
//! dialling it failed since, and plain addresses from the command line, a
//! config file or the LAN. Both tables are bounded ([`MAX_PEERS`],
//! [`MAX_ADDRESSES`]) and pruned in batches of [`PRUNE_EVERY`] new rows, so
//! strangers feeding records cannot grow the file without end. The same
//! connection holds the message history ([`super::history`]).

use std::cmp::Reverse;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::Path;

use gossipnet_proto::record::SignedRecord;
use gossipnet_proto::NodeId;
use rusqlite::{params, Connection, OptionalExtension};

use super::schema::{from_sql, migrate, sql_limit, to_sql};
use super::{DataDir, StoreError, MAX_ADDRESSES, MAX_FAILURES, MAX_PEERS, PRUNE_EVERY};

/// How long a statement waits for a lock held by another process (a CLI
/// reading the history) before it fails.
const BUSY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

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
/// Its methods block on disk, so a node uses it through
/// [`Store`](super::Store), which runs it on a thread of its own; tests and
/// tools may use it directly.
#[derive(Debug)]
pub struct AddressBook {
    pub(super) conn: Connection,
    /// New peer rows since the last prune of the peers table.
    new_peers: u32,
    /// New address rows since the last prune of the addresses table.
    new_addresses: u32,
    /// New messages since the last prune of the history.
    pub(super) new_messages: u32,
    /// The history's bounds.
    pub(super) retention: super::Retention,
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
        check_integrity(&conn).map_err(open_err)?;
        migrate(&mut conn, path)?;
        let mut book = Self {
            conn,
            new_peers: 0,
            new_addresses: 0,
            new_messages: 0,
            retention: super::Retention::default(),
        };
        // The counters restart at zero, so trim now: restarts must not let
        // the tables creep past their bounds.
        // A damaged page may only show here: say which file it is.
        let named = |err: StoreError| match err {
            StoreError::Database(source) => open_err(source),
            other => other,
        };
        book.prune(MAX_PEERS).map_err(named)?;
        book.prune_addresses().map_err(named)?;
        book.prune_history().map_err(named)?;
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
    #[cfg(test)]
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
    #[cfg(test)]
    pub fn len(&self) -> Result<usize, StoreError> {
        self.count("SELECT count(*) FROM peers")
    }

    /// Whether no peer record is stored.
    #[cfg(test)]
    pub fn is_empty(&self) -> Result<bool, StoreError> {
        Ok(self.len()? == 0)
    }

    #[cfg(test)]
    pub(super) fn count(&self, sql: &str) -> Result<usize, StoreError> {
        let n: i64 = self
            .conn
            .prepare_cached(sql)?
            .query_row([], |row| row.get(0))?;
        Ok(usize::try_from(n).unwrap_or(0))
    }
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

/// Fails on a damaged database before anything reads or writes it, so
/// the node stops with the file's name instead of meeting the damage later
/// in the middle of a run, and never writes into a damaged file.
/// `quick_check` reads every page once; the database is bounded (the
/// address book and the history's retention), so this costs milliseconds.
fn check_integrity(conn: &Connection) -> rusqlite::Result<()> {
    let verdict: String = conn.pragma_query_value(None, "quick_check", |row| row.get(0))?;
    if verdict == "ok" {
        return Ok(());
    }
    Err(rusqlite::Error::SqliteFailure(
        rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_CORRUPT),
        Some(format!("the database is damaged ({verdict})")),
    ))
}
