//! Disposal through the real `haven` binary, on SQLite and PostgreSQL: two different people
//! (the DSL team asks, the head or the DPO approves), a cooling-off period, holds that stop it
//! at every step, and, carried out, nothing of the pupil left in the database (the SQLite file
//! and a pg_dump are searched) nor in the mailbox (a real Dovecot), the audit chain still
//! verifying, and a certificate that names no one.
//!
//! The test school (tests/fixtures/school), with one more member of staff: Dee Pio, the DPO
//! who is also a deputy DSL, to show that one person cannot both ask and approve.

mod support;

use serde_json::Value;
use std::time::Duration;
use support::db::{Backend, TestDb};
use support::disk::DiskDb;
use support::dovecot::{Dovecot, PASSWORD};
use support::haven::{HavenEnv, Run, school_fixtures, wait_for};
use support::poppler::{pages, poppler};

const OLIVER: &str = "A100000000002";
const JANE: &str = "A100000000001";
const DSL: &str = "dsl@school.example";
const HEAD: &str = "head@school.example";
const DPO: &str = "dpo@school.example";
const TEACHER: &str = "teacher@school.example";
const SERIES: &str = "child_protection_file";

fn ok(r: Run, what: &str) -> String {
    assert_eq!(r.code, 0, "{what}: {}{}", r.stdout, r.stderr);
    r.stdout
}

/// Exit 2 with `message` on standard error.
fn refused(r: Run, message: &str) {
    assert_eq!(r.code, 2, "expected a refusal ({message}): {}{}", r.stdout, r.stderr);
    assert!(r.stderr.contains(message), "expected {message:?} in: {}", r.stderr);
}

/// The test school's directory, with Dee Pio (DPO and deputy DSL) added.
fn import(env: &HavenEnv) {
    let f = school_fixtures();
    let mut staff = std::fs::read_to_string(f.join("staff.csv")).unwrap();
    staff.push_str("dpo@school.example,Dee,Pio,dpo;ddsl,,\n");
    std::fs::write(env.path("staff.csv"), staff).unwrap();
    let r = env.haven(&[
        "directory",
        "import",
        "--pupils",
        f.join("pupils.csv").to_str().unwrap(),
        "--staff",
        env.path("staff.csv").to_str().unwrap(),
        "--contacts",
        f.join("contacts.csv").to_str().unwrap(),
    ]);
    assert_eq!(r.code, 0, "directory import: {}{}", r.stdout, r.stderr);
}

/// retention.toml: the shipped schedule with this cooling-off.
fn cooling_off(env: &HavenEnv, period: &str) {
    let text = haven::retention::DEFAULT_FILE.replace("cooling_off = \"14d\"", &format!("cooling_off = \"{period}\""));
    assert!(text.contains(period));
    std::fs::write(env.path("retention.toml"), text).unwrap();
}

fn id_in(out: &str) -> String {
    out.split_whitespace()
        .find_map(|w| w.strip_prefix('#'))
        .map(|w| w.trim_end_matches(':').to_string())
        .unwrap_or_else(|| panic!("a disposal number in {out:?}"))
}

fn destroy_decision(env: &HavenEnv, pupil: &str) {
    ok(
        env.haven(&[
            "retention",
            "review",
            pupil,
            "--series",
            SERIES,
            "--decision",
            "destroy",
            "--reason",
            "reviewed: past retention",
            "--by",
            DSL,
        ]),
        "destroy decision",
    );
}

fn request(env: &HavenEnv, pupil: &str, by: &str) -> Run {
    env.haven(&["dispose", "request", pupil, "--series", SERIES, "--by", by, "--reason", "reviewed, nothing open"])
}

async fn audit_actions(db: &TestDb) -> Vec<String> {
    db.store.audit_tail(400).await.unwrap().into_iter().map(|e| e.action).collect()
}

fn incidents(env: &HavenEnv, pupil: &str) -> Vec<i64> {
    let out = ok(env.haven(&["chronology", pupil, "--as", DSL, "--json"]), "chronology");
    let v: Value = serde_json::from_str(&out).expect("chronology --json");
    v["incidents"].as_array().map(|a| a.iter().filter_map(|i| i["incident"].as_i64()).collect()).unwrap_or_default()
}

