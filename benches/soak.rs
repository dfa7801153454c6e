//! Soak (issue 25): the real `haven run` files HAVEN_SOAK_N realistic forwards (default 100,000)
//! from a real Dovecot (IMAP intake, IDLE) into a fresh database, and its resident memory is
//! read from /proc/PID/status as it goes: after start-up (before the first message), after each
//! tenth and at the end, with the peak (VmHWM). Target: RSS < 300 MB after 100,000 messages.
//!
//!     cargo bench --bench soak        # as root (Dovecot), with tests/run.sh's packages
//!     HAVEN_SOAK_N=2000 HAVEN_BENCH_BACKEND=sqlite cargo bench --bench soak --profile dev
//!     HAVEN_SOAK_BIN=target/release/haven cargo bench --bench soak --profile dev   # a release daemon, a quick harness
//!
//! The messages go in HAVEN_SOAK_CHUNK at a time (default 2,000): a chunk is APPENDed while
//! the daemon files the one before, so the mailbox never holds more than two. Most are a
//! parent's email forwarded by a teacher with an original date older than the 7-day backfill
//! age (they file quietly, as a backlog does); one in 20 is dated this week and alerts (Maildir
//! transport). One in six carries a 100 KB attachment (3 MB every 250th). Each engine runs twice: with glibc's default malloc arenas and with
//! `MALLOC_ARENA_MAX=2`, as the systemd unit runs the daemon (examples/systemd/haven.service);
//! HAVEN_SOAK_ARENAS=2 runs only the unit's setting. The daemon measured is
//! HAVEN_SOAK_BIN, or else the haven binary of the profile this bench was built with.
//! Prints the figures and asserts nothing about speed; it does check that every message was
//! filed exactly once (one incident each) and that no alert failed.
//!
//! PostgreSQL: HAVEN_TEST_PG (default postgres://postgres@127.0.0.1:5432/postgres); a fresh
//! database is created and dropped. HAVEN_BENCH_BACKEND=sqlite|postgres runs one engine.

#[path = "../tests/support/db.rs"]
#[allow(dead_code)]
mod db;
#[path = "../tests/support/dovecot.rs"]
#[allow(dead_code)]
mod dovecot;
#[path = "../tests/support/haven.rs"]
#[allow(dead_code)]
mod haven_env;

#[path = "support/photo.rs"]
mod photo;
use chrono::{DateTime, Duration, Utc};
use db::{Backend, TestDb};
use dovecot::{Dovecot, PASSWORD};
use haven::store::Store;
use haven_env::{HavenEnv, wait_for};
use photo::attachment;
use std::path::{Path, PathBuf};
use std::time::Instant;

/// How long one chunk may take to file before the run is declared stuck.
const CHUNK_LIMIT: std::time::Duration = std::time::Duration::from_secs(900);
/// One message in this many is dated this week and alerts.
const LIVE_EVERY: usize = 20;

fn env_number(name: &str, default: usize) -> usize {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).filter(|n| *n > 0).unwrap_or(default)
}

/// The test school's pupils, each with who would write about them (tests/fixtures/school).
const PUPILS: [(&str, &str, &str); 4] = [
    ("Jane Smith", "Mary Smith", "parent.smith@example.com"),
    ("Oliver Brown", "Sam Brown", "brown.family@example.com"),
    ("Amira Khan", "Nadia Khan", "nadia.khan@example.net"),
    ("Tom Price", "Paul Price", "paul.price@example.net"),
];

const WORDS: [&str; 6] = [
    "has not been sleeping and says the older children on the bus keep taking the lunch money. Could someone have a quiet word?",
    "came home upset again; a child in the class keeps calling names in the changing rooms and pushing.",
    "may be quiet this week: a grandparent passed away at the weekend.",
    "missed Tuesday and Wednesday with a temperature and should be back on Monday.",
    "was in a fight at the bus stop after school, the phone was broken and there is a bruise on the cheek.",
    "has been getting messages from someone online asking to keep it secret, which worries us.",
];

