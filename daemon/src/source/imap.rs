//! The IMAP intake: drains one mailbox into a [`Sink`], then waits (IDLE, or polling when the
//! server has no IDLE) for more, reconnecting with capped, jittered backoff after any failure.
//!
//! Exactly once, together with the sink: a message leaves the intake mailbox only after the
//! sink has committed it, and only by UID MOVE (or UID COPY + `\Deleted` + UID EXPUNGE, never a
//! plain EXPUNGE, which could remove messages another client flagged). A crash between commit
//! and move re-delivers the message, and the sink recognises it by
//! (mailbox, UIDVALIDITY, UID) and by content hash. Message bodies are fetched with
//! `BODY.PEEK[]`, so `\Seen` is neither needed nor set.
//!
//! This module never parses messages, and logs UIDs and states only, never addresses,
//! subjects or text.
//!
//! - [`connect`]: TCP/TLS/STARTTLS and login.
//! - [`drain`]: batches from the mailbox to the sink, then the moves.
//! - [`purge`]: deleting given messages again, for a disposal.
//! - [`backoff`], [`wire`]: pure helpers.

use super::backoff;
mod connect;
pub(crate) use connect::read_token;
mod drain;
mod purge;
mod wire;

pub use purge::{Purged, Wanted, delete_messages};

use std::path::PathBuf;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use super::{Sink, SinkError};
use backoff::Backoff;

/// How the connection is protected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Security {
    /// TLS from the first byte (port 993).
    Tls,
    /// Plain connect, then `STARTTLS` before anything else is said (port 143).
    Starttls,
    /// No encryption: refused unless the host is loopback.
    Plain,
}

/// How Haven proves who it is.
#[derive(Clone)]
pub enum ImapAuth {
    Password(String),
    /// SASL XOAUTH2 (Microsoft 365, Google). The token is read again on every connect, so a
    /// refreshed token is used after the server rejects an expired one.
    Xoauth2 {
        token_source: TokenSource,
    },
}

impl std::fmt::Debug for ImapAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ImapAuth::Password(_) => f.write_str("Password(<redacted>)"),
            ImapAuth::Xoauth2 { token_source } => f.debug_struct("Xoauth2").field("token_source", token_source).finish(),
        }
    }
}

/// Where an OAuth2 access token comes from.
#[derive(Debug, Clone)]
pub enum TokenSource {
    /// A file another program keeps fresh; its trimmed contents are the token.
    File(PathBuf),
    /// A shell command whose trimmed standard output is the token.
    Command(String),
}

/// Everything the IMAP intake needs, already validated and with secrets resolved.
#[derive(Debug, Clone)]
pub struct ImapSettings {
    pub host: String,
    pub port: u16,
    pub security: Security,
    pub username: String,
    pub auth: ImapAuth,
    /// The intake mailbox, e.g. `INBOX`.
    pub mailbox: String,
    /// Where committed messages go; written with `/` whatever the server's delimiter.
    pub filed_folder: String,
    pub quarantine_folder: String,
    /// Used only when the server has no IDLE.
    pub poll_interval: Duration,
    /// Larger messages are handed over as `Payload::TooLarge` without being downloaded.
    pub max_message_size: u64,
    /// At most this many messages per sink commit (e.g. 50).
    pub batch_size: usize,
    /// IDLE is ended and restarted this often (e.g. 25 min; servers may drop it at 30).
    pub idle_renew: Duration,
}

