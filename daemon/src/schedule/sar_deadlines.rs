//! Subject access deadlines: the DSL team and the DPO are reminded of every open request a
//! week before its answer is due, on the day, and once it is overdue. One email per stage,
//! request, due date and recipient: its Message-ID says which, so a restart or a second daemon
//! queues none twice, and an extension (a new due date) starts the stages again. A daemon that
//! was down sends only the stage the request is in now. The emails name the request by its
//! reference and say nothing of whom it is about.

use super::{ScheduleError, ScheduleSettings, TickReport};
use crate::directory::Role;
use crate::sar::reference;
use crate::store::{OutboxRecord, RequestKind, SarRequest, Store};
use chrono::{DateTime, Duration, NaiveDate, Utc};

/// Where a request stands against its deadline on a given day.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    WeekBefore,
    DueToday,
    Overdue,
}

impl Stage {
    fn as_str(self) -> &'static str {
        match self {
            Stage::WeekBefore => "week",
            Stage::DueToday => "today",
            Stage::Overdue => "overdue",
        }
    }
}

/// The stage a request due on `due` is in on `today`, if any: within 7 days, the day, after.
pub fn stage(due: NaiveDate, today: NaiveDate) -> Option<Stage> {
    if today > due {
        Some(Stage::Overdue)
    } else if today == due {
        Some(Stage::DueToday)
    } else if today >= due - Duration::days(7) {
        Some(Stage::WeekBefore)
    } else {
        None
    }
}

/// The reminder for request `r` at `stage` to one recipient: no names, no text.
pub fn reminder(r: &SarRequest, stage: Stage, staff: i64, to: &str, settings: &ScheduleSettings, today: NaiveDate) -> OutboxRecord {
    let due = r.due();
    let day = due.format("%-d %b %Y");
    let standing = match stage {
        Stage::WeekBefore => format!("is due on {day}, in {} day(s)", (due - today).num_days()),
        Stage::DueToday => format!("is due today, {day}"),
        Stage::Overdue => format!("was due on {day} and is overdue"),
    };
    let reference = reference(r.id);
    OutboxRecord {
        purpose: "reminder",
        recipient: to.to_string(),
        email_message_id: format!("haven.sar{}.{}.{due}.{staff}@{}", r.id, stage.as_str(), settings.mail_domain),
        subject: format!("[{}] {} {reference}: the answer {standing}", settings.school_name, r.kind.title()),
        body: format!(
            "The answer to {} {reference} {standing}.\n\n{}\n\n\
             See where it stands: haven sar list --by YOUR-ADDRESS\n\n\
             -- \nHaven, {}\n",
            r.kind.title().to_lowercase(),
            match r.kind {
                RequestKind::SubjectAccess => {
                    "One calendar month from receipt is the legal limit; it can be extended by up to two months only if the \
                     requester is told within the first month (`haven sar extend`)."
                }
                RequestKind::EducationalRecord => {
                    "Fifteen school days from receipt is the legal limit for the educational record, with no extension."
                }
            },
            settings.school_name
        ),
    }
}

/// Queues the reminders due at `now` for every open request.
pub async fn remind(store: &Store, settings: &ScheduleSettings, now: DateTime<Utc>, report: &mut TickReport) -> Result<(), ScheduleError> {
    let open: Vec<SarRequest> = store.sars().await?.into_iter().filter(|r| r.open).collect();
    let today = now.with_timezone(&settings.tz).date_naive();
    let due: Vec<(SarRequest, Stage)> = open.into_iter().filter_map(|r| stage(r.due(), today).map(|s| (r, s))).collect();
    if due.is_empty() {
        return Ok(());
    }
    let dir = settings.directory.current(store, &settings.keys.current(store).await?).await?;
    let recipients: Vec<(i64, String)> = dir
        .staff
        .iter()
        .filter(|s| s.active && (s.is_dsl_team() || s.has_role(Role::Dpo)))
        .map(|s| (s.id, s.email().to_string()))
        .collect();
    for (r, stage) in &due {
        let emails: Vec<OutboxRecord> = recipients.iter().map(|(id, to)| reminder(r, *stage, *id, to, settings, today)).collect();
        // Every pass sees the request in its stage: look before taking the write lock.
        let ids: Vec<String> = emails.iter().map(|e| e.email_message_id.clone()).collect();
        if store.emails_queued(&ids).await? == ids.len() {
            continue;
        }
        let mut tx = store.begin().await?;
        let mut queued = 0;
        for email in &emails {
            if tx.queue_email(None, email, now).await? {
                queued += 1;
            }
        }
        tx.commit().await?;
        if queued > 0 {
            report.reminders_queued += queued;
            tracing::info!(sar = r.id, stage = stage.as_str(), reminders = queued, "subject access deadline reminder queued");
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_stages_of_a_deadline() {
        let due = NaiveDate::from_ymd_opt(2026, 12, 20).unwrap();
        let on = |d: u32| stage(due, NaiveDate::from_ymd_opt(2026, 12, d).unwrap());
        assert_eq!(on(12), None);
        assert_eq!(on(13), Some(Stage::WeekBefore));
        assert_eq!(on(19), Some(Stage::WeekBefore));
        assert_eq!(on(20), Some(Stage::DueToday));
        assert_eq!(on(21), Some(Stage::Overdue));
    }
}
