//! A child-protection file sent from one Haven school to another over real mail, on both
//! engines: each school's daemon reads its own intake mailbox on its own Dovecot (IMAP) and
//! sends through one SMTP server (aiosmtpd). The test plays only the mail exchangers' part: what
//! the SMTP server accepts for a school's intake address is delivered into that school's
//! mailbox (IMAP APPEND); what it accepts for anyone else stays there for the test to read.
//!
//! School A's DSL records Oliver as leaving for Brook Academy, prepares his file and sends it
//! encrypted to Brook's pinned key; A's daemon sends it; Brook's daemon reads it from its
//! mailbox, keeps it unfiled and tells its DSL team; Brook's DSL receives it; Brook's daemon
//! tells the SENCO (Oliver has SEN) and sends the receipt; A's daemon reads the receipt from
//! its mailbox and the case closes. Nothing readable crosses the SMTP server.

mod support;

use chrono::Utc;
use serde_json::Value;
use std::collections::BTreeSet;
use support::brook::terms_around;
use support::db::{Backend, TestDb};
use support::dovecot::{Dovecot, PASSWORD};
use support::haven::{HavenEnv, Run, school_fixtures};
use support::smtp::{SmtpServer, header};

const OLIVER: &str = "A100000000002";
const DSL: &str = "dsl@school.example";
const B_DSL: &str = "dsl@brook.example";
const DESTINATION: &str = "Brook Academy <dsl@brook.example>";

fn ok(r: Run, what: &str) -> String {
    assert_eq!(r.code, 0, "{what}: {}{}", r.stdout, r.stderr);
    r.stdout
}

/// Points `env` at the mail: its outbox sends to the SMTP server on `smtp`, its intake reads
/// `mailbox`; it gets terms around today.
fn over_mail(env: &HavenEnv, smtp: u16, mailbox: &Dovecot) {
    let config = std::fs::read_to_string(&env.config).unwrap();
    let config = config
        .replace(
            "transport = \"maildir\"\nmaildir = \"var/outbox\"",
            &format!("transport = \"smtp\"\nhost = \"127.0.0.1\"\nport = {smtp}\nsecurity = \"plain\""),
        )
        .replacen("timezone = \"Europe/London\"\n", "timezone = \"Europe/London\"\nterms_file = \"terms.toml\"\n", 1);
    assert!(config.contains("transport = \"smtp\""), "the test installation's outbox is not where this test expects it");
    std::fs::write(&env.config, config).unwrap();
    std::fs::write(env.path("terms.toml"), terms_around(Utc::now().date_naive())).unwrap();
    env.use_imap(mailbox.port, PASSWORD, "");
}

/// School A: the test school, with one incident about Oliver.
fn school_a(db_url: &str) -> HavenEnv {
    let env = HavenEnv::new(db_url, "");
    env.import_school();
    let note = school_fixtures().join("mail/note-named.eml");
    ok(env.haven(&["ingest", note.to_str().unwrap()]), "an incident about Oliver at school A");
    env
}

/// The mail exchangers: every message the SMTP server accepted for a school's intake address
/// (`safeguarding…@domain`) not yet delivered goes into that school's mailbox.
struct Exchange<'a> {
    smtp: &'a SmtpServer,
    mailboxes: [(&'a str, &'a Dovecot); 2],
    delivered: BTreeSet<String>,
}

impl Exchange<'_> {
    async fn deliver(&mut self) {
        for m in self.smtp.messages() {
            let (Some(id), Some(to)) = (header(&m, "Message-ID"), header(&m, "X-RcptTo")) else { continue };
            for (domain, mailbox) in self.mailboxes {
                let key = format!("{id} {domain}");
                let for_intake = to.split(',').map(str::trim).any(|r| r.starts_with("safeguarding") && r.ends_with(domain));
                if for_intake && self.delivered.insert(key) {
                    mailbox.append(m.as_bytes()).await;
                }
            }
        }
    }

    /// Delivers, and waits (up to `secs`) until `check` holds.
    async fn until<T>(&mut self, what: &str, secs: u64, mut check: impl FnMut() -> Result<T, String>) -> T {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(secs);
        loop {
            self.deliver().await;
            match check() {
                Ok(v) => return v,
                Err(last) if std::time::Instant::now() > deadline => {
                    panic!("timed out after {secs} s waiting for {what}; last seen: {last}")
                }
                Err(_) => tokio::time::sleep(std::time::Duration::from_millis(200)).await,
            }
        }
    }
}

/// Whether the SMTP server has accepted an email for `to`.
fn told(smtp: &SmtpServer, to: &str) -> Result<(), String> {
    let sent = smtp.messages().iter().any(|m| header(m, "X-RcptTo").is_some_and(|r| r.contains(to)));
    if sent { Ok(()) } else { Err(format!("no email to {to} yet")) }
}

