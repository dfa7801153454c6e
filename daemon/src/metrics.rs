//! `/metrics` (Prometheus text) and `/healthz` on `[metrics] listen`, served by `haven run`.
//!
//! Counts that the database holds (messages by state, the outbox, overdue outcomes) are read
//! from it at each scrape, so every daemon sharing a database reports the same numbers; what
//! only this process sees (how long filing took, IMAP reconnects) is counted here. `/healthz`
//! answers 503 once the intake has been failing for longer than `healthz_grace`.
//!
//! Plain HTTP without authentication, so it listens on loopback unless `allow_remote = true`.
//! Nothing here names a pupil, an address or a subject: only states and counts.

use crate::clock::Clock;
use crate::health::HealthRecorder;
use crate::source::imap::ImapStatus;
use crate::store::{MessageState, Store};
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};
use std::time::Duration;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

/// `[metrics]` as written.
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MetricsRaw {
    listen: String,
    #[serde(default)]
    allow_remote: bool,
    #[serde(default = "default_grace")]
    healthz_grace: String,
}

fn default_grace() -> String {
    "10m".into()
}

/// `[metrics]`: where `/metrics` and `/healthz` listen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MetricsSettings {
    pub listen: SocketAddr,
    /// How long the intake may fail before `/healthz` says 503 (a blip is not an outage).
    pub healthz_grace: Duration,
}

impl MetricsRaw {
    /// Checks the address (loopback unless allowed) and the grace period.
    pub fn resolve(&self) -> Result<MetricsSettings, String> {
        let listen = self
            .listen
            .parse::<SocketAddr>()
            .map_err(|_| format!("metrics.listen: expected an address and port such as \"127.0.0.1:9187\", found {:?}", self.listen))?;
        if !listen.ip().is_loopback() && !self.allow_remote {
            return Err(format!(
                "metrics.listen: {listen} is not a loopback address; /metrics and /healthz have no authentication, so \
                 they listen on loopback unless you set metrics.allow_remote = true (and firewall the port)"
            ));
        }
        let healthz_grace = crate::config::parse_duration(&self.healthz_grace)
            .ok_or_else(|| format!("metrics.healthz_grace: expected a duration such as \"10m\", found {:?}", self.healthz_grace))?;
        Ok(MetricsSettings { listen, healthz_grace })
    }
}

/// Why the metrics endpoint cannot start.
#[derive(Debug, thiserror::Error)]
#[error("metrics.listen {addr}: cannot listen: {source} (is another program using that port?)")]
pub struct MetricsBindError {
    addr: SocketAddr,
    source: std::io::Error,
}

type Labels = Vec<(String, String)>;

/// What this process counts, and the gauges filled from the database at each scrape.
pub struct Metrics {
    registry: Registry,
    filing_latency: Histogram,
    messages: Family<Labels, Gauge>,
    outbox: Family<Labels, Gauge>,
    outcomes: Family<Labels, Gauge>,
    imap_reconnects: Counter,
    intake_failing: Gauge,
    /// The IMAP intake's status, once it runs (the Maildir intake has no reconnects).
    imap: OnceLock<ImapStatus>,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::default();
        // 5 ms to about 80 s: one message on an idle daemon to a large batch on a slow disk.
        let filing_latency = Histogram::new(exponential_buckets(0.005, 2.0, 15));
        let messages = Family::<Labels, Gauge>::default();
        let outbox = Family::<Labels, Gauge>::default();
        let outcomes = Family::<Labels, Gauge>::default();
        let imap_reconnects = Counter::default();
        let intake_failing = Gauge::default();
        registry.register(
            "haven_filing_latency_seconds",
            "Seconds from a message's hand-over by the intake to its filing commit, one observation per message",
            filing_latency.clone(),
        );
        registry.register("haven_messages", "Messages recorded, by state", messages.clone());
        registry.register(
            "haven_outbox_emails",
            "Emails in the outbox, by state (pending is the depth, dead the dead letters)",
            outbox.clone(),
        );
        registry.register("haven_outcomes", "Incidents awaiting an outcome: open, and overdue among them", outcomes.clone());
        registry.register(
            "haven_imap_reconnects",
            "IMAP connection attempts after the first since the daemon started",
            imap_reconnects.clone(),
        );
        registry.register("haven_intake_failing", "1 while the intake is failing and retrying, else 0", intake_failing.clone());
        Metrics { registry, filing_latency, messages, outbox, outcomes, imap_reconnects, intake_failing, imap: OnceLock::new() }
    }
}

impl Metrics {
    /// `messages` were filed in one commit that took `took` from hand-over.
    pub fn observe_filing(&self, messages: usize, took: Duration) {
        for _ in 0..messages {
            self.filing_latency.observe(took.as_secs_f64());
        }
    }