impl ImapSettings {
    /// Errors that no retry can fix, reported before any connection is tried.
    pub fn check(&self) -> Result<(), ImapError> {
        connect::check_security(self)?;
        let mut problems = Vec::new();
        if self.host.is_empty() {
            problems.push("host is empty");
        }
        if self.batch_size == 0 {
            problems.push("batch_size must be at least 1");
        }
        if self.idle_renew.is_zero() || self.idle_renew > Duration::from_secs(29 * 60) {
            problems.push("idle_renew must be more than 0 and at most 29 minutes");
        }
        if self.poll_interval.is_zero() {
            problems.push("poll_interval must be more than 0");
        }
        for folder in [&self.mailbox, &self.filed_folder, &self.quarantine_folder] {
            if folder.is_empty() || folder.contains(['\r', '\n', '*', '%']) {
                problems.push("mailbox and folder names must be non-empty, without * % or line breaks");
                break;
            }
        }
        if self.mailbox == self.filed_folder || self.mailbox == self.quarantine_folder {
            problems.push("the filed and quarantine folders must differ from the intake mailbox");
        }
        if problems.is_empty() { Ok(()) } else { Err(ImapError::Settings(problems.join("; "))) }
    }
}

/// Connects, logs in and logs out again, touching no mailbox (`haven check`).
pub async fn check_login(settings: &ImapSettings) -> Result<(), ImapError> {
    settings.check()?;
    let mut session = connect::open(settings).await?;
    let _ = session.logout().await;
    Ok(())
}

/// Why the intake could not do its work. Only [`ImapError::is_permanent`] errors end [`run`];
/// the rest are retried after a backoff.
#[derive(Debug, thiserror::Error)]
pub enum ImapError {
    #[error(
        "security = \"plain\" is refused for host {host:?}: it would send the password \
         unencrypted; plain IMAP is allowed only to a loopback host (use \"tls\" or \"starttls\")"
    )]
    PlainRefused { host: String },
    #[error("invalid IMAP settings: {0}")]
    Settings(String),
    #[error("cannot connect to {host}:{port}: {source}")]
    Connect { host: String, port: u16, source: std::io::Error },
    #[error("TLS with {host} failed: {message}")]
    Tls { host: String, message: String },
    #[error("IMAP {0} timed out")]
    Timeout(&'static str),
    #[error("the IMAP server refused the login: {0}")]
    Auth(String),
    #[error("cannot get the OAuth2 token: {0}")]
    Token(String),
    #[error("IMAP {op} failed: {source}")]
    Protocol { op: &'static str, source: async_imap::error::Error },
    #[error("the server gave no UIDVALIDITY for the intake mailbox")]
    NoUidValidity,
    #[error("the filing pipeline could not commit a batch: {0}")]
    Sink(SinkError),
    #[error("the filing pipeline answered {got} dispositions for {sent} messages")]
    SinkContract { sent: usize, got: usize },
}

impl ImapError {
    /// True when retrying cannot help: the settings themselves are wrong.
    pub fn is_permanent(&self) -> bool {
        matches!(self, ImapError::PlainRefused { .. } | ImapError::Settings(_))
    }

    /// Which step failed, in a technician's words: "IMAP login failing since 09:12".
    pub fn stage(&self) -> &'static str {
        match self {
            ImapError::PlainRefused { .. } | ImapError::Settings(_) => "IMAP settings",
            ImapError::Connect { .. } | ImapError::Tls { .. } | ImapError::Timeout("connect") => "IMAP connection",
            ImapError::Auth(_) | ImapError::Token(_) | ImapError::Timeout("login") => "IMAP login",
            ImapError::Timeout(_) | ImapError::Protocol { .. } | ImapError::NoUidValidity => "IMAP mailbox",
            ImapError::Sink(_) | ImapError::SinkContract { .. } => "filing",
        }
    }
}

/// What the intake is doing now, for health reports and tests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImapState {
    Starting,
    Connecting,
    /// Handing messages to the sink and moving them.
    Draining,
    /// Waiting in IDLE for the server to announce new mail.
    Idle,
    /// Sleeping `poll_interval` (the server has no IDLE).
    Polling,
    /// Waiting out a backoff after a failure.
    Retrying,
    Stopped,
}

