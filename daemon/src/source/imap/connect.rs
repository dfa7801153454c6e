//! Opening an authenticated IMAP session: TCP, then implicit TLS, STARTTLS or (loopback only)
//! plain, then LOGIN or SASL XOAUTH2. It does not select a mailbox or touch messages.

use std::fmt::Debug;
use std::sync::Arc;
use std::time::Duration;

use async_imap::imap_proto::{Response, Status};
use async_imap::{Client, Session};
use rustls_platform_verifier::BuilderVerifierExt;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::rustls::ClientConfig;
use tokio_rustls::rustls::pki_types::ServerName;

use super::wire::{is_loopback_host, xoauth2_payload};
use super::{ImapAuth, ImapError, ImapSettings, Security, TokenSource};

/// TCP connect, TLS handshake, greeting and login each get this long.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);
/// A token command that hangs must not stall the intake forever.
const TOKEN_COMMAND_TIMEOUT: Duration = Duration::from_secs(60);

/// Any byte stream the session can run over (TCP or TLS over TCP), boxed so one session type
/// serves every security mode.
pub(crate) trait Io: AsyncRead + AsyncWrite + Unpin + Send + Debug {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send + Debug> Io for T {}

pub(crate) type ImapSession = Session<Box<dyn Io>>;

/// Refuses settings that can never work, before any network traffic: plain IMAP to a host
/// that is not this machine would send the password in clear.
pub(crate) fn check_security(settings: &ImapSettings) -> Result<(), ImapError> {
    if matches!(settings.security, Security::Plain) && !is_loopback_host(&settings.host) {
        return Err(ImapError::PlainRefused { host: settings.host.clone() });
    }
    Ok(())
}

/// Connects and logs in.
pub(crate) async fn open(settings: &ImapSettings) -> Result<ImapSession, ImapError> {
    check_security(settings)?;
    let client = within(CONNECT_TIMEOUT, "connect", transport(settings)).await??;
    within(CONNECT_TIMEOUT, "login", login(client, settings)).await?
}

async fn transport(settings: &ImapSettings) -> Result<Client<Box<dyn Io>>, ImapError> {
    let host = settings.host.as_str();
    let tcp = TcpStream::connect((host, settings.port)).await.map_err(|source| ImapError::Connect {
        host: host.to_string(),
        port: settings.port,
        source,
    })?;
    // Commands are small and answered one at a time; Nagle only adds latency.
    let _ = tcp.set_nodelay(true);
    match settings.security {
        Security::Plain => {
            let mut client = Client::new(Box::new(tcp) as Box<dyn Io>);
            read_greeting(&mut client).await?;
            Ok(client)
        }
        Security::Tls => {
            let tls = tls_wrap(host, tcp).await?;
            let mut client = Client::new(Box::new(tls) as Box<dyn Io>);
            read_greeting(&mut client).await?;
            Ok(client)
        }
        Security::Starttls => {
            let mut client = Client::new(tcp);
            read_greeting(&mut client).await?;
            client.run_command_and_check_ok("STARTTLS", None).await.map_err(|source| ImapError::Protocol { op: "STARTTLS", source })?;
            // No greeting follows the handshake (RFC 3501 6.2.1).
            let tls = tls_wrap(host, client.into_inner()).await?;
            Ok(Client::new(Box::new(tls) as Box<dyn Io>))
        }
    }
}

/// TLS with the operating system's trust store (what staff expect: a certificate that their
/// browsers trust is trusted here too), rustls on aws-lc-rs as elsewhere in Haven.
async fn tls_wrap(host: &str, tcp: TcpStream) -> Result<tokio_rustls::client::TlsStream<TcpStream>, ImapError> {
    let tls_err = |message: String| ImapError::Tls { host: host.to_string(), message };
    let provider = Arc::new(tokio_rustls::rustls::crypto::aws_lc_rs::default_provider());
    let config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .and_then(|b| b.with_platform_verifier())
        .map_err(|e| tls_err(e.to_string()))?
        .with_no_client_auth();
    let name = ServerName::try_from(host.to_string()).map_err(|e| tls_err(e.to_string()))?;
    TlsConnector::from(Arc::new(config)).connect(name, tcp).await.map_err(|e| tls_err(e.to_string()))
}

/// The server speaks first: `* OK` to go on, anything else (`* BYE`, garbage, EOF) is an error.
async fn read_greeting<T: Io>(client: &mut Client<T>) -> Result<(), ImapError> {
    let greeting = client
        .read_response()
        .await
        .map_err(|e| ImapError::Protocol { op: "greeting", source: e.into() })?
        .ok_or(ImapError::Protocol { op: "greeting", source: async_imap::error::Error::ConnectionLost })?;
    match greeting.parsed() {
        Response::Data { status: Status::Ok, .. } => Ok(()),
        _ => Err(ImapError::Protocol { op: "greeting", source: async_imap::error::Error::Bad("the server did not greet with OK".into()) }),
    }
}

async fn login(client: Client<Box<dyn Io>>, settings: &ImapSettings) -> Result<ImapSession, ImapError> {
    let user = settings.username.as_str();
    match &settings.auth {
        ImapAuth::Password(password) => client.login(user, password).await.map_err(|(e, _)| ImapError::Auth(e.to_string())),
        ImapAuth::Xoauth2 { token_source } => {
            // Read afresh on every connect: a rejected or expired token is replaced by
            // whatever refreshes the file or command, and the next attempt picks it up.
            let token = read_token(token_source).await?;
            let auth = XOAuth2 { payload: Some(xoauth2_payload(user, &token)) };
            client.authenticate("XOAUTH2", auth).await.map_err(|(e, _)| ImapError::Auth(e.to_string()))
        }
    }
}

/// Answers the first challenge with the token; answers an error challenge (the server's JSON
/// reason) with an empty line, as RFC 7628 asks, so the server can finish with NO.
struct XOAuth2 {
    payload: Option<String>,
}

impl async_imap::Authenticator for XOAuth2 {
    type Response = String;

