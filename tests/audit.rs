//! The audit log proves itself, and the command line says who is acting: end to end through the
//! real `haven` binary, on SQLite and on PostgreSQL.
//!
//! An attacker with write access to the database (but not to the keys beside the storage key)
//! edits an entry and recomputes the old unkeyed chain, or deletes the newest entries: `haven
//! audit verify` names the entry, or says the log was truncated. `--as` is required to see
//! records, `--by` must name someone allowed to record the outcome, and every entry carries the
//! operating-system user beside the member of staff it claims.

mod support;

use haven::store::AuditEntry;
use sha2::{Digest, Sha256};
use support::db::{Backend, TestDb};
use support::haven::{HavenEnv, school_fixtures};

const DSL: &str = "dsl@school.example";
const OLIVER: &str = "A100000000002";

fn mail(name: &str) -> String {
    school_fixtures().join("mail").join(name).display().to_string()
}

/// A school with Oliver's DSL-only note filed and viewed twice by the DSL.
async fn school_with_a_log(backend: Backend) -> (TestDb, HavenEnv) {
    let db = TestDb::new(backend).await;
    let env = HavenEnv::new(&db.url, "");
    env.import_school();
    let r = env.haven(&["ingest", &mail("note-named.eml")]);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    for _ in 0..2 {
        let r = env.haven(&["chronology", OLIVER, "--as", DSL]);
        assert_eq!(r.code, 0, "{}", r.stderr);
    }
    (db, env)
}

async fn entries(db: &TestDb) -> Vec<AuditEntry> {
    db.store.audit_tail(10_000).await.expect("read the audit log")
}