async fn every_refusal_is_explained_audited_and_changes_nothing(backend: Backend) {
    let db = TestDb::new(backend).await;
    let env = HavenEnv::new(&db.url, "");
    import(&env);
    cooling_off(&env, "14d");
    let note = school_fixtures().join("mail/note-named.eml");
    ok(env.haven(&["ingest", note.to_str().unwrap()]), "ingest");
    let before = incidents(&env, OLIVER);
    assert_eq!(before.len(), 1);

    // Not due (his file falls due in 2038) and no destroy decision.
    refused(
        request(&env, OLIVER, DSL),
        "not due for disposal: the series falls due for review on 2038-11-20 and no destroy decision stands",
    );
    destroy_decision(&env, OLIVER);
    // Wrong role to ask; an unknown series; no reason; nothing of Jane's in the series.
    refused(request(&env, OLIVER, HEAD), "only the DSL team may ask for a disposal");
    refused(request(&env, OLIVER, "nobody@school.example"), "not an active member of staff");
    refused(
        env.haven(&["dispose", "request", OLIVER, "--series", "cp", "--by", DSL, "--reason", "x"]),
        "--series \"cp\" is not in the retention schedule (child_protection_file, pastoral)",
    );
    refused(env.haven(&["dispose", "request", OLIVER, "--series", SERIES, "--by", DSL, "--reason", " "]), "--reason is empty");
    refused(request(&env, JANE, DSL), &format!("pupil {JANE} has no records in series {SERIES}"));

    // Asked by the DPO (also a deputy DSL): the DPO cannot then approve it.
    let out = ok(request(&env, OLIVER, DPO), "request");
    assert!(out.contains("1 incident(s) about them only, 0 shared"), "{out}");
    let id = id_in(&out);
    refused(request(&env, OLIVER, DSL), &format!("disposal #{id} of pupil {OLIVER}'s {SERIES} records is already requested"));
    refused(env.haven(&["dispose", "approve", &id, "--by", DPO]), "a disposal needs two different people");
    refused(env.haven(&["dispose", "approve", &id, "--by", TEACHER]), "only the head or the DPO may approve a disposal");
    refused(env.haven(&["dispose", "approve", &id, "--by", DSL]), "only the head or the DPO may approve a disposal");
    refused(env.haven(&["dispose", "approve", "999", "--by", HEAD]), "there is no disposal #999");
    refused(env.haven(&["dispose", "run", &id, "--by", DSL]), &format!("disposal #{id} is not approved yet"));

    // Approved by the head: the cooling-off runs for 14 days.
    let out = ok(env.haven(&["dispose", "approve", &id, "--by", HEAD]), "approve");
    assert!(out.contains("after the 14 days cooling-off it can be carried out from"), "{out}");
    refused(env.haven(&["dispose", "approve", &id, "--by", HEAD]), &format!("disposal #{id} is approved, not waiting for approval"));
    refused(env.haven(&["dispose", "run", &id, "--by", DSL]), &format!("disposal #{id} is in its cooling-off period until"));
    refused(env.haven(&["dispose", "run", &id, "--by", TEACHER]), "only the DSL team, the head or the DPO may carry out a disposal");
    refused(env.haven(&["dispose", "run", "999", "--by", DSL]), "there is no disposal #999");
    let list = ok(env.haven(&["disposals"]), "disposals");
    assert!(list.contains(&format!("disposal #{id} approved: {OLIVER} {SERIES}, requested")), "{list}");
    assert!(list.contains("by Dee Pio (") && list.contains("; approved ") && list.contains("by Harriet Head ("), "{list}");
    assert!(list.contains("can be carried out from"), "{list}");
    refused(
        env.haven(&["dispose", "certificate", &id]),
        &format!("disposal #{id} is approved, not carried out: there is no certificate yet"),
    );

    // Cancelled during the cooling-off, by the DSL (anyone of the DSL team, the head or the DPO).
    refused(env.haven(&["dispose", "cancel", &id, "--by", TEACHER, "--reason", "x"]), "only the DSL team, the head or the DPO may cancel");
    refused(env.haven(&["dispose", "cancel", &id, "--by", DSL, "--reason", ""]), "--reason is empty");
    ok(env.haven(&["dispose", "cancel", &id, "--by", DSL, "--reason", "sibling's case reopened"]), "cancel");
    refused(env.haven(&["dispose", "cancel", &id, "--by", DSL, "--reason", "again"]), &format!("disposal #{id} is cancelled"));
    refused(env.haven(&["dispose", "run", &id, "--by", DSL]), &format!("disposal #{id} is cancelled: there is nothing to carry out"));
    let v: Value = serde_json::from_str(&ok(env.haven(&["disposals", "--json"]), "json")).unwrap();
    assert_eq!(v[0]["state"], "cancelled", "{v}");
    assert_eq!(v[0]["pupil"], OLIVER, "{v}");

    let check = ok(env.haven(&["retention", "check"]), "check");
    assert!(check.contains("disposal: 14 days cooling-off after approval; backups kept for 35 days"), "{check}");
    assert!(!check.contains("warning"), "{check}");

    // A hold set during the cooling-off stops the run; a hold stops a request too.
    cooling_off(&env, "0s");
    let check = ok(env.haven(&["retention", "check"]), "check");
    assert!(check.contains("warning: [disposal] cooling_off is under a day"), "{check}");
    let id = id_in(&ok(request(&env, OLIVER, DSL), "request again"));
    ok(env.haven(&["dispose", "approve", &id, "--by", DPO]), "approve by the DPO");
    let hold = ok(
        env.haven(&["hold", "set", "--incident", &before[0].to_string(), "--reason", "police", "--note", "Op Elm", "--by", DSL]),
        "hold",
    );
    let hold_id = hold.split_whitespace().nth(1).unwrap().trim_start_matches('#').to_string();
    refused(
        env.haven(&["dispose", "run", &id, "--by", DSL]),
        &format!("under 1 standing hold(s) (hold #{hold_id} on incident #{}, police)", before[0]),
    );
    ok(env.haven(&["dispose", "cancel", &id, "--by", HEAD, "--reason", "police investigation"]), "cancel");
    refused(request(&env, OLIVER, DSL), "nothing can be disposed of while a hold stands");

    // Nothing was deleted by any of it.
    assert_eq!(incidents(&env, OLIVER), before);
    let actions = audit_actions(&db).await;
    for a in ["disposal_request", "disposal_approve", "disposal_cancel", "disposal_refused"] {
        assert!(actions.contains(&a.to_string()), "{a} audited: {actions:?}");
    }
    let refusals = actions.iter().filter(|a| *a == "disposal_refused").count();
    assert!(refusals >= 9, "each refusal by a known member of staff is audited ({refusals}): {actions:?}");
    ok(env.haven(&["audit", "verify"]), "audit verify");
    db.cleanup().await;
}

