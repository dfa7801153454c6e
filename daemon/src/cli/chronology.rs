//! `haven chronology PUPIL [--as STAFF] [--json]`: a pupil's incidents in occurred-at order.
//! With `--as`, only what that member of staff may see (the one visibility rule in
//! `crate::visibility`); every view is written to the audit log.

use super::CliError;
use crate::directory::{Directory, Pupil};
use crate::store::{ChronologyEntry, Store};
use crate::pipeline::fields;
use crate::seal::Sealer;
use crate::visibility::Visibility;
use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use serde_json::json;

/// Finds a pupil by UPN or by name ("Jane Smith", preferred names too), case-insensitive.
pub fn find_pupil<'a>(dir: &'a Directory, query: &str) -> Result<&'a Pupil, CliError> {
    let q = query.trim().to_lowercase();
    if let Some(p) = dir.pupils.iter().find(|p| p.upn.to_lowercase() == q) {
        return Ok(p);
    }
    let matches: Vec<&Pupil> = dir
        .pupils
        .iter()
        .filter(|p| {
            let last = p.last_name.to_lowercase();
            let firsts = [Some(&p.first_name), p.preferred_name.as_ref()];
            firsts.iter().flatten().any(|f| format!("{} {last}", f.to_lowercase()) == q)
        })
        .collect();
    match matches.as_slice() {
        [p] => Ok(p),
        [] => Err(CliError::Usage(format!("no pupil matches {query:?} (give a UPN or a full name)"))),
        many => Err(CliError::Usage(format!(
            "{} pupils match {query:?}; give a UPN: {}",
            many.len(),
            many.iter().map(|p| format!("{} (Year {})", p.upn, p.year_group.map_or("?".into(), |y| y.to_string()))).collect::<Vec<_>>().join(", ")
        ))),
    }
}

/// A pupil's chronology as one viewer may see it, opened (decrypted) and audited.
pub struct View {
    pub dir: Directory,
    pub pupil: Pupil,
    pub entries: Vec<ChronologyEntry>,
}

/// Loads the chronology of the pupil `query` names, keeps what `viewer` (a staff email) may see,
/// and writes `audit_action` (chronology_view, export) to the audit log.
pub async fn load_view(
    store: &Store,
    sealer: &Sealer,
    query: &str,
    viewer: Option<&str>,
    audit_action: &str,
    now: DateTime<Utc>,
) -> Result<View, CliError> {
    let dir = store.load_directory(sealer).await?;
    let pupil = find_pupil(&dir, query)?.clone();
    let viewer_staff = match viewer {
        Some(email) => Some(
            dir.active_staff_by_email(email)
                .ok_or_else(|| CliError::Usage(format!("{email} is not an active member of staff")))?
                .clone(),
        ),
        None => None,
    };
    let mut entries = store.chronology(pupil.id).await?;
    for e in &mut entries {
        open_entry(e, sealer)?;
    }
    if let Some(staff) = &viewer_staff {
        entries.retain(|e| {
            let pupils: Vec<&Pupil> = e.pupils.iter().filter_map(|(id, _)| dir.pupil(*id)).collect();
            Visibility::parse(&e.visibility).is_some_and(|v| v.allows(staff, &pupils))
        });
    }
    store
        .audit(now, viewer.unwrap_or("cli"), audit_action, &format!("pupil:{}", pupil.id), &format!("entries={}", entries.len()))
        .await?;
    Ok(View { dir, pupil, entries })
}

