//! Disposals: a pupil's records in one retention series, destroyed by two people after a
//! cooling-off period. One row per request holds its state (requested, approved, cancelled,
//! done) and, once carried out, is the permanent disposal log: the series, the counts of what
//! was destroyed, the dates, who asked, approved and ran it, and when the last backup holding
//! the records expires. Nothing deletes from the table (a trigger refuses), and a carried-out
//! row names nobody: its pupil and its sealed reasons are cleared in the same transaction.
//!
//! Carrying one out ([`Tx::carry_out_disposal`]) deletes, in one transaction: the incidents
//! that concern only this pupil with their attachments, actions, reminders and outbox rows;
//! the messages they were filed from (and their duplicates) and every blob nobody else uses;
//! this pupil's link on incidents shared with another pupil (the shared incident stays: it is
//! the other pupil's record too); and, when nothing of theirs is left in any series, the
//! directory row, their contacts' links (and contacts linked to nobody else), their holds and
//! review decisions, and the items collected for subject access requests about them. Each destroyed incident gets an `incident_disposed` audit entry whose
//! record is marked disposed, so `haven audit verify` expects it gone.

use super::Store;
use super::{Result, StoreError, Tx, from_us, on_pool, on_tx, to_us};
use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use sqlx::Row;

/// The fields the free text here is sealed for.
pub mod fields {
    pub const REASON: &str = "disposal.reason";
    pub const CANCEL_REASON: &str = "disposal.cancel_reason";
}

/// Where a disposal stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum DisposalState {
    Requested,
    Approved,
    Cancelled,
    Done,
}

impl DisposalState {
    pub fn as_str(self) -> &'static str {
        match self {
            DisposalState::Requested => "requested",
            DisposalState::Approved => "approved",
            DisposalState::Cancelled => "cancelled",
            DisposalState::Done => "done",
        }
    }

    fn parse(s: &str) -> Result<DisposalState> {
        Ok(match s {
            "requested" => DisposalState::Requested,
            "approved" => DisposalState::Approved,
            "cancelled" => DisposalState::Cancelled,
            "done" => DisposalState::Done,
            other => {
                return Err(StoreError::Invalid(format!("disposal state {other:?} is not one Haven writes")));
            }
        })
    }
}

/// What a carried-out disposal destroyed: counts only, never content.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Destroyed {
    /// Incidents that concerned only this pupil, deleted.
    pub incidents: u64,
    /// Incidents shared with another pupil: kept for them, this pupil's link removed.
    pub shared_incidents_unlinked: u64,
    /// Original messages deleted from the database.
    pub messages: u64,
    pub attachments: u64,
    /// Sealed raw messages and attachment contents deleted.
    pub blobs: u64,
    /// Outcome deadlines (with their reminders) deleted.
    pub actions: u64,
    /// Alerts, reminders and questions about these incidents deleted from the outbox.
    pub outbox: u64,
    /// Released holds deleted (a standing hold stops a disposal).
    pub holds: u64,
    pub reviews: u64,
    /// Contacts linked to this pupil only, deleted (links to the pupil always are).
    pub contacts: u64,
    /// Whether the pupil's directory entry was deleted (false: records in another series remain).
    pub directory_entry: bool,
    /// Copies of the original messages deleted from the mailbox's Filed and Quarantine folders
    /// (IMAP) or the intake Maildir.
    pub mailbox_copies: u64,
    /// Whether the pupil's own key was destroyed (with their directory entry): what any older
    /// copy of the database holds sealed under it no longer opens.
    #[serde(default)]
    pub pupil_key: bool,
}

/// One disposal, as stored (reasons still sealed).
#[derive(Debug, Clone)]
pub struct Disposal {
    pub id: i64,
    /// None once carried out.
    pub pupil_id: Option<i64>,
    pub series: String,
    /// "review" (a destroy decision stands) or "due" (the series is past its date).
    pub basis: String,
    pub state: DisposalState,
    pub sealed_reason: Option<String>,
    pub requested_by: i64,
    pub requested_at: DateTime<Utc>,
    pub approved: Option<(i64, DateTime<Utc>)>,
    /// When the cooling-off period ends.
    pub not_before: Option<DateTime<Utc>>,
    pub cancelled: Option<(i64, DateTime<Utc>)>,
    pub sealed_cancel_reason: Option<String>,
    pub run: Option<(i64, DateTime<Utc>)>,
    pub backups_expire_on: Option<NaiveDate>,
    pub destroyed: Option<Destroyed>,
}

