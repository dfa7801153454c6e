//! The scheduler on both backends, driven by explicit instants (no sleeping): the escalation
//! ladder fires each rung once at its time and stops at the outcome; restarts and outages
//! neither repeat nor skip; digests fire once at 07:30 school time across the clock changes and
//! show each member of staff only what they may see.

mod support;

use chrono::{DateTime, Duration, NaiveDate, TimeZone, Utc};
use chrono_tz::Europe::London;
use haven::config::Digest;
use haven::directory::{Pupil, Role, Staff};
use haven::schedule::{ScheduleSettings, TickReport, tick};
use haven::store::{ActionRecord, IncidentRecord, MessageRecord, MessageState, PupilLink, Recorded, RungRecord, Store};
use sqlx::Row;
use support::db::{Backend, TestDb};

const DSL: &str = "dsl@school.example";
const SLT: &str = "slt@school.example";

fn utc(y: i32, mo: u32, d: u32, h: u32, mi: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(y, mo, d, h, mi, 0).single().expect("a valid instant")
}

/// Monday 2 November 2026, 10:00 UTC (GMT): when the test incidents are filed.
fn t0() -> DateTime<Utc> {
    utc(2026, 11, 2, 10, 0)
}

fn staff(email: &str, roles: &[Role]) -> Staff {
    Staff {
        id: 0,
        emails: vec![email.into()],
        first_name: "Sam".into(),
        last_name: email.split('@').next().unwrap_or("x").into(),
        roles: roles.to_vec(),
        house: None,
        tutor_group: None,
        active: true,
    }
}

/// Staff and pupil ids after seeding.
struct Ids {
    dsl: i64,
    slt: i64,
    jane: i64,
}

async fn seed(store: &Store) -> Ids {
    let jane = Pupil {
        id: 0,
        upn: "A123456789012".into(),
        first_name: "Jane".into(),
        last_name: "Smith".into(),
        preferred_name: None,
        date_of_birth: NaiveDate::from_ymd_opt(2012, 3, 4),
        year_group: Some(9),
        tutor_group: Some("9A".into()),
        house: Some("Austen".into()),
        sen: false,
        left_on: None,
    };
    store
        .sync_directory(
            &support::db::sealer(),
            &support::db::blind(),
            &[jane],
            &[staff(DSL, &[Role::Dsl]), staff(SLT, &[Role::Slt]), staff("teacher@school.example", &[Role::Teacher])],
            &[],
            NaiveDate::from_ymd_opt(2026, 9, 1).expect("date"),
            utc(2026, 9, 1, 8, 0),
        )
        .await
        .expect("sync the directory");
    let dir = store.load_directory(&support::db::sealer()).await.expect("load the directory");
    let id = |email: &str| dir.active_staff_by_email(email).map(|s| s.id).expect("seeded staff");
    Ids { dsl: id(DSL), slt: id(SLT), jane: dir.pupils[0].id }
}

#[allow(clippy::too_many_arguments)]
/// Files one incident at `recorded`, with an outcome due at `due` and rungs `(after, staff)`.
async fn file(
    store: &Store,
    ids: &Ids,
    n: u32,
    recorded: DateTime<Utc>,
    category: &str,
    visibility: &str,
    due: Option<DateTime<Utc>>,
    rungs: &[(Duration, Vec<i64>)],
) -> i64 {
    let sha = format!("{n:064x}");
    let msg = MessageRecord {
        sha256: Some(sha.clone()),
        message_id: Some(format!("{n}@school.example")),
        source: "file",
        origin: "test.eml".into(),
        imap_uid: None,
        received: recorded,
        size: 5,
        state: MessageState::Filed,
        reason: "test".into(),
        duplicate_of: None,
        content_sha256: None,
    };
    let incident = IncidentRecord {
        occurred: recorded - Duration::hours(1),
        recorded,
        recorded_by: Some(ids.dsl),
        record_kind: "email".into(),
        category: category.into(),
        priority: "normal".into(),
        visibility: visibility.into(),
        note: Some("Jane Smith told me something".into()),
        original_from: Some("parent@home.example".into()),
        original_name: Some("Pat Smith".into()),
        original_subject: Some("About Jane Smith".into()),
        body_text: "Jane Smith said…".into(),
        body_html: None,
        pupils: vec![PupilLink { pupil_id: ids.jane, role: "subject".into(), how: "test".into() }],
        attachments: vec![],
        outbox: vec![],
        action: due.map(|due| ActionRecord {
            owner: Some(ids.dsl),
            due,
            rungs: rungs.iter().map(|(after, who)| RungRecord { due: recorded + *after, recipients: who.clone() }).collect(),
        }),
        follows: None,
        date_note: None,
        backfilled: false,
        ai_read: false,
    };
    let mut tx = store.begin().await.expect("begin");
    let rec = tx.record_message(sha.as_bytes(), &msg, Some(&incident), "test").await.expect("file the incident");
    tx.commit().await.expect("commit");
    match rec {
        Recorded::New { incident: Some(id), .. } => id,
        other => panic!("expected a new incident, got {other:?}"),
    }
}

