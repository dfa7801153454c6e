//! Subject access requests through the real `haven` binary, on SQLite and PostgreSQL, over the
//! example school (examples/eaton). A father (Piotr Nowak) asks for what the school holds about
//! him: every message he sent is collected, and a message another parent sent naming him; other
//! families' names are flagged; a redacted name is absent from the exported PDF (`pdftotext`)
//! and a withheld item's words are too; the disclosure log verifies, and fails once its stored
//! copy is tampered with; while the request is open, nothing of his children (or of the
//! incidents collected) can be disposed of. Then the deadline arithmetic, extensions within
//! what the law allows, the scheduler's reminders, and the refusals and bad input.

mod support;

use chrono::{Duration, NaiveDate, TimeZone, Utc};
use std::process::Command;
use std::sync::Arc;
use support::db::{Backend, TestDb};
use support::eaton::{DSL, eaton_env, eaton_school};
use support::haven::{HavenEnv, Run};

const PIOTR: &str = "p.nowak@example.com";
const ZOFIA: &str = "E100000000007";
const KAI: &str = "E100000000009";
const TEACHER: &str = "teacher@eaton.sch.example";
/// Only in the message Kai's mother sent: the item withheld.
const KELLY_SECRET: &str = "PRIVATE-KT-7731";

fn ok(r: Run, what: &str) -> String {
    assert_eq!(r.code, 0, "{what}: {}{}", r.stdout, r.stderr);
    r.stdout
}

/// Exit `code` with `message` on standard error.
fn fails(r: Run, code: i32, message: &str) {
    assert_eq!(r.code, code, "expected exit {code} ({message}): {}{}", r.stdout, r.stderr);
    assert!(r.stderr.contains(message), "expected {message:?} in: {}", r.stderr);
}

/// Piotr's second email, forwarded by Zofia's tutor: it names another family's child and parent.
const PIOTR_AGAIN: &str = "From: Priya Shah <p.shah@eaton.sch.example>\r\n\
To: safeguarding@eaton.sch.example\r\n\
Subject: Fwd: Following up about Zofia\r\n\
Date: Thu, 19 Nov 2026 09:10:00 +0000\r\n\
Message-ID: <sar-test-piotr-2@eaton.sch.example>\r\n\
MIME-Version: 1.0\r\n\
Content-Type: text/plain; charset=utf-8\r\n\
\r\n\
Pupil: Zofia Nowak\r\n\
\r\n\
---------- Forwarded message ---------\r\n\
From: Piotr Nowak <p.nowak@example.com>\r\n\
Date: Wed, 18 Nov 2026 at 20:15\r\n\
Subject: Following up about Zofia\r\n\
To: Priya Shah <p.shah@eaton.sch.example>\r\n\
\r\n\
Dear Mrs Shah,\r\n\
\r\n\
Thank you for separating them. Kai Turner's mum, Kelly Turner, messaged me to apologise.\r\n\
Zofia felt braver walking in this morning.\r\n\
\r\n\
Piotr\r\n";

/// Kai's mother writes about Piotr: collected because it names him, withheld in full.
const KELLY_ABOUT_PIOTR: &str = "From: Priya Shah <p.shah@eaton.sch.example>\r\n\
To: safeguarding@eaton.sch.example\r\n\
Subject: Fwd: About Kai\r\n\
Date: Thu, 19 Nov 2026 10:20:00 +0000\r\n\
Message-ID: <sar-test-kelly-1@eaton.sch.example>\r\n\
MIME-Version: 1.0\r\n\
Content-Type: text/plain; charset=utf-8\r\n\
\r\n\
Pupil: Kai Turner\r\n\
\r\n\
---------- Forwarded message ---------\r\n\
From: Kelly Turner <kturner@example.com>\r\n\
Date: Thu, 19 Nov 2026 at 07:30\r\n\
Subject: About Kai\r\n\
To: Priya Shah <p.shah@eaton.sch.example>\r\n\
\r\n\
Mrs Shah, I have spoken to Kai. Please tell me if Piotr Nowak raises it again: our families\r\n\
fell out last year. PRIVATE-KT-7731\r\n\
\r\n\
Kelly\r\n";

/// Piotr writes to the intake address himself: not staff, so the message is quarantined, never
/// filed; it is his personal data all the same.
const PIOTR_DIRECT: &str = "From: Piotr Nowak <p.nowak@example.com>\r\n\
To: safeguarding@eaton.sch.example\r\n\
Subject: Please call me about Zofia\r\n\
Date: Fri, 20 Nov 2026 18:00:00 +0000\r\n\
Message-ID: <sar-test-piotr-direct@example.com>\r\n\
MIME-Version: 1.0\r\n\
Content-Type: text/plain; charset=utf-8\r\n\
\r\n\
Please ring me after six. Reference PIOTR-DIRECT-42.\r\n";

