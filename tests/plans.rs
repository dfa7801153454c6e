//! The read paths stay proportional to what they return: each engine is asked (`EXPLAIN`) how
//! it would run every query of `haven::store::read_queries` — the chronology, outstanding
//! outcomes, messages by state, status counts, digests and the scheduler's passes, as the store
//! runs them — and no plan may read a large table (incidents, their pupils, attachments and
//! actions, messages, the outbox, the audit log) from end to end.
//!
//! SQLite plans an empty table as if it were large (it has no statistics), so its plan is the
//! one a big database gets. PostgreSQL is asked with sequential scans switched off, so it
//! shows an index whenever one can serve; a plan that still reads a whole table, or walks a
//! whole index with no condition on it, has no index to use. Counting a whole table (`haven
//! status`) may walk an index from end to end, never the rows; an ordered walk may too when a
//! LIMIT stops it.

mod support;

use haven::store::{PlannedQuery, read_queries};
use sqlx::{Connection, Row};
use support::db::{Backend, TestDb};

/// Tables that grow with the years: none may be read from end to end.
const LARGE: &[&str] = &[
    "incidents",
    "incident_pupils",
    "attachments",
    "actions",
    "action_rungs",
    "messages",
    "outbox",
    "audit_log",
    // A trust's roll: a search must not open (or even read) every pupil.
    "pupils",
    "pupil_name_tokens",
];

/// What `sql` calls each table it reads: alias (or table name) → table.
fn tables_by_name(sql: &str) -> Vec<(String, String)> {
    let words: Vec<String> =
        sql.split(|c: char| c.is_whitespace() || c == '(' || c == ')' || c == ',').filter(|w| !w.is_empty()).map(str::to_string).collect();
    let keyword = |w: &str| {
        ["ON", "WHERE", "JOIN", "LEFT", "INNER", "ORDER", "GROUP", "LIMIT", "AND", "AS"].contains(&w.to_ascii_uppercase().as_str())
    };
    let mut out = Vec::new();
    for (i, w) in words.iter().enumerate() {
        if (w.eq_ignore_ascii_case("FROM") || w.eq_ignore_ascii_case("JOIN"))
            && let Some(table) = words.get(i + 1)
        {
            let table = table.to_ascii_lowercase();
            let alias = words.get(i + 2).filter(|a| !keyword(a)).cloned().unwrap_or_else(|| table.clone());
            out.push((alias, table));
        }
    }
    out
}

/// The problems with SQLite's plan of `q`: one line per full scan of a large table.
async fn sqlite_problems(url: &str, q: &PlannedQuery) -> Vec<String> {
    let mut conn = sqlx::SqliteConnection::connect(url).await.expect("open the SQLite test database");
    let rows = sqlx::query(sqlx::AssertSqlSafe(format!("EXPLAIN QUERY PLAN {}", q.with_values())))
        .fetch_all(&mut conn)
        .await
        .unwrap_or_else(|e| panic!("EXPLAIN QUERY PLAN of {}: {e}", q.name));
    let names = tables_by_name(&q.sql);
    let limited = q.sql.contains(" LIMIT ");
    let mut problems = Vec::new();
    for r in rows {
        let detail: String = r.get("detail");
        let Some(rest) = detail.strip_prefix("SCAN ") else { continue };
        let name = rest.split_whitespace().next().unwrap_or_default();
        let Some((_, table)) = names.iter().find(|(alias, _)| alias == name) else { continue };
        if !LARGE.contains(&table.as_str()) {
            continue;
        }
        let by_index = rest.contains("USING INDEX") || rest.contains("USING COVERING INDEX");
        if !by_index || !(q.counts_all || limited) {
            problems.push(format!("{}: {detail}", q.name));
        }
    }
    problems
}

/// One scan node of a PostgreSQL plan: its kind, table, index, and whether a condition
/// narrows the index.
struct PgScan {
    kind: String,
    table: String,
    index: String,
    narrowed: bool,
}

/// The scan nodes of a plan in PostgreSQL's text form, and whether a Limit stops it.
fn pg_scans(lines: &[String]) -> (Vec<PgScan>, bool) {
    let mut scans: Vec<PgScan> = Vec::new();
    let mut limited = false;
    for line in lines {
        let node = line.trim_start().trim_start_matches("->").trim_start();
        let head = node.split("  (").next().unwrap_or_default();
        if head.starts_with("Limit") {
            limited = true;
        }
        if let Some(cond) = node.strip_prefix("Index Cond:") {
            if let Some(last) = scans.last_mut() {
                last.narrowed = !cond.trim().is_empty();
            }
            continue;
        }
        for kind in ["Seq Scan", "Index Only Scan", "Index Scan", "Bitmap Heap Scan", "Bitmap Index Scan"] {
            let Some(rest) = head.strip_prefix(kind) else { continue };
            let rest = rest.trim_start_matches(" Backward");
            let (index, on) = match rest.trim_start().strip_prefix("using ") {
                Some(r) => r.split_once(" on ").map_or((r, ""), |(i, t)| (i, t)),
                None => ("", rest.trim_start().strip_prefix("on ").unwrap_or_default()),
            };
            let table = on.split_whitespace().next().unwrap_or_default();
            scans.push(PgScan { kind: kind.into(), table: table.into(), index: index.into(), narrowed: false });
            break;
        }
    }
    (scans, limited)
}

