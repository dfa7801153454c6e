//! Recording an outcome on an incident: closes its open action, so no further rung of the
//! escalation ladder fires. Shared by `haven outcome` and email replies.

use super::{Result, Store, Tx, on_pool, on_tx, to_us};
use chrono::{DateTime, Utc};
use sqlx::Row;

/// What recording an outcome did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutcomeRecorded {
    /// The incident's open action is now closed with this outcome.
    Closed { action: i64 },
    /// The incident had no open action (none required, or already closed): the outcome is
    /// kept in the audit trail only.
    NoOpenAction,
}

impl Tx {
    /// Records `text` as the outcome of `incident` by staff member `by`, closing its oldest open
    /// action, with an audit entry. `Outcome: NFA` is an outcome like any other.
    pub async fn record_outcome(
        &mut self,
        incident: i64,
        by: i64,
        text: &str,
        at: DateTime<Utc>,
    ) -> Result<OutcomeRecorded> {
        let closed: Option<i64> = on_tx!(self, |c| {
            sqlx::query(
                "UPDATE actions SET outcome = $1, outcome_by = $2, outcome_us = $3 \
                 WHERE id = (SELECT id FROM actions WHERE incident_id = $4 AND outcome IS NULL ORDER BY id LIMIT 1) \
                 AND outcome IS NULL RETURNING id",
            )
            .bind(text)
            .bind(by)
            .bind(to_us(at))
            .bind(incident)
            .fetch_optional(&mut *c)
            .await?
            .map(|r| r.try_get::<i64, _>("id"))
            .transpose()?
        });
        let result = match closed {
            Some(action) => OutcomeRecorded::Closed { action },
            None => OutcomeRecorded::NoOpenAction,
        };
        let detail = match result {
            OutcomeRecorded::Closed { action } => format!("action={action} closed"),
            OutcomeRecorded::NoOpenAction => "no open action".to_string(),
        };
        self.append_incident_audit(at, &format!("staff:{by}"), "outcome", incident, &detail).await?;
        Ok(result)
    }
}

impl Store {
    /// Whether staff member `staff_id` (who answers to `emails`) was told about `incident`: sent
    /// its alert or a reminder, or made the owner of its outcome.
    pub async fn was_alerted(&self, incident: i64, staff_id: i64, emails: &[String]) -> Result<bool> {
        on_pool!(self, |p| {
            let owner = sqlx::query("SELECT 1 AS one FROM actions WHERE incident_id = $1 AND owner = $2 LIMIT 1")
                .bind(incident)
                .bind(staff_id)
                .fetch_optional(p)
                .await?
                .is_some();
            if owner {
                return Ok(true);
            }
            let recipients = sqlx::query("SELECT recipient FROM outbox WHERE incident_id = $1 AND purpose IN ('alert', 'reminder')")
                .bind(incident)
                .fetch_all(p)
                .await?;
            for r in recipients {
                let to: String = r.try_get("recipient")?;
                if emails.iter().any(|e| e.eq_ignore_ascii_case(to.trim())) {
                    return Ok(true);
                }
            }
            Ok(false)
        })
    }
}
