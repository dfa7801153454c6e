//! No concern reaches nobody (issue 18), end to end through the real `haven run` on SQLite and
//! on PostgreSQL, on the example school (examples/eaton/directory), with a real SMTP server on
//! loopback: who received what, and who can see what with `haven chronology --as`.
//!
//! Messages are dropped into the intake Maildir while the daemon runs; every wait polls
//! `haven status --json` (or the SMTP server's Maildir) with a deadline.

mod support;

use serde_json::Value;
use std::path::PathBuf;
use std::time::Duration;
use support::db::{Backend, TestDb};
use support::haven::{Daemon, HavenEnv, wait_for};
use support::smtp::SmtpServer;

const WAIT: Duration = Duration::from_secs(30);

const DSL: &str = "dsl@eaton.sch.example";
const DDSL: &str = "ddsl@eaton.sch.example";
const HEAD: &str = "head@eaton.sch.example";
const HERON: &str = "heron@eaton.sch.example";
const ESAFETY: &str = "esafety@eaton.sch.example";
const TEACHER: &str = "teacher@eaton.sch.example";
const KESTREL: &str = "kestrel@eaton.sch.example";
const JANE_SMITH: &str = "E100000000001";
const TOM_PRICE: &str = "E100000000004";
const RUBY_ELLIS: &str = "E100000000010";

fn eaton(file: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../examples/eaton/directory").join(file)
}

/// The example school with `haven run` running, sending by SMTP to a real server.
struct School {
    db: TestDb,
    smtp: SmtpServer,
    env: HavenEnv,
    daemon: Daemon,
}

impl School {
    async fn start(backend: Backend) -> School {
        School::start_with(backend, "").await
    }

    /// The example school, with the pupil `without_upn` (when given) gone from a later
    /// import: they have left.
    async fn start_with(backend: Backend, without_upn: &str) -> School {
        let db = TestDb::new(backend).await;
        let smtp = SmtpServer::start();
        let env = HavenEnv::with_smtp(&db.url, "", smtp.port);
        School::started(db, smtp, env, without_upn)
    }

    /// Imports the example school into `env` and starts `haven run`.
    fn started(db: TestDb, smtp: SmtpServer, env: HavenEnv, without_upn: &str) -> School {
        let import = |pupils: &str| {
            let r = env.haven(&[
                "directory",
                "import",
                "--pupils",
                pupils,
                "--staff",
                eaton("staff.csv").to_str().unwrap(),
                "--contacts",
                eaton("contacts.csv").to_str().unwrap(),
            ]);
            assert_eq!(r.code, 0, "directory import: {}{}", r.stdout, r.stderr);
        };
        import(eaton("pupils.csv").to_str().unwrap());
        if !without_upn.is_empty() {
            // The next export from the MIS no longer lists the pupil: they have left.
            let all = std::fs::read_to_string(eaton("pupils.csv")).unwrap();
            let kept: Vec<&str> = all.lines().filter(|l| !l.starts_with(without_upn)).collect();
            let path = env.path("pupils-later.csv");
            std::fs::write(&path, kept.join("\n") + "\n").unwrap();
            import(path.to_str().unwrap());
        }
        let daemon = env.start_env(&[("RUST_LOG", "debug")]);
        School { db, smtp, env, daemon }
    }

    fn status(&mut self) -> Value {
        self.daemon.assert_running();
        self.env.status()
    }

    /// Drops `raw` into the intake; waits until it is recorded and the outbox has drained.
    fn deliver(&mut self, name: &str, raw: &str) {
        let before = recorded(&self.status());
        self.env.deliver(name, raw.as_bytes());
        wait_for(&format!("{name} to be recorded and the outbox to drain"), WAIT, || {
            let s = self.status();
            if recorded(&s) > before && s["outbox"]["pending"] == 0 { Ok(()) } else { Err(s.to_string()) }
        });
    }

    /// Waits until the SMTP server holds exactly `n` emails and Haven has nothing left to send.
    fn received(&mut self, n: usize) -> Vec<Email> {
        let got = wait_for(&format!("{n} emails at the SMTP server"), WAIT, || {
            let got = self.smtp.messages();
            let s = self.status();
            if got.len() >= n && s["outbox"]["pending"] == 0 { Ok(got) } else { Err(format!("{} received; status {s}", got.len())) }
        });
        assert_eq!(got.len(), n, "expected exactly {n} emails:\n{}", got.join("\n-----\n"));
        got.iter().map(|raw| Email::parse(raw)).collect()
    }

