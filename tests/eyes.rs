//! No record reaches the wrong eyes, and every concern can be closed by the right person: end
//! to end through the real `haven run` on SQLite and PostgreSQL, with a real SMTP server.
//! Who received what is read at the SMTP server; who sees what with `haven chronology --as`
//! for each role of the example school (tests/fixtures/school):
//!
//! - Jane Smith (A…001) and Amira Khan (A…003) are in Kestrel, HouseM kestrel@;
//! - Oliver Brown (A…002) and Tom Price (A…004) are in Heron, HouseM heron@;
//! - the DSL team is dsl@ and ddsl@.

mod support;

use serde_json::Value;
use std::time::Duration;
use support::db::{Backend, TestDb};
use support::haven::{Daemon, HavenEnv, wait_for};
use support::smtp::SmtpServer;

const WAIT: Duration = Duration::from_secs(30);
const JANE: &str = "A100000000001";
const OLIVER: &str = "A100000000002";
const AMIRA: &str = "A100000000003";
const DSL: &str = "dsl@school.example";
const KESTREL: &str = "kestrel@school.example";
const HERON: &str = "heron@school.example";

struct School {
    db: TestDb,
    smtp: SmtpServer,
    env: HavenEnv,
    daemon: Daemon,
}

/// One email at the SMTP server: its recipient, subject and decoded text.
#[derive(Debug, Clone)]
struct Mail {
    to: String,
    reply_to: String,
    subject: String,
    body: String,
}

impl Mail {
    fn parse(raw: &str) -> Mail {
        let m = mail_parser::MessageParser::default().parse(raw.as_bytes()).expect("an email");
        let first = |a: Option<&mail_parser::Address>| a.and_then(|a| a.first()).and_then(|a| a.address()).unwrap_or_default().to_string();
        Mail {
            to: first(m.to()),
            reply_to: first(m.reply_to()),
            subject: m.subject().unwrap_or_default().to_string(),
            body: m.body_text(0).map(|b| b.into_owned()).unwrap_or_default(),
        }
    }
}

impl School {
    async fn start(backend: Backend) -> School {
        School::start_with(backend, "").await
    }

    /// With `extra` configuration (TOML tables) after the intake's settings.
    async fn start_with(backend: Backend, extra: &str) -> School {
        let db = TestDb::new(backend).await;
        let smtp = SmtpServer::start();
        let env = HavenEnv::with_smtp(&db.url, extra, smtp.port);
        env.import_school();
        let daemon = env.start_env(&[("RUST_LOG", "debug")]);
        School { db, smtp, env, daemon }
    }

    fn status(&mut self) -> Value {
        self.daemon.assert_running();
        self.env.status()
    }

    /// Drops `raw` into the intake; waits until it is recorded and the outbox is empty.
    fn deliver(&mut self, name: &str, raw: &str) -> Value {
        let count = |s: &Value| -> u64 {
            ["filed", "awaiting_triage", "quarantined", "duplicate", "ignored"].iter().filter_map(|k| s["messages"][k].as_u64()).sum()
        };
        let before = count(&self.status());
        self.env.deliver(name, raw.as_bytes());
        wait_for(&format!("{name} to be recorded and the outbox to drain"), WAIT, || {
            let s = self.status();
            if count(&s) > before && s["outbox"]["pending"] == 0 { Ok(s) } else { Err(s.to_string()) }
        })
    }

    /// Every email the SMTP server holds, once exactly `n` are there and nothing is pending.
    fn mails(&mut self, n: usize) -> Vec<Mail> {
        let got = wait_for(&format!("{n} emails at the SMTP server"), WAIT, || {
            let got = self.smtp.messages();
            let s = self.status();
            if got.len() >= n && s["outbox"]["pending"] == 0 { Ok(got) } else { Err(format!("{} received; {s}", got.len())) }
        });
        let mails: Vec<Mail> = got.iter().map(|r| Mail::parse(r)).collect();
        assert_eq!(mails.len(), n, "exactly {n} emails: {:#?}", mails.iter().map(|m| (&m.to, &m.subject)).collect::<Vec<_>>());
        mails
    }

