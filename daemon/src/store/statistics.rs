//! PostgreSQL's planner statistics, gathered by Haven itself as filing grows its tables.
//!
//! PostgreSQL plans a query from its statistics of each table. Autovacuum gathers them as a
//! table grows, but it can be switched off (the PostgreSQL of the development machine has it
//! off), and without statistics PostgreSQL planned filing's look-up of the batch's pupils'
//! earlier incidents as a sequential scan of every incident: filing slowed in step with the
//! database. Haven asks for `ANALYZE` of the tables filing reads whenever the incidents have
//! grown by a tenth (and at least a thousand) since the statistics were last gathered, in the
//! background, so no batch waits for it. SQLite needs none of this: its plans are kept to their
//! indexes without statistics (`tests/plans.rs`).

use super::{Result, Store};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

/// The tables filing's look-ups read.
const ANALYZE: &str = "ANALYZE incidents, incident_pupils, messages";
/// Messages filed before statistics are gathered again, at the least.
const AT_LEAST: u64 = 1_000;

/// When the statistics were last gathered, for one filer.
#[derive(Debug, Default)]
pub struct Statistics {
    /// Messages filed by this process since the statistics were last gathered (or it started).
    filed: AtomicU64,
    /// Incidents PostgreSQL counted when it last gathered them (0: never, or unknown).
    counted: Arc<AtomicU64>,
    /// An `ANALYZE` is under way.
    running: Arc<AtomicBool>,
}

impl Store {
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
                sqlx::raw_sql(ANALYZE).execute(&pool).await?;
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
