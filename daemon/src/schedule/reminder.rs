//! What an escalation reminder says and to whom. Pure: builds outbox records for one rung.
//!
//! A reminder carries the same minimum as an alert (SPEC "Alert emails"): incident number,
//! category, pupil initials and year group, how overdue the outcome is, and how to record it.
//! It goes to the rung's recipients who are still active and still allowed to see the incident
//! (the directory may have changed since the incident was filed). Its Message-ID is stable and
//! unique per incident, rung and recipient, so a repeat can never be sent twice.

use super::due::describe_due;
use crate::directory::{Directory, Pupil};
use crate::store::{DueRung, IncidentFacts, OutboxRecord};
use crate::visibility::Visibility;
use chrono::{DateTime, Utc};
use chrono_tz::Tz;

/// What reminders need besides the rung and the incident.
#[derive(Debug, Clone, Copy)]
pub struct ReminderContext<'a> {
    pub school_name: &'a str,
    /// Domain of Haven's Message-IDs.
    pub mail_domain: &'a str,
    pub tz: Tz,
}

/// The stable Message-ID of rung `rung`'s reminder about `incident` to staff member `staff`.
pub fn reminder_message_id(incident: i64, rung: i32, staff: i64, domain: &str) -> String {
    format!("haven.{incident}.rung{rung}.{staff}@{domain}")
}

/// One reminder per eligible recipient of `rung`, at `now`.
pub fn reminders_for(
    rung: &DueRung,
    incident: &IncidentFacts,
    directory: &Directory,
    ctx: &ReminderContext<'_>,
    now: DateTime<Utc>,
) -> Vec<OutboxRecord> {
    let pupils: Vec<&Pupil> = crate::visibility::about(incident.pupils.iter().map(|(id, r)| (*id, r.as_str())))
        .into_iter()
        .filter_map(|id| directory.pupil(id))
        .collect();
    // An unreadable stored visibility is treated as the narrowest: the DSL team only.
    let visibility = Visibility::parse(&incident.visibility).unwrap_or_else(Visibility::dsl_team);
    let pupil_text = if pupils.is_empty() {
        "none named".to_string()
    } else {
        incident
            .pupils
            .iter()
            .filter(|(_, role)| role != "mentioned")
            .filter_map(|(id, role)| directory.pupil(*id).map(|p| (p, role)))
            .map(|(p, role)| {
                let year = p.year_group.map(|y| format!(", Year {y}")).unwrap_or_default();
                format!("{} ({role}{year})", p.initials())
            })
            .collect::<Vec<_>>()
            .join("; ")
    };
    let standing = describe_due(rung.action_due, now);
    let position = rung.rung.saturating_add(1);
    let of = if rung.ladder_len > 0 { format!(" of {}", rung.ladder_len) } else { String::new() };
    let subject = format!("Reminder: Haven incident #{}: {}: outcome {}", incident.id, incident.category, standing);
    let due_local = rung.action_due.with_timezone(&ctx.tz).format("%a %-d %b %Y %H:%M");
    let body = format!(
        "Reminder {position}{of} from Haven for {}: incident #{} still has no outcome recorded.\n\n\
         Category: {}\nPriority: {}\nPupils: {}\nOutcome due: {} ({})\n\n\
         What to do: review the incident in Haven. To record the outcome, reply to this email \
         with a first line starting \"Outcome:\" (for example \"Outcome: NFA\"). Reminders \
         continue up the escalation ladder until an outcome is recorded.\n",
        ctx.school_name, incident.id, incident.category, incident.priority, pupil_text, due_local, standing,
    );
    let mut seen = Vec::new();
    rung.recipients
        .iter()
        .filter(|id| {
            let first = !seen.contains(*id);
            seen.push(**id);
            first
        })
        .filter_map(|id| directory.staff.iter().find(|s| s.id == *id))
        .filter(|s| visibility.allows(s, &pupils) && !s.email().is_empty())
        .map(|s| OutboxRecord {
            purpose: "reminder",
            recipient: s.email().to_string(),
            email_message_id: reminder_message_id(incident.id, rung.rung, s.id, ctx.mail_domain),
            subject: subject.clone(),
            body: body.clone(),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::directory::{Role, Staff};
    use chrono::TimeZone;

    fn staff(id: i64, roles: &[Role], active: bool) -> Staff {
        Staff {
            id,
            emails: vec![format!("s{id}@school.example")],
            first_name: "Sam".into(),
            last_name: "Staff".into(),
            roles: roles.to_vec(),
            house: None,
            tutor_group: None,
            active,
        }
    }

    #[test]
    fn only_active_staff_who_may_see_it_are_reminded_once_each() {
        let jane = Pupil {
            id: 1,
            upn: "U1".into(),
            first_name: "Jane".into(),
            last_name: "Smith".into(),
            preferred_name: None,
            date_of_birth: None,
            year_group: Some(9),
            tutor_group: None,
            house: None,
            sen: false,
            left_on: None,
        };
        let staff = vec![staff(1, &[Role::Dsl], true), staff(2, &[Role::Teacher], true), staff(3, &[Role::Dsl], false)];
        let directory = Directory::new(vec![jane], staff, vec![]);
        let now = Utc.with_ymd_and_hms(2026, 11, 5, 9, 0, 0).single().unwrap_or_default();
        let rung = DueRung {
            action_id: 4,
            rung: 1,
            incident_id: 12,
            due: now,
            recipients: vec![1, 1, 2, 3],
            action_due: now - chrono::Duration::days(2),
            ladder_len: 3,
        };
        let facts = IncidentFacts {
            id: 12,
            category: "Safeguarding".into(),
            priority: "urgent".into(),
            visibility: "dsl-team".into(),
            pupils: vec![(1, "subject".into())],
        };
        let ctx = ReminderContext { school_name: "Eaton", mail_domain: "school.example", tz: chrono_tz::Europe::London };
        let out = reminders_for(&rung, &facts, &directory, &ctx, now);
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].recipient, "s1@school.example");
        assert_eq!(out[0].email_message_id, "haven.12.rung1.1@school.example");
        assert!(out[0].body.contains("JS (subject, Year 9)") && out[0].body.contains("2 days overdue"), "{}", out[0].body);
        assert!(out[0].body.contains("Reminder 2 of 3"));
        assert!(!out[0].body.contains("Jane"));
    }
}
