//! `haven ingest` before and after batching: the same generated forwards (a third with a 100 KB
//! attachment) in a Maildir, filed (a) one message per transaction, the directory loaded for
//! each, as `haven ingest` did before, and (b) by `haven::cli::ingest::run`, in the daemon's
//! batches of 500. SQLite and PostgreSQL; each side on a fresh database; messages/second side
//! by side, median of the rounds.
//!
//!     cargo bench --bench ingest_cli      # HAVEN_BENCH_N=2000 messages, HAVEN_BENCH_ROUNDS=3

mod support;

use haven::source::Origin;
use haven::store::Store;
use std::path::{Path, PathBuf};
use std::time::Instant;

fn write_maildir(dir: &Path, n: usize) -> Vec<PathBuf> {
    let att = support::attachment();
    for sub in ["cur", "new", "tmp"] {
        std::fs::create_dir_all(dir.join(sub)).expect("maildir");
    }
    (0..n)
        .map(|i| {
            let p = dir.join("cur").join(format!("{i:06}.bench:2,S"));
            std::fs::write(&p, support::message(i, &att)).expect("write message");
            p
        })
        .collect()
}

/// (a): one transaction and one directory load per message.
async fn one_at_a_time(url: &str, files: &[PathBuf]) -> f64 {
    let store = Store::open(url).await.expect("open store");
    let filer = support::filer(&store).await;
    let started = Instant::now();
    for f in files {
        let raw = std::fs::read(f).expect("read");
        filer.file(&raw, &Origin::File { path: f.clone() }).await.expect("file");
    }
    let rate = files.len() as f64 / started.elapsed().as_secs_f64();
    store.close().await;
    rate
}

/// (b): `haven ingest` as it is now.
async fn batched(url: &str, maildir: &Path, n: usize) -> f64 {
    let store = Store::open(url).await.expect("open store");
    let filer = support::filer(&store).await;
    let started = Instant::now();
    let summary = haven::cli::ingest::run(&filer, &[maildir.to_path_buf()], u64::MAX).await.expect("ingest");
    assert_eq!(summary.messages, n as u64);
    let rate = n as f64 / started.elapsed().as_secs_f64();
    store.close().await;
    rate
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

async fn compare<F: std::future::Future<Output = String>>(
    label: &str,
    mut fresh_url: impl FnMut() -> F,
    maildir: &Path,
    files: &[PathBuf],
    rounds: usize,
) {
    let (mut before, mut after) = (Vec::new(), Vec::new());
    for _ in 0..rounds {
        before.push(one_at_a_time(&fresh_url().await, files).await);
        after.push(batched(&fresh_url().await, maildir, files.len()).await);
    }
    let (b, a) = (median(before.clone()), median(after.clone()));
    println!(
        "{label:<10} {} messages: one per transaction {b:.0} messages/s, batched {a:.0} messages/s ({:.1}× faster); rounds {:?} / {:?}",
        files.len(),
        a / b,
        before.iter().map(|r| r.round()).collect::<Vec<_>>(),
        after.iter().map(|r| r.round()).collect::<Vec<_>>()
    );
}

fn main() {
    let n: usize = std::env::var("HAVEN_BENCH_N").ok().and_then(|v| v.parse().ok()).unwrap_or(2000);
    let rounds: usize = std::env::var("HAVEN_BENCH_ROUNDS").ok().and_then(|v| v.parse().ok()).unwrap_or(3);
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("runtime");
    rt.block_on(async {
        let dir = tempfile::tempdir().expect("temp dir");
        let maildir = dir.path().join("Maildir");
        let files = write_maildir(&maildir, n);
        let mut k = 0;
        let sqlite = || {
            k += 1;
            let url = format!("sqlite://{}", dir.path().join(format!("bench-{k}.db")).display());
            async move { url }
        };
        compare("sqlite", sqlite, &maildir, &files, rounds).await;

        let admin = std::env::var("HAVEN_TEST_PG").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into());
        let pool = match sqlx::PgPool::connect(&admin).await {
            Ok(pool) => pool,
            Err(e) => {
                println!("postgres   not measured: cannot connect to {admin}: {e} (start PostgreSQL or set HAVEN_TEST_PG)");
                return;
            }
        };
        let base = admin.rsplit_once('/').map_or(admin.as_str(), |(b, _)| b).to_string();
        let mut made = Vec::new();
        let mut j = 0;
        let postgres = || {
            j += 1;
            let name = format!("haven_bench_cli_{}_{j}", std::process::id());
            made.push(name.clone());
            let (pool, base) = (pool.clone(), base.clone());
            async move {
                exec(&pool, &format!("CREATE DATABASE {name}")).await;
                format!("{base}/{name}")
            }
        };
        compare("postgres", postgres, &maildir, &files, rounds).await;
        for name in made {
            exec(&pool, &format!("DROP DATABASE {name} WITH (FORCE)")).await;
        }
    });
}

async fn exec(pool: &sqlx::PgPool, sql: &str) {
    sqlx::raw_sql(sqlx::AssertSqlSafe(sql.to_string())).execute(pool).await.expect("admin SQL");
}
