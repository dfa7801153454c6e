//! The scheduler's side of the store: escalation rungs that have fallen due, firing one (its
//! reminders queued in the same transaction), open actions for `haven outcomes` and digests,
//! and which digest slot each recipient has been dealt with for.
//!
//! Exactly-once holds across restarts and several daemons on one database because each step is
//! a conditional write: a rung is fired by `UPDATE … WHERE fired_us IS NULL`, a digest slot is
//! claimed by inserting its `digest_runs` row, and every queued email carries a stable,
//! UNIQUE Message-ID. Whoever loses the race writes nothing.

use super::{OutboxRecord, Result, Store, Tx, from_us, on_pool, on_tx, to_us};
use chrono::{DateTime, Utc};
use sqlx::Row;
use std::collections::HashMap;

/// The audit actor for the scheduler's entries.
const ACTOR: &str = "scheduler";

/// An escalation rung whose time has come, on an action that is still open.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DueRung {
    pub action_id: i64,
    /// The rung's position on the ladder, from 0.
    pub rung: i32,
    pub incident_id: i64,
    /// When the rung falls due.
    pub due: DateTime<Utc>,
    /// Staff ids to remind.
    pub recipients: Vec<i64>,
    /// When the outcome itself is due, so a reminder can say how overdue it is.
    pub action_due: DateTime<Utc>,
    /// How many rungs the action's ladder has, for "reminder 2 of 3".
    pub ladder_len: i64,
}

/// An action still waiting for its outcome.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct OpenAction {
    pub action_id: i64,
    pub incident_id: i64,
    /// Staff id of the owner, who is expected to record the outcome.
    pub owner: Option<i64>,
    /// The owner's name (staff names may be shown; pupil names never are).
    pub owner_name: Option<String>,
    pub created: DateTime<Utc>,
    pub due: DateTime<Utc>,
    pub category: String,
    pub priority: String,
    /// The incident's stored visibility, for [`crate::visibility::Visibility::allows`].
    pub visibility: String,
    /// The pupils the incident is about (ids, [`crate::visibility::about`]), for visibility
    /// and initials.
    pub pupils: Vec<i64>,
}

/// An incident as a digest lists it: no text, no sender, only what minimal detail allows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordedIncident {
    pub id: i64,
    pub recorded: DateTime<Utc>,
    pub category: String,
    pub priority: String,
    pub visibility: String,
    /// The pupils the incident is about ([`crate::visibility::about`]).
    pub pupils: Vec<i64>,
}

/// Outbox purposes whose dead-lettering the audit log records as `{purpose}_dead`.
const DEAD_ACTIONS: &str = "'alert_dead', 'reminder_dead', 'digest_dead', 'triage_dead', 'notice_dead', 'signin_dead'";

impl Store {
    /// Unfired rungs due at or before `now` whose action is still open, oldest first (ties in
    /// ladder order), at most `limit`.
    pub async fn due_rungs(&self, now: DateTime<Utc>, limit: i64) -> Result<Vec<DueRung>> {
        on_pool!(self, |p| {
            let rows = sqlx::query(DUE_RUNGS).bind(to_us(now)).bind(limit).fetch_all(p).await?;
            let mut out = Vec::with_capacity(rows.len());
            for r in rows {
                let action_id: i64 = r.try_get("action_id")?;
                let recipients: String = r.try_get("recipients")?;
                // A damaged list must not stall every later rung: the rung still fires (and
                // is audited), reminding nobody, and the technician is told.
                let recipients = serde_json::from_str::<Vec<i64>>(&recipients).unwrap_or_else(|_| {
                    tracing::error!(action = action_id, "rung recipient list unreadable; it reminds nobody");
                    Vec::new()
                });
                out.push(DueRung {
                    action_id,
                    rung: r.try_get("rung")?,
                    incident_id: r.try_get("incident_id")?,
                    due: from_us(r.try_get("due_us")?),
                    recipients,
                    action_due: from_us(r.try_get("action_due_us")?),
                    ladder_len: r.try_get("ladder_len")?,
                });
            }
            Ok(out)
        })
    }

    /// When the next unfired rung of an open action falls due, for the scheduler's sleep.
    pub async fn next_rung_due(&self) -> Result<Option<DateTime<Utc>>> {
        on_pool!(self, |p| {
            // ORDER BY … LIMIT 1 rather than MIN(): walks the unfired-rungs index in due order
            // and stops at the first open action, instead of joining every unfired rung.
            let row = sqlx::query(NEXT_RUNG_DUE).fetch_optional(p).await?;
            Ok(row.map(|r| r.try_get::<i64, _>("due_us")).transpose()?.map(from_us))
        })
    }

