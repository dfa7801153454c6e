//! Backfills without an alert storm (issue 25), on both engines: a message whose original is
//! older than `intake.backfill_age` (7 days unless configured), or anything filed by `haven
//! ingest --backfill`, is filed on the pupil's chronology with its history, but queues no
//! alert and opens no outcome deadline or reminder; the DSL's digest says how many historical
//! messages were filed; a rule with `on_backfill = "alert"` opts back in. Through the real
//! pipeline and scheduler, the real `haven ingest`, and the real daemon reading a real Dovecot.

mod support;

use chrono::{DateTime, Duration, TimeZone, Utc};
use haven::clock::ManualClock;
use haven::config::Digest;
use haven::pipeline::{Filer, FilingSettings};
use haven::read::Limits;
use haven::rules::{LiveRules, RuleSet};
use haven::schedule::{ScheduleSettings, tick};
use haven::seal::Sealer;
use haven::source::{Incoming, Origin, Payload};
use haven::store::{MessageState, Store};
use sqlx::Row;
use std::path::Path;
use std::sync::Arc;
use support::db::{Backend, TestDb};
use support::dovecot::{Dovecot, PASSWORD, USER};
use support::haven::{HavenEnv, wait_for};

/// Monday 9 November 2026, 06:00 UTC: before the 07:30 digest.
fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 9, 6, 0, 0).single().expect("a time")
}

/// A teacher forwarding a parent's email about Jane, written (by the parent) at `written`.
/// `words` is the parent's text; `n` keeps Message-IDs apart.
fn forward(n: u32, written: DateTime<Utc>, words: &str) -> Vec<u8> {
    let when = written.format("%a, %-d %b %Y at %H:%M");
    format!(
        "From: Terry Teach <teacher@school.example>\r\nTo: safeguarding@school.example\r\n\
         Subject: Fwd: About Jane {n}\r\nDate: Mon, 9 Nov 2026 05:00:00 +0000\r\n\
         Message-ID: <backfill-{n}@mail.school.example>\r\nMIME-Version: 1.0\r\n\
         Content-Type: text/plain; charset=utf-8\r\n\r\nPupil: Jane Smith\r\n\r\n\
         ---------- Forwarded message ---------\r\nFrom: Mary Smith <parent.smith@example.com>\r\n\
         Date: {when}\r\nSubject: About Jane {n}\r\nTo: Terry Teach <teacher@school.example>\r\n\r\n\
         {words}\r\n\r\nMary\r\n"
    )
    .into_bytes()
}

const DISCLOSURE: &str = "Jane told me her brother hits me, she said, and she is scared to go home.";
const PE_KIT: &str = "Jane left her PE kit on the bus again, sorry.";

/// The test school, imported through `haven directory import`, with its rules folder.
fn school(db: &TestDb, extra_rules: Option<&str>) -> HavenEnv {
    let env = HavenEnv::new(&db.url, "backfill_age = \"7d\"");
    env.import_school();
    if let Some(rules) = extra_rules {
        std::fs::write(env.path("rules/90-backfill.toml"), rules).expect("write the extra rules");
    }
    env
}

/// The school's own filing pipeline, in this process, on a clock standing at [`now`].
fn filer(db: &TestDb, env: &HavenEnv) -> Filer {
    let rules = RuleSet::load(&env.path("rules")).unwrap_or_else(|e| panic!("the rules: {e}"));
    let sealer = Sealer::from_key_file(&env.path("secrets/haven.key")).expect("the storage key");
    let settings = FilingSettings {
        intake_address: "safeguarding@school.example".into(),
        mail_domain: "school.example".into(),
        limits: Limits { timezone: chrono_tz::Europe::London, ..Limits::default() },
        trusted_authserv_id: None,
        alerts: haven::alert::AlertSettings {
            detail: haven::config::Detail::Minimal,
            mail_domain: "school.example".into(),
            school_name: "Test School".into(),
        },
        reply_key: Some(vec![9; 32]),
        backfill_age: Duration::days(7),
        ai_read: false,
    };
    Filer::new(db.store.clone(), Arc::new(LiveRules::new(rules)), Arc::new(ManualClock::new(now())), sealer, settings)
}

