//! The scheduler's pass over a large database: 100,000 open actions, each with a ladder of
//! three rungs at staggered times, on SQLite and PostgreSQL. Prints the median time of one
//! `due_rungs` pass (target: < 50 ms), in the steady state (rungs already fired up to a few
//! minutes ago) and catching up after an outage (a full batch of overdue rungs), and of the
//! loop's "when is the next rung" query.
//!
//! Run: `cargo bench --bench schedule` (PostgreSQL at HAVEN_TEST_PG, default
//! postgres://postgres@127.0.0.1:5432/postgres).

#[path = "../tests/support/db.rs"]
#[allow(dead_code)]
mod db;

use chrono::{DateTime, Duration, TimeZone, Utc};
use db::{Backend, TestDb};
use haven::store::{Store, on_pool_for_tests};
use std::time::Instant;

const ACTIONS: i64 = 100_000;
const RUNS: usize = 21;
/// The scheduler's batch size.
const BATCH: i64 = 500;

fn base() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 9, 1, 8, 0, 0).single().unwrap_or_default()
}

/// Fills the database: incident i recorded at base + i minutes, outcome due a day later, rungs
/// at +1 h, +1 d, +2 d. Rungs due before `fired_before` are marked fired, as a running daemon
/// would have left them.
async fn fill(store: &Store, backend: Backend, fired_before: DateTime<Utc>) {
    // Explicit ids, no sequences: nothing else inserts into this throwaway database.
    let b = base().timestamp_micros();
    let minute = 60_000_000i64;
    let hour = 60 * minute;
    let day = 24 * hour;
    let series = match backend {
        Backend::Sqlite => format!("WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < {ACTIONS})"),
        Backend::Postgres => format!("WITH n(i) AS (SELECT generate_series(1, {ACTIONS})::BIGINT)"),
    };
    let statements = [
        format!(
            "{series} INSERT INTO incidents (id, occurred_us, recorded_us, record_kind, category, priority, visibility, body_text) \
             SELECT i, {b} + i * {minute}, {b} + i * {minute}, 'email', 'Pastoral issue', 'normal', 'dsl-team', '' FROM n"
        ),
        format!(
            "{series} INSERT INTO actions (id, incident_id, created_us, due_us) \
             SELECT i, i, {b} + i * {minute}, {b} + i * {minute} + {day} FROM n"
        ),
        format!(
            "{series} INSERT INTO action_rungs (action_id, rung, due_us, recipients) \
             SELECT i, 0, {b} + i * {minute} + {hour}, '[1]' FROM n \
             UNION ALL SELECT i, 1, {b} + i * {minute} + {day}, '[1]' FROM n \
             UNION ALL SELECT i, 2, {b} + i * {minute} + 2 * {day}, '[1, 2]' FROM n"
        ),
        format!("UPDATE action_rungs SET fired_us = due_us WHERE due_us < {}", fired_before.timestamp_micros()),
        "ANALYZE".to_string(),
    ];
    for sql in statements {
        on_pool_for_tests(store, &sql).await;
    }
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied().unwrap_or(f64::NAN)
}

/// Median milliseconds of `RUNS` passes of `due_rungs(now, BATCH)`, and how many it found.
async fn time_due(store: &Store, now: DateTime<Utc>) -> (f64, usize) {
    let mut times = Vec::with_capacity(RUNS);
    let mut found = 0;
    for _ in 0..RUNS {
        let t = Instant::now();
        found = store.due_rungs(now, BATCH).await.expect("due_rungs").len();
        times.push(t.elapsed().as_secs_f64() * 1e3);
    }
    (median(times), found)
}

async fn time_next(store: &Store) -> f64 {
    let mut times = Vec::with_capacity(RUNS);
    for _ in 0..RUNS {
        let t = Instant::now();
        store.next_rung_due().await.expect("next_rung_due");
        times.push(t.elapsed().as_secs_f64() * 1e3);
    }
    median(times)
}

async fn bench(backend: Backend) {
    let name = match backend {
        Backend::Sqlite => "sqlite",
        Backend::Postgres => "postgres",
    };
    let db = TestDb::new(backend).await;
    // Halfway through the staggered range; everything due more than 10 minutes ago has fired.
    let now = base() + Duration::minutes(ACTIONS / 2);
    let t = Instant::now();
    fill(&db.store, backend, now - Duration::minutes(10)).await;
    println!("{name}: {ACTIONS} open actions, {} rungs, filled in {:.1} s", ACTIONS * 3, t.elapsed().as_secs_f64());
    let (steady, found) = time_due(&db.store, now).await;
    println!("{name}: due_rungs steady state: median {steady:.2} ms ({found} due) [target < 50 ms]");
    let next = time_next(&db.store).await;
    println!("{name}: next_rung_due: median {next:.2} ms");
    // An outage: nothing fired for the last 3 days of the range.
    on_pool_for_tests(
        &db.store,
        &format!("UPDATE action_rungs SET fired_us = NULL WHERE due_us >= {}", (now - Duration::days(3)).timestamp_micros()),
    )
    .await;
    let (catch_up, found) = time_due(&db.store, now).await;
    println!("{name}: due_rungs catching up: median {catch_up:.2} ms (a batch of {found}) [target < 50 ms]");
    db.cleanup().await;
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    bench(Backend::Sqlite).await;
    bench(Backend::Postgres).await;
}