    /// Every action still waiting for its outcome, oldest due first.
    pub async fn open_actions(&self) -> Result<Vec<OpenAction>> {
        self.actions_awaiting_outcome(i64::MAX).await
    }

    /// The actions whose outcome is overdue at `now` (due before it), oldest due first: read
    /// from the open-actions index up to `now`, not the whole list filtered.
    pub async fn overdue_actions(&self, now: DateTime<Utc>) -> Result<Vec<OpenAction>> {
        self.actions_awaiting_outcome(to_us(now)).await
    }

    async fn actions_awaiting_outcome(&self, due_before_us: i64) -> Result<Vec<OpenAction>> {
        on_pool!(self, |p| {
            let rows = sqlx::query(OPEN_ACTIONS).bind(due_before_us).fetch_all(p).await?;
            let links = sqlx::query(OPEN_ACTION_PUPILS).bind(due_before_us).fetch_all(p).await?;
            let mut pupils = pupils_by_incident(links)?;
            let mut out = Vec::with_capacity(rows.len());
            for r in rows {
                let incident_id: i64 = r.try_get("incident_id")?;
                let first: Option<String> = r.try_get("first_name")?;
                let last: Option<String> = r.try_get("last_name")?;
                out.push(OpenAction {
                    action_id: r.try_get("id")?,
                    incident_id,
                    owner: r.try_get("owner")?,
                    owner_name: first.zip(last).map(|(f, l)| format!("{f} {l}")),
                    created: from_us(r.try_get("created_us")?),
                    due: from_us(r.try_get("due_us")?),
                    category: r.try_get("category")?,
                    priority: r.try_get("priority")?,
                    visibility: r.try_get("visibility")?,
                    pupils: pupils.remove(&incident_id).unwrap_or_default(),
                });
            }
            Ok(out)
        })
    }

    /// Incidents recorded live (not historical, see [`Store::historical_filed_between`]) in
    /// `(after, until]`, oldest first.
    pub async fn incidents_recorded_between(&self, after: DateTime<Utc>, until: DateTime<Utc>) -> Result<Vec<RecordedIncident>> {
        on_pool!(self, |p| {
            let rows = sqlx::query(LIVE_INCIDENTS_BETWEEN).bind(to_us(after)).bind(to_us(until)).fetch_all(p).await?;
            let links = sqlx::query(LIVE_INCIDENT_PUPILS_BETWEEN).bind(to_us(after)).bind(to_us(until)).fetch_all(p).await?;
            let mut pupils = pupils_by_incident(links)?;
            let mut out = Vec::with_capacity(rows.len());
            for r in rows {
                let id: i64 = r.try_get("id")?;
                out.push(RecordedIncident {
                    id,
                    recorded: from_us(r.try_get("recorded_us")?),
                    category: r.try_get("category")?,
                    priority: r.try_get("priority")?,
                    visibility: r.try_get("visibility")?,
                    pupils: pupils.remove(&id).unwrap_or_default(),
                });
            }
            Ok(out)
        })
    }

    /// How many historical messages (a backfill) were filed in `(after, until]`: incidents
    /// recorded without alerts, which a digest counts rather than lists.
    pub async fn historical_filed_between(&self, after: DateTime<Utc>, until: DateTime<Utc>) -> Result<u64> {
        on_pool!(self, |p| {
            let n: i64 = sqlx::query_scalar(HISTORICAL_BETWEEN).bind(to_us(after)).bind(to_us(until)).fetch_one(p).await?;
            Ok(u64::try_from(n).unwrap_or(0))
        })
    }

    /// How many emails were dead-lettered in `(after, until]` (from the audit log, which records
    /// the moment each one was given up on).
    pub async fn dead_lettered_between(&self, after: DateTime<Utc>, until: DateTime<Utc>) -> Result<u64> {
        let sql = dead_lettered_sql();
        on_pool!(self, |p| {
            let row = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(to_us(after)).bind(to_us(until)).fetch_one(p).await?;
            Ok(u64::try_from(row.try_get::<i64, _>("n")?).unwrap_or(0))
        })
    }

