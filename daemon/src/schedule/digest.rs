//! What one member of staff's digest says. Pure: given the facts read from the store, decides
//! the content for one recipient, applying THE visibility rule ([`Visibility::allows`]).
//!
//! A digest carries minimal detail: incident number, category, pupil initials and year group,
//! how overdue an outcome is. Never a pupil's name, a sender, a subject or any message text —
//! except that when `alerts.detail` is above minimal, a new incident's AI suggestion (its risk
//! and two-sentence summary, labelled as a suggestion with the model's name) is shown under it.

use super::due::describe_due;
use crate::directory::{Directory, Pupil, Role, Staff};
use crate::store::{OpenAction, RecordedIncident};
use crate::visibility::Visibility;
use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use std::fmt::Write as _;

/// Everything a digest may draw on, read once per slot and shared by its recipients.
#[derive(Debug, Clone, Copy)]
pub struct DigestFacts<'a> {
    pub school_name: &'a str,
    /// The school's time zone, for the times shown.
    pub tz: Tz,
    /// The slot this digest is for; "now" for how overdue things are.
    pub slot: DateTime<Utc>,
    /// The slot of the recipient's previous digest; None for their first, which covers
    /// everything since records began.
    pub since: Option<DateTime<Utc>>,
    /// Incidents recorded since the recipient's previous digest, oldest first.
    pub new_incidents: &'a [RecordedIncident],
    /// Actions waiting for an outcome (any order: the digest sorts them).
    pub open_actions: &'a [OpenAction],
    pub awaiting_triage: u64,
    pub quarantined: u64,
    /// Emails given up on since the previous digest.
    pub dead_lettered: u64,
    /// Historical messages (a backfill) filed since the previous digest, without alerts.
    pub historical: u64,
    pub directory: &'a Directory,
    /// Incident id → its AI suggestion as one line (empty unless `alerts.detail` is above
    /// minimal).
    pub ai_suggestions: &'a std::collections::HashMap<i64, String>,
    /// The audit chain's head (entries, newest MAC) when the digest was written.
    pub audit_head: Option<(i64, &'a str)>,
}

/// One incident line: what minimal detail allows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IncidentLine {
    pub incident: i64,
    pub category: String,
    /// "JS (Year 9)" per pupil.
    pub pupils: Vec<String>,
    pub recorded: DateTime<Utc>,
    /// "AI suggestion (MODEL): risk high. Summary." when the school's detail allows.
    pub ai: Option<String>,
}

/// One outcome still awaited.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutstandingLine {
    pub incident: i64,
    pub category: String,
    pub pupils: Vec<String>,
    pub due: DateTime<Utc>,
    /// "3 days overdue" or "due in 5 hours", at the digest's slot.
    pub standing: String,
}

/// One recipient's digest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DigestContent {
    pub new_incidents: Vec<IncidentLine>,
    /// Oldest due first.
    pub outstanding: Vec<OutstandingLine>,
    pub awaiting_triage: u64,
    pub quarantined: u64,
    pub dead_lettered: u64,
    /// Historical messages filed without alerts: told to the DSL team only, as a count.
    pub historical: u64,
}

/// The active staff a digest's `to` names: everyone holding `role:NAME`, or the one member of
/// staff with that address. Unknown roles and addresses name nobody.
pub fn recipients<'a>(to: &str, directory: &'a Directory) -> Vec<&'a Staff> {
    match to.trim().strip_prefix("role:") {
        Some(role) => match Role::parse(role) {
            Some(r) => directory.staff_with_role(r).collect(),
            None => Vec::new(),
        },
        None => directory.active_staff_by_email(to.trim()).into_iter().collect(),
    }
}