/// One queued email, as the outbox holds it.
#[derive(Debug, Clone)]
struct Queued {
    recipient: String,
    message_id: String,
    subject: String,
    body: String,
}

/// Every queued email of `purpose`, in the order it was queued.
async fn queued(store: &Store, purpose: &str) -> Vec<Queued> {
    let sql = "SELECT recipient, email_message_id, subject, body FROM outbox WHERE purpose = $1 ORDER BY id";
    let rows: Vec<(String, String, String, String)> = match store {
        Store::Sqlite(p) => sqlx::query(sql)
            .bind(purpose)
            .fetch_all(p)
            .await
            .expect("read the outbox")
            .iter()
            .map(|r| (r.get(0), r.get(1), r.get(2), r.get(3)))
            .collect(),
        Store::Postgres(p) => sqlx::query(sql)
            .bind(purpose)
            .fetch_all(p)
            .await
            .expect("read the outbox")
            .iter()
            .map(|r| (r.get(0), r.get(1), r.get(2), r.get(3)))
            .collect(),
    };
    rows.into_iter().map(|(recipient, message_id, subject, body)| Queued { recipient, message_id, subject, body }).collect()
}

fn settings(digests: Vec<Digest>) -> ScheduleSettings {
    ScheduleSettings {
        digests,
        tz: London,
        mail_domain: "school.example".into(),
        school_name: "Eaton".into(),
        keys: std::sync::Arc::new(haven::store::LiveKeys::new(support::db::sealer(), None)),
        directory: Default::default(),
        detail: haven::config::Detail::Minimal,
    }
}

fn daily(to: &str, send_empty: bool) -> Digest {
    Digest { to: to.into(), cron: "0 30 7 * * *".into(), send_empty }
}

async fn pass(store: &Store, s: &ScheduleSettings, now: DateTime<Utc>) -> TickReport {
    tick(store, s, now).await.expect("a scheduler pass")
}

/// A standard ladder: 1 hour → DSL, 1 day → DSL, 2 days → DSL and SLT; outcome due in 1 day.
fn ladder(ids: &Ids) -> Vec<(Duration, Vec<i64>)> {
    vec![(Duration::hours(1), vec![ids.dsl]), (Duration::days(1), vec![ids.dsl]), (Duration::days(2), vec![ids.dsl, ids.slt])]
}

async fn ladder_of_three_rungs_fires_each_at_its_time(backend: Backend) {
    let db = TestDb::new(backend).await;
    let ids = seed(&db.store).await;
    let s = settings(vec![]);
    let inc = file(&db.store, &ids, 1, t0(), "Safeguarding", "dsl-team,slt", Some(t0() + Duration::days(1)), &ladder(&ids)).await;

    assert_eq!(pass(&db.store, &s, t0() + Duration::minutes(59)).await.reminders_queued, 0, "rung 1 is not due yet");
    let r = pass(&db.store, &s, t0() + Duration::hours(1)).await;
    assert_eq!((r.rungs_fired, r.reminders_queued), (1, 1));
    assert_eq!(pass(&db.store, &s, t0() + Duration::hours(1)).await.reminders_queued, 0, "a rung fires once");
    assert_eq!(pass(&db.store, &s, t0() + Duration::hours(23)).await.reminders_queued, 0);
    assert_eq!(pass(&db.store, &s, t0() + Duration::days(1)).await.reminders_queued, 1);
    assert_eq!(pass(&db.store, &s, t0() + Duration::days(2) - Duration::seconds(1)).await.reminders_queued, 0);
    assert_eq!(pass(&db.store, &s, t0() + Duration::days(2)).await.reminders_queued, 2, "rung 3 reminds the DSL and SLT");
    assert_eq!(pass(&db.store, &s, t0() + Duration::days(9)).await, TickReport::default(), "the ladder is finished");

    let sent = queued(&db.store, "reminder").await;
    let got: Vec<(&str, &str)> = sent.iter().map(|q| (q.recipient.as_str(), q.message_id.as_str())).collect();
    let want_ids = [
        format!("haven.{inc}.rung0.{}@school.example", ids.dsl),
        format!("haven.{inc}.rung1.{}@school.example", ids.dsl),
        format!("haven.{inc}.rung2.{}@school.example", ids.dsl),
        format!("haven.{inc}.rung2.{}@school.example", ids.slt),
    ];
    let want: Vec<(&str, &str)> = [DSL, DSL, DSL, SLT].into_iter().zip(want_ids.iter().map(String::as_str)).collect();
    assert_eq!(got, want);
    assert!(sent[1].subject.contains(&format!("#{inc}")) && sent[2].body.contains("1 day overdue"), "{:?}", sent[2]);
    assert!(sent[0].body.contains("JS (subject, Year 9)") && sent[0].body.contains("Reminder 1 of 3"), "{}", sent[0].body);
    for q in &sent {
        assert!(!q.body.contains("Jane") && !q.body.contains("Smith") && !q.subject.contains("Jane"), "no pupil names: {q:?}");
    }
    db.cleanup().await;
}