/// A message to the intake: `pupils` on a Pupils: line, in the DSL-only category.
fn message(n: u32, pupils: &str, text: &str) -> Vec<u8> {
    format!(
        "From: Terry Teach <teacher@school.example>\r\nTo: safeguarding@school.example\r\nSubject: Note {n}\r\n\
         Date: Wed, 11 Nov 2026 09:3{n}:00 +0000\r\nMessage-ID: <disposal-{n}@mail.school.example>\r\nMIME-Version: 1.0\r\n\
         Content-Type: text/plain; charset=utf-8\r\n\r\nPupils: {pupils}\r\nCategory: DSL Team Access Only\r\n\r\n{text}\r\n"
    )
    .into_bytes()
}

fn contains(hay: &[u8], needle: &str) -> bool {
    hay.windows(needle.len()).any(|w| w == needle.as_bytes())
}

/// Everything the database holds at rest: the SQLite file (and its WAL, if any), or a pg_dump.
async fn at_rest(db: &TestDb) -> Vec<u8> {
    if let Some(path) = db.url.strip_prefix("sqlite://") {
        let mut all = std::fs::read(path).unwrap();
        if let Ok(wal) = std::fs::read(format!("{path}-wal")) {
            all.extend(wal);
        }
        return all;
    }
    let out = std::process::Command::new("pg_dump")
        .args(["--no-owner", "--dbname", &db.url])
        .output()
        .unwrap_or_else(|e| panic!("pg_dump: {e} (install postgresql-client)"));
    assert!(out.status.success(), "pg_dump: {}", String::from_utf8_lossy(&out.stderr));
    out.stdout
}

