//! The SMTP transport (lettre over tokio and rustls), and the one place that decides what an
//! SMTP failure means for the outbox: try again later, or give up on this recipient.
//!
//! Connections are pooled (lettre's pool: up to 10, closed after 60 s idle), so a burst of
//! alerts shares one TCP+TLS+AUTH session instead of opening one each. With XOAUTH2
//! (Microsoft 365, Google) the token is read from its file or command when a connection is
//! first needed, and read again when the server rejects it.

use crate::source::imap::{TokenSource, read_token};
use lettre::transport::smtp::authentication::{Credentials, Mechanism};
use lettre::transport::smtp::client::{Tls, TlsParameters};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

/// How long one SMTP conversation may take before it counts as a connection failure.
const SMTP_TIMEOUT: Duration = Duration::from_secs(30);

/// How the connection to the mail server is protected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Security {
    /// Implicit TLS (usually port 465).
    Tls,
    /// STARTTLS, required (usually port 587).
    Starttls,
    /// No encryption: refused unless the host is a loopback address (a local relay or a test).
    Plain,
}

/// Where and how to send.
#[derive(Clone)]
pub struct SmtpSettings {
    pub host: String,
    pub port: u16,
    pub security: Security,
    pub username: Option<String>,
    pub password: Option<String>,
    /// Where an OAuth2 access token comes from; when set, XOAUTH2 is used instead of the
    /// password.
    pub xoauth2_token: Option<TokenSource>,
}

impl std::fmt::Debug for SmtpSettings {
    // Secrets stay out of logs and panics.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SmtpSettings")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("security", &self.security)
            .field("username", &self.username.as_ref().map(|_| "…"))
            .field("password", &self.password.as_ref().map(|_| "…"))
            .field("xoauth2_token", &self.xoauth2_token)
            .finish()
    }
}

/// Why the SMTP transport could not be set up. A configuration problem: no send can succeed.
#[derive(Debug, thiserror::Error)]
pub enum SmtpSetupError {
    #[error("smtp.security = \"plain\" is refused for {0}: use \"tls\" or \"starttls\", or a loopback host")]
    PlainNotLoopback(String),
    #[error("cannot set up TLS for {host}: {source}")]
    Tls { host: String, source: lettre::transport::smtp::Error },
}

/// What a failed send means for the email.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    /// The server refused this recipient or message for good (5xx): dead-letter it now.
    Permanent(String),
    /// A 4xx reply: the server asks to try again later.
    Transient(String),
    /// The server could not be reached or the conversation broke off (including timeouts and
    /// TLS failures): nothing about this email in particular, so later emails in the same pass
    /// are not tried either.
    Connection(String),
}

/// An SMTP client ready to send.
#[derive(Clone)]
pub struct SmtpSender {
    settings: Arc<SmtpSettings>,
    tls: Tls,
    /// The pooled transport, built at first use (with XOAUTH2, once a token is in hand) and
    /// dropped, with its connections, when the server rejects that token.
    transport: Arc<tokio::sync::Mutex<Option<AsyncSmtpTransport<Tokio1Executor>>>>,
}

impl SmtpSender {
    /// Builds the client; checks that plain text is only used on loopback.
    pub fn new(s: &SmtpSettings) -> Result<SmtpSender, SmtpSetupError> {
        let tls_params = || TlsParameters::new(s.host.clone()).map_err(|source| SmtpSetupError::Tls { host: s.host.clone(), source });
        let tls = match s.security {
            Security::Tls => Tls::Wrapper(tls_params()?),
            Security::Starttls => Tls::Required(tls_params()?),
            Security::Plain => {
                if !is_loopback(&s.host) {
                    return Err(SmtpSetupError::PlainNotLoopback(s.host.clone()));
                }
                Tls::None
            }
        };
        // The pooled transport is built at first use, inside the runtime its pool needs.
        Ok(SmtpSender { settings: Arc::new(s.clone()), tls, transport: Arc::new(tokio::sync::Mutex::new(None)) })
    }

    fn build(&self, token: Option<String>) -> AsyncSmtpTransport<Tokio1Executor> {
        let s = &self.settings;
        let mut b = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(s.host.clone())
            .port(s.port)
            .tls(self.tls.clone())
            .timeout(Some(SMTP_TIMEOUT));
        if let Some(user) = &s.username {
            if let Some(token) = token {
                b = b.credentials(Credentials::new(user.clone(), token)).authentication(vec![Mechanism::Xoauth2]);
            } else if let Some(pass) = &s.password {
                b = b.credentials(Credentials::new(user.clone(), pass.clone())).authentication(vec![Mechanism::Plain, Mechanism::Login]);
            }
        }
        b.build()
    }