    /// The first email at the SMTP server that `wanted` picks, once it is there.
    fn mail_where(&mut self, what: &str, wanted: impl Fn(&Mail) -> bool) -> Mail {
        wait_for(what, WAIT, || {
            let got: Vec<Mail> = self.smtp.messages().iter().map(|r| Mail::parse(r)).collect();
            got.iter()
                .find(|m| wanted(m))
                .cloned()
                .ok_or_else(|| format!("{:?}", got.iter().map(|m| (&m.to, &m.subject)).collect::<Vec<_>>()))
        })
    }

    /// The one-line answers Haven sent about outcomes: (to, text), sorted.
    fn notices(&mut self) -> Vec<(String, String)> {
        let _ = self.status();
        let mut n: Vec<(String, String)> = self
            .smtp
            .messages()
            .iter()
            .map(|r| Mail::parse(r))
            .filter(|m| m.subject.to_lowercase().contains("outcome") && !m.subject.contains("digest"))
            .map(|m| (m.to, m.body.trim().to_string()))
            .collect();
        n.sort();
        n
    }

    /// `haven messages --state STATE --json`: the reasons recorded.
    fn reasons(&self, state: &str) -> Vec<String> {
        let r = self.env.haven(&["messages", "--state", state, "--json"]);
        let v: Value = serde_json::from_str(&r.stdout).expect("JSON");
        v.as_array().into_iter().flatten().filter_map(|m| m["reason"].as_str().map(str::to_string)).collect()
    }

    /// The incidents on `pupil`'s chronology as `viewer` sees them.
    fn chronology(&self, pupil: &str, viewer: &str) -> Vec<Value> {
        let r = self.env.haven(&["chronology", pupil, "--json", "--as", viewer]);
        assert_eq!(r.code, 0, "chronology {pupil} --as {viewer}: {}", r.stderr);
        let v: Value = serde_json::from_str(&r.stdout).expect("JSON");
        v["incidents"].as_array().cloned().unwrap_or_default()
    }

    /// (incident, this pupil's role) on `pupil`'s chronology as `viewer` sees it.
    fn sees(&self, pupil: &str, viewer: &str) -> Vec<(i64, String)> {
        self.chronology(pupil, viewer)
            .iter()
            .map(|e| (e["incident"].as_i64().unwrap_or(0), e["role"].as_str().unwrap_or_default().to_string()))
            .collect()
    }

    async fn finish(self) {
        let log = self.daemon.log();
        assert!(log.contains("message recorded"), "the daemon logged its work:\n{log}");
        for secret in ["Jane", "Smith", "Oliver", "Amira", "Khan", "took her money", "parent.smith@example.com"] {
            assert!(!log.contains(secret), "the daemon's log contains {secret:?}:\n{log}");
        }
        self.daemon.stop();
        self.db.cleanup().await;
    }
}

fn recipients(mails: &[Mail]) -> Vec<String> {
    let mut to: Vec<String> = mails.iter().map(|m| m.to.clone()).collect();
    to.sort();
    to
}

/// A note from a member of staff straight to the intake.
fn note(id: &str, from: &str, markers: &str, text: &str) -> String {
    format!(
        "From: {from}\nTo: safeguarding@school.example\nSubject: Note {id}\nDate: Tue, 10 Nov 2026 16:05:00 +0000\n\
         Message-ID: <{id}@mail.school.example>\nContent-Type: text/plain; charset=utf-8\n\n{markers}\n\n{text}\n"
    )
}

/// A parent's email forwarded by the tutor with `markers` in the note above it.
fn forward(id: &str, markers: &str, parent_text: &str) -> String {
    format!(
        "From: Terry Teach <teacher@school.example>\nTo: safeguarding@school.example\nSubject: Fwd: This week\n\
         Date: Tue, 10 Nov 2026 16:05:00 +0000\nMessage-ID: <{id}@mail.school.example>\nContent-Type: text/plain; charset=utf-8\n\n\
         {markers}\n\n---------- Forwarded message ---------\nFrom: Mary Smith <parent.smith@example.com>\n\
         Date: Mon, 9 Nov 2026 at 21:14\nSubject: This week\nTo: Terry Teach <teacher@school.example>\n\n{parent_text}\n"
    )
}