/// The problems with PostgreSQL's plan of `q`, sequential scans switched off.
async fn postgres_problems(conn: &mut sqlx::PgConnection, q: &PlannedQuery) -> Vec<String> {
    let lines: Vec<String> = sqlx::query_scalar(sqlx::AssertSqlSafe(format!("EXPLAIN {}", q.with_values())))
        .fetch_all(&mut *conn)
        .await
        .unwrap_or_else(|e| panic!("EXPLAIN of {}: {e}", q.name));
    let (scans, limited) = pg_scans(&lines);
    let mut problems = Vec::new();
    for s in scans {
        if !LARGE.contains(&s.table.as_str()) {
            continue;
        }
        let whole = match s.kind.as_str() {
            "Seq Scan" => true,
            "Bitmap Heap Scan" | "Bitmap Index Scan" => false,
            _ => !(s.narrowed || q.counts_all || limited),
        };
        if whole {
            problems.push(format!("{}: {} on {} {}\n{}", q.name, s.kind, s.table, s.index, lines.join("\n")));
        }
    }
    problems
}

async fn no_read_path_scans_a_large_table(backend: Backend) {
    let db = TestDb::new(backend).await;
    let queries = read_queries();
    assert!(queries.len() >= 20, "every read path is listed: {}", queries.len());
    let mut problems = Vec::new();
    match backend {
        Backend::Sqlite => {
            for q in &queries {
                problems.extend(sqlite_problems(&db.url, q).await);
            }
        }
        Backend::Postgres => {
            let mut conn = sqlx::PgConnection::connect(&db.url).await.expect("connect to the test database");
            sqlx::query("SET enable_seqscan = off").execute(&mut conn).await.unwrap();
            for q in &queries {
                problems.extend(postgres_problems(&mut conn, q).await);
            }
            conn.close().await.ok();
        }
    }
    assert!(problems.is_empty(), "read paths that scan a whole large table:\n{}", problems.join("\n"));
    db.cleanup().await;
}

/// The check itself catches a full scan: a query with no index to use is reported.
async fn a_full_scan_is_caught(backend: Backend) {
    let db = TestDb::new(backend).await;
    let q = PlannedQuery {
        name: "by category",
        sql: "SELECT id FROM incidents WHERE category = $1".into(),
        values: vec!["'Bullying'"],
        counts_all: false,
    };
    let problems = match backend {
        Backend::Sqlite => sqlite_problems(&db.url, &q).await,
        Backend::Postgres => {
            let mut conn = sqlx::PgConnection::connect(&db.url).await.expect("connect to the test database");
            sqlx::query("SET enable_seqscan = off").execute(&mut conn).await.unwrap();
            let p = postgres_problems(&mut conn, &q).await;
            conn.close().await.ok();
            p
        }
    };
    assert_eq!(problems.len(), 1, "the unindexed query is reported: {problems:?}");
    db.cleanup().await;
}

