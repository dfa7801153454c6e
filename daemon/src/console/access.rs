//! The access log (DSL team only): who viewed or downloaded what, per pupil or per member of
//! staff, read from the audit chain (so it is as tamper-evident as the chain), and the "who
//! has viewed this entry" list on an incident. The log of a pupil counts every chronology
//! they are on; opening the access log is itself audited.

use super::routes::{Shared, not_found, render, signed, unavailable};
use super::{State, views};
use crate::directory::Directory;
use crate::store::{AuditEntry, ChronologyEntry, StoreError};
use axum::extract::Query;
use axum::http::HeaderMap;
use axum::response::Response;

/// The audit actions that show a record to someone, and how the log names them.
const ACCESS: [(&str, &str); 8] = [
    ("chronology_view", "read the chronology (CLI)"),
    ("console_chronology_view", "read the chronology"),
    ("console_incident_view", "opened an incident"),
    ("console_message_frame", "read an original message"),
    ("console_attachment_download", "downloaded an attachment"),
    ("export", "exported the chronology"),
    ("console_export_download", "downloaded an export"),
    ("console_message_view", "read a message awaiting triage or quarantined"),
];

/// Rows shown at most on one page of the log.
const LIMIT: i64 = 500;

fn actions() -> Vec<&'static str> {
    ACCESS.iter().map(|(a, _)| *a).collect()
}

fn describe(action: &str) -> String {
    ACCESS.iter().find(|(a, _)| *a == action).map_or_else(|| action.to_string(), |(_, d)| (*d).to_string())
}

/// The member of staff an audit actor names: `staff:ID` (the console) or an address (the CLI).
fn actor_name(dir: &Directory, actor: &str) -> String {
    let found = match actor.strip_prefix("staff:").and_then(|id| id.parse::<i64>().ok()) {
        Some(id) => dir.staff.iter().find(|s| s.id == id),
        None => dir.staff.iter().find(|s| s.emails.iter().any(|e| e.eq_ignore_ascii_case(actor))),
    };
    found.map_or_else(|| actor.to_string(), |s| format!("{} {}", s.first_name, s.last_name))
}

/// What an audit subject names: a pupil (by name and UPN), an incident or a message.
fn subject_name(dir: &Directory, subject: &str) -> String {
    match subject.strip_prefix("pupil:").and_then(|id| id.parse::<i64>().ok()).and_then(|id| dir.pupil(id)) {
        Some(p) => format!("{} ({})", p.full_name(), p.upn),
        None => subject.replace(':', " "),
    }
}

fn row(st: &State, dir: &Directory, e: &AuditEntry) -> views::AccessRow {
    views::AccessRow {
        when: e.at.with_timezone(&st.tz).format("%a %-d %b %Y %H:%M").to_string(),
        who: actor_name(dir, &e.actor),
        what: describe(&e.action),
        which: subject_name(dir, &e.subject),
    }
}

/// Who has seen entry `e`: whoever opened it, its message or its attachments, and whoever
/// read a chronology it is on after it was recorded and may see it.
pub async fn viewers(st: &State, e: &ChronologyEntry, dir: &Directory) -> Result<Vec<views::AccessRow>, StoreError> {
    let mut keys = vec![format!("incident:{}", e.incident)];
    keys.extend(e.pupils.iter().map(|(id, _)| format!("pupil:{id}")));
    let found = st.store.console_audit_matching(&actions(), &keys, false, LIMIT).await?;
    Ok(found
        .iter()
        .filter(|a| {
            let Some(pupil) = a.subject.strip_prefix("pupil:").and_then(|id| id.parse::<i64>().ok()) else { return true };
            let who = match a.actor.strip_prefix("staff:").and_then(|id| id.parse::<i64>().ok()) {
                Some(id) => dir.staff.iter().find(|s| s.id == id),
                None => dir.staff.iter().find(|s| s.emails.iter().any(|x| x.eq_ignore_ascii_case(&a.actor))),
            };
            a.at >= e.recorded_at && who.is_some_and(|s| crate::visibility::may_see_entry(&e.visibility, s, dir, &e.pupils, pupil))
        })
        .map(|a| row(st, dir, a))
        .collect())
}

#[derive(serde::Deserialize)]
pub struct AccessQuery {
    #[serde(default)]
    pupil: String,
    #[serde(default)]
    staff: String,
}

/// `GET /access?pupil=UPN` or `?staff=EMAIL`.
pub async fn access_log(axum::extract::State(st): Shared, headers: HeaderMap, Query(q): Query<AccessQuery>) -> Response {
    let s = match signed(&st, &headers, "ok").await {
        Ok(s) => s,
        Err(r) => return r,
    };
    if !s.staff.is_dsl_team() {
        return not_found().await;
    }
    let (pupil, staff) = (q.pupil.trim(), q.staff.trim());
    let named: &[&str] = if pupil.is_empty() { &[] } else { &[pupil] };
    let Ok(dir) = st.directory_naming(named).await else { return unavailable() };
    let (heading, found) = if !pupil.is_empty() {
        let Ok(p) = crate::cli::chronology::find_pupil(&dir, pupil) else {
            return render(&views::Access {
                pupil: q.pupil.clone(),
                staff: q.staff.clone(),
                heading: format!("No pupil matches {pupil:?}."),
                rows: Vec::new(),
            });
        };
        // The pupil's chronology and every incident on it.
        let mut keys = vec![format!("pupil:{}", p.id)];
        match st.store.chronology_index(p.id).await {
            Ok(entries) => keys.extend(entries.iter().map(|e| format!("incident:{}", e.incident))),
            Err(_) => return unavailable(),
        }
        (
            format!("Who has seen the records of {} ({})", p.full_name(), p.upn),
            st.store.console_audit_matching(&actions(), &keys, false, LIMIT).await,
        )
    } else if !staff.is_empty() {
        let Some(member) = dir.staff.iter().find(|m| m.emails.iter().any(|e| e.eq_ignore_ascii_case(staff))) else {
            return render(&views::Access {
                pupil: q.pupil.clone(),
                staff: q.staff.clone(),
                heading: format!("No member of staff has the address {staff:?}."),
                rows: Vec::new(),
            });
        };
        let mut keys = vec![format!("staff:{}", member.id)];
        keys.extend(member.emails.iter().cloned());
        (
            format!("What {} {} has seen", member.first_name, member.last_name),
            st.store.console_audit_matching(&actions(), &keys, true, LIMIT).await,
        )
    } else {
        (String::new(), Ok(Vec::new()))
    };
    let Ok(found) = found else { return unavailable() };
    let subject = if pupil.is_empty() { format!("staff-query:{}", found.len()) } else { format!("pupil-query:{}", found.len()) };
    let _ = st.audit(st.clock.now(), &format!("staff:{}", s.staff.id), "console_access_log", "console", &subject).await;
    // The pupils the rows name, opened for their names (and only they).
    let mut ids: Vec<i64> = found.iter().filter_map(|e| e.subject.strip_prefix("pupil:")?.parse().ok()).collect();
    ids.sort_unstable();
    ids.dedup();
    let Ok(dir) = st.directory_with_pupils(&ids).await else { return unavailable() };
    let rows = found.iter().map(|e| row(&st, &dir, e)).collect();
    render(&views::Access { pupil: q.pupil, staff: q.staff, heading, rows })
}
