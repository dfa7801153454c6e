//! `haven status`: what a technician checks first. Besides the counts, each part of the
//! daemon says how it is doing, as the daemon last recorded it: "intake: IMAP login failing
//! since 09:12: the IMAP server refused the login: …", not only when a message was last filed.

use super::CliError;
use crate::store::{Component, HealthRecord, HealthState, MessageState, Store};
use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use serde_json::json;

pub async fn run(store: &Store, intake_source: &str, tz: Tz, now: DateTime<Utc>, as_json: bool) -> Result<String, CliError> {
    let s = store.status(now).await?;
    let health = store.health().await?;
    let of = |c: Component| health.iter().find(|h| h.component == c);
    let n = |st: MessageState| s.messages.get(&st).copied().unwrap_or(0);
    let last = s.last_filed_at.map(|t| t.to_rfc3339());
    let leader = match store.backend() {
        "postgres" => store.leader_lease().await?,
        _ => None,
    };
    if as_json {
        let parts: serde_json::Map<String, serde_json::Value> =
            health.iter().map(|h| (h.component.as_str().to_string(), health_json(h))).collect();
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
            "holds": {"pupils": s.holds_on_pupils, "incidents": s.holds_on_incidents},
            "intake": {"source": intake_source, "last_filed_at": last},
            "health": parts,
            "database": store.backend(),
            "leader": leader.as_ref().map(|l| json!({"holder": l.holder, "term": l.term, "held": l.is_held(), "expires_at": l.expires.to_rfc3339()})),
        });
        return Ok(serde_json::to_string_pretty(&v).unwrap_or_default());
    }
    let last_filed = s.last_filed_at.map_or_else(|| "never".to_string(), |t| at(t, tz, now));
    let intake = match of(Component::Intake) {
        Some(h) => format!("{} (last filed {last_filed})", describe(h, tz, now)),
        None => format!("{intake_source} (last filed {last_filed}; no health recorded: the daemon has not run)"),
    };
    let tail = |c: Component| of(c).map(|h| format!("; {}", describe(h, tz, now))).unwrap_or_default();
    Ok(format!(
        "messages: {} filed, {} awaiting triage, {} quarantined, {} duplicate, {} ignored\n\
         incidents: {}\n\
         intake: {intake}\n\
         outbox: {} pending, {} sent, {} dead{}\n\
         scheduler: {}\n\
         outcomes: {} open, {} overdue\n\
         holds: {}\n\
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
        tail(Component::Outbox),
        of(Component::Scheduler).map_or_else(|| "no health recorded".to_string(), |h| describe(h, tz, now)),
        s.outcomes_open,
        s.outcomes_overdue,
        holds_line(&s),
        store.backend(),
        leader_line(store.backend(), leader.as_ref()),
    ))
}

/// "none", or "2 standing (1 on a pupil, 1 on an incident): see `haven holds`".
fn holds_line(s: &crate::store::StatusCounts) -> String {
    let plural = |n: u64, one: &str, many: &str| format!("{n} on {}", if n == 1 { one } else { many });
    match (s.holds_on_pupils, s.holds_on_incidents) {
        (0, 0) => "none".into(),
        (p, i) => format!(
            "{} standing ({}, {}): nothing they cover can be disposed of; see `haven holds`",
            p + i,
            plural(p, "a pupil", "pupils"),
            plural(i, "an incident", "incidents")
        ),
    }
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

/// "IMAP connected since 09:10, 3 waiting in the mailbox", "IMAP login failing since 09:12:
/// …", "stopped at 17:00".
fn describe(h: &HealthRecord, tz: Tz, now: DateTime<Utc>) -> String {
    let since = at(h.since, tz, now);
    match h.state {
        HealthState::Ok => {
            let backlog = match h.backlog {
                Some(n) if n > 0 => format!(", {n} waiting in the mailbox"),
                _ => String::new(),
            };
            format!("{} since {since}{backlog}", h.what)
        }
        HealthState::Failing => {
            let error = h.last_error.as_ref().map(|(e, _)| format!(": {e}")).unwrap_or_default();
            format!("{} failing since {since}{error}", h.what)
        }
        HealthState::Stopped => format!("stopped at {since} (the daemon was shut down)"),
    }
}

/// A time on the school's clock: "09:12" today, "06 Dec 09:12" otherwise.
fn at(t: DateTime<Utc>, tz: Tz, now: DateTime<Utc>) -> String {
    let local = t.with_timezone(&tz);
    if local.date_naive() == now.with_timezone(&tz).date_naive() {
        local.format("%H:%M").to_string()
    } else {
        local.format("%d %b %H:%M").to_string()
    }
}

fn health_json(h: &HealthRecord) -> serde_json::Value {
    json!({
        "state": h.state.as_str(),
        "what": h.what,
        "since": h.since.to_rfc3339(),
        "last_error": h.last_error.as_ref().map(|(e, _)| e),
        "last_error_at": h.last_error.as_ref().map(|(_, t)| t.to_rfc3339()),
        "backlog": h.backlog,
        "daemon": h.daemon,
        "updated": h.updated.to_rfc3339(),
    })
}
