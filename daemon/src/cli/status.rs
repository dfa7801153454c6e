//! `haven status`: what a technician checks first.

use super::CliError;
use crate::store::{MessageState, Store};
use chrono::{DateTime, Utc};
use serde_json::json;

pub async fn run(store: &Store, intake_source: &str, now: DateTime<Utc>, as_json: bool) -> Result<String, CliError> {
    let s = store.status(now).await?;
    let n = |st: MessageState| s.messages.get(&st).copied().unwrap_or(0);
    let last = s.last_filed_at.map(|t| t.to_rfc3339());
    let leader = match store.backend() {
        "postgres" => store.leader_lease().await?,
        _ => None,
    };
    if as_json {
        let v = json!({
            "messages": {
                "filed": n(MessageState::Filed),
                "awaiting_triage": n(MessageState::AwaitingTriage),
                "quarantined": n(MessageState::Quarantined),
                "duplicate": n(MessageState::Duplicate),
                "ignored": n(MessageState::Ignored),
            },
            "incidents": s.incidents,
            "outbox": {"pending": s.outbox_pending, "sent": s.outbox_sent, "dead": s.outbox_dead},
            "outcomes": {"open": s.outcomes_open, "overdue": s.outcomes_overdue},
            "intake": {"source": intake_source, "last_filed_at": last},
            "database": store.backend(),
            "leader": leader.as_ref().map(|l| json!({"holder": l.holder, "term": l.term, "held": l.is_held(), "expires_at": l.expires.to_rfc3339()})),
        });
        return Ok(serde_json::to_string_pretty(&v).unwrap_or_default());
    }
    Ok(format!(
        "messages: {} filed, {} awaiting triage, {} quarantined, {} duplicate, {} ignored\n\
         incidents: {}\n\
         outbox: {} pending, {} sent, {} dead\n\
         outcomes: {} open, {} overdue\n\
         intake: {} (last filed {})\n\
         database: {}\n\
         leader: {}\n",
        n(MessageState::Filed),
        n(MessageState::AwaitingTriage),
        n(MessageState::Quarantined),
        n(MessageState::Duplicate),
        n(MessageState::Ignored),
        s.incidents,
        s.outbox_pending,
        s.outbox_sent,
        s.outbox_dead,
        s.outcomes_open,
        s.outcomes_overdue,
        intake_source,
        last.as_deref().unwrap_or("never"),
        store.backend(),
        leader_line(store.backend(), leader.as_ref()),
    ))
}

/// Which daemon leads (reads the intake, runs the scheduler), for the text output.
fn leader_line(backend: &str, lease: Option<&crate::store::LeaseState>) -> String {
    match lease {
        _ if backend == "sqlite" => "the one daemon (SQLite allows one per database)".into(),
        Some(l) if l.is_held() => {
            format!("{} (term {}, renewed {} s ago)", l.holder, l.term, (l.now - l.renewed).num_seconds().max(0))
        }
        Some(l) if !l.holder.is_empty() => format!("none (last {}, term {}); a daemon standing by takes over", l.holder, l.term),
        _ => "none yet (no daemon has run on this database)".into(),
    }
}
