//! The exported chronology as one typed model: the cover (the pupil, the school, who exported
//! it, when, the export id and the manifest's hash) and every entry with everything on it, its
//! times already in the school's zone. The PDF template reads it as JSON; nothing else decides
//! what an export shows.
//!
//! Pure: built from an opened [`Chronology`] and facts the caller loaded; no store, no clock.

use super::chronology::{Chronology, Entry, pupils_line};
use crate::directory::Staff;
use crate::store::{Hold, HoldOn, SentAbout};
use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use serde::Serialize;

#[derive(Debug, Clone, Serialize)]
pub struct ExportDoc {
    pub school: String,
    /// Names this export in the audit log (`export`, detail `id=…`) and on every page.
    pub export_id: String,
    pub exported_at: String,
    /// "Dana Lead <dsl@school.example>": the exporter, whose view this is.
    pub exported_by: String,
    /// SHA-256 of the bundle's `MANIFEST.sha256`, which lists every file but the PDF itself;
    /// none for an HTML bundle, whose manifest lists the HTML.
    pub manifest_sha256: Option<String>,
    /// "4 incidents, 1 follow-up".
    pub counts: String,
    /// The standing holds on this pupil or an exported entry: "Hold #3 on this pupil since
    /// 2026-12-01 (police), set by Dana Lead". Nothing they cover may be disposed of.
    pub holds: Vec<String>,
    pub pupil: CoverPupil,
    pub entries: Vec<EntryDoc>,
}