    /// Follows the IMAP intake for its reconnect count.
    pub fn follow_imap(&self, status: ImapStatus) {
        let _ = self.imap.set(status);
    }

    /// The Prometheus text, with the database's counts as of `now`.
    async fn render(&self, store: &Store, health: &HealthRecorder, now: chrono::DateTime<chrono::Utc>) -> Result<String, String> {
        let s = store.status(now).await.map_err(|e| e.to_string())?;
        let label = |k: &str, v: &str| vec![(k.to_string(), v.to_string())];
        for st in MessageState::ALL {
            let n = s.messages.get(&st).copied().unwrap_or(0);
            self.messages.get_or_create(&label("state", st.as_str())).set(gauge(n));
        }
        for (state, n) in [("pending", s.outbox_pending), ("sent", s.outbox_sent), ("dead", s.outbox_dead)] {
            self.outbox.get_or_create(&label("state", state)).set(gauge(n));
        }
        for (state, n) in [("open", s.outcomes_open), ("overdue", s.outcomes_overdue)] {
            self.outcomes.get_or_create(&label("state", state)).set(gauge(n));
        }
        if let Some(imap) = self.imap.get() {
            let seen = self.imap_reconnects.get();
            self.imap_reconnects.inc_by(imap.reconnects().saturating_sub(seen));
        }
        self.intake_failing.set(i64::from(health.intake_failing_since().is_some()));
        let mut out = String::new();
        encode(&mut out, &self.registry).map_err(|e| e.to_string())?;
        Ok(out)
    }
}

fn gauge(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// What the two handlers share.
pub struct Endpoint {
    pub metrics: Arc<Metrics>,
    pub health: Arc<HealthRecorder>,
    pub store: Store,
    pub clock: Arc<dyn Clock>,
    pub settings: MetricsSettings,
}

/// The bound listener, so `haven run` refuses to start when the port is taken.
pub struct MetricsServer {
    listener: TcpListener,
}

impl MetricsServer {
    pub async fn bind(settings: &MetricsSettings) -> Result<MetricsServer, MetricsBindError> {
        let listener = TcpListener::bind(settings.listen).await.map_err(|source| MetricsBindError { addr: settings.listen, source })?;
        Ok(MetricsServer { listener })
    }

    /// Serves `/metrics` and `/healthz` until `shutdown`.
    pub async fn run(self, endpoint: Endpoint, shutdown: CancellationToken) {
        let addr = self.listener.local_addr().ok();
        tracing::info!(listen = ?addr, "metrics listening");
        let router = axum::Router::new()
            .route("/metrics", axum::routing::get(metrics))
            .route("/healthz", axum::routing::get(healthz))
            .with_state(Arc::new(endpoint));
        if let Err(e) = axum::serve(self.listener, router).with_graceful_shutdown(shutdown.cancelled_owned()).await {
            tracing::error!(error = %e, "metrics endpoint stopped");
        }
    }
}

async fn metrics(State(e): State<Arc<Endpoint>>) -> impl IntoResponse {
    match e.metrics.render(&e.store, &e.health, e.clock.now()).await {
        Ok(text) => (StatusCode::OK, [(header::CONTENT_TYPE, "application/openmetrics-text; version=1.0.0; charset=utf-8")], text),
        Err(error) => {
            tracing::warn!(%error, "metrics: cannot read the database");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
                format!("database unreachable: {error}\n"),
            )
        }
    }
}

async fn healthz(State(e): State<Arc<Endpoint>>) -> impl IntoResponse {
    let grace = chrono::Duration::from_std(e.settings.healthz_grace).unwrap_or(chrono::Duration::MAX);
    match crate::health::healthz(&e.health, grace, e.clock.now()) {
        Ok(()) => (StatusCode::OK, "ok\n".to_string()),
        Err(why) => (StatusCode::SERVICE_UNAVAILABLE, format!("{why}\n")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(listen: &str, allow_remote: bool) -> MetricsRaw {
        MetricsRaw { listen: listen.into(), allow_remote, healthz_grace: default_grace() }
    }

    #[test]
    fn loopback_only_unless_allowed() {
        assert!(raw("127.0.0.1:9187", false).resolve().is_ok());
        let e = raw("0.0.0.0:9187", false).resolve().unwrap_err();
        assert!(e.starts_with("metrics.listen: 0.0.0.0:9187 is not a loopback address"), "{e}");
        assert!(raw("0.0.0.0:9187", true).resolve().is_ok());
        assert!(raw("localhost", false).resolve().unwrap_err().contains("expected an address and port"));
    }
}
