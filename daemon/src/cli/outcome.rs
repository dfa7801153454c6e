//! `haven outcome INCIDENT TEXT --by STAFF`: records the outcome of an incident and closes its
//! open action, so no further reminder fires. `NFA` is an outcome like any other.

use super::CliError;
use crate::pipeline::fields;
use crate::seal::Sealer;
use crate::store::{OutcomeRecorded, Store};
use chrono::{DateTime, Utc};

pub async fn record(store: &Store, sealer: &Sealer, incident: i64, text: &str, by_email: &str, now: DateTime<Utc>) -> Result<String, CliError> {
    let text = text.trim();
    if text.is_empty() {
        return Err(CliError::Usage("the outcome text is empty".into()));
    }
    let dir = store.load_directory(sealer).await?;
    let staff = dir
        .active_staff_by_email(by_email)
        .ok_or_else(|| CliError::Usage(format!("{by_email} is not an active member of staff")))?;
    if !store.incident_exists(incident).await? {
        return Err(CliError::Usage(format!("there is no incident #{incident}")));
    }
    let mut tx = store.begin().await?;
    match tx.record_outcome(incident, staff.id, &sealer.seal_text(fields::OUTCOME, text), now).await? {
        OutcomeRecorded::Closed { action } => {
            tx.commit().await?;
            Ok(format!("outcome recorded on incident #{incident}; action {action} closed"))
        }
        // Dropping the transaction rolls it back: nothing is half-recorded.
        OutcomeRecorded::NoOpenAction => Err(CliError::Usage(format!(
            "incident #{incident} has no outstanding outcome (none was required, or it was already recorded); nothing was recorded"
        ))),
    }
}