/// One of a pupil's incidents, for choosing what a disposal covers.
#[derive(Debug, Clone)]
pub struct PupilIncident {
    pub incident: i64,
    pub category: String,
    /// Other pupils linked to it (in any role).
    pub others: i64,
}

/// A message a disposal destroys, as found again in the mailbox: by Message-ID (or size) and
/// then by the SHA-256 of its raw bytes.
#[derive(Debug, Clone)]
pub struct MailCopy {
    pub message: i64,
    pub message_id: Option<String>,
    pub size: i64,
    /// Of the raw bytes; None when the message was too large to fetch (nothing to match).
    pub sha256: Option<String>,
}

/// What a disposal is to do, worked out before anything is deleted.
#[derive(Debug, Clone)]
pub struct DisposalPlan {
    pub disposal: i64,
    pub pupil: i64,
    pub series: String,
    /// Incidents in the series that concern only this pupil.
    pub own: Vec<i64>,
    /// Incidents in the series shared with other pupils.
    pub shared: Vec<i64>,
    /// The messages the own incidents were filed from, and their duplicates.
    pub messages: Vec<MailCopy>,
}

const COLUMNS: &str = "id, pupil_id, series, basis, state, reason, requested_by, requested_us, approved_by, approved_us, \
                       not_before_us, cancelled_by, cancelled_us, cancel_reason, run_by, run_us, backups_expire_on, destroyed";

trait DisposalRow {
    fn disposal(&self) -> Result<Disposal>;
}

macro_rules! disposal_row {
    ($row:ty) => {
        impl DisposalRow for $row {
            fn disposal(&self) -> Result<Disposal> {
                let pair = |by: &str, at: &str| -> Result<Option<(i64, DateTime<Utc>)>> {
                    let by: Option<i64> = self.try_get(by)?;
                    let at: Option<i64> = self.try_get(at)?;
                    Ok(by.zip(at.map(from_us)))
                };
                let destroyed: Option<String> = self.try_get("destroyed")?;
                let expires: Option<String> = self.try_get("backups_expire_on")?;
                Ok(Disposal {
                    id: self.try_get("id")?,
                    pupil_id: self.try_get("pupil_id")?,
                    series: self.try_get("series")?,
                    basis: self.try_get("basis")?,
                    state: DisposalState::parse(&self.try_get::<String, _>("state")?)?,
                    sealed_reason: self.try_get("reason")?,
                    requested_by: self.try_get("requested_by")?,
                    requested_at: from_us(self.try_get("requested_us")?),
                    approved: pair("approved_by", "approved_us")?,
                    not_before: self.try_get::<Option<i64>, _>("not_before_us")?.map(from_us),
                    cancelled: pair("cancelled_by", "cancelled_us")?,
                    sealed_cancel_reason: self.try_get("cancel_reason")?,
                    run: pair("run_by", "run_us")?,
                    backups_expire_on: expires.and_then(|d| NaiveDate::parse_from_str(&d, "%Y-%m-%d").ok()),
                    destroyed: destroyed.and_then(|d| serde_json::from_str(&d).ok()),
                })
            }
        }
    };
}
disposal_row!(sqlx::sqlite::SqliteRow);
disposal_row!(sqlx::postgres::PgRow);

impl Store {
    /// Every disposal, newest first.
    pub async fn disposals(&self) -> Result<Vec<Disposal>> {
        let sql = format!("SELECT {COLUMNS} FROM disposals ORDER BY id DESC");
        on_pool!(self, |p| sqlx::query(sqlx::AssertSqlSafe(sql)).fetch_all(p).await?.iter().map(|r| r.disposal()).collect())
    }

