//! Transfer of a leaver's child-protection file between two Haven schools, each with its own
//! database (SQLite, or PostgreSQL), on both engines. School A is the test school; school B,
//! "Brook Academy", has Oliver Brown (who has SEN) on roll, a SENCO, and its own intake domain.
//!
//! A's steps that depend on the date (leaving, preparing, sending, the scheduler's passes) run
//! in this process through the same library functions the binary calls, with an injected clock
//! moved by hand (as tests/schedule.rs does); everything else runs the real `haven` binary:
//! B's receive, B's daemon sending the receipt through its outbox, A's intake filing it. The
//! terms are the example school's (examples/eaton/terms.toml): the Spring 2027 half-term,
//! 15–19 February, is inside every deadline counted here.

mod support;

use chrono::{DateTime, NaiveDate, TimeZone, Utc};
use haven::clock::{Clock, ManualClock};
use haven::store::Store;
use serde_json::Value;
use sqlx::Row;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use support::brook::terms_around;
use support::db::{Backend, TestDb};
use support::haven::{HavenEnv, Run, school_fixtures, wait_for};

const OLIVER: &str = "A100000000002";
const JANE: &str = "A100000000001";
const DSL: &str = "dsl@school.example";
const DDSL: &str = "ddsl@school.example";
const HEAD: &str = "head@school.example";
const TEACHER: &str = "teacher@school.example";
const B_DSL: &str = "dsl@brook.example";
const DESTINATION: &str = "Brook Academy <dsl@brook.example>";

fn utc(y: i32, mo: u32, d: u32, h: u32, mi: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(y, mo, d, h, mi, 0).single().expect("a valid instant")
}

fn day(s: &str) -> NaiveDate {
    s.parse().expect("a date")
}

fn ok(r: Run, what: &str) -> String {
    assert_eq!(r.code, 0, "{what}: {}{}", r.stdout, r.stderr);
    r.stdout
}

/// Adds `terms_file = "terms.toml"` under [school], with `terms` written beside haven.toml.
fn with_terms(env: &HavenEnv, terms: &str) {
    std::fs::write(env.path("terms.toml"), terms).unwrap();
    let config = std::fs::read_to_string(&env.config).unwrap();
    let config = config.replacen("timezone = \"Europe/London\"\n", "timezone = \"Europe/London\"\nterms_file = \"terms.toml\"\n", 1);
    std::fs::write(&env.config, config).unwrap();
}

fn eaton_terms() -> String {
    std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/eaton/terms.toml")).unwrap()
}

/// School A: the test school, its terms, and one incident each about Oliver and Jane.
fn school_a(db_url: &str) -> HavenEnv {
    let env = HavenEnv::new(db_url, "");
    with_terms(&env, &eaton_terms());
    env.import_school();
    let mail = school_fixtures().join("mail");
    let (note, forward) = (mail.join("note-named.eml"), mail.join("forward-contact.eml"));
    ok(env.haven(&["ingest", note.to_str().unwrap(), forward.to_str().unwrap()]), "ingest at school A");
    env
}

/// School B: Brook Academy (tests/support/brook.rs), with the example school's terms.
fn school_b(db_url: &str) -> HavenEnv {
    let env = support::brook::brook_academy(db_url);
    with_terms(&env, &eaton_terms());
    env
}

/// School A as the binary opens it, with a clock this test moves.
fn app(env: &HavenEnv, store: &Store, clock: &ManualClock) -> haven::cli::App {
    let config = haven::cli::load_config(&env.config).expect("school A's config");
    haven::cli::App { config, store: store.clone(), clock: Arc::new(clock.clone()) }
}

/// One scheduler pass over A's database at `now`: the transfer reminders it queued.
async fn pass(app: &haven::cli::App, now: DateTime<Utc>) -> u32 {
    let keys = Arc::new(haven::store::LiveKeys::new(app.sealer().await.expect("A's keyring"), None));
    let settings = haven::schedule::ScheduleSettings::from_config(&app.config, keys);
    haven::schedule::tick(&app.store, &settings, now).await.expect("a scheduler pass").transfer_reminders
}

/// A transfer email waiting in the outbox.
#[derive(Debug)]
struct Queued {
    recipient: String,
    subject: String,
    body: String,
}

async fn outbox(store: &Store, like: &str) -> Vec<Queued> {
    const SQL: &str = "SELECT recipient, subject, body FROM outbox WHERE email_message_id LIKE $1 ORDER BY id";
    let rows: Vec<(String, String, String)> = match store {
        Store::Sqlite(p) => {
            sqlx::query(SQL).bind(like).fetch_all(p).await.unwrap().iter().map(|r| (r.get(0), r.get(1), r.get(2))).collect()
        }
        Store::Postgres(p) => {
            sqlx::query(SQL).bind(like).fetch_all(p).await.unwrap().iter().map(|r| (r.get(0), r.get(1), r.get(2))).collect()
        }
    };
    rows.into_iter().map(|(recipient, subject, body)| Queued { recipient, subject, body }).collect()
}

fn recipients(emails: &[&Queued]) -> Vec<String> {
    let mut r: Vec<String> = emails.iter().map(|e| e.recipient.clone()).collect();
    r.sort();
    r
}

fn transfers(env: &HavenEnv) -> Vec<Value> {
    let out = ok(env.haven(&["transfers", "--as", DSL, "--all", "--json"]), "transfers");
    let v: Value = serde_json::from_str(&out).expect("transfers --json");
    v["cases"].as_array().cloned().unwrap_or_default()
}

fn chronology(env: &HavenEnv, pupil: &str, viewer: &str) -> Vec<Value> {
    let out = ok(env.haven(&["chronology", pupil, "--as", viewer, "--json"]), "chronology");
    let v: Value = serde_json::from_str(&out).expect("chronology --json");
    v["incidents"].as_array().cloned().unwrap_or_default()
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &to.join(e.file_name()));
        } else {
            std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
        }
    }
}

/// The one email B's daemon wrote to A's receipt address.
fn receipt_from_b(b: &HavenEnv) -> PathBuf {
    let mut daemon = b.start();
    let found = wait_for("school B's daemon to send the receipt", std::time::Duration::from_secs(30), || {
        daemon.assert_running();
        std::fs::read_dir(b.path("var/outbox/new"))
            .into_iter()
            .flatten()
            .filter_map(Result::ok)
            .find(|e| std::fs::read_to_string(e.path()).is_ok_and(|t| t.contains("+x-")))
            .map(|e| e.path())
            .ok_or_else(|| "no receipt in var/outbox/new yet".to_string())
    });
    daemon.stop();
    found
}