/// A shared view of the intake's [`ImapState`], its current failure, its backlog and how
/// often it reconnected; cheap to clone.
#[derive(Debug, Clone)]
pub struct ImapStatus {
    state: Arc<watch::Sender<ImapState>>,
    /// The failing step ([`ImapError::stage`]) and the error.
    last_error: Arc<Mutex<Option<(&'static str, String)>>>,
    /// Messages in the intake mailbox when last looked; -1 before the first look.
    backlog: Arc<AtomicI64>,
    /// Connection attempts after the first.
    reconnects: Arc<AtomicU64>,
}

impl Default for ImapStatus {
    fn default() -> Self {
        ImapStatus {
            state: Arc::new(watch::Sender::new(ImapState::Starting)),
            last_error: Arc::new(Mutex::new(None)),
            backlog: Arc::new(AtomicI64::new(-1)),
            reconnects: Arc::new(AtomicU64::new(0)),
        }
    }
}

impl ImapStatus {
    pub fn new() -> ImapStatus {
        ImapStatus::default()
    }

    pub fn state(&self) -> ImapState {
        *self.state.borrow()
    }

    /// A receiver that sees every later change (`changed()`, `wait_for(..)`).
    pub fn subscribe(&self) -> watch::Receiver<ImapState> {
        self.state.subscribe()
    }

    /// Why the intake is retrying, while it is failing (cleared once work goes through).
    /// Carries server and network errors only, never message content.
    pub fn last_error(&self) -> Option<String> {
        self.failure().map(|(_, e)| e)
    }

    /// [`ImapStatus::last_error`] with the step that failed ([`ImapError::stage`]).
    pub fn failure(&self) -> Option<(&'static str, String)> {
        self.last_error.lock().map(|e| e.clone()).unwrap_or_else(|e| e.into_inner().clone())
    }

    fn set_error(&self, error: Option<&ImapError>) {
        let error = error.map(|e| (e.stage(), e.to_string()));
        match self.last_error.lock() {
            Ok(mut e) => *e = error,
            Err(poisoned) => *poisoned.into_inner() = error,
        }
    }

    /// Messages waiting in the intake mailbox when last looked (`None` before the first look).
    pub fn backlog(&self) -> Option<u64> {
        u64::try_from(self.backlog.load(Ordering::Relaxed)).ok()
    }

    pub(crate) fn set_backlog(&self, n: u64) {
        self.backlog.store(i64::try_from(n).unwrap_or(i64::MAX), Ordering::Relaxed);
    }

    /// Connection attempts after the first, since the daemon started.
    pub fn reconnects(&self) -> u64 {
        self.reconnects.load(Ordering::Relaxed)
    }

    fn set(&self, new: ImapState) {
        self.state.send_if_modified(|s| {
            let changed = *s != new;
            *s = new;
            changed
        });
    }
}

/// Runs until `shutdown` is cancelled: connect, drain the mailbox, IDLE (or poll), and after
/// any failure reconnect with capped exponential backoff and jitter. Each kind of failure is
/// logged once as a warning (repeats at debug), and recovery once at info.
///
/// On cancel it finishes the batch in hand (sink commit and moves), logs out and returns
/// `Ok(())`. It returns an error only for settings no retry can fix
/// ([`ImapError::is_permanent`]), such as plain IMAP to a host that is not loopback.
pub async fn run<S: Sink>(settings: ImapSettings, sink: &S, shutdown: CancellationToken, status: &ImapStatus) -> Result<(), ImapError> {
    if let Err(e) = settings.check() {
        tracing::error!(error = %e, "IMAP intake cannot start");
        status.set_error(Some(&e));
        status.set(ImapState::Stopped);
        return Err(e);
    }
    let mut health = Health { status, backoff: Backoff::new(backoff::INITIAL, backoff::MAX), failing: None };
    let mut held = drain::HeldBack::default();
    let mut first = true;
    while !shutdown.is_cancelled() {
        if !std::mem::take(&mut first) {
            status.reconnects.fetch_add(1, Ordering::Relaxed);
        }
        status.set(ImapState::Connecting);
        let err = match drain::serve(&settings, sink, &shutdown, &mut health, &mut held).await {
            Ok(()) => break,
            Err(e) => e,
        };
        if err.is_permanent() {
            tracing::error!(error = %err, "IMAP intake stopped");
            status.set_error(Some(&err));
            status.set(ImapState::Stopped);
            return Err(err);
        }
        let wait = health.failed(&err);
        status.set(ImapState::Retrying);
        tokio::select! {
            _ = shutdown.cancelled() => break,
            _ = tokio::time::sleep(wait) => {}
        }
    }
    status.set(ImapState::Stopped);
    tracing::info!("IMAP intake stopped");
    Ok(())
}

/// Backoff and log-once bookkeeping shared by the reconnect loop and the session.
pub(crate) struct Health<'a> {
    status: &'a ImapStatus,
    backoff: Backoff,
    /// The last failure logged as a warning; the same failure again is logged at debug.
    failing: Option<String>,
}