    pub async fn disposal(&self, id: i64) -> Result<Option<Disposal>> {
        let sql = format!("SELECT {COLUMNS} FROM disposals WHERE id = $1");
        on_pool!(self, |p| sqlx::query(sqlx::AssertSqlSafe(sql)).bind(id).fetch_optional(p).await?.map(|r| r.disposal()).transpose())
    }

    /// After a disposal: SQLite copies the deleted pages (zeroed: `secure_delete`) back into the
    /// database file and truncates its write-ahead log, which would otherwise keep older copies
    /// of them until it is overwritten. False when a reader kept the log from being truncated
    /// (the next checkpoint does it). PostgreSQL keeps dead rows in its data files until VACUUM
    /// reuses the space; they are sealed like every row, and no dump or query returns them.
    pub async fn scrub_deleted(&self) -> Result<bool> {
        match self {
            Store::Sqlite(p) => {
                let row = sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)").fetch_one(p).await?;
                Ok(row.try_get::<i64, _>(0)? == 0)
            }
            Store::Postgres(_) => Ok(true),
        }
    }

    /// Seals again under the ring alone every incident text (other than in `except`) that is
    /// sealed under pupil `pupil`'s own key: before their key is destroyed, an incident that
    /// concerns another pupil too must stay readable. Returns how many values.
    pub async fn unseal_from_pupil(&self, except: &[i64], pupil: i64, sealer: &crate::seal::Sealer) -> Result<u64> {
        use crate::pipeline::fields;
        const COLUMNS: [(&str, &str); 7] = [
            ("note", fields::NOTE),
            ("original_subject", fields::SUBJECT),
            ("body_text", fields::BODY_TEXT),
            ("body_html", fields::BODY_HTML),
            ("original_from", fields::ORIGINAL_FROM),
            ("original_name", fields::ORIGINAL_NAME),
            ("ai_suggestion", fields::AI_SUGGESTION),
        ];
        let mut changed = 0;
        let mut after = 0i64;
        loop {
            let rows: Vec<(i64, Vec<Option<String>>)> = on_pool!(self, |p| {
                let rows = sqlx::query(
                    "SELECT id, note, original_subject, body_text, body_html, original_from, original_name, ai_suggestion FROM incidents \
                     WHERE id > $1 ORDER BY id LIMIT 500",
                )
                .bind(after)
                .fetch_all(p)
                .await?;
                let mut out = Vec::with_capacity(rows.len());
                for r in &rows {
                    let mut values = Vec::new();
                    for (column, _) in COLUMNS {
                        values.push(r.try_get::<Option<String>, _>(column)?);
                    }
                    out.push((r.try_get::<i64, _>("id")?, values));
                }
                out
            });
            let Some(last) = rows.last().map(|(id, _)| *id) else { break };
            after = last;
            for (id, values) in rows {
                if except.contains(&id) {
                    continue;
                }
                for ((column, field), value) in COLUMNS.iter().zip(values) {
                    let Some(value) = value.filter(|v| sealer.sealed_for_pupil(field, v) == Some(pupil)) else { continue };
                    let plain = sealer
                        .open_text(field, &value)
                        .map_err(|source| StoreError::Sealed { what: format!("incident {id} ({column})"), source })?;
                    let sql = format!("UPDATE incidents SET {column} = $1 WHERE id = $2");
                    on_pool!(self, |p| sqlx::query(sqlx::AssertSqlSafe(sql))
                        .bind(sealer.seal_text(field, &plain))
                        .bind(id)
                        .execute(p)
                        .await?
                        .rows_affected());
                    changed += 1;
                }
            }
        }
        Ok(changed)
    }

    /// The pupil's incidents (any role), with their category and how many other pupils share them.
    pub async fn pupil_incidents(&self, pupil: i64) -> Result<Vec<PupilIncident>> {
        const SQL: &str = "SELECT i.id, i.category, \
                           (SELECT COUNT(*) FROM incident_pupils o WHERE o.incident_id = i.id AND o.pupil_id <> $1) AS others \
                           FROM incidents i JOIN incident_pupils ip ON ip.incident_id = i.id WHERE ip.pupil_id = $1 ORDER BY i.id";
        on_pool!(self, |p| sqlx::query(SQL)
            .bind(pupil)
            .fetch_all(p)
            .await?
            .iter()
            .map(|r| Ok(PupilIncident { incident: r.try_get("id")?, category: r.try_get("category")?, others: r.try_get("others")? }))
            .collect())
    }

    /// The messages `own` incidents were filed from, and the duplicates of those, that no
    /// other incident was filed from.
    pub async fn messages_only_of(&self, own: &[i64]) -> Result<Vec<MailCopy>> {
        const OF_INCIDENT: &str = "SELECT m.id, m.message_id, m.size, m.sha256 FROM messages m JOIN incidents i ON i.message_id = m.id \
                                   WHERE i.id = $1";
        const DUPLICATES: &str = "SELECT id, message_id, size, sha256 FROM messages WHERE duplicate_of = $1";
        const USED_BY: &str = "SELECT id FROM incidents WHERE message_id = $1";
        let mut out: Vec<MailCopy> = Vec::new();
        on_pool!(self, |p| {
            let mut found = Vec::new();
            for id in own {
                found.extend(sqlx::query(OF_INCIDENT).bind(id).fetch_all(p).await?);
            }
            let mut i = 0;
            while i < found.len() {
                let id: i64 = found[i].try_get("id")?;
                found.extend(sqlx::query(DUPLICATES).bind(id).fetch_all(p).await?);
                i += 1;
            }
            for r in &found {
                let id: i64 = r.try_get("id")?;
                if out.iter().any(|m| m.message == id) {
                    continue;
                }
                let users: Vec<i64> = sqlx::query_scalar(USED_BY).bind(id).fetch_all(p).await?;
                if users.iter().any(|u| !own.contains(u)) {
                    continue;
                }
                out.push(MailCopy {
                    message: id,
                    message_id: r.try_get("message_id")?,
                    size: r.try_get("size")?,
                    sha256: r.try_get("sha256")?,
                });
            }
        });
        Ok(out)
    }
}