async fn a_disposed_pupil_leaves_nothing_in_the_database_or_the_mailbox(backend: Backend) {
    let db = TestDb::new(backend).await;
    let dovecot = Dovecot::start();
    let env = HavenEnv::new(&db.url, "");
    env.use_imap(dovecot.port, PASSWORD, "");
    import(&env);
    cooling_off(&env, "0s");
    let olivers = message(1, "Oliver Brown", "Olly said his uncle shouts at him every weekend.");
    dovecot.append(&olivers).await;
    dovecot.append(&message(2, "Oliver Brown, Jane Smith", "Both were seen arguing by the gate.")).await;
    dovecot.append(&message(3, "Jane Smith", "Jane was upset at lunch.")).await;
    let daemon = env.start();
    wait_for("the three messages filed", Duration::from_secs(60), || {
        let n = incidents(&env, JANE).len() + incidents(&env, OLIVER).len();
        if n == 4 { Ok(()) } else { Err(format!("{n} chronology entries")) }
    });
    let delimiter = dovecot.delimiter().await;
    let filed = format!("Haven{delimiter}Filed");
    let quarantine = format!("Haven{delimiter}Quarantine");
    // A second copy of Oliver's message, set aside in Quarantine (a re-delivery, say).
    dovecot.append_to(&quarantine, &olivers, None).await;
    assert_eq!(dovecot.count(&filed).await, 3);
    assert_eq!(dovecot.count(&quarantine).await, 1);
    let v: Value = serde_json::from_str(&ok(env.haven(&["chronology", OLIVER, "--as", DSL, "--json"]), "chronology")).unwrap();
    assert!(v.to_string().contains("uncle shouts"), "{v}");

    // What is there before, so that the search after can fail: his message's Message-ID is
    // stored in clear; his incident's text is sealed (never in clear).
    let before = at_rest(&db).await;
    assert!(contains(&before, "disposal-1@mail.school.example"), "the Message-ID is stored before disposal");
    assert!(!contains(&before, "uncle shouts"), "incident text is sealed at rest");

    destroy_decision(&env, OLIVER);
    let out = ok(request(&env, OLIVER, DSL), "request");
    assert!(out.contains("1 incident(s) about them only, 1 shared"), "{out}");
    let id = id_in(&out);
    ok(env.haven(&["dispose", "approve", &id, "--by", HEAD]), "approve");
    // With the mailbox out of reach nothing is deleted anywhere, and it can be run again.
    dovecot.stop();
    let r = env.haven(&["dispose", "run", &id, "--by", DSL]);
    assert_eq!(r.code, 1, "{}{}", r.stdout, r.stderr);
    assert!(r.stderr.contains("cannot delete the original messages from the mailbox"), "{}", r.stderr);
    assert!(r.stderr.contains("nothing was deleted from the database: run it again once the mailbox can be reached"), "{}", r.stderr);
    assert_eq!(incidents(&env, OLIVER).len(), 2, "his records are untouched");
    dovecot.restart();
    let out = ok(env.haven(&["dispose", "run", &id, "--by", DSL]), "run");
    assert!(
        out.contains(
            "1 incident(s) destroyed, 1 shared incident(s) unlinked, 1 message(s) and 2 mailbox cop(ies) deleted, directory entry deleted"
        ),
        "{out}"
    );
    daemon.stop();

    // The mailbox: his message is gone from Filed and Quarantine; the others stay.
    assert_eq!(dovecot.count(&filed).await, 2);
    assert_eq!(dovecot.count(&quarantine).await, 0);
    assert!(dovecot.search(&filed, "HEADER Message-ID disposal-1@").await.is_empty());
    assert_eq!(dovecot.search(&filed, "HEADER Message-ID disposal-2@").await.len(), 1, "the shared message stays");

    // The database: he is not in the directory; Jane keeps her incident and the shared one.
    let r = env.haven(&["chronology", OLIVER, "--as", DSL]);
    assert_ne!(r.code, 0, "{}", r.stdout);
    assert_eq!(incidents(&env, JANE).len(), 2);
    let v: Value = serde_json::from_str(&ok(env.haven(&["chronology", JANE, "--as", DSL, "--json"]), "jane")).unwrap();
    assert!(!v.to_string().contains("uncle shouts"), "{v}");
    let after = at_rest(&db).await;
    for gone in ["disposal-1@mail.school.example", "uncle shouts", OLIVER, "Oliver", "Olly", "brown.family@example.com", "Sam Brown"] {
        assert!(!contains(&after, gone), "{gone:?} is still in the database after disposal");
    }
    assert!(contains(&after, "disposal-2@mail.school.example"), "the shared message is kept");

    // The log and the certificate: counts, dates and people, nobody's records.
    let v: Value = serde_json::from_str(&ok(env.haven(&["disposals", "--json"]), "disposals")).unwrap();
    assert_eq!(v[0]["state"], "done", "{v}");
    assert_eq!(v[0]["pupil"], Value::Null, "{v}");
    assert_eq!(v[0]["destroyed"]["incidents"], 1, "{v}");
    assert_eq!(v[0]["destroyed"]["contacts"], 1, "{v}");
    assert!(v[0]["backups_expire_on"].is_string(), "{v}");
    let text = ok(env.haven(&["dispose", "certificate", &id]), "certificate");
    assert!(text.contains(&format!("Disposal D-{:0>4}: records in the retention series \"{SERIES}\"", id)), "{text}");
    assert!(text.contains("incidents about this pupil only: 1"), "{text}");
    assert!(text.contains("copies of them in the mailbox: 2"), "{text}");
    assert!(text.contains("Approved") && text.contains("Harriet Head"), "{text}");
    let html = ok(env.haven(&["dispose", "certificate", &id, "--format", "html"]), "certificate html");
    assert!(html.contains("<h1>Certificate of destruction</h1>"), "{html}");
    // The PDF (PDF/A, for the school's file) says the same; it is written only into a file.
    refused(env.haven(&["dispose", "certificate", &id, "--format", "pdf"]), "a PDF certificate needs --out FILE.pdf");
    let pdf = env.path("certificate.pdf");
    let written = ok(env.haven(&["dispose", "certificate", &id, "--format", "pdf", "--out", pdf.to_str().unwrap()]), "certificate pdf");
    assert!(written.contains("certificate written to") && written.contains("(1 page)"), "{written}");
    let pages = pages(&pdf);
    let pdf_text = pages.join("\n").split_whitespace().collect::<Vec<_>>().join(" ");
    assert!(pdf_text.contains("Certificate of destruction") && pdf_text.contains(&format!("D-{:0>4}", id)), "{pdf_text}");
    assert!(pdf_text.contains("incidents about this pupil only 1") && pdf_text.contains("copies of them in the mailbox 2"), "{pdf_text}");
    assert!(pdf_text.contains("Harriet Head") && pdf_text.contains("Page 1 of 1"), "{pdf_text}");
    let info = poppler("pdfinfo", &["-meta", pdf.to_str().unwrap()]);
    assert!(info.contains("pdfaid:part") && info.contains("Certificate of destruction"), "no PDF/A claim or title:\n{info}");
    refused(
        env.haven(&["dispose", "certificate", &id, "--format", "pdf", "--out", pdf.to_str().unwrap()]),
        "an existing file is never overwritten",
    );
    for doc in [&text, &html, &pdf_text] {
        for name in [OLIVER, "Oliver", "Brown", "uncle"] {
            assert!(!doc.contains(name), "{name} in the certificate: {doc}");
        }
    }
    refused(env.haven(&["dispose", "run", &id, "--by", DSL]), &format!("disposal #{id} is done"));

    // The audit chain still verifies, and records each step.
    let verify = ok(env.haven(&["audit", "verify"]), "audit verify after disposal");
    assert!(verify.contains("audit log intact"), "{verify}");
    let actions = audit_actions(&db).await;
    for a in ["disposal_request", "disposal_approve", "incident_disposed", "disposal_run"] {
        assert!(actions.contains(&a.to_string()), "{a}: {actions:?}");
    }
    // The disposal log is permanent.
    let deleted = match &db.store {
        haven::store::Store::Sqlite(p) => sqlx::query("DELETE FROM disposals").execute(p).await.is_err(),
        haven::store::Store::Postgres(p) => sqlx::query("DELETE FROM disposals").execute(p).await.is_err(),
    };
    assert!(deleted, "deleting from the disposal log is refused");
    db.cleanup().await;
}

