//! The counts `haven status` shows (messages by state, incidents, alerts by state), kept by
//! triggers as the tables change (migration 0041) rather than counted from every row each time
//! they are asked: the status, the digest, the metrics and systemd's status line read a handful
//! of rows at any size. On SQLite each count is one row. On PostgreSQL each statement adds a
//! row of its own (so concurrent writers never queue on a shared row), and [`Store::fold_tallies`]
//! folds them into one per count from time to time.

use super::{Result, Store};

/// Every count, added up.
pub(super) const TALLIES: &str = "SELECT tally, state, CAST(SUM(n) AS BIGINT) AS n FROM tallies GROUP BY tally, state";

/// Folds PostgreSQL's tally rows into one per count, in one statement: rows a writer adds
/// meanwhile are not yet visible to it, so they stay to be folded next time, and two folds at
/// once each fold only what the other has not.
const FOLD: &str = "WITH gone AS (DELETE FROM tallies RETURNING tally, state, n) \
     INSERT INTO tallies (tally, state, n) SELECT tally, state, SUM(n) FROM gone GROUP BY tally, state HAVING SUM(n) <> 0";

impl Store {
    /// On PostgreSQL, folds the tally rows the triggers have added into one per count; returns
    /// how many rows there were. Nothing to do on SQLite (0).
    pub async fn fold_tallies(&self) -> Result<u64> {
        let Store::Postgres(pool) = self else { return Ok(0) };
        let mut tx = pool.begin().await?;
        let rows: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM tallies").fetch_one(&mut *tx).await?;
        sqlx::query(FOLD).execute(&mut *tx).await?;
        tx.commit().await?;
        Ok(rows as u64)
    }
}
