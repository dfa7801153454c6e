//! What the school keeps of a pupil's records once the destination's receipt has come back
//! (`[transfer] retain_after` and `retain_for`, recorded on the case when it was sent; migration
//! 0037). Applied in the transaction that closes the case on its receipt, so a receipt either
//! closes the case and applies it, or does neither:
//!
//! - `full`: everything stays; only the review date is set.
//! - `chronology`: the pupil's own entries (those about no other pupil; the transfer mark stays
//!   whole) keep their dates, kind, category, priority, visibility, who recorded them, their
//!   outcomes and corrections; their body (text and HTML, replaced by a sealed line saying why
//!   it went), subject line, sender, notes, category note, AI suggestion, attachments and the
//!   original messages' sealed copies (and every blob nobody else uses) are deleted. Entries
//!   shared with another pupil stay whole: they are that pupil's record too.
//! - `none`: nothing is deleted here: the records fall due for review on the day of the
//!   receipt, so the two-person disposal (`haven dispose`) can take them, certified as always.
//!
//! A standing hold on the pupil or one of their incidents stops `chronology` (everything stays
//! and the audit entry says why), as it stops any disposal.

use super::{Result, Store, Tx, on_pool, on_tx};
use crate::transfer::{RetainAfter, RetainFor};
use chrono::{DateTime, NaiveDate, Utc};
use sqlx::Row;

/// What a receipt left kept on a closed case, for the retention schedule.
#[derive(Debug, Clone)]
pub struct KeptAfterTransfer {
    pub pupil_id: i64,
    pub case_id: i64,
    pub retain_after: RetainAfter,
    pub retain_for: RetainFor,
    /// The review date; None: the pupil's 25th birthday.
    pub until: Option<NaiveDate>,
    pub received_at: DateTime<Utc>,
}

/// What `chronology` removed, as counted for the audit entry.
#[derive(Debug, Default)]
struct Stripped {
    incidents: u64,
    attachments: u64,
    messages: u64,
    blobs: u64,
}

fn day(v: Option<String>) -> Option<NaiveDate> {
    v.and_then(|s| NaiveDate::parse_from_str(&s, "%Y-%m-%d").ok())
}

const OWN_ENTRIES: &str = "SELECT i.id, i.message_id FROM incidents i JOIN incident_pupils ip ON ip.incident_id = i.id \
     WHERE ip.pupil_id = $1 AND i.record_kind <> 'transfer' \
     AND NOT EXISTS (SELECT 1 FROM incident_pupils o WHERE o.incident_id = i.id AND o.pupil_id <> $1) ORDER BY i.id";

const STANDING_HOLDS: &str = "SELECT COUNT(*) FROM holds WHERE released_us IS NULL AND (pupil_id = $1 \
     OR incident_id IN (SELECT incident_id FROM incident_pupils WHERE pupil_id = $1))";

impl Store {
    /// Every closed case whose receipt set what is kept, newest receipt last.
    pub async fn kept_after_transfer(&self) -> Result<Vec<KeptAfterTransfer>> {
        const SQL: &str = "SELECT id, pupil_id, retain_after, retain_for, retain_until, received_us FROM transfer_cases \
             WHERE state = 'closed' AND retain_after IS NOT NULL AND received_us IS NOT NULL ORDER BY received_us, id";
        on_pool!(self, |p| {
            let rows = sqlx::query(SQL).fetch_all(p).await?;
            rows.iter()
                .map(|r| {
                    Ok(KeptAfterTransfer {
                        pupil_id: r.try_get("pupil_id")?,
                        case_id: r.try_get("id")?,
                        retain_after: RetainAfter::parse(&r.try_get::<String, _>("retain_after")?).unwrap_or_default(),
                        retain_for: r.try_get::<Option<String>, _>("retain_for")?.as_deref().and_then(RetainFor::parse).unwrap_or_default(),
                        until: day(r.try_get("retain_until")?),
                        received_at: super::from_us(r.try_get("received_us")?),
                    })
                })
                .collect()
        })
    }
}

