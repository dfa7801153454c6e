//! The scheduler: fires escalation rungs and sends digests when they fall due.
//!
//! [`tick`] is one pass at a given instant (what tests call with a controlled time); [`run`]
//! is the thin loop that calls it with the injected clock and sleeps until something may be
//! due. The decisions are pure and live beside it: [`due`] (cron slots in the school's time
//! zone), [`reminder`] and [`digest`] (what each email says). Emails are only queued in the
//! outbox, in the same transaction that records the rung or digest slot as done; sending is
//! the outbox worker's job. Nothing here logs a name, an address or any text.
//!
//! Restart safety: every rung and digest slot is recorded as done when its emails are queued,
//! so a restart repeats nothing; a daemon that was down catches up on missed rungs in due
//! order, each once, and sends only the latest missed digest slot.

pub mod digest;
pub mod due;
pub mod plan_reviews;
pub mod reminder;
pub mod sar_deadlines;

use crate::clock::Clock;
use crate::config;
use crate::directory::Directory;
use crate::store::{OpenAction, OutboxRecord, RecordedIncident, Store, StoreError, to_us};
use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

/// Rungs read per query; a catch-up after an outage reads batch after batch.
const BATCH: i64 = 500;

/// The longest the loop sleeps: newly filed rungs and directory changes are noticed within it.
const MAX_SLEEP: Duration = Duration::from_secs(60);

/// After a failed pass (the database unreachable), wait this long before the next.
const RETRY_SLEEP: Duration = Duration::from_secs(30);

/// What the scheduler needs from the configuration.
#[derive(Debug, Clone)]
pub struct ScheduleSettings {
    pub digests: Vec<config::Digest>,
    /// The school's time zone: cron fields and the times shown in emails are local.
    pub tz: Tz,
    /// Domain for the Message-IDs of Haven's emails.
    pub mail_domain: String,
    pub school_name: String,
    /// Opens the sealed directory.
    /// The keyring, shared with the intake so a rotation reaches the scheduler too.
    pub keys: std::sync::Arc<crate::store::LiveKeys>,
    /// The opened directory, kept between passes until an import changes it.
    pub directory: std::sync::Arc<crate::store::DirectoryCache>,
    /// `alerts.detail`: above minimal, a new incident's AI suggestion (labelled with the
    /// model's name) is shown under it.
    pub detail: crate::config::Detail,
}

impl ScheduleSettings {
    pub fn from_config(config: &config::Config, keys: std::sync::Arc<crate::store::LiveKeys>) -> ScheduleSettings {
        ScheduleSettings {
            keys,
            directory: Default::default(),
            digests: config.digests.clone(),
            tz: config.school.tz(),
            mail_domain: config.school.mail_domain().to_string(),
            school_name: config.school.name.clone(),
            detail: config.alerts.detail,
        }
    }
}

/// A pass's failure. The store's errors say whether trying again can help.
#[derive(Debug, thiserror::Error)]
pub enum ScheduleError {
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl ScheduleError {
    pub fn is_transient(&self) -> bool {
        match self {
            ScheduleError::Store(e) => e.is_transient(),
        }
    }
}

/// What one pass did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TickReport {
    /// Rungs this pass fired (another daemon's are not counted).
    pub rungs_fired: u32,
    pub reminders_queued: u32,
    pub digests_queued: u32,
    /// Digest slots passed over: a new recipient's starting point, or an empty digest.
    pub digests_passed: u32,
    /// Transfer-case reminders queued (see `crate::transfer::schedule`).
    pub transfer_reminders: u32,
}

impl TickReport {
    pub fn queued(&self) -> u32 {
        self.reminders_queued + self.digests_queued + self.transfer_reminders
    }
}

/// One pass at `now`: fires every rung due (oldest first), then every digest due.
pub async fn tick(store: &Store, settings: &ScheduleSettings, now: DateTime<Utc>) -> Result<TickReport, ScheduleError> {
    let mut report = TickReport::default();
    let mut directory: Option<Arc<Directory>> = None;
    fire_due_rungs(store, settings, now, &mut directory, &mut report).await?;
    send_due_digests(store, settings, now, &mut directory, &mut report).await?;
    sar_deadlines::remind(store, settings, now, &mut report).await?;
    report.transfer_reminders = crate::transfer::schedule::fire_due(store, settings, now).await?.1;
    plan_reviews::remind_due(store, settings, now, &mut directory, &mut report).await?;
    Ok(report)
}

/// The directory, loaded at most once per pass and only when something needs it.
async fn directory<'a>(
    store: &Store,
    settings: &ScheduleSettings,
    cache: &'a mut Option<Arc<Directory>>,
) -> Result<&'a Directory, StoreError> {
    if cache.is_none() {
        *cache = Some(settings.directory.current(store, &settings.keys.current(store).await?).await?);
    }
    Ok(cache.get_or_insert_with(Default::default))
}

