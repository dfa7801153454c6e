//! Intake with AI suggestions on and off, side by side in one run (issue 23): the real
//! `haven run` (IMAP intake from a real Dovecot, SQLite) filing realistic forwards, once with `[ai]` pointing at
//! the real llama-server (SmolLM2-135M, `-t 1`; tests/support/llama.rs) and once without. The
//! model answers one message in about ten seconds here, so on the AI side it is busy the whole
//! time, working through the queue the filing fills. Per round and side:
//!
//! 1. throughput: N forwards APPENDed at once, time from the first APPEND until every one is filed;
//! 2. latency: M forwards APPENDed one at a time while the daemon IDLEs, each timed from its
//!    APPEND to its commit (Dovecot notifies an idling client after about half a second).
//!
//! The sides alternate within each round (off first in odd rounds, on first in even ones).
//! Prints each round and the medians, and the ratio on/off; filing never waits for the model,
//! so the two should differ by no more than the machine's noise.
//!
//!     cargo bench --bench ai_intake   # as root (Dovecot), with tests/run.sh's packages; HAVEN_BENCH_N (300), HAVEN_BENCH_LATENCY_N (20), HAVEN_BENCH_ROUNDS (3)

#[path = "../tests/support/db.rs"]
#[allow(dead_code)]
mod db;
#[path = "../tests/support/dovecot.rs"]
#[allow(dead_code)]
mod dovecot;
#[path = "../tests/support/haven.rs"]
#[allow(dead_code)]
mod haven_env;
#[path = "../tests/support/llama.rs"]
#[allow(dead_code)]
mod llama;

use db::{Backend, TestDb};
use dovecot::{Dovecot, PASSWORD};
use haven_env::HavenEnv;
use llama::LlamaServer;
use std::time::{Duration, Instant};