/// The whole round: Oliver leaves A for B and Jane leaves for nobody knows where; A's DSL
/// prepares and sends Oliver's file; the ladder reminds, escalates over the half-term and
/// chases the missing receipt; B refuses a changed bundle and a teacher, receives the real
/// one, files it under the previous school with the original dates, alerts its DSL team and
/// SENCO and sends the receipt; A's intake files the receipt and the case closes.
async fn a_pupil_leaves_school_a_for_school_b(backend: Backend) {
    let (db_a, db_b) = (TestDb::new(backend).await, TestDb::new(backend).await);
    let (a, b) = (school_a(&db_a.url), school_b(&db_b.url));
    let oliver_then = chronology(&a, OLIVER, DSL);
    assert_eq!(oliver_then.len(), 1, "one incident about Oliver at school A");

    // A teacher may not record a leaver; nothing changes.
    let r = a.haven(&["leaver", OLIVER, "--left-on", "2027-02-05", "--destination", DESTINATION, "--by", TEACHER]);
    assert_eq!(r.code, 2, "{}{}", r.stdout, r.stderr);
    assert!(r.stderr.contains("only the DSL team (dsl, ddsl) may do this; nothing was changed"), "{}", r.stderr);
    assert!(transfers(&a).is_empty());

    // Friday 5 February 2027, 15:00: both leave. Five school days: Friday 12 February.
    let clock = ManualClock::new(utc(2027, 2, 5, 15, 0));
    let app = app(&a, &db_a.store, &clock);
    let leaver = |pupil, destination| haven::cli::transfer::Leaver { pupil, left_on: day("2027-02-05"), destination, by: DSL };
    let out = haven::cli::transfer::leaver(&app, leaver(OLIVER, Some(DESTINATION))).await.expect("Oliver leaves");
    assert_eq!(
        out,
        "transfer case #1 opened for A100000000002 (left on Fri 5 Feb 2027): send the child-protection file to \
         Brook Academy <dsl@brook.example> by Fri 12 Feb 2027 (5 school days)"
    );
    let out = haven::cli::transfer::leaver(&app, leaver(JANE, None)).await.expect("Jane leaves");
    assert!(out.starts_with("transfer case #2 opened for A100000000001 (left on Fri 5 Feb 2027)"), "{out}");
    assert!(out.contains("ACTION: the destination is unknown: follow the children-missing-education procedure"), "{out}");
    let cases = transfers(&a);
    assert_eq!(cases.len(), 2);
    let jane_case = cases.iter().find(|c| c["upn"] == JANE).unwrap();
    assert_eq!(jane_case["cme_action"], true);
    assert_eq!(jane_case["due_on"], "2027-02-12");
    assert!(cases.iter().any(|c| c["upn"] == OLIVER && c["destination"] == DESTINATION && c["cme_action"] == false));

    // The first pass tells the DSL team about both: initials and dates, never a name.
    assert_eq!(pass(&app, clock.now()).await, 4, "two cases, two members of the DSL team");
    let opened = outbox(&db_a.store, "haven.transfer.%").await;
    for e in &opened {
        for name in ["Oliver", "Brown", "Jane", "Smith", "Brook"] {
            assert!(!e.subject.contains(name) && !e.body.contains(name), "{name} in {e:?}");
        }
    }
    let jane_told: Vec<&Queued> = opened.iter().filter(|e| e.subject.starts_with("Haven transfer case #2")).collect();
    assert_eq!(recipients(&jane_told), [DDSL, DSL]);
    assert!(jane_told[0].body.contains("Pupil JS, Year 7 left the roll on Fri 5 Feb 2027"), "{}", jane_told[0].body);
    assert!(jane_told[0].body.contains("Follow the children-missing-education procedure"), "{}", jane_told[0].body);

    // Monday 8 February: A's DSL prepares Oliver's bundle.
    clock.set(utc(2027, 2, 8, 9, 0));
    let summary = a.path("summary.txt");
    std::fs::write(&summary, "Unexplained bruising in November; referred to CSC; mother engaged.\n").unwrap();
    let out_dir = a.path("oliver-transfer");
    let prepare = |by| haven::cli::transfer_send::Prepare { case: 1, summary: &summary, by, out: Some(out_dir.clone()) };
    let refused = haven::cli::transfer_send::prepare(&app, prepare(TEACHER)).await.expect_err("a teacher may not prepare");
    assert!(refused.to_string().contains("only the DSL team"), "{refused}");
    let out = haven::cli::transfer_send::prepare(&app, prepare(DSL)).await.expect("prepare");
    assert!(out.contains("transfer case #1: bundle written to"), "{out}");
    let fingerprint = out.split("signing key ").nth(1).and_then(|r| r.split(')').next()).expect("the key's fingerprint").to_string();
    assert_eq!(fingerprint.len(), 19, "{fingerprint}");
    for f in [
        "chronology.pdf",
        "chronology.json",
        "front-sheet.html",
        "summary.txt",
        "receipt.txt",
        "ITEMS.sha256",
        "manifest.json",
        "manifest.sig",
    ] {
        assert!(out_dir.join(f).is_file(), "{f} missing from the bundle");
    }
    let front = std::fs::read_to_string(out_dir.join("front-sheet.html")).unwrap();
    assert!(front.contains("Unexplained bruising in November; referred to CSC; mother engaged."), "{front}");
    assert!(front.contains("Brook Academy &#60;dsl@brook.example&#62;"), "escaped: {front}");
    let check =
        std::process::Command::new("sha256sum").args(["--check", "--quiet", "ITEMS.sha256"]).current_dir(&out_dir).output().unwrap();
    assert!(check.status.success(), "sha256sum --check: {}", String::from_utf8_lossy(&check.stdout));
    let zip = out_dir.with_extension("zip");
    assert!(zip.is_file());

    // Tuesday 9 February: sent through the school's encrypted mail, and recorded.
    clock.set(utc(2027, 2, 9, 10, 0));
    let out = haven::cli::transfer_send::send(&app, 1, DSL, None).await.expect("send");
    assert_eq!(
        out,
        "transfer case #1: recorded as sent to Brook Academy <dsl@brook.example> on Tue 9 Feb 2027 10:00 by Dana Lead; \
         a receipt is due by Tue 23 Feb 2027 (the DSL team is reminded after that)"
    );
    // The records kept here are marked: transferred on the day, to whom.
    let kept = chronology(&a, OLIVER, DSL);
    let mark = kept.iter().find(|e| e["kind"] == "transfer").expect("the transfer mark on A's chronology");
    assert!(
        mark["body"]
            .as_str()
            .unwrap_or("")
            .starts_with("Transferred on Tue 9 Feb 2027 to Brook Academy <dsl@brook.example>: the child-protection file (transfer case #1"),
        "{mark}"
    );
    assert_eq!(mark["visibility"], "dsl-team");

    // Jane's file, never sent: reminded two school days before, escalated to the head on the
    // first school morning after the deadline, which the half-term puts on Monday 22 February.
    assert_eq!(pass(&app, utc(2027, 2, 10, 8, 0)).await, 2, "Jane's reminder; Oliver's was sent");
    assert_eq!(pass(&app, utc(2027, 2, 19, 12, 0)).await, 0, "half-term: nothing is due yet");
    assert_eq!(pass(&app, utc(2027, 2, 22, 8, 0)).await, 3);
    let all = outbox(&db_a.store, "haven.transfer.%").await;
    let overdue: Vec<&Queued> = all.iter().filter(|e| e.subject.starts_with("Overdue: Haven transfer case #2")).collect();
    assert_eq!(recipients(&overdue), [DDSL, DSL, HEAD]);
    assert!(overdue[0].body.contains("was due by Fri 12 Feb 2027 and has not been sent"), "{}", overdue[0].body);

    // Oliver's receipt: due by Tuesday 23 February; chased on the 24th.
    assert_eq!(pass(&app, utc(2027, 2, 23, 20, 0)).await, 0);
    assert_eq!(pass(&app, utc(2027, 2, 24, 8, 0)).await, 2);
    let chase: Vec<Queued> =
        outbox(&db_a.store, "haven.transfer.1.rung10.%").await.into_iter().filter(|e| e.subject.starts_with("Chase: ")).collect();
    assert_eq!(chase.len(), 2, "{chase:?}");
    assert!(chase[0].body.contains("was sent on Tue 9 Feb 2027; no receipt had come by Tue 23 Feb 2027"), "{}", chase[0].body);

    // At school B: a changed bundle is refused and files nothing; a teacher is refused.
    let tampered = b.path("tampered");
    copy_dir(&out_dir, &tampered);
    let json = std::fs::read_to_string(tampered.join("chronology.json")).unwrap().replacen("\"body\": \"", "\"body\": \"(edited) ", 1);
    std::fs::write(tampered.join("chronology.json"), json).unwrap();
    let r = b.haven(&["transfer", "receive", tampered.to_str().unwrap(), "--by", B_DSL]);
    assert_eq!(r.code, 65, "{}{}", r.stdout, r.stderr);
    assert!(
        r.stderr.contains("refused: chronology.json: its SHA-256 is not the one in the manifest: the file was changed; nothing was filed"),
        "{}",
        r.stderr
    );
    assert!(chronology(&b, OLIVER, B_DSL).is_empty(), "nothing filed from a changed bundle");
    let r = b.haven(&["transfer", "receive", zip.to_str().unwrap(), "--by", "teacher@brook.example"]);
    assert_eq!(r.code, 2, "{}{}", r.stdout, r.stderr);

    let r = b.haven(&["transfer", "receive", zip.to_str().unwrap(), "--by", B_DSL, "--key", "0000-0000-0000-0000"]);
    assert_eq!(r.code, 65, "{}{}", r.stdout, r.stderr);
    assert!(r.stderr.contains(&format!("signed with key {fingerprint}, not the sending school's key 0000-0000-0000-0000")), "{}", r.stderr);

    // The real one, from the .zip, under the key A's DSL gave: filed under the previous school
    // with its original date.
    let out = ok(b.haven(&["transfer", "receive", zip.to_str().unwrap(), "--by", B_DSL, "--key", &fingerprint]), "receive");
    assert!(out.contains("1 entries filed under \"Previous school: Test School\" with their original dates"), "{out}");
    assert!(out.contains("the DSL team and the SENCO alerted"), "{out}");
    assert!(out.contains(&format!("Signed with key {fingerprint}, the one given with --key")), "{out}");
    let filed = chronology(&b, OLIVER, B_DSL);
    assert_eq!(filed.len(), 2, "the file as received, and its one entry: {filed:?}");
    let entry = filed.iter().find(|e| e["kind"] != "transfer").unwrap();
    assert_eq!(entry["occurred_at"], oliver_then[0]["occurred_at"], "the original date");
    assert_eq!(entry["category"], oliver_then[0]["category"]);
    assert!(entry["note"].as_str().unwrap_or("").starts_with("Previous school: Test School\nRecorded there"), "{}", entry["note"]);
    assert_eq!(entry["body"], oliver_then[0]["body"]);
    let kept = filed.iter().find(|e| e["kind"] == "transfer").unwrap();
    assert_eq!(kept["body"], "Unexplained bruising in November; referred to CSC; mother engaged.");
    assert!(
        kept["note"].as_str().unwrap_or("").starts_with("Previous school: Test School\nChild-protection file received"),
        "{}",
        kept["note"]
    );
    let kept_files: Vec<&str> = kept["attachments"].as_array().unwrap().iter().filter_map(Value::as_str).collect();
    for f in ["chronology.pdf", "front-sheet.html", "ITEMS.sha256", "manifest.json", "manifest.sig"] {
        assert!(kept_files.contains(&f), "{f} not kept: {kept_files:?}");
    }
    assert!(chronology(&b, OLIVER, "teacher@brook.example").is_empty(), "the DSL team's only");
    let told = outbox(&db_b.store, "haven.transfer-in.%").await;
    assert_eq!(recipients(&told.iter().collect::<Vec<_>>()), ["ddsl@brook.example", "dsl@brook.example", "senco@brook.example"]);
    let again = ok(b.haven(&["transfer", "receive", zip.to_str().unwrap(), "--by", B_DSL]), "receive again");
    assert!(again.contains("was received before; nothing new was filed"), "{again}");

    ok(b.haven(&["audit", "verify"]), "school B's audit chain, refusals and receipt included");

    // B's daemon sends the receipt; A's intake files it, and A's case closes.
    let receipt = receipt_from_b(&b);
    let filed = ok(a.haven(&["ingest", receipt.to_str().unwrap()]), "A files the receipt");
    assert!(filed.starts_with("1 messages: ") && filed.contains(" 1 filed,"), "{filed}");
    let messages = ok(a.haven(&["messages", "--json"]), "messages");
    assert!(messages.contains("transfer receipt: case 1 closed (the receiving Haven checked the manifest prepared here)"), "{messages}");
    let closed = transfers(&a).into_iter().find(|c| c["case"] == 1).unwrap();
    assert_eq!(closed["state"], "closed", "{closed}");
    assert_eq!(closed["received_by"], "Dana Lead, Designated Safeguarding Lead");
    // To a receipt address: a forged token is quarantined; a real one without a "Received:"
    // line is kept as ignored, with the reason.
    let key = hex::decode(std::fs::read_to_string(a.path("secrets/reply.key")).unwrap().trim()).unwrap();
    for (name, token, text, state) in [
        ("forged.eml", "1-1-aaaaaaaaaaaaaaaaaaaaaaaaaa".to_string(), "Received: Someone, DSL", " 1 quarantined"),
        ("no-line.eml", haven::reply_token::sign_receipt(&key, 1), "Thanks, will look next week.", " 1 ignored"),
    ] {
        let eml = format!(
            "From: Someone <someone@elsewhere.example>\r\nTo: safeguarding+x-{token}@school.example\r\nSubject: Re: file\r\n\
             Date: Mon, 1 Mar 2027 09:00:00 +0000\r\nMessage-ID: <{name}@elsewhere.example>\r\n\r\n{text}\r\n"
        );
        std::fs::write(a.path(name), eml).unwrap();
        let out = ok(a.haven(&["ingest", a.path(name).to_str().unwrap()]), name);
        assert!(out.contains(state), "{name}: {out}");
    }
    let messages = ok(a.haven(&["messages", "--json"]), "messages");
    assert!(messages.contains("transfer receipt token is invalid or was not signed by this Haven"), "{messages}");
    assert!(messages.contains("but no \\\"Received: NAME, ROLE\\\" line: the case stays open"), "{messages}");

    // Closed: the escalation of the missing receipt never comes.
    assert_eq!(pass(&app, utc(2027, 3, 3, 8, 0)).await, 0);
    assert!(outbox(&db_a.store, "haven.transfer.1.rung11.%").await.is_empty());
    db_a.cleanup().await;
    db_b.cleanup().await;
}

