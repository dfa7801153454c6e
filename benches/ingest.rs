//! Ingest benchmark: files 10,000 generated forwards (a third with a 100 KB attachment) through
//! the whole pipeline — read, authenticate, identify, rules, seal, one transaction per batch of
//! 500 as the daemon commits them — into SQLite and into PostgreSQL, and prints messages/second
//! and the process's peak RSS.
//!
//!     cargo bench --bench ingest            # HAVEN_BENCH_N=2000 for a quicker run
//!
//! PostgreSQL: HAVEN_TEST_PG (default postgres://postgres@127.0.0.1:5432/postgres); a fresh
//! database is created and dropped.

mod support;

use haven::source::{Incoming, Origin, Payload};
use haven::store::Store;
use std::path::PathBuf;
use std::time::Instant;

/// As the daemon commits a backlog (daemon.rs `INTAKE_BATCH`).
const BATCH: usize = 500;

async fn run(label: &str, url: &str, n: usize) {
    let store = Store::open(url).await.expect("open store");
    let filer = support::filer(&store).await;
    let att = support::attachment();
    let started = Instant::now();
    let mut filed = 0;
    let mut generating = std::time::Duration::ZERO;
    for first in (0..n).step_by(BATCH) {
        // Generated per batch, as a mailbox delivers them, so RSS is Haven's and not the corpus's.
        let g = Instant::now();
        let batch: Vec<Incoming> = (first..(first + BATCH).min(n))
            .map(|i| Incoming {
                origin: Origin::Maildir { path: PathBuf::from(format!("new/{i}")) },
                payload: Payload::Raw(support::message(i, &att)),
            })
            .collect();
        generating += g.elapsed();
        let out = filer.file_batch(&batch).await.expect("file batch");
        filed += out.iter().filter(|f| f.incident.is_some()).count();
    }
    let secs = (started.elapsed() - generating).as_secs_f64();
    println!(
        "{label:<10} {n} messages ({filed} incidents) in {secs:.2} s: {:.0} messages/s, peak RSS {:.0} MiB",
        n as f64 / secs,
        support::rss_mib("VmHWM:")
    );
    store.close().await;
}

fn main() {
    let n: usize = std::env::var("HAVEN_BENCH_N").ok().and_then(|v| v.parse().ok()).unwrap_or(10_000);
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("runtime");
    rt.block_on(async {
        let dir = tempfile::tempdir().expect("temp dir");
        let sqlite = format!("sqlite://{}", dir.path().join("bench.db").display());
        run("sqlite", &sqlite, n).await;

        let admin = std::env::var("HAVEN_TEST_PG").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into());
        let name = format!("haven_bench_{}", std::process::id());
        let admin_store = Store::open_admin(&admin).await;
        match admin_store {
            Ok(pool) => {
                sqlx_exec(&pool, &format!("CREATE DATABASE {name}")).await;
                let base = admin.rsplit_once('/').map_or(admin.as_str(), |(b, _)| b);
                run("postgres", &format!("{base}/{name}"), n).await;
                sqlx_exec(&pool, &format!("DROP DATABASE {name} WITH (FORCE)")).await;
            }
            Err(e) => println!("postgres   skipped: cannot connect to {admin}: {e} (start PostgreSQL or set HAVEN_TEST_PG)"),
        }
    });
}

trait OpenAdmin {
    async fn open_admin(url: &str) -> Result<sqlx::PgPool, sqlx::Error>;
}

impl OpenAdmin for Store {
    async fn open_admin(url: &str) -> Result<sqlx::PgPool, sqlx::Error> {
        sqlx::PgPool::connect(url).await
    }
}

async fn sqlx_exec(pool: &sqlx::PgPool, sql: &str) {
    sqlx::raw_sql(sqlx::AssertSqlSafe(sql.to_string())).execute(pool).await.expect("admin SQL");
}
