//! The AI queue's side of the store: the incidents a model is to read (queued by filing, in
//! the transaction that files them), claimed by a worker under a lease, and completed once.
//!
//! A claim is a lease, as the outbox's is: the job's `next_attempt_us` moves to the end of the
//! lease and `claim` names the worker, and `FOR UPDATE SKIP LOCKED` keeps two daemons on one
//! PostgreSQL database from claiming the same job. Only the claim's holder can complete it, and
//! a job is completed once: the suggestion is written only onto an incident without one, in the
//! transaction that marks the job done. A worker that dies leaves its job to be claimed again
//! when the lease ends; one that stops cleanly gives its job back at once.

use super::{Result, Store, Tx, from_us, on_pool, on_tx, to_us};
use chrono::{DateTime, Utc};
use sqlx::Row;

/// The audit actor for the AI worker's entries.
const ACTOR: &str = "ai";

/// Sealed field of `incidents.ai_suggestion`.
pub const SUGGESTION_FIELD: &str = "incident.ai_suggestion";

/// A job claimed for reading: the incident's sealed text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AiJob {
    pub incident_id: i64,
    /// Failed attempts so far.
    pub attempts: i32,
    pub subject: Option<String>,
    pub note: Option<String>,
    pub body_text: String,
}

/// How a job ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AiOutcome {
    /// A suggestion was stored.
    Suggested,
    /// The model answered, but nothing usable.
    NoSuggestion,
    /// Every attempt failed.
    GaveUp,
}

impl AiOutcome {
    pub fn as_str(self) -> &'static str {
        match self {
            AiOutcome::Suggested => "suggested",
            AiOutcome::NoSuggestion => "no_suggestion",
            AiOutcome::GaveUp => "gave_up",
        }
    }
}

/// A job as `haven status` and the tests see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AiJobState {
    pub incident_id: i64,
    pub state: String,
    pub attempts: i32,
    pub outcome: Option<String>,
    pub done_at: Option<DateTime<Utc>>,
}

impl Tx {
    /// Queues `incidents` for the model to read (filing's transaction).
    pub async fn queue_ai(&mut self, incidents: &[i64], at: DateTime<Utc>) -> Result<()> {
        if incidents.is_empty() {
            return Ok(());
        }
        on_tx!(self, |c| {
            super::insert_values!(
                c,
                super::ROWS_PER_STATEMENT,
                "INSERT INTO ai_queue (incident_id, state, queued_us, attempts, next_attempt_us) ",
                incidents,
                "",
                |b, id| {
                    b.push_bind(*id).push_bind("pending").push_bind(to_us(at)).push_bind(0i32).push_bind(to_us(at));
                }
            );
        });
        Ok(())
    }
}

impl Store {
    /// Claims the oldest due job for `claim` until `until`, with its incident's sealed text.
    pub async fn claim_ai_job(&self, now: DateTime<Utc>, until: DateTime<Utc>, claim: &str) -> Result<Option<AiJob>> {
        let lock = match self {
            Store::Sqlite(_) => "",
            Store::Postgres(_) => " FOR UPDATE SKIP LOCKED",
        };
        let sql = format!(
            "UPDATE ai_queue SET next_attempt_us = $2, claim = $3 WHERE incident_id IN (\
             SELECT incident_id FROM ai_queue WHERE state = 'pending' AND next_attempt_us <= $1 \
             ORDER BY next_attempt_us, incident_id LIMIT 1{lock}) \
             RETURNING incident_id, attempts"
        );
        on_pool!(self, |p| {
            let Some(row) = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(to_us(now)).bind(to_us(until)).bind(claim).fetch_optional(p).await?
            else {
                return Ok(None);
            };
            let incident_id: i64 = row.try_get("incident_id")?;
            let text =
                sqlx::query("SELECT original_subject, note, body_text FROM incidents WHERE id = $1").bind(incident_id).fetch_one(p).await?;
            Ok(Some(AiJob {
                incident_id,
                attempts: row.try_get("attempts")?,
                subject: text.try_get("original_subject")?,
                note: text.try_get("note")?,
                body_text: text.try_get("body_text")?,
            }))
        })
    }