/// A directory import that finds a pupil with records gone opens their case (destination
/// unknown: the CME action); one without records opens none. Without terms, `haven leaver`
/// is refused with the fix, and changes nothing.
async fn a_leaver_found_by_the_import_opens_a_case(backend: Backend) {
    let db = TestDb::new(backend).await;
    let env = HavenEnv::new(&db.url, "");
    let mail = school_fixtures().join("mail/note-named.eml");
    env.import_school();
    ok(env.haven(&["ingest", mail.to_str().unwrap()]), "ingest");

    let r = env.haven(&["leaver", OLIVER, "--left-on", "2027-02-05", "--by", DSL]);
    assert_eq!(r.code, 78, "{}{}", r.stdout, r.stderr);
    assert!(r.stderr.contains("school.terms_file is not set"), "{}", r.stderr);
    assert!(r.stderr.contains("add `terms_file = \"terms.toml\"` under [school]"), "{}", r.stderr);
    assert!(chronology(&env, OLIVER, DSL).len() == 1 && transfers(&env).is_empty());

    let today = Utc::now().date_naive();
    with_terms(&env, &terms_around(today));
    let f = school_fixtures();
    let pupils: String = std::fs::read_to_string(f.join("pupils.csv"))
        .unwrap()
        .lines()
        .filter(|l| !l.starts_with(OLIVER))
        .map(|l| format!("{l}\n"))
        .collect();
    std::fs::write(env.path("pupils.csv"), pupils).unwrap();
    let out = ok(
        env.haven(&[
            "directory",
            "import",
            "--pupils",
            env.path("pupils.csv").to_str().unwrap(),
            "--staff",
            f.join("staff.csv").to_str().unwrap(),
            "--contacts",
            f.join("contacts.csv").to_str().unwrap(),
        ]),
        "directory import",
    );
    assert!(out.contains("transfer case #1 opened for A100000000002"), "{out}");
    assert!(out.contains("ACTION: the destination is unknown: follow the children-missing-education procedure"), "{out}");
    let cases = transfers(&env);
    assert_eq!(cases.len(), 1, "{cases:?}");
    assert_eq!(cases[0]["cme_action"], true);
    let text = ok(env.haven(&["transfers", "--as", DSL]), "transfers");
    assert!(text.contains("#1 A100000000002 Oliver Brown left") && text.contains("destination unknown"), "{text}");
    let r = env.haven(&["transfers", "--as", TEACHER]);
    assert_eq!(r.code, 2, "{}{}", r.stdout, r.stderr);
    // A destination learnt later: recorded on the case, and the CME action is done.
    ok(env.haven(&["leaver", OLIVER, "--left-on", &today.to_string(), "--destination", DESTINATION, "--by", DSL]), "destination");
    let cases = transfers(&env);
    assert_eq!((cases[0]["destination"].as_str(), cases[0]["cme_action"].as_bool()), (Some(DESTINATION), Some(false)));
    db.cleanup().await;
}

