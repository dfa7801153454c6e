//! The outbox worker against a real SMTP server (aiosmtpd on loopback), on SQLite and
//! PostgreSQL: alerts arrive once with the right headers and nothing sensitive; an outage
//! delays and does not lose; a refused recipient is dead-lettered without holding up the
//! others; replies carry a token that verifies.

mod support;

use chrono::{DateTime, Duration, NaiveDate, TimeZone, Utc};
use haven::clock::{Clock, ManualClock};
use haven::directory::{Pupil, Role, Staff};
use haven::outbox::{self, OutboxSettings, Security, SendReport, SmtpSettings, Transport};
use haven::reply_token;
use haven::store::{IncidentRecord, MessageRecord, MessageState, OutboxRecord, PupilLink, Recorded, Store};
use sqlx::Row;
use std::collections::BTreeMap;
use std::sync::Arc;
use support::db::{Backend, TestDb};
use support::smtp::{SmtpServer, free_port, header};

const KEY: &[u8] = b"reply key for the outbox tests..";
const DSL: &str = "dsl@school.example";
const DDSL: &str = "deputy@school.example";

fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 2, 10, 0, 0).unwrap()
}

fn settings(max_attempts: u32) -> OutboxSettings {
    OutboxSettings {
        from: "Haven <safeguarding@school.example>".into(),
        reply_key: KEY.to_vec(),
        max_attempts,
        mail_domain: "school.example".into(),
        intake_address: "safeguarding@school.example".into(),
        quiet_hours: None,
        tz: chrono_tz::Europe::London,
    }
}

fn smtp(port: u16) -> Transport {
    Transport::Smtp(SmtpSettings {
        host: "127.0.0.1".into(),
        port,
        security: Security::Plain,
        username: None,
        password: None,
        xoauth2_token: None,
    })
}

fn staff(email: &str, first: &str, role: Role) -> Staff {
    Staff {
        id: 0,
        emails: vec![email.into()],
        first_name: first.into(),
        last_name: "Staff".into(),
        roles: vec![role],
        house: None,
        tutor_group: None,
        active: true,
    }
}

/// Staff ids by address, after seeding the directory with two DSLs and one pupil.
async fn seed(db: &TestDb) -> (BTreeMap<String, i64>, i64) {
    let jane = Pupil {
        id: 0,
        upn: "A123456789012".into(),
        first_name: "Jane".into(),
        last_name: "Smithson".into(),
        preferred_name: None,
        date_of_birth: NaiveDate::from_ymd_opt(2012, 3, 4),
        year_group: Some(9),
        tutor_group: Some("9A".into()),
        house: None,
        sen: false,
        left_on: None,
    };
    db.store
        .sync_directory(
            &support::db::sealer(),
            &support::db::blind(),
            &[jane],
            &[staff(DSL, "Dana", Role::Dsl), staff(DDSL, "Dev", Role::Ddsl)],
            &[],
            NaiveDate::from_ymd_opt(2026, 11, 1).unwrap(),
            t0(),
        )
        .await
        .unwrap();
    let dir = db.store.load_directory(&support::db::sealer()).await.unwrap();
    let ids = dir.staff.iter().map(|s| (s.emails[0].clone(), s.id)).collect();
    (ids, dir.pupils[0].id)
}

/// Files one urgent incident about Jane with an alert to each of `recipients`; returns its number.
async fn file_incident(db: &TestDb, n: u32, staff: &BTreeMap<String, i64>, pupil: i64, recipients: &[&str]) -> i64 {
    file_incident_at(db, n, staff, pupil, recipients, "urgent").await
}

