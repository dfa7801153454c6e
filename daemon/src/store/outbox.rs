//! The outbox's side of the store: claiming emails that are due, and recording what became of
//! each send (sent, to retry, dead), with an audit entry for the final states.
//!
//! Several daemons may share one PostgreSQL database, so a claim is a lease: the claimed rows'
//! `next_attempt_us` moves to the end of the lease, and `FOR UPDATE SKIP LOCKED` keeps two
//! daemons from claiming the same row at once. A daemon that dies mid-send leaves its rows to
//! be claimed again when the lease ends; the resend carries the same Message-ID.

use super::{Result, Store, StoreError, from_us, on_pool, to_us};
use chrono::{DateTime, Duration, Utc};
use sqlx::Row;

/// How long a claimed email is reserved for the daemon that claimed it. A pass stops starting
/// sends at half of it, and one send is bounded by the SMTP timeout (30 s), so every send of a
/// pass ends at least 30 s before another daemon may claim the row; short, because the emails
/// a killed daemon had claimed wait this long before another daemon sends them.
pub const CLAIM_LEASE: Duration = Duration::minutes(2);

/// The audit actor for the outbox worker's entries.
const ACTOR: &str = "outbox";

/// The lane of an email (migration 0039): lane 0 is claimed before lane 1. An email goes in
/// lane 0 when someone is waiting for it now (a console sign-in link, which works for ten
/// minutes) or when it alerts or reminds about an urgent incident; everything else in lane 1.
/// A backlog of routine alerts then never holds up a sign-in link or an urgent alert.
pub fn lane(purpose: &str, urgent_incident: bool) -> i16 {
    match purpose {
        "signin" => 0,
        "alert" | "reminder" if urgent_incident => 0,
        _ => 1,
    }
}

/// [`lane`] as SQL, for an INSERT whose `$1` is the incident (or NULL) and `$2` the purpose.
pub(super) const LANE_SQL: &str = "CASE WHEN $2 = 'signin' THEN 0 \
     WHEN $2 IN ('alert', 'reminder') AND EXISTS (SELECT 1 FROM incidents WHERE id = $1 AND priority = 'urgent') THEN 0 \
     ELSE 1 END";

/// The emails the outbox claims next: due, lane 0 first, then oldest first (`$1` now, `$3`
/// how many). Read along the `outbox_due` index, however long the backlog.
pub(super) const DUE_EMAILS: &str =
    "SELECT id FROM outbox WHERE state = 'pending' AND next_attempt_us <= $1 ORDER BY lane, next_attempt_us, id LIMIT $3";

/// An email claimed for sending.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingEmail {
    pub id: i64,
    pub incident_id: Option<i64>,
    /// For a triage question: the message it asks about.
    pub message_id: Option<i64>,
    /// alert | reminder | digest | triage | notice
    pub purpose: String,
    pub recipient: String,
    /// Without angle brackets; stable across resends.
    pub email_message_id: String,
    pub subject: String,
    pub body: String,
    /// Failed attempts so far.
    pub attempts: i32,
    /// The email is about an incident whose priority is urgent (it never waits for quiet hours).
    pub urgent: bool,
}

/// An email that will not be sent, for the digest and the administrator.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeadEmail {
    pub id: i64,
    pub incident_id: Option<i64>,
    pub purpose: String,
    pub recipient: String,
    pub attempts: i32,
    pub last_error: Option<String>,
    pub created: DateTime<Utc>,
}