async fn outcome_between_rungs_stops_the_ladder(backend: Backend) {
    let db = TestDb::new(backend).await;
    let ids = seed(&db.store).await;
    let s = settings(vec![]);
    let inc = file(&db.store, &ids, 1, t0(), "Safeguarding", "dsl-team", Some(t0() + Duration::days(1)), &ladder(&ids)).await;
    assert_eq!(pass(&db.store, &s, t0() + Duration::hours(2)).await.reminders_queued, 1);

    let mut tx = db.store.begin().await.expect("begin");
    tx.record_outcome(inc, ids.dsl, "NFA", t0() + Duration::hours(5)).await.expect("record the outcome");
    tx.commit().await.expect("commit");

    assert_eq!(pass(&db.store, &s, t0() + Duration::days(1)).await, TickReport::default());
    assert_eq!(pass(&db.store, &s, t0() + Duration::days(5)).await, TickReport::default());
    assert_eq!(queued(&db.store, "reminder").await.len(), 1, "no reminder after the outcome");
    assert!(db.store.open_actions().await.expect("open actions").is_empty());
    db.cleanup().await;
}

async fn restart_between_rungs_repeats_nothing_and_skips_nothing(backend: Backend) {
    let db = TestDb::new(backend).await;
    let ids = seed(&db.store).await;
    let s = settings(vec![]);
    let inc = file(&db.store, &ids, 1, t0(), "Safeguarding", "dsl-team", Some(t0() + Duration::days(1)), &ladder(&ids)).await;
    assert_eq!(pass(&db.store, &s, t0() + Duration::hours(1)).await.rungs_fired, 1);
    db.store.close().await;

    // The daemon restarts: a new connection, nothing carried over in memory.
    let store = Store::open(&db.url).await.expect("reopen");
    assert_eq!(pass(&store, &s, t0() + Duration::hours(3)).await, TickReport::default(), "rung 1 is not repeated");
    let r = pass(&store, &s, t0() + Duration::days(1) + Duration::minutes(1)).await;
    assert_eq!((r.rungs_fired, r.reminders_queued), (1, 1), "rung 2 is not skipped");
    let ids_sent: Vec<String> = queued(&store, "reminder").await.into_iter().map(|q| q.message_id).collect();
    assert_eq!(
        ids_sent,
        vec![format!("haven.{inc}.rung0.{}@school.example", ids.dsl), format!("haven.{inc}.rung1.{}@school.example", ids.dsl)]
    );
    store.close().await;
    db.cleanup().await;
}