async fn a_file_goes_from_one_haven_to_another_over_imap_and_smtp(backend: Backend) {
    let (db_a, db_b) = (TestDb::new(backend).await, TestDb::new(backend).await);
    let (a, b) = (school_a(&db_a.url), support::brook::brook_academy(&db_b.url));
    let (mailbox_a, mailbox_b, smtp) = (Dovecot::start(), Dovecot::start(), SmtpServer::start());
    over_mail(&a, smtp.port, &mailbox_a);
    over_mail(&b, smtp.port, &mailbox_b);
    let key = ok(b.haven(&["transfer", "key"]), "Brook's transfer key");
    let pinned = key.split_once("\n\n").map(|(_, p)| p.to_string()).unwrap_or_default();
    std::fs::write(a.path("transfer-schools.toml"), format!("{pinned}\n")).unwrap();
    let config = std::fs::read_to_string(&a.config).unwrap() + "\n[transfer]\nschools_file = \"transfer-schools.toml\"\n";
    std::fs::write(&a.config, config).unwrap();
    let (mut daemon_a, mut daemon_b) = (a.start(), b.start());

    // A's DSL: Oliver leaves today for Brook; his file is prepared and sent to Brook's Haven.
    let today = Utc::now().date_naive().to_string();
    ok(a.haven(&["leaver", OLIVER, "--left-on", &today, "--destination", DESTINATION, "--by", DSL]), "leaver");
    std::fs::write(a.path("summary.txt"), "Unexplained bruising in November.\n").unwrap();
    let bundle = a.path("oliver");
    let summary = a.path("summary.txt");
    ok(
        a.haven(&["transfer", "prepare", "1", "--summary", summary.to_str().unwrap(), "--by", DSL, "--out", bundle.to_str().unwrap()]),
        "prepare",
    );
    let zip = bundle.with_extension("zip");
    ok(a.haven(&["transfer", "send", "1", "--to-haven", zip.to_str().unwrap(), "--by", DSL]), "send to Brook's Haven");

    let mut exchange =
        Exchange { smtp: &smtp, mailboxes: [("@school.example", &mailbox_a), ("@brook.example", &mailbox_b)], delivered: BTreeSet::new() };
    // Brook's daemon reads it from its mailbox, keeps it unfiled, and tells its DSL team.
    let message = exchange
        .until("Brook's intake to keep the transfer", 120, || {
            daemon_a.assert_running();
            daemon_b.assert_running();
            let listed: Value = serde_json::from_str(&ok(b.haven(&["messages", "--json"]), "messages")).unwrap();
            let all = listed.as_array().or_else(|| listed["messages"].as_array()).cloned().unwrap_or_default();
            all.iter()
                .find(|m| m["reason"].as_str().is_some_and(|r| r.contains("encrypted child-protection file from another Haven school")))
                .and_then(|m| m["id"].as_i64())
                .ok_or_else(|| format!("{listed}"))
        })
        .await;
    for m in smtp.messages() {
        if header(&m, "X-RcptTo").is_some_and(|r| r.starts_with("safeguarding@brook.example")) {
            assert!(!m.contains("Oliver") && !m.contains("bruising") && !m.contains(OLIVER), "nothing readable crosses the mail:\n{m}");
        }
    }
    exchange.until("Brook's DSL to be told a file is waiting", 60, || told(&smtp, B_DSL)).await;

    // Brook's DSL receives it: filed under the previous school, the SENCO told, the receipt sent.
    let out = ok(b.haven(&["transfer", "receive", "--message", &message.to_string(), "--by", B_DSL]), "receive");
    assert!(out.contains("entries filed under \"Previous school: Test School\""), "{out}");
    exchange
        .until("A's case closed by Brook's receipt, read from A's mailbox", 120, || {
            daemon_a.assert_running();
            let listed: Value = serde_json::from_str(&ok(a.haven(&["transfers", "--as", DSL, "--all", "--json"]), "transfers")).unwrap();
            let case = listed["cases"][0].clone();
            if case["state"] == "closed" { Ok(case) } else { Err(format!("{case}")) }
        })
        .await;
    exchange.until("the SENCO told", 60, || told(&smtp, "senco@brook.example")).await;
    let chronology: Value = serde_json::from_str(&ok(b.haven(&["chronology", OLIVER, "--as", B_DSL, "--json"]), "chronology")).unwrap();
    let entries = chronology["incidents"].as_array().cloned().unwrap_or_default();
    assert!(
        entries.iter().any(|e| e["note"].as_str().is_some_and(|n| n.starts_with("Previous school: Test School"))),
        "Oliver's file at Brook: {chronology:#}"
    );
    daemon_a.stop();
    daemon_b.stop();
    db_a.cleanup().await;
    db_b.cleanup().await;
}

backend_tests!(a_file_goes_from_one_haven_to_another_over_imap_and_smtp);