/// The cover's pupil details; a missing value reads "not recorded".
#[derive(Debug, Clone, Serialize)]
pub struct CoverPupil {
    pub upn: String,
    pub name: String,
    pub preferred_name: Option<String>,
    pub date_of_birth: String,
    pub year_group: String,
    pub form: String,
    pub house: String,
    /// "On roll", or "Left on 2026-07-20".
    pub roll: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct EntryDoc {
    pub incident: i64,
    /// "#12 · 2026-11-16 14:05 · bullying"
    pub title: String,
    pub kind: String,
    pub category: String,
    pub priority: String,
    /// This pupil's role on the entry.
    pub role: String,
    pub occurred_at: String,
    /// "2026-11-16 14:07 by Dana Lead"
    pub recorded: String,
    /// The incident this entry follows up.
    pub follows: Option<i64>,
    /// "Amira Khan (subject), Grace Okafor (witness)"
    pub pupils: String,
    pub date_note: Option<String>,
    pub category_note: Option<String>,
    /// The recorder's own words.
    pub note: Option<String>,
    pub original: Option<OriginalDoc>,
    pub attachments: Vec<AttachmentDoc>,
    pub alerted: Vec<AlertedDoc>,
    /// The follow-ups on this incident that are in the export.
    pub follow_ups: Vec<i64>,
    pub outcome: Option<OutcomeDoc>,
    /// The AI model's suggestion, when it read the entry.
    pub ai: Option<AiDoc>,
}

/// An AI suggestion, labelled as one with the model's name, as the console shows it.
#[derive(Debug, Clone, Serialize)]
pub struct AiDoc {
    /// "AI suggestion (MODEL) — a suggestion, not a decision"
    pub label: String,
    pub risk: String,
    /// The school's category suggested, or "none of the school's".
    pub category: String,
    pub summary: Option<String>,
    /// Quotes from the text.
    pub reasons: Vec<String>,
    /// "Jane Smith, Oliver Brown": only in the DSL team's view (the chronology leaves them out
    /// for anyone else); none when empty.
    pub pupils: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct OriginalDoc {
    /// "Rukhsana Khan <r.khan@example.net>"
    pub from: Option<String>,
    pub sent: String,
    pub subject: Option<String>,
    pub text: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct AttachmentDoc {
    pub name: String,
    pub sha256: String,
    /// Where the bundle holds it: `attachments/12-ab12cd34ef56-drawing.png`.
    pub path: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct AlertedDoc {
    /// The member of staff's name, or the address when it is nobody on the directory.
    pub who: String,
    /// alert, reminder, digest, …
    pub purpose: String,
    /// sent, pending, failed
    pub state: String,
    pub when: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct OutcomeDoc {
    /// `REFERRED-CSC`, `NFA`, …: the decision, when the text starts with one.
    pub code: Option<String>,
    pub text: String,
    pub by: String,
    pub at: String,
}

/// What the caller loaded for one entry besides the chronology: its attachments and the emails
/// Haven queued about it.
#[derive(Debug, Clone, Default)]
pub struct EntryFacts {
    pub attachments: Vec<AttachmentDoc>,
    pub sent: Vec<SentAbout>,
}

/// Everything about the export itself.
pub struct ExportMeta<'a> {
    pub school: &'a str,
    pub export_id: &'a str,
    pub exporter: &'a Staff,
    pub manifest_sha256: Option<&'a str>,
    pub tz: Tz,
    pub now: DateTime<Utc>,
    /// Finds a member of staff's name by address.
    pub staff: &'a [Staff],
    /// The standing holds on the pupil and on the exported entries.
    pub holds: &'a [Hold],
}

impl ExportDoc {
    /// `facts` holds one item per entry of `chronology.incidents`, in the same order.
    pub fn build(chronology: &Chronology, facts: &[EntryFacts], meta: &ExportMeta<'_>) -> ExportDoc {
        let at = |t: &DateTime<Utc>| t.with_timezone(&meta.tz).format("%Y-%m-%d %H:%M").to_string();
        let p = &chronology.pupil;
        let or_not = |v: Option<&str>| v.map_or_else(|| "not recorded".to_string(), str::to_string);
        let follow_ups = chronology.incidents.iter().filter(|e| e.follows.is_some()).count();
        let incidents = chronology.incidents.len() - follow_ups;
        let staff_name = |address: &str| {
            meta.staff
                .iter()
                .find(|s| s.emails.iter().any(|e| e.eq_ignore_ascii_case(address)))
                .map_or_else(|| address.to_string(), |s| format!("{} {}", s.first_name, s.last_name))
        };
        let empty = EntryFacts::default();
        let entries =
            chronology.incidents.iter().enumerate().map(|(i, e)| entry(e, facts.get(i).unwrap_or(&empty), &at, &staff_name)).collect();
        ExportDoc {
            school: meta.school.to_string(),
            export_id: meta.export_id.to_string(),
            exported_at: format!("{} ({})", at(&meta.now), meta.tz.name()),
            exported_by: format!("{} {} <{}>", meta.exporter.first_name, meta.exporter.last_name, meta.exporter.email()),
            manifest_sha256: meta.manifest_sha256.map(str::to_string),
            counts: format!("{} {}, {} {}", incidents, plural(incidents, "incident"), follow_ups, plural(follow_ups, "follow-up")),
            holds: hold_lines(meta, &chronology.incidents.iter().map(|e| e.incident).collect::<Vec<_>>()),
            pupil: CoverPupil {
                upn: p.upn.clone(),
                name: p.name.clone(),
                preferred_name: p.preferred_name.clone(),
                date_of_birth: or_not(p.date_of_birth.as_deref()),
                year_group: p.year_group.map_or_else(|| "not recorded".to_string(), |y| y.to_string()),
                form: or_not(p.tutor_group.as_deref()),
                house: or_not(p.house.as_deref()),
                roll: match (p.on_roll, &p.left_on) {
                    (true, _) => "On roll".to_string(),
                    (false, Some(d)) => format!("Left on {d}"),
                    (false, None) => "Left (date not recorded)".to_string(),
                },
            },
            entries,
        }
    }
}

/// One line per standing hold on the pupil or on an entry in the export (a hold on an entry the
/// exporter may not see is left out, like the entry). The hold's note is not shown: it can name
/// an investigation; `haven holds` shows it to those who manage holds.
pub fn hold_lines(meta: &ExportMeta<'_>, exported: &[i64]) -> Vec<String> {
    meta.holds
        .iter()
        .filter(|h| matches!(h.on, HoldOn::Pupil(_)) || matches!(h.on, HoldOn::Incident(i) if exported.contains(&i)))
        .map(|h| {
            let on = match h.on {
                HoldOn::Pupil(_) => "this pupil".to_string(),
                HoldOn::Incident(i) => format!("incident #{i}"),
            };
            let by = meta
                .staff
                .iter()
                .find(|s| s.id == h.set_by)
                .map_or_else(String::new, |s| format!(", set by {} {}", s.first_name, s.last_name));
            format!("Hold #{} on {on} since {} ({}){by}", h.id, h.set_at.with_timezone(&meta.tz).format("%Y-%m-%d"), h.reason)
        })
        .collect()
}

fn plural(n: usize, word: &str) -> String {
    if n == 1 { word.to_string() } else { format!("{word}s") }
}

fn entry(e: &Entry, facts: &EntryFacts, at: &dyn Fn(&DateTime<Utc>) -> String, staff_name: &dyn Fn(&str) -> String) -> EntryDoc {
    let original = (e.original_sender().is_some() || e.original_text().is_some()).then(|| OriginalDoc {
        from: e.original_sender(),
        sent: at(&e.occurred_at),
        subject: e.original_subject.clone(),
        text: e.original_text().map(str::to_string),
    });
    EntryDoc {
        incident: e.incident,
        title: format!("#{} · {} · {}", e.incident, at(&e.occurred_at), e.category),
        kind: e.kind_label.clone(),
        category: e.category.clone(),
        priority: e.priority.clone(),
        role: e.role.clone(),
        occurred_at: at(&e.occurred_at),
        recorded: format!("{} by {}", at(&e.recorded_at), e.recorded_by.as_deref().unwrap_or("unknown")),
        follows: e.follows,
        pupils: pupils_line(&e.pupils),
        date_note: e.date_note.as_ref().map(|d| format!("{d}; dated when filed")),
        category_note: e.category_note.clone(),
        note: e.own_words().map(str::to_string),
        original,
        attachments: facts.attachments.clone(),
        alerted: facts
            .sent
            .iter()
            .map(|m| AlertedDoc { who: staff_name(&m.recipient), purpose: m.purpose.clone(), state: m.state.clone(), when: at(&m.created) })
            .collect(),
        follow_ups: e.follow_ups.clone(),
        outcome: e.outcome.as_ref().map(|o| OutcomeDoc {
            code: e.outcome_code.clone(),
            text: o.clone(),
            by: e.outcome_by.clone().unwrap_or_else(|| "unknown".to_string()),
            at: e.outcome_at.as_ref().map_or_else(|| "time not recorded".to_string(), at),
        }),
        ai: e.ai_suggestion.as_ref().map(|ai| AiDoc {
            label: format!("{} — a suggestion, not a decision", ai.label),
            risk: ai.suggestion.risk.as_str().to_string(),
            category: ai.suggestion.category.clone().unwrap_or_else(|| "none of the school's".to_string()),
            summary: Some(ai.suggestion.summary.clone()).filter(|s| !s.is_empty()),
            reasons: ai.suggestion.reasons.clone(),
            pupils: Some(ai.pupil_names.join(", ")).filter(|p| !p.is_empty()),
        }),
    }
}
