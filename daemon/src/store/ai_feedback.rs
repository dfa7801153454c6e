//! What the DSL team said of AI suggestions ("AI: right" / "AI: wrong" replies to an alert, or
//! the console's buttons), kept one verdict per incident and member of staff, and read back for
//! `haven ai report` and the incident page.

use super::{Result, Store, Tx, on_pool, on_tx, to_us};
use chrono::{DateTime, Utc};
use sqlx::Row;

/// A verdict on an incident's suggestion, with the sealed suggestion it was given on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AiVerdict {
    pub incident_id: i64,
    pub right: bool,
    /// `incidents.ai_suggestion`, sealed.
    pub sealed_suggestion: String,
}

impl Tx {
    /// Records `staff`'s verdict on `incident`'s suggestion (replacing their earlier one), with an
    /// audit entry. False, with nothing written, when the incident has no suggestion.
    pub async fn record_ai_feedback(&mut self, incident: i64, staff: i64, actor: &str, right: bool, at: DateTime<Utc>) -> Result<bool> {
        let verdict = if right { "right" } else { "wrong" };
        let suggested = on_tx!(self, |c| {
            sqlx::query("SELECT 1 AS one FROM incidents WHERE id = $1 AND ai_suggestion IS NOT NULL")
                .bind(incident)
                .fetch_optional(&mut *c)
                .await?
                .is_some()
        });
        if !suggested {
            return Ok(false);
        }
        on_tx!(self, |c| {
            sqlx::query(
                "INSERT INTO ai_feedback (incident_id, staff_id, verdict, at_us) VALUES ($1, $2, $3, $4) \
                 ON CONFLICT (incident_id, staff_id) DO UPDATE SET verdict = excluded.verdict, at_us = excluded.at_us",
            )
            .bind(incident)
            .bind(staff)
            .bind(verdict)
            .bind(to_us(at))
            .execute(&mut *c)
            .await?;
        });
        self.append_audit(at, actor, "ai_feedback", &format!("incident:{incident}"), &format!("verdict={verdict}")).await?;
        Ok(true)
    }
}

impl Store {
    /// Every verdict, with its suggestion; incidents with several verdicts count once each way
    /// their verdicts go (the latest of each member of staff).
    pub async fn ai_verdicts(&self) -> Result<Vec<AiVerdict>> {
        on_pool!(self, |p| {
            let rows = sqlx::query(
                "SELECT f.incident_id, f.verdict, i.ai_suggestion FROM ai_feedback f JOIN incidents i ON i.id = f.incident_id \
                 WHERE i.ai_suggestion IS NOT NULL ORDER BY f.incident_id, f.staff_id",
            )
            .fetch_all(p)
            .await?;
            rows.iter()
                .map(|r| {
                    Ok(AiVerdict {
                        incident_id: r.try_get("incident_id")?,
                        right: r.try_get::<String, _>("verdict")? == "right",
                        sealed_suggestion: r.try_get("ai_suggestion")?,
                    })
                })
                .collect()
        })
    }

    /// `staff`'s verdict on `incident`'s suggestion: true for right; none when not given.
    pub async fn ai_verdict_of(&self, incident: i64, staff: i64) -> Result<Option<bool>> {
        on_pool!(self, |p| {
            let verdict: Option<String> = sqlx::query_scalar("SELECT verdict FROM ai_feedback WHERE incident_id = $1 AND staff_id = $2")
                .bind(incident)
                .bind(staff)
                .fetch_optional(p)
                .await?;
            Ok(verdict.map(|v| v == "right"))
        })
    }

    /// The sealed suggestions stored, oldest incident first.
    pub async fn ai_suggestions(&self) -> Result<Vec<(i64, String)>> {
        on_pool!(self, |p| {
            let rows =
                sqlx::query("SELECT id, ai_suggestion FROM incidents WHERE ai_suggestion IS NOT NULL ORDER BY id").fetch_all(p).await?;
            rows.iter().map(|r| Ok((r.try_get("id")?, r.try_get("ai_suggestion")?))).collect()
        })
    }
}

impl Store {
    /// The sealed suggestions of incidents recorded live in `(after, until]`, as a digest
    /// lists them.
    pub async fn ai_suggestions_recorded_between(&self, after: DateTime<Utc>, until: DateTime<Utc>) -> Result<Vec<(i64, String)>> {
        on_pool!(self, |p| {
            let rows = sqlx::query(
                "SELECT id, ai_suggestion FROM incidents WHERE recorded_us > $1 AND recorded_us <= $2 AND NOT backfilled \
                 AND ai_suggestion IS NOT NULL ORDER BY id",
            )
            .bind(to_us(after))
            .bind(to_us(until))
            .fetch_all(p)
            .await?;
            rows.iter().map(|r| Ok((r.try_get("id")?, r.try_get("ai_suggestion")?))).collect()
        })
    }
}