async fn daemon_down_for_a_day_catches_up_in_order_once(backend: Backend) {
    let db = TestDb::new(backend).await;
    let ids = seed(&db.store).await;
    let s = settings(vec![]);
    let a = file(&db.store, &ids, 1, t0(), "Safeguarding", "dsl-team", Some(t0() + Duration::days(1)), &ladder(&ids)).await;
    let b_at = t0() + Duration::hours(2);
    let b = file(&db.store, &ids, 2, b_at, "Safeguarding", "dsl-team", Some(b_at + Duration::days(1)), &ladder(&ids)).await;

    // Nothing ran for three days; the first pass fires every rung, oldest first.
    let r = pass(&db.store, &s, t0() + Duration::days(3)).await;
    assert_eq!(r.rungs_fired, 6);
    assert_eq!(pass(&db.store, &s, t0() + Duration::days(3)).await, TickReport::default(), "caught up once");
    let order: Vec<String> = queued(&db.store, "reminder").await.into_iter().map(|q| q.message_id).collect();
    let id = |inc: i64, rung: u32, who: i64| format!("haven.{inc}.rung{rung}.{who}@school.example");
    // Due: a0 +1h, b0 +3h, a1 +24h, b1 +26h, a2 +48h, b2 +50h (rung 3's SLT member may not see
    // these DSL-only incidents, so is not reminded).
    assert_eq!(
        order,
        vec![id(a, 0, ids.dsl), id(b, 0, ids.dsl), id(a, 1, ids.dsl), id(b, 1, ids.dsl), id(a, 2, ids.dsl), id(b, 2, ids.dsl)]
    );
    db.cleanup().await;
}

async fn two_daemons_fire_each_rung_once(backend: Backend) {
    let db = TestDb::new(backend).await;
    let ids = seed(&db.store).await;
    let s = settings(vec![]);
    for n in 0..20 {
        file(
            &db.store,
            &ids,
            n,
            t0() + Duration::minutes(i64::from(n)),
            "Safeguarding",
            "dsl-team",
            Some(t0() + Duration::days(1)),
            &ladder(&ids),
        )
        .await;
    }
    let other = Store::open(&db.url).await.expect("a second daemon's connection");
    let now = t0() + Duration::days(3);
    let (x, y) = tokio::join!(tick(&db.store, &s, now), tick(&other, &s, now));
    let (x, y) = (x.expect("pass one"), y.expect("pass two"));
    assert_eq!(x.rungs_fired + y.rungs_fired, 60, "each of 20 × 3 rungs fired by exactly one daemon");
    assert_eq!(queued(&db.store, "reminder").await.len(), 60);
    other.close().await;
    db.cleanup().await;
}

/// Runs the digest at 07:30 London around one clock-change Sunday: exactly one digest, at
/// `local_0730_utc`, and none at `wrong_utc` (07:30 read in the other offset).
async fn digest_once_at_0730_local(
    store: &Store,
    ids: &Ids,
    day_before_noon: DateTime<Utc>,
    local_0730_utc: DateTime<Utc>,
    wrong_utc: DateTime<Utc>,
) {
    let s = settings(vec![daily("role:dsl", true)]);
    // Sets the starting point (or catches up on the Saturday's digest).
    pass(store, &s, day_before_noon).await;
    let before = queued(store, "digest").await.len();
    for at in [wrong_utc, local_0730_utc - Duration::seconds(1)] {
        if at < local_0730_utc {
            assert_eq!(pass(store, &s, at).await.digests_queued, 0, "no digest at {at}");
        }
    }
    assert_eq!(pass(store, &s, local_0730_utc).await.digests_queued, 1, "one digest at 07:30 local");
    for at in [wrong_utc, local_0730_utc + Duration::minutes(1), local_0730_utc + Duration::hours(3)] {
        if at > local_0730_utc {
            assert_eq!(pass(store, &s, at).await.digests_queued, 0, "no second digest at {at}");
        }
    }
    let digests = queued(store, "digest").await;
    assert_eq!(digests.len(), before + 1);
    let last = digests.last().expect("the digest");
    assert_eq!(last.recipient, DSL);
    assert_eq!(last.message_id, format!("haven.digest.{}.{}@school.example", ids.dsl, local_0730_utc.timestamp_micros()));
    assert!(last.body.contains("07:30"), "the digest shows local time: {}", last.body);
}

async fn digest_fires_once_at_0730_london_on_clock_change_sundays(backend: Backend) {
    let db = TestDb::new(backend).await;
    let ids = seed(&db.store).await;
    // Spring forward, Sunday 29 March 2026: 07:30 BST = 06:30 UTC (07:30 UTC would be 08:30).
    digest_once_at_0730_local(&db.store, &ids, utc(2026, 3, 28, 12, 0), utc(2026, 3, 29, 6, 30), utc(2026, 3, 29, 7, 30)).await;
    // Fall back, Sunday 25 October 2026: 07:30 GMT = 07:30 UTC (06:30 UTC would be 07:30 BST).
    digest_once_at_0730_local(&db.store, &ids, utc(2026, 10, 24, 12, 0), utc(2026, 10, 25, 7, 30), utc(2026, 10, 25, 6, 30)).await;
    db.cleanup().await;
}

