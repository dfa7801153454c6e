//! `haven run`: the intake, the outbox worker, the scheduler, the AI worker, the console and `/metrics` (when configured) as tasks under one shutdown
//! signal. SIGTERM/SIGINT: the message in hand is finished and committed, then every task
//! stops and the process exits 0. SIGHUP: the rules are reloaded; an invalid set is refused and
//! the last good one stays in force.
//!
//! Several daemons may share one PostgreSQL database: only the leader ([`crate::lease`]) reads
//! the intake and runs the scheduler; every daemon sends from the outbox and serves the
//! console. On SQLite one daemon per database is the rule, and a second is refused.

use crate::cli::{self, App, CliError};
use crate::config::{Config, SourceKind};
use crate::health::HealthRecorder;
use crate::lease::{self, Leadership, LeaseTask, LeaseTimes, SoleDaemon};
use crate::metrics::Metrics;
use crate::notify::{self, Notifier};
use crate::outbox;
use crate::pipeline::Filer;
use crate::rules::{LiveRules, RuleSet};
use crate::schedule;
use crate::seal::KeyFiles;
use crate::source::imap;
use crate::source::maildir::{self, MaildirSettings};
use crate::store::Component;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

/// Messages per durable commit when the IMAP intake has a backlog (a batch also stops at 64 MB
/// of bodies). Each batch costs fixed round trips (IMAP SEARCH, FETCH, MOVE; loading the
/// directory; one fsynced commit), so larger batches drain faster: `cargo bench --bench imap`
/// with HAVEN_BENCH_BATCH=50/200/500 filed 2,000 messages in 4.12/3.28/2.58 s. A lone new
/// message is still committed on its own at once.
const INTAKE_BATCH: usize = 500;

/// The Maildir source reads a whole batch into memory with no byte budget, so its batches
/// stay small.
const MAILDIR_BATCH: usize = 50;