/// What `staff` may be told at `facts.slot`.
pub fn digest_for(staff: &Staff, facts: &DigestFacts<'_>) -> DigestContent {
    let dir = facts.directory;
    let pupils_of = |ids: &[i64]| -> Vec<&Pupil> { ids.iter().filter_map(|id| dir.pupil(*id)).collect() };
    let may_see = |visibility: &str, pupils: &[&Pupil]| {
        // An unreadable stored visibility is treated as the narrowest: the DSL team only.
        Visibility::parse(visibility).unwrap_or_else(Visibility::dsl_team).allows(staff, pupils)
    };
    let new_incidents = facts
        .new_incidents
        .iter()
        .filter_map(|i| {
            let pupils = pupils_of(&i.pupils);
            may_see(&i.visibility, &pupils).then(|| IncidentLine {
                incident: i.id,
                category: i.category.clone(),
                pupils: pupils.iter().map(|p| pupil_label(p)).collect(),
                recorded: i.recorded,
                ai: facts.ai_suggestions.get(&i.id).cloned(),
            })
        })
        .collect();
    let mut outstanding: Vec<OutstandingLine> = facts
        .open_actions
        .iter()
        .filter_map(|a| {
            let pupils = pupils_of(&a.pupils);
            may_see(&a.visibility, &pupils).then(|| OutstandingLine {
                incident: a.incident_id,
                category: a.category.clone(),
                pupils: pupils.iter().map(|p| pupil_label(p)).collect(),
                due: a.due,
                standing: describe_due(a.due, facts.slot),
            })
        })
        .collect();
    outstanding.sort_by_key(|o| (o.due, o.incident));
    DigestContent {
        new_incidents,
        outstanding,
        awaiting_triage: facts.awaiting_triage,
        quarantined: facts.quarantined,
        dead_lettered: facts.dead_lettered,
        historical: if staff.is_dsl_team() { facts.historical } else { 0 },
    }
}

/// "JS (Year 9)": initials and year group, never a name.
fn pupil_label(p: &Pupil) -> String {
    match p.year_group {
        Some(y) => format!("{} (Year {y})", p.initials()),
        None => p.initials(),
    }
}

impl DigestContent {
    /// Nothing to report: such a digest is sent only when the school asks for empty ones.
    pub fn is_empty(&self) -> bool {
        self.new_incidents.is_empty()
            && self.outstanding.is_empty()
            && self.awaiting_triage == 0
            && self.quarantined == 0
            && self.dead_lettered == 0
            && self.historical == 0
    }

    /// Outcomes already past their due time at `slot`.
    pub fn overdue_count(&self, slot: DateTime<Utc>) -> usize {
        self.outstanding.iter().filter(|o| o.due < slot).count()
    }

    pub fn subject(&self, facts: &DigestFacts<'_>) -> String {
        format!(
            "Haven digest for {}: {} new, {} outcomes outstanding ({} overdue)",
            facts.school_name,
            self.new_incidents.len(),
            self.outstanding.len(),
            self.overdue_count(facts.slot)
        )
    }

