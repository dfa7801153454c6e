//! The governors' summary over a large record: N incidents (HAVEN_REPORT_INCIDENTS, default
//! 20,000) spread over three terms, about 1,000 pupils in six year groups and two houses, a
//! third with an outcome and a code, a twentieth still open, some referrals and plans. The rows
//! are written straight into the database (filing a million messages through the pipeline would
//! take hours and measures something else), then `haven report summary`'s counting, the same
//! function the command calls, runs once (the first report counts every day: the per-day counts
//! of migration 0038 start empty), then 5 times more, of which the median is printed, then once
//! after one incident's category is corrected (its day recounted). The target is
//! 1,000,000 incidents in under 2 s on both engines; this prints, it does not assert.
//!
//!     cargo bench --bench report
//!     HAVEN_REPORT_INCIDENTS=1000000 cargo bench --bench report
//!
//! PostgreSQL: HAVEN_TEST_PG (default postgres://postgres@127.0.0.1:5432/postgres); a fresh
//! database is made and dropped.

use chrono::{NaiveDate, TimeZone, Utc};
use haven::report::period::Period;
use haven::report::summary::Audience;
use haven::store::Store;
use std::time::Instant;

const RUNS: usize = 5;
const PUPILS: i64 = 1000;
const ROWS: usize = 500;

fn incidents() -> i64 {
    std::env::var("HAVEN_REPORT_INCIDENTS").ok().and_then(|v| v.parse().ok()).unwrap_or(20_000)
}

fn terms() -> Vec<Period> {
    let d = |s: &str| s.parse::<NaiveDate>().expect("a date");
    vec![
        Period { name: "Spring 2026".into(), from: d("2026-01-05"), to: d("2026-03-27") },
        Period { name: "Summer 2026".into(), from: d("2026-04-13"), to: d("2026-07-22") },
        Period { name: "Autumn 2026".into(), from: d("2026-09-02"), to: d("2026-12-18") },
    ]
}

/// Runs `sql` statements built from whole numbers and fixed words only.
async fn exec(store: &Store, sql: String) {
    let sql = sqlx::raw_sql(sqlx::AssertSqlSafe(sql));
    match store {
        Store::Sqlite(p) => sql.execute(p).await.map(|_| ()),
        Store::Postgres(p) => sql.execute(p).await.map(|_| ()),
    }
    .expect("seed SQL");
}

/// Writes `n` rows of a table, `ROWS` per INSERT, in one transaction.
async fn insert(store: &Store, head: &str, n: i64, row: impl Fn(i64) -> String) {
    let mut sql = String::from("BEGIN;");
    for chunk in (0..n).collect::<Vec<_>>().chunks(ROWS) {
        sql.push_str(head);
        sql.push_str(&chunk.iter().map(|i| row(*i)).collect::<Vec<_>>().join(","));
        sql.push(';');
        if sql.len() > 4_000_000 {
            sql.push_str("COMMIT;");
            exec(store, std::mem::replace(&mut sql, String::from("BEGIN;"))).await;
        }
    }
    sql.push_str("COMMIT;");
    exec(store, sql).await;
}

async fn seed(store: &Store, n: i64) {
    exec(store, "INSERT INTO staff (id, first_name, last_name, active, updated_us) VALUES (1, 'Dana', 'Lead', TRUE, 0), (2, 'Terry', 'Teach', TRUE, 0)".into()).await;
    exec(store, "INSERT INTO staff_roles (staff_id, role) VALUES (1, 'dsl'), (2, 'teacher')".into()).await;
    insert(store, "INSERT INTO pupils (id, upn, first_name, last_name, year_group, house, sen, updated_us) VALUES ", PUPILS, |i| {
        format!(
            "({}, 'U{i}', 'x', 'y', {}, '{}', {}, 0)",
            i + 1,
            7 + i % 6,
            ["Kestrel", "Heron"][(i % 2) as usize],
            if i % 7 == 0 { "TRUE" } else { "FALSE" }
        )
    })
    .await;
    let tz = chrono_tz::Europe::London;
    let spans: Vec<(i64, i64)> = terms().iter().map(|t| t.span_us(tz)).collect();
    let categories = ["Behaviour", "Pastoral issue", "Safeguarding / child protection", "E-safety", "Attendance", "Medical"];
    let occurred = |i: i64| {
        let (a, b) = spans[(i % 3) as usize];
        a + (i.wrapping_mul(2_654_435_761) % (b - a)).abs()
    };
    insert(
        store,
        "INSERT INTO incidents (id, occurred_us, recorded_us, recorded_by, record_kind, category, priority, visibility, body_text) VALUES ",
        n,
        |i| {
            let o = occurred(i);
            format!(
                "({}, {o}, {}, 2, 'email', '{}', 'normal', 'default', 'x')",
                i + 1,
                o + (i % 4000) * 60_000_000,
                categories[(i % 6) as usize]
            )
        },
    )
    .await;
    insert(store, "INSERT INTO incident_pupils (incident_id, pupil_id, role, how) VALUES ", n, |i| {
        format!("({}, {}, 'subject', 'marker')", i + 1, i % PUPILS + 1)
    })
    .await;
    let codes = ["NFA", "MONITOR", "EARLY-HELP", "REFERRED-CSC", "LADO", "POLICE", "NO-REFERRAL"];
    // A third decided, a twentieth open.
    let decided = n / 3;
    insert(
        store,
        "INSERT INTO actions (incident_id, owner, created_us, due_us, outcome, outcome_by, outcome_us, outcome_code) VALUES ",
        decided,
        |k| {
            let i = k * 3;
            let o = occurred(i) + (i % 4000) * 60_000_000;
            format!(
                "({}, 1, {o}, {}, 'sealed', 1, {}, '{}')",
                i + 1,
                o + 172_800_000_000,
                o + (k % 900) * 3_600_000_000,
                codes[(k % 7) as usize]
            )
        },
    )
    .await;
    insert(store, "INSERT INTO actions (incident_id, owner, created_us, due_us) VALUES ", n / 20, |k| {
        let i = k * 20 + 1;
        let o = occurred(i);
        format!("({}, 1, {o}, {})", i + 1, o + 172_800_000_000)
    })
    .await;
    insert(store, "INSERT INTO referrals (incident_id, agency, referred_on, created_by, created_us) VALUES ", n / 50, |k| {
        let day = NaiveDate::from_ymd_opt(2026, 1, 5).expect("a date") + chrono::Duration::days(k % 340);
        format!("({}, '{}', '{day}', 1, 0)", k * 50 + 1, ["CSC", "LADO", "POLICE", "EARLY-HELP", "OTHER"][(k % 5) as usize])
    })
    .await;
    insert(store, "INSERT INTO pupil_plans (pupil_id, kind, starts_on, starts_us, created_by, created_us) VALUES ", PUPILS / 10, |k| {
        let day = NaiveDate::from_ymd_opt(2026, 1, 5).expect("a date") + chrono::Duration::days(k * 3 % 340);
        let starts_us = haven::report::period::day_start_us(day, chrono_tz::Europe::London);
        format!(
            "({}, '{}', '{day}', {starts_us}, 1, 0)",
            k * 10 + 1,
            ["early-help", "child-in-need", "child-protection", "looked-after", "other"][(k % 5) as usize]
        )
    })
    .await;
    if matches!(store, Store::Postgres(_)) {
        exec(store, "ANALYZE".into()).await;
    }
}