async fn a_maildir_intake_loses_its_copy_too(backend: Backend) {
    let db = TestDb::new(backend).await;
    let env = HavenEnv::new(&db.url, "");
    import(&env);
    cooling_off(&env, "0s");
    env.deliver("1.eml", &message(1, "Oliver Brown", "Olly said his uncle shouts at him every weekend."));
    env.deliver("2.eml", &message(2, "Jane Smith", "Jane was upset at lunch."));
    let daemon = env.start();
    let cur = env.path("mail/intake/cur");
    let files = || std::fs::read_dir(&cur).map(|d| d.count()).unwrap_or(0);
    wait_for("both messages filed and moved to cur/", Duration::from_secs(60), || {
        if files() == 2 { Ok(()) } else { Err(format!("{} in cur/", files())) }
    });
    daemon.stop();
    destroy_decision(&env, OLIVER);
    let id = id_in(&ok(request(&env, OLIVER, DSL), "request"));
    ok(env.haven(&["dispose", "approve", &id, "--by", HEAD]), "approve");
    let out = ok(env.haven(&["dispose", "run", &id, "--by", DSL]), "run");
    assert!(out.contains("1 message(s) and 1 mailbox cop(ies) deleted"), "{out}");
    assert_eq!(files(), 1, "Jane's message stays in cur/");
    let left = std::fs::read_dir(&cur).unwrap().next().unwrap().unwrap().path();
    assert!(std::fs::read_to_string(left).unwrap().contains("Jane was upset"), "the file left is Jane's");
    ok(env.haven(&["audit", "verify"]), "audit verify");
    db.cleanup().await;
}

