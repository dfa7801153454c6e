//! Several `haven run` on one PostgreSQL database and one IMAP mailbox (issue 25): only the
//! leader reads the intake and runs the scheduler, every daemon sends from the outbox, and so
//! each message is filed once and each alert and digest is sent once — while the leader is
//! killed with kill -9 and the next one's database sessions are terminated.
//!
//! PostgreSQL only, by nature: several daemons on one database is what PostgreSQL is for.
//! SQLite allows one daemon per database, and the last test checks a second is refused.
//!
//! Real parts throughout: three `haven run` processes, Dovecot, aiosmtpd, the local
//! PostgreSQL. The lease keeps its shipped default (15 s), so the takeover time measured here
//! is what a school gets.

mod support;

use chrono::{Duration as Span, Utc};
use haven::store::{LeaseState, MessageState, Store};
use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use support::db::{Backend, TestDb};
use support::dovecot::{Dovecot, PASSWORD, USER};
use support::haven::{HavenEnv, school_fixtures};
use support::smtp::{SmtpServer, header};

/// Messages appended to the mailbox in each of the three rounds.
const ROUND: usize = 30;

/// What nothing in a daemon's log may name: the fixture's pupil, parent, staff and text.
const PRIVATE: [&str; 5] = ["Jane", "Smith", "lunch money", "teacher@school.example", "Worried"];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_daemons_file_once_and_send_once_through_a_kill_9_and_a_cut_off_leader() {
    let db = TestDb::new(Backend::Postgres).await;
    let mail = Dovecot::start();
    let smtp = SmtpServer::start();
    let env = HavenEnv::with_smtp(&db.url, "", smtp.port);
    use_imap(&env, &mail);
    // A digest to the DSL team falls due while the daemons run (two minutes from now).
    let digest_slot = add_daily_digest(&env, Span::seconds(120));
    env.import_school();

    let mut daemons: Vec<Daemon> = ["a", "b", "c"].into_iter().map(|n| Daemon::start(&env, n)).collect();
    let first = wait_for_leader(&db.store, &mut daemons, &[], Duration::from_secs(30)).await;
    let status = env.haven(&["status"]);
    assert!(
        status.stdout.contains(&format!("leader: {} (term", daemons[first].holder())),
        "haven status names the leader:\n{}{}",
        status.stdout,
        status.stderr
    );

    // Round 1: the leader is killed while it files.
    let first_half: Vec<Vec<u8>> = (0..ROUND / 2).map(forward).collect();
    mail.append_all(&first_half).await;
    wait_filed(&db.store, 3, Duration::from_secs(60)).await;
    let killed = Instant::now();
    daemons[first].kill_9();
    let rest: Vec<Vec<u8>> = (ROUND / 2..ROUND).map(forward).collect();
    mail.append_all(&rest).await;
    let second = wait_for_leader(&db.store, &mut daemons, &[first], Duration::from_secs(40)).await;
    let takeover = killed.elapsed();
    println!("kill -9 of the leader: daemon {} took over after {takeover:.1?}", daemons[second].name);
    assert!(takeover < Duration::from_secs(30), "takeover took {takeover:?}");

    // Round 2: filed by the new leader.
    mail.append_all(&(ROUND..2 * ROUND).map(forward).collect::<Vec<_>>()).await;
    wait_filed(&db.store, 2 * ROUND, Duration::from_secs(120)).await;

    // The new leader's database sessions are terminated: it steps down and the third leads.
    let cut = terminate_backends(&db.store, &daemons[second].holder()).await;
    assert!(cut >= 1, "the leader had no backend to terminate");
    let cut_at = Instant::now();
    let stepped_down = wait_for_log(&daemons[second], "no longer leads", Duration::from_secs(15)).await;
    println!("backends of daemon {} terminated ({cut}); it stepped down after {:.1?}", daemons[second].name, cut_at.elapsed());
    let third = wait_for_leader(&db.store, &mut daemons, &[first, second], Duration::from_secs(60)).await;
    println!("daemon {} leads after {:.1?}", daemons[third].name, cut_at.elapsed());

    // Round 3: filed by the third leader; the cut-off daemon files nothing more.
    mail.append_all(&(2 * ROUND..3 * ROUND).map(forward).collect::<Vec<_>>()).await;
    wait_filed(&db.store, 3 * ROUND, Duration::from_secs(120)).await;
    let after_cut = &daemons[second].log()[stepped_down..];
    assert!(!after_cut.contains("message recorded"), "the cut-off daemon kept filing:\n{after_cut}");

    // Everything sent: the digest slot has passed and the outbox is empty (emails the killed
    // daemon had claimed wait out their claim, at most two minutes, then another sends them).
    wait_until("the digest slot and an empty outbox", Duration::from_secs(300), || async {
        let s = db.store.status(Utc::now()).await.ok();
        Utc::now() > digest_slot + Span::seconds(5) && s.is_some_and(|s| s.outbox_pending == 0)
    })
    .await;
    assert_eq!(mail.count("INBOX").await, 0, "the intake mailbox is empty");

    let logs: Vec<String> = daemons.iter().map(Daemon::log).collect();
    for d in daemons.into_iter() {
        d.stop();
    }

    let s = db.store.status(Utc::now()).await.expect("status");
    let n = |st| s.messages.get(&st).copied().unwrap_or(0);
    assert_eq!(n(MessageState::Filed), 3 * ROUND as u64, "each message filed once");
    assert_eq!(s.incidents, 3 * ROUND as u64, "one incident each");
    for st in [MessageState::AwaitingTriage, MessageState::Quarantined, MessageState::Duplicate, MessageState::Ignored] {
        assert_eq!(n(st), 0, "{st:?}");
    }

    // At the SMTP server: every email once, and as many as the outbox says were sent.
    let received = smtp.messages();
    let ids: Vec<String> = received.iter().map(|m| header(m, "Message-ID").unwrap_or_default()).collect();
    let distinct: BTreeSet<&String> = ids.iter().collect();
    // Delivery is at least once: an email the SMTP server accepted in the instant before the
    // kill -9, not yet marked sent, goes again from another daemon once its claim runs out,
    // with the same Message-ID (so a mail client shows it once). That is at most the one email
    // the killed daemon had in hand; nothing else may repeat.
    let repeated = ids.len() - distinct.len();
    assert!(repeated <= 1, "{repeated} emails sent twice: {ids:#?}");
    assert_eq!(distinct.len() as u64, s.outbox_sent, "emails received vs. the outbox's sent count");
    assert_eq!(s.outbox_dead, 0);

    // Every incident alerted, and each alert it queued received exactly once (the rules alert
    // more from a pupil's third incident on, so the count per incident comes from the outbox).
    let mut alerts: BTreeMap<i64, i64> = BTreeMap::new();
    for id in &distinct {
        if let Some(incident) = id.strip_prefix("<haven.").and_then(|r| r.split_once(".alert.")).and_then(|(n, _)| n.parse().ok()) {
            *alerts.entry(incident).or_default() += 1;
        }
    }
    assert_eq!(alerts.len(), 3 * ROUND, "alerts for every incident: {alerts:?}");
    assert_eq!(alerts, queued_alerts(&db.store).await, "alerts received per incident vs. queued");
    // The digest slot: one digest to each DSL-team recipient, none twice.
    let digests: Vec<&&String> = distinct.iter().filter(|id| id.starts_with("<haven.digest.")).collect();
    let recipients: BTreeSet<&str> = digests.iter().filter_map(|id| id.split('.').nth(2)).collect();
    assert!(!digests.is_empty(), "no digest was sent");
    assert_eq!(recipients.len(), digests.len(), "a recipient had two digests: {digests:?}");
    println!("{} alerts and {} digests, each sent once", alerts.values().sum::<i64>(), digests.len());

    for log in &logs {
        for word in PRIVATE {
            assert!(!log.contains(word), "a daemon's log names {word:?}");
        }
    }
    db.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_daemon_on_one_sqlite_database_is_refused() {
    let db = TestDb::new(Backend::Sqlite).await;
    let env = HavenEnv::new(&db.url, "");
    env.import_school();
    let mut one = Daemon::start(&env, "one");
    wait_for_log(&one, "haven running", Duration::from_secs(30)).await;
    let second = env.haven(&["run"]);
    assert_eq!(second.code, 1, "the second daemon must not start: {}", second.stderr);
    assert!(
        second.stderr.contains("one daemon per database") && second.stderr.contains(&one.holder()),
        "the refusal names the rule and the running daemon: {}",
        second.stderr
    );
    one.assert_running();
    one.stop();
    // Once the first has stopped, a daemon starts again.
    let again = Daemon::start(&env, "again");
    wait_for_log(&again, "haven running", Duration::from_secs(30)).await;
    again.stop();
    db.cleanup().await;
}

/// One `haven run`, logging to `var/NAME.log`.
struct Daemon {
    name: &'static str,
    child: Option<Child>,
    log: PathBuf,
}

impl Daemon {
    fn start(env: &HavenEnv, name: &'static str) -> Daemon {
        let log = env.path(&format!("var/{name}.log"));
        let out = std::fs::File::create(&log).unwrap_or_else(|e| panic!("{e}"));
        let err = out.try_clone().unwrap_or_else(|e| panic!("{e}"));
        let child = Command::new(env!("CARGO_BIN_EXE_haven"))
            .args(["run", "--config"])
            .arg(&env.config)
            .current_dir(env.dir.path())
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start haven run: {e}"));
        Daemon { name, child: Some(child), log }
    }

    /// The name it leads under: "host:pid".
    fn holder(&self) -> String {
        let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
        format!("{}:{}", host.trim(), self.child.as_ref().map_or(0, Child::id))
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn alive(&mut self) -> bool {
        self.child.as_mut().is_some_and(|c| matches!(c.try_wait(), Ok(None)))
    }

    fn assert_running(&mut self) {
        assert!(self.alive(), "haven run {} exited early:\n{}", self.name, self.log());
    }

    fn kill_9(&mut self) {
        if let Some(mut c) = self.child.take() {
            c.kill().unwrap_or_else(|e| panic!("kill -9: {e}"));
            let _ = c.wait();
        }
    }

    /// SIGTERM; it must exit 0 within 20 s (a daemon killed earlier is skipped).
    fn stop(mut self) {
        let Some(mut c) = self.child.take() else { return };
        let _ = Command::new("kill").args(["-TERM", &c.id().to_string()]).status();
        let deadline = Instant::now() + Duration::from_secs(20);
        let status = loop {
            if let Ok(Some(status)) = c.try_wait() {
                break status;
            }
            if Instant::now() > deadline {
                let _ = c.kill();
                panic!("haven run {} ignored SIGTERM:\n{}", self.name, self.log());
            }
            std::thread::sleep(Duration::from_millis(50));
        };
        assert_eq!(status.code(), Some(0), "haven run {} after SIGTERM:\n{}", self.name, self.log());
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        self.kill_9();
    }
}

/// Waits until a running daemon not in `not` holds the lease, and returns its index.
async fn wait_for_leader(store: &Store, daemons: &mut [Daemon], not: &[usize], within: Duration) -> usize {
    let deadline = Instant::now() + within;
    let mut last: Option<LeaseState> = None;
    loop {
        for (i, d) in daemons.iter_mut().enumerate() {
            if !not.contains(&i) {
                d.assert_running();
            }
        }
        if let Ok(Some(lease)) = store.leader_lease().await {
            if lease.is_held()
                && let Some(i) = daemons.iter().position(|d| d.holder() == lease.holder)
                && !not.contains(&i)
            {
                return i;
            }
            last = Some(lease);
        }
        assert!(Instant::now() < deadline, "no new leader within {within:?}; the lease: {last:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn wait_filed(store: &Store, n: usize, within: Duration) {
    wait_until(&format!("{n} messages filed"), within, || async {
        let s = store.status(Utc::now()).await.ok();
        s.is_some_and(|s| s.messages.get(&MessageState::Filed).copied().unwrap_or(0) >= n as u64)
    })
    .await;
}

/// Waits until `needle` is in the daemon's log; returns where.
async fn wait_for_log(d: &Daemon, needle: &str, within: Duration) -> usize {
    let deadline = Instant::now() + within;
    loop {
        if let Some(at) = d.log().find(needle) {
            return at;
        }
        assert!(Instant::now() < deadline, "daemon {} did not log {needle:?} within {within:?}:\n{}", d.name, d.log());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn wait_until<F, Fut>(what: &str, within: Duration, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = Instant::now() + within;
    while !check().await {
        assert!(Instant::now() < deadline, "timed out after {within:?} waiting for {what}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// How many alerts the outbox queued for each incident.
async fn queued_alerts(store: &Store) -> BTreeMap<i64, i64> {
    let Store::Postgres(pool) = store else { panic!("PostgreSQL only") };
    sqlx::query_as::<_, (i64, i64)>("SELECT incident_id, COUNT(*) FROM outbox WHERE purpose = 'alert' GROUP BY incident_id")
        .fetch_all(pool)
        .await
        .unwrap_or_else(|e| panic!("outbox: {e}"))
        .into_iter()
        .collect()
}

/// Terminates every backend of the daemon `holder` (its connections carry its name), as an
/// administrator or a failing network would; returns how many.
async fn terminate_backends(store: &Store, holder: &str) -> i64 {
    let Store::Postgres(pool) = store else { panic!("PostgreSQL only") };
    sqlx::query_scalar::<_, i64>(
        "SELECT COUNT(*) FROM (SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = $1) t",
    )
    .bind(format!("haven {holder}"))
    .fetch_one(pool)
    .await
    .unwrap_or_else(|e| panic!("pg_terminate_backend: {e}"))
}

/// Points the installation's intake at Dovecot (plain IMAP on loopback).
fn use_imap(env: &HavenEnv, d: &Dovecot) {
    std::fs::write(env.path("secrets/imap-password"), format!("{PASSWORD}\n")).unwrap_or_else(|e| panic!("{e}"));
    let config = std::fs::read_to_string(&env.config).unwrap_or_else(|e| panic!("{e}"));
    assert!(config.contains("source = \"maildir\""), "the test config changed shape");
    let config = config.replace("source = \"maildir\"", "source = \"imap\"")
        + &format!(
            "\n[intake.imap]\nhost = \"127.0.0.1\"\nport = {}\nsecurity = \"plain\"\nusername = \"{USER}\"\n\
             auth = \"password\"\npassword_file = \"secrets/imap-password\"\npoll_interval = \"1s\"\n",
            d.port
        );
    std::fs::write(&env.config, config).unwrap_or_else(|e| panic!("{e}"));
}

/// A daily digest to the DSL team at the school-time second `from_now` ahead; returns when.
fn add_daily_digest(env: &HavenEnv, from_now: Span) -> chrono::DateTime<Utc> {
    let at = Utc::now() + from_now;
    let local = at.with_timezone(&chrono_tz::Europe::London);
    let cron = local.format("%-S %-M %-H * * *").to_string();
    let mut config = std::fs::read_to_string(&env.config).unwrap_or_else(|e| panic!("{e}"));
    config.push_str(&format!("\n[[digest]]\nto = \"role:dsl\"\ncron = \"{cron}\"\n"));
    std::fs::write(&env.config, config).unwrap_or_else(|e| panic!("{e}"));
    at
}

/// The test school's teacher forward, dated now, with its own Message-ID.
fn forward(i: usize) -> Vec<u8> {
    let template =
        std::fs::read_to_string(school_fixtures().join("mail/forward-contact.eml")).unwrap_or_else(|e| panic!("{e}")).replace("\r\n", "\n");
    assert!(template.contains("fwd-contact-1@") && template.contains("Date: Mon, 9 Nov 2026 at 21:14"));
    let now = Utc::now();
    let parent = (now - Span::hours(1)).with_timezone(&chrono_tz::Europe::London);
    template
        .replace("fwd-contact-1@", &format!("fwd-several-{i}@"))
        .replace("Date: Tue, 10 Nov 2026 16:05:00 +0000", &format!("Date: {}", now.to_rfc2822()))
        .replace("Date: Mon, 9 Nov 2026 at 21:14", &format!("Date: {}", parent.format("%a, %-d %b %Y at %H:%M")))
        .replace('\n', "\r\n")
        .into_bytes()
}