/// [`file_incident`] with the incident's priority.
async fn file_incident_at(db: &TestDb, n: u32, staff: &BTreeMap<String, i64>, pupil: i64, recipients: &[&str], priority: &str) -> i64 {
    let sha = format!("{n:064x}");
    let msg = MessageRecord {
        sha256: Some(sha.clone()),
        message_id: Some(format!("{sha}@home.example")),
        source: "file",
        origin: "test.eml".into(),
        imap_uid: None,
        received: t0(),
        size: 10,
        state: MessageState::Filed,
        reason: "filed".into(),
        duplicate_of: None,
        content_sha256: None,
    };
    let outbox = recipients
        .iter()
        .map(|r| OutboxRecord {
            purpose: "alert",
            recipient: (*r).into(),
            email_message_id: format!("haven.{{incident}}.alert.{}@school.example", staff[*r]),
            subject: "Haven incident #{incident}: Neglect".into(),
            body: "Incident #{incident} has been recorded in Haven.\n\nCategory: Neglect\n\
                   Pupils: J.S. (subject, Year 9)\n\nWhat to do: reply with \"Outcome: NFA\".\n"
                .into(),
        })
        .collect();
    let inc = IncidentRecord {
        occurred: t0(),
        recorded: t0(),
        recorded_by: None,
        record_kind: "email".into(),
        category: "Neglect".into(),
        priority: priority.into(),
        visibility: "dsl".into(),
        note: Some("Jane Smithson came in hungry again".into()),
        original_from: Some("parent@home.example".into()),
        original_name: Some("Pat Smithson".into()),
        original_subject: Some("Jane Smithson".into()),
        body_text: "Jane Smithson has not eaten since Friday.".into(),
        body_html: None,
        pupils: vec![PupilLink { pupil_id: pupil, role: "subject".into(), how: "named".into() }],
        attachments: vec![],
        outbox,
        action: None,
        follows: None,
        date_note: None,
        backfilled: false,
        ai_read: false,
    };
    let mut tx = db.store.begin().await.unwrap();
    let rec = tx.record_message(b"raw", &msg, Some(&inc), "test").await.unwrap();
    tx.commit().await.unwrap();
    match rec {
        Recorded::New { incident: Some(id), .. } => id,
        other => panic!("expected a filed incident, got {other:?}"),
    }
}

/// (recipient, state, attempts) of every outbox row, by recipient.
async fn rows(store: &Store) -> BTreeMap<String, (String, i32)> {
    let sql = "SELECT recipient, state, attempts FROM outbox ORDER BY id";
    let mut out = BTreeMap::new();
    match store {
        Store::Sqlite(p) => {
            for r in sqlx::query(sql).fetch_all(p).await.unwrap() {
                out.insert(r.get("recipient"), (r.get("state"), r.get("attempts")));
            }
        }
        Store::Postgres(p) => {
            for r in sqlx::query(sql).fetch_all(p).await.unwrap() {
                out.insert(r.get("recipient"), (r.get("state"), r.get("attempts")));
            }
        }
    }
    out
}

fn row(state: &str, attempts: i32) -> (String, i32) {
    (state.to_string(), attempts)
}

fn message_ids(msgs: &[String]) -> Vec<String> {
    let mut ids: Vec<String> = msgs.iter().filter_map(|m| header(m, "Message-ID")).collect();
    ids.sort();
    ids
}

