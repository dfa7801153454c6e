//! `haven leaver`, `haven transfers` and `haven transfer prepare|send|receive`: the transfer of
//! a leaver's child-protection file (issue 22). A pupil who leaves with any record opens a case
//! whose deadline is counted in the school's days (`[transfer]`, `school.terms_file`); the DSL
//! prepares a signed bundle, sends it through the school's encrypted mail and records it; the
//! receiving DSL's `Received: NAME, ROLE` reply closes the case. Only the DSL team may do any of
//! it, and every step and every refusal is audited.

use super::chronology::find_pupil;
use super::{App, CliError};
use crate::directory::{Directory, Pupil, Staff};
use crate::store::{CaseState, NewCase, Store, TransferCase, transfer_fields};
use crate::transfer::{Deadline, DeadlineError, Destination, parse_destination};
use chrono::{DateTime, NaiveDate, Utc};
use serde::Serialize;

/// The active member of the DSL team `email`; a refusal is audited against `subject`.
pub(crate) async fn dsl_team<'a>(
    store: &Store,
    dir: &'a Directory,
    email: &str,
    action: &str,
    subject: &str,
    now: DateTime<Utc>,
) -> Result<&'a Staff, CliError> {
    let staff = dir
        .active_staff_by_email(email)
        .ok_or_else(|| CliError::Usage(format!("--by {email}: not an active member of staff; nothing was changed")))?;
    if !staff.is_dsl_team() {
        store.audit(now, &format!("staff:{}", staff.id), &format!("{action}_refused"), subject, "not DSL team").await?;
        return Err(CliError::Usage(format!("--by {email}: only the DSL team (dsl, ddsl) may do this; nothing was changed")));
    }
    Ok(staff)
}

/// The days this school's deadlines count (`[transfer] days`).
pub(crate) fn days(app: &App) -> Result<crate::transfer::Days<'_>, DeadlineError> {
    crate::transfer::Days::of(app.config.terms.as_ref(), &app.config.transfer)
}

fn deadline_error(e: DeadlineError) -> CliError {
    CliError::Config(e.to_string())
}

/// The deadline of a case leaving on `left_on`, its destination known since `destination_on`.
fn deadline_for(app: &App, left_on: NaiveDate, destination_on: Option<NaiveDate>) -> Result<Option<Deadline>, CliError> {
    let days = days(app).map_err(deadline_error)?;
    crate::transfer::deadline(days, &app.config.transfer, left_on, destination_on).map_err(deadline_error)
}

fn ladder(app: &App, deadline: Option<Deadline>, now: DateTime<Utc>) -> Vec<crate::transfer::LadderRung> {
    match days(app) {
        Ok(days) => crate::transfer::send_ladder(days, deadline, now, app.config.school.tz()),
        Err(_) => Vec::new(),
    }
}

fn day(d: NaiveDate) -> String {
    d.format("%a %-d %b %Y").to_string()
}

const CME: &str = "ACTION: the destination is unknown: follow the children-missing-education procedure \
(tell the local authority's CME team); record the destination with `haven leaver` once known";

/// What opening a case says, one line.
fn opened_line(
    id: i64,
    pupil: &Pupil,
    left_on: NaiveDate,
    destination: Option<&Destination>,
    deadline: Option<Deadline>,
    days: (u32, &str),
) -> String {
    let to = destination.map_or_else(|| "the new school".to_string(), ToString::to_string);
    let by = deadline.map_or_else(
        || " (the deadline counts from when the destination is known)".to_string(),
        |d| format!(" by {} ({} {})", day(d.due_on), days.0, days.1),
    );
    let mut line =
        format!("transfer case #{id} opened for {} (left on {}): send the child-protection file to {to}{by}", pupil.upn, day(left_on));
    if destination.is_none() {
        line.push_str(&format!("\n{CME}"));
    }
    line
}

/// `haven leaver PUPIL --left-on DATE [--destination "SCHOOL <dsl@school>"] --by DSL`.
pub struct Leaver<'a> {
    pub pupil: &'a str,
    pub left_on: NaiveDate,
    pub destination: Option<&'a str>,
    pub by: &'a str,
}