fn file(n: u32, raw: Vec<u8>) -> Incoming {
    Incoming { origin: Origin::File { path: format!("backfill-{n}.eml").into() }, payload: Payload::Raw(raw) }
}

/// How many emails of `purpose` are queued about `incident`.
async fn queued_about(store: &Store, incident: i64, purpose: &str) -> i64 {
    let sql = "SELECT COUNT(*) AS n FROM outbox WHERE incident_id = $1 AND purpose = $2";
    match store {
        Store::Sqlite(p) => sqlx::query(sql).bind(incident).bind(purpose).fetch_one(p).await.unwrap().get("n"),
        Store::Postgres(p) => sqlx::query(sql).bind(incident).bind(purpose).fetch_one(p).await.unwrap().get("n"),
    }
}

/// Every queued email of `purpose`: (recipient, subject, body).
async fn queued(store: &Store, purpose: &str) -> Vec<(String, String, String)> {
    let sql = "SELECT recipient, subject, body FROM outbox WHERE purpose = $1 ORDER BY id";
    match store {
        Store::Sqlite(p) => {
            sqlx::query(sql).bind(purpose).fetch_all(p).await.unwrap().iter().map(|r| (r.get(0), r.get(1), r.get(2))).collect()
        }
        Store::Postgres(p) => {
            sqlx::query(sql).bind(purpose).fetch_all(p).await.unwrap().iter().map(|r| (r.get(0), r.get(1), r.get(2))).collect()
        }
    }
}

/// Three disclosures written two years ago and one written an hour ago, filed in one batch:
/// all four are on Jane's chronology, only the recent one alerted and awaits an outcome, and
/// the DSL's next digest lists it and counts the three historical messages.
async fn old_messages_are_filed_without_alerts_and_the_digest_counts_them(backend: Backend) {
    let db = TestDb::new(backend).await;
    let env = school(&db, None);
    let filer = filer(&db, &env);
    let years_ago = now() - Duration::days(730);
    let batch: Vec<Incoming> =
        [(1, years_ago), (2, years_ago + Duration::days(3)), (3, now() - Duration::days(8)), (4, now() - Duration::hours(1))]
            .into_iter()
            .map(|(n, at)| file(n, forward(n, at, DISCLOSURE)))
            .collect();
    let filed = filer.file_batch(&batch).await.expect("file the batch");
    assert!(filed.iter().all(|f| f.state == MessageState::Filed), "{filed:?}");
    let incidents: Vec<i64> = filed.iter().map(|f| f.incident.expect("an incident")).collect();
    let (old, recent) = (&incidents[..3], incidents[3]);

    for &i in old {
        assert_eq!(queued_about(&db.store, i, "alert").await, 0, "historical incident {i} alerts nobody");
    }
    assert!(queued_about(&db.store, recent, "alert").await >= 2, "the recent disclosure alerts the DSL and DDSL");
    let open: Vec<i64> = db.store.open_actions().await.unwrap().iter().map(|a| a.incident_id).collect();
    assert_eq!(open, vec![recent], "only the recent disclosure awaits an outcome (and can escalate)");

    let reasons: Vec<String> = db.store.messages(Some(MessageState::Filed)).await.unwrap().into_iter().map(|m| m.reason).collect();
    assert_eq!(reasons.iter().filter(|r| r.contains("historical: no alerts sent")).count(), 3, "{reasons:?}");

    let jane = db.store.load_directory(&Sealer::from_key_file(&env.path("secrets/haven.key")).unwrap()).await.unwrap();
    let jane = jane.pupils.iter().find(|p| p.upn == "A100000000001").expect("Jane").id;
    let chronology = db.store.chronology(jane).await.unwrap();
    assert_eq!(chronology.len(), 4, "every message is on her chronology");
    assert_eq!(chronology[0].occurred_at.date_naive(), years_ago.date_naive(), "dated when the parent wrote");

    // The scheduler: the first pass only marks where the DSL's digests start; at 07:30 the
    // digest lists the one live incident and counts the historical ones.
    let settings = ScheduleSettings {
        digests: vec![Digest { to: "role:dsl".into(), cron: "0 30 7 * * *".into(), send_empty: false }],
        tz: chrono_tz::Europe::London,
        mail_domain: "school.example".into(),
        school_name: "Test School".into(),
        keys: Arc::new(haven::store::LiveKeys::new(Sealer::from_key_file(&env.path("secrets/haven.key")).unwrap(), None)),
        directory: Default::default(),
        detail: haven::config::Detail::Minimal,
    };
    tick(&db.store, &settings, now()).await.expect("a pass");
    let report = tick(&db.store, &settings, now() + Duration::minutes(90)).await.expect("the 07:30 pass");
    assert_eq!(report.digests_queued, 1, "{report:?}");
    assert_eq!(report.reminders_queued, 0, "no reminder for a historical incident: {report:?}");
    let digests = queued(&db.store, "digest").await;
    let (to, subject, body) = &digests[0];
    assert_eq!(to, "dsl@school.example");
    assert!(subject.contains(": 1 new,"), "{subject}");
    assert!(body.contains("3 historical messages filed, no alerts sent"), "{body}");
    assert!(body.contains(&format!("#{recent} ")), "{body}");
    for &i in old {
        assert!(!body.contains(&format!("#{i} ")), "historical incident {i} is counted, not listed: {body}");
    }
    // Days later, still no reminder about the historical incidents.
    let later = tick(&db.store, &settings, now() + Duration::days(5)).await.expect("a later pass");
    let reminders = queued(&db.store, "reminder").await;
    assert!(reminders.iter().all(|(_, s, _)| s.contains(&format!("#{recent}"))), "{later:?} {reminders:?}");
    db.cleanup().await;
}