impl Store {
    /// Claims up to `limit` pending emails whose next attempt is due at `now`, leasing them
    /// until `now + CLAIM_LEASE` so no other daemon sends them meanwhile. Lane 0 first (see
    /// [`lane`]), then oldest first.
    pub async fn due_emails(&self, now: DateTime<Utc>, limit: i64) -> Result<Vec<PendingEmail>> {
        let lock = match self {
            Store::Sqlite(_) => "",
            Store::Postgres(_) => " FOR UPDATE SKIP LOCKED",
        };
        let sql = format!(
            "UPDATE outbox SET next_attempt_us = $2 WHERE id IN ({DUE_EMAILS}{lock}) \
             RETURNING id, lane, incident_id, message_id, purpose, recipient, email_message_id, subject, body, attempts, \
             (SELECT priority FROM incidents WHERE incidents.id = outbox.incident_id) AS priority"
        );
        let mut out: Vec<(i16, PendingEmail)> = on_pool!(self, |p| {
            let rows =
                sqlx::query(sqlx::AssertSqlSafe(sql)).bind(to_us(now)).bind(to_us(now + CLAIM_LEASE)).bind(limit).fetch_all(p).await?;
            let mut out = Vec::with_capacity(rows.len());
            for r in rows {
                out.push((
                    r.try_get::<i16, _>("lane")?,
                    PendingEmail {
                        id: r.try_get("id")?,
                        incident_id: r.try_get("incident_id")?,
                        message_id: r.try_get("message_id")?,
                        purpose: r.try_get("purpose")?,
                        recipient: r.try_get("recipient")?,
                        email_message_id: r.try_get("email_message_id")?,
                        subject: r.try_get("subject")?,
                        body: r.try_get("body")?,
                        attempts: r.try_get("attempts")?,
                        urgent: r.try_get::<Option<String>, _>("priority")?.as_deref() == Some("urgent"),
                    },
                ));
            }
            out
        });
        // RETURNING keeps no order: sent in the order claimed.
        out.sort_by_key(|(lane, e)| (*lane, e.id));
        Ok(out.into_iter().map(|(_, e)| e).collect())
    }

    /// Records a delivered email, with an audit entry naming only ids. Its subject and body are
    /// deleted: the recipient has them, and a copy of the database must not.
    pub async fn mark_sent(&self, id: i64, at: DateTime<Utc>) -> Result<()> {
        let mut tx = self.begin().await?;
        let row = super::on_tx!(&mut tx, |c| {
            sqlx::query(
                "UPDATE outbox SET state = 'sent', sent_us = $2, last_error = NULL, subject = '', body = '' \
                 WHERE id = $1 AND state = 'pending' RETURNING incident_id, purpose",
            )
            .bind(id)
            .bind(to_us(at))
            .fetch_optional(&mut *c)
            .await?
            .map(|r| audit_subject(id, &r))
            .transpose()?
        });
        if let Some((subject, purpose)) = row {
            tx.append_audit(at, ACTOR, &format!("{purpose}_sent"), &subject, &format!("outbox={id}")).await?;
        }
        tx.commit().await
    }

    /// Counts one failed attempt and schedules the next at `next`. `error` is kept for the
    /// administrator (it may name the recipient, so it is stored, never logged).
    pub async fn mark_retry(&self, id: i64, error: &str, next: DateTime<Utc>) -> Result<()> {
        on_pool!(self, |p| {
            sqlx::query(
                "UPDATE outbox SET attempts = attempts + 1, last_error = $2, next_attempt_us = $3 \
                 WHERE id = $1 AND state = 'pending'",
            )
            .bind(id)
            .bind(error)
            .bind(to_us(next))
            .execute(p)
            .await?;
        });
        Ok(())
    }

    /// Gives a claimed email back without counting an attempt (nothing was tried: the server
    /// was unreachable for an earlier email in the same pass), to be tried at `next`.
    pub async fn release_email(&self, id: i64, next: DateTime<Utc>) -> Result<()> {
        on_pool!(self, |p| {
            sqlx::query("UPDATE outbox SET next_attempt_us = $2 WHERE id = $1 AND state = 'pending'")
                .bind(id)
                .bind(to_us(next))
                .execute(p)
                .await?;
        });
        Ok(())
    }