pub async fn leaver(app: &App, req: Leaver<'_>) -> Result<String, CliError> {
    let now = app.now();
    let sealer = app.sealer().await?;
    let dir = app.store.load_directory(&sealer).await?;
    let pupil = find_pupil(&dir, req.pupil)?.clone();
    let staff = dsl_team(&app.store, &dir, req.by, "leaver", &format!("pupil:{}", pupil.id), now).await?.clone();
    let destination = req
        .destination
        .map(parse_destination)
        .transpose()
        .map_err(|e| CliError::Usage(format!("--destination {e}; nothing was changed")))?;
    let today = now.with_timezone(&app.config.school.tz()).date_naive();
    let left_on = pupil.left_on.unwrap_or(req.left_on);
    let mut out = Vec::new();
    if pupil.left_on.is_some_and(|d| d != req.left_on) {
        out.push(format!("{} was already marked as left on {}; the case counts from then", pupil.upn, day(left_on)));
    }
    let has_records = app.store.pupil_has_incidents(pupil.id).await?;
    let existing = app.store.transfer_case_for(pupil.id, left_on).await?;
    // Every check before any change: a missing terms file changes nothing.
    let destination_on = destination.as_ref().map(|_| today);
    let deadline = if has_records { deadline_for(app, left_on, destination_on)? } else { None };
    let sealed = destination
        .as_ref()
        .map(|d| sealer.seal_text_for(pupil.id, transfer_fields::DESTINATION, &d.to_string()))
        .transpose()
        .map_err(super::pupil_key_error)?;
    let mut tx = app.store.begin().await?;
    tx.mark_pupil_left(pupil.id, left_on, staff.id, now).await?;
    if !has_records {
        tx.commit().await?;
        out.push(format!(
            "{} marked as left on {}: Haven holds no records about them, so no transfer case is needed",
            pupil.upn,
            day(left_on)
        ));
        return Ok(out.join("\n"));
    }
    let days = (app.config.transfer.deadline, days(app).map_or("school days", |d| d.unit()));
    match existing {
        None => {
            let rungs = ladder(app, deadline, now);
            let new = NewCase {
                pupil_id: pupil.id,
                left_on,
                sealed_destination: sealed.as_deref(),
                destination_on,
                deadline,
                opened_by: Some(staff.id),
                at: now,
                ladder: &rungs,
            };
            let id = tx.open_transfer_case(&new).await?.unwrap_or_default();
            tx.commit().await?;
            out.push(opened_line(id, &pupil, left_on, destination.as_ref(), deadline, days));
        }
        Some(case) => match (&sealed, &destination) {
            (Some(sealed), Some(dest)) if case.sealed_destination.is_none() => {
                let deadline = case.deadline.or(deadline);
                let rungs: Vec<_> = ladder(app, deadline, now).into_iter().filter(|r| r.rung > 0).collect();
                tx.set_transfer_destination(case.id, sealed, today, deadline, &rungs, staff.id, now).await?;
                tx.commit().await?;
                let by = deadline.map(|d| format!(" by {}", day(d.due_on))).unwrap_or_default();
                out.push(format!("transfer case #{}: destination recorded: send the child-protection file to {dest}{by}", case.id));
            }
            _ => {
                tx.commit().await?;
                out.push(format!("transfer case #{} is already open for {} ({})", case.id, pupil.upn, case.state.as_str()));
            }
        },
    }
    Ok(out.join("\n"))
}

/// Opens a case for every pupil who has left with records and has none (after a directory
/// import, and before cases are listed): one line each, or the reason none could be opened.
pub async fn open_for_leavers(app: &App) -> Result<Vec<String>, CliError> {
    let leavers = app.store.leavers_without_case().await?;
    if leavers.is_empty() {
        return Ok(Vec::new());
    }
    if days(app).is_err() {
        return Ok(vec![format!(
            "{} pupil(s) who left have records but no transfer case yet: {}",
            leavers.len(),
            crate::transfer::NO_TERMS
        )]);
    }
    let now = app.now();
    let sealer = app.sealer().await?;
    let ids: Vec<i64> = leavers.iter().map(|(p, _)| *p).collect();
    let dir = app.store.load_directory_with_pupils(&sealer, &ids).await?;
    let mut lines = Vec::new();
    for (pupil_id, left_on) in leavers {
        let Some(pupil) = dir.pupil(pupil_id) else { continue };
        let deadline = match deadline_for(app, left_on, None) {
            Ok(d) => d,
            Err(e) => {
                lines.push(format!("{}: no transfer case opened: {e}", pupil.upn));
                continue;
            }
        };
        let rungs = ladder(app, deadline, now);
        let new = NewCase {
            pupil_id,
            left_on,
            sealed_destination: None,
            destination_on: None,
            deadline,
            opened_by: None,
            at: now,
            ladder: &rungs,
        };
        let mut tx = app.store.begin().await?;
        let opened = tx.open_transfer_case(&new).await?;
        tx.commit().await?;
        if let Some(id) = opened {
            let unit = days(app).map_or("school days", |d| d.unit());
            lines.push(opened_line(id, pupil, left_on, None, deadline, (app.config.transfer.deadline, unit)));
        }
    }
    Ok(lines)
}

