//! systemd's notify protocol (`Type=notify`): `READY=1` once the intake has first worked (the
//! first Maildir pass, or the first IMAP login), `WATCHDOG=1` from the intake loop so that
//! systemd restarts a daemon whose loop is stuck, and `STATUS=` lines for `systemctl status`
//! ("idle, 0 waiting, last filed 10:42"). Without `NOTIFY_SOCKET` it does nothing.
//!
//! It must not block the intake (each call is one datagram) and must not carry pupil data:
//! the status line holds a state, a count and a time.

use crate::source::imap::{ImapState, ImapStatus};
use crate::store::Store;
use chrono::{DateTime, Utc};
use sd_notify::NotifyState;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

/// The daemon's side of the notify socket.
#[derive(Debug)]
pub struct Notifier {
    enabled: bool,
    /// `WatchdogSec=`, when systemd set one for this process.
    watchdog: Option<Duration>,
    ready: AtomicBool,
    last_ping: Mutex<Option<Instant>>,
    /// What the intake is doing, for the status line ("idle", "connecting", …).
    intake: Mutex<String>,
    /// Fires when `intake` changes, so the status line follows at once.
    changed: Notify,
}

impl Notifier {
    /// Reads `NOTIFY_SOCKET` and `WATCHDOG_USEC` (as systemd sets them).
    pub fn from_env() -> Notifier {
        Notifier {
            enabled: std::env::var_os("NOTIFY_SOCKET").is_some(),
            watchdog: sd_notify::watchdog_enabled(),
            ready: AtomicBool::new(false),
            last_ping: Mutex::new(None),
            intake: Mutex::new("starting".into()),
            changed: Notify::new(),
        }
    }

    /// The watchdog period systemd expects pings within, if any.
    pub fn watchdog(&self) -> Option<Duration> {
        self.watchdog
    }

    /// `READY=1`, the first time only.
    pub fn ready(&self) {
        if self.enabled && !self.ready.swap(true, Ordering::SeqCst) {
            self.send(&[NotifyState::Ready]);
            tracing::info!("told systemd the daemon is ready");
        }
    }

    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::SeqCst)
    }

    /// A beat from the intake loop: `WATCHDOG=1`, at most four times per watchdog period.
    pub fn alive(&self) {
        let Some(period) = self.watchdog.filter(|_| self.enabled) else { return };
        let now = Instant::now();
        let due = match self.last_ping.lock() {
            Ok(mut last) => {
                let due = last.is_none_or(|t| now.duration_since(t) >= period / 4);
                if due {
                    *last = Some(now);
                }
                due
            }
            Err(_) => true,
        };
        if due {
            self.send(&[NotifyState::Watchdog]);
        }
    }

    /// Records what the intake is doing, for the next status line.
    pub fn set_intake(&self, state: &str) {
        if let Ok(mut s) = self.intake.lock()
            && *s != state
        {
            *s = state.to_string();
            self.changed.notify_one();
        }
    }

    pub fn intake(&self) -> String {
        self.intake.lock().map(|s| s.clone()).unwrap_or_default()
    }

    /// `STATUS=text`.
    pub fn status(&self, text: &str) {
        if self.enabled {
            self.send(&[NotifyState::Status(text)]);
        }
    }

    /// `STOPPING=1`.
    pub fn stopping(&self) {
        if self.enabled {
            self.send(&[NotifyState::Stopping]);
        }
    }

    fn send(&self, state: &[NotifyState<'_>]) {
        if let Err(e) = sd_notify::notify(state) {
            tracing::debug!(error = %e, "cannot write to NOTIFY_SOCKET");
        }
    }
}

/// How often the status line is refreshed when nothing is filed.
const STATUS_EVERY: Duration = Duration::from_secs(30);