/// Forward `i`: a parent's email about one pupil, forwarded by the teacher; written `written`.
/// One in six carries a photo or scan from home: 100 KB, and 3 MB every 250th message.
fn forward(i: usize, written: DateTime<Utc>) -> Vec<u8> {
    let (pupil, parent, address) = PUPILS[i % PUPILS.len()];
    let first = pupil.split(' ').next().unwrap_or(pupil);
    let words = WORDS[(i / PUPILS.len()) % WORDS.len()];
    let sent = Utc::now().format("%a, %-d %b %Y %H:%M:%S +0000");
    let text = format!(
        "Passing this on from home.\r\n\r\n---------- Forwarded message ---------\r\nFrom: {parent} <{address}>\r\n\
         Date: {}\r\nSubject: {pupil}\r\nTo: Terry Teach <teacher@school.example>\r\n\r\nHello,\r\n\r\n\
         {pupil}: {first} {words} (ref {i})\r\n\r\nThanks, {parent}\r\n",
        written.format("%a, %-d %b %Y at %H:%M")
    );
    let head = format!(
        "From: Terry Teach <teacher@school.example>\r\nTo: safeguarding@school.example\r\nSubject: Fwd: {pupil}\r\n\
         Date: {sent}\r\nMessage-ID: <soak-{i}@mail.school.example>\r\nMIME-Version: 1.0\r\n"
    );
    if i % 6 != 1 {
        return format!("{head}Content-Type: text/plain; charset=utf-8\r\n\r\n{text}").into_bytes();
    }
    let kb = if i % 250 == 1 { 3 * 1024 } else { 100 };
    format!(
        "{head}Content-Type: multipart/mixed; boundary=\"b{i}\"\r\n\r\n--b{i}\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n\
         {text}\r\n--b{i}\r\nContent-Type: image/jpeg\r\nContent-Disposition: attachment; filename=\"photo-{i}.jpg\"\r\n\
         Content-Transfer-Encoding: base64\r\n\r\n{}\r\n--b{i}--\r\n",
        attachment(i, kb)
    )
    .into_bytes()
}

/// When message `i` of `n` was written: one in [`LIVE_EVERY`] in the past six days, the rest
/// spread over ten years ending eight days ago.
fn written(i: usize, n: usize, now: DateTime<Utc>) -> DateTime<Utc> {
    if i % LIVE_EVERY == LIVE_EVERY - 1 {
        return now - Duration::minutes((i * 517 % (6 * 24 * 60)) as i64 + 5);
    }
    let span = Duration::days(3650).num_minutes();
    now - Duration::days(8) - Duration::minutes(span - span * i as i64 / n as i64)
}

/// `SELECT COUNT(*)` on either engine.
async fn count(store: &Store, sql: &'static str) -> i64 {
    match store {
        Store::Sqlite(p) => sqlx::query_scalar(sql).fetch_one(p).await,
        Store::Postgres(p) => sqlx::query_scalar(sql).fetch_one(p).await,
    }
    .unwrap_or_else(|e| panic!("{sql}: {e}"))
}

async fn filed(store: &Store) -> i64 {
    count(store, "SELECT COUNT(*) FROM incidents").await
}

/// The daemon's resident memory, MiB: VmRSS, RssAnon (its heap), VmHWM (the peak).
#[derive(Clone, Copy)]
struct Rss {
    total: f64,
    anon: f64,
    peak: f64,
}

fn rss(pid: u32) -> Rss {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_else(|e| panic!("/proc/{pid}/status: {e}"));
    let field = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok())
            .map_or(0.0, |kb| kb / 1024.0)
    };
    Rss { total: field("VmRSS:"), anon: field("RssAnon:"), peak: field("VmHWM:") }
}

/// One run's figures.
struct Soak {
    label: String,
    rate: f64,
    /// At start-up, then after each tenth of the messages.
    samples: Vec<Rss>,
}

