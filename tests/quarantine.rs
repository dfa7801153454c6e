//! Quarantine is not a dead end, and dates that cannot be trusted are not trusted (issue 16,
//! defects 4 and 5), end to end through the real `haven` binary on SQLite and PostgreSQL:
//! `haven messages release` files a quarantined message for the DSL team (and only for
//! them, and only once); a quarantined message reserves no Message-ID; a duplicate is the
//! same Message-ID with the same content; an unreadable or far-future date is replaced by the
//! filing time, and the chronology says so.

mod support;

use chrono::{DateTime, Utc};
use std::time::Duration;
use support::db::{Backend, TestDb};
use support::haven::{HavenEnv, Run, school_fixtures, wait_for};

const TEACHER_FROM: &str = "From: Terry Teach <teacher@school.example>";
const OUTSIDER_FROM: &str = "From: Someone <someone@elsewhere.example>";

/// The test school's forward of Mary Smith's email about Jane (filed on Jane, with alerts).
fn forward() -> String {
    std::fs::read_to_string(school_fixtures().join("mail/forward-contact.eml")).unwrap()
}

/// Writes `raw` into the installation and ingests it; returns the new message's id, state
/// and reason as `haven messages --json` shows them.
fn ingest(env: &HavenEnv, name: &str, raw: &str) -> (i64, String, String) {
    let p = env.path(name);
    std::fs::write(&p, raw).unwrap();
    let r = env.haven(&["ingest", p.to_str().unwrap()]);
    assert_eq!(r.code, 0, "ingest {name}: {}{}", r.stdout, r.stderr);
    let newest = messages(env).into_iter().max_by_key(|m| m["id"].as_i64()).expect("a recorded message");
    (newest["id"].as_i64().unwrap(), newest["state"].as_str().unwrap().into(), newest["reason"].as_str().unwrap().into())
}

fn messages(env: &HavenEnv) -> Vec<serde_json::Value> {
    let r = env.haven(&["messages", "--json"]);
    assert_eq!(r.code, 0, "messages: {}", r.stderr);
    serde_json::from_str(&r.stdout).unwrap()
}

fn message(env: &HavenEnv, id: i64) -> serde_json::Value {
    messages(env).into_iter().find(|m| m["id"] == id).unwrap_or_else(|| panic!("message {id} is listed"))
}

fn release(env: &HavenEnv, id: i64, by: &str) -> Run {
    env.haven(&["messages", "release", &id.to_string(), "--by", by, "--reason", "spoke to the sender: genuine"])
}

fn incidents_of(env: &HavenEnv, upn: &str) -> Vec<serde_json::Value> {
    let r = env.haven(&["chronology", upn, "--as", "dsl@school.example", "--json"]);
    assert_eq!(r.code, 0, "chronology {upn}: {}", r.stderr);
    let chron: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    chron["incidents"].as_array().expect("incidents array").clone()
}

