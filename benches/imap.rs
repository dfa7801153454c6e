//! The IMAP intake against a real Dovecot (the test suite's throwaway server,
//! tests/support/dovecot.rs), two measurements in one run:
//!
//! 1. Throughput, side by side, per round: the same N realistic forwards (a third with a 100 KB
//!    attachment) in the intake mailbox; (a) Haven filing all of them end to end into SQLite
//!    (read, identify, rules, seal, commit — synchronous=FULL, so every commit is fsynced — and
//!    moved to Filed), (b) `mbsync` (isync) merely downloading the mailbox to a Maildir with its
//!    default durability (it fsyncs every message). Prints both and the ratio a/b; the median
//!    over the rounds is the figure.
//! 2. Latency: M messages appended one at a time while Haven idles; APPEND-to-committed p50 and
//!    p99, beside the pick-up latency of a bare IDLE client on the same server in the same run
//!    (Dovecot waits about 0.5 s before it notifies an idling client).
//!
//!     cargo bench --bench imap      # as root, with dovecot-imapd and isync (tests/run.sh installs them)
//!
//! HAVEN_BENCH_N (default 2000), HAVEN_BENCH_ROUNDS (3), HAVEN_BENCH_LATENCY_N (200; 0 skips the
//! latency part) and HAVEN_BENCH_BATCH (500, the daemon's batch size).

#[path = "../tests/support/dovecot.rs"]
#[allow(dead_code)]
mod dovecot;
mod support;

use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use dovecot::{Dovecot, PASSWORD, USER};
use haven::pipeline::Filer;
use haven::source::imap::{ImapAuth, ImapSettings, ImapState, ImapStatus, Security, run};
use haven::source::{Disposition, Incoming, Sink, SinkError};
use haven::store::Store;
use tokio_util::sync::CancellationToken;

/// The filing pipeline, noting when each message's commit returned.
struct Timed {
    filer: Filer,
    committed: Mutex<Vec<Instant>>,
    count: AtomicUsize,
}

impl Sink for Timed {
    async fn accept(&self, batch: Vec<Incoming>) -> Result<Vec<Disposition>, SinkError> {
        let n = batch.len();
        let out = self.filer.accept(batch).await?;
        let now = Instant::now();
        if let Ok(mut c) = self.committed.lock() {
            c.extend(std::iter::repeat_n(now, n));
        }
        self.count.fetch_add(n, Ordering::SeqCst);
        Ok(out)
    }
}

