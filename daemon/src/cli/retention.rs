//! `haven retention check|due|review`: the school's retention schedule checked, the pupils whose
//! records fall due for review, and the review decisions. Nothing here destroys anything: a
//! "destroy" decision only records what was decided, for a two-person disposal to carry out.

use super::hold::{authorised, line as hold_line};
use super::{App, CliError, load_rules};
use crate::directory::Directory;
use crate::retention::{DueDate, Keep, Policy, PupilDates, due};
use crate::store::{KeptAfterTransfer, Review, retention_fields};
use crate::transfer::RetainAfter;
use chrono::{DateTime, NaiveDate, Utc};
use serde::Serialize;
use std::collections::BTreeMap;

pub(crate) fn load_policy(app: &App) -> Result<Policy, CliError> {
    let rules = load_rules(&app.config)?;
    Policy::load(&app.config.base, rules.categories()).map_err(|e| CliError::Config(format!("the retention schedule is invalid:\n{e}")))
}

pub fn check(app_config: &crate::config::Config) -> Result<String, CliError> {
    let rules = load_rules(app_config)?;
    let policy = Policy::load(&app_config.base, rules.categories())
        .map_err(|e| CliError::Config(format!("the retention schedule is invalid:\n{e}")))?;
    let mut out = format!("retention OK: {} series ({})", policy.series.len(), policy.origin);
    for s in &policy.series {
        let applies = match &s.applies {
            crate::retention::Applies::Safeguarding(true) => "safeguarding categories".to_string(),
            crate::retention::Applies::Safeguarding(false) => "other categories".to_string(),
            crate::retention::Applies::Category(c) => format!("category {c:?}"),
        };
        out.push_str(&format!("\n  {}: {applies}, kept to {}, then review", s.name, s.keep));
        if let Some(r) = &s.reason {
            out.push_str(&format!(" (deviation: {r})"));
        }
    }
    out.push_str(&format!(
        "\n  disposal: {} cooling-off after approval; backups kept for {}",
        crate::retention::describe(policy.disposal.cooling_off),
        crate::retention::describe(policy.disposal.backups_kept_for)
    ));
    if policy.disposal.cooling_off < std::time::Duration::from_secs(86_400) {
        out.push_str("\nwarning: [disposal] cooling_off is under a day: there is hardly time to cancel an approved disposal");
    }
    Ok(out)
}

/// One pupil's records in one series, and when they fall due.
#[derive(Debug, Serialize)]
pub struct DueRow {
    pub upn: String,
    pub series: String,
    pub incidents: i64,
    /// When the records fall due for review (None when it cannot be worked out yet).
    pub due: Option<NaiveDate>,
    pub basis: String,
    pub decision: Option<String>,
    pub holds: Vec<String>,
}