    /// The transport in use, building it (and reading the OAuth2 token) when there is none.
    async fn transport(&self) -> Result<AsyncSmtpTransport<Tokio1Executor>, Failure> {
        let mut slot = self.transport.lock().await;
        if let Some(t) = slot.as_ref() {
            return Ok(t.clone());
        }
        let token = match &self.settings.xoauth2_token {
            Some(source) => {
                Some(read_token(source).await.map_err(|e| Failure::Connection(format!("cannot get the SMTP OAuth2 token: {e}")))?)
            }
            None => None,
        };
        let t = self.build(token);
        *slot = Some(t.clone());
        Ok(t)
    }

    /// Forgets a rejected OAuth2 token (and the pool built on it); the next use reads the token
    /// afresh. Returns false when there is no token to re-read (password login).
    async fn forget_token(&self) -> bool {
        if self.settings.xoauth2_token.is_none() {
            return false;
        }
        *self.transport.lock().await = None;
        tracing::info!("the SMTP server rejected the OAuth2 token; reading it again");
        true
    }

    /// Sends one message to its one recipient.
    pub async fn send(&self, msg: Message) -> Result<(), Failure> {
        let first = self.transport().await?.send(msg.clone()).await;
        match first {
            Err(e) if is_auth_refusal(&e) && self.forget_token().await => {
                self.transport().await?.send(msg).await.map(|_| ()).map_err(|e| classify(&e))
            }
            other => other.map(|_| ()).map_err(|e| classify(&e)),
        }
    }

    /// Connects and, when credentials are configured, authenticates, then leaves the
    /// connection idle in the pool without sending anything (`haven check`).
    pub async fn check_connection(&self) -> Result<(), String> {
        let test = async |sender: &SmtpSender| match sender.transport().await {
            Err(Failure::Connection(e) | Failure::Transient(e) | Failure::Permanent(e)) => Err((e, None)),
            Ok(t) => match t.test_connection().await {
                Ok(true) => Ok(()),
                Ok(false) => Err(("the server did not answer NOOP".to_string(), None)),
                Err(e) => Err((e.to_string(), Some(e))),
            },
        };
        match test(self).await {
            Err((_, Some(e))) if is_auth_refusal(&e) && self.forget_token().await => test(self).await.map_err(|(text, _)| text),
            other => other.map_err(|(text, _)| text),
        }
    }
}

/// 530, 534, 535 or 538: the server refused the login, not this message.
fn is_auth_refusal(e: &lettre::transport::smtp::Error) -> bool {
    e.status().is_some_and(|c| matches!(c.to_string().as_str(), "530" | "534" | "535" | "538"))
}

/// Maps lettre's error onto the outbox's retry policy.
fn classify(e: &lettre::transport::smtp::Error) -> Failure {
    let text = e.to_string();
    // Authentication refusals (530, 534, 535, 538) are permanent to SMTP but say nothing about
    // the recipient: the configuration is wrong for every email, so keep them and retry.
    if is_auth_refusal(e) {
        return Failure::Connection(text);
    }
    if e.is_permanent() {
        Failure::Permanent(text)
    } else if e.is_transient() {
        Failure::Transient(text)
    } else {
        Failure::Connection(text)
    }
}

fn is_loopback(host: &str) -> bool {
    let h = host.trim_start_matches('[').trim_end_matches(']');
    h.eq_ignore_ascii_case("localhost") || h.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(host: &str, security: Security) -> SmtpSettings {
        SmtpSettings {
            host: host.into(),
            port: 25,
            security,
            username: Some("u".into()),
            password: Some("secret".into()),
            xoauth2_token: None,
        }
    }

    #[test]
    fn plain_only_on_loopback() {
        assert!(SmtpSender::new(&settings("127.0.0.1", Security::Plain)).is_ok());
        assert!(SmtpSender::new(&settings("::1", Security::Plain)).is_ok());
        assert!(SmtpSender::new(&settings("localhost", Security::Plain)).is_ok());
        assert!(matches!(SmtpSender::new(&settings("smtp.example.org", Security::Plain)), Err(SmtpSetupError::PlainNotLoopback(_))));
        assert!(SmtpSender::new(&settings("smtp.example.org", Security::Starttls)).is_ok());
    }

    #[test]
    fn secrets_are_not_debug_printed() {
        let s = format!("{:?}", settings("h", Security::Tls));
        assert!(!s.contains("secret"), "{s}");
    }
}