async fn digest_after_an_outage_sends_only_the_latest_slot(backend: Backend) {
    let db = TestDb::new(backend).await;
    let ids = seed(&db.store).await;
    let s = settings(vec![daily("role:dsl", true)]);
    pass(&db.store, &s, utc(2026, 11, 2, 12, 0)).await;
    assert_eq!(pass(&db.store, &s, utc(2026, 11, 3, 7, 30)).await.digests_queued, 1);
    // Down from Tuesday morning to Friday noon: Wednesday's, Thursday's and Friday's slots were
    // missed; only Friday's is sent, once, even across a restart.
    assert_eq!(pass(&db.store, &s, utc(2026, 11, 6, 12, 0)).await.digests_queued, 1);
    db.store.close().await;
    let store = Store::open(&db.url).await.expect("reopen");
    assert_eq!(pass(&store, &s, utc(2026, 11, 6, 12, 5)).await.digests_queued, 0);
    let ids_sent: Vec<String> = queued(&store, "digest").await.into_iter().map(|q| q.message_id).collect();
    assert_eq!(
        ids_sent,
        vec![
            format!("haven.digest.{}.{}@school.example", ids.dsl, utc(2026, 11, 3, 7, 30).timestamp_micros()),
            format!("haven.digest.{}.{}@school.example", ids.dsl, utc(2026, 11, 6, 7, 30).timestamp_micros()),
        ]
    );
    store.close().await;
    db.cleanup().await;
}

async fn dsl_only_incident_appears_only_in_dsl_digests(backend: Backend) {
    let db = TestDb::new(backend).await;
    let ids = seed(&db.store).await;
    let s = settings(vec![daily("role:dsl", false), daily(SLT, false)]);
    assert_eq!(pass(&db.store, &s, t0()).await.digests_passed, 2, "both recipients start from Monday's slot");
    let secret = file(&db.store, &ids, 1, t0() + Duration::hours(1), "DSL Team Access Only", "dsl-team", None, &[]).await;
    let shared = file(&db.store, &ids, 2, t0() + Duration::hours(2), "Behaviour", "dsl-team,slt", None, &[]).await;

    let r = pass(&db.store, &s, utc(2026, 11, 3, 7, 30)).await;
    assert_eq!(r.digests_queued, 2);
    let digests = queued(&db.store, "digest").await;
    let to = |who: &str| digests.iter().find(|q| q.recipient == who).cloned().expect("a digest for each");
    let (dsl, slt) = (to(DSL), to(SLT));
    assert!(dsl.body.contains(&format!("#{secret} DSL Team Access Only: JS (Year 9)")), "{}", dsl.body);
    assert!(dsl.body.contains(&format!("#{shared} Behaviour")), "{}", dsl.body);
    assert!(!slt.body.contains(&format!("#{secret} ")) && !slt.body.contains("DSL Team Access Only"), "{}", slt.body);
    assert!(slt.body.contains(&format!("#{shared} Behaviour")), "{}", slt.body);
    assert!(dsl.subject.contains("2 new") && slt.subject.contains("1 new"), "{} / {}", dsl.subject, slt.subject);
    for q in &digests {
        for word in ["Jane", "Smith", "parent@home.example", "told me"] {
            assert!(!q.body.contains(word) && !q.subject.contains(word), "a digest must not carry {word:?}: {q:?}");
        }
    }
    // The next morning nothing is new and nothing is outstanding: an empty digest is not sent.
    let r = pass(&db.store, &s, utc(2026, 11, 4, 7, 30)).await;
    assert_eq!((r.digests_queued, r.digests_passed), (0, 2));
    db.cleanup().await;
}

