//! `haven transfer notify-ahead CASE --by DSL`: the advance notice to the destination school's
//! DSL (KCSIE: "consider if it would be appropriate to share any information with the new
//! school … in advance of a child leaving"; the 2026 draft's "early notice"). It says only that
//! a safeguarding file exists and will follow, when the pupil leaves, and whom to contact here;
//! the pupil is named only where the school sets `[transfer] notice_names_pupil = true`. Sent
//! by the daemon's outbox, recorded on the case and audited; refused (and the refusal audited)
//! without the destination DSL's address, and once the file itself has gone.

use super::transfer::dsl_team;
use super::transfer_send::case_for;
use super::{App, CliError};
use crate::directory::{Pupil, Staff};
use crate::store::{CaseState, OutboxRecord, transfer_fields};
use chrono::{DateTime, NaiveDate, Utc};

/// What the notice says: no name, no date of birth, no concern unless the school names the
/// pupil (then their name and date of birth, so the destination can match them).
fn notice(school: &str, destination: &str, left_on: NaiveDate, dsl: &Staff, named: Option<&Pupil>) -> (String, String) {
    let who = match named {
        Some(p) => format!(
            "{}{}",
            p.full_name(),
            p.date_of_birth.map(|d| format!(" (date of birth {})", d.format("%-d %b %Y"))).unwrap_or_default()
        ),
        None => "a pupil".to_string(),
    };
    let subject = format!("Advance notice from {school}: a safeguarding file will follow");
    let mut body = format!(
        "Dear colleague,\n\n{school} holds a safeguarding (child-protection) file for {who} who leaves us on {} to join {destination}. \
         We will send the file to you securely, separately from the main pupil file, and ask you to confirm its receipt.\n\n\
         Please contact our Designated Safeguarding Lead, {} {}, at {}, so that we can share what you need to know before the \
         pupil starts with you.\n",
        left_on.format("%A %-d %B %Y"),
        dsl.first_name,
        dsl.last_name,
        dsl.email()
    );
    if named.is_none() {
        body.push_str("\nThis notice carries no details about the pupil, by design.\n");
    }
    body.push_str(&format!("\n{school}\n"));
    (subject, body)
}

async fn refuse(app: &App, staff: &Staff, case: i64, why: &str, message: String, now: DateTime<Utc>) -> Result<String, CliError> {
    app.store.audit(now, &format!("staff:{}", staff.id), "transfer_notify_ahead_refused", &format!("transfer:{case}"), why).await?;
    Err(CliError::Usage(format!("{message}; nothing was sent")))
}

pub async fn notify_ahead(app: &App, case: i64, by: &str) -> Result<String, CliError> {
    let now = app.now();
    let case = case_for(app, case).await?;
    let sealer = app.sealer().await?;
    let dir = app.store.load_directory_with_pupils(&sealer, &[case.pupil_id]).await?;
    let staff = dsl_team(&app.store, &dir, by, "transfer_notify_ahead", &format!("transfer:{}", case.id), now).await?.clone();
    if matches!(case.state, CaseState::Sent | CaseState::Closed) {
        let message =
            format!("transfer case #{} is {}: the file itself has gone, so an advance notice is too late", case.id, case.state.as_str());
        return refuse(app, &staff, case.id, "file already sent", message, now).await;
    }
    let destination = case
        .sealed_destination
        .as_deref()
        .and_then(|s| sealer.open_text(transfer_fields::DESTINATION, s).ok())
        .and_then(|d| crate::transfer::parse_destination(&d).ok());
    let Some((school, address)) = destination.and_then(|d| d.dsl_email.map(|e| (d.school, e))) else {
        let upn = dir.pupil(case.pupil_id).map(|p| p.upn.clone()).unwrap_or_else(|| "UPN".into());
        let message = format!(
            "transfer case #{} has no destination DSL's address: record it with `haven leaver {upn} --left-on {} --destination \
             \"SCHOOL <dsl@school>\" --by {by}`",
            case.id, case.left_on
        );
        return refuse(app, &staff, case.id, "no destination DSL address", message, now).await;
    };
    let names = app.config.transfer.notice_names_pupil;
    let named = if names { dir.pupil(case.pupil_id) } else { None };
    let (subject, body) = notice(&app.config.school.name, &school, case.left_on, &staff, named);
    let email = OutboxRecord {
        purpose: "notice",
        recipient: address.clone(),
        email_message_id: format!("haven.transfer-notice.{}.{}@{}", case.id, now.timestamp_micros(), app.config.school.mail_domain()),
        subject,
        body,
    };
    let mut tx = app.store.begin().await?;
    tx.queue_email(None, &email, now).await?;
    tx.record_transfer_notice(case.id, staff.id, now, names).await?;
    tx.commit().await?;
    let again = case.notified.map(|(_, at)| format!(" (again: last sent {})", at.format("%-d %b %Y"))).unwrap_or_default();
    let what = if names { "naming the pupil, as [transfer] notice_names_pupil says" } else { "without the pupil's name or any detail" };
    Ok(format!("transfer case #{}: advance notice queued to {address}{again}, {what}: the daemon sends it", case.id))
}
