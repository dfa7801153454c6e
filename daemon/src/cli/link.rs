//! `haven link confirm|remove INCIDENT PUPIL --by STAFF`: the DSL team settles a pupil who was
//! only *mentioned* by name in an incident's text. Confirmed, they become a linked pupil (on
//! their chronology for whoever may see the incident); removed, the incident leaves their
//! chronology. Only the DSL team may; anyone else is refused and the refusal audited.

use super::CliError;
use super::chronology::find_pupil;
use crate::store::Store;
use chrono::{DateTime, Utc};

/// What to do with a mentioned pupil.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LinkAction {
    Confirm,
    Remove,
}

pub async fn run(
    store: &Store,
    sealer: &crate::seal::Sealer,
    action: LinkAction,
    incident: i64,
    pupil: &str,
    by_email: &str,
    now: DateTime<Utc>,
) -> Result<String, CliError> {
    let dir = store.load_directory(sealer).await?;
    let staff = dir
        .active_staff_by_email(by_email)
        .ok_or_else(|| CliError::Usage(format!("--by {by_email}: not an active member of staff; nothing was changed")))?;
    let Some(facts) = store.incident_facts(incident).await? else {
        return Err(CliError::Usage(format!("there is no incident #{incident}; nothing was changed")));
    };
    if !staff.is_dsl_team() {
        store.audit(now, &format!("staff:{}", staff.id), "link_refused", &format!("incident:{incident}"), "not DSL team").await?;
        return Err(CliError::Usage(format!(
            "--by {by_email}: only the DSL team may confirm or remove a mentioned pupil; nothing was changed"
        )));
    }
    let pupil = find_pupil(&dir, pupil)?;
    let role = facts.pupils.iter().find(|(id, _)| *id == pupil.id).map(|(_, r)| r.as_str());
    if role != Some("mentioned") {
        let is = match role {
            Some(r) => format!("is {r} on it"),
            None => "is not on it".to_string(),
        };
        return Err(CliError::Usage(format!(
            "pupil {} {is}, not mentioned: only a mentioned pupil can be confirmed or removed; nothing was changed",
            pupil.upn
        )));
    }
    let mut tx = store.begin().await?;
    let done = match action {
        LinkAction::Confirm => tx.confirm_mention(incident, pupil.id, staff.id, now).await?,
        LinkAction::Remove => tx.remove_mention(incident, pupil.id, staff.id, now).await?,
    };
    if !done {
        return Err(CliError::Usage(format!("pupil {} is no longer mentioned on incident #{incident}; nothing was changed", pupil.upn)));
    }
    tx.commit().await?;
    Ok(match action {
        LinkAction::Confirm => format!("pupil {} confirmed as linked to incident #{incident}", pupil.upn),
        LinkAction::Remove => format!("pupil {} removed from incident #{incident}", pupil.upn),
    })
}