async fn digest_lists_overdue_outcomes_oldest_first(backend: Backend) {
    let db = TestDb::new(backend).await;
    let ids = seed(&db.store).await;
    let s = settings(vec![daily("role:dsl", false)]);
    pass(&db.store, &s, t0()).await;
    // Filed in an order unlike their due order.
    let middle = file(&db.store, &ids, 1, t0(), "Pastoral issue", "dsl-team", Some(t0() - Duration::days(3)), &[]).await;
    let oldest = file(&db.store, &ids, 2, t0(), "Safeguarding", "dsl-team", Some(t0() - Duration::days(5)), &[]).await;
    let not_yet = file(&db.store, &ids, 3, t0(), "Behaviour", "dsl-team", Some(t0() + Duration::days(4)), &[]).await;
    pass(&db.store, &s, utc(2026, 11, 3, 7, 30)).await;
    let body = queued(&db.store, "digest").await.pop().expect("a digest").body;
    let section = &body[body.find("Outcomes outstanding").expect("the outstanding section")..];
    let at = |inc: i64| section.find(&format!("#{inc} ")).unwrap_or_else(|| panic!("#{inc} missing from {body}"));
    assert!(at(oldest) < at(middle) && at(middle) < at(not_yet), "oldest first: {body}");
    assert!(body.contains("5 days overdue") && body.contains("3 days overdue") && body.contains("due in 3 days"), "{body}");

    // `haven outcomes --overdue --json` lists the same two overdue ones, oldest first.
    let json = haven::cli::outcomes::run(&db.store, utc(2026, 11, 3, 7, 30), London, true, true).await.expect("outcomes");
    let v: serde_json::Value = serde_json::from_str(&json).expect("JSON");
    let listed: Vec<i64> = v["outcomes"].as_array().expect("a list").iter().filter_map(|o| o["incident"].as_i64()).collect();
    assert_eq!(listed, vec![oldest, middle]);
    assert_eq!(v["outcomes"][0]["standing"], "5 days overdue");
    let text = haven::cli::outcomes::run(&db.store, utc(2026, 11, 3, 7, 30), London, false, false).await.expect("outcomes");
    assert!(text.ends_with("3 outstanding, 2 overdue\n"), "{text}");
    db.cleanup().await;
}

async fn the_loop_fires_wakes_the_outbox_and_stops_on_shutdown(backend: Backend) {
    let db = TestDb::new(backend).await;
    let ids = seed(&db.store).await;
    file(&db.store, &ids, 1, t0(), "Safeguarding", "dsl-team", Some(t0() + Duration::days(1)), &ladder(&ids)).await;
    let clock = haven::clock::ManualClock::new(t0() + Duration::hours(1));
    let shutdown = tokio_util::sync::CancellationToken::new();
    let wake = std::sync::Arc::new(tokio::sync::Notify::new());
    let clock = std::sync::Arc::new(clock);
    let health = std::sync::Arc::new(haven::health::HealthRecorder::new(db.store.clone(), clock.clone()));
    let task = tokio::spawn(haven::schedule::run(db.store.clone(), settings(vec![]), clock, shutdown.clone(), wake.clone(), health));
    tokio::time::timeout(std::time::Duration::from_secs(20), wake.notified())
        .await
        .expect("the first pass queues the due reminder and wakes the outbox worker");
    assert_eq!(queued(&db.store, "reminder").await.len(), 1);
    shutdown.cancel();
    tokio::time::timeout(std::time::Duration::from_secs(20), task)
        .await
        .expect("the scheduler stops promptly on shutdown")
        .expect("the scheduler task did not panic");
    db.cleanup().await;
}

/// Haven's scheduler first runs on Monday at 10:00, after 26 incidents were filed over the
/// weekend: Tuesday's first digest lists all 26 (not "0 new"), and later digests cover what
/// came since the previous one sent to the same person, kept in the database across a
/// restart and a change of schedule.
async fn first_digest_covers_everything_since_records_began(backend: Backend) {
    let db = TestDb::new(backend).await;
    let ids = seed(&db.store).await;
    for n in 0..26 {
        file(&db.store, &ids, 100 + n, utc(2026, 10, 31, 9, 0) + Duration::hours(i64::from(n)), "Behaviour", "dsl-team", None, &[]).await;
    }
    let s = settings(vec![daily("role:dsl", false)]);
    assert_eq!(pass(&db.store, &s, t0()).await.digests_passed, 1, "no digest for a morning already gone");
    assert_eq!(pass(&db.store, &s, utc(2026, 11, 3, 7, 30)).await.digests_queued, 1);
    let first = queued(&db.store, "digest").await.pop().expect("the first digest");
    assert!(first.subject.contains(": 26 new"), "{}", first.subject);
    assert!(first.body.contains("New incidents since records began (your first digest): 26"), "{}", first.body);

    // One more on Tuesday; a restart (new settings, the same database) and a new schedule
    // written in 5 fields: the new schedule's first run only sets its starting point, and its
    // first digest covers what came since Tuesday's digest to the DSL.
    let late = file(&db.store, &ids, 200, utc(2026, 11, 3, 9, 0), "Behaviour", "dsl-team", None, &[]).await;
    let weekdays = settings(vec![Digest { to: "role:dsl".into(), cron: "30 7 * * 1-5".into(), send_empty: false }]);
    assert_eq!(pass(&db.store, &weekdays, utc(2026, 11, 4, 8, 0)).await.digests_passed, 1);
    assert_eq!(pass(&db.store, &weekdays, utc(2026, 11, 5, 7, 30)).await.digests_queued, 1);
    let next = queued(&db.store, "digest").await.pop().expect("the next digest");
    assert!(next.subject.contains(": 1 new"), "{}", next.subject);
    assert!(next.body.contains("New incidents since your last digest (Tue 3 Nov 2026 07:30): 1"), "{}", next.body);
    assert!(next.body.contains(&format!("#{late} Behaviour")), "{}", next.body);
    db.cleanup().await;
}