async fn fire_due_rungs(
    store: &Store,
    settings: &ScheduleSettings,
    now: DateTime<Utc>,
    dir_cache: &mut Option<Arc<Directory>>,
    report: &mut TickReport,
) -> Result<(), ScheduleError> {
    let ctx = reminder::ReminderContext { school_name: &settings.school_name, mail_domain: &settings.mail_domain, tz: settings.tz };
    loop {
        let batch = store.due_rungs(now, BATCH).await?;
        if batch.is_empty() {
            return Ok(());
        }
        let full = i64::try_from(batch.len()).unwrap_or(i64::MAX) >= BATCH;
        let mut fired_any = false;
        for rung in &batch {
            let dir = directory(store, settings, dir_cache).await?;
            let emails = match store.incident_facts(rung.incident_id).await? {
                Some(facts) => reminder::reminders_for(rung, &facts, dir, &ctx, now),
                None => Vec::new(),
            };
            let mut tx = store.begin().await?;
            let fired = tx.fire_rung(rung, &emails, now).await?;
            tx.commit().await?;
            if fired {
                fired_any = true;
                report.rungs_fired += 1;
                report.reminders_queued += u32::try_from(emails.len()).unwrap_or(u32::MAX);
                if emails.is_empty() {
                    tracing::warn!(
                        incident = rung.incident_id,
                        action = rung.action_id,
                        rung = rung.rung,
                        "rung fired but nobody on it may still be reminded"
                    );
                } else {
                    tracing::info!(
                        incident = rung.incident_id,
                        action = rung.action_id,
                        rung = rung.rung,
                        reminders = emails.len(),
                        "escalation rung fired"
                    );
                }
            }
        }
        // A full batch may hide more; one in which nothing fired was all taken by another daemon.
        if !full || !fired_any {
            return Ok(());
        }
    }
}

/// The `digest_runs` name of a configured digest: its recipients and its schedule.
fn digest_key(d: &config::Digest) -> String {
    format!("{}|{}", d.to.trim().to_ascii_lowercase(), d.cron.trim())
}

/// What digests for one period share, read once per pass.
#[derive(Default)]
struct DigestCache {
    open_actions: Option<Vec<OpenAction>>,
    counts: Option<(u64, u64)>,
    /// Keyed by (previous slot, this slot) in microseconds.
    incidents: HashMap<(i64, i64), Vec<RecordedIncident>>,
    dead: HashMap<(i64, i64), u64>,
    /// Historical messages filed quietly (a backfill) per period.
    historical: HashMap<(i64, i64), u64>,
    /// The AI suggestions of the period's incidents, as digest lines (only above minimal detail).
    ai: HashMap<(i64, i64), HashMap<i64, String>>,
}

async fn send_due_digests(
    store: &Store,
    settings: &ScheduleSettings,
    now: DateTime<Utc>,
    dir_cache: &mut Option<Arc<Directory>>,
    report: &mut TickReport,
) -> Result<(), ScheduleError> {
    let mut cache = DigestCache::default();
    let no_ai = HashMap::new();
    for d in &settings.digests {
        let Ok(cron) = due::parse_cron(&d.cron) else {
            tracing::error!(to_role = d.to.starts_with("role:"), "digest cron unreadable; skipped");
            continue;
        };
        let key = digest_key(d);
        let staff: Vec<crate::directory::Staff> =
            digest::recipients(&d.to, directory(store, settings, dir_cache).await?).into_iter().cloned().collect();
        for s in staff.iter().filter(|s| !s.email().is_empty()) {
            let who = format!("staff:{}", s.id);
            let last = store.last_digest_slot(&key, &who).await?;
            let Some(last) = last else {
                // A new recipient starts from the latest slot, so the first start of Haven (or
                // a new DSL) does not send a digest for a morning already gone; their first
                // digest, at the next slot, still covers everything since records began.
                let start = due::latest_digest_slot(&cron, settings.tz, now).unwrap_or(now);
                let mut tx = store.begin().await?;
                if tx.record_digest_run(&key, &who, start, false, now).await? {
                    report.digests_passed += 1;
                }
                tx.commit().await?;
                continue;
            };
            let Some(slot) = due::due_digest_slot(&cron, settings.tz, Some(last), now) else { continue };
            // The digest covers everything since the previous one actually sent to this person
            // (a passed-over slot was empty for them or only a starting point), or, for their
            // first, everything since records began.
            let since = store.last_sent_digest_slot(&key, &who).await?;
            let from = since.unwrap_or(DateTime::UNIX_EPOCH);
            let period = (to_us(from), to_us(slot));
            if cache.open_actions.is_none() {
                cache.open_actions = Some(store.open_actions().await?);
            }
            if cache.counts.is_none() {
                let st = store.status(now).await?;
                let n = |m| st.messages.get(&m).copied().unwrap_or(0);
                cache.counts = Some((n(crate::store::MessageState::AwaitingTriage), n(crate::store::MessageState::Quarantined)));
            }
            if let Entry::Vacant(v) = cache.incidents.entry(period) {
                v.insert(store.incidents_recorded_between(from, slot).await?);
            }
            if let Entry::Vacant(v) = cache.dead.entry(period) {
                v.insert(store.dead_lettered_between(from, slot).await?);
            }
            if let Entry::Vacant(v) = cache.historical.entry(period) {
                v.insert(store.historical_filed_between(from, slot).await?);
            }
            if settings.detail != crate::config::Detail::Minimal
                && let Entry::Vacant(v) = cache.ai.entry(period)
            {
                let sealer = settings.keys.current(store).await?;
                v.insert(crate::ai::digest_lines(&sealer, store.ai_suggestions_recorded_between(from, slot).await?));
            }
            let (awaiting_triage, quarantined) = cache.counts.unwrap_or_default();
            let dir = directory(store, settings, dir_cache).await?;
            let audit_head = store.audit_head().await?;
            let facts = digest::DigestFacts {
                audit_head: audit_head.as_ref().map(|(n, mac)| (*n, mac.as_str())),
                school_name: &settings.school_name,
                tz: settings.tz,
                slot,
                since,
                new_incidents: cache.incidents.get(&period).map_or(&[], Vec::as_slice),
                open_actions: cache.open_actions.as_deref().unwrap_or(&[]),
                awaiting_triage,
                quarantined,
                dead_lettered: cache.dead.get(&period).copied().unwrap_or(0),
                historical: cache.historical.get(&period).copied().unwrap_or(0),
                ai_suggestions: cache.ai.get(&period).unwrap_or(&no_ai),
                directory: dir,
            };
            let content = digest::digest_for(s, &facts);
            let send = d.send_empty || !content.is_empty();
            let mut tx = store.begin().await?;
            if tx.record_digest_run(&key, &who, slot, send, now).await? {
                if send {
                    let email = OutboxRecord {
                        purpose: "digest",
                        recipient: s.email().to_string(),
                        email_message_id: format!("haven.digest.{}.{}@{}", s.id, to_us(slot), settings.mail_domain),
                        subject: content.subject(&facts),
                        body: content.body(&facts),
                    };
                    // Two configured digests naming the same person at the same slot share
                    // one Message-ID: they get one email.
                    if tx.queue_email(None, &email, now).await? {
                        report.digests_queued += 1;
                        tracing::info!(staff = s.id, slot = %slot, "digest queued");
                    }
                } else {
                    report.digests_passed += 1;
                }
            }
            tx.commit().await?;
        }
    }
    Ok(())
}

