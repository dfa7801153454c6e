//! The transfer ladder, fired by the scheduler's pass (`schedule::tick` calls [`fire_due`]):
//! each rung due whose case is still at its stage queues its emails to the DSL team, and the
//! head too for an escalation, in the transaction that records it fired, so a restart or a
//! second daemon repeats nothing. What each email says is [`emails_for`] (pure).
//!
//! The emails carry the minimum (SPEC "Alert emails"): the case number, the pupil's initials
//! and year group, the dates, whether the destination is known, and what to do. Never a name,
//! the destination school or any record's text; nothing here logs one either.

use crate::directory::{Directory, Role, Staff};
use crate::schedule::ScheduleSettings;
use crate::store::{DueTransferRung, OutboxRecord, Store, StoreError, TransferCase};
use crate::transfer::RungKind;
use chrono::{DateTime, NaiveDate, Utc};
use chrono_tz::Tz;

/// Rungs read per pass.
const BATCH: i64 = 200;

/// Fires every transfer rung due at `now`; returns (rungs fired, emails queued).
pub async fn fire_due(store: &Store, settings: &ScheduleSettings, now: DateTime<Utc>) -> Result<(u32, u32), StoreError> {
    let due = store.due_transfer_rungs(now, BATCH).await?;
    if due.is_empty() {
        return Ok((0, 0));
    }
    let dir = settings.directory.current(store, &settings.keys.current(store).await?).await?;
    let (mut fired, mut queued) = (0, 0);
    for rung in &due {
        let Some(case) = store.transfer_case(rung.case_id).await? else { continue };
        let ctx = Context { school_name: &settings.school_name, mail_domain: &settings.mail_domain, tz: settings.tz };
        let emails = emails_for(rung, &case, &dir, &ctx);
        let mut tx = store.begin().await?;
        let done = tx.fire_transfer_rung(rung, &emails, now).await?;
        tx.commit().await?;
        if done {
            fired += 1;
            queued += u32::try_from(emails.len()).unwrap_or(u32::MAX);
            tracing::info!(
                case = rung.case_id,
                rung = rung.rung,
                kind = rung.kind.as_str(),
                emails = emails.len(),
                "transfer reminder fired"
            );
        }
    }
    Ok((fired, queued))
}

/// What the emails need besides the rung and the case.
#[derive(Debug, Clone, Copy)]
pub struct Context<'a> {
    pub school_name: &'a str,
    pub mail_domain: &'a str,
    pub tz: Tz,
}

/// Who a rung goes to: the active DSL team, and the head for an escalation.
fn recipients(kind: RungKind, dir: &Directory) -> Vec<&Staff> {
    dir.staff
        .iter()
        .filter(|s| s.active && !s.email().is_empty())
        .filter(|s| s.is_dsl_team() || (kind.escalates() && s.has_role(Role::Head)))
        .collect()
}

fn date(d: NaiveDate) -> String {
    d.format("%a %-d %b %Y").to_string()
}

/// The emails of one rung, one per recipient, each with a stable Message-ID.
pub fn emails_for(rung: &DueTransferRung, case: &TransferCase, dir: &Directory, ctx: &Context<'_>) -> Vec<OutboxRecord> {
    let pupil = dir.pupil(case.pupil_id).map_or_else(
        || "a pupil who has left".to_string(),
        |p| format!("{}{}", p.initials(), p.year_group.map(|y| format!(", Year {y}")).unwrap_or_default()),
    );
    let id = case.id;
    let due = case.deadline.map(|d| date(d.due_on));
    let destination_known = case.sealed_destination.is_some();
    let cme = "ACTION: the destination school is not known. Follow the children-missing-education procedure \
               (tell the local authority's CME team), and record the destination once known with \
               `haven leaver UPN --left-on DATE --destination \"SCHOOL <dsl@school>\" --by YOU`.\n\n";
    let (subject, said) = match rung.kind {
        RungKind::Opened => (
            format!(
                "Haven transfer case #{id}: child-protection file to send{}",
                due.as_ref().map(|d| format!(" by {d}")).unwrap_or_default()
            ),
            format!(
                "Pupil {pupil} left the roll on {} and has records in Haven: transfer case #{id} is open.\n\n\
                 The child-protection file must reach the new school {}, separately from the main pupil file, \
                 securely, and with confirmation of receipt (KCSIE Annex C).\n\n{}",
                date(case.left_on),
                due.as_ref()
                    .map_or_else(|| "within the school days counted once the destination is known".to_string(), |d| format!("by {d}")),
                if destination_known { String::new() } else { cme.to_string() },
            ),
        ),
        RungKind::Reminder => (
            format!("Reminder: Haven transfer case #{id}: file due by {}", due.clone().unwrap_or_default()),
            format!(
                "The child-protection file of pupil {pupil} (transfer case #{id}) has not been sent, and is due by {}.\n\n",
                due.clone().unwrap_or_default()
            ),
        ),
        RungKind::Overdue => (
            format!("Overdue: Haven transfer case #{id}: file not sent by {}", due.clone().unwrap_or_default()),
            format!(
                "The child-protection file of pupil {pupil} (transfer case #{id}) was due by {} and has not been sent. \
                 This reminder also goes to the head.\n\n{}",
                due.clone().unwrap_or_default(),
                if destination_known { String::new() } else { cme.to_string() },
            ),
        ),
        RungKind::Chase | RungKind::ChaseOverdue => {
            let sent = case.sent.map(|(_, at)| date(at.with_timezone(&ctx.tz).date_naive())).unwrap_or_default();
            let by = case.receipt_due_on.map(date).unwrap_or_default();
            (
                format!(
                    "{}Haven transfer case #{id}: no receipt from the new school",
                    if rung.kind.escalates() { "Overdue: " } else { "Chase: " }
                ),
                format!(
                    "The child-protection file of pupil {pupil} (transfer case #{id}) was sent on {sent}; no receipt had come by {by}. \
                     Contact the receiving school's DSL (`haven transfers` shows who) and ask them to confirm receipt.{}\n\n",
                    if rung.kind.escalates() { " This reminder also goes to the head." } else { "" }
                ),
            )
        }
    };
    let what_next = match case.state {
        crate::store::CaseState::Open => format!(
            "What to do: write a summary of the main concerns, then `haven transfer prepare {id} --summary FILE --by YOU` \
             and `haven transfer send {id} --by YOU`.\n"
        ),
        crate::store::CaseState::Prepared => format!("What to do: send the prepared bundle, then `haven transfer send {id} --by YOU`.\n"),
        _ => String::new(),
    };
    let body = format!("{} transfer case #{id}.\n\n{said}{what_next}", ctx.school_name);
    recipients(rung.kind, dir)
        .into_iter()
        .map(|s| OutboxRecord {
            purpose: "reminder",
            recipient: s.email().to_string(),
            email_message_id: format!("haven.transfer.{id}.rung{}.{}@{}", rung.rung, s.id, ctx.mail_domain),
            subject: subject.clone(),
            body: body.clone(),
        })
        .collect()
}