/// The first email `env`'s real daemon writes to its outbox whose text contains `needle`.
fn sent_by_daemon(env: &HavenEnv, needle: &str) -> PathBuf {
    let mut daemon = env.start();
    let found = wait_for("the daemon to send the email", std::time::Duration::from_secs(30), || {
        daemon.assert_running();
        std::fs::read_dir(env.path("var/outbox/new"))
            .into_iter()
            .flatten()
            .filter_map(Result::ok)
            .find(|e| std::fs::read_to_string(e.path()).is_ok_and(|t| t.contains(needle)))
            .map(|e| e.path())
            .ok_or_else(|| format!("no email with {needle:?} in var/outbox/new yet"))
    });
    daemon.stop();
    found
}

/// Haven to Haven: B's key pinned at A; A's DSL sends the prepared bundle encrypted to it
/// through B's intake (A's real daemon sends it); B's intake keeps it and tells its DSL team
/// without filing it; B's DSL receives it from the message; B's receipt closes A's case.
async fn a_haven_school_sends_encrypted_through_the_intake(backend: Backend) {
    let (db_a, db_b) = (TestDb::new(backend).await, TestDb::new(backend).await);
    let (a, b) = (school_a(&db_a.url), school_b(&db_b.url));
    let key = ok(b.haven(&["transfer", "key"]), "transfer key");
    let pinned = key.split_once("\n\n").map(|(_, p)| p.to_string()).unwrap_or_default();
    assert!(pinned.starts_with("[[school]]\nname = \"Brook Academy\"\nintake = \"safeguarding@brook.example\"\nkey = \"x25519:"), "{key}");
    std::fs::write(a.path("transfer-schools.toml"), format!("{pinned}\n")).unwrap();
    let config = std::fs::read_to_string(&a.config).unwrap() + "\n[transfer]\nschools_file = \"transfer-schools.toml\"\n";
    std::fs::write(&a.config, config).unwrap();

    // The daemons here run on the real clock, so this test does too, with terms around today.
    let now = Utc::now();
    for env in [&a, &b] {
        std::fs::write(env.path("terms.toml"), terms_around(now.date_naive())).unwrap();
    }
    let clock = ManualClock::new(now);
    let app = app(&a, &db_a.store, &clock);
    let leaver = haven::cli::transfer::Leaver { pupil: OLIVER, left_on: now.date_naive(), destination: Some(DESTINATION), by: DSL };
    haven::cli::transfer::leaver(&app, leaver).await.expect("Oliver leaves");
    let summary = a.path("summary.txt");
    std::fs::write(&summary, "Unexplained bruising in November.\n").unwrap();
    let out_dir = a.path("oliver-transfer");
    let prepare = haven::cli::transfer_send::Prepare { case: 1, summary: &summary, by: DSL, out: Some(out_dir.clone()) };
    haven::cli::transfer_send::prepare(&app, prepare).await.expect("prepare");
    let zip = out_dir.with_extension("zip");
    // Only the bundle prepared for the case goes.
    std::fs::write(a.path("other.zip"), b"not a bundle").unwrap();
    let refused = haven::cli::transfer_send::send(&app, 1, DSL, Some(&a.path("other.zip"))).await.expect_err("another file");
    assert!(refused.to_string().contains("is neither a folder nor a zip archive"), "{refused}");
    let out = haven::cli::transfer_send::send(&app, 1, DSL, Some(&zip)).await.expect("send to Haven");
    assert!(out.contains("(encrypted to its pinned key, queued to safeguarding@brook.example: the daemon sends it)"), "{out}");

    // A's daemon sends it; B's intake keeps it, unfiled, and tells its DSL team.
    let email = sent_by_daemon(&a, "BEGIN HAVEN TRANSFER");
    let raw = std::fs::read_to_string(&email).unwrap();
    assert!(!raw.contains("Oliver") && !raw.contains("bruising"), "nothing readable on the way");
    let out = ok(b.haven(&["ingest", email.to_str().unwrap()]), "B's intake");
    assert!(out.contains(" 1 ignored"), "{out}");
    assert!(chronology(&b, OLIVER, B_DSL).is_empty(), "not filed by itself");
    let messages: Value = serde_json::from_str(&ok(b.haven(&["messages", "--json"]), "messages")).unwrap();
    let kept = messages.as_array().or_else(|| messages["messages"].as_array()).cloned().unwrap_or_default();
    let id = kept
        .iter()
        .find(|m| m["reason"].as_str().is_some_and(|r| r.contains("encrypted child-protection file from another Haven school")))
        .and_then(|m| m["id"].as_i64())
        .unwrap_or_else(|| panic!("the kept message in {messages}"));
    let told = outbox(&db_b.store, "haven.transfer-in.%").await;
    assert_eq!(recipients(&told.iter().collect::<Vec<_>>()), ["ddsl@brook.example", "dsl@brook.example"]);
    assert!(told[0].body.contains(&format!("haven transfer receive --message {id} --by YOU")), "{}", told[0].body);

    // B's DSL receives it from the message: checked, filed, alerted, receipt queued.
    let out = ok(b.haven(&["transfer", "receive", "--message", &id.to_string(), "--by", B_DSL]), "receive --message");
    assert!(out.contains("1 entries filed under \"Previous school: Test School\""), "{out}");
    assert_eq!(chronology(&b, OLIVER, B_DSL).len(), 2);
    let receipt = receipt_from_b(&b);
    ok(a.haven(&["ingest", receipt.to_str().unwrap()]), "A files the receipt");
    assert_eq!(transfers(&a)[0]["state"], "closed");
    db_a.cleanup().await;
    db_b.cleanup().await;
}

