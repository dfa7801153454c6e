//! PostgreSQL's planner statistics, gathered by Haven itself as filing grows its tables.
//!
//! PostgreSQL plans a query from its statistics of each table. Autovacuum gathers them as a
//! table grows, but it can be switched off (the PostgreSQL of the development machine has it
//! off), and without statistics PostgreSQL planned filing's look-up of the batch's pupils'
//! earlier incidents as a sequential scan of every incident: filing slowed in step with the
//! database. Haven asks for `ANALYZE` of the tables filing reads whenever the incidents have
//! grown by a tenth (and at least a thousand) since the statistics were last gathered, in the
//! background, so no batch waits for it. And when the daemon starts it gathers them for any of
//! its tables that has rows but no statistics at all: a database restored from a dump or filled
//! by an import before autovacuum (if it runs) has looked at it, where PostgreSQL planned even
//! the look-up of a chronology page's hundred incidents by their keys as a scan of every link.
//!
//! Where autovacuum is off, nothing else sets a table's visibility map either, and without it an
//! index that holds all a query needs still visits every row it returns: a pupil's 500 links
//! took 509 pages instead of 13, and `haven status` visited every message it counted. So where
//! the server's `autovacuum` is off, Haven runs `VACUUM (ANALYZE)` where it would run `ANALYZE`
//! (a vacuum of tables that are mostly added to reads only the pages added since the last).
//! Where autovacuum runs, Haven leaves the vacuuming to it.
//!
//! SQLite needs none of this: its plans are kept to their indexes without statistics
//! (`tests/plans.rs`).

use super::{Result, Store};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

/// The tables filing's look-ups read, and the status counts it adds to.
const FILING_READS: &str = "incidents, incident_pupils, messages, tallies";
/// Each of Haven's tables that holds rows but of which PostgreSQL keeps no statistics
/// (`pg_stats` is readable by the table's owner, `pg_statistic` only by a superuser), quoted.
const WITHOUT_STATISTICS: &str = "SELECT format('%I', c.relname) FROM pg_class c \
     WHERE c.relkind = 'r' AND c.relnamespace = current_schema()::regnamespace AND pg_relation_size(c.oid) > 0 \
     AND NOT EXISTS (SELECT 1 FROM pg_stats s WHERE s.schemaname = current_schema() AND s.tablename = c.relname) \
     ORDER BY c.relname";
/// Messages filed before statistics are gathered again, at the least.
const AT_LEAST: u64 = 1_000;

/// When the statistics were last gathered, for one filer.
#[derive(Debug, Default)]
pub struct Statistics {
    /// Messages filed by this process since the statistics were last gathered (or it started).
    filed: AtomicU64,
    /// Incidents PostgreSQL counted when it last gathered them (0: never, or unknown).
    counted: Arc<AtomicU64>,
    /// A gathering is under way.
    running: Arc<AtomicBool>,
}

/// How Haven gathers statistics on this server: `VACUUM (ANALYZE)` where autovacuum is off
/// (Haven sets the visibility map itself), `ANALYZE` where it runs.
async fn gather(pool: &sqlx::PgPool) -> Result<&'static str> {
    let autovacuum: String = sqlx::query_scalar("SELECT current_setting('autovacuum')").fetch_one(pool).await?;
    Ok(if autovacuum == "on" { "ANALYZE" } else { "VACUUM (ANALYZE)" })
}

impl Store {
    /// On PostgreSQL, gathers the statistics of every one of Haven's tables that has rows but
    /// none; returns how many tables it analysed (none on SQLite).
    pub async fn gather_missing_statistics(&self) -> Result<usize> {
        let Store::Postgres(pool) = self else { return Ok(0) };
        let tables: Vec<String> = sqlx::query_scalar(WITHOUT_STATISTICS).fetch_all(pool).await?;
        let how = gather(pool).await?;
        for table in &tables {
            // A table's name from the catalogue, quoted by `format('%I')`.
            sqlx::raw_sql(sqlx::AssertSqlSafe(format!("{how} {table}"))).execute(pool).await?;
        }
        Ok(tables.len())
    }

    /// Counts `filed` more messages and, on PostgreSQL, starts gathering statistics in the
    /// background once the tables have grown by a tenth since they were last gathered.
    /// Returns whether it started.
    pub fn note_filed(&self, stats: &Statistics, filed: u64) -> bool {
        let Store::Postgres(pool) = self else { return false };
        let since = stats.filed.fetch_add(filed, Ordering::Relaxed) + filed;
        if since < AT_LEAST.max(stats.counted.load(Ordering::Relaxed) / 10) || stats.running.swap(true, Ordering::AcqRel) {
            return false;
        }
        stats.filed.store(0, Ordering::Relaxed);
        let (pool, running, counted) = (pool.clone(), stats.running.clone(), stats.counted.clone());
        // In the background: the batch that called does not wait for it.
        tokio::spawn(async move {
            let result: Result<u64> = async {
                // Filing's statements have added their rows to the status counts: fold them
                // (and vacuum away the folded rows, below, where autovacuum is off). The counts
                // are right folded or not, so a failed fold does not stop the statistics.
                if let Err(e) = Store::Postgres(pool.clone()).fold_tallies().await {
                    tracing::warn!(error = %e, "could not fold the status counts; they stay right, and are folded next time");
                }
                let how = gather(&pool).await?;
                sqlx::raw_sql(sqlx::AssertSqlSafe(format!("{how} {FILING_READS}"))).execute(&pool).await?;
                let n: f32 = sqlx::query_scalar("SELECT reltuples FROM pg_class WHERE relname = 'incidents'").fetch_one(&pool).await?;
                Ok(n.max(0.0) as u64)
            }
            .await;
            match result {
                Ok(n) => counted.store(n, Ordering::Relaxed),
                Err(e) => {
                    tracing::warn!(error = %e, "could not gather PostgreSQL's statistics; queries may be planned badly until autovacuum does")
                }
            }
            running.store(false, Ordering::Release);
        });
        true
    }
}