/// `on_backfill = "alert"` brings a rule's historical messages back to the DSL; a filer
/// filing a backfill (`haven ingest --backfill`) keeps even a recent message quiet.
async fn a_rule_opts_back_in_and_a_backfill_is_quiet_whatever_its_date(backend: Backend) {
    let db = TestDb::new(backend).await;
    let env = school(
        &db,
        Some(
            "[[rule]]\nname = \"Old disclosures are still the DSL's\"\n\
             when.category = [\"Safeguarding / child protection\"]\non_backfill = \"alert\"\n",
        ),
    );
    let old = now() - Duration::days(400);
    let filed = filer(&db, &env).file_batch(&[file(1, forward(1, old, DISCLOSURE)), file(2, forward(2, old, PE_KIT))]).await.expect("file");
    let (disclosure, pe_kit) = (filed[0].incident.unwrap(), filed[1].incident.unwrap());
    assert!(queued_about(&db.store, disclosure, "alert").await >= 2, "the rule opted old disclosures back in");
    assert_eq!(queued_about(&db.store, pe_kit, "alert").await, 0, "other old messages stay quiet");
    let open: Vec<i64> = db.store.open_actions().await.unwrap().iter().map(|a| a.incident_id).collect();
    assert_eq!(open, vec![disclosure], "an opted-in disclosure awaits its outcome");

    let quiet = filer(&db, &env).backfilling();
    let filed = quiet.file_batch(&[file(3, forward(3, now() - Duration::hours(2), PE_KIT))]).await.expect("file");
    assert_eq!(queued_about(&db.store, filed[0].incident.unwrap(), "alert").await, 0, "a backfill alerts nobody");
    db.cleanup().await;
}

fn outbox_pending(env: &HavenEnv) -> u64 {
    env.status()["outbox"]["pending"].as_u64().expect("a pending count")
}