impl Tx {
    /// Records a request; returns its id. Audited as `disposal_request`.
    pub async fn request_disposal(
        &mut self,
        pupil: i64,
        series: &str,
        basis: &str,
        sealed_reason: &str,
        by: i64,
        at: DateTime<Utc>,
    ) -> Result<i64> {
        let id: i64 = on_tx!(self, |c| {
            sqlx::query(
                "INSERT INTO disposals (pupil_id, series, basis, state, reason, requested_by, requested_us) \
             VALUES ($1, $2, $3, 'requested', $4, $5, $6) RETURNING id",
            )
            .bind(pupil)
            .bind(series)
            .bind(basis)
            .bind(sealed_reason)
            .bind(by)
            .bind(to_us(at))
            .fetch_one(&mut *c)
            .await?
            .try_get("id")?
        });
        self.append_audit(
            at,
            &format!("staff:{by}"),
            "disposal_request",
            &format!("disposal:{id}"),
            &format!("pupil:{pupil} series={series} basis={basis}"),
        )
        .await?;
        Ok(id)
    }

    /// Approves a requested disposal; false when it is not (or no longer) requested.
    pub async fn approve_disposal(&mut self, id: i64, by: i64, at: DateTime<Utc>, not_before: DateTime<Utc>) -> Result<bool> {
        let n = on_tx!(self, |c| {
            sqlx::query(
                "UPDATE disposals SET state = 'approved', approved_by = $2, approved_us = $3, not_before_us = $4 \
             WHERE id = $1 AND state = 'requested'",
            )
            .bind(id)
            .bind(by)
            .bind(to_us(at))
            .bind(to_us(not_before))
            .execute(&mut *c)
            .await?
            .rows_affected()
        });
        if n > 0 {
            self.append_audit(
                at,
                &format!("staff:{by}"),
                "disposal_approve",
                &format!("disposal:{id}"),
                &format!("not_before={}", not_before.to_rfc3339()),
            )
            .await?;
        }
        Ok(n > 0)
    }

