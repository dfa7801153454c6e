//! The outbox worker: sends the emails the filing transaction queued, one recipient per row,
//! and records what became of each.
//!
//! - Delivered → `sent` (with an audit entry).
//! - A 4xx reply or a connection failure → retried with exponential backoff (1, 2, 4 … minutes,
//!   capped at an hour); after `max_attempts` failures → `dead`.
//! - A 5xx refusal → `dead` at once: retrying cannot help, and one bad address never holds up
//!   the others.
//!
//! A resend (after a crash, or by another daemon when a lease runs out) carries the row's
//! Message-ID, so it is recognisable as the same alert. This module decides and records; what
//! goes in a message is [`email`], how it leaves is [`smtp`] or [`maildir`]. Logs carry outbox
//! and incident ids and states, never addresses, subjects or text.

pub mod email;
pub mod maildir;
pub mod quiet;
pub mod smtp;

pub use quiet::QuietHours;
pub use smtp::{Security, SmtpSettings, SmtpSetupError};

use crate::clock::Clock;
use crate::health::HealthRecorder;
use crate::store::Component;
use crate::store::{CLAIM_LEASE, PendingEmail, Store, StoreError};
use chrono::{DateTime, Duration, Utc};
use smtp::{Failure, SmtpSender};
use std::path::PathBuf;
use std::sync::Arc;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

/// How many emails one pass claims. More wait for the next pass, which follows at once.
const BATCH: i64 = 100;

/// The first retry delay; each failure doubles it, up to [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::minutes(1);
const MAX_BACKOFF: Duration = Duration::hours(1);

/// The longest the worker sleeps without looking at the outbox (a filing on another daemon
/// does not wake this one).
const IDLE_POLL: std::time::Duration = std::time::Duration::from_secs(30);

/// How emails leave Haven.
#[derive(Debug, Clone)]
pub enum Transport {
    Smtp(SmtpSettings),
    /// Written to a Maildir instead of sent, for trying Haven out.
    Maildir(PathBuf),
}

impl Transport {
    /// How emails leave, in a technician's words: "SMTP", "Maildir".
    pub fn name(&self) -> &'static str {
        match self {
            Transport::Smtp(_) => "SMTP",
            Transport::Maildir(_) => "Maildir",
        }
    }

    /// Checks the transport can be set up (call when loading the configuration, so a refused
    /// setting is reported at start rather than at the first alert).
    pub fn check(&self) -> Result<(), SmtpSetupError> {
        match self {
            Transport::Smtp(s) => SmtpSender::new(s).map(|_| ()),
            Transport::Maildir(_) => Ok(()),
        }
    }
}

/// What every email shares, from the configuration and the secrets file.
#[derive(Clone)]
pub struct OutboxSettings {
    /// `Haven <safeguarding@school>` (`smtp.from`).
    pub from: String,
    /// Key for signing reply tokens.
    pub reply_key: Vec<u8>,
    /// Failed attempts after which an email is dead-lettered. With the backoff, the default 8
    /// rides out a mail server outage of about two hours (attempts at 0, 1, 3, 7, 15, 31, 63
    /// and 123 minutes).
    pub max_attempts: u32,
    /// Domain of Haven's Message-IDs (the thread roots use it too).
    pub mail_domain: String,
    /// `school.intake_address`: replies go here, plus-tagged with their token.
    pub intake_address: String,
    /// `[alerts.quiet_hours]`: when non-urgent alerts wait.
    pub quiet_hours: Option<QuietHours>,
    /// The school's time zone, in which quiet hours are read.
    pub tz: chrono_tz::Tz,
}

impl OutboxSettings {
    pub const DEFAULT_MAX_ATTEMPTS: u32 = 8;
}

impl std::fmt::Debug for OutboxSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OutboxSettings")
            .field("max_attempts", &self.max_attempts)
            .field("mail_domain", &self.mail_domain)
            .finish_non_exhaustive()
    }
}

/// Why a pass could not run at all. Individual send failures are not errors: they are
/// recorded on their rows and counted in the [`SendReport`].
#[derive(Debug, thiserror::Error)]
pub enum OutboxError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Setup(#[from] SmtpSetupError),
}

impl OutboxError {
    /// Whether a later pass can succeed without someone changing the configuration.
    pub fn is_transient(&self) -> bool {
        match self {
            OutboxError::Store(e) => e.is_transient(),
            OutboxError::Setup(_) => false,
        }
    }
}

/// What one pass did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SendReport {
    pub sent: u32,
    /// Failed this time, to be tried again.
    pub retried: u32,
    /// Dead-lettered this time.
    pub dead: u32,
    /// Claimed but not tried: the server was unreachable for an earlier one, the pass ran
    /// so long that the claim's lease was at risk of running out, or it is a non-urgent alert
    /// in quiet hours (held until they end).
    pub deferred: u32,
}