async fn alerts_arrive_once_with_the_right_headers(backend: Backend) {
    let db = TestDb::new(backend).await;
    let (staff, jane) = seed(&db).await;
    let incident = file_incident(&db, 1, &staff, jane, &[DSL, DDSL]).await;
    let server = SmtpServer::start();
    let transport = smtp(server.port);

    let report = outbox::send_due(&db.store, &transport, &settings(8), t0()).await.unwrap();
    assert_eq!(report, SendReport { sent: 2, ..Default::default() });
    let msgs = server.messages();
    assert_eq!(msgs.len(), 2, "one email per recipient");
    for m in &msgs {
        let to = header(m, "To").unwrap_or_default();
        let staff_id = staff[to.as_str()];
        assert_eq!(header(m, "X-RcptTo").as_deref(), Some(to.as_str()), "envelope recipient is the To");
        assert_eq!(header(m, "Message-ID"), Some(format!("<haven.{incident}.alert.{staff_id}@school.example>")));
        assert_eq!(header(m, "From").as_deref(), Some("Haven <safeguarding@school.example>"));
        assert_eq!(header(m, "Subject"), Some(format!("Haven incident #{incident}: Neglect")));
        assert_eq!(header(m, "Auto-Submitted").as_deref(), Some("auto-generated"));
        assert_eq!(header(m, "X-Auto-Response-Suppress").as_deref(), Some("All"));
        assert_eq!(header(m, "X-Haven-Incident"), Some(incident.to_string()));
        let root = format!("<haven.{incident}.thread@school.example>");
        assert_eq!(header(m, "In-Reply-To").as_ref(), Some(&root));
        assert_eq!(header(m, "References").as_ref(), Some(&root));
        assert!(header(m, "Date").is_some());
        assert!(header(m, "Precedence").is_none());

        // The Reply-To token names this incident and this recipient, and only with the key.
        let reply_to = header(m, "Reply-To").unwrap_or_default();
        assert!(reply_to.contains("safeguarding+r-"), "{reply_to}");
        let token = reply_token::find_in_address(&reply_to).expect("a token in Reply-To");
        assert_eq!(reply_token::verify(KEY, token), Some((incident, staff_id)));
        assert_eq!(reply_token::verify(b"another key", token), None);

        // Nothing that identifies the child or repeats the parent's words.
        for secret in ["Jane", "Smithson", "hungry", "eaten", "parent@home.example"] {
            assert!(!m.contains(secret), "{secret:?} leaked into an alert:\n{m}");
        }
        assert!(m.contains("J.S. (subject, Year 9)"), "{m}");
    }

    // A second pass sends nothing again.
    let again = outbox::send_due(&db.store, &transport, &settings(8), t0() + Duration::hours(2)).await.unwrap();
    assert_eq!(again, SendReport::default());
    assert_eq!(server.messages().len(), 2);
    assert_eq!(rows(&db.store).await, BTreeMap::from([(DSL.into(), row("sent", 0)), (DDSL.into(), row("sent", 0))]));
    let audit = db.store.audit_tail(10).await.unwrap();
    let sent: Vec<_> = audit.iter().filter(|a| a.action == "alert_sent").collect();
    assert_eq!(sent.len(), 2);
    for a in sent {
        assert_eq!(a.subject, format!("incident:{incident}"));
        assert!(!a.detail.contains('@'), "no addresses in the audit log: {}", a.detail);
    }
    db.cleanup().await;
}

async fn an_outage_delays_and_does_not_lose(backend: Backend) {
    let db = TestDb::new(backend).await;
    let (staff, jane) = seed(&db).await;
    file_incident(&db, 1, &staff, jane, &[DSL, DDSL]).await;
    let port = free_port(); // nothing listens here yet
    let transport = smtp(port);

    let down = outbox::send_due(&db.store, &transport, &settings(8), t0()).await.unwrap();
    assert_eq!(down.sent, 0);
    assert_eq!(down.retried, 1, "the first email found the server down");
    assert_eq!(down.deferred, 1, "the rest wait without counting an attempt");
    assert_eq!(rows(&db.store).await, BTreeMap::from([(DSL.into(), row("pending", 1)), (DDSL.into(), row("pending", 0))]));

    // Before the backoff runs out nothing is tried.
    let early = outbox::send_due(&db.store, &transport, &settings(8), t0() + Duration::seconds(30)).await.unwrap();
    assert_eq!(early, SendReport::default());

    let server = SmtpServer::start_on(port);
    let up = outbox::send_due(&db.store, &transport, &settings(8), t0() + Duration::minutes(2)).await.unwrap();
    assert_eq!(up.sent, 2);
    assert_eq!(message_ids(&server.messages()).len(), 2);
    assert_eq!(rows(&db.store).await, BTreeMap::from([(DSL.into(), row("sent", 1)), (DDSL.into(), row("sent", 0))]));
    db.cleanup().await;
}