    fn process(&mut self, _challenge: &[u8]) -> String {
        self.payload.take().unwrap_or_default()
    }
}

pub(crate) async fn read_token(source: &TokenSource) -> Result<String, ImapError> {
    let token = match source {
        TokenSource::File(path) => {
            tokio::fs::read_to_string(path).await.map_err(|e| ImapError::Token(format!("reading {}: {e}", path.display())))?
        }
        TokenSource::Command(command) => {
            let run = tokio::process::Command::new("sh")
                .arg("-c")
                .arg(command)
                .stdin(std::process::Stdio::null())
                .stderr(std::process::Stdio::inherit())
                .kill_on_drop(true)
                .output();
            let out = tokio::time::timeout(TOKEN_COMMAND_TIMEOUT, run)
                .await
                .map_err(|_| ImapError::Token("the token command timed out".into()))?
                .map_err(|e| ImapError::Token(format!("cannot run the token command: {e}")))?;
            if !out.status.success() {
                return Err(ImapError::Token(format!("the token command failed ({})", out.status)));
            }
            String::from_utf8(out.stdout).map_err(|_| ImapError::Token("the token command printed non-UTF-8".into()))?
        }
    };
    let token = token.trim();
    if token.is_empty() {
        return Err(ImapError::Token("the token is empty".into()));
    }
    Ok(token.to_string())
}

/// Runs one IMAP command (or command and its response stream) with a deadline, naming the
/// command in the error either way.
pub(crate) async fn command<T>(
    limit: Duration,
    op: &'static str,
    fut: impl Future<Output = async_imap::error::Result<T>>,
) -> Result<T, ImapError> {
    within(limit, op, fut).await?.map_err(|source| ImapError::Protocol { op, source })
}

/// Runs `fut` with a deadline, naming the operation in the error.
pub(crate) async fn within<T>(limit: Duration, op: &'static str, fut: impl Future<Output = T>) -> Result<T, ImapError> {
    tokio::time::timeout(limit, fut).await.map_err(|_| ImapError::Timeout(op))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn token_command_output_is_trimmed() {
        let t = read_token(&TokenSource::Command("printf ' abc \\n'".into())).await;
        assert_eq!(t.ok().as_deref(), Some("abc"));
    }

    #[tokio::test]
    async fn failing_or_empty_token_is_an_error() {
        assert!(read_token(&TokenSource::Command("exit 3".into())).await.is_err());
        assert!(read_token(&TokenSource::Command("true".into())).await.is_err());
        let missing = TokenSource::File("/nonexistent/haven-token".into());
        assert!(read_token(&missing).await.is_err());
    }

    #[test]
    fn xoauth2_sends_the_token_once_then_an_empty_answer() {
        use async_imap::Authenticator;
        let mut a = XOAuth2 { payload: Some("p".into()) };
        assert_eq!(a.process(b""), "p");
        assert_eq!(a.process(b"{\"status\":\"401\"}"), "");
    }
}