fn ingest(env: &HavenEnv, name: &str, raw: &str) {
    let path = env.path(name);
    std::fs::write(&path, raw).unwrap();
    ok(env.haven(&["ingest", path.to_str().unwrap()]), name);
}

/// The request's number in `haven sar open`'s answer ("subject access request #3 (SAR-0003) …").
fn number(out: &str) -> String {
    out.split_whitespace()
        .find_map(|w| w.strip_prefix('#'))
        .map(|w| w.trim_end_matches(|c: char| !c.is_ascii_digit()).to_string())
        .unwrap_or_else(|| panic!("a request number in {out:?}"))
}

/// `haven sar items`' blocks: (item number, the whole block).
fn items(env: &HavenEnv, id: &str) -> Vec<(String, String)> {
    let out = ok(env.haven(&["sar", "items", id, "--by", DSL]), "items");
    out.split("\n\n")
        .filter_map(|b| {
            let b = b.trim_start();
            let n = b.strip_prefix("item ")?.split_whitespace().next()?.to_string();
            Some((n, b.to_string()))
        })
        .collect()
}

fn pdftotext(pdf: &std::path::Path) -> String {
    let out = Command::new("pdftotext").args(["-enc", "UTF-8", pdf.to_str().unwrap(), "-"]).output().unwrap_or_else(|e| {
        panic!("pdftotext could not run ({e}): install poppler-utils (`apt-get install poppler-utils`; tests/run.sh does it as root)")
    });
    assert!(out.status.success(), "pdftotext: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap().split_whitespace().collect::<Vec<_>>().join(" ")
}

fn dispose_request(env: &HavenEnv, pupil: &str) -> Run {
    env.haven(&["dispose", "request", pupil, "--series", "child_protection_file", "--by", DSL, "--reason", "reviewed"])
}

/// Changes one byte in the middle of every stored copy of the disclosure log, as someone with
/// the database but not the key would.
async fn tamper(db: &TestDb) {
    match &db.store {
        haven::store::Store::Sqlite(p) => {
            let rows: Vec<(i64, Vec<u8>)> = sqlx::query_as("SELECT id, copy FROM sar_disclosures").fetch_all(p).await.unwrap();
            for (id, mut copy) in rows {
                let i = copy.len() / 2;
                copy[i] ^= 0x55;
                sqlx::query("UPDATE sar_disclosures SET copy = $1 WHERE id = $2").bind(copy).bind(id).execute(p).await.unwrap();
            }
        }
        haven::store::Store::Postgres(p) => {
            let rows: Vec<(i64, Vec<u8>)> = sqlx::query_as("SELECT id, copy FROM sar_disclosures").fetch_all(p).await.unwrap();
            for (id, mut copy) in rows {
                let i = copy.len() / 2;
                copy[i] ^= 0x55;
                sqlx::query("UPDATE sar_disclosures SET copy = $1 WHERE id = $2").bind(copy).bind(id).execute(p).await.unwrap();
            }
        }
    }
}

async fn a_parents_request_about_himself(backend: Backend) {
    let db = TestDb::new(backend).await;
    let env = eaton_school(&db.url);
    ingest(&env, "piotr-2.eml", PIOTR_AGAIN);
    ingest(&env, "kelly-1.eml", KELLY_ABOUT_PIOTR);
    ingest(&env, "piotr-direct.eml", PIOTR_DIRECT);

    // Someone outside the DSL team is refused, and nothing is opened.
    let open = ["sar", "open", "--subject", PIOTR, "--received", "2026-11-20", "--requester", "Piotr Nowak, by email"];
    let mut as_teacher = open.to_vec();
    as_teacher.extend(["--by", TEACHER]);
    fails(env.haven(&as_teacher), 2, "only the DSL team or the data protection officer may handle subject access requests");
    let mut as_dsl = open.to_vec();
    as_dsl.extend(["--by", DSL]);
    let out = ok(env.haven(&as_dsl), "open");
    assert!(out.contains("about Piotr Nowak <p.nowak@example.com>"), "{out}");
    assert!(out.contains("received 20 Nov 2026, answer due 20 Dec 2026"), "{out}");
    assert!(out.contains("2 hold(s) placed"), "his two children: {out}");
    let id = number(&out);

    // While it is open, nothing of his children can be disposed of.
    fails(dispose_request(&env, ZOFIA), 2, "nothing can be disposed of while a hold stands");

    // Collect: both his messages, and Kai's mother's message naming him.
    let out = ok(env.haven(&["sar", "collect", &id, "--by", DSL]), "collect");
    assert!(out.contains("3 incident(s), 1 unfiled message(s)"), "{out}");
    assert!(out.contains("1 more hold(s) placed"), "the incident about Kai alone: {out}");
    fails(dispose_request(&env, KAI), 2, "nothing can be disposed of while a hold stands");
    let again = ok(env.haven(&["sar", "collect", &id, "--by", DSL]), "collect again");
    assert!(again.contains(", 0 of them new"), "{again}");

    let all = items(&env, &id);
    let first = all.iter().find(|(_, b)| b.contains("Zofia came home crying again on Friday")).expect("his first email is collected");
    let second = all.iter().find(|(_, b)| b.contains("Zofia felt braver walking in this morning")).expect("his second email is collected");
    let kelly = all.iter().find(|(_, b)| b.contains(KELLY_SECRET)).expect("the message naming him is collected");
    let direct = all.iter().find(|(_, b)| b.contains("PIOTR-DIRECT-42")).expect("his quarantined message is collected");
    assert!(direct.1.contains("(quarantined, never filed)") && direct.1.contains("dsl_only"), "{}", direct.1);
    for (_, b) in [first, second] {
        assert!(b.contains("third_party_pupil"), "another family's child is flagged: {b}");
        assert!(b.contains("From: Piotr Nowak <p.nowak@example.com>"), "{b}");
    }
    assert!(second.1.contains("third_party_adult"), "another family's parent is named: {}", second.1);
    assert!(kelly.1.contains("third_party_adult") && kelly.1.contains("source_identifying"), "{}", kelly.1);
    let kelly_incident: String = kelly.1.split("Incident #").nth(1).unwrap().chars().take_while(char::is_ascii_digit).collect();

    // Bad decisions are refused with the reason; nothing is exported while items are undecided.
    fails(
        env.haven(&["sar", "decide", &id, &first.0, "--withhold", "--exemption", "privacy", "--reason", "x", "--by", DSL]),
        2,
        "--exemption \"privacy\" is not an exemption code; use one of: S2P3-third-party",
    );
    fails(
        env.haven(&[
            "sar",
            "decide",
            &id,
            &first.0,
            "--redact",
            "Nobody Here",
            "--exemption",
            "S2P3-third-party",
            "--reason",
            "x",
            "--by",
            DSL,
        ]),
        2,
        "\"Nobody Here\" does not occur in item",
    );
    fails(env.haven(&["sar", "decide", &id, &first.0, "--withhold", "--reason", "x", "--by", DSL]), 2, "--exemption is needed");
    fails(env.haven(&["sar", "decide", &id, "999", "--disclose", "--reason", "x", "--by", DSL]), 2, "has no item 999");
    fails(
        env.haven(&["sar", "decide", &id, &kelly.0, "--withhold", "--exemption", "S3P4-serious-harm", "--reason", "x", "--by", DSL]),
        2,
        "say who was consulted (--consulted",
    );
    let consulted = [
        "sar",
        "decide",
        &id,
        &kelly.0,
        "--withhold",
        "--exemption",
        "S3P4-serious-harm",
        "--reason",
        "x",
        "--consulted",
        "CSC duty desk, 1 Dec: opposes disclosure",
        "--by",
        DSL,
    ];
    ok(env.haven(&consulted), "decided with a consultation");
    let shown = items(&env, &id).into_iter().find(|(n, _)| n == &kelly.0).unwrap().1;
    assert!(shown.contains("withhold (S3P4-serious-harm)") && shown.contains("consulted: CSC duty desk, 1 Dec"), "{shown}");
    let pdf = env.path("sar.pdf");
    fails(env.haven(&["sar", "export", &id, "--out", pdf.to_str().unwrap(), "--by", DSL]), 2, "item(s) undecided (1, 2, 3");
    assert!(!pdf.exists());

    for (n, block) in &all {
        let args: Vec<&str> = if n == &first.0 {
            vec!["--redact", "Kai Turner", "--exemption", "S2P3-third-party", "--reason", "another family's child"]
        } else if n == &second.0 {
            vec!["--redact", "Kai Turner", "Kelly Turner", "--exemption", "S2P3-third-party", "--reason", "another family"]
        } else if block.to_lowercase().contains(&format!("incident #{kelly_incident}")) {
            vec!["--withhold", "--exemption", "S2P3-third-party", "--reason", "another parent's message; no consent"]
        } else {
            vec!["--disclose", "--reason", "his own data"]
        };
        let mut cmd = vec!["sar", "decide", &id, n];
        cmd.extend(args);
        cmd.extend(["--by", DSL]);
        ok(env.haven(&cmd), "decide");
    }
    let out = ok(env.haven(&["sar", "export", &id, "--out", pdf.to_str().unwrap(), "--by", DSL]), "export");
    assert!(out.contains("disclosure #1 logged with a sealed copy"), "{out}");
    let text = pdftotext(&pdf);
    assert!(text.contains("Zofia came home crying again on Friday"), "{text}");
    assert!(text.contains("Zofia felt braver walking in this morning"), "{text}");
    assert!(text.contains("PIOTR-DIRECT-42"), "{text}");
    assert!(text.contains("[withheld:"), "{text}");
    assert!(!text.contains("Kai Turner") && !text.contains("Kelly Turner"), "redacted names are gone: {text}");
    assert!(!text.contains(KELLY_SECRET) && !text.contains("fell out last year"), "the withheld item's words are gone: {text}");
    assert!(text.contains("Items withheld in full"), "{text}");

    // The disclosure log verifies, against the file too; tampering with the stored copy fails it.
    let v = ok(env.haven(&["sar", "verify", &id, "--file", pdf.to_str().unwrap(), "--by", DSL]), "verify");
    assert!(v.contains("disclosure #1 of SAR-") && v.contains("intact") && v.contains("is exactly what disclosure #1 sent"), "{v}");
    fails(env.haven(&["sar", "verify", &id, "--by", TEACHER]), 2, "only the DSL team or the data protection officer");
    // A key rotation re-seals the request, its items and the stored copy: with the old key
    // retired they all still open, and the copy still verifies.
    let rotated = ok(env.haven(&["key", "rotate"]), "key rotate");
    let old = rotated.split("`haven key retire ").nth(1).and_then(|t| t.split('`').next()).expect("the old key's id").to_string();
    ok(env.haven(&["key", "retire", &old]), "retire the old key");
    assert!(items(&env, &id).iter().any(|(_, b)| b.contains("Zofia came home crying again on Friday")));
    ok(env.haven(&["sar", "verify", &id, "--by", DSL]), "verify after rotation");
    tamper(&db).await;
    fails(env.haven(&["sar", "verify", &id, "--by", DSL]), 65, "the stored copy does not open");

    // Closing releases the holds: a disposal is then refused for other reasons only.
    let out = ok(env.haven(&["sar", "close", &id, "--by", DSL]), "close");
    assert!(out.contains("3 hold(s) it placed released"), "{out}");
    let r = dispose_request(&env, ZOFIA);
    assert!(!r.stderr.contains("hold stands"), "{}", r.stderr);
    let list = ok(env.haven(&["sar", "list", "--by", DSL]), "list");
    assert!(list.contains("closed: Piotr Nowak <p.nowak@example.com>") && list.contains("requester: Piotr Nowak, by email"), "{list}");

    // Every step is in the audit chain, which still verifies; no name reached it.
    let entries = db.store.audit_tail(1000).await.unwrap();
    for a in ["sar_open", "sar_collect", "sar_decide", "sar_export", "sar_verify", "sar_close", "sar_refused"] {
        assert!(entries.iter().any(|e| e.action == a), "{a} audited");
    }
    assert!(entries.iter().filter(|e| e.action.starts_with("sar_")).all(|e| !e.detail.contains("Nowak") && !e.detail.contains('@')));
    ok(env.haven(&["audit", "verify"]), "audit verify");
    db.cleanup().await;
}

async fn deadlines_extensions_reminders_and_bad_input(backend: Backend) {
    let db = TestDb::new(backend).await;
    let env = eaton_env(&db.url);
    let open =
        |subject: &str, received: &str, by: &str| env.haven(&["sar", "open", "--subject", subject, "--received", received, "--by", by]);
    // One calendar month, day 1 the day of receipt; a month without the date ends on its last day.
    let out = ok(open("Zofia Nowak", "2026-01-31", DSL), "open 31 Jan");
    assert!(out.contains("answer due 28 Feb 2026"), "{out}");
    let january = number(&out);
    let out = ok(open(ZOFIA, "2026-09-03", DSL), "open 3 Sep");
    assert!(out.contains("answer due 3 Oct 2026"), "{out}");

    // Bad input, each with its message.
    fails(open("nobody@example.com", "2026-11-20", DSL), 2, "no contact and no member of staff has this address");
    fails(open("Nobody Here", "2026-11-20", DSL), 2, "no pupil matches \"Nobody Here\"");
    let tomorrow = (Utc::now() + Duration::days(2)).date_naive().to_string();
    fails(open(PIOTR, &tomorrow, DSL), 2, "that is in the future");
    fails(open(PIOTR, "2026-11-20", TEACHER), 2, "only the DSL team or the data protection officer");
    fails(open(PIOTR, "2026-11-20", "stranger@example.com"), 2, "not an active member of staff");
    let r = open(PIOTR, "2026-02-30", DSL);
    assert_eq!(r.code, 2, "an impossible date is a usage error: {}", r.stderr);

    // Extensions: only within the first month, at most two more months, with a reason.
    fails(
        env.haven(&["sar", "extend", &january, "--to", "2026-04-30", "--reason", "complex", "--by", DSL]),
        2,
        "within the first month, which ended on 28 Feb 2026",
    );
    let today = chrono::Utc::now().with_timezone(&chrono_tz::Europe::London).date_naive();
    let out = ok(open(PIOTR, &today.to_string(), DSL), "open today");
    let fresh = number(&out);
    let month = |n: u32| today.checked_add_months(chrono::Months::new(n)).unwrap().to_string();
    fails(
        env.haven(&["sar", "extend", &fresh, "--to", &month(4), "--reason", "complex", "--by", DSL]),
        2,
        "the law allows at most two further months",
    );
    fails(env.haven(&["sar", "extend", &fresh, "--to", &month(2), "--reason", " ", "--by", DSL]), 2, "--reason is empty");
    fails(env.haven(&["sar", "extend", &fresh, "--to", &month(2), "--reason", "x", "--by", TEACHER]), 2, "only the DSL team");
    let out = ok(env.haven(&["sar", "extend", &fresh, "--to", &month(3), "--reason", "complex: many years", "--by", DSL]), "extend");
    assert!(out.contains("extended"), "{out}");
    let list = ok(env.haven(&["sar", "list", "--by", DSL]), "list");
    assert!(list.contains("extended from"), "{list}");
    let json: serde_json::Value = serde_json::from_str(&ok(env.haven(&["sar", "list", "--by", DSL, "--json"]), "list --json")).unwrap();
    let january_row = json.as_array().unwrap().iter().find(|r| r["id"].as_i64() == january.parse().ok()).expect("the January request");
    assert_eq!(january_row["due_on"], "2026-02-28", "{january_row}");
    assert!(january_row["days_left"].as_i64().unwrap() < 0, "overdue: {january_row}");
    assert_eq!(january_row["subject"], "Zofia Nowak (E100000000007)", "{january_row}");
    fails(env.haven(&["sar", "close", "99", "--by", DSL]), 2, "there is no subject access request #99");

    // Reminders: a week before, on the day, overdue, each once, to the DSL team alone.
    let key = env.path("secrets/haven.key");
    let settings = haven::schedule::ScheduleSettings {
        digests: Vec::new(),
        tz: chrono_tz::Europe::London,
        mail_domain: "eaton.sch.example".into(),
        school_name: "Eaton".into(),
        keys: Arc::new(haven::store::LiveKeys::new(haven::seal::Sealer::from_key_file(&key).unwrap(), None)),
        directory: Default::default(),
        detail: haven::config::Detail::Minimal,
    };
    let at = |d: NaiveDate| Utc.from_utc_datetime(&d.and_hms_opt(9, 0, 0).unwrap());
    let day = |s: &str| NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap();
    let tick = |d: NaiveDate| {
        let (store, settings) = (&db.store, &settings);
        async move { haven::schedule::tick(store, settings, at(d)).await.expect("a pass").reminders_queued }
    };
    assert_eq!(tick(day("2026-02-20")).await, 0, "more than a week before");
    assert_eq!(tick(day("2026-02-21")).await, 2, "a week before: the DSL and the deputy");
    assert_eq!(tick(day("2026-02-22")).await, 0, "once");
    assert_eq!(tick(day("2026-02-28")).await, 2, "on the day");
    assert_eq!(tick(day("2026-03-01")).await, 2, "overdue");
    assert_eq!(tick(day("2026-03-02")).await, 0, "once");
    let emails = outbox(&db).await;
    assert_eq!(emails.len(), 6, "{emails:?}");
    assert!(emails.iter().all(|(to, _, _)| to == DSL || to == "ddsl@eaton.sch.example"), "{emails:?}");
    assert!(emails.iter().any(|(_, s, _)| s.contains(&format!("SAR-{:04}", january.parse::<i64>().unwrap())) && s.contains("overdue")));
    assert!(emails.iter().all(|(_, s, b)| !s.contains("Zofia") && !b.contains("Zofia") && !b.contains("Nowak")), "{emails:?}");
    db.cleanup().await;
}

/// A pupil's own request, answered and closed; the pupil is later disposed of. The items
/// collected (copies of their records, under their own key) go with them, and the keyring's
/// walks still open every value, so a later rotation is not stopped by them.
async fn a_disposed_pupils_request_leaves_no_copies(backend: Backend) {
    let db = TestDb::new(backend).await;
    let env = eaton_school(&db.url);
    let text = haven::retention::DEFAULT_FILE.replace("cooling_off = \"14d\"", "cooling_off = \"0s\"");
    std::fs::write(env.path("retention.toml"), text).unwrap();
    const GRACE: &str = "E100000000006";
    let id = number(&ok(env.haven(&["sar", "open", "--subject", GRACE, "--received", "2026-11-20", "--by", DSL]), "open"));
    let out = ok(env.haven(&["sar", "collect", &id, "--by", DSL]), "collect");
    assert!(out.contains("2 incident(s)"), "the DSL-only call and the room search she witnessed: {out}");
    let all = items(&env, &id);
    assert!(all.iter().any(|(_, b)| b.contains("dsl_only") && b.contains("child_abuse_data")), "{all:?}");
    // Several items at once: one decision, one reason, each recorded.
    let range = format!("1-{}", all.len());
    fails(env.haven(&["sar", "decide", &id, &range, "--disclose", "--reason", "hers", "--by", DSL]), 2, "say who was consulted");
    fails(env.haven(&["sar", "decide", &id, "3-1", "--disclose", "--reason", "hers", "--by", DSL]), 2, "is not a list of item numbers");
    let out = ok(
        env.haven(&[
            "sar",
            "decide",
            &id,
            &range,
            "--disclose",
            "--reason",
            "hers",
            "--no-consultation-reason",
            "she asked herself; nothing from an agency",
            "--by",
            DSL,
        ]),
        "decide all",
    );
    assert!(out.contains("0 item(s) still undecided"), "{out}");
    ok(env.haven(&["sar", "export", &id, "--out", env.path("grace.pdf").to_str().unwrap(), "--by", DSL]), "export");
    ok(env.haven(&["sar", "close", &id, "--by", DSL]), "close");

    for series in ["child_protection_file", "pastoral"] {
        let review = ["retention", "review", GRACE, "--series", series, "--decision", "destroy", "--reason", "past retention", "--by", DSL];
        ok(env.haven(&review), "destroy decision");
        let out = ok(env.haven(&["dispose", "request", GRACE, "--series", series, "--by", DSL, "--reason", "reviewed"]), "request");
        let disposal = number(&out);
        ok(env.haven(&["dispose", "approve", &disposal, "--by", "head@eaton.sch.example"]), "approve");
        ok(env.haven(&["dispose", "run", &disposal, "--by", DSL]), "run");
    }
    let left: i64 = match &db.store {
        haven::store::Store::Sqlite(p) => sqlx::query_scalar("SELECT COUNT(*) FROM sar_items").fetch_one(p).await.unwrap(),
        haven::store::Store::Postgres(p) => sqlx::query_scalar("SELECT COUNT(*) FROM sar_items").fetch_one(p).await.unwrap(),
    };
    assert_eq!(left, 0, "her request's items went with her");
    ok(env.haven(&["key", "verify"]), "every value left still opens");
    ok(env.haven(&["key", "rotate"]), "a rotation is not stopped");
    ok(env.haven(&["audit", "verify"]), "audit verify");
    db.cleanup().await;
}

/// A connection holding a transaction open, in the test's own pool.
enum Held {
    Sqlite(sqlx::pool::PoolConnection<sqlx::Sqlite>),
    Postgres(sqlx::pool::PoolConnection<sqlx::Postgres>),
}

/// `haven sar export` killed with SIGKILL after it wrote the PDF and before its disclosure log
/// committed (held there by a real lock on the database): nothing is left under the name the
/// DSL would send, and nothing is logged. Run again, it writes the file and logs it, once.
async fn an_export_killed_before_its_log_leaves_nothing_to_send(backend: Backend) {
    let db = TestDb::new(backend).await;
    let env = eaton_school(&db.url);
    const GRACE: &str = "E100000000006";
    let id = number(&ok(env.haven(&["sar", "open", "--subject", GRACE, "--received", "2026-11-20", "--by", DSL]), "open"));
    ok(env.haven(&["sar", "collect", &id, "--by", DSL]), "collect");
    let range = format!("1-{}", items(&env, &id).len());
    let decide =
        ["sar", "decide", &id, &range, "--disclose", "--reason", "hers", "--no-consultation-reason", "her own request", "--by", DSL];
    ok(env.haven(&decide), "decide");
    let pdf = env.path("grace.pdf");
    let partial = env.path("grace.pdf.partial");

    // Another writer holds the database: the export blocks when it comes to log the disclosure.
    let mut lock = match &db.store {
        haven::store::Store::Sqlite(p) => {
            let mut c = p.acquire().await.unwrap();
            sqlx::raw_sql("BEGIN IMMEDIATE").execute(&mut *c).await.unwrap();
            Held::Sqlite(c)
        }
        haven::store::Store::Postgres(p) => {
            let mut c = p.acquire().await.unwrap();
            sqlx::raw_sql("BEGIN; LOCK TABLE sar_disclosures IN EXCLUSIVE MODE").execute(&mut *c).await.unwrap();
            Held::Postgres(c)
        }
    };
    let mut export = Command::new(env!("CARGO_BIN_EXE_haven"))
        .args(["sar", "export", &id, "--out", pdf.to_str().unwrap(), "--by", DSL, "--config"])
        .arg(&env.config)
        .current_dir(env.dir.path())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("run haven sar export");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while !partial.exists() && !pdf.exists() {
        assert!(std::time::Instant::now() < deadline, "the export wrote nothing in 60 s");
        assert!(export.try_wait().unwrap().is_none(), "the export ended instead of waiting for the lock");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    std::thread::sleep(std::time::Duration::from_secs(1));
    assert!(export.try_wait().unwrap().is_none(), "the export must still be waiting for the database");
    export.kill().unwrap();
    export.wait().unwrap();
    match &mut lock {
        Held::Sqlite(c) => sqlx::raw_sql("ROLLBACK").execute(&mut **c).await.map(|_| ()),
        Held::Postgres(c) => sqlx::raw_sql("ROLLBACK").execute(&mut **c).await.map(|_| ()),
    }
    .unwrap();
    drop(lock);

    assert!(!pdf.exists(), "a file under the final name, but no disclosure logged: the DSL could send it unrecorded");
    let logged = |db: &TestDb| {
        let db = db.store.clone();
        async move {
            match &db {
                haven::store::Store::Sqlite(p) => {
                    sqlx::query_scalar::<_, i64>("SELECT COUNT(*) FROM sar_disclosures").fetch_one(p).await.unwrap()
                }
                haven::store::Store::Postgres(p) => {
                    sqlx::query_scalar::<_, i64>("SELECT COUNT(*) FROM sar_disclosures").fetch_one(p).await.unwrap()
                }
            }
        }
    };
    assert_eq!(logged(&db).await, 0, "nothing was sent, so nothing is logged");

    // Again, with nothing in the way: one file, one disclosure, no partial copy left.
    let out = ok(env.haven(&["sar", "export", &id, "--out", pdf.to_str().unwrap(), "--by", DSL]), "export again");
    assert!(out.contains("disclosure #"), "{out}");
    assert!(pdf.exists() && !partial.exists(), "{out}");
    assert_eq!(logged(&db).await, 1);
    ok(env.haven(&["sar", "verify", &id, "--file", pdf.to_str().unwrap(), "--by", DSL]), "the file is the copy logged");
    db.cleanup().await;
}

/// (recipient, subject, body) of every reminder queued.
async fn outbox(db: &TestDb) -> Vec<(String, String, String)> {
    const SQL: &str = "SELECT recipient, subject, body FROM outbox WHERE purpose = 'reminder' ORDER BY id";
    match &db.store {
        haven::store::Store::Sqlite(p) => sqlx::query_as(SQL).fetch_all(p).await.unwrap(),
        haven::store::Store::Postgres(p) => sqlx::query_as(SQL).fetch_all(p).await.unwrap(),
    }
}

/// A message about Zofia from her tutor (or forwarded by her), in `category`, saying `marker`.
fn about_zofia(env: &HavenEnv, n: u32, category: &str, forwarded_from: Option<&str>, marker: &str) {
    let body = match forwarded_from {
        Some(from) => format!(
            "Pupil: Zofia Nowak\r\nCategory: {category}\r\n\r\n---------- Forwarded message ---------\r\nFrom: {from}\r\n\
             Date: Mon, 12 Oct 2026 at 07:30\r\nSubject: Zofia\r\nTo: Priya Shah <p.shah@eaton.sch.example>\r\n\r\n{marker}\r\n"
        ),
        None => format!("Pupil: Zofia Nowak\r\nCategory: {category}\r\n\r\n{marker}\r\n"),
    };
    let raw = format!(
        "From: Priya Shah <p.shah@eaton.sch.example>\r\nTo: safeguarding@eaton.sch.example\r\nSubject: Zofia {n}\r\n\
         Date: Mon, 12 Oct 2026 09:{n:02}:00 +0000\r\nMessage-ID: <er-{n}@eaton.sch.example>\r\nMIME-Version: 1.0\r\n\
         Content-Type: text/plain; charset=utf-8\r\n\r\n{body}"
    );
    ingest(env, &format!("er-{n}.eml"), &raw);
}

/// A parent's request for Zofia's educational record: refused without terms (with the fix) and
/// for an adult; due 15 school days from receipt over the half-term; never extended; collect
/// gathers her tutor's behaviour note and leaves out the safeguarding entry and what another
/// parent sent (which a subject access request about her gathers); the reminders name it.
async fn an_educational_record_request(backend: Backend) {
    let db = TestDb::new(backend).await;
    let env = eaton_env(&db.url);
    about_zofia(&env, 1, "Behaviour", None, "ER-BEHAVIOUR-1");
    about_zofia(&env, 2, "Safeguarding / child protection", None, "ER-CP-2");
    about_zofia(&env, 3, "Behaviour", Some("Kelly Turner <kturner@example.com>"), "ER-KELLY-3");
    let open = |kind: &str, subject: &str| {
        env.haven(&["sar", "open", "--kind", kind, "--subject", subject, "--received", "2026-10-22", "--by", DSL])
    };
    fails(
        open("educational-record", ZOFIA),
        78,
        "school.terms_file is not set: an educational record request is answered within 15 school days",
    );
    let terms_text =
        std::fs::read_to_string(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/eaton/terms.toml")).unwrap();
    std::fs::write(env.path("terms.toml"), &terms_text).unwrap();
    let config = std::fs::read_to_string(&env.config).unwrap();
    std::fs::write(&env.config, config.replacen("[school]\n", "[school]\nterms_file = \"terms.toml\"\n", 1)).unwrap();
    fails(open("educational-record", PIOTR), 2, "an educational record is a pupil's");

    let terms = haven::terms::Terms::parse("terms.toml", &terms_text).unwrap();
    let received = NaiveDate::from_ymd_opt(2026, 10, 22).unwrap();
    let due = terms.add_school_days(received, 15).unwrap();
    assert!((due - received).num_days() > 21, "the half-term is not counted: {due}");
    let out = ok(open("educational-record", ZOFIA), "open");
    let id = number(&out);
    assert!(out.starts_with(&format!("educational record request #{id} (SAR-{id:0>4}) opened about Zofia Nowak (E100000000007)")), "{out}");
    assert!(out.contains(&format!("answer due {} (15 school days, ", due.format("%-d %b %Y"))), "{out}");
    fails(
        env.haven(&["sar", "extend", &id, "--to", "2026-12-20", "--reason", "complex", "--by", DSL]),
        2,
        "15 school days and no extension",
    );

    ok(env.haven(&["sar", "collect", &id, "--by", DSL]), "collect");
    let gathered = items(&env, &id);
    let all: String = gathered.iter().map(|(_, b)| b.as_str()).collect();
    assert!(all.contains("ER-BEHAVIOUR-1"), "{all}");
    assert!(!all.contains("ER-CP-2"), "the safeguarding chronology is not part of the educational record: {all}");
    assert!(!all.contains("ER-KELLY-3"), "what another parent sent is not: {all}");
    assert!(gathered.iter().all(|(_, b)| b.contains(" · incident · ")), "only entries, no alerts or audit trails: {all}");
    // A subject access request about her gathers all three.
    let sar = number(&ok(open("subject-access", ZOFIA), "open a SAR"));
    ok(env.haven(&["sar", "collect", &sar, "--by", DSL]), "collect the SAR");
    let everything: String = items(&env, &sar).iter().map(|(_, b)| b.clone()).collect();
    for marker in ["ER-BEHAVIOUR-1", "ER-CP-2", "ER-KELLY-3"] {
        assert!(everything.contains(marker), "{marker} not in the SAR: {everything}");
    }
    let list = ok(env.haven(&["sar", "list", "--by", DSL]), "list");
    assert!(list.contains(&format!("#{id} SAR-{id:0>4} educational record request open: Zofia Nowak")), "{list}");

    // Reminders through the same machinery, naming what kind of request it is.
    let key = env.path("secrets/haven.key");
    let settings = haven::schedule::ScheduleSettings {
        digests: Vec::new(),
        tz: chrono_tz::Europe::London,
        mail_domain: "eaton.sch.example".into(),
        school_name: "Eaton".into(),
        keys: Arc::new(haven::store::LiveKeys::new(haven::seal::Sealer::from_key_file(&key).unwrap(), None)),
        directory: Default::default(),
        detail: haven::config::Detail::Minimal,
    };
    let at = Utc.from_utc_datetime(&due.and_hms_opt(9, 0, 0).unwrap());
    haven::schedule::tick(&db.store, &settings, at).await.expect("a pass");
    let emails = outbox(&db).await;
    let ours: Vec<_> = emails.iter().filter(|(_, s, _)| s.contains(&format!("SAR-{id:0>4}"))).collect();
    assert_eq!(ours.len(), 2, "the DSL and the deputy: {emails:?}");
    assert!(
        ours.iter()
            .all(|(_, s, b)| s.contains("Educational record request") && s.contains("is due today") && b.contains("Fifteen school days")),
        "{ours:?}"
    );
    assert!(ours.iter().all(|(_, s, b)| !s.contains("Zofia") && !b.contains("Zofia")), "{ours:?}");
    db.cleanup().await;
}

backend_tests!(
    a_parents_request_about_himself,
    deadlines_extensions_reminders_and_bad_input,
    a_disposed_pupils_request_leaves_no_copies,
    an_export_killed_before_its_log_leaves_nothing_to_send,
    an_educational_record_request,
);
