//! "Filed" means durable: faults broken for real under the running daemon, on SQLite and on
//! PostgreSQL. The database's filesystem fills up (a small tmpfs, mounted by the test; for
//! PostgreSQL the test database's tablespace lives on it), goes read-only, or the server kills
//! the daemon's backends in the middle of a batch; the daemon is killed with SIGKILL. After
//! the fault ends every message is filed exactly once, and none was moved out of the intake
//! before its commit really happened.
//!
//! Needs root (mount). Run by `tests/run.sh` as root.

mod support;

use std::path::Path;
use std::time::Duration;
use support::db::Backend;
use support::disk::{DiskDb, admin};
use support::haven::{Daemon, HavenEnv, school_fixtures, wait_for};

/// The test school's teacher forward with a Message-ID of its own.
fn forward(i: usize) -> Vec<u8> {
    let template = std::fs::read_to_string(school_fixtures().join("mail/forward-contact.eml")).unwrap();
    assert!(template.contains("fwd-contact-1@"));
    template.replace("fwd-contact-1@", &format!("fwd-durable-{i}@")).into_bytes()
}

fn count(dir: &Path) -> usize {
    std::fs::read_dir(dir).map(|d| d.filter_map(Result::ok).count()).unwrap_or(0)
}

fn waiting(env: &HavenEnv) -> usize {
    count(&env.path("mail/intake/new"))
}

fn settled(env: &HavenEnv) -> usize {
    count(&env.path("mail/intake/cur"))
}

/// Delivers `n` forwards of about 30 KB each: together more than the space the database may
/// already hold (a WAL reused after a checkpoint), so a full disk really refuses them.
fn deliver_all(env: &HavenEnv, n: usize) {
    for i in 0..n {
        env.deliver(&format!("{:010}.M{i}P1.test", 1_700_000_000 + i), &padded(forward(i), 500));
    }
}

/// `raw` with `lines` padding lines (58 bytes each) added to its body.
fn padded(mut raw: Vec<u8>, lines: usize) -> Vec<u8> {
    raw.extend(std::iter::repeat_n(b"The same padding line, to make the message large enough.\n".as_slice(), lines).flatten());
    raw
}

/// Every one of `n` forwards filed exactly once, and nothing else recorded.
fn assert_filed_once(env: &HavenEnv, n: usize) {
    let s = env.status();
    assert_eq!(s["messages"]["filed"], n, "every message filed: {s}");
    assert_eq!(s["incidents"], n, "each exactly once: {s}");
    for other in ["awaiting_triage", "quarantined", "duplicate", "ignored"] {
        assert_eq!(s["messages"][other], 0, "{other}: {s}");
    }
}

/// Every message moved out of `new/` is in the database, as another process reads it.
fn assert_moved_only_what_is_filed(env: &HavenEnv, daemon: &Daemon) {
    let filed = env.status()["messages"]["filed"].as_u64().unwrap_or(0) as usize;
    assert_eq!(settled(env), filed, "a message was moved out of new/ without being in the database:\n{}", daemon.log());
}

/// Waits until all `n` delivered messages have left `new/`, the daemon running throughout.
fn wait_until_settled(env: &HavenEnv, daemon: &mut Daemon, n: usize) {
    wait_for("every message settled", Duration::from_secs(120), || {
        daemon.assert_running();
        if settled(env) == n && waiting(env) == 0 { Ok(()) } else { Err(format!("{} settled", settled(env))) }
    });
}

fn wait_for_log(daemon: &mut Daemon, needle: &str, within: Duration) {
    wait_for(&format!("{needle:?} in the daemon's log"), within, || {
        daemon.assert_running();
        let log = daemon.log();
        if log.contains(needle) { Ok(()) } else { Err(log.lines().last().unwrap_or("").to_string()) }
    });
}

/// The database's disk fills while 200 messages wait: nothing is moved out of `new/` and
/// nothing is claimed as filed; kill -9 while it is full; once space returns (and the daemon
/// is restarted) all 200 are filed exactly once.
async fn a_full_disk_files_nothing_until_space_returns_then_everything_once(backend: Backend) {
    const N: usize = 200;
    let db = DiskDb::new(backend, "64m").await;
    let disk = &db.disk;
    let env = HavenEnv::new(&db.url, "");
    env.import_school();
    let mut daemon = env.start();
    wait_for_log(&mut daemon, "haven running", Duration::from_secs(30));

    disk.fill();
    deliver_all(&env, N);
    wait_for_log(&mut daemon, "filing failed", Duration::from_secs(60));
    std::thread::sleep(Duration::from_secs(3));
    daemon.assert_running();
    // A full disk can still take a few pages into space SQLite already holds (its WAL is
    // reused after a checkpoint), so a first batch may really commit; what must hold is that
    // nothing left new/ that the database does not have.
    assert_moved_only_what_is_filed(&env, &daemon);
    assert!(waiting(&env) > 0, "the full disk refused nothing: the test proved nothing");

    // Killed while the disk is full, started again once there is room.
    drop(daemon);
    disk.free();
    let mut daemon = env.start();
    wait_until_settled(&env, &mut daemon, N);
    daemon.stop();
    assert_filed_once(&env, N);
    db.cleanup().await;
}