    pub fn body(&self, facts: &DigestFacts<'_>) -> String {
        let when = |t: DateTime<Utc>| t.with_timezone(&facts.tz).format("%a %-d %b %Y %H:%M").to_string();
        let pupils = |p: &[String]| if p.is_empty() { "no pupil named".to_string() } else { p.join(", ") };
        let mut b = format!("Haven digest for {}, {}.\n\n", facts.school_name, when(facts.slot));
        let since = match facts.since {
            Some(t) => format!("since your last digest ({})", when(t)),
            None => "since records began (your first digest)".to_string(),
        };
        let _ = writeln!(b, "New incidents {since}: {}", self.new_incidents.len());
        for i in &self.new_incidents {
            let _ = writeln!(b, "  #{} {}: {}; recorded {}", i.incident, i.category, pupils(&i.pupils), when(i.recorded));
            if let Some(ai) = &i.ai {
                let _ = writeln!(b, "      {ai}");
            }
        }
        let _ = writeln!(b, "\nOutcomes outstanding, oldest first: {}", self.outstanding.len());
        for o in &self.outstanding {
            let _ = writeln!(b, "  #{} {}: {}; due {}, {}", o.incident, o.category, pupils(&o.pupils), when(o.due), o.standing);
        }
        let _ = writeln!(b, "\nMessages awaiting triage: {}", self.awaiting_triage);
        let _ = writeln!(b, "Messages quarantined: {}", self.quarantined);
        let _ = writeln!(b, "Emails dead-lettered {since}: {}", self.dead_lettered);
        if self.historical > 0 {
            let _ = writeln!(
                b,
                "\n{} historical messages filed, no alerts sent ({since}): each is on its pupils' chronologies.",
                self.historical
            );
        }
        if let Some((entries, mac)) = &facts.audit_head {
            let _ = writeln!(
                b,
                "\nAudit log: {entries} entries, newest {}. Keep this email: should the log ever be cut short, \
                 this line shows how long it was.",
                &mac[..mac.len().min(16)]
            );
        }
        b.push_str(
            "\nTo record outcomes, reply to this digest with one line per incident, such as \
             \"Outcome #24: NFA\"; you get a one-line answer saying what was recorded. You can also \
             reply to the incident's alert or reminder with a first line starting \"Outcome:\", \
             or run `haven outcome INCIDENT \"text\" --by YOU`.\n",
        );
        b
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn staff(id: i64, roles: &[Role]) -> Staff {
        Staff {
            id,
            emails: vec![format!("s{id}@school.example")],
            first_name: "Sam".into(),
            last_name: "Staff".into(),
            roles: roles.to_vec(),
            house: None,
            tutor_group: None,
            active: true,
        }
    }

    fn pupil(id: i64) -> Pupil {
        Pupil {
            id,
            upn: format!("U{id}"),
            first_name: "Jane".into(),
            last_name: "Smith".into(),
            preferred_name: None,
            date_of_birth: None,
            year_group: Some(9),
            tutor_group: None,
            house: None,
            sen: false,
            left_on: None,
        }
    }

    fn t(d: u32, h: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, d, h, 0, 0).single().unwrap_or_default()
    }

    fn action(incident: i64, due: DateTime<Utc>, visibility: &str) -> OpenAction {
        OpenAction {
            action_id: incident,
            incident_id: incident,
            owner: None,
            owner_name: None,
            created: t(1, 0),
            due,
            category: "Pastoral issue".into(),
            priority: "normal".into(),
            visibility: visibility.into(),
            pupils: vec![1],
        }
    }

    #[test]
    fn dsl_only_incidents_reach_only_the_dsl_team_and_nothing_names_a_pupil() {
        let directory = Directory::new(vec![pupil(1)], vec![staff(1, &[Role::Dsl]), staff(2, &[Role::Slt])], vec![]);
        let incidents = vec![
            RecordedIncident {
                id: 7,
                recorded: t(9, 10),
                category: "DSL Team Access Only".into(),
                priority: "urgent".into(),
                visibility: "dsl-team".into(),
                pupils: vec![1],
            },
            RecordedIncident {
                id: 8,
                recorded: t(9, 11),
                category: "Behaviour".into(),
                priority: "normal".into(),
                visibility: "dsl-team,slt".into(),
                pupils: vec![1],
            },
        ];
        let actions = vec![action(3, t(8, 9), "slt"), action(2, t(5, 9), "slt"), action(4, t(9, 9), "dsl-team")];
        let facts = DigestFacts {
            audit_head: None,
            school_name: "Eaton",
            tz: chrono_tz::Europe::London,
            slot: t(10, 7),
            since: Some(t(9, 7)),
            new_incidents: &incidents,
            open_actions: &actions,
            awaiting_triage: 1,
            quarantined: 0,
            dead_lettered: 0,
            historical: 0,
            directory: &directory,
            ai_suggestions: &std::collections::HashMap::new(),
        };
        let dsl = digest_for(&directory.staff[0], &facts);
        let slt = digest_for(&directory.staff[1], &facts);
        assert_eq!(dsl.new_incidents.iter().map(|i| i.incident).collect::<Vec<_>>(), vec![7, 8]);
        assert_eq!(slt.new_incidents.iter().map(|i| i.incident).collect::<Vec<_>>(), vec![8]);
        assert_eq!(dsl.outstanding.iter().map(|o| o.incident).collect::<Vec<_>>(), vec![2, 3, 4], "oldest first");
        assert_eq!(slt.outstanding.iter().map(|o| o.incident).collect::<Vec<_>>(), vec![2, 3]);
        assert_eq!(dsl.outstanding[0].standing, "4 days overdue");
        let body = dsl.body(&facts);
        assert!(body.contains("#7 DSL Team Access Only: JS (Year 9)"), "{body}");
        assert!(!body.contains("Jane") && !body.contains("Smith"), "no pupil names: {body}");
        assert!(!slt.body(&facts).contains("#7"));
    }