/// Runs until SIGTERM or SIGINT.
pub async fn run(config: Config) -> Result<(), CliError> {
    // Refuse to start on anything invalid: rules, keys, transport.
    let rules = cli::load_rules(&config)?;
    for w in rules.warnings() {
        tracing::warn!("rules: {w}");
    }
    cli::check_key_file(&config)?;
    let reply_key = cli::read_reply_key(&config)?;
    let transport = outbox_transport(&config);
    transport.check().map_err(|e| CliError::Config(e.to_string()))?;
    if config.intake.trusted_authserv_id.is_none() {
        tracing::warn!(
            "sender authentication is OFF: intake.trusted_authserv_id is not set, so anyone who can forge a staff address can file; set it to your mail server's authserv-id"
        );
    }
    let metrics_server = match &config.metrics {
        Some(settings) => Some(crate::metrics::MetricsServer::bind(settings).await.map_err(|e| CliError::Config(e.to_string()))?),
        None => None,
    };
    let console = match &config.console {
        Some(settings) => Some(crate::console::Console::bind(settings).await.map_err(|e| CliError::Config(e.to_string()))?),
        None => None,
    };
    let app = App::open(config).await?;
    let (leadership, lease_task, _sole) = match crate::store::sqlite_file(app.config.database_url()) {
        Some(db) => (Leadership::sole(), None, Some(SoleDaemon::lock(&db).map_err(|e| CliError::Other(e.into()))?)),
        None => {
            let (leadership, task) = LeaseTask::new(app.config.database_url(), LeaseTimes { ttl: app.config.leader_lease });
            (leadership, Some(task), None)
        }
    };
    let sealer = app.sealer().await?;
    let blind = app.blind_index()?;
    let sealed = app.store.seal_clear_values(&sealer, &blind).await?;
    if sealed > 0 {
        tracing::info!(values = sealed, "sealed values kept in clear by an earlier version");
    }
    let indexed = app.store.index_unindexed_names(&sealer, &blind).await?;
    if indexed > 0 {
        tracing::info!(pupils = indexed, "indexed the names of pupils imported before the name index");
    }
    // In the background: a large database's first `ANALYZE` takes seconds, and intake need not wait.
    let store = app.store.clone();
    tokio::spawn(async move {
        match store.gather_missing_statistics().await {
            Ok(0) => {}
            Ok(tables) => tracing::info!(tables, "gathered PostgreSQL's statistics of tables that had none"),
            Err(e) => {
                tracing::warn!(error = %e, "could not gather PostgreSQL's statistics; queries may be planned badly until autovacuum does")
            }
        }
        if let Err(e) = store.fold_tallies().await {
            tracing::warn!(error = %e, "could not fold the status counts; they stay right, and are folded after filing");
        }
    });
    let live = Arc::new(LiveRules::new(rules));
    let filer = Arc::new(
        Filer::new(app.store.clone(), live.clone(), app.clock.clone(), sealer, cli::filing_settings(&app.config))
            .following_key_changes(KeyFiles::new(&app.config.storage.key_file))
            .fenced_by(leadership.clone()),
    );
    let shutdown = CancellationToken::new();
    let wake_outbox = Arc::new(Notify::new());
    let notifier = Arc::new(Notifier::from_env());
    let filed = Arc::new(Notify::new());
    let wake_ai = Arc::new(Notify::new());
    let health = Arc::new(HealthRecorder::resume(app.store.clone(), app.clock.clone()).await);
    let metrics = Arc::new(Metrics::default());

    let mut tasks = tokio::task::JoinSet::new();
    let reload = Reload {
        live: live.clone(),
        dir: app.config.rules.dir.clone(),
        store: app.store.clone(),
        mail_domain: app.config.school.mail_domain().to_string(),
        wake_outbox: wake_outbox.clone(),
        keys: filer.keys(),
    };
    tasks.spawn(signals(shutdown.clone(), reload));
    // The lease outlives the other tasks, so a leader finishes the batch in hand under it
    // before handing it back.
    let lease_stop = CancellationToken::new();
    let lease = lease_task.map(|task| {
        tasks.spawn(standby(notifier.clone(), leadership.clone(), shutdown.clone()));
        tokio::spawn(task.run(lease_stop.clone()))
    });
    let sink = WakingSink {
        filer: filer.clone(),
        wake: wake_outbox.clone(),
        filed: filed.clone(),
        wake_ai: wake_ai.clone(),
        notifier: notifier.clone(),
        metrics: metrics.clone(),
    };
    let watchers = Watchers { notifier: notifier.clone(), health: health.clone(), metrics: metrics.clone() };
    let (config, stop) = (app.config.clone(), shutdown.clone());
    tasks.spawn(lease::while_leading(leadership.clone(), shutdown.clone(), move |stint| {
        intake(config.clone(), sink.clone(), stint, stop.clone(), watchers.clone())
    }));
    tasks.spawn(notify::report_status(notifier, app.store.clone(), app.config.school.tz(), filed, shutdown.clone()));
    tasks.spawn(outbox::run(
        app.store.clone(),
        transport,
        outbox_settings(&app.config, reply_key.clone()),
        app.clock.clone(),
        shutdown.clone(),
        wake_outbox.clone(),
        health.clone(),
    ));
    let (store, settings, clock, wake, schedule_health) = (
        app.store.clone(),
        schedule::ScheduleSettings::from_config(&app.config, filer.keys()),
        app.clock.clone(),
        wake_outbox.clone(),
        health.clone(),
    );
    tasks.spawn(lease::while_leading(leadership.clone(), shutdown.clone(), move |stint| {
        schedule::run(store.clone(), settings.clone(), clock.clone(), stint, wake.clone(), schedule_health.clone())
    }));
    // Every daemon works the AI queue (claims are leases), after filing and never inside it.
    if let Some(settings) = &app.config.ai {
        let worker = crate::ai::worker::Worker {
            store: app.store.clone(),
            reader: crate::ai::Reader::new(settings),
            keys: filer.keys(),
            rules: live.clone(),
            clock: app.clock.clone(),
            filed: wake_ai.clone(),
            timeout: settings.timeout,
            after: crate::ai::rules::AiRules::new(&app.config, app.store.clone(), filer.keys(), live.clone()),
        };
        tracing::info!(model = %settings.model, base_url = %settings.base_url, "AI suggestions on");
        tasks.spawn(worker.run(shutdown.clone()));
    }
    if let (Some(server), Some(settings)) = (metrics_server, app.config.metrics) {
        let endpoint = crate::metrics::Endpoint { metrics, health, store: app.store.clone(), clock: app.clock.clone(), settings };
        tasks.spawn(server.run(endpoint, shutdown.clone()));
    }
    if let (Some(console), Some(settings)) = (console, app.config.console.clone()) {
        let state = crate::console::State::new(&app, settings, &reply_key, blind.clone(), filer.clone(), wake_outbox.clone());
        tasks.spawn(console.run(state, shutdown.clone()));
    }
    tracing::info!(source = app.config.intake.source.as_str(), database = app.store.backend(), "haven running");
    while let Some(done) = tasks.join_next().await {
        if let Err(e) = done {
            tracing::error!(error = %e, "a task stopped unexpectedly; shutting down");
            shutdown.cancel();
        }
    }
    lease_stop.cancel();
    if let Some(lease) = lease {
        let _ = lease.await;
    }
    app.store.close().await;
    tracing::info!("haven stopped");
    Ok(())
}