/// The chronology's queries of a pupil with 500 incidents in a school of 100,000, on each
/// engine's own statistics (`ANALYZE`) and with every plan open to it: a plan the engine may
/// prefer over its index (PostgreSQL chose a hash join over every pupil link for the old
/// self-join once it knew the table's size) is caught here, where the structural check above,
/// with sequential scans off, cannot see it.
async fn the_chronology_keeps_to_its_indexes_with_real_statistics(backend: Backend) {
    let db = TestDb::new(backend).await;
    // Eight pupils; pupil 7 has every 200th incident, the others share the rest; one attachment
    // per third incident, an action on every fourth (every other one with its outcome). Written
    // straight in: this checks plans, not filing. A sealed message body of a realistic size
    // (1 KB): the width of a row is what an engine weighs against reading the table end to end.
    let body = format!("'{}'", "s".repeat(1000));
    let incidents = format!(
        "WITH RECURSIVE g(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM g WHERE i < 100000) \
         INSERT INTO incidents (id, occurred_us, recorded_us, recorded_by, record_kind, category, priority, visibility, body_text) \
         SELECT i, i * CAST(60000000 AS BIGINT), i * CAST(60000000 AS BIGINT), 1, 'email', 'Pastoral issue', 'normal', 'dsl-team', {body} FROM g"
    );
    let fill = [
        "INSERT INTO staff (id, first_name, last_name, active, updated_us) VALUES (1, 'f', 'l', TRUE, 0)",
        "WITH RECURSIVE g(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM g WHERE i < 8) \
         INSERT INTO pupils (id, upn, first_name, last_name, updated_us) SELECT i, 'U' || i, 'f', 'l', 0 FROM g",
        &incidents,
        "INSERT INTO incident_pupils (incident_id, pupil_id, role, how) \
         SELECT id, CASE WHEN id % 200 = 0 THEN 7 ELSE 1 + id % 6 END, 'subject', 'plan' FROM incidents",
        "INSERT INTO blobs (sha256, size, data) VALUES ('0', 0, '')",
        "INSERT INTO attachments (incident_id, filename, content_type, size, sha256, inline, tnef) \
         SELECT id, 'f', 'text/plain', 1, '0', FALSE, FALSE FROM incidents WHERE id % 3 = 0",
        "INSERT INTO actions (incident_id, owner, created_us, due_us, outcome, outcome_by, outcome_us) \
         SELECT id, 1, occurred_us, occurred_us + 86400000000, CASE WHEN id % 8 = 0 THEN 'NFA' END, \
         CASE WHEN id % 8 = 0 THEN 1 END, CASE WHEN id % 8 = 0 THEN occurred_us + 3600000000 END FROM incidents WHERE id % 4 = 0",
        "ANALYZE",
    ];
    let jane: Vec<i64> = (1..=500).map(|i| i * 200).collect();
    let queries = [
        read_queries().into_iter().find(|q| q.name == "chronology").expect("the chronology is a read path"),
        PlannedQuery { name: "chronology pupils", sql: haven::store::chronology_pupils_sql(&jane), values: vec![], counts_all: false },
        PlannedQuery {
            name: "chronology attachments",
            sql: haven::store::chronology_attachments_sql(&jane),
            values: vec!["FALSE"],
            counts_all: false,
        },
        PlannedQuery { name: "chronology outcomes", sql: haven::store::chronology_outcomes_sql(&jane), values: vec![], counts_all: false },
        // A page: the latest hundred of her entries, read whole.
        PlannedQuery {
            name: "chronology entries",
            sql: haven::store::chronology_entries_sql(&jane[400..]),
            values: vec!["7"],
            counts_all: false,
        },
    ];
    let mut problems = Vec::new();
    match backend {
        Backend::Sqlite => {
            let mut conn = sqlx::SqliteConnection::connect(&db.url).await.expect("open the SQLite test database");
            for sql in fill {
                sqlx::query(sqlx::AssertSqlSafe(sql)).execute(&mut conn).await.unwrap_or_else(|e| panic!("{sql}: {e}"));
            }
            conn.close().await.ok();
            for q in &queries {
                problems.extend(sqlite_problems(&db.url, q).await);
            }
        }
        Backend::Postgres => {
            let mut conn = sqlx::PgConnection::connect(&db.url).await.expect("connect to the test database");
            for sql in fill {
                sqlx::query(sqlx::AssertSqlSafe(sql)).execute(&mut conn).await.unwrap_or_else(|e| panic!("{sql}: {e}"));
            }
            for q in &queries {
                problems.extend(postgres_problems(&mut conn, q).await);
            }
            conn.close().await.ok();
        }
    }
    assert!(problems.is_empty(), "the chronology reads a whole large table once the engine knows its size:\n{}", problems.join("\n"));
    db.cleanup().await;
}

/// Filing asks, for each batch, which earlier messages have the batch's Message-IDs: that must
/// go by the Message-ID index. Asked with the state beside the list, SQLite took the state
/// index and read every filed message for every batch (filing slowed as the database grew,
/// several-fold by 300,000 messages in `cargo bench --bench scale`); the state is now checked on
/// the rows found.
async fn filing_finds_earlier_messages_by_their_message_id(backend: Backend) {
    let db = TestDb::new(backend).await;
    let sql = format!("{}'<a@mail.example>', '<b@mail.example>') ORDER BY id", haven::store::ORIGINALS_BY_MESSAGE_ID);
    let plan: Vec<String> = match backend {
        Backend::Sqlite => {
            let mut conn = sqlx::SqliteConnection::connect(&db.url).await.expect("open the SQLite test database");
            sqlx::query(sqlx::AssertSqlSafe(format!("EXPLAIN QUERY PLAN {sql}")))
                .fetch_all(&mut conn)
                .await
                .unwrap()
                .iter()
                .map(|r| r.get("detail"))
                .collect()
        }
        Backend::Postgres => {
            let mut conn = sqlx::PgConnection::connect(&db.url).await.expect("connect to the test database");
            sqlx::query("SET enable_seqscan = off").execute(&mut conn).await.unwrap();
            let rows = sqlx::query(sqlx::AssertSqlSafe(format!("EXPLAIN {sql}"))).fetch_all(&mut conn).await.unwrap();
            rows.iter().map(|r| r.get::<String, _>(0)).collect()
        }
    };
    assert!(plan.iter().any(|l| l.contains("messages_message_id")), "not by the Message-ID index: {plan:?}");
    assert!(!plan.iter().any(|l| l.contains("messages_state_id")), "by the state index: {plan:?}");
    db.cleanup().await;
}

backend_tests!(
    no_read_path_scans_a_large_table,
    a_full_scan_is_caught,
    the_chronology_keeps_to_its_indexes_with_real_statistics,
    filing_finds_earlier_messages_by_their_message_id
);