    /// `haven chronology PUPIL --as STAFF` (text).
    fn chronology_as(&self, upn: &str, staff: &str) -> String {
        let r = self.env.haven(&["chronology", upn, "--as", staff]);
        assert_eq!(r.code, 0, "chronology --as {staff}: {}", r.stderr);
        r.stdout
    }

    /// `haven chronology PUPIL --as STAFF --json`: the incidents they may see.
    fn incidents_seen_by(&self, upn: &str, staff: &str) -> Vec<Value> {
        let r = self.env.haven(&["chronology", upn, "--as", staff, "--json"]);
        assert_eq!(r.code, 0, "chronology --as {staff}: {}", r.stderr);
        let v: Value = serde_json::from_str(&r.stdout).expect("chronology --json is JSON");
        v["incidents"].as_array().cloned().unwrap_or_default()
    }

    /// `haven messages --state STATE --json`: the reasons recorded.
    fn reasons(&self, state: &str) -> Vec<String> {
        let r = self.env.haven(&["messages", "--state", state, "--json"]);
        assert_eq!(r.code, 0, "messages: {}", r.stderr);
        let v: Value = serde_json::from_str(&r.stdout).expect("messages --json is JSON");
        v.as_array().into_iter().flatten().filter_map(|m| m["reason"].as_str().map(str::to_string)).collect()
    }

    /// Stops the daemon; its log must hold none of `secrets` (names, addresses, words).
    async fn finish(self, secrets: &[&str]) {
        let log = self.daemon.log();
        assert!(log.contains("message recorded"), "the daemon logged its work:\n{log}");
        for secret in secrets {
            assert!(!log.contains(secret), "the daemon's log contains {secret:?}:\n{log}");
        }
        self.daemon.stop();
        self.db.cleanup().await;
    }
}

fn recorded(status: &Value) -> u64 {
    ["filed", "awaiting_triage", "quarantined", "duplicate", "ignored"].iter().filter_map(|k| status["messages"][k].as_u64()).sum()
}

/// One email as the SMTP server received it.
#[derive(Debug, Clone)]
struct Email {
    to: String,
    subject: String,
    body: String,
}

impl Email {
    fn parse(raw: &str) -> Email {
        let m = mail_parser::MessageParser::default().parse(raw.as_bytes()).unwrap_or_else(|| panic!("not an email:\n{raw}"));
        let to = m.to().and_then(|a| a.first()).and_then(|a| a.address()).unwrap_or_default().to_string();
        Email { to, subject: m.subject().unwrap_or_default().to_string(), body: m.body_text(0).map(|b| b.into_owned()).unwrap_or_default() }
    }
}

fn to_of(emails: &[Email]) -> Vec<&str> {
    let mut v: Vec<&str> = emails.iter().map(|e| e.to.as_str()).collect();
    v.sort_unstable();
    v
}

/// A note from a member of staff to the intake.
fn note(from: &str, id: &str, subject: &str, body: &str) -> String {
    format!(
        "From: Staff <{from}>\r\nTo: safeguarding@school.example\r\nSubject: {subject}\r\n\
         Date: Mon, 30 Nov 2026 09:30:00 +0000\r\nMessage-ID: <{id}@mail.eaton.sch.example>\r\n\
         MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n{body}\r\n"
    )
}

// ---------------------------------------------------------------- concerns that reach nobody

/// A disclosure about a pupil who left last week goes to the DSL team, marked "left on DATE",
/// with an outcome due and its owner; not to the pupil's former HouseM, and nobody else can
/// see it.
async fn a_disclosure_about_a_pupil_who_has_left_reaches_the_dsl_team(backend: Backend) {
    let mut school = School::start_with(backend, TOM_PRICE).await;
    let header = school.chronology_as(TOM_PRICE, DSL);
    let left = header.lines().next().and_then(|l| l.rsplit_once(", left ")).map(|(_, d)| d.trim().to_string()).expect("Tom has left");
    let left = chrono::NaiveDate::parse_from_str(&left, "%Y-%m-%d").expect("a date").format("%-d %B %Y").to_string();

    school.deliver("left.eml", &note(TEACHER, "left-1", "Note", "Pupil: Tom Price\n\nHe told me \"my stepdad hits me\"."));
    let emails = school.received(2);
    assert_eq!(to_of(&emails), vec![DDSL, DSL], "the DSL team is alerted: {emails:?}");
    for e in &emails {
        assert!(e.subject.starts_with("URGENT: "), "{}", e.subject);
        assert!(e.body.contains(&format!("TP (subject, Year 3, left on {left})")), "marked as left:\n{}", e.body);
        assert!(e.body.contains("Outcome required within: 2 days"), "{}", e.body);
        assert!(!e.body.contains("stepdad"), "{}", e.body);
    }
    let s = school.status();
    assert_eq!(s["outcomes"]["open"], 1, "an outcome is awaited: {s}");
    assert_eq!(school.incidents_seen_by(TOM_PRICE, DSL).len(), 1);
    assert_eq!(school.incidents_seen_by(TOM_PRICE, DDSL).len(), 1);
    assert_eq!(school.incidents_seen_by(TOM_PRICE, HERON).len(), 0, "his former HouseM does not see it");
    school.finish(&["Tom", "Price", "stepdad"]).await;
}

