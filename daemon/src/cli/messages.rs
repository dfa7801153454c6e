//! `haven messages [--state S] [--json]`: every received message and its recorded state and
//! reason: what a technician reads when `status` shows quarantined or awaiting-triage mail.

use super::CliError;
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
            .map(|m| json!({"id": m.id, "state": m.state.as_str(), "reason": m.reason, "source": m.source}))
            .collect();
        return Ok(serde_json::to_string_pretty(&v).unwrap_or_default());
    }
    Ok(rows.iter().map(|m| format!("{:>6}  {:<16} {:<8} {}", m.id, m.state.as_str(), m.source, m.reason)).collect::<Vec<_>>().join("\n"))
}
