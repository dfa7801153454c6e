//! Alerts end to end through the real `haven run`, on SQLite and on PostgreSQL, with a real SMTP
//! server (aiosmtpd on loopback): what the DSL receives when a parent's email is forwarded, and
//! what happens when they answer it from Outlook, Gmail or an iPhone; forged and stray replies
//! are quarantined, and out-of-office replies and bounces are ignored, none of them answered.
//!
//! Messages are dropped into the intake Maildir while the daemon runs; every wait polls
//! `haven status --json` (or the SMTP server's Maildir) with a deadline.

mod support;

use serde_json::Value;
use std::time::Duration;
use support::db::{Backend, TestDb};
use support::haven::{Daemon, HavenEnv, school_fixtures, wait_for};
use support::smtp::{SmtpServer, header};

/// Long enough for a loaded CI machine; every wait returns as soon as its condition holds.
const WAIT: Duration = Duration::from_secs(30);
const JANE: &str = "A100000000001";
const DSL: &str = "Dana Lead <dsl@school.example>";

fn fixture(rel: &str) -> String {
    let path = school_fixtures().join("..").join(rel);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The parent's email forwarded by a teacher, unchanged: no category named, nothing that the
/// shipped rules read as a disclosure, so it is a pastoral issue.
fn forward() -> String {
    fixture("school/mail/forward-contact.eml")
}

/// The same forward sent to `safeguarding+cp@`, the teacher's way of naming the
/// "Safeguarding / child protection" category (rules/00-categories.toml alias `cp`).
fn safeguarding_forward() -> String {
    forward().replace("To: safeguarding@school.example", "To: safeguarding+cp@school.example").replace("fwd-contact-1@", "fwd-contact-cp@")
}

/// A Haven installation sending by SMTP to a real server, with `haven run` running.
struct School {
    db: TestDb,
    smtp: SmtpServer,
    env: HavenEnv,
    daemon: Daemon,
}

impl School {
    async fn start(backend: Backend) -> School {
        let db = TestDb::new(backend).await;
        let smtp = SmtpServer::start();
        let env = HavenEnv::with_smtp(&db.url, "", smtp.port);
        env.import_school();
        // Debug logging, so that the check in `finish` covers everything the daemon can log.
        let daemon = env.start_env(&[("RUST_LOG", "debug")]);
        School { db, smtp, env, daemon }
    }

    fn status(&mut self) -> Value {
        self.daemon.assert_running();
        self.env.status()
    }

    /// Drops `raw` into the intake and waits until Haven has recorded it and its outbox is
    /// empty again (anything the message caused to be sent has been sent).
    fn deliver(&mut self, name: &str, raw: &str) -> Value {
        let before = recorded(&self.status());
        self.env.deliver(name, raw.as_bytes());
        wait_for(&format!("{name} to be recorded and the outbox to drain"), WAIT, || {
            let s = self.status();
            if recorded(&s) > before && s["outbox"]["pending"] == 0 { Ok(s) } else { Err(s.to_string()) }
        })
    }

    /// Waits until the SMTP server holds exactly `n` messages and Haven has nothing left to
    /// send, then returns them.
    fn received(&mut self, n: usize) -> Vec<String> {
        let got = wait_for(&format!("{n} emails at the SMTP server"), WAIT, || {
            let got = self.smtp.messages();
            let s = self.status();
            if got.len() >= n && s["outbox"]["pending"] == 0 { Ok(got) } else { Err(format!("{} received; status {s}", got.len())) }
        });
        // Exactly n: an extra email (a second copy, a stray answer) is as wrong as a missing one.
        assert_eq!(got.len(), n, "expected exactly {n} emails at the SMTP server:\n{}", got.join("\n-----\n"));
        got
    }

    /// Files the safeguarding forward and returns the two alerts it causes (DSL, deputy DSL).
    fn file_safeguarding_forward(&mut self) -> (Alert, Alert) {
        let before = self.smtp.messages().len();
        self.deliver("forward-cp.eml", &safeguarding_forward());
        let alerts: Vec<Alert> = self.received(before + 2).iter().map(|raw| Alert::parse(raw)).collect();
        let dsl = alerts.iter().find(|a| a.to == "dsl@school.example").cloned();
        let ddsl = alerts.iter().find(|a| a.to == "ddsl@school.example").cloned();
        match (dsl, ddsl) {
            (Some(d), Some(dd)) => (d, dd),
            _ => panic!("alerts to the DSL and the deputy DSL, got: {:?}", alerts.iter().map(|a| &a.to).collect::<Vec<_>>()),
        }
    }

    fn chronology(&self) -> Vec<Value> {
        let r = self.env.haven(&["chronology", JANE, "--json", "--as", "dsl@school.example"]);
        assert_eq!(r.code, 0, "chronology: {}", r.stderr);
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

    /// The `total` emails at the SMTP server once all are there: the one-line notices among them.
    fn notices(&mut self, total: usize) -> Vec<Alert> {
        self.received(total).iter().map(|r| Alert::parse(r)).filter(|a| a.subject.contains("outcome")).collect()
    }

    /// Nothing more is queued or was sent since `sent_before` and the SMTP server still holds
    /// `received` messages.
    fn assert_nothing_sent(&mut self, sent_before: &Value, received: usize) {
        let s = self.status();
        assert_eq!(s["outbox"]["pending"], 0, "nothing queued: {s}");
        assert_eq!(&s["outbox"]["sent"], sent_before, "nothing sent: {s}");
        assert_eq!(self.smtp.messages().len(), received, "the SMTP server received nothing new");
    }

    async fn finish(self) {
        let log = self.daemon.log();
        assert!(log.contains("message recorded"), "the daemon logged its work (else the check below proves nothing):\n{log}");
        for secret in ["Jane", "Smith", "parent.smith@example.com", "lunch money", "Worried about this week"] {
            assert!(!log.contains(secret), "the daemon's log contains {secret:?}:\n{log}");
        }
        self.daemon.stop();
        self.db.cleanup().await;
    }
}

/// Every message Haven has recorded, in any state.
fn recorded(status: &Value) -> u64 {
    ["filed", "awaiting_triage", "quarantined", "duplicate", "ignored"].iter().filter_map(|k| status["messages"][k].as_u64()).sum()
}

/// One email as the SMTP server received it, decoded.
#[derive(Debug, Clone)]
struct Alert {
    raw: String,
    /// The single To address.
    to: String,
    reply_to_name: String,
    reply_to: String,
    subject: String,
    message_id: String,
    body: String,
}

impl Alert {
    fn parse(raw: &str) -> Alert {
        let m = mail_parser::MessageParser::default()
            .parse(raw.as_bytes())
            .unwrap_or_else(|| panic!("the SMTP server received something that is not an email:\n{raw}"));
        let to: Vec<String> = m.to().into_iter().flat_map(|a| a.iter()).filter_map(|a| a.address().map(str::to_string)).collect();
        assert_eq!(to.len(), 1, "one recipient per alert, so nobody sees who else was told: {to:?}\n{raw}");
        let reply_to = m.reply_to().and_then(|a| a.first()).unwrap_or_else(|| panic!("no Reply-To:\n{raw}"));
        Alert {
            raw: raw.to_string(),
            to: to.into_iter().next().unwrap_or_default(),
            reply_to_name: reply_to.name().unwrap_or("Haven").to_string(),
            reply_to: reply_to.address().unwrap_or_default().to_string(),
            subject: m.subject().unwrap_or_default().to_string(),
            message_id: m.message_id().unwrap_or_default().to_string(),
            body: m.body_text(0).map(|b| b.into_owned()).unwrap_or_default(),
        }
    }

    /// The header block as received (for a bounce's text/rfc822-headers part).
    fn headers(&self) -> String {
        let raw = self.raw.replace("\r\n", "\n");
        raw.split("\n\n").next().unwrap_or_default().to_string()
    }
}

fn html_escape(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

/// tests/fixtures/replies/CLIENT with its placeholders filled from `alert` (see the README
/// there): a reply from `from` whose new text starts with `first_line`.
fn reply(client: &str, alert: &Alert, from: &str, first_line: &str) -> String {
    let template = fixture(&format!("replies/{client}"));
    let to = format!("{} <{}>", alert.reply_to_name, alert.reply_to);
    let body = alert.body.replace("\r\n", "\n");
    let body = body.trim_end();
    let quoted: Vec<String> = body.lines().map(|l| if l.is_empty() { ">".to_string() } else { format!("> {l}") }).collect();
    let quoted = quoted.join("\n");
    let values = [
        ("{{FIRST_LINE_HTML}}", html_escape(first_line)),
        ("{{FROM_HTML}}", html_escape(from)),
        ("{{TO_HTML}}", html_escape(&to)),
        ("{{SUBJECT_HTML}}", html_escape(&alert.subject)),
        ("{{ALERT_BODY_HTML}}", html_escape(body)),
        ("{{FIRST_LINE}}", first_line.to_string()),
        ("{{FROM}}", from.to_string()),
        ("{{TO_ADDR}}", alert.reply_to.clone()),
        ("{{TO}}", to.clone()),
        ("{{SUBJECT}}", alert.subject.clone()),
        ("{{ALERT_ID}}", format!("<{}>", alert.message_id)),
        ("{{MESSAGE_ID}}", format!("{}.{}@mail.example", client.trim_end_matches(".eml"), rand::random::<u64>())),
        ("{{QUOTED_REST}}", quoted.strip_prefix("> ").unwrap_or(&quoted).to_string()),
        ("{{QUOTED}}", quoted.clone()),
        ("{{ALERT_BODY}}", body.to_string()),
        ("{{RECIPIENT}}", alert.to.clone()),
        ("{{ALERT_HEADERS}}", alert.headers()),
    ];
    let mut out = template;
    for (k, v) in values {
        out = out.replace(k, &v);
    }
    assert!(!out.contains("{{"), "unfilled placeholder in replies/{client}:\n{out}");
    out
}

/// The token in `safeguarding+r-TOKEN@school.example` with one character of its MAC changed.
fn forge(reply_to: &str) -> String {
    let (local, domain) = reply_to.rsplit_once('@').expect("an address");
    let mut chars: Vec<char> = local.chars().collect();
    let i = chars.len() - 5;
    chars[i] = if chars[i] == 'a' { 'b' } else { 'a' };
    let forged: String = chars.into_iter().collect();
    assert_ne!(forged, local);
    format!("{forged}@{domain}")
}

/// What the alert must never say about the forwarded email: the pupil's name, the parent's
/// name and address, the parent's words or the subject they wrote.
const NEVER_IN_AN_ALERT: [&str; 9] = [
    "jane",
    "smith",
    "mary",
    "parent.smith@example.com",
    "lunch money",
    "not been sleeping",
    "older girls on the bus",
    "worried about this week",
    "mum rang",
];

fn assert_minimal(alert: &Alert) {
    let raw = alert.raw.to_lowercase();
    let body = alert.body.to_lowercase();
    let subject = alert.subject.to_lowercase();
    for secret in NEVER_IN_AN_ALERT {
        assert!(!raw.contains(secret), "the alert to {} contains {secret:?}:\n{}", alert.to, alert.raw);
        assert!(!body.contains(secret), "the alert's decoded text contains {secret:?}:\n{}", alert.body);
        assert!(!subject.contains(secret), "the alert's subject contains {secret:?}: {}", alert.subject);
    }
    for needed in ["Incident #", "Recorded by: Terry Teach", "JS (", "Year 7", "What to do", "Outcome:"] {
        assert!(alert.body.contains(needed), "the alert says {needed:?}:\n{}", alert.body);
    }
    assert_eq!(header(&alert.raw, "Auto-Submitted").as_deref(), Some("auto-generated"), "{}", alert.raw);
    assert!(
        alert.reply_to.starts_with("safeguarding+r-") && alert.reply_to.ends_with("@school.example"),
        "Reply-To carries a token: {}",
        alert.reply_to
    );
    // aiosmtpd's Mailbox handler records the envelope: nobody else was sent this copy.
    assert_eq!(
        header(&alert.raw, "X-RcptTo").as_deref(),
        Some(alert.to.as_str()),
        "the envelope recipient is the To address:\n{}",
        alert.raw
    );
}

/// (1) The forwarded parent email reaches exactly the staff the shipped rules name, once each,
/// and no alert carries the pupil's name, the parent's address or the parent's words.
async fn forwarded_email_alerts_the_right_staff_with_minimal_content(backend: Backend) {
    let mut school = School::start(backend).await;

    // As forwarded: a pastoral issue, which rules/20-routing.toml sends to SLT (the head).
    school.deliver("forward.eml", &forward());
    let first = school.received(1);
    let pastoral = Alert::parse(&first[0]);
    assert_eq!(pastoral.to, "head@school.example", "a pastoral issue goes to SLT only");
    assert!(pastoral.subject.contains("Pastoral issue"), "{}", pastoral.subject);
    assert_minimal(&pastoral);

    // Named as safeguarding: the DSL and the deputy DSL, with a 2-day outcome deadline.
    let (dsl, ddsl) = school.file_safeguarding_forward();
    let all = school.received(3);
    for alert in [&dsl, &ddsl] {
        assert_minimal(alert);
        assert!(alert.body.contains("Category: Safeguarding / child protection"), "{}", alert.body);
        assert!(alert.body.contains("Outcome required within: 2 days"), "{}", alert.body);
        assert!(alert.subject.contains("Haven incident #2"), "{}", alert.subject);
    }
    assert_ne!(dsl.message_id, ddsl.message_id, "each alert has its own Message-ID");
    assert_ne!(dsl.reply_to, ddsl.reply_to, "each recipient has their own reply token");
    let ids: std::collections::BTreeSet<String> = all.iter().map(|r| Alert::parse(r).message_id).collect();
    assert_eq!(ids.len(), 3, "three alerts, three Message-IDs: {ids:?}");
    let s = school.status();
    assert_eq!(s["incidents"], 2, "{s}");
    assert_eq!(s["outcomes"]["open"], 1, "the safeguarding incident waits for an outcome: {s}");
    assert_eq!(s["outbox"]["sent"], 3, "{s}");
    school.finish().await;
}

/// (2) The DSL answers the alert from `client` with `Outcome: NFA` as the first line: the
/// outcome is recorded on the incident and its action closed; nothing is sent back.
async fn outcome_reply_closes_the_action(backend: Backend, client: &str) {
    let mut school = School::start(backend).await;
    let (dsl, _) = school.file_safeguarding_forward();
    let before = school.status();
    assert_eq!(before["outcomes"]["open"], 1, "{before}");

    let s = school.deliver(&format!("reply-{client}"), &reply(client, &dsl, DSL, "Outcome: NFA"));
    assert_eq!(s["messages"]["filed"], 2, "the reply is filed: {s}; {:?}", school.reasons("quarantined"));
    assert_eq!(s["outcomes"]["open"], 0, "the action is closed: {s}");
    assert_eq!(s["incidents"], 1, "an outcome is not a new incident: {s}");
    let chron = school.chronology();
    assert_eq!(chron.len(), 1, "{chron:?}");
    let outcome = chron[0]["outcome"].as_str().unwrap_or_default();
    // Outlook has no "-- " before a signature, so the name under the outcome stays with it.
    assert_eq!(outcome.lines().next(), Some("NFA"), "the chronology shows the outcome NFA: {:?}", chron[0]);
    for quoted in ["Incident #", "Haven <", "wrote:", "Sent from my iPhone", "From:"] {
        assert!(!outcome.contains(quoted), "the outcome carries the quoted alert ({quoted:?}): {outcome:?}");
    }
    // The DSL gets one line back saying it was recorded, and nothing else is sent.
    let notices = school.notices(3);
    assert_eq!(notices.len(), 1, "{notices:?}");
    assert_eq!((notices[0].to.as_str(), notices[0].body.trim()), ("dsl@school.example", "Outcome recorded on incident #1."));
    school.finish().await;
}

async fn outlook_outcome_reply_closes_the_action(backend: Backend) {
    outcome_reply_closes_the_action(backend, "outlook.eml").await;
}

async fn gmail_outcome_reply_closes_the_action(backend: Backend) {
    outcome_reply_closes_the_action(backend, "gmail.eml").await;
}

async fn iphone_outcome_reply_closes_the_action(backend: Backend) {
    outcome_reply_closes_the_action(backend, "iphone.eml").await;
}

/// (3) A reply without `Outcome:` is a follow-up on the pupil's chronology, in the DSL's words
/// and without the quoted alert; the action stays open.
async fn plain_reply_is_a_follow_up_on_the_chronology(backend: Backend) {
    let mut school = School::start(backend).await;
    let (dsl, _) = school.file_safeguarding_forward();
    let before = school.status();
    let note = "Spoke to her at break and to mum by phone; bus seats changed, reviewing Friday.";

    let s = school.deliver("reply-plain.eml", &reply("gmail.eml", &dsl, DSL, note));
    assert_eq!(s["messages"]["filed"], 2, "{s}; {:?}", school.reasons("quarantined"));
    assert_eq!(s["outcomes"]["open"], 1, "no outcome was given, so the action stays open: {s}");
    let chron = school.chronology();
    assert_eq!(chron.len(), 2, "the follow-up is on the chronology: {chron:?}");
    let follow_up = chron.iter().find(|e| e["kind"] == "reply").unwrap_or_else(|| panic!("a reply entry: {chron:?}"));
    assert_eq!(follow_up["recorded_by"], "Dana Lead", "{follow_up}");
    assert_eq!(follow_up["category"], "Safeguarding / child protection", "{follow_up}");
    let body = follow_up["body"].as_str().unwrap_or_default();
    assert!(body.contains(note), "the DSL's words are filed: {body:?}");
    for quoted in ["Incident #", "wrote:", "What to do"] {
        assert!(!body.contains(quoted), "the follow-up carries the quoted alert ({quoted:?}): {body:?}");
    }
    school.assert_nothing_sent(&before["outbox"]["sent"], 2);
    school.finish().await;
}

/// (4) A reply whose token was altered, one from outside the staff directory with a valid
/// token, and one from a member of staff the alert was not sent to are quarantined; the action
/// stays open and nobody is emailed.
async fn forged_and_stray_replies_are_quarantined(backend: Backend) {
    let mut school = School::start(backend).await;
    let (dsl, _) = school.file_safeguarding_forward();
    let before = school.status();

    let mut forged = dsl.clone();
    forged.reply_to = forge(&dsl.reply_to);
    school.deliver("forged.eml", &reply("outlook.eml", &forged, DSL, "Outcome: NFA"));
    let parent = "Mary Smith <parent.smith@example.com>";
    school.deliver("parent.eml", &reply("iphone.eml", &dsl, parent, "Outcome: NFA"));
    let teacher = "Terry Teach <teacher@school.example>";
    let s = school.deliver("teacher.eml", &reply("gmail.eml", &dsl, teacher, "Outcome: NFA"));

    assert_eq!(s["messages"]["quarantined"], 3, "{s}");
    assert_eq!(s["messages"]["filed"], 1, "only the forward is filed: {s}");
    assert_eq!(s["outcomes"]["open"], 1, "the action is still open: {s}");
    assert_eq!(s["incidents"], 1, "{s}");
    let reasons = school.reasons("quarantined");
    assert!(reasons.iter().any(|r| r.contains("token")), "the forged token is the reason: {reasons:?}");
    assert!(reasons.iter().any(|r| r.contains("not an active member of staff")), "{reasons:?}");
    assert!(reasons.iter().any(|r| r.contains("not sent to")), "{reasons:?}");
    assert!(school.chronology().iter().all(|e| e["outcome"].is_null()), "no outcome recorded");
    // The DSL team is told, without content, that the reply from outside the staff list was
    // quarantined; each member of staff whose `Outcome:` was refused is told why; the parent
    // is not answered.
    let _ = before;
    let received: Vec<Alert> = school.received(6).iter().map(|raw| Alert::parse(raw)).collect();
    let quarantine: Vec<&Alert> = received.iter().filter(|a| a.subject.ends_with("was quarantined")).collect();
    let mut to: Vec<&str> = quarantine.iter().map(|a| a.to.as_str()).collect();
    to.sort_unstable();
    assert_eq!(to, vec!["ddsl@school.example", "dsl@school.example"], "only the DSL team is told");
    assert!(quarantine.iter().all(|a| !a.body.contains("parent.smith") && !a.body.contains("Mary")), "content-free");
    let mut notices: Vec<(String, String)> =
        received.iter().filter(|a| a.subject.contains("outcome")).map(|n| (n.to.clone(), n.body.trim().to_string())).collect();
    notices.sort();
    assert_eq!(
        notices,
        [
            (
                "dsl@school.example".to_string(),
                "Your outcome was not recorded: reply token is invalid or was not signed by this Haven.".to_string()
            ),
            (
                "teacher@school.example".to_string(),
                "Your outcome for incident #1 was not recorded: reply from a member of staff the alert was not sent to.".to_string()
            ),
        ]
    );
    school.finish().await;
}

/// (5) An out-of-office reply to an alert, bounces of an alert (a delivery report, a bare
/// null-sender notice) and an alert that loops back into the intake are ignored with a reason: no incident, no outcome, no alert, no answer.
async fn auto_reply_and_bounce_are_ignored(backend: Backend) {
    let mut school = School::start(backend).await;
    let (dsl, ddsl) = school.file_safeguarding_forward();
    let before = school.status();

    school.deliver("ooo.eml", &reply("auto-reply.eml", &dsl, DSL, ""));
    school.deliver("bounce.eml", &reply("bounce.eml", &ddsl, "", ""));
    // A relay's bounce whose only mark is the null sender (`Return-Path: <>`).
    school.deliver(
        "null-sender.eml",
        &format!(
            "Return-Path: <>\nFrom: Relay <relay@mx.school.example>\nTo: safeguarding@school.example\n\
         Subject: Message not delivered\nDate: Tue, 10 Nov 2026 16:21:00 +0000\n\
         Message-ID: <null-sender-1@mx.school.example>\nContent-Type: text/plain\n\n\
         Your message to {} could not be delivered: the mailbox is full.\n",
            ddsl.to
        ),
    );
    // A loop: the alert itself comes back into the intake (a forwarding rule, a list that
    // includes the intake address).
    let s = school.deliver("loop.eml", &dsl.raw);
    assert_eq!(s["messages"]["ignored"], 4, "{s}; quarantined: {:?}", school.reasons("quarantined"));
    assert_eq!(s["messages"]["filed"], 1, "{s}");
    assert_eq!(s["incidents"], 1, "{s}");
    assert_eq!(s["outcomes"]["open"], 1, "{s}");
    let reasons = school.reasons("ignored");
    assert!(reasons.iter().any(|r| r.contains("Auto-Submitted")), "the auto-reply says why: {reasons:?}");
    assert!(reasons.iter().any(|r| r.contains("bounce") || r.contains("delivery status")), "the bounce says why: {reasons:?}");
    assert!(reasons.iter().any(|r| r.contains("Return-Path")), "the null sender says why: {reasons:?}");
    assert_eq!(reasons.len(), 4, "the looped alert says why too: {reasons:?}");
    school.assert_nothing_sent(&before["outbox"]["sent"], 2);
    school.finish().await;
}

/// Any incident may be given an outcome by reply, whether or not a rule asked for one (the
/// head's on the pastoral issue); an `Outcome:` reply when the outcome is already recorded is not
/// lost: it is filed on the chronology in the sender's words, the outcome already recorded
/// stands, and each sender is told in one line what became of theirs.
async fn outcome_by_reply_for_any_incident_and_a_late_one_is_kept(backend: Backend) {
    let mut school = School::start(backend).await;
    school.deliver("forward.eml", &forward());
    let pastoral = Alert::parse(&school.received(1)[0]);
    let (dsl, ddsl) = school.file_safeguarding_forward();

    school.deliver("nfa.eml", &reply("gmail.eml", &dsl, DSL, "Outcome: NFA"));
    let late = "Outcome: Referred to children's social care after a call from school nurse";
    school.deliver("late.eml", &reply("iphone.eml", &ddsl, "Dev Deputy <ddsl@school.example>", late));
    let head = "Outcome: Spoke to her tutor; bus duty told";
    let s = school.deliver("head.eml", &reply("outlook.eml", &pastoral, "Harriet Head <head@school.example>", head));
    assert_eq!(s["messages"]["filed"], 5, "{s}; {:?}", school.reasons("quarantined"));
    assert_eq!(s["outcomes"]["open"], 0, "{s}");
    assert_eq!(s["incidents"], 3, "only the late outcome became a follow-up: {s}");

    let chron = school.chronology();
    let outcomes: Vec<(i64, &str, &str)> = chron
        .iter()
        // Outlook has no "-- " before a signature: the first line is the outcome.
        .filter_map(|e| Some((e["incident"].as_i64()?, e["outcome"].as_str()?.lines().next()?, e["outcome_by"].as_str()?)))
        .collect();
    assert_eq!(
        outcomes,
        [(1, "Spoke to her tutor; bus duty told", "Harriet Head"), (2, "NFA", "Dana Lead")],
        "the pastoral issue got its outcome, and the first outcome of the safeguarding one stands: {chron:?}"
    );
    assert!(chron.iter().filter(|e| !e["outcome"].is_null()).all(|e| e["outcome_at"].is_string()), "{chron:?}");
    let replies: Vec<&str> = chron.iter().filter(|e| e["kind"] == "reply").filter_map(|e| e["body"].as_str()).collect();
    assert_eq!(replies.len(), 1, "{replies:?}");
    assert!(replies[0].contains(late), "the late outcome is on the chronology: {replies:?}");
    let mut notices: Vec<(String, String)> = school.notices(6).into_iter().map(|n| (n.to, n.body.trim().to_string())).collect();
    notices.sort();
    assert_eq!(
        notices,
        [
            (
                "ddsl@school.example".to_string(),
                "Your outcome was not recorded: the outcome of incident #2 was already recorded. Your reply was filed as a follow-up on incident #2.".to_string()
            ),
            ("dsl@school.example".to_string(), "Outcome recorded on incident #2.".to_string()),
            ("head@school.example".to_string(), "Outcome recorded on incident #1.".to_string()),
        ]
    );
    school.finish().await;
}

backend_tests!(
    forwarded_email_alerts_the_right_staff_with_minimal_content,
    outlook_outcome_reply_closes_the_action,
    gmail_outcome_reply_closes_the_action,
    iphone_outcome_reply_closes_the_action,
    plain_reply_is_a_follow_up_on_the_chronology,
    forged_and_stray_replies_are_quarantined,
    auto_reply_and_bounce_are_ignored,
    outcome_by_reply_for_any_incident_and_a_late_one_is_kept,
);