/// One case as `haven transfers` shows it.
#[derive(Debug, Clone, Serialize)]
pub struct CaseView {
    pub case: i64,
    pub upn: String,
    pub name: String,
    pub left_on: NaiveDate,
    /// "SCHOOL <dsl@school>", or None while unknown.
    pub destination: Option<String>,
    /// The children-missing-education action stands while the destination is unknown.
    pub cme_action: bool,
    pub due_on: Option<NaiveDate>,
    pub state: CaseState,
    /// "due in 3 school days", "2 school days overdue", "sent on …, receipt due by …", …
    pub standing: String,
    pub sent_at: Option<DateTime<Utc>>,
    pub received_by: Option<String>,
    pub received_at: Option<DateTime<Utc>>,
    /// When the advance notice (`haven transfer notify-ahead`) last went.
    pub notified_at: Option<DateTime<Utc>>,
}

fn standing(case: &TransferCase, days: Option<crate::transfer::Days<'_>>, today: NaiveDate, received_by: Option<&str>) -> String {
    let count = |from: NaiveDate, to: NaiveDate| days.map_or(0, |d| d.between(from, to));
    let unit = days.map_or("school days", |d| d.unit());
    match case.state {
        CaseState::Closed => format!(
            "closed: received{}{}",
            received_by.map(|b| format!(" by {b}")).unwrap_or_default(),
            case.received_at.map(|t| format!(" on {}", day(t.date_naive()))).unwrap_or_default()
        ),
        CaseState::Sent => {
            let due = case.receipt_due_on.map(|d| {
                if today > d { format!("; no receipt, {} {unit} overdue", count(d, today)) } else { format!("; receipt due by {}", day(d)) }
            });
            format!("sent{}{}", case.sent.map(|(_, t)| format!(" on {}", day(t.date_naive()))).unwrap_or_default(), due.unwrap_or_default())
        }
        CaseState::Open | CaseState::Prepared => match case.deadline {
            None => "waiting for the destination".to_string(),
            Some(d) if today > d.due_on => format!("{} {unit} overdue (due {})", count(d.due_on, today), day(d.due_on)),
            Some(d) => format!("due in {} {unit} ({})", count(today, d.due_on), day(d.due_on)),
        },
    }
}

/// `haven transfers --as DSL [--all] [--json]`: the cases not closed (or all), newest first.
pub async fn list(app: &App, viewer: &str, all: bool, json_out: bool) -> Result<String, CliError> {
    let now = app.now();
    let sealer = app.sealer().await?;
    let staff_dir = app.store.load_directory_with_pupils(&sealer, &[]).await?;
    let viewer_staff = dsl_team(&app.store, &staff_dir, viewer, "transfer_list", "transfers", now).await?.clone();
    let mut notes = open_for_leavers(app).await?;
    let cases = app.store.transfer_cases(all).await?;
    let ids: Vec<i64> = cases.iter().map(|c| c.pupil_id).collect();
    let dir = app.store.load_directory_with_pupils(&sealer, &ids).await?;
    let today = now.with_timezone(&app.config.school.tz()).date_naive();
    let open = |v: &Option<String>, field| {
        v.as_deref().map(|s| sealer.open_text(field, s).unwrap_or_else(|_| "(unreadable with this keyring)".into()))
    };
    let views: Vec<CaseView> = cases
        .iter()
        .map(|c| {
            let pupil = dir.pupil(c.pupil_id);
            let received_by = open(&c.sealed_received_by, transfer_fields::RECEIVED_BY);
            CaseView {
                case: c.id,
                upn: pupil.map(|p| p.upn.clone()).unwrap_or_default(),
                name: pupil.map(Pupil::full_name).unwrap_or_default(),
                left_on: c.left_on,
                destination: open(&c.sealed_destination, transfer_fields::DESTINATION),
                cme_action: c.sealed_destination.is_none() && c.state != CaseState::Closed,
                due_on: c.deadline.map(|d| d.due_on),
                state: c.state,
                standing: standing(c, days(app).ok(), today, received_by.as_deref()),
                sent_at: c.sent.map(|(_, t)| t),
                received_by,
                received_at: c.received_at,
                notified_at: c.notified.map(|(_, t)| t),
            }
        })
        .collect();
    app.store.audit(now, &format!("staff:{}", viewer_staff.id), "transfer_list", "transfers", &format!("cases={}", views.len())).await?;
    if json_out {
        return Ok(serde_json::to_string_pretty(&serde_json::json!({ "cases": views, "notes": notes })).unwrap_or_default());
    }
    let mut lines: Vec<String> = views
        .iter()
        .map(|v| {
            let mut s = format!(
                "#{} {} {} left {} to {}: {} ({})",
                v.case,
                v.upn,
                v.name,
                day(v.left_on),
                v.destination.as_deref().unwrap_or("destination unknown"),
                v.state.as_str(),
                v.standing
            );
            if v.cme_action {
                s.push_str(&format!("\n    {CME}"));
            }
            s
        })
        .collect();
    if lines.is_empty() {
        lines.push(if all { "no transfer cases have been opened" } else { "no transfer cases are open" }.to_string());
    }
    notes.extend(lines);
    Ok(notes.join("\n"))
}