/// A copy of the database taken before the disposal, as a backup would hold it: a SQLite file
/// (`VACUUM INTO`) or a PostgreSQL database restored from `pg_dump`. Returns its URL.
async fn copy_of(db: &TestDb, backend: Backend, into: &TestDb) -> String {
    match (backend, &db.store) {
        (Backend::Sqlite, haven::store::Store::Sqlite(p)) => {
            let path = into.dir.path().join("copy.db");
            sqlx::query(sqlx::AssertSqlSafe(format!("VACUUM INTO '{}'", path.display()))).execute(p).await.expect("VACUUM INTO");
            format!("sqlite://{}", path.display())
        }
        _ => {
            let dump = std::process::Command::new("pg_dump")
                .args(["--clean", "--if-exists", "--no-owner", "--dbname", &db.url])
                .output()
                .expect("pg_dump");
            assert!(dump.status.success(), "pg_dump: {}", String::from_utf8_lossy(&dump.stderr));
            let file = into.dir.path().join("dump.sql");
            std::fs::write(&file, &dump.stdout).unwrap();
            let out = std::process::Command::new("psql")
                .args(["-q", "-v", "ON_ERROR_STOP=1", "--dbname", &into.url, "-f", file.to_str().unwrap()])
                .output()
                .expect("psql");
            assert!(out.status.success(), "psql: {}", String::from_utf8_lossy(&out.stderr));
            into.url.clone()
        }
    }
}