/// Every (pupil, series) with its due date, newest review decisions applied.
pub async fn schedule(app: &App) -> Result<(Directory, Vec<DueRow>), CliError> {
    let policy = load_policy(app)?;
    let categories = load_rules(&app.config)?.categories().clone();
    let sealer = app.sealer().await?;
    let dir = app.store.load_directory(&sealer).await?;
    let tz = app.config.school.tz();
    let mut per: BTreeMap<(i64, String), (i64, DateTime<Utc>)> = BTreeMap::new();
    for pc in app.store.pupil_categories().await? {
        let Some(series) = policy.series_for(&pc.category, &categories) else { continue };
        let e = per.entry((pc.pupil_id, series.name.clone())).or_insert((0, pc.latest));
        e.0 += pc.incidents;
        e.1 = e.1.max(pc.latest);
    }
    let reviews: BTreeMap<(i64, String), Review> =
        app.store.latest_reviews().await?.into_iter().map(|r| ((r.pupil_id, r.series.clone()), r)).collect();
    // The newest receipt of each pupil's transfer sets the review date of what is kept.
    let kept: BTreeMap<i64, KeptAfterTransfer> = app.store.kept_after_transfer().await?.into_iter().map(|k| (k.pupil_id, k)).collect();
    let mut rows = Vec::new();
    for ((pupil_id, series_name), (incidents, latest)) in per {
        let Some(pupil) = dir.pupils.iter().find(|p| p.id == pupil_id) else { continue };
        let Some(series) = policy.get(&series_name) else { continue };
        let dates =
            PupilDates { date_of_birth: pupil.date_of_birth, left_on: pupil.left_on, latest: latest.with_timezone(&tz).date_naive() };
        let (mut due_on, mut basis) = match due(series.keep, &dates) {
            DueDate::On { date, basis } => (Some(date), basis),
            DueDate::NotYet(why) => (None, why),
        };
        let kept = kept.get(&pupil_id);
        if let Some(k) = kept {
            (due_on, basis) = after_transfer(k, &dates, tz);
        }
        let review = reviews.get(&(pupil_id, series_name.clone())).filter(|r| kept.is_none_or(|k| r.decided_at > k.received_at));
        let decision = review.map(|r| {
            let by = dir
                .staff
                .iter()
                .find(|s| s.id == r.decided_by)
                .map_or_else(|| format!("staff #{}", r.decided_by), |s| format!("{} {}", s.first_name, s.last_name));
            let on = r.decided_at.with_timezone(&tz).format("%-d %b %Y");
            match (r.destroy, r.until) {
                (true, _) => format!("destroy, decided {on} by {by}: awaiting a two-person disposal"),
                (false, Some(until)) => {
                    due_on = Some(until);
                    basis = format!("kept until {until} on review");
                    format!("retain until {until}, decided {on} by {by}")
                }
                (false, None) => format!("retain, decided {on} by {by}"),
            }
        });
        let holds = app.store.holds_touching(Some(pupil_id), None).await?.iter().map(|h| hold_line(&dir, &sealer, h, tz)).collect();
        rows.push(DueRow { upn: pupil.upn.clone(), series: series_name, incidents, due: due_on, basis, decision, holds });
    }
    rows.sort_by(|a, b| a.due.cmp(&b.due).then_with(|| a.upn.cmp(&b.upn)));
    Ok((dir, rows))
}

/// The review date (and its basis) of what a transfer's receipt left kept (`[transfer]
/// retain_after`, `retain_for`).
fn after_transfer(k: &KeptAfterTransfer, dates: &PupilDates, tz: chrono_tz::Tz) -> (Option<NaiveDate>, String) {
    let on = k.received_at.with_timezone(&tz).format("%-d %b %Y");
    let what = format!("transfer case #{} received {on}, [transfer] retain_after = \"{}\"", k.case_id, k.retain_after.as_str());
    match (k.retain_after, k.until) {
        (RetainAfter::None, until) => (until, format!("{what}: due for disposal from the receipt")),
        (_, Some(until)) => (Some(until), format!("{what}, retain_for = \"{}\": kept until {until}", k.retain_for.as_str())),
        (_, None) => match due(Keep::FromBirth(25), dates) {
            DueDate::On { date, basis } => (Some(date), format!("{what}, retain_for = \"dob+25y\": {basis}")),
            DueDate::NotYet(why) => (None, format!("{what}: {why}")),
        },
    }
}

/// Pupils and series due for review by `on + within` (today when `on` is not given).
pub async fn due_list(app: &App, within: std::time::Duration, on: Option<NaiveDate>, json_out: bool) -> Result<String, CliError> {
    let today = on.unwrap_or_else(|| app.now().with_timezone(&app.config.school.tz()).date_naive());
    let horizon = today + chrono::Duration::days((within.as_secs() / 86_400) as i64);
    let (_, rows) = schedule(app).await?;
    let (due_rows, later): (Vec<DueRow>, Vec<DueRow>) = rows.into_iter().partition(|r| r.due.is_some_and(|d| d <= horizon));
    let unknown: Vec<&DueRow> = later.iter().filter(|r| r.due.is_none()).collect();
    if json_out {
        return Ok(serde_json::to_string_pretty(&serde_json::json!({
            "as_of": today.to_string(), "horizon": horizon.to_string(), "due": due_rows, "cannot_tell": unknown,
        }))
        .unwrap_or_default());
    }
    let mut out = if due_rows.is_empty() {
        format!("nothing falls due for review by {horizon}")
    } else {
        format!("{} due for review by {horizon}:", due_rows.len())
    };
    for r in &due_rows {
        let state = if r.due.is_some_and(|d| d <= today) { "due" } else { "due soon" };
        out.push_str(&format!(
            "\n  {} {}: {} incident(s), {state} {} ({})",
            r.upn,
            r.series,
            r.incidents,
            r.due.map(|d| d.to_string()).unwrap_or_default(),
            r.basis
        ));
        if let Some(d) = &r.decision {
            out.push_str(&format!("\n    review: {d}"));
        }
        for h in &r.holds {
            out.push_str(&format!("\n    on hold: {h}"));
        }
    }
    for r in unknown {
        out.push_str(&format!("\nwarning: {} {}: cannot tell when it falls due: {}", r.upn, r.series, r.basis));
    }
    Ok(out)
}