/// A throwaway installation whose config has `digests` appended (`rules check` needs no database).
fn env_with_digests(digests: &str) -> support::haven::HavenEnv {
    let dir = tempfile::tempdir().expect("temp dir");
    let env = support::haven::HavenEnv::new(&format!("sqlite://{}", dir.path().join("unused.db").display()), "");
    let mut config = std::fs::read_to_string(&env.config).expect("config");
    config.push_str(digests);
    std::fs::write(&env.config, config).expect("write config");
    env
}

/// `haven rules check` shows when each digest will run next, in the school's zone: a weekday
/// digest written `1-5` runs Monday to Friday, never on a Sunday.
#[test]
fn rules_check_prints_the_next_three_runs_of_each_digest() {
    let env = env_with_digests(
        "\n[[digest]]\nto = \"role:dsl\"\ncron = \"30 7 * * 1-5\"\n\n[[digest]]\nto = \"role:slt\"\ncron = \"0 0 18 * * 0\"\n",
    );
    let r = env.haven(&["rules", "check"]);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    let line = |prefix: &str| {
        r.stdout.lines().find(|l| l.starts_with(prefix)).unwrap_or_else(|| panic!("no {prefix} line in {}", r.stdout)).to_string()
    };
    let weekdays = line("digest[0] to role:dsl (\"30 7 * * 1-5\"): next ");
    let runs: Vec<&str> = weekdays.split(": next ").nth(1).unwrap_or("").split(", ").collect();
    assert_eq!(runs.len(), 3, "{weekdays}");
    for run in &runs {
        assert!(["Mon ", "Tue ", "Wed ", "Thu ", "Fri "].iter().any(|d| run.starts_with(d)), "a weekday: {run}");
        assert!(run.ends_with("07:30 GMT") || run.ends_with("07:30 BST"), "07:30 school time: {run}");
    }
    let sundays = line("digest[1] to role:slt (\"0 0 18 * * 0\"): next ");
    assert_eq!(sundays.matches("Sun ").count(), 3, "0 is Sunday: {sundays}");
}

/// A cron line naming a weekday that is not one is refused with a message naming the days.
#[test]
fn a_digest_with_a_weekday_that_is_not_one_is_refused() {
    let env = env_with_digests("\n[[digest]]\nto = \"role:dsl\"\ncron = \"30 7 * * 1-8\"\n");
    let r = env.haven(&["rules", "check"]);
    assert_eq!(r.code, 78, "{}{}", r.stdout, r.stderr);
    assert!(r.stderr.contains("digest[0].cron: weekday \"8\" is not a day: use 0-7 (0 and 7 Sunday, 1 Monday"), "{}", r.stderr);
}

backend_tests!(
    the_loop_fires_wakes_the_outbox_and_stops_on_shutdown,
    ladder_of_three_rungs_fires_each_at_its_time,
    outcome_between_rungs_stops_the_ladder,
    restart_between_rungs_repeats_nothing_and_skips_nothing,
    daemon_down_for_a_day_catches_up_in_order_once,
    two_daemons_fire_each_rung_once,
    digest_fires_once_at_0730_london_on_clock_change_sundays,
    digest_after_an_outage_sends_only_the_latest_slot,
    dsl_only_incident_appears_only_in_dsl_digests,
    digest_lists_overdue_outcomes_oldest_first,
    first_digest_covers_everything_since_records_began,
);
