//! End to end through the real `haven` binary, on SQLite and on PostgreSQL: a directory
//! import, then messages ingested through the whole pipeline, then what a DSL and a
//! technician see (`status`, `chronology`, `audit verify`).

mod support;

use std::time::Duration;
use support::db::{Backend, TestDb};
use support::haven::{Daemon, HavenEnv, school_fixtures, wait_for};

fn mail(name: &str) -> String {
    school_fixtures().join("mail").join(name).display().to_string()
}

/// The incidents on a pupil's chronology, as the DSL's `--json` shows them.
fn incidents_of(env: &HavenEnv, upn: &str) -> Vec<serde_json::Value> {
    let r = env.haven(&["chronology", upn, "--json", "--as", "dsl@school.example"]);
    assert_eq!(r.code, 0, "chronology {upn}: {}", r.stderr);
    let chron: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    chron["incidents"].as_array().expect("incidents array").clone()
}

/// A parent's email forwarded by a teacher is filed on the right pupil (found through the
/// parent's contact record), dated when the parent wrote it; a second ingest files nothing.
async fn forward_is_filed_once_on_the_pupil(backend: Backend) {
    let db = TestDb::new(backend).await;
    let env = HavenEnv::new(&db.url, "");
    env.import_school();

    let r = env.haven(&["ingest", &mail("forward-contact.eml")]);
    assert_eq!(r.code, 0, "ingest: {}{}", r.stdout, r.stderr);
    let s = env.status();
    assert_eq!(s["messages"]["filed"], 1, "{s}");
    assert_eq!(s["incidents"], 1, "{s}");

    let entries = incidents_of(&env, "A100000000001");
    assert_eq!(entries.len(), 1, "{entries:?}");
    let e = &entries[0];
    assert_eq!(e["original_from"], "parent.smith@example.com", "{e}");
    assert!(e["occurred_at"].as_str().unwrap().starts_with("2026-11-09"), "occurred at the parent's date: {e}");
    assert!(e["body"].as_str().unwrap().contains("lunch money"), "{e}");
    assert_eq!(e["recorded_by"], "Terry Teach", "{e}");

    // The same file again, and the same message under another file name: nothing new.
    let r = env.haven(&["ingest", &mail("forward-contact.eml")]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let s = env.status();
    assert_eq!(s["incidents"], 1, "a second ingest must not file twice: {s}");
    db.cleanup().await;
}

/// A teacher answering a parent from their phone with the intake in copy: what the teacher
/// typed is the incident's note, and the parent's quoted words stay in its body.
async fn a_phone_reply_keeps_the_parents_quoted_words(backend: Backend) {
    let db = TestDb::new(backend).await;
    let env = HavenEnv::new(&db.url, "");
    env.import_school();

    let r = env.haven(&["ingest", &mail("phone-reply.eml")]);
    assert_eq!(r.code, 0, "ingest: {}{}", r.stdout, r.stderr);
    let entries = incidents_of(&env, "A100000000001");
    assert_eq!(entries.len(), 1, "filed on Jane: {entries:?}");
    let e = &entries[0];
    assert_eq!(e["note"], "Passing this on straight away, will speak to her first thing.", "{e}");
    assert!(e["body"].as_str().unwrap().contains("asking her to send a photo"), "{e}");
    db.cleanup().await;
}

/// Without a pupil Haven can name, the message waits for triage; from someone who is not
/// staff, it is quarantined. Nothing is filed and nothing is lost: each has a state.
async fn unknown_pupil_waits_and_stranger_is_quarantined(backend: Backend) {
    let db = TestDb::new(backend).await;
    let env = HavenEnv::new(&db.url, "");
    env.import_school();
    let stranger = env.path("stranger.eml");
    std::fs::write(
        &stranger,
        std::fs::read_to_string(mail("forward-contact.eml"))
            .unwrap()
            .replace("From: Terry Teach <teacher@school.example>", "From: Someone <someone@elsewhere.example>")
            .replace("fwd-contact-1@", "stranger-1@"),
    )
    .unwrap();
    let r = env.haven(&["ingest", &mail("unknown-pupil.eml"), stranger.to_str().unwrap()]);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    let s = env.status();
    assert_eq!(s["messages"]["awaiting_triage"], 1, "{s}");
    assert_eq!(s["messages"]["quarantined"], 1, "{s}");
    assert_eq!(s["incidents"], 0, "{s}");
    db.cleanup().await;
}

/// With `trusted_authserv_id` set, a message claiming to be from staff is filed only with a
/// passing DMARC result from the school's own server; no result, a failing one, or a pass
/// stamped by another server is quarantined.
async fn spoofed_staff_sender_is_quarantined(backend: Backend) {
    let db = TestDb::new(backend).await;
    let env = HavenEnv::new(&db.url, r#"trusted_authserv_id = "mx.school.example""#);
    env.import_school();
    let raw = std::fs::read_to_string(mail("spoofed.eml")).unwrap();
    let variants = [
        ("none", raw.clone()),
        (
            "untrusted",
            format!("Authentication-Results: mx.attacker.example; dmarc=pass header.from=school.example\n{raw}")
                .replace("spoof-1@", "spoof-2@"),
        ),
        (
            "failing",
            format!("Authentication-Results: mx.school.example; dmarc=fail header.from=school.example\n{raw}")
                .replace("spoof-1@", "spoof-3@"),
        ),
        (
            "passing",
            format!(
                "Authentication-Results: mx.school.example; dkim=pass header.d=school.example; dmarc=pass header.from=school.example\n{raw}"
            )
            .replace("spoof-1@", "spoof-4@"),
        ),
    ];
    for (name, text) in &variants {
        let p = env.path(&format!("{name}.eml"));
        std::fs::write(&p, text).unwrap();
        let r = env.haven(&["ingest", p.to_str().unwrap()]);
        assert_eq!(r.code, 0, "{name}: {}{}", r.stdout, r.stderr);
    }
    let s = env.status();
    assert_eq!(s["messages"]["quarantined"], 3, "{s}");
    assert_eq!(s["messages"]["filed"], 1, "only the passing one is filed: {s}");
    db.cleanup().await;
}

/// A DSL Team Access Only incident is in the DSL's view of the chronology and not in a
/// HouseM's or a teacher's; every view is audited, and the audit chain verifies until a row
/// is edited behind Haven's back, when `audit verify` names it.
async fn visibility_and_audit(backend: Backend) {
    let db = TestDb::new(backend).await;
    let env = HavenEnv::new(&db.url, "");
    env.import_school();
    let r = env.haven(&["ingest", &mail("note-named.eml")]);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    assert_eq!(env.status()["incidents"], 1);

    let count = |viewer: &str| {
        let r = env.haven(&["chronology", "A100000000002", "--as", viewer, "--json"]);
        assert_eq!(r.code, 0, "{viewer}: {}", r.stderr);
        let v: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
        v["incidents"].as_array().unwrap().len()
    };
    assert_eq!(count("dsl@school.example"), 1, "the DSL sees it");
    assert_eq!(count("ddsl@school.example"), 1, "the deputy DSL sees it");
    assert_eq!(count("heron@school.example"), 0, "the pupil's own HouseM does not");
    assert_eq!(count("teacher@school.example"), 0, "the recording teacher does not");

    let r = env.haven(&["audit", "verify"]);
    assert_eq!(r.code, 0, "intact chain: {}{}", r.stdout, r.stderr);
    haven::store::on_pool_for_tests(&db.store, "UPDATE audit_log SET detail = 'nothing happened' WHERE id = 2").await;
    let r = env.haven(&["audit", "verify"]);
    assert_ne!(r.code, 0, "a tampered chain must fail: {}", r.stdout);
    assert!(format!("{}{}", r.stdout, r.stderr).contains("entry 2"), "names the entry: {}{}", r.stdout, r.stderr);
    db.cleanup().await;
}

/// What the parent wrote is not in the database in plaintext, and a debug-level log of the
/// whole ingest carries no pupil name, address or subject.
async fn nothing_readable_at_rest_or_in_logs(backend: Backend) {
    let db = TestDb::new(backend).await;
    let env = HavenEnv::new(&db.url, "");
    env.import_school();
    let r = env.haven_env(&["ingest", &mail("forward-contact.eml"), &mail("note-named.eml")], &[("RUST_LOG", "debug")]);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    assert_eq!(env.status()["incidents"], 2);
    let log = format!("{}{}", r.stdout, r.stderr);
    assert!(!log.is_empty(), "debug logging produced nothing to check");
    for secret in [
        "Jane",
        "Smith",
        "Oliver",
        "Olly",
        "parent.smith@example.com",
        "teacher@school.example",
        "Worried about this week",
        "lunch money",
        "bruise",
    ] {
        assert!(!log.contains(secret), "log output contains {secret:?}:\n{log}");
    }
    match backend {
        Backend::Sqlite => {
            let mut bytes = Vec::new();
            for entry in std::fs::read_dir(db.dir.path()).unwrap() {
                bytes.extend(std::fs::read(entry.unwrap().path()).unwrap());
            }
            for plain in ["lunch money", "bruise on his forearm", "Worried about this week"] {
                assert!(!bytes.windows(plain.len()).any(|w| w == plain.as_bytes()), "database files contain {plain:?}");
            }
        }
        Backend::Postgres => {
            let dump = std::process::Command::new("pg_dump").arg(&db.url).output().expect("pg_dump");
            assert!(dump.status.success(), "pg_dump: {}", String::from_utf8_lossy(&dump.stderr));
            let text = String::from_utf8_lossy(&dump.stdout);
            for plain in ["lunch money", "bruise on his forearm", "Worried about this week"] {
                assert!(!text.contains(plain), "database dump contains {plain:?}");
            }
        }
    }
    db.cleanup().await;
}

/// Each configured limit gives its own quarantine reason; the next message is still filed.
async fn limits_quarantine_with_a_reason(backend: Backend) {
    let db = TestDb::new(backend).await;
    let env = HavenEnv::new(&db.url, "max_attachments = 2\nmax_mime_depth = 4");
    env.import_school();
    let attachment = |n: usize| {
        format!("--b\r\nContent-Type: application/pdf\r\nContent-Disposition: attachment; filename=\"f{n}.pdf\"\r\n\r\n%PDF-{n}\r\n")
    };
    let many = format!(
        "From: Terry Teach <teacher@school.example>\r\nTo: safeguarding@school.example\r\nSubject: files [Jane Smith]\r\n\
         Date: Tue, 10 Nov 2026 16:05:00 +0000\r\nMessage-ID: <many@school.example>\r\nMIME-Version: 1.0\r\n\
         Content-Type: multipart/mixed; boundary=\"b\"\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\nThree files.\r\n{}{}{}--b--\r\n",
        attachment(1),
        attachment(2),
        attachment(3)
    );
    std::fs::write(env.path("many.eml"), many).unwrap();
    let mut deep = String::from(
        "From: Terry Teach <teacher@school.example>\r\nTo: safeguarding@school.example\r\nSubject: deep [Jane Smith]\r\n\
         Date: Tue, 10 Nov 2026 16:05:00 +0000\r\nMessage-ID: <deep@school.example>\r\nMIME-Version: 1.0\r\n",
    );
    for d in 0..8 {
        deep.push_str(&format!("Content-Type: multipart/mixed; boundary=\"d{d}\"\r\n\r\n--d{d}\r\n"));
    }
    deep.push_str("Content-Type: text/plain\r\n\r\nNested.\r\n");
    std::fs::write(env.path("deep.eml"), deep).unwrap();

    let r = env.haven(&["ingest", env.path("many.eml").to_str().unwrap(), env.path("deep.eml").to_str().unwrap(), &mail("note-named.eml")]);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    let s = env.status();
    assert_eq!(s["messages"]["quarantined"], 2, "{s}");
    assert_eq!(s["messages"]["filed"], 1, "the next message still flows: {s}");
    let store = haven::store::Store::open(&db.url).await.unwrap();
    let reasons: Vec<String> =
        store.messages(Some(haven::store::MessageState::Quarantined)).await.unwrap().into_iter().map(|m| m.reason).collect();
    assert!(reasons.iter().any(|r| r.contains("attachments") && r.contains('2')), "{reasons:?}");
    assert!(reasons.iter().any(|r| r.contains("nest") || r.contains("depth")), "{reasons:?}");
    store.close().await;
    db.cleanup().await;
}

/// `haven key rotate`: everything is still readable under the new key, the old key is kept
/// beside it, and the audit chain still verifies.
async fn key_rotation_keeps_records_readable(backend: Backend) {
    let db = TestDb::new(backend).await;
    let env = HavenEnv::new(&db.url, "");
    env.import_school();
    let r = env.haven(&["ingest", &mail("forward-contact.eml")]);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    let old_key = std::fs::read_to_string(env.path("secrets/haven.key")).unwrap();
    let r = env.haven(&["key", "rotate"]);
    assert_eq!(r.code, 0, "rotate: {}{}", r.stdout, r.stderr);
    let new_key = std::fs::read_to_string(env.path("secrets/haven.key")).unwrap();
    assert_eq!(old_key, new_key, "the key file is never overwritten");
    let added: Vec<_> = std::fs::read_dir(env.path("secrets/haven.keyring"))
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().ends_with(".key"))
        .collect();
    assert_eq!(added.len(), 1, "the new key is added to the keyring folder");
    let r = env.haven(&["chronology", "A100000000001", "--json", "--as", "dsl@school.example"]);
    assert_eq!(r.code, 0, "chronology after rotation: {}", r.stderr);
    assert!(r.stdout.contains("lunch money"), "{}", r.stdout);
    let r = env.haven(&["audit", "verify"]);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    db.cleanup().await;
}

/// A pupil's own key file that is there but does not open stops the filing and names the file
/// (nothing is sealed under the storage key instead, which would lose crypto-shredding for
/// them); `haven check` names it too. Restored from the backup, the message files as usual.
async fn a_pupils_key_that_does_not_open_files_nothing_until_restored(backend: Backend) {
    let db = TestDb::new(backend).await;
    let env = HavenEnv::new(&db.url, "");
    env.import_school();
    let pupils = env.path("secrets/haven.keyring/pupils");
    let backup: Vec<(std::path::PathBuf, Vec<u8>)> =
        std::fs::read_dir(&pupils).unwrap().map(|e| e.unwrap().path()).map(|p| (p.clone(), std::fs::read(&p).unwrap())).collect();
    assert!(!backup.is_empty(), "the import gives each pupil a key");
    for (path, _) in &backup {
        std::fs::write(path, "enc1:damaged\n").unwrap();
    }
    let r = env.haven(&["ingest", &mail("forward-contact.eml")]);
    assert_ne!(r.code, 0, "{}{}", r.stdout, r.stderr);
    assert!(r.stderr.contains(pupils.to_str().unwrap()) && r.stderr.contains("does not open"), "{}", r.stderr);
    let r = env.haven(&["check"]);
    assert!(r.stdout.contains(pupils.to_str().unwrap()) && r.stdout.contains("does not open"), "{}", r.stdout);
    for (path, bytes) in &backup {
        std::fs::write(path, bytes).unwrap();
    }
    let r = env.haven(&["ingest", &mail("forward-contact.eml")]);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    let s = env.status();
    assert_eq!((s["messages"]["filed"].as_i64(), s["incidents"].as_i64()), (Some(1), Some(1)), "nothing was half-filed before: {s}");
    assert_eq!(incidents_of(&env, "A100000000001").len(), 1);
    db.cleanup().await;
}

/// A bad row in any directory file names its file and line, and nothing at all is imported.
async fn bad_directory_row_imports_nothing(backend: Backend) {
    let db = TestDb::new(backend).await;
    let env = HavenEnv::new(&db.url, "");
    env.import_school();
    let f = school_fixtures();
    let pupils = std::fs::read_to_string(f.join("pupils.csv")).unwrap() + "A100000000009,New,Pupil,,2014-01-01,7,7K,Kestrel,no\n";
    std::fs::write(env.path("pupils.csv"), pupils).unwrap();
    let staff = std::fs::read_to_string(f.join("staff.csv")).unwrap() + "new@school.example,New,Person,wizard,,\n";
    std::fs::write(env.path("staff.csv"), staff).unwrap();
    let r = env.haven(&[
        "directory",
        "import",
        "--pupils",
        env.path("pupils.csv").to_str().unwrap(),
        "--staff",
        env.path("staff.csv").to_str().unwrap(),
        "--contacts",
        f.join("contacts.csv").to_str().unwrap(),
    ]);
    assert_eq!(r.code, 65, "{}{}", r.stdout, r.stderr);
    let line = std::fs::read_to_string(env.path("staff.csv")).unwrap().lines().count();
    assert!(r.stderr.contains(&format!("staff.csv:{line}: unknown role \"wizard\"")), "{}", r.stderr);
    assert!(r.stderr.contains("nothing was imported"), "{}", r.stderr);
    let r = env.haven(&["chronology", "A100000000009", "--as", "dsl@school.example"]);
    assert_ne!(r.code, 0, "the new pupil from the rejected import must not exist");
    db.cleanup().await;
}

/// Three pastoral notes about one pupil waiting in the intake when the daemon starts are filed
/// together, in one transaction; the third still counts the two before it, so the "three
/// pastoral issues in 30 days" rule asks the DSL for an outcome, exactly once.
async fn a_backlog_counts_its_own_history(backend: Backend) {
    let db = TestDb::new(backend).await;
    let env = HavenEnv::new(&db.url, "");
    env.import_school();
    for day in 1..=3 {
        let raw = format!(
            "From: Terry Teach <teacher@school.example>\r\nTo: safeguarding@school.example\r\n\
             Subject: Oliver this week\r\nDate: Mon, {day} Nov 2026 09:30:00 +0000\r\n\
             Message-ID: <pastoral-{day}@mail.school.example>\r\n\r\n\
             Pupil: Oliver Brown\r\nCategory: Pastoral issue\r\n\r\nOlly was upset at lunch again (day {day}).\r\n"
        );
        env.deliver(&format!("pastoral-{day}.eml"), raw.as_bytes());
    }
    let mut daemon = env.start();
    let s = wait_for("the three notes to be filed", Duration::from_secs(30), || {
        daemon.assert_running();
        let s = env.status();
        if s["messages"]["filed"] == 3 { Ok(s) } else { Err(s.to_string()) }
    });
    daemon.stop();
    assert_eq!(s["incidents"], 3, "{s}");
    assert_eq!(s["outcomes"]["open"], 1, "the third note, and only it, waits for the DSL's outcome: {s}");
    db.cleanup().await;
}

/// An email Haven wrote to its Maildir outbox.
struct Sent {
    to: String,
    reply_to: String,
    subject: String,
    body: String,
}

/// Every email in the installation's Maildir outbox, oldest first.
fn outbox(env: &HavenEnv) -> Vec<Sent> {
    let mut files: Vec<_> =
        std::fs::read_dir(env.path("var/outbox/new")).map(|d| d.filter_map(|e| e.ok()).map(|e| e.path()).collect()).unwrap_or_default();
    files.sort_by_key(|f| std::fs::metadata(f).and_then(|m| m.modified()).ok());
    files
        .iter()
        .map(|f| {
            let raw = std::fs::read(f).unwrap();
            let m = mail_parser::MessageParser::default().parse(&raw).expect("an email in the outbox");
            let first =
                |a: Option<&mail_parser::Address>| a.and_then(|a| a.first()).and_then(|a| a.address()).unwrap_or_default().to_string();
            Sent {
                to: first(m.to()),
                reply_to: first(m.reply_to()),
                subject: m.subject().unwrap_or_default().to_string(),
                body: m.body_text(0).map(|b| b.into_owned()).unwrap_or_default(),
            }
        })
        .collect()
}

/// A forward Haven cannot place waits for triage, and its forwarder gets one short question
/// (no pupil's name, none of the message's text) whose Reply-To carries a signed token. An
/// answer from someone who was not asked, or with a forged token, is quarantined; one naming
/// nobody Haven can find is kept and the question asked again; the forwarder's answer naming
/// the pupil files the original message on that pupil's chronology, once.
async fn a_message_awaiting_triage_is_filed_by_the_forwarders_answer(backend: Backend) {
    let db = TestDb::new(backend).await;
    let env = HavenEnv::new(&db.url, "");
    env.import_school();
    let mut daemon = env.start();
    env.deliver("unknown.eml", &std::fs::read(mail("unknown-pupil.eml")).unwrap());
    let questions = |n: usize| {
        wait_for(&format!("{n} triage question(s) in the outbox"), Duration::from_secs(30), || {
            let q: Vec<Sent> = outbox(&env).into_iter().filter(|e| e.subject.contains("which pupil")).collect();
            if q.len() == n { Ok(q) } else { Err(format!("{} questions", q.len())) }
        })
    };
    let q = questions(1).remove(0);
    assert_eq!(q.to, "teacher@school.example", "only the forwarder is asked");
    assert!(q.reply_to.starts_with("safeguarding+t-"), "answers carry a triage token: {}", q.reply_to);
    assert!(q.body.contains("Pupil: Firstname Surname"), "the question says how to answer: {}", q.body);
    assert!(!q.body.contains("followed home"), "the question repeats none of the message: {}", q.body);
    assert_eq!(env.status()["messages"]["awaiting_triage"], 1);

    let answer = |n: u32, from: &str, to: &str, text: &str| {
        let raw = format!(
            "From: {from}\r\nTo: Haven <{to}>\r\nSubject: Re: {subject}\r\nDate: Thu, 12 Nov 2026 08:0{n}:00 +0000\r\n\
             Message-ID: <answer-{n}@mail.school.example>\r\n\r\n{text}\r\n\r\nOn 11 Nov, Haven wrote:\r\n> {quoted}\r\n",
            subject = q.subject,
            quoted = q.body.lines().next().unwrap_or_default(),
        );
        env.deliver(&format!("answer-{n}.eml"), raw.as_bytes());
    };
    let wait_state = |state: &str, n: u64| {
        wait_for(&format!("{n} {state}"), Duration::from_secs(30), || {
            let s = env.status();
            if s["messages"][state] == n { Ok(s) } else { Err(s.to_string()) }
        })
    };
    answer(1, "Eli Safe <esafety@school.example>", &q.reply_to, "Pupil: Amira Khan");
    wait_state("quarantined", 1);
    let (local, domain) = q.reply_to.split_once('@').unwrap();
    let forged = format!("{}{}@{domain}", &local[..local.len() - 1], if local.ends_with('a') { 'b' } else { 'a' });
    answer(2, "Terry Teach <teacher@school.example>", &forged, "Pupil: Amira Khan");
    wait_state("quarantined", 2);
    answer(3, "Terry Teach <teacher@school.example>", &q.reply_to, "Sorry, I'm not sure who it was.");
    wait_state("ignored", 1);
    questions(2);
    assert_eq!(env.status()["messages"]["awaiting_triage"], 1, "still waiting");

    answer(4, "Terry Teach <teacher@school.example>", &q.reply_to, "Pupil: Amira Khan");
    let s = wait_state("awaiting_triage", 0);
    assert_eq!(s["messages"]["filed"], 2, "the answer and the message it settles: {s}");
    assert_eq!(s["incidents"], 1, "{s}");
    let entries = incidents_of(&env, "A100000000003");
    let e = &entries[0];
    assert!(e["body"].as_str().unwrap().contains("followed home"), "the original message is filed: {e}");
    assert!(e["occurred_at"].as_str().unwrap().starts_with("2026-11-11"), "when it was sent: {e}");
    assert_eq!(e["recorded_by"], "Terry Teach", "{e}");

    answer(5, "Terry Teach <teacher@school.example>", &q.reply_to, "Pupil: Amira Khan");
    let s = wait_state("ignored", 2);
    assert_eq!(s["incidents"], 1, "a second answer files nothing: {s}");
    daemon.assert_running();
    daemon.stop();
    db.cleanup().await;
}

/// A DSL edits the rules while the daemon runs: a broken edit sent with SIGHUP is refused, said
/// so in the log, and the last good set keeps filing; the fixed edit goes live on the next
/// SIGHUP, without a restart.
async fn sighup_reloads_the_rules_and_a_broken_edit_keeps_the_last_good_set(backend: Backend) {
    let db = TestDb::new(backend).await;
    let env = HavenEnv::new(&db.url, "");
    env.import_school();
    let mut daemon = env.start();
    let note = |n: u32| {
        format!(
            "From: Terry Teach <teacher@school.example>\r\nTo: safeguarding@school.example\r\n\
             Subject: Note about Oliver Brown\r\nDate: Wed, 11 Nov 2026 09:3{n}:00 +0000\r\n\
             Message-ID: <hedgehog-{n}@mail.school.example>\r\n\r\nPupil: Oliver Brown\r\n\
             \r\nOlly talked about the hedgehog game again.\r\n"
        )
        .into_bytes()
    };
    let to_housem = || outbox(&env).iter().filter(|e| e.to == "heron@school.example").count();
    let filed = |n: u64| {
        wait_for(&format!("{n} filed"), Duration::from_secs(30), || {
            let s = env.status();
            if s["messages"]["filed"] == n { Ok(()) } else { Err(s.to_string()) }
        })
    };
    let rule = env.path("rules/90-hedgehog.toml");
    let log_says = |daemon: &Daemon, what: &str| {
        wait_for(what, Duration::from_secs(30), || {
            let log = daemon.log();
            if log.contains(what) { Ok(()) } else { Err(log) }
        })
    };

    // Running, with its signal handlers in place, once it has filed something.
    env.deliver("1.eml", &note(1));
    filed(1);

    std::fs::write(&rule, "[[rule]]\nname = \"hedgehog\"\nwhen.text = \"(hedgehog\"\nalert = [\"housem-of-pupil\"]\n").unwrap();
    daemon.signal("HUP");
    log_says(&daemon, "rules reload refused");
    env.deliver("2.eml", &note(2));
    filed(2);
    daemon.assert_running();
    wait_for("both notes' alerts to SLT", Duration::from_secs(30), || {
        let slt = outbox(&env).iter().filter(|e| e.to == "head@school.example").count();
        if slt == 2 { Ok(()) } else { Err(format!("{slt} to SLT")) }
    });
    assert_eq!(to_housem(), 0, "the broken rule is not in force");

    std::fs::write(&rule, "[[rule]]\nname = \"hedgehog\"\nwhen.text = \"hedgehog\"\nalert = [\"housem-of-pupil\"]\n").unwrap();
    daemon.signal("HUP");
    log_says(&daemon, "rules reloaded");
    env.deliver("3.eml", &note(3));
    filed(3);
    wait_for("the new rule's alert", Duration::from_secs(30), || {
        if to_housem() == 1 { Ok(()) } else { Err(format!("{:?}", outbox(&env).iter().map(|e| &e.to).collect::<Vec<_>>())) }
    });
    daemon.stop();
    db.cleanup().await;
}

backend_tests!(
    sighup_reloads_the_rules_and_a_broken_edit_keeps_the_last_good_set,
    a_phone_reply_keeps_the_parents_quoted_words,
    a_message_awaiting_triage_is_filed_by_the_forwarders_answer,
    a_backlog_counts_its_own_history,
    forward_is_filed_once_on_the_pupil,
    unknown_pupil_waits_and_stranger_is_quarantined,
    spoofed_staff_sender_is_quarantined,
    visibility_and_audit,
    nothing_readable_at_rest_or_in_logs,
    limits_quarantine_with_a_reason,
    key_rotation_keeps_records_readable,
    a_pupils_key_that_does_not_open_files_nothing_until_restored,
    bad_directory_row_imports_nothing,
);
