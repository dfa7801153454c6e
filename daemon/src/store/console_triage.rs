//! A message awaiting triage filed from the console: a member of the DSL team picked its
//! pupils, the pipeline decided the incident (`pipeline::answer`), and this writes it. The
//! message's state, its incident (alerts, action, rungs) and the audit entry commit together,
//! and only if the message is still awaiting triage, so it is never filed twice.

use super::audit::AuditRecord;
use super::{IncidentRecord, Result, StoreError, Tx, on_tx};
use chrono::{DateTime, Utc};

impl Tx {
    /// Files `incident` as message `message`'s and marks the message filed with `reason`;
    /// the incident's number. Refused when the message is no longer awaiting triage.
    pub async fn file_triaged(
        &mut self,
        message: i64,
        reason: &str,
        incident: &IncidentRecord,
        actor: &str,
        at: DateTime<Utc>,
    ) -> Result<i64> {
        let changed = on_tx!(self, |c| {
            sqlx::query("UPDATE messages SET state = 'filed', reason = $2 WHERE id = $1 AND state = 'awaiting_triage'")
                .bind(message)
                .bind(reason)
                .execute(&mut *c)
                .await?
                .rows_affected()
        });
        if changed != 1 {
            return Err(StoreError::Invalid(format!("message {message} is no longer awaiting triage")));
        }
        let ids = self.file_incidents(&[(message, incident)]).await?;
        let id = ids.get(&message).copied().ok_or_else(|| StoreError::Invalid(format!("message {message}: no incident was filed")))?;
        self.append_audits(&[AuditRecord {
            at,
            actor,
            action: "triage",
            subject: format!("message:{message}"),
            detail: format!("filed as incident:{id} from the console"),
            incident: Some(id),
        }])
        .await?;
        Ok(id)
    }
}