/// The disk fills and empties again under the running daemon, which is never restarted: it
/// recovers by itself, and what it files after the fault really is in the database (a
/// connection left inside a failed transaction would make later "commits" vanish).
async fn a_running_daemon_recovers_from_a_full_disk_without_a_restart(backend: Backend) {
    const N: usize = 120;
    let db = DiskDb::new(backend, "64m").await;
    let disk = &db.disk;
    let env = HavenEnv::new(&db.url, "");
    env.import_school();
    let mut daemon = env.start();
    wait_for_log(&mut daemon, "haven running", Duration::from_secs(30));

    // Half arrive with room, then the disk fills in the middle of the rest.
    for i in 0..N / 2 {
        env.deliver(&format!("{:010}.M{i}P1.test", 1_700_000_000 + i), &forward(i));
    }
    disk.fill();
    for i in N / 2..N {
        env.deliver(&format!("{:010}.M{i}P1.test", 1_700_000_000 + i), &forward(i));
    }
    std::thread::sleep(Duration::from_secs(4));
    disk.free();
    wait_until_settled(&env, &mut daemon, N);
    // What the daemon filed must be in the database as another process sees it, now and
    // after the daemon is gone.
    assert_filed_once(&env, N);
    drop(daemon);
    assert_filed_once(&env, N);
    db.cleanup().await;
}

/// A database that refuses every write (SQLite: its disk is full; PostgreSQL: the database is
/// made read-only) is not hammered: the daemon backs off, logs the failure once (not per
/// retry), and files everything once writes work again.
async fn a_failing_database_is_retried_with_backoff_and_logged_once(backend: Backend) {
    const N: usize = 20;
    let db = DiskDb::new(backend, "64m").await;
    let disk = &db.disk;
    let env = HavenEnv::new(&db.url, "");
    env.import_school();
    let mut daemon = env.start_env(&[("RUST_LOG", "haven=debug")]);
    wait_for_log(&mut daemon, "haven running", Duration::from_secs(30));

    let read_only = |on: bool| {
        let db = db.pg.clone();
        async move {
            let Some(name) = db else { return };
            let mut admin = admin().await;
            let set = if on { "SET default_transaction_read_only = on" } else { "RESET default_transaction_read_only" };
            for sql in [
                format!("ALTER DATABASE {name} {set}"),
                format!("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{name}'"),
            ] {
                sqlx::query(sqlx::AssertSqlSafe(sql)).execute(&mut admin).await.expect("make the database read-only");
            }
        }
    };
    match backend {
        Backend::Sqlite => disk.fill(),
        Backend::Postgres => read_only(true).await,
    }
    // On SQLite, 175 KB each (3.5 MB in all), so that a WAL reused after a checkpoint cannot take
    // them; PostgreSQL refuses every write whatever its size.
    let lines = if backend == Backend::Sqlite { 3_000 } else { 500 };
    for i in 0..N {
        env.deliver(&format!("{:010}.M{i}P1.test", 1_700_000_000 + i), &padded(forward(i), lines));
    }
    wait_for_log(&mut daemon, "filing failed", Duration::from_secs(60));
    std::thread::sleep(Duration::from_secs(12));
    let log = daemon.log();
    let failures = log.matches("filing failed").count();
    let retries = log.matches("filing will be retried").count();
    // Logged once per change of state, not per retry. (SQLite can take one more batch into
    // WAL space a checkpoint freed, which is a recovery and a new failure: at most a few.)
    let recoveries = log.matches("filing works again").count();
    assert_eq!(failures, 1 + recoveries, "the failure is logged once per change of state, not per retry:\n{log}");
    assert!(failures <= 3, "{failures} failures logged in 12 s:\n{log}");
    // Backoff: 0.5–1 s, 1–2 s, 2–4 s, 4–8 s … gives at most 5 retries in 12 s (fewer when each
    // attempt is slow on a loaded machine); four a second would be 48.
    assert!((1..=8).contains(&retries), "12 s of a refusing database: {retries} attempts:\n{log}");
    assert_moved_only_what_is_filed(&env, &daemon);

    match backend {
        Backend::Sqlite => disk.free(),
        Backend::Postgres => read_only(false).await,
    }
    wait_until_settled(&env, &mut daemon, N);
    // The recovery is logged: by the intake that kept retrying, or, on PostgreSQL, by the
    // daemon leading again (making the database read-only ends its lease connection too, so
    // its intake stops and a new one starts with the next term).
    let log = daemon.log();
    assert!(log.contains("filing works again") || log.matches("this daemon leads").count() > 1, "{log}");
    daemon.stop();
    assert_filed_once(&env, N);
    db.cleanup().await;
}

/// PostgreSQL terminates the daemon's backends again and again while 300 messages are filed:
/// every message is filed exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_backends_killed_mid_batch_lose_nothing_and_file_nothing_twice() {
    const N: usize = 300;
    let db = DiskDb::new(Backend::Postgres, "64m").await;
    let name = db.pg.clone().unwrap();
    let env = HavenEnv::new(&db.url, "");
    env.import_school();
    let mut daemon = env.start();
    wait_for_log(&mut daemon, "haven running", Duration::from_secs(30));
    deliver_all(&env, N);

    let mut admin = admin().await;
    let mut killed = 0i64;
    let started = std::time::Instant::now();
    while settled(&env) < N && started.elapsed() < Duration::from_secs(8) {
        let n: i64 = sqlx::query_scalar(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()",
        )
        .bind(&name)
        .fetch_one(&mut admin)
        .await
        .expect("pg_terminate_backend");
        killed += n;
        tokio::time::sleep(Duration::from_millis(rand::random_range(30..200))).await;
    }
    println!("backends terminated while filing: {killed}; settled by then: {}", settled(&env));
    assert!(killed > 0, "no backend was terminated: the test proved nothing");
    wait_until_settled(&env, &mut daemon, N);
    daemon.stop();
    assert_filed_once(&env, N);
    db.cleanup().await;
}

backend_tests!(
    a_full_disk_files_nothing_until_space_returns_then_everything_once,
    a_running_daemon_recovers_from_a_full_disk_without_a_restart,
    a_failing_database_is_retried_with_backoff_and_logged_once,
);