impl Tx {
    /// Applies what the school keeps after `case`'s receipt, received on `received_on`;
    /// `sealed_removed` replaces each stripped body. Audited as `transfer_retain` (counts, no
    /// content).
    pub(super) async fn keep_after_receipt(
        &mut self,
        case: i64,
        sealed_removed: &str,
        actor: &str,
        at: DateTime<Utc>,
        received_on: NaiveDate,
    ) -> Result<()> {
        let (pupil, after, retain_for, holds) = on_tx!(self, |c| {
            let row = sqlx::query("SELECT pupil_id, retain_after, retain_for FROM transfer_cases WHERE id = $1")
                .bind(case)
                .fetch_one(&mut *c)
                .await?;
            let pupil: i64 = row.try_get("pupil_id")?;
            let after = row.try_get::<Option<String>, _>("retain_after")?.as_deref().and_then(RetainAfter::parse).unwrap_or_default();
            let retain_for = row.try_get::<Option<String>, _>("retain_for")?.as_deref().and_then(RetainFor::parse).unwrap_or_default();
            let holds: i64 = sqlx::query_scalar(STANDING_HOLDS).bind(pupil).fetch_one(&mut *c).await?;
            (pupil, after, retain_for, holds)
        });
        let until = retain_for.until(after, received_on);
        on_tx!(self, |c| {
            sqlx::query("UPDATE transfer_cases SET retain_after = $1, retain_for = $2, retain_until = $3 WHERE id = $4")
                .bind(after.as_str())
                .bind(retain_for.as_str())
                .bind(until.map(|d| d.format("%Y-%m-%d").to_string()))
                .bind(case)
                .execute(&mut *c)
                .await?;
        });
        let review = until.map_or_else(|| "dob+25y".to_string(), |d| d.to_string());
        let mut detail = format!("case={case} retain_after={} review_on={review}", after.as_str());
        match after {
            RetainAfter::Chronology if holds > 0 => {
                detail.push_str(&format!(" holds={holds}: nothing removed while a hold stands"));
            }
            RetainAfter::Chronology => {
                let s = self.strip_to_chronology(pupil, sealed_removed).await?;
                detail.push_str(&format!(
                    " bodies_removed={} attachments={} messages={} blobs={}",
                    s.incidents, s.attachments, s.messages, s.blobs
                ));
            }
            RetainAfter::None if holds > 0 => {
                detail.push_str(&format!(" holds={holds}: due for disposal, which no hold allows while it stands"));
            }
            RetainAfter::None => detail.push_str(": due for disposal"),
            RetainAfter::Full => {}
        }
        self.append_audit(at, actor, "transfer_retain", &format!("pupil:{pupil}"), &detail).await
    }

    async fn strip_to_chronology(&mut self, pupil: i64, sealed_removed: &str) -> Result<Stripped> {
        let mut s = Stripped::default();
        on_tx!(self, |c| {
            let rows = sqlx::query(OWN_ENTRIES).bind(pupil).fetch_all(&mut *c).await?;
            let mut own: Vec<(i64, Option<i64>)> = Vec::with_capacity(rows.len());
            for r in &rows {
                own.push((r.try_get("id")?, r.try_get("message_id")?));
            }
            let ids: Vec<i64> = own.iter().map(|(id, _)| *id).collect();
            let mut blobs: Vec<String> = Vec::new();
            for (id, _) in &own {
                s.incidents += sqlx::query(
                    "UPDATE incidents SET body_text = $1, body_html = NULL, note = NULL, original_subject = NULL, \
                     original_from = NULL, original_name = NULL, category_note = NULL, ai_suggestion = NULL WHERE id = $2",
                )
                .bind(sealed_removed)
                .bind(id)
                .execute(&mut *c)
                .await?
                .rows_affected();
                let shas: Vec<String> =
                    sqlx::query_scalar("SELECT sha256 FROM attachments WHERE incident_id = $1").bind(id).fetch_all(&mut *c).await?;
                blobs.extend(shas);
                s.attachments +=
                    sqlx::query("DELETE FROM attachments WHERE incident_id = $1").bind(id).execute(&mut *c).await?.rows_affected();
            }
            let mut messages: Vec<i64> = own.iter().filter_map(|(_, m)| *m).collect();
            messages.sort_unstable();
            messages.dedup();
            for m in messages {
                // The original message, and its duplicates, unless another entry was filed from it.
                let users: Vec<i64> =
                    sqlx::query_scalar("SELECT id FROM incidents WHERE message_id = $1").bind(m).fetch_all(&mut *c).await?;
                if users.iter().any(|u| !ids.contains(u)) {
                    continue;
                }
                let shas: Vec<Option<String>> =
                    sqlx::query_scalar("SELECT sha256 FROM messages WHERE (id = $1 OR duplicate_of = $1) AND sha256 IS NOT NULL")
                        .bind(m)
                        .fetch_all(&mut *c)
                        .await?;
                blobs.extend(shas.into_iter().flatten());
                s.messages += sqlx::query("UPDATE messages SET sha256 = NULL WHERE (id = $1 OR duplicate_of = $1) AND sha256 IS NOT NULL")
                    .bind(m)
                    .execute(&mut *c)
                    .await?
                    .rows_affected();
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
                    s.blobs += sqlx::query("DELETE FROM blobs WHERE sha256 = $1").bind(sha).execute(&mut *c).await?.rows_affected();
                }
            }
            Ok::<(), super::StoreError>(())
        })?;
        Ok(s)
    }
}
