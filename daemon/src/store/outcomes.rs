//! Recording an outcome on an incident: closes its open action, so no further rung of the
//! escalation ladder fires; an incident no rule asked an outcome for gets one all the same.
//! Shared by `haven outcome` and email replies, with the one rule for who may record it
//! ([`Store::may_record_outcome`]).

use super::{IncidentFacts, Result, Store, Tx, on_pool, on_tx, to_us};
use crate::directory::{Directory, Staff};
use chrono::{DateTime, Utc};
use sqlx::Row;

/// What recording an outcome did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutcomeRecorded {
    /// The incident's open action is now closed with this outcome.
    Closed { action: i64 },
    /// No rule asked for an outcome: it is recorded on a new, closed action.
    Added { action: i64 },
    /// The incident's outcome was already recorded: nothing is changed.
    NoOpenAction,
}

impl Tx {
    /// Records `text` as the outcome of `incident` by staff member `by`, closing its oldest open
    /// action, with an audit entry. `Outcome: NFA` is an outcome like any other.
    pub async fn record_outcome(&mut self, incident: i64, by: i64, text: &str, at: DateTime<Utc>) -> Result<OutcomeRecorded> {
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
            None => {
                // None required: the outcome is kept on an action made for it, closed at once.
                let added: Option<i64> = on_tx!(self, |c| {
                    sqlx::query(
                        "INSERT INTO actions (incident_id, owner, created_us, due_us, outcome, outcome_by, outcome_us) \
                         SELECT $1, NULL, $3, $3, $4, $2, $3 \
                         WHERE NOT EXISTS (SELECT 1 FROM actions WHERE incident_id = $1) RETURNING id",
                    )
                    .bind(incident)
                    .bind(by)
                    .bind(to_us(at))
                    .bind(text)
                    .fetch_optional(&mut *c)
                    .await?
                    .map(|r| r.try_get::<i64, _>("id"))
                    .transpose()?
                });
                match added {
                    Some(action) => OutcomeRecorded::Added { action },
                    None => OutcomeRecorded::NoOpenAction,
                }
            }
        };
        let detail = match result {
            OutcomeRecorded::Closed { action } => format!("action={action} closed"),
            OutcomeRecorded::Added { action } => format!("action={action} added, none was required"),
            OutcomeRecorded::NoOpenAction => "already recorded; nothing changed".to_string(),
        };
        self.append_incident_audit(at, &format!("staff:{by}"), "outcome", incident, &detail).await?;
        Ok(result)
    }
}

impl Tx {
    /// Keeps the code read from an outcome's text ([`crate::outcome_code`]) on the action that
    /// holds it; none when the text starts with no code.
    pub async fn set_outcome_code(&mut self, action: i64, code: Option<crate::outcome_code::OutcomeCode>) -> Result<()> {
        let code = code.map(|c| c.as_str());
        on_tx!(self, |c| {
            sqlx::query("UPDATE actions SET outcome_code = $1 WHERE id = $2").bind(code).bind(action).execute(&mut *c).await?;
        });
        Ok(())
    }

    /// [`Tx::record_outcome`], then [`Tx::set_outcome_code`] on the action it closed or added.
    pub async fn record_coded_outcome(
        &mut self,
        incident: i64,
        by: i64,
        sealed_text: &str,
        code: Option<crate::outcome_code::OutcomeCode>,
        at: DateTime<Utc>,
    ) -> Result<OutcomeRecorded> {
        let recorded = self.record_outcome(incident, by, sealed_text, at).await?;
        if let OutcomeRecorded::Closed { action } | OutcomeRecorded::Added { action } = recorded {
            self.set_outcome_code(action, code).await?;
        }
        Ok(recorded)
    }
}

impl Store {
    /// THE rule for who may record an incident's outcome, by command or by reply: a member of
    /// the DSL team, or someone it was alerted to (alert, reminder, owner) who may see it.
    pub async fn may_record_outcome(&self, facts: &IncidentFacts, staff: &Staff, dir: &Directory) -> Result<bool> {
        if !staff.active {
            return Ok(false);
        }
        if staff.is_dsl_team() {
            return Ok(true);
        }
        Ok(crate::visibility::may_see_incident(&facts.visibility, staff, dir, &facts.pupils)
            && self.was_alerted(facts.id, staff.id, &staff.emails).await?)
    }

    /// Whether `incident` can still be given an outcome: an action waits for one, or none was
    /// ever required. False once it is recorded.
    pub async fn outcome_open(&self, incident: i64) -> Result<bool> {
        on_pool!(self, |p| {
            let row = sqlx::query(OUTCOME_OPEN).bind(incident).fetch_one(p).await?;
            let total: i64 = row.try_get("total")?;
            let open: i64 = row.try_get("open")?;
            Ok(total == 0 || open > 0)
        })
    }

    /// Whether staff member `staff_id` (who answers to `emails`) was told about `incident`: sent
    /// its alert or a reminder, or made the owner of its outcome.
    pub async fn was_alerted(&self, incident: i64, staff_id: i64, emails: &[String]) -> Result<bool> {
        on_pool!(self, |p| {
            let owner = sqlx::query(OWNS_ACTION).bind(incident).bind(staff_id).fetch_optional(p).await?.is_some();
            if owner {
                return Ok(true);
            }
            let recipients = sqlx::query(ALERTED_TO).bind(incident).fetch_all(p).await?;
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

/// An incident's actions, open and all, from the actions-by-incident index.
pub(super) const OUTCOME_OPEN: &str = "SELECT COUNT(*) AS total, COALESCE(SUM(CASE WHEN outcome IS NULL THEN 1 ELSE 0 END), 0) AS open \
     FROM actions WHERE incident_id = $1";
pub(super) const OWNS_ACTION: &str = "SELECT 1 AS one FROM actions WHERE incident_id = $1 AND owner = $2 LIMIT 1";
/// Who was sent an incident's alerts and reminders, from the outbox-by-incident index.
pub(super) const ALERTED_TO: &str = "SELECT recipient FROM outbox WHERE incident_id = $1 AND purpose IN ('alert', 'reminder')";