const TEACHER: &str = "Terry Teach <teacher@school.example>";

/// A "DSL Team + HouseM" incident about Oliver (Heron) with Jane (Kestrel) as a witness
/// alerts the DSL team and Heron's HouseM only; Kestrel's HouseM is not alerted and sees it
/// on neither chronology, while the Heron HouseM sees it on both.
async fn a_witness_does_not_widen_who_sees_or_is_alerted(backend: Backend) {
    let mut school = School::start(backend).await;
    school.deliver(
        "witness.eml",
        &note("w1", TEACHER, "Pupil: Oliver Brown\nWitness: Jane Smith\nCategory: DSL Team + HouseM", "Upset in the changing room."),
    );
    let mails = school.mails(3);
    assert_eq!(recipients(&mails), ["ddsl@school.example", DSL, HERON], "the witness's HouseM is not alerted");
    assert_eq!(school.sees(OLIVER, HERON), [(1, "subject".to_string())]);
    assert_eq!(school.sees(JANE, HERON), [(1, "witness".to_string())], "the subject's HouseM sees it on the witness's chronology");
    assert_eq!(school.sees(JANE, KESTREL), [], "the witness's HouseM may not see it");
    assert_eq!(school.sees(OLIVER, KESTREL), []);
    assert_eq!(school.sees(JANE, DSL), [(1, "witness".to_string())]);
    school.finish().await;
}