/// Sends a `STATUS=` line at start, whenever the intake's state changes, after every filed
/// batch (`filed`) and every 30 s, and
/// `STOPPING=1` when `shutdown` fires.
pub async fn report_status(notifier: Arc<Notifier>, store: Store, tz: chrono_tz::Tz, filed: Arc<Notify>, shutdown: CancellationToken) {
    if !notifier.enabled {
        return;
    }
    loop {
        let now = Utc::now();
        match store.status(now).await {
            Ok(counts) => notifier.status(&status_line(&notifier.intake(), counts.outbox_pending, counts.last_filed_at, tz, now)),
            Err(e) => notifier.status(&format!("{}, database unreachable: {e}", notifier.intake())),
        }
        tokio::select! {
            () = shutdown.cancelled() => break,
            () = filed.notified() => {}
            () = notifier.changed.notified() => {}
            () = tokio::time::sleep(STATUS_EVERY) => {}
        }
    }
    notifier.stopping();
}

/// For the IMAP intake: `READY=1` after the first login, the intake's state for the status
/// line, and watchdog pings while the loop is waiting (IDLE, poll or backoff, each bounded by
/// a timer) or has changed state within the watchdog period. A loop stuck connecting or
/// draining for longer stops the pings, and systemd restarts the daemon.
pub async fn watch_imap(notifier: Arc<Notifier>, status: ImapStatus, shutdown: CancellationToken) {
    let mut changes = status.subscribe();
    let tick = notifier.watchdog.map_or(Duration::from_secs(3600), |p| p / 4);
    let mut since = Instant::now();
    loop {
        let state = status.state();
        let logged_in = matches!(state, ImapState::Draining | ImapState::Idle | ImapState::Polling);
        if logged_in {
            notifier.ready();
        }
        notifier.set_intake(&match state {
            ImapState::Starting | ImapState::Connecting => "connecting".to_string(),
            ImapState::Draining => "filing".to_string(),
            ImapState::Idle | ImapState::Polling => "idle".to_string(),
            ImapState::Retrying => format!("retrying: {}", status.last_error().unwrap_or_default()),
            ImapState::Stopped => "stopped".to_string(),
        });
        let waiting = matches!(state, ImapState::Idle | ImapState::Polling | ImapState::Retrying);
        if waiting || notifier.watchdog.is_some_and(|p| since.elapsed() < p) {
            notifier.alive();
        }
        tokio::select! {
            () = shutdown.cancelled() => return,
            changed = changes.changed() => {
                if changed.is_err() {
                    return;
                }
                since = Instant::now();
            }
            () = tokio::time::sleep(tick) => {}
        }
    }
}

/// The `STATUS=` text: "idle, 0 waiting, last filed 10:42" (`waiting`: alerts and notices
/// in the outbox not yet sent; the time in the school's zone, with the date when not today).
pub fn status_line(state: &str, waiting: u64, last_filed: Option<DateTime<Utc>>, tz: chrono_tz::Tz, now: DateTime<Utc>) -> String {
    let filed = match last_filed {
        None => "nothing filed yet".to_string(),
        Some(t) => {
            let local = t.with_timezone(&tz);
            if local.date_naive() == now.with_timezone(&tz).date_naive() {
                format!("last filed {}", local.format("%H:%M"))
            } else {
                format!("last filed {}", local.format("%d %b %H:%M"))
            }
        }
    };
    format!("{state}, {waiting} waiting, {filed}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn the_status_line_names_state_backlog_and_last_filing_in_school_time() {
        let tz = chrono_tz::Europe::London;
        let now = Utc.with_ymd_and_hms(2026, 6, 3, 12, 0, 0).unwrap();
        let filed = Utc.with_ymd_and_hms(2026, 6, 3, 9, 42, 0).unwrap();
        assert_eq!(status_line("idle", 0, Some(filed), tz, now), "idle, 0 waiting, last filed 10:42");
        let yesterday = Utc.with_ymd_and_hms(2026, 6, 2, 9, 42, 0).unwrap();
        assert_eq!(status_line("filing", 3, Some(yesterday), tz, now), "filing, 3 waiting, last filed 02 Jun 10:42");
        assert_eq!(status_line("idle", 0, None, tz, now), "idle, 0 waiting, nothing filed yet");
    }
}
