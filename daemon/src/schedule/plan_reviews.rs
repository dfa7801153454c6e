//! Plan review reminders: when an open plan's review falls due (`haven plan add … --review-every
//! 6w`), each active member of the DSL team is emailed once, and the plan's next review moves
//! on, in one transaction; a second daemon or a restart finds the review already moved and
//! sends nothing. The email names the plan, its kind, the pupil's initials and year group (as
//! alerts do), and for early help the question KCSIE asks: is a referral to children's social
//! care needed?

use super::{ScheduleError, ScheduleSettings, TickReport, directory};
use crate::directory::{Directory, Pupil};
use crate::store::{OutboxRecord, Plan, Store};
use chrono::{DateTime, NaiveDate, Utc};
use std::sync::Arc;

/// The emails reminding the DSL team that `plan`'s review fell due on `due`. Pure.
pub fn reminders_for(plan: &Plan, due: NaiveDate, dir: &Directory, school: &str, mail_domain: &str) -> Vec<OutboxRecord> {
    let kind = crate::cli::plan::kind_label(&plan.kind);
    let about = dir.pupils.iter().find(|p| p.id == plan.pupil_id).map_or_else(|| "a pupil".to_string(), describe);
    let mut body = format!(
        "The review of plan #{} ({kind}) for {about} was due on {due}.\n\n\
         Review it with the agencies involved, then record any change: `haven plans --as YOU` lists open plans; \
         `haven plan end {} --on DATE --reason … --by YOU` ends one.\n",
        plan.id, plan.id
    );
    if plan.kind == "early-help" {
        body.push_str("\nIf things are not improving, consider a referral to children's social care (`haven referral add`).\n");
    }
    dir.staff
        .iter()
        .filter(|s| s.active && s.is_dsl_team())
        .map(|s| OutboxRecord {
            purpose: "reminder",
            recipient: s.email().to_string(),
            email_message_id: format!("haven.plan{}.review{}.{}@{mail_domain}", plan.id, due.format("%Y%m%d"), s.id),
            subject: format!("[{school}] Plan review due: plan #{} ({kind})", plan.id),
            body: body.clone(),
        })
        .collect()
}

/// "a pupil in Year 7 (J.S.)": initials and year group only, as alerts carry.
fn describe(p: &Pupil) -> String {
    let initial = |s: &str| s.chars().next().map(|c| c.to_uppercase().collect::<String>()).unwrap_or_default();
    let initials = format!("{}.{}.", initial(&p.first_name), initial(&p.last_name));
    match p.year_group {
        Some(y) => format!("a pupil in Year {y} ({initials})"),
        None => format!("a pupil ({initials})"),
    }
}

/// Reminds every plan review due by today, once each.
pub(super) async fn remind_due(
    store: &Store,
    settings: &ScheduleSettings,
    now: DateTime<Utc>,
    dir_cache: &mut Option<Arc<Directory>>,
    report: &mut TickReport,
) -> Result<(), ScheduleError> {
    let today = now.with_timezone(&settings.tz).date_naive();
    for plan in store.plans_due_for_review(today).await? {
        let Some(due) = plan.next_review_on else { continue };
        let every = chrono::Duration::days(plan.review_every_days.unwrap_or(1).max(1));
        let mut next = due + every;
        while next <= today {
            next += every;
        }
        let dir = directory(store, settings, dir_cache).await?;
        let emails = reminders_for(&plan, due, dir, &settings.school_name, &settings.mail_domain);
        let mut tx = store.begin().await?;
        if !tx.advance_plan_review(plan.id, due, next, now).await? {
            continue;
        }
        for e in &emails {
            tx.queue_email(None, e, now).await?;
        }
        tx.commit().await?;
        report.reminders_queued += u32::try_from(emails.len()).unwrap_or(u32::MAX);
        tracing::info!(plan = plan.id, reminders = emails.len(), "plan review reminded");
    }
    Ok(())
}