/// An outsider's message is quarantined; a teacher may not release it; the DSL releases it
/// and it is filed on the pupil — the same message row, recorded by the DSL, with its alerts
/// sent — and audited with the reason; releasing it again is refused.
async fn the_dsl_releases_a_quarantined_message_once(backend: Backend) {
    let db = TestDb::new(backend).await;
    let env = HavenEnv::new(&db.url, "");
    env.import_school();
    let (id, state, _) = ingest(&env, "outsider.eml", &forward().replace(TEACHER_FROM, OUTSIDER_FROM));
    assert_eq!(state, "quarantined");

    let r = release(&env, id, "teacher@school.example");
    assert_eq!(r.code, 2, "a teacher may not release: {}{}", r.stdout, r.stderr);
    assert!(r.stderr.contains("teacher@school.example is not on the DSL team"), "{}", r.stderr);
    let r = release(&env, id, "nobody@elsewhere.example");
    assert_eq!(r.code, 2, "{}{}", r.stdout, r.stderr);
    assert!(r.stderr.contains("nobody@elsewhere.example is not an active member of staff"), "{}", r.stderr);
    let s = env.status();
    assert_eq!((s["messages"]["quarantined"].as_i64(), s["incidents"].as_i64()), (Some(1), Some(0)), "nothing changed: {s}");

    let r = release(&env, id, "dsl@school.example");
    assert_eq!(r.code, 0, "the DSL releases it: {}{}", r.stdout, r.stderr);
    assert!(r.stdout.contains(&format!("message {id} released: filed as incident #")), "{}", r.stdout);
    let s = env.status();
    assert_eq!(s["messages"]["filed"], 1, "{s}");
    assert_eq!(s["messages"]["quarantined"], 0, "{s}");
    assert_eq!(messages(&env).len(), 1, "the message's own row was filed, no second row: {s}");
    assert_eq!(s["incidents"], 1, "{s}");
    assert!(s["outbox"]["pending"].as_i64().unwrap() > 0, "its alerts are queued: {s}");
    let m = message(&env, id);
    assert_eq!(m["state"], "filed", "{m}");
    assert_eq!(m["released_by"], "Dana Lead", "{m}");
    assert!(m["reason"].as_str().unwrap().contains("released from quarantine by Dana Lead"), "{m}");
    let r = env.haven(&["messages"]);
    assert!(r.stdout.contains("filed (released)"), "the list shows it was released: {}", r.stdout);

    let entries = incidents_of(&env, "A100000000001");
    assert_eq!(entries.len(), 1, "{entries:?}");
    assert_eq!(entries[0]["recorded_by"], "Dana Lead", "an outsider's message is recorded by the DSL who released it");
    assert!(entries[0]["body"].as_str().unwrap().contains("lunch money"), "{}", entries[0]);

    let audit = db.store.audit_tail(20).await.unwrap();
    let entry = audit.iter().find(|a| a.action == "release").expect("the release is audited");
    assert_eq!(entry.actor, "dsl@school.example");
    assert_eq!(entry.subject, format!("message:{id}"));
    assert!(entry.detail.contains("spoke to the sender: genuine") && entry.detail.contains("state=filed"), "{}", entry.detail);

    let r = release(&env, id, "dsl@school.example");
    assert_eq!(r.code, 2, "a second release is refused: {}{}", r.stdout, r.stderr);
    assert!(r.stderr.contains(&format!("message {id} is filed, not quarantined")), "{}", r.stderr);
    assert_eq!(env.status()["incidents"], 1, "nothing filed twice");

    // The alerts reach the outbox: the daemon sends them to its Maildir.
    let mut daemon = env.start();
    wait_for("the released message's alerts to be sent", Duration::from_secs(30), || {
        daemon.assert_running();
        let s = env.status();
        if s["outbox"]["pending"] == 0 && s["outbox"]["sent"].as_i64() > Some(0) { Ok(()) } else { Err(s.to_string()) }
    });
    daemon.stop();
    let sent = std::fs::read_dir(env.path("var/outbox/new")).map(|d| d.count()).unwrap_or(0);
    assert!(sent > 0, "alerts in the outbox Maildir");
    db.cleanup().await;
}