/// Through `haven ingest`: a recent message alerts, an old one does not, and `--backfill`
/// keeps even a recent one quiet; a `backfill_age` Haven cannot read is refused with its key.
async fn haven_ingest_backfills_quietly(backend: Backend) {
    let db = TestDb::new(backend).await;
    let env = school(&db, None);
    let write = |name: &str, raw: Vec<u8>| {
        let path = env.path(name);
        std::fs::write(&path, raw).unwrap();
        path.display().to_string()
    };
    let today = Utc::now();
    let old = write("old.eml", forward(1, today - Duration::days(30), DISCLOSURE));
    let r = env.haven(&["ingest", &old]);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    assert_eq!(outbox_pending(&env), 0, "a month-old disclosure alerts nobody");

    let recent = write("recent.eml", forward(2, today - Duration::hours(1), DISCLOSURE));
    let r = env.haven(&["ingest", "--backfill", &recent]);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    assert_eq!(outbox_pending(&env), 0, "--backfill: a recent disclosure alerts nobody either");

    let live = write("live.eml", forward(3, today - Duration::hours(1), DISCLOSURE));
    let r = env.haven(&["ingest", &live]);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    assert!(outbox_pending(&env) >= 2, "without --backfill it alerts the DSL team");
    let s = env.status();
    assert_eq!(s["incidents"], 3, "{s}");

    let r = env.haven(&["outcomes", "--json"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let outcomes: serde_json::Value = serde_json::from_str(&r.stdout).expect("JSON");
    let awaited: Vec<i64> = outcomes["outcomes"].as_array().into_iter().flatten().filter_map(|o| o["incident"].as_i64()).collect();
    assert_eq!(awaited, vec![3], "only the live disclosure (the third filed) awaits an outcome: {outcomes}");

    let config = std::fs::read_to_string(&env.config).unwrap();
    std::fs::write(&env.config, config.replace("backfill_age = \"7d\"", "backfill_age = \"a week\"")).unwrap();
    let r = env.haven(&["status"]);
    assert_ne!(r.code, 0, "a backfill_age Haven cannot read is refused");
    assert!(r.stderr.contains("intake.backfill_age") && r.stderr.contains("\"a week\""), "{}", r.stderr);
    db.cleanup().await;
}

/// The daemon reading a real Dovecot: a backlog of old forwards and one new one arrive; all
/// are filed, and the alert emails written are about the new one only.
async fn the_daemon_files_an_imap_backlog_without_alerts(backend: Backend) {
    let db = TestDb::new(backend).await;
    let d = Dovecot::start();
    let env = school(&db, None);
    std::fs::write(env.path("secrets/imap-password"), format!("{PASSWORD}\n")).unwrap();
    let config = std::fs::read_to_string(&env.config).unwrap().replace("source = \"maildir\"", "source = \"imap\"")
        + &format!(
            "\n[intake.imap]\nhost = \"127.0.0.1\"\nport = {}\nsecurity = \"plain\"\nusername = \"{USER}\"\n\
             auth = \"password\"\npassword_file = \"secrets/imap-password\"\npoll_interval = \"1s\"\n",
            d.port
        );
    std::fs::write(&env.config, config).unwrap();
    let today = Utc::now();
    let mut backlog: Vec<Vec<u8>> = (1..=5).map(|n| forward(n, today - Duration::days(100 + i64::from(n)), DISCLOSURE)).collect();
    backlog.push(forward(6, today - Duration::minutes(30), DISCLOSURE));
    d.append_all(&backlog).await;

    let mut daemon = env.start();
    wait_for("the backlog to be filed and the alerts written", std::time::Duration::from_secs(90), || {
        daemon.assert_running();
        let s = env.status();
        if s["messages"]["filed"] == 6 && s["outbox"]["pending"] == 0 { Ok(()) } else { Err(s.to_string()) }
    });
    daemon.stop();
    let s = env.status();
    assert_eq!(s["incidents"], 6, "{s}");
    let alerts: Vec<String> = std::fs::read_dir(env.path("var/outbox/new"))
        .map(|dir| dir.filter_map(|e| std::fs::read_to_string(e.ok()?.path()).ok()).collect())
        .unwrap_or_default();
    assert!(alerts.len() >= 2, "the new disclosure alerted the DSL team: {} emails", alerts.len());
    let newest = s["incidents"].as_u64().unwrap();
    let about: Vec<bool> = alerts.iter().map(|a| a.contains(&format!("#{newest}"))).collect();
    assert!(about.iter().all(|x| *x), "every alert is about the new incident #{newest}, none about the backlog");
    db.cleanup().await;
}

/// `on_backfill` takes "alert" or "quiet"; anything else is an error at its position.
#[test]
fn on_backfill_must_be_alert_or_quiet() {
    let dir = tempfile::tempdir().unwrap();
    let shipped = Path::new(env!("CARGO_MANIFEST_DIR")).join("../rules/00-categories.toml");
    std::fs::copy(shipped, dir.path().join("00-categories.toml")).unwrap();
    std::fs::write(
        dir.path().join("10-x.toml"),
        "[[rule]]\nname = \"x\"\nwhen.category = [\"Safeguarding / child protection\"]\non_backfill = \"sometimes\"\n",
    )
    .unwrap();
    let err = RuleSet::load(dir.path()).expect_err("an unknown on_backfill").to_string();
    assert!(err.contains("10-x.toml:4") && err.contains("unknown on_backfill \"sometimes\""), "{err}");
    std::fs::write(
        dir.path().join("10-x.toml"),
        "[[rule]]\nname = \"x\"\nwhen.category = [\"Safeguarding / child protection\"]\non_backfill = \"alert\"\n",
    )
    .unwrap();
    RuleSet::load(dir.path()).unwrap_or_else(|e| panic!("on_backfill = \"alert\" alone is a rule: {e}"));
}

/// A backfill of years of records grows the tables far past what any plan was made for: every
/// message is filed, and on PostgreSQL Haven gathers the statistics itself (autovacuum may be
/// off, as on the development machine), so the look-up of the pupils' earlier incidents keeps to
/// the pupils' links instead of reading every incident (which slowed filing in step with the
/// database in `cargo bench --bench scale`).
async fn a_long_backfill_keeps_postgresql_planning_by_its_indexes(backend: Backend) {
    let db = TestDb::new(backend).await;
    let env = school(&db, None);
    let filer = filer(&db, &env);
    let start = now() - Duration::days(3000);
    let messages: Vec<Incoming> = (1..=1_250u32).map(|n| file(n, forward(n, start + Duration::days(i64::from(n) * 2), PE_KIT))).collect();
    for batch in messages.chunks(250) {
        let filed = filer.file_batch(batch).await.expect("file a batch");
        assert!(filed.iter().all(|f| f.state == MessageState::Filed), "{filed:?}");
    }
    assert_eq!(db.store.status(now()).await.unwrap().incidents, 1_250, "every message is on the chronology");
    let Store::Postgres(pool) = &db.store else {
        db.cleanup().await;
        return;
    };
    let gathered = || async {
        sqlx::query_scalar::<_, bool>("SELECT last_analyze IS NOT NULL FROM pg_stat_user_tables WHERE relname = 'incident_pupils'")
            .fetch_one(pool)
            .await
            .unwrap()
    };
    let started = std::time::Instant::now();
    while !gathered().await {
        assert!(started.elapsed().as_secs() < 60, "Haven never gathered PostgreSQL's statistics of the tables filing reads");
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    // Pupils with no incident among a table of 1,250 links: by the index, once PostgreSQL knows.
    let plan: Vec<String> = sqlx::query_scalar(
        "EXPLAIN SELECT ip.pupil_id, i.category, i.occurred_us FROM incidents i JOIN incident_pupils ip ON ip.incident_id = i.id \
         WHERE ip.role <> 'mentioned' AND i.occurred_us >= 0 AND ip.pupil_id IN (999998, 999999) AND i.category IN ('Pastoral', 'Bullying')",
    )
    .fetch_all(pool)
    .await
    .unwrap();
    assert!(plan.iter().any(|l| l.contains("incident_pupils_chronology")), "the pupils' links are not read by their index: {plan:#?}");
    db.cleanup().await;
}

/// A database whose tables have rows but no statistics (restored from a dump, filled by an
/// import, or by fewer messages than filing gathers them after, with autovacuum off): the
/// daemon gathers them when it starts, so a chronology page's look-up of its entries' pupils by
/// their keys is planned for the handful of rows it reads, not for half the table.
async fn the_daemon_gathers_statistics_a_database_has_none_of(backend: Backend) {
    let db = TestDb::new(backend).await;
    let env = school(&db, None);
    let filer = filer(&db, &env);
    let start = now() - Duration::days(3000);
    // Fewer than filing's own gathering waits for.
    let messages: Vec<Incoming> = (1..=600u32).map(|n| file(n, forward(n, start + Duration::days(i64::from(n) * 2), PE_KIT))).collect();
    for batch in messages.chunks(200) {
        filer.file_batch(batch).await.expect("file a batch");
    }
    // The look-up of twenty incidents' pupils, with their keys written in.
    let look_up = haven::store::PlannedQuery {
        name: "chronology pupils",
        sql: haven::store::chronology_pupils_sql(20),
        values: (1..=20).map(|n| &*Box::leak((n * 25).to_string().into_boxed_str())).collect(),
        counts_all: false,
    }
    .with_values();
    let mut daemon;
    match &db.store {
        Store::Postgres(pool) => {
            let has_statistics = || async {
                sqlx::query_scalar::<_, bool>("SELECT EXISTS (SELECT 1 FROM pg_stats WHERE tablename = 'incident_pupils')")
                    .fetch_one(pool)
                    .await
                    .unwrap()
            };
            // The planner's estimate of the rows the look-up returns, from the top of its plan.
            let estimate = || async {
                let plan: Vec<String> =
                    sqlx::query_scalar(sqlx::AssertSqlSafe(format!("EXPLAIN {look_up}"))).fetch_all(pool).await.unwrap();
                let rows = plan[0].split("rows=").nth(1).and_then(|r| r.split(' ').next()).and_then(|n| n.parse::<u64>().ok());
                rows.unwrap_or_else(|| panic!("no estimate in {plan:#?}"))
            };
            assert!(!has_statistics().await, "filing 600 messages gathered statistics already: the test shows nothing");
            let before = estimate().await;
            assert!(before > 40, "without statistics PostgreSQL expects {before} rows for 20 keys");
            daemon = env.start();
            let started = std::time::Instant::now();
            while !has_statistics().await {
                daemon.assert_running();
                assert!(started.elapsed().as_secs() < 60, "the daemon did not gather the statistics of tables that had none");
                tokio::time::sleep(std::time::Duration::from_millis(200)).await;
            }
            let after = estimate().await;
            assert!(after <= 40, "with statistics PostgreSQL still expects {after} rows for 20 incidents' pupils (it expected {before})");
            // Where autovacuum is off, Haven vacuums what it analyses (the visibility map lets
            // an index that covers a query answer without visiting the rows); where it runs,
            // vacuuming is left to it.
            let autovacuum: String = sqlx::query_scalar("SHOW autovacuum").fetch_one(pool).await.unwrap();
            let vacuumed: bool =
                sqlx::query_scalar("SELECT last_vacuum IS NOT NULL FROM pg_stat_user_tables WHERE relname = 'incident_pupils'")
                    .fetch_one(pool)
                    .await
                    .unwrap();
            assert_eq!(vacuumed, autovacuum == "off", "autovacuum is {autovacuum}: did Haven vacuum the links? {vacuumed}");
        }
        Store::Sqlite(pool) => {
            // SQLite plans by its indexes without statistics: the daemon gathers none, and the
            // look-up is by the links' key all the same.
            daemon = env.start();
            let plan: Vec<String> = sqlx::query(sqlx::AssertSqlSafe(format!("EXPLAIN QUERY PLAN {look_up}")))
                .fetch_all(pool)
                .await
                .unwrap()
                .iter()
                .map(|r| r.get::<String, _>("detail"))
                .collect();
            assert!(plan.iter().all(|l| !l.starts_with("SCAN incident_pupils")), "{plan:#?}");
        }
    }
    // The daemon files as ever (and is past its start, so it stops cleanly).
    env.deliver("601.eml", &forward(601, start + Duration::days(1300), PE_KIT));
    wait_for("the next message to be filed", std::time::Duration::from_secs(60), || {
        daemon.assert_running();
        let s = env.status();
        if s["incidents"] == 601 { Ok(()) } else { Err(s.to_string()) }
    });
    daemon.stop();
    db.cleanup().await;
}

backend_tests!(
    a_long_backfill_keeps_postgresql_planning_by_its_indexes,
    the_daemon_gathers_statistics_a_database_has_none_of,
    old_messages_are_filed_without_alerts_and_the_digest_counts_them,
    a_rule_opts_back_in_and_a_backfill_is_quiet_whatever_its_date,
    haven_ingest_backfills_quietly,
    the_daemon_files_an_imap_backlog_without_alerts,
);