async fn fifty_incidents_filed_during_an_outage_are_all_delivered_once(backend: Backend) {
    let db = TestDb::new(backend).await;
    let (staff, jane) = seed(&db).await;
    let port = free_port();
    let transport = smtp(port);
    let clock = ManualClock::new(t0());
    // The server is down for a minute while incidents are filed and the worker keeps trying.
    for n in 0..50 {
        file_incident(&db, n, &staff, jane, &[DSL, DDSL]).await;
        if n % 10 == 0 {
            let r = outbox::send_due(&db.store, &transport, &settings(8), clock.now()).await.unwrap();
            assert_eq!(r.sent, 0);
        }
        clock.advance(Duration::seconds(1));
    }
    clock.advance(Duration::seconds(10));
    let server = SmtpServer::start_on(port);
    // The worker's passes after the outage, each when the clock says.
    for _ in 0..10 {
        clock.advance(Duration::minutes(1));
        outbox::send_due(&db.store, &transport, &settings(8), clock.now()).await.unwrap();
    }
    let ids = message_ids(&server.messages());
    let mut unique = ids.clone();
    unique.dedup();
    assert_eq!((ids.len(), unique.len()), (100, 100), "50 × 2 alerts, none twice");
    let status = db.store.status(clock.now()).await.unwrap();
    assert_eq!((status.outbox_sent, status.outbox_pending, status.outbox_dead), (100, 0, 0));
    db.cleanup().await;
}

async fn a_refused_recipient_is_dead_lettered_and_the_others_sent(backend: Backend) {
    let db = TestDb::new(backend).await;
    let (staff, jane) = seed(&db).await;
    let incident = file_incident(&db, 1, &staff, jane, &[DDSL, DSL]).await;
    let server = SmtpServer::flaky(0, &[DDSL]);
    let transport = smtp(server.port);

    let report = outbox::send_due(&db.store, &transport, &settings(8), t0()).await.unwrap();
    assert_eq!(report, SendReport { sent: 1, dead: 1, ..Default::default() });
    let msgs = server.messages();
    assert_eq!(msgs.len(), 1);
    assert_eq!(header(&msgs[0], "To").as_deref(), Some(DSL));
    assert_eq!(rows(&db.store).await, BTreeMap::from([(DSL.into(), row("sent", 0)), (DDSL.into(), row("dead", 1))]));

    // Reported for the digest, and audited by id only.
    let dead = db.store.dead_emails(t0() - Duration::days(1)).await.unwrap();
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].recipient, DDSL);
    assert_eq!(dead[0].incident_id, Some(incident));
    assert!(dead[0].last_error.as_deref().unwrap_or_default().contains("550"), "{:?}", dead[0].last_error);
    let audit = db.store.audit_tail(10).await.unwrap();
    let entry = audit.iter().find(|a| a.action == "alert_dead").expect("an audit entry for the dead alert");
    assert_eq!(entry.subject, format!("incident:{incident}"));
    assert!(!entry.detail.contains('@'));

    // Dead stays dead.
    let later = outbox::send_due(&db.store, &transport, &settings(8), t0() + Duration::hours(3)).await.unwrap();
    assert_eq!(later, SendReport::default());
    assert_eq!(server.messages().len(), 1);
    db.cleanup().await;
}

async fn a_temporary_refusal_is_retried(backend: Backend) {
    let db = TestDb::new(backend).await;
    let (staff, jane) = seed(&db).await;
    file_incident(&db, 1, &staff, jane, &[DSL, DDSL]).await;
    let server = SmtpServer::flaky(1, &[]);
    let transport = smtp(server.port);

    let first = outbox::send_due(&db.store, &transport, &settings(8), t0()).await.unwrap();
    assert_eq!(first, SendReport { sent: 1, retried: 1, ..Default::default() }, "a 451 does not stop the others");
    let second = outbox::send_due(&db.store, &transport, &settings(8), t0() + Duration::minutes(1)).await.unwrap();
    assert_eq!(second, SendReport { sent: 1, ..Default::default() });
    let ids = message_ids(&server.messages());
    assert_eq!(ids.len(), 2);
    assert_ne!(ids[0], ids[1], "each alert arrived once");
    db.cleanup().await;
}

