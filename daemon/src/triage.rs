//! Messages waiting for triage (SPEC "How staff mark a forward"): the one short question to
//! the forwarder asking which pupil a message is about, and their answer, which files it.
//! Pure: builds the question's outbox record and the identification the answer gives.
//!
//! The question goes only to the member of staff who sent the message. Like an alert it
//! carries no pupil's name and none of the message's text: it names the message by its
//! number and date, says why Haven could not file it, and lists the pupils who could be
//! meant by UPN, initials, year and tutor group, enough for the forwarder to recognise them.
//! Its Reply-To carries a signed triage token (`crate::reply_token`) for that message.

use crate::alert::AlertSettings;
use crate::directory::{Directory, Staff};
use crate::identify::{Identification, PupilMatch, Triage};
use crate::message::Message;
use crate::store::OutboxRecord;

/// The question about the message numbered `{message}` (filled in by the store, as is
/// `{recorded}`, the message the question is recorded with), to the staff member `to`.
pub fn question(msg: &Message, triage: &Triage, to: &Staff, directory: &Directory, settings: &AlertSettings) -> OutboxRecord {
    let recipient = msg
        .from
        .as_ref()
        .map(|a| a.address.to_ascii_lowercase())
        .filter(|a| to.emails.contains(a))
        .or_else(|| to.emails.first().cloned())
        .unwrap_or_default();
    let sent = msg.date.map(|d| format!(" of {}", d.format("%-d %B %Y %H:%M"))).unwrap_or_default();
    let mut body = format!(
        "Haven has kept your message{sent} to {school} as message {{message}}, but could not tell \
         which pupil it is about: {reason}.\n\n\
         Reply to this email with a line naming the pupil, for example\n\n    Pupil: Firstname Surname\n\n\
         or with the pupil's UPN. Name several pupils with commas; Victim:, Perpetrator: and \
         Witness: lines work too. A Category: line sets the category.\n",
        school = settings.school_name,
        reason = triage.reason,
    );
    let candidates: Vec<String> = triage
        .candidates
        .iter()
        .filter_map(|id| directory.pupil(*id))
        .map(|p| {
            let mut line = format!("    {}  {}", p.upn, p.initials());
            if let Some(y) = p.year_group {
                line.push_str(&format!(", Year {y}"));
            }
            if let Some(t) = &p.tutor_group {
                line.push_str(&format!(", {t}"));
            }
            line
        })
        .collect();
    if !candidates.is_empty() {
        body.push_str("\nPupils it could be about (UPN, initials, year, tutor group):\n\n");
        body.push_str(&candidates.join("\n"));
        body.push('\n');
    }
    body.push_str("\nUntil then it waits for triage, and the DSL sees it in Haven's digest.\n");
    OutboxRecord {
        purpose: "triage",
        recipient,
        email_message_id: format!("haven.triage.{{message}}.{{recorded}}@{}", settings.mail_domain),
        subject: "Haven: which pupil is message {message} about?".into(),
        body,
    }
}

/// What an answer to a question settles: the pupils it names, with the category it names or
/// else the one the original message named. Err with the reason when it names no pupil that
/// Haven can find.
pub fn answered(answer: &Identification, original: &Identification, answerer: &Staff) -> Result<Identification, String> {
    if let Some(t) = &answer.triage {
        return Err(t.reason.clone());
    }
    let who = format!("{} {}", answerer.first_name, answerer.last_name);
    Ok(Identification {
        pupils: answer
            .pupils
            .iter()
            .map(|p| PupilMatch { pupil_id: p.pupil_id, role: p.role, how: format!("{} in {who}'s answer to triage", p.how) })
            .collect(),
        category: answer.category.clone().or_else(|| original.category.clone()),
        category_how: answer.category_how.clone().or_else(|| original.category_how.clone()),
        triage: None,
    })
}