/// Names found only in a parent's text beside the pupil the sender is a contact of are
/// *mentioned*: on their chronology for the DSL team only, no alert to their HouseM, until the
/// DSL confirms or removes the link with `haven link`, which nobody else may do.
async fn names_in_a_parents_text_are_only_mentioned_until_the_dsl_decides(backend: Backend) {
    let mut school = School::start(backend).await;
    school.deliver(
        "parent.eml",
        &forward("m1", "Category: DSL Team + HouseM", "Amira Khan and Oliver Brown took her money on the bus again."),
    );
    let mails = school.mails(3);
    assert_eq!(recipients(&mails), ["ddsl@school.example", DSL, KESTREL], "Oliver's HouseM is not alerted");
    for m in &mails {
        assert!(m.body.contains("JS (subject, Year 7)"), "{}", m.body);
        assert!(
            !m.body.contains("OB (") && !m.body.contains("AK (") && !m.body.contains("mentioned"),
            "no alert names a mention: {}",
            m.body
        );
    }
    assert_eq!(school.sees(JANE, KESTREL), [(1, "subject".to_string())]);
    assert_eq!(school.sees(OLIVER, HERON), [], "a mention is not on Oliver's chronology for his HouseM");
    let pupils = |viewer: &str| -> Vec<String> {
        school.chronology(JANE, viewer)[0]["pupils"].as_array().unwrap().iter().map(|p| format!("{} {}", p["upn"], p["role"])).collect()
    };
    assert_eq!(pupils(KESTREL), [format!("\"{JANE}\" \"subject\"")], "the HouseM is not shown the mentions");
    assert_eq!(pupils(DSL).len(), 3, "the DSL team is: {:?}", pupils(DSL));
    assert_eq!(school.sees(AMIRA, KESTREL), [], "nor on Amira's for hers, though she may see Jane's record");
    assert_eq!(school.sees(OLIVER, DSL), [(1, "mentioned".to_string())]);
    assert_eq!(school.sees(AMIRA, "ddsl@school.example"), [(1, "mentioned".to_string())]);

    // Only the DSL team decides; a refusal changes nothing and says why.
    let r = school.env.haven(&["link", "confirm", "1", OLIVER, "--by", HERON]);
    assert_eq!(r.code, 2, "{}", r.stdout);
    assert!(r.stderr.contains("only the DSL team may confirm or remove a mentioned pupil; nothing was changed"), "{}", r.stderr);
    assert_eq!(school.sees(OLIVER, DSL), [(1, "mentioned".to_string())]);
    let r = school.env.haven(&["link", "remove", "1", JANE, "--by", DSL]);
    assert_eq!(r.code, 2, "{}", r.stdout);
    assert!(r.stderr.contains("is subject on it, not mentioned"), "{}", r.stderr);

    let r = school.env.haven(&["link", "confirm", "1", OLIVER, "--by", DSL]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(r.stdout.contains("confirmed as linked to incident #1"), "{}", r.stdout);
    assert_eq!(school.sees(OLIVER, DSL), [(1, "linked".to_string())]);
    assert_eq!(school.sees(OLIVER, HERON), [], "a linked pupil's own HouseM is still not added");
    let r = school.env.haven(&["link", "remove", "1", "Amira Khan", "--by", "ddsl@school.example"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(school.sees(AMIRA, DSL), [], "removed from Amira's chronology");
    assert_eq!(school.sees(JANE, DSL), [(1, "subject".to_string())]);
    let r = school.env.haven(&["audit", "verify"]);
    assert_eq!(r.code, 0, "the audit chain holds the link decisions: {} {}", r.stdout, r.stderr);
    school.finish().await;
}

/// A pupil only mentioned gains no history: three pastoral emails from Jane's mum naming
/// Oliver, then a pastoral note about Oliver, do not make "three pastoral issues in 30 days"
/// (rules/30-patterns.toml) alert the DSL about him.
async fn a_mention_adds_nothing_to_a_pupils_history(backend: Backend) {
    let mut school = School::start(backend).await;
    for i in 1..=3 {
        school.deliver(&format!("mum{i}.eml"), &forward(&format!("h{i}"), "", "Oliver Brown was unkind to her at lunch."));
    }
    let before = school.smtp.messages().len();
    school.deliver("oliver.eml", &note("h4", TEACHER, "Pupil: Oliver Brown", "Lost his coat."));
    let mails = school.mails(before + 1);
    assert_eq!(mails.last().map(|m| m.to.as_str()), Some("head@school.example"), "SLT only, not the DSL");
    assert_eq!(school.sees(OLIVER, DSL).len(), 4, "the mentions are on his chronology for the DSL team");
    school.finish().await;
}

/// `Linked: NAME, UPN` in the note links pupils with role `linked`; they widen nobody's view.
async fn linked_lines_link_pupils_by_name_or_upn(backend: Backend) {
    let mut school = School::start(backend).await;
    school.deliver(
        "linked.eml",
        &note("l1", TEACHER, "Pupil: Jane Smith\nLinked: Oliver Brown, A100000000003\nCategory: DSL Team + HouseM", "Argument at lunch."),
    );
    let mails = school.mails(3);
    assert_eq!(recipients(&mails), ["ddsl@school.example", DSL, KESTREL]);
    assert_eq!(school.sees(OLIVER, DSL), [(1, "linked".to_string())]);
    assert_eq!(school.sees(AMIRA, DSL), [(1, "linked".to_string())]);
    assert_eq!(school.sees(OLIVER, HERON), []);
    assert_eq!(school.sees(AMIRA, KESTREL), [(1, "linked".to_string())], "Jane's HouseM may see it wherever it shows");
    school.finish().await;
}

/// A reply to `mail` (an alert or a digest) from `from`, its new text `text` above the quote.
fn reply_to(mail: &Mail, id: &str, from: &str, text: &str) -> String {
    let quoted: Vec<String> = mail.body.lines().map(|l| format!("> {l}")).collect();
    format!(
        "From: {from}\nTo: Haven <{}>\nSubject: Re: {}\nDate: Tue, 10 Nov 2026 17:05:00 +0000\n\
         Message-ID: <{id}@mail.school.example>\nContent-Type: text/plain; charset=utf-8\n\n{text}\n\n\
         On Tue, 10 Nov 2026 at 16:06, Haven wrote:\n{}\n",
        mail.reply_to,
        mail.subject,
        quoted.join("\n")
    )
}

/// `haven outcome` records the outcome of an incident no rule asked one for (a pastoral note),
/// by someone it was alerted to; who recorded it and when show on the chronology; a second
/// outcome is refused with the reason, and someone who was not alerted is refused.
async fn any_incident_may_be_given_an_outcome_by_command(backend: Backend) {
    let mut school = School::start(backend).await;
    school.deliver("pastoral.eml", &note("p1", TEACHER, "Pupil: Jane Smith", "Quiet in class all week."));
    assert_eq!(recipients(&school.mails(1)), ["head@school.example"], "a pastoral issue goes to SLT");
    let r = school.env.haven(&["outcome", "1", "Spoke to her", "--by", KESTREL]);
    assert_eq!(r.code, 2, "{}", r.stdout);
    assert!(r.stderr.contains("may not record the outcome of incident #1"), "not alerted: {}", r.stderr);
    let r = school.env.haven(&["outcome", "1", "Spoke to her; tutor keeping an eye", "--by", "head@school.example"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(r.stdout.trim(), "outcome recorded on incident #1 (no rule required one)");
    let entry = &school.chronology(JANE, KESTREL)[0];
    assert_eq!(entry["outcome"], "Spoke to her; tutor keeping an eye", "{entry}");
    assert_eq!(entry["outcome_by"], "Harriet Head", "{entry}");
    assert!(entry["outcome_at"].as_str().is_some_and(|t| t.starts_with("20")), "{entry}");
    let r = school.env.haven(&["chronology", JANE, "--as", KESTREL]);
    assert!(r.stdout.contains("outcome (Harriet Head, "), "the text view says who recorded it: {}", r.stdout);
    let out = school.env.path("export");
    let r = school.env.haven(&["export", JANE, "--as", KESTREL, "--format", "html", "--out", out.to_str().unwrap()]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let html = std::fs::read_to_string(out.join("chronology.html")).expect("the export");
    assert!(html.contains("<strong>Outcome</strong> (Harriet Head, "), "the export says who recorded it: {html}");
    let r = school.env.haven(&["outcome", "1", "NFA", "--by", DSL]);
    assert_eq!(r.code, 2);
    assert!(r.stderr.contains("the outcome of incident #1 was already recorded; nothing was recorded"), "{}", r.stderr);
    school.finish().await;
}

/// Outcomes by reply follow the rule `haven outcome` applies: the DSL Team + HouseM incident
/// about Oliver is closed by his alerted HouseM, who is told so in one line; Kestrel's HouseM
/// (Jane is only a witness) was not alerted, and answering with Heron's alert is refused, with
/// the reason sent back.
async fn outcomes_by_reply_only_from_the_right_person_and_answered(backend: Backend) {
    let mut school = School::start(backend).await;
    school.deliver(
        "witness.eml",
        &note("w2", TEACHER, "Pupil: Oliver Brown\nWitness: Jane Smith\nCategory: DSL Team + HouseM", "Upset in the changing room."),
    );
    let mails = school.mails(3);
    let heron = mails.iter().find(|m| m.to == HERON).cloned().expect("Heron's HouseM is alerted");
    school.deliver("kestrel.eml", &reply_to(&heron, "k1", "Kit Kestrel <kestrel@school.example>", "Outcome: NFA"));
    assert!(school.chronology(OLIVER, DSL)[0]["outcome"].is_null(), "Kestrel's HouseM did not close it");
    assert!(school.reasons("quarantined").iter().any(|r| r.contains("not sent to")));
    let s = school.deliver("heron.eml", &reply_to(&heron, "h1", "Hana Heron <heron@school.example>", "Outcome: Spoke to Olly and mum"));
    assert_eq!(s["outcomes"]["open"], 0, "{s}");
    let entry = &school.chronology(OLIVER, HERON)[0];
    assert_eq!((entry["outcome"].as_str(), entry["outcome_by"].as_str()), (Some("Spoke to Olly and mum"), Some("Hana Heron")));
    school.mails(5);
    assert_eq!(
        school.notices(),
        [
            (HERON.to_string(), "Outcome recorded on incident #1.".to_string()),
            (
                KESTREL.to_string(),
                "Your outcome for incident #1 was not recorded: reply from a member of staff the alert was not sent to.".to_string()
            ),
        ]
    );
    school.finish().await;
}

/// The digest invites replies; `Outcome #N: text` lines in a reply to it record each outcome
/// with the same checks (the incident with no rule asking for one included), and the DSL is
/// told line by line what was recorded and what was not, instead of the reply going to triage.
async fn a_reply_to_a_digest_records_each_outcome(backend: Backend) {
    let digest = "\n[[digest]]\nto = \"dsl@school.example\"\ncron = \"*/3 * * * * *\"\n";
    let mut school = School::start_with(backend, digest).await;
    school.deliver("cp.eml", &note("c1", TEACHER, "Pupil: Jane Smith\nCategory: Safeguarding", "Bruise on her arm."));
    school.deliver("pastoral.eml", &note("p2", TEACHER, "Pupil: Oliver Brown", "Forgot his kit again."));
    let digest = school.mail_where("a digest to the DSL listing both incidents", |m| {
        m.to == DSL && m.subject.starts_with("Haven digest") && m.body.contains("#1 ") && m.body.contains("#2 ")
    });
    assert!(digest.body.contains("Outcome #24: NFA"), "the digest invites replies: {}", digest.body);
    assert!(digest.reply_to.starts_with("safeguarding+d-"), "replies to it carry a token: {}", digest.reply_to);

    school.deliver(
        "digest-reply.eml",
        &reply_to(&digest, "d1", "Dana Lead <dsl@school.example>", "Outcome #1: Referred to social care\nOutcome #2: NFA\nOutcome #9: NFA"),
    );
    let s = school.status();
    assert_eq!(s["outcomes"]["open"], 0, "{s}");
    assert_eq!(s["messages"]["awaiting_triage"], 0, "not sent to triage: {s}");
    assert_eq!(s["incidents"], 2, "{s}");
    let jane = &school.chronology(JANE, DSL)[0];
    assert_eq!((jane["outcome"].as_str(), jane["outcome_by"].as_str()), (Some("Referred to social care"), Some("Dana Lead")));
    assert_eq!(school.chronology(OLIVER, DSL)[0]["outcome"], "NFA");
    let answer = school.mail_where("the answer to the digest reply", |m| m.to == DSL && m.subject.contains("outcome(s) recorded"));
    assert_eq!(answer.subject, "Haven: 2 of 3 outcome(s) recorded");
    assert_eq!(
        answer.body.trim(),
        "Incident #1: outcome recorded.\nIncident #2: outcome recorded.\nIncident #9: not recorded: there is no incident #9."
    );

    // The head replying with the DSL's digest is refused, and told why.
    school.deliver("head.eml", &reply_to(&digest, "d2", "Harriet Head <head@school.example>", "Outcome #2: changed"));
    assert!(school.reasons("quarantined").iter().any(|r| r.contains("the digest was not sent to")));
    let refused = school.mail_where("the refusal", |m| m.to == "head@school.example" && m.subject == "Haven: no outcome recorded");
    assert_eq!(refused.body.trim(), "No outcome was recorded: reply from a member of staff the digest was not sent to.");
    assert_eq!(school.chronology(OLIVER, DSL)[0]["outcome"], "NFA");
    school.finish().await;
}

backend_tests!(
    a_witness_does_not_widen_who_sees_or_is_alerted,
    names_in_a_parents_text_are_only_mentioned_until_the_dsl_decides,
    linked_lines_link_pupils_by_name_or_upn,
    a_mention_adds_nothing_to_a_pupils_history,
    any_incident_may_be_given_an_outcome_by_command,
    outcomes_by_reply_only_from_the_right_person_and_answered,
    a_reply_to_a_digest_records_each_outcome,
);