impl Health<'_> {
    /// True while a failure is outstanding (so routine reconnects are not logged as news).
    fn is_failing(&self) -> bool {
        self.failing.is_some()
    }

    fn set(&self, state: ImapState) {
        self.status.set(state);
    }

    /// Messages waiting in the intake mailbox, for health reports.
    fn backlog(&self, n: u64) {
        self.status.set_backlog(n);
    }

    /// Work went through (a batch committed or the mailbox drained): back to short waits.
    fn succeeded(&mut self) {
        if self.failing.take().is_some() {
            self.status.set_error(None);
            tracing::info!(after_failures = self.backoff.failures(), "IMAP intake recovered");
        }
        self.backoff.reset();
    }

    /// Logs the failure (once per distinct failure) and returns how long to wait.
    fn failed(&mut self, err: &ImapError) -> Duration {
        let wait = self.backoff.next(rand::random::<f64>());
        let text = err.to_string();
        if self.failing.as_deref() == Some(text.as_str()) {
            tracing::debug!(error = %text, retry_in_ms = wait.as_millis() as u64, "IMAP intake still failing");
        } else {
            tracing::warn!(error = %text, retry_in_ms = wait.as_millis() as u64, "IMAP intake failed; retrying");
            self.status.set_error(Some(err));
            self.failing = Some(text);
        }
        wait
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> ImapSettings {
        ImapSettings {
            host: "127.0.0.1".into(),
            port: 143,
            security: Security::Plain,
            username: "u".into(),
            auth: ImapAuth::Password("p".into()),
            mailbox: "INBOX".into(),
            filed_folder: "Haven/Filed".into(),
            quarantine_folder: "Haven/Quarantine".into(),
            poll_interval: Duration::from_secs(60),
            max_message_size: 1 << 20,
            batch_size: 50,
            idle_renew: Duration::from_secs(25 * 60),
        }
    }

    #[test]
    fn sound_settings_pass() {
        assert!(settings().check().is_ok());
    }

    #[test]
    fn plain_to_a_remote_host_is_refused_but_tls_is_not() {
        let mut s = settings();
        s.host = "imap.example.org".into();
        let e = s.check().err();
        assert!(matches!(e, Some(ImapError::PlainRefused { .. })), "{e:?}");
        assert!(e.is_some_and(|e| e.is_permanent() && e.to_string().contains("loopback")));
        s.security = Security::Tls;
        assert!(s.check().is_ok());
    }

    #[test]
    fn all_setting_problems_are_reported_together() {
        let mut s = settings();
        s.batch_size = 0;
        s.filed_folder = "INBOX".into();
        let text = s.check().err().map(|e| e.to_string()).unwrap_or_default();
        assert!(text.contains("batch_size") && text.contains("differ"), "{text}");
    }

    #[test]
    fn debug_output_hides_the_password() {
        let text = format!("{:?}", settings());
        assert!(!text.contains("\"p\""), "{text}");
    }

    #[test]
    fn status_reports_changes() {
        let status = ImapStatus::new();
        let rx = status.subscribe();
        status.set(ImapState::Idle);
        assert!(rx.has_changed().unwrap_or(false));
        assert_eq!(status.state(), ImapState::Idle);
    }
}
