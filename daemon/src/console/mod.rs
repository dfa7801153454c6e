//! The DSL console: a web page served by `haven run` on `[console] listen`: plain HTTP on
//! loopback behind a TLS reverse proxy, or TLS built in (`tls`). `routes` wires the sign-in
//! pages, the chronology and the security headers; `actions` the triage, release and link
//! forms; `files` downloads and the sandboxed original message; `access` the access log.
//! `auth` holds the sign-in secrets (pure), `session` the cookies and server-side sessions,
//! `limit` and `peer` the per-client sign-in limit, `passkey` the WebAuthn second factor,
//! `views` the askama templates (auto-escaping; the only script is passkey.js). This module serves; it must not decide who may see what
//! (that is `visibility`) or who may act (the CLI's and pipeline's own checks).

mod access;
mod actions;
mod auth;
pub(crate) mod bundle;
mod files;
mod limit;
mod passkey;
mod peer;
mod qr;
mod reports;
mod routes;
mod session;
mod tls;
mod views;

pub use tls::TlsError;

use crate::clock::Clock;
use crate::config::ConsoleSettings;
use crate::store::Store;
use chrono::{DateTime, Utc};
use std::sync::Arc;
use tokio::net::TcpListener;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

/// Why the console cannot start.
#[derive(Debug, thiserror::Error)]
pub enum ConsoleError {
    #[error("console.listen {addr}: cannot listen: {source} (is another program using that port?)")]
    Bind { addr: std::net::SocketAddr, source: std::io::Error },
    #[error(transparent)]
    Tls(#[from] tls::TlsError),
}

/// What every request handler shares.
pub struct State {
    pub store: Store,
    /// The console's audit entries, committed in groups (see [`crate::store::AuditWriter`]).
    auditor: crate::store::AuditWriter,
    pub clock: Arc<dyn Clock>,
    key: auth::ConsoleKey,
    pub settings: ConsoleSettings,
    pub mail_domain: String,
    pub intake_address: String,
    pub wake_outbox: Arc<Notify>,
    /// The intake's filer: releases and triage answers go through the pipeline's own stages.
    pub filer: Arc<crate::pipeline::Filer>,
    /// The school's name, for exports.
    pub school: String,
    /// Sign-in attempts per client address.
    attempts: limit::Attempts,
    /// The school's time zone, for times shown on pages.
    pub tz: chrono_tz::Tz,
    /// The keyring, shared with the intake: opens the directory and chronology entries.
    pub keys: Arc<crate::store::LiveKeys>,
    /// Blind indexes of UPNs and name words: a search opens only the pupils it finds.
    pub blind: crate::blind::BlindIndex,
    cookies: session::CookieNames,
    /// The WebAuthn relying party (`public_url`'s host); None when that host is an address.
    passkeys: Option<webauthn_rs::Webauthn>,
    /// What the CLI's report commands need (the configuration, with the school's terms).
    pub app: Arc<crate::cli::App>,
}

impl State {
    /// `reply_key` is the alerts reply key: the console's signing key is derived from it.
    pub fn new(
        app: &crate::cli::App,
        settings: ConsoleSettings,
        reply_key: &[u8],
        blind: crate::blind::BlindIndex,
        filer: Arc<crate::pipeline::Filer>,
        wake_outbox: Arc<Notify>,
    ) -> State {
        let cookies = session::CookieNames::for_url(&settings.public_url);
        let passkeys = passkey::relying_party(&settings.public_url);
        State {
            store: app.store.clone(),
            auditor: crate::store::AuditWriter::start(app.store.clone()),
            clock: app.clock.clone(),
            key: auth::ConsoleKey::derive(reply_key),
            settings,
            mail_domain: app.config.school.mail_domain().to_string(),
            intake_address: app.config.school.intake_address.clone(),
            wake_outbox,
            keys: filer.keys(),
            blind,
            filer,
            school: app.config.school.name.clone(),
            attempts: limit::Attempts::default(),
            tz: app.config.school.tz(),
            cookies,
            passkeys,
            app: Arc::new(crate::cli::App { config: app.config.clone(), store: app.store.clone(), clock: app.clock.clone() }),
        }
    }

