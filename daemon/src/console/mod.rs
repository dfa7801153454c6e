//! The DSL console: a web page served by `haven run` on `[console] listen` (loopback only, plain
//! HTTP behind a TLS reverse proxy). `routes` wires the pages and the security headers, `auth`
//! holds the sign-in secrets (pure), `session` the cookies and server-side sessions, `views`
//! the askama templates (auto-escaping, no JavaScript). This module serves; it must not decide
//! who may see what (that is `visibility`).

mod auth;
mod routes;
mod session;
mod views;

use crate::clock::Clock;
use crate::config::ConsoleSettings;
use crate::store::Store;
use std::sync::Arc;
use tokio::net::TcpListener;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

/// Why the console cannot start.
#[derive(Debug, thiserror::Error)]
pub enum ConsoleError {
    #[error("console.listen {addr}: cannot listen: {source} (is another program using that port?)")]
    Bind { addr: std::net::SocketAddr, source: std::io::Error },
}

/// What every request handler shares.
pub struct State {
    pub store: Store,
    pub clock: Arc<dyn Clock>,
    key: auth::ConsoleKey,
    pub settings: ConsoleSettings,
    pub mail_domain: String,
    pub intake_address: String,
    pub wake_outbox: Arc<Notify>,
    /// The school's time zone, for times shown on pages.
    pub tz: chrono_tz::Tz,
    /// The keyring, shared with the intake: opens the directory and chronology entries.
    pub keys: Arc<crate::store::LiveKeys>,
    cookies: session::CookieNames,
}

impl State {
    /// `reply_key` is the alerts reply key: the console's signing key is derived from it.
    pub fn new(
        app: &crate::cli::App,
        settings: ConsoleSettings,
        reply_key: &[u8],
        keys: Arc<crate::store::LiveKeys>,
        wake_outbox: Arc<Notify>,
    ) -> State {
        let cookies = session::CookieNames::for_url(&settings.public_url);
        State {
            store: app.store.clone(),
            clock: app.clock.clone(),
            key: auth::ConsoleKey::derive(reply_key),
            settings,
            mail_domain: app.config.school.mail_domain().to_string(),
            intake_address: app.config.school.intake_address.clone(),
            wake_outbox,
            tz: app.config.school.tz(),
            keys,
            cookies,
        }
    }

    /// The keyring, brought up to date with the database (the one held if that fails).
    pub async fn sealer(&self) -> crate::seal::Sealer {
        self.keys.current(&self.store).await.unwrap_or_else(|_| self.keys.held())
    }

    /// The directory, opened with the keyring.
    pub async fn directory(&self) -> Result<crate::directory::Directory, crate::store::StoreError> {
        self.store.load_directory(&self.sealer().await).await
    }
}

/// The console, bound and ready to serve.
pub struct Console {
    listener: TcpListener,
}

impl Console {
    /// Binds `settings.listen`, so that `haven run` refuses to start if the port is taken.
    pub async fn bind(settings: &ConsoleSettings) -> Result<Console, ConsoleError> {
        let listener =
            TcpListener::bind(settings.listen).await.map_err(|source| ConsoleError::Bind { addr: settings.listen, source })?;
        Ok(Console { listener })
    }

    /// Serves until `shutdown` is cancelled; requests in flight are finished first.
    pub async fn run(self, state: State, shutdown: CancellationToken) {
        let addr = self.listener.local_addr().ok();
        tracing::info!(listen = ?addr, "console listening");
        let served = axum::serve(self.listener, routes::router(Arc::new(state)))
            .with_graceful_shutdown(shutdown.clone().cancelled_owned())
            .await;
        if let Err(e) = served {
            tracing::error!(error = %e, "console stopped; shutting down");
            shutdown.cancel();
        }
    }
}