/// The incident on Oliver's chronology, as the DSL sees it.
fn olivers_incident(env: &HavenEnv) -> serde_json::Value {
    let r = env.haven(&["chronology", OLIVER, "--as", DSL, "--json"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let v: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    v["incidents"][0].clone()
}

/// The old unkeyed chain's hash: what a short script can compute without any key.
fn unkeyed_hash(prev: &str, e: &AuditEntry) -> String {
    let mut h = Sha256::new();
    for part in [prev, &e.at.timestamp_micros().to_string(), &e.actor, &e.action, &e.subject, &e.detail] {
        h.update((part.len() as u64).to_be_bytes());
        h.update(part.as_bytes());
    }
    hex::encode(h.finalize())
}

fn sql_text(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

/// A correct log verifies, its head is anchored beside the keys (mode 0600), each entry names
/// the operating-system user beside the member of staff, and an audit key that others can
/// read is refused.
async fn a_correct_log_is_intact_and_names_the_os_user(backend: Backend) {
    let (db, env) = school_with_a_log(backend).await;
    let log = entries(&db).await;
    let r = env.haven(&["audit", "verify"]);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    assert!(r.stdout.contains(&format!("audit log intact: {} entries", log.len())), "{}", r.stdout);

    let head = env.path("secrets/audit.head");
    let text = std::fs::read_to_string(&head).expect("the head is anchored beside the keys");
    assert!(text.contains(&format!("entries={}", log.len())), "{text}");
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(std::fs::metadata(&head).unwrap().permissions().mode() & 0o777, 0o600);

    let uid = std::fs::read_to_string("/proc/self/status")
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("Uid:").and_then(|u| u.split_whitespace().next()).map(str::to_string))
        .expect("a Uid line");
    let view = log.last().unwrap();
    assert_eq!((view.action.as_str(), view.actor.as_str()), ("chronology_view", DSL), "{view:?}");
    assert!(
        view.os_user.contains(&format!("uid {uid})")) || view.os_user == format!("uid {uid}"),
        "the OS user beside the claimed DSL: {view:?}"
    );
    assert!(log.iter().all(|e| !e.os_user.is_empty()), "every entry names who ran the process: {log:?}");

    std::fs::set_permissions(env.path("secrets/audit.key"), std::fs::Permissions::from_mode(0o644)).unwrap();
    let r = env.haven(&["audit", "verify"]);
    assert_eq!(r.code, 78, "{}{}", r.stdout, r.stderr);
    assert!(r.stderr.contains("storage.audit_key_file") && r.stderr.contains("chmod 600"), "{}", r.stderr);
    db.cleanup().await;
}

/// Editing an entry and recomputing the chain from it on without the key (the old unkeyed
/// SHA-256, even relabelled as a pre-upgrade entry) is named by `audit verify`.
async fn an_edited_entry_with_a_recomputed_chain_is_named(backend: Backend) {
    let (db, env) = school_with_a_log(backend).await;
    let log = entries(&db).await;
    assert!(log.len() >= 4, "{log:?}");
    let edited = log[1].id;
    for relabel in [false, true] {
        // From the edited entry on, chained to the real MAC of the entry before it.
        let mut prev_hash = stored_hash(&db, log[0].id).await;
        for (i, e) in log.iter().enumerate().skip(1) {
            let mut e = e.clone();
            if i == 1 {
                e.detail = "nothing happened".into();
            }
            let hash = unkeyed_hash(&prev_hash, &e);
            let relabelled = if relabel { ", chain = 'sha256', os_user = ''" } else { "" };
            haven::store::on_pool_for_tests(
                &db.store,
                &format!(
                    "UPDATE audit_log SET detail = {}, prev_hash = '{prev_hash}', hash = '{hash}'{relabelled} WHERE id = {}",
                    sql_text(&e.detail),
                    e.id
                ),
            )
            .await;
            prev_hash = hash;
        }
        let r = env.haven(&["audit", "verify"]);
        assert_eq!(r.code, 65, "relabel={relabel}: a rewritten chain must fail: {}{}", r.stdout, r.stderr);
        assert!(
            r.stderr.contains(&format!("tampered with at entry {edited}:")),
            "relabel={relabel}: names the edited entry {edited}: {}",
            r.stderr
        );
    }
    db.cleanup().await;
}

async fn stored_hash(db: &TestDb, id: i64) -> String {
    use sqlx::Row;
    let sql = format!("SELECT hash FROM audit_log WHERE id = {id}");
    match &db.store {
        haven::store::Store::Sqlite(p) => sqlx::query(sqlx::AssertSqlSafe(sql)).fetch_one(p).await.unwrap().get(0),
        haven::store::Store::Postgres(p) => sqlx::query(sqlx::AssertSqlSafe(sql)).fetch_one(p).await.unwrap().get(0),
    }
}

/// Deleting the newest three entries leaves a chain that holds, but `audit verify` compares it
/// with the head anchored outside the database and says it was truncated; entries appended
/// afterwards do not hide it.
async fn deleting_the_newest_entries_is_detected(backend: Backend) {
    let (db, env) = school_with_a_log(backend).await;
    let before = entries(&db).await.len();
    haven::store::on_pool_for_tests(&db.store, "DELETE FROM audit_log WHERE id IN (SELECT id FROM audit_log ORDER BY id DESC LIMIT 3)")
        .await;
    let r = env.haven(&["audit", "verify"]);
    assert_eq!(r.code, 65, "{}{}", r.stdout, r.stderr);
    assert!(r.stderr.contains("audit log truncated"), "{}", r.stderr);
    assert!(r.stderr.contains(&format!("{} entries in the database", before - 3)), "{}", r.stderr);
    assert!(r.stderr.contains(&format!("records {before}: the newest 3 were deleted")), "{}", r.stderr);

    // Haven goes on recording (nothing is lost), but never moves the anchor over the gap.
    for _ in 0..5 {
        let r = env.haven(&["chronology", OLIVER, "--as", DSL]);
        assert_eq!(r.code, 0, "{}", r.stderr);
    }
    let r = env.haven(&["audit", "verify"]);
    assert_eq!(r.code, 65, "later entries must not hide the deletion: {}{}", r.stdout, r.stderr);
    db.cleanup().await;
}

/// `chronology` and `export` without `--as`, or `--as` someone who is not staff, are refused
/// with a message naming the flag, and show nothing.
async fn showing_records_needs_as(backend: Backend) {
    let (db, env) = school_with_a_log(backend).await;
    let before = entries(&db).await.len();
    for args in [vec!["chronology", OLIVER, "--json"], vec!["export", OLIVER, "--format", "json", "--out", "bundle"]] {
        let r = env.haven(&args);
        assert_eq!(r.code, 2, "{args:?}: {}{}", r.stdout, r.stderr);
        assert!(r.stderr.contains("--as <STAFF_EMAIL>"), "{args:?} names the flag: {}", r.stderr);
        assert!(!r.stdout.contains("bruise"), "{args:?} shows nothing: {}", r.stdout);
    }
    assert!(!env.path("bundle").exists(), "no export was written");
    let r = env.haven(&["chronology", OLIVER, "--as", "someone@elsewhere.example"]);
    assert_eq!(r.code, 2, "{}{}", r.stdout, r.stderr);
    assert!(r.stderr.contains("--as someone@elsewhere.example: not an active member of staff"), "{}", r.stderr);
    assert!(r.stdout.is_empty(), "{}", r.stdout);
    assert_eq!(entries(&db).await.len(), before, "a refused view records no view");
    db.cleanup().await;
}

/// `outcome --by` someone who cannot see the incident (the teacher who reported the DSL-only
/// note; a HouseM of another house) is refused and nothing is recorded; the DSL, and the pupil's
/// own HouseM alerted to a "DSL Team + HouseM" incident, may record it.
async fn outcome_by_someone_who_cannot_see_it_is_refused(backend: Backend) {
    let (db, env) = school_with_a_log(backend).await;
    let incident = olivers_incident(&env)["incident"].as_i64().expect("an incident id");
    let id = incident.to_string();
    let r = env.haven(&["outcome", &id, "NFA", "--by", "teacher@school.example"]);
    assert_eq!(r.code, 2, "{}{}", r.stdout, r.stderr);
    assert!(r.stderr.contains(&format!("--by teacher@school.example: may not record the outcome of incident #{incident}")), "{}", r.stderr);
    assert!(r.stderr.contains("nothing was recorded"), "{}", r.stderr);
    let refused = entries(&db).await.into_iter().last().unwrap();
    assert_eq!(refused.action, "outcome_refused", "the refusal is audited: {refused:?}");
    assert!(olivers_incident(&env)["outcome"].is_null(), "no outcome recorded");
    let r = env.haven(&["outcomes", "--json"]);
    let open: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    assert!(open["outcomes"].as_array().unwrap().iter().any(|o| o["incident"] == incident), "still outstanding: {open}");

    let r = env.haven(&["outcome", &id, "Spoke to Olly; NFA", "--by", DSL]);
    assert_eq!(r.code, 0, "the DSL may: {}{}", r.stdout, r.stderr);

    // "DSL Team + HouseM": Oliver's HouseM is alerted and may record; another HouseM may not.
    let shared = env.path("shared.eml");
    let text = std::fs::read_to_string(mail("note-named.eml"))
        .unwrap()
        .replace("Category: DSL Team Access Only", "Category: DSL Team + HouseM")
        .replace("note-named-1@", "note-shared-1@");
    std::fs::write(&shared, text).unwrap();
    let r = env.haven(&["ingest", shared.to_str().unwrap()]);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    let r = env.haven(&["chronology", OLIVER, "--as", DSL, "--json"]);
    let v: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    let second = v["incidents"].as_array().unwrap().iter().filter_map(|i| i["incident"].as_i64()).max().unwrap();
    assert_ne!(second, incident);
    let r = env.haven(&["outcome", &second.to_string(), "NFA", "--by", "kestrel@school.example"]);
    assert_eq!(r.code, 2, "another house's HouseM may not: {}{}", r.stdout, r.stderr);
    let r = env.haven(&["outcome", &second.to_string(), "Spoke to Olly", "--by", "heron@school.example"]);
    assert_eq!(r.code, 0, "the alerted HouseM may: {}{}", r.stdout, r.stderr);

    let r = env.haven(&["audit", "verify"]);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    db.cleanup().await;
}

/// Writes that change who may see an incident or its outcome are audited with a digest of the
/// incident: widening a DSL-only incident's visibility, forging an outcome or deleting the
/// disclosure with SQL leaves the chain intact, but `audit verify` names the incident and the
/// entry it disagrees with.
async fn records_changed_behind_havens_back_are_named(backend: Backend) {
    let (db, env) = school_with_a_log(backend).await;
    let incident = olivers_incident(&env)["incident"].as_i64().expect("an incident id");
    let r = env.haven(&["audit", "verify"]);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    let verify_names_it = |what: &str, expect: &str| {
        let r = env.haven(&["audit", "verify"]);
        assert_eq!(r.code, 65, "{what}: {}{}", r.stdout, r.stderr);
        assert!(r.stderr.contains(expect), "{what}: {}", r.stderr);
    };
    let changed = format!("incident #{incident} disagrees with audit entry");

    let store = &db.store;
    let sql = |s: String| async move { haven::store::on_pool_for_tests(store, &s).await };
    sql(format!("UPDATE incidents SET visibility = 'dsl-team,teacher' WHERE id = {incident}")).await;
    verify_names_it("widened visibility", &changed);
    sql(format!("UPDATE incidents SET visibility = 'dsl-team' WHERE id = {incident}")).await;
    let r = env.haven(&["audit", "verify"]);
    assert_eq!(r.code, 0, "put back, it verifies again: {}{}", r.stdout, r.stderr);

    sql(format!("UPDATE actions SET outcome = 'NFA', outcome_by = 1, outcome_us = 1 WHERE incident_id = {incident}")).await;
    verify_names_it("forged outcome", &changed);

    for table in [
        "action_rungs WHERE action_id IN (SELECT id FROM actions WHERE incident_id = {i})",
        "actions WHERE incident_id = {i}",
        "outbox WHERE incident_id = {i}",
        "attachments WHERE incident_id = {i}",
        "incident_pupils WHERE incident_id = {i}",
        "incidents WHERE id = {i}",
    ] {
        sql(format!("DELETE FROM {}", table.replace("{i}", &incident.to_string()))).await;
    }
    verify_names_it("deleted disclosure", &format!("incident #{incident} is missing: audit entry"));
    db.cleanup().await;
}

/// A log of several pages (verification reads the next page while it checks one): intact, every
/// entry is counted; an entry edited on the last page is the one named, not a neighbour.
async fn a_log_of_several_pages_is_checked_to_its_end(backend: Backend) {
    let db = TestDb::new(backend).await;
    let store = &db.store;
    let at = chrono::Utc::now();
    let mut tx = store.begin().await.expect("a transaction");
    for i in 0..2_100 {
        tx.append_audit(at, "staff:1", "chronology_view", &format!("pupil:{i}"), "entries=1").await.expect("an entry");
    }
    tx.commit().await.expect("commit");
    let written = store.audit_tail(5_000).await.expect("the log");
    assert!(written.len() >= 2_100);
    let verdict = store.verify_audit().await.expect("verify");
    assert_eq!(verdict, haven::store::AuditVerdict::Intact { entries: written.len() as u64 });

    let edited = written[written.len() - 40].id;
    haven::store::on_pool_for_tests(store, &format!("UPDATE audit_log SET detail = 'entries=0' WHERE id = {edited}")).await;
    let verdict = store.verify_audit().await.expect("verify");
    assert_eq!(verdict, haven::store::AuditVerdict::Broken { id: edited });
    db.cleanup().await;
}

/// Console requests append their audit entries through one writer that commits whatever has
/// queued up together: two hundred views at once are each recorded, in a chain that holds, and
/// each request hears only once its entry is committed. A group that cannot be written is
/// refused to every request in it (the console then shows nothing), and the writer goes on.
async fn views_at_once_are_each_audited_and_a_failed_group_is_refused(backend: Backend) {
    let db = TestDb::new(backend).await;
    let store = &db.store;
    let before = store.audit_tail(10_000).await.expect("the log").len();
    let writer = haven::store::AuditWriter::start(store.clone());
    let views: Vec<_> = (0..200)
        .map(|i| {
            let writer = writer.clone();
            tokio::spawn(
                async move { writer.append(chrono::Utc::now(), "staff:1", "console_chronology_view", &format!("pupil:{i}"), "").await },
            )
        })
        .collect();
    for v in views {
        v.await.expect("the request").expect("its entry is committed");
    }
    let written = store.audit_tail(10_000).await.expect("the log");
    let mut seen: Vec<&str> = written.iter().filter(|e| e.action == "console_chronology_view").map(|e| e.subject.as_str()).collect();
    seen.sort_unstable();
    seen.dedup();
    assert_eq!((written.len() - before, seen.len()), (200, 200), "one entry per view, none lost or doubled");
    assert_eq!(store.verify_audit().await.expect("verify"), haven::store::AuditVerdict::Intact { entries: written.len() as u64 });

    haven::store::on_pool_for_tests(store, "ALTER TABLE audit_log RENAME TO audit_log_away").await;
    let refused = writer.append(chrono::Utc::now(), "staff:1", "console_chronology_view", "pupil:1", "").await;
    let e = refused.expect_err("a view whose entry cannot be written is refused");
    assert!(e.to_string().starts_with("cannot write the audit log:"), "{e}");
    haven::store::on_pool_for_tests(store, "ALTER TABLE audit_log_away RENAME TO audit_log").await;
    writer.append(chrono::Utc::now(), "staff:1", "console_chronology_view", "pupil:1", "").await.expect("the writer goes on");
    assert_eq!(store.audit_tail(10_000).await.expect("the log").len(), written.len() + 1);
    db.cleanup().await;
}

backend_tests!(
    records_changed_behind_havens_back_are_named,
    a_correct_log_is_intact_and_names_the_os_user,
    an_edited_entry_with_a_recomputed_chain_is_named,
    deleting_the_newest_entries_is_detected,
    showing_records_needs_as,
    outcome_by_someone_who_cannot_see_it_is_refused,
    a_log_of_several_pages_is_checked_to_its_end,
    views_at_once_are_each_audited_and_a_failed_group_is_refused,
);
