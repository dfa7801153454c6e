//! What an alert says and to whom, decided when the incident is filed and queued in the
//! outbox in the same transaction. Pure: builds outbox records; sending is the outbox
//! worker's job.
//!
//! Alerts carry the minimum by default (SPEC "Alert emails"): incident number, category, who
//! recorded it, pupil initials and year group, what to do next. Never a pupil's name or the
//! parent's text unless the school raises `alerts.detail`.

use crate::directory::Directory;
use crate::identify::Identification;
use crate::message::Message;
use crate::rules::Decision;
use crate::store::{ActionRecord, OutboxRecord, RungRecord};
use chrono::{DateTime, Utc};

pub use crate::config::Detail;

#[derive(Debug, Clone)]
pub struct AlertSettings {
    pub detail: Detail,
    /// Domain for Message-IDs of Haven's emails.
    pub mail_domain: String,
    pub school_name: String,
}

/// The stable Message-ID of the alert about `incident` to `staff_id` (placeholder `{incident}`
/// is filled in by the store when the incident number is known).
fn alert_message_id(purpose: &str, staff_id: i64, domain: &str) -> String {
    format!("haven.{{incident}}.{purpose}.{staff_id}@{domain}")
}

/// The alerts an incident's decision asks for, one per recipient.
pub fn alerts_for(
    decision: &Decision,
    ident: &Identification,
    msg: &Message,
    recorded_by: i64,
    directory: &Directory,
    settings: &AlertSettings,
) -> Vec<crate::store::OutboxRecord> {
    let recorder = directory
        .staff
        .iter()
        .find(|s| s.id == recorded_by)
        .map(|s| format!("{} {}", s.first_name, s.last_name))
        .unwrap_or_else(|| "a member of staff".into());
    // A pupil only mentioned in the text is the DSL team's to confirm: not in any alert.
    let pupils: Vec<String> = ident
        .pupils
        .iter()
        .filter(|m| m.role != crate::identify::PupilRole::Mentioned)
        .filter_map(|m| directory.pupil(m.pupil_id).map(|p| (m, p)))
        .map(|(m, p)| {
            let who = if settings.detail == Detail::Full { p.full_name() } else { p.initials() };
            let year = p.year_group.map(|y| format!(", Year {y}")).unwrap_or_default();
            // The DSL decides whether to pass a concern about a pupil who has left on.
            let left = p.left_on.map(|d| format!(", left on {}", d.format("%-d %B %Y"))).unwrap_or_default();
            format!("{who} ({}{year}{left})", m.role.as_str())
        })
        .collect();
    let urgent = decision.priority.as_str() == "urgent";
    let subject = format!("{}Haven incident #{{incident}}: {}", if urgent { "URGENT: " } else { "" }, decision.category);
    let mut body = format!(
        "Incident #{{incident}} has been recorded in Haven for {}.\n\n\
         Category: {}\nPriority: {}\nRecorded by: {}\nPupils: {}\n",
        settings.school_name,
        decision.category,
        decision.priority.as_str(),
        recorder,
        if pupils.is_empty() { "none named".to_string() } else { pupils.join("; ") },
    );
    if let Some(within) = decision.outcome_within {
        body.push_str(&format!("Outcome required within: {}\n", human_duration(within)));
    }
    if settings.detail != Detail::Minimal {
        if let Some(s) = msg.forwarded.as_ref().and_then(|f| f.subject.as_deref()).or(msg.subject.as_deref()) {
            body.push_str(&format!("Subject: {s}\n"));
        }
        if let Some(n) = &msg.note {
            body.push_str(&format!("\nNote from the member of staff:\n{n}\n"));
        }
    }
    if settings.detail == Detail::Full
        && let Some(f) = &msg.forwarded
    {
        body.push_str(&format!("\nOriginal message:\n{}\n", f.body));
    }
    body.push_str(
        "\nWhat to do: review the incident in Haven. To record the outcome, reply to this email \
         with a first line starting \"Outcome:\" (for example \"Outcome: NFA\"). Any other reply \
         is added to the pupil's chronology.\n",
    );
    decision
        .recipients
        .iter()
        .map(|r| OutboxRecord {
            purpose: "alert",
            recipient: r.email.clone(),
            email_message_id: alert_message_id("alert", r.staff_id, &settings.mail_domain),
            subject: subject.clone(),
            body: body.clone(),
        })
        .collect()
}

/// The one short reply to a member of staff who named a category Haven does not know
/// (`Category: Victim`): which one was used, and the valid names. It names the incident by its
/// number only, like an alert.
pub fn unknown_category_reply(
    named: &str,
    how: &str,
    used: &str,
    categories: &crate::category::Categories,
    to: &crate::directory::Staff,
    settings: &AlertSettings,
) -> OutboxRecord {
    let names: Vec<String> = categories
        .iter()
        .map(|c| {
            // Every tag that names it: the name folded (#esafety), then the aliases.
            let mut tags = vec![crate::category::fold(&c.name)];
            for a in c.aliases.iter().filter(|a| !a.contains(char::is_whitespace)) {
                if !tags.contains(a) {
                    tags.push(a.clone());
                }
            }
            format!("    {} (#{})", c.name, tags.join(", #"))
        })
        .collect();
    OutboxRecord {
        purpose: "notice",
        recipient: to.email().to_string(),
        email_message_id: alert_message_id("category", to.id, &settings.mail_domain),
        subject: "Haven incident #{incident}: category not recognised".into(),
        body: format!(
            "Your message to {school} was filed as incident #{{incident}}, but the category \
             {named:?} in your {how} is not one Haven knows, so it was filed under {used}.\n\n\
             If another category fits better, tell the DSL. Next time, name one of these (a \
             \"Category:\" line, a #tag in the subject, or safeguarding+tag@):\n\n{}\n",
            names.join("\n"),
            school = settings.school_name,
        ),
    }
}

/// The outcome action and its escalation rungs, when the rules require an outcome.
pub fn action_for(decision: &Decision, now: DateTime<Utc>) -> Option<ActionRecord> {
    let within = decision.outcome_within?;
    Some(ActionRecord {
        owner: decision.recipients.first().map(|r| r.staff_id),
        due: now + within,
        rungs: decision
            .escalation
            .iter()
            .map(|rung| RungRecord { due: now + rung.after, recipients: rung.recipients.iter().map(|r| r.staff_id).collect() })
            .collect(),
    })
}

fn human_duration(d: chrono::Duration) -> String {
    let h = d.num_hours();
    if h >= 48 && h % 24 == 0 {
        format!("{} days", h / 24)
    } else if h >= 1 {
        format!("{h} hours")
    } else {
        format!("{} minutes", d.num_minutes())
    }
}