impl SendReport {
    pub fn claimed(&self) -> u32 {
        self.sent + self.retried + self.dead + self.deferred
    }
}

/// The delay before the next attempt after `attempts` failures: 1m, 2m, 4m … capped at 1h.
pub fn backoff(attempts: u32) -> Duration {
    let doublings = attempts.saturating_sub(1).min(10);
    (FIRST_BACKOFF * (1i32 << doublings)).min(MAX_BACKOFF)
}

/// One pass: claims the emails due at `now` and tries each once.
pub async fn send_due(
    store: &Store,
    transport: &Transport,
    settings: &OutboxSettings,
    now: DateTime<Utc>,
) -> Result<SendReport, OutboxError> {
    let sender = match transport {
        Transport::Smtp(s) => Some(SmtpSender::new(s)?),
        Transport::Maildir(_) => None,
    };
    Ok(send_due_with(store, transport, sender.as_ref(), settings, now).await?.report)
}

/// What one pass did, and why the mail server could not be reached if it could not.
struct Pass {
    report: SendReport,
    unreachable: Option<String>,
}

/// When a claimed email may go, if it must wait for quiet hours to end: alerts and
/// reminders about an incident that is not urgent.
fn held_until(e: &PendingEmail, settings: &OutboxSettings, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
    let waits = e.incident_id.is_some() && !e.urgent && matches!(e.purpose.as_str(), "alert" | "reminder");
    settings.quiet_hours.filter(|_| waits).and_then(|q| q.opens_at(now, settings.tz))
}

/// [`send_due`] with an SMTP client the caller keeps between passes, so its pooled, logged-in
/// connections (and its OAuth2 token) outlive one pass.
async fn send_due_with(
    store: &Store,
    transport: &Transport,
    sender: Option<&SmtpSender>,
    settings: &OutboxSettings,
    now: DateTime<Utc>,
) -> Result<Pass, OutboxError> {
    let env = email::Envelope {
        from: &settings.from,
        intake_address: &settings.intake_address,
        mail_domain: &settings.mail_domain,
        reply_key: &settings.reply_key,
    };
    let mut report = SendReport::default();
    let mut unreachable = false;
    let mut unreachable_why = None;
    // Real elapsed time, not the injected clock: what matters is how much of the lease is
    // left, and a slow server can use it up. Past half of it, another daemon could soon claim
    // the same rows, so the rest are handed back to be claimed afresh by the next pass.
    let started = std::time::Instant::now();
    let lease_half = (CLAIM_LEASE / 2).to_std().unwrap_or_default();
    for e in store.due_emails(now, BATCH).await? {
        if let Some(opens) = held_until(&e, settings, now) {
            store.release_email(e.id, opens).await?;
            tracing::info!(outbox = e.id, incident = e.incident_id, until = %opens, "alert held for quiet hours");
            report.deferred += 1;
            continue;
        }
        if unreachable {
            store.release_email(e.id, now + FIRST_BACKOFF).await?;
            report.deferred += 1;
            continue;
        }
        if started.elapsed() > lease_half {
            store.release_email(e.id, now).await?;
            report.deferred += 1;
            continue;
        }
        let staff_id = match (e.incident_id, e.message_id) {
            (None, None) if e.purpose != "digest" => None,
            _ => store.staff_id_by_email(&e.recipient).await?,
        };
        let msg = match email::build_message(&e, staff_id, &env, now) {
            Ok(m) => m,
            Err(err) => {
                tracing::error!(outbox = e.id, incident = e.incident_id, error = %err, "email cannot be built; dead-lettered");
                store.mark_dead(e.id, &err.to_string(), now).await?;
                report.dead += 1;
                continue;
            }
        };
        let result = match (transport, sender) {
            (Transport::Smtp(_), Some(s)) => s.send(msg).await,
            (Transport::Maildir(dir), _) => maildir::deliver(dir, &e.email_message_id, &msg.formatted())
                .await
                .map(|_| ())
                .map_err(|err| Failure::Connection(format!("cannot write to the outbox Maildir: {err}"))),
            (Transport::Smtp(_), None) => Err(Failure::Connection("no SMTP client".into())),
        };
        match result {
            Ok(()) => {
                store.mark_sent(e.id, now).await?;
                tracing::info!(outbox = e.id, incident = e.incident_id, purpose = %e.purpose, "email sent");
                report.sent += 1;
            }
            Err(Failure::Permanent(err)) => {
                store.mark_dead(e.id, &err, now).await?;
                tracing::error!(outbox = e.id, incident = e.incident_id, "email refused permanently; dead-lettered");
                report.dead += 1;
            }
            Err(failure) => {
                let (Failure::Transient(err) | Failure::Connection(err) | Failure::Permanent(err)) = &failure;
                unreachable = matches!(failure, Failure::Connection(_));
                if unreachable {
                    unreachable_why = Some(err.clone());
                }
                if give_up(&e, settings.max_attempts) {
                    let attempts = attempts_after(&e);
                    store.mark_dead(e.id, &format!("gave up after {attempts} attempts: {err}"), now).await?;
                    tracing::error!(outbox = e.id, incident = e.incident_id, attempts, "email dead-lettered after its last attempt");
                    report.dead += 1;
                } else {
                    let next = now + backoff(attempts_after(&e));
                    store.mark_retry(e.id, err, next).await?;
                    tracing::warn!(
                        outbox = e.id,
                        incident = e.incident_id,
                        attempts = attempts_after(&e),
                        server_unreachable = unreachable,
                        "email not sent; will retry"
                    );
                    report.retried += 1;
                }
            }
        }
    }
    Ok(Pass { report, unreachable: unreachable_why })
}