    /// Appends an audit entry; returns once it is committed, so that nothing it records is
    /// shown or done before it is.
    pub async fn audit(
        &self,
        at: DateTime<Utc>,
        actor: &str,
        action: &str,
        subject: &str,
        detail: &str,
    ) -> Result<(), crate::store::StoreError> {
        self.auditor.append(at, actor, action, subject, detail).await
    }

    /// The keyring, brought up to date with the database (the one held if that fails).
    pub async fn sealer(&self) -> crate::seal::Sealer {
        self.keys.current(&self.store).await.unwrap_or_else(|_| self.keys.held())
    }

    /// Every member of staff and only pupils `ids`, opened with the keyring: a page opens the
    /// pupils it shows, never the whole roll (nor any contact).
    pub async fn directory_with_pupils(&self, ids: &[i64]) -> Result<crate::directory::Directory, crate::store::StoreError> {
        self.store.load_directory_with_pupils(&self.sealer().await, ids).await
    }

    /// Every member of staff, no pupils.
    pub async fn staff_directory(&self) -> Result<crate::directory::Directory, crate::store::StoreError> {
        self.directory_with_pupils(&[]).await
    }

    /// Staff, and the pupils `queries` (each a UPN or a full name) may name, found through the
    /// blind indexes: what `cli::chronology::find_pupil` needs to answer each query.
    pub async fn directory_naming(&self, queries: &[&str]) -> Result<crate::directory::Directory, crate::store::StoreError> {
        let mut ids = Vec::new();
        for q in queries {
            ids.extend(self.store.find_pupils(&self.blind, q).await?);
        }
        ids.sort_unstable();
        ids.dedup();
        self.directory_with_pupils(&ids).await
    }
}

/// The console, bound and ready to serve.
pub struct Console {
    listener: TcpListener,
    /// Built-in TLS: the acceptor and the files it is reloaded from.
    tls: Option<(tokio_rustls::TlsAcceptor, (std::path::PathBuf, std::path::PathBuf))>,
}

impl Console {
    /// Binds `settings.listen` and loads the certificate, so that `haven run` refuses to start
    /// if the port is taken or the certificate unusable.
    pub async fn bind(settings: &ConsoleSettings) -> Result<Console, ConsoleError> {
        let tls = match &settings.tls {
            Some((cert, key)) => Some((tls::load(cert, key)?, (cert.clone(), key.clone()))),
            None => None,
        };
        let listener = TcpListener::bind(settings.listen).await.map_err(|source| ConsoleError::Bind { addr: settings.listen, source })?;
        Ok(Console { listener, tls })
    }

    /// Serves until `shutdown` is cancelled; requests in flight are finished first.
    pub async fn run(self, state: State, shutdown: CancellationToken) {
        let addr = self.listener.local_addr().ok();
        tracing::info!(listen = ?addr, tls = self.tls.is_some(), "console listening");
        let app = routes::router(Arc::new(state)).into_make_service_with_connect_info::<peer::Peer>();
        let served = match self.tls {
            None => axum::serve(self.listener, app).with_graceful_shutdown(shutdown.clone().cancelled_owned()).await,
            Some((acceptor, files)) => match tls::serve_tls(self.listener, acceptor, files, shutdown.clone()) {
                Ok((listener, accepting)) => {
                    let serving = axum::serve(listener, app).with_graceful_shutdown(shutdown.clone().cancelled_owned());
                    let (served, ()) = tokio::join!(serving.into_future(), accepting);
                    served
                }
                Err(e) => Err(e),
            },
        };
        if let Err(e) = served {
            tracing::error!(error = %e, "console stopped; shutting down");
            shutdown.cancel();
        }
    }
}