async fn gives_up_after_max_attempts(backend: Backend) {
    let db = TestDb::new(backend).await;
    let (staff, jane) = seed(&db).await;
    file_incident(&db, 1, &staff, jane, &[DSL]).await;
    let server = SmtpServer::flaky(1000, &[]);
    let transport = smtp(server.port);
    let s = settings(3);

    let mut now = t0();
    for attempt in 1..=2 {
        let r = outbox::send_due(&db.store, &transport, &s, now).await.unwrap();
        assert_eq!(r, SendReport { retried: 1, ..Default::default() }, "attempt {attempt}");
        assert_eq!(rows(&db.store).await[DSL], row("pending", attempt));
        now += outbox::backoff(attempt as u32);
    }
    let last = outbox::send_due(&db.store, &transport, &s, now).await.unwrap();
    assert_eq!(last, SendReport { dead: 1, ..Default::default() });
    assert_eq!(rows(&db.store).await[DSL], row("dead", 3));
    let dead = db.store.dead_emails(t0()).await.unwrap();
    assert!(dead[0].last_error.as_deref().unwrap_or_default().contains("gave up after 3 attempts"));
    assert!(server.messages().is_empty());
    db.cleanup().await;
}

async fn the_maildir_transport_writes_each_alert_once(backend: Backend) {
    let db = TestDb::new(backend).await;
    let (staff, jane) = seed(&db).await;
    let incident = file_incident(&db, 1, &staff, jane, &[DSL, DDSL]).await;
    let out = tempfile::tempdir().unwrap();
    let dir = out.path().join("outbox");
    let transport = Transport::Maildir(dir.clone());

    let r = outbox::send_due(&db.store, &transport, &settings(8), t0()).await.unwrap();
    assert_eq!(r.sent, 2);
    let names = |d: &std::path::Path| {
        let mut v: Vec<String> = std::fs::read_dir(d).unwrap().flatten().map(|e| e.file_name().to_string_lossy().into_owned()).collect();
        v.sort();
        v
    };
    let mut expected: Vec<String> = [DSL, DDSL].iter().map(|r| format!("haven.{incident}.alert.{}@school.example", staff[*r])).collect();
    expected.sort();
    assert_eq!(names(&dir.join("new")), expected);
    assert!(names(&dir.join("tmp")).is_empty(), "nothing left half-written");
    let raw = std::fs::read_to_string(dir.join("new").join(&expected[0])).unwrap();
    assert_eq!(header(&raw, "Auto-Submitted").as_deref(), Some("auto-generated"));
    assert!(!raw.contains("Smithson"));

    // A crash after writing but before recording "sent": when the claim's lease runs out the
    // emails are sent again, and the resend replaces the file rather than adding one.
    haven::store::on_pool_for_tests(&db.store, "UPDATE outbox SET state = 'pending', sent_us = NULL").await;
    let again = outbox::send_due(&db.store, &transport, &settings(8), t0() + haven::store::CLAIM_LEASE).await.unwrap();
    assert_eq!(again.sent, 2);
    assert_eq!(names(&dir.join("new")), expected);
    db.cleanup().await;
}

async fn a_claim_is_a_lease(backend: Backend) {
    let db = TestDb::new(backend).await;
    let (staff, jane) = seed(&db).await;
    file_incident(&db, 1, &staff, jane, &[DSL, DDSL]).await;

    let a = db.store.due_emails(t0(), 1).await.unwrap();
    let b = db.store.due_emails(t0(), 10).await.unwrap();
    assert_eq!((a.len(), b.len()), (1, 1));
    assert_ne!(a[0].id, b[0].id, "two daemons never claim the same email");
    assert!(db.store.due_emails(t0() + Duration::minutes(1), 10).await.unwrap().is_empty());
    // The claimant died: after the lease the emails are claimable again, with the same ids.
    let c = db.store.due_emails(t0() + haven::store::CLAIM_LEASE, 10).await.unwrap();
    assert_eq!(c.len(), 2);
    assert!(c.iter().any(|e| e.email_message_id == a[0].email_message_id));
    db.cleanup().await;
}

