//! What the rules with `when.ai_risk` add to an incident after filing, once its AI suggestion
//! is stored or has not come in time: alerts to staff not yet alerted about it, a raised
//! priority, an outcome deadline (or an earlier one). Nothing is ever removed or lowered, and
//! each addition is written once: with the suggestion, in the transaction that completes the
//! job (see `ai_queue`), or with the wait it answers (`ai_queue.waited_us`), in a transaction
//! that moves that mark on only from the value the caller saw.

use super::{ActionRecord, OutboxRecord, Result, Store, StoreError, Tx, from_us, on_pool, on_tx, to_us};
use chrono::{DateTime, Utc};
use sqlx::Row;
use std::collections::HashSet;

/// The audit actor, as for the AI queue's entries.
const ACTOR: &str = "ai";

/// What the rules with `when.ai_risk` asked for about one incident.
#[derive(Debug, Clone, Default)]
pub struct AiRaise {
    /// `file.toml: rule name` of each rule that held.
    pub rules: Vec<String>,
    /// Alerts with `{incident}` placeholders; only those to staff not yet alerted about the
    /// incident are queued.
    pub alerts: Vec<OutboxRecord>,
    pub urgent: bool,
    /// An outcome due then; when the incident already awaits one due later, it is brought
    /// forward (its ladder kept), and an outcome recorded already is left alone.
    pub action: Option<ActionRecord>,
    /// For the audit entry: `risk=high` or `no suggestion after 30m` (never the text).
    pub cause: String,
}

/// What was added.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AiRaised {
    pub alerts: usize,
    pub priority_raised: bool,
    pub deadline_added: bool,
    pub deadline_brought_forward: bool,
}

/// An incident as filing left it, for evaluating the AI rules on it.
#[derive(Debug, Clone)]
pub struct AiIncident {
    pub id: i64,
    /// Its message's record (the raw bytes the rules read again).
    pub message_id: i64,
    pub category: String,
    pub priority: String,
    pub visibility: String,
    pub occurred: DateTime<Utc>,
    pub recorded: DateTime<Utc>,
    pub recorded_by: Option<i64>,
    /// (pupil id, role, how)
    pub pupils: Vec<(i64, String, String)>,
}

/// A job whose incident has no suggestion yet, for the rules' `ai_timeout`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AiWaiting {
    pub incident_id: i64,
    pub queued: DateTime<Utc>,
    /// The longest wait already acted on.
    pub waited: chrono::Duration,
}

impl Store {
    /// The incident as filed; None when there is none (or it has no message).
    pub async fn ai_incident(&self, id: i64) -> Result<Option<AiIncident>> {
        on_pool!(self, |p| {
            let Some(row) = sqlx::query(
                "SELECT message_id, category, priority, visibility, occurred_us, recorded_us, recorded_by FROM incidents WHERE id = $1",
            )
            .bind(id)
            .fetch_optional(p)
            .await?
            else {
                return Ok(None);
            };
            let Some(message_id) = row.try_get::<Option<i64>, _>("message_id")? else { return Ok(None) };
            let pupils = sqlx::query("SELECT pupil_id, role, how FROM incident_pupils WHERE incident_id = $1 ORDER BY pupil_id")
                .bind(id)
                .fetch_all(p)
                .await?
                .into_iter()
                .map(|r| Ok((r.try_get("pupil_id")?, r.try_get("role")?, r.try_get("how")?)))
                .collect::<Result<Vec<_>, sqlx::Error>>()?;
            Ok(Some(AiIncident {
                id,
                message_id,
                category: row.try_get("category")?,
                priority: row.try_get("priority")?,
                visibility: row.try_get("visibility")?,
                occurred: from_us(row.try_get("occurred_us")?),
                recorded: from_us(row.try_get("recorded_us")?),
                recorded_by: row.try_get("recorded_by")?,
                pupils,
            }))
        })
    }

