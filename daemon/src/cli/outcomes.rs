//! `haven outcomes [--overdue] [--json]`: the outcomes still awaited, oldest due first, with how
//! overdue each is. Incident numbers, categories and owners only: no pupil, no text, so the list
//! is safe for the technician who runs it.

use super::CliError;
use crate::schedule::due::describe_due;
use crate::store::Store;
use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use serde_json::json;
use std::fmt::Write as _;

/// The listing at `now`; times shown in `tz` (JSON times are RFC 3339 UTC). `overdue_only`
/// keeps those already past due.
pub async fn run(store: &Store, now: DateTime<Utc>, tz: Tz, overdue_only: bool, json: bool) -> Result<String, CliError> {
    let mut open = if overdue_only { store.overdue_actions(now).await? } else { store.open_actions().await? };
    open.sort_by_key(|a| (a.due, a.action_id));
    if json {
        let items: Vec<_> = open
            .iter()
            .map(|a| {
                json!({
                    "incident": a.incident_id,
                    "action": a.action_id,
                    "category": a.category,
                    "priority": a.priority,
                    "owner": a.owner_name,
                    "created_at": a.created.to_rfc3339(),
                    "due_at": a.due.to_rfc3339(),
                    "overdue": a.due < now,
                    "standing": describe_due(a.due, now),
                })
            })
            .collect();
        let v = json!({ "outcomes": items });
        return Ok(serde_json::to_string_pretty(&v).unwrap_or_default() + "\n");
    }
    if open.is_empty() {
        return Ok(if overdue_only { "no outcomes overdue\n" } else { "no outcomes outstanding\n" }.to_string());
    }
    let mut out = String::new();
    for a in &open {
        let _ = writeln!(
            out,
            "#{}  {}  owner: {}  due {}  ({})",
            a.incident_id,
            a.category,
            a.owner_name.as_deref().unwrap_or("none"),
            a.due.with_timezone(&tz).format("%a %-d %b %Y %H:%M"),
            describe_due(a.due, now),
        );
    }
    let overdue = open.iter().filter(|a| a.due < now).count();
    let _ = writeln!(out, "{} outstanding, {overdue} overdue", open.len());
    Ok(out)
}