/// While another daemon leads: ready for systemd (this daemon sends and serves), its watchdog
/// fed, and "standby" as the intake's state.
async fn standby(notifier: Arc<Notifier>, mut leadership: Leadership, shutdown: CancellationToken) {
    let tick = notifier.watchdog().map_or(Duration::from_secs(60), |p| p / 4);
    loop {
        if leadership.current().is_some() {
            tokio::select! {
                () = shutdown.cancelled() => return,
                () = leadership.lost() => {}
            }
            continue;
        }
        notifier.ready();
        notifier.set_intake("standby: another daemon leads");
        notifier.alive();
        tokio::select! {
            () = shutdown.cancelled() => return,
            _ = leadership.leading() => {}
            () = tokio::time::sleep(tick) => {}
        }
    }
}

/// Who follows the intake: systemd's notify socket, the health record, the metrics.
#[derive(Clone)]
struct Watchers {
    notifier: Arc<Notifier>,
    health: Arc<HealthRecorder>,
    metrics: Arc<Metrics>,
}

/// The intake source the config names, filing through `filer`, until `stint` ends (shutdown,
/// or another daemon leads); a fault no retry can fix stops the whole daemon (`shutdown`).
async fn intake(config: Config, sink: WakingSink, stint: CancellationToken, shutdown: CancellationToken, watchers: Watchers) {
    let Watchers { notifier, health, metrics } = watchers;
    match config.intake.source {
        SourceKind::Maildir => {
            let Some(m) = &config.intake.maildir else { return };
            if let Err(e) = maildir::ensure(&m.path) {
                tracing::error!(error = %e, "intake Maildir unusable; stopping");
                shutdown.cancel();
                return;
            }
            let settings = MaildirSettings {
                path: m.path.clone(),
                max_message_size: config.intake.max_message_size,
                batch_size: MAILDIR_BATCH,
                poll: Duration::from_millis(250),
            };
            let readable = std::sync::Mutex::new(None);
            maildir::run_beating(settings, &sink, stint, |ok| {
                if ok {
                    notifier.ready();
                    notifier.set_intake("idle");
                } else {
                    notifier.set_intake("retrying: the intake Maildir cannot be read");
                }
                notifier.alive();
                // Health is written on a change only: the callback runs on every pass.
                let mut last = readable.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
                if *last != Some(ok) {
                    *last = Some(ok);
                    let health = health.clone();
                    tokio::spawn(async move {
                        if ok {
                            health.ok(Component::Intake, "Maildir readable", None).await;
                        } else {
                            health.failing(Component::Intake, "Maildir", "the intake Maildir cannot be read").await;
                        }
                    });
                }
            })
            .await;
            health.stopped(Component::Intake).await;
        }
        SourceKind::Imap => {
            let Some(settings) = imap_settings(&config) else { return };
            let status = imap::ImapStatus::new();
            tokio::spawn(notify::watch_imap(notifier, status.clone(), stint.clone()));
            metrics.follow_imap(status.clone());
            let recorded = tokio::spawn(crate::health::watch_imap(health, status.clone(), stint.clone()));
            if let Err(e) = imap::run(settings, &sink, stint, &status).await {
                tracing::error!(error = %e, "IMAP intake cannot run; stopping");
                shutdown.cancel();
            }
            let _ = recorded.await;
        }
    }
}