/// How long to sleep after a pass: until the next rung or digest slot, within [1 s, MAX_SLEEP].
async fn until_next_due(store: &Store, settings: &ScheduleSettings, now: DateTime<Utc>) -> Duration {
    let mut next: Option<DateTime<Utc>> = store.next_rung_due().await.ok().flatten();
    for d in &settings.digests {
        if let Ok(cron) = due::parse_cron(&d.cron)
            && let Some(slot) = due::next_digest_slot(&cron, settings.tz, now)
        {
            next = Some(next.map_or(slot, |n| n.min(slot)));
        }
    }
    let wait = next.map_or(MAX_SLEEP, |t| (t - now).to_std().unwrap_or(Duration::ZERO));
    wait.clamp(Duration::from_secs(1), MAX_SLEEP)
}

/// Runs passes until `shutdown`, waking the outbox worker whenever a pass queued email. Stops
/// between passes (each rung and digest is its own transaction, so there is no half-done state).
pub async fn run(
    store: Store,
    settings: ScheduleSettings,
    clock: Arc<dyn Clock>,
    shutdown: CancellationToken,
    wake_outbox: Arc<Notify>,
    health: Arc<crate::health::HealthRecorder>,
) {
    use crate::store::Component;
    tracing::info!(digests = settings.digests.len(), "scheduler started");
    let now = clock.now();
    for (i, d) in settings.digests.iter().enumerate() {
        // The index, never the recipient (an address); times in the school's zone.
        match due::parse_cron(&d.cron) {
            Ok(cron) => {
                let next: Vec<String> = due::next_digest_slots(&cron, settings.tz, now, 3)
                    .iter()
                    .map(|t| t.with_timezone(&settings.tz).format("%a %-d %b %Y %H:%M %Z").to_string())
                    .collect();
                tracing::info!(digest = i, next = %next.join(", "), "digest schedule");
            }
            Err(e) => tracing::error!(digest = i, error = %e, "digest cron unreadable"),
        }
    }
    loop {
        if shutdown.is_cancelled() {
            break;
        }
        let wait = match tick(&store, &settings, clock.now()).await {
            Ok(r) => {
                health.ok(Component::Scheduler, "running", None).await;
                if r.queued() > 0 {
                    wake_outbox.notify_one();
                }
                if r.rungs_fired > 0 || r.digests_queued > 0 {
                    tracing::info!(rungs = r.rungs_fired, reminders = r.reminders_queued, digests = r.digests_queued, "scheduler pass");
                }
                until_next_due(&store, &settings, clock.now()).await
            }
            Err(e) => {
                health.failing(Component::Scheduler, "reminders and digests", &e.to_string()).await;
                tracing::error!(error = %e, transient = e.is_transient(), "scheduler pass failed");
                RETRY_SLEEP
            }
        };
        tokio::select! {
            () = shutdown.cancelled() => break,
            () = tokio::time::sleep(wait) => {}
        }
    }
    health.stopped(Component::Scheduler).await;
    tracing::info!("scheduler stopped");
}
