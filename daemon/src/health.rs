//! The daemon's account of its own health: whether the intake, the outbox and the scheduler
//! are working, and since when they have been failing, kept in memory for `/healthz` and
//! written to the `health` table (for `haven status`) only when something changes, never per
//! message.
//!
//! Each part reports [`HealthRecorder::ok`] or [`HealthRecorder::failing`] as it goes; the
//! recorder keeps "connected since" and "failing since" across repeated reports of the same
//! state. It must not carry message content: errors are server and network errors.

use crate::clock::Clock;
use crate::source::imap::{ImapState, ImapStatus};
use crate::store::{Component, HealthRecord, HealthState, Store};
use chrono::{DateTime, Duration, Utc};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use tokio_util::sync::CancellationToken;

/// The in-memory health of every part, and where it is written.
pub struct HealthRecorder {
    store: Store,
    clock: Arc<dyn Clock>,
    /// "host pid 1234": which daemon wrote a row.
    daemon: String,
    current: Mutex<HashMap<Component, HealthRecord>>,
}

impl HealthRecorder {
    pub fn new(store: Store, clock: Arc<dyn Clock>) -> HealthRecorder {
        let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
        let daemon = format!("{} pid {}", host.trim(), std::process::id()).trim().to_string();
        HealthRecorder { store, clock, daemon, current: Mutex::new(HashMap::new()) }
    }

    /// [`HealthRecorder::new`], keeping the last errors the database holds (so the error
    /// before a restart is still shown after it). The states are taken as stopped: this
    /// daemon's first report starts a new "since", and an old failure cannot fail `/healthz`.
    pub async fn resume(store: Store, clock: Arc<dyn Clock>) -> HealthRecorder {
        let recorder = HealthRecorder::new(store, clock);
        match recorder.store.health().await {
            Ok(rows) => {
                let stopped = rows.into_iter().map(|h| (h.component, HealthRecord { state: HealthState::Stopped, ..h }));
                recorder.lock().extend(stopped);
            }
            Err(e) => tracing::warn!(error = %e, "cannot read the recorded health; starting afresh"),
        }
        recorder
    }

    /// `component` works (`what`: "IMAP connected", "sending"); `backlog` for the intake.
    pub async fn ok(&self, component: Component, what: &str, backlog: Option<u64>) {
        self.report(component, HealthState::Ok, what, None, backlog).await;
    }

    /// `component` failed at `what` ("IMAP login") with `error`, and will retry.
    pub async fn failing(&self, component: Component, what: &str, error: &str) {
        self.report(component, HealthState::Failing, what, Some(error), None).await;
    }

    /// The daemon is shutting `component` down.
    pub async fn stopped(&self, component: Component) {
        self.report(component, HealthState::Stopped, "stopped", None, None).await;
    }

    /// The last report for `component`, if any.
    pub fn get(&self, component: Component) -> Option<HealthRecord> {
        self.lock().get(&component).cloned()
    }

