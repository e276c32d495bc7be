//! The message history: the last [`MAX_HISTORY`] broadcast envelopes a
//! node delivered, in the address book's database, for `history` and for
//! catch-up after a restart.
//!
//! Envelopes are kept once per message id, in order of arrival, and the
//! oldest are dropped in batches of [`PRUNE_EVERY`] new rows.

use gossipnet_proto::{MessageId, NodeId};
use rusqlite::params;

use super::schema::{sql_limit, to_sql};
use super::{AddressBook, StoreError, MAX_HISTORY, PRUNE_EVERY};

impl AddressBook {
    /// How many messages the history holds.
    #[cfg(test)]
    pub fn history_len(&self) -> Result<usize, StoreError> {
        self.count("SELECT count(*) FROM messages")
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
    pub(super) fn prune_history(&mut self) -> Result<(), StoreError> {
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
