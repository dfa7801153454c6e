//! The store on both backends: directory sync, recording exactly once, atomic filing, the
//! audit chain.

mod support;

use chrono::{NaiveDate, TimeZone, Utc};
use haven::directory::{Pupil, Role, Staff};
use haven::store::{
    AttachmentRecord, AuditVerdict, ContactImport, IncidentRecord, MessageRecord, MessageState, OutboxRecord, PupilLink, Recorded,
};
use support::db::{Backend, TestDb};

fn pupil(upn: &str, first: &str, last: &str, house: &str) -> Pupil {
    Pupil {
        id: 0,
        upn: upn.into(),
        first_name: first.into(),
        last_name: last.into(),
        preferred_name: None,
        date_of_birth: NaiveDate::from_ymd_opt(2012, 3, 4),
        year_group: Some(9),
        tutor_group: Some("9A".into()),
        house: Some(house.into()),
        sen: false,
        left_on: None,
    }
}

fn staff(email: &str, roles: &[Role]) -> Staff {
    Staff {
        id: 0,
        emails: vec![email.into()],
        first_name: "Sam".into(),
        last_name: "Teacher".into(),
        roles: roles.to_vec(),
        house: None,
        tutor_group: None,
        active: true,
    }
}

fn t(h: u32) -> chrono::DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 2, h, 0, 0).unwrap()
}

async fn seed(db: &TestDb) {
    db.store
        .sync_directory(
            &support::db::sealer(),
            &support::db::blind(),
            &[pupil("A123456789012", "Jane", "Smith", "Austen"), pupil("B123456789012", "Tom", "Smith", "Bronte")],
            &[staff("s.teacher@school.example", &[Role::Teacher]), staff("dsl@school.example", &[Role::Dsl])],
            &[ContactImport {
                email: "Parent@Home.example".into(),
                name: Some("Pat Smith".into()),
                relationship: Some("mother".into()),
                pupil_upns: vec!["A123456789012".into(), "B123456789012".into()],
            }],
            NaiveDate::from_ymd_opt(2026, 11, 1).unwrap(),
            t(8),
        )
        .await
        .unwrap();
}

fn message(sha: &str, state: MessageState) -> MessageRecord {
    MessageRecord {
        sha256: Some(sha.into()),
        message_id: Some(format!("{sha}@school.example")),
        source: "file",
        origin: "test.eml".into(),
        imap_uid: None,
        received: t(10),
        size: 5,
        state,
        reason: "test".into(),
        duplicate_of: None,
        content_sha256: None,
    }
}

fn incident(pupil_id: i64) -> IncidentRecord {
    IncidentRecord {
        occurred: t(9),
        recorded: t(10),
        recorded_by: None,
        record_kind: "email".into(),
        category: "Pastoral issue".into(),
        priority: "normal".into(),
        visibility: "staff".into(),
        note: Some("note".into()),
        original_from: Some("parent@home.example".into()),
        original_name: None,
        original_subject: Some("About Jane".into()),
        body_text: "body".into(),
        body_html: None,
        pupils: vec![PupilLink { pupil_id, role: "subject".into(), how: "test".into() }],
        attachments: vec![AttachmentRecord {
            filename: "letter.pdf".into(),
            content_type: "application/pdf".into(),
            sha256: "f".repeat(64),
            inline: false,
            tnef: false,
            data: b"%PDF".to_vec(),
        }],
        outbox: vec![OutboxRecord {
            purpose: "alert",
            recipient: "dsl@school.example".into(),
            email_message_id: "haven.{incident}.alert.1@school.example".into(),
            subject: "Haven incident #{incident}".into(),
            body: "Incident #{incident}".into(),
        }],
        action: None,
        follows: None,
        date_note: None,
        backfilled: false,
        ai_read: false,
    }
}