    /// Since when the intake has been failing, if it is.
    pub fn intake_failing_since(&self) -> Option<DateTime<Utc>> {
        self.get(Component::Intake).filter(|h| h.state == HealthState::Failing).map(|h| h.since)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Component, HealthRecord>> {
        self.current.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    async fn report(&self, component: Component, state: HealthState, what: &str, error: Option<&str>, backlog: Option<u64>) {
        let now = self.clock.now();
        let Some(record) = next_record(self.get(component).as_ref(), component, state, what, error, backlog, now, &self.daemon) else {
            return;
        };
        self.lock().insert(component, record.clone());
        if let Err(e) = self.store.record_health(&record).await {
            tracing::warn!(component = component.as_str(), error = %e, "cannot record health");
        }
    }
}

/// The record to write after a report, or `None` when nothing a reader would see changed.
/// The same state keeps its `since`; an error is kept after recovery, with when it happened.
#[allow(clippy::too_many_arguments)]
fn next_record(
    last: Option<&HealthRecord>,
    component: Component,
    state: HealthState,
    what: &str,
    error: Option<&str>,
    backlog: Option<u64>,
    now: DateTime<Utc>,
    daemon: &str,
) -> Option<HealthRecord> {
    let same_state = last.is_some_and(|l| l.state == state && (state != HealthState::Failing || l.what == what));
    let last_error = match error {
        Some(e) if last.and_then(|l| l.last_error.as_ref()).is_some_and(|(le, _)| le == e) && same_state => {
            last.and_then(|l| l.last_error.clone())
        }
        Some(e) => Some((e.to_string(), now)),
        None => last.and_then(|l| l.last_error.clone()),
    };
    let record = HealthRecord {
        component,
        state,
        what: what.to_string(),
        since: if same_state { last.map_or(now, |l| l.since) } else { now },
        last_error,
        backlog,
        daemon: daemon.to_string(),
        updated: now,
    };
    let unchanged = last.is_some_and(|l| {
        l.state == record.state
            && l.what == record.what
            && l.since == record.since
            && l.last_error == record.last_error
            && l.backlog == record.backlog
    });
    (!unchanged).then_some(record)
}

/// Follows the IMAP intake's state and reports it: connected (with the backlog), or failing
/// at the step that failed. Stops with "stopped" when `shutdown` fires.
pub async fn watch_imap(health: Arc<HealthRecorder>, status: ImapStatus, shutdown: CancellationToken) {
    let mut changes = status.subscribe();
    loop {
        match status.state() {
            ImapState::Starting | ImapState::Connecting => {}
            ImapState::Draining | ImapState::Idle | ImapState::Polling => {
                health.ok(Component::Intake, "IMAP connected", status.backlog()).await;
            }
            ImapState::Retrying | ImapState::Stopped => {
                if let Some((stage, error)) = status.failure() {
                    health.failing(Component::Intake, stage, &error).await;
                } else if status.state() == ImapState::Stopped {
                    health.stopped(Component::Intake).await;
                }
            }
        }
        tokio::select! {
            () = shutdown.cancelled() => break,
            changed = changes.changed() => if changed.is_err() { break },
        }
    }
    health.stopped(Component::Intake).await;
}

/// `/healthz`: `Err(reason)` once the intake has been failing for longer than `grace`.
pub fn healthz(health: &HealthRecorder, grace: Duration, now: DateTime<Utc>) -> Result<(), String> {
    match health.get(Component::Intake) {
        Some(h) if h.state == HealthState::Failing && now - h.since > grace => {
            let error = h.last_error.map(|(e, _)| e).unwrap_or_default();
            Err(format!("{} failing since {}: {error}", h.what, h.since.to_rfc3339()))
        }
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn at(min: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 12, 7, 9, min, 0).unwrap()
    }

    fn next(last: Option<&HealthRecord>, state: HealthState, what: &str, error: Option<&str>, now: DateTime<Utc>) -> Option<HealthRecord> {
        next_record(last, Component::Intake, state, what, error, None, now, "test")
    }

    #[test]
    fn failing_keeps_its_start_and_is_written_once_per_change() {
        let ok = next(None, HealthState::Ok, "IMAP connected", None, at(0)).unwrap();
        assert!(next(Some(&ok), HealthState::Ok, "IMAP connected", None, at(1)).is_none(), "no write without a change");
        let failing = next(Some(&ok), HealthState::Failing, "IMAP login", Some("refused"), at(12)).unwrap();
        assert_eq!((failing.since, failing.last_error.clone()), (at(12), Some(("refused".into(), at(12)))));
        assert!(next(Some(&failing), HealthState::Failing, "IMAP login", Some("refused"), at(14)).is_none());
        let other = next(Some(&failing), HealthState::Failing, "IMAP login", Some("timed out"), at(15)).unwrap();
        assert_eq!(other.since, at(12), "still failing since 09:12");
        let back = next(Some(&other), HealthState::Ok, "IMAP connected", None, at(20)).unwrap();
        assert_eq!(back.since, at(20), "connected since the recovery");
        assert_eq!(back.last_error, Some(("timed out".into(), at(15))), "the last error is kept after recovery");
    }
}