    /// Completes the job `claim` holds: the sealed suggestion (if any) onto the incident, the
    /// job done, an audit entry naming only ids and the model, and what the rules with
    /// `when.ai_risk` add (`raise`, see `ai_rules`). False when the claim was lost (another
    /// worker took the job over) or the job was done already: nothing is written, so nothing
    /// is added twice.
    #[allow(clippy::too_many_arguments)]
    pub async fn complete_ai_job(
        &self,
        incident_id: i64,
        claim: &str,
        outcome: AiOutcome,
        sealed_suggestion: Option<&str>,
        model: &str,
        raise: Option<&super::AiRaise>,
        at: DateTime<Utc>,
    ) -> Result<Option<super::AiRaised>> {
        let mut tx = self.begin().await?;
        let done = on_tx!(tx, |c| {
            sqlx::query(
                "UPDATE ai_queue SET state = 'done', outcome = $3, done_us = $4, claim = NULL \
                 WHERE incident_id = $1 AND claim = $2 AND state = 'pending'",
            )
            .bind(incident_id)
            .bind(claim)
            .bind(outcome.as_str())
            .bind(to_us(at))
            .execute(&mut *c)
            .await?
            .rows_affected()
        });
        if done != 1 {
            return Ok(None);
        }
        if let Some(sealed) = sealed_suggestion {
            on_tx!(tx, |c| {
                sqlx::query("UPDATE incidents SET ai_suggestion = $2 WHERE id = $1 AND ai_suggestion IS NULL")
                    .bind(incident_id)
                    .bind(sealed)
                    .execute(&mut *c)
                    .await?;
            });
        }
        tx.append_audit(at, ACTOR, &format!("ai_{}", outcome.as_str()), &format!("incident:{incident_id}"), &format!("model={model}"))
            .await?;
        let raised = match raise {
            Some(r) => tx.raise_for_ai(incident_id, r, at).await?,
            None => super::AiRaised::default(),
        };
        tx.commit().await?;
        Ok(Some(raised))
    }

    /// Counts a failed attempt of the job `claim` holds and gives it back until `next`.
    pub async fn retry_ai_job(&self, incident_id: i64, claim: &str, next: DateTime<Utc>) -> Result<()> {
        on_pool!(self, |p| {
            sqlx::query(
                "UPDATE ai_queue SET attempts = attempts + 1, next_attempt_us = $3, claim = NULL \
                 WHERE incident_id = $1 AND claim = $2 AND state = 'pending'",
            )
            .bind(incident_id)
            .bind(claim)
            .bind(to_us(next))
            .execute(p)
            .await?;
        });
        Ok(())
    }

    /// Gives the job `claim` holds back without counting an attempt (the daemon is stopping).
    pub async fn release_ai_job(&self, incident_id: i64, claim: &str, now: DateTime<Utc>) -> Result<()> {
        on_pool!(self, |p| {
            sqlx::query(
                "UPDATE ai_queue SET next_attempt_us = $3, claim = NULL WHERE incident_id = $1 AND claim = $2 AND state = 'pending'",
            )
            .bind(incident_id)
            .bind(claim)
            .bind(to_us(now))
            .execute(p)
            .await?;
        });
        Ok(())
    }

    /// Every job, oldest first.
    pub async fn ai_jobs(&self) -> Result<Vec<AiJobState>> {
        on_pool!(self, |p| {
            let rows = sqlx::query("SELECT incident_id, state, attempts, outcome, done_us FROM ai_queue ORDER BY incident_id")
                .fetch_all(p)
                .await?;
            rows.iter()
                .map(|r| {
                    Ok(AiJobState {
                        incident_id: r.try_get("incident_id")?,
                        state: r.try_get("state")?,
                        attempts: r.try_get("attempts")?,
                        outcome: r.try_get("outcome")?,
                        done_at: r.try_get::<Option<i64>, _>("done_us")?.map(from_us),
                    })
                })
                .collect()
        })
    }
}