async fn concurrent_workers_send_each_alert_once(backend: Backend) {
    let db = TestDb::new(backend).await;
    let (staff, jane) = seed(&db).await;
    for n in 0..15 {
        file_incident(&db, n, &staff, jane, &[DSL, DDSL]).await;
    }
    let server = SmtpServer::start();
    let transport = smtp(server.port);
    let workers: Vec<_> = (0..3)
        .map(|_| {
            let (store, transport) = (db.store.clone(), transport.clone());
            tokio::spawn(async move { outbox::send_due(&store, &transport, &settings(8), t0()).await.unwrap() })
        })
        .collect();
    let mut sent = 0;
    for w in workers {
        sent += w.await.unwrap().sent;
    }
    assert_eq!(sent, 30);
    let ids = message_ids(&server.messages());
    let mut unique = ids.clone();
    unique.dedup();
    assert_eq!((ids.len(), unique.len()), (30, 30), "every alert exactly once");
    db.cleanup().await;
}

async fn the_worker_sends_when_woken_and_stops_on_shutdown(backend: Backend) {
    let db = TestDb::new(backend).await;
    let (staff, jane) = seed(&db).await;
    let server = SmtpServer::start();
    let clock = ManualClock::new(t0());
    let shutdown = tokio_util::sync::CancellationToken::new();
    let wake = Arc::new(tokio::sync::Notify::new());
    let clock_arc = Arc::new(clock.clone()) as Arc<dyn Clock>;
    let health = Arc::new(haven::health::HealthRecorder::new(db.store.clone(), clock_arc.clone()));
    let worker =
        tokio::spawn(outbox::run(db.store.clone(), smtp(server.port), settings(8), clock_arc, shutdown.clone(), wake.clone(), health));
    file_incident(&db, 1, &staff, jane, &[DSL, DDSL]).await;
    wake.notify_one();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
    while server.messages().len() < 2 {
        assert!(std::time::Instant::now() < deadline, "the worker did not send after being woken");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(clock.now(), t0());
    shutdown.cancel();
    tokio::time::timeout(std::time::Duration::from_secs(5), worker).await.expect("the worker stops promptly on shutdown").unwrap();
    assert_eq!(server.messages().len(), 2);
    db.cleanup().await;
}

/// Quiet hours 18:00–07:30 (and weekends): at 19:00 on a Monday the urgent incident's alert
/// goes at once and the other waits, unclaimed and with no attempt counted, until 07:30 on
/// the school's clock, when it goes.
async fn non_urgent_alerts_wait_for_quiet_hours_to_end(backend: Backend) {
    let db = TestDb::new(backend).await;
    let (staff, jane) = seed(&db).await;
    let urgent = file_incident(&db, 1, &staff, jane, &[DSL]).await;
    let normal = file_incident(&db, 2, &staff, jane, &[DDSL]).await;
    let sql = "UPDATE incidents SET priority = 'normal' WHERE id = $1";
    match &db.store {
        Store::Sqlite(p) => sqlx::query(sql).bind(normal).execute(p).await.map(|_| ()),
        Store::Postgres(p) => sqlx::query(sql).bind(normal).execute(p).await.map(|_| ()),
    }
    .unwrap();
    let server = SmtpServer::start();
    let transport = smtp(server.port);
    let quiet =
        OutboxSettings { quiet_hours: Some(toml::from_str("start = \"18:00\"\nend = \"07:30\"\nweekends = true").unwrap()), ..settings(8) };
    let evening = t0() + Duration::hours(9);
    let report = outbox::send_due(&db.store, &transport, &quiet, evening).await.unwrap();
    assert_eq!(report, SendReport { sent: 1, deferred: 1, ..Default::default() });
    let msgs = server.messages();
    assert_eq!(msgs.len(), 1, "only the urgent alert goes in quiet hours");
    assert_eq!(header(&msgs[0], "X-Haven-Incident"), Some(urgent.to_string()));
    assert_eq!(rows(&db.store).await[DDSL], row("pending", 0), "held, not failed");
    let opens = Utc.with_ymd_and_hms(2026, 11, 3, 7, 30, 0).unwrap();
    assert_eq!(db.store.next_email_due().await.unwrap(), Some(opens), "due when the hours open");

    let report = outbox::send_due(&db.store, &transport, &quiet, opens - Duration::minutes(1)).await.unwrap();
    assert_eq!(report, SendReport::default(), "nothing is claimed before 07:30");
    let report = outbox::send_due(&db.store, &transport, &quiet, opens).await.unwrap();
    assert_eq!(report, SendReport { sent: 1, ..Default::default() });
    let msgs = server.messages();
    assert_eq!(msgs.len(), 2);
    assert_eq!(header(&msgs[1], "X-Haven-Incident"), Some(normal.to_string()));
    assert_eq!(rows(&db.store).await[DDSL], row("sent", 0));
    db.cleanup().await;
}

/// A backlog of 150 routine alerts (more than one pass sends) is waiting when a member of staff
/// asks for a console sign-in link and an urgent concern is filed: both go in the first pass,
/// ahead of the backlog queued before them; the backlog then drains oldest first.
async fn a_sign_in_link_and_an_urgent_alert_overtake_a_backlog(backend: Backend) {
    let db = TestDb::new(backend).await;
    let (staff, jane) = seed(&db).await;
    for n in 0..150 {
        file_incident_at(&db, n, &staff, jane, &[DDSL], "normal").await;
    }
    let link = OutboxRecord {
        purpose: "signin",
        recipient: DSL.into(),
        email_message_id: "haven.console-link.0123456789abcdef@school.example".into(),
        subject: "Haven: your sign-in link".into(),
        body: "Sign in: https://haven.school.example/sign-in/token\n".into(),
    };
    let mut tx = db.store.begin().await.unwrap();
    assert!(tx.queue_email(None, &link, t0()).await.unwrap());
    tx.commit().await.unwrap();
    let urgent = file_incident_at(&db, 150, &staff, jane, &[DSL], "urgent").await;
    let server = SmtpServer::start();
    let transport = smtp(server.port);

    let first = outbox::send_due(&db.store, &transport, &settings(8), t0()).await.unwrap();
    assert_eq!(first.sent, 100, "one pass sends a hundred");
    let msgs = server.messages();
    let to_dsl: Vec<&String> = msgs.iter().filter(|m| header(m, "To").as_deref() == Some(DSL)).collect();
    assert_eq!(to_dsl.len(), 2, "the link and the urgent alert went in the first pass, ahead of 150 older alerts");
    assert!(to_dsl.iter().any(|m| header(m, "Subject").as_deref() == Some("Haven: your sign-in link")));
    assert!(to_dsl.iter().any(|m| header(m, "X-Haven-Incident") == Some(urgent.to_string())));
    // The backlog drains oldest first: the 98 routine alerts sent are the first 98 filed.
    let sent_routine: Vec<i64> = msgs
        .iter()
        .filter(|m| header(m, "To").as_deref() == Some(DDSL))
        .filter_map(|m| header(m, "X-Haven-Incident")?.parse().ok())
        .collect();
    assert_eq!(sent_routine.len(), 98);
    assert!(sent_routine.iter().all(|i| *i <= sent_routine.iter().min().unwrap() + 97), "{sent_routine:?}");

    let second = outbox::send_due(&db.store, &transport, &settings(8), t0()).await.unwrap();
    assert_eq!(second.sent, 52, "then the rest of the backlog");
    let audit = db.store.audit_tail(500).await.unwrap();
    assert_eq!(audit.iter().filter(|a| a.action == "signin_sent").count(), 1, "the link's sending is audited as a sign-in link");
    db.cleanup().await;
}

backend_tests!(
    a_sign_in_link_and_an_urgent_alert_overtake_a_backlog,
    non_urgent_alerts_wait_for_quiet_hours_to_end,
    alerts_arrive_once_with_the_right_headers,
    an_outage_delays_and_does_not_lose,
    fifty_incidents_filed_during_an_outage_are_all_delivered_once,
    a_refused_recipient_is_dead_lettered_and_the_others_sent,
    a_temporary_refusal_is_retried,
    gives_up_after_max_attempts,
    the_maildir_transport_writes_each_alert_once,
    a_claim_is_a_lease,
    concurrent_workers_send_each_alert_once,
    the_worker_sends_when_woken_and_stops_on_shutdown,
);