    /// Dead-letters an email that cannot be delivered (a permanent refusal, or too many
    /// attempts), counting this last attempt, with an audit entry naming only ids. Its subject
    /// and body are deleted as on delivery; the row keeps who, why and when for the digest.
    pub async fn mark_dead(&self, id: i64, error: &str, at: DateTime<Utc>) -> Result<()> {
        let mut tx = self.begin().await?;
        let row = super::on_tx!(&mut tx, |c| {
            sqlx::query(
                "UPDATE outbox SET state = 'dead', attempts = attempts + 1, last_error = $2, subject = '', body = '' \
                 WHERE id = $1 AND state = 'pending' RETURNING incident_id, purpose, attempts",
            )
            .bind(id)
            .bind(error)
            .fetch_optional(&mut *c)
            .await?
            .map(|r| Ok::<_, StoreError>((audit_subject(id, &r)?, row_get(&r, "attempts")?)))
            .transpose()?
        });
        if let Some(((subject, purpose), attempts)) = row {
            tx.append_audit(at, ACTOR, &format!("{purpose}_dead"), &subject, &format!("outbox={id} attempts={attempts}")).await?;
        }
        tx.commit().await
    }

    /// When the next pending email falls due (for the worker's sleep), if any is pending.
    pub async fn next_email_due(&self) -> Result<Option<DateTime<Utc>>> {
        on_pool!(self, |p| {
            let row = sqlx::query("SELECT MIN(next_attempt_us) AS due FROM outbox WHERE state = 'pending'").fetch_one(p).await?;
            let due: Option<i64> = row.try_get("due")?;
            Ok(due.map(from_us))
        })
    }

    /// Emails dead-lettered among those created at or after `since`, oldest first: what the
    /// digest and the administrator are told about.
    pub async fn dead_emails(&self, since: DateTime<Utc>) -> Result<Vec<DeadEmail>> {
        on_pool!(self, |p| {
            let rows = sqlx::query(
                "SELECT id, incident_id, purpose, recipient, attempts, last_error, created_us FROM outbox \
                 WHERE state = 'dead' AND created_us >= $1 ORDER BY id",
            )
            .bind(to_us(since))
            .fetch_all(p)
            .await?;
            let mut out = Vec::with_capacity(rows.len());
            for r in rows {
                out.push(DeadEmail {
                    id: r.try_get("id")?,
                    incident_id: r.try_get("incident_id")?,
                    purpose: r.try_get("purpose")?,
                    recipient: r.try_get("recipient")?,
                    attempts: r.try_get("attempts")?,
                    last_error: r.try_get("last_error")?,
                    created: from_us(r.try_get("created_us")?),
                });
            }
            Ok(out)
        })
    }

    /// The staff id an address belongs to (any of the member's addresses, case-insensitive),
    /// so the worker can sign a reply token for the recipient of an alert.
    pub async fn staff_id_by_email(&self, email: &str) -> Result<Option<i64>> {
        on_pool!(self, |p| {
            let row = sqlx::query("SELECT staff_id FROM staff_emails WHERE email = $1")
                .bind(email.trim().to_lowercase())
                .fetch_optional(p)
                .await?;
            Ok(row.map(|r| r.try_get::<i64, _>("staff_id")).transpose()?)
        })
    }
}

/// The audit subject (`incident:N`, or `outbox:ID` for mail about no incident) and purpose.
fn audit_subject<R: Row>(id: i64, row: &R) -> Result<(String, String)>
where
    for<'a> i64: sqlx::Decode<'a, R::Database> + sqlx::Type<R::Database>,
    for<'a> String: sqlx::Decode<'a, R::Database> + sqlx::Type<R::Database>,
    for<'a> &'a str: sqlx::ColumnIndex<R>,
{
    let incident: Option<i64> = row.try_get("incident_id")?;
    let purpose: String = row.try_get("purpose")?;
    let subject = match incident {
        Some(n) => format!("incident:{n}"),
        None => format!("outbox:{id}"),
    };
    Ok((subject, purpose))
}

fn row_get<R: Row>(row: &R, col: &str) -> Result<i32>
where
    for<'a> i32: sqlx::Decode<'a, R::Database> + sqlx::Type<R::Database>,
    for<'a> &'a str: sqlx::ColumnIndex<R>,
{
    row.try_get(col).map_err(StoreError::from)
}