const AMIRA: &str = "A100000000003";
const TOM: &str = "A100000000004";

/// A teacher's note about `pupil` (full name) with a body map attached, filed by A's intake.
fn note_with_attachment(env: &HavenEnv, pupil: &str, n: u32) {
    let eml = format!(
        "From: Terry Teach <teacher@school.example>\r\nTo: safeguarding@school.example\r\nSubject: Note about {pupil}\r\n\
         Date: Wed, 11 Nov 2026 10:{n:02}:00 +0000\r\nMessage-ID: <kept-{n}@mail.school.example>\r\nMIME-Version: 1.0\r\n\
         Content-Type: multipart/mixed; boundary=\"b\"\r\n\r\n--b\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n\
         Pupil: {pupil}\r\nCategory: DSL Team Access Only\r\n\r\nA mark on the arm, drawn on the body map attached.\r\n\
         --b\r\nContent-Type: text/plain; name=\"body-map.txt\"\r\nContent-Disposition: attachment; filename=\"body-map.txt\"\r\n\r\n\
         Body map {n}: left forearm.\r\n--b--\r\n"
    );
    let path = env.path(&format!("note-{n}.eml"));
    std::fs::write(&path, eml).unwrap();
    ok(env.haven(&["ingest", path.to_str().unwrap()]), "a note with an attachment");
}

/// The receiving DSL's reply to case `case`'s receipt address, filed by A's intake.
fn receipt_for(env: &HavenEnv, case: i64) {
    let key = hex::decode(std::fs::read_to_string(env.path("secrets/reply.key")).unwrap().trim()).unwrap();
    let token = haven::reply_token::sign_receipt(&key, case);
    let eml = format!(
        "From: Bea Brook <dsl@brook.example>\r\nTo: safeguarding+x-{token}@school.example\r\nSubject: Re: file\r\n\
         Date: Mon, 1 Mar 2027 09:00:00 +0000\r\nMessage-ID: <receipt-{case}@brook.example>\r\n\r\nReceived: Bea Brook, DSL\r\n"
    );
    let path = env.path(&format!("receipt-{case}.eml"));
    std::fs::write(&path, eml).unwrap();
    let out = ok(env.haven(&["ingest", path.to_str().unwrap()]), "the receipt");
    assert!(out.contains(" 1 filed,"), "{out}");
}

/// Counts from A's database: one query, one number.
async fn count(store: &Store, sql: &str, bind: i64) -> i64 {
    match store {
        Store::Sqlite(p) => sqlx::query_scalar(sqlx::AssertSqlSafe(sql)).bind(bind).fetch_one(p).await.unwrap(),
        Store::Postgres(p) => sqlx::query_scalar(sqlx::AssertSqlSafe(sql)).bind(bind).fetch_one(p).await.unwrap(),
    }
}