/// An `#esafety` message about grooming stays E-safety (the E-Safety Officer is told) but is
/// urgent and the DSL team's, with an outcome due and the ladder.
async fn e_safety_with_grooming_reaches_the_dsl_team_with_an_outcome_due(backend: Backend) {
    let mut school = School::start(backend).await;
    school.deliver(
        "grooming.eml",
        &note(
            TEACHER,
            "groom-1",
            "Online chat #esafety",
            "Pupil: Ruby Ellis\n\nAn adult she met in a game is grooming her; he asked her to keep it secret.",
        ),
    );
    let emails = school.received(3);
    assert_eq!(to_of(&emails), vec![DDSL, DSL, ESAFETY], "{emails:?}");
    for e in &emails {
        assert_eq!(e.subject, format!("URGENT: Haven incident #{}: E-safety", 1), "stays E-safety, urgent");
        assert!(e.body.contains("Outcome required within: 2 days"), "{}", e.body);
    }
    let s = school.status();
    assert_eq!(s["outcomes"]["open"], 1, "an outcome is awaited, with the ladder: {s}");
    assert_eq!(school.incidents_seen_by(RUBY_ELLIS, ESAFETY).len(), 1);
    assert_eq!(school.incidents_seen_by(RUBY_ELLIS, KESTREL).len(), 0, "E-safety is not the HouseM's");
    school.finish(&["Ruby", "Ellis", "grooming", "game"]).await;
}

/// Welfare information is background: the DSL is told, but no outcome is demanded and nothing
/// escalates to the head.
async fn welfare_information_is_background(backend: Backend) {
    let mut school = School::start(backend).await;
    school.deliver(
        "welfare.eml",
        &note(
            TEACHER,
            "welfare-1",
            "Record from previous school #welfare",
            "Pupil: Ruby Ellis\n\nYoung carer for her mother; receives support from the county carers service.",
        ),
    );
    let emails = school.received(1);
    assert_eq!(to_of(&emails), vec![DSL], "{emails:?}");
    assert_eq!(emails[0].subject, "Haven incident #1: Welfare information");
    assert!(!emails[0].body.contains("Outcome required"), "{}", emails[0].body);
    let s = school.status();
    assert_eq!(s["outcomes"]["open"], 0, "no outcome demanded: {s}");
    assert_eq!(school.incidents_seen_by(RUBY_ELLIS, KESTREL).len(), 1, "welfare is seen by the pupil's HouseM");
    school.finish(&["Ruby", "Ellis", "carer"]).await;
}

/// `Category: Victim` is not a category: the incident is filed under the default and says so,
/// and the forwarder gets one short reply naming the category used and the valid names.
async fn an_unknown_category_is_reported_to_the_forwarder(backend: Backend) {
    let mut school = School::start(backend).await;
    school.deliver(
        "victim.eml",
        &note(TEACHER, "victim-1", "Playground", "Pupil: Jane Smith\nCategory: Victim\n\nPushed over at lunch by older children."),
    );
    let emails = school.received(3);
    assert_eq!(to_of(&emails), vec![DSL, HEAD, TEACHER], "SLT alerted, the forwarder told: {emails:?}");
    let reply = emails.iter().find(|e| e.to == TEACHER).unwrap();
    assert_eq!(reply.subject, "Haven incident #1: category not recognised");
    for want in [
        "\"Victim\" in your Category: line is not one Haven knows",
        "filed under Pastoral issue",
        "E-safety (#esafety, #online)",
        "Behaviour (#behaviour, #bullying",
    ] {
        assert!(reply.body.contains(want), "{want:?} in:\n{}", reply.body);
    }
    assert!(!reply.body.contains("Jane") && !reply.body.contains("lunch"), "{}", reply.body);
    let chronology = school.chronology_as(JANE_SMITH, DSL);
    assert!(
        chronology.contains("category: \"Victim\" (Category: line) is not a category Haven knows; filed under Pastoral issue"),
        "the incident says so:\n{chronology}"
    );
    assert!(school.reasons("filed").iter().any(|r| r.contains("the category named was not recognised")));
    school.finish(&["Jane", "Smith", "Pushed", "Victim"]).await;
}