fn env_or(name: &str, default: usize) -> usize {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn settings(d: &Dovecot) -> ImapSettings {
    ImapSettings {
        host: "127.0.0.1".into(),
        port: d.port,
        security: Security::Plain,
        username: USER.into(),
        auth: ImapAuth::Password(PASSWORD.into()),
        mailbox: "INBOX".into(),
        filed_folder: "Haven/Filed".into(),
        quarantine_folder: "Haven/Quarantine".into(),
        poll_interval: Duration::from_secs(30),
        max_message_size: 50 * 1024 * 1024,
        batch_size: env_or("HAVEN_BENCH_BATCH", 500),
        idle_renew: Duration::from_secs(25 * 60),
    }
}

/// Haven's IMAP intake filing into a fresh SQLite database under `dir`.
struct Haven {
    sink: Arc<Timed>,
    shutdown: CancellationToken,
    status: ImapStatus,
    task: tokio::task::JoinHandle<()>,
}

impl Haven {
    async fn start(d: &Dovecot, dir: &Path) -> Haven {
        let store = Store::open(&format!("sqlite://{}", dir.join("haven.db").display())).await.expect("open SQLite");
        let filer = support::filer(&store).await;
        let sink = Arc::new(Timed { filer, committed: Mutex::new(Vec::new()), count: AtomicUsize::new(0) });
        let (shutdown, status) = (CancellationToken::new(), ImapStatus::new());
        let (s, t, st, cfg) = (sink.clone(), shutdown.clone(), status.clone(), settings(d));
        let task = tokio::spawn(async move {
            if let Err(e) = run(cfg, &*s, t, &st).await {
                panic!("the IMAP intake stopped: {e}");
            }
        });
        Haven { sink, shutdown, status, task }
    }

    async fn wait_for(&self, n: usize) {
        let deadline = Instant::now() + Duration::from_secs(600);
        while self.sink.count.load(Ordering::SeqCst) < n {
            assert!(Instant::now() < deadline, "Haven filed {} of {n}", self.sink.count.load(Ordering::SeqCst));
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    async fn stop(self) {
        self.shutdown.cancel();
        let _ = tokio::time::timeout(Duration::from_secs(30), self.task).await;
    }
}

/// Reads every message once, so Dovecot's indexes and the page cache are warm for both sides.
async fn warm(d: &Dovecot) {
    use futures_util::TryStreamExt;
    let mut c = d.client().await;
    c.select("INBOX").await.expect("SELECT");
    let fetched: Vec<_> =
        c.fetch("1:*", "(UID RFC822.SIZE BODY.PEEK[])").await.expect("FETCH").try_collect().await.expect("FETCH responses");
    drop(fetched);
    let _ = c.logout().await;
}

/// mbsync pulling INBOX into a Maildir under `dir`, with isync's defaults (FSync yes).
fn mbsync(d: &Dovecot, dir: &Path, n: usize) -> Duration {
    let maildir = dir.join("mbsync");
    std::fs::create_dir_all(&maildir).expect("mbsync dir");
    let conf = dir.join("mbsyncrc");
    std::fs::write(
        &conf,
        format!(
            "IMAPAccount bench\nHost 127.0.0.1\nPort {port}\nUser {USER}\nPass {PASSWORD}\nSSLType None\nAuthMechs LOGIN\n\n\
             IMAPStore remote\nAccount bench\n\n\
             MaildirStore local\nPath {path}/\nInbox {path}/INBOX\n\n\
             Channel bench\nFar :remote:\nNear :local:\nPatterns INBOX\nSync Pull\nCreate Near\nSyncState *\n",
            port = d.port,
            path = maildir.display()
        ),
    )
    .expect("mbsyncrc");
    let started = Instant::now();
    let out = Command::new("mbsync")
        .args(["-q", "-c"])
        .arg(&conf)
        .arg("-a")
        .output()
        .unwrap_or_else(|e| panic!("run mbsync: {e} (apt-get install isync, or run tests/run.sh once)"));
    let took = started.elapsed();
    assert!(out.status.success(), "mbsync failed: {}", String::from_utf8_lossy(&out.stderr));
    let got: usize = ["new", "cur"].iter().map(|sub| std::fs::read_dir(maildir.join("INBOX").join(sub)).map_or(0, |d| d.count())).sum();
    assert_eq!(got, n, "mbsync downloaded {got} of {n}");
    took
}

/// Flushes every dirty page to disk (`sync`).
fn settle_disk() {
    let ok = Command::new("sync").status().is_ok_and(|s| s.success());
    assert!(ok, "sync failed");
}

async fn throughput_round(n: usize, att: &str) -> (Duration, Duration) {
    let d = Dovecot::start();
    let raws: Vec<Vec<u8>> = (0..n).map(|i| support::message(i, att)).collect();
    d.append_all(&raws).await;
    drop(raws);
    warm(&d).await;
    let dir = tempfile::tempdir().expect("temp dir");

    // Each side starts with no dirty pages left by the other (or by the previous round), so
    // neither pays for the other's writeback inside its fsyncs.
    settle_disk();
    let b = mbsync(&d, dir.path(), n);

    settle_disk();
    let started = Instant::now();
    let haven = Haven::start(&d, dir.path()).await;
    haven.wait_for(n).await;
    while d.count("INBOX").await > 0 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let a = started.elapsed();
    haven.stop().await;
    let filed = d.count(&format!("Haven{}Filed", d.delimiter().await)).await;
    assert_eq!(filed as usize, n, "Filed holds {filed} of {n}");
    (a, b)
}

fn pct(v: &mut [Duration], p: usize) -> Duration {
    v.sort_unstable();
    v.get((v.len() * p / 100).min(v.len().saturating_sub(1))).copied().unwrap_or(Duration::MAX)
}

async fn latency(m: usize, att: &str) {
    const PROBE: &str = "Probe";
    let d = Dovecot::start();
    d.create(PROBE).await;
    let dir = tempfile::tempdir().expect("temp dir");
    let haven = Haven::start(&d, dir.path()).await;
    while haven.status.state() != ImapState::Idle {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let stop = CancellationToken::new();
    let watcher = d.idle_watcher(PROBE, tx, stop.clone()).await;
    tokio::time::sleep(Duration::from_millis(300)).await;

    let mut c = d.client().await;
    let (mut to_haven, mut to_bare) = (Vec::with_capacity(m), Vec::with_capacity(m));
    for i in 0..m {
        let raw = support::message(100_000 + i, att);
        c.append("INBOX", None, None, &raw).await.expect("APPEND");
        let appended = Instant::now();
        c.append(PROBE, None, None, &raw).await.expect("APPEND");
        let probed = Instant::now();
        let seen = tokio::time::timeout(Duration::from_secs(30), rx.recv()).await;
        let Ok(Some(seen)) = seen else { panic!("the bare IDLE client saw nothing") };
        to_bare.push(seen.saturating_duration_since(probed));
        haven.wait_for(i + 1).await;
        let committed = haven.sink.committed.lock().ok().and_then(|c| c.last().copied());
        to_haven.push(committed.map_or(Duration::MAX, |t| t.saturating_duration_since(appended)));
        // Let both sides settle back into IDLE before the next message.
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let _ = c.logout().await;
    stop.cancel();
    let _ = watcher.await;
    haven.stop().await;
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    let (h50, h99) = (pct(&mut to_haven, 50), pct(&mut to_haven, 99));
    let (b50, b99) = (pct(&mut to_bare, 50), pct(&mut to_bare, 99));
    println!(
        "latency, {m} messages appended one at a time: Haven APPEND-to-committed p50 {:.0} ms, p99 {:.0} ms, max {:.0} ms; \
         bare IDLE client p50 {:.0} ms, p99 {:.0} ms; p50 difference {:+.0} ms",
        ms(h50),
        ms(h99),
        ms(to_haven.last().copied().unwrap_or_default()),
        ms(b50),
        ms(b99),
        ms(h50) - ms(b50)
    );
}

fn main() {
    let n = env_or("HAVEN_BENCH_N", 2000);
    let rounds = env_or("HAVEN_BENCH_ROUNDS", 3).max(1);
    let m = env_or("HAVEN_BENCH_LATENCY_N", 200);
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("runtime");
    rt.block_on(async {
        let att = support::attachment();
        let mut ratios = Vec::new();
        for r in 1..=rounds {
            let (a, b) = throughput_round(n, &att).await;
            let ratio = a.as_secs_f64() / b.as_secs_f64();
            println!(
                "round {r}: {n} messages; (a) Haven filing into SQLite {:.2} s ({:.0} msg/s), (b) mbsync download {:.2} s ({:.0} msg/s); a/b = {ratio:.2}",
                a.as_secs_f64(),
                n as f64 / a.as_secs_f64(),
                b.as_secs_f64(),
                n as f64 / b.as_secs_f64()
            );
            ratios.push(ratio);
        }
        ratios.sort_by(f64::total_cmp);
        println!("throughput: median a/b over {rounds} rounds = {:.2} (target <= 1.0)", ratios[ratios.len() / 2]);
        if m > 0 {
            latency(m, &att).await;
        }
    });
}