/// `[transfer]` with these lines, the rest of haven.toml as it was.
fn transfer_settings(env: &HavenEnv, lines: &str) {
    let config = std::fs::read_to_string(&env.config).unwrap();
    let base = config.split("\n[transfer]\n").next().unwrap().to_string();
    std::fs::write(&env.config, format!("{base}\n[transfer]\n{lines}\n")).unwrap();
}

fn retention_row(env: &HavenEnv, upn: &str) -> Value {
    let out = ok(env.haven(&["retention", "due", "--within", "36500d", "--json"]), "retention due");
    let v: Value = serde_json::from_str(&out).unwrap();
    v["due"].as_array().unwrap().iter().find(|r| r["upn"] == upn).cloned().unwrap_or_else(|| panic!("{upn} in {v}"))
}

/// What school A keeps after each receipt, as `[transfer] retain_after` and `retain_for` said
/// when each file was sent: Oliver's chronology only (bodies, attachments and the original
/// messages gone from the database); Tom's the same, but a hold stands, so all of it stays;
/// Amira's in full for a year; Jane's nothing: due for disposal from the receipt (never
/// before), which a hold stops and the two-person disposal then carries out and certifies.
async fn what_the_school_keeps_after_the_receipt(backend: Backend) {
    let db = TestDb::new(backend).await;
    let a = school_a(&db.url);
    let now = Utc::now();
    std::fs::write(a.path("terms.toml"), terms_around(now.date_naive())).unwrap();
    std::fs::write(a.path("retention.toml"), haven::retention::DEFAULT_FILE.replace("cooling_off = \"14d\"", "cooling_off = \"0s\""))
        .unwrap();
    note_with_attachment(&a, "Oliver Brown", 1);
    note_with_attachment(&a, "Amira Khan", 2);
    note_with_attachment(&a, "Tom Price", 3);
    let before = chronology(&a, OLIVER, DSL);
    assert_eq!(before.len(), 2);
    assert!(before.iter().any(|e| e["attachments"].as_array().is_some_and(|x| !x.is_empty())), "{before:?}");
    let clock = ManualClock::new(now);
    let summary = a.path("summary.txt");
    std::fs::write(&summary, "Concerns about marks on the arm.\n").unwrap();
    // Each sent under the setting of the day, one case per pupil: 1 Oliver, 2 Jane, 3 Amira, 4 Tom.
    for (case, (upn, settings)) in [
        (OLIVER, "retain_after = \"chronology\""),
        (JANE, "retain_after = \"none\""),
        (AMIRA, "retain_after = \"full\"\nretain_for = \"1y\""),
        (TOM, "retain_after = \"chronology\""),
    ]
    .into_iter()
    .enumerate()
    {
        let case = case as i64 + 1;
        transfer_settings(&a, settings);
        let app = app(&a, &db.store, &clock);
        let leaver = haven::cli::transfer::Leaver { pupil: upn, left_on: now.date_naive(), destination: Some(DESTINATION), by: DSL };
        haven::cli::transfer::leaver(&app, leaver).await.expect("leaves");
        let out = Some(a.path(&format!("bundle-{case}")));
        haven::cli::transfer_send::prepare(&app, haven::cli::transfer_send::Prepare { case, summary: &summary, by: DSL, out })
            .await
            .expect("prepare");
        haven::cli::transfer_send::send(&app, case, DSL, None).await.expect("send");
    }
    let mark = chronology(&a, JANE, DSL).into_iter().find(|e| e["kind"] == "transfer").unwrap();
    assert!(mark["body"].as_str().unwrap().contains("Once the receipt comes back these records are due for disposal here"), "{mark}");

    // Before the receipt nothing is due: Jane's file cannot go yet.
    let jane_due = retention_row(&a, JANE);
    assert!(jane_due["due"].as_str().unwrap() > "2030-01-01", "dob+25 before the receipt: {jane_due}");
    let r = a.haven(&["dispose", "request", JANE, "--series", "child_protection_file", "--by", DSL, "--reason", "transferred"]);
    assert_eq!(r.code, 2, "{}{}", r.stdout, r.stderr);
    assert!(r.stderr.contains("are not due for disposal"), "{}", r.stderr);

    // Holds on Jane and Tom; then the four receipts.
    let hold = |upn: &str| {
        let out = ok(a.haven(&["hold", "set", "--pupil", upn, "--reason", "police", "--note", "Op Elm", "--by", DSL]), "hold");
        out.split(|c: char| !c.is_ascii_digit()).find(|w| !w.is_empty()).unwrap().to_string()
    };
    let jane_hold = hold(JANE);
    hold(TOM);
    let (blobs_before, attachments_before) = (
        count(&db.store, "SELECT COUNT(*) FROM blobs WHERE $1 = 1", 1).await,
        count(&db.store, "SELECT COUNT(*) FROM attachments WHERE $1 = 1", 1).await,
    );
    for case in 1..=4 {
        receipt_for(&a, case);
    }
    assert!(transfers(&a).iter().all(|c| c["state"] == "closed"));

    // Oliver: the chronology only. Same entries, dates and categories; no text, no attachment.
    let kept = chronology(&a, OLIVER, DSL);
    assert_eq!(kept.len(), before.len() + 1, "the transfer mark stays too");
    for (was, now) in before.iter().zip(kept.iter().filter(|e| e["kind"] != "transfer")) {
        assert_eq!(
            (&was["incident"], &was["occurred_at"], &was["category"], &was["kind"]),
            (&now["incident"], &now["occurred_at"], &now["category"], &now["kind"])
        );
        assert!(
            now["body"]
                .as_str()
                .unwrap()
                .starts_with("(The text and attachments of this entry were removed when transfer case #1's receipt came back"),
            "{now}"
        );
        assert_eq!(now["attachments"], serde_json::json!([]), "{now}");
        assert!(now["note"].is_null() && now["original_subject"].is_null() && now["original_from"].is_null(), "{now}");
    }
    let oliver_incidents = "SELECT COUNT(*) FROM attachments a JOIN incident_pupils ip ON ip.incident_id = a.incident_id \
         JOIN pupils p ON p.id = ip.pupil_id WHERE p.upn = 'A100000000002' AND $1 = 1";
    assert_eq!(count(&db.store, oliver_incidents, 1).await, 0, "Oliver's attachments are gone");
    let raw = "SELECT COUNT(*) FROM messages m JOIN incidents i ON i.message_id = m.id JOIN incident_pupils ip ON ip.incident_id = i.id \
         JOIN pupils p ON p.id = ip.pupil_id WHERE p.upn = 'A100000000002' AND i.record_kind <> 'transfer' AND m.sha256 IS NOT NULL AND $1 = 1";
    assert_eq!(count(&db.store, raw, 1).await, 0, "the original messages' sealed copies are gone");
    // One attachment (Oliver's) and his two original messages: three blobs fewer, nothing else.
    assert_eq!(count(&db.store, "SELECT COUNT(*) FROM attachments WHERE $1 = 1", 1).await, attachments_before - 1);
    assert_eq!(count(&db.store, "SELECT COUNT(*) FROM blobs WHERE $1 = 1", 1).await, blobs_before - 3 + 4, "four receipts filed");

    // Tom: a hold stood at the receipt, so everything stays.
    let tom = chronology(&a, TOM, DSL);
    assert!(
        tom.iter()
            .any(|e| e["body"].as_str().unwrap().contains("A mark on the arm") && e["attachments"] == serde_json::json!(["body-map.txt"])),
        "{tom:?}"
    );
    // Amira: everything, reviewed a year after the receipt.
    let amira = chronology(&a, AMIRA, DSL);
    assert!(amira.iter().any(|e| e["body"].as_str().unwrap().contains("A mark on the arm")), "{amira:?}");
    let amira_due = retention_row(&a, AMIRA);
    let year = now.date_naive().checked_add_months(chrono::Months::new(12)).unwrap().to_string();
    assert_eq!(amira_due["due"], year.as_str(), "{amira_due}");
    assert!(amira_due["basis"].as_str().unwrap().contains("retain_for = \"1y\""), "{amira_due}");

    // Jane: every series of hers due from the receipt; the hold stops the disposal until it is
    // released; then each series goes by the two-person disposal, certified.
    let out = ok(a.haven(&["retention", "due", "--json"]), "retention due");
    let due: Value = serde_json::from_str(&out).unwrap();
    let jane: Vec<&Value> = due["due"].as_array().unwrap().iter().filter(|r| r["upn"] == JANE).collect();
    assert!(!jane.is_empty(), "{due}");
    for row in &jane {
        assert_eq!(row["due"], now.date_naive().to_string().as_str(), "{row}");
        assert!(row["basis"].as_str().unwrap().contains("retain_after = \"none\": due for disposal from the receipt"), "{row}");
    }
    assert_eq!(chronology(&a, JANE, DSL).len(), 2, "nothing is deleted by the receipt itself");
    let request = |series: &str| a.haven(&["dispose", "request", JANE, "--series", series, "--by", DSL, "--reason", "transferred"]);
    let r = request(jane[0]["series"].as_str().unwrap());
    assert_eq!(r.code, 2, "{}{}", r.stdout, r.stderr);
    assert!(r.stderr.contains("nothing can be disposed of while a hold stands"), "{}", r.stderr);
    ok(a.haven(&["hold", "release", &jane_hold, "--note", "no further action", "--by", DSL]), "release");
    let mut last = String::new();
    for row in &jane {
        let out = ok(request(row["series"].as_str().unwrap()), "dispose request");
        let id = out.split(|c: char| !c.is_ascii_digit()).find(|w| !w.is_empty()).unwrap().to_string();
        ok(a.haven(&["dispose", "approve", &id, "--by", HEAD]), "approve");
        last = ok(a.haven(&["dispose", "run", &id, "--by", DSL]), "run");
        let certificate = ok(a.haven(&["dispose", "certificate", &id]), "certificate");
        assert!(!certificate.contains("Jane") && !certificate.contains(JANE), "{certificate}");
    }
    assert!(last.contains("directory entry deleted"), "{last}");
    assert_eq!(count(&db.store, "SELECT COUNT(*) FROM pupils WHERE upn = 'A100000000001' AND $1 = 1", 1).await, 0);

    // Every step audited, without content.
    let audit = db.store.audit_tail(400).await.unwrap();
    let retained: Vec<&str> = audit.iter().filter(|e| e.action == "transfer_retain").map(|e| e.detail.as_str()).collect();
    assert_eq!(retained.len(), 4, "{retained:?}");
    assert!(
        retained.iter().any(|d| d.starts_with("case=1 retain_after=chronology") && d.contains("bodies_removed=2 attachments=1 messages=2")),
        "{retained:?}"
    );
    assert!(
        retained.iter().any(|d| d.starts_with("case=4 retain_after=chronology") && d.contains("nothing removed while a hold stands")),
        "{retained:?}"
    );
    assert!(audit.iter().any(|e| e.action == "transfer_send" && e.detail.contains("retain_after=none retain_for=dob+25y")));
    db.cleanup().await;
}