    /// Cancels a disposal not yet carried out; false when it is done or already cancelled.
    pub async fn cancel_disposal(&mut self, id: i64, sealed_reason: &str, by: i64, at: DateTime<Utc>) -> Result<bool> {
        let n = on_tx!(self, |c| {
            sqlx::query(
                "UPDATE disposals SET state = 'cancelled', cancelled_by = $2, cancelled_us = $3, cancel_reason = $4 \
             WHERE id = $1 AND state IN ('requested', 'approved')",
            )
            .bind(id)
            .bind(by)
            .bind(to_us(at))
            .bind(sealed_reason)
            .execute(&mut *c)
            .await?
            .rows_affected()
        });
        if n > 0 {
            self.append_audit(at, &format!("staff:{by}"), "disposal_cancel", &format!("disposal:{id}"), "").await?;
        }
        Ok(n > 0)
    }

    /// Records a refusal in the audit log, inside this transaction.
    pub async fn audit_disposal_refusal(&mut self, id: Option<i64>, by: &str, why: &str, at: DateTime<Utc>) -> Result<()> {
        let subject = id.map_or_else(|| "disposal".to_string(), |id| format!("disposal:{id}"));
        self.append_audit(at, by, "disposal_refused", &subject, why).await
    }

    /// Carries out `plan`'s deletions in the database (see the module's documentation). The
    /// caller then deletes the mailbox's copies and, in the same transaction, writes the
    /// permanent log entry ([`Tx::record_disposal`]): a database that cannot take the deletions
    /// (a full disk) fails here, before the mailbox is touched.
    pub async fn carry_out_disposal(&mut self, plan: &DisposalPlan, by: i64, at: DateTime<Utc>, has_pupil_key: bool) -> Result<Destroyed> {
        let mut d = Destroyed::default();
        let pupil = plan.pupil;
        // The run claims the row first: a second `dispose run` at the same moment waits on the
        // write lock, then finds it no longer approved and deletes nothing.
        let claimed = on_tx!(self, |c| {
            sqlx::query("UPDATE disposals SET state = 'done', run_by = $2, run_us = $3 WHERE id = $1 AND state = 'approved'")
                .bind(plan.disposal)
                .bind(by)
                .bind(to_us(at))
                .execute(&mut *c)
                .await?
                .rows_affected()
        });
        if claimed == 0 {
            return Err(StoreError::Invalid(format!("disposal #{} is no longer approved; nothing was deleted", plan.disposal)));
        }
        // A hold set since the command looked stops it still (the command says which).
        let holds: i64 = on_tx!(self, |c| sqlx::query_scalar(
            "SELECT COUNT(*) FROM holds WHERE released_us IS NULL AND (pupil_id = $1 \
             OR incident_id IN (SELECT incident_id FROM incident_pupils WHERE pupil_id = $1))"
        )
        .bind(pupil)
        .fetch_one(&mut *c)
        .await?);
        if holds > 0 {
            return Err(StoreError::Invalid(format!(
                "a hold was set on this pupil just now: disposal #{} stops; nothing was deleted",
                plan.disposal
            )));
        }
        let own = &plan.own;
        let messages: Vec<i64> = plan.messages.iter().map(|m| m.message).collect();
        on_tx!(self, |c| {
            // This pupil's link on shared incidents.
            for id in &plan.shared {
                d.shared_incidents_unlinked += sqlx::query("DELETE FROM incident_pupils WHERE incident_id = $1 AND pupil_id = $2")
                    .bind(id)
                    .bind(pupil)
                    .execute(&mut *c)
                    .await?
                    .rows_affected();
            }
            let mut blobs: Vec<String> = Vec::new();
            for id in own {
                // Whatever else points at the incident stops pointing at it.
                sqlx::query("UPDATE incidents SET corrects = NULL WHERE corrects = $1").bind(id).execute(&mut *c).await?;
                sqlx::query("UPDATE incidents SET follows = NULL WHERE follows = $1").bind(id).execute(&mut *c).await?;
                sqlx::query("DELETE FROM action_rungs WHERE action_id IN (SELECT id FROM actions WHERE incident_id = $1)")
                    .bind(id)
                    .execute(&mut *c)
                    .await?;
                d.actions += sqlx::query("DELETE FROM actions WHERE incident_id = $1").bind(id).execute(&mut *c).await?.rows_affected();
                d.outbox += sqlx::query("DELETE FROM outbox WHERE incident_id = $1").bind(id).execute(&mut *c).await?.rows_affected();
                d.holds += sqlx::query("DELETE FROM holds WHERE incident_id = $1").bind(id).execute(&mut *c).await?.rows_affected();
                let shas: Vec<String> =
                    sqlx::query_scalar("SELECT sha256 FROM attachments WHERE incident_id = $1").bind(id).fetch_all(&mut *c).await?;
                blobs.extend(shas);
                d.attachments +=
                    sqlx::query("DELETE FROM attachments WHERE incident_id = $1").bind(id).execute(&mut *c).await?.rows_affected();
                sqlx::query("DELETE FROM referrals WHERE incident_id = $1").bind(id).execute(&mut *c).await?;
                sqlx::query("DELETE FROM incident_pupils WHERE incident_id = $1").bind(id).execute(&mut *c).await?;
                d.incidents += sqlx::query("DELETE FROM incidents WHERE id = $1").bind(id).execute(&mut *c).await?.rows_affected();
            }
            for id in &messages {
                // Still used by an incident filed since the plan was made: kept.
                let used: i64 =
                    sqlx::query_scalar("SELECT COUNT(*) FROM incidents WHERE message_id = $1").bind(id).fetch_one(&mut *c).await?;
                if used > 0 {
                    continue;
                }
                sqlx::query("UPDATE messages SET duplicate_of = NULL WHERE duplicate_of = $1").bind(id).execute(&mut *c).await?;
                d.outbox += sqlx::query("DELETE FROM outbox WHERE message_id = $1").bind(id).execute(&mut *c).await?.rows_affected();
                let sha: Option<String> = sqlx::query_scalar::<_, Option<String>>("SELECT sha256 FROM messages WHERE id = $1")
                    .bind(id)
                    .fetch_optional(&mut *c)
                    .await?
                    .flatten();
                blobs.extend(sha);
                d.messages += sqlx::query("DELETE FROM messages WHERE id = $1").bind(id).execute(&mut *c).await?.rows_affected();
            }
            blobs.sort();
            blobs.dedup();
            for sha in &blobs {
                let used: i64 = sqlx::query_scalar(
                    "SELECT (SELECT COUNT(*) FROM attachments WHERE sha256 = $1) + (SELECT COUNT(*) FROM messages WHERE sha256 = $1)",
                )
                .bind(sha)
                .fetch_one(&mut *c)
                .await?;
                if used == 0 {
                    d.blobs += sqlx::query("DELETE FROM blobs WHERE sha256 = $1").bind(sha).execute(&mut *c).await?.rows_affected();
                }
            }
            d.reviews += sqlx::query("DELETE FROM retention_reviews WHERE pupil_id = $1 AND series = $2")
                .bind(pupil)
                .bind(&plan.series)
                .execute(&mut *c)
                .await?
                .rows_affected();
            let left: i64 =
                sqlx::query_scalar("SELECT COUNT(*) FROM incident_pupils WHERE pupil_id = $1").bind(pupil).fetch_one(&mut *c).await?;
            if left == 0 {
                d.holds += sqlx::query("DELETE FROM holds WHERE pupil_id = $1").bind(pupil).execute(&mut *c).await?.rows_affected();
                d.reviews +=
                    sqlx::query("DELETE FROM retention_reviews WHERE pupil_id = $1").bind(pupil).execute(&mut *c).await?.rows_affected();
                let contacts: Vec<i64> =
                    sqlx::query_scalar("SELECT contact_id FROM contact_pupils WHERE pupil_id = $1").bind(pupil).fetch_all(&mut *c).await?;
                sqlx::query("DELETE FROM contact_pupils WHERE pupil_id = $1").bind(pupil).execute(&mut *c).await?;
                for contact in contacts {
                    d.contacts += sqlx::query(
                        "DELETE FROM contacts WHERE id = $1 AND NOT EXISTS (SELECT 1 FROM contact_pupils WHERE contact_id = $1)",
                    )
                    .bind(contact)
                    .execute(&mut *c)
                    .await?
                    .rows_affected();
                }
                sqlx::query("DELETE FROM pupil_plans WHERE pupil_id = $1").bind(pupil).execute(&mut *c).await?;
                sqlx::query("DELETE FROM pupil_characteristics WHERE pupil_id = $1").bind(pupil).execute(&mut *c).await?;
                // The blind name index (keyed hashes of their names) goes with the entry.
                sqlx::query("DELETE FROM pupil_name_tokens WHERE pupil_id = $1").bind(pupil).execute(&mut *c).await?;
                // What subject access requests about them collected (copies of their records,
                // sealed under their own key): the request and its disclosure log stay.
                sqlx::query("DELETE FROM sar_items WHERE sar_id IN (SELECT id FROM sar_requests WHERE pupil_id = $1)")
                    .bind(pupil)
                    .execute(&mut *c)
                    .await?;
                // Their transfer cases (and the cases' reminders) go with the entry.
                sqlx::query("DELETE FROM transfer_reminders WHERE case_id IN (SELECT id FROM transfer_cases WHERE pupil_id = $1)")
                    .bind(pupil)
                    .execute(&mut *c)
                    .await?;
                sqlx::query("DELETE FROM transfer_cases WHERE pupil_id = $1").bind(pupil).execute(&mut *c).await?;
                d.directory_entry = sqlx::query("DELETE FROM pupils WHERE id = $1").bind(pupil).execute(&mut *c).await?.rows_affected() > 0;
                // Destroyed by the caller once this commits.
                d.pupil_key = d.directory_entry && has_pupil_key;
                // Earlier requests about them (cancelled ones) name them no longer either.
                sqlx::query("UPDATE disposals SET pupil_id = NULL, reason = NULL, cancel_reason = NULL WHERE pupil_id = $1")
                    .bind(pupil)
                    .execute(&mut *c)
                    .await?;
            }
            Ok::<(), StoreError>(())
        })?;
        if d.directory_entry {
            self.bump_directory_generation().await?;
        }
        Ok(d)
    }