async fn an_older_copy_of_the_database_cannot_open_a_disposed_pupil(backend: Backend) {
    let db = TestDb::new(backend).await;
    let env = HavenEnv::new(&db.url, "");
    import(&env);
    cooling_off(&env, "0s");
    let pupil_keys = env.path("secrets/haven.keyring/pupils");
    assert_eq!(std::fs::read_dir(&pupil_keys).map(|d| d.count()).unwrap_or(0), 4, "each pupil has a key of their own");
    for (n, raw) in [
        (1, message(1, "Oliver Brown", "Olly said his uncle shouts at him every weekend.")),
        (2, message(2, "Jane Smith", "Jane was upset at lunch.")),
    ] {
        let file = env.path(&format!("m{n}.eml"));
        std::fs::write(&file, raw).unwrap();
        ok(env.haven(&["ingest", file.to_str().unwrap()]), "ingest");
    }
    // The backup, taken before the disposal.
    let spare = TestDb::new(backend).await;
    let copy_url = copy_of(&db, backend, &spare).await;

    destroy_decision(&env, OLIVER);
    let id = id_in(&ok(request(&env, OLIVER, DSL), "request"));
    ok(env.haven(&["dispose", "approve", &id, "--by", HEAD]), "approve");
    let out = ok(env.haven(&["dispose", "run", &id, "--by", DSL]), "run");
    assert!(out.contains("directory entry deleted, their own key destroyed"), "{out}");
    assert_eq!(std::fs::read_dir(&pupil_keys).unwrap().count(), 3, "his key file is gone");
    let text = ok(env.haven(&["dispose", "certificate", &id]), "certificate");
    assert!(text.contains("the pupil's own key (older copies of the database cannot open what it sealed): destroyed"), "{text}");

    // The copy, opened with today's keys: his directory row and his incident's text do not open;
    // Jane's do.
    let config = std::fs::read_to_string(&env.config).unwrap().replace(&db.url, &copy_url);
    let restored = env.path("restored.toml");
    std::fs::write(&restored, config).unwrap();
    let on_copy = |args: &[&str]| -> Run {
        std::process::Command::new(env!("CARGO_BIN_EXE_haven"))
            .args(args)
            .arg("--config")
            .arg(&restored)
            .current_dir(env.dir.path())
            .output()
            .expect("haven")
            .into()
    };
    let r = on_copy(&["key", "verify"]);
    assert_ne!(r.code, 0, "{}{}", r.stdout, r.stderr);
    let said = format!("{}{}", r.stdout, r.stderr);
    assert!(said.contains("which a disposal destroyed"), "{said}");
    assert!(said.contains("pupils") && said.contains("incidents"), "his directory row and incident text: {said}");
    let r = on_copy(&["chronology", OLIVER, "--as", DSL]);
    assert_ne!(r.code, 0, "{}{}", r.stdout, r.stderr);
    assert!(!r.stdout.contains("uncle shouts"), "{}", r.stdout);
    let jane = on_copy(&["chronology", JANE, "--as", DSL, "--json"]);
    assert_eq!(jane.code, 0, "{}{}", jane.stdout, jane.stderr);
    assert!(jane.stdout.contains("Jane was upset at lunch"), "{}", jane.stdout);

    // Key rotation keeps working, pupils' keys included.
    let rotated = ok(env.haven(&["key", "rotate"]), "rotate");
    assert!(rotated.contains("3 pupils' keys re-sealed"), "{rotated}");
    let jane = ok(env.haven(&["chronology", JANE, "--as", DSL, "--json"]), "after rotation");
    assert!(jane.contains("Jane was upset at lunch"), "{jane}");
    spare.cleanup().await;
    db.cleanup().await;
}