/// The advance notice: refused without the destination DSL's address and for a teacher (both
/// audited); sent by A's real daemon through the SMTP server, naming nobody and saying whom to
/// contact; recorded on the case; naming the pupil only when the school says so; refused once
/// the file itself has gone.
async fn the_destination_is_told_ahead_without_a_name(backend: Backend) {
    let db = TestDb::new(backend).await;
    let a = school_a(&db.url);
    let today = Utc::now().date_naive().to_string();
    std::fs::write(a.path("terms.toml"), terms_around(Utc::now().date_naive())).unwrap();
    ok(a.haven(&["leaver", JANE, "--left-on", &today, "--by", DSL]), "Jane leaves, destination unknown");
    ok(a.haven(&["leaver", OLIVER, "--left-on", &today, "--destination", DESTINATION, "--by", DSL]), "Oliver leaves");
    let r = a.haven(&["transfer", "notify-ahead", "1", "--by", DSL]);
    assert_eq!(r.code, 2, "{}{}", r.stdout, r.stderr);
    assert!(r.stderr.contains("transfer case #1 has no destination DSL's address: record it with `haven leaver"), "{}", r.stderr);
    assert!(r.stderr.ends_with("; nothing was sent\n"), "{}", r.stderr);
    let r = a.haven(&["transfer", "notify-ahead", "2", "--by", TEACHER]);
    assert_eq!(r.code, 2, "{}{}", r.stdout, r.stderr);
    assert!(outbox(&db.store, "haven.transfer-notice.%").await.is_empty(), "nothing queued by a refusal");

    let out = ok(a.haven(&["transfer", "notify-ahead", "2", "--by", DSL]), "notify-ahead");
    assert_eq!(
        out.trim(),
        "transfer case #2: advance notice queued to dsl@brook.example, without the pupil's name or any detail: the daemon sends it"
    );
    let sent = std::fs::read_to_string(sent_by_daemon(&a, "Advance notice from Test School")).unwrap();
    assert!(sent.contains("dsl@brook.example"), "{sent}");
    let flat = sent.replace("=\r\n", "").replace("=\n", "").replace("\r\n", " ").replace('\n', " ");
    for said in
        ["holds a safeguarding (child-protection) file for a pupil who leaves us on", "Dana Lead", DSL, "no details about the pupil"]
    {
        assert!(flat.contains(said), "{said:?} not in {sent}");
    }
    for never in ["Oliver", "Olly", "Brown", OLIVER, "bruise", "2013"] {
        assert!(!sent.contains(never), "{never:?} in {sent}");
    }
    let case = transfers(&a).into_iter().find(|c| c["case"] == 2).unwrap();
    assert!(case["notified_at"].is_string(), "{case}");

    // A school that names the pupil, so the destination can match them: name and date of birth.
    transfer_settings(&a, "notice_names_pupil = true");
    let out = ok(a.haven(&["transfer", "notify-ahead", "2", "--by", DSL]), "notify-ahead again");
    assert!(out.contains("(again: last sent") && out.contains("naming the pupil"), "{out}");
    let queued = outbox(&db.store, "haven.transfer-notice.%").await;
    assert_eq!(queued.len(), 2);
    assert!(queued[1].body.contains("for Oliver Brown (date of birth 20 Nov 2013) who leaves us on"), "{}", queued[1].body);

    let audit: Vec<String> = db.store.audit_tail(100).await.unwrap().into_iter().map(|e| format!("{} {}", e.action, e.detail)).collect();
    assert!(audit.contains(&"transfer_notify_ahead_refused no destination DSL address".to_string()), "{audit:?}");
    assert!(audit.contains(&"transfer_notify_ahead case=2 names_pupil=false".to_string()), "{audit:?}");
    assert!(audit.contains(&"transfer_notify_ahead case=2 names_pupil=true".to_string()), "{audit:?}");

    // Once the file has gone, a notice ahead of it is refused.
    let summary = a.path("summary.txt");
    std::fs::write(&summary, "Concerns.\n").unwrap();
    ok(a.haven(&["transfer", "prepare", "2", "--summary", summary.to_str().unwrap(), "--by", DSL]), "prepare");
    ok(a.haven(&["transfer", "send", "2", "--by", DSL]), "send");
    let r = a.haven(&["transfer", "notify-ahead", "2", "--by", DSL]);
    assert_eq!(r.code, 2, "{}{}", r.stdout, r.stderr);
    assert!(r.stderr.contains("transfer case #2 is sent: the file itself has gone"), "{}", r.stderr);
    db.cleanup().await;
}