/// A message from someone who is not active staff is quarantined, and the DSL team is told at
/// once: the message number, the reason and how to release it, and nothing of the message.
async fn a_quarantined_message_is_told_to_the_dsl_team_without_content(backend: Backend) {
    let mut school = School::start(backend).await;
    let former = "former.teacher@eaton.sch.example";
    school.deliver(
        "former.eml",
        &note(former, "former-1", "Worried about Amira Khan", "Pupil: Amira Khan\n\nShe told me at the bus stop that her uncle hits her."),
    );
    let s = school.status();
    assert_eq!(s["messages"]["quarantined"], 1, "{s}");
    let emails = school.received(2);
    assert_eq!(to_of(&emails), vec![DDSL, DSL], "{emails:?}");
    for e in &emails {
        assert_eq!(e.subject, "Haven: message 1 was quarantined");
        for want in [
            "quarantine as message 1",
            "Reason: sender is not an active member of staff",
            "haven messages release 1 --by YOUR-EMAIL --reason",
        ] {
            assert!(e.body.contains(want), "{want:?} in:\n{}", e.body);
        }
        for never in ["former.teacher", "Amira", "Khan", "Worried", "uncle", "bus stop"] {
            assert!(!e.body.contains(never) && !e.subject.contains(never), "{never:?} in:\n{}", e.body);
        }
    }
    assert_eq!(school.incidents_seen_by("E100000000003", DSL).len(), 0, "nothing was filed");
    school.finish(&["Amira", "Khan", "uncle", "former.teacher"]).await;
}

// ---------------------------------------------------------------- rules a lead can trust

/// `when.history` without `categories` counts incidents of any category: a Behaviour note and
/// then an Attendance note about the same pupil make two, and the rule alerts the deputy DSL.
async fn history_without_categories_counts_any_category(backend: Backend) {
    let db = TestDb::new(backend).await;
    let smtp = SmtpServer::start();
    let env = HavenEnv::with_smtp(&db.url, "", smtp.port);
    std::fs::write(
        env.path("rules/40-any.toml"),
        "[[rule]]\nname = \"Two concerns of any kind in 30 days reach the deputy DSL\"\n\
         when.history = { at_least = 2, within = \"30d\" }\nalert = [\"ddsl\"]\n",
    )
    .unwrap();
    let mut school = School::started(db, smtp, env, "");
    school.deliver("first.eml", &note(TEACHER, "any-1", "Queue #behaviour", "Pupil: Jane Smith\n\nPushed in the lunch queue."));
    let first = school.received(2);
    assert_eq!(to_of(&first), vec![DSL, HEAD], "SLT only, the first time: {first:?}");
    school.deliver("second.eml", &note(TEACHER, "any-2", "Late #attendance", "Pupil: Jane Smith\n\nLate three days this week."));
    let all = school.received(5);
    let to_deputy: Vec<&Email> = all.iter().filter(|e| e.to == DDSL).collect();
    assert_eq!(to_deputy.len(), 1, "{all:?}");
    assert_eq!(to_deputy[0].subject, "Haven incident #2: Attendance");
    school.finish(&["Jane", "Smith", "queue"]).await;
}

/// `haven rules check` warns, with file and line, when a rule alerts someone who may not see
/// the category it sets (the SENCo would silently never be alerted), and names the nearest
/// role for a misspelt one.
#[test]
fn rules_check_warns_about_an_alert_nobody_receives_and_suggests_names() {
    let env = HavenEnv::new("sqlite://var/haven.db", "");
    let rule = |alert: &str| {
        format!(
            "# SEN pupils' pastoral issues reach the SENCo\n[[rule]]\nname = \"SEN pupils reach the SENCo\"\nwhen.sen = true\n\
             set_category = \"Pastoral issue\"\nalert = [\"{alert}\"]\n"
        )
    };
    std::fs::write(env.path("rules/40-senco.toml"), rule("senco")).unwrap();
    let r = env.haven(&["rules", "check"]);
    assert_eq!(r.code, 0, "a warning does not stop the rules: {}{}", r.stdout, r.stderr);
    assert!(
        r.stdout.contains(
            "rules/40-senco.toml:6:10: warning: rule \"SEN pupils reach the SENCo\" alerts senco, who may not see category \"Pastoral issue\""
        ),
        "{}",
        r.stdout
    );
    assert!(r.stdout.contains("1 warning(s) above"), "{}", r.stdout);

    std::fs::write(env.path("rules/40-senco.toml"), rule("senoc")).unwrap();
    let r = env.haven(&["rules", "check"]);
    assert_eq!(r.code, 78, "{}{}", r.stdout, r.stderr);
    assert!(r.stderr.contains("rules/40-senco.toml:6:10: unknown role \"senoc\" (did you mean \"senco\"?)"), "{}", r.stderr);
}