/// Files `n` messages through a fresh installation on `backend` with the daemon started with
/// `env`, sampling its memory.
async fn soak(backend: Backend, program: &Path, env: &[(&str, &str)], label: &str, n: usize, chunk: usize) -> Soak {
    let db = TestDb::new(backend).await;
    let imap = Dovecot::start();
    let haven = HavenEnv::new(&db.url, "backfill_age = \"7d\"");
    haven.use_imap(imap.port, PASSWORD, "");
    haven.import_school();
    let mut daemon = haven.start_program(program, env);
    wait_for("the daemon's IMAP intake", std::time::Duration::from_secs(60), || {
        daemon.log().contains("IMAP intake connected").then_some(()).ok_or_else(|| daemon.log())
    });
    daemon.assert_running();
    let pid = daemon.pid();
    let mut samples = vec![rss(pid)];
    let now = Utc::now();
    let started = Instant::now();
    let mut appended = 0;
    let mut tenth = 1;
    // Waits until `target` incidents are filed, sampling memory as each tenth is passed.
    let mut until = async |target: usize, samples: &mut Vec<Rss>, daemon: &mut haven_env::Daemon| {
        let since = Instant::now();
        loop {
            let done = filed(&db.store).await as usize;
            while tenth <= 10 && done >= n * tenth / 10 {
                samples.push(rss(pid));
                tenth += 1;
            }
            if done >= target {
                return;
            }
            daemon.assert_running();
            assert!(since.elapsed() < CHUNK_LIMIT, "{label}: {done} of {target} filed after {CHUNK_LIMIT:?}");
            tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        }
    };
    while appended < n {
        let end = (appended + chunk).min(n);
        let raws: Vec<Vec<u8>> = (appended..end).map(|i| forward(i, written(i, n, now))).collect();
        imap.append_all(&raws).await;
        // Filing the chunk just sent overlaps the next APPENDs; the one before must be done.
        until(appended, &mut samples, &mut daemon).await;
        appended = end;
    }
    until(n, &mut samples, &mut daemon).await;
    let rate = n as f64 / started.elapsed().as_secs_f64();

    // Every message filed exactly once, and the alerts of this week's sent.
    let (incidents, messages) = (filed(&db.store).await, count(&db.store, "SELECT COUNT(*) FROM messages").await);
    assert_eq!((incidents, messages), (n as i64, n as i64), "{label}: incidents and messages for {n} forwards");
    let quiet = count(&db.store, "SELECT COUNT(*) FROM incidents WHERE backfilled").await;
    assert!(quiet > 0 && quiet < n as i64, "{label}: {quiet} of {n} filed as historical");
    let deadline = Instant::now() + std::time::Duration::from_secs(300);
    let (pending, dead) = loop {
        let pending = count(&db.store, "SELECT COUNT(*) FROM outbox WHERE state = 'pending'").await;
        let dead = count(&db.store, "SELECT COUNT(*) FROM outbox WHERE state = 'dead'").await;
        if pending == 0 || Instant::now() > deadline {
            break (pending, dead);
        }
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    };
    let sent = count(&db.store, "SELECT COUNT(*) FROM outbox WHERE state = 'sent'").await;
    assert!(pending == 0 && dead == 0 && sent > 0, "{label}: outbox {sent} sent, {pending} pending, {dead} dead");
    println!("  {label}: {n} filed in {:.0} s, {quiet} historical; {sent} alerts sent", started.elapsed().as_secs_f64());
    daemon.stop();
    imap.stop();
    db.cleanup().await;
    Soak { label: label.to_string(), rate, samples }
}

fn table(engine: &str, n: usize, runs: &[Soak]) {
    println!("\n{engine}, {n} messages (MiB: VmRSS, RssAnon in brackets)");
    let mut head = format!("| {:<30} | msg/s | start", "daemon");
    for t in 1..=10 {
        head.push_str(&format!(" | {}%", t * 10));
    }
    println!("{head} | VmHWM |");
    println!("|{}|", ["---"; 14].join("|"));
    for run in runs {
        let mut row = format!("| {:<30} | {:.0}", run.label, run.rate);
        for s in &run.samples {
            row.push_str(&format!(" | {:.0} ({:.0})", s.total, s.anon));
        }
        let peak = run.samples.last().map_or(0.0, |s| s.peak);
        println!("{row} | {peak:.0} |");
    }
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let n = env_number("HAVEN_SOAK_N", 100_000);
    let chunk = env_number("HAVEN_SOAK_CHUNK", 2_000);
    let program = std::env::var_os("HAVEN_SOAK_BIN").map_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_haven")), PathBuf::from);
    let only = std::env::var("HAVEN_BENCH_BACKEND").unwrap_or_default();
    let unit_only = std::env::var("HAVEN_SOAK_ARENAS").is_ok_and(|v| v == "2");
    let modified = std::fs::metadata(&program).and_then(|m| m.modified()).map(DateTime::<Utc>::from);
    println!(
        "soak: {n} forwards, {chunk} at a time, through {} (built {}); {}",
        program.display(),
        modified.map_or("?".into(), |t| t.format("%Y-%m-%d %H:%M UTC").to_string()),
        std::fs::read_to_string("/proc/loadavg")
            .map_or(String::new(), |l| format!("load average {}", l.split_whitespace().take(3).collect::<Vec<_>>().join(" ")))
    );
    assert!(["", "sqlite", "postgres"].contains(&only.as_str()), "HAVEN_BENCH_BACKEND is sqlite or postgres, not {only}");
    for (key, engine, backend) in [("sqlite", "SQLite", Backend::Sqlite), ("postgres", "PostgreSQL", Backend::Postgres)] {
        if !only.is_empty() && key != only {
            continue;
        }
        let mut runs = Vec::new();
        if !unit_only {
            runs.push(soak(backend, &program, &[], "glibc default arenas", n, chunk).await);
        }
        runs.push(soak(backend, &program, &[("MALLOC_ARENA_MAX", "2")], "MALLOC_ARENA_MAX=2 (the unit)", n, chunk).await);
        table(engine, n, &runs);
    }
}