/// Files through the pipeline, then wakes the outbox worker so alerts leave at once.
#[derive(Clone)]
struct WakingSink {
    filer: Arc<Filer>,
    wake: Arc<Notify>,
    /// Tells the systemd status line a batch was filed.
    filed: Arc<Notify>,
    /// Tells the AI worker (when `[ai]` is on) there may be incidents to read.
    wake_ai: Arc<Notify>,
    /// Each batch is a watchdog beat too: a long backlog is one long pass of the intake loop.
    notifier: Arc<Notifier>,
    /// Filing latency, one observation per committed message.
    metrics: Arc<Metrics>,
}

impl crate::source::Sink for WakingSink {
    async fn accept(&self, batch: Vec<crate::source::Incoming>) -> Result<Vec<crate::source::Disposition>, crate::source::SinkError> {
        let started = std::time::Instant::now();
        let out = self.filer.accept(batch).await;
        if let Ok(done) = &out {
            self.metrics.observe_filing(done.len(), started.elapsed());
        }
        self.wake.notify_one();
        self.filed.notify_one();
        self.wake_ai.notify_one();
        self.notifier.alive();
        out
    }
}

/// What a SIGHUP needs.
struct Reload {
    live: Arc<LiveRules>,
    dir: std::path::PathBuf,
    store: crate::store::Store,
    mail_domain: String,
    wake_outbox: Arc<Notify>,
    /// Opens the sealed directory (to find the DSL team).
    keys: Arc<crate::store::LiveKeys>,
}

/// SIGTERM/SIGINT cancel everything; SIGHUP reloads the rules.
async fn signals(shutdown: CancellationToken, reload: Reload) {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut term), Ok(mut int), Ok(mut hup)) =
        (signal(SignalKind::terminate()), signal(SignalKind::interrupt()), signal(SignalKind::hangup()))
    else {
        tracing::error!("cannot install signal handlers; stopping");
        shutdown.cancel();
        return;
    };
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            _ = term.recv() => { tracing::info!("SIGTERM: finishing the message in hand"); shutdown.cancel(); return; }
            _ = int.recv() => { tracing::info!("SIGINT: finishing the message in hand"); shutdown.cancel(); return; }
            _ = hup.recv() => reload.run().await,
        }
    }
}

impl Reload {
    /// Swaps in the rules on disk, or keeps the last good set and tells the log, the audit
    /// trail and the DSL team why.
    async fn run(&self) {
        let now = chrono::Utc::now();
        match RuleSet::load(&self.dir) {
            Ok(set) => {
                let summary = set.summary();
                self.live.replace(set);
                tracing::info!(rules = %summary, "rules reloaded");
                let _ = self.store.audit(now, "daemon", "rules_reload", "rules", &summary).await;
            }
            Err(e) => {
                tracing::error!(errors = e.0.len(), "rules reload refused; the last good set stays in force:\n{e}");
                let detail = format!("{} errors", e.0.len());
                let _ = self.store.audit(now, "daemon", "rules_reload_refused", "rules", &detail).await;
                if let Err(err) = self.tell_dsl_team(&e.to_string(), now).await {
                    tracing::error!(error = %err, "could not queue the refused-rules notice");
                }
                self.wake_outbox.notify_one();
            }
        }
    }

