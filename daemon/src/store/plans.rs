//! The read paths whose cost must follow what they return, not the size of the database, as
//! the exact SQL the store runs with example values: `tests/plans.rs` asks each engine how it
//! would run each one (`EXPLAIN`) and fails on a full scan of a large table.
//!
//! Nothing here runs a query; it only names them.

use super::{audit, outbox, outcomes, pupil_search, read, schedule, tallies};

/// One read path: its SQL as the store runs it, and example values for its `$N` placeholders
/// (SQL literals, `$1` first).
#[doc(hidden)]
#[derive(Debug, Clone)]
pub struct PlannedQuery {
    pub name: &'static str,
    pub sql: String,
    pub values: Vec<&'static str>,
    /// A count over a whole table (`haven status`): it may walk an index from end to end,
    /// never the table's rows.
    pub counts_all: bool,
}

impl PlannedQuery {
    /// The SQL with the example values written in, for `EXPLAIN`.
    pub fn with_values(&self) -> String {
        let mut sql = self.sql.clone();
        // Highest first, so `$1` does not eat the start of `$10`.
        for (i, v) in self.values.iter().enumerate().rev() {
            sql = sql.replace(&format!("${}", i + 1), v);
        }
        sql
    }
}

/// Every read path the issue names: the chronology, outstanding outcomes, messages by state,
/// status counts, digests and the scheduler's passes; and finding a pupil by UPN or name.
#[doc(hidden)]
pub fn read_queries() -> Vec<PlannedQuery> {
    let q =
        |name, sql: &str, values: &[&'static str]| PlannedQuery { name, sql: sql.to_string(), values: values.to_vec(), counts_all: false };
    let now = "1765000000000000";
    let day_ago = "1764913600000000";
    vec![
        q("chronology", read::CHRONOLOGY, &["7"]),
        q("chronology pupils", &read::chronology_pupils_sql(4), &["7", "19", "23", "23"]),
        q("chronology entries", &read::chronology_entries_sql(4), &["7", "7", "19", "23", "23"]),
        q("chronology attachments", &read::chronology_attachments_sql(4), &["FALSE", "7", "19", "23", "23"]),
        q("chronology outcomes", &read::chronology_outcomes_sql(4), &["7", "19", "23", "23"]),
        q("messages by state", read::MESSAGES_IN_STATE, &["'quarantined'"]),
        q("status: tallies", tallies::TALLIES, &[]),
        // Counts every open action: walks the open-actions (partial) index, never the closed ones.
        PlannedQuery { counts_all: true, ..q("status: outcomes", read::STATUS_OUTCOMES, &[now]) },
        q("status: last filed", read::STATUS_LAST_FILED, &[]),
        q("outstanding outcomes", schedule::OPEN_ACTIONS, &[now]),
        q("outstanding outcomes: pupils", schedule::OPEN_ACTION_PUPILS, &[now]),
        q("outcome open", outcomes::OUTCOME_OPEN, &["7"]),
        q("owns the action", outcomes::OWNS_ACTION, &["7", "3"]),
        q("alerted to", outcomes::ALERTED_TO, &["7"]),
        q("digest: incidents", schedule::LIVE_INCIDENTS_BETWEEN, &[day_ago, now]),
        q("digest: their pupils", schedule::LIVE_INCIDENT_PUPILS_BETWEEN, &[day_ago, now]),
        q("digest: historical", schedule::HISTORICAL_BETWEEN, &[day_ago, now]),
        q("digest: dead-lettered", &schedule::dead_lettered_sql(), &[day_ago, now]),
        q("digest: audit head", audit::AUDIT_HEAD, &[]),
        q("audit verify: digests", audit::DIGEST_SQL, &["1", "1000"]),
        q("scheduler: due rungs", schedule::DUE_RUNGS, &[now, "100"]),
        q("outbox: emails due", outbox::DUE_EMAILS, &[now, "0", "100"]),
        q("scheduler: next rung", schedule::NEXT_RUNG_DUE, &[]),
        q("pupil by UPN", pupil_search::PUPIL_BY_UPN, &["'0123456789abcdef0123456789abcdef'"]),
        q(
            "pupils by name words",
            &pupil_search::pupils_by_words_sql(2, 50),
            &["'0123456789abcdef0123456789abcdef'", "'fedcba9876543210fedcba9876543210'"],
        ),
    ]
}
