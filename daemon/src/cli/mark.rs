//! `haven incident mark INCIDENT --significant --summary TEXT --impact TEXT --by STAFF` (or
//! `--not-significant`): the DSL team marks an incident for the multi-agency chronology. The
//! mark is a new entry beside the incident, like a correction: the record itself is unchanged,
//! every mark is kept and audited, and the newest counts.

use super::CliError;
use crate::seal::Sealer;
use crate::store::{Store, mark_fields};
use chrono::{DateTime, Utc};

/// What `haven incident mark` was asked.
pub struct MarkRequest<'a> {
    pub incident: i64,
    /// `true` for `--significant`, `false` for `--not-significant`.
    pub significant: bool,
    pub summary: Option<&'a str>,
    pub impact: Option<&'a str>,
    pub by: &'a str,
}

pub async fn mark(store: &Store, sealer: &Sealer, req: &MarkRequest<'_>, now: DateTime<Utc>) -> Result<String, CliError> {
    let words = |v: Option<&str>| v.map(str::trim).filter(|t| !t.is_empty()).map(str::to_string);
    let (summary, impact) = (words(req.summary), words(req.impact));
    match (req.significant, &summary, &impact) {
        (true, None, _) => {
            return Err(CliError::Usage(
                "--summary is missing: say in one line what happened, as partner agencies will read it; nothing was changed".into(),
            ));
        }
        (true, _, None) => {
            return Err(CliError::Usage(
                "--impact is missing: say what it meant for the child (\"none known\" is an answer); nothing was changed".into(),
            ));
        }
        (false, Some(_), _) | (false, _, Some(_)) => {
            return Err(CliError::Usage("--not-significant takes no --summary or --impact; nothing was changed".into()));
        }
        _ => {}
    }
    let Some(facts) = store.incident_facts(req.incident).await? else {
        return Err(CliError::Usage(format!("there is no incident #{}; nothing was changed", req.incident)));
    };
    let dir = store.load_directory_with_pupils(sealer, &[]).await?;
    let staff = dir
        .active_staff_by_email(req.by)
        .ok_or_else(|| CliError::Usage(format!("--by {}: not an active member of staff; nothing was changed", req.by)))?;
    if !staff.is_dsl_team() {
        store
            .audit(now, &format!("staff:{}", staff.id), "incident_mark_refused", &format!("incident:{}", req.incident), "not DSL team")
            .await?;
        return Err(CliError::Usage(format!(
            "--by {}: only the DSL team marks incidents for the multi-agency chronology; nothing was changed",
            req.by
        )));
    }
    // Sealed as the incident's own text is: under the pupil's key when it is about one pupil.
    let seal = |field: &str, text: &str| match facts.pupils.as_slice() {
        [(pupil, _)] => sealer.seal_text_for(*pupil, field, text).map_err(super::pupil_key_error),
        _ => Ok(sealer.seal_text(field, text)),
    };
    let sealed_summary = summary.as_deref().map(|t| seal(mark_fields::SUMMARY, t)).transpose()?;
    let sealed_impact = impact.as_deref().map(|t| seal(mark_fields::IMPACT, t)).transpose()?;
    let mut tx = store.begin().await?;
    tx.mark_incident(req.incident, req.significant, sealed_summary.as_deref(), sealed_impact.as_deref(), staff.id, now).await?;
    tx.commit().await?;
    Ok(if req.significant {
        format!(
            "incident #{} marked significant: it is in the multi-agency chronology (`haven chronology PUPIL --format multiagency`)",
            req.incident
        )
    } else {
        format!("incident #{} marked not significant: it is left out of the multi-agency chronology", req.incident)
    })
}