    /// The slot of the latest digest actually sent to `recipient`: of `digest` when there is
    /// one, else of any digest (a digest whose schedule was changed), else None (never sent).
    pub async fn last_sent_digest_slot(&self, digest: &str, recipient: &str) -> Result<Option<DateTime<Utc>>> {
        on_pool!(self, |p| {
            let row = sqlx::query(
                "SELECT COALESCE( \
                   (SELECT MAX(slot_us) FROM digest_runs WHERE digest = $1 AND recipient = $2 AND sent), \
                   (SELECT MAX(slot_us) FROM digest_runs WHERE recipient = $2 AND sent)) AS slot",
            )
            .bind(digest)
            .bind(recipient)
            .fetch_one(p)
            .await?;
            Ok(row.try_get::<Option<i64>, _>("slot")?.map(from_us))
        })
    }

    /// The latest slot of `digest` dealt with for `recipient` (sent or passed over), if any.
    pub async fn last_digest_slot(&self, digest: &str, recipient: &str) -> Result<Option<DateTime<Utc>>> {
        on_pool!(self, |p| {
            let row = sqlx::query("SELECT MAX(slot_us) AS slot FROM digest_runs WHERE digest = $1 AND recipient = $2")
                .bind(digest)
                .bind(recipient)
                .fetch_one(p)
                .await?;
            Ok(row.try_get::<Option<i64>, _>("slot")?.map(from_us))
        })
    }
}

impl Tx {
    /// Fires one rung: marks it fired (only if no daemon has yet, and only while its action is
    /// open) and queues `emails` (reminders about the rung's incident) with an audit entry.
    /// Returns false, having written nothing, when the rung was already fired or the outcome
    /// has been recorded meanwhile. One transaction per rung: commit after this.
    pub async fn fire_rung(&mut self, rung: &DueRung, emails: &[OutboxRecord], now: DateTime<Utc>) -> Result<bool> {
        let fired = on_tx!(self, |c| {
            sqlx::query(
                "UPDATE action_rungs SET fired_us = $1 WHERE action_id = $2 AND rung = $3 AND fired_us IS NULL \
                 AND EXISTS (SELECT 1 FROM actions a WHERE a.id = $2 AND a.outcome IS NULL) RETURNING action_id",
            )
            .bind(to_us(now))
            .bind(rung.action_id)
            .bind(rung.rung)
            .fetch_optional(&mut *c)
            .await?
            .is_some()
        });
        if !fired {
            return Ok(false);
        }
        let mut queued = 0u32;
        for e in emails {
            if self.queue_email(Some(rung.incident_id), e, now).await? {
                queued += 1;
            }
        }
        self.append_audit(
            now,
            ACTOR,
            "rung_fired",
            &format!("incident:{}", rung.incident_id),
            &format!("action={} rung={} reminders={queued}", rung.action_id, rung.rung),
        )
        .await?;
        Ok(true)
    }

    /// Queues one email to send now. Returns false when an email with the same Message-ID was
    /// queued before (a repeat): the UNIQUE Message-ID means it can never be sent twice.
    pub async fn queue_email(&mut self, incident: Option<i64>, email: &OutboxRecord, now: DateTime<Utc>) -> Result<bool> {
        on_tx!(self, |c| {
            let row = sqlx::query(sqlx::AssertSqlSafe(format!(
                "INSERT INTO outbox (incident_id, purpose, recipient, email_message_id, subject, body, \
                 created_us, state, attempts, next_attempt_us, lane) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, 'pending', 0, $7, {}) \
                 ON CONFLICT (email_message_id) DO NOTHING RETURNING id",
                super::outbox::LANE_SQL
            )))
            .bind(incident)
            .bind(email.purpose)
            .bind(&email.recipient)
            .bind(&email.email_message_id)
            .bind(&email.subject)
            .bind(&email.body)
            .bind(to_us(now))
            .fetch_optional(&mut *c)
            .await?;
            Ok(row.is_some())
        })
    }

    /// Claims `slot` of `digest` for `recipient`: true when this call recorded it, false when it
    /// was already dealt with (a restart, another daemon). `sent` says whether a digest is being
    /// queued with it (false: passed over). Queue the digest in the same transaction.
    pub async fn record_digest_run(
        &mut self,
        digest: &str,
        recipient: &str,
        slot: DateTime<Utc>,
        sent: bool,
        now: DateTime<Utc>,
    ) -> Result<bool> {
        let inserted = on_tx!(self, |c| {
            sqlx::query(
                "INSERT INTO digest_runs (digest, recipient, slot_us, sent, at_us) VALUES ($1, $2, $3, $4, $5) \
                 ON CONFLICT (digest, recipient, slot_us) DO NOTHING RETURNING slot_us",
            )
            .bind(digest)
            .bind(recipient)
            .bind(to_us(slot))
            .bind(sent)
            .bind(to_us(now))
            .fetch_optional(&mut *c)
            .await?
            .is_some()
        });
        if inserted && sent {
            self.append_audit(now, ACTOR, "digest_queued", recipient, &format!("slot={}", to_us(slot))).await?;
        }
        Ok(inserted)
    }
}