/// The summary's counting for the three terms, as `haven report summary --term` runs it.
async fn summary(store: &Store) -> i64 {
    let dir = haven::directory::Directory::default();
    let now = Utc.with_ymd_and_hms(2026, 12, 19, 12, 0, 0).single().expect("a time");
    let mut total = 0;
    for t in terms() {
        let f =
            haven::cli::report::figures(store, &dir, &t, chrono_tz::Europe::London, now, Audience::Governors).await.expect("the counts");
        total += f.incidents;
    }
    total
}

/// What one engine measured, in seconds and milliseconds.
struct Measured {
    seeded_s: f64,
    /// The first report after seeding: every day counted.
    first_ms: f64,
    /// The median of `RUNS` reports with nothing changed.
    median_ms: f64,
    /// A report after one incident's category was corrected: its day recounted.
    after_change_ms: f64,
    counted: i64,
}

async fn timed(store: &Store) -> (f64, i64) {
    let started = Instant::now();
    let counted = summary(store).await;
    (started.elapsed().as_secs_f64() * 1000.0, counted)
}

async fn measure(url: &str, n: i64) -> Measured {
    let store = Store::open(url).await.expect("open the store");
    let started = Instant::now();
    seed(&store, n).await;
    let seeded_s = started.elapsed().as_secs_f64();
    let (first_ms, _) = timed(&store).await;
    let mut ms = Vec::new();
    let mut counted = 0;
    for _ in 0..RUNS {
        let (t, c) = timed(&store).await;
        ms.push(t);
        counted = c;
    }
    ms.sort_by(f64::total_cmp);
    exec(&store, "UPDATE incidents SET category = 'Medical' WHERE id = 1".into()).await;
    let (after_change_ms, _) = timed(&store).await;
    store.close().await;
    Measured { seeded_s, first_ms, median_ms: ms[RUNS / 2], after_change_ms, counted }
}

fn print(engine: &str, n: i64, m: &Measured) {
    println!(
        "report summary  {engine:<8}  {n} incidents (seeded in {:.1} s): median {:.0} ms of {RUNS}; first report (every day counted) {:.0} ms; after a change {:.0} ms",
        m.seeded_s, m.median_ms, m.first_ms, m.after_change_ms
    );
}

fn main() {
    let n = incidents();
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("runtime");
    rt.block_on(async {
        let dir = tempfile::tempdir().expect("temp dir");
        let m = measure(&format!("sqlite://{}", dir.path().join("report.db").display()), n).await;
        assert_eq!(m.counted, n, "every incident is in one of the three terms");
        print("sqlite", n, &m);

        let admin = std::env::var("HAVEN_TEST_PG").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into());
        let name = format!("haven_report_{}", std::process::id());
        let pool =
            sqlx::PgPool::connect(&admin).await.unwrap_or_else(|e| panic!("PostgreSQL at {admin}: {e} (start it, or set HAVEN_TEST_PG)"));
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}"))).execute(&pool).await.expect("CREATE DATABASE");
        let base = admin.rsplit_once('/').map_or(admin.as_str(), |(b, _)| b);
        let m = measure(&format!("{base}/{name}"), n).await;
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!("DROP DATABASE {name} WITH (FORCE)"))).execute(&pool).await.expect("DROP DATABASE");
        assert_eq!(m.counted, n);
        print("postgres", n, &m);
    });
}