async fn directory_sync_round_trips_and_marks_leavers(backend: Backend) {
    let db = TestDb::new(backend).await;
    seed(&db).await;
    let dir = db.store.load_directory(&support::db::sealer()).await.unwrap();
    assert_eq!(dir.pupils.len(), 2);
    assert_eq!(dir.staff.len(), 2);
    assert_eq!(dir.contacts[0].email, "parent@home.example");
    assert_eq!(dir.contacts[0].pupil_ids.len(), 2, "a parent of siblings links to both");
    assert!(dir.active_staff_by_email("DSL@school.example").is_some_and(|s| s.has_role(Role::Dsl)));

    // Tom is missing from the next export: he has left, and is kept.
    let report = db
        .store
        .sync_directory(
            &support::db::sealer(),
            &support::db::blind(),
            &[pupil("A123456789012", "Jane", "Smith", "Austen")],
            &[staff("dsl@school.example", &[Role::Dsl])],
            &[],
            NaiveDate::from_ymd_opt(2026, 12, 1).unwrap(),
            t(9),
        )
        .await
        .unwrap();
    assert_eq!(report.pupils_left, 1);
    assert_eq!(report.staff_deactivated, 1);
    let dir = db.store.load_directory(&support::db::sealer()).await.unwrap();
    let tom = dir.pupils.iter().find(|p| p.upn == "B123456789012").expect("leaver kept");
    assert_eq!(tom.left_on, NaiveDate::from_ymd_opt(2026, 12, 1));
    assert!(dir.active_staff_by_email("s.teacher@school.example").is_none(), "leaver staff cannot file");
    db.cleanup().await;
}

async fn same_bytes_are_recorded_once(backend: Backend) {
    let db = TestDb::new(backend).await;
    seed(&db).await;
    let jane = db.store.load_directory(&support::db::sealer()).await.unwrap().pupils[0].id;
    let sha = "a".repeat(64);
    let mut tx = db.store.begin().await.unwrap();
    let first = tx.record_message(b"hello", &message(&sha, MessageState::Filed), Some(&incident(jane)), "test").await.unwrap();
    tx.commit().await.unwrap();
    let Recorded::New { message: first_id, incident: Some(inc) } = first else { panic!("expected a new incident, got {first:?}") };

    let mut tx = db.store.begin().await.unwrap();
    let again = tx.record_message(b"hello", &message(&sha, MessageState::Filed), Some(&incident(jane)), "test").await.unwrap();
    tx.commit().await.unwrap();
    assert_eq!(again, Recorded::Already { message: first_id, state: MessageState::Filed });

    let status = db.store.status(t(11)).await.unwrap();
    assert_eq!(status.incidents, 1);
    assert_eq!(status.messages[&MessageState::Filed], 1);
    assert_eq!(status.outbox_pending, 1);
    let chron = db.store.chronology(jane).await.unwrap();
    assert_eq!(chron.len(), 1);
    assert_eq!(chron[0].incident, inc);
    assert_eq!(chron[0].attachments, vec!["letter.pdf".to_string()]);
    db.cleanup().await;
}

async fn a_failed_transaction_leaves_nothing_half_filed(backend: Backend) {
    let db = TestDb::new(backend).await;
    seed(&db).await;
    let mut bad = incident(999_999); // no such pupil: the link violates a foreign key
    bad.attachments.clear();
    let mut tx = db.store.begin().await.unwrap();
    let err = tx.record_message(b"raw", &message(&"b".repeat(64), MessageState::Filed), Some(&bad), "test").await;
    assert!(err.is_err(), "a broken incident must fail");
    drop(tx); // rolled back, as a crash would
    let status = db.store.status(t(11)).await.unwrap();
    assert_eq!(status.incidents, 0);
    assert_eq!(status.messages.values().sum::<u64>(), 0, "the raw message row is gone with it");
    assert_eq!(status.outbox_pending, 0, "no alert for an incident that was rolled back");
    assert!(db.store.find_message_by_sha(&"b".repeat(64)).await.unwrap().is_none());
    db.cleanup().await;
}

async fn audit_chain_detects_an_edited_row(backend: Backend) {
    let db = TestDb::new(backend).await;
    for i in 0..5 {
        db.store.audit(t(i), "dsl@school.example", "view", &format!("pupil:{i}"), "chronology").await.unwrap();
    }
    assert_eq!(db.store.verify_audit().await.unwrap(), AuditVerdict::Intact { entries: 5 });
    let third = db.store.audit_tail(5).await.unwrap()[2].id;
    haven::store::on_pool_for_tests(&db.store, &format!("UPDATE audit_log SET detail = 'nothing to see' WHERE id = {third}")).await;
    assert_eq!(db.store.verify_audit().await.unwrap(), AuditVerdict::Broken { id: third });
    db.cleanup().await;
}

backend_tests!(
    directory_sync_round_trips_and_marks_leavers,
    same_bytes_are_recorded_once,
    a_failed_transaction_leaves_nothing_half_filed,
    audit_chain_detects_an_edited_row,
);