/// What was decided on review.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Decision {
    Retain,
    Destroy,
}

pub struct ReviewRequest<'a> {
    pub pupil: &'a str,
    pub series: &'a str,
    pub decision: Decision,
    pub until: Option<NaiveDate>,
    pub reason: &'a str,
    pub by: &'a str,
}

pub async fn review(app: &App, req: ReviewRequest<'_>) -> Result<String, CliError> {
    let now = app.now();
    let policy = load_policy(app)?;
    if policy.get(req.series).is_none() {
        let known: Vec<&str> = policy.series.iter().map(|s| s.name.as_str()).collect();
        return Err(CliError::Usage(format!(
            "--series {:?} is not in the retention schedule ({}); nothing was changed",
            req.series,
            known.join(", ")
        )));
    }
    if req.reason.trim().is_empty() {
        return Err(CliError::Usage("--reason is empty: a review decision needs its reason; nothing was changed".into()));
    }
    let today = now.with_timezone(&app.config.school.tz()).date_naive();
    match (req.decision, req.until) {
        (Decision::Retain, None) => {
            return Err(CliError::Usage("retain needs --until DATE (when the records are next reviewed); nothing was changed".into()));
        }
        (Decision::Retain, Some(until)) if until <= today => {
            return Err(CliError::Usage(format!("--until {until} is not in the future; nothing was changed")));
        }
        (Decision::Destroy, Some(_)) => {
            return Err(CliError::Usage("destroy takes no --until; nothing was changed".into()));
        }
        _ => {}
    }
    let sealer = app.sealer().await?;
    let named = app.store.find_pupils(&app.blind_index()?, req.pupil).await?;
    let dir = app.store.load_directory_with_pupils(&sealer, &named).await?;
    let pupil = super::chronology::find_pupil(&dir, req.pupil)?;
    let staff = authorised(&app.store, &dir, req.by, "retention_review", &format!("pupil:{}", pupil.id), now).await?;
    if req.decision == Decision::Destroy {
        let holds = app.store.holds_touching(Some(pupil.id), None).await?;
        if let Some(h) = holds.first() {
            app.store
                .audit(
                    now,
                    &format!("staff:{}", staff.id),
                    "retention_review_refused",
                    &format!("pupil:{}", pupil.id),
                    &format!("hold={}", h.id),
                )
                .await?;
            return Err(CliError::Usage(format!(
                "pupil {} is under {} standing hold(s) (hold #{}, {}): nothing can be decided for destruction while a hold stands; nothing was changed",
                pupil.upn,
                holds.len(),
                h.id,
                h.reason
            )));
        }
    }
    let mut tx = app.store.begin().await?;
    tx.record_review(&Review {
        pupil_id: pupil.id,
        series: req.series.to_string(),
        destroy: req.decision == Decision::Destroy,
        until: req.until,
        sealed_reason: sealer.seal_text(retention_fields::REVIEW_REASON, req.reason.trim()),
        decided_by: staff.id,
        decided_at: now,
    })
    .await?;
    tx.commit().await?;
    Ok(match req.decision {
        Decision::Retain => format!(
            "pupil {}'s {} records kept until {} (review recorded)",
            pupil.upn,
            req.series,
            req.until.map(|d| d.to_string()).unwrap_or_default()
        ),
        Decision::Destroy => format!(
            "pupil {}'s {} records decided for destruction (review recorded); nothing has been deleted: \
             `haven dispose request {} --series {} …` starts the two-person disposal",
            pupil.upn, req.series, pupil.upn, req.series
        ),
    })
}