    #[test]
    fn role_and_address_recipients() {
        let mut off = staff(3, &[Role::Dsl]);
        off.active = false;
        let directory = Directory::new(vec![], vec![staff(1, &[Role::Dsl]), staff(2, &[Role::Ddsl]), off], vec![]);
        assert_eq!(recipients("role:dsl", &directory).iter().map(|s| s.id).collect::<Vec<_>>(), vec![1]);
        assert_eq!(recipients("S2@school.example", &directory).iter().map(|s| s.id).collect::<Vec<_>>(), vec![2]);
        assert!(recipients("role:wizard", &directory).is_empty());
        assert!(recipients("s3@school.example", &directory).is_empty(), "inactive staff get no digest");
    }

    #[test]
    fn nothing_to_report_is_empty() {
        let directory = Directory::default();
        let facts = DigestFacts {
            audit_head: None,
            school_name: "Eaton",
            tz: chrono_tz::Europe::London,
            slot: t(10, 7),
            since: Some(t(9, 7)),
            new_incidents: &[],
            open_actions: &[],
            awaiting_triage: 0,
            quarantined: 0,
            dead_lettered: 0,
            historical: 0,
            directory: &directory,
            ai_suggestions: &std::collections::HashMap::new(),
        };
        assert!(digest_for(&staff(1, &[Role::Dsl]), &facts).is_empty());
        let facts = DigestFacts { quarantined: 2, ..facts };
        assert!(!digest_for(&staff(1, &[Role::Dsl]), &facts).is_empty());
    }

    #[test]
    fn historical_messages_are_counted_for_the_dsl_team_only() {
        let directory = Directory::new(vec![], vec![staff(1, &[Role::Dsl]), staff(2, &[Role::Slt])], vec![]);
        let facts = DigestFacts {
            audit_head: None,
            school_name: "Eaton",
            tz: chrono_tz::Europe::London,
            slot: t(10, 7),
            since: Some(t(9, 7)),
            new_incidents: &[],
            open_actions: &[],
            awaiting_triage: 0,
            quarantined: 0,
            dead_lettered: 0,
            historical: 412,
            directory: &directory,
            ai_suggestions: &std::collections::HashMap::new(),
        };
        let dsl = digest_for(&directory.staff[0], &facts);
        assert!(!dsl.is_empty(), "a backfill alone is worth a digest");
        assert!(dsl.body(&facts).contains("412 historical messages filed, no alerts sent"), "{}", dsl.body(&facts));
        let slt = digest_for(&directory.staff[1], &facts);
        assert!(slt.is_empty() && !slt.body(&facts).contains("historical"), "{}", slt.body(&facts));
    }

    #[test]
    fn the_digest_carries_the_audit_chains_head() {
        let directory = Directory::new(vec![], vec![staff(1, &[Role::Dsl])], vec![]);
        let facts = DigestFacts {
            audit_head: Some((1234, "0123456789abcdef0123456789abcdef")),
            school_name: "Eaton",
            tz: chrono_tz::Europe::London,
            slot: t(10, 7),
            since: None,
            new_incidents: &[],
            open_actions: &[],
            awaiting_triage: 0,
            quarantined: 1,
            dead_lettered: 0,
            historical: 0,
            directory: &directory,
            ai_suggestions: &std::collections::HashMap::new(),
        };
        let digest = digest_for(&staff(1, &[Role::Dsl]), &facts);
        assert!(digest.body(&facts).contains("Audit log: 1234 entries, newest 0123456789abcdef."), "{}", digest.body(&facts));
    }
}