/// `haven transfer receive` killed (SIGKILL) at moments through its work, again and again:
/// each run files all of the bundle or nothing, so after the kills one more run leaves every
/// entry filed exactly once, one alert to each of the DSL team and the SENCO, one receipt.
async fn a_receive_killed_midway_files_everything_once(backend: Backend) {
    let (db_a, db_b) = (TestDb::new(backend).await, TestDb::new(backend).await);
    let (a, b) = (school_a(&db_a.url), school_b(&db_b.url));
    for n in 11..=14 {
        note_with_attachment(&a, "Oliver Brown", n);
    }
    let sent = chronology(&a, OLIVER, DSL).len();
    let now = Utc::now();
    std::fs::write(a.path("terms.toml"), terms_around(now.date_naive())).unwrap();
    let clock = ManualClock::new(now);
    let app = app(&a, &db_a.store, &clock);
    let leaver = haven::cli::transfer::Leaver { pupil: OLIVER, left_on: now.date_naive(), destination: Some(DESTINATION), by: DSL };
    haven::cli::transfer::leaver(&app, leaver).await.expect("Oliver leaves");
    let summary = a.path("summary.txt");
    std::fs::write(&summary, "Concerns.\n").unwrap();
    let out = Some(a.path("oliver-transfer"));
    haven::cli::transfer_send::prepare(&app, haven::cli::transfer_send::Prepare { case: 1, summary: &summary, by: DSL, out })
        .await
        .expect("prepare");
    let zip = a.path("oliver-transfer.zip");

    let mut killed = 0;
    for delay_ms in [5u64, 20, 40, 80, 120, 200, 300, 500] {
        let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_haven"))
            .args(["transfer", "receive", zip.to_str().unwrap(), "--by", B_DSL, "--config", b.config.to_str().unwrap()])
            .current_dir(b.path("."))
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("haven transfer receive");
        std::thread::sleep(std::time::Duration::from_millis(delay_ms));
        if child.try_wait().unwrap().is_none() {
            child.kill().unwrap();
            killed += 1;
        }
        child.wait().unwrap();
        let filed = chronology(&b, OLIVER, B_DSL).len();
        assert!(filed == 0 || filed == sent + 1, "all or nothing after a kill at {delay_ms} ms: {filed} entries");
    }
    assert!(killed > 0, "no run was killed midway: the receive finished within 5 ms");
    let out = ok(b.haven(&["transfer", "receive", zip.to_str().unwrap(), "--by", B_DSL]), "receive after the kills");
    assert!(out.contains("entries filed under") || out.contains("was received before; nothing new was filed"), "{out}");
    let filed = chronology(&b, OLIVER, B_DSL);
    assert_eq!(filed.len(), sent + 1, "every entry once, and the file as received: {filed:?}");
    let mut dates: Vec<String> = filed.iter().filter(|e| e["kind"] != "transfer").map(|e| e["occurred_at"].to_string()).collect();
    dates.sort();
    dates.dedup();
    assert_eq!(dates.len(), sent, "no entry twice");
    let told = outbox(&db_b.store, "haven.transfer-in.%").await;
    assert_eq!(recipients(&told.iter().collect::<Vec<_>>()), ["ddsl@brook.example", "dsl@brook.example", "senco@brook.example"]);
    assert_eq!(outbox(&db_b.store, "haven.transfer-receipt.%").await.len(), 1, "one receipt");
    db_a.cleanup().await;
    db_b.cleanup().await;
}

backend_tests!(
    a_pupil_leaves_school_a_for_school_b,
    a_leaver_found_by_the_import_opens_a_case,
    a_haven_school_sends_encrypted_through_the_intake,
    what_the_school_keeps_after_the_receipt,
    the_destination_is_told_ahead_without_a_name,
    a_receive_killed_midway_files_everything_once
);