/// `haven rules test` names staff (not "staff 12") and prints minute durations as minutes.
async fn rules_test_names_staff_and_prints_minutes(backend: Backend) {
    let db = TestDb::new(backend).await;
    let env = HavenEnv::new(&db.url, "");
    std::fs::write(
        env.path("rules/40-quick.toml"),
        "[[rule]]\nname = \"Room searches within half an hour\"\nwhen.category = [\"Room search\"]\n\
         alert = [\"staff:senco@eaton.sch.example\"]\noutcome_within = \"30m\"\n\
         escalate = [{ after = \"45m\", alert = [\"ddsl\"] }]\n",
    )
    .unwrap();
    let r = env.haven(&[
        "directory",
        "import",
        "--pupils",
        eaton("pupils.csv").to_str().unwrap(),
        "--staff",
        eaton("staff.csv").to_str().unwrap(),
        "--contacts",
        eaton("contacts.csv").to_str().unwrap(),
    ]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let eml = env.path("search.eml");
    std::fs::write(&eml, note(HERON, "search-1", "Bag search #roomsearch", "Pupil: Tom Price\n\nSearched his bag.")).unwrap();
    let r = env.haven(&["rules", "test", eml.to_str().unwrap()]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    for want in [
        "alert: Hana Heron <heron@eaton.sch.example> — housem-of-pupil",
        "outcome required within 30 minutes",
        "escalate after 45 minutes to Dev Deputy <ddsl@eaton.sch.example>",
        "Nadia Rahman (senco@eaton.sch.example) not alerted, visibility",
    ] {
        assert!(r.stdout.contains(want), "{want:?} in:\n{}", r.stdout);
    }
    assert!(!r.stdout.contains("0 hours") && !r.stdout.contains("staff 1"), "{}", r.stdout);
    db.cleanup().await;
}

/// An ambiguous `Pupil: Smith` waits for triage, and the question to the forwarder lists the
/// pupils it could be (UPN, initials, year, tutor group), as for a parent with two children.
async fn an_ambiguous_surname_lists_the_candidates_in_the_triage_question(backend: Backend) {
    let mut school = School::start(backend).await;
    school.deliver("smith.eml", &note(TEACHER, "smith-1", "Upset at lunch", "Pupil: Smith\n\nCrying after lunch, would not say why."));
    let s = school.status();
    assert_eq!(s["messages"]["awaiting_triage"], 1, "{s}");
    let emails = school.received(1);
    assert_eq!(emails[0].to, TEACHER);
    assert_eq!(emails[0].subject, "Haven: which pupil is message 1 about?");
    let body = &emails[0].body;
    for want in
        ["a Pupil: line gives only part of a name, which 2 pupils have", "E100000000001  JS, Year 5, 5K", "E100000000005  LS, Year 5, 5H"]
    {
        assert!(body.contains(want), "{want:?} in:\n{body}");
    }
    for never in ["Jane", "Leo", "Smith", "Crying"] {
        assert!(!body.contains(never), "{never:?} in:\n{body}");
    }
    assert!(school.reasons("awaiting_triage").iter().any(|r| r.contains("part of a name")));
    school.finish(&["Jane", "Leo", "Smith", "Crying"]).await;
}

backend_tests!(
    a_disclosure_about_a_pupil_who_has_left_reaches_the_dsl_team,
    e_safety_with_grooming_reaches_the_dsl_team_with_an_outcome_due,
    welfare_information_is_background,
    an_unknown_category_is_reported_to_the_forwarder,
    a_quarantined_message_is_told_to_the_dsl_team_without_content,
    history_without_categories_counts_any_category,
    rules_test_names_staff_and_prints_minutes,
    an_ambiguous_surname_lists_the_candidates_in_the_triage_question,
);
