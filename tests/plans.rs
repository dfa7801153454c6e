//! The read paths stay proportional to what they return: each engine is asked (`EXPLAIN`) how
//! it would run every query of `haven::store::read_queries` — the chronology, outstanding
//! outcomes, messages by state, status counts, digests and the scheduler's passes, as the store
//! runs them — and no plan may read a large table (incidents, their pupils, attachments and
//! actions, messages, the outbox, the audit log) from end to end.
//!
//! SQLite plans an empty table as if it were large (it has no statistics), so its plan is the
//! one a big database gets. PostgreSQL is asked with sequential scans switched off, so it
//! shows an index whenever one can serve; a plan that still reads a whole table, or walks a
//! whole index with no condition on it, has no index to use. Counting the open actions may walk
//! their (partial) index from end to end, never the rows; an ordered walk may too when a LIMIT
//! stops it. `haven status`'s other counts are kept as the tables change, not counted: the
//! last test here checks that they are what counting would say.

mod support;

use haven::store::{PlannedQuery, Store, read_queries};
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
            let mut table = on.split_whitespace().next().unwrap_or_default().to_string();
            let mut index = index.to_string();
            if kind == "Bitmap Index Scan" {
                // "on" names the index; the table is its Bitmap Heap Scan's, the line above.
                index = table.clone();
                table = scans.iter().rev().find(|s| s.kind == "Bitmap Heap Scan").map(|s| s.table.clone()).unwrap_or_default();
            }
            scans.push(PgScan { kind: kind.into(), table, index, narrowed: false });
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
            // Judged by its bitmap index scans: one with no condition reads the whole index.
            "Bitmap Heap Scan" => false,
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
            // Verification reads the digest's columns from their own index, not each
            // incident's page-wide row (migration 0042).
            let digests = queries.iter().find(|q| q.name == "audit verify: digests").expect("the verification's query is listed");
            let mut conn = sqlx::SqliteConnection::connect(&db.url).await.expect("open the SQLite test database");
            let plan: Vec<String> = sqlx::query(sqlx::AssertSqlSafe(format!("EXPLAIN QUERY PLAN {}", digests.with_values())))
                .fetch_all(&mut conn)
                .await
                .unwrap()
                .iter()
                .map(|r| r.get("detail"))
                .collect();
            assert!(
                plan.iter().any(|l| l.contains("COVERING INDEX incidents_light")),
                "verification reads the incidents' rows, not the digest index: {plan:#?}"
            );
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
    // Her 500 incidents' keys, as the store binds them (padded to 512); the page's latest 100
    // (padded to 128).
    let keys = |ids: Vec<i64>| -> Vec<&'static str> {
        haven::store::padded(&ids).iter().map(|k| &*Box::leak(k.to_string().into_boxed_str())).collect()
    };
    let jane = keys((1..=500).map(|i| i * 200).collect());
    let page = keys((401..=500).map(|i| i * 200).collect());
    let after = |first: &'static str, keys: &[&'static str]| [vec![first], keys.to_vec()].concat();
    let queries = [
        read_queries().into_iter().find(|q| q.name == "chronology").expect("the chronology is a read path"),
        PlannedQuery {
            name: "chronology pupils",
            sql: haven::store::chronology_pupils_sql(jane.len()),
            values: jane.clone(),
            counts_all: false,
        },
        PlannedQuery {
            name: "chronology attachments",
            sql: haven::store::chronology_attachments_sql(jane.len()),
            values: after("FALSE", &jane),
            counts_all: false,
        },
        PlannedQuery {
            name: "chronology outcomes",
            sql: haven::store::chronology_outcomes_sql(jane.len()),
            values: jane.clone(),
            counts_all: false,
        },
        // A page: the latest hundred of her entries, read whole.
        PlannedQuery {
            name: "chronology entries",
            sql: haven::store::chronology_entries_sql(page.len()),
            values: after("7", &page),
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

/// Runs each statement of `sql` (no `;` inside one) on `store`.
async fn run_sql(store: &Store, sql: &[&str]) {
    for s in sql {
        let q = sqlx::AssertSqlSafe(s.to_string());
        match store {
            Store::Sqlite(p) => sqlx::query(q).execute(p).await.map(|_| ()),
            Store::Postgres(p) => sqlx::query(q).execute(p).await.map(|_| ()),
        }
        .unwrap_or_else(|e| panic!("{s}: {e}"));
    }
}

/// Messages by state, incidents and alerts by state, counted from the tables themselves.
async fn counted(store: &Store) -> (Vec<(String, i64)>, i64, Vec<(String, i64)>) {
    let by_state = |table: &str| format!("SELECT state, COUNT(*) AS n FROM {table} GROUP BY state ORDER BY state");
    async fn pairs(store: &Store, sql: String) -> Vec<(String, i64)> {
        let sql = sqlx::AssertSqlSafe(sql);
        match store {
            Store::Sqlite(p) => sqlx::query_as(sql).fetch_all(p).await.unwrap(),
            Store::Postgres(p) => sqlx::query_as(sql).fetch_all(p).await.unwrap(),
        }
    }
    let incidents = pairs(store, "SELECT 'incidents', COUNT(*) FROM incidents".into()).await[0].1;
    (pairs(store, by_state("messages")).await, incidents, pairs(store, by_state("outbox")).await)
}

/// The same three as `haven status` reports them (its kept counts), states with none left out.
async fn reported(store: &Store) -> (Vec<(String, i64)>, i64, Vec<(String, i64)>) {
    let s = store.status(chrono::Utc::now()).await.expect("status");
    let mut messages: Vec<(String, i64)> =
        s.messages.iter().filter(|(_, n)| **n > 0).map(|(st, n)| (st.as_str().to_string(), *n as i64)).collect();
    messages.sort();
    let outbox = [("dead", s.outbox_dead), ("pending", s.outbox_pending), ("sent", s.outbox_sent)];
    (messages, s.incidents as i64, outbox.iter().filter(|(_, n)| *n > 0).map(|(st, n)| (st.to_string(), *n as i64)).collect())
}

/// Messages `from..to`, in states by their number (most filed), written in one statement.
fn messages(from: u32, to: u32) -> String {
    format!(
        "WITH RECURSIVE g(i) AS (SELECT {from} UNION ALL SELECT i + 1 FROM g WHERE i < {to}) \
         INSERT INTO messages (source, origin, received_us, size, state, reason) \
         SELECT 'file', 'tally/' || i, i, 10, CASE WHEN i % 7 = 0 THEN 'awaiting_triage' WHEN i % 11 = 0 THEN 'quarantined' \
         WHEN i % 13 = 0 THEN 'duplicate' ELSE 'filed' END, 'r' FROM g"
    )
}

/// `haven status` reads counts that triggers keep (migration 0041) instead of counting every
/// row: after rows are written many to a statement and one at a time, moved between states,
/// deleted, rolled back, and written by several connections at once while PostgreSQL's counts
/// are folded, the status says what counting the tables says. And the migration counts what a
/// database already holds when it is applied.
async fn status_counts_kept_as_rows_change_are_the_tables_own(backend: Backend) {
    let db = TestDb::new(backend).await;
    let store = &db.store;
    assert_eq!(reported(store).await, counted(store).await, "an empty database");
    let incidents = "WITH RECURSIVE g(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM g WHERE i < 400) \
         INSERT INTO incidents (occurred_us, recorded_us, record_kind, category, priority, visibility, body_text) \
         SELECT i, i, 'email', 'Pastoral issue', 'normal', 'dsl-team', 's' FROM g";
    let outbox = "WITH RECURSIVE g(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM g WHERE i < 300) \
         INSERT INTO outbox (purpose, recipient, email_message_id, subject, body, created_us, state, next_attempt_us) \
         SELECT 'alert', 'dsl@school.example', 'tally-' || i, 's', 'b', i, 'pending', i FROM g";
    run_sql(
        store,
        &[
            &messages(1, 2000),
            incidents,
            outbox,
            "INSERT INTO messages (source, origin, received_us, size, state, reason) VALUES ('file', 'one', 1, 1, 'ignored', 'r')",
            // Triage answered, a quarantine released, alerts sent, given up on, retried (no change of state).
            "UPDATE messages SET state = 'filed' WHERE state = 'awaiting_triage' AND id % 2 = 0",
            "UPDATE messages SET state = 'filed' WHERE id = (SELECT MIN(id) FROM messages WHERE state = 'quarantined')",
            "UPDATE outbox SET state = 'sent', sent_us = 5 WHERE id <= 200",
            "UPDATE outbox SET state = 'dead' WHERE id > 280",
            "UPDATE outbox SET attempts = attempts + 1 WHERE state = 'pending'",
            // Disposal.
            "DELETE FROM incidents WHERE id % 4 = 0",
            "DELETE FROM outbox WHERE id % 10 = 0",
            "DELETE FROM messages WHERE id % 9 = 0",
        ],
    )
    .await;
    assert_eq!(reported(store).await, counted(store).await, "after writes, changes of state and deletes");

    // Several writers at once, a third of them rolled back, while the counts are folded.
    let writers: Vec<_> = (0..4u32)
        .map(|w| {
            let store = store.clone();
            tokio::spawn(async move {
                for round in 0..15u32 {
                    let first = 10_000 + (w * 100 + round) * 50;
                    let sql = [messages(first, first + 49), format!("UPDATE messages SET state = 'filed' WHERE origin = 'tally/{first}'")];
                    let commit = round % 3 != 0;
                    on_store(&store, &sql, commit).await;
                }
            })
        })
        .collect();
    let folding = {
        let store = store.clone();
        tokio::spawn(async move {
            for _ in 0..30 {
                store.fold_tallies().await.expect("fold the counts");
            }
        })
    };
    for w in writers {
        w.await.unwrap();
    }
    folding.await.unwrap();
    assert_eq!(reported(store).await, counted(store).await, "after concurrent writers and folds");
    if let Store::Postgres(p) = store {
        run_sql(store, &[&messages(20_000, 20_099), "UPDATE outbox SET state = 'pending' WHERE state = 'dead'"]).await;
        let before = store.fold_tallies().await.unwrap();
        assert!(before > 9, "each statement added its own row: {before}");
        let after: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM tallies").fetch_one(p).await.unwrap();
        assert!(after <= 9, "folded into one row per count: {after} rows");
        assert_eq!(reported(store).await, counted(store).await, "after folding");
    }

    // The migration applied to a database that already holds rows counts them.
    let (migration, undo) = match backend {
        Backend::Sqlite => (
            include_str!("../migrations/sqlite/0041_status_tallies.sql"),
            vec![
                "DROP TRIGGER tally_messages_added",
                "DROP TRIGGER tally_messages_removed",
                "DROP TRIGGER tally_messages_changed",
                "DROP TRIGGER tally_outbox_added",
                "DROP TRIGGER tally_outbox_removed",
                "DROP TRIGGER tally_outbox_changed",
                "DROP TRIGGER tally_incidents_added",
                "DROP TRIGGER tally_incidents_removed",
                "DROP TABLE tallies",
            ],
        ),
        Backend::Postgres => (
            include_str!("../migrations/postgres/0041_status_tallies.sql"),
            vec!["DROP FUNCTION tally_by_state CASCADE", "DROP FUNCTION tally_rows CASCADE", "DROP TABLE tallies"],
        ),
    };
    run_sql(store, &undo).await;
    match store {
        Store::Sqlite(p) => sqlx::raw_sql(migration).execute(p).await.map(|_| ()),
        Store::Postgres(p) => sqlx::raw_sql(migration).execute(p).await.map(|_| ()),
    }
    .expect("the migration");
    assert_eq!(reported(store).await, counted(store).await, "the migration applied to a database with rows");
    run_sql(store, &["DELETE FROM messages WHERE id % 5 = 0", "DELETE FROM incidents WHERE id % 3 = 0"]).await;
    assert_eq!(reported(store).await, counted(store).await, "and kept after it");
    db.cleanup().await;
}

/// Runs `sql` in one transaction on `store`, committed or rolled back.
async fn on_store(store: &Store, sql: &[String], commit: bool) {
    macro_rules! run {
        ($pool:expr) => {{
            let mut tx = $pool.begin().await.expect("begin");
            for s in sql {
                sqlx::query(sqlx::AssertSqlSafe(s.clone())).execute(&mut *tx).await.unwrap_or_else(|e| panic!("{s}: {e}"));
            }
            if commit { tx.commit().await.expect("commit") } else { tx.rollback().await.expect("roll back") }
        }};
    }
    match store {
        Store::Sqlite(p) => run!(p),
        Store::Postgres(p) => run!(p),
    }
}

backend_tests!(
    no_read_path_scans_a_large_table,
    status_counts_kept_as_rows_change_are_the_tables_own,
    a_full_scan_is_caught,
    the_chronology_keeps_to_its_indexes_with_real_statistics,
    filing_finds_earlier_messages_by_their_message_id
);
