//! A pupil only *mentioned* in an incident's text: the DSL team confirms the link (the pupil
//! becomes `linked`) or removes it. The change covers the incident and its follow-ups and is
//! audited in the same transaction.

use super::{Result, Tx, on_tx};
use chrono::{DateTime, Utc};

impl Tx {
    /// Makes mentioned pupil `pupil` of `incident` (and of its follow-ups) `linked`; false when
    /// they are not mentioned on it.
    pub async fn confirm_mention(&mut self, incident: i64, pupil: i64, by: i64, at: DateTime<Utc>) -> Result<bool> {
        const CONFIRM: &str = "UPDATE incident_pupils SET role = 'linked', how = how || '; confirmed by the DSL team' \
                               WHERE pupil_id = $1 AND role = 'mentioned' \
                               AND (incident_id = $2 OR incident_id IN (SELECT id FROM incidents WHERE follows = $2))";
        self.change_mention(CONFIRM, "link_confirm", incident, pupil, by, at).await
    }

    /// Removes mentioned pupil `pupil` from `incident` (and its follow-ups); false when they are
    /// not mentioned on it.
    pub async fn remove_mention(&mut self, incident: i64, pupil: i64, by: i64, at: DateTime<Utc>) -> Result<bool> {
        const REMOVE: &str = "DELETE FROM incident_pupils WHERE pupil_id = $1 AND role = 'mentioned' \
                              AND (incident_id = $2 OR incident_id IN (SELECT id FROM incidents WHERE follows = $2))";
        self.change_mention(REMOVE, "link_remove", incident, pupil, by, at).await
    }

    /// Runs `sql` (binding pupil, incident) and, when it changed a link, audits it as `action`.
    async fn change_mention(
        &mut self,
        sql: &'static str,
        action: &str,
        incident: i64,
        pupil: i64,
        by: i64,
        at: DateTime<Utc>,
    ) -> Result<bool> {
        let changed = on_tx!(self, |c| sqlx::query(sql).bind(pupil).bind(incident).execute(&mut *c).await?.rows_affected());
        if changed > 0 {
            self.append_incident_audit(at, &format!("staff:{by}"), action, incident, &format!("pupil:{pupil}")).await?;
        }
        Ok(changed > 0)
    }
}
