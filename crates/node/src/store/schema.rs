//! The database's schema: its tables, the migrations that build them, and
//! how Rust integers are stored in SQLite's.
//!
//! `PRAGMA user_version` counts the migrations a database has run, so a
//! newer build upgrades an old file in place, and an older build refuses a
//! newer file instead of misreading it. [`super::book`] and
//! [`super::history`] read and write the tables set up here.

use std::path::Path;

use rusqlite::Connection;

use super::StoreError;

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
    // Version 2: the history is indexed by origin and sequence number (for
    // catch-up and `history --from`) and by time (for the age window).
    // Rows from version 1 keep a NULL sequence; they age out.
    "ALTER TABLE messages ADD COLUMN origin_seq INTEGER;
    CREATE INDEX messages_by_origin ON messages (origin, origin_seq);
    CREATE INDEX messages_by_time ON messages (time_ms);",
];

/// The schema version this build writes.
pub(super) const SCHEMA_VERSION: usize = MIGRATIONS.len();

/// Brings the schema to [`SCHEMA_VERSION`], one migration per transaction.
pub(super) fn migrate(conn: &mut Connection, path: &Path) -> Result<(), StoreError> {
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

/// A u64 as SQLite's i64, bit for bit; [`from_sql`] undoes it exactly.
/// Times stay far below 2^63, so they also sort correctly in SQL.
pub(super) fn to_sql(v: u64) -> i64 {
    i64::from_ne_bytes(v.to_ne_bytes())
}

pub(super) fn from_sql(v: i64) -> u64 {
    u64::from_ne_bytes(v.to_ne_bytes())
}

pub(super) fn sql_limit(limit: usize) -> i64 {
    i64::try_from(limit).unwrap_or(i64::MAX)
}
