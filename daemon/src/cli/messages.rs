//! `haven messages [--state S] [--json]`: every received message and its recorded state and
//! reason: what a technician reads when `status` shows quarantined or awaiting-triage mail.
//! `haven messages release ID --by STAFF --reason TEXT`: a member of the DSL team releases a
//! quarantined message, which is filed as if its sender check had passed.

use super::CliError;
use crate::pipeline::{Filer, ReleaseError};
use crate::store::{MessageState, Store};
use serde_json::json;

pub async fn run(store: &Store, state: Option<&str>, as_json: bool) -> Result<String, CliError> {
    let state = match state {
        Some(s) => Some(MessageState::parse(s).ok_or_else(|| {
            let all: Vec<&str> = MessageState::ALL.iter().map(|m| m.as_str()).collect();
            CliError::Usage(format!("unknown state {s:?} (one of {})", all.join(", ")))
        })?),
        None => None,
    };
    let rows = store.messages(state).await?;
    if as_json {
        let v: Vec<_> = rows
            .iter()
            .map(|m| {
                json!({
                    "id": m.id,
                    "state": m.state.as_str(),
                    "reason": m.reason,
                    "source": m.source,
                    "released_by": m.released_by,
                    "released_at": m.released_at.map(|t| t.to_rfc3339()),
                })
            })
            .collect();
        return Ok(serde_json::to_string_pretty(&v).unwrap_or_default());
    }
    Ok(rows
        .iter()
        .map(|m| {
            let state = if m.released_by.is_some() { format!("{} (released)", m.state.as_str()) } else { m.state.as_str().to_string() };
            format!("{:>6}  {:<27} {:<8} {}", m.id, state, m.source, m.reason)
        })
        .collect::<Vec<_>>()
        .join("\n"))
}

/// `haven messages release`: exit 2 when the command may not do it (not the DSL team, not
/// quarantined, no reason), 65 when the message cannot be filed (not held, unreadable, or
/// quarantined again by the pipeline).
pub async fn release(filer: &Filer, id: i64, by: &str, reason: &str) -> Result<String, CliError> {
    match filer.release(id, by, reason).await {
        Ok(r) => Ok(match r.incident {
            Some(incident) => format!("message {id} released: {} as incident #{incident}", r.state.as_str()),
            None => format!("message {id} released: {} ({})", r.state.as_str().replace('_', " "), r.reason),
        }),
        Err(e @ (ReleaseError::NotHeld(_) | ReleaseError::Unreadable { .. } | ReleaseError::QuarantinedAgain { .. })) => {
            Err(CliError::Data(e.to_string()))
        }
        Err(ReleaseError::Store(e)) => Err(e.into()),
        Err(e) => Err(CliError::Usage(e.to_string())),
    }
}