fn env_number(name: &str, default: usize) -> usize {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

/// A forward from a teacher about Jane Smith (the test school's pupil), unique by `tag`.
fn forward(tag: &str, n: usize) -> Vec<u8> {
    format!(
        "From: Terry Teach <teacher@school.example>\r\nTo: safeguarding@school.example\r\nSubject: Fwd: Jane Smith this week ({tag} {n})\r\n\
         Date: Mon, 07 Dec 2026 08:{:02}:00 +0000\r\nMessage-ID: <ai-bench-{tag}-{n}@mail.school.example>\r\nMIME-Version: 1.0\r\n\
         Content-Type: text/plain; charset=utf-8\r\n\r\nPassing this on from Jane's mum.\r\n\r\n---------- Forwarded message ---------\r\n\
         From: Mary Smith <parent.smith@example.com>\r\nDate: Sun, 6 Dec 2026 at 21:14\r\nSubject: Worried\r\n\r\n\
         Jane has not been sleeping and says the older girls on the bus keep taking her lunch money ({n}).\r\n\
         She does not want to go in tomorrow. Could someone have a quiet word?\r\n\r\nThanks, Mary\r\n",
        n % 60
    )
    .into_bytes()
}

async fn filed(db: &TestDb) -> i64 {
    let haven::store::Store::Sqlite(p) = &db.store else { unreachable!("SQLite only") };
    sqlx::query_scalar("SELECT COUNT(*) FROM messages WHERE state IN ('filed', 'duplicate', 'awaiting_triage')")
        .fetch_one(p)
        .await
        .unwrap_or(0)
}

async fn until_filed(db: &TestDb, n: i64, limit: Duration) -> Duration {
    let start = Instant::now();
    while filed(db).await < n {
        assert!(start.elapsed() < limit, "only {} of {n} filed after {limit:?}", filed(db).await);
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    start.elapsed()
}

struct Side {
    throughput: Vec<f64>,
    latency: Vec<f64>,
}

/// One side of one round: a fresh installation, the daemon, N at once, then M one at a time.
async fn round(server: Option<&LlamaServer>, tag: &str, n: usize, m: usize, side: &mut Side) -> usize {
    let db = TestDb::new(Backend::Sqlite).await;
    let imap = Dovecot::start();
    let env = HavenEnv::new(&db.url, "");
    env.use_imap(imap.port, PASSWORD, "");
    env.import_school();
    if let Some(server) = server {
        let mut config = std::fs::read_to_string(&env.config).unwrap();
        config.push_str(&server.ai_config(env.dir.path(), "120s"));
        std::fs::write(&env.config, config).unwrap();
    }
    let daemon = env.start();
    // Warm: one message through, so start-up is not timed.
    imap.append(&forward(&format!("{tag}-warm"), 0)).await;
    until_filed(&db, 1, Duration::from_secs(60)).await;

    let start = Instant::now();
    imap.append_all(&(0..n).map(|i| forward(tag, i)).collect::<Vec<_>>()).await;
    until_filed(&db, 1 + n as i64, Duration::from_secs(600)).await;
    let secs = start.elapsed().as_secs_f64();
    side.throughput.push(n as f64 / secs);

    let mut lat = Vec::new();
    for i in 0..m {
        let before = filed(&db).await;
        imap.append(&forward(&format!("{tag}-one"), i)).await;
        lat.push(until_filed(&db, before + 1, Duration::from_secs(60)).await.as_secs_f64() * 1000.0);
    }
    lat.sort_by(f64::total_cmp);
    side.latency.push(lat[lat.len() / 2]);
    let (suggested, queued) = match &db.store {
        haven::store::Store::Sqlite(p) => {
            let done: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM ai_queue WHERE state = 'done'").fetch_one(p).await.unwrap_or(0);
            let all: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM ai_queue").fetch_one(p).await.unwrap_or(0);
            (done, all)
        }
        _ => unreachable!(),
    };
    println!(
        "  {tag:>3}: {n} at once in {secs:.2} s ({:.0} msg/s); one at a time: median {:.0} ms, max {:.0} ms; AI jobs done {suggested} of {queued}",
        n as f64 / secs,
        lat[lat.len() / 2],
        lat[lat.len() - 1]
    );
    daemon.stop();
    imap.stop();
    db.cleanup().await;
    queued as usize
}

fn median(v: &[f64]) -> f64 {
    let mut v = v.to_vec();
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let (n, m, rounds) = (env_number("HAVEN_BENCH_N", 300), env_number("HAVEN_BENCH_LATENCY_N", 20), env_number("HAVEN_BENCH_ROUNDS", 3));
    let server = LlamaServer::start();
    println!("intake with AI on and off: {n} forwards at once, then {m} one at a time, {rounds} rounds (SQLite, IMAP intake from Dovecot)");
    let mut off = Side { throughput: Vec::new(), latency: Vec::new() };
    let mut on = Side { throughput: Vec::new(), latency: Vec::new() };
    for r in 0..rounds {
        println!("round {}:", r + 1);
        if r % 2 == 0 {
            assert_eq!(round(None, "off", n, m, &mut off).await, 0, "no AI jobs without [ai]");
            assert!(round(Some(&server), "on", n, m, &mut on).await > 0, "the AI side queued its jobs");
        } else {
            assert!(round(Some(&server), "on", n, m, &mut on).await > 0, "the AI side queued its jobs");
            assert_eq!(round(None, "off", n, m, &mut off).await, 0, "no AI jobs without [ai]");
        }
    }
    let (t_off, t_on) = (median(&off.throughput), median(&on.throughput));
    let (l_off, l_on) = (median(&off.latency), median(&on.latency));
    println!("median throughput: AI off {t_off:.0} msg/s, AI on {t_on:.0} msg/s (on/off {:.2})", t_on / t_off);
    println!("median delivery-to-filed latency: AI off {l_off:.0} ms, AI on {l_on:.0} ms (on/off {:.2})", l_on / l_off);
}
