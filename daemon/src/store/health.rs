//! The `health` table: what the daemon's intake, outbox and scheduler are doing, one row
//! each, written when a state changes (see [`crate::health`]) and read by `haven status`.
//!
//! Health is the daemon's own account of itself, not a record about pupils, so it is not
//! audited; it must never hold message text (the errors are server and network errors).

use super::{Result, Store, from_us, on_pool, to_us};
use chrono::{DateTime, Utc};
use sqlx::Row;

/// Which part of the daemon a row describes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Component {
    Intake,
    Outbox,
    Scheduler,
}

impl Component {
    pub const ALL: [Component; 3] = [Component::Intake, Component::Outbox, Component::Scheduler];

    pub fn as_str(self) -> &'static str {
        match self {
            Component::Intake => "intake",
            Component::Outbox => "outbox",
            Component::Scheduler => "scheduler",
        }
    }

    fn parse(s: &str) -> Option<Component> {
        Component::ALL.into_iter().find(|c| c.as_str() == s)
    }
}

/// Working, failing (and retrying), or shut down by the daemon.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HealthState {
    Ok,
    Failing,
    Stopped,
}

impl HealthState {
    pub fn as_str(self) -> &'static str {
        match self {
            HealthState::Ok => "ok",
            HealthState::Failing => "failing",
            HealthState::Stopped => "stopped",
        }
    }

    fn parse(s: &str) -> Option<HealthState> {
        match s {
            "ok" => Some(HealthState::Ok),
            "failing" => Some(HealthState::Failing),
            "stopped" => Some(HealthState::Stopped),
            _ => None,
        }
    }
}

/// One component's health as last written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HealthRecord {
    pub component: Component,
    pub state: HealthState,
    /// What is working or failing: "IMAP connected", "IMAP login", "SMTP".
    pub what: String,
    /// When `state` began (connected since, failing since).
    pub since: DateTime<Utc>,
    /// The latest error, kept after recovery until the next one.
    pub last_error: Option<(String, DateTime<Utc>)>,
    /// Messages waiting in the intake mailbox when last looked.
    pub backlog: Option<u64>,
    /// Which daemon wrote it ("host pid 1234").
    pub daemon: String,
    pub updated: DateTime<Utc>,
}

impl Store {
    /// Writes one component's row, replacing the last.
    pub async fn record_health(&self, h: &HealthRecord) -> Result<()> {
        let (error, error_us) = match &h.last_error {
            Some((e, at)) => (Some(e.as_str()), Some(to_us(*at))),
            None => (None, None),
        };
        on_pool!(self, |p| {
            sqlx::query(
                "INSERT INTO health (component, state, what, since_us, last_error, error_us, backlog, daemon, updated_us) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) \
                 ON CONFLICT (component) DO UPDATE SET state = excluded.state, what = excluded.what, \
                 since_us = excluded.since_us, last_error = excluded.last_error, error_us = excluded.error_us, \
                 backlog = excluded.backlog, daemon = excluded.daemon, updated_us = excluded.updated_us",
            )
            .bind(h.component.as_str())
            .bind(h.state.as_str())
            .bind(&h.what)
            .bind(to_us(h.since))
            .bind(error)
            .bind(error_us)
            .bind(h.backlog.map(|b| i64::try_from(b).unwrap_or(i64::MAX)))
            .bind(&h.daemon)
            .bind(to_us(h.updated))
            .execute(p)
            .await?;
        });
        Ok(())
    }

    /// Every component's row, intake first; a component never written has none.
    pub async fn health(&self) -> Result<Vec<HealthRecord>> {
        let mut out: Vec<HealthRecord> = on_pool!(self, |p| {
            let rows =
                sqlx::query("SELECT component, state, what, since_us, last_error, error_us, backlog, daemon, updated_us FROM health")
                    .fetch_all(p)
                    .await?;
            let mut out = Vec::with_capacity(rows.len());
            for r in rows {
                let (Some(component), Some(state)) =
                    (Component::parse(&r.try_get::<String, _>("component")?), HealthState::parse(&r.try_get::<String, _>("state")?))
                else {
                    continue;
                };
                let error: Option<String> = r.try_get("last_error")?;
                let error_us: Option<i64> = r.try_get("error_us")?;
                let backlog: Option<i64> = r.try_get("backlog")?;
                out.push(HealthRecord {
                    component,
                    state,
                    what: r.try_get("what")?,
                    since: from_us(r.try_get("since_us")?),
                    last_error: error.zip(error_us.map(from_us)),
                    backlog: backlog.map(|b| u64::try_from(b).unwrap_or(0)),
                    daemon: r.try_get("daemon")?,
                    updated: from_us(r.try_get("updated_us")?),
                });
            }
            out
        });
        out.sort_by_key(|h| h.component);
        Ok(out)
    }
}