    /// The permanent log entry of a disposal carried out by [`Tx::carry_out_disposal`] (with
    /// `d.mailbox_copies` counted since) and its audit entries.
    pub async fn record_disposal(
        &mut self,
        plan: &DisposalPlan,
        d: &Destroyed,
        by: i64,
        at: DateTime<Utc>,
        backups_expire_on: NaiveDate,
    ) -> Result<()> {
        let actor = format!("staff:{by}");
        let own = &plan.own;
        on_tx!(self, |c| {
            sqlx::query("UPDATE disposals SET pupil_id = NULL, reason = NULL, backups_expire_on = $2, destroyed = $3 WHERE id = $1")
                .bind(plan.disposal)
                .bind(backups_expire_on.to_string())
                .bind(serde_json::to_string(d).unwrap_or_default())
                .execute(&mut *c)
                .await
                .map(|_| ())
        })?;
        let mut entries: Vec<super::audit::AuditRecord<'_>> = own
            .iter()
            .map(|id| super::audit::AuditRecord {
                at,
                actor: &actor,
                action: "incident_disposed",
                subject: format!("incident:{id}"),
                detail: format!("disposal={}", plan.disposal),
                incident: Some(*id),
            })
            .collect();
        let summary = format!(
            "series={} incidents={} shared_unlinked={} messages={} mailbox_copies={} directory_entry={}",
            plan.series, d.incidents, d.shared_incidents_unlinked, d.messages, d.mailbox_copies, d.directory_entry
        );
        entries.push(super::audit::AuditRecord {
            at,
            actor: &actor,
            action: "disposal_run",
            subject: format!("disposal:{}", plan.disposal),
            detail: summary,
            incident: None,
        });
        self.append_audits(&entries).await?;
        Ok(())
    }
}