    /// Jobs queued between `since` and `until` whose incident has no suggestion and whose
    /// acted-on wait is shorter than `longest`, oldest first, at most `limit`.
    pub async fn ai_waiting(
        &self,
        since: DateTime<Utc>,
        until: DateTime<Utc>,
        longest: chrono::Duration,
        limit: i64,
    ) -> Result<Vec<AiWaiting>> {
        let longest_us = longest.num_microseconds().unwrap_or(i64::MAX);
        on_pool!(self, |p| {
            let rows = sqlx::query(
                "SELECT q.incident_id, q.queued_us, q.waited_us FROM ai_queue q JOIN incidents i ON i.id = q.incident_id \
                 WHERE i.ai_suggestion IS NULL AND q.queued_us >= $1 AND q.queued_us <= $2 AND q.waited_us < $3 \
                 ORDER BY q.queued_us, q.incident_id LIMIT $4",
            )
            .bind(to_us(since))
            .bind(to_us(until))
            .bind(longest_us)
            .bind(limit)
            .fetch_all(p)
            .await?;
            rows.iter()
                .map(|r| {
                    Ok(AiWaiting {
                        incident_id: r.try_get("incident_id")?,
                        queued: from_us(r.try_get("queued_us")?),
                        waited: chrono::Duration::microseconds(r.try_get("waited_us")?),
                    })
                })
                .collect()
        })
    }

    /// Acts on the wait `to` for `incident` (its rules' `ai_timeout`s up to `to` have passed
    /// with no suggestion): `raise`, if any, and the mark moved from `from` to `to`, with an
    /// audit entry. False, with nothing written, when another pass moved the mark first or a
    /// suggestion came meanwhile.
    pub async fn act_on_ai_wait(
        &self,
        incident: i64,
        from: chrono::Duration,
        to: chrono::Duration,
        raise: Option<&AiRaise>,
        at: DateTime<Utc>,
    ) -> Result<Option<AiRaised>> {
        let us = |d: chrono::Duration| d.num_microseconds().unwrap_or(i64::MAX);
        let mut tx = self.begin().await?;
        let moved = on_tx!(tx, |c| {
            sqlx::query(
                "UPDATE ai_queue SET waited_us = $3 WHERE incident_id = $1 AND waited_us = $2 \
                 AND EXISTS (SELECT 1 FROM incidents i WHERE i.id = $1 AND i.ai_suggestion IS NULL)",
            )
            .bind(incident)
            .bind(us(from))
            .bind(us(to))
            .execute(&mut *c)
            .await?
            .rows_affected()
        });
        if moved != 1 {
            return Ok(None);
        }
        let raised = match raise {
            Some(r) => tx.raise_for_ai(incident, r, at).await?,
            None => AiRaised::default(),
        };
        tx.commit().await?;
        Ok(Some(raised))
    }
}