/// The disk holding the database fills up while a disposal is carried out: it fails saying so,
/// the pupil's records are all still there and readable (nothing half-deleted), the disposal is
/// still approved, and once space returns the same command carries it out, once.
async fn a_full_disk_during_a_disposal_deletes_nothing_until_space_returns(backend: Backend) {
    let db = DiskDb::new(backend, "64m").await;
    let env = HavenEnv::new(&db.url, "");
    import(&env);
    cooling_off(&env, "0s");
    env.deliver("1.eml", &message(1, "Oliver Brown", "Olly said his uncle shouts at him every weekend."));
    env.deliver("2.eml", &message(2, "Jane Smith", "Jane was upset at lunch."));
    let daemon = env.start();
    let cur = env.path("mail/intake/cur");
    let files = || std::fs::read_dir(&cur).map(|d| d.count()).unwrap_or(0);
    wait_for("both messages filed and moved to cur/", Duration::from_secs(60), || {
        if files() == 2 { Ok(()) } else { Err(format!("{} in cur/", files())) }
    });
    daemon.stop();
    destroy_decision(&env, OLIVER);
    let id = id_in(&ok(request(&env, OLIVER, DSL), "request"));
    ok(env.haven(&["dispose", "approve", &id, "--by", HEAD]), "approve");

    // Another connection keeps SQLite's shared-memory and WAL files in being, as a running
    // daemon would, so the run opens the database and fails only when it writes.
    let beside = haven::store::Store::open(&db.url).await.expect("open beside");
    db.disk.fill();
    let r = env.haven(&["dispose", "run", &id, "--by", DSL]);
    drop(beside);
    let failed = r.code != 0;
    if failed {
        assert_eq!(r.code, 1, "a full disk is a failure to write, not a usage error: {}{}", r.stdout, r.stderr);
        assert!(r.stderr.contains("full") || r.stderr.contains("space"), "the error says the disk is full: {}", r.stderr);
    }
    db.disk.free();
    let disposals: Value = serde_json::from_str(&ok(env.haven(&["disposals", "--json"]), "disposals")).unwrap();
    if failed {
        // Nothing of Oliver's went from the database: his chronology opens, whole.
        assert_eq!(disposals[0]["state"], "approved", "{disposals}");
        let his = ok(env.haven(&["chronology", OLIVER, "--as", DSL, "--json"]), "his chronology after the failed run");
        assert!(his.contains("uncle shouts"), "{his}");
        let out = ok(env.haven(&["dispose", "run", &id, "--by", DSL]), "run once space returns");
        assert!(out.contains(&format!("disposal #{id} carried out: 1 incident(s) destroyed")), "{out}");
    } else {
        // PostgreSQL may find room in pages it already has: then the one run did it all.
        assert_eq!(disposals[0]["state"], "done", "{disposals}");
    }
    let disposals: Value = serde_json::from_str(&ok(env.haven(&["disposals", "--json"]), "disposals")).unwrap();
    assert_eq!(disposals[0]["state"], "done", "{disposals}");
    assert_eq!(disposals[0]["destroyed"]["incidents"], 1, "{disposals}");
    // (SQLite writes the deletions out at COMMIT, after the mailbox step: a run that failed
    // there had deleted Oliver's mailbox copy already, and the run that completes finds none
    // left to count. The copy is gone either way; only the certificate's count can be low.)
    refused(env.haven(&["dispose", "run", &id, "--by", DSL]), &format!("disposal #{id} is done"));
    assert_eq!(files(), 1, "Jane's message stays in cur/");
    let jane = ok(env.haven(&["chronology", JANE, "--as", DSL, "--json"]), "Jane's chronology");
    assert!(jane.contains("Jane was upset at lunch"), "{jane}");
    let r = env.haven(&["chronology", OLIVER, "--as", DSL]);
    assert_ne!(r.code, 0, "Oliver is gone: {}", r.stdout);
    ok(env.haven(&["audit", "verify"]), "audit verify");
    db.cleanup().await;
}

backend_tests!(
    every_refusal_is_explained_audited_and_changes_nothing,
    a_disposed_pupil_leaves_nothing_in_the_database_or_the_mailbox,
    a_maildir_intake_loses_its_copy_too,
    an_older_copy_of_the_database_cannot_open_a_disposed_pupil,
    a_full_disk_during_a_disposal_deletes_nothing_until_space_returns,
);
