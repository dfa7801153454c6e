//! `haven outcome INCIDENT TEXT --by STAFF`: records the outcome of an incident and closes its
//! open action, so no further reminder fires; an incident no rule asked an outcome for may be
//! given one too. `NFA` is an outcome like any other.
//!
//! `--by` must name someone allowed to record it ([`Store::may_record_outcome`], the rule email
//! replies use too): a member of the DSL team, or someone the incident was alerted to (an
//! alert, a reminder, or the action's owner) who may still see it.
//! Anyone else is refused, the refusal is audited, and nothing is recorded.

use super::CliError;
use crate::pipeline::fields;
use crate::seal::Sealer;
use crate::store::{OutcomeRecorded, Store};
use chrono::{DateTime, Utc};

pub async fn record(
    store: &Store,
    sealer: &Sealer,
    incident: i64,
    text: &str,
    by_email: &str,
    now: DateTime<Utc>,
) -> Result<String, CliError> {
    let text = text.trim();
    if text.is_empty() {
        return Err(CliError::Usage("the outcome text is empty".into()));
    }
    let code = crate::outcome_code::parse_outcome_code(text).map_err(|e| CliError::Usage(format!("{e}; nothing was recorded")))?;
    let Some(facts) = store.incident_facts(incident).await? else {
        return Err(CliError::Usage(format!("there is no incident #{incident}")));
    };
    // The staff and the incident's own pupils: who may record depends on nobody else.
    let pupils: Vec<i64> = facts.pupils.iter().map(|(id, _)| *id).collect();
    let dir = store.load_directory_with_pupils(sealer, &pupils).await?;
    let staff = dir
        .active_staff_by_email(by_email)
        .ok_or_else(|| CliError::Usage(format!("--by {by_email}: not an active member of staff; nothing was recorded")))?;
    let allowed = store.may_record_outcome(&facts, staff, &dir).await?;
    if !allowed {
        store
            .audit(
                now,
                &format!("staff:{}", staff.id),
                "outcome_refused",
                &format!("incident:{incident}"),
                "not DSL team nor an alerted viewer",
            )
            .await?;
        return Err(CliError::Usage(format!(
            "--by {by_email}: may not record the outcome of incident #{incident}: only the DSL team, or someone it was alerted to who may see it, may; nothing was recorded"
        )));
    }
    let mut tx = store.begin().await?;
    match tx.record_coded_outcome(incident, staff.id, &sealer.seal_text(fields::OUTCOME, text), code, now).await? {
        OutcomeRecorded::Closed { action } => {
            tx.commit().await?;
            Ok(format!("outcome recorded on incident #{incident}; action {action} closed"))
        }
        OutcomeRecorded::Added { .. } => {
            tx.commit().await?;
            Ok(format!("outcome recorded on incident #{incident} (no rule required one)"))
        }
        // Dropping the transaction rolls it back: nothing is half-recorded.
        OutcomeRecorded::NoOpenAction => {
            Err(CliError::Usage(format!("the outcome of incident #{incident} was already recorded; nothing was recorded")))
        }
    }
}