pub async fn run(
    store: &Store,
    sealer: &Sealer,
    query: &str,
    viewer: Option<&str>,
    tz: Tz,
    now: DateTime<Utc>,
    as_json: bool,
) -> Result<String, CliError> {
    let View { dir, pupil, entries } = load_view(store, sealer, query, viewer, "chronology_view", now).await?;
    let pupil = &pupil;
    if as_json {
        let v = json!({
            "pupil": {
                "upn": pupil.upn,
                "name": pupil.full_name(),
                "preferred_name": pupil.preferred_name,
                "year_group": pupil.year_group,
                "tutor_group": pupil.tutor_group,
                "house": pupil.house,
                "on_roll": pupil.on_roll(),
            },
            "incidents": entries.iter().map(|e| entry_json(e, &dir)).collect::<Vec<_>>(),
        });
        return Ok(serde_json::to_string_pretty(&v).unwrap_or_default());
    }
    let mut out = format!(
        "{} ({}), Year {}, {}, house {}{}\n{} incident(s)\n",
        pupil.full_name(),
        pupil.upn,
        pupil.year_group.map_or("?".into(), |y| y.to_string()),
        pupil.tutor_group.as_deref().unwrap_or("no tutor group"),
        pupil.house.as_deref().unwrap_or("none"),
        if pupil.on_roll() { String::new() } else { format!(", left {}", pupil.left_on.map(|d| d.to_string()).unwrap_or_default()) },
        entries.len()
    );
    for e in &entries {
        out.push_str(&format!(
            "\n#{} {} — {} ({}, {})\n  recorded {} by {}\n",
            e.incident,
            e.occurred_at.with_timezone(&tz).format("%Y-%m-%d %H:%M"),
            e.category,
            e.role,
            e.priority,
            e.recorded_at.with_timezone(&tz).format("%Y-%m-%d %H:%M"),
            e.recorded_by.as_deref().unwrap_or("unknown"),
        ));
        let others: Vec<String> = e
            .pupils
            .iter()
            .filter(|(id, _)| *id != pupil.id)
            .filter_map(|(id, role)| dir.pupil(*id).map(|p| format!("{} ({role})", p.full_name())))
            .collect();
        if !others.is_empty() {
            out.push_str(&format!("  also: {}\n", others.join(", ")));
        }
        if let Some(from) = &e.original_from {
            out.push_str(&format!("  from: {from}\n"));
        }
        if let Some(s) = &e.original_subject {
            out.push_str(&format!("  subject: {s}\n"));
        }
        if let Some(n) = &e.note {
            out.push_str(&format!("  note: {}\n", n.replace('\n', "\n        ")));
        }
        if !e.attachments.is_empty() {
            out.push_str(&format!("  attachments: {}\n", e.attachments.join(", ")));
        }
        if let Some(o) = &e.outcome {
            out.push_str(&format!("  outcome: {o}\n"));
        }
    }
    Ok(out)
}

pub fn entry_json(e: &ChronologyEntry, dir: &Directory) -> serde_json::Value {
    json!({
        "incident": e.incident,
        "occurred_at": e.occurred_at.to_rfc3339(),
        "recorded_at": e.recorded_at.to_rfc3339(),
        "recorded_by": e.recorded_by,
        "kind": e.record_kind,
        "category": e.category,
        "priority": e.priority,
        "visibility": e.visibility,
        "role": e.role,
        "pupils": e.pupils.iter().map(|(id, role)| json!({
            "upn": dir.pupil(*id).map(|p| p.upn.clone()),
            "name": dir.pupil(*id).map(|p| p.full_name()),
            "role": role,
        })).collect::<Vec<_>>(),
        "note": e.note,
        "original_from": e.original_from,
        "original_subject": e.original_subject,
        "body": e.body,
        "attachments": e.attachments,
        "outcome": e.outcome,
    })
}

/// Opens the sealed fields of an entry.
fn open_entry(e: &mut ChronologyEntry, sealer: &Sealer) -> Result<(), CliError> {
    let open = |field: &str, v: &str| sealer.open_text(field, v).map_err(|err| CliError::Other(anyhow::anyhow!("incident {}: {err}", e.incident)));
    let note = e.note.as_deref().map(|n| open(fields::NOTE, n)).transpose()?;
    let subject = e.original_subject.as_deref().map(|s| open(fields::SUBJECT, s)).transpose()?;
    let body = open(fields::BODY_TEXT, &e.body)?;
    // Sealed since migration 0007; older rows may still hold clear text.
    let open_new = |field: &str, v: &str| {
        crate::blind::open_or_clear(sealer, field, v).map_err(|err| CliError::Other(anyhow::anyhow!("incident {}: {err}", e.incident)))
    };
    let from = e.original_from.as_deref().map(|f| open_new(fields::ORIGINAL_FROM, f)).transpose()?;
    let outcome = e.outcome.as_deref().map(|o| open_new(fields::OUTCOME, o)).transpose()?;
    let attachments = e.attachments.iter().map(|a| open_new(fields::FILENAME, a)).collect::<Result<Vec<_>, _>>()?;
    e.note = note;
    e.original_subject = subject;
    e.body = body;
    e.original_from = from;
    e.outcome = outcome;
    e.attachments = attachments;
    Ok(())
}
