//! What the console reads beyond the chronology: the audit entries that say who viewed or
//! downloaded what (for the access log and "who has viewed this entry"), who an incident's
//! emails went to, and an incident's sanitised HTML. Reads only; nothing here decides who may
//! see it (the console checks `visibility` first).

use super::{AuditEntry, Result, Store, from_us, on_pool};
use chrono::{DateTime, Utc};
use sqlx::Row;

/// One email queued about an incident (an alert, a reminder, an escalation).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SentAbout {
    pub purpose: String,
    pub recipient: String,
    pub state: String,
    pub created: DateTime<Utc>,
}

/// `$first, $first+1, …` for `n` values.
fn placeholders(first: usize, n: usize) -> String {
    (first..first + n).map(|i| format!("${i}")).collect::<Vec<_>>().join(", ")
}

impl Store {
    /// Audit entries with one of `actions` whose subject is one of `subjects` (or, when
    /// `by_actor`, whose actor is one of them), newest first, at most `limit`.
    pub async fn console_audit_matching(&self, actions: &[&str], keys: &[String], by_actor: bool, limit: i64) -> Result<Vec<AuditEntry>> {
        if keys.is_empty() || actions.is_empty() {
            return Ok(Vec::new());
        }
        let column = if by_actor { "actor" } else { "subject" };
        let sql = format!(
            "SELECT id, at_us, actor, os_user, action, subject, detail FROM audit_log \
             WHERE action IN ({}) AND {column} IN ({}) ORDER BY id DESC LIMIT ${}",
            placeholders(1, actions.len()),
            placeholders(1 + actions.len(), keys.len()),
            1 + actions.len() + keys.len()
        );
        on_pool!(self, |p| {
            let mut q = sqlx::query(sqlx::AssertSqlSafe(sql.clone()));
            for a in actions {
                q = q.bind(*a);
            }
            for k in keys {
                q = q.bind(k.clone());
            }
            let rows = q.bind(limit).fetch_all(p).await?;
            let mut out = Vec::with_capacity(rows.len());
            for r in rows {
                out.push(AuditEntry {
                    id: r.try_get("id")?,
                    at: from_us(r.try_get("at_us")?),
                    actor: r.try_get("actor")?,
                    os_user: r.try_get("os_user")?,
                    action: r.try_get("action")?,
                    subject: r.try_get("subject")?,
                    detail: r.try_get("detail")?,
                });
            }
            Ok(out)
        })
    }

    /// The emails queued about `incident`, oldest first.
    pub async fn console_sent_about(&self, incident: i64) -> Result<Vec<SentAbout>> {
        on_pool!(self, |p| {
            let rows = sqlx::query("SELECT purpose, recipient, state, created_us FROM outbox WHERE incident_id = $1 ORDER BY id")
                .bind(incident)
                .fetch_all(p)
                .await?;
            let mut out = Vec::with_capacity(rows.len());
            for r in rows {
                out.push(SentAbout {
                    purpose: r.try_get("purpose")?,
                    recipient: r.try_get("recipient")?,
                    state: r.try_get("state")?,
                    created: from_us(r.try_get("created_us")?),
                });
            }
            Ok(out)
        })
    }

    /// The incident's original message as sanitised HTML (sealed, field `incident.body_html`),
    /// if it had an HTML body.
    pub async fn console_incident_html(&self, incident: i64) -> Result<Option<String>> {
        on_pool!(self, |p| {
            let html: Option<Option<String>> =
                sqlx::query_scalar("SELECT body_html FROM incidents WHERE id = $1").bind(incident).fetch_optional(p).await?;
            Ok(html.flatten())
        })
    }
}
