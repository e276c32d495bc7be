//! The message history on disk: every broadcast envelope a node delivered
//! or sent within the retention window, as received (signature and all),
//! in the address book's database, for `history`, for `/api/messages`, and
//! to give the protocol its history back after a restart.
//!
//! Envelopes are kept once per message id, indexed by origin and sequence
//! number and by time. The table is bounded three ways ([`Retention`]): by
//! age (by the origin's clock, with the protocol's skew allowance, so the
//! disk keeps exactly what the protocol would still accept), by count and
//! by bytes. Bounds are enforced in batches of [`PRUNE_EVERY`] new rows.

use gossipnet_proto::envelope::{Kind, SignedEnvelope};
use gossipnet_proto::{MessageId, NodeId};
use rusqlite::params;

use super::schema::{sql_limit, to_sql};
use super::{AddressBook, StoreError, MAX_HISTORY, PRUNE_EVERY};

/// How much history the database keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retention {
    /// Messages whose time is older than this many milliseconds are
    /// dropped; `None` keeps any age (a bare book, as the tests open).
    pub max_age_ms: Option<u64>,
    /// Most messages kept.
    pub max_messages: usize,
    /// Most envelope bytes kept.
    pub max_bytes: usize,
}

impl Default for Retention {
    fn default() -> Self {
        Self {
            max_age_ms: None,
            max_messages: MAX_HISTORY,
            max_bytes: 256 * 1024 * 1024,
        }
    }
}

impl Retention {
    /// The retention that matches the protocol's history: what the node
    /// would refuse as too old is what the disk drops.
    pub fn of(config: &gossipnet_proto::history::Config) -> Self {
        Self {
            max_age_ms: Some((config.max_age + config.max_clock_skew).as_millis() as u64),
            max_messages: config.max_messages,
            max_bytes: config.max_bytes,
        }
    }
}

/// Which messages a history read returns.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HistoryFilter {
    /// Only messages whose origin time is at or after this (Unix ms).
    pub since_ms: Option<u64>,
    /// Only messages whose origin's id (base32) starts with this.
    pub from: Option<String>,
    /// Direct and shutdown envelopes too (the protocol's history needs
    /// them; a reader does not).
    pub all_kinds: bool,
}

impl AddressBook {
    /// How many messages the history holds.
    #[cfg(test)]
    pub fn history_len(&self) -> Result<usize, StoreError> {
        self.count("SELECT count(*) FROM messages")
    }

    /// Sets the history's bounds (applied from the next prune).
    pub fn set_retention(&mut self, retention: Retention) {
        self.retention = retention;
    }

    /// Adds a broadcast envelope to the history, once per message id; returns
    /// whether it was new. Past a bound the oldest are dropped.
    ///
    /// Reads are ordered by arrival, not by `time_ms`: that is the origin's
    /// claim, and a clock far in the future must not pin a message on top.
    pub fn save_message(
        &mut self,
        id: MessageId,
        origin: NodeId,
        time_ms: u64,
        envelope: &[u8],
    ) -> Result<bool, StoreError> {
        let origin_seq = SignedEnvelope::decode(envelope)
            .ok()
            .map(|s| to_sql(s.envelope().seq));
        let inserted = self
            .conn
            .prepare_cached(
                "INSERT OR IGNORE INTO messages (id, origin, time_ms, envelope, origin_seq)
                 VALUES (?1, ?2, ?3, ?4, ?5)",
            )?
            .execute(params![
                id.0.as_slice(),
                origin.as_bytes().as_slice(),
                to_sql(time_ms),
                envelope,
                origin_seq,
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
    #[cfg(test)]
    pub fn recent_messages(&self, limit: usize) -> Result<Vec<Vec<u8>>, StoreError> {
        self.query_history(&HistoryFilter::default(), limit)
    }

    /// Up to `limit` envelopes that pass `filter`, newest first (by
    /// arrival). Rows are read newest first until `limit` match, so a
    /// filter that matches few scans at most the whole (bounded) table.
    pub fn query_history(
        &self,
        filter: &HistoryFilter,
        limit: usize,
    ) -> Result<Vec<Vec<u8>>, StoreError> {
        let limit = limit.min(self.retention.max_messages);
        let since = to_sql(filter.since_ms.unwrap_or(0));
        let mut stmt = self.conn.prepare_cached(
            "SELECT origin, envelope FROM messages WHERE time_ms >= ?1 ORDER BY seq DESC",
        )?;
        let mut rows = stmt.query([since])?;
        let mut out = Vec::new();
        while out.len() < limit {
            let Some(row) = rows.next()? else { break };
            let envelope: Vec<u8> = row.get(1)?;
            if let Some(prefix) = &filter.from {
                let origin: Vec<u8> = row.get(0)?;
                let Ok(origin) = <[u8; 32]>::try_from(origin.as_slice()) else {
                    continue;
                };
                if !NodeId::from_bytes(origin)
                    .to_string()
                    .starts_with(prefix.as_str())
                {
                    continue;
                }
            }
            if !filter.all_kinds {
                let kind = SignedEnvelope::decode(&envelope).map(|s| s.envelope().kind);
                if matches!(kind, Ok(Kind::Direct | Kind::Shutdown)) {
                    continue;
                }
            }
            out.push(envelope);
        }
        Ok(out)
    }

    /// Drops what is past the retention window or over a bound.
    pub(super) fn prune_history(&mut self) -> Result<(), StoreError> {
        self.new_messages = 0;
        if let Some(max_age) = self.retention.max_age_ms {
            let cutoff = crate::time::unix_ms().saturating_sub(max_age);
            self.conn
                .prepare_cached("DELETE FROM messages WHERE time_ms < ?1")?
                .execute([to_sql(cutoff)])?;
        }
        // With fewer rows the subqueries are NULL and nothing matches.
        self.conn
            .prepare_cached(
                "DELETE FROM messages WHERE seq <=
                 (SELECT seq FROM messages ORDER BY seq DESC LIMIT 1 OFFSET ?1)",
            )?
            .execute([sql_limit(self.retention.max_messages)])?;
        self.conn
            .prepare_cached(
                "DELETE FROM messages WHERE seq <=
                 (SELECT seq FROM
                    (SELECT seq, sum(length(envelope)) OVER (ORDER BY seq DESC) AS total
                     FROM messages)
                  WHERE total > ?1 ORDER BY seq DESC LIMIT 1)",
            )?
            .execute([sql_limit(self.retention.max_bytes)])?;
        Ok(())
    }
}
