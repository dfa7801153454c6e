//! `haven plan add PUPIL --kind … --starts DATE [--review-every 6w] --by STAFF`, `haven plan
//! end PLAN --on DATE --reason TEXT --by STAFF` and `haven plans [--all] --as STAFF`: the
//! multi-agency plans a pupil is on (early help, child in need, child protection, looked after,
//! other), as the DSL team records them. Reviews are reminded by the scheduler
//! ([`crate::schedule::plan_reviews`]); reports count plans; inspectors get the list. Only the
//! DSL team records or lists them; every change and every refusal is audited.

use super::CliError;
use super::chronology::find_pupil;
use super::referral::dsl_team;
use crate::seal::Sealer;
use crate::store::{Plan, Store};
use chrono::{DateTime, NaiveDate, Utc};
use chrono_tz::Tz;
use serde_json::json;

/// Field name of a plan's sealed end reason.
pub const END_REASON_FIELD: &str = "plan.end_reason";

/// The kinds of plan.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum PlanKind {
    EarlyHelp,
    ChildInNeed,
    ChildProtection,
    LookedAfter,
    Other,
}

impl PlanKind {
    pub fn as_str(self) -> &'static str {
        match self {
            PlanKind::EarlyHelp => "early-help",
            PlanKind::ChildInNeed => "child-in-need",
            PlanKind::ChildProtection => "child-protection",
            PlanKind::LookedAfter => "looked-after",
            PlanKind::Other => "other",
        }
    }
}

/// "child protection plan" for a stored kind.
pub fn kind_label(kind: &str) -> String {
    crate::report::summary::PLAN_KINDS.iter().find(|(k, _)| *k == kind).map_or_else(|| kind.to_string(), |(_, l)| l.to_lowercase())
}

pub struct AddPlan<'a> {
    pub pupil: &'a str,
    pub kind: PlanKind,
    pub starts: NaiveDate,
    /// Days between reviews (from `--review-every 6w`).
    pub review_every_days: Option<i64>,
    pub by: &'a str,
}

/// `--review-every`: whole days, at least one (`6w`, `30d`).
pub fn parse_review_every(s: &str) -> Result<i64, String> {
    let d = crate::duration::parse_duration(s).ok_or_else(|| format!("{s:?} is not a duration ({})", crate::duration::GRAMMAR))?;
    let days = i64::try_from(d.as_secs() / 86_400).unwrap_or(i64::MAX);
    if days < 1 || d.as_secs() % 86_400 != 0 {
        return Err(format!("{s:?}: reviews come every whole number of days or weeks, like \"6w\" or \"30d\""));
    }
    Ok(days)
}

pub async fn add(store: &Store, sealer: &Sealer, req: AddPlan<'_>, tz: Tz, now: DateTime<Utc>) -> Result<String, CliError> {
    let dir = store.load_directory(sealer).await?;
    let pupil = find_pupil(&dir, req.pupil)?;
    let staff = dsl_team(store, &dir, req.by, "--by", "plan_add", &format!("pupil:{}", pupil.id), now).await?;
    let today = now.with_timezone(&tz).date_naive();
    // The first review after today: a plan entered late is not reminded for reviews long past.
    let next_review = req.review_every_days.map(|every| {
        let mut next = req.starts + chrono::Duration::days(every);
        while next < today {
            next += chrono::Duration::days(every);
        }
        next
    });
    let mut tx = store.begin().await?;
    let starts_us = crate::report::period::day_start_us(req.starts, tz);
    let id = tx.add_plan(pupil.id, req.kind.as_str(), req.starts, starts_us, req.review_every_days, next_review, staff.id, now).await?;
    tx.commit().await?;
    let review = next_review.map(|d| format!("; first review due {d}")).unwrap_or_default();
    Ok(format!("plan #{id} ({}) for pupil {} from {}{review}", kind_label(req.kind.as_str()), pupil.upn, req.starts))
}

/// What ending a plan needs.
pub struct EndPlan<'a> {
    pub id: i64,
    pub on: NaiveDate,
    pub reason: &'a str,
    pub by: &'a str,
}

pub async fn end(store: &Store, sealer: &Sealer, req: EndPlan<'_>, tz: Tz, now: DateTime<Utc>) -> Result<String, CliError> {
    let EndPlan { id, on, reason, by } = req;
    if reason.trim().is_empty() {
        return Err(CliError::Usage("--reason is empty: say why the plan ends (stepped down, closed, moved); nothing was changed".into()));
    }
    let dir = store.load_directory_with_pupils(sealer, &[]).await?;
    let staff = dsl_team(store, &dir, by, "--by", "plan_end", &format!("plan:{id}"), now).await?;
    let plan = store.plans(false).await?.into_iter().find(|p| p.id == id);
    match &plan {
        Some(p) if p.ends_on.is_some() => return Err(CliError::Usage(format!("plan #{id} has already ended; nothing was changed"))),
        Some(p) if on < p.starts_on => {
            return Err(CliError::Usage(format!("--on {on} is before plan #{id} started ({}); nothing was changed", p.starts_on)));
        }
        Some(_) => {}
        None => return Err(CliError::Usage(format!("there is no plan #{id} (see `haven plans --all`); nothing was changed"))),
    }
    let mut tx = store.begin().await?;
    let on_us = crate::report::period::day_start_us(on, tz);
    if tx.end_plan(id, on, on_us, &sealer.seal_text(END_REASON_FIELD, reason.trim()), staff.id, now).await?.is_none() {
        return Err(CliError::Usage(format!("plan #{id} has already ended; nothing was changed")));
    }
    tx.commit().await?;
    Ok(format!("plan #{id} ended on {on}"))
}

pub async fn list(store: &Store, sealer: &Sealer, viewer: &str, all: bool, json_out: bool, now: DateTime<Utc>) -> Result<String, CliError> {
    let plans = store.plans(!all).await?;
    let ids: Vec<i64> = plans.iter().map(|p| p.pupil_id).collect();
    let dir = store.load_directory_with_pupils(sealer, &ids).await?;
    let staff = dsl_team(store, &dir, viewer, "--as", "plans", "plans", now).await?;
    store.audit(now, &format!("staff:{}", staff.id), "plans_view", "plans", &format!("count={}", plans.len())).await?;
    let upn = |p: &Plan| dir.pupils.iter().find(|x| x.id == p.pupil_id).map_or_else(|| format!("pupil #{}", p.pupil_id), |x| x.upn.clone());
    if json_out {
        let v: Vec<_> = plans
            .iter()
            .map(|p| {
                json!({"id": p.id, "pupil": upn(p), "kind": p.kind, "starts_on": p.starts_on.to_string(),
                       "ends_on": p.ends_on.map(|d| d.to_string()), "review_every_days": p.review_every_days,
                       "next_review_on": p.next_review_on.map(|d| d.to_string())})
            })
            .collect();
        return Ok(serde_json::to_string_pretty(&v).unwrap_or_default());
    }
    if plans.is_empty() {
        return Ok(if all { "no plans have been recorded" } else { "no plans are open" }.into());
    }
    Ok(plans
        .iter()
        .map(|p| {
            let mut line = format!("plan #{} · {} · {} · from {}", p.id, upn(p), kind_label(&p.kind), p.starts_on);
            if let Some(e) = p.ends_on {
                line.push_str(&format!(" to {e}"));
            }
            if let Some(r) = p.next_review_on {
                line.push_str(&format!(" · next review {r}"));
            }
            line
        })
        .collect::<Vec<_>>()
        .join("\n"))
}