    async fn tell_dsl_team(&self, errors: &str, now: chrono::DateTime<chrono::Utc>) -> Result<(), crate::store::StoreError> {
        let dir = self.store.load_directory(&self.keys.current(&self.store).await?).await?;
        let mut tx = self.store.begin().await?;
        for staff in dir.staff.iter().filter(|s| s.active && s.is_dsl_team()) {
            let email = crate::store::OutboxRecord {
                purpose: "notice",
                recipient: staff.email().to_string(),
                email_message_id: format!("haven.rules-refused.{}.{}@{}", now.timestamp(), staff.id, self.mail_domain),
                subject: "Haven: a rules change was refused; the previous rules are still in force".into(),
                body: format!(
                    "The routing rules were reloaded but the new files have errors, so Haven is still \
                     using the last good rules. Nothing was lost. Fix these and reload again \
                     (`haven rules check` shows them):\n\n{errors}\n"
                ),
            };
            tx.queue_email(None, &email, now).await?;
        }
        tx.commit().await
    }
}

pub(crate) fn outbox_transport(config: &Config) -> outbox::Transport {
    use crate::config::{Security, TransportKind};
    match config.smtp.transport {
        TransportKind::Maildir => outbox::Transport::Maildir(config.smtp.maildir.clone()),
        TransportKind::Smtp => outbox::Transport::Smtp(outbox::SmtpSettings {
            host: config.smtp.host.clone(),
            port: config.smtp.port,
            security: match config.smtp.security {
                Security::Tls => outbox::Security::Tls,
                Security::Starttls => outbox::Security::Starttls,
                Security::Plain => outbox::Security::Plain,
            },
            username: config.smtp.username.clone(),
            password: config.smtp.password.clone(),
            xoauth2_token: config.smtp.token.as_ref().map(|t| match t {
                crate::config::TokenConfig::File(f) => imap::TokenSource::File(f.clone()),
                crate::config::TokenConfig::Command(c) => imap::TokenSource::Command(c.clone()),
            }),
        }),
    }
}

fn outbox_settings(config: &Config, reply_key: Vec<u8>) -> outbox::OutboxSettings {
    outbox::OutboxSettings {
        from: config.smtp.from.clone(),
        reply_key,
        max_attempts: config.alerts.max_attempts,
        mail_domain: config.school.mail_domain().to_string(),
        intake_address: config.school.intake_address.clone(),
        quiet_hours: config.alerts.quiet_hours,
        tz: config.school.tz(),
    }
}

pub(crate) fn imap_settings(config: &Config) -> Option<imap::ImapSettings> {
    use crate::config::{ImapCredential, Security};
    let i = config.intake.imap.as_ref()?;
    Some(imap::ImapSettings {
        host: i.host.clone(),
        port: i.port,
        security: match i.security {
            Security::Tls => imap::Security::Tls,
            Security::Starttls => imap::Security::Starttls,
            Security::Plain => imap::Security::Plain,
        },
        username: i.username.clone(),
        auth: match &i.credential {
            ImapCredential::Password(p) => imap::ImapAuth::Password(p.clone()),
            ImapCredential::TokenFile(f) => imap::ImapAuth::Xoauth2 { token_source: imap::TokenSource::File(f.clone()) },
            ImapCredential::TokenCommand(c) => imap::ImapAuth::Xoauth2 { token_source: imap::TokenSource::Command(c.clone()) },
        },
        mailbox: i.mailbox.clone(),
        filed_folder: i.filed_folder.clone(),
        quarantine_folder: i.quarantine_folder.clone(),
        poll_interval: i.poll_interval,
        max_message_size: config.intake.max_message_size,
        batch_size: INTAKE_BATCH,
        idle_renew: Duration::from_secs(25 * 60),
    })
}