impl Tx {
    /// Adds what `raise` asks for to `incident` and writes the audit entry (ids, rule labels
    /// and counts only).
    pub async fn raise_for_ai(&mut self, incident: i64, raise: &AiRaise, at: DateTime<Utc>) -> Result<AiRaised> {
        let mut done = AiRaised::default();
        let number = incident.to_string();
        let alerted: HashSet<String> = on_tx!(self, |c| {
            sqlx::query("SELECT recipient FROM outbox WHERE incident_id = $1 AND purpose = 'alert'")
                .bind(incident)
                .fetch_all(&mut *c)
                .await?
                .iter()
                .map(|r| r.try_get::<String, _>("recipient").map(|s| s.to_lowercase()))
                .collect::<Result<_, sqlx::Error>>()?
        });
        for a in raise.alerts.iter().filter(|a| !alerted.contains(&a.recipient.to_lowercase())) {
            let added = on_tx!(self, |c| {
                sqlx::query(sqlx::AssertSqlSafe(format!(
                    "INSERT INTO outbox (incident_id, purpose, recipient, email_message_id, subject, body, created_us, state, \
                         attempts, next_attempt_us, lane) VALUES ($1, $2, $3, $4, $5, $6, $7, 'pending', 0, $7, {}) \
                         ON CONFLICT (email_message_id) DO NOTHING",
                    super::outbox::LANE_SQL
                )))
                .bind(incident)
                .bind(a.purpose)
                .bind(a.recipient.clone())
                .bind(a.email_message_id.replace("{incident}", &number))
                .bind(a.subject.replace("{incident}", &number))
                .bind(a.body.replace("{incident}", &number))
                .bind(to_us(at))
                .execute(&mut *c)
                .await?
                .rows_affected()
            });
            done.alerts += added as usize;
        }
        if raise.urgent {
            done.priority_raised = on_tx!(self, |c| {
                sqlx::query("UPDATE incidents SET priority = 'urgent' WHERE id = $1 AND priority <> 'urgent'")
                    .bind(incident)
                    .execute(&mut *c)
                    .await?
                    .rows_affected()
            }) == 1;
            // Now urgent: what is still waiting to tell someone about it goes first.
            on_tx!(self, |c| {
                sqlx::query("UPDATE outbox SET lane = 0 WHERE incident_id = $1 AND state = 'pending' AND purpose IN ('alert', 'reminder')")
                    .bind(incident)
                    .execute(&mut *c)
                    .await?;
            });
        }
        if let Some(action) = &raise.action {
            let existing = on_tx!(self, |c| {
                sqlx::query("SELECT id, due_us, outcome FROM actions WHERE incident_id = $1 ORDER BY id LIMIT 1")
                    .bind(incident)
                    .fetch_optional(&mut *c)
                    .await?
                    .map(|r| {
                        Ok::<_, sqlx::Error>((
                            r.try_get::<i64, _>("id")?,
                            r.try_get::<i64, _>("due_us")?,
                            r.try_get::<Option<String>, _>("outcome")?,
                        ))
                    })
                    .transpose()?
            });
            match existing {
                None => {
                    self.add_action(incident, action, at).await?;
                    done.deadline_added = true;
                }
                Some((id, due, None)) if due > to_us(action.due) => {
                    on_tx!(self, |c| {
                        sqlx::query("UPDATE actions SET due_us = $2 WHERE id = $1")
                            .bind(id)
                            .bind(to_us(action.due))
                            .execute(&mut *c)
                            .await?;
                    });
                    done.deadline_brought_forward = true;
                }
                Some(_) => {}
            }
        }
        let mut detail = format!("{}; rules={}; alerts={}", raise.cause, raise.rules.join(", "), done.alerts);
        if done.priority_raised {
            detail.push_str("; priority=urgent");
        }
        if done.deadline_added {
            detail.push_str("; outcome deadline added");
        } else if done.deadline_brought_forward {
            detail.push_str("; outcome deadline brought forward");
        }
        self.append_audit(at, ACTOR, "ai_rules", &format!("incident:{incident}"), &detail).await?;
        Ok(done)
    }

    async fn add_action(&mut self, incident: i64, action: &ActionRecord, at: DateTime<Utc>) -> Result<()> {
        let id: i64 = on_tx!(self, |c| {
            sqlx::query("INSERT INTO actions (incident_id, owner, created_us, due_us) VALUES ($1, $2, $3, $4) RETURNING id")
                .bind(incident)
                .bind(action.owner)
                .bind(to_us(at))
                .bind(to_us(action.due))
                .fetch_one(&mut *c)
                .await?
                .try_get("id")?
        });
        for (i, r) in action.rungs.iter().enumerate() {
            let recipients = serde_json::to_string(&r.recipients).map_err(|e| StoreError::Invalid(e.to_string()))?;
            on_tx!(self, |c| {
                sqlx::query("INSERT INTO action_rungs (action_id, rung, due_us, recipients) VALUES ($1, $2, $3, $4)")
                    .bind(id)
                    .bind(i as i32)
                    .bind(to_us(r.due))
                    .bind(recipients.clone())
                    .execute(&mut *c)
                    .await?;
            });
        }
        Ok(())
    }
}