/// Emails dead-lettered in a period, from the audit log's (action, time) index.
pub(super) fn dead_lettered_sql() -> String {
    format!("SELECT COUNT(*) AS n FROM audit_log WHERE action IN ({DEAD_ACTIONS}) AND at_us > $1 AND at_us <= $2")
}

/// `(incident_id, pupil_id, role)` rows, grouped by incident: the pupils each is about.
fn pupils_by_incident<R: Row>(links: Vec<R>) -> Result<HashMap<i64, Vec<i64>>>
where
    for<'a> i64: sqlx::Decode<'a, R::Database> + sqlx::Type<R::Database>,
    for<'a> String: sqlx::Decode<'a, R::Database> + sqlx::Type<R::Database>,
    for<'a> &'a str: sqlx::ColumnIndex<R>,
{
    let mut all: HashMap<i64, Vec<(i64, String)>> = HashMap::new();
    for l in links {
        all.entry(l.try_get("incident_id")?).or_default().push((l.try_get("pupil_id")?, l.try_get("role")?));
    }
    Ok(all.into_iter().map(|(incident, pupils)| (incident, crate::visibility::about(pupils))).collect())
}

/// Unfired rungs due, oldest first, of open actions.
pub(super) const DUE_RUNGS: &str = "SELECT r.action_id, r.rung, r.due_us, r.recipients, a.incident_id, a.due_us AS action_due_us, \
                 (SELECT COUNT(*) FROM action_rungs l WHERE l.action_id = r.action_id) AS ladder_len \
                 FROM action_rungs r JOIN actions a ON a.id = r.action_id \
                 WHERE r.fired_us IS NULL AND r.due_us <= $1 AND a.outcome IS NULL \
                 ORDER BY r.due_us, r.action_id, r.rung LIMIT $2";

/// When the next unfired rung of an open action falls due.
pub(super) const NEXT_RUNG_DUE: &str = "SELECT r.due_us FROM action_rungs r JOIN actions a ON a.id = r.action_id \
                 WHERE r.fired_us IS NULL AND a.outcome IS NULL ORDER BY r.due_us LIMIT 1";

/// Open actions due before $1, oldest due first.
pub(super) const OPEN_ACTIONS: &str = "SELECT a.id, a.incident_id, a.owner, s.first_name, s.last_name, a.created_us, a.due_us, \
                 i.category, i.priority, i.visibility \
                 FROM actions a JOIN incidents i ON i.id = a.incident_id LEFT JOIN staff s ON s.id = a.owner \
                 WHERE a.outcome IS NULL AND a.due_us < $1 ORDER BY a.due_us, a.id";

/// The pupils of every incident with an open action due before $1.
pub(super) const OPEN_ACTION_PUPILS: &str = "SELECT ip.incident_id, ip.pupil_id, ip.role FROM incident_pupils ip \
                 WHERE ip.incident_id IN (SELECT incident_id FROM actions WHERE outcome IS NULL AND due_us < $1) \
                 ORDER BY ip.incident_id, ip.pupil_id";

/// Incidents filed live in a period.
pub(super) const LIVE_INCIDENTS_BETWEEN: &str = "SELECT id, recorded_us, category, priority, visibility FROM incidents \
                 WHERE recorded_us > $1 AND recorded_us <= $2 AND NOT backfilled ORDER BY recorded_us, id";

/// The pupils of incidents filed live in a period.
pub(super) const LIVE_INCIDENT_PUPILS_BETWEEN: &str = "SELECT ip.incident_id, ip.pupil_id, ip.role FROM incident_pupils ip JOIN incidents i ON i.id = ip.incident_id \
                 WHERE i.recorded_us > $1 AND i.recorded_us <= $2 AND NOT i.backfilled ORDER BY ip.incident_id, ip.pupil_id";

/// Historical incidents filed in a period.
pub(super) const HISTORICAL_BETWEEN: &str = "SELECT COUNT(*) FROM incidents WHERE recorded_us > $1 AND recorded_us <= $2 AND backfilled";