/// A message from a member of staff whose mail failed sender authentication, once released,
/// is recorded by that member of staff (not by the DSL who released it).
async fn a_released_staff_message_is_recorded_by_its_sender(backend: Backend) {
    let db = TestDb::new(backend).await;
    let env = HavenEnv::new(&db.url, r#"trusted_authserv_id = "mx.school.example""#);
    env.import_school();
    let raw = std::fs::read_to_string(school_fixtures().join("mail/spoofed.eml")).unwrap();
    let (id, state, reason) = ingest(&env, "unauthenticated.eml", &raw);
    assert_eq!(state, "quarantined", "{reason}");
    let r = release(&env, id, "ddsl@school.example");
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    let entries = incidents_of(&env, "A100000000003");
    assert_eq!(entries.len(), 1, "{entries:?}");
    assert_eq!(entries[0]["recorded_by"], "Dana Lead", "recorded by the sender the From names: {}", entries[0]);
    assert_eq!(message(&env, id)["released_by"], "Dev Deputy");
    db.cleanup().await;
}

/// A message quarantined unread cannot be released, nor one that another check than the
/// sender's quarantined; each says why.
async fn an_unreadable_message_cannot_be_released(backend: Backend) {
    let db = TestDb::new(backend).await;
    let env = HavenEnv::new(&db.url, "max_attachments = 1");
    env.import_school();
    let file = |n: usize| {
        format!("--b\r\nContent-Type: application/pdf\r\nContent-Disposition: attachment; filename=\"f{n}.pdf\"\r\n\r\n%PDF-{n}\r\n")
    };
    let raw = format!(
        "{TEACHER_FROM}\r\nTo: safeguarding@school.example\r\nSubject: files [Jane Smith]\r\n\
         Date: Tue, 10 Nov 2026 16:05:00 +0000\r\nMessage-ID: <two-files@school.example>\r\nMIME-Version: 1.0\r\n\
         Content-Type: multipart/mixed; boundary=\"b\"\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\nTwo files.\r\n{}{}--b--\r\n",
        file(1),
        file(2)
    );
    let (id, state, _) = ingest(&env, "two-files.eml", &raw);
    assert_eq!(state, "quarantined");
    let r = release(&env, id, "dsl@school.example");
    assert_eq!(r.code, 65, "{}{}", r.stdout, r.stderr);
    assert!(r.stderr.contains(&format!("message {id} cannot be released: it is unreadable or over a limit")), "{}", r.stderr);
    assert_eq!(message(&env, id)["state"], "quarantined", "nothing changed");

    // A reply whose signed address was altered: the sender check was not what quarantined
    // it, so releasing it would quarantine it again, and it is refused.
    let reply = format!(
        "{TEACHER_FROM}\r\nTo: safeguarding+r-1-2-forged@school.example\r\nSubject: Re: alert\r\n\
         Date: Tue, 10 Nov 2026 16:05:00 +0000\r\nMessage-ID: <forged-reply@school.example>\r\n\r\nOutcome: NFA\r\n"
    );
    let (id, state, reason) = ingest(&env, "forged-reply.eml", &reply);
    assert_eq!(state, "quarantined", "{reason}");
    let r = release(&env, id, "dsl@school.example");
    assert_eq!(r.code, 65, "{}{}", r.stdout, r.stderr);
    assert!(
        r.stderr.contains(&format!("message {id} was not released: on release it would be quarantined again ({reason})")),
        "{}",
        r.stderr
    );
    assert_eq!(message(&env, id)["state"], "quarantined", "nothing changed");
    db.cleanup().await;
}

/// A quarantined outsider's message reserves no Message-ID: the genuine message with the same
/// Message-ID is filed. A second delivery of it with the same content (other transport
/// headers) is a duplicate, and so is the outsider's message once released; the same
/// Message-ID on other content is filed, and its reason says so.
async fn only_filed_messages_make_duplicates_by_id_and_content(backend: Backend) {
    let db = TestDb::new(backend).await;
    let env = HavenEnv::new(&db.url, "");
    env.import_school();
    let genuine = forward();
    let (outsider, state, _) = ingest(&env, "outsider.eml", &genuine.replace(TEACHER_FROM, OUTSIDER_FROM));
    assert_eq!(state, "quarantined");

    let (first, state, reason) = ingest(&env, "genuine.eml", &genuine);
    assert_eq!(state, "filed", "the genuine message is filed, not a duplicate of the quarantined one: {reason}");
    let s = env.status();
    assert_eq!(s["incidents"], 1, "{s}");
    assert!(s["outbox"]["pending"].as_i64().unwrap() > 0, "and alerted: {s}");

    let again = format!("Received: from mx2.school.example by imap.school.example; Tue, 10 Nov 2026 16:06:00 +0000\r\n{genuine}");
    let (_, state, reason) = ingest(&env, "again.eml", &again);
    assert_eq!(state, "duplicate", "{reason}");
    assert_eq!(reason, format!("same Message-ID and content as message {first}"));

    let other = genuine.replace("Mum rang after school as well", "Dad rang too");
    let (_, state, reason) = ingest(&env, "other.eml", &other);
    assert_eq!(state, "filed", "same Message-ID, other content: {reason}");
    assert!(reason.contains(&format!("message {first} has the same Message-ID with other content")), "{reason}");
    assert_eq!(env.status()["incidents"], 2);

    let r = release(&env, outsider, "ddsl@school.example");
    assert_eq!(r.code, 0, "the deputy DSL releases it: {}{}", r.stdout, r.stderr);
    assert!(r.stdout.contains("released: duplicate"), "{}", r.stdout);
    let m = message(&env, outsider);
    assert_eq!(m["state"], "duplicate", "{m}");
    assert_eq!(m["released_by"], "Dev Deputy", "{m}");
    assert_eq!(env.status()["incidents"], 2, "a duplicate files nothing");
    db.cleanup().await;
}

/// The DSL's note about Oliver with `date` as its Date header.
fn note_dated(n: usize, date: &str) -> String {
    format!(
        "{TEACHER_FROM}\r\nTo: safeguarding@school.example\r\nSubject: Oliver this week\r\nDate: {date}\r\n\
         Message-ID: <dated-{n}@mail.school.example>\r\n\r\nPupil: Oliver Brown\r\nCategory: Pastoral issue\r\n\r\n\
         Olly was upset at lunch (note {n}).\r\n"
    )
}

/// A Date that cannot be read, or that is more than a day ahead (year 9999), is replaced by
/// the filing time and the chronology says so; a date two hours ahead is kept as written.
async fn untrusted_dates_are_filed_with_the_filing_time(backend: Backend) {
    let db = TestDb::new(backend).await;
    let env = HavenEnv::new(&db.url, "");
    env.import_school();
    let before = Utc::now();
    let soon = (before + chrono::TimeDelta::hours(2)).format("%a, %d %b %Y %H:%M:%S +0000").to_string();
    let forward_unreadable = forward().replace("Date: Mon, 9 Nov 2026 at 21:14", "Date: the Monday before half term");
    for (name, raw) in [
        ("unreadable.eml", note_dated(1, "sometime on Tuesday")),
        ("far-future.eml", note_dated(2, "Fri, 31 Dec 9999 23:59:00 +0000")),
        ("soon.eml", note_dated(3, &soon)),
        ("forward-unreadable.eml", forward_unreadable),
    ] {
        let (_, state, reason) = ingest(&env, name, &raw);
        assert_eq!(state, "filed", "{name}: {reason}");
    }
    let after = Utc::now();
    let at = |e: &serde_json::Value| DateTime::parse_from_rfc3339(e["occurred_at"].as_str().unwrap()).unwrap().with_timezone(&Utc);
    let filing_time = |e: &serde_json::Value| {
        let t = at(e);
        assert!(t >= before - chrono::TimeDelta::seconds(1) && t <= after + chrono::TimeDelta::seconds(1), "dated when filed: {e}");
    };
    let body = |e: &serde_json::Value, n: usize| e["body"].as_str().unwrap_or_default().contains(&format!("(note {n})"));

    let oliver = incidents_of(&env, "A100000000002");
    assert_eq!(oliver.len(), 3, "{oliver:?}");
    let unreadable = oliver.iter().find(|e| body(e, 1)).expect("note 1");
    filing_time(unreadable);
    assert_eq!(unreadable["date_note"], "date unreadable in the original", "{unreadable}");
    let far = oliver.iter().find(|e| body(e, 2)).expect("note 2");
    filing_time(far);
    assert_eq!(far["date_note"], "date in the original is more than a day in the future", "{far}");
    let kept = oliver.iter().find(|e| body(e, 3)).expect("note 3");
    assert_eq!(at(kept).format("%a, %d %b %Y %H:%M:%S +0000").to_string(), soon, "two hours ahead is kept: {kept}");
    assert!(kept["date_note"].is_null(), "{kept}");
    assert!(body(&oliver[2], 3), "the year-9999 note no longer sorts last: {oliver:?}");

    let jane = incidents_of(&env, "A100000000001");
    assert_eq!(jane.len(), 1, "{jane:?}");
    filing_time(&jane[0]);
    assert_eq!(jane[0]["date_note"], "date unreadable in the original", "the forwarded original's date: {}", jane[0]);

    let r = env.haven(&["chronology", "A100000000002", "--as", "dsl@school.example"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(r.stdout.contains("date: date unreadable in the original; dated when filed"), "{}", r.stdout);
    assert!(r.stdout.contains("date: date in the original is more than a day in the future; dated when filed"), "{}", r.stdout);

    // The export says it too, in its JSON and its HTML.
    for format in ["json", "html"] {
        let out = env.path(&format!("export-{format}"));
        let r = env.haven(&["export", "A100000000002", "--format", format, "--as", "dsl@school.example", "--out", out.to_str().unwrap()]);
        assert_eq!(r.code, 0, "export {format}: {}{}", r.stdout, r.stderr);
        // The HTML escapes every space (ammonia's clean_text).
        let doc = std::fs::read_to_string(out.join(format!("chronology.{format}"))).unwrap().replace("&#32;", " ");
        assert!(doc.contains("date unreadable in the original"), "{format}: {doc}");
        assert!(doc.contains("date in the original is more than a day in the future"), "{format}: {doc}");
    }
    db.cleanup().await;
}

backend_tests!(
    the_dsl_releases_a_quarantined_message_once,
    a_released_staff_message_is_recorded_by_its_sender,
    an_unreadable_message_cannot_be_released,
    only_filed_messages_make_duplicates_by_id_and_content,
    untrusted_dates_are_filed_with_the_filing_time,
);