fn attempts_after(e: &PendingEmail) -> u32 {
    u32::try_from(e.attempts).unwrap_or(0).saturating_add(1)
}

fn give_up(e: &PendingEmail, max_attempts: u32) -> bool {
    attempts_after(e) >= max_attempts.max(1)
}

/// Sends until `shutdown`: a pass whenever something may be due (woken by `wake` after a
/// filing commits, by the next retry time, or every 30 seconds), and stops between passes.
/// Tells `health` whether the mail server can be reached.
pub async fn run(
    store: Store,
    transport: Transport,
    settings: OutboxSettings,
    clock: Arc<dyn Clock>,
    shutdown: CancellationToken,
    wake: Arc<Notify>,
    health: Arc<HealthRecorder>,
) {
    tracing::info!("outbox worker started");
    // One SMTP client for the worker's life: its pool keeps a logged-in connection for 60 s
    // after a pass, so alerts that follow each other reuse it. A refused setting was reported
    // at start (`Transport::check`); should it fail here, each pass reports it instead.
    let sender = match &transport {
        Transport::Smtp(s) => SmtpSender::new(s).ok(),
        Transport::Maildir(_) => None,
    };
    loop {
        if shutdown.is_cancelled() {
            break;
        }
        let pass = match &sender {
            Some(sender) => send_due_with(&store, &transport, Some(sender), &settings, clock.now()).await,
            None => send_due(&store, &transport, &settings, clock.now()).await.map(|report| Pass { report, unreachable: None }),
        };
        match &pass {
            Ok(Pass { unreachable: Some(why), .. }) => health.failing(Component::Outbox, transport.name(), why).await,
            Ok(_) => health.ok(Component::Outbox, &format!("sending by {}", transport.name()), None).await,
            Err(e) => health.failing(Component::Outbox, "outbox", &e.to_string()).await,
        }
        let wait = match pass.map(|p| p.report) {
            Ok(r) if r.claimed() >= u32::try_from(BATCH).unwrap_or(u32::MAX) => std::time::Duration::ZERO,
            Ok(r) => {
                if r.claimed() > 0 {
                    tracing::info!(sent = r.sent, retried = r.retried, dead = r.dead, deferred = r.deferred, "outbox pass");
                }
                until_next_due(&store, clock.as_ref()).await
            }
            Err(e) => {
                tracing::error!(error = %e, transient = e.is_transient(), "outbox pass failed");
                IDLE_POLL
            }
        };
        tokio::select! {
            _ = shutdown.cancelled() => break,
            _ = wake.notified() => {}
            _ = tokio::time::sleep(wait) => {}
        }
    }
    health.stopped(Component::Outbox).await;
    tracing::info!("outbox worker stopped");
}

/// How long until the next pending email is due, at most [`IDLE_POLL`] and at least a second
/// (so a clock that disagrees with the database cannot spin the loop).
async fn until_next_due(store: &Store, clock: &dyn Clock) -> std::time::Duration {
    let floor = std::time::Duration::from_secs(1);
    match store.next_email_due().await {
        Ok(Some(due)) => (due - clock.now()).to_std().unwrap_or(floor).clamp(floor, IDLE_POLL),
        Ok(None) => IDLE_POLL,
        Err(e) => {
            tracing::warn!(error = %e, "cannot read the outbox");
            IDLE_POLL
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_and_caps() {
        assert_eq!(backoff(1), Duration::minutes(1));
        assert_eq!(backoff(2), Duration::minutes(2));
        assert_eq!(backoff(3), Duration::minutes(4));
        assert_eq!(backoff(7), Duration::hours(1));
        assert_eq!(backoff(100), Duration::hours(1));
        assert_eq!(backoff(0), Duration::minutes(1));
    }
}
